//! Named cases of `FUNNEL … PERIOD p` (docs/QUERY.md, "FUNNEL", conversion over time): the
//! bucket edges, a customer entering in two buckets, breakdowns, zones and the forms that
//! refuse it. The random cases are in tests/queries.rs (`Q::FunnelPeriod`).

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
    db.commit(events).unwrap();
    (dir, db)
}

fn query(db: &Db, q: &str) -> Table {
    db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// (bucket, step, customers) of every row.
fn counts(t: &Table) -> Vec<(String, i64, i64)> {
    let col = |name: &str| t.columns.iter().position(|c| c == name).unwrap();
    let (b, s, c) = (col("bucket"), col("step"), col("customers"));
    t.rows
        .iter()
        .map(|r| match (&r[b], &r[s], &r[c]) {
            (Cell::Str(b), Cell::Int(s), Cell::Int(c)) => (b.clone(), *s, *c),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn row(bucket: &str, step: i64, customers: i64) -> (String, i64, i64) {
    (bucket.to_owned(), step, customers)
}

/// A customer counts in each bucket holding one of its step-1 events, at the level of the
/// chains starting there: `a` visits in two weeks and buys only after the second visit.
#[test]
fn a_customer_counts_in_each_bucket_it_enters() {
    let (_d, db) = db(&[
        Event::new("a", T + D, "visit"),
        Event::new("a", T + 8 * D, "visit"),
        Event::new("a", T + 9 * D, "purchase"),
        Event::new("b", T + 2 * D, "visit"),
        Event::new("b", T + 2 * D + H, "purchase"),
    ]);
    let t = query(&db, "FUNNEL visit -> purchase WITHIN 2d PERIOD week");
    assert_eq!(t.columns[0], "bucket");
    assert_eq!(
        counts(&t),
        [
            row("2026-02-02", 1, 2),
            row("2026-02-02", 2, 1),
            row("2026-02-09", 1, 1),
            row("2026-02-09", 2, 1)
        ]
    );
    // Each bucket is the funnel FROM its start TO its end.
    let week = query(
        &db,
        "FUNNEL visit -> purchase WITHIN 2d FROM '2026-02-09' TO '2026-02-16'",
    );
    assert_eq!(t.rows[2][1..], week.rows[0][..]);
    assert_eq!(t.rows[3][1..], week.rows[1][..]);
}

/// A chain whose step-1 event is the bucket's last instant belongs to that bucket, and its
/// later steps may lie past the bucket's end up to WITHIN (inclusive); a step-1 event at the
/// next bucket's first instant starts that bucket's chains.
#[test]
fn a_chain_belongs_to_the_bucket_of_its_first_event() {
    let (_d, db) = db(&[
        Event::new("a", T + 7 * D - 1, "visit"),
        Event::new("a", T + 7 * D - 1 + H, "purchase"),
        Event::new("b", T + 7 * D, "visit"),
        Event::new("b", T + 7 * D + H, "purchase"),
        Event::new("c", T + 7 * D - 1, "visit"),
        Event::new("c", T + 7 * D + H, "purchase"),
    ]);
    let t = query(&db, "FUNNEL visit -> purchase WITHIN 1h PERIOD week");
    assert_eq!(
        counts(&t),
        [
            row("2026-02-02", 1, 2),
            row("2026-02-02", 2, 1),
            row("2026-02-09", 1, 1),
            row("2026-02-09", 2, 1)
        ]
    );
}

/// `FROM … TO …` cuts the first and last buckets: an entry before FROM counts nowhere, and
/// every bucket of the range is listed (zeros where nobody entered).
#[test]
fn the_range_cuts_the_buckets_and_empty_buckets_are_listed() {
    let (_d, db) = db(&[
        Event::new("a", T + 2 * D, "visit"),
        Event::new("a", T + 2 * D + H, "purchase"),
        Event::new("b", T + 4 * D, "visit"),
        Event::new("b", T + 4 * D + H, "purchase"),
    ]);
    let t = query(
        &db,
        "FUNNEL visit -> purchase WITHIN 1d PERIOD day FROM '2026-02-04T12:00:00Z' TO '2026-02-07'",
    );
    assert_eq!(
        counts(&t),
        [
            row("2026-02-04", 1, 0),
            row("2026-02-04", 2, 0),
            row("2026-02-05", 1, 0),
            row("2026-02-05", 2, 0),
            row("2026-02-06", 1, 1),
            row("2026-02-06", 2, 1),
        ]
    );
    // No customer: no rate.
    assert_eq!(t.rows[0][4], Cell::Null);
}

/// Buckets follow the zone and WEEK START: Sunday 2026-02-08 23:30 UTC is Monday in Berlin.
#[test]
fn buckets_follow_the_zone_and_the_week_start() {
    let (_d, db) = db(&[
        Event::new("a", T + 7 * D - 30 * M, "visit"),
        Event::new("a", T + 7 * D, "purchase"),
    ]);
    let weeks = |extra: &str| {
        counts(&query(
            &db,
            &format!("FUNNEL visit -> purchase WITHIN 1h PERIOD week {extra}"),
        ))
        .into_iter()
        .filter(|r| r.2 > 0)
        .map(|r| r.0)
        .collect::<Vec<_>>()
    };
    assert_eq!(weeks(""), ["2026-02-02", "2026-02-02"]);
    assert_eq!(weeks("TZ 'Europe/Berlin'"), ["2026-02-09", "2026-02-09"]);
    assert_eq!(weeks("WEEK START sunday"), ["2026-02-08", "2026-02-08"]);
}

/// With BY, the customer's group in a bucket is the value on its first step-1 event in that
/// bucket, and every bucket lists every value seen in any bucket.
#[test]
fn by_groups_within_each_bucket() {
    let (_d, db) = db(&[
        Event::new("a", T + D, "visit").with_prop("channel", "web"),
        Event::new("a", T + 8 * D, "visit").with_prop("channel", "mobile"),
        Event::new("a", T + 8 * D + H, "purchase"),
    ]);
    let t = query(&db, "FUNNEL visit -> purchase WITHIN 1d PERIOD week BY channel");
    assert_eq!(t.columns[..3], ["bucket", "group", "step"]);
    let got: Vec<(String, String, i64)> = t
        .rows
        .iter()
        .map(|r| {
            (
                r[0].to_string(),
                r[1].to_string(),
                if let Cell::Int(n) = r[4] { n } else { -1 },
            )
        })
        .collect();
    let want = [
        ("2026-02-02", "mobile", 0),
        ("2026-02-02", "mobile", 0),
        ("2026-02-02", "web", 1),
        ("2026-02-02", "web", 0),
        ("2026-02-09", "mobile", 1),
        ("2026-02-09", "mobile", 1),
        ("2026-02-09", "web", 0),
        ("2026-02-09", "web", 0),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
    assert_eq!(got, want);
}

/// The forms that take one set of customers refuse PERIOD, pointing at its period; PERIOD
/// twice is an error; too many buckets is an error, not a flood.
#[test]
fn forms_without_period_refuse_it() {
    let (_d, db) = db(&[Event::new("a", T, "visit")]);
    let err = |q: &str| db.snapshot().query(q).unwrap_err().to_string();
    let e = err("CUSTOMERS FUNNEL visit -> purchase WITHIN 1d PERIOD week STEP 2");
    assert!(
        e.contains("CUSTOMERS of a funnel takes no PERIOD (at bytes 52..56)"),
        "{e}"
    );
    let e = err("EXPLAIN FUNNEL visit -> purchase WITHIN 1d PERIOD week FOR CUSTOMER 'a'");
    assert!(e.contains("EXPLAIN of a funnel takes no PERIOD"), "{e}");
    let e = err("FUNNEL visit -> purchase WITHIN 1d PERIOD week PERIOD day");
    assert!(e.contains("PERIOD given twice"), "{e}");
    let e = err("FUNNEL visit -> purchase WITHIN 1d PERIOD fortnight");
    assert!(e.contains("expected a period"), "{e}");
    let e = err("FUNNEL visit -> purchase WITHIN 1d PERIOD hour FROM '1900-01-01' TO '2100-01-01'");
    assert!(e.contains("more than"), "{e}");
    let e = err("FUNNEL visit -> purchase WITHIN 1d WEEK START sunday");
    assert!(e.contains("WEEK START"), "{e}");
}
