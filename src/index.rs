//! Roaring-bitmap indices over internal customer ids: customers per stage, per event name,
//! per UTC day, and per (stage, UTC day). Built when a segment is sealed, stored in its footer,
//! and unioned across segments (and the buffer) at query time.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::codec::{self, DecodeError, Reader};
use crate::model::{Columns, DAY_US, day_of};

/// Adds `cid` to `b`: an append when it is above the maximum (rows arrive sorted by customer),
/// a search otherwise.
fn add_cid(b: &mut RoaringBitmap, cid: u32) {
    if b.try_push(cid).is_err() {
        b.insert(cid);
    }
}

/// The UTC day of timestamps read in mostly ascending order: the division runs only when a
/// timestamp leaves the day of the previous one (rows are sorted by time within a customer).
struct DayCursor {
    /// `[lo, hi)` in µs is day `day` (empty at first).
    lo: i64,
    hi: i64,
    day: i32,
}

impl DayCursor {
    fn new() -> DayCursor {
        DayCursor { lo: 0, hi: 0, day: 0 }
    }

    /// The UTC day of `ts`.
    fn of(&mut self, ts: i64) -> i32 {
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
const DENSE_SLOTS_MAX: usize = 1 << 16;

/// The UTC days of `cols` as `(first day, number of days)`; `None` when empty.
fn day_span(cols: &Columns) -> Option<(i32, usize)> {
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
struct DaySet {
    bitmap: RoaringBitmap,
    /// Customers not yet in `bitmap` (ascending).
    pending: Vec<u32>,
    /// The customer last added plus one (0: none yet).
    last: u64,
}

/// Customers a [`DaySet`] buffers before appending them to its bitmap.
const PENDING_MAX: usize = 1024;

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
    fn remove(&mut self, drop: impl Fn(&K) -> bool) {
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
        |j| cols.event[j] as usize * STAGE_CODES + usize::from(cols.stage[j].min(5)),
        |m, d| ((m / STAGE_CODES) as u32, (m % STAGE_CODES) as u8, d),
    );
}

/// Stage codes the per-stage sets tell apart (codes above 5 count as 5).
const STAGE_CODES: usize = 6;

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
fn add_major_days<K: Ord + Copy>(
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
fn add_keyed<K: Ord + Copy>(cols: &Columns, sets: &mut DaySets<K>, mut key: impl FnMut(usize) -> K) {
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

/// Flag in a bitmap's length word: the bytes are a gap list, not the roaring serialization.
const GAP_LIST: u32 = 1 << 31;

/// Appends `b` as `len u32 | bytes`: the roaring portable serialization, or — flag
/// [`GAP_LIST`] in `len` — the varint of each member minus the previous one (the first minus
/// zero) when that is smaller (sparse sets: a customer set of one event name on one day takes
/// about a byte per member instead of two).
fn put(out: &mut Vec<u8>, b: &RoaringBitmap) -> std::io::Result<()> {
    let roaring = b.serialized_size();
    // Sets over an eighth of their range are bitmaps (a bit per id) anyway: not tried.
    let sparse = b.max().is_some_and(|m| b.len() < u64::from(m) / 8 + 4096);
    let start = out.len();
    if sparse {
        codec::put_u32(out, 0);
        let mut prev = 0u32;
        // Members taken 256 at a time (`next_many`: a copy out of each container) rather than
        // one by one: at 10M events the one-by-one iterator was ~30 % of the index encoding.
        // Their varints are written into a local buffer, then appended at once. But roaring
        // 0.12's `next_many` overflows (`end - start + 1` in u16: a panic with overflow checks)
        // on a run container that spans all 65,536 values, so a bitmap with run containers
        // (made by `insert_range`, or read from a file) is walked one member at a time.
        let runs = b.statistics().n_run_containers > 0;
        let (mut members, mut batch, mut bytes) = (b.iter(), [0u32; 256], [0u8; 256 * 5]);
        loop {
            let got = if runs {
                let mut k = 0;
                // `zip` asks the slots first: no member is taken past the last slot.
                for (slot, v) in batch.iter_mut().zip(members.by_ref()) {
                    *slot = v;
                    k += 1;
                }
                &batch[..k]
            } else {
                &*members.next_many(&mut batch)
            };
            if got.is_empty() {
                break;
            }
            let mut n = 0;
            for &v in got.iter() {
                let mut gap = v - prev;
                prev = v;
                while gap >= 0x80 {
                    bytes[n] = (gap as u8) | 0x80;
                    gap >>= 7;
                    n += 1;
                }
                bytes[n] = gap as u8;
                n += 1;
            }
            out.extend_from_slice(&bytes[..n]);
            // Past the roaring form's size the gap list is not used: stop encoding it.
            if out.len() - start - 4 >= roaring {
                break;
            }
        }
        let gaps = out.len() - start - 4;
        if gaps < roaring && gaps < GAP_LIST as usize {
            out[start..start + 4].copy_from_slice(&(gaps as u32 | GAP_LIST).to_le_bytes());
            return Ok(());
        }
        out.truncate(start);
    }
    codec::put_u32(out, roaring as u32);
    b.serialize_into(&mut *out)
}

/// Reads what [`put`] wrote (either form).
fn get(r: &mut Reader<'_>) -> Result<RoaringBitmap, DecodeError> {
    let word = r.u32()?;
    let len = (word & !GAP_LIST) as usize;
    let at = r.pos();
    let bytes = r.bytes(len)?;
    if word & GAP_LIST == 0 {
        return RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| DecodeError::new(at, format!("bitmap: {e}")));
    }
    let mut g = Reader::new(bytes);
    // At most one member per byte.
    let mut members = Vec::with_capacity(len);
    let mut prev: Option<u32> = None;
    while g.remaining() > 0 {
        let gap = g.varint().map_err(|e| DecodeError::new(at + e.offset, e.what))?;
        let v = match prev {
            None => u32::try_from(gap).ok(),
            // Members ascend strictly: a gap of 0 would repeat one.
            Some(p) if gap > 0 => u32::try_from(gap).ok().and_then(|gap| p.checked_add(gap)),
            Some(_) => None,
        }
        .ok_or_else(|| DecodeError::new(at + g.pos(), "bitmap gap list: member out of order or range"))?;
        members.push(v);
        prev = Some(v);
    }
    RoaringBitmap::from_sorted_iter(members)
        .map_err(|e| DecodeError::new(at, format!("bitmap gap list: {e}")))
}

/// The bitmaps of one segment (or of a union of segments).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bitmaps {
    /// Customers with an event of each stage code (index 0 = events without a stage).
    pub stages: [RoaringBitmap; 6],
    /// Customers with an event of each event-name id.
    pub events: BTreeMap<u32, RoaringBitmap>,
    /// Customers with any event on each UTC day.
    pub days: BTreeMap<i32, RoaringBitmap>,
    /// Customers with an event of each stage code on each UTC day.
    pub stage_days: BTreeMap<(u8, i32), RoaringBitmap>,
}

impl Bitmaps {
    /// Adds the rows of `cols` (in any order; sorted input is fastest).
    pub fn add(&mut self, cols: &Columns) {
        let n = cols.len();
        let mut i = 0;
        let mut evs: Vec<u32> = Vec::new();
        let mut days: Vec<(u8, i32)> = Vec::new();
        while i < n {
            let cid = cols.cid[i];
            let mut j = i;
            evs.clear();
            days.clear();
            while j < n && cols.cid[j] == cid {
                evs.push(cols.event[j]);
                days.push((cols.stage[j].min(5), day_of(cols.ts[j])));
                j += 1;
            }
            evs.sort_unstable();
            evs.dedup();
            days.sort_unstable();
            days.dedup();
            for &e in &evs {
                add_cid(self.events.entry(e).or_default(), cid);
            }
            let mut last_day = None;
            let mut stage_seen = [false; 6];
            for &(stage, day) in &days {
                stage_seen[stage as usize] = true;
                add_cid(self.stage_days.entry((stage, day)).or_default(), cid);
            }
            let mut days_only: Vec<i32> = days.iter().map(|d| d.1).collect();
            days_only.sort_unstable();
            for d in days_only {
                if last_day != Some(d) {
                    add_cid(self.days.entry(d).or_default(), cid);
                    last_day = Some(d);
                }
            }
            for (code, seen) in stage_seen.iter().enumerate() {
                if *seen {
                    add_cid(&mut self.stages[code], cid);
                }
            }
            i = j;
        }
    }

    /// Sets the per-stage and per-day bitmaps from `stage_days`, and the per-event bitmaps from
    /// `event_days` (which must cover the same rows): the same sets [`Bitmaps::add`] builds.
    pub fn derive(&mut self, event_days: &EventDays) {
        self.stages = Default::default();
        self.days.clear();
        for (&(stage, day), b) in &self.stage_days {
            self.stages[usize::from(stage.min(5))] |= b;
            *self.days.entry(day).or_default() |= b;
        }
        self.events.clear();
        for (&(event, _), b) in &event_days.days {
            *self.events.entry(event).or_default() |= b;
        }
    }

    /// Removes the customers in `gone` from every bitmap (an erasure not yet compacted away).
    pub fn remove_customers(&mut self, gone: &RoaringBitmap) {
        for a in &mut self.stages {
            *a -= gone;
        }
        self.events.values_mut().for_each(|b| *b -= gone);
        self.events.retain(|_, b| !b.is_empty());
        self.days.values_mut().for_each(|b| *b -= gone);
        self.days.retain(|_, b| !b.is_empty());
        self.stage_days.values_mut().for_each(|b| *b -= gone);
        self.stage_days.retain(|_, b| !b.is_empty());
    }

    /// Unions `other` into `self`.
    pub fn union_with(&mut self, other: &Bitmaps) {
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            *a |= b;
        }
        for (k, b) in &other.events {
            *self.events.entry(*k).or_default() |= b;
        }
        for (k, b) in &other.days {
            *self.days.entry(*k).or_default() |= b;
        }
        for (k, b) in &other.stage_days {
            *self.stage_days.entry(*k).or_default() |= b;
        }
    }

    /// Appends the encoding (see docs/FORMAT.md §5.5): each bitmap in the portable roaring
    /// format, prefixed by its byte length.
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        for b in &self.stages {
            put(out, b)?;
        }
        codec::put_u32(out, self.events.len() as u32);
        for (k, b) in &self.events {
            codec::put_u32(out, *k);
            put(out, b)?;
        }
        // `days` is not stored: it is the union over stages of `stage_days`.
        codec::put_u32(out, self.stage_days.len() as u32);
        for ((s, d), b) in &self.stage_days {
            out.push(*s);
            codec::put_i32(out, *d);
            put(out, b)?;
        }
        Ok(())
    }

