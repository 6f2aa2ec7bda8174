//! Query execution. Every statement runs as a per-customer operator over the merged, sorted
//! sources of a snapshot: each worker thread scans one range of customer ids (zone maps skip
//! other blocks) into a partial state; partials `merge` exactly and `finish` into a table, so
//! the answer never depends on thread count, segment layout or flush timing.

use std::collections::BTreeMap;

/// Hash maps of per-worker partial states (foldhash: the keys are ids and bucket numbers, not
/// attacker-chosen text, and SipHash showed up at 15 % of a TREND profile).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod lifecycle;

use crate::compaction::{Merge, Source};
use crate::dict::Dicts;
use crate::model::{Columns, PropType, Stage};
use crate::plan::{Buckets, CPred, Matcher, Resolver, slot};
use crate::query::ast::{Agg, Cohorting, FunnelMode, Period, Statement};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};
use crate::segment::column::Nibbles;
use crate::segment::{BlockEvents, BlockTs, ColumnSet};
use crate::{limits, model};

/// Why a query failed after parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The text is not a valid query, or names something unknown (span + message).
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The query was cancelled.
    #[error("query cancelled")]
    Cancelled,
    /// A query worker stopped on a bug (a panic); the message is the panic's. No partial
    /// answer is returned.
    #[error("internal error in a query worker: {0} (a bug in journeydb: please report it)")]
    Internal(String),
    /// The result would exceed the row cap.
    #[error("result exceeds {0} rows (raise the cap or narrow the query)")]
    TooManyRows(usize),
    /// The query's working state grew past its memory budget.
    #[error(
        "query needs more than its memory budget of {} (raise QueryOptions::memory_max, `.memory` in the shell, or narrow the query)",
        human_bytes(*.0)
    )]
    MemoryExceeded(usize),
    /// Reading data failed.
    #[error(transparent)]
    File(#[from] crate::file::FileError),
    /// A statement that changes the database failed.
    #[error(transparent)]
    Storage(#[from] crate::error::Error),
}

/// `1536` → `1.5 KiB`.
fn human_bytes(n: usize) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

/// Per-query options.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Set to true from another thread to cancel.
    pub cancel: Arc<AtomicBool>,
    /// Largest result.
    pub rows_max: usize,
    /// Budget in bytes for the query's working state (per-group aggregates, time-to-convert
    /// samples, percentile values, one customer's rows held across blocks, result rows),
    /// summed over all worker threads. Decoded blocks (at most one per source per worker) are
    /// not counted. Exceeding it stops the query with [`QueryError::MemoryExceeded`].
    pub memory_max: usize,
    /// Worker threads (0 = available parallelism).
    pub threads: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            cancel: Arc::new(AtomicBool::new(false)),
            rows_max: limits::RESULT_ROWS_MAX,
            memory_max: limits::QUERY_MEMORY_DEFAULT,
            threads: 0,
        }
    }
}

/// What a query needs from a snapshot.
pub struct Input<'a> {
    /// Sorted sources in sequence order.
    pub sources: Vec<Source>,
    /// Dictionaries.
    pub dicts: &'a Dicts,
    /// Number of customer ids (upper bound of internal ids).
    pub customers: u32,
    /// Smallest and largest timestamp present (None when empty).
    pub ts_range: Option<(i64, i64)>,
    /// The union of the sources' bitmap indices.
    pub bitmaps: &'a crate::index::Bitmaps,
}

/// Per-customer operator: a partial state per worker, merged exactly.
trait Operator: Sync {
    type Partial: Send + Default;
    fn customer(&self, p: &mut Self::Partial, rows: &Columns, r: Range<usize>);
    fn merge(&self, a: &mut Self::Partial, b: Self::Partial);
    /// Estimated heap bytes held by `p`, in O(1): what the memory budget charges.
    fn footprint(&self, p: &Self::Partial) -> usize;
}

/// An operator that can also read customers lazily (see [`scan_lazy`]): event ids and
/// timestamps only, fed block by block, and no further once the customer's answer is final.
trait LazyOperator: Operator {
    /// One customer's state between blocks.
    type State: Default;
    /// True when this query can be answered lazily.
    fn lazy(&self) -> bool;
    /// Feeds the customer's next rows (`ts` yields at least as many values as `events` has;
    /// each is decoded only when read); true once later rows cannot change its answer.
    fn feed(
        &self,
        s: &mut Self::State,
        events: impl Iterator<Item = u32>,
        ts: impl Iterator<Item = i64>,
    ) -> bool;
    /// Adds the customer fed into `s` to `p`.
    fn end(&self, p: &mut Self::Partial, s: &Self::State);
}

/// The memory budget of one query, shared by its workers. Each worker reports its state's
/// footprint in steps of [`Budget::STEP`] bytes, so the budget is exact to within
/// `STEP × workers`.
struct Budget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl Budget {
    const STEP: usize = 256 << 10;

    fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Moves this worker's share from `*reported` to `now` (when it changed by a step or more),
    /// failing when the total is over the limit.
    fn report(&self, reported: &mut usize, now: usize) -> Result<(), QueryError> {
        if now.abs_diff(*reported) < Self::STEP && now <= self.limit {
            return Ok(());
        }
        let total = if now >= *reported {
            self.used.fetch_add(now - *reported, Ordering::Relaxed) + (now - *reported)
        } else {
            self.used
                .fetch_sub(*reported - now, Ordering::Relaxed)
                .saturating_sub(*reported - now)
        };
        *reported = now;
        if total > self.limit {
            return Err(QueryError::MemoryExceeded(self.limit));
        }
        Ok(())
    }
}

/// Heap bytes of rows held in `c` (the carry of one customer spanning blocks).
fn rows_footprint(c: &Columns) -> usize {
    c.len() * (17 + 9 * c.props.len())
}

fn run<O: Operator>(
    op: &O,
    input: &Input<'_>,
    set: ColumnSet,
    opts: &QueryOptions,
) -> Result<O::Partial, QueryError> {
    run_filtered(op, input, set, opts, None)
}

/// Customers that can have an event matching `m` (a superset: bitmaps ignore property filters),
/// optionally on UTC days overlapping `range`. `None` means "no pruning possible".
fn candidates(
    m: &Matcher,
    b: &crate::index::Bitmaps,
    range: Option<(i64, i64)>,
) -> Option<roaring::RoaringBitmap> {
    let mut set = match (&m.events, m.stage) {
        (Some(ids), _) => {
            let mut u = roaring::RoaringBitmap::new();
            for id in ids {
                if let Some(x) = b.events.get(id) {
                    u |= x;
                }
            }
            u
        }
        (None, Some(stage)) => b.stages.get(stage as usize)?.clone(),
        (None, None) => return None,
    };
    if let Some((lo, hi)) = range {
        let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
        let mut days = roaring::RoaringBitmap::new();
        for (_, x) in b.days.range(d0..=d1) {
            days |= x;
        }
        set &= days;
    }
    Some(set)
}

/// Runs `op` over every customer (only those in `only`, when given) on all worker threads.
fn run_filtered<O: Operator>(
    op: &O,
    input: &Input<'_>,
    set: ColumnSet,
    opts: &QueryOptions,
    only: Option<roaring::RoaringBitmap>,
) -> Result<O::Partial, QueryError> {
    run_scans(op, input, set, opts, only, scan_customers::<O>)
}

/// The signature of [`scan_customers`] and [`scan_maybe_lazy`]: one worker's scan of a
/// customer range.
type Scan<O> = fn(
    &O,
    Vec<Source>,
    ColumnSet,
    (u32, u32),
    Option<Arc<roaring::RoaringBitmap>>,
    &AtomicBool,
    &Budget,
) -> Result<<O as Operator>::Partial, QueryError>;

/// [`run_filtered`] with each worker's range scanned by `scan`.
fn run_scans<O: Operator>(
    op: &O,
    input: &Input<'_>,
    set: ColumnSet,
    opts: &QueryOptions,
    only: Option<roaring::RoaringBitmap>,
    scan: Scan<O>,
) -> Result<O::Partial, QueryError> {
    let only = only.map(Arc::new);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let threads = threads.clamp(1, 64).min(input.customers.max(1) as usize);
    let budget = Budget::new(opts.memory_max);
    let results: Vec<Result<O::Partial, QueryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = splits(&input.sources, input.customers, threads)
            .into_iter()
            .map(|(lo, hi)| {
                let sources = input.sources.clone();
                let cancel = opts.cancel.clone();
                let only = only.clone();
                let budget = &budget;
                s.spawn(move || scan(op, sources, set, (lo, hi), only, &cancel, budget))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|payload| Err(worker_panic(payload.as_ref())))
            })
            .collect()
    });
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

/// Customer ranges for `threads` workers (see [`split_rows`]), from the sources' zone maps.
fn splits(sources: &[Source], customers: u32, threads: usize) -> Vec<(u32, u32)> {
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
fn split_rows(mut marks: Vec<(u32, u64)>, customers: u32, parts: usize) -> Vec<(u32, u32)> {
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
        for &(cid, rows) in &marks {
            // A block starts a new range once the rows before it reach the next share.
            while t < parts && before >= total * t / parts {
                starts.push(cid);
                t += 1;
            }
            before += rows;
        }
    }
    starts.dedup();
    let mut out: Vec<(u32, u32)> = starts.windows(2).map(|w| (w[0], w[1] - 1)).collect();
    out.push((starts.last().copied().unwrap_or(0), u32::MAX));
    out
}

/// The error for a worker that panicked: its panic message, when it has one.
fn worker_panic(payload: &(dyn std::any::Any + Send)) -> QueryError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned());
    QueryError::Internal(msg)
}

fn scan_customers<O: Operator>(
    op: &O,
    sources: Vec<Source>,
    set: ColumnSet,
    (lo, hi): (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    cancel: &AtomicBool,
    budget: &Budget,
) -> Result<O::Partial, QueryError> {
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
                carry.extend_from(&block.slice(i..j));
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
fn scan_maybe_lazy<O: LazyOperator>(
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
        _ => scan_customers(op, sources, set, range, only, cancel, budget),
    }
}

/// [`scan_customers`] over one segment for an operator that reads lazily: customers come from
/// the run-length code (ids not expanded per row), their timestamps are decoded only as far as
/// the operator reads them, and a customer whose rows go on in the next block keeps its state
/// across blocks — once its answer is final, its later rows are not read at all.
fn scan_lazy<O: LazyOperator>(
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
                op.end(&mut p, &state);
                open = None;
            }
            if cid < lo || cid > hi || !wanted(cid) {
                continue;
            }
            let done = match open {
                Some((_, done)) => done,
                None => {
                    state = O::State::default();
                    false
                }
            };
            // One call per form of the columns, so that the kernel inlines the decoding.
            let done = done
                || match (&block.events, &block.ts) {
                    (BlockEvents::Nibbles(p), BlockTs::Lazy(runs)) => {
                        op.feed(&mut state, Nibbles::new(p, start, end), runs.run(start))
                    }
                    (events, BlockTs::Lazy(runs)) => {
                        op.feed(&mut state, events.ids(start, end), runs.run(start))
                    }
                    (events, BlockTs::Decoded(ts)) => {
                        let ts = ts.get(start..).unwrap_or(&[]).iter().copied();
                        op.feed(&mut state, events.ids(start, end), ts)
                    }
                };
            if end == n && spills {
                open = Some((cid, done));
            } else {
                op.end(&mut p, &state);
                open = None;
            }
        }
    }
    if open.is_some() {
        op.end(&mut p, &state);
    }
    budget.report(&mut reported, op.footprint(&p))?;
    Ok(p)
}

/// Membership in a bitmap for ids asked in ascending order (repeats allowed): a cursor over the
/// members instead of a lookup per id. A scan asks once per customer it meets, and a roaring
/// `contains` (a binary search over the containers, then one within) took ~8 % of a funnel's
/// time; the cursor steps once per member of the scanned range.
struct Members<'a> {
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

/// True when `(lo, hi)` selects whole UTC days of the data: each end on a day boundary or beyond
/// the data (so that per-day indices answer exactly). False for an empty database.
fn whole_days(input: &Input<'_>, (lo, hi): (i64, i64)) -> bool {
    let Some((dmin, dmax)) = input.ts_range else {
        return false;
    };
    (on_day_boundary(lo) || lo <= dmin) && (on_day_boundary(hi) || hi > dmax)
}

/// True when `t` starts a UTC day.
fn on_day_boundary(t: i64) -> bool {
    t.rem_euclid(model::DAY_US) == 0
}

