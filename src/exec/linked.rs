//! Identity links in a statement's scan (docs/QUERY.md, "Identity links"). A linked customer is
//! one customer, its known id, whose journey is the time-ordered merge of its own events and
//! its anonymous ids'. The scan therefore reads in two parts whose states merge like any two
//! workers' (the protocol's `merge` is exact and order-free):
//! - everyone outside the links, exactly as without links: the input with every linked id
//!   masked ([`outside`]), through the operator's prefilter and the parallel scan;
//! - each known id with its anonymous ids ([`groups`]): their rows read in one pass, merged into
//!   one journey under the known id, and folded by the operator's `customer`.
//!
//! Events of one journey that share a timestamp keep the order of their ids' ranks (anonymous
//! ids by internal id, the known id last) and, within one id, their own order: an order that
//! no flush or compaction changes.
//!
//! Uses: `db`, `index`, `merge`, `model`, `segment`; rooms `operator`, `options`.

use crate::db::{Journeys, Links};
use crate::exec::operator::{Budget, Operator, rows_footprint};
use crate::exec::options::{Input, QueryError, QueryOptions, Restriction};
use crate::index::Bitmaps;
use crate::merge::{Runs, Source};
use crate::model::Columns;
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The input without the linked customers: its sources and bitmaps with every linked id
/// masked, and the scan restricted to the others.
pub(super) struct Outside {
    pub(super) sources: Vec<Source>,
    pub(super) bitmaps: Arc<Bitmaps>,
    pub(super) restriction: Restriction,
}

/// The rows of `rows` whose customer `keep` admits (rows stay in their order).
pub(super) fn rows_of(rows: &Columns, keep: impl Fn(u32) -> bool) -> Columns {
    let mut out = Columns::default();
    let mut start = 0;
    while start < rows.len() {
        let cid = rows.cid[start];
        let end = start + rows.cid[start..].partition_point(|&c| c == cid);
        if keep(cid) {
            out.extend_from(&rows.slice(start..end));
        }
        start = end;
    }
    out
}

/// `input` with the ids `links` names masked (see [`Outside`]).
pub(super) fn outside(input: &Input<'_>, links: &Links) -> Outside {
    let hidden = Arc::new(links.members().clone());
    let sources = input
        .sources
        .iter()
        .map(|source| match source {
            Source::Segment(seg) => Source::Masked(seg.clone(), hidden.clone()),
            Source::Masked(seg, mask) => Source::Masked(seg.clone(), Arc::new(&**mask | &*hidden)),
            Source::Memory(rows) => Source::Memory(Arc::new(rows_of(rows, |cid| !hidden.contains(cid)))),
        })
        .collect();
    let mask = || {
        let mut bitmaps = input.bitmaps.clone();
        bitmaps.remove_customers(&hidden);
        Arc::new(bitmaps)
    };
    // Masking every bitmap of a large database takes milliseconds: kept per snapshot (a
    // restricted input's bitmaps are the restriction's own, masked each time).
    let bitmaps = match (input.snapshot, &input.restriction) {
        (Some(snapshot), None) => snapshot.cached_bitmaps(LINKS_KEY).unwrap_or_else(|| {
            let bitmaps = mask();
            snapshot.cache_bitmaps(LINKS_KEY, bitmaps.clone());
            bitmaps
        }),
        _ => mask(),
    };
    let restriction = match &input.restriction {
        Some(restriction) => Restriction {
            admitted: Arc::new(&*restriction.admitted - &*hidden),
            sources: restriction.sources.clone(),
        },
        None => {
            let mut admitted = RoaringBitmap::new();
            admitted.insert_range(0..input.customers);
            admitted -= &*hidden;
            Restriction {
                admitted: Arc::new(admitted),
                sources: input.sources.clone(),
            }
        }
    };
    Outside {
        sources,
        bitmaps,
        restriction,
    }
}

