//! RETENTION: of the customers who started in a cohort, who came back in each later period.
//!
//! Uses: `dict`, `limits`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `labels`, `operator`, `options`, `prefilter`, `range`, `scan`.

use crate::dict::Dicts;
use crate::exec::drive::evaluate;
use crate::exec::labels::customer_table;
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::prefilter::{admitted, candidates, shared, step_days};
use crate::exec::range::{complete_buckets, on_day_boundary};
use crate::exec::scan::{columns, passes};
use crate::model::Columns;
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ast::{Cohorting, Period};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use crate::{limits, model};
use std::collections::BTreeMap;
use std::ops::Range;

pub(super) struct RetentionOp<'a> {
    start: Matcher,
    ret: Matcher,
    buckets: Buckets,
    periods: usize,
    cohorting: Cohorting,
    on_or_after: bool,
    /// Offset 0 counts returns in the cohort's bucket (PERIOD_ZERO_RETURNS), not the cohort.
    zero_returns: bool,
    range: Option<(i64, i64)>,
    filter: Option<CPred>,
    dicts: &'a Dicts,
    /// Collect the customers of this (cohort bucket, offset) cell.
    collect: Option<(usize, usize)>,
    /// The most customers a drill-down lists.
    limit: Option<u64>,
}

impl<'a> RetentionOp<'a> {
    /// Plans a RETENTION statement on `input`; with `drill`, the customers of one cell.
    fn plan(
        retention: &crate::query::ast::Retention,
        text: &str,
        input: &Input<'a>,
        drill: Option<RetentionDrill<'_>>,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, retention.common.tz.as_ref())?;
        let range = res.range(&retention.common.range)?;
        // Buckets cover all history (first-time cohorts look at all of it) plus the offsets.
        let (lo, hi) = match (input.ts_range, range) {
            (Some((a, b)), Some((x, y))) => (a.min(x), b.saturating_add(1).max(y)),
            (Some((a, b)), None) => (a, b.saturating_add(1)),
            (None, Some(retention)) => retention,
            (None, None) => (0, 1),
        };
        let buckets = Buckets::new(
            lo,
            hi,
            retention.periods as usize,
            retention.period.starting(&retention.common),
            &res.tz,
            limits::BUCKETS_MAX,
        )
        .map_err(|m| ParseError::new(Span::default(), m))?;
        Ok(RetentionOp {
            start: res.step(&retention.start)?,
            ret: res.step(&retention.ret)?,
            periods: retention.periods as usize,
            cohorting: retention.cohorting,
            on_or_after: retention.on_or_after,
            zero_returns: retention.zero_returns,
            range,
            filter: retention
                .common
                .filter
                .as_ref()
                .map(|p| res.pred(p))
                .transpose()?,
            dicts: input.dicts,
            limit: drill.and_then(|d| d.2),
            collect: match drill {
                Some((when, k, _)) => {
                    let ts = res.time(when)?;
                    let span = match when {
                        crate::query::ast::TimeLit::Text(_, s) | crate::query::ast::TimeLit::UnixMs(_, s) => {
                            *s
                        }
                    };
                    let b = buckets
                        .index(ts)
                        .ok_or_else(|| ParseError::new(span, "no cohort bucket holds this time"))?;
                    Some((b, k as usize))
                }
                None => None,
            },
            buckets,
        })
    }
}

/// (cohort bucket) -> (cohort size, customers per offset), and the customers of the cell being
/// drilled into (if any).
pub(super) type RetentionPartial = (BTreeMap<usize, (u64, Vec<u64>)>, roaring::RoaringBitmap);

