//! Cohorts (issue 27 §3): customer sets against their reference (tests/common/cohort.rs) on
//! random data with tied timestamps, several segments and unflushed rows; `WHERE CUSTOMER IN`
//! against the same statements run on a database holding only the admitted customers; and
//! named cases for durability, static cohorts, FORGET and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryOptions, Stage, Sync, Table};
use proptest::prelude::*;
use std::collections::BTreeSet;

mod common;
use common::cohort::{SetQ, members};
use common::reference::{Ev, H};

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;

/// (customer, quarter-hour, name, channel is x, stage)
type Row = (usize, i64, &'static str, bool, Option<Stage>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..8,
            0i64..200,
            proptest::sample::select(vec!["a", "b", "c"]),
            any::<bool>(),
            proptest::option::weighted(
                0.4,
                proptest::sample::select(vec![
                    Stage::Awareness,
                    Stage::Consideration,
                    Stage::Purchase,
                    Stage::Retention,
                ]),
            ),
        ),
        0..45,
    )
}

fn leaf() -> impl Strategy<Value = SetQ> {
    prop_oneof![
        (
            proptest::sample::select(vec!["a", "b", "c"]),
            any::<bool>(),
            proptest::option::of(1u64..4),
            proptest::option::of((1i64..40).prop_map(|q| q * H / 4)),
            proptest::option::of(
                (0i64..150, 1i64..200).prop_map(|(a, len)| (T0 + a * H / 4, T0 + (a + len) * H / 4))
            ),
        )
            .prop_map(|(name, where_x, at_least, within_us, range)| SetQ::Did {
                name,
                where_x,
                at_least,
                within_us,
                range,
            }),
        (any::<bool>(), proptest::sample::select(vec!["a", "b", "c"]))
            .prop_map(|(last, name)| SetQ::Edge { last, name }),
        proptest::sample::select(vec![Stage::Awareness, Stage::Purchase, Stage::Retention])
            .prop_map(SetQ::Stage),
        Just(SetQ::Cohort("base", Box::new(base()))),
        (
            proptest::sample::select(vec![("a", "b"), ("b", "c"), ("a", "a")]),
            proptest::sample::select(vec![1i64, 6]),
            1usize..3,
            any::<bool>(),
        )
            .prop_map(|((first, second), hours, step, dropped)| SetQ::FunnelStep {
                first,
                second,
                hours,
                step,
                dropped: dropped && step == 2,
            }),
    ]
}

/// The cohort every generated set may name: `base`.
fn base() -> SetQ {
    SetQ::Did {
        name: "b",
        where_x: false,
        at_least: Some(2),
        within_us: None,
        range: None,
    }
}

fn set() -> impl Strategy<Value = SetQ> {
    leaf().prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| SetQ::Not(Box::new(s))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| SetQ::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| SetQ::Or(Box::new(a), Box::new(b))),
        ]
    })
}

/// The rows committed one by one (timestamps tie on the quarter-hour), flushed every
/// `flush_every`; plus customer `s0`'s two `edge` events, before and after everything, so
/// that the data's time range is the same whichever customers a filter admits.
fn events(rows: &[Row]) -> Vec<Ev> {
    let mut evs = vec![Ev {
        cust: "s0".into(),
        ts: T0 - 10 * H,
        seq: 0,
        name: "edge".into(),
        stage: None,
        ch: Some("x".into()),
        amt: Some(1.0),
    }];
    for (i, &(customer, quarter, name, x, stage)) in rows.iter().enumerate() {
        evs.push(Ev {
            cust: format!("c{customer}"),
            ts: T0 + quarter * H / 4,
            seq: i + 1,
            name: name.into(),
            stage,
            ch: Some(if x { "x" } else { "y" }.into()),
            amt: Some(quarter as f64),
        });
    }
    evs.push(Ev {
        cust: "s0".into(),
        ts: T0 + 80 * H,
        seq: rows.len() + 1,
        name: "edge".into(),
        stage: None,
        ch: Some("x".into()),
        amt: Some(1.0),
    });
    evs
}

