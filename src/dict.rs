//! Persisted dictionaries: customer external id → dense `u32`, event names, property names
//! (with their fixed type) and string property values.
//!
//! Ids are assigned densely in commit order. New entries travel inside the log record of the
//! batch that created them ([`DictDelta`]) and are copied to the append-only dictionary file
//! when a segment is sealed; the manifest names the file's generation and records how many of
//! its bytes are valid.
//!
//! An entry can be *vacated* (`FORGET CUSTOMER` vacates the customer's external id; the
//! compaction that carries out the erasure vacates string values no remaining row uses): its id
//! stays taken, its text is forgotten, and the same text added later gets a new id. The
//! compaction rewrites the dictionary into a new generation without the vacated texts.
//!
//! Uses: `codec`, `file`, `limits`, `model`.

use std::hash::BuildHasher;
use std::path::Path;

use crate::codec::{self, Frame, Reader};
use crate::file::{self, FileError, FileResult, IoContext, Kind};
use crate::limits;
use crate::model::PropType;

/// The dictionaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DictKind {
    /// Customer external ids.
    Customer = 0,
    /// Event names.
    Event = 1,
    /// Property names (each with a type).
    Prop = 2,
    /// String property values.
    Str = 3,
}

impl DictKind {
    fn from_code(code: u8) -> Option<DictKind> {
        match code {
            0 => Some(DictKind::Customer),
            1 => Some(DictKind::Event),
            2 => Some(DictKind::Prop),
            3 => Some(DictKind::Str),
            _ => None,
        }
    }
}

/// A string ↔ dense id map. The names are stored one after another in one string (no
/// allocation per name: an import can add hundreds of thousands of customers at once) and
/// found through a hash table of ids.
#[derive(Clone, Debug, Default)]
pub struct Interner {
    /// Every name, one after another (a vacated name's bytes are overwritten with zeros).
    text: String,
    /// `ends[id]`: where name `id` ends in `text` (it starts where `id − 1` ends).
    ends: Vec<usize>,
    /// The ids of the names that are not vacated, by the hash of the name.
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Vacated ids (their name reads as empty).
    vacant: roaring::RoaringBitmap,
}

/// Where name `id` lies in the text delimited by `ends` (`None` for an unknown id).
fn span(ends: &[usize], id: u32) -> Option<std::ops::Range<usize>> {
    let id = id as usize;
    let start = match id.checked_sub(1) {
        Some(p) => *ends.get(p)?,
        None => 0,
    };
    Some(start..*ends.get(id)?)
}

/// Name `id` of `text` delimited by `ends` (empty for an unknown id).
fn name_at<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a str {
    span(ends, id).and_then(|r| text.get(r)).unwrap_or("")
}

impl Interner {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// The id of `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<u32> {
        let h = self.hasher.hash_one(name);
        self.table
            .find(h, |&id| name_at(&self.text, &self.ends, id) == name)
            .copied()
    }
    /// The name of `id` (`None` for an unknown or vacated id).
    pub fn name(&self, id: u32) -> Option<&str> {
        if self.vacant.contains(id) || id as usize >= self.ends.len() {
            return None;
        }
        Some(name_at(&self.text, &self.ends, id))
    }
    /// Entries that are not vacated.
    pub fn live(&self) -> usize {
        self.ends.len() - self.vacant.len() as usize
    }
    /// True when `id` was vacated.
    pub fn is_vacant(&self, id: u32) -> bool {
        self.vacant.contains(id)
    }
    /// All names in id order (a vacated one as empty).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len() as u32).map(|id| self.name(id).unwrap_or(""))
    }
    /// Room for `count` more names of `bytes` bytes in all.
    fn reserve(&mut self, count: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(count);
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        self.table
            .reserve(count, |&id| hasher.hash_one(name_at(text, ends, id)));
    }
    /// Adds `name` with the next id when it is absent (one hash look-up); `None` when present.
    fn push_new(&mut self, name: &str) -> Option<u32> {
        let id = self.ends.len() as u32;
        let h = self.hasher.hash_one(name);
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        match self.table.entry(
            h,
            |&x| name_at(text, ends, x) == name,
            |&x| hasher.hash_one(name_at(text, ends, x)),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => None,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(id);
                self.text.push_str(name);
                self.ends.push(self.text.len());
                Some(id)
            }
        }
    }
    /// Takes the next id as an entry vacated before the dictionary was rewritten.
    fn push_vacant(&mut self) {
        self.vacant.insert(self.ends.len() as u32);
        self.ends.push(self.text.len());
    }
    fn vacate(&mut self, id: u32) {
        if (id as usize) < self.ends.len() && !self.vacant.contains(id) {
            let h = self.hasher.hash_one(name_at(&self.text, &self.ends, id));
            if let Ok(e) = self.table.find_entry(h, |&x| x == id) {
                e.remove();
            }
            // The text is forgotten, not only unreachable: its bytes are overwritten (same
            // length, so later names keep their places) until the dictionary is rewritten.
            if let Some(r) = span(&self.ends, id).filter(|r| r.end <= self.text.len()) {
                let zeros = "\0".repeat(r.len());
                self.text.replace_range(r, &zeros);
            }
            self.vacant.insert(id);
        }
    }
}