    /// Decodes what [`Bitmaps::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<Bitmaps, DecodeError> {
        fn count(r: &mut Reader<'_>, min_entry: usize) -> Result<usize, DecodeError> {
            let n = r.u32()? as usize;
            if n > r.remaining() / min_entry {
                return Err(r.err("bitmap count exceeds the data"));
            }
            Ok(n)
        }
        let mut out = Bitmaps::default();
        for b in &mut out.stages {
            *b = get(r)?;
        }
        for _ in 0..count(r, 8)? {
            let k = r.u32()?;
            out.events.insert(k, get(r)?);
        }
        for _ in 0..count(r, 9)? {
            let s = r.u8()?;
            let d = r.i32()?;
            if s > 5 {
                return Err(r.err(format!("stage code {s}")));
            }
            let b = get(r)?;
            *out.days.entry(d).or_default() |= &b;
            out.stage_days.insert((s, d), b);
        }
        Ok(out)
    }
}

/// The aggregate of one numeric property's values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NumAgg {
    /// Values present.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl NumAgg {
    fn add(&mut self, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
    }

    fn merge(&mut self, o: &NumAgg) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.n += o.n;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// One (stage, UTC day) cell of [`Rollups`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollupCell {
    /// Events.
    pub events: u64,
    /// Per numeric (i64 or f64) property id: its values' aggregate.
    pub props: BTreeMap<u32, NumAgg>,
}

