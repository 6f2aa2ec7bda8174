//! Per-customer measures read row by row, source by source: the number of a customer's counted
//! events, the first and last of their times, the values of a numeric property. None of these
//! depends on the order a customer's rows are read in (values are sorted per customer at the
//! end), so every block of every source is read on its own
//! — no customer's rows are merged across segments, and only the columns the measures and the
//! tests of a row need are decoded. TOP CUSTOMERS and RFM answer from it: it gives exactly what
//! their per-customer step computes from a customer's merged rows.
//!
//! Uses: `dict`, `merge`, `model`, `plan`, `segment`; rooms `operator`, `options`, `prefilter`, `scan`.

use super::operator::Budget;
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{available_threads, joined, worker_panic};
use crate::dict::Dicts;
use crate::merge::Source;
use crate::model::{Columns, PropType};
use crate::plan::{CPred, Matcher, slot};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which rows count: those of the step (every row without one) that pass the filter and lie
/// in the range — the test TOP CUSTOMERS and RFM apply to each row of a customer.
pub(super) struct Counted<'a> {
    pub step: Option<&'a Matcher>,
    /// The step by event id, when it tests names only.
    pub step_events: Option<&'a [bool]>,
    pub filter: Option<&'a CPred>,
    pub range: Option<(i64, i64)>,
    pub dicts: &'a Dicts,
}

impl Counted<'_> {
    /// Whether row `index` of `rows` counts.
    #[inline]
    pub fn counts(&self, rows: &Columns, index: usize) -> bool {
        if let Some((lo, hi)) = self.range {
            let ts = rows.ts[index];
            if ts < lo || ts >= hi {
                return false;
            }
        }
        let step = match (self.step_events, self.step) {
            (Some(table), _) => table.get(rows.event[index] as usize).copied().unwrap_or(false),
            (None, Some(step)) => step.matches(rows, index, self.dicts),
            (None, None) => true,
        };
        step && self
            .filter
            .is_none_or(|f| f.eval(rows, index, self.dicts) == Some(true))
    }
}

/// What to measure besides the count of counted events.
#[derive(Clone, Default)]
pub(super) struct Wanted {
    /// The first counted time.
    pub first: bool,
    /// The last counted time.
    pub last: bool,
    /// The values of this numeric property (rows without it add none).
    pub value: Option<(u32, PropType)>,
}

/// The columns a pass decodes: times for the range and the time measures, event ids and
/// stages for the step, properties for the filters and the value.
pub(super) fn column_set(counted: &Counted<'_>, wanted: &Wanted) -> ColumnSet {
    let step_props = counted.step.is_some_and(Matcher::uses_props);
    let (props, prop_mask) = match wanted.value {
        _ if counted.filter.is_some() || step_props => (true, u64::MAX),
        Some((id, _)) if id < 64 => (true, 1u64 << id),
        Some(_) => (true, 0),
        None => (false, 0),
    };
    ColumnSet {
        ts: counted.range.is_some() || wanted.first || wanted.last,
        event: counted.step_events.is_some() || counted.step.is_some_and(|s| s.events.is_some()),
        stage: counted.step.is_some_and(|s| s.stage.is_some()),
        props,
        prop_mask,
    }
}

/// The measures of every customer with a counted event, customer ids ascending.
#[derive(Default)]
pub(super) struct PerCustomer {
    pub cids: Vec<u32>,
    pub counts: Vec<u64>,
    /// First and last counted times (each empty unless wanted).
    pub first: Vec<i64>,
    pub last: Vec<i64>,
    /// Customer k's values, ascending: `values[value_ends[k - 1]..value_ends[k]]` (empty
    /// unless wanted).
    pub value_ends: Vec<usize>,
    pub values: Vec<f64>,
}

impl PerCustomer {
    /// The values of the customer at `position` (in `cids`), ascending.
    pub fn values_of(&self, position: usize) -> &[f64] {
        let start = if position == 0 {
            0
        } else {
            self.value_ends[position - 1]
        };
        &self.values[start..self.value_ends[position]]
    }
}

