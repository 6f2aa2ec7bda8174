//! Sealing: the buffer becomes a sealed segment (flush), and the writer of a segment from rows.
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `manifest`, `model`, `segment`, `wal`; rooms `version`.

use super::version::{NewSegment, ProfilesEdit, SegmentsEdit, VersionEdit};
use super::{Db, Writer};
use crate::buffer::Buffer;
use crate::dict::{self};
use crate::error::{DbError, Result};
use crate::file::{self};
use crate::manifest::SegmentEntry;
use crate::model::Columns;
use crate::segment::{self, Footer, SegmentWriter};
use crate::wal::WalFile;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `result`, removing the unpublished file `path` when it is an error (best effort: an open removes
/// such leftovers too).
pub(super) fn unpublished<T>(result: Result<T>, path: &Path) -> Result<T> {
    if result.is_err() {
        let _ = file::remove_if_exists(path);
    }
    result
}

/// Writes `rows` (sorted, or in the given sorted order) as sealed segment `path` holding
/// sequence numbers `seq`, fsyncs it and the segment directory; returns its footer and the
/// file length. Nothing is published.
pub(super) fn write_segment(
    dir: &Path,
    path: &Path,
    rows: (&Columns, Option<&[u32]>),
    seq: (u64, u64),
    (level, db_id): (i32, u32),
) -> Result<(Footer, u64)> {
    let props = rows.0.props.iter().map(|p| (p.id, p.ty)).collect();
    let mut sw = SegmentWriter::create(path, props, level, db_id)?;
    sw.push_rows(rows.0, rows.1)?;
    let written = sw.finish(seq.0, seq.1)?;
    file::sync_dir(&dir.join(segment::SEG_DIR))?;
    Ok(written)
}

/// A segment sealed but not published, or none (no rows of its kind).
type Sealed = Option<NewSegment>;

/// Removes a sealed, unpublished segment (best effort, as [`unpublished`]).
fn remove_sealed(dir: &Path, sealed: &Sealed) {
    if let Some(new) = sealed {
        let _ = file::remove_if_exists(&segment::seg_path(dir, new.entry.id));
    }
}

/// Profile writes as a segment stores them: event id 0 and no stage (the segment's event and
/// stage indexes are not read for profiles; `PROFILE_ROW` marks them only in the log and
/// the buffer).
fn as_stored_profiles(rows: &Columns) -> Columns {
    let mut out = rows.clone();
    out.event.fill(0);
    out.stage.fill(0);
    out
}

impl Db {
    /// Writes `rows` (sorted) as the next segment, id taken from `next_id`, covering sequence
    /// numbers `seq`; nothing when there are no rows. Nothing is published.
    pub(super) fn seal_rows(
        &self,
        rows: &Columns,
        next_id: &mut u64,
        (seq, level): ((u64, u64), (i32, u32)),
    ) -> Result<Sealed> {
        if rows.is_empty() {
            return Ok(None);
        }
        let id = *next_id;
        *next_id += 1;
        let path = segment::seg_path(&self.inner.dir, id);
        let (footer, file_len) = unpublished(
            write_segment(&self.inner.dir, &path, (rows, None), seq, level),
            &path,
        )?;
        let entry = SegmentEntry {
            id,
            file_len,
            rows: rows.len() as u64,
            seq_min: seq.0,
            seq_end: seq.1,
        };
        Ok(Some(NewSegment { entry, footer }))
    }

    /// Seals the buffer into a segment (durable, indexed), then drops the log it came from.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.flush_locked(&mut w)
    }

    /// Makes everything logged so far durable and visible (one fsync of the live log);
    /// returns the log's number.
    pub(in crate::internals::db) fn sync_log_locked(&self, writer: &mut Writer) -> Result<u64> {
        let inner = &*self.inner;
        let Some(wal) = writer.wal.as_ref() else {
            return Err(DbError::ReadOnly.into());
        };
        let (f, p) = wal.sync_handle();
        let number = wal.number;
        if let Err(e) = file::sync(&f, &p, false) {
            return Err(self.poison(writer, e.to_string()));
        }
        inner.sync.all_synced();
        inner.visible_seq.fetch_max(writer.next_seq, Ordering::SeqCst);
        Ok(number)
    }

    pub(in crate::internals::db) fn flush_locked(&self, writer: &mut Writer) -> Result<()> {
        let inner = &*self.inner;
        self.check_writable(writer)?;
        let buffer = writer.buffer.clone();
        let n = buffer.len();
        if n == 0 {
            return Ok(());
        }
        let dir = &inner.dir;
        // 1. Everything logged becomes durable and visible.
        let old_number = self.sync_log_locked(writer)?;
        // 2. Later commits go to a new log file.
        let new_wal = match WalFile::create(dir, old_number + 1, writer.manifest.db_id) {
            Ok(x) => x,
            Err(e) => return Err(self.poison(writer, e.to_string())),
        };
        inner.sync.written(writer.next_seq, new_wal.sync_handle());
        let new_number = new_wal.number;
        writer.wal = Some(new_wal);
        // 3. Write the segments (events, profile writes) and the dictionary entries they need.
        let (events, profiles) = buffer.sorted_stored(n);
        let seq = (buffer.seq_base(), buffer.seq_base() + n as u64);
        let written = (|| -> Result<(Sealed, Sealed, u64, dict::DictCounts)> {
            let level = (inner.opts.zstd_level, writer.manifest.db_id);
            let mut next_id = writer.manifest.next_segment;
            let events = self.seal_rows(&events, &mut next_id, (seq, level))?;
            let profiles = self.seal_rows(&as_stored_profiles(&profiles), &mut next_id, (seq, level));
            let profiles = profiles.inspect_err(|_| remove_sealed(dir, &events))?;
            let (delta, counts) = {
                let d = inner.dicts.read();
                (d.entries_since(writer.manifest.dict_counts), d.counts())
            };
            let dict_len = dict::append(dir, writer.manifest.dict_gen, writer.manifest.dict_len, &delta)
                .inspect_err(|_| {
                    remove_sealed(dir, &events);
                    remove_sealed(dir, &profiles);
                })?;
            Ok((events, profiles, dict_len, counts))
        })();
        // On failure nothing was published: the log still holds every row.
        let (events, profiles, dict_len, counts) = written?;
        // 4. Publish and install: readers switch to the new segments and an empty buffer, and
        // the sealed log is deleted.
        self.apply(
            writer,
            VersionEdit {
                segments: events.map_or(SegmentsEdit::Keep, SegmentsEdit::Append),
                profiles: profiles.map_or(ProfilesEdit::Keep, ProfilesEdit::Append),
                wal_start: Some(new_number),
                next_seq: Some(seq.1),
                dict_file: Some((writer.manifest.dict_gen, dict_len)),
                dict_counts: Some(counts),
                buffer: Some(Arc::new(Buffer::new(seq.1))),
                ..VersionEdit::default()
            },
        )
    }
}