/// The columns a query must decode: properties only when a predicate, breakdown or value uses them.
fn columns(props: bool) -> ColumnSet {
    ColumnSet {
        ts: true,
        event: true,
        stage: true,
        props,
        prop_mask: u64::MAX,
    }
}

/// Only the property columns `ids` (the query reads no other; ids ≥ 64 are always decoded).
fn columns_of(ids: &[u32]) -> ColumnSet {
    let mask = ids
        .iter()
        .filter(|&&id| id < 64)
        .fold(0u64, |m, &id| m | (1u64 << id));
    ColumnSet {
        prop_mask: mask,
        ..columns(!ids.is_empty())
    }
}

fn passes(filter: &Option<CPred>, rows: &Columns, i: usize, dicts: &Dicts) -> bool {
    filter
        .as_ref()
        .is_none_or(|f| f.eval(rows, i, dicts) == Some(true))
}

fn slot_label(slot: Option<u64>, ty: PropType, dicts: &Dicts) -> String {
    let Some(x) = slot else { return "(null)".into() };
    match ty {
        PropType::Str => dicts.strings.name(x as u32).unwrap_or("?").to_owned(),
        PropType::I64 => (x as i64).to_string(),
        PropType::F64 => f64::from_bits(x).to_string(),
        PropType::Bool => (x != 0).to_string(),
    }
}

fn prop_label(rows: &Columns, prop: Option<(u32, PropType)>, i: usize, dicts: &Dicts) -> String {
    let Some((id, ty)) = prop else {
        return String::new();
    };
    let Some(c) = rows.prop(id) else {
        return "(null)".into();
    };
    if !c.valid[i] {
        return "(null)".into();
    }
    let x = c.vals[i];
    match ty {
        PropType::Str => dicts.strings.name(x as u32).unwrap_or("?").to_owned(),
        PropType::I64 => (x as i64).to_string(),
        PropType::F64 => f64::from_bits(x).to_string(),
        PropType::Bool => (x != 0).to_string(),
    }
}

/// Runs a parsed statement.
pub fn execute(
    stmt: &Statement,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let table = match stmt {
        Statement::Funnel(f) => funnel(f, text, input, opts, None)?,
        Statement::Retention(r) => retention(r, text, input, opts, None)?,
        Statement::Customers(c) => customers(c, text, input, opts)?,
        Statement::Explain(e) => explain(e, text, input)?,
        Statement::Trend(t) => trend(t, text, input, opts)?,
        Statement::Timeline(t) => timeline(t, text, input, opts)?,
        Statement::Lifecycle(l) => lifecycle::lifecycle(l, text, input, opts)?,
        Statement::Stickiness(st) => lifecycle::stickiness(st, text, input, opts)?,
        Statement::Stages(st) => lifecycle::stages(st, text, input, opts)?,
        Statement::Transitions(tr) => lifecycle::transitions(tr, text, input, opts)?,
        Statement::Forget(f) => {
            return Err(ParseError::new(
                f.span,
                "FORGET CUSTOMER changes the database; a snapshot is read-only",
            )
            .with_help("run it with Db::query (the shell does)")
            .into());
        }
    };
    if table.rows.len() > opts.rows_max {
        return Err(QueryError::TooManyRows(opts.rows_max));
    }
    Ok(table)
}

// ---------------------------------------------------------------------------------------------
// FUNNEL

#[derive(Clone)]
struct FunnelOp<'a> {
    steps: Vec<Matcher>,
    within: i64,
    mode: FunnelMode,
    ties_strict: bool,
    /// (matcher, from, to) with 1-based steps.
    excludes: Vec<(Matcher, usize, usize)>,
    range: Option<(i64, i64)>,
    filter: Option<CPred>,
    by: Option<(u32, PropType)>,
    dicts: &'a Dicts,
    /// Distinct "highest reachable step" values a chain can have (exclusion caps), ascending;
    /// the last is the number of steps.
    caps: Vec<usize>,
    /// Collect the customers of each level (for CUSTOMERS).
    collect: bool,
    /// Step masks by event id and stage, when every step is an event/stage test (no property
    /// predicate): the fast ordered kernel's matchers.
    masks: Option<StepMasks>,
}

/// Which steps an event can match, by event id and by stage code: a row matches step k when
/// bit k is set in both `event[id]` and `stage[code]` (exact for steps without a predicate).
#[derive(Clone)]
struct StepMasks {
    event: Vec<u32>,
    stage: [u32; 256],
    stage_steps: bool,
}

impl StepMasks {
    fn new(steps: &[Matcher], events: usize) -> Option<StepMasks> {
        if steps.len() > 32 || steps.iter().any(Matcher::uses_props) {
            return None;
        }
        let mut m = StepMasks {
            event: vec![0; events],
            stage: [0; 256],
            stage_steps: steps.iter().any(|s| s.stage.is_some()),
        };
        for (k, step) in steps.iter().enumerate() {
            let bit = 1u32 << k;
            match &step.events {
                None => m.event.iter_mut().for_each(|x| *x |= bit),
                Some(ids) => {
                    for &id in ids {
                        if let Some(x) = m.event.get_mut(id as usize) {
                            *x |= bit;
                        }
                    }
                }
            }
            for (code, x) in m.stage.iter_mut().enumerate() {
                if step.stage.is_none_or(|s| usize::from(s) == code) {
                    *x |= bit;
                }
            }
        }
        Some(m)
    }

    /// True when a step names a stage (else every stage code has all bits and the stage
    /// column is not decoded).
    fn reads_stage(&self) -> bool {
        self.stage_steps
    }
}

/// One customer's rows for the funnel kernel: event id, timestamp and stage (0 when `stages`
/// ends first), side by side — a `zip` whose `next` always inlines, so that timestamps decoded
/// on demand are decoded inside the kernel's loop (the loop is the whole cost of a funnel).
struct KernelRows<E, T, S> {
    events: E,
    ts: T,
    stages: S,
}

impl<E: Iterator<Item = u32>, T: Iterator<Item = i64>, S: Iterator<Item = u8>> Iterator
    for KernelRows<E, T, S>
{
    type Item = (u32, i64, u8);

    #[inline(always)]
    fn next(&mut self) -> Option<(u32, i64, u8)> {
        let e = self.events.next()?;
        let t = self.ts.next()?;
        Some((e, t, self.stages.next().unwrap_or(0)))
    }
}

/// One customer's progress through an ordered funnel (the fast kernel): state arrays of `N` >
/// steps levels, fed rows in (timestamp, sequence) order — in one call, or block by block for a
/// customer whose rows span blocks — then finished into the partial.
struct FunnelRun<const N: usize> {
    /// settled[k] / fresh[k]: latest start of a chain at level k (i64::MIN, the identity of
    /// `max`, when there is none; whether there is one is in `chains` and `dirty`, since every
    /// i64 is a timestamp). With TIES STRICT a chain reached at timestamp t is `fresh` until
    /// the timestamp changes: events at t extend only `settled` chains, so no two steps share
    /// a timestamp.
    settled: [i64; N],
    fresh: [i64; N],
    /// Levels with a settled chain.
    chains: u64,
    /// Levels with a fresh chain.
    dirty: u64,
    /// Time from the chain's start to each level's first reaching (set where `timed`).
    times: [i64; N],
    timed: u64,
    level: usize,
    group_ts: i64,
    first_seen: bool,
}

/// The value of an empty slot in [`FunnelRun`] (not a marker: validity is kept in bits).
const NONE: i64 = i64::MIN;

impl<const N: usize> Default for FunnelRun<N> {
    fn default() -> Self {
        FunnelRun {
            settled: [NONE; N],
            fresh: [NONE; N],
            chains: 0,
            dirty: 0,
            times: [0; N],
            timed: 0,
            level: 0,
            group_ts: NONE,
            first_seen: false,
        }
    }
}

impl<const N: usize> FunnelRun<N> {
    /// Feeds the customer's next rows `(event, timestamp, stage)`; true once the funnel is
    /// complete (later rows cannot change the customer's answer, and are not read).
    #[inline(always)]
    fn feed(&mut self, op: &FunnelOp<'_>, m: &StepMasks, rows: impl Iterator<Item = (u32, i64, u8)>) -> bool {
        let n = op.steps.len();
        if self.level == n {
            return true;
        }
        let strict = op.ties_strict;
        let by_stage = m.reads_stage();
        for (e, t, stage) in rows {
            let mut mask = m.event.get(e as usize).copied().unwrap_or(0);
            if mask != 0 && by_stage {
                mask &= m.stage[usize::from(stage)];
            }
            if mask == 0 {
                continue;
            }
            if strict && self.group_ts != t {
                while self.dirty != 0 {
                    let k = self.dirty.trailing_zeros() as usize;
                    self.settled[k] = self.settled[k].max(self.fresh[k]);
                    self.fresh[k] = NONE;
                    self.chains |= 1 << k;
                    self.dirty &= self.dirty - 1;
                }
                self.group_ts = t;
            }
            // Steps this event matches, highest first: level k reads level k - 1 before this
            // event writes it, so every extension starts from a chain before this event.
            let mut bits = mask;
            while bits != 0 {
                let k = 32 - bits.leading_zeros() as usize; // step k (bit k - 1)
                bits &= !(1u32 << (k - 1));
                let c = if k == 1 {
                    if !op.in_range(t) {
                        continue;
                    }
                    self.first_seen = true;
                    t
                } else {
                    let s = self.settled[k - 1];
                    if self.chains & (1 << (k - 1)) == 0 || !op.within(s, t) {
                        continue;
                    }
                    s
                };
                if strict {
                    self.fresh[k] = self.fresh[k].max(c);
                    self.dirty |= 1 << k;
                } else {
                    self.settled[k] = self.settled[k].max(c);
                    self.chains |= 1 << k;
                }
                if self.timed & (1 << k) == 0 {
                    // c ≤ t, and t - c ≤ WITHIN (or 0 at step 1): no overflow.
                    self.times[k] = t - c;
                    self.timed |= 1 << k;
                }
                self.level = self.level.max(k);
            }
            if self.level == n {
                return true;
            }
        }
        false
    }

    /// Adds the customer (once it reached step 1) to `p`, for a funnel of `n` steps.
    fn finish(&self, n: usize, p: &mut FunnelPartial) {
        if !self.first_seen {
            return;
        }
        let level = self.level;
        let bytes = &mut p.bytes;
        let entry = p.ungrouped.get_or_insert_with(|| {
            *bytes += funnel_group_bytes(n + 1);
            (vec![0; n + 1], vec![Samples::default(); n + 1])
        });
        entry.0[1..=level].iter_mut().for_each(|c| *c += 1);
        // Step 1 has no time to convert (its row shows none): only steps 2.. keep samples.
        if level >= 2 {
            for (samples, &time) in entry.1[2..=level].iter_mut().zip(&self.times[2..=level]) {
                samples.push(time);
            }
            p.bytes += 8 * (level - 1);
        }
    }
}

/// Customers per level (index = level) and times to convert per step, of one group.
type FunnelCounts = (Vec<u64>, Vec<Samples>);

/// The times to convert of one funnel step: the samples this worker took, and the parts merged
/// in from others — kept apart, so that merging copies nothing (medians are taken over the parts,
/// see [`median_mean_of`]).
#[derive(Clone, Debug, Default)]
struct Samples {
    head: Vec<i64>,
    more: Vec<Vec<i64>>,
}

impl Samples {
    fn push(&mut self, t: i64) {
        self.head.push(t);
    }

    /// Adds `other`'s samples (its vectors are moved in, not copied).
    fn append(&mut self, other: Samples) {
        self.more.extend(
            std::iter::once(other.head)
                .chain(other.more)
                .filter(|v| !v.is_empty()),
        );
    }

    fn parts(&self) -> impl Iterator<Item = &[i64]> {
        std::iter::once(&self.head[..]).chain(self.more.iter().map(|v| &v[..]))
    }
}

#[derive(Default)]
struct FunnelPartial {
    /// Per breakdown value slot (`None`: null, or no BY).
    groups: HashMap<Option<u64>, FunnelCounts>,
    /// With `collect`: customers by the level they reached (index = level).
    levels: Vec<roaring::RoaringBitmap>,
    /// The no-breakdown group of the fast kernel, kept out of `groups` so that a customer
    /// costs no hash look-up; [`settle`](Self::settle) moves it in (merging does).
    ungrouped: Option<FunnelCounts>,
    /// Reused per-customer buffers (not part of the answer).
    scratch: Scratch,
    /// Reused per-customer outcome.
    outcome: FunnelOutcome,
    /// Heap bytes of `groups` and `levels` (for the memory budget).
    bytes: usize,
}

