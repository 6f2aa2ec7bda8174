//! Bulk import: a staged file becomes one sealed segment published atomically, read whole or
//! streamed in parts (sorted through spilled runs when they come out of order).
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `import`, `ingest`, `limits`, `manifest`, `model`, `segment`, `time`; rooms `seal`, `spill`, `version`.

use super::version::{DictsEdit, NewSegment, SegmentsEdit, VersionEdit};
use super::{Db, Writer};
use crate::buffer::Buffer;
use crate::db::seal::{unpublished, write_segment};
use crate::db::spill::Runs;
use crate::dict::{self, Dicts};
use crate::error::{DbError, Error, Result};
use crate::file;
use crate::ingest::StageMap;
use crate::limits;
use crate::manifest::SegmentEntry;
use crate::model::{Columns, PropType};
use crate::segment::{self, Footer, SegmentWriter};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What an import's dictionary thread returns: the dictionary file's new length, and the
/// dictionaries with the import's entries when they were extended ahead of publishing.
pub(super) type DictsWritten = (u64, Option<Dicts>);

/// The error of an import of more rows than one import may hold.
pub(super) fn too_many_rows(rows: usize) -> Error {
    DbError::InvalidArgument(format!(
        "{rows} rows in one import, the limit is {}; import the file in parts",
        limits::IMPORT_ROWS_MAX
    ))
    .into()
}

/// Runs `segment` (which writes an import's segment) while a second thread appends the
/// import's dictionary entries `delta` to the dictionary file `(generation, valid length)` —
/// both are synced before the manifest that publishes them (FORMAT §9a) — and, when the entries
/// are at least as many as `dicts` holds (a first import into a fresh database: 4M customers
/// at 100M rows took ~0.7 s after the segment was written), extends a copy of the
/// dictionaries with them once the segment is written (not beside the footer's encoding: the
/// two held at once were a 100M-event import's peak memory); smaller additions are applied in
/// place after publishing (no copy of large dictionaries).
pub(super) fn write_import(
    dir: &Path,
    dicts: &Dicts,
    delta: &crate::dict::DictDelta,
    (generation, valid): (u64, u64),
    segment: impl FnOnce() -> Result<(Footer, u64)>,
) -> Result<((Footer, u64), DictsWritten)> {
    let c = dicts.counts();
    let held = [c.customers, c.events, c.props, c.strings]
        .map(u64::from)
        .iter()
        .sum::<u64>();
    let ahead = delta.entries.len() as u64 >= held;
    // Dropped when the segment is written.
    let (segment_written, wait_segment) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // The flush before the import wrote every earlier entry: the file ends at `valid`.
        let dict = s.spawn(move || -> Result<DictsWritten> {
            let len = dict::append(dir, generation, valid, delta)?;
            // The copy is made once the segment is written: the copy and the segment's footer
            // being encoded (hundreds of MB each at 100M events) are not held at once.
            let _ = wait_segment.recv();
            // A failure here is left to the in-place path, which reports it.
            let applied = ahead.then(|| {
                let mut d = Dicts::clone(dicts);
                d.apply(delta).map(|()| d).ok()
            });
            Ok((len, applied.flatten()))
        });
        let seg = segment();
        drop(segment_written);
        let dict_len = crate::model::join(dict);
        Ok((seg?, dict_len?))
    })
}

/// What [`Db::import_file`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct FileImport {
    /// The first sequence number given to the rows.
    pub first_seq: u64,
    /// Events imported.
    pub events: u64,
    /// The bad rows skipped (at most [`ImportOptions::skip_bad`](crate::import::ImportOptions::skip_bad)).
    pub skipped: Vec<crate::import::ImportError>,
    /// True when the file was streamed into its segment part by part; false when it was read
    /// whole first.
    pub streamed: bool,
    /// The sorted runs a streamed file's rows went through, spilled to temporary files (0: the
    /// rows came in (customer, time) order, or were few enough to sort in memory).
    pub runs: u64,
    /// The first and last timestamps imported, and how many look implausible.
    pub timestamps: crate::time::TsSpan,
    /// What was inferred about the file's integer timestamps (see [`crate::time`]).
    pub ts_inferred: Option<crate::time::Inferred>,
}

