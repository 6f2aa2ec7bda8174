//! Delta i64 (tag 2): integer properties, as varint deltas divided by their greatest common
//! divisor.
//!
//! Uses: `codec`.

use super::{TAG_DELTA_I64, tag};
use crate::codec::{self, DecodeError, Reader};

/// Greatest common divisor.
pub(in crate::internals::segment) fn gcd(mut left: u64, mut right: u64) -> u64 {
    while right != 0 {
        (left, right) = (right, left % right);
    }
    left
}

/// Delta-encodes an i64 column: first value, the gcd of all deltas (timestamps in whole
/// milliseconds or seconds thus cost no bits for the zeros), the byte width `w` of the largest
/// zigzag(delta / gcd), then `w` byte planes: plane `b` holds byte `b` of every delta. Planes
/// let zstd's entropy coder see that high bytes are mostly zero, and decode without branches.
pub fn put_delta_i64(out: &mut Vec<u8>, vals: &[i64]) {
    out.push(TAG_DELTA_I64);
    codec::put_i64(out, vals.first().copied().unwrap_or(0));
    let (g, deltas) = scaled_deltas(vals);
    codec::put_varint(out, g);
    let max = deltas.iter().copied().max().unwrap_or(0);
    let width = (8 - max.leading_zeros() as usize / 8).max(1);
    out.push(width as u8);
    for b in 0..width {
        out.extend(deltas.iter().map(|&d| (d >> (8 * b)) as u8));
    }
}

/// The gcd `g` of the deltas of `vals` (1 when there are none) and `zigzag(delta / g)` per row
/// after the first (wrapping arithmetic; exact, since `g` divides every delta — for an i64::MIN
/// delta `g` is a power of two dividing it).
pub(in crate::internals::segment) fn scaled_deltas(vals: &[i64]) -> (u64, Vec<u64>) {
    scaled(vals.windows(2).map(|w| w[1].wrapping_sub(w[0])))
}

/// The gcd `g` of `diffs` (1 when there are none) and `zigzag(diff / g)` for each.
pub(in crate::internals::segment) fn scaled(diffs: impl Iterator<Item = i64> + Clone) -> (u64, Vec<u64>) {
    let mut g = 0u64;
    let mut by = ExactDiv::new(1);
    for d in diffs.clone() {
        let d = d.unsigned_abs();
        // Most deltas are multiples of the gcd so far: a multiply tells, not Euclid's loop
        // (nor a divide instruction).
        if g == 0 || !by.divides(d) {
            g = gcd(g, d);
            if g == 1 {
                break;
            }
            by = ExactDiv::new(g);
        }
    }
    let g = g.max(1);
    let div = ExactDiv::new(g);
    let deltas = diffs.map(|d| codec::zigzag(div.div(d))).collect();
    (g, deltas)
}

/// Division by a fixed `g ≥ 1` of values it divides exactly, without a divide instruction:
/// with `g = 2^shift × odd`, `x / g = (x >> shift) × odd⁻¹ (mod 2^64)` (the inverse of an odd
/// number modulo 2^64 exists; exactness makes the wrapped product the true quotient).
#[derive(Clone, Copy)]
pub(in crate::internals::segment) struct ExactDiv {
    shift: u32,
    inverse: u64,
    /// `u64::MAX / odd`: `x` (with `shift` low zero bits) is a multiple of `g` exactly when
    /// `(x >> shift) × odd⁻¹ mod 2^64` is at most this.
    limit: u64,
}

impl ExactDiv {
    pub(in crate::internals::segment) fn new(gap: u64) -> ExactDiv {
        let gap = gap.max(1);
        let shift = gap.trailing_zeros();
        let odd = gap >> shift;
        // Newton's iteration doubles the correct low bits: 3 (odd × odd ≡ 1 mod 8) → 6 → … → 96.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        ExactDiv {
            shift,
            inverse,
            limit: u64::MAX / odd,
        }
    }

    /// True when `g` divides `x`.
    pub(in crate::internals::segment) fn divides(self, value: u64) -> bool {
        value & ((1u64 << self.shift) - 1) == 0
            && (value >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }

    /// `x / g`, for `x` a multiple of `g` (wrapping like `wrapping_div` for i64::MIN / -1
    /// cannot occur: `g` is positive).
    pub(in crate::internals::segment) fn div(self, value: i64) -> i64 {
        (value >> self.shift).wrapping_mul(self.inverse as i64)
    }
}

/// Reads the start of a delta encoding with tag `want`: the first value and the divisor `g`.
pub(in crate::internals::segment) fn delta_header(
    reader: &mut Reader<'_>,
    want: u8,
) -> Result<(i64, i64), DecodeError> {
    tag(reader, &[want])?;
    let first = reader.i64()?;
    let g = reader.varint()?;
    if g == 0 || g > i64::MAX as u64 + 1 {
        return Err(reader.err("bad delta divisor"));
    }
    Ok((first, g as i64))
}

/// Decodes [`put_delta_i64`] output of exactly `count` rows.
pub fn get_delta_i64(reader: &mut Reader<'_>, count: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let (first, g) = delta_header(reader, TAG_DELTA_I64)?;
    out.clear();
    let width = reader.u8()? as usize;
    if !(1..=8).contains(&width) {
        return Err(reader.err(format!("delta width {width}")));
    }
    if count == 0 {
        return Ok(());
    }
    let m = count - 1;
    let planes = reader.bytes(
        m.checked_mul(width)
            .ok_or_else(|| reader.err("row count overflow"))?,
    )?;
    // Assemble the zigzagged deltas in place (rows 1..n), then prefix-sum them.
    out.resize(count, 0);
    let deltas = &mut out[1..];
    if let Some(plane0) = planes.get(..m) {
        for (d, &byte) in deltas.iter_mut().zip(plane0) {
            *d = i64::from(byte);
        }
    }
    for b in 1..width {
        if let Some(plane) = planes.get(b * m..(b + 1) * m) {
            for (d, &byte) in deltas.iter_mut().zip(plane) {
                *d |= i64::from(byte) << (8 * b);
            }
        }
    }
    let mut v = first;
    out[0] = first;
    for x in &mut out[1..] {
        v = v.wrapping_add(codec::unzigzag(*x as u64).wrapping_mul(g));
        *x = v;
    }
    Ok(())
}
