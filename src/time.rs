//! Reading timestamps as `journeydb import` reads them: ISO 8601 text, integers since the Unix
//! epoch in a given or an inferred unit, `YYYYMMDD` dates, and strftime-style patterns
//! (`%Y%m%d`, `%d/%m/%Y %H:%M`). Open to applications (`journeydb::time`), so that a program
//! feeding [`crate::Batch`] reads a file's times exactly as the import would.
//!
//! **Inferring the unit.** Without a unit, a file's first integer timestamp decides it from its
//! magnitude (absolute value), and every later integer must have the same:
//!
//! | magnitude | unit | dates it covers |
//! |---|---|---|
//! | 10⁸ ≤ n < 10¹¹ | seconds | 1973-03-03 … 5138-11-16 (negative: 1966-10-31 back to 3199 BC) |
//! | 10¹¹ ≤ n < 10¹⁴ | milliseconds | the same |
//! | 10¹⁴ ≤ n < 10¹⁷ | microseconds | the same |
//! | 10¹⁷ ≤ n | nanoseconds | 1973-03-03 … 2262-04-11 |
//! | 8 digits forming a valid date | `YYYYMMDD` | 1000-01-01 … 9999-12-31 (midnight UTC) |
//!
//! Anything smaller (an integer too close to 1970 to tell, such as `0` or `86400`) is refused:
//! the caller must say the unit. No guess is silent: [`TsReader::inferred`] says what was chosen,
//! and the import prints it.
//!
//! Uses: `model`.

use crate::model::{DAY_US, TimestampUs, check_ts};
use std::fmt;

/// The unit of integer timestamps: a count of these since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds (truncated to microseconds, journeydb's resolution).
    Ns,
}

impl TsUnit {
    /// Every unit, coarsest first.
    pub const ALL: [TsUnit; 4] = [TsUnit::S, TsUnit::Ms, TsUnit::Us, TsUnit::Ns];

    /// The unit's name in words: `seconds`, `milliseconds`, …
    pub fn name(self) -> &'static str {
        match self {
            TsUnit::S => "seconds",
            TsUnit::Ms => "milliseconds",
            TsUnit::Us => "microseconds",
            TsUnit::Ns => "nanoseconds",
        }
    }

    /// The unit's symbol as `--ts-unit` takes it: `s`, `ms`, `us`, `ns`.
    pub fn symbol(self) -> &'static str {
        match self {
            TsUnit::S => "s",
            TsUnit::Ms => "ms",
            TsUnit::Us => "us",
            TsUnit::Ns => "ns",
        }
    }

    /// The unit named by `text` (`s`, `ms`, `us`/`µs`, `ns`, or the name in words).
    pub fn parse(text: &str) -> Option<TsUnit> {
        let text = text.trim().to_ascii_lowercase();
        TsUnit::ALL
            .into_iter()
            .find(|u| text == u.symbol() || text == u.name() || (text == "µs" && *u == TsUnit::Us))
    }

    /// The unit whose magnitude range (see the module documentation) holds `value`; `None` for
    /// a value too close to 1970 to tell.
    pub fn of_magnitude(value: i64) -> Option<TsUnit> {
        match value.unsigned_abs() {
            0..100_000_000 => None,
            100_000_000..100_000_000_000 => Some(TsUnit::S),
            100_000_000_000..100_000_000_000_000 => Some(TsUnit::Ms),
            100_000_000_000_000..100_000_000_000_000_000 => Some(TsUnit::Us),
            _ => Some(TsUnit::Ns),
        }
    }

    /// `value` of this unit in µs since the epoch, range-checked.
    pub fn to_micros(self, value: i64) -> Result<TimestampUs, String> {
        let us = match self {
            TsUnit::S => value.checked_mul(1_000_000),
            TsUnit::Ms => value.checked_mul(1_000),
            TsUnit::Us => Some(value),
            TsUnit::Ns => Some(value.div_euclid(1_000)),
        };
        us.ok_or_else(|| format!("timestamp {value} is out of range"))
            .and_then(check_ts)
    }

    /// A fractional `value` of this unit in µs (rounded), range-checked.
    pub fn float_to_micros(self, value: f64) -> Result<TimestampUs, String> {
        let per_unit = match self {
            TsUnit::S => 1e6,
            TsUnit::Ms => 1e3,
            TsUnit::Us => 1.0,
            TsUnit::Ns => 1e-3,
        };
        let us = (value * per_unit).round();
        if !us.is_finite() || us.abs() >= 9.2e18 {
            return Err(format!("timestamp {value} is out of range"));
        }
        check_ts(us as i64)
    }
}

