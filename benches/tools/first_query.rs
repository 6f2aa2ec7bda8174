//! The first statement after a database is opened (as after every flush or compaction: a new
//! version): the time to open, the time of the first statement and of the next, and the resident
//! memory the first one adds — the union of the segments' bitmap indices is built then, once
//! per version. `cargo run --release --example first_query DB [STATEMENT]` prints one JSON
//! object (Linux: memory from /proc/self/status).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // measurement code

use journeydb::{Db, Query};
use std::time::Instant;

/// Resident memory in KiB (0 where /proc is not there).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: first_query DB [STATEMENT]");
    let statement = args.next().unwrap_or_else(|| "TREND uniq PERIOD day".to_owned());
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let db = Db::open_read_only(&path).unwrap();
    let open_ms = ms(start);
    let before = resident_kib();
    let start = Instant::now();
    db.query(&statement).unwrap();
    let first_ms = ms(start);
    let added = resident_kib().saturating_sub(before);
    let start = Instant::now();
    db.query(&statement).unwrap();
    let next_ms = ms(start);
    println!(
        "{}",
        serde_json::json!({"statement": statement, "open_ms": open_ms, "first_ms": first_ms,
            "next_ms": next_ms, "first_adds_kib": added})
    );
}
