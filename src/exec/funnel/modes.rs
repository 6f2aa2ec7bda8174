//! The general funnel evaluators, one customer at a time: ordered (with exclusion caps), strict
//! (consecutive events) and unordered (a bipartite matching per window), on any steps.
//!
//! Uses: `model`, `query`; rooms `funnel`.

use crate::exec::funnel::scope::{Scope, in_entry};
use crate::exec::funnel::{FunnelOp, FunnelOutcome, Scratch};
use crate::model::Columns;
use crate::query::ast::FunnelMode;

impl FunnelOp<'_> {
    /// Evaluates one customer's (filtered) events, in (timestamp, sequence) order, from the
    /// statement's range (FIRST steps and HOLDING applied; exclusions as chains).
    pub(super) fn outcome(&self, rows: &Columns, idx: &[usize], scratch: &mut Scratch) -> FunnelOutcome {
        let firsts = self.firsts(rows, idx);
        let sessions = self.sessions(rows, idx);
        let scope = Scope::new(self.range, &firsts).with_sessions(&sessions);
        let mut out = FunnelOutcome::default();
        self.held_outcome(rows, idx, &scope, scratch, &mut out);
        out
    }

    /// As [`outcome`](Self::outcome) in `scope` (where chains start, FIRST rows, HOLDING), reusing `out`'s
    /// allocations.
    pub(super) fn outcome_into(
        &self,
        rows: &Columns,
        idx: &[usize],
        scope: &Scope<'_>,
        scratch: &mut Scratch,
        out: &mut FunnelOutcome,
    ) {
        out.reset(self.steps.len());
        match self.mode {
            FunnelMode::Unordered => self.unordered(rows, idx, scope, out),
            FunnelMode::Strict => self.strict(rows, idx, scope, out),
            FunnelMode::Ordered => self.ordered(rows, idx, scope, out, scratch),
        }
    }

    /// Records that the event at row `at`, time `ts`, reaches step `step` on a chain starting at
    /// `start` whose step-(k − 1) event is at `previous` (kept for the first such event only).
    pub(super) fn reach(
        out: &mut FunnelOutcome,
        step: usize,
        ts: i64,
        (start, previous): (i64, i64),
        at: usize,
    ) {
        if out.times[step].is_none() {
            out.times[step] = Some(ts - start);
            out.from_previous[step] = Some(ts - previous);
            out.at[step] = Some(at);
        }
        out.level = out.level.max(step);
    }

    fn ordered(
        &self,
        rows: &Columns,
        idx: &[usize],
        scope: &Scope<'_>,
        out: &mut FunnelOutcome,
        scratch: &mut Scratch,
    ) {
        let n = self.steps.len();
        let caps = &self.caps;
        let nc = caps.len();
        // settled[k * nc + c]: (latest start, then latest last event) of a chain at level k
        // (1-based) whose cap is caps[c]; fresh: chains whose last event has the current
        // timestamp (TIES STRICT only). The pair's order is the tuple order: the latest start
        // wins, and among chains of one start the newest.
        let Scratch {
            settled,
            fresh,
            cands,
            ..
        } = scratch;
        settled.clear();
        settled.resize((n + 1) * nc, None);
        fresh.clear();
        fresh.resize((n + 1) * nc, None);
        let mut group_ts = None;
        let max_into =
            |slot: &mut Option<(i64, i64)>, s: (i64, i64)| *slot = Some(slot.map_or(s, |x| x.max(s)));
        for &i in idx {
            let t = rows.ts[i];
            if self.ties_strict && group_ts != Some(t) {
                for (f, st) in fresh.iter_mut().zip(settled.iter_mut()) {
                    if let Some(s) = f.take() {
                        max_into(st, s);
                    }
                }
                group_ts = Some(t);
            }
            cands.clear();
            for k in (2..=n).rev() {
                if !self.step_matches(k - 1, rows, i, scope) {
                    continue;
                }
                for (c, &cap) in caps.iter().enumerate() {
                    if cap < k {
                        continue;
                    }
                    if let Some((s, last)) = settled[(k - 1) * nc + c]
                        && self.reachable(scope, s, t)
                    {
                        cands.push((k, c, (s, last)));
                    }
                }
            }
            if in_entry(scope.entry, t) && self.step_matches(0, rows, i, scope) {
                cands.push((1, nc - 1, (t, t)));
            }
            // Exclusions hit by this event poison chains it lies strictly inside.
            for (m, from, to) in &self.excludes {
                if !m.matches(rows, i, self.dicts) {
                    continue;
                }
                let cap = caps.iter().position(|&c| c == to - 1).unwrap_or(0);
                for layer in [&mut *settled, &mut *fresh] {
                    for k in *from..*to {
                        for c in (cap + 1)..nc {
                            if let Some(s) = layer[k * nc + c].take() {
                                max_into(&mut layer[k * nc + cap], s);
                            }
                        }
                    }
                }
                for cand in cands.iter_mut() {
                    if *from < cand.0 && cand.0 < *to && cand.1 > cap {
                        cand.1 = cap;
                    }
                }
            }
            let target = if self.ties_strict {
                &mut *fresh
            } else {
                &mut *settled
            };
            // The new chains end at this event.
            for &(k, c, (s, _)) in cands.iter() {
                max_into(&mut target[k * nc + c], (s, t));
            }
            // Time to convert: the first event completing step k, from the latest start (and
            // that start's latest step-(k − 1) event).
            for &(k, _, s) in cands.iter() {
                let best = cands.iter().filter(|c| c.0 == k).map(|c| c.2).max().unwrap_or(s);
                Self::reach(out, k, t, best, i);
            }
        }
    }

    fn strict(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>, out: &mut FunnelOutcome) {
        let n = self.steps.len();
        // cur[k] = (start, cap) of the chain at level k ending at the previous event (chains
        // are consecutive events, so there is at most one); `cap` is the highest level it may
        // still reach given the excluded events among its own steps.
        let mut cur = vec![None::<(i64, usize)>; n + 1];
        let mut next = vec![None::<(i64, usize)>; n + 1];
        let mut prev_ts = None;
        for &i in idx {
            let t = rows.ts[i];
            for x in next.iter_mut() {
                *x = None;
            }
            let tie_ok = !self.ties_strict || prev_ts.is_none_or(|p| p < t);
            for k in 2..=n {
                if let Some((s, cap)) = cur[k - 1]
                    && k <= cap
                    && tie_ok
                    && self.reachable(scope, s, t)
                    && self.step_matches(k - 1, rows, i, scope)
                {
                    let mut cap = cap;
                    for (m, from, to) in &self.excludes {
                        if *from < k && k < *to && m.matches(rows, i, self.dicts) {
                            cap = cap.min(to - 1);
                        }
                    }
                    next[k] = Some((s, cap));
                    // Consecutive events: the previous step's is the one just before.
                    Self::reach(out, k, t, (s, prev_ts.unwrap_or(t)), i);
                }
            }
            if in_entry(scope.entry, t) && self.step_matches(0, rows, i, scope) {
                next[1] = Some((t, n));
                Self::reach(out, 1, t, (t, t), i);
            }
            std::mem::swap(&mut cur, &mut next);
            prev_ts = Some(t);
        }
    }

    fn unordered(&self, rows: &Columns, idx: &[usize], scope: &Scope<'_>, out: &mut FunnelOutcome) {
        let n = self.steps.len();
        let masks: Vec<u64> = idx
            .iter()
            .map(|&i| {
                (0..n)
                    .filter(|&k| self.step_matches(k, rows, i, scope))
                    .fold(0u64, |m, k| m | 1 << k)
            })
            .collect();
        // The window [ta, ta + within] of start a slides forward with a: events [a, hi) are in
        // it, kept as counts per distinct step mask, so each event enters and leaves once.
        // A maximum matching depends only on those counts, each capped at n (at most n events
        // can be matched), so its cost per start does not grow with the window.
        let mut counts: Vec<(u64, usize)> = Vec::new();
        let mut hi = 0;
        let mut nodes: Vec<u64> = Vec::new();
        let mut owner: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        for a in 0..idx.len() {
            let ta = rows.ts[idx[a]];
            while hi < idx.len() && self.reachable(scope, ta, rows.ts[idx[hi]]) {
                if masks[hi] != 0 {
                    match counts.iter_mut().find(|(m, _)| *m == masks[hi]) {
                        Some((_, c)) => *c += 1,
                        None => counts.push((masks[hi], 1)),
                    }
                }
                hi += 1;
            }
            if masks[a] != 0 && in_entry(scope.entry, ta) {
                // Event a first: Kuhn's algorithm keeps matched events matched, so a stays in.
                nodes.clear();
                nodes.push(masks[a]);
                for &(m, c) in &counts {
                    let c = if m == masks[a] { c - 1 } else { c };
                    nodes.extend(std::iter::repeat_n(m, c.min(n)));
                }
                owner.iter_mut().for_each(|o| *o = None);
                let mut size = 0;
                for b in 0..nodes.len() {
                    seen.iter_mut().for_each(|s| *s = false);
                    if augment(b, &nodes, &mut owner, &mut seen) {
                        size += 1;
                    }
                    if size == n {
                        break;
                    }
                }
                for k in 1..=size {
                    out.times[k].get_or_insert(0);
                }
                out.level = out.level.max(size);
                if size == n {
                    break;
                }
            }
            if masks[a] != 0
                && let Some(p) = counts.iter().position(|(m, _)| *m == masks[a])
            {
                counts[p].1 -= 1;
                if counts[p].1 == 0 {
                    counts.swap_remove(p);
                }
            }
        }
        // Times are not defined in unordered mode.
        out.times.iter_mut().for_each(|t| *t = None);
        out.from_previous.iter_mut().for_each(|t| *t = None);
    }
}

/// Kuhn's augmenting path from event node `end` (its step set in `masks`): true when `end` could be
/// matched to a step, re-matching others along the way.
fn augment(end: usize, masks: &[u64], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for k in 0..owner.len() {
        if masks[end] >> k & 1 == 1 && !seen[k] {
            seen[k] = true;
            if owner[k].is_none_or(|o| augment(o, masks, owner, seen)) {
                owner[k] = Some(end);
                return true;
            }
        }
    }
    false
}