/// One new dictionary entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DictEntry {
    /// Which dictionary.
    pub kind: DictKind,
    /// Its id (dense: the dictionary's length when it was added).
    pub id: u32,
    /// The string.
    pub name: String,
    /// The property type (for [`DictKind::Prop`] only).
    pub ty: Option<PropType>,
    /// The entry vacates `id` (customers and string values only; `name` is empty): an existing
    /// id, or the next one (a rewritten dictionary keeps the slot of a vacated entry).
    pub vacant: bool,
}

impl DictEntry {
    /// An entry that vacates `id` of `kind`.
    pub fn vacate(kind: DictKind, id: u32) -> DictEntry {
        DictEntry {
            kind,
            id,
            name: String::new(),
            ty: None,
            vacant: true,
        }
    }
}

/// Flag on the kind byte of an entry that vacates an id.
const VACANT_FLAG: u8 = 0x80;

/// The entries a batch adds, in assignment order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DictDelta {
    /// The entries.
    pub entries: Vec<DictEntry>,
}

/// [`DictDelta::encode`] of `entries`.
fn encode_entries(entries: &[DictEntry], out: &mut Vec<u8>) {
    codec::put_varint(out, entries.len() as u64);
    for e in entries {
        if e.vacant {
            out.push(e.kind as u8 | VACANT_FLAG);
            codec::put_varint(out, u64::from(e.id));
            continue;
        }
        out.push(e.kind as u8);
        codec::put_varint(out, u64::from(e.id));
        codec::put_str(out, &e.name);
        if let Some(ty) = e.ty {
            out.push(ty.code());
        }
    }
}

impl DictDelta {
    /// Appends the encoding: count, then per entry kind u8 (| 0x80 to vacate), id, and unless
    /// vacating: name, `[type]`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_entries(&self.entries, out);
    }

    /// The counts of dictionaries at `base` once this delta is applied (each entry's id is the
    /// next one of its dictionary, or vacates an existing one).
    pub fn counts_after(&self, base: DictCounts) -> DictCounts {
        let mut c = base;
        for e in &self.entries {
            let n = match e.kind {
                DictKind::Customer => &mut c.customers,
                DictKind::Event => &mut c.events,
                DictKind::Prop => &mut c.props,
                DictKind::Str => &mut c.strings,
            };
            *n = (*n).max(e.id.saturating_add(1));
        }
        c
    }

    /// Decodes what [`DictDelta::encode`] wrote.
    pub fn decode(reader: &mut Reader<'_>) -> Result<DictDelta, codec::DecodeError> {
        let n = reader.len_prefix(reader.remaining())?;
        let mut entries = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let code = reader.u8()?;
            let vacant = code & VACANT_FLAG != 0;
            let kind = DictKind::from_code(code & !VACANT_FLAG)
                .ok_or_else(|| reader.err("unknown dictionary kind"))?;
            let id = reader.varint_u32()?;
            if vacant {
                if !matches!(kind, DictKind::Customer | DictKind::Str) {
                    return Err(reader.err("only customers and string values can be vacated"));
                }
                entries.push(DictEntry::vacate(kind, id));
                continue;
            }
            let max = match kind {
                DictKind::Customer => limits::CUSTOMER_ID_BYTES_MAX,
                DictKind::Event | DictKind::Prop => limits::NAME_BYTES_MAX,
                DictKind::Str => limits::STRING_VALUE_BYTES_MAX,
            };
            let name = reader.str(max)?.to_owned();
            let ty = if kind == DictKind::Prop {
                Some(PropType::from_code(reader.u8()?).ok_or_else(|| reader.err("unknown property type"))?)
            } else {
                None
            };
            entries.push(DictEntry {
                kind,
                id,
                name,
                ty,
                vacant: false,
            });
        }
        Ok(DictDelta { entries })
    }
}

