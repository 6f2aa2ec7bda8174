//! Files whose checksums are good but whose structure is wrong (issue 35): a buggy writer, a
//! flip before the checksum was computed, or a hostile file. Each is refused with an error
//! naming the file; none is read as data. Each test states the invariant it protects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

mod common;

use journeydb::internals::dict::{self, DictDelta, DictEntry, DictKind, Dicts};
use journeydb::internals::error::FileError;
use journeydb::internals::manifest::{self, Erasure, Manifest};
use journeydb::internals::wal;
use journeydb::{Db, Error, Event, Options};

/// A database with two segments, an erasure and a dictionary; returns its live manifest.
fn sample(dir: &Path) -> Manifest {
    let db = Db::create(dir, Options::default()).unwrap();
    for b in 0..2 {
        let events: Vec<Event> = (0..4)
            .map(|i| Event::new(format!("c{}", (b * 4 + i) % 3), b * 100 + i, "visit").with_prop("n", i))
            .collect();
        db.commit(&events).unwrap();
        db.flush().unwrap();
    }
    db.forget_customer("c2").unwrap();
    drop(db);
    Manifest::read(dir, manifest::read_current(dir).unwrap()).unwrap()
}

/// Opens `dir` read-only, which must fail with a corruption error; its file, offset and reason.
fn corruption(dir: &Path, what: &str) -> (PathBuf, u64, String) {
    match Db::open_read_only(dir).map(drop) {
        Err(Error::File(FileError::Corrupt { path, offset, reason })) => (path, offset, reason),
        other => panic!("{what}: not corruption: {other:?}"),
    }
}

/// A saved cohort entry for the structure cases.
fn cohort(
    name: &str,
    members: Option<roaring::RoaringBitmap>,
) -> journeydb::internals::manifest::CohortEntry {
    journeydb::internals::manifest::CohortEntry {
        name: name.into(),
        definition: "DID a".into(),
        members,
    }
}

/// Publishes `m` (checksums good whatever it says) and expects every open to refuse it,
/// naming the manifest file, with `why` in the reason.
fn refused(dir: &Path, m: &Manifest, why: &str) {
    m.publish(dir).unwrap();
    let path = dir.join(manifest::manifest_name(m.number));
    for writable in [false, true] {
        let r = if writable {
            Db::open(dir, Options::default()).map(drop)
        } else {
            Db::open_read_only(dir).map(drop)
        };
        match r {
            Err(Error::File(FileError::Corrupt { path: p, reason, .. })) => {
                assert_eq!(p, path, "{why}: {reason}");
                assert!(reason.contains(why), "expected {why:?}, got {reason:?}");
            }
            other => panic!("{why} (writable {writable}): {other:?}"),
        }
    }
}

/// A manifest's invariants (docs/FORMAT.md §7): segment sequence ranges disjoint and ascending,
/// segment ids below `next_segment`, ranges within `next_seq`, erasures sorted with limits
/// within `next_seq` and customers within the dictionary, the number equal to the file's.
#[test]
fn structurally_wrong_manifests_are_refused() {
    type Breaks = fn(&mut Manifest);
    let cases: [(&str, Breaks); 10] = [
        ("past the dictionary", |m| {
            let members: roaring::RoaringBitmap = [0, m.dict_counts.customers].into_iter().collect();
            m.cohorts = vec![cohort("late", Some(members))];
        }),
        ("out of order or repeated", |m| {
            m.cohorts = vec![cohort("b", None), cohort("a", None)];
        }),
        ("out of order or repeated", |m| {
            m.cohorts = vec![cohort("a", None), cohort("a", None)];
        }),
        ("inconsistent entry", |m| {
            // Overlapping sequence ranges.
            m.segments[1].seq_min = m.segments[0].seq_end - 1;
        }),
        ("inconsistent entry", |m| {
            let id = m.next_segment;
            m.segments[1].id = id;
        }),
        ("inconsistent entry", |m| {
            m.segments[0].rows = m.segments[0].seq_end - m.segments[0].seq_min + 1
        }),
        ("past the manifest's next sequence", |m| {
            m.next_seq = m.segments[1].seq_end - 1
        }),
        ("out of order or range", |m| {
            let e = m.forgotten[0];
            m.forgotten[0].limit = m.next_seq + 1;
            assert_eq!(e.cid, m.forgotten[0].cid);
        }),
        ("out of order or range", |m| {
            m.forgotten[0].cid = m.dict_counts.customers
        }),
        ("out of order or range", |m| {
            let e = m.forgotten[0];
            m.forgotten.push(Erasure { rows: 0, ..e });
        }),
    ];
    for (why, breaks) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let mut m = sample(&dir);
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.forgotten.len(), 1);
        breaks(&mut m);
        m.number += 1;
        refused(&dir, &m, why);
    }
    // A manifest whose number is not its file's: CURRENT names 7, the file says 6.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut m = sample(&dir);
    m.number = 6;
    m.publish(&dir).unwrap();
    std::fs::rename(
        dir.join(manifest::manifest_name(6)),
        dir.join(manifest::manifest_name(7)),
    )
    .unwrap();
    let mut cur = m.clone();
    cur.number = 7;
    // Point CURRENT at 7 by publishing a throwaway 7 and putting the mislabeled file back.
    let mislabeled = std::fs::read(dir.join(manifest::manifest_name(7))).unwrap();
    cur.publish(&dir).unwrap();
    std::fs::write(dir.join(manifest::manifest_name(7)), mislabeled).unwrap();
    let (path, _, reason) = corruption(&dir, "mislabeled manifest");
    assert_eq!(path, dir.join(manifest::manifest_name(7)));
    assert!(reason.contains("disagrees with its file name"), "{reason}");
}

