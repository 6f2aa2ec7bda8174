//! ATTRIBUTION: which values of a property get the credit for conversions — first, last,
//! linear, position-based or time-decay models over each conversion's touches — in exact
//! integer units, so that the credits add up to the conversions and to the value to the cent
//! (docs/QUERY.md, ATTRIBUTION).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `labels`, `operator`, `options`, `prefilter`, `scan`.

use super::drive::evaluate;
use super::labels::slot_label;
use super::operator::{HashMap, Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, columns_of, passes};
use crate::dict::Dicts;
use crate::model::{Columns, PropColumn, PropType};
use crate::plan::{CPred, Matcher, Resolver};
use crate::query::ParseError;
use crate::query::ast::{Attribution, AttributionModel};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use std::ops::Range;
use std::sync::Arc;

/// Credit units per conversion: credits are whole billionths of a conversion.
const UNITS: u128 = 1_000_000_000;

pub(super) struct AttributionOp<'a> {
    step: Matcher,
    /// The step by event id, when it tests names only.
    step_events: Option<Vec<bool>>,
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    by: (u32, PropType),
    value: Option<(u32, PropType)>,
    model: AttributionModel,
    half_life_us: i64,
    lookback_us: i64,
    dicts: &'a Dicts,
}

/// One worker's credits per group (`None`: the conversions without a touch), in units and
/// cents, and the conversions and cents in all.
#[derive(Default)]
pub(super) struct AttributionPartial {
    credits: HashMap<Option<u64>, (u128, i128)>,
    conversions: u64,
    cents: i128,
    /// Per customer: the instant of each event passing `WHERE`, in order, and the position and
    /// value (cents) of each conversion among them; per conversion: the weights by group (with
    /// the group's label).
    at: Vec<i64>,
    converting: Vec<(usize, i128)>,
    shares: Vec<(Arc<str>, Option<u64>, u128)>,
    /// The label of each group seen (labels order ties and the split's remainders).
    labels: HashMap<u64, Arc<str>>,
    /// Per customer: each kept event's touch group; touches per group in the sliding lookback.
    groups: Vec<Option<u64>>,
    window: Tally,
    decay: Decay,
    /// A conversion's weights, and the split of its units and of its cents.
    weights: Vec<u128>,
    units: Split,
    value: Split,
}

/// Touches per group in the sliding lookback. A customer's window holds a few groups, so a list
/// searched linearly costs less than hashing every event in and out (issue 28's ATTRIBUTION
/// bound); the order of its entries never shows (credits are sorted by label).
#[derive(Default)]
struct Tally(Vec<(u64, u64)>);

impl Tally {
    fn add(&mut self, group: u64) {
        match self.0.iter_mut().find(|(own, _)| *own == group) {
            Some((_, touches)) => *touches += 1,
            None => self.0.push((group, 1)),
        }
    }

    fn remove_one(&mut self, group: u64) {
        if let Some(at) = self.0.iter().position(|(own, _)| *own == group) {
            self.0[at].1 -= 1;
            if self.0[at].1 == 0 {
                self.0.swap_remove(at);
            }
        }
    }

    fn get(&self, group: u64) -> u64 {
        self.0
            .iter()
            .find(|(own, _)| *own == group)
            .map_or(0, |(_, touches)| *touches)
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, touches)| touches).sum()
    }

    fn groups(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|(group, _)| *group)
    }
}

/// Time decay's weights over the sliding lookback. A touch's weight 2^(−age / half-life) is
/// 2^(−(at − anchor) / half-life) · 2^((ts − anchor) / half-life), and the first factor is the
/// same for every touch of a conversion, so a group's share needs only the sum of its touches'
/// terms 2^((ts − anchor) / half-life): kept per group as touches enter and leave the window,
/// each term computed once (the model was quadratic in a customer's events: 21–25 s at 10M).
/// The anchor moves to the conversion every [`REBASE_HALF_LIVES`] half-lives, so terms stay
/// between 2^−1000 (HALF_LIFE ≥ LOOKBACK / 1000 is required) and 2^64; the sums are recomputed
/// from their terms whenever as many touches have left the window as it holds, so a sum's
/// rounding error stays within a few units in the last place of its own window's terms.
#[derive(Default)]
struct Decay {
    anchor: Option<i64>,
    /// Per kept event: its term relative to the anchor (touches inside the window only).
    terms: Vec<f64>,
    /// Per group in the window: (group, the sum of its terms, its touches).
    sums: Vec<(u64, f64, u64)>,
    /// Touches that left the window since the sums were last recomputed.
    left: usize,
    /// The instant whose tied touches are counted in `ties` (per group), if any.
    ties_at: Option<i64>,
    ties: Tally,
    /// A conversion's sums per group (a buffer kept from one conversion to the next).
    weighed: Vec<(u64, f64)>,
}

