//! Reading event files — CSV and NDJSON, plain or gzip/zstd-compressed — into staged columns.
//!
//! A file is read completely into a [`Staged`] set of columns (strings interned, so a 10 M-row
//! file costs about 30 bytes a row) before anything is handed to the database: a bad row stops
//! the import with its file, line, column and reason, and nothing of that file has been
//! committed. With [`ImportOptions::skip_bad`] up to that many bad rows are skipped and reported.
//!
//! Columns: the customer id, the timestamp and the event name are required; the stage is
//! optional; every other column is a typed property. Exact rules (names looked for, timestamp
//! forms, type inference, nulls) are in docs/SHELL.md ("Importing").

pub mod csv;
pub mod ndjson;
#[cfg(feature = "parquet")]
pub mod parquet;

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dict::{DictKind, Dicts};
use crate::ingest::{IngestError, Pending, Prepared, StageMap, check_name_text, table_hash};
use crate::limits;
use crate::model::{Columns, PropColumn, PropType, Stage, TimestampUs};

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row (RFC 4180).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (needs the `parquet` cargo feature, on by default).
    Parquet,
}

impl FileFormat {
    /// The format a file name implies: `.csv`, `.ndjson`/`.jsonl`/`.json`, each optionally
    /// followed by `.gz` or `.zst`.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = [".gz", ".zst", ".zstd"]
            .iter()
            .find_map(|c| name.strip_suffix(c))
            .unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(FileFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        })
    }
}

/// The unit of integer timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TsUnit {
    /// Seconds since the Unix epoch.
    S,
    /// Milliseconds since the Unix epoch (the default).
    #[default]
    Ms,
    /// Microseconds since the Unix epoch.
    Us,
}

impl TsUnit {
    fn micros(self) -> i64 {
        match self {
            TsUnit::S => 1_000_000,
            TsUnit::Ms => 1_000,
            TsUnit::Us => 1,
        }
    }
}

/// Rows per part when [`crate::Db::import_file`] streams a Parquet file (unless
/// [`ImportOptions::part_rows`] says otherwise): two segment blocks.
pub const PART_ROWS: usize = 2 * limits::BLOCK_ROWS;

/// How to read a file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The format; `None` means from the file name.
    pub format: Option<FileFormat>,
    /// The unit of integer timestamps.
    pub ts_unit: TsUnit,
    /// Name of the customer column (default: the first of `customer`, `customer_id`, `user_id`,
    /// `distinct_id`).
    pub customer_col: Option<String>,
    /// Name of the timestamp column (default: `ts`, `timestamp`, `time`, `event_time`).
    pub ts_col: Option<String>,
    /// Name of the event column (default: `event`, `event_name`, `name`).
    pub event_col: Option<String>,
    /// Name of the stage column (default: `stage`; the column is optional).
    pub stage_col: Option<String>,
    /// Bad rows to skip (and report) before the import fails; 0 = fail on the first.
    pub skip_bad: usize,
    /// Property types fixed in advance: the database's existing properties and any overrides.
    /// Other properties get the type of their first value (see docs/SHELL.md).
    pub prop_types: HashMap<String, PropType>,
    /// Rows per part when [`crate::Db::import_file`] streams a Parquet file into its segment
    /// (`None`: [`PART_ROWS`]); `Some(0)` reads every file whole first.
    pub part_rows: Option<usize>,
}

/// The role of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Customer,
    Ts,
    Event,
    Stage,
}

const ALIASES: [(Role, &[&str]); 4] = [
    (
        Role::Customer,
        &["customer", "customer_id", "user_id", "distinct_id"],
    ),
    (Role::Ts, &["ts", "timestamp", "time", "event_time"]),
    (Role::Event, &["event", "event_name", "name"]),
    (Role::Stage, &["stage"]),
];

impl ImportOptions {
    /// The names that may hold `role`, in order of preference.
    pub(crate) fn names(&self, role: Role) -> Vec<&str> {
        let explicit = match role {
            Role::Customer => &self.customer_col,
            Role::Ts => &self.ts_col,
            Role::Event => &self.event_col,
            Role::Stage => &self.stage_col,
        };
        match explicit {
            Some(name) => vec![name.as_str()],
            None => ALIASES
                .iter()
                .find(|(r, _)| *r == role)
                .map_or_else(Vec::new, |(_, names)| names.to_vec()),
        }
    }
}

/// Where the customer, timestamp, event and (optional) stage columns are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) customer: usize,
    pub(crate) ts: usize,
    pub(crate) event: usize,
    pub(crate) stage: Option<usize>,
}

