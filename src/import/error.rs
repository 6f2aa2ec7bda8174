//! How an import fails: every error names the file, and for a row its line and column.
//!
//! Uses: rooms `options`.

use crate::import::options::ImportOptions;
use std::path::PathBuf;

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Reading the file failed (missing file, truncated compressed stream, …).
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file as a whole is unusable (unknown format, missing column, bad header).
    #[error("{}: {reason}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One row is bad.
    #[error("{}:{line}:{column_no}: {}{reason}", file.display(), column_label(column))]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: u64,
        /// 1-based column (field) number.
        column_no: usize,
        /// Column (field) name.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// More bad rows than [`ImportOptions::skip_bad`] allows; the last one is given.
    #[error("more than {max} bad rows; the one that stopped the import: {last}")]
    TooManyBad {
        /// The allowance.
        max: usize,
        /// The bad row that exceeded it.
        last: Box<ImportError>,
    },
}

pub fn column_label(column: &str) -> String {
    if column.is_empty() {
        String::new()
    } else {
        format!("column `{column}`: ")
    }
}

/// Records a bad row: skipped while the allowance lasts, otherwise the error to stop with.
pub(crate) fn bad_row(
    opts: &ImportOptions,
    skipped: &mut Vec<ImportError>,
    error: ImportError,
) -> Result<(), ImportError> {
    if skipped.len() < opts.skip_bad {
        skipped.push(error);
        Ok(())
    } else if opts.skip_bad == 0 {
        Err(error)
    } else {
        Err(ImportError::TooManyBad {
            max: opts.skip_bad,
            last: Box::new(error),
        })
    }
}
