//! Sealing: the buffer becomes a sealed segment (flush), and the writer of a segment from rows.

use super::{Db, Writer};
use crate::buffer::Buffer;
use crate::db::version::Version;
use crate::dict::{self};
use crate::error::{DbError, Result};
use crate::file::{self};
use crate::manifest::{self, SegmentEntry};
use crate::model::Columns;
use crate::segment::{self, Footer, SegmentWriter};
use crate::wal::{self, WalFile};
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

    pub(in crate::db) fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        let inner = &*self.inner;
        self.check_writable(w)?;
        let buffer = w.buffer.clone();
        let n = buffer.len();
        if n == 0 {
            return Ok(());
        }
        let dir = &inner.dir;
        // 1. Everything logged becomes durable and visible.
        let Some(old_wal) = w.wal.as_ref() else {
            return Err(DbError::ReadOnly.into());
        };
        let (f, p) = old_wal.sync_handle();
        let old_number = old_wal.number;
        if let Err(e) = file::sync(&f, &p, false) {
            return Err(self.poison(w, e.to_string()));
        }
        inner.sync.all_synced();
        inner.visible_seq.fetch_max(w.next_seq, Ordering::SeqCst);
        // 2. Later commits go to a new log file.
        let new_wal = match WalFile::create(dir, old_number + 1, w.manifest.db_id) {
            Ok(x) => x,
            Err(e) => return Err(self.poison(w, e.to_string())),
        };
        inner.sync.written(w.next_seq, new_wal.sync_handle());
        let new_number = new_wal.number;
        w.wal = Some(new_wal);
        // 3. Write the segment and the dictionary entries it needs.
        let id = w.manifest.next_segment;
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
                (inner.opts.zstd_level, w.manifest.db_id),
            )?;
            let (delta, counts) = {
                let d = inner.dicts.read();
                (d.entries_since(w.manifest.dict_counts), d.counts())
            };
            let dict_len = dict::append(dir, w.manifest.dict_gen, w.manifest.dict_len, &delta)?;
            Ok((seg, dict_len, counts))
        })();
        // On failure nothing was published: the log still holds every event.
        let (seg, dict_len, counts) = unpublished(written, &path)?;
        let file_len = seg.1;
        // 4. Publish.
        let mut m = w.manifest.clone();
        m.number += 1;
        m.next_segment = id + 1;
        m.wal_start = new_number;
        m.next_seq = seq_end;
        m.dict_len = dict_len;
        m.dict_counts = counts;
        m.segments.push(SegmentEntry {
            id,
            file_len,
            rows: n as u64,
            seq_min,
            seq_end,
        });
        // 5. Install: readers switch to the new segment and an empty buffer.
        let (seg, old_manifest) = self.publish_segment(w, m, id, seg)?;
        let new_buffer = Arc::new(Buffer::new(seq_end));
        {
            let mut v = inner.version.write();
            let mut segments = v.segments.clone();
            segments.push(seg);
            *v = Arc::new(Version::new(segments, new_buffer.clone(), v.forgotten.clone()));
        }
        w.buffer = new_buffer;
        // 6. Drop what is no longer needed (a failure leaves garbage removed at next open).
        for k in wal::list(dir).unwrap_or_default() {
            if k < new_number {
                let _ = file::remove_if_exists(&wal::wal_path(dir, k));
            }
        }
        let _ = file::remove_if_exists(&dir.join(manifest::manifest_name(old_manifest)));
        Ok(())
    }
}
