//! Tests of reading files: formats, inference, bad rows (timestamp forms: `crate::time`).

use std::collections::HashMap;

use super::options::*;
use super::staged::*;
use super::values::*;
use super::*;
use crate::time::TsUnit;
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
    let opts = ImportOptions {
        ts_unit: Some(TsUnit::Ms),
        ..ImportOptions::default()
    };
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