impl fmt::Display for TsUnit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// How a file's timestamps are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TsForm {
    /// ISO 8601 text, or integers whose unit the first one decides (see the module docs).
    #[default]
    Infer,
    /// ISO 8601 text, or integers of this unit.
    Unit(TsUnit),
    /// Text in this strftime-style pattern (`%Y%m%d`, `%d/%m/%Y %H:%M`, `%s`; jiff's
    /// `strtime` directives). Without an offset (`%z`) or `%s` the time is UTC.
    Pattern(String),
}

/// What a [`TsReader`] inferred about a file's integer timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inferred {
    /// Counts of this unit since the Unix epoch.
    Unit(TsUnit),
    /// Dates written as the digits `YYYYMMDD` (midnight UTC).
    DateDigits,
}

impl fmt::Display for Inferred {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inferred::Unit(unit) => write!(formatter, "{unit} since the Unix epoch"),
            Inferred::DateDigits => formatter.write_str("dates written YYYYMMDD (midnight UTC)"),
        }
    }
}

/// The first and last of a set of timestamps, and how many look implausible: before 1990 (a
/// unit or a pattern read wrong puts events near 1970) or more than a day after a clock's now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsSpan {
    /// The earliest timestamp (`None`: no timestamps).
    pub first: Option<TimestampUs>,
    /// The latest timestamp.
    pub last: Option<TimestampUs>,
    /// Timestamps counted.
    pub count: u64,
    /// Timestamps before 1990-01-01T00:00:00Z.
    pub before_1990: u64,
    /// Timestamps more than a day after `now`.
    pub after_tomorrow: u64,
}

impl TsSpan {
    /// 1990-01-01T00:00:00Z: earlier events are warned about.
    pub const PLAUSIBLE_FROM: TimestampUs = 631_152_000_000_000;

    /// The span of `timestamps`, with `now` the clock the future is judged by.
    pub fn of(timestamps: &[TimestampUs], now: TimestampUs) -> TsSpan {
        let tomorrow = now.saturating_add(DAY_US);
        let mut span = TsSpan {
            first: timestamps.iter().copied().min(),
            last: timestamps.iter().copied().max(),
            count: timestamps.len() as u64,
            ..TsSpan::default()
        };
        for &ts in timestamps {
            span.before_1990 += u64::from(ts < Self::PLAUSIBLE_FROM);
            span.after_tomorrow += u64::from(ts > tomorrow);
        }
        span
    }

    /// The span of both (judged by the same clock).
    pub fn merge(self, other: TsSpan) -> TsSpan {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        TsSpan {
            first: pick(self.first, other.first, i64::min),
            last: pick(self.last, other.last, i64::max),
            count: self.count + other.count,
            before_1990: self.before_1990 + other.before_1990,
            after_tomorrow: self.after_tomorrow + other.after_tomorrow,
        }
    }
}

/// The instant `us` µs after the epoch, or `None` outside jiff's range. Every stored timestamp
/// ([`crate::internals::model::TS_MIN`] to `TS_MAX`) has one. Conversions go through
/// nanoseconds: jiff 1.0's `Timestamp::from_microsecond` refuses the last 999,999 µs of its own
/// range (after 9999-12-30T22:00:00Z), where `TS_MAX` lies.
pub fn instant(us: TimestampUs) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_nanosecond(i128::from(us) * 1000).ok()
}

/// This machine's clock in µs since the epoch (0 if it is set before 1970).
pub fn now() -> TimestampUs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// Reads one file's timestamps in one [`TsForm`]: the first integer decides the unit when the
/// form infers it, and every later value must fit that decision.
#[derive(Clone, Debug, Default)]
pub struct TsReader {
    form: TsForm,
    /// The inference and the value it was made from.
    decided: Option<(Inferred, i64)>,
    /// The last text a pattern read and its time (time-ordered files repeat their dates).
    last: Option<(String, TimestampUs)>,
}

impl TsReader {
    /// A reader of timestamps written in `form`.
    pub fn new(form: TsForm) -> TsReader {
        TsReader {
            form,
            decided: None,
            last: None,
        }
    }

