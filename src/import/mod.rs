//! Reading event files — CSV and NDJSON, plain or gzip/zstd-compressed — into staged columns.
//!
//! A file is read completely into a [`Staged`] set of columns (strings interned, so a 10 M-row
//! file costs about 30 bytes a row) before anything is handed to the database: a bad row stops
//! the import with its file, line, column and reason, and nothing of that file has been
//! committed. With [`ImportOptions::skip_bad`] up to that many bad rows are skipped and reported.
//!
//! Columns: the customer id, the timestamp and the event name are required; the stage is
//! optional; every other column is a typed property. Exact rules (names looked for, timestamp
//! forms, type inference, nulls) are in docs/SHELL.md ("Importing").
//!
//! Uses: `time`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::time::{Inferred, TsReader};

mod error;
mod links;
mod options;
mod profiles;
mod staged;
pub(crate) mod values;

pub use error::ImportError;
use error::bad_row;
pub use links::{ANONYMOUS_COLUMN, KNOWN_COLUMN, LinkRow, read_links};
use options::Layout;
pub use options::{FileFormat, ImportOptions, PART_ROWS, RUN_ROWS};
pub use profiles::{ProfileFile, read_profiles};
pub use staged::Staged;
use staged::{RowValues, Scalar, too_many_props};
pub use values::parse_prop_type;
use values::{infer, parse_as};
pub mod csv;

pub mod ndjson;

#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "parquet")]
pub use parquet::read_arrow;

/// The result of reading one file.
#[derive(Debug, Default)]
pub struct Imported {
    /// The good rows.
    pub staged: Staged,
    /// The bad rows skipped (at most [`ImportOptions::skip_bad`]).
    pub skipped: Vec<ImportError>,
    /// The file's timestamp reader (it remembers what it inferred).
    pub(crate) ts: TsReader,
}

impl Imported {
    /// Nothing read yet, timestamps to be read as `opts` says.
    pub(crate) fn new(opts: &ImportOptions) -> Imported {
        Imported {
            staged: Staged::default(),
            skipped: Vec::new(),
            ts: TsReader::new(opts.ts_form()),
        }
    }

    /// What was inferred about the file's integer timestamps (`None`: nothing, because the
    /// options fixed the unit or a pattern, or no timestamp was an integer).
    pub fn ts_inferred(&self) -> Option<Inferred> {
        self.ts.inferred()
    }
}

/// Counts bytes read from the underlying file (for progress reporting).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Progress of a read: bytes of the file consumed, rows read.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Where a read in parts hands its parts: each part once about `rows` rows are staged (a
/// Parquet file's cut at a batch boundary), and the last; the sink returns false to stop the
/// read.
pub(crate) struct Parts<'s> {
    /// Rows per part (at least).
    pub(crate) rows: usize,
    /// Takes each part.
    pub(crate) sink: &'s mut dyn FnMut(Staged) -> bool,
}

impl Parts<'_> {
    /// Hands the rows staged so far on as a part when they are at least a part's worth
    /// (making room for `room` more); false when the sink stopped the read.
    fn offer(&mut self, staged: &mut Staged, room: usize) -> bool {
        staged.len() < self.rows || (self.sink)(staged.take_part(room))
    }

    /// Hands the last rows staged on as the last part, if any; false when the sink stopped
    /// the read.
    fn finish(&mut self, staged: &mut Staged) -> bool {
        staged.is_empty() || (self.sink)(staged.take_part(0))
    }
}

/// Opens `file`, undoing gzip or zstd compression (recognised by their magic bytes).
fn open_input(file: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead>, ImportError> {
    let io = |source| ImportError::Io {
        file: file.to_owned(),
        source,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let mut raw = BufReader::with_capacity(1 << 20, Counting { inner: f, count });
    let magic = raw.fill_buf().map_err(io)?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let z = zstd::stream::read::Decoder::with_buffer(raw).map_err(io)?;
        Box::new(BufReader::with_capacity(1 << 20, z))
    } else {
        Box::new(raw)
    })
}

/// Reads a whole file into staged rows. Nothing is written anywhere.
pub fn read_file(file: &Path, opts: &ImportOptions, progress: Progress<'_>) -> Result<Imported, ImportError> {
    let format = match format_of(file, opts) {
        Some(f) => f,
        None => {
            return Err(ImportError::File {
                file: file.to_owned(),
                reason: "cannot tell the format from the file name (expected .csv, .ndjson, .jsonl, \
                         optionally .gz or .zst, or .parquet); give --format"
                    .into(),
            });
        }
    };
    if format == FileFormat::Parquet {
        return read_parquet(file, opts, progress);
    }
    read_text(file, format, opts, progress, None).map(|(imported, _)| imported)
}

