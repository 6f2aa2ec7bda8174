//! The manifest names the live state: segments, the first log file not yet sealed, the valid
//! length of the dictionary log, and the stage map. `MANIFEST-<n>` files are immutable; the
//! tiny `CURRENT` file names the live one and is replaced atomically.
//!
//! Publish order (docs/FORMAT.md §7): write `MANIFEST-<n+1>`, fsync it, fsync the directory,
//! write `CURRENT.tmp`, fsync it, rename it over `CURRENT`, fsync the directory.
//!
//! Uses: `codec`, `dict`, `file`, `limits`, `model`.

use std::path::Path;

use crate::codec::{self, Frame, Reader};
use crate::dict::DictCounts;
use crate::file::{self, FileError, FileResult, Kind};
use crate::limits;
use crate::model::Stage;

/// Name of the pointer file.
pub const CURRENT: &str = "CURRENT";

/// A live segment as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Segment id (file `seg/<id>.seg`).
    pub id: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// Rows.
    pub rows: u64,
    /// First sequence number covered.
    pub seq_min: u64,
    /// One past the last sequence number covered.
    pub seq_end: u64,
}

/// A pending erasure: the customer's rows in every segment whose `seq_end ≤ limit` are hidden
/// from every read until compaction has rewritten those segments without them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Erasure {
    /// Internal customer id.
    pub cid: u32,
    /// Sequence number at the moment of the erasure (every earlier event of the customer is
    /// erased; later ones are new data).
    pub limit: u64,
    /// Rows hidden (for statistics).
    pub rows: u64,
}

/// A saved cohort (`CREATE COHORT`): its name, its definition as written, and — for a
/// `STATIC` cohort — its members (internal customer ids) frozen at creation.
#[derive(Clone, Debug, PartialEq)]
pub struct CohortEntry {
    /// The name (unique, case-sensitive).
    pub name: String,
    /// The customer set as written after `AS`.
    pub definition: String,
    /// The members of a static cohort (`None`: dynamic, evaluated per snapshot).
    pub members: Option<roaring::RoaringBitmap>,
}

/// The contents of one manifest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    /// This manifest's number.
    pub number: u64,
    /// Next segment id to allocate.
    pub next_segment: u64,
    /// First log file number whose records are not in a segment.
    pub wal_start: u64,
    /// First sequence number not in a segment.
    pub next_seq: u64,
    /// Valid bytes of `dict.log`.
    pub dict_len: u64,
    /// Dictionary entry counts at `dict_len`.
    pub dict_counts: DictCounts,
    /// Live segments in sequence order (their sequence ranges are disjoint and ascending).
    pub segments: Vec<SegmentEntry>,
    /// Event name → stage, applied to events written without a stage.
    pub stage_map: Vec<(String, Stage)>,
    /// Pending erasures (`FORGET CUSTOMER`), customer ids strictly increasing.
    pub forgotten: Vec<Erasure>,
    /// Generation of the dictionary file (0: `dict.log`; see `dict::dict_path`).
    pub dict_gen: u64,
    /// The database's id, in the header of every file it writes (0: created before ids
    /// existed); a file with another id is refused (docs/FORMAT.md §2).
    pub db_id: u32,
    /// Saved cohorts, by name ascending (absent in manifests written before cohorts existed).
    pub cohorts: Vec<CohortEntry>,
    /// Customer-profile segments in sequence order (absent before profiles existed).
    pub profiles: Vec<SegmentEntry>,
    /// Identity links (`LINK 'anonymous' TO 'known'`): (anonymous id, known id) as internal
    /// customer ids, by anonymous id ascending (absent before links existed).
    pub links: Vec<(u32, u32)>,
}