fn load(evs: &[Ev], flush_every: usize) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    for (i, e) in evs.iter().enumerate() {
        let mut event = Event::new(e.cust.clone(), e.ts, e.name.clone());
        event.stage = e.stage;
        if let Some(ch) = &e.ch {
            event = event.with_prop("ch", ch.as_str());
        }
        if let Some(amt) = e.amt {
            event = event.with_prop("amt", amt);
        }
        db.commit(&[event]).unwrap();
        if (i + 1) % flush_every == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

/// The external ids a `CUSTOMERS …` table lists.
fn listed(t: &Table) -> BTreeSet<String> {
    t.rows
        .iter()
        .filter_map(|r| match &r[1] {
            Cell::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn query(db: &Db, text: &str) -> Result<Table, TestCaseError> {
    db.query(text)
        .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))
}

/// Statements of every kind, `{w}` where the statement's own WHERE goes (explicit ranges where
/// the statement's default would read the data's range, so that both databases bucket alike).
const STATEMENTS: [&str; 20] = [
    "FUNNEL ANY -> b WITHIN 2h {w}",
    "FUNNEL a -> b -> c WITHIN 6h {w}",
    "FUNNEL a -> b WITHIN 3h MODE STRICT {w}",
    "RETENTION a RETURN b PERIOD day PERIODS 3 {w}",
    "RETENTION ANY RETURN b PERIOD day PERIODS 2 RECURRING ON_OR_AFTER {w}",
    "TREND uniq PERIOD day {w}",
    "TREND uniq PERIOD day BY ch {w}",
    "CHANGES uniq PERIOD day BY ch {w}",
    "TREND count OF a PERIOD hour FROM '2026-03-05' TO '2026-03-06' {w}",
    "TREND sum(amt) PERIOD day BY ch {w}",
    "LIFECYCLE OF a OR b PERIOD day {w}",
    "STICKINESS OF ANY PERIOD day {w}",
    "STICKINESS OF a OR c PERIOD day {w}",
    "HEATMAP OF a OR b TZ 'America/New_York' {w}",
    "LIFECYCLE OF STAGE purchase PERIOD week {w}",
    "STAGES PERIOD day {w}",
    "TRANSITIONS {w}",
    "TOP CUSTOMERS BY count LIMIT 20 {w}",
    "CUSTOMERS FUNNEL a -> b WITHIN 1d {w} STEP 2",
    "CUSTOMERS IN STAGE purchase {w}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    /// A cohort's members (dynamic and static, and through `IN` of another) equal the
    /// reference set, on a database of several segments and unflushed rows.
    #[test]
    fn cohort_members_equal_reference(
        rows in rows(),
        flush_every in 1usize..15,
        sets in proptest::collection::vec(set(), 1..4),
    ) {
        let evs = events(&rows);
        let (_dir, db) = load(&evs, flush_every);
        query(&db, &format!("CREATE COHORT base AS {}", base().text()))?;
        for (k, set) in sets.iter().enumerate() {
            let want = members(set, &evs);
            for kind in ["", " STATIC"] {
                let name = format!("s{k}{}", kind.trim().to_lowercase());
                let created = query(&db, &format!("CREATE COHORT {name}{kind} AS {}", set.text()))?;
                prop_assert_eq!(&created.rows[0][2], &Cell::Int(want.len() as i64), "{}", set.text());
                let got = listed(&query(&db, &format!("CUSTOMERS IN COHORT {name} LIMIT 1000"))?);
                prop_assert_eq!(&got, &want, "{}: {}", name, set.text());
            }
            // One worker scans what two do.
            let one = db.query_with(&format!("CUSTOMERS IN COHORT s{k} LIMIT 1000"),
                &QueryOptions { threads: 1, ..Default::default() }).unwrap();
            prop_assert_eq!(listed(&one), want);
        }
    }

    /// `WHERE CUSTOMER [NOT] IN c` gives every statement the answer it gives on a database
    /// holding only the admitted customers' events (written in the same order and flushes).
    #[test]
    fn cohort_filter_equals_filtered_database(
        rows in rows(),
        flush_every in 1usize..15,
        set in set(),
        negated in any::<bool>(),
        compact in any::<bool>(),
        forget in any::<bool>(),
    ) {
        let evs = events(&rows);
        let (_dir, db) = load(&evs, flush_every);
        // An erasure pending beside the restriction: its mask and the filter's combine.
        if forget {
            query(&db, "FORGET CUSTOMER 'c1'")?;
        }
        // One segment: the lazy funnel scan reads the masked segment.
        if compact {
            db.flush().unwrap();
            db.compact().unwrap();
        }
        query(&db, &format!("CREATE COHORT base AS {}", base().text()))?;
        // `s0` (the edge events) is always admitted.
        let (definition, filter) = if negated {
            (format!("({}) AND NOT DID edge", set.text()), "CUSTOMER NOT IN picked")
        } else {
            (format!("({}) OR DID edge", set.text()), "CUSTOMER IN picked")
        };
        query(&db, &format!("CREATE COHORT picked AS {definition}"))?;
        let kept: Vec<Ev> = evs.iter().filter(|e| !(forget && e.cust == "c1")).cloned().collect();
        let chosen = members(&set, &kept);
        let admitted: Vec<Ev> = kept
            .iter()
            .filter(|e| e.cust == "s0" || chosen.contains(&e.cust) != negated)
            .cloned()
            .collect();
        let (_dir2, only) = load(&admitted, flush_every);
        if compact {
            only.flush().unwrap();
            only.compact().unwrap();
        }
        for statement in STATEMENTS {
            let filtered = query(&db, &statement.replace("{w}", &format!("WHERE {filter}")))?;
            let want = query(&only, &statement.replace("{w}", ""))?;
            // (Warnings name the events each dictionary lacks: not compared.)
            prop_assert_eq!((&filtered.columns, &filtered.rows), (&want.columns, &want.rows),
                "{} WHERE {} ({})", statement, filter, definition);
        }
    }
}

/// The statements `BY COHORT` applies to, `{by}` where the clause goes.
const GROUPED: [&str; 11] = [
    "FUNNEL a -> b -> c WITHIN 6h {by}",
    "FUNNEL a -> b -> c WITHIN 6h TIES STRICT {by}",
    "FUNNEL a -> b WITHIN 6h PERIOD day {by}",
    "RETENTION a RETURN b PERIOD day PERIODS 3 {by}",
    "TREND uniq PERIOD day {by}",
    "TREND count OF a PERIOD hour FROM '2026-03-05' TO '2026-03-06' {by}",
    "LIFECYCLE OF a OR b PERIOD day {by}",
    "STICKINESS OF ANY PERIOD day {by}",
    "PATHS AFTER a STEPS 2 TOP 5 {by}",
    "PATHS BEFORE c STEPS 2 COLLAPSE REPEATS EDGES {by}",
    "HEATMAP OF ANY TZ 'America/New_York' {by}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

    /// `BY COHORT a, b` holds, for each cohort, exactly the rows of `WHERE CUSTOMER IN` that
    /// cohort (a customer in both counts in both), its name in the `group` column.
    #[test]
    fn by_cohort_equals_each_cohort_alone(
        rows in rows(),
        flush_every in 1usize..15,
        set in set(),
        filtered in any::<bool>(),
        compact in any::<bool>(),
        linked in any::<bool>(),
    ) {
        let evs = events(&rows);
        let (_dir, db) = load(&evs, flush_every);
        // One segment: the lazy funnel scan, side by side.
        if compact {
            db.flush().unwrap();
            db.compact().unwrap();
        }
        // Identity links: a linked customer's merged journey in each cohort.
        let customers: BTreeSet<&str> = evs.iter().map(|e| e.cust.as_str()).filter(|c| *c != "s0").collect();
        if linked && let [anonymous, known, ..] = customers.iter().copied().collect::<Vec<_>>()[..] {
            db.link(&[(anonymous, known)]).unwrap();
        }
        query(&db, &format!("CREATE COHORT base AS {}", base().text()))?;
        query(&db, &format!("CREATE COHORT picked AS {}", set.text()))?;
        // A cohort of everyone restricts nothing: it runs on the snapshot's own input.
        query(&db, "CREATE COHORT everyone AS DID ANY")?;
        // With a statement-level filter too: each group is then the intersection.
        let own: Vec<&str> = if filtered { vec!["CUSTOMER NOT IN base"] } else { vec![] };
        let own_where = if filtered { "WHERE CUSTOMER NOT IN base " } else { "" };
        for statement in GROUPED {
            let text = statement.replace("{by}", &format!("{own_where}BY COHORT picked, base, everyone"));
            let grouped = query(&db, &text)?;
            let at = usize::from(statement.starts_with("TREND") || statement.starts_with("FUNNEL a -> b WITHIN 6h PERIOD"));
            prop_assert_eq!(&grouped.columns[at], "group");
            if at == 1 {
                // By bucket first: each bucket's rows of every cohort together.
                prop_assert!(grouped.rows.windows(2).all(|w| w[0][0].to_string() <= w[1][0].to_string()), "{}", text);
            }
            for name in ["picked", "base", "everyone"] {
                let mut filters = own.clone();
                let member = format!("CUSTOMER IN {name}");
                filters.push(&member);
                let alone = query(&db, &statement.replace("{by}", &format!("WHERE {}", filters.join(" AND "))))?;
                let mine: Vec<Vec<Cell>> = grouped
                    .rows
                    .iter()
                    .filter(|r| r[at] == Cell::Str(name.into()))
                    .map(|r| r.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, c)| c.clone()).collect())
                    .collect();
                prop_assert_eq!(&mine, &alone.rows, "{} (group {})", text, name);
            }
        }
    }
}

