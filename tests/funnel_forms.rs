//! Named cases of a funnel's optional forms (docs/QUERY.md, "FUNNEL"): first-time steps
//! (`FIRST step`), `HOLDING p` and `PERCENTILES`. The random cases are in tests/queries.rs
//! (`Extras` of `Q::Funnel`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, Sync, Table};

const M: i64 = 60_000_000;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
/// 2026-02-02T00:00Z, a Monday.
const T: i64 = 1_769_990_400_000_000;

fn db(events: &[Event]) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    for e in events {
        db.commit(std::slice::from_ref(e)).unwrap();
    }
    (dir, db)
}

fn query(db: &Db, q: &str) -> Table {
    db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn column<'t>(t: &'t Table, name: &str) -> Vec<&'t Cell> {
    let c = t.columns.iter().position(|x| x == name).unwrap();
    t.rows.iter().map(|r| &r[c]).collect()
}

fn customers(t: &Table) -> Vec<i64> {
    column(t, "customers")
        .into_iter()
        .map(|c| if let Cell::Int(n) = c { *n } else { panic!("{c:?}") })
        .collect()
}

fn at(channel: &str, customer: &str, ts: i64, event: &str) -> Event {
    Event::new(customer, ts, event).with_prop("channel", channel)
}

/// Only the customer's first-ever `visit` can start a chain: a first visit before FROM keeps the
/// customer out, and a later visit cannot stand in for a first one that did not convert.
#[test]
fn a_first_step_takes_only_the_first_ever_event() {
    let (_d, db) = db(&[
        Event::new("a", T, "visit"),
        Event::new("a", T + 10 * D, "visit"),
        Event::new("a", T + 10 * D + H, "purchase"),
        Event::new("b", T + 6 * D, "visit"),
        Event::new("b", T + 7 * D, "visit"),
        Event::new("b", T + 7 * D + H, "purchase"),
    ]);
    let range = "FROM '2026-02-07' TO '2026-03-01'";
    assert_eq!(
        customers(&query(
            &db,
            &format!("FUNNEL visit -> purchase WITHIN 1d {range}")
        )),
        [2, 2]
    );
    let first = query(&db, &format!("FUNNEL FIRST visit -> purchase WITHIN 1d {range}"));
    assert_eq!(customers(&first), [1, 0]);
    assert_eq!(column(&first, "event")[0], &Cell::Str("FIRST visit".into()));
    // Without a range both enter; only a's first visit converts... neither does within 1d.
    assert_eq!(
        customers(&query(&db, "FUNNEL FIRST visit -> purchase WITHIN 1d")),
        [2, 0]
    );
    assert_eq!(
        customers(&query(&db, "FUNNEL FIRST visit -> purchase WITHIN 11d")),
        [2, 2]
    );
}

/// A FIRST later step takes only the customer's first event of it, even one before the chain.
#[test]
fn a_first_later_step_takes_only_the_first_ever_event() {
    let (_d, db) = db(&[
        Event::new("a", T, "purchase"),
        Event::new("a", T + D, "visit"),
        Event::new("a", T + D + H, "purchase"),
        Event::new("b", T + D, "visit"),
        Event::new("b", T + D + H, "purchase"),
    ]);
    assert_eq!(
        customers(&query(&db, "FUNNEL visit -> purchase WITHIN 1d")),
        [2, 2]
    );
    assert_eq!(
        customers(&query(&db, "FUNNEL visit -> FIRST purchase WITHIN 1d")),
        [2, 1]
    );
    let t = query(&db, "CUSTOMERS FUNNEL visit -> FIRST purchase WITHIN 1d STEP 2");
    assert_eq!(column(&t, "customer"), [&Cell::Str("b".into())]);
}

/// `FIRST` is an event's name where no step follows it.
#[test]
fn first_names_an_event_where_no_step_follows() {
    let (_d, db) = db(&[Event::new("a", T, "first"), Event::new("a", T + H, "second")]);
    let t = query(&db, "FUNNEL first -> second WITHIN 1d");
    assert_eq!(customers(&t), [1, 1]);
    assert_eq!(column(&t, "event")[0], &Cell::Str("first".into()));
    assert_eq!(
        customers(&query(&db, "FUNNEL FIRST first -> second WITHIN 1d")),
        [1, 1]
    );
}

/// HOLDING: every event of a chain has the step-1 event's value; the time to convert is that
/// of the held chain.
#[test]
fn holding_keeps_the_value_of_the_first_step() {
    let (_d, db) = db(&[
        at("web", "c", T, "visit"),
        at("mobile", "c", T + H, "purchase"),
        at("web", "c", T + 2 * H, "purchase"),
        at("web", "e", T, "visit"),
        at("mobile", "e", T + H, "purchase"),
    ]);
    let plain = query(&db, "FUNNEL visit -> purchase WITHIN 1d");
    assert_eq!(customers(&plain), [2, 2]);
    let held = query(&db, "FUNNEL visit -> purchase WITHIN 1d HOLDING channel");
    assert_eq!(customers(&held), [2, 1]);
    assert_eq!(column(&held, "median_time_to_convert_s")[1], &Cell::Float(7200.0));
}

