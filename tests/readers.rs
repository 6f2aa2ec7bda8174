//! Read-only opens against a busy writer (issue 33 §3): a writer commits small batches with
//! frequent flushes, compactions and dictionary rewrites (erasures) while readers open the
//! database read-only in a loop, as threads and as processes (`journeydb DB --read-only -c`).
//! No open may fail (the database is healthy), and every view must be a whole prefix of the
//! commits: never fewer events than were acknowledged before the open began, always whole
//! batches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should abort loudly

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use journeydb::{Db, Event, Options};

const BATCH: u64 = 10;

fn batch(b: u64) -> Vec<Event> {
    (0..BATCH)
        .map(|i| {
            Event::new(
                format!("c{}", (b * 3 + i) % 41),
                (b * 100 + i) as i64 * 1_000_000,
                "visit",
            )
            .with_prop("note", format!("n{}", b % 97))
        })
        .collect()
}

fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn read_only_opens_never_fail_against_a_busy_writer() {
    let tmp = scratch();
    let dir = tmp.path().join("db");
    let writer = Db::create(&dir, Options::default().buffer_events_max(40)).unwrap();
    // Batches whose commit returned, and batches begun (a view may also hold one erased
    // customer's batch that is not yet erased).
    let acked = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (dir, acked, started, stop) = (dir.clone(), acked.clone(), started.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut opens = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst) * BATCH;
                let db = Db::open_read_only(&dir).unwrap_or_else(|e| panic!("read-only open {opens}: {e}"));
                let ceiling = (started.load(Ordering::SeqCst) + 1) * BATCH;
                let n = db.snapshot().len();
                assert!(
                    n >= floor && n <= ceiling + BATCH && n.is_multiple_of(BATCH),
                    "open {opens}: {n} events; acknowledged before the open {floor}, begun {ceiling}"
                );
                db.verify()
                    .unwrap_or_else(|e| panic!("verify after open {opens}: {e}"));
                opens += 1;
            }
            opens
        }));
    }
    let process_reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new(env!("CARGO_BIN_EXE_journeydb"))
                    .arg(&dir)
                    .args([
                        "--read-only",
                        "-c",
                        "TREND count PERIOD month",
                        "--format",
                        "json",
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "process reader {runs}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut b = 0u64;
    while Instant::now() < deadline || b < 400 {
        started.store(b + 1, Ordering::SeqCst);
        writer.commit(&batch(b)).unwrap();
        acked.store(b + 1, Ordering::SeqCst);
        if b % 50 == 49 {
            writer.compact().unwrap();
        }
        if b % 120 == 119 {
            // A customer of its own, committed and erased: the erasure publishes a manifest,
            // and the next compaction rewrites the dictionary into a new generation.
            let victim: Vec<Event> = batch(b)
                .into_iter()
                .map(|mut e| {
                    e.customer = format!("victim-{b}");
                    e
                })
                .collect();
            writer.commit(&victim).unwrap();
            assert_eq!(writer.forget_customer(&format!("victim-{b}")).unwrap(), BATCH);
        }
        b += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let opens: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let runs = process_reader.join().unwrap();
    eprintln!("{b} batches written; {opens} read-only opens in threads and {runs} in processes; 0 errors");
    assert!(opens > 100 && runs > 5, "{opens} opens, {runs} process runs");
}
