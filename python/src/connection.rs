//! `journeydb.Connection` and `journeydb.Snapshot`: a database opened from Python. Every query,
//! import, append and maintenance call runs with the GIL released; a connection may be used
//! from several threads at once (each call takes its own reference to the database, so `close`
//! waits for none and frees the database when the last call ends). A connection used in a
//! forked child raises at once instead of touching the parent's locks.
//!
//! Uses: rooms `errors`, `result`, `rows`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::ffi_stream::RecordBatchStreamReader;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_pyarrow::FromPyArrow;
use journeydb::import::{FileFormat, ImportOptions};
use journeydb::{Db, Options, Query, QueryOptions, TsUnit};
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{self, usage};
use crate::result::QueryResult;

/// An open database (`journeydb.connect`).
#[pyclass(frozen, module = "journeydb")]
pub struct Connection {
    db: RwLock<Option<Arc<Db>>>,
    path: PathBuf,
    read_only: bool,
    /// The process that opened it: a forked child must open its own.
    pid: u32,
}

/// A consistent view of the database at one moment (`Connection.snapshot()`).
#[pyclass(frozen, module = "journeydb")]
pub struct Snapshot {
    snapshot: journeydb::Snapshot,
    pid: u32,
}

/// Opens (or creates) the database at `path`.
#[pyfunction]
#[pyo3(signature = (path, read_only = false, create = true))]
pub fn connect(py: Python<'_>, path: PathBuf, read_only: bool, create: bool) -> PyResult<Connection> {
    let opened = py.detach(|| {
        if read_only {
            Db::open_read_only(&path)
        } else if path.join("CURRENT").exists() || !create {
            Db::open(&path, Options::default())
        } else {
            Db::create(&path, Options::default())
        }
    });
    let db = opened.map_err(|e| errors::storage_error(py, e, ""))?;
    Ok(Connection::new(db, path, read_only))
}

/// The demo database at `path` (made with about `events` events when missing), connected.
#[pyfunction]
#[pyo3(signature = (path, events = 1_000_000))]
pub fn demo(py: Python<'_>, path: PathBuf, events: u64) -> PyResult<Connection> {
    let customers = (events / 25).max(1);
    let made = py.detach(|| journeydb::demo::open_or_create(&path, events, customers, 42));
    let (db, _) = made.map_err(|e| errors::storage_error(py, e, ""))?;
    Ok(Connection::new(db, path, false))
}

/// Refuses a call from a process other than the one that opened the handle.
fn same_process(pid: u32) -> PyResult<()> {
    if std::process::id() == pid {
        return Ok(());
    }
    Err(PyErr::new::<errors::StorageError, _>(format!(
        "this handle was opened in process {pid}; a forked child must open its own connection"
    )))
}

impl Connection {
    fn new(db: Db, path: PathBuf, read_only: bool) -> Connection {
        Connection {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            read_only,
            pid: std::process::id(),
        }
    }

    /// The database, or an error for a closed connection or a forked child.
    fn db(&self) -> PyResult<Arc<Db>> {
        same_process(self.pid)?;
        self.db.read().clone().ok_or_else(|| {
            PyErr::new::<errors::StorageError, _>(format!(
                "the connection to {} is closed",
                self.path.display()
            ))
        })
    }

    /// Reads the batches of `reader` and imports them as one unit; returns the events written.
    fn import_batches(
        &self,
        py: Python<'_>,
        label: &str,
        reader: impl Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>> + Send,
        schema: &arrow_schema::Schema,
        options: &ImportOptions,
    ) -> PyResult<u64> {
        let db = self.db()?;
        let label = Path::new(label);
        let options = with_database_types(&db, options.clone());
        let read =
            py.detach(|| journeydb::import::read_arrow(label, schema, reader, &options, &mut |_, _| {}));
        let imported = read.map_err(|e| errors::import_error(py, e))?;
        if let Some(inferred) = imported.ts_inferred() {
            let warnings = py.import("warnings")?;
            warnings.call_method1("warn", (format!("{label}: {inferred}", label = label.display()),))?;
        }
        let events = imported.staged.len() as u64;
        py.detach(|| db.import(imported.staged))
            .map_err(|e| errors::storage_error(py, e, ""))?;
        Ok(events)
    }
}

/// `options` with the types of the database's properties fixed, as the shell's `import` does.
fn with_database_types(db: &Db, mut options: ImportOptions) -> ImportOptions {
    options.fix_types_of(&db.snapshot().dicts(), false);
    options
}

