//! The live version (segments, buffer, pending erasures) and the one way to change it: a
//! `VersionEdit`, published and installed by `Db::apply`.

use super::{Db, Writer};
use crate::buffer::Buffer;
use crate::compaction::Source;
use crate::error::Result;
use crate::manifest::{Erasure, Manifest};
use crate::segment::{Footer, Segment};
use roaring::RoaringBitmap;
use std::sync::Arc;

pub(super) struct Version {
    pub(in crate::db) segments: Vec<Arc<Segment>>,
    pub(in crate::db) buffer: Arc<Buffer>,
    /// Pending erasures (as in the live manifest).
    pub(in crate::db) forgotten: Arc<Vec<Erasure>>,
    /// Per segment: the customers whose rows in it are hidden by a pending erasure.
    pub(in crate::db) masks: Vec<Option<Arc<RoaringBitmap>>>,
}

impl Version {
    pub(in crate::db) fn new(
        segments: Vec<Arc<Segment>>,
        buffer: Arc<Buffer>,
        forgotten: Arc<Vec<Erasure>>,
    ) -> Version {
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
    pub(in crate::db) fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.segments.iter().zip(&self.masks).map(|(s, m)| match m {
            Some(m) => Source::Masked(s.clone(), m.clone()),
            None => Source::Segment(s.clone()),
        })
    }
}

impl Db {
    /// Publishes manifest `m` (which names the new segment `id` of `file_len` bytes), makes it
    /// the writer's, and opens the segment for readers. Returns the segment and the number of
    /// the manifest it replaced (to be deleted). A failure poisons the handle: whether the
    /// manifest is live is then unknown until the database is reopened.
    pub(in crate::db) fn publish_segment(
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
}
