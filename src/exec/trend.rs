//! TREND: an aggregate per time bucket (and breakdown), with its index and roll-up shortcuts.
//!
//! Uses: `dict`, `index`, `limits`, `merge`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `group`, `labels`, `operator`, `options`, `overlaps`, `range`, `scan`.

use crate::dict::Dicts;
use crate::exec::drive::evaluate;
use crate::exec::group::GroupBy;
use crate::exec::operator::{HashMap, Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::overlaps;
use crate::exec::range::{complete_buckets, data_range, whole_days};
use crate::exec::scan::{columns, columns_of, passes};
use crate::merge::Source;
use crate::model::{Columns, PropType};
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ast::{Agg, Period, SESSION_GAP_US};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use crate::{limits, model};
use std::collections::BTreeMap;
use std::ops::Range;

pub(super) struct TrendOp<'a> {
    pub(super) agg: Agg,
    step: Option<Matcher>,
    filter: Option<CPred>,
    pub(super) buckets: Buckets,
    /// Buckets before this index only feed wau/mau look-back.
    pub(super) first: usize,
    /// Events counted (wau/mau also look back before it).
    range: (i64, i64),
    value: Option<(u32, PropType)>,
    pub(super) by: Option<GroupBy>,
    /// `BY p TOP n`: the n groups with the most matching events (then by name); for CHANGES,
    /// the n groups with the largest |change| in each bucket.
    pub(super) top: Option<u64>,
    /// The columns decoded.
    set: ColumnSet,
    /// Session aggregates: the longest gap inside a session.
    session_gap: Option<i64>,
    /// CHANGES of a distinct count: also count each customer of a (group, bucket) under the
    /// number of groups the customer is in that bucket ([`AggState::split`]).
    shares: bool,
    /// The statement's FROM..TO, which with the data's span decides the `complete` column.
    explicit: Option<(i64, i64)>,
    dicts: &'a Dicts,
}