    /// What the reader inferred so far (`None` before the first integer, or when the form
    /// leaves nothing to infer).
    pub fn inferred(&self) -> Option<Inferred> {
        self.decided.map(|(inferred, _)| inferred)
    }

    /// Reads a timestamp written as text: an integer (or a decimal number) as [`Self::integer`]
    /// reads it, else ISO 8601 / RFC 3339 (`2026-01-05T10:00:00Z`, `2026-01-05 10:00:00.123+01:00`,
    /// `2026-01-05`; no offset means UTC; digits beyond microseconds are truncated) — or, under a
    /// pattern, the pattern only.
    pub fn text(&mut self, text: &str) -> Result<TimestampUs, String> {
        let trimmed = text.trim();
        if let TsForm::Pattern(pattern) = &self.form {
            return by_pattern(pattern, &mut self.last, trimmed);
        }
        if let Some(value) = integer_text(trimmed) {
            return match value {
                Some(n) => self.integer(n),
                None => Err(format!("timestamp {trimmed} is out of range")),
            };
        }
        if let Some(us) = parse_iso(trimmed) {
            return check_ts(us);
        }
        if is_decimal(trimmed)
            && let Ok(value) = trimmed.parse::<f64>()
        {
            return self.float(value);
        }
        Err(format!(
            "{trimmed:?} is not a timestamp: expected ISO 8601 (2026-01-05T10:00:00Z) or an integer \
             since the Unix epoch{}; give other forms with --ts-format (e.g. %d/%m/%Y %H:%M)",
            match &self.form {
                TsForm::Unit(unit) => format!(" ({unit})"),
                _ => " (its unit inferred) or YYYYMMDD".into(),
            }
        ))
    }

    /// Reads an integer timestamp (under a pattern: its decimal digits, read by the pattern).
    pub fn integer(&mut self, value: i64) -> Result<TimestampUs, String> {
        match &self.form {
            TsForm::Unit(unit) => unit.to_micros(value),
            TsForm::Pattern(pattern) => by_pattern(pattern, &mut self.last, &value.to_string()),
            TsForm::Infer => match self.decided {
                None => {
                    let inferred = infer(value)?;
                    self.decided = Some((inferred, value));
                    read_inferred(inferred, value)
                }
                Some((inferred, first)) => {
                    if infer(value).ok() != Some(inferred) {
                        return Err(mixed(value, inferred, first));
                    }
                    read_inferred(inferred, value)
                }
            },
        }
    }

    /// Reads a fractional timestamp (`1710325274.25` seconds): its unit is that of its integer
    /// part, inferred as for [`Self::integer`].
    pub fn float(&mut self, value: f64) -> Result<TimestampUs, String> {
        let unit = match &self.form {
            TsForm::Unit(unit) => *unit,
            TsForm::Pattern(_) => return Err(format!("timestamp {value}: expected text for --ts-format")),
            TsForm::Infer => {
                if !value.is_finite() || value.abs() >= 9.2e18 {
                    return Err(format!("timestamp {value} is out of range"));
                }
                let whole = value.trunc() as i64;
                let unit = match self.decided {
                    None => TsUnit::of_magnitude(whole).ok_or_else(|| too_small(whole))?,
                    Some((Inferred::Unit(unit), first)) => {
                        if TsUnit::of_magnitude(whole) != Some(unit) {
                            return Err(mixed(whole, Inferred::Unit(unit), first));
                        }
                        unit
                    }
                    Some((Inferred::DateDigits, first)) => {
                        return Err(mixed(whole, Inferred::DateDigits, first));
                    }
                };
                self.decided.get_or_insert((Inferred::Unit(unit), whole));
                unit
            }
        };
        unit.float_to_micros(value)
    }
}

/// Reads `text` with a strftime-style pattern, through a one-entry memo of the last text read
/// (time-ordered files repeat their dates).
fn by_pattern(
    pattern: &str,
    last: &mut Option<(String, TimestampUs)>,
    text: &str,
) -> Result<TimestampUs, String> {
    if let Some((seen, us)) = last
        && seen == text
    {
        return Ok(*us);
    }
    let us = parse_pattern(pattern, text)?;
    match last {
        Some((seen, at)) => {
            seen.clear();
            seen.push_str(text);
            *at = us;
        }
        None => *last = Some((text.to_owned(), us)),
    }
    Ok(us)
}