/// With several values converting, a step's time is that of the chain whose step event comes
/// first (here mobile's, 9 minutes; web's purchase comes later).
#[test]
fn holding_times_come_from_the_earliest_step_event() {
    let (_d, db) = db(&[
        at("web", "d", T, "visit"),
        at("mobile", "d", T + M, "visit"),
        at("mobile", "d", T + 10 * M, "purchase"),
        at("web", "d", T + 30 * M, "purchase"),
    ]);
    let held = query(&db, "FUNNEL visit -> purchase WITHIN 1d HOLDING channel");
    assert_eq!(customers(&held), [1, 1]);
    assert_eq!(column(&held, "median_time_to_convert_s")[1], &Cell::Float(540.0));
}

/// Customer-level exclusions look at the longest held chains of every value together: web's
/// three-step chain is hit, so the customer leaves, although mobile's two-step chain is not.
#[test]
fn holding_with_customer_exclusions_judges_the_longest_chains_of_all_values() {
    let (_d, db) = db(&[
        at("web", "e", T, "a"),
        at("web", "e", T + H, "b"),
        Event::new("e", T + 2 * H, "x"),
        at("web", "e", T + 3 * H, "c"),
        at("mobile", "e", T + 5 * H, "a"),
        at("mobile", "e", T + 6 * H, "b"),
    ]);
    let q = "FUNNEL a -> b -> c WITHIN 1d EXCLUDE x BETWEEN 1 AND 3 HOLDING channel";
    assert_eq!(customers(&query(&db, q)), [0, 0, 0]);
    assert_eq!(customers(&query(&db, &format!("{q} EXCLUSION CHAIN"))), [1, 1, 0]);
}

/// Tied events are ordered by their HOLDING value, never by the order they were written:
/// mobile's add_to_cart comes first and breaks web's strict chain, whichever row came first.
#[test]
fn holding_orders_tied_events_by_the_held_value() {
    for order in [["web", "mobile"], ["mobile", "web"]] {
        let mut events = vec![at("web", "f", T, "visit")];
        events.extend(order.map(|ch| at(ch, "f", T + M, "add_to_cart")));
        let (_d, db) = db(&events);
        let q = "FUNNEL visit -> add_to_cart WITHIN 1h MODE STRICT HOLDING channel";
        assert_eq!(customers(&query(&db, q)), [1, 0], "{order:?}");
    }
}

/// EXPLAIN says when FIRST or HOLDING is what stops the customer.
#[test]
fn explain_names_first_and_holding() {
    let (_d, db) = db(&[
        at("web", "c", T, "visit"),
        at("mobile", "c", T + H, "purchase"),
        at("web", "c", T + 3 * D, "visit"),
        at("web", "c", T + 3 * D + H, "purchase"),
        at("web", "g", T, "visit"),
        at("mobile", "g", T + H, "purchase"),
        at("web", "k", T, "purchase"),
        at("web", "k", T + D, "visit"),
        at("web", "k", T + D + H, "purchase"),
    ]);
    let reason = |q: &str| {
        let t = query(&db, q);
        column(&t, "reason")[1].to_string()
    };
    // Relaxing the window alone would convert (the web purchase three days later).
    let why = reason("EXPLAIN FUNNEL FIRST visit -> purchase WITHIN 1d HOLDING channel FOR CUSTOMER 'c'");
    assert!(why.contains("window expired"), "{why}");
    let why = reason("EXPLAIN FUNNEL FIRST visit -> purchase WITHIN 1d FOR CUSTOMER 'c'");
    assert!(why.contains("first completed"), "{why}");
    let why = reason(
        "EXPLAIN FUNNEL FIRST visit -> purchase WITHIN 1d FROM '2026-02-03' TO '2026-03-01' FOR CUSTOMER 'c'",
    );
    assert!(why.contains("step 1 was not reached"), "{why}");
    let t = query(
        &db,
        "EXPLAIN FUNNEL FIRST visit -> purchase WITHIN 1d FROM '2026-02-03' TO '2026-03-01' FOR CUSTOMER 'c'",
    );
    assert!(
        column(&t, "reason")[0]
            .to_string()
            .contains("first `FIRST visit`"),
        "{t:?}"
    );
    let why = reason("EXPLAIN FUNNEL visit -> FIRST purchase WITHIN 1d FOR CUSTOMER 'k'");
    assert!(
        why.contains("only the customer's first `purchase` can fill step 2 (FIRST)"),
        "{why}"
    );
    let why = reason("EXPLAIN FUNNEL visit -> purchase WITHIN 2h HOLDING channel FOR CUSTOMER 'c'");
    assert!(why.contains("first completed"), "{why}");
    let t = query(
        &db,
        "EXPLAIN FUNNEL FIRST visit -> purchase WITHIN 2h HOLDING channel FOR CUSTOMER 'g'",
    );
    let why = column(&t, "reason")[1].to_string();
    assert!(
        why.contains("keeps `channel` the same") && why.contains("HOLDING"),
        "{why}"
    );
}

