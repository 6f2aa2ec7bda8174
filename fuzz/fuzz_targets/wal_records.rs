//! Checksum-valid log records with arbitrary contents (issue 33 §4): each input is cut into
//! record payloads (`kind 2 | first_seq` supplied, the rest from the input), framed with a good
//! checksum and appended to the log of a real database holding one valid batch. Opening must
//! give a database or a typed error; on a database, `verify`, export and queries over every
//! statement kind must answer or return an error — never panic, whatever values the records
//! carry (timestamps at i64's ends, unknown ids, NaN).
#![no_main]

use journeydb::internals::wal;
use journeydb::{Db, Event, Options, Query};
use libfuzzer_sys::fuzz_target;

const QUERIES: [&str; 8] = [
    "TREND count PERIOD day",
    "TREND sum(amount) PERIOD month",
    "RETENTION visit RETURN visit PERIOD week PERIODS 4",
    "STAGES PERIOD month",
    "LIFECYCLE OF visit PERIOD week",
    "FUNNEL visit -> purchase WITHIN 7d",
    "TIMELINE 'c'",
    "TRANSITIONS",
];

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let dir = tmp.path().join("db");
    let Ok(db) = Db::create(&dir, Options::default()) else { return };
    let first = Event::new("c", 1_000_000, "visit")
        .with_prop("note", "x")
        .with_prop("amount", 1.5)
        .with_prop("vip", true);
    if db.commit(&[first]).is_err() {
        return;
    }
    drop(db);
    // The log file holding the committed batch (the open after it may have added an empty one).
    let Ok(numbers) = wal::list(&dir) else { return };
    let Some(path) = numbers
        .iter()
        .map(|&n| wal::wal_path(&dir, n))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 16))
    else {
        return;
    };
    let Ok(mut log) = std::fs::read(&path) else { return };
    let mut seq = 1u64;
    for chunk in data.split(|&b| b == 0xff).take(8) {
        let mut payload = vec![2u8];
        payload.extend_from_slice(&seq.to_le_bytes());
        payload.extend_from_slice(chunk);
        log.extend_from_slice(&wal::frame(&payload));
        // The next record continues where this one ends (when it decodes at all).
        seq += wal::decode(&payload).map_or(1, |rec| rec.rows.len() as u64);
    }
    if std::fs::write(&path, &log).is_err() {
        return;
    }
    let Ok(db) = Db::open_read_only(&dir) else { return };
    let _ = db.verify();
    let snap = db.snapshot();
    let _ = snap.events();
    for q in QUERIES {
        let _ = snap.query(q);
    }
});
