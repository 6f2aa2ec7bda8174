//! FUNNEL: how far customers get through ordered (or unordered) steps, and how fast.
//!
//! Uses: `dict`, `limits`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `funnel`, `group`, `labels`, `median`, `operator`, `options`, `prefilter`, `range`, `scan`, `ties`.

mod exclusion;
pub(in crate::internals::exec) mod explain;
mod kernel;
mod modes;
mod scope;

use crate::dict::Dicts;
use crate::exec::drive::evaluate_lazy;
use crate::exec::funnel::kernel::{FunnelRun, KernelRows, StepMasks};
use crate::exec::funnel::scope::{Scope, Sessions, in_entry};
use crate::exec::group::GroupBy;
use crate::exec::labels::customer_table;
use crate::exec::median::{Samples, medians_means, quantiles_cont};
use crate::exec::operator::{HashMap, Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::prefilter::candidates;
use crate::exec::range::{data_range, on_day_boundary};
use crate::exec::scan::{columns, passes};
use crate::exec::ties::order_ties;
use crate::limits;
use crate::model::Columns;
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ParseError;
use crate::query::ast::FunnelMode;
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use std::ops::Range;

#[derive(Clone)]
pub(in crate::internals::exec) struct FunnelOp<'a> {
    steps: Vec<Matcher>,
    within: i64,
    /// `WITHIN SESSION`: the session gap (µs); a chain's events lie in one session of the
    /// customer's events (`within` is then unbounded).
    session: Option<i64>,
    mode: FunnelMode,
    ties_strict: bool,
    /// (matcher, from, to) with 1-based steps.
    excludes: Vec<(Matcher, usize, usize)>,
    /// `EXCLUSION CHAIN`: exclusions only invalidate chains (else a customer whose every
    /// longest chain is hit leaves the funnel, [`exclusion::keeps_customer`]).
    exclusion_chain: bool,
    range: Option<(i64, i64)>,
    filter: Option<CPred>,
    by: Option<GroupBy>,
    dicts: &'a Dicts,
    /// Distinct "highest reachable step" values a chain can have (exclusion caps), ascending;
    /// the last is the number of steps.
    caps: Vec<usize>,
    /// Collect the customers of each level (for CUSTOMERS).
    collect: bool,
    /// `CUSTOMERS IN FUNNEL …`: which customers to list (`collect` is then set).
    drill: Option<FunnelDrill>,
    /// Step masks by event id and stage, when every step is an event/stage test (no property
    /// predicate): the fast ordered kernel's matchers.
    masks: Option<StepMasks>,
    /// `PERIOD p`: the buckets of the range (or of the data); a customer counts in each bucket
    /// holding a step-1 event, at the level of the chains starting in it.
    buckets: Option<Buckets>,
    /// Per step: `FIRST step` (only the customer's first matching event fills it).
    first: Vec<bool>,
    /// `HOLDING p`: the property every event of a chain shares with its step-1 event.
    holding: Option<GroupBy>,
    /// `PERCENTILES`: the p25, p75 and p90 times to convert (from step 1) in the table.
    percentiles: bool,
}

/// The quantiles of `PERCENTILES` (continuous, as the median).
const PERCENTILES: [f64; 3] = [0.25, 0.75, 0.9];

/// A group of a funnel's counts: the bucket's index (0 without `PERIOD`) and the breakdown
/// value's slot (`None`: null, or no BY).
pub(in crate::internals::exec) type GroupKey = (usize, Option<u64>);

/// Customers per level (index = level) and times to convert per step, of one group: from step 1
/// at index k, from step k − 1 at index n + 1 + k (n steps; empty at step 2, whose times from
/// the previous step are those from step 1).
pub(in crate::internals::exec) type FunnelCounts = (Vec<u64>, Vec<Samples>);

/// The counts of a group no customer has reached yet, for a funnel of `n` steps.
pub(in crate::internals::exec) fn empty_counts(count: usize) -> FunnelCounts {
    (vec![0; count + 1], vec![Samples::default(); 2 * (count + 1)])
}

/// The index in [`FunnelCounts`]' samples of step `k`'s times from the previous step.
pub(in crate::internals::exec) fn from_previous_slot(count: usize, step: usize) -> usize {
    count + 1 + step
}

#[derive(Default)]
pub(in crate::internals::exec) struct FunnelPartial {
    /// Per bucket and breakdown value slot.
    groups: HashMap<GroupKey, FunnelCounts>,
    /// With `collect`: customers by the level they reached (index = level).
    levels: Vec<roaring::RoaringBitmap>,
    /// The no-breakdown group of the fast kernel, kept out of `groups` so that a customer
    /// costs no hash look-up; [`settle`](Self::settle) moves it in (merging does).
    ungrouped: Option<FunnelCounts>,
    /// Reused per-customer buffers (not part of the answer).
    scratch: Scratch,
    /// Reused per-customer outcome.
    outcome: FunnelOutcome,
    /// Reused per-customer session spans (`WITHIN SESSION`).
    sessions: Vec<(i64, i64)>,
    /// Heap bytes of `groups` and `levels` (for the memory budget).
    bytes: usize,
}