/// The key of the masked bitmaps in the snapshot's cache (cohort keys are names and cannot
/// start with a control character).
const LINKS_KEY: &str = "\u{1}links";

/// How often the group pass checks for cancellation (in customers read).
const CANCEL_EVERY: u32 = 4096;

/// The state of `op` over the linked customers of `input` (the known ids a restriction admits,
/// and only those the operator reads when it reads a few).
pub(super) fn groups<O: Operator>(
    op: &O,
    input: &Input<'_>,
    links: &Links,
    opts: &QueryOptions,
) -> Result<O::Partial, QueryError> {
    let (sources, admitted) = match &input.restriction {
        Some(restriction) => (restriction.sources.clone(), Some(&*restriction.admitted)),
        None => (input.sources.clone(), None),
    };
    let every = links.groups();
    let set = op.columns();
    let Some(reads) = op.reads_only() else {
        // Every linked customer's journey in the sealed segments, kept per version (statements
        // after the first read no block for them); rows not yet sealed are read each time and
        // merged in.
        let (fresh, sealed): (Vec<Source>, Vec<Source>) = sources
            .into_iter()
            .partition(|source| matches!(source, Source::Memory(_)));
        let journeys_of = |sources: Vec<Source>| -> Result<Journeys, QueryError> {
            let mut journeys = Journeys::default();
            let budget = Budget::new(opts.memory_max);
            read_journeys(sources, set, every, (opts, &budget), |rows, run| {
                if let Some(&known) = rows.cid.get(run.start) {
                    let start = journeys.rows.len() as u32;
                    journeys.rows.extend_from_range(rows, run);
                    journeys.groups.push((known, start, journeys.rows.len() as u32));
                }
                rows_footprint(&journeys.rows)
            })?;
            journeys.groups.sort_unstable();
            Ok(journeys)
        };
        let kept = match input.snapshot.and_then(|snapshot| snapshot.cached_journeys(set)) {
            Some(journeys) => journeys,
            None => {
                let journeys = Arc::new(journeys_of(sealed)?);
                if let Some(snapshot) = input.snapshot {
                    snapshot.cache_journeys(set, journeys.clone(), rows_footprint(&journeys.rows));
                }
                journeys
            }
        };
        let fresh = if fresh.is_empty() {
            Journeys::default()
        } else {
            journeys_of(fresh)?
        };
        return fold(op, (&kept, &fresh), admitted, opts);
    };
    let selected: Vec<(u32, Vec<u32>)> = (every.iter())
        .filter(|(known, _)| admitted.is_none_or(|set| set.contains(*known)) && reads.contains(*known))
        .cloned()
        .collect();
    let mut partial = O::Partial::default();
    let budget = Budget::new(opts.memory_max);
    read_journeys(sources, set, &selected, (opts, &budget), |rows, run| {
        op.customer(&mut partial, rows, run);
        op.footprint(&partial)
    })?;
    Ok(partial)
}

