//! Reading a segment: open (trailer and footer checked against the file length, then mapped),
//! blocks decoded whole or lazily (customer runs, events, timestamps decoded as read), and
//! verification of every checksum.
//!
//! Uses: `codec`, `file`, `limits`, `model`; rooms `cache`, `encoding`, `footer`.

use super::encoding;
use super::{BlockMeta, ChunkRef, ColumnSet, FIXED_COLUMNS, TRAILER_LEN, ZSTD_MAGIC_0, seg_path};
use crate::codec::{self, DecodeError, Reader};
use crate::file::{self, FileError, FileResult, IoContext, Kind};
use crate::limits;
use crate::model::{Columns, PropColumn};
use crate::segment::cache::{BlockCache, BlockKeys, KeyCache, KeyEvents, key_bytes};
use crate::segment::footer::{Footer, decode_footer};
use memmap2::Mmap;
use std::iter::Copied;
use std::path::{Path, PathBuf};
use std::slice::Iter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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

/// A reader of one customer's rows in a [`LazyBlock`]: event ids and timestamps as iterators
/// that decode as they are read. [`LazyBlock::visit_rows`] calls it once, with iterators of the
/// block's actual encodings, so that each form's loop is compiled (and inlined) alone and the
/// reader never names an encoding.
pub trait RowsVisitor {
    /// What the visit returns.
    type Output;
    /// Reads the rows (`ts` yields at least as many values as `events`).
    fn visit(self, events: impl Iterator<Item = u32>, ts: impl Iterator<Item = i64>) -> Self::Output;
}

impl LazyBlock<'_> {
    /// Hands rows `start..end` (one customer's run) to `visitor`.
    #[inline]
    pub fn visit_rows<V: RowsVisitor>(&self, start: usize, end: usize, visitor: V) -> V::Output {
        match (&self.events, &self.ts) {
            (BlockEvents::Nibbles(p), BlockTs::Lazy(runs)) => {
                visitor.visit(encoding::Nibbles::new(p, start, end), runs.run(start))
            }
            (events, BlockTs::Lazy(runs)) => visitor.visit(events.ids(start, end), runs.run(start)),
            (events, BlockTs::Decoded(ts)) => visitor.visit(
                events.ids(start, end),
                ts.get(start..).unwrap_or(&[]).iter().copied(),
            ),
        }
    }
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
    pub fn ids(&self, start: usize, end: usize) -> Either<encoding::Nibbles<'_>, Copied<Iter<'_, u32>>> {
        match self {
            BlockEvents::Nibbles(p) => Either::A(encoding::Nibbles::new(p, start, end)),
            BlockEvents::Ids(v) => Either::B(v.get(start..end).unwrap_or(&[]).iter().copied()),
        }
    }
}

/// A block's timestamps: decoded on demand per customer, or (blocks written before tag 9)
/// decoded whole.
pub enum BlockTs<'s> {
    /// Tag 9, read from each customer's first row.
    Lazy(encoding::TsRuns<'s>),
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
    /// Property decoding's buffers, reused the same way.
    static PROP_SCRATCH: std::cell::RefCell<encoding::PropScratch> =
        std::cell::RefCell::new(encoding::PropScratch::default());
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
    pub(in crate::internals::segment) keys: Vec<OnceLock<BlockKeys>>,
    /// Each block is read once (an import's sorted run, merged): its pages leave this
    /// process's memory once it is decoded (see [`Segment::reading_once`]).
    read_once: bool,
}

