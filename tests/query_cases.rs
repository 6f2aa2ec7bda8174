//! Named regression cases for each definitional edge of docs/QUERY.md, and error reporting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use journeydb::internals::model::{TS_MAX, TS_MIN};
use journeydb::{Cell, Db, Event, Options, Query, QueryError, QueryOptions, Stage, Sync};

const M: i64 = 60_000_000;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
/// 2026-02-02T00:00Z, a Monday.
const T: i64 = 1_769_990_400_000_000;

fn db(events: &[Event]) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(&[
        Event::new("names", T - 400 * D, "visit"),
        Event::new("names", T - 400 * D, "add_to_cart"),
        Event::new("names", T - 400 * D, "purchase").with_prop("amount", 0.0),
        Event::new("names", T - 400 * D, "other"),
    ])
    .unwrap();
    db.commit(events).unwrap();
    (dir, db)
}

/// Customers per step of a funnel (excluding the helper customer "names", which has all events
/// at one instant 400 days earlier: it only reaches a step in ALLOW mode, counted below).
fn counts(db: &Db, q: &str) -> Vec<i64> {
    let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    t.rows
        .iter()
        .map(|r| match r[2] {
            Cell::Int(n) => n,
            _ => panic!(),
        })
        .collect()
}

fn funnel3(db: &Db, extra: &str) -> Vec<i64> {
    counts(
        db,
        &format!(
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d {extra} FROM '2026-01-01' TO '2027-01-01'"
        ),
    )
}

#[test]
fn window_boundary_is_inclusive() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + 7 * D, "purchase"),
        Event::new("b", T, "visit"),
        Event::new("b", T + 7 * D + 1, "purchase"),
    ]);
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> purchase WITHIN 7d FROM '2026-01-01' TO '2027-01-01'"
        ),
        vec![2, 1]
    );
}

#[test]
fn ties_allow_chains_equal_timestamps_strict_does_not() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T, "add_to_cart"),
        Event::new("a", T + M, "purchase"),
    ]);
    assert_eq!(funnel3(&db, "TIES ALLOW"), vec![1, 1, 1]);
    assert_eq!(funnel3(&db, "TIES STRICT"), vec![1, 0, 0]);
}

#[test]
fn tied_steps_are_taken_in_step_order() {
    // Same timestamp, add_to_cart written before visit: tied events are taken in step order
    // (docs/QUERY.md, "Event order"), so the funnel completes whatever the rows' order.
    for rows in [["add_to_cart", "visit"], ["visit", "add_to_cart"]] {
        let events: Vec<Event> = rows.iter().map(|name| Event::new("a", T, *name)).collect();
        let (_d, db) = db(&events);
        assert_eq!(
            counts(
                &db,
                "FUNNEL visit -> add_to_cart WITHIN 1d TIES ALLOW FROM '2026-01-01' TO '2027-01-01'"
            ),
            vec![1, 1],
            "rows written {rows:?}"
        );
    }
}

#[test]
fn one_event_fills_at_most_one_step() {
    let (_d, db) = db(&[Event::new("a", T, "visit")]);
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> visit WITHIN 1d FROM '2026-01-01' TO '2027-01-01'"
        ),
        vec![1, 0]
    );
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> visit WITHIN 1d MODE UNORDERED FROM '2026-01-01' TO '2027-01-01'"
        ),
        vec![1, 0]
    );
}

#[test]
fn exclusion_placement() {
    let (_d, db) = db(&[
        // a: other strictly between visit and purchase -> excluded at step 3.
        Event::new("a", T, "visit"),
        Event::new("a", T + M, "add_to_cart"),
        Event::new("a", T + 2 * M, "other"),
        Event::new("a", T + 3 * M, "purchase"),
        // b: other before the visit -> not between.
        Event::new("b", T, "other"),
        Event::new("b", T + M, "visit"),
        Event::new("b", T + 2 * M, "add_to_cart"),
        Event::new("b", T + 3 * M, "purchase"),
    ]);
    // The chain form: a's chain is invalid from step 3 on; a still counts at steps 1 and 2.
    assert_eq!(funnel3(&db, "EXCLUDE other EXCLUSION CHAIN"), vec![2, 2, 1]);
    // Only between steps 1 and 2: a's other is after the cart, so a completes.
    assert_eq!(
        funnel3(&db, "EXCLUDE other BETWEEN 1 AND 2 EXCLUSION CHAIN"),
        vec![2, 2, 2]
    );
    assert_eq!(
        funnel3(&db, "EXCLUDE other BETWEEN 2 AND 3 EXCLUSION CHAIN"),
        vec![2, 2, 1]
    );
    // The customer form (default, issue 34): a's only longest chain is hit, so a leaves the
    // funnel at every step; b's other precedes its visit.
    assert_eq!(funnel3(&db, "EXCLUDE other"), vec![1, 1, 1]);
    assert_eq!(funnel3(&db, "EXCLUDE other BETWEEN 1 AND 2"), vec![2, 2, 2]);
    assert_eq!(
        funnel3(&db, "EXCLUDE other BETWEEN 2 AND 3 EXCLUSION CUSTOMER"),
        vec![1, 1, 1]
    );
}

#[test]
fn a_later_chain_rescues_an_excluded_one() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + M, "other"),
        Event::new("a", T + 2 * M, "visit"),
        Event::new("a", T + 3 * M, "purchase"),
    ]);
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> purchase WITHIN 1d EXCLUDE other FROM '2026-01-01' TO '2027-01-01'"
        ),
        vec![1, 1]
    );
}

#[test]
fn strict_mode_forbids_events_in_between() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + M, "other"),
        Event::new("a", T + 2 * M, "add_to_cart"),
        Event::new("b", T, "visit"),
        Event::new("b", T + M, "add_to_cart"),
    ]);
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> add_to_cart WITHIN 1d MODE STRICT FROM '2026-01-01' TO '2027-01-01'"
        ),
        vec![2, 1]
    );
}

#[test]
fn first_step_must_be_in_range_later_steps_may_run_past() {
    let (_d, db) = db(&[
        Event::new("a", T - D, "visit"),
        Event::new("a", T + H, "purchase"),
        Event::new("b", T + H, "visit"),
        Event::new("b", T + 3 * D, "purchase"),
    ]);
    assert_eq!(
        counts(
            &db,
            "FUNNEL visit -> purchase WITHIN 7d FROM '2026-02-02' TO '2026-02-03'"
        ),
        vec![1, 1]
    );
}

#[test]
fn time_to_convert_uses_earliest_completing_chain() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + 10 * M, "visit"),
        Event::new("a", T + 30 * M, "purchase"),
        Event::new("a", T + 90 * M, "purchase"),
    ]);
    let t = db
        .snapshot()
        .query("FUNNEL visit -> purchase WITHIN 1d FROM '2026-01-01' TO '2027-01-01'")
        .unwrap();
    // Earliest purchase (T+30m), latest visit before it (T+10m): 20 minutes.
    assert_eq!(t.rows[1][5], Cell::Float(1200.0));
}

