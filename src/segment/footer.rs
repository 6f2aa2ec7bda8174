//! The segment footer: segment metadata, the property directory, per-block zone maps and chunk
//! directory, and the bitmap index (docs/FORMAT.md §5.2). One function encodes it, one decodes
//! it, and the decoder checks every count and range against the file.
//!
//! Uses: `codec`, `file`, `index`, `limits`, `model`.

use super::{BlockMeta, ChunkRef, FIXED_COLUMNS};
use crate::codec::{self, DecodeError, Reader};
use crate::file::{self};
use crate::index::{Bitmaps, EventDays, Rollups, Table, ValueIndex, decode_day_table, encode_days};
use crate::limits;
use crate::model::{PropType, join};

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

/// From this many rows on, the two parts of a segment's index (the per-stage and per-event
/// sets with the day table's first days, and its other days) are encoded on two threads.
pub(super) const INDEX_PARALLEL_ROWS: u64 = 1 << 18;

/// From this many bytes of the index's first part on, the two parts are also compressed apart,
/// on two threads, as two zstd frames: so far beyond zstd's window at level 3 (2 MiB) that the
/// second part could hardly refer back to the first anyway.
pub(super) const INDEX_SPLIT_BYTES: usize = 8 << 20;

/// Appends the footer; with `parallel`, the index's two parts are encoded on two threads, and
/// compressed as two frames on two threads when the first is at least `split_bytes` long.
#[cfg(test)]
pub(super) fn encode_footer(
    footer: &Footer,
    out: &mut Vec<u8>,
    parallel: bool,
    sizes: (usize, usize),
) -> std::io::Result<()> {
    for piece in encode_footer_pieces(footer, parallel, sizes)? {
        out.extend_from_slice(&piece);
    }
    Ok(())
}

