//! The write path: batches, commit (validate, log, group commit, make visible).
//!
//! Uses: `error`, `ingest`, `limits`, `model`, `wal`.

use super::{Db, Sync};
use crate::error::{DbError, Result};
use crate::ingest::{self};
use crate::limits;
use crate::model::{Event, ProfileUpdate};
use crate::wal::{self};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Db {
    /// A new batch; events appended to it are committed together, all or nothing.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            db: self,
            events: Vec::new(),
            profiles: Vec::new(),
        }
    }

    /// Commits `events` as one batch: validated completely first (on any invalid event
    /// nothing is written), then logged, then made visible to readers. What returning means
    /// depends on [`Sync`]. Returns the sequence number of the first event.
    pub fn commit(&self, events: &[Event]) -> Result<u64> {
        self.commit_with_profiles(events, &[])
    }

    /// Commits `events` and customer-profile writes as one batch (see [`Db::commit`]). The
    /// profile writes take the sequence numbers after the events'.
    pub fn commit_with_profiles(&self, events: &[Event], profiles: &[ProfileUpdate]) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_writable(&w)?;
        if events.is_empty() && profiles.is_empty() {
            return Ok(w.next_seq);
        }
        let prepared = {
            let dicts = inner.dicts.read();
            let map = inner.stage_map.read();
            ingest::prepare(&dicts, &map, events, profiles)?
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
}

/// Events and customer-profile writes to commit together, all or nothing.
pub struct Batch<'a> {
    db: &'a Db,
    events: Vec<Event>,
    profiles: Vec<ProfileUpdate>,
}

impl Batch<'_> {
    /// Adds an event.
    pub fn append(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Sets properties of a customer's profile (`customer.NAME` in queries) from
    /// `update.ts_us` on; durable and atomic with the batch's events.
    pub fn set_profile(&mut self, update: ProfileUpdate) -> &mut Self {
        self.profiles.push(update);
        self
    }

    /// Events and profile writes in the batch.
    pub fn len(&self) -> usize {
        self.events.len() + self.profiles.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.profiles.is_empty()
    }

    /// Commits the batch (see [`Db::commit`]).
    pub fn commit(self) -> Result<u64> {
        self.db.commit_with_profiles(&self.events, &self.profiles)
    }
}
