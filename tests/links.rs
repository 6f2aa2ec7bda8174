//! Identity links (docs/QUERY.md, "Identity links"): every statement on linked data equals the
//! reference evaluator on the data rewritten with the mapping (the anonymous ids' events
//! under their known ids, tied events by the documented rank), across flushes, unflushed rows,
//! compaction and a reopen; after UNLINK, it equals the original data's answer again. Plus the
//! guard rails, durability and FORGET.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Db, Event, Options, Query, Sync};
use proptest::prelude::*;

mod common;
use common::queries::*;
use common::reference::*;

/// The generated customers `c0`..`c3`, as a link draws them: each may be linked to another
/// (one level deep: a known id is never itself linked).
fn links_draw() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0usize..4, 0usize..4), 0..4).prop_map(|draws| {
        let mut links: Vec<(usize, usize)> = Vec::new();
        for (anonymous, known) in draws {
            let taken = |id: usize| links.iter().any(|&(a, k)| a == id || k == id);
            let is_anonymous = |id: usize| links.iter().any(|&(a, _)| a == id);
            if anonymous != known && !taken(anonymous) && !is_anonymous(known) {
                links.push((anonymous, known));
            }
        }
        links
    })
}

/// `evs` rewritten with `links` (customer names `c{n}`): an anonymous id's events belong to
/// its known id, and tied events of one journey go by rank — anonymous ids in the order the
/// database first saw them (its internal ids), the known id last — then their own order.
fn rewritten(evs: &[Ev], links: &[(usize, usize)]) -> Vec<Ev> {
    let mut first_seen: Vec<String> = Vec::new();
    for e in evs {
        if !first_seen.contains(&e.cust) {
            first_seen.push(e.cust.clone());
        }
    }
    let known_of = |cust: &str| {
        links
            .iter()
            .find(|&&(a, _)| cust == format!("c{a}"))
            .map(|&(_, k)| format!("c{k}"))
    };
    let is_known = |cust: &str| links.iter().any(|&(_, k)| cust == format!("c{k}"));
    evs.iter()
        .map(|e| {
            let rank = match known_of(&e.cust) {
                Some(_) => first_seen.iter().position(|c| *c == e.cust).unwrap_or(0),
                None if is_known(&e.cust) => 1_000,
                None => 0,
            };
            Ev {
                cust: known_of(&e.cust).unwrap_or_else(|| e.cust.clone()),
                seq: rank * 1_000_000 + e.seq,
                ..e.clone()
            }
        })
        .collect()
}

