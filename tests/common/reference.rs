//! The reference evaluator, written straight from docs/QUERY.md: brute force over all chains for
//! funnels, per-event calendar conversion with jiff for buckets. Used by tests/queries.rs and
//! tests/shell.rs.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use journeydb::{Cell, Event, Stage, Table};

pub const H: i64 = 3_600_000_000;

#[derive(Clone, Debug)]
pub struct Ev {
    pub cust: String,
    pub ts: i64,
    pub seq: usize,
    pub name: String,
    pub stage: Option<Stage>,
    pub ch: Option<String>,
    pub amt: Option<f64>,
}

impl Ev {
    /// An event without a stage as the engine takes it (`ch` and `amt` as properties) and as
    /// the reference reads it, `seq` its commit position.
    pub fn paired(
        cust: &str,
        ts: i64,
        seq: usize,
        name: &str,
        (ch, amt): (Option<&str>, Option<f64>),
    ) -> (Event, Ev) {
        let mut event = Event::new(cust, ts, name);
        if let Some(ch) = ch {
            event = event.with_prop("ch", ch);
        }
        if let Some(amt) = amt {
            event = event.with_prop("amt", amt);
        }
        let ev = Ev {
            cust: cust.into(),
            ts,
            seq,
            name: name.into(),
            stage: None,
            ch: ch.map(str::to_owned),
            amt,
        };
        (event, ev)
    }
}

#[derive(Clone, Debug)]
pub enum StepQ {
    Names(Vec<&'static str>),
    Stage(Stage),
    Any,
}

impl StepQ {
    pub fn text(&self) -> String {
        match self {
            StepQ::Names(n) => n.join(" OR "),
            StepQ::Stage(s) => format!("STAGE {s}"),
            StepQ::Any => "ANY".into(),
        }
    }
    pub fn matches(&self, e: &Ev) -> bool {
        match self {
            StepQ::Names(n) => n.contains(&e.name.as_str()),
            StepQ::Stage(s) => e.stage == Some(*s),
            StepQ::Any => true,
        }
    }
}

/// A funnel's optional forms: `FIRST` steps (only the customer's first event matching the step,
/// in event order over all its events, may fill it), `HOLDING ch` (every event of a chain has
/// the first event's `ch`, a missing value being one value) and `PERCENTILES` (p25, p75, p90 of
/// the times to convert, continuous as the median).
#[derive(Clone, Debug, Default)]
pub struct Extras {
    pub first: Vec<bool>,
    pub holding: bool,
    pub percentiles: bool,
    /// `WITHIN SESSION`: the gap (µs) instead of the window; a chain's events lie in one
    /// session (no two consecutive events of the customer, WHERE applied, more than the gap
    /// apart between its first and its last).
    pub session: Option<i64>,
}

impl Extras {
    fn first_at(&self, k: usize) -> bool {
        self.first.get(k).copied().unwrap_or(false)
    }

    /// True when `ev[j]` may fill step `k` (0-based) of a chain starting at `ev[start]`.
    pub fn allows(&self, ev: &[Ev], steps: &[StepQ], k: usize, j: usize, start: usize) -> bool {
        (!self.first_at(k) || ev.iter().position(|e| steps[k].matches(e)) == Some(j))
            && (!self.holding || ev[j].ch == ev[start].ch)
    }

    pub fn text(&self, k: usize) -> &'static str {
        if self.first_at(k) { "FIRST " } else { "" }
    }

    /// True when `ev[j]` (j ≥ start) is within reach of a chain starting at `ev[start]`: inside
    /// the window, or with `WITHIN SESSION` in the same session.
    pub fn reaches(&self, ev: &[Ev], start: usize, j: usize, within: i64) -> bool {
        match self.session {
            None => ev[j].ts - ev[start].ts <= within,
            Some(gap) => (start + 1..=j).all(|m| ev[m].ts - ev[m - 1].ts <= gap),
        }
    }

