//! Parquet files (any compression arrow-rs reads: snappy, zstd, gzip, lz4). Columns are found by
//! name as for CSV; their Parquet types decide the property types (strings, integers, floats,
//! booleans); timestamps may be Parquet timestamps (any unit), dates, integers in `--ts-unit`, or
//! strings. The "line" of an error is the 1-based row number.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::csv::unknown_stage;
use super::{ImportError, ImportOptions, Imported, Layout, RowValues, Scalar, TsUnit, bad_row, parse_ts};
use crate::ingest::check_name_text;
use crate::limits;
use crate::model::{DAY_US, Stage};

fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(_, _)
            | DataType::Date32
    )
}

/// The value at row `i`, or `None` for a null.
fn scalar(a: &dyn Array, i: usize) -> Result<Option<Scalar<'_>>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        DataType::Utf8 => Scalar::Str(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Scalar::Str(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Scalar::Str(a.as_string_view().value(i)),
        DataType::Boolean => Scalar::Bool(a.as_boolean().value(i)),
        DataType::Int8 => Scalar::I64(i64::from(a.as_primitive::<Int8Type>().value(i))),
        DataType::Int16 => Scalar::I64(i64::from(a.as_primitive::<Int16Type>().value(i))),
        DataType::Int32 => Scalar::I64(i64::from(a.as_primitive::<Int32Type>().value(i))),
        DataType::Int64 => Scalar::I64(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Scalar::I64(i64::from(a.as_primitive::<UInt8Type>().value(i))),
        DataType::UInt16 => Scalar::I64(i64::from(a.as_primitive::<UInt16Type>().value(i))),
        DataType::UInt32 => Scalar::I64(i64::from(a.as_primitive::<UInt32Type>().value(i))),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(i);
            Scalar::I64(i64::try_from(v).map_err(|_| format!("{v} is larger than 2^63-1"))?)
        }
        DataType::Float32 => Scalar::F64(f64::from(a.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => Scalar::F64(a.as_primitive::<Float64Type>().value(i)),
        t => return Err(format!("type {t} is not supported")),
    }))
}

/// The timestamp at row `i` in µs.
fn ts_at(a: &dyn Array, i: usize, unit: TsUnit) -> Result<i64, String> {
    if a.is_null(i) {
        return Err("timestamp is null".into());
    }
    let range = |v: Option<i64>| v.ok_or_else(|| "timestamp is out of range".to_owned());
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => range(
            a.as_primitive::<TimestampSecondType>()
                .value(i)
                .checked_mul(1_000_000),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => range(
            a.as_primitive::<TimestampMillisecondType>()
                .value(i)
                .checked_mul(1_000),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Ok(a.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Ok(a
            .as_primitive::<TimestampNanosecondType>()
            .value(i)
            .div_euclid(1_000)),
        DataType::Date32 => Ok(i64::from(a.as_primitive::<Date32Type>().value(i)) * DAY_US),
        _ => match scalar(a, i)? {
            Some(Scalar::Str(s)) => parse_ts(s, unit),
            Some(Scalar::I64(n)) => range(n.checked_mul(unit.micros())),
            _ => Err(format!("type {} cannot hold a timestamp", a.data_type())),
        },
    }
}

/// Reads a Parquet file.
pub(crate) fn read(
    file: &Path,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
) -> Result<Imported, ImportError> {
    let io = |source| ImportError::Io {
        file: file.to_owned(),
        source,
    };
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(format!("not a Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let core = Layout::locate(&names, opts).map_err(bad)?;
    let mut out = Imported::default();
    let mut props = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if !supported(field.data_type()) {
            return Err(bad(format!(
                "column `{}` has type {}, which journeydb cannot store (strings, integers, floats, booleans, timestamps)",
                field.name(),
                field.data_type()
            )));
        }
        if core.is_core(i) {
            continue;
        }
        let p = out
            .staged
            .prop(field.name(), opts)
            .map_err(|e| bad(format!("column {}: {e}", i + 1)))?;
        props.push((i, p));
    }
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    // The Parquet pages are decoded on a second thread while this one checks and stages rows.
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in reader {
                let stop = batch.is_err();
                if tx.send(batch).is_err() || stop {
                    break;
                }
            }
        });
        // On an early return `rx` is dropped, so the decoder stops at its next send.
        stage_batches(rx, file, opts, &names, core, &props, &mut out, tick)
    })?;
    Ok(out)
}