impl Layout {
    /// Finds the columns among `names` (in order); the error names what is missing and where it
    /// was looked for.
    pub(crate) fn locate<S: AsRef<str>>(names: &[S], opts: &ImportOptions) -> Result<Layout, String> {
        let find = |role: Role| {
            let wanted = opts.names(role);
            wanted
                .iter()
                .find_map(|w| names.iter().position(|n| n.as_ref() == *w))
                .ok_or(wanted)
        };
        let required = |role: Role, what: &str, flag: &str| {
            find(role).map_err(|wanted| {
                let list: Vec<String> = wanted.iter().map(|w| format!("`{w}`")).collect();
                format!(
                    "no {what} column (looked for {}); name it with {flag}",
                    list.join(", ")
                )
            })
        };
        Ok(Layout {
            customer: required(Role::Customer, "customer", "--customer-col")?,
            ts: required(Role::Ts, "timestamp", "--ts-col")?,
            event: required(Role::Event, "event", "--event-col")?,
            // Optional, unless named explicitly.
            stage: if opts.stage_col.is_some() {
                Some(required(Role::Stage, "stage", "--stage-col")?)
            } else {
                find(Role::Stage).ok()
            },
        })
    }

    /// True for the customer, timestamp, event and stage columns (the rest are properties).
    pub(crate) fn is_core(&self, i: usize) -> bool {
        [Some(self.customer), Some(self.ts), Some(self.event), self.stage].contains(&Some(i))
    }
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Reading the file failed (missing file, truncated compressed stream, …).
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file as a whole is unusable (unknown format, missing column, bad header).
    #[error("{}: {reason}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One row is bad.
    #[error("{}:{line}:{column_no}: {}{reason}", file.display(), column_label(column))]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: u64,
        /// 1-based column (field) number.
        column_no: usize,
        /// Column (field) name.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// More bad rows than [`ImportOptions::skip_bad`] allows; the last one is given.
    #[error("more than {max} bad rows; the one that stopped the import: {last}")]
    TooManyBad {
        /// The allowance.
        max: usize,
        /// The bad row that exceeded it.
        last: Box<ImportError>,
    },
}

fn column_label(column: &str) -> String {
    if column.is_empty() {
        String::new()
    } else {
        format!("column `{column}`: ")
    }
}

/// Interned strings: each name allocated once (the table holds ids, found by the name's hash;
/// a map keyed by a second copy of each name cost an allocation and a free per name — 400,000
/// of each for the 10M comparison file's customers). Beside each id the table keeps 32 bits of
/// its name's hash, from which the table's hash is rebuilt when it grows: growing never reads
/// a name again (at 4M customers, rehashing the names cost ~0.7 s of a 100M-row import's
/// staging thread, a cache miss or two per name), and a lookup compares a name only when those
/// 32 bits match.
#[derive(Default)]
pub(crate) struct Strings {
    /// (id, high 32 bits of the name's hash).
    ids: hashbrown::HashTable<(u32, u32)>,
    hasher: foldhash::fast::RandomState,
    names: Vec<Box<str>>,
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}

impl Strings {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        use std::hash::BuildHasher;
        let Strings { ids, hasher, names } = self;
        let high = (hasher.hash_one(s) >> 32) as u32;
        let h = table_hash(high);
        let found = ids.find(h, |&(id, hi)| {
            hi == high && names.get(id as usize).is_some_and(|n| **n == *s)
        });
        if let Some(&(id, _)) = found {
            return id;
        }
        let id = names.len() as u32;
        names.push(s.into());
        ids.insert_unique(h, (id, high), |&(_, hi)| table_hash(hi));
        id
    }
}

/// One property column being staged.
#[derive(Debug)]
pub(crate) struct StagedProp {
    name: String,
    /// `None` until the first non-null value (unless fixed in advance).
    ty: Option<PropType>,
    /// The type came from [`ImportOptions::prop_types`] and may not widen.
    fixed: bool,
    /// Where the type was inferred (line), for error messages.
    inferred_at: u64,
    valid: Vec<bool>,
    vals: Vec<u64>,
    strings: Strings,
}

/// A value parsed from a file, before it is stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A value for an error message, typed and cut to a readable length.
fn describe(v: Scalar<'_>) -> String {
    match v {
        Scalar::Str(s) if s.chars().count() > 40 => {
            format!("string {:?}…", s.chars().take(40).collect::<String>())
        }
        Scalar::Str(s) => format!("string {s:?}"),
        Scalar::I64(i) => format!("integer {i}"),
        Scalar::F64(x) => format!("number {x}"),
        Scalar::Bool(b) => format!("bool {b}"),
    }
}

impl StagedProp {
    fn new(name: String, fixed: Option<PropType>) -> Self {
        StagedProp {
            name,
            ty: fixed,
            fixed: fixed.is_some(),
            inferred_at: 0,
            valid: Vec::new(),
            vals: Vec::new(),
            strings: Strings::default(),
        }
    }

