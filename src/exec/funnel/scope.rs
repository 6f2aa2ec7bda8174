//! One customer's evaluation context (where chains may start, FIRST steps' rows, the HOLDING
//! value), which events may fill a step in it, and the customer's outcome over every held
//! value with customer-level exclusions.
//!
//! Uses: `model`, `query`; rooms `funnel`.

use crate::exec::funnel::{FunnelOp, FunnelOutcome, Scratch, exclusion};
use crate::model::Columns;
use crate::query::ast::FunnelMode;

/// The instants a chain's step-1 event may lie in (half-open; `None`: any): the statement's
/// `FROM … TO …`, or with `PERIOD` one bucket of it.
pub(in crate::internals::exec) type Entry = Option<(i64, i64)>;

/// A customer's sessions as (first, last) time spans, ascending (`WITHIN SESSION`).
pub(in crate::internals::exec) type Sessions = [(i64, i64)];

/// True when `ts` lies in `entry`.
#[inline]
pub(in crate::internals::exec) fn in_entry(entry: Entry, ts: i64) -> bool {
    entry.is_none_or(|(lo, hi)| lo <= ts && ts < hi)
}

/// One customer's evaluation context: where a chain's step-1 event may lie, the only rows FIRST
/// steps may take, and the value HOLDING keeps.
#[derive(Clone, Copy)]
pub(in crate::internals::exec) struct Scope<'s> {
    pub(in crate::internals::exec) entry: Entry,
    /// Per step (index k − 1) when some step is FIRST: for a FIRST step, the customer's first
    /// event matching it (`None`: it has none); empty otherwise.
    firsts: &'s [Option<usize>],
    /// HOLDING: the value slot every chain event must have (`Some(None)`: the property absent).
    held: Option<Option<u64>>,
    /// `WITHIN SESSION`: the customer's sessions as (first, last) time spans, ascending (empty
    /// otherwise: no session bounds a chain).
    sessions: &'s [(i64, i64)],
}

impl Scope<'_> {
    /// Chains starting in `entry`, FIRST steps taking the rows of `firsts` (see the field),
    /// nothing held.
    pub(in crate::internals::exec) fn new(entry: Entry, firsts: &[Option<usize>]) -> Scope<'_> {
        Scope {
            entry,
            firsts,
            held: None,
            sessions: &[],
        }
    }
}

impl<'s> Scope<'s> {
    /// This scope with chains bounded by `sessions` (see the field).
    pub(in crate::internals::exec) fn with_sessions(self, sessions: &'s [(i64, i64)]) -> Scope<'s> {
        Scope { sessions, ..self }
    }

    /// True when instant `t` (≥ `s`) lies in the session of instant `s`, or no session bounds.
    #[inline]
    pub(in crate::internals::exec) fn in_session(&self, start: i64, ts: i64) -> bool {
        if self.sessions.is_empty() {
            return true;
        }
        let at = self.sessions.partition_point(|span| span.0 <= start);
        at > 0 && ts <= self.sessions[at - 1].1
    }
}

impl FunnelOp<'_> {
    /// Customer-level exclusions (the default form) on the customer whose events (in event
    /// order, WHERE applied) are `idx`, in `scope`: `None` when they do not apply, else the
    /// greatest chain length (exclusions ignored) and whether a chain of that length is unhit.
    fn exclusion_verdict(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>) -> Option<(usize, bool)> {
        if self.excludes.is_empty() || self.exclusion_chain {
            return None;
        }
        match self.mode {
            FunnelMode::Ordered => Some(exclusion::keeps_customer(self, rows, idx, scope)),
            FunnelMode::Strict => Some(exclusion::keeps_customer_strict(self, rows, idx, scope)),
            FunnelMode::Unordered => None,
        }
    }

    /// False when customer-level exclusions remove the customer (see
    /// [`exclusion_verdict`](Self::exclusion_verdict)).
    fn keeps(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>) -> bool {
        self.exclusion_verdict(rows, idx, scope)
            .is_none_or(|(_, kept)| kept)
    }

