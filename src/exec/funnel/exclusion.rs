//! Customer-level exclusions (`EXCLUSION CUSTOMER`, the default): whether a customer leaves the
//! funnel because every one of its longest chains was hit by an excluded event.
//!
//! Uses: `model`; rooms `funnel`.

use std::collections::VecDeque;

use crate::exec::funnel::FunnelOp;
use crate::exec::funnel::scope::{Scope, in_entry};
use crate::model::Columns;

/// A chain *is hit* by `EXCLUDE x BETWEEN i AND j` when an event matching x comes after its
/// step-i event (in event order), before its step-j event when it has one, and otherwise while
/// its window is open (`ts ≤ ts(e1) + WITHIN`); the chain's own events count. Returns true when
/// the customer's events `idx` (in event order, WHERE applied) have a chain of the greatest
/// length (exclusions ignored) that no clause hits — the customer then counts as the chain form
/// counts it; false when it leaves the funnel. Ordered mode (docs/QUERY.md, FUNNEL), in
/// `scope`. Also returns that greatest length (0: no chain).
pub(super) fn keeps_customer(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    scope: &Scope<'_>,
) -> (usize, bool) {
    let mut run = CleanRun::new(op.steps.len());
    for &i in idx {
        run.event(op, rows, i, scope);
    }
    run.flush();
    (run.level, run.clean_at(run.level))
}

/// The state of [`keeps_customer`]'s one pass. Per level k: the latest start of any chain
/// (exclusions ignored, to know the greatest length), and the unhit chains whose windows are
/// still open — a hit clears a level's open chains at once (every open chain there has its
/// step-i event before the hitting event), a window closes first for the earliest start, and a
/// level keeps `closed_clean` once a chain closed unhit. Every chain starts at a step-1 event,
/// so a level's open chains are ranges of indices into `starts` (ascending): extending level
/// k − 1 to level k copies ranges, not chains, and only those above level k's watermark.
struct CleanRun {
    any: Vec<Option<i64>>,
    /// TIES STRICT: chains reached at the current timestamp, usable once it advances.
    any_fresh: Vec<Option<i64>>,
    /// The starts (timestamps) of the in-range step-1 events, in event order.
    starts: Vec<i64>,
    /// Per level, the open unhit chains as half-open ranges of `starts` indices, ascending.
    open: Vec<VecDeque<(usize, usize)>>,
    /// TIES STRICT: unhit chains reached at the current timestamp (level, range).
    pending: Vec<(usize, usize, usize)>,
    closed_clean: Vec<bool>,
    /// Level k − 1's chains with a start index below `merged[k]` are already at level k (or
    /// closed); a hit on level k resets it to 0.
    merged: Vec<usize>,
    level: usize,
    group_ts: Option<i64>,
}

impl CleanRun {
    fn new(steps: usize) -> CleanRun {
        CleanRun {
            any: vec![None; steps + 1],
            any_fresh: vec![None; steps + 1],
            starts: Vec::new(),
            open: vec![VecDeque::new(); steps + 1],
            pending: Vec::new(),
            closed_clean: vec![false; steps + 1],
            merged: vec![0; steps + 1],
            level: 0,
            group_ts: None,
        }
    }

    /// Whether an unhit chain of `level` steps exists (level 0: none is needed).
    fn clean_at(&self, level: usize) -> bool {
        level == 0 || self.closed_clean[level] || !self.open[level].is_empty()
    }