impl<'a> TrendOp<'a> {
    /// Plans a TREND statement on `input`: buckets (with the look-back `wau`/`mau` need), the
    /// aggregated property, and the columns to decode. For CHANGES (`changes`), the range starts
    /// one whole bucket before the bucket holding its start, and distinct counts keep the
    /// customers' splits over groups.
    pub(super) fn plan(
        tr: &crate::query::ast::Trend,
        text: &str,
        input: &Input<'a>,
        changes: bool,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, tr.common.tz.as_ref())?;
        let range = res.range(&tr.common.range)?;
        let (lo, hi) = data_range(input, range);
        let lo = if changes {
            previous_bucket_start(lo, tr.period.starting(&tr.common), &res.tz)?
        } else {
            lo
        };
        let lookback = match tr.agg {
            Agg::Wau => 6,
            Agg::Mau => 29,
            _ => 0,
        };
        let first_bucket = Buckets::new(lo, lo + 1, 0, tr.period.starting(&tr.common), &res.tz, 2)
            .map_err(|m| ParseError::new(Span::default(), m))?;
        let start = first_bucket.starts[0]
            - lookback as i64 * model::DAY_US
            - if lookback > 0 { model::DAY_US } else { 0 };
        let mut buckets = Buckets::new(
            start.min(lo),
            hi,
            0,
            tr.period.starting(&tr.common),
            &res.tz,
            limits::BUCKETS_MAX + lookback + 1,
        )
        .map_err(|m| ParseError::new(Span::default(), m))?;
        let first = buckets.index(lo).unwrap_or(0);
        // Drop buckets after the range (a range end on a bucket boundary ends there).
        while buckets.starts.len() > first + 2 && buckets.starts[buckets.starts.len() - 2] >= hi {
            buckets.starts.pop();
        }
        let session_gap = tr
            .agg
            .of_sessions()
            .then(|| tr.session.map_or(SESSION_GAP_US, |(gap, _)| gap));
        let value = match &tr.agg {
            _ if session_gap.is_some() => None,
            Agg::Sum(p, s)
            | Agg::Avg(p, s)
            | Agg::Min(p, s)
            | Agg::Max(p, s)
            | Agg::Pct(_, p, s)
            | Agg::Nps(p, s) => {
                let (id, ty) = res.prop(p, *s)?;
                if !matches!(ty, PropType::I64 | PropType::F64) {
                    return Err(
                        ParseError::new(*s, format!("`{p}` is {ty}; this aggregate needs a number")).into(),
                    );
                }
                Some((id, ty))
            }
            _ => None,
        };
        let mut op = TrendOp {
            agg: tr.agg.clone(),
            step: tr.step.as_ref().map(|s| res.step(s)).transpose()?,
            filter: tr.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            first,
            range: (lo, hi),
            explicit: range,
            value,
            by: match (&tr.by, &tr.by2) {
                (Some((name, span, _)), None) => Some(GroupBy::resolve(&res, input, (name, *span))?),
                (Some((name, span, _)), Some((name2, span2))) => Some(GroupBy::resolve_pair(
                    &res,
                    input,
                    ((name, *span), (name2, *span2)),
                )?),
                (None, _) => None,
            },
            top: tr.by.as_ref().and_then(|(_, _, top)| top.map(u64::from)),
            set: columns(true),
            session_gap,
            shares: changes && matches!(tr.agg, Agg::Uniq | Agg::Wau | Agg::Mau),
            dicts: input.dicts,
            buckets,
        };
        // Without a predicate, the only properties read are the value and the breakdown.
        op.set = if op.filter.is_some() || op.step.as_ref().is_some_and(Matcher::uses_props) {
            columns(true)
        } else {
            let by = op.by.as_ref().map_or_else(Vec::new, GroupBy::event_props);
            let ids: Vec<u32> = op.value.iter().map(|&(id, _)| id).chain(by).collect();
            columns_of(&ids)
        };
        Ok(op)
    }

    /// The groups reported, in name order: every group (or the `TOP n` with the most matching
    /// events, then by name), or the one unnamed group without `BY`.
    fn groups(&self, partial: &TrendPartial, dicts: &Dicts) -> Vec<(Vec<String>, Option<u64>)> {
        let Some(by) = &self.by else {
            return vec![(Vec::new(), None)];
        };
        let mut totals: HashMap<Option<u64>, u64> = HashMap::default();
        for ((g, _), s) in &partial.map {
            *totals.entry(*g).or_default() += s.events + s.customers;
        }
        let mut groups: Vec<(Vec<String>, Option<u64>, u64)> = totals
            .into_iter()
            .map(|(g, n)| (by.labels(g, dicts), g, n))
            .collect();
        groups.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        if let Some(top) = self.top {
            groups.truncate(top as usize);
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups.into_iter().map(|g| (g.0, g.1)).collect()
    }

    /// The aggregate of one (group, bucket) state.
    pub(super) fn aggregate(&self, state: &AggState) -> Cell {
        match &self.agg {
            Agg::Count => Cell::Int(state.events as i64),
            Agg::Uniq | Agg::Wau | Agg::Mau => Cell::Int(state.customers as i64),
            Agg::Sessions => Cell::Int(state.events as i64),
            Agg::BounceRate => {
                if state.events == 0 {
                    Cell::Null
                } else {
                    Cell::Float(state.bounces as f64 / state.events as f64)
                }
            }
            Agg::Sum(..) => Cell::Float(state.sum),
            Agg::Avg(..) => {
                if state.n == 0 {
                    Cell::Null
                } else {
                    Cell::Float(state.sum / state.n as f64)
                }
            }
            Agg::Min(..) => state.min.map_or(Cell::Null, Cell::Float),
            Agg::Max(..) => state.max.map_or(Cell::Null, Cell::Float),
            Agg::Nps(..) => nps(state).map_or(Cell::Null, |(score, _, _)| Cell::Float(score)),
            Agg::Pct(q, ..) => {
                let mut v = state.values.clone();
                if v.is_empty() {
                    Cell::Null
                } else {
                    v.sort_by(f64::total_cmp);
                    let rank = ((f64::from(*q) / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
                    Cell::Float(v[rank.min(v.len()) - 1])
                }
            }
        }
    }
}

#[derive(Default, Clone)]
pub(super) struct AggState {
    pub(super) events: u64,
    pub(super) customers: u64,
    pub(super) sum: f64,
    pub(super) n: u64,
    min: Option<f64>,
    max: Option<f64>,
    values: Vec<f64>,
    /// `nps`: responses scored 9-10, 7-8 and 0-6.
    pub(super) promoters: u64,
    pub(super) passives: u64,
    pub(super) detractors: u64,
    /// Sessions of one event (`events` counts the sessions for session aggregates).
    pub(super) bounces: u64,
    /// CHANGES of a distinct count: `split[j]` of the `customers` were in j + 1 groups in the
    /// bucket (each counts 1 / (j + 1) towards this group's share; docs/QUERY.md, CHANGES).
    pub(super) split: Vec<u64>,
}

impl AggState {
    /// Adds `from`'s counts to this state's.
    pub(super) fn add(&mut self, from: AggState) {
        self.events += from.events;
        self.customers += from.customers;
        self.sum += from.sum;
        self.n += from.n;
        self.min = match (self.min, from.min) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        self.max = match (self.max, from.max) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        self.values.extend(from.values);
        self.promoters += from.promoters;
        self.bounces += from.bounces;
        self.passives += from.passives;
        self.detractors += from.detractors;
        add_split(&mut self.split, &from.split);
    }
}

/// Adds the counts of `from` to `into`, position by position.
fn add_split(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (total, count) in into.iter_mut().zip(from) {
        *total += count;
    }
}

/// The start of the bucket before the one holding `instant`.
fn previous_bucket_start(instant: i64, period: Period, tz: &jiff::tz::TimeZone) -> Result<i64, QueryError> {
    let start_of = |at: i64| {
        Buckets::new(at, at + 1, 0, period, tz, 2)
            .map(|b| b.starts[0])
            .map_err(|m| ParseError::new(Span::default(), m))
    };
    let this = start_of(instant)?;
    Ok(start_of(this.saturating_sub(1))?)
}

/// The earlier of two bad scores (by time, then customer id): the one reported.
fn earliest(left: (i64, u32, f64), right: (i64, u32, f64)) -> (i64, u32, f64) {
    if (right.0, right.1) < (left.0, left.1) {
        right
    } else {
        left
    }
}

/// The net promoter score of `state`'s responses and its 95% confidence interval (`None`: no
/// response): NPS = 100·(p − d) with p, d the promoters' and detractors' shares of the n
/// responses — the mean of the scores +100, 0, −100 — and the interval NPS ± 1.96·σ/√n with
/// σ² = 100²·(p + d − (p − d)²), cut to [−100, 100].
fn nps(state: &AggState) -> Option<(f64, f64, f64)> {
    let n = state.promoters + state.passives + state.detractors;
    if n == 0 {
        return None;
    }
    let (p, d) = (
        state.promoters as f64 / n as f64,
        state.detractors as f64 / n as f64,
    );
    let score = 100.0 * (p - d);
    let sigma = 100.0 * (p + d - (p - d) * (p - d)).max(0.0).sqrt();
    let half = 1.96 * sigma / (n as f64).sqrt();
    Some((score, (score - half).max(-100.0), (score + half).min(100.0)))
}

thread_local! {
    /// Per-worker buffer of one customer's (group, bucket) pairs (reused across customers).
    static SEEN: std::cell::RefCell<Vec<(Option<u64>, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// Per-worker buffer of one customer's buckets, one entry per group (CHANGES' splits).
    static BUCKETS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Counts one customer in each of its (group, bucket) cells `seen` (sorted, distinct), and
/// under the number of groups the customer is in that bucket ([`AggState::split`]).
fn count_split(partial: &mut TrendPartial, seen: &[(Option<u64>, usize)]) {
    let mut buckets = BUCKETS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    buckets.clear();
    buckets.extend(seen.iter().map(|&(_, bucket)| bucket));
    buckets.sort_unstable();
    for &(group, bucket) in seen {
        let groups = buckets.partition_point(|&b| b <= bucket) - buckets.partition_point(|&b| b < bucket);
        let state = partial.entry((group, bucket)).or_default();
        state.customers += 1;
        if state.split.len() < groups {
            state.split.resize(groups, 0);
        }
        state.split[groups - 1] += 1;
    }
    BUCKETS.with(|b| *b.borrow_mut() = buckets);
}

/// Most buckets whose session states are kept in a dense array (more: in the map).
const DENSE_BUCKETS_MAX: usize = 1 << 16;

/// Keyed by (group value slot, bucket); `None` is the null group (or no BY).
/// (group slot, bucket) -> aggregate, and how many percentile values the aggregates hold.
#[derive(Default)]
pub(super) struct TrendPartial {
    map: HashMap<(Option<u64>, usize), AggState>,
    /// Session aggregates without BY: the state of bucket `b` at `b` (a session costs no hash
    /// look-up), moved into `map` by [`settle`](Self::settle) before the partial is read.
    dense: Vec<AggState>,
    values: usize,
    /// `nps`: the earliest score that is no integer 0-10, as (time, customer id, score).
    bad: Option<(i64, u32, f64)>,
}

impl TrendPartial {
    /// Moves the dense session states into the map (as the `None` group).
    fn settle(&mut self) {
        for (bucket, state) in std::mem::take(&mut self.dense).into_iter().enumerate() {
            if state.events > 0 {
                self.map.entry((None, bucket)).or_default().add(state);
            }
        }
    }

    /// The groups that have a state in some bucket.
    pub(super) fn group_slots(&self) -> Vec<Option<u64>> {
        let dense = self.dense.iter().any(|state| state.events > 0).then_some(None);
        let mut groups: Vec<Option<u64>> = self.map.keys().map(|&(group, _)| group).chain(dense).collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }
}

impl std::ops::Deref for TrendPartial {
    type Target = HashMap<(Option<u64>, usize), AggState>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for TrendPartial {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl TrendOp<'_> {
    fn value(&self, rows: &Columns, index: usize) -> Option<f64> {
        let (id, ty) = self.value?;
        let c = rows.prop(id)?;
        if !c.valid[index] {
            return None;
        }
        Some(match ty {
            PropType::I64 => c.vals[index] as i64 as f64,
            PropType::F64 => f64::from_bits(c.vals[index]),
            _ => return None,
        })
    }

    /// Counts row `index` of a customer's rows: its events and values in `partial`, its
    /// (group, bucket) cells in `seen` (the customer's, counted once each at the end).
    fn count_row(
        &self,
        partial: &mut TrendPartial,
        seen: &mut Vec<(Option<u64>, usize)>,
        rows: &Columns,
        index: usize,
    ) {
        if !passes(&self.filter, rows, index, self.dicts)
            || !self
                .step
                .as_ref()
                .is_none_or(|s| s.matches(rows, index, self.dicts))
        {
            return;
        }
        let ts = rows.ts[index];
        let Some(b) = self.buckets.index(ts) else {
            return;
        };
        // wau/mau look back before FROM; nothing counts from TO on.
        let look_back = matches!(self.agg, Agg::Wau | Agg::Mau) && ts < self.range.0;
        if ts >= self.range.1 || (ts < self.range.0 && !look_back) {
            return;
        }
        let g = self.by.as_ref().and_then(|by| by.slot(rows, index));
        match self.agg {
            Agg::Wau | Agg::Mau => {
                let days = if self.agg == Agg::Wau { 7 } else { 30 };
                for d in b..(b + days).min(self.buckets.len()) {
                    if d >= self.first {
                        seen.push((g, d));
                    }
                }
            }
            Agg::Uniq => {
                if b >= self.first {
                    seen.push((g, b));
                }
            }
            _ => {
                if b < self.first {
                    return;
                }
                let value = self.value(rows, index);
                if let (Agg::Nps(..), Some(v)) = (&self.agg, value)
                    && (v.fract() != 0.0 || !(0.0..=10.0).contains(&v))
                {
                    let bad = (ts, rows.cid[index], v);
                    partial.bad = Some(partial.bad.map_or(bad, |b| earliest(b, bad)));
                    return;
                }
                let e = partial.map.entry((g, b)).or_default();
                e.events += 1;
                if let (Agg::Nps(..), Some(v)) = (&self.agg, value) {
                    match v as u8 {
                        9..=10 => e.promoters += 1,
                        7..=8 => e.passives += 1,
                        _ => e.detractors += 1,
                    }
                }
                if let Some(v) = value {
                    e.sum += v;
                    e.n += 1;
                    e.min = Some(e.min.map_or(v, |m| m.min(v)));
                    e.max = Some(e.max.map_or(v, |m| m.max(v)));
                    if matches!(self.agg, Agg::Pct(..)) {
                        e.values.push(v);
                        partial.values += 1;
                    }
                }
            }
        }
    }
}

impl TrendOp<'_> {
    /// Session aggregates: the customer's counted events (in time order) cut into sessions at
    /// gaps longer than `gap`; each session counts in the bucket (and group) of its first event,
    /// its length the time from its first event to its last.
    fn sessions<'r>(
        &self,
        partial: &mut TrendPartial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
        gap: i64,
    ) {
        // The open session: its group (its first event's), first and last instants, events.
        let mut open: Option<(Option<u64>, i64, i64, u64)> = None;
        for (rows, run) in parts {
            let counted = run.filter(|&i| {
                let ts = rows.ts[i];
                ts >= self.range.0
                    && ts < self.range.1
                    && passes(&self.filter, rows, i, self.dicts)
                    && self.step.as_ref().is_none_or(|s| s.matches(rows, i, self.dicts))
            });
            for i in counted {
                let ts = rows.ts[i];
                if let Some((group, start, last, events)) = open {
                    if ts - last <= gap {
                        open = Some((group, start, ts, events + 1));
                        continue;
                    }
                    self.close_session(partial, (group, start, last, events));
                }
                let group = self.by.as_ref().and_then(|by| by.slot(rows, i));
                open = Some((group, ts, ts, 1));
            }
        }
        if let Some(session) = open {
            self.close_session(partial, session);
        }
    }

    fn close_session(
        &self,
        partial: &mut TrendPartial,
        (group, start, last, events): (Option<u64>, i64, i64, u64),
    ) {
        let Some(b) = self.buckets.index(start).filter(|&b| b >= self.first) else {
            return;
        };
        let e = match &self.by {
            None if self.buckets.len() <= DENSE_BUCKETS_MAX => {
                if partial.dense.is_empty() {
                    partial.dense.resize_with(self.buckets.len(), AggState::default);
                }
                &mut partial.dense[b]
            }
            _ => partial.map.entry((group, b)).or_default(),
        };
        let length = (last - start) as f64 / 1e6;
        e.events += 1;
        e.bounces += u64::from(events == 1);
        e.sum += length;
        e.n += 1;
        if matches!(self.agg, Agg::Pct(..)) {
            e.values.push(length);
            partial.values += 1;
        }
    }
}

impl TrendOp<'_> {
    /// `nps`: an error naming the earliest score that is no integer 0-10.
    pub(super) fn check_scores(&self, partial: &TrendPartial, input: &Input<'_>) -> Result<(), QueryError> {
        if let (Agg::Nps(name, span), Some((ts, cid, v))) = (&self.agg, partial.bad) {
            let customer = input.dicts.customers.name(cid).unwrap_or("?");
            return Err(ParseError::new(
                *span,
                format!(
                    "nps({name}): customer '{customer}' has {name} = {v} at {}; a score is an integer from 0 to 10",
                    model::format_ts(ts)
                ),
            )
            .with_help(format!("leave such events out, e.g. WHERE {name} >= 0 AND {name} <= 10"))
            .into());
        }
        Ok(())
    }
}

impl Operator for TrendOp<'_> {
    type Partial = TrendPartial;

    fn columns(&self) -> ColumnSet {
        self.set
    }

    /// Customer counts from the bitmaps or the value index, sums from the roll-ups (then only
    /// the rows not yet sealed are scanned), when they answer exactly.
    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<TrendPartial>, QueryError> {
        if self.session_gap.is_some() {
            // Sessions are a customer's runs of events: no index holds them.
            return Ok(Prefilter::everyone());
        }
        if let Some(p) = uniq_from_bitmaps(self, input, self.range) {
            return Ok(Prefilter::Answered(p));
        }
        if let Some(p) = uniq_by_from_value_index(self, input, self.range) {
            return Ok(Prefilter::Answered(p));
        }
        Ok(match trend_from_rollups(self, input, self.range) {
            Some(sealed) => Prefilter::Scan {
                only: None,
                unsealed_only: true,
                counted: sealed,
            },
            None => Prefilter::everyone(),
        })
    }

    const READS_PARTS: bool = true;

    fn customer(&self, partial: &mut TrendPartial, rows: &Columns, run: Range<usize>) {
        self.customer_in_parts(partial, std::iter::once((rows, run)));
    }

    fn customer_in_parts<'r>(
        &self,
        partial: &mut TrendPartial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
    ) {
        if let Some(gap) = self.session_gap {
            return self.sessions(partial, parts, gap);
        }
        let mut seen = SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
        seen.clear();
        for (rows, run) in parts {
            for i in run {
                self.count_row(partial, &mut seen, rows, i);
            }
        }
        seen.sort_unstable();
        seen.dedup();
        if self.shares {
            count_split(partial, &seen);
        } else {
            for &key in &seen {
                partial.entry(key).or_default().customers += 1;
            }
        }
        SEEN.with(|s| *s.borrow_mut() = seen);
    }

    fn footprint(&self, partial: &TrendPartial) -> usize {
        partial.map.len() * (std::mem::size_of::<((Option<u64>, usize), AggState)>() + 8)
            + partial.dense.capacity() * std::mem::size_of::<AggState>()
            + partial.values * 8
    }

    fn merge(&self, into: &mut TrendPartial, mut from: TrendPartial) {
        if into.dense.is_empty() {
            into.dense = std::mem::take(&mut from.dense);
        } else if into.dense.len() == from.dense.len() {
            for (state, other) in into.dense.iter_mut().zip(std::mem::take(&mut from.dense)) {
                state.add(other);
            }
        } else {
            from.settle();
        }
        into.values += from.values;
        into.bad = match (into.bad, from.bad) {
            (Some(a), Some(b)) => Some(earliest(a, b)),
            (a, b) => a.or(b),
        };
        for (key, state) in from.map {
            into.entry(key).or_default().add(state);
        }
    }

    fn finish(
        &self,
        partial: TrendPartial,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let mut partial = partial;
        partial.settle();
        self.check_scores(&partial, input)?;
        let names = self.groups(&partial, input.dicts);
        // Refuse before building a table that is over the cap.
        if (self.buckets.len() - self.first).saturating_mul(names.len()) > opts.rows_max {
            return Err(QueryError::TooManyRows(opts.rows_max));
        }
        let mut cols = vec!["bucket"];
        match &self.by {
            Some(by) if by.is_pair() => cols.extend(["group", "group2"]),
            Some(_) => cols.push("group"),
            None => {}
        }
        cols.push("value");
        let is_nps = matches!(self.agg, Agg::Nps(..));
        if is_nps {
            cols.extend([
                "promoters",
                "passives",
                "detractors",
                "responses",
                "ci_low",
                "ci_high",
            ]);
        }
        cols.push("complete");
        let mut t = Table::new(&cols);
        let empty = AggState::default();
        let complete = complete_buckets(&self.buckets, self.explicit, input);
        for b in self.first..self.buckets.len() {
            for (labels, key) in &names {
                let state = partial.get(&(*key, b)).unwrap_or(&empty);
                let mut row = vec![Cell::Str(self.buckets.label(b))];
                row.extend(labels.iter().map(|l| Cell::Str(l.clone())));
                row.push(self.aggregate(state));
                if is_nps {
                    let (p, q, d) = (state.promoters, state.passives, state.detractors);
                    row.extend([p, q, d, p + q + d].map(|n| Cell::Int(n as i64)));
                    let interval = nps(state).map(|(_, low, high)| (low, high));
                    row.push(interval.map_or(Cell::Null, |(low, _)| Cell::Float(low)));
                    row.push(interval.map_or(Cell::Null, |(_, high)| Cell::Float(high)));
                }
                row.push(Cell::Bool(complete(b)));
                t.rows.push(row);
            }
        }
        Ok(t)
    }
}

