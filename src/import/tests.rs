//! Tests of reading files: formats, timestamp forms, inference, bad rows.

use std::collections::HashMap;

use super::options::*;
use super::staged::*;
use super::values::*;
use super::*;
use proptest::prelude::*;

/// Interning 400,000 distinct names: among them, some pairs share the 32 hash bits the
/// table keeps (~18 expected), so a lookup that trusted those bits without comparing the
/// names would give two names one id. Every name keeps its first id through the table's
/// growth, a second pass finds each again, and the ids are dense in first-seen order.
#[test]
fn interned_ids_survive_growth_and_shared_hash_bits() {
    let mut s = Strings::default();
    let name = |i: u32| format!("customer-{i:x}");
    let n = 400_000u32;
    for i in 0..n {
        assert_eq!(s.intern(&name(i)), i, "first intern of {}", name(i));
    }
    for i in (0..n).rev() {
        assert_eq!(s.intern(&name(i)), i, "second intern of {}", name(i));
    }
    assert_eq!(s.names.len(), n as usize);
    assert!(s.names.iter().enumerate().all(|(i, x)| **x == name(i as u32)));
}

proptest! {
    /// Against a map: the same ids, in first-seen order, for names with many repeats.
    #[test]
    fn interning_matches_a_map(names in proptest::collection::vec("[a-c]{0,3}", 0..300)) {
        let mut s = Strings::default();
        let mut oracle: HashMap<String, u32> = HashMap::new();
        for x in &names {
            let next = oracle.len() as u32;
            let want = *oracle.entry(x.clone()).or_insert(next);
            prop_assert_eq!(s.intern(x), want);
        }
        prop_assert_eq!(s.names.len(), oracle.len());
    }
}

#[test]
fn fast_iso_forms() {
    let jan5 = 1_767_571_200_000_000; // 2026-01-05T00:00:00Z
    let h10 = 10 * 3_600_000_000;
    for (text, want) in [
        ("2026-01-05", jan5),
        ("2026-01-05T10:00:00Z", jan5 + h10),
        ("2026-01-05 10:00:00", jan5 + h10),
        ("2026-01-05T10:00", jan5 + h10),
        ("2026-01-05T11:00:00+01:00", jan5 + h10),
        ("2026-01-05T11:00:00+0100", jan5 + h10),
        ("2026-01-05T05:00:00-05", jan5 + h10),
        ("2026-01-05T10:00:00.5Z", jan5 + h10 + 500_000),
        ("2026-01-05T10:00:00.123456789Z", jan5 + h10 + 123_456),
        ("1767607200000", jan5 + h10),
    ] {
        assert_eq!(parse_ts(text, TsUnit::Ms), Ok(want), "{text}");
    }
    assert_eq!(parse_ts("1767607200", TsUnit::S), Ok(jan5 + h10));
    assert_eq!(parse_ts("-1", TsUnit::Us), Ok(-1));
    for bad in [
        "2026-02-30",
        "2026-13-01T00:00:00Z",
        "yesterday",
        "",
        "2026-01-05T25:00:00Z",
    ] {
        assert!(parse_ts(bad, TsUnit::Ms).is_err(), "{bad}");
    }
    assert!(parse_ts("99999999999999999", TsUnit::S).is_err());
    // The supported range's ends (-9999-01-02T01:59:59Z, 9999-12-30T22:00:00.999999Z),
    // and one past each.
    assert_eq!(
        parse_ts("253402207200999999", TsUnit::Us),
        Ok(crate::model::TS_MAX)
    );
    assert_eq!(parse_ts("-377705023201", TsUnit::S), Ok(crate::model::TS_MIN));
    for bad in [
        "253402207201",
        "-377705023202",
        "253402300799",
        "9223372036854775807",
    ] {
        assert!(
            parse_ts(bad, TsUnit::S).is_err_and(|e| e.contains("range")),
            "{bad}"
        );
    }
}

#[test]
fn inference() {
    assert_eq!(infer("12"), Scalar::I64(12));
    assert_eq!(infer("-3"), Scalar::I64(-3));
    assert_eq!(infer("007"), Scalar::Str("007"));
    assert_eq!(infer("12.5"), Scalar::F64(12.5));
    assert_eq!(infer("1e3"), Scalar::F64(1000.0));
    assert_eq!(infer("NaN"), Scalar::Str("NaN"));
    assert_eq!(infer("inf"), Scalar::Str("inf"));
    assert_eq!(infer("TRUE"), Scalar::Bool(true));
    assert_eq!(infer("web"), Scalar::Str("web"));
}

proptest! {
    /// The hand-written fast path agrees with jiff on every form it accepts.
    #[test]
    fn fast_path_matches_jiff(us in -2_208_988_800_000_000i64..4_102_444_800_000_000i64,
                              offset_min in -14i32 * 60..=14 * 60,
                              form in 0usize..4) {
        let ts = jiff::Timestamp::from_microsecond(us).unwrap();
        let off = jiff::tz::Offset::from_seconds(offset_min * 60).unwrap();
        let dt = off.to_datetime(ts);
        let (h, m) = (offset_min.abs() / 60, offset_min.abs() % 60);
        let sign = if offset_min < 0 { '-' } else { '+' };
        let text = match form {
            0 => format!("{}Z", jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S%.6f")),
            1 => format!("{}{sign}{h:02}:{m:02}", dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")),
            2 => format!("{}{sign}{h:02}{m:02}", dt.strftime("%Y-%m-%d %H:%M:%S%.6f")),
            _ => jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        };
        prop_assert!(parse_iso_fast(text.as_bytes()).is_some(), "{}", text);
        prop_assert_eq!(parse_ts(&text, TsUnit::Ms), Ok(us), "{}", text);
        prop_assert_eq!(text.parse::<jiff::Timestamp>().map(|t| t.as_microsecond()).unwrap_or(us), us);
    }
}

/// A sparse file (issue 33): 300 property columns, each row setting three, imports; a row
/// setting more than 256 is refused at its line and the column where the 257th value is
/// (CSV and NDJSON alike).
#[test]
fn sparse_files_with_many_columns_import() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
    let mut csv = format!("customer_id,ts,event,{}\n", names.join(","));
    let mut ndjson = String::new();
    for row in 0..10usize {
        let mut fields = vec![String::new(); 300];
        let mut obj = serde_json::json!({"customer_id": "c", "ts": row, "event": "visit"});
        for k in 0..3 {
            let col = (row * 29 + k * 97) % 300;
            fields[col] = (row * 10 + k).to_string();
            obj[&names[col]] = serde_json::json!(row * 10 + k);
        }
        csv.push_str(&format!("c,{row},visit,{}\n", fields.join(",")));
        ndjson.push_str(&format!("{obj}\n"));
    }
    let opts = ImportOptions::default();
    for (name, text) in [("sparse.csv", &csv), ("sparse.ndjson", &ndjson)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let read = read_file(&path, &opts, &mut |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.staged.len(), 10, "{name}");
    }
    // One dense row: 300 values.
    let dense: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let path = dir.path().join("dense.csv");
    std::fs::write(&path, format!("{csv}c,99,visit,{}\n", dense.join(","))).unwrap();
    let e = read_file(&path, &opts, &mut |_, _| {}).unwrap_err().to_string();
    // Line 12 (header, ten rows); the 257th value is field 3 + 256, column 260.
    assert!(
        e.contains(":12:") && e.contains("more than 256 properties"),
        "{e}"
    );
}
