//! The database API and the only orchestrator of writes: create/open, batches and commit,
//! flush (seal), compaction, the stage map, stats, and snapshots for readers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

use crate::buffer::Buffer;
use crate::compaction::{self, Merge, Source};
use crate::dict::{self, Dicts};
use crate::error::{DbError, Error, Result};
use crate::file::{self, FileError, IoContext, WriterLock};
use crate::index::Bitmaps;
use crate::ingest::{self, StageMap};
use crate::limits;
use crate::manifest::{self, Erasure, Manifest, SegmentEntry};
use crate::model::{Columns, Event, PropType, Stage, StoredEvent, Value};
use crate::segment::{self, ColumnSet, Footer, Segment, SegmentWriter};
use crate::wal::{self, SyncCoordinator, WalFile};

/// When `commit` returns, and what it promises (see docs/DURABILITY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// `commit` returns after an fsync covering the batch: once it returns, the batch survives
    /// a crash or power loss. Concurrent commits share one fsync.
    EveryCommit,
    /// Group commit: a committer waits up to the interval for others to join, then one fsync
    /// covers all of them. Same promise as `EveryCommit` when `commit` returns; higher
    /// throughput, higher latency per commit.
    Group(Duration),
    /// `commit` returns after the write reaches the OS, without fsync (bulk loads). A crash of
    /// the process loses nothing; a power loss may lose a suffix of the commits, never a
    /// middle one, and never corrupts. `flush` and a clean close make everything durable.
    Never,
}

/// Options for opening a database.
#[derive(Clone, Debug)]
pub struct Options {
    /// Durability of `commit`.
    pub sync: Sync,
    /// When the buffer holds this many events, `commit` seals it into a segment.
    pub buffer_events_max: usize,
    /// zstd level for segment blocks (1..=22).
    pub zstd_level: i32,
    /// Bytes of decoded blocks kept for single-customer reads (timelines, `customer_events`);
    /// 0 turns the cache off.
    pub block_cache_bytes: usize,
    /// Bytes of decoded key columns (each sealed block's customer runs and event ids, about
    /// 0.8 bytes per event) kept for the funnel's scan, so that a funnel run again reads them
    /// from memory instead of checking and decompressing them again. Blocks are kept in the
    /// order scans first read them, until the budget is full, and stay while their segment
    /// lives. 0 turns the cache off.
    pub key_cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: Sync::EveryCommit,
            buffer_events_max: 1 << 20,
            zstd_level: 3,
            block_cache_bytes: 64 << 20,
            key_cache_bytes: 128 << 20,
        }
    }
}

impl Options {
    /// Sets the durability policy.
    pub fn sync(mut self, sync: Sync) -> Self {
        self.sync = sync;
        self
    }
    /// Sets the buffer size that triggers an automatic flush.
    pub fn buffer_events_max(mut self, n: usize) -> Self {
        self.buffer_events_max = n.max(1);
        self
    }
    /// Sets the zstd level.
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level.clamp(1, 22);
        self
    }
    /// Sets the size of the block cache for single-customer reads (0: off).
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = bytes;
        self
    }
    /// Sets the size of the key cache for scans (0: off).
    pub fn key_cache_bytes(mut self, bytes: usize) -> Self {
        self.key_cache_bytes = bytes;
        self
    }
}

/// Storage statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Committed (visible) events.
    pub events: u64,
    /// Distinct customers.
    pub customers: u64,
    /// Live segments.
    pub segments: usize,
    /// Events held in the in-memory buffer (in the log, not yet sealed).
    pub buffered_events: u64,
    /// Bytes of all files in the database directory.
    pub bytes_on_disk: u64,
    /// Bytes of live segment files.
    pub segment_bytes: u64,
    /// Segment bytes per sealed event (0 when nothing is sealed).
    pub bytes_per_event: f64,
    /// Customers erased by `FORGET CUSTOMER` whose data the next compaction removes from disk.
    pub pending_erasures: u64,
    /// Events hidden by those erasures, still in segment files until that compaction.
    pub pending_erased_events: u64,
    /// Bytes held in memory by the block cache and the key cache (see [`Options`]).
    pub cache_bytes: u64,
}

struct Version {
    segments: Vec<Arc<Segment>>,
    buffer: Arc<Buffer>,
    /// Pending erasures (as in the live manifest).
    forgotten: Arc<Vec<Erasure>>,
    /// Per segment: the customers whose rows in it are hidden by a pending erasure.
    masks: Vec<Option<Arc<RoaringBitmap>>>,
}

impl Version {
    fn new(segments: Vec<Arc<Segment>>, buffer: Arc<Buffer>, forgotten: Arc<Vec<Erasure>>) -> Version {
        let masks = segments
            .iter()
            .map(|s| {
                let hidden: RoaringBitmap = forgotten
                    .iter()
                    .filter(|e| s.footer.seq_end <= e.limit)
                    .map(|e| e.cid)
                    .collect();
                (!hidden.is_empty()).then(|| Arc::new(hidden))
            })
            .collect();
        Version {
            segments,
            buffer,
            forgotten,
            masks,
        }
    }

    /// The segments as merge sources, erased customers masked.
    fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.segments.iter().zip(&self.masks).map(|(s, m)| match m {
            Some(m) => Source::Masked(s.clone(), m.clone()),
            None => Source::Segment(s.clone()),
        })
    }
}

struct Writer {
    wal: Option<WalFile>,
    next_seq: u64,
    manifest: Manifest,
    buffer: Arc<Buffer>,
    poisoned: Option<String>,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    read_only: bool,
    _lock: Option<WriterLock>,
    writer: Mutex<Writer>,
    version: RwLock<Arc<Version>>,
    dicts: RwLock<Arc<Dicts>>,
    stage_map: RwLock<StageMap>,
    sync: SyncCoordinator,
    visible_seq: AtomicU64,
    compaction: Mutex<()>,
    cache: Arc<segment::BlockCache>,
    key_cache: Arc<segment::KeyCache>,
}

/// An embedded journeydb database. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.inner.dir).finish()
    }
}

/// `r`, removing the unpublished file `path` when it is an error (best effort: an open removes
/// such leftovers too).
fn unpublished<T>(r: Result<T>, path: &Path) -> Result<T> {
    if r.is_err() {
        let _ = file::remove_if_exists(path);
    }
    r
}

/// What an import's dictionary thread returns: the dictionary file's new length, and the
/// dictionaries with the import's entries when they were extended ahead of publishing.
type DictsWritten = (u64, Option<Dicts>);

/// Checks rows read back from a file (they passed their checksums) with the rules `commit`
/// applies: values in range and every string value id in a dictionary of `strings` entries.
fn check_stored_rows(rows: &Columns, strings: u32) -> std::result::Result<(), String> {
    crate::model::check_values(rows)?;
    for p in rows.props.iter().filter(|p| p.ty == PropType::Str) {
        let max = p
            .vals
            .iter()
            .zip(&p.valid)
            .filter(|(_, v)| **v)
            .map(|(x, _)| *x)
            .max();
        if let Some(id) = max.filter(|&id| id >= u64::from(strings)) {
            return Err(format!(
                "string value id {id} has no dictionary entry (the dictionary has {strings})"
            ));
        }
    }
    Ok(())
}

