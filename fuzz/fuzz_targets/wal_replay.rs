//! Any bytes as a log file: replay must yield records or a typed error, never a panic, and must
//! never allocate according to an unchecked length.
#![no_main]

use journeydb::internals::wal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::create_dir_all(dir.path().join(wal::WAL_DIR)).is_err() {
        return;
    }
    if std::fs::write(wal::wal_path(dir.path(), 1), data).is_err() {
        return;
    }
    let _ = wal::replay(dir.path(), (0, 0), 0, false, |rec| {
        std::hint::black_box(rec.rows.len());
        Ok(())
    });
});
