//! Times statements through the Rust API on an existing database: for each statement, the
//! median of `REPS` runs through `Db::query` (a fresh snapshot per run, as `Connection.query`
//! in Python) and through one `Snapshot` (after one warm-up run), as JSON
//! `{statement: {"db": ms, "snapshot": ms}}`.
//! The Python package's speed script (benches/python/speed.py) compares its own timings with
//! these. `cargo run --release --example query_time DB REPS STATEMENT...`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // measurement code

use journeydb::{Db, Query};

/// The allocator of the shell and of the Python package's module, so that the comparison is of
/// the code paths alone.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: query_time DB REPS STATEMENT...");
    let reps: usize = args.next().and_then(|s| s.parse().ok()).expect("REPS: a number");
    let db = Db::open_read_only(&path).unwrap();
    let snap = db.snapshot();
    let mut out = serde_json::Map::new();
    let median = |run: &dyn Fn()| {
        run();
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let start = std::time::Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    for statement in args {
        let through_db = median(&|| {
            std::hint::black_box(db.query(&statement).unwrap());
        });
        let through_snapshot = median(&|| {
            std::hint::black_box(snap.query(&statement).unwrap());
        });
        out.insert(
            statement,
            serde_json::json!({"db": through_db, "snapshot": through_snapshot}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
}