#[test]
fn by_cohort_is_refused_where_it_has_no_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[Event::new("u1", T0, "buy").with_prop("ch", "x")])
        .unwrap();
    db.query("CREATE COHORT buyers AS DID buy").unwrap();
    for (text, why) in [
        (
            "STAGES PERIOD day BY COHORT buyers",
            "BY COHORT applies to FUNNEL, RETENTION, TREND, LIFECYCLE, STICKINESS, PATHS and HEATMAP",
        ),
        (
            "FUNNEL buy -> buy WITHIN 1d BY ch BY COHORT buyers",
            "BY COHORT and a property BY cannot be combined (yet)",
        ),
        (
            "CUSTOMERS FUNNEL buy -> buy WITHIN 1d BY COHORT buyers STEP 1",
            "a drill-down lists one set: use WHERE CUSTOMER IN name",
        ),
        (
            "TREND count PERIOD day BY COHORT buyers BY COHORT buyers",
            "BY COHORT given twice",
        ),
        (
            "TREND count PERIOD day BY COHORT nobody",
            "unknown cohort `nobody`",
        ),
    ] {
        match db.query(text) {
            Err(journeydb::QueryError::Parse(e)) => assert_eq!(e.message, why, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    let t = db
        .query("TREND count PERIOD day BY COHORT buyers, buyers")
        .unwrap();
    assert_eq!(t.columns, ["bucket", "group", "value", "complete"]);
    assert_eq!(t.rows.len(), 2);
}

#[test]
fn cohorts_survive_reopen_and_static_ones_stay_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[
        Event::new("u1", T0, "buy"),
        Event::new("u1", T0 + H, "buy"),
        Event::new("u2", T0, "buy"),
    ])
    .unwrap();
    db.query("CREATE COHORT twice AS DID buy AT LEAST 2 TIMES")
        .unwrap();
    db.query("CREATE COHORT frozen STATIC AS DID buy AT LEAST 2 TIMES")
        .unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    db.commit(&[Event::new("u2", T0 + 2 * H, "buy")]).unwrap();
    let members = |name: &str| listed(&db.query(&format!("CUSTOMERS IN COHORT {name}")).unwrap());
    assert_eq!(members("twice"), ["u1", "u2"].map(String::from).into());
    assert_eq!(members("frozen"), ["u1"].map(String::from).into());
    let list = db.query("COHORTS").unwrap();
    assert_eq!(list.columns, ["cohort", "kind", "customers", "definition"]);
    assert_eq!(
        list.rows,
        vec![
            vec![
                Cell::Str("frozen".into()),
                Cell::Str("static".into()),
                Cell::Int(1),
                Cell::Str("DID buy AT LEAST 2 TIMES".into())
            ],
            vec![
                Cell::Str("twice".into()),
                Cell::Str("dynamic".into()),
                Cell::Int(2),
                Cell::Str("DID buy AT LEAST 2 TIMES".into())
            ],
        ]
    );
    // FORGET takes the customer out of static cohorts too, durably.
    db.query("FORGET CUSTOMER 'u1'").unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(
        listed(&db.query("CUSTOMERS IN COHORT frozen").unwrap()),
        BTreeSet::new()
    );
    db.query("DROP COHORT frozen").unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(db.query("COHORTS").unwrap().rows.len(), 1);
}