/// Reads a CSV or NDJSON file (`format`), whole or (`parts`) in parts; false when a part's
/// sink stopped the read.
fn read_text(
    file: &Path,
    format: FileFormat,
    opts: &ImportOptions,
    progress: Progress<'_>,
    parts: Option<&mut Parts<'_>>,
) -> Result<(Imported, bool), ImportError> {
    let count = Arc::new(AtomicU64::new(0));
    let input = open_input(file, count.clone())?;
    let mut tick = |rows: u64| progress(count.load(Ordering::Relaxed), rows);
    if format == FileFormat::Csv {
        csv::read(file, input, opts, &mut tick, parts)
    } else {
        ndjson::read(file, input, opts, &mut tick, parts)
    }
}

/// The format of `file`: the options', else the file name's.
fn format_of(file: &Path, opts: &ImportOptions) -> Option<FileFormat> {
    opts.format.or_else(|| FileFormat::from_path(file))
}

/// True when [`crate::Db::import_file`] may stream `file` (see [`read_parts`]): a CSV or
/// NDJSON file, or a Parquet file in a build with Parquet support.
pub(crate) fn streams(file: &Path, opts: &ImportOptions) -> bool {
    match format_of(file, opts) {
        Some(FileFormat::Parquet) => cfg!(feature = "parquet"),
        Some(_) => true,
        None => false,
    }
}

/// Reads a file in parts of at least `rows` rows (a Parquet file's cut where a decoded batch
/// ends; the last part may be smaller), handing each part to `sink` as soon as it is staged;
/// `sink` returns false to stop the read. Returns the bad rows skipped, what was inferred about
/// the timestamps, and false when `sink` stopped the read. The rows of all the parts are those
/// [`read_file`] stages, in the same order, and the same errors stop the read (a property
/// column's type is inferred from the rows read so far: a part may widen it, which the rows of
/// the parts before did not see).
pub(crate) fn read_parts(
    file: &Path,
    opts: &ImportOptions,
    progress: Progress<'_>,
    rows: usize,
    sink: &mut dyn FnMut(Staged) -> bool,
) -> Result<(Vec<ImportError>, Option<Inferred>, bool), ImportError> {
    let mut parts = Parts { rows, sink };
    let format = format_of(file, opts).unwrap_or(FileFormat::Ndjson);
    if format == FileFormat::Parquet {
        return read_parquet_parts(file, opts, progress, parts);
    }
    read_text(file, format, opts, progress, Some(&mut parts))
        .map(|(out, done)| (out.skipped, out.ts.inferred(), done))
}

/// Runs a Parquet read with `progress` given the rows as they are read, then the file's whole
/// length once it is done (a Parquet reader does not count bytes).
#[cfg(feature = "parquet")]
fn with_parquet_progress<T>(
    file: &Path,
    progress: Progress<'_>,
    read: impl FnOnce(&mut dyn FnMut(u64)) -> T,
) -> T {
    let len = std::fs::metadata(file).map_or(0, |m| m.len());
    let mut rows_seen = 0;
    let out = read(&mut |rows| {
        rows_seen = rows;
        progress(0, rows);
    });
    progress(len, rows_seen);
    out
}

/// The error of reading a Parquet file in a build without Parquet support.
#[cfg(not(feature = "parquet"))]
fn no_parquet(file: &Path) -> ImportError {
    ImportError::File {
        file: file.to_owned(),
        reason: "this journeydb was built without Parquet support (cargo feature `parquet`)".into(),
    }
}

/// A Parquet file's [`read_parts`].
#[cfg(feature = "parquet")]
fn read_parquet_parts(
    file: &Path,
    opts: &ImportOptions,
    progress: Progress<'_>,
    parts: Parts<'_>,
) -> Result<(Vec<ImportError>, Option<Inferred>, bool), ImportError> {
    with_parquet_progress(file, progress, |tick| {
        parquet::read_parts(file, opts, tick, parts)
    })
}

/// Without Parquet support no Parquet file streams (see [`streams`]).
#[cfg(not(feature = "parquet"))]
fn read_parquet_parts(
    file: &Path,
    _opts: &ImportOptions,
    _progress: Progress<'_>,
    _parts: Parts<'_>,
) -> Result<(Vec<ImportError>, Option<Inferred>, bool), ImportError> {
    Err(no_parquet(file))
}

#[cfg(feature = "parquet")]
fn read_parquet(file: &Path, opts: &ImportOptions, progress: Progress<'_>) -> Result<Imported, ImportError> {
    with_parquet_progress(file, progress, |tick| parquet::read(file, opts, tick))
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(
    file: &Path,
    _opts: &ImportOptions,
    _progress: Progress<'_>,
) -> Result<Imported, ImportError> {
    Err(no_parquet(file))
}

#[cfg(test)]
mod tests;
