//! The write-ahead log: one framed record per committed batch, group commit, and replay with
//! the torn-tail rule.
//!
//! File `wal/<n>.log` = 16-byte header, then frames `len u32 | crc32 u32 | payload`. A payload
//! is `kind u8 (2 = batch) | first_seq u64 | durable_seq varint | dictionary delta | rows`
//! (kind 1, without `durable_seq`, is still read). A batch is one frame,
//! so it is all-or-nothing. See docs/FORMAT.md §4.
//!
//! Uses: `codec`, `dict`, `file`, `limits`, `model`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::codec::{self, DecodeError, Frame, Reader};
use crate::dict::DictDelta;
use crate::file::{self, FileError, FileResult, Kind};
use crate::limits;
use crate::model::{Columns, PropColumn, PropType};

/// Record kind of a committed batch, as first written (no `durable_seq`; still read).
const KIND_BATCH_V1: u8 = 1;
/// Record kind of a committed batch.
const KIND_BATCH: u8 = 2;

/// Sub-directory holding log files.
pub const WAL_DIR: &str = "wal";

/// Path of log file `number`.
pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(WAL_DIR).join(file::numbered("", number, ".log"))
}

/// Lists the log file numbers present.
pub fn list(dir: &Path) -> FileResult<Vec<u64>> {
    file::list_numbered(&dir.join(WAL_DIR), "", ".log")
}

/// One committed batch as stored in the log.
#[derive(Debug, Default, PartialEq)]
pub struct Record {
    /// Sequence number of the first row.
    pub first_seq: u64,
    /// When the record was written, every record below this sequence number was known to be
    /// durable (fsynced). Replay uses it to tell a torn, never-acknowledged tail from damage to
    /// acknowledged records.
    pub durable_seq: u64,
    /// Dictionary entries created by the batch.
    pub delta: DictDelta,
    /// The rows, in ingestion order.
    pub rows: Columns,
}

/// Encodes a batch record payload.
pub fn encode(first_seq: u64, durable_seq: u64, delta: &DictDelta, rows: &Columns, out: &mut Vec<u8>) {
    out.push(KIND_BATCH);
    codec::put_u64(out, first_seq);
    codec::put_varint(out, durable_seq);
    delta.encode(out);
    let n = rows.len();
    codec::put_varint(out, n as u64);
    let mut prev = 0i64;
    for i in 0..n {
        codec::put_varint(out, u64::from(rows.cid[i]));
        codec::put_varint(out, codec::zigzag(rows.ts[i].wrapping_sub(prev)));
        prev = rows.ts[i];
        codec::put_varint(out, u64::from(rows.event[i]));
        out.push(rows.stage[i]);
    }
    codec::put_varint(out, rows.props.len() as u64);
    for p in &rows.props {
        codec::put_varint(out, u64::from(p.id));
        out.push(p.ty.code());
        for chunk in p.valid.chunks(8) {
            let mut byte = 0u8;
            for (bit, &v) in chunk.iter().enumerate() {
                byte |= u8::from(v) << bit;
            }
            out.push(byte);
        }
        for (&v, &x) in p.valid.iter().zip(&p.vals) {
            if v {
                match p.ty {
                    PropType::F64 => codec::put_u64(out, x),
                    PropType::I64 => codec::put_varint(out, codec::zigzag(x as i64)),
                    PropType::Str | PropType::Bool => codec::put_varint(out, x),
                }
            }
        }
    }
}

