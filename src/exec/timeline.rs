//! TIMELINE: one customer's events in time order.
//!
//! Uses: `db`, `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `labels`, `operator`, `options`, `scan`.

use std::ops::Range;

use roaring::RoaringBitmap;

use crate::dict::Dicts;
use crate::exec::drive::evaluate;
use crate::exec::labels::{prop_cell, prop_label};
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::scan::passes;
use crate::model::{Columns, Stage};
use crate::plan::{CPred, Resolver};
use crate::result::{Cell, PROPERTIES_PREFIX, Table};
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

/// The customer's rows as result lines, and whether there were more than the cap.
#[derive(Default)]
struct TimelineRows {
    rows: Vec<Line>,
    over: bool,
}

/// One row of the answer before its property columns are laid out: time, event and stage, the
/// row's properties (name, typed value) sorted by name, and their text (`amount=12.5, …`), which
/// orders tied rows.
struct Line {
    cells: [Cell; 3],
    props: Vec<(String, Cell)>,
    text: String,
}

impl Line {
    fn new(cells: [Cell; 3], mut props: Vec<(String, Cell, String)>) -> Line {
        props.sort_by(|a, b| a.0.cmp(&b.0));
        let text = props
            .iter()
            .map(|(name, _, label)| format!("{name}={label}"))
            .collect::<Vec<_>>()
            .join(", ");
        Line {
            cells,
            props: props.into_iter().map(|(name, cell, _)| (name, cell)).collect(),
            text,
        }
    }

    /// The sort key: time, event name, stage in lifecycle order, properties.
    fn tie_order(&self) -> (i64, &str, Option<u8>, &str) {
        fn text(cell: &Cell) -> &str {
            match cell {
                Cell::Str(s) => s.as_str(),
                _ => "",
            }
        }
        let ts = match self.cells[0] {
            Cell::Time(ts) => ts,
            _ => i64::MIN,
        };
        let stage = Stage::ALL
            .iter()
            .find(|s| s.name() == text(&self.cells[2]))
            .map(|s| s.code());
        (ts, text(&self.cells[1]), stage, &self.text)
    }
}

/// The answer: columns `ts, event, stage`, then one column `properties.NAME` per property any
/// line has (by name), NULL where a line has none.
fn lay_out(lines: Vec<Line>) -> Table {
    let mut names: Vec<&str> = lines
        .iter()
        .flat_map(|line| line.props.iter().map(|(name, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut columns = vec!["ts".to_owned(), "event".to_owned(), "stage".to_owned()];
    columns.extend(names.iter().map(|name| format!("{PROPERTIES_PREFIX}{name}")));
    let rows = lines
        .iter()
        .map(|line| {
            let mut row = line.cells.to_vec();
            row.extend(names.iter().map(|name| {
                let found = line.props.binary_search_by(|(own, _)| own.as_str().cmp(name));
                found.map_or(Cell::Null, |at| line.props[at].1.clone())
            }));
            row
        })
        .collect();
    Table {
        columns,
        rows,
        warnings: Vec::new(),
    }
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

    /// Row `index` of `rows` as a result line: time, event, stage, properties.
    fn row(&self, rows: &Columns, index: usize) -> Line {
        let props = rows
            .props
            .iter()
            .filter(|column| column.valid[index])
            .map(|column| {
                let prop = Some((column.id, column.ty));
                (
                    self.dicts.props.name(column.id).unwrap_or("?").to_owned(),
                    prop_cell(rows, (column.id, column.ty), index, self.dicts),
                    prop_label(rows, prop, index, self.dicts),
                )
            })
            .collect();
        let event = self
            .dicts
            .events
            .name(rows.event[index])
            .unwrap_or("?")
            .to_owned();
        let stage =
            Stage::from_code(rows.stage[index]).map_or(Cell::Null, |s| Cell::Str(s.name().to_owned()));
        Line::new([Cell::Time(rows.ts[index]), Cell::Str(event), stage], props)
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

    fn reads_only(&self) -> Option<RoaringBitmap> {
        Some(self.customer.into_iter().collect())
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
                    .is_some_and(|last| last.cells[0] != Cell::Time(ts))
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
        partial
            .rows
            .iter()
            .map(|line| 4 * 48 + line.props.len() * 64)
            .sum()
    }

    fn finish(&self, partial: TimelineRows, _: &Input<'_>, opts: &QueryOptions) -> Result<Table, QueryError> {
        if partial.over {
            return Err(QueryError::TooManyRows(opts.rows_max));
        }
        let mut lines = partial.rows;
        // Tied events by content (docs/QUERY.md, "Tied events"): the lines are in time order,
        // and a stable sort on (time, event, stage, properties) only reorders ties.
        lines.sort_by(|a, b| a.tie_order().cmp(&b.tie_order()));
        if let Some(n) = self.limit {
            lines.truncate(n);
        }
        Ok(lay_out(lines))
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
    if let Some(known) = snapshot.links().known_of(cid) {
        let known = snapshot.dicts().customers.name(known).unwrap_or("?").to_owned();
        table.warnings.push(format!(
            "'{}' is linked to '{known}': its events are in TIMELINE '{known}'",
            tl.customer.0
        ));
        return Ok(table);
    }
    if admitted.is_some_and(|a| !a.contains(cid)) {
        return Ok(table);
    }
    let profiles = snapshot.profiles()?;
    let Some(row) = profiles.row_of(cid) else {
        return Ok(table);
    };
    let dicts = snapshot.dicts();
    let rows = &profiles.rows;
    let props = (rows.props.iter())
        .filter(|c| c.valid[row])
        .map(|c| {
            let name = dicts.props.name(c.id).unwrap_or("?").to_owned();
            let label = prop_label(rows, Some((c.id, c.ty)), row, &dicts);
            (name, prop_cell(rows, (c.id, c.ty), row, &dicts), label)
        })
        .collect();
    let mut lines = vec![Line::new(
        [Cell::Time(rows.ts[row]), Cell::Null, Cell::Null],
        props,
    )];
    lines.extend(lines_of(&table));
    let mut answer = lay_out(lines);
    answer.warnings = std::mem::take(&mut table.warnings);
    Ok(answer)
}

/// The lines of a laid-out answer (the inverse of [`lay_out`]; the text key is not needed
/// again).
fn lines_of(table: &Table) -> Vec<Line> {
    table
        .rows
        .iter()
        .map(|row| {
            let props = (table.columns.iter().zip(row).skip(3))
                .filter(|(_, cell)| **cell != Cell::Null)
                .filter_map(|(name, cell)| {
                    let name = name.strip_prefix(PROPERTIES_PREFIX)?;
                    Some((name.to_owned(), cell.clone(), String::new()))
                })
                .collect();
            let cell = |at: usize| row.get(at).cloned().unwrap_or(Cell::Null);
            Line::new([cell(0), cell(1), cell(2)], props)
        })
        .collect()
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
