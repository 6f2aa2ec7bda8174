//! The stage map, and re-staging history when it changes: every row whose stage followed the
//! map (stored with `model::STAGE_MAPPED`, or with no stage at all) takes the new map's stage,
//! as if it had been imported under the new map; explicit stages are kept (docs/QUERY.md §1.2).
//!
//! The change is carried out in one [`VersionEdit`]: the buffer is sealed first (its rows take
//! the old map's stages, in a segment), every segment holding a row whose stage changes is
//! rewritten — same rows, same sequence range, stages and stage indexes (bitmaps, per-day
//! sets, roll-ups) as the new map gives them — and the manifest that names the rewritten
//! segments also holds the new map. A crash before it is published leaves the old map and the
//! old segments (the new files are removed at the next open); after it, the new ones.
//!
//! Uses: `dict`, `error`, `file`, `ingest`, `limits`, `manifest`, `model`, `segment`; rooms `seal`, `version`.

use super::version::{NewSegment, SegmentsEdit, VersionEdit};
use super::{Db, Writer};
use crate::db::seal::unpublished;
use crate::dict::Dicts;
use crate::error::{DbError, Result};
use crate::file;
use crate::ingest::StageMap;
use crate::limits;
use crate::manifest::SegmentEntry;
use crate::model::{Columns, Stage, stage_follows_map};
use crate::segment::{self, ColumnSet, Segment, SegmentWriter};
use std::collections::HashMap;

/// The stored stage of a row that follows the map, per event id, under one stage map.
fn mapped_stages(dicts: &Dicts, map: &StageMap) -> Vec<u8> {
    (0..dicts.events.len() as u32)
        .map(|id| {
            let stage = dicts.events.name(id).and_then(|name| map.get(name)).copied();
            Stage::stored(stage, true)
        })
        .collect()
}

/// Re-stages `rows` (stored form) under `target` (from [`mapped_stages`]); returns whether any
/// stage changed. Rows with an explicit stage, and events `target` does not know, are kept.
fn restage_rows(rows: &mut Columns, target: &[u8]) -> bool {
    let mut changed = false;
    for (stage, &event) in rows.stage.iter_mut().zip(&rows.event) {
        if let Some(&new) = target.get(event as usize)
            && stage_follows_map(*stage)
            && *stage != new
        {
            *stage = new;
            changed = true;
        }
    }
    changed
}