impl FunnelPartial {
    /// Moves `ungrouped` into `groups` (as the `None` group).
    fn settle(&mut self) {
        let Some((counts, times)) = self.ungrouped.take() else {
            return;
        };
        add_counts(self.groups.entry(None), counts, times);
    }
}

/// Adds one group's counts and time samples to `e` (moved in whole when `e` is new).
fn add_counts(
    e: std::collections::hash_map::Entry<'_, Option<u64>, FunnelCounts>,
    counts: Vec<u64>,
    times: Vec<Samples>,
) {
    use std::collections::hash_map::Entry;
    match e {
        Entry::Vacant(v) => {
            v.insert((counts, times));
        }
        Entry::Occupied(mut o) => {
            let e = o.get_mut();
            for (x, y) in e.0.iter_mut().zip(counts) {
                *x += y;
            }
            for (x, y) in e.1.iter_mut().zip(times) {
                x.append(y);
            }
        }
    }
}

/// Buffers reused across customers by one worker.
#[derive(Default)]
struct Scratch {
    idx: Vec<usize>,
    settled: Vec<Option<i64>>,
    fresh: Vec<Option<i64>>,
    cands: Vec<(usize, usize, i64)>,
}

/// Result of one customer: level reached and, per step, time to convert (µs).
#[derive(Default)]
pub struct FunnelOutcome {
    /// Furthest step reached (0 = none).
    pub level: usize,
    /// Time from step 1 to step k on the earliest-completing chain, for k = 1..=level.
    pub times: Vec<Option<i64>>,
    /// The event (row index) that first completed step k.
    pub at: Vec<Option<usize>>,
}

impl FunnelOp<'_> {
    fn in_range(&self, ts: i64) -> bool {
        self.range.is_none_or(|(lo, hi)| lo <= ts && ts < hi)
    }

    /// True when `t` is at most WITHIN after `s` (`s` ≤ `t`: rows come in time order), exact
    /// for any two i64 timestamps.
    #[inline(always)]
    fn within(&self, s: i64, t: i64) -> bool {
        t.wrapping_sub(s) as u64 <= self.within as u64
    }

    /// True when [`ordered_fast`](Self::ordered_fast) evaluates this funnel.
    fn fast(&self) -> bool {
        self.masks.is_some()
            && self.mode == FunnelMode::Ordered
            && self.excludes.is_empty()
            && self.filter.is_none()
            && self.by.is_none()
            && !self.collect
    }

    fn caps(steps: usize, excludes: &[(Matcher, usize, usize)]) -> Vec<usize> {
        let mut caps: Vec<usize> = excludes.iter().map(|e| e.2 - 1).chain([steps]).collect();
        caps.sort_unstable();
        caps.dedup();
        caps
    }

    /// Evaluates one customer's (filtered) events, in (timestamp, sequence) order.
    fn outcome(&self, rows: &Columns, idx: &[usize], scratch: &mut Scratch) -> FunnelOutcome {
        let mut out = FunnelOutcome::default();
        self.outcome_into(rows, idx, scratch, &mut out);
        out
    }

    /// As [`outcome`](Self::outcome), reusing `out`'s allocations.
    fn outcome_into(&self, rows: &Columns, idx: &[usize], scratch: &mut Scratch, out: &mut FunnelOutcome) {
        let n = self.steps.len();
        out.level = 0;
        out.times.clear();
        out.times.resize(n + 1, None);
        out.at.clear();
        out.at.resize(n + 1, None);
        match self.mode {
            FunnelMode::Unordered => self.unordered(rows, idx, out),
            FunnelMode::Strict => self.strict(rows, idx, out),
            FunnelMode::Ordered => self.ordered(rows, idx, out, scratch),
        }
    }

    fn reach(out: &mut FunnelOutcome, k: usize, time: i64, at: usize) {
        if out.times[k].is_none() {
            out.times[k] = Some(time);
            out.at[k] = Some(at);
        }
        out.level = out.level.max(k);
    }

    fn ordered(&self, rows: &Columns, idx: &[usize], out: &mut FunnelOutcome, scratch: &mut Scratch) {
        let n = self.steps.len();
        let caps = &self.caps;
        let nc = caps.len();
        // settled[k * nc + c]: latest start of a chain at level k (1-based) whose cap is
        // caps[c]; fresh: chains whose last event has the current timestamp (TIES STRICT only).
        let Scratch {
            settled,
            fresh,
            cands,
            ..
        } = scratch;
        settled.clear();
        settled.resize((n + 1) * nc, None);
        fresh.clear();
        fresh.resize((n + 1) * nc, None);
        let mut group_ts = None;
        let max_into = |slot: &mut Option<i64>, s: i64| *slot = Some(slot.map_or(s, |x| x.max(s)));
        for &i in idx {
            let t = rows.ts[i];
            if self.ties_strict && group_ts != Some(t) {
                for (f, st) in fresh.iter_mut().zip(settled.iter_mut()) {
                    if let Some(s) = f.take() {
                        max_into(st, s);
                    }
                }
                group_ts = Some(t);
            }
            cands.clear();
            for k in (2..=n).rev() {
                if !self.steps[k - 1].matches(rows, i, self.dicts) {
                    continue;
                }
                for (c, &cap) in caps.iter().enumerate() {
                    if cap < k {
                        continue;
                    }
                    if let Some(s) = settled[(k - 1) * nc + c]
                        && self.within(s, t)
                    {
                        cands.push((k, c, s));
                    }
                }
            }
            if self.in_range(t) && self.steps[0].matches(rows, i, self.dicts) {
                cands.push((1, nc - 1, t));
            }
            // Exclusions hit by this event poison chains it lies strictly inside.
            for (m, from, to) in &self.excludes {
                if !m.matches(rows, i, self.dicts) {
                    continue;
                }
                let cap = caps.iter().position(|&c| c == to - 1).unwrap_or(0);
                for layer in [&mut *settled, &mut *fresh] {
                    for k in *from..*to {
                        for c in (cap + 1)..nc {
                            if let Some(s) = layer[k * nc + c].take() {
                                max_into(&mut layer[k * nc + cap], s);
                            }
                        }
                    }
                }
                for cand in cands.iter_mut() {
                    if *from < cand.0 && cand.0 < *to && cand.1 > cap {
                        cand.1 = cap;
                    }
                }
            }
            let target = if self.ties_strict {
                &mut *fresh
            } else {
                &mut *settled
            };
            for &(k, c, s) in cands.iter() {
                max_into(&mut target[k * nc + c], s);
            }
            // Time to convert: the first event completing step k, from the latest start.
            for &(k, _, s) in cands.iter() {
                let best = cands.iter().filter(|c| c.0 == k).map(|c| c.2).max().unwrap_or(s);
                Self::reach(out, k, t - best, i);
            }
        }
    }

    /// The ordered funnel without exclusions, filter, breakdown or drill-down, on step masks:
    /// the same chains as [`ordered`](Self::ordered) (one cap, so at most one candidate per
    /// level), without its general bookkeeping. Adds the customer to `p`.
    fn ordered_fast(&self, m: &StepMasks, p: &mut FunnelPartial, rows: &Columns, r: Range<usize>) {
        let events = rows.event.get(r.clone()).unwrap_or(&[]).iter().copied();
        let ts = rows.ts.get(r.clone()).unwrap_or(&[]).iter().copied();
        if m.reads_stage() {
            let stages = rows.stage.get(r).unwrap_or(&[]).iter().copied();
            self.ordered_fast_rows(m, p, KernelRows { events, ts, stages });
        } else {
            let stages = std::iter::empty();
            self.ordered_fast_rows(m, p, KernelRows { events, ts, stages });
        }
    }

    /// [`ordered_fast`](Self::ordered_fast) on one customer's rows, read only until the funnel
    /// is complete.
    fn ordered_fast_rows(
        &self,
        m: &StepMasks,
        p: &mut FunnelPartial,
        rows: impl Iterator<Item = (u32, i64, u8)>,
    ) {
        // Per-customer state sized for the steps (a funnel of 2–3 steps keeps 3 × 4 words, not
        // 3 × 33, to set up per customer).
        match self.steps.len() {
            0..=3 => self.ordered_fast_n::<4>(m, p, rows),
            4..=7 => self.ordered_fast_n::<8>(m, p, rows),
            _ => self.ordered_fast_n::<33>(m, p, rows),
        }
    }

    /// [`ordered_fast_rows`](Self::ordered_fast_rows) with state arrays of `N` > steps levels.
    fn ordered_fast_n<const N: usize>(
        &self,
        m: &StepMasks,
        p: &mut FunnelPartial,
        rows: impl Iterator<Item = (u32, i64, u8)>,
    ) {
        let mut run = FunnelRun::<N>::default();
        run.feed(self, m, rows);
        run.finish(self.steps.len(), p);
    }

    fn strict(&self, rows: &Columns, idx: &[usize], out: &mut FunnelOutcome) {
        let n = self.steps.len();
        // cur[k] = (start, cap) of the chain at level k ending at the previous event (chains
        // are consecutive events, so there is at most one); `cap` is the highest level it may
        // still reach given the excluded events among its own steps.
        let mut cur = vec![None::<(i64, usize)>; n + 1];
        let mut next = vec![None::<(i64, usize)>; n + 1];
        let mut prev_ts = None;
        for &i in idx {
            let t = rows.ts[i];
            for x in next.iter_mut() {
                *x = None;
            }
            let tie_ok = !self.ties_strict || prev_ts.is_none_or(|p| p < t);
            for k in 2..=n {
                if let Some((s, cap)) = cur[k - 1]
                    && k <= cap
                    && tie_ok
                    && self.within(s, t)
                    && self.steps[k - 1].matches(rows, i, self.dicts)
                {
                    let mut cap = cap;
                    for (m, from, to) in &self.excludes {
                        if *from < k && k < *to && m.matches(rows, i, self.dicts) {
                            cap = cap.min(to - 1);
                        }
                    }
                    next[k] = Some((s, cap));
                    Self::reach(out, k, t - s, i);
                }
            }
            if self.in_range(t) && self.steps[0].matches(rows, i, self.dicts) {
                next[1] = Some((t, n));
                Self::reach(out, 1, 0, i);
            }
            std::mem::swap(&mut cur, &mut next);
            prev_ts = Some(t);
        }
    }

    fn unordered(&self, rows: &Columns, idx: &[usize], out: &mut FunnelOutcome) {
        let n = self.steps.len();
        let masks: Vec<u64> = idx
            .iter()
            .map(|&i| {
                let mut m = 0u64;
                for (k, s) in self.steps.iter().enumerate() {
                    if s.matches(rows, i, self.dicts) {
                        m |= 1 << k;
                    }
                }
                m
            })
            .collect();
        // The window [ta, ta + within] of start a slides forward with a: events [a, hi) are in
        // it, kept as counts per distinct step mask, so each event enters and leaves once.
        // A maximum matching depends only on those counts, each capped at n (at most n events
        // can be matched), so its cost per start does not grow with the window.
        let mut counts: Vec<(u64, usize)> = Vec::new();
        let mut hi = 0;
        let mut nodes: Vec<u64> = Vec::new();
        let mut owner: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        for a in 0..idx.len() {
            let ta = rows.ts[idx[a]];
            while hi < idx.len() && self.within(ta, rows.ts[idx[hi]]) {
                if masks[hi] != 0 {
                    match counts.iter_mut().find(|(m, _)| *m == masks[hi]) {
                        Some((_, c)) => *c += 1,
                        None => counts.push((masks[hi], 1)),
                    }
                }
                hi += 1;
            }
            if masks[a] != 0 && self.in_range(ta) {
                // Event a first: Kuhn's algorithm keeps matched events matched, so a stays in.
                nodes.clear();
                nodes.push(masks[a]);
                for &(m, c) in &counts {
                    let c = if m == masks[a] { c - 1 } else { c };
                    nodes.extend(std::iter::repeat_n(m, c.min(n)));
                }
                owner.iter_mut().for_each(|o| *o = None);
                let mut size = 0;
                for b in 0..nodes.len() {
                    seen.iter_mut().for_each(|s| *s = false);
                    if augment(b, &nodes, &mut owner, &mut seen) {
                        size += 1;
                    }
                    if size == n {
                        break;
                    }
                }
                for k in 1..=size {
                    out.times[k].get_or_insert(0);
                }
                out.level = out.level.max(size);
                if size == n {
                    break;
                }
            }
            if masks[a] != 0
                && let Some(p) = counts.iter().position(|(m, _)| *m == masks[a])
            {
                counts[p].1 -= 1;
                if counts[p].1 == 0 {
                    counts.swap_remove(p);
                }
            }
        }
        for t in out.times.iter_mut() {
            *t = None;
        }
    }
}

