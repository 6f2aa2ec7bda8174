//! Bytes only: a bounds-checked little-endian reader, an appending writer, LEB128 varints,
//! zigzag, CRC-32 framing and bounded zstd. Nothing here knows about files or events.
//!
//! Uses: no other module of the crate.

use bytes::BufMut;

/// Why a byte string could not be decoded; `offset` is relative to the decoded slice and
/// becomes a file offset in the layer that knows the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct DecodeError {
    /// Offset inside the decoded slice.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
}

impl DecodeError {
    /// A new error.
    pub fn new(offset: usize, what: impl Into<String>) -> Self {
        DecodeError {
            offset,
            what: what.into(),
        }
    }
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at offset 0.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error at the current offset.
    pub fn err(&self, what: impl Into<String>) -> DecodeError {
        DecodeError::new(self.pos, what)
    }

    /// The next `count` bytes.
    pub fn bytes(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(count)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: need {count} bytes, {} left",
                    self.remaining()
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A little-endian i64.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A little-endian i32.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// An unsigned LEB128 varint (at most 10 bytes, no overflow).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // One-byte values (the common case in run lengths and small deltas).
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut out = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.err("varint overflows u64"));
            }
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err("varint longer than 10 bytes"));
            }
        }
    }

    /// A varint that must fit in u32.
    pub fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err(format!("value {v} exceeds u32")))
    }

    /// A varint length, bounded by `max` and by the bytes left.
    pub fn len_prefix(&mut self, max: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        if v > max as u64 || v > self.remaining() as u64 {
            return Err(self.err(format!("length {v} exceeds limit or data")));
        }
        Ok(v as usize)
    }

    /// A varint-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let n = self.len_prefix(max)?;
        let at = self.pos;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::new(at, "invalid UTF-8"))
    }

    /// Requires that every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint-length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Appends a little-endian u32.
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.put_u32_le(value);
}
/// Appends a little-endian u64.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.put_u64_le(value);
}
/// Appends a little-endian i64.
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.put_i64_le(value);
}
/// Appends a little-endian i32.
pub fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.put_i32_le(value);
}

/// Zigzag-maps a signed value so that small magnitudes give small varints.
#[inline]
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Size of a frame header: payload length u32 + crc32 u32.
pub const FRAME_HEADER: usize = 8;

/// Appends `len u32 | crc32(payload) u32 | payload`.
pub fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    put_u32(out, payload.len() as u32);
    put_u32(out, crc32(payload));
    out.extend_from_slice(payload);
}

/// What was found at a frame position.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame with a good checksum; `next` is the offset after it.
    Good {
        /// The payload.
        payload: &'a [u8],
        /// Offset of the next frame.
        next: usize,
    },
    /// The frame runs past the end of the data.
    Truncated,
    /// The frame is whole but its checksum (or length) is wrong; `next` is where the frame
    /// claims to end.
    Bad {
        /// Offset where the frame claims to end.
        next: usize,
    },
}

/// Reads the frame at `at` in `buf`, with payloads bounded by `max`.
pub fn read_frame(buf: &[u8], at: usize, max: usize) -> Frame<'_> {
    let Some(header) = buf.get(at..at.saturating_add(FRAME_HEADER)) else {
        return Frame::Truncated;
    };
    let mut r = Reader::new(header);
    let (Ok(len), Ok(crc)) = (r.u32(), r.u32()) else {
        return Frame::Truncated;
    };
    let len = len as usize;
    let start = at + FRAME_HEADER;
    let end = start.saturating_add(len);
    if len > max {
        return if end > buf.len() {
            Frame::Truncated
        } else {
            Frame::Bad { next: end }
        };
    }
    let Some(payload) = buf.get(start..end) else {
        return Frame::Truncated;
    };
    if len == 0 || crc32(payload) != crc {
        return Frame::Bad { next: end };
    }
    Frame::Good { payload, next: end }
}

/// zstd-compresses `raw` at `level`.
pub fn compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(raw, level)
}

/// The first four bytes of every zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Decompresses one zstd frame that records its content size (as [`compress`] writes it),
/// which must be at most `max` bytes.
pub fn decompress_frame(stored: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let size = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        Ok(None) => return Err(DecodeError::new(0, "zstd frame without its content size")),
        Err(_) => return Err(DecodeError::new(0, "not a zstd frame")),
    };
    decompress_into(stored, size, max, out)
}

/// A zstd compression context kept across calls (creating one per chunk allocates and clears
/// its tables every time).
pub struct Compressor(zstd::bulk::Compressor<'static>);

impl Compressor {
    /// A context compressing at `level`.
    pub fn new(level: i32) -> std::io::Result<Compressor> {
        Ok(Compressor(zstd::bulk::Compressor::new(level)?))
    }

    /// As [`compress`]: one standard zstd frame.
    pub fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        self.0.compress(raw)
    }
}

/// zstd-decompresses `stored`, which must expand to exactly `raw_len` bytes (`raw_len` is
/// checked against `max` first, so a corrupt length cannot cause a huge allocation).
pub fn decompress(stored: &[u8], raw_len: usize, max: usize) -> Result<Vec<u8>, DecodeError> {
    if raw_len > max {
        return Err(DecodeError::new(0, format!("raw length {raw_len} exceeds {max}")));
    }
    let out =
        zstd::bulk::decompress(stored, raw_len).map_err(|e| DecodeError::new(0, format!("zstd: {e}")))?;
    if out.len() != raw_len {
        return Err(DecodeError::new(
            0,
            format!("decompressed {} bytes, expected {raw_len}", out.len()),
        ));
    }
    Ok(out)
}

thread_local! {
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Like [`decompress`], into a reused buffer and with a reused (per-thread) zstd context.
pub fn decompress_into(
    stored: &[u8],
    raw_len: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if raw_len > max {
        return Err(DecodeError::new(0, format!("raw length {raw_len} exceeds {max}")));
    }
    out.clear();
    out.reserve(raw_len);
    let got = DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(stored, out),
            None => Err(std::io::Error::other("no zstd context")),
        }
    });
    match got {
        Ok(n) if n == raw_len => Ok(()),
        Ok(n) => Err(DecodeError::new(
            0,
            format!("decompressed {n} bytes, expected {raw_len}"),
        )),
        Err(e) => Err(DecodeError::new(0, format!("zstd: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_roundtrip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.varint().ok(), Some(v));
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn zigzag_roundtrip(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint();
            let _ = r.str(16);
            let _ = r.u64();
            let _ = read_frame(&bytes, 0, 32);
        }
    }

    #[test]
    fn varint_rejects_overflow() {
        let bytes = [0xff; 10];
        assert!(Reader::new(&bytes).varint().is_err());
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
    }

    #[test]
    fn frame_detects_flip_and_truncation() {
        let mut out = Vec::new();
        put_frame(&mut out, b"hello");
        assert!(matches!(
            read_frame(&out, 0, 100),
            Frame::Good {
                payload: b"hello",
                next: 13
            }
        ));
        assert_eq!(read_frame(&out[..12], 0, 100), Frame::Truncated);
        let mut flipped = out.clone();
        flipped[10] ^= 1;
        assert_eq!(read_frame(&flipped, 0, 100), Frame::Bad { next: 13 });
    }
}
