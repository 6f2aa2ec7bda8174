//! Creates a database from the demo dataset, appends, flushes, reopens and prints stats with a
//! per-column size breakdown. `cargo run --release --example storage_report [EVENTS]`; with a
//! database directory instead (`storage_report DIR`), the breakdown of that database, segment
//! by segment (columns, and the footer with the indices).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test/bench code: a failure should abort loudly

use journeydb::internals::merge::Source;
use journeydb::{Db, Options, Sync, demo};

fn main() -> journeydb::Result<()> {
    if let Some(dir) = std::env::args()
        .nth(1)
        .filter(|a| std::path::Path::new(a).is_dir())
    {
        return report(std::path::Path::new(&dir));
    }
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

/// The breakdown of the database in `dir`: per segment, each column's bytes and the rest of the
/// file (header, footer with block list and indices).
fn report(dir: &std::path::Path) -> journeydb::Result<()> {
    let db = Db::open(dir, Options::default())?;
    let s = db.stats();
    println!(
        "events {} segments {} segment bytes {}",
        s.events, s.segments, s.segment_bytes
    );
    let (mut columns, mut files) = (vec![0u64; 0], 0u64);
    for src in db.snapshot().sources() {
        if let Source::Segment(seg) = src {
            let bytes = seg.column_bytes();
            columns.resize(columns.len().max(bytes.len()), 0);
            for (total, b) in columns.iter_mut().zip(&bytes) {
                *total += b;
            }
            files += seg.file_len();
        }
    }
    let names = ["customer", "ts", "event", "stage"];
    for (i, b) in columns.iter().enumerate() {
        let name = names
            .get(i)
            .map_or_else(|| format!("prop {}", i - names.len()), |n| (*n).to_owned());
        println!(
            "  {name:>10} {b:>10} bytes {:.3} bytes/event",
            *b as f64 / s.events as f64
        );
    }
    let rest = files - columns.iter().sum::<u64>();
    println!(
        "  {:>10} {rest:>10} bytes {:.3} bytes/event",
        "footer",
        rest as f64 / s.events as f64
    );
    Ok(())
}