/// One worker's state: dense by customer id, plus (customer, value) pairs.
#[derive(Default)]
struct Partial {
    counts: Vec<u64>,
    first: Vec<i64>,
    last: Vec<i64>,
    values: Chunks<(u32, f64)>,
}

/// A growing list in chunks of fixed size: no copy and no doubling as it grows (a list of
/// millions of pairs grown by doubling spent more in copies and fresh pages than in reading).
struct Chunks<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { chunks: Vec::new() }
    }
}

impl<T> Chunks<T> {
    const CHUNK: usize = 1 << 16;

    #[inline]
    fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < Self::CHUNK => last.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    fn capacity(&self) -> usize {
        self.chunks.len() * Self::CHUNK
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    fn extend(&mut self, other: Chunks<T>) {
        self.chunks.extend(other.chunks);
    }
}

impl Partial {
    fn new(customers: usize, wanted: &Wanted) -> Partial {
        let first = if wanted.first { customers } else { 0 };
        let last = if wanted.last { customers } else { 0 };
        Partial {
            counts: vec![0; customers],
            first: vec![i64::MAX; first],
            last: vec![i64::MIN; last],
            ..Partial::default()
        }
    }

    fn footprint(&self) -> usize {
        self.counts.capacity() * 8
            + (self.first.capacity() + self.last.capacity()) * 8
            + self.values.capacity() * 16
    }