/// Runs a TREND statement.
pub(super) fn trend(
    tr: &crate::query::ast::Trend,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&TrendOp::plan(tr, text, input, false)?, input, opts)
}

/// `uniq` as bitmap union cardinalities, when that is exact: UTC calendar buckets (whole UTC
/// days), step ANY or `STAGE s` without predicates, no WHERE or BY, and every bucket either wholly
/// inside the range or holding no event outside it.
/// `TREND count|sum|avg|min|max [OF STAGE s]` by UTC day, week or month without a filter or
/// breakdown, from the segments' per (stage, day) rollups (rows not yet in a segment are then
/// scanned). `None` when the query or a segment does not qualify (then everything is scanned):
/// the answer is the same either way (tests/queries.rs checks both against the reference).
pub(super) fn trend_from_rollups(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    (lo, hi): (i64, i64),
) -> Option<TrendPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    let agg_ok = matches!(
        op.agg,
        Agg::Count | Agg::Sum(..) | Agg::Avg(..) | Agg::Min(..) | Agg::Max(..)
    );
    if !agg_ok || op.filter.is_some() || op.by.is_some() || !utc || op.buckets.period == Period::Hour {
        return None;
    }
    let stage = match &op.step {
        None => None,
        Some(m) if m.filter.is_none() && m.events.is_none() && m.stage.is_some() => m.stage,
        Some(_) => return None,
    };
    if !whole_days(input, (lo, hi)) {
        return None;
    }
    let mut rollups = Vec::new();
    for s in &input.sources {
        match s {
            Source::Segment(seg) => match &seg.footer.rollups {
                Some(r) => rollups.push(r),
                None => return None,
            },
            // Rollups count the rows an erasure hides.
            Source::Masked(..) => return None,
            Source::Memory(_) => {}
        }
    }
    let mut out = TrendPartial::default();
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    for r in rollups {
        for (&(st, day), cell) in &r.cells {
            if day < d0 || day > d1 || stage.is_some_and(|s| s != st) {
                continue;
            }
            let Some(k) = op.buckets.index(model::first_instant_of_day(day)) else {
                continue;
            };
            if k < op.first {
                continue;
            }
            let e = out.map.entry((None, k)).or_default();
            e.events += cell.events;
            if let Some(a) = op.value.and_then(|(id, _)| cell.props.get(&id)) {
                e.sum += a.sum;
                e.n += a.n;
                e.min = Some(e.min.map_or(a.min, |m| m.min(a.min)));
                e.max = Some(e.max.map_or(a.max, |m| m.max(a.max)));
            }
        }
    }
    Some(out)
}

