//! CORRELATE (docs/QUERY.md) against its reference (tests/common/correlate.rs): every feature's
//! converted and dropped customers on random data with tied timestamps, several segments,
//! unflushed rows, time zones, WHERE, FIRST steps, HOLDING, exclusions and sessions; the
//! drill-down's customers; a named case for the ranking and the Benjamini–Hochberg cut; errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};

use journeydb::{Cell, Db, Event, Options, Query, Table};
use proptest::prelude::*;

mod common;
use common::correlate::{Feature, customer_features, feature_counts};
use common::queries::*;
use common::reference::*;

fn counts_of(t: &Table) -> BTreeMap<Feature, (i64, i64)> {
    let text = |c: &Cell| match c {
        Cell::Str(s) => Some(s.clone()),
        _ => None,
    };
    let int = |c: &Cell| match c {
        Cell::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };
    t.rows
        .iter()
        .map(|r| {
            let feature = (text(&r[0]).unwrap(), text(&r[1]).unwrap(), text(&r[2]));
            (feature, (int(&r[3]), int(&r[4])))
        })
        .collect()
}

fn customers_of(t: &Table) -> BTreeSet<String> {
    // No customer: one row with the total 0 and a NULL customer.
    t.rows
        .iter()
        .filter_map(|r| match &r[1] {
            Cell::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn counts_and_customers_equal_the_reference(
        d in data(),
        q in funnel_q(),
        event in proptest::sample::select(vec!["a", "b", "c", "zzz"]),
        converted in any::<bool>(),
    ) {
        let Q::Funnel { mode, .. } = &q else { unreachable!() };
        prop_assume!(*mode != "UNORDERED");
        let (_dir, db, evs) = load(&d);
        let text = format!("CORRELATE {} SIGNIFICANCE 1", q.text());
        let got = db.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(counts_of(&got), feature_counts(&q, &evs), "{}", text);
        let which = if converted { "CONVERTED" } else { "DROPPED" };
        let text = format!("CUSTOMERS CORRELATE {} EVENT '{event}' {which} LIMIT 1000", q.text());
        let got = db.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let feature = ("event".to_owned(), event.to_owned(), None);
        let want: BTreeSet<String> = (customer_features(&q, &evs).into_iter())
            .filter(|(_, (c, features))| *c == converted && features.contains(&feature))
            .map(|(customer, _)| customer)
            .collect();
        prop_assert_eq!(customers_of(&got), want, "{}", text);
    }
}

/// 40 customers visit; the 20 who read `help` in their window all buy, 2 of the 20 others do;
/// `noise` is read by half of each group. At 0.05 only `help` is reported, with Fisher's or
/// the G-test's p and the odds ratio of its table; SIGNIFICANCE 1 lists `noise` too.
#[test]
fn a_driver_is_reported_and_noise_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let h = 3_600_000_000i64;
    let mut events = Vec::new();
    for c in 0..40i64 {
        let who = format!("c{c}");
        let t0 = 1_772_668_800_000_000 + c * 24 * h;
        events.push(Event::new(&who, t0, "visit"));
        if c < 20 {
            events.push(Event::new(&who, t0 + h, "help"));
        }
        if c % 2 == 0 {
            events.push(Event::new(&who, t0 + 2 * h, "noise"));
        }
        if c < 20 || c < 22 {
            events.push(Event::new(&who, t0 + 3 * h, "purchase"));
        }
        // A read after the window does not count.
        events.push(Event::new(&who, t0 + 30 * h, "late"));
    }
    db.commit(&events).unwrap();
    let t = db.query("CORRELATE FUNNEL visit -> purchase WITHIN 1d").unwrap();
    assert_eq!(t.rows.len(), 1, "{t:?}");
    let row = &t.rows[0];
    assert_eq!(
        row[..5],
        [
            Cell::Str("event".into()),
            Cell::Str("help".into()),
            Cell::Null,
            Cell::Int(20),
            Cell::Int(0),
        ]
    );
    // Converted 22 (20 with help), dropped 18 (none with help): a zero cell, so 0.5 is added.
    let odds = (20.5 * 18.5) / (2.5 * 0.5);
    assert_eq!(row[5], Cell::Float(odds));
    assert_eq!(row[7], Cell::Str("success".into()));
    let Cell::Float(p) = row[6] else { panic!() };
    assert!(p < 1e-7, "{p}");
    let all = db
        .query("CORRELATE FUNNEL visit -> purchase WITHIN 1d SIGNIFICANCE 1")
        .unwrap();
    let names: Vec<&Cell> = all.rows.iter().map(|r| &r[1]).collect();
    assert_eq!(names, [&Cell::Str("help".into()), &Cell::Str("noise".into())]);
    let drill = db
        .query("CUSTOMERS CORRELATE FUNNEL visit -> purchase WITHIN 1d EVENT help DROPPED")
        .unwrap();
    assert!(customers_of(&drill).is_empty(), "{drill:?}");
}

#[test]
fn errors_name_the_clause() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[Event::new("u", 0, "visit").with_prop("ch", "x")])
        .unwrap();
    for (q, says) in [
        (
            "CORRELATE FUNNEL visit -> purchase WITHIN 1d BY ch",
            "leave out BY",
        ),
        (
            "CORRELATE FUNNEL visit -> purchase WITHIN 1d PERIOD week",
            "takes no PERIOD",
        ),
        (
            "CORRELATE FUNNEL visit -> purchase WITHIN 1d MODE UNORDERED",
            "ordered or strict",
        ),
        (
            "CORRELATE FUNNEL visit -> purchase WITHIN 1d SIGNIFICANCE 2",
            "at most 1",
        ),
        ("CORRELATE visit -> purchase WITHIN 1d", "FUNNEL"),
        (
            "CUSTOMERS CORRELATE FUNNEL visit -> purchase WITHIN 1d EVENT visit",
            "CONVERTED or DROPPED",
        ),
    ] {
        let err = db.query(q).unwrap_err().to_string();
        assert!(err.contains(says), "{q}: {err}");
    }
}
