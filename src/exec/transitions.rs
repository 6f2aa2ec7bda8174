//! TRANSITIONS: how customers move from one lifecycle stage to another in the range.
//!
//! Uses: `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `median`, `operator`, `options`, `scan`, `ties`.

use super::drive::evaluate;
use super::operator::Operator;
use super::options::{Input, QueryError, QueryOptions};
use super::scan::columns;
use super::ties::tie_groups;
use crate::model::{Columns, Stage};
use crate::plan::Resolver;
use crate::query::ast::Transitions;
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use std::ops::Range;

pub(super) struct TransitionsOp {
    range: Option<(i64, i64)>,
    within: Option<i64>,
}

impl TransitionsOp {
    /// Plans a TRANSITIONS statement on `input`.
    fn plan(tr: &Transitions, text: &str, input: &Input<'_>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, None)?;
        Ok(TransitionsOp {
            range: res.range(&tr.common.range)?,
            within: tr.within_us,
        })
    }
}

/// Times (µs) of each transition (from stage code, 0 = none; to stage code), and how many
/// customers ended (as of TO) at each furthest stage.
#[derive(Default)]
pub(super) struct TransitionPartial {
    moves: std::collections::BTreeMap<(u8, u8), Vec<i64>>,
    stayed: [i64; 6],
}

impl Operator for TransitionsOp {
    type Partial = TransitionPartial;

    fn columns(&self) -> ColumnSet {
        columns(false)
    }

    fn customer(&self, partial: &mut TransitionPartial, rows: &Columns, run: Range<usize>) {
        let mut furthest = 0u8;
        let mut since = i64::MIN;
        for group in tie_groups(rows, run) {
            let t = rows.ts[group.start];
            if self.range.is_some_and(|(_, hi)| t >= hi) {
                break;
            }
            // Tied events advance in lifecycle order (docs/QUERY.md, "Tied events"): the set
            // of stages at this instant, walked upwards from the furthest stage.
            let stages = group.fold(0u32, |acc, i| {
                acc | 1u32.checked_shl(u32::from(rows.stage[i])).unwrap_or(0)
            });
            let mut ahead = stages & !((2u32 << furthest) - 1);
            while ahead != 0 {
                let s = ahead.trailing_zeros() as u8;
                ahead &= ahead - 1;
                let in_range = self.range.is_none_or(|(lo, _)| t >= lo);
                // Saturating: a wait longer than i64 microseconds exceeds every WITHIN.
                let waited = if furthest == 0 { 0 } else { t.saturating_sub(since) };
                if in_range && self.within.is_none_or(|w| waited <= w) {
                    partial.moves.entry((furthest, s)).or_default().push(waited);
                }
                furthest = s;
                since = t;
            }
        }
        if furthest > 0 {
            partial.stayed[furthest as usize] += 1;
        }
    }

    fn footprint(&self, partial: &TransitionPartial) -> usize {
        partial.moves.values().map(|v| 64 + v.len() * 8).sum()
    }

    fn merge(&self, into: &mut TransitionPartial, from: TransitionPartial) {
        for (k, v) in from.moves {
            into.moves.entry(k).or_default().extend(v);
        }
        for s in 0..6 {
            into.stayed[s] += from.stayed[s];
        }
    }

    fn finish(
        &self,
        mut partial: TransitionPartial,
        _: &Input<'_>,
        _: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let mut t = Table::new(&["from_stage", "to_stage", "customers", "median_time_s"]);
        for ((from, to), times) in &mut partial.moves {
            let (median, _) = super::median::median_mean(times);
            let median = if *from == 0 { Cell::Null } else { median };
            t.rows.push(vec![
                Cell::Str(stage_label(*from)),
                Cell::Str(stage_label(*to)),
                Cell::Int(times.len() as i64),
                median,
            ]);
        }
        for stage in Stage::ALL {
            let n = partial.stayed[stage.code() as usize];
            t.rows.push(vec![
                Cell::Str(stage.name().to_owned()),
                Cell::Str("(stayed)".into()),
                Cell::Int(n),
                Cell::Null,
            ]);
        }
        Ok(t)
    }
}

pub(super) fn stage_label(code: u8) -> String {
    Stage::from_code(code).map_or_else(|| "(none)".to_owned(), |s| s.name().to_owned())
}

/// Runs a TRANSITIONS statement.
pub(super) fn transitions(
    tr: &Transitions,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&TransitionsOp::plan(tr, text, input)?, input, opts)
}
