//! Model test: random sequences of append / commit / import / flush / compact / set-stage /
//! close-and-reopen against an in-memory oracle. After every step the full scan, every
//! per-customer scan and every bitmap look-up must equal the oracle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test/bench code: a failure should abort loudly

mod common;

use std::collections::HashMap;

use common::{Oracle, check};
use journeydb::{Db, Event, Options, Stage, Sync, Value};
use proptest::prelude::*;

const HOUR_US: i64 = 3_600_000_000;

#[derive(Clone, Debug)]
enum Op {
    Commit(Vec<Event>),
    /// The events written to a file and imported by `Db::import`.
    Import(Vec<Event>),
    Flush,
    Compact,
    Reopen,
    /// One `set_stages` call (one entry: `set_stage`).
    SetStages(Vec<(String, Option<Stage>)>),
}

fn stage() -> impl Strategy<Value = Option<Stage>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(Stage::ALL.to_vec()).prop_map(Some)
    ]
}

fn value() -> impl Strategy<Value = (String, Option<Value>)> {
    prop_oneof![
        proptest::sample::select(vec!["web", "mobile", "store", "ünï"])
            .prop_map(|s| ("channel".to_string(), Some(Value::Str(s.into())))),
        (-1000i64..1000).prop_map(|c| ("amount".to_string(), Some(Value::F64(c as f64 / 100.0)))),
        any::<i64>().prop_map(|n| ("n".to_string(), Some(Value::I64(n)))),
        any::<bool>().prop_map(|b| ("flag".to_string(), Some(Value::Bool(b)))),
        Just(("channel".to_string(), None)),
        // A type that conflicts with `amount`'s first write (f64): such batches are rejected.
        Just(("amount".to_string(), Some(Value::I64(1)))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    event_with(value())
}

/// Events for a file: a file's column has one type (integers in a float column are read as
/// floats), so the value that conflicts with `amount`'s type is left out.
fn file_event() -> impl Strategy<Value = Event> {
    event_with(value().prop_filter("one type per column", |(k, v)| {
        !(k == "amount" && matches!(v, Some(Value::I64(_))))
    }))
}

fn event_with(value: impl Strategy<Value = (String, Option<Value>)>) -> impl Strategy<Value = Event> {
    (
        0usize..8,
        -30i64..80,
        proptest::sample::select(vec!["visit", "view", "add_to_cart", "purchase", "review"]),
        stage(),
        proptest::collection::vec(value, 0..3),
    )
        .prop_map(|(c, h, name, stage, mut props)| {
            props.sort_by(|a, b| a.0.cmp(&b.0));
            props.dedup_by(|a, b| a.0 == b.0);
            Event {
                customer: format!("cust-{c}"),
                ts_us: h * HOUR_US,
                name: name.to_string(),
                stage,
                props,
            }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(event(), 0..12).prop_map(Op::Commit),
        2 => proptest::collection::vec(file_event(), 0..12).prop_map(Op::Import),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => proptest::collection::vec(
            (proptest::sample::select(vec!["visit", "purchase", "review"]), stage())
                .prop_map(|(e, s)| (e.to_string(), s)),
            1..4
        )
        .prop_map(Op::SetStages),
    ]
}

/// Every live segment's footer — for a segment this process wrote, the writer's own footer,
/// not decoded again — equals what opening the file decodes.
fn footers_as_decoded(db: &Db, path: &std::path::Path) -> Result<(), TestCaseError> {
    use journeydb::internals::merge::Source;
    for s in db.snapshot().sources() {
        let (Source::Segment(seg) | Source::Masked(seg, _)) = s else {
            continue;
        };
        let reopened = journeydb::internals::segment::Segment::open(path, seg.id, None)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&reopened.footer, &seg.footer, "segment {}", seg.id);
    }
    Ok(())
}

fn run(ops: Vec<Op>, buffer_max: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("db");
    let opts = Options::default().sync(Sync::Never).buffer_events_max(buffer_max);
    let mut db = Db::create(&path, opts.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut oracle = Oracle::default();
    for op in ops {
        match op {
            Op::Commit(batch) => {
                let ok = oracle.commit(&batch);
                let res = db.commit(&batch);
                prop_assert_eq!(res.is_ok(), ok, "commit result {:?}", res.err());
            }
            Op::Import(batch) => {
                // A snapshot taken before the import keeps seeing the state before it (the
                // import adds its dictionary entries in place).
                let (before, then) = (db.snapshot(), oracle.clone());
                let ok = oracle.commit(&batch);
                let res = db.import(common::stage(&batch));
                prop_assert_eq!(res.is_ok(), ok, "import result {:?}", res.err());
                check(&before, &then)
                    .map_err(|e| TestCaseError::fail(format!("snapshot before an import: {e}")))?;
            }
            Op::Flush => db.flush().map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::Compact => {
                db.compact().map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Reopen => {
                drop(db);
                db = Db::open(&path, opts.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::SetStages(entries) => {
                let res = match &entries[..] {
                    [(e, s)] => db.set_stage(e, *s),
                    _ => db.set_stages(&entries.iter().map(|(e, s)| (e.as_str(), *s)).collect::<Vec<_>>()),
                };
                res.map_err(|e| TestCaseError::fail(e.to_string()))?;
                // In order: a later entry for the same name wins; history is re-staged.
                oracle.set_stages(&entries);
                prop_assert_eq!(&db.stage_map(), &oracle.stage_map);
            }
        }
        check(&db.snapshot(), &oracle).map_err(TestCaseError::fail)?;
        footers_as_decoded(&db, &path)?;
    }
    // A read-only open of the final state sees the same data.
    drop(db);
    let ro = Db::open_read_only(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check(&ro.snapshot(), &oracle).map_err(TestCaseError::fail)?;
    prop_assert!(ro.commit(&[Event::new("x", 0, "visit")]).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

    #[test]
    fn storage_matches_model(ops in proptest::collection::vec(op(), 1..25), buffer_max in prop_oneof![Just(5usize), Just(1 << 20)]) {
        run(ops, buffer_max)?;
    }
}

#[test]
fn rejected_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    db.commit(&[Event::new("a", 1, "visit").with_prop("amount", 1.5)])
        .unwrap();
    let err = db
        .commit(&[
            Event::new("new-customer", 2, "new-event").with_prop("newprop", "x"),
            Event::new("a", 3, "visit").with_prop("amount", "oops"),
        ])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("amount") && msg.contains("f64") && msg.contains("string"),
        "{msg}"
    );
    let snap = db.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap.customer_id("new-customer"), None);
    assert_eq!(snap.event_id("new-event"), None);
}

#[test]
fn invalid_events_are_rejected_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let long = "x".repeat(257);
    for (ev, needle) in [
        (Event::new("", 1, "visit"), "customer id is empty"),
        (Event::new(long.as_str(), 1, "visit"), "257 bytes"),
        (Event::new("a", 1, ""), "event name is empty"),
        (
            Event::new("a", 1, "visit").with_prop("x", f64::NAN),
            "not a finite number",
        ),
        (
            Event::new("a", 1, "visit")
                .with_prop("x", 1i64)
                .with_prop("x", 2i64),
            "given twice",
        ),
    ] {
        let msg = db.commit(&[ev]).unwrap_err().to_string();
        assert!(msg.contains(needle), "{msg} should contain {needle}");
    }
    assert_eq!(db.snapshot().len(), 0);
}

#[test]
fn second_writer_is_refused_but_readers_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[Event::new("a", 1, "visit")]).unwrap();
    let err = Db::open(&path, Options::default()).unwrap_err().to_string();
    assert!(err.contains("locked by another writer"), "{err}");
    let ro = Db::open_read_only(&path).unwrap();
    assert_eq!(ro.snapshot().len(), 1);
    assert!(Db::create(&path, Options::default()).is_err());
    assert!(Db::open(dir.path().join("missing"), Options::default()).is_err());
}

#[test]
fn snapshot_is_isolated_from_later_commits_flushes_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    db.commit(&[Event::new("a", 1, "visit")]).unwrap();
    db.flush().unwrap();
    db.commit(&[Event::new("a", 2, "purchase")]).unwrap();
    let snap = db.snapshot();
    db.commit(&[Event::new("b", 3, "visit")]).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(snap.events().unwrap().len(), 2);
    assert_eq!(db.snapshot().events().unwrap().len(), 3);
    // The compacted-away segment files are gone once the old snapshot is dropped.
    drop(snap);
    let segs = std::fs::read_dir(dir.path().join("db/seg")).unwrap().count();
    assert_eq!(segs, 1);
}

#[test]
fn group_commit_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(
        dir.path().join("db"),
        Options::default().sync(Sync::Group(std::time::Duration::from_micros(200))),
    )
    .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..50 {
                    db.commit(&[Event::new(format!("t{t}"), i, "visit")]).unwrap();
                }
            });
        }
    });
    let snap = db.snapshot();
    assert_eq!(snap.len(), 200);
    for t in 0..4 {
        let evs = snap.customer_events(&format!("t{t}")).unwrap();
        assert_eq!(
            evs.iter().map(|e| e.ts_us).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
    }
}

/// `set_stages` applies its entries in order, all or none: a bad name anywhere in the batch
/// changes nothing; the mappings survive a reopen.
#[test]
fn set_stages_is_all_or_nothing_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.set_stages(&[
        ("visit", Some(Stage::Awareness)),
        ("purchase", Some(Stage::Retention)),
        ("purchase", Some(Stage::Purchase)),
        ("review", Some(Stage::Advocacy)),
        ("review", None),
    ])
    .unwrap();
    let want: HashMap<String, Stage> = [
        ("visit".to_owned(), Stage::Awareness),
        ("purchase".to_owned(), Stage::Purchase),
    ]
    .into();
    assert_eq!(db.stage_map(), want);
    let long = "x".repeat(10_000);
    for bad in ["", long.as_str()] {
        let e = db
            .set_stages(&[("cart", Some(Stage::Consideration)), (bad, Some(Stage::Purchase))])
            .unwrap_err();
        assert!(e.to_string().contains("event name"), "{e}");
        assert_eq!(db.stage_map(), want);
    }
    db.set_stages(&[]).unwrap();
    drop(db);
    assert_eq!(Db::open(&path, Options::default()).unwrap().stage_map(), want);
}
