//! EXPLAIN of a funnel: why one customer did or did not convert, step by step.
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `funnel`, `labels`, `operator`, `options`, `scan`.

use std::ops::Range;

use roaring::RoaringBitmap;

use crate::dict::Dicts;
use crate::exec::drive::evaluate;
use crate::exec::funnel::scope::Scope;
use crate::exec::funnel::{FunnelOp, FunnelOutcome, Scratch};
use crate::exec::labels::ts_text;
use crate::exec::operator::{Operator, Prefilter, rows_footprint};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::model::Columns;
use crate::plan::Resolver;
use crate::query::ParseError;
use crate::query::ast::FunnelMode;
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

/// Why `op` stops before step `missed` (1-based) for this customer (events `idx` of `rows`).
pub(in crate::internals::exec) fn why_not(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    outcome: &FunnelOutcome,
    missed: usize,
    dicts: &Dicts,
) -> String {
    let step = &op.steps[missed - 1];
    let name = |i: usize| dicts.events.name(rows.event[i]).unwrap_or("?").to_owned();
    let matching: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| step.matches(rows, i, dicts))
        .collect();
    if missed == 1 {
        return if matching.is_empty() {
            format!("no event matches `{}`", step.label)
        } else if op.first[0] {
            format!(
                "the customer's first `{}` is at {}, outside FROM .. TO",
                step.label,
                ts_text(rows.ts[matching[0]])
            )
        } else {
            format!(
                "no `{}` event in FROM .. TO (first one at {})",
                step.label,
                ts_text(rows.ts[matching[0]])
            )
        };
    }
    if matching.is_empty() {
        return format!("no event matches `{}`", step.label);
    }
    let prev_at = outcome.at[missed - 1].unwrap_or(0);
    let start = rows.ts[prev_at] - outcome.times[missed - 1].unwrap_or(0);
    // "After" in the engine's event order: `idx` has ties ordered by their tie keys (row
    // positions would make the answer depend on the order rows were written in).
    let after_prev = idx
        .iter()
        .position(|&i| i == prev_at)
        .map_or(&[][..], |at| &idx[at + 1..]);
    let next_after = after_prev.iter().copied().find(|&i| step.matches(rows, i, dicts));
    let unbounded = FunnelOp {
        within: i64::MAX,
        session: None,
        ..op.clone()
    };
    if level(&unbounded, rows, idx) >= missed {
        let when = next_after.map_or(String::new(), |i| {
            format!("; the next `{}` is at {}", step.label, ts_text(rows.ts[i]))
        });
        if op.session.is_some() {
            let sessions = op.sessions(rows, idx);
            let at = sessions.partition_point(|span| span.0 <= start);
            let end = sessions.get(at.wrapping_sub(1)).map_or(start, |span| span.1);
            return format!(
                "session ended at {} (chain started {}){when}",
                ts_text(end),
                ts_text(start)
            );
        }
        return format!(
            "window expired at {} (chain started {}){when}",
            ts_text(start.saturating_add(op.within)),
            ts_text(start)
        );
    }
    // A strict funnel that an ordered one completes: something came between the steps.
    let ordered = || FunnelOp {
        mode: FunnelMode::Ordered,
        ..op.clone()
    };
    if op.mode == FunnelMode::Strict && level(&ordered(), rows, idx) >= missed {
        let between = after_prev.first().copied();
        return match between {
            Some(i) => format!("strict order broken by `{}` at {}", name(i), ts_text(rows.ts[i])),
            None => "strict order broken".into(),
        };
    }
    if let Some(why) = first_or_held(op, rows, idx, missed) {
        return why;
    }
    if let Some(why) = excluded(op, rows, idx, missed, start, dicts) {
        return why;
    }
    if let Some(why) = tied(op, rows, idx, (&matching, prev_at), missed) {
        return why;
    }
    match next_after {
        None => format!(
            "`{}` happens only before step {} was reached",
            step.label,
            missed - 1
        ),
        Some(_) => format!("no chain reaches step {missed} under these rules"),
    }
}

/// The customer's outcome level under `op`'s rules with `variant`'s changes.
fn level(variant: &FunnelOp<'_>, rows: &Columns, idx: &[usize]) -> usize {
    variant.outcome(rows, idx, &mut Scratch::default()).level
}

