//! LIFECYCLE, STICKINESS and STAGES: where customers stand and how they move, per bucket.
//!
//! LIFECYCLE and STAGES are bucket-level: `FROM..TO` chooses the buckets reported, and activity
//! in a bucket counts every event in it. STICKINESS counts events inside `FROM..TO` only.

use std::ops::Range;

use roaring::RoaringBitmap;

use super::{Input, Operator, QueryError, QueryOptions, columns, passes, run};
use crate::dict::Dicts;
use crate::limits;
use crate::model::{self, Columns, Stage};
use crate::plan::{Buckets, CPred, Matcher, Resolver};
use crate::query::ast::{Lifecycle, Period, Stages, Stickiness, Transitions};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};

/// Buckets covering all history and the range, and the reported index range.
fn history_buckets(
    input: &Input<'_>,
    range: Option<(i64, i64)>,
    period: Period,
    tz: &jiff::tz::TimeZone,
) -> Result<(Buckets, Range<usize>), QueryError> {
    let (lo, hi) = super::data_range(input, range);
    let start = input.ts_range.map_or(lo, |(a, _)| a.min(lo));
    let end = input.ts_range.map_or(hi, |(_, b)| (b + 1).max(hi));
    let buckets = Buckets::new(start, end, 0, period, tz, limits::BUCKETS_MAX)
        .map_err(|m| ParseError::new(Span::default(), m))?;
    let first = buckets.index(lo).unwrap_or(0);
    let last = buckets.index(hi - 1).map_or(buckets.len(), |i| i + 1);
    Ok((buckets, first..last))
}

// ------------------------------------------------------------------------------- LIFECYCLE

struct LifecycleOp<'a> {
    step: Matcher,
    filter: Option<CPred>,
    buckets: Buckets,
    report: Range<usize>,
    dicts: &'a Dicts,
}

/// Per bucket: [new, returning, resurrecting, dormant].
type Counts4 = Vec<[i64; 4]>;

impl Operator for LifecycleOp<'_> {
    type Partial = Counts4;

    fn customer(&self, p: &mut Counts4, rows: &Columns, r: Range<usize>) {
        if p.is_empty() {
            p.resize(self.buckets.len() + 1, [0; 4]);
        }
        let mut active: Vec<usize> = r
            .filter(|&i| passes(&self.filter, rows, i, self.dicts) && self.step.matches(rows, i, self.dicts))
            .filter_map(|i| self.buckets.index(rows.ts[i]))
            .collect();
        active.sort_unstable();
        active.dedup();
        let Some(&first) = active.first() else { return };
        for (j, &b) in active.iter().enumerate() {
            if self.report.contains(&b) {
                let class = if b == first {
                    0
                } else if j > 0 && active[j - 1] + 1 == b {
                    1
                } else {
                    2
                };
                p[b][class] += 1;
            }
            let next_active = active.get(j + 1) == Some(&(b + 1));
            if !next_active && self.report.contains(&(b + 1)) {
                p[b + 1][3] -= 1;
            }
        }
    }

    fn footprint(&self, p: &Counts4) -> usize {
        p.len() * 32
    }

    fn merge(&self, a: &mut Counts4, b: Counts4) {
        if a.is_empty() {
            *a = b;
            return;
        }
        for (x, y) in a.iter_mut().zip(b) {
            for k in 0..4 {
                x[k] += y[k];
            }
        }
    }
}

/// LIFECYCLE of event names or stages without a filter, in UTC buckets of a day or longer, as
/// bitmap algebra over the per-day indices: with A(b) the customers active in bucket b and S(b)
/// those active before b, new = A(b) − S(b), returning = A(b) ∩ A(b−1), resurrecting =
/// (A(b) − A(b−1)) ∩ S(b), dormant = −|A(b−1) − A(b)|. `None` when it does not qualify.
fn lifecycle_from_bitmaps(op: &LifecycleOp<'_>, input: &Input<'_>) -> Option<Counts4> {
    if op.filter.is_some() || op.buckets.tz != jiff::tz::TimeZone::UTC || op.buckets.period == Period::Hour {
        return None;
    }
    let days = super::step_days(&op.step, input)?;
    let n = op.buckets.len();
    let mut active = vec![RoaringBitmap::new(); n];
    for (d, b) in days {
        active[op.buckets.index(model::first_instant_of_day(d))?] |= b;
    }
    let mut out = vec![[0i64; 4]; n];
    let mut seen = RoaringBitmap::new();
    let empty = RoaringBitmap::new();
    for b in 0..n {
        let prev = if b > 0 { &active[b - 1] } else { &empty };
        if op.report.contains(&b) {
            let cur = &active[b];
            out[b] = [
                (cur - &seen).len() as i64,
                cur.intersection_len(prev) as i64,
                ((cur - prev) & &seen).len() as i64,
                -((prev - cur).len() as i64),
            ];
        }
        seen |= &active[b];
    }
    Some(out)
}

