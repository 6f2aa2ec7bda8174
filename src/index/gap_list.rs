//! How one bitmap is stored: roaring's portable form, or a gap list when that is smaller.
//!
//! Uses: `codec`.

use crate::codec::{self, DecodeError, Reader};
use roaring::RoaringBitmap;

/// Flag in a bitmap's length word: the bytes are a gap list, not the roaring serialization.
pub(super) const GAP_LIST: u32 = 1 << 31;

/// Appends `set` as `len u32 | bytes`: the roaring portable serialization, or — flag
/// [`GAP_LIST`] in `len` — the varint of each member minus the previous one (the first minus
/// zero) when that is smaller (sparse sets: a customer set of one event name on one day takes
/// about a byte per member instead of two).
pub(super) fn put(out: &mut Vec<u8>, set: &RoaringBitmap) -> std::io::Result<()> {
    let roaring = set.serialized_size();
    // Sets over an eighth of their range are bitmaps (a bit per id) anyway: not tried.
    let sparse = set.max().is_some_and(|m| set.len() < u64::from(m) / 8 + 4096);
    let start = out.len();
    if sparse {
        codec::put_u32(out, 0);
        let mut prev = 0u32;
        // Members taken 256 at a time (`next_many`: a copy out of each container) rather than
        // one by one: at 10M events the one-by-one iterator was ~30 % of the index encoding.
        // Their varints are written into a local buffer, then appended at once. But roaring
        // 0.12's `next_many` overflows (`end - start + 1` in u16: a panic with overflow checks)
        // on a run container that spans all 65,536 values, so a bitmap with run containers
        // (made by `insert_range`, or read from a file) is walked one member at a time.
        let runs = set.statistics().n_run_containers > 0;
        let (mut members, mut batch, mut bytes) = (set.iter(), [0u32; 256], [0u8; 256 * 5]);
        loop {
            let got = if runs {
                let mut k = 0;
                // `zip` asks the slots first: no member is taken past the last slot.
                for (slot, v) in batch.iter_mut().zip(members.by_ref()) {
                    *slot = v;
                    k += 1;
                }
                &batch[..k]
            } else {
                &*members.next_many(&mut batch)
            };
            if got.is_empty() {
                break;
            }
            let mut n = 0;
            for &v in got.iter() {
                let mut gap = v - prev;
                prev = v;
                while gap >= 0x80 {
                    bytes[n] = (gap as u8) | 0x80;
                    gap >>= 7;
                    n += 1;
                }
                bytes[n] = gap as u8;
                n += 1;
            }
            out.extend_from_slice(&bytes[..n]);
            // Past the roaring form's size the gap list is not used: stop encoding it.
            if out.len() - start - 4 >= roaring {
                break;
            }
        }
        let gaps = out.len() - start - 4;
        if gaps < roaring && gaps < GAP_LIST as usize {
            out[start..start + 4].copy_from_slice(&(gaps as u32 | GAP_LIST).to_le_bytes());
            return Ok(());
        }
        out.truncate(start);
    }
    codec::put_u32(out, roaring as u32);
    set.serialize_into(&mut *out)
}

/// Reads what [`put`] wrote (either form).
pub(super) fn get(reader: &mut Reader<'_>) -> Result<RoaringBitmap, DecodeError> {
    let word = reader.u32()?;
    let len = (word & !GAP_LIST) as usize;
    let at = reader.pos();
    let bytes = reader.bytes(len)?;
    if word & GAP_LIST == 0 {
        return RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| DecodeError::new(at, format!("bitmap: {e}")));
    }
    let mut g = Reader::new(bytes);
    // At most one member per byte.
    let mut members = Vec::with_capacity(len);
    let mut prev: Option<u32> = None;
    while g.remaining() > 0 {
        let gap = g.varint().map_err(|e| DecodeError::new(at + e.offset, e.what))?;
        let v = match prev {
            None => u32::try_from(gap).ok(),
            // Members ascend strictly: a gap of 0 would repeat one.
            Some(p) if gap > 0 => u32::try_from(gap).ok().and_then(|gap| p.checked_add(gap)),
            Some(_) => None,
        }
        .ok_or_else(|| DecodeError::new(at + g.pos(), "bitmap gap list: member out of order or range"))?;
        members.push(v);
        prev = Some(v);
    }
    RoaringBitmap::from_sorted_iter(members)
        .map_err(|e| DecodeError::new(at, format!("bitmap gap list: {e}")))
}
