//! Writing a segment: blocks of columns encoded and compressed chunk by chunk, the indices
//! built alongside, synced in the background while written, then the footer and trailer.
//!
//! Uses: `codec`, `file`, `index`, `limits`, `model`; rooms `encoding`, `footer`.

use super::encoding;
use super::{BlockMeta, ChunkRef, FIXED_COLUMNS};
use crate::codec::{self};
use crate::file::{self, FileResult, IoContext, Kind};
use crate::index::{self, Bitmaps, DaySets, EventDays, Rollups, ValueIndexBuilder};
use crate::limits;
use crate::model::{Columns, PropType, join};
use crate::segment::footer::{
    Footer, INDEX_FRAME_BYTES, INDEX_PARALLEL_ROWS, INDEX_SPLIT_BYTES, encode_footer_pieces,
};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The indices of a segment being written (docs/FORMAT.md §5.3).
#[derive(Default)]
pub(super) struct Indexer {
    /// Customers per (event, stage, UTC day): split into the per-(stage, day) and per-(event,
    /// day) sets when the segment is finished, and the other bitmaps derived from those.
    event_stage_days: DaySets<(u32, u8, i32)>,
    rollups: Rollups,
    values: ValueIndexBuilder,
}

impl Indexer {
    /// Adds rows sorted by customer (continuing the order of earlier rows); `strs` are the
    /// string properties of the segment.
    fn add(&mut self, cols: &Columns, strs: &[u32]) {
        index::add_event_stage_days(&mut self.event_stage_days, cols);
        self.rollups.add(cols);
        self.values.add(cols, strs);
    }
}

/// Writes a segment block by block.
pub struct SegmentWriter {
    path: PathBuf,
    file: File,
    offset: u64,
    level: i32,
    props: Vec<(u32, PropType)>,
    blocks: Vec<BlockMeta>,
    index: Indexer,
    rows: u64,
    ts_min: i64,
    ts_max: i64,
    raw: Vec<u8>,
    /// The compression context, made at the first chunk.
    zstd: Option<codec::Compressor>,
    /// The timestamp encoding: tag 9; tag 7 or tag 2 as builds before it wrote them (tests of
    /// reading old segments).
    ts_tag: u8,
    /// Makes the written blocks durable in the background while later ones are encoded.
    ahead: SyncAhead,
    /// A temporary file (an import's sorted run, see [`SegmentWriter::temporary`]): no
    /// indices, no syncs.
    temporary: bool,
}

/// The timestamp tag every new segment of this process is written with, when a test asked for
/// an old one ([`write_legacy_timestamps`]).
#[cfg(feature = "failpoints")]
static LEGACY_TIMESTAMPS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Test builds only: from now on, this process writes segments' timestamps as builds before
/// tag 9 did — `7` (two-width bit-packed deltas) or `2` (varint deltas) — or as today (`0`):
/// how the compatibility fixture under `tests/fixtures/` was made.
#[cfg(feature = "failpoints")]
pub fn write_legacy_timestamps(tag: u8) {
    LEGACY_TIMESTAMPS.store(tag, std::sync::atomic::Ordering::SeqCst);
}

fn legacy_timestamps() -> Option<u8> {
    #[cfg(feature = "failpoints")]
    {
        let tag = LEGACY_TIMESTAMPS.load(std::sync::atomic::Ordering::SeqCst);
        if matches!(tag, 2 | 7) {
            return Some(tag);
        }
    }
    None
}

/// Bytes written between two requests to the background syncer while blocks are written.
pub(super) const SYNC_AHEAD_BYTES: u64 = 8 << 20;

/// When the footer is about to be encoded, the blocks written since the last request are
/// synced in the background if they are at least this many bytes; a smaller segment (a test,
/// a small flush) is synced only by its final fsync, on the writer's thread.
pub(super) const SYNC_AHEAD_MIN_BYTES: u64 = 1 << 20;

/// A background thread that fdatasyncs a segment file while it is written (FORMAT §5.5), so
/// that the final fsync, which the manifest waits for, has only the last bytes left to write.
/// Every sync's result is kept: [`SyncAhead::finish`] returns the first failure.
pub(super) struct SyncAhead {
    /// Bytes between two requests while blocks are written.
    every: u64,
    /// The least unsynced bytes worth a request before the footer.
    min: u64,
    /// The file offset at the last request.
    requested: u64,
    /// Started at the first request.
    thread: Option<(
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<FileResult<()>>,
    )>,
}