/// File name of manifest `number`.
pub fn manifest_name(number: u64) -> String {
    file::numbered("MANIFEST-", number, "")
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        for v in [
            self.number,
            self.next_segment,
            self.wal_start,
            self.next_seq,
            self.dict_len,
        ] {
            codec::put_u64(&mut p, v);
        }
        let c = self.dict_counts;
        for v in [c.customers, c.events, c.props, c.strings] {
            codec::put_u32(&mut p, v);
        }
        encode_segments(&mut p, &self.segments);
        codec::put_u32(&mut p, self.stage_map.len() as u32);
        for (name, stage) in &self.stage_map {
            codec::put_str(&mut p, name);
            p.push(stage.code());
        }
        codec::put_u32(&mut p, self.forgotten.len() as u32);
        for e in &self.forgotten {
            codec::put_u32(&mut p, e.cid);
            codec::put_u64(&mut p, e.limit);
            codec::put_u64(&mut p, e.rows);
        }
        codec::put_u64(&mut p, self.dict_gen);
        // The id is written when set, and always before cohorts (an explicit 0 then means a
        // database created before ids existed).
        let later = !self.links.is_empty();
        if self.db_id != 0 || !self.cohorts.is_empty() || !self.profiles.is_empty() || later {
            codec::put_u32(&mut p, self.db_id);
        }
        // Each optional section is written when it or a later one is present.
        if !self.cohorts.is_empty() || !self.profiles.is_empty() || later {
            encode_cohorts(&mut p, &self.cohorts);
        }
        if !self.profiles.is_empty() || later {
            encode_segments(&mut p, &self.profiles);
        }
        if later {
            codec::put_u32(&mut p, self.links.len() as u32);
            for &(anonymous, known) in &self.links {
                codec::put_u32(&mut p, anonymous);
                codec::put_u32(&mut p, known);
            }
        }
        let mut out = file::header(Kind::Manifest, self.db_id).to_vec();
        codec::put_frame(&mut out, &p);
        out
    }

    fn decode(payload: &[u8]) -> Result<Manifest, codec::DecodeError> {
        let mut r = Reader::new(payload);
        let mut m = Manifest {
            number: r.u64()?,
            next_segment: r.u64()?,
            wal_start: r.u64()?,
            next_seq: r.u64()?,
            dict_len: r.u64()?,
            dict_counts: DictCounts {
                customers: r.u32()?,
                events: r.u32()?,
                props: r.u32()?,
                strings: r.u32()?,
            },
            ..Manifest::default()
        };
        m.segments = decode_segments(&mut r, m.next_segment)?;
        if m.segments.last().is_some_and(|s| s.seq_end > m.next_seq) {
            return Err(r.err("segments extend past the manifest's next sequence number"));
        }
        let n = r.u32()? as usize;
        if n > r.remaining() / 2 {
            return Err(r.err("stage map count exceeds the manifest"));
        }
        for _ in 0..n {
            let name = r.str(limits::NAME_BYTES_MAX)?.to_owned();
            let stage = Stage::from_code(r.u8()?).ok_or_else(|| r.err("unknown stage code"))?;
            m.stage_map.push((name, stage));
        }
        // Pending erasures (absent in manifests written before FORGET CUSTOMER existed).
        if r.remaining() > 0 {
            let n = r.u32()? as usize;
            if n > r.remaining() / 20 {
                return Err(r.err("erasure count exceeds the manifest"));
            }
            for _ in 0..n {
                let cid = r.u32()?;
                let limit = r.u64()?;
                let rows = r.u64()?;
                if m.forgotten.last().is_some_and(|e| e.cid >= cid)
                    || limit > m.next_seq
                    || cid >= m.dict_counts.customers
                {
                    return Err(r.err(format!(
                        "erasure entry for customer id {cid} is out of order or range"
                    )));
                }
                m.forgotten.push(Erasure { cid, limit, rows });
            }
        }
        // The dictionary generation (absent before dictionaries were rewritten: 0).
        if r.remaining() > 0 {
            m.dict_gen = r.u64()?;
        }
        // The database id (absent before ids existed: 0).
        if r.remaining() > 0 {
            m.db_id = r.u32()?;
            if m.db_id == 0 && r.remaining() == 0 {
                return Err(r.err("database id 0 written explicitly"));
            }
        }
        // Saved cohorts (absent before cohorts existed).
        if r.remaining() > 0 {
            m.cohorts = decode_cohorts(&mut r, m.dict_counts.customers)?;
        }
        // Customer-profile segments (absent before profiles existed).
        if r.remaining() > 0 {
            m.profiles = decode_segments(&mut r, m.next_segment)?;
            if m.profiles.last().is_some_and(|s| s.seq_end > m.next_seq) {
                return Err(r.err("profile segments extend past the manifest's next sequence number"));
            }
            if m.profiles.iter().any(|p| m.segments.iter().any(|s| s.id == p.id)) {
                return Err(r.err("a segment is listed both for events and for profiles"));
            }
        }
        // Identity links (absent before links existed).
        if r.remaining() > 0 {
            m.links = decode_links(&mut r, m.dict_counts.customers)?;
        }
        r.finish()?;
        Ok(m)
    }

    /// Reads and validates `MANIFEST-<n>`.
    pub fn read(dir: &Path, number: u64) -> FileResult<Manifest> {
        let path = dir.join(manifest_name(number));
        let bytes = file::read_all(&path)?;
        let payload = framed_payload(&path, Kind::Manifest, &bytes, limits::MANIFEST_BYTES_MAX)?;
        let m = Manifest::decode(payload)
            .map_err(|e| FileError::decode(&path, (file::HEADER_LEN + codec::FRAME_HEADER) as u64, e))?;
        file::check_db_id(&path, &bytes, m.db_id)?;
        if m.number != number {
            return Err(FileError::corrupt(
                &path,
                file::HEADER_LEN as u64,
                "manifest number disagrees with its file name",
            ));
        }
        Ok(m)
    }

    /// Writes this manifest as `MANIFEST-<number>` and makes it current (see module docs).
    pub fn publish(&self, dir: &Path) -> FileResult<()> {
        let path = dir.join(manifest_name(self.number));
        // A file of this number can only be an orphan of a publish that crashed before CURRENT
        // moved; it was never live.
        file::remove_if_exists(&path)?;
        file::write_new(&path, &self.encode())?;
        file::sync_dir(dir)?;
        let mut cur = file::header(Kind::Current, self.db_id).to_vec();
        let mut p = Vec::new();
        codec::put_u64(&mut p, self.number);
        codec::put_frame(&mut cur, &p);
        file::atomic_write(dir, CURRENT, &cur)
    }
}

