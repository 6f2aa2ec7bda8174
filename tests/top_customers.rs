//! TOP CUSTOMERS against its reference (tests/common/top.rs, straight from docs/QUERY.md) on
//! random data with tied timestamps and tied values, several segments, unflushed rows and time
//! zones; plus named cases for ranks, order, limits and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryError, QueryOptions, Sync};
use proptest::prelude::*;

mod common;
use common::reference::{Common, Ev, H, StepQ, same};
use common::top::{TopQ, top_ref};

/// 2026-03-05T00:00Z: the data's days cross the US DST change (Mar 8).
const T0: i64 = 1_772_668_800_000_000;

/// (customer, quarter-hour, name, channel, amount in quarters)
type Row = (usize, i64, &'static str, Option<&'static str>, Option<i64>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..7,
            0i64..400,
            proptest::sample::select(vec!["a", "b", "c"]),
            proptest::option::of(proptest::sample::select(vec!["x", "y"])),
            // Few distinct amounts: tied sums and means.
            proptest::option::of(prop_oneof![Just(4i64), Just(10), Just(-2), 0i64..50]),
        ),
        0..40,
    )
}

fn query() -> impl Strategy<Value = TopQ> {
    (
        proptest::sample::select(vec![
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "first_seen",
            "last_seen",
            "days_active",
        ]),
        proptest::option::of(prop_oneof![
            proptest::sample::select(vec!["a", "b", "c"]).prop_map(|n| StepQ::Names(vec![n])),
            Just(StepQ::Names(vec!["a", "b"])),
            Just(StepQ::Any),
        ]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(1usize..9),
        (
            proptest::option::of((0i64..300, 1i64..400)),
            proptest::option::of(Just("x")),
            proptest::sample::select(vec!["UTC", "America/New_York", "Asia/Tokyo"]),
        ),
    )
        .prop_map(|(measure, of, ascending, limit, (range, where_ch, tz))| TopQ {
            measure,
            of,
            ascending,
            limit,
            c: Common {
                range: range.map(|(a, len)| (T0 + a * H / 4, T0 + (a + len) * H / 4)),
                where_ch,
                tz,
            },
        })
}

/// The rows committed one by one, flushed every `flush_every` (the rest stays unflushed), and
/// the same events for the reference.
fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // Property types known whatever the rows hold (this customer's event is outside every
    // range the generator draws, and carries both properties).
    let seed_ts = T0 - 30 * H;
    db.commit(&[Event::new("seed", seed_ts, "a")
        .with_prop("ch", "x")
        .with_prop("amt", 1.5)])
        .unwrap();
    let mut evs = vec![Ev {
        cust: "seed".into(),
        ts: seed_ts,
        seq: 0,
        name: "a".into(),
        stage: None,
        ch: Some("x".into()),
        amt: Some(1.5),
    }];
    for (i, &(customer, quarter, name, channel, amount)) in rows.iter().enumerate() {
        let ts = T0 + quarter * H / 4 + (quarter % 7) * 13 * H;
        let mut event = Event::new(format!("c{customer}"), ts, name);
        if let Some(channel) = channel {
            event = event.with_prop("ch", channel);
        }
        if let Some(amount) = amount {
            event = event.with_prop("amt", amount as f64 / 4.0);
        }
        db.commit(&[event]).unwrap();
        evs.push(Ev {
            cust: format!("c{customer}"),
            ts,
            seq: i + 1,
            name: name.into(),
            stage: None,
            ch: channel.map(str::to_owned),
            amt: amount.map(|a| a as f64 / 4.0),
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
    fn top_customers_equal_reference(
        rows in rows(),
        flush_every in 1usize..12,
        qs in proptest::collection::vec(query(), 1..5),
    ) {
        let (_dir, db, evs) = load(&rows, flush_every);
        let snap = db.snapshot();
        for q in &qs {
            let text = q.text();
            let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            same(&got, &top_ref(q, &evs)).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            // Each worker's candidates merge into the one-pass answer.
            let one = snap.query_with(&text, &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(&one, &got);
        }
    }
}

fn db(events: &[Event]) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(events).unwrap();
    (dir, db)
}

fn table(db: &Db, q: &str) -> Vec<(i64, String, Cell)> {
    let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(t.columns, ["rank", "customer", "value"]);
    t.rows
        .into_iter()
        .map(|row| match (&row[0], &row[1]) {
            (Cell::Int(rank), Cell::Str(customer)) => (*rank, customer.clone(), row[2].clone()),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn purchase(customer: &str, ts: i64, amount: f64) -> Event {
    Event::new(customer, ts, "purchase").with_prop("amount", amount)
}

#[test]
fn tied_values_share_a_rank_and_list_by_customer_id() {
    let (_d, db) = db(&[
        purchase("carol", T0, 30.0),
        purchase("bob", T0, 50.0),
        purchase("alice", T0 + H, 20.0),
        purchase("alice", T0 + 2 * H, 30.0),
        purchase("dave", T0, 10.0),
        Event::new("erin", T0, "visit"),
    ]);
    let rows = table(&db, "TOP CUSTOMERS BY sum(amount) OF purchase");
    let summary: Vec<(i64, &str)> = rows.iter().map(|(r, c, _)| (*r, c.as_str())).collect();
    // alice 50 and bob 50 tie for first (ids ascending); carol is third, not second.
    assert_eq!(summary, [(1, "alice"), (1, "bob"), (3, "carol"), (4, "dave")]);
    assert_eq!(rows[0].2, Cell::Float(50.0));
    let rows = table(&db, "TOP CUSTOMERS BY sum(amount) ASC LIMIT 2");
    let summary: Vec<(i64, &str)> = rows.iter().map(|(r, c, _)| (*r, c.as_str())).collect();
    assert_eq!(summary, [(1, "dave"), (2, "carol")]);
    // count: erin's visit counts without OF; LIMIT cuts inside a tie.
    let rows = table(&db, "TOP CUSTOMERS BY count LIMIT 1");
    assert_eq!(rows, [(1, "alice".to_string(), Cell::Int(2))]);
}

#[test]
fn times_and_days_are_measures_too() {
    let (_d, db) = db(&[
        Event::new("a", T0, "visit"),
        Event::new("a", T0 + 20 * H, "visit"),
        Event::new("a", T0 + 50 * H, "visit"),
        Event::new("b", T0 + 3 * H, "visit"),
    ]);
    // In UTC a's visits are at 00:00 and 20:00 on Mar 5 and 02:00 on Mar 7: 2 days; in Tokyo
    // (UTC+9) at 09:00 Mar 5, 05:00 Mar 6 and 11:00 Mar 7: 3 days.
    let rows = table(&db, "TOP CUSTOMERS BY days_active");
    assert_eq!(rows[0], (1, "a".to_string(), Cell::Int(2)));
    assert_eq!(
        table(&db, "TOP CUSTOMERS BY days_active TZ 'Asia/Tokyo'")[0].2,
        Cell::Int(3)
    );
    let rows = table(&db, "TOP CUSTOMERS BY first_seen");
    assert_eq!(rows[0], (1, "b".to_string(), Cell::Time(T0 + 3 * H)));
    let rows = table(&db, "TOP CUSTOMERS BY last_seen ASC");
    assert_eq!(rows[0], (1, "b".to_string(), Cell::Time(T0 + 3 * H)));
    let rows = table(
        &db,
        "TOP CUSTOMERS BY count FROM '2026-03-05T02:00:00Z' TO '2026-03-06'",
    );
    let names: Vec<&str> = rows.iter().map(|(_, c, _)| c.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn bad_measures_are_errors_with_hints() {
    let (_d, db) = db(&[purchase("a", T0, 1.0).with_prop("channel", "web")]);
    let err = |q: &str| match db.snapshot().query(q) {
        Err(QueryError::Parse(e)) => e.render(q),
        other => panic!("{q}: expected a parse error, got {other:?}"),
    };
    assert!(err("TOP CUSTOMERS BY revenue").contains("unknown measure `revenue`"));
    assert!(err("TOP CUSTOMERS BY last_sen").contains("did you mean last_seen?"));
    let not_a_number = err("TOP CUSTOMERS BY sum(channel)");
    assert!(
        not_a_number.contains("this measure needs a number"),
        "{not_a_number}"
    );
    assert!(err("TOP CUSTOMERS BY sum(amont)").contains("did you mean"));
    assert!(err("TOP CUSTOMERS BY count LIMIT 0").contains("LIMIT must be at least 1"));
    assert!(err("TOP CUSTOMERS BY count ASC DESC").contains("given twice"));
    assert!(err("TOP BY count").contains("CUSTOMERS"));
    // No customer has the step: no rows, not an error.
    assert!(table(&db, "TOP CUSTOMERS BY count OF refund").is_empty());
}

#[test]
fn negative_zero_ties_with_zero() {
    // −0.0 and 0.0 are the same amount: one rank, listed by customer id.
    let (_d, db) = db(&[
        purchase("zed", T0, 0.0),
        purchase("amy", T0, -0.0),
        purchase("bea", T0, 1.0),
    ]);
    let rows = table(&db, "TOP CUSTOMERS BY sum(amount) OF purchase ASC");
    let summary: Vec<(i64, &str)> = rows.iter().map(|(r, c, _)| (*r, c.as_str())).collect();
    assert_eq!(summary, [(1, "amy"), (1, "zed"), (3, "bea")]);
}
