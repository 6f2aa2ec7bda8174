//! Immutable columnar segment files, sorted by (customer, timestamp, sequence).
//!
//! ```text
//! SEGMENT := HEADER(16) CHUNK* FOOTER TRAILER(32)
//! TRAILER := footer_offset u64 | footer_len u64 | footer_crc u32 | version u32 | magic[8]
//! ```
//! Each block of up to `BLOCK_ROWS` rows stores one zstd-compressed chunk per column with its
//! own crc32. The footer holds segment metadata, the property directory, per-block zone maps
//! and chunk directory, and the bitmap index. See docs/FORMAT.md §5.
//!
//! A segment is written once under its final name, fsynced, and never modified; only then is
//! it published by a manifest. The reader maps it with memmap2 after checking the file length
//! against the trailer and footer, so no access can fall outside the file (no SIGBUS).

pub mod column;

use std::fs::File;
use std::iter::Copied;
use std::path::{Path, PathBuf};
use std::slice::Iter;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

use crate::codec::{self, DecodeError, Reader};
use crate::file::{self, FileError, FileResult, IoContext, Kind};
use crate::index::{self, Bitmaps, DaySets, EventDays, Rollups, ValueIndex, ValueIndexBuilder};
use crate::limits;
use crate::model::{Columns, PropType, join};

/// Sub-directory holding segment files.
pub const SEG_DIR: &str = "seg";

/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 32;

/// First byte of a zstd frame; a chunk stored uncompressed starts with its column tag (1..=10)
/// instead.
const ZSTD_MAGIC_0: u8 = codec::ZSTD_MAGIC[0];

/// Number of fixed columns: customer, timestamp, event, stage.
const FIXED_COLUMNS: usize = 4;

/// Path of segment `id`.
pub fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(SEG_DIR).join(file::numbered("", id, ".seg"))
}

/// Lists the segment ids present.
pub fn list(dir: &Path) -> FileResult<Vec<u64>> {
    file::list_numbered(&dir.join(SEG_DIR), "", ".seg")
}

/// Where one column chunk of one block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// File offset.
    pub offset: u64,
    /// Stored (compressed) length.
    pub stored_len: u32,
    /// Raw (decompressed) length.
    pub raw_len: u32,
    /// crc32 of the stored bytes.
    pub crc: u32,
}

/// A block's zone map and chunk directory.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockMeta {
    /// Rows in the block.
    pub rows: u32,
    /// Smallest customer id.
    pub cid_min: u32,
    /// Largest customer id.
    pub cid_max: u32,
    /// Smallest timestamp.
    pub ts_min: i64,
    /// Largest timestamp.
    pub ts_max: i64,
    /// Chunks: customer, timestamp, event, stage, then one per property in footer order.
    pub chunks: Vec<ChunkRef>,
}

/// The decoded footer.
#[derive(Clone, Debug, PartialEq)]
pub struct Footer {
    /// Total rows.
    pub rows: u64,
    /// Sequence number of the first row (in ingestion order) covered by this segment.
    pub seq_min: u64,
    /// One past the last sequence number covered.
    pub seq_end: u64,
    /// Smallest timestamp.
    pub ts_min: i64,
    /// Largest timestamp.
    pub ts_max: i64,
    /// Properties present: (id, type), sorted by id.
    pub props: Vec<(u32, PropType)>,
    /// Blocks in order.
    pub blocks: Vec<BlockMeta>,
    /// Bitmap index.
    pub bitmaps: Bitmaps,
    /// Per (stage, UTC day) aggregates (`None` in segments written before they existed).
    pub rollups: Option<Rollups>,
    /// Customers per (string property value, UTC day) (`None` in older segments).
    pub values: Option<ValueIndex>,
    /// Customers per (event name, UTC day) (`None` in older segments).
    pub event_days: Option<EventDays>,
}

/// Which columns a read decodes (the customer column is always decoded).
#[derive(Clone, Copy, Debug)]
pub struct ColumnSet {
    /// Timestamps.
    pub ts: bool,
    /// Event ids.
    pub event: bool,
    /// Stage codes.
    pub stage: bool,
    /// Property columns.
    pub props: bool,
    /// With `props`: which property ids below 64 to decode (bit `id`); ids from 64 on are
    /// always decoded. `u64::MAX` = all.
    pub prop_mask: u64,
}

impl ColumnSet {
    /// Every column.
    pub const ALL: ColumnSet = ColumnSet {
        ts: true,
        event: true,
        stage: true,
        props: true,
        prop_mask: u64::MAX,
    };

    /// True when every column is decoded.
    pub fn is_all(&self) -> bool {
        self.ts && self.event && self.stage && self.props && self.prop_mask == u64::MAX
    }
}

/// The indices of a segment being written (docs/FORMAT.md §5.3).
#[derive(Default)]
struct Indexer {
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
    /// Timestamps in tag 7, as builds before tag 9 wrote them (tests of reading old segments).
    tag7_ts: bool,
    /// Makes the written blocks durable in the background while later ones are encoded.
    ahead: SyncAhead,
}

/// Bytes written between two requests to the background syncer while blocks are written.
const SYNC_AHEAD_BYTES: u64 = 8 << 20;

/// When the footer is about to be encoded, the blocks written since the last request are
/// synced in the background if they are at least this many bytes; a smaller segment (a test,
/// a small flush) is synced only by its final fsync, on the writer's thread.
const SYNC_AHEAD_MIN_BYTES: u64 = 1 << 20;

