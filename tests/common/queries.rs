//! The random queries and data of the differential tests (tests/queries.rs, tests/stage_map.rs):
//! statements over events `a`, `b`, `c` of four customers with many equal timestamps, several
//! segments and unflushed rows, loaded into a database and into the reference's events.

use journeydb::{Db, Event, Options, Stage, Sync};
use proptest::prelude::*;

use super::reference::*;

/// 2026-03-05T00:00Z: the window covers the US (Mar 8) and EU (Mar 29) DST changes.
pub const T0: i64 = 1_772_668_800_000_000;

// ------------------------------------------------------------------ strategies

pub fn step_q() -> impl Strategy<Value = StepQ> {
    prop_oneof![
        4 => proptest::sample::select(vec!["a", "b", "c"]).prop_map(|n| StepQ::Names(vec![n])),
        1 => Just(StepQ::Names(vec!["a", "b"])),
        1 => Just(StepQ::Stage(Stage::Purchase)),
        1 => Just(StepQ::Any),
    ]
}

pub fn common() -> impl Strategy<Value = Common> {
    (
        proptest::option::of((0i64..300, 1i64..400)),
        proptest::option::of(Just("x")),
        proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
    )
        .prop_map(|(r, w, tz)| Common {
            range: r.map(|(a, len)| (T0 + a * H / 4, T0 + (a + len) * H / 4)),
            where_ch: w,
            tz,
        })
}

/// An EXCLUDE clause `x BETWEEN i AND j` for any `1 <= i < j <= n`, from random indices (none
/// for a one-step funnel).
pub type ExcludeDraw = Option<(StepQ, proptest::sample::Index, proptest::sample::Index)>;

pub fn between(ex: ExcludeDraw, n: usize) -> Option<(StepQ, usize, usize)> {
    ex.filter(|_| n >= 2).map(|(x, i, j)| {
        let i = 1 + i.index(n - 1);
        (x, i, i + 1 + j.index(n - i))
    })
}

pub fn funnel_q() -> impl Strategy<Value = Q> {
    (
        proptest::collection::vec(step_q(), 1..4),
        prop_oneof![Just(1i64), Just(24), Just(72)],
        proptest::sample::select(vec!["ORDERED", "STRICT", "UNORDERED"]),
        any::<bool>(),
        proptest::option::of((
            step_q(),
            any::<proptest::sample::Index>(),
            any::<proptest::sample::Index>(),
        )),
        any::<bool>(),
        (
            proptest::collection::vec(proptest::bool::weighted(0.2), 3),
            proptest::bool::weighted(0.25),
            proptest::bool::weighted(0.25),
            // WITHIN SESSION: 30 minutes (the default) keeps gaps of two quarter-hours.
            proptest::option::weighted(0.2, prop_oneof![Just(30i64), Just(60), Just(180)]),
        ),
        common(),
    )
        .prop_map(
            |(steps, w, mode, ties, ex, exclusion_chain, (first, holding, percentiles, session), c)| {
                let n = steps.len();
                let exclude = if mode != "UNORDERED" { between(ex, n) } else { None };
                Q::Funnel {
                    steps,
                    within: w * H,
                    mode,
                    ties_strict: ties,
                    exclude,
                    exclusion_chain,
                    extras: Extras {
                        first,
                        holding,
                        percentiles,
                        session: session.map(|m| m * 60_000_000),
                    },
                    c,
                }
            },
        )
}

pub fn query() -> impl Strategy<Value = Q> {
    prop_oneof![
        funnel_q(),
        (
            funnel_q(),
            proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
        )
            .prop_map(|(funnel, period)| Q::FunnelPeriod {
                funnel: Box::new(funnel),
                period
            }),
        (
            step_q(),
            step_q(),
            proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
            0usize..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            common()
        )
            .prop_map(
                |(start, ret, period, periods, recurring, on_or_after, zero_returns, c)| Q::Retention {
                    start,
                    ret,
                    period,
                    periods,
                    recurring,
                    on_or_after,
                    zero_returns,
                    c
                }
            ),
        (
            proptest::sample::select(vec![
                "count", "uniq", "sum(amt)", "min(amt)", "max(amt)", "avg(amt)", "p50(amt)", "wau"
            ]),
            proptest::option::of(step_q()),
            proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
            any::<bool>(),
            common()
        )
            .prop_map(|(agg, of, period, by, c)| Q::Trend {
                agg,
                of,
                period: if agg == "wau" { "day" } else { period },
                by,
                c
            }),
        (0usize..4, proptest::option::of(1usize..6), common()).prop_map(|(cust, limit, c)| Q::Timeline {
            cust,
            limit,
            c
        }),
        (
            step_q(),
            proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
            common()
        )
            .prop_map(|(step, period, c)| Q::Lifecycle { step, period, c }),
        (
            step_q(),
            proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
            1u32..3,
            any::<bool>(),
            common()
        )
            .prop_map(|(step, period, min, cumulative, c)| Q::Stickiness {
                step,
                period,
                min,
                cumulative,
                c
            }),
        (
            proptest::sample::select(vec!["day", "week", "week_sunday", "month"]),
            common()
        )
            .prop_map(|(period, c)| {
                Q::Stages {
                    period,
                    c: Common { where_ch: None, ..c },
                }
            }),
        (proptest::option::of(1i64..30), common()).prop_map(|(within_h, c)| Q::Transitions {
            within_h,
            range: c.range
        }),
    ]
}