/// Folds the journeys of the known ids `admitted` admits (all when `None`) into `op`'s state,
/// on every worker thread: the kept journeys of the sealed rows, each merged with the same
/// customer's `fresh` journey (rows not yet sealed) when it has one, then the fresh journeys of
/// customers without sealed rows.
fn fold<O: Operator>(
    op: &O,
    (kept, fresh): (&Journeys, &Journeys),
    admitted: Option<&RoaringBitmap>,
    opts: &QueryOptions,
) -> Result<O::Partial, QueryError> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 64)
    .min(kept.groups.len().max(1));
    let per = kept.groups.len().div_ceil(threads).max(1);
    let fold_chunk = |chunk: &[(u32, u32, u32)]| -> Result<O::Partial, QueryError> {
        let mut partial = O::Partial::default();
        let mut merged = Columns::default();
        for (at, &(known, start, end)) in chunk.iter().enumerate() {
            if at % CANCEL_EVERY as usize == 0 && opts.cancel.load(Ordering::Relaxed) {
                return Err(QueryError::Cancelled);
            }
            if admitted.is_some_and(|set| !set.contains(known)) {
                continue;
            }
            let run = start as usize..end as usize;
            match fresh.find(known) {
                None => op.customer(&mut partial, &kept.rows, run),
                Some(later) => {
                    merged.clear();
                    merged.extend_from_range(&kept.rows, run);
                    merged.extend_from_range(&fresh.rows, later);
                    // Unsealed rows carry every column, sealed ones those read: a column only
                    // some rows have was not asked for.
                    let rows = merged.len();
                    // (Timestamps are always read.)
                    if merged.event.len() != rows {
                        merged.event.clear();
                    }
                    if merged.stage.len() != rows {
                        merged.stage.clear();
                    }
                    let merged = in_time_order(&merged);
                    op.customer(&mut partial, &merged, 0..merged.len());
                }
            }
        }
        Ok(partial)
    };
    let chunks: Vec<&[(u32, u32, u32)]> = kept.groups.chunks(per).collect();
    let parts: Vec<Result<O::Partial, QueryError>> = if chunks.len() <= 1 {
        chunks.into_iter().map(fold_chunk).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (chunks.into_iter())
                .map(|chunk| scope.spawn(move || fold_chunk(chunk)))
                .collect();
            (handles.into_iter())
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(QueryError::Internal(
                            "a worker folding linked journeys panicked".into(),
                        ))
                    })
                })
                .collect()
        })
    };
    let mut total = O::Partial::default();
    for part in parts {
        op.merge(&mut total, part?);
    }
    for &(known, start, end) in &fresh.groups {
        if kept.find(known).is_none() && admitted.is_none_or(|set| set.contains(known)) {
            op.customer(&mut total, &fresh.rows, start as usize..end as usize);
        }
    }
    Ok(total)
}

/// `rows` (one customer's, each part in time order) in time order; equal times keep their order
/// in `rows`.
fn in_time_order(rows: &Columns) -> Columns {
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_by_key(|&row| rows.ts[row as usize]);
    rows.gather(&order)
}

/// Reads the rows of `groups` (known id, its anonymous ids) from `sources` in one pass and
/// hands each group's merged journey (under the known id) to `sink`, which returns the bytes
/// it holds (charged to the query's budget with the rows still held here).
fn read_journeys(
    sources: Vec<Source>,
    set: ColumnSet,
    groups: &[(u32, Vec<u32>)],
    (opts, budget): (&QueryOptions, &Budget),
    mut sink: impl FnMut(&Columns, Range<usize>) -> usize,
) -> Result<(), QueryError> {
    let mut read = RoaringBitmap::new();
    for (known, ids) in groups {
        read.insert(*known);
        read.extend(ids.iter().copied());
    }
    let (Some(first), Some(last)) = (read.min(), read.max()) else {
        return Ok(());
    };
    // A group is complete once the scan has passed its largest id (ids come in order).
    let mut completion: Vec<(u32, usize)> = (groups.iter().enumerate())
        .map(|(at, (known, ids))| (ids.iter().copied().fold(*known, u32::max), at))
        .collect();
    completion.sort_unstable();
    let mut reported = 0usize;
    let mut sunk = 0usize;
    // Every read row goes into one arena (no allocation per customer); `spans` finds each
    // id's rows in it until its group is folded.
    let mut held = Held {
        first,
        spans: vec![NOT_HELD; (last - first) as usize + 1],
        ..Held::default()
    };
    let mut next = 0usize;
    let read = Arc::new(read);
    let mut runs = Runs::new(sources, set, (first, last), Some(read.clone()));
    let mut customers = 0u32;
    let mut carry = Columns::default();
    while let Some(cid) = runs.next_customer()? {
        customers = customers.wrapping_add(1);
        if customers.is_multiple_of(CANCEL_EVERY) && opts.cancel.load(Ordering::Relaxed) {
            return Err(QueryError::Cancelled);
        }
        while let Some(&(end, at)) = completion.get(next)
            && end < cid
        {
            sunk = held.journey(&groups[at], &mut sink).unwrap_or(sunk);
            next += 1;
        }
        if !read.contains(cid) {
            continue;
        }
        let start = held.arena.len() as u32;
        match runs.single() {
            Some((columns, range)) => held.arena.extend_from_range(columns, range),
            None => {
                runs.gather(&mut carry);
                held.arena.extend_from(&carry);
            }
        }
        let end = held.arena.len() as u32;
        held.hold(cid, (start, end));
        budget.report(&mut reported, sunk + rows_footprint(&held.arena))?;
    }
    for &(_, at) in &completion[next..] {
        sunk = held.journey(&groups[at], &mut sink).unwrap_or(sunk);
    }
    budget.report(&mut reported, sunk)?;
    Ok(())
}

