//! Identity links: an anonymous id (a cookie, a device) linked to the known customer it turned
//! out to be. Links are stored in the manifest (changed only through a `VersionEdit`) and
//! resolved when a statement runs (`exec::scan`): the statement sees one customer, the known
//! id, whose journey is the time-ordered merge of its own events and its anonymous ids'. The
//! stored events never change, so `UNLINK` restores every previous answer exactly.
//!
//! Uses: `dict`, `error`, `limits`, `model`, `segment`; rooms `snapshot`, `version`.

use super::Db;
use crate::db::snapshot::Snapshot;
use crate::db::version::VersionEdit;
use crate::dict::Dicts;
use crate::error::{DbError, Result};
use crate::model::Columns;
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The ids that never link by default: what trackers send before they know anything
/// ([`Options::never_link`](super::Options::never_link); compared without case and surrounding
/// spaces).
pub const NEVER_LINK: [&str; 5] = ["", "undefined", "null", "0", "anonymous"];

/// Most anonymous ids linked to one known id by default
/// ([`Options::links_per_customer_max`](super::Options::links_per_customer_max)).
pub const LINKS_PER_CUSTOMER_MAX: usize = 100;

/// The identity links of a snapshot, as internal customer ids.
#[derive(Debug, Default)]
pub struct Links {
    /// This set of links' number, unique in the process: what kept journeys were read under.
    id: u64,
    /// (anonymous, known), by anonymous id ascending.
    pairs: Vec<(u32, u32)>,
    /// (known, its anonymous ids ascending), by known id ascending.
    groups: Vec<(u32, Vec<u32>)>,
    /// Every id a link names: what a statement reads apart and merges.
    members: RoaringBitmap,
    /// The known ids that have links.
    known: RoaringBitmap,
}

impl Links {
    /// The links `pairs` (by anonymous id ascending, as the manifest holds them).
    pub fn new(pairs: Vec<(u32, u32)>) -> Links {
        let mut by_known: Vec<(u32, u32)> = pairs
            .iter()
            .map(|&(anonymous, known)| (known, anonymous))
            .collect();
        by_known.sort_unstable();
        let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
        for (known, anonymous) in by_known {
            match groups.last_mut() {
                Some((last, ids)) if *last == known => ids.push(anonymous),
                _ => groups.push((known, vec![anonymous])),
            }
        }
        let known: RoaringBitmap = groups.iter().map(|(known, _)| *known).collect();
        let mut members: RoaringBitmap = pairs.iter().map(|&(anonymous, _)| anonymous).collect();
        members |= &known;
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Links {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            pairs,
            groups,
            members,
            known,
        }
    }

    /// True when nothing is linked.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// (anonymous, known) by anonymous id ascending.
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.pairs
    }

    /// The known id `anonymous` is linked to.
    pub fn known_of(&self, anonymous: u32) -> Option<u32> {
        self.pairs
            .binary_search_by_key(&anonymous, |&(id, _)| id)
            .ok()
            .map(|at| self.pairs[at].1)
    }

    /// The anonymous ids linked to `known`, ascending (empty when none).
    pub fn anonymous_of(&self, known: u32) -> &[u32] {
        self.groups
            .binary_search_by_key(&known, |(id, _)| *id)
            .map_or(&[], |at| &self.groups[at].1)
    }

    /// (known id, its anonymous ids ascending), by known id ascending.
    pub fn groups(&self) -> &[(u32, Vec<u32>)] {
        &self.groups
    }

    /// Every id a link names (anonymous and known).
    pub fn members(&self) -> &RoaringBitmap {
        &self.members
    }

    /// The known ids that have links.
    pub fn known(&self) -> &RoaringBitmap {
        &self.known
    }

    /// The id that stands for `customer` in every answer: its known id when linked.
    pub fn resolve(&self, customer: u32) -> u32 {
        self.known_of(customer).unwrap_or(customer)
    }
}

/// Linked customers' merged journeys (docs/QUERY.md, "Identity links"), as a statement's scan
/// reads them; those of the sealed segments are kept per version for the columns read
/// ([`Snapshot::cached_journeys`]).
#[derive(Debug, Default)]
pub struct Journeys {
    /// The journeys, one after another, each under its known id, in time order.
    pub rows: Columns,
    /// (known id, start, end) of each journey in `rows`, by known id ascending.
    pub groups: Vec<(u32, u32, u32)>,
}

impl Journeys {
    /// The rows of `known`'s journey, when it has one.
    pub fn find(&self, known: u32) -> Option<std::ops::Range<usize>> {
        let at = self.groups.binary_search_by_key(&known, |group| group.0).ok()?;
        let (_, start, end) = self.groups[at];
        Some(start as usize..end as usize)
    }
}

