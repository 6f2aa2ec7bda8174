//! Compaction: rewriting adjacent segments as one through the merge, and the string values
//! the rows use (for the dictionary scrub that follows an erasure).
//!
//! Uses: `file`, `limits`, `merge`, `model`, `segment`.

use crate::file::FileResult;
use crate::limits;
use crate::merge::{Merge, Source};
use crate::model::Columns;
use crate::segment::{ColumnSet, SegmentWriter};

/// Merges `sources` into `writer` in blocks of `BLOCK_ROWS`; returns the rows written.
pub fn merge_into(
    writer: &mut SegmentWriter,
    sources: Vec<Source>,
    strings: &mut roaring::RoaringBitmap,
) -> FileResult<u64> {
    let mut merge = Merge::new(sources, ColumnSet::ALL).stored();
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