fn augment(e: usize, masks: &[u64], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for k in 0..owner.len() {
        if masks[e] >> k & 1 == 1 && !seen[k] {
            seen[k] = true;
            if owner[k].is_none_or(|o| augment(o, masks, owner, seen)) {
                owner[k] = Some(e);
                return true;
            }
        }
    }
    false
}

impl Operator for FunnelOp<'_> {
    type Partial = FunnelPartial;

    fn customer(&self, p: &mut FunnelPartial, rows: &Columns, r: Range<usize>) {
        if let Some(m) = &self.masks
            && self.fast()
        {
            return self.ordered_fast(m, p, rows, r);
        }
        let mut idx = std::mem::take(&mut p.scratch.idx);
        idx.clear();
        idx.extend(r.filter(|&i| passes(&self.filter, rows, i, self.dicts)));
        let first = idx
            .iter()
            .copied()
            .find(|&i| self.in_range(rows.ts[i]) && self.steps[0].matches(rows, i, self.dicts));
        let Some(first) = first else {
            p.scratch.idx = idx;
            return;
        };
        let group = self.by.and_then(|(id, _)| slot(rows, id, first));
        let mut o = std::mem::take(&mut p.outcome);
        self.outcome_into(rows, &idx, &mut p.scratch, &mut o);
        p.scratch.idx = idx;
        let n = self.steps.len();
        if self.collect {
            p.levels.resize_with(n + 1, Default::default);
            p.levels[o.level].insert(rows.cid[first]);
            // An array container holds 2 bytes per customer; a bitmap container less.
            p.bytes += 2;
        }
        let bytes = &mut p.bytes;
        let entry = p.groups.entry(group).or_insert_with(|| {
            *bytes += funnel_group_bytes(n + 1);
            (vec![0; n + 1], vec![Samples::default(); n + 1])
        });
        for k in 1..=o.level {
            entry.0[k] += 1;
            // Step 1 has no time to convert (its row shows none).
            if k >= 2
                && let Some(t) = o.times[k]
            {
                entry.1[k].push(t);
                p.bytes += 8;
            }
        }
        p.outcome = o;
    }

    fn footprint(&self, p: &FunnelPartial) -> usize {
        p.bytes
    }

    fn merge(&self, a: &mut FunnelPartial, mut b: FunnelPartial) {
        a.settle();
        b.settle();
        a.bytes += b.bytes;
        if a.levels.len() < b.levels.len() {
            a.levels.resize_with(b.levels.len(), Default::default);
        }
        for (x, y) in a.levels.iter_mut().zip(b.levels) {
            *x |= y;
        }
        for (g, (counts, times)) in b.groups {
            add_counts(a.groups.entry(g), counts, times);
        }
    }
}

/// Lazily: funnels of up to 7 steps on the fast kernel that read no stage.
impl LazyOperator for FunnelOp<'_> {
    type State = FunnelRun<8>;

    fn lazy(&self) -> bool {
        self.fast() && self.steps.len() < 8 && self.masks.as_ref().is_some_and(|m| !m.reads_stage())
    }

    fn feed(
        &self,
        s: &mut FunnelRun<8>,
        events: impl Iterator<Item = u32>,
        ts: impl Iterator<Item = i64>,
    ) -> bool {
        let Some(m) = &self.masks else {
            return true;
        };
        let stages = std::iter::empty();
        s.feed(self, m, KernelRows { events, ts, stages })
    }

    fn end(&self, p: &mut FunnelPartial, s: &FunnelRun<8>) {
        s.finish(self.steps.len(), p);
    }
}

/// Heap bytes of one funnel group with `levels` levels (counts, sample vectors, map entry).
fn funnel_group_bytes(levels: usize) -> usize {
    64 + levels * (8 + 24)
}

/// [`median_mean_of`] each sample set, in order; on up to `threads` threads (0: one per core)
/// when there are many samples.
fn medians_means(sets: Vec<&Samples>, threads: usize) -> Result<Vec<(Cell, Cell)>, QueryError> {
    let total: usize = sets
        .iter()
        .map(|v| v.parts().map(<[i64]>::len).sum::<usize>())
        .sum();
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    if total < 100_000 || threads < 2 || sets.len() < 2 {
        return Ok(sets.into_iter().map(median_mean_of).collect());
    }
    // Sets dealt out in turn: thread j takes sets j, j + threads, …
    let count = sets.len();
    let per = count.div_ceil(threads);
    let mut lanes: Vec<Vec<(usize, &Samples)>> = (0..threads.min(sets.len()))
        .map(|_| Vec::with_capacity(per))
        .collect();
    let lanes_n = lanes.len();
    for (i, v) in sets.into_iter().enumerate() {
        lanes[i % lanes_n].push((i, v));
    }
    type Lane = Vec<(usize, (Cell, Cell))>;
    let parts: Vec<Result<Lane, QueryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                s.spawn(move || {
                    lane.into_iter()
                        .map(|(i, v)| (i, median_mean_of(v)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|payload| worker_panic(payload.as_ref())))
            .collect()
    });
    let mut out = Vec::with_capacity(count);
    for part in parts {
        out.extend(part?);
    }
    out.sort_by_key(|&(i, _)| i);
    Ok(out.into_iter().map(|(_, x)| x).collect())
}

/// From this many samples on, [`median_mean_bracketed`] brackets the median by a sample first.
const BRACKET_FROM: usize = 1 << 13;

/// [`median_mean`] of the samples in all parts of `s`, without gathering them into one vector
/// (see [`median_mean_bracketed`]).
fn median_mean_of(s: &Samples) -> (Cell, Cell) {
    let parts: Vec<&[i64]> = s.parts().filter(|p| !p.is_empty()).collect();
    median_mean_bracketed(&parts, 4096, 128)
}

/// [`median_mean`] of the union of `parts`: [`bracketed`] when it can answer, else of the parts
/// gathered into one vector. Either way the answer is the one [`median_mean`] gives.
fn median_mean_bracketed(parts: &[&[i64]], sample: usize, margin: usize) -> (Cell, Cell) {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    if n >= BRACKET_FROM
        && let Some(answer) = bracketed(parts, n, sample, margin)
    {
        return answer;
    }
    let mut v: Vec<i64> = parts.concat();
    median_mean(&mut v)
}

/// [`median_mean`] of the `n` values in `parts` without gathering them: a sorted sample of
/// about `sample` values (every k-th of each part) brackets the median ranks — the values
/// `margin` sample positions either side of the median's estimated position are bounds `lo` ≤
/// `hi` — and one pass over the parts counts the values below `lo`, keeps those in `[lo, hi]`
/// and sums all (for the mean). When the median ranks fall among the kept values (a few per
/// cent of them) they are selected there; `None` when the sample misjudged them.
fn bracketed(parts: &[&[i64]], n: usize, sample: usize, margin: usize) -> Option<(Cell, Cell)> {
    if n == 0 {
        return None;
    }
    // Ranks (0-based, ascending) of the median: one value, or the two middle ones.
    let (r_lo, r_hi) = if n % 2 == 1 {
        (n / 2, n / 2)
    } else {
        (n / 2 - 1, n / 2)
    };
    let step = (n / sample.max(1)).max(1);
    let mut picked: Vec<i64> = parts
        .iter()
        .flat_map(|p| p.iter().step_by(step).copied())
        .collect();
    picked.sort_unstable();
    let m = picked.len();
    let at = r_lo * m / n;
    let lo = *picked.get(at.saturating_sub(margin))?;
    let hi = *picked.get((at + margin + 1).min(m.checked_sub(1)?))?;
    // One pass without branches on the values (they fall either side of `lo` at random): each
    // value is written at the end of `kept`, which grows only when it is in range.
    let cap = (n / m.max(1))
        .saturating_add(1)
        .saturating_mul(2 * margin + 2)
        .saturating_mul(2);
    let mut kept = vec![0i64; cap + 1];
    let (mut below, mut len, mut sum) = (0usize, 0usize, 0i128);
    for p in parts {
        for &x in *p {
            sum += i128::from(x);
            below += usize::from(x < lo);
            if let Some(slot) = kept.get_mut(len.min(cap)) {
                *slot = x;
            }
            len += usize::from((x >= lo) & (x <= hi));
        }
    }
    if len > cap || r_lo < below || r_hi >= below + len {
        return None;
    }
    kept.truncate(len);
    // The other middle value (rank r_lo ≥ below, when there are two) is the largest kept one
    // before rank r_hi.
    Some(median_mean_cells(&mut kept, r_hi - below, r_lo == r_hi, sum, n))
}

/// The median and mean (in seconds) of `n` samples summing to `sum` (exactly), where the
/// median's upper (or only, when `odd`) middle value has rank `k` among `v`, and the lower one,
/// when there are two, is the largest value of `v` below rank `k`.
fn median_mean_cells(v: &mut [i64], k: usize, odd: bool, sum: i128, n: usize) -> (Cell, Cell) {
    let (under, mid, _) = v.select_nth_unstable(k);
    let mid = *mid;
    let med = if odd {
        mid as f64
    } else {
        (under.iter().copied().max().unwrap_or(mid) as f64 + mid as f64) / 2.0
    };
    let mean = sum as f64 / n as f64;
    (Cell::Float(med / 1e6), Cell::Float(mean / 1e6))
}

fn median_mean(v: &mut [i64]) -> (Cell, Cell) {
    if v.is_empty() {
        return (Cell::Null, Cell::Null);
    }
    // Selection, not a sort: linear in the number of converting customers. Summed exactly, so
    // the mean does not depend on the order workers delivered the times.
    let n = v.len();
    let sum = v.iter().map(|&x| i128::from(x)).sum::<i128>();
    median_mean_cells(v, n / 2, n % 2 == 1, sum, n)
}

/// What a CUSTOMERS drill-down wants from a funnel: step, DROPPED, LIMIT.
type FunnelDrill = (usize, bool, Option<u64>);

fn funnel(
    f: &crate::query::ast::Funnel,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
    drill: Option<FunnelDrill>,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, f.common.tz.as_ref())?;
    if f.mode == FunnelMode::Unordered
        && let Some(x) = f.excludes.first()
    {
        return Err(ParseError::new(x.span, "EXCLUDE is not supported with MODE UNORDERED").into());
    }
    let op = FunnelOp {
        collect: drill.is_some(),
        ..funnel_op(f, &res, input)?
    };
    let mut only = candidates(&op.steps[0], input.bitmaps, op.range);
    // Customers with a step-1 event in range but no step-2 event at all stop at level 1: the
    // bitmaps count them exactly (step 1 without a property predicate, a whole-day range, no
    // WHERE, BY or exclusions), and only the others are scanned.
    let prunable = !op.collect
        && op.by.is_none()
        && op.filter.is_none()
        && op.excludes.is_empty()
        && matches!(op.mode, FunnelMode::Ordered | FunnelMode::Strict)
        && op.steps.len() >= 2
        && op.steps[0].filter.is_none()
        && op
            .range
            .is_none_or(|(x, y)| on_day_boundary(x) && on_day_boundary(y));
    let mut stop_at_one = 0;
    if prunable && let (Some(first), Some(second)) = (&only, candidates(&op.steps[1], input.bitmaps, None)) {
        let scan = first & &second;
        stop_at_one = first.len() - scan.len();
        only = Some(scan);
    }
    let props = op.filter.is_some()
        || op.by.is_some()
        || op.steps.iter().any(Matcher::uses_props)
        || op.excludes.iter().any(|x| x.0.uses_props());
    // The fast kernel reads the stage column only for a stage step.
    let stage = !op.fast() || op.steps.iter().any(|s| s.stage.is_some());
    funnel_run(
        f,
        op,
        input,
        opts,
        drill,
        (only, stop_at_one),
        ColumnSet {
            stage,
            ..columns(props)
        },
    )
}

fn funnel_op<'a>(
    f: &crate::query::ast::Funnel,
    res: &Resolver<'_>,
    input: &Input<'a>,
) -> Result<FunnelOp<'a>, QueryError> {
    let excludes: Vec<(Matcher, usize, usize)> = f
        .excludes
        .iter()
        .map(|x| Ok((res.step(&x.step)?, x.from, x.to)))
        .collect::<Result<_, ParseError>>()?;
    Ok(FunnelOp {
        collect: false,
        caps: FunnelOp::caps(f.steps.len(), &excludes),
        excludes,
        steps: f.steps.iter().map(|s| res.step(s)).collect::<Result<_, _>>()?,
        within: f.within_us,
        mode: f.mode,
        ties_strict: f.ties_strict,
        range: res.range(&f.common.range)?,
        filter: f.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
        by: f
            .by
            .as_ref()
            .map(|(name, span)| res.prop(name, *span))
            .transpose()?,
        dicts: input.dicts,
        masks: None,
    })
    .map(|mut op| {
        op.masks = StepMasks::new(&op.steps, input.dicts.events.len());
        op
    })
}

