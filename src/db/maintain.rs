//! Maintenance: compaction (which carries out erasures), erasure (FORGET), statistics and
//! verification.
//!
//! Uses: `compaction`, `dict`, `error`, `file`, `manifest`, `merge`, `model`, `segment`; rooms `seal`, `version`.

use super::version::{DictsEdit, NewSegment, SegmentsEdit, VersionEdit};
use super::{Db, Stats, Writer};
use crate::compaction;
use crate::db::seal::unpublished;
use crate::dict::{self, Dicts};
use crate::error::{DbError, Result};
use crate::file::{self, FileError};
use crate::manifest::{Erasure, SegmentEntry};
use crate::merge::Source;
use crate::model::{Columns, PropType};
use crate::segment::{self, ColumnSet, Footer, SegmentWriter};
use roaring::RoaringBitmap;
use std::path::Path;
use std::sync::atomic::Ordering;

pub(super) fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Db {
    /// Merges all live segments into one, without blocking readers (and blocking writers only
    /// while the new manifest is published). Returns the number of segments merged.
    pub fn compact(&self) -> Result<usize> {
        let inner = &*self.inner;
        let _guard = inner.compaction.lock();
        let (segs, sources, erasures, id, db_id) = {
            let mut w = inner.writer.lock();
            self.check_writable(&w)?;
            let v = inner.version.read().clone();
            // One segment is rewritten only to carry out pending erasures.
            if v.segments.is_empty() || (v.segments.len() < 2 && v.masks.iter().all(Option::is_none)) {
                return Ok(0);
            }
            let id = w.manifest.next_segment;
            w.manifest.next_segment += 1;
            let sources: Vec<Source> = v.sources().collect();
            (
                v.segments.clone(),
                sources,
                v.forgotten.clone(),
                id,
                w.manifest.db_id,
            )
        };
        let dir = &inner.dir;
        let path = segment::seg_path(dir, id);
        let seq_min = segs.first().map_or(0, |s| s.footer.seq_min);
        let seq_end = segs.last().map_or(0, |s| s.footer.seq_end);
        let mut strings = RoaringBitmap::new();
        let merged = (|| -> Result<(u64, (Footer, u64))> {
            let mut props: Vec<(u32, PropType)> = segs.iter().flat_map(|s| s.footer.props.clone()).collect();
            props.sort_unstable_by_key(|p| p.0);
            props.dedup_by_key(|p| p.0);
            let mut sw = SegmentWriter::create(&path, props, inner.opts.zstd_level, db_id)?;
            let rows = compaction::merge_into(&mut sw, sources, &mut strings)?;
            let written = sw.finish(seq_min, seq_end)?;
            file::sync_dir(&dir.join(segment::SEG_DIR))?;
            Ok((rows, written))
        })();
        let (rows, (footer, file_len)) = unpublished(merged, &path)?;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        let k = segs.len();
        let same = w.manifest.segments.len() >= k
            && w.manifest.segments.iter().zip(&segs).all(|(e, s)| e.id == s.id);
        assert!(same, "compaction inputs must still be the oldest live segments");
        // Erasures carried out by this merge: every segment they hid rows in was an input.
        let mut forgotten = w.manifest.forgotten.clone();
        forgotten.retain(|e| !(erasures.contains(e) && e.limit <= seq_end));
        // With erasures carried out, the dictionary is rewritten without the erased customers'
        // ids and without the string values that no remaining row uses.
        let mut edit = VersionEdit::default();
        if forgotten.len() < w.manifest.forgotten.len() {
            match self.scrub_dictionary(&w, k, strings) {
                Ok((dicts, generation, len)) => {
                    edit.dict_file = Some((generation, len));
                    edit.dicts = DictsEdit::Replace(Box::new(dicts));
                }
                Err(e) => {
                    let _ = file::remove_if_exists(&path);
                    return Err(e);
                }
            }
        }
        let entry = SegmentEntry {
            id,
            file_len,
            rows,
            seq_min,
            seq_end,
        };
        edit.segments = SegmentsEdit::ReplaceOldest(k, NewSegment { entry, footer });
        // The profile segments become one too (under the writer lock: a flush cannot add one
        // in between).
        w.manifest.next_segment = w.manifest.next_segment.max(id + 1);
        edit.profiles = match self.rewrite_profiles(&w, None) {
            Ok(profiles) => profiles,
            Err(e) => {
                let _ = file::remove_if_exists(&path);
                return Err(e);
            }
        };
        edit.forgotten = Some(forgotten);
        self.apply(&mut w, edit)?;
        Ok(k)
    }

    /// Writes the next dictionary generation for a compaction that carries out erasures: the
    /// entries in the file now (the live manifest's counts), with every string value that no
    /// row uses any more vacated. `used` holds the string ids of the merged segment; the
    /// segments sealed while it was merged (after the first `merged_count`) and the buffer are read here,
    /// under the writer lock, so no commit can start using a value in between. Returns the new
    /// dictionaries, the generation and its length.
    fn scrub_dictionary(
        &self,
        writer: &Writer,
        merged_count: usize,
        mut used: RoaringBitmap,
    ) -> Result<(Dicts, u64, u64)> {
        let inner = &*self.inner;
        let dir = &inner.dir;
        let v = inner.version.read().clone();
        for seg in v.segments.iter().skip(merged_count) {
            for i in 0..seg.footer.blocks.len() {
                compaction::string_refs(&seg.read_block(i, ColumnSet::ALL)?, &mut used);
            }
        }
        let (events, profiles) = writer.buffer.sorted_prefix(writer.buffer.len());
        compaction::string_refs(&events, &mut used);
        compaction::string_refs(&profiles, &mut used);
        for seg in &v.profiles {
            for i in 0..seg.footer.blocks.len() {
                compaction::string_refs(&seg.read_block(i, ColumnSet::ALL)?, &mut used);
            }
        }
        let upto = writer.manifest.dict_counts;
        let mut dicts = (**inner.dicts.read()).clone();
        let vacate: Vec<dict::DictEntry> = (0..upto.strings)
            .filter(|&id| !used.contains(id) && !dicts.strings.is_vacant(id))
            .map(|id| dict::DictEntry::vacate(dict::DictKind::Str, id))
            .collect();
        dicts
            .apply(&dict::DictDelta { entries: vacate })
            .map_err(|why| DbError::Internal(format!("vacating unused string values: {why}")))?;
        let generation = writer.manifest.dict_gen + 1;
        let path = dict::dict_path(dir, generation);
        let written = dict::rewrite(dir, generation, &dicts, upto, writer.manifest.db_id).and_then(|len| {
            file::sync_dir(dir)?;
            Ok(len)
        });
        match written {
            Ok(len) => Ok((dicts, generation, len)),
            Err(e) => {
                let _ = file::remove_if_exists(&path);
                Err(e.into())
            }
        }
    }

    /// Erases every event of `customer` committed so far (a GDPR erasure request). From the
    /// moment this returns — durably, across crashes — no read of this database (queries,
    /// exports, timelines, bitmaps, statistics) includes those events; the next
    /// [`compact`](Db::compact) physically rewrites the segments that held them. Events
    /// committed for the same id afterwards are new data and are kept. Returns the number of
    /// events erased (0 for an unknown customer).
    ///
    /// A known id's linked anonymous ids (`LINK`) are the same person: they are erased too,
    /// each first (one erasure each, so a crash in between leaves some erased and the rest
    /// linked; repeating the call finishes it), and their links go with them.
    pub fn forget_customer(&self, customer: &str) -> Result<u64> {
        let linked: Vec<String> = {
            let dicts = self.inner.dicts.read().clone();
            let links = self.links();
            dicts.customers.get(customer).map_or_else(Vec::new, |cid| {
                (links.anonymous_of(cid).iter())
                    .filter_map(|&id| dicts.customers.name(id).map(str::to_owned))
                    .collect()
            })
        };
        let mut erased = 0u64;
        for anonymous in &linked {
            erased += self.forget_one(anonymous)?;
        }
        Ok(erased + self.forget_one(customer)?)
    }

    /// [`forget_customer`](Db::forget_customer) of one id.
    fn forget_one(&self, customer: &str) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        let Some(cid) = inner.dicts.read().customers.get(customer) else {
            return Ok(0);
        };
        // 1. Every event of the customer so far goes into a segment (and the log that held
        // them is deleted), so the erasure only has to cover segments.
        self.flush_locked(&mut w)?;
        // The end of the last event segment (not `next_seq`: a flush of profile writes alone
        // seals no event segment, and a compaction carries an erasure out only when its limit
        // is within the merged segments).
        let limit = w.manifest.segments.last().map_or(0, |s| s.seq_end);
        // 2. Count what becomes hidden.
        let v = inner.version.read().clone();
        let cid_only = ColumnSet {
            ts: false,
            event: false,
            stage: false,
            props: false,
            prop_mask: 0,
        };
        let mut rows = 0u64;
        for (seg, mask) in v.segments.iter().zip(&v.masks) {
            if mask.as_ref().is_some_and(|m| m.contains(cid)) {
                continue;
            }
            for (i, b) in seg.footer.blocks.iter().enumerate() {
                if b.cid_min <= cid && cid <= b.cid_max {
                    let cols = seg.read_block(i, cid_only)?;
                    rows += cols.cid.iter().filter(|&&c| c == cid).count() as u64;
                }
            }
        }
        // 3. Unbind the customer's id in the dictionary (it keeps its number; its text is gone
        // from the dictionary file at the compaction that carries out the erasure), so that
        // events committed for the same id from now on get a new customer number.
        let unbind = dict::DictDelta {
            entries: vec![dict::DictEntry::vacate(dict::DictKind::Customer, cid)],
        };
        let dict_len = dict::append(&inner.dir, w.manifest.dict_gen, w.manifest.dict_len, &unbind)?;
        // 4. Publish the erasure (durable when the manifest is) and install it: from here on
        // every snapshot masks the customer.
        let mut forgotten = w.manifest.forgotten.clone();
        match forgotten.binary_search_by_key(&cid, |e| e.cid) {
            Ok(i) => {
                forgotten[i].limit = forgotten[i].limit.max(limit);
                forgotten[i].rows += rows;
            }
            Err(i) => forgotten.insert(i, Erasure { cid, limit, rows }),
        }
        // Static cohorts lose the customer in the same manifest, and the profile segments are
        // rewritten without the customer's writes (they are small: no erasure is left pending).
        let profiles = self.rewrite_profiles(&w, Some(cid))?;
        let edit = VersionEdit {
            profiles,
            dict_file: Some((w.manifest.dict_gen, dict_len)),
            dicts: DictsEdit::Apply(&unbind),
            forgotten: Some(forgotten),
            cohorts: super::cohorts::without_customer(&w.manifest.cohorts, cid),
            links: super::links::without_customer(&w.manifest.links, cid),
            ..VersionEdit::default()
        };
        self.apply(&mut w, edit)?;
        Ok(rows)
    }

    /// Storage statistics.
    pub fn stats(&self) -> Stats {
        // Counts only: no snapshot (which would sort the buffer).
        let version = self.inner.version.read().clone();
        let visible = self.inner.visible_seq.load(Ordering::SeqCst);
        // The visible prefix of the buffer, less the profile writes it holds beside events.
        let visible_rows = visible
            .saturating_sub(version.buffer.seq_base())
            .min(version.buffer.len() as u64);
        let buffered = version.buffer.events_in(visible_rows as usize) as u64;
        let sealed: u64 = version.segments.iter().map(|s| s.footer.rows).sum();
        let segment_bytes: u64 = version.segments.iter().map(|s| s.file_len()).sum();
        let hidden: u64 = version.forgotten.iter().map(|e| e.rows).sum();
        Stats {
            events: (sealed + buffered).saturating_sub(hidden),
            customers: self.inner.dicts.read().customers.live() as u64,
            segments: version.segments.len(),
            buffered_events: buffered,
            bytes_on_disk: dir_size(&self.inner.dir),
            segment_bytes,
            bytes_per_event: if sealed == 0 {
                0.0
            } else {
                segment_bytes as f64 / sealed as f64
            },
            pending_erasures: version.forgotten.len() as u64,
            pending_erased_events: hidden,
            cache_bytes: (self.inner.cache.used() + self.inner.key_cache.used()) as u64,
        }
    }

    /// Checks every checksum of every live file, and that every id stored in a segment (customer,
    /// event name, property and its type, string value; the bitmap index's customers and event
    /// names) has its dictionary entry. Returns the number of sealed events checked. (Opening
    /// already checked the manifest, the dictionary log and the log, whose rows' ids replay checks.)
    pub fn verify(&self) -> Result<u64> {
        let snap = self.snapshot();
        let d = snap.dicts();
        let (customers, events, props, strings) = (
            d.customers.len() as u64,
            d.events.len() as u64,
            d.props.len() as u64,
            d.strings.len() as u64,
        );
        let over = |what: &str, id: u64, n: u64| {
            format!("{what} id {id} has no dictionary entry (the dictionary has {n})")
        };
        // An erased customer's id is vacated in the dictionary; rows that still use it must be
        // hidden by a pending erasure. Vacated string values are used by no stored row at all.
        // Profile segments store event id 0 (no event is meant): their event column is not checked.
        let check = |cols: &Columns,
                     hidden: Option<&RoaringBitmap>,
                     profile: bool|
         -> std::result::Result<(), String> {
            if let Some(&c) = cols.cid.iter().max().filter(|&&c| u64::from(c) >= customers) {
                return Err(over("customer", c.into(), customers));
            }
            if let Some(&c) = cols
                .cid
                .iter()
                .find(|&&c| d.customers.is_vacant(c) && !hidden.is_some_and(|h| h.contains(c)))
            {
                return Err(format!(
                    "customer id {c} was erased but a visible row still uses it"
                ));
            }
            if let Some(&e) = cols
                .event
                .iter()
                .max()
                .filter(|&&e| !profile && u64::from(e) >= events)
            {
                return Err(over("event name", e.into(), events));
            }
            crate::model::check_values(cols)?;
            for p in &cols.props {
                match d.prop_types.get(p.id as usize) {
                    None => return Err(over("property", p.id.into(), props)),
                    Some(&ty) if ty != p.ty => {
                        return Err(format!(
                            "property id {} is stored as {} but the dictionary says {ty}",
                            p.id, p.ty
                        ));
                    }
                    Some(_) => {}
                }
                if p.ty == PropType::Str
                    && let Some(s) = p
                        .vals
                        .iter()
                        .zip(&p.valid)
                        .filter(|(_, v)| **v)
                        .map(|(x, _)| *x)
                        .max()
                    && s >= strings
                {
                    return Err(over("string value", s, strings));
                }
                if p.ty == PropType::Str
                    && let Some(s) = p
                        .vals
                        .iter()
                        .zip(&p.valid)
                        .find(|&(&x, &v)| v && d.strings.is_vacant(x as u32))
                        .map(|(x, _)| *x)
                {
                    return Err(format!(
                        "string value id {s} was erased but a stored row still uses it"
                    ));
                }
            }
            Ok(())
        };
        let mut rows = 0;
        for (s, mask) in snap.version.segments.iter().zip(&snap.version.masks) {
            rows += s.verify_with(|cols| check(cols, mask.as_deref(), false))?;
            let b = &s.footer.bitmaps;
            let max_cid = b.stages.iter().filter_map(|x| x.max()).max();
            let bad = max_cid
                .filter(|&c| u64::from(c) >= customers)
                .map(|c| over("customer (bitmap index)", c.into(), customers))
                .or_else(|| {
                    b.events
                        .keys()
                        .find(|&&e| u64::from(e) >= events)
                        .map(|&e| over("event name (bitmap index)", e.into(), events))
                });
            if let Some(why) = bad {
                return Err(FileError::corrupt(s.path(), s.footer_offset(), why).into());
            }
        }
        (snap.version.profiles.iter())
            .try_for_each(|s| s.verify_with(|cols| check(cols, None, true)).map(drop))?;
        Ok(rows)
    }
}
