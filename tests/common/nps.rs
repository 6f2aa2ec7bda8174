//! The reference of `TREND nps(p)`, written straight from docs/QUERY.md: per bucket (and `BY ch`
//! group), the counted events' scores (`amt` here) sorted into promoters (9-10), passives (7-8)
//! and detractors (0-6); the score, its normal-approximation interval; a score that is not an
//! integer 0-10 is an error.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, bucket_seq, complete_ref, label, local_bucket};

#[derive(Clone, Debug)]
pub struct NpsQ {
    pub of: Option<StepQ>,
    pub period: &'static str,
    pub by: bool,
    pub c: Common,
}

impl NpsQ {
    pub fn text(&self) -> String {
        format!(
            "TREND nps(amt){} PERIOD {}{}{}",
            self.of
                .as_ref()
                .map_or(String::new(), |s| format!(" OF {}", s.text())),
            self.period,
            self.c.text(),
            if self.by { " BY ch" } else { "" }
        )
    }
}

/// The table, or the bad score the statement must refuse (the earliest).
pub fn nps_ref(q: &NpsQ, evs: &[Ev]) -> Result<Table, f64> {
    let tz = TimeZone::get(q.c.tz).unwrap();
    let all = evs.iter().map(|e| e.ts).min().zip(evs.iter().map(|e| e.ts).max());
    let (lo, hi) = q.c.range.or(all.map(|(a, b)| (a, b + 1))).unwrap_or((0, 1));
    let sel: Vec<&Ev> = evs
        .iter()
        .filter(|e| q.c.pass(e) && q.of.as_ref().is_none_or(|s| s.matches(e)) && lo <= e.ts && e.ts < hi)
        .collect();
    if let Some(bad) = sel
        .iter()
        .filter(|e| {
            e.amt
                .is_some_and(|v| v.fract() != 0.0 || !(0.0..=10.0).contains(&v))
        })
        // Ties in time go to the customer the database met first (its id order), then to the
        // first committed, as the engine reports them.
        .min_by_key(|e| (e.ts, evs.iter().position(|first| first.cust == e.cust), e.seq))
    {
        return Err(bad.amt.unwrap());
    }
    let group = |e: &Ev| {
        if q.by {
            e.ch.clone().unwrap_or("(null)".into())
        } else {
            String::new()
        }
    };
    let groups: BTreeSet<String> = if q.by {
        sel.iter().map(|e| group(e)).collect()
    } else {
        [String::new()].into()
    };
    let mut columns = vec!["bucket"];
    if q.by {
        columns.push("group");
    }
    columns.extend([
        "value",
        "promoters",
        "passives",
        "detractors",
        "responses",
        "ci_low",
        "ci_high",
        "complete",
    ]);
    let mut t = Table::new(&columns);
    for b in bucket_seq(lo, hi, q.period, &tz) {
        for g in &groups {
            let scores: Vec<f64> = sel
                .iter()
                .filter(|e| local_bucket(e.ts, q.period, &tz) == b && group(e) == *g)
                .filter_map(|e| e.amt)
                .collect();
            let count = |f: &dyn Fn(f64) -> bool| scores.iter().filter(|&&s| f(s)).count() as i64;
            let (p, m, d) = (
                count(&|s| s >= 9.0),
                count(&|s| (7.0..9.0).contains(&s)),
                count(&|s| s < 7.0),
            );
            let n = p + m + d;
            let mut row = vec![Cell::Str(label(b, q.period, &tz))];
            if q.by {
                row.push(Cell::Str(g.clone()));
            }
            if n == 0 {
                row.extend([
                    Cell::Null,
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Null,
                    Cell::Null,
                ]);
            } else {
                let (ps, ds) = (p as f64 / n as f64, d as f64 / n as f64);
                let score = 100.0 * (ps - ds);
                let half = 1.96 * 100.0 * (ps + ds - (ps - ds).powi(2)).max(0.0).sqrt() / (n as f64).sqrt();
                row.extend([
                    Cell::Float(score),
                    Cell::Int(p),
                    Cell::Int(m),
                    Cell::Int(d),
                    Cell::Int(n),
                    Cell::Float((score - half).max(-100.0)),
                    Cell::Float((score + half).min(100.0)),
                ]);
            }
            row.push(Cell::Bool(complete_ref(b, q.period, &tz, q.c.range, all)));
            t.rows.push(row);
        }
    }
    Ok(t)
}
