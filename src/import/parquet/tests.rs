//! Tests of reading Parquet files.
use crate::import::{ImportError, ImportOptions, Staged};
use crate::model::DAY_US;
use crate::time::{TsForm, TsUnit};
use arrow_array::RecordBatch;
use std::path::Path;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::*;

const ROWS: usize = 70_000;

/// A file's announced row count is believed up to 64 rows per byte of file.
#[test]
fn announced_rows_are_believed_up_to_a_bound_by_file_size() {
    assert_eq!(believed_rows(98_291_020, 680_000_000), 98_291_020);
    assert_eq!(believed_rows(1_000_000_000_000, 10_000), 640_000);
    assert_eq!(believed_rows(-5, 10_000), 0);
    assert_eq!(
        believed_rows(i64::MAX, u64::MAX),
        usize::try_from(i64::MAX).unwrap_or(usize::MAX)
    );
}

/// The columnar path takes a batch's timestamps only when all are in range (else the row
/// path reports the row).
#[test]
fn batch_timestamps_out_of_range_go_to_the_row_path() {
    let ok = TimestampMicrosecondArray::from(vec![0, crate::model::TS_MIN, crate::model::TS_MAX]);
    assert_eq!(
        batch_ts(&ok),
        Some(vec![0, crate::model::TS_MIN, crate::model::TS_MAX])
    );
    let late = TimestampMicrosecondArray::from(vec![0, crate::model::TS_MAX + 1]);
    assert_eq!(batch_ts(&late), None);
    let early = arrow_array::TimestampSecondArray::from(vec![-377_705_023_202, 0]);
    assert_eq!(batch_ts(&early), None);
}

/// A Date32 timestamp is the day's midnight; a day outside the supported range is an error
/// (also one whose midnight is beyond i64 microseconds), not a wrapped timestamp.
#[test]
fn date32_timestamps_and_their_range() {
    let days = arrow_array::Date32Array::from(vec![
        0,
        -1,
        20_454,
        2_932_895,
        -4_371_585,
        2_932_896,
        -4_371_586,
        i32::MAX,
        i32::MIN,
    ]);
    let at = |i| ts_at(&days, i, &mut TsReader::new(TsForm::Unit(TsUnit::Us)));
    assert_eq!(at(0), Ok(0));
    assert_eq!(at(1), Ok(-DAY_US));
    assert_eq!(at(2), Ok(20_454 * DAY_US));
    assert_eq!(at(3), Ok(2_932_895 * DAY_US)); // 9999-12-30, the last whole day
    assert_eq!(at(4), Ok(-4_371_585 * DAY_US)); // -9999-01-03, the first whole day
    for i in 5..9 {
        assert!(at(i).is_err_and(|e| e.contains("range")), "{i}");
    }
}

/// Writes the test rows in row groups of 30,000: strings dictionary-encoded or plain; with
/// `bad`, rows 11, 21, 31 and 66 001 (1-based) are bad, and customer "ghost" appears only on
/// row 21.
fn write(path: &Path, dictionary: bool, bad: bool) -> Result<(), String> {
    write_groups(path, dictionary, bad, 30_000)
}

/// [`write`] in row groups of `group_rows`.
fn write_groups(path: &Path, dictionary: bool, bad: bool, group_rows: usize) -> Result<(), String> {
    let cust: Vec<String> = (0..ROWS)
        .map(|i| match i {
            10 | 66_000 if bad => "bad\u{1}id".to_owned(),
            20 if bad => "ghost".to_owned(),
            _ => format!("c{}", i / 140),
        })
        .collect();
    let ts: Vec<Option<i64>> = (0..ROWS)
        .map(|i| (i != 20 || !bad).then_some(1_767_225_600_000_000 + i as i64 * 1_000_000))
        .collect();
    let events = ["visit", "view_product", "add_to_cart", "purchase", "review"];
    let event: Vec<&str> = (0..ROWS).map(|i| events[i * 7 % 5]).collect();
    let stage: Vec<Option<&str>> = (0..ROWS)
        .map(|i| match i {
            30 if bad => Some("nope"),
            _ if i % 3 == 0 => None,
            _ => Some(["awareness", " purchase ", "retention"][i % 3]),
        })
        .collect();
    let channel: Vec<Option<&str>> = (0..ROWS)
        .map(|i| (i % 4 != 0).then_some(["web", "mobile", "store"][i % 3]))
        .collect();
    let amount: Vec<Option<i64>> = (0..ROWS).map(|i| (i % 5 == 3).then_some(i as i64)).collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("customer", Arc::new(StringArray::from(cust))),
        ("ts", Arc::new(TimestampMicrosecondArray::from(ts))),
        ("event", Arc::new(StringArray::from(event))),
        ("stage", Arc::new(StringArray::from(stage))),
        ("channel", Arc::new(StringArray::from(channel))),
        ("amount", Arc::new(Int64Array::from(amount))),
    ];
    write_batch(path, cols, dictionary, group_rows)
}