pub(super) fn lifecycle(
    l: &Lifecycle,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, l.common.tz.as_ref())?;
    let range = res.range(&l.common.range)?;
    let (buckets, report) = history_buckets(input, range, l.period, &res.tz)?;
    let op = LifecycleOp {
        step: res.step(&l.step)?,
        filter: l.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
        buckets,
        report,
        dicts: input.dicts,
    };
    let props = op.filter.is_some() || op.step.uses_props();
    let p = match lifecycle_from_bitmaps(&op, input) {
        Some(p) => p,
        None => run(&op, input, columns(props), opts)?,
    };
    let mut t = Table::new(&["bucket", "new", "returning", "resurrecting", "dormant"]);
    for b in op.report.clone() {
        let c = p.get(b).copied().unwrap_or([0; 4]);
        t.rows.push(vec![
            Cell::Str(op.buckets.label(b)),
            Cell::Int(c[0]),
            Cell::Int(c[1]),
            Cell::Int(c[2]),
            Cell::Int(c[3]),
        ]);
    }
    Ok(t)
}

// ------------------------------------------------------------------------------ STICKINESS

struct StickinessOp<'a> {
    step: Matcher,
    filter: Option<CPred>,
    buckets: Buckets,
    range: (i64, i64),
    min: u32,
    dicts: &'a Dicts,
}