/// The kept journeys: for one version of the sealed segments and one set of links, at most
/// [`JOURNEYS_KEPT`] column sets' (`db::links`).
#[derive(Default)]
pub(in crate::internals::db) struct JourneysCache {
    /// (version generation, links id).
    key: Option<(u64, u64)>,
    entries: Vec<(ColumnSet, Arc<Journeys>)>,
}

/// Why `id` may not take part in a link, if it is one of `never` (compared without case and
/// surrounding spaces).
fn never_links(id: &str, never: &[String]) -> Option<String> {
    let trimmed = id.trim();
    never
        .iter()
        .any(|n| n.trim().eq_ignore_ascii_case(trimmed))
        .then(|| {
            format!(
                "'{id}' never links (a placeholder trackers send before they know the customer; Options::never_link lists them)"
            )
        })
}

/// The links being changed by one `Db::link` call: every check is a map lookup, so a file of
/// a million links is checked in about a second.
struct LinkPlan {
    /// anonymous → known.
    by_anonymous: BTreeMap<u32, u32>,
    /// How many anonymous ids each known id has.
    per_known: HashMap<u32, usize>,
}

impl LinkPlan {
    fn new(links: &[(u32, u32)]) -> LinkPlan {
        let mut per_known: HashMap<u32, usize> = HashMap::new();
        for &(_, known) in links {
            *per_known.entry(known).or_default() += 1;
        }
        LinkPlan {
            by_anonymous: links.iter().copied().collect(),
            per_known,
        }
    }

    /// Adds the link, or says why not; false when it was already in force.
    fn add(
        &mut self,
        anonymous: &str,
        known: &str,
        dicts: &Dicts,
        opts: &super::Options,
    ) -> std::result::Result<bool, String> {
        if let Some(why) =
            never_links(anonymous, &opts.never_link).or_else(|| never_links(known, &opts.never_link))
        {
            return Err(why);
        }
        if anonymous == known {
            return Err("an id cannot be linked to itself".to_owned());
        }
        let name = |id: u32| dicts.customers.name(id).unwrap_or("?").to_owned();
        let (anonymous_id, known_id) = match (dicts.customers.get(anonymous), dicts.customers.get(known)) {
            (Some(anonymous_id), Some(known_id)) => (anonymous_id, known_id),
            (None, _) => {
                return Err(format!(
                    "no customer '{anonymous}' (link ids that have events or a profile)"
                ));
            }
            (_, None) => {
                return Err(format!(
                    "no customer '{known}' (link ids that have events or a profile)"
                ));
            }
        };
        match self.by_anonymous.get(&anonymous_id) {
            Some(&target) if target == known_id => return Ok(false),
            Some(&target) => {
                return Err(format!(
                    "'{anonymous}' is linked to '{}'; UNLINK it first",
                    name(target)
                ));
            }
            None => {}
        }
        if let Some(&target) = self.by_anonymous.get(&known_id) {
            let target = name(target);
            return Err(format!(
                "'{known}' is itself linked to '{target}'; link to '{target}'"
            ));
        }
        if self.per_known.get(&anonymous_id).is_some_and(|&count| count > 0) {
            return Err(format!(
                "'{anonymous}' is a known id with ids linked to it; links are one level deep"
            ));
        }
        let count = self.per_known.entry(known_id).or_default();
        if *count >= opts.links_per_customer_max {
            return Err(format!(
                "'{known}' already has {count} linked ids, the most allowed (Options::links_per_customer_max)"
            ));
        }
        *count += 1;
        self.by_anonymous.insert(anonymous_id, known_id);
        Ok(true)
    }
}

impl Db {
    /// The identity links in force, as internal customer ids.
    pub fn links(&self) -> Arc<Links> {
        self.inner.links.read().clone()
    }

    /// Links each anonymous id to its known id (`LINK 'anonymous' TO 'known'`), all or nothing:
    /// any refused pair refuses the whole call and changes nothing. A pair already in force is
    /// kept; returns how many links are new. Every commit before the call is durable first;
    /// the links are durable when this returns.
    pub fn link(&self, pairs: &[(&str, &str)]) -> Result<usize> {
        let mut writer = self.inner.writer.lock();
        self.check_writable(&writer)?;
        let dicts = self.inner.dicts.read().clone();
        let mut plan = LinkPlan::new(&writer.manifest.links);
        let mut added = 0usize;
        for &(anonymous, known) in pairs {
            let new = plan
                .add(anonymous, known, &dicts, &self.inner.opts)
                .map_err(|why| DbError::InvalidArgument(format!("LINK '{anonymous}' TO '{known}': {why}")))?;
            added += usize::from(new);
        }
        if added == 0 {
            return Ok(0);
        }
        let links: Vec<(u32, u32)> = plan.by_anonymous.into_iter().collect();
        if links.len() > crate::limits::LINKS_MAX {
            return Err(DbError::InvalidArgument(format!(
                "{} links: a database holds at most {}",
                links.len(),
                crate::limits::LINKS_MAX
            ))
            .into());
        }
        self.publish_links(&mut writer, links)?;
        Ok(added)
    }