/// Writes `cols` as a Parquet file (dictionary-encoded or plain) in row groups of `group_rows`.
fn write_batch(
    path: &Path,
    cols: Vec<(&str, ArrayRef)>,
    dictionary: bool,
    group_rows: usize,
) -> Result<(), String> {
    let batch = RecordBatch::try_from_iter(cols).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_dictionary_enabled(dictionary)
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = ArrowWriter::try_new(f, batch.schema(), Some(props)).map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    Ok(())
}

/// What was staged, in a form that compares (the interners' maps left out).
fn summary(staged: &Staged) -> String {
    let props: Vec<String> = staged
        .props
        .iter()
        .map(|p| {
            format!(
                "{} {:?} {} {:?} {:?} {:?}",
                p.name, p.ty, p.inferred_at, p.valid, p.vals, p.strings.names
            )
        })
        .collect();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{props:?}",
        staged.customers.names, staged.events.names, staged.cust, staged.ts, staged.event, staged.stage
    )
}

#[test]
fn dictionary_and_plain_strings_stage_the_same_rows_and_errors() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let opts = ImportOptions {
        skip_bad: 10,
        ..ImportOptions::default()
    };
    let mut seen = Vec::new();
    for dictionary in [true, false] {
        let path = dir.path().join(format!("dict-{dictionary}.parquet"));
        write(&path, dictionary, true)?;
        let got = read(&path, &opts, &mut |_| {}).map_err(|e| e.to_string())?;
        let lines: Vec<u64> = got
            .skipped
            .iter()
            .filter_map(|e| match e {
                ImportError::Row { line, .. } => Some(*line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, [11, 21, 31, 66_001], "dictionary {dictionary}");
        assert_eq!(got.staged.len(), ROWS - 4);
        // A value seen only on a skipped row is not staged.
        assert!(!got.staged.customers.names.iter().any(|n| &**n == "ghost"));
        let name = path.display().to_string();
        let errors: Vec<String> = got
            .skipped
            .iter()
            .map(|e| e.to_string().replace(&name, "FILE"))
            .collect();
        seen.push((summary(&got.staged), errors));
        // Without an allowance the first bad row stops the import, named by line and column.
        let err = read(&path, &ImportOptions::default(), &mut |_| {})
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains(".parquet:11:1: column `customer`") && err.contains("control character"),
            "{err}"
        );
    }
    assert_eq!(seen[0].1, seen[1].1);
    assert!(
        seen[0].0 == seen[1].0,
        "dictionary and plain files staged different rows"
    );
    Ok(())
}

/// Clean batches are staged column by column: the same rows, strings in the same order,
/// the same property types (and where they were inferred) as the row path. Batches smaller
/// than a row group share its dictionaries, which are checked once; a later row group's
/// dictionaries are checked again (with `bad`, the last of 20,000-row groups has a bad
/// customer id after two clean groups).
#[test]
fn column_path_stages_what_the_row_path_stages() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cases = [
        (true, false, 30_000, BATCH_ROWS),
        (false, false, 30_000, BATCH_ROWS),
        (true, true, 30_000, BATCH_ROWS),
        (true, false, 70_000, 5_000),
        (true, true, 20_000, 5_000),
    ];
    for (dictionary, bad, group, batch) in cases {
        let path = dir
            .path()
            .join(format!("clean-{dictionary}-{bad}-{group}.parquet"));
        write_groups(&path, dictionary, bad, group)?;
        let opts = ImportOptions {
            skip_bad: 10,
            ..ImportOptions::default()
        };
        let rows = read_with(&path, &opts, &mut |_| {}, false, batch, None)
            .map(|r| r.0)
            .map_err(|e| e.to_string())?;
        let cols = read_with(&path, &opts, &mut |_| {}, true, batch, None)
            .map(|r| r.0)
            .map_err(|e| e.to_string())?;
        assert_eq!(cols.staged.len(), if bad { ROWS - 4 } else { ROWS });
        // Rows stay in file order (time ascends with the row).
        assert!(
            cols.staged.ts.windows(2).all(|w| w[0] < w[1]),
            "rows out of file order"
        );
        assert_eq!(cols.skipped.len(), rows.skipped.len());
        let same = summary(&rows.staged) == summary(&cols.staged);
        assert!(
            same,
            "dictionary {dictionary}, bad rows {bad}, groups of {group}, batches of {batch}: \
             the paths staged different rows"
        );
    }
    Ok(())
}

