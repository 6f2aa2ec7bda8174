//! The live version (segments, buffer, pending erasures) and the one way to change it: a
//! `VersionEdit`, published and installed by `Db::apply`.
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `index`, `ingest`, `manifest`, `merge`, `model`, `segment`, `wal`.

use super::{Db, Writer};
use crate::buffer::Buffer;
use crate::dict::{self, DictCounts, DictDelta, Dicts};
use crate::error::Result;
use crate::file;
use crate::index::Bitmaps;
use crate::ingest::StageMap;
use crate::manifest::{self, CohortEntry, Erasure, Manifest, SegmentEntry};
use crate::merge::Source;
use crate::model::Stage;
use crate::segment::{Footer, Segment};
use crate::wal;
use roaring::RoaringBitmap;
use std::sync::{Arc, OnceLock};

pub(super) struct Version {
    pub(in crate::internals::db) segments: Vec<Arc<Segment>>,
    /// Customer-profile segments (docs/FORMAT.md, "Profiles"), in sequence order.
    pub(in crate::internals::db) profiles: Vec<Arc<Segment>>,
    pub(in crate::internals::db) buffer: Arc<Buffer>,
    /// Pending erasures (as in the live manifest).
    pub(in crate::internals::db) forgotten: Arc<Vec<Erasure>>,
    /// Per segment: the customers whose rows in it are hidden by a pending erasure.
    pub(in crate::internals::db) masks: Vec<Option<Arc<RoaringBitmap>>>,
    /// Unique per version made by this process (the cohort cache's key, with the number of
    /// buffered rows a snapshot sees).
    pub(in crate::internals::db) generation: u64,
    /// The union of the segments' bitmap indices, made on first use (see [`Version::bitmaps`]).
    bitmaps: OnceLock<Arc<Bitmaps>>,
}

/// Source of [`Version::generation`].
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Version {
    pub(in crate::internals::db) fn new(
        (segments, profiles): (Vec<Arc<Segment>>, Vec<Arc<Segment>>),
        buffer: Arc<Buffer>,
        forgotten: Arc<Vec<Erasure>>,
    ) -> Version {
        let masks = segments
            .iter()
            .map(|s| {
                let hidden: RoaringBitmap = forgotten
                    .iter()
                    .filter(|e| s.footer.seq_end <= e.limit)
                    .map(|e| e.cid)
                    .collect();
                (!hidden.is_empty()).then(|| Arc::new(hidden))
            })
            .collect();
        Version {
            segments,
            profiles,
            buffer,
            forgotten,
            masks,
            generation: NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            bitmaps: OnceLock::new(),
        }
    }

    /// The union of the segments' bitmap indices, erased customers removed: made once per
    /// version and shared by all its snapshots (a statement on a fresh snapshot copied the
    /// whole index first — ~2 ms at 10M events, more than the statements the index answers).
    pub(in crate::internals::db) fn bitmaps(&self) -> &Arc<Bitmaps> {
        self.bitmaps.get_or_init(|| {
            let mut union = Bitmaps::default();
            for (segment, mask) in self.segments.iter().zip(&self.masks) {
                match mask {
                    Some(mask) => {
                        let mut own = segment.footer.bitmaps.clone();
                        own.remove_customers(mask);
                        union.union_with(&own);
                    }
                    None => union.union_with(&segment.footer.bitmaps),
                }
            }
            Arc::new(union)
        })
    }

    /// The segments as merge sources, erased customers masked.
    pub(in crate::internals::db) fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.segments.iter().zip(&self.masks).map(|(s, m)| match m {
            Some(m) => Source::Masked(s.clone(), m.clone()),
            None => Source::Segment(s.clone()),
        })
    }
}

/// A segment written and synced but not yet published: its manifest entry and its footer.
pub(in crate::internals::db) struct NewSegment {
    pub(in crate::internals::db) entry: SegmentEntry,
    pub(in crate::internals::db) footer: Footer,
}