/// Entry counts per dictionary; recorded in the manifest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DictCounts {
    /// Customers.
    pub customers: u32,
    /// Event names.
    pub events: u32,
    /// Property names.
    pub props: u32,
    /// String values.
    pub strings: u32,
}

/// All dictionaries of a database.
#[derive(Clone, Debug, Default)]
pub struct Dicts {
    /// Customer external ids.
    pub customers: Interner,
    /// Event names.
    pub events: Interner,
    /// Property names.
    pub props: Interner,
    /// Type of each property, by property id.
    pub prop_types: Vec<PropType>,
    /// String property values.
    pub strings: Interner,
}

impl Dicts {
    /// The interner of `kind`.
    pub fn of(&self, kind: DictKind) -> &Interner {
        match kind {
            DictKind::Customer => &self.customers,
            DictKind::Event => &self.events,
            DictKind::Prop => &self.props,
            DictKind::Str => &self.strings,
        }
    }

    fn of_mut(&mut self, kind: DictKind) -> &mut Interner {
        match kind {
            DictKind::Customer => &mut self.customers,
            DictKind::Event => &mut self.events,
            DictKind::Prop => &mut self.props,
            DictKind::Str => &mut self.strings,
        }
    }

    /// Current entry counts.
    pub fn counts(&self) -> DictCounts {
        DictCounts {
            customers: self.customers.len() as u32,
            events: self.events.len() as u32,
            props: self.props.len() as u32,
            strings: self.strings.len() as u32,
        }
    }

    /// Applies new entries; each id must be the next one of its dictionary.
    pub fn apply(&mut self, delta: &DictDelta) -> Result<(), String> {
        // Room for the new entries at once (an import can add hundreds of thousands of
        // customers: growing the map step by step rehashes it again and again).
        let mut adds = [(0usize, 0usize); 4];
        for e in delta.entries.iter().filter(|e| !e.vacant) {
            let a = &mut adds[e.kind as usize];
            (a.0, a.1) = (a.0 + 1, a.1.saturating_add(e.name.len()));
        }
        for (kind, (n, bytes)) in [DictKind::Customer, DictKind::Event, DictKind::Prop, DictKind::Str]
            .into_iter()
            .zip(adds)
        {
            self.of_mut(kind).reserve(n, bytes);
        }
        for e in &delta.entries {
            let interner = self.of_mut(e.kind);
            if e.vacant {
                if !matches!(e.kind, DictKind::Customer | DictKind::Str) {
                    return Err(format!("{:?} entries cannot be vacated", e.kind));
                }
                if e.id as usize == interner.len() {
                    // The slot of an entry vacated before the dictionary was rewritten.
                    if interner.len() as u64 >= limits::DICT_ENTRIES_MAX {
                        return Err(format!("{:?} dictionary is full", e.kind));
                    }
                    interner.push_vacant();
                } else if e.id as usize > interner.len() || interner.vacant.contains(e.id) {
                    return Err(format!("{:?} id {} cannot be vacated", e.kind, e.id));
                } else {
                    interner.vacate(e.id);
                }
                continue;
            }
            if e.id as usize != interner.len() {
                return Err(format!(
                    "{:?} entry has id {} but the next id is {}",
                    e.kind,
                    e.id,
                    interner.len()
                ));
            }
            if interner.len() as u64 >= limits::DICT_ENTRIES_MAX {
                return Err(format!("{:?} dictionary is full", e.kind));
            }
            if interner.push_new(&e.name).is_none() {
                return Err(format!("{:?} entry {:?} is already present", e.kind, e.name));
            }
            if e.kind == DictKind::Prop {
                let ty = e.ty.ok_or("property entry without a type")?;
                self.prop_types.push(ty);
            }
        }
        Ok(())
    }

    /// The entries added after `since` (in id order per dictionary).
    pub fn entries_since(&self, since: DictCounts) -> DictDelta {
        self.entries_between(since, self.counts())
    }