    /// The funnel's window clause.
    pub fn window_text(&self, within: i64) -> String {
        match self.session {
            None => format!("WITHIN {}h", within / H),
            Some(gap) if gap == 30 * 60_000_000 => "WITHIN SESSION".into(),
            Some(gap) => format!("WITHIN SESSION {}m", gap / 60_000_000),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Common {
    pub range: Option<(i64, i64)>,
    pub where_ch: Option<&'static str>,
    pub tz: &'static str,
}

impl Common {
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some((a, b)) = self.range {
            s += &format!(" FROM {} TO {}", a / 1000, b / 1000);
        }
        if let Some(c) = self.where_ch {
            s += &format!(" WHERE ch = '{c}'");
        }
        // UTC is the default: leaving it out also exercises the bitmap paths that need it.
        if self.tz != "UTC" {
            s += &format!(" TZ '{}'", self.tz);
        }
        s
    }
    pub fn pass(&self, e: &Ev) -> bool {
        self.where_ch.is_none_or(|c| e.ch.as_deref() == Some(c))
    }
    pub fn in_range(&self, ts: i64) -> bool {
        self.range.is_none_or(|(a, b)| a <= ts && ts < b)
    }
}

#[derive(Clone, Debug)]
pub enum Q {
    Funnel {
        steps: Vec<StepQ>,
        within: i64,
        mode: &'static str,
        ties_strict: bool,
        exclude: Option<(StepQ, usize, usize)>,
        /// EXCLUSION CHAIN (else the default customer form).
        exclusion_chain: bool,
        /// FIRST steps and HOLDING ch.
        extras: Extras,
        c: Common,
    },
    Retention {
        start: StepQ,
        ret: StepQ,
        period: &'static str,
        periods: usize,
        recurring: bool,
        on_or_after: bool,
        /// PERIOD_ZERO_RETURNS (else offset 0 is the cohort).
        zero_returns: bool,
        c: Common,
    },
    Trend {
        agg: &'static str,
        of: Option<StepQ>,
        period: &'static str,
        by: bool,
        c: Common,
    },
    Timeline {
        cust: usize,
        limit: Option<usize>,
        c: Common,
    },
    Lifecycle {
        step: StepQ,
        period: &'static str,
        c: Common,
    },
    Stickiness {
        step: StepQ,
        period: &'static str,
        min: u32,
        cumulative: bool,
        c: Common,
    },
    Stages {
        period: &'static str,
        c: Common,
    },
    Transitions {
        within_h: Option<i64>,
        range: Option<(i64, i64)>,
    },
    /// `FUNNEL … PERIOD p` (the funnel a `Q::Funnel`).
    FunnelPeriod {
        funnel: Box<Q>,
        period: &'static str,
    },
}

impl Q {
    /// The statement's text; the period `week_sunday` is `PERIOD week … WEEK START sunday`.
    pub fn text(&self) -> String {
        let text = self.text_with_period_names();
        if text.contains("PERIOD week_sunday") {
            text.replace("PERIOD week_sunday", "PERIOD week") + " WEEK START sunday"
        } else {
            text
        }
    }

    fn text_with_period_names(&self) -> String {
        match self {
            Q::FunnelPeriod { funnel, period } => {
                format!("{} PERIOD {period}", funnel.text_with_period_names())
            }
            Q::Timeline { cust, limit, c } => format!(
                "TIMELINE 'c{cust}'{}{}",
                limit.map_or(String::new(), |n| format!(" LIMIT {n}")),
                c.text()
            ),
            Q::Lifecycle { step, period, c } => {
                format!("LIFECYCLE OF {} PERIOD {period}{}", step.text(), c.text())
            }
            Q::Stickiness {
                step,
                period,
                min,
                cumulative,
                c,
            } => format!(
                "STICKINESS OF {} PERIOD {period} MIN {min}{}{}",
                step.text(),
                if *cumulative { " CUMULATIVE" } else { "" },
                c.text()
            ),
            Q::Stages { period, c } => format!("STAGES PERIOD {period}{}", c.text()),
            Q::Transitions { within_h, range } => format!(
                "TRANSITIONS{}{}",
                range.map_or(String::new(), |(a, b)| format!(
                    " FROM {} TO {}",
                    a / 1000,
                    b / 1000
                )),
                within_h.map_or(String::new(), |h| format!(" WITHIN {h}h"))
            ),
            Q::Funnel {
                steps,
                within,
                mode,
                ties_strict,
                exclude,
                exclusion_chain,
                extras,
                c,
            } => {
                let mut s = format!(
                    "FUNNEL {} {} MODE {mode} TIES {}",
                    (steps.iter().enumerate())
                        .map(|(k, step)| format!("{}{}", extras.text(k), step.text()))
                        .collect::<Vec<_>>()
                        .join(" -> "),
                    extras.window_text(*within),
                    if *ties_strict { "STRICT" } else { "ALLOW" }
                );
                if let Some((x, i, j)) = exclude {
                    s += &format!(" EXCLUDE {} BETWEEN {i} AND {j}", x.text());
                    if *exclusion_chain {
                        s += " EXCLUSION CHAIN";
                    }
                }
                if extras.holding {
                    s += " HOLDING ch";
                }
                if extras.percentiles {
                    s += " PERCENTILES";
                }
                s + &c.text()
            }
            Q::Retention {
                start,
                ret,
                period,
                periods,
                recurring,
                on_or_after,
                zero_returns,
                c,
            } => format!(
                "RETENTION {} RETURN {} PERIOD {period} PERIODS {periods} {}{}{}{}",
                start.text(),
                ret.text(),
                if *recurring { "RECURRING" } else { "FIRST_TIME" },
                if *on_or_after { " ON_OR_AFTER" } else { "" },
                if *zero_returns { " PERIOD_ZERO_RETURNS" } else { "" },
                c.text()
            ),
            Q::Trend {
                agg,
                of,
                period,
                by,
                c,
            } => format!(
                "TREND {agg}{} PERIOD {period}{}{}",
                of.as_ref().map_or(String::new(), |s| format!(" OF {}", s.text())),
                c.text(),
                if *by { " BY ch" } else { "" }
            ),
        }
    }
}

// ------------------------------------------------------------------ reference evaluator

pub fn by_customer(evs: &[Ev]) -> BTreeMap<String, Vec<Ev>> {
    let mut m: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
    for e in evs {
        m.entry(e.cust.clone()).or_default().push(e.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|e| (e.ts, e.seq));
    }
    m
}

/// docs/QUERY.md, "Tied events": a funnel takes a customer's tied events (`ev`, in time order)
/// by the first step each matches (events matching none last), then the set of steps it
/// matches, whether it is excluded, and its name.
/// Event order for a funnel (docs/QUERY.md, "Event order"): by time, tied events by the first
/// step they match, their steps, whether excluded, the HOLDING value (`(null)` when missing),
/// then name.
pub fn funnel_order(
    ev: &mut [Ev],
    steps: &[StepQ],
    exclude: &Option<(StepQ, usize, usize)>,
    extras: &Extras,
) {
    ev.sort_by_cached_key(|e| {
        let mask = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matches(e))
            .fold(0u64, |acc, (k, _)| acc | 1 << k);
        let excluded = exclude.as_ref().is_some_and(|(x, _, _)| x.matches(e));
        let held = if extras.holding {
            e.ch.clone().unwrap_or_else(|| "(null)".into())
        } else {
            String::new()
        };
        (e.ts, mask.trailing_zeros(), mask, excluded, held, e.name.clone())
    });
}

/// All valid ordered chains (as index lists into `ev`), by brute force.
pub fn chains(
    ev: &[Ev],
    steps: &[StepQ],
    within: i64,
    strict_mode: bool,
    ties_strict: bool,
    exclude: &Option<(StepQ, usize, usize)>,
    (c, extras): (&Common, &Extras),
) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut stack: Vec<Vec<usize>> = (0..ev.len())
        .filter(|&i| steps[0].matches(&ev[i]) && extras.allows(ev, steps, 0, i, i) && c.in_range(ev[i].ts))
        .map(|i| vec![i])
        .collect();
    while let Some(ch) = stack.pop() {
        out.push(ch.clone());
        if ch.len() == steps.len() {
            continue;
        }
        let last = *ch.last().unwrap();
        let k = ch.len();
        for j in last + 1..ev.len() {
            if strict_mode && j != last + 1 {
                break;
            }
            let e = &ev[j];
            if !steps[k].matches(e)
                || !extras.allows(ev, steps, k, j, ch[0])
                || !extras.reaches(ev, ch[0], j, within)
                || (ties_strict && e.ts <= ev[last].ts)
            {
                continue;
            }
            let mut next = ch.clone();
            next.push(j);
            if let Some((x, i, jj)) = exclude
                && next.len() >= *jj
            {
                let (a, b) = (next[i - 1], next[jj - 1]);
                if (a + 1..b).any(|m| x.matches(&ev[m])) {
                    continue;
                }
            }
            stack.push(next);
        }
    }
    out
}

