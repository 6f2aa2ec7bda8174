//! Rows given as Python dicts, as one Arrow record batch, which `append` then reads as it reads
//! any Arrow stream (the same column rules and row errors). A column per key, in the order keys
//! are first seen; its type from its values: int → int64, float (or ints and floats) → float64,
//! str → utf8, bool → bool, a timezone-aware `datetime` → timestamp[us, UTC]; None or a missing
//! key is NULL. A naive datetime (its zone would be a guess), another type, or a column mixing
//! kinds is an error naming the row (1-based) and the key.
//!
//! Uses: rooms `errors`.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, NullArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::errors::usage;

/// One value of a dict.
enum Value {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Time(i64),
}

impl Value {
    fn kind(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Int(_) => DataType::Int64,
            Value::Float(_) => DataType::Float64,
            Value::Str(_) => DataType::Utf8,
            Value::Bool(_) => DataType::Boolean,
            Value::Time(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        })
    }
}

/// What converting a datetime needs: the datetime class, the epoch and one microsecond.
struct Clock<'py> {
    datetime: Bound<'py, PyAny>,
    epoch: Bound<'py, PyAny>,
    microsecond: Bound<'py, PyAny>,
}

impl<'py> Clock<'py> {
    fn new(py: Python<'py>) -> PyResult<Clock<'py>> {
        let module = py.import("datetime")?;
        let utc = module.getattr("timezone")?.getattr("utc")?;
        let datetime = module.getattr("datetime")?;
        let epoch = datetime.call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        let microsecond = module.getattr("timedelta")?.call1((0, 0, 1))?;
        Ok(Clock {
            datetime,
            epoch,
            microsecond,
        })
    }
}

/// A dict's value as a [`Value`]; `where_` names it in errors.
fn value(item: &Bound<'_, PyAny>, clock: &Clock<'_>, where_: &dyn Fn() -> String) -> PyResult<Value> {
    if item.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = item.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if item.is_instance_of::<PyInt>() {
        let number: i64 = item
            .extract()
            .map_err(|_| usage(format!("{}: {item} does not fit a 64-bit integer", where_())))?;
        return Ok(Value::Int(number));
    }
    if item.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(item.extract()?));
    }
    if let Ok(text) = item.cast::<PyString>() {
        return Ok(Value::Str(text.to_cow()?.into_owned()));
    }
    if item.is_instance(&clock.datetime)? {
        if item.call_method0("utcoffset")?.is_none() {
            return Err(usage(format!(
                "{}: a datetime without a time zone; give it one (tzinfo=datetime.timezone.utc for UTC)",
                where_()
            )));
        }
        let since = item.sub(&clock.epoch)?.floor_div(&clock.microsecond)?;
        return Ok(Value::Time(since.extract()?));
    }
    let type_name = item.get_type().name()?;
    Err(usage(format!(
        "{}: a value of type {type_name}; use int, float, str, bool, None or a datetime with a time zone",
        where_()
    )))
}

/// The dicts `rows` as one record batch.
pub fn record_batch(py: Python<'_>, rows: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    let clock = Clock::new(py)?;
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Vec<Value>> = Vec::new();
    let mut count = 0usize;
    for (index, row) in rows.try_iter()?.enumerate() {
        let row = row?;
        let dict = row.cast::<PyDict>().map_err(|_| {
            usage(format!(
                "row {}: expected a dict, found {}",
                index + 1,
                row.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        for (key, item) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| usage(format!("row {}: a key that is not a str: {key}", index + 1)))?;
            let where_ = || format!("row {}, key `{key}`", index + 1);
            let parsed = value(&item, &clock, &where_)?;
            let at = match names.iter().position(|name| *name == key) {
                Some(at) => at,
                None => {
                    names.push(key.clone());
                    columns.push(Vec::new());
                    names.len() - 1
                }
            };
            let column = &mut columns[at];
            column.resize_with(index, || Value::Null);
            column.push(parsed);
        }
        count = index + 1;
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, mut values) in names.into_iter().zip(columns) {
        values.resize_with(count, || Value::Null);
        let data_type = column_type(&name, &values)?;
        arrays.push(array(&values, &data_type));
        fields.push(Field::new(name, data_type, true));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(count));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| usage(format!("cannot build the rows' columns: {e}")))
}

/// A column's type: its values' one kind, float for ints and floats, else an error.
fn column_type(name: &str, values: &[Value]) -> PyResult<DataType> {
    let mut seen: Option<(DataType, usize)> = None;
    for (index, value) in values.iter().enumerate() {
        let Some(kind) = value.kind() else { continue };
        seen = Some(match seen {
            None => (kind, index),
            Some((seen_kind, first)) if seen_kind == kind => (seen_kind, first),
            Some((DataType::Int64, first)) | Some((DataType::Float64, first))
                if matches!(kind, DataType::Int64 | DataType::Float64) =>
            {
                (DataType::Float64, first)
            }
            Some((seen_kind, first)) => {
                let (kind, seen_kind) = (python_name(&kind), python_name(&seen_kind));
                return Err(usage(format!(
                    "row {}, key `{name}`: a {kind} value in a column of {seen_kind} values (row {} is {seen_kind})",
                    index + 1,
                    first + 1
                )));
            }
        });
    }
    Ok(seen.map_or(DataType::Null, |(kind, _)| kind))
}

/// The Python type whose values make a column of `data_type`.
fn python_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int64 => "int",
        DataType::Float64 => "float",
        DataType::Utf8 => "str",
        DataType::Boolean => "bool",
        _ => "datetime",
    }
}

fn array(values: &[Value], data_type: &DataType) -> ArrayRef {
    match data_type {
        DataType::Int64 => {
            let mut builder = Int64Builder::with_capacity(values.len());
            values
                .iter()
                .for_each(|v| builder.append_option(if let Value::Int(n) = v { Some(*n) } else { None }));
            Arc::new(builder.finish())
        }
        DataType::Float64 => {
            let mut builder = Float64Builder::with_capacity(values.len());
            values.iter().for_each(|v| {
                builder.append_option(match v {
                    Value::Int(n) => Some(*n as f64),
                    Value::Float(x) => Some(*x),
                    _ => None,
                })
            });
            Arc::new(builder.finish())
        }
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(values.len());
            values
                .iter()
                .for_each(|v| builder.append_option(if let Value::Bool(b) = v { Some(*b) } else { None }));
            Arc::new(builder.finish())
        }
        DataType::Timestamp(..) => {
            let mut builder = TimestampMicrosecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            values
                .iter()
                .for_each(|v| builder.append_option(if let Value::Time(us) = v { Some(*us) } else { None }));
            Arc::new(builder.finish())
        }
        DataType::Utf8 => {
            let mut builder = StringBuilder::new();
            values.iter().for_each(|v| match v {
                Value::Str(s) => builder.append_value(s),
                _ => builder.append_null(),
            });
            Arc::new(builder.finish())
        }
        _ => Arc::new(NullArray::new(values.len())),
    }
}
