//! Column chunk encodings (the raw bytes before zstd). Every decoder checks the row count and
//! every length against the data, so corrupt bytes give an error, never a panic.
//!
//! Tags (first byte of a raw chunk): 1 = run-length u32 (customer ids), 2 = delta i64 (integer
//! properties; timestamps of older segments), 3/4/5 = fixed width u8/u16/u32, 6 = property
//! column, 7 = two-width bit-packed deltas (timestamps of older segments), 8 = u32 values of 1,
//! 2 or 4 bits packed into bytes (event ids, string values of few distinct values), 9 = tag 7
//! restarted at every customer's first row (timestamps), 10 = a u8 value per event id (stage
//! codes that follow the event).

use crate::codec::{self, DecodeError, Reader};
use crate::model::{PropColumn, PropType};

const TAG_RLE_U32: u8 = 1;
const TAG_DELTA_I64: u8 = 2;
const TAG_W8: u8 = 3;
const TAG_W16: u8 = 4;
const TAG_W32: u8 = 5;
const TAG_PROP: u8 = 6;
const TAG_DELTA_BITS: u8 = 7;
const TAG_SUB_BYTE: u8 = 8;
const TAG_DELTA_BITS_RUNS: u8 = 9;
const TAG_BY_EVENT: u8 = 10;

/// Event ids from this one on are not mapped by tag 10 (a block of that many distinct events
/// keeps its stage column as bytes).
const BY_EVENT_IDS: u32 = 1 << 16;

/// Zero bytes after the bit-packed streams of [`put_delta_bits_i64`], so that the decoder reads
/// every value with one 8-byte load that stays inside the chunk.
const BITS_PAD: usize = 8;

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

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
fn scaled_deltas(vals: &[i64]) -> (u64, Vec<u64>) {
    scaled(vals.windows(2).map(|w| w[1].wrapping_sub(w[0])))
}

/// The gcd `g` of `diffs` (1 when there are none) and `zigzag(diff / g)` for each.
fn scaled(diffs: impl Iterator<Item = i64> + Clone) -> (u64, Vec<u64>) {
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
struct ExactDiv {
    shift: u32,
    inverse: u64,
    /// `u64::MAX / odd`: `x` (with `shift` low zero bits) is a multiple of `g` exactly when
    /// `(x >> shift) × odd⁻¹ mod 2^64` is at most this.
    limit: u64,
}

impl ExactDiv {
    fn new(g: u64) -> ExactDiv {
        let g = g.max(1);
        let shift = g.trailing_zeros();
        let odd = g >> shift;
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
    fn divides(self, x: u64) -> bool {
        x & ((1u64 << self.shift) - 1) == 0 && (x >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }

    /// `x / g`, for `x` a multiple of `g` (wrapping like `wrapping_div` for i64::MIN / -1
    /// cannot occur: `g` is positive).
    fn div(self, x: i64) -> i64 {
        (x >> self.shift).wrapping_mul(self.inverse as i64)
    }
}

/// The bits needed for `v` (0 for 0).
fn bit_len(v: u64) -> usize {
    64 - v.leading_zeros() as usize
}

/// The narrow width `ws ≤ wl` (`wl` = the widest value's) that minimises the size of the
/// two-width code: a selector bit per value when `ws < wl`, `ws` bits per value that fits,
/// `wl` per value that does not. Returns `(ws, wl, values that fit in ws bits)`.
fn narrow_width(deltas: &[u64]) -> (usize, usize, usize) {
    let mut hist = [0usize; 65];
    for &d in deltas {
        hist[bit_len(d)] += 1;
    }
    let wl = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    let n = deltas.len();
    let mut best = (n * wl, wl, n);
    let mut fit = 0; // values of at most ws bits
    for (ws, &count) in hist.iter().enumerate().take(wl) {
        fit += count;
        let bits = n + fit * ws + (n - fit) * wl;
        if bits < best.0 {
            best = (bits, ws, fit);
        }
    }
    (best.1, wl, best.2)
}

/// Writes values LSB-first into a byte slice sized for them, eight bytes at a time.
struct BitSink<'a> {
    buf: &'a mut [u8],
    at: usize,
    acc: u128,
    /// Bits in `acc` (< 64 between calls).
    k: usize,
}

impl<'a> BitSink<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        BitSink {
            buf,
            at: 0,
            acc: 0,
            k: 0,
        }
    }

    /// Appends `v` (< 2^w, w ≤ 64) at `w` bits when `on`, else nothing — without a branch on
    /// `on`, which follows the data (a delta's width) too irregularly to predict.
    #[inline(always)]
    fn push_if(&mut self, on: bool, v: u64, w: usize) {
        let keep = u64::from(on).wrapping_neg();
        self.acc |= u128::from(v & keep) << self.k;
        self.k += w & keep as usize;
        if self.k >= 64 {
            if let Some(dst) = self.buf.get_mut(self.at..self.at + 8) {
                dst.copy_from_slice(&(self.acc as u64).to_le_bytes());
            }
            self.at += 8;
            self.acc >>= 64;
            self.k -= 64;
        }
    }

    /// Writes the bits still held (in whole bytes).
    fn finish(mut self) {
        while self.k > 0 {
            if let Some(b) = self.buf.get_mut(self.at) {
                *b = self.acc as u8;
            }
            self.at += 1;
            self.acc >>= 8;
            self.k = self.k.saturating_sub(8);
        }
    }
}

/// Bytes of a stream of `count` values of `w` bits.
fn packed_len(count: usize, w: usize) -> Option<usize> {
    Some(count.checked_mul(w)?.div_ceil(8))
}

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

/// The body of tags 7 and 9 after the first value: `g`, the widths, the selector, the streams
/// and the padding.
///
/// One pass writes the selector and both streams into their places (their sizes follow from
/// the widths), where four passes — the selector, then each stream through a filter whose
/// branch mispredicted at every session start — took a fifth of the writer's time.
fn put_two_widths(out: &mut Vec<u8>, g: u64, deltas: &[u64]) {
    codec::put_varint(out, g);
    let (ws, wl, narrow) = narrow_width(deltas);
    out.push(ws as u8);
    out.push(wl as u8);
    let n = deltas.len();
    let sel_len = if ws < wl { n.div_ceil(8) } else { 0 };
    let small_len = (narrow * ws).div_ceil(8);
    let large_len = ((n - narrow) * wl).div_ceil(8);
    let base = out.len();
    out.resize(base + sel_len + small_len + large_len + BITS_PAD, 0);
    let (sel, rest) = out[base..].split_at_mut(sel_len);
    let (small, rest) = rest.split_at_mut(small_len);
    let (mut small, mut large) = (BitSink::new(small), BitSink::new(&mut rest[..large_len]));
    for (chunk, byte) in deltas.chunks(8).zip(sel.iter_mut()) {
        *byte = chunk
            .iter()
            .enumerate()
            .fold(0u8, |b, (k, &d)| b | u8::from(bit_len(d) > ws) << k);
    }
    for &d in deltas {
        let wide = bit_len(d) > ws;
        small.push_if(!wide, d, ws);
        large.push_if(wide, d, wl);
    }
    small.finish();
    large.finish();
}

