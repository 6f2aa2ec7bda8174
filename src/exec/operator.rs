//! The protocol every statement runs through, documented once here.
//!
//! Uses: `model`, `result`, `segment`; rooms `options`, `scan`.

use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::model::Columns;
use crate::result::Table;
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// Hash maps of per-worker partial states (foldhash: the keys are ids and bucket numbers, not
/// attacker-chosen text, and SipHash showed up at 15 % of a TREND profile).
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What the bitmap indices (and roll-ups) answer before any row is read.
pub(super) enum Prefilter<P> {
    /// The indices answer the whole statement exactly: no row is read.
    Answered(P),
    /// Only the customers in `only` (every customer when `None`) can change the answer;
    /// `counted` holds what the indices answered for the others, merged with the scan's state.
    /// With `unsealed_only`, the indices answered for every sealed row, and only the rows not
    /// yet in a segment are scanned.
    Scan {
        only: Option<RoaringBitmap>,
        unsealed_only: bool,
        counted: P,
    },
}

impl<P: Default> Prefilter<P> {
    /// Every customer is scanned; the indices answer nothing.
    pub(super) fn everyone() -> Prefilter<P> {
        Prefilter::Scan {
            only: None,
            unsealed_only: false,
            counted: P::default(),
        }
    }

    /// Only `only` is scanned (when known); nothing is answered by the indices alone.
    pub(super) fn only(only: Option<RoaringBitmap>) -> Prefilter<P> {
        Prefilter::Scan {
            only,
            unsealed_only: false,
            counted: P::default(),
        }
    }
}

/// The protocol every statement runs through. A statement plans one operator from its parsed
/// form and the snapshot (names resolved, buckets built), and the driver
/// ([`evaluate`](super::drive::evaluate)) then runs:
///
/// 1. [`prefilter`](Operator::prefilter): the bitmap indices answer the whole statement, or
///    narrow the customers to scan (and answer for the rest); an order-free operator may
///    instead answer by [`by_rows`](Operator::by_rows), a pass over each source's blocks;
/// 2. [`customer`](Operator::customer): each worker folds the rows of each customer of its
///    range — in (customer, time, sequence) order, every decoded column of
///    [`columns`](Operator::columns) — into its partial state;
/// 3. [`merge`](Operator::merge): the workers' states (and the prefilter's) combine;
/// 4. [`finish`](Operator::finish): the merged state becomes the result table.
///
/// What each must guarantee (DataFusion's `Accumulator` and tantivy's `Collector` are the
/// models): `merge` is exact and order-free — merging the states of any split of the customers,
/// in any order, gives the state of one pass over all of them, so the answer never depends on
/// thread count, segment layout or flush timing; `footprint` is O(1) and counts what the state
/// holds on the heap, which the per-query memory budget charges while workers run; `finish`
/// sees the whole merged state once. A prefilter answer must equal what the scan would give.
pub(super) trait Operator: Sync {
    /// One worker's partial state.
    type Partial: Send + Default;

    /// The columns `customer` reads (properties only when a predicate, breakdown or value
    /// needs them).
    fn columns(&self) -> ColumnSet;

    /// What the indices answer before any row is read (by default: nothing; scan everyone).
    fn prefilter(&self, _input: &Input<'_>) -> Result<Prefilter<Self::Partial>, QueryError> {
        Ok(Prefilter::everyone())
    }

    /// The order-free shortcut: an operator whose per-customer state depends on each of the
    /// customer's rows alone, not on their order or on rows of other sources (counts, extremes,
    /// values sorted per customer), may build its merged state from a pass that reads every
    /// block of every source on its own (the `measures` room) instead of the customer
    /// scan. It must give exactly the scan's state. `Ok(None)`: scan (the default).
    fn by_rows(&self, _input: &Input<'_>, _opts: &QueryOptions) -> Result<Option<Self::Partial>, QueryError> {
        Ok(None)
    }

    /// The only customers this statement reads, when it reads a few (a timeline, an
    /// explanation): linked customers outside them are then not read. `None`: everyone.
    fn reads_only(&self) -> Option<RoaringBitmap> {
        None
    }

