//! The time range a statement reads: the data's range, whole-day tests for index shortcuts,
//! and buckets over all history.
//!
//! Uses: `limits`, `model`, `plan`, `query`, `time`; rooms `options`.

use super::options::QueryError;
use crate::exec::options::Input;
use crate::limits;
use crate::model;
use crate::plan::Buckets;
use crate::query::ast::Period;
use crate::query::{ParseError, Span};
use std::ops::Range;

/// True when `(lo, hi)` selects whole UTC days of the data: each end on a day boundary or beyond
/// the data (so that per-day indices answer exactly). False for an empty database.
pub(super) fn whole_days(input: &Input<'_>, (lo, hi): (i64, i64)) -> bool {
    let Some((dmin, dmax)) = input.ts_range else {
        return false;
    };
    (on_day_boundary(lo) || lo <= dmin) && (on_day_boundary(hi) || hi > dmax)
}

/// True when `ts` starts a UTC day.
pub(super) fn on_day_boundary(ts: i64) -> bool {
    ts.rem_euclid(model::DAY_US) == 0
}

pub(super) fn data_range(input: &Input<'_>, range: Option<(i64, i64)>) -> (i64, i64) {
    match (range, input.ts_range) {
        (Some(r), _) => r,
        (None, Some((lo, hi))) => (lo, hi.saturating_add(1)),
        (None, None) => (0, 1),
    }
}

/// Buckets covering all history and the range, and the reported index range.
pub(super) fn history_buckets(
    input: &Input<'_>,
    range: Option<(i64, i64)>,
    period: Period,
    tz: &jiff::tz::TimeZone,
) -> Result<(Buckets, Range<usize>), QueryError> {
    let (lo, hi) = data_range(input, range);
    let start = input.ts_range.map_or(lo, |(a, _)| a.min(lo));
    let end = input.ts_range.map_or(hi, |(_, b)| (b + 1).max(hi));
    let buckets = Buckets::new(start, end, 0, period, tz, limits::BUCKETS_MAX)
        .map_err(|m| ParseError::new(Span::default(), m))?;
    let first = buckets.index(lo).unwrap_or(0);
    let last = buckets.index(hi - 1).map_or(buckets.len(), |i| i + 1);
    Ok((buckets, first..last))
}

/// Which buckets of `buckets` are complete (docs/QUERY.md, "Complete buckets"): both the
/// statement's range (`explicit`, its FROM..TO) and the data cover the bucket whole. A complete
/// bucket starts at or after FROM and at or after the start of the earliest event's day (in the
/// buckets' zone: the data is taken to begin on a whole day), and ends at or before TO and at or
/// before the latest event (the data ends with its latest event, as RETENTION's `complete` has
/// it). An empty database has no complete bucket. The bounds are worked out once; the test per
/// bucket is two comparisons.
pub(super) fn complete_buckets<'b>(
    buckets: &'b Buckets,
    explicit: Option<(i64, i64)>,
    input: &Input<'_>,
) -> impl Fn(usize) -> bool + 'b {
    let bounds = input.ts_range.map(|(earliest, latest)| {
        let first_day = crate::time::instant(earliest)
            .and_then(|at| at.to_zoned_datetime(buckets.tz.clone()).start_of_day().ok())
            .map_or(earliest, |day| day.timestamp().as_microsecond());
        let lo = explicit.map_or(first_day, |(from, _)| from.max(first_day));
        let hi = explicit.map_or(latest, |(_, to)| to.min(latest));
        (lo, hi)
    });
    move |index| {
        let (Some((lo, hi)), Some(&start), Some(&end)) =
            (bounds, buckets.starts.get(index), buckets.starts.get(index + 1))
        else {
            return false;
        };
        start >= lo && end <= hi
    }
}

/// The local day (days since the epoch) of `ts` in a statement's calendar (`None`: UTC, days
/// by division): the day TOP CUSTOMERS' `days_active` and FIT's purchase days count in.
pub(super) fn local_day(tz: Option<&jiff::tz::TimeZone>, ts: i64) -> i64 {
    let offset = match (tz, crate::time::instant(ts)) {
        (Some(tz), Some(at)) => i64::from(tz.to_offset(at).seconds()) * 1_000_000,
        _ => 0,
    };
    ts.saturating_add(offset).div_euclid(crate::model::DAY_US)
}
