//! The database API and the only orchestrator of writes: create/open, batches and commit,
//! flush (seal), compaction, the stage map, stats, and snapshots for readers.
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `ingest`, `manifest`, `segment`, `wal`; rooms `version`.

mod open;
mod version;
mod write;
mod seal;
mod spill;
mod import;
mod maintain;
mod stages;
mod snapshot;
mod cohorts;
mod links;
pub(crate) mod profiles;

pub use cohorts::CustomerMasks;
pub use links::{Journeys, LINKS_PER_CUSTOMER_MAX, Links, NEVER_LINK};
pub use open::READ_ONLY_OPEN_ATTEMPTS;
pub use snapshot::Snapshot;
pub use write::Batch;

use crate::buffer::Buffer;
use crate::db::version::Version;
use crate::dict::Dicts;
use crate::error::{DbError, Error, Result};
use crate::file::{self, WriterLock};
use crate::ingest::StageMap;
use crate::manifest::{CohortEntry, Manifest};
use crate::segment::{self};
use crate::wal::{SyncCoordinator, WalFile};
use cohorts::CohortCache;
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

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
    /// Ids that never take part in an identity link (compared without case and surrounding
    /// spaces): what trackers send before they know the customer ([`NEVER_LINK`]).
    pub never_link: Vec<String>,
    /// Most anonymous ids linked to one known id ([`LINKS_PER_CUSTOMER_MAX`]).
    pub links_per_customer_max: usize,
    /// Bytes of linked customers' merged journeys kept for the newest snapshot (per column set
    /// read, at most two), so that statements after the first read no block for them; a larger
    /// set of journeys is read again by every statement. 0 turns the cache off.
    pub linked_cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: Sync::EveryCommit,
            buffer_events_max: 1 << 20,
            zstd_level: 3,
            block_cache_bytes: 64 << 20,
            key_cache_bytes: 128 << 20,
            never_link: NEVER_LINK.iter().map(|id| (*id).to_owned()).collect(),
            links_per_customer_max: LINKS_PER_CUSTOMER_MAX,
            linked_cache_bytes: 256 << 20,
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
    pub fn buffer_events_max(mut self, count: usize) -> Self {
        self.buffer_events_max = count.max(1);
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
    /// Sets the ids that never link.
    pub fn never_link(mut self, ids: &[&str]) -> Self {
        self.never_link = ids.iter().map(|id| (*id).to_owned()).collect();
        self
    }
    /// Sets the bytes of linked journeys kept (0: off).
    pub fn linked_cache_bytes(mut self, bytes: usize) -> Self {
        self.linked_cache_bytes = bytes;
        self
    }
    /// Sets the most anonymous ids linked to one known id.
    pub fn links_per_customer_max(mut self, count: usize) -> Self {
        self.links_per_customer_max = count;
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
    /// Saved cohorts (as in the live manifest), with a number that changes with them.
    cohorts: RwLock<(u64, Arc<Vec<CohortEntry>>)>,
    /// Members of dynamic cohorts evaluated on the newest snapshot (see [`CohortCache`]).
    cohort_cache: Mutex<CohortCache>,
    /// Identity links (as in the live manifest).
    links: RwLock<Arc<links::Links>>,
    /// Linked customers' journeys in the sealed segments (`db::links`).
    journeys: Mutex<links::JourneysCache>,
    /// The latest profile values last built, and what they were built from (`db::profiles`).
    profile_cache: Mutex<Option<(profiles::ProfilesKey, Arc<profiles::Profiles>)>>,
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
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Db")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Db {
    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Why this handle refuses writes, if an earlier I/O failure poisoned it (reads still work;
    /// reopening the database recovers every acknowledged event). `None` when healthy.
    pub fn write_error(&self) -> Option<String> {
        self.inner.writer.lock().poisoned.clone()
    }

    fn check_writable(&self, writer: &Writer) -> Result<()> {
        if self.inner.read_only {
            return Err(DbError::ReadOnly.into());
        }
        if let Some(why) = &writer.poisoned {
            return Err(DbError::Poisoned(why.clone()).into());
        }
        Ok(())
    }

    fn poison(&self, writer: &mut Writer, why: String) -> Error {
        self.inner.sync.fail(why.clone());
        writer.poisoned.get_or_insert(why.clone());
        DbError::Poisoned(why).into()
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
