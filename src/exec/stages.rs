//! STAGES: how many customers stand in each lifecycle stage at the end of each bucket, and how
//! many entered it in the bucket. Bucket-level: `FROM..TO` chooses the buckets reported.
//!
//! Uses: `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `operator`, `options`, `range`, `scan`.

use super::drive::evaluate;
use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::scan::columns;
use crate::exec::range::history_buckets;
use crate::model::{self, Columns, Stage};
use crate::plan::{Buckets, Resolver};
use crate::query::ast::{Period, Stages};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;

pub(super) struct StagesOp {
    buckets: Buckets,
    report: Range<usize>,
    /// UTC days or longer: the per-(stage, day) bitmaps answer.
    utc_days: bool,
}

impl StagesOp {
    /// Plans a STAGES statement on `input`.
    fn plan(st: &Stages, text: &str, input: &Input<'_>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, st.common.tz.as_ref())?;
        let range = res.range(&st.common.range)?;
        let (buckets, report) = history_buckets(input, range, st.period.starting(&st.common), &res.tz)?;
        let utc_days = res.tz == jiff::tz::TimeZone::UTC && st.period != Period::Hour;
        Ok(StagesOp {
            buckets,
            report,
            utc_days,
        })
    }
}

/// Per bucket and stage code: [active, change in "furthest stage so far"].
pub(super) type StagePartial = Vec<[[i64; 2]; 6]>;

impl Operator for StagesOp {
    type Partial = StagePartial;

    fn columns(&self) -> ColumnSet {
        columns(false)
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<StagePartial>, QueryError> {
        Ok(if self.utc_days {
            Prefilter::Answered(stages_from_bitmaps(input, &self.buckets, &self.report))
        } else {
            Prefilter::everyone()
        })
    }

    fn customer(&self, partial: &mut StagePartial, rows: &Columns, run: Range<usize>) {
        if partial.is_empty() {
            partial.resize(self.buckets.len() + 1, [[0; 2]; 6]);
        }
        let mut seen: Vec<(usize, u8)> = Vec::new();
        let mut furthest = 0u8;
        for i in run {
            let s = rows.stage[i];
            if s == 0 {
                continue;
            }
            let Some(b) = self.buckets.index(rows.ts[i]) else {
                continue;
            };
            seen.push((b, s));
            if s > furthest {
                // The furthest stage changes at bucket b (difference encoding, summed later).
                partial[b][furthest as usize][1] -= 1;
                partial[b][s as usize][1] += 1;
                furthest = s;
            }
        }
        seen.sort_unstable();
        seen.dedup();
        for (b, s) in seen {
            if self.report.contains(&b) {
                partial[b][s as usize][0] += 1;
            }
        }
    }

    fn footprint(&self, partial: &StagePartial) -> usize {
        partial.len() * 96
    }

    fn merge(&self, into: &mut StagePartial, from: StagePartial) {
        if into.is_empty() {
            *into = from;
            return;
        }
        for (x, y) in into.iter_mut().zip(from) {
            for s in 0..6 {
                x[s][0] += y[s][0];
                x[s][1] += y[s][1];
            }
        }
    }

    fn finish(
        &self,
        mut partial: StagePartial,
        _: &Input<'_>,
        _: &QueryOptions,
    ) -> Result<Table, QueryError> {
        partial.resize(self.buckets.len() + 1, [[0; 2]; 6]);
        let mut t = Table::new(&["bucket", "stage", "active", "furthest"]);
        let mut furthest = [0i64; 6];
        for (k, row) in partial.iter().enumerate().take(self.buckets.len()) {
            for s in 0..6 {
                furthest[s] += row[s][1];
            }
            if !self.report.contains(&k) {
                continue;
            }
            for stage in Stage::ALL {
                let s = stage.code() as usize;
                t.rows.push(vec![
                    Cell::Str(self.buckets.label(k)),
                    Cell::Str(stage.name().to_owned()),
                    Cell::Int(row[s][0]),
                    Cell::Int(furthest[s]),
                ]);
            }
        }
        Ok(t)
    }
}

/// STAGES from the (stage, UTC day) bitmaps alone: exact for UTC calendars.
pub(super) fn stages_from_bitmaps(
    input: &Input<'_>,
    buckets: &Buckets,
    report: &Range<usize>,
) -> StagePartial {
    let b = input.bitmaps;
    let mut p: StagePartial = vec![[[0; 2]; 6]; buckets.len() + 1];
    let mut reached: [RoaringBitmap; 6] = Default::default();
    let mut prev_counts = [0i64; 6];
    let first_day = model::day_of(buckets.starts[0]);
    // Everything before the first bucket counts towards "furthest so far".
    for ((s, day), x) in &b.stage_days {
        if *day < first_day && *s > 0 {
            reached[*s as usize] |= &**x;
        }
    }
    for (k, row) in p.iter_mut().enumerate().take(buckets.len()) {
        let (d0, d1) = (
            model::day_of(buckets.starts[k]),
            model::day_of(buckets.starts[k + 1] - 1),
        );
        for s in 1..6u8 {
            let mut active = RoaringBitmap::new();
            for day in d0..=d1 {
                if let Some(x) = b.stage_days.get(&(s, day)) {
                    active |= &**x;
                }
            }
            if report.contains(&k) {
                row[s as usize][0] = active.len() as i64;
            }
            reached[s as usize] |= &active;
        }
        // furthest == s  <=>  reached s and no higher stage.
        let mut higher = RoaringBitmap::new();
        for s in (1..6usize).rev() {
            let n = reached[s].difference_len(&higher) as i64;
            row[s][1] = n - prev_counts[s];
            prev_counts[s] = n;
            higher |= &reached[s];
        }
    }
    p
}

/// Runs a STAGES statement.
pub(super) fn stages(
    st: &Stages,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&StagesOp::plan(st, text, input)?, input, opts)
}