impl RollupCell {
    fn merge(&mut self, o: &RollupCell) {
        self.events += o.events;
        for (id, a) in &o.props {
            self.props
                .entry(*id)
                .or_insert(NumAgg {
                    n: 0,
                    sum: 0.0,
                    min: 0.0,
                    max: 0.0,
                })
                .merge(a);
        }
    }
}

/// Per (stage code, UTC day) of one segment: the number of events and, for each numeric
/// property, the count, sum, minimum and maximum of its values. `TREND count|sum|avg|min|max
/// [OF STAGE s]` by UTC day, week or month reads these instead of the rows. Stored in the
/// segment footer after the bitmaps (docs/FORMAT.md §5.3); segments written before rollups
/// existed have none, and queries then scan them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollups {
    /// (stage code, UTC day) → cell.
    pub cells: BTreeMap<(u8, i32), RollupCell>,
}

impl Rollups {
    /// Adds the rows of `cols`: summed per (stage, day) of the block in dense slots when the
    /// block's span allows, else run by run (rows come in customer and time order, so runs of
    /// one key are common).
    pub fn add(&mut self, cols: &Columns) {
        let numeric: Vec<&crate::model::PropColumn> = cols
            .props
            .iter()
            .filter(|c| matches!(c.ty, crate::model::PropType::I64 | crate::model::PropType::F64))
            .collect();
        let stages = cols.stage.iter().copied().max().map_or(0, |s| usize::from(s) + 1);
        let dense = day_span(cols).and_then(|(d0, days)| {
            let slots = stages.checked_mul(days).filter(|&s| s <= DENSE_SLOTS_MAX)?;
            Some((d0, days, slots))
        });
        let Some((d0, days, slots)) = dense else {
            return self.add_runs(cols, &numeric);
        };
        let k = numeric.len();
        let zero = NumAgg {
            n: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        };
        let mut events = vec![0u64; slots];
        let mut aggs = vec![zero; slots * k];
        let mut cursor = DayCursor::new();
        for (i, (&stage, &ts)) in cols.stage.iter().zip(&cols.ts).enumerate() {
            // In range by construction: stage < stages, d0 ≤ day < d0 + days.
            let day = (i64::from(cursor.of(ts)) - i64::from(d0)) as usize;
            let s = usize::from(stage) * days + day;
            if let Some(e) = events.get_mut(s) {
                *e += 1;
            }
            for (c_at, c) in numeric.iter().enumerate() {
                if c.valid.get(i) == Some(&true)
                    && let (Some(&raw), Some(a)) = (c.vals.get(i), aggs.get_mut(s * k + c_at))
                {
                    a.add(match c.ty {
                        crate::model::PropType::I64 => raw as i64 as f64,
                        _ => f64::from_bits(raw),
                    });
                }
            }
        }
        for (s, &count) in events.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let Ok(stage) = u8::try_from(s / days) else {
                continue;
            };
            let cell = RollupCell {
                events: count,
                props: numeric
                    .iter()
                    .zip(aggs.get(s * k..(s + 1) * k).unwrap_or(&[]))
                    .filter(|(_, a)| a.n > 0)
                    .map(|(c, a)| (c.id, *a))
                    .collect(),
            };
            let key = (stage, d0 + (s % days) as i32);
            match self.cells.entry(key) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(cell);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().merge(&cell),
            }
        }
    }

    /// [`add`](Self::add) run by run of equal (stage, day).
    fn add_runs(&mut self, cols: &Columns, numeric: &[&crate::model::PropColumn]) {
        let mut cur: Option<((u8, i32), RollupCell)> = None;
        let mut days = DayCursor::new();
        for i in 0..cols.len() {
            let key = (cols.stage[i], days.of(cols.ts[i]));
            if cur.as_ref().is_some_and(|(k, _)| *k != key)
                && let Some((k, cell)) = cur.take()
            {
                self.cells.entry(k).or_default().merge(&cell);
            }
            let cell = &mut cur.get_or_insert_with(|| (key, RollupCell::default())).1;
            cell.events += 1;
            for c in numeric {
                if c.valid[i] {
                    let v = match c.ty {
                        crate::model::PropType::I64 => c.vals[i] as i64 as f64,
                        _ => f64::from_bits(c.vals[i]),
                    };
                    cell.props
                        .entry(c.id)
                        .or_insert(NumAgg {
                            n: 0,
                            sum: 0.0,
                            min: 0.0,
                            max: 0.0,
                        })
                        .add(v);
                }
            }
        }
        if let Some((k, cell)) = cur {
            self.cells.entry(k).or_default().merge(&cell);
        }
    }

    /// Appends the encoding: count u32, then per cell `stage u8 | day i32 | events varint |
    /// nprops varint | nprops × (id varint | n varint | sum, min, max as f64 bits u64)`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.cells.len() as u32);
        for ((stage, day), cell) in &self.cells {
            out.push(*stage);
            codec::put_i32(out, *day);
            codec::put_varint(out, cell.events);
            codec::put_varint(out, cell.props.len() as u64);
            for (id, a) in &cell.props {
                codec::put_varint(out, u64::from(*id));
                codec::put_varint(out, a.n);
                codec::put_u64(out, a.sum.to_bits());
                codec::put_u64(out, a.min.to_bits());
                codec::put_u64(out, a.max.to_bits());
            }
        }
    }

    /// Decodes what [`Rollups::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<Rollups, DecodeError> {
        let n = r.u32()? as usize;
        if n > r.remaining() / 7 {
            return Err(r.err("rollup count exceeds the data"));
        }
        let mut out = Rollups::default();
        for _ in 0..n {
            let stage = r.u8()?;
            if stage > 5 {
                return Err(r.err(format!("stage code {stage}")));
            }
            let day = r.i32()?;
            let mut cell = RollupCell {
                events: r.varint()?,
                props: BTreeMap::new(),
            };
            let np = r.len_prefix(crate::limits::PROPS_MAX)?;
            for _ in 0..np {
                let id = r.varint_u32()?;
                let a = NumAgg {
                    n: r.varint()?,
                    sum: f64::from_bits(r.u64()?),
                    min: f64::from_bits(r.u64()?),
                    max: f64::from_bits(r.u64()?),
                };
                if a.n == 0 || a.n > cell.events || cell.props.insert(id, a).is_some() {
                    return Err(r.err("bad rollup property entry"));
                }
            }
            if cell.events == 0 || out.cells.insert((stage, day), cell).is_some() {
                return Err(r.err("bad rollup cell"));
            }
        }
        Ok(out)
    }
}

