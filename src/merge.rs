//! Merging sorted sources (segments and the sorted buffer) in (customer, timestamp, sequence)
//! order: every scan and the segment rewrite read through it.
//!
//! Sources are ranked by their sequence ranges (which are disjoint and ascending), so for equal
//! (customer, timestamp) the lower-ranked source's rows come first: that is sequence order,
//! without storing the sequence number per row.
//!
//! Uses: `file`, `model`, `segment`.

use crate::file::FileResult;
use crate::model::Columns;
use crate::segment::{ColumnSet, Segment};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

/// A sorted input of a merge.
#[derive(Clone, Debug)]
pub enum Source {
    /// A sealed segment.
    Segment(Arc<Segment>),
    /// A sealed segment whose rows of these customers are hidden (erased by `FORGET CUSTOMER`,
    /// not yet compacted away).
    Masked(Arc<Segment>, Arc<roaring::RoaringBitmap>),
    /// Sorted in-memory rows (the buffer's visible prefix).
    Memory(Arc<Columns>),
}

struct Cursor {
    src: Source,
    cids: (u32, u32),
    only: Option<Arc<roaring::RoaringBitmap>>,
    set: ColumnSet,
    next_block: usize,
    cols: Columns,
    pos: usize,
    rank: usize,
    /// Decode customer run ends with each block (see [`Merge::with_runs`]).
    want_ends: bool,
    /// The run ends of `cols`, when `ends_ok` (a whole block as decoded).
    ends: Vec<u32>,
    ends_ok: bool,
    /// Decode segment blocks in the stored form (see [`Merge::stored`]).
    stored: bool,
    /// A customer's rows that span blocks, copied together (see [`Runs`]).
    spill: Columns,
    /// The index in `ends` of the run at `pos` or before it (see [`Cursor::run_end`]).
    run: usize,
}

impl Cursor {
    /// Loads blocks until one has rows; false when the source is exhausted.
    fn fill(&mut self) -> FileResult<bool> {
        while self.pos >= self.cols.len() {
            match &self.src {
                Source::Segment(seg) | Source::Masked(seg, _) => {
                    let blocks = &seg.footer.blocks;
                    // Zone maps: skip blocks wholly outside the customer range.
                    while self.next_block < blocks.len()
                        && (blocks[self.next_block].cid_max < self.cids.0
                            || blocks[self.next_block].cid_min > self.cids.1
                            || self.only.as_ref().is_some_and(|only| {
                                let meta = &blocks[self.next_block];
                                only.range_cardinality(meta.cid_min..=meta.cid_max) == 0
                            }))
                    {
                        self.next_block += 1;
                    }
                    if self.next_block >= blocks.len() || blocks[self.next_block].cid_min > self.cids.1 {
                        return Ok(false);
                    }
                    if self.stored {
                        seg.read_block_stored(self.next_block, self.set, &mut self.cols)?;
                        self.ends_ok = false;
                    } else if self.cids.0 == self.cids.1 && self.set.is_all() {
                        // One customer: through the block cache, copying only their rows.
                        let block = seg.read_block_shared(self.next_block)?;
                        let c = self.cids.0;
                        let a = block.cid.partition_point(|&x| x < c);
                        let b = block.cid.partition_point(|&x| x <= c);
                        self.cols = block.slice(a..b);
                        self.ends_ok = false;
                    } else if self.want_ends {
                        seg.read_block_runs(self.next_block, self.set, &mut self.cols, &mut self.ends)?;
                        self.ends_ok = true;
                    } else {
                        seg.read_block_into(self.next_block, self.set, &mut self.cols)?;
                    }
                }
                Source::Memory(cols) => {
                    if self.next_block > 0 {
                        return Ok(false);
                    }
                    // Copy only this cursor's customer range out of the shared rows.
                    let (lo, hi) = self.cids;
                    let a = cols.cid.partition_point(|&c| c < lo);
                    let b = cols.cid.partition_point(|&c| c <= hi);
                    self.cols = cols.slice(a..b);
                    self.ends_ok = false;
                    self.next_block += 1;
                    self.pos = 0;
                    continue;
                }
            }
            self.next_block += 1;
            let (lo, hi) = self.cids;
            let a = self.cols.cid.partition_point(|&c| c < lo);
            let b = self.cols.cid.partition_point(|&c| c <= hi);
            if a > 0 || b < self.cols.len() {
                self.cols = self.cols.slice(a..b);
                self.ends_ok = false;
            }
            if let Source::Masked(_, hidden) = &self.src {
                hide(&mut self.cols, hidden);
                self.ends_ok = false;
            }
            self.pos = 0;
            self.run = 0;
        }
        Ok(true)
    }

