//! Saved cohorts in the database: the catalog (names, definitions, a static cohort's members),
//! changed only through a `VersionEdit` like everything else the manifest holds, and the cache
//! of dynamic cohorts' members evaluated on the newest snapshot.
//!
//! What a definition means is the query layer's business (`exec::cohort`); here a cohort is a
//! name, a text and, when static, a bitmap of internal customer ids.
//!
//! Uses: `error`, `index`, `limits`, `manifest`; rooms `snapshot`, `version`.

use super::Db;
use crate::db::snapshot::Snapshot;
use crate::db::version::VersionEdit;
use crate::error::{DbError, Result};
use crate::index::Bitmaps;
use crate::limits;
use crate::manifest::CohortEntry;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::Arc;

/// What a dynamic cohort's members depend on: the version (segments, erasures), how many
/// buffered rows the snapshot sees, and the catalog (a dropped and re-created name must not
/// find the old members).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::internals::db) struct CacheKey {
    pub(in crate::internals::db) version: u64,
    pub(in crate::internals::db) rows: usize,
    pub(in crate::internals::db) catalog: u64,
}

/// Members of dynamic cohorts for one [`CacheKey`]: a snapshot with another key clears it, so
/// it holds the newest snapshot's sets only (and `Db::query`, which takes a fresh snapshot per
/// statement, finds them again until the next commit).
#[derive(Default)]
pub(in crate::internals::db) struct CohortCache {
    key: Option<CacheKey>,
    sets: HashMap<String, Arc<RoaringBitmap>>,
    /// The bitmap indices restricted to the customers of a set of cohort filters, the newest
    /// [`RESTRICTED_KEPT`] asked for (`BY COHORT a, b, c` asks for three).
    bitmaps: Vec<(String, Arc<Bitmaps>)>,
    /// The customers a set of cohort filters admits and hides, the newest [`RESTRICTED_KEPT`]
    /// asked for (computing them takes milliseconds a query on 400k customers).
    masks: Vec<(String, CustomerMasks)>,
    /// The union of the bitmap indices with the buffered rows a snapshot sees (when it sees
    /// any: without, the version's own union is shared): the statements `Db::query` runs one
    /// after the other between two commits — a dashboard's charts — build it once.
    union: Option<Arc<Bitmaps>>,
}

/// The customers a set of cohort filters admits and hides, `(admitted, hidden)`; `None` when
/// it admits every customer with an event (nothing to restrict).
pub type CustomerMasks = Option<(Arc<RoaringBitmap>, Arc<RoaringBitmap>)>;

/// How many restricted copies of the bitmap indices [`CohortCache`] keeps.
const RESTRICTED_KEPT: usize = 8;

impl Db {
    /// The saved cohorts, by name.
    pub fn cohorts(&self) -> Arc<Vec<CohortEntry>> {
        self.inner.cohorts.read().1.clone()
    }

    /// Changes the saved cohorts: `change` receives the current list (by name) and returns the
    /// new one, or refuses; it runs under the writer lock, so no other change interleaves.
    /// Everything committed before is made durable first; the new list is published in one
    /// manifest (durable when this returns).
    pub fn change_cohorts(
        &self,
        change: impl FnOnce(&[CohortEntry]) -> Result<Vec<CohortEntry>>,
    ) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.check_writable(&w)?;
        let mut cohorts = change(&w.manifest.cohorts)?;
        cohorts.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = cohorts.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(DbError::InvalidArgument(format!("cohort `{}` given twice", pair[0].name)).into());
        }
        let customers = self.inner.dicts.read().customers.len() as u32;
        for c in &cohorts {
            if c.name.is_empty() || c.name.len() > limits::NAME_BYTES_MAX {
                return Err(
                    DbError::InvalidArgument(format!("cohort name of {} bytes", c.name.len())).into(),
                );
            }
            if c.definition.len() > limits::QUERY_BYTES_MAX {
                return Err(DbError::InvalidArgument(format!(
                    "cohort `{}`: definition of {} bytes",
                    c.name,
                    c.definition.len()
                ))
                .into());
            }
            if c.members
                .as_ref()
                .and_then(RoaringBitmap::max)
                .is_some_and(|id| id >= customers)
            {
                return Err(DbError::InvalidArgument(format!(
                    "cohort `{}` names a customer id the dictionary does not hold",
                    c.name
                ))
                .into());
            }
        }
        // A static cohort may hold customers committed since the last flush, whose dictionary
        // entries no manifest covers yet: a flush publishes them first, so that the manifest
        // never names an id its dictionary lacks.
        let covered = w.manifest.dict_counts.customers;
        if cohorts.iter().any(|c| {
            c.members
                .as_ref()
                .and_then(RoaringBitmap::max)
                .is_some_and(|id| id >= covered)
        }) {
            self.flush_locked(&mut w)?;
        } else {
            // Every commit before the change is durable before it: a power cut never keeps a
            // cohort and loses the events it was made from (under `Sync::Never` too).
            self.sync_log_locked(&mut w)?;
        }
        let edit = VersionEdit {
            cohorts: Some(cohorts),
            ..VersionEdit::default()
        };
        self.apply(&mut w, edit)
    }
}