/// How an edit changes the list of live segments.
#[derive(Default)]
pub(in crate::internals::db) enum SegmentsEdit {
    /// Unchanged.
    #[default]
    Keep,
    /// A new newest segment (a flush or an import).
    Append(NewSegment),
    /// The oldest `n` segments merged into one (a compaction); they become obsolete.
    ReplaceOldest(usize, NewSegment),
    /// One entry per live segment, in order: `Some` replaces it by a rewrite of the same rows
    /// and sequence range (a stage-map change re-staging it), which makes it obsolete.
    Restage(Vec<Option<NewSegment>>),
}

/// How an edit changes the list of customer-profile segments.
#[derive(Default)]
pub(in crate::internals::db) enum ProfilesEdit<S = NewSegment> {
    /// Unchanged.
    #[default]
    Keep,
    /// A new newest profile segment (a flush).
    Append(S),
    /// Every profile segment replaced by this one, or by none (a compaction, an erasure).
    Replace(Option<S>),
}

/// How an edit changes the in-memory dictionaries. The change is made after the manifest is
/// published and before the new version is installed, so that no snapshot sees a row whose
/// ids the dictionaries do not hold yet.
#[derive(Default)]
pub(in crate::internals::db) enum DictsEdit<'a> {
    /// Unchanged (a flush: commits already extended them).
    #[default]
    Keep,
    /// Entries applied in place (or on a copy, when a running query holds the dictionaries).
    Apply(&'a DictDelta),
    /// Replaced whole (an import's dictionaries extended ahead; a compaction's scrubbed ones).
    Replace(Box<Dicts>),
}

/// One change to the live version: everything a flush, an import, a compaction, an erasure or
/// a stage-map change alters, described as data and carried out by [`Db::apply`] — the one
/// place that publishes a manifest and installs what it names (lsm-tree's `Version` edits are
/// the model). Fields left at their default keep the current value.
#[derive(Default)]
pub(in crate::internals::db) struct VersionEdit<'a> {
    pub(in crate::internals::db) segments: SegmentsEdit,
    pub(in crate::internals::db) profiles: ProfilesEdit,
    /// The first log file still needed (older logs are deleted once installed).
    pub(in crate::internals::db) wal_start: Option<u64>,
    /// The first sequence number not in a segment.
    pub(in crate::internals::db) next_seq: Option<u64>,
    /// The dictionary file: (generation, valid length). A new generation deletes the old file.
    pub(in crate::internals::db) dict_file: Option<(u64, u64)>,
    /// Dictionary entry counts at the file's length; when the dictionaries change too, they
    /// must then hold exactly this many entries (else the handle is poisoned).
    pub(in crate::internals::db) dict_counts: Option<DictCounts>,
    pub(in crate::internals::db) dicts: DictsEdit<'a>,
    /// Pending erasures, whole.
    pub(in crate::internals::db) forgotten: Option<Vec<Erasure>>,
    /// The stage map, whole.
    pub(in crate::internals::db) stage_map: Option<StageMap>,
    /// The saved cohorts, whole (by name ascending).
    pub(in crate::internals::db) cohorts: Option<Vec<CohortEntry>>,
    /// The identity links, whole (by anonymous id ascending).
    pub(in crate::internals::db) links: Option<Vec<(u32, u32)>>,
    /// A new (empty) buffer for later commits, after a seal.
    pub(in crate::internals::db) buffer: Option<Arc<Buffer>>,
}

