//! Customer profiles as of a snapshot: every customer's latest value of each `customer.NAME`
//! property, built from the profile segments and the buffer's profile writes (docs/QUERY.md,
//! "Customer profiles"; docs/FORMAT.md, "Profiles").
//!
//! Every write is stored with its time; a property's value is that of the customer's write
//! with the latest timestamp that sets it (ties: the later commit). A snapshot builds the
//! table once, on first use.
//!
//! Uses: `error`, `limits`, `merge`, `model`, `segment`; rooms `seal`, `snapshot`, `version`.

use super::version::ProfilesEdit;
use super::{Db, Snapshot, Writer};
use crate::error::Result;
use crate::limits;
use crate::merge::{Merge, Source};
use crate::model::{Columns, PROFILE_PREFIX, PropType, Value};
use crate::segment::{ColumnSet, Segment};
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The latest profile values: one row per customer with a profile write (customer ids
/// ascending; `ts` = the latest write's time), one property column per `customer.NAME`
/// property (null where the customer never set it). Predicates compiled for events evaluate on
/// it unchanged: a profile property is a property like any other.
#[derive(Debug, Default)]
pub struct Profiles {
    /// The rows.
    pub rows: Columns,
    /// [`ValueGroups`] of the properties asked for so far (the table is shared by snapshots).
    groups: Mutex<HashMap<u32, Arc<ValueGroups>>>,
}

/// One profile property's groups: each customer's value and each value's customers.
#[derive(Debug, Default)]
pub struct ValueGroups {
    /// Each customer's value by internal id (`None`, or an id past the end: never set).
    pub values: Vec<Option<u64>>,
    /// The customers of each value, value slots ascending.
    pub members: Vec<(u64, RoaringBitmap)>,
}

impl Profiles {
    /// The groups of property `prop` (built once per table).
    pub fn groups(&self, prop: u32) -> Arc<ValueGroups> {
        if let Some(groups) = self.groups.lock().get(&prop) {
            return groups.clone();
        }
        let rows = &self.rows;
        let mut values = vec![None; rows.cid.last().map_or(0, |&c| c as usize + 1)];
        let mut members: BTreeMap<u64, RoaringBitmap> = BTreeMap::new();
        if let Some(col) = rows.prop(prop) {
            for (i, &cid) in rows.cid.iter().enumerate() {
                if col.valid[i] {
                    values[cid as usize] = Some(col.vals[i]);
                    members.entry(col.vals[i]).or_default().insert(cid);
                }
            }
        }
        let groups = Arc::new(ValueGroups {
            values,
            members: members.into_iter().collect(),
        });
        self.groups.lock().insert(prop, groups.clone());
        groups
    }

    /// Row of customer `cid`, if it has a profile.
    pub fn row_of(&self, cid: u32) -> Option<usize> {
        self.rows.cid.binary_search(&cid).ok()
    }

    /// Folds profile writes in (customer, timestamp, sequence) order into the table.
    fn fold(&mut self, block: &Columns) {
        for i in 0..block.len() {
            let cid = block.cid[i];
            if self.rows.cid.last() != Some(&cid) {
                self.rows.cid.push(cid);
                self.rows.ts.push(block.ts[i]);
                self.rows.event.push(0);
                self.rows.stage.push(0);
            }
            let row = self.rows.len() - 1;
            self.rows.ts[row] = block.ts[i];
            for p in &block.props {
                if p.valid[i] {
                    let col = self.rows.prop_mut(p.id, p.ty);
                    col.pad_to(row + 1);
                    col.valid[row] = true;
                    col.vals[row] = p.vals[i];
                }
            }
        }
    }
}

/// What a snapshot's profile table is built from: the version (its profile segments) and how
/// many of the buffer's profile writes the snapshot sees (the buffer only grows within a
/// version). Snapshots with the same key share one table.
pub(super) type ProfilesKey = (u64, usize);

impl Snapshot {
    /// The customers' latest profile values as of this snapshot.
    pub(crate) fn profiles(&self) -> Result<Arc<Profiles>> {
        if let Some(p) = self.profiles.get() {
            return Ok(p.clone());
        }
        let key = (self.version.generation, self.profile_rows.len());
        let cached = self.db().inner.profile_cache.lock().clone();
        if let Some((at, profiles)) = cached
            && at == key
        {
            return Ok(self.profiles.get_or_init(|| profiles).clone());
        }
        let mut sources: Vec<Source> = self
            .version
            .profiles
            .iter()
            .cloned()
            .map(Source::Segment)
            .collect();
        if !self.profile_rows.is_empty() {
            sources.push(Source::Memory(self.profile_rows.clone()));
        }
        let mut out = Profiles::default();
        let mut merge = Merge::new(sources, ColumnSet::ALL);
        let mut block = Columns::default();
        while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
            out.fold(&block);
        }
        out.rows.pad_props();
        let out = Arc::new(out);
        *self.db().inner.profile_cache.lock() = Some((key, out.clone()));
        Ok(self.profiles.get_or_init(|| out).clone())
    }

    /// The latest profile of `customer` (property names without the `customer.` prefix, sorted
    /// by name); empty for an unknown customer or one without profile writes.
    pub fn customer_profile(&self, customer: &str) -> Result<Vec<(String, Value)>> {
        let Some(cid) = self.customer_id(customer) else {
            return Ok(Vec::new());
        };
        let profiles = self.profiles()?;
        let Some(row) = profiles.row_of(cid) else {
            return Ok(Vec::new());
        };
        let dicts = self.dicts();
        let mut out = Vec::new();
        for p in &profiles.rows.props {
            if !p.valid[row] {
                continue;
            }
            let name = dicts.props.name(p.id).unwrap_or("");
            let name = name.strip_prefix(PROFILE_PREFIX).unwrap_or(name);
            let slot = p.vals[row];
            let value = match p.ty {
                PropType::Str => Value::Str(dicts.strings.name(slot as u32).unwrap_or("").to_owned()),
                PropType::I64 => Value::I64(slot as i64),
                PropType::F64 => Value::F64(f64::from_bits(slot)),
                PropType::Bool => Value::Bool(slot != 0),
            };
            out.push((name.to_owned(), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl Db {
    /// The edit that rewrites every profile segment as one, without the writes of customer
    /// `erase` (a `FORGET`) — or merely as one (a compaction). `Keep` when that changes nothing
    /// (fewer than two segments and none holding `erase`). Nothing is published.
    pub(super) fn rewrite_profiles(&self, writer: &Writer, erase: Option<u32>) -> Result<ProfilesEdit> {
        let inner = &*self.inner;
        let segments = inner.version.read().profiles.clone();
        let holds = |s: &Arc<Segment>| {
            erase.is_some_and(|cid| {
                s.footer
                    .blocks
                    .iter()
                    .any(|b| b.cid_min <= cid && cid <= b.cid_max)
            })
        };
        if segments.len() < 2 && !segments.iter().any(holds) {
            return Ok(ProfilesEdit::Keep);
        }
        let mut rows = Columns::default();
        let mut merge = Merge::new(
            segments.iter().cloned().map(Source::Segment).collect(),
            ColumnSet::ALL,
        );
        let mut block = Columns::default();
        while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
            match erase {
                Some(cid) => {
                    let keep: Vec<u32> = (0..block.len() as u32)
                        .filter(|&i| block.cid[i as usize] != cid)
                        .collect();
                    rows.extend_from(&block.gather(&keep));
                }
                None => rows.extend_from(&block),
            }
        }
        if rows.is_empty() {
            return Ok(ProfilesEdit::Replace(None));
        }
        let seq = (
            segments.first().map_or(0, |s| s.footer.seq_min),
            segments.last().map_or(0, |s| s.footer.seq_end),
        );
        let level = (inner.opts.zstd_level, writer.manifest.db_id);
        let mut next_id = writer.manifest.next_segment;
        Ok(ProfilesEdit::Replace(self.seal_rows(
            &rows,
            &mut next_id,
            (seq, level),
        )?))
    }
}
