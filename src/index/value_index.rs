//! The value index: customers per (property, value) for properties of few distinct values.
//!
//! Uses: `codec`, `model`; rooms `days`, `gap_list`.

use crate::codec::{self, DecodeError, Reader};
use crate::index::days::{DaySets, add_major_days};
use crate::index::gap_list::get;
use crate::model::Columns;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;

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
    /// The form written before the day table (docs/FORMAT.md §5.3), which readers still take:
    /// tests write it.
    #[cfg(test)]
    pub fn encode(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        self.encode_overflow(out);
        codec::put_u32(out, self.days.len() as u32);
        for (&(p, v, d), b) in &self.days {
            put_value_key(out, (p, v));
            codec::put_i32(out, d);
            super::gap_list::put(out, b)?;
        }
        Ok(())
    }

    /// Appends `n u32 | n × prop u32`: the properties not indexed (a segment with a day table
    /// stores the sets there).
    pub fn encode_overflow(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.overflow.len() as u32);
        for p in &self.overflow {
            codec::put_u32(out, *p);
        }
    }

    /// Decodes what [`ValueIndex::encode_overflow`] wrote (no sets).
    pub fn decode_overflow(reader: &mut Reader<'_>) -> Result<ValueIndex, DecodeError> {
        let mut out = ValueIndex::default();
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 4 {
            return Err(reader.err("overflow count exceeds the data"));
        }
        for _ in 0..n {
            out.overflow.insert(reader.u32()?);
        }
        Ok(out)
    }

    /// Decodes what [`ValueIndex::encode`] wrote.
    pub fn decode(reader: &mut Reader<'_>) -> Result<ValueIndex, DecodeError> {
        let mut out = ValueIndex::decode_overflow(reader)?;
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 13 {
            return Err(reader.err("value bitmap count exceeds the data"));
        }
        for _ in 0..n {
            let (p, v) = get_value_key(reader)?;
            let d = reader.i32()?;
            let b = get(reader)?;
            if out.overflow.contains(&p) || out.days.insert((p, v, d), b).is_some() {
                return Err(reader.err("bad value bitmap entry"));
            }
        }
        Ok(out)
    }
}

/// Appends a (property, value) key: `prop u32 | has_value u8 | [value varint]`.
pub(super) fn put_value_key(out: &mut Vec<u8>, (prop, value): (u32, Option<u64>)) {
    codec::put_u32(out, prop);
    match value {
        Some(value) => {
            out.push(1);
            codec::put_varint(out, value);
        }
        None => out.push(0),
    }
}

/// Reads what [`put_value_key`] wrote.
pub(super) fn get_value_key(reader: &mut Reader<'_>) -> Result<(u32, Option<u64>), DecodeError> {
    let prop = reader.u32()?;
    let value = match reader.u8()? {
        0 => None,
        1 => Some(reader.varint()?),
        _ => return Err(reader.err("bad value flag")),
    };
    Ok((prop, value))
}