/// Decodes a batch record payload.
pub fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(payload);
    let kind = r.u8()?;
    if kind != KIND_BATCH && kind != KIND_BATCH_V1 {
        return Err(DecodeError::new(0, "unknown log record kind"));
    }
    let first_seq = r.u64()?;
    let durable_seq = if kind == KIND_BATCH { r.varint()? } else { 0 };
    if durable_seq > first_seq {
        return Err(r.err("durable sequence number after the record's own"));
    }
    let delta = DictDelta::decode(&mut r)?;
    // Each row takes at least 4 bytes, which bounds the allocation.
    let n = r.len_prefix(limits::BATCH_EVENTS_MAX)?;
    if n > r.remaining() / 4 {
        return Err(r.err("row count exceeds the record"));
    }
    let mut rows = Columns::default();
    let mut prev = 0i64;
    for _ in 0..n {
        rows.cid.push(r.varint_u32()?);
        prev = prev.wrapping_add(codec::unzigzag(r.varint()?));
        rows.ts.push(prev);
        rows.event.push(r.varint_u32()?);
        let stage = r.u8()?;
        if !crate::model::stored_stage_valid(stage) {
            return Err(r.err(format!("stage code {stage}")));
        }
        rows.stage.push(stage);
    }
    let cols = r.len_prefix(limits::PROPS_MAX)?;
    let mut last_id = None;
    for _ in 0..cols {
        let id = r.varint_u32()?;
        if last_id.is_some_and(|l| l >= id) {
            return Err(r.err("property columns out of order"));
        }
        last_id = Some(id);
        let ty = PropType::from_code(r.u8()?).ok_or_else(|| r.err("unknown property type"))?;
        let bits = r.bytes(n.div_ceil(8))?;
        let mut col = PropColumn::new(id, ty);
        for i in 0..n {
            let v = bits[i / 8] >> (i % 8) & 1 == 1;
            col.valid.push(v);
            col.vals.push(if v {
                match ty {
                    PropType::F64 => r.u64()?,
                    PropType::I64 => codec::unzigzag(r.varint()?) as u64,
                    PropType::Str | PropType::Bool => r.varint()?,
                }
            } else {
                0
            });
        }
        rows.props.push(col);
    }
    r.finish()?;
    Ok(Record {
        first_seq,
        durable_seq,
        delta,
        rows,
    })
}

/// An open log file being appended to.
#[derive(Debug)]
pub struct WalFile {
    /// File number.
    pub number: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

impl WalFile {
    /// Creates log file `number` of database `db_id` (header written and fsynced, directory
    /// fsynced).
    pub fn create(dir: &Path, number: u64, db_id: u32) -> FileResult<WalFile> {
        let path = wal_path(dir, number);
        file::write_new(&path, &file::header(Kind::Wal, db_id))?;
        file::sync_dir(&dir.join(WAL_DIR))?;
        let file = file::open_write(&path, true)?;
        Ok(WalFile {
            number,
            path,
            file: Arc::new(file),
            len: file::HEADER_LEN as u64,
        })
    }

    /// Appends one framed record (not yet durable).
    pub fn append(&mut self, frame: &[u8]) -> FileResult<()> {
        file::write(&self.file, &self.path, self.len, frame)?;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// A handle on which `sync_data` can run without holding the writer.
    pub fn sync_handle(&self) -> (Arc<File>, PathBuf) {
        (self.file.clone(), self.path.clone())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == file::HEADER_LEN as u64
    }
}

/// Builds the frame for a record payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + codec::FRAME_HEADER);
    codec::put_frame(&mut out, payload);
    out
}

#[derive(Debug)]
struct SyncState {
    /// Next sequence number after the last record written to the current file.
    written_seq: u64,
    /// Every record below this sequence number is durable.
    synced_seq: u64,
    /// A leader is running an fsync.
    syncing: bool,
    /// An fsync failed: the log can no longer promise durability.
    failed: Option<String>,
    handle: Option<(Arc<File>, PathBuf)>,
    /// When the last fsync started.
    last_sync: Option<std::time::Instant>,
}

/// Group commit: committers wait until an fsync covers their record; everyone waiting when an
/// fsync starts shares it. With a non-zero `gather` interval, fsyncs start at most once per
/// interval, so that under load more commits share each one. Never retries a failed fsync
/// (see docs/DURABILITY.md).
#[derive(Debug)]
pub struct SyncCoordinator {
    state: Mutex<SyncState>,
    done: Condvar,
    gather: Duration,
}

impl SyncCoordinator {
    /// A coordinator; `gather` is how long a sync leader waits for more commits to join.
    pub fn new(next_seq: u64, gather: Duration) -> Self {
        SyncCoordinator {
            state: Mutex::new(SyncState {
                written_seq: next_seq,
                synced_seq: next_seq,
                syncing: false,
                failed: None,
                handle: None,
                last_sync: None,
            }),
            done: Condvar::new(),
            gather,
        }
    }

