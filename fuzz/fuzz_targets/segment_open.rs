//! Any bytes as a segment file: opening and reading every block must give data or a typed
//! error, never a panic or an out-of-bounds access.
#![no_main]

use journeydb::internals::segment::{ColumnSet, Segment, seg_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::create_dir_all(dir.path().join("seg")).is_err() {
        return;
    }
    if std::fs::write(seg_path(dir.path(), 0), data).is_err() {
        return;
    }
    if let Ok(seg) = Segment::open(dir.path(), 0, None) {
        let (mut cols, mut ends) = (Default::default(), Vec::new());
        for i in 0..seg.footer.blocks.len() {
            let _ = seg.read_block(i, ColumnSet::ALL);
            let _ = seg.read_block_runs(i, ColumnSet::ALL, &mut cols, &mut ends);
        }
    }
});