    /// Checks that `v` fits this column (widening integers to floats when the type was only
    /// inferred); returns the value to store.
    fn admit<'a>(&mut self, v: Scalar<'a>, line: u64) -> Result<Scalar<'a>, String> {
        let given = match v {
            Scalar::Str(s) => {
                if s.len() > limits::STRING_VALUE_BYTES_MAX {
                    return Err(format!(
                        "string of {} bytes exceeds the limit of {}",
                        s.len(),
                        limits::STRING_VALUE_BYTES_MAX
                    ));
                }
                PropType::Str
            }
            Scalar::I64(_) => PropType::I64,
            Scalar::F64(x) => {
                if !x.is_finite() {
                    return Err(format!("{x} is not a finite number"));
                }
                PropType::F64
            }
            Scalar::Bool(_) => PropType::Bool,
        };
        let Some(ty) = self.ty else {
            self.ty = Some(given);
            self.inferred_at = line;
            return Ok(v);
        };
        match (ty, v) {
            (t, _) if t == given => Ok(v),
            (PropType::F64, Scalar::I64(i)) => Ok(Scalar::F64(i as f64)),
            (PropType::I64, Scalar::F64(_)) if !self.fixed => {
                for (slot, ok) in self.vals.iter_mut().zip(&self.valid) {
                    if *ok {
                        *slot = (*slot as i64 as f64).to_bits();
                    }
                }
                self.ty = Some(PropType::F64);
                Ok(v)
            }
            _ => Err(if self.fixed {
                format!("expected {ty} (the property's type), got {}", describe(v))
            } else {
                format!(
                    "expected {ty} (inferred from line {}), got {}; give the type with --type {}=TYPE",
                    self.inferred_at,
                    describe(v),
                    self.name
                )
            }),
        }
    }

    fn push(&mut self, row: usize, v: Option<Scalar<'_>>) {
        self.valid.resize(row, false);
        self.vals.resize(row, 0);
        let slot = match v {
            None => 0,
            Some(Scalar::Str(s)) => u64::from(self.strings.intern(s)),
            Some(Scalar::I64(i)) => i as u64,
            Some(Scalar::F64(x)) => x.to_bits(),
            Some(Scalar::Bool(b)) => u64::from(b),
        };
        self.valid.push(v.is_some());
        self.vals.push(slot);
    }
}

/// The most rows [`Staged::reserve`] makes room for (the caller bounds a file's claim by its
/// size; room not used is address space, never touched).
#[cfg(feature = "parquet")]
const RESERVE_ROWS_MAX: usize = 1 << 30;

/// The rows of one file, in file order, ready for [`crate::Db::import`] (through [`Staged::into_rows`]).
#[derive(Debug, Default)]
pub struct Staged {
    customers: Strings,
    events: Strings,
    cust: Vec<u32>,
    ts: Vec<TimestampUs>,
    event: Vec<u32>,
    stage: Vec<Option<Stage>>,
    props: Vec<StagedProp>,
    prop_index: HashMap<String, usize>,
}

/// The error for a row that sets more properties than one event may have.
pub(crate) fn too_many_props() -> String {
    format!(
        "more than {} properties set on one row (the limit per event)",
        limits::EVENT_PROPS_MAX
    )
}

/// One row being parsed: the required fields and the properties, checked but not yet stored.
#[derive(Debug, Default)]
pub(crate) struct RowValues<'a> {
    pub(crate) customer: std::borrow::Cow<'a, str>,
    pub(crate) ts: TimestampUs,
    pub(crate) event: &'a str,
    pub(crate) stage: Option<Stage>,
    /// (staged property index, value).
    pub(crate) props: Vec<(usize, Scalar<'a>)>,
}

impl Staged {
    /// Rows staged.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when no row is staged.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The staged property index of `name`, created (all nulls so far) if new.
    pub(crate) fn prop(&mut self, name: &str, opts: &ImportOptions) -> Result<usize, String> {
        if let Some(&i) = self.prop_index.get(name) {
            return Ok(i);
        }
        check_name_text("property name", name, limits::NAME_BYTES_MAX)?;
        // A file may have as many property columns as a database may have properties; each
        // row may set at most EVENT_PROPS_MAX of them (a sparse file is fine).
        if self.props.len() >= limits::PROPS_MAX {
            return Err(format!(
                "more than {} distinct properties (a database holds at most that many)",
                limits::PROPS_MAX
            ));
        }
        let i = self.props.len();
        self.props.push(StagedProp::new(
            name.to_owned(),
            opts.prop_types.get(name).copied(),
        ));
        self.prop_index.insert(name.to_owned(), i);
        Ok(i)
    }

