//! CUSTOMERS: the list of customers in a stage, a funnel step or a retention cell.

use crate::exec::funnel::funnel;
use crate::exec::labels::customer_table;
use crate::exec::operator::Operator;
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::range::on_day_boundary;
use crate::exec::retention::retention;
use crate::exec::scan::{columns, run_filtered};
use crate::model;
use crate::model::Columns;
use crate::plan::Resolver;
use crate::result::Table;
use std::ops::Range;

/// Customers with an event of `stage` in the range.
pub(super) struct StageCustomersOp {
    stage: u8,
    range: Option<(i64, i64)>,
}

impl Operator for StageCustomersOp {
    type Partial = roaring::RoaringBitmap;

    fn customer(&self, p: &mut roaring::RoaringBitmap, rows: &Columns, r: Range<usize>) {
        let cid = rows.cid[r.start];
        let hit = r.into_iter().any(|i| {
            rows.stage[i] == self.stage
                && self
                    .range
                    .is_none_or(|(lo, hi)| lo <= rows.ts[i] && rows.ts[i] < hi)
        });
        if hit {
            p.insert(cid);
        }
    }

    fn footprint(&self, _: &roaring::RoaringBitmap) -> usize {
        // At most customers / 8 bytes plus container headers: never more than the index holds.
        0
    }

    fn merge(&self, a: &mut roaring::RoaringBitmap, b: roaring::RoaringBitmap) {
        *a |= b;
    }
}

pub(super) fn customers(
    c: &crate::query::ast::Customers,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    use crate::query::ast::Drill;
    match &c.drill {
        Drill::Funnel {
            funnel: f,
            step,
            dropped,
        } => funnel(f, text, input, opts, Some((*step, *dropped, c.limit))),
        Drill::Retention {
            retention: r,
            cohort,
            period,
        } => retention(r, text, input, opts, Some((cohort, *period, c.limit))),
        Drill::Stage { stage, common } => {
            let res = Resolver::new(input.dicts, text, None)?;
            let range = res.range(&common.range)?;
            let code = stage.code();
            let set = match range {
                // Straight from the bitmaps: the stage bitmap, or (stage, UTC day) bitmaps when
                // the range is whole UTC days.
                None => input.bitmaps.stages[code as usize].clone(),
                Some((lo, hi)) if on_day_boundary(lo) && on_day_boundary(hi) => {
                    let mut u = roaring::RoaringBitmap::new();
                    for day in model::day_of(lo)..model::day_of(hi) {
                        if let Some(x) = input.bitmaps.stage_days.get(&(code, day)) {
                            u |= x;
                        }
                    }
                    u
                }
                Some(_) => {
                    let op = StageCustomersOp { stage: code, range };
                    let only = Some(input.bitmaps.stages[code as usize].clone());
                    run_filtered(&op, input, columns(false), opts, only)?
                }
            };
            Ok(customer_table(&set, input.dicts, c.limit, opts.rows_max))
        }
    }
}
