//! Roaring-bitmap indices over internal customer ids: customers per stage, per event name,
//! per UTC day, and per (stage, UTC day). Built when a segment is sealed, stored in its footer,
//! and unioned across segments (and the buffer) at query time.
//!
//! Uses: `codec`, `model`.

use gap_list::{get, put};

mod day_table;
mod days;
mod gap_list;
mod rollup;
mod value_index;

pub use day_table::{Decoded, Table, decode as decode_day_table, encode_days};
pub use days::{DaySets, EventDays, add_event_stage_days, split_event_stage_days};
pub use rollup::Rollups;
pub use value_index::{ValueIndex, ValueIndexBuilder};

use crate::codec::{self, DecodeError, Reader};
use crate::model::{Columns, day_of, stage_code};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Called by an index encoder between its bitmaps with the bytes encoded so far, which it may
/// take away (see [`Bitmaps::encode_heads`]).
pub type Seal<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<()>;

/// Adds `cid` to `set`: an append when it is above the maximum (rows arrive sorted by customer),
/// a search otherwise.
fn add_cid(set: &mut RoaringBitmap, cid: u32) {
    if set.try_push(cid).is_err() {
        set.insert(cid);
    }
}

/// The bitmaps of one segment (or of a union of segments). Each set is shared (copied on
/// write): a union of the segments' indices takes a segment's set as it is where no other
/// segment has one, and a snapshot's copy of that union with a few buffered rows added copies
/// only the sets those rows touch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bitmaps {
    /// Customers with an event of each stage code (index 0 = events without a stage).
    pub stages: [Arc<RoaringBitmap>; 6],
    /// Customers with an event of each event-name id.
    pub events: BTreeMap<u32, Arc<RoaringBitmap>>,
    /// Customers with any event on each UTC day.
    pub days: BTreeMap<i32, Arc<RoaringBitmap>>,
    /// Customers with an event of each stage code on each UTC day.
    pub stage_days: BTreeMap<(u8, i32), Arc<RoaringBitmap>>,
}

/// `set`, to change (copied first if it is shared).
fn own(set: &mut Arc<RoaringBitmap>) -> &mut RoaringBitmap {
    Arc::make_mut(set)
}

