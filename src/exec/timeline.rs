//! TIMELINE: one customer's events in time order.

use crate::compaction::Merge;
use crate::exec::labels::prop_label;
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::scan::passes;
use crate::limits;
use crate::model::{Columns, Stage};
use crate::plan::Resolver;
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

pub(super) fn timeline(
    tl: &crate::query::ast::Timeline,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, tl.common.tz.as_ref())?;
    let range = res.range(&tl.common.range)?;
    let filter = tl.common.filter.as_ref().map(|p| res.pred(p)).transpose()?;
    let mut t = Table::new(&["ts", "event", "stage", "properties"]);
    let Some(cid) = input.dicts.customers.get(&tl.customer.0) else {
        return Ok(t);
    };
    let mut merge = Merge::new(input.sources.clone(), ColumnSet::ALL).with_customers(cid, cid);
    let mut block = Columns::default();
    while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
        for i in 0..block.len() {
            let ts = block.ts[i];
            if range.is_some_and(|(lo, hi)| ts < lo || ts >= hi) || !passes(&filter, &block, i, input.dicts) {
                continue;
            }
            let mut props: Vec<String> = Vec::new();
            for c in &block.props {
                if c.valid[i] {
                    let name = input.dicts.props.name(c.id).unwrap_or("?");
                    props.push(format!(
                        "{name}={}",
                        prop_label(&block, Some((c.id, c.ty)), i, input.dicts)
                    ));
                }
            }
            props.sort();
            if t.rows.len() == opts.rows_max {
                return Err(QueryError::TooManyRows(opts.rows_max));
            }
            t.rows.push(vec![
                Cell::Time(ts),
                Cell::Str(input.dicts.events.name(block.event[i]).unwrap_or("?").to_owned()),
                Stage::from_code(block.stage[i]).map_or(Cell::Null, |s| Cell::Str(s.name().to_owned())),
                Cell::Str(props.join(", ")),
            ]);
        }
    }
    Ok(t)
}
