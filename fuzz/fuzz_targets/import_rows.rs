//! Any bytes as an import file: the first byte picks CSV or NDJSON (and the bad-row allowance),
//! the rest is the file. Reading must give staged rows or a typed error naming file and line,
//! never a panic; staged rows must turn into database rows (what `Db::import` writes).
#![no_main]

use journeydb::import::{ImportOptions, read_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let name = if selector & 1 == 0 { "in.csv" } else { "in.ndjson" };
    let path = dir.path().join(name);
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let opts = ImportOptions {
        skip_bad: usize::from(selector >> 4),
        ..ImportOptions::default()
    };
    if let Ok(read) = read_file(&path, &opts, &mut |_, _| {}) {
        let dicts = journeydb::internals::dict::Dicts::default();
        let stages = journeydb::internals::ingest::StageMap::default();
        let _ = std::hint::black_box(read.staged.into_rows(&dicts, &stages));
    }
});
