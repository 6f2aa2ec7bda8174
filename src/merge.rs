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
            .map(|(rank, src)| Cursor {
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
            })
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