impl SyncAhead {
    fn new(every: u64, min: u64) -> SyncAhead {
        SyncAhead {
            every,
            min,
            requested: 0,
            thread: None,
        }
    }

    /// Asks for a sync of the file up to `offset` when enough bytes were written since the
    /// last request: `every` while blocks are written, `min` when the footer is next
    /// (`footer_next`). Without a thread or a second handle on the file nothing is done
    /// ahead: the final fsync covers it.
    fn request(&mut self, file: &File, path: &Path, offset: u64, footer_next: bool) {
        let least = if footer_next { self.min } else { self.every };
        if offset.saturating_sub(self.requested) < least {
            return;
        }
        self.requested = offset;
        if self.thread.is_none() {
            let Ok(f) = file.try_clone() else { return };
            let path = path.to_path_buf();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("journeydb-sync".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        // Requests that arrived during the last sync are answered by one more.
                        while rx.try_recv().is_ok() {}
                        file::sync_ahead(&f, &path)?;
                    }
                    Ok(())
                });
            match spawned {
                Ok(h) => self.thread = Some((tx, h)),
                Err(_) => return,
            }
        }
        if let Some((tx, _)) = &self.thread {
            // A send fails only when the thread has stopped on an error, which finish reports.
            let _ = tx.send(());
        }
    }

    /// Waits for the syncs asked for; the first failure, if any.
    fn finish(&mut self) -> FileResult<()> {
        match self.thread.take() {
            Some((tx, h)) => {
                drop(tx);
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
            None => Ok(()),
        }
    }
}

impl SegmentWriter {
    /// Creates the file (which must not exist) of database `db_id`; `props` lists every
    /// property that may appear.
    pub fn create(
        path: &Path,
        props: Vec<(u32, PropType)>,
        level: i32,
        db_id: u32,
    ) -> FileResult<SegmentWriter> {
        let file = file::create_new(path)?;
        file::write(&file, path, 0, &file::header(Kind::Segment, db_id))?;
        Ok(SegmentWriter {
            path: path.to_path_buf(),
            file,
            offset: file::HEADER_LEN as u64,
            level,
            props,
            blocks: Vec::new(),
            index: Indexer::default(),
            rows: 0,
            ts_min: i64::MAX,
            ts_max: i64::MIN,
            raw: Vec::new(),
            zstd: None,
            ts_tag: legacy_timestamps().unwrap_or(9),
            ahead: SyncAhead::new(SYNC_AHEAD_BYTES, SYNC_AHEAD_MIN_BYTES),
            temporary: false,
        })
    }

    /// Makes this a temporary segment, read back once by a merge and never published (an
    /// external sort's run): its blocks are written as always, but no index is built (the
    /// footer holds the block list and empty indices) and nothing is synced — a crash loses
    /// the file, which no manifest names, and an open removes it.
    pub fn temporary(mut self) -> SegmentWriter {
        self.temporary = true;
        self
    }

    fn chunk(&mut self) -> FileResult<ChunkRef> {
        if self.temporary {
            // Read back once, from the page cache: compressing costs more than it saves.
            let raw = std::mem::take(&mut self.raw);
            let written = self.put_chunk(&raw, raw.len() as u32);
            self.raw = raw;
            self.raw.clear();
            return written;
        }
        let z = match &mut self.zstd {
            Some(z) => z,
            None => self
                .zstd
                .insert(codec::Compressor::new(self.level).at(&self.path)?),
        };
        let compressed = z.compress(&self.raw).at(&self.path)?;
        // Stored uncompressed when zstd saves less than an eighth: decoding then skips zstd
        // (bit-packed timestamps are close to their entropy already). The raw chunk starts
        // with its column tag, never with zstd's magic, so readers tell the two apart.
        let raw_len = self.raw.len() as u32;
        let stored = if compressed.len() * 8 > self.raw.len() * 7 {
            std::mem::take(&mut self.raw)
        } else {
            compressed
        };
        let written = self.put_chunk(&stored, raw_len);
        self.raw.clear();
        written
    }