/// The dictionary log up to the manifest's valid length must hold exactly the manifest's entry
/// counts; each check stands alone: (a) an extra, well-formed frame inside the valid length,
/// (b) a damaged frame that holds no entries (so the counts would still match), (c) a frame
/// vacating an id that is already vacant, or one past the next id.
#[test]
fn dictionary_logs_must_match_the_manifest() {
    let frame_of = |entries: Vec<DictEntry>| {
        let mut payload = Vec::new();
        DictDelta { entries }.encode(&mut payload);
        wal::frame(&payload)
    };
    let entry = |kind, id, name: &str, vacant| DictEntry {
        kind,
        id,
        name: name.into(),
        ty: None,
        vacant,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let m = sample(&dir);
    let path = dict::dict_path(&dir, m.dict_gen);
    let good = std::fs::read(&path).unwrap();
    assert_eq!(good.len() as u64, m.dict_len);
    let customers = m.dict_counts.customers;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "disagree with the manifest",
            frame_of(vec![entry(DictKind::Customer, customers, "extra", false)]),
        ),
        ("bad dictionary frame", {
            let mut f = frame_of(vec![]);
            let last = f.len() - 1;
            f[last] ^= 1;
            f
        }),
        // c2 was vacated by the erasure; vacating it again is not an entry.
        (
            "cannot be vacated",
            frame_of(vec![entry(DictKind::Customer, 2, "", true)]),
        ),
        // An id past the next one is no customer's: vacating it is not an entry either (a
        // vacant slot is only ever taken at the next id).
        (
            "cannot be vacated",
            frame_of(vec![entry(DictKind::Customer, customers + 1, "", true)]),
        ),
    ];
    for (why, frame) in cases {
        let mut m2 = m.clone();
        let mut bytes = good.clone();
        bytes.extend_from_slice(&frame);
        m2.dict_len = bytes.len() as u64;
        m2.number += 1;
        std::fs::write(&path, &bytes).unwrap();
        m2.publish(&dir).unwrap();
        let (p, offset, reason) = corruption(&dir, why);
        assert_eq!(p, path, "{why}");
        assert!(reason.contains(why), "expected {why:?}: {reason}");
        assert!(
            offset >= good.len() as u64 && offset <= bytes.len() as u64,
            "{why}: offset {offset}"
        );

        std::fs::write(&path, &good).unwrap();
        let mut back = m.clone();
        back.number = m2.number + 1;
        back.publish(&dir).unwrap();
        Db::open_read_only(&dir).unwrap();
    }
    // Vacating twice in one delta is refused by the dictionary itself.
    let mut d = Dicts::default();
    d.apply(&DictDelta {
        entries: vec![entry(DictKind::Customer, 0, "a", false)],
    })
    .unwrap();
    let twice = DictDelta {
        entries: vec![
            entry(DictKind::Customer, 0, "", true),
            entry(DictKind::Customer, 0, "", true),
        ],
    };
    assert!(d.apply(&twice).unwrap_err().contains("cannot be vacated"));
}

/// The log of `dir` that holds records, and its bytes.
fn live_log(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 16)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// A database in `dir` holding one committed event (customer 0, event 0): its log and bytes.
fn one_event(dir: &Path) -> (PathBuf, Vec<u8>) {
    let db = Db::create(dir, Options::default()).unwrap();
    db.commit(&[Event::new("c", 0, "visit")]).unwrap();
    drop(db);
    live_log(dir)
}