/// docs/QUERY.md, `EXCLUSION CUSTOMER` (the default): false when the funnel `q` removes the
/// customer whose events (WHERE applied, in event order) are `ev` — every chain of the
/// greatest length (exclusions ignored) is hit: an excluded event lies after its step-i event
/// and before its step-j event, or (a chain shorter than j) inside its window.
pub fn keeps_customer(q: &Q, ev: &[Ev]) -> bool {
    let Q::Funnel {
        steps,
        within,
        mode,
        ties_strict,
        exclude: Some((x, i, j)),
        exclusion_chain: false,
        extras,
        c,
    } = q
    else {
        return true;
    };
    if *mode == "UNORDERED" {
        return true;
    }
    let free = chains(
        ev,
        steps,
        *within,
        *mode == "STRICT",
        *ties_strict,
        &None,
        (c, extras),
    );
    let longest = free.iter().map(Vec::len).max().unwrap_or(0);
    let hit = |ch: &Vec<usize>| {
        ch.len() >= *i
            && (ch[i - 1] + 1..ev.len()).any(|m| {
                x.matches(&ev[m])
                    && if ch.len() >= *j {
                        m < ch[j - 1]
                    } else {
                        extras.reaches(ev, ch[0], m, *within)
                    }
            })
    };
    longest == 0 || free.iter().any(|ch| ch.len() == longest && !hit(ch))
}

pub fn unordered_level(ev: &[Ev], steps: &[StepQ], within: i64, (c, extras): (&Common, &Extras)) -> usize {
    // Every injective assignment of steps to events (or none), within one window whose earliest
    // event is in range.
    let n = steps.len();
    let mut best = 0;
    let mut assign = vec![None::<usize>; n];
    fn rec(
        k: usize,
        assign: &mut Vec<Option<usize>>,
        ev: &[Ev],
        steps: &[StepQ],
        within: i64,
        (c, extras): (&Common, &Extras),
        best: &mut usize,
    ) {
        if k == steps.len() {
            let used: Vec<usize> = assign.iter().flatten().copied().collect();
            if used.is_empty() || (extras.holding && used.iter().any(|&i| ev[i].ch != ev[used[0]].ch)) {
                return;
            }
            let (first, last) = (used.iter().min().unwrap(), used.iter().max().unwrap());
            let lo = used.iter().map(|&i| ev[i].ts).min().unwrap();
            if extras.reaches(ev, *first, *last, within) && c.in_range(lo) {
                *best = (*best).max(used.len());
            }
            return;
        }
        assign[k] = None;
        rec(k + 1, assign, ev, steps, within, (c, extras), best);
        for i in 0..ev.len() {
            if steps[k].matches(&ev[i])
                && extras.allows(ev, steps, k, i, i)
                && !assign[..k].contains(&Some(i))
            {
                assign[k] = Some(i);
                rec(k + 1, assign, ev, steps, within, (c, extras), best);
            }
        }
        assign[k] = None;
    }
    rec(0, &mut assign, ev, steps, within, (c, extras), &mut best);
    best
}

