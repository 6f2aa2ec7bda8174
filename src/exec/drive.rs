//! How a planned statement is driven through the protocol of [`Operator`]: on its input, or —
//! `BY COHORT a, b, …` — for several cohorts side by side in one pass. Side by side, each
//! cohort's prefilter reads its own restricted input (its bitmaps); one scan then reads the
//! customers any cohort still needs, folding a customer's rows into the state of every cohort
//! it is in (a customer in two cohorts counts in both); each cohort's state is finished on its
//! own input, and the tables are joined with the cohort's name in a `group` column.
//!
//! Uses: `merge`, `model`, `result`, `segment`; rooms `operator`, `options`, `scan`.

use crate::exec::operator::{LazyOperator, Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions, SideBySide};
use crate::exec::scan::{Scan, gather_with, run_scans, scan_customers, scan_maybe_lazy};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// Runs a planned statement through the protocol of [`Operator`]: prefilter, the parallel scan
/// of the customers left (when any), merge, finish — per cohort, side by side, when the input
/// asks for it.
pub(super) fn evaluate<O: Operator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate_with(
        op,
        input,
        opts,
        scan_customers::<O>,
        scan_customers::<Fanned<'_, O>>,
    )
}

/// [`evaluate`] for an operator that can read lazily ([`LazyOperator`]).
pub(super) fn evaluate_lazy<O: LazyOperator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError>
where
    O::State: Clone,
{
    evaluate_with(
        op,
        input,
        opts,
        scan_maybe_lazy::<O>,
        scan_maybe_lazy::<Fanned<'_, O>>,
    )
}

/// [`evaluate`] with the scans of one worker's range: of `op`, and of `op` side by side.
fn evaluate_with<'o, O: Operator>(
    op: &'o O,
    input: &'o Input<'o>,
    opts: &QueryOptions,
    scan: Scan<O>,
    fanned_scan: Scan<Fanned<'o, O>>,
) -> Result<Table, QueryError> {
    match input.side_by_side {
        None => op.finish(gather_with(op, input, opts, scan)?, input, opts),
        Some(side) => side_by_side(op, side, input, opts, scan, fanned_scan),
    }
}

