//! A deterministic synthetic customer-journey dataset (the demo data and the benchmark data).
//!
//! Power-law customer activity (Pareto sessions per customer), the funnel
//! visit → view_product → add_to_cart → purchase with drop-off and delays (some purchases come
//! more than 7 days after the visit), repeat purchases over weeks, newsletter opens, support
//! tickets, reviews and referrals; channels web/mobile/store; amounts on purchases; a 90-day span
//! from 2026-01-01 UTC; millisecond timestamps, unique per customer. Same seed, same events.
//!
//! Uses: `db`, `error`, `exec`, `model`.

use crate::db::{Db, Options, Sync};
use crate::exec::Query;
use crate::model::{Event, ProfileUpdate, Stage};

/// The demo database at `path` (created when the directory holds none, else opened as it is):
/// about `events` events of `customers` customers (`demo_rows`), the demo's stage map, the
/// customers' profiles, one compacted segment; and two saved cohorts (`mobile_first`,
/// `repeat_buyers`; made when missing, also in a database created before they were).
/// Returns the database and whether it was created.
pub fn open_or_create(
    path: &std::path::Path,
    events: u64,
    customers: u64,
    seed: u64,
) -> crate::error::Result<(Db, bool)> {
    let created = !path.join("CURRENT").exists();
    let db = if created {
        fill(
            Db::create(path, Options::default().sync(Sync::Never))?,
            events,
            customers,
            seed,
        )?
    } else {
        Db::open(path, Options::default())?
    };
    for (name, set) in [
        ("mobile_first", "FIRST visit WHERE channel = 'mobile'"),
        ("repeat_buyers", "DID purchase AT LEAST 2 TIMES"),
    ] {
        if !db.cohorts().iter().any(|cohort| cohort.name == name) {
            db.query(&format!("CREATE COHORT {name} AS {set}"))?;
        }
    }
    Ok((db, created))
}

/// Writes the demo's stage map, events and profiles into `db`, as one compacted segment.
fn fill(db: Db, events: u64, customers: u64, seed: u64) -> crate::error::Result<Db> {
    db.set_stages(&EVENTS.map(|(name, stage)| (name, Some(stage))))?;
    let rows = demo_rows(events, customers, seed);
    for chunk in rows.chunks(50_000) {
        db.commit(&chunk.iter().map(Row::to_event).collect::<Vec<_>>())?;
    }
    for chunk in profiles(&rows, seed).chunks(50_000) {
        db.commit_with_profiles(&[], chunk)?;
    }
    db.flush()?;
    db.compact()?;
    Ok(db)
}

/// 2026-01-01T00:00:00Z in microseconds.
pub const START_US: i64 = 1_767_225_600_000_000;
/// Days covered.
pub const DAYS: i64 = 90;

const MS: i64 = 1_000;
const MIN: i64 = 60 * 1_000 * MS;
const DAY: i64 = 24 * 60 * MIN;

/// Event names, and the stage the demo's stage map gives each (`survey` only from
/// [`realistic`]).
pub const EVENTS: [(&str, Stage); 10] = [
    ("visit", Stage::Awareness),
    ("view_product", Stage::Consideration),
    ("add_to_cart", Stage::Consideration),
    ("purchase", Stage::Purchase),
    ("repeat_purchase", Stage::Retention),
    ("newsletter_open", Stage::Retention),
    ("support_ticket", Stage::Retention),
    ("review", Stage::Advocacy),
    ("referral", Stage::Advocacy),
    ("survey", Stage::Retention),
];

/// Indexes into [`EVENTS`] that [`realistic`] reads or writes.
const VISIT: u8 = 0;
const VIEW: u8 = 1;
const PURCHASE: u8 = 3;
const REPEAT: u8 = 4;
const REVIEW: u8 = 7;
const REFERRAL: u8 = 8;
const SURVEY: u8 = 9;

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
    /// A survey's answer, 0–10 (`survey` rows only).
    pub score: Option<u8>,
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
        if let Some(score) = self.score {
            e = e.with_prop("score", i64::from(score));
        }
        e
    }
}

