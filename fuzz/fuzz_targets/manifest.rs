//! Any bytes as a manifest file: reading it must give a manifest or a typed corruption error,
//! never a panic or an allocation sized by an unchecked length.
#![no_main]

use journeydb::internals::manifest::{Manifest, manifest_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join(manifest_name(1)), data).is_err() {
        return;
    }
    if let Ok(m) = Manifest::read(dir.path(), 1) {
        std::hint::black_box(m);
    }
});
