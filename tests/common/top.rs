//! The reference of TOP CUSTOMERS, written straight from docs/QUERY.md: every customer's
//! counted events, its measure, all customers sorted, SQL's RANK().

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, by_customer};

/// A TOP CUSTOMERS statement; property measures read `amt`.
#[derive(Clone, Debug)]
pub struct TopQ {
    /// count, sum, avg, min, max, first_seen, last_seen or days_active.
    pub measure: &'static str,
    pub of: Option<StepQ>,
    /// None: no order word (largest first); Some(true): ASC; Some(false): DESC.
    pub ascending: Option<bool>,
    pub limit: Option<usize>,
    pub c: Common,
}

impl TopQ {
    pub fn text(&self) -> String {
        let measure = match self.measure {
            "sum" | "avg" | "min" | "max" => format!("{}(amt)", self.measure),
            other => other.to_string(),
        };
        let mut text = format!("TOP CUSTOMERS BY {measure}");
        if let Some(step) = &self.of {
            text += &format!(" OF {}", step.text());
        }
        match self.ascending {
            Some(true) => text += " ASC",
            Some(false) => text += " DESC",
            None => {}
        }
        if let Some(n) = self.limit {
            text += &format!(" LIMIT {n}");
        }
        text + &self.c.text()
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Measured {
    Int(i64),
    Float(f64),
}

impl Measured {
    fn cmp(&self, other: &Measured) -> std::cmp::Ordering {
        match (self, other) {
            (Measured::Int(a), Measured::Int(b)) => a.cmp(b),
            (Measured::Float(a), Measured::Float(b)) => a.total_cmp(b),
            _ => unreachable!("one statement's values are of one kind"),
        }
    }
}

/// The measure of one customer's counted events (`None`: not ranked).
fn measure(q: &TopQ, counted: &[&Ev], tz: &TimeZone) -> Option<Measured> {
    let first = counted.iter().map(|e| e.ts).min()?;
    let last = counted.iter().map(|e| e.ts).max()?;
    Some(match q.measure {
        "count" => Measured::Int(counted.len() as i64),
        "first_seen" => Measured::Int(first),
        "last_seen" => Measured::Int(last),
        "days_active" => {
            let days: std::collections::BTreeSet<jiff::civil::Date> = counted
                .iter()
                .map(|e| {
                    jiff::Timestamp::from_nanosecond(i128::from(e.ts) * 1000)
                        .unwrap()
                        .to_zoned_datetime(tz.clone())
                        .date()
                })
                .collect();
            Measured::Int(days.len() as i64)
        }
        property => {
            let mut values: Vec<f64> = counted.iter().filter_map(|e| e.amt).collect();
            // docs/QUERY.md: a customer without a counted event carrying p is not ranked.
            if values.is_empty() {
                return None;
            }
            // docs/QUERY.md: a sum adds the values in ascending order.
            values.sort_by(f64::total_cmp);
            let sum: f64 = values.iter().sum();
            Measured::Float(match property {
                "sum" => sum,
                "avg" => sum / values.len() as f64,
                "min" => *values.first()?,
                _ => *values.last()?,
            })
        }
    })
}

pub fn top_ref(q: &TopQ, evs: &[Ev]) -> Table {
    let tz = TimeZone::get(q.c.tz).unwrap();
    let mut ranked: Vec<(Measured, String)> = Vec::new();
    for (customer, events) in by_customer(evs) {
        let counted: Vec<&Ev> = events
            .iter()
            .filter(|e| q.c.pass(e) && q.c.in_range(e.ts) && q.of.as_ref().is_none_or(|s| s.matches(e)))
            .collect();
        if let Some(value) = measure(q, &counted, &tz) {
            ranked.push((value, customer));
        }
    }
    let ascending = q.ascending == Some(true);
    ranked.sort_by(|a, b| {
        let by_value = if ascending { a.0.cmp(&b.0) } else { b.0.cmp(&a.0) };
        by_value.then_with(|| a.1.cmp(&b.1))
    });
    let mut table = Table::new(&["rank", "customer", "value"]);
    for (value, customer) in ranked.iter().take(q.limit.unwrap_or(10)) {
        // RANK(): 1 + the number of customers whose value ranks strictly before this one.
        let rank = 1 + ranked
            .iter()
            .filter(|other| {
                let order = other.0.cmp(value);
                if ascending { order.is_lt() } else { order.is_gt() }
            })
            .count();
        table.rows.push(vec![
            Cell::Int(rank as i64),
            Cell::Str(customer.clone()),
            match (q.measure, value) {
                ("first_seen" | "last_seen", Measured::Int(us)) => Cell::Time(*us),
                (_, Measured::Int(n)) => Cell::Int(*n),
                (_, Measured::Float(x)) => Cell::Float(*x),
            },
        ]);
    }
    table
}