/// The error of an import of more rows than one import may hold.
fn too_many_rows(rows: usize) -> Error {
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
/// dictionaries with them; smaller additions are applied in place after publishing (no copy of
/// large dictionaries).
fn write_import(
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
    std::thread::scope(|s| {
        // The flush before the import wrote every earlier entry: the file ends at `valid`.
        let dict = s.spawn(|| -> Result<DictsWritten> {
            let len = dict::append(dir, generation, valid, delta)?;
            // A failure here is left to the in-place path, which reports it.
            let applied = ahead.then(|| {
                let mut d = Dicts::clone(dicts);
                d.apply(delta).map(|()| d).ok()
            });
            Ok((len, applied.flatten()))
        });
        let seg = segment();
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
}

/// What the writer of a streamed import ended with.
enum Streamed {
    /// Every part written (`None`: the file held no rows).
    Written(Option<Box<StreamedParts>>),
    /// The file does not stream: read it whole.
    Fallback,
    /// The reader stopped on an error.
    Abandoned,
}

/// A streamed import's segment with every row written, not yet finished.
struct StreamedParts {
    writer: SegmentWriter,
    rows: u64,
    /// The dictionary entries of all the parts.
    delta: crate::dict::DictDelta,
}

/// The writer of a streamed import: prepares each part received against `dicts` and writes
/// its rows into the segment at `path` (created at the first part with the first part's
/// properties) in whole blocks of [`limits::BLOCK_ROWS`] rows — a part's last rows wait for
/// the next part — so that the segment holds the blocks a whole-file import writes. Falls
/// back when rows come out of (customer, time) order (within a part or across two), when a
/// part brings a property the segment does not have, or when a part's preparation fails (the
/// whole-file import then reports it, or widens a column's type as it should).
fn stream_parts(
    rx: std::sync::mpsc::Receiver<Option<crate::import::Staged>>,
    dicts: &Dicts,
    stage_map: &StageMap,
    path: &Path,
    (level, db_id): (i32, u32),
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
    };
    match blocks.next_part() {
        Ok(true) => {}
        Ok(false) => return Ok(Streamed::Written(None)),
        Err(stop) => return Ok(stop),
    }
    let props: Vec<(u32, PropType)> = blocks.part.props.iter().map(|c| (c.id, c.ty)).collect();
    blocks.props = Some(props.clone());
    let mut writer = SegmentWriter::create(path, props, level, db_id)?;
    writer.push_blocks(&mut blocks)?;
    let Some(stop) = blocks.stop else {
        let mut delta = blocks.p.into_delta();
        // The new customers first, as a whole-file import orders them (each dictionary's ids
        // stay in order): the dictionary file is then the same, and its frame compresses as
        // well (a part's events and properties between two runs of customer ids cost zstd a
        // third more bytes).
        let (mut entries, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut delta.entries)
            .into_iter()
            .partition(|e| e.kind == crate::dict::DictKind::Customer);
        entries.extend(rest);
        delta.entries = entries;
        return Ok(Streamed::Written(Some(Box::new(StreamedParts {
            writer,
            rows: blocks.rows,
            delta,
        }))));
    };
    Ok(stop)
}

/// The blocks of a streamed import's parts, in order (see [`stream_parts`]); ends early, with
/// `stop` saying why, when the parts do not stream or the reader stopped.
struct PartBlocks<'a> {
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
    stop: Option<Streamed>,
    /// No more parts: the end of the file was received, or `stop` was set.
    done: bool,
}

impl PartBlocks<'_> {
    /// Receives and prepares the next part: false at the end of the file; `Err` when the parts
    /// do not stream or the reader stopped.
    fn next_part(&mut self) -> Result<bool, Streamed> {
        loop {
            let part = match self.rx.recv() {
                Ok(Some(part)) => part,
                Ok(None) => return Ok(false),
                Err(_) => return Err(Streamed::Abandoned),
            };
            let cols = part
                .part_into_rows(&mut self.p, self.stage_map)
                .map_err(|_| Streamed::Fallback)?;
            let (Some(&cid), Some(&ts)) = (cols.cid.first(), cols.ts.first()) else {
                continue;
            };
            if !cols.is_sorted() || self.last.is_some_and(|l| l > (cid, ts)) {
                return Err(Streamed::Fallback);
            }
            if let Some(props) = &self.props
                && cols.props.iter().any(|c| !props.contains(&(c.id, c.ty)))
            {
                return Err(Streamed::Fallback);
            }
            self.rows += cols.len() as u64;
            if self.rows > limits::IMPORT_ROWS_MAX as u64 {
                return Err(Streamed::Fallback);
            }
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
                    self.done = true;
                    self.stop = Some(stop);
                    return None;
                }
            }
        }
    }
}