/// What the writer of a streamed import ended with.
pub(super) enum Streamed {
    /// Every part written (`None`: the file held no rows).
    Written(Option<Box<StreamedParts>>),
    /// The file does not stream: read it whole.
    Fallback,
    /// The reader stopped on an error.
    Abandoned,
}

/// A streamed import's segment with every row written, not yet finished.
pub(super) struct StreamedParts {
    /// The sorted runs spilled to temporary files (0: the rows came in order, or were sorted
    /// in memory).
    runs: u64,
    writer: SegmentWriter,
    rows: u64,
    /// The dictionary entries of all the parts.
    delta: crate::dict::DictDelta,
}

/// Where and how a streamed import writes: the database directory, the first free segment
/// id, the zstd level and database id, and the rows per sorted run.
pub(super) struct StreamTarget<'a> {
    pub(super) dir: &'a Path,
    pub(super) id: u64,
    pub(super) format: (i32, u32),
    pub(super) run_rows: usize,
}

/// The writer of a streamed import: prepares each part received against `dicts` and writes
/// its rows into segment `target.id` (created at the first part with the first part's
/// properties) in whole blocks of [`limits::BLOCK_ROWS`] rows — a part's last rows wait for
/// the next part — so that the segment holds the blocks a whole-file import writes. When a
/// part comes out of (customer, time) order (within itself or after the one before) or brings
/// a property the segment does not have, the rows written so far become the first sorted run
/// and the rest of the file is sorted through spilled runs ([`sort_parts`]). Falls back when a
/// part's preparation fails (the whole-file import then reports it, or widens a column's type
/// as it should). On an error, the segment file is left for the caller to remove; run files
/// and a merged segment are removed here.
pub(super) fn stream_parts(
    rx: std::sync::mpsc::Receiver<Option<crate::import::Staged>>,
    dicts: &Dicts,
    stage_map: &StageMap,
    target: &StreamTarget<'_>,
) -> Result<Streamed> {
    let mut blocks = PartBlocks {
        rx,
        p: crate::ingest::Pending::new(dicts),
        stage_map,
        props: None,
        part: Columns::default(),
        at: 0,
        tail: Columns::default(),
        last: None,
        rows: 0,
        stop: None,
        done: false,
        sorting: false,
    };
    match blocks.next_part() {
        Ok(true) => {}
        Ok(false) => return Ok(Streamed::Written(None)),
        Err(Stop::Unsorted(part)) => return sort_parts(blocks, part, None, target),
        Err(Stop::Streamed(stop)) => return Ok(stop),
    }
    let props: Vec<(u32, PropType)> = blocks.part.props.iter().map(|c| (c.id, c.ty)).collect();
    blocks.props = Some(props.clone());
    let path = segment::seg_path(target.dir, target.id);
    let (level, db_id) = target.format;
    let mut writer = SegmentWriter::create(&path, props, level, db_id)?;
    writer.push_blocks(&mut blocks)?;
    match blocks.stop.take() {
        None => {
            let rows = blocks.rows;
            Ok(Streamed::Written(Some(streamed(
                new_entries(blocks.p),
                writer,
                rows,
                0,
            ))))
        }
        Some(Stop::Unsorted(part)) => {
            // The rows written so far are sorted: they are the first run.
            let written = writer.finish(0, blocks.rows)?;
            sort_parts(blocks, part, Some(written), target)
        }
        Some(Stop::Streamed(stop)) => Ok(stop),
    }
}

