//! Parquet files (any compression arrow-rs reads: snappy, zstd, gzip, lz4). Columns are found by
//! name as for CSV; their Parquet types decide the property types (strings, integers, floats,
//! booleans); timestamps may be Parquet timestamps (any unit), dates, integers in `--ts-unit`, or
//! strings. The "line" of an error is the 1-based row number.
//!
//! Uses: `ingest`, `limits`, `model`, `time`; rooms `values`.

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

use super::values::unknown_stage;
use super::{ImportError, ImportOptions, Imported, Layout, Parts, RowValues, Scalar, Staged, bad_row};
use crate::ingest::check_name_text;
use crate::limits;
use crate::model::{DAY_US, PropType, Stage};
use crate::time::TsReader;

fn supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
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

/// The value at row `index`, or `None` for a null.
fn scalar(array: &dyn Array, index: usize) -> Result<Option<Scalar<'_>>, String> {
    if array.is_null(index) {
        return Ok(None);
    }
    Ok(Some(match array.data_type() {
        DataType::Utf8 => Scalar::Str(array.as_string::<i32>().value(index)),
        DataType::LargeUtf8 => Scalar::Str(array.as_string::<i64>().value(index)),
        DataType::Utf8View => Scalar::Str(array.as_string_view().value(index)),
        DataType::Boolean => Scalar::Bool(array.as_boolean().value(index)),
        DataType::Int8 => Scalar::I64(i64::from(array.as_primitive::<Int8Type>().value(index))),
        DataType::Int16 => Scalar::I64(i64::from(array.as_primitive::<Int16Type>().value(index))),
        DataType::Int32 => Scalar::I64(i64::from(array.as_primitive::<Int32Type>().value(index))),
        DataType::Int64 => Scalar::I64(array.as_primitive::<Int64Type>().value(index)),
        DataType::UInt8 => Scalar::I64(i64::from(array.as_primitive::<UInt8Type>().value(index))),
        DataType::UInt16 => Scalar::I64(i64::from(array.as_primitive::<UInt16Type>().value(index))),
        DataType::UInt32 => Scalar::I64(i64::from(array.as_primitive::<UInt32Type>().value(index))),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(index);
            Scalar::I64(i64::try_from(v).map_err(|_| format!("{v} is larger than 2^63-1"))?)
        }
        DataType::Float32 => Scalar::F64(f64::from(array.as_primitive::<Float32Type>().value(index))),
        DataType::Float64 => Scalar::F64(array.as_primitive::<Float64Type>().value(index)),
        DataType::Dictionary(..) => match dict_strings(array) {
            Some(d) => match d.value(index)? {
                Some(s) => Scalar::Str(s),
                None => return Ok(None),
            },
            None => return Err(format!("type {} is not supported", array.data_type())),
        },
        t => return Err(format!("type {t} is not supported")),
    }))
}

