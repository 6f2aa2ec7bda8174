//! Merging sorted sources (segments and the sorted buffer) in (customer, timestamp, sequence)
//! order, and compaction: rewriting adjacent segments as one.
//!
//! Sources are ranked by their sequence ranges (which are disjoint and ascending), so for equal
//! (customer, timestamp) the lower-ranked source's rows come first: that is sequence order,
//! without storing the sequence number per row.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::file::FileResult;
use crate::limits;
use crate::model::Columns;
use crate::segment::{ColumnSet, Segment, SegmentWriter};

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
                            || blocks[self.next_block].cid_min > self.cids.1)
                    {
                        self.next_block += 1;
                    }
                    if self.next_block >= blocks.len() || blocks[self.next_block].cid_min > self.cids.1 {
                        return Ok(false);
                    }
                    if self.cids.0 == self.cids.1 && self.set.is_all() {
                        // One customer: through the block cache, copying only their rows.
                        let block = seg.read_block_shared(self.next_block)?;
                        let c = self.cids.0;
                        let a = block.cid.partition_point(|&x| x < c);
                        let b = block.cid.partition_point(|&x| x <= c);
                        self.cols = block.slice(a..b);
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
            }
            if let Source::Masked(_, hidden) = &self.src {
                hide(&mut self.cols, hidden);
            }
            self.pos = 0;
        }
        Ok(true)
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
}

impl Merge {
    /// A merge over `sources` (lowest sequence range first) decoding the columns in `set`
    /// (timestamps are always decoded: they are part of the merge key).
    pub fn new(sources: Vec<Source>, set: ColumnSet) -> Merge {
        let set = ColumnSet { ts: true, ..set };
        let cursors = sources
            .into_iter()
            .enumerate()
            .map(|(rank, src)| Cursor {
                src,
                cids: (0, u32::MAX),
                only: None,
                set,
                next_block: 0,
                cols: Columns::default(),
                pos: 0,
                rank,
            })
            .collect();
        Merge {
            cursors,
            heap: BinaryHeap::new(),
            started: false,
            whole: false,
        }
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
            } else {
                out.extend_from(&c.cols.slice(start..end));
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

/// Merges `sources` into `writer` in blocks of `BLOCK_ROWS`; returns the rows written.
pub fn merge_into(
    writer: &mut SegmentWriter,
    sources: Vec<Source>,
    strings: &mut roaring::RoaringBitmap,
) -> FileResult<u64> {
    let mut merge = Merge::new(sources, ColumnSet::ALL);
    let mut block = Columns::default();
    let mut rows = 0u64;
    while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
        rows += block.len() as u64;
        string_refs(&block, strings);
        writer.push_block(&block)?;
    }
    Ok(rows)
}

/// Adds the string-value ids that `rows` use to `out`.
pub fn string_refs(rows: &Columns, out: &mut roaring::RoaringBitmap) {
    for c in rows.props.iter().filter(|c| c.ty == crate::model::PropType::Str) {
        for (&v, &x) in c.valid.iter().zip(&c.vals) {
            if v {
                out.insert(x as u32);
            }
        }
    }
}
