//! The top-level error: one variant per layer, each layer's error converted with `From`.
//!
//! Uses: `exec`, `file`, `import`, `ingest`.

use std::path::PathBuf;

pub use crate::file::FileError;
pub use crate::ingest::IngestError;

/// Errors of the database API itself (not of a file or of the input).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A write or fsync failed earlier; the database refuses writes until it is reopened
    /// (an fsync is never retried: the kernel may have dropped the unsynced pages).
    #[error("database refuses writes after an earlier I/O failure ({0}); reopen it to recover")]
    Poisoned(String),
    /// The database was opened read-only.
    #[error("database is open read-only")]
    ReadOnly,
    /// `create` on a directory that is not empty.
    #[error("{0} already exists and is not empty")]
    AlreadyExists(PathBuf),
    /// `open` on a directory that holds no database.
    #[error("{0} is not a journeydb database (no CURRENT file)")]
    NotADatabase(PathBuf),
    /// A batch encodes to more bytes than one log record may hold.
    #[error("batch encodes to {0} bytes, more than one log record may hold; commit smaller batches")]
    BatchTooLarge(usize),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A read-only open found a new manifest published under it on every attempt.
    #[error(
        "the writer kept replacing the database's files during {0} attempts to open it read-only; try again"
    )]
    Busy(u32),
    /// A broken internal invariant: a bug in journeydb.
    #[error("internal error (a bug in journeydb, please report it): {0}")]
    Internal(String),
}

/// Any journeydb error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed, or a file is corrupt.
    #[error(transparent)]
    File(#[from] FileError),
    /// A batch was rejected.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The database refused the operation.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading a file to import failed: nothing of it was imported.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    /// A query failed (parse error with its span, cancellation, a limit): so that an
    /// application's `main` returning [`Result`] can `?` a query.
    #[error(transparent)]
    Query(#[from] crate::exec::QueryError),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
