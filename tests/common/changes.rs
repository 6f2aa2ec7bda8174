//! The reference of CHANGES, written straight from docs/QUERY.md: per bucket and `BY ch` group,
//! TREND's value over the events of the bucket, the value one bucket earlier, their difference,
//! and the group's part of the total's change (own change for counts and sums; the change of
//! its 1/j shares of customers for distinct counts; rate plus mix effect for means), ranked by
//! |change| and cut to `TOP n`. Brute force over the events, bucket by bucket.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, label, local_bucket, next_in};

#[derive(Clone, Debug)]
pub struct ChangesQ {
    /// `count`, `uniq`, `wau`, `sum(amt)`, `avg(amt)`, `min(amt)` or `p50(amt)`.
    pub agg: &'static str,
    pub of: Option<StepQ>,
    pub period: &'static str,
    pub top: Option<usize>,
    pub c: Common,
}

impl ChangesQ {
    pub fn text(&self) -> String {
        let of = self
            .of
            .as_ref()
            .map_or(String::new(), |s| format!(" OF {}", s.text()));
        let top = self.top.map_or(String::new(), |n| format!(" TOP {n}"));
        let (period, week) = match self.period {
            "week_sunday" => ("week", " WEEK START sunday"),
            other => (other, ""),
        };
        format!(
            "CHANGES {}{of} PERIOD {period} BY ch{top}{}{week}",
            self.agg,
            self.c.text()
        )
    }
}

fn instant(bucket: jiff::civil::DateTime, tz: &TimeZone) -> i64 {
    bucket
        .to_zoned_datetime(tz.clone())
        .unwrap()
        .timestamp()
        .as_microsecond()
}

fn group_of(e: &Ev) -> String {
    e.ch.clone().unwrap_or("(null)".into())
}

/// TREND's value of `agg` over `events` (the window's events for wau).
fn value(agg: &str, events: &[&Ev]) -> Cell {
    let mut values: Vec<f64> = events.iter().filter_map(|e| e.amt).collect();
    values.sort_by(f64::total_cmp);
    match agg {
        "count" => Cell::Int(events.len() as i64),
        "uniq" | "wau" => Cell::Int(events.iter().map(|e| &e.cust).collect::<BTreeSet<_>>().len() as i64),
        "sum(amt)" => Cell::Float(values.iter().sum()),
        "avg(amt)" if values.is_empty() => Cell::Null,
        "avg(amt)" => Cell::Float(values.iter().sum::<f64>() / values.len() as f64),
        "min(amt)" => values.first().map_or(Cell::Null, |v| Cell::Float(*v)),
        _ => {
            let rank = ((0.5 * values.len() as f64).ceil() as usize).max(1);
            values.get(rank - 1).map_or(Cell::Null, |v| Cell::Float(*v))
        }
    }
}

fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(n) => Some(*n as f64),
        Cell::Float(x) => Some(*x),
        _ => None,
    }
}

fn difference(now: &Cell, before: &Cell) -> Cell {
    match (now, before) {
        (Cell::Int(a), Cell::Int(b)) => Cell::Int(a - b),
        _ => match (number(now), number(before)) {
            (Some(a), Some(b)) => Cell::Float(a - b),
            _ => Cell::Null,
        },
    }
}

/// Each group's share of a bucket's customers: a customer in j groups counts 1/j in each.
fn shares(events: &[&Ev]) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in events {
        groups.entry(&e.cust).or_default().insert(group_of(e));
    }
    let mut out = BTreeMap::new();
    for customer_groups in groups.values() {
        for g in customer_groups {
            *out.entry(g.clone()).or_insert(0.0) += 1.0 / customer_groups.len() as f64;
        }
    }
    out
}

/// Group `g`'s part of the total change of a mean between the events `before` and `now`:
/// w̄·Δa + (ā − T̄)·Δw, w the group's share of the values and a its mean (a group with no value
/// in one bucket takes its other bucket's mean there).
fn mean_part(g: &str, before: &[&Ev], now: &[&Ev]) -> Option<f64> {
    let stats = |events: &[&Ev]| {
        let all: Vec<f64> = events.iter().filter_map(|e| e.amt).collect();
        let own: Vec<f64> = events
            .iter()
            .filter(|e| group_of(e) == g)
            .filter_map(|e| e.amt)
            .collect();
        (
            all.iter().sum::<f64>(),
            all.len() as f64,
            own.iter().sum::<f64>(),
            own.len() as f64,
        )
    };
    let (total_before, all_before, sum_before, n_before) = stats(before);
    let (total_now, all_now, sum_now, n_now) = stats(now);
    if all_before == 0.0 || all_now == 0.0 {
        return None;
    }
    let (mean_before, mean_now) = match (n_before > 0.0, n_now > 0.0) {
        (true, true) => (sum_before / n_before, sum_now / n_now),
        (true, false) => (sum_before / n_before, sum_before / n_before),
        (false, true) => (sum_now / n_now, sum_now / n_now),
        (false, false) => return Some(0.0),
    };
    let (w_before, w_now) = (n_before / all_before, n_now / all_now);
    let total_mean = (total_before / all_before + total_now / all_now) / 2.0;
    Some(
        (w_before + w_now) / 2.0 * (mean_now - mean_before)
            + ((mean_before + mean_now) / 2.0 - total_mean) * (w_now - w_before),
    )
}