/// Checks and stages the rows of decoded batches (in file order).
#[expect(clippy::too_many_arguments, reason = "the state of one read, passed once")]
fn stage_batches(
    rx: std::sync::mpsc::Receiver<Result<RecordBatch, arrow_schema::ArrowError>>,
    file: &Path,
    opts: &ImportOptions,
    names: &[&str],
    core: Layout,
    props: &[(usize, usize)],
    out: &mut Imported,
    tick: &mut dyn FnMut(u64),
) -> Result<(), ImportError> {
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let (ci, ti, ei, si) = (core.customer, core.ts, core.event, core.stage);
    let mut row = 0u64;
    for batch in rx {
        let batch: RecordBatch = batch.map_err(|e| bad(format!("after row {row}: {e}")))?;
        // One property buffer per batch, reused row after row (its values borrow the batch).
        let mut spare = Vec::with_capacity(props.len());
        for i in 0..batch.num_rows() {
            row += 1;
            let line = row;
            let parsed = (|| -> Result<RowValues<'_>, (usize, String)> {
                let col = |c: usize| batch.column(c).as_ref();
                let customer = match scalar(col(ci), i).map_err(|e| (ci, e))? {
                    Some(Scalar::Str(s)) => std::borrow::Cow::Borrowed(s),
                    Some(Scalar::I64(n)) => std::borrow::Cow::Owned(n.to_string()),
                    None => return Err((ci, "customer id is null".into())),
                    Some(_) => return Err((ci, "expected a string or an integer".into())),
                };
                check_name_text("customer id", &customer, limits::CUSTOMER_ID_BYTES_MAX)
                    .map_err(|e| (ci, e))?;
                let ts = ts_at(col(ti), i, opts.ts_unit).map_err(|e| (ti, e))?;
                let event = match scalar(col(ei), i).map_err(|e| (ei, e))? {
                    Some(Scalar::Str(s)) => s,
                    _ => return Err((ei, "expected a non-null string".into())),
                };
                check_name_text("event name", event, limits::NAME_BYTES_MAX).map_err(|e| (ei, e))?;
                let stage = match si {
                    None => None,
                    Some(s) => match scalar(col(s), i).map_err(|e| (s, e))? {
                        None => None,
                        Some(Scalar::Str(t)) if t.trim().is_empty() => None,
                        Some(Scalar::Str(t)) => {
                            Some(Stage::parse(t.trim()).ok_or_else(|| (s, unknown_stage(t)))?)
                        }
                        Some(_) => return Err((s, "expected a stage name".into())),
                    },
                };
                let mut values = std::mem::take(&mut spare);
                values.clear();
                for &(c, p) in props {
                    if let Some(v) = scalar(col(c), i).map_err(|e| (c, e))? {
                        values.push((p, out.staged.admit(p, v, line).map_err(|e| (c, e))?));
                    }
                }
                Ok(RowValues {
                    customer,
                    ts,
                    event,
                    stage,
                    props: values,
                })
            })();
            match parsed {
                Ok(r) => {
                    out.staged.push(&r);
                    spare = r.props;
                }
                Err((c, reason)) => bad_row(
                    opts,
                    &mut out.skipped,
                    ImportError::Row {
                        file: file.to_owned(),
                        line,
                        column_no: c + 1,
                        column: names.get(c).map_or_else(String::new, |n| (*n).to_owned()),
                        reason,
                    },
                )?,
            }
        }
        tick(row);
    }
    Ok(())
}
