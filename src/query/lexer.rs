//! Tokens of the query language, each with its byte span.
//!
//! Uses: `model`; rooms `ast`.

use super::ast::CmpOp;
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
    Cmp(CmpOp),
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
        let (tok, end) = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                // A comment, to the end of the line.
                i = text[i..].find('\n').map_or(text.len(), |n| i + n);
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'>') => (Tok::Arrow, i + 2),
            b'-' => (Tok::Minus, i + 1),
            b'(' => (Tok::LParen, i + 1),
            b')' => (Tok::RParen, i + 1),
            b',' => (Tok::Comma, i + 1),
            b'=' | b'!' | b'<' | b'>' => comparison(bytes, i)?,
            b'\'' | b'"' => string(text, i)?,
            b'0'..=b'9' => number(text, i)?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let word_end = |from: usize| {
                    text[from..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                        .map_or(text.len(), |n| from + n)
                };
                let end = word_end(i);
                // `customer.NAME`: a customer-profile property, one identifier.
                let dotted = text[i..end].eq_ignore_ascii_case("customer")
                    && bytes.get(end) == Some(&b'.')
                    && bytes
                        .get(end + 1)
                        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_');
                if dotted {
                    let name_end = word_end(end + 1);
                    let name = format!("{}{}", crate::model::PROFILE_PREFIX, &text[end + 1..name_end]);
                    (Tok::Ident(name), name_end)
                } else {
                    (Tok::Ident(text[i..end].to_owned()), end)
                }
            }
            _ => {
                let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                return Err(ParseError::new(
                    Span {
                        start,
                        end: i + ch_len,
                    },
                    format!("unexpected character {:?}", &text[i..i + ch_len]),
                ));
            }
        };
        out.push(Token {
            tok,
            span: Span { start, end },
        });
        i = end;
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

/// The comparison operator at `index` (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`) and where it ends.
fn comparison(bytes: &[u8], index: usize) -> Result<(Tok, usize), ParseError> {
    let next = bytes.get(index + 1).copied();
    let (op, len) = match (bytes[index], next) {
        (b'=', _) => (CmpOp::Eq, 1),
        (b'!', Some(b'=')) => (CmpOp::Ne, 2),
        (b'<', Some(b'=')) => (CmpOp::Le, 2),
        (b'<', Some(b'>')) => (CmpOp::Ne, 2),
        (b'<', _) => (CmpOp::Lt, 1),
        (b'>', Some(b'=')) => (CmpOp::Ge, 2),
        (b'>', _) => (CmpOp::Gt, 1),
        _ => {
            let span = Span {
                start: index,
                end: index + 1,
            };
            return Err(ParseError::new(span, "unexpected `!` (did you mean `!=`?)"));
        }
    };
    Ok((Tok::Cmp(op), index + len))
}

/// The quoted string starting at `i` (a doubled quote inside stands for one) and where it ends.
fn string(text: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let bytes = text.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    let mut s = String::new();
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(ParseError::new(Span { start, end: i }, "unterminated string"));
        };
        if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                s.push(quote as char);
                i += 2;
                continue;
            }
            return Ok((Tok::Str(s), i + 1));
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        s.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
}

/// The number starting at `start` — an integer (`_` separators allowed), a decimal, or a
/// duration (`30s`, `12h`, `7d`, `2w`: in µs) — and where it ends.
fn number(text: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut i = start;
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
    let span = Span { start, end: i };
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
        let n: i64 = num.parse().map_err(|_| ParseError::new(span, "bad duration"))?;
        Tok::Duration(
            n.checked_mul(mult)
                .ok_or_else(|| ParseError::new(span, "duration too large"))?,
        )
    } else if is_float {
        Tok::Float(num.parse().map_err(|_| ParseError::new(span, "bad number"))?)
    } else {
        Tok::Int(
            num.parse()
                .map_err(|_| ParseError::new(span, "integer out of range"))?,
        )
    };
    Ok((tok, i))
}