    fn new(src: Source, rank: usize, set: ColumnSet) -> Cursor {
        Cursor {
            src,
            cids: (0, u32::MAX),
            only: None,
            set,
            next_block: 0,
            cols: Columns::default(),
            pos: 0,
            rank,
            want_ends: false,
            ends: Vec::new(),
            ends_ok: false,
            stored: false,
            spill: Columns::default(),
            run: 0,
        }
    }

    /// The end of the current customer's run of rows in `cols` (which starts at `pos`).
    fn run_end(&mut self) -> usize {
        if self.ends_ok {
            // Runs are taken in order: the index moves forward only (reset by `fill`).
            while self
                .ends
                .get(self.run)
                .is_some_and(|&end| end as usize <= self.pos)
            {
                self.run += 1;
            }
            if let Some(&end) = self.ends.get(self.run) {
                return end as usize;
            }
        }
        let rest = self.cols.cid.get(self.pos..).unwrap_or_default();
        let Some(&cid) = rest.first() else {
            return self.pos;
        };
        self.pos + rest.iter().position(|&c| c != cid).unwrap_or(rest.len())
    }

    fn key(&self) -> Key {
        let ts = self.cols.ts.get(self.pos).copied().unwrap_or(0);
        (self.cols.cid[self.pos], ts, self.rank)
    }
}

/// Removes the rows of the customers in `hidden` (rows are in customer order, so each hidden
/// customer is one run).
fn hide(cols: &mut Columns, hidden: &roaring::RoaringBitmap) {
    let (Some(&first), Some(&last)) = (cols.cid.first(), cols.cid.last()) else {
        return;
    };
    if hidden.range_cardinality(first..=last) == 0 {
        return;
    }
    // Copy the gaps between the hidden runs (one copy per hidden customer, not per row or run).
    let mut kept = Columns::default();
    let mut start = 0;
    for cid in hidden
        .iter()
        .skip_while(|&c| c < first)
        .take_while(|&c| c <= last)
    {
        let a = cols.cid.partition_point(|&c| c < cid);
        let b = cols.cid.partition_point(|&c| c <= cid);
        if a > start {
            kept.extend_from(&cols.slice(start..a));
        }
        start = start.max(b);
    }
    if start < cols.len() {
        kept.extend_from(&cols.slice(start..cols.len()));
    }
    *cols = kept;
}

/// Merge key of a cursor's current row: (customer, timestamp, source rank).
type Key = (u32, i64, usize);

/// A k-way merge over sources in rank order, yielding blocks of rows.
pub struct Merge {
    cursors: Vec<Cursor>,
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    started: bool,
    /// Return a source block as soon as it was moved out whole (see [`Merge::whole_blocks`]).
    whole: bool,
    /// The run ends of the last block returned, when it was a decoded source block handed
    /// over whole (taken from its cursor before the cursor decodes its next block).
    moved_ends: Option<Vec<u32>>,
    /// A spare buffer for the cursor whose ends were taken.
    spare_ends: Vec<u32>,
}

impl Merge {
    /// A merge over `sources` (lowest sequence range first) decoding the columns in `set`
    /// (timestamps are always decoded: they are part of the merge key).
    pub fn new(sources: Vec<Source>, set: ColumnSet) -> Merge {
        let set = ColumnSet { ts: true, ..set };
        let cursors = sources
            .into_iter()
            .enumerate()
            .map(|(rank, src)| Cursor::new(src, rank, set))
            .collect();
        Merge {
            cursors,
            heap: BinaryHeap::new(),
            started: false,
            whole: false,
            moved_ends: None,
            spare_ends: Vec::new(),
        }
    }

    /// Has segment blocks decoded with their customer run ends, for
    /// [`next_block_runs`](Self::next_block_runs).
    pub fn with_runs(mut self) -> Merge {
        for c in &mut self.cursors {
            c.want_ends = true;
        }
        self
    }