/// The file's schema with its Utf8 columns read as dictionaries (Int32 keys): arrow-rs then
/// keeps Parquet's own dictionary pages instead of copying every row's string, and plain pages
/// are dictionary-encoded as they are read.
fn dictionary_hint(schema: &arrow_schema::Schema) -> arrow_schema::Schema {
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Per batch, per dictionary value of a string column: whether it passed the column's check,
/// and its staged id once interned (interning waits for a row that is stored, so that a value
/// seen only on rows that are skipped as bad is not staged).
#[derive(Default)]
struct KeyMemo {
    checked: Vec<bool>,
    ids: Vec<Option<u32>>,
}

impl KeyMemo {
    fn reset(&mut self, dicts: Option<DictStrings<'_>>) {
        let n = dicts.map_or(0, |dicts| dicts.values.len());
        self.checked.clear();
        self.checked.resize(n, false);
        self.ids.clear();
        self.ids.resize(n, None);
    }
}

/// The timestamp at row `index` in µs: Parquet timestamps and dates as they are, integers, floats
/// and strings as `reader` reads them.
fn ts_at(array: &dyn Array, index: usize, reader: &mut TsReader) -> Result<i64, String> {
    ts_at_any(array, index, reader).and_then(crate::model::check_ts)
}

/// [`ts_at`] without the range check.
fn ts_at_any(array: &dyn Array, index: usize, reader: &mut TsReader) -> Result<i64, String> {
    if array.is_null(index) {
        return Err("timestamp is null".into());
    }
    let range = |v: Option<i64>| v.ok_or_else(|| "timestamp is out of range".to_owned());
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => range(
            array
                .as_primitive::<TimestampSecondType>()
                .value(index)
                .checked_mul(1_000_000),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => range(
            array
                .as_primitive::<TimestampMillisecondType>()
                .value(index)
                .checked_mul(1_000),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Ok(array.as_primitive::<TimestampMicrosecondType>().value(index))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Ok(array
            .as_primitive::<TimestampNanosecondType>()
            .value(index)
            .div_euclid(1_000)),
        DataType::Date32 => {
            range(i64::from(array.as_primitive::<Date32Type>().value(index)).checked_mul(DAY_US))
        }
        _ => match scalar(array, index)? {
            Some(Scalar::Str(s)) => reader.text(s),
            Some(Scalar::I64(n)) => reader.integer(n),
            Some(Scalar::F64(x)) => reader.float(x),
            _ => Err(format!("type {} cannot hold a timestamp", array.data_type())),
        },
    }
}

/// Reads a Parquet file.
pub(crate) fn read(
    file: &Path,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
) -> Result<Imported, ImportError> {
    read_with(file, opts, tick, true, BATCH_ROWS, None).map(|(out, _)| out)
}

/// Reads a Parquet file in parts (see [`Parts`]), in batches of at most `parts.rows` rows;
/// returns the bad rows skipped, and false when the sink stopped the read.
pub(crate) fn read_parts(
    file: &Path,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
    parts: Parts<'_>,
) -> Result<(Vec<ImportError>, Option<crate::time::Inferred>, bool), ImportError> {
    let batch_rows = BATCH_ROWS.min(parts.rows.max(1));
    read_with(file, opts, tick, true, batch_rows, Some(parts))
        .map(|(out, done)| (out.skipped, out.ts.inferred(), done))
}

/// The most rows per byte of file that [`read_with`] makes room for in advance.
const RESERVE_ROWS_PER_BYTE: u64 = 64;

/// The rows to make room for when a file of `file_bytes` announces `announced` rows: the
/// announced count, unless negative (none) or beyond [`RESERVE_ROWS_PER_BYTE`] per byte.
fn believed_rows(announced: i64, file_bytes: u64) -> usize {
    let rows = u64::try_from(announced)
        .unwrap_or(0)
        .min(file_bytes.saturating_mul(RESERVE_ROWS_PER_BYTE));
    usize::try_from(rows).unwrap_or(usize::MAX)
}

/// Rows per decoded batch.
const BATCH_ROWS: usize = 64 * 1024;

/// [`read`], staging clean batches column by column when `by_columns` (else every row through
/// the row path: the reference the tests compare the column path with), in batches of
/// `batch_rows`; with `parts`, the staged rows are handed on part by part (the rows returned
/// are those after the last part: none). The flag is false when a sink stopped the read.
fn read_with(
    file: &Path,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
    by_columns: bool,
    batch_rows: usize,
    parts: Option<Parts<'_>>,
) -> Result<(Imported, bool), ImportError> {
    let io = |source| ImportError::Io {
        file: file.to_owned(),
        source,
    };
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    // The file's size bounds how many rows its metadata is believed to announce.
    let file_bytes = f.metadata().map_or(0, |m| m.len());
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(format!("not a Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    // Strings read as dictionaries when arrow-rs accepts the hint for this file.
    let hinted = std::fs::File::open(file).map_err(io).map(|f| {
        let opts = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_schema(std::sync::Arc::new(dictionary_hint(&schema)));
        ParquetRecordBatchReaderBuilder::try_new_with_options(f, opts).ok()
    })?;
    // Room for the rows the metadata announces (≈ 0.05 s less at 10M rows; at 100M, capped
    // at 16M rows, the columns' doublings copied ~4 GB while the decoder waited), but not for
    // more than 64 rows per byte of file: a real file's timestamps alone take more, so a
    // metadata count beyond that is not believed.
    let rows = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .fold(0i64, i64::saturating_add);
    let believed = believed_rows(rows, file_bytes);
    let reader = hinted
        .unwrap_or(builder)
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let source = arrow::Source {
        file,
        schema: &schema,
        believed,
        batch_rows,
    };
    arrow::stage_reader(source, reader, opts, tick, by_columns, parts)
}

/// The staged property of every column that is not a core column, as (column, property)
/// pairs; an error for a column of a type journeydb cannot store.
fn stage_props(
    schema: &arrow_schema::Schema,
    core: Layout,
    staged: &mut Staged,
    opts: &ImportOptions,
) -> Result<Vec<(usize, usize)>, String> {
    let mut props = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if !supported(field.data_type()) {
            return Err(format!(
                "column `{}` has type {}, which journeydb cannot store (strings, integers, floats, booleans, timestamps)",
                field.name(),
                field.data_type()
            ));
        }
        if core.is_core(i) {
            continue;
        }
        let p = staged
            .prop(field.name(), opts)
            .map_err(|e| format!("column {}: {e}", i + 1))?;
        props.push((i, p));
    }
    Ok(props)
}

/// Timestamps of a batch column in µs, when it is a Parquet timestamp without nulls whose
/// values all convert (else `None`: the row path reads it and reports the bad rows).
fn batch_ts(array: &dyn Array) -> Option<Vec<i64>> {
    if array.null_count() > 0 {
        return None;
    }
    let ts = batch_ts_any(array)?;
    // A timestamp out of range: the row path reports its row.
    ts.iter()
        .all(|&t| crate::model::check_ts(t).is_ok())
        .then_some(ts)
}

/// The values of an integer column without nulls (timestamps whose unit the file's reader
/// decides).
fn batch_ints(array: &dyn Array) -> Option<Vec<i64>> {
    if array.null_count() > 0 {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().values().to_vec()),
        DataType::Int32 => Some(
            array
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        _ => None,
    }
}

/// [`batch_ts`] without the null and range checks.
fn batch_ts_any(array: &dyn Array) -> Option<Vec<i64>> {
    let scale = |v: &[i64], f: i64| v.iter().map(|&x| x.checked_mul(f)).collect::<Option<Vec<i64>>>();
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Some(array.as_primitive::<TimestampMicrosecondType>().values().to_vec())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scale(array.as_primitive::<TimestampMillisecondType>().values(), 1_000)
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            scale(array.as_primitive::<TimestampSecondType>().values(), 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(
            array
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .map(|&x| x.div_euclid(1_000))
                .collect(),
        ),
        _ => None,
    }
}

/// What the column path checked of a batch (on the decoder thread, see [`check_columns`]):
/// every dictionary key is inside its dictionary and every dictionary value passes its check;
/// the timestamps in µs, the stage of each row, and each property column's type with its
/// values (`None` for strings, whose keys are read from the batch).
struct CheckedCols {
    ts: Vec<i64>,
    /// `ts` holds the column's integers, not yet read as timestamps.
    ts_ints: bool,
    stage: Vec<Option<Stage>>,
    props: Vec<(PropType, Option<Vec<Option<u64>>>)>,
}

/// Checks a whole batch for the column path — no per-row type dispatch, each distinct string
/// checked once per dictionary (`memos`) — when nothing in it needs the row path: no null or
/// unconvertible required value, dictionary strings that all pass their checks, property
/// values of a type the column path stages. `None` otherwise (the row path then stages the
/// batch and reports its bad rows exactly).
fn check_columns(
    batch: &RecordBatch,
    core: Layout,
    props: &[(usize, usize)],
    memos: &mut DictMemos,
) -> Option<CheckedCols> {
    let col = |c: usize| batch.column(c).as_ref();
    let name_ok = |max: usize| move |s: &str| check_name_text("", s, max).is_ok();
    let event_d = dict_strings(col(core.event?))?;
    // Customer ids as dictionary strings, or integers (written in decimal: always valid ids).
    let cust_nulls = match dict_strings(col(core.customer)) {
        Some(cust_d) => batch_keys(
            cust_d,
            &mut memos.customer,
            name_ok(limits::CUSTOMER_ID_BYTES_MAX),
        )?
        .has_nulls(),
        None => col(core.customer).as_primitive_opt::<Int64Type>()?.null_count() > 0,
    };
    let event = batch_keys(event_d, &mut memos.event, name_ok(limits::NAME_BYTES_MAX))?;
    if cust_nulls || event.has_nulls() {
        return None;
    }
    // Integer timestamps are read by the file's timestamp reader when the batch is staged.
    let (ts, ts_ints) = match batch_ts(col(core.ts)) {
        Some(ts) => (ts, false),
        None => (batch_ints(col(core.ts))?, true),
    };
    // Stage per dictionary value (blank: none), per row.
    let stage: Vec<Option<Stage>> = match core.stage {
        None => vec![None; batch.num_rows()],
        Some(s) => {
            let d = dict_strings(col(s))?;
            let parsed: Vec<Option<Stage>> = d
                .values
                .iter()
                .map(|v| {
                    let t = v.unwrap_or("").trim();
                    if t.is_empty() {
                        Some(None)
                    } else {
                        Stage::parse(t).map(Some)
                    }
                })
                .collect::<Option<_>>()?;
            let keys = batch_keys(d, &mut memos.stage, |_| true)?;
            (0..batch.num_rows())
                .map(|i| {
                    keys.get(i)
                        .and_then(|k| parsed.get(k as usize).copied().flatten())
                })
                .collect()
        }
    };
    let mut checked = Vec::with_capacity(props.len());
    memos.props.resize_with(props.len(), DictMemo::default);
    for (&(c, _), memo) in props.iter().zip(&mut memos.props) {
        let a = col(c);
        checked.push(match a.data_type() {
            DataType::Dictionary(..) => {
                let short = |s: &str| s.len() <= limits::STRING_VALUE_BYTES_MAX;
                batch_keys(dict_strings(a)?, memo, short)?;
                (PropType::Str, None)
            }
            DataType::Int64 => {
                let x = a.as_primitive::<Int64Type>();
                (
                    PropType::I64,
                    Some(x.iter().map(|v| v.map(|v| v as u64)).collect()),
                )
            }
            DataType::Float64 => {
                let x = a.as_primitive::<Float64Type>();
                if x.iter().flatten().any(|v| !v.is_finite()) {
                    return None;
                }
                (
                    PropType::F64,
                    Some(x.iter().map(|v| v.map(f64::to_bits)).collect()),
                )
            }
            _ => return None,
        });
    }
    Some(CheckedCols {
        ts,
        ts_ints,
        stage,
        props: checked,
    })
}

/// Stages a batch that [`check_columns`] accepted, column by column, interning each distinct
/// string once per dictionary (`memos`) in row order, as the row path does. Returns false,
/// having staged nothing, when a property column's type is not the one staged so far (the row
/// path then stages the batch and reports the rows).
fn stage_columns(
    batch: &RecordBatch,
    mut checked: CheckedCols,
    (core, props): (Layout, &[(usize, usize)]),
    out: &mut Imported,
    first_line: u64,
    memos: &mut DictMemos,
) -> bool {
    let col = |c: usize| batch.column(c).as_ref();
    // The column's type must be the staged one (or inferred here, from this batch).
    if checked.props.len() != props.len()
        || props
            .iter()
            .zip(&checked.props)
            .any(|(&(_, p), (given, _))| out.staged.prop_type(p).is_some_and(|t| t != *given))
    {
        return false;
    }
    // Keys and dictionaries as checked on the decoder thread (a column that is not one would
    // not have passed).
    let Some(event_col) = core.event else {
        return false;
    };
    let Some(event_d) = dict_strings(col(event_col)) else {
        return false;
    };
    let Some(cust) = CustomerCol::of(col(core.customer), memos) else {
        return false;
    };
    memos.event.load(event_d.values);
    let event = Keys(event_d.keys);
    // Integer timestamps read as the row path reads them, the last check before staging (a
    // value that does not fit the file's unit sends the batch there, which reports its row).
    if checked.ts_ints && !read_int_ts(&mut checked.ts, &mut out.ts) {
        return false;
    }
    let staged = &mut out.staged;
    let base = staged.len();
    for (i, t) in checked.ts.iter().enumerate() {
        let Some(e) = event.get(i) else {
            continue;
        };
        let Some(cid) = cust.staged_id(i, memos, &mut staged.customers) else {
            continue;
        };
        let Some(eid) = memos.event.id(e, |s| staged.events.intern(s)) else {
            continue;
        };
        staged.cust.push(cid);
        staged.ts.push(*t);
        staged.event.push(eid);
        staged.stage.push(checked.stage.get(i).copied().flatten());
    }
    memos.props.resize_with(props.len(), DictMemo::default);
    for ((&(c, p), (given, values)), memo) in props.iter().zip(checked.props).zip(&mut memos.props) {
        let Some(prop) = staged.props.get_mut(p) else {
            continue;
        };
        let present: Vec<Option<u64>> = match (values, dict_strings(col(c))) {
            (Some(v), _) => v,
            (None, Some(d)) => {
                memo.load(d.values);
                let keys = Keys(d.keys);
                (0..batch.num_rows())
                    .map(|i| memo.id(keys.get(i)?, |s| prop.strings.intern(s)).map(u64::from))
                    .collect()
            }
            (None, None) => continue,
        };
        // As the row path: padded up to a row with a value, nothing after the last one.
        let Some(last) = present.iter().rposition(Option::is_some) else {
            continue;
        };
        if prop.ty.is_none() {
            prop.ty = Some(given);
            let first = present.iter().position(Option::is_some).unwrap_or(0);
            prop.inferred_at = first_line + first as u64;
        }
        prop.valid.resize(base, false);
        prop.vals.resize(base, 0);
        prop.valid.extend(present[..=last].iter().map(Option::is_some));
        prop.vals.extend(present[..=last].iter().map(|v| v.unwrap_or(0)));
    }
    true
}

/// A row checked and parsed, with the dictionary keys of its customer and event (when read
/// from dictionaries).
type Parsed<'a> = (RowValues<'a>, Option<usize>, Option<usize>);

/// Row `index` of dictionary column `dicts` with its key, `check`ed once per batch and key (`memo`);
/// `None` when the column is not a dictionary or the row is null (the caller's general path
/// then reads and checks it).
fn memo_str<'a>(
    dicts: Option<DictStrings<'a>>,
    memo: &mut KeyMemo,
    index: usize,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<(&'a str, usize)>, String> {
    let Some(dicts) = dicts else { return Ok(None) };
    let Some(k) = dicts.key(index)? else {
        return Ok(None);
    };
    let s = dicts.values.value(k);
    match memo.checked.get_mut(k) {
        Some(done) if *done => {}
        Some(done) => {
            check(s)?;
            *done = true;
        }
        None => check(s)?,
    }
    Ok(Some((s, k)))
}

/// What staging the batches of one file needs.
#[derive(Clone, Copy)]
struct Staging<'a> {
    file: &'a Path,
    opts: &'a ImportOptions,
    names: &'a [&'a str],
    core: Layout,
    props: &'a [(usize, usize)],
}

