//! Bitmap prefilters: the customers (and days) that can match a step, read from the indices
//! before any row is decoded.
//!
//! Uses: `index`, `merge`, `model`, `plan`; rooms `options`.

use crate::exec::options::Input;
use crate::merge::Source;
use crate::model;
use crate::plan::Matcher;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Customers that can have an event matching `m` (a superset: bitmaps ignore property filters),
/// optionally on UTC days overlapping `range`. `None` means "no pruning possible".
pub(super) fn candidates(
    matcher: &Matcher,
    bitmaps: &crate::index::Bitmaps,
    range: Option<(i64, i64)>,
) -> Option<roaring::RoaringBitmap> {
    let mut set = match (&matcher.events, matcher.stage) {
        (Some(ids), _) => {
            let mut u = roaring::RoaringBitmap::new();
            for id in ids {
                if let Some(x) = bitmaps.events.get(id) {
                    u |= x;
                }
            }
            u
        }
        (None, Some(stage)) => bitmaps.stages.get(stage as usize)?.clone(),
        (None, None) => return None,
    };
    if let Some((lo, hi)) = range {
        let (d0, d1) = (model::day_of(lo), model::day_of(hi - 1));
        let mut days = roaring::RoaringBitmap::new();
        for (_, x) in bitmaps.days.range(d0..=d1) {
            days |= x;
        }
        set &= days;
    }
    Some(set)
}

/// The customers matching `m` (event names or a stage, no property predicate) on each UTC day,
/// from one source's indices; `None` when they cannot say.
pub(super) fn matcher_days(
    matcher: &Matcher,
    bitmaps: &crate::index::Bitmaps,
    events: &crate::index::EventDays,
) -> Option<BTreeMap<i32, roaring::RoaringBitmap>> {
    if matcher.filter.is_some() {
        return None;
    }
    let mut out: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    match (&matcher.events, matcher.stage) {
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
pub(super) fn step_days(
    matcher: &Matcher,
    input: &Input<'_>,
) -> Option<BTreeMap<i32, roaring::RoaringBitmap>> {
    // The sources masked by one shared set of hidden customers (a cohort restriction) are
    // united first and the hidden customers subtracted once per day — ∪(bᵢ − h) = (∪bᵢ) − h —
    // rather than from every source's bitmap of every event and day, which took most of a
    // restricted RETENTION's time; sources with a mask of their own, or none, as they are.
    let shared = shared_mask(&input.sources);
    let mut masked: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    let mut out: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    for s in &input.sources {
        let owned;
        let (bitmaps, events, hidden) = match s {
            Source::Segment(seg) => (&seg.footer.bitmaps, seg.footer.event_days.as_ref()?, None),
            Source::Masked(seg, mask) => (&seg.footer.bitmaps, seg.footer.event_days.as_ref()?, Some(mask)),
            Source::Memory(cols) => {
                let mut b = crate::index::Bitmaps::default();
                b.add(cols);
                let mut e = crate::index::EventDays::default();
                e.add(cols);
                owned = (b, e);
                (&owned.0, &owned.1, None)
            }
        };
        let by_shared = hidden.is_some_and(|mask| shared.is_some_and(|one| Arc::ptr_eq(mask, one)));
        for (d, b) in matcher_days(matcher, bitmaps, events)? {
            match hidden {
                _ if by_shared => *masked.entry(d).or_default() |= b,
                Some(h) => *out.entry(d).or_default() |= b - &**h,
                None => *out.entry(d).or_default() |= b,
            }
        }
    }
    if let Some(hidden) = shared {
        for (d, mut b) in masked {
            b -= &**hidden;
            *out.entry(d).or_default() |= b;
        }
    }
    Some(out)
}

/// The mask of the masked sources when they all share one (the same set, by pointer).
fn shared_mask(sources: &[Source]) -> Option<&Arc<roaring::RoaringBitmap>> {
    let mut masks = sources.iter().filter_map(|source| match source {
        Source::Masked(_, mask) => Some(mask),
        _ => None,
    });
    let first = masks.next()?;
    masks.all(|mask| Arc::ptr_eq(mask, first)).then_some(first)
}