    /// Checks a property value against its column; on success the value to store.
    pub(crate) fn admit<'a>(&mut self, prop: usize, v: Scalar<'a>, line: u64) -> Result<Scalar<'a>, String> {
        match self.props.get_mut(prop) {
            Some(p) => p.admit(v, line),
            None => Err("internal: unknown staged property".into()),
        }
    }

    /// The type a property column has so far (fixed or inferred).
    pub(crate) fn prop_type(&self, prop: usize) -> Option<PropType> {
        self.props.get(prop).and_then(|p| p.ty)
    }

    /// Stores a checked row.
    pub(crate) fn push(&mut self, row: &RowValues<'_>) {
        self.push_memo(row, None, None);
    }

    /// As [`push`](Self::push), with memos of the customer's and the event's staged ids (a
    /// memo holding `None` receives the id; one holding an id saves the look-up).
    pub(crate) fn push_memo(
        &mut self,
        row: &RowValues<'_>,
        cust: Option<&mut Option<u32>>,
        event: Option<&mut Option<u32>>,
    ) {
        let n = self.ts.len();
        let cust = match cust {
            Some(m) => *m.get_or_insert_with(|| self.customers.intern(&row.customer)),
            None => self.customers.intern(&row.customer),
        };
        self.cust.push(cust);
        self.ts.push(row.ts);
        let event = match event {
            Some(m) => *m.get_or_insert_with(|| self.events.intern(row.event)),
            None => self.events.intern(row.event),
        };
        self.event.push(event);
        self.stage.push(row.stage);
        for &(i, v) in &row.props {
            if let Some(p) = self.props.get_mut(i) {
                p.push(n, Some(v));
            }
        }
    }

    /// Room for `rows` more rows in every column, as far as memory allows (a file's row count
    /// known in advance: the columns then grow without being copied; room not used is never
    /// touched). A hint only: at most [`RESERVE_ROWS_MAX`] rows, and failing to reserve is not
    /// an error (the columns grow as they fill).
    #[cfg(feature = "parquet")]
    pub(crate) fn reserve(&mut self, rows: usize) {
        let rows = rows.min(RESERVE_ROWS_MAX);
        let _ = self.cust.try_reserve(rows);
        let _ = self.ts.try_reserve(rows);
        let _ = self.event.try_reserve(rows);
        let _ = self.stage.try_reserve(rows);
        for p in &mut self.props {
            let _ = p.valid.try_reserve(rows);
            let _ = p.vals.try_reserve(rows);
        }
    }

    /// Moves the rows staged so far, with the names they use, into a part of their own, and
    /// makes room for `room` rows in the emptied columns. The properties keep their names and
    /// types (fixed or inferred so far), so that the next part stages them the same way; the
    /// next part's staged ids start again at 0.
    #[cfg(feature = "parquet")]
    pub(crate) fn take_part(&mut self, room: usize) -> Staged {
        use std::mem::take;
        let props = self
            .props
            .iter_mut()
            .map(|p| StagedProp {
                name: p.name.clone(),
                ty: p.ty,
                fixed: p.fixed,
                inferred_at: p.inferred_at,
                valid: take(&mut p.valid),
                vals: take(&mut p.vals),
                strings: take(&mut p.strings),
            })
            .collect();
        let part = Staged {
            customers: take(&mut self.customers),
            events: take(&mut self.events),
            cust: take(&mut self.cust),
            ts: take(&mut self.ts),
            event: take(&mut self.event),
            stage: take(&mut self.stage),
            props,
            prop_index: HashMap::new(),
        };
        self.reserve(room);
        part
    }

    /// The staged rows as database rows (file order) against `dicts`, with the dictionary
    /// entries they need; the columns are moved, not copied. Each distinct customer id, event
    /// name, property and string value is looked up once, not once per row; the checks are those
    /// of [`crate::ingest::prepare`] (dictionary limits, a property's type fixed by its first
    /// write). Error indexes are rows.
    pub fn into_rows(self, dicts: &Dicts, stage_map: &StageMap) -> Result<Prepared, IngestError> {
        let mut p = Pending::new(dicts);
        let rows = self.rows_into(&mut p, stage_map, true)?;
        Ok(Prepared {
            delta: p.into_delta(),
            rows,
        })
    }

    /// The rows of one part of a file (see [`Staged::take_part`]) as database rows, with the
    /// dictionary entries they need added to `p`, which holds those of the earlier parts: a
    /// name staged again in a later part gets the id it got before.
    pub(crate) fn part_into_rows(
        self,
        p: &mut Pending<'_>,
        stage_map: &StageMap,
    ) -> Result<Columns, IngestError> {
        self.rows_into(p, stage_map, false)
    }

    /// [`into_rows`](Self::into_rows) with the entries added to `p`; `whole` says that these
    /// are all the rows (each staged customer is then new to `p`).
    fn rows_into(
        mut self,
        p: &mut Pending<'_>,
        stage_map: &StageMap,
        whole: bool,
    ) -> Result<Columns, IngestError> {
        // Only for error messages: the first row using staged id `k` of `ids`.
        let first_row = |ids: &[u32], k: usize| ids.iter().position(|&x| x as usize == k).unwrap_or(0);
        let full = |index: usize, kind: DictKind| IngestError::Invalid {
            index,
            reason: crate::ingest::full_reason(kind),
        };
        let mut cust = Vec::with_capacity(self.customers.names.len());
        // At most this many new entries (most of them customers, new to a fresh database).
        p.reserve(self.customers.names.len() + self.events.names.len());
        for (k, name) in std::mem::take(&mut self.customers.names).into_iter().enumerate() {
            // Staged names are distinct (interned): when they are all the rows, each is
            // allocated without a map of the new names (a part looks up the earlier parts').
            let known = if whole {
                p.dicts_get(DictKind::Customer, &name)
            } else {
                p.known(DictKind::Customer, &name)
            };
            if let Some(id) = known {
                cust.push(id);
                continue;
            }
            if p.full(DictKind::Customer) {
                return Err(full(first_row(&self.cust, k), DictKind::Customer));
            }
            cust.push(if whole {
                p.add_distinct(DictKind::Customer, name.into_string(), None)
            } else {
                p.add(DictKind::Customer, name.into_string(), None)
            });
        }
        let mut event = Vec::with_capacity(self.events.names.len());
        let mut default_stage = Vec::with_capacity(self.events.names.len());
        for (k, name) in self.events.names.iter().enumerate() {
            let id = match p.known(DictKind::Event, name) {
                Some(id) => id,
                None if p.full(DictKind::Event) => {
                    return Err(full(first_row(&self.event, k), DictKind::Event));
                }
                None => p.add(DictKind::Event, name.to_string(), None),
            };
            event.push(id);
            default_stage.push(stage_map.get(name.as_ref()).copied());
        }
        let n = self.len();
        let mut props = Vec::with_capacity(self.props.len());
        for prop in self.props {
            // A column that is null on every row stores nothing (as with `Db::commit`).
            let (Some(ty), Some(first)) = (prop.ty, prop.valid.iter().position(|&v| v)) else {
                continue;
            };
            if p.props_full(&prop.name) {
                return Err(IngestError::Invalid {
                    index: first,
                    reason: format!(
                        "property `{}` would exceed the limit of {} properties",
                        prop.name,
                        limits::PROPS_MAX
                    ),
                });
            }
            let id = p.id(DictKind::Prop, &prop.name, Some(ty));
            let expected = p.prop_type(id).unwrap_or(ty);
            if expected != ty {
                return Err(IngestError::PropType {
                    index: first,
                    prop: prop.name,
                    expected,
                    given: ty,
                });
            }
            let mut col = PropColumn {
                id,
                ty,
                valid: prop.valid,
                vals: prop.vals,
            };
            if ty == PropType::Str {
                let mut ids = Vec::with_capacity(prop.strings.names.len());
                for (k, value) in prop.strings.names.iter().enumerate() {
                    if let Some(id) = p.known(DictKind::Str, value) {
                        ids.push(id);
                        continue;
                    }
                    if p.full(DictKind::Str) {
                        let row = col
                            .vals
                            .iter()
                            .zip(&col.valid)
                            .position(|(&x, &v)| v && x as usize == k)
                            .unwrap_or(first);
                        return Err(full(row, DictKind::Str));
                    }
                    ids.push(p.add(DictKind::Str, value.to_string(), None));
                }
                for (x, &v) in col.vals.iter_mut().zip(&col.valid) {
                    *x = if v { u64::from(ids[*x as usize]) } else { 0 };
                }
            }
            col.pad_to(n);
            props.push(col);
        }
        props.sort_by_key(|c| c.id);
        let stage = self
            .stage
            .iter()
            .zip(&self.event)
            .map(|(s, &e)| s.or(default_stage[e as usize]).map_or(0, Stage::code))
            .collect();
        let (mut cid, mut ev) = (self.cust, self.event);
        cid.iter_mut().for_each(|c| *c = cust[*c as usize]);
        ev.iter_mut().for_each(|e| *e = event[*e as usize]);
        Ok(Columns {
            cid,
            ts: self.ts,
            event: ev,
            stage,
            props,
        })
    }
}

