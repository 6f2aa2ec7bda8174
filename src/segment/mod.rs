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
//!
//! The rooms of the format, writer and reader of each together:
//! - this file: the layout's shared types (chunk references, block zone maps, column sets) and
//!   file naming;
//! - `encoding`: the column chunk encodings (the raw bytes inside each zstd chunk), one room
//!   per encoding under a tag table;
//! - `footer`: the footer's layout, encoded and decoded;
//! - `writer`: writing blocks, indices and the footer of a new segment;
//! - `reader`: opening, mapping, decoding blocks (whole or lazily) and verifying;
//! - `cache`: the decoded-block and customer-key caches segments share.
//!
//! Uses: `codec`, `file`.

use crate::codec;
use crate::file::{self, FileResult};
use std::path::{Path, PathBuf};

pub mod encoding;
mod footer;
mod writer;
mod cache;
mod reader;

pub use cache::{BlockCache, KeyCache};
pub use footer::Footer;
pub use reader::{BlockEvents, BlockTs, LazyBlock, LazyBufs, RowsVisitor, Segment};
pub use writer::SegmentWriter;
#[cfg(feature = "failpoints")]
pub use writer::write_legacy_timestamps;

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

#[cfg(test)]
mod tests;
