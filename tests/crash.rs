//! Crash test (the sled pattern): this test binary re-executes itself as a child process that
//! commits batches with `Sync::EveryCommit`, printing each acknowledged batch number; the
//! parent kills it with SIGKILL at a random moment, reopens the database, and checks that every
//! acknowledged batch is present exactly once and whole, and that nothing else appears except
//! possibly the single batch that was in flight; the child changes the stage map now and then,
//! and every event must have the stage the reopened map gives it. Repeated at least 50 times
//! per run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test/bench code: a failure should abort loudly

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use journeydb::{Db, Event, Options, Stage, Sync, Value};

mod common;

const CHILD_ENV: &str = "JOURNEYDB_CRASH_CHILD_DIR";
const START_ENV: &str = "JOURNEYDB_CRASH_CHILD_START";
const EVENTS_PER_BATCH: i64 = 7;

fn batch(b: i64) -> Vec<Event> {
    (0..EVENTS_PER_BATCH)
        .map(|i| {
            // Customers two events each, so that a batch's rows reversed are out of
            // (customer, time) order whatever ids its customers were given.
            Event::new(
                format!("c{}", (b * 7 + i / 2) % 53),
                b * 1_000 + i,
                ["visit", "add_to_cart", "purchase"][(i % 3) as usize],
            )
            .with_prop("batch", b)
            .with_prop("i", i)
            .with_prop("note", format!("batch {b} item {i}"))
        })
        .collect()
}

/// The child: runs only when the parent sets the environment variable.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let start: i64 = std::env::var(START_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let path = Path::new(&dir);
    let opts = Options::default().sync(Sync::EveryCommit).buffer_events_max(200);
    let db = if path.join("CURRENT").exists() {
        Db::open(path, opts)
    } else {
        Db::create(path, opts)
    }
    .unwrap_or_else(|e| panic!("child open: {e}"));
    for b in start.. {
        if b % 4 == 2 && cfg!(feature = "parquet") {
            import_batch(&db, path, b);
        } else {
            db.commit(&batch(b))
                .unwrap_or_else(|e| panic!("child commit: {e}"));
        }
        println!("ack {b}");
        if b % 37 == 0 {
            db.compact().unwrap_or_else(|e| panic!("child compact: {e}"));
        }
        // The stage map changes now and then: history is re-staged in the same switch.
        if b % 23 == 11 {
            let stage = [Stage::Purchase, Stage::Retention][(b / 23 % 2) as usize];
            db.set_stage("purchase", Some(stage))
                .unwrap_or_else(|e| panic!("child set_stage: {e}"));
        }
    }
}

/// Imports batch `b` from a Parquet file written beside the database, its rows reversed (out
/// of (customer, time) order), in parts of two rows: it is sorted through runs of three rows.
fn import_batch(db: &Db, dir: &Path, b: i64) {
    #[cfg(feature = "parquet")]
    {
        let file = dir.with_extension(format!("{b}.parquet"));
        let rows: Vec<Event> = batch(b).into_iter().rev().collect();
        common::events_parquet(&file, &rows);
        let opts = journeydb::import::ImportOptions {
            part_rows: Some(2),
            run_rows: Some(3),
            ..Default::default()
        };
        let done = db
            .import_file(&file, &opts, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("child import: {e}"));
        assert!(done.runs >= 2, "batch {b} was not sorted through runs: {done:?}");
        let _ = std::fs::remove_file(&file);
    }
    #[cfg(not(feature = "parquet"))]
    let _ = (db, dir, b);
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut acked_all: Vec<i64> = Vec::new();
    let mut next_start = 0i64;
    let iterations = std::env::var("JOURNEYDB_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    for iter in 0..iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &dir)
            .env(START_ENV, next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read acks on a thread so that the kill moment is independent of output.
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints "test crash_child ... " without a newline before the first ack.
                if let Some(pos) = line.find("ack ") {
                    acked.push(line[pos + 4..].trim().parse::<i64>().unwrap());
                }
            }
            acked
        });
        // The child's panics are failures even when they come after the kill was decided.
        let stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        let wait = Duration::from_millis(20 + xorshift(&mut rng) % 150);
        let t0 = Instant::now();
        while t0.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        let errors = errors.join().unwrap();
        assert!(
            !errors.contains("panicked"),
            "iteration {iter}: the child panicked:\n{errors}"
        );
        acked_all.extend(&acked);

        let db = Db::open(&dir, Options::default())
            .unwrap_or_else(|e| panic!("iteration {iter}: reopen failed: {e}"));
        let events = db.snapshot().events().unwrap();
        // No event has a stage of its own: every one has the stage the live map gives it
        // (a map change and the re-staging of history are one switch).
        let map = db.stage_map();
        for e in &events {
            assert_eq!(
                e.stage,
                map.get(&e.name).copied(),
                "iteration {iter}: {e:?} under the map {map:?}"
            );
        }
        let mut by_batch: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
        for e in &events {
            let b = e.props.iter().find(|(k, _)| k == "batch").map(|(_, v)| v.clone());
            let Some(Value::I64(b)) = b else {
                panic!("event without batch: {e:?}")
            };
            by_batch.entry(b).or_default().push((e.ts_us, e.customer.clone()));
        }
        for &b in &acked_all {
            assert!(
                by_batch.contains_key(&b),
                "iteration {iter}: acknowledged batch {b} lost"
            );
        }
        // Batches below `next_start` were found present after an earlier kill.
        let max_acked = acked_all.iter().copied().max().unwrap_or(-1).max(next_start - 1);
        for (&b, evs) in &by_batch {
            // Exactly once and whole: every batch has exactly its events, no duplicates.
            let mut want: Vec<(i64, String)> =
                batch(b).iter().map(|e| (e.ts_us, e.customer.clone())).collect();
            let mut got = evs.clone();
            want.sort();
            got.sort();
            assert_eq!(
                got, want,
                "iteration {iter}: batch {b} is not whole or duplicated"
            );
            // Nothing invented: only acknowledged batches and the one in flight.
            assert!(
                b <= max_acked + 1,
                "iteration {iter}: batch {b} was never committed (started at {next_start}, acked this run {:?}..{:?}, present up to {:?})",
                acked.first(),
                acked.last(),
                by_batch.keys().last()
            );
        }
        // Batches present form a prefix of the commit order.
        let present: Vec<i64> = by_batch.keys().copied().collect();
        assert_eq!(
            present,
            (0..present.len() as i64).collect::<Vec<_>>(),
            "iteration {iter}: not a prefix"
        );
        next_start = present.len() as i64;
        acked_all.retain(|&b| b < next_start);
        drop(db);
    }
    eprintln!(
        "crash test: {iterations} kills, {next_start} batches survive, every acknowledged one present once"
    );
    assert!(next_start > 0, "the child never committed anything");
}
