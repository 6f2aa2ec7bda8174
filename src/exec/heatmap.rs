//! HEATMAP: when customers are active — events and distinct customers per local weekday and
//! hour (docs/QUERY.md, HEATMAP).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `operator`, `options`, `prefilter`, `scan`.

use super::drive::evaluate;
use super::operator::{HashMap, Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, passes};
use crate::dict::Dicts;
use crate::model::{Columns, DAY_US};
use crate::plan::{CPred, Matcher, Resolver};
use crate::query::ast::Heatmap;
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use jiff::tz::TimeZone;
use std::ops::Range;

/// Cells: 7 weekdays × 24 hours, Monday 00:00 first.
const CELLS: usize = 7 * 24;
const HOUR_US: i64 = 3_600_000_000;

pub(super) struct HeatmapOp<'a> {
    step: Option<Matcher>,
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    /// The calendar (`None`: UTC).
    tz: Option<TimeZone>,
    dicts: &'a Dicts,
}

/// One worker's counts per cell, and its cache of the zone's offset per UTC hour.
pub(super) struct HeatmapPartial {
    events: Vec<u64>,
    customers: Vec<u64>,
    /// UTC hour → the zone's offset in seconds through that whole hour (`None`: it changes
    /// inside the hour; each event is then converted on its own).
    offsets: HashMap<i64, Option<i32>>,
}

impl Default for HeatmapPartial {
    fn default() -> Self {
        HeatmapPartial {
            events: vec![0; CELLS],
            customers: vec![0; CELLS],
            offsets: HashMap::default(),
        }
    }
}

impl<'a> HeatmapOp<'a> {
    fn plan(heatmap: &Heatmap, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, heatmap.common.tz.as_ref())?;
        Ok(HeatmapOp {
            step: heatmap.step.as_ref().map(|s| res.step(s)).transpose()?,
            filter: heatmap.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range: res.range(&heatmap.common.range)?,
            tz: (res.tz != TimeZone::UTC).then(|| res.tz.clone()),
            dicts: input.dicts,
        })
    }

    /// The zone's offset (seconds) at `ts`.
    fn offset_at(tz: &TimeZone, ts: i64) -> i32 {
        jiff::Timestamp::from_microsecond(ts).map_or(0, |at| tz.to_offset(at).seconds())
    }

    /// The cell (weekday × 24 + hour, Monday = 0) of `ts` in the statement's calendar.
    fn cell(&self, ts: i64, offsets: &mut HashMap<i64, Option<i32>>) -> usize {
        let offset = match &self.tz {
            None => 0,
            Some(tz) => {
                let hour = ts.div_euclid(HOUR_US);
                let whole = *offsets.entry(hour).or_insert_with(|| {
                    let start = hour * HOUR_US;
                    let first = Self::offset_at(tz, start);
                    (first == Self::offset_at(tz, start + HOUR_US - 1)).then_some(first)
                });
                whole.unwrap_or_else(|| Self::offset_at(tz, ts))
            }
        };
        let local = ts.saturating_add(i64::from(offset) * 1_000_000);
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counted from Monday.
        let weekday = (local.div_euclid(DAY_US) + 3).rem_euclid(7) as usize;
        let hour = (local.rem_euclid(DAY_US) / HOUR_US) as usize;
        weekday * 24 + hour
    }
}

impl Operator for HeatmapOp<'_> {
    type Partial = HeatmapPartial;

    fn columns(&self) -> ColumnSet {
        let props = self.filter.is_some() || self.step.as_ref().is_some_and(Matcher::uses_props);
        ColumnSet {
            stage: self.step.as_ref().is_some_and(|s| s.stage.is_some()),
            ..columns(props)
        }
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<HeatmapPartial>, QueryError> {
        let only = self
            .step
            .as_ref()
            .and_then(|step| candidates(step, input.bitmaps, self.range));
        Ok(Prefilter::only(only))
    }

    fn customer(&self, partial: &mut HeatmapPartial, rows: &Columns, run: Range<usize>) {
        let mut touched = [0u64; CELLS.div_ceil(64)];
        for i in run {
            let ts = rows.ts[i];
            if self.range.is_some_and(|(lo, hi)| ts < lo || ts >= hi)
                || !passes(&self.filter, rows, i, self.dicts)
                || !self.step.as_ref().is_none_or(|s| s.matches(rows, i, self.dicts))
            {
                continue;
            }
            let cell = self.cell(ts, &mut partial.offsets);
            partial.events[cell] += 1;
            touched[cell / 64] |= 1 << (cell % 64);
        }
        for (word, bits) in touched.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                partial.customers[word * 64 + bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }
    }

    fn footprint(&self, partial: &HeatmapPartial) -> usize {
        2 * CELLS * 8 + partial.offsets.capacity() * 24
    }

    fn merge(&self, into: &mut HeatmapPartial, from: HeatmapPartial) {
        for (a, b) in into.events.iter_mut().zip(from.events) {
            *a += b;
        }
        for (a, b) in into.customers.iter_mut().zip(from.customers) {
            *a += b;
        }
    }

    fn finish(&self, partial: HeatmapPartial, _: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        let mut t = Table::new(&["weekday", "hour", "events", "customers"]);
        for cell in 0..CELLS {
            t.rows.push(vec![
                Cell::Int((cell / 24 + 1) as i64),
                Cell::Int((cell % 24) as i64),
                Cell::Int(partial.events[cell] as i64),
                Cell::Int(partial.customers[cell] as i64),
            ]);
        }
        Ok(t)
    }
}

/// Runs a HEATMAP statement.
pub(super) fn heatmap(
    heatmap: &Heatmap,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&HeatmapOp::plan(heatmap, text, input)?, input, opts)
}