    /// True when event `i` can fill step `k + 1` in `scope`: it matches the step, is the
    /// customer's first such event for a FIRST step, and has the held value under HOLDING.
    #[inline]
    pub(in crate::internals::exec) fn step_matches(
        &self,
        step: usize,
        rows: &Columns,
        index: usize,
        scope: &Scope<'_>,
    ) -> bool {
        self.steps[step].matches(rows, index, self.dicts)
            && scope
                .firsts
                .get(step)
                .is_none_or(|&f| !self.first[step] || f == Some(index))
            && scope
                .held
                .is_none_or(|v| self.holding.as_ref().is_none_or(|h| h.slot(rows, index) == v))
    }

    /// Per step, for a FIRST step, the customer's first event (in `idx`, all of its events in
    /// event order) matching it; empty when no step is FIRST.
    pub(super) fn firsts(&self, rows: &Columns, idx: &[usize]) -> Vec<Option<usize>> {
        if !self.first.contains(&true) {
            return Vec::new();
        }
        (self.steps.iter().zip(&self.first))
            .map(|(step, &first)| {
                let found = || idx.iter().copied().find(|&i| step.matches(rows, i, self.dicts));
                if first { found() } else { None }
            })
            .collect()
    }

    /// The customer's outcome in `scope` into `out`; false when customer-level exclusions
    /// remove it.
    pub(super) fn evaluate(
        &self,
        rows: &Columns,
        idx: &[usize],
        scope: &Scope<'_>,
        scratch: &mut Scratch,
        out: &mut FunnelOutcome,
    ) -> bool {
        if !self.kept(rows, idx, scope) {
            return false;
        }
        self.held_outcome(rows, idx, scope, scratch, out);
        true
    }

    /// The values of HOLDING's property on the entering events in `scope`, ascending.
    fn held_values(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>) -> Vec<Option<u64>> {
        let Some(holding) = &self.holding else {
            return Vec::new();
        };
        let entering = self.entry_steps().len();
        let mut values: Vec<Option<u64>> = (idx.iter().copied())
            .filter(|&i| {
                in_entry(scope.entry, rows.ts[i])
                    && (0..entering).any(|k| self.step_matches(k, rows, i, scope))
            })
            .map(|i| holding.slot(rows, i))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    /// False when customer-level exclusions remove the customer: every chain of the greatest
    /// length (exclusions ignored; with HOLDING, over every held value) is hit.
    pub(in crate::internals::exec) fn kept(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>) -> bool {
        if self.holding.is_none() {
            return self.keeps(rows, idx, scope);
        }
        if self.excludes.is_empty() || self.exclusion_chain || self.mode == FunnelMode::Unordered {
            // No customer-level exclusion applies: the held values need not be found.
            return true;
        }
        let verdicts: Vec<(usize, bool)> = (self.held_values(rows, idx, scope).into_iter())
            .filter_map(|v| {
                self.exclusion_verdict(
                    rows,
                    idx,
                    &Scope {
                        held: Some(v),
                        ..*scope
                    },
                )
            })
            .collect();
        let longest = verdicts.iter().map(|v| v.0).max().unwrap_or(0);
        verdicts.is_empty() || verdicts.iter().any(|&(length, kept)| length == longest && kept)
    }

    /// The customer's outcome in `scope` (exclusions as chains); with HOLDING, the funnel of
    /// each held value combined: the deepest level, and per step the times of the value whose
    /// step event comes first in event order (the chains of one step event all hold its value).
    pub(in crate::internals::exec) fn held_outcome(
        &self,
        rows: &Columns,
        idx: &[usize],
        scope: &Scope<'_>,
        scratch: &mut Scratch,
        out: &mut FunnelOutcome,
    ) {
        if self.holding.is_none() {
            return self.outcome_into(rows, idx, scope, scratch, out);
        }
        let values = self.held_values(rows, idx, scope);
        let position = |row: Option<usize>| row.and_then(|r| idx.iter().position(|&x| x == r));
        let mut one = FunnelOutcome::default();
        out.reset(self.steps.len());
        for value in values {
            let held = Scope {
                held: Some(value),
                ..*scope
            };
            self.outcome_into(rows, idx, &held, scratch, &mut one);
            for k in 1..=one.level {
                if out.at[k].is_none() || position(one.at[k]) < position(out.at[k]) {
                    out.times[k] = one.times[k];
                    out.from_previous[k] = one.from_previous[k];
                    out.at[k] = one.at[k];
                }
            }
            out.level = out.level.max(one.level);
        }
    }
}