/// Most distinct values a string property may have in one segment for [`ValueIndex`] to index
/// it (a breakdown by a high-cardinality property is scanned instead).
pub const VALUES_INDEXED_MAX: usize = 64;

/// For each string property with at most [`VALUES_INDEXED_MAX`] distinct values in a segment:
/// the customers with an event carrying each value — or lacking the property — on each UTC
/// day. `TREND uniq PERIOD day|week|month BY p` (UTC, no filter) unions these instead of
/// reading rows. Stored after the rollups (docs/FORMAT.md §5.3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueIndex {
    /// (property id, value slot or `None` for "no value", UTC day) → customers.
    pub days: BTreeMap<(u32, Option<u64>, i32), RoaringBitmap>,
    /// String properties with too many distinct values: not indexed.
    pub overflow: std::collections::BTreeSet<u32>,
}

/// Builds a [`ValueIndex`] from rows sorted by customer, block after block.
#[derive(Clone, Debug, Default)]
pub struct ValueIndexBuilder {
    /// String properties with too many distinct values: not indexed.
    overflow: std::collections::BTreeSet<u32>,
    /// Distinct values seen per property.
    seen: BTreeMap<u32, std::collections::BTreeSet<u64>>,
    /// The sets being built.
    building: DaySets<(u32, Option<u64>, i32)>,
}

