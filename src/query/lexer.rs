//! Tokens of the query language, each with its byte span.

use super::{ParseError, Span};

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier or keyword (keywords are matched case-insensitively by the parser).
    Ident(String),
    /// A 'quoted string' ('' inside is a quote).
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A duration such as `7d`, in microseconds.
    Duration(i64),
    /// `->`
    Arrow,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`
    Cmp(&'static str),
    /// `-` (a sign before a number)
    Minus,
    /// End of input.
    Eof,
}

/// A token with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// Kind and value.
    pub tok: Tok,
    /// Byte range in the query text.
    pub span: Span,
}

fn unit_us(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        _ => return None,
    })
}

/// Splits `text` into tokens (ending with `Eof`).
pub fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let span = |end: usize| Span { start, end };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                out.push(Token {
                    tok: Tok::Arrow,
                    span: span(i),
                });
            }
            b'-' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Minus,
                    span: span(i),
                });
            }
            b'(' | b')' | b',' => {
                i += 1;
                let tok = match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    _ => Tok::Comma,
                };
                out.push(Token { tok, span: span(i) });
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', _) => "=",
                    (b'!', true) => "!=",
                    (b'<', true) => "<=",
                    (b'<', false) if bytes.get(i + 1) == Some(&b'>') => "!=",
                    (b'<', false) => "<",
                    (b'>', true) => ">=",
                    (b'>', false) => ">",
                    _ => {
                        return Err(ParseError::new(
                            span(i + 1),
                            "unexpected `!` (did you mean `!=`?)",
                        ));
                    }
                };
                i += if op.len() == 2 || (c == b'<' && bytes.get(i + 1) == Some(&b'>')) {
                    2
                } else {
                    1
                };
                out.push(Token {
                    tok: Tok::Cmp(op),
                    span: span(i),
                });
            }
            b'\'' | b'"' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&b) = bytes.get(i) else {
                        return Err(ParseError::new(span(i), "unterminated string"));
                    };
                    if b == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            s.push(quote as char);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                    s.push_str(&text[i..i + ch_len]);
                    i += ch_len;
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    span: span(i),
                });
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
                let mut is_float = false;
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    is_float = true;
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let num: String = text[start..i].chars().filter(|&c| c != '_').collect();
                let unit_start = i;
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let unit = &text[unit_start..i];
                let tok = if !unit.is_empty() {
                    let Some(mult) = unit_us(unit) else {
                        return Err(ParseError::new(
                            Span {
                                start: unit_start,
                                end: i,
                            },
                            format!("unknown duration unit `{unit}`"),
                        )
                        .with_help("durations are like 30s, 30m, 12h, 7d, 2w"));
                    };
                    let n: i64 = num
                        .parse()
                        .map_err(|_| ParseError::new(span(i), "bad duration"))?;
                    Tok::Duration(
                        n.checked_mul(mult)
                            .ok_or_else(|| ParseError::new(span(i), "duration too large"))?,
                    )
                } else if is_float {
                    Tok::Float(num.parse().map_err(|_| ParseError::new(span(i), "bad number"))?)
                } else {
                    Tok::Int(
                        num.parse()
                            .map_err(|_| ParseError::new(span(i), "integer out of range"))?,
                    )
                };
                out.push(Token { tok, span: span(i) });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(text[start..i].to_owned()),
                    span: span(i),
                });
            }
            _ => {
                let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                return Err(ParseError::new(
                    span(i + ch_len),
                    format!("unexpected character {:?}", &text[i..i + ch_len]),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span {
            start: text.len(),
            end: text.len(),
        },
    });
    Ok(out)
}