/// The rest of a streamed import whose part `first` came out of order, sorted externally:
/// `first` and every later part are gathered into runs, each sorted and spilled, and the runs
/// (after `prefix`, the segment `target.id` written with the sorted rows before `first`,
/// which becomes a run file) are merged into segment `target.id`.
fn sort_parts(
    mut blocks: PartBlocks<'_>,
    first: Columns,
    prefix: Option<(Footer, u64)>,
    target: &StreamTarget<'_>,
) -> Result<Streamed> {
    let (level, db_id) = target.format;
    let mut runs = Runs::new(target.dir, db_id, target.id + 1, target.run_rows);
    if let Some(written) = prefix {
        runs.add_written(&segment::seg_path(target.dir, target.id), written)?;
    }
    blocks.sorting = true;
    blocks.rows += first.len() as u64;
    runs.add(&first)?;
    drop(first);
    loop {
        match blocks.next_part() {
            Ok(true) => runs.add(&blocks.part)?,
            Ok(false) => break,
            Err(Stop::Streamed(stop)) => return Ok(stop),
            Err(Stop::Unsorted(_)) => return Ok(Streamed::Fallback),
        }
    }
    // The entries' look-up tables (tens of MB at millions of customers) are not needed while
    // the runs merge.
    let (delta, received) = (new_entries(blocks.p), blocks.rows);
    let props = runs.props()?;
    let id = target.id;
    let path = segment::seg_path(target.dir, id);
    let merged = SegmentWriter::create(&path, props, level, db_id)
        .map_err(Error::from)
        .and_then(|mut writer| Ok((runs.write_into(&mut writer)?, writer)));
    let spilled = runs.spilled();
    drop(runs);
    let (rows, writer) = unpublished(merged, &path)?;
    if rows != received {
        let _ = file::remove_if_exists(&path);
        let why = format!("internal error: {received} rows imported, {rows} merged");
        return Err(DbError::InvalidArgument(why).into());
    }
    Ok(Streamed::Written(Some(streamed(delta, writer, rows, spilled))))
}

/// A streamed import's segment with its `rows` written by `writer` (through `runs` sorted
/// runs), and the dictionary entries `delta` ([`new_entries`]).
fn streamed(
    delta: crate::dict::DictDelta,
    writer: SegmentWriter,
    rows: u64,
    runs: u64,
) -> Box<StreamedParts> {
    Box::new(StreamedParts {
        runs,
        writer,
        rows,
        delta,
    })
}

/// The dictionary entries `pending` allocated, in the order the dictionary file takes them.
fn new_entries(pending: crate::ingest::Pending<'_>) -> crate::dict::DictDelta {
    let mut delta = pending.into_delta();
    // The new customers first, as a whole-file import orders them (each dictionary's ids stay
    // in order): the dictionary file is then the same, and its frame compresses as well (a
    // part's events and properties between two runs of customer ids cost zstd a third more
    // bytes). In place: a second list of millions of entries cost a 100M-event import 100 MB.
    let rest: Vec<_> = delta
        .entries
        .extract_if(.., |e| e.kind != crate::dict::DictKind::Customer)
        .collect();
    delta.entries.extend(rest);
    delta
}

/// Why the blocks of a streamed import's parts ended early.
enum Stop {
    /// The import goes no further this way (fall back, or the reader stopped).
    Streamed(Streamed),
    /// This part (prepared, not counted) is out of order: the rest is sorted.
    Unsorted(Columns),
}

/// The blocks of a streamed import's parts, in order (see [`stream_parts`]); ends early, with
/// `stop` saying why, when the parts do not stream or the reader stopped. Once `sorting`, it
/// only receives and prepares parts, in any order.
pub(super) struct PartBlocks<'a> {
    rx: std::sync::mpsc::Receiver<Option<crate::import::Staged>>,
    /// The dictionary entries of the parts so far.
    p: crate::ingest::Pending<'a>,
    stage_map: &'a StageMap,
    /// The segment's properties (set after the first part).
    props: Option<Vec<(u32, PropType)>>,
    /// The part being cut into blocks, from row `at` on.
    part: Columns,
    at: usize,
    /// The rows of a block begun by the last part.
    tail: Columns,
    /// The (customer, time) of the last row received.
    last: Option<(u32, i64)>,
    /// Rows received.
    rows: u64,
    /// Why the blocks ended early (`None`: they did not).
    stop: Option<Stop>,
    /// No more parts: the end of the file was received, or `stop` was set.
    done: bool,
    /// Parts are sorted through runs: any order is taken.
    sorting: bool,
}

