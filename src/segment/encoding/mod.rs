//! Column chunk encodings (the raw bytes before zstd). Every decoder checks the row count and
//! every length against the data, so corrupt bytes give an error, never a panic.
//!
//! Tags (first byte of a raw chunk): 1 = run-length u32 (customer ids), 2 = delta i64 (integer
//! properties; timestamps of older segments), 3/4/5 = fixed width u8/u16/u32, 6 = property
//! column, 7 = two-width bit-packed deltas (timestamps of older segments), 8 = u32 values of 1,
//! 2 or 4 bits packed into bytes (event ids, string values of few distinct values), 9 = tag 7
//! restarted at every customer's first row (timestamps), 10 = a u8 value per event id (stage
//! codes that follow the event).
//!
//! Each room holds one encoding, its encoder beside its decoder (and a SIMD variant beside its
//! scalar one): `rle`, `delta`, `bitpack`, `timestamps`, `stages`, `props`; this file holds
//! the tag table and the helpers they share.
//!
//! Uses: `codec`.

mod bitpack;
mod delta;
mod props;
mod rle;
mod stages;
mod timestamps;

pub use bitpack::{Nibbles, get_width_u32, nibbles, put_width_u32};
pub use delta::put_delta_i64;
pub use props::{PropScratch, get_prop, get_prop_into, put_prop};
pub use rle::{get_rle_runs, get_rle_u32_runs, put_rle_u32};
pub use stages::{get_stages, put_stages};
pub use timestamps::{TsRuns, get_timestamps, put_delta_bits_i64, put_delta_bits_runs_i64};

use crate::codec::{DecodeError, Reader};

// The tag table: the first byte of every raw chunk, and the room that encodes and decodes it.
/// Run-length u32 (`rle`).
const TAG_RLE_U32: u8 = 1;
/// Delta i64 (`delta`).
const TAG_DELTA_I64: u8 = 2;
/// Fixed width u8 / u16 / u32 (`bitpack`).
const TAG_W8: u8 = 3;
const TAG_W16: u8 = 4;
const TAG_W32: u8 = 5;
/// A property column (`props`).
const TAG_PROP: u8 = 6;
/// Two-width bit-packed deltas (`timestamps`).
const TAG_DELTA_BITS: u8 = 7;
/// Values of 1, 2 or 4 bits (`bitpack`).
const TAG_SUB_BYTE: u8 = 8;
/// Tag 7 restarted at every customer's first row (`timestamps`).
const TAG_DELTA_BITS_RUNS: u8 = 9;
/// A u8 value per event id (`stages`).
const TAG_BY_EVENT: u8 = 10;

/// Event ids from this one on are not mapped by tag 10 (a block of that many distinct events
/// keeps its stage column as bytes).
const BY_EVENT_IDS: u32 = 1 << 16;

/// Zero bytes after the bit-packed streams of [`put_delta_bits_i64`], so that the decoder reads
/// every value with one 8-byte load that stays inside the chunk.
const BITS_PAD: usize = 8;

/// The bits needed for `value` (0 for 0).
fn bit_len(value: u64) -> usize {
    64 - value.leading_zeros() as usize
}

/// `bytes` as little-endian 64-bit words, the last one zero-padded.
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    })
}

fn tag(reader: &mut Reader<'_>, want: &[u8]) -> Result<u8, DecodeError> {
    let t = reader.u8()?;
    if !want.contains(&t) {
        return Err(DecodeError::new(0, format!("unexpected encoding tag {t}")));
    }
    Ok(t)
}

#[cfg(test)]
mod tests;