    /// The entries with ids in `[from, to)` per dictionary (vacated ones as vacating entries).
    pub fn entries_between(&self, from: DictCounts, to: DictCounts) -> DictDelta {
        let mut entries = Vec::new();
        let kinds = [
            (DictKind::Customer, from.customers, to.customers),
            (DictKind::Event, from.events, to.events),
            (DictKind::Prop, from.props, to.props),
            (DictKind::Str, from.strings, to.strings),
        ];
        for (kind, lo, hi) in kinds {
            let interner = self.of(kind);
            for id in lo as usize..(hi as usize).min(interner.len()) {
                if interner.vacant.contains(id as u32) {
                    entries.push(DictEntry::vacate(kind, id as u32));
                    continue;
                }
                entries.push(DictEntry {
                    kind,
                    id: id as u32,
                    name: name_at(&interner.text, &interner.ends, id as u32).to_owned(),
                    ty: (kind == DictKind::Prop).then(|| self.prop_types[id]),
                    vacant: false,
                });
            }
        }
        DictDelta { entries }
    }
}

/// File name of the first dictionary generation.
pub const DICT_FILE: &str = "dict.log";

/// Path of dictionary generation `generation`: `dict.log` for 0 (every database starts there),
/// `dict-<16 hex digits>.log` for a rewritten one.
pub fn dict_path(dir: &Path, generation: u64) -> std::path::PathBuf {
    if generation == 0 {
        dir.join(DICT_FILE)
    } else {
        dir.join(file::numbered("dict-", generation, ".log"))
    }
}

/// Removes every dictionary file but generation `keep` (leftovers of a rewrite that crashed
/// before or after its manifest was published).
pub fn remove_other_generations(dir: &Path, keep: u64) -> FileResult<()> {
    if keep != 0 {
        file::remove_if_exists(&dict_path(dir, 0))?;
    }
    for n in file::list_numbered(dir, "dict-", ".log")? {
        if n != keep {
            file::remove_if_exists(&dict_path(dir, n))?;
        }
    }
    Ok(())
}

/// Appends `entries` as frames of about 64 MiB at most (a bulk import or a rewrite can hold
/// millions of entries), well under the [`limits::DICT_FRAME_BYTES_MAX`] a reader accepts.
fn put_frames(out: &mut Vec<u8>, entries: &[DictEntry]) {
    const FRAME_TARGET: usize = 64 << 20;
    let mut payload = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        // `bytes` starts at 0, so a frame holds at least one entry, however long.
        while end < entries.len() && bytes < FRAME_TARGET {
            bytes += entries[end].name.len() + 16;
            end += 1;
        }
        payload.clear();
        encode_entries(&entries[start..end], &mut payload);
        // Large payloads (an import's new customers) are stored zstd-compressed when that saves
        // an eighth: 400 k customer ids took 4.27 MB raw. A DICT_DELTA never starts with the
        // zstd magic (its second byte would be an invalid entry kind), so readers tell them apart.
        let packed = (payload.len() >= COMPRESS_FROM)
            .then(|| codec::compress(&payload, 3).ok())
            .flatten()
            .filter(|p| p.len() < payload.len() / 8 * 7);
        codec::put_frame(out, packed.as_deref().unwrap_or(&payload));
        start = end;
    }
}

/// Frame payloads from this many bytes on are compressed when it pays (smaller ones, the
/// entries of one flush, are written as they are).
const COMPRESS_FROM: usize = 4 << 10;

/// Writes generation `generation` (a new file) holding the entries of `dicts` below `upto`,
/// vacated texts left out, and fsyncs it; returns its length. The caller fsyncs the directory
/// and publishes the generation in a manifest.
pub fn rewrite(dir: &Path, generation: u64, dicts: &Dicts, upto: DictCounts, db_id: u32) -> FileResult<u64> {
    let path = dict_path(dir, generation);
    let all = dicts.entries_between(DictCounts::default(), upto);
    let mut out = file::header(Kind::Dict, db_id).to_vec();
    put_frames(&mut out, &all.entries);
    file::write_new(&path, &out)?;
    Ok(out.len() as u64)
}