/// Checks and stages the rows of decoded batches (in file order); with parts, hands the staged
/// rows on part by part (with the room to make for the next part's rows). Returns false when
/// a sink stopped the read.
fn stage_batches(
    rx: std::sync::mpsc::Receiver<Result<(RecordBatch, Option<CheckedCols>), arrow_schema::ArrowError>>,
    st: &Staging<'_>,
    out: &mut Imported,
    tick: &mut dyn FnMut(u64),
    mut parts: Option<(Parts<'_>, usize)>,
) -> Result<bool, ImportError> {
    let Staging {
        file, core, props, ..
    } = *st;
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let mut row = 0u64;
    let mut memos = DictMemos::default();
    for batch in rx {
        let (batch, checked) = batch.map_err(|e| bad(format!("after row {row}: {e}")))?;
        if let Some(checked) = checked
            && stage_columns(&batch, checked, (core, props), out, row + 1, &mut memos)
        {
            row += batch.num_rows() as u64;
            tick(row);
        } else {
            stage_rows(&batch, st, out, &mut row)?;
            tick(row);
        }
        if let Some((p, room)) = &mut parts
            && out.staged.len() >= p.rows
        {
            let part = out.staged.take_part(*room);
            // Staged ids start again in the next part.
            memos.forget_ids();
            if !(p.sink)(part) {
                return Ok(false);
            }
        }
    }
    if let Some((p, _)) = &mut parts
        && !out.staged.is_empty()
    {
        let part = out.staged.take_part(0);
        return Ok((p.sink)(part));
    }
    Ok(true)
}

/// The customer id of row `index` of a column that is not a dictionary: a string, or an integer
/// written in decimal.
fn customer_at(array: &dyn Array, index: usize) -> Result<std::borrow::Cow<'_, str>, String> {
    let c = match scalar(array, index)? {
        Some(Scalar::Str(s)) => std::borrow::Cow::Borrowed(s),
        Some(Scalar::I64(n)) => std::borrow::Cow::Owned(n.to_string()),
        None => return Err("customer id is null".into()),
        Some(_) => return Err("expected a string or an integer".into()),
    };
    check_name_text("customer id", &c, limits::CUSTOMER_ID_BYTES_MAX)?;
    Ok(c)
}