/// Unions `add` into the set at `key` of `map`: `add` itself (shared, not copied) when there is
/// none yet.
fn union_into<K: Ord + Copy>(map: &mut BTreeMap<K, Arc<RoaringBitmap>>, key: K, add: &Arc<RoaringBitmap>) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(add.clone());
        }
        std::collections::btree_map::Entry::Occupied(mut slot) => *own(slot.get_mut()) |= &**add,
    }
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
                days.push((stage_code(cols.stage[j]).min(5), day_of(cols.ts[j])));
                j += 1;
            }
            evs.sort_unstable();
            evs.dedup();
            days.sort_unstable();
            days.dedup();
            for &e in &evs {
                add_cid(own(self.events.entry(e).or_default()), cid);
            }
            let mut last_day = None;
            let mut stage_seen = [false; 6];
            for &(stage, day) in &days {
                stage_seen[stage as usize] = true;
                add_cid(own(self.stage_days.entry((stage, day)).or_default()), cid);
            }
            let mut days_only: Vec<i32> = days.iter().map(|d| d.1).collect();
            days_only.sort_unstable();
            for d in days_only {
                if last_day != Some(d) {
                    add_cid(own(self.days.entry(d).or_default()), cid);
                    last_day = Some(d);
                }
            }
            for (code, seen) in stage_seen.iter().enumerate() {
                if *seen {
                    add_cid(own(&mut self.stages[code]), cid);
                }
            }
            i = j;
        }
    }

    /// The bitmaps whose per-(stage, day) sets are `stage_days`, the others derived from them
    /// and from `event_days` (see [`derive`](Self::derive)).
    pub fn from_stage_days(
        stage_days: BTreeMap<(u8, i32), RoaringBitmap>,
        event_days: &EventDays,
    ) -> Bitmaps {
        let mut bitmaps = Bitmaps {
            stage_days: stage_days
                .into_iter()
                .map(|(key, set)| (key, Arc::new(set)))
                .collect(),
            ..Bitmaps::default()
        };
        bitmaps.derive(event_days);
        bitmaps
    }

    /// Sets the per-stage and per-day bitmaps from `stage_days`, and the per-event bitmaps from
    /// `event_days` (which must cover the same rows): the same sets [`Bitmaps::add`] builds.
    pub fn derive(&mut self, event_days: &EventDays) {
        self.stages = Default::default();
        self.days.clear();
        for (&(stage, day), b) in &self.stage_days {
            *own(&mut self.stages[usize::from(stage.min(5))]) |= &**b;
            *own(self.days.entry(day).or_default()) |= &**b;
        }
        self.events.clear();
        for (&(event, _), b) in &event_days.days {
            *own(self.events.entry(event).or_default()) |= b;
        }
    }

    /// Removes the customers in `gone` from every bitmap (an erasure not yet compacted away).
    pub fn remove_customers(&mut self, gone: &RoaringBitmap) {
        // A set is copied only when it holds an erased customer.
        let remove = |set: &mut Arc<RoaringBitmap>| {
            if !set.is_disjoint(gone) {
                *own(set) -= gone;
            }
        };
        self.stages.iter_mut().for_each(remove);
        self.events.values_mut().for_each(remove);
        self.events.retain(|_, b| !b.is_empty());
        self.days.values_mut().for_each(remove);
        self.days.retain(|_, b| !b.is_empty());
        self.stage_days.values_mut().for_each(remove);
        self.stage_days.retain(|_, b| !b.is_empty());
    }

    /// Unions `other` into `self`.
    pub fn union_with(&mut self, other: &Bitmaps) {
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            if a.is_empty() {
                *a = b.clone();
            } else if !b.is_empty() {
                *own(a) |= &**b;
            }
        }
        for (k, b) in &other.events {
            union_into(&mut self.events, *k, b);
        }
        for (k, b) in &other.days {
            union_into(&mut self.days, *k, b);
        }
        for (k, b) in &other.stage_days {
            union_into(&mut self.stage_days, *k, b);
        }
    }

    /// Appends the form written before the day table (docs/FORMAT.md §5.3: each set in the
    /// portable roaring format or as a gap list, prefixed by its length), which readers still
    /// take: tests write it.
    #[cfg(test)]
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        self.encode_heads(out, &mut |_| Ok(()))?;
        // `days` is not stored: it is the union over stages of `stage_days`.
        codec::put_u32(out, self.stage_days.len() as u32);
        for ((s, d), b) in &self.stage_days {
            out.push(*s);
            codec::put_i32(out, *d);
            put(out, b)?;
        }
        Ok(())
    }

    /// Appends the customers per stage and per event name (docs/FORMAT.md §5.3), calling `seal`
    /// with `out` after each set (it may take the bytes so far away: a large footer compresses
    /// its index as it is encoded).
    pub fn encode_heads(&self, out: &mut Vec<u8>, seal: Seal<'_>) -> std::io::Result<()> {
        for b in &self.stages {
            put(out, b)?;
        }
        codec::put_u32(out, self.events.len() as u32);
        for (k, b) in &self.events {
            codec::put_u32(out, *k);
            put(out, b)?;
            seal(out)?;
        }
        Ok(())
    }

    /// Decodes what [`Bitmaps::encode`] wrote.
    pub fn decode(reader: &mut Reader<'_>) -> Result<Bitmaps, DecodeError> {
        let mut out = Bitmaps::decode_heads(reader)?;
        for _ in 0..count(reader, 9)? {
            let s = reader.u8()?;
            let d = reader.i32()?;
            if s > 5 {
                return Err(reader.err(format!("stage code {s}")));
            }
            let b = get(reader)?;
            *own(out.days.entry(d).or_default()) |= &b;
            out.stage_days.insert((s, d), Arc::new(b));
        }
        Ok(out)
    }

    /// Decodes what [`Bitmaps::encode_heads`] wrote (the other sets empty).
    pub fn decode_heads(reader: &mut Reader<'_>) -> Result<Bitmaps, DecodeError> {
        let mut out = Bitmaps::default();
        for b in &mut out.stages {
            *b = Arc::new(get(reader)?);
        }
        for _ in 0..count(reader, 8)? {
            let k = reader.u32()?;
            out.events.insert(k, Arc::new(get(reader)?));
        }
        Ok(out)
    }
}

/// A count of entries of at least `min_entry` bytes each, checked against the data left.
fn count(reader: &mut Reader<'_>, min_entry: usize) -> Result<usize, DecodeError> {
    let n = reader.u32()? as usize;
    if n > reader.remaining() / min_entry {
        return Err(reader.err("bitmap count exceeds the data"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
