//! `journeydb.Result`: a statement's answer. Rows as Python tuples (`fetchall`), or the columns
//! as an Arrow stream through the PyCapsule interface (`__arrow_c_stream__`), which pyarrow,
//! polars, pandas and DuckDB read without journeydb importing them and without copying the
//! columns' buffers; `_repr_html_` shows the table and the chart the shell draws.
//!
//! Uses: rooms `chart`, `errors`, `table`.

use std::sync::{Arc, OnceLock};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{Array, RecordBatch, RecordBatchIterator, RecordBatchReader};
use journeydb::{Cell, Table};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList, PyTuple};

use crate::errors;

/// A statement's answer (`Connection.query`).
#[pyclass(frozen, name = "Result", module = "journeydb")]
pub struct QueryResult {
    table: Arc<Table>,
    /// The statement (its first word picks the chart).
    statement: String,
    /// The columns as Arrow arrays, built on first use and shared by every export.
    batch: OnceLock<RecordBatch>,
}

impl QueryResult {
    /// The answer `table` of `statement`.
    pub fn new(table: Table, statement: &str) -> QueryResult {
        QueryResult {
            table: Arc::new(table),
            statement: statement.to_owned(),
            batch: OnceLock::new(),
        }
    }

    fn batch(&self) -> PyResult<&RecordBatch> {
        if let Some(batch) = self.batch.get() {
            return Ok(batch);
        }
        let batch = crate::table::record_batch(&self.table)
            .map_err(|e| errors::usage(format!("cannot build the result's Arrow columns: {e}")))?;
        Ok(self.batch.get_or_init(|| batch))
    }
}

/// A cell as a Python value: int, float, str, bool, None, or a timezone-aware UTC datetime.
fn cell_object(
    py: Python<'_>,
    cell: &Cell,
    epoch: &Bound<'_, PyAny>,
    timedelta: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    Ok(match cell {
        Cell::Null => py.None(),
        Cell::Int(n) => n.into_pyobject(py)?.into_any().unbind(),
        Cell::Float(x) | Cell::Rate(x) if x.is_finite() => x.into_pyobject(py)?.into_any().unbind(),
        Cell::Float(_) | Cell::Rate(_) => py.None(),
        Cell::Str(text) => text.into_pyobject(py)?.into_any().unbind(),
        Cell::Bool(value) => value.into_pyobject(py)?.to_owned().into_any().unbind(),
        Cell::Time(us) => epoch.add(timedelta.call1((0, 0, *us))?)?.unbind(),
    })
}

#[pymethods]
impl QueryResult {
    /// The column names, in order.
    #[getter]
    fn columns(&self) -> Vec<String> {
        let shown = crate::table::shown_columns(&self.table);
        shown.into_iter().map(|(name, _)| name).collect()
    }

    /// The statement that was answered.
    #[getter]
    fn statement(&self) -> &str {
        &self.statement
    }

    /// What the statement warned of (unknown events, boundary fits, …).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.table.warnings.clone()
    }

    /// Every row as a tuple (instants as timezone-aware UTC datetimes).
    fn fetchall<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let datetime = py.import("datetime")?;
        let utc = datetime.getattr("timezone")?.getattr("utc")?;
        let epoch = datetime
            .getattr("datetime")?
            .call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        let timedelta = datetime.getattr("timedelta")?;
        let rows = PyList::empty(py);
        let shown = crate::table::shown_columns(&self.table);
        let nested = |columns: &[usize]| {
            let first = columns.first().and_then(|&column| self.table.columns.get(column));
            first.is_some_and(|name| name.starts_with(crate::table::NESTED))
        };
        for row in &self.table.rows {
            let mut cells = Vec::with_capacity(shown.len());
            for (_, columns) in &shown {
                if !nested(columns) {
                    let cell = row.get(columns[0]).unwrap_or(&Cell::Null);
                    cells.push(cell_object(py, cell, &epoch, &timedelta)?);
                    continue;
                }
                // The row's non-null properties, as the JSON object holds them.
                let members = PyDict::new(py);
                for &column in columns {
                    let cell = row.get(column).unwrap_or(&Cell::Null);
                    let full = &self.table.columns[column];
                    let name = full.strip_prefix(crate::table::NESTED).unwrap_or(full);
                    if *cell != Cell::Null {
                        members.set_item(name, cell_object(py, cell, &epoch, &timedelta)?)?;
                    }
                }
                cells.push(members.into_any().unbind());
            }
            rows.append(PyTuple::new(py, cells)?)?;
        }
        Ok(rows)
    }

    /// The rows as `--format json` writes them.
    fn to_json(&self) -> String {
        self.table.to_json()
    }

    fn __len__(&self) -> usize {
        self.table.rows.len()
    }

    fn __repr__(&self) -> String {
        self.table.to_text()
    }

    /// The Arrow PyCapsule stream interface: one record batch holding every column.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is offered as it is; a consumer that asked for another casts itself.
        let _ = requested_schema;
        let batch = self.batch()?.clone();
        let reader: Box<dyn RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new([Ok(batch.clone())], batch.schema()));
        let stream = FFI_ArrowArrayStream::new(reader);
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// The address of column `column`'s value buffer (for the tests that show a consumer reads
    /// it in place; `None` for a column without one).
    fn _buffer_address(&self, column: usize) -> PyResult<Option<usize>> {
        let batch = self.batch()?;
        let data = batch.columns().get(column).map(|array| array.to_data());
        Ok(data.and_then(|data| data.buffers().first().map(|buffer| buffer.as_ptr() as usize)))
    }

    /// An HTML table of the rows (at most 1,000) under the chart the shell draws, as SVG.
    fn _repr_html_(&self) -> String {
        crate::chart::html(&self.statement, &self.table)
    }
}