/// Whether a stage-map change from `old` to `new` (stored stages per event id) changes any row
/// of `seg`: it holds one of the changed events, and a row of one follows the map.
fn segment_changes(seg: &Segment, (old, new): (&[u8], &[u8])) -> Result<bool> {
    let changed_event = |id: u32| old.get(id as usize) != new.get(id as usize);
    if !seg.footer.bitmaps.events.keys().any(|&id| changed_event(id)) {
        return Ok(false);
    }
    let set = ColumnSet {
        ts: false,
        event: true,
        stage: true,
        props: false,
        prop_mask: 0,
    };
    let mut rows = Columns::default();
    for i in 0..seg.footer.blocks.len() {
        seg.read_block_stored(i, set, &mut rows)?;
        if restage_rows(&mut rows, new) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes `seg`'s rows re-staged under `target` as segment `id` (synced, not published).
fn write_restaged(db: &Db, seg: &Segment, target: &[u8], (id, db_id): (u64, u32)) -> Result<NewSegment> {
    let inner = &*db.inner;
    let path = segment::seg_path(&inner.dir, id);
    let written = (|| -> Result<(crate::segment::Footer, u64)> {
        let mut sw = SegmentWriter::create(&path, seg.footer.props.clone(), inner.opts.zstd_level, db_id)?;
        let mut failed = None;
        let blocks = (0..seg.footer.blocks.len()).map_while(|i| {
            let mut rows = Columns::default();
            match seg.read_block_stored(i, ColumnSet::ALL, &mut rows) {
                Ok(()) => {
                    restage_rows(&mut rows, target);
                    Some(rows)
                }
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        });
        sw.push_blocks(blocks)?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(sw.finish(seg.footer.seq_min, seg.footer.seq_end)?)
    })();
    let (footer, file_len) = unpublished(written, &path)?;
    let entry = SegmentEntry {
        id,
        file_len,
        rows: seg.footer.rows,
        seq_min: seg.footer.seq_min,
        seq_end: seg.footer.seq_end,
    };
    Ok(NewSegment { entry, footer })
}

impl Db {
    /// Maps `event` to `stage` (`None` removes the mapping), for the events already stored as
    /// well as those committed from now on: every event of that name without an explicit stage
    /// takes the new stage in every answer, as if it had been imported under the new map. An
    /// explicit stage on an event always wins. Durable when this returns.
    pub fn set_stage(&self, event: &str, stage: Option<Stage>) -> Result<()> {
        self.set_stages(&[(event, stage)])
    }

    /// [`set_stage`](Self::set_stage) for several event names at once, in order (a later entry
    /// for the same name wins): one manifest switch for all of them, so either every mapping
    /// applies or, on an error, none does. Durable when this returns.
    ///
    /// The buffer is sealed first, and every segment holding an event whose stage changes is
    /// rewritten (its rows and indexes re-staged) before the switch; commits wait meanwhile.
    /// The cost is that of rewriting those segments (about a compaction of them); a change that
    /// moves no stored event (a new name, or events stored with explicit stages) writes none.
    pub fn set_stages(&self, entries: &[(&str, Option<Stage>)]) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.check_writable(&w)?;
        for (event, _) in entries {
            if event.is_empty() || event.len() > limits::NAME_BYTES_MAX {
                return Err(DbError::InvalidArgument(format!("event name of {} bytes", event.len())).into());
            }
        }
        let old_map = self.inner.stage_map.read().clone();
        let mut map = old_map.clone();
        for &(event, stage) in entries {
            match stage {
                Some(s) => map.insert(event.to_owned(), s),
                None => map.remove(event),
            };
        }
        if map == old_map {
            return Ok(());
        }
        // The buffer's rows were staged under the old map: they go into a segment first, so
        // that the rewrite below covers every stored row.
        self.flush_locked(&mut w)?;
        let segments = self.restage_segments(&mut w, (&old_map, &map))?;
        let edit = VersionEdit {
            stage_map: Some(map),
            segments,
            ..VersionEdit::default()
        };
        self.apply(&mut w, edit)
    }

    /// Rewrites the live segments that a change of the stage map from `old` to `new` changes;
    /// nothing is published (on an error, the files written are removed).
    fn restage_segments(
        &self,
        writer: &mut Writer,
        (old, new): (&StageMap, &StageMap),
    ) -> Result<SegmentsEdit> {
        let inner = &*self.inner;
        let (old_target, target) = {
            let dicts = inner.dicts.read();
            (mapped_stages(&dicts, old), mapped_stages(&dicts, new))
        };
        let version = inner.version.read().clone();
        let mut rewritten: Vec<Option<NewSegment>> = Vec::with_capacity(version.segments.len());
        let mut next_id = writer.manifest.next_segment;
        let result = (|| -> Result<()> {
            for seg in &version.segments {
                let new_seg = if segment_changes(seg, (&old_target, &target))? {
                    next_id += 1;
                    Some(write_restaged(
                        self,
                        seg,
                        &target,
                        (next_id - 1, writer.manifest.db_id),
                    )?)
                } else {
                    None
                };
                rewritten.push(new_seg);
            }
            if rewritten.iter().any(Option::is_some) {
                file::sync_dir(&inner.dir.join(segment::SEG_DIR))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for new_seg in rewritten.iter().flatten() {
                let _ = file::remove_if_exists(&segment::seg_path(&inner.dir, new_seg.entry.id));
            }
            return Err(e);
        }
        if rewritten.iter().all(Option::is_none) {
            return Ok(SegmentsEdit::Keep);
        }
        Ok(SegmentsEdit::Restage(rewritten))
    }

    /// The stage map (event name → stage).
    pub fn stage_map(&self) -> HashMap<String, Stage> {
        self.inner.stage_map.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restage_moves_only_rows_that_follow_the_map() {
        let mapped = |s: Stage| Stage::stored(Some(s), true);
        let mut rows = Columns {
            event: vec![0, 0, 1, 1, 2],
            stage: vec![
                mapped(Stage::Awareness),
                Stage::Purchase.code(),
                0,
                mapped(Stage::Consideration),
                0,
            ],
            ..Columns::default()
        };
        // Event 0 → retention, event 1 → no stage; event 2 is unknown to the target.
        let target = [mapped(Stage::Retention), 0];
        assert!(restage_rows(&mut rows, &target));
        assert_eq!(
            rows.stage,
            vec![mapped(Stage::Retention), Stage::Purchase.code(), 0, 0, 0]
        );
        assert!(!restage_rows(&mut rows, &target), "a second pass changes nothing");
    }
}