    /// Writes chunk `stored` (compressed, or raw: the raw chunk starts with its column tag,
    /// never with zstd's magic) of `raw_len` bytes raw.
    fn put_chunk(&mut self, stored: &[u8], raw_len: u32) -> FileResult<ChunkRef> {
        let r = ChunkRef {
            offset: self.offset,
            stored_len: stored.len() as u32,
            raw_len,
            crc: codec::crc32(stored),
        };
        file::write(&self.file, &self.path, self.offset, stored)?;
        self.offset += stored.len() as u64;
        if !self.temporary {
            self.ahead.request(&self.file, &self.path, self.offset, false);
        }
        Ok(r)
    }

    /// Writes timestamps as builds before tag 9 did (tag 7), for tests of reading them.
    #[cfg(test)]
    pub(in crate::internals::segment) fn with_tag7_timestamps(mut self) -> SegmentWriter {
        self.ts_tag = 7;
        self
    }

    /// Appends one block (at most `BLOCK_ROWS` rows, sorted, continuing the sort order).
    pub fn push_block(&mut self, cols: &Columns) -> FileResult<()> {
        self.write_block(cols)?;
        if self.temporary {
            return Ok(());
        }
        let strs = self.string_props();
        self.index.add(cols, &strs);
        Ok(())
    }

    /// Appends all of `rows` — sorted, or in the sorted order `order` — in blocks of
    /// `BLOCK_ROWS` (continuing the sort order), building the indices on a second thread while
    /// this one gathers, encodes, compresses and writes the blocks.
    pub fn push_rows(&mut self, rows: &Columns, order: Option<&[u32]>) -> FileResult<()> {
        let len = order.map_or(rows.len(), <[u32]>::len);
        let blocks = (0..len).step_by(limits::BLOCK_ROWS).map(|start| {
            let end = (start + limits::BLOCK_ROWS).min(len);
            match order {
                Some(o) => rows.gather(&o[start..end]),
                None => rows.slice(start..end),
            }
        });
        self.push_blocks(blocks)
    }

    /// Appends `blocks` (each at most `BLOCK_ROWS` rows, sorted, continuing the sort order),
    /// building the indices on two more threads while this one takes each block from the
    /// iterator, encodes, compresses and writes it.
    pub fn push_blocks(&mut self, blocks: impl Iterator<Item = Columns>) -> FileResult<()> {
        if self.temporary {
            return blocks.into_iter().try_for_each(|block| self.write_block(&block));
        }
        let strs = self.string_props();
        // Two indexing threads, each with about half of the index work; the three threads
        // share the cores (the writer's compression is the smallest part).
        let Indexer {
            mut event_stage_days,
            mut rollups,
            mut values,
        } = std::mem::take(&mut self.index);
        let (tx_a, rx_a) = std::sync::mpsc::sync_channel::<std::sync::Arc<Columns>>(2);
        let (tx_b, rx_b) = std::sync::mpsc::sync_channel::<std::sync::Arc<Columns>>(2);
        std::thread::scope(|s| {
            let a = s.spawn(move || {
                for block in rx_a {
                    values.add(&block, &strs);
                }
                values
            });
            let b = s.spawn(move || {
                for block in rx_b {
                    index::add_event_stage_days(&mut event_stage_days, &block);
                    rollups.add(&block);
                }
                (event_stage_days, rollups)
            });
            let mut written = Ok(());
            for block in blocks {
                if block.is_empty() {
                    continue;
                }
                let block = std::sync::Arc::new(block);
                // An indexer only stops early by panicking, which the joins below re-raise.
                let _ = tx_a.send(block.clone());
                let _ = tx_b.send(block.clone());
                written = self.write_block(&block);
                if written.is_err() {
                    break;
                }
            }
            drop((tx_a, tx_b));
            let values = join(a);
            let (event_stage_days, rollups) = join(b);
            self.index = Indexer {
                event_stage_days,
                rollups,
                values,
            };
            written
        })
    }

    fn string_props(&self) -> Vec<u32> {
        self.props
            .iter()
            .filter(|p| p.1 == PropType::Str)
            .map(|p| p.0)
            .collect()
    }