fn funnel_run(
    f: &crate::query::ast::Funnel,
    op: FunnelOp<'_>,
    input: &Input<'_>,
    opts: &QueryOptions,
    drill: Option<FunnelDrill>,
    (only, stop_at_one): (Option<roaring::RoaringBitmap>, u64),
    set: ColumnSet,
) -> Result<Table, QueryError> {
    let mut p = run_scans(&op, input, set, opts, only, scan_maybe_lazy::<FunnelOp<'_>>)?;
    p.settle();
    if stop_at_one > 0 {
        let n = op.steps.len();
        let e = p
            .groups
            .entry(None)
            .or_insert_with(|| (vec![0; n + 1], vec![Samples::default(); n + 1]));
        e.0[1] += stop_at_one;
    }
    if let Some((k, dropped, limit)) = drill {
        p.levels.resize_with(op.steps.len() + 1, Default::default);
        let set = if dropped {
            p.levels[k - 1].clone()
        } else {
            p.levels[k..]
                .iter()
                .fold(roaring::RoaringBitmap::new(), |acc, b| acc | b)
        };
        return Ok(customer_table(&set, input.dicts, limit, opts.rows_max));
    }
    let mut cols = vec![
        "step",
        "event",
        "customers",
        "conversion_from_previous",
        "conversion_from_first",
        "median_time_to_convert_s",
        "mean_time_to_convert_s",
    ];
    if f.by.is_some() {
        cols.insert(0, "group");
    }
    let mut t = Table::new(&cols);
    let n = op.steps.len();
    if p.groups.is_empty() && f.by.is_none() {
        p.groups
            .insert(None, (vec![0; n + 1], vec![Samples::default(); n + 1]));
    }
    let by_ty = op.by.map_or(PropType::Str, |b| b.1);
    let mut groups: Vec<(String, FunnelCounts)> = p
        .groups
        .into_iter()
        .map(|(g, v)| (slot_label(g, by_ty, input.dicts), v))
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    // Medians and means of every (group, step ≥ 2), on the query's threads: selecting the
    // median of a few hundred thousand samples per step is the serial tail of a funnel.
    let mut stats = medians_means(
        groups
            .iter()
            .flat_map(|(_, (_, times))| times.iter().skip(2))
            .collect(),
        opts.threads,
    )?
    // One per (group, step ≥ 2), in the order the rows are built.
    .into_iter();
    for (g, (counts, _)) in &groups {
        for k in 1..=n {
            let c = counts[k];
            let rate = |d: u64| {
                if d == 0 {
                    Cell::Null
                } else {
                    Cell::Rate(c as f64 / d as f64)
                }
            };
            let (med, mean) = if k == 1 {
                (Cell::Null, Cell::Null)
            } else {
                stats.next().unwrap_or((Cell::Null, Cell::Null))
            };
            let mut row = vec![
                Cell::Int(k as i64),
                Cell::Str(op.steps[k - 1].label.clone()),
                Cell::Int(c as i64),
                if k == 1 { Cell::Null } else { rate(counts[k - 1]) },
                rate(counts[1]),
                med,
                mean,
            ];
            if f.by.is_some() {
                row.insert(0, Cell::Str(g.clone()));
            }
            t.rows.push(row);
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// RETENTION

struct RetentionOp<'a> {
    start: Matcher,
    ret: Matcher,
    buckets: Buckets,
    periods: usize,
    cohorting: Cohorting,
    on_or_after: bool,
    range: Option<(i64, i64)>,
    filter: Option<CPred>,
    dicts: &'a Dicts,
    /// Collect the customers of this (cohort bucket, offset) cell.
    collect: Option<(usize, usize)>,
}

/// (cohort bucket) -> (cohort size, customers per offset), and the customers of the cell being
/// drilled into (if any).
type RetentionPartial = (BTreeMap<usize, (u64, Vec<u64>)>, roaring::RoaringBitmap);

impl Operator for RetentionOp<'_> {
    type Partial = RetentionPartial;

    fn customer(&self, p: &mut RetentionPartial, rows: &Columns, r: Range<usize>) {
        let cid = rows.cid[r.start];
        let mut cohorts: Vec<usize> = Vec::new();
        let mut returns: Vec<usize> = Vec::new();
        let mut first_seen = false;
        for i in r {
            if !passes(&self.filter, rows, i, self.dicts) {
                continue;
            }
            let t = rows.ts[i];
            if self.start.matches(rows, i, self.dicts) {
                let in_range = self.range.is_none_or(|(lo, hi)| lo <= t && t < hi);
                match self.cohorting {
                    Cohorting::FirstTime => {
                        if !first_seen {
                            first_seen = true;
                            if in_range && let Some(b) = self.buckets.index(t) {
                                cohorts.push(b);
                            }
                        }
                    }
                    Cohorting::Recurring => {
                        if in_range && let Some(b) = self.buckets.index(t) {
                            cohorts.push(b);
                        }
                    }
                }
            }
            if self.ret.matches(rows, i, self.dicts)
                && let Some(b) = self.buckets.index(t)
            {
                returns.push(b);
            }
        }
        cohorts.sort_unstable();
        cohorts.dedup();
        returns.sort_unstable();
        returns.dedup();
        for c in cohorts {
            let e = p.0.entry(c).or_insert_with(|| (0, vec![0; self.periods + 1]));
            e.0 += 1;
            for k in 0..=self.periods {
                let hit = if self.on_or_after {
                    returns.last().is_some_and(|&last| last >= c + k)
                } else {
                    returns.binary_search(&(c + k)).is_ok()
                };
                if hit {
                    e.1[k] += 1;
                    if self.collect == Some((c, k)) {
                        p.1.insert(cid);
                    }
                }
            }
        }
    }

    fn footprint(&self, p: &RetentionPartial) -> usize {
        // The drill-down bitmap (one cell's customers) is bounded by customers / 8 bytes.
        p.0.len() * (64 + 8 * (self.periods + 1))
    }

    fn merge(&self, a: &mut RetentionPartial, b: RetentionPartial) {
        a.1 |= b.1;
        for (c, (size, counts)) in b.0 {
            let e = a.0.entry(c).or_insert_with(|| (0, vec![0; counts.len()]));
            e.0 += size;
            for (x, y) in e.1.iter_mut().zip(counts) {
                *x += y;
            }
        }
    }
}

/// The customers matching `m` (event names or a stage, no property predicate) on each UTC day,
/// from one source's indices; `None` when they cannot say.
fn matcher_days(
    m: &Matcher,
    bitmaps: &crate::index::Bitmaps,
    events: &crate::index::EventDays,
) -> Option<BTreeMap<i32, roaring::RoaringBitmap>> {
    if m.filter.is_some() {
        return None;
    }
    let mut out: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    match (&m.events, m.stage) {
        (Some(ids), None) => {
            for (&(e, d), b) in &events.days {
                if ids.contains(&e) {
                    *out.entry(d).or_default() |= b;
                }
            }
        }
        (None, Some(st)) => {
            for (&(s, d), b) in &bitmaps.stage_days {
                if s == st {
                    *out.entry(d).or_default() |= b;
                }
            }
        }
        (None, None) => out = bitmaps.days.clone(),
        (Some(_), Some(_)) => return None,
    }
    Some(out)
}

/// The customers matching `m` on each UTC day over every source of `input` (erased customers
/// removed, unsealed rows indexed on the fly); `None` when an index cannot say.
fn step_days(m: &Matcher, input: &Input<'_>) -> Option<BTreeMap<i32, roaring::RoaringBitmap>> {
    let mut out: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    for s in &input.sources {
        let owned;
        let (bitmaps, events, hidden) = match s {
            Source::Segment(seg) => (&seg.footer.bitmaps, seg.footer.event_days.as_ref()?, None),
            Source::Masked(seg, m) => (&seg.footer.bitmaps, seg.footer.event_days.as_ref()?, Some(&**m)),
            Source::Memory(cols) => {
                let mut b = crate::index::Bitmaps::default();
                b.add(cols);
                let mut e = crate::index::EventDays::default();
                e.add(cols);
                owned = (b, e);
                (&owned.0, &owned.1, None)
            }
        };
        for (d, b) in matcher_days(m, bitmaps, events)? {
            let x = out.entry(d).or_default();
            match hidden {
                Some(h) => *x |= b - h,
                None => *x |= b,
            }
        }
    }
    Some(out)
}

/// RETENTION of event names or stages, without a filter, in UTC buckets of a day or longer and
/// a whole-day range, as bitmap algebra over the per (event, day) and (stage, day) indices:
/// first-time cohorts are each day's starters minus everyone who started before. `None` when
/// the query or a segment does not qualify (then it is scanned).
fn retention_from_bitmaps(op: &RetentionOp<'_>, input: &Input<'_>) -> Option<RetentionPartial> {
    use roaring::RoaringBitmap;
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    if op.filter.is_some() || !utc || op.buckets.period == Period::Hour {
        return None;
    }
    if op
        .range
        .is_some_and(|(x, y)| !on_day_boundary(x) || !on_day_boundary(y))
    {
        return None;
    }
    // Starters and returners per day.
    let starts = step_days(&op.start, input)?;
    let rets = step_days(&op.ret, input)?;
    let bucket = |d: i32| op.buckets.index(model::first_instant_of_day(d));
    let in_range = |d: i32| {
        op.range
            .is_none_or(|(x, y)| x <= i64::from(d) * model::DAY_US && i64::from(d) * model::DAY_US < y)
    };
    // Cohorts.
    let mut cohorts: BTreeMap<usize, RoaringBitmap> = BTreeMap::new();
    let mut seen = RoaringBitmap::new();
    for (&d, b) in &starts {
        let members = match op.cohorting {
            Cohorting::FirstTime => {
                let first = b - &seen;
                seen |= b;
                first
            }
            Cohorting::Recurring => b.clone(),
        };
        if members.is_empty() || !in_range(d) {
            continue;
        }
        *cohorts.entry(bucket(d)?).or_default() |= members;
    }
    // Returners per bucket, and (for ON_OR_AFTER) from each bucket on.
    let n = op.buckets.len();
    let mut per_bucket = vec![RoaringBitmap::new(); n];
    for (&d, b) in &rets {
        if let Some(k) = bucket(d) {
            per_bucket[k] |= b;
        }
    }
    if op.on_or_after {
        for k in (0..n.saturating_sub(1)).rev() {
            let later = per_bucket[k + 1].clone();
            per_bucket[k] |= later;
        }
    }
    let mut out: RetentionPartial = Default::default();
    for (c, members) in cohorts {
        let mut counts = vec![0u64; op.periods + 1];
        for (k, slot) in counts.iter_mut().enumerate() {
            if let Some(r) = per_bucket.get(c + k) {
                *slot = members.intersection_len(r);
                if op.collect == Some((c, k)) {
                    out.1 = &members & r;
                }
            }
        }
        out.0.insert(c, (members.len(), counts));
    }
    Some(out)
}

fn data_range(input: &Input<'_>, range: Option<(i64, i64)>) -> (i64, i64) {
    match (range, input.ts_range) {
        (Some(r), _) => r,
        (None, Some((lo, hi))) => (lo, hi.saturating_add(1)),
        (None, None) => (0, 1),
    }
}

/// What a CUSTOMERS drill-down wants from a retention query: cohort time, offset, LIMIT.
type RetentionDrill<'q> = (&'q crate::query::ast::TimeLit, u32, Option<u64>);

fn retention(
    r: &crate::query::ast::Retention,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
    drill: Option<RetentionDrill<'_>>,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, r.common.tz.as_ref())?;
    let range = res.range(&r.common.range)?;
    // Buckets cover all history (first-time cohorts look at all of it) plus the offsets.
    let (lo, hi) = match (input.ts_range, range) {
        (Some((a, b)), Some((x, y))) => (a.min(x), b.saturating_add(1).max(y)),
        (Some((a, b)), None) => (a, b.saturating_add(1)),
        (None, Some(r)) => r,
        (None, None) => (0, 1),
    };
    let buckets = Buckets::new(lo, hi, r.periods as usize, r.period, &res.tz, limits::BUCKETS_MAX)
        .map_err(|m| ParseError::new(Span::default(), m))?;
    let op = RetentionOp {
        start: res.step(&r.start)?,
        ret: res.step(&r.ret)?,
        periods: r.periods as usize,
        cohorting: r.cohorting,
        on_or_after: r.on_or_after,
        range,
        filter: r.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
        dicts: input.dicts,
        collect: match drill {
            Some((when, k, _)) => {
                let ts = res.time(when)?;
                let span = match when {
                    crate::query::ast::TimeLit::Text(_, s) | crate::query::ast::TimeLit::UnixMs(_, s) => *s,
                };
                let b = buckets
                    .index(ts)
                    .ok_or_else(|| ParseError::new(span, "no cohort bucket holds this time"))?;
                Some((b, k as usize))
            }
            None => None,
        },
        buckets,
    };
    let p = match retention_from_bitmaps(&op, input) {
        Some(p) => p,
        None => {
            let only = candidates(&op.start, input.bitmaps, None);
            let props = op.filter.is_some() || op.start.uses_props() || op.ret.uses_props();
            run_filtered(&op, input, columns(props), opts, only)?
        }
    };
    if let Some((_, _, limit)) = drill {
        return Ok(customer_table(&p.1, input.dicts, limit, opts.rows_max));
    }
    let p = p.0;
    let latest = input.ts_range.map_or(i64::MIN, |x| x.1);
    let complete = |b: usize| op.buckets.starts.get(b + 1).is_some_and(|&end| end <= latest);
    let mut t = Table::new(&["cohort", "period", "cohort_size", "customers", "rate", "complete"]);
    let mut mean: Vec<(u64, u64)> = vec![(0, 0); op.periods + 1];
    for (c, (size, counts)) in &p {
        for (k, &n) in counts.iter().enumerate() {
            let done = complete(c + k);
            if done {
                mean[k].0 += size;
                mean[k].1 += n;
            }
            t.rows.push(vec![
                Cell::Str(op.buckets.label(*c)),
                Cell::Int(k as i64),
                Cell::Int(*size as i64),
                Cell::Int(n as i64),
                Cell::Rate(n as f64 / *size as f64),
                Cell::Bool(done),
            ]);
        }
    }
    for (k, (size, n)) in mean.iter().enumerate() {
        t.rows.push(vec![
            Cell::Str("mean".into()),
            Cell::Int(k as i64),
            Cell::Int(*size as i64),
            Cell::Int(*n as i64),
            if *size == 0 {
                Cell::Null
            } else {
                Cell::Rate(*n as f64 / *size as f64)
            },
            Cell::Bool(true),
        ]);
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// TREND

struct TrendOp<'a> {
    agg: Agg,
    step: Option<Matcher>,
    filter: Option<CPred>,
    buckets: Buckets,
    /// Buckets before this index only feed wau/mau look-back.
    first: usize,
    /// Events counted (wau/mau also look back before it).
    range: (i64, i64),
    value: Option<(u32, PropType)>,
    by: Option<(u32, PropType)>,
    dicts: &'a Dicts,
}

#[derive(Default, Clone)]
struct AggState {
    events: u64,
    customers: u64,
    sum: f64,
    n: u64,
    min: Option<f64>,
    max: Option<f64>,
    values: Vec<f64>,
}

thread_local! {
    /// Per-worker buffer of one customer's (group, bucket) pairs (reused across customers).
    static SEEN: std::cell::RefCell<Vec<(Option<u64>, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Keyed by (group value slot, bucket); `None` is the null group (or no BY).
/// (group slot, bucket) -> aggregate, and how many percentile values the aggregates hold.
#[derive(Default)]
struct TrendPartial {
    map: HashMap<(Option<u64>, usize), AggState>,
    values: usize,
}

impl std::ops::Deref for TrendPartial {
    type Target = HashMap<(Option<u64>, usize), AggState>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for TrendPartial {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl TrendOp<'_> {
    fn value(&self, rows: &Columns, i: usize) -> Option<f64> {
        let (id, ty) = self.value?;
        let c = rows.prop(id)?;
        if !c.valid[i] {
            return None;
        }
        Some(match ty {
            PropType::I64 => c.vals[i] as i64 as f64,
            PropType::F64 => f64::from_bits(c.vals[i]),
            _ => return None,
        })
    }
}

impl Operator for TrendOp<'_> {
    type Partial = TrendPartial;

    fn customer(&self, p: &mut TrendPartial, rows: &Columns, r: Range<usize>) {
        let mut seen = SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
        seen.clear();
        for i in r {
            if !passes(&self.filter, rows, i, self.dicts)
                || !self.step.as_ref().is_none_or(|s| s.matches(rows, i, self.dicts))
            {
                continue;
            }
            let ts = rows.ts[i];
            let Some(b) = self.buckets.index(ts) else {
                continue;
            };
            // wau/mau look back before FROM; nothing counts from TO on.
            let look_back = matches!(self.agg, Agg::Wau | Agg::Mau) && ts < self.range.0;
            if ts >= self.range.1 || (ts < self.range.0 && !look_back) {
                continue;
            }
            let g = self.by.and_then(|(id, _)| slot(rows, id, i));
            match self.agg {
                Agg::Wau | Agg::Mau => {
                    let days = if self.agg == Agg::Wau { 7 } else { 30 };
                    for d in b..(b + days).min(self.buckets.len()) {
                        if d >= self.first {
                            seen.push((g, d));
                        }
                    }
                }
                Agg::Uniq => {
                    if b >= self.first {
                        seen.push((g, b));
                    }
                }
                _ => {
                    if b < self.first {
                        continue;
                    }
                    let e = p.map.entry((g, b)).or_default();
                    e.events += 1;
                    if let Some(v) = self.value(rows, i) {
                        e.sum += v;
                        e.n += 1;
                        e.min = Some(e.min.map_or(v, |m| m.min(v)));
                        e.max = Some(e.max.map_or(v, |m| m.max(v)));
                        if matches!(self.agg, Agg::Pct(..)) {
                            e.values.push(v);
                            p.values += 1;
                        }
                    }
                }
            }
        }
        seen.sort_unstable();
        seen.dedup();
        for &key in &seen {
            p.entry(key).or_default().customers += 1;
        }
        SEEN.with(|s| *s.borrow_mut() = seen);
    }

    fn footprint(&self, p: &TrendPartial) -> usize {
        p.map.len() * (std::mem::size_of::<((Option<u64>, usize), AggState)>() + 8) + p.values * 8
    }

    fn merge(&self, a: &mut TrendPartial, b: TrendPartial) {
        a.values += b.values;
        for (k, s) in b.map {
            let e = a.entry(k).or_default();
            e.events += s.events;
            e.customers += s.customers;
            e.sum += s.sum;
            e.n += s.n;
            e.min = match (e.min, s.min) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            e.max = match (e.max, s.max) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
            e.values.extend(s.values);
        }
    }
}

fn trend(
    tr: &crate::query::ast::Trend,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, tr.common.tz.as_ref())?;
    let range = res.range(&tr.common.range)?;
    let (lo, hi) = data_range(input, range);
    let lookback = match tr.agg {
        Agg::Wau => 6,
        Agg::Mau => 29,
        _ => 0,
    };
    let first_bucket = Buckets::new(lo, lo + 1, 0, tr.period, &res.tz, 2)
        .map_err(|m| ParseError::new(Span::default(), m))?;
    let start = first_bucket.starts[0]
        - lookback as i64 * model::DAY_US
        - if lookback > 0 { model::DAY_US } else { 0 };
    let mut buckets = Buckets::new(
        start.min(lo),
        hi,
        0,
        tr.period,
        &res.tz,
        limits::BUCKETS_MAX + lookback + 1,
    )
    .map_err(|m| ParseError::new(Span::default(), m))?;
    let first = buckets.index(lo).unwrap_or(0);
    // Drop buckets after the range (a range end on a bucket boundary ends there).
    while buckets.starts.len() > first + 2 && buckets.starts[buckets.starts.len() - 2] >= hi {
        buckets.starts.pop();
    }
    let value = match &tr.agg {
        Agg::Sum(p, s) | Agg::Avg(p, s) | Agg::Min(p, s) | Agg::Max(p, s) | Agg::Pct(_, p, s) => {
            let (id, ty) = res.prop(p, *s)?;
            if !matches!(ty, PropType::I64 | PropType::F64) {
                return Err(
                    ParseError::new(*s, format!("`{p}` is {ty}; this aggregate needs a number")).into(),
                );
            }
            Some((id, ty))
        }
        _ => None,
    };
    let op = TrendOp {
        agg: tr.agg.clone(),
        step: tr.step.as_ref().map(|s| res.step(s)).transpose()?,
        filter: tr.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
        first,
        range: (lo, hi),
        value,
        by: tr.by.as_ref().map(|(n, s, _)| res.prop(n, *s)).transpose()?,
        dicts: input.dicts,
        buckets,
    };
    // Without a predicate, the only properties read are the value and the breakdown.
    let set = if op.filter.is_some() || op.step.as_ref().is_some_and(Matcher::uses_props) {
        columns(true)
    } else {
        let ids: Vec<u32> = op.value.iter().chain(op.by.iter()).map(|&(id, _)| id).collect();
        columns_of(&ids)
    };
    let from_index = match uniq_from_bitmaps(&op, input, (lo, hi)) {
        Some(p) => Some(p),
        None => uniq_by_from_value_index(&op, input, (lo, hi)),
    };
    let p = match from_index {
        Some(p) => p,
        None => match trend_from_rollups(&op, input, (lo, hi), set, opts)? {
            Some(p) => p,
            None => run(&op, input, set, opts)?,
        },
    };
    // Groups, ranked by matching events (then name) for TOP n.
    let by_ty = op.by.map_or(PropType::Str, |b| b.1);
    let mut totals: HashMap<Option<u64>, u64> = HashMap::default();
    for ((g, _), s) in &p.map {
        *totals.entry(*g).or_default() += s.events + s.customers;
    }
    let mut groups: Vec<(String, Option<u64>, u64)> = totals
        .into_iter()
        .map(|(g, n)| (slot_label(g, by_ty, input.dicts), g, n))
        .collect();
    groups.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    if let Some((_, _, Some(top))) = &tr.by {
        groups.truncate(*top as usize);
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<(String, Option<u64>)> = if tr.by.is_none() {
        vec![(String::new(), None)]
    } else {
        groups.into_iter().map(|g| (g.0, g.1)).collect()
    };
    // Refuse before building a table that is over the cap.
    if (op.buckets.len() - op.first).saturating_mul(names.len()) > opts.rows_max {
        return Err(QueryError::TooManyRows(opts.rows_max));
    }
    let mut cols = vec!["bucket", "value"];
    if tr.by.is_some() {
        cols.insert(1, "group");
    }
    let mut t = Table::new(&cols);
    let empty = AggState::default();
    for b in op.first..op.buckets.len() {
        for (g, key) in &names {
            let s = p.get(&(*key, b)).unwrap_or(&empty);
            let v = match &tr.agg {
                Agg::Count => Cell::Int(s.events as i64),
                Agg::Uniq | Agg::Wau | Agg::Mau => Cell::Int(s.customers as i64),
                Agg::Sum(..) => Cell::Float(s.sum),
                Agg::Avg(..) => {
                    if s.n == 0 {
                        Cell::Null
                    } else {
                        Cell::Float(s.sum / s.n as f64)
                    }
                }
                Agg::Min(..) => s.min.map_or(Cell::Null, Cell::Float),
                Agg::Max(..) => s.max.map_or(Cell::Null, Cell::Float),
                Agg::Pct(q, ..) => {
                    let mut v = s.values.clone();
                    if v.is_empty() {
                        Cell::Null
                    } else {
                        v.sort_by(f64::total_cmp);
                        let rank = ((f64::from(*q) / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
                        Cell::Float(v[rank.min(v.len()) - 1])
                    }
                }
            };
            let mut row = vec![Cell::Str(op.buckets.label(b)), v];
            if tr.by.is_some() {
                row.insert(1, Cell::Str(g.clone()));
            }
            t.rows.push(row);
        }
    }
    Ok(t)
}

/// `uniq` as bitmap union cardinalities, when that is exact: UTC calendar buckets (whole UTC
/// days), step ANY or `STAGE s` without predicates, no WHERE or BY, and every bucket either wholly
/// inside the range or holding no event outside it.
/// `TREND count|sum|avg|min|max [OF STAGE s]` by UTC day, week or month without a filter or
/// breakdown, from the segments' per (stage, day) rollups; rows not yet in a segment are
/// scanned. `None` when the query or a segment does not qualify (then everything is scanned):
/// the answer is the same either way (tests/queries.rs checks both against the reference).
fn trend_from_rollups(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    (lo, hi): (i64, i64),
    set: ColumnSet,
    opts: &QueryOptions,
) -> Result<Option<TrendPartial>, QueryError> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    let agg_ok = matches!(
        op.agg,
        Agg::Count | Agg::Sum(..) | Agg::Avg(..) | Agg::Min(..) | Agg::Max(..)
    );
    if !agg_ok || op.filter.is_some() || op.by.is_some() || !utc || op.buckets.period == Period::Hour {
        return Ok(None);
    }
    let stage = match &op.step {
        None => None,
        Some(m) if m.filter.is_none() && m.events.is_none() && m.stage.is_some() => m.stage,
        Some(_) => return Ok(None),
    };
    if !whole_days(input, (lo, hi)) {
        return Ok(None);
    }
    let mut rollups = Vec::new();
    let mut memory = Vec::new();
    for s in &input.sources {
        match s {
            Source::Segment(seg) => match &seg.footer.rollups {
                Some(r) => rollups.push(r),
                None => return Ok(None),
            },
            // Rollups count the rows an erasure hides.
            Source::Masked(..) => return Ok(None),
            Source::Memory(_) => memory.push(s.clone()),
        }
    }
    let mut out = TrendPartial::default();
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    for r in rollups {
        for (&(st, day), cell) in &r.cells {
            if day < d0 || day > d1 || stage.is_some_and(|s| s != st) {
                continue;
            }
            let Some(k) = op.buckets.index(model::first_instant_of_day(day)) else {
                continue;
            };
            if k < op.first {
                continue;
            }
            let e = out.map.entry((None, k)).or_default();
            e.events += cell.events;
            if let Some(a) = op.value.and_then(|(id, _)| cell.props.get(&id)) {
                e.sum += a.sum;
                e.n += a.n;
                e.min = Some(e.min.map_or(a.min, |m| m.min(a.min)));
                e.max = Some(e.max.map_or(a.max, |m| m.max(a.max)));
            }
        }
    }
    if !memory.is_empty() {
        let buffered = Input {
            sources: memory,
            dicts: input.dicts,
            customers: input.customers,
            ts_range: input.ts_range,
            bitmaps: input.bitmaps,
        };
        let p = run(op, &buffered, set, opts)?;
        op.merge(&mut out, p);
    }
    Ok(Some(out))
}

/// `TREND uniq PERIOD day|week|month BY p` (UTC, no OF, no filter, p a string property) from
/// the segments' per (value, day) customer bitmaps; rows not yet sealed are indexed on the fly.
/// `None` when the query or a segment does not qualify (then everything is scanned).
fn uniq_by_from_value_index(
    op: &TrendOp<'_>,
    input: &Input<'_>,
    (lo, hi): (i64, i64),
) -> Option<TrendPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    let (prop, ty) = op.by?;
    if op.agg != Agg::Uniq
        || op.filter.is_some()
        || op.step.is_some()
        || ty != PropType::Str
        || !utc
        || op.buckets.period == Period::Hour
    {
        return None;
    }
    if !whole_days(input, (lo, hi)) {
        return None;
    }
    let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
    // (group, bucket) → customers, unioned over sources.
    let mut cells: BTreeMap<(Option<u64>, usize), roaring::RoaringBitmap> = BTreeMap::new();
    let mut add =
        |slot: Option<u64>, day: i32, b: &roaring::RoaringBitmap, hidden: Option<&roaring::RoaringBitmap>| {
            if day < d0 || day > d1 {
                return;
            }
            let Some(k) = op.buckets.index(model::first_instant_of_day(day)) else {
                return;
            };
            if k < op.first {
                return;
            }
            let cell = cells.entry((slot, k)).or_default();
            match hidden {
                Some(h) => *cell |= b - h,
                None => *cell |= b,
            }
        };
    for s in &input.sources {
        let (seg, hidden) = match s {
            Source::Segment(seg) => (seg, None),
            Source::Masked(seg, m) => (seg, Some(&**m)),
            Source::Memory(cols) => {
                let mut v = crate::index::ValueIndexBuilder::default();
                v.add(cols, &[prop]);
                let v = v.finish();
                if v.overflow.contains(&prop) {
                    return None;
                }
                for (&(p, slot, day), x) in &v.days {
                    if p == prop {
                        add(slot, day, x, None);
                    }
                }
                continue;
            }
        };
        let values = seg.footer.values.as_ref()?;
        if values.overflow.contains(&prop) {
            return None;
        }
        if seg.footer.props.iter().any(|&(id, _)| id == prop) {
            for (&(p, slot, day), x) in values
                .days
                .range((prop, None, i32::MIN)..=(prop, Some(u64::MAX), i32::MAX))
            {
                debug_assert_eq!(p, prop);
                add(slot, day, x, hidden);
            }
        } else {
            for (&day, x) in &seg.footer.bitmaps.days {
                add(None, day, x, hidden);
            }
        }
    }
    let mut out = TrendPartial::default();
    for (key, b) in cells {
        let n = b.len();
        if n > 0 {
            out.map.insert(
                key,
                AggState {
                    customers: n,
                    ..AggState::default()
                },
            );
        }
    }
    Some(out)
}

fn uniq_from_bitmaps(op: &TrendOp<'_>, input: &Input<'_>, (lo, hi): (i64, i64)) -> Option<TrendPartial> {
    let utc = op.buckets.tz == jiff::tz::TimeZone::UTC;
    if op.agg != Agg::Uniq
        || op.filter.is_some()
        || op.by.is_some()
        || !utc
        || op.buckets.period == Period::Hour
    {
        return None;
    }
    let stage = match &op.step {
        None => None,
        Some(m) if m.filter.is_none() && m.events.is_none() => m.stage,
        Some(_) => return None,
    };
    if !whole_days(input, (lo, hi)) {
        return None;
    }
    let b = input.bitmaps;
    let mut out = TrendPartial::default();
    for k in op.first..op.buckets.len() {
        let (s, e) = (op.buckets.starts[k].max(lo), op.buckets.starts[k + 1].min(hi));
        if s >= e {
            continue;
        }
        let mut u = roaring::RoaringBitmap::new();
        for day in model::day_of(s)..=model::day_of(e - 1) {
            let x = match stage {
                None => b.days.get(&day),
                Some(st) => b.stage_days.get(&(st, day)),
            };
            if let Some(x) = x {
                u |= x;
            }
        }
        if !u.is_empty() {
            out.insert(
                (None, k),
                AggState {
                    customers: u.len(),
                    ..AggState::default()
                },
            );
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// CUSTOMERS

/// The customers of a set: columns `total` (the full count, on every row) and `customer`
/// (external id), in internal-id order, at most `limit` rows; an empty set is one row (0, NULL).
/// The customers of `set` (at most `limit`, and never more than one row past the cap, which
/// `execute` then refuses).
fn customer_table(set: &roaring::RoaringBitmap, dicts: &Dicts, limit: Option<u64>, rows_max: usize) -> Table {
    let mut t = Table::new(&["total", "customer"]);
    let total = set.len() as i64;
    let take = limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(rows_max.saturating_add(1));
    for cid in set.iter().take(take) {
        t.rows.push(vec![
            Cell::Int(total),
            Cell::Str(dicts.customers.name(cid).unwrap_or("?").to_owned()),
        ]);
    }
    if t.rows.is_empty() {
        t.rows.push(vec![Cell::Int(total), Cell::Null]);
    }
    t
}

/// Customers with an event of `stage` in the range.
struct StageCustomersOp {
    stage: u8,
    range: Option<(i64, i64)>,
}

impl Operator for StageCustomersOp {
    type Partial = roaring::RoaringBitmap;

    fn customer(&self, p: &mut roaring::RoaringBitmap, rows: &Columns, r: Range<usize>) {
        let cid = rows.cid[r.start];
        let hit = r.into_iter().any(|i| {
            rows.stage[i] == self.stage
                && self
                    .range
                    .is_none_or(|(lo, hi)| lo <= rows.ts[i] && rows.ts[i] < hi)
        });
        if hit {
            p.insert(cid);
        }
    }

    fn footprint(&self, _: &roaring::RoaringBitmap) -> usize {
        // At most customers / 8 bytes plus container headers: never more than the index holds.
        0
    }

    fn merge(&self, a: &mut roaring::RoaringBitmap, b: roaring::RoaringBitmap) {
        *a |= b;
    }
}

fn customers(
    c: &crate::query::ast::Customers,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    use crate::query::ast::Drill;
    match &c.drill {
        Drill::Funnel {
            funnel: f,
            step,
            dropped,
        } => funnel(f, text, input, opts, Some((*step, *dropped, c.limit))),
        Drill::Retention {
            retention: r,
            cohort,
            period,
        } => retention(r, text, input, opts, Some((cohort, *period, c.limit))),
        Drill::Stage { stage, common } => {
            let res = Resolver::new(input.dicts, text, None)?;
            let range = res.range(&common.range)?;
            let code = stage.code();
            let set = match range {
                // Straight from the bitmaps: the stage bitmap, or (stage, UTC day) bitmaps when
                // the range is whole UTC days.
                None => input.bitmaps.stages[code as usize].clone(),
                Some((lo, hi)) if on_day_boundary(lo) && on_day_boundary(hi) => {
                    let mut u = roaring::RoaringBitmap::new();
                    for day in model::day_of(lo)..model::day_of(hi) {
                        if let Some(x) = input.bitmaps.stage_days.get(&(code, day)) {
                            u |= x;
                        }
                    }
                    u
                }
                Some(_) => {
                    let op = StageCustomersOp { stage: code, range };
                    let only = Some(input.bitmaps.stages[code as usize].clone());
                    run_filtered(&op, input, columns(false), opts, only)?
                }
            };
            Ok(customer_table(&set, input.dicts, c.limit, opts.rows_max))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EXPLAIN

fn ts_text(us: i64) -> String {
    Cell::Time(us).to_string()
}

/// Why `op` stops before step `m` (1-based) for this customer (events `idx` of `rows`).
fn why_not(
    op: &FunnelOp<'_>,
    rows: &Columns,
    idx: &[usize],
    o: &FunnelOutcome,
    m: usize,
    dicts: &Dicts,
) -> String {
    let step = &op.steps[m - 1];
    let name = |i: usize| dicts.events.name(rows.event[i]).unwrap_or("?").to_owned();
    let matching: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| step.matches(rows, i, dicts))
        .collect();
    if m == 1 {
        return if matching.is_empty() {
            format!("no event matches `{}`", step.label)
        } else {
            format!(
                "no `{}` event in FROM .. TO (first one at {})",
                step.label,
                ts_text(rows.ts[matching[0]])
            )
        };
    }
    if matching.is_empty() {
        return format!("no event matches `{}`", step.label);
    }
    let level = |variant: &FunnelOp<'_>| {
        let mut scratch = Scratch::default();
        variant.outcome(rows, idx, &mut scratch).level
    };
    let prev_at = o.at[m - 1].unwrap_or(0);
    let start = rows.ts[prev_at] - o.times[m - 1].unwrap_or(0);
    let next_after = matching
        .iter()
        .copied()
        .find(|&i| (rows.ts[i], i) > (rows.ts[prev_at], prev_at));
    if level(&FunnelOp {
        within: i64::MAX,
        ..op.clone()
    }) >= m
    {
        let when = next_after.map_or(String::new(), |i| {
            format!("; the next `{}` is at {}", step.label, ts_text(rows.ts[i]))
        });
        return format!(
            "window expired at {} (chain started {}){when}",
            ts_text(start.saturating_add(op.within)),
            ts_text(start)
        );
    }
    if op.mode == FunnelMode::Strict
        && level(&FunnelOp {
            mode: FunnelMode::Ordered,
            ..op.clone()
        }) >= m
    {
        let between = idx
            .iter()
            .copied()
            .find(|&i| (rows.ts[i], i) > (rows.ts[prev_at], prev_at));
        return match between {
            Some(i) => format!("strict order broken by `{}` at {}", name(i), ts_text(rows.ts[i])),
            None => "strict order broken".into(),
        };
    }
    if !op.excludes.is_empty() {
        let free = FunnelOp {
            excludes: Vec::new(),
            caps: vec![op.steps.len()],
            ..op.clone()
        };
        if level(&free) >= m {
            let hit = idx.iter().copied().find(|&i| {
                (rows.ts[i], i) > (start, 0) && op.excludes.iter().any(|(x, _, _)| x.matches(rows, i, dicts))
            });
            return match hit {
                Some(i) => format!(
                    "excluded event `{}` at {} lies inside the chain",
                    name(i),
                    ts_text(rows.ts[i])
                ),
                None => "an excluded event lies inside the chain".into(),
            };
        }
    }
    if op.ties_strict
        && level(&FunnelOp {
            ties_strict: false,
            ..op.clone()
        }) >= m
    {
        let tie = matching.iter().copied().find(|&i| rows.ts[i] == rows.ts[prev_at]);
        return match tie {
            Some(i) => format!(
                "tie policy: `{}` at {} has the same timestamp as step {} (TIES STRICT)",
                step.label,
                ts_text(rows.ts[i]),
                m - 1
            ),
            None => "tie policy (TIES STRICT) forbids equal timestamps".into(),
        };
    }
    match next_after {
        None => format!("`{}` happens only before step {} was reached", step.label, m - 1),
        Some(_) => format!("no chain reaches step {m} under these rules"),
    }
}

fn explain(e: &crate::query::ast::Explain, text: &str, input: &Input<'_>) -> Result<Table, QueryError> {
    let f = &e.funnel;
    if f.mode == FunnelMode::Unordered {
        return Err(ParseError::new(e.customer.1, "EXPLAIN supports ORDERED and STRICT funnels").into());
    }
    let res = Resolver::new(input.dicts, text, f.common.tz.as_ref())?;
    let op = funnel_op(f, &res, input)?;
    let Some(cid) = input.dicts.customers.get(&e.customer.0) else {
        return Err(ParseError::new(e.customer.1, format!("unknown customer '{}'", e.customer.0)).into());
    };
    let mut rows = Columns::default();
    let mut merge = Merge::new(input.sources.clone(), ColumnSet::ALL).with_customers(cid, cid);
    let mut block = Columns::default();
    while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
        rows.extend_from(&block);
    }
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| passes(&op.filter, &rows, i, input.dicts))
        .collect();
    let o = op.outcome(&rows, &idx, &mut Scratch::default());
    let mut t = Table::new(&["step", "event", "status", "at", "time_from_start_s", "reason"]);
    for (k, step) in op.steps.iter().enumerate().map(|(k, s)| (k + 1, s)) {
        let row = if k <= o.level {
            let at = o.at[k].unwrap_or(0);
            vec![
                Cell::Int(k as i64),
                Cell::Str(step.label.clone()),
                Cell::Str("reached".into()),
                Cell::Time(rows.ts[at]),
                o.times[k].map_or(Cell::Null, |x| Cell::Float(x as f64 / 1e6)),
                Cell::Str(format!(
                    "first completed by `{}`",
                    input.dicts.events.name(rows.event[at]).unwrap_or("?")
                )),
            ]
        } else {
            let reason = if k == o.level + 1 {
                why_not(&op, &rows, &idx, &o, k, input.dicts)
            } else {
                format!("step {} was not reached", k - 1)
            };
            vec![
                Cell::Int(k as i64),
                Cell::Str(step.label.clone()),
                Cell::Str("not reached".into()),
                Cell::Null,
                Cell::Null,
                Cell::Str(reason),
            ]
        };
        t.rows.push(row);
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// TIMELINE

fn timeline(
    tl: &crate::query::ast::Timeline,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let res = Resolver::new(input.dicts, text, tl.common.tz.as_ref())?;
    let range = res.range(&tl.common.range)?;
    let filter = tl.common.filter.as_ref().map(|p| res.pred(p)).transpose()?;
    let mut t = Table::new(&["ts", "event", "stage", "properties"]);
    let Some(cid) = input.dicts.customers.get(&tl.customer.0) else {
        return Ok(t);
    };
    let mut merge = Merge::new(input.sources.clone(), ColumnSet::ALL).with_customers(cid, cid);
    let mut block = Columns::default();
    while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
        for i in 0..block.len() {
            let ts = block.ts[i];
            if range.is_some_and(|(lo, hi)| ts < lo || ts >= hi) || !passes(&filter, &block, i, input.dicts) {
                continue;
            }
            let mut props: Vec<String> = Vec::new();
            for c in &block.props {
                if c.valid[i] {
                    let name = input.dicts.props.name(c.id).unwrap_or("?");
                    props.push(format!(
                        "{name}={}",
                        prop_label(&block, Some((c.id, c.ty)), i, input.dicts)
                    ));
                }
            }
            props.sort();
            if t.rows.len() == opts.rows_max {
                return Err(QueryError::TooManyRows(opts.rows_max));
            }
            t.rows.push(vec![
                Cell::Time(ts),
                Cell::Str(input.dicts.events.name(block.event[i]).unwrap_or("?").to_owned()),
                Stage::from_code(block.stage[i]).map_or(Cell::Null, |s| Cell::Str(s.name().to_owned())),
                Cell::Str(props.join(", ")),
            ]);
        }
    }
    Ok(t)
}

/// Running statements: `snapshot.query("FUNNEL visit -> purchase WITHIN 7d")`. On a [`Db`](crate::db::Db)
/// (crate::db::Db), a query runs on a fresh snapshot, and `FORGET CUSTOMER 'id'` erases.
pub trait Query {
    /// Parses, plans and runs `text` with default options.
    fn query(&self, text: &str) -> Result<Table, QueryError>;
    /// Parses, plans and runs `text`.
    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError>;
}

impl Query for crate::db::Db {
    fn query(&self, text: &str) -> Result<Table, QueryError> {
        self.query_with(text, &QueryOptions::default())
    }

    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError> {
        let stmt = crate::query::parse(text)?;
        let Statement::Forget(f) = &stmt else {
            return self.snapshot().query_with(text, opts);
        };
        let erased = self.forget_customer(&f.customer.0)?;
        let mut t = Table::new(&["customer", "events_erased"]);
        t.rows
            .push(vec![Cell::Str(f.customer.0.clone()), Cell::Int(erased as i64)]);
        Ok(t)
    }
}

impl Query for crate::db::Snapshot {
    fn query(&self, text: &str) -> Result<Table, QueryError> {
        self.query_with(text, &QueryOptions::default())
    }

    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError> {
        let stmt = crate::query::parse(text)?;
        let dicts = self.dicts();
        let input = Input {
            sources: self.sources(),
            dicts: &dicts,
            customers: dicts.customers.len() as u32,
            ts_range: self.ts_range(),
            bitmaps: self.bitmaps(),
        };
        execute(&stmt, text, &input, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
        /// The median and mean of values in parts, bracketed by a sample, equal those of the
        /// values gathered and selected whole — with a margin too narrow to hold (0: the
        /// bracket is one sample value; the whole selection then answers) and with the one
        /// queries use.
        #[test]
        fn bracketed_median_equals_whole_selection(
            parts in proptest::collection::vec(
                (0usize..12_000, 1i64..1_000_000_000_000, proptest::prelude::any::<u64>()),
                0..4,
            ),
            margin in proptest::sample::select(vec![0usize, 1, 128]),
            sample in proptest::sample::select(vec![64usize, 4096]),
        ) {
            // Values from a small or a wide range (ties or none), from a seeded generator.
            let parts: Vec<Vec<i64>> = parts
                .iter()
                .map(|&(n, range, seed)| {
                    let mut x = seed | 1;
                    (0..n)
                        .map(|_| {
                            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            ((x >> 20) % range as u64) as i64 - range / 3
                        })
                        .collect()
                })
                .collect();
            let refs: Vec<&[i64]> = parts.iter().map(|p| &p[..]).collect();
            let mut all = parts.concat();
            let want = median_mean(&mut all);
            proptest::prop_assert_eq!(median_mean_bracketed(&refs, sample, margin), want.clone());
            if let Some(got) = bracketed(&refs, all.len(), sample, margin) {
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    /// With the parameters queries use, a bracket answers (the gathering fallback is the rare
    /// case) for values in two workers' parts, odd and even in number, few distinct and many.
    #[test]
    fn bracket_answers_for_typical_samples() {
        let mut x = 11u64;
        for (n, range) in [
            (300_001usize, 600_000_000_000u64),
            (300_000, 600_000_000_000),
            (200_000, 50),
        ] {
            let v: Vec<i64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((x >> 20) % range) as i64
                })
                .collect();
            let (a, b) = v.split_at(n / 3);
            let got = bracketed(&[a, b], n, 4096, 128);
            assert_eq!(got, Some(median_mean(&mut v.clone())), "{n} values below {range}");
        }
    }

    /// A bracket whose top is exactly one rank below the median misses (the median is not
    /// among the kept values), and the whole selection answers.
    #[test]
    fn bracket_ending_one_rank_below_the_median_is_a_miss() {
        // 11 values; a sample of every 2nd ([0, 2, 4, 6, 50, 51]) brackets [4, 6], which holds
        // ranks 3–4 (0, 1 and 2 are below it): the median, rank 5, is the first rank above.
        let v = [0i64, 1, 2, 60, 4, 61, 6, 62, 50, 63, 51];
        assert_eq!(bracketed(&[&v], v.len(), 5, 0), None);
        let want = median_mean(&mut v.to_vec());
        assert_eq!(want.0, Cell::Float(50.0 / 1e6));
        assert_eq!(median_mean_bracketed(&[&v], 5, 0), want);
    }

    /// Brackets that end right at a median rank, below or above (sorted runs of consecutive
    /// values, split at every point of a range, with the narrowest margin): the bracket
    /// answers only when it holds both middle values, and the answer is exact either way.
    #[test]
    fn brackets_ending_at_the_median_ranks() {
        let (mut answered, mut missed) = (0, 0);
        for n in BRACKET_FROM..BRACKET_FROM + 300 {
            let v: Vec<i64> = (0..n as i64).map(|i| i * 3 % (n as i64)).collect();
            let mut sorted = v.clone();
            let want = median_mean(&mut sorted);
            for cut in [0, n / 3, n / 2 + 1] {
                let (a, b) = v.split_at(cut);
                match bracketed(&[a, b], n, 64, 0) {
                    Some(got) => {
                        assert_eq!(got, want, "{n} values cut at {cut}");
                        answered += 1;
                    }
                    None => missed += 1,
                }
                assert_eq!(median_mean_bracketed(&[a, b], 64, 0), want);
            }
        }
        assert!(answered > 0 && missed > 0, "{answered} answered, {missed} missed");
    }

    /// Medians and means taken on several threads equal those taken one set at a time, in
    /// the sets' order.
    #[test]
    fn medians_means_on_threads_equal_serial() -> Result<(), QueryError> {
        let mut x = 7u64;
        let sets: Vec<Vec<i64>> = [60_000usize, 0, 45_001, 1, 70_000]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (x >> 24) as i64 % 1_000_000_007
                    })
                    .collect()
            })
            .collect();
        let serial: Vec<(Cell, Cell)> = sets.clone().iter_mut().map(|v| median_mean(v)).collect();
        // Each set as a worker's samples with others' parts merged in (uneven, some empty).
        let samples: Vec<Samples> = sets
            .iter()
            .map(|v| {
                let mut s = Samples::default();
                for (i, chunk) in v.chunks(v.len().div_ceil(3).max(1)).enumerate() {
                    let part = Samples {
                        head: chunk.to_vec(),
                        more: vec![Vec::new()],
                    };
                    if i == 0 {
                        s = part;
                    } else {
                        s.append(part);
                    }
                }
                s
            })
            .collect();
        for threads in [1, 2, 3, 8] {
            let got = medians_means(samples.iter().collect(), threads)?;
            assert_eq!(got, serial, "{threads} threads");
        }
        Ok(())
    }

    /// Counts rows, and panics on the customer `bad`.
    struct PanicsOn {
        bad: u32,
    }

    impl Operator for PanicsOn {
        type Partial = u64;

        fn customer(&self, p: &mut u64, rows: &Columns, r: Range<usize>) {
            assert!(rows.cid[r.start] != self.bad, "customer {} is poison", self.bad);
            *p += r.len() as u64;
        }

        fn merge(&self, a: &mut u64, b: u64) {
            *a += b;
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
        };
        let opts = QueryOptions {
            threads: 2,
            ..QueryOptions::default()
        };
        let all = columns(false);
        // Without the poison customer every row is counted, across both workers.
        let fine = run(&PanicsOn { bad: 99 }, &input, all, &opts);
        assert_eq!(fine.ok(), Some(40));
        match run(&PanicsOn { bad: 7 }, &input, all, &opts) {
            Err(QueryError::Internal(msg)) => assert!(msg.contains("customer 7 is poison"), "{msg}"),
            Err(e) => panic!("expected an internal error, got {e}"),
            Ok(n) => panic!("expected an internal error, got {n} rows"),
        }
        let e = QueryError::Internal("x".into()).to_string();
        assert!(e.contains("internal error") && e.contains("please report"), "{e}");
    }
}