/// Writes a file whose customer ids are integers, interleaved as a log in time order has them
/// (a null id on row 100, in the first of two row groups: that batch takes the row path). With
/// `epoch_seconds`, the timestamps are integers too, and row 50,000's is in milliseconds.
fn write_int_customers(path: &Path, epoch_seconds: bool) -> Result<(), String> {
    let cust: Vec<Option<i64>> = (0..ROWS)
        .map(|i| (i != 100).then_some((i as i64 * 7_919) % 500 - 3))
        .collect();
    let ts: Vec<i64> = (0..ROWS)
        .map(|i| 1_767_225_600_000_000 + i as i64 * 1_000_000)
        .collect();
    let ts: ArrayRef = if epoch_seconds {
        let seconds = ts.iter().enumerate();
        Arc::new(Int64Array::from_iter_values(
            seconds.map(|(i, us)| if i == 50_000 { us / 1_000 } else { us / 1_000_000 }),
        ))
    } else {
        Arc::new(TimestampMicrosecondArray::from(ts))
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("customer", Arc::new(Int64Array::from(cust))),
        ("ts", ts),
        ("event", Arc::new(StringArray::from(vec!["visit"; ROWS]))),
    ];
    write_batch(path, cols, true, ROWS / 2)
}

/// A file of [`write_int_customers`] read with `skip_bad` by the row path and by the column
/// path (batches of 5,000 rows), which must stage the same rows: the directory holding it, its
/// path, the options, and the two reads.
type BothPaths = (
    tempfile::TempDir,
    std::path::PathBuf,
    ImportOptions,
    Imported,
    Imported,
);

fn int_file_both_paths(epoch_seconds: bool, skip_bad: usize) -> Result<BothPaths, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("ints.parquet");
    write_int_customers(&path, epoch_seconds)?;
    let opts = ImportOptions {
        skip_bad,
        ..ImportOptions::default()
    };
    let rows = read_with(&path, &opts, &mut |_| {}, false, 5_000, None).map_err(|e| e.to_string())?;
    let cols = read_with(&path, &opts, &mut |_| {}, true, 5_000, None).map_err(|e| e.to_string())?;
    assert!(
        summary(&rows.0.staged) == summary(&cols.0.staged),
        "the paths staged different rows"
    );
    Ok((dir, path, opts, rows.0, cols.0))
}

/// Integer customer ids are staged column by column too (each distinct id written in decimal
/// once per part): the same rows as the row path, whole and in parts, whose ids name the same
/// customers as the whole file's.
#[test]
fn integer_customer_ids_stage_by_columns_and_in_parts() -> Result<(), String> {
    let (_dir, path, opts, _, cols) = int_file_both_paths(false, 1)?;
    assert_eq!(cols.staged.len(), ROWS - 1);
    assert_eq!(&*cols.staged.customers.names[0], "-3");
    assert_eq!(&*cols.staged.customers.names[1], "416");
    // In parts of at least 3,000 rows: each part's ids name the whole read's customers.
    let names = |staged: &Staged| -> Vec<String> {
        staged
            .cust
            .iter()
            .map(|&c| staged.customers.names[c as usize].to_string())
            .collect()
    };
    let mut parted = Vec::new();
    let mut sink = |part: Staged| {
        parted.extend(names(&part));
        true
    };
    let parts = Parts {
        rows: 3_000,
        sink: &mut sink,
    };
    read_parts(&path, &opts, &mut |_| {}, parts).map_err(|e| e.to_string())?;
    assert_eq!(parted, names(&cols.staged));
    Ok(())
}

/// Integer timestamps (epoch seconds, the unit inferred) are staged column by column: the same
/// rows, unit and times as the row path; a value in another unit sends its batch to the row
/// path, which reports its line.
#[test]
fn integer_timestamps_stage_by_columns() -> Result<(), String> {
    let (_dir, _, _, rows, cols) = int_file_both_paths(true, 2)?;
    let lines = |r: &Imported| -> Vec<String> { r.skipped.iter().map(ToString::to_string).collect() };
    assert_eq!(lines(&cols), lines(&rows));
    assert_eq!(cols.skipped.len(), 2);
    assert!(lines(&cols)[1].contains(":50001:"), "{:?}", lines(&cols));
    assert_eq!(cols.staged.ts.get(1), Some(&1_767_225_601_000_000));
    assert_eq!(cols.ts_inferred(), rows.ts_inferred());
    assert!(cols.ts_inferred().is_some());
    Ok(())
}
