//! Any bytes as a query: parse, plan and execute against a small fixed database. Must never
//! panic, overflow the stack or hang.
#![no_main]

use std::sync::OnceLock;

use journeydb::{Db, Event, Options, Query, Stage, Sync};
use libfuzzer_sys::fuzz_target;

fn db() -> &'static (tempfile::TempDir, Db) {
    static DB: OnceLock<(tempfile::TempDir, Db)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).expect("create");
        let t = 1_769_990_400_000_000i64;
        let mut evs = Vec::new();
        for c in 0..20i64 {
            for (k, name) in ["visit", "add_to_cart", "purchase", "review"].iter().enumerate() {
                let e = Event::new(
                    format!("c{c}"),
                    t + c * 3_600_000_000 + k as i64 * 60_000_000,
                    *name,
                )
                .with_prop("channel", ["web", "mobile"][(c % 2) as usize])
                .with_prop("amount", c as f64 * 1.5);
                evs.push(if k == 2 { e.with_stage(Stage::Purchase) } else { e });
            }
        }
        db.commit(&evs).expect("commit");
        (dir, db)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = db().1.snapshot().query(&text);
});