impl VersionEdit<'_> {
    /// The manifest that follows `live` with this edit applied.
    fn manifest_after(&self, live: &Manifest) -> Manifest {
        let mut m = live.clone();
        m.number += 1;
        match &self.segments {
            SegmentsEdit::Keep => {}
            SegmentsEdit::Append(new) => m.segments.push(new.entry.clone()),
            SegmentsEdit::ReplaceOldest(n, new) => {
                m.segments.splice(0..*n, [new.entry.clone()]);
            }
            SegmentsEdit::Restage(list) => {
                for (entry, new) in m.segments.iter_mut().zip(list) {
                    if let Some(new) = new {
                        *entry = new.entry.clone();
                        m.next_segment = m.next_segment.max(new.entry.id + 1);
                    }
                }
            }
        }
        if let SegmentsEdit::Append(new) | SegmentsEdit::ReplaceOldest(_, new) = &self.segments {
            m.next_segment = m.next_segment.max(new.entry.id + 1);
        }
        match &self.profiles {
            ProfilesEdit::Keep => {}
            ProfilesEdit::Append(new) => m.profiles.push(new.entry.clone()),
            ProfilesEdit::Replace(new) => m.profiles = new.iter().map(|n| n.entry.clone()).collect(),
        }
        if let ProfilesEdit::Append(new) | ProfilesEdit::Replace(Some(new)) = &self.profiles {
            m.next_segment = m.next_segment.max(new.entry.id + 1);
        }
        if let Some(n) = self.wal_start {
            m.wal_start = n;
        }
        if let Some(n) = self.next_seq {
            m.next_seq = n;
        }
        if let Some((generation, len)) = self.dict_file {
            m.dict_gen = generation;
            m.dict_len = len;
        }
        if let Some(counts) = self.dict_counts {
            m.dict_counts = counts;
        }
        if let Some(forgotten) = &self.forgotten {
            m.forgotten = forgotten.clone();
        }
        if let Some(map) = &self.stage_map {
            let mut list: Vec<(String, Stage)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
            list.sort();
            m.stage_map = list;
        }
        if let Some(cohorts) = &self.cohorts {
            m.cohorts = cohorts.clone();
        }
        if let Some(links) = &self.links {
            m.links = links.clone();
        }
        m
    }

    /// Whether readers need a new [`Version`] (segments, buffer or erasures change).
    fn changes_version(&self) -> bool {
        !matches!(self.segments, SegmentsEdit::Keep)
            || !matches!(self.profiles, ProfilesEdit::Keep)
            || self.buffer.is_some()
            || self.forgotten.is_some()
    }
}

impl Db {
    /// Carries out `edit`: publishes the next manifest (durable when this returns), opens the
    /// new segment, changes the dictionaries, installs the new version for readers, and deletes
    /// what the old manifest alone needed (logs, a dictionary generation, merged segments, the
    /// old manifest; a failure there leaves garbage that the next open removes). Any failure
    /// from publishing on poisons the handle: whether the new manifest is live is then unknown
    /// until the database is reopened.
    pub(in crate::internals::db) fn apply(
        &self,
        writer: &mut Writer,
        mut edit: VersionEdit<'_>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let m = edit.manifest_after(&writer.manifest);
        let new_version = edit.changes_version();
        if let Err(e) = m.publish(&inner.dir) {
            return Err(self.poison(writer, e.to_string()));
        }
        let old = std::mem::replace(&mut writer.manifest, m);
        let (merged, new, restaged) = match std::mem::take(&mut edit.segments) {
            SegmentsEdit::Keep => (0, None, Vec::new()),
            SegmentsEdit::Append(new) => (0, Some(new), Vec::new()),
            SegmentsEdit::ReplaceOldest(n, new) => (n, Some(new), Vec::new()),
            SegmentsEdit::Restage(list) => (0, None, list),
        };
        let opened = new.map(|new| self.open_new_segment(new)).transpose();
        let restaged: Result<Vec<Option<Arc<Segment>>>> = (restaged.into_iter())
            .map(|new| new.map(|new| self.open_new_segment(new)).transpose())
            .collect();
        let (opened, restaged) = match (opened, restaged) {
            (Ok(opened), Ok(restaged)) => (opened, restaged),
            (Err(e), _) | (_, Err(e)) => return Err(self.poison(writer, e.to_string())),
        };
        let profiles = match self.open_profiles(std::mem::take(&mut edit.profiles)) {
            Ok(profiles) => profiles,
            Err(e) => return Err(self.poison(writer, e.to_string())),
        };
        if let Err(why) = self.change_dicts(edit.dicts, edit.dict_counts) {
            return Err(self.poison(writer, why));
        }
        let mut obsolete = Vec::new();
        if new_version {
            let mut v = inner.version.write();
            obsolete = v.segments[..merged].to_vec();
            let segments = opened.into_iter();
            let mut segments: Vec<Arc<Segment>> = if merged > 0 {
                segments.chain(v.segments[merged..].iter().cloned()).collect()
            } else {
                v.segments.iter().cloned().chain(segments).collect()
            };
            for (slot, new) in segments.iter_mut().zip(restaged) {
                if let Some(new) = new {
                    obsolete.push(std::mem::replace(slot, new));
                }
            }
            let buffer = edit.buffer.clone().unwrap_or_else(|| v.buffer.clone());
            let profiles = match profiles {
                ProfilesEdit::Keep => v.profiles.clone(),
                ProfilesEdit::Append(new) => v.profiles.iter().cloned().chain([new]).collect(),
                ProfilesEdit::Replace(new) => {
                    obsolete.extend(v.profiles.iter().cloned());
                    new.into_iter().collect()
                }
            };
            *v = Arc::new(Version::new(
                (segments, profiles),
                buffer,
                Arc::new(writer.manifest.forgotten.clone()),
            ));
        }
        if let Some(buffer) = edit.buffer {
            writer.buffer = buffer;
        }
        if let Some(map) = edit.stage_map {
            *inner.stage_map.write() = map;
        }
        if let Some(cohorts) = edit.cohorts {
            let mut catalog = inner.cohorts.write();
            *catalog = (catalog.0 + 1, Arc::new(cohorts));
        }
        if let Some(links) = edit.links {
            *inner.links.write() = Arc::new(super::links::Links::new(links));
            // Cohort members depend on the links: the catalog's number keys their cache.
            let mut catalog = inner.cohorts.write();
            catalog.0 += 1;
        }
        for seg in &obsolete {
            seg.mark_obsolete();
        }
        self.remove_replaced(&old, &writer.manifest);
        Ok(())
    }