/// The event name of row `index` of a column that is not a dictionary.
fn event_at(array: &dyn Array, index: usize) -> Result<&str, String> {
    let Some(Scalar::Str(e)) = scalar(array, index)? else {
        return Err("expected a non-null string".into());
    };
    check_name_text("event name", e, limits::NAME_BYTES_MAX)?;
    Ok(e)
}

/// The event name of row `index`, and its dictionary key when the column is a dictionary (checked
/// once per batch through `memo`).
fn event_of<'b>(
    array: &'b dyn Array,
    index: usize,
    dict: Option<DictStrings<'b>>,
    memo: &mut KeyMemo,
) -> Result<(&'b str, Option<usize>), String> {
    let hit = memo_str(dict, memo, index, |s| {
        check_name_text("event name", s, limits::NAME_BYTES_MAX)
    })?;
    match hit {
        Some((name, key)) => Ok((name, Some(key))),
        None => Ok((event_at(array, index)?, None)),
    }
}

/// The stage of row `index` (`None` when null or blank); a dictionary column's values are parsed
/// once each (`memo`, per dictionary key).
fn stage_at(
    array: &dyn Array,
    index: usize,
    dict: Option<&DictStrings<'_>>,
    memo: &mut [Option<Option<Stage>>],
) -> Result<Option<Stage>, String> {
    let key = match dict {
        Some(d) => d.key(index)?,
        None => None,
    };
    if let Some(known) = key.and_then(|k| memo.get(k).copied().flatten()) {
        return Ok(known);
    }
    let parsed = match scalar(array, index)? {
        None => None,
        Some(Scalar::Str(t)) if t.trim().is_empty() => None,
        Some(Scalar::Str(t)) => Some(Stage::parse(t.trim()).ok_or_else(|| unknown_stage(t))?),
        Some(_) => return Err("expected a stage name".into()),
    };
    if let Some(m) = key.and_then(|k| memo.get_mut(k)) {
        *m = Some(parsed);
    }
    Ok(parsed)
}