impl PartBlocks<'_> {
    /// Receives and prepares the next part: false at the end of the file; `Err` when the parts
    /// do not stream or the reader stopped, or (unless `sorting`) with a part out of order.
    fn next_part(&mut self) -> Result<bool, Stop> {
        loop {
            let part = match self.rx.recv() {
                Ok(Some(part)) => part,
                Ok(None) => return Ok(false),
                Err(_) => return Err(Stop::Streamed(Streamed::Abandoned)),
            };
            let cols = part
                .part_into_rows(&mut self.p, self.stage_map)
                .map_err(|_| Stop::Streamed(Streamed::Fallback))?;
            let (Some(&cid), Some(&ts)) = (cols.cid.first(), cols.ts.first()) else {
                continue;
            };
            if self.rows + cols.len() as u64 > limits::IMPORT_ROWS_MAX as u64 {
                return Err(Stop::Streamed(Streamed::Fallback));
            }
            let in_order = cols.is_sorted()
                && self.last.is_none_or(|l| l <= (cid, ts))
                && self
                    .props
                    .as_ref()
                    .is_none_or(|props| cols.props.iter().all(|c| props.contains(&(c.id, c.ty))));
            if !in_order && !self.sorting {
                return Err(Stop::Unsorted(cols));
            }
            self.rows += cols.len() as u64;
            self.last = cols.cid.last().copied().zip(cols.ts.last().copied());
            self.part = cols;
            self.at = 0;
            return Ok(true);
        }
    }
}

impl Iterator for PartBlocks<'_> {
    type Item = Columns;

    fn next(&mut self) -> Option<Columns> {
        loop {
            let len = self.part.len();
            if self.at < len {
                let end = if self.tail.is_empty() {
                    // A whole block, or the part's last rows to wait for the next part.
                    self.at + limits::BLOCK_ROWS
                } else {
                    // The rest of the block begun by the last part.
                    self.at + (limits::BLOCK_ROWS - self.tail.len())
                };
                if end <= len && self.tail.is_empty() {
                    let block = self.part.slice(self.at..end);
                    self.at = end;
                    return Some(block);
                }
                let end = end.min(len);
                self.tail.extend_from(&self.part.slice(self.at..end));
                self.at = end;
                if self.tail.len() == limits::BLOCK_ROWS {
                    return Some(std::mem::take(&mut self.tail));
                }
                continue;
            }
            if self.done {
                return None;
            }
            match self.next_part() {
                Ok(true) => {}
                Ok(false) => {
                    // The end: the last block.
                    self.done = true;
                    return (!self.tail.is_empty()).then(|| std::mem::take(&mut self.tail));
                }
                Err(stop) => {
                    // The rows of a block begun are written either way: the rows so far are
                    // a sorted run when the rest is sorted.
                    self.done = true;
                    self.stop = Some(stop);
                    return (!self.tail.is_empty()).then(|| std::mem::take(&mut self.tail));
                }
            }
        }
    }
}