    /// Opens the new profile segment of an edit, if any.
    fn open_profiles(&self, edit: ProfilesEdit) -> Result<ProfilesEdit<Arc<Segment>>> {
        Ok(match edit {
            ProfilesEdit::Keep => ProfilesEdit::Keep,
            ProfilesEdit::Append(new) => ProfilesEdit::Append(self.open_new_segment(new)?),
            ProfilesEdit::Replace(new) => {
                ProfilesEdit::Replace(new.map(|new| self.open_new_segment(new)).transpose()?)
            }
        })
    }

    /// Opens a published segment for readers, sharing the database's caches.
    fn open_new_segment(&self, new: NewSegment) -> Result<Arc<Segment>> {
        let inner = &*self.inner;
        let seg = Segment::open_written(&inner.dir, new.entry.id, new.entry.file_len, new.footer)?;
        Ok(Arc::new(
            seg.with_cache(inner.cache.clone())
                .with_key_cache(inner.key_cache.clone()),
        ))
    }

    /// Makes the in-memory dictionaries' change of an edit; an error means they and the
    /// published manifest disagree.
    fn change_dicts(
        &self,
        change: DictsEdit<'_>,
        counts: Option<DictCounts>,
    ) -> std::result::Result<(), String> {
        let mut dicts = self.inner.dicts.write();
        match change {
            DictsEdit::Keep => return Ok(()),
            DictsEdit::Replace(new) => *dicts = Arc::new(*new),
            DictsEdit::Apply(delta) => {
                Arc::make_mut(&mut *dicts)
                    .apply(delta)
                    .map_err(|why| format!("internal error: {why}"))?;
            }
        }
        match counts {
            Some(counts) if dicts.counts() != counts => {
                Err("internal error: dictionary counts disagree with the manifest".into())
            }
            _ => Ok(()),
        }
    }

    /// Deletes the files `old` needed and `new` does not: logs before `new.wal_start` (when it
    /// moved), the old dictionary generation, the old manifest. Merged segments are deleted
    /// when their last reader drops them (`Segment::mark_obsolete`).
    fn remove_replaced(&self, old: &Manifest, new: &Manifest) {
        let dir = &self.inner.dir;
        if new.wal_start > old.wal_start {
            for k in wal::list(dir).unwrap_or_default() {
                if k < new.wal_start {
                    let _ = file::remove_if_exists(&wal::wal_path(dir, k));
                }
            }
        }
        if new.dict_gen != old.dict_gen {
            let _ = file::remove_if_exists(&dict::dict_path(dir, old.dict_gen));
        }
        let _ = file::remove_if_exists(&dir.join(manifest::manifest_name(old.number)));
    }
}