/// `TREND uniq PERIOD day|week|month BY p` (UTC, no OF, no filter, p a string property) from
/// the segments' per (value, day) customer bitmaps; rows not yet sealed are indexed on the fly.
/// `None` when the query or a segment does not qualify (then everything is scanned).
pub(super) fn uniq_by_from_value_index(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    (lo, hi): (i64, i64),
) -> Option<TrendPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    let (prop, ty) = op.by.as_ref()?.event_prop()?;
    if op.agg != Agg::Uniq
        || op.filter.is_some()
        || op.step.is_some()
        || ty != PropType::Str
        || !utc
        || op.buckets.period == Period::Hour
    {
        return None;
    }
    if !whole_days(input, (lo, hi)) {
        return None;
    }
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    // (group, bucket) → customers, unioned over sources.
    let mut cells: BTreeMap<(Option<u64>, usize), roaring::RoaringBitmap> = BTreeMap::new();
    let mut add =
        |slot: Option<u64>, day: i32, b: &roaring::RoaringBitmap, hidden: Option<&roaring::RoaringBitmap>| {
            if day < d0 || day > d1 {
                return;
            }
            let Some(k) = op.buckets.index(model::first_instant_of_day(day)) else {
                return;
            };
            if k < op.first {
                return;
            }
            let cell = cells.entry((slot, k)).or_default();
            match hidden {
                Some(h) => *cell |= b - h,
                None => *cell |= b,
            }
        };
    // The unrestricted sources: a restriction is applied to the cells last.
    for s in super::prefilter::unrestricted_sources(input) {
        let (seg, hidden) = match s {
            Source::Segment(seg) => (seg, None),
            Source::Masked(seg, m) => (seg, Some(&**m)),
            Source::Memory(cols) => {
                let mut v = crate::index::ValueIndexBuilder::default();
                v.add(cols, &[prop]);
                let v = v.finish();
                if v.overflow.contains(&prop) {
                    return None;
                }
                for (&(p, slot, day), x) in &v.days {
                    if p == prop {
                        add(slot, day, x, None);
                    }
                }
                continue;
            }
        };
        let values = seg.footer.values.as_ref()?;
        if values.overflow.contains(&prop) {
            return None;
        }
        if seg.footer.props.iter().any(|&(id, _)| id == prop) {
            for (&(p, slot, day), x) in values
                .days
                .range((prop, None, i32::MIN)..=(prop, Some(u64::MAX), i32::MAX))
            {
                debug_assert_eq!(p, prop);
                add(slot, day, x, hidden);
            }
        } else {
            for (&day, x) in &seg.footer.bitmaps.days {
                add(None, day, x, hidden);
            }
        }
    }
    Some(cells_partial(op, input, cells))
}