/// A background thread that fdatasyncs a segment file while it is written (FORMAT §5.5), so
/// that the final fsync, which the manifest waits for, has only the last bytes left to write.
/// Every sync's result is kept: [`SyncAhead::finish`] returns the first failure.
struct SyncAhead {
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
            tag7_ts: false,
            ahead: SyncAhead::new(SYNC_AHEAD_BYTES, SYNC_AHEAD_MIN_BYTES),
        })
    }

    fn chunk(&mut self) -> FileResult<ChunkRef> {
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
        let r = ChunkRef {
            offset: self.offset,
            stored_len: stored.len() as u32,
            raw_len,
            crc: codec::crc32(&stored),
        };
        file::write(&self.file, &self.path, self.offset, &stored)?;
        self.offset += stored.len() as u64;
        self.ahead.request(&self.file, &self.path, self.offset, false);
        self.raw.clear();
        Ok(r)
    }

    /// Writes timestamps as builds before tag 9 did (tag 7), for tests of reading them.
    #[cfg(test)]
    fn with_tag7_timestamps(mut self) -> SegmentWriter {
        self.tag7_ts = true;
        self
    }

    /// Appends one block (at most `BLOCK_ROWS` rows, sorted, continuing the sort order).
    pub fn push_block(&mut self, cols: &Columns) -> FileResult<()> {
        self.write_block(cols)?;
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
        let mut chunks = Vec::with_capacity(FIXED_COLUMNS + self.props.len());
        column::put_rle_u32(&mut self.raw, &cols.cid);
        chunks.push(self.chunk()?);
        if self.tag7_ts {
            column::put_delta_bits_i64(&mut self.raw, &cols.ts);
        } else {
            column::put_delta_bits_runs_i64(&mut self.raw, &cols.ts, &cols.cid);
        }
        chunks.push(self.chunk()?);
        column::put_width_u32(&mut self.raw, &cols.event);
        chunks.push(self.chunk()?);
        column::put_stages(&mut self.raw, &cols.stage, &cols.event);
        chunks.push(self.chunk()?);
        let props = self.props.clone();
        for (id, ty) in props {
            match cols.prop(id) {
                Some(col) => column::put_prop(&mut self.raw, col),
                None => {
                    let mut col = crate::model::PropColumn::new(id, ty);
                    col.pad_to(n);
                    column::put_prop(&mut self.raw, &col);
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
        self.ahead.request(&self.file, &self.path, self.offset, true);
        let (stage_days, days) =
            index::split_event_stage_days(std::mem::take(&mut self.index.event_stage_days));
        let event_days = EventDays { days };
        let mut bitmaps = Bitmaps {
            stage_days,
            ..Bitmaps::default()
        };
        bitmaps.derive(&event_days);
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
        let mut out = Vec::new();
        let parallel = footer.rows >= INDEX_PARALLEL_ROWS;
        encode_footer(&footer, &mut out, parallel, INDEX_SPLIT_BYTES).at(&self.path)?;
        let footer_offset = self.offset;
        let crc = codec::crc32(&out);
        let len = out.len() as u64;
        codec::put_u64(&mut out, footer_offset);
        codec::put_u64(&mut out, len);
        codec::put_u32(&mut out, crc);
        codec::put_u32(&mut out, file::FORMAT_VERSION);
        out.extend_from_slice(&file::magic(Kind::Segment));
        file::write(&self.file, &self.path, self.offset, &out)?;
        // A failed sync ahead fails the segment even if the final fsync succeeds (the kernel
        // may have dropped the pages that it could not write).
        self.ahead.finish()?;
        file::sync(&self.file, &self.path, true)?;
        Ok((footer, footer_offset + out.len() as u64))
    }
}

/// From this many rows on, the two parts of a segment's index (the event-day bitmaps, and
/// everything before them) are encoded on two threads.
const INDEX_PARALLEL_ROWS: u64 = 1 << 18;

/// From this many bytes of index before the event-day bitmaps on, the two parts are also
/// compressed apart, on two threads, as two zstd frames: so far beyond zstd's window at level
/// 3 (2 MiB) that the event-day bitmaps could hardly refer back to the per-(stage, day) bitmaps
/// they resemble anyway (10M events: 1.5 KB larger; at 1M events, under the window, two frames
/// were 260 KB larger than one).
const INDEX_SPLIT_BYTES: usize = 8 << 20;

/// Appends the footer; with `parallel`, the index's two parts are encoded on two threads, and
/// compressed as two frames on two threads when the first is at least `split_bytes` long.
fn encode_footer(f: &Footer, out: &mut Vec<u8>, parallel: bool, split_bytes: usize) -> std::io::Result<()> {
    codec::put_u64(out, f.rows);
    codec::put_u64(out, f.seq_min);
    codec::put_u64(out, f.seq_end);
    codec::put_i64(out, f.ts_min);
    codec::put_i64(out, f.ts_max);
    codec::put_u32(out, f.props.len() as u32);
    for (id, ty) in &f.props {
        codec::put_u32(out, *id);
        out.push(ty.code());
    }
    codec::put_u32(out, f.blocks.len() as u32);
    for b in &f.blocks {
        codec::put_u32(out, b.rows);
        codec::put_u32(out, b.cid_min);
        codec::put_u32(out, b.cid_max);
        codec::put_i64(out, b.ts_min);
        codec::put_i64(out, b.ts_max);
        for c in &b.chunks {
            codec::put_u64(out, c.offset);
            codec::put_u32(out, c.stored_len);
            codec::put_u32(out, c.raw_len);
            codec::put_u32(out, c.crc);
        }
    }
    // The index: bitmaps, then (when present) rollups, value index, event-day bitmaps; split,
    // the two parts' zstd frames are stored one after the other (§5.3: a standard zstd stream
    // of one or more frames, read as one).
    let head = |raw: &mut Vec<u8>| -> std::io::Result<()> {
        f.bitmaps.encode(raw)?;
        if let Some(r) = &f.rollups {
            r.encode(raw);
            if let Some(v) = &f.values {
                v.encode(raw)?;
            }
        }
        Ok(())
    };
    let tail = match (&f.rollups, &f.values, &f.event_days) {
        (Some(_), Some(_), Some(e)) => Some(e),
        _ => None,
    };
    let (mut raw, mut second) = (Vec::new(), Vec::new());
    match tail {
        Some(e) if parallel => std::thread::scope(|s| {
            let h = s.spawn(|| e.encode(&mut second));
            let first = head(&mut raw);
            let second = join(h);
            first.and(second)
        })?,
        _ => {
            head(&mut raw)?;
            if let Some(e) = tail {
                e.encode(&mut second)?;
            }
        }
    }
    let raw_len = raw.len() + second.len();
    let stored = if parallel && !second.is_empty() && raw.len() >= split_bytes {
        std::thread::scope(|s| {
            let h = s.spawn(|| codec::compress(&second, 3));
            let first = codec::compress(&raw, 3);
            let second = join(h);
            let (mut stored, second) = (first?, second?);
            stored.extend_from_slice(&second);
            Ok::<_, std::io::Error>(stored)
        })?
    } else {
        raw.extend_from_slice(&second);
        codec::compress(&raw, 3)?
    };
    codec::put_u32(out, raw_len as u32);
    codec::put_u32(out, stored.len() as u32);
    out.extend_from_slice(&stored);
    Ok(())
}

fn decode_footer(bytes: &[u8], body_end: u64) -> Result<Footer, DecodeError> {
    let mut r = Reader::new(bytes);
    let rows = r.u64()?;
    let seq_min = r.u64()?;
    let seq_end = r.u64()?;
    // Fewer rows than the range covers once compaction has carried out an erasure.
    if seq_end.checked_sub(seq_min).is_none_or(|span| rows > span) {
        return Err(r.err("sequence range disagrees with the row count"));
    }
    let ts_min = r.i64()?;
    let ts_max = r.i64()?;
    let nprops = r.u32()? as usize;
    if nprops > limits::PROPS_MAX {
        return Err(r.err("too many properties"));
    }
    let mut props = Vec::with_capacity(nprops);
    for _ in 0..nprops {
        let id = r.u32()?;
        let ty = PropType::from_code(r.u8()?).ok_or_else(|| r.err("unknown property type"))?;
        if props.last().is_some_and(|&(last, _)| last >= id) {
            return Err(r.err("properties out of order"));
        }
        props.push((id, ty));
    }
    let nblocks = r.u32()? as usize;
    let ncols = FIXED_COLUMNS + nprops;
    let block_bytes = 28 + ncols * 20;
    if nblocks > r.remaining() / block_bytes {
        return Err(r.err("block count exceeds the footer"));
    }
    let mut blocks = Vec::with_capacity(nblocks);
    let mut total = 0u64;
    let mut prev_cid = 0u32;
    for _ in 0..nblocks {
        let at = r.pos();
        let rows = r.u32()?;
        let cid_min = r.u32()?;
        let cid_max = r.u32()?;
        let ts_min = r.i64()?;
        let ts_max = r.i64()?;
        if rows == 0
            || rows as usize > limits::BLOCK_ROWS
            || cid_min > cid_max
            || ts_min > ts_max
            || ts_min < crate::model::TS_MIN
            || ts_max > crate::model::TS_MAX
            || cid_min < prev_cid
        {
            return Err(DecodeError::new(at, "bad block zone map"));
        }
        prev_cid = cid_max;
        total += u64::from(rows);
        let mut chunks = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let at = r.pos();
            let c = ChunkRef {
                offset: r.u64()?,
                stored_len: r.u32()?,
                raw_len: r.u32()?,
                crc: r.u32()?,
            };
            let end = c.offset.checked_add(u64::from(c.stored_len));
            if c.offset < file::HEADER_LEN as u64 || end.is_none_or(|e| e > body_end) {
                return Err(DecodeError::new(at, "chunk lies outside the data region"));
            }
            if c.raw_len as usize > limits::CHUNK_RAW_BYTES_MAX {
                return Err(DecodeError::new(at, "chunk raw length exceeds the limit"));
            }
            chunks.push(c);
        }
        blocks.push(BlockMeta {
            rows,
            cid_min,
            cid_max,
            ts_min,
            ts_max,
            chunks,
        });
    }
    if total != rows {
        return Err(r.err("block rows do not add up to the segment rows"));
    }
    let raw_len = r.u32()? as usize;
    let stored_len = r.u32()? as usize;
    let at = r.pos();
    let stored = r.bytes(stored_len)?;
    r.finish()?;
    let raw = codec::decompress(stored, raw_len, limits::INDEX_RAW_BYTES_MAX)
        .map_err(|e| DecodeError::new(at, e.what))?;
    let mut ir = Reader::new(&raw);
    let bitmaps = Bitmaps::decode(&mut ir).map_err(|e| DecodeError::new(at, format!("bitmap index: {e}")))?;
    let rollups = if ir.remaining() > 0 {
        Some(Rollups::decode(&mut ir).map_err(|e| DecodeError::new(at, format!("rollups: {e}")))?)
    } else {
        None
    };
    let values = if ir.remaining() > 0 {
        Some(ValueIndex::decode(&mut ir).map_err(|e| DecodeError::new(at, format!("value index: {e}")))?)
    } else {
        None
    };
    let event_days = if ir.remaining() > 0 {
        Some(EventDays::decode(&mut ir).map_err(|e| DecodeError::new(at, format!("event days: {e}")))?)
    } else {
        None
    };
    ir.finish()
        .map_err(|e| DecodeError::new(at, format!("bitmap index: {e}")))?;
    Ok(Footer {
        rows,
        seq_min,
        seq_end,
        ts_min,
        ts_max,
        props,
        blocks,
        bitmaps,
        rollups,
        values,
        event_days,
    })
}

/// Buffers of [`Segment::read_block_runs_lazy`], reused across blocks.
#[derive(Default)]
pub struct LazyBufs {
    raw: Vec<u8>,
    raw_events: Vec<u8>,
    raw_ts: Vec<u8>,
    cids: Vec<u32>,
    ends: Vec<u32>,
    events: Vec<u32>,
    ts: Vec<i64>,
}

/// A block as [`Segment::read_block_runs_lazy`] reads it.
pub struct LazyBlock<'s> {
    /// Rows in the block.
    pub rows: usize,
    /// The customer of each run (ascending).
    pub cids: &'s [u32],
    /// The end (exclusive row index) of each run.
    pub ends: &'s [u32],
    /// Event id per row.
    pub events: BlockEvents<'s>,
    /// The timestamps.
    pub ts: BlockTs<'s>,
}