impl Operator for RetentionOp<'_> {
    type Partial = RetentionPartial;

    fn columns(&self) -> ColumnSet {
        columns(self.filter.is_some() || self.start.uses_props() || self.ret.uses_props())
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<RetentionPartial>, QueryError> {
        Ok(match retention_from_bitmaps(self, input) {
            Some(p) => Prefilter::Answered(p),
            None => Prefilter::only(candidates(&self.start, input.bitmaps, None)),
        })
    }

    fn customer(&self, partial: &mut RetentionPartial, rows: &Columns, run: Range<usize>) {
        let cid = rows.cid[run.start];
        let mut cohorts: Vec<usize> = Vec::new();
        let mut returns: Vec<usize> = Vec::new();
        let mut first_seen = false;
        for i in run {
            if !passes(&self.filter, rows, i, self.dicts) {
                continue;
            }
            let t = rows.ts[i];
            if self.start.matches(rows, i, self.dicts) {
                let in_range = self.range.is_none_or(|(lo, hi)| lo <= t && t < hi);
                match self.cohorting {
                    Cohorting::FirstTime => {
                        if !first_seen {
                            first_seen = true;
                            if in_range && let Some(b) = self.buckets.index(t) {
                                cohorts.push(b);
                            }
                        }
                    }
                    Cohorting::Recurring => {
                        if in_range && let Some(b) = self.buckets.index(t) {
                            cohorts.push(b);
                        }
                    }
                }
            }
            if self.ret.matches(rows, i, self.dicts)
                && let Some(b) = self.buckets.index(t)
            {
                returns.push(b);
            }
        }
        cohorts.sort_unstable();
        cohorts.dedup();
        returns.sort_unstable();
        returns.dedup();
        for c in cohorts {
            let e = partial
                .0
                .entry(c)
                .or_insert_with(|| (0, vec![0; self.periods + 1]));
            e.0 += 1;
            for k in 0..=self.periods {
                let hit = if k == 0 && !self.zero_returns {
                    true
                } else if self.on_or_after {
                    returns.last().is_some_and(|&last| last >= c + k)
                } else {
                    returns.binary_search(&(c + k)).is_ok()
                };
                if hit {
                    e.1[k] += 1;
                    if self.collect == Some((c, k)) {
                        partial.1.insert(cid);
                    }
                }
            }
        }
    }

    fn footprint(&self, partial: &RetentionPartial) -> usize {
        // The drill-down bitmap (one cell's customers) is bounded by customers / 8 bytes.
        partial.0.len() * (64 + 8 * (self.periods + 1))
    }

    fn merge(&self, into: &mut RetentionPartial, from: RetentionPartial) {
        into.1 |= from.1;
        for (c, (size, counts)) in from.0 {
            let e = into.0.entry(c).or_insert_with(|| (0, vec![0; counts.len()]));
            e.0 += size;
            for (x, y) in e.1.iter_mut().zip(counts) {
                *x += y;
            }
        }
    }

    fn finish(
        &self,
        partial: RetentionPartial,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        if self.collect.is_some() {
            return Ok(customer_table(&partial.1, input.dicts, self.limit, opts.rows_max));
        }
        let partial = partial.0;
        let latest = input.ts_range.map_or(i64::MIN, |x| x.1);
        let complete = |b: usize| self.buckets.starts.get(b + 1).is_some_and(|&end| end <= latest);
        let mut t = Table::new(&[
            "cohort",
            "period",
            "cohort_size",
            "customers",
            "rate",
            "complete",
            "cohort_complete",
        ]);
        let mut mean: Vec<(u64, u64)> = vec![(0, 0); self.periods + 1];
        let whole_cohort = complete_buckets(&self.buckets, self.range, input);
        for (c, (size, counts)) in &partial {
            // A cohort whose bucket the range or the data covers only in part (the first week
            // of data starting mid-week) holds only part of its entrants.
            let whole = whole_cohort(*c);
            for (k, &n) in counts.iter().enumerate() {
                let done = complete(c + k);
                if done {
                    mean[k].0 += size;
                    mean[k].1 += n;
                }
                t.rows.push(vec![
                    Cell::Str(self.buckets.label(*c)),
                    Cell::Int(k as i64),
                    Cell::Int(*size as i64),
                    Cell::Int(n as i64),
                    Cell::Rate(n as f64 / *size as f64),
                    Cell::Bool(done),
                    Cell::Bool(whole),
                ]);
            }
        }
        for (k, (size, n)) in mean.iter().enumerate() {
            t.rows.push(vec![
                Cell::Str("mean".into()),
                Cell::Int(k as i64),
                Cell::Int(*size as i64),
                Cell::Int(*n as i64),
                if *size == 0 {
                    Cell::Null
                } else {
                    Cell::Rate(*n as f64 / *size as f64)
                },
                Cell::Bool(true),
                Cell::Null,
            ]);
        }
        Ok(t)
    }
}

