//! Customer sets per UTC day: built while rows are added (by stage, by event name, by both),
//! split and stored when the segment is sealed.
//!
//! Uses: `codec`, `model`; rooms `gap_list`.

use crate::codec::{DecodeError, Reader};
use crate::index::gap_list::get;
use crate::model::{Columns, DAY_US, day_of, stage_code};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;

/// The UTC day of timestamps read in mostly ascending order: the division runs only when a
/// timestamp leaves the day of the previous one (rows are sorted by time within a customer).
pub(super) struct DayCursor {
    /// `[lo, hi)` in µs is day `day` (empty at first).
    lo: i64,
    hi: i64,
    day: i32,
}

impl DayCursor {
    pub(in crate::internals::index) fn new() -> DayCursor {
        DayCursor { lo: 0, hi: 0, day: 0 }
    }

    /// The UTC day of `ts`.
    pub(in crate::internals::index) fn of(&mut self, ts: i64) -> i32 {
        if ts < self.lo || ts >= self.hi {
            self.day = day_of(ts);
            // The bottom day starts before i64::MIN (floor division) and the top one ends
            // after i64::MAX: both ends saturate.
            self.lo = i64::from(self.day).saturating_mul(DAY_US);
            self.hi = self.lo.saturating_add(DAY_US);
        }
        self.day
    }
}

/// Most key slots [`add_major_days`] allocates for one block; blocks with more (keys spread over
/// many event names or years of days) take the sorting path.
pub(super) const DENSE_SLOTS_MAX: usize = 1 << 16;

/// The UTC days of `cols` as `(first day, number of days)`; `None` when empty.
pub(super) fn day_span(cols: &Columns) -> Option<(i32, usize)> {
    let lo = cols.ts.iter().copied().min()?;
    let hi = cols.ts.iter().copied().max()?;
    let (d0, d1) = (day_of(lo), day_of(hi));
    Some((d0, usize::try_from(i64::from(d1) - i64::from(d0) + 1).ok()?))
}

/// Sets of customers per key, built from rows sorted by customer over any number of calls:
/// customers arrive in ascending order, so each set only grows at its end (an append, never a
/// merge), and each customer is added once per key. Customers are buffered per set and
/// appended to its bitmap [`PENDING_MAX`] at a time (one push into a roaring bitmap per
/// customer and key, each to a different bitmap, was most of the cost of indexing).
#[derive(Clone, Debug)]
pub struct DaySets<K> {
    /// Key → its position in `sets`.
    slots: BTreeMap<K, usize>,
    sets: Vec<DaySet>,
}

/// One set of [`DaySets`].
#[derive(Clone, Debug, Default)]
pub(super) struct DaySet {
    bitmap: RoaringBitmap,
    /// Customers not yet in `bitmap` (ascending).
    pending: Vec<u32>,
    /// The customer last added plus one (0: none yet).
    last: u64,
}

/// Customers a [`DaySet`] buffers before appending them to its bitmap.
pub(super) const PENDING_MAX: usize = 1024;

impl DaySet {
    fn flush(&mut self) {
        // Appended in bulk when they ascend past the bitmap (always, for rows sorted by
        // customer); inserted one by one otherwise.
        if self.bitmap.append(self.pending.iter().copied()).is_err() {
            self.bitmap.extend(self.pending.iter().copied());
        }
        self.pending.clear();
    }
}

impl<K> Default for DaySets<K> {
    fn default() -> Self {
        DaySets {
            slots: BTreeMap::new(),
            sets: Vec::new(),
        }
    }
}

impl<K: Ord + Copy> DaySets<K> {
    /// The position of `key`'s set (created empty if new).
    fn slot(&mut self, key: K) -> usize {
        let n = self.sets.len();
        let at = *self.slots.entry(key).or_insert(n);
        if at == n {
            self.sets.push(DaySet::default());
        }
        at
    }

