//! Link files (`journeydb import DB links.csv --links`): a CSV file (optionally gzip or zstd
//! compressed) with a header naming the columns `anonymous_id` and `customer_id` (other columns
//! are ignored), one identity link per row. Read whole and checked before anything is linked.
//!
//! Uses: rooms `error`.

use crate::import::error::ImportError;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The anonymous id's column.
pub const ANONYMOUS_COLUMN: &str = "anonymous_id";
/// The known id's column.
pub const KNOWN_COLUMN: &str = "customer_id";

/// One row of a link file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRow {
    /// The anonymous id.
    pub anonymous: String,
    /// The known id.
    pub known: String,
    /// The row's 1-based line.
    pub line: u64,
}

/// Reads every link of `file`; an empty field or a field that is not UTF-8 is an error naming
/// its line and column.
pub fn read_links(file: &Path) -> Result<Vec<LinkRow>, ImportError> {
    let input = super::open_input(file, Arc::new(AtomicU64::new(0)))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let fail = |line: u64, column: (usize, &str), reason: String| ImportError::Row {
        file: file.to_owned(),
        line,
        column_no: column.0 + 1,
        column: column.1.to_owned(),
        reason,
    };
    let csv_error = |error: csv::Error| {
        let line = error.position().map_or(0, csv::Position::line);
        match error.into_kind() {
            csv::ErrorKind::Io(source) => ImportError::Io {
                file: file.to_owned(),
                source,
            },
            other => ImportError::File {
                file: file.to_owned(),
                reason: format!("line {line}: {other:?}"),
            },
        }
    };
    let header = reader.byte_headers().map_err(csv_error)?.clone();
    let find = |name: &str| {
        header
            .iter()
            .position(|field| field == name.as_bytes())
            .ok_or_else(|| ImportError::File {
                file: file.to_owned(),
                reason: format!(
                    "no column `{name}` (a link file has columns `{ANONYMOUS_COLUMN}` and `{KNOWN_COLUMN}`)"
                ),
            })
    };
    let columns = [
        (find(ANONYMOUS_COLUMN)?, ANONYMOUS_COLUMN),
        (find(KNOWN_COLUMN)?, KNOWN_COLUMN),
    ];
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, csv::Position::line);
        let mut ids = [String::new(), String::new()];
        for (id, column) in ids.iter_mut().zip(columns) {
            let bytes = record.get(column.0).unwrap_or_default();
            let text = std::str::from_utf8(bytes).map_err(|_| fail(line, column, "not UTF-8".into()))?;
            if text.is_empty() {
                return Err(fail(line, column, "empty id".into()));
            }
            *id = text.to_owned();
        }
        let [anonymous, known] = ids;
        rows.push(LinkRow {
            anonymous,
            known,
            line,
        });
    }
    Ok(rows)
}
