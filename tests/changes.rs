//! CHANGES (docs/QUERY.md) against its reference (tests/common/changes.rs) on random data with
//! tied timestamps, several segments, unflushed rows, time-ordered arrival, time zones, WHERE
//! and TOP; named cases worked out by hand: a customer in two groups counts half in each, a
//! mean's change splits into rate and mix effects, and the index shortcuts give the scan's
//! answer; errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, Sync, Table};
use proptest::prelude::*;

mod common;
use common::changes::{ChangesQ, changes_ref};
use common::queries::*;
use common::reference::*;

fn changes_q() -> impl Strategy<Value = ChangesQ> {
    (
        proptest::sample::select(vec![
            "count", "uniq", "wau", "sum(amt)", "avg(amt)", "min(amt)", "p50(amt)",
        ]),
        proptest::option::of(step_q()),
        proptest::sample::select(vec!["hour", "day", "week", "week_sunday", "month"]),
        proptest::option::of(1usize..3),
        common(),
    )
        .prop_map(|(agg, of, period, top, c)| ChangesQ {
            agg,
            of,
            period: if agg == "wau" { "day" } else { period },
            top,
            c,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn changes_equal_the_reference(d in data(), q in changes_q()) {
        let (_dir, db, evs) = load(&d);
        let text = q.text();
        let got = db.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let want = changes_ref(&q, &evs);
        same(&got, &want).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        // Where the total changed, the contributions of a whole bucket add up to 1.
        if q.top.is_none() && !matches!(q.agg, "min(amt)" | "p50(amt)") {
            let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
            for row in &got.rows {
                if let Cell::Float(part) = row[5] {
                    *sums.entry(row[0].to_string()).or_default() += part;
                }
            }
            for (bucket, sum) in sums {
                prop_assert!((sum - 1.0).abs() < 1e-9, "{text}: contributions of {bucket} sum to {sum}");
            }
        }
    }
}

const DAY: i64 = 86_400_000_000;
/// 2026-03-02T00:00Z, a Monday.
const MONDAY: i64 = 1_772_409_600_000_000;

fn event(customer: &str, day: i64, channel: &str, amount: f64) -> Event {
    Event::new(customer, MONDAY + day * DAY + H, "buy")
        .with_prop("channel", channel)
        .with_prop("amount", amount)
}

/// Two days: on day 0, `a` buys on web; on day 1, `a` buys on web and on app, `b` on app.
/// Day 1's 2 customers: `a` counts ½ in web and ½ in app, `b` 1 in app: web's share goes
/// 1 → ½ (−½), app's 0 → 1½ (+1½), of a total change of +1: contributions −0.5 and 1.5.
fn two_groups(flush: bool) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(&[event("a", 0, "web", 10.0)]).unwrap();
    if flush {
        db.flush().unwrap();
    }
    db.commit(&[
        event("a", 1, "web", 20.0),
        event("a", 1, "app", 40.0),
        event("b", 1, "app", 60.0),
    ])
    .unwrap();
    if flush {
        db.flush().unwrap();
    }
    (dir, db)
}

fn rows(t: &Table) -> Vec<Vec<String>> {
    t.rows
        .iter()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect()
}

#[test]
fn a_customer_in_two_groups_counts_a_share_in_each() {
    for flush in [false, true] {
        let (_dir, db) = two_groups(flush);
        // FROM on day boundaries without OF or WHERE: the value index's shortcut answers when
        // the rows are sealed, the scan when they are not; both split `a` in halves.
        let got = db
            .query("CHANGES uniq PERIOD day BY channel FROM '2026-03-03' TO '2026-03-04'")
            .unwrap();
        assert_eq!(
            rows(&got),
            [
                ["2026-03-03", "app", "2", "0", "2", "1.5", "1"],
                ["2026-03-03", "web", "1", "1", "0", "-0.5", "1"],
            ],
            "flushed: {flush}"
        );
        // The same through the scan (OF forces it).
        let scanned = db
            .query("CHANGES uniq OF buy PERIOD day BY channel FROM '2026-03-03' TO '2026-03-04'")
            .unwrap();
        assert_eq!(rows(&scanned), rows(&got));
    }
}

/// Means: day 0 web avg 10 (1 value); day 1 web avg 20 (1 of 3 values), app avg 50 (2 of 3).
/// Total 10 → 40 (+30). Web: w 1 → ⅓, a 10 → 20: rate ⅔·10 = 6⅔, mix (15 − 25)·(−⅔) = 6⅔,
/// part 13⅓ (0.4444 of 30). App (new, mean 50 both sides): mix (50 − 25)·⅔ = 16⅔ (0.5556).
#[test]
fn a_mean_splits_into_rate_and_mix() {
    let (_dir, db) = two_groups(true);
    let got = db
        .query("CHANGES avg(amount) PERIOD day BY channel FROM '2026-03-03' TO '2026-03-04'")
        .unwrap();
    let contribution = |group: &str| match got
        .rows
        .iter()
        .find(|r| r[1] == Cell::Str(group.into()))
        .map(|r| &r[5])
    {
        Some(Cell::Float(part)) => *part,
        other => panic!("{group}: {other:?}"),
    };
    assert!(
        (contribution("web") - 40.0 / 90.0).abs() < 1e-12,
        "{}",
        got.to_text()
    );
    assert!(
        (contribution("app") - 50.0 / 90.0).abs() < 1e-12,
        "{}",
        got.to_text()
    );
    assert_eq!(got.rows[0][6], Cell::Float(30.0));
}

#[test]
fn top_keeps_the_largest_changes_of_each_bucket() {
    let (_dir, db) = two_groups(false);
    let got = db.query("CHANGES count PERIOD day BY channel TOP 1").unwrap();
    // Day 0 (against the empty day before): web +1; day 1: app +2 outranks web's 0.
    assert_eq!(
        rows(&got),
        [
            ["2026-03-02", "web", "1", "0", "1", "1", "1"],
            ["2026-03-03", "app", "2", "0", "2", "1", "2"],
        ]
    );
}

#[test]
fn errors_say_what_is_missing() {
    let (_dir, db) = two_groups(false);
    let no_by = db.query("CHANGES count PERIOD day").unwrap_err().to_string();
    assert!(no_by.contains("CHANGES needs BY"), "{no_by}");
    let cohort = db
        .query("CHANGES count PERIOD day BY channel BY COHORT x")
        .unwrap_err()
        .to_string();
    assert!(cohort.contains("BY COHORT"), "{cohort}");
    let wau = db
        .query("CHANGES wau PERIOD week BY channel")
        .unwrap_err()
        .to_string();
    assert!(wau.contains("PERIOD day"), "{wau}");
}
