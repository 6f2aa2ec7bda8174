//! Tests of writing and reading segments: footers, blocks, caches, lazy reads.

use std::sync::Arc;

use crate::file::FileError;
use crate::limits;
use crate::model::{Columns, PropType};

use super::cache::*;
use super::footer::*;
use super::reader::*;
use super::writer::*;
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

/// A segment of 5,000 rows (715 customers, 5 events, 6 stages, a string property of 11 values
/// absent from a third of the rows) written at `path`: its footer and length.
fn small_segment(path: &std::path::Path) -> Result<(Footer, u64), Box<dyn std::error::Error>> {
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
    let mut w = SegmentWriter::create(path, vec![(0, PropType::Str)], 3, 0)?;
    w.push_rows(&rows, None)?;
    Ok(w.finish(0, n as u64)?)
}

/// The index stored as two zstd frames (a large segment's) decodes to the same footer as the
/// one-frame form, and both to the footer written.
#[test]
fn split_index_decodes_as_one() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (footer, len) = small_segment(&dir.path().join("x.seg"))?;
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let whole = (0, INDEX_FRAME_BYTES);
    encode_footer(&footer, &mut one, false, whole)?;
    encode_footer(&footer, &mut two, true, whole)?;
    // Encoded on two threads but small: one frame, the same bytes.
    let mut parallel = Vec::new();
    encode_footer(
        &footer,
        &mut parallel,
        true,
        (INDEX_SPLIT_BYTES, INDEX_FRAME_BYTES),
    )?;
    assert_eq!(parallel, one);
    assert_ne!(one, two, "the split form is two frames");
    assert_eq!(decode_footer(&one, len)?, footer);
    assert_eq!(decode_footer(&two, len)?, footer);
    // Compressed as it is encoded, a frame every few bitmaps, on one thread or two, split or
    // not: the same footer.
    let frames = |bytes: &[u8]| {
        bytes
            .windows(4)
            .filter(|w| *w == crate::codec::ZSTD_MAGIC)
            .count()
    };
    for (parallel, split, frame_bytes) in [
        (false, 0, 64),
        (true, 0, 64),
        (true, INDEX_SPLIT_BYTES, 64),
        (true, 0, 1),
    ] {
        let mut framed = Vec::new();
        encode_footer(&footer, &mut framed, parallel, (split, frame_bytes))?;
        // A frame after each per-stage and per-event set, and after each day of the day table.
        assert!(frames(&framed) >= 8, "{} frames", frames(&framed));
        assert_eq!(
            decode_footer(&framed, len)?,
            footer,
            "{parallel} {split} {frame_bytes}"
        );
    }
    Ok(())
}

/// An index in the form written before the day table (per-key sets; docs/FORMAT.md §5.3) decodes
/// to the same footer as today's form, with or without the sections that came later.
#[test]
fn index_before_the_day_table_decodes_as_today() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (footer, len) = small_segment(&dir.path().join("x.seg"))?;
    let whole = (0, INDEX_FRAME_BYTES);
    let mut today = Vec::new();
    encode_footer(&footer, &mut today, false, whole)?;
    let head = encode_footer_pieces(&footer, false, whole)?.swap_remove(0);
    let with_index = |raw: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        // The head ends with the index's raw and stored lengths.
        let mut out = head[..head.len() - 8].to_vec();
        let stored = crate::codec::compress(raw, 3)?;
        crate::codec::put_u32(&mut out, raw.len() as u32);
        crate::codec::put_u32(&mut out, stored.len() as u32);
        out.extend_from_slice(&stored);
        Ok(out)
    };
    let (Some(rollups), Some(values), Some(event_days)) =
        (&footer.rollups, &footer.values, &footer.event_days)
    else {
        return Err("the writer left out an index section".into());
    };
    let mut raw = Vec::new();
    footer.bitmaps.encode(&mut raw)?;
    let bitmaps_only = raw.len();
    rollups.encode(&mut raw);
    values.encode(&mut raw)?;
    event_days.encode(&mut raw)?;
    let legacy = with_index(&raw)?;
    assert_ne!(legacy, today);
    assert_eq!(decode_footer(&legacy, len)?, footer);
    let oldest = decode_footer(&with_index(&raw[..bitmaps_only])?, len)?;
    assert_eq!(oldest.bitmaps, footer.bitmaps);
    assert!(oldest.rollups.is_none() && oldest.values.is_none() && oldest.event_days.is_none());
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