impl FunnelPartial {
    /// Moves `ungrouped` into `groups` (as the `None` group).
    fn settle(&mut self) {
        let Some((counts, times)) = self.ungrouped.take() else {
            return;
        };
        add_counts(self.groups.entry((0, None)), counts, times);
    }
}

/// Adds one group's counts and time samples to `e` (moved in whole when `e` is new).
pub(in crate::internals::exec) fn add_counts(
    entry: std::collections::hash_map::Entry<'_, GroupKey, FunnelCounts>,
    counts: Vec<u64>,
    times: Vec<Samples>,
) {
    use std::collections::hash_map::Entry;
    match entry {
        Entry::Vacant(v) => {
            v.insert((counts, times));
        }
        Entry::Occupied(mut o) => {
            let entry = o.get_mut();
            for (x, y) in entry.0.iter_mut().zip(counts) {
                *x += y;
            }
            for (x, y) in entry.1.iter_mut().zip(times) {
                x.append(y);
            }
        }
    }
}

/// Buffers reused across customers by one worker.
#[derive(Default)]
pub(in crate::internals::exec) struct Scratch {
    idx: Vec<usize>,
    settled: Vec<Option<(i64, i64)>>,
    fresh: Vec<Option<(i64, i64)>>,
    cands: Vec<(usize, usize, (i64, i64))>,
}

/// Result of one customer: level reached and, per step, time to convert (µs).
#[derive(Default)]
pub struct FunnelOutcome {
    /// Furthest step reached (0 = none).
    pub level: usize,
    /// Time from step 1 to step k on the earliest-completing chain, for k = 1..=level.
    pub times: Vec<Option<i64>>,
    /// Time from step k − 1 to step k on that chain (its step-(k − 1) event the latest
    /// possible), for k = 1..=level.
    pub from_previous: Vec<Option<i64>>,
    /// The event (row index) that first completed step k.
    pub at: Vec<Option<usize>>,
}

impl FunnelOutcome {
    /// No step reached, for a funnel of `n` steps (allocations kept).
    pub(in crate::internals::exec) fn reset(&mut self, count: usize) {
        self.level = 0;
        self.times.clear();
        self.from_previous.clear();
        self.at.clear();
        self.times.resize(count + 1, None);
        self.from_previous.resize(count + 1, None);
        self.at.resize(count + 1, None);
    }
}

impl<'a> FunnelOp<'a> {
    /// The operator of funnel `f`, its names resolved by `res` against `input`.
    pub(in crate::internals::exec) fn resolve(
        funnel: &crate::query::ast::Funnel,
        res: &Resolver<'_>,
        input: &Input<'a>,
    ) -> Result<FunnelOp<'a>, QueryError> {
        let excludes: Vec<(Matcher, usize, usize)> = funnel
            .excludes
            .iter()
            .map(|x| Ok((res.step(&x.step)?, x.from, x.to)))
            .collect::<Result<_, ParseError>>()?;
        Ok(FunnelOp {
            collect: false,
            caps: FunnelOp::caps(funnel.steps.len(), &excludes),
            excludes,
            exclusion_chain: funnel.exclusion_chain,
            steps: funnel
                .steps
                .iter()
                .map(|s| res.step(s))
                .collect::<Result<_, _>>()?,
            within: funnel.within_us,
            session: funnel.session.map(|(gap, _)| gap),
            mode: funnel.mode,
            ties_strict: funnel.ties_strict,
            range: res.range(&funnel.common.range)?,
            filter: funnel.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            by: match (&funnel.by, &funnel.by2) {
                (Some((name, span)), None) => Some(GroupBy::resolve(res, input, (name, *span))?),
                (Some((name, span)), Some((name2, span2))) => Some(GroupBy::resolve_pair(
                    res,
                    input,
                    ((name, *span), (name2, *span2)),
                )?),
                (None, _) => None,
            },
            dicts: input.dicts,
            drill: None,
            masks: None,
            first: funnel.first.clone(),
            percentiles: funnel.percentiles,
            holding: (funnel.holding.as_ref())
                .map(|(name, span)| {
                    if name.starts_with(crate::model::PROFILE_PREFIX) {
                        let why = format!("HOLDING keeps an event property; `{name}` is the customer's");
                        return Err(QueryError::from(ParseError::new(*span, why)));
                    }
                    GroupBy::resolve(res, input, (name, *span))
                })
                .transpose()?,
            buckets: funnel
                .period
                .map(|(period, span)| {
                    let (lo, hi) = data_range(input, res.range(&funnel.common.range)?);
                    let period = period.starting(&funnel.common);
                    Buckets::new(lo, hi, 0, period, &res.tz, limits::BUCKETS_MAX)
                        .map_err(|m| ParseError::new(span, m))
                })
                .transpose()?,
        })
        .map(|mut op| {
            op.masks = StepMasks::new(&op.steps, input.dicts.events.len());
            for (step, _) in op.steps.iter_mut().zip(&op.first).filter(|(_, first)| **first) {
                step.label = format!("FIRST {}", step.label);
            }
            op
        })
    }
}