/// The saved cohorts without customer `cid` in any static one, when some static one held it
/// (`FORGET CUSTOMER` publishes this with the erasure).
pub(in crate::internals::db) fn without_customer(
    cohorts: &[CohortEntry],
    cid: u32,
) -> Option<Vec<CohortEntry>> {
    if !cohorts
        .iter()
        .any(|c| c.members.as_ref().is_some_and(|m| m.contains(cid)))
    {
        return None;
    }
    let mut out = cohorts.to_vec();
    for c in &mut out {
        if let Some(members) = &mut c.members {
            members.remove(cid);
        }
    }
    Some(out)
}

impl Snapshot {
    /// The saved cohorts as of this snapshot, by name.
    pub fn cohorts(&self) -> &[CohortEntry] {
        &self.cohorts
    }

    /// The saved cohort `name`, if any.
    pub fn cohort(&self, name: &str) -> Option<&CohortEntry> {
        self.cohorts.iter().find(|c| c.name == name)
    }

    /// The members of dynamic cohort `name` evaluated earlier on a snapshot that sees exactly
    /// what this one sees.
    pub fn cached_cohort(&self, name: &str) -> Option<Arc<RoaringBitmap>> {
        let cache = self.db().inner.cohort_cache.lock();
        if cache.key != Some(self.cache_key) {
            return None;
        }
        cache.sets.get(name).cloned()
    }

    /// Keeps the members of dynamic cohort `name` evaluated on this snapshot.
    pub fn cache_cohort(&self, name: &str, members: Arc<RoaringBitmap>) {
        self.with_cache(|cache| {
            cache.sets.insert(name.to_owned(), members);
        });
    }

    /// The bitmap indices restricted by the cohort filters `key`, kept by
    /// [`cache_bitmaps`](Self::cache_bitmaps) on a snapshot that sees what this one sees.
    pub fn cached_bitmaps(&self, key: &str) -> Option<Arc<Bitmaps>> {
        let cache = self.db().inner.cohort_cache.lock();
        if cache.key != Some(self.cache_key) {
            return None;
        }
        cache
            .bitmaps
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, b)| b.clone())
    }

    /// Keeps the bitmap indices restricted by the cohort filters `key`.
    pub fn cache_bitmaps(&self, key: &str, bitmaps: Arc<Bitmaps>) {
        self.with_cache(|cache| {
            cache.bitmaps.retain(|(k, _)| k != key);
            if cache.bitmaps.len() == RESTRICTED_KEPT {
                cache.bitmaps.remove(0);
            }
            cache.bitmaps.push((key.to_owned(), bitmaps));
        });
    }

    /// The union of the bitmap indices and the buffered rows, kept by
    /// [`cache_union`](Self::cache_union) on a snapshot that sees what this one sees.
    pub(in crate::internals::db) fn cached_union(&self) -> Option<Arc<Bitmaps>> {
        let cache = self.db().inner.cohort_cache.lock();
        if cache.key != Some(self.cache_key) {
            return None;
        }
        cache.union.clone()
    }

    /// The union kept for an earlier snapshot of the same version that sees fewer buffered
    /// rows, and how many it sees: the buffer of one version only grows, so this snapshot's
    /// union is that one with the rows after them added.
    pub(in crate::internals::db) fn cached_union_before(&self) -> Option<(usize, Arc<Bitmaps>)> {
        let cache = self.db().inner.cohort_cache.lock();
        let key = cache.key?;
        let earlier = key.version == self.cache_key.version && key.rows < self.cache_key.rows;
        earlier.then(|| cache.union.clone().map(|union| (key.rows, union)))?
    }

    /// Keeps the union of the bitmap indices and the buffered rows.
    pub(in crate::internals::db) fn cache_union(&self, union: Arc<Bitmaps>) {
        self.with_cache(|cache| cache.union = Some(union));
    }

    /// The customers the cohort filters `key` admit and hide, kept by
    /// [`cache_masks`](Self::cache_masks) on a snapshot that sees what this one sees.
    pub fn cached_masks(&self, key: &str) -> Option<CustomerMasks> {
        let cache = self.db().inner.cohort_cache.lock();
        if cache.key != Some(self.cache_key) {
            return None;
        }
        cache.masks.iter().find(|(k, _)| k == key).map(|(_, m)| m.clone())
    }

    /// Keeps the customers the cohort filters `key` admit and hide.
    pub fn cache_masks(&self, key: &str, masks: CustomerMasks) {
        self.with_cache(|cache| {
            cache.masks.retain(|(k, _)| k != key);
            if cache.masks.len() == RESTRICTED_KEPT {
                cache.masks.remove(0);
            }
            cache.masks.push((key.to_owned(), masks));
        });
    }

    /// Runs `change` on the cache, emptied first when it held another snapshot's entries.
    fn with_cache(&self, change: impl FnOnce(&mut CohortCache)) {
        let mut cache = self.db().inner.cohort_cache.lock();
        if cache.key != Some(self.cache_key) {
            *cache = CohortCache {
                key: Some(self.cache_key),
                ..CohortCache::default()
            };
        }
        change(&mut cache);
    }
}
