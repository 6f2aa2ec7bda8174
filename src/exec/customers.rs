//! CUSTOMERS: the list of customers in a stage, a funnel step or a retention cell.
//!
//! Uses: `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `funnel`, `labels`, `operator`, `options`, `range`, `retention`, `rfm`, `scan`.

use crate::exec::drive::evaluate;
use crate::exec::funnel::funnel;
use crate::exec::labels::customer_table;
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::range::on_day_boundary;
use crate::exec::retention::retention;
use crate::exec::scan::columns;
use crate::model;
use crate::model::Columns;
use crate::plan::Resolver;
use crate::result::Table;
use crate::segment::ColumnSet;
use std::ops::Range;

/// Customers with an event of `stage` in the range.
pub(super) struct StageCustomersOp {
    stage: u8,
    range: Option<(i64, i64)>,
    limit: Option<u64>,
}

impl StageCustomersOp {
    /// Plans `CUSTOMERS IN STAGE s` on `input`.
    fn plan(
        stage: crate::model::Stage,
        common: &crate::query::ast::Common,
        limit: Option<u64>,
        text: &str,
        input: &Input<'_>,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, None)?;
        Ok(StageCustomersOp {
            stage: stage.code(),
            range: res.range(&common.range)?,
            limit,
        })
    }
}

impl Operator for StageCustomersOp {
    type Partial = roaring::RoaringBitmap;

    fn columns(&self) -> ColumnSet {
        columns(false)
    }

    /// Straight from the bitmaps: the stage bitmap, or (stage, UTC day) bitmaps when the range
    /// is whole UTC days; otherwise the stage's customers are scanned.
    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<roaring::RoaringBitmap>, QueryError> {
        let stage = roaring::RoaringBitmap::clone(&input.bitmaps.stages[self.stage as usize]);
        Ok(match self.range {
            None => Prefilter::Answered(stage),
            Some((lo, hi)) if on_day_boundary(lo) && on_day_boundary(hi) => {
                let mut u = roaring::RoaringBitmap::new();
                for day in model::day_of(lo)..model::day_of(hi) {
                    if let Some(x) = input.bitmaps.stage_days.get(&(self.stage, day)) {
                        u |= &**x;
                    }
                }
                Prefilter::Answered(u)
            }
            Some(_) => Prefilter::only(Some(stage)),
        })
    }

    fn customer(&self, partial: &mut roaring::RoaringBitmap, rows: &Columns, run: Range<usize>) {
        let cid = rows.cid[run.start];
        let hit = run.into_iter().any(|i| {
            rows.stage[i] == self.stage
                && self
                    .range
                    .is_none_or(|(lo, hi)| lo <= rows.ts[i] && rows.ts[i] < hi)
        });
        if hit {
            partial.insert(cid);
        }
    }

    fn footprint(&self, _: &roaring::RoaringBitmap) -> usize {
        // At most customers / 8 bytes plus container headers: never more than the index holds.
        0
    }

    fn merge(&self, into: &mut roaring::RoaringBitmap, from: roaring::RoaringBitmap) {
        *into |= from;
    }

    fn finish(
        &self,
        set: roaring::RoaringBitmap,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        Ok(customer_table(&set, input.dicts, self.limit, opts.rows_max))
    }
}

/// Runs a CUSTOMERS statement: a drill-down into a funnel step, a retention cell or a stage.
pub(super) fn customers(
    customers: &crate::query::ast::Customers,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    use crate::query::ast::Drill;
    match &customers.drill {
        Drill::Funnel {
            funnel: f,
            step,
            dropped,
        } => funnel(f, text, input, opts, Some((*step, *dropped, customers.limit))),
        Drill::Retention {
            retention: r,
            cohort,
            period,
        } => retention(r, text, input, opts, Some((cohort, *period, customers.limit))),
        Drill::Stage { stage, common } => evaluate(
            &StageCustomersOp::plan(*stage, common, customers.limit, text, input)?,
            input,
            opts,
        ),
        Drill::Rfm { rfm, segment } => {
            let members = super::rfm::segment_members(rfm, &segment.0, text, input, opts)?;
            Ok(customer_table(
                &members,
                input.dicts,
                customers.limit,
                opts.rows_max,
            ))
        }
        Drill::Paths { .. } => {
            super::paths::path_customers(&customers.drill, customers.limit, text, input, opts)
        }
        Drill::Correlate { .. } => {
            super::correlate::correlate_customers(&customers.drill, customers.limit, text, input, opts)
        }
        Drill::Predict { predict, conditions } => {
            let members = super::predict::predicted_members(predict, conditions, text, input, opts)?;
            let limit = customers.limit.or(predict.limit);
            Ok(customer_table(&members, input.dicts, limit, opts.rows_max))
        }
        // Answered by `run_on`, which has the snapshot's cohorts.
        Drill::Cohort((name, span)) => Err(crate::query::ParseError::new(
            *span,
            format!("CUSTOMERS IN COHORT {name} needs the snapshot's cohorts"),
        )
        .into()),
    }
}