/// Stages the rows of a batch one by one, reporting (or skipping) bad rows; `row` counts the
/// rows of the file read so far.
fn stage_rows(
    batch: &RecordBatch,
    st: &Staging<'_>,
    out: &mut Imported,
    row: &mut u64,
) -> Result<(), ImportError> {
    let Staging {
        file,
        opts,
        names,
        core,
        props,
    } = *st;
    let (ci, ti, ei, si) = (core.customer, core.ts, core.event, core.stage);
    let (mut cust_memo, mut event_memo) = (KeyMemo::default(), KeyMemo::default());
    // Per dictionary value of the stage column: its parsed stage, once parsed.
    let mut stage_memo: Vec<Option<Option<Stage>>> = Vec::new();
    {
        let col = |c: usize| batch.column(c).as_ref();
        let (cust_dict, event_dict) = (dict_strings(col(ci)), ei.and_then(|e| dict_strings(col(e))));
        let stage_dict = si.and_then(|s| dict_strings(col(s)));
        cust_memo.reset(cust_dict);
        event_memo.reset(event_dict);
        stage_memo.clear();
        stage_memo.resize(stage_dict.map_or(0, |d| d.values.len()), None);
        // One property buffer per batch, reused row after row (its values borrow the batch).
        let mut spare = Vec::with_capacity(props.len());
        for i in 0..batch.num_rows() {
            *row += 1;
            let line = *row;
            // A string of a dictionary column is checked once per batch (memo), others per row.
            let parsed = (|| -> Result<Parsed<'_>, (usize, String)> {
                let cust_hit = memo_str(cust_dict, &mut cust_memo, i, |s| {
                    check_name_text("customer id", s, limits::CUSTOMER_ID_BYTES_MAX)
                })
                .map_err(|e| (ci, e))?;
                let customer = match cust_hit {
                    Some((s, _)) => std::borrow::Cow::Borrowed(s),
                    None => customer_at(col(ci), i).map_err(|e| (ci, e))?,
                };
                let ts = ts_at(col(ti), i, &mut out.ts).map_err(|e| (ti, e))?;
                let (event, event_hit) = match ei {
                    None => (opts.event.as_deref().unwrap_or_default(), None),
                    Some(ei) => event_of(col(ei), i, event_dict, &mut event_memo).map_err(|e| (ei, e))?,
                };
                let stage = match si {
                    None => None,
                    Some(s) => {
                        stage_at(col(s), i, stage_dict.as_ref(), &mut stage_memo).map_err(|e| (s, e))?
                    }
                };
                let mut values = std::mem::take(&mut spare);
                values.clear();
                for &(c, p) in props {
                    if let Some(v) = scalar(col(c), i).map_err(|e| (c, e))? {
                        values.push((p, out.staged.admit(p, v, line).map_err(|e| (c, e))?));
                    }
                }
                Ok((
                    RowValues {
                        customer,
                        ts,
                        event,
                        stage,
                        props: values,
                    },
                    cust_hit.map(|h| h.1),
                    event_hit,
                ))
            })();
            match parsed {
                Ok((r, cust_key, event_key)) => {
                    let cust = cust_key.and_then(|k| cust_memo.ids.get_mut(k));
                    let event = event_key.and_then(|k| event_memo.ids.get_mut(k));
                    out.staged.push_memo(&r, cust, event);
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
    }
    Ok(())
}

mod arrow;
pub use arrow::read_arrow;
mod keys;
use keys::{CustomerCol, DictMemo, DictMemos, DictStrings, Keys, batch_keys, dict_strings, read_int_ts};

#[cfg(test)]
mod tests;
