//! Tests of the indices: day sets, gap lists, roll-ups, value indices, unions.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::codec::{self, Reader};
use crate::model::{Columns, DAY_US, day_of};

use super::days::*;
use super::gap_list::*;
use super::value_index::*;
use super::*;
use proptest::prelude::*;

fn bitmap(members: impl IntoIterator<Item = u32>) -> RoaringBitmap {
    members.into_iter().collect()
}

/// The per-(stage, UTC day) sets in a pass of their own, as segment writers built them
/// before [`add_event_stage_days`] (the reference the split is compared with).
fn add_stage_days(sets: &mut DaySets<(u8, i32)>, cols: &Columns) {
    add_major_days(
        cols,
        sets,
        STAGE_CODES,
        |j| usize::from(cols.stage[j].min(5)),
        |m, d| (m as u8, d),
    );
}

#[test]
fn bitmaps_read_back_in_either_form_and_bad_gap_lists_are_errors() -> Result<(), String> {
    let sparse = bitmap((0..500).map(|i| i * 977 + 3).chain([u32::MAX]));
    let dense = bitmap(0..100_000);
    for (b, gaps) in [(&sparse, true), (&dense, false), (&RoaringBitmap::new(), false)] {
        let mut out = Vec::new();
        put(&mut out, b).map_err(|e| e.to_string())?;
        let word = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
        assert_eq!(word & GAP_LIST != 0, gaps, "{} members", b.len());
        assert_eq!(&get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
    }
    // Segments written before gap lists: the length word without the flag.
    let mut old = Vec::new();
    codec::put_u32(&mut old, sparse.serialized_size() as u32);
    sparse.serialize_into(&mut old).map_err(|e| e.to_string())?;
    assert_eq!(get(&mut Reader::new(&old)).map_err(|e| e.to_string())?, sparse);
    // A repeated member (gap 0), a member past u32::MAX and a truncated varint are errors.
    for gaps in [&[5u8, 0][..], &[0xff, 0xff, 0xff, 0xff, 0x0f, 1], &[0x80]] {
        let mut bad = Vec::new();
        codec::put_u32(&mut bad, gaps.len() as u32 | GAP_LIST);
        bad.extend_from_slice(gaps);
        assert!(get(&mut Reader::new(&bad)).is_err(), "{gaps:?}");
    }
    Ok(())
}

/// Run containers, one of them spanning all 65,536 values of its key (roaring 0.12's
/// `next_many` overflowed on it — found by `bitmap_round_trip` in CI), encode as the
/// member-by-member reference does and read back.
#[test]
fn gap_lists_of_bitmaps_with_full_run_containers() -> Result<(), String> {
    let mut cases = Vec::new();
    let mut full = bitmap([7u32, 70_000, u32::MAX]);
    full.insert_range(65_536..131_072);
    cases.push(full);
    let mut from_ci = bitmap([206_450_915u32, 3_079_203_956, 197_252_234]);
    from_ci.insert_range(930_807_509..930_807_509 + 67_812);
    cases.push(from_ci);
    let mut short = bitmap([1u32, 1_000_000]);
    short.insert_range(200..300);
    cases.push(short);
    for b in cases {
        let mut out = Vec::new();
        put(&mut out, &b).map_err(|e| e.to_string())?;
        assert_eq!(get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
        let mut gaps = Vec::new();
        let mut prev = 0;
        for v in &b {
            codec::put_varint(&mut gaps, u64::from(v - prev));
            prev = v;
        }
        if gaps.len() < b.serialized_size() {
            assert_eq!(&out[4..], &gaps[..], "{} members", b.len());
        }
    }
    Ok(())
}

/// Gaps at each varint length boundary (1 to 5 bytes), more than one batch of members.
#[test]
fn gap_lists_encode_each_varint_length() -> Result<(), String> {
    let small = [1u32, 127, 128, 16_383, 16_384];
    let gaps =
        (0..300)
            .map(|i| small[i % small.len()])
            .chain([2_097_151, 2_097_152, 268_435_455, 268_435_456]);
    let mut members = vec![0u32];
    for gap in gaps {
        members.push(members[members.len() - 1] + gap);
    }
    members.push(u32::MAX);
    let b = bitmap(members.iter().copied());
    let mut want = Vec::new();
    let mut prev = 0;
    for &v in &members {
        codec::put_varint(&mut want, u64::from(v - prev));
        prev = v;
    }
    let mut out = Vec::new();
    put(&mut out, &b).map_err(|e| e.to_string())?;
    assert_eq!(&out[..4], &(want.len() as u32 | GAP_LIST).to_le_bytes());
    assert_eq!(&out[4..], &want[..]);
    assert_eq!(get(&mut Reader::new(&out)).map_err(|e| e.to_string())?, b);
    Ok(())
}

proptest! {
    /// Any set reads back as written, whichever form `put` picks.
    #[test]
    fn bitmap_round_trip(
        members in proptest::collection::vec(any::<u32>(), 0..300),
        run in proptest::option::of((any::<u32>(), 0u32..70_000)),
    ) {
        let mut b = bitmap(members);
        if let Some((start, len)) = run {
            b.insert_range(start..start.saturating_add(len));
        }
        let mut out = Vec::new();
        put(&mut out, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The form is the smaller one, the gap list as a member-by-member encoder writes it.
        let mut gaps = Vec::new();
        let mut prev = 0;
        for v in &b {
            codec::put_varint(&mut gaps, u64::from(v - prev));
            prev = v;
        }
        let roaring = b.serialized_size();
        let sparse = b.max().is_some_and(|m| b.len() < u64::from(m) / 8 + 4096);
        if sparse && gaps.len() < roaring {
            prop_assert_eq!(&out[..4], &(gaps.len() as u32 | GAP_LIST).to_le_bytes());
            prop_assert_eq!(&out[4..], &gaps[..]);
        } else {
            prop_assert_eq!(&out[..4], &(roaring as u32).to_le_bytes());
        }
        let mut r = Reader::new(&out);
        prop_assert_eq!(get(&mut r).map_err(|e| TestCaseError::fail(e.to_string()))?, b);
        prop_assert_eq!(r.remaining(), 0);
    }

    /// Arbitrary bytes never panic the bitmap reader.
    #[test]
    fn bitmap_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = get(&mut Reader::new(&bytes));
    }

    /// The value index built block by block equals a direct definition: a string property
    /// with more than `VALUES_INDEXED_MAX` distinct values in the segment is overflowed
    /// (no entries); otherwise, per (property, value or none, day), the customers with such
    /// an event. Property 9 has no column (no value on any row).
    #[test]
    fn value_index_equals_its_definition(
        mut rows in proptest::collection::vec((0u32..30, -3i64..6, proptest::option::of(0u64..80)), 0..400),
        cuts in proptest::collection::vec(0usize..400, 0..4),
        few in any::<bool>(),
        spread in prop_oneof![Just(1i64), Just(20_000i64)],
    ) {
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut cols = Columns::default();
        let mut col = crate::model::PropColumn::new(7, crate::model::PropType::Str);
        for &(cid, day, v) in &rows {
            cols.cid.push(cid);
            cols.ts.push(day * spread * DAY_US);
            cols.event.push(0);
            cols.stage.push(0);
            let v = if few { v.map(|v| v % 5) } else { v };
            col.valid.push(v.is_some());
            col.vals.push(v.unwrap_or(0));
        }
        cols.props.push(col);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(rows.len())).chain([0, rows.len()]).collect();
        cuts.sort_unstable();
        let mut got = ValueIndexBuilder::default();
        for w in cuts.windows(2) {
            got.add(&cols.slice(w[0]..w[1]), &[7, 9]);
        }
        let got = got.finish();
        let distinct: std::collections::BTreeSet<u64> = cols.props[0]
            .valid
            .iter()
            .zip(&cols.props[0].vals)
            .filter(|x| *x.0)
            .map(|x| *x.1)
            .collect();
        let mut want: BTreeMap<(u32, Option<u64>, i32), RoaringBitmap> = BTreeMap::new();
        for (j, &cid) in cols.cid.iter().enumerate() {
            let day = day_of(cols.ts[j]);
            if distinct.len() <= VALUES_INDEXED_MAX {
                let v = cols.props[0].valid[j].then_some(cols.props[0].vals[j]);
                want.entry((7, v, day)).or_default().insert(cid);
            }
            want.entry((9, None, day)).or_default().insert(cid);
        }
        prop_assert_eq!(got.overflow.contains(&7), distinct.len() > VALUES_INDEXED_MAX);
        prop_assert_eq!(got.days, want);
    }
}

/// Sets of more customers than are buffered (flushed while adding), over several calls,
/// and calls whose customers do not ascend (inserted one by one): the sets are exact.
#[test]
fn day_sets_flush_and_take_unsorted_customers() {
    let rows = |cids: std::ops::Range<u32>| {
        let mut c = Columns::default();
        for cid in cids {
            for day in [0i64, 1 + i64::from(cid % 3 == 0)] {
                c.cid.push(cid);
                c.ts.push(day * DAY_US);
                c.event.push(cid % 2);
                c.stage.push(0);
            }
        }
        c
    };
    let mut sets = DaySets::default();
    for part in [0..1500, 1500..5000, 7000..7100, 6000..6500] {
        add_event_days(&mut sets, &rows(part));
    }
    let mut want: BTreeMap<(u32, i32), RoaringBitmap> = BTreeMap::new();
    for cid in (0..5000).chain(7000..7100).chain(6000..6500) {
        for day in [0, 1 + i32::from(cid % 3 == 0)] {
            want.entry((cid % 2, day)).or_default().insert(cid);
        }
    }
    assert!(want.values().any(|b| b.len() > 2 * PENDING_MAX as u64));
    assert_eq!(sets.into_map(), want);
}

proptest! {
    /// Per-(stage, day) and per-(event, day) bitmaps, built apart or split from
    /// per-(event, stage, day) ones, and derived into the rest, equal the bitmaps built
    /// row by row, whatever the block boundaries.
    #[test]
    fn derived_bitmaps_equal_direct(
        mut rows in proptest::collection::vec((0u32..40, -3i64..6, 0u32..5, 0u8..6), 0..300),
        cut in 0usize..300,
        spread in prop_oneof![Just(1i64), Just(20_000i64)],
    ) {
        // spread 20 000 puts the days of a block ~180 000 apart: too many key slots for
        // the dense path, so both the dense and the sorting path are compared.
        rows.sort_unstable();
        let mut cols = Columns::default();
        for &(cid, day, event, stage) in &rows {
            cols.cid.push(cid);
            cols.ts.push(day * spread * DAY_US + i64::from(event) * 1000);
            cols.event.push(event);
            cols.stage.push(stage);
        }
        let mut direct = Bitmaps::default();
        direct.add(&cols);
        let (mut stage_days, mut event_days) = (DaySets::default(), DaySets::default());
        let cut = cut.min(cols.len());
        for part in [cols.slice(0..cut), cols.slice(cut..cols.len())] {
            add_stage_days(&mut stage_days, &part);
            add_event_days(&mut event_days, &part);
        }
        let event_days = EventDays {
            days: event_days.into_map(),
        };
        let derived = Bitmaps::from_stage_days(stage_days.into_map(), &event_days);
        prop_assert_eq!(&derived, &direct);
        // One pass per (event, stage, day), split: the same per-(stage, day) and
        // per-(event, day) sets.
        let mut combined = DaySets::default();
        for part in [cols.slice(0..cut), cols.slice(cut..cols.len())] {
            add_event_stage_days(&mut combined, &part);
        }
        let (stage_days, days) = split_event_stage_days(combined);
        let direct_stage_days: BTreeMap<(u8, i32), RoaringBitmap> =
            direct.stage_days.iter().map(|(&key, set)| (key, RoaringBitmap::clone(set))).collect();
        prop_assert_eq!(&stage_days, &direct_stage_days);
        prop_assert_eq!(&days, &event_days.days);
    }
}

/// Sets keyed by (key, day), from `(key, day, members)` triples (empty sets kept: the table
/// leaves them out).
fn keyed<K: Ord>(entries: Vec<(K, i32, Vec<u32>)>) -> BTreeMap<(K, i32), RoaringBitmap> {
    let mut out: BTreeMap<(K, i32), RoaringBitmap> = BTreeMap::new();
    for (key, day, members) in entries {
        *out.entry((key, day)).or_default() |= bitmap(members);
    }
    out
}

/// Encodes a day table of the given sets as a footer does (the keys, then two tables cut where
/// half the customers are) and decodes it.
fn day_table_round_trip(
    stage_days: &BTreeMap<(u8, i32), Arc<RoaringBitmap>>,
    event_days: &BTreeMap<(u32, i32), RoaringBitmap>,
    values: &BTreeMap<(u32, Option<u64>, i32), RoaringBitmap>,
) -> Result<(Decoded, Vec<u8>), String> {
    let table = Table::new(stage_days, event_days, values);
    let cuts = table.cuts(2);
    let mut out = Vec::new();
    table.keys.encode(&mut out);
    codec::put_u32(&mut out, 2);
    for part in cuts.windows(2) {
        let days = &table.days[part[0]..part[1]];
        encode_days(days, table.keys.count(), &mut out, &mut |_| Ok(())).map_err(|e| e.to_string())?;
        // Keys gathered as lists (tables of over 128 keys) give the same bytes as bit masks.
        let (mut by_lists, mut by_masks) = (Vec::new(), Vec::new());
        super::day_table::encode_days_as(days, false, &mut by_lists, &mut |_| Ok(()))
            .map_err(|e| e.to_string())?;
        super::day_table::encode_days_as(days, true, &mut by_masks, &mut |_| Ok(()))
            .map_err(|e| e.to_string())?;
        if by_lists != by_masks {
            return Err("the two ways of gathering keys differ".into());
        }
    }
    let mut reader = Reader::new(&out);
    let decoded = decode_day_table(&mut reader).map_err(|e| e.to_string())?;
    reader.finish().map_err(|e| e.to_string())?;
    Ok((decoded, out))
}

fn members() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        proptest::collection::vec(0u32..400, 0..40),
        // Past a container, and a dense run (a bitmap container).
        proptest::collection::vec(60_000u32..140_000, 0..20),
        (0u32..3).prop_map(|start| (start * 70_000..start * 70_000 + 5_000).collect()),
        Just(vec![u32::MAX, 0]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The day table gives back every non-empty set it was given, and each day's customers as
    /// the union of its stage sets — also for customers with an event or value and no stage,
    /// which rows never produce.
    #[test]
    fn day_table_round_trip_equals_its_sets(
        stages in proptest::collection::vec((0u8..6, -3i32..12, members()), 0..14),
        events in proptest::collection::vec((0u32..9, -3i32..12, members()), 0..14),
        values in proptest::collection::vec(((0u32..3, proptest::option::of(0u64..300)), -3i32..12, members()), 0..14),
    ) {
        let stage_days: BTreeMap<(u8, i32), Arc<RoaringBitmap>> =
            keyed(stages).into_iter().map(|(key, set)| (key, Arc::new(set))).collect();
        let event_days = keyed(events);
        let values: BTreeMap<(u32, Option<u64>, i32), RoaringBitmap> =
            keyed(values).into_iter().map(|(((prop, value), day), set)| ((prop, value, day), set)).collect();
        let (decoded, bytes) = day_table_round_trip(&stage_days, &event_days, &values).map_err(TestCaseError::fail)?;
        let non_empty = |set: &RoaringBitmap| !set.is_empty();
        let expected_stages: BTreeMap<_, _> = stage_days.iter().filter(|(_, s)| non_empty(s)).map(|(k, s)| (*k, s.clone())).collect();
        prop_assert_eq!(&decoded.stage_days, &expected_stages);
        let expected_events: BTreeMap<_, _> = event_days.iter().filter(|(_, s)| non_empty(s)).map(|(k, s)| (*k, s.clone())).collect();
        prop_assert_eq!(&decoded.event_days, &expected_events);
        let expected_values: BTreeMap<_, _> = values.iter().filter(|(_, s)| non_empty(s)).map(|(k, s)| (*k, s.clone())).collect();
        prop_assert_eq!(&decoded.values, &expected_values);
        let mut days: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
        for ((_, day), set) in &expected_stages {
            *days.entry(*day).or_default() |= &**set;
        }
        let decoded_days: BTreeMap<i32, RoaringBitmap> =
            decoded.days.iter().map(|(day, set)| (*day, (**set).clone())).collect();
        prop_assert_eq!(decoded_days, days);
        // Cut anywhere, the table is an error, never a panic or a shorter answer.
        for cut in (0..bytes.len()).step_by(bytes.len() / 16 + 1) {
            let mut reader = Reader::new(&bytes[..cut]);
            prop_assert!(decode_day_table(&mut reader).and_then(|_| reader.finish()).is_err());
        }
        // A damaged byte anywhere decodes to an error or to some sets, never a panic (the
        // footer's checksum is what finds damage).
        for at in (0..bytes.len()).step_by(bytes.len() / 24 + 1) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let _ = decode_day_table(&mut Reader::new(&damaged));
            }
        }
    }

    /// Random bytes after valid keys never panic the decoder.
    #[test]
    fn day_table_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let keys = super::day_table::Keys { events: vec![3, 7], values: vec![(0, None), (0, Some(4))] };
        let mut all = Vec::new();
        keys.encode(&mut all);
        all.extend_from_slice(&bytes);
        let _ = decode_day_table(&mut Reader::new(&all));
    }
}
