//! The protocol every statement runs through, documented once here.

use crate::exec::options::QueryError;
use crate::model::Columns;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// Hash maps of per-worker partial states (foldhash: the keys are ids and bucket numbers, not
/// attacker-chosen text, and SipHash showed up at 15 % of a TREND profile).
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Per-customer operator: a partial state per worker, merged exactly.
pub(super) trait Operator: Sync {
    type Partial: Send + Default;
    fn customer(&self, p: &mut Self::Partial, rows: &Columns, r: Range<usize>);
    fn merge(&self, a: &mut Self::Partial, b: Self::Partial);
    /// Estimated heap bytes held by `p`, in O(1): what the memory budget charges.
    fn footprint(&self, p: &Self::Partial) -> usize;
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
pub(super) fn rows_footprint(c: &Columns) -> usize {
    c.len() * (17 + 9 * c.props.len())
}
