//! Creating and opening a database: recovery (manifest, dictionary, log replay), the writer
//! lock, and read-only opens that race a writer.
//!
//! Uses: `buffer`, `dict`, `error`, `file`, `ingest`, `manifest`, `model`, `segment`, `wal`; rooms `version`.

use super::{CohortCache, Db, Inner, Options, Sync, Writer};
use crate::buffer::Buffer;
use crate::db::version::Version;
use crate::dict::{self, Dicts};
use crate::error::{DbError, Result};
use crate::file::{self, FileError, IoContext, WriterLock};
use crate::ingest::StageMap;
use crate::manifest::{self, Manifest};
use crate::model::{Columns, PROFILE_ROW, PropType};
use crate::segment::{self, Segment};
use crate::wal::{self, SyncCoordinator, WalFile};
use parking_lot::{Mutex, RwLock};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Checks rows read back from a file (they passed their checksums) with the rules `commit`
/// applies: values in range and every string value id in a dictionary of `strings` entries.
pub(super) fn check_stored_rows(rows: &Columns, strings: u32) -> std::result::Result<(), String> {
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
            remove_unpublished(dir, current, &m)?;
        }
        let mut dicts = dict::load(dir, (m.dict_gen, m.db_id), m.dict_len, m.dict_counts, writable)?;
        let cache = segment::BlockCache::new(opts.block_cache_bytes);
        let key_cache = segment::KeyCache::new(opts.key_cache_bytes);
        let segments = open_segments(dir, &m, &m.segments, (&cache, &key_cache))?;
        let profiles = open_segments(dir, &m, &m.profiles, (&cache, &key_cache))?;
        let seq_base = m.next_seq;
        let buffer = Arc::new(Buffer::new(seq_base));
        let end = wal::replay(dir, (m.wal_start, m.db_id), seq_base, writable, |rec| {
            replay_record(&mut dicts, &buffer, rec)
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
        let cohorts = Arc::new(m.cohorts.clone());
        let links = Arc::new(super::links::Links::new(m.links.clone()));
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
            version: RwLock::new(Arc::new(Version::new((segments, profiles), buffer, forgotten))),
            dicts: RwLock::new(Arc::new(dicts)),
            stage_map: RwLock::new(stage_map),
            cohorts: RwLock::new((0, cohorts)),
            cohort_cache: Mutex::new(CohortCache::default()),
            links: RwLock::new(links),
            journeys: Mutex::new(Default::default()),
            profile_cache: Mutex::new(None),
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
}

/// Removes the leftovers of operations that crashed before their manifest was published:
/// other manifests, a half-written `CURRENT`, segments the manifest does not name, sealed logs,
/// other dictionary generations.
fn remove_unpublished(dir: &Path, current: u64, published: &Manifest) -> Result<()> {
    for n in manifest::list(dir)? {
        if n != current {
            file::remove_if_exists(&dir.join(manifest::manifest_name(n)))?;
        }
    }
    file::remove_if_exists(&dir.join(format!("{}.tmp", manifest::CURRENT)))?;
    for id in segment::list(dir)? {
        if !published
            .segments
            .iter()
            .chain(&published.profiles)
            .any(|s| s.id == id)
        {
            file::remove_if_exists(&segment::seg_path(dir, id))?;
        }
    }
    for n in wal::list(dir)? {
        if n < published.wal_start {
            file::remove_if_exists(&wal::wal_path(dir, n))?;
        }
    }
    dict::remove_other_generations(dir, published.dict_gen)?;
    Ok(())
}

/// Opens `entries` (the manifest's event or profile segments), each checked against its entry
/// and the database id.
fn open_segments(
    dir: &Path,
    manifest: &Manifest,
    entries: &[manifest::SegmentEntry],
    (cache, key_cache): (&Arc<segment::BlockCache>, &Arc<segment::KeyCache>),
) -> Result<Vec<Arc<Segment>>> {
    let mut segments = Vec::with_capacity(entries.len());
    for s in entries {
        let seg = Segment::open(dir, s.id, Some(s.file_len))?
            .with_cache(cache.clone())
            .with_key_cache(key_cache.clone());
        if seg.db_id != manifest.db_id {
            let why = format!(
                "segment belongs to another database (id {:08x}; this database is {:08x})",
                seg.db_id, manifest.db_id
            );
            return Err(FileError::corrupt(seg.path(), 12, why).into());
        }
        if seg.footer.rows != s.rows || seg.footer.seq_min != s.seq_min || seg.footer.seq_end != s.seq_end {
            return Err(
                FileError::corrupt(seg.path(), 0, "segment footer disagrees with the manifest").into(),
            );
        }
        segments.push(Arc::new(seg));
    }
    Ok(segments)
}

/// Applies one replayed log record: its dictionary entries, then its rows (every id they use
/// must then be in the dictionaries) into the buffer.
fn replay_record(dicts: &mut Dicts, buffer: &Buffer, rec: wal::Record) -> std::result::Result<(), String> {
    dicts.apply(&rec.delta)?;
    let c = dicts.counts();
    let bad = rec.rows.cid.iter().any(|&x| x >= c.customers)
        || (rec.rows.event.iter().zip(&rec.rows.stage))
            .any(|(&x, &stage)| x >= c.events && (x != PROFILE_ROW || stage != 0))
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
}