pub fn local_bucket(ts: i64, period: &str, tz: &TimeZone) -> jiff::civil::DateTime {
    let z = jiff::Timestamp::from_nanosecond(i128::from(ts) * 1000)
        .unwrap()
        .to_zoned_datetime(tz.clone());
    let d = z.date();
    match period {
        "hour" => d.at(z.hour(), 0, 0, 0),
        "day" => d.at(0, 0, 0, 0),
        "week" => d
            .checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset())))
            .unwrap()
            .at(0, 0, 0, 0),
        // docs/QUERY.md: `WEEK START sunday`.
        "week_sunday" => d
            .checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_sunday_zero_offset())))
            .unwrap()
            .at(0, 0, 0, 0),
        _ => d.first_of_month().at(0, 0, 0, 0),
    }
}

pub fn next_bucket(b: jiff::civil::DateTime, period: &str) -> jiff::civil::DateTime {
    let span = match period {
        // Local hours are stepped by the caller in absolute time (see `next_in`).
        "hour" => jiff::Span::new().hours(1),
        "day" => jiff::Span::new().days(1),
        "week" | "week_sunday" => jiff::Span::new().weeks(1),
        _ => jiff::Span::new().months(1),
    };
    b.checked_add(span).unwrap()
}

/// The next bucket, stepping hours in absolute time (a skipped local hour is no bucket; a
/// repeated one is two).
pub fn next_in(b: jiff::civil::DateTime, period: &str, tz: &TimeZone) -> jiff::civil::DateTime {
    if period != "hour" {
        return next_bucket(b, period);
    }
    let z = b.to_zoned_datetime(tz.clone()).unwrap();
    let t = z.timestamp().as_microsecond() + H;
    local_bucket(t, "hour", tz)
}

/// Whether the bucket starting at `b` is complete (docs/QUERY.md, "Complete buckets"): it starts
/// at or after FROM and the start of the earliest event's local day, and ends at or before TO and
/// the latest event (`data`: the earliest and latest event of the whole database).
pub fn complete_ref(
    b: jiff::civil::DateTime,
    period: &str,
    tz: &TimeZone,
    explicit: Option<(i64, i64)>,
    data: Option<(i64, i64)>,
) -> bool {
    let Some((earliest, latest)) = data else {
        return false;
    };
    let at = |civil: jiff::civil::DateTime| {
        civil
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp()
            .as_microsecond()
    };
    let (start, end) = (at(b), at(next_in(b, period, tz)));
    let first_day = at(local_bucket(earliest, "day", tz));
    let lo = explicit.map_or(first_day, |(from, _)| from.max(first_day));
    let hi = explicit.map_or(latest, |(_, to)| to.min(latest));
    start >= lo && end <= hi
}

pub fn label(b: jiff::civil::DateTime, period: &str, tz: &TimeZone) -> String {
    if period == "hour" {
        let z = b.to_zoned_datetime(tz.clone()).unwrap();
        z.strftime("%Y-%m-%dT%H:%M%:z").to_string()
    } else {
        b.date().to_string()
    }
}

