//! The funnel kernel: one customer's rows in, the deepest step reached (and when) out.
//!
//! Uses: `plan`; rooms `funnel`, `operator`.

use crate::exec::funnel::{FunnelOp, FunnelPartial, empty_counts, from_previous_slot, funnel_group_bytes};
use crate::exec::operator::LazyOperator;
use crate::plan::Matcher;

/// Which steps an event can match, by event id and by stage code: a row matches step k when
/// bit k is set in both `event[id]` and `stage[code]` (exact for steps without a predicate).
#[derive(Clone)]
pub(in crate::internals::exec) struct StepMasks {
    event: Vec<u32>,
    stage: [u32; 256],
    stage_steps: bool,
}

impl StepMasks {
    pub(in crate::internals::exec) fn new(steps: &[Matcher], events: usize) -> Option<StepMasks> {
        if steps.len() > 32 || steps.iter().any(Matcher::uses_props) {
            return None;
        }
        let mut m = StepMasks {
            event: vec![0; events],
            stage: [0; 256],
            stage_steps: steps.iter().any(|s| s.stage.is_some()),
        };
        for (k, step) in steps.iter().enumerate() {
            let bit = 1u32 << k;
            match &step.events {
                None => m.event.iter_mut().for_each(|x| *x |= bit),
                Some(ids) => {
                    for &id in ids {
                        if let Some(x) = m.event.get_mut(id as usize) {
                            *x |= bit;
                        }
                    }
                }
            }
            for (code, x) in m.stage.iter_mut().enumerate() {
                if step.stage.is_none_or(|s| usize::from(s) == code) {
                    *x |= bit;
                }
            }
        }
        Some(m)
    }

    /// True when a step names a stage (else every stage code has all bits and the stage
    /// column is not decoded).
    pub(in crate::internals::exec) fn reads_stage(&self) -> bool {
        self.stage_steps
    }
}

/// One customer's rows for the funnel kernel: event id, timestamp and stage (0 when `stages`
/// ends first), side by side — a `zip` whose `next` always inlines, so that timestamps decoded
/// on demand are decoded inside the kernel's loop (the loop is the whole cost of a funnel).
pub(in crate::internals::exec) struct KernelRows<E, T, S> {
    pub(in crate::internals::exec) events: E,
    pub(in crate::internals::exec) ts: T,
    pub(in crate::internals::exec) stages: S,
}

impl<E: Iterator<Item = u32>, T: Iterator<Item = i64>, S: Iterator<Item = u8>> Iterator
    for KernelRows<E, T, S>
{
    type Item = (u32, i64, u8);

    #[inline(always)]
    fn next(&mut self) -> Option<(u32, i64, u8)> {
        let e = self.events.next()?;
        let t = self.ts.next()?;
        Some((e, t, self.stages.next().unwrap_or(0)))
    }
}

/// One customer's progress through an ordered funnel (the fast kernel): state arrays of `N` >
/// steps levels, fed rows in (timestamp, sequence) order — in one call, or block by block for a
/// customer whose rows span blocks — then finished into the partial.
#[derive(Clone)]
pub(in crate::internals::exec) struct FunnelRun<const N: usize> {
    /// settled[k] / fresh[k]: latest start of a chain at level k (i64::MIN, the identity of
    /// `max`, when there is none; whether there is one is in `chains` and `dirty`, since every
    /// i64 is a timestamp). With TIES STRICT a chain reached at timestamp t is `fresh` until
    /// the timestamp changes: events at t extend only `settled` chains, so no two steps share
    /// a timestamp.
    settled: [i64; N],
    fresh: [i64; N],
    /// settled_last[k] / fresh_last[k]: the timestamp of the last event of the latest chain at
    /// level k among those starting at settled[k] / fresh[k] (chains of one start formed later
    /// end later, so it is the newest one's).
    settled_last: [i64; N],
    fresh_last: [i64; N],
    /// Levels with a settled chain.
    chains: u64,
    /// Levels with a fresh chain.
    dirty: u64,
    /// Time from the chain's start to each level's first reaching (set where `timed`).
    times: [i64; N],
    /// Time from the previous step's event to each level's first reaching (where `timed`).
    from_previous: [i64; N],
    timed: u64,
    level: usize,
    /// The timestamp of the rows seen last (TIES STRICT: of the fresh chains; TIES ALLOW: of
    /// the held rows).
    group_ts: i64,
    /// TIES ALLOW: the step mask of the first row at `group_ts`, not yet applied (0: none) —
    /// a tie group is applied only once it is complete, in its canonical order.
    held: u32,
    /// TIES ALLOW: the masks of the other rows at `group_ts` (empty unless rows tie).
    tied: Vec<u32>,
}

/// The value of an empty slot in [`FunnelRun`] (not a marker: validity is kept in bits).
pub(in crate::internals::exec) const NONE: i64 = i64::MIN;

