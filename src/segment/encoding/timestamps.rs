//! Timestamps: two-width bit-packed deltas (tag 7), restarted at every customer's first row
//! (tag 9), decoded eagerly or lazily run by run; the AVX-512 merge beside the scalar one.
//!
//! Uses: `codec`; rooms `encoding`.

use super::{TAG_DELTA_BITS, TAG_DELTA_BITS_RUNS, TAG_DELTA_I64, le_words};
use crate::codec::{self, DecodeError, Reader};
use crate::segment::encoding::bitpack::{TwoWidths, put_two_widths};
use crate::segment::encoding::delta::{get_delta_i64, scaled, scaled_deltas};

/// Two-width bit-packed delta encoding of an i64 column (sorted timestamps): first value, the
/// gcd `g` of all deltas, a narrow width `ws` and a wide width `wl`; when `ws < wl`, a selector
/// bitmap (bit i set: delta i is wide); then the narrow deltas packed at `ws` bits, the wide
/// ones at `wl` bits (zigzag(delta / g), LSB first), then 8 zero bytes. Timestamps sorted by
/// customer have two kinds of gap — within a session (seconds to minutes) and between sessions
/// or customers (days) — so two widths come within a bit or two of zstd on byte planes while
/// decoding several times faster (no entropy decoding: one load, shift and mask per value).
pub fn put_delta_bits_i64(out: &mut Vec<u8>, vals: &[i64]) {
    out.push(TAG_DELTA_BITS);
    codec::put_i64(out, vals.first().copied().unwrap_or(0));
    let (g, deltas) = scaled_deltas(vals);
    put_two_widths(out, g, &deltas);
}

/// [`put_delta_bits_i64`] restarted at each customer's first row (tag 9): the delta of row
/// `i ≥ 1` is `vals[i] − vals[i − 1]` when `cids[i] = cids[i − 1]`, else `vals[i] − vals[0]`.
/// A reader can then decode one customer's rows without the rows before them (the funnel scan
/// stops reading a customer once the funnel is complete). The difference to the first row is
/// no wider than the jump from the previous customer's last row it replaces (both span the
/// block's time range), so the size is the same.
pub fn put_delta_bits_runs_i64(out: &mut Vec<u8>, vals: &[i64], cids: &[u32]) {
    out.push(TAG_DELTA_BITS_RUNS);
    let first = vals.first().copied().unwrap_or(0);
    codec::put_i64(out, first);
    let restart = |i: usize| cids.get(i) != cids.get(i - 1);
    let diffs = (1..vals.len()).map(|i| vals[i].wrapping_sub(if restart(i) { first } else { vals[i - 1] }));
    let (g, deltas) = scaled(diffs);
    put_two_widths(out, g, &deltas);
}

/// Decodes [`put_delta_bits_i64`] output of exactly `count` rows.
pub fn get_delta_bits_i64(
    reader: &mut Reader<'_>,
    count: usize,
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    TwoWidths::parse(reader, count, TAG_DELTA_BITS)?.decode(count, out);
    Ok(())
}

/// Decodes [`put_delta_bits_runs_i64`] output of exactly `count` rows whose customer runs end at
/// `ends` (exclusive row indices, ascending, as [`get_rle_u32_runs`] gives them).
pub fn get_delta_bits_runs_i64(
    reader: &mut Reader<'_>,
    count: usize,
    ends: &[u32],
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    let two = TwoWidths::parse(reader, count, TAG_DELTA_BITS_RUNS)?;
    // Summed as plain deltas, row i of a run starting at a ≥ 1 holds
    // first + Σ_{k ≤ i} d_k instead of first + Σ_{a ≤ k ≤ i} d_k: the run is off by its
    // predecessor's plain sum minus `first`. Runs are corrected last to first, so that each
    // offset is read before its row is corrected.
    if count > 0 && ends.last() != Some(&(count as u32)) {
        return Err(reader.err("customer runs do not cover the block"));
    }
    two.decode(count, out);
    // Short runs (a customer's few rows in a time slice): one pass over the rows with the
    // offset switched at each run's start costs less than a loop per run.
    if ends.len() * 8 > count {
        return restart_short_runs(reader, ends, two.first, out);
    }
    let mut end = count;
    for &start in ends.iter().rev().skip(1) {
        let a = start as usize;
        if a == 0 || a >= end {
            return Err(reader.err("customer runs out of order"));
        }
        let off = out[a - 1].wrapping_sub(two.first);
        for v in &mut out[a..end] {
            *v = v.wrapping_sub(off);
        }
        end = a;
    }
    Ok(())
}

