//! `FORGET CUSTOMER`: erased events vanish from every read at once, stay erased across reopen,
//! and compaction removes them from the segment files. A randomized differential test against
//! an in-memory oracle (commits, flushes, erasures, compactions and reopens in random order),
//! plus named cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use journeydb::demo::Rng;
use journeydb::internals::segment::{ColumnSet, Segment};
use journeydb::{Db, Event, Options, Query, Stage, Sync, Value};

/// The oracle's copy of one event.
type Row = (String, i64, String, Vec<(String, Value)>);

fn event(customer: &str, ts: i64, name: &str, note: &str) -> Event {
    Event::new(customer, ts, name)
        .with_stage(if name == "purchase" {
            Stage::Purchase
        } else {
            Stage::Awareness
        })
        .with_prop("note", note)
}

fn visible(db: &Db) -> Vec<Row> {
    let mut out: Vec<Row> = db
        .snapshot()
        .events()
        .unwrap()
        .into_iter()
        .map(|e| (e.customer, e.ts_us, e.name, e.props))
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

/// Every check that reads the database agrees with the oracle.
fn check(db: &Db, oracle: &[Row], step: &str) {
    assert_eq!(visible(db), sorted(oracle), "events after {step}");
    assert_eq!(
        db.stats().events,
        oracle.len() as u64,
        "stats.events after {step}"
    );
    let snap = db.snapshot();
    assert_eq!(snap.len(), oracle.len() as u64, "snapshot.len after {step}");
    let range = oracle
        .iter()
        .map(|r| r.1)
        .min()
        .zip(oracle.iter().map(|r| r.1).max());
    assert_eq!(snap.ts_range(), range, "ts_range after {step}");
    // Bitmap indices: customers with a purchase, by name.
    let want: BTreeSet<String> = oracle
        .iter()
        .filter(|r| r.2 == "purchase")
        .map(|r| r.0.clone())
        .collect();
    let got: BTreeSet<String> = snap
        .customers_with_event("purchase")
        .iter()
        .map(|c| snap.customer_name(c).unwrap())
        .collect();
    assert_eq!(got, want, "purchase bitmap after {step}");
    // A query: distinct customers overall, and each customer's timeline.
    let t = snap.query("CUSTOMERS IN STAGE awareness").unwrap();
    let got: BTreeSet<String> = t
        .rows
        .iter()
        .filter(|r| r[1] != journeydb::Cell::Null) // an empty answer is one row (0, NULL)
        .map(|r| r[1].to_string())
        .collect();
    let want: BTreeSet<String> = oracle
        .iter()
        .filter(|r| r.2 != "purchase")
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(got, want, "CUSTOMERS IN STAGE after {step}");
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for r in oracle {
        *per.entry(r.0.as_str()).or_default() += 1;
    }
    for c in 0..6 {
        let name = format!("c{c}");
        let n = snap.customer_events(&name).unwrap().len();
        assert_eq!(
            n,
            per.get(name.as_str()).copied().unwrap_or(0),
            "{name} timeline after {step}"
        );
    }
}

#[test]
fn random_erasures_match_the_oracle() {
    for seed in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let opts = || Options::default().sync(Sync::Never);
        let mut db = Db::create(&path, opts()).unwrap();
        let mut rng = Rng::new(seed);
        let mut oracle: Vec<Row> = Vec::new();
        let mut ts = 1_000;
        for step in 0..40 {
            let what = rng.next_u64() % 10;
            let label = format!("seed {seed} step {step} op {what}");
            match what {
                0..=4 => {
                    let mut batch = Vec::new();
                    for _ in 0..(1 + rng.next_u64() % 20) {
                        let c = format!("c{}", rng.next_u64() % 6);
                        let name = ["visit", "purchase"][(rng.next_u64() % 2) as usize];
                        ts += (rng.next_u64() % 3) as i64;
                        let note = format!("n{}", rng.next_u64() % 50);
                        let e = event(&c, ts, name, &note);
                        oracle.push((c, ts, name.into(), vec![("note".into(), Value::Str(note))]));
                        batch.push(e);
                    }
                    db.commit(&batch).unwrap();
                }
                5 => db.flush().unwrap(),
                6 | 7 => {
                    let c = format!("c{}", rng.next_u64() % 7); // c6 is never written
                    let before = oracle.len();
                    oracle.retain(|r| r.0 != c);
                    let n = db.query(&format!("FORGET CUSTOMER '{c}'")).unwrap();
                    assert_eq!(
                        n.rows[0][1].to_string(),
                        (before - oracle.len()).to_string(),
                        "{label}"
                    );
                }
                8 => {
                    db.compact().unwrap();
                    if db.stats().segments <= 1 {
                        assert_eq!(
                            db.stats().pending_erasures,
                            0,
                            "{label}: compaction carried out erasures"
                        );
                    }
                }
                _ => {
                    drop(db);
                    db = Db::open(&path, opts()).unwrap();
                }
            }
            check(&db, &oracle, &label);
            // Checksums and dictionary references hold after every step (erased ids and values
            // are used by no visible row).
            db.verify().unwrap_or_else(|e| panic!("{label}: verify: {e}"));
        }
    }
}