/// Source of [`Segment::uid`].
pub(super) static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
        let (footer_offset, fbytes) = footer_bytes(&path, bytes)?;
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
            read_once: false,
        })
    }

    /// This segment's blocks are each read once, in order (an import's sorted run being
    /// merged): after a block is decoded its pages are released from the map, so that
    /// merging ~50 runs of a 100M-event import does not hold every run file's pages mapped
    /// (500 MB resident at its end; they stay in the page cache for the kernel to manage).
    pub fn reading_once(mut self) -> Segment {
        self.read_once = true;
        self
    }

    /// Releases the mapped pages of `block` (see [`reading_once`](Self::reading_once)); best
    /// effort: the advice may fail, and nothing depends on it.
    fn release_pages(&self, block: &BlockMeta) {
        const PAGE: usize = 4096;
        let offsets = block.chunks.iter().map(|c| c.offset as usize);
        let ends = block
            .chunks
            .iter()
            .map(|c| c.offset as usize + c.stored_len as usize);
        let (Some(start), Some(end)) = (offsets.min(), ends.max()) else {
            return;
        };
        let start = start / PAGE * PAGE;
        let end = end.div_ceil(PAGE).saturating_mul(PAGE).min(self.map.len());
        if end <= start {
            return;
        }
        #[expect(
            unsafe_code,
            reason = "releasing the pages of a decoded run block; see docs/UNSAFE.md"
        )]
        // SAFETY: the map is a shared, read-only map of a file journeydb does not change
        // (see `open_with`). MADV_DONTNEED on such a map only drops this process's page-table
        // entries: the next access to the range faults the same bytes in again from the page
        // cache or the file, so every slice still borrowed from the map stays valid and reads
        // the same contents. (It is unchecked in memmap2 because on a private, written map it
        // would discard the writes; this map is neither.) The range lies inside the map.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
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

    /// Block `index` with every column, through the block cache when there is one (for reads of
    /// one customer; scans use [`Segment::read_block_into`]).
    pub fn read_block_shared(&self, index: usize) -> FileResult<Arc<Columns>> {
        let Some(cache) = &self.cache else {
            return self.read_block(index, ColumnSet::ALL).map(Arc::new);
        };
        if let Some(cols) = cache.get((self.uid, index)) {
            return Ok(cols);
        }
        let cols = Arc::new(self.read_block(index, ColumnSet::ALL)?);
        cache.insert((self.uid, index), cols.clone());
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

    /// The raw bytes of chunk `chunk`: the mapped bytes when stored uncompressed, else
    /// decompressed into `out`. The crc32 of the stored bytes is checked first.
    fn raw_chunk<'s>(&'s self, chunk: &ChunkRef, out: &'s mut Vec<u8>) -> FileResult<&'s [u8]> {
        // Offsets were validated against the data region when the footer was decoded.
        let start = chunk.offset as usize;
        let stored = self
            .map
            .get(start..start + chunk.stored_len as usize)
            .ok_or_else(|| FileError::corrupt(&self.path, chunk.offset, "chunk outside the file"))?;
        if codec::crc32(stored) != chunk.crc {
            return Err(FileError::corrupt(
                &self.path,
                chunk.offset,
                "block checksum mismatch",
            ));
        }
        if stored.first() != Some(&ZSTD_MAGIC_0) {
            // Stored uncompressed (see `SegmentWriter::chunk`).
            if chunk.stored_len != chunk.raw_len {
                return Err(FileError::corrupt(
                    &self.path,
                    chunk.offset,
                    "uncompressed chunk with a different raw length",
                ));
            }
            return Ok(stored);
        }
        codec::decompress_into(stored, chunk.raw_len as usize, limits::CHUNK_RAW_BYTES_MAX, out)
            .map_err(|e| FileError::decode(&self.path, chunk.offset, e))?;
        Ok(out)
    }

    /// Decodes block `index` (checking every chunk's crc32 first).
    pub fn read_block(&self, index: usize, set: ColumnSet) -> FileResult<Columns> {
        let mut out = Columns::default();
        self.read_block_into(index, set, &mut out)?;
        Ok(out)
    }

    /// Decodes block `index` into `out`, reusing its allocations.
    pub fn read_block_into(&self, index: usize, set: ColumnSet, out: &mut Columns) -> FileResult<()> {
        self.read_block_with(index, set, out, None)?;
        out.strip_stage_flags();
        Ok(())
    }

    /// Block `index`'s columns in `set` in the stored form: stages that came from the stage map
    /// keep `model::STAGE_MAPPED` (for compaction and re-staging, which write them again).
    pub fn read_block_stored(&self, index: usize, set: ColumnSet, out: &mut Columns) -> FileResult<()> {
        self.read_block_with(index, set, out, None)
    }

    /// As [`read_block_into`](Self::read_block_into), and `ends` receives the end (exclusive
    /// row index) of each customer's run of rows, from the run-length code.
    pub fn read_block_runs(
        &self,
        index: usize,
        set: ColumnSet,
        out: &mut Columns,
        ends: &mut Vec<u32>,
    ) -> FileResult<()> {
        self.read_block_with(index, set, out, Some(ends))?;
        out.strip_stage_flags();
        Ok(())
    }

    fn read_block_with(
        &self,
        index: usize,
        set: ColumnSet,
        out: &mut Columns,
        ends: Option<&mut Vec<u32>>,
    ) -> FileResult<()> {
        let b = self
            .footer
            .blocks
            .get(index)
            .ok_or_else(|| FileError::corrupt(&self.path, 0, format!("no block {index}")))?;
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let result = self.decode_block(b, set, out, &mut scratch, ends);
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        if self.read_once {
            self.release_pages(b);
        }
        result
    }

    fn decode_block(
        &self,
        block: &BlockMeta,
        set: ColumnSet,
        out: &mut Columns,
        raw: &mut Vec<u8>,
        ends: Option<&mut Vec<u32>>,
    ) -> FileResult<()> {
        let n = block.rows as usize;
        let path = &self.path;
        // Decompresses chunk `k` into `raw` (crc checked first) and runs `decode` over it,
        // requiring that the decoder consumes every byte.
        let mut column = |k: usize, decode: &mut dyn FnMut(&mut Reader<'_>) -> Result<(), DecodeError>| {
            let c = &block.chunks[k];
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
            encoding::get_rle_u32_runs(r, n, &mut out.cid, Some(&mut *ends))
        })?;
        if out.cid.first() != Some(&block.cid_min) || out.cid.last() != Some(&block.cid_max) {
            return Err(FileError::corrupt(
                path,
                off,
                "customer column disagrees with the zone map",
            ));
        }
        out.ts.clear();
        if set.ts {
            column(1, &mut |r| encoding::get_timestamps(r, n, ends, &mut out.ts))?;
        }
        out.event.clear();
        // Stage codes may be stored as a map by event id (tag 10): reading them reads the
        // event ids too (into `out` only when asked for).
        let mut events_only = Vec::new();
        if set.event {
            column(2, &mut |r| encoding::get_width_u32(r, n, &mut out.event))?;
        } else if set.stage {
            column(2, &mut |r| encoding::get_width_u32(r, n, &mut events_only))?;
        }
        out.stage.clear();
        if set.stage {
            let events = if set.event { &out.event } else { &events_only };
            let off = column(3, &mut |r| {
                encoding::get_stages(r, n, Some(events), &mut out.stage)
            })?;
            if !out.stage.iter().all(|&s| crate::model::stored_stage_valid(s)) {
                return Err(FileError::corrupt(path, off, "stage code out of range"));
            }
        }
        // The previous block's columns lend their allocations to this block's.
        let mut spare = std::mem::take(&mut out.props);
        if set.props {
            let mut scratch = PROP_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
            for (k, &(id, ty)) in self.footer.props.iter().enumerate() {
                if id < 64 && set.prop_mask & (1u64 << id) == 0 {
                    continue;
                }
                let mut col = spare.pop().unwrap_or_else(|| PropColumn::new(id, ty));
                (col.id, col.ty) = (id, ty);
                column(FIXED_COLUMNS + k, &mut |r| {
                    encoding::get_prop_into(r, n, &mut col, &mut scratch)
                })?;
                if col.valid.iter().any(|&v| v) {
                    out.props.push(col);
                } else {
                    spare.push(col);
                }
            }
            PROP_SCRATCH.with(|s| *s.borrow_mut() = scratch);
        }
        Ok(())
    }

    /// Block `index` for a scan that reads only event ids and timestamps, one customer at a time:
    /// customer runs (not expanded per row), event ids, and timestamps decoded on demand from
    /// each customer's first row (tag 9; a block written before tag 9 has its timestamps
    /// decoded whole). Every chunk read has its crc32 checked first; `bufs` keeps the
    /// allocations across blocks.
    pub fn read_block_runs_lazy<'s>(
        &'s self,
        index: usize,
        bufs: &'s mut LazyBufs,
    ) -> FileResult<LazyBlock<'s>> {
        let b = self.block_meta(index)?;
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
        let (cids, ends, events): (&[u32], &[u32], BlockEvents<'_>) = match self.kept_keys(index) {
            Some(k) => (&k.cids, &k.ends, k.events()),
            None => {
                self.read_runs(index, raw, cids, ends)?;
                let events = self.read_events(index, raw_events, events)?;
                self.keep_keys(index, cids, ends, &events);
                (cids, ends, events)
            }
        };
        let c = &b.chunks[1];
        let bytes = self.raw_chunk(c, raw_ts)?;
        let lazy = encoding::TsRuns::parse(bytes, n).map_err(|e| FileError::decode(path, c.offset, e))?;
        let ts = match lazy {
            Some(runs) => BlockTs::Lazy(runs),
            None => {
                let mut r = Reader::new(bytes);
                encoding::get_timestamps(&mut r, n, ends, ts)
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

    /// The zone map and chunk references of block `index`.
    fn block_meta(&self, index: usize) -> FileResult<&BlockMeta> {
        self.footer
            .blocks
            .get(index)
            .ok_or_else(|| FileError::corrupt(&self.path, 0, format!("no block {index}")))
    }

    /// Block `index`'s key columns, when a scan has kept them.
    fn kept_keys(&self, index: usize) -> Option<&BlockKeys> {
        self.keys.get(index).and_then(OnceLock::get)
    }

    /// Keeps a copy of block `index`'s key columns, just read and checked, if the budget has room.
    fn keep_keys(&self, index: usize, cids: &[u32], ends: &[u32], events: &BlockEvents<'_>) {
        let (Some(budget), Some(cell)) = (&self.key_cache, self.keys.get(index)) else {
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

    /// Decodes block `index`'s customer runs into `cids` and `ends`, checked against its zone map.
    fn read_runs(
        &self,
        index: usize,
        raw: &mut Vec<u8>,
        cids: &mut Vec<u32>,
        ends: &mut Vec<u32>,
    ) -> FileResult<()> {
        let b = self.block_meta(index)?;
        let c = &b.chunks[0];
        let bytes = self.raw_chunk(c, raw)?;
        let mut r = Reader::new(bytes);
        encoding::get_rle_runs(&mut r, b.rows as usize, cids, ends)
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

    /// Block `index`'s event ids: the packed form as stored (in `raw`), or decoded into `ids`.
    fn read_events<'s>(
        &'s self,
        index: usize,
        raw: &'s mut Vec<u8>,
        ids: &'s mut Vec<u32>,
    ) -> FileResult<BlockEvents<'s>> {
        let b = self.block_meta(index)?;
        let n = b.rows as usize;
        let c = &b.chunks[2];
        let bytes = self.raw_chunk(c, raw)?;
        let err = |e| FileError::decode(&self.path, c.offset, e);
        if let Some(packed) = encoding::nibbles(bytes, n).map_err(err)? {
            return Ok(BlockEvents::Nibbles(packed));
        }
        let mut r = Reader::new(bytes);
        encoding::get_width_u32(&mut r, n, ids)
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

/// The footer of a mapped segment file (`bytes`, its header checked): the trailer read and
/// checked (magic, format version, the footer's place and length, its checksum); returns the
/// footer's offset and bytes.
fn footer_bytes<'b>(path: &Path, bytes: &'b [u8]) -> FileResult<(u64, &'b [u8])> {
    let len = bytes.len() as u64;
    let tail_at = bytes.len() - TRAILER_LEN;
    let mut t = Reader::new(&bytes[tail_at..]);
    let d = |e: DecodeError| FileError::decode(path, tail_at as u64, e);
    let footer_offset = t.u64().map_err(d)?;
    let footer_len = t.u64().map_err(d)?;
    let footer_crc = t.u32().map_err(d)?;
    let version = t.u32().map_err(d)?;
    let magic = t.bytes(file::MAGIC_LEN).map_err(d)?;
    if magic != file::magic(Kind::Segment) {
        return Err(FileError::corrupt(
            path,
            len - 8,
            "wrong trailer magic (truncated or not a segment)",
        ));
    }
    if version != file::FORMAT_VERSION {
        return Err(FileError::corrupt(
            path,
            len - 12,
            format!("format version {version}"),
        ));
    }
    if footer_len > limits::FOOTER_BYTES_MAX
        || footer_offset < file::HEADER_LEN as u64
        || footer_offset.checked_add(footer_len) != Some(tail_at as u64)
    {
        return Err(FileError::corrupt(
            path,
            tail_at as u64,
            format!(
                "footer at {footer_offset} of {footer_len} bytes does not end at the trailer ({tail_at})"
            ),
        ));
    }
    let fbytes = &bytes[footer_offset as usize..tail_at];
    if codec::crc32(fbytes) != footer_crc {
        return Err(FileError::corrupt(
            path,
            footer_offset,
            "footer checksum mismatch",
        ));
    }
    Ok((footer_offset, fbytes))
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