#[test]
fn cohort_errors_point_at_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[Event::new("u1", T0, "buy").with_prop("ch", "x")])
        .unwrap();
    match db.query("CUSTOMERS IN COHORT buyers") {
        Err(journeydb::QueryError::Parse(e)) => assert_eq!(
            e.help.as_deref(),
            Some("no cohort is saved yet: CREATE COHORT name AS DID purchase")
        ),
        other => panic!("{other:?}"),
    }
    db.query("CREATE COHORT buyers AS DID buy").unwrap();
    db.query("CREATE COHORT loyal AS IN buyers AND DID buy AT LEAST 3 TIMES")
        .unwrap();
    let err = |text: &str| match db.query(text) {
        Err(journeydb::QueryError::Parse(e)) => (e.span.start, e.message.clone(), e.help.clone()),
        other => panic!("{text}: expected a parse error, got {other:?}"),
    };
    let (at, message, help) = err("FUNNEL buy -> buy WITHIN 1d WHERE CUSTOMER IN buyerz");
    assert_eq!((at, message.as_str()), (46, "unknown cohort `buyerz`"));
    assert_eq!(help.as_deref(), Some("did you mean `buyers`?"));
    // An event name not stored yet matches nothing, with a warning (as in every statement).
    let made = db.query("CREATE COHORT typo AS DID biy").unwrap();
    assert_eq!(made.rows[0][2], Cell::Int(0));
    assert!(
        made.warnings.iter().any(|w| w.contains("unknown event `biy`")),
        "{:?}",
        made.warnings
    );
    db.query("DROP COHORT typo").unwrap();
    // No close name: the help lists the saved ones.
    let (_, _, help) = err("TREND count PERIOD day WHERE CUSTOMER IN vip");
    assert_eq!(help.as_deref(), Some("saved cohorts: buyers, loyal"));
    let (_, message, help) = err("CREATE COHORT buyers AS DID buy");
    assert_eq!(message, "cohort `buyers` exists");
    assert!(help.is_some_and(|h| h.contains("DROP COHORT buyers")));
    let (_, message, _) = err("CREATE COHORT me AS IN me OR DID buy");
    assert_eq!(message, "cohort `me` cannot refer to itself");
    let (_, message, help) = err("DROP COHORT buyers");
    assert_eq!(message, "cohort `loyal` uses `buyers`");
    assert_eq!(help.as_deref(), Some("drop `loyal` first"));
    let (_, message, _) = err("TREND count PERIOD day WHERE ch = 'x' OR CUSTOMER IN buyers");
    assert_eq!(message, "CUSTOMER IN combines with the rest of WHERE by AND only");
    let (_, message, _) = err("CREATE COHORT f AS FIRST buy");
    assert_eq!(message, "FIRST needs a WHERE: the property its event must have");
    let (_, message, _) = err("FUNNEL buy WHERE CUSTOMER IN buyers -> buy WITHIN 1d");
    assert_eq!(
        message,
        "CUSTOMER IN belongs in the statement's WHERE, not a step's"
    );
    // A property named `customer` keeps its IN list.
    db.commit(&[Event::new("u2", T0, "buy").with_prop("customer", "vip")])
        .unwrap();
    let t = db
        .query("TREND count PERIOD day WHERE customer IN ('vip')")
        .unwrap();
    assert_eq!(t.rows.len(), 1);
    // A cohort filter and an event predicate together.
    let t = db
        .query("TREND count PERIOD day WHERE ch = 'x' AND CUSTOMER IN buyers")
        .unwrap();
    assert_eq!(t.rows[0][1], Cell::Int(1));
}

