//! The parallel customer-range scan: split the customer ids into ranges of about equal rows, scan
//! each range on a worker (eagerly, or lazily for operators that can stop early), and merge the
//! workers' partial states.
//!
//! Uses: `dict`, `limits`, `merge`, `model`, `plan`, `segment`; rooms `linked`, `operator`, `options`.

use crate::dict::Dicts;
use crate::exec::linked;
use crate::exec::operator::{Budget, LazyOperator, Operator, Prefilter, rows_footprint};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::limits;
use crate::merge::{Merge, Runs, Source};
use crate::model::Columns;
use crate::plan::CPred;
use crate::segment::{ColumnSet, RowsVisitor};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The protocol without its last step: prefilter, scan, merge — the merged state, for a caller
/// that wants the state itself (a customer set) rather than a table.
pub(super) fn gather<O: Operator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<O::Partial, QueryError> {
    gather_with(op, input, opts, scan_customers::<O>)
}

pub(super) fn gather_with<O: Operator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
    scan: Scan<O>,
) -> Result<O::Partial, QueryError> {
    let Some(links) = input.links else {
        return gather_plain(op, input, opts, scan);
    };
    // Everyone outside the links as without them, then each linked customer's merged journey
    // (`linked`).
    let outside = linked::outside(input, links);
    let plain = Input {
        sources: outside.sources,
        bitmaps: &outside.bitmaps,
        restriction: Some(outside.restriction),
        links: None,
        ..*input
    };
    let mut state = gather_plain(op, &plain, opts, scan)?;
    op.merge(&mut state, linked::groups(op, input, links, opts)?);
    Ok(state)
}

/// [`gather_with`] of an input without links.
fn gather_plain<O: Operator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
    scan: Scan<O>,
) -> Result<O::Partial, QueryError> {
    if let Some(state) = op.by_rows(input, opts)? {
        return Ok(state);
    }
    scanned(op, input, opts, scan)
}

/// [`gather_plain`] without the order-free shortcut: prefilter, scan, merge.
pub(super) fn scanned<O: Operator>(
    op: &O,
    input: &Input<'_>,
    opts: &QueryOptions,
    scan: Scan<O>,
) -> Result<O::Partial, QueryError> {
    Ok(match op.prefilter(input)? {
        Prefilter::Answered(state) => state,
        Prefilter::Scan {
            only,
            unsealed_only,
            counted,
        } => {
            // A restricted input is planned on masked sources but scanned on its own, for the
            // admitted customers only (see `Input::restriction`).
            let plain;
            let (input, only) = match &input.restriction {
                Some(restriction) => {
                    let admitted = &*restriction.admitted;
                    let only = match only {
                        Some(only) => only & admitted,
                        None => admitted.clone(),
                    };
                    plain = Input {
                        sources: restriction.sources.clone(),
                        restriction: None,
                        ..*input
                    };
                    (&plain, Some(only))
                }
                None => (input, only),
            };
            let unsealed;
            let input = if unsealed_only {
                let sources: Vec<Source> = input
                    .sources
                    .iter()
                    .filter(|s| matches!(s, Source::Memory(_)))
                    .cloned()
                    .collect();
                if sources.is_empty() {
                    return Ok(counted);
                }
                unsealed = Input {
                    sources,
                    restriction: None,
                    ..*input
                };
                &unsealed
            } else {
                input
            };
            let mut state = run_scans(op, input, op.columns(), opts, only, scan)?;
            op.merge(&mut state, counted);
            state
        }
    })
}

/// The signature of [`scan_customers`] and [`scan_maybe_lazy`]: one worker's scan of a
/// customer range (`evaluate` runs one per worker).
pub(super) type Scan<O> = fn(
    &O,
    Vec<Source>,
    ColumnSet,
    (u32, u32),
    Option<Arc<roaring::RoaringBitmap>>,
    &AtomicBool,
    &Budget,
) -> Result<<O as Operator>::Partial, QueryError>;

