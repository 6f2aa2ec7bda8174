//! A deterministic synthetic customer-journey dataset (the demo data and the benchmark data).
//!
//! Power-law customer activity (Pareto sessions per customer), the funnel
//! visit → view_product → add_to_cart → purchase with drop-off and delays (some purchases come
//! more than 7 days after the visit), repeat purchases over weeks, newsletter opens, support
//! tickets, reviews and referrals; channels web/mobile/store; amounts on purchases; a 90-day span
//! from 2026-01-01 UTC; millisecond timestamps, unique per customer. Same seed, same events.

use crate::model::{Event, Stage};

/// 2026-01-01T00:00:00Z in microseconds.
pub const START_US: i64 = 1_767_225_600_000_000;
/// Days covered.
pub const DAYS: i64 = 90;

const MS: i64 = 1_000;
const MIN: i64 = 60 * 1_000 * MS;
const DAY: i64 = 24 * 60 * MIN;

/// Event names, and the stage the demo's stage map gives each.
pub const EVENTS: [(&str, Stage); 9] = [
    ("visit", Stage::Awareness),
    ("view_product", Stage::Consideration),
    ("add_to_cart", Stage::Consideration),
    ("purchase", Stage::Purchase),
    ("repeat_purchase", Stage::Retention),
    ("newsletter_open", Stage::Retention),
    ("support_ticket", Stage::Retention),
    ("review", Stage::Advocacy),
    ("referral", Stage::Advocacy),
];

/// Channels.
pub const CHANNELS: [&str; 3] = ["web", "mobile", "store"];

/// One generated event in compact form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Customer number (the external id is its decimal string).
    pub customer: u32,
    /// Timestamp (µs, whole milliseconds).
    pub ts_us: i64,
    /// Index into [`EVENTS`].
    pub event: u8,
    /// Index into [`CHANNELS`].
    pub channel: u8,
    /// Amount in cents (purchases only; 0 otherwise).
    pub amount_cents: u32,
}

impl Row {
    /// The event as the API takes it (stage left to the stage map).
    pub fn to_event(&self) -> Event {
        let (name, _) = EVENTS[self.event as usize % EVENTS.len()];
        let mut e = Event::new(self.customer.to_string(), self.ts_us, name)
            .with_prop("channel", CHANNELS[self.channel as usize % CHANNELS.len()]);
        if self.amount_cents > 0 {
            e = e.with_prop("amount", f64::from(self.amount_cents) / 100.0);
        }
        e
    }
}

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as i64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

/// Generates about `events` events over `customers` customers (0 = events / 25), sorted by
/// timestamp (the order in which a live system would ingest them).
pub fn generate(events: u64, customers: u64, seed: u64) -> Vec<Row> {
    let customers = if customers == 0 {
        (events / 25).max(1)
    } else {
        customers
    };
    let mut rng = Rng::new(seed);
    // Pareto(alpha = 1.3) activity weights, scaled so the expected total matches `events`.
    let weights: Vec<f64> = (0..customers)
        .map(|_| (1.0 - rng.f64()).powf(-1.0 / 1.3))
        .collect();
    let total_w: f64 = weights.iter().sum();
    let per_session = 2.05;
    let mut out: Vec<Row> = Vec::with_capacity(events as usize + 1024);
    let mut mine: Vec<Row> = Vec::new();
    for (c, w) in weights.iter().enumerate() {
        let budget = (w / total_w * events as f64 / per_session).max(1.0);
        let mut sessions = budget.floor() as u64;
        if rng.chance(budget - budget.floor()) {
            sessions += 1;
        }
        let sessions = sessions.max(1);
        let channel = (rng.next_u64() % 3) as u8;
        mine.clear();
        let first = rng.range(0, DAYS * DAY * 2 / 3);
        let mut purchased = false;
        for s in 0..sessions {
            let t0 = if s == 0 {
                first
            } else {
                rng.range(first, DAYS * DAY)
            };
            let ch = if rng.chance(0.8) {
                channel
            } else {
                (rng.next_u64() % 3) as u8
            };
            let mut push = |t: i64, ev: u8, amount: u32| {
                if t < DAYS * DAY {
                    mine.push(Row {
                        customer: c as u32,
                        ts_us: START_US + t / MS * MS,
                        event: ev,
                        channel: ch,
                        amount_cents: amount,
                    });
                }
            };
            if purchased && rng.chance(0.35) {
                // A returning customer: repeat purchase, newsletter, support, review, referral.
                match rng.next_u64() % 6 {
                    0 | 1 => push(t0, 4, rng.range(500, 30_000) as u32),
                    2 => push(t0, 5, 0),
                    3 => push(t0, 6, 0),
                    4 => push(t0, 7, 0),
                    _ => push(t0, 8, 0),
                }
                continue;
            }
            push(t0, 0, 0);
            let mut t = t0;
            if !rng.chance(0.7) {
                continue;
            }
            t += rng.range(10 * 1000 * MS, 20 * MIN);
            push(t, 1, 0);
            if !rng.chance(0.6) {
                continue;
            }
            t += rng.range(5 * 1000 * MS, 30 * MIN);
            push(t, 2, 0);
            if !rng.chance(0.65) {
                continue;
            }
            // Most buy within the hour, some days later, some beyond the 7-day window.
            t += match rng.next_u64() % 10 {
                0..=5 => rng.range(MIN, 60 * MIN),
                6..=8 => rng.range(DAY, 6 * DAY),
                _ => rng.range(8 * DAY, 14 * DAY),
            };
            push(t, 3, rng.range(500, 50_000) as u32);
            purchased = true;
        }
        mine.sort_by_key(|r| r.ts_us);
        for i in 1..mine.len() {
            if mine[i].ts_us <= mine[i - 1].ts_us {
                mine[i].ts_us = mine[i - 1].ts_us + MS;
            }
        }
        out.extend_from_slice(&mine);
    }
    out.sort_by_key(|r| (r.ts_us, r.customer));
    out
}
