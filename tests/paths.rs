//! PATHS against its reference (tests/common/paths.rs, straight from docs/QUERY.md) on random
//! data with tied timestamps, several segments and unflushed rows; the drill-down's customers;
//! a path's beginning equal to the FUNNEL of its events in MODE STRICT from the same anchor; and
//! named cases (short journeys, ties, collapsed repeats, BEFORE's alignment, errors).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryOptions, Sync, Table};
use proptest::prelude::*;

mod common;
use common::paths::{PathsQ, path_members, paths_ref};
use common::reference::{Common, Ev, H, StepQ, same};

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;

/// (customer, quarter-hour, name, channel)
type Row = (usize, i64, &'static str, Option<&'static str>);

fn rows(quarters: i64) -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..6,
            0i64..quarters,
            proptest::sample::select(vec!["a", "b", "c", "d"]),
            proptest::option::of(proptest::sample::select(vec!["x", "y"])),
        ),
        0..45,
    )
}

fn query() -> impl Strategy<Value = PathsQ> {
    (
        prop_oneof![
            proptest::sample::select(vec!["a", "b", "c"]).prop_map(|n| StepQ::Names(vec![n])),
            Just(StepQ::Names(vec!["a", "d"])),
            Just(StepQ::Any),
        ],
        any::<bool>(),
        proptest::option::of(1usize..5),
        proptest::option::of(1usize..7),
        any::<bool>(),
        any::<bool>(),
        (
            proptest::option::of((0i64..60, 1i64..80)),
            proptest::option::of(Just("x")),
            proptest::option::of(Just("y")),
        ),
        (
            // Quarter-hour data: 10m splits at every gap, 30m (the default) keeps gaps of
            // exactly 30 minutes, 60m more.
            proptest::option::of(proptest::option::of(prop_oneof![Just(10i64), Just(30), Just(60)])),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(anchor, before, steps, top, collapse, edges, (range, where_ch, anchor_ch), (session, by))| {
                PathsQ {
                    anchor,
                    anchor_ch,
                    before,
                    steps,
                    top,
                    collapse,
                    edges,
                    session,
                    by,
                    c: Common {
                        range: range.map(|(a, len)| (T0 + a * H / 4, T0 + (a + len) * H / 4)),
                        where_ch,
                        tz: "UTC",
                    },
                }
            },
        )
}

/// The rows committed in batches of 3, flushed every `flush_every` batches (the rest stays
/// unflushed), and the same events for the reference.
fn load(rows: &[Row], flush_every: usize) -> (tempfile::TempDir, Db, Vec<Ev>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // `ch` is known whatever the rows hold (outside every range the generator draws).
    let seed_ts = T0 - 30 * H;
    db.commit(&[Event::new("seed", seed_ts, "d").with_prop("ch", "y")])
        .unwrap();
    let mut evs = vec![Ev {
        cust: "seed".into(),
        ts: seed_ts,
        seq: 0,
        name: "d".into(),
        stage: None,
        ch: Some("y".into()),
        amt: None,
    }];
    for (batch, chunk) in rows.chunks(3).enumerate() {
        let mut events = Vec::new();
        for &(customer, quarter, name, channel) in chunk {
            let ts = T0 + quarter * H / 4;
            let (event, ev) = Ev::paired(&format!("c{customer}"), ts, evs.len(), name, (channel, None));
            events.push(event);
            evs.push(ev);
        }
        db.commit(&events).unwrap();
        if (batch + 1) % flush_every == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db, evs)
}

fn customers_of(table: &Table) -> Vec<String> {
    let at = table.columns.iter().position(|c| c == "customer").unwrap();
    let mut out: Vec<String> = table
        .rows
        .iter()
        .filter_map(|r| match &r[at] {
            Cell::Str(s) => Some(s.clone()),
            // An empty set is one row without a customer.
            Cell::Null => None,
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort();
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Few quarter-hours: many tied events.
    #[test]
    fn paths_equal_reference(
        rows in rows(24),
        flush_every in 1usize..6,
        qs in proptest::collection::vec(query(), 1..5),
    ) {
        let (_dir, db, evs) = load(&rows, flush_every);
        let snap = db.snapshot();
        for q in &qs {
            let text = q.text();
            let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            same(&got, &paths_ref(q, &evs)).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            let one = snap.query_with(&text, &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(&one, &got);
        }
    }

    /// `CUSTOMERS PATHS … PATH p`: the reference's customers, for beginnings of listed paths
    /// and for names no path has.
    #[test]
    fn path_customers_equal_reference(
        rows in rows(24),
        flush_every in 1usize..6,
        q in query(),
        cut in 1usize..4,
        odd in any::<bool>(),
    ) {
        let q = PathsQ { edges: false, top: Some(50), by: false, ..q };
        let (_dir, db, evs) = load(&rows, flush_every);
        let listed = db.query(&q.text()).unwrap();
        let mut prefixes: Vec<Vec<String>> = listed
            .rows
            .iter()
            .map(|r| {
                let Cell::Str(path) = &r[1] else { panic!() };
                let names: Vec<String> = path.split(" > ").map(str::to_owned).collect();
                let keep = cut.min(names.len());
                if q.before { names[names.len() - keep..].to_vec() } else { names[..keep].to_vec() }
            })
            .collect();
        if odd {
            prefixes.push(vec!["a".into(), "zzz".into()]);
        }
        for names in prefixes {
            let text = format!("CUSTOMERS {} PATH '{}'", q.text(), names.join(" > "));
            let got = db.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let mut want = path_members(&q, &names, &evs);
            want.sort();
            prop_assert_eq!(customers_of(&got), want, "{}", text);
        }
    }

    /// The numbers agree by construction with FUNNEL: on data without ties, the customers whose
    /// path AFTER `a` begins `a > x1 > … > xm` are those of `FUNNEL FIRST a -> x1 -> … -> xm …
    /// MODE STRICT` at step m + 1 (and BEFORE's endings, with FIRST on the last step).
    #[test]
    fn path_beginnings_equal_strict_funnels(
        rows in rows(400),
        flush_every in 1usize..6,
        anchor in proptest::sample::select(vec!["a", "b"]),
        before in any::<bool>(),
        where_x in any::<bool>(),
    ) {
        // One event per customer and instant.
        let mut seen = std::collections::BTreeSet::new();
        let rows: Vec<Row> = rows.into_iter().filter(|r| seen.insert((r.0, r.1))).collect();
        let (_dir, db, _) = load(&rows, flush_every);
        let q = PathsQ {
            anchor: StepQ::Names(vec![anchor]),
            anchor_ch: None,
            before,
            steps: Some(3),
            top: Some(1000),
            collapse: false,
            edges: false,
            session: None,
            by: false,
            c: Common { range: None, where_ch: where_x.then_some("x"), tz: "UTC" },
        };
        let listed = db.query(&q.text()).unwrap();
        for row in &listed.rows {
            let Cell::Str(path) = &row[1] else { panic!() };
            let names: Vec<&str> = path.split(" > ").collect();
            for m in 2..=names.len() {
                let (part, steps) = if before {
                    let part = &names[names.len() - m..];
                    let mut steps: Vec<String> = part.iter().map(|n| n.to_string()).collect();
                    *steps.last_mut().unwrap() = format!("FIRST {}", part[m - 1]);
                    (part, steps)
                } else {
                    let part = &names[..m];
                    let mut steps: Vec<String> = part.iter().map(|n| n.to_string()).collect();
                    steps[0] = format!("FIRST {}", part[0]);
                    (part, steps)
                };
                let filter = if where_x { " WHERE ch = 'x'" } else { "" };
                let funnel = format!("FUNNEL {} WITHIN 36500d MODE STRICT{filter}", steps.join(" -> "));
                let by_funnel = db.query(&format!("CUSTOMERS {funnel} STEP {m}")).unwrap();
                let by_path = db
                    .query(&format!("CUSTOMERS {} PATH '{}'", q.text(), part.join(" > ")))
                    .unwrap();
                prop_assert_eq!(customers_of(&by_path), customers_of(&by_funnel), "{} / {}", path, funnel);
            }
        }
    }
}

/// Bad statements name the clause; an anchor no event has answers nothing, with a warning.
#[test]
fn errors_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[
        Event::new("c1", T0, "visit"),
        Event::new("c1", T0 + H, "view"),
        Event::new("c2", T0, "visit"),
    ])
    .unwrap();
    for (text, want) in [
        ("PATHS visit", "expected AFTER or BEFORE"),
        ("PATHS AFTER visit STEPS 0", "STEPS must be 1..=10"),
        ("PATHS AFTER visit STEPS 11", "STEPS must be 1..=10"),
        ("PATHS AFTER visit TOP 0", "TOP must be at least 1"),
        ("PATHS AFTER visit STEPS 2 STEPS 3", "STEPS given twice"),
        ("PATHS AFTER visit COLLAPSE", "expected REPEATS"),
        (
            "CUSTOMERS PATHS AFTER visit STEPS 1 PATH 'visit > view > view'",
            "at most 2",
        ),
        ("CUSTOMERS PATHS AFTER visit PATH 'visit >  > view'", "none empty"),
        (
            "CUSTOMERS PATHS AFTER visit PATH visit",
            "expected a path in quotes",
        ),
        (
            "CUSTOMERS PATHS AFTER visit EDGES PATH 'visit'",
            "leave out EDGES",
        ),
        ("PATHS AFTER visit WHERE nope = 1", "unknown property"),
    ] {
        let e = db.query(text).map(|t| format!("{t:?}")).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let t = db.query("PATHS AFTER vist").unwrap();
    assert!(t.rows.is_empty());
    assert!(
        t.warnings.iter().any(|w| w.contains("did you mean `visit`")),
        "{:?}",
        t.warnings
    );
    // Every journey is listed, however short; BY COHORT runs it per cohort.
    let t = db.query("PATHS AFTER visit").unwrap();
    assert_eq!(t.rows.len(), 2);
    db.query("CREATE COHORT viewers AS DID view").unwrap();
    let t = db.query("PATHS AFTER visit BY COHORT viewers").unwrap();
    assert_eq!(t.columns, ["group", "rank", "path", "customers"]);
    assert_eq!(
        t.rows,
        vec![vec![
            Cell::Str("viewers".into()),
            Cell::Int(1),
            Cell::Str("visit > view".into()),
            Cell::Int(1),
        ]]
    );
}

/// `BY p` takes the anchor's value — among tied anchor events of one name, the smallest as text
/// (`(null)` sorts before letters) — and `WITHIN SESSION` keeps a gap of exactly the session's
/// length and stops at a longer one, on both sides of the anchor.
#[test]
fn by_and_within_session_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let m = 60_000_000;
    db.commit(&[
        // u1: two tied visits, `y` written first; then b 30 minutes later (kept), c 31 later.
        Event::new("u1", T0, "visit").with_prop("ch", "y"),
        Event::new("u1", T0, "visit").with_prop("ch", "x"),
        Event::new("u1", T0 + 30 * m, "b"),
        Event::new("u1", T0 + 61 * m, "c"),
        // u2: a visit without ch tied with one with `x`; a long gap before it.
        Event::new("u2", T0 - 90 * m, "a"),
        Event::new("u2", T0, "visit").with_prop("ch", "x"),
        Event::new("u2", T0, "visit"),
    ])
    .unwrap();
    let rows = |q: &str| -> Vec<String> {
        let t = db.query(q).unwrap();
        t.rows
            .iter()
            .map(|r| r.iter().map(|c| format!("{c}")).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(
        rows("PATHS AFTER visit STEPS 3 BY ch"),
        ["(null)|1|visit > visit|1", "x|1|visit > visit > b > c|1"]
    );
    assert_eq!(
        rows("PATHS AFTER visit STEPS 3 WITHIN SESSION"),
        ["1|visit > visit|1", "1|visit > visit > b|1"]
    );
    assert_eq!(
        rows("PATHS AFTER visit STEPS 3 WITHIN SESSION 31m"),
        ["1|visit > visit|1", "1|visit > visit > b > c|1"]
    );
    // BEFORE: the anchor is the first of its tied matches, so the other visit follows it.
    assert_eq!(rows("PATHS BEFORE visit STEPS 3 WITHIN SESSION"), ["1|visit|2"]);
    assert_eq!(
        rows("PATHS BEFORE visit STEPS 3 WITHIN SESSION 90m"),
        ["1|a > visit|1", "1|visit|1"]
    );
    // A drill-down lists one path's customers: BY is refused.
    let err = db
        .query("CUSTOMERS PATHS AFTER visit BY ch PATH 'visit'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("leave out BY"), "{err}");
}