impl FunnelOp<'_> {
    /// The result rows: per (bucket, group), per step, its customers, conversion rates and
    /// (from step 2) the median and mean time to convert in `stats`: per (bucket, group, step ≥
    /// 2) in order, from step 1 then from the previous step.
    /// With `PERCENTILES`, `quantiles` holds [`PERCENTILES`] per (bucket, group, step ≥ 2).
    fn table(
        &self,
        groups: &[(String, Vec<String>, FunnelCounts)],
        stats: Vec<(Cell, Cell)>,
        quantiles: Vec<Vec<Cell>>,
    ) -> Table {
        let mut cols = vec![
            "step",
            "event",
            "customers",
            "conversion_from_previous",
            "conversion_from_first",
            "median_time_to_convert_s",
            "mean_time_to_convert_s",
            "median_time_from_previous_s",
            "mean_time_from_previous_s",
        ];
        if self.percentiles {
            cols.splice(
                7..7,
                [
                    "p25_time_to_convert_s",
                    "p75_time_to_convert_s",
                    "p90_time_to_convert_s",
                ],
            );
        }
        match &self.by {
            Some(by) if by.is_pair() => {
                cols.splice(0..0, ["group", "group2"]);
            }
            Some(_) => cols.insert(0, "group"),
            None => {}
        }
        if self.buckets.is_some() {
            cols.insert(0, "bucket");
        }
        let mut t = Table::new(&cols);
        let mut stats = stats.into_iter();
        let mut quantiles = quantiles.into_iter();
        for (bucket, g, (counts, _)) in groups {
            for k in 1..=self.steps.len() {
                let c = counts[k];
                let rate = |d: u64| {
                    if d == 0 {
                        Cell::Null
                    } else {
                        Cell::Rate(c as f64 / d as f64)
                    }
                };
                let none = (Cell::Null, Cell::Null);
                let ((med, mean), (med_previous, mean_previous)) = if k == 1 {
                    (none.clone(), none)
                } else {
                    let from_first = stats.next().unwrap_or(none.clone());
                    // At step 2 the previous step is step 1: the same times.
                    let from_previous = if k == 2 {
                        from_first.clone()
                    } else {
                        stats.next().unwrap_or(none)
                    };
                    (from_first, from_previous)
                };
                let mut row = vec![
                    Cell::Int(k as i64),
                    Cell::Str(self.steps[k - 1].label.clone()),
                    Cell::Int(c as i64),
                    if k == 1 { Cell::Null } else { rate(counts[k - 1]) },
                    rate(counts[1]),
                    med,
                    mean,
                    med_previous,
                    mean_previous,
                ];
                if self.percentiles {
                    let cells = if k == 1 {
                        Vec::new()
                    } else {
                        quantiles.next().unwrap_or_default()
                    };
                    row.splice(
                        7..7,
                        cells.into_iter().chain(std::iter::repeat(Cell::Null)).take(3),
                    );
                }
                row.splice(0..0, g.iter().map(|label| Cell::Str(label.clone())));
                if self.buckets.is_some() {
                    row.insert(0, Cell::Str(bucket.clone()));
                }
                t.rows.push(row);
            }
        }
        t
    }

    /// The steps whose in-range event lets a customer enter the funnel (and whose first such
    /// event gives the BY group): step 1, or in unordered mode any step.
    fn entry_steps(&self) -> &[Matcher] {
        match self.mode {
            FunnelMode::Unordered => &self.steps,
            FunnelMode::Ordered | FunnelMode::Strict => &self.steps[..1],
        }
    }

    /// The customers that may enter the funnel, from the bitmaps (`None`: everyone).
    pub(in crate::internals::exec) fn entry_candidates(
        &self,
        input: &Input<'_>,
    ) -> Option<roaring::RoaringBitmap> {
        self.entry_steps()
            .iter()
            .try_fold(roaring::RoaringBitmap::new(), |acc, step| {
                candidates(step, input.bitmaps, self.range).map(|set| acc | set)
            })
    }

    /// True when event `i` is one of the funnel's steps by its name or stage (a step's own
    /// WHERE aside): CORRELATE leaves such events out of its event features.
    pub(in crate::internals::exec) fn is_step_event(&self, rows: &Columns, index: usize) -> bool {
        self.steps.iter().any(|step| {
            step.events
                .as_ref()
                .is_none_or(|ids| ids.contains(&rows.event[index]))
                && step.stage.is_none_or(|s| rows.stage.get(index) == Some(&s))
        })
    }

    /// The customer's funnel window (docs/QUERY.md, CORRELATE) for its events `idx` (from
    /// [`events`](Self::events)): `None` when it did not enter (or customer-level exclusions
    /// remove it), else (converted, start, end) — converted: from the counted chain's step-1
    /// event to its last step's; dropped: from its first step-1 event to the end of the window
    /// (with `WITHIN SESSION`, of that event's session).
    pub(in crate::internals::exec) fn window(
        &self,
        rows: &Columns,
        idx: &[usize],
        (scratch, outcome): (&mut Scratch, &mut FunnelOutcome),
    ) -> Option<(bool, i64, i64)> {
        let firsts = self.firsts(rows, idx);
        let sessions = self.sessions(rows, idx);
        let scope = Scope::new(self.range, &firsts).with_sessions(&sessions);
        if !self.evaluate(rows, idx, &scope, scratch, outcome) || outcome.level == 0 {
            return None;
        }
        let n = self.steps.len();
        if outcome.level == n {
            let end = rows.ts[(*outcome.at.get(n)?)?];
            return Some((true, end - (*outcome.times.get(n)?)?, end));
        }
        let start = rows.ts[(*outcome.at.get(1)?)?];
        let end = match self.session {
            Some(_) => {
                let at = sessions.partition_point(|span| span.0 <= start);
                sessions.get(at.checked_sub(1)?)?.1
            }
            None => start.saturating_add(self.within),
        };
        Some((false, start, end))
    }

    /// The customer's events of `run` that pass WHERE, into `idx`, in event order: tied events
    /// ordered by [`tie_key`](Self::tie_key).
    pub(in crate::internals::exec) fn events(&self, rows: &Columns, run: Range<usize>, idx: &mut Vec<usize>) {
        idx.clear();
        idx.extend(run.filter(|&i| passes(&self.filter, rows, i, self.dicts)));
        order_ties(idx, rows, |i| self.tie_key(rows, i));
    }

    /// Where event `index` goes among the events of its timestamp (docs/QUERY.md, "Tied events"):
    /// by the first step it matches (events matching none last), then the set of steps it
    /// matches, the exclusions it matches, its BY value and its name. Events with equal keys
    /// are interchangeable for every answer.
    fn tie_key(&self, rows: &Columns, index: usize) -> (u32, u64, u64, String, String) {
        let bits = |matchers: &mut dyn Iterator<Item = &Matcher>| {
            matchers
                .enumerate()
                .filter(|(_, m)| m.matches(rows, index, self.dicts))
                .fold(0u64, |acc, (k, _)| acc | 1 << k)
        };
        let steps = bits(&mut self.steps.iter());
        let excluded = bits(&mut self.excludes.iter().map(|x| &x.0));
        // The BY value, then the HOLDING value (which decides the chains an event may join).
        let group = [&self.by, &self.holding]
            .into_iter()
            .flatten()
            .flat_map(|g| g.labels(g.slot(rows, index), self.dicts))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let name = self
            .dicts
            .events
            .name(rows.event[index])
            .unwrap_or_default()
            .to_owned();
        (steps.trailing_zeros(), steps, excluded, group, name)
    }

    fn in_range(&self, ts: i64) -> bool {
        in_entry(self.range, ts)
    }

    /// True when `ts` is at most WITHIN after `start` (`start` ≤ `ts`: rows come in time order), exact
    /// for any two i64 timestamps.
    #[inline(always)]
    fn within(&self, start: i64, ts: i64) -> bool {
        ts.wrapping_sub(start) as u64 <= self.within as u64
    }

    /// True when a chain started at `start` may take an event at `ts` (`start` ≤ `ts`) in `scope`: within
    /// the window, or with `WITHIN SESSION` in the session of `start`.
    #[inline(always)]
    fn reachable(&self, scope: &Scope<'_>, start: i64, ts: i64) -> bool {
        self.within(start, ts) && scope.in_session(start, ts)
    }

    /// With `WITHIN SESSION`, the sessions of the customer's events `idx` (else none).
    fn sessions(&self, rows: &Columns, idx: &[usize]) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        if let Some(gap) = self.session {
            session_spans(idx.iter().map(|&i| rows.ts[i]), gap, &mut out);
        }
        out
    }

    /// True when [`ordered_fast`](Self::ordered_fast) evaluates this funnel.
    fn fast(&self) -> bool {
        self.masks.is_some()
            && self.mode == FunnelMode::Ordered
            && self.excludes.is_empty()
            && self.filter.is_none()
            && self.by.is_none()
            && self.buckets.is_none()
            && self.holding.is_none()
            && !self.first.contains(&true)
            && !self.collect
            && self.session.is_none()
    }

    fn caps(steps: usize, excludes: &[(Matcher, usize, usize)]) -> Vec<usize> {
        let mut caps: Vec<usize> = excludes.iter().map(|e| e.2 - 1).chain([steps]).collect();
        caps.sort_unstable();
        caps.dedup();
        caps
    }

    /// The ordered funnel without exclusions, filter, breakdown or drill-down, on step masks:
    /// the same chains as [`ordered`](Self::ordered) (one cap, so at most one candidate per
    /// level), without its general bookkeeping. Adds the customer to `p`.
    fn ordered_fast(
        &self,
        masks: &StepMasks,
        partial: &mut FunnelPartial,
        rows: &Columns,
        run: Range<usize>,
    ) {
        let events = rows.event.get(run.clone()).unwrap_or(&[]).iter().copied();
        let ts = rows.ts.get(run.clone()).unwrap_or(&[]).iter().copied();
        if masks.reads_stage() {
            let stages = rows.stage.get(run).unwrap_or(&[]).iter().copied();
            self.ordered_fast_rows(masks, partial, KernelRows { events, ts, stages });
        } else {
            let stages = std::iter::empty();
            self.ordered_fast_rows(masks, partial, KernelRows { events, ts, stages });
        }
    }

    /// [`ordered_fast`](Self::ordered_fast) on one customer's rows, read only until the funnel
    /// is complete.
    fn ordered_fast_rows(
        &self,
        masks: &StepMasks,
        partial: &mut FunnelPartial,
        rows: impl Iterator<Item = (u32, i64, u8)>,
    ) {
        // Per-customer state sized for the steps (a funnel of 2–3 steps keeps 3 × 4 words, not
        // 3 × 33, to set up per customer).
        match self.steps.len() {
            0..=3 => self.ordered_fast_n::<4>(masks, partial, rows),
            4..=7 => self.ordered_fast_n::<8>(masks, partial, rows),
            _ => self.ordered_fast_n::<33>(masks, partial, rows),
        }
    }

    /// [`ordered_fast_rows`](Self::ordered_fast_rows) with state arrays of `N` > steps levels.
    fn ordered_fast_n<const N: usize>(
        &self,
        masks: &StepMasks,
        partial: &mut FunnelPartial,
        rows: impl Iterator<Item = (u32, i64, u8)>,
    ) {
        let mut run = FunnelRun::<N>::default();
        run.feed(self, masks, rows);
        run.finish(self, partial);
    }
}

