//! HEATMAP: when customers are active — events and distinct customers per local weekday and
//! hour (docs/QUERY.md, HEATMAP).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `measures`, `operator`, `options`, `prefilter`, `scan`.

use super::drive::evaluate;
use super::measures::{block_threads, by_blocks};
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
use roaring::RoaringBitmap;
use std::ops::Range;

/// Cells: 7 weekdays × 24 hours, Monday 00:00 first.
const CELLS: usize = 7 * 24;
/// The words of a customer's cells mask.
const WORDS: usize = CELLS.div_ceil(64);
const HOUR_US: i64 = 3_600_000_000;

pub(super) struct HeatmapOp<'a> {
    step: Option<Matcher>,
    /// The step by event id, when it tests names only (a look-up a row).
    step_events: Option<Vec<bool>>,
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
    offsets: Offsets,
}

/// A worker's cache of the zone's offsets: UTC hour → the offset in seconds through that whole
/// hour (`None`: it changes inside the hour; each event is then converted on its own), and the
/// cell of the last UTC hour seen whole (a customer's next event is mostly in the same hour).
#[derive(Default)]
struct Offsets {
    by_hour: HashMap<i64, Option<i32>>,
    /// The start (µs) of that hour, and its cell.
    last: Option<(i64, usize)>,
}

impl Default for HeatmapPartial {
    fn default() -> Self {
        HeatmapPartial {
            events: vec![0; CELLS],
            customers: vec![0; CELLS],
            offsets: Offsets::default(),
        }
    }
}