/// Every row of every live segment file, decoded straight from the files (not through the
/// database's masks): the customer ids present.
fn raw_segment_customers(dir: &Path) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for id in journeydb::internals::segment::list(dir).unwrap() {
        let seg = Segment::open(dir, id, None).unwrap();
        for i in 0..seg.footer.blocks.len() {
            out.extend(seg.read_block(i, ColumnSet::ALL).unwrap().cid);
        }
    }
    out
}

#[test]
fn compaction_removes_erased_rows_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[
        event("keep", 1, "visit", "a"),
        event("erase-me", 2, "visit", "secret"),
    ])
    .unwrap();
    db.flush().unwrap();
    db.commit(&[event("erase-me", 3, "purchase", "secret2")]).unwrap();
    let erase_cid = db.snapshot().customer_id("erase-me").unwrap();
    let t = db.query("FORGET CUSTOMER 'erase-me'").unwrap();
    assert_eq!(t.rows[0][1].to_string(), "2");
    // Hidden at once, but still in the files until compaction.
    assert!(db.snapshot().customer_events("erase-me").unwrap().is_empty());
    assert!(raw_segment_customers(&path).contains(&erase_cid));
    let s = db.stats();
    assert_eq!((s.pending_erasures, s.pending_erased_events, s.events), (1, 2, 1));
    // Durable: a reopen still hides them.
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert!(db.snapshot().customer_events("erase-me").unwrap().is_empty());
    assert_eq!(db.stats().pending_erasures, 1);
    // Compaction rewrites the files without them and retires the erasure.
    assert!(db.compact().unwrap() >= 1);
    assert!(!raw_segment_customers(&path).contains(&erase_cid));
    assert_eq!(db.stats().pending_erasures, 0);
    // New events for the same id afterwards are new data.
    db.commit(&[event("erase-me", 10, "visit", "new")]).unwrap();
    assert_eq!(db.snapshot().customer_events("erase-me").unwrap().len(), 1);
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(db.snapshot().customer_events("erase-me").unwrap().len(), 1);
    assert_eq!(db.stats().events, 2);
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_containing(&p, needle));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// The GDPR promise: after the compaction, no file of the database holds the customer's id or
/// the property values only that customer had; everything else is intact.
#[test]
fn no_trace_of_an_erased_customer_in_the_raw_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let subject = "gdpr-subject-5d8e1f";
    let secrets = ["secret-note-a71c", "subject@example.org", "+44 20 7946 0958"];
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[
        event("keeper", 1, "visit", "shared-note").with_prop("email", "keeper@example.org"),
        event(subject, 2, "visit", secrets[0]).with_prop("email", secrets[1]),
        event(subject, 3, "visit", "shared-note").with_prop("phone", secrets[2]),
    ])
    .unwrap();
    db.flush().unwrap();
    // Some of the subject's events are still only in the log when the request comes.
    db.commit(&[
        event(subject, 4, "purchase", secrets[0]),
        event("keeper", 5, "purchase", "keeper-only"),
    ])
    .unwrap();
    // The scan sees what is there: before erasure, the id and values are in the files.
    for needle in [subject].iter().chain(&secrets) {
        assert!(
            !files_containing(&path, needle).is_empty(),
            "{needle} should be on disk now"
        );
    }
    assert_eq!(db.forget_customer(subject).unwrap(), 3);
    db.commit(&[event("keeper", 6, "visit", "later")]).unwrap();
    assert!(db.compact().unwrap() >= 1);
    for needle in [subject].iter().chain(&secrets) {
        assert_eq!(
            files_containing(&path, needle),
            Vec::<String>::new(),
            "{needle} is still on disk"
        );
    }
    // Values other customers use are kept, and everything else reads back intact.
    for needle in [
        "keeper",
        "shared-note",
        "keeper@example.org",
        "keeper-only",
        "later",
    ] {
        assert!(!files_containing(&path, needle).is_empty(), "{needle} was lost");
    }
    let expect = |db: &Db| {
        let evs = db.snapshot().customer_events("keeper").unwrap();
        let notes: Vec<String> = evs
            .iter()
            .map(|e| match &e.props.iter().find(|p| p.0 == "note").unwrap().1 {
                Value::Str(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(notes, ["shared-note", "keeper-only", "later"]);
        assert_eq!(db.stats().customers, 1);
        assert!(db.snapshot().customer_events(subject).unwrap().is_empty());
    };
    expect(&db);
    // Two sealed events (the third is still in the log), every dictionary reference valid.
    assert_eq!(db.verify().unwrap(), 2);
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    expect(&db);
    // The id and the values can come back as new data, with a new customer number.
    db.commit(&[event(subject, 9, "visit", secrets[0])]).unwrap();
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    let evs = db.snapshot().customer_events(subject).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(
        evs[0].props,
        vec![("note".to_string(), Value::Str(secrets[0].into()))]
    );
    assert_eq!(db.stats().customers, 2);
}

#[test]
fn forget_is_refused_on_snapshots_and_read_only_databases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[event("x", 1, "visit", "a")]).unwrap();
    let e = db
        .snapshot()
        .query("FORGET CUSTOMER 'x'")
        .unwrap_err()
        .to_string();
    assert!(e.contains("read-only"), "{e}");
    assert_eq!(
        db.query("FORGET CUSTOMER 'nobody'").unwrap().rows[0][1].to_string(),
        "0"
    );
    let e = db.query("FORGET 'x'").unwrap_err().to_string();
    assert!(e.contains("CUSTOMER"), "{e}");
    drop(db);
    let ro = Db::open_read_only(&path).unwrap();
    assert!(ro.query("FORGET CUSTOMER 'x'").is_err());
    assert_eq!(ro.snapshot().customer_events("x").unwrap().len(), 1);
}

