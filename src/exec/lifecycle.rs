//! LIFECYCLE: per bucket, how many customers were new, returning, resurrecting or dormant.
//!
//! Bucket-level: `FROM..TO` chooses the buckets reported, and activity in a bucket counts every
//! event in it.
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `operator`, `options`, `prefilter`, `range`, `scan`.

use super::drive::evaluate;
use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::scan::{columns, passes};
use crate::dict::Dicts;
use crate::exec::range::{complete_buckets, history_buckets};
use crate::model::{self, Columns};
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ast::{Lifecycle, Period};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;

struct LifecycleOp<'a> {
    step: Matcher,
    filter: Option<CPred>,
    buckets: Buckets,
    report: Range<usize>,
    /// The statement's FROM..TO, which with the data's span decides the `complete` column.
    explicit: Option<(i64, i64)>,
    dicts: &'a Dicts,
}

impl<'a> LifecycleOp<'a> {
    /// Plans a LIFECYCLE statement on `input`.
    fn plan(lifecycle: &Lifecycle, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, lifecycle.common.tz.as_ref())?;
        let range = res.range(&lifecycle.common.range)?;
        let (buckets, report) = history_buckets(
            input,
            range,
            lifecycle.period.starting(&lifecycle.common),
            &res.tz,
        )?;
        Ok(LifecycleOp {
            step: res.step(&lifecycle.step)?,
            filter: lifecycle
                .common
                .filter
                .as_ref()
                .map(|p| res.pred(p))
                .transpose()?,
            explicit: range,
            buckets,
            report,
            dicts: input.dicts,
        })
    }
}

/// Per bucket: [new, returning, resurrecting, dormant].
type Counts4 = Vec<[i64; 4]>;

impl Operator for LifecycleOp<'_> {
    type Partial = Counts4;

    fn columns(&self) -> ColumnSet {
        columns(self.filter.is_some() || self.step.uses_props())
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<Counts4>, QueryError> {
        Ok(lifecycle_from_bitmaps(self, input).map_or_else(Prefilter::everyone, Prefilter::Answered))
    }

    fn customer(&self, partial: &mut Counts4, rows: &Columns, run: Range<usize>) {
        if partial.is_empty() {
            partial.resize(self.buckets.len() + 1, [0; 4]);
        }
        let mut active: Vec<usize> = run
            .filter(|&i| passes(&self.filter, rows, i, self.dicts) && self.step.matches(rows, i, self.dicts))
            .filter_map(|i| self.buckets.index(rows.ts[i]))
            .collect();
        active.sort_unstable();
        active.dedup();
        let Some(&first) = active.first() else { return };
        for (j, &b) in active.iter().enumerate() {
            if self.report.contains(&b) {
                let class = if b == first {
                    0
                } else if j > 0 && active[j - 1] + 1 == b {
                    1
                } else {
                    2
                };
                partial[b][class] += 1;
            }
            let next_active = active.get(j + 1) == Some(&(b + 1));
            if !next_active && self.report.contains(&(b + 1)) {
                partial[b + 1][3] -= 1;
            }
        }
    }

    fn footprint(&self, partial: &Counts4) -> usize {
        partial.len() * 32
    }

    fn merge(&self, into: &mut Counts4, from: Counts4) {
        if into.is_empty() {
            *into = from;
            return;
        }
        for (x, y) in into.iter_mut().zip(from) {
            for k in 0..4 {
                x[k] += y[k];
            }
        }
    }

    fn finish(&self, partial: Counts4, input: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        let mut t = Table::new(&[
            "bucket",
            "new",
            "returning",
            "resurrecting",
            "dormant",
            "complete",
        ]);
        let complete = complete_buckets(&self.buckets, self.explicit, input);
        for b in self.report.clone() {
            let c = partial.get(b).copied().unwrap_or([0; 4]);
            t.rows.push(vec![
                Cell::Str(self.buckets.label(b)),
                Cell::Int(c[0]),
                Cell::Int(c[1]),
                Cell::Int(c[2]),
                Cell::Int(c[3]),
                Cell::Bool(complete(b)),
            ]);
        }
        Ok(t)
    }
}

/// LIFECYCLE of event names or stages without a filter, in UTC buckets of a day or longer, as
/// bitmap algebra over the per-day indices: with A(b) the customers active in bucket b and S(b)
/// those active before b, new = A(b) − S(b), returning = A(b) ∩ A(b−1), resurrecting =
/// (A(b) − A(b−1)) ∩ S(b), dormant = −|A(b−1) − A(b)|. `None` when it does not qualify.
fn lifecycle_from_bitmaps(op: &LifecycleOp<'_>, input: &Input<'_>) -> Option<Counts4> {
    if op.filter.is_some() || op.buckets.tz != jiff::tz::TimeZone::UTC || op.buckets.period == Period::Hour {
        return None;
    }
    let n = op.buckets.len();
    let key = format!("lifecycle {:?} {:?} {n}", op.step, op.buckets.period);
    let unrestricted = super::prefilter::shared(input, &key, || {
        let mut active = vec![RoaringBitmap::new(); n];
        for (&d, b) in super::prefilter::step_days(&op.step, input)?.iter() {
            active[op.buckets.index(model::first_instant_of_day(d))?] |= b;
        }
        Some(active)
    })?;
    // The restriction applies to each bucket's actives: every count below is set algebra on them.
    let active: Vec<_> = (unrestricted.iter())
        .map(|customers| super::prefilter::admitted(input, customers))
        .collect();
    let mut out = vec![[0i64; 4]; n];
    let mut seen = RoaringBitmap::new();
    let empty = RoaringBitmap::new();
    for b in 0..n {
        let prev: &RoaringBitmap = if b > 0 { &active[b - 1] } else { &empty };
        if op.report.contains(&b) {
            let cur: &RoaringBitmap = &active[b];
            // Sizes only (no set built): prev ⊆ seen, so |(cur − prev) ∩ seen| =
            // |cur ∩ seen| − |cur ∩ prev|.
            let (with_seen, with_prev) = (cur.intersection_len(&seen), cur.intersection_len(prev));
            out[b] = [
                (cur.len() - with_seen) as i64,
                with_prev as i64,
                (with_seen - with_prev) as i64,
                -((prev.len() - with_prev) as i64),
            ];
        }
        seen |= &*active[b];
    }
    Some(out)
}

/// Runs a LIFECYCLE statement.
pub(super) fn lifecycle(
    lifecycle: &Lifecycle,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&LifecycleOp::plan(lifecycle, text, input)?, input, opts)
}
