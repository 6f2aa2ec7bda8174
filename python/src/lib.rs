//! The native module of the `journeydb` Python package (`journeydb._journeydb`): connections
//! and snapshots, query results that hand their columns over as an Arrow stream, appends from
//! any Arrow stream producer or a list of dicts, and exceptions that say where an error is.
//! The pure-Python layer (`python/journeydb/`) adds the conversions that import pyarrow,
//! pandas or polars, so that the native module imports none of them.
//!
//! Uses: rooms `errors`, `table`, `result`, `rows`, `connection`.

mod errors;
mod table;
mod chart;
mod result;
mod rows;
mod connection;

use pyo3::prelude::*;

/// Rust allocations of the module (not Python's objects) go through mimalloc, as in the shell.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The module: classes, functions and exceptions.
#[pymodule]
fn _journeydb(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<connection::Connection>()?;
    module.add_class::<connection::Snapshot>()?;
    module.add_class::<result::QueryResult>()?;
    module.add_function(wrap_pyfunction!(connection::connect, module)?)?;
    module.add_function(wrap_pyfunction!(connection::demo, module)?)?;
    errors::register(module)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
