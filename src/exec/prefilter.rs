//! Bitmap prefilters: the customers (and days) that can match a step, read from the indices
//! before any row is decoded.
//!
//! Uses: `index`, `merge`, `model`, `plan`; rooms `options`.

use crate::exec::options::Input;
use crate::merge::Source;
use crate::model;
use crate::plan::Matcher;
use std::collections::BTreeMap;

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
    let mut out: BTreeMap<i32, roaring::RoaringBitmap> = BTreeMap::new();
    for s in &input.sources {
        let owned;
        let (bitmaps, events, hidden) = match s {
            Source::Segment(seg) => (&seg.footer.bitmaps, seg.footer.event_days.as_ref()?, None),
            Source::Masked(seg, matcher) => (
                &seg.footer.bitmaps,
                seg.footer.event_days.as_ref()?,
                Some(&**matcher),
            ),
            Source::Memory(cols) => {
                let mut b = crate::index::Bitmaps::default();
                b.add(cols);
                let mut e = crate::index::EventDays::default();
                e.add(cols);
                owned = (b, e);
                (&owned.0, &owned.1, None)
            }
        };
        for (d, b) in matcher_days(matcher, bitmaps, events)? {
            let x = out.entry(d).or_default();
            match hidden {
                Some(h) => *x |= b - h,
                None => *x |= b,
            }
        }
    }
    Some(out)
}