#[test]
fn first_time_cohort_outside_the_range_is_not_counted() {
    let (_d, db) = db(&[
        Event::new("old", T - 14 * D, "visit"),
        Event::new("old", T + D, "visit"),
        Event::new("new", T + D, "visit"),
    ]);
    let t = db
        .snapshot()
        .query(
            "RETENTION visit RETURN visit PERIOD week PERIODS 1 FIRST_TIME FROM '2026-02-02' TO '2026-02-09'",
        )
        .unwrap();
    let cohort_rows: Vec<_> = t
        .rows
        .iter()
        .filter(|r| r[0] != Cell::Str("mean".into()))
        .collect();
    assert_eq!(cohort_rows.len(), 2, "{}", t.to_text());
    assert_eq!(cohort_rows[0][0], Cell::Str("2026-02-02".into()));
    assert_eq!(cohort_rows[0][2], Cell::Int(1), "only `new` is in the cohort");
}

#[test]
fn dst_week_boundaries() {
    // 2026-03-29 01:00Z is the EU change; Monday 2026-03-30 00:00 Berlin = 2026-03-29 22:00Z.
    let sunday_late = 1_774_821_600_000_000 - 30 * M; // 2026-03-29T21:30Z = 23:30 Berlin (Sunday)
    let monday_early = 1_774_821_600_000_000 + 30 * M; // 2026-03-29T22:30Z = 00:30 Berlin (Monday)
    let (_d, db) = db(&[
        Event::new("a", sunday_late, "visit"),
        Event::new("b", monday_early, "visit"),
    ]);
    let t = db
        .snapshot()
        .query("TREND count OF visit PERIOD week FROM '2026-03-23' TO '2026-04-06' TZ 'Europe/Berlin'")
        .unwrap();
    // The week of the latest event ends after it: not complete (docs/QUERY.md, "Complete buckets").
    assert_eq!(
        t.to_text(),
        "bucket | value | complete\n2026-03-23 | 1 | true\n2026-03-30 | 1 | false\n"
    );
    let t = db
        .snapshot()
        .query("TREND count OF visit PERIOD week FROM '2026-03-23' TO '2026-04-06'")
        .unwrap();
    assert_eq!(
        t.to_text(),
        "bucket | value | complete\n2026-03-23 | 2 | false\n2026-03-30 | 0 | false\n",
        "in UTC both are Sunday (and the data ends before either week does)"
    );
    let t = db
        .snapshot()
        .query("TREND count PERIOD day FROM '2026-03-29' TO '2026-03-30' TZ 'Europe/Berlin'")
        .unwrap();
    assert_eq!(t.rows.len(), 1, "a 23-hour day is one bucket");
}

#[test]
fn empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let snap = db.snapshot();
    // Issue 34: an event not stored yet counts zero, with a warning (not an error).
    let t = snap.query("FUNNEL visit -> purchase WITHIN 7d").unwrap();
    assert_eq!(
        t.rows.iter().map(|r| r[2].clone()).collect::<Vec<_>>(),
        [Cell::Int(0), Cell::Int(0)]
    );
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
    assert!(
        t.warnings[0].starts_with("unknown event `visit` (column 8)"),
        "{:?}",
        t.warnings
    );
    assert_eq!(snap.query("TREND count PERIOD day").unwrap().rows.len(), 1);
    assert!(snap.query("TIMELINE 'x'").unwrap().rows.is_empty());
}

#[test]
fn customer_with_a_single_event() {
    let (_d, db) = db(&[Event::new("a", T, "visit").with_stage(Stage::Awareness)]);
    assert_eq!(funnel3(&db, ""), vec![1, 0, 0]);
    let t = db.snapshot().query("TIMELINE 'a'").unwrap();
    assert_eq!(
        t.to_text(),
        "ts | event | stage\n2026-02-02T00:00:00.000Z | visit | awareness\n"
    );
    let t = db
        .snapshot()
        .query("RETENTION visit RETURN visit PERIOD day PERIODS 1 FROM '2026-02-01' TO '2026-02-10'")
        .unwrap();
    assert_eq!(t.rows[0][2], Cell::Int(1));
    assert_eq!(t.rows[1][3], Cell::Int(0));
}

#[test]
fn canonical_queries_parse_verbatim() {
    for q in [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME",
        "TREND uniq PERIOD day BY channel",
        "TREND sum(amount) OF STAGE retention PERIOD day",
        "TIMELINE '4242' FROM '2026-02-01' TO '2026-03-03'",
        "funnel visit -> purchase within 2w mode unordered;",
    ] {
        journeydb::query::parse(q).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
    }
}