impl Db {
    /// Imports the rows of a file read by [`crate::import::read_file`] as one unit, straight into
    /// a new sealed segment: no log record, no buffer, no later compaction of many small segments.
    /// When it returns, every row is durable and visible; if it fails or the process dies, none
    /// is (the segment and dictionary entries are published by one manifest switch; docs/FORMAT.md
    /// §9a). Commits wait while it runs (it holds the writer). The buffer is sealed first, so that
    /// segments stay in sequence order. Returns the first sequence number given to the rows.
    pub fn import(&self, staged: crate::import::Staged) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        if staged.is_empty() {
            return Ok(w.next_seq);
        }
        if staged.len() > limits::IMPORT_ROWS_MAX {
            return Err(too_many_rows(staged.len()));
        }
        self.flush_locked(&mut w)?;
        let dicts = self.import_dicts(&mut w)?;
        let prepared = staged.into_rows(&dicts, &inner.stage_map.read())?;
        let n = prepared.rows.len();
        // Rows already in order (a file exported by customer) are written as they are.
        let order = (!prepared.rows.is_sorted()).then(|| prepared.rows.sort_order());
        let dir = &inner.dir;
        let id = w.manifest.next_segment;
        let seq = (w.next_seq, w.next_seq + n as u64);
        let path = segment::seg_path(dir, id);
        let dict_file = (w.manifest.dict_gen, w.manifest.dict_len);
        let written = write_import(dir, &dicts, &prepared.delta, dict_file, || {
            write_segment(
                dir,
                &path,
                (&prepared.rows, order.as_deref()),
                seq,
                (inner.opts.zstd_level, w.manifest.db_id),
            )
        });
        let crate::ingest::Prepared { delta, rows } = prepared;
        // Freeing the rows (hundreds of MB for a large file) is off the writer's path when a
        // thread can be had; otherwise it happens here.
        let _ = std::thread::Builder::new()
            .name("journeydb-free".into())
            .spawn(move || drop((rows, order)));
        // Released, so that the in-place path of `publish_import` does not copy the dictionaries.
        drop(dicts);
        let (seg, dicts_written) = unpublished(written, &path)?;
        self.publish_import(&mut w, id, seq, seg, dicts_written, &delta)
    }

    /// Imports a file as [`Db::import`] does, one unit published atomically, reading it in the
    /// same call. A file is streamed: read in parts of
    /// [`ImportOptions::part_rows`](crate::import::ImportOptions::part_rows) rows, each prepared
    /// while the next is read. While the parts arrive in (customer, time) order — a file
    /// exported by customer into a database that does not hold its customers yet — each is
    /// written straight into the new segment; from the first part out of order on (a log in
    /// time order, any other order), the rows are sorted externally: gathered into runs of
    /// [`ImportOptions::run_rows`](crate::import::ImportOptions::run_rows) rows, each sorted
    /// and spilled to a temporary file on a thread of its own, and the runs merged into the
    /// segment (ties keep the file's order; [`FileImport::runs`] counts them). Memory stays
    /// bounded by two runs and a few parts; commits wait while it runs (it holds the writer
    /// from the first part on). A part the rows' preparation rejects — a text file's column
    /// whose type widens from integers to floats after its first part — makes the import read
    /// the file again, whole, and import it by [`Db::import`]. Either way the database ends up
    /// with the same events, and the same errors are reported.
    pub fn import_file(
        &self,
        path: &Path,
        opts: &crate::import::ImportOptions,
        progress: crate::import::Progress<'_>,
    ) -> Result<FileImport> {
        let part_rows = opts.part_rows.unwrap_or(crate::import::PART_ROWS);
        if part_rows > 0 && crate::import::streams(path, opts) {
            let mut w = self.inner.writer.lock();
            self.check_writable(&w)?;
            if let Some(done) = self.import_stream(&mut w, path, opts, progress, part_rows)? {
                return Ok(done);
            }
        }
        let read = crate::import::read_file(path, opts, progress)?;
        let events = read.staged.len() as u64;
        let timestamps = read.staged.ts_span(crate::time::now());
        let ts_inferred = read.ts_inferred();
        let first_seq = self.import(read.staged)?;
        Ok(FileImport {
            first_seq,
            events,
            skipped: read.skipped,
            streamed: false,
            runs: 0,
            timestamps,
            ts_inferred,
        })
    }

    /// The streamed import of [`Db::import_file`]: `None` when the file does not stream (nothing
    /// was published, the partial segment is removed).
    fn import_stream(
        &self,
        segment_writer: &mut Writer,
        path: &Path,
        opts: &crate::import::ImportOptions,
        progress: crate::import::Progress<'_>,
        part_rows: usize,
    ) -> Result<Option<FileImport>> {
        let inner = &*self.inner;
        self.flush_locked(segment_writer)?;
        let dicts = self.import_dicts(segment_writer)?;
        let stage_map = inner.stage_map.read().clone();
        let dir = &inner.dir;
        let id = segment_writer.manifest.next_segment;
        let seq_min = segment_writer.next_seq;
        let seg_path = segment::seg_path(dir, id);
        let target = StreamTarget {
            dir,
            id,
            format: (inner.opts.zstd_level, segment_writer.manifest.db_id),
            run_rows: opts.run_rows.unwrap_or(crate::import::RUN_ROWS),
        };
        // One part waits while the writer writes another, and the reader stages a third.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<crate::import::Staged>>(1);
        let (now, mut timestamps) = (crate::time::now(), crate::time::TsSpan::default());
        let (read, streamed) = std::thread::scope(|s| {
            let writer = s.spawn(|| stream_parts(rx, &dicts, &stage_map, &target));
            let mut sink = |part: crate::import::Staged| {
                timestamps = timestamps.merge(part.ts_span(now));
                tx.send(Some(part)).is_ok()
            };
            let read = crate::import::read_parts(path, opts, progress, part_rows, &mut sink);
            if matches!(read, Ok((_, _, true))) {
                // The end of the file; without it, the writer abandons the segment.
                let _ = tx.send(None);
            }
            drop(tx);
            (read, crate::model::join(writer))
        });
        let streamed = match (read, streamed) {
            (Ok((skipped, inferred, true)), Ok(Streamed::Written(parts))) => {
                Ok(Some((skipped, inferred, parts)))
            }
            (Err(e), _) => Err(Error::Import(e)),
            (_, Err(e)) => Err(e),
            (Ok(_), Ok(_)) => Ok(None),
        };
        let Some((skipped, ts_inferred, parts)) = unpublished(streamed, &seg_path)? else {
            let _ = file::remove_if_exists(&seg_path);
            return Ok(None);
        };
        let (events, first_seq, runs) = match parts {
            None => (0, seq_min, 0),
            Some(parts) => {
                let StreamedParts {
                    runs,
                    writer,
                    rows,
                    delta,
                } = *parts;
                let seq = (seq_min, seq_min + rows);
                let dict_file = (segment_writer.manifest.dict_gen, segment_writer.manifest.dict_len);
                let written = write_import(dir, &dicts, &delta, dict_file, || {
                    let written = writer.finish(seq.0, seq.1)?;
                    file::sync_dir(&dir.join(segment::SEG_DIR))?;
                    Ok(written)
                });
                drop(dicts);
                let (seg, dicts_written) = unpublished(written, &seg_path)?;
                (
                    rows,
                    self.publish_import(segment_writer, id, seq, seg, dicts_written, &delta)?,
                    runs,
                )
            }
        };
        Ok(Some(FileImport {
            first_seq,
            events,
            skipped,
            streamed: true,
            runs,
            timestamps,
            ts_inferred,
        }))
    }

    /// The dictionaries an import prepares its rows against (they cannot change while the
    /// writer is held), checked to be those the dictionary file holds.
    fn import_dicts(&self, writer: &mut Writer) -> Result<Arc<Dicts>> {
        let dicts = self.inner.dicts.read().clone();
        if dicts.counts() != writer.manifest.dict_counts {
            let why = "internal error: dictionary entries not in the dictionary file after a seal";
            return Err(self.poison(writer, why.into()));
        }
        Ok(dicts)
    }

    /// Publishes import segment `id` holding sequence numbers `seq`, written (footer, file
    /// length) with its dictionary entries `delta` (the dictionary file's new length, and the
    /// dictionaries extended ahead when they were); returns the first sequence number.
    fn publish_import(
        &self,
        writer: &mut Writer,
        id: u64,
        (seq_min, seq_end): (u64, u64),
        seg: (Footer, u64),
        (dict_len, applied): DictsWritten,
        delta: &crate::dict::DictDelta,
    ) -> Result<u64> {
        let (footer, file_len) = seg;
        let entry = SegmentEntry {
            id,
            file_len,
            rows: seq_end - seq_min,
            seq_min,
            seq_end,
        };
        // Extended on the dictionary thread, or else applied in place unless a running query
        // holds the dictionaries (then on a copy): an import into a large database does not
        // copy all of its dictionaries. The delta was prepared against these dictionaries under
        // the writer lock, so applying it cannot fail; if it did, `apply` poisons the handle.
        let dicts = match applied {
            Some(extended) => DictsEdit::Replace(Box::new(extended)),
            None => DictsEdit::Apply(delta),
        };
        self.apply(
            writer,
            VersionEdit {
                segments: SegmentsEdit::Append(NewSegment { entry, footer }),
                next_seq: Some(seq_end),
                dict_file: Some((writer.manifest.dict_gen, dict_len)),
                dict_counts: Some(delta.counts_after(writer.manifest.dict_counts)),
                dicts,
                // The buffer is empty (sealed above) and starts after the imported rows.
                buffer: Some(Arc::new(Buffer::new(seq_end))),
                ..VersionEdit::default()
            },
        )?;
        let inner = &*self.inner;
        writer.next_seq = seq_end;
        if let Some(wal) = writer.wal.as_ref() {
            // The log holds nothing unsynced (the flush above synced it, or it is empty).
            inner.sync.written(seq_end, wal.sync_handle());
            inner.sync.all_synced();
        }
        inner.visible_seq.fetch_max(seq_end, Ordering::SeqCst);
        Ok(seq_min)
    }
}