/// Segments of `count` rows in runs of 1–40 per customer (so runs cross blocks), with event ids
/// below `events`: 16 or fewer are stored 4 bits each (kept packed), more width-coded
/// (kept decoded).
fn keyed_segment(dir: &Path, id: u64, count: usize, events: u32) -> FileResult<Segment> {
    let mut rows = Columns::default();
    let (mut cid, mut x) = (0u32, 0x9E37_79B9_7F4A_7C15u64);
    for i in 0..count {
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
    let (footer, len) = w.finish(0, count as u64)?;
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

/// Blocks read one after the other into one batch (whose property columns lend their
/// allocations to the next block's) equal each block read into a fresh batch and the rows
/// written: a property with values in some blocks only, one valid on every row, one on some
/// rows, of four types, read whole and through a property mask.
#[test]
fn blocks_read_into_one_batch_equal_fresh_reads() -> Result<(), Box<dyn std::error::Error>> {
    use crate::model::PropColumn;
    let dir = tempfile::tempdir()?;
    let n = limits::BLOCK_ROWS * 3 - 17;
    let mut rows = Columns::default();
    let types = [PropType::Str, PropType::I64, PropType::F64, PropType::Bool];
    let mut props: Vec<PropColumn> = (0..4u32)
        .map(|id| PropColumn::new(id, types[id as usize]))
        .collect();
    for row in 0..n {
        rows.cid.push((row / 7) as u32);
        rows.ts.push(row as i64);
        rows.event.push((row % 5) as u32);
        rows.stage.push(0);
        let block = row / limits::BLOCK_ROWS;
        // Property 0 only in the first and last blocks; 1 on every row; 2 and 3 on some.
        let valid = [block != 1, true, row % 3 == 0, row % 5 != 2];
        let values = [
            (row % 11) as u64,
            (row as i64 - 40_000) as u64,
            (row as f64 * 0.25).to_bits(),
            (row % 2) as u64,
        ];
        for ((column, valid), value) in props.iter_mut().zip(valid).zip(values) {
            column.valid.push(valid);
            column.vals.push(if valid { value } else { 0 });
        }
    }
    rows.props = props;
    std::fs::create_dir_all(dir.path().join(SEG_DIR))?;
    let path = seg_path(dir.path(), 1);
    let kinds = rows.props.iter().map(|p| (p.id, p.ty)).collect();
    let mut writer = SegmentWriter::create(&path, kinds, 1, 0)?;
    writer.push_rows(&rows, None)?;
    let (footer, len) = writer.finish(0, n as u64)?;
    let seg = Segment::open_written(dir.path(), 1, len, footer)?;
    assert_eq!(seg.footer.blocks.len(), 3);
    let masked = ColumnSet {
        prop_mask: 0b1001,
        ..ColumnSet::ALL
    };
    for set in [ColumnSet::ALL, masked] {
        let mut reused = Columns::default();
        let mut start = 0;
        for block in 0..3 {
            seg.read_block_into(block, set, &mut reused)?;
            assert_eq!(reused, seg.read_block(block, set)?, "block {block}");
            let mut want = rows.slice(start..start + reused.len());
            want.props
                .retain(|p| set.prop_mask & (1 << p.id) != 0 && p.valid.iter().any(|&valid| valid));
            assert_eq!(reused, want, "block {block} against the rows written");
            start += reused.len();
        }
        assert_eq!(start, n);
    }
    Ok(())
}