/// Import options from keyword arguments (the shell's `import` flags, with `_` for `-`).
fn import_options(arguments: Option<&Bound<'_, PyDict>>) -> PyResult<ImportOptions> {
    let mut options = ImportOptions::default();
    let Some(arguments) = arguments else {
        return Ok(options);
    };
    for (key, value) in arguments.iter() {
        let key: String = key.extract()?;
        let text = || -> PyResult<String> { value.extract::<String>() };
        match key.as_str() {
            "format" => {
                let name = text()?;
                options.format = Some(
                    FileFormat::from_path(Path::new(&format!("x.{name}")))
                        .ok_or_else(|| usage(format!("format `{name}`: expected csv, ndjson or parquet")))?,
                );
            }
            "ts_unit" => {
                let name = text()?;
                options.ts_unit = Some(
                    TsUnit::parse(&name)
                        .ok_or_else(|| usage(format!("ts_unit `{name}`: expected s, ms, us or ns")))?,
                );
            }
            "ts_format" => options.ts_format = Some(text()?),
            "event" => options.event = Some(text()?),
            "customer_col" => options.customer_col = Some(text()?),
            "ts_col" => options.ts_col = Some(text()?),
            "event_col" => options.event_col = Some(text()?),
            "stage_col" => options.stage_col = Some(text()?),
            "skip_bad" => options.skip_bad = value.extract()?,
            other => {
                return Err(usage(format!(
                    "unknown import option `{other}`; the options are format, ts_unit, ts_format, event, customer_col, ts_col, event_col, stage_col, skip_bad"
                )));
            }
        }
    }
    Ok(options)
}

#[pymethods]
impl Connection {
    /// Runs a statement (docs/QUERY.md); statements that change the database (FORGET CUSTOMER,
    /// CREATE COHORT, DROP COHORT) are carried out.
    fn query(&self, py: Python<'_>, text: &str) -> PyResult<QueryResult> {
        let db = self.db()?;
        let answer = py.detach(|| db.query_with(text, &QueryOptions::default()));
        answer
            .map(|table| QueryResult::new(table, text))
            .map_err(|e| errors::query_error(py, e, text))
    }

    /// Appends an Arrow stream (anything with `__arrow_c_stream__`: a pyarrow Table, a pandas or
    /// polars DataFrame, a DuckDB relation) as one unit: every row or none. Columns `customer`,
    /// `ts`, `event`, optionally `stage`, any others properties; keyword options as for
    /// `import_file`. Returns the events written.
    #[pyo3(signature = (data, **options))]
    fn _append_arrow(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        let options = import_options(options)?;
        let reader = RecordBatchStreamReader::from_pyarrow_bound(data)?;
        let schema = reader.schema();
        self.import_batches(py, "<arrow stream>", reader, &schema, &options)
    }

    /// Appends a list of dicts as one unit (see the rows' rules in the package's docs).
    #[pyo3(signature = (rows, **options))]
    fn _append_rows(
        &self,
        py: Python<'_>,
        rows: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        let options = import_options(options)?;
        let batch = crate::rows::record_batch(py, rows)?;
        let schema = batch.schema();
        self.import_batches(py, "<rows>", std::iter::once(Ok(batch)), &schema, &options)
    }