/// Loads dictionary generation `generation` of database `db_id` up to `valid_len` bytes; the
/// writer truncates anything beyond (left by a seal that crashed before its manifest was
/// published).
pub fn load(
    dir: &Path,
    (generation, db_id): (u64, u32),
    valid_len: u64,
    expect: DictCounts,
    truncate: bool,
) -> FileResult<Dicts> {
    let path = dict_path(dir, generation);
    let bytes = file::read_all(&path)?;
    file::check_header(&path, Kind::Dict, &bytes)?;
    file::check_db_id(&path, &bytes, db_id)?;
    let valid = usize::try_from(valid_len).unwrap_or(usize::MAX);
    if valid > bytes.len() {
        return Err(FileError::corrupt(
            &path,
            bytes.len() as u64,
            format!(
                "file is {} bytes but the manifest says {valid_len} are valid",
                bytes.len()
            ),
        ));
    }
    let mut dicts = Dicts::default();
    let mut unpacked = Vec::new();
    let mut at = file::HEADER_LEN;
    while at < valid {
        match codec::read_frame(&bytes[..valid], at, limits::DICT_FRAME_BYTES_MAX) {
            Frame::Good { payload, next } => {
                let base = (at + codec::FRAME_HEADER) as u64;
                let payload = if payload.starts_with(&codec::ZSTD_MAGIC) {
                    codec::decompress_frame(payload, limits::DICT_FRAME_BYTES_MAX, &mut unpacked)
                        .map_err(|e| FileError::decode(&path, base, e))?;
                    &unpacked[..]
                } else {
                    payload
                };
                let mut r = Reader::new(payload);
                let delta = DictDelta::decode(&mut r).map_err(|e| FileError::decode(&path, base, e))?;
                r.finish().map_err(|e| FileError::decode(&path, base, e))?;
                dicts
                    .apply(&delta)
                    .map_err(|why| FileError::corrupt(&path, at as u64, why))?;
                at = next;
            }
            Frame::Truncated | Frame::Bad { .. } => {
                return Err(FileError::corrupt(&path, at as u64, "bad dictionary frame"));
            }
        }
    }
    if dicts.counts() != expect {
        return Err(FileError::corrupt(
            &path,
            valid_len,
            format!(
                "entry counts {:?} disagree with the manifest {:?}",
                dicts.counts(),
                expect
            ),
        ));
    }
    if truncate && bytes.len() > valid {
        let f = file::open_write(&path, false)?;
        file::set_len(&f, &path, valid_len)?;
        file::sync(&f, &path, true)?;
    }
    Ok(dicts)
}

/// Creates an empty `dict.log` (header only) and returns its length.
pub fn create(dir: &Path, db_id: u32) -> FileResult<u64> {
    let path = dir.join(DICT_FILE);
    file::write_new(&path, &file::header(Kind::Dict, db_id))?;
    Ok(file::HEADER_LEN as u64)
}

