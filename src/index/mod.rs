//! Roaring-bitmap indices over internal customer ids: customers per stage, per event name,
//! per UTC day, and per (stage, UTC day). Built when a segment is sealed, stored in its footer,
//! and unioned across segments (and the buffer) at query time.
//!
//! Uses: `codec`, `model`.

use gap_list::{get, put};

mod days;
mod gap_list;
mod rollup;
mod value_index;

pub use days::{DaySets, EventDays, add_event_stage_days, split_event_stage_days};
pub use rollup::Rollups;
pub use value_index::{ValueIndex, ValueIndexBuilder};

use crate::codec::{self, DecodeError, Reader};
use crate::model::{Columns, day_of, stage_code};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;

/// Adds `cid` to `set`: an append when it is above the maximum (rows arrive sorted by customer),
/// a search otherwise.
fn add_cid(set: &mut RoaringBitmap, cid: u32) {
    if set.try_push(cid).is_err() {
        set.insert(cid);
    }
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
                days.push((stage_code(cols.stage[j]).min(5), day_of(cols.ts[j])));
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
    pub fn decode(reader: &mut Reader<'_>) -> Result<Bitmaps, DecodeError> {
        fn count(reader: &mut Reader<'_>, min_entry: usize) -> Result<usize, DecodeError> {
            let n = reader.u32()? as usize;
            if n > reader.remaining() / min_entry {
                return Err(reader.err("bitmap count exceeds the data"));
            }
            Ok(n)
        }
        let mut out = Bitmaps::default();
        for b in &mut out.stages {
            *b = get(reader)?;
        }
        for _ in 0..count(reader, 8)? {
            let k = reader.u32()?;
            out.events.insert(k, get(reader)?);
        }
        for _ in 0..count(reader, 9)? {
            let s = reader.u8()?;
            let d = reader.i32()?;
            if s > 5 {
                return Err(reader.err(format!("stage code {s}")));
            }
            let b = get(reader)?;
            *out.days.entry(d).or_default() |= &b;
            out.stage_days.insert((s, d), b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