/// What the magnitude of a first integer says (see the module docs).
fn infer(value: i64) -> Result<Inferred, String> {
    if date_digits(value).is_some() {
        return Ok(Inferred::DateDigits);
    }
    TsUnit::of_magnitude(value)
        .map(Inferred::Unit)
        .ok_or_else(|| too_small(value))
}

fn read_inferred(inferred: Inferred, value: i64) -> Result<TimestampUs, String> {
    match inferred {
        Inferred::Unit(unit) => unit.to_micros(value),
        Inferred::DateDigits => date_digits(value).ok_or_else(|| format!("{value} is not a YYYYMMDD date")),
    }
}

fn too_small(value: i64) -> String {
    format!(
        "timestamp {value} is too close to 1970 to tell its unit (seconds, milliseconds, microseconds \
         or nanoseconds since the Unix epoch); give it with --ts-unit"
    )
}

fn mixed(value: i64, inferred: Inferred, first: i64) -> String {
    format!(
        "timestamp {value} is not in the form the file's first integer timestamp ({first}) decided: \
         {inferred}; the file mixes forms: give --ts-unit or --ts-format"
    )
}

/// Midnight UTC of `value` read as the digits `YYYYMMDD`, when they form a valid date.
fn date_digits(value: i64) -> Option<TimestampUs> {
    if !(10_000_101..=99_991_231).contains(&value) {
        return None;
    }
    let (year, month, day) = (value / 10_000, value / 100 % 100, value % 100);
    (day >= 1 && day <= month_days(year, month)?).then(|| days_from_civil(year, month, day) * DAY_US)
}

/// The days of `month` (1-12) of `year`, `None` for a month out of range.
fn month_days(year: i64, month: i64) -> Option<i64> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = [
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
    days.get(usize::try_from(month.checked_sub(1)?).ok()?).copied()
}

/// `Some(value)` for text of digits with an optional leading minus (`Some(None)`: such text out
/// of the `i64` range), `None` for other text.
fn integer_text(text: &str) -> Option<Option<i64>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then(|| text.parse::<i64>().ok())
}

/// Text of digits with one decimal point (and an optional leading minus).
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.bytes().filter(|&c| c == b'.').count() == 1
        && digits.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && digits.len() > 1
}

/// Reads `text` with a strftime-style `pattern`: an instant when the pattern gives one (`%s`,
/// or an offset `%z`), else a civil time in UTC (midnight when the pattern has no time).
pub fn parse_pattern(pattern: &str, text: &str) -> Result<TimestampUs, String> {
    let broken = jiff::fmt::strtime::parse(pattern, text)
        .map_err(|e| format!("{text:?} does not match --ts-format {pattern:?}: {e}"))?;
    let us = match broken.to_timestamp() {
        Ok(instant) => instant.as_microsecond(),
        Err(_) => broken
            .to_datetime()
            .and_then(|civil| civil.to_zoned_datetime(jiff::tz::TimeZone::UTC))
            .map(|zoned| zoned.timestamp().as_microsecond())
            .map_err(|e| format!("{text:?} read with --ts-format {pattern:?} is not a time: {e}"))?,
    };
    check_ts(us)
}

/// Parses a timestamp: an integer in `unit` since the Unix epoch, or ISO 8601 / RFC 3339 (as
/// [`TsReader::text`] reads them), range-checked.
pub fn parse_ts(text: &str, unit: TsUnit) -> Result<TimestampUs, String> {
    TsReader::new(TsForm::Unit(unit)).text(text)
}