/// (customer, quarter-hour, name, stage, channel, amount in quarters)
pub type RawEvent = (
    usize,
    i64,
    &'static str,
    Option<Stage>,
    Option<&'static str>,
    Option<i64>,
);

#[derive(Clone, Debug)]
pub struct Data {
    pub events: Vec<RawEvent>,
    pub flush_every: usize,
    /// Commit the events in time order (as real logs arrive: each flushed segment then holds
    /// later events than the one before, a customer's rows lie in several of them in order,
    /// with ties at the boundaries) instead of in the order generated.
    pub time_ordered: bool,
}

pub fn data() -> impl Strategy<Value = Data> {
    (
        proptest::collection::vec(
            (
                0usize..4,
                0i64..400,
                proptest::sample::select(vec!["a", "b", "c"]),
                proptest::option::of(proptest::sample::select(vec![
                    Stage::Awareness,
                    Stage::Purchase,
                    Stage::Advocacy,
                ])),
                proptest::option::of(proptest::sample::select(vec!["x", "y"])),
                proptest::option::of(0i64..1000),
            ),
            0..28,
        ),
        1usize..12,
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(events, flush_every, time_ordered)| Data {
            events,
            flush_every,
            time_ordered,
        })
}

pub fn load(d: &Data) -> (tempfile::TempDir, Db, Vec<Ev>) {
    load_with(d, |_, _| {})
}

/// [`load`], calling `before(i, db)` before random event `i` is committed (and once more with
/// `i` = the number of events, after the last).
pub fn load_with(d: &Data, mut before: impl FnMut(usize, &Db)) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // Make the property types known even when no event carries them.
    // Make the names and property types known even when no random event carries them.
    let mut evs = Vec::new();
    for (k, name) in ["a", "b", "c"].into_iter().enumerate() {
        let ts = T0 - 30 * H + k as i64 * H;
        db.commit(&[Event::new("seed", ts, name)
            .with_prop("ch", "x")
            .with_prop("amt", 1.5)])
            .unwrap();
        evs.push(Ev {
            cust: "seed".into(),
            ts,
            seq: k,
            name: name.into(),
            stage: None,
            ch: Some("x".into()),
            amt: Some(1.5),
        });
    }
    // Quarter-hour steps over ~4 days, with many equal timestamps; every fifth event a few
    // milliseconds off the grid (off hour and day boundaries).
    let stamp = |i: usize, q: i64| {
        T0 + q * H / 4 + (q % 7) * 13 * H + if i % 5 == 4 { (q % 3 + 1) * 1000 } else { 0 }
    };
    let mut order: Vec<(usize, i64)> = d
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (i, stamp(i, e.1)))
        .collect();
    if d.time_ordered {
        order.sort_by_key(|&(_, ts)| ts);
    }
    for (i, &(generated, ts)) in order.iter().enumerate() {
        let (c, _, name, stage, ch, amt) = d.events[generated];
        before(i, &db);
        let mut e = Event::new(format!("c{c}"), ts, name);
        e.stage = stage;
        if let Some(ch) = ch {
            e = e.with_prop("ch", ch);
        }
        if let Some(a) = amt {
            e = e.with_prop("amt", a as f64 / 4.0);
        }
        db.commit(&[e]).unwrap();
        evs.push(Ev {
            cust: format!("c{c}"),
            ts,
            seq: i + 3,
            name: name.into(),
            stage,
            ch: ch.map(str::to_owned),
            amt: amt.map(|a| a as f64 / 4.0),
        });
        if (i + 1) % d.flush_every == 0 {
            db.flush().unwrap();
        }
    }
    before(d.events.len(), &db);
    (dir, db, evs)
}