impl FunnelOp<'_> {
    /// Adds the customer whose events (in event order, WHERE applied) are `idx` to `partial`,
    /// counting the chains in `scope`, in bucket `bucket`.
    fn count(
        &self,
        partial: &mut FunnelPartial,
        rows: &Columns,
        idx: &[usize],
        scope: &Scope<'_>,
        bucket: usize,
    ) {
        let entering = self.entry_steps().len();
        let first = idx.iter().copied().find(|&i| {
            in_entry(scope.entry, rows.ts[i]) && (0..entering).any(|k| self.step_matches(k, rows, i, scope))
        });
        let Some(first) = first else {
            return;
        };
        let group = self.by.as_ref().and_then(|g| g.slot(rows, first));
        let mut o = std::mem::take(&mut partial.outcome);
        if !self.evaluate(rows, idx, scope, &mut partial.scratch, &mut o) {
            // Customer-level exclusion: the customer counts at no step.
            partial.outcome = o;
            return;
        }
        let n = self.steps.len();
        if self.collect {
            partial.levels.resize_with(n + 1, Default::default);
            partial.levels[o.level].insert(rows.cid[first]);
            // An array container holds 2 bytes per customer; a bitmap container less.
            partial.bytes += 2;
        }
        let bytes = &mut partial.bytes;
        let entry = partial.groups.entry((bucket, group)).or_insert_with(|| {
            *bytes += funnel_group_bytes(n + 1);
            empty_counts(n)
        });
        for k in 1..=o.level {
            entry.0[k] += 1;
            // Step 1 has no time to convert (its row shows none).
            if k >= 2
                && let (Some(t), Some(p)) = (o.times[k], o.from_previous[k])
            {
                entry.1[k].push(t);
                // At step 2 the time from the previous step is the time from step 1, which
                // `finish` reads for both: only steps 3.. keep their own samples.
                if k >= 3 {
                    entry.1[from_previous_slot(n, k)].push(p);
                }
                partial.bytes += 16;
            }
        }
        partial.outcome = o;
    }

    /// The groups of `partial` in table order, labelled: by bucket (every bucket of the range,
    /// with `PERIOD`), then by breakdown label; without BY a bucket with no customer has zero
    /// counts, with BY every bucket lists the values seen in any.
    fn ordered_groups(
        &self,
        mut partial: FunnelPartial,
        dicts: &Dicts,
        rows_max: usize,
    ) -> Result<Vec<(String, Vec<String>, FunnelCounts)>, QueryError> {
        let n = self.steps.len();
        let mut values: Vec<(Vec<String>, Option<u64>)> = match &self.by {
            None => vec![(Vec::new(), None)],
            Some(by) => {
                let slots: std::collections::HashSet<Option<u64>> =
                    partial.groups.keys().map(|k| k.1).collect();
                slots.into_iter().map(|g| (by.labels(g, dicts), g)).collect()
            }
        };
        values.sort();
        let buckets = self.buckets.as_ref().map_or(1, Buckets::len);
        if buckets.saturating_mul(values.len()).saturating_mul(n) > rows_max {
            return Err(QueryError::TooManyRows(rows_max));
        }
        let mut out = Vec::with_capacity(buckets * values.len());
        for b in 0..buckets {
            let bucket = self.buckets.as_ref().map(|x| x.label(b)).unwrap_or_default();
            for (label, slot) in &values {
                let counts = partial
                    .groups
                    .remove(&(b, *slot))
                    .unwrap_or_else(|| empty_counts(n));
                out.push((bucket.clone(), label.clone(), counts));
            }
        }
        Ok(out)
    }

    /// `PERIOD`: counts the customer once in each bucket holding one of its step-1 events in
    /// range, as the funnel whose range is that bucket (docs/QUERY.md). A chain starting in a
    /// bucket has no event before the bucket's start nor after its end plus WITHIN, so each
    /// bucket reads only those of the customer's events.
    fn count_per_bucket(
        &self,
        partial: &mut FunnelPartial,
        rows: &Columns,
        idx: &[usize],
        (buckets, firsts, sessions): (&Buckets, &[Option<usize>], &Sessions),
    ) {
        let steps = self.entry_steps();
        let mut last = None;
        for &i in idx {
            let t = rows.ts[i];
            if !self.in_range(t) || !steps.iter().any(|step| step.matches(rows, i, self.dicts)) {
                continue;
            }
            let Some(b) = buckets.index(t).filter(|&b| last != Some(b)) else {
                continue;
            };
            last = Some(b);
            let (start, end) = (buckets.starts[b], buckets.starts[b + 1]);
            let window = self
                .range
                .map_or((start, end), |(lo, hi)| (start.max(lo), end.min(hi)));
            let reach = (window.1 - 1).saturating_add(self.within);
            let from = idx.partition_point(|&j| rows.ts[j] < window.0);
            let to = idx.partition_point(|&j| rows.ts[j] <= reach);
            let scope = Scope::new(Some(window), firsts).with_sessions(sessions);
            self.count(partial, rows, &idx[from..to], &scope, b);
        }
    }
}