impl ValueIndexBuilder {
    /// Adds the rows of `cols` (sorted by customer, continuing the order of earlier rows) for
    /// the string properties `props` (a property without a column in `cols` has no value on
    /// any of its rows).
    pub fn add(&mut self, cols: &Columns, props: &[u32]) {
        let n = cols.len();
        let mut slots: Vec<u32> = Vec::with_capacity(n);
        for &id in props {
            if self.overflow.contains(&id) {
                continue;
            }
            // Number this block's values of the property (0: no value, k: the k-th distinct
            // value); more than the limit in one block overflows the property at once.
            let col = cols.prop(id);
            let mut distinct: Vec<u64> = Vec::new();
            slots.clear();
            for j in 0..n {
                let v = col.and_then(|c| {
                    c.valid
                        .get(j)
                        .copied()
                        .unwrap_or(false)
                        .then(|| c.vals.get(j).copied())
                });
                let slot = match v.flatten() {
                    None => 0,
                    Some(v) => match distinct.iter().position(|&x| x == v) {
                        Some(k) => k + 1,
                        None if distinct.len() > VALUES_INDEXED_MAX => break,
                        None => {
                            distinct.push(v);
                            distinct.len()
                        }
                    },
                };
                slots.push(slot as u32);
            }
            let seen = self.seen.entry(id).or_default();
            seen.extend(distinct.iter().copied());
            if slots.len() < n || seen.len() > VALUES_INDEXED_MAX {
                self.overflow.insert(id);
                self.building.remove(|key| key.0 == id);
                continue;
            }
            add_major_days(
                cols,
                &mut self.building,
                distinct.len() + 1,
                |j| slots.get(j).copied().unwrap_or(0) as usize,
                |slot, day| {
                    let value = slot.checked_sub(1).and_then(|k| distinct.get(k).copied());
                    (id, value, day)
                },
            );
        }
    }

    /// The index of the rows added.
    pub fn finish(self) -> ValueIndex {
        ValueIndex {
            days: self.building.into_map(),
            overflow: self.overflow,
        }
    }
}

impl ValueIndex {
    /// Removes the customers in `gone` (an erasure not yet compacted away).
    pub fn remove_customers(&mut self, gone: &RoaringBitmap) {
        self.days.values_mut().for_each(|b| *b -= gone);
        self.days.retain(|_, b| !b.is_empty());
    }