/// Half-lives between anchors (the largest term is 2^REBASE_HALF_LIVES).
const REBASE_HALF_LIVES: i64 = 64;

impl Decay {
    fn clear(&mut self, events: usize) {
        self.anchor = None;
        self.terms.clear();
        self.terms.resize(events, 0.0);
        self.sums.clear();
        self.left = 0;
        self.ties_at = None;
        self.ties.0.clear();
    }

    fn enter(&mut self, group: u64, term: f64) {
        match self.sums.iter_mut().find(|(own, ..)| *own == group) {
            Some((_, sum, touches)) => {
                *sum += term;
                *touches += 1;
            }
            None => self.sums.push((group, term, 1)),
        }
    }

    fn leave(&mut self, group: u64, term: f64) {
        if let Some(at) = self.sums.iter().position(|(own, ..)| *own == group) {
            let (_, sum, touches) = &mut self.sums[at];
            *sum -= term;
            *touches -= 1;
            if *touches == 0 {
                self.sums.swap_remove(at);
            }
        }
        self.left += 1;
    }

    /// The sums again from the window's terms (in time order): no drift from subtractions.
    fn recompute(&mut self, groups: &[Option<u64>], window: Range<usize>) {
        self.sums.clear();
        for position in window {
            if let Some(group) = groups[position] {
                self.enter(group, self.terms[position]);
            }
        }
        self.left = 0;
    }
}

