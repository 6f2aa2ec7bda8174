//! Caches shared by a database's segments: decoded blocks, and the per-block customer keys
//! that lazy scans keep.
//!
//! Uses: `model`; rooms `reader`.

use crate::model::Columns;
use crate::segment::reader::BlockEvents;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Decoded blocks (all columns) kept for single-customer reads — timelines and
/// `Snapshot::customer_events` — so that looking up a recently read customer again, or a
/// customer whose block was just read, costs a lookup instead of decompressing and decoding a
/// whole block. Shared by the segments of one database and bounded in bytes; least recently
/// used blocks are dropped first. Scans never go through it (they would only evict).
#[derive(Debug)]
pub struct BlockCache {
    budget: usize,
    state: parking_lot::Mutex<CacheState>,
}

#[derive(Debug, Default)]
pub(super) struct CacheState {
    /// (segment uid, block) → (block, its bytes, last use).
    entries: std::collections::HashMap<(u64, usize), (Arc<Columns>, usize, u64)>,
    used: usize,
    tick: u64,
}

impl BlockCache {
    /// A cache holding at most `budget` bytes of decoded blocks (0 disables it).
    pub fn new(budget: usize) -> Arc<BlockCache> {
        Arc::new(BlockCache {
            budget,
            state: parking_lot::Mutex::new(CacheState::default()),
        })
    }

    /// Bytes of decoded blocks held now.
    pub fn used(&self) -> usize {
        self.state.lock().used
    }

    pub(in crate::internals::segment) fn get(&self, key: (u64, usize)) -> Option<Arc<Columns>> {
        let mut st = self.state.lock();
        st.tick += 1;
        let tick = st.tick;
        st.entries.get_mut(&key).map(|e| {
            e.2 = tick;
            e.0.clone()
        })
    }

    pub(in crate::internals::segment) fn insert(&self, key: (u64, usize), cols: Arc<Columns>) {
        let bytes = cols.len() * (17 + 9 * cols.props.len());
        if bytes > self.budget {
            return;
        }
        let mut st = self.state.lock();
        if let Some(old) = st.entries.remove(&key) {
            st.used -= old.1;
        }
        while st.used + bytes > self.budget {
            let Some((&victim, _)) = st.entries.iter().min_by_key(|(_, e)| e.2) else {
                break;
            };
            if let Some(e) = st.entries.remove(&victim) {
                st.used -= e.1;
            }
        }
        st.tick += 1;
        let tick = st.tick;
        st.entries.insert(key, (cols, bytes, tick));
        st.used += bytes;
    }

    /// Drops every block of segment `uid`.
    pub(in crate::internals::segment) fn forget_segment(&self, uid: u64) {
        let mut st = self.state.lock();
        let mut freed = 0;
        st.entries.retain(|k, e| {
            let keep = k.0 != uid;
            if !keep {
                freed += e.1;
            }
            keep
        });
        st.used -= freed;
    }
}

/// The budget of the decoded key columns that segments keep for scans (see [`BlockKeys`]):
/// shared by the segments of one database. A block is admitted while the budget has room and
/// stays as long as its segment lives — no eviction, since a scan that cycles over more blocks
/// than fit would evict every block before its next use (the blocks admitted first are served
/// from memory on every scan instead). A segment returns its bytes when it is dropped.
#[derive(Debug)]
pub struct KeyCache {
    budget: usize,
    used: AtomicUsize,
}

impl KeyCache {
    /// A budget of `budget` bytes (0 admits nothing).
    pub fn new(budget: usize) -> Arc<KeyCache> {
        Arc::new(KeyCache {
            budget,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes of key columns held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget; false (nothing taken) when they do not fit.
    pub(in crate::internals::segment) fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&v| v <= self.budget)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(in crate::internals::segment) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One block's key columns, decoded: its customer runs and event ids, checked (crc32 of the
/// stored chunks, the runs against the zone map) when they were read from the file. Kept in
/// process memory, not in the map, so that later reads need no second check.
#[derive(Debug)]
pub(super) struct BlockKeys {
    pub(in crate::internals::segment) cids: Vec<u32>,
    pub(in crate::internals::segment) ends: Vec<u32>,
    pub(in crate::internals::segment) events: KeyEvents,
}

/// The event ids of [`BlockKeys`], in the forms of [`BlockEvents`].
#[derive(Debug)]
pub(super) enum KeyEvents {
    Nibbles(Vec<u8>),
    Ids(Vec<u32>),
}

/// The bytes a block's key columns take in the key cache (what its budget counts).
pub(super) fn key_bytes(cids: &[u32], ends: &[u32], events: &BlockEvents<'_>) -> usize {
    let events = match events {
        BlockEvents::Nibbles(p) => p.len(),
        BlockEvents::Ids(v) => 4 * v.len(),
    };
    4 * (cids.len() + ends.len()) + events
}

impl BlockKeys {
    /// Heap bytes held (what the budget counts).
    pub(in crate::internals::segment) fn bytes(&self) -> usize {
        key_bytes(&self.cids, &self.ends, &self.events())
    }

    pub(in crate::internals::segment) fn events(&self) -> BlockEvents<'_> {
        match &self.events {
            KeyEvents::Nibbles(p) => BlockEvents::Nibbles(p),
            KeyEvents::Ids(v) => BlockEvents::Ids(v),
        }
    }
}
