//! Customer profiles (issue 27 §1): the latest value of each property against a model of
//! every write (random writes with tied timestamps, flushes, compactions, reopens), and named
//! cases for durability, erasure, types and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, ProfileUpdate, Query, Value};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;

fn update(customer: &str, minute: i64, props: &[(&str, Value)]) -> ProfileUpdate {
    let mut u = ProfileUpdate::new(customer, T0 + minute * 60_000_000);
    for (name, value) in props {
        u.props.push(((*name).to_owned(), Some(value.clone())));
    }
    u
}

fn write(db: &Db, updates: Vec<ProfileUpdate>) {
    let mut batch = db.batch();
    for u in updates {
        batch.set_profile(u);
    }
    batch.commit().unwrap();
}

fn profile(db: &Db, customer: &str) -> Vec<(String, Value)> {
    db.snapshot().customer_profile(customer).unwrap()
}

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

#[test]
fn the_latest_write_of_each_property_wins_by_time_then_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    write(
        &db,
        vec![update("ann", 10, &[("plan", s("pro")), ("country", s("DE"))])],
    );
    // An older write committed later does not override a newer one ...
    write(&db, vec![update("ann", 5, &[("plan", s("free"))])]);
    // ... a write at the same time committed later does.
    write(
        &db,
        vec![update(
            "ann",
            10,
            &[("country", s("FR")), ("seats", Value::I64(3))],
        )],
    );
    write(
        &db,
        vec![update(
            "ann",
            11,
            &[("trial", Value::Bool(true)), ("score", Value::F64(-2.5))],
        )],
    );
    let want = vec![
        ("country".to_owned(), s("FR")),
        ("plan".to_owned(), s("pro")),
        ("score".to_owned(), Value::F64(-2.5)),
        ("seats".to_owned(), Value::I64(3)),
        ("trial".to_owned(), Value::Bool(true)),
    ];
    assert_eq!(profile(&db, "ann"), want);
    assert!(profile(&db, "bob").is_empty());
    // Profiles are not events.
    assert_eq!(db.snapshot().len(), 0);
    db.flush().unwrap();
    assert_eq!(profile(&db, "ann"), want);
    drop(db);
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    assert_eq!(profile(&db, "ann"), want);
    assert_eq!(db.verify().unwrap(), 0);
}

#[test]
fn profile_writes_survive_a_reopen_from_the_log_and_stay_atomic_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    let mut batch = db.batch();
    batch.append(Event::new("ann", T0, "visit"));
    batch.set_profile(update("ann", 0, &[("plan", s("pro"))]));
    batch.commit().unwrap();
    // A batch with a bad profile write stores nothing, events included.
    let mut batch = db.batch();
    batch.append(Event::new("bob", T0, "visit"));
    batch.set_profile(update("bob", 0, &[("plan", Value::I64(1))]));
    let err = batch.commit().unwrap_err().to_string();
    assert!(err.contains("profile write 0") && err.contains("`plan`"), "{err}");
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(profile(&db, "ann"), vec![("plan".to_owned(), s("pro"))]);
    assert_eq!(db.snapshot().len(), 1);
    assert_eq!(db.snapshot().customer_id("bob"), None);
}

#[test]
fn event_properties_cannot_use_the_profile_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let err = db
        .commit(&[Event::new("ann", T0, "visit").with_prop("customer.plan", "pro")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("customer-profile"), "{err}");
}

