//! Run-length u32 (tag 1): customer ids, stored as (zigzag value delta, run length) pairs.
//!
//! Uses: `codec`.

use super::{TAG_RLE_U32, tag};
use crate::codec::{self, DecodeError, Reader};

/// Run-length encodes a (mostly sorted) u32 column: `(zigzag value delta, run length)` pairs.
pub fn put_rle_u32(out: &mut Vec<u8>, vals: &[u32]) {
    out.push(TAG_RLE_U32);
    let mut prev = 0i64;
    let mut i = 0;
    while i < vals.len() {
        let v = vals[i];
        let mut j = i + 1;
        while j < vals.len() && vals[j] == v {
            j += 1;
        }
        codec::put_varint(out, codec::zigzag(i64::from(v) - prev));
        codec::put_varint(out, (j - i) as u64);
        prev = i64::from(v);
        i = j;
    }
}

/// Decodes [`put_rle_u32`] output of exactly `count` rows (tests; readers keep the runs).
#[cfg(test)]
pub fn get_rle_u32(reader: &mut Reader<'_>, count: usize, out: &mut Vec<u32>) -> Result<(), DecodeError> {
    get_rle_u32_runs(reader, count, out, None)
}

/// The runs of [`put_rle_u32`] output of exactly `count` rows, not expanded: each run's value in
/// `vals` and its end (exclusive row index) in `ends`, with the checks of [`get_rle_u32_runs`].
pub fn get_rle_runs(
    reader: &mut Reader<'_>,
    count: usize,
    vals: &mut Vec<u32>,
    ends: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    vals.clear();
    ends.clear();
    rle_runs(reader, count, |v, end| {
        vals.push(v);
        ends.push(end as u32);
    })
}

/// Reads the runs of [`put_rle_u32`] output of exactly `n` rows, calling `run(value, end)` for
/// each (`end` exclusive); each value MUST be above the previous one.
pub(in crate::internals::segment) fn rle_runs(
    reader: &mut Reader<'_>,
    count: usize,
    mut run: impl FnMut(u32, usize),
) -> Result<(), DecodeError> {
    tag(reader, &[TAG_RLE_U32])?;
    let mut prev = 0i64;
    let mut filled = 0usize;
    while filled < count {
        let d = codec::unzigzag(reader.varint()?);
        let v = prev
            .checked_add(d)
            .ok_or_else(|| reader.err("value out of range"))?;
        let v32 = u32::try_from(v).map_err(|_| reader.err(format!("value {v} out of u32 range")))?;
        // Blocks are sorted by customer: each run's id is above the previous run's (the
        // writer merges equal neighbours), so a run is exactly one customer's rows.
        if filled > 0 && v <= prev {
            return Err(reader.err(format!("run value {v} not above the previous {prev}")));
        }
        let len = reader.varint()?;
        if len == 0 || len > (count - filled) as u64 {
            return Err(reader.err(format!("run of {len} rows exceeds the block")));
        }
        // n ≤ BLOCK_ROWS (the caller's limit), so a row index fits in u32.
        filled += len as usize;
        run(v32, filled);
        prev = v;
    }
    Ok(())
}

/// As [`get_rle_u32`], and with `ends` the end (exclusive row index) of every run of equal
/// values. Runs are as encoded: adjacent runs of one value (never written) stay separate.
pub fn get_rle_u32_runs(
    reader: &mut Reader<'_>,
    count: usize,
    out: &mut Vec<u32>,
    mut ends: Option<&mut Vec<u32>>,
) -> Result<(), DecodeError> {
    // Runs are mostly short (a customer's few rows in a time slice), so each run writes
    // `SHORT` values at once into room past the block (no loop, no call) and only a longer run
    // fills the rest.
    const SHORT: usize = 4;
    out.clear();
    out.resize(count + SHORT, 0);
    if let Some(e) = ends.as_deref_mut() {
        e.clear();
    }
    let mut start = 0;
    let result = rle_runs(reader, count, |v, end| {
        if let Some(short) = out.get_mut(start..start + SHORT) {
            short.fill(v);
        }
        if end > start + SHORT {
            out[start + SHORT..end].fill(v);
        }
        start = end;
        if let Some(e) = ends.as_deref_mut() {
            e.push(end as u32);
        }
    });
    out.truncate(count);
    result
}