/// `WITHIN d OF FIRST SEEN` includes an event exactly d after the first one (as a funnel's
/// WITHIN does), and not one a microsecond later.
#[test]
fn within_of_first_seen_is_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let day = 24 * H;
    db.commit(&[
        Event::new("on_time", T0, "visit"),
        Event::new("on_time", T0 + 7 * day, "buy"),
        Event::new("late", T0, "visit"),
        Event::new("late", T0 + 7 * day + 1, "buy"),
    ])
    .unwrap();
    db.query("CREATE COHORT quick AS DID buy WITHIN 7d OF FIRST SEEN")
        .unwrap();
    let got = listed(&db.query("CUSTOMERS IN COHORT quick").unwrap());
    assert_eq!(got, ["on_time"].map(String::from).into());
}

/// A set of several `DID … AT LEAST n` tests (counted by rows, one pass per test, over
/// several segments and unflushed rows): each customer's counts meet each test's own bound.
#[test]
fn several_counted_tests_meet_their_own_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    // (customer, visits, buys): the set is ≥ 2 visits and ≥ 3 buys, or ≥ 4 visits.
    let journeys = [
        ("both", 2, 3),
        ("few_buys", 2, 2),
        ("many_visits", 4, 0),
        ("buys_only", 1, 5),
    ];
    for (round, flush) in [(0, true), (1, false)] {
        let mut events = Vec::new();
        for (customer, visits, buys) in journeys {
            // Half of each customer's events in a segment, half unflushed.
            let half = |n: i64| if round == 0 { n / 2 } else { n - n / 2 };
            for k in 0..half(visits) {
                events.push(Event::new(customer, T0 + (round * 100 + k) * H, "visit"));
            }
            for k in 0..half(buys) {
                events.push(Event::new(customer, T0 + (round * 100 + 50 + k) * H, "buy"));
            }
        }
        db.commit(&events).unwrap();
        if flush {
            db.flush().unwrap();
        }
    }
    db.query("CREATE COHORT picked AS DID visit AT LEAST 2 TIMES AND DID buy AT LEAST 3 TIMES OR DID visit AT LEAST 4 TIMES")
        .unwrap();
    let got = listed(&db.query("CUSTOMERS IN COHORT picked").unwrap());
    assert_eq!(got, ["both", "many_visits"].map(String::from).into());
}