/// When only FIRST steps or HOLDING keep step `missed` from being reached: which.
fn first_or_held(op: &FunnelOp<'_>, rows: &Columns, idx: &[usize], missed: usize) -> Option<String> {
    // The first FIRST step whose relaxing alone lets the customer reach step m.
    for k in (0..missed).filter(|&k| op.first[k]) {
        let mut any = op.clone();
        any.first[k] = false;
        if level(&any, rows, idx) >= missed {
            let label = op.steps[k].label.trim_start_matches("FIRST ");
            return Some(format!(
                "only the customer's first `{label}` can fill step {} (FIRST), and no chain from it reaches step {missed}",
                k + 1
            ));
        }
    }
    let holding = op.holding.as_ref()?;
    let free = FunnelOp {
        holding: None,
        ..op.clone()
    };
    (level(&free, rows, idx) >= missed).then(|| {
        let name = op.dicts.props.name(holding.prop).unwrap_or("?");
        format!("no chain to step {missed} keeps `{name}` the same on every step (HOLDING)")
    })
}

/// When only an exclusion keeps step `missed` from being reached: the excluded event inside the
/// chain that started at `start`.
fn excluded(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    missed: usize,
    start: i64,
    dicts: &Dicts,
) -> Option<String> {
    if op.excludes.is_empty() {
        return None;
    }
    let free = FunnelOp {
        excludes: Vec::new(),
        caps: vec![op.steps.len()],
        ..op.clone()
    };
    if level(&free, rows, idx) < missed {
        return None;
    }
    // From the chain's first event on, in the engine's event order (ties by their keys).
    let first = op.steps.first();
    let from = idx
        .iter()
        .position(|&i| rows.ts[i] == start && first.is_some_and(|step| step.matches(rows, i, dicts)))
        .or_else(|| idx.iter().position(|&i| rows.ts[i] >= start))
        .unwrap_or(idx.len());
    let hit = idx[from..]
        .iter()
        .copied()
        .find(|&i| op.excludes.iter().any(|(x, _, _)| x.matches(rows, i, dicts)));
    Some(match hit {
        Some(i) => format!(
            "excluded event `{}` at {} lies inside the chain",
            dicts.events.name(rows.event[i]).unwrap_or("?"),
            ts_text(rows.ts[i])
        ),
        None => "an excluded event lies inside the chain".into(),
    })
}

/// When only `TIES STRICT` keeps step `missed` from being reached: the step's event (of
/// `matching`) tied with step `m - 1`'s (at row `prev_at`).
fn tied(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    (matching, prev_at): (&[usize], usize),
    missed: usize,
) -> Option<String> {
    if !op.ties_strict {
        return None;
    }
    let relaxed = FunnelOp {
        ties_strict: false,
        ..op.clone()
    };
    if level(&relaxed, rows, idx) < missed {
        return None;
    }
    let step = &op.steps[missed - 1];
    let tie = matching.iter().copied().find(|&i| rows.ts[i] == rows.ts[prev_at]);
    Some(match tie {
        Some(i) => format!(
            "tie policy: `{}` at {} has the same timestamp as step {} (TIES STRICT)",
            step.label,
            ts_text(rows.ts[i]),
            missed - 1
        ),
        None => "tie policy (TIES STRICT) forbids equal timestamps".into(),
    })
}

/// EXPLAIN: the funnel's steps for one customer.
struct ExplainOp<'a> {
    funnel: FunnelOp<'a>,
    customer: u32,
}

impl<'a> ExplainOp<'a> {
    /// Plans `EXPLAIN FUNNEL … FOR CUSTOMER c` on `input`.
    fn plan(explain: &crate::query::ast::Explain, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let f = &explain.funnel;
        if f.mode == FunnelMode::Unordered {
            return Err(
                ParseError::new(explain.customer.1, "EXPLAIN supports ORDERED and STRICT funnels").into(),
            );
        }
        let res = Resolver::new(input.dicts, text, f.common.tz.as_ref())?;
        let funnel = FunnelOp::resolve(f, &res, input)?;
        let Some(customer) = input.dicts.customers.get(&explain.customer.0) else {
            return Err(ParseError::new(
                explain.customer.1,
                format!("unknown customer '{}'", explain.customer.0),
            )
            .into());
        };
        Ok(ExplainOp { funnel, customer })
    }