/// About `events` events of the demo (the shell's `journeydb demo`, the comparison data): a
/// [`generate`] of four fifths of them (and `customers`, 0 = `events` / 25) made
/// [`realistic`], which adds about a quarter.
pub fn demo_rows(events: u64, customers: u64, seed: u64) -> Vec<Row> {
    let customers = if customers == 0 {
        (events / 25).max(1)
    } else {
        customers
    };
    realistic(generate(events * 4 / 5, customers, seed), seed)
}

/// Makes [`generate`]'s rows read like a product's log for the demo and the comparison data
/// (benchmarks and the storage bound keep [`generate`]'s rows as they are):
/// - journeys are consistent: each customer's earliest buying event is a `purchase` (a
///   `repeat_purchase` before it becomes one), and no `review` or `referral` comes before it;
/// - browsing sessions: after half of the visits the customer views 1–3 more products, 20 s to
///   4 min apart (before its next event), so sessions hold several events and bounces show;
/// - feedback: 40 % of the customers who buy answer a `survey` 1–3 days after their first
///   purchase, with an NPS `score` 0–10 (about half promoters, a quarter passives, a quarter
///   detractors);
/// - a daily rhythm: 70 % of the sessions that start between midnight and 7:00 UTC move ten
///   hours later (whole, when the customer's next session starts after), so nights are quiet
///   and the afternoons busy.
///
/// Rows come back in time order, timestamps unique per customer. Same rows and seed, same
/// output.
pub fn realistic(mut rows: Vec<Row>, seed: u64) -> Vec<Row> {
    rows.sort_by_key(|r| (r.customer, r.ts_us));
    for journey in rows.chunk_by_mut(|a, b| a.customer == b.customer) {
        daytime(journey, seed);
    }
    let mut out = Vec::with_capacity(rows.len() + rows.len() / 3);
    for journey in rows.chunk_by(|a, b| a.customer == b.customer) {
        let customer = journey[0].customer;
        let mut rng = Rng::new(seed ^ 0x5eed ^ u64::from(customer).wrapping_mul(0x9e37_79b9));
        let first_buy = journey
            .iter()
            .position(|r| r.event == PURCHASE || r.event == REPEAT);
        let buy_at = first_buy.map(|k| journey[k].ts_us);
        let from = out.len();
        for (k, row) in journey.iter().enumerate() {
            let mut row = *row;
            if Some(k) == first_buy {
                row.event = PURCHASE;
            }
            let early = buy_at.is_none_or(|t| row.ts_us < t);
            if early && (row.event == REVIEW || row.event == REFERRAL) {
                continue;
            }
            out.push(row);
            let next = journey.get(k + 1).map_or(START_US + DAYS * DAY, |r| r.ts_us);
            if row.event == VISIT && rng.chance(0.5) {
                let mut t = row.ts_us;
                for _ in 0..rng.range(1, 4) {
                    t += rng.range(20 * 1000 * MS, 4 * MIN) / MS * MS;
                    if t >= next {
                        break;
                    }
                    out.push(Row {
                        event: VIEW,
                        ts_us: t,
                        amount_cents: 0,
                        score: None,
                        ..row
                    });
                }
            }
        }
        if let Some(t) = buy_at
            && rng.chance(0.4)
        {
            let at = (t + rng.range(DAY, 3 * DAY)) / MS * MS;
            let score = match rng.f64() {
                x if x < 0.5 => 9 + rng.range(0, 2),
                x if x < 0.75 => 7 + rng.range(0, 2),
                _ => rng.range(0, 7),
            };
            let taken = out[from..].iter().any(|r| r.ts_us == at);
            if at < START_US + DAYS * DAY && !taken {
                let channel = journey[0].channel;
                out.push(Row {
                    customer,
                    ts_us: at,
                    event: SURVEY,
                    channel,
                    amount_cents: 0,
                    score: Some(score as u8),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.ts_us, r.customer));
    out
}

/// Countries of the demo's customer profiles, with their shares.
pub const COUNTRIES: [(&str, f64); 7] = [
    ("US", 0.35),
    ("DE", 0.15),
    ("GB", 0.15),
    ("FR", 0.10),
    ("BR", 0.10),
    ("IN", 0.10),
    ("JP", 0.05),
];

/// Plans of the demo's customer profiles.
pub const PLANS: [&str; 3] = ["free", "plus", "pro"];

/// The customer profiles of `rows` (deterministic per seed): every customer gets a `country`
/// and a `plan` (free 70 %, plus 20 %, pro 10 %) at its first event; a customer who purchases
/// is more likely to be on a paid plan, and one in five of the free customers who purchase
/// upgrades to `plus` at its first purchase (a second write: the latest value is `plus`).
pub fn profiles(rows: &[Row], seed: u64) -> Vec<ProfileUpdate> {
    // (first event, first purchase) per customer.
    let mut seen: std::collections::BTreeMap<u32, (i64, Option<i64>)> = Default::default();
    for r in rows {
        let e = seen.entry(r.customer).or_insert((r.ts_us, None));
        e.0 = e.0.min(r.ts_us);
        if EVENTS[r.event as usize % EVENTS.len()].0 == "purchase" {
            e.1 = Some(e.1.map_or(r.ts_us, |t: i64| t.min(r.ts_us)));
        }
    }
    let mut out = Vec::with_capacity(seen.len() + seen.len() / 10);
    for (customer, (first, purchase)) in seen {
        let mut rng = Rng::new(seed ^ u64::from(customer).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut draw = rng.f64();
        let country = COUNTRIES
            .iter()
            .find(|(_, share)| {
                draw -= share;
                draw < 0.0
            })
            .map_or("US", |c| c.0);
        let paid = if purchase.is_some() { 0.45 } else { 0.25 };
        let plan = match rng.f64() {
            x if x < paid * 0.65 => "plus",
            x if x < paid => "pro",
            _ => "free",
        };
        let id = customer.to_string();
        out.push(
            ProfileUpdate::new(id.clone(), first)
                .with_prop("country", country)
                .with_prop("plan", plan),
        );
        if let Some(at) = purchase
            && plan == "free"
            && rng.chance(0.2)
        {
            out.push(ProfileUpdate::new(id, at).with_prop("plan", "plus"));
        }
    }
    out
}

/// [`realistic`]'s daily rhythm on one customer's rows (time order, kept): a session (events
/// at most 30 minutes apart) starting before 7:00 UTC moves 10 hours later with probability
/// 0.7 when it then still ends before the next session and the data's end.
fn daytime(journey: &mut [Row], seed: u64) {
    const SHIFT: i64 = 10 * 60 * MIN;
    let Some(first) = journey.first() else { return };
    let mut rng = Rng::new(seed ^ 0xda11 ^ u64::from(first.customer).wrapping_mul(0x2545_f491));
    let mut start = 0;
    while start < journey.len() {
        let mut end = start + 1;
        while end < journey.len() && journey[end].ts_us - journey[end - 1].ts_us <= 30 * MIN {
            end += 1;
        }
        let next = journey.get(end).map_or(START_US + DAYS * DAY, |r| r.ts_us);
        let hour = (journey[start].ts_us - START_US).rem_euclid(DAY) / (60 * MIN);
        if hour < 7 && journey[end - 1].ts_us + SHIFT < next && rng.chance(0.7) {
            journey[start..end].iter_mut().for_each(|r| r.ts_us += SHIFT);
        }
        start = end;
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
    /// True with probability `probability`.
    pub fn chance(&mut self, probability: f64) -> bool {
        self.f64() < probability
    }
}

/// Generates about `events` events over `customers` customers (0 = events / 25), sorted by
/// timestamp (the order in which a live system would ingest them).
pub fn generate(events: u64, customers: u64, seed: u64) -> Vec<Row> {
    generate_metered(events, customers, seed, &mut ())
}

/// Which column a random choice of the generator shows up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Timestamps.
    Ts,
    /// Event names.
    Event,
    /// The channel property.
    Channel,
    /// The amount property.
    Amount,
}

/// Receives the information content of the generator's random choices as it makes them (see
/// [`InfoMeter`]); `()` ignores it.
pub trait Meter {
    /// A choice with `bits` of entropy that the output shows in `col`.
    fn bits(&mut self, col: Column, bits: f64);
    /// The end of a session that produced `rows` (its first row starts it); `dropped` when an
    /// event fell past the end of the data.
    fn session_end(&mut self, rows: &[Row], dropped: bool);
    /// The end of a customer of `sessions` sessions; `collided` when timestamps had to be moved
    /// apart.
    fn customer_end(&mut self, sessions: u64, collided: bool);
}

impl Meter for () {
    fn bits(&mut self, _: Column, _: f64) {}
    fn session_end(&mut self, _: &[Row], _: bool) {}
    fn customer_end(&mut self, _: u64, _: bool) {}
}

/// A lower bound on the information in a generated dataset, in bits: what any lossless
/// encoding of its (customer, timestamp, event, channel, amount) values needs on average.
///
/// It adds up the entropy of each random choice of [`generate`] that the output reveals, and
/// leaves out what the output does not pin down: the sub-millisecond part of every drawn time
/// (timestamps are cut to whole ms; `log2 2000` bits per time drawn: the µs remainder and a
/// carry), the generation order of a customer's sessions (`log2 (k−1)!`), which session each
/// later event of a session belongs to where sessions overlap in time (`log2 m` for an event
/// inside the time spans of `m` sessions), every session with an event past the 90 days, and
/// every customer whose timestamps collided. Activity weights, session counts and each customer's usual channel are not
/// counted at all. Leaving choices out only lowers the sum, so it stays a lower bound.
#[derive(Clone, Debug, Default)]
pub struct InfoMeter {
    /// Kept bits per column (Ts, Event, Channel, Amount).
    pub kept: [f64; 4],
    /// Bits subtracted for the unobservable order of sessions.
    pub order: f64,
    /// Bits subtracted for attributing events to overlapping sessions.
    pub attribution: f64,
    /// Sessions kept and left out.
    pub sessions: (u64, u64),
    /// Customers left out (collisions).
    pub customers_left_out: u64,
    pending: [f64; 4],
    customer: [f64; 4],
    spans: Vec<Session>,
}

/// One session as [`InfoMeter`] keeps it until its customer ends.
#[derive(Clone, Debug)]
struct Session {
    /// First and last timestamp (µs).
    span: (i64, i64),
    bits: [f64; 4],
    dropped: bool,
    /// Times of its events after the first.
    later: Vec<i64>,
}

impl InfoMeter {
    /// Total kept bits, net of the session-order term.
    pub fn total(&self) -> f64 {
        self.kept.iter().sum::<f64>() - self.order - self.attribution
    }
}

impl Meter for InfoMeter {
    fn bits(&mut self, col: Column, bits: f64) {
        self.pending[col as usize] += bits.max(0.0);
    }

    fn session_end(&mut self, rows: &[Row], dropped: bool) {
        let bits = std::mem::take(&mut self.pending);
        let lo = rows.first().map_or(0, |r| r.ts_us);
        let hi = rows.iter().map(|r| r.ts_us).max().unwrap_or(lo);
        let later = rows.iter().skip(1).map(|r| r.ts_us).collect();
        self.spans.push(Session {
            span: (lo, hi),
            bits,
            dropped,
            later,
        });
    }

    fn customer_end(&mut self, sessions: u64, collided: bool) {
        // Bits recorded before the first session (the first session's start) belong to the
        // customer as a whole.
        let whole = std::mem::take(&mut self.pending);
        let spans = std::mem::take(&mut self.spans);
        if collided {
            self.customers_left_out += 1;
            self.sessions.1 += spans.len() as u64;
            return;
        }
        // An event may belong to any session whose span holds its time: count them.
        let mut starts: Vec<i64> = spans.iter().map(|s| s.span.0).collect();
        let mut ends: Vec<i64> = spans.iter().map(|s| s.span.1).collect();
        starts.sort_unstable();
        ends.sort_unstable();
        for Session {
            bits, dropped, later, ..
        } in &spans
        {
            if *dropped {
                self.sessions.1 += 1;
                continue;
            }
            self.sessions.0 += 1;
            for (k, b) in self.customer.iter_mut().zip(bits) {
                *k += b;
            }
            for &t in later {
                let m = starts.partition_point(|&x| x <= t) - ends.partition_point(|&x| x < t);
                self.attribution += (m.max(1) as f64).log2();
            }
        }
        for (k, (c, w)) in self.kept.iter_mut().zip(self.customer.iter_mut().zip(whole)) {
            *k += std::mem::take(c) + w;
        }
        self.order += (2..sessions).map(|k| (k as f64).log2()).sum::<f64>();
    }
}

/// Entropy (bits) of a drawn time of `range_us` microseconds seen at millisecond resolution.
fn time_bits(range_us: i64) -> f64 {
    (range_us.max(1) as f64).log2() - 2000f64.log2()
}

/// Entropy (bits) of a discrete choice with probabilities `weights`.
fn choice_bits(weights: &[f64]) -> f64 {
    weights.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.log2()).sum()
}

/// [`generate`], telling `meter` about every random choice it makes.
pub fn generate_metered<M: Meter>(events: u64, customers: u64, seed: u64, meter: &mut M) -> Vec<Row> {
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
        meter.bits(Column::Ts, time_bits(DAYS * DAY * 2 / 3));
        let mut purchased = false;
        for s in 0..sessions {
            let t0 = if s == 0 {
                first
            } else {
                meter.bits(Column::Ts, time_bits(DAYS * DAY - first));
                rng.range(first, DAYS * DAY)
            };
            let ch = if rng.chance(0.8) {
                channel
            } else {
                (rng.next_u64() % 3) as u8
            };
            // The channel seen: the customer's own with probability 0.8 + 0.2 / 3.
            meter.bits(
                Column::Channel,
                choice_bits(&[0.8 + 0.2 / 3.0, 0.2 / 3.0, 0.2 / 3.0]),
            );
            let mut dropped = false;
            let from = mine.len();
            let mut push = |t: i64, ev: u8, amount: u32| {
                if t < DAYS * DAY {
                    mine.push(Row {
                        customer: c as u32,
                        ts_us: START_US + t / MS * MS,
                        event: ev,
                        channel: ch,
                        amount_cents: amount,
                        score: None,
                    });
                } else {
                    dropped = true;
                }
            };
            if purchased {
                meter.bits(Column::Event, choice_bits(&[0.35, 0.65]));
            }
            if purchased && rng.chance(0.35) {
                returning_session(&mut rng, meter, t0, &mut push);
                meter.session_end(&mine[from..], dropped);
                continue;
            }
            if funnel_session(&mut rng, meter, t0, &mut push) {
                purchased = true;
            }
            meter.session_end(&mine[from..], dropped);
        }
        let collided = separate_ties(&mut mine);
        meter.customer_end(sessions, collided);
        out.extend_from_slice(&mine);
    }
    out.sort_by_key(|r| (r.ts_us, r.customer));
    out
}

/// A returning customer's session at `t0`: a repeat purchase, a newsletter, a support ticket,
/// a review or a referral.
fn returning_session<M: Meter>(rng: &mut Rng, meter: &mut M, t0: i64, push: &mut impl FnMut(i64, u8, u32)) {
    meter.bits(
        Column::Event,
        choice_bits(&[2.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0]),
    );
    match rng.next_u64() % 6 {
        0 | 1 => {
            meter.bits(Column::Amount, (29_500f64).log2());
            push(t0, 4, rng.range(500, 30_000) as u32)
        }
        2 => push(t0, 5, 0),
        3 => push(t0, 6, 0),
        4 => push(t0, 7, 0),
        _ => push(t0, 8, 0),
    }
}

/// A session down the funnel from a visit at `t0` (view, cart, purchase, with drop-off at each
/// step); true when it ends in a purchase.
fn funnel_session<M: Meter>(
    rng: &mut Rng,
    meter: &mut M,
    t0: i64,
    push: &mut impl FnMut(i64, u8, u32),
) -> bool {
    push(t0, 0, 0);
    let mut t = t0;
    meter.bits(Column::Event, choice_bits(&[0.7, 0.3]));
    if !rng.chance(0.7) {
        return false;
    }
    meter.bits(Column::Ts, time_bits(20 * MIN - 10 * 1000 * MS));
    t += rng.range(10 * 1000 * MS, 20 * MIN);
    push(t, 1, 0);
    meter.bits(Column::Event, choice_bits(&[0.6, 0.4]));
    if !rng.chance(0.6) {
        return false;
    }
    meter.bits(Column::Ts, time_bits(30 * MIN - 5 * 1000 * MS));
    t += rng.range(5 * 1000 * MS, 30 * MIN);
    push(t, 2, 0);
    meter.bits(Column::Event, choice_bits(&[0.65, 0.35]));
    if !rng.chance(0.65) {
        return false;
    }
    // Most buy within the hour, some days later, some beyond the 7-day window.
    meter.bits(Column::Ts, choice_bits(&[0.6, 0.3, 0.1]));
    t += match rng.next_u64() % 10 {
        0..=5 => {
            meter.bits(Column::Ts, time_bits(59 * MIN));
            rng.range(MIN, 60 * MIN)
        }
        6..=8 => {
            meter.bits(Column::Ts, time_bits(5 * DAY));
            rng.range(DAY, 6 * DAY)
        }
        _ => {
            meter.bits(Column::Ts, time_bits(6 * DAY));
            rng.range(8 * DAY, 14 * DAY)
        }
    };
    meter.bits(Column::Amount, (49_500f64).log2());
    push(t, 3, rng.range(500, 50_000) as u32);
    true
}

/// Sorts one customer's rows by time and moves each tie one millisecond after the row before
/// (the demo's timestamps are unique per customer); true when any row moved.
fn separate_ties(mine: &mut [Row]) -> bool {
    mine.sort_by_key(|r| r.ts_us);
    let mut collided = false;
    for i in 1..mine.len() {
        if mine[i].ts_us <= mine[i - 1].ts_us {
            mine[i].ts_us = mine[i - 1].ts_us + MS;
            collided = true;
        }
    }
    collided
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `realistic`'s promises, on every customer of a small dataset: the first buying event is a
    /// `purchase`, no review or referral comes before it, a survey follows a purchase with a
    /// score 0–10, timestamps are unique per customer and ordered; and the output is
    /// deterministic and about the size asked for.
    #[test]
    fn realistic_journeys_are_consistent() {
        let rows = demo_rows(40_000, 0, 7);
        assert_eq!(rows, demo_rows(40_000, 0, 7));
        assert!((36_000..44_000).contains(&rows.len()), "{}", rows.len());
        assert!(rows.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
        let mut by_customer: std::collections::BTreeMap<u32, Vec<Row>> = Default::default();
        for r in &rows {
            by_customer.entry(r.customer).or_default().push(*r);
        }
        let (mut surveys, mut views) = (0, 0);
        for journey in by_customer.values() {
            assert!(
                journey.windows(2).all(|w| w[0].ts_us < w[1].ts_us),
                "ties in {journey:?}"
            );
            let first_buy = journey
                .iter()
                .position(|r| r.event == PURCHASE || r.event == REPEAT);
            if let Some(k) = first_buy {
                assert_eq!(journey[k].event, PURCHASE);
            }
            let bought = |k: usize| first_buy.is_some_and(|b| b < k);
            for (k, r) in journey.iter().enumerate() {
                if matches!(r.event, REVIEW | REFERRAL | SURVEY) {
                    assert!(
                        bought(k),
                        "{} before the first purchase",
                        EVENTS[r.event as usize].0
                    );
                }
                assert_eq!(r.score.is_some(), r.event == SURVEY);
                assert!(r.score.is_none_or(|s| s <= 10));
                surveys += usize::from(r.event == SURVEY);
                views += usize::from(r.event == VIEW);
                assert!(r.ts_us < START_US + DAYS * DAY);
            }
        }
        assert!(surveys > 100 && views > 5_000, "{surveys} surveys, {views} views");
    }
}
