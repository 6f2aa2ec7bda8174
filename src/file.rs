//! The file layer: typed I/O and corruption errors that name the file and offset, magic
//! numbers, directory fsync, atomic replace, and the single-writer lock file.
//!
//! Uses: `codec`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::codec::DecodeError;

/// An error reading or writing a database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused an operation.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Bytes on disk are not what journeydb wrote: a checksum, magic, length or value is wrong.
    #[error("corrupt file {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the writer lock.
    #[error("database {path} is locked by another writer (open it read-only, or close the other writer)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

impl FileError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &Path, source: io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A corruption error.
    pub fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        FileError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// A decode error found in bytes that start at `base` in file `path`.
    pub fn decode(path: &Path, base: u64, error: DecodeError) -> Self {
        FileError::corrupt(path, base + error.offset as u64, error.what)
    }

    /// True when this is the OS saying the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Result alias for this layer.
pub type FileResult<T> = Result<T, FileError>;

/// Adds the path to an `io::Result`.
pub trait IoContext<T> {
    /// Maps the error into [`FileError::Io`] naming `path`.
    fn at(self, path: &Path) -> FileResult<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> FileResult<T> {
        self.map_err(|e| FileError::io(path, e))
    }
}

/// Version of the on-disk format written by this build (see docs/FORMAT.md).
pub const FORMAT_VERSION: u32 = 1;

/// The kinds of file, each with its own magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Write-ahead log.
    Wal,
    /// Sealed segment.
    Segment,
    /// Manifest.
    Manifest,
    /// Dictionary log.
    Dict,
    /// CURRENT pointer.
    Current,
}

/// Length of every magic number.
pub const MAGIC_LEN: usize = 8;

/// The PNG-style magic of a file kind: a high-bit byte (catches 7-bit transfers), `JD` and the
/// kind letter, CR LF (catches newline conversion), 0x1A (stops `type` on DOS) and LF.
pub fn magic(kind: Kind) -> [u8; MAGIC_LEN] {
    let letter = match kind {
        Kind::Wal => b'W',
        Kind::Segment => b'S',
        Kind::Manifest => b'M',
        Kind::Dict => b'D',
        Kind::Current => b'C',
    };
    [0x89, b'J', b'D', letter, b'\r', b'\n', 0x1a, b'\n']
}

/// Size of the common file header: magic (8) + format version u32 + database id u32.
pub const HEADER_LEN: usize = 16;

/// The common header of a file kind, in the database whose id is `db_id` (0 for databases
/// created before ids existed; docs/FORMAT.md §2).
pub fn header(kind: Kind, db_id: u32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..MAGIC_LEN].copy_from_slice(&magic(kind));
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&db_id.to_le_bytes());
    out
}

/// The database id in a header that [`check_header`] accepted (0 if `bytes` is shorter).
pub fn header_db_id(bytes: &[u8]) -> u32 {
    bytes
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Checks that a file whose header is `bytes` belongs to the database with id `db_id`: a file
/// copied in from another database (same name, even the same length) is corruption, not data.
pub fn check_db_id(path: &Path, bytes: &[u8], db_id: u32) -> FileResult<()> {
    let found = header_db_id(bytes);
    if found == db_id {
        Ok(())
    } else {
        Err(FileError::corrupt(
            path,
            12,
            format!("file belongs to another database (id {found:08x}; this database is {db_id:08x})"),
        ))
    }
}

/// A new database id: never 0 (the id of databases created before ids existed).
pub fn new_db_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let id = (h.finish() >> 32) as u32;
    id.max(1)
}