/// Appends the entries of `delta` to generation `generation` as frames at `valid_len` and
/// fsyncs; returns the new valid length (to be published by the manifest).
pub fn append(dir: &Path, generation: u64, valid_len: u64, delta: &DictDelta) -> FileResult<u64> {
    if delta.entries.is_empty() {
        return Ok(valid_len);
    }
    let path = dict_path(dir, generation);
    let mut frame = Vec::new();
    put_frames(&mut frame, &delta.entries);
    let mut f = file::open_write(&path, false)?;
    // Anything past the valid length is garbage from a crashed seal: overwrite it.
    file::set_len(&f, &path, valid_len)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(valid_len)).at(&path)?;
    file::write(&f, &path, valid_len, &frame)?;
    file::sync(&f, &path, true)?;
    Ok(valid_len + frame.len() as u64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn customers(from: u32, count: u32) -> DictDelta {
        DictDelta {
            entries: (from..from + count)
                .map(|id| DictEntry {
                    kind: DictKind::Customer,
                    id,
                    name: format!("{}", id.wrapping_mul(2_654_435_761) % 1_000_000),
                    ty: None,
                    vacant: false,
                })
                .collect(),
        }
    }

    /// An import's many new entries are stored as a compressed frame and a flush's few as they
    /// are; both load back; damage inside a compressed frame is an error naming the file.
    #[test]
    fn large_frames_are_compressed_and_load_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let len = create(dir.path(), 0)?;
        let (big, small) = (customers(0, 20_000), customers(20_000, 3));
        let mid = append(dir.path(), 0, len, &big)?;
        let end = append(dir.path(), 0, mid, &small)?;
        let mut raw = Vec::new();
        encode_entries(&big.entries, &mut raw);
        let bytes = std::fs::read(dict_path(dir.path(), 0))?;
        let first = &bytes[file::HEADER_LEN + codec::FRAME_HEADER..];
        assert!(
            first.starts_with(&codec::ZSTD_MAGIC),
            "a large frame is compressed"
        );
        assert!(
            mid - len < raw.len() as u64 * 3 / 4,
            "{} of {} bytes",
            mid - len,
            raw.len()
        );
        let second = &bytes[mid as usize + codec::FRAME_HEADER..];
        assert!(
            !second.starts_with(&codec::ZSTD_MAGIC),
            "a small frame is stored as it is"
        );
        let counts = DictCounts {
            customers: 20_003,
            ..DictCounts::default()
        };
        let dicts = load(dir.path(), (0, 0), end, counts, false)?;
        let mut want = Dicts::default();
        want.apply(&big)?;
        want.apply(&small)?;
        for id in [0u32, 1, 19_999, 20_000, 20_002] {
            assert_eq!(dicts.customers.name(id), want.customers.name(id), "id {id}");
        }
        assert_eq!(dicts.counts(), counts);
        // A zstd frame that passes the frame checksum but does not decompress.
        let mut payload = codec::ZSTD_MAGIC.to_vec();
        payload.extend_from_slice(&[0xff; 40]);
        let mut damaged = bytes[..file::HEADER_LEN].to_vec();
        codec::put_frame(&mut damaged, &payload);
        std::fs::write(dict_path(dir.path(), 0), &damaged)?;
        let err = load(dir.path(), (0, 0), damaged.len() as u64, counts, false)
            .err()
            .ok_or("a damaged compressed frame loaded")?;
        assert!(err.to_string().contains("dict.log"), "{err}");
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(String),
        Vacate(u32),
        AddVacant,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => "[a-c]{0,3}|é[a-z]{0,40}".prop_map(Op::Add),
            2 => (0u32..60).prop_map(Op::Vacate),
            1 => Just(Op::AddVacant),
        ]
    }

    proptest! {
        /// The interner (names in one string, ids in a hash table) against a vector of names:
        /// adding, vacating, taking a vacant slot, then looking up by name and by id.
        #[test]
        fn interner_matches_a_list_of_names(ops in proptest::collection::vec(op(), 0..200), reserve in 0usize..50) {
            let mut it = Interner::default();
            it.reserve(reserve, reserve * 3);
            prop_assert!(it.is_empty(), "a new interner holds no name, reserved or not");
            // None: vacated.
            let mut want: Vec<Option<String>> = Vec::new();
            for op in ops {
                match op {
                    Op::Add(name) => {
                        let present = want.iter().any(|w| w.as_deref() == Some(name.as_str()));
                        let got = it.push_new(&name);
                        prop_assert_eq!(got.is_none(), present);
                        if !present {
                            prop_assert_eq!(got, Some(want.len() as u32));
                            want.push(Some(name));
                        }
                    }
                    Op::Vacate(id) => {
                        it.vacate(id);
                        if let Some(w) = want.get_mut(id as usize) {
                            *w = None;
                        }
                    }
                    Op::AddVacant => {
                        it.push_vacant();
                        want.push(None);
                    }
                }
                prop_assert_eq!(it.len(), want.len());
                prop_assert_eq!(it.is_empty(), want.is_empty());
                prop_assert_eq!(it.live(), want.iter().flatten().count());
            }
            prop_assert_eq!(it.is_empty(), want.is_empty());
            for (id, w) in want.iter().enumerate() {
                prop_assert_eq!(it.name(id as u32), w.as_deref());
                prop_assert_eq!(it.is_vacant(id as u32), w.is_none());
                if w.is_none() {
                    // Forgotten, not only unreachable (FORGET CUSTOMER): the bytes are zeros.
                    let bytes = span(&it.ends, id as u32).map(|r| &it.text.as_bytes()[r]);
                    prop_assert!(bytes.is_some_and(|b| b.iter().all(|&x| x == 0)), "id {}", id);
                }
                if let Some(name) = w {
                    prop_assert_eq!(it.get(name), Some(id as u32));
                }
            }
            prop_assert_eq!(it.name(want.len() as u32), None);
            let names: Vec<&str> = it.names().collect();
            let expected: Vec<&str> = want.iter().map(|w| w.as_deref().unwrap_or("")).collect();
            prop_assert_eq!(names, expected);
            // A vacated name is free again (under a new id).
            for name in ["a", "b", "ab", "zzz"] {
                let live = want.iter().any(|w| w.as_deref() == Some(name));
                prop_assert_eq!(it.get(name).is_some(), live);
            }
        }
    }
}