    /// Adds customer `cid` to the set at `slot` (once).
    fn add(&mut self, slot: usize, cid: u32) {
        if let Some(set) = self.sets.get_mut(slot)
            && set.last != u64::from(cid) + 1
        {
            set.last = u64::from(cid) + 1;
            set.pending.push(cid);
            if set.pending.len() >= PENDING_MAX {
                set.flush();
            }
        }
    }

    /// Drops the sets of the keys `drop` selects.
    pub(in crate::internals::index) fn remove(&mut self, drop: impl Fn(&K) -> bool) {
        let sets = &mut self.sets;
        self.slots.retain(|k, &mut i| {
            if drop(k) {
                if let Some(s) = sets.get_mut(i) {
                    *s = DaySet::default();
                }
                false
            } else {
                true
            }
        });
    }

    /// The non-empty sets by key.
    pub fn into_map(mut self) -> BTreeMap<K, RoaringBitmap> {
        self.slots
            .into_iter()
            .filter_map(|(k, i)| {
                let set = self.sets.get_mut(i)?;
                set.flush();
                let b = std::mem::take(&mut set.bitmap);
                (!b.is_empty()).then_some((k, b))
            })
            .collect()
    }
}

/// Adds the customers of `cols` (rows sorted by customer, continuing the order of earlier
/// rows) to the per-(event id, UTC day) sets of `sets`.
pub fn add_event_days(sets: &mut DaySets<(u32, i32)>, cols: &Columns) {
    let events = cols.event.iter().copied().max().map_or(0, |e| e as usize + 1);
    add_major_days(
        cols,
        sets,
        events,
        |j| cols.event[j] as usize,
        |m, d| (m as u32, d),
    );
}

/// Adds the customers of `cols` (rows sorted by customer, continuing the order of earlier
/// rows) to the per-(event id, stage code, UTC day) sets of `sets` (stage codes above 5 count
/// as 5): one pass, which [`split_event_stage_days`] turns into the per-(stage, day) sets and
/// the per-(event, day) sets that [`add_event_days`] builds.
pub fn add_event_stage_days(sets: &mut DaySets<(u32, u8, i32)>, cols: &Columns) {
    let events = cols.event.iter().copied().max().map_or(0, |e| e as usize + 1);
    add_major_days(
        cols,
        sets,
        events.saturating_mul(STAGE_CODES),
        |j| cols.event[j] as usize * STAGE_CODES + usize::from(stage_code(cols.stage[j]).min(5)),
        |m, d| ((m / STAGE_CODES) as u32, (m % STAGE_CODES) as u8, d),
    );
}

/// Stage codes the per-stage sets tell apart (codes above 5 count as 5).
pub(super) const STAGE_CODES: usize = 6;

/// Per-(stage code, day) and per-(event id, day) sets.
pub type StageAndEventDays = (
    BTreeMap<(u8, i32), RoaringBitmap>,
    BTreeMap<(u32, i32), RoaringBitmap>,
);

/// The per-(stage, day) and per-(event, day) sets of per-(event, stage, day) `sets`: unions
/// over events and over stages. An event whose rows all have one stage code (a stage that
/// follows from the event, the usual case) has its sets moved, not copied, into the per-event
/// sets.
pub fn split_event_stage_days(sets: DaySets<(u32, u8, i32)>) -> StageAndEventDays {
    let mut stage_days: BTreeMap<(u8, i32), RoaringBitmap> = BTreeMap::new();
    let mut event_days: BTreeMap<(u32, i32), RoaringBitmap> = BTreeMap::new();
    for ((e, s, d), b) in sets.into_map() {
        *stage_days.entry((s, d)).or_default() |= &b;
        match event_days.entry((e, d)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(b);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => *o.get_mut() |= b,
        }
    }
    (stage_days, event_days)
}

