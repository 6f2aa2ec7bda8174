//! A result table as one Arrow record batch: each column typed from its cells — integers
//! `int64`, numbers (with or without integers) `float64`, text `utf8`, booleans `bool`,
//! instants `timestamp[us, UTC]`, only NULLs `null`; a column mixing kinds is text. Values are
//! those `--format json` writes (a NaN or infinity is NULL there, so it is NULL here).
//!
//! TIMELINE's `properties.NAME` columns form one struct column `properties` (a field per
//! property), as `--format json` nests them in one object.
//!
//! Uses: nothing of the package.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, NullArray, RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, TimeUnit};
use journeydb::{Cell, Table};

/// The Arrow type a column's cells take.
fn column_type(table: &Table, column: usize) -> DataType {
    let mut kind: Option<DataType> = None;
    for row in &table.rows {
        let this = match row.get(column) {
            None | Some(Cell::Null) => continue,
            Some(Cell::Int(_)) => DataType::Int64,
            Some(Cell::Float(_) | Cell::Rate(_)) => DataType::Float64,
            Some(Cell::Str(_)) => DataType::Utf8,
            Some(Cell::Bool(_)) => DataType::Boolean,
            Some(Cell::Time(_)) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        };
        kind = Some(match kind {
            None => this,
            Some(seen) if seen == this => seen,
            Some(DataType::Int64) if this == DataType::Float64 => DataType::Float64,
            Some(DataType::Float64) if this == DataType::Int64 => DataType::Float64,
            Some(_) => DataType::Utf8,
        });
    }
    kind.unwrap_or(DataType::Null)
}

/// A finite float, else NULL (as JSON).
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// The column's cells as an array of `data_type`.
fn column_array(table: &Table, column: usize, data_type: &DataType) -> ArrayRef {
    let cells = table
        .rows
        .iter()
        .map(|row| row.get(column).unwrap_or(&Cell::Null));
    let rows = table.rows.len();
    match data_type {
        DataType::Int64 => {
            let mut builder = Int64Builder::with_capacity(rows);
            cells.for_each(|cell| builder.append_option(cell.as_i64()));
            Arc::new(builder.finish())
        }
        DataType::Float64 => {
            let mut builder = Float64Builder::with_capacity(rows);
            cells.for_each(|cell| builder.append_option(cell.as_f64().and_then(finite)));
            Arc::new(builder.finish())
        }
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(rows);
            cells.for_each(|cell| builder.append_option(cell.as_bool()));
            Arc::new(builder.finish())
        }
        DataType::Timestamp(..) => {
            let mut builder = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
            cells.for_each(|cell| builder.append_option(cell.as_time()));
            Arc::new(builder.finish())
        }
        DataType::Null => Arc::new(NullArray::new(rows)),
        _ => {
            let mut builder = StringBuilder::with_capacity(rows, rows * 8);
            cells.for_each(|cell| match cell {
                Cell::Null => builder.append_null(),
                other => builder.append_value(other.to_string()),
            });
            Arc::new(builder.finish())
        }
    }
}

/// The prefix of the columns that nest into one `properties` column (TIMELINE's).
pub const NESTED: &str = journeydb::PROPERTIES_PREFIX;

/// The result's columns as JSON and Python show them: the `properties.NAME` columns as one
/// `properties` column where the first of them stands; each entry is the column's name and the
/// table columns it holds (one, or the nested ones).
pub fn shown_columns(table: &Table) -> Vec<(String, Vec<usize>)> {
    let mut shown: Vec<(String, Vec<usize>)> = Vec::new();
    let mut nested: Option<usize> = None;
    for (column, name) in table.columns.iter().enumerate() {
        if name.starts_with(NESTED) {
            match nested {
                Some(at) => shown[at].1.push(column),
                None => {
                    nested = Some(shown.len());
                    shown.push(("properties".to_owned(), vec![column]));
                }
            }
        } else {
            shown.push((name.clone(), vec![column]));
        }
    }
    shown
}

/// The table as one record batch (its row count kept even without columns).
pub fn record_batch(table: &Table) -> Result<RecordBatch, ArrowError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, columns) in shown_columns(table) {
        let typed: Vec<(Field, ArrayRef)> = columns
            .iter()
            .map(|&column| {
                let data_type = column_type(table, column);
                let field_name = table.columns[column].strip_prefix(NESTED).unwrap_or(&name);
                let array = column_array(table, column, &data_type);
                (Field::new(field_name, data_type, true), array)
            })
            .collect();
        let nested = table
            .columns
            .get(columns[0])
            .is_some_and(|c| c.starts_with(NESTED));
        if nested {
            let (child_fields, child_arrays): (Vec<Field>, Vec<ArrayRef>) = typed.into_iter().unzip();
            let child_fields = Fields::from(child_fields);
            let array = StructArray::try_new(child_fields.clone(), child_arrays, None)?;
            fields.push(Field::new(name, DataType::Struct(child_fields), true));
            arrays.push(Arc::new(array));
        } else {
            for (field, array) in typed {
                fields.push(field);
                arrays.push(array);
            }
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(table.rows.len()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cells: Vec<Cell>) -> Table {
        let mut table = Table::new(&["x"]);
        table.rows = cells.into_iter().map(|cell| vec![cell]).collect();
        table
    }

    #[test]
    fn column_types_follow_the_cells() {
        let kind = |cells: Vec<Cell>| column_type(&table(cells), 0);
        assert_eq!(kind(vec![Cell::Int(1), Cell::Null]), DataType::Int64);
        assert_eq!(kind(vec![Cell::Int(1), Cell::Float(0.5)]), DataType::Float64);
        assert_eq!(kind(vec![Cell::Float(0.5), Cell::Int(1)]), DataType::Float64);
        assert_eq!(kind(vec![Cell::Rate(0.5), Cell::Int(1)]), DataType::Float64);
        assert_eq!(kind(vec![Cell::Int(1), Cell::Str("a".into())]), DataType::Utf8);
        assert_eq!(kind(vec![Cell::Null, Cell::Null]), DataType::Null);
        assert_eq!(
            kind(vec![Cell::Time(1)]),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn values_are_those_json_writes() {
        let batch = record_batch(&table(vec![
            Cell::Float(f64::NAN),
            Cell::Int(2),
            Cell::Float(f64::INFINITY),
        ]));
        let Ok(batch) = batch else { panic!("no batch") };
        let column = batch.column(0);
        assert_eq!(column.null_count(), 2, "NaN and infinity are NULL, as in JSON");
        let mixed = record_batch(&table(vec![Cell::Int(1), Cell::Str("a".into())]));
        let Ok(mixed) = mixed else { panic!("no batch") };
        let text = mixed
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .map(|a| a.value(0).to_owned());
        assert_eq!(text.as_deref(), Some("1"));
    }
}
