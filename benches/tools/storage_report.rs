//! Creates a database from the demo dataset, appends, flushes, reopens and prints stats with a
//! per-column size breakdown. `cargo run --release --example storage_report [EVENTS]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test/bench code: a failure should abort loudly

use journeydb::internals::merge::Source;
use journeydb::{Db, Options, Sync, demo};

fn main() -> journeydb::Result<()> {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("journeydb-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rows = demo::generate(events, 0, 42);
    let t0 = std::time::Instant::now();
    {
        let db = Db::create(&dir, Options::default().sync(Sync::Never))?;
        for (name, stage) in demo::EVENTS {
            db.set_stage(name, Some(stage))?;
        }
        for chunk in rows.chunks(10_000) {
            let batch: Vec<_> = chunk.iter().map(demo::Row::to_event).collect();
            db.commit(&batch)?;
        }
        db.flush()?;
        db.compact()?;
    }
    let load = t0.elapsed();
    let db = Db::open(&dir, Options::default())?;
    let s = db.stats();
    println!(
        "events {} customers {} segments {} load {:.2}s ({:.0} events/s)",
        s.events,
        s.customers,
        s.segments,
        load.as_secs_f64(),
        s.events as f64 / load.as_secs_f64()
    );
    println!(
        "segment bytes {} = {:.3} bytes/event; all files {} bytes",
        s.segment_bytes, s.bytes_per_event, s.bytes_on_disk
    );
    let names = ["customer", "ts", "event", "stage", "channel", "amount"];
    for src in db.snapshot().sources() {
        if let Source::Segment(seg) = src {
            for (i, b) in seg.column_bytes().iter().enumerate() {
                println!(
                    "  {:>10} {:>10} bytes {:.3} bytes/event",
                    names.get(i).unwrap_or(&"prop"),
                    b,
                    *b as f64 / s.events as f64
                );
            }
        }
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
