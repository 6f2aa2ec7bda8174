//! journeydb's errors as Python exceptions: `Error`, and under it `QueryError` (with `line`,
//! `column` and the `caret` text the shell prints), `StorageError` and `ImportError` (with
//! `file`, `line`, `column` and `column_name`). Never a panic: every error of the library
//! arrives here as a value.
//!
//! Uses: nothing of the package.

use pyo3::BoundObject;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(journeydb, Error, PyException, "Every error journeydb raises.");
create_exception!(
    journeydb,
    QueryError,
    Error,
    "A statement that cannot run: `line`, `column` (1-based) and `caret` (the statement's line with a caret under the error, as the shell prints it) when the error has a place in the text, else None."
);
create_exception!(
    journeydb,
    StorageError,
    Error,
    "The database's files: I/O, damage (the message names the file and offset), a read-only or closed handle."
);
create_exception!(
    journeydb,
    ImportError,
    Error,
    "Rows that cannot be imported: `file`, and for one bad row `line`, `column` (1-based) and `column_name`."
);

/// Adds the exception classes to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("Error", py.get_type::<Error>())?;
    module.add("QueryError", py.get_type::<QueryError>())?;
    module.add("StorageError", py.get_type::<StorageError>())?;
    module.add("ImportError", py.get_type::<ImportError>())?;
    Ok(())
}

/// `value` as a Python object (None if it cannot be one, which the types used here never are).
fn object<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> Py<PyAny> {
    value
        .into_pyobject(py)
        .map(|bound| bound.into_bound().into_any().unbind())
        .unwrap_or_else(|_| py.None())
}

/// An exception of class `E` with `message` and the given attributes set.
fn raise<E: pyo3::PyTypeInfo>(py: Python<'_>, message: String, fields: &[(&str, Py<PyAny>)]) -> PyErr {
    let err = PyErr::new::<E, _>(message);
    for (name, value) in fields {
        // Setting an attribute on a fresh exception instance cannot fail in practice; if it
        // did, the exception still carries its message.
        let _ = err.value(py).setattr(*name, value.clone_ref(py));
    }
    err
}

/// A query's error, `text` the statement it came from.
pub fn query_error(py: Python<'_>, err: journeydb::QueryError, text: &str) -> PyErr {
    let none = || py.None();
    match err {
        journeydb::QueryError::Parse(parse) => {
            let (line, column) = parse.span.line_column(text);
            let caret = parse.render(text);
            let fields = [
                ("line", object(py, line)),
                ("column", object(py, column)),
                ("caret", object(py, caret.clone())),
                ("help", object(py, parse.help.clone())),
            ];
            raise::<QueryError>(py, caret, &fields)
        }
        journeydb::QueryError::Storage(inner) => storage_error(py, *inner, text),
        journeydb::QueryError::File(file) => raise::<StorageError>(py, file.to_string(), &[]),
        other => raise::<QueryError>(
            py,
            other.to_string(),
            &[
                ("line", none()),
                ("column", none()),
                ("caret", none()),
                ("help", none()),
            ],
        ),
    }
}

/// A database error (`text`: the statement, when a query caused it).
pub fn storage_error(py: Python<'_>, err: journeydb::Error, text: &str) -> PyErr {
    match err {
        journeydb::Error::Query(query) => query_error(py, query, text),
        journeydb::Error::Import(import) => import_error(py, import),
        other => raise::<StorageError>(py, other.to_string(), &[]),
    }
}

/// An import's error, with the file and, for a bad row, where it is.
pub fn import_error(py: Python<'_>, err: journeydb::ImportError) -> PyErr {
    let message = err.to_string();
    let (file, line, column, column_name) = located(&err);
    let fields = [
        ("file", object(py, file)),
        ("line", object(py, line)),
        ("column", object(py, column)),
        ("column_name", object(py, column_name)),
    ];
    raise::<ImportError>(py, message, &fields)
}

/// The file, line, column number and column name of an import error (the last bad row's, for
/// too many bad rows).
fn located(err: &journeydb::ImportError) -> (Option<String>, Option<u64>, Option<u64>, Option<String>) {
    match err {
        journeydb::ImportError::Io { file, .. } | journeydb::ImportError::File { file, .. } => {
            (Some(file.display().to_string()), None, None, None)
        }
        journeydb::ImportError::Row {
            file,
            line,
            column_no,
            column,
            ..
        } => (
            Some(file.display().to_string()),
            Some(*line),
            Some(*column_no as u64),
            (!column.is_empty()).then(|| column.clone()),
        ),
        journeydb::ImportError::TooManyBad { last, .. } => located(last),
        _ => (None, None, None, None),
    }
}

/// An error of the Python-side arguments (a wrong type, a missing column).
pub fn usage(message: impl Into<String>) -> PyErr {
    PyErr::new::<Error, _>(message.into())
}
