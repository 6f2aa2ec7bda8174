//! Stages apply to history (issue 31 §2): after changes of the stage map — before, between and
//! after commits, flushes and unflushed rows — every statement answers as the reference
//! evaluator does on the events staged under the final map (events with an explicit stage keep
//! it), and keeps answering so after a reopen and a compaction.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::HashMap;

use journeydb::{Db, Event, Options, Query, Stage};
use proptest::prelude::*;

mod common;
use common::queries::*;
use common::reference::*;

/// One `set_stages` call.
type MapChange = Vec<(&'static str, Option<Stage>)>;

fn map_change() -> impl Strategy<Value = MapChange> {
    proptest::collection::vec(
        (
            proptest::sample::select(vec!["a", "b", "c"]),
            proptest::option::of(proptest::sample::select(Stage::ALL.to_vec())),
        ),
        1..4,
    )
}

fn apply(map: &mut HashMap<String, Stage>, change: &MapChange) {
    for &(name, stage) in change {
        match stage {
            Some(s) => map.insert(name.to_owned(), s),
            None => map.remove(name),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn answers_after_map_changes_equal_the_reference_under_the_final_map(
        d in data(),
        changes in proptest::collection::vec((0usize..30, map_change()), 1..4),
        qs in proptest::collection::vec(query(), 1..6),
    ) {
        let n = d.events.len();
        let mut changes = changes;
        changes.sort_by_key(|(at, _)| (*at).min(n));
        let (dir, db, mut evs) = load_with(&d, |i, db| {
            for (at, change) in &changes {
                if (*at).min(n) == i {
                    db.set_stages(change).unwrap();
                }
            }
        });
        let mut map = HashMap::new();
        for (_, change) in &changes {
            apply(&mut map, change);
        }
        prop_assert_eq!(&db.stage_map(), &map);
        // `load` keeps each event's own stage; the map decides the others.
        for e in &mut evs {
            e.stage = e.stage.or_else(|| map.get(&e.name).copied());
        }
        let mut answers = Vec::new();
        for q in &qs {
            let text = q.text();
            let got = db.snapshot().query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            same(&got, &reference(q, &evs)).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
            answers.push(got);
        }
        drop(db);
        let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
        db.compact().unwrap();
        for (q, before) in qs.iter().zip(&answers) {
            let got = db.snapshot().query(&q.text()).unwrap();
            prop_assert_eq!(&got, before, "{} after a reopen and a compaction", q.text());
        }
    }
}

/// An explicit stage equal to the map's is still explicit: a later map change leaves it.
#[test]
fn an_explicit_stage_equal_to_the_map_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.set_stage("buy", Some(Stage::Purchase)).unwrap();
    let mut explicit = Event::new("u1", T0, "buy");
    explicit.stage = Some(Stage::Purchase);
    db.commit(&[explicit, Event::new("u2", T0, "buy")]).unwrap();
    db.flush().unwrap();
    db.set_stage("buy", Some(Stage::Retention)).unwrap();
    let snap = db.snapshot();
    let names = |stage| common::names(&snap, &snap.customers_in_stage(stage));
    assert_eq!(names(Stage::Purchase), ["u1".to_owned()].into());
    assert_eq!(names(Stage::Retention), ["u2".to_owned()].into());
    // Removing the mapping leaves the mapped event without a stage.
    db.set_stage("buy", None).unwrap();
    let snap = db.snapshot();
    let names = |stage| common::names(&snap, &snap.customers_in_stage(stage));
    assert_eq!(names(Stage::Purchase), ["u1".to_owned()].into());
    assert!(names(Stage::Retention).is_empty());
}

/// A map change that moves no stored event (a new name; events with explicit stages) rewrites
/// no segment.
#[test]
fn a_change_that_moves_nothing_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let mut e = Event::new("u1", T0, "buy");
    e.stage = Some(Stage::Purchase);
    db.commit(&[e]).unwrap();
    db.flush().unwrap();
    let listing = || {
        let mut v: Vec<_> = (std::fs::read_dir(dir.path().join("db/seg")).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    db.set_stage("visit", Some(Stage::Awareness)).unwrap();
    db.set_stage("buy", Some(Stage::Advocacy)).unwrap();
    assert_eq!(listing(), before);
}

/// An event name of the longest allowed length maps; one byte longer, or empty, is refused
/// and changes nothing (the whole call is refused, all or nothing).
#[test]
fn names_at_the_length_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let longest = "n".repeat(journeydb::internals::limits::NAME_BYTES_MAX);
    db.set_stage(&longest, Some(Stage::Purchase)).unwrap();
    assert_eq!(db.stage_map().get(&longest), Some(&Stage::Purchase));
    let too_long = format!("{longest}n");
    for bad in [too_long.as_str(), ""] {
        let err = db.set_stages(&[("ok", Some(Stage::Awareness)), (bad, Some(Stage::Retention))]);
        assert!(err.is_err(), "{} bytes accepted", bad.len());
        assert!(!db.stage_map().contains_key("ok"));
    }
}