fn render(db: &Db, q: &str) -> String {
    match db.snapshot().query(q) {
        Err(QueryError::Parse(e)) => e.render(q),
        other => panic!("{q}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn errors_point_at_the_bad_token_with_hints() {
    let (_d, db) = db(&[Event::new("a", T, "visit")]);
    // An event name not stored yet is a warning that keeps the hint (issue 34), not an error.
    let t = db
        .snapshot()
        .query("FUNNEL visit -> add_to_crt WITHIN 7d")
        .unwrap();
    assert_eq!(
        t.warnings,
        [
            "unknown event `add_to_crt` (column 17): no such event is stored yet, so it matches nothing; did you mean `add_to_cart`?"
        ]
    );
    assert_eq!(t.rows[1][2], Cell::Int(0));
    assert!(
        db.snapshot()
            .query("FUNNEL visit -> add_to_cart WITHIN 7d")
            .unwrap()
            .warnings
            .is_empty()
    );
    assert!(render(&db, "FUNEL visit").contains("did you mean FUNNEL?"));
    assert!(render(&db, "FUNNEL visit -> purchase").contains("expected `->` or WITHIN"));
    assert!(render(&db, "FUNNEL visit -> purchase WITHIN 7x").contains("unknown duration unit `x`"));
    assert!(render(&db, "TREND count PERIOD fortnight").contains("expected a period"));
    assert!(render(&db, "TREND sum(amount PERIOD day").contains("expected `)`"));
    assert!(render(&db, "TREND sum(channel) PERIOD day").contains("unknown property `channel`"));
    assert!(render(&db, "TREND count PERIOD day TZ 'Mars/Olympus'").contains("unknown time zone"));
    assert!(render(&db, "TREND count PERIOD day FROM '2026-13-45' TO '2026-02-01'").contains("cannot read"));
    assert!(render(&db, "TREND count PERIOD day WHERE amount = 'x'").contains("is f64"));
    assert!(render(&db, "TIMELINE 'a' FROM 'x").contains("unterminated string"));
    let multi = "FUNNEL visit\n  -> purchase\n  WITHIN 7d MODE sideways";
    assert!(
        render(&db, multi).contains("line 3, column 18"),
        "{}",
        render(&db, multi)
    );
}

#[test]
fn hostile_queries_are_errors_not_crashes() {
    let (_d, db) = db(&[Event::new("a", T, "visit")]);
    let deep = format!(
        "TREND count PERIOD day WHERE {}amount = 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(
        db.snapshot()
            .query(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper")
    );
    let nots = format!("TREND count PERIOD day WHERE {}amount = 1", "NOT ".repeat(5000));
    assert!(db.snapshot().query(&nots).is_err());
    let huge = "x".repeat(100_000);
    assert!(
        db.snapshot()
            .query(&huge)
            .unwrap_err()
            .to_string()
            .contains("exceeds the limit")
    );
    assert!(
        db.snapshot()
            .query("TREND count PERIOD hour FROM 0 TO 9000000000000")
            .unwrap_err()
            .to_string()
            .contains("buckets")
    );
    assert!(
        db.snapshot()
            .query("FUNNEL visit WITHIN 99999999999999999999d")
            .is_err()
    );
}

#[test]
fn cancellation_and_row_cap() {
    let (_d, db) = db(&[Event::new("a", T, "visit")]);
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = QueryOptions {
        cancel,
        ..Default::default()
    };
    assert!(matches!(
        db.snapshot().query_with("TREND count PERIOD day", &opts),
        Err(QueryError::Cancelled)
    ));
    let opts = QueryOptions {
        rows_max: 3,
        ..Default::default()
    };
    assert!(matches!(
        db.snapshot()
            .query_with("TREND count PERIOD day FROM '2026-01-01' TO '2026-02-01'", &opts),
        Err(QueryError::TooManyRows(3))
    ));
}

#[test]
fn memory_budget_stops_a_query_whose_state_outgrows_it() {
    // 3,000 customers, each with a distinct note and a purchase 1–3 days after a visit.
    let mut evs = Vec::new();
    for c in 0..3000i64 {
        evs.push(Event::new(format!("c{c}"), T + c * 1000, "visit").with_prop("note", format!("n{c}")));
        evs.push(
            Event::new(format!("c{c}"), T + c * 1000 + (1 + c % 3) * 24 * H, "purchase")
                .with_prop("amount", c as f64)
                .with_prop("note", format!("n{c}")),
        );
    }
    let (_d, db) = db(&evs);
    let snap = db.snapshot();
    let tight = QueryOptions {
        memory_max: 8 << 10,
        ..Default::default()
    };
    let roomy = QueryOptions {
        memory_max: 64 << 20,
        ..Default::default()
    };
    // A breakdown by a high-cardinality property: one aggregate per (note, day).
    let by_note = "TREND count PERIOD week BY note";
    match snap.query_with(by_note, &tight) {
        Err(e @ QueryError::MemoryExceeded(_)) => assert!(e.to_string().contains("memory budget")),
        other => panic!("expected MemoryExceeded, got {other:?}"),
    }
    // Time-to-convert samples grow with converting customers.
    let funnel = "FUNNEL visit -> purchase WITHIN 7d";
    assert!(matches!(
        snap.query_with(funnel, &tight),
        Err(QueryError::MemoryExceeded(_))
    ));
    // Percentile values grow with events.
    let pct = "TREND p90(amount) PERIOD month";
    assert!(matches!(
        snap.query_with(pct, &tight),
        Err(QueryError::MemoryExceeded(_))
    ));
    // Within a sufficient budget the answers are those of the default options, on any thread count.
    for q in [by_note, funnel, pct] {
        for threads in [1, 2, 3] {
            let opts = QueryOptions {
                threads,
                ..roomy.clone()
            };
            assert_eq!(snap.query_with(q, &opts).unwrap(), snap.query(q).unwrap(), "{q}");
        }
    }
    // Bounded states pass under the tight budget.
    snap.query_with("TREND count PERIOD month", &tight).unwrap();
}

#[test]
fn row_cap_applies_before_large_results_are_built() {
    let evs: Vec<Event> = (0..50).map(|k| Event::new("one", T + k * H, "visit")).collect();
    let (_d, db) = db(&evs);
    let snap = db.snapshot();
    let opts = QueryOptions {
        rows_max: 10,
        ..Default::default()
    };
    assert!(matches!(
        snap.query_with("TIMELINE 'one'", &opts),
        Err(QueryError::TooManyRows(10))
    ));
    assert_eq!(snap.query("TIMELINE 'one'").unwrap().rows.len(), 50);
}

#[test]
fn uniq_from_bitmaps_equals_the_scan() {
    let mut evs = Vec::new();
    for c in 0..20i64 {
        for k in 0..(c % 5 + 1) {
            let mut e = Event::new(
                format!("c{c}"),
                T + c * 7 * H + k * 11 * H,
                if k % 2 == 0 { "visit" } else { "purchase" },
            );
            if k % 3 == 0 {
                e = e.with_stage(Stage::Purchase);
            }
            evs.push(e.with_prop("amount", 1.0));
        }
    }
    let (_d, db) = db(&evs);
    db.flush().unwrap();
    let snap = db.snapshot();
    // The second form forces a scan (a WHERE disables the bitmap path); answers must agree.
    let always = "WHERE amount IS NULL OR amount IS NOT NULL";
    for (q, scan) in [
        ("TREND uniq PERIOD day", format!("TREND uniq PERIOD day {always}")),
        (
            "TREND uniq OF STAGE purchase PERIOD week",
            format!("TREND uniq OF STAGE purchase PERIOD week {always}"),
        ),
        (
            "TREND uniq PERIOD month FROM '2026-02-03' TO '2026-02-07'",
            format!("TREND uniq PERIOD month FROM '2026-02-03' TO '2026-02-07' {always}"),
        ),
    ] {
        assert_eq!(snap.query(q).unwrap(), snap.query(&scan).unwrap(), "{q}");
    }
    let t = snap
        .query("TREND uniq PERIOD day FROM '2026-02-02' TO '2026-02-04'")
        .unwrap();
    assert_eq!(
        t.to_text(),
        "bucket | value | complete\n2026-02-02 | 4 | true\n2026-02-03 | 5 | true\n"
    );
}

fn explain(db: &Db, q: &str) -> Vec<(String, String)> {
    let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    t.rows
        .iter()
        .map(|r| (r[2].to_string(), r[5].to_string()))
        .collect()
}

#[test]
fn explain_shows_the_chain_and_each_reason() {
    let (_d, db) = db(&[
        // ok: converts.
        Event::new("ok", T, "visit"),
        Event::new("ok", T + M, "add_to_cart"),
        Event::new("ok", T + 2 * M, "purchase"),
        // late: purchase 8 days after the visit.
        Event::new("late", T, "visit"),
        Event::new("late", T + 8 * D, "purchase"),
        // gap: another event between visit and purchase (STRICT mode).
        Event::new("gap", T, "visit"),
        Event::new("gap", T + M, "other"),
        Event::new("gap", T + 2 * M, "purchase"),
        // tie: purchase at the visit's timestamp (TIES STRICT).
        Event::new("tie", T, "visit"),
        Event::new("tie", T, "purchase"),
        // before: purchase only before the visit.
        Event::new("before", T, "purchase"),
        Event::new("before", T + M, "visit"),
    ]);
    let f = "FUNNEL visit -> purchase WITHIN 7d";
    let ok = explain(
        &db,
        "EXPLAIN FUNNEL visit -> add_to_cart -> purchase WITHIN 7d FOR CUSTOMER 'ok'",
    );
    assert!(ok.iter().all(|(s, _)| s == "reached"), "{ok:?}");
    let t = db
        .snapshot()
        .query("EXPLAIN FUNNEL visit -> add_to_cart -> purchase WITHIN 7d FOR CUSTOMER 'ok'")
        .unwrap();
    assert_eq!(
        t.rows[2][4],
        Cell::Float(120.0),
        "time from the start of the chain"
    );

    let r = explain(&db, &format!("EXPLAIN {f} FOR CUSTOMER 'late'"));
    assert_eq!(r[1].0, "not reached");
    assert!(
        r[1].1.starts_with("window expired at 2026-02-09T00:00:00.000Z"),
        "{r:?}"
    );

    let r = explain(&db, &format!("EXPLAIN {f} MODE STRICT FOR CUSTOMER 'gap'"));
    assert!(r[1].1.starts_with("strict order broken by `other`"), "{r:?}");
    assert_eq!(
        explain(&db, &format!("EXPLAIN {f} FOR CUSTOMER 'gap'"))[1].0,
        "reached"
    );

    let r = explain(&db, &format!("EXPLAIN {f} EXCLUDE other FOR CUSTOMER 'gap'"));
    assert!(r[1].1.starts_with("excluded event `other`"), "{r:?}");

    let r = explain(&db, &format!("EXPLAIN {f} TIES STRICT FOR CUSTOMER 'tie'"));
    assert!(r[1].1.starts_with("tie policy: `purchase`"), "{r:?}");
    assert_eq!(
        explain(&db, &format!("EXPLAIN {f} FOR CUSTOMER 'tie'"))[1].0,
        "reached"
    );

    let r = explain(&db, &format!("EXPLAIN {f} FOR CUSTOMER 'before'"));
    assert!(r[1].1.contains("only before step 1"), "{r:?}");

    let r = explain(&db, "EXPLAIN FUNNEL visit -> other WITHIN 7d FOR CUSTOMER 'ok'");
    assert_eq!(r[1].1, "no event matches `other`");

    let r = explain(
        &db,
        "EXPLAIN FUNNEL visit -> purchase WITHIN 7d FROM '2027-01-01' TO '2027-02-01' FOR CUSTOMER 'ok'",
    );
    assert!(r[0].1.starts_with("no `visit` event in FROM .. TO"), "{r:?}");
    assert_eq!(r[1].1, "step 1 was not reached");

    let err = db
        .snapshot()
        .query(&format!("EXPLAIN {f} FOR CUSTOMER 'nobody'"))
        .unwrap_err();
    assert!(err.to_string().contains("unknown customer 'nobody'"), "{err}");
}

/// A funnel over one segment of several blocks (decoded per customer, only until the funnel
/// completes, a customer's state kept across blocks, and a block wholly of a completed customer
/// not read) answers as the merge of two segments does (every row decoded), on one thread and
/// on several.
#[test]
fn funnel_over_blocks_equals_funnel_over_merged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let names = ["visit", "add_to_cart", "purchase", "other"];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut events = Vec::new();
    for c in 0..3_000u64 {
        // One customer with 150,000 events (two blocks and more: at least one block holds
        // only them, and their funnel completes early); the others 1–60, so that block
        // boundaries fall inside customers.
        let rows = if c == 1_234 { 150_000 } else { 1 + rnd() % 60 };
        let mut t = T + (rnd() % 40) as i64 * D;
        for _ in 0..rows {
            t += match rnd() % 10 {
                0 => 3 * D,
                1 => 0,
                _ => (rnd() % 7_200) as i64 * 1_000_000,
            };
            events.push(Event::new(format!("c{c}"), t, names[(rnd() % 4) as usize]));
        }
    }
    let half = events.len() / 2;
    // Two segments, the second holding later rows of customers of the first.
    db.commit(&events[..half]).unwrap();
    db.flush().unwrap();
    db.commit(&events[half..]).unwrap();
    db.flush().unwrap();
    assert_eq!(db.stats().segments, 2);
    let queries = [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 1d",
        "FUNNEL add_to_cart -> purchase WITHIN 2h FROM '2026-02-10' TO '2026-03-01'",
    ];
    let answers = |db: &Db| -> Vec<Vec<journeydb::Table>> {
        let snap = db.snapshot();
        queries
            .iter()
            .map(|q| {
                [0, 1, 3]
                    .iter()
                    .map(|&threads| {
                        snap.query_with(
                            q,
                            &QueryOptions {
                                threads,
                                ..Default::default()
                            },
                        )
                        .unwrap()
                    })
                    .collect()
            })
            .collect()
    };
    let merged = answers(&db);
    db.compact().unwrap();
    assert_eq!(db.stats().segments, 1);
    let one = answers(&db);
    for ((q, m), o) in queries.iter().zip(&merged).zip(&one) {
        assert!(
            m.iter().all(|t| t == &m[0]),
            "{q}: thread counts differ over two segments"
        );
        assert_eq!(o, m, "{q}: one segment differs from two");
    }
    // Not a vacuous comparison: the funnels count customers at every step.
    assert!(counts(&db, queries[0]).iter().all(|&n| n > 0));
}

/// Timestamps at the ends of the supported range (years -9999 and 9999): a chain starting at
/// the earliest instant is a chain, and a gap of 20,000 years is outside any window. (The fast
/// funnel kernel once took i64::MIN for "no chain" and subtracted timestamps unchecked.)
#[test]
fn funnel_at_the_ends_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(&[
        Event::new("a", TS_MIN, "visit"),
        Event::new("a", TS_MIN + 1, "add_to_cart"),
        Event::new("a", TS_MIN + 2, "purchase"),
        Event::new("b", TS_MIN + 1, "visit"),
        Event::new("b", TS_MAX - 1, "add_to_cart"),
        Event::new("b", TS_MAX, "purchase"),
    ])
    .unwrap();
    // Unordered: b's add_to_cart and purchase are two distinct steps within 7 days.
    for (extra, want) in [
        ("", [2, 1, 1]),
        ("TIES STRICT", [2, 1, 1]),
        ("MODE STRICT", [2, 1, 1]),
        ("MODE UNORDERED", [2, 2, 1]),
    ] {
        for flush in [false, true] {
            if flush {
                db.flush().unwrap();
            }
            let q = format!("FUNNEL visit -> add_to_cart -> purchase WITHIN 7d {extra}");
            assert_eq!(counts(&db, &q), want, "{q}, flushed: {flush}");
        }
    }
}

/// A timestamp outside the supported range is refused, naming the event; the range's ends
/// are accepted.
#[test]
fn timestamps_outside_the_supported_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    for ts in [TS_MIN - 1, TS_MAX + 1, i64::MIN, i64::MAX] {
        let e = db
            .commit(&[Event::new("a", 0, "visit"), Event::new("a", ts, "visit")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("event 1 of the batch") && e.contains("supported range"),
            "{ts}: {e}"
        );
    }
    db.commit(&[Event::new("a", TS_MIN, "visit"), Event::new("a", TS_MAX, "visit")])
        .unwrap();
    assert_eq!(db.snapshot().query("TIMELINE 'a'").unwrap().rows.len(), 2);
}

/// Every query form over events at the ends of the supported range answers (or reports an
/// error); none panics — day and bucket arithmetic stays inside i64.
#[test]
fn every_query_at_the_ends_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.set_stage("visit", Some(Stage::Awareness)).unwrap();
    db.set_stage("purchase", Some(Stage::Purchase)).unwrap();
    db.commit(&[
        Event::new("a", TS_MIN, "visit").with_prop("channel", "web"),
        Event::new("a", TS_MIN + 1, "purchase").with_prop("amount", 5.0),
        Event::new("b", TS_MAX - 1, "visit"),
        Event::new("b", TS_MAX, "purchase").with_prop("amount", 7.0),
        Event::new("c", 0, "visit"),
    ])
    .unwrap();
    let queries = [
        "FUNNEL visit -> purchase WITHIN 7d",
        "FUNNEL visit -> purchase WITHIN 7d MODE STRICT",
        "FUNNEL visit -> purchase WITHIN 7d MODE UNORDERED",
        "FUNNEL visit -> purchase WITHIN 7d BY channel",
        "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8",
        "RETENTION visit RETURN purchase PERIOD day PERIODS 3 FIRST_TIME",
        "TREND uniq PERIOD day",
        "TREND count PERIOD month",
        "TREND sum(amount) OF STAGE purchase PERIOD day",
        "LIFECYCLE OF visit OR purchase PERIOD week",
        "STICKINESS OF visit PERIOD day",
        "TIMELINE 'a'",
        "TIMELINE 'b'",
        "CUSTOMERS IN STAGE purchase",
    ];
    for flush in [false, true] {
        if flush {
            db.flush().unwrap();
        }
        for q in queries {
            // Bucketed forms may refuse (20,000 years of days exceed the bucket limit; calendar
            // arithmetic may leave the calendar's range): an error, not a panic. The others
            // answer.
            let bucketed = ["RETENTION", "TREND", "LIFECYCLE", "STICKINESS"]
                .iter()
                .any(|k| q.starts_with(k));
            match db.snapshot().query(q) {
                Ok(t) => assert!(!t.columns.is_empty(), "{q}"),
                Err(e) => assert!(bucketed, "{q}: {e}"),
            }
        }
    }
    assert_eq!(counts(&db, "FUNNEL visit -> purchase WITHIN 7d"), vec![3, 2]);
}