pub fn reference(q: &Q, evs: &[Ev]) -> Table {
    let custs = by_customer(evs);
    let ts_range = evs.iter().map(|e| e.ts).min().zip(evs.iter().map(|e| e.ts).max());
    match q {
        Q::FunnelPeriod { funnel, period } => super::funnel_period::reference(funnel, period, evs),
        Q::Timeline { cust, limit, c } => timeline_ref(*cust, *limit, c, evs),
        Q::Lifecycle { .. } | Q::Stickiness { .. } | Q::Stages { .. } => journey_ref(q, evs),
        Q::Transitions { within_h, range } => transitions_ref(*within_h, *range, evs),
        Q::Funnel {
            steps,
            within,
            mode,
            ties_strict,
            exclude,
            extras,
            c,
            ..
        } => {
            let n = steps.len();
            let mut counts = vec![0i64; n + 1];
            let mut times: Vec<Vec<i64>> = vec![Vec::new(); n + 1];
            let mut from_previous: Vec<Vec<i64>> = vec![Vec::new(); n + 1];
            for ev in custs.values() {
                let mut ev: Vec<Ev> = ev.iter().filter(|e| c.pass(e)).cloned().collect();
                funnel_order(&mut ev, steps, exclude, extras);
                // A customer counts at the steps up to its level; level 0 counts nowhere (no
                // step is required to enter an unordered funnel, docs/QUERY.md).
                if *mode == "UNORDERED" {
                    let level = unordered_level(&ev, steps, *within, (c, extras));
                    for count in counts.iter_mut().take(level + 1).skip(1) {
                        *count += 1;
                    }
                    continue;
                }
                if !keeps_customer(q, &ev) {
                    continue;
                }
                let all = chains(
                    &ev,
                    steps,
                    *within,
                    *mode == "STRICT",
                    *ties_strict,
                    exclude,
                    (c, extras),
                );
                let level = all.iter().map(Vec::len).max().unwrap_or(0);
                for k in 1..=level {
                    counts[k] += 1;
                    if k >= 2 {
                        let earliest = all
                            .iter()
                            .filter(|ch| ch.len() >= k)
                            .map(|ch| ch[k - 1])
                            .min()
                            .unwrap();
                        let start = all
                            .iter()
                            .filter(|ch| ch.len() >= k && ch[k - 1] == earliest)
                            .map(|ch| ev[ch[0]].ts)
                            .max()
                            .unwrap();
                        times[k].push(ev[earliest].ts - start);
                        // docs/QUERY.md: on those chains, the latest step-(k − 1) event.
                        let previous = all
                            .iter()
                            .filter(|ch| ch.len() >= k && ch[k - 1] == earliest && ev[ch[0]].ts == start)
                            .map(|ch| ev[ch[k - 2]].ts)
                            .max()
                            .unwrap();
                        from_previous[k].push(ev[earliest].ts - previous);
                    }
                }
            }
            let mut columns = vec![
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
            if extras.percentiles {
                columns.splice(
                    7..7,
                    [
                        "p25_time_to_convert_s",
                        "p75_time_to_convert_s",
                        "p90_time_to_convert_s",
                    ],
                );
            }
            let mut t = Table::new(&columns);
            // docs/QUERY.md, PERCENTILES: continuous, at position (m − 1)·q of the sorted times.
            let quantile = |samples: &[i64], q: f64| {
                if samples.is_empty() {
                    return Cell::Null;
                }
                let mut v = samples.to_vec();
                v.sort();
                let h = (v.len() - 1) as f64 * q;
                let lo = h.floor() as usize;
                let hi = (lo + 1).min(v.len() - 1);
                Cell::Float((v[lo] as f64 + (h - lo as f64) * (v[hi] as f64 - v[lo] as f64)) / 1e6)
            };
            let median_mean = |samples: &[i64]| {
                if samples.is_empty() {
                    return (Cell::Null, Cell::Null);
                }
                let mut v = samples.to_vec();
                v.sort();
                let m = v.len();
                let med = if m % 2 == 1 {
                    v[m / 2] as f64
                } else {
                    (v[m / 2 - 1] + v[m / 2]) as f64 / 2.0
                };
                (
                    Cell::Float(med / 1e6),
                    Cell::Float(v.iter().sum::<i64>() as f64 / m as f64 / 1e6),
                )
            };
            for k in 1..=n {
                let rate = |d: i64| {
                    if d == 0 {
                        Cell::Null
                    } else {
                        Cell::Rate(counts[k] as f64 / d as f64)
                    }
                };
                let (med, mean) = median_mean(&times[k]);
                let (med_previous, mean_previous) = median_mean(&from_previous[k]);
                let mut row = vec![
                    Cell::Int(k as i64),
                    Cell::Str(format!("{}{}", extras.text(k - 1), steps[k - 1].text())),
                    Cell::Int(counts[k]),
                    if k == 1 { Cell::Null } else { rate(counts[k - 1]) },
                    rate(counts[1]),
                    med,
                    mean,
                    med_previous,
                    mean_previous,
                ];
                if extras.percentiles {
                    row.splice(7..7, [0.25, 0.75, 0.9].map(|q| quantile(&times[k], q)));
                }
                t.rows.push(row);
            }
            t
        }
        Q::Retention {
            start,
            ret,
            period,
            periods,
            recurring,
            on_or_after,
            zero_returns,
            c,
        } => {
            let tz = TimeZone::get(c.tz).unwrap();
            let mut cells: BTreeMap<jiff::civil::DateTime, (i64, Vec<i64>)> = BTreeMap::new();
            for ev in custs.values() {
                let ev: Vec<&Ev> = ev.iter().filter(|e| c.pass(e)).collect();
                let mut cohorts = BTreeSet::new();
                if *recurring {
                    for e in ev.iter().filter(|e| start.matches(e) && c.in_range(e.ts)) {
                        cohorts.insert(local_bucket(e.ts, period, &tz));
                    }
                } else if let Some(e) = ev.iter().find(|e| start.matches(e))
                    && c.in_range(e.ts)
                {
                    cohorts.insert(local_bucket(e.ts, period, &tz));
                }
                let returns: BTreeSet<_> = ev
                    .iter()
                    .filter(|e| ret.matches(e))
                    .map(|e| local_bucket(e.ts, period, &tz))
                    .collect();
                for co in cohorts {
                    let cell = cells.entry(co).or_insert((0, vec![0; periods + 1]));
                    cell.0 += 1;
                    let mut b = co;
                    for k in 0..=*periods {
                        // docs/QUERY.md: offset 0 is the cohort itself unless PERIOD_ZERO_RETURNS.
                        let hit = if k == 0 && !*zero_returns {
                            true
                        } else if *on_or_after {
                            returns.range(b..).next().is_some()
                        } else {
                            returns.contains(&b)
                        };
                        if hit {
                            cell.1[k] += 1;
                        }
                        b = next_in(b, period, &tz);
                    }
                }
            }
            let latest = ts_range.map_or(i64::MIN, |r| r.1);
            let mut t = Table::new(&[
                "cohort",
                "period",
                "cohort_size",
                "customers",
                "rate",
                "complete",
                "cohort_complete",
            ]);
            let mut mean = vec![(0i64, 0i64); periods + 1];
            for (co, (size, counts)) in &cells {
                let whole = complete_ref(*co, period, &tz, c.range, ts_range);
                let mut b = *co;
                for (k, &n) in counts.iter().enumerate() {
                    let end = next_in(b, period, &tz)
                        .to_zoned_datetime(tz.clone())
                        .unwrap()
                        .timestamp()
                        .as_microsecond();
                    let done = end <= latest;
                    if done {
                        mean[k].0 += size;
                        mean[k].1 += n;
                    }
                    t.rows.push(vec![
                        Cell::Str(label(*co, period, &tz)),
                        Cell::Int(k as i64),
                        Cell::Int(*size),
                        Cell::Int(n),
                        Cell::Rate(n as f64 / *size as f64),
                        Cell::Bool(done),
                        Cell::Bool(whole),
                    ]);
                    b = next_in(b, period, &tz);
                }
            }
            for (k, (size, n)) in mean.iter().enumerate() {
                t.rows.push(vec![
                    Cell::Str("mean".into()),
                    Cell::Int(k as i64),
                    Cell::Int(*size),
                    Cell::Int(*n),
                    if *size == 0 {
                        Cell::Null
                    } else {
                        Cell::Rate(*n as f64 / *size as f64)
                    },
                    Cell::Bool(true),
                    Cell::Null,
                ]);
            }
            t
        }
        Q::Trend {
            agg,
            of,
            period,
            by,
            c,
        } => {
            let tz = TimeZone::get(c.tz).unwrap();
            let (lo, hi) = c.range.or(ts_range.map(|(a, b)| (a, b + 1))).unwrap_or((0, 1));
            let mut buckets = vec![local_bucket(lo, period, &tz)];
            loop {
                let nb = next_in(*buckets.last().unwrap(), period, &tz);
                if nb
                    .to_zoned_datetime(tz.clone())
                    .unwrap()
                    .timestamp()
                    .as_microsecond()
                    >= hi
                {
                    break;
                }
                buckets.push(nb);
            }
            let sel: Vec<&Ev> = evs
                .iter()
                .filter(|e| c.pass(e) && of.as_ref().is_none_or(|s| s.matches(e)))
                .collect();
            let group = |e: &Ev| {
                if *by {
                    e.ch.clone().unwrap_or("(null)".into())
                } else {
                    String::new()
                }
            };
            // Groups: values of counted events; for wau, values contributing to a reported day.
            let first_day = buckets[0].date().checked_sub(jiff::Span::new().days(6)).unwrap();
            let mut groups: BTreeSet<String> = sel
                .iter()
                .filter(|e| {
                    if *agg == "wau" {
                        let d = local_bucket(e.ts, "day", &tz).date();
                        d >= first_day && e.ts < hi
                    } else {
                        e.ts >= lo && e.ts < hi
                    }
                })
                .map(|e| group(e))
                .collect();
            if !*by {
                groups = [String::new()].into();
            }
            let mut t = Table::new(if *by {
                &["bucket", "group", "value", "complete"]
            } else {
                &["bucket", "value", "complete"]
            });
            for b in &buckets {
                for g in &groups {
                    let in_b: Vec<&&Ev> = sel
                        .iter()
                        .filter(|e| {
                            local_bucket(e.ts, period, &tz) == *b && group(e) == *g && e.ts >= lo && e.ts < hi
                        })
                        .collect();
                    let vals: Vec<f64> = in_b.iter().filter_map(|e| e.amt).collect();
                    let v = match *agg {
                        "count" => Cell::Int(in_b.len() as i64),
                        "uniq" => {
                            Cell::Int(in_b.iter().map(|e| &e.cust).collect::<BTreeSet<_>>().len() as i64)
                        }
                        "wau" => {
                            let d = b.date();
                            let from = d.checked_sub(jiff::Span::new().days(6)).unwrap();
                            Cell::Int(
                                sel.iter()
                                    .filter(|e| {
                                        group(e) == *g && e.ts < hi && {
                                            let ld = local_bucket(e.ts, "day", &tz).date();
                                            ld >= from && ld <= d
                                        }
                                    })
                                    .map(|e| &e.cust)
                                    .collect::<BTreeSet<_>>()
                                    .len() as i64,
                            )
                        }
                        "sum(amt)" => Cell::Float(vals.iter().sum()),
                        "min(amt)" => vals
                            .iter()
                            .copied()
                            .reduce(f64::min)
                            .map_or(Cell::Null, Cell::Float),
                        "max(amt)" => vals
                            .iter()
                            .copied()
                            .reduce(f64::max)
                            .map_or(Cell::Null, Cell::Float),
                        "avg(amt)" => {
                            if vals.is_empty() {
                                Cell::Null
                            } else {
                                Cell::Float(vals.iter().sum::<f64>() / vals.len() as f64)
                            }
                        }
                        _ => {
                            let mut v = vals.clone();
                            v.sort_by(f64::total_cmp);
                            if v.is_empty() {
                                Cell::Null
                            } else {
                                Cell::Float(v[((0.5 * v.len() as f64).ceil() as usize).max(1) - 1])
                            }
                        }
                    };
                    let mut row = vec![Cell::Str(label(*b, period, &tz)), v];
                    if *by {
                        row.insert(1, Cell::Str(g.clone()));
                    }
                    row.push(Cell::Bool(complete_ref(*b, period, &tz, c.range, ts_range)));
                    t.rows.push(row);
                }
            }
            t
        }
    }
}

/// All buckets from the one holding `lo` through the one holding `hi - 1`.
pub fn bucket_seq(lo: i64, hi: i64, period: &str, tz: &TimeZone) -> Vec<jiff::civil::DateTime> {
    let mut out = vec![local_bucket(lo, period, tz)];
    let last = local_bucket(hi - 1, period, tz);
    while *out.last().unwrap() < last {
        let nb = next_in(*out.last().unwrap(), period, tz);
        out.push(nb);
    }
    out
}

pub fn journey_ref(q: &Q, evs: &[Ev]) -> Table {
    let dmin = evs.iter().map(|e| e.ts).min().unwrap();
    let dmax = evs.iter().map(|e| e.ts).max().unwrap();
    let custs = by_customer(evs);
    match q {
        Q::Lifecycle { step, period, c } => {
            let tz = TimeZone::get(c.tz).unwrap();
            let (lo, hi) = c.range.unwrap_or((dmin, dmax + 1));
            let all = bucket_seq(dmin.min(lo), (dmax + 1).max(hi), period, &tz);
            let pos = |b: &jiff::civil::DateTime| all.iter().position(|x| x == b).unwrap();
            let rep = pos(&local_bucket(lo, period, &tz))..=pos(&local_bucket(hi - 1, period, &tz));
            let mut t = Table::new(&[
                "bucket",
                "new",
                "returning",
                "resurrecting",
                "dormant",
                "complete",
            ]);
            let actives: Vec<BTreeSet<usize>> = custs
                .values()
                .map(|ev| {
                    ev.iter()
                        .filter(|e| c.pass(e) && step.matches(e))
                        .map(|e| pos(&local_bucket(e.ts, period, &tz)))
                        .collect()
                })
                .collect();
            for b in rep {
                let mut n = [0i64; 4];
                for a in &actives {
                    let Some(&f) = a.iter().next() else { continue };
                    let prev = b > 0 && a.contains(&(b - 1));
                    if a.contains(&b) {
                        if b == f {
                            n[0] += 1;
                        } else if prev {
                            n[1] += 1;
                        } else {
                            n[2] += 1;
                        }
                    } else if prev {
                        n[3] -= 1;
                    }
                }
                t.rows.push(vec![
                    Cell::Str(label(all[b], period, &tz)),
                    Cell::Int(n[0]),
                    Cell::Int(n[1]),
                    Cell::Int(n[2]),
                    Cell::Int(n[3]),
                    Cell::Bool(complete_ref(all[b], period, &tz, c.range, Some((dmin, dmax)))),
                ]);
            }
            t
        }
        Q::Stickiness {
            step,
            period,
            min,
            cumulative,
            c,
        } => {
            let tz = TimeZone::get(c.tz).unwrap();
            let (lo, hi) = c.range.unwrap_or((dmin, dmax + 1));
            let n = bucket_seq(lo, hi, period, &tz).len();
            let mut exact = vec![0i64; n + 1];
            for ev in custs.values() {
                let mut per: BTreeMap<jiff::civil::DateTime, u32> = BTreeMap::new();
                for e in ev
                    .iter()
                    .filter(|e| e.ts >= lo && e.ts < hi && c.pass(e) && step.matches(e))
                {
                    *per.entry(local_bucket(e.ts, period, &tz)).or_default() += 1;
                }
                let d = per.values().filter(|&&k| k >= *min).count();
                if d > 0 {
                    exact[d] += 1;
                }
            }
            let mut t = Table::new(&["buckets", "customers"]);
            for d in 1..=n {
                let v = if *cumulative {
                    exact[d..].iter().sum()
                } else {
                    exact[d]
                };
                t.rows.push(vec![Cell::Int(d as i64), Cell::Int(v)]);
            }
            t
        }
        Q::Stages { period, c } => {
            let tz = TimeZone::get(c.tz).unwrap();
            let (lo, hi) = c.range.unwrap_or((dmin, dmax + 1));
            let all = bucket_seq(dmin.min(lo), (dmax + 1).max(hi), period, &tz);
            let pos = |b: &jiff::civil::DateTime| all.iter().position(|x| x == b).unwrap();
            let rep = pos(&local_bucket(lo, period, &tz))..=pos(&local_bucket(hi - 1, period, &tz));
            let mut t = Table::new(&["bucket", "stage", "active", "furthest"]);
            for b in rep {
                for stage in Stage::ALL {
                    let mut active = 0;
                    let mut furthest = 0;
                    for ev in custs.values() {
                        let staged: Vec<(usize, Stage)> = ev
                            .iter()
                            .filter_map(|e| e.stage.map(|s| (pos(&local_bucket(e.ts, period, &tz)), s)))
                            .collect();
                        if staged.iter().any(|&(eb, s)| eb == b && s == stage) {
                            active += 1;
                        }
                        if staged.iter().filter(|&&(eb, _)| eb <= b).map(|&(_, s)| s).max() == Some(stage) {
                            furthest += 1;
                        }
                    }
                    t.rows.push(vec![
                        Cell::Str(label(all[b], period, &tz)),
                        Cell::Str(stage.name().into()),
                        Cell::Int(active),
                        Cell::Int(furthest),
                    ]);
                }
            }
            t
        }
        _ => unreachable!(),
    }
}

pub fn transitions_ref(within_h: Option<i64>, range: Option<(i64, i64)>, evs: &[Ev]) -> Table {
    let code = |s: Option<Stage>| s.map_or(0u8, |s| s as u8);
    let name = |c: u8| {
        if c == 0 {
            "(none)".to_string()
        } else {
            Stage::ALL[c as usize - 1].name().to_string()
        }
    };
    let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
    let mut moves: BTreeMap<(u8, u8), Vec<i64>> = BTreeMap::new();
    let mut stayed = [0i64; 6];
    for ev in by_customer(evs).values() {
        let mut ev: Vec<&Ev> = ev.iter().filter(|e| e.ts < hi && e.stage.is_some()).collect();
        // Tied events in lifecycle order (docs/QUERY.md, "Tied events").
        ev.sort_by_key(|e| (e.ts, code(e.stage)));
        for (j, e) in ev.iter().enumerate() {
            let prev = ev[..j].iter().map(|x| code(x.stage)).max().unwrap_or(0);
            if code(e.stage) <= prev {
                continue;
            }
            // When the previous furthest stage was first reached.
            let since = ev[..j]
                .iter()
                .find(|x| code(x.stage) == prev)
                .map_or(e.ts, |x| x.ts);
            let waited = e.ts - since;
            if e.ts >= lo && (prev == 0 || within_h.is_none_or(|h| waited <= h * H)) {
                moves.entry((prev, code(e.stage))).or_default().push(waited);
            }
        }
        if let Some(m) = ev.iter().map(|x| code(x.stage)).max() {
            stayed[m as usize] += 1;
        }
    }
    let mut t = Table::new(&["from_stage", "to_stage", "customers", "median_time_s"]);
    for ((from, to), mut v) in moves {
        v.sort();
        let n = v.len();
        let med = if from == 0 {
            Cell::Null
        } else if n % 2 == 1 {
            Cell::Float(v[n / 2] as f64 / 1e6)
        } else {
            Cell::Float((v[n / 2 - 1] + v[n / 2]) as f64 / 2.0 / 1e6)
        };
        t.rows.push(vec![
            Cell::Str(name(from)),
            Cell::Str(name(to)),
            Cell::Int(n as i64),
            med,
        ]);
    }
    for s in 1..6u8 {
        t.rows.push(vec![
            Cell::Str(name(s)),
            Cell::Str("(stayed)".into()),
            Cell::Int(stayed[s as usize]),
            Cell::Null,
        ]);
    }
    t
}

pub fn timeline_ref(cust: usize, limit: Option<usize>, c: &Common, evs: &[Ev]) -> Table {
    let mut mine: Vec<&Ev> = evs
        .iter()
        .filter(|e| e.cust == format!("c{cust}") && c.in_range(e.ts) && c.pass(e))
        .collect();
    let properties = |e: &Ev| {
        let mut props = Vec::new();
        if let Some(a) = e.amt {
            props.push(format!("amt={a}"));
        }
        if let Some(ch) = &e.ch {
            props.push(format!("ch={ch}"));
        }
        props.join(", ")
    };
    // Tied events by event name, stage (lifecycle order), properties (docs/QUERY.md).
    mine.sort_by_cached_key(|e| (e.ts, e.name.clone(), e.stage.map(|s| s as u8), properties(e)));
    mine.truncate(limit.unwrap_or(usize::MAX));
    // One column per property any shown row has, by name (issue 32).
    let (has_amt, has_ch) = (
        mine.iter().any(|e| e.amt.is_some()),
        mine.iter().any(|e| e.ch.is_some()),
    );
    let mut columns = vec!["ts", "event", "stage"];
    columns.extend(has_amt.then_some("properties.amt"));
    columns.extend(has_ch.then_some("properties.ch"));
    let mut t = Table::new(&columns);
    for e in mine {
        let mut row = vec![
            Cell::Time(e.ts),
            Cell::Str(e.name.clone()),
            e.stage.map_or(Cell::Null, |s| Cell::Str(s.name().into())),
        ];
        if has_amt {
            row.push(e.amt.map_or(Cell::Null, Cell::Float));
        }
        if has_ch {
            row.push(e.ch.clone().map_or(Cell::Null, Cell::Str));
        }
        t.rows.push(row);
    }
    t
}

pub fn same(a: &Table, b: &Table) -> Result<(), String> {
    if a.columns != b.columns || a.rows.len() != b.rows.len() {
        return Err(format!(
            "shape differs:\nengine:\n{}\nreference:\n{}",
            a.to_text(),
            b.to_text()
        ));
    }
    for (ra, rb) in a.rows.iter().zip(&b.rows) {
        for (x, y) in ra.iter().zip(rb) {
            let ok = match (x, y) {
                (Cell::Float(p), Cell::Float(q)) | (Cell::Rate(p), Cell::Rate(q)) => {
                    (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0)
                }
                _ => x == y,
            };
            if !ok {
                return Err(format!(
                    "cell {x:?} != {y:?}\nengine:\n{}\nreference:\n{}",
                    a.to_text(),
                    b.to_text()
                ));
            }
        }
    }
    Ok(())
}
