//! Property columns (tag 6): a validity bitmap, then the values in the encoding their type and
//! spread choose.
//!
//! Uses: `codec`, `model`; rooms `encoding`.

use super::{TAG_PROP, tag};
use crate::codec::{self, DecodeError, Reader};
use crate::model::{PropColumn, PropType};
use crate::segment::encoding::bitpack::{get_bits, get_width_u32, put_bits, put_width_u32};
use crate::segment::encoding::delta::{get_delta_i64, put_delta_i64};

/// The smallest decimal scale k (0..=6) at which every value is an integer that round-trips.
pub(in crate::internals::segment) fn decimal_scale(vals: &[f64]) -> Option<u32> {
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

/// Decodes [`put_prop`] output of exactly `rows` rows into a column with id `id`.
pub fn get_prop(
    reader: &mut Reader<'_>,
    rows: usize,
    id: u32,
    ty: PropType,
) -> Result<PropColumn, DecodeError> {
    let mut col = PropColumn::new(id, ty);
    get_prop_into(reader, rows, &mut col, &mut PropScratch::default())?;
    Ok(col)
}

/// Buffers [`get_prop_into`] decodes through, kept across blocks: a block's column is
/// hundreds of kilobytes, and allocating it afresh per property per block made the allocator
/// hand pages back and fault them in again (18 % of ATTRIBUTION's time on time-ordered data).
#[derive(Default)]
pub struct PropScratch {
    ids: Vec<u32>,
    ints: Vec<i64>,
    vals: Vec<u64>,
}

/// Decodes [`put_prop`] output of exactly `rows` rows into `col`, whose id and type the caller
/// set, reusing its allocations and `scratch`'s.
pub fn get_prop_into(
    reader: &mut Reader<'_>,
    rows: usize,
    col: &mut PropColumn,
    scratch: &mut PropScratch,
) -> Result<(), DecodeError> {
    tag(reader, &[TAG_PROP])?;
    if PropType::from_code(reader.u8()?) != Some(col.ty) {
        return Err(reader.err("property type disagrees with the footer"));
    }
    // The validity bits as stored (`None`: every row valid).
    let bits = match reader.u8()? {
        0 => None,
        1 => Some(reader.bytes(rows.div_ceil(8))?),
        m => return Err(reader.err(format!("validity mode {m}"))),
    };
    col.valid.clear();
    match bits {
        None => col.valid.resize(rows, true),
        Some(bits) => col
            .valid
            .extend((0..rows).map(|row| bits[row / 8] >> (row % 8) & 1 == 1)),
    }
    let count = match bits {
        None => rows,
        Some(_) => col.valid.iter().filter(|&&v| v).count(),
    };
    // Every row valid: the values are the column; otherwise they are spread to their rows.
    let vals = match bits {
        None => &mut col.vals,
        Some(_) => &mut scratch.vals,
    };
    get_values(reader, count, col.ty, vals, &mut scratch.ids, &mut scratch.ints)?;
    if let Some(bits) = bits {
        spread(&scratch.vals, bits, rows, &mut col.vals);
    }
    Ok(())
}

/// The `count` stored values of a column of type `ty`, as value slots.
fn get_values(
    reader: &mut Reader<'_>,
    count: usize,
    ty: PropType,
    vals: &mut Vec<u64>,
    ids: &mut Vec<u32>,
    ints: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    vals.clear();
    match ty {
        PropType::Str => {
            get_width_u32(reader, count, ids)?;
            vals.extend(ids.iter().map(|&id| u64::from(id)));
        }
        PropType::I64 => {
            get_delta_i64(reader, count, ints)?;
            vals.extend(ints.iter().map(|&v| v as u64));
        }
        PropType::F64 => match reader.u8()? {
            k @ 0..=6 => {
                get_delta_i64(reader, count, ints)?;
                let m = 10f64.powi(i32::from(k));
                vals.extend(ints.iter().map(|&v| (v as f64 / m).to_bits()));
            }
            255 => {
                for _ in 0..count {
                    vals.push(reader.u64()?);
                }
            }
            k => return Err(reader.err(format!("float scale {k}"))),
        },
        PropType::Bool => vals.extend(get_bits(reader, count)?.into_iter().map(u64::from)),
    }
    Ok(())
}

/// The values of the valid rows (in row order) spread to one slot per row (0 where not
/// valid): each value goes to the row of the next set bit of `bits` (a word of 64 rows at a
/// time, so sparse columns cost by their values, not their rows).
fn spread(vals: &[u64], bits: &[u8], rows: usize, out: &mut Vec<u64>) {
    out.clear();
    out.resize(rows, 0);
    let mut values = vals.iter();
    for (word_index, chunk) in bits.chunks(8).enumerate() {
        let mut word_bytes = [0u8; 8];
        word_bytes[..chunk.len()].copy_from_slice(chunk);
        let mut word = u64::from_le_bytes(word_bytes);
        while word != 0 {
            let row = word_index * 64 + word.trailing_zeros() as usize;
            word &= word - 1;
            // Bits past the last row, or more bits than values: the checks before decoding
            // make neither happen; a corrupt column must not panic either way.
            if let (Some(slot), Some(&value)) = (out.get_mut(row), values.next()) {
                *slot = value;
            }
        }
    }
}