    /// Records that every row below `next_seq` is written to the file behind `handle`.
    pub fn written(&self, next_seq: u64, handle: (Arc<File>, PathBuf)) {
        let mut st = self.state.lock();
        st.written_seq = next_seq;
        st.handle = Some(handle);
    }

    /// Records that everything written is durable (after the writer synced it itself).
    pub fn all_synced(&self) {
        let mut st = self.state.lock();
        st.synced_seq = st.written_seq;
        self.done.notify_all();
    }

    /// The durable frontier.
    pub fn synced_seq(&self) -> u64 {
        self.state.lock().synced_seq
    }

    /// Records a failure seen by the writer; every later wait fails.
    pub fn fail(&self, why: String) {
        let mut st = self.state.lock();
        st.failed.get_or_insert(why);
        self.done.notify_all();
    }

    /// Blocks until every row below `seq` is durable; returns the durable frontier.
    pub fn wait_durable(&self, seq: u64) -> Result<u64, String> {
        let mut st = self.state.lock();
        loop {
            if st.synced_seq >= seq {
                return Ok(st.synced_seq);
            }
            if let Some(why) = &st.failed {
                return Err(why.clone());
            }
            if st.syncing {
                self.done.wait(&mut st);
                continue;
            }
            st.syncing = true;
            let wait = st.last_sync.map_or(std::time::Duration::ZERO, |t| {
                self.gather.saturating_sub(t.elapsed())
            });
            drop(st);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let mut st2 = self.state.lock();
            st2.last_sync = Some(std::time::Instant::now());
            let target = st2.written_seq;
            let handle = st2.handle.clone();
            drop(st2);
            let result = match &handle {
                Some((f, path)) => file::sync(f, path, false).map_err(|e| format!("fsync failed: {e}")),
                None => Ok(()),
            };
            st2 = self.state.lock();
            st2.syncing = false;
            match result {
                Ok(()) => st2.synced_seq = st2.synced_seq.max(target),
                Err(why) => {
                    st2.failed.get_or_insert(why);
                }
            }
            self.done.notify_all();
            st = st2;
        }
    }
}

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayEnd {
    /// Next sequence number after the last replayed record.
    pub next_seq: u64,
    /// Highest log file number seen (0 if none).
    pub last_number: u64,
    /// Bytes cut off a torn tail (0 if none).
    pub torn_bytes: u64,
    /// Log files that hold no record (safe to delete).
    pub empty_files: Vec<u64>,
    /// Log files that hold at least one replayed record. A writer makes them durable before it
    /// acknowledges anything new: they may hold records that only reached the page cache
    /// (a writer that crashed before its fsync), and a later acknowledged record must never
    /// sit after a gap that a power cut could open.
    pub replayed_files: Vec<u64>,
}

/// Where a log file stops being readable, taken as a torn write.
#[derive(Debug)]
struct Tear {
    path: PathBuf,
    offset: usize,
    file_len: usize,
}

/// Replays the log files of database `db_id` numbered `>= start` in order, calling `apply` for
/// each record.
///
/// `next_seq` is the first sequence number not yet in a segment, and records must follow each
/// other without gaps. A frame that is cut short or has a bad checksum starts a torn tail —
/// records that were never acknowledged, because no fsync covering them had completed — and
/// is dropped with everything after it in its file (and, when `repair`, truncated away),
/// unless the damage is provably not a torn write (see `judge_damage`): then acknowledged
/// data is damaged, which is corruption. A torn tail may end a file that is not the last only
/// when no later file holds an intact record (a writer that crashed, then a session that
/// opened and closed without writing); otherwise it is corruption too.
pub fn replay(
    dir: &Path,
    (start, db_id): (u64, u32),
    mut next_seq: u64,
    repair: bool,
    mut apply: impl FnMut(Record) -> Result<(), String>,
) -> FileResult<ReplayEnd> {
    let numbers: Vec<u64> = list(dir)?.into_iter().filter(|&n| n >= start).collect();
    let mut end = ReplayEnd {
        next_seq,
        ..ReplayEnd::default()
    };
    let mut tears: Vec<Tear> = Vec::new();
    let mut previous: Option<(PathBuf, usize)> = None;
    for (i, &n) in numbers.iter().enumerate() {
        let last = i + 1 == numbers.len();
        let path = wal_path(dir, n);
        let bytes = file::read_all(&path)?;
        end.last_number = n;
        let torn_creation = bytes.len() < file::HEADER_LEN
            || (bytes.len() == file::HEADER_LEN && file::check_header(&path, Kind::Wal, &bytes).is_err());
        if torn_creation && last {
            // A crash while creating the file (its header is fsynced before any record is
            // appended): nothing in it was ever acknowledged.
            end.torn_bytes += bytes.len() as u64;
            if repair {
                file::remove_if_exists(&path)?;
            }
            continue;
        }
        file::check_header(&path, Kind::Wal, &bytes)?;
        file::check_db_id(&path, &bytes, db_id)?;
        let seq_at_start = next_seq;
        let context = FileContext {
            earlier_tear: tears.first(),
            previous: previous.as_ref().map(|(p, len)| (p.as_path(), *len)),
        };
        if let Some(offset) = replay_file(&path, &bytes, &mut next_seq, context, &mut apply)? {
            tears.push(Tear {
                path: path.clone(),
                offset,
                file_len: bytes.len(),
            });
        }
        if next_seq == seq_at_start {
            end.empty_files.push(n);
        } else {
            end.replayed_files.push(n);
        }
        previous = Some((path, bytes.len()));
    }
    for tear in &tears {
        end.torn_bytes += (tear.file_len - tear.offset) as u64;
        if repair {
            let f = file::open_write(&tear.path, false)?;
            file::set_len(&f, &tear.path, tear.offset as u64)?;
            file::sync(&f, &tear.path, true)?;
        }
    }
    end.next_seq = next_seq;
    Ok(end)
}

/// What replaying one log file needs to know of the files before it.
#[derive(Clone, Copy)]
struct FileContext<'a> {
    /// A torn write in an earlier file: nothing intact may follow it.
    earlier_tear: Option<&'a Tear>,
    /// The previous file and its length: where records are missing when this file starts
    /// past the expected sequence number.
    previous: Option<(&'a Path, usize)>,
}

/// Replays the records of one log file (header checked) until its end or a torn write;
/// returns the offset of the torn write, if any.
fn replay_file(
    path: &Path,
    bytes: &[u8],
    next_seq: &mut u64,
    FileContext {
        earlier_tear,
        previous,
    }: FileContext<'_>,
    apply: &mut impl FnMut(Record) -> Result<(), String>,
) -> FileResult<Option<usize>> {
    let after_tear = |tear: &Tear, at: usize| {
        FileError::corrupt(
            &tear.path,
            tear.offset as u64,
            format!(
                "bad log record (checksum or length), though a later log file ({} at offset {at}) holds intact records",
                path.display()
            ),
        )
    };
    let mut at = file::HEADER_LEN;
    while at < bytes.len() {
        match codec::read_frame(bytes, at, limits::WAL_RECORD_BYTES_MAX) {
            Frame::Good { payload, next } => {
                if let Some(tear) = earlier_tear {
                    return Err(after_tear(tear, at));
                }
                let base = (at + codec::FRAME_HEADER) as u64;
                let rec = decode(payload).map_err(|e| FileError::decode(path, base, e))?;
                if let Some((prev, prev_len)) =
                    previous.filter(|_| at == file::HEADER_LEN && rec.first_seq > *next_seq)
                {
                    return Err(FileError::corrupt(
                        prev,
                        prev_len as u64,
                        format!(
                            "log ends at sequence {next_seq} but the next log file ({}) starts at {}: records are missing from its end",
                            path.display(),
                            rec.first_seq
                        ),
                    ));
                }
                if rec.first_seq != *next_seq {
                    return Err(FileError::corrupt(
                        path,
                        at as u64,
                        format!(
                            "record starts at sequence {} but {next_seq} was expected",
                            rec.first_seq
                        ),
                    ));
                }
                *next_seq += rec.rows.len() as u64;
                apply(rec).map_err(|why| FileError::corrupt(path, at as u64, why))?;
                at = next;
            }
            Frame::Truncated | Frame::Bad { .. } => {
                let intact = judge_damage(path, bytes, at, *next_seq)?;
                if let (Some(tear), Some(k)) = (earlier_tear, intact) {
                    return Err(after_tear(tear, k));
                }
                return Ok(Some(at));
            }
        }
    }
    Ok(None)
}

/// Decides whether the unreadable frame at `at` may be a torn write. Every byte after it is
/// scanned for an intact record (a damaged length field points anywhere, so the next frame
/// boundary is not trusted). Unsynced pages reach the disk in any order, so intact records
/// may follow a torn one; the damage is to acknowledged data — a corruption error naming the
/// file and offset — when a later intact record was written after the damaged one was durable
/// (its `durable_seq`), or when the damaged frame's checksum matches its bytes up to the next
/// intact record (only its length field changed: a torn write leaves the length it wrote, or
/// zeros). Returns the offset of the first intact record after the damage, if any.
fn judge_damage(path: &Path, bytes: &[u8], at: usize, next_seq: u64) -> FileResult<Option<usize>> {
    let mut first_intact = None;
    let mut k = at + 1;
    while k + codec::FRAME_HEADER < bytes.len() {
        if let Some((rec, next)) = intact_record_at(bytes, k, next_seq) {
            first_intact.get_or_insert(k);
            if rec.durable_seq > next_seq {
                return Err(FileError::corrupt(
                    path,
                    at as u64,
                    format!(
                        "bad log record (checksum or length), though the record at offset {k} shows it was durable"
                    ),
                ));
            }
            k = next;
        } else {
            k += 1;
        }
    }
    if let Some(k) = first_intact {
        let mut header = Reader::new(&bytes[at..at + codec::FRAME_HEADER]);
        if let (Ok(len), Ok(crc)) = (header.u32(), header.u32()) {
            let implied = k - at - codec::FRAME_HEADER;
            if len != 0 && len as usize != implied && crc == codec::crc32(&bytes[at + codec::FRAME_HEADER..k])
            {
                return Err(FileError::corrupt(
                    path,
                    at as u64,
                    format!(
                        "log record length field damaged: it says {len} bytes, but the checksum matches the {implied} bytes up to the intact record at offset {k}"
                    ),
                ));
            }
        }
    }
    Ok(first_intact)
}

/// The record framed at `offset`, if an intact one starts there, and the offset after it. Its kind
/// and first sequence number are checked before the checksum, so that scanning damaged bytes
/// does not checksum long spans at nearly every offset.
fn intact_record_at(bytes: &[u8], offset: usize, next_seq: u64) -> Option<(Record, usize)> {
    let head = bytes.get(offset + codec::FRAME_HEADER..offset + codec::FRAME_HEADER + 9)?;
    if head[0] != KIND_BATCH && head[0] != KIND_BATCH_V1 {
        return None;
    }
    // A later record starts at or after the damaged one; 2^40 sequence numbers past it is more
    // than any log holds, and leaves random bytes a 2^-24 chance of being checksummed.
    let first_seq = u64::from_le_bytes(head[1..9].try_into().ok()?);
    if first_seq < next_seq || first_seq - next_seq > 1 << 40 {
        return None;
    }
    match codec::read_frame(bytes, offset, limits::WAL_RECORD_BYTES_MAX) {
        Frame::Good { payload, next } => decode(payload).ok().map(|rec| (rec, next)),
        _ => None,
    }
}

/// Makes the replayed log files durable (fsync each, then the log directory), before a writer
/// acknowledges anything new on top of them.
pub fn sync_replayed(dir: &Path, numbers: &[u64]) -> FileResult<()> {
    for &n in numbers {
        let path = wal_path(dir, n);
        let f = file::open_write(&path, false)?;
        file::sync(&f, &path, false)?;
    }
    file::sync_dir(&dir.join(WAL_DIR))
}