    /// As [`next_block`](Self::next_block), and `ends` receives the end (exclusive row index)
    /// of each customer's run of rows in `out`: from the run-length code when a decoded block
    /// was handed over whole, else found by comparing neighbours.
    pub fn next_block_runs(
        &mut self,
        out: &mut Columns,
        max_rows: usize,
        ends: &mut Vec<u32>,
    ) -> FileResult<bool> {
        let more = self.next_block(out, max_rows)?;
        ends.clear();
        match self.moved_ends.take() {
            Some(mut got) => {
                std::mem::swap(ends, &mut got);
                self.spare_ends = got;
            }
            None => {
                let cid = &out.cid;
                for i in 1..=cid.len() {
                    if i == cid.len() || cid[i] != cid[i - 1] {
                        ends.push(i as u32);
                    }
                }
            }
        }
        Ok(more)
    }

    /// Reads every column of segment blocks in the stored form, in which stages that came
    /// from the stage map keep `model::STAGE_MAPPED`: for compaction, which writes the rows
    /// again and must not turn a mapped stage into an explicit one. Memory sources (which
    /// readers see stripped) must not be merged this way.
    pub fn stored(mut self) -> Merge {
        for c in &mut self.cursors {
            c.stored = true;
        }
        self
    }

    /// Restricts the merge to customer ids in `lo..=hi` (blocks outside are never decoded).
    pub fn with_customers(mut self, lo: u32, hi: u32) -> Merge {
        for c in &mut self.cursors {
            c.cids = (lo, hi);
        }
        self
    }

    /// Skips blocks that hold none of `only`'s customers (rows of other customers in the
    /// blocks read are still returned; callers skip them).
    pub fn with_filter(mut self, only: Option<Arc<roaring::RoaringBitmap>>) -> Merge {
        for c in &mut self.cursors {
            c.only = only.clone();
        }
        self
    }

    /// Lets [`next_block`](Self::next_block) return fewer than `max_rows` rows when it can hand
    /// over a decoded source block whole instead of copying rows (readers that do not need full
    /// blocks: queries).
    pub fn whole_blocks(mut self) -> Merge {
        self.whole = true;
        self
    }

    /// Fills `out` with up to `max_rows` next rows in order; false when the merge is done.
    /// `out`'s allocations are reused.
    pub fn next_block(&mut self, out: &mut Columns, max_rows: usize) -> FileResult<bool> {
        out.clear();
        if let Some(v) = self.moved_ends.take() {
            self.spare_ends = v;
        }
        if !self.started {
            self.started = true;
            for (i, c) in self.cursors.iter_mut().enumerate() {
                if c.fill()? {
                    self.heap.push(Reverse((c.key(), i)));
                }
            }
        }
        while out.len() < max_rows {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                break;
            };
            let bound = self.heap.peek().map(|Reverse((k, _))| *k);
            let c = &mut self.cursors[i];
            let start = c.pos;
            let limit = (start + max_rows - out.len()).min(c.cols.len());
            // The only cursor left (one source, or the rest exhausted) runs to the limit.
            let mut end = if bound.is_none() { limit } else { start + 1 };
            while end < limit {
                let key = (c.cols.cid[end], c.cols.ts[end], c.rank);
                if bound.is_some_and(|b| key > b) {
                    break;
                }
                end += 1;
            }
            let moved = start == 0 && end == c.cols.len() && out.is_empty();
            if moved {
                // The cursor decodes its next block into `out`'s old buffers.
                std::mem::swap(out, &mut c.cols);
                c.cols.clear();
                if c.ends_ok && self.whole {
                    let spare = std::mem::take(&mut self.spare_ends);
                    self.moved_ends = Some(std::mem::replace(&mut c.ends, spare));
                    c.ends_ok = false;
                }
            } else {
                out.extend_from_range(&c.cols, start..end);
            }
            c.pos = end;
            if c.fill()? {
                self.heap.push(Reverse((c.key(), i)));
            }
            if moved && self.whole {
                break;
            }
        }
        Ok(!out.is_empty())
    }
}

/// A cursor without rows in [`Runs::heads`] (above every customer id).
const EXHAUSTED: u64 = u64::MAX;

/// One source's rows of the current customer in [`Runs`].
struct Part {
    cursor: usize,
    rows: Range<usize>,
    /// The rows are the cursor's `spill` (they spanned blocks), not its `cols`.
    spilled: bool,
}