pub fn changes_ref<'e>(q: &ChangesQ, evs: &'e [Ev]) -> Table {
    let tz = TimeZone::get(q.c.tz).unwrap();
    let all = evs.iter().map(|e| e.ts).min().zip(evs.iter().map(|e| e.ts).max());
    let (lo, hi) = q.c.range.or(all.map(|(a, b)| (a, b + 1))).unwrap_or((0, 1));
    // The bucket before the one holding `lo`, then every bucket through the one holding hi - 1.
    let first = local_bucket(lo, q.period, &tz);
    let mut buckets = vec![local_bucket(instant(first, &tz) - 1, q.period, &tz)];
    while instant(*buckets.last().unwrap(), &tz) < hi {
        let next = next_in(*buckets.last().unwrap(), q.period, &tz);
        buckets.push(next);
    }
    buckets.pop();
    let start = instant(buckets[0], &tz);
    let counted: Vec<&Ev> = evs
        .iter()
        .filter(|e| q.c.pass(e) && q.of.as_ref().is_none_or(|s| s.matches(e)) && e.ts < hi)
        .collect();
    // The events that make up bucket `b`: those in it, or for wau those of its 7 days.
    let events_of = |b: jiff::civil::DateTime| -> Vec<&Ev> {
        counted
            .iter()
            .filter(|e| {
                if q.agg == "wau" {
                    let day = local_bucket(e.ts, "day", &tz);
                    day <= b && day >= b.checked_sub(jiff::Span::new().days(6)).unwrap()
                } else {
                    e.ts >= start && local_bucket(e.ts, q.period, &tz) == b
                }
            })
            .copied()
            .collect()
    };
    let mut t = Table::new(&[
        "bucket",
        "group",
        "value",
        "previous",
        "change",
        "contribution",
        "total_change",
    ]);
    for pair in buckets.windows(2) {
        let (before, now) = (events_of(pair[0]), events_of(pair[1]));
        let total_change = difference(&value(q.agg, &now), &value(q.agg, &before));
        let denominator = number(&total_change).filter(|&d| d != 0.0);
        let groups: BTreeSet<String> = before.iter().chain(&now).map(|e| group_of(e)).collect();
        let (shares_before, shares_now) = (shares(&before), shares(&now));
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        for g in groups {
            let of = |events: &[&'e Ev]| -> Vec<&'e Ev> {
                events.iter().filter(|e| group_of(e) == g).copied().collect()
            };
            let (value_now, value_before) = (value(q.agg, &of(&now)), value(q.agg, &of(&before)));
            let part = match q.agg {
                "count" => Some(of(&now).len() as f64 - of(&before).len() as f64),
                "sum(amt)" => number(&difference(&value_now, &value_before)),
                "uniq" | "wau" => {
                    Some(shares_now.get(&g).unwrap_or(&0.0) - shares_before.get(&g).unwrap_or(&0.0))
                }
                "avg(amt)" => mean_part(&g, &before, &now),
                _ => None,
            };
            let contribution = match (part, denominator) {
                (Some(part), Some(total)) => Cell::Float(part / total),
                _ => Cell::Null,
            };
            rows.push(vec![
                Cell::Str(label(pair[1], q.period, &tz)),
                Cell::Str(g.clone()),
                value_now.clone(),
                value_before.clone(),
                difference(&value_now, &value_before),
                contribution,
                total_change.clone(),
            ]);
        }
        rows.sort_by(|a, b| {
            let size = |row: &Vec<Cell>| number(&row[4]).map(f64::abs);
            match (size(a), size(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| a[1].to_string().cmp(&b[1].to_string()))
        });
        rows.truncate(q.top.unwrap_or(usize::MAX));
        t.rows.extend(rows);
    }
    t
}