/// The footer [`encode_footer`] appends, as pieces to be written one after the other: its
/// beginning, then the index's zstd frames (each its own allocation: a 100M-event footer's
/// ~100 MB of frames are never copied into one buffer).
pub(super) fn encode_footer_pieces(
    footer: &Footer,
    parallel: bool,
    sizes: (usize, usize),
) -> std::io::Result<Vec<Vec<u8>>> {
    let mut head = Vec::new();
    let out = &mut head;
    codec::put_u64(out, footer.rows);
    codec::put_u64(out, footer.seq_min);
    codec::put_u64(out, footer.seq_end);
    codec::put_i64(out, footer.ts_min);
    codec::put_i64(out, footer.ts_max);
    codec::put_u32(out, footer.props.len() as u32);
    for (id, ty) in &footer.props {
        codec::put_u32(out, *id);
        out.push(ty.code());
    }
    codec::put_u32(out, footer.blocks.len() as u32);
    for b in &footer.blocks {
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
    let (raw_len, frames) = encode_index(footer, parallel, sizes)?;
    let stored_len: usize = frames.iter().map(Vec::len).sum();
    codec::put_u32(out, raw_len as u32);
    codec::put_u32(out, stored_len as u32);
    Ok(std::iter::once(head).chain(frames).collect())
}

/// Marks an index whose per-day sets are a day table (§5.3). An older build reads it as the
/// length word of a stage bitmap over a gigabyte long and refuses the segment.
const DAY_TABLE_MARK: u32 = u32::MAX;

/// The index as zstd frames, and its raw length, in the day-table form (§5.3; a footer without
/// rollups, value index or event-day sets — none is written so — stores them empty). The two
/// tables are encoded on two threads with `parallel` (see [`in_frames`]).
fn encode_index(
    footer: &Footer,
    parallel: bool,
    (split_bytes, frame_bytes): (usize, usize),
) -> std::io::Result<(usize, Vec<Vec<u8>>)> {
    let (no_rollups, no_values, no_event_days) =
        (Rollups::default(), ValueIndex::default(), EventDays::default());
    let rollups = footer.rollups.as_ref().unwrap_or(&no_rollups);
    let values = footer.values.as_ref().unwrap_or(&no_values);
    let event_days = footer.event_days.as_ref().unwrap_or(&no_event_days);
    let table = Table::new(&footer.bitmaps.stage_days, &event_days.days, &values.days);
    // Two tables (days cut where half the memberships are), whether or not on two threads:
    // the bytes do not depend on `parallel`.
    let cuts = table.cuts(2);
    let head = |frames: &mut Frames| -> std::io::Result<()> {
        let Frames { raw, sealed } = frames;
        let mut seal = |raw: &mut Vec<u8>| sealed.seal_if_full(raw, frame_bytes);
        codec::put_u32(raw, DAY_TABLE_MARK);
        footer.bitmaps.encode_heads(raw, &mut seal)?;
        rollups.encode(raw);
        values.encode_overflow(raw);
        table.keys.encode(raw);
        codec::put_u32(raw, 2);
        encode_days(&table.days[cuts[0]..cuts[1]], table.keys.count(), raw, &mut seal)
    };
    let tail = |frames: &mut Frames| -> std::io::Result<()> {
        let Frames { raw, sealed } = frames;
        encode_days(
            &table.days[cuts[1]..cuts[2]],
            table.keys.count(),
            raw,
            &mut |raw| sealed.seal_if_full(raw, frame_bytes),
        )
    };
    in_frames(head, tail, parallel, split_bytes)
}

/// The index's two parts, written by `head` and `tail` (on two threads with `parallel`; their
/// frames stored one after the other: §5.3, a standard zstd stream of one or more frames, read
/// as one), and its raw length. A part is compressed apart when the first is `split_bytes` or
/// more, else the two as one frame; each part is compressed as it is encoded, a frame per
/// `frame_bytes`, so that a large footer never holds its whole raw index.
fn in_frames(
    head: impl FnOnce(&mut Frames) -> std::io::Result<()> + Send,
    tail: impl FnOnce(&mut Frames) -> std::io::Result<()> + Send,
    parallel: bool,
    split_bytes: usize,
) -> std::io::Result<(usize, Vec<Vec<u8>>)> {
    let (mut first, mut second) = (Frames::default(), Frames::default());
    if parallel {
        std::thread::scope(|s| {
            let h = s.spawn(|| tail(&mut second));
            let done = head(&mut first);
            done.and(join(h))
        })?;
    } else {
        head(&mut first)?;
        tail(&mut second)?;
    }
    let raw_len = first.sealed.raw_done + first.raw.len() + second.sealed.raw_done + second.raw.len();
    let apart =
        parallel && !second.is_empty() && (first.sealed.raw_done > 0 || first.raw.len() >= split_bytes);
    if apart || second.sealed.raw_done > 0 {
        // The parts' last frames on two threads.
        std::thread::scope(|s| {
            let h = s.spawn(|| second.seal(false));
            let done = first.seal(false);
            done.and(join(h))
        })?;
    } else {
        // One part's bytes, or two small ones, as one last frame.
        first.raw.extend_from_slice(&second.raw);
        second.raw = Vec::new();
        first.seal(true)?;
    }
    let mut frames = first.sealed.stored;
    frames.extend(second.sealed.stored);
    Ok((raw_len, frames))
}

/// Raw index bytes from which a frame is compressed while the index is encoded: far past
/// zstd's 2 MiB window at level 3, so the frames cost a few hundred bytes each, and at most
/// this much of the raw index is held at once (a 100M-event import's footer held all of its
/// raw index and its compressed copy together).
pub(super) const INDEX_FRAME_BYTES: usize = 16 << 20;

/// One part of the index being compressed as it is encoded.
#[derive(Default)]
struct Frames {
    /// Encoded, not yet compressed.
    raw: Vec<u8>,
    sealed: Sealed,
}

/// The frames of one part compressed so far.
#[derive(Default)]
struct Sealed {
    stored: Vec<Vec<u8>>,
    /// The raw bytes of those frames.
    raw_done: usize,
}

impl Frames {
    fn is_empty(&self) -> bool {
        self.raw.is_empty() && self.sealed.raw_done == 0
    }

    /// Compresses what is left as a frame (none when nothing is, unless `always`).
    fn seal(&mut self, always: bool) -> std::io::Result<()> {
        if always || !self.raw.is_empty() {
            self.sealed.seal_if_full(&mut self.raw, 0)?;
            self.raw = Vec::new();
        }
        Ok(())
    }
}

impl Sealed {
    /// Compresses `raw` (the part's bytes since the last frame) as the next frame once it
    /// holds `frame_bytes`.
    fn seal_if_full(&mut self, raw: &mut Vec<u8>, frame_bytes: usize) -> std::io::Result<()> {
        if raw.len() >= frame_bytes {
            self.stored.push(codec::compress(raw, 3)?);
            self.raw_done += raw.len();
            raw.clear();
        }
        Ok(())
    }
}

pub(super) fn decode_footer(bytes: &[u8], body_end: u64) -> Result<Footer, DecodeError> {
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
    let props = decode_props(&mut r)?;
    let blocks = decode_blocks(&mut r, FIXED_COLUMNS + props.len(), body_end)?;
    if blocks.iter().map(|b| u64::from(b.rows)).sum::<u64>() != rows {
        return Err(r.err("block rows do not add up to the segment rows"));
    }
    let (bitmaps, rollups, values, event_days) = decode_index(&mut r)?;
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

/// The property directory: (id, type) in ascending id order.
fn decode_props(reader: &mut Reader<'_>) -> Result<Vec<(u32, PropType)>, DecodeError> {
    let nprops = reader.u32()? as usize;
    if nprops > limits::PROPS_MAX {
        return Err(reader.err("too many properties"));
    }
    let mut props = Vec::with_capacity(nprops);
    for _ in 0..nprops {
        let id = reader.u32()?;
        let ty = PropType::from_code(reader.u8()?).ok_or_else(|| reader.err("unknown property type"))?;
        if props.last().is_some_and(|&(last, _)| last >= id) {
            return Err(reader.err("properties out of order"));
        }
        props.push((id, ty));
    }
    Ok(props)
}

/// The blocks' zone maps (customers ascending across blocks) and chunk directories (`ncols`
/// chunks each, all inside the data region that ends at `body_end`).
fn decode_blocks(
    reader: &mut Reader<'_>,
    ncols: usize,
    body_end: u64,
) -> Result<Vec<BlockMeta>, DecodeError> {
    let nblocks = reader.u32()? as usize;
    let block_bytes = 28 + ncols * 20;
    if nblocks > reader.remaining() / block_bytes {
        return Err(reader.err("block count exceeds the footer"));
    }
    let mut blocks = Vec::with_capacity(nblocks);
    let mut prev_cid = 0u32;
    for _ in 0..nblocks {
        let at = reader.pos();
        let rows = reader.u32()?;
        let cid_min = reader.u32()?;
        let cid_max = reader.u32()?;
        let ts_min = reader.i64()?;
        let ts_max = reader.i64()?;
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
        let chunks = (0..ncols)
            .map(|_| decode_chunk(reader, body_end))
            .collect::<Result<_, _>>()?;
        blocks.push(BlockMeta {
            rows,
            cid_min,
            cid_max,
            ts_min,
            ts_max,
            chunks,
        });
    }
    Ok(blocks)
}

/// One chunk reference, inside the data region.
fn decode_chunk(reader: &mut Reader<'_>, body_end: u64) -> Result<ChunkRef, DecodeError> {
    let at = reader.pos();
    let c = ChunkRef {
        offset: reader.u64()?,
        stored_len: reader.u32()?,
        raw_len: reader.u32()?,
        crc: reader.u32()?,
    };
    let end = c.offset.checked_add(u64::from(c.stored_len));
    if c.offset < file::HEADER_LEN as u64 || end.is_none_or(|e| e > body_end) {
        return Err(DecodeError::new(at, "chunk lies outside the data region"));
    }
    if c.raw_len as usize > limits::CHUNK_RAW_BYTES_MAX {
        return Err(DecodeError::new(at, "chunk raw length exceeds the limit"));
    }
    Ok(c)
}

/// The decoded index sections.
type Index = (Bitmaps, Option<Rollups>, Option<ValueIndex>, Option<EventDays>);

/// The compressed index (the last section): the bitmap index, then the optional roll-ups,
/// value index and event-day sets that later writers add.
fn decode_index(reader: &mut Reader<'_>) -> Result<Index, DecodeError> {
    let raw_len = reader.u32()? as usize;
    let stored_len = reader.u32()? as usize;
    let at = reader.pos();
    let stored = reader.bytes(stored_len)?;
    reader.finish()?;
    let raw = codec::decompress(stored, raw_len, limits::INDEX_RAW_BYTES_MAX)
        .map_err(|e| DecodeError::new(at, e.what))?;
    let mut ir = Reader::new(&raw);
    let section = |what: &'static str| move |e: DecodeError| DecodeError::new(at, format!("{what}: {e}"));
    if ir.clone().u32().ok() == Some(DAY_TABLE_MARK) {
        return decode_day_index(&mut ir).map_err(section("index"));
    }
    let bitmaps = Bitmaps::decode(&mut ir).map_err(section("bitmap index"))?;
    let rollups = if ir.remaining() > 0 {
        Some(Rollups::decode(&mut ir).map_err(section("rollups"))?)
    } else {
        None
    };
    let values = if ir.remaining() > 0 {
        Some(ValueIndex::decode(&mut ir).map_err(section("value index"))?)
    } else {
        None
    };
    let event_days = if ir.remaining() > 0 {
        Some(EventDays::decode(&mut ir).map_err(section("event days"))?)
    } else {
        None
    };
    ir.finish().map_err(section("bitmap index"))?;
    Ok((bitmaps, rollups, values, event_days))
}

/// The index in its day-table form (§5.3): the mark, the per-stage and per-event sets, the
/// rollups, the value index's unindexed properties, the day table.
fn decode_day_index(ir: &mut Reader<'_>) -> Result<Index, DecodeError> {
    ir.u32()?;
    let mut bitmaps = Bitmaps::decode_heads(ir)?;
    let rollups = Rollups::decode(ir)?;
    let mut values = ValueIndex::decode_overflow(ir)?;
    let table = decode_day_table(ir)?;
    ir.finish()?;
    if table
        .values
        .keys()
        .any(|(prop, _, _)| values.overflow.contains(prop))
    {
        return Err(ir.err("a property both indexed and not"));
    }
    bitmaps.stage_days = table.stage_days;
    bitmaps.days = table.days;
    values.days = table.values;
    let event_days = EventDays {
        days: table.event_days,
    };
    Ok((bitmaps, Some(rollups), Some(values), Some(event_days)))
}
