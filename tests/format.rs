//! The documented format is the real one: a log file written by an independent implementation
//! straight from docs/FORMAT.md §4 (a Python script; the file is the `wal_replay` fuzz seed)
//! replays to exactly the records it meant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::internals::dict::DictKind;
use journeydb::internals::model::PropType;
use journeydb::internals::wal;

#[test]
fn log_written_from_the_spec_replays() {
    let seed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wal_replay/two_records.log");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(wal::WAL_DIR)).unwrap();
    std::fs::copy(&seed, wal::wal_path(dir.path(), 1)).unwrap();
    let mut recs = Vec::new();
    let end = wal::replay(dir.path(), (0, 0), 0, false, |r| {
        recs.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(end.next_seq, 3);
    assert_eq!(end.torn_bytes, 0);
    assert_eq!(recs.len(), 2);
    let d = &recs[0].delta.entries;
    assert_eq!(d.len(), 4);
    assert_eq!(
        (d[0].kind, d[0].id, d[0].name.as_str()),
        (DictKind::Customer, 0, "alice")
    );
    assert_eq!(
        (d[2].kind, d[2].name.as_str(), d[2].ty),
        (DictKind::Prop, "channel", Some(PropType::Str))
    );
    let r = &recs[1].rows;
    assert_eq!(recs[1].first_seq, 1);
    assert_eq!(r.cid, vec![0, 0]);
    assert_eq!(r.ts, vec![1_769_990_460_000_000, 1_769_990_470_000_000]);
    assert_eq!(r.event, vec![1, 0]);
    assert_eq!(r.stage, vec![3, 1]);
    assert_eq!(r.props[0].valid, vec![true, true]);
}
