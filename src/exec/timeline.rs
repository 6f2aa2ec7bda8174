//! TIMELINE: one customer's events in time order.
//!
//! Uses: `db`, `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `labels`, `operator`, `options`, `scan`.

use std::ops::Range;

use roaring::RoaringBitmap;

use crate::dict::Dicts;
use crate::exec::labels::prop_label;
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::scan::{evaluate, passes};
use crate::model::{Columns, Stage};
use crate::plan::{CPred, Resolver};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

struct TimelineOp<'a> {
    /// The customer's id; `None` for a customer the database does not know (no rows).
    customer: Option<u32>,
    range: Option<(i64, i64)>,
    filter: Option<CPred>,
    rows_max: usize,
    /// `LIMIT n`.
    limit: Option<usize>,
    dicts: &'a Dicts,
}

/// The customer's rows as result rows, and whether there were more than the cap.
#[derive(Default)]
struct TimelineRows {
    rows: Vec<Vec<Cell>>,
    over: bool,
}

impl<'a> TimelineOp<'a> {
    /// Plans a TIMELINE statement on `input`.
    fn plan(
        tl: &crate::query::ast::Timeline,
        text: &str,
        input: &Input<'a>,
        opts: &QueryOptions,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, tl.common.tz.as_ref())?;
        Ok(TimelineOp {
            customer: input.dicts.customers.get(&tl.customer.0),
            range: res.range(&tl.common.range)?,
            filter: tl.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            rows_max: opts.rows_max,
            limit: tl.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            dicts: input.dicts,
        })
    }

    /// Row `index` of `rows` as a result row: time, event, stage, properties sorted by name.
    fn row(&self, rows: &Columns, index: usize) -> Vec<Cell> {
        let mut props: Vec<String> = Vec::new();
        for c in &rows.props {
            if c.valid[index] {
                let name = self.dicts.props.name(c.id).unwrap_or("?");
                props.push(format!(
                    "{name}={}",
                    prop_label(rows, Some((c.id, c.ty)), index, self.dicts)
                ));
            }
        }
        props.sort();
        vec![
            Cell::Time(rows.ts[index]),
            Cell::Str(
                self.dicts
                    .events
                    .name(rows.event[index])
                    .unwrap_or("?")
                    .to_owned(),
            ),
            Stage::from_code(rows.stage[index]).map_or(Cell::Null, |s| Cell::Str(s.name().to_owned())),
            Cell::Str(props.join(", ")),
        ]
    }
}

impl Operator for TimelineOp<'_> {
    type Partial = TimelineRows;

    fn columns(&self) -> ColumnSet {
        ColumnSet::ALL
    }

    /// Only the one customer is read (none when the database does not know it).
    fn prefilter(&self, _: &Input<'_>) -> Result<Prefilter<TimelineRows>, QueryError> {
        Ok(match self.customer {
            Some(cid) => Prefilter::only(Some(RoaringBitmap::from_iter([cid]))),
            None => Prefilter::Answered(TimelineRows::default()),
        })
    }

    fn customer(&self, partial: &mut TimelineRows, rows: &Columns, run: Range<usize>) {
        for i in run {
            let ts = rows.ts[i];
            if self.range.is_some_and(|(lo, hi)| ts < lo || ts >= hi)
                || !passes(&self.filter, rows, i, self.dicts)
            {
                continue;
            }
            // With LIMIT n: rows come in time order, so once n are kept, a later instant's
            // rows cannot be among the first n (ties are ordered among themselves in `finish`).
            if self.limit.is_some_and(|n| partial.rows.len() >= n)
                && partial
                    .rows
                    .last()
                    .is_some_and(|last| last.first() != Some(&Cell::Time(ts)))
            {
                return;
            }
            if partial.rows.len() == self.rows_max {
                partial.over = true;
                return;
            }
            partial.rows.push(self.row(rows, i));
        }
    }

    fn merge(&self, into: &mut TimelineRows, from: TimelineRows) {
        into.over |= from.over;
        into.rows.extend(from.rows);
    }

    fn footprint(&self, partial: &TimelineRows) -> usize {
        partial.rows.len() * 4 * 48
    }

    fn finish(&self, partial: TimelineRows, _: &Input<'_>, opts: &QueryOptions) -> Result<Table, QueryError> {
        if partial.over {
            return Err(QueryError::TooManyRows(opts.rows_max));
        }
        let mut t = Table::new(&["ts", "event", "stage", "properties"]);
        t.rows = partial.rows;
        // Tied events by content (docs/QUERY.md, "Tied events"): the rows are in time order,
        // and a stable sort on (time, event, stage, properties) only reorders ties.
        t.rows.sort_by(|a, b| tie_order(a).cmp(&tie_order(b)));
        if let Some(n) = self.limit {
            t.rows.truncate(n);
        }
        Ok(t)
    }
}

/// A TIMELINE answer with the customer's profile above the events (when `stmt` is a TIMELINE
/// of a customer with profile writes whom `admitted` admits): a first row with the latest
/// profile write's time, no event and no stage, and the latest value of every `customer.NAME`
/// property. Any other answer is returned as it is.
pub(super) fn with_profile(
    stmt: &crate::query::ast::Statement,
    mut table: Table,
    snapshot: &crate::db::Snapshot,
    admitted: Option<&RoaringBitmap>,
) -> Result<Table, QueryError> {
    let crate::query::ast::Statement::Timeline(tl) = stmt else {
        return Ok(table);
    };
    let Some(cid) = snapshot.customer_id(&tl.customer.0) else {
        return Ok(table);
    };
    if admitted.is_some_and(|a| !a.contains(cid)) {
        return Ok(table);
    }
    let profiles = snapshot.profiles()?;
    let Some(row) = profiles.row_of(cid) else {
        return Ok(table);
    };
    let dicts = snapshot.dicts();
    let rows = &profiles.rows;
    let mut props: Vec<String> = (rows.props.iter())
        .filter(|c| c.valid[row])
        .map(|c| {
            let name = dicts.props.name(c.id).unwrap_or("?");
            format!("{name}={}", prop_label(rows, Some((c.id, c.ty)), row, &dicts))
        })
        .collect();
    props.sort();
    let first = vec![
        Cell::Time(rows.ts[row]),
        Cell::Null,
        Cell::Null,
        Cell::Str(props.join(", ")),
    ];
    table.rows.insert(0, first);
    Ok(table)
}

/// The sort key of a TIMELINE row: time, event name, stage in lifecycle order, properties.
fn tie_order(row: &[Cell]) -> (i64, &str, Option<u8>, &str) {
    fn text(cell: Option<&Cell>) -> &str {
        match cell {
            Some(Cell::Str(s)) => s.as_str(),
            _ => "",
        }
    }
    let ts = match row.first() {
        Some(Cell::Time(ts)) => *ts,
        _ => i64::MIN,
    };
    let stage = Stage::ALL
        .iter()
        .find(|s| s.name() == text(row.get(2)))
        .map(|s| s.code());
    (ts, text(row.get(1)), stage, text(row.get(3)))
}

/// Runs a TIMELINE statement.
pub(super) fn timeline(
    tl: &crate::query::ast::Timeline,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&TimelineOp::plan(tl, text, input, opts)?, input, opts)
}
