//! A database fed live: the statement after each commit. Copies nothing: opens DB (a scratch
//! copy: it is written to), commits BUFFERED demo events (default 100,000; not flushed), then
//! ROUNDS times commits one event and times `Db::query` of the statement.
//! `cargo run --release --example after_commit DB [STATEMENT] [BUFFERED] [ROUNDS] [ORDER]` prints
//! one JSON object with the median and the quartiles in ms. ORDER `time` commits the events in
//! time order, as a live feed sends them (default: the generator's order, by customer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // measurement code

use journeydb::{Db, Options, Query, demo};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: after_commit DB [STATEMENT] [BUFFERED] [ROUNDS]");
    let statement = args.next().unwrap_or_else(|| "TREND uniq PERIOD day".to_owned());
    let buffered: usize = args.next().map_or(100_000, |a| a.parse().expect("BUFFERED"));
    let rounds: usize = args.next().map_or(200, |a| a.parse().expect("ROUNDS"));
    let time_order = args.next().is_some_and(|order| order == "time");
    let db = Db::open(&path, Options::default()).unwrap();
    // The generator gives about as many events as asked for: the last `rounds` are the single
    // commits, the rest (about `buffered`) the buffered ones.
    let mut events: Vec<_> = demo::generate((buffered + 2 * rounds) as u64, 0, 7)
        .iter()
        .map(demo::Row::to_event)
        .collect();
    if time_order {
        events.sort_by_key(|event| event.ts_us);
    }
    let (first, rest) = events.split_at(events.len().saturating_sub(rounds));
    let buffered = first.len();
    for chunk in first.chunks(50_000) {
        db.commit(chunk).unwrap();
    }
    let mut times: Vec<f64> = rest
        .iter()
        .take(rounds)
        .map(|event| {
            db.commit(std::slice::from_ref(event)).unwrap();
            let start = Instant::now();
            db.query(&statement).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({"statement": statement, "buffered": buffered, "rounds": times.len(),
            "time_order": time_order,
            "p25_ms": at(0.25), "median_ms": at(0.5), "p75_ms": at(0.75)})
    );
}