/// A set's `AND`/`OR` is not swallowed by a step's names or a predicate before it.
#[test]
fn set_terms_end_steps_and_predicates() {
    let set = journeydb::query::parse_set(
        "DID a OR b WHERE ch = 'x' AND DID c OR NOT FIRST a WHERE ch = 'y' AND x = 1",
    )
    .unwrap();
    let text = format!("{set:?}");
    assert!(text.starts_with("Or(And(Did"), "{text}");
    assert!(text.contains("Events([(\"a\""), "{text}");
}

/// A dynamic cohort's members follow the data: evaluated (and cached) once, then a commit, a
/// flush, an erasure and a redefinition under the same name each show at the next statement.
#[test]
fn dynamic_members_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let members = |db: &Db, name: &str| listed(&db.query(&format!("CUSTOMERS IN COHORT {name}")).unwrap());
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<String>>()
    };
    let buy = |customer: &str, ts: i64| Event::new(customer, ts, "buy").with_stage(Stage::Purchase);
    db.commit(&[buy("u1", T0), buy("u1", T0 + H)]).unwrap();
    db.query("CREATE COHORT twice AS DID buy AT LEAST 2 TIMES")
        .unwrap();
    assert_eq!(members(&db, "twice"), set(&["u1"]));
    // Answered from the (restricted) stage bitmap, before and after a commit.
    let buyers = |db: &Db| {
        listed(
            &db.query("CUSTOMERS IN STAGE purchase WHERE CUSTOMER IN twice")
                .unwrap(),
        )
    };
    assert_eq!(buyers(&db), set(&["u1"]));
    // The same snapshot's answer twice (from the cache), then a commit.
    let snap = db.snapshot();
    assert_eq!(
        listed(&snap.query("CUSTOMERS IN COHORT twice").unwrap()),
        set(&["u1"])
    );
    db.commit(&[buy("u2", T0), buy("u2", T0 + H)]).unwrap();
    assert_eq!(members(&db, "twice"), set(&["u1", "u2"]));
    assert_eq!(buyers(&db), set(&["u1", "u2"]));
    // The older snapshot still answers as of its own data.
    assert_eq!(
        listed(&snap.query("CUSTOMERS IN COHORT twice").unwrap()),
        set(&["u1"])
    );
    db.flush().unwrap();
    assert_eq!(members(&db, "twice"), set(&["u1", "u2"]));
    db.query("FORGET CUSTOMER 'u1'").unwrap();
    assert_eq!(members(&db, "twice"), set(&["u2"]));
    let restricted = db
        .query("TREND count PERIOD day WHERE CUSTOMER IN twice")
        .unwrap();
    assert_eq!(restricted.rows[0][1], Cell::Int(2));
    db.query("DROP COHORT twice").unwrap();
    db.query("CREATE COHORT twice AS DID buy AT LEAST 3 TIMES")
        .unwrap();
    assert_eq!(members(&db, "twice"), set(&[]));
    let restricted = db
        .query("TREND count PERIOD day WHERE CUSTOMER IN twice")
        .unwrap();
    assert_eq!(restricted.rows[0][1], Cell::Int(0));
    // A static cohort's members stay, but what the bitmaps say of them follows the data.
    db.commit(&[Event::new("u3", T0, "visit")]).unwrap();
    db.query("CREATE COHORT visitors STATIC AS DID visit").unwrap();
    let staged = |db: &Db| {
        listed(
            &db.query("CUSTOMERS IN STAGE purchase WHERE CUSTOMER IN visitors")
                .unwrap(),
        )
    };
    assert_eq!(staged(&db), set(&[]));
    db.commit(&[buy("u3", T0 + 2 * H)]).unwrap();
    assert_eq!(staged(&db), set(&["u3"]));
}

