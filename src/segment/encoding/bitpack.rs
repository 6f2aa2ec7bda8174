//! Bit packing: fixed widths (tags 3/4/5), values of 1, 2 or 4 bits (tag 8), one-byte values
//! (stage codes), and the two-width packing that the timestamp encodings build on.
//!
//! Uses: `codec`; rooms `encoding`.

use super::{BITS_PAD, TAG_SUB_BYTE, TAG_W8, TAG_W16, TAG_W32, bit_len, le_words, tag};
use crate::codec::{self, DecodeError, Reader};
use crate::segment::encoding::delta::delta_header;
use crate::segment::encoding::timestamps::merge_deltas;

/// The narrow width `ws ≤ wl` (`wl` = the widest value's) that minimises the size of the
/// two-width code: a selector bit per value when `ws < wl`, `ws` bits per value that fits,
/// `wl` per value that does not. Returns `(ws, wl, values that fit in ws bits)`.
pub(in crate::internals::segment) fn narrow_width(deltas: &[u64]) -> (usize, usize, usize) {
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
pub(in crate::internals::segment) struct BitSink<'a> {
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

    /// Appends `value` (< 2^w, w ≤ 64) at `width` bits when `on`, else nothing — without a branch on
    /// `on`, which follows the data (a delta's width) too irregularly to predict.
    #[inline(always)]
    fn push_if(&mut self, on: bool, value: u64, width: usize) {
        let keep = u64::from(on).wrapping_neg();
        self.acc |= u128::from(value & keep) << self.k;
        self.k += width & keep as usize;
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
pub(in crate::internals::segment) fn packed_len(count: usize, width: usize) -> Option<usize> {
    Some(count.checked_mul(width)?.div_ceil(8))
}

/// The body of tags 7 and 9 after the first value: `g`, the widths, the selector, the streams
/// and the padding.
///
/// One pass writes the selector and both streams into their places (their sizes follow from
/// the widths), where four passes — the selector, then each stream through a filter whose
/// branch mispredicted at every session start — took a fifth of the writer's time.
pub(in crate::internals::segment) fn put_two_widths(out: &mut Vec<u8>, gap: u64, deltas: &[u64]) {
    codec::put_varint(out, gap);
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
pub(in crate::internals::segment) fn unpack(buf: &[u8], count: usize, width: usize, out: &mut Vec<u64>) {
    out.clear();
    out.reserve(count + 1);
    // A width known at compile time unpacks eight values per `width` bytes with constant shifts.
    let done = match width {
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
    unpack_from(buf, done, count, width, out);
    out.push(0);
}

/// Unpacks whole groups of eight `W`-bit values (a group is `W` bytes) while the group and
/// the 8 bytes after it lie inside `buf`; returns how many values it unpacked.
pub(in crate::internals::segment) fn unpack_fixed<const W: usize>(
    buf: &[u8],
    count: usize,
    out: &mut Vec<u64>,
) -> usize {
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
pub(in crate::internals::segment) fn unpack_from(
    buf: &[u8],
    from: usize,
    count: usize,
    width: usize,
    out: &mut Vec<u64>,
) {
    if width <= 56 {
        let mask = (1u64 << width) - 1;
        out.extend((from..count).map(|k| {
            let pos = k * width;
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
            let pos = k * width;
            let at = pos / 8;
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = buf.get(at + i).copied().unwrap_or(0);
            }
            let word = u128::from_le_bytes(b) >> (pos % 8);
            (word & ((1u128 << width) - 1)) as u64
        }));
    }
}

thread_local! {
    /// Unpacked narrow and wide deltas, reused across blocks on one thread.
    static UNPACKED: std::cell::RefCell<(Vec<u64>, Vec<u64>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// The parsed layout of a tag 7 or tag 9 chunk (see [`put_delta_bits_i64`]), lengths checked.
pub(in crate::internals::segment) struct TwoWidths<'a> {
    pub(in crate::internals::segment) first: i64,
    pub(in crate::internals::segment) g: i64,
    pub(in crate::internals::segment) ws: usize,
    pub(in crate::internals::segment) wl: usize,
    /// The selector bytes (empty when `ws = wl`).
    pub(in crate::internals::segment) sel: &'a [u8],
    /// Deltas that are wide.
    wide: usize,
    /// The narrow stream, then the wide one, then the padding.
    pub(in crate::internals::segment) streams: &'a [u8],
    /// Bytes of the narrow stream.
    pub(in crate::internals::segment) small_len: usize,
}

impl<'a> TwoWidths<'a> {
    /// Parses a chunk of tag `want` and `n` rows, checking every length against the data.
    pub(in crate::internals::segment) fn parse(
        reader: &mut Reader<'a>,
        count: usize,
        want: u8,
    ) -> Result<TwoWidths<'a>, DecodeError> {
        let (first, g) = delta_header(reader, want)?;
        let ws = reader.u8()? as usize;
        let wl = reader.u8()? as usize;
        if ws > wl || wl > 64 {
            return Err(reader.err(format!("delta widths {ws}/{wl}")));
        }
        let m = count.saturating_sub(1);
        let sel = if ws < wl {
            reader.bytes(m.div_ceil(8))?
        } else {
            &[][..]
        };
        if !m.is_multiple_of(8) && sel.last().is_some_and(|&b| b >> (m % 8) != 0) {
            return Err(reader.err("selector bits past the last row"));
        }
        // Counted 8 bytes at a time: without a POPCNT instruction in the baseline target, each
        // count is a multiply-and-shift sequence, as long for a byte as for a word.
        let wide = le_words(sel).map(|w| w.count_ones() as usize).sum::<usize>();
        let small_len = packed_len(m - wide, ws).ok_or_else(|| reader.err("row count overflow"))?;
        let large_len = packed_len(wide, wl).ok_or_else(|| reader.err("row count overflow"))?;
        // The narrow stream, the wide stream and the padding, contiguous: every value starts at
        // least 8 bytes before the end, so one 8-byte load reads any value of at most 56 bits.
        let streams = reader.bytes(small_len.saturating_add(large_len).saturating_add(BITS_PAD))?;
        if streams[small_len + large_len..].iter().any(|&b| b != 0) {
            return Err(reader.err("non-zero padding"));
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
    pub(in crate::internals::segment) fn decode(&self, count: usize, out: &mut Vec<i64>) {
        out.clear();
        if count == 0 {
            return;
        }
        let m = count - 1;
        UNPACKED.with(|cell| {
            let (small, large) = &mut *cell.borrow_mut();
            unpack(self.streams, m - self.wide, self.ws, small);
            unpack(&self.streams[self.small_len..], self.wide, self.wl, large);
            out.resize(count, 0);
            out[0] = self.first;
            merge_deltas(self.sel, small, large, self.first, self.g, &mut out[1..]);
        });
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

/// Tag 8: values below 16 (`max` the largest) at 1, 2 or 4 bits, low bits first, never
/// across a byte. zstd then sees half the bytes or fewer, which measured both smaller and
/// twice as fast to decompress on event ids (docs/FORMAT.md §5.1).
pub(in crate::internals::segment) fn put_sub_byte<T: Copy + Into<u32>>(
    out: &mut Vec<u8>,
    vals: &[T],
    max: u32,
) {
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
pub(in crate::internals::segment) fn get_sub_byte<T: Clone>(
    reader: &mut Reader<'_>,
    count: usize,
    out: &mut Vec<T>,
    from: impl Fn(u8) -> T,
) -> Result<(), DecodeError> {
    let w = usize::from(reader.u8()?);
    if ![1, 2, 4].contains(&w) {
        return Err(reader.err(format!("sub-byte width {w}")));
    }
    let per = 8 / w;
    let bytes = reader.bytes(count.div_ceil(per))?;
    if !count.is_multiple_of(per) && bytes.last().is_some_and(|&b| b >> ((count % per) * w) != 0) {
        return Err(reader.err("sub-byte values past the last row"));
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
    out.truncate(start + count);
    Ok(())
}

/// The packed bytes of a tag 8 chunk of `count` 4-bit values (event ids below 16), checked as
/// [`get_width_u32`] checks them, for readers that take values straight from the nibbles
/// ([`Nibbles`]); `None` for any other encoding.
pub fn nibbles(bytes: &[u8], count: usize) -> Result<Option<&[u8]>, DecodeError> {
    if bytes.first() != Some(&TAG_SUB_BYTE) || bytes.get(1) != Some(&4) {
        return Ok(None);
    }
    let mut r = Reader::new(bytes);
    r.bytes(2)?;
    let packed = r.bytes(count.div_ceil(2))?;
    r.finish()?;
    if count % 2 == 1 && packed.last().is_some_and(|&b| b >> 4 != 0) {
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

/// Decodes [`put_width_u32`] output of exactly `count` rows.
pub fn get_width_u32(reader: &mut Reader<'_>, count: usize, out: &mut Vec<u32>) -> Result<(), DecodeError> {
    let t = tag(reader, &[TAG_W8, TAG_W16, TAG_W32, TAG_SUB_BYTE])?;
    out.clear();
    match t {
        TAG_SUB_BYTE => get_sub_byte(reader, count, out, u32::from)?,
        TAG_W8 => out.extend(reader.bytes(count)?.iter().map(|&b| u32::from(b))),
        TAG_W16 => {
            let b = reader.bytes(
                count
                    .checked_mul(2)
                    .ok_or_else(|| reader.err("row count overflow"))?,
            )?;
            out.extend(
                b.chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
            );
        }
        _ => {
            let b = reader.bytes(
                count
                    .checked_mul(4)
                    .ok_or_else(|| reader.err("row count overflow"))?,
            )?;
            out.extend(
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }
    Ok(())
}

/// Decodes [`put_u8s`] output of exactly `count` rows.
pub fn get_u8s(reader: &mut Reader<'_>, count: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let t = tag(reader, &[TAG_W8, TAG_SUB_BYTE])?;
    out.clear();
    if t == TAG_SUB_BYTE {
        return get_sub_byte(reader, count, out, |b| b);
    }
    out.extend_from_slice(reader.bytes(count)?);
    Ok(())
}

pub(in crate::internals::segment) fn put_bits(out: &mut Vec<u8>, bits: impl ExactSizeIterator<Item = bool>) {
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

pub(in crate::internals::segment) fn get_bits(
    reader: &mut Reader<'_>,
    count: usize,
) -> Result<Vec<bool>, DecodeError> {
    Ok(bits_of(reader.bytes(count.div_ceil(8))?, count))
}

/// The first `count` bits of `bytes` (low bit first), as [`put_bits`] wrote them.
pub(in crate::internals::segment) fn bits_of(bytes: &[u8], count: usize) -> Vec<bool> {
    (0..count).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect()
}
