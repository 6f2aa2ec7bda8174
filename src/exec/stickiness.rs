//! STICKINESS: how many customers were active on exactly n days (or weeks, …) of the range.
//! It counts events inside `FROM..TO` only.
//!
//! Uses: `dict`, `limits`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `operator`, `options`, `prefilter`, `range`, `scan`.

use super::drive::evaluate;
use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::scan::{columns, passes};
use crate::dict::Dicts;
use crate::limits;
use crate::model::{self, Columns};
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ast::{Period, Stickiness};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;

pub(super) struct StickinessOp<'a> {
    step: Matcher,
    filter: Option<CPred>,
    buckets: Buckets,
    range: (i64, i64),
    min: u32,
    cumulative: bool,
    dicts: &'a Dicts,
}

impl<'a> StickinessOp<'a> {
    /// Plans a STICKINESS statement on `input`.
    pub(super) fn plan(st: &Stickiness, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, st.common.tz.as_ref())?;
        let range = super::range::data_range(input, res.range(&st.common.range)?);
        let buckets = Buckets::new(
            range.0,
            range.1,
            0,
            st.period.starting(&st.common),
            &res.tz,
            limits::BUCKETS_MAX,
        )
        .map_err(|m| ParseError::new(Span::default(), m))?;
        Ok(StickinessOp {
            step: res.step(&st.step)?,
            filter: st.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            buckets,
            range,
            min: st.min,
            cumulative: st.cumulative,
            dicts: input.dicts,
        })
    }
}

impl Operator for StickinessOp<'_> {
    /// customers[d] = customers active in exactly d buckets.
    type Partial = Vec<i64>;

    fn columns(&self) -> ColumnSet {
        columns(self.filter.is_some() || self.step.uses_props())
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<Vec<i64>>, QueryError> {
        Ok(stickiness_from_bitmaps(self, input).map_or_else(Prefilter::everyone, Prefilter::Answered))
    }

    fn customer(&self, partial: &mut Vec<i64>, rows: &Columns, run: Range<usize>) {
        if partial.is_empty() {
            partial.resize(self.buckets.len() + 1, 0);
        }
        let mut hits: Vec<usize> = run
            .filter(|&i| {
                let ts = rows.ts[i];
                self.range.0 <= ts
                    && ts < self.range.1
                    && passes(&self.filter, rows, i, self.dicts)
                    && self.step.matches(rows, i, self.dicts)
            })
            .filter_map(|i| self.buckets.index(rows.ts[i]))
            .collect();
        hits.sort_unstable();
        let mut active = 0usize;
        let mut i = 0;
        while i < hits.len() {
            let mut j = i;
            while j < hits.len() && hits[j] == hits[i] {
                j += 1;
            }
            if (j - i) as u64 >= u64::from(self.min) {
                active += 1;
            }
            i = j;
        }
        if active > 0 {
            partial[active] += 1;
        }
    }

    fn footprint(&self, partial: &Vec<i64>) -> usize {
        partial.len() * 8
    }

    fn merge(&self, into: &mut Vec<i64>, from: Vec<i64>) {
        if into.is_empty() {
            *into = from;
            return;
        }
        for (x, y) in into.iter_mut().zip(from) {
            *x += y;
        }
    }

    fn finish(&self, partial: Vec<i64>, _: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        let n = self.buckets.len();
        let mut t = Table::new(&["buckets", "customers"]);
        let exact = |d: usize| partial.get(d).copied().unwrap_or(0);
        for d in 1..=n {
            let v = if self.cumulative {
                (d..=n).map(exact).sum()
            } else {
                exact(d)
            };
            t.rows.push(vec![Cell::Int(d as i64), Cell::Int(v)]);
        }
        Ok(t)
    }
}

/// STICKINESS (MIN 1) of event names or stages without a filter, in UTC days or weeks over
/// whole days: each bucket's active customers from the per-day indices, counted per customer.
pub(super) fn stickiness_from_bitmaps(op: &StickinessOp<'_>, input: &Input<'_>) -> Option<Vec<i64>> {
    if op.filter.is_some()
        || op.min != 1
        || op.buckets.tz != jiff::tz::TimeZone::UTC
        || op.buckets.period == Period::Hour
    {
        return None;
    }
    let (lo, hi) = op.range;
    if !super::range::whole_days(input, (lo, hi)) {
        return None;
    }
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    let n = op.buckets.len();
    let key = format!("stickiness {:?} {:?} {n} {d0} {d1}", op.step, op.buckets.period);
    // Each customer's active buckets, before the restriction (a count per customer: the
    // restriction then picks whose counts the histogram reads).
    let per_customer = super::prefilter::shared(input, &key, || {
        let mut active = vec![RoaringBitmap::new(); n];
        for (&d, b) in super::prefilter::step_days(&op.step, input)?.iter() {
            if d < d0 || d > d1 {
                continue;
            }
            active[op.buckets.index(model::first_instant_of_day(d))?] |= b;
        }
        let mut per_customer = vec![0u32; input.customers as usize];
        for b in &active {
            for c in b {
                *per_customer.get_mut(c as usize)? += 1;
            }
        }
        Some(per_customer)
    })?;
    let mut out = vec![0i64; n + 1];
    let mut count = |k: u32| {
        if k > 0 {
            *out.get_mut(k as usize)? += 1;
        }
        Some(())
    };
    match &input.restriction {
        Some(restriction) => {
            for c in restriction.admitted.iter() {
                count(per_customer.get(c as usize).copied().unwrap_or(0))?;
            }
        }
        None => {
            for &k in per_customer.iter() {
                count(k)?;
            }
        }
    }
    Some(out)
}

/// Runs a STICKINESS statement.
pub(super) fn stickiness(
    st: &Stickiness,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&StickinessOp::plan(st, text, input)?, input, opts)
}
