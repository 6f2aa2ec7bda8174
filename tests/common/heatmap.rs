//! The reference of HEATMAP, written straight from docs/QUERY.md: every counted event's local
//! weekday and hour (jiff, per event), events and distinct customers per cell, all 168 cells.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ};

/// A HEATMAP statement.
#[derive(Clone, Debug)]
pub struct HeatmapQ {
    pub of: Option<StepQ>,
    pub c: Common,
}

impl HeatmapQ {
    pub fn text(&self) -> String {
        let mut text = "HEATMAP".to_owned();
        if let Some(step) = &self.of {
            text += &format!(" OF {}", step.text());
        }
        // A WHERE right after the step belongs to the step: keep the statement's own apart.
        if self.of.is_some() && self.c.where_ch.is_some() && self.c.range.is_none() {
            text += " FROM 0 TO 253402207200000";
        }
        text + &self.c.text()
    }
}

pub fn heatmap_ref(q: &HeatmapQ, evs: &[Ev]) -> Table {
    let tz = TimeZone::get(q.c.tz).unwrap();
    let mut events: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut customers: BTreeMap<(i64, i64), BTreeSet<&str>> = BTreeMap::new();
    for e in evs {
        if !q.c.pass(e) || !q.c.in_range(e.ts) || !q.of.as_ref().is_none_or(|s| s.matches(e)) {
            continue;
        }
        let local = jiff::Timestamp::from_nanosecond(i128::from(e.ts) * 1000)
            .unwrap()
            .to_zoned_datetime(tz.clone());
        let cell = (
            i64::from(local.weekday().to_monday_one_offset()),
            i64::from(local.hour()),
        );
        *events.entry(cell).or_default() += 1;
        customers.entry(cell).or_default().insert(&e.cust);
    }
    let mut t = Table::new(&["weekday", "hour", "events", "customers"]);
    for weekday in 1..=7 {
        for hour in 0..24 {
            t.rows.push(vec![
                Cell::Int(weekday),
                Cell::Int(hour),
                Cell::Int(events.get(&(weekday, hour)).copied().unwrap_or(0)),
                Cell::Int(customers.get(&(weekday, hour)).map_or(0, |s| s.len() as i64)),
            ]);
        }
    }
    t
}
