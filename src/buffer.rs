//! The in-memory buffer of committed events not yet sealed into a segment.
//!
//! Rows are appended in sequence order by the single writer; readers see a prefix (the rows a
//! snapshot may see) sorted by (customer, timestamp, sequence), computed once per prefix length
//! and shared by every snapshot of that length.
//!
//! Uses: `model`.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::model::{Columns, PROFILE_ROW};

/// A sorted prefix's length, its events and its profile writes.
type SortedPrefix = (usize, Arc<Columns>, Arc<Columns>);

/// The mutable buffer of one generation (replaced by an empty one at each seal).
#[derive(Debug)]
pub struct Buffer {
    seq_base: u64,
    rows: RwLock<Columns>,
    sorted: Mutex<Option<SortedPrefix>>,
}

impl Buffer {
    /// An empty buffer whose first row has sequence number `seq_base`.
    pub fn new(seq_base: u64) -> Self {
        Buffer {
            seq_base,
            rows: RwLock::new(Columns::default()),
            sorted: Mutex::new(None),
        }
    }

    /// Sequence number of row 0.
    pub fn seq_base(&self) -> u64 {
        self.seq_base
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    /// Event rows among the first `len` rows held (profile writes, which share the buffer and
    /// the sequence numbers, are not events).
    pub fn events_in(&self, len: usize) -> usize {
        let rows = self.rows.read();
        let len = len.min(rows.event.len());
        rows.event[..len]
            .iter()
            .filter(|&&event| event != PROFILE_ROW)
            .count()
    }

    /// True when no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a batch (ingestion order).
    pub fn push(&self, batch: &Columns) {
        self.rows.write().extend_from(batch);
    }

    /// The first `len` rows sorted by (customer, timestamp, sequence), split into events and
    /// customer-profile writes (`model::PROFILE_ROW`), as readers see them (stage codes without
    /// `model::STAGE_MAPPED`).
    pub fn sorted_prefix(&self, len: usize) -> (Arc<Columns>, Arc<Columns>) {
        let mut cache = self.sorted.lock();
        if let Some((n, events, profiles)) = &*cache
            && *n == len
        {
            return (events.clone(), profiles.clone());
        }
        let (mut events, profiles) = self.sorted_stored(len);
        events.strip_stage_flags();
        let (events, profiles) = (Arc::new(events), Arc::new(profiles));
        *cache = Some((len, events.clone(), profiles.clone()));
        (events, profiles)
    }

    /// The events among rows `from..to` (ingestion order), sorted by customer, stages as
    /// readers see them (what [`sorted_prefix`](Self::sorted_prefix) adds between those
    /// lengths).
    pub fn events_between(&self, from: usize, to: usize) -> Columns {
        let rows = self.rows.read();
        let to = to.min(rows.len());
        let part = rows.slice(from.min(to)..to);
        let (mut events, _) = part.gather(&part.sort_order()).split_profiles();
        events.strip_stage_flags();
        events
    }

    /// [`sorted_prefix`](Self::sorted_prefix) in the stored form (stages that came from the
    /// stage map keep `model::STAGE_MAPPED`), for the seal that writes them to a segment.
    pub fn sorted_stored(&self, len: usize) -> (Columns, Columns) {
        let rows = self.rows.read();
        let len = len.min(rows.len());
        let prefix = if len == rows.len() {
            rows.gather(&rows.sort_order())
        } else {
            let p = rows.slice(0..len);
            p.gather(&p.sort_order())
        };
        prefix.split_profiles()
    }
}