impl<const N: usize> Default for FunnelRun<N> {
    fn default() -> Self {
        FunnelRun {
            settled: [NONE; N],
            fresh: [NONE; N],
            settled_last: [NONE; N],
            fresh_last: [NONE; N],
            chains: 0,
            dirty: 0,
            times: [0; N],
            from_previous: [0; N],
            timed: 0,
            level: 0,
            group_ts: NONE,
            held: 0,
            tied: Vec::new(),
        }
    }
}

impl<const N: usize> FunnelRun<N> {
    /// The state of a customer not yet fed, reusing this one: only the validity bits and
    /// scalars are reset — every array slot is read only where its bit is set, so the arrays
    /// (six times `N` words, the bulk of the state) need no clearing per customer.
    pub(in crate::internals::exec) fn restart(&mut self) {
        self.chains = 0;
        self.dirty = 0;
        self.timed = 0;
        self.level = 0;
        self.group_ts = NONE;
        self.held = 0;
        self.tied.clear();
    }

    /// Feeds the customer's next rows `(event, timestamp, stage)`; true once the funnel is
    /// complete (later rows cannot change the customer's answer, and are not read).
    #[inline(always)]
    pub(in crate::internals::exec) fn feed(
        &mut self,
        op: &FunnelOp<'_>,
        masks: &StepMasks,
        rows: impl Iterator<Item = (u32, i64, u8)>,
    ) -> bool {
        let n = op.steps.len();
        if self.level == n {
            return true;
        }
        let by_stage = masks.reads_stage();
        let step_mask = |e: u32, stage: u8| {
            let mask = masks.event.get(e as usize).copied().unwrap_or(0);
            if mask != 0 && by_stage {
                mask & masks.stage[usize::from(stage)]
            } else {
                mask
            }
        };
        if op.ties_strict {
            for (e, t, stage) in rows {
                let mask = step_mask(e, stage);
                if mask == 0 {
                    continue;
                }
                if self.group_ts != t {
                    self.settle();
                    self.group_ts = t;
                }
                self.apply(op, mask, t);
                if self.level == n {
                    return true;
                }
            }
            return false;
        }
        // TIES ALLOW: the matching rows of one timestamp are held (in locals: the common case,
        // a row alone at its timestamp, costs one compare and two moves) until a row of a
        // later timestamp — matching or not — shows the group complete. `held_ts` follows
        // every row, so `held` (0: nothing held) always belongs to the current timestamp.
        let (mut held, mut held_ts) = (self.held, self.group_ts);
        for (e, t, stage) in rows {
            let mask = step_mask(e, stage);
            if t != held_ts {
                if held != 0 {
                    if self.tied.is_empty() {
                        self.apply(op, held, held_ts);
                    } else {
                        self.apply_tied(op, held, held_ts);
                    }
                    if self.level == n {
                        self.held = 0;
                        return true;
                    }
                }
                (held, held_ts) = (mask, t);
            } else if mask != 0 {
                if held != 0 {
                    self.tied.push(mask);
                } else {
                    held = mask;
                }
            }
        }
        (self.held, self.group_ts) = (held, held_ts);
        false
    }

    /// TIES STRICT: the chains reached at the previous timestamp become extendable.
    #[inline(always)]
    fn settle(&mut self) {
        while self.dirty != 0 {
            let k = self.dirty.trailing_zeros() as usize;
            // Fresh chains end at the last timestamp: later than any settled one.
            if self.fresh[k] >= self.settled[k] || self.chains & (1 << k) == 0 {
                self.settled[k] = self.fresh[k];
                self.settled_last[k] = self.fresh_last[k];
            }
            self.fresh[k] = NONE;
            self.chains |= 1 << k;
            self.dirty &= self.dirty - 1;
        }
    }

    /// TIES ALLOW: applies the held rows of `group_ts`, if any.
    fn release(&mut self, op: &FunnelOp<'_>) {
        if self.held == 0 {
            return;
        }
        if self.tied.is_empty() {
            self.apply(op, self.held, self.group_ts);
        } else {
            self.apply_tied(op, self.held, self.group_ts);
        }
        self.held = 0;
    }

    /// TIES ALLOW: applies the rows of one timestamp `ts` — `first` and those in `tied` — in
    /// their canonical order (docs/QUERY.md, "Tied events": by the first step each matches,
    /// then by its steps), so that the order the rows were written in cannot change the answer.
    #[inline(never)]
    fn apply_tied(&mut self, op: &FunnelOp<'_>, first: u32, ts: i64) {
        let mut group = std::mem::take(&mut self.tied);
        group.push(first);
        group.sort_unstable_by_key(|&mask| (mask.trailing_zeros(), mask));
        for &mask in &group {
            self.apply(op, mask, ts);
        }
        group.clear();
        self.tied = group;
    }