/// ISO 8601 / RFC 3339 text in µs (not range-checked); `None` when it is not such text.
pub fn parse_iso(text: &str) -> Option<TimestampUs> {
    if let Some(us) = parse_iso_fast(text.as_bytes()) {
        return Some(us);
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(instant) => Some(instant.as_microsecond()),
        Err(_) => text
            .parse::<jiff::civil::DateTime>()
            .ok()?
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|zoned| zoned.timestamp().as_microsecond()),
    }
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
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
    if d < 1 || d > month_days(y, m)? {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * DAY_US;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_iso_forms() {
        let jan5 = 1_767_571_200_000_000; // 2026-01-05T00:00:00Z
        let h10 = 10 * 3_600_000_000;
        for (text, want) in [
            ("2026-01-05", jan5),
            ("2026-01-05T10:00:00Z", jan5 + h10),
            ("2026-01-05 10:00:00", jan5 + h10),
            ("2026-01-05T10:00", jan5 + h10),
            ("2026-01-05T11:00:00+01:00", jan5 + h10),
            ("2026-01-05T11:00:00+0100", jan5 + h10),
            ("2026-01-05T05:00:00-05", jan5 + h10),
            ("2026-01-05T10:00:00.5Z", jan5 + h10 + 500_000),
            ("2026-01-05T10:00:00.123456789Z", jan5 + h10 + 123_456),
            ("1767607200000", jan5 + h10),
        ] {
            assert_eq!(parse_ts(text, TsUnit::Ms), Ok(want), "{text}");
        }
        assert_eq!(parse_ts("1767607200", TsUnit::S), Ok(jan5 + h10));
        assert_eq!(parse_ts("-1", TsUnit::Us), Ok(-1));
        for bad in [
            "2026-02-30",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "",
            "2026-01-05T25:00:00Z",
        ] {
            assert!(parse_ts(bad, TsUnit::Ms).is_err(), "{bad}");
        }
        assert!(parse_ts("99999999999999999", TsUnit::S).is_err());
        // The supported range's ends (-9999-01-02T01:59:59Z, 9999-12-30T22:00:00.999999Z),
        // and one past each.
        assert_eq!(
            parse_ts("253402207200999999", TsUnit::Us),
            Ok(crate::model::TS_MAX)
        );
        assert_eq!(parse_ts("-377705023201", TsUnit::S), Ok(crate::model::TS_MIN));
        for bad in [
            "253402207201",
            "-377705023202",
            "253402300799",
            "9223372036854775807",
        ] {
            assert!(
                parse_ts(bad, TsUnit::S).is_err_and(|e| e.contains("range")),
                "{bad}"
            );
        }
    }

    proptest! {
        /// The hand-written fast path agrees with jiff on every form it accepts.
        #[test]
        fn fast_path_matches_jiff(us in -2_208_988_800_000_000i64..4_102_444_800_000_000i64,
                                  offset_min in -14i32 * 60..=14 * 60,
                                  form in 0usize..4) {
            let ts = jiff::Timestamp::from_microsecond(us).unwrap();
            let off = jiff::tz::Offset::from_seconds(offset_min * 60).unwrap();
            let dt = off.to_datetime(ts);
            let (h, m) = (offset_min.abs() / 60, offset_min.abs() % 60);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let text = match form {
                0 => format!("{}Z", jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S%.6f")),
                1 => format!("{}{sign}{h:02}:{m:02}", dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")),
                2 => format!("{}{sign}{h:02}{m:02}", dt.strftime("%Y-%m-%d %H:%M:%S%.6f")),
                _ => jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            };
            prop_assert!(parse_iso_fast(text.as_bytes()).is_some(), "{}", text);
            prop_assert_eq!(parse_ts(&text, TsUnit::Ms), Ok(us), "{}", text);
            prop_assert_eq!(text.parse::<jiff::Timestamp>().map(|t| t.as_microsecond()).unwrap_or(us), us);
        }
    }

    /// 2024-03-13T10:21:14Z, and the same instant in every unit.
    const MIXPANEL_S: i64 = 1_710_325_274;
    const MIXPANEL_US: i64 = MIXPANEL_S * 1_000_000;

    #[test]
    fn magnitude_ranges_and_their_edges() {
        for (value, want) in [
            (0, None),
            (86_400, None),
            (99_999_999, None),
            (-99_999_999, None),
            (100_000_000, Some(TsUnit::S)),
            (-100_000_000, Some(TsUnit::S)),
            (99_999_999_999, Some(TsUnit::S)),
            (100_000_000_000, Some(TsUnit::Ms)),
            (99_999_999_999_999, Some(TsUnit::Ms)),
            (100_000_000_000_000, Some(TsUnit::Us)),
            (99_999_999_999_999_999, Some(TsUnit::Us)),
            (100_000_000_000_000_000, Some(TsUnit::Ns)),
            (i64::MAX, Some(TsUnit::Ns)),
            (i64::MIN, Some(TsUnit::Ns)),
        ] {
            assert_eq!(TsUnit::of_magnitude(value), want, "{value}");
        }
    }

    #[test]
    fn every_unit_is_inferred_and_said() {
        for (unit, value) in [
            (TsUnit::S, MIXPANEL_S),
            (TsUnit::Ms, MIXPANEL_S * 1_000),
            (TsUnit::Us, MIXPANEL_US),
            (TsUnit::Ns, MIXPANEL_US * 1_000 + 999),
        ] {
            let mut reader = TsReader::new(TsForm::Infer);
            assert_eq!(reader.inferred(), None);
            assert_eq!(reader.integer(value), Ok(MIXPANEL_US), "{unit}");
            assert_eq!(reader.inferred(), Some(Inferred::Unit(unit)));
            // Text of digits is the same integer; a later value keeps the unit.
            assert_eq!(reader.text(&(value + 1).to_string()), unit.to_micros(value + 1));
            assert_eq!(reader.inferred(), Some(Inferred::Unit(unit)));
        }
        // Before 1970 too: -10⁹ s is 1938-04-24T22:13:20Z.
        let mut reader = TsReader::new(TsForm::Infer);
        assert_eq!(reader.integer(-1_000_000_000), Ok(-1_000_000_000_000_000));
    }

    #[test]
    fn date_digits_are_dates() {
        let mut reader = TsReader::new(TsForm::Infer);
        let jan1_1997 = 852_076_800_000_000;
        assert_eq!(reader.text("19970101"), Ok(jan1_1997));
        assert_eq!(reader.inferred(), Some(Inferred::DateDigits));
        assert_eq!(reader.integer(19_970_112), Ok(jan1_1997 + 11 * DAY_US));
        assert_eq!(reader.integer(20_000_229), Ok(951_782_400_000_000)); // a leap day
        // Not a date: refused, naming the first value and the decision.
        let err = reader.integer(19_970_230).unwrap_err();
        assert!(
            err.contains("19970230") && err.contains("19970101") && err.contains("YYYYMMDD"),
            "{err}"
        );
        assert!(reader.integer(MIXPANEL_S).is_err());
        // A first 8-digit value that is no date cannot be told.
        let err = TsReader::new(TsForm::Infer).integer(19_971_301).unwrap_err();
        assert!(
            err.contains("too close to 1970") && err.contains("--ts-unit"),
            "{err}"
        );
    }

    #[test]
    fn mixed_units_are_refused() {
        let mut reader = TsReader::new(TsForm::Infer);
        assert!(reader.integer(MIXPANEL_S).is_ok());
        for other in [MIXPANEL_S * 1_000, 0, 19_970_101, MIXPANEL_US] {
            let err = reader.integer(other).unwrap_err();
            assert!(
                err.contains(&other.to_string()) && err.contains("1710325274"),
                "{err}"
            );
            assert!(err.contains("seconds") && err.contains("mixes"), "{err}");
        }
        assert!(reader.float(1.5e12).is_err());
        // The decision stays: a later good value reads as before.
        assert_eq!(reader.integer(MIXPANEL_S), Ok(MIXPANEL_US));
        // Too small to tell as the first value.
        for small in [0, 1, -1, 99_999_999] {
            assert!(TsReader::new(TsForm::Infer).integer(small).is_err(), "{small}");
        }
    }

    #[test]
    fn fractions_infer_from_their_whole_part() {
        let mut reader = TsReader::new(TsForm::Infer);
        assert_eq!(reader.float(1_710_325_274.25), Ok(MIXPANEL_US + 250_000));
        assert_eq!(reader.inferred(), Some(Inferred::Unit(TsUnit::S)));
        assert_eq!(reader.text("1710325274.5"), Ok(MIXPANEL_US + 500_000));
        assert_eq!(reader.integer(MIXPANEL_S), Ok(MIXPANEL_US));
        let mut reader = TsReader::new(TsForm::Infer);
        assert_eq!(reader.float(1_710_325_274_000.5), Ok(MIXPANEL_US + 500));
        assert_eq!(reader.inferred(), Some(Inferred::Unit(TsUnit::Ms)));
        assert!(TsReader::new(TsForm::Infer).float(f64::NAN).is_err());
        assert!(TsReader::new(TsForm::Infer).float(12.5).is_err());
    }

    #[test]
    fn a_given_unit_reads_every_magnitude() {
        let mut reader = TsReader::new(TsForm::Unit(TsUnit::S));
        assert_eq!(reader.integer(0), Ok(0));
        assert_eq!(reader.integer(MIXPANEL_S), Ok(MIXPANEL_US));
        assert_eq!(reader.text("86400"), Ok(DAY_US));
        assert_eq!(reader.float(1.5), Ok(1_500_000));
        assert_eq!(reader.inferred(), None);
        let mut ns = TsReader::new(TsForm::Unit(TsUnit::Ns));
        assert_eq!(ns.integer(-1), Ok(-1), "nanoseconds truncate toward the past");
        assert_eq!(ns.integer(1_999), Ok(1));
        // ISO text is read whatever the unit.
        assert_eq!(reader.text("2024-03-13T10:21:14Z"), Ok(MIXPANEL_US));
    }

    #[test]
    fn patterns() {
        let mut reader = TsReader::new(TsForm::Pattern("%d/%m/%Y %H:%M".into()));
        assert_eq!(reader.text("13/03/2024 10:21"), Ok(MIXPANEL_US - 14_000_000));
        // The one-entry memo: the same text again, then another.
        assert_eq!(reader.text("13/03/2024 10:21"), Ok(MIXPANEL_US - 14_000_000));
        assert_eq!(
            reader.text(" 14/03/2024 10:21 "),
            Ok(MIXPANEL_US - 14_000_000 + DAY_US)
        );
        let err = reader.text("2024-03-13").unwrap_err();
        assert!(
            err.contains("%d/%m/%Y %H:%M") && err.contains("2024-03-13"),
            "{err}"
        );
        assert!(reader.float(1.0).is_err());
        let mut digits = TsReader::new(TsForm::Pattern("%Y%m%d".into()));
        assert_eq!(digits.integer(19_970_101), Ok(852_076_800_000_000));
        assert_eq!(digits.text("19970102"), Ok(852_076_800_000_000 + DAY_US));
        assert!(digits.text("19970132").is_err());
        // An offset or %s gives the instant itself.
        assert_eq!(
            parse_pattern("%Y-%m-%d %H:%M:%S %z", "2024-03-13 11:21:14 +0100"),
            Ok(MIXPANEL_US)
        );
        assert_eq!(parse_pattern("%s", "1710325274"), Ok(MIXPANEL_US));
        assert!(parse_pattern("%Y", "2024").is_err(), "a year alone is no date");
    }

    #[test]
    fn spans_count_the_implausible() {
        let now = MIXPANEL_US;
        let early = TsSpan::PLAUSIBLE_FROM;
        let span = TsSpan::of(&[early, early - 1, now + DAY_US, now + DAY_US + 1, now], now);
        assert_eq!(span.first, Some(early - 1));
        assert_eq!(span.last, Some(now + DAY_US + 1));
        assert_eq!((span.count, span.before_1990, span.after_tomorrow), (5, 1, 1));
        assert_eq!(TsSpan::of(&[], now), TsSpan::default());
        assert_eq!(TsSpan::default().merge(span), span);
        assert_eq!(span.merge(TsSpan::default()), span);
    }

    proptest! {
        /// Any instant from 1973-03-03 to 2262, written as an integer of any unit, is read
        /// back (to that unit's resolution) with the unit inferred.
        #[test]
        fn inference_reads_back_every_unit(us in 100_000_000_000_000i64..9_000_000_000_000_000_000 / 1_000,
                                           unit in 0usize..4) {
            let unit = TsUnit::ALL[unit];
            let value = match unit {
                TsUnit::S => us / 1_000_000,
                TsUnit::Ms => us / 1_000,
                TsUnit::Us => us,
                TsUnit::Ns => us * 1_000,
            };
            let mut reader = TsReader::new(TsForm::Infer);
            prop_assert_eq!(reader.integer(value), unit.to_micros(value));
            prop_assert_eq!(reader.inferred(), Some(Inferred::Unit(unit)));
        }

        /// Merged spans equal the span of the concatenation.
        #[test]
        fn spans_merge_as_one(a in proptest::collection::vec(-1i64 << 52..1i64 << 52, 0..20),
                              b in proptest::collection::vec(-1i64 << 52..1i64 << 52, 0..20),
                              now in 0i64..1i64 << 52) {
            let whole: Vec<i64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(TsSpan::of(&a, now).merge(TsSpan::of(&b, now)), TsSpan::of(&whole, now));
        }
    }
}