/// The torn-tail rule looks past every record after a damaged one for proof that it was
/// durable: a damaged record A, then B from the same fsync group (written before A was durable:
/// no proof), then C written after A was durable, is corruption at A — the proof is the second
/// record after the damage, not the first. Without C (or with C also from A's group) it is a
/// torn tail and A, B and C are dropped.
#[test]
fn proof_of_durability_may_come_after_records_of_the_same_group() {
    for (c_durable, corrupt) in [(2, true), (1, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let (path, mut bytes) = one_event(&dir);
        let a_at = bytes.len();
        for (seq, durable) in [(1, 1), (2, 1), (3, c_durable)] {
            bytes.extend_from_slice(&wal::frame(&common::log_record(seq, durable)));
        }
        bytes[a_at + 8 + 3] ^= 0x10; // A's payload
        std::fs::write(&path, &bytes).unwrap();
        let r = Db::open_read_only(&dir);
        if corrupt {
            match r.map(drop) {
                Err(Error::File(FileError::Corrupt {
                    path: p,
                    offset,
                    reason,
                })) => {
                    assert_eq!((p, offset), (path.clone(), a_at as u64));
                    assert!(reason.contains("shows it was durable"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert_eq!(r.unwrap().snapshot().len(), 1, "the torn group is dropped whole");
        }
    }
}

/// A record whose `durable_seq` claims a record after its own was durable cannot have been
/// written: corruption at its offset.
#[test]
fn a_durable_sequence_past_the_record_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let (path, mut bytes) = one_event(&dir);
    let at = bytes.len();
    bytes.extend_from_slice(&wal::frame(&common::log_record(1, 2)));
    std::fs::write(&path, &bytes).unwrap();
    let (p, offset, reason) = corruption(&dir, "durable sequence past the record");
    assert_eq!(p, path);
    assert!(offset >= at as u64, "{offset}");
    assert!(reason.contains("durable sequence number after"), "{reason}");
}

/// A flipped bit in a record's length field is damage, not a torn write, even where no later
/// record proves the damaged one durable (`Sync::Never` records all carry the durable frontier
/// of their session's start): the frame's checksum matches its bytes up to the next intact
/// record. Every single-bit flip of the length of a record in the middle is corruption at that
/// record (the old rule dropped it and every record after it).
#[test]
fn a_flipped_length_is_corruption_without_proof_of_durability() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = Db::create(&dir, Options::default().sync(journeydb::Sync::Never)).unwrap();
    for b in 0..10 {
        db.commit(&[Event::new("c", b, "visit").with_prop("n", b)])
            .unwrap();
    }
    drop(db);
    let (path, bytes) = live_log(&dir);
    // The fourth record's frame.
    let mut at = 16;
    for _ in 0..3 {
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    for bit in 0..32 {
        let mut damaged = bytes.clone();
        damaged[at + bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &damaged).unwrap();
        let (p, offset, reason) = corruption(&dir, &format!("bit {bit}"));
        assert_eq!((p, offset), (path.clone(), at as u64), "bit {bit}");
        assert!(reason.contains("length field damaged"), "bit {bit}: {reason}");
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(Db::open_read_only(&dir).unwrap().snapshot().len(), 10);
}

/// Counts in a manifest are checked against the bytes that follow before anything is read or
/// allocated for them (a CRC-valid manifest claiming a billion segments must not allocate for
/// them): segment, stage-map and erasure counts past what the payload can hold are refused with
/// that reason.
#[test]
fn manifest_counts_past_the_payload_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let m = sample(&dir);
    assert!(m.stage_map.is_empty());
    let path = dir.join(manifest::manifest_name(m.number));
    let good = std::fs::read(&path).unwrap();
    // Header 16, frame header 8; payload: 5 u64, 4 u32, then the segment count.
    let segments_at = 16 + 8 + 56;
    let stages_at = segments_at + 4 + 40 * m.segments.len();
    let erasures_at = stages_at + 4;
    for (at, count, why) in [
        // Past what the rest could hold, but not by much (a looser bound would let these
        // through to fail later with another reason).
        (segments_at, 50u32, "segment count exceeds"),
        (stages_at, 50, "stage map count exceeds"),
        (erasures_at, 5, "erasure count exceeds"),
        (segments_at, u32::MAX, "segment count exceeds"),
        (segments_at, 3, "inconsistent entry"),
    ] {
        let mut bytes = good.clone();
        bytes[at..at + 4].copy_from_slice(&count.to_le_bytes());
        let crc = crc32fast::hash(&bytes[24..]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (p, offset, reason) = corruption(&dir, why);
        assert_eq!(p, path, "{why}");
        assert!(reason.contains(why), "expected {why:?}: {reason}");
        // The offset is in the file: at or just after the count (or in the entries).
        assert!(
            offset >= at as u64 && offset <= bytes.len() as u64,
            "{why}: offset {offset}, count at {at}"
        );
    }
    std::fs::write(&path, &good).unwrap();
    Db::open_read_only(&dir).unwrap();
}

/// A manifest or `CURRENT` is exactly one frame: bytes after it are corruption (where the
/// frame ends), and a `CURRENT` payload that is not exactly one number is corruption at the
/// byte where it stops making sense.
#[test]
fn manifest_and_current_are_exactly_one_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let m = sample(&dir);
    let path = dir.join(manifest::manifest_name(m.number));
    let good = std::fs::read(&path).unwrap();
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    std::fs::write(&path, &trailing).unwrap();
    let (p, offset, reason) = corruption(&dir, "trailing bytes");
    assert_eq!((p, offset), (path.clone(), good.len() as u64));
    assert!(reason.contains("trailing bytes"), "{reason}");

    std::fs::write(&path, &good).unwrap();
    // CURRENT holding the manifest number and one byte more, checksum good.
    let current = dir.join(manifest::CURRENT);
    let bytes = std::fs::read(&current).unwrap();
    let mut payload = bytes[24..32].to_vec();
    payload.push(0);
    let mut long = bytes[..16].to_vec();
    long.extend_from_slice(&wal::frame(&payload));
    std::fs::write(&current, &long).unwrap();
    let (p, offset, _) = corruption(&dir, "long CURRENT");
    assert_eq!((p, offset), (current.clone(), 16 + 8 + 8));

    std::fs::write(&current, &bytes).unwrap();
    // A manifest whose payload ends early: the error is at the payload's end.
    let mut short = good[..16].to_vec();
    short.extend_from_slice(&wal::frame(&good[24..24 + 50]));
    std::fs::write(&path, &short).unwrap();
    let (p, offset, _) = corruption(&dir, "short manifest");
    assert_eq!(p, path);
    assert!((24..=24 + 50).contains(&offset), "offset {offset}");
}

/// A manifest as the first format wrote it — without the optional erasure, dictionary
/// generation and database id sections (docs/FORMAT.md §7), in a database whose headers carry
/// id 0 — opens with those sections' defaults, and the database keeps working.
#[test]
fn a_manifest_without_its_optional_sections_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = Db::create(&dir, Options::default()).unwrap();
    db.commit(&[Event::new("c", 0, "visit"), Event::new("d", 1, "buy")])
        .unwrap();
    db.flush().unwrap();
    drop(db);
    let m = Manifest::read(&dir, manifest::read_current(&dir).unwrap()).unwrap();
    assert!(m.stage_map.is_empty() && m.forgotten.is_empty() && m.dict_gen == 0);
    for e in walk(&dir) {
        let mut bytes = std::fs::read(&e).unwrap();
        if bytes.len() >= 16 && e.file_name().is_some_and(|n| n != "LOCK") {
            bytes[12..16].fill(0);
            std::fs::write(&e, bytes).unwrap();
        }
    }
    // Header 16, frame header 8; the payload up to the end of the (empty) stage map.
    let path = dir.join(manifest::manifest_name(m.number));
    let bytes = std::fs::read(&path).unwrap();
    let end = 16 + 8 + 56 + 4 + 40 * m.segments.len() + 4;
    let payload = bytes[24..end].to_vec();
    let mut old = bytes[..16].to_vec();
    old.extend_from_slice(&wal::frame(&payload));
    std::fs::write(&path, &old).unwrap();
    let db = Db::open(&dir, Options::default()).unwrap();
    assert_eq!(db.snapshot().len(), 2);
    db.commit(&[Event::new("e", 2, "visit")]).unwrap();
    db.flush().unwrap();
    drop(db);
    let db = Db::open_read_only(&dir).unwrap();
    assert_eq!(db.verify().unwrap(), 3);
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Replay reports what it cut as torn: the bytes of a half-written last record, plus a last log
/// file cut inside its header (a crash while creating it); a header-only file is no tear.
#[test]
fn replay_counts_the_torn_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let (path, mut bytes) = one_event(&dir);
    let m = Manifest::read(&dir, manifest::read_current(&dir).unwrap()).unwrap();
    let frame = wal::frame(&common::log_record(1, 1));
    let torn = frame.len() / 2;
    bytes.extend_from_slice(&frame[..torn]);
    std::fs::write(&path, &bytes).unwrap();
    let n = wal::list(&dir).unwrap().into_iter().max().unwrap();
    let replay =
        |dir: &Path| wal::replay(dir, (m.wal_start, m.db_id), m.next_seq, false, |_| Ok(())).unwrap();
    // The open that wrote the event left an empty log after it: the tear is in an older file.
    let end = replay(&dir);
    assert_eq!((end.torn_bytes, end.next_seq), (torn as u64, 1));
    // Add a last log file cut inside its header.
    std::fs::write(wal::wal_path(&dir, n + 1), &bytes[..10]).unwrap();
    assert_eq!(replay(&dir).torn_bytes, torn as u64 + 10);
    // A header-only last file is not torn.
    std::fs::write(wal::wal_path(&dir, n + 1), &bytes[..16]).unwrap();
    assert_eq!(replay(&dir).torn_bytes, torn as u64);
}
