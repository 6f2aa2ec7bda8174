//! Writing events out as CSV or NDJSON in a canonical form: the columns `customer, ts, event,
//! stage`, then every property in dictionary order; rows in (customer, timestamp, ingestion)
//! order; timestamps as ISO 8601 UTC with milliseconds (microseconds when they are not whole
//! milliseconds); nulls as empty CSV fields or left out of the JSON object. Importing an export
//! and exporting again gives the same bytes (docs/SHELL.md, "Exporting").
//!
//! Uses: `dict`, `import`, `model`, `segment`.

use std::io::Write;

use crate::dict::Dicts;
use crate::import::FileFormat;
use crate::model::{Columns, PropType, Stage, format_ts};
use crate::segment::ColumnSet;
use crate::{Error, Snapshot};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the database failed.
    #[error(transparent)]
    Db(#[from] Error),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    /// A stored id has no dictionary entry (corruption).
    #[error("{0} is not in the dictionary")]
    Dangling(String),
}

/// A half-open time range `[from, to)` in µs; `None` is unbounded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    /// Inclusive start.
    pub from: Option<i64>,
    /// Exclusive end.
    pub to: Option<i64>,
}

impl Range {
    /// True when `ts` lies in the range.
    pub fn contains(&self, ts: i64) -> bool {
        self.from.is_none_or(|f| f <= ts) && self.to.is_none_or(|t| ts < t)
    }
}