/// Issue 33 §5: every timestamp that `commit` accepts can be queried by every bucketed
/// statement with every period and in zones on both sides of UTC, with the default range and
/// with `FROM .. TO` literals past the range's end; the buckets hold every event exactly once.
#[test]
fn every_period_at_the_ends_of_time() {
    for (end, ts) in [
        ("late", (0..40).map(|k| TS_MAX - k * 23 * H).collect::<Vec<_>>()),
        ("early", (0..40).map(|k| TS_MIN + k * 23 * H).collect::<Vec<_>>()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        db.set_stage("visit", Some(Stage::Awareness)).unwrap();
        let events: Vec<Event> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| Event::new(format!("c{}", i % 7), t, "visit"))
            .collect();
        db.commit(&events).unwrap();
        let range = if end == "late" {
            " FROM '9999-11-01' TO '9999-12-31'"
        } else {
            ""
        };
        for flush in [false, true] {
            if flush {
                db.flush().unwrap();
            }
            for period in ["hour", "day", "week", "month"] {
                for tz in ["UTC", "Asia/Tokyo", "America/Los_Angeles"] {
                    for r in ["", range] {
                        let trend = format!("TREND count PERIOD {period}{r} TZ '{tz}'");
                        let t = db
                            .snapshot()
                            .query(&trend)
                            .unwrap_or_else(|e| panic!("{end}: {trend}: {e}"));
                        let total: i64 = t
                            .rows
                            .iter()
                            .map(|row| match row.get(1) {
                                Some(Cell::Int(n)) => *n,
                                other => panic!("{trend}: {other:?}"),
                            })
                            .sum();
                        // TO '9999-12-31' is past the range's end in UTC and Los Angeles
                        // (taken as the end); in Tokyo it is 9999-12-30T15:00Z, before the
                        // last event (22:00Z, local 9999-12-31).
                        let want = if tz == "Asia/Tokyo" && !r.is_empty() {
                            39
                        } else {
                            40
                        };
                        assert_eq!(total, want, "{end}: {trend}: every event in one bucket");
                        for q in [
                            format!("TREND uniq PERIOD {period}{r} TZ '{tz}'"),
                            format!("RETENTION visit RETURN visit PERIOD {period} PERIODS 3{r} TZ '{tz}'"),
                            format!("LIFECYCLE OF visit PERIOD {period}{r} TZ '{tz}'"),
                            format!("STAGES PERIOD {period}{r} TZ '{tz}'"),
                        ] {
                            match db.snapshot().query(&q) {
                                Ok(_) => {}
                                // A period the statement does not take at all.
                                Err(e) if period == "hour" && e.to_string().contains("periods are") => {}
                                Err(e) => panic!("{end}: {q}: {e}"),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Hourly buckets across daylight-saving changes: at a fall-back fold the hour 01:00 happens
/// twice and both are buckets (it once looped: the second 01:00's start was taken as the
/// first's); at a spring-forward gap the missing hour is no bucket; a zone whose clocks move by
/// 30 minutes still gets one bucket per hour of events. Every event lands in exactly one.
#[test]
fn hourly_buckets_across_daylight_saving_changes() {
    // 2026-11-01 01:00-07:00 (PDT) and 01:00-08:00 (PST) in Los Angeles; 2026-03-08 02:00
    // does not exist there. Lord Howe Island moves between +10:30 and +11:00.
    let events: Vec<Event> = (0..96)
        .flat_map(|k| {
            [
                Event::new("fall", 1_793_520_000_000_000 + k * 20 * M, "visit"),
                Event::new("spring", 1_772_928_000_000_000 + k * 20 * M, "visit"),
                Event::new("howe", 1_775_300_400_000_000 + k * 20 * M, "visit"),
            ]
        })
        .collect();
    let (_dir, db) = db(&events);
    for (tz, from, to, want_labels) in [
        (
            "America/Los_Angeles",
            "2026-10-31T22:00:00",
            "2026-11-01T04:00:00",
            vec![
                "2026-10-31T22:00-07:00",
                "2026-10-31T23:00-07:00",
                "2026-11-01T00:00-07:00",
                "2026-11-01T01:00-07:00",
                "2026-11-01T01:00-08:00",
                "2026-11-01T02:00-08:00",
                "2026-11-01T03:00-08:00",
            ],
        ),
        (
            "America/Los_Angeles",
            "2026-03-08T00:00:00",
            "2026-03-08T05:00:00",
            vec![
                "2026-03-08T00:00-08:00",
                "2026-03-08T01:00-08:00",
                "2026-03-08T03:00-07:00",
                "2026-03-08T04:00-07:00",
            ],
        ),
    ] {
        let q = format!("TREND count PERIOD hour FROM '{from}' TO '{to}' TZ '{tz}'");
        let t = db.snapshot().query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let labels: Vec<String> = t.rows.iter().map(|r| r[0].to_string()).collect();
        assert_eq!(labels, want_labels, "{q}");
    }
    for tz in [
        "America/Los_Angeles",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "UTC",
    ] {
        let q = format!("TREND count PERIOD hour TZ '{tz}'");
        let t = db.snapshot().query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let total: i64 = t
            .rows
            .iter()
            .map(|r| match r.get(1) {
                Some(Cell::Int(n)) => *n,
                other => panic!("{q}: {other:?}"),
            })
            .sum();
        assert_eq!(total, events.len() as i64 + 4, "{q}: every event in one bucket");
    }
}

/// Issue 33: distinct event names are limited (each costs memory on every open); the batch
/// that would pass the limit is refused whole, naming the event and saying what to do, by
/// `commit` and by a bulk import; known names keep working, and a name repeated within the
/// batch that reaches the limit exactly is one name.
#[test]
fn distinct_event_names_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let max = journeydb::internals::limits::EVENT_NAMES_MAX as i64;
    let mut events: Vec<Event> = (0..max - 1)
        .map(|i| Event::new("a", i, format!("e{i}")))
        .collect();
    // The last name twice: the batch reaches the limit exactly.
    events.push(Event::new("a", max, "last"));
    events.push(Event::new("a", max + 1, "last"));
    db.commit(&events).unwrap();
    let e = db
        .commit(&[Event::new("a", 0, "e5"), Event::new("a", 0, "one-too-many")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("event 1 of the batch") && e.contains("distinct event names") && e.contains("properties"),
        "{e}"
    );
    let e = db
        .import(common_stage(&[Event::new("b", 0, "one-too-many")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("distinct event names"), "{e}");
    db.commit(&[Event::new("b", 0, "e7"), Event::new("b", 1, "last")])
        .unwrap();
    assert_eq!(db.snapshot().len(), max as u64 + 3);
}

/// Stages events for `Db::import` through an NDJSON file.
fn common_stage(events: &[Event]) -> journeydb::import::Staged {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.ndjson");
    let text: String = events
        .iter()
        .map(|e| {
            format!(
                "{{\"customer_id\":\"{}\",\"ts\":{},\"event\":\"{}\"}}\n",
                e.customer, e.ts_us, e.name
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    let opts = journeydb::import::ImportOptions {
        ts_unit: Some(journeydb::TsUnit::Us),
        ..Default::default()
    };
    journeydb::import::read_file(&path, &opts, &mut |_, _| {})
        .unwrap()
        .staged
}

#[test]
fn a_later_step_event_escapes_an_exclusion_that_hit_an_earlier_one() {
    // a → b is hit by c (after its step-2 event, window open), but a → c is a chain too (ANY)
    // whose step-2 event is c itself: nothing excluded comes after it, so the customer stays.
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + M, "browse"),
        Event::new("a", T + 2 * M, "cancel"),
    ]);
    let range = "FROM '2026-01-01' TO '2027-01-01'";
    assert_eq!(
        counts(
            &db,
            &format!("FUNNEL visit -> ANY -> visit WITHIN 1d EXCLUDE cancel BETWEEN 2 AND 3 {range}")
        ),
        vec![1, 1, 0]
    );
}

#[test]
fn tied_stages_are_two_advances() {
    for rows in [
        [Stage::Purchase, Stage::Awareness],
        [Stage::Awareness, Stage::Purchase],
    ] {
        let events: Vec<Event> = rows
            .iter()
            .map(|&stage| {
                let mut event = Event::new("a", T, "visit");
                event.stage = Some(stage);
                event
            })
            .collect();
        let (_d, db) = db(&events);
        let table = db.snapshot().query("TRANSITIONS").unwrap();
        let moves: Vec<String> = table
            .rows
            .iter()
            .filter(|row| row[1] != Cell::Str("(stayed)".into()))
            .map(|row| format!("{:?} {:?} {:?}", row[0], row[1], row[2]))
            .collect();
        assert!(
            moves.contains(&"Str(\"(none)\") Str(\"awareness\") Int(1)".to_string()),
            "{moves:?}"
        );
        assert!(
            moves.contains(&"Str(\"awareness\") Str(\"purchase\") Int(1)".to_string()),
            "{moves:?}"
        );
    }
}

#[test]
fn weeks_start_on_monday_or_on_sunday() {
    // T is Monday 2026-02-02; a visit the day before (Sunday) and one on the Monday.
    let (_d, db) = db(&[Event::new("a", T - D, "visit"), Event::new("a", T, "visit")]);
    let weeks = |q: &str| -> Vec<(String, i64)> {
        let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        t.rows
            .iter()
            .filter_map(|row| match (&row[0], &row[1]) {
                (Cell::Str(week), Cell::Int(n)) if *n > 0 => Some((week.clone(), *n)),
                _ => None,
            })
            .collect()
    };
    let range = "FROM '2026-01-25' TO '2026-02-08'";
    assert_eq!(
        weeks(&format!("TREND count OF visit PERIOD week {range}")),
        [("2026-01-26".to_string(), 1), ("2026-02-02".to_string(), 1)]
    );
    for q in [
        format!("TREND count OF visit PERIOD week {range} WEEK START sunday"),
        format!("TREND count OF visit PERIOD week WEEK START sunday {range}"),
        format!("TREND count OF visit PERIOD week TZ 'Asia/Tokyo' WEEK START sunday {range}"),
    ] {
        assert_eq!(weeks(&q), [("2026-02-01".to_string(), 2)], "{q}");
    }
    assert_eq!(
        weeks(&format!(
            "TREND count OF visit PERIOD week WEEK START monday {range}"
        )),
        weeks(&format!("TREND count OF visit PERIOD week {range}"))
    );
    assert!(
        render(&db, "TREND count PERIOD day WEEK START sunday")
            .contains("WEEK START applies to PERIOD week only")
    );
    assert!(
        render(&db, "FUNNEL visit -> buy WITHIN 1d WEEK START sunday")
            .contains("WEEK START applies to PERIOD week only")
    );
    assert!(render(&db, "TREND count PERIOD week WEEK START friday").contains("expected sunday or monday"));
    assert!(
        render(&db, "TREND count PERIOD week WEEK START sunday WEEK START sunday")
            .contains("WEEK START given twice")
    );
    // `week` still names an event or a property elsewhere.
    assert!(db.snapshot().query("FUNNEL week -> visit WITHIN 1d").is_ok());
}

#[test]
fn retention_and_stickiness_by_hour() {
    let (_d, db) = db(&[
        Event::new("a", T, "signup"),
        Event::new("a", T + H + M, "visit"),
        Event::new("a", T + 3 * H, "visit"),
        Event::new("b", T + 10 * M, "signup"),
        Event::new("b", T + 20 * M, "visit"),
    ]);
    let snap = db.snapshot();
    let t = snap
        .query("RETENTION signup RETURN visit PERIOD hour PERIODS 3 FROM '2026-02-02' TO '2026-02-03'")
        .unwrap();
    // One cohort (hour 00:00, a and b): offset 1 = a (01:01), offset 3 = a (03:00).
    let cohort: Vec<i64> = t
        .rows
        .iter()
        .filter(|row| row[0] == Cell::Str("2026-02-02T00:00+00:00".into()))
        .map(|row| match row[3] {
            Cell::Int(n) => n,
            _ => -1,
        })
        .collect();
    assert_eq!(cohort, [2, 1, 0, 1]);
    let t = snap
        .query("STICKINESS OF visit PERIOD hour FROM '2026-02-02T00:00:00Z' TO '2026-02-02T04:00:00Z'")
        .unwrap();
    let by_hours: Vec<(i64, i64)> = t
        .rows
        .iter()
        .map(|row| match (&row[0], &row[1]) {
            (Cell::Int(hours), Cell::Int(n)) => (*hours, *n),
            _ => (-1, -1),
        })
        .collect();
    // a is active in two hours (01, 03), b in one (00).
    assert_eq!(by_hours, [(1, 1), (2, 1), (3, 0), (4, 0)]);
}

/// A duration written as a number and a unit word (`WITHIN 7 days`, `SESSION 45 minutes`,
/// `LOOKBACK 30 days`, `WITHIN 2 weeks OF FIRST SEEN`) gets "write 7d"; a period written in
/// the plural gets "did you mean week?" (issue 32).
#[test]
fn durations_and_periods_in_words_get_a_hint() {
    let (_d, db) = db(&[Event::new("a", T, "visit").with_prop("channel", "web")]);
    for (q, hint) in [
        (
            "FUNNEL visit -> purchase WITHIN 7 days",
            "write a duration without a space: 7d",
        ),
        ("FUNNEL visit -> purchase WITHIN 36 Hours", "36h"),
        ("TREND sessions PERIOD day SESSION 45 minutes", "45m"),
        (
            "ATTRIBUTION purchase BY channel MODEL last LOOKBACK 30 days",
            "30d",
        ),
        ("TREND uniq PERIOD weeks", "did you mean week?"),
        ("TREND uniq PERIOD Months", "did you mean month?"),
    ] {
        let text = render(&db, q);
        assert!(text.contains(hint), "{q}:\n{text}");
    }
    // A number not followed by a unit word gets no such hint.
    let text = render(&db, "FUNNEL visit -> purchase WITHIN 7");
    assert!(!text.contains("without a space"), "{text}");
}

/// `TIMELINE … LIMIT n` lists the first n rows of the whole answer: events tied at the n-th
/// row's instant are ordered by content first (so the kept row is the first by name, whatever
/// order they were stored in), and an event after a tie group is never among them; the profile
/// row is not counted.
#[test]
fn timeline_limit_takes_the_first_rows_after_ordering_ties() {
    let (_dir, db) = db(&[
        Event::new("ann", T, "visit"),
        Event::new("ann", T + H, "view"),
        Event::new("ann", T + H, "purchase"),
        Event::new("ann", T + H, "add_to_cart"),
        Event::new("ann", T + 2 * H, "review"),
    ]);
    db.flush().unwrap();
    // The same instant again in the buffer: a second source.
    db.commit(&[Event::new("ann", T + H, "about")]).unwrap();
    let names = |q: &str| -> Vec<String> {
        let t = db.query(q).unwrap();
        t.rows
            .iter()
            .map(|r| match &r[1] {
                Cell::Str(name) => name.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let all = names("TIMELINE 'ann'");
    assert_eq!(
        all,
        ["visit", "about", "add_to_cart", "purchase", "view", "review"]
    );
    for n in 1..=7 {
        assert_eq!(
            names(&format!("TIMELINE 'ann' LIMIT {n}")),
            all[..n.min(all.len())],
            "LIMIT {n}"
        );
    }
    assert!(db.query("TIMELINE 'ann' LIMIT 0").is_err());
}

/// Issue 32: a statement `WHERE` that no step-1 event passes (the property is only on the last
/// step's events) answers 0 with a hint towards the step filter; no hint when step 1 keeps
/// customers, when the steps alone have none, or for the step filter itself.
#[test]
fn a_where_that_removes_step_one_hints_at_a_step_filter() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit").with_prop("channel", "web"),
        Event::new("a", T + 60_000_000, "purchase").with_prop("amount", 25.0),
    ]);
    let hinted = |statement: &str| db.snapshot().query(statement).unwrap().warnings;
    let t = db
        .snapshot()
        .query("FUNNEL visit -> purchase WITHIN 7d WHERE amount > 10 FROM '2026-01-01' TO '2026-03-01'")
        .unwrap();
    assert_eq!(t.rows[0][2], Cell::Int(0));
    assert_eq!(
        t.warnings,
        [
            "no step-1 event passes the statement's WHERE, which applies to every step; did you mean a step filter, `purchase WHERE amount > 10`?"
        ]
    );
    let grouped =
        hinted("FUNNEL visit -> purchase WITHIN 7d WHERE NOT (amount < 10 OR amount IS NULL) BY channel");
    assert!(
        grouped
            .iter()
            .any(|w| w.ends_with("`purchase WHERE NOT (amount < 10 OR amount IS NULL)`?")),
        "{grouped:?}"
    );
    let fixed = db
        .snapshot()
        .query("FUNNEL visit -> purchase WHERE amount > 10 WITHIN 7d FROM '2026-01-01' TO '2026-03-01'")
        .unwrap();
    assert_eq!(
        (fixed.rows[1][2].clone(), fixed.warnings.len()),
        (Cell::Int(1), 0)
    );
    assert!(hinted("FUNNEL visit -> purchase WITHIN 7d WHERE channel = 'web'").is_empty());
    // The steps alone match nothing in the range: no hint to give.
    assert!(
        hinted("FUNNEL visit -> purchase WITHIN 7d WHERE amount > 10 FROM '2030-01-01' TO '2030-02-01'")
            .is_empty()
    );
}

/// Issue 32: EXPLAIN's step 1 is the start of the chain counted at the deepest reached step, not
/// the customer's earliest step-1 event (here a visit ten days earlier that led nowhere), so
/// step 1's `at` plus the last step's time_from_start is the last step's `at`.
#[test]
fn explain_step_one_starts_the_counted_chain() {
    let (_d, db) = db(&[
        Event::new("c", T, "visit"),
        Event::new("c", T + 10 * D, "visit"),
        Event::new("c", T + 11 * D, "purchase"),
    ]);
    let t = db
        .snapshot()
        .query("EXPLAIN FUNNEL visit -> purchase WITHIN 7d FOR CUSTOMER 'c'")
        .unwrap();
    let at = |row: usize| t.get(row, "at").and_then(Cell::as_time).unwrap();
    assert_eq!(at(0), T + 10 * D);
    assert_eq!(at(1), T + 11 * D);
    assert_eq!(
        t.get(1, "time_from_start_s").and_then(Cell::as_f64),
        Some(86_400.0)
    );
    assert_eq!(
        t.get(0, "reason").and_then(Cell::as_str),
        Some("starts the chain that first completed step 2")
    );
    // Nothing past step 1: step 1 is the customer's first step-1 event.
    let alone = db
        .snapshot()
        .query("EXPLAIN FUNNEL visit -> review WITHIN 7d FOR CUSTOMER 'c'")
        .unwrap();
    assert_eq!(alone.get(0, "at").and_then(Cell::as_time), Some(T));
}

/// Issue 32: a bucket is complete when the range and the data cover it whole (docs/QUERY.md,
/// "Complete buckets"): the data begins on the day of its earliest event and ends with its
/// latest event. Data from Thursday 2026-01-01 03:00 to Tuesday 2026-02-03 12:00.
#[test]
fn complete_buckets_are_those_the_range_and_the_data_cover() {
    let thursday = 1_767_225_600_000_000 + 3 * H; // 2026-01-01T03:00Z
    let tuesday = 1_770_076_800_000_000 + 12 * H; // 2026-02-03T12:00Z
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(&[
        Event::new("a", thursday, "visit"),
        Event::new("b", tuesday, "visit"),
    ])
    .unwrap();
    let complete = |q: &str| -> Vec<(String, bool)> {
        let t = db.snapshot().query(q).unwrap();
        let (bucket, done) = (t.column("bucket").unwrap(), t.column("complete").unwrap());
        t.rows
            .iter()
            .map(|r| (r[bucket].as_str().unwrap().to_owned(), r[done].as_bool().unwrap()))
            .collect()
    };
    let weeks = complete("TREND count PERIOD week");
    assert_eq!(
        weeks.first(),
        Some(&("2025-12-29".to_owned(), false)),
        "starts mid-week"
    );
    assert_eq!(
        weeks.last(),
        Some(&("2026-02-02".to_owned(), false)),
        "two days of data"
    );
    assert!(weeks[1..weeks.len() - 1].iter().all(|(_, done)| *done));
    // January is whole although its first event came at 03:00; February is not over.
    assert_eq!(
        complete("TREND count PERIOD month"),
        [("2026-01-01".to_owned(), true), ("2026-02-01".to_owned(), false)]
    );
    // FROM on a Monday makes its week whole; TO before the data's end cuts the last bucket.
    let ranged = complete("LIFECYCLE OF visit PERIOD week FROM '2026-01-05' TO '2026-01-15'");
    assert_eq!(
        ranged,
        [("2026-01-05".to_owned(), true), ("2026-01-12".to_owned(), false)]
    );
    // RETENTION: the first weekly cohort holds only Thursday to Sunday's entrants.
    let t = db
        .snapshot()
        .query("RETENTION visit RETURN visit PERIOD week PERIODS 1")
        .unwrap();
    let whole = t.column("cohort_complete").unwrap();
    assert_eq!(t.rows[0][whole], Cell::Bool(false));
}

/// A customer whose rows outgrow the budget stops the scan of several segments with
/// `MemoryExceeded` (src/exec/scan.rs `scan_runs`): rows that span blocks of one segment are
/// copied together (the "spill"), and rows in several segments are gathered (the "carry"); each
/// counts against the budget (a test per term: the cases below fail without either). Within a sufficient budget the answer is the unbudgeted one.
#[test]
fn one_customers_rows_count_against_the_budget_across_segments() {
    let whale_rows = 150_000i64; // more than two blocks of 65,536 rows
    for split in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        let whale = |range: std::ops::Range<i64>| -> Vec<Event> {
            range
                .map(|k| Event::new("whale", T + k * 1000, "visit").with_prop("amount", 1.0))
                .collect()
        };
        let small = |from: i64| -> Vec<Event> {
            (from..from + 50)
                .map(|c| Event::new(format!("s{c}"), T + c, "visit").with_prop("amount", 2.0))
                .collect()
        };
        // Three segments: the whale's rows all in the first (spanning its blocks: spilled), or
        // a third in each, within one block each (gathered from three sources: carried).
        let third = whale_rows / 3;
        let parts = if split {
            // Written latest first: the funnel's lazy scan finds the parts out of time order
            // and copies them together.
            [
                whale(2 * third..whale_rows),
                whale(third..2 * third),
                whale(0..third),
            ]
        } else {
            [whale(0..whale_rows), Vec::new(), Vec::new()]
        };
        for (index, part) in parts.into_iter().enumerate() {
            db.commit(&[part, small(50 * index as i64)].concat()).unwrap();
            db.flush().unwrap();
        }
        let snap = db.snapshot();
        let tight = QueryOptions {
            memory_max: 1 << 20,
            ..Default::default()
        };
        let roomy = QueryOptions {
            memory_max: 256 << 20,
            ..Default::default()
        };
        // A WHERE keeps the roll-ups out: the rows are scanned (TREND); the funnel reads lazily.
        for q in [
            "TREND sum(amount) PERIOD month WHERE amount > 0",
            "FUNNEL visit -> visit WITHIN 1d",
        ] {
            match snap.query_with(q, &tight) {
                Err(QueryError::MemoryExceeded(_)) => {}
                other => panic!("split {split}: {q}: expected MemoryExceeded, got {other:?}"),
            }
            assert_eq!(snap.query_with(q, &roomy).unwrap(), snap.query(q).unwrap());
        }
    }
}

/// Statements the index answers, run through `Db::query` after each commit (each extends the
/// union of the index and the buffered rows that the statement after the previous commit
/// built), answer as on a database that received the same rows in one commit.
#[test]
fn statements_after_each_commit_equal_one_commit() {
    let stages = [
        ("visit", Stage::Awareness),
        ("add_to_cart", Stage::Consideration),
        ("purchase", Stage::Purchase),
    ];
    // Batches grow: the first after the flush below holds more rows than the buffer before it.
    let batch = |k: i64| -> Vec<Event> {
        (0..20 * k + 40)
            .map(|i| {
                let customer = format!("c{}", (i * 7 + k * 13) % 60);
                let at = T + (k * 11 + i % 9) * H + i * M;
                let name = ["visit", "add_to_cart", "purchase", "review"][((i + k) % 4) as usize];
                let event = Event::new(customer, at, name).with_prop("amount", (i * 3 + k) as f64);
                if name == "review" {
                    event.with_stage(Stage::Advocacy)
                } else {
                    event
                }
            })
            .collect()
    };
    let open = || {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        for (name, stage) in stages {
            db.set_stage(name, Some(stage)).unwrap();
        }
        // A sealed segment under the buffer.
        db.commit(&batch(0)).unwrap();
        db.flush().unwrap();
        (dir, db)
    };
    let statements = [
        "TREND uniq PERIOD day",
        "TREND uniq OF purchase PERIOD day",
        "TREND sum(amount) OF STAGE retention PERIOD day",
        "STAGES PERIOD day",
        "RETENTION visit RETURN purchase PERIOD day PERIODS 3",
        "LIFECYCLE OF visit PERIOD day",
        "CUSTOMERS IN STAGE advocacy",
    ];
    let (_live_dir, live) = open();
    for k in 1..6 {
        live.commit(&batch(k)).unwrap();
        let (_dir, once) = open();
        once.commit(&(1..=k).flat_map(batch).collect::<Vec<_>>()).unwrap();
        for statement in statements {
            let got = live
                .query(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            let want = once
                .query(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            assert_eq!(got, want, "{statement} after commit {k}");
        }
        if k == 1 {
            // A new version: the union kept for the old one's buffer must not be extended.
            live.flush().unwrap();
        }
    }
}
