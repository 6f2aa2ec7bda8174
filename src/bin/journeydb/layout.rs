//! Fitting output to the terminal: its width (`COLUMNS`, else the terminal's size, else 80;
//! no limit into a file or pipe),
//! the visible length of a line that may carry colour codes, a line cut to a width with a `…`
//! marker, headers wrapped at `_`, series resampled to a number of chart columns, and the table
//! view's forms of durations and decimals (CSV and JSON keep raw values).

use std::io::IsTerminal;

/// The width assumed when neither `COLUMNS` nor the terminal says.
pub const DEFAULT_WIDTH: usize = 80;

/// The narrowest width output is fitted to (a smaller `COLUMNS` is read as this).
pub const MIN_WIDTH: usize = 40;

/// The output width: `COLUMNS` when it is a number, else the size of the terminal on standard
/// output ([`DEFAULT_WIDTH`] when a terminal does not say), never below [`MIN_WIDTH`]; `None`
/// (no limit) when standard output is a file or a pipe and `COLUMNS` is unset, so that scripts
/// and logs get whole tables, as psql and sqlite3 give them.
pub fn terminal_width() -> Option<usize> {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|&columns| columns > 0);
    let width = match from_env {
        Some(columns) => columns,
        None => {
            let stdout = std::io::stdout();
            if !stdout.is_terminal() {
                return None;
            }
            terminal_size::terminal_size_of(&stdout)
                .map(|(columns, _)| columns.0 as usize)
                .filter(|&columns| columns > 0)
                .unwrap_or(DEFAULT_WIDTH)
        }
    };
    Some(width.max(MIN_WIDTH))
}

/// The number of terminal cells `line` takes: its characters, not counting ANSI colour
/// sequences (`ESC [ … m`).
pub fn visible_len(line: &str) -> usize {
    let mut count = 0;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            // Skip to the sequence's final letter.
            for inner in chars.by_ref() {
                if inner.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            count += 1;
        }
    }
    count
}

/// `line` cut to at most `width` visible cells, the last of them `…` when anything was cut
/// (colour is reset after the cut so that it does not run on).
pub fn fit_line(line: &str, width: usize) -> String {
    if visible_len(line) <= width {
        return line.to_owned();
    }
    let keep = width.saturating_sub(1);
    let (mut out, mut count, mut coloured) = (String::new(), 0, false);
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            coloured = true;
            out.push(ch);
            for inner in chars.by_ref() {
                out.push(inner);
                if inner.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        if count == keep {
            break;
        }
        out.push(ch);
        count += 1;
    }
    if coloured {
        out.push_str("\x1b[0m");
    }
    out.push('…');
    out
}

/// Every line of `text` fitted to `width` (see [`fit_line`]).
pub fn fit_lines(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&fit_line(body, width));
        out.push_str(end);
    }
    out
}

