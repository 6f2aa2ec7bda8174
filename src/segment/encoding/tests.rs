//! Tests of the column encodings: round trips, edge widths, corrupt input.

use crate::codec::{self, Reader};
use crate::model::{PropColumn, PropType};

use super::bitpack::*;
use super::delta::*;
use super::props::*;
use super::rle::*;
use super::stages::*;
use super::timestamps::*;
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
fn put_two_widths_reference(out: &mut Vec<u8>, gap: u64, deltas: &[u64]) {
    codec::put_varint(out, gap);
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

/// Appends `vals` LSB-first, `width` bits each, to a bit stream of whole bytes.
fn put_packed(out: &mut Vec<u8>, vals: impl Iterator<Item = u64>, width: usize) {
    // Eight bytes at a time: k < 64 before a value is added and w ≤ 64, so k + w ≤ 128.
    let mut acc = 0u128;
    let mut k = 0usize;
    for v in vals {
        acc |= u128::from(v) << k;
        k += width;
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
        long_runs in any::<bool>(),
    ) {
        // Customers ascend (a step of 0 continues the run); time sorted within a customer
        // with two kinds of gap, or arbitrary values (wide widths, wrapping differences).
        // Runs of one or two rows on average, or of up to 16 (the decoder corrects short and
        // long runs in two ways).
        let mut cid = 0u32;
        let mut t = 1_700_000_000_000_000i64;
        let (mut cids, mut vals) = (Vec::new(), Vec::new());
        for (i, &(step, kind, g)) in rows.iter().enumerate() {
            let step = if long_runs && i % 16 != 0 { 0 } else { step };
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