impl<'a> AttributionOp<'a> {
    fn plan(attribution: &Attribution, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, attribution.common.tz.as_ref())?;
        let (name, span) = &attribution.by;
        if name.starts_with(crate::model::PROFILE_PREFIX) {
            return Err(ParseError::new(*span, "a touch is an event: BY takes an event property").into());
        }
        let value = match &attribution.value {
            None => None,
            Some((name, span)) => {
                let (id, ty) = res.prop(name, *span)?;
                if !matches!(ty, PropType::I64 | PropType::F64) {
                    return Err(
                        ParseError::new(*span, format!("`{name}` is {ty}; VALUE needs a number")).into(),
                    );
                }
                Some((id, ty))
            }
        };
        let step = res.step(&attribution.step)?;
        Ok(AttributionOp {
            step_events: step.name_table(input.dicts.events.len()),
            step,
            filter: attribution
                .common
                .filter
                .as_ref()
                .map(|p| res.pred(p))
                .transpose()?,
            range: res.range(&attribution.common.range)?,
            by: res.prop(name, *span)?,
            value,
            model: attribution.model,
            half_life_us: attribution.half_life_us,
            lookback_us: attribution.lookback_us,
            dicts: input.dicts,
        })
    }

    fn label(&self, group: Option<u64>) -> String {
        match group {
            None => "(none)".into(),
            Some(g) => slot_label(Some(g), self.by.1, self.dicts),
        }
    }

    /// The conversion's value in cents (rounded half away from zero; 0 without a value), from
    /// the value column `value` of its rows.
    fn cents(&self, value: Option<&PropColumn>, index: usize) -> i128 {
        let Some((column, ty)) = value.zip(self.value.map(|(_, ty)| ty)) else {
            return 0;
        };
        if !column.valid[index] {
            return 0;
        }
        let raw = column.vals[index];
        match ty {
            PropType::I64 => i128::from(raw as i64) * 100,
            _ => (f64::from_bits(raw) * 100.0).round() as i128,
        }
    }

    /// 2^((ts − anchor) / half-life).
    fn term(&self, ts: i64, anchor: i64) -> f64 {
        ((ts - anchor) as f64 / self.half_life_us as f64).exp2()
    }

    /// Time decay over a customer's kept events: each conversion's touches are the window
    /// `lo..hi` (at or after the lookback's start, before the conversion's instant) plus the
    /// other touches tied with the conversion, weighed by [`Decay`]'s sums.
    fn customer_decay(&self, partial: &mut AttributionPartial) {
        let events = partial.at.len();
        partial.decay.clear(events);
        let (mut lo, mut hi) = (0, 0);
        for conversion in 0..partial.converting.len() {
            let (c, cents) = partial.converting[conversion];
            let AttributionPartial {
                at: instants,
                groups,
                decay,
                ..
            } = &mut *partial;
            let at = instants[c];
            let rebase = decay
                .anchor
                .is_none_or(|anchor| at - anchor > self.half_life_us.saturating_mul(REBASE_HALF_LIVES));
            if rebase {
                decay.anchor = Some(at);
            }
            let anchor = decay.anchor.unwrap_or(at);
            let from = at.saturating_sub(self.lookback_us);
            while lo < hi && instants[lo] < from {
                if let Some(group) = groups[lo] {
                    decay.leave(group, decay.terms[lo]);
                }
                lo += 1;
            }
            if lo == hi {
                // Nothing entered is left: skip what lies before the window unweighed.
                while hi < events && instants[hi] < from {
                    hi += 1;
                }
                lo = hi;
            }
            while hi < events && instants[hi] < at {
                if let Some(group) = groups[hi] {
                    decay.terms[hi] = self.term(instants[hi], anchor);
                    decay.enter(group, decay.terms[hi]);
                }
                hi += 1;
            }
            if rebase {
                for (term, &instant) in decay.terms[lo..hi].iter_mut().zip(&instants[lo..hi]) {
                    *term = self.term(instant, anchor);
                }
            }
            if rebase || decay.left > (hi - lo).max(64) {
                decay.recompute(groups, lo..hi);
            }
            if decay.ties_at != Some(at) {
                decay.ties_at = Some(at);
                decay.ties.0.clear();
                let tied = (hi..events).take_while(|&position| instants[position] == at);
                for group in tied.filter_map(|position| groups[position]) {
                    decay.ties.add(group);
                }
            }
            let own = groups[c];
            self.weigh_decay(self.term(at, anchor), own, partial);
            Self::credit(partial, cents);
        }
    }

    /// Whether the kept event at row `index` (at `at`) is a conversion.
    fn converts(&self, rows: &Columns, index: usize, at: i64) -> bool {
        self.range.is_none_or(|(a, b)| a <= at && at < b)
            && match &self.step_events {
                Some(table) => table.get(rows.event[index] as usize).copied().unwrap_or(false),
                None => self.step.matches(rows, index, self.dicts),
            }
    }

    /// The conversion's shares, by label, in `partial.shares`: each group's sum of terms in
    /// the window plus its touches tied with the conversion (the conversion itself left out)
    /// at `tied_term` each, scaled to integers with the largest at 2^40.
    fn weigh_decay(&self, tied_term: f64, own: Option<u64>, partial: &mut AttributionPartial) {
        let AttributionPartial {
            decay,
            shares,
            labels,
            ..
        } = partial;
        let tied = |group: u64| decay.ties.get(group) - u64::from(own == Some(group));
        shares.clear();
        let mut sums = std::mem::take(&mut decay.weighed);
        sums.clear();
        for &(group, sum, _) in &decay.sums {
            sums.push((group, sum + tied(group) as f64 * tied_term));
        }
        for group in decay.ties.groups() {
            if tied(group) > 0 && !decay.sums.iter().any(|(g, ..)| *g == group) {
                sums.push((group, tied(group) as f64 * tied_term));
            }
        }
        if sums.is_empty() {
            shares.push(("(none)".into(), None, 1));
            decay.weighed = sums;
            return;
        }
        let max = sums.iter().map(|f| f.1).fold(0.0, f64::max);
        for &(group, sum) in &sums {
            let label = labels.get(&group).cloned().unwrap_or_else(|| "?".into());
            let weight = if max > 0.0 {
                (sum / max * (1u64 << 40) as f64).round() as u128
            } else {
                1
            };
            shares.push((label, Some(group), weight));
        }
        decay.weighed = sums;
        shares.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Splits one conversion (worth `cents`) by the weights in `partial.shares` (label order)
    /// and adds the parts to the credits.
    fn credit(partial: &mut AttributionPartial, cents: i128) {
        if let [(_, group, _)] = partial.shares[..] {
            // One share takes the whole conversion (what `allocate` gives it), without the split.
            partial.conversions += 1;
            partial.cents += cents;
            let entry = partial.credits.entry(group).or_default();
            entry.0 += UNITS;
            entry.1 += cents;
            return;
        }
        let AttributionPartial {
            shares,
            weights,
            units,
            value,
            credits,
            ..
        } = partial;
        weights.clear();
        weights.extend(shares.iter().map(|share| share.2));
        allocate(weights, UNITS, units);
        allocate(weights, cents.unsigned_abs(), value);
        partial.conversions += 1;
        partial.cents += cents;
        for ((share, &(u, _)), &(v, _)) in shares.iter().zip(&units.parts).zip(&value.parts) {
            if u == 0 && v == 0 {
                continue;
            }
            let entry = credits.entry(share.1).or_default();
            entry.0 += u;
            entry.1 += if cents < 0 { -(v as i128) } else { v as i128 };
        }
    }

    /// The first, last, linear and position models from the touches counted per group in the
    /// window `lo..hi` of the customer's kept events (the conversion at `c` left out): the
    /// first and last touches are found by walking in from the window's ends (tied ones by
    /// label), so a conversion costs the groups it credits, not its window.
    fn convert_counted(
        &self,
        ((c, cents), lo, hi): ((usize, i128), usize, usize),
        partial: &mut AttributionPartial,
    ) {
        let AttributionPartial {
            at,
            groups,
            window,
            shares,
            labels,
            ..
        } = partial;
        let own = groups[c];
        let count = |g: u64| window.get(g) - u64::from(own == Some(g));
        let n: u64 = window.total() - u64::from(own.is_some());
        shares.clear();
        if n == 0 {
            shares.push(("(none)".into(), None, 1));
        } else {
            let label = |g: u64| labels.get(&g).cloned().unwrap_or_else(|| "?".into());
            // The touch at an end: the nearest instant holding one, then the least (first) or
            // greatest (last) label there.
            let end = |positions: &mut dyn Iterator<Item = usize>, last: bool| -> Option<u64> {
                let mut found: Option<(i64, u64)> = None;
                for p in positions {
                    let (Some(g), true) = (groups[p], p != c) else {
                        continue;
                    };
                    let ts = at[p];
                    match found {
                        Some((at, _)) if at != ts => break,
                        Some((_, best)) if (labels.get(&g) < labels.get(&best)) != last && g != best => {
                            found = Some((ts, g))
                        }
                        Some(_) => {}
                        None => found = Some((ts, g)),
                    }
                }
                found.map(|(_, g)| g)
            };
            let first = end(&mut (lo..hi), false);
            let last = end(&mut (lo..hi).rev(), true);
            // The first and last models credit one group (the others' weights are zero, and a
            // zero weight gets no part of the split).
            let only = match self.model {
                AttributionModel::First => first,
                AttributionModel::Last => last,
                _ => None,
            };
            if let Some(g) = only {
                shares.push((label(g), Some(g), 1));
            }
            for g in window.groups().filter(|&g| only.is_none() && count(g) > 0) {
                let touches = u128::from(count(g));
                let weight = match self.model {
                    AttributionModel::First => u128::from(first == Some(g)),
                    AttributionModel::Last => u128::from(last == Some(g)),
                    AttributionModel::Position if n >= 3 => {
                        let end_bonus = 2 * (u128::from(n) - 2) - 1;
                        touches + end_bonus * (u128::from(first == Some(g)) + u128::from(last == Some(g)))
                    }
                    _ => touches,
                };
                shares.push((label(g), Some(g), weight));
            }
            shares.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Self::credit(partial, cents);
    }

    /// Reads one customer's events passing `WHERE`, in order, from `parts` (one after the
    /// other in merge order): their instants, touch groups and conversions, into `partial`.
    fn read_journey<'r>(
        &self,
        partial: &mut AttributionPartial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
    ) {
        let AttributionPartial {
            at,
            converting,
            groups,
            labels,
            ..
        } = partial;
        at.clear();
        converting.clear();
        groups.clear();
        // Neighbouring events mostly share a group: look a label up only when it changes.
        let mut previous = None;
        for (rows, run) in parts {
            // The touch and value columns found once per part, not per row.
            let by = rows.prop(self.by.0);
            let value = self.value.and_then(|(id, _)| rows.prop(id));
            for i in run.filter(|&i| passes(&self.filter, rows, i, self.dicts)) {
                let group = by.and_then(|column| column.valid[i].then(|| column.vals[i]));
                if let Some(g) = group
                    && previous != group
                    && !labels.contains_key(&g)
                {
                    labels.insert(g, self.label(Some(g)).into());
                }
                previous = group;
                let ts = rows.ts[i];
                if self.converts(rows, i, ts) {
                    converting.push((at.len(), self.cents(value, i)));
                }
                at.push(ts);
                groups.push(group);
            }
        }
    }
}

