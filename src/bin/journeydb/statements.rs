//! Splitting script text into statements: each ends at a `;` outside quotes, `--` comments are
//! dropped, and each statement knows the line it starts on (so a script's errors can name it).

/// Moves every complete statement (ended by `;` outside quotes) out of `buf`; `--` comments are
/// dropped. What remains in `buf` is the incomplete tail.
pub fn take_statements(buf: &mut String) -> Vec<String> {
    take_statements_at(buf)
        .0
        .into_iter()
        .map(|(statement, _)| statement)
        .collect()
}

/// As [`take_statements`], with the line (0-based, counted from the start of `buf`) each
/// statement's text starts on, and the line the unfinished rest left in `buf` starts on.
pub fn take_statements_at(buf: &mut String) -> (Vec<(String, usize)>, usize) {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    // The line `cur` starts on, and the line being read.
    let (mut cur_line, mut line) = (0usize, 0usize);
    let mut chars = buf.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        cur.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => {
                let s = std::mem::take(&mut cur);
                if !s.trim().is_empty() {
                    let leading = &s[..s.len() - s.trim_start().len()];
                    out.push((s.trim().to_owned(), cur_line + leading.matches('\n').count()));
                }
                cur_line = line;
            }
            (None, c) => cur.push(c),
        }
    }
    *buf = if cur.trim().is_empty() { String::new() } else { cur };
    (out, cur_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let mut b =
            String::from("FUNNEL a -> b WITHIN 1d; -- c;\nTREND count WHERE x = ';' PERIOD day;\nTREND");
        let s = take_statements(&mut b);
        assert_eq!(
            s,
            vec!["FUNNEL a -> b WITHIN 1d", "TREND count WHERE x = ';' PERIOD day"]
        );
        assert_eq!(b.trim(), "TREND");
        // A statement open inside a quote stays open.
        let mut open = String::from("TREND count WHERE x = ';");
        assert!(take_statements(&mut open).is_empty());
    }

    #[test]
    fn statements_know_the_line_they_start_on() {
        let mut text = String::from("-- note; here\nA;\n\n  B\n  c; D\nE");
        let (statements, rest) = take_statements_at(&mut text);
        assert_eq!(statements, [("A".to_owned(), 1), ("B\n  c".to_owned(), 3)]);
        assert_eq!((rest, text.as_str()), (4, " D\nE"));
    }
}
