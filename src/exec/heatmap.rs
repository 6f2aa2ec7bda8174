//! HEATMAP: when customers are active — events and distinct customers per local weekday and
//! hour (docs/QUERY.md, HEATMAP).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`, `time`; rooms `drive`, `measures`, `operator`, `options`, `prefilter`, `scan`.

use super::drive::evaluate;
use super::measures::{block_threads, by_blocks};
use super::operator::{HashMap, Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, passes};
use crate::dict::Dicts;
use crate::model::{Columns, DAY_US, TS_MIN};
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
    /// Whether each event id counts (1) or not (0), then one more entry for any id past them,
    /// when a row counts by its event alone (no `WHERE`; a step of names or none): the rows
    /// that count are then selected without a branch on the row ([`HeatmapOp::select`]).
    plain: Option<Vec<u8>>,
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    /// The calendar (`None`: UTC).
    tz: Option<TimeZone>,
    dicts: &'a Dicts,
}

/// One worker's counts per cell, and its cache of the zone's offset per UTC hour.
pub(super) struct HeatmapPartial {
    events: Box<[u64; CELLS]>,
    customers: Box<[u64; CELLS]>,
    offsets: Offsets,
}

/// Slots of a worker's cache of the zone's offset per UTC day (a power of two).
const OFFSET_SLOTS: usize = 1024;
/// The cached offset of a day inside which the zone's offset changes.
const VARIES: i64 = i64::MIN;

/// A worker's cache of the zone's offset per UTC day, direct-mapped by the day's low bits:
/// (day, the offset in µs through that whole day, or [`VARIES`]: each event of that day is then
/// converted on its own). A zone changes its offset on a few days a year, so nearly every event
/// costs one look-up, never a hash.
struct Offsets {
    days: Box<[(i64, i64); OFFSET_SLOTS]>,
}

impl Default for Offsets {
    fn default() -> Self {
        // No event's day is i64::MIN: every slot starts empty.
        Offsets {
            days: Box::new([(i64::MIN, 0); OFFSET_SLOTS]),
        }
    }
}

impl Offsets {
    /// The zone's offset (µs) at `ts`.
    #[inline]
    fn at(&mut self, tz: &TimeZone, ts: i64) -> i64 {
        let day = ts.div_euclid(DAY_US);
        let slot = &mut self.days[(day as usize) & (OFFSET_SLOTS - 1)];
        if slot.0 != day {
            *slot = (day, Self::day_offset(tz, day));
        }
        match slot.1 {
            VARIES => offset_at(tz, ts),
            offset => offset,
        }
    }

    /// The offset through the whole of UTC day `day`, or [`VARIES`] when the zone changes it
    /// inside the day (or the day is outside the calendar's range).
    fn day_offset(tz: &TimeZone, day: i64) -> i64 {
        let start = day.saturating_mul(DAY_US);
        let Some(at) = crate::time::instant(start) else {
            return VARIES;
        };
        let end = start.saturating_add(DAY_US);
        let changes = tz
            .following(at)
            .next()
            .is_some_and(|change| change.timestamp().as_microsecond() < end);
        if changes { VARIES } else { offset_at(tz, start) }
    }
}

/// The zone's offset (µs) at `ts` (0 outside the calendar's range).
fn offset_at(tz: &TimeZone, ts: i64) -> i64 {
    crate::time::instant(ts).map_or(0, |at| i64::from(tz.to_offset(at).seconds()) * 1_000_000)
}

/// A Monday 00:00 UTC (µs) some 146,000 years before 1970: local times after it have their
/// cells from an unsigned division (no rounding towards −∞ to correct).
const MONDAY_BEFORE: i64 = {
    // 1970-01-05 00:00 UTC was a Monday.
    let monday = 4 * DAY_US;
    let week = 7 * DAY_US;
    monday - week * ((1 << 62) / week)
};

// Every stored timestamp, moved by any zone's offset (under ±26 hours), is after it.
const _: () = assert!(TS_MIN - 2 * DAY_US > MONDAY_BEFORE);