/// [`get_delta_bits_runs_i64`]'s correction of the runs after the first, in one pass forward:
/// a run starting at row a is off by the plain sum of row a − 1 (before its own correction)
/// minus `first`.
fn restart_short_runs(
    reader: &Reader<'_>,
    ends: &[u32],
    first: i64,
    out: &mut [i64],
) -> Result<(), DecodeError> {
    let mut starts = vec![false; out.len()];
    let mut previous = 0;
    for &start in ends.iter().take(ends.len().saturating_sub(1)) {
        let a = start as usize;
        if a <= previous || a >= out.len() {
            return Err(reader.err("customer runs out of order"));
        }
        starts[a] = true;
        previous = a;
    }
    let (mut off, mut plain_before) = (0i64, first);
    for (value, &starts_run) in out.iter_mut().zip(&starts) {
        let plain = *value;
        off = if starts_run {
            plain_before.wrapping_sub(first)
        } else {
            off
        };
        *value = plain.wrapping_sub(off);
        plain_before = plain;
    }
    Ok(())
}

/// One customer's timestamps from a tag 9 chunk, decoded as they are read, so that rows a
/// reader never reaches are never decoded (see [`TsRuns::run`]).
pub struct TsRuns<'a> {
    two: TwoWidths<'a>,
    /// The selector as 64-bit words (bit q: delta of row q + 1 is wide), one spare 0 word.
    words: Vec<u64>,
    /// Wide deltas before each word.
    before: Vec<u32>,
}

impl<'a> TsRuns<'a> {
    /// Parses a tag 9 chunk of `count` rows; `None` when it is another encoding (segments written
    /// before tag 9) or its wide width exceeds 56 bits (not read lazily: callers decode the
    /// column whole instead).
    pub fn parse(bytes: &'a [u8], count: usize) -> Result<Option<TsRuns<'a>>, DecodeError> {
        if bytes.first() != Some(&TAG_DELTA_BITS_RUNS) {
            return Ok(None);
        }
        let mut r = Reader::new(bytes);
        let two = TwoWidths::parse(&mut r, count, TAG_DELTA_BITS_RUNS)?;
        r.finish()?;
        if two.wl > 56 {
            return Ok(None);
        }
        let mut words: Vec<u64> = le_words(two.sel).collect();
        words.push(0);
        let mut before = Vec::with_capacity(words.len());
        let mut sum = 0u32;
        for w in &words {
            before.push(sum);
            sum += w.count_ones();
        }
        Ok(Some(TsRuns { two, words, before }))
    }

    /// The timestamps of rows `start`, `start + 1`, … of a block whose customer runs are restarts: row
    /// `start` MUST start a customer's run (else the values are wrong, never out of bounds). The
    /// iterator yields a value for every row to the end of the block; callers take the run.
    pub fn run(&self, start: usize) -> TsRun<'_, 'a> {
        // Delta q belongs to row q + 1; `wide` and `narrow` count the deltas before it.
        let q = start.saturating_sub(1);
        let word = self.words.get(q / 64).copied().unwrap_or(0);
        let below = word & ((1u64 << (q % 64)) - 1);
        let wide = self.before.get(q / 64).copied().unwrap_or(0) as usize + below.count_ones() as usize;
        let two = &self.two;
        TsRun {
            words: &self.words,
            small: two.streams,
            large: two.streams.get(two.small_len..).unwrap_or(&[]),
            ws: two.ws,
            wl: two.wl,
            small_mask: (1u64 << two.ws) - 1,
            large_mask: (1u64 << two.wl) - 1,
            g: two.g,
            q,
            small_pos: (q - wide) * two.ws,
            large_pos: wide * two.wl,
            // Row 0 has no delta: its value is `first` (start the sum one delta short).
            pending: start == 0,
            t: two.first,
        }
    }
}

/// The iterator of [`TsRuns::run`].
pub struct TsRun<'r, 'a> {
    words: &'r [u64],
    small: &'a [u8],
    large: &'a [u8],
    ws: usize,
    wl: usize,
    small_mask: u64,
    large_mask: u64,
    g: i64,
    /// The next delta to add.
    q: usize,
    /// Bit positions of the next narrow and wide values in their streams.
    small_pos: usize,
    large_pos: usize,
    /// True before row 0 is yielded (it adds no delta).
    pending: bool,
    t: i64,
}

/// The 64 bits of `stream` from byte `at` (0 past its end: the streams end in 8 zero bytes,
/// so a value of at most 56 bits starting inside the stream is always loaded whole).
#[inline(always)]
pub(in crate::internals::segment) fn load64(stream: &[u8], at: usize) -> u64 {
    match stream.get(at..at + 8) {
        Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        None => 0,
    }
}

impl Iterator for TsRun<'_, '_> {
    type Item = i64;