fn link_all(db: &Db, links: &[(usize, usize)], evs: &[Ev]) -> usize {
    let present = |n: usize| evs.iter().any(|e| e.cust == format!("c{n}"));
    let pairs: Vec<(String, String)> = links
        .iter()
        .filter(|&&(a, k)| present(a) && present(k))
        .map(|&(a, k)| (format!("c{a}"), format!("c{k}")))
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect();
    db.link(&refs).unwrap();
    pairs.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn linked_data_equals_rewritten_data(
        d in data(),
        links in links_draw(),
        qs in proptest::collection::vec(query(), 1..5),
    ) {
        let (dir, db, evs) = load(&d);
        let linked = link_all(&db, &links, &evs);
        let in_force: Vec<(usize, usize)> = links
            .iter()
            .copied()
            .filter(|&(a, k)| evs.iter().any(|e| e.cust == format!("c{a}")) && evs.iter().any(|e| e.cust == format!("c{k}")))
            .collect();
        prop_assert_eq!(linked, in_force.len());
        let want_evs = rewritten(&evs, &in_force);
        let check = |db: &Db, evs: &[Ev], when: &str| -> Result<(), TestCaseError> {
            let snap = db.snapshot();
            for q in &qs {
                let text = q.text();
                let got = snap.query(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                same(&got, &reference(q, evs)).map_err(|e| TestCaseError::fail(format!("{when}: {text}\n{e}")))?;
                let one = snap.query_with(&text, &journeydb::QueryOptions { threads: 1, ..Default::default() }).unwrap();
                prop_assert_eq!(&one, &got, "{}: {} on one thread", when, text);
            }
            Ok(())
        };
        check(&db, &want_evs, "linked")?;
        db.flush().unwrap();
        db.compact().unwrap();
        check(&db, &want_evs, "linked, compacted")?;
        drop(db);
        // Reopened without the kept journeys: every statement reads the linked customers' blocks.
        let db = Db::open(dir.path().join("db"), Options::default().sync(Sync::Never).linked_cache_bytes(0)).unwrap();
        check(&db, &want_evs, "linked, reopened, journeys read each time")?;
        for &(a, _) in &in_force {
            let anonymous = format!("c{a}");
            prop_assert!(db.unlink(&anonymous).unwrap());
        }
        check(&db, &evs, "unlinked")?;
    }
}

fn open(dir: &std::path::Path) -> Db {
    let path = dir.join("db");
    if path.exists() {
        Db::open(path, Options::default()).unwrap()
    } else {
        Db::create(path, Options::default()).unwrap()
    }
}

fn ids(db: &Db) -> Vec<(String, String)> {
    let table = db.query("LINKS").unwrap();
    table
        .rows
        .iter()
        .map(|row| (row[0].to_string(), row[1].to_string()))
        .collect()
}

#[test]
fn links_are_durable_listed_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for id in ["anon-1", "anon-2", "alice", "bob", "undefined", "Anonymous ", "0"] {
        db.commit(&[Event::new(id, 1_000_000, "visit")]).unwrap();
    }
    db.query("LINK 'anon-1' TO 'alice'").unwrap();
    db.query("LINK 'anon-2' TO 'alice'").unwrap();
    // Again: kept, said so.
    let again = db.query("LINK 'anon-1' TO 'alice'").unwrap();
    assert_eq!(again.rows[0][2].to_string(), "false");
    assert!(again.warnings[0].contains("already linked"));
    let refused = |text: &str, why: &str| {
        let e = db.query(text).unwrap_err().to_string();
        assert!(e.contains(why), "{text}: {e}");
    };
    refused("LINK 'undefined' TO 'alice'", "never links");
    refused("LINK 'anon-1' TO 'Anonymous '", "never links");
    refused("LINK 'bob' TO '0'", "never links");
    refused("LINK 'bob' TO 'bob'", "itself");
    refused("LINK 'anon-1' TO 'bob'", "is linked to 'alice'");
    refused("LINK 'bob' TO 'anon-1'", "itself linked to 'alice'");
    refused("LINK 'alice' TO 'bob'", "one level deep");
    refused("LINK 'carol' TO 'alice'", "no customer 'carol'");
    // All or nothing: one refused pair refuses the call.
    assert!(db.link(&[("bob", "alice"), ("bob", "bob")]).is_err());
    let want = vec![
        ("anon-1".to_owned(), "alice".to_owned()),
        ("anon-2".to_owned(), "alice".to_owned()),
    ];
    assert_eq!(ids(&db), want);
    assert_eq!(db.query("LINKS 'anon-2'").unwrap().rows.len(), 2);
    assert_eq!(db.query("LINKS 'bob'").unwrap().rows.len(), 0);
    // Durable, also across a crash without a clean close of the log (links sync it first).
    drop(db);
    let db = open(dir.path());
    assert_eq!(ids(&db), want);
    let top = db.query("TOP CUSTOMERS BY count LIMIT 10").unwrap();
    assert_eq!(top.rows[0][1].to_string(), "alice");
    assert_eq!(top.rows[0][2].to_string(), "3");
    assert!(!top.rows.iter().any(|row| row[1].to_string().starts_with("anon")));
    let timeline = db.query("TIMELINE 'anon-1'").unwrap();
    assert!(timeline.rows.is_empty());
    assert!(timeline.warnings[0].contains("TIMELINE 'alice'"));
    assert_eq!(db.query("TIMELINE 'alice'").unwrap().rows.len(), 3);
    // UNLINK: back to three customers.
    assert_eq!(
        db.query("UNLINK 'anon-1'").unwrap().rows[0][1].to_string(),
        "true"
    );
    assert!(db.query("UNLINK 'anon-1'").unwrap().warnings[0].contains("was not linked"));
    assert_eq!(db.query("TIMELINE 'alice'").unwrap().rows.len(), 2);
    // The cap on anonymous ids per customer.
    drop(db);
    let db = Db::open(
        dir.path().join("db"),
        Options::default().links_per_customer_max(1),
    )
    .unwrap();
    let e = db.query("LINK 'anon-1' TO 'alice'").unwrap_err().to_string();
    assert!(e.contains("already has 1 linked ids"), "{e}");
    // Configurable placeholders.
    drop(db);
    let db = Db::open(dir.path().join("db"), Options::default().never_link(&["bob"])).unwrap();
    assert!(
        db.query("LINK 'bob' TO 'alice'")
            .unwrap_err()
            .to_string()
            .contains("never links")
    );
    db.query("LINK 'undefined' TO 'alice'").unwrap();
}

