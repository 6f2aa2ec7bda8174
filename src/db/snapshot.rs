//! Snapshots: a consistent read view of the database, and its reads.
//!
//! Uses: `dict`, `error`, `index`, `limits`, `manifest`, `merge`, `model`, `segment`; rooms `version`.

use super::Db;
use crate::db::cohorts::CacheKey;
use crate::db::version::Version;
use crate::dict::Dicts;
use crate::error::{DbError, Error, Result};
use crate::index::Bitmaps;
use crate::limits;
use crate::manifest::CohortEntry;
use crate::merge::{Merge, Source};
use crate::model::{Columns, PropType, Stage, StoredEvent, Value};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

impl Db {
    /// A consistent read view: every event committed (and, under `Sync::EveryCommit` or
    /// `Group`, made durable) before this call; nothing after.
    pub fn snapshot(&self) -> Snapshot {
        let version = self.inner.version.read().clone();
        let visible = self.inner.visible_seq.load(Ordering::SeqCst);
        let buf = &version.buffer;
        let n = visible.saturating_sub(buf.seq_base()).min(buf.len() as u64) as usize;
        let (rows, profile_rows) = buf.sorted_prefix(n);
        let (catalog, cohorts) = self.inner.cohorts.read().clone();
        let links = self.inner.links.read().clone();
        Snapshot {
            db: self.clone(),
            cache_key: CacheKey {
                version: version.generation,
                rows: n,
                catalog,
            },
            version,
            rows,
            profile_rows,
            profiles: OnceLock::new(),
            bitmaps: OnceLock::new(),
            cohorts,
            links,
        }
    }
}

/// A consistent, immutable read view of the database.
pub struct Snapshot {
    db: Db,
    pub(in crate::internals::db) version: Arc<Version>,
    rows: Arc<Columns>,
    /// The buffer's customer-profile writes this snapshot sees, sorted like `rows`.
    pub(in crate::internals::db) profile_rows: Arc<Columns>,
    /// The customers' latest profile values (built on first use; `db::profiles`).
    pub(in crate::internals::db) profiles: OnceLock<Arc<crate::db::profiles::Profiles>>,
    bitmaps: OnceLock<Arc<Bitmaps>>,
    /// The saved cohorts as of this snapshot.
    pub(in crate::internals::db) cohorts: Arc<Vec<CohortEntry>>,
    /// The identity links as of this snapshot.
    pub(in crate::internals::db) links: Arc<crate::db::links::Links>,
    /// What this snapshot's cohort members depend on (see `db::cohorts`).
    pub(in crate::internals::db) cache_key: CacheKey,
}

impl Snapshot {
    /// The database this snapshot reads.
    pub(in crate::internals::db) fn db(&self) -> &Db {
        &self.db
    }

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
    pub fn scan(&self, set: ColumnSet, mut visit: impl FnMut(&Columns)) -> Result<()> {
        let mut merge = Merge::new(self.sources(), set);
        let mut block = Columns::default();
        while merge.next_block(&mut block, limits::BLOCK_ROWS)? {
            visit(&block);
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

    /// The union of the bitmap indices of every segment and the buffer: the version's union
    /// of the segments' indices itself when no buffered row is visible, else a copy of it
    /// with the buffered rows added (kept until the next commit, for the next snapshot).
    pub fn bitmaps(&self) -> &Bitmaps {
        self.bitmaps.get_or_init(|| {
            let segments = self.version.bitmaps();
            if self.rows.is_empty() {
                return segments.clone();
            }
            if let Some(union) = self.cached_union() {
                return union;
            }
            // After a commit: the union an earlier snapshot of this version kept, with the rows
            // committed since added (only the sets they touch are copied).
            if let Some((seen, earlier)) = self.cached_union_before() {
                let mut union = Bitmaps::clone(&earlier);
                union.add(&self.version.buffer.events_between(seen, self.cache_key.rows));
                let union = Arc::new(union);
                self.cache_union(union.clone());
                return union;
            }
            // The buffered rows' own index first (their customers ascend: each id is appended),
            // then one union: adding them to the copy directly inserted every id into the
            // middle of the big sets.
            let mut buffered = Bitmaps::default();
            buffered.add(&self.rows);
            let mut union = Bitmaps::clone(segments);
            union.union_with(&buffered);
            let union = Arc::new(union);
            self.cache_union(union.clone());
            union
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
        RoaringBitmap::clone(&self.bitmaps().stages[stage.code() as usize])
    }

    /// Customers with at least one `event`.
    pub fn customers_with_event(&self, event: &str) -> RoaringBitmap {
        self.event_id(event)
            .and_then(|id| {
                self.bitmaps()
                    .events
                    .get(&id)
                    .map(|set| RoaringBitmap::clone(set))
            })
            .unwrap_or_default()
    }

    /// Customers with at least one event on UTC day `day` (days since 1970-01-01).
    pub fn customers_on_day(&self, day: i32) -> RoaringBitmap {
        self.bitmaps()
            .days
            .get(&day)
            .map(|set| RoaringBitmap::clone(set))
            .unwrap_or_default()
    }

    /// Customers with at least one event of `stage` on UTC day `day`.
    pub fn customers_in_stage_on_day(&self, stage: Stage, day: i32) -> RoaringBitmap {
        self.bitmaps()
            .stage_days
            .get(&(stage.code(), day))
            .map(|set| RoaringBitmap::clone(set))
            .unwrap_or_default()
    }
}
