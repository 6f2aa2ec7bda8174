//! Cases taken from PostHog's own test suites (events and expected counts are facts from
//! `posthog/hogql_queries/insights/funnels/test/*.py` and `…/retention/test/*.py`), run through
//! journeydb under its defaults, and where journeydb's default differs, under the option that
//! gives PostHog's answer (docs/QUERY.md, "Coming from PostHog, Mixpanel, Amplitude, ClickHouse").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, Sync};

/// 2021-05-02T00:00Z.
const T: i64 = 1_619_913_600_000_000;
const H: i64 = 3_600_000_000;

fn db(events: &[Event]) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(events).unwrap();
    (dir, db)
}

/// Customers per step (the `customers` column).
fn counts(db: &Db, q: &str) -> Vec<i64> {
    counts_at(db, q, "customers")
}

/// The integers of one column.
fn counts_at(db: &Db, q: &str, column: &str) -> Vec<i64> {
    let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let col = t.columns.iter().position(|c| c == column).unwrap();
    t.rows
        .iter()
        .map(|r| match r[col] {
            Cell::Int(n) => n,
            ref other => panic!("{other:?}"),
        })
        .collect()
}

/// The customers a drill-down lists, sorted.
fn ids(db: &Db, q: &str) -> Vec<String> {
    let t = db.snapshot().query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let col = t.columns.iter().position(|c| c == "customer").unwrap();
    let mut out: Vec<String> = t
        .rows
        .iter()
        .filter_map(|r| match &r[col] {
            Cell::Str(s) => Some(s.clone()),
            // An empty drill-down is one row with the total 0 and no customer.
            Cell::Null => None,
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// PostHog creates these events without a timestamp: each gets the time of its creation, so
/// they follow one another in the order written (here one second apart).
fn in_creation_order(journeys: &[(&str, &[&str])]) -> Vec<Event> {
    let names = journeys
        .iter()
        .flat_map(|(who, events)| events.iter().map(move |e| (*who, *e)));
    names
        .enumerate()
        .map(|(i, (who, event))| Event::new(who, T + i as i64 * 1_000_000, event))
        .collect()
}

const SIGNUP: &str = "user_signed_up";
const PAGEVIEW: &str = "pageview";
const INSIGHT: &str = "insight_viewed";

/// `test_funnel_unordered.py::test_basic_unordered_funnel`: [8, 5, 3]. Persons 6, 7 and 8 never
/// signed up; an unordered funnel counts them (step k reads "any k of the steps").
#[test]
fn basic_unordered_funnel() {
    let (_dir, db) = db(&in_creation_order(&[
        ("p1", &[SIGNUP]),
        ("p2", &[PAGEVIEW, SIGNUP]),
        ("p3", &[SIGNUP, PAGEVIEW, "blaah", INSIGHT]),
        ("p4", &[INSIGHT, PAGEVIEW, SIGNUP]),
        ("p5", &[PAGEVIEW, SIGNUP, "blaah", INSIGHT]),
        ("p6", &["blaah", INSIGHT]),
        ("p7", &[PAGEVIEW, "blaah"]),
        ("p8", &[INSIGHT, PAGEVIEW]),
    ]));
    let funnel = format!("FUNNEL {SIGNUP} -> {PAGEVIEW} -> {INSIGHT} WITHIN 14d MODE UNORDERED");
    assert_eq!(counts(&db, &funnel), vec![8, 5, 3]);
    assert_eq!(ids(&db, &format!("CUSTOMERS {funnel} STEP 1")).len(), 8);
    assert_eq!(
        ids(&db, &format!("CUSTOMERS {funnel} STEP 2")),
        ["p2", "p3", "p4", "p5", "p8"]
    );
    assert_eq!(
        ids(&db, &format!("CUSTOMERS {funnel} STEP 2 DROPPED")),
        ["p1", "p6", "p7"]
    );
    assert_eq!(
        ids(&db, &format!("CUSTOMERS {funnel} STEP 3")),
        ["p3", "p4", "p5"]
    );
    assert_eq!(
        ids(&db, &format!("CUSTOMERS {funnel} STEP 3 DROPPED")),
        ["p2", "p8"]
    );
}

/// `test_funnel_unordered.py::test_big_multi_step_unordered_funnel`: [8, 5, 3, 1].
#[test]
fn big_multi_step_unordered_funnel() {
    let (_dir, db) = db(&in_creation_order(&[
        ("p1", &[SIGNUP]),
        ("p2", &[PAGEVIEW, "crying"]),
        ("p3", &[SIGNUP, PAGEVIEW, "blaah", INSIGHT]),
        ("p4", &[INSIGHT, "crying", SIGNUP]),
        ("p5", &[PAGEVIEW, SIGNUP, "crying", INSIGHT]),
        ("p6", &["blaah", INSIGHT]),
        ("p7", &[PAGEVIEW, "blaah"]),
        ("p8", &[INSIGHT, PAGEVIEW]),
    ]));
    let funnel = format!("FUNNEL {SIGNUP} -> {PAGEVIEW} -> {INSIGHT} -> crying WITHIN 14d MODE UNORDERED");
    assert_eq!(counts(&db, &funnel), vec![8, 5, 3, 1]);
    assert_eq!(ids(&db, &format!("CUSTOMERS {funnel} STEP 4")), ["p5"]);
}

/// Issue 34's reproduction: a customer without a step-1 event still enters an unordered funnel,
/// with times in range and out of it, and the result is the same once the rows are sealed.
#[test]
fn unordered_funnel_needs_no_step_one_event() {
    let (_dir, db) = db(&[
        Event::new("p8", T, "iv").with_prop("src", "ad"),
        Event::new("p8", T + 1_000_000, "pv").with_prop("src", "mail"),
        Event::new("p9", T, "su").with_prop("src", "mail"),
        Event::new("p10", T - 30 * 24 * H, "pv").with_prop("src", "ad"),
    ]);
    let q = "FUNNEL su -> pv -> iv WITHIN 14d MODE UNORDERED FROM '2021-05-01' TO '2021-05-03'";
    assert_eq!(counts(&db, q), vec![2, 1, 0]);
    db.flush().unwrap();
    assert_eq!(counts(&db, q), vec![2, 1, 0]);
    // Grouped by the first in-range event matching any step.
    let by = db.snapshot().query(&format!("{q} BY src")).unwrap();
    let groups: Vec<(String, i64)> = by
        .rows
        .iter()
        .filter(|r| r[1] == Cell::Int(1))
        .map(|r| match (&r[0], &r[3]) {
            (Cell::Str(g), &Cell::Int(n)) => (g.clone(), n),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(groups, [("ad".to_owned(), 1), ("mail".to_owned(), 1)]);
}

/// `test_retention_query_runner.py::test_day_interval` (PostHog's default retention is
/// recurring): day cohorts of `$pageview` returning to `$pageview`, eleven days. Period 0 is the
/// cohort (PostHog's and Amplitude's "Day 0"); PostHog's `alias1` is `person1` (one person).
#[test]
fn retention_day_interval() {
    let day = |d: i64, hour: i64| 1_591_747_200_000_000 + d * 24 * H + hour * H; // 2020-06-10
    let visits = [
        ("person1", 0, 5),
        ("person1", 1, 5),
        ("person1", 2, 5),
        ("person1", 5, 5),
        ("person1", 5, 9),
        ("person1", 6, 5),
        ("person2", 1, 5),
        ("person2", 2, 5),
        ("person2", 3, 5),
        ("person2", 6, 5),
    ];
    let (_dir, db) = db(&visits
        .iter()
        .map(|&(who, d, hour)| Event::new(who, day(d, hour), PAGEVIEW))
        .collect::<Vec<_>>());
    let q = format!(
        "RETENTION {PAGEVIEW} RETURN {PAGEVIEW} PERIOD day PERIODS 10 RECURRING FROM '2020-06-10' TO '2020-06-21'"
    );
    let t = db.snapshot().query(&q).unwrap();
    let mut rows: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for r in &t.rows {
        if let (Cell::Str(cohort), &Cell::Int(n)) = (&r[0], &r[3])
            && cohort != "mean"
        {
            rows.entry(cohort.clone()).or_default().push(n);
        }
    }
    let padded = |cells: &[i64]| {
        let mut v = cells.to_vec();
        v.resize(11, 0);
        v
    };
    // PostHog's rows for the days with a cohort (days 4 and 7..10 have none; journeydb omits
    // empty cohorts).
    let want = [
        ("2020-06-10", padded(&[1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0])),
        ("2020-06-11", padded(&[2, 2, 1, 0, 1, 2, 0, 0, 0, 0])),
        ("2020-06-12", padded(&[2, 1, 0, 1, 2, 0, 0, 0, 0])),
        ("2020-06-13", padded(&[1, 0, 0, 1, 0, 0, 0, 0])),
        ("2020-06-15", padded(&[1, 1, 0, 0, 0, 0])),
        ("2020-06-16", padded(&[2, 0, 0, 0, 0])),
    ];
    let want: std::collections::BTreeMap<String, Vec<i64>> =
        want.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(rows, want, "{}", t.to_text());
}

/// Period 0 under both definitions, where they differ: signed up, came back later.
#[test]
fn retention_period_zero_is_the_cohort_unless_asked_otherwise() {
    let (_dir, db) = db(&[
        Event::new("a", T, SIGNUP),
        Event::new("a", T + 25 * H, PAGEVIEW),
        Event::new("b", T, SIGNUP),
        Event::new("b", T + H, PAGEVIEW).with_prop("x", 1i64),
    ]);
    let q = format!("RETENTION {SIGNUP} RETURN {PAGEVIEW} PERIOD day PERIODS 1");
    let customers = |q: &str| counts_at(&db, q, "customers");
    // Cohort rows, then the mean rows (the mean of period 1 has no complete cell: 0).
    assert_eq!(customers(&q), [2, 1, 2, 0]);
    assert_eq!(customers(&format!("{q} PERIOD_ZERO_RETURNS")), [1, 1, 1, 0]);
    // The drill-down into period 0 lists the cohort (or those who returned in it).
    assert_eq!(
        ids(&db, &format!("CUSTOMERS {q} CELL '2021-05-02', 0")),
        ["a", "b"]
    );
    assert_eq!(
        ids(
            &db,
            &format!("CUSTOMERS {q} PERIOD_ZERO_RETURNS CELL '2021-05-02', 0")
        ),
        ["b"]
    );
    // The same through the scan (a WHERE every event passes) as from the bitmaps.
    db.flush().unwrap();
    assert_eq!(customers(&format!("{q} WHERE x IS NULL OR x = 1")), [2, 1, 2, 0]);
    assert_eq!(
        customers(&format!("{q} PERIOD_ZERO_RETURNS WHERE x IS NULL OR x = 1")),
        [1, 1, 1, 0]
    );
}

/// `conversion_time_cases.py::test_funnel_step_conversion_times`: PostHog's per-step times are
/// from the previous step (journeydb's `…_time_from_previous_s`); journeydb's
/// `…_time_to_convert_s` are from step 1.
#[test]
fn funnel_step_conversion_times() {
    let at = |day: i64, hour: i64| 1_577_836_800_000_000 + (day - 1) * 24 * H + hour * H; // 2020-01-01
    let (_dir, db) = db(&[
        Event::new("person1", at(1, 12), "sign_up").with_prop("x", 1i64),
        Event::new("person1", at(1, 13), "play_movie"),
        Event::new("person1", at(1, 15), "buy"),
        Event::new("person2", at(2, 14), "sign_up"),
        Event::new("person2", at(2, 16), "play_movie"),
        Event::new("person3", at(2, 14), "sign_up"),
        Event::new("person3", at(2, 16), "play_movie"),
        Event::new("person3", at(2, 17), "buy"),
    ]);
    let q = "FUNNEL sign_up -> play_movie -> buy WITHIN 7d FROM '2020-01-01' TO '2020-01-09'";
    let t = db.snapshot().query(q).unwrap();
    let column = |name: &str| {
        let col = t.columns.iter().position(|c| c == name).unwrap();
        t.rows.iter().map(|r| r[col].clone()).collect::<Vec<_>>()
    };
    let seconds = |v: f64| Cell::Float(v);
    assert_eq!(
        column("mean_time_from_previous_s"),
        [Cell::Null, seconds(6000.0), seconds(5400.0)]
    );
    assert_eq!(
        column("median_time_from_previous_s"),
        [Cell::Null, seconds(7200.0), seconds(5400.0)]
    );
    assert_eq!(
        column("median_time_to_convert_s"),
        [Cell::Null, seconds(7200.0), seconds(10800.0)]
    );
    // Through the general path (a WHERE every event passes) as through the fast kernel.
    let general = db
        .snapshot()
        .query(&format!("{q} WHERE x IS NULL OR x = 1"))
        .unwrap();
    assert_eq!(general.rows, t.rows);
}

/// A person and its events: (event, hour, minute) on 2021-05-01.
type Journey = (&'static str, &'static [(&'static str, i64, i64)]);

/// 2021-05-01 at `hour:minute` UTC.
fn may_first(hour: i64, minute: i64) -> i64 {
    T - 24 * H + hour * H + minute * 60_000_000
}

/// The three people of `test_funnel.py::test_advanced_funnel_exclusions_between_steps`.
fn exclusion_people() -> Vec<Event> {
    let journeys: [Journey; 3] = [
        (
            "person1",
            &[
                (SIGNUP, 1, 0),
                (PAGEVIEW, 2, 0),
                ("x", 3, 0),
                (INSIGHT, 4, 0),
                ("x", 4, 30),
                ("invite", 5, 0),
                ("x", 5, 30),
                ("pageview2", 6, 0),
            ],
        ),
        (
            "person2",
            &[
                (SIGNUP, 1, 0),
                (PAGEVIEW, 2, 0),
                (INSIGHT, 4, 0),
                ("x", 4, 30),
                ("invite", 5, 0),
                ("x", 5, 30),
                ("pageview2", 6, 0),
            ],
        ),
        (
            "person3",
            &[
                (SIGNUP, 1, 0),
                ("x", 1, 30),
                (PAGEVIEW, 2, 0),
                (INSIGHT, 4, 0),
                ("invite", 5, 0),
                ("x", 5, 30),
                ("pageview2", 6, 0),
            ],
        ),
    ];
    journey_events(&journeys)
}

/// The events of `journeys`.
fn journey_events(journeys: &[Journey]) -> Vec<Event> {
    journeys
        .iter()
        .flat_map(|(who, events)| {
            events
                .iter()
                .map(move |&(e, h, m)| Event::new(*who, may_first(h, m), e))
        })
        .collect()
}

/// `test_funnel.py::test_advanced_funnel_exclusions_between_steps` (PostHog's 0-based
/// `funnel_from_step`/`funnel_to_step` are journeydb's 1-based BETWEEN i + 1 AND j + 1): the
/// customer leaves every step, and `EXCLUSION CHAIN` keeps journeydb's chain-level form.
#[test]
fn advanced_funnel_exclusions_between_steps() {
    let (_dir, db) = db(&exclusion_people());
    let funnel = format!("FUNNEL {SIGNUP} -> {PAGEVIEW} -> {INSIGHT} -> invite -> pageview2 WITHIN 14d");
    let cases: [((usize, usize), &[&str]); 5] = [
        ((1, 2), &["person1", "person2"]),
        ((2, 3), &["person2", "person3"]),
        ((3, 4), &["person3"]),
        ((4, 5), &[]),
        ((2, 4), &["person3"]),
    ];
    for ((from, to), kept) in cases {
        let q = format!("{funnel} EXCLUDE x BETWEEN {from} AND {to}");
        let n = kept.len() as i64;
        assert_eq!(counts(&db, &q), [n, n, n, n, n], "{q}");
        assert_eq!(ids(&db, &format!("CUSTOMERS {q} STEP 1")), kept, "{q}");
    }
    // The chain form: every person reaches step 4 before the last exclusion clause's window.
    let q = format!("{funnel} EXCLUDE x BETWEEN 4 AND 5 EXCLUSION CHAIN");
    assert_eq!(counts(&db, &q), [3, 3, 3, 3, 0]);
    // The same from a sealed segment.
    db.flush().unwrap();
    let q = format!("{funnel} EXCLUDE x BETWEEN 3 AND 4");
    assert_eq!(counts(&db, &q), [1, 1, 1, 1, 1]);
}

/// `test_funnel.py::test_advanced_funnel_multiple_exclusions_between_steps`.
#[test]
fn advanced_funnel_multiple_exclusions_between_steps() {
    let journeys: [Journey; 4] = [
        (
            "person1",
            &[
                (SIGNUP, 1, 0),
                ("x", 2, 0),
                (PAGEVIEW, 3, 0),
                (INSIGHT, 4, 0),
                ("y", 4, 30),
                ("invite", 5, 0),
                ("pageview2", 6, 0),
            ],
        ),
        (
            "person2",
            &[
                (SIGNUP, 1, 0),
                ("y", 1, 30),
                (PAGEVIEW, 2, 0),
                (INSIGHT, 4, 0),
                ("y", 4, 30),
                ("invite", 5, 0),
                ("x", 5, 30),
                ("pageview2", 6, 0),
            ],
        ),
        (
            "person3",
            &[
                (SIGNUP, 1, 0),
                ("x", 1, 30),
                (PAGEVIEW, 2, 0),
                (INSIGHT, 4, 0),
                ("invite", 5, 0),
                ("x", 5, 30),
                ("pageview2", 6, 0),
            ],
        ),
        (
            "person4",
            &[
                (SIGNUP, 1, 0),
                (PAGEVIEW, 2, 0),
                (INSIGHT, 4, 0),
                ("invite", 5, 0),
                ("pageview2", 6, 0),
            ],
        ),
    ];
    let events = journey_events(&journeys);
    let (_dir, db) = db(&events);
    let funnel = format!("FUNNEL {SIGNUP} -> {PAGEVIEW} -> {INSIGHT} -> invite -> pageview2 WITHIN 14d");
    for clauses in [
        "EXCLUDE x BETWEEN 1 AND 2 EXCLUDE y BETWEEN 3 AND 4",
        "EXCLUDE x BETWEEN 1 AND 2 EXCLUDE y BETWEEN 1 AND 2",
        "EXCLUDE x BETWEEN 1 AND 5 EXCLUDE y BETWEEN 1 AND 5",
    ] {
        let q = format!("{funnel} {clauses}");
        assert_eq!(counts(&db, &q), [1, 1, 1, 1, 1], "{q}");
        assert_eq!(ids(&db, &format!("CUSTOMERS {q} STEP 1")), ["person4"], "{q}");
    }
}

/// `test_funnel.py::test_funnel_exclusion_multiple_possible_no_end_event3`: the excluded event
/// comes after step 1, inside the window, and step 2 never happens: PostHog counts nobody.
#[test]
fn exclusion_without_the_end_event_removes_the_customer() {
    let (_dir, early) = db(&[
        Event::new("user_one", may_first(0, 0), "step_one"),
        Event::new("user_one", may_first(0, 0) + 1_000_000, "step_one"),
        Event::new("user_one", may_first(0, 0) + 2_000_000, "exclusion"),
    ]);
    let q = "FUNNEL step_one -> step_two WITHIN 10s EXCLUDE exclusion";
    assert_eq!(counts(&early, q), [0, 0]);
    assert_eq!(counts(&early, &format!("{q} EXCLUSION CHAIN")), [1, 0]);
    // Outside the window (> 10 s after both starts) the exclusion no longer counts.
    let (_dir2, late) = db(&[
        Event::new("user_one", may_first(0, 0), "step_one"),
        Event::new("user_one", may_first(0, 0) + 11_000_000, "exclusion"),
    ]);
    assert_eq!(counts(&late, q), [1, 0]);
    let explain = late
        .snapshot()
        .query("EXPLAIN FUNNEL step_one -> step_two WITHIN 10s EXCLUDE exclusion FOR CUSTOMER 'user_one'")
        .unwrap();
    assert_eq!(explain.rows[0][2], Cell::Str("reached".into()));
    let explain = early
        .snapshot()
        .query(&format!("EXPLAIN {q} FOR CUSTOMER 'user_one'"))
        .unwrap();
    assert_eq!(
        explain.rows[0][2],
        Cell::Str("excluded".into()),
        "{}",
        explain.to_text()
    );
}

/// `test_funnel.py::test_funnel_exclusions_full_window`.
#[test]
fn funnel_exclusions_full_window() {
    let (_dir, db) = db(&[
        Event::new("person1", may_first(1, 0), SIGNUP),
        Event::new("person1", may_first(2, 0), "paid"),
        Event::new("person2", may_first(3, 0), SIGNUP),
        Event::new("person2", may_first(3, 30), "x_1_name_with_numbers_2"),
        Event::new("person2", may_first(4, 0), "paid"),
        Event::new("person3", may_first(5, 0), SIGNUP),
        Event::new("person3", may_first(6, 0), "paid"),
    ]);
    let q = format!("FUNNEL {SIGNUP} -> paid WITHIN 14d EXCLUDE x_1_name_with_numbers_2");
    assert_eq!(counts(&db, &q), [2, 2]);
    assert_eq!(ids(&db, &format!("CUSTOMERS {q} STEP 2")), ["person1", "person3"]);
}
