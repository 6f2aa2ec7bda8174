//! HEATMAP against its reference (tests/common/heatmap.rs, straight from docs/QUERY.md) on
//! random data across DST changes (New York's whole hour, Lord Howe's half hour, St. John's
//! whole hour at half past a UTC hour) and a fixed half-hour zone, several segments and
//! unflushed rows; named cases for a change inside a UTC hour and the range's ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::internals::model::{TS_MAX, TS_MIN};
use journeydb::{Cell, Db, Event, Options, Query, QueryOptions, Sync};
use proptest::prelude::*;

mod common;
use common::heatmap::{HeatmapQ, heatmap_ref};
use common::reference::{Common, Ev, StepQ, same};

/// 2026-03-01T00:00Z; the data runs 45 days: New York's change (Mar 8) and Lord Howe's (Apr 5).
const T0: i64 = 1_772_323_200_000_000;
const MINUTE: i64 = 60_000_000;
const DAYS: i64 = 45;

/// (customer, minute, name, channel)
type Row = (usize, i64, &'static str, Option<&'static str>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..6,
            prop_oneof![
                0i64..DAYS * 1440,
                // Around the changes: Mar 8 05:00-08:00 UTC, Apr 4 14:00-16:00 UTC.
                (7 * 1440 + 300i64)..(7 * 1440 + 480),
                (34 * 1440 + 840i64)..(34 * 1440 + 960),
            ],
            proptest::sample::select(vec!["a", "b", "c"]),
            proptest::option::of(proptest::sample::select(vec!["x", "y"])),
        ),
        0..60,
    )
}

fn query() -> impl Strategy<Value = HeatmapQ> {
    (
        proptest::option::of(prop_oneof![
            proptest::sample::select(vec!["a", "b"]).prop_map(|n| StepQ::Names(vec![n])),
            Just(StepQ::Any),
        ]),
        proptest::option::of((0i64..DAYS * 24, 1i64..DAYS * 24)),
        proptest::option::of(Just("x")),
        proptest::sample::select(vec![
            "UTC",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "America/St_Johns",
        ]),
    )
        .prop_map(|(of, range, where_ch, tz)| HeatmapQ {
            of,
            c: Common {
                range: range.map(|(a, len)| (T0 + a * 60 * MINUTE, T0 + (a + len) * 60 * MINUTE)),
                where_ch,
                tz,
            },
        })
}

fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let seed_ts = T0 - 40 * DAYS * 1440 * MINUTE;
    db.commit(&[Event::new("seed", seed_ts, "c").with_prop("ch", "y")])
        .unwrap();
    let mut evs = vec![Ev {
        cust: "seed".into(),
        ts: seed_ts,
        seq: 0,
        name: "c".into(),
        stage: None,
        ch: Some("y".into()),
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
    fn heatmaps_equal_reference(
        rows in rows(),
        flush_every in 1usize..15,
        qs in proptest::collection::vec(query(), 1..4),
    ) {
        let (_dir, db, evs) = load(&rows, flush_every);
        let snap = db.snapshot();
        for q in &qs {
            let text = q.text();
            let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            same(&got, &heatmap_ref(q, &evs)).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            let one = snap.query_with(&text, &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(&one, &got);
            // Two workers read the blocks by rows; their customers' cells are merged.
            let two = snap.query_with(&text, &QueryOptions { threads: 2, ..Default::default() }).unwrap();
            prop_assert_eq!(&two, &got);
        }
    }
}

/// St. John's (Newfoundland, −3:30) starts daylight time on 2026-03-08 at 02:00 local, 05:30
/// UTC, to −2:30: inside the UTC hour 05:00-06:00. An event at 05:15 UTC is 01:45 local, one at
/// 05:45 UTC is 03:15 (one hour's offset for the whole UTC hour would say 02:15). `FROM`
/// includes an event at its instant, `TO` excludes one at its.
#[test]
fn a_change_inside_a_utc_hour_and_the_range_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let mar8_05h = T0 + (7 * 1440 + 5 * 60) * MINUTE;
    db.commit(&[
        Event::new("u1", mar8_05h + 15 * MINUTE, "visit"),
        Event::new("u1", mar8_05h + 45 * MINUTE, "visit"),
        Event::new("u2", mar8_05h + 45 * MINUTE, "visit"),
    ])
    .unwrap();
    let nonzero = |text: &str| -> Vec<Vec<Cell>> {
        let t = db.query(text).unwrap();
        assert_eq!(t.rows.len(), 168);
        t.rows.into_iter().filter(|r| r[2] != Cell::Int(0)).collect()
    };
    // Sunday (7): hour 1 has u1's first event, hour 3 the two others.
    assert_eq!(
        nonzero("HEATMAP OF visit TZ 'America/St_Johns'"),
        vec![
            vec![Cell::Int(7), Cell::Int(1), Cell::Int(1), Cell::Int(1)],
            vec![Cell::Int(7), Cell::Int(3), Cell::Int(2), Cell::Int(2)],
        ]
    );
    // UTC: Sunday 05:00, all three.
    assert_eq!(
        nonzero("HEATMAP"),
        vec![vec![Cell::Int(7), Cell::Int(5), Cell::Int(3), Cell::Int(2)]]
    );
    let (from, to) = ((mar8_05h + 15 * MINUTE) / 1000, (mar8_05h + 45 * MINUTE) / 1000);
    assert_eq!(
        nonzero(&format!("HEATMAP FROM {from} TO {to}")),
        vec![vec![Cell::Int(7), Cell::Int(5), Cell::Int(1), Cell::Int(1)]]
    );
}

/// One compacted segment of several 64k-row blocks: most customers' rows lie inside one block
/// (their cells are counted as their run is read), a few are cut by a block's edge (their cells
/// meet in a mask), one is forgotten (its segment is masked until compacted again). Events and
/// customers per cell equal the reference with one and two workers, in UTC and across New
/// York's and Lord Howe's changes, with and without a step and a range.
#[test]
fn one_segment_of_many_blocks_equals_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let mut evs = Vec::new();
    let mut batch = Vec::new();
    // 300 customers of 500 events each (150,000 rows, three block edges), spread over 45 days
    // with a stride that visits every hour of the week.
    for customer in 0..300 {
        for k in 0..500i64 {
            let minute = (customer * 7_919 + k * 131) % (DAYS * 1440);
            let name = ["a", "b", "c"][((customer + k) % 3) as usize];
            let ts = T0 + minute * MINUTE + k;
            batch.push(Event::new(format!("c{customer}"), ts, name));
            evs.push(Ev {
                cust: format!("c{customer}"),
                ts,
                seq: evs.len(),
                name: name.into(),
                stage: None,
                ch: None,
                amt: None,
            });
        }
    }
    // The ends of the timestamps' range: every one has a local weekday and hour in every zone.
    for (customer, ts) in [("first", TS_MIN), ("last", TS_MAX)] {
        batch.push(Event::new(customer, ts, "a"));
        evs.push(Ev {
            cust: customer.into(),
            ts,
            seq: evs.len(),
            name: "a".into(),
            stage: None,
            ch: None,
            amt: None,
        });
    }
    db.commit(&batch).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    db.query("FORGET CUSTOMER 'c150'").unwrap();
    evs.retain(|e| e.cust != "c150");
    assert_eq!(db.stats().segments, 1);
    let snap = db.snapshot();
    for tz in ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"] {
        for of in [None, Some(StepQ::Names(vec!["a"]))] {
            for range in [None, Some((T0 + 3 * 1440 * MINUTE, T0 + 30 * 1440 * MINUTE))] {
                let q = HeatmapQ {
                    of: of.clone(),
                    c: Common {
                        range,
                        where_ch: None,
                        tz,
                    },
                };
                let expected = heatmap_ref(&q, &evs);
                for threads in [1, 2] {
                    let got = snap
                        .query_with(
                            &q.text(),
                            &QueryOptions {
                                threads,
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    same(&got, &expected).unwrap_or_else(|e| panic!("{} ({threads} workers)\n{e}", q.text()));
                }
            }
        }
    }
}