    /// Imports a file (CSV, NDJSON, Parquet; optionally .gz or .zst) as one unit. `progress`,
    /// if given, is called with (bytes read, rows read) at once and then at most every 100 ms;
    /// an exception it raises is raised when the import has ended (it does not stop it). Returns a dict: events,
    /// skipped (messages of the bad rows skipped), streamed, first_ts, last_ts (µs), and
    /// ts_inferred (what was decided about integer timestamps, or None).
    #[pyo3(signature = (path, progress = None, **options))]
    fn import_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        progress: Option<Bound<'py, PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let options = with_database_types(&db, import_options(options)?);
        let callback = progress.map(Bound::unbind);
        let mut failure: Option<PyErr> = None;
        // The first report is passed on at once, then at most one per 100 ms.
        let mut last: Option<std::time::Instant> = None;
        let done = py.detach(|| {
            let mut report = |bytes: u64, rows: u64| {
                let Some(callback) = &callback else { return };
                if failure.is_some()
                    || last.is_some_and(|at| at.elapsed() < std::time::Duration::from_millis(100))
                {
                    return;
                }
                last = Some(std::time::Instant::now());
                Python::attach(|py| {
                    if let Err(e) = callback.call1(py, (bytes, rows)) {
                        failure = Some(e);
                    }
                });
            };
            db.import_file(&path, &options, &mut report)
        });
        let done = done.map_err(|e| errors::storage_error(py, e, ""))?;
        if let Some(err) = failure {
            return Err(err);
        }
        let out = PyDict::new(py);
        out.set_item("events", done.events)?;
        out.set_item(
            "skipped",
            done.skipped.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )?;
        out.set_item("streamed", done.streamed)?;
        out.set_item("first_ts", done.timestamps.first)?;
        out.set_item("last_ts", done.timestamps.last)?;
        out.set_item(
            "ts_inferred",
            done.ts_inferred.map(|inferred| inferred.to_string()),
        )?;
        Ok(out)
    }

    /// Writes every event (or those in `start`..`end`, µs, end exclusive) to `path`: CSV,
    /// NDJSON or Parquet by the file's name, as the shell's `export`. Returns the events written.
    #[pyo3(signature = (path, start = None, end = None))]
    fn export(&self, py: Python<'_>, path: PathBuf, start: Option<i64>, end: Option<i64>) -> PyResult<u64> {
        let db = self.db()?;
        let format = FileFormat::from_path(&path).ok_or_else(|| {
            usage(format!(
                "{}: cannot tell the format from the name (.csv, .ndjson, .parquet)",
                path.display()
            ))
        })?;
        let written = py.detach(|| -> Result<u64, String> {
            let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let range = journeydb::export::Range { from: start, to: end };
            let count = journeydb::export::write(&db.snapshot(), format, range, &mut out)
                .map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(count)
        });
        written.map_err(PyErr::new::<errors::StorageError, _>)
    }

    /// The database's counts and sizes, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let stats = py.detach(|| db.stats());
        let out = PyDict::new(py);
        out.set_item("events", stats.events)?;
        out.set_item("customers", stats.customers)?;
        out.set_item("segments", stats.segments)?;
        out.set_item("buffered_events", stats.buffered_events)?;
        out.set_item("bytes_on_disk", stats.bytes_on_disk)?;
        out.set_item("bytes_per_event", stats.bytes_per_event)?;
        Ok(out)
    }

    /// Seals buffered events into a segment.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db()?;
        py.detach(|| db.flush())
            .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// Merges the segments into one (and carries out pending erasures); returns the segments merged.
    fn compact(&self, py: Python<'_>) -> PyResult<usize> {
        let db = self.db()?;
        py.detach(|| db.compact())
            .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// Checks every checksum and dictionary reference; returns the sealed events checked.
    fn verify(&self, py: Python<'_>) -> PyResult<u64> {
        let db = self.db()?;
        py.detach(|| db.verify())
            .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// Erases a customer (FORGET CUSTOMER); returns the events erased.
    fn forget(&self, py: Python<'_>, customer: &str) -> PyResult<u64> {
        let db = self.db()?;
        py.detach(|| db.forget_customer(customer))
            .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// Links anonymous ids to known ids (`LINK 'anonymous' TO 'known'` for each pair), all or
    /// nothing; returns the links that are new.
    fn link(&self, py: Python<'_>, pairs: Vec<(String, String)>) -> PyResult<usize> {
        let db = self.db()?;
        py.detach(|| {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect();
            db.link(&pairs)
        })
        .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// Removes an anonymous id's link (`UNLINK 'anonymous'`); False when it had none.
    fn unlink(&self, py: Python<'_>, anonymous: &str) -> PyResult<bool> {
        let db = self.db()?;
        py.detach(|| db.unlink(anonymous))
            .map_err(|e| errors::storage_error(py, e, ""))
    }

    /// A consistent view for several queries: later writes do not show in it.
    fn snapshot(&self) -> PyResult<Snapshot> {
        let db = self.db()?;
        Ok(Snapshot {
            snapshot: db.snapshot(),
            pid: self.pid,
        })
    }

    /// Closes the connection (calls in flight finish first; later calls raise).
    fn close(&self) {
        self.db.write().take();
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.db.read().is_none()
    }

    /// The database's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// True for a read-only handle.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() {
            "closed"
        } else if self.read_only {
            "read-only"
        } else {
            "open"
        };
        format!("<journeydb.Connection {} ({state})>", self.path.display())
    }
}

#[pymethods]
impl Snapshot {
    /// Runs a read-only statement on the snapshot.
    fn query(&self, py: Python<'_>, text: &str) -> PyResult<QueryResult> {
        same_process(self.pid)?;
        let answer = py.detach(|| self.snapshot.query_with(text, &QueryOptions::default()));
        answer
            .map(|table| QueryResult::new(table, text))
            .map_err(|e| errors::query_error(py, e, text))
    }

    /// Events in the snapshot.
    fn __len__(&self) -> usize {
        self.snapshot.len() as usize
    }
}