/// `Db::change_cohorts` (what CREATE and DROP COHORT end in) checks what it saves: names of 1
/// to 256 bytes, definitions up to the query limit, one entry per name, static members the
/// dictionary holds; a refused change saves nothing.
#[test]
fn saved_cohorts_are_checked_when_changed() {
    use journeydb::internals::limits::{NAME_BYTES_MAX, QUERY_BYTES_MAX};
    use journeydb::{CohortEntry, DbError, Error};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[Event::new("u1", T0, "buy")]).unwrap();
    let entry = |name: &str, definition: &str, members: Option<roaring::RoaringBitmap>| CohortEntry {
        name: name.into(),
        definition: definition.into(),
        members,
    };
    let longest = "n".repeat(NAME_BYTES_MAX);
    let full = "x".repeat(QUERY_BYTES_MAX);
    db.change_cohorts(|_| Ok(vec![entry(&longest, &full, None)]))
        .unwrap();
    let saved = db.cohorts();
    assert_eq!(
        (saved.len(), saved[0].name.len(), saved[0].definition.len()),
        (1, NAME_BYTES_MAX, QUERY_BYTES_MAX)
    );
    let too_long = "n".repeat(NAME_BYTES_MAX + 1);
    let over = "x".repeat(QUERY_BYTES_MAX + 1);
    let past: roaring::RoaringBitmap = [1].into_iter().collect();
    let cases: Vec<(Vec<CohortEntry>, &str)> = vec![
        (vec![entry("", "DID buy", None)], "cohort name of 0 bytes"),
        (
            vec![entry(&too_long, "DID buy", None)],
            "cohort name of 257 bytes",
        ),
        (vec![entry("a", &over, None)], "definition of 65537 bytes"),
        (
            vec![entry("a", "DID buy", None), entry("a", "DID buy", None)],
            "cohort `a` given twice",
        ),
        (
            vec![entry("a", "DID buy", Some(past))],
            "names a customer id the dictionary does not hold",
        ),
    ];
    for (list, why) in cases {
        match db.change_cohorts(|_| Ok(list)) {
            Err(Error::Db(DbError::InvalidArgument(message))) => assert!(message.contains(why), "{message}"),
            other => panic!("{why}: {other:?}"),
        }
        assert_eq!(db.cohorts(), saved, "{why}: a refused change saves nothing");
    }
    // Through the language: a quoted empty name is refused the same way.
    assert!(db.query("CREATE COHORT '' AS DID buy").is_err());
}

/// Evaluating a set is charged to the query's memory budget (the member bitmap grows with the
/// customers found): a budget too small for it stops the query, it never grows unchecked.
#[test]
fn set_evaluation_is_charged_to_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default().sync(Sync::Never)).unwrap();
    let events: Vec<Event> = (0..60_000)
        .map(|c| Event::new(format!("c{c}"), T0 + c, "buy").with_prop("amt", 1.0))
        .collect();
    db.commit(&events).unwrap();
    db.flush().unwrap();
    // A predicate: the set is scanned, not answered by the bitmaps.
    db.query("CREATE COHORT paying AS DID buy WHERE amt > 0").unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    let small = QueryOptions {
        memory_max: 16 << 10,
        ..Default::default()
    };
    match db.query_with("CUSTOMERS IN COHORT paying LIMIT 1", &small) {
        Err(journeydb::QueryError::MemoryExceeded(_)) => {}
        other => panic!("expected the budget to stop the evaluation: {other:?}"),
    }
    let fine = db.query("CUSTOMERS IN COHORT paying LIMIT 1").unwrap();
    assert_eq!(fine.rows[0][0], Cell::Int(60_000));
}