    /// The table row of step `step` (1-based) of the customer's `rows` (events `idx` pass WHERE).
    fn step_row(
        &self,
        step: usize,
        rows: &Columns,
        idx: &[usize],
        outcome: &FunnelOutcome,
        dicts: &Dicts,
    ) -> Vec<Cell> {
        let label = Cell::Str(self.funnel.steps[step - 1].label.clone());
        let deepest = outcome.level;
        if step == 1 && deepest >= 2 {
            // Step 1 of the chain that first completed the deepest reached step (the chain
            // time to convert measures), so that `at` here plus that step's time_from_start is
            // its `at`; the customer's earliest step-1 event may start an earlier chain that
            // went nowhere.
            let last = outcome.at[deepest].unwrap_or(0);
            let since = outcome.times[deepest].unwrap_or(0);
            return vec![
                Cell::Int(1),
                label,
                Cell::Str("reached".into()),
                Cell::Time(rows.ts[last].saturating_sub(since)),
                Cell::Float(0.0),
                Cell::Str(format!("starts the chain that first completed step {deepest}")),
            ];
        }
        if step <= outcome.level {
            let at = outcome.at[step].unwrap_or(0);
            return vec![
                Cell::Int(step as i64),
                label,
                Cell::Str("reached".into()),
                Cell::Time(rows.ts[at]),
                outcome.times[step].map_or(Cell::Null, |x| Cell::Float(x as f64 / 1e6)),
                Cell::Str(format!(
                    "first completed by `{}`",
                    dicts.events.name(rows.event[at]).unwrap_or("?")
                )),
            ];
        }
        let reason = if step == outcome.level + 1 {
            why_not(&self.funnel, rows, idx, outcome, step, dicts)
        } else {
            format!("step {} was not reached", step - 1)
        };
        vec![
            Cell::Int(step as i64),
            label,
            Cell::Str("not reached".into()),
            Cell::Null,
            Cell::Null,
            Cell::Str(reason),
        ]
    }
}

impl Operator for ExplainOp<'_> {
    /// The customer's rows.
    type Partial = Columns;

    fn columns(&self) -> ColumnSet {
        ColumnSet::ALL
    }

    /// Only the one customer is read.
    fn reads_only(&self) -> Option<RoaringBitmap> {
        Some(RoaringBitmap::from_iter([self.customer]))
    }

    fn prefilter(&self, _: &Input<'_>) -> Result<Prefilter<Columns>, QueryError> {
        Ok(Prefilter::only(Some(RoaringBitmap::from_iter([self.customer]))))
    }

    fn customer(&self, partial: &mut Columns, rows: &Columns, run: Range<usize>) {
        partial.extend_from(&rows.slice(run));
    }

    fn merge(&self, into: &mut Columns, from: Columns) {
        into.extend_from(&from);
    }

    fn footprint(&self, partial: &Columns) -> usize {
        rows_footprint(partial)
    }

    fn finish(&self, rows: Columns, input: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        let mut idx = Vec::new();
        self.funnel.events(&rows, 0..rows.len(), &mut idx);
        let outcome = self.funnel.outcome(&rows, &idx, &mut Scratch::default());
        let mut t = Table::new(&["step", "event", "status", "at", "time_from_start_s", "reason"]);
        for k in 1..=self.funnel.steps.len() {
            t.rows.push(self.step_row(k, &rows, &idx, &outcome, input.dicts));
        }
        let firsts = self.funnel.firsts(&rows, &idx);
        let sessions = self.funnel.sessions(&rows, &idx);
        let scope = Scope::new(self.funnel.range, &firsts).with_sessions(&sessions);
        if !self.funnel.kept(&rows, &idx, &scope) {
            // Customer-level exclusion: the steps its chains reached do not count.
            let clauses: Vec<String> = self
                .funnel
                .excludes
                .iter()
                .map(|(x, from, to)| format!("`{}` between steps {from} and {to}", x.label))
                .collect();
            let reason = format!(
                "the customer leaves the funnel: every longest chain has an excluded event ({}) after its first step of the clause, before its last or inside its window (EXCLUSION CHAIN would count it)",
                clauses.join(", ")
            );
            for row in t.rows.iter_mut().filter(|r| r[2] == Cell::Str("reached".into())) {
                row[2] = Cell::Str("excluded".into());
                row[5] = Cell::Str(reason.clone());
            }
        }
        Ok(t)
    }
}

/// Runs an EXPLAIN statement.
pub(in crate::internals::exec) fn explain(
    explain: &crate::query::ast::Explain,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&ExplainOp::plan(explain, text, input)?, input, opts)
}