#[test]
fn forgetting_a_known_id_erases_its_linked_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for (id, ts) in [("anon-1", 1), ("alice", 2), ("anon-2", 3), ("bob", 4)] {
        db.commit(&[Event::new(id, ts * 1_000_000, "visit")]).unwrap();
    }
    db.link(&[("anon-1", "alice"), ("anon-2", "alice")]).unwrap();
    let erased = db.query("FORGET CUSTOMER 'alice'").unwrap();
    assert_eq!(erased.rows[0][1].to_string(), "3");
    assert!(ids(&db).is_empty());
    let customers = db.query("TOP CUSTOMERS BY count LIMIT 10").unwrap();
    let names: Vec<String> = customers.rows.iter().map(|row| row[1].to_string()).collect();
    assert_eq!(names, ["bob"]);
    // Forgetting an anonymous id removes its link only.
    db.commit(&[Event::new("anon-3", 5_000_000, "visit")]).unwrap();
    db.link(&[("anon-3", "bob")]).unwrap();
    db.forget_customer("anon-3").unwrap();
    assert!(ids(&db).is_empty());
    drop(db);
    let db = open(dir.path());
    assert!(ids(&db).is_empty());
    assert_eq!(db.query("TIMELINE 'bob'").unwrap().rows.len(), 1);
}

#[test]
fn a_link_file_imports_whole_or_names_the_refused_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for id in ["a1", "a2", "a3", "alice", "bob"] {
        db.commit(&[Event::new(id, 1_000_000, "visit")]).unwrap();
    }
    drop(db);
    let run = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_journeydb"))
            .args([
                "import",
                dir.path().join("db").to_str().unwrap(),
                path.to_str().unwrap(),
                "--links",
            ])
            .output()
            .unwrap()
    };
    let bad = run("bad.csv", "customer_id,anonymous_id\nalice,a1\nbob,null\n");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("bad.csv:3:") && stderr.contains("'null' never links"),
        "{stderr}"
    );
    let empty = run("empty.csv", "anonymous_id,customer_id\na1,\n");
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(
        stderr.contains("empty.csv:2:2: column `customer_id`: empty id"),
        "{stderr}"
    );
    let good = run(
        "good.csv",
        "anonymous_id,customer_id,source\na1,alice,web\na2,alice,app\na3,bob,web\na1,alice,web\n",
    );
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        stdout.contains("4 links read, 3 new, 1 already in force"),
        "{stdout}"
    );
    let db = open(dir.path());
    // The refused file linked nothing: a1 → alice came from the good file only.
    assert_eq!(ids(&db).len(), 3);
}

/// A small shop's events: each person visits anonymously (one or two anonymous ids, or none),
/// then signs up and buys under a known id. Every timestamp is distinct. Returns (customer id
/// as stored, the person's known id, event) in commit order.
fn shop() -> Vec<(String, String, Event)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let mut rows: Vec<(String, String, Event)> = Vec::new();
    let t0 = 1_767_225_600_000_000i64; // 2026-01-01
    let mut tick = 0i64;
    for _ in 0..4_000 {
        let person = next(150);
        let known = format!("user-{person}");
        let anonymous = match person % 3 {
            0 => known.clone(),
            1 => format!("anon-{person}"),
            _ => format!("anon-{person}-{}", next(2)),
        };
        let stored = if next(3) == 0 { known.clone() } else { anonymous };
        tick += 1 + next(5) as i64;
        let ts = t0 + tick * 997_000_000;
        let channel = ["web", "mobile", "store"][next(3) as usize];
        let event = match next(10) {
            0..=3 => Event::new(stored.clone(), ts, "visit").with_prop("channel", channel),
            4..=5 => Event::new(stored.clone(), ts, "view_product"),
            6 => Event::new(stored.clone(), ts, "add_to_cart"),
            7..=8 => Event::new(stored.clone(), ts, "purchase")
                .with_prop("amount", (next(10_000) as f64) / 4.0 + person as f64 / 1024.0)
                .with_prop("channel", channel),
            _ => Event::new(stored.clone(), ts, "survey").with_prop("score", next(11) as i64),
        };
        rows.push((stored, known, event));
    }
    rows
}