    /// Adds the start-index range `lo..hi` to level `step`'s open chains.
    fn add(&mut self, step: usize, lo: usize, hi: usize) {
        match self.open[step].back_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => self.open[step].push_back((lo, hi)),
        }
    }

    /// Makes the chains reached at the last timestamp usable (TIES STRICT).
    fn flush(&mut self) {
        for (k, slot) in self.any_fresh.iter_mut().enumerate() {
            if let Some(s) = slot.take() {
                self.any[k] = Some(self.any[k].map_or(s, |x| x.max(s)));
            }
        }
        for at in 0..self.pending.len() {
            let (k, lo, hi) = self.pending[at];
            self.add(k, lo, hi);
        }
        self.pending.clear();
    }

    /// Drops the chains whose window closed before `ts`: they stay unhit for good.
    fn close(&mut self, op: &FunnelOp<'_>, scope: &Scope<'_>, ts: i64) {
        for (open, closed) in self.open.iter_mut().zip(self.closed_clean.iter_mut()) {
            while let Some(front) = open.front_mut() {
                while front.0 < front.1 && !op.reachable(scope, self.starts[front.0], ts) {
                    front.0 += 1;
                    *closed = true;
                }
                if front.0 < front.1 {
                    break;
                }
                open.pop_front();
            }
        }
    }

    fn event(&mut self, op: &FunnelOp<'_>, rows: &Columns, index: usize, scope: &Scope<'_>) {
        let t = rows.ts[index];
        if op.ties_strict && self.group_ts != Some(t) {
            self.flush();
            self.group_ts = Some(t);
        }
        self.close(op, scope, t);
        let n = op.steps.len();
        // New chains ending at this event, from the chains before it: (level, start) for any
        // chain, (level, start-index range) for unhit ones.
        let mut any_new: Vec<(usize, i64)> = Vec::new();
        let mut clean_new: Vec<(usize, usize, usize)> = Vec::new();
        for k in (1..=n).rev() {
            if !op.step_matches(k - 1, rows, index, scope) {
                continue;
            }
            if k == 1 {
                if in_entry(scope.entry, t) {
                    any_new.push((1, t));
                    self.starts.push(t);
                    clean_new.push((1, self.starts.len() - 1, self.starts.len()));
                }
                continue;
            }
            if let Some(s) = self.any[k - 1]
                && op.reachable(scope, s, t)
            {
                any_new.push((k, s));
            }
            // Level k − 1's ranges above level k's watermark (at the back: ranges ascend) —
            // or all of them when this event hits level k's chains from step k on (clause
            // BETWEEN k AND …): those chains are cleared below, and the same starts ending
            // here, with their step-k event not before the hit, are unhit.
            let hits_here = op
                .excludes
                .iter()
                .any(|(excluded, from, _)| *from == k && excluded.matches(rows, index, op.dicts));
            let merged = if hits_here { 0 } else { self.merged[k] };
            let above = self.open[k - 1].iter().rev().take_while(|r| r.1 > merged).count();
            let from = self.open[k - 1].len() - above;
            for &(lo, hi) in self.open[k - 1].range(from..) {
                clean_new.push((k, lo.max(merged), hi));
                self.merged[k] = self.merged[k].max(hi);
            }
        }
        // This event hits the chains before it at levels i..j of each clause it matches, and
        // the new chains it ends strictly inside them.
        for (excluded, from, to) in &op.excludes {
            if !excluded.matches(rows, index, op.dicts) {
                continue;
            }
            for k in *from..*to {
                self.open[k].clear();
                self.merged[k] = 0;
            }
            self.pending.retain(|&(k, _, _)| k < *from || k >= *to);
            clean_new.retain(|&(k, _, _)| k <= *from || k >= *to);
        }
        // A hit reset the watermarks of the levels it cleared: the chains ending here are
        // at their level now.
        for &(k, _, hi) in &clean_new {
            self.merged[k] = self.merged[k].max(hi);
        }
        for (k, s) in any_new {
            let slot = if op.ties_strict {
                &mut self.any_fresh[k]
            } else {
                &mut self.any[k]
            };
            *slot = Some(slot.map_or(s, |x| x.max(s)));
            self.level = self.level.max(k);
        }
        for (k, lo, hi) in clean_new {
            if op.ties_strict {
                self.pending.push((k, lo, hi));
            } else {
                self.add(k, lo, hi);
            }
        }
    }
}

/// [`keeps_customer`] in `MODE STRICT`: a chain is consecutive events, so it is fixed by its
/// start; the customer stays when a chain (in `scope`) of the greatest length is hit by no
/// clause. Also returns that greatest length (0: no chain).
pub(super) fn keeps_customer_strict(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    scope: &Scope<'_>,
) -> (usize, bool) {
    // The longest chain from each start position.
    let lengths: Vec<usize> = (0..idx.len())
        .map(|p| strict_length(op, rows, idx, p, scope))
        .collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    if longest == 0 {
        return (0, true);
    }
    // Per clause, the next position at or after p whose event the clause excludes.
    let next_excluded: Vec<Vec<Option<usize>>> = op
        .excludes
        .iter()
        .map(|(excluded, _, _)| {
            let mut next = vec![None; idx.len() + 1];
            for p in (0..idx.len()).rev() {
                next[p] = if excluded.matches(rows, idx[p], op.dicts) {
                    Some(p)
                } else {
                    next[p + 1]
                };
            }
            next
        })
        .collect();
    let hit = |start: usize| {
        let s = rows.ts[idx[start]];
        op.excludes
            .iter()
            .zip(&next_excluded)
            .any(|(&(_, from, to), next)| {
                if longest < from {
                    return false;
                }
                // The first excluded event after the chain's step-`from` event.
                let Some(q) = next[start + from] else {
                    return false;
                };
                if longest >= to {
                    q < start + to - 1
                } else {
                    op.reachable(scope, s, rows.ts[idx[q]])
                }
            })
    };
    (longest, (0..idx.len()).any(|p| lengths[p] == longest && !hit(p)))
}

/// The length of the consecutive chain starting at position `first` of `idx` (0 when its event
/// does not start the funnel in `scope`).
fn strict_length(op: &FunnelOp<'_>, rows: &Columns, idx: &[usize], first: usize, scope: &Scope<'_>) -> usize {
    let start = rows.ts[idx[first]];
    if !in_entry(scope.entry, start) || !op.step_matches(0, rows, idx[first], scope) {
        return 0;
    }
    let mut length = 1;
    while length < op.steps.len() && first + length < idx.len() {
        let (previous, i) = (idx[first + length - 1], idx[first + length]);
        let t = rows.ts[i];
        let tie_ok = !op.ties_strict || rows.ts[previous] < t;
        if !tie_ok || !op.reachable(scope, start, t) || !op.step_matches(length, rows, i, scope) {
            break;
        }
        length += 1;
    }
    length
}
