//! Sealing: the buffer becomes a sealed segment (flush), and the writer of a segment from rows.
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `manifest`, `model`, `segment`, `wal`; rooms `version`.

use super::version::{NewSegment, SegmentsEdit, VersionEdit};
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

/// `r`, removing the unpublished file `path` when it is an error (best effort: an open removes
/// such leftovers too).
pub(super) fn unpublished<T>(r: Result<T>, path: &Path) -> Result<T> {
    if r.is_err() {
        let _ = file::remove_if_exists(path);
    }
    r
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

impl Db {
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
        // 3. Write the segment and the dictionary entries it needs.
        let id = writer.manifest.next_segment;
        let rows = buffer.sorted_prefix(n);
        let seq_min = buffer.seq_base();
        let seq_end = seq_min + n as u64;
        let path = segment::seg_path(dir, id);
        let written = (|| -> Result<((Footer, u64), u64, dict::DictCounts)> {
            let seg = write_segment(
                dir,
                &path,
                (&rows, None),
                (seq_min, seq_end),
                (inner.opts.zstd_level, writer.manifest.db_id),
            )?;
            let (delta, counts) = {
                let d = inner.dicts.read();
                (d.entries_since(writer.manifest.dict_counts), d.counts())
            };
            let dict_len = dict::append(dir, writer.manifest.dict_gen, writer.manifest.dict_len, &delta)?;
            Ok((seg, dict_len, counts))
        })();
        // On failure nothing was published: the log still holds every event.
        let (seg, dict_len, counts) = unpublished(written, &path)?;
        let (footer, file_len) = seg;
        // 4. Publish and install: readers switch to the new segment and an empty buffer, and the
        // sealed log is deleted.
        let entry = SegmentEntry {
            id,
            file_len,
            rows: n as u64,
            seq_min,
            seq_end,
        };
        self.apply(
            writer,
            VersionEdit {
                segments: SegmentsEdit::Append(NewSegment { entry, footer }),
                wal_start: Some(new_number),
                next_seq: Some(seq_end),
                dict_file: Some((writer.manifest.dict_gen, dict_len)),
                dict_counts: Some(counts),
                buffer: Some(Arc::new(Buffer::new(seq_end))),
                ..VersionEdit::default()
            },
        )
    }
}
