//! Staging Arrow record batches, whatever produced them: a Parquet file's decoder, or an Arrow
//! stream handed over by an embedding program (the Python package's `append`). Columns are found
//! and typed, and rows checked, exactly as for a Parquet file: the same errors, with the "line"
//! the 1-based row number of the stream.
//!
//! Uses: rooms of `parquet` (its column checks and staging).

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema};

use super::{DictMemos, Parts, Staging, check_columns, stage_batches, stage_props};
use crate::import::{ImportError, ImportOptions, Imported, Layout, Progress};

/// Where batches come from: the name errors give (a file, or a label for a stream), the
/// schema, the rows to make room for, and the rows per batch (a part holds at most one batch
/// more than its rows).
pub(super) struct Source<'a> {
    pub(super) file: &'a Path,
    pub(super) schema: &'a Schema,
    pub(super) believed: usize,
    pub(super) batch_rows: usize,
}

/// Stages the batches of `reader` (see [`super::read_with`]): the batches are pulled, and clean
/// ones checked for the column path, on a second thread while this one stages rows.
pub(super) fn stage_reader(
    source: Source<'_>,
    reader: impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
    by_columns: bool,
    parts: Option<Parts<'_>>,
) -> Result<(Imported, bool), ImportError> {
    let file = source.file;
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let names: Vec<&str> = source.schema.fields().iter().map(|f| f.name().as_str()).collect();
    let core = Layout::locate(&names, opts).map_err(bad)?;
    let mut out = Imported::new(opts);
    let props = stage_props(source.schema, core, &mut out.staged, opts).map_err(bad)?;
    let part_room = parts.as_ref().map(|p| p.rows.saturating_add(source.batch_rows));
    out.staged
        .reserve(part_room.map_or(source.believed, |r| r.min(source.believed)));
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let check_props = &props;
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut memos = DictMemos::default();
            for batch in reader {
                let stop = batch.is_err();
                let batch = batch.map(|b| {
                    let checked = by_columns
                        .then(|| check_columns(&b, core, check_props, &mut memos))
                        .flatten();
                    (b, checked)
                });
                if tx.send(batch).is_err() || stop {
                    break;
                }
            }
        });
        // On an early return `rx` is dropped, so the reader stops at its next send.
        let stage = Staging {
            file,
            opts,
            names: &names,
            core,
            props: &props,
        };
        stage_batches(
            rx,
            &stage,
            &mut out,
            tick,
            parts.map(|p| (p, part_room.unwrap_or(0))),
        )
    })
    .map(|done| (out, done))
}

/// Reads the record batches of an Arrow stream (columns `customer`, `ts`, `event`, optionally
/// `stage`, any others properties; `opts` renames them and sets the timestamp unit as for a
/// file) into staged rows, checked as a Parquet file's are; `label` names the stream in errors.
/// Nothing is written: [`crate::Db::import`] writes the rows as one unit.
pub fn read_arrow(
    label: &Path,
    schema: &Schema,
    batches: impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send,
    opts: &ImportOptions,
    progress: Progress<'_>,
) -> Result<Imported, ImportError> {
    let source = Source {
        file: label,
        schema,
        believed: 0,
        batch_rows: 0,
    };
    let mut tick = |rows: u64| progress(0, rows);
    stage_reader(source, batches, opts, &mut tick, true, None).map(|(out, _)| out)
}