/// RETENTION of event names or stages, without a filter, in UTC buckets of a day or longer and
/// a whole-day range, as bitmap algebra over the per (event, day) and (stage, day) indices:
/// first-time cohorts are each day's starters minus everyone who started before. `None` when
/// the query or a segment does not qualify (then it is scanned).
pub(super) fn retention_from_bitmaps(op: &RetentionOp<'_>, input: &Input<'_>) -> Option<RetentionPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    if op.filter.is_some() || !utc || op.buckets.period == Period::Hour {
        return None;
    }
    if op
        .range
        .is_some_and(|(x, y)| !on_day_boundary(x) || !on_day_boundary(y))
    {
        return None;
    }
    let (cohorts, per_bucket) = &*shared(
        input,
        &format!(
            "retention {:?} {:?} {:?} {:?} {} {}",
            op.start,
            op.ret,
            op.cohorting,
            op.range,
            op.on_or_after,
            op.buckets.len()
        ),
        || unrestricted_cells(op, input),
    )?;
    let mut out: RetentionPartial = Default::default();
    for (&c, members) in cohorts {
        // The restriction, last: returners need none (they are only counted among members).
        let members = admitted(input, members);
        if members.is_empty() {
            continue;
        }
        let mut counts = vec![0u64; op.periods + 1];
        for (k, slot) in counts.iter_mut().enumerate() {
            if k == 0 && !op.zero_returns {
                *slot = members.len();
                if op.collect == Some((c, 0)) {
                    out.1 = members.clone().into_owned();
                }
            } else if let Some(r) = per_bucket.get(c + k) {
                *slot = members.intersection_len(r);
                if op.collect == Some((c, k)) {
                    out.1 = &*members & r;
                }
            }
        }
        out.0.insert(c, (members.len(), counts));
    }
    Some(out)
}

/// A bitmap retention's cohorts per bucket and returners per bucket (from each bucket on, for
/// ON_OR_AFTER), before the input's restriction.
type Cells = (
    BTreeMap<usize, roaring::RoaringBitmap>,
    Vec<roaring::RoaringBitmap>,
);

fn unrestricted_cells(op: &RetentionOp<'_>, input: &Input<'_>) -> Option<Cells> {
    use roaring::RoaringBitmap;
    // Starters and returners per day.
    let starts = step_days(&op.start, input)?;
    let rets = step_days(&op.ret, input)?;
    let bucket = |d: i32| op.buckets.index(model::first_instant_of_day(d));
    let in_range = |d: i32| {
        op.range
            .is_none_or(|(x, y)| x <= i64::from(d) * model::DAY_US && i64::from(d) * model::DAY_US < y)
    };
    // Cohorts.
    let mut cohorts: BTreeMap<usize, RoaringBitmap> = BTreeMap::new();
    let mut seen = RoaringBitmap::new();
    for (&d, b) in starts.iter() {
        let members = match op.cohorting {
            Cohorting::FirstTime => {
                let first = b - &seen;
                seen |= b;
                first
            }
            Cohorting::Recurring => b.clone(),
        };
        if members.is_empty() || !in_range(d) {
            continue;
        }
        *cohorts.entry(bucket(d)?).or_default() |= members;
    }
    // Returners per bucket, and (for ON_OR_AFTER) from each bucket on.
    let n = op.buckets.len();
    let mut per_bucket = vec![RoaringBitmap::new(); n];
    for (&d, b) in rets.iter() {
        if let Some(k) = bucket(d) {
            per_bucket[k] |= b;
        }
    }
    if op.on_or_after {
        for k in (0..n.saturating_sub(1)).rev() {
            let later = per_bucket[k + 1].clone();
            per_bucket[k] |= later;
        }
    }
    Some((cohorts, per_bucket))
}

/// What a CUSTOMERS drill-down wants from a retention query: cohort time, offset, LIMIT.
pub(super) type RetentionDrill<'q> = (&'q crate::query::ast::TimeLit, u32, Option<u64>);

/// Runs a RETENTION statement; with `drill`, lists the customers of one (cohort, period) cell.
pub(super) fn retention(
    retention: &crate::query::ast::Retention,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
    drill: Option<RetentionDrill<'_>>,
) -> Result<Table, QueryError> {
    evaluate(&RetentionOp::plan(retention, text, input, drill)?, input, opts)
}