/// The statement once per cohort of `side`: in one pass when it can, else (identity links,
/// more cohorts than a customer's mask holds) each cohort's input on its own.
fn side_by_side<'o, O: Operator>(
    op: &'o O,
    side: &'o SideBySide<'o>,
    input: &Input<'_>,
    opts: &QueryOptions,
    scan: Scan<O>,
    fanned_scan: Scan<Fanned<'o, O>>,
) -> Result<Table, QueryError> {
    side.driven.store(true, Ordering::Relaxed);
    let states = match one_pass(op, side, input, opts, fanned_scan)? {
        Some(states) => states,
        None => side
            .cohorts
            .iter()
            .map(|(_, cohort)| gather_with(op, cohort, opts, scan))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let fanned = Fanned {
        op,
        side,
        masks: Vec::new(),
    };
    fanned.finish(states, input, opts)
}

/// Most cohorts one pass drives (a bit each in a customer's mask).
const COHORTS_MAX: usize = 32;

/// Each cohort's merged state from its prefilter and one scan of the customers the cohorts
/// still need; `None` when one pass cannot serve (the caller runs each cohort alone).
fn one_pass<'o, O: Operator>(
    op: &'o O,
    side: &'o SideBySide<'o>,
    input: &Input<'_>,
    opts: &QueryOptions,
    scan: Scan<Fanned<'o, O>>,
) -> Result<Option<Vec<O::Partial>>, QueryError> {
    let cohorts = side.cohorts.len();
    let customers = input.customers as usize;
    // Linked customers are read as their merged journeys, per cohort; the masks (4 bytes a
    // customer) must leave the statement most of its memory budget.
    if input.links.is_some() || cohorts > COHORTS_MAX || customers.saturating_mul(4) > opts.memory_max / 4 {
        return Ok(None);
    }
    let mut states = Vec::with_capacity(cohorts);
    let mut masks = vec![0u32; customers];
    // The customers any cohort scans (`None`: every customer).
    let mut scanned: Option<RoaringBitmap> = Some(RoaringBitmap::new());
    // Whether the cohorts that scan read only the rows not yet sealed (they must agree).
    let mut unsealed: Option<bool> = None;
    for (at, (_, cohort)) in side.cohorts.iter().enumerate() {
        let (only, unsealed_only) = match op.prefilter(cohort)? {
            Prefilter::Answered(state) => {
                states.push(state);
                continue;
            }
            Prefilter::Scan {
                only,
                unsealed_only,
                counted,
            } => {
                states.push(counted);
                (only, unsealed_only)
            }
        };
        if unsealed.is_some_and(|agreed| agreed != unsealed_only) {
            return Ok(None);
        }
        unsealed = Some(unsealed_only);
        // A restricted cohort scans its admitted customers only (as `scan::scanned` does).
        let only = match (&cohort.restriction, only) {
            (Some(restriction), Some(only)) => Some(only & &*restriction.admitted),
            (Some(restriction), None) => Some((*restriction.admitted).clone()),
            (None, only) => only,
        };
        let bit = 1u32 << at;
        match &only {
            Some(set) => {
                for id in set {
                    if let Some(mask) = masks.get_mut(id as usize) {
                        *mask |= bit;
                    }
                }
            }
            None => masks.iter_mut().for_each(|mask| *mask |= bit),
        }
        scanned = scanned.zip(only).map(|(all, set)| all | set);
    }
    // No cohort scans: the indices answered them all.
    let Some(unsealed_only) = unsealed else {
        return Ok(Some(states));
    };
    let sources: Vec<_> = input
        .sources
        .iter()
        .filter(|source| !unsealed_only || matches!(source, crate::merge::Source::Memory(_)))
        .cloned()
        .collect();
    if sources.is_empty() {
        return Ok(Some(states));
    }
    let plain = Input {
        sources,
        restriction: None,
        side_by_side: None,
        ..*input
    };
    let fanned = Fanned { op, side, masks };
    let found = run_scans(&fanned, &plain, op.columns(), opts, scanned, scan)?;
    for (state, from) in states.iter_mut().zip(found) {
        op.merge(state, from);
    }
    Ok(Some(states))
}

/// `op` for several cohorts at once: one state per cohort; a customer's rows are folded into
/// the state of each cohort whose bit its mask has.
pub(super) struct Fanned<'o, O> {
    op: &'o O,
    side: &'o SideBySide<'o>,
    /// Per customer id, one bit per cohort that scans the customer.
    masks: Vec<u32>,
}

impl<O: Operator> Fanned<'_, O> {
    /// The states of the cohorts `customer` is in, in order.
    fn mine<'p>(
        &self,
        partial: &'p mut Vec<O::Partial>,
        customer: u32,
    ) -> impl Iterator<Item = &'p mut O::Partial> + use<'p, O> {
        let bits = self.masks.get(customer as usize).copied().unwrap_or(0);
        let states = self.states(partial).iter_mut().enumerate();
        states
            .filter(move |(at, _)| bits >> at & 1 == 1)
            .map(|(_, state)| state)
    }

    /// The per-cohort states of `partial` (a worker's starts empty).
    fn states<'p>(&self, partial: &'p mut Vec<O::Partial>) -> &'p mut [O::Partial] {
        let cohorts = self.side.cohorts.len();
        if partial.len() < cohorts {
            partial.resize_with(cohorts, Default::default);
        }
        partial
    }
}