/// HOLDING takes one event property, once.
#[test]
fn holding_errors() {
    let (_d, db) = db(&[at("web", "a", T, "visit")]);
    let err = |q: &str| db.snapshot().query(q).unwrap_err().to_string();
    assert!(err("FUNNEL visit -> purchase WITHIN 1d HOLDING chanel").contains("channel"));
    assert!(
        err("FUNNEL visit -> purchase WITHIN 1d HOLDING channel HOLDING channel")
            .contains("HOLDING given twice")
    );
    let e = err("FUNNEL visit -> purchase WITHIN 1d HOLDING customer.plan");
    assert!(e.contains("HOLDING keeps an event property"), "{e}");
}

/// PERCENTILES: p25, p75 and p90 of the times from step 1, continuous as the median (DuckDB
/// `quantile_cont`): times of 1 h, 2 h, 3 h and 10 h give 1.75 h, 4.75 h and 7.9 h.
#[test]
fn percentiles_interpolate_between_ranks() {
    let mut events = Vec::new();
    for (k, hours) in [1, 2, 3, 10].into_iter().enumerate() {
        let customer = format!("p{k}");
        events.push(Event::new(customer.as_str(), T, "visit"));
        events.push(Event::new(customer.as_str(), T + hours * H, "purchase"));
    }
    let (_d, db) = db(&events);
    let t = query(&db, "FUNNEL visit -> purchase WITHIN 1d PERCENTILES");
    let at = |name: &str| column(&t, name).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        t.columns[5..10],
        [
            "median_time_to_convert_s",
            "mean_time_to_convert_s",
            "p25_time_to_convert_s",
            "p75_time_to_convert_s",
            "p90_time_to_convert_s"
        ]
    );
    assert_eq!(at("p25_time_to_convert_s"), [Cell::Null, Cell::Float(6300.0)]);
    assert_eq!(at("p75_time_to_convert_s"), [Cell::Null, Cell::Float(17100.0)]);
    let p90 = at("p90_time_to_convert_s");
    assert!(
        matches!(p90[1], Cell::Float(x) if (x - 28440.0).abs() < 1e-6),
        "{p90:?}"
    );
    assert_eq!(at("median_time_to_convert_s"), [Cell::Null, Cell::Float(9000.0)]);
    // One sample: every percentile is it; none: NULL. Without PERCENTILES, no such column.
    let (_d1, single) = self::db(&events[..2]);
    let one = query(&single, "FUNNEL visit -> purchase WITHIN 1d PERCENTILES");
    assert_eq!(column(&one, "p90_time_to_convert_s")[1], &Cell::Float(3600.0));
    let none = query(&db, "FUNNEL visit -> purchase WITHIN 1s PERCENTILES");
    assert_eq!(column(&none, "p25_time_to_convert_s")[1], &Cell::Null);
    let plain = query(&db, "FUNNEL visit -> purchase WITHIN 1d");
    assert!(!plain.columns.iter().any(|c| c.starts_with("p25")));
    let e = db
        .snapshot()
        .query("FUNNEL visit -> purchase WITHIN 1d PERCENTILES PERCENTILES")
        .unwrap_err();
    assert!(e.to_string().contains("PERCENTILES given twice"), "{e}");
}

/// `BY p1, p2`: one group per pair of values on the customer's first step-1 event, two group
/// columns; numbers are refused (a pair packs two strings or booleans).
#[test]
fn by_two_properties_groups_by_the_pair() {
    let (_d, db) = db(&[
        at("web", "a", T, "visit").with_prop("device", "phone"),
        at("web", "a", T + H, "purchase"),
        at("web", "b", T, "visit").with_prop("device", "desktop"),
        at("mobile", "c", T, "visit").with_prop("device", "phone"),
        at("mobile", "c", T + H, "purchase"),
        at("mobile", "d", T, "visit"),
        at("mobile", "d", T + D, "visit")
            .with_prop("device", "phone")
            .with_prop("n", 1),
    ]);
    let t = query(&db, "FUNNEL visit -> purchase WITHIN 1d BY channel, device");
    assert_eq!(t.columns[..3], ["group", "group2", "step"]);
    let got: Vec<String> = t
        .rows
        .iter()
        .map(|r| format!("{} {} {} {}", r[0], r[1], r[2], r[4]))
        .collect();
    assert_eq!(
        got,
        [
            "mobile (null) 1 1",
            "mobile (null) 2 0",
            "mobile phone 1 1",
            "mobile phone 2 1",
            "web desktop 1 1",
            "web desktop 2 0",
            "web phone 1 1",
            "web phone 2 1",
        ]
    );
    let e = db
        .snapshot()
        .query("FUNNEL visit -> purchase WITHIN 1d BY channel, n")
        .unwrap_err();
    assert!(e.to_string().contains("strings or booleans"), "{e}");
}
