//! The reference of ATTRIBUTION, written straight from docs/QUERY.md: per conversion its
//! touches (the customer's other events within LOOKBACK before it and at its instant that
//! carry `ch`), ordered by time then value; each value's weight under the model; the
//! conversion's billion units and its cents split by the largest remainder; sums per value.

use std::collections::BTreeMap;

use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, by_customer};

#[derive(Clone, Debug)]
pub struct AttributionQ {
    pub step: StepQ,
    pub value: bool,
    pub model: &'static str,
    pub half_life_h: Option<i64>,
    pub lookback_h: Option<i64>,
    pub c: Common,
}

const H: i64 = 3_600_000_000;

impl AttributionQ {
    pub fn text(&self) -> String {
        let mut text = format!("ATTRIBUTION {}", self.step.text());
        if self.value {
            text += " VALUE amt";
        }
        text += &format!(" BY ch MODEL {}", self.model);
        if let Some(h) = self.half_life_h {
            text += &format!(" HALF_LIFE {h}h");
        }
        if let Some(h) = self.lookback_h {
            text += &format!(" LOOKBACK {h}h");
        }
        text + &self.c.text()
    }
}

fn allocate(weights: &[u128], total: u128) -> Vec<u128> {
    let sum: u128 = weights.iter().sum();
    let weights: Vec<u128> = if sum == 0 {
        vec![1; weights.len()]
    } else {
        weights.to_vec()
    };
    let sum: u128 = weights.iter().sum();
    let mut parts: Vec<(u128, u128)> = weights
        .iter()
        .map(|&w| (w * total / sum, w * total % sum))
        .collect();
    let short = total - parts.iter().map(|p| p.0).sum::<u128>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    for &k in order.iter().take(short as usize) {
        parts[k].0 += 1;
    }
    parts.into_iter().map(|p| p.0).collect()
}

/// The table, and (conversions, total cents) for the exactness checks.
pub fn attribution_ref(q: &AttributionQ, evs: &[Ev]) -> (Table, u128, i128) {
    let lookback = q.lookback_h.map_or(30 * 24 * H, |h| h * H);
    let half_life = q.half_life_h.map_or(7 * 24 * H, |h| h * H);
    let mut credits: BTreeMap<String, (u128, i128)> = BTreeMap::new();
    let (mut conversions, mut all_cents) = (0u128, 0i128);
    for (_, ev) in by_customer(evs) {
        let kept: Vec<&Ev> = ev.iter().filter(|e| q.c.pass(e)).collect();
        for (c, conv) in kept.iter().enumerate() {
            if !q.step.matches(conv) || !q.c.in_range(conv.ts) {
                continue;
            }
            let mut touches: Vec<(i64, String)> = kept
                .iter()
                .enumerate()
                .filter(|&(p, e)| p != c && e.ts <= conv.ts && e.ts >= conv.ts - lookback)
                .filter_map(|(_, e)| e.ch.clone().map(|ch| (e.ts, ch)))
                .collect();
            touches.sort();
            let n = touches.len();
            let mut weights: BTreeMap<String, u128> = BTreeMap::new();
            let mut decay: BTreeMap<String, f64> = BTreeMap::new();
            for (k, (ts, ch)) in touches.iter().enumerate() {
                let w = match q.model {
                    "first" => u128::from(k == 0),
                    "last" => u128::from(k + 1 == n),
                    "linear" => 1,
                    "position" if n <= 2 => 1,
                    "position" if k == 0 || k + 1 == n => 2 * (n as u128 - 2),
                    "position" => 1,
                    _ => {
                        *decay.entry(ch.clone()).or_default() +=
                            (-((conv.ts - ts) as f64 / half_life as f64)).exp2();
                        0
                    }
                };
                *weights.entry(ch.clone()).or_default() += w;
            }
            if q.model == "time_decay" {
                let max = decay.values().copied().fold(0.0, f64::max);
                for (ch, w) in weights.iter_mut() {
                    *w = (decay[ch] / max * (1u64 << 40) as f64).round() as u128;
                }
            }
            if touches.is_empty() {
                weights.insert("(none)".into(), 1);
            }
            let cents: i128 = if q.value {
                conv.amt.map_or(0, |a| (a * 100.0).round() as i128)
            } else {
                0
            };
            conversions += 1;
            all_cents += cents;
            let names: Vec<&String> = weights.keys().collect();
            let ws: Vec<u128> = weights.values().copied().collect();
            let units = allocate(&ws, 1_000_000_000);
            let value = allocate(&ws, cents.unsigned_abs());
            for ((name, u), v) in names.into_iter().zip(units).zip(value) {
                if u == 0 && v == 0 {
                    continue;
                }
                let e = credits.entry(name.clone()).or_default();
                e.0 += u;
                e.1 += if cents < 0 { -(v as i128) } else { v as i128 };
            }
        }
    }
    let mut rows: Vec<(String, u128, i128)> = credits.into_iter().map(|(g, (u, v))| (g, u, v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut t = Table::new(if q.value {
        &["group", "conversions", "value"]
    } else {
        &["group", "conversions"]
    });
    for (group, units, cents) in rows {
        let mut row = vec![Cell::Str(group), Cell::Float(units as f64 / 1e9)];
        if q.value {
            row.push(Cell::Float(cents as f64 / 100.0));
        }
        t.rows.push(row);
    }
    (t, conversions, all_cents)
}