/// The result of reading one file.
#[derive(Debug, Default)]
pub struct Imported {
    /// The good rows.
    pub staged: Staged,
    /// The bad rows skipped (at most [`ImportOptions::skip_bad`]).
    pub skipped: Vec<ImportError>,
}

/// Counts bytes read from the underlying file (for progress reporting).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Progress of a read: bytes of the file consumed, rows read.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Opens `file`, undoing gzip or zstd compression (recognised by their magic bytes).
fn open_input(file: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead>, ImportError> {
    let io = |source| ImportError::Io {
        file: file.to_owned(),
        source,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let mut raw = BufReader::with_capacity(1 << 20, Counting { inner: f, count });
    let magic = raw.fill_buf().map_err(io)?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let z = zstd::stream::read::Decoder::with_buffer(raw).map_err(io)?;
        Box::new(BufReader::with_capacity(1 << 20, z))
    } else {
        Box::new(raw)
    })
}

/// Records a bad row: skipped while the allowance lasts, otherwise the error to stop with.
pub(crate) fn bad_row(
    opts: &ImportOptions,
    skipped: &mut Vec<ImportError>,
    e: ImportError,
) -> Result<(), ImportError> {
    if skipped.len() < opts.skip_bad {
        skipped.push(e);
        Ok(())
    } else if opts.skip_bad == 0 {
        Err(e)
    } else {
        Err(ImportError::TooManyBad {
            max: opts.skip_bad,
            last: Box::new(e),
        })
    }
}