/// Unpacks `count` values of `w` bits (LSB first) from `buf` into `out` (cleared), then one
/// extra 0 so that a branch-free reader may load one past the last value.
fn unpack(buf: &[u8], count: usize, w: usize, out: &mut Vec<u64>) {
    out.clear();
    out.reserve(count + 1);
    // A width known at compile time unpacks eight values per `w` bytes with constant shifts.
    let done = match w {
        1 => unpack_fixed::<1>(buf, count, out),
        2 => unpack_fixed::<2>(buf, count, out),
        3 => unpack_fixed::<3>(buf, count, out),
        4 => unpack_fixed::<4>(buf, count, out),
        5 => unpack_fixed::<5>(buf, count, out),
        6 => unpack_fixed::<6>(buf, count, out),
        7 => unpack_fixed::<7>(buf, count, out),
        8 => unpack_fixed::<8>(buf, count, out),
        9 => unpack_fixed::<9>(buf, count, out),
        10 => unpack_fixed::<10>(buf, count, out),
        11 => unpack_fixed::<11>(buf, count, out),
        12 => unpack_fixed::<12>(buf, count, out),
        13 => unpack_fixed::<13>(buf, count, out),
        14 => unpack_fixed::<14>(buf, count, out),
        15 => unpack_fixed::<15>(buf, count, out),
        16 => unpack_fixed::<16>(buf, count, out),
        17 => unpack_fixed::<17>(buf, count, out),
        18 => unpack_fixed::<18>(buf, count, out),
        19 => unpack_fixed::<19>(buf, count, out),
        20 => unpack_fixed::<20>(buf, count, out),
        21 => unpack_fixed::<21>(buf, count, out),
        22 => unpack_fixed::<22>(buf, count, out),
        23 => unpack_fixed::<23>(buf, count, out),
        24 => unpack_fixed::<24>(buf, count, out),
        25 => unpack_fixed::<25>(buf, count, out),
        26 => unpack_fixed::<26>(buf, count, out),
        27 => unpack_fixed::<27>(buf, count, out),
        28 => unpack_fixed::<28>(buf, count, out),
        29 => unpack_fixed::<29>(buf, count, out),
        30 => unpack_fixed::<30>(buf, count, out),
        31 => unpack_fixed::<31>(buf, count, out),
        32 => unpack_fixed::<32>(buf, count, out),
        33 => unpack_fixed::<33>(buf, count, out),
        34 => unpack_fixed::<34>(buf, count, out),
        35 => unpack_fixed::<35>(buf, count, out),
        36 => unpack_fixed::<36>(buf, count, out),
        37 => unpack_fixed::<37>(buf, count, out),
        38 => unpack_fixed::<38>(buf, count, out),
        39 => unpack_fixed::<39>(buf, count, out),
        40 => unpack_fixed::<40>(buf, count, out),
        41 => unpack_fixed::<41>(buf, count, out),
        42 => unpack_fixed::<42>(buf, count, out),
        43 => unpack_fixed::<43>(buf, count, out),
        44 => unpack_fixed::<44>(buf, count, out),
        45 => unpack_fixed::<45>(buf, count, out),
        46 => unpack_fixed::<46>(buf, count, out),
        47 => unpack_fixed::<47>(buf, count, out),
        48 => unpack_fixed::<48>(buf, count, out),
        49 => unpack_fixed::<49>(buf, count, out),
        50 => unpack_fixed::<50>(buf, count, out),
        51 => unpack_fixed::<51>(buf, count, out),
        52 => unpack_fixed::<52>(buf, count, out),
        53 => unpack_fixed::<53>(buf, count, out),
        54 => unpack_fixed::<54>(buf, count, out),
        55 => unpack_fixed::<55>(buf, count, out),
        56 => unpack_fixed::<56>(buf, count, out),
        _ => 0,
    };
    unpack_from(buf, done, count, w, out);
    out.push(0);
}

/// Unpacks whole groups of eight `W`-bit values (a group is `W` bytes) while the group and
/// the 8 bytes after it lie inside `buf`; returns how many values it unpacked.
fn unpack_fixed<const W: usize>(buf: &[u8], count: usize, out: &mut Vec<u64>) -> usize {
    let mask = (1u64 << W) - 1;
    let mut done = 0;
    while done + 8 <= count {
        let at = done / 8 * W;
        let Some(chunk) = buf.get(at..at + W + 8) else {
            break;
        };
        let mut vals = [0u64; 8];
        for (j, v) in vals.iter_mut().enumerate() {
            let bit = j * W;
            let b = bit / 8;
            let word = match chunk.get(b..b + 8) {
                Some(x) => u64::from_le_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]),
                None => 0,
            };
            *v = (word >> (bit % 8)) & mask;
        }
        out.extend_from_slice(&vals);
        done += 8;
    }
    done
}

/// Unpacks values `from..count` of `w` bits (LSB first) from `buf`, appending to `out`.
fn unpack_from(buf: &[u8], from: usize, count: usize, w: usize, out: &mut Vec<u64>) {
    if w <= 56 {
        let mask = (1u64 << w) - 1;
        out.extend((from..count).map(|k| {
            let pos = k * w;
            let at = pos / 8;
            // Every value starts at least 8 bytes before the end of `buf` (see the caller).
            let word = match buf.get(at..at + 8) {
                Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                None => 0,
            };
            (word >> (pos % 8)) & mask
        }));
    } else {
        out.extend((from..count).map(|k| {
            let pos = k * w;
            let at = pos / 8;
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = buf.get(at + i).copied().unwrap_or(0);
            }
            let word = u128::from_le_bytes(b) >> (pos % 8);
            (word & ((1u128 << w) - 1)) as u64
        }));
    }
}

thread_local! {
    /// Unpacked narrow and wide deltas, reused across blocks on one thread.
    static UNPACKED: std::cell::RefCell<(Vec<u64>, Vec<u64>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Reads the start of a delta encoding with tag `want`: the first value and the divisor `g`.
fn delta_header(r: &mut Reader<'_>, want: u8) -> Result<(i64, i64), DecodeError> {
    tag(r, &[want])?;
    let first = r.i64()?;
    let g = r.varint()?;
    if g == 0 || g > i64::MAX as u64 + 1 {
        return Err(r.err("bad delta divisor"));
    }
    Ok((first, g as i64))
}

/// `bytes` as little-endian 64-bit words, the last one zero-padded.
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    })
}

/// The parsed layout of a tag 7 or tag 9 chunk (see [`put_delta_bits_i64`]), lengths checked.
struct TwoWidths<'a> {
    first: i64,
    g: i64,
    ws: usize,
    wl: usize,
    /// The selector bytes (empty when `ws = wl`).
    sel: &'a [u8],
    /// Deltas that are wide.
    wide: usize,
    /// The narrow stream, then the wide one, then the padding.
    streams: &'a [u8],
    /// Bytes of the narrow stream.
    small_len: usize,
}

