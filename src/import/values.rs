//! Parsing one field: timestamps (ISO 8601 and epoch numbers), property values and their
//! inferred types, stage names. Shared by every format's reader.
//!
//! Uses: `model`; rooms `options`, `staged`.

use crate::import::options::TsUnit;
use crate::import::staged::Scalar;
use crate::model::{PropType, Stage, TimestampUs};

/// Parses a timestamp: an integer in `unit` since the Unix epoch, or ISO 8601 / RFC 3339
/// (`2026-01-05T10:00:00Z`, `2026-01-05 10:00:00.123+01:00`, `2026-01-05`). A time without an
/// offset is UTC. Digits beyond microseconds are truncated.
pub fn parse_ts(text: &str, unit: TsUnit) -> Result<TimestampUs, String> {
    parse_ts_any(text, unit).and_then(crate::model::check_ts)
}

/// [`parse_ts`] without the range check.
pub(crate) fn parse_ts_any(text: &str, unit: TsUnit) -> Result<TimestampUs, String> {
    let s = text.trim();
    let b = s.as_bytes();
    if !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && *c == b'-'))
    {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit.micros()))
            .ok_or_else(|| format!("timestamp {s} is out of range"));
    }
    if let Some(us) = parse_iso_fast(b) {
        return Ok(us);
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(t.as_microsecond()),
        Err(_) => match s.parse::<jiff::civil::DateTime>() {
            Ok(dt) => dt
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_microsecond())
                .map_err(|e| format!("timestamp {s:?}: {e}")),
            Err(_) => Err(format!(
                "{s:?} is not a timestamp: expected ISO 8601 (2026-01-05T10:00:00Z) or an integer \
                 ({} since the Unix epoch)",
                match unit {
                    TsUnit::S => "seconds",
                    TsUnit::Ms => "milliseconds",
                    TsUnit::Us => "microseconds",
                }
            )),
        },
    }
}

pub(crate) fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The fixed-width forms `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM[:SS[.f…]][Z|±HH[:MM]]`; `None` means
/// "not this form" (the caller falls back to the general parser).
pub(crate) fn parse_iso_fast(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (y, m, d) = (
        digits(&bytes[0..4])?,
        digits(&bytes[5..7])?,
        digits(&bytes[8..10])?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * crate::model::DAY_US;
    if bytes.len() == 10 {
        return Some(us);
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes.len() < 16 || bytes[13] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&bytes[11..13])?, digits(&bytes[14..16])?);
    let mut rest = &bytes[16..];
    let mut ss = 0;
    if let [b':', s1, s2, tail @ ..] = rest {
        ss = digits(&[*s1, *s2])?;
        rest = tail;
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    us += ((hh * 60 + mm) * 60 + ss) * 1_000_000;
    if let [b'.' | b',', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let frac = &tail[..n.min(6)];
        us += digits(frac)? * 10i64.pow(6 - frac.len() as u32);
        rest = &tail[n..];
    }
    let offset_min = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (h, m) = match tz {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' { h * 60 + m } else { -(h * 60 + m) }
        }
        _ => return None,
    };
    Some(us - offset_min * 60_000_000)
}

/// Infers a CSV text value: integer (no leading zeros), float, `true`/`false`, else string.
pub(crate) fn infer(text: &str) -> Scalar<'_> {
    let t = text.trim();
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    let b = unsigned.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        if b.len() > 1 && b[0] == b'0' {
            // Zip codes, account numbers: leading zeros mean text.
            return Scalar::Str(text);
        }
        if let Ok(i) = t.parse::<i64>() {
            return Scalar::I64(i);
        }
    }
    let numeric_shape = !b.is_empty()
        && b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric_shape && let Ok(x) = t.parse::<f64>() {
        return Scalar::F64(x);
    }
    if t.eq_ignore_ascii_case("true") {
        return Scalar::Bool(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return Scalar::Bool(false);
    }
    Scalar::Str(text)
}

/// Parses a CSV text value as `ty` (a column whose type is already known).
pub(crate) fn parse_as(text: &str, ty: PropType) -> Result<Scalar<'_>, String> {
    let t = text.trim();
    match ty {
        PropType::Str => Ok(Scalar::Str(text)),
        PropType::I64 => match infer(t) {
            Scalar::I64(i) => Ok(Scalar::I64(i)),
            Scalar::F64(x) => Ok(Scalar::F64(x)),
            _ => t
                .parse::<i64>()
                .map(Scalar::I64)
                .map_err(|_| format!("expected an integer, got {t:?}")),
        },
        PropType::F64 => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Scalar::F64(x)),
            _ => Err(format!("expected a number, got {t:?}")),
        },
        PropType::Bool => match infer(t) {
            Scalar::Bool(v) => Ok(Scalar::Bool(v)),
            _ => Err(format!("expected true or false, got {t:?}")),
        },
    }
}

/// Parses a property type name: `string`, `int`/`i64`/`integer`, `float`/`f64`/`double`, `bool`.
pub fn parse_prop_type(text: &str) -> Option<PropType> {
    match text.to_ascii_lowercase().as_str() {
        "string" | "str" | "text" | "varchar" => Some(PropType::Str),
        "int" | "i64" | "integer" | "bigint" => Some(PropType::I64),
        "float" | "f64" | "double" | "number" => Some(PropType::F64),
        "bool" | "boolean" => Some(PropType::Bool),
        _ => None,
    }
}

/// The error for a stage name that is not one of the five.
pub(crate) fn unknown_stage(t: &str) -> String {
    format!(
        "unknown stage {t:?} (expected one of {})",
        Stage::ALL.map(Stage::name).join(", ")
    )
}
