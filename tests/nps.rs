//! `TREND nps(p)` against its reference (tests/common/nps.rs) on random data (several segments,
//! unflushed rows, time zones, breakdowns), the refusal of a score that is no integer 0-10, and
//! a named case whose interval is worked out by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryOptions, Sync};
use proptest::prelude::*;

mod common;
use common::nps::{NpsQ, nps_ref};
use common::reference::{Common, Ev, H, StepQ, same};

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;

/// (customer, quarter-hour, name, channel, score)
type Row = (usize, i64, &'static str, Option<&'static str>, Option<f64>);

fn rows(bad: bool) -> impl Strategy<Value = Vec<Row>> {
    let score = if bad {
        prop_oneof![8 => (0i64..=10).prop_map(|s| s as f64), 1 => Just(11.0), 1 => Just(7.5), 1 => Just(-1.0)]
            .boxed()
    } else {
        (0i64..=10).prop_map(|s| s as f64).boxed()
    };
    proptest::collection::vec(
        (
            0usize..8,
            0i64..600,
            proptest::sample::select(vec!["survey", "visit"]),
            proptest::option::of(proptest::sample::select(vec!["x", "y"])),
            proptest::option::weighted(0.8, score),
        ),
        0..50,
    )
}

fn query() -> impl Strategy<Value = NpsQ> {
    (
        proptest::option::of(Just(StepQ::Names(vec!["survey"]))),
        proptest::sample::select(vec!["day", "week", "hour"]),
        any::<bool>(),
        proptest::option::of((0i64..300, 1i64..400)),
        proptest::option::of(Just("x")),
        proptest::sample::select(vec!["UTC", "America/New_York"]),
    )
        .prop_map(|(of, period, by, range, where_ch, tz)| NpsQ {
            of,
            period,
            by,
            c: Common {
                range: range.map(|(a, len)| (T0 + a * H / 4, T0 + (a + len) * H / 4)),
                where_ch,
                tz,
            },
        })
}

fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // `ch` and `amt` (a float, so 7.5 can be stored) exist whatever the rows hold.
    let seed_ts = T0 - 30 * H;
    db.commit(&[Event::new("seed", seed_ts, "other")
        .with_prop("ch", "y")
        .with_prop("amt", 5.0)])
        .unwrap();
    let mut evs = vec![Ev {
        cust: "seed".into(),
        ts: seed_ts,
        seq: 0,
        name: "other".into(),
        stage: None,
        ch: Some("y".into()),
        amt: Some(5.0),
    }];
    for (i, &(customer, quarter, name, channel, score)) in rows.iter().enumerate() {
        let ts = T0 + quarter * H / 4;
        let mut event = Event::new(format!("c{customer}"), ts, name);
        if let Some(channel) = channel {
            event = event.with_prop("ch", channel);
        }
        if let Some(score) = score {
            event = event.with_prop("amt", score);
        }
        db.commit(&[event]).unwrap();
        evs.push(Ev {
            cust: format!("c{customer}"),
            ts,
            seq: i + 1,
            name: name.into(),
            stage: None,
            ch: channel.map(str::to_owned),
            amt: score,
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
    fn nps_equals_reference(
        rows in rows(false),
        flush_every in 1usize..12,
        qs in proptest::collection::vec(query(), 1..4),
    ) {
        let (_dir, db, evs) = load(&rows, flush_every);
        let snap = db.snapshot();
        for q in &qs {
            let text = q.text();
            let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let want = nps_ref(q, &evs).map_err(|v| TestCaseError::fail(format!("{text}: bad score {v}")))?;
            same(&got, &want).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            let one = snap.query_with(&text, &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(&one, &got);
        }
    }

    /// A score that is no integer 0-10 among the counted events is refused, naming the earliest
    /// (when it is the only one at its time); one outside the counted events is no concern.
    #[test]
    fn bad_scores_are_refused(rows in rows(true), flush_every in 1usize..12, q in query()) {
        let (_dir, db, evs) = load(&rows, flush_every);
        let text = q.text();
        match (db.query(&text), nps_ref(&q, &evs)) {
            (Ok(got), Ok(want)) => same(&got, &want).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?,
            (Err(e), Err(v)) => {
                let message = e.to_string();
                prop_assert!(message.contains("a score is an integer from 0 to 10"), "{}", message);
                let at_once = evs.iter().filter(|e| e.amt == Some(v)).count() == 1;
                prop_assert!(!at_once || message.contains(&format!("amt = {v}")), "{} (want {})", message, v);
            }
            (got, want) => prop_assert!(false, "{}: engine {:?}, reference {:?}", text, got.map(|t| t.rows.len()), want.map(|t| t.rows.len())),
        }
    }
}

/// Four answers in one day: two promoters (10, 9), a passive (7), a detractor (3), and an event
/// without a score. NPS = 100·(2/4 − 1/4) = 25; σ² = 100²·(0.5 + 0.25 − 0.25²) = 6875, so the
/// interval is 25 ± 1.96·√6875/2 = 25 ± 81.26: [−56.26, 100] after the cut at 100.
#[test]
fn a_worked_example() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let score = |c: &str, minute: i64, s: Option<i64>| {
        let e = Event::new(c, T0 + minute * 60_000_000, "survey");
        match s {
            Some(s) => e.with_prop("score", s),
            None => e,
        }
    };
    db.commit(&[
        score("a", 1, Some(10)),
        score("b", 2, Some(9)),
        score("c", 3, Some(7)),
        score("d", 4, Some(3)),
        score("e", 5, None),
    ])
    .unwrap();
    let t = db.query("TREND nps(score) OF survey PERIOD day").unwrap();
    assert_eq!(
        t.columns,
        [
            "bucket",
            "value",
            "promoters",
            "passives",
            "detractors",
            "responses",
            "ci_low",
            "ci_high",
            "complete"
        ]
    );
    let row = &t.rows[0];
    // One day of data: it starts the earliest event's day, but its latest event (T0 + 5 s) is
    // before the day's end, so the day is not complete.
    assert_eq!(row[8], Cell::Bool(false));
    assert_eq!(row[1], Cell::Float(25.0));
    assert_eq!(
        &row[2..6],
        &[Cell::Int(2), Cell::Int(1), Cell::Int(1), Cell::Int(4)]
    );
    let Cell::Float(low) = row[6] else {
        panic!("{row:?}")
    };
    assert!((low - (25.0 - 1.96 * 6875f64.sqrt() / 2.0)).abs() < 1e-9, "{low}");
    assert_eq!(row[7], Cell::Float(100.0));
    // A score property of the wrong type is refused with a caret.
    db.commit(&[Event::new("f", T0, "survey").with_prop("comment", "great")])
        .unwrap();
    let e = db
        .query("TREND nps(comment) OF survey PERIOD day")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a number"), "{e}");
}