/// The customer counts of unrestricted (group, bucket) cells, under the input's restriction:
/// a count is an intersection's size (nothing built) unless the shares need the sets.
fn cells_partial(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    mut cells: BTreeMap<(Option<u64>, usize), roaring::RoaringBitmap>,
) -> TrendPartial {
    let admitted = input.restriction.as_ref().map(|r| &*r.admitted);
    let mut splits = HashMap::default();
    if op.shares {
        (cells.values_mut()).for_each(|customers| super::prefilter::admit(input, customers));
        splits = split_cells(&cells);
    }
    let mut out = TrendPartial::default();
    for (key, b) in cells {
        let n = match admitted {
            Some(admitted) if !op.shares => b.intersection_len(admitted),
            _ => b.len(),
        };
        if n > 0 {
            out.map.insert(
                key,
                AggState {
                    customers: n,
                    split: splits.remove(&key).unwrap_or_default(),
                    ..AggState::default()
                },
            );
        }
    }
    out
}

/// Each (group, bucket) cell's customers split by the number of groups they are in that
/// bucket ([`AggState::split`]), from the cells' customer sets.
fn split_cells(
    cells: &BTreeMap<(Option<u64>, usize), roaring::RoaringBitmap>,
) -> HashMap<(Option<u64>, usize), Vec<u64>> {
    let mut by_bucket: BTreeMap<usize, Vec<(Option<u64>, &roaring::RoaringBitmap)>> = BTreeMap::new();
    for (&(group, bucket), customers) in cells {
        by_bucket.entry(bucket).or_default().push((group, customers));
    }
    let mut out = HashMap::default();
    for (bucket, groups) in by_bucket {
        let sets: Vec<&roaring::RoaringBitmap> = groups.iter().map(|&(_, customers)| customers).collect();
        for ((group, _), split) in groups.iter().zip(overlaps::split_by_membership(&sets)) {
            out.insert((*group, bucket), split);
        }
    }
    out
}

