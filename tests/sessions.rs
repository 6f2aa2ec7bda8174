//! TREND's session aggregates (`sessions`, `bounce_rate`, `avg(session_length)`,
//! `pNN(session_length)`) against their reference (tests/common/sessions.rs) on random data
//! whose gaps straddle the session gap (several segments, unflushed rows, time zones,
//! breakdowns); named cases for the gap's edge, a session across midnight, and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryOptions, Sync};
use proptest::prelude::*;

mod common;
use common::reference::{Common, Ev, H, StepQ, same};
use common::sessions::{SessionQ, sessions_ref};

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;
const MINUTE: i64 = 60_000_000;

/// (customer, minute, name, channel)
type Row = (usize, i64, &'static str, Option<&'static str>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..5,
            // Five-minute steps over 4 days: gaps of 30 minutes (the default gap) are common.
            (0i64..1152).prop_map(|k| k * 5),
            proptest::sample::select(vec!["visit", "view", "buy"]),
            proptest::option::of(proptest::sample::select(vec!["web", "app"])),
        ),
        0..60,
    )
}

fn query() -> impl Strategy<Value = SessionQ> {
    (
        proptest::sample::select(vec![
            "sessions",
            "bounce_rate",
            "avg(session_length)",
            "p50(session_length)",
            "p90(session_length)",
        ]),
        proptest::option::of(prop_oneof![
            Just(StepQ::Names(vec!["visit", "view"])),
            Just(StepQ::Any),
        ]),
        proptest::sample::select(vec!["day", "hour", "week"]),
        proptest::option::of(prop_oneof![Just(5i64), Just(30), Just(45), Just(120)]),
        any::<bool>(),
        (
            proptest::option::of((0i64..60, 1i64..60)),
            proptest::option::of(Just("web")),
            proptest::sample::select(vec!["UTC", "America/New_York"]),
        ),
    )
        .prop_map(|(agg, of, period, gap_m, by, (range, where_ch, tz))| SessionQ {
            agg,
            of,
            period,
            gap_m,
            by,
            c: Common {
                range: range.map(|(a, len)| (T0 + a * 2 * H, T0 + (a + len) * 2 * H)),
                where_ch,
                tz,
            },
        })
}

fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let seed_ts = T0 - 30 * H;
    db.commit(&[Event::new("seed", seed_ts, "other").with_prop("ch", "app")])
        .unwrap();
    let mut evs = vec![Ev {
        cust: "seed".into(),
        ts: seed_ts,
        seq: 0,
        name: "other".into(),
        stage: None,
        ch: Some("app".into()),
        amt: None,
    }];
    for (i, &(customer, minute, name, channel)) in rows.iter().enumerate() {
        let ts = T0 + minute * MINUTE;
        let mut event = Event::new(format!("c{customer}"), ts, name);
        if let Some(channel) = channel {
            event = event.with_prop("ch", channel);
        }
        db.commit(&[event]).unwrap();
        evs.push(Ev {
            cust: format!("c{customer}"),
            ts,
            seq: i + 1,
            name: name.into(),
            stage: None,
            ch: channel.map(str::to_owned),
            amt: None,
        });
        if (i + 1) % flush_every == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db, evs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)))]

    #[test]
    fn sessions_equal_reference(
        rows in rows(),
        flush_every in 1usize..15,
        in_time_order in any::<bool>(),
        qs in proptest::collection::vec(query(), 1..4),
    ) {
        // Rows arriving in time order leave each customer's rows in the segments in merge
        // order, which the scan reads where they lie instead of copying them together.
        let mut rows = rows;
        if in_time_order {
            rows.sort_by_key(|row| row.1);
        }
        let (_dir, db, evs) = load(&rows, flush_every);
        let snap = db.snapshot();
        for q in &qs {
            let text = q.text();
            let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            same(&got, &sessions_ref(q, &evs)).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            let one = snap.query_with(&text, &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(&one, &got);
        }
    }
}

/// A gap of exactly 30 minutes keeps the session open, 30 minutes and a microsecond closes it;
/// a session across midnight counts on the day it began, with its whole length.
#[test]
fn the_gap_edge_and_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let evening = T0 + 23 * H + 40 * MINUTE;
    db.commit(&[
        Event::new("a", evening, "visit"),
        Event::new("a", evening + 30 * MINUTE, "visit"),
        Event::new("a", evening + 60 * MINUTE + 1, "visit"),
        Event::new("b", T0 + 10 * H, "visit"),
    ])
    .unwrap();
    let t = db.query("TREND sessions PERIOD day").unwrap();
    assert_eq!(
        t.rows[0],
        vec![Cell::Str("2026-03-05".into()), Cell::Int(2), Cell::Bool(true)]
    );
    // The last day ends after the latest event: not complete.
    assert_eq!(
        t.rows[1],
        vec![Cell::Str("2026-03-06".into()), Cell::Int(1), Cell::Bool(false)]
    );
    let t = db.query("TREND avg(session_length) PERIOD day").unwrap();
    // Day 1: a's 30-minute session and b's single event (0 s): 900 s on average.
    assert_eq!(t.rows[0][1], Cell::Float(900.0));
    let t = db.query("TREND bounce_rate PERIOD day").unwrap();
    assert_eq!(t.rows[0][1], Cell::Float(0.5));
    assert_eq!(t.rows[1][1], Cell::Float(1.0));
    // A longer gap joins all of a's events.
    let t = db.query("TREND sessions PERIOD day SESSION 31m").unwrap();
    assert_eq!(t.rows[1][1], Cell::Int(0));
    for (text, want) in [
        ("TREND count PERIOD day SESSION 30m", "SESSION sets the gap"),
        ("TREND sessions PERIOD day SESSION 0m", "positive duration"),
        (
            "TREND sessions PERIOD day SESSION 30m SESSION 20m",
            "SESSION given twice",
        ),
        ("TREND sesions PERIOD day", "did you mean sessions?"),
    ] {
        let e = db.query(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