    fn merge(&mut self, from: Partial) {
        for (into, add) in self.counts.iter_mut().zip(from.counts) {
            *into += add;
        }
        for (into, other) in self.first.iter_mut().zip(from.first) {
            *into = (*into).min(other);
        }
        for (into, other) in self.last.iter_mut().zip(from.last) {
            *into = (*into).max(other);
        }
        self.values.extend(from.values);
    }
}

/// The measures of the input's counted rows; `Ok(None)` when the dense per-customer state
/// would not fit the query's memory budget (the caller then runs its customer scan, which
/// holds less).
pub(super) fn measure(
    input: &Input<'_>,
    counted: &Counted<'_>,
    wanted: &Wanted,
    opts: &QueryOptions,
) -> Result<Option<PerCustomer>, QueryError> {
    let customers = input.customers;
    let set = column_set(counted, wanted);
    // Only customers with an event of the step (in the range's days) can count: blocks
    // without one are not read.
    let only = counted
        .step
        .and_then(|step| candidates(step, input.bitmaps, counted.range));
    let threads = block_threads(input, only.as_ref(), opts);
    let per_customer = 8 + 8 * (usize::from(wanted.first) + usize::from(wanted.last));
    if (customers as usize)
        .saturating_mul(per_customer)
        .saturating_mul(threads + 1)
        > opts.memory_max
    {
        return Ok(None);
    }
    let results = by_blocks(
        input,
        only.as_ref(),
        set,
        threads,
        opts,
        || Partial::new(customers as usize, wanted),
        |partial, rows, hidden, matched: &mut Vec<u32>| {
            add_rows(partial, rows, hidden, counted, wanted, matched)
        },
        Partial::footprint,
    );
    let mut total: Option<Partial> = None;
    for result in results {
        match result {
            Ok(partial) => match &mut total {
                Some(total) => total.merge(partial),
                None => total = Some(partial),
            },
            // Over the budget: the customer scan holds less (one customer's values at a time).
            Err(QueryError::MemoryExceeded(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(finish(total.unwrap_or_default(), wanted)))
}

/// One piece of work: a segment's block, or a source of rows in memory.
struct Unit {
    source: usize,
    block: Option<usize>,
    rows: u64,
}

/// The blocks (and in-memory sources) to read: blocks without a candidate are skipped.
fn units(sources: &[Source], candidates: Option<&RoaringBitmap>) -> Vec<Unit> {
    let mut units = Vec::new();
    for (source, src) in sources.iter().enumerate() {
        match src {
            Source::Segment(seg) | Source::Masked(seg, _) => {
                for (block, meta) in seg.footer.blocks.iter().enumerate() {
                    if candidates.is_some_and(|c| c.range_cardinality(meta.cid_min..=meta.cid_max) == 0) {
                        continue;
                    }
                    units.push(Unit {
                        source,
                        block: Some(block),
                        rows: u64::from(meta.rows),
                    });
                }
            }
            Source::Memory(rows) => units.push(Unit {
                source,
                block: None,
                rows: rows.len() as u64,
            }),
        }
    }
    units
}

/// The workers of a pass over the blocks holding a customer of `only` ([`by_blocks`]): left to
/// choose, one per quarter million rows at most (a thread costs more than it saves on less);
/// asked for, as many as asked (tests merge workers' states on small data).
pub(super) fn block_threads(input: &Input<'_>, only: Option<&RoaringBitmap>, opts: &QueryOptions) -> usize {
    let rows: u64 = units(&input.sources, only).iter().map(|unit| unit.rows).sum();
    match opts.threads {
        0 => available_threads().min(usize::try_from(rows / (1 << 18)).unwrap_or(usize::MAX).max(1)),
        n => n,
    }
    .clamp(1, 64)
}

/// Reads every block of `input`'s sources that holds a customer of `only` (all, without it) on
/// its own, on `threads` workers — no customer's rows are merged across blocks or segments:
/// each worker folds the blocks it takes in turn into its own state (`fold(state, rows,
/// hidden customers, scratch)`), charging `footprint` to the query's memory budget. The
/// workers' states, for the caller to merge (a worker that panicked gives an internal error).
#[allow(clippy::too_many_arguments)]
pub(super) fn by_blocks<S: Send, Scratch: Default>(
    input: &Input<'_>,
    only: Option<&RoaringBitmap>,
    set: ColumnSet,
    threads: usize,
    opts: &QueryOptions,
    new: impl Fn() -> S + Sync,
    fold: impl Fn(&mut S, &Columns, Option<&RoaringBitmap>, &mut Scratch) + Sync,
    footprint: impl Fn(&S) -> usize + Sync,
) -> Vec<Result<S, QueryError>> {
    let sources = &input.sources[..];
    let units = units(sources, only);
    let budget = Budget::new(opts.memory_max);
    let next = AtomicUsize::new(0);
    let work = || -> Result<S, QueryError> {
        let mut state = new();
        let mut reported = 0;
        let mut block = Columns::default();
        let mut scratch = Scratch::default();
        while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
            if opts.cancel.load(Ordering::Relaxed) {
                return Err(QueryError::Cancelled);
            }
            let (rows, hidden): (&Columns, Option<&RoaringBitmap>) = match (&sources[unit.source], unit.block)
            {
                (Source::Segment(seg), Some(index)) => {
                    seg.read_block_into(index, set, &mut block)?;
                    (&block, None)
                }
                (Source::Masked(seg, hidden), Some(index)) => {
                    seg.read_block_into(index, set, &mut block)?;
                    (&block, Some(&**hidden))
                }
                (Source::Memory(rows), _) => (&**rows, None),
                _ => continue,
            };
            fold(&mut state, rows, hidden, &mut scratch);
            budget.report(&mut reported, footprint(&state))?;
        }
        Ok(state)
    };
    if threads <= 1 {
        vec![
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|payload| Err(worker_panic(payload.as_ref()))),
        ]
    } else {
        std::thread::scope(|scope| joined((0..threads).map(|_| scope.spawn(work)).collect()))
    }
}

/// Adds the counted rows of `rows` (those of customers not `hidden`) to `partial`; `matched`
/// is scratch space.
fn add_rows(
    partial: &mut Partial,
    rows: &Columns,
    hidden: Option<&RoaringBitmap>,
    counted: &Counted<'_>,
    wanted: &Wanted,
    matched: &mut Vec<u32>,
) {
    matched.clear();
    match counted.step_events {
        // The common form (a step of event names, nothing else to test): one look-up a row.
        Some(table) if counted.filter.is_none() && counted.range.is_none() => {
            matched.extend(
                (0u32..)
                    .zip(&rows.event)
                    .filter(|&(_, &event)| table.get(event as usize).copied().unwrap_or(false))
                    .map(|(index, _)| index),
            );
        }
        _ => matched.extend((0..rows.len() as u32).filter(|&index| counted.counts(rows, index as usize))),
    }
    // Rows are grouped by customer: the hidden test runs once per customer.
    let mut seen = u32::MAX;
    let mut skip = false;
    for &index in matched.iter() {
        let index = index as usize;
        let cid = rows.cid[index];
        if cid != seen {
            seen = cid;
            skip = hidden.is_some_and(|h| h.contains(cid)) || cid as usize >= partial.counts.len();
        }
        if !skip {
            add_row(partial, rows, index, cid, wanted);
        }
    }
}

/// Adds counted row `index` of customer `cid`.
#[inline]
fn add_row(partial: &mut Partial, rows: &Columns, index: usize, cid: u32, wanted: &Wanted) {
    let at = cid as usize;
    partial.counts[at] += 1;
    if wanted.first {
        partial.first[at] = partial.first[at].min(rows.ts[index]);
    }
    if wanted.last {
        partial.last[at] = partial.last[at].max(rows.ts[index]);
    }
    if let Some((id, ty)) = wanted.value
        && let Some(raw) = slot(rows, id, index)
    {
        let value = match ty {
            PropType::I64 => raw as i64 as f64,
            _ => f64::from_bits(raw),
        };
        partial.values.push((cid, value));
    }
}

/// The merged state as per-customer measures (values grouped by customer with a counting
/// sort, then sorted within each customer).
fn finish(partial: Partial, wanted: &Wanted) -> PerCustomer {
    let mut out = PerCustomer::default();
    let customers = partial.counts.len();
    for (cid, &count) in partial.counts.iter().enumerate() {
        if count > 0 {
            out.cids.push(cid as u32);
            out.counts.push(count);
            if wanted.first {
                out.first.push(partial.first[cid]);
            }
            if wanted.last {
                out.last.push(partial.last[cid]);
            }
        }
    }
    if wanted.value.is_some() {
        let (ends, mut values) = group(&partial.values, customers, &out.cids);
        let mut start = 0;
        for &end in &ends {
            let mine = &mut values[start..end];
            // Most customers have a value or two, often already in order.
            if !mine.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
                mine.sort_unstable_by(f64::total_cmp);
            }
            start = end;
        }
        out.value_ends = ends;
        out.values = values;
    }
    out
}

/// `pairs` grouped by customer (ids below `customers`; only those in `cids`, ascending, have
/// pairs), each group in the pairs' order: the end of each listed customer's group, and the
/// values.
fn group<T: Copy + Default>(
    pairs: &Chunks<(u32, T)>,
    customers: usize,
    cids: &[u32],
) -> (Vec<usize>, Vec<T>) {
    let mut next = vec![0usize; customers + 1];
    for &(cid, _) in pairs.iter() {
        next[cid as usize + 1] += 1;
    }
    for k in 1..next.len() {
        next[k] += next[k - 1];
    }
    // `next[cid]`: where the customer's next value goes — its start, then its end once filled.
    let mut values = vec![T::default(); pairs.len()];
    for &(cid, value) in pairs.iter() {
        values[next[cid as usize]] = value;
        next[cid as usize] += 1;
    }
    (cids.iter().map(|&cid| next[cid as usize]).collect(), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_group_by_customer_in_their_order() {
        let mut pairs = Chunks::default();
        for pair in [(7, 1.0), (3, 2.0), (7, 3.0), (3, 4.0), (7, 5.0)] {
            pairs.push(pair);
        }
        let (ends, values) = group(&pairs, 8, &[3, 7]);
        assert_eq!(ends, vec![2, 5]);
        assert_eq!(values, vec![2.0, 4.0, 1.0, 3.0, 5.0]);
    }
}