/// Runs `op` over every customer (only those in `only`, when given) on all worker threads,
/// each worker's range scanned by `scan`, and merges the workers' states.
pub(super) fn run_scans<O: Operator>(
    op: &O,
    input: &Input<'_>,
    set: ColumnSet,
    opts: &QueryOptions,
    only: Option<roaring::RoaringBitmap>,
    scan: Scan<O>,
) -> Result<O::Partial, QueryError> {
    // The customers that can matter: blocks outside `first..=last` are never decoded, and no
    // more workers run than there are customers to scan.
    let (first, last, wanted) = match &only {
        Some(set) => match (set.min(), set.max()) {
            (Some(first), Some(last)) => (first, last, set.len()),
            _ => return Ok(O::Partial::default()),
        },
        None => (0, u32::MAX, u64::from(input.customers)),
    };
    let only = only.map(Arc::new);
    let threads = match opts.threads {
        _ if wanted <= 1 => 1,
        0 => available_threads(),
        n => n,
    };
    let threads = threads.clamp(1, 64).min(wanted.max(1) as usize);
    let budget = Budget::new(opts.memory_max);
    // One worker scans every id: no need to weigh the blocks.
    let all = vec![(0, u32::MAX)];
    let ranges: Vec<(u32, u32)> = if threads == 1 {
        all
    } else {
        splits(&input.sources, input.customers, threads)
    }
    .into_iter()
    .filter(|&(lo, hi)| lo <= last && hi >= first)
    .map(|(lo, hi)| (lo.max(first), hi.min(last)))
    .collect();
    let results: Vec<Result<O::Partial, QueryError>> = if let [range] = ranges[..] {
        // One worker: on this thread (a one-customer statement pays no thread start).
        let work = || {
            scan(
                op,
                input.sources.clone(),
                set,
                range,
                only.clone(),
                &opts.cancel,
                &budget,
            )
        };
        vec![
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|payload| Err(worker_panic(payload.as_ref()))),
        ]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|(lo, hi)| {
                    let sources = input.sources.clone();
                    let cancel = opts.cancel.clone();
                    let only = only.clone();
                    let budget = &budget;
                    s.spawn(move || scan(op, sources, set, (lo, hi), only, &cancel, budget))
                })
                .collect();
            joined(handles)
        })
    };
    let mut total = O::Partial::default();
    for r in results {
        op.merge(&mut total, r?);
    }
    // Merging copies at most what the workers held, which the budget already counted.
    if op.footprint(&total) > opts.memory_max {
        return Err(QueryError::MemoryExceeded(opts.memory_max));
    }
    Ok(total)
}

/// The machine's parallelism, asked once per process: asking reads the cgroup and affinity
/// settings (microseconds, as long as a whole one-customer query).
pub(super) fn available_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Customer ranges for `threads` workers (see [`split_rows`]), from the sources' zone maps.
pub(super) fn splits(sources: &[Source], customers: u32, threads: usize) -> Vec<(u32, u32)> {
    let marks = sources
        .iter()
        .filter_map(|src| match src {
            Source::Segment(seg) | Source::Masked(seg, _) => Some(&seg.footer.blocks),
            Source::Memory(_) => None,
        })
        .flatten()
        .map(|b| (b.cid_min, u64::from(b.rows)))
        .collect();
    split_rows(marks, customers, threads)
}

/// Up to `parts` customer ranges covering every id, with about equal rows each: `marks` gives
/// the first customer and the rows of each block, and ranges start at blocks' first customers.
/// Customers differ in activity (ids are given in order of first appearance, so early ones
/// tend to have longer histories), so splitting the ids evenly can leave the workers with
/// unequal work. Without marks (no sealed rows) the ids are split evenly.
pub(super) fn split_rows(mut marks: Vec<(u32, u64)>, customers: u32, parts: usize) -> Vec<(u32, u32)> {
    let parts = parts.max(1) as u64;
    let mut starts = vec![0u32];
    if marks.is_empty() {
        let per = u64::from(customers).div_ceil(parts).max(1);
        starts.extend((1..parts).map(|t| (t * per).min(u64::from(u32::MAX)) as u32));
    } else {
        marks.sort_unstable();
        let total: u64 = marks.iter().map(|m| m.1).sum();
        let mut before = 0u64;
        let mut t = 1u64;
        let mut previous = None;
        for &(cid, rows) in &marks {
            // The first block at a customer id starts a new range once the rows before it
            // reach the next share (a range starts at an id: all the blocks starting there go
            // to it, so a later block at the same id must not be the one to test).
            while previous != Some(cid) && t < parts && before >= total * t / parts {
                starts.push(cid);
                t += 1;
            }
            previous = Some(cid);
            before += rows;
        }
    }
    starts.dedup();
    let mut out: Vec<(u32, u32)> = starts.windows(2).map(|w| (w[0], w[1] - 1)).collect();
    out.push((starts.last().copied().unwrap_or(0), u32::MAX));
    out
}

