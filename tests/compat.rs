//! Compatibility with databases written by older builds: `tests/fixtures/legacy_timestamps/` is
//! a database whose segments store timestamps as builds before tag 9 did (the first segment in
//! tag 7, two-width bit-packed deltas; the second in tag 2, varint deltas; docs/FORMAT.md §5.1).
//! It opens, verifies, and answers every statement exactly as a database written today from the
//! same events; compaction rewrites it in today's encoding with the same answers.
//!
//! The fixture was made with `cargo test --test compat -- --ignored write_the_fixture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

use journeydb::internals::codec;
use journeydb::internals::segment::{self, Segment};
use journeydb::{Db, Event, Options, Query, Stage, Sync, demo};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy_timestamps")
}

/// About 3,000 demo events in time order with timestamps cut to whole seconds (ties), in two halves.
fn halves() -> (Vec<Event>, Vec<Event>) {
    let mut rows = demo::generate(3_000, 0, 11);
    for r in &mut rows {
        r.ts_us -= r.ts_us.rem_euclid(1_000_000);
    }
    rows.sort_by_key(|r| r.ts_us);
    let events: Vec<Event> = rows.iter().map(demo::Row::to_event).collect();
    let (a, b) = events.split_at(events.len() / 2);
    (a.to_vec(), b.to_vec())
}

/// Writes `halves` into a new database at `dir`, one segment each, the first with timestamps
/// in tag `tags.0`, the second in tag `tags.1` (0: today's encoding).
fn write(dir: &Path, tags: (u8, u8)) -> Db {
    let db = Db::create(dir, Options::default().sync(Sync::Never)).unwrap();
    for (name, stage) in demo::EVENTS {
        db.set_stage(name, Some(stage)).unwrap();
    }
    let (first, second) = halves();
    for (events, tag) in [(first, tags.0), (second, tags.1)] {
        segment::write_legacy_timestamps(tag);
        db.commit(&events).unwrap();
        db.flush().unwrap();
    }
    segment::write_legacy_timestamps(0);
    db
}

/// The tag of the timestamp chunk of every block of every segment in `dir`.
fn timestamp_tags(dir: &Path) -> Vec<u8> {
    let mut tags = Vec::new();
    for id in segment::list(dir).unwrap() {
        let seg = Segment::open(dir, id, None).unwrap();
        let bytes = std::fs::read(seg.path()).unwrap();
        for block in &seg.footer.blocks {
            let c = block.chunks[1];
            let stored = &bytes[c.offset as usize..(c.offset + u64::from(c.stored_len)) as usize];
            let raw = if stored.first() == Some(&codec::ZSTD_MAGIC[0]) {
                codec::decompress(stored, c.raw_len as usize, usize::MAX).unwrap()
            } else {
                stored.to_vec()
            };
            tags.push(raw[0]);
        }
    }
    tags
}

const QUERIES: &[&str] = &[
    "FUNNEL visit -> view_product -> add_to_cart -> purchase WITHIN 7d",
    "FUNNEL visit -> purchase WITHIN 1d MODE STRICT TIES STRICT BY channel",
    "FUNNEL purchase -> visit -> purchase WITHIN 30d MODE UNORDERED FROM '2026-01-10' TO '2026-03-01'",
    "RETENTION visit RETURN purchase PERIOD week PERIODS 6 FIRST_TIME",
    "RETENTION visit RETURN visit PERIOD day PERIODS 10 TZ 'America/New_York'",
    "TREND count PERIOD day",
    "TREND uniq PERIOD week BY channel",
    "TREND sum(amount) OF STAGE purchase PERIOD month",
    "TREND avg(amount) PERIOD day TZ 'Europe/Berlin' WHERE channel = 'web'",
    "LIFECYCLE OF visit OR purchase PERIOD week",
    "STICKINESS OF visit PERIOD day",
    "STAGES PERIOD week",
    "TRANSITIONS",
    "TIMELINE '7'",
    "CUSTOMERS FUNNEL visit -> purchase WITHIN 7d STEP 2 LIMIT 50",
    "CUSTOMERS IN STAGE purchase FROM '2026-02-01' TO '2026-02-15 12:00'",
];

/// Every statement's answer on `db`, as text.
fn answers(db: &Db) -> Vec<String> {
    QUERIES
        .iter()
        .map(|q| format!("{q}\n{:?}", db.query(q).unwrap()))
        .collect()
}

#[test]
fn legacy_timestamp_segments_answer_as_today() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    copy_dir(&fixture(), &old);
    let tags = timestamp_tags(&old);
    assert!(
        tags.contains(&7) && tags.contains(&2),
        "the fixture's timestamp tags: {tags:?}"
    );
    assert!(!tags.contains(&9), "the fixture's timestamp tags: {tags:?}");
    let today = write(&tmp.path().join("today"), (0, 0));
    assert!(timestamp_tags(&tmp.path().join("today")).iter().all(|&t| t == 9));
    let db = Db::open(&old, Options::default()).unwrap();
    assert_eq!(db.verify().unwrap(), today.snapshot().len());
    assert_eq!(
        db.snapshot().events().unwrap(),
        today.snapshot().events().unwrap()
    );
    let want = answers(&today);
    assert_eq!(answers(&db), want);
    // Compaction rewrites the old segments in today's encoding; the answers stay.
    assert_eq!(db.compact().unwrap(), 2);
    assert!(timestamp_tags(&old).iter().all(|&t| t == 9));
    assert_eq!(answers(&db), want);
}

/// Makes `tests/fixtures/legacy_timestamps` (run once by hand; see the module comment).
#[test]
#[ignore]
fn write_the_fixture() {
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    drop(write(&dir, (7, 2)));
    let _ = std::fs::remove_file(dir.join("LOCK"));
    assert_eq!(timestamp_tags(&dir).iter().filter(|&&t| t == 9).count(), 0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The stage names the fixture's stage map uses.
#[test]
fn the_fixture_keeps_its_stage_map() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    copy_dir(&fixture(), &old);
    let db = Db::open_read_only(&old).unwrap();
    let map = db.stage_map();
    // `survey` came after the fixture was written.
    for (name, stage) in demo::EVENTS.into_iter().filter(|(name, _)| *name != "survey") {
        assert_eq!(map.get(name), Some(&stage), "{name}");
    }
    assert!(map.values().any(|&s| s == Stage::Purchase));
}