    /// Removes the link of `anonymous` (`UNLINK 'anonymous'`); false when it had none. Durable
    /// when this returns.
    pub fn unlink(&self, anonymous: &str) -> Result<bool> {
        let mut writer = self.inner.writer.lock();
        self.check_writable(&writer)?;
        let Some(id) = self.inner.dicts.read().customers.get(anonymous) else {
            return Ok(false);
        };
        let mut links = writer.manifest.links.clone();
        let Ok(at) = links.binary_search_by_key(&id, |&(anonymous, _)| anonymous) else {
            return Ok(false);
        };
        links.remove(at);
        self.publish_links(&mut writer, links)?;
        Ok(true)
    }

    /// Publishes `links` in one manifest, after making every earlier commit durable (a power
    /// cut never keeps a link and loses the events it was made for); ids the manifest's
    /// dictionary does not cover yet are published by a flush first.
    fn publish_links(&self, writer: &mut super::Writer, links: Vec<(u32, u32)>) -> Result<()> {
        let covered = writer.manifest.dict_counts.customers;
        if links
            .iter()
            .any(|&(anonymous, known)| anonymous.max(known) >= covered)
        {
            self.flush_locked(writer)?;
        } else {
            self.sync_log_locked(writer)?;
        }
        let edit = VersionEdit {
            links: Some(links),
            ..VersionEdit::default()
        };
        self.apply(writer, edit)
    }
}

/// `links` without any link naming customer `cid` (`FORGET CUSTOMER` publishes this with the
/// erasure), when one did.
pub(in crate::internals::db) fn without_customer(links: &[(u32, u32)], cid: u32) -> Option<Vec<(u32, u32)>> {
    let kept: Vec<(u32, u32)> = links
        .iter()
        .copied()
        .filter(|&(anonymous, known)| anonymous != cid && known != cid)
        .collect();
    (kept.len() != links.len()).then_some(kept)
}

impl Snapshot {
    /// The identity links as of this snapshot.
    pub fn links(&self) -> &Arc<Links> {
        &self.links
    }

    /// The linked customers' journeys in the sealed segments kept by
    /// [`cache_journeys`](Self::cache_journeys) for the version and links this snapshot sees,
    /// read with at least the columns of `set`.
    pub fn cached_journeys(&self, set: ColumnSet) -> Option<Arc<Journeys>> {
        let cache = self.db().inner.journeys.lock();
        if cache.key != Some(self.journeys_key()) {
            return None;
        }
        (cache.entries.iter())
            .find(|(have, _)| covers(*have, set))
            .map(|(_, journeys)| journeys.clone())
    }

    /// Keeps the linked customers' journeys in the sealed segments read with the columns of
    /// `set`, when they fit in [`Options::linked_cache_bytes`](super::Options::linked_cache_bytes)
    /// (`bytes`: their size).
    pub fn cache_journeys(&self, set: ColumnSet, journeys: Arc<Journeys>, bytes: usize) {
        if bytes > self.db().inner.opts.linked_cache_bytes {
            return;
        }
        let mut cache = self.db().inner.journeys.lock();
        if cache.key != Some(self.journeys_key()) {
            *cache = JourneysCache {
                key: Some(self.journeys_key()),
                entries: Vec::new(),
            };
        }
        if cache.entries.len() == JOURNEYS_KEPT {
            cache.entries.remove(0);
        }
        cache.entries.push((set, journeys));
    }

    /// What kept journeys depend on: the sealed segments (with their erasures) and the links.
    fn journeys_key(&self) -> (u64, u64) {
        (self.cache_key.version, self.links.id)
    }
}

/// How many column sets' journeys a snapshot keeps.
const JOURNEYS_KEPT: usize = 2;

/// True when columns read with `have` hold every column `want` reads.
fn covers(have: ColumnSet, want: ColumnSet) -> bool {
    (have.ts || !want.ts)
        && (have.event || !want.event)
        && (have.stage || !want.stage)
        && (!want.props || (have.props && have.prop_mask & want.prop_mask == want.prop_mask))
}