/// Every statement family on linked data equals the same statement on the data stored under the
/// known ids (the rows of each answer compared as sets: internal ids, which order some ties,
/// differ between the two databases).
#[test]
fn every_statement_family_sees_one_customer() {
    let dir = tempfile::tempdir().unwrap();
    let linked = Db::create(dir.path().join("linked"), Options::default().sync(Sync::Never)).unwrap();
    let stored = Db::create(dir.path().join("stored"), Options::default().sync(Sync::Never)).unwrap();
    let rows = shop();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (at, (id, known, event)) in rows.iter().enumerate() {
        linked.commit(std::slice::from_ref(event)).unwrap();
        let mut rewritten = event.clone();
        rewritten.customer = known.clone();
        stored.commit(&[rewritten]).unwrap();
        if id != known && !pairs.iter().any(|(a, _)| a == id) {
            pairs.push((id.clone(), known.clone()));
        }
        if at % 1_500 == 1_499 {
            linked.flush().unwrap();
        }
    }
    // Known ids that never had an event of their own get one, so that both ids exist.
    for (_, known) in &pairs {
        if !rows.iter().any(|(id, _, _)| id == known) {
            panic!("{known} has no events: the generator must give every known id one");
        }
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect();
    assert!(linked.link(&refs).unwrap() > 50);
    let statements = [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d BY channel",
        "FUNNEL visit -> purchase WITHIN 3d MODE STRICT",
        "RETENTION visit RETURN purchase PERIOD week PERIODS 6",
        "TREND uniq OF visit PERIOD week",
        "TREND sum(amount) OF purchase PERIOD week BY channel",
        "TREND sessions PERIOD week",
        "LIFECYCLE OF visit PERIOD week",
        "STICKINESS OF visit PERIOD week",
        "STAGES PERIOD week",
        "TRANSITIONS",
        "TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 20",
        "TOP CUSTOMERS BY days_active LIMIT 500",
        "RFM OF purchase VALUE amount",
        "PATHS AFTER visit STEPS 3 TOP 20",
        "PATHS BEFORE purchase STEPS 2 COLLAPSE REPEATS",
        "HEATMAP OF visit",
        "ATTRIBUTION purchase VALUE amount BY channel MODEL linear",
        "ATTRIBUTION purchase BY channel MODEL first LOOKBACK 7d",
        "CORRELATE FUNNEL visit -> purchase WITHIN 7d SIGNIFICANCE 1",
        "CHANGES uniq OF purchase PERIOD week BY channel",
        "TREND nps(score) OF survey PERIOD month",
        "CUSTOMERS FUNNEL visit -> purchase WITHIN 7d STEP 2 LIMIT 1000",
        "FIT purchase UNIT day FROM '2026-01-01' TO '2026-02-15'",
        "PREDICT purchase UNIT day FROM '2026-01-01' TO '2026-02-15' HORIZON 30 SUMMARY",
    ];
    // Floats to 10 significant digits: sums over customers in another order differ in the last
    // bits.
    let cell = |cell: &journeydb::Cell| match cell {
        journeydb::Cell::Float(value) | journeydb::Cell::Rate(value) => format!("{value:.9e}"),
        other => format!("{other:?}"),
    };
    let sorted = |table: &journeydb::Table| {
        let mut rows: Vec<String> = (table.rows.iter())
            .map(|row| row.iter().map(cell).collect::<Vec<_>>().join("|"))
            .collect();
        rows.sort();
        (table.columns.clone(), rows)
    };
    let answers_of = |stored: &Db| -> Vec<journeydb::Table> {
        (statements.iter())
            .map(|text| stored.query(text).unwrap_or_else(|e| panic!("{text}: {e}")))
            .collect()
    };
    let answers = answers_of(&stored);
    let compare = |linked: &Db, answers: &[journeydb::Table], what: &str| {
        for (text, want) in statements.iter().zip(answers) {
            let got = linked.query(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!want.rows.is_empty(), "{text}: no rows");
            assert_eq!(sorted(&got), sorted(want), "{what}: {text}");
        }
    };
    compare(&linked, &answers, "journeys kept");
    // Without the kept journeys (every statement reads the linked customers' blocks), and
    // with some rows not yet in a segment.
    drop(linked);
    let linked = Db::open(
        dir.path().join("linked"),
        Options::default().sync(Sync::Never).linked_cache_bytes(0),
    )
    .unwrap();
    compare(&linked, &answers, "journeys read each time");
    // A customer without links erased and not yet compacted away: the segments hide it, and
    // the linked customers are read apart from those masks.
    assert!(!pairs.iter().any(|(_, known)| known == "user-3"));
    for db in [&linked, &stored] {
        assert!(db.forget_customer("user-3").unwrap() > 0);
    }
    compare(&linked, &answers_of(&stored), "a customer erased");
    // A cohort of linked customers, and a statement restricted to it.
    for db in [&linked, &stored] {
        db.query("CREATE COHORT buyers AS DID purchase AT LEAST 3 TIMES")
            .unwrap();
    }
    for text in [
        "COHORTS",
        "FUNNEL visit -> purchase WITHIN 7d WHERE CUSTOMER IN buyers",
    ] {
        assert_eq!(
            sorted(&linked.query(text).unwrap()),
            sorted(&stored.query(text).unwrap()),
            "{text}"
        );
    }
}

/// The journeys kept for a version of the sealed segments follow every change: rows committed
/// since (read each time and merged in), a flush, a new link, an UNLINK, an erasure.
#[test]
fn kept_journeys_follow_commits_links_and_erasures() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let visit = |id: &str, ts: i64| db.commit(&[Event::new(id, ts * 1_000_000, "visit")]).unwrap();
    for (at, id) in ["anon-1", "alice", "anon-2", "bob", "anon-1"]
        .into_iter()
        .enumerate()
    {
        visit(id, at as i64);
    }
    db.flush().unwrap();
    db.link(&[("anon-1", "alice")]).unwrap();
    let counts = |db: &Db| -> Vec<(String, String)> {
        let table = db.query("TOP CUSTOMERS BY count LIMIT 10").unwrap();
        (table.rows.iter())
            .map(|row| (row[1].to_string(), row[2].to_string()))
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        counts(&db),
        pairs(&[("alice", "3"), ("anon-2", "1"), ("bob", "1")])
    );
    // Unsealed rows of a kept journey, and of a linked id without sealed rows.
    visit("anon-1", 10);
    db.commit(&[Event::new("anon-3", 11_000_000, "visit")]).unwrap();
    db.link(&[("anon-3", "bob")]).unwrap();
    assert_eq!(
        counts(&db),
        pairs(&[("alice", "4"), ("bob", "2"), ("anon-2", "1")])
    );
    visit("alice", 12);
    assert_eq!(
        counts(&db),
        pairs(&[("alice", "5"), ("bob", "2"), ("anon-2", "1")])
    );
    db.flush().unwrap();
    assert_eq!(
        counts(&db),
        pairs(&[("alice", "5"), ("bob", "2"), ("anon-2", "1")])
    );
    db.link(&[("anon-2", "alice")]).unwrap();
    assert_eq!(counts(&db), pairs(&[("alice", "6"), ("bob", "2")]));
    db.unlink("anon-1").unwrap();
    assert_eq!(
        counts(&db),
        pairs(&[("alice", "3"), ("anon-1", "3"), ("bob", "2")])
    );
    db.forget_customer("bob").unwrap();
    assert_eq!(counts(&db), pairs(&[("alice", "3"), ("anon-1", "3")]));
}