/// Reads sorted sources a customer at a time, handing out each source's rows of the customer
/// where they lie — in a decoded block, or copied together when they span blocks — instead of
/// merging row by row: the scans' reader when a statement reads several sources.
///
/// A customer's parts in rank order are already in merge order when each part's last
/// timestamp is at most the next part's first ([`in_order`](Self::in_order)): the usual case
/// when events arrive in time order, since each newer source then holds later events.
/// [`gather`](Self::gather) gives the rows in merge order in any case.
pub struct Runs {
    cursors: Vec<Cursor>,
    /// Per cursor, its next customer ([`EXHAUSTED`] when it has no more rows). Scanned for the
    /// least, not kept in a heap: a few to a few dozen sources, each customer in most of them
    /// when events arrive in time order, cost less to compare side by side than to push and
    /// pop one by one.
    heads: Vec<u64>,
    started: bool,
    /// The current customer's parts, in rank order.
    parts: Vec<Part>,
    /// The columns decoded.
    set: ColumnSet,
}

impl Runs {
    /// A reader of `sources` (lowest sequence range first) for the customers in `lo..=hi`
    /// (only those in `only`, when given: blocks holding none of them are never decoded; rows
    /// of other customers in the blocks read are still returned, callers skip them), decoding
    /// the columns in `set` and the timestamps.
    pub fn new(
        sources: Vec<Source>,
        set: ColumnSet,
        (lo, hi): (u32, u32),
        only: Option<Arc<roaring::RoaringBitmap>>,
    ) -> Runs {
        let set = ColumnSet { ts: true, ..set };
        let cursors: Vec<Cursor> = sources
            .into_iter()
            .enumerate()
            .map(|(rank, src)| Cursor {
                cids: (lo, hi),
                only: only.clone(),
                want_ends: true,
                ..Cursor::new(src, rank, set)
            })
            .collect();
        Runs {
            heads: vec![EXHAUSTED; cursors.len()],
            cursors,
            started: false,
            parts: Vec::new(),
            set,
        }
    }

    /// Moves to the next customer; its id, or `None` when every source is read. Its rows are
    /// then [`parts`](Self::parts).
    pub fn next_customer(&mut self) -> FileResult<Option<u32>> {
        if !self.started {
            self.started = true;
            for (cursor, head) in self.cursors.iter_mut().zip(&mut self.heads) {
                *head = Self::head(cursor)?;
            }
        }
        // Past the previous customer's rows (a spilled part's cursor is past them already).
        for part in self.parts.drain(..) {
            let cursor = &mut self.cursors[part.cursor];
            if part.spilled {
                cursor.spill.truncate_rows();
            } else {
                cursor.pos = part.rows.end;
            }
            self.heads[part.cursor] = Self::head(cursor)?;
        }
        let least = self.heads.iter().copied().min().unwrap_or(EXHAUSTED);
        if least == EXHAUSTED {
            return Ok(None);
        }
        let cid = least as u32;
        // In rank order: the parts' order is the merge order of equal timestamps.
        for rank in 0..self.heads.len() {
            if self.heads[rank] == least {
                self.take(rank, cid)?;
            }
        }
        Ok(Some(cid))
    }

    /// The customer of `cursor`'s next row, or [`EXHAUSTED`].
    fn head(cursor: &mut Cursor) -> FileResult<u64> {
        Ok(if cursor.fill()? {
            u64::from(cursor.cols.cid[cursor.pos])
        } else {
            EXHAUSTED
        })
    }

    /// Adds cursor `rank`'s rows of customer `cid` (which start at its `pos`) to the parts.
    fn take(&mut self, rank: usize, cid: u32) -> FileResult<()> {
        let cursor = &mut self.cursors[rank];
        let end = cursor.run_end();
        if end < cursor.cols.len() {
            self.parts.push(Part {
                cursor: rank,
                rows: cursor.pos..end,
                spilled: false,
            });
            return Ok(());
        }
        // The run reaches the block's end: the next block may go on with it.
        cursor.spill.truncate_rows();
        cursor.spill.extend_from_range(&cursor.cols, cursor.pos..end);
        cursor.pos = end;
        while cursor.fill()? && cursor.cols.cid[cursor.pos] == cid {
            let end = cursor.run_end();
            cursor.spill.extend_from_range(&cursor.cols, cursor.pos..end);
            cursor.pos = end;
        }
        self.parts.push(Part {
            cursor: rank,
            rows: 0..cursor.spill.len(),
            spilled: true,
        });
        Ok(())
    }

    /// The current customer's rows in each source holding any, in rank order.
    pub fn parts(&self) -> impl Iterator<Item = (&Columns, Range<usize>)> {
        self.parts.iter().map(|part| {
            let cursor = &self.cursors[part.cursor];
            let rows = if part.spilled { &cursor.spill } else { &cursor.cols };
            (rows, part.rows.clone())
        })
    }