/// `total` split by `weights` (groups in label order) by the largest remainder: each group its
/// whole share, then one more to the largest remainders (ties: the earlier label) until the
/// parts add up to `total` exactly. All zero weights: equal weights. The parts are left in
/// `split.parts` (`.0`), in the weights' order; the buffers are reused from one conversion to
/// the next (no allocation per conversion).
fn allocate(weights: &[u128], total: u128, split: &mut Split) {
    let sum: u128 = weights.iter().sum();
    let (equal, sum) = if sum == 0 {
        (true, weights.len().max(1) as u128)
    } else {
        (false, sum)
    };
    split.parts.clear();
    split.parts.extend(weights.iter().map(|&weight| {
        let weight = if equal { 1 } else { weight };
        (weight * total / sum, weight * total % sum)
    }));
    let given: u128 = split.parts.iter().map(|part| part.0).sum();
    split.order.clear();
    split.order.extend(0..split.parts.len());
    let parts = &split.parts;
    split
        .order
        .sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    for k in 0..total.saturating_sub(given) as usize {
        let at = split.order[k];
        split.parts[at].0 += 1;
    }
}

/// The buffers of [`allocate`]: (part, remainder) per weight, and the weights by remainder.
#[derive(Default)]
struct Split {
    parts: Vec<(u128, u128)>,
    order: Vec<usize>,
}