/// A set may name what a statement lists — `CUSTOMERS …` (funnel step or drop-off, retention
/// cell, stage, RFM segment) and `TOP CUSTOMERS …` — and has exactly those customers; what the
/// term cannot mean is refused with a caret.
#[test]
fn listed_sets_are_the_statements_customers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let mut events = Vec::new();
    for k in 0..30i64 {
        let c = format!("u{k}");
        events.push(Event::new(c.as_str(), T0 + k * H, "visit"));
        for n in 0..(k % 4) {
            events.push(
                Event::new(c.as_str(), T0 + k * H + (n + 1) * 600_000_000, "buy")
                    .with_prop("amount", (k * 10 + n) as f64),
            );
        }
    }
    db.commit(&events).unwrap();
    let members = |text: &str| listed(&db.query(text).unwrap());
    for (name, term, drill) in [
        (
            "dropped",
            "CUSTOMERS FUNNEL visit -> buy WITHIN 1h STEP 2 DROPPED",
            "CUSTOMERS FUNNEL visit -> buy WITHIN 1h STEP 2 DROPPED",
        ),
        (
            "champions",
            "CUSTOMERS RFM OF buy VALUE amount SEGMENT champions",
            "CUSTOMERS RFM OF buy VALUE amount SEGMENT champions",
        ),
        (
            "cell",
            "CUSTOMERS RETENTION visit RETURN buy PERIOD day PERIODS 1 CELL '2026-03-05', 0",
            "CUSTOMERS RETENTION visit RETURN buy PERIOD day PERIODS 1 CELL '2026-03-05', 0",
        ),
        (
            "whales",
            "TOP CUSTOMERS BY sum(amount) OF buy LIMIT 5",
            "TOP CUSTOMERS BY sum(amount) OF buy LIMIT 5",
        ),
    ] {
        db.query(&format!("CREATE COHORT {name} AS {term}")).unwrap();
        let want: BTreeSet<String> = if name == "whales" {
            let t = db.query(drill).unwrap();
            t.rows.iter().map(|r| r[1].to_string()).collect()
        } else {
            members(&format!("{drill} LIMIT 1000"))
        };
        assert!(!want.is_empty(), "{name}");
        assert_eq!(members(&format!("CUSTOMERS IN COHORT {name}")), want, "{name}");
    }
    // Combined with other terms; a later commit changes a dynamic one.
    let union: BTreeSet<String> = members("CUSTOMERS IN COHORT dropped")
        .union(&members("CUSTOMERS IN COHORT whales"))
        .cloned()
        .collect();
    db.query("CREATE COHORT mixed AS CUSTOMERS FUNNEL visit -> buy WITHIN 1h STEP 2 DROPPED OR TOP CUSTOMERS BY sum(amount) OF buy LIMIT 5").unwrap();
    assert_eq!(members("CUSTOMERS IN COHORT mixed"), union);
    db.commit(&[Event::new("u0", T0 + 10 * 60_000_000, "buy")])
        .unwrap();
    assert!(!members("CUSTOMERS IN COHORT dropped").contains("u0"));
    for (text, message) in [
        (
            "CREATE COHORT e1 AS CUSTOMERS FUNNEL visit -> buy WITHIN 1h STEP 2 LIMIT 3",
            "LIMIT does not apply",
        ),
        ("CREATE COHORT e2 AS CUSTOMERS IN COHORT whales", "IN name"),
        (
            "CREATE COHORT e3 AS CUSTOMERS FUNNEL visit -> buy WITHIN 1h WHERE CUSTOMER IN whales STEP 2",
            "takes no cohorts",
        ),
        (
            "CREATE COHORT e4 AS TOP CUSTOMERS BY count WHERE customer.plan = 'x' LIMIT 3",
            "takes no cohorts or customer properties",
        ),
    ] {
        let e = db.query(text).unwrap_err().to_string();
        assert!(e.contains(message), "{text}: {e}");
    }
}

/// More cohorts than one pass folds a customer into (32) run one by one: the answer is the
/// same, each group exactly `WHERE CUSTOMER IN` its cohort.
#[test]
fn by_cohort_of_more_than_32_cohorts_equals_each_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // Customer uK buys K times: cohort `atK` (bought at least K times) holds uK..u40.
    let mut events = Vec::new();
    for customer in 1..=40i64 {
        events.push(Event::new(format!("u{customer}"), T0, "visit"));
        for k in 0..customer {
            events.push(Event::new(format!("u{customer}"), T0 + (k + 1) * H, "buy"));
        }
    }
    db.commit(&events).unwrap();
    let names: Vec<String> = (1..=34).map(|k| format!("at{k}")).collect();
    for (k, name) in names.iter().enumerate() {
        db.query(&format!(
            "CREATE COHORT {name} AS DID buy AT LEAST {} TIMES",
            k + 1
        ))
        .unwrap();
    }
    let statement = "FUNNEL visit -> buy -> buy WITHIN 2d";
    let grouped = db
        .query(&format!("{statement} BY COHORT {}", names.join(", ")))
        .unwrap();
    for (k, name) in names.iter().enumerate() {
        let alone = db
            .query(&format!("{statement} WHERE CUSTOMER IN {name}"))
            .unwrap();
        let mine: Vec<Vec<Cell>> = grouped
            .rows
            .iter()
            .filter(|row| row[0] == Cell::Str(name.clone()))
            .map(|row| row[1..].to_vec())
            .collect();
        assert_eq!(mine, alone.rows, "{name}");
        // Step 1 holds the cohort's 41 - (k + 1) customers.
        assert_eq!(alone.rows[0][2], Cell::Int(40 - k as i64), "{name}");
    }
}