/// Reads a whole file into staged rows. Nothing is written anywhere.
pub fn read_file(file: &Path, opts: &ImportOptions, progress: Progress<'_>) -> Result<Imported, ImportError> {
    let format = match opts.format.or_else(|| FileFormat::from_path(file)) {
        Some(f) => f,
        None => {
            return Err(ImportError::File {
                file: file.to_owned(),
                reason: "cannot tell the format from the file name (expected .csv, .ndjson, .jsonl, \
                         optionally .gz or .zst, or .parquet); give --format"
                    .into(),
            });
        }
    };
    if format == FileFormat::Parquet {
        return read_parquet(file, opts, progress);
    }
    let count = Arc::new(AtomicU64::new(0));
    let input = open_input(file, count.clone())?;
    let mut tick = |rows: u64| progress(count.load(Ordering::Relaxed), rows);
    if format == FileFormat::Csv {
        csv::read(file, input, opts, &mut tick)
    } else {
        ndjson::read(file, input, opts, &mut tick)
    }
}

/// True when [`crate::Db::import_file`] may stream `file` (see [`read_parts`]): a Parquet file,
/// in a build with Parquet support.
pub(crate) fn streams(file: &Path, opts: &ImportOptions) -> bool {
    cfg!(feature = "parquet")
        && opts.format.or_else(|| FileFormat::from_path(file)) == Some(FileFormat::Parquet)
}

/// Reads a Parquet file in parts of at least `rows` rows (cut where a decoded batch ends; the
/// last part may be smaller), handing each part to `sink` as soon as it is staged; `sink`
/// returns false to stop the read. Returns the bad rows skipped, and false when `sink`
/// stopped the read. The rows of all the parts are those [`read_file`] stages, in the same
/// order, and the same errors stop the read.
#[cfg(feature = "parquet")]
pub(crate) fn read_parts(
    file: &Path,
    opts: &ImportOptions,
    progress: Progress<'_>,
    rows: usize,
    sink: &mut dyn FnMut(Staged) -> bool,
) -> Result<(Vec<ImportError>, bool), ImportError> {
    let len = std::fs::metadata(file).map_or(0, |m| m.len());
    let mut rows_seen = 0;
    let parts = parquet::Parts { rows, sink };
    let out = parquet::read_parts(
        file,
        opts,
        &mut |rows| {
            rows_seen = rows;
            progress(0, rows);
        },
        parts,
    );
    progress(len, rows_seen);
    out
}

/// Without Parquet support nothing streams (see [`streams`]).
#[cfg(not(feature = "parquet"))]
pub(crate) fn read_parts(
    file: &Path,
    _opts: &ImportOptions,
    _progress: Progress<'_>,
    _rows: usize,
    _sink: &mut dyn FnMut(Staged) -> bool,
) -> Result<(Vec<ImportError>, bool), ImportError> {
    Err(ImportError::File {
        file: file.to_owned(),
        reason: "this journeydb was built without Parquet support (cargo feature `parquet`)".into(),
    })
}

#[cfg(feature = "parquet")]
fn read_parquet(file: &Path, opts: &ImportOptions, progress: Progress<'_>) -> Result<Imported, ImportError> {
    let len = std::fs::metadata(file).map_or(0, |m| m.len());
    let mut rows_seen = 0;
    let out = parquet::read(file, opts, &mut |rows| {
        rows_seen = rows;
        progress(0, rows);
    });
    progress(len, rows_seen);
    out
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(
    file: &Path,
    _opts: &ImportOptions,
    _progress: Progress<'_>,
) -> Result<Imported, ImportError> {
    Err(ImportError::File {
        file: file.to_owned(),
        reason: "this journeydb was built without Parquet support (cargo feature `parquet`)".into(),
    })
}

/// Parses a timestamp: an integer in `unit` since the Unix epoch, or ISO 8601 / RFC 3339
/// (`2026-01-05T10:00:00Z`, `2026-01-05 10:00:00.123+01:00`, `2026-01-05`). A time without an
/// offset is UTC. Digits beyond microseconds are truncated.
pub fn parse_ts(text: &str, unit: TsUnit) -> Result<TimestampUs, String> {
    parse_ts_any(text, unit).and_then(crate::model::check_ts)
}

/// [`parse_ts`] without the range check.
fn parse_ts_any(text: &str, unit: TsUnit) -> Result<TimestampUs, String> {
    let s = text.trim();
    let b = s.as_bytes();
    if !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && *c == b'-'))
    {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit.micros()))
            .ok_or_else(|| format!("timestamp {s} is out of range"));
    }
    if let Some(us) = parse_iso_fast(b) {
        return Ok(us);
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(t.as_microsecond()),
        Err(_) => match s.parse::<jiff::civil::DateTime>() {
            Ok(dt) => dt
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_microsecond())
                .map_err(|e| format!("timestamp {s:?}: {e}")),
            Err(_) => Err(format!(
                "{s:?} is not a timestamp: expected ISO 8601 (2026-01-05T10:00:00Z) or an integer \
                 ({} since the Unix epoch)",
                match unit {
                    TsUnit::S => "seconds",
                    TsUnit::Ms => "milliseconds",
                    TsUnit::Us => "microseconds",
                }
            )),
        },
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The fixed-width forms `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM[:SS[.f…]][Z|±HH[:MM]]`; `None` means
/// "not this form" (the caller falls back to the general parser).
fn parse_iso_fast(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * crate::model::DAY_US;
    if b.len() == 10 {
        return Some(us);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let mut rest = &b[16..];
    let mut ss = 0;
    if let [b':', s1, s2, tail @ ..] = rest {
        ss = digits(&[*s1, *s2])?;
        rest = tail;
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    us += ((hh * 60 + mm) * 60 + ss) * 1_000_000;
    if let [b'.' | b',', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let frac = &tail[..n.min(6)];
        us += digits(frac)? * 10i64.pow(6 - frac.len() as u32);
        rest = &tail[n..];
    }
    let offset_min = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (h, m) = match tz {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' { h * 60 + m } else { -(h * 60 + m) }
        }
        _ => return None,
    };
    Some(us - offset_min * 60_000_000)
}

/// Infers a CSV text value: integer (no leading zeros), float, `true`/`false`, else string.
pub(crate) fn infer(text: &str) -> Scalar<'_> {
    let t = text.trim();
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    let b = unsigned.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        if b.len() > 1 && b[0] == b'0' {
            // Zip codes, account numbers: leading zeros mean text.
            return Scalar::Str(text);
        }
        if let Ok(i) = t.parse::<i64>() {
            return Scalar::I64(i);
        }
    }
    let numeric_shape = !b.is_empty()
        && b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric_shape && let Ok(x) = t.parse::<f64>() {
        return Scalar::F64(x);
    }
    if t.eq_ignore_ascii_case("true") {
        return Scalar::Bool(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return Scalar::Bool(false);
    }
    Scalar::Str(text)
}