    /// Folds one customer's rows `rows[run]` into `partial`.
    fn customer(&self, partial: &mut Self::Partial, rows: &Columns, run: Range<usize>);

    /// True when [`customer_in_parts`](Self::customer_in_parts) reads a customer's rows where
    /// they lie: a scan of several sources then hands it a customer whose parts are in merge
    /// order (events arriving in time order) without copying them together first.
    const READS_PARTS: bool = false;

    /// Folds one customer whose rows are `parts`, one after the other in merge order, into
    /// `partial`: exactly what [`customer`](Self::customer) gives for the parts copied together
    /// (which is what this default does).
    fn customer_in_parts<'r>(
        &self,
        partial: &mut Self::Partial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
    ) {
        let mut rows = Columns::default();
        for (part, range) in parts {
            rows.extend_from_range(part, range);
        }
        self.customer(partial, &rows, 0..rows.len());
    }

    /// Folds one customer's rows into each of `partials` (`BY COHORT`: every cohort the
    /// customer is in): by default `customer` once per partial; an operator whose answer for a
    /// customer costs more than adding it finds it once.
    fn customer_each<'p>(
        &self,
        partials: impl Iterator<Item = &'p mut Self::Partial>,
        rows: &Columns,
        run: Range<usize>,
    ) where
        Self::Partial: 'p,
    {
        for partial in partials {
            self.customer(partial, rows, run.clone());
        }
    }

    /// Adds `from` to `into`.
    fn merge(&self, into: &mut Self::Partial, from: Self::Partial);

    /// Estimated heap bytes held by `partial`, in O(1): what the memory budget charges.
    fn footprint(&self, partial: &Self::Partial) -> usize;

    /// The result table of the merged state.
    fn finish(
        &self,
        partial: Self::Partial,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError>;
}

/// An operator that can also read customers lazily (see [`scan_lazy`]): event ids and
/// timestamps only, fed block by block, and no further once the customer's answer is final.
pub(super) trait LazyOperator: Operator {
    /// One customer's state between blocks.
    type State: Default;
    /// True when this query can be answered lazily.
    fn lazy(&self) -> bool;
    /// Feeds the customer's next rows (`ts` yields at least as many values as `events` has;
    /// each is decoded only when read); true once later rows cannot change its answer.
    fn feed(
        &self,
        state: &mut Self::State,
        events: impl Iterator<Item = u32>,
        ts: impl Iterator<Item = i64>,
    ) -> bool;
    /// Adds the customer fed into `state` to `partial`.
    fn end(&self, partial: &mut Self::Partial, state: &mut Self::State);
    /// Adds the customer fed into `state` to each of `partials` (`BY COHORT`: every cohort the
    /// customer is in). By default a copy of the state ends into each but the last (ending may
    /// change a state).
    fn end_each<'p>(&self, partials: impl Iterator<Item = &'p mut Self::Partial>, state: &mut Self::State)
    where
        Self::Partial: 'p,
        Self::State: Clone,
    {
        let mut partials = partials.peekable();
        while let Some(partial) = partials.next() {
            if partials.peek().is_some() {
                self.end(partial, &mut state.clone());
            } else {
                self.end(partial, state);
            }
        }
    }
    /// Makes `state` the state of `customer`, not yet fed (as `Default` would, and as cheaply
    /// as the state allows: the scan calls it once per customer).
    fn restart(&self, state: &mut Self::State, customer: u32);
}

/// The memory budget of one query, shared by its workers. Each worker reports its state's
/// footprint in steps of [`Budget::STEP`] bytes, so the budget is exact to within
/// `STEP × workers`.
pub(super) struct Budget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl Budget {
    const STEP: usize = 256 << 10;

    pub(in crate::internals::exec) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Moves this worker's share from `*reported` to `now` (when it changed by a step or more),
    /// failing when the total is over the limit.
    pub(in crate::internals::exec) fn report(
        &self,
        reported: &mut usize,
        now: usize,
    ) -> Result<(), QueryError> {
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
pub(super) fn rows_footprint(rows: &Columns) -> usize {
    rows.len() * (17 + 9 * rows.props.len())
}