/// The workers' results, in order; a worker that panicked gives an internal error.
pub(super) fn joined<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T, QueryError>>>,
) -> Vec<Result<T, QueryError>> {
    handles
        .into_iter()
        .map(|handle| {
            handle
                .join()
                .unwrap_or_else(|payload| Err(worker_panic(payload.as_ref())))
        })
        .collect()
}

/// The error for a worker that panicked: its panic message, when it has one.
pub(super) fn worker_panic(payload: &(dyn std::any::Any + Send)) -> QueryError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned());
    QueryError::Internal(msg)
}

pub(super) fn scan_customers<O: Operator>(
    op: &O,
    sources: Vec<Source>,
    set: ColumnSet,
    (lo, hi): (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
    if sources.len() > 1 {
        return scan_runs(op, sources, set, (lo, hi), only, cancel, budget);
    }
    let mut p = O::Partial::default();
    let mut reported = 0usize;
    let wanted = |c: u32| only.as_ref().is_none_or(|o| o.contains(c));
    let mut merge = Merge::new(sources, set)
        .whole_blocks()
        .with_runs()
        .with_customers(lo, hi)
        .with_filter(only.clone());
    let mut block = Columns::default();
    let mut carry = Columns::default();
    let mut ends = Vec::new();
    while merge.next_block_runs(&mut block, limits::BLOCK_ROWS, &mut ends)? {
        if cancel.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        budget.report(&mut reported, op.footprint(&p) + rows_footprint(&carry))?;
        let n = block.len();
        let mut i = 0;
        for &end in &ends {
            let (cid, j) = (block.cid[i], end as usize);
            if carry.cid.first().is_some_and(|&c| c != cid) {
                op.customer(&mut p, &carry, 0..carry.len());
                carry = Columns::default();
            }
            if !wanted(cid) {
                i = j;
                continue;
            }
            if j == n || !carry.is_empty() {
                if carry.is_empty() && i == 0 {
                    // The whole block is this customer's (a one-customer read): moved, not copied.
                    carry = std::mem::take(&mut block);
                } else {
                    carry.extend_from(&block.slice(i..j));
                }
                // One customer's rows can span many blocks: they count against the budget.
                budget.report(&mut reported, op.footprint(&p) + rows_footprint(&carry))?;
                if j < n {
                    op.customer(&mut p, &carry, 0..carry.len());
                    carry = Columns::default();
                }
            } else {
                op.customer(&mut p, &block, i..j);
            }
            budget.report(&mut reported, op.footprint(&p) + rows_footprint(&carry))?;
            i = j;
        }
    }
    if !carry.is_empty() {
        op.customer(&mut p, &carry, 0..carry.len());
    }
    budget.report(&mut reported, op.footprint(&p))?;
    Ok(p)
}

/// [`scan_customers`], lazily when the operator can be and the data is one segment.
pub(super) fn scan_maybe_lazy<O: LazyOperator>(
    op: &O,
    sources: Vec<Source>,
    set: ColumnSet,
    range: (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
    match &sources[..] {
        [Source::Segment(seg)] if op.lazy() => scan_lazy(op, seg, range, only, cancel, budget),
        // One segment with customers masked (a cohort filter, a pending erasure): the lazy
        // scan over the customers left.
        [Source::Masked(seg, hidden)] if op.lazy() => {
            let mut left = match only {
                Some(only) => (*only).clone(),
                None => {
                    let mut all = roaring::RoaringBitmap::new();
                    all.insert_range(range.0..=range.1);
                    all
                }
            };
            left -= &**hidden;
            scan_lazy(op, seg, range, Some(Arc::new(left)), cancel, budget)
        }
        _ if sources.len() > 1 && op.lazy() => scan_runs_lazy(op, sources, set, range, only, cancel, budget),
        _ => scan_customers(op, sources, set, range, only, cancel, budget),
    }
}

/// [`scan_customers`] over several sources, a customer at a time ([`Runs`]): a customer whose
/// rows lie in one source is handed to the operator where they were decoded; one whose rows
/// lie in several is copied together (in merge order) first.
fn scan_runs<O: Operator>(
    op: &O,
    sources: Vec<Source>,
    set: ColumnSet,
    range: (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
    let mut partial = O::Partial::default();
    let mut reported = 0usize;
    let wanted = |c: u32| only.as_ref().is_none_or(|o| o.contains(c));
    let mut runs = Runs::new(sources, set, range, only.clone());
    let mut carry = Columns::default();
    let mut customers = 0u32;
    while let Some(cid) = runs.next_customer()? {
        customers = customers.wrapping_add(1);
        if customers.is_multiple_of(CANCEL_EVERY) && cancel.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        if !wanted(cid) {
            continue;
        }
        let spilled: usize = runs.spills().map(rows_footprint).sum();
        budget.report(&mut reported, op.footprint(&partial) + spilled)?;
        match runs.single() {
            Some((rows, range)) => op.customer(&mut partial, rows, range),
            None if O::READS_PARTS && runs.in_order() => op.customer_in_parts(&mut partial, runs.parts()),
            None => {
                runs.gather(&mut carry);
                budget.report(
                    &mut reported,
                    op.footprint(&partial) + spilled + rows_footprint(&carry),
                )?;
                op.customer(&mut partial, &carry, 0..carry.len());
            }
        }
    }
    budget.report(&mut reported, op.footprint(&partial))?;
    Ok(partial)
}

/// [`scan_runs`] for an operator that reads lazily: a customer's parts in merge order are fed
/// one after the other where they were decoded (no copy), and no further once its answer is
/// final; parts out of order are copied together in merge order first.
fn scan_runs_lazy<O: LazyOperator>(
    op: &O,
    sources: Vec<Source>,
    set: ColumnSet,
    range: (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
    let mut partial = O::Partial::default();
    let mut reported = 0usize;
    let wanted = |c: u32| only.as_ref().is_none_or(|o| o.contains(c));
    // A lazy operator reads event ids and timestamps.
    let set = ColumnSet { event: true, ..set };
    let mut runs = Runs::new(sources, set, range, only.clone());
    let mut carry = Columns::default();
    let mut state = O::State::default();
    let mut customers = 0u32;
    while let Some(cid) = runs.next_customer()? {
        customers = customers.wrapping_add(1);
        if customers.is_multiple_of(CANCEL_EVERY) && cancel.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        if !wanted(cid) {
            continue;
        }
        let spilled: usize = runs.spills().map(rows_footprint).sum();
        budget.report(&mut reported, op.footprint(&partial) + spilled)?;
        op.restart(&mut state, cid);
        if runs.in_order() {
            for (rows, range) in runs.parts() {
                let events = rows.event[range.clone()].iter().copied();
                if op.feed(&mut state, events, rows.ts[range].iter().copied()) {
                    break;
                }
            }
        } else {
            runs.gather(&mut carry);
            // Parts out of order are copied together: the copy counts against the budget.
            budget.report(
                &mut reported,
                op.footprint(&partial) + spilled + rows_footprint(&carry),
            )?;
            op.feed(&mut state, carry.event.iter().copied(), carry.ts.iter().copied());
        }
        op.end(&mut partial, &mut state);
    }
    budget.report(&mut reported, op.footprint(&partial))?;
    Ok(partial)
}

/// How many customers a scan of several sources reads between looks at the cancel flag.
const CANCEL_EVERY: u32 = 1024;

/// [`scan_customers`] over one segment for an operator that reads lazily: customers come from
/// the run-length code (ids not expanded per row), their timestamps are decoded only as far as
/// the operator reads them, and a customer whose rows go on in the next block keeps its state
/// across blocks — once its answer is final, its later rows are not read at all.
pub(super) fn scan_lazy<O: LazyOperator>(
    op: &O,
    seg: &crate::segment::Segment,
    (lo, hi): (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
    let mut p = O::Partial::default();
    let mut reported = 0usize;
    let mut wanted = only.as_deref().map(|o| Members::new(o, lo, hi));
    let mut wanted = |c: u32| wanted.as_mut().is_none_or(|m| m.contains(c));
    let mut bufs = crate::segment::LazyBufs::default();
    // The customer fed so far (its rows may go on in the next block), and whether its answer
    // is final.
    let mut open: Option<(u32, bool)> = None;
    let mut state = O::State::default();
    let blocks = &seg.footer.blocks;
    for (i, meta) in blocks.iter().enumerate() {
        if meta.cid_max < lo || meta.cid_min > hi {
            continue;
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        budget.report(&mut reported, op.footprint(&p))?;
        if let Some((cid, true)) = open
            && meta.cid_min == cid
            && meta.cid_max == cid
        {
            // A block wholly of a customer whose answer is final: not even decoded.
            continue;
        }
        let block = seg.read_block_runs_lazy(i, &mut bufs)?;
        let n = block.rows;
        // Whether the block's last customer goes on in the next block.
        let spills = blocks.get(i + 1).is_some_and(|next| next.cid_min == meta.cid_max);
        let mut a = 0usize;
        for (&cid, &end) in block.cids.iter().zip(block.ends) {
            let (start, end) = (a, end as usize);
            a = end;
            if let Some((prev, _)) = open
                && prev != cid
            {
                op.end(&mut p, &mut state);
                open = None;
            }
            if cid < lo || cid > hi || !wanted(cid) {
                continue;
            }
            let done = match open {
                Some((_, done)) => done,
                None => {
                    op.restart(&mut state, cid);
                    false
                }
            };
            let done = done
                || block.visit_rows(
                    start,
                    end,
                    Feed {
                        op,
                        state: &mut state,
                    },
                );
            if end == n && spills {
                open = Some((cid, done));
            } else {
                op.end(&mut p, &mut state);
                open = None;
            }
        }
    }
    if open.is_some() {
        op.end(&mut p, &mut state);
    }
    budget.report(&mut reported, op.footprint(&p))?;
    Ok(p)
}

/// Feeds one customer's rows of a lazy block to a lazy operator.
struct Feed<'o, O: LazyOperator> {
    op: &'o O,
    state: &'o mut O::State,
}

impl<O: LazyOperator> RowsVisitor for Feed<'_, O> {
    /// True once later rows cannot change the customer's answer.
    type Output = bool;

    #[inline(always)]
    fn visit(self, events: impl Iterator<Item = u32>, ts: impl Iterator<Item = i64>) -> bool {
        self.op.feed(self.state, events, ts)
    }
}

/// Membership in a bitmap for ids asked in ascending order (repeats allowed): a cursor over the
/// members instead of a lookup per id. A scan asks once per customer it meets, and a roaring
/// `contains` (a binary search over the containers, then one within) took ~8 % of a funnel's
/// time; the cursor steps once per member of the scanned range.
pub(super) struct Members<'a> {
    it: roaring::bitmap::Iter<'a>,
    next: Option<u32>,
}

impl<'a> Members<'a> {
    /// The members of `set` in `lo..=hi`.
    fn new(set: &'a roaring::RoaringBitmap, lo: u32, hi: u32) -> Members<'a> {
        let mut it = if lo <= hi {
            set.range(lo..=hi)
        } else {
            set.range(lo..lo)
        };
        let next = it.next();
        Members { it, next }
    }

    /// Whether `id` is a member; `id` MUST be ≥ every id asked before (else the answer may be
    /// false for a member).
    #[inline]
    fn contains(&mut self, id: u32) -> bool {
        while let Some(m) = self.next
            && m < id
        {
            self.next = self.it.next();
        }
        self.next == Some(id)
    }
}

/// The columns a query must decode: properties only when a predicate, breakdown or value uses them.
pub(super) fn columns(props: bool) -> ColumnSet {
    ColumnSet {
        ts: true,
        event: true,
        stage: true,
        props,
        prop_mask: u64::MAX,
    }
}

/// Only the property columns `ids` (the query reads no other; ids ≥ 64 are always decoded).
pub(super) fn columns_of(ids: &[u32]) -> ColumnSet {
    let mask = ids
        .iter()
        .filter(|&&id| id < 64)
        .fold(0u64, |m, &id| m | (1u64 << id));
    ColumnSet {
        prop_mask: mask,
        ..columns(!ids.is_empty())
    }
}

pub(super) fn passes(filter: &Option<CPred>, rows: &Columns, index: usize, dicts: &Dicts) -> bool {
    filter
        .as_ref()
        .is_none_or(|f| f.eval(rows, index, dicts) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Table;
    use std::ops::Range;

    proptest::proptest! {
        /// Scan ranges cover every customer id once, in order, and give each worker about its
        /// share of the rows (at most the blocks starting at one customer id over).
        #[test]
        fn members_answer_ascending_questions_as_contains(
            members in proptest::collection::btree_set(0u32..2_000, 0..300),
            asked in proptest::collection::vec(0u32..2_100, 0..400),
            (lo, hi) in (0u32..2_100, 0u32..2_100),
        ) {
            let set: roaring::RoaringBitmap = members.iter().copied().collect();
            let mut asked = asked;
            // Ascending, with repeats (a customer asked again in the next block).
            asked.sort_unstable();
            let mut m = Members::new(&set, lo, hi);
            for &id in &asked {
                let want = (lo..=hi).contains(&id) && members.contains(&id);
                proptest::prop_assert_eq!(m.contains(id), want, "id {}", id);
            }
        }

        #[test]
        fn split_rows_covers_every_id_with_balanced_rows(
            blocks in proptest::collection::vec((0u32..5_000, 1u64..70_000), 0..60),
            customers in 0u32..10_000,
            parts in 1usize..9,
        ) {
            let ranges = split_rows(blocks.clone(), customers, parts);
            proptest::prop_assert!(!ranges.is_empty() && ranges.len() <= parts);
            proptest::prop_assert_eq!(ranges[0].0, 0);
            proptest::prop_assert_eq!(ranges[ranges.len() - 1].1, u32::MAX);
            for w in ranges.windows(2) {
                proptest::prop_assert!(w[0].0 <= w[0].1 && w[0].1 + 1 == w[1].0, "{:?}", ranges);
            }
            let total: u64 = blocks.iter().map(|b| b.1).sum();
            // Ranges are cut between customer ids: blocks (of several segments) starting at
            // one id cannot be parted, so one range may hold its share plus all of them.
            let mut per_start = std::collections::BTreeMap::<u32, u64>::new();
            for b in &blocks {
                *per_start.entry(b.0).or_default() += b.1;
            }
            let biggest = per_start.values().copied().max().unwrap_or(0);
            for &(lo, hi) in &ranges {
                let rows: u64 = blocks.iter().filter(|b| (lo..=hi).contains(&b.0)).map(|b| b.1).sum();
                proptest::prop_assert!(
                    rows <= total / parts as u64 + biggest,
                    "range {}..={} holds {} of {} rows in {} parts", lo, hi, rows, total, parts
                );
            }
            if blocks.is_empty() && u64::from(customers) >= parts as u64 {
                proptest::prop_assert_eq!(ranges.len(), parts);
            }
        }
    }

    /// Counts rows, and panics on the customer `bad`.
    struct PanicsOn {
        bad: u32,
    }

    impl Operator for PanicsOn {
        type Partial = u64;

        fn columns(&self) -> ColumnSet {
            columns(false)
        }

        fn finish(&self, rows: u64, _: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
            let mut t = Table::new(&["rows"]);
            t.rows.push(vec![crate::result::Cell::Int(rows as i64)]);
            Ok(t)
        }

        fn customer(&self, partial: &mut u64, rows: &Columns, run: Range<usize>) {
            assert!(rows.cid[run.start] != self.bad, "customer {} is poison", self.bad);
            *partial += run.len() as u64;
        }

        fn merge(&self, into: &mut u64, from: u64) {
            *into += from;
        }

        fn footprint(&self, _: &u64) -> usize {
            0
        }
    }

    #[test]
    fn a_worker_panic_is_an_internal_error_not_a_cancellation() {
        let rows = Columns {
            cid: (0..40).map(|i| i / 4).collect(),
            ts: (0..40).collect(),
            event: vec![0; 40],
            stage: vec![0; 40],
            props: Vec::new(),
        };
        let dicts = Dicts::default();
        let bitmaps = crate::index::Bitmaps::default();
        let input = Input {
            sources: vec![Source::Memory(Arc::new(rows))],
            dicts: &dicts,
            customers: 10,
            ts_range: Some((0, 39)),
            bitmaps: &bitmaps,
            restriction: None,
            snapshot: None,
            links: None,
            side_by_side: None,
            shared: None,
        };
        // One worker runs on the calling thread, two on their own.
        for threads in [1, 2] {
            let opts = QueryOptions {
                threads,
                ..QueryOptions::default()
            };
            // Without the poison customer every row is counted, across the workers.
            let fine = gather(&PanicsOn { bad: 99 }, &input, &opts);
            assert_eq!(fine.ok(), Some(40));
            match gather(&PanicsOn { bad: 7 }, &input, &opts) {
                Err(QueryError::Internal(msg)) => assert!(msg.contains("customer 7 is poison"), "{msg}"),
                Err(e) => panic!("expected an internal error, got {e}"),
                Ok(rows) => panic!("expected an internal error, got {rows} rows"),
            }
        }
        let e = QueryError::Internal("x".into()).to_string();
        assert!(e.contains("internal error") && e.contains("please report"), "{e}");
    }
}