/// Erasing everything: compaction writes a segment with no rows, which reopens and verifies.
#[test]
fn erasing_every_customer_leaves_an_empty_valid_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::create(&path, Options::default()).unwrap();
    db.commit(&[event("a", 1, "visit", "x"), event("b", 2, "purchase", "y")])
        .unwrap();
    db.flush().unwrap();
    db.commit(&[event("a", 3, "visit", "z")]).unwrap();
    assert_eq!(db.forget_customer("a").unwrap(), 2);
    assert_eq!(db.forget_customer("b").unwrap(), 1);
    db.compact().unwrap();
    assert_eq!(db.stats().events, 0);
    assert_eq!(db.stats().pending_erasures, 0);
    assert!(db.snapshot().events().unwrap().is_empty());
    assert_eq!(db.verify().unwrap(), 0);
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert!(db.snapshot().events().unwrap().is_empty());
    // The same answer as a database that never had the events.
    let fresh = Db::create(dir.path().join("fresh"), Options::default()).unwrap();
    for q in [
        "TREND count PERIOD day",
        "STAGES PERIOD week",
        "TREND uniq PERIOD week",
    ] {
        assert_eq!(db.query(q).unwrap(), fresh.query(q).unwrap(), "{q}");
    }
    db.commit(&[event("a", 4, "visit", "new")]).unwrap();
    assert_eq!(db.snapshot().customer_events("a").unwrap().len(), 1);
}
