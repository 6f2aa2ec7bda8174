//! A lower bound on the bytes per event that any lossless store needs for the demo dataset:
//! the information content of the generator's random choices that the data reveals
//! (`journeydb::demo::InfoMeter` says what is counted and what is left out).
//!
//! `cargo run --release --example info_bound [EVENTS]` (default 10,000,000, seed 42: the
//! comparison harness's dataset).

use journeydb::demo::{self, InfoMeter};

fn main() {
    let events = std::env::args()
        .nth(1)
        .map(|a| a.parse::<u64>())
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("info_bound: events: {e}");
            std::process::exit(2)
        })
        .unwrap_or(10_000_000);
    let mut meter = InfoMeter::default();
    let rows = demo::generate_metered(events, 0, 42, &mut meter);
    let n = rows.len() as f64;
    let names = ["timestamp", "event", "channel", "amount"];
    println!(
        "{} events; sessions kept {} / left out {}; customers left out {}",
        rows.len(),
        meter.sessions.0,
        meter.sessions.1,
        meter.customers_left_out
    );
    for (name, bits) in names.iter().zip(meter.kept) {
        println!("{name:>10}: {:6.2} bits/event", bits / n);
    }
    println!(
        "{:>10}: {:6.2} bits/event (generation order of sessions, subtracted)",
        "order",
        -meter.order / n
    );
    println!(
        "{:>10}: {:6.2} bits/event (which overlapping session an event belongs to, subtracted)",
        "sessions",
        -meter.attribution / n
    );
    let total = meter.total() / n;
    println!(
        "lower bound: {total:.2} bits/event = {:.3} bytes/event",
        total / 8.0
    );
}