/// A span of [`Held::spans`] for an id whose rows are not held.
const NOT_HELD: (u32, u32) = (u32::MAX, u32::MAX);

/// The rows read for groups not yet folded.
#[derive(Default)]
struct Held {
    /// Every row read since the arena was last emptied, each id's rows together.
    arena: Columns,
    /// The smallest id read: `spans[id - first]` is id's.
    first: u32,
    /// Each id's rows in `arena` until its group is folded ([`NOT_HELD`] otherwise).
    spans: Vec<(u32, u32)>,
    /// How many ids have rows held.
    pending: usize,
    /// The held spans of a merged journey's ids, in rank order.
    parts: Vec<(u32, u32)>,
    /// A merged journey being folded.
    journey: Columns,
    /// Arena rows of a merged journey, in journey order.
    order: Vec<u32>,
}

impl Held {
    /// Keeps `span` of the arena as `cid`'s rows.
    fn hold(&mut self, cid: u32, span: (u32, u32)) {
        if let Some(slot) = self.spans.get_mut((cid - self.first) as usize) {
            *slot = span;
            self.pending += 1;
        }
    }

    /// The span held for `cid`, forgotten.
    fn take(&mut self, cid: u32) -> Option<(u32, u32)> {
        let slot = self.spans.get_mut(cid.checked_sub(self.first)? as usize)?;
        let span = std::mem::replace(slot, NOT_HELD);
        (span != NOT_HELD).then(|| {
            self.pending -= 1;
            span
        })
    }

    /// Hands one known id's journey — its anonymous ids' rows and its own, merged by time (ties
    /// by rank: anonymous ids ascending, the known id last) under the known id — to `sink`, and
    /// forgets those rows; what `sink` returns, when it was called.
    fn journey(
        &mut self,
        (known, anonymous): &(u32, Vec<u32>),
        sink: &mut impl FnMut(&Columns, Range<usize>) -> usize,
    ) -> Option<usize> {
        let known = *known;
        let mut parts = std::mem::take(&mut self.parts);
        parts.clear();
        parts.extend((anonymous.iter().chain([&known])).filter_map(|&id| self.take(id)));
        let sunk = match parts[..] {
            [] => None,
            [(start, end)] => {
                // One id's rows: handed over where they lie, under the known id.
                let run = start as usize..end as usize;
                self.arena.cid[run.clone()].fill(known);
                Some(sink(&self.arena, run))
            }
            _ => {
                self.order.clear();
                for &(start, end) in &parts {
                    self.order.extend(start..end);
                }
                // Stable: equal times keep the ids' rank order and each id's own order.
                let arena = &self.arena;
                self.order.sort_by_key(|&row| arena.ts[row as usize]);
                self.journey = arena.gather(&self.order);
                self.journey.cid.fill(known);
                Some(sink(&self.journey, 0..self.journey.len()))
            }
        };
        self.parts = parts;
        if self.pending == 0 {
            // Nothing pending: the arena starts over (keeping its capacity).
            self.arena.clear();
        }
        sunk
    }
}