impl<'a> HeatmapOp<'a> {
    fn plan(heatmap: &Heatmap, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, heatmap.common.tz.as_ref())?;
        let step = heatmap.step.as_ref().map(|s| res.step(s)).transpose()?;
        Ok(HeatmapOp {
            step_events: step.as_ref().and_then(|s| s.name_table(input.dicts.events.len())),
            step,
            filter: heatmap.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range: res.range(&heatmap.common.range)?,
            tz: (res.tz != TimeZone::UTC).then(|| res.tz.clone()),
            dicts: input.dicts,
        })
    }

    /// Whether row `index` counts: in the range, passing the filter, matching the step.
    #[inline]
    fn counts(&self, rows: &Columns, index: usize) -> bool {
        let ts = rows.ts[index];
        !self.range.is_some_and(|(lo, hi)| ts < lo || ts >= hi)
            && passes(&self.filter, rows, index, self.dicts)
            && match (&self.step_events, &self.step) {
                (Some(table), _) => table.get(rows.event[index] as usize).copied().unwrap_or(false),
                (None, Some(step)) => step.matches(rows, index, self.dicts),
                (None, None) => true,
            }
    }

    /// The zone's offset (seconds) at `ts`.
    fn offset_at(tz: &TimeZone, ts: i64) -> i32 {
        jiff::Timestamp::from_microsecond(ts).map_or(0, |at| tz.to_offset(at).seconds())
    }

    /// The cell (weekday × 24 + hour, Monday = 0) of `ts` in the statement's calendar.
    fn cell(&self, ts: i64, offsets: &mut Offsets) -> usize {
        // Two comparisons, not a division, for an event in the hour of the one before.
        if let Some((start, cell)) = offsets.last
            && ts >= start
            && (ts.wrapping_sub(start) as u64) < HOUR_US as u64
        {
            return cell;
        }
        let hour = ts.div_euclid(HOUR_US);
        let (offset, whole) = match &self.tz {
            None => (0, true),
            Some(tz) => {
                let whole = *offsets.by_hour.entry(hour).or_insert_with(|| {
                    let start = hour * HOUR_US;
                    let first = Self::offset_at(tz, start);
                    (first == Self::offset_at(tz, start + HOUR_US - 1)).then_some(first)
                });
                (whole.unwrap_or_else(|| Self::offset_at(tz, ts)), whole.is_some())
            }
        };
        let cell = Self::local_cell(ts, offset);
        // An offset of whole hours through the whole UTC hour puts the hour in one cell (an
        // offset of −3:30 or +5:45 splits it between two).
        if whole && offset % 3600 == 0 {
            offsets.last = Some((hour * HOUR_US, cell));
        }
        cell
    }

    /// The cell of `ts` at `offset` seconds from UTC.
    fn local_cell(ts: i64, offset: i32) -> usize {
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

    /// Events per cell are counted row by row, and a customer's cells are a 168-bit mask OR'd
    /// row by row, so every block is read on its own on all workers (the `measures` room's
    /// pass): no customer's rows are merged across segments. The masks' popcounts per cell
    /// are then the customers column, exactly as the customer step counts them.
    fn by_rows(&self, input: &Input<'_>, opts: &QueryOptions) -> Result<Option<HeatmapPartial>, QueryError> {
        let only = self
            .step
            .as_ref()
            .and_then(|step| candidates(step, input.bitmaps, self.range));
        let threads = block_threads(input, only.as_ref(), opts);
        let customers = input.customers as usize;
        if customers.saturating_mul(WORDS * 8).saturating_mul(threads + 1) > opts.memory_max {
            return Ok(None);
        }
        let new = || ByRows {
            partial: HeatmapPartial::default(),
            masks: vec![[0u64; WORDS]; customers],
        };
        let fold = |state: &mut ByRows, rows: &Columns, hidden: Option<&RoaringBitmap>, _: &mut ()| {
            let (mut seen, mut skip) = (u32::MAX, false);
            for i in 0..rows.len() {
                let cid = rows.cid[i];
                if cid != seen {
                    // Rows are grouped by customer: the hidden test runs once per customer.
                    seen = cid;
                    skip = hidden.is_some_and(|h| h.contains(cid)) || cid as usize >= customers;
                }
                if skip || !self.counts(rows, i) {
                    continue;
                }
                let cell = self.cell(rows.ts[i], &mut state.partial.offsets);
                state.partial.events[cell] += 1;
                state.masks[cid as usize][cell / 64] |= 1 << (cell % 64);
            }
        };
        let footprint = |state: &ByRows| state.masks.capacity() * WORDS * 8 + self.footprint(&state.partial);
        let mut total: Option<ByRows> = None;
        for result in by_blocks(
            input,
            only.as_ref(),
            self.columns(),
            threads,
            opts,
            new,
            fold,
            footprint,
        ) {
            match (result, &mut total) {
                (Ok(state), Some(total)) => total.merge(state),
                (Ok(state), None) => total = Some(state),
                // Over the budget: the customer scan holds one customer's cells at a time.
                (Err(QueryError::MemoryExceeded(_)), _) => return Ok(None),
                (Err(e), _) => return Err(e),
            }
        }
        let Some(mut total) = total else {
            return Ok(Some(HeatmapPartial::default()));
        };
        for mask in &total.masks {
            add_cells(&mut total.partial.customers, mask);
        }
        Ok(Some(total.partial))
    }

    fn customer(&self, partial: &mut HeatmapPartial, rows: &Columns, run: Range<usize>) {
        let mut touched = [0u64; WORDS];
        for i in run {
            if !self.counts(rows, i) {
                continue;
            }
            let cell = self.cell(rows.ts[i], &mut partial.offsets);
            partial.events[cell] += 1;
            touched[cell / 64] |= 1 << (cell % 64);
        }
        add_cells(&mut partial.customers, &touched);
    }

    fn footprint(&self, partial: &HeatmapPartial) -> usize {
        2 * CELLS * 8 + partial.offsets.by_hour.capacity() * 24
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

/// One worker's pass by rows: the counts, and each customer's cells (bit k: cell k).
struct ByRows {
    partial: HeatmapPartial,
    masks: Vec<[u64; WORDS]>,
}

impl ByRows {
    fn merge(&mut self, from: ByRows) {
        for (a, b) in self.partial.events.iter_mut().zip(from.partial.events) {
            *a += b;
        }
        for (into, other) in self.masks.iter_mut().zip(from.masks) {
            for (a, b) in into.iter_mut().zip(other) {
                *a |= b;
            }
        }
    }
}

/// Counts a customer once in each cell of `mask`.
fn add_cells(customers: &mut [u64], mask: &[u64; WORDS]) {
    for (word, bits) in mask.iter().enumerate() {
        let mut bits = *bits;
        while bits != 0 {
            customers[word * 64 + bits.trailing_zeros() as usize] += 1;
            bits &= bits - 1;
        }
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