    /// Applies one row matching the steps of `mask` at time `ts`.
    #[inline(always)]
    fn apply(&mut self, op: &FunnelOp<'_>, mask: u32, ts: i64) {
        let strict = op.ties_strict;
        // Steps this event matches, highest first: level k reads level k - 1 before this
        // event writes it, so every extension starts from a chain before this event.
        let mut bits = mask;
        while bits != 0 {
            let k = 32 - bits.leading_zeros() as usize; // step k (bit k - 1)
            bits &= !(1u32 << (k - 1));
            // The chain's start, and its previous step's event time.
            let (c, previous) = if k == 1 {
                if !op.in_range(ts) {
                    continue;
                }
                (ts, ts)
            } else {
                let s = self.settled[k - 1];
                if self.chains & (1 << (k - 1)) == 0 || !op.within(s, ts) {
                    continue;
                }
                (s, self.settled_last[k - 1])
            };
            if strict {
                if self.dirty & (1 << k) == 0 || c >= self.fresh[k] {
                    self.fresh[k] = c;
                    self.fresh_last[k] = ts;
                }
                self.dirty |= 1 << k;
            } else {
                if self.chains & (1 << k) == 0 || c >= self.settled[k] {
                    self.settled[k] = c;
                    self.settled_last[k] = ts;
                }
                self.chains |= 1 << k;
            }
            if self.timed & (1 << k) == 0 {
                // c ≤ previous ≤ t, and t - c ≤ WITHIN (or 0 at step 1): no overflow.
                self.times[k] = ts - c;
                self.from_previous[k] = ts - previous;
                self.timed |= 1 << k;
            }
            self.level = self.level.max(k);
        }
    }

    /// Adds the customer (once it reached step 1) to `partial`.
    pub(in crate::internals::exec) fn finish(&mut self, op: &FunnelOp<'_>, partial: &mut FunnelPartial) {
        self.settle_pending(op);
        self.add_to(op, partial);
    }

    /// Applies what the last rows left pending (TIES ALLOW: the held tie group): the state is
    /// then the customer's answer.
    pub(in crate::internals::exec) fn settle_pending(&mut self, op: &FunnelOp<'_>) {
        if !op.ties_strict {
            self.release(op);
        }
    }

    /// Adds the settled customer (once it reached step 1) to `partial`.
    pub(in crate::internals::exec) fn add_to(&self, op: &FunnelOp<'_>, partial: &mut FunnelPartial) {
        let n = op.steps.len();
        // Every level is reached from step 1 in range: level 0 means the customer never
        // entered the funnel.
        if self.level == 0 {
            return;
        }
        let level = self.level;
        let bytes = &mut partial.bytes;
        let entry = partial.ungrouped.get_or_insert_with(|| {
            *bytes += funnel_group_bytes(n + 1);
            empty_counts(n)
        });
        entry.0[1..=level].iter_mut().for_each(|c| *c += 1);
        // Step 1 has no time to convert (its row shows none): only steps 2.. keep samples.
        if level >= 2 {
            let (from_first, from_previous) = entry.1.split_at_mut(from_previous_slot(n, 0));
            for (samples, &time) in from_first[2..=level].iter_mut().zip(&self.times[2..=level]) {
                samples.push(time);
            }
            // Step 2's time from the previous step is its time from step 1 (read from there).
            let pairs = from_previous[3.min(level + 1)..=level]
                .iter_mut()
                .zip(&self.from_previous[3.min(level + 1)..=level]);
            for (samples, &time) in pairs {
                samples.push(time);
            }
            partial.bytes += 8 * (level - 1) + 8 * (level - 2);
        }
    }
}

/// Lazily: funnels of up to 7 steps on the fast kernel that read no stage.
impl LazyOperator for FunnelOp<'_> {
    type State = FunnelRun<8>;

    fn lazy(&self) -> bool {
        self.fast() && self.steps.len() < 8 && self.masks.as_ref().is_some_and(|m| !m.reads_stage())
    }

    fn feed(
        &self,
        state: &mut FunnelRun<8>,
        events: impl Iterator<Item = u32>,
        ts: impl Iterator<Item = i64>,
    ) -> bool {
        let Some(m) = &self.masks else {
            return true;
        };
        let stages = std::iter::empty();
        state.feed(self, m, KernelRows { events, ts, stages })
    }

    fn end(&self, partial: &mut FunnelPartial, state: &mut FunnelRun<8>) {
        state.finish(self, partial);
    }

    /// Settled once, added to each (no copy of the state).
    fn end_each<'p>(&self, partials: impl Iterator<Item = &'p mut FunnelPartial>, state: &mut FunnelRun<8>)
    where
        FunnelPartial: 'p,
    {
        state.settle_pending(self);
        for partial in partials {
            state.add_to(self, partial);
        }
    }

    fn restart(&self, state: &mut FunnelRun<8>, _customer: u32) {
        state.restart();
    }
}