#[test]
fn forget_erases_the_profile_and_compaction_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    write(
        &db,
        vec![
            update("ann", 0, &[("plan", s("pro"))]),
            update("bob", 0, &[("plan", s("team"))]),
        ],
    );
    db.commit(&[Event::new("ann", T0, "visit")]).unwrap();
    db.flush().unwrap();
    write(&db, vec![update("ann", 1, &[("country", s("Erasedland"))])]);
    db.flush().unwrap();
    db.forget_customer("ann").unwrap();
    assert!(profile(&db, "ann").is_empty());
    assert_eq!(profile(&db, "bob"), vec![("plan".to_owned(), s("team"))]);
    // Written again after the erasure: a new customer.
    write(&db, vec![update("ann", 2, &[("seats", Value::I64(2))])]);
    db.flush().unwrap();
    db.compact().unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(profile(&db, "ann"), vec![("seats".to_owned(), Value::I64(2))]);
    assert_eq!(profile(&db, "bob"), vec![("plan".to_owned(), s("team"))]);
    db.verify().unwrap();
    // The erased value's text is gone from every file (segments are compressed: the value
    // would be in the dictionary).
    for file in walkdir(&path) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"Erasedland"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn forget_erases_a_profile_from_a_single_profile_segment() {
    // One profile segment holding the customer (nothing to merge): it is still rewritten.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    write(
        &db,
        vec![
            update("ann", 0, &[("plan", s("Forgottenplan"))]),
            update("bob", 0, &[("plan", s("team"))]),
        ],
    );
    db.flush().unwrap();
    db.forget_customer("ann").unwrap();
    assert!(profile(&db, "ann").is_empty());
    assert_eq!(profile(&db, "bob"), vec![("plan".to_owned(), s("team"))]);
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert!(profile(&db, "ann").is_empty());
    // Forgetting a customer without a profile keeps the profile segment as it is.
    db.commit(&[Event::new("cal", T0, "visit")]).unwrap();
    db.forget_customer("cal").unwrap();
    assert_eq!(profile(&db, "bob"), vec![("plan".to_owned(), s("team"))]);
    db.verify().unwrap();
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A write: (customer, minute, property, value) with few minutes so that times tie.
type W = (u8, i64, u8, u8);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The latest value per (customer, property) equals a model of every write, across
    /// flushes, compactions and reopens between the writes.
    #[test]
    fn latest_values_equal_the_model(batches in proptest::collection::vec(
        (proptest::collection::vec((0u8..4, 0i64..4, 0u8..3, 0u8..4), 1..6), 0u8..4), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut db = Db::create(&path, Options::default()).unwrap();
        // (customer, prop) → (minute, commit order, value)
        let mut model: BTreeMap<(u8, u8), (i64, usize, u8)> = BTreeMap::new();
        let mut order = 0;
        for (writes, action) in &batches {
            let writes: &Vec<W> = writes;
            let mut batch = db.batch();
            for &(c, minute, prop, value) in writes {
                batch.set_profile(update(&format!("c{c}"), minute, &[(&format!("p{prop}"), Value::I64(value.into()))]));
                order += 1;
                let e = model.entry((c, prop)).or_insert((minute, order, value));
                if (minute, order) >= (e.0, e.1) {
                    *e = (minute, order, value);
                }
            }
            batch.commit().unwrap();
            match action {
                0 => db.flush().unwrap(),
                1 => { db.compact().unwrap(); }
                2 => { drop(db); db = Db::open(&path, Options::default()).unwrap(); }
                _ => {}
            }
            // After every step (the table is cached between snapshots: it must follow).
            for c in 0..4u8 {
                let want: Vec<(String, Value)> = model.iter().filter(|((mc, _), _)| *mc == c)
                    .map(|((_, p), v)| (format!("p{p}"), Value::I64(v.2.into()))).collect();
                prop_assert_eq!(profile(&db, &format!("c{c}")), want);
            }
        }
    }
}