/// Checks the common header at the start of `bytes`.
pub fn check_header(path: &Path, kind: Kind, bytes: &[u8]) -> FileResult<()> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Err(FileError::corrupt(path, 0, "file shorter than its header"));
    };
    if head[..MAGIC_LEN] != magic(kind) {
        return Err(FileError::corrupt(
            path,
            0,
            format!("wrong magic number (not a journeydb {kind:?} file)"),
        ));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&head[8..12]);
    let version = u32::from_le_bytes(v);
    if version != FORMAT_VERSION {
        return Err(FileError::corrupt(
            path,
            8,
            format!("format version {version}, this build reads {FORMAT_VERSION}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Every operation journeydb performs on its files goes through the functions below, so that a
// test can see each one (to build power-loss images) or make it fail (fault injection) through
// the `failpoints` feature's hook. Without the feature the hook compiles to nothing.

/// One file-system operation, as a fault-injection hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Op<'a> {
    /// Create a new, empty file (it must not exist).
    Create(&'a Path),
    /// Write `data` at `offset` (always at or before the end of the file).
    Write {
        /// The file.
        path: &'a Path,
        /// Byte offset of the write.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Truncate or extend to `len`.
    SetLen {
        /// The file.
        path: &'a Path,
        /// New length.
        len: u64,
    },
    /// fsync (or fdatasync) a file.
    Sync(&'a Path),
    /// fdatasync a file that is still being written, from a background thread, so that its
    /// final fsync has less left to write. Nothing relies on it for durability (the final
    /// [`Op::Sync`] does), but a failure fails the write: after a failed fsync the kernel may
    /// have dropped the dirty pages, which a later fsync would then not report.
    SyncAhead(&'a Path),
    /// fsync a directory.
    SyncDir(&'a Path),
    /// Rename `from` over `to` (same directory).
    Rename {
        /// Old name.
        from: &'a Path,
        /// New name (replaced if it exists).
        to: &'a Path,
    },
    /// Remove a file.
    Remove(&'a Path),
    /// Read a file (or open it for mapping).
    Read(&'a Path),
}

/// What a hook decides for one operation.
#[derive(Debug)]
pub enum Inject {
    /// Perform the operation.
    Proceed,
    /// Do not perform it; fail with this error.
    Fail(io::Error),
    /// For a write: write only this many bytes, then fail with an I/O error (a torn write).
    /// For any other operation, the same as `Fail` with an I/O error.
    Short(usize),
}

/// A fault-injection hook (feature `failpoints`): sees every file operation before it runs.
pub trait Hook: Send + Sync {
    /// Decides what happens to `op`.
    fn on(&self, op: &Op<'_>) -> Inject;
}

#[cfg(feature = "failpoints")]
static HOOK: parking_lot::RwLock<Option<std::sync::Arc<dyn Hook>>> = parking_lot::RwLock::new(None);

/// Installs (or with `None` removes) the process-wide fault-injection hook. Test builds only:
/// a hook sees every file operation of every database in the process.
#[cfg(feature = "failpoints")]
pub fn set_hook(hook: Option<std::sync::Arc<dyn Hook>>) {
    *HOOK.write() = hook;
}

#[inline]
fn inject(op: &Op<'_>) -> Inject {
    #[cfg(feature = "failpoints")]
    {
        if let Some(h) = HOOK.read().as_ref() {
            return h.on(op);
        }
    }
    let _ = op;
    Inject::Proceed
}

/// Runs the hook for a non-write operation: `Err` when the hook makes it fail.
fn gate(op: &Op<'_>) -> io::Result<()> {
    match inject(op) {
        Inject::Proceed => Ok(()),
        Inject::Fail(e) => Err(e),
        Inject::Short(_) => Err(io::Error::other("injected fault")),
    }
}

/// Creates a new file for writing; it must not exist yet.
pub fn create_new(path: &Path) -> FileResult<File> {
    gate(&Op::Create(path)).at(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)
}

/// Opens an existing file for writing (in append mode when `append`).
pub fn open_write(path: &Path, append: bool) -> FileResult<File> {
    gate(&Op::Read(path)).at(path)?;
    OpenOptions::new()
        .write(!append)
        .append(append)
        .open(path)
        .at(path)
}

/// Opens a file for reading (or mapping).
pub fn open_read(path: &Path) -> FileResult<File> {
    gate(&Op::Read(path)).at(path)?;
    File::open(path).at(path)
}

/// Writes all of `data` to `file`, whose position (or, in append mode, length) is `offset`.
pub fn write(file: &File, path: &Path, offset: u64, data: &[u8]) -> FileResult<()> {
    let mut w = file;
    match inject(&Op::Write { path, offset, data }) {
        Inject::Proceed => w.write_all(data).at(path),
        Inject::Fail(e) => Err(FileError::io(path, e)),
        Inject::Short(n) => {
            w.write_all(&data[..n.min(data.len())]).at(path)?;
            Err(FileError::io(path, io::Error::other("injected short write")))
        }
    }
}

/// Truncates or extends `file` to `len` bytes.
pub fn set_len(file: &File, path: &Path, len: u64) -> FileResult<()> {
    gate(&Op::SetLen { path, len }).at(path)?;
    file.set_len(len).at(path)
}

/// fsyncs `file` (data and metadata when `all`, else data and the size).
pub fn sync(file: &File, path: &Path, all: bool) -> FileResult<()> {
    gate(&Op::Sync(path)).at(path)?;
    if all { file.sync_all() } else { file.sync_data() }.at(path)
}

/// [`Op::SyncAhead`]: fdatasyncs `file`, a file that another thread is still appending to.
pub fn sync_ahead(file: &File, path: &Path) -> FileResult<()> {
    gate(&Op::SyncAhead(path)).at(path)?;
    file.sync_data().at(path)
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> FileResult<()> {
    gate(&Op::SyncDir(dir)).at(dir)?;
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Renames `from` over `to`.
pub fn rename(from: &Path, to: &Path) -> FileResult<()> {
    gate(&Op::Rename { from, to }).at(to)?;
    fs::rename(from, to).at(to)
}

/// Writes `bytes` to `path` through a temporary file: write, fsync the file, rename over
/// `path`, fsync the directory. After a crash `path` holds either the old or the new bytes.
pub fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> FileResult<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    // A leftover from a crashed attempt is garbage.
    remove_if_exists(&tmp)?;
    write_new(&tmp, bytes)?;
    rename(&tmp, &dst)?;
    sync_dir(dir)
}

/// Creates a new file that must not exist yet, writes `bytes`, fsyncs it.
pub fn write_new(path: &Path, bytes: &[u8]) -> FileResult<()> {
    let f = create_new(path)?;
    write(&f, path, 0, bytes)?;
    sync(&f, path, true)
}

/// Reads a whole file.
pub fn read_all(path: &Path) -> FileResult<Vec<u8>> {
    gate(&Op::Read(path)).at(path)?;
    fs::read(path).at(path)
}

/// Removes a file, ignoring "not found".
pub fn remove_if_exists(path: &Path) -> FileResult<()> {
    gate(&Op::Remove(path)).at(path)?;
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FileError::io(path, e)),
        _ => Ok(()),
    }
}

/// The writer lock: an exclusive advisory lock on `LOCK`, held for the life of the writer.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock or fails with [`FileError::Locked`].
    pub fn acquire(dir: &Path) -> FileResult<WriterLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(WriterLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(FileError::Locked { path }),
            Err(fs::TryLockError::Error(e)) => Err(FileError::io(&path, e)),
        }
    }
}

/// Parses a file name of the form `<prefix><16 hex digits><suffix>`.
pub fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let mid = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if mid.len() != 16 {
        return None;
    }
    u64::from_str_radix(mid, 16).ok()
}

/// Formats a numbered file name (see [`parse_numbered`]).
pub fn numbered(prefix: &str, number: u64, suffix: &str) -> String {
    format!("{prefix}{number:016x}{suffix}")
}

/// Lists numbered files in `dir`, sorted by number.
pub fn list_numbered(dir: &Path, prefix: &str, suffix: &str) -> FileResult<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| parse_numbered(s, prefix, suffix))
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}