    #[inline(always)]
    fn next(&mut self) -> Option<i64> {
        if self.pending {
            self.pending = false;
            return Some(self.t);
        }
        let q = self.q;
        let bit = (self.words.get(q / 64).copied().unwrap_or(0) >> (q % 64)) & 1;
        // Both streams are read and one value kept: wide deltas come at session starts, too
        // irregularly for a branch.
        let s = (load64(self.small, self.small_pos / 8) >> (self.small_pos % 8)) & self.small_mask;
        let l = (load64(self.large, self.large_pos / 8) >> (self.large_pos % 8)) & self.large_mask;
        let wide = bit as usize;
        let d = if wide == 1 { l } else { s };
        self.large_pos += self.wl & wide.wrapping_neg();
        self.small_pos += self.ws & (wide ^ 1).wrapping_neg();
        self.q += 1;
        self.t = self.t.wrapping_add(codec::unzigzag(d).wrapping_mul(self.g));
        Some(self.t)
    }
}

/// Writes row `i + 1`'s timestamp to `out[i]`: merges the narrow deltas `small` and the wide
/// ones `large` by the selector `sel` (bit i set: delta i is wide; empty: every delta is
/// narrow), undoes the zigzag, scales by `g` and sums from `first` (wrapping, as encoded).
/// Needs `small` and `large` to hold their deltas plus one extra element each, and `sel` to
/// hold exactly `large.len() - 1` ones among its first `out.len()` bits.
pub(in crate::internals::segment) fn merge_deltas(
    sel: &[u8],
    small: &[u64],
    large: &[u64],
    first: i64,
    gcd: i64,
    out: &mut [i64],
) {
    #[cfg(target_arch = "x86_64")]
    if !sel.is_empty()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
    {
        // The vector path handles whole selector bytes and returns where it stopped.
        let (rows, j, k, v) = simd::merge_deltas(sel, small, large, first, gcd, out);
        return merge_deltas_scalar(
            &sel[rows / 8..],
            &small[k..],
            &large[j..],
            v,
            gcd,
            &mut out[rows..],
        );
    }
    merge_deltas_scalar(sel, small, large, first, gcd, out);
}

/// [`merge_deltas`], one row at a time.
pub(in crate::internals::segment) fn merge_deltas_scalar(
    sel: &[u8],
    small: &[u64],
    large: &[u64],
    first: i64,
    gcd: i64,
    out: &mut [i64],
) {
    let mut v = first;
    let (mut j, mut k) = (0usize, 0usize);
    // Branch-free: j ≤ wide and k ≤ m − wide at every row (the selector has exactly `wide`
    // ones), so the indices never overflow; a read past the end (only at a discarded
    // position) gives 0.
    let mut put = |x: &mut i64, bit: usize| {
        let l = large.get(j).copied().unwrap_or(0);
        let s = small.get(k).copied().unwrap_or(0);
        let d = if bit == 1 { l } else { s };
        j = j.wrapping_add(bit);
        k = k.wrapping_add(1 ^ bit);
        v = v.wrapping_add(codec::unzigzag(d).wrapping_mul(gcd));
        *x = v;
    };
    if sel.is_empty() {
        out.iter_mut().for_each(|x| put(x, 0));
    } else {
        for (rows, &byte) in out.chunks_mut(8).zip(sel) {
            for (b, x) in rows.iter_mut().enumerate() {
                put(x, usize::from((byte >> b) & 1));
            }
        }
    }
}

/// The AVX-512 form of the timestamp merge: eight rows per selector byte with two expand-loads
/// (the narrow deltas to the clear bits, the wide ones to the set bits), the zigzag undone,
/// the scale applied and the prefix sum taken in registers.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Merges as many whole selector bytes as fit in `out`; returns (rows done, wide deltas
    /// used, narrow deltas used, last timestamp) for the scalar path to go on from.
    pub(super) fn merge_deltas(
        sel: &[u8],
        small: &[u64],
        large: &[u64],
        first: i64,
        gcd: i64,
        out: &mut [i64],
    ) -> (usize, usize, usize, i64) {
        let bytes = (out.len() / 8).min(sel.len());
        let wide = sel[..bytes]
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum::<usize>();
        if large.len() < wide || small.len() < bytes * 8 - wide {
            return (0, 0, 0, first);
        }
        #[expect(
            unsafe_code,
            reason = "AVX-512 intrinsics: timestamp decoding measured 1.7x faster (docs/BENCHMARKS.md, fifth round)"
        )]
        // SAFETY: the caller checked avx512f and avx512dq at run time. The loads and stores
        // stay inside their slices: byte c of the selector expands popcount(c) wide deltas
        // from large[j..] and 8 - popcount(c) narrow ones from small[k..], and over the first
        // `bytes` selector bytes these total `wide` and `bytes * 8 - wide`, checked above
        // against the slices' lengths (masked-off lanes are not read); each store writes
        // out[c * 8..c * 8 + 8] with c < bytes ≤ out.len() / 8.
        unsafe {
            merge_avx512(&sel[..bytes], small, large, first, gcd, out)
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    #[expect(unsafe_code, reason = "AVX-512 intrinsics; see merge_deltas")]
    unsafe fn merge_avx512(
        sel: &[u8],
        small: &[u64],
        large: &[u64],
        first: i64,
        gcd: i64,
        out: &mut [i64],
    ) -> (usize, usize, usize, i64) {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi64(1);
        let scale = _mm512_set1_epi64(gcd);
        let last = _mm512_set1_epi64(7);
        let mut carry = _mm512_set1_epi64(first);
        let (mut j, mut k) = (0usize, 0usize);
        for (c, &byte) in sel.iter().enumerate() {
            // SAFETY: see `merge_deltas`: j + popcount(byte) ≤ large.len() and
            // k + 8 - popcount(byte) ≤ small.len(); lanes outside the masks are not read.
            let (l, s) = unsafe {
                (
                    _mm512_maskz_expandloadu_epi64(byte, large.as_ptr().add(j).cast::<i64>()),
                    _mm512_maskz_expandloadu_epi64(!byte, small.as_ptr().add(k).cast::<i64>()),
                )
            };
            let d = _mm512_or_si512(l, s);
            // unzigzag: (d >> 1) ^ -(d & 1), then × g.
            let z = _mm512_xor_si512(
                _mm512_srli_epi64::<1>(d),
                _mm512_sub_epi64(zero, _mm512_and_si512(d, one)),
            );
            let mut x = _mm512_mullo_epi64(z, scale);
            // Prefix sum over the eight lanes: add the vector shifted up by 1, 2 and 4 lanes.
            x = _mm512_add_epi64(x, _mm512_alignr_epi64::<7>(x, zero));
            x = _mm512_add_epi64(x, _mm512_alignr_epi64::<6>(x, zero));
            x = _mm512_add_epi64(x, _mm512_alignr_epi64::<4>(x, zero));
            x = _mm512_add_epi64(x, carry);
            // SAFETY: c < sel.len() ≤ out.len() / 8, so out[c * 8..c * 8 + 8] is in bounds.
            unsafe { _mm512_storeu_epi64(out.as_mut_ptr().add(c * 8), x) };
            carry = _mm512_permutexvar_epi64(last, x);
            let w = byte.count_ones() as usize;
            j += w;
            k += 8 - w;
        }
        let rows = sel.len() * 8;
        let v = if rows > 0 { out[rows - 1] } else { first };
        (rows, j, k, v)
    }
}

/// Decodes a timestamp column of exactly `count` rows whose customer runs end at `ends`:
/// [`put_delta_bits_runs_i64`] output, or that of [`put_delta_bits_i64`] or [`put_delta_i64`]
/// (segments written before tag 9 or before the two-width encoding; `ends` unused).
pub fn get_timestamps(
    reader: &mut Reader<'_>,
    count: usize,
    ends: &[u32],
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    match reader.clone().u8()? {
        TAG_DELTA_I64 => get_delta_i64(reader, count, out),
        TAG_DELTA_BITS_RUNS => get_delta_bits_runs_i64(reader, count, ends, out),
        _ => get_delta_bits_i64(reader, count, out),
    }
}