/// Cohort kinds in the manifest.
const COHORT_DYNAMIC: u8 = 0;
const COHORT_STATIC: u8 = 1;

/// A list of segment entries (events' or profiles').
fn encode_segments(out: &mut Vec<u8>, segments: &[SegmentEntry]) {
    codec::put_u32(out, segments.len() as u32);
    for s in segments {
        for v in [s.id, s.file_len, s.rows, s.seq_min, s.seq_end] {
            codec::put_u64(out, v);
        }
    }
}

/// A list of segment entries: sequence ranges disjoint and ascending, each holding at most as
/// many rows as it spans, ids below `next_segment`.
fn decode_segments(
    reader: &mut Reader<'_>,
    next_segment: u64,
) -> Result<Vec<SegmentEntry>, codec::DecodeError> {
    let n = reader.u32()? as usize;
    if n > reader.remaining() / 40 {
        return Err(reader.err("segment count exceeds the manifest"));
    }
    let mut out: Vec<SegmentEntry> = Vec::with_capacity(n);
    let mut seq = 0u64;
    for _ in 0..n {
        let s = SegmentEntry {
            id: reader.u64()?,
            file_len: reader.u64()?,
            rows: reader.u64()?,
            seq_min: reader.u64()?,
            seq_end: reader.u64()?,
        };
        if s.seq_min < seq
            || s.seq_end.checked_sub(s.seq_min).is_none_or(|span| s.rows > span)
            || s.id >= next_segment
        {
            return Err(reader.err(format!("segment {} has an inconsistent entry", s.id)));
        }
        seq = s.seq_end;
        out.push(s);
    }
    Ok(out)
}

fn encode_cohorts(out: &mut Vec<u8>, cohorts: &[CohortEntry]) {
    codec::put_u32(out, cohorts.len() as u32);
    for c in cohorts {
        codec::put_str(out, &c.name);
        codec::put_str(out, &c.definition);
        match &c.members {
            None => out.push(COHORT_DYNAMIC),
            Some(members) => {
                out.push(COHORT_STATIC);
                let mut bytes = Vec::with_capacity(members.serialized_size());
                // Writing to a Vec cannot fail.
                let _ = members.serialize_into(&mut bytes);
                codec::put_u32(out, bytes.len() as u32);
                out.extend_from_slice(&bytes);
            }
        }
    }
}