/// Parses a CSV text value as `ty` (a column whose type is already known).
pub(crate) fn parse_as(text: &str, ty: PropType) -> Result<Scalar<'_>, String> {
    let t = text.trim();
    match ty {
        PropType::Str => Ok(Scalar::Str(text)),
        PropType::I64 => match infer(t) {
            Scalar::I64(i) => Ok(Scalar::I64(i)),
            Scalar::F64(x) => Ok(Scalar::F64(x)),
            _ => t
                .parse::<i64>()
                .map(Scalar::I64)
                .map_err(|_| format!("expected an integer, got {t:?}")),
        },
        PropType::F64 => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Scalar::F64(x)),
            _ => Err(format!("expected a number, got {t:?}")),
        },
        PropType::Bool => match infer(t) {
            Scalar::Bool(v) => Ok(Scalar::Bool(v)),
            _ => Err(format!("expected true or false, got {t:?}")),
        },
    }
}

/// Parses a property type name: `string`, `int`/`i64`/`integer`, `float`/`f64`/`double`, `bool`.
pub fn parse_prop_type(text: &str) -> Option<PropType> {
    match text.to_ascii_lowercase().as_str() {
        "string" | "str" | "text" | "varchar" => Some(PropType::Str),
        "int" | "i64" | "integer" | "bigint" => Some(PropType::I64),
        "float" | "f64" | "double" | "number" => Some(PropType::F64),
        "bool" | "boolean" => Some(PropType::Bool),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Interning 400,000 distinct names: among them, some pairs share the 32 hash bits the
    /// table keeps (~18 expected), so a lookup that trusted those bits without comparing the
    /// names would give two names one id. Every name keeps its first id through the table's
    /// growth, a second pass finds each again, and the ids are dense in first-seen order.
    #[test]
    fn interned_ids_survive_growth_and_shared_hash_bits() {
        let mut s = Strings::default();
        let name = |i: u32| format!("customer-{i:x}");
        let n = 400_000u32;
        for i in 0..n {
            assert_eq!(s.intern(&name(i)), i, "first intern of {}", name(i));
        }
        for i in (0..n).rev() {
            assert_eq!(s.intern(&name(i)), i, "second intern of {}", name(i));
        }
        assert_eq!(s.names.len(), n as usize);
        assert!(s.names.iter().enumerate().all(|(i, x)| **x == name(i as u32)));
    }

    proptest! {
        /// Against a map: the same ids, in first-seen order, for names with many repeats.
        #[test]
        fn interning_matches_a_map(names in proptest::collection::vec("[a-c]{0,3}", 0..300)) {
            let mut s = Strings::default();
            let mut oracle: HashMap<String, u32> = HashMap::new();
            for x in &names {
                let next = oracle.len() as u32;
                let want = *oracle.entry(x.clone()).or_insert(next);
                prop_assert_eq!(s.intern(x), want);
            }
            prop_assert_eq!(s.names.len(), oracle.len());
        }
    }

    #[test]
    fn fast_iso_forms() {
        let jan5 = 1_767_571_200_000_000; // 2026-01-05T00:00:00Z
        let h10 = 10 * 3_600_000_000;
        for (text, want) in [
            ("2026-01-05", jan5),
            ("2026-01-05T10:00:00Z", jan5 + h10),
            ("2026-01-05 10:00:00", jan5 + h10),
            ("2026-01-05T10:00", jan5 + h10),
            ("2026-01-05T11:00:00+01:00", jan5 + h10),
            ("2026-01-05T11:00:00+0100", jan5 + h10),
            ("2026-01-05T05:00:00-05", jan5 + h10),
            ("2026-01-05T10:00:00.5Z", jan5 + h10 + 500_000),
            ("2026-01-05T10:00:00.123456789Z", jan5 + h10 + 123_456),
            ("1767607200000", jan5 + h10),
        ] {
            assert_eq!(parse_ts(text, TsUnit::Ms), Ok(want), "{text}");
        }
        assert_eq!(parse_ts("1767607200", TsUnit::S), Ok(jan5 + h10));
        assert_eq!(parse_ts("-1", TsUnit::Us), Ok(-1));
        for bad in [
            "2026-02-30",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "",
            "2026-01-05T25:00:00Z",
        ] {
            assert!(parse_ts(bad, TsUnit::Ms).is_err(), "{bad}");
        }
        assert!(parse_ts("99999999999999999", TsUnit::S).is_err());
        // The supported range's ends (-9999-01-02T01:59:59Z, 9999-12-30T22:00:00.999999Z),
        // and one past each.
        assert_eq!(
            parse_ts("253402207200999999", TsUnit::Us),
            Ok(crate::model::TS_MAX)
        );
        assert_eq!(parse_ts("-377705023201", TsUnit::S), Ok(crate::model::TS_MIN));
        for bad in [
            "253402207201",
            "-377705023202",
            "253402300799",
            "9223372036854775807",
        ] {
            assert!(
                parse_ts(bad, TsUnit::S).is_err_and(|e| e.contains("range")),
                "{bad}"
            );
        }
    }

    #[test]
    fn inference() {
        assert_eq!(infer("12"), Scalar::I64(12));
        assert_eq!(infer("-3"), Scalar::I64(-3));
        assert_eq!(infer("007"), Scalar::Str("007"));
        assert_eq!(infer("12.5"), Scalar::F64(12.5));
        assert_eq!(infer("1e3"), Scalar::F64(1000.0));
        assert_eq!(infer("NaN"), Scalar::Str("NaN"));
        assert_eq!(infer("inf"), Scalar::Str("inf"));
        assert_eq!(infer("TRUE"), Scalar::Bool(true));
        assert_eq!(infer("web"), Scalar::Str("web"));
    }

    proptest! {
        /// The hand-written fast path agrees with jiff on every form it accepts.
        #[test]
        fn fast_path_matches_jiff(us in -2_208_988_800_000_000i64..4_102_444_800_000_000i64,
                                  offset_min in -14i32 * 60..=14 * 60,
                                  form in 0usize..4) {
            let ts = jiff::Timestamp::from_microsecond(us).unwrap();
            let off = jiff::tz::Offset::from_seconds(offset_min * 60).unwrap();
            let dt = off.to_datetime(ts);
            let (h, m) = (offset_min.abs() / 60, offset_min.abs() % 60);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let text = match form {
                0 => format!("{}Z", jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S%.6f")),
                1 => format!("{}{sign}{h:02}:{m:02}", dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")),
                2 => format!("{}{sign}{h:02}{m:02}", dt.strftime("%Y-%m-%d %H:%M:%S%.6f")),
                _ => jiff::tz::Offset::UTC.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            };
            prop_assert!(parse_iso_fast(text.as_bytes()).is_some(), "{}", text);
            prop_assert_eq!(parse_ts(&text, TsUnit::Ms), Ok(us), "{}", text);
            prop_assert_eq!(text.parse::<jiff::Timestamp>().map(|t| t.as_microsecond()).unwrap_or(us), us);
        }
    }

    /// A sparse file (issue 33): 300 property columns, each row setting three, imports; a row
    /// setting more than 256 is refused at its line and the column where the 257th value is
    /// (CSV and NDJSON alike).
    #[test]
    fn sparse_files_with_many_columns_import() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
        let mut csv = format!("customer_id,ts,event,{}\n", names.join(","));
        let mut ndjson = String::new();
        for row in 0..10usize {
            let mut fields = vec![String::new(); 300];
            let mut obj = serde_json::json!({"customer_id": "c", "ts": row, "event": "visit"});
            for k in 0..3 {
                let col = (row * 29 + k * 97) % 300;
                fields[col] = (row * 10 + k).to_string();
                obj[&names[col]] = serde_json::json!(row * 10 + k);
            }
            csv.push_str(&format!("c,{row},visit,{}\n", fields.join(",")));
            ndjson.push_str(&format!("{obj}\n"));
        }
        let opts = ImportOptions::default();
        for (name, text) in [("sparse.csv", &csv), ("sparse.ndjson", &ndjson)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let read = read_file(&path, &opts, &mut |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(read.staged.len(), 10, "{name}");
        }
        // One dense row: 300 values.
        let dense: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let path = dir.path().join("dense.csv");
        std::fs::write(&path, format!("{csv}c,99,visit,{}\n", dense.join(","))).unwrap();
        let e = read_file(&path, &opts, &mut |_, _| {}).unwrap_err().to_string();
        // Line 12 (header, ten rows); the 257th value is field 3 + 256, column 260.
        assert!(
            e.contains(":12:") && e.contains("more than 256 properties"),
            "{e}"
        );
    }
}