/// `text` cut to `width` characters, ending in `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` wrapped at spaces onto lines of at most `width` characters, the first line starting
/// with `first`, the others with `rest` (a word longer than a line stays whole).
pub fn wrap_words(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::from(first);
    let mut line_len = first.chars().count();
    let mut line_has_word = false;
    for word in text.split(' ').filter(|word| !word.is_empty()) {
        let word_len = word.chars().count();
        if line_has_word && line_len + 1 + word_len > width {
            out.push('\n');
            out.push_str(rest);
            line_len = rest.chars().count();
            line_has_word = false;
        }
        if line_has_word {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word_len;
        line_has_word = true;
    }
    out
}

/// A column header wrapped onto lines of at most `width` characters, broken after `_` where it
/// can be (a single word longer than `width` is cut with `…`).
pub fn wrap_header(name: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in name.split_inclusive('_') {
        let fits = current.chars().count() + word.trim_end_matches('_').chars().count() <= width;
        if !current.is_empty() && !fits {
            lines.push(std::mem::take(&mut current));
        }
        current.push_str(word);
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
        .into_iter()
        .map(|line| {
            // A trailing `_` may hang past the width: drop it rather than cut the word.
            let line = if line.chars().count() > width {
                line.trim_end_matches('_').to_owned()
            } else {
                line
            };
            truncate(&line, width)
        })
        .collect()
}

/// The narrowest width `name` wraps to without cutting a word: its longest `_`-separated word.
pub fn header_min_width(name: &str) -> usize {
    name.split('_')
        .map(|word| word.chars().count() + 1)
        .max()
        .unwrap_or(1)
        .min(name.chars().count())
        .max(1)
}

/// `values` averaged over runs of neighbours so that at most `columns` remain; returns the
/// averaged values and how many of the original each stands for.
pub fn resample(values: &[f64], columns: usize) -> (Vec<f64>, usize) {
    let per = values.len().div_ceil(columns.max(1)).max(1);
    let averaged = values
        .chunks(per)
        .map(|chunk| chunk.iter().sum::<f64>() / chunk.len() as f64)
        .collect();
    (averaged, per)
}

/// A duration in seconds as its two largest units: `45s`, `25m 10s`, `1d 2h`; under ten seconds
/// with one decimal (`2.5s`), under one second in milliseconds (`250ms`).
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return String::new();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let magnitude = seconds.abs();
    if magnitude == 0.0 {
        return "0s".to_owned();
    }
    if magnitude < 1.0 {
        return format!("{sign}{}ms", (magnitude * 1000.0).round() as u64);
    }
    if magnitude < 10.0 {
        return format!("{sign}{magnitude:.1}s");
    }
    let mut rest = magnitude.round() as u64;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    for (name, size) in units {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 || (!parts.is_empty() && rest == 0) {
            break;
        }
    }
    format!("{sign}{}", parts.join(" "))
}

/// The decimals the table view gives a column of these floats: two, more when the column's
/// smallest non-zero magnitude under 1 needs them for three significant digits (at most six).
pub fn decimals_for(values: impl Iterator<Item = f64>) -> usize {
    let smallest = values
        .filter(|x| x.is_finite() && *x != 0.0)
        .map(f64::abs)
        .fold(f64::INFINITY, f64::min);
    if smallest >= 1.0 || !smallest.is_finite() || smallest < 1e-4 {
        return 2;
    }
    // Three significant digits: 0.0123 needs 4 decimals.
    let leading_zeros = (-smallest.log10()).floor() as usize;
    (leading_zeros + 3).clamp(2, 6)
}

/// A float in the table view at `decimals`; magnitudes under 0.0001 (which would read as zero)
/// in scientific notation.
pub fn float_text(value: f64, decimals: usize) -> String {
    if value != 0.0 && value.abs() < 1e-4 && value.is_finite() {
        format!("{value:.1e}")
    } else {
        format!("{value:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_take_no_width_and_a_cut_line_resets_colour() {
        let painted = "\x1b[1mfunnel\x1b[0m bars";
        assert_eq!(visible_len(painted), 11);
        assert_eq!(fit_line(painted, 11), painted);
        let cut = fit_line(painted, 4);
        assert_eq!(visible_len(&cut), 4);
        assert!(cut.starts_with("\x1b[1mfun"));
        assert!(cut.ends_with("\x1b[0m…"));
        assert_eq!(fit_line("abcdef", 3), "ab…");
        assert_eq!(fit_lines("abcdef\nab\n", 4), "abc…\nab\n");
    }

    #[test]
    fn prose_wraps_at_spaces_under_its_prefixes() {
        let text = "FUNNEL visit -> purchase WITHIN 7d BY customer.plan";
        assert_eq!(wrap_words(text, 80, "> ", "  "), format!("> {text}"));
        let wrapped = wrap_words(text, 24, "> ", "  ");
        assert_eq!(
            wrapped,
            "> FUNNEL visit ->\n  purchase WITHIN 7d BY\n  customer.plan"
        );
        assert!(wrapped.lines().all(|line| line.chars().count() <= 24));
        assert_eq!(wrap_words("averylongword x", 5, "", ""), "averylongword\nx");
    }

    #[test]
    fn headers_wrap_after_underscores_and_cut_only_long_words() {
        assert_eq!(
            wrap_header("conversion_from_previous", 15),
            ["conversion_from", "previous"]
        );
        assert_eq!(
            wrap_header("conversion_from_previous", 14),
            ["conversion_", "from_previous"]
        );
        assert_eq!(
            wrap_header("median_time_to_convert", 8),
            ["median_", "time_to_", "convert"]
        );
        assert_eq!(wrap_header("customers", 9), ["customers"]);
        assert_eq!(wrap_header("customers", 5), ["cust…"]);
        assert_eq!(header_min_width("conversion_from_previous"), 11);
        assert_eq!(header_min_width("rank"), 4);
        for name in ["a_b_c", "p_value", "odds_ratio", "x"] {
            let width = header_min_width(name);
            let lines = wrap_header(name, width);
            assert!(
                lines.iter().all(|line| line.chars().count() <= width),
                "{name}: {lines:?}"
            );
            assert_eq!(lines.concat(), name, "no word is cut at the minimum width");
        }
    }

    #[test]
    fn series_resample_to_the_columns_by_averaging_neighbours() {
        let days: Vec<f64> = (0..90).map(f64::from).collect();
        let (columns, per) = resample(&days, 79);
        assert_eq!((columns.len(), per), (45, 2));
        assert_eq!(columns[0], 0.5);
        assert_eq!(resample(&days, 90).0.len(), 90);
        let (tail, per) = resample(&[1.0, 2.0, 3.0], 2);
        assert_eq!((tail, per), (vec![1.5, 3.0], 2));
    }

    #[test]
    fn durations_and_decimals_read_as_people_write_them() {
        assert_eq!(duration(1532.629), "25m 33s");
        assert_eq!(duration(90_507.0), "1d 1h");
        assert_eq!(duration(3_600.0), "1h");
        assert_eq!(duration(4.25), "4.2s");
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(-65.0), "-1m 5s");
        assert_eq!(decimals_for([15.76, 5.1].into_iter()), 2);
        assert_eq!(decimals_for([0.0123, 3.0].into_iter()), 4);
        assert_eq!(decimals_for([0.5].into_iter()), 3);
        assert_eq!(float_text(0.00001234, 4), "1.2e-5");
        assert_eq!(float_text(15.757991, 2), "15.76");
        assert_eq!(float_text(0.0, 4), "0.0000");
    }
}