/// A cancelled statement stops in the linked customers' pass too (here everyone is linked, so
/// no other part of the scan would notice), also when there is one journey to fold.
#[test]
fn cancelling_stops_the_linked_pass() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.commit(&[
        Event::new("anon-1", 1_000_000, "visit"),
        Event::new("alice", 2_000_000, "purchase"),
    ])
    .unwrap();
    db.flush().unwrap();
    db.link(&[("anon-1", "alice")]).unwrap();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    for text in [
        "FUNNEL visit -> purchase WITHIN 1d",
        "TOP CUSTOMERS BY count LIMIT 5",
    ] {
        let opts = journeydb::QueryOptions {
            threads: 1,
            cancel: cancel.clone(),
            ..Default::default()
        };
        let e = db.query_with(text, &opts).unwrap_err();
        assert!(matches!(e, journeydb::QueryError::Cancelled), "{text}: {e}");
    }
    assert_eq!(db.query("TOP CUSTOMERS BY count LIMIT 5").unwrap().rows.len(), 1);
}

/// More linked ids than the pass's cancellation stride (4,096): none cancels uncalled, and
/// every journey is folded.
#[test]
fn thousands_of_linked_customers() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let people = 2_100;
    let mut events = Vec::new();
    for person in 0..people {
        events.push(Event::new(format!("anon-{person}"), 1_000_000 + person, "visit"));
        events.push(Event::new(
            format!("user-{person}"),
            9_000_000 + person,
            "purchase",
        ));
    }
    db.commit(&events).unwrap();
    db.flush().unwrap();
    let names: Vec<(String, String)> = (0..people)
        .map(|person| (format!("anon-{person}"), format!("user-{person}")))
        .collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect();
    assert_eq!(db.link(&pairs).unwrap(), people as usize);
    for threads in [1, 2] {
        let opts = journeydb::QueryOptions {
            threads,
            ..Default::default()
        };
        let funnel = db
            .query_with("FUNNEL visit -> purchase WITHIN 1d", &opts)
            .unwrap();
        let customers: Vec<String> = funnel.rows.iter().map(|row| row[2].to_string()).collect();
        assert_eq!(customers, ["2100", "2100"], "{threads} threads");
    }
}