/// Adds each customer of `cols` (rows sorted by customer) to the set of every distinct key its
/// rows have, once per customer and key: `key(major(row), day(row))` with `major < majors`.
/// Key slots are numbered densely per block when its span allows (one array look-up per row,
/// and one map search per key in the block), else keys are sorted per customer.
pub(super) fn add_major_days<K: Ord + Copy>(
    cols: &Columns,
    sets: &mut DaySets<K>,
    majors: usize,
    major: impl Fn(usize) -> usize,
    key: impl Fn(usize, i32) -> K,
) {
    let dense = day_span(cols).and_then(|(d0, days)| {
        let slots = majors.checked_mul(days).filter(|&s| s <= DENSE_SLOTS_MAX)?;
        Some((d0, days, slots))
    });
    let Some((d0, days, slots)) = dense else {
        let mut cursor = DayCursor::new();
        return add_keyed(cols, sets, |j| key(major(j), cursor.of(cols.ts[j])));
    };
    // resolved[s]: the position in `sets` of block slot s's key (usize::MAX: not looked up yet).
    let mut resolved = vec![usize::MAX; slots];
    let mut cursor = DayCursor::new();
    for (j, (&cid, &ts)) in cols.cid.iter().zip(&cols.ts).enumerate() {
        // In range by construction: major < majors, d0 ≤ day < d0 + days.
        let day = (i64::from(cursor.of(ts)) - i64::from(d0)) as usize;
        let m = major(j);
        let s = m.wrapping_mul(days).wrapping_add(day);
        let Some(r) = resolved.get_mut(s) else { continue };
        if *r == usize::MAX {
            *r = sets.slot(key(m, d0 + day as i32));
        }
        sets.add(*r, cid);
    }
}

/// Adds each customer of `cols` (rows sorted by customer) to the set of every distinct key its
/// rows have (`key(row)`), once per customer and key.
pub(super) fn add_keyed<K: Ord + Copy>(
    cols: &Columns,
    sets: &mut DaySets<K>,
    mut key: impl FnMut(usize) -> K,
) {
    let n = cols.len();
    let mut keys: Vec<K> = Vec::new();
    let mut i = 0;
    while i < n {
        let cid = cols.cid[i];
        let mut j = i;
        keys.clear();
        while j < n && cols.cid[j] == cid {
            keys.push(key(j));
            j += 1;
        }
        keys.sort_unstable();
        keys.dedup();
        for &k in &keys {
            let slot = sets.slot(k);
            sets.add(slot, cid);
        }
        i = j;
    }
}

/// Customers with an event of each event name on each UTC day: with the per (stage, day)
/// bitmaps, what `RETENTION` of events or stages by UTC day, week or month needs, as bitmap
/// algebra instead of a scan. Stored after the value index (docs/FORMAT.md §5.3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventDays {
    /// (event id, UTC day) → customers.
    pub days: BTreeMap<(u32, i32), RoaringBitmap>,
}

impl EventDays {
    /// Adds the rows of `cols` (sorted by customer; a segment writer builds [`DaySets`] over
    /// all its blocks instead, with [`add_event_days`]).
    pub fn add(&mut self, cols: &Columns) {
        let mut sets = DaySets::default();
        add_event_days(&mut sets, cols);
        for (key, b) in sets.into_map() {
            *self.days.entry(key).or_default() |= b;
        }
    }

    /// Appends the encoding: `count u32 | count × (event u32 | day i32 | len u32 | roaring bytes)`.
    /// The form written before the day table (docs/FORMAT.md §5.3), which readers still take:
    /// tests write it.
    #[cfg(test)]
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        crate::codec::put_u32(out, self.days.len() as u32);
        for ((e, d), b) in &self.days {
            crate::codec::put_u32(out, *e);
            crate::codec::put_i32(out, *d);
            super::gap_list::put(out, b)?;
        }
        Ok(())
    }

    /// Decodes what [`EventDays::encode`] wrote.
    pub fn decode(reader: &mut Reader<'_>) -> Result<EventDays, DecodeError> {
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 12 {
            return Err(reader.err("event-day bitmap count exceeds the data"));
        }
        let mut out = EventDays::default();
        for _ in 0..n {
            let e = reader.u32()?;
            let d = reader.i32()?;
            let b = get(reader)?;
            if out.days.insert((e, d), b).is_some() {
                return Err(reader.err("duplicate event-day bitmap"));
            }
        }
        Ok(out)
    }
}