/// The cohorts section; every static member must be below `customers` (the dictionary's count).
fn decode_cohorts(reader: &mut Reader<'_>, customers: u32) -> Result<Vec<CohortEntry>, codec::DecodeError> {
    let n = reader.u32()? as usize;
    // Each entry takes at least two string lengths and a kind byte.
    if n > reader.remaining() / 9 {
        return Err(reader.err("cohort count exceeds the manifest"));
    }
    let mut out: Vec<CohortEntry> = Vec::with_capacity(n);
    for _ in 0..n {
        let name = reader.str(limits::NAME_BYTES_MAX)?.to_owned();
        if out.last().is_some_and(|c| c.name >= name) || name.is_empty() {
            return Err(reader.err(format!("cohort `{name}` is out of order or repeated")));
        }
        let definition = reader.str(limits::QUERY_BYTES_MAX)?.to_owned();
        let members = match reader.u8()? {
            COHORT_DYNAMIC => None,
            COHORT_STATIC => {
                let len = reader.u32()? as usize;
                let bytes = reader.bytes(len)?;
                let members = roaring::RoaringBitmap::deserialize_from(bytes)
                    .map_err(|e| reader.err(format!("cohort `{name}`: bad member bitmap ({e})")))?;
                if members.serialized_size() != len {
                    return Err(reader.err(format!("cohort `{name}`: member bitmap of the wrong length")));
                }
                if members.max().is_some_and(|id| id >= customers) {
                    return Err(
                        reader.err(format!("cohort `{name}` names a customer id past the dictionary"))
                    );
                }
                Some(members)
            }
            kind => return Err(reader.err(format!("cohort `{name}`: unknown kind {kind}"))),
        };
        out.push(CohortEntry {
            name,
            definition,
            members,
        });
    }
    Ok(out)
}

/// The links section: pairs by anonymous id strictly ascending, both ids below `customers`,
/// an id never linked to itself, and no known id itself linked (links are one level deep).
fn decode_links(reader: &mut Reader<'_>, customers: u32) -> Result<Vec<(u32, u32)>, codec::DecodeError> {
    let count = reader.u32()? as usize;
    if count > reader.remaining() / 8 || count > limits::LINKS_MAX {
        return Err(reader.err("link count exceeds the manifest"));
    }
    let mut links: Vec<(u32, u32)> = Vec::with_capacity(count);
    for _ in 0..count {
        let (anonymous, known) = (reader.u32()?, reader.u32()?);
        if links.last().is_some_and(|&(previous, _)| previous >= anonymous)
            || anonymous >= customers
            || known >= customers
            || anonymous == known
        {
            return Err(reader.err(format!(
                "link of customer id {anonymous} to {known} is out of order or range"
            )));
        }
        links.push((anonymous, known));
    }
    if let Some(&(_, known)) = links.iter().find(|&&(_, known)| {
        links
            .binary_search_by_key(&known, |&(anonymous, _)| anonymous)
            .is_ok()
    }) {
        return Err(reader.err(format!("customer id {known} is linked and has links")));
    }
    Ok(links)
}

fn framed_payload<'a>(path: &Path, kind: Kind, bytes: &'a [u8], max: usize) -> FileResult<&'a [u8]> {
    file::check_header(path, kind, bytes)?;
    match codec::read_frame(bytes, file::HEADER_LEN, max) {
        Frame::Good { payload, next } if next == bytes.len() => Ok(payload),
        Frame::Good { next, .. } => Err(FileError::corrupt(path, next as u64, "trailing bytes")),
        Frame::Truncated => Err(FileError::corrupt(path, file::HEADER_LEN as u64, "truncated")),
        Frame::Bad { .. } => Err(FileError::corrupt(
            path,
            file::HEADER_LEN as u64,
            "checksum mismatch",
        )),
    }
}

/// Reads `CURRENT`: the number of the live manifest.
pub fn read_current(dir: &Path) -> FileResult<u64> {
    read_current_with_id(dir).map(|(n, _)| n)
}

/// Reads `CURRENT`: the number of the live manifest and the database id in its header.
pub fn read_current_with_id(dir: &Path) -> FileResult<(u64, u32)> {
    let path = dir.join(CURRENT);
    let bytes = file::read_all(&path)?;
    let payload = framed_payload(&path, Kind::Current, &bytes, 64)?;
    let mut r = Reader::new(payload);
    let n = r
        .u64()
        .and_then(|n| r.finish().map(|()| n))
        .map_err(|e| FileError::decode(&path, (file::HEADER_LEN + codec::FRAME_HEADER) as u64, e))?;
    Ok((n, file::header_db_id(&bytes)))
}

/// Lists the manifest numbers present.
pub fn list(dir: &Path) -> FileResult<Vec<u64>> {
    file::list_numbered(dir, "MANIFEST-", "")
}