    /// Encodes, compresses and writes one block (no indices).
    fn write_block(&mut self, cols: &Columns) -> FileResult<()> {
        let n = cols.len();
        if n == 0 {
            return Ok(());
        }
        assert!(n <= limits::BLOCK_ROWS, "block of {n} rows");
        // A column the segment was not created with would be dropped: refused instead.
        if let Some(col) = cols.props.iter().find(|c| !self.props.contains(&(c.id, c.ty))) {
            let why = format!("internal error: property {} is not among the segment's", col.id);
            return Err(file::FileError::corrupt(&self.path, self.offset, why));
        }
        let mut chunks = Vec::with_capacity(FIXED_COLUMNS + self.props.len());
        encoding::put_rle_u32(&mut self.raw, &cols.cid);
        chunks.push(self.chunk()?);
        match self.ts_tag {
            7 => encoding::put_delta_bits_i64(&mut self.raw, &cols.ts),
            2 => encoding::put_delta_i64(&mut self.raw, &cols.ts),
            _ => encoding::put_delta_bits_runs_i64(&mut self.raw, &cols.ts, &cols.cid),
        }
        chunks.push(self.chunk()?);
        encoding::put_width_u32(&mut self.raw, &cols.event);
        chunks.push(self.chunk()?);
        encoding::put_stages(&mut self.raw, &cols.stage, &cols.event);
        chunks.push(self.chunk()?);
        let props = self.props.clone();
        for (id, ty) in props {
            match cols.prop(id) {
                Some(col) => encoding::put_prop(&mut self.raw, col),
                None => {
                    let mut col = crate::model::PropColumn::new(id, ty);
                    col.pad_to(n);
                    encoding::put_prop(&mut self.raw, &col);
                }
            }
            chunks.push(self.chunk()?);
        }
        let ts_min = cols.ts.iter().copied().min().unwrap_or(0);
        let ts_max = cols.ts.iter().copied().max().unwrap_or(0);
        self.ts_min = self.ts_min.min(ts_min);
        self.ts_max = self.ts_max.max(ts_max);
        self.blocks.push(BlockMeta {
            rows: n as u32,
            cid_min: cols.cid[0],
            cid_max: cols.cid[n - 1],
            ts_min,
            ts_max,
            chunks,
        });
        self.rows += n as u64;
        Ok(())
    }

    /// Writes footer and trailer, fsyncs the file, and returns the footer and file length.
    /// The caller fsyncs the directory before publishing the segment.
    pub fn finish(mut self, seq_min: u64, seq_end: u64) -> FileResult<(Footer, u64)> {
        // The blocks become durable while the footer is encoded.
        if !self.temporary {
            self.ahead.request(&self.file, &self.path, self.offset, true);
        }
        let (stage_days, days) =
            index::split_event_stage_days(std::mem::take(&mut self.index.event_stage_days));
        let event_days = EventDays { days };
        let bitmaps = Bitmaps::from_stage_days(stage_days, &event_days);
        let footer = Footer {
            rows: self.rows,
            seq_min,
            seq_end,
            ts_min: if self.rows == 0 { 0 } else { self.ts_min },
            ts_max: if self.rows == 0 { 0 } else { self.ts_max },
            props: self.props.clone(),
            blocks: std::mem::take(&mut self.blocks),
            bitmaps,
            rollups: Some(std::mem::take(&mut self.index.rollups)),
            values: Some(std::mem::take(&mut self.index.values).finish()),
            event_days: Some(event_days),
        };
        let parallel = footer.rows >= INDEX_PARALLEL_ROWS;
        let sizes = (INDEX_SPLIT_BYTES, INDEX_FRAME_BYTES);
        let mut pieces = encode_footer_pieces(&footer, parallel, sizes).at(&self.path)?;
        let footer_offset = self.offset;
        let mut crc = crc32fast::Hasher::new();
        pieces.iter().for_each(|piece| crc.update(piece));
        let len: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        let mut trailer = Vec::new();
        codec::put_u64(&mut trailer, footer_offset);
        codec::put_u64(&mut trailer, len);
        codec::put_u32(&mut trailer, crc.finalize());
        codec::put_u32(&mut trailer, file::FORMAT_VERSION);
        trailer.extend_from_slice(&file::magic(Kind::Segment));
        pieces.push(trailer);
        if len < 8 << 20 {
            // A small footer in one write (one file operation, as the fault sweeps count them).
            pieces = vec![pieces.concat()];
        }
        let mut end = footer_offset;
        for piece in &pieces {
            file::write(&self.file, &self.path, end, piece)?;
            end += piece.len() as u64;
        }
        // A failed sync ahead fails the segment even if the final fsync succeeds (the kernel
        // may have dropped the pages that it could not write).
        self.ahead.finish()?;
        if !self.temporary {
            file::sync(&self.file, &self.path, true)?;
        }
        Ok((footer, end))
    }
}
