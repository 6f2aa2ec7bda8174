//! Loads the demo dataset and runs the five canonical queries, printing each result and its
//! time. `cargo run --release --example query_demo [EVENTS]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // example code

use journeydb::{Db, Options, Query, Sync, demo};

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("journeydb-query-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::create(&dir, Options::default().sync(Sync::Never)).unwrap();
    for (name, stage) in demo::EVENTS {
        db.set_stage(name, Some(stage)).unwrap();
    }
    for chunk in demo::generate(events, 0, 42).chunks(10_000) {
        db.commit(&chunk.iter().map(demo::Row::to_event).collect::<Vec<_>>())
            .unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let snap = db.snapshot();
    for q in [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME",
        "TREND uniq PERIOD day BY channel",
        "TREND sum(amount) OF STAGE retention PERIOD day",
        "TIMELINE '4242' FROM '2026-02-01' TO '2026-03-03'",
    ] {
        let t0 = std::time::Instant::now();
        let r = snap.query(q);
        let el = t0.elapsed();
        match r {
            Ok(t) => {
                let text = t.to_text();
                let lines: Vec<&str> = text.lines().collect();
                println!("{q}\n  {} rows in {:.2} ms", t.rows.len(), el.as_secs_f64() * 1e3);
                for l in lines.iter().take(6) {
                    println!("  {l}");
                }
            }
            Err(e) => println!("{q}\n  error: {e}"),
        }
    }
    drop(snap);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