/// Writes `rows` (sorted, or in the given sorted order) as sealed segment `path` holding
/// sequence numbers `seq`, fsyncs it and the segment directory; returns its footer and the
/// file length. Nothing is published.
fn write_segment(
    dir: &Path,
    path: &Path,
    rows: (&Columns, Option<&[u32]>),
    seq: (u64, u64),
    (level, db_id): (i32, u32),
) -> Result<(Footer, u64)> {
    let props = rows.0.props.iter().map(|p| (p.id, p.ty)).collect();
    let mut sw = SegmentWriter::create(path, props, level, db_id)?;
    sw.push_rows(rows.0, rows.1)?;
    let written = sw.finish(seq.0, seq.1)?;
    file::sync_dir(&dir.join(segment::SEG_DIR))?;
    Ok(written)
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// How many times [`Db::open_read_only`] tries before it gives up on a writer that keeps
/// publishing new manifests (with pauses growing to 50 ms: about 5 s in all).
pub const READ_ONLY_OPEN_ATTEMPTS: u32 = 100;

impl Db {
    /// Creates a new database in `path` (a directory that must not exist or be empty).
    pub fn create(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let dir = path.as_ref();
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).at(dir)?;
            if entries.next().is_some() {
                return Err(DbError::AlreadyExists(dir.to_path_buf()).into());
            }
        }
        std::fs::create_dir_all(dir.join(wal::WAL_DIR)).at(dir)?;
        std::fs::create_dir_all(dir.join(segment::SEG_DIR)).at(dir)?;
        let db_id = file::new_db_id();
        let dict_len = dict::create(dir, db_id)?;
        file::sync_dir(dir)?;
        let m = Manifest {
            number: 1,
            dict_len,
            db_id,
            ..Manifest::default()
        };
        m.publish(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            file::sync_dir(parent)?;
        }
        Db::open(dir, opts)
    }

    /// Opens an existing database for reading and writing, recovering from any crash.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let dir = path.as_ref();
        if !dir.join(manifest::CURRENT).exists() {
            return Err(DbError::NotADatabase(dir.to_path_buf()).into());
        }
        let lock = WriterLock::acquire(dir)?;
        Db::open_inner(dir, opts, Some(lock))
    }

    /// Opens a database read-only: no lock is taken, nothing on disk is changed, and the view
    /// is the committed state at the time of opening. Works while another process writes.
    ///
    /// The writer may publish a new manifest and remove the files the old one named while this
    /// open reads them (a vanished file, or a log that no longer continues the manifest it
    /// read). The open therefore reads `CURRENT` before and after: a view is returned only if
    /// the live manifest did not change meanwhile, and an error only if it did not change and
    /// the same error came twice in a row; otherwise it retries, with a growing pause, at most
    /// [`READ_ONLY_OPEN_ATTEMPTS`] times ([`DbError::Busy`] after that).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        let dir = path.as_ref();
        if !dir.join(manifest::CURRENT).exists() {
            return Err(DbError::NotADatabase(dir.to_path_buf()).into());
        }
        let mut previous_error: Option<String> = None;
        let mut pause = Duration::from_millis(1);
        for _ in 0..READ_ONLY_OPEN_ATTEMPTS {
            let before = manifest::read_current(dir)?;
            let opened = Db::open_inner(dir, Options::default(), None);
            let moved = manifest::read_current(dir)? != before;
            match opened {
                Ok(db) if !moved => return Ok(db),
                Err(e) if !moved => {
                    let text = e.to_string();
                    if previous_error.as_deref() == Some(text.as_str()) {
                        return Err(e);
                    }
                    previous_error = Some(text);
                }
                _ => previous_error = None,
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Err(DbError::Busy(READ_ONLY_OPEN_ATTEMPTS).into())
    }

    fn open_inner(dir: &Path, opts: Options, lock: Option<WriterLock>) -> Result<Db> {
        let writable = lock.is_some();
        let (current, current_db_id) = manifest::read_current_with_id(dir)?;
        let m = Manifest::read(dir, current)?;
        if current_db_id != m.db_id {
            return Err(FileError::corrupt(
                &dir.join(manifest::CURRENT),
                12,
                format!(
                    "CURRENT belongs to another database (id {current_db_id:08x}; its manifest says {:08x})",
                    m.db_id
                ),
            )
            .into());
        }
        if writable {
            // Leftovers of operations that crashed before their manifest was published.
            for n in manifest::list(dir)? {
                if n != current {
                    file::remove_if_exists(&dir.join(manifest::manifest_name(n)))?;
                }
            }
            file::remove_if_exists(&dir.join(format!("{}.tmp", manifest::CURRENT)))?;
            for id in segment::list(dir)? {
                if !m.segments.iter().any(|s| s.id == id) {
                    file::remove_if_exists(&segment::seg_path(dir, id))?;
                }
            }
            for n in wal::list(dir)? {
                if n < m.wal_start {
                    file::remove_if_exists(&wal::wal_path(dir, n))?;
                }
            }
            dict::remove_other_generations(dir, m.dict_gen)?;
        }
        let mut dicts = dict::load(dir, (m.dict_gen, m.db_id), m.dict_len, m.dict_counts, writable)?;
        let cache = segment::BlockCache::new(opts.block_cache_bytes);
        let key_cache = segment::KeyCache::new(opts.key_cache_bytes);
        let mut segments = Vec::with_capacity(m.segments.len());
        for s in &m.segments {
            let seg = Segment::open(dir, s.id, Some(s.file_len))?
                .with_cache(cache.clone())
                .with_key_cache(key_cache.clone());
            if seg.db_id != m.db_id {
                let why = format!(
                    "segment belongs to another database (id {:08x}; this database is {:08x})",
                    seg.db_id, m.db_id
                );
                return Err(FileError::corrupt(seg.path(), 12, why).into());
            }
            if seg.footer.rows != s.rows || seg.footer.seq_min != s.seq_min || seg.footer.seq_end != s.seq_end
            {
                return Err(
                    FileError::corrupt(seg.path(), 0, "segment footer disagrees with the manifest").into(),
                );
            }
            segments.push(Arc::new(seg));
        }
        let seq_base = m.next_seq;
        let buffer = Arc::new(Buffer::new(seq_base));
        let end = wal::replay(dir, (m.wal_start, m.db_id), seq_base, writable, |rec| {
            dicts.apply(&rec.delta)?;
            let c = dicts.counts();
            let bad = rec.rows.cid.iter().any(|&x| x >= c.customers)
                || rec.rows.event.iter().any(|&x| x >= c.events)
                || rec
                    .rows
                    .props
                    .iter()
                    .any(|p| p.id >= c.props || dicts.prop_types.get(p.id as usize) != Some(&p.ty));
            if bad {
                return Err("record refers to an unknown dictionary entry".into());
            }
            check_stored_rows(&rec.rows, c.strings)?;
            buffer.push(&rec.rows);
            Ok(())
        })?;
        if writable {
            for &n in &end.empty_files {
                file::remove_if_exists(&wal::wal_path(dir, n))?;
            }
            // What was replayed may have reached only the page cache (a writer that died
            // before its fsync): make it durable before the new log exists and before anything
            // is acknowledged on top of it, so that a power cut cannot leave a gap under
            // acknowledged records (the sync coordinator below starts from it as durable).
            wal::sync_replayed(dir, &end.replayed_files)?;
        }
        let wal_file = if writable {
            let number = end.last_number.max(m.wal_start.saturating_sub(1)) + 1;
            Some(WalFile::create(dir, number, m.db_id)?)
        } else {
            None
        };
        let gather = match opts.sync {
            Sync::Group(d) => d,
            _ => Duration::ZERO,
        };
        let sync = SyncCoordinator::new(end.next_seq, gather);
        if let Some(w) = &wal_file {
            sync.written(end.next_seq, w.sync_handle());
        }
        let stage_map: StageMap = m.stage_map.iter().cloned().collect();
        let forgotten = Arc::new(m.forgotten.clone());
        let inner = Inner {
            dir: dir.to_path_buf(),
            opts,
            read_only: !writable,
            _lock: lock,
            writer: Mutex::new(Writer {
                wal: wal_file,
                next_seq: end.next_seq,
                manifest: m,
                buffer: buffer.clone(),
                poisoned: None,
            }),
            version: RwLock::new(Arc::new(Version::new(segments, buffer, forgotten))),
            dicts: RwLock::new(Arc::new(dicts)),
            stage_map: RwLock::new(stage_map),
            sync,
            visible_seq: AtomicU64::new(end.next_seq),
            compaction: Mutex::new(()),
            cache,
            key_cache,
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Why this handle refuses writes, if an earlier I/O failure poisoned it (reads still work;
    /// reopening the database recovers every acknowledged event). `None` when healthy.
    pub fn write_error(&self) -> Option<String> {
        self.inner.writer.lock().poisoned.clone()
    }

    /// A new batch; events appended to it are committed together, all or nothing.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            db: self,
            events: Vec::new(),
        }
    }

    fn check_writable(&self, w: &Writer) -> Result<()> {
        if self.inner.read_only {
            return Err(DbError::ReadOnly.into());
        }
        if let Some(why) = &w.poisoned {
            return Err(DbError::Poisoned(why.clone()).into());
        }
        Ok(())
    }

    fn poison(&self, w: &mut Writer, why: String) -> Error {
        self.inner.sync.fail(why.clone());
        w.poisoned.get_or_insert(why.clone());
        DbError::Poisoned(why).into()
    }

    /// Commits `events` as one batch: validated completely first (on any invalid event
    /// nothing is written), then logged, then made visible to readers. What returning means
    /// depends on [`Sync`]. Returns the sequence number of the first event.
    pub fn commit(&self, events: &[Event]) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        if events.is_empty() {
            return Ok(w.next_seq);
        }
        let prepared = {
            let dicts = inner.dicts.read();
            let map = inner.stage_map.read();
            ingest::prepare(&dicts, &map, events)?
        };
        let first_seq = w.next_seq;
        let mut payload = Vec::with_capacity(events.len() * 16 + 64);
        let durable_seq = inner.sync.synced_seq().min(first_seq);
        wal::encode(
            first_seq,
            durable_seq,
            &prepared.delta,
            &prepared.rows,
            &mut payload,
        );
        if payload.len() > limits::WAL_RECORD_BYTES_MAX {
            return Err(DbError::BatchTooLarge(payload.len()).into());
        }
        let frame = wal::frame(&payload);
        let Some(wal_file) = w.wal.as_mut() else {
            return Err(DbError::ReadOnly.into());
        };
        if let Err(e) = wal_file.append(&frame) {
            // The file may now end in a partial record: never append after it.
            return Err(self.poison(&mut w, e.to_string()));
        }
        let handle = wal_file.sync_handle();
        if !prepared.delta.entries.is_empty()
            && let Err(why) = Arc::make_mut(&mut *inner.dicts.write()).apply(&prepared.delta)
        {
            return Err(self.poison(&mut w, format!("internal error: {why}")));
        }
        w.buffer.push(&prepared.rows);
        w.next_seq += prepared.rows.len() as u64;
        let target = w.next_seq;
        inner.sync.written(target, handle);
        let full = w.buffer.len() >= inner.opts.buffer_events_max;
        if inner.opts.sync == Sync::Never {
            inner.visible_seq.fetch_max(target, Ordering::SeqCst);
        }
        drop(w);
        if inner.opts.sync != Sync::Never {
            match inner.sync.wait_durable(target) {
                Ok(frontier) => {
                    inner.visible_seq.fetch_max(frontier, Ordering::SeqCst);
                }
                Err(why) => {
                    let mut w = inner.writer.lock();
                    return Err(self.poison(&mut w, why));
                }
            }
        }
        if full {
            self.flush()?;
        }
        Ok(first_seq)
    }

    /// Publishes manifest `m` (which names the new segment `id` of `file_len` bytes), makes it
    /// the writer's, and opens the segment for readers. Returns the segment and the number of
    /// the manifest it replaced (to be deleted). A failure poisons the handle: whether the
    /// manifest is live is then unknown until the database is reopened.
    fn publish_segment(
        &self,
        w: &mut Writer,
        m: Manifest,
        id: u64,
        (footer, file_len): (Footer, u64),
    ) -> Result<(Arc<Segment>, u64)> {
        let inner = &*self.inner;
        if let Err(e) = m.publish(&inner.dir) {
            return Err(self.poison(w, e.to_string()));
        }
        let old_manifest = w.manifest.number;
        w.manifest = m;
        match Segment::open_written(&inner.dir, id, file_len, footer) {
            Ok(s) => Ok((
                Arc::new(
                    s.with_cache(inner.cache.clone())
                        .with_key_cache(inner.key_cache.clone()),
                ),
                old_manifest,
            )),
            Err(e) => Err(self.poison(w, e.to_string())),
        }
    }

    /// Seals the buffer into a segment (durable, indexed), then drops the log it came from.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.flush_locked(&mut w)
    }

    fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        let inner = &*self.inner;
        self.check_writable(w)?;
        let buffer = w.buffer.clone();
        let n = buffer.len();
        if n == 0 {
            return Ok(());
        }
        let dir = &inner.dir;
        // 1. Everything logged becomes durable and visible.
        let Some(old_wal) = w.wal.as_ref() else {
            return Err(DbError::ReadOnly.into());
        };
        let (f, p) = old_wal.sync_handle();
        let old_number = old_wal.number;
        if let Err(e) = file::sync(&f, &p, false) {
            return Err(self.poison(w, e.to_string()));
        }
        inner.sync.all_synced();
        inner.visible_seq.fetch_max(w.next_seq, Ordering::SeqCst);
        // 2. Later commits go to a new log file.
        let new_wal = match WalFile::create(dir, old_number + 1, w.manifest.db_id) {
            Ok(x) => x,
            Err(e) => return Err(self.poison(w, e.to_string())),
        };
        inner.sync.written(w.next_seq, new_wal.sync_handle());
        let new_number = new_wal.number;
        w.wal = Some(new_wal);
        // 3. Write the segment and the dictionary entries it needs.
        let id = w.manifest.next_segment;
        let rows = buffer.sorted_prefix(n);
        let seq_min = buffer.seq_base();
        let seq_end = seq_min + n as u64;
        let path = segment::seg_path(dir, id);
        let written = (|| -> Result<((Footer, u64), u64, dict::DictCounts)> {
            let seg = write_segment(
                dir,
                &path,
                (&rows, None),
                (seq_min, seq_end),
                (inner.opts.zstd_level, w.manifest.db_id),
            )?;
            let (delta, counts) = {
                let d = inner.dicts.read();
                (d.entries_since(w.manifest.dict_counts), d.counts())
            };
            let dict_len = dict::append(dir, w.manifest.dict_gen, w.manifest.dict_len, &delta)?;
            Ok((seg, dict_len, counts))
        })();
        // On failure nothing was published: the log still holds every event.
        let (seg, dict_len, counts) = unpublished(written, &path)?;
        let file_len = seg.1;
        // 4. Publish.
        let mut m = w.manifest.clone();
        m.number += 1;
        m.next_segment = id + 1;
        m.wal_start = new_number;
        m.next_seq = seq_end;
        m.dict_len = dict_len;
        m.dict_counts = counts;
        m.segments.push(SegmentEntry {
            id,
            file_len,
            rows: n as u64,
            seq_min,
            seq_end,
        });
        // 5. Install: readers switch to the new segment and an empty buffer.
        let (seg, old_manifest) = self.publish_segment(w, m, id, seg)?;
        let new_buffer = Arc::new(Buffer::new(seq_end));
        {
            let mut v = inner.version.write();
            let mut segments = v.segments.clone();
            segments.push(seg);
            *v = Arc::new(Version::new(segments, new_buffer.clone(), v.forgotten.clone()));
        }
        w.buffer = new_buffer;
        // 6. Drop what is no longer needed (a failure leaves garbage removed at next open).
        for k in wal::list(dir).unwrap_or_default() {
            if k < new_number {
                let _ = file::remove_if_exists(&wal::wal_path(dir, k));
            }
        }
        let _ = file::remove_if_exists(&dir.join(manifest::manifest_name(old_manifest)));
        Ok(())
    }

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
    /// same call. A Parquet file whose rows arrive in (customer, time) order — a file exported
    /// by customer into a database that does not hold its customers yet — is streamed: read in
    /// parts of [`ImportOptions::part_rows`](crate::import::ImportOptions::part_rows) rows, each
    /// written into the new segment while the next is read, so that memory stays bounded by a
    /// few parts and reading overlaps writing; commits wait while it runs (it holds the writer
    /// from the first part on). Any other file — another format, rows out of order, a property
    /// column whose first value comes after the first part, anything the rows' preparation
    /// rejects — is read whole first and imported by [`Db::import`] (a Parquet file that turns
    /// out not to stream after some parts is then read again, from the start). Either way the
    /// database ends up with the same events, and the same errors are reported.
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
        let first_seq = self.import(read.staged)?;
        Ok(FileImport {
            first_seq,
            events,
            skipped: read.skipped,
            streamed: false,
        })
    }

    /// The streamed import of [`Db::import_file`]: `None` when the file does not stream (nothing
    /// was published, the partial segment is removed).
    fn import_stream(
        &self,
        w: &mut Writer,
        path: &Path,
        opts: &crate::import::ImportOptions,
        progress: crate::import::Progress<'_>,
        part_rows: usize,
    ) -> Result<Option<FileImport>> {
        let inner = &*self.inner;
        self.flush_locked(w)?;
        let dicts = self.import_dicts(w)?;
        let stage_map = inner.stage_map.read().clone();
        let dir = &inner.dir;
        let id = w.manifest.next_segment;
        let seq_min = w.next_seq;
        let seg_path = segment::seg_path(dir, id);
        let format = (inner.opts.zstd_level, w.manifest.db_id);
        // One part waits while the writer writes another, and the reader stages a third.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<crate::import::Staged>>(1);
        let (read, streamed) = std::thread::scope(|s| {
            let writer = s.spawn(|| stream_parts(rx, &dicts, &stage_map, &seg_path, format));
            let mut sink = |part| tx.send(Some(part)).is_ok();
            let read = crate::import::read_parts(path, opts, progress, part_rows, &mut sink);
            if matches!(read, Ok((_, true))) {
                // The end of the file; without it, the writer abandons the segment.
                let _ = tx.send(None);
            }
            drop(tx);
            (read, crate::model::join(writer))
        });
        let streamed = match (read, streamed) {
            (Ok((skipped, true)), Ok(Streamed::Written(parts))) => Ok(Some((skipped, parts))),
            (Err(e), _) => Err(Error::Import(e)),
            (_, Err(e)) => Err(e),
            (Ok(_), Ok(_)) => Ok(None),
        };
        let Some((skipped, parts)) = unpublished(streamed, &seg_path)? else {
            let _ = file::remove_if_exists(&seg_path);
            return Ok(None);
        };
        let (events, first_seq) = match parts {
            None => (0, seq_min),
            Some(parts) => {
                let StreamedParts { writer, rows, delta } = *parts;
                let seq = (seq_min, seq_min + rows);
                let dict_file = (w.manifest.dict_gen, w.manifest.dict_len);
                let written = write_import(dir, &dicts, &delta, dict_file, || {
                    let written = writer.finish(seq.0, seq.1)?;
                    file::sync_dir(&dir.join(segment::SEG_DIR))?;
                    Ok(written)
                });
                drop(dicts);
                let (seg, dicts_written) = unpublished(written, &seg_path)?;
                (rows, self.publish_import(w, id, seq, seg, dicts_written, &delta)?)
            }
        };
        Ok(Some(FileImport {
            first_seq,
            events,
            skipped,
            streamed: true,
        }))
    }

    /// The dictionaries an import prepares its rows against (they cannot change while the
    /// writer is held), checked to be those the dictionary file holds.
    fn import_dicts(&self, w: &mut Writer) -> Result<Arc<Dicts>> {
        let dicts = self.inner.dicts.read().clone();
        if dicts.counts() != w.manifest.dict_counts {
            let why = "internal error: dictionary entries not in the dictionary file after a seal";
            return Err(self.poison(w, why.into()));
        }
        Ok(dicts)
    }

    /// Publishes import segment `id` holding sequence numbers `seq`, written (footer, file
    /// length) with its dictionary entries `delta` (the dictionary file's new length, and the
    /// dictionaries extended ahead when they were); returns the first sequence number.
    fn publish_import(
        &self,
        w: &mut Writer,
        id: u64,
        (seq_min, seq_end): (u64, u64),
        seg: (Footer, u64),
        (dict_len, applied): DictsWritten,
        delta: &crate::dict::DictDelta,
    ) -> Result<u64> {
        let inner = &*self.inner;
        let dir = &inner.dir;
        let file_len = seg.1;
        let mut m = w.manifest.clone();
        m.number += 1;
        m.next_segment = id + 1;
        m.next_seq = seq_end;
        m.dict_len = dict_len;
        m.dict_counts = delta.counts_after(w.manifest.dict_counts);
        m.segments.push(SegmentEntry {
            id,
            file_len,
            rows: seq_end - seq_min,
            seq_min,
            seq_end,
        });
        let (seg, old_manifest) = self.publish_segment(w, m, id, seg)?;
        {
            // Extended on the dictionary thread, or else applied here, in place unless a running
            // query holds the dictionaries (then on a copy): an import into a large database
            // does not copy all of its dictionaries. The delta was prepared against these
            // dictionaries under the writer lock, so applying it cannot fail; if it did, the
            // published manifest and these dictionaries disagree: poisoned.
            let mut d = inner.dicts.write();
            let applied = match applied {
                Some(extended) => {
                    *d = Arc::new(extended);
                    Ok(())
                }
                None => Arc::make_mut(&mut *d).apply(delta),
            };
            let counts = d.counts();
            drop(d);
            if let Err(why) = applied {
                return Err(self.poison(w, format!("internal error: {why}")));
            }
            if counts != w.manifest.dict_counts {
                let why = "internal error: dictionary counts disagree with the manifest after an import";
                return Err(self.poison(w, why.into()));
            }
        }
        // The buffer is empty (sealed above) and starts after the imported rows.
        let new_buffer = Arc::new(Buffer::new(seq_end));
        {
            let mut v = inner.version.write();
            let mut segments = v.segments.clone();
            segments.push(seg);
            *v = Arc::new(Version::new(segments, new_buffer.clone(), v.forgotten.clone()));
        }
        w.buffer = new_buffer;
        w.next_seq = seq_end;
        if let Some(wal) = w.wal.as_ref() {
            // The log holds nothing unsynced (the flush above synced it, or it is empty).
            inner.sync.written(seq_end, wal.sync_handle());
            inner.sync.all_synced();
        }
        inner.visible_seq.fetch_max(seq_end, Ordering::SeqCst);
        let _ = file::remove_if_exists(&dir.join(manifest::manifest_name(old_manifest)));
        Ok(seq_min)
    }

    /// Merges all live segments into one, without blocking readers (and blocking writers only
    /// while the new manifest is published). Returns the number of segments merged.
    pub fn compact(&self) -> Result<usize> {
        let inner = &*self.inner;
        let _guard = inner.compaction.lock();
        let (segs, sources, erasures, id, db_id) = {
            let mut w = inner.writer.lock();
            self.check_writable(&w)?;
            let v = inner.version.read().clone();
            // One segment is rewritten only to carry out pending erasures.
            if v.segments.is_empty() || (v.segments.len() < 2 && v.masks.iter().all(Option::is_none)) {
                return Ok(0);
            }
            let id = w.manifest.next_segment;
            w.manifest.next_segment += 1;
            let sources: Vec<Source> = v.sources().collect();
            (
                v.segments.clone(),
                sources,
                v.forgotten.clone(),
                id,
                w.manifest.db_id,
            )
        };
        let dir = &inner.dir;
        let path = segment::seg_path(dir, id);
        let seq_min = segs.first().map_or(0, |s| s.footer.seq_min);
        let seq_end = segs.last().map_or(0, |s| s.footer.seq_end);
        let mut strings = RoaringBitmap::new();
        let merged = (|| -> Result<(u64, (Footer, u64))> {
            let mut props: Vec<(u32, PropType)> = segs.iter().flat_map(|s| s.footer.props.clone()).collect();
            props.sort_unstable_by_key(|p| p.0);
            props.dedup_by_key(|p| p.0);
            let mut sw = SegmentWriter::create(&path, props, inner.opts.zstd_level, db_id)?;
            let rows = compaction::merge_into(&mut sw, sources, &mut strings)?;
            let written = sw.finish(seq_min, seq_end)?;
            file::sync_dir(&dir.join(segment::SEG_DIR))?;
            Ok((rows, written))
        })();
        let (rows, written) = unpublished(merged, &path)?;
        let file_len = written.1;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        let k = segs.len();
        let same = w.manifest.segments.len() >= k
            && w.manifest.segments.iter().zip(&segs).all(|(e, s)| e.id == s.id);
        assert!(same, "compaction inputs must still be the oldest live segments");
        let mut m = w.manifest.clone();
        m.number += 1;
        // Erasures carried out by this merge: every segment they hid rows in was an input.
        let pending = m.forgotten.len();
        m.forgotten
            .retain(|e| !(erasures.contains(e) && e.limit <= seq_end));
        // With erasures carried out, the dictionary is rewritten without the erased customers'
        // ids and without the string values that no remaining row uses.
        let scrubbed = if m.forgotten.len() < pending {
            match self.scrub_dictionary(&w, k, strings) {
                Ok((dicts, generation, len)) => {
                    m.dict_gen = generation;
                    m.dict_len = len;
                    Some(dicts)
                }
                Err(e) => {
                    let _ = file::remove_if_exists(&path);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let old_dict_gen = w.manifest.dict_gen;
        m.segments.splice(
            0..k,
            [SegmentEntry {
                id,
                file_len,
                rows,
                seq_min,
                seq_end,
            }],
        );
        let (seg, old_manifest) = self.publish_segment(&mut w, m, id, written)?;
        {
            let mut v = inner.version.write();
            let mut segments = vec![seg];
            segments.extend(v.segments.iter().skip(k).cloned());
            *v = Arc::new(Version::new(
                segments,
                v.buffer.clone(),
                Arc::new(w.manifest.forgotten.clone()),
            ));
        }
        for s in &segs {
            s.mark_obsolete();
        }
        if let Some(d) = scrubbed {
            *inner.dicts.write() = Arc::new(d);
            let _ = file::remove_if_exists(&dict::dict_path(dir, old_dict_gen));
        }
        let _ = file::remove_if_exists(&dir.join(manifest::manifest_name(old_manifest)));
        Ok(k)
    }

    /// Writes the next dictionary generation for a compaction that carries out erasures: the
    /// entries in the file now (the live manifest's counts), with every string value that no
    /// row uses any more vacated. `merged` holds the string ids of the merged segment; the
    /// segments sealed while it was merged (after the first `k`) and the buffer are read here,
    /// under the writer lock, so no commit can start using a value in between. Returns the new
    /// dictionaries, the generation and its length.
    fn scrub_dictionary(&self, w: &Writer, k: usize, mut used: RoaringBitmap) -> Result<(Dicts, u64, u64)> {
        let inner = &*self.inner;
        let dir = &inner.dir;
        let v = inner.version.read().clone();
        for seg in v.segments.iter().skip(k) {
            for i in 0..seg.footer.blocks.len() {
                compaction::string_refs(&seg.read_block(i, ColumnSet::ALL)?, &mut used);
            }
        }
        compaction::string_refs(&w.buffer.sorted_prefix(w.buffer.len()), &mut used);
        let upto = w.manifest.dict_counts;
        let mut dicts = (**inner.dicts.read()).clone();
        let vacate: Vec<dict::DictEntry> = (0..upto.strings)
            .filter(|&id| !used.contains(id) && !dicts.strings.is_vacant(id))
            .map(|id| dict::DictEntry::vacate(dict::DictKind::Str, id))
            .collect();
        dicts
            .apply(&dict::DictDelta { entries: vacate })
            .map_err(|why| DbError::Internal(format!("vacating unused string values: {why}")))?;
        let generation = w.manifest.dict_gen + 1;
        let path = dict::dict_path(dir, generation);
        let written = dict::rewrite(dir, generation, &dicts, upto, w.manifest.db_id).and_then(|len| {
            file::sync_dir(dir)?;
            Ok(len)
        });
        match written {
            Ok(len) => Ok((dicts, generation, len)),
            Err(e) => {
                let _ = file::remove_if_exists(&path);
                Err(e.into())
            }
        }
    }

    /// Erases every event of `customer` committed so far (a GDPR erasure request). From the
    /// moment this returns — durably, across crashes — no read of this database (queries,
    /// exports, timelines, bitmaps, statistics) includes those events; the next
    /// [`compact`](Db::compact) physically rewrites the segments that held them. Events
    /// committed for the same id afterwards are new data and are kept. Returns the number of
    /// events erased (0 for an unknown customer).
    pub fn forget_customer(&self, customer: &str) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        let Some(cid) = inner.dicts.read().customers.get(customer) else {
            return Ok(0);
        };
        // 1. Every event of the customer so far goes into a segment (and the log that held
        // them is deleted), so the erasure only has to cover segments.
        self.flush_locked(&mut w)?;
        let limit = w.next_seq;
        // 2. Count what becomes hidden.
        let v = inner.version.read().clone();
        let cid_only = ColumnSet {
            ts: false,
            event: false,
            stage: false,
            props: false,
            prop_mask: 0,
        };
        let mut rows = 0u64;
        for (seg, mask) in v.segments.iter().zip(&v.masks) {
            if mask.as_ref().is_some_and(|m| m.contains(cid)) {
                continue;
            }
            for (i, b) in seg.footer.blocks.iter().enumerate() {
                if b.cid_min <= cid && cid <= b.cid_max {
                    let cols = seg.read_block(i, cid_only)?;
                    rows += cols.cid.iter().filter(|&&c| c == cid).count() as u64;
                }
            }
        }
        // 3. Unbind the customer's id in the dictionary (it keeps its number; its text is gone
        // from the dictionary file at the compaction that carries out the erasure), so that
        // events committed for the same id from now on get a new customer number.
        let unbind = dict::DictDelta {
            entries: vec![dict::DictEntry::vacate(dict::DictKind::Customer, cid)],
        };
        let dict_len = dict::append(&inner.dir, w.manifest.dict_gen, w.manifest.dict_len, &unbind)?;
        // 4. Publish the erasure (durable when the manifest is).
        let mut m = w.manifest.clone();
        m.number += 1;
        m.dict_len = dict_len;
        match m.forgotten.binary_search_by_key(&cid, |e| e.cid) {
            Ok(i) => {
                m.forgotten[i].limit = limit;
                m.forgotten[i].rows += rows;
            }
            Err(i) => m.forgotten.insert(i, Erasure { cid, limit, rows }),
        }
        if let Err(e) = m.publish(&inner.dir) {
            return Err(self.poison(&mut w, e.to_string()));
        }
        let old = w.manifest.number;
        let forgotten = Arc::new(m.forgotten.clone());
        w.manifest = m;
        if let Err(why) = Arc::make_mut(&mut *inner.dicts.write()).apply(&unbind) {
            return Err(self.poison(&mut w, format!("internal error: {why}")));
        }
        // 5. Install: from here on every snapshot masks the customer.
        {
            let mut v = inner.version.write();
            *v = Arc::new(Version::new(v.segments.clone(), v.buffer.clone(), forgotten));
        }
        let _ = file::remove_if_exists(&inner.dir.join(manifest::manifest_name(old)));
        Ok(rows)
    }

    /// Maps `event` to `stage` for events committed from now on without an explicit stage
    /// (`None` removes the mapping). An explicit stage on an event always wins. Durable when
    /// this returns.
    pub fn set_stage(&self, event: &str, stage: Option<Stage>) -> Result<()> {
        self.set_stages(&[(event, stage)])
    }

    /// [`set_stage`](Self::set_stage) for several event names at once, in order (a later entry
    /// for the same name wins): one manifest switch for all of them, so either every mapping
    /// applies or, on an error, none does. Durable when this returns.
    pub fn set_stages(&self, entries: &[(&str, Option<Stage>)]) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.check_writable(&w)?;
        for (event, _) in entries {
            if event.is_empty() || event.len() > limits::NAME_BYTES_MAX {
                return Err(DbError::InvalidArgument(format!("event name of {} bytes", event.len())).into());
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut map = self.inner.stage_map.read().clone();
        for &(event, stage) in entries {
            match stage {
                Some(s) => map.insert(event.to_owned(), s),
                None => map.remove(event),
            };
        }
        let mut m = w.manifest.clone();
        m.number += 1;
        let mut list: Vec<(String, Stage)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        list.sort();
        m.stage_map = list;
        if let Err(e) = m.publish(&self.inner.dir) {
            return Err(self.poison(&mut w, e.to_string()));
        }
        let old = w.manifest.number;
        w.manifest = m;
        *self.inner.stage_map.write() = map;
        let _ = file::remove_if_exists(&self.inner.dir.join(manifest::manifest_name(old)));
        Ok(())
    }

    /// The stage map (event name → stage).
    pub fn stage_map(&self) -> HashMap<String, Stage> {
        self.inner.stage_map.read().clone()
    }

    /// A consistent read view: every event committed (and, under `Sync::EveryCommit` or
    /// `Group`, made durable) before this call; nothing after.
    pub fn snapshot(&self) -> Snapshot {
        let version = self.inner.version.read().clone();
        let visible = self.inner.visible_seq.load(Ordering::SeqCst);
        let buf = &version.buffer;
        let n = visible.saturating_sub(buf.seq_base()).min(buf.len() as u64) as usize;
        let rows = buf.sorted_prefix(n);
        Snapshot {
            db: self.clone(),
            version,
            rows,
            bitmaps: OnceLock::new(),
        }
    }

    /// Storage statistics.
    pub fn stats(&self) -> Stats {
        // Counts only: no snapshot (which would sort the buffer).
        let version = self.inner.version.read().clone();
        let visible = self.inner.visible_seq.load(Ordering::SeqCst);
        let buffered = visible
            .saturating_sub(version.buffer.seq_base())
            .min(version.buffer.len() as u64);
        let sealed: u64 = version.segments.iter().map(|s| s.footer.rows).sum();
        let segment_bytes: u64 = version.segments.iter().map(|s| s.file_len()).sum();
        let hidden: u64 = version.forgotten.iter().map(|e| e.rows).sum();
        Stats {
            events: (sealed + buffered).saturating_sub(hidden),
            customers: self.inner.dicts.read().customers.live() as u64,
            segments: version.segments.len(),
            buffered_events: buffered,
            bytes_on_disk: dir_size(&self.inner.dir),
            segment_bytes,
            bytes_per_event: if sealed == 0 {
                0.0
            } else {
                segment_bytes as f64 / sealed as f64
            },
            pending_erasures: version.forgotten.len() as u64,
            pending_erased_events: hidden,
            cache_bytes: (self.inner.cache.used() + self.inner.key_cache.used()) as u64,
        }
    }

    /// Checks every checksum of every live file, and that every id stored in a segment (customer,
    /// event name, property and its type, string value; the bitmap index's customers and event
    /// names) has its dictionary entry. Returns the number of sealed events checked. (Opening
    /// already checked the manifest, the dictionary log and the log, whose rows' ids replay checks.)
    pub fn verify(&self) -> Result<u64> {
        let snap = self.snapshot();
        let d = snap.dicts();
        let (customers, events, props, strings) = (
            d.customers.len() as u64,
            d.events.len() as u64,
            d.props.len() as u64,
            d.strings.len() as u64,
        );
        let over = |what: &str, id: u64, n: u64| {
            format!("{what} id {id} has no dictionary entry (the dictionary has {n})")
        };
        // An erased customer's id is vacated in the dictionary; rows that still use it must be
        // hidden by a pending erasure. Vacated string values are used by no stored row at all.
        let check = |cols: &Columns, hidden: Option<&RoaringBitmap>| -> std::result::Result<(), String> {
            if let Some(&c) = cols.cid.iter().max().filter(|&&c| u64::from(c) >= customers) {
                return Err(over("customer", c.into(), customers));
            }
            if let Some(&c) = cols
                .cid
                .iter()
                .find(|&&c| d.customers.is_vacant(c) && !hidden.is_some_and(|h| h.contains(c)))
            {
                return Err(format!(
                    "customer id {c} was erased but a visible row still uses it"
                ));
            }
            if let Some(&e) = cols.event.iter().max().filter(|&&e| u64::from(e) >= events) {
                return Err(over("event name", e.into(), events));
            }
            crate::model::check_values(cols)?;
            for p in &cols.props {
                match d.prop_types.get(p.id as usize) {
                    None => return Err(over("property", p.id.into(), props)),
                    Some(&ty) if ty != p.ty => {
                        return Err(format!(
                            "property id {} is stored as {} but the dictionary says {ty}",
                            p.id, p.ty
                        ));
                    }
                    Some(_) => {}
                }
                if p.ty == PropType::Str
                    && let Some(s) = p
                        .vals
                        .iter()
                        .zip(&p.valid)
                        .filter(|(_, v)| **v)
                        .map(|(x, _)| *x)
                        .max()
                    && s >= strings
                {
                    return Err(over("string value", s, strings));
                }
                if p.ty == PropType::Str
                    && let Some(s) = p
                        .vals
                        .iter()
                        .zip(&p.valid)
                        .find(|&(&x, &v)| v && d.strings.is_vacant(x as u32))
                        .map(|(x, _)| *x)
                {
                    return Err(format!(
                        "string value id {s} was erased but a stored row still uses it"
                    ));
                }
            }
            Ok(())
        };
        let mut rows = 0;
        for (s, mask) in snap.version.segments.iter().zip(&snap.version.masks) {
            rows += s.verify_with(|cols| check(cols, mask.as_deref()))?;
            let b = &s.footer.bitmaps;
            let max_cid = b.stages.iter().filter_map(|x| x.max()).max();
            let bad = max_cid
                .filter(|&c| u64::from(c) >= customers)
                .map(|c| over("customer (bitmap index)", c.into(), customers))
                .or_else(|| {
                    b.events
                        .keys()
                        .find(|&&e| u64::from(e) >= events)
                        .map(|&e| over("event name (bitmap index)", e.into(), events))
                });
            if let Some(why) = bad {
                return Err(FileError::corrupt(s.path(), s.footer_offset(), why).into());
            }
        }
        Ok(rows)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A clean close makes `Sync::Never` commits durable too (best effort: errors here have
        // no caller to go to, and a later open recovers the log as after a crash).
        let w = self.writer.get_mut();
        if w.poisoned.is_none()
            && let Some(wal) = &w.wal
        {
            let (f, p) = wal.sync_handle();
            let _ = file::sync(&f, &p, false);
        }
    }
}

/// Events to commit together, all or nothing.
pub struct Batch<'a> {
    db: &'a Db,
    events: Vec<Event>,
}

impl Batch<'_> {
    /// Adds an event.
    pub fn append(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Events in the batch.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Commits the batch (see [`Db::commit`]).
    pub fn commit(self) -> Result<u64> {
        self.db.commit(&self.events)
    }
}

/// A consistent, immutable read view of the database.
pub struct Snapshot {
    db: Db,
    version: Arc<Version>,
    rows: Arc<Columns>,
    bitmaps: OnceLock<Bitmaps>,
}

impl Snapshot {
    /// Number of events visible.
    pub fn len(&self) -> u64 {
        let hidden: u64 = self.version.forgotten.iter().map(|e| e.rows).sum();
        (self.version.segments.iter().map(|s| s.footer.rows).sum::<u64>() + self.rows.len() as u64)
            .saturating_sub(hidden)
    }

    /// True when no event is visible.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sources of this view in sequence order.
    pub fn sources(&self) -> Vec<Source> {
        let mut out: Vec<Source> = self.version.sources().collect();
        if !self.rows.is_empty() {
            out.push(Source::Memory(self.rows.clone()));
        }
        out
    }

    /// Visits every event in (customer id, timestamp, sequence) order, a block at a time.
    pub fn scan(&self, set: ColumnSet, mut f: impl FnMut(&Columns)) -> Result<()> {
        let mut merge = Merge::new(self.sources(), set);
        let mut block = Columns::default();
        while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
            f(&block);
        }
        Ok(())
    }

    /// Every event, in (customer id, timestamp, sequence) order, with names resolved.
    pub fn events(&self) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        let mut failed = None;
        self.scan(ColumnSet::ALL, |cols| {
            if failed.is_none()
                && let Err(e) = self.resolve_into(cols, &mut out)
            {
                failed = Some(e);
            }
        })?;
        failed.map_or(Ok(out), Err)
    }

    /// The events of one customer in (timestamp, sequence) order; empty if unknown.
    pub fn customer_events(&self, customer: &str) -> Result<Vec<StoredEvent>> {
        let Some(cid) = self.customer_id(customer) else {
            return Ok(Vec::new());
        };
        let mut sources: Vec<Source> = Vec::new();
        for (seg, mask) in self.version.segments.iter().zip(&self.version.masks) {
            if mask.as_ref().is_some_and(|m| m.contains(cid)) {
                continue;
            }
            let mut rows = Columns::default();
            for (i, b) in seg.footer.blocks.iter().enumerate() {
                if b.cid_min <= cid && cid <= b.cid_max {
                    let cols = seg.read_block_shared(i)?;
                    let lo = cols.cid.partition_point(|&c| c < cid);
                    let hi = cols.cid.partition_point(|&c| c <= cid);
                    rows.extend_from(&cols.slice(lo..hi));
                }
            }
            sources.push(Source::Memory(Arc::new(rows)));
        }
        let lo = self.rows.cid.partition_point(|&c| c < cid);
        let hi = self.rows.cid.partition_point(|&c| c <= cid);
        sources.push(Source::Memory(Arc::new(self.rows.slice(lo..hi))));
        let mut merge = Merge::new(sources, ColumnSet::ALL);
        let mut block = Columns::default();
        let mut out = Vec::new();
        while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
            self.resolve_into(&block, &mut out)?;
        }
        Ok(out)
    }

    fn resolve_into(&self, cols: &Columns, out: &mut Vec<StoredEvent>) -> Result<()> {
        let d = self.db.inner.dicts.read();
        let missing = |what: &str, id: u64| {
            Error::Db(DbError::Internal(format!(
                "{what} id {id} is not in the dictionary"
            )))
        };
        for i in 0..cols.len() {
            let customer = d
                .customers
                .name(cols.cid[i])
                .ok_or_else(|| missing("customer", u64::from(cols.cid[i])))?;
            let name = d
                .events
                .name(cols.event[i])
                .ok_or_else(|| missing("event", u64::from(cols.event[i])))?;
            let mut props = Vec::new();
            for p in &cols.props {
                if !p.valid[i] {
                    continue;
                }
                let pname = d
                    .props
                    .name(p.id)
                    .ok_or_else(|| missing("property", u64::from(p.id)))?;
                let x = p.vals[i];
                let v = match p.ty {
                    PropType::Str => Value::Str(
                        d.strings
                            .name(x as u32)
                            .ok_or_else(|| missing("string", x))?
                            .to_owned(),
                    ),
                    PropType::I64 => Value::I64(x as i64),
                    PropType::F64 => Value::F64(f64::from_bits(x)),
                    PropType::Bool => Value::Bool(x != 0),
                };
                props.push((pname.to_owned(), v));
            }
            props.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(StoredEvent {
                customer: customer.to_owned(),
                ts_us: cols.ts[i],
                name: name.to_owned(),
                stage: Stage::from_code(cols.stage[i]),
                props,
            });
        }
        Ok(())
    }

    /// The union of the bitmap indices of every segment and the buffer.
    pub fn bitmaps(&self) -> &Bitmaps {
        self.bitmaps.get_or_init(|| {
            let mut b = Bitmaps::default();
            for (s, mask) in self.version.segments.iter().zip(&self.version.masks) {
                match mask {
                    Some(m) => {
                        let mut own = s.footer.bitmaps.clone();
                        own.remove_customers(m);
                        b.union_with(&own);
                    }
                    None => b.union_with(&s.footer.bitmaps),
                }
            }
            b.add(&self.rows);
            b
        })
    }

    /// The dictionaries as of now (they only grow; ids in this snapshot all resolve).
    pub fn dicts(&self) -> Arc<Dicts> {
        self.db.inner.dicts.read().clone()
    }

    /// Smallest and largest timestamp visible (None when empty).
    pub fn ts_range(&self) -> Option<(i64, i64)> {
        let mut r: Option<(i64, i64)> = None;
        let mut add = |lo: i64, hi: i64| {
            r = Some(r.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        };
        for (s, mask) in self.version.segments.iter().zip(&self.version.masks) {
            if s.footer.rows == 0 {
                continue; // every row was erased
            }
            let Some(mask) = mask else {
                add(s.footer.ts_min, s.footer.ts_max);
                continue;
            };
            // Erased rows must not widen the range: blocks holding an erased customer are read.
            for (i, b) in s.footer.blocks.iter().enumerate() {
                if mask.range_cardinality(b.cid_min..=b.cid_max) == 0 {
                    add(b.ts_min, b.ts_max);
                    continue;
                }
                let set = ColumnSet {
                    ts: true,
                    event: false,
                    stage: false,
                    props: false,
                    prop_mask: 0,
                };
                match s.read_block(i, set) {
                    Ok(cols) => {
                        for (c, t) in cols.cid.iter().zip(&cols.ts) {
                            if !mask.contains(*c) {
                                add(*t, *t);
                            }
                        }
                    }
                    // The scan that follows reports the corruption; the zone map is a safe bound.
                    Err(_) => add(b.ts_min, b.ts_max),
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.rows.ts.iter().min(), self.rows.ts.iter().max()) {
            add(*lo, *hi);
        }
        r
    }

    /// Internal id of a customer.
    pub fn customer_id(&self, customer: &str) -> Option<u32> {
        self.db.inner.dicts.read().customers.get(customer)
    }

    /// External id of an internal customer id.
    pub fn customer_name(&self, cid: u32) -> Option<String> {
        self.db.inner.dicts.read().customers.name(cid).map(str::to_owned)
    }

    /// Internal id of an event name.
    pub fn event_id(&self, name: &str) -> Option<u32> {
        self.db.inner.dicts.read().events.get(name)
    }

    /// Customers with at least one event of `stage`.
    pub fn customers_in_stage(&self, stage: Stage) -> RoaringBitmap {
        self.bitmaps().stages[stage.code() as usize].clone()
    }

    /// Customers with at least one `event`.
    pub fn customers_with_event(&self, event: &str) -> RoaringBitmap {
        self.event_id(event)
            .and_then(|id| self.bitmaps().events.get(&id).cloned())
            .unwrap_or_default()
    }

    /// Customers with at least one event on UTC day `day` (days since 1970-01-01).
    pub fn customers_on_day(&self, day: i32) -> RoaringBitmap {
        self.bitmaps().days.get(&day).cloned().unwrap_or_default()
    }

    /// Customers with at least one event of `stage` on UTC day `day`.
    pub fn customers_in_stage_on_day(&self, stage: Stage, day: i32) -> RoaringBitmap {
        self.bitmaps()
            .stage_days
            .get(&(stage.code(), day))
            .cloned()
            .unwrap_or_default()
    }
}