impl Operator for StickinessOp<'_> {
    /// customers[d] = customers active in exactly d buckets.
    type Partial = Vec<i64>;

    fn customer(&self, p: &mut Vec<i64>, rows: &Columns, r: Range<usize>) {
        if p.is_empty() {
            p.resize(self.buckets.len() + 1, 0);
        }
        let mut hits: Vec<usize> = r
            .filter(|&i| {
                let ts = rows.ts[i];
                self.range.0 <= ts
                    && ts < self.range.1
                    && passes(&self.filter, rows, i, self.dicts)
                    && self.step.matches(rows, i, self.dicts)
            })
            .filter_map(|i| self.buckets.index(rows.ts[i]))
            .collect();
        hits.sort_unstable();
        let mut active = 0usize;
        let mut i = 0;
        while i < hits.len() {
            let mut j = i;
            while j < hits.len() && hits[j] == hits[i] {
                j += 1;
            }
            if (j - i) as u64 >= u64::from(self.min) {
                active += 1;
            }
            i = j;
        }
        if active > 0 {
            p[active] += 1;
        }
    }

    fn footprint(&self, p: &Vec<i64>) -> usize {
        p.len() * 8
    }

    fn merge(&self, a: &mut Vec<i64>, b: Vec<i64>) {
        if a.is_empty() {
            *a = b;
            return;
        }
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

/// STICKINESS (MIN 1) of event names or stages without a filter, in UTC days or weeks over
/// whole days: each bucket's active customers from the per-day indices, counted per customer.
fn stickiness_from_bitmaps(op: &StickinessOp<'_>, input: &Input<'_>) -> Option<Vec<i64>> {
    if op.filter.is_some()
        || op.min != 1
        || op.buckets.tz != jiff::tz::TimeZone::UTC
        || op.buckets.period == Period::Hour
    {
        return None;
    }
    let (lo, hi) = op.range;
    if !super::whole_days(input, (lo, hi)) {
        return None;
    }
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    let n = op.buckets.len();
    let mut active = vec![RoaringBitmap::new(); n];
    for (d, b) in super::step_days(&op.step, input)? {
        if d < d0 || d > d1 {
            continue;
        }
        active[op.buckets.index(model::first_instant_of_day(d))?] |= b;
    }
    let mut per_customer = vec![0u32; input.customers as usize];
    for b in &active {
        for c in b {
            *per_customer.get_mut(c as usize)? += 1;
        }
    }
    let mut out = vec![0i64; n + 1];
    for &k in &per_customer {
        if k > 0 {
            *out.get_mut(k as usize)? += 1;
        }
    }
    Some(out)
}

pub(super) fn stickiness(
    st: &Stickiness,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, st.common.tz.as_ref())?;
    let range = super::data_range(input, res.range(&st.common.range)?);
    let buckets = Buckets::new(range.0, range.1, 0, st.period, &res.tz, limits::BUCKETS_MAX)
        .map_err(|m| ParseError::new(Span::default(), m))?;
    let op = StickinessOp {
        step: res.step(&st.step)?,
        filter: st.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
        buckets,
        range,
        min: st.min,
        dicts: input.dicts,
    };
    let props = op.filter.is_some() || op.step.uses_props();
    let p = match stickiness_from_bitmaps(&op, input) {
        Some(p) => p,
        None => run(&op, input, columns(props), opts)?,
    };
    let n = op.buckets.len();
    let mut t = Table::new(&["buckets", "customers"]);
    let exact = |d: usize| p.get(d).copied().unwrap_or(0);
    for d in 1..=n {
        let v = if st.cumulative {
            (d..=n).map(exact).sum()
        } else {
            exact(d)
        };
        t.rows.push(vec![Cell::Int(d as i64), Cell::Int(v)]);
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------- STAGES

struct StagesOp {
    buckets: Buckets,
    report: Range<usize>,
}

/// Per bucket and stage code: [active, change in "furthest stage so far"].
type StagePartial = Vec<[[i64; 2]; 6]>;

impl Operator for StagesOp {
    type Partial = StagePartial;

    fn customer(&self, p: &mut StagePartial, rows: &Columns, r: Range<usize>) {
        if p.is_empty() {
            p.resize(self.buckets.len() + 1, [[0; 2]; 6]);
        }
        let mut seen: Vec<(usize, u8)> = Vec::new();
        let mut furthest = 0u8;
        for i in r {
            let s = rows.stage[i];
            if s == 0 {
                continue;
            }
            let Some(b) = self.buckets.index(rows.ts[i]) else {
                continue;
            };
            seen.push((b, s));
            if s > furthest {
                // The furthest stage changes at bucket b (difference encoding, summed later).
                p[b][furthest as usize][1] -= 1;
                p[b][s as usize][1] += 1;
                furthest = s;
            }
        }
        seen.sort_unstable();
        seen.dedup();
        for (b, s) in seen {
            if self.report.contains(&b) {
                p[b][s as usize][0] += 1;
            }
        }
    }

    fn footprint(&self, p: &StagePartial) -> usize {
        p.len() * 96
    }

    fn merge(&self, a: &mut StagePartial, b: StagePartial) {
        if a.is_empty() {
            *a = b;
            return;
        }
        for (x, y) in a.iter_mut().zip(b) {
            for s in 0..6 {
                x[s][0] += y[s][0];
                x[s][1] += y[s][1];
            }
        }
    }
}

/// STAGES from the (stage, UTC day) bitmaps alone: exact for UTC calendars.
fn stages_from_bitmaps(input: &Input<'_>, buckets: &Buckets, report: &Range<usize>) -> StagePartial {
    let b = input.bitmaps;
    let mut p: StagePartial = vec![[[0; 2]; 6]; buckets.len() + 1];
    let mut reached: [RoaringBitmap; 6] = Default::default();
    let mut prev_counts = [0i64; 6];
    let first_day = model::day_of(buckets.starts[0]);
    // Everything before the first bucket counts towards "furthest so far".
    for ((s, day), x) in &b.stage_days {
        if *day < first_day && *s > 0 {
            reached[*s as usize] |= x;
        }
    }
    for (k, row) in p.iter_mut().enumerate().take(buckets.len()) {
        let (d0, d1) = (
            model::day_of(buckets.starts[k]),
            model::day_of(buckets.starts[k + 1] - 1),
        );
        for s in 1..6u8 {
            let mut active = RoaringBitmap::new();
            for day in d0..=d1 {
                if let Some(x) = b.stage_days.get(&(s, day)) {
                    active |= x;
                }
            }
            if report.contains(&k) {
                row[s as usize][0] = active.len() as i64;
            }
            reached[s as usize] |= &active;
        }
        // furthest == s  <=>  reached s and no higher stage.
        let mut higher = RoaringBitmap::new();
        for s in (1..6usize).rev() {
            let n = reached[s].difference_len(&higher) as i64;
            row[s][1] = n - prev_counts[s];
            prev_counts[s] = n;
            higher |= &reached[s];
        }
    }
    p
}

pub(super) fn stages(
    st: &Stages,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, st.common.tz.as_ref())?;
    let range = res.range(&st.common.range)?;
    let (buckets, report) = history_buckets(input, range, st.period, &res.tz)?;
    let utc_days = res.tz == jiff::tz::TimeZone::UTC && st.period != Period::Hour;
    let op = StagesOp { buckets, report };
    let p = if utc_days {
        stages_from_bitmaps(input, &op.buckets, &op.report)
    } else {
        let mut p = run(&op, input, columns(false), opts)?;
        p.resize(op.buckets.len() + 1, [[0; 2]; 6]);
        p
    };
    let mut t = Table::new(&["bucket", "stage", "active", "furthest"]);
    let mut furthest = [0i64; 6];
    for (k, row) in p.iter().enumerate().take(op.buckets.len()) {
        for s in 0..6 {
            furthest[s] += row[s][1];
        }
        if !op.report.contains(&k) {
            continue;
        }
        for stage in Stage::ALL {
            let s = stage.code() as usize;
            t.rows.push(vec![
                Cell::Str(op.buckets.label(k)),
                Cell::Str(stage.name().to_owned()),
                Cell::Int(row[s][0]),
                Cell::Int(furthest[s]),
            ]);
        }
    }
    Ok(t)
}

// ----------------------------------------------------------------------------- TRANSITIONS

struct TransitionsOp {
    range: Option<(i64, i64)>,
    within: Option<i64>,
}

/// Times (µs) of each transition (from stage code, 0 = none; to stage code), and how many
/// customers ended (as of TO) at each furthest stage.
#[derive(Default)]
struct TransitionPartial {
    moves: std::collections::BTreeMap<(u8, u8), Vec<i64>>,
    stayed: [i64; 6],
}

impl Operator for TransitionsOp {
    type Partial = TransitionPartial;

    fn customer(&self, p: &mut TransitionPartial, rows: &Columns, r: Range<usize>) {
        let mut furthest = 0u8;
        let mut since = i64::MIN;
        for i in r {
            let (s, t) = (rows.stage[i], rows.ts[i]);
            if self.range.is_some_and(|(_, hi)| t >= hi) {
                break;
            }
            if s <= furthest {
                continue;
            }
            let in_range = self.range.is_none_or(|(lo, _)| t >= lo);
            // Saturating: a wait longer than i64 microseconds exceeds every WITHIN.
            let waited = if furthest == 0 { 0 } else { t.saturating_sub(since) };
            if in_range && self.within.is_none_or(|w| waited <= w) {
                p.moves.entry((furthest, s)).or_default().push(waited);
            }
            furthest = s;
            since = t;
        }
        if furthest > 0 {
            p.stayed[furthest as usize] += 1;
        }
    }

    fn footprint(&self, p: &TransitionPartial) -> usize {
        p.moves.values().map(|v| 64 + v.len() * 8).sum()
    }

    fn merge(&self, a: &mut TransitionPartial, b: TransitionPartial) {
        for (k, v) in b.moves {
            a.moves.entry(k).or_default().extend(v);
        }
        for s in 0..6 {
            a.stayed[s] += b.stayed[s];
        }
    }
}

fn stage_label(code: u8) -> String {
    Stage::from_code(code).map_or_else(|| "(none)".to_owned(), |s| s.name().to_owned())
}

pub(super) fn transitions(
    tr: &Transitions,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, None)?;
    let op = TransitionsOp {
        range: res.range(&tr.common.range)?,
        within: tr.within_us,
    };
    let mut p = run(&op, input, columns(false), opts)?;
    let mut t = Table::new(&["from_stage", "to_stage", "customers", "median_time_s"]);
    for ((from, to), times) in &mut p.moves {
        let (median, _) = super::median_mean(times);
        let median = if *from == 0 { Cell::Null } else { median };
        t.rows.push(vec![
            Cell::Str(stage_label(*from)),
            Cell::Str(stage_label(*to)),
            Cell::Int(times.len() as i64),
            median,
        ]);
    }
    for stage in Stage::ALL {
        let n = p.stayed[stage.code() as usize];
        t.rows.push(vec![
            Cell::Str(stage.name().to_owned()),
            Cell::Str("(stayed)".into()),
            Cell::Int(n),
            Cell::Null,
        ]);
    }
    Ok(t)
}