/// A block's event ids: 4-bit packed as stored (read per row), or decoded (other widths).
pub enum BlockEvents<'s> {
    /// Tag 8 at 4 bits: value `i` is nibble `i % 2` (low first) of byte `i / 2`.
    Nibbles(&'s [u8]),
    /// One id per row.
    Ids(&'s [u32]),
}

impl BlockEvents<'_> {
    /// The ids of rows `start..end`.
    pub fn ids(&self, start: usize, end: usize) -> Either<column::Nibbles<'_>, Copied<Iter<'_, u32>>> {
        match self {
            BlockEvents::Nibbles(p) => Either::A(column::Nibbles::new(p, start, end)),
            BlockEvents::Ids(v) => Either::B(v.get(start..end).unwrap_or(&[]).iter().copied()),
        }
    }
}

/// A block's timestamps: decoded on demand per customer, or (blocks written before tag 9)
/// decoded whole.
pub enum BlockTs<'s> {
    /// Tag 9, read from each customer's first row.
    Lazy(column::TsRuns<'s>),
    /// Every row's timestamp.
    Decoded(&'s [i64]),
}

/// One of two iterators of one item type: the two forms of event ids a lazy block read gives
/// (scans that care match on the form instead, so that each form's loop is compiled alone).
pub enum Either<A, B> {
    /// The first form.
    A(A),
    /// The second form.
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

thread_local! {
    /// Decompression buffer reused across block reads on one thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An open, validated, memory-mapped segment.
#[derive(Debug)]
pub struct Segment {
    /// Segment id.
    pub id: u64,
    /// The id of the database that wrote the file (its header).
    pub db_id: u32,
    path: PathBuf,
    map: Mmap,
    /// The decoded footer.
    pub footer: Footer,
    /// When set, the file is deleted once the last holder drops the segment.
    obsolete: AtomicBool,
    /// Where the footer starts.
    footer_offset: u64,
    /// Unique among the segments opened by this process (the block cache's key).
    uid: u64,
    /// Decoded blocks shared by single-customer reads (set by the database).
    cache: Option<Arc<BlockCache>>,
    /// The budget of `keys` (set by the database; without it nothing is kept).
    key_cache: Option<Arc<KeyCache>>,
    /// Each block's key columns, once a scan has read them and the budget had room.
    keys: Vec<OnceLock<BlockKeys>>,
}

/// Decoded blocks (all columns) kept for single-customer reads — timelines and
/// `Snapshot::customer_events` — so that looking up a recently read customer again, or a
/// customer whose block was just read, costs a lookup instead of decompressing and decoding a
/// whole block. Shared by the segments of one database and bounded in bytes; least recently
/// used blocks are dropped first. Scans never go through it (they would only evict).
#[derive(Debug)]
pub struct BlockCache {
    budget: usize,
    state: parking_lot::Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// (segment uid, block) → (block, its bytes, last use).
    entries: std::collections::HashMap<(u64, usize), (Arc<Columns>, usize, u64)>,
    used: usize,
    tick: u64,
}

impl BlockCache {
    /// A cache holding at most `budget` bytes of decoded blocks (0 disables it).
    pub fn new(budget: usize) -> Arc<BlockCache> {
        Arc::new(BlockCache {
            budget,
            state: parking_lot::Mutex::new(CacheState::default()),
        })
    }

    /// Bytes of decoded blocks held now.
    pub fn used(&self) -> usize {
        self.state.lock().used
    }

    fn get(&self, key: (u64, usize)) -> Option<Arc<Columns>> {
        let mut st = self.state.lock();
        st.tick += 1;
        let tick = st.tick;
        st.entries.get_mut(&key).map(|e| {
            e.2 = tick;
            e.0.clone()
        })
    }

    fn insert(&self, key: (u64, usize), cols: Arc<Columns>) {
        let bytes = cols.len() * (17 + 9 * cols.props.len());
        if bytes > self.budget {
            return;
        }
        let mut st = self.state.lock();
        if let Some(old) = st.entries.remove(&key) {
            st.used -= old.1;
        }
        while st.used + bytes > self.budget {
            let Some((&victim, _)) = st.entries.iter().min_by_key(|(_, e)| e.2) else {
                break;
            };
            if let Some(e) = st.entries.remove(&victim) {
                st.used -= e.1;
            }
        }
        st.tick += 1;
        let tick = st.tick;
        st.entries.insert(key, (cols, bytes, tick));
        st.used += bytes;
    }

    /// Drops every block of segment `uid`.
    fn forget_segment(&self, uid: u64) {
        let mut st = self.state.lock();
        let mut freed = 0;
        st.entries.retain(|k, e| {
            let keep = k.0 != uid;
            if !keep {
                freed += e.1;
            }
            keep
        });
        st.used -= freed;
    }
}

/// The budget of the decoded key columns that segments keep for scans (see [`BlockKeys`]):
/// shared by the segments of one database. A block is admitted while the budget has room and
/// stays as long as its segment lives — no eviction, since a scan that cycles over more blocks
/// than fit would evict every block before its next use (the blocks admitted first are served
/// from memory on every scan instead). A segment returns its bytes when it is dropped.
#[derive(Debug)]
pub struct KeyCache {
    budget: usize,
    used: AtomicUsize,
}

impl KeyCache {
    /// A budget of `budget` bytes (0 admits nothing).
    pub fn new(budget: usize) -> Arc<KeyCache> {
        Arc::new(KeyCache {
            budget,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes of key columns held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget; false (nothing taken) when they do not fit.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&v| v <= self.budget)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One block's key columns, decoded: its customer runs and event ids, checked (crc32 of the
/// stored chunks, the runs against the zone map) when they were read from the file. Kept in
/// process memory, not in the map, so that later reads need no second check.
#[derive(Debug)]
struct BlockKeys {
    cids: Vec<u32>,
    ends: Vec<u32>,
    events: KeyEvents,
}

/// The event ids of [`BlockKeys`], in the forms of [`BlockEvents`].
#[derive(Debug)]
enum KeyEvents {
    Nibbles(Vec<u8>),
    Ids(Vec<u32>),
}

/// The bytes a block's key columns take in the key cache (what its budget counts).
fn key_bytes(cids: &[u32], ends: &[u32], events: &BlockEvents<'_>) -> usize {
    let events = match events {
        BlockEvents::Nibbles(p) => p.len(),
        BlockEvents::Ids(v) => 4 * v.len(),
    };
    4 * (cids.len() + ends.len()) + events
}

impl BlockKeys {
    /// Heap bytes held (what the budget counts).
    fn bytes(&self) -> usize {
        key_bytes(&self.cids, &self.ends, &self.events())
    }

    fn events(&self) -> BlockEvents<'_> {
        match &self.events {
            KeyEvents::Nibbles(p) => BlockEvents::Nibbles(p),
            KeyEvents::Ids(v) => BlockEvents::Ids(v),
        }
    }
}

/// Source of [`Segment::uid`].
static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Segment {
    /// Opens and validates segment `id`: header, trailer, lengths and footer checksum. Block
    /// checksums are checked on every read. `expect_len` is the length the manifest recorded.
    pub fn open(dir: &Path, id: u64, expect_len: Option<u64>) -> FileResult<Segment> {
        Self::open_with(dir, id, expect_len, None)
    }

    /// Opens segment `id` that this process has just written, with the footer
    /// [`SegmentWriter::finish`] returned: the same checks as [`open`](Self::open) (length,
    /// header, trailer, footer checksum) but the footer is not decoded again — decoding the
    /// index is most of the time it takes to open a large segment. The footer must be the one
    /// written to this file (the decoder's agreement with the encoder is what the segment and
    /// database tests check).
    pub fn open_written(dir: &Path, id: u64, len: u64, footer: Footer) -> FileResult<Segment> {
        Self::open_with(dir, id, Some(len), Some(footer))
    }

    fn open_with(dir: &Path, id: u64, expect_len: Option<u64>, known: Option<Footer>) -> FileResult<Segment> {
        let path = seg_path(dir, id);
        let file = file::open_read(&path)?;
        let len = file.metadata().at(&path)?.len();
        if let Some(want) = expect_len
            && want != len
        {
            return Err(FileError::corrupt(
                &path,
                len.min(want),
                format!("file is {len} bytes but the manifest recorded {want}"),
            ));
        }
        if len < (file::HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(FileError::corrupt(
                &path,
                0,
                format!("file of {len} bytes is too short to be a segment"),
            ));
        }
        #[expect(
            unsafe_code,
            reason = "memory-mapping a sealed segment file; see docs/UNSAFE.md"
        )]
        // SAFETY: the file was written completely, fsynced and published by a manifest before
        // any reader opens it, and journeydb never writes to, truncates or renames a published
        // segment: it is only unlinked after the last `Segment` holding this map is dropped
        // (unlinking keeps the pages of an existing map valid on Linux). We checked the length
        // above and every access below is bounds-checked against `map.len()`, so no access
        // reaches past the end of the file. Another process truncating the file would break
        // this; the database directory is owned by journeydb (docs/FORMAT.md §11).
        let map = unsafe { Mmap::map(&file) }.at(&path)?;
        let bytes: &[u8] = &map;
        if bytes.len() as u64 != len {
            return Err(FileError::corrupt(
                &path,
                0,
                "file changed size while being mapped",
            ));
        }
        file::check_header(&path, Kind::Segment, bytes)?;
        let tail_at = bytes.len() - TRAILER_LEN;
        let mut t = Reader::new(&bytes[tail_at..]);
        let d = |e: DecodeError| FileError::decode(&path, tail_at as u64, e);
        let footer_offset = t.u64().map_err(d)?;
        let footer_len = t.u64().map_err(d)?;
        let footer_crc = t.u32().map_err(d)?;
        let version = t.u32().map_err(d)?;
        let magic = t.bytes(file::MAGIC_LEN).map_err(d)?;
        if magic != file::magic(Kind::Segment) {
            return Err(FileError::corrupt(
                &path,
                len - 8,
                "wrong trailer magic (truncated or not a segment)",
            ));
        }
        if version != file::FORMAT_VERSION {
            return Err(FileError::corrupt(
                &path,
                len - 12,
                format!("format version {version}"),
            ));
        }
        if footer_len > limits::FOOTER_BYTES_MAX
            || footer_offset < file::HEADER_LEN as u64
            || footer_offset.checked_add(footer_len) != Some(tail_at as u64)
        {
            return Err(FileError::corrupt(
                &path,
                tail_at as u64,
                format!(
                    "footer at {footer_offset} of {footer_len} bytes does not end at the trailer ({tail_at})"
                ),
            ));
        }
        let fbytes = &bytes[footer_offset as usize..tail_at];
        if codec::crc32(fbytes) != footer_crc {
            return Err(FileError::corrupt(
                &path,
                footer_offset,
                "footer checksum mismatch",
            ));
        }
        let footer = match known {
            Some(f) => f,
            None => decode_footer(fbytes, footer_offset)
                .map_err(|e| FileError::decode(&path, footer_offset, e))?,
        };
        Ok(Segment {
            id,
            db_id: file::header_db_id(bytes),
            path,
            map,
            keys: std::iter::repeat_with(OnceLock::new)
                .take(footer.blocks.len())
                .collect(),
            footer,
            obsolete: AtomicBool::new(false),
            footer_offset,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            cache: None,
            key_cache: None,
        })
    }

    /// Lets single-customer reads of this segment share `cache`.
    pub fn with_cache(mut self, cache: Arc<BlockCache>) -> Segment {
        self.cache = Some(cache);
        self
    }

    /// Lets scans keep this segment's decoded key columns within `keys`' budget.
    pub fn with_key_cache(mut self, keys: Arc<KeyCache>) -> Segment {
        self.key_cache = Some(keys);
        self
    }

    /// Block `i` with every column, through the block cache when there is one (for reads of
    /// one customer; scans use [`Segment::read_block_into`]).
    pub fn read_block_shared(&self, i: usize) -> FileResult<Arc<Columns>> {
        let Some(cache) = &self.cache else {
            return self.read_block(i, ColumnSet::ALL).map(Arc::new);
        };
        if let Some(cols) = cache.get((self.uid, i)) {
            return Ok(cols);
        }
        let cols = Arc::new(self.read_block(i, ColumnSet::ALL)?);
        cache.insert((self.uid, i), cols.clone());
        Ok(cols)
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the footer (where the bitmap index is) in the file.
    pub fn footer_offset(&self) -> u64 {
        self.footer_offset
    }

    /// File length in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Stored (compressed) bytes per column: customer, timestamp, event, stage, then one per
    /// property in footer order.
    pub fn column_bytes(&self) -> Vec<u64> {
        let mut out = vec![0u64; FIXED_COLUMNS + self.footer.props.len()];
        for b in &self.footer.blocks {
            for (o, c) in out.iter_mut().zip(&b.chunks) {
                *o += u64::from(c.stored_len);
            }
        }
        out
    }

    /// Marks the file for deletion when the last holder drops it.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
        if let Some(c) = &self.cache {
            c.forget_segment(self.uid);
        }
    }

    /// The raw bytes of chunk `c`: the mapped bytes when stored uncompressed, else
    /// decompressed into `out`. The crc32 of the stored bytes is checked first.
    fn raw_chunk<'s>(&'s self, c: &ChunkRef, out: &'s mut Vec<u8>) -> FileResult<&'s [u8]> {
        // Offsets were validated against the data region when the footer was decoded.
        let start = c.offset as usize;
        let stored = self
            .map
            .get(start..start + c.stored_len as usize)
            .ok_or_else(|| FileError::corrupt(&self.path, c.offset, "chunk outside the file"))?;
        if codec::crc32(stored) != c.crc {
            return Err(FileError::corrupt(
                &self.path,
                c.offset,
                "block checksum mismatch",
            ));
        }
        if stored.first() != Some(&ZSTD_MAGIC_0) {
            // Stored uncompressed (see `SegmentWriter::chunk`).
            if c.stored_len != c.raw_len {
                return Err(FileError::corrupt(
                    &self.path,
                    c.offset,
                    "uncompressed chunk with a different raw length",
                ));
            }
            return Ok(stored);
        }
        codec::decompress_into(stored, c.raw_len as usize, limits::CHUNK_RAW_BYTES_MAX, out)
            .map_err(|e| FileError::decode(&self.path, c.offset, e))?;
        Ok(out)
    }

    /// Decodes block `i` (checking every chunk's crc32 first).
    pub fn read_block(&self, i: usize, set: ColumnSet) -> FileResult<Columns> {
        let mut out = Columns::default();
        self.read_block_into(i, set, &mut out)?;
        Ok(out)
    }

    /// Decodes block `i` into `out`, reusing its allocations.
    pub fn read_block_into(&self, i: usize, set: ColumnSet, out: &mut Columns) -> FileResult<()> {
        self.read_block_with(i, set, out, None)
    }

    /// As [`read_block_into`](Self::read_block_into), and `ends` receives the end (exclusive
    /// row index) of each customer's run of rows, from the run-length code.
    pub fn read_block_runs(
        &self,
        i: usize,
        set: ColumnSet,
        out: &mut Columns,
        ends: &mut Vec<u32>,
    ) -> FileResult<()> {
        self.read_block_with(i, set, out, Some(ends))
    }

    fn read_block_with(
        &self,
        i: usize,
        set: ColumnSet,
        out: &mut Columns,
        ends: Option<&mut Vec<u32>>,
    ) -> FileResult<()> {
        let b = self
            .footer
            .blocks
            .get(i)
            .ok_or_else(|| FileError::corrupt(&self.path, 0, format!("no block {i}")))?;
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let result = self.decode_block(b, set, out, &mut scratch, ends);
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        result
    }

    fn decode_block(
        &self,
        b: &BlockMeta,
        set: ColumnSet,
        out: &mut Columns,
        raw: &mut Vec<u8>,
        ends: Option<&mut Vec<u32>>,
    ) -> FileResult<()> {
        let n = b.rows as usize;
        let path = &self.path;
        // Decompresses chunk `k` into `raw` (crc checked first) and runs `decode` over it,
        // requiring that the decoder consumes every byte.
        let mut column = |k: usize, decode: &mut dyn FnMut(&mut Reader<'_>) -> Result<(), DecodeError>| {
            let c = &b.chunks[k];
            let bytes = self.raw_chunk(c, raw)?;
            let mut r = Reader::new(bytes);
            decode(&mut r)
                .and_then(|()| r.finish())
                .map_err(|e| FileError::decode(path, c.offset, e))?;
            Ok::<u64, FileError>(c.offset)
        };
        // Run ends are always decoded: timestamps restart at each customer's first row.
        let mut own_ends = Vec::new();
        let ends = ends.unwrap_or(&mut own_ends);
        let off = column(0, &mut |r| {
            column::get_rle_u32_runs(r, n, &mut out.cid, Some(&mut *ends))
        })?;
        if out.cid.first() != Some(&b.cid_min) || out.cid.last() != Some(&b.cid_max) {
            return Err(FileError::corrupt(
                path,
                off,
                "customer column disagrees with the zone map",
            ));
        }
        out.ts.clear();
        if set.ts {
            column(1, &mut |r| column::get_timestamps(r, n, ends, &mut out.ts))?;
        }
        out.event.clear();
        // Stage codes may be stored as a map by event id (tag 10): reading them reads the
        // event ids too (into `out` only when asked for).
        let mut events_only = Vec::new();
        if set.event {
            column(2, &mut |r| column::get_width_u32(r, n, &mut out.event))?;
        } else if set.stage {
            column(2, &mut |r| column::get_width_u32(r, n, &mut events_only))?;
        }
        out.stage.clear();
        if set.stage {
            let events = if set.event { &out.event } else { &events_only };
            let off = column(3, &mut |r| column::get_stages(r, n, Some(events), &mut out.stage))?;
            if out.stage.iter().any(|&s| s > 5) {
                return Err(FileError::corrupt(path, off, "stage code out of range"));
            }
        }
        out.props.clear();
        if set.props {
            for (k, &(id, ty)) in self.footer.props.iter().enumerate() {
                if id < 64 && set.prop_mask & (1u64 << id) == 0 {
                    continue;
                }
                let mut col = None;
                column(FIXED_COLUMNS + k, &mut |r| {
                    col = Some(column::get_prop(r, n, id, ty)?);
                    Ok(())
                })?;
                if let Some(col) = col.filter(|c| c.valid.iter().any(|&v| v)) {
                    out.props.push(col);
                }
            }
        }
        Ok(())
    }

    /// Block `i` for a scan that reads only event ids and timestamps, one customer at a time:
    /// customer runs (not expanded per row), event ids, and timestamps decoded on demand from
    /// each customer's first row (tag 9; a block written before tag 9 has its timestamps
    /// decoded whole). Every chunk read has its crc32 checked first; `bufs` keeps the
    /// allocations across blocks.
    pub fn read_block_runs_lazy<'s>(&'s self, i: usize, bufs: &'s mut LazyBufs) -> FileResult<LazyBlock<'s>> {
        let b = self.block_meta(i)?;
        let n = b.rows as usize;
        let path = &self.path;
        let LazyBufs {
            raw,
            raw_events,
            raw_ts,
            cids,
            ends,
            events,
            ts,
        } = bufs;
        let (cids, ends, events): (&[u32], &[u32], BlockEvents<'_>) = match self.kept_keys(i) {
            Some(k) => (&k.cids, &k.ends, k.events()),
            None => {
                self.read_runs(i, raw, cids, ends)?;
                let events = self.read_events(i, raw_events, events)?;
                self.keep_keys(i, cids, ends, &events);
                (cids, ends, events)
            }
        };
        let c = &b.chunks[1];
        let bytes = self.raw_chunk(c, raw_ts)?;
        let lazy = column::TsRuns::parse(bytes, n).map_err(|e| FileError::decode(path, c.offset, e))?;
        let ts = match lazy {
            Some(runs) => BlockTs::Lazy(runs),
            None => {
                let mut r = Reader::new(bytes);
                column::get_timestamps(&mut r, n, ends, ts)
                    .and_then(|()| r.finish())
                    .map_err(|e| FileError::decode(path, c.offset, e))?;
                BlockTs::Decoded(ts)
            }
        };
        Ok(LazyBlock {
            rows: n,
            cids,
            ends,
            events,
            ts,
        })
    }

    /// The zone map and chunk references of block `i`.
    fn block_meta(&self, i: usize) -> FileResult<&BlockMeta> {
        self.footer
            .blocks
            .get(i)
            .ok_or_else(|| FileError::corrupt(&self.path, 0, format!("no block {i}")))
    }

    /// Block `i`'s key columns, when a scan has kept them.
    fn kept_keys(&self, i: usize) -> Option<&BlockKeys> {
        self.keys.get(i).and_then(OnceLock::get)
    }

    /// Keeps a copy of block `i`'s key columns, just read and checked, if the budget has room.
    fn keep_keys(&self, i: usize, cids: &[u32], ends: &[u32], events: &BlockEvents<'_>) {
        let (Some(budget), Some(cell)) = (&self.key_cache, self.keys.get(i)) else {
            return;
        };
        let bytes = key_bytes(cids, ends, events);
        if cell.get().is_some() || !budget.reserve(bytes) {
            return;
        }
        let keys = BlockKeys {
            cids: cids.to_vec(),
            ends: ends.to_vec(),
            events: match events {
                BlockEvents::Nibbles(p) => KeyEvents::Nibbles(p.to_vec()),
                BlockEvents::Ids(v) => KeyEvents::Ids(v.to_vec()),
            },
        };
        if cell.set(keys).is_err() {
            // Another scan kept the same block first.
            budget.release(bytes);
        }
    }

    /// Decodes block `i`'s customer runs into `cids` and `ends`, checked against its zone map.
    fn read_runs(
        &self,
        i: usize,
        raw: &mut Vec<u8>,
        cids: &mut Vec<u32>,
        ends: &mut Vec<u32>,
    ) -> FileResult<()> {
        let b = self.block_meta(i)?;
        let c = &b.chunks[0];
        let bytes = self.raw_chunk(c, raw)?;
        let mut r = Reader::new(bytes);
        column::get_rle_runs(&mut r, b.rows as usize, cids, ends)
            .and_then(|()| r.finish())
            .map_err(|e| FileError::decode(&self.path, c.offset, e))?;
        if cids.first() != Some(&b.cid_min) || cids.last() != Some(&b.cid_max) {
            return Err(FileError::corrupt(
                &self.path,
                c.offset,
                "customer column disagrees with the zone map",
            ));
        }
        Ok(())
    }

    /// Block `i`'s event ids: the packed form as stored (in `raw`), or decoded into `ids`.
    fn read_events<'s>(
        &'s self,
        i: usize,
        raw: &'s mut Vec<u8>,
        ids: &'s mut Vec<u32>,
    ) -> FileResult<BlockEvents<'s>> {
        let b = self.block_meta(i)?;
        let n = b.rows as usize;
        let c = &b.chunks[2];
        let bytes = self.raw_chunk(c, raw)?;
        let err = |e| FileError::decode(&self.path, c.offset, e);
        if let Some(packed) = column::nibbles(bytes, n).map_err(err)? {
            return Ok(BlockEvents::Nibbles(packed));
        }
        let mut r = Reader::new(bytes);
        column::get_width_u32(&mut r, n, ids)
            .and_then(|()| r.finish())
            .map_err(err)?;
        Ok(BlockEvents::Ids(ids))
    }

    /// Decodes every block and checks every checksum (used by `verify`).
    pub fn verify(&self) -> FileResult<u64> {
        self.verify_with(|_| Ok(()))
    }

    /// As [`verify`](Segment::verify), also running `check` on every decoded block; its error
    /// becomes a corruption error at the block's first chunk.
    pub fn verify_with(&self, mut check: impl FnMut(&Columns) -> Result<(), String>) -> FileResult<u64> {
        let mut out = Columns::default();
        let mut rows = 0u64;
        for (i, b) in self.footer.blocks.iter().enumerate() {
            self.read_block_into(i, ColumnSet::ALL, &mut out)?;
            let at = b.chunks.first().map_or(0, |c| c.offset);
            let outside = out.ts.iter().find(|&&ts| ts < b.ts_min || ts > b.ts_max);
            if let Some(ts) = outside {
                let why = format!(
                    "block {i}: timestamp {ts} outside its zone map {}..={}",
                    b.ts_min, b.ts_max
                );
                return Err(FileError::corrupt(&self.path, at, why));
            }
            check(&out).map_err(|why| FileError::corrupt(&self.path, at, format!("block {i}: {why}")))?;
            rows += out.len() as u64;
        }
        Ok(rows)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(budget) = &self.key_cache {
            budget.release(
                self.keys
                    .iter()
                    .filter_map(OnceLock::get)
                    .map(BlockKeys::bytes)
                    .sum(),
            );
        }
        if self.obsolete.load(Ordering::SeqCst) {
            // Best effort: a file left behind is removed as an orphan at the next open.
            let _ = file::remove_if_exists(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: usize) -> Arc<Columns> {
        let mut c = Columns::default();
        for i in 0..rows {
            c.cid.push(i as u32);
            c.ts.push(i as i64);
            c.event.push(0);
            c.stage.push(0);
        }
        Arc::new(c)
    }

    /// A lazy block read gives each customer's timestamps as the whole-block decoding does, for
    /// segments with tag 9 timestamps (decoded per customer) and tag 7 ones (older segments,
    /// decoded whole), over several blocks with customers that span them; stage codes stored
    /// as a map by event read back alone and with every column.
    #[test]
    fn lazy_block_reads_equal_whole_blocks() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let n = limits::BLOCK_ROWS * 2 + 4_321;
        let mut rows = Columns::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let (mut cid, mut t) = (0u32, 0i64);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of 1–60 rows, one of 70,000 (across a block boundary); sessions minutes
            // apart, days between them.
            if i == 0 || (i != 1000 && x.is_multiple_of(30)) || i == 71_000 {
                cid += 1 + (x >> 40) as u32 % 3;
                t = 1_769_990_400_000_000 + (x >> 20) as i64 % 90 * 86_400_000_000;
            }
            t += if x.is_multiple_of(9) {
                86_400_000_000
            } else {
                (x >> 30) as i64 % 600_000_000
            };
            rows.cid.push(cid);
            rows.ts.push(t);
            rows.event.push((x % 13) as u32);
            // Stages that follow the event: stored as a map by event id (tag 10).
            rows.stage.push((x % 13 % 6) as u8);
        }
        std::fs::create_dir_all(dir.path().join(SEG_DIR))?;
        for (id, tag7) in [(1u64, false), (2, true)] {
            let name = if tag7 { "tag 7" } else { "tag 9" };
            let path = seg_path(dir.path(), id);
            let mut w = SegmentWriter::create(&path, Vec::new(), 3, 0)?;
            if tag7 {
                w = w.with_tag7_timestamps();
            }
            w.push_rows(&rows, None)?;
            let (footer, len) = w.finish(0, n as u64)?;
            let seg = Segment::open_written(dir.path(), id, len, footer)?;
            assert!(seg.footer.blocks.len() >= 3);
            let mut bufs = LazyBufs::default();
            let mut whole = Columns::default();
            let mut whole_start = 0;
            for i in 0..seg.footer.blocks.len() {
                seg.read_block_into(i, ColumnSet::ALL, &mut whole)?;
                assert_eq!(
                    whole.stage,
                    rows.stage[whole_start..whole_start + whole.len()],
                    "{name}"
                );
                let stages_only = ColumnSet {
                    ts: false,
                    event: false,
                    stage: true,
                    props: false,
                    prop_mask: 0,
                };
                assert_eq!(
                    seg.read_block(i, stages_only)?.stage,
                    whole.stage,
                    "{name}: stages alone"
                );
                let lazy = seg.read_block_runs_lazy(i, &mut bufs)?;
                assert_eq!(matches!(lazy.ts, BlockTs::Lazy(_)), !tag7, "{name}");
                assert_eq!(lazy.events.ids(0, lazy.rows).collect::<Vec<u32>>(), whole.event);
                assert!(
                    matches!(lazy.events, BlockEvents::Nibbles(_)),
                    "13 event ids take 4 bits"
                );
                let mut a = 0;
                for (&c, &end) in lazy.cids.iter().zip(lazy.ends) {
                    let end = end as usize;
                    assert!(whole.cid[a..end].iter().all(|&x| x == c));
                    let ts: Vec<i64> = match &lazy.ts {
                        BlockTs::Lazy(r) => r.run(a).take(end - a).collect(),
                        BlockTs::Decoded(v) => v[a..end].to_vec(),
                    };
                    assert_eq!(ts, whole.ts[a..end], "{name} block {i} rows {a}..{end}");
                    a = end;
                }
                assert_eq!(a, whole.len());
                whole_start += whole.len();
            }
        }
        Ok(())
    }

    /// The index stored as two zstd frames (a large segment's) decodes to the same footer as the
    /// one-frame form, and both to the footer written.
    #[test]
    fn split_index_decodes_as_one() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.seg");
        let n = 5_000usize;
        let mut rows = Columns::default();
        for i in 0..n {
            rows.cid.push((i / 7) as u32);
            rows.ts.push((i as i64 % 7) * 40_000_000_000 + i as i64);
            rows.event.push((i % 5) as u32);
            rows.stage.push((i % 6) as u8);
        }
        rows.props.push(crate::model::PropColumn {
            id: 0,
            ty: PropType::Str,
            valid: (0..n).map(|i| i % 3 != 0).collect(),
            vals: (0..n).map(|i| (i % 11) as u64).collect(),
        });
        let mut w = SegmentWriter::create(&path, vec![(0, PropType::Str)], 3, 0)?;
        w.push_rows(&rows, None)?;
        let (footer, len) = w.finish(0, n as u64)?;
        let (mut one, mut two) = (Vec::new(), Vec::new());
        encode_footer(&footer, &mut one, false, 0)?;
        encode_footer(&footer, &mut two, true, 0)?;
        // Encoded on two threads but small: one frame, the same bytes.
        let mut parallel = Vec::new();
        encode_footer(&footer, &mut parallel, true, INDEX_SPLIT_BYTES)?;
        assert_eq!(parallel, one);
        assert_ne!(one, two, "the split form is two frames");
        assert_eq!(decode_footer(&one, len)?, footer);
        assert_eq!(decode_footer(&two, len)?, footer);
        Ok(())
    }

    #[test]
    fn block_cache_stays_within_budget_and_evicts_least_recently_used() {
        // Each block of 100 rows without properties is 1,700 bytes.
        let cache = BlockCache::new(4_000);
        cache.insert((1, 0), block(100));
        cache.insert((1, 1), block(100));
        assert_eq!(cache.used(), 3_400);
        // Touch (1, 0): (1, 1) is now the least recently used and goes first.
        assert!(cache.get((1, 0)).is_some());
        cache.insert((2, 0), block(100));
        assert!(cache.used() <= 4_000);
        assert!(cache.get((1, 1)).is_none());
        assert!(cache.get((1, 0)).is_some() && cache.get((2, 0)).is_some());
        // A block larger than the whole budget is not kept; re-inserting a key replaces it.
        cache.insert((3, 0), block(1_000));
        assert!(cache.get((3, 0)).is_none());
        cache.insert((2, 0), block(50));
        assert_eq!(cache.used(), 1_700 + 850);
        // An obsolete segment's blocks are dropped.
        cache.forget_segment(1);
        assert!(cache.get((1, 0)).is_none());
        assert_eq!(cache.used(), 850);
        // Budget 0: nothing is kept.
        let off = BlockCache::new(0);
        off.insert((1, 0), block(1));
        assert_eq!(off.used(), 0);
    }

    /// One customer run of a lazy block read, owned: customer, run end, event ids, timestamps.
    type Run = (u32, u32, Vec<u32>, Vec<i64>);

    /// One lazy read of every block of `seg`.
    fn lazy_runs(seg: &Segment) -> FileResult<Vec<Run>> {
        let mut bufs = LazyBufs::default();
        let mut out = Vec::new();
        for i in 0..seg.footer.blocks.len() {
            let b = seg.read_block_runs_lazy(i, &mut bufs)?;
            let mut a = 0;
            for (&c, &end) in b.cids.iter().zip(b.ends) {
                let len = end as usize - a;
                let ts: Vec<i64> = match &b.ts {
                    BlockTs::Lazy(r) => r.run(a).take(len).collect(),
                    BlockTs::Decoded(v) => v[a..end as usize].to_vec(),
                };
                out.push((c, end, b.events.ids(a, end as usize).collect(), ts));
                a = end as usize;
            }
        }
        Ok(out)
    }

    /// Segments of `n` rows in runs of 1–40 per customer (so runs cross blocks), with event ids
    /// below `events`: 16 or fewer are stored 4 bits each (kept packed), more width-coded
    /// (kept decoded).
    fn keyed_segment(dir: &Path, id: u64, n: usize, events: u32) -> FileResult<Segment> {
        let mut rows = Columns::default();
        let (mut cid, mut x) = (0u32, 0x9E37_79B9_7F4A_7C15u64);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(20) {
                cid += 1;
            }
            rows.cid.push(cid);
            rows.ts.push(1_769_990_400_000_000 + i as i64 * 1_000_000);
            rows.event.push((x >> 20) as u32 % events);
            rows.stage.push(0);
        }
        std::fs::create_dir_all(dir.join(SEG_DIR)).map_err(|e| FileError::io(dir, e))?;
        let mut w = SegmentWriter::create(&seg_path(dir, id), Vec::new(), 3, 0)?;
        w.push_rows(&rows, None)?;
        let (footer, len) = w.finish(0, n as u64)?;
        Segment::open_written(dir, id, len, footer)
    }

    /// Scans read the same runs, events and timestamps with the key cache as without it — on the
    /// read that keeps a block's keys and on the reads served from them — for both forms of
    /// event ids; the cache holds at most its budget, admits no block that does not fit, and
    /// gets every byte back when the segment is dropped.
    #[test]
    fn key_cache_reads_equal_uncached_reads_within_its_budget() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for (id, events) in [(1u64, 13u32), (2, 40)] {
            let plain = keyed_segment(dir.path(), id, 150_000, events)?;
            assert!(plain.footer.blocks.len() >= 3);
            let want = lazy_runs(&plain)?;
            assert!(want.iter().any(|r| r.2.len() > 1));
            let kept = |seg: &Segment| seg.keys.iter().filter(|k| k.get().is_some()).count();
            assert_eq!(kept(&plain), 0, "no cache, nothing kept");
            let whole = KeyCache::new(usize::MAX);
            let seg = Segment::open(dir.path(), id, None)?.with_key_cache(whole.clone());
            assert_eq!(lazy_runs(&seg)?, want, "events < {events}: read that keeps");
            assert_eq!(kept(&seg), seg.footer.blocks.len());
            let held = whole.used();
            let per_event = if events <= 16 { 0.5 } else { 4.0 };
            assert!(held as f64 >= per_event * 150_000.0, "{held} bytes");
            assert_eq!(lazy_runs(&seg)?, want, "events < {events}: reads from the cache");
            assert_eq!(whole.used(), held, "a block is kept once");
            drop(seg);
            assert_eq!(whole.used(), 0, "a dropped segment gives its bytes back");

            // Room for about one block: some blocks kept, the others read from the file.
            let budget = held / plain.footer.blocks.len() + held / 10;
            let some = KeyCache::new(budget);
            let seg = Segment::open(dir.path(), id, None)?.with_key_cache(some.clone());
            for _ in 0..2 {
                assert_eq!(lazy_runs(&seg)?, want, "events < {events}: partly kept");
                assert!(some.used() <= budget && some.used() > 0);
                assert!((1..seg.footer.blocks.len()).contains(&kept(&seg)));
            }
            let off = KeyCache::new(0);
            let seg = Segment::open(dir.path(), id, None)?.with_key_cache(off.clone());
            assert_eq!(lazy_runs(&seg)?, want);
            assert_eq!((off.used(), kept(&seg)), (0, 0));
        }
        Ok(())
    }

    /// A corrupt event chunk fails the scan that reads it, naming the file and the chunk's
    /// offset, with the cache as without it; nothing of the block is kept, so every read checks
    /// it again.
    #[test]
    fn key_cache_keeps_no_corrupt_block() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let seg = keyed_segment(dir.path(), 1, 150_000, 13)?;
        let chunk = seg.footer.blocks[1].chunks[2];
        let path = seg.path().to_path_buf();
        drop(seg);
        let mut bytes = std::fs::read(&path)?;
        bytes[chunk.offset as usize + chunk.stored_len as usize / 2] ^= 0x40;
        std::fs::write(&path, &bytes)?;
        let cache = KeyCache::new(usize::MAX);
        let seg = Segment::open(dir.path(), 1, None)?.with_key_cache(cache.clone());
        let mut bufs = LazyBufs::default();
        seg.read_block_runs_lazy(0, &mut bufs)?;
        let first = cache.used();
        assert!(first > 0);
        for _ in 0..2 {
            match seg.read_block_runs_lazy(1, &mut bufs) {
                Err(FileError::Corrupt { path: p, offset, .. }) => {
                    assert_eq!((p, offset), (path.clone(), chunk.offset));
                }
                Err(e) => panic!("unexpected error {e}"),
                Ok(_) => panic!("a corrupt chunk was read"),
            }
            assert_eq!(cache.used(), first, "the corrupt block is not kept");
            assert!(seg.keys[1].get().is_none());
        }
        Ok(())
    }
}
