//! The reference of TREND's session aggregates, written straight from docs/QUERY.md: each
//! customer's counted events in time order, cut where the gap exceeds the session gap; each
//! session in the bucket (and `BY ch` group) of its first event.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, bucket_seq, by_customer, complete_ref, label, local_bucket};

#[derive(Clone, Debug)]
pub struct SessionQ {
    /// sessions, bounce_rate, avg(session_length), p50(session_length), p90(session_length)
    pub agg: &'static str,
    pub of: Option<StepQ>,
    pub period: &'static str,
    pub gap_m: Option<i64>,
    pub by: bool,
    pub c: Common,
}

impl SessionQ {
    pub fn text(&self) -> String {
        format!(
            "TREND {}{} PERIOD {}{}{}{}",
            self.agg,
            self.of
                .as_ref()
                .map_or(String::new(), |s| format!(" OF {}", s.text())),
            self.period,
            self.gap_m.map_or(String::new(), |m| format!(" SESSION {m}m")),
            self.c.text(),
            if self.by { " BY ch" } else { "" }
        )
    }
}

pub fn sessions_ref(q: &SessionQ, evs: &[Ev]) -> Table {
    let tz = TimeZone::get(q.c.tz).unwrap();
    let gap = q.gap_m.unwrap_or(30) * 60_000_000;
    let all = evs.iter().map(|e| e.ts).min().zip(evs.iter().map(|e| e.ts).max());
    let (lo, hi) = q.c.range.or(all.map(|(a, b)| (a, b + 1))).unwrap_or((0, 1));
    // (bucket, group) -> (sessions, bounces, lengths in seconds)
    let mut cells: BTreeMap<(jiff::civil::DateTime, String), (i64, i64, Vec<f64>)> = BTreeMap::new();
    for (_, ev) in by_customer(evs) {
        let counted: Vec<&Ev> = ev
            .iter()
            .filter(|e| lo <= e.ts && e.ts < hi && q.c.pass(e) && q.of.as_ref().is_none_or(|s| s.matches(e)))
            .collect();
        let mut start = 0;
        for k in 1..=counted.len() {
            if k < counted.len() && counted[k].ts - counted[k - 1].ts <= gap {
                continue;
            }
            let session = &counted[start..k];
            let first = session[0];
            let group = if q.by {
                first.ch.clone().unwrap_or("(null)".into())
            } else {
                String::new()
            };
            let cell = cells
                .entry((local_bucket(first.ts, q.period, &tz), group))
                .or_default();
            cell.0 += 1;
            cell.1 += i64::from(session.len() == 1);
            cell.2
                .push((session[session.len() - 1].ts - first.ts) as f64 / 1e6);
            start = k;
        }
    }
    let groups: BTreeSet<String> = if q.by {
        cells.keys().map(|(_, g)| g.clone()).collect()
    } else {
        [String::new()].into()
    };
    let mut t = Table::new(if q.by {
        &["bucket", "group", "value", "complete"]
    } else {
        &["bucket", "value", "complete"]
    });
    for b in bucket_seq(lo, hi, q.period, &tz) {
        for g in &groups {
            let (n, bounces, mut lengths) = cells.get(&(b, g.clone())).cloned().unwrap_or_default();
            lengths.sort_by(f64::total_cmp);
            let value = match q.agg {
                "sessions" => Cell::Int(n),
                "bounce_rate" if n == 0 => Cell::Null,
                "bounce_rate" => Cell::Float(bounces as f64 / n as f64),
                _ if lengths.is_empty() => Cell::Null,
                "avg(session_length)" => Cell::Float(lengths.iter().sum::<f64>() / lengths.len() as f64),
                pct => {
                    let q: f64 = pct[1..3].parse().unwrap();
                    let rank = ((q / 100.0) * lengths.len() as f64).ceil().max(1.0) as usize;
                    Cell::Float(lengths[rank.min(lengths.len()) - 1])
                }
            };
            let mut row = vec![Cell::Str(label(b, q.period, &tz))];
            if q.by {
                row.push(Cell::Str(g.clone()));
            }
            row.push(value);
            row.push(Cell::Bool(complete_ref(b, q.period, &tz, q.c.range, all)));
            t.rows.push(row);
        }
    }
    t
}