/// Visits each block's rows that lie in `range` as `f(block, row indices)`; stops at the first
/// error.
fn for_each_block(
    snapshot: &Snapshot,
    range: Range,
    mut visit: impl FnMut(&Columns, &[usize]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut failed = None;
    let mut rows = Vec::new();
    snapshot.scan(ColumnSet::ALL, |cols| {
        if failed.is_some() {
            return;
        }
        rows.clear();
        rows.extend((0..cols.len()).filter(|&i| range.contains(cols.ts[i])));
        if !rows.is_empty()
            && let Err(e) = visit(cols, &rows)
        {
            failed = Some(e);
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// The customer and event names of row `index`.
fn names_at<'d>(dicts: &'d Dicts, cols: &Columns, index: usize) -> Result<(&'d str, &'d str), ExportError> {
    let customer = dicts
        .customers
        .name(cols.cid[index])
        .ok_or_else(|| ExportError::Dangling(format!("customer id {}", cols.cid[index])))?;
    let event = dicts
        .events
        .name(cols.event[index])
        .ok_or_else(|| ExportError::Dangling(format!("event id {}", cols.event[index])))?;
    Ok((customer, event))
}

/// One property of the output.
struct Prop {
    id: u32,
    name: String,
    ty: PropType,
}

fn props(dicts: &Dicts) -> Result<Vec<Prop>, ExportError> {
    (0..dicts.props.len() as u32)
        .map(|id| {
            Ok(Prop {
                id,
                name: dicts
                    .props
                    .name(id)
                    .ok_or_else(|| ExportError::Dangling(format!("property id {id}")))?
                    .to_owned(),
                ty: dicts
                    .prop_types
                    .get(id as usize)
                    .copied()
                    .unwrap_or(PropType::Str),
            })
        })
        .collect()
}

/// A property value as canonical text (CSV) — floats always with a `.` or exponent so that
/// they read back as floats.
fn value_text(dicts: &Dicts, ty: PropType, slot: u64) -> Result<String, ExportError> {
    Ok(match ty {
        PropType::Str => dicts
            .strings
            .name(slot as u32)
            .ok_or_else(|| ExportError::Dangling(format!("string id {slot}")))?
            .to_owned(),
        PropType::I64 => (slot as i64).to_string(),
        PropType::F64 => format!("{:?}", f64::from_bits(slot)),
        PropType::Bool => (slot != 0).to_string(),
    })
}

/// Writes the events of `snapshot` within `range` to `out`; returns the number written.
pub fn write(
    snapshot: &Snapshot,
    format: FileFormat,
    range: Range,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    let d = snapshot.dicts();
    let props = props(&d)?;
    if format == FileFormat::Parquet {
        return write_parquet(snapshot, &d, &props, range, out);
    }
    let mut sink = match format {
        FileFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .buffer_capacity(1 << 16)
                .from_writer(out);
            let mut header = vec!["customer", "ts", "event", "stage"];
            header.extend(props.iter().map(|p| p.name.as_str()));
            w.write_record(&header).map_err(csv_io)?;
            Sink::Csv(Box::new(w))
        }
        FileFormat::Ndjson | FileFormat::Parquet => Sink::Json(out),
    };
    let mut written = 0u64;
    let mut line = Vec::with_capacity(256);
    for_each_block(snapshot, range, |cols, rows| {
        let col_of: Vec<Option<&crate::model::PropColumn>> = props
            .iter()
            .map(|p| cols.props.iter().find(|c| c.id == p.id))
            .collect();
        for &i in rows {
            let (customer, event) = names_at(&d, cols, i)?;
            let stage = Stage::from_code(cols.stage[i]).map_or("", Stage::name);
            let ts = format_ts(cols.ts[i]);
            match &mut sink {
                Sink::Csv(w) => {
                    let mut rec: Vec<String> =
                        vec![customer.to_owned(), ts, event.to_owned(), stage.to_owned()];
                    for (p, c) in props.iter().zip(&col_of) {
                        rec.push(match c {
                            Some(c) if c.valid[i] => value_text(&d, p.ty, c.vals[i])?,
                            _ => String::new(),
                        });
                    }
                    w.write_record(&rec).map_err(csv_io)?;
                }
                Sink::Json(out) => {
                    line.clear();
                    line.extend_from_slice(b"{\"customer\":");
                    serde_json::to_writer(&mut line, customer).map_err(json_io)?;
                    line.extend_from_slice(format!(",\"ts\":\"{ts}\",\"event\":").as_bytes());
                    serde_json::to_writer(&mut line, event).map_err(json_io)?;
                    if !stage.is_empty() {
                        line.extend_from_slice(format!(",\"stage\":\"{stage}\"").as_bytes());
                    }
                    for (p, c) in props.iter().zip(&col_of) {
                        let Some(c) = c.filter(|c| c.valid[i]) else {
                            continue;
                        };
                        line.push(b',');
                        serde_json::to_writer(&mut line, &p.name).map_err(json_io)?;
                        line.push(b':');
                        let slot = c.vals[i];
                        match p.ty {
                            PropType::Str => serde_json::to_writer(&mut line, &value_text(&d, p.ty, slot)?)
                                .map_err(json_io)?,
                            _ => line.extend_from_slice(value_text(&d, p.ty, slot)?.as_bytes()),
                        }
                    }
                    line.extend_from_slice(b"}\n");
                    out.write_all(&line)?;
                }
            }
            written += 1;
        }
        Ok(())
    })?;
    match sink {
        Sink::Csv(mut w) => w.flush()?,
        Sink::Json(out) => out.flush()?,
    }
    Ok(written)
}

enum Sink<'w> {
    Csv(Box<csv::Writer<&'w mut (dyn Write + Send)>>),
    Json(&'w mut (dyn Write + Send)),
}

/// Parquet: `customer` string, `ts` timestamp(µs, UTC), `event` string, `stage` string (null when
/// none), then each property with its type (string, int64, double, boolean), zstd-compressed.
#[cfg(feature = "parquet")]
fn write_parquet(
    snapshot: &Snapshot,
    dicts: &Dicts,
    props: &[Prop],
    range: Range,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    use std::sync::Arc;

    use arrow_array::builder::StringBuilder;
    use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    let pq = |e: parquet::errors::ParquetError| ExportError::Io(std::io::Error::other(e));
    let mut fields = vec![
        Field::new("customer", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, true),
    ];
    for p in props {
        let t = match p.ty {
            PropType::Str => DataType::Utf8,
            PropType::I64 => DataType::Int64,
            PropType::F64 => DataType::Float64,
            PropType::Bool => DataType::Boolean,
        };
        fields.push(Field::new(p.name.as_str(), t, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let wprops = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(3).map_err(pq)?,
        ))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(wprops)).map_err(pq)?;
    let mut written = 0u64;
    for_each_block(snapshot, range, |cols, rows| {
        let mut customer = StringBuilder::new();
        let mut event = StringBuilder::new();
        let mut stage = StringBuilder::new();
        for &i in rows {
            let (c, e) = names_at(dicts, cols, i)?;
            customer.append_value(c);
            event.append_value(e);
            stage.append_option(Stage::from_code(cols.stage[i]).map(Stage::name));
        }
        let ts = TimestampMicrosecondArray::from(rows.iter().map(|&i| cols.ts[i]).collect::<Vec<_>>())
            .with_timezone("UTC");
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(customer.finish()),
            Arc::new(ts),
            Arc::new(event.finish()),
            Arc::new(stage.finish()),
        ];
        for p in props {
            arrays.push(parquet_column(dicts, p, cols, rows)?);
        }
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| ExportError::Io(std::io::Error::other(e)))?;
        writer.write(&batch).map_err(pq)?;
        written += rows.len() as u64;
        Ok(())
    })?;
    writer.close().map_err(pq)?;
    Ok(written)
}

/// Property `prop` of rows `rows` of a block as an Arrow column (null where absent).
#[cfg(feature = "parquet")]
fn parquet_column(
    dicts: &Dicts,
    prop: &Prop,
    cols: &crate::model::Columns,
    rows: &[usize],
) -> Result<arrow_array::ArrayRef, ExportError> {
    use std::sync::Arc;

    use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};

    let c = cols.props.iter().find(|c| c.id == prop.id);
    let slot = |i: usize| c.filter(|c| c.valid[i]).map(|c| c.vals[i]);
    Ok(match prop.ty {
        PropType::Str => {
            let mut b = StringBuilder::new();
            for &i in rows {
                match slot(i) {
                    Some(s) => b.append_value(
                        dicts
                            .strings
                            .name(s as u32)
                            .ok_or_else(|| ExportError::Dangling(format!("string id {s}")))?,
                    ),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        PropType::I64 => {
            let mut b = Int64Builder::new();
            rows.iter()
                .for_each(|&i| b.append_option(slot(i).map(|s| s as i64)));
            Arc::new(b.finish())
        }
        PropType::F64 => {
            let mut b = Float64Builder::new();
            rows.iter()
                .for_each(|&i| b.append_option(slot(i).map(f64::from_bits)));
            Arc::new(b.finish())
        }
        PropType::Bool => {
            let mut b = BooleanBuilder::new();
            rows.iter()
                .for_each(|&i| b.append_option(slot(i).map(|s| s != 0)));
            Arc::new(b.finish())
        }
    })
}

#[cfg(not(feature = "parquet"))]
fn write_parquet(
    _snapshot: &Snapshot,
    _d: &Dicts,
    _props: &[Prop],
    _range: Range,
    _out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    Err(ExportError::Io(std::io::Error::other(
        "this journeydb was built without Parquet support (cargo feature `parquet`)",
    )))
}

fn csv_io(error: csv::Error) -> ExportError {
    ExportError::Io(std::io::Error::other(error))
}

fn json_io(error: serde_json::Error) -> ExportError {
    ExportError::Io(std::io::Error::other(error))
}

#[cfg(test)]
mod tests {
    use crate::model::format_ts;
    use crate::time::{TsUnit, parse_ts};
    use proptest::prelude::*;

    /// The last storable instant is written and read back (jiff 1.0's `from_microsecond`
    /// refuses it; `time::instant` does not).
    #[test]
    fn the_last_storable_instant_round_trips() {
        let us = crate::internals::model::TS_MAX;
        assert_eq!(parse_ts(&format_ts(us), TsUnit::Ms), Ok(us));
        assert_eq!(crate::time::instant(us).map(|at| at.as_microsecond()), Some(us));
    }

    proptest! {
        /// What `format_ts` writes, `parse_ts` reads back exactly.
        #[test]
        fn ts_round_trip(us in -62_135_596_800_000_000i64..=crate::internals::model::TS_MAX) {
            let text = format_ts(us);
            prop_assert_eq!(parse_ts(&text, TsUnit::Ms), Ok(us), "{}", text);
            let jiff = crate::time::instant(us).unwrap();
            prop_assert_eq!(text.parse::<jiff::Timestamp>().unwrap(), jiff);
        }
    }
}