/// The cell of local time `local` (µs; at or after [`MONDAY_BEFORE`], as every stored
/// timestamp's is): weekday × 24 + hour, Monday 00:00 first.
#[inline]
fn local_cell(local: i64) -> usize {
    // `local - MONDAY_BEFORE` < 2^63 + 2^62 fits in a u64.
    ((local.wrapping_sub(MONDAY_BEFORE) as u64 / HOUR_US as u64) % CELLS as u64) as usize
}

impl Default for HeatmapPartial {
    fn default() -> Self {
        HeatmapPartial {
            events: Box::new([0; CELLS]),
            customers: Box::new([0; CELLS]),
            offsets: Offsets::default(),
        }
    }
}

impl<'a> HeatmapOp<'a> {
    fn plan(heatmap: &Heatmap, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, heatmap.common.tz.as_ref())?;
        let step = heatmap.step.as_ref().map(|s| res.step(s)).transpose()?;
        let filter = heatmap.common.filter.as_ref().map(|p| res.pred(p)).transpose()?;
        let step_events = step.as_ref().and_then(|s| s.name_table(input.dicts.events.len()));
        let plain = match (&filter, &step, &step_events) {
            (Some(_), _, _) | (None, Some(_), None) => None,
            (None, None, _) => Some(vec![1]),
            (None, Some(_), Some(table)) => {
                Some(table.iter().map(|&counts| u8::from(counts)).chain([0]).collect())
            }
        };
        Ok(HeatmapOp {
            step_events,
            plain,
            step,
            filter,
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

    /// The cell (weekday × 24 + hour, Monday = 0) of `ts` in the statement's calendar.
    #[inline]
    fn cell(&self, ts: i64, offsets: &mut Offsets) -> usize {
        let offset = match &self.tz {
            None => 0,
            Some(tz) => offsets.at(tz, ts),
        };
        local_cell(ts.saturating_add(offset))
    }

    /// Adds the counted rows of `run` (one customer's) to the events per cell, and their cells to
    /// `cells`.
    fn add_rows(
        &self,
        partial: &mut HeatmapPartial,
        rows: &Columns,
        run: Range<usize>,
        cells: &mut [u64; WORDS],
    ) {
        for i in run {
            if !self.counts(rows, i) {
                continue;
            }
            let cell = self.cell(rows.ts[i], &mut partial.offsets);
            partial.events[cell] += 1;
            cells[cell / 64] |= 1 << (cell % 64);
        }
    }

    /// The rows of `rows` that count, into `selected` (ascending), for a statement whose rows
    /// count by their event alone (`table`: 1 for each event id that counts, then one more entry
    /// for any id past them). Branch-free: whether a row counts is as good as random to a
    /// branch predictor.
    fn select(&self, table: &[u8], rows: &Columns, selected: &mut Vec<u32>) {
        let len = rows.ts.len().min(rows.event.len());
        let (ts, events) = (&rows.ts[..len], &rows.event[..len]);
        let past = table.len().saturating_sub(1);
        selected.clear();
        selected.resize(len, 0);
        let out = &mut selected[..len];
        let mut kept = 0;
        match self.range {
            None => {
                for (index, &event) in events.iter().enumerate() {
                    out[kept.min(index)] = index as u32;
                    kept += usize::from(table[(event as usize).min(past)]);
                }
            }
            Some((lo, hi)) => {
                for (index, (&event, &ts)) in events.iter().zip(ts).enumerate() {
                    out[kept.min(index)] = index as u32;
                    kept += usize::from(
                        table[(event as usize).min(past)] & u8::from(ts >= lo) & u8::from(ts < hi),
                    );
                }
            }
        }
        selected.truncate(kept);
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

    /// Events per cell are counted row by row, every block on its own on all workers (the
    /// `measures` room's pass): no customer's rows are merged across segments. A customer's
    /// cells are gathered over each of its runs: with several sources OR'd into its 168-bit
    /// mask, whose popcounts per cell are then the customers column; with one source counted
    /// as the run is read, but for runs at a block's edge (a customer cut by it), which go to a
    /// mask — the same counts as the customer step's.
    fn by_rows(&self, input: &Input<'_>, opts: &QueryOptions) -> Result<Option<HeatmapPartial>, QueryError> {
        let only = self
            .step
            .as_ref()
            .and_then(|step| candidates(step, input.bitmaps, self.range));
        let threads = block_threads(input, only.as_ref(), opts);
        let customers = input.customers as usize;
        // One source holds each customer's rows together: all in one block but for the
        // customers cut by a block's edge, so only those need a mask.
        let dense = input.sources.len() > 1;
        if dense && customers.saturating_mul(WORDS * 8).saturating_mul(threads + 1) > opts.memory_max {
            return Ok(None);
        }
        let new = || ByRows {
            partial: HeatmapPartial::default(),
            masks: if dense {
                Masks::Dense(vec![[0u64; WORDS]; customers])
            } else {
                Masks::Edges(HashMap::default())
            },
        };
        let fold =
            |state: &mut ByRows, rows: &Columns, hidden: Option<&RoaringBitmap>, selected: &mut Vec<u32>| {
                match &self.plain {
                    Some(table) => {
                        self.select(table, rows, selected);
                        state.add_selected(self, rows, selected, hidden, customers);
                    }
                    None => state.add_block(self, rows, hidden, customers),
                }
            };
        let footprint = |state: &ByRows| state.masks.footprint() + self.footprint(&state.partial);
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
        match &total.masks {
            Masks::Dense(masks) => masks
                .iter()
                .for_each(|mask| add_cells(&mut total.partial.customers, mask)),
            Masks::Edges(masks) => masks
                .values()
                .for_each(|mask| add_cells(&mut total.partial.customers, mask)),
        }
        Ok(Some(total.partial))
    }

    fn customer(&self, partial: &mut HeatmapPartial, rows: &Columns, run: Range<usize>) {
        let mut touched = [0u64; WORDS];
        self.add_rows(partial, rows, run, &mut touched);
        add_cells(&mut partial.customers, &touched);
    }

    fn footprint(&self, _: &HeatmapPartial) -> usize {
        2 * CELLS * 8 + OFFSET_SLOTS * 16
    }

    fn merge(&self, into: &mut HeatmapPartial, from: HeatmapPartial) {
        for (a, b) in into.events.iter_mut().zip(from.events.iter()) {
            *a += b;
        }
        for (a, b) in into.customers.iter_mut().zip(from.customers.iter()) {
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

/// One worker's pass by rows: the counts, and customers' cells (bit k: cell k) not yet counted.
struct ByRows {
    partial: HeatmapPartial,
    masks: Masks,
}

/// The cells of customers whose rows may lie in several blocks, OR'd over their runs.
enum Masks {
    /// Several sources: every customer's, by customer id.
    Dense(Vec<[u64; WORDS]>),
    /// One source, sorted by customer: only the customers whose run starts or ends a block (a
    /// run inside a block is the customer's whole journey, counted at once).
    Edges(HashMap<u32, [u64; WORDS]>),
}

impl Masks {
    fn footprint(&self) -> usize {
        match self {
            Masks::Dense(masks) => masks.capacity() * WORDS * 8,
            Masks::Edges(masks) => masks.capacity() * (WORDS + 1) * 8,
        }
    }
}

impl ByRows {
    /// Adds the rows `selected` of `rows` (those that count, ascending) of the customers not
    /// `hidden`: rows are grouped by customer, so a customer's cells are gathered over its run
    /// and OR'd into its mask once, and the hidden test runs once per customer.
    fn add_selected(
        &mut self,
        op: &HeatmapOp<'_>,
        rows: &Columns,
        selected: &[u32],
        hidden: Option<&RoaringBitmap>,
        customers: usize,
    ) {
        let edges = (rows.cid.first().copied(), rows.cid.last().copied());
        // With one source, a customer's cells are counted as the run finds them (taken back
        // for a run at a block's edge, whose cells go to its mask).
        let direct = matches!(self.masks, Masks::Edges(_));
        let (mut seen, mut skip, mut cells) = (u32::MAX, true, [0u64; WORDS]);
        for &index in selected {
            let (cid, ts) = (rows.cid[index as usize], rows.ts[index as usize]);
            if cid != seen {
                self.add_mask(seen, &cells, edges, direct);
                (seen, cells) = (cid, [0; WORDS]);
                skip = hidden.is_some_and(|h| h.contains(cid)) || cid as usize >= customers;
            }
            if skip {
                continue;
            }
            let cell = op.cell(ts, &mut self.partial.offsets);
            let (word, bit) = (cell / 64, 1 << (cell % 64));
            self.partial.events[cell] += 1;
            self.partial.customers[cell] += u64::from(direct & (cells[word] & bit == 0));
            cells[word] |= bit;
        }
        self.add_mask(seen, &cells, edges, direct);
    }

    /// Adds every counted row of `rows` of the customers not `hidden`, testing each row.
    fn add_block(
        &mut self,
        op: &HeatmapOp<'_>,
        rows: &Columns,
        hidden: Option<&RoaringBitmap>,
        customers: usize,
    ) {
        let edges = (rows.cid.first().copied(), rows.cid.last().copied());
        let mut start = 0;
        while start < rows.len() {
            let cid = rows.cid[start];
            let end = start
                + rows.cid[start..]
                    .iter()
                    .take_while(|&&other| other == cid)
                    .count();
            if !(hidden.is_some_and(|h| h.contains(cid)) || cid as usize >= customers) {
                let mut cells = [0u64; WORDS];
                op.add_rows(&mut self.partial, rows, start..end, &mut cells);
                self.add_mask(cid, &cells, edges, false);
            }
            start = end;
        }
    }

    /// Adds customer `cid`'s `cells` from one run of a block whose first and last rows are of
    /// customers `edges` (nothing for no cells: a skipped customer's run): OR'd into its mask,
    /// or counted when the run is the customer's whole journey. `counted`: the run's cells are
    /// in the customers column already.
    #[inline]
    fn add_mask(&mut self, cid: u32, cells: &[u64; WORDS], edges: (Option<u32>, Option<u32>), counted: bool) {
        if cells.iter().all(|&bits| bits == 0) {
            return;
        }
        let mask = match &mut self.masks {
            Masks::Dense(masks) => masks.get_mut(cid as usize),
            Masks::Edges(masks) if edges.0 == Some(cid) || edges.1 == Some(cid) => {
                if counted {
                    take_cells(&mut self.partial.customers, cells);
                }
                Some(masks.entry(cid).or_default())
            }
            Masks::Edges(_) if counted => return,
            Masks::Edges(_) => return add_cells(&mut self.partial.customers, cells),
        };
        if let Some(mask) = mask {
            for (into, bits) in mask.iter_mut().zip(cells) {
                *into |= bits;
            }
        }
    }

    fn merge(&mut self, from: ByRows) {
        for (a, b) in self.partial.events.iter_mut().zip(from.partial.events.iter()) {
            *a += b;
        }
        for (a, b) in self
            .partial
            .customers
            .iter_mut()
            .zip(from.partial.customers.iter())
        {
            *a += b;
        }
        match (&mut self.masks, from.masks) {
            (Masks::Dense(into), Masks::Dense(from)) => {
                for (into, other) in into.iter_mut().zip(from) {
                    for (a, b) in into.iter_mut().zip(other) {
                        *a |= b;
                    }
                }
            }
            (Masks::Edges(into), Masks::Edges(from)) => {
                for (cid, other) in from {
                    for (a, b) in into.entry(cid).or_default().iter_mut().zip(other) {
                        *a |= b;
                    }
                }
            }
            // Every worker's state is made by the same `new`.
            _ => {}
        }
    }
}

/// Counts a customer once in each cell of `mask`.
fn add_cells(customers: &mut [u64; CELLS], mask: &[u64; WORDS]) {
    for_each_cell(mask, |cell| customers[cell] += 1);
}

/// Takes back a customer counted once in each cell of `mask`.
fn take_cells(customers: &mut [u64; CELLS], mask: &[u64; WORDS]) {
    for_each_cell(mask, |cell| customers[cell] -= 1);
}

/// Calls `visit` with each cell set in `mask`.
fn for_each_cell(mask: &[u64; WORDS], mut visit: impl FnMut(usize)) {
    for (word, bits) in mask.iter().enumerate() {
        let mut bits = *bits;
        while bits != 0 {
            visit(word * 64 + bits.trailing_zeros() as usize);
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
