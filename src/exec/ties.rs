//! Tied events: a customer's events at one timestamp are taken in an order fixed by their
//! content (docs/QUERY.md, "Event order"), never by the order their rows were written, so
//! that re-importing the same rows in another order cannot change an answer.
//!
//! Uses: `model`; no rooms.

use crate::model::Columns;

/// Sorts each run of equal timestamps in `idx` (row indices into `rows`, in timestamp order)
/// by `key`; rows alone at their timestamp are not looked at. The sort is stable, so rows
/// with equal keys keep their relative order — callers' keys make such rows interchangeable.
pub(in crate::internals::exec) fn order_ties<K: Ord>(
    idx: &mut [usize],
    rows: &Columns,
    mut key: impl FnMut(usize) -> K,
) {
    let mut start = 0;
    while start < idx.len() {
        let t = rows.ts[idx[start]];
        let end = start + idx[start..].iter().take_while(|&&i| rows.ts[i] == t).count();
        if end - start > 1 {
            idx[start..end].sort_by_cached_key(|&i| key(i));
        }
        start = end;
    }
}

/// The ranges of equal timestamps in `run` (rows in timestamp order), in order.
pub(in crate::internals::exec) fn tie_groups(
    rows: &Columns,
    run: std::ops::Range<usize>,
) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let end = run.end;
    let mut start = run.start;
    std::iter::from_fn(move || {
        if start >= end {
            return None;
        }
        let t = rows.ts[start];
        let mut stop = start + 1;
        while stop < end && rows.ts[stop] == t {
            stop += 1;
        }
        let group = start..stop;
        start = stop;
        Some(group)
    })
}