impl Operator for AttributionOp<'_> {
    type Partial = AttributionPartial;

    fn columns(&self) -> ColumnSet {
        // Only the properties read: the touch property, the value, and those the predicates
        // test (all of them then).
        let read = if self.filter.is_some() || self.step.uses_props() {
            columns(true)
        } else {
            let ids: Vec<u32> = [Some(self.by.0), self.value.map(|(id, _)| id)]
                .into_iter()
                .flatten()
                .collect();
            columns_of(&ids)
        };
        ColumnSet {
            stage: self.step.stage.is_some(),
            ..read
        }
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<AttributionPartial>, QueryError> {
        Ok(Prefilter::only(candidates(&self.step, input.bitmaps, self.range)))
    }

    const READS_PARTS: bool = true;

    fn customer(&self, partial: &mut AttributionPartial, rows: &Columns, run: Range<usize>) {
        self.customer_in_parts(partial, std::iter::once((rows, run)));
    }

    fn customer_in_parts<'r>(
        &self,
        partial: &mut AttributionPartial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
    ) {
        self.read_journey(partial, parts);
        if self.model == AttributionModel::TimeDecay {
            self.customer_decay(partial);
            return;
        }
        partial.window.0.clear();
        // The lookback window lo..hi over the kept events (conversions come in time order, so
        // both ends only move forward), with its touches counted per group.
        let (mut lo, mut hi) = (0, 0);
        for conversion in 0..partial.converting.len() {
            let (c, cents) = partial.converting[conversion];
            let ts = partial.at[c];
            while hi < partial.at.len() && partial.at[hi] <= ts {
                if let Some(g) = partial.groups[hi] {
                    partial.window.add(g);
                }
                hi += 1;
            }
            let from = ts.saturating_sub(self.lookback_us);
            while partial.at[lo] < from {
                if let Some(g) = partial.groups[lo] {
                    partial.window.remove_one(g);
                }
                lo += 1;
            }
            self.convert_counted(((c, cents), lo, hi), partial);
        }
    }

    fn footprint(&self, partial: &AttributionPartial) -> usize {
        partial.credits.capacity() * 48
            + partial.at.capacity() * 8
            + partial.converting.capacity() * 32
            + partial.shares.capacity() * 48
            + partial.labels.capacity() * 48
            + partial.groups.capacity() * 16
            + partial.window.0.capacity() * 16
            + partial.decay.terms.capacity() * 8
            + (partial.decay.sums.capacity() + partial.decay.ties.0.capacity()) * 24
    }

    fn merge(&self, into: &mut AttributionPartial, from: AttributionPartial) {
        for (group, (units, cents)) in from.credits {
            let entry = into.credits.entry(group).or_default();
            entry.0 += units;
            entry.1 += cents;
        }
        into.conversions += from.conversions;
        into.cents += from.cents;
    }

    fn finish(
        &self,
        partial: AttributionPartial,
        _: &Input<'_>,
        _: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let mut rows: Vec<(String, u128, i128)> = partial
            .credits
            .into_iter()
            .map(|(group, (units, cents))| (self.label(group), units, cents))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut columns = vec!["group", "conversions"];
        if self.value.is_some() {
            columns.push("value");
        }
        let mut t = Table::new(&columns);
        for (group, units, cents) in rows {
            let mut row = vec![Cell::Str(group), Cell::Float(units as f64 / UNITS as f64)];
            if self.value.is_some() {
                row.push(Cell::Float(cents as f64 / 100.0));
            }
            t.rows.push(row);
        }
        Ok(t)
    }
}

/// Runs an ATTRIBUTION statement.
pub(super) fn attribution(
    attribution: &Attribution,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&AttributionOp::plan(attribution, text, input)?, input, opts)
}