impl<'a> TwoWidths<'a> {
    /// Parses a chunk of tag `want` and `n` rows, checking every length against the data.
    fn parse(r: &mut Reader<'a>, n: usize, want: u8) -> Result<TwoWidths<'a>, DecodeError> {
        let (first, g) = delta_header(r, want)?;
        let ws = r.u8()? as usize;
        let wl = r.u8()? as usize;
        if ws > wl || wl > 64 {
            return Err(r.err(format!("delta widths {ws}/{wl}")));
        }
        let m = n.saturating_sub(1);
        let sel = if ws < wl { r.bytes(m.div_ceil(8))? } else { &[][..] };
        if !m.is_multiple_of(8) && sel.last().is_some_and(|&b| b >> (m % 8) != 0) {
            return Err(r.err("selector bits past the last row"));
        }
        // Counted 8 bytes at a time: without a POPCNT instruction in the baseline target, each
        // count is a multiply-and-shift sequence, as long for a byte as for a word.
        let wide = le_words(sel).map(|w| w.count_ones() as usize).sum::<usize>();
        let small_len = packed_len(m - wide, ws).ok_or_else(|| r.err("row count overflow"))?;
        let large_len = packed_len(wide, wl).ok_or_else(|| r.err("row count overflow"))?;
        // The narrow stream, the wide stream and the padding, contiguous: every value starts at
        // least 8 bytes before the end, so one 8-byte load reads any value of at most 56 bits.
        let streams = r.bytes(small_len.saturating_add(large_len).saturating_add(BITS_PAD))?;
        if streams[small_len + large_len..].iter().any(|&b| b != 0) {
            return Err(r.err("non-zero padding"));
        }
        Ok(TwoWidths {
            first,
            g,
            ws,
            wl,
            sel,
            wide,
            streams,
            small_len,
        })
    }

    /// Decodes all `n` rows into `out` as plain deltas (tag 7's meaning).
    fn decode(&self, n: usize, out: &mut Vec<i64>) {
        out.clear();
        if n == 0 {
            return;
        }
        let m = n - 1;
        UNPACKED.with(|cell| {
            let (small, large) = &mut *cell.borrow_mut();
            unpack(self.streams, m - self.wide, self.ws, small);
            unpack(&self.streams[self.small_len..], self.wide, self.wl, large);
            out.resize(n, 0);
            out[0] = self.first;
            merge_deltas(self.sel, small, large, self.first, self.g, &mut out[1..]);
        });
    }
}

/// Decodes [`put_delta_bits_i64`] output of exactly `n` rows.
pub fn get_delta_bits_i64(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    TwoWidths::parse(r, n, TAG_DELTA_BITS)?.decode(n, out);
    Ok(())
}

/// Decodes [`put_delta_bits_runs_i64`] output of exactly `n` rows whose customer runs end at
/// `ends` (exclusive row indices, ascending, as [`get_rle_u32_runs`] gives them).
pub fn get_delta_bits_runs_i64(
    r: &mut Reader<'_>,
    n: usize,
    ends: &[u32],
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    let two = TwoWidths::parse(r, n, TAG_DELTA_BITS_RUNS)?;
    // Summed as plain deltas, row i of a run starting at a ≥ 1 holds
    // first + Σ_{k ≤ i} d_k instead of first + Σ_{a ≤ k ≤ i} d_k: the run is off by its
    // predecessor's plain sum minus `first`. Runs are corrected last to first, so that each
    // offset is read before its row is corrected.
    if n > 0 && ends.last() != Some(&(n as u32)) {
        return Err(r.err("customer runs do not cover the block"));
    }
    two.decode(n, out);
    let mut end = n;
    for &start in ends.iter().rev().skip(1) {
        let a = start as usize;
        if a == 0 || a >= end {
            return Err(r.err("customer runs out of order"));
        }
        let off = out[a - 1].wrapping_sub(two.first);
        for v in &mut out[a..end] {
            *v = v.wrapping_sub(off);
        }
        end = a;
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
    /// Parses a tag 9 chunk of `n` rows; `None` when it is another encoding (segments written
    /// before tag 9) or its wide width exceeds 56 bits (not read lazily: callers decode the
    /// column whole instead).
    pub fn parse(bytes: &'a [u8], n: usize) -> Result<Option<TsRuns<'a>>, DecodeError> {
        if bytes.first() != Some(&TAG_DELTA_BITS_RUNS) {
            return Ok(None);
        }
        let mut r = Reader::new(bytes);
        let two = TwoWidths::parse(&mut r, n, TAG_DELTA_BITS_RUNS)?;
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

    /// The timestamps of rows `a`, `a + 1`, … of a block whose customer runs are restarts: row
    /// `a` MUST start a customer's run (else the values are wrong, never out of bounds). The
    /// iterator yields a value for every row to the end of the block; callers take the run.
    pub fn run(&self, a: usize) -> TsRun<'_, 'a> {
        // Delta q belongs to row q + 1; `wide` and `narrow` count the deltas before it.
        let q = a.saturating_sub(1);
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
            pending: a == 0,
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
fn load64(stream: &[u8], at: usize) -> u64 {
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
fn merge_deltas(sel: &[u8], small: &[u64], large: &[u64], first: i64, g: i64, out: &mut [i64]) {
    #[cfg(target_arch = "x86_64")]
    if !sel.is_empty()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
    {
        // The vector path handles whole selector bytes and returns where it stopped.
        let (rows, j, k, v) = simd::merge_deltas(sel, small, large, first, g, out);
        return merge_deltas_scalar(&sel[rows / 8..], &small[k..], &large[j..], v, g, &mut out[rows..]);
    }
    merge_deltas_scalar(sel, small, large, first, g, out);
}

/// [`merge_deltas`], one row at a time.
fn merge_deltas_scalar(sel: &[u8], small: &[u64], large: &[u64], first: i64, g: i64, out: &mut [i64]) {
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
        v = v.wrapping_add(codec::unzigzag(d).wrapping_mul(g));
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
        g: i64,
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
            merge_avx512(&sel[..bytes], small, large, first, g, out)
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    #[expect(unsafe_code, reason = "AVX-512 intrinsics; see merge_deltas")]
    unsafe fn merge_avx512(
        sel: &[u8],
        small: &[u64],
        large: &[u64],
        first: i64,
        g: i64,
        out: &mut [i64],
    ) -> (usize, usize, usize, i64) {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi64(1);
        let scale = _mm512_set1_epi64(g);
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

/// Fixed-width encoding of a u32 column, using the narrowest of 1, 2 or 4 bytes.
pub fn put_width_u32(out: &mut Vec<u8>, vals: &[u32]) {
    let max = vals.iter().copied().max().unwrap_or(0);
    if max < 16 {
        put_sub_byte(out, vals, max);
    } else if max <= u32::from(u8::MAX) {
        out.push(TAG_W8);
        out.extend(vals.iter().map(|&v| v as u8));
    } else if max <= u32::from(u16::MAX) {
        out.push(TAG_W16);
        for &v in vals {
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
    } else {
        out.push(TAG_W32);
        for &v in vals {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Fixed-width encoding of a u8 column.
pub fn put_u8s(out: &mut Vec<u8>, vals: &[u8]) {
    match vals.iter().copied().max().unwrap_or(0) {
        max @ 0..16 => put_sub_byte(out, vals, u32::from(max)),
        _ => {
            out.push(TAG_W8);
            out.extend_from_slice(vals);
        }
    }
}

/// Stage codes of rows whose events are `events`: when every row of an event has the same stage
/// (stages set per event name, the usual case), tag 10 — `count varint`, then `count` pairs
/// `(event id varint, stage u8)` with ids strictly increasing — else [`put_u8s`]. On the 10M
/// comparison data the stage column took 0.23 bytes/event as 4-bit codes; as a map it takes a
/// few bytes per block.
pub fn put_stages(out: &mut Vec<u8>, stages: &[u8], events: &[u32]) {
    match stage_map(stages, events) {
        Some(map) => {
            out.push(TAG_BY_EVENT);
            codec::put_varint(out, map.len() as u64);
            for (e, s) in map {
                codec::put_varint(out, u64::from(e));
                out.push(s);
            }
        }
        None => put_u8s(out, stages),
    }
}

/// The (event id, stage) pairs of `stages` by `events`, when each event has one stage.
fn stage_map(stages: &[u8], events: &[u32]) -> Option<Vec<(u32, u8)>> {
    let max = events.iter().copied().max()?;
    if max >= BY_EVENT_IDS || events.len() != stages.len() {
        return None;
    }
    const UNSET: u16 = u16::MAX;
    let mut table = vec![UNSET; max as usize + 1];
    for (&e, &s) in events.iter().zip(stages) {
        let slot = &mut table[e as usize];
        if *slot == UNSET {
            *slot = u16::from(s);
        } else if *slot != u16::from(s) {
            return None;
        }
    }
    Some(
        table
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s != UNSET)
            .map(|(e, &s)| (e as u32, s as u8))
            .collect(),
    )
}

/// Decodes [`put_stages`] output of exactly `n` rows; tag 10 needs the block's event ids
/// (`None`, or a length other than `n`, is an error for it).
pub fn get_stages(
    r: &mut Reader<'_>,
    n: usize,
    events: Option<&[u32]>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if r.clone().u8()? != TAG_BY_EVENT {
        return get_u8s(r, n, out);
    }
    r.u8()?;
    let events = events
        .filter(|e| e.len() == n)
        .ok_or_else(|| r.err("stages by event without the block's event ids"))?;
    let count = r.varint()?;
    if count > u64::from(BY_EVENT_IDS) {
        return Err(r.err(format!("{count} events in a stage map")));
    }
    let mut table: Vec<u16> = Vec::new();
    let mut prev: Option<u64> = None;
    for _ in 0..count {
        let e = r.varint()?;
        if e >= u64::from(BY_EVENT_IDS) || prev.is_some_and(|p| e <= p) {
            return Err(r.err(format!("event id {e} out of order in a stage map")));
        }
        let s = r.u8()?;
        table.resize(e as usize, u16::MAX);
        table.push(u16::from(s));
        prev = Some(e);
    }
    out.clear();
    out.reserve(n);
    for &e in events {
        match table.get(e as usize) {
            Some(&s) if s != u16::MAX => out.push(s as u8),
            _ => return Err(r.err(format!("event id {e} has no stage in the block's map"))),
        }
    }
    Ok(())
}

/// Tag 8: values below 16 (`max` the largest) at 1, 2 or 4 bits, low bits first, never
/// across a byte. zstd then sees half the bytes or fewer, which measured both smaller and
/// twice as fast to decompress on event ids (docs/FORMAT.md §5.1).
fn put_sub_byte<T: Copy + Into<u32>>(out: &mut Vec<u8>, vals: &[T], max: u32) {
    let w = match max {
        0..=1 => 1,
        2..=3 => 2,
        _ => 4,
    };
    out.push(TAG_SUB_BYTE);
    out.push(w as u8);
    for group in vals.chunks(8 / w) {
        out.push(
            group
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, &v)| b | (v.into() as u8) << (i * w)),
        );
    }
}

/// Decodes the body of a tag-8 column of exactly `n` rows (after the tag), appending the
/// values to `out` through `from`.
fn get_sub_byte<T: Clone>(
    r: &mut Reader<'_>,
    n: usize,
    out: &mut Vec<T>,
    from: impl Fn(u8) -> T,
) -> Result<(), DecodeError> {
    let w = usize::from(r.u8()?);
    if ![1, 2, 4].contains(&w) {
        return Err(r.err(format!("sub-byte width {w}")));
    }
    let per = 8 / w;
    let bytes = r.bytes(n.div_ceil(per))?;
    if !n.is_multiple_of(per) && bytes.last().is_some_and(|&b| b >> ((n % per) * w) != 0) {
        return Err(r.err("sub-byte values past the last row"));
    }
    let mask = (1u8 << w) - 1;
    let start = out.len();
    // Sized once and written in place (not extended through a flat map, which checks the
    // capacity per value).
    out.resize(start + bytes.len() * per, from(0));
    let dst = &mut out[start..];
    if w == 4 {
        for (pair, &b) in dst.chunks_exact_mut(2).zip(bytes) {
            pair[0] = from(b & 0xf);
            pair[1] = from(b >> 4);
        }
    } else {
        for (group, &b) in dst.chunks_exact_mut(per).zip(bytes) {
            for (i, x) in group.iter_mut().enumerate() {
                *x = from((b >> (i * w)) & mask);
            }
        }
    }
    out.truncate(start + n);
    Ok(())
}

fn tag(r: &mut Reader<'_>, want: &[u8]) -> Result<u8, DecodeError> {
    let t = r.u8()?;
    if !want.contains(&t) {
        return Err(DecodeError::new(0, format!("unexpected encoding tag {t}")));
    }
    Ok(t)
}

/// Decodes [`put_rle_u32`] output of exactly `n` rows.
pub fn get_rle_u32(r: &mut Reader<'_>, n: usize, out: &mut Vec<u32>) -> Result<(), DecodeError> {
    get_rle_u32_runs(r, n, out, None)
}

/// The runs of [`put_rle_u32`] output of exactly `n` rows, not expanded: each run's value in
/// `vals` and its end (exclusive row index) in `ends`, with the checks of [`get_rle_u32_runs`].
pub fn get_rle_runs(
    r: &mut Reader<'_>,
    n: usize,
    vals: &mut Vec<u32>,
    ends: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    vals.clear();
    ends.clear();
    rle_runs(r, n, |v, end| {
        vals.push(v);
        ends.push(end as u32);
    })
}

/// Reads the runs of [`put_rle_u32`] output of exactly `n` rows, calling `run(value, end)` for
/// each (`end` exclusive); each value MUST be above the previous one.
fn rle_runs(r: &mut Reader<'_>, n: usize, mut run: impl FnMut(u32, usize)) -> Result<(), DecodeError> {
    tag(r, &[TAG_RLE_U32])?;
    let mut prev = 0i64;
    let mut filled = 0usize;
    while filled < n {
        let d = codec::unzigzag(r.varint()?);
        let v = prev.checked_add(d).ok_or_else(|| r.err("value out of range"))?;
        let v32 = u32::try_from(v).map_err(|_| r.err(format!("value {v} out of u32 range")))?;
        // Blocks are sorted by customer: each run's id is above the previous run's (the
        // writer merges equal neighbours), so a run is exactly one customer's rows.
        if filled > 0 && v <= prev {
            return Err(r.err(format!("run value {v} not above the previous {prev}")));
        }
        let len = r.varint()?;
        if len == 0 || len > (n - filled) as u64 {
            return Err(r.err(format!("run of {len} rows exceeds the block")));
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
    r: &mut Reader<'_>,
    n: usize,
    out: &mut Vec<u32>,
    mut ends: Option<&mut Vec<u32>>,
) -> Result<(), DecodeError> {
    out.clear();
    out.reserve(n);
    if let Some(e) = ends.as_deref_mut() {
        e.clear();
    }
    rle_runs(r, n, |v, end| {
        out.resize(end, v);
        if let Some(e) = ends.as_deref_mut() {
            e.push(end as u32);
        }
    })
}

/// Decodes [`put_delta_i64`] output of exactly `n` rows.
pub fn get_delta_i64(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let (first, g) = delta_header(r, TAG_DELTA_I64)?;
    out.clear();
    let width = r.u8()? as usize;
    if !(1..=8).contains(&width) {
        return Err(r.err(format!("delta width {width}")));
    }
    if n == 0 {
        return Ok(());
    }
    let m = n - 1;
    let planes = r.bytes(m.checked_mul(width).ok_or_else(|| r.err("row count overflow"))?)?;
    // Assemble the zigzagged deltas in place (rows 1..n), then prefix-sum them.
    out.resize(n, 0);
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

/// Decodes a timestamp column of exactly `n` rows whose customer runs end at `ends`:
/// [`put_delta_bits_runs_i64`] output, or that of [`put_delta_bits_i64`] or [`put_delta_i64`]
/// (segments written before tag 9 or before the two-width encoding; `ends` unused).
pub fn get_timestamps(
    r: &mut Reader<'_>,
    n: usize,
    ends: &[u32],
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    match r.clone().u8()? {
        TAG_DELTA_I64 => get_delta_i64(r, n, out),
        TAG_DELTA_BITS_RUNS => get_delta_bits_runs_i64(r, n, ends, out),
        _ => get_delta_bits_i64(r, n, out),
    }
}

/// The packed bytes of a tag 8 chunk of `n` 4-bit values (event ids below 16), checked as
/// [`get_width_u32`] checks them, for readers that take values straight from the nibbles
/// ([`Nibbles`]); `None` for any other encoding.
pub fn nibbles(bytes: &[u8], n: usize) -> Result<Option<&[u8]>, DecodeError> {
    if bytes.first() != Some(&TAG_SUB_BYTE) || bytes.get(1) != Some(&4) {
        return Ok(None);
    }
    let mut r = Reader::new(bytes);
    r.bytes(2)?;
    let packed = r.bytes(n.div_ceil(2))?;
    r.finish()?;
    if n % 2 == 1 && packed.last().is_some_and(|&b| b >> 4 != 0) {
        return Err(r.err("sub-byte values past the last row"));
    }
    Ok(Some(packed))
}

/// Values `start..end` of a 4-bit packed column (see [`nibbles`]); 0 past its bytes.
pub struct Nibbles<'a> {
    packed: &'a [u8],
    i: usize,
    end: usize,
}

impl<'a> Nibbles<'a> {
    /// Values `start..end` of `packed`.
    pub fn new(packed: &'a [u8], start: usize, end: usize) -> Nibbles<'a> {
        Nibbles {
            packed,
            i: start,
            end,
        }
    }
}

impl Iterator for Nibbles<'_> {
    type Item = u32;

    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        if self.i >= self.end {
            return None;
        }
        let b = self.packed.get(self.i / 2).copied().unwrap_or(0);
        let v = (b >> ((self.i & 1) * 4)) & 0xf;
        self.i += 1;
        Some(u32::from(v))
    }
}

/// Decodes [`put_width_u32`] output of exactly `n` rows.
pub fn get_width_u32(r: &mut Reader<'_>, n: usize, out: &mut Vec<u32>) -> Result<(), DecodeError> {
    let t = tag(r, &[TAG_W8, TAG_W16, TAG_W32, TAG_SUB_BYTE])?;
    out.clear();
    match t {
        TAG_SUB_BYTE => get_sub_byte(r, n, out, u32::from)?,
        TAG_W8 => out.extend(r.bytes(n)?.iter().map(|&b| u32::from(b))),
        TAG_W16 => {
            let b = r.bytes(n.checked_mul(2).ok_or_else(|| r.err("row count overflow"))?)?;
            out.extend(
                b.chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
            );
        }
        _ => {
            let b = r.bytes(n.checked_mul(4).ok_or_else(|| r.err("row count overflow"))?)?;
            out.extend(
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }
    Ok(())
}

/// Decodes [`put_u8s`] output of exactly `n` rows.
pub fn get_u8s(r: &mut Reader<'_>, n: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let t = tag(r, &[TAG_W8, TAG_SUB_BYTE])?;
    out.clear();
    if t == TAG_SUB_BYTE {
        return get_sub_byte(r, n, out, |b| b);
    }
    out.extend_from_slice(r.bytes(n)?);
    Ok(())
}

fn put_bits(out: &mut Vec<u8>, bits: impl ExactSizeIterator<Item = bool>) {
    let mut byte = 0u8;
    let mut k = 0;
    for b in bits {
        byte |= u8::from(b) << k;
        k += 1;
        if k == 8 {
            out.push(byte);
            byte = 0;
            k = 0;
        }
    }
    if k > 0 {
        out.push(byte);
    }
}

fn get_bits(r: &mut Reader<'_>, n: usize) -> Result<Vec<bool>, DecodeError> {
    let b = r.bytes(n.div_ceil(8))?;
    Ok((0..n).map(|i| b[i / 8] >> (i % 8) & 1 == 1).collect())
}

/// The smallest decimal scale k (0..=6) at which every value is an integer that round-trips.
fn decimal_scale(vals: &[f64]) -> Option<u32> {
    (0..=6u32).find(|&k| {
        let m = 10f64.powi(k as i32);
        vals.iter().all(|&v| {
            let s = (v * m).round();
            s.abs() < 9.0e15 && ((s as i64) as f64 / m).to_bits() == v.to_bits()
        })
    })
}

/// Encodes a property column: validity (0 = all valid, 1 = bitmap), then the valid values by
/// type: strings as fixed-width ids, integers delta-encoded, floats as scaled decimals when
/// exact (scale byte 0..=6) or raw IEEE bits (scale byte 255), booleans as bits.
pub fn put_prop(out: &mut Vec<u8>, col: &PropColumn) {
    out.push(TAG_PROP);
    out.push(col.ty.code());
    if col.valid.iter().all(|&v| v) {
        out.push(0);
    } else {
        out.push(1);
        put_bits(out, col.valid.iter().copied());
    }
    let vals: Vec<u64> = col
        .valid
        .iter()
        .zip(&col.vals)
        .filter(|(v, _)| **v)
        .map(|(_, &x)| x)
        .collect();
    match col.ty {
        PropType::Str => {
            let ids: Vec<u32> = vals.iter().map(|&x| x as u32).collect();
            put_width_u32(out, &ids);
        }
        PropType::I64 => {
            let ints: Vec<i64> = vals.iter().map(|&x| x as i64).collect();
            put_delta_i64(out, &ints);
        }
        PropType::F64 => {
            let floats: Vec<f64> = vals.iter().map(|&x| f64::from_bits(x)).collect();
            match decimal_scale(&floats) {
                Some(k) => {
                    out.push(k as u8);
                    let m = 10f64.powi(k as i32);
                    let ints: Vec<i64> = floats.iter().map(|&v| (v * m).round() as i64).collect();
                    put_delta_i64(out, &ints);
                }
                None => {
                    out.push(255);
                    for x in vals {
                        codec::put_u64(out, x);
                    }
                }
            }
        }
        PropType::Bool => put_bits(out, vals.iter().map(|&x| x != 0)),
    }
}

/// Decodes [`put_prop`] output of exactly `n` rows into a column with id `id`.
pub fn get_prop(r: &mut Reader<'_>, n: usize, id: u32, ty: PropType) -> Result<PropColumn, DecodeError> {
    tag(r, &[TAG_PROP])?;
    if PropType::from_code(r.u8()?) != Some(ty) {
        return Err(r.err("property type disagrees with the footer"));
    }
    let valid = match r.u8()? {
        0 => vec![true; n],
        1 => get_bits(r, n)?,
        m => return Err(r.err(format!("validity mode {m}"))),
    };
    let count = valid.iter().filter(|&&v| v).count();
    let vals: Vec<u64> = match ty {
        PropType::Str => {
            let mut ids = Vec::new();
            get_width_u32(r, count, &mut ids)?;
            ids.into_iter().map(u64::from).collect()
        }
        PropType::I64 => {
            let mut ints = Vec::new();
            get_delta_i64(r, count, &mut ints)?;
            ints.into_iter().map(|v| v as u64).collect()
        }
        PropType::F64 => match r.u8()? {
            k @ 0..=6 => {
                let mut ints = Vec::new();
                get_delta_i64(r, count, &mut ints)?;
                let m = 10f64.powi(i32::from(k));
                ints.into_iter().map(|v| (v as f64 / m).to_bits()).collect()
            }
            255 => (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?,
            k => return Err(r.err(format!("float scale {k}"))),
        },
        PropType::Bool => get_bits(r, count)?.into_iter().map(u64::from).collect(),
    };
    let mut col = PropColumn::new(id, ty);
    col.valid = valid;
    col.vals = Vec::with_capacity(n);
    let mut it = vals.into_iter();
    for &v in &col.valid {
        col.vals.push(if v { it.next().unwrap_or(0) } else { 0 });
    }
    Ok(col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Regression (found by proptest): -0.0 passed the decimal-scale check but decoded as +0.0.
    #[test]
    fn negative_zero_keeps_its_sign() {
        let mut col = PropColumn::new(1, PropType::F64);
        for v in [-0.0f64, 0.0, -1.25] {
            col.valid.push(true);
            col.vals.push(v.to_bits());
        }
        let mut out = Vec::new();
        put_prop(&mut out, &col);
        let back = get_prop(&mut Reader::new(&out), 3, 1, PropType::F64).ok();
        assert_eq!(back, Some(col));
    }

    /// Segments written before the two-width encoding keep their byte-plane timestamps.
    #[test]
    fn timestamps_of_older_segments_still_decode() {
        let vals = [5i64, 9, 9, 1_000_000, -3];
        let mut out = Vec::new();
        put_delta_i64(&mut out, &vals);
        let mut back = Vec::new();
        assert!(get_timestamps(&mut Reader::new(&out), vals.len(), &[], &mut back).is_ok());
        assert_eq!(back, vals);
    }

    /// Few distinct ids pack below a byte (tag 8); byte-wide ids of older segments (tag 3)
    /// still decode.
    #[test]
    fn small_ids_pack_below_a_byte_and_old_byte_ids_still_decode() -> Result<(), String> {
        for (vals, w) in [
            (vec![1u32, 0, 1, 1, 0, 0, 0, 1, 1], 1u8),
            (vec![3, 2, 0, 1, 3], 2),
            (vec![15, 0, 9, 4, 7], 4),
        ] {
            let mut out = Vec::new();
            put_width_u32(&mut out, &vals);
            let per = 8 / usize::from(w);
            assert_eq!(out[..2], [TAG_SUB_BYTE, w]);
            assert_eq!(out.len(), 2 + vals.len().div_ceil(per), "{vals:?}");
            let mut back = Vec::new();
            get_width_u32(&mut Reader::new(&out), vals.len(), &mut back).map_err(|e| e.to_string())?;
            assert_eq!(back, vals);
        }
        // Stage codes (u8) take the same packing below 16, bytes from 16 on.
        for (vals, t) in [(vec![0u8, 5, 3, 1, 2], TAG_SUB_BYTE), (vec![0, 16, 200], TAG_W8)] {
            let mut out = Vec::new();
            put_u8s(&mut out, &vals);
            assert_eq!(out[0], t);
            let mut back = Vec::new();
            get_u8s(&mut Reader::new(&out), vals.len(), &mut back).map_err(|e| e.to_string())?;
            assert_eq!(back, vals);
        }
        // Bits set past the last row are corruption, not data.
        let mut back = Vec::new();
        assert!(get_width_u32(&mut Reader::new(&[TAG_SUB_BYTE, 4, 0x31]), 1, &mut back).is_err());
        assert!(get_width_u32(&mut Reader::new(&[TAG_SUB_BYTE, 3, 0]), 1, &mut back).is_err());
        get_width_u32(&mut Reader::new(&[TAG_W8, 3, 1, 0]), 3, &mut back).map_err(|e| e.to_string())?;
        assert_eq!(back, [3, 1, 0]);
        Ok(())
    }

    /// Customer runs must ascend: a repeated or smaller id would split or reorder a
    /// customer's rows, so it is corruption.
    #[test]
    fn customer_runs_must_ascend() {
        let mut back = Vec::new();
        // (zigzag delta, run) pairs: 5×2 then 5×1 (delta 0), and 5×2 then 4×1 (delta −1).
        for bytes in [[TAG_RLE_U32, 10, 2, 0, 1], [TAG_RLE_U32, 10, 2, 1, 1]] {
            let e = get_rle_u32(&mut Reader::new(&bytes), 3, &mut back).map(|()| back.clone());
            assert!(e.is_err(), "{bytes:?} decoded as {e:?}");
        }
        get_rle_u32(&mut Reader::new(&[TAG_RLE_U32, 10, 2, 2, 1]), 3, &mut back)
            .map_err(|e| e.to_string())
            .ok();
        assert_eq!(back, [5, 5, 6]);
    }

    /// The two-width body as builds before the one-pass writer wrote it (the reference the
    /// one-pass writer must equal byte for byte).
    fn put_two_widths_reference(out: &mut Vec<u8>, g: u64, deltas: &[u64]) {
        codec::put_varint(out, g);
        let (ws, wl, _) = narrow_width(deltas);
        out.push(ws as u8);
        out.push(wl as u8);
        if ws < wl {
            put_bits(out, deltas.iter().map(|&d| bit_len(d) > ws));
        }
        put_packed(out, deltas.iter().copied().filter(|&d| bit_len(d) <= ws), ws);
        put_packed(out, deltas.iter().copied().filter(|&d| bit_len(d) > ws), wl);
        out.resize(out.len() + BITS_PAD, 0);
    }

    /// Appends `vals` LSB-first, `w` bits each, to a bit stream of whole bytes.
    fn put_packed(out: &mut Vec<u8>, vals: impl Iterator<Item = u64>, w: usize) {
        // Eight bytes at a time: k < 64 before a value is added and w ≤ 64, so k + w ≤ 128.
        let mut acc = 0u128;
        let mut k = 0usize;
        for v in vals {
            acc |= u128::from(v) << k;
            k += w;
            if k >= 64 {
                out.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                k -= 64;
            }
        }
        while k > 0 {
            out.push(acc as u8);
            acc >>= 8;
            k = k.saturating_sub(8);
        }
    }

    /// Every width, every count around a group of eight: the fixed-width unpackers (1–56
    /// bits) and the generic one (57–64) read back what `put_packed` wrote.
    #[test]
    fn unpack_reads_every_width_and_count() {
        for w in 0..=64usize {
            for count in [0usize, 1, 7, 8, 9, 16, 23, 64, 65] {
                let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
                let vals: Vec<u64> = (0..count as u64)
                    .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) & mask)
                    .collect();
                let mut buf = Vec::new();
                put_packed(&mut buf, vals.iter().copied(), w);
                buf.resize(buf.len() + BITS_PAD, 0);
                let mut got = Vec::new();
                unpack(&buf, count, w, &mut got);
                assert_eq!(got.pop(), Some(0), "width {w}, count {count}: no trailing 0");
                assert_eq!(got, vals, "width {w}, count {count}");
            }
        }
    }

    /// Two gap sizes take the narrow width plus a selector; one size takes no selector.
    #[test]
    fn delta_bits_picks_two_widths_for_two_gap_sizes() {
        let mut vals = vec![0i64];
        for i in 0..1000 {
            let gap = if i % 2 == 0 { 100 } else { 1 << 30 };
            vals.push(vals[vals.len() - 1] + gap);
        }
        let mut out = Vec::new();
        put_delta_bits_i64(&mut out, &vals);
        // tag, first, g varint (gcd 4: one byte), ws, wl: 25 zigzags to 50 (6 bits), 2^28 to
        // 2^29 (30 bits).
        assert_eq!((out[10], out[11]), (6, 30));
        // 1,000 selector bits, 500 narrow values of 6 bits, 500 wide of 30, the padding.
        assert_eq!(out.len(), 12 + 125 + 375 + 1875 + BITS_PAD);
        let mut back = Vec::new();
        assert!(get_timestamps(&mut Reader::new(&out), vals.len(), &[], &mut back).is_ok());
        assert_eq!(back, vals);
    }

    proptest! {
        /// The vector merge (where the CPU has AVX-512) equals the one-row-at-a-time merge.
        #[test]
        fn merge_paths_agree(
            bits in proptest::collection::vec(any::<bool>(), 0..300),
            vals in proptest::collection::vec(any::<u64>(), 301),
            first in any::<i64>(),
            g in prop_oneof![Just(1i64), Just(1000), any::<i64>()],
        ) {
            let m = bits.len();
            let mut sel = vec![0u8; m.div_ceil(8)];
            for (i, _) in bits.iter().enumerate().filter(|b| *b.1) {
                sel[i / 8] |= 1 << (i % 8);
            }
            let wide = bits.iter().filter(|&&b| b).count();
            let mut large = vals[..wide].to_vec();
            large.push(0);
            let mut small = vals[wide..m].to_vec();
            small.push(0);
            let mut fast = vec![0i64; m];
            merge_deltas(&sel, &small, &large, first, g, &mut fast);
            let mut slow = vec![0i64; m];
            merge_deltas_scalar(&sel, &small, &large, first, g, &mut slow);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn rle_roundtrip(mut v in proptest::collection::vec(0u32..50, 0..300)) {
            v.sort_unstable();
            let mut out = Vec::new();
            put_rle_u32(&mut out, &v);
            let mut back = Vec::new();
            let mut ends = Vec::new();
            get_rle_u32_runs(&mut Reader::new(&out), v.len(), &mut back, Some(&mut ends)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // One run per distinct value, ending where the value changes.
            let want: Vec<u32> = (1..=v.len()).filter(|&i| i == v.len() || v[i] != v[i - 1]).map(|i| i as u32).collect();
            prop_assert_eq!(ends, want);
            prop_assert_eq!(back, v);
        }

        #[test]
        fn exact_division_equals_dividing(q in any::<i64>(), g in 1u64..u64::MAX, tiny in 1u64..70) {
            // Any multiple of g in i64 range: q × g when it does not overflow.
            if let Some(x) = q.checked_mul(g as i64).filter(|_| g <= i64::MAX as u64) {
                prop_assert_eq!(ExactDiv::new(g).div(x), x / g as i64);
            }
            let small = (g % 1_000_001).max(1);
            let x = (q % 1_000_000_000).wrapping_mul(small as i64);
            prop_assert_eq!(ExactDiv::new(small).div(x), x / small as i64);
            // Divisibility, of multiples and of anything.
            let cases = [
                (g, q as u64),
                (small, q as u64),
                (small, x.unsigned_abs()),
                (g, q.unsigned_abs().wrapping_mul(g)),
                (tiny, q as u64),
                (tiny, (q as u64).wrapping_mul(tiny)),
                (tiny << 20, q as u64),
                // The largest multiples (the bound itself).
                (tiny, u64::MAX / tiny * tiny),
                (g, u64::MAX / g * g),
            ];
            for (d, x) in cases {
                prop_assert_eq!(ExactDiv::new(d).divides(x), x % d == 0, "{} divides {}", d, x);
            }
        }

        #[test]
        fn delta_roundtrip(v in proptest::collection::vec(any::<i64>(), 0..100), scale in 1i64..1000) {
            for vals in [v.clone(), v.iter().map(|x| (x / 1_000_000).wrapping_mul(scale)).collect()] {
                let mut out = Vec::new();
                put_delta_i64(&mut out, &vals);
                let mut back = Vec::new();
                get_delta_i64(&mut Reader::new(&out), vals.len(), &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back, vals);
            }
        }

        #[test]
        /// The one-pass two-width writer writes what the four-pass one wrote: deltas of
        /// two sizes (sessions and gaps), of one size, zeros, and up to 64 bits.
        fn two_widths_one_pass_equals_four(
            deltas in proptest::collection::vec(prop_oneof![
                0u64..4,
                0u64..5_000,
                1_000_000u64..1u64 << 40,
                any::<u64>(),
            ], 0..300),
            g in 1u64..1000,
        ) {
            let (mut one, mut four) = (vec![7u8], vec![7u8]);
            put_two_widths(&mut one, g, &deltas);
            put_two_widths_reference(&mut four, g, &deltas);
            prop_assert_eq!(one, four);
        }

        #[test]
        fn delta_bits_roundtrip(
            v in proptest::collection::vec(any::<i64>(), 0..200),
            gaps in proptest::collection::vec((0u32..3, 0i64..1_000_000_000), 0..300),
            scale in 1i64..1000,
        ) {
            // Arbitrary values (widths up to 64 bits) and sorted runs with two kinds of gap.
            let mut t = 1_700_000_000_000_000i64;
            let runs: Vec<i64> = gaps
                .iter()
                .map(|&(kind, g)| {
                    t += match kind { 0 => g % 1000, 1 => g, _ => -g / 7 } * scale;
                    t
                })
                .collect();
            for vals in [v, runs] {
                let mut out = Vec::new();
                put_delta_bits_i64(&mut out, &vals);
                let mut back = vec![7];
                let mut r = Reader::new(&out);
                get_timestamps(&mut r, vals.len(), &[], &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(r.finish().is_ok());
                prop_assert_eq!(back, vals);
            }
        }

        /// Tag 9 (timestamps restarted at each customer's first row) decodes whole to the
        /// written values, and read lazily from any run's first row gives that run's values.
        #[test]
        fn delta_bits_runs_roundtrip_and_lazy(
            rows in proptest::collection::vec((0u32..4, 0u32..3, 0i64..1_000_000_000), 0..400),
            scale in prop_oneof![Just(1i64), Just(1000), 1i64..5000],
            wild in any::<bool>(),
        ) {
            // Customers ascend (a step of 0 continues the run); time sorted within a customer
            // with two kinds of gap, or arbitrary values (wide widths, wrapping differences).
            let mut cid = 0u32;
            let mut t = 1_700_000_000_000_000i64;
            let (mut cids, mut vals) = (Vec::new(), Vec::new());
            for (i, &(step, kind, g)) in rows.iter().enumerate() {
                if step > 0 || i == 0 {
                    cid += step;
                    t = 1_700_000_000_000_000 + (g % 90_000) * 1_000_000 * scale / 1000;
                }
                t += match kind { 0 => g % 1000, 1 => g, _ => g / 7 } * scale;
                cids.push(cid);
                vals.push(if wild { g.wrapping_mul(0x9e37_79b9_7f4a_7c15u64 as i64) } else { t });
            }
            let mut out = Vec::new();
            put_delta_bits_runs_i64(&mut out, &vals, &cids);
            let mut ends = Vec::new();
            let mut rle = Vec::new();
            put_rle_u32(&mut rle, &cids);
            let mut back_cids = Vec::new();
            get_rle_u32_runs(&mut Reader::new(&rle), cids.len(), &mut back_cids, Some(&mut ends)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut back = vec![7];
            let mut r = Reader::new(&out);
            get_timestamps(&mut r, vals.len(), &ends, &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(r.finish().is_ok());
            prop_assert_eq!(&back, &vals);
            let lazy = TsRuns::parse(&out, vals.len()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match lazy {
                None => {
                    let two = TwoWidths::parse(&mut Reader::new(&out), vals.len(), TAG_DELTA_BITS_RUNS).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(two.wl > 56, "tag 9 of {} bits not read lazily", two.wl);
                }
                Some(lazy) => {
                    let mut a = 0usize;
                    for &end in &ends {
                        let got: Vec<i64> = lazy.run(a).take(end as usize - a).collect();
                        prop_assert_eq!(&got[..], &vals[a..end as usize], "run at row {}", a);
                        a = end as usize;
                    }
                }
            }
        }

        /// Stage codes round-trip through [`put_stages`]: as a map by event when every event
        /// has one stage, else as codes; a map needs the event ids.
        #[test]
        fn stages_roundtrip(
            rows in proptest::collection::vec((0u32..40, 0u8..6), 0..300),
            follow in any::<bool>(),
            big in any::<bool>(),
        ) {
            let events: Vec<u32> = rows.iter().map(|&(e, _)| if big { e * 1_000 } else { e }).collect();
            // Stages that follow the event, or arbitrary ones.
            let stages: Vec<u8> = rows.iter().map(|&(e, s)| if follow { (e % 6) as u8 } else { s }).collect();
            let mut out = Vec::new();
            put_stages(&mut out, &stages, &events);
            let derivable = stage_map(&stages, &events).is_some();
            prop_assert_eq!(out.first() == Some(&TAG_BY_EVENT), derivable);
            prop_assert!(!follow || rows.is_empty() || derivable);
            let mut back = vec![9];
            let mut r = Reader::new(&out);
            get_stages(&mut r, stages.len(), Some(&events), &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(r.finish().is_ok());
            prop_assert_eq!(&back, &stages);
            if derivable {
                prop_assert!(get_stages(&mut Reader::new(&out), stages.len(), None, &mut back).is_err());
                // An event the map lacks is corruption, not a panic or a guess.
                let mut other = events.clone();
                other[0] = 39_999_999;
                prop_assert!(get_stages(&mut Reader::new(&out), stages.len(), Some(&other), &mut back).is_err());
            }
        }

        #[test]
        fn width_roundtrip(v in proptest::collection::vec(any::<u32>(), 0..100), shift in 0u32..32) {
            let vals: Vec<u32> = v.iter().map(|x| x >> shift).collect();
            let mut out = Vec::new();
            put_width_u32(&mut out, &vals);
            let mut back = Vec::new();
            get_width_u32(&mut Reader::new(&out), vals.len(), &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, vals);
        }

        #[test]
        fn float_prop_roundtrip(v in proptest::collection::vec(proptest::option::of(prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (-100000i64..100000).prop_map(|c| c as f64 / 100.0),
        ]), 0..100)) {
            let mut col = PropColumn::new(3, PropType::F64);
            for x in &v {
                col.valid.push(x.is_some());
                col.vals.push(x.map_or(0, f64::to_bits));
            }
            let mut out = Vec::new();
            put_prop(&mut out, &col);
            let back = get_prop(&mut Reader::new(&out), v.len(), 3, PropType::F64).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, col);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..100) {
            let mut o32 = Vec::new();
            let mut o64 = Vec::new();
            let _ = get_rle_u32(&mut Reader::new(&bytes), n, &mut o32);
            let _ = get_delta_i64(&mut Reader::new(&bytes), n, &mut o64);
            let _ = get_timestamps(&mut Reader::new(&bytes), n, &[], &mut o64);
            let half = [(n / 2) as u32, n as u32];
            let _ = get_timestamps(&mut Reader::new(&bytes), n, &half, &mut o64);
            let mut runs_tagged = bytes.clone();
            runs_tagged.insert(0, TAG_DELTA_BITS_RUNS);
            let _ = get_timestamps(&mut Reader::new(&runs_tagged), n, &half, &mut o64);
            if let Ok(Some(lazy)) = TsRuns::parse(&runs_tagged, n) {
                let _ = lazy.run(n / 2).take(n).count();
            }
            let mut tagged = bytes.clone();
            tagged.insert(0, TAG_DELTA_BITS);
            let _ = get_delta_bits_i64(&mut Reader::new(&tagged), n, &mut o64);
            let _ = get_width_u32(&mut Reader::new(&bytes), n, &mut o32);
            let mut by_event = bytes.clone();
            by_event.insert(0, TAG_BY_EVENT);
            let ids: Vec<u32> = (0..n as u32).collect();
            let mut o8 = Vec::new();
            let _ = get_stages(&mut Reader::new(&by_event), n, Some(&ids), &mut o8);
            for ty in [PropType::Str, PropType::I64, PropType::F64, PropType::Bool] {
                let _ = get_prop(&mut Reader::new(&bytes), n, 0, ty);
            }
        }
    }
}