/// Profile predicates and their three-valued meaning on (latest plan, latest seats).
type Meaning = fn(Option<&str>, Option<i64>) -> Option<bool>;
/// Each with a profile that satisfies it (the always-admitted customer's).
type Satisfier = (Option<&'static str>, Option<i64>);
const PREDICATES: [(&str, Meaning, Satisfier); 6] = [
    (
        "customer.plan = 'pro'",
        |p, _| p.map(|p| p == "pro"),
        (Some("pro"), None),
    ),
    (
        "customer.plan != 'pro'",
        |p, _| p.map(|p| p != "pro"),
        (Some("free"), None),
    ),
    ("customer.plan IS NULL", |p, _| Some(p.is_none()), (None, Some(1))),
    ("customer.seats >= 2", |_, n| n.map(|n| n >= 2), (None, Some(3))),
    (
        "(customer.plan = 'free' OR customer.seats > 2)",
        |p, n| match (p.map(|p| p == "free"), n.map(|n| n > 2)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        (Some("free"), None),
    ),
    (
        "NOT customer.plan IN ('free', 'team')",
        |p, _| p.map(|p| p != "free" && p != "team"),
        (Some("pro"), Some(0)),
    ),
];

/// Statements of several kinds, `{w}` where the statement's WHERE goes.
const STATEMENTS: [&str; 8] = [
    "FUNNEL a -> b WITHIN 6h {w}",
    "RETENTION a RETURN b PERIOD day PERIODS 3 FROM '2026-03-05' TO '2026-03-09' {w}",
    "TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' {w}",
    "TREND count PERIOD day FROM '2026-03-05' TO '2026-03-09' {w}",
    "STICKINESS OF ANY PERIOD day FROM '2026-03-05' TO '2026-03-09' {w}",
    "TOP CUSTOMERS BY count LIMIT 20 {w}",
    "CUSTOMERS FUNNEL a -> b WITHIN 1d {w} STEP 2",
    "TRANSITIONS {w}",
];

/// An event (customer, quarter-hour, name) or a profile write (customer, quarter-hour, plan,
/// seats).
#[derive(Clone, Debug)]
enum Op {
    Event(u8, i64, &'static str),
    Profile(u8, i64, Option<&'static str>, Option<i64>),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let event = (0u8..6, 0i64..300, proptest::sample::select(vec!["a", "b"]))
        .prop_map(|(c, q, n)| Op::Event(c, q, n));
    let plan = proptest::option::of(proptest::sample::select(vec!["free", "pro", "team"]));
    let profile = (0u8..7, 0i64..8, plan, proptest::option::of(0i64..4))
        .prop_map(|(c, q, p, n)| Op::Profile(c, q, p, n));
    proptest::collection::vec(prop_oneof![3 => event, 1 => profile], 1..40)
}

/// Commits `ops` one batch each (profile writes only when `profiles`), flushing every
/// `flush_every`; the events of the customers `keep` admits.
fn load_ops(
    ops: &[Op],
    flush_every: usize,
    profiles: Option<Satisfier>,
    keep: &dyn Fn(u8) -> bool,
) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(
        dir.path().join("db"),
        Options::default().sync(journeydb::Sync::Never),
    )
    .unwrap();
    // Every property name known to both databases (an unknown name is an error), through a
    // customer erased at once.
    let mut batch = db.batch();
    batch.append(Event::new("z", T0, "a").with_prop("ch", "x"));
    batch.set_profile(
        ProfileUpdate::new("z", T0)
            .with_prop("plan", "free")
            .with_prop("seats", 1i64),
    );
    batch.commit().unwrap();
    db.forget_customer("z").unwrap();
    // A customer always admitted, whose events span the data (so that both databases end at
    // the same time).
    let mut edge = ProfileUpdate::new("s", T0);
    if let Some((plan, seats)) = profiles {
        edge.props = vec![
            ("plan".into(), plan.map(Value::from)),
            ("seats".into(), seats.map(Value::I64)),
        ];
    }
    let mut batch = db.batch();
    batch.append(Event::new("s", T0 - 36_000_000_000, "edge").with_prop("ch", "y"));
    batch.append(Event::new("s", T0 + 80 * 3_600_000_000, "edge").with_prop("ch", "y"));
    batch.set_profile(edge);
    batch.commit().unwrap();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Event(c, q, name) if keep(c) => {
                db.commit(&[Event::new(format!("c{c}"), T0 + q * 900_000_000, name)
                    .with_prop("ch", if q % 2 == 0 { "x" } else { "y" })])
                    .unwrap();
            }
            Op::Profile(c, q, plan, seats) if profiles.is_some() => {
                let mut u = ProfileUpdate::new(format!("c{c}"), T0 + q * 900_000_000);
                if let Some(plan) = plan {
                    u = u.with_prop("plan", plan);
                }
                if let Some(seats) = seats {
                    u = u.with_prop("seats", seats);
                }
                let mut batch = db.batch();
                batch.set_profile(u);
                batch.commit().unwrap();
            }
            _ => {}
        }
        if (i + 1) % flush_every == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

/// Each customer's latest (plan, seats): the write with the latest time wins, ties by order.
fn latest(ops: &[Op]) -> BTreeMap<u8, (Option<&'static str>, Option<i64>)> {
    let mut plan: BTreeMap<u8, (i64, usize, &'static str)> = BTreeMap::new();
    let mut seats: BTreeMap<u8, (i64, usize, i64)> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Profile(c, q, p, n) = *op {
            if let Some(p) = p
                && plan.get(&c).is_none_or(|e| (q, i) >= (e.0, e.1))
            {
                plan.insert(c, (q, i, p));
            }
            if let Some(n) = n
                && seats.get(&c).is_none_or(|e| (q, i) >= (e.0, e.1))
            {
                seats.insert(c, (q, i, n));
            }
        }
    }
    (0..7)
        .map(|c| (c, (plan.get(&c).map(|e| e.2), seats.get(&c).map(|e| e.2))))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

    /// `WHERE customer.… ` gives every statement the answer it gives on a database holding only
    /// the events of the customers whose latest profile satisfies the predicate; and a cohort
    /// defined by the predicate has exactly those customers among those with events.
    #[test]
    fn profile_filter_equals_filtered_database(ops in ops(), flush_every in 1usize..12, which in 0usize..6) {
        let (text, meaning, satisfier) = PREDICATES[which];
        let values = latest(&ops);
        let admitted = |c: u8| values.get(&c).is_some_and(|&(p, n)| meaning(p, n) == Some(true));
        let (_dir, db) = load_ops(&ops, flush_every, Some(satisfier), &|_| true);
        let (_dir2, only) = load_ops(&ops, flush_every, None, &admitted);
        for statement in STATEMENTS {
            let mut got = db.query(&statement.replace("{w}", &format!("WHERE {text}"))).unwrap();
            let mut want = only.query(&statement.replace("{w}", "")).unwrap();
            // A drill-down lists customers by internal id, which differs between the databases
            // (profile writes create customers too).
            if statement.starts_with("CUSTOMERS") {
                let key = |r: &Vec<Cell>| r[1].to_string();
                got.rows.sort_by_key(key);
                want.rows.sort_by_key(key);
            }
            prop_assert_eq!((&got.columns, &got.rows), (&want.columns, &want.rows), "{} WHERE {}", statement, text);
        }
        // Beside an event conjunct.
        let got = db.query(&format!("TREND count PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE ch = 'x' AND {text}")).unwrap();
        let want = only.query("TREND count PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE ch = 'x'").unwrap();
        prop_assert_eq!(&got.rows, &want.rows);
        db.query(&format!("CREATE COHORT picked AS {text}")).unwrap();
        let listed = db.query("CUSTOMERS IN COHORT picked LIMIT 100").unwrap();
        let members: BTreeSet<String> = listed.rows.iter().filter_map(|r| match &r[1] { Cell::Str(s) => Some(s.clone()), _ => None }).collect();
        let with_events: BTreeSet<u8> = ops.iter().filter_map(|op| match op { Op::Event(c, ..) => Some(*c), _ => None }).collect();
        // In a cohort's definition NOT is the set's complement: customers without a plan are
        // not in `plan IN (…)`, so they are in its NOT (in WHERE, NOT of null is null).
        let member = |c: u8| match text.strip_prefix("NOT ") {
            Some(_) => values.get(&c).is_none_or(|&(p, _)| !p.is_some_and(|p| p == "free" || p == "team")),
            None => admitted(c),
        };
        let mut want: BTreeSet<String> = with_events.into_iter().filter(|&c| member(c)).map(|c| format!("c{c}")).collect();
        want.insert("s".into());
        prop_assert_eq!(members, want, "{}", text);
    }
}

#[test]
fn customer_properties_are_refused_where_they_have_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let mut batch = db.batch();
    batch.append(Event::new("ann", T0, "visit").with_prop("channel", "web"));
    batch.set_profile(ProfileUpdate::new("ann", T0).with_prop("plan", "pro"));
    batch.commit().unwrap();
    let error = |text: &str| db.query(text).unwrap_err().to_string();
    // On a step: an event has no customer property.
    let e = error("FUNNEL visit WHERE customer.plan = 'pro' -> visit WITHIN 1d");
    assert!(
        e.contains("customer-profile property") && e.contains("WHERE customer.plan"),
        "{e}"
    );
    // OR with an event property.
    let e = error("TREND count PERIOD day WHERE customer.plan = 'pro' OR channel = 'web'");
    assert!(e.contains("combines with event properties by AND only"), "{e}");
    // Unknown names suggest customer properties only.
    let e = error("TREND count PERIOD day WHERE customer.plna = 'pro'");
    assert!(
        e.contains("unknown customer property `customer.plna`") && e.contains("did you mean `customer.plan`"),
        "{e}"
    );
    // BY and aggregates read events.
    let e = error("TREND sum(customer.plan) PERIOD day");
    assert!(e.contains("customer-profile property"), "{e}");
    // Both kinds in one statement, by AND: fine.
    let t = db
        .query("TREND count PERIOD day WHERE channel = 'web' AND customer.plan = 'pro'")
        .unwrap();
    assert_eq!(t.rows.len(), 1);
    // `CUSTOMER` alone is still the cohort filter's keyword.
    let e = error("TREND count PERIOD day WHERE CUSTOMER IN nosuch");
    assert!(e.contains("nosuch"), "{e}");
}

#[test]
fn timeline_shows_the_profile_above_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let mut batch = db.batch();
    batch.append(Event::new("ann", T0 + 60_000_000, "visit"));
    batch.set_profile(
        ProfileUpdate::new("ann", T0)
            .with_prop("plan", "free")
            .with_prop("seats", 2i64),
    );
    batch.set_profile(ProfileUpdate::new("ann", T0 + 120_000_000).with_prop("plan", "pro"));
    batch.append(Event::new("bob", T0, "visit"));
    batch.commit().unwrap();
    let t = db.query("TIMELINE 'ann'").unwrap();
    assert_eq!(t.rows.len(), 2);
    assert_eq!(
        t.columns,
        [
            "ts",
            "event",
            "stage",
            "properties.customer.plan",
            "properties.customer.seats"
        ]
    );
    assert_eq!(
        t.rows[0],
        vec![
            Cell::Time(T0 + 120_000_000),
            Cell::Null,
            Cell::Null,
            Cell::Str("pro".into()),
            Cell::Int(2)
        ]
    );
    assert_eq!(t.rows[1][1], Cell::Str("visit".into()));
    // In JSON the property columns are one object per row holding the row's own values.
    assert_eq!(
        t.to_json(),
        "[{\"ts\": \"2026-03-05T00:02:00.000Z\", \"event\": null, \"stage\": null, \"properties\": {\"customer.plan\": \"pro\", \"customer.seats\": 2}}, {\"ts\": \"2026-03-05T00:01:00.000Z\", \"event\": \"visit\", \"stage\": null, \"properties\": {}}]\n"
    );
    // No profile, no profile row; a customer the filter does not admit shows nothing.
    assert_eq!(db.query("TIMELINE 'bob'").unwrap().rows.len(), 1);
    assert!(
        db.query("TIMELINE 'ann' WHERE customer.plan = 'free'")
            .unwrap()
            .rows
            .is_empty()
    );
    assert_eq!(
        db.query("TIMELINE 'ann' WHERE customer.plan = 'pro'")
            .unwrap()
            .rows
            .len(),
        2
    );
}

/// The rows of `table` whose `group` column (at `at`) is `label`, without that column.
fn group_rows(table: &journeydb::Table, at: usize, label: &str) -> Vec<Vec<Cell>> {
    (table.rows.iter())
        .filter(|r| r[at] == Cell::Str(label.into()))
        .map(|r| {
            let mut r = r.clone();
            r.remove(at);
            r
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

    /// `BY customer.plan`: each group's rows are the statement's rows with `WHERE customer.plan
    /// = value` (`IS NULL` for the `(null)` group); a value without rows has no entries.
    #[test]
    fn by_customer_property_equals_each_value_alone(ops in ops(), flush_every in 1usize..12) {
        let (_dir, db) = load_ops(&ops, flush_every, Some((Some("team"), None)), &|_| true);
        let groups = [("free", "= 'free'"), ("pro", "= 'pro'"), ("team", "= 'team'"), ("(null)", "IS NULL")];
        let funnel = db.query("FUNNEL a -> b WITHIN 6h BY customer.plan").unwrap();
        // BY of two properties: the rows of (channel, plan) are BY ch's rows among the plan's
        // customers.
        let pairs = db.query("TREND count PERIOD day FROM '2026-03-05' TO '2026-03-09' BY ch, customer.plan").unwrap();
        prop_assert_eq!(&pairs.columns, &["bucket", "group", "group2", "value", "complete"]);
        for (label, test) in groups {
            let alone = db.query(&format!("TREND count PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE customer.plan {test} BY ch")).unwrap();
            let by: Vec<Vec<Cell>> = pairs.rows.iter().filter(|r| r[2] == Cell::Str(label.into())).map(|r| vec![r[0].clone(), r[1].clone(), r[3].clone(), r[4].clone()]).collect();
            let nonzero: Vec<Vec<Cell>> = alone.rows.iter().filter(|r| {
                // A (channel, plan) pair with no event at all is not a group.
                by.iter().any(|b| b[1] == r[1])
            }).cloned().collect();
            prop_assert_eq!(&by, &nonzero, "{}", label);
            prop_assert!(alone.rows.iter().filter(|r| !by.iter().any(|b| b[1] == r[1])).all(|r| r[2] == Cell::Int(0)));
        }
        let trend = db.query("TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' BY customer.plan").unwrap();
        // The bitmap shortcut (whole days, no predicate) equals the scan (every event has `ch`).
        let scanned = db.query("TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE ch IS NOT NULL BY customer.plan").unwrap();
        prop_assert_eq!(&trend.rows, &scanned.rows);
        // … and under a customer restriction (the shortcut applies it to each bucket last).
        let restricted = db.query("TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE customer.plan <> 'free' BY customer.plan").unwrap();
        let scanned = db.query("TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE ch IS NOT NULL AND customer.plan <> 'free' BY customer.plan").unwrap();
        prop_assert_eq!(&restricted.rows, &scanned.rows);
        // FUNNEL BY ch, customer.plan: each plan's rows are BY ch among the plan's customers.
        let funnel_pairs = db.query("FUNNEL a -> b WITHIN 6h BY ch, customer.plan").unwrap();
        prop_assert_eq!(&funnel_pairs.columns[..3], &["group", "group2", "step"]);
        for (label, test) in groups {
            let alone = db.query(&format!("FUNNEL a -> b WITHIN 6h WHERE customer.plan {test} BY ch")).unwrap();
            prop_assert_eq!(&group_rows(&funnel_pairs, 1, label), &alone.rows, "{}", label);
        }
        for (label, test) in groups {
            let alone = db.query(&format!("FUNNEL a -> b WITHIN 6h WHERE customer.plan {test}")).unwrap();
            let by = group_rows(&funnel, 0, label);
            if by.is_empty() {
                prop_assert_eq!(&alone.rows[0][2], &Cell::Int(0), "{}", label);
            } else {
                prop_assert_eq!(&by, &alone.rows, "{}", label);
            }
            let alone = db.query(&format!("TREND uniq PERIOD day FROM '2026-03-05' TO '2026-03-09' WHERE customer.plan {test}")).unwrap();
            let by = group_rows(&trend, 1, label);
            if by.is_empty() {
                prop_assert!(alone.rows.iter().all(|r| r[1] == Cell::Int(0)), "{}", label);
            } else {
                prop_assert_eq!(&by, &alone.rows, "{}", label);
            }
        }
    }
}

/// Profile writes share the write buffer and the sequence numbers with events, but they are not
/// events: `Stats::events` counts only events, buffered, replayed after a reopen, or sealed
/// (found by examples/web_shop.rs, which compares it with the events it had acknowledged).
#[test]
fn statistics_count_events_not_profile_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    let mut batch = db.batch();
    batch.set_profile(ProfileUpdate::new("ann", T0).with_prop("plan", "free"));
    batch.append(Event::new("ann", T0, "visit"));
    batch.set_profile(ProfileUpdate::new("bob", T0).with_prop("plan", "pro"));
    batch.commit().unwrap();
    db.commit(&[
        Event::new("bob", T0 + 1, "visit"),
        Event::new("bob", T0 + 2, "purchase"),
    ])
    .unwrap();
    // Three events and two profile writes (unequal, so that counting the profile writes instead
    // of the events shows).
    let stats = db.stats();
    assert_eq!((stats.events, stats.buffered_events), (3, 3));
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(db.stats().events, 3, "after replaying the log");
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!((stats.events, stats.buffered_events), (3, 0), "after sealing");
}
