//! RFM (issue 27 §2) against a brute-force reference: every customer's recency, frequency and
//! monetary value recomputed from the events, scores by counting the customers strictly worse,
//! segments by the textbook map written as (R, F) patterns; on random data with tied
//! timestamps and values, several segments and unflushed rows, ranges and predicates. Named
//! cases pin the score and segment boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, Sync, Table};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;
const DAY: i64 = 86_400_000_000;

/// The segments as the usual regular-expression map over "RF" (first match wins), in the
/// order the statement lists them.
const SEGMENTS: [(&str, &[&str]); 10] = [
    ("champions", &["5[4-5]"]),
    ("loyal_customers", &["[3-4][4-5]"]),
    ("potential_loyalists", &["[4-5][2-3]"]),
    ("new_customers", &["51"]),
    ("promising", &["41"]),
    ("need_attention", &["33"]),
    ("about_to_sleep", &["3[1-2]"]),
    ("cant_lose", &["[1-2]5"]),
    ("at_risk", &["[1-2][3-4]"]),
    ("hibernating", &["[1-2][1-2]"]),
];

/// Whether "RF" matches a two-character pattern of digits and `[a-b]` classes.
fn matches(rf: &str, pattern: &str) -> bool {
    let mut chars = pattern.chars();
    for digit in rf.chars() {
        let ok = match chars.next() {
            Some('[') => {
                let lo = chars.next().unwrap();
                chars.next();
                let hi = chars.next().unwrap();
                chars.next();
                lo <= digit && digit <= hi
            }
            Some(c) => c == digit,
            None => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn segment(r: u8, f: u8) -> &'static str {
    let rf = format!("{r}{f}");
    SEGMENTS
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|p| matches(&rf, p)))
        .map(|(name, _)| *name)
        .expect("every pair has a segment")
}

/// An event: (customer, minute, name, amount, channel is x).
type Row = (u8, i64, &'static str, Option<i64>, bool);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0u8..12,
            0i64..(6 * 24 * 60),
            proptest::sample::select(vec!["a", "b", "c"]),
            proptest::option::weighted(0.8, 0i64..5),
            any::<bool>(),
        ),
        0..70,
    )
}

fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // Every name and property known (an unknown property is an error), at the data's start.
    db.commit(&[Event::new("z", T0, "c")
        .with_prop("amt", 0.5)
        .with_prop("ch", "y")])
        .unwrap();
    for (i, &(c, minute, name, amt, x)) in rows.iter().enumerate() {
        let mut e = Event::new(format!("c{c}"), T0 + minute * 60_000_000, name)
            .with_prop("ch", if x { "x" } else { "y" });
        if let Some(amt) = amt {
            // Quarter units: sums are exact in binary floating point.
            e = e.with_prop("amt", amt as f64 * 0.25);
        }
        db.commit(&[e]).unwrap();
        if (i + 1) % flush_every == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

/// A customer's (R, F, M) scores and its (last, frequency, monetary) measures.
type Scored<'a> = (u8, u8, u8, &'a (i64, u64, f64));

/// The reference table of `RFM OF <names> VALUE amt [FROM lo TO hi] [WHERE ch = 'x']`.
fn reference(rows: &[Row], names: &[&str], range: Option<(i64, i64)>, only_x: bool) -> Vec<Vec<Cell>> {
    // All events, the setup event included.
    let mut events: Vec<(String, i64, &str, Option<f64>, bool)> =
        vec![("z".into(), T0, "c", Some(0.5), false)];
    events.extend(rows.iter().map(|&(c, m, n, a, x)| {
        (
            format!("c{c}"),
            T0 + m * 60_000_000,
            n,
            a.map(|a| a as f64 * 0.25),
            x,
        )
    }));
    let latest = events.iter().map(|e| e.1).max().unwrap();
    let now = range.map_or(latest, |r| r.1);
    // customer → (last, frequency, values)
    let mut per: BTreeMap<&str, (i64, u64, Vec<f64>)> = BTreeMap::new();
    for (c, ts, name, amt, x) in &events {
        let in_range = range.is_none_or(|(lo, hi)| lo <= *ts && *ts < hi);
        if !names.contains(name) || !in_range || (only_x && !x) {
            continue;
        }
        let e = per.entry(c.as_str()).or_insert((i64::MIN, 0, Vec::new()));
        e.0 = e.0.max(*ts);
        e.1 += 1;
        e.2.extend(amt);
    }
    let measures: Vec<(i64, u64, f64)> = per
        .values()
        .map(|(last, f, values)| {
            let mut v = values.clone();
            v.sort_by(f64::total_cmp);
            (*last, *f, v.iter().sum())
        })
        .collect();
    let n = measures.len() as u64;
    let score = |below: usize| 1 + (5 * below as u64 / n.max(1)) as u8;
    let scored: Vec<Scored<'_>> = measures
        .iter()
        .map(|m| {
            let r = score(measures.iter().filter(|o| o.0 < m.0).count());
            let f = score(measures.iter().filter(|o| o.1 < m.1).count());
            let mm = score(measures.iter().filter(|o| o.2 < m.2).count());
            (r, f, mm, m)
        })
        .collect();
    SEGMENTS
        .iter()
        .map(|(name, _)| {
            let members: Vec<_> = scored.iter().filter(|s| segment(s.0, s.1) == *name).collect();
            let k = members.len() as f64;
            let mean = |f: &dyn Fn(&Scored<'_>) -> f64| {
                if members.is_empty() {
                    Cell::Null
                } else {
                    Cell::Float(members.iter().map(|s| f(s)).sum::<f64>() / k)
                }
            };
            vec![
                Cell::Str((*name).into()),
                Cell::Int(members.len() as i64),
                if n == 0 {
                    Cell::Null
                } else {
                    Cell::Rate(k / n as f64)
                },
                mean(&|s| (now - s.3.0) as f64 / DAY as f64),
                mean(&|s| s.3.1 as f64),
                mean(&|s| s.3.2),
                mean(&|s| f64::from(s.0)),
                mean(&|s| f64::from(s.1)),
                mean(&|s| f64::from(s.2)),
            ]
        })
        .collect()
}