impl<O: Operator> Operator for Fanned<'_, O> {
    type Partial = Vec<O::Partial>;

    fn columns(&self) -> ColumnSet {
        self.op.columns()
    }

    fn reads_only(&self) -> Option<RoaringBitmap> {
        self.op.reads_only()
    }

    fn customer(&self, partial: &mut Self::Partial, rows: &crate::model::Columns, run: Range<usize>) {
        let Some(&customer) = rows.cid.get(run.start) else {
            return;
        };
        let mine = self.mine(partial, customer);
        self.op.customer_each(mine, rows, run);
    }

    fn merge(&self, into: &mut Self::Partial, from: Self::Partial) {
        let into = self.states(into);
        for (state, from) in into.iter_mut().zip(from) {
            self.op.merge(state, from);
        }
    }

    /// O(cohorts), at most [`COHORTS_MAX`].
    fn footprint(&self, partial: &Self::Partial) -> usize {
        partial.iter().map(|state| self.op.footprint(state)).sum()
    }

    /// Each cohort's state finished on the cohort's own input, the tables joined.
    fn finish(
        &self,
        partial: Self::Partial,
        _: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let tables = partial
            .into_iter()
            .zip(&self.side.cohorts)
            .map(|(state, (_, cohort))| self.op.finish(state, cohort, opts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(joined(self.side, tables))
    }
}

/// A customer's lazy state and id (the cohorts it ends into).
#[derive(Default)]
pub(super) struct FannedState<S> {
    state: S,
    customer: u32,
}

impl<O: LazyOperator> LazyOperator for Fanned<'_, O>
where
    O::State: Clone,
{
    type State = FannedState<O::State>;

    fn lazy(&self) -> bool {
        self.op.lazy()
    }

    fn feed(
        &self,
        state: &mut Self::State,
        events: impl Iterator<Item = u32>,
        ts: impl Iterator<Item = i64>,
    ) -> bool {
        self.op.feed(&mut state.state, events, ts)
    }

    /// The customer's state ends into each of its cohorts.
    fn end(&self, partial: &mut Self::Partial, state: &mut Self::State) {
        let bits = self.masks.get(state.customer as usize).copied().unwrap_or(0);
        let states = self.states(partial).iter_mut().enumerate();
        let mine = states
            .filter(|(at, _)| bits >> at & 1 == 1)
            .map(|(_, cohort)| cohort);
        self.op.end_each(mine, &mut state.state);
    }

    fn restart(&self, state: &mut Self::State, customer: u32) {
        state.customer = customer;
        self.op.restart(&mut state.state, customer);
    }
}

/// The cohorts' tables in one, the cohort's name in a `group` column — first, as a funnel's
/// `BY` puts it; second for TREND and `FUNNEL … PERIOD`, whose rows then go by bucket and,
/// within one, in the order the cohorts are named (as a property `BY` puts them).
fn joined(side: &SideBySide<'_>, tables: Vec<Table>) -> Table {
    let at = side.group_at;
    let Some(first) = tables.first() else {
        return Table::new(&["group"]);
    };
    let mut columns: Vec<&str> = first.columns.iter().map(String::as_str).collect();
    columns.insert(at.min(columns.len()), "group");
    let mut table = Table::new(&columns);
    table.warnings = first.warnings.clone();
    let rows = first.rows.len();
    let parts = tables
        .into_iter()
        .zip(&side.cohorts)
        .map(|(mut part, (name, _))| {
            for row in &mut part.rows {
                row.insert(at.min(row.len()), Cell::Str(name.clone()));
            }
            part.rows
        });
    let block = side.bucket_rows;
    let parts: Vec<Vec<Vec<Cell>>> = parts.collect();
    if block > 0 && parts.iter().all(|part| part.len() == rows) {
        // By bucket: every cohort has the same buckets; bucket i's rows of each, in the order
        // named.
        let mut iters: Vec<_> = parts.into_iter().map(Vec::into_iter).collect();
        for _ in 0..rows.div_ceil(block) {
            for part in iters.iter_mut() {
                table.rows.extend(part.by_ref().take(block));
            }
        }
    } else {
        table.rows = parts.into_iter().flatten().collect();
    }
    table
}