    /// Appends the encoding: `n u32 | n × prop u32` (overflowed properties), then `count u32 |
    /// count × (prop u32 | has_value u8 | [value varint] | day i32 | len u32 | roaring bytes)`.
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        codec::put_u32(out, self.overflow.len() as u32);
        for p in &self.overflow {
            codec::put_u32(out, *p);
        }
        codec::put_u32(out, self.days.len() as u32);
        for ((p, v, d), b) in &self.days {
            codec::put_u32(out, *p);
            match v {
                Some(v) => {
                    out.push(1);
                    codec::put_varint(out, *v);
                }
                None => out.push(0),
            }
            codec::put_i32(out, *d);
            put(out, b)?;
        }
        Ok(())
    }

    /// Decodes what [`ValueIndex::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<ValueIndex, DecodeError> {
        let mut out = ValueIndex::default();
        let n = r.u32()? as usize;
        if n > r.remaining() / 4 {
            return Err(r.err("overflow count exceeds the data"));
        }
        for _ in 0..n {
            out.overflow.insert(r.u32()?);
        }
        let n = r.u32()? as usize;
        if n > r.remaining() / 13 {
            return Err(r.err("value bitmap count exceeds the data"));
        }
        for _ in 0..n {
            let p = r.u32()?;
            let v = match r.u8()? {
                0 => None,
                1 => Some(r.varint()?),
                _ => return Err(r.err("bad value flag")),
            };
            let d = r.i32()?;
            let b = get(r)?;
            if out.overflow.contains(&p) || out.days.insert((p, v, d), b).is_some() {
                return Err(r.err("bad value bitmap entry"));
            }
        }
        Ok(out)
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
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        codec::put_u32(out, self.days.len() as u32);
        for ((e, d), b) in &self.days {
            codec::put_u32(out, *e);
            codec::put_i32(out, *d);
            put(out, b)?;
        }
        Ok(())
    }

    /// Decodes what [`EventDays::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<EventDays, DecodeError> {
        let n = r.u32()? as usize;
        if n > r.remaining() / 12 {
            return Err(r.err("event-day bitmap count exceeds the data"));
        }
        let mut out = EventDays::default();
        for _ in 0..n {
            let e = r.u32()?;
            let d = r.i32()?;
            let b = get(r)?;
            if out.days.insert((e, d), b).is_some() {
                return Err(r.err("duplicate event-day bitmap"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bitmap(members: impl IntoIterator<Item = u32>) -> RoaringBitmap {
        members.into_iter().collect()
    }

    /// The per-(stage, UTC day) sets in a pass of their own, as segment writers built them
    /// before [`add_event_stage_days`] (the reference the split is compared with).
    fn add_stage_days(sets: &mut DaySets<(u8, i32)>, cols: &Columns) {
        add_major_days(
            cols,
            sets,
            STAGE_CODES,
            |j| usize::from(cols.stage[j].min(5)),
            |m, d| (m as u8, d),
        );
    }

    #[test]
    fn bitmaps_read_back_in_either_form_and_bad_gap_lists_are_errors() -> Result<(), String> {
        let sparse = bitmap((0..500).map(|i| i * 977 + 3).chain([u32::MAX]));
        let dense = bitmap(0..100_000);
        for (b, gaps) in [(&sparse, true), (&dense, false), (&RoaringBitmap::new(), false)] {
            let mut out = Vec::new();
            put(&mut out, b).map_err(|e| e.to_string())?;
            let word = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
            assert_eq!(word & GAP_LIST != 0, gaps, "{} members", b.len());
            assert_eq!(&get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
        }
        // Segments written before gap lists: the length word without the flag.
        let mut old = Vec::new();
        codec::put_u32(&mut old, sparse.serialized_size() as u32);
        sparse.serialize_into(&mut old).map_err(|e| e.to_string())?;
        assert_eq!(get(&mut Reader::new(&old)).map_err(|e| e.to_string())?, sparse);
        // A repeated member (gap 0), a member past u32::MAX and a truncated varint are errors.
        for gaps in [&[5u8, 0][..], &[0xff, 0xff, 0xff, 0xff, 0x0f, 1], &[0x80]] {
            let mut bad = Vec::new();
            codec::put_u32(&mut bad, gaps.len() as u32 | GAP_LIST);
            bad.extend_from_slice(gaps);
            assert!(get(&mut Reader::new(&bad)).is_err(), "{gaps:?}");
        }
        Ok(())
    }

    /// Run containers, one of them spanning all 65,536 values of its key (roaring 0.12's
    /// `next_many` overflowed on it — found by `bitmap_round_trip` in CI), encode as the
    /// member-by-member reference does and read back.
    #[test]
    fn gap_lists_of_bitmaps_with_full_run_containers() -> Result<(), String> {
        let mut cases = Vec::new();
        let mut full = bitmap([7u32, 70_000, u32::MAX]);
        full.insert_range(65_536..131_072);
        cases.push(full);
        let mut from_ci = bitmap([206_450_915u32, 3_079_203_956, 197_252_234]);
        from_ci.insert_range(930_807_509..930_807_509 + 67_812);
        cases.push(from_ci);
        let mut short = bitmap([1u32, 1_000_000]);
        short.insert_range(200..300);
        cases.push(short);
        for b in cases {
            let mut out = Vec::new();
            put(&mut out, &b).map_err(|e| e.to_string())?;
            assert_eq!(get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
            let mut gaps = Vec::new();
            let mut prev = 0;
            for v in &b {
                codec::put_varint(&mut gaps, u64::from(v - prev));
                prev = v;
            }
            if gaps.len() < b.serialized_size() {
                assert_eq!(&out[4..], &gaps[..], "{} members", b.len());
            }
        }
        Ok(())
    }

    /// Gaps at each varint length boundary (1 to 5 bytes), more than one batch of members.
    #[test]
    fn gap_lists_encode_each_varint_length() -> Result<(), String> {
        let small = [1u32, 127, 128, 16_383, 16_384];
        let gaps =
            (0..300)
                .map(|i| small[i % small.len()])
                .chain([2_097_151, 2_097_152, 268_435_455, 268_435_456]);
        let mut members = vec![0u32];
        for gap in gaps {
            members.push(members[members.len() - 1] + gap);
        }
        members.push(u32::MAX);
        let b = bitmap(members.iter().copied());
        let mut want = Vec::new();
        let mut prev = 0;
        for &v in &members {
            codec::put_varint(&mut want, u64::from(v - prev));
            prev = v;
        }
        let mut out = Vec::new();
        put(&mut out, &b).map_err(|e| e.to_string())?;
        assert_eq!(&out[..4], &(want.len() as u32 | GAP_LIST).to_le_bytes());
        assert_eq!(&out[4..], &want[..]);
        assert_eq!(get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
        Ok(())
    }

    proptest! {
        /// Any set reads back as written, whichever form `put` picks.
        #[test]
        fn bitmap_round_trip(
            members in proptest::collection::vec(any::<u32>(), 0..300),
            run in proptest::option::of((any::<u32>(), 0u32..70_000)),
        ) {
            let mut b = bitmap(members);
            if let Some((start, len)) = run {
                b.insert_range(start..start.saturating_add(len));
            }
            let mut out = Vec::new();
            put(&mut out, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // The form is the smaller one, the gap list as a member-by-member encoder writes it.
            let mut gaps = Vec::new();
            let mut prev = 0;
            for v in &b {
                codec::put_varint(&mut gaps, u64::from(v - prev));
                prev = v;
            }
            let roaring = b.serialized_size();
            let sparse = b.max().is_some_and(|m| b.len() < u64::from(m) / 8 + 4096);
            if sparse && gaps.len() < roaring {
                prop_assert_eq!(&out[..4], &(gaps.len() as u32 | GAP_LIST).to_le_bytes());
                prop_assert_eq!(&out[4..], &gaps[..]);
            } else {
                prop_assert_eq!(&out[..4], &(roaring as u32).to_le_bytes());
            }
            let mut r = Reader::new(&out);
            prop_assert_eq!(get(&mut r).map_err(|e| TestCaseError::fail(e.to_string()))?, b);
            prop_assert_eq!(r.remaining(), 0);
        }

        /// Arbitrary bytes never panic the bitmap reader.
        #[test]
        fn bitmap_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = get(&mut Reader::new(&bytes));
        }

        /// The value index built block by block equals a direct definition: a string property
        /// with more than `VALUES_INDEXED_MAX` distinct values in the segment is overflowed
        /// (no entries); otherwise, per (property, value or none, day), the customers with such
        /// an event. Property 9 has no column (no value on any row).
        #[test]
        fn value_index_equals_its_definition(
            mut rows in proptest::collection::vec((0u32..30, -3i64..6, proptest::option::of(0u64..80)), 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..4),
            few in any::<bool>(),
            spread in prop_oneof![Just(1i64), Just(20_000i64)],
        ) {
            rows.sort_unstable_by_key(|r| (r.0, r.1));
            let mut cols = Columns::default();
            let mut col = crate::model::PropColumn::new(7, crate::model::PropType::Str);
            for &(cid, day, v) in &rows {
                cols.cid.push(cid);
                cols.ts.push(day * spread * DAY_US);
                cols.event.push(0);
                cols.stage.push(0);
                let v = if few { v.map(|v| v % 5) } else { v };
                col.valid.push(v.is_some());
                col.vals.push(v.unwrap_or(0));
            }
            cols.props.push(col);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(rows.len())).chain([0, rows.len()]).collect();
            cuts.sort_unstable();
            let mut got = ValueIndexBuilder::default();
            for w in cuts.windows(2) {
                got.add(&cols.slice(w[0]..w[1]), &[7, 9]);
            }
            let got = got.finish();
            let distinct: std::collections::BTreeSet<u64> = cols.props[0]
                .valid
                .iter()
                .zip(&cols.props[0].vals)
                .filter(|x| *x.0)
                .map(|x| *x.1)
                .collect();
            let mut want: BTreeMap<(u32, Option<u64>, i32), RoaringBitmap> = BTreeMap::new();
            for (j, &cid) in cols.cid.iter().enumerate() {
                let day = day_of(cols.ts[j]);
                if distinct.len() <= VALUES_INDEXED_MAX {
                    let v = cols.props[0].valid[j].then_some(cols.props[0].vals[j]);
                    want.entry((7, v, day)).or_default().insert(cid);
                }
                want.entry((9, None, day)).or_default().insert(cid);
            }
            prop_assert_eq!(got.overflow.contains(&7), distinct.len() > VALUES_INDEXED_MAX);
            prop_assert_eq!(got.days, want);
        }
    }

    /// Sets of more customers than are buffered (flushed while adding), over several calls,
    /// and calls whose customers do not ascend (inserted one by one): the sets are exact.
    #[test]
    fn day_sets_flush_and_take_unsorted_customers() {
        let rows = |cids: std::ops::Range<u32>| {
            let mut c = Columns::default();
            for cid in cids {
                for day in [0i64, 1 + i64::from(cid % 3 == 0)] {
                    c.cid.push(cid);
                    c.ts.push(day * DAY_US);
                    c.event.push(cid % 2);
                    c.stage.push(0);
                }
            }
            c
        };
        let mut sets = DaySets::default();
        for part in [0..1500, 1500..5000, 7000..7100, 6000..6500] {
            add_event_days(&mut sets, &rows(part));
        }
        let mut want: BTreeMap<(u32, i32), RoaringBitmap> = BTreeMap::new();
        for cid in (0..5000).chain(7000..7100).chain(6000..6500) {
            for day in [0, 1 + i32::from(cid % 3 == 0)] {
                want.entry((cid % 2, day)).or_default().insert(cid);
            }
        }
        assert!(want.values().any(|b| b.len() > 2 * PENDING_MAX as u64));
        assert_eq!(sets.into_map(), want);
    }

    proptest! {
        /// Per-(stage, day) and per-(event, day) bitmaps, built apart or split from
        /// per-(event, stage, day) ones, and derived into the rest, equal the bitmaps built
        /// row by row, whatever the block boundaries.
        #[test]
        fn derived_bitmaps_equal_direct(
            mut rows in proptest::collection::vec((0u32..40, -3i64..6, 0u32..5, 0u8..6), 0..300),
            cut in 0usize..300,
            spread in prop_oneof![Just(1i64), Just(20_000i64)],
        ) {
            // spread 20 000 puts the days of a block ~180 000 apart: too many key slots for
            // the dense path, so both the dense and the sorting path are compared.
            rows.sort_unstable();
            let mut cols = Columns::default();
            for &(cid, day, event, stage) in &rows {
                cols.cid.push(cid);
                cols.ts.push(day * spread * DAY_US + i64::from(event) * 1000);
                cols.event.push(event);
                cols.stage.push(stage);
            }
            let mut direct = Bitmaps::default();
            direct.add(&cols);
            let (mut stage_days, mut event_days) = (DaySets::default(), DaySets::default());
            let cut = cut.min(cols.len());
            for part in [cols.slice(0..cut), cols.slice(cut..cols.len())] {
                add_stage_days(&mut stage_days, &part);
                add_event_days(&mut event_days, &part);
            }
            let mut derived = Bitmaps {
                stage_days: stage_days.into_map(),
                ..Bitmaps::default()
            };
            let event_days = EventDays {
                days: event_days.into_map(),
            };
            derived.derive(&event_days);
            prop_assert_eq!(&derived, &direct);
            // One pass per (event, stage, day), split: the same per-(stage, day) and
            // per-(event, day) sets.
            let mut combined = DaySets::default();
            for part in [cols.slice(0..cut), cols.slice(cut..cols.len())] {
                add_event_stage_days(&mut combined, &part);
            }
            let (stage_days, days) = split_event_stage_days(combined);
            prop_assert_eq!(&stage_days, &direct.stage_days);
            prop_assert_eq!(&days, &event_days.days);
        }
    }
}