    /// The current customer's only part, when one source holds all its rows.
    pub fn single(&self) -> Option<(&Columns, Range<usize>)> {
        match self.parts[..] {
            [_] => self.parts().next(),
            _ => None,
        }
    }

    /// True when the parts, one after the other, are in merge order (each part's last
    /// timestamp at most the next one's first; equal timestamps are in rank order).
    pub fn in_order(&self) -> bool {
        let mut last = i64::MIN;
        for (rows, range) in self.parts() {
            let ts = &rows.ts[range];
            match (ts.first(), ts.last()) {
                (Some(&first), Some(&end)) if first >= last => last = end,
                (None, None) => {}
                _ => return false,
            }
        }
        true
    }

    /// The current customer's rows in merge order into `into` (cleared first).
    pub fn gather(&self, into: &mut Columns) {
        into.truncate_rows();
        for (rows, range) in self.parts() {
            into.extend_from_range(rows, range);
        }
        // The buffer's rows come with every column: keep only those decoded for every part.
        if !self.set.event {
            into.event.clear();
        }
        if !self.set.stage {
            into.stage.clear();
        }
        if !self.in_order() {
            // Parts are appended in rank order, so a stable sort by timestamp is merge order.
            let mut order: Vec<u32> = (0..into.len() as u32).collect();
            order.sort_by_key(|&i| into.ts[i as usize]);
            *into = into.gather(&order);
        }
    }