impl Operator for FunnelOp<'_> {
    type Partial = FunnelPartial;

    fn columns(&self) -> ColumnSet {
        let props = self.filter.is_some()
            || self.by.as_ref().is_some_and(|g| !g.event_props().is_empty())
            || self.steps.iter().any(Matcher::uses_props)
            || self.excludes.iter().any(|x| x.0.uses_props())
            || self.holding.is_some();
        // The fast kernel reads the stage column only for a stage step.
        let stage = !self.fast() || self.steps.iter().any(|s| s.stage.is_some());
        ColumnSet {
            stage,
            ..columns(props)
        }
    }

    /// Only customers with a step-1 event in range (per the bitmaps) are scanned. Those of them
    /// with no step-2 event at all stop at level 1: the bitmaps count them exactly (step 1
    /// without a property predicate, a whole-day range, no WHERE, BY or exclusions), and only
    /// the others are scanned.
    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<FunnelPartial>, QueryError> {
        let only = self
            .entry_steps()
            .iter()
            .try_fold(roaring::RoaringBitmap::new(), |acc, step| {
                candidates(step, input.bitmaps, self.range).map(|set| acc | set)
            });
        let prunable = !self.collect
            && self.by.is_none()
            && self.buckets.is_none()
            && !self.first.contains(&true)
            && self.filter.is_none()
            && self.excludes.is_empty()
            && matches!(self.mode, FunnelMode::Ordered | FunnelMode::Strict)
            && self.steps.len() >= 2
            && self.steps[0].filter.is_none()
            && self
                .range
                .is_none_or(|(x, y)| on_day_boundary(x) && on_day_boundary(y));
        if prunable
            && let (Some(first), Some(second)) = (&only, candidates(&self.steps[1], input.bitmaps, None))
        {
            let scan = first & &second;
            let n = self.steps.len();
            let mut counts = vec![0; n + 1];
            counts[1] = first.len() - scan.len();
            let mut counted = FunnelPartial::default();
            counted.groups.insert((0, None), (counts, empty_counts(n).1));
            return Ok(Prefilter::Scan {
                only: Some(scan),
                unsealed_only: false,
                counted,
            });
        }
        Ok(Prefilter::only(only))
    }

    fn customer(&self, partial: &mut FunnelPartial, rows: &Columns, run: Range<usize>) {
        if let Some(m) = &self.masks
            && self.fast()
        {
            return self.ordered_fast(m, partial, rows, run);
        }
        let mut idx = std::mem::take(&mut partial.scratch.idx);
        self.events(rows, run, &mut idx);
        let firsts = self.firsts(rows, &idx);
        let mut sessions = std::mem::take(&mut partial.sessions);
        sessions.clear();
        if let Some(gap) = self.session {
            session_spans(idx.iter().map(|&i| rows.ts[i]), gap, &mut sessions);
        }
        match &self.buckets {
            None => {
                let scope = Scope::new(self.range, &firsts).with_sessions(&sessions);
                self.count(partial, rows, &idx, &scope, 0);
            }
            Some(buckets) => {
                self.count_per_bucket(partial, rows, &idx, (buckets, &firsts, &sessions));
            }
        }
        partial.sessions = sessions;
        partial.scratch.idx = idx;
    }

    fn footprint(&self, partial: &FunnelPartial) -> usize {
        partial.bytes
    }

    fn merge(&self, into: &mut FunnelPartial, mut from: FunnelPartial) {
        into.settle();
        from.settle();
        into.bytes += from.bytes;
        if into.levels.len() < from.levels.len() {
            into.levels.resize_with(from.levels.len(), Default::default);
        }
        for (x, y) in into.levels.iter_mut().zip(from.levels) {
            *x |= y;
        }
        for (g, (counts, times)) in from.groups {
            add_counts(into.groups.entry(g), counts, times);
        }
    }

    fn finish(
        &self,
        mut partial: FunnelPartial,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        partial.settle();
        let n = self.steps.len();
        if let Some((k, dropped, limit)) = self.drill {
            partial.levels.resize_with(n + 1, Default::default);
            let set = if dropped {
                partial.levels[k - 1].clone()
            } else {
                partial.levels[k..]
                    .iter()
                    .fold(roaring::RoaringBitmap::new(), |acc, b| acc | b)
            };
            return Ok(customer_table(&set, input.dicts, limit, opts.rows_max));
        }
        let groups = self.ordered_groups(partial, input.dicts, opts.rows_max)?;
        // Medians and means of every (group, step ≥ 2), on the query's threads: selecting the
        // median of a few hundred thousand samples per step is the serial tail of a funnel.
        // Per group and step k ≥ 2: times from step 1, then (k ≥ 3) from step k − 1.
        let sets = groups
            .iter()
            .flat_map(|(_, _, (_, times))| {
                (2..=n).flat_map(move |k| {
                    std::iter::once(&times[k]).chain((k > 2).then(|| &times[from_previous_slot(n, k)]))
                })
            })
            .collect();
        let stats = medians_means(sets, opts.threads)?;
        // PERCENTILES: of the times from step 1, per (group, step ≥ 2).
        let quantiles = if self.percentiles {
            (groups.iter())
                .flat_map(|(_, _, (_, times))| (2..=n).map(move |k| quantiles_cont(&times[k], &PERCENTILES)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(self.table(&groups, stats, quantiles))
    }
}

/// The sessions of a customer's event times `ts` (ascending) as (first, last) time spans:
/// maximal runs in which no two consecutive times are more than `gap` apart.
fn session_spans(ts: impl Iterator<Item = i64>, gap: i64, out: &mut Vec<(i64, i64)>) {
    for t in ts {
        match out.last_mut() {
            Some(span) if t.wrapping_sub(span.1) as u64 <= gap as u64 => span.1 = t,
            _ => out.push((t, t)),
        }
    }
}

/// Heap bytes of one funnel group with `levels` levels (counts, two sample vectors per level,
/// map entry).
pub(in crate::internals::exec) fn funnel_group_bytes(levels: usize) -> usize {
    64 + levels * (8 + 2 * 24)
}

/// What a CUSTOMERS drill-down wants from a funnel: step, DROPPED, LIMIT.
pub(in crate::internals::exec) type FunnelDrill = (usize, bool, Option<u64>);

/// Runs a FUNNEL statement; with `drill`, lists the customers who reached (or dropped at) a
/// step.
pub(in crate::internals::exec) fn funnel(
    funnel: &crate::query::ast::Funnel,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
    drill: Option<FunnelDrill>,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, funnel.common.tz.as_ref())?;
    if funnel.mode == FunnelMode::Unordered
        && let Some(x) = funnel.excludes.first()
    {
        return Err(ParseError::new(x.span, "EXCLUDE is not supported with MODE UNORDERED").into());
    }
    let op = FunnelOp {
        collect: drill.is_some(),
        drill,
        ..FunnelOp::resolve(funnel, &res, input)?
    };
    let mut table = evaluate_lazy(&op, input, opts)?;
    if drill.is_none() {
        table
            .warnings
            .extend(where_removed_step_one(funnel, text, &table, input, opts)?);
    }
    Ok(table)
}

/// When the statement's `WHERE` leaves step 1 with no customer although the steps alone have
/// some, the likely mistake: a filter meant for one step (`purchase WHERE amount > 10`) written
/// where it applies to every step.
fn where_removed_step_one(
    funnel: &crate::query::ast::Funnel,
    text: &str,
    table: &Table,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Option<String>, QueryError> {
    let Some(filter) = &funnel.common.filter else {
        return Ok(None);
    };
    if funnel.period.is_some() || step_one_customers(table) != 0 {
        return Ok(None);
    }
    let mut unfiltered = funnel.clone();
    unfiltered.common.filter = None;
    let res = Resolver::new(input.dicts, text, funnel.common.tz.as_ref())?;
    let op = FunnelOp::resolve(&unfiltered, &res, input)?;
    if step_one_customers(&evaluate_lazy(&op, input, opts)?) == 0 {
        return Ok(None);
    }
    let (first, mut end) = extent(filter, text);
    // From the WHERE keyword (so a leading NOT or `(` is kept) to the end of the last operand,
    // with the parentheses opened inside closed.
    let start = text
        .get(..first)
        .unwrap_or("")
        .to_ascii_uppercase()
        .rfind("WHERE")
        .map_or(first, |at| at + "WHERE".len());
    let open = |range: &str| range.matches('(').count() > range.matches(')').count();
    while open(text.get(start..end).unwrap_or("")) {
        match text.get(end..).and_then(|rest| rest.find(')')) {
            Some(at) => end += at + 1,
            None => break,
        }
    }
    let condition = text.get(start..end).unwrap_or("").trim();
    let last = funnel.steps.last().and_then(|step| match &step.kind {
        crate::query::ast::StepKind::Events(names) => names.first().map(|(name, _)| name.clone()),
        _ => None,
    });
    let suggestion = match last {
        Some(event) => format!("did you mean a step filter, `{event} WHERE {condition}`?"),
        None => format!("did you mean a step filter, `step WHERE {condition}`?"),
    };
    Ok(Some(format!(
        "no step-1 event passes the statement's WHERE, which applies to every step; {suggestion}"
    )))
}

/// The byte range of `pred` in `text`, from its first property to the end of its last operand
/// (`amount > 10`, `plan IN ('a', 'b')`, `coupon IS NOT NULL`).
fn extent(pred: &crate::query::ast::Pred, text: &str) -> (usize, usize) {
    use crate::query::ast::Pred;
    let after = |from: usize, word: &str| {
        let rest = text.get(from..).unwrap_or("").to_ascii_uppercase();
        rest.find(word).map_or(from, |at| from + at + word.len())
    };
    match pred {
        Pred::Cmp { prop, value, .. } => (prop.1.start, value.1.end),
        Pred::In { prop, values, .. } => {
            let last = values.last().map_or(prop.1.end, |(_, span)| span.end);
            (prop.1.start, after(last, ")"))
        }
        Pred::IsNull { prop, .. } => (prop.1.start, after(prop.1.end, "NULL")),
        Pred::And(left, right) | Pred::Or(left, right) => {
            let ((left_start, _), (_, right_end)) = (extent(left, text), extent(right, text));
            (left_start, right_end)
        }
        Pred::Not(inner) => extent(inner, text),
        Pred::InCohort(cohort) => (cohort.name.1.start, cohort.name.1.end),
    }
}

/// The customers at step 1 over every group of a FUNNEL table.
fn step_one_customers(table: &Table) -> i64 {
    let (Some(step), Some(customers)) = (table.column("step"), table.column("customers")) else {
        return 0;
    };
    table
        .rows
        .iter()
        .filter(|row| matches!(row.get(step), Some(Cell::Int(1))))
        .map(|row| match row.get(customers) {
            Some(Cell::Int(n)) => *n,
            _ => 0,
        })
        .sum()
}