/// Equal, floats within a relative 1e-9 (means are summed in another customer order).
fn same(got: &Table, want: &[Vec<Cell>]) -> bool {
    got.rows.len() == want.len()
        && got.rows.iter().zip(want).all(|(a, b)| {
            a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Cell::Float(x), Cell::Float(y)) | (Cell::Rate(x), Cell::Rate(y)) => {
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                }
                _ => x == y,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    /// Every RFM form equals the reference; the segment drill-down lists the segment's
    /// customers (its count is the summary's).
    #[test]
    fn rfm_equals_reference(
        rows in rows(),
        flush_every in 1usize..20,
        which in 0usize..3,
        range in proptest::option::of((0i64..4, 1i64..4)),
        only_x in any::<bool>(),
    ) {
        let (_dir, db) = load(&rows, flush_every);
        let names: &[&str] = [&["a"][..], &["a", "b"], &["c"]][which];
        let step = names.join(" OR ");
        let range_us = range.map(|(from, days)| (T0 + from * DAY, T0 + (from + days) * DAY));
        let mut text = format!("RFM OF {step} VALUE amt");
        if let Some((from, days)) = range {
            text += &format!(" FROM '2026-03-0{}' TO '2026-03-{:02}'", 5 + from, 5 + from + days);
        }
        if only_x {
            text += " WHERE ch = 'x'";
        }
        let got = db.query(&text).unwrap();
        let want = reference(&rows, names, range_us, only_x);
        prop_assert!(same(&got, &want), "{}\ngot  {:?}\nwant {:?}", text, got.rows, want);
        for row in &got.rows {
            let Cell::Str(name) = &row[0] else { unreachable!() };
            let listed = db.query(&format!("CUSTOMERS {text} SEGMENT {name} LIMIT 100")).unwrap();
            let customers = listed.rows.iter().filter(|r| matches!(r[1], Cell::Str(_))).count() as i64;
            prop_assert_eq!(&Cell::Int(customers), &row[1], "{} SEGMENT {}", text, name);
        }
    }
}

#[test]
fn every_score_pair_has_the_textbook_segment() {
    // Each pair of the 5 × 5 grid, as the usual map assigns it.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    // Five customers with distinct recency and frequency: customer k has k + 1 purchases, the
    // last k days before the end — so recency and frequency rank in opposite orders.
    let mut events = Vec::new();
    for k in 0..5i64 {
        for j in 0..=k {
            events.push(Event::new(format!("k{k}"), T0 - (k + j) * DAY, "buy").with_prop("amt", 1.0));
        }
    }
    events.push(Event::new("end", T0 + DAY, "other"));
    db.commit(&events).unwrap();
    let t = db.query("RFM OF buy VALUE amt").unwrap();
    // k0: R 5, F 1 → new_customers; k1: R 4, F 2 → potential_loyalists; k2: R 3, F 3 →
    // need_attention; k3: R 2, F 4 → at_risk; k4: R 1, F 5 → cant_lose.
    let counts: BTreeMap<String, i64> = t
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (Cell::Str(s), Cell::Int(n)) => (s.clone(), *n),
            _ => unreachable!(),
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let want: BTreeMap<String, i64> = [
        "new_customers",
        "potential_loyalists",
        "need_attention",
        "at_risk",
        "cant_lose",
    ]
    .into_iter()
    .map(|s| (s.to_owned(), 1))
    .collect();
    assert_eq!(counts, want);
    // Recency is measured from the latest event of the database (the `end` event, a day after
    // k0's last purchase), or from TO.
    let new = t
        .rows
        .iter()
        .find(|r| r[0] == Cell::Str("new_customers".into()))
        .unwrap();
    assert_eq!(new[3], Cell::Float(1.0));
    let t = db
        .query("RFM OF buy VALUE amt FROM '2026-01-01' TO '2026-03-08'")
        .unwrap();
    let new = t
        .rows
        .iter()
        .find(|r| r[0] == Cell::Str("new_customers".into()))
        .unwrap();
    assert_eq!(new[3], Cell::Float(3.0));
    // Errors: a string value, an unknown segment.
    db.commit(&[Event::new("x", T0, "buy").with_prop("note", "hi")])
        .unwrap();
    let e = db.query("RFM OF buy VALUE note").unwrap_err().to_string();
    assert!(e.contains("needs a number"), "{e}");
    let e = db
        .query("CUSTOMERS RFM OF buy VALUE amt SEGMENT champion")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `champions`"), "{e}");
}