    /// The current customer's rows that spanned blocks, as copied together (for a memory
    /// budget: one customer's rows can span many blocks).
    pub fn spills(&self) -> impl Iterator<Item = &Columns> {
        self.cursors.iter().map(|cursor| &cursor.spill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PropColumn, PropType};
    use crate::segment::{SEG_DIR, SegmentWriter, seg_path};

    /// One row as a comparable value: customer, timestamp, event, stage and the properties
    /// with a value (a column without one in this row is not there).
    type Row = (u32, i64, Option<u32>, Option<u8>, Vec<(u32, u64)>);

    fn rows_of(cols: &Columns) -> Vec<Row> {
        // A column not decoded for every row (the merge's blocks take the buffer's rows with
        // every column) is left out.
        let whole = |len: usize| len == cols.len();
        (0..cols.len())
            .map(|i| {
                let props = cols
                    .props
                    .iter()
                    .filter(|p| p.valid[i])
                    .map(|p| (p.id, p.vals[i]))
                    .collect();
                let event = whole(cols.event.len()).then(|| cols.event[i]);
                let stage = whole(cols.stage.len()).then(|| cols.stage[i]);
                (cols.cid[i], cols.ts[i], event, stage, props)
            })
            .collect()
    }

    /// Sorted rows of customers `cids`, 0–12 rows each at times `lo..hi` (a coarse grid, so
    /// that rows tie), customer `big` with `big_rows` rows; property `prop` on every third row.
    fn rows(
        seed: u64,
        cids: Range<u32>,
        (lo, hi): (i64, i64),
        (big, big_rows): (u32, usize),
        prop: u32,
    ) -> Columns {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cols = Columns::default();
        let mut column = PropColumn::new(prop, PropType::I64);
        for cid in cids {
            let n = if cid == big {
                big_rows
            } else {
                (next() % 13) as usize
            };
            let mut times: Vec<i64> = (0..n)
                .map(|_| lo + (next() % (hi - lo) as u64) as i64 / 10 * 10)
                .collect();
            times.sort_unstable();
            for ts in times {
                cols.cid.push(cid);
                cols.ts.push(ts);
                cols.event.push((next() % 5) as u32);
                cols.stage.push((next() % 6) as u8);
                let valid = next().is_multiple_of(3);
                column.valid.push(valid);
                column.vals.push(if valid { next() % 100 } else { 0 });
            }
        }
        cols.props.push(column);
        cols
    }

    fn segment(dir: &std::path::Path, id: u64, rows: &Columns) -> Arc<Segment> {
        let path = seg_path(dir, id);
        let props = rows.props.iter().map(|p| (p.id, p.ty)).collect();
        let mut writer = SegmentWriter::create(&path, props, 1, 0).unwrap();
        writer.push_rows(rows, None).unwrap();
        let (footer, len) = writer
            .finish(id * 1_000_000, id * 1_000_000 + rows.len() as u64)
            .unwrap();
        Arc::new(Segment::open_written(dir, id, len, footer).unwrap())
    }

    /// Sources of every kind and order: a segment; one holding later events only (its parts
    /// follow in order, some tied at the boundary); one overlapping both (its parts must be
    /// merged in); a masked segment; the buffer's rows. A customer's rows span blocks in two
    /// of them.
    fn sources(dir: &std::path::Path) -> Vec<Source> {
        std::fs::create_dir_all(dir.join(SEG_DIR)).unwrap();
        let first = segment(dir, 1, &rows(1, 0..300, (0, 1000), (150, 70_000), 1));
        let later = segment(dir, 2, &rows(2, 100..400, (990, 2000), (150, 66_000), 1));
        let overlapping = segment(dir, 3, &rows(3, 0..100, (500, 1500), (0, 0), 2));
        let masked = segment(dir, 4, &rows(4, 50..350, (2000, 3000), (0, 0), 1));
        let hidden: roaring::RoaringBitmap = (60..340).step_by(7).collect();
        vec![
            Source::Segment(first),
            Source::Segment(later),
            Source::Segment(overlapping),
            Source::Masked(masked, Arc::new(hidden)),
            Source::Memory(Arc::new(rows(5, 350..420, (0, 3000), (0, 0), 3))),
        ]
    }

    /// Each customer's rows in merge order, as the k-way merge gives them.
    fn merged(sources: Vec<Source>, set: ColumnSet) -> std::collections::BTreeMap<u32, Vec<Row>> {
        let mut merge = Merge::new(sources, set);
        let mut block = Columns::default();
        let mut by_customer = std::collections::BTreeMap::<u32, Vec<Row>>::new();
        while merge.next_block(&mut block, 5_000).unwrap() {
            for row in rows_of(&block) {
                by_customer.entry(row.0).or_default().push(row);
            }
        }
        by_customer
    }

    /// `Runs` gives every customer exactly the rows the merge gives, in the same order —
    /// whether its parts are in order, tied at a boundary, overlapping, spanning blocks,
    /// masked or in memory; for every column set, customer range and filter.
    #[test]
    fn runs_give_each_customer_the_merged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let keys = ColumnSet {
            ts: true,
            event: true,
            stage: false,
            props: false,
            prop_mask: 0,
        };
        let only: roaring::RoaringBitmap = [0, 3, 150, 151, 299, 300, 419].into_iter().collect();
        let (mut in_order, mut out_of_order) = (0, 0);
        for (set, range, only) in [
            (ColumnSet::ALL, (0, u32::MAX), None),
            (keys, (0, u32::MAX), None),
            (ColumnSet::ALL, (140, 305), None),
            (keys, (0, u32::MAX), Some(Arc::new(only.clone()))),
        ] {
            let expected = merged(sources.clone(), set);
            let mut runs = Runs::new(sources.clone(), set, range, only.clone());
            let mut got = std::collections::BTreeMap::new();
            let mut rows = Columns::default();
            while let Some(cid) = runs.next_customer().unwrap() {
                runs.gather(&mut rows);
                assert!(rows.cid.iter().all(|&c| c == cid), "customer {cid}");
                // The buffer's parts come with every column; only those in `set` count.
                let concatenated: Vec<Row> = runs
                    .parts()
                    .flat_map(|(cols, part)| rows_of(&cols.slice(part)))
                    .map(|(cid, ts, event, stage, props)| {
                        (cid, ts, event, stage.filter(|_| set.stage), props)
                    })
                    .collect();
                if runs.in_order() {
                    assert_eq!(concatenated, rows_of(&rows), "customer {cid}: in order");
                    in_order += 1;
                } else {
                    out_of_order += 1;
                }
                assert!(got.insert(cid, rows_of(&rows)).is_none(), "customer {cid} twice");
            }
            let wanted = |cid: &u32| {
                (range.0..=range.1).contains(cid) && only.as_ref().is_none_or(|set| set.contains(*cid))
            };
            let expected: Vec<_> = expected.into_iter().filter(|(cid, _)| wanted(cid)).collect();
            let got: Vec<_> = got.into_iter().filter(|(cid, _)| wanted(cid)).collect();
            assert_eq!(got.len(), expected.len());
            for ((cid, rows), (want_cid, want)) in got.iter().zip(&expected) {
                assert_eq!((cid, rows.len()), (want_cid, want.len()));
                assert!(rows == want, "customer {cid}: rows differ");
            }
        }
        // Both kinds of customer were read.
        assert!(in_order > 100 && out_of_order > 50, "{in_order} / {out_of_order}");
    }
}