pub(super) fn uniq_from_bitmaps(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    (lo, hi): (i64, i64),
) -> Option<TrendPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    // A customer property's groups are customer sets: each bucket's customers split by them.
    let groups = match &op.by {
        None => None,
        Some(by) => Some(by.customer_members()?),
    };
    if op.agg != Agg::Uniq || op.filter.is_some() || !utc || op.buckets.period == Period::Hour {
        return None;
    }
    let stage = match &op.step {
        None => None,
        Some(m) if m.filter.is_none() && m.events.is_none() => m.stage,
        Some(_) => return None,
    };
    if !whole_days(input, (lo, hi)) {
        return None;
    }
    // Under a restriction these are the restriction's own bitmaps (made once per snapshot and
    // filter set): their union per bucket is cheaper than the snapshot's intersected with the
    // admitted customers bucket by bucket (BY COHORT of three wide cohorts, 10M events: 0.7
    // against 1.5–1.9 ms; BENCHMARKS round 31).
    let b = input.bitmaps;
    let mut out = TrendPartial::default();
    for k in op.first..op.buckets.len() {
        let (s, e) = (op.buckets.starts[k].max(lo), op.buckets.starts[k + 1].min(hi));
        if s >= e {
            continue;
        }
        let mut u = roaring::RoaringBitmap::new();
        for day in model::day_of(s)..=model::day_of(e - 1) {
            let x = match stage {
                None => b.days.get(&day),
                Some(st) => b.stage_days.get(&(st, day)),
            };
            if let Some(x) = x {
                u |= &**x;
            }
        }
        // A customer property puts each customer in one group.
        let count = |customers: u64| AggState {
            customers,
            split: if op.shares { vec![customers] } else { Vec::new() },
            ..AggState::default()
        };
        let mut grouped = 0;
        for (slot, members) in groups.unwrap_or_default() {
            let n = u.intersection_len(members);
            if n > 0 {
                out.insert((Some(*slot), k), count(n));
                grouped += n;
            }
        }
        if u.len() > grouped {
            out.insert((None, k), count(u.len() - grouped));
        }
    }
    Some(out)
}
