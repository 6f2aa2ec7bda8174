//! Staged columns: a file's rows read and typed but not yet given to the database (strings
//! interned, property types inferred), and their preparation into rows of internal ids.
//!
//! Uses: `dict`, `ingest`, `limits`, `model`, `time`; rooms `options`.

use crate::dict::{DictKind, Dicts};
use crate::import::options::ImportOptions;
use crate::ingest::{IngestError, Pending, Prepared, StageMap, check_name_text, table_hash};
use crate::limits;
use crate::model::{Columns, PropColumn, PropType, Stage, TimestampUs};
use std::collections::HashMap;

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
    pub(in crate::internals::import) names: Vec<Box<str>>,
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_list().entries(&self.names).finish()
    }
}

impl Strings {
    pub(crate) fn intern(&mut self, text: &str) -> u32 {
        use std::hash::BuildHasher;
        let Strings { ids, hasher, names } = self;
        let high = (hasher.hash_one(text) >> 32) as u32;
        let h = table_hash(high);
        let found = ids.find(h, |&(id, hi)| {
            hi == high && names.get(id as usize).is_some_and(|n| **n == *text)
        });
        if let Some(&(id, _)) = found {
            return id;
        }
        let id = names.len() as u32;
        names.push(text.into());
        ids.insert_unique(h, (id, high), |&(_, hi)| table_hash(hi));
        id
    }
}

/// One property column being staged.
#[derive(Debug)]
pub(crate) struct StagedProp {
    pub(in crate::internals::import) name: String,
    /// `None` until the first non-null value (unless fixed in advance).
    pub(in crate::internals::import) ty: Option<PropType>,
    /// The type came from [`ImportOptions::prop_types`] and may not widen.
    fixed: bool,
    /// Where the type was inferred (line), for error messages.
    pub(in crate::internals::import) inferred_at: u64,
    pub(in crate::internals::import) valid: Vec<bool>,
    pub(in crate::internals::import) vals: Vec<u64>,
    pub(in crate::internals::import) strings: Strings,
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
pub fn describe(value: Scalar<'_>) -> String {
    match value {
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

    /// Checks that `value` fits this column (widening integers to floats when the type was only
    /// inferred); returns the value to store.
    fn admit<'a>(&mut self, value: Scalar<'a>, line: u64) -> Result<Scalar<'a>, String> {
        let given = match value {
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
            return Ok(value);
        };
        match (ty, value) {
            (t, _) if t == given => Ok(value),
            (PropType::F64, Scalar::I64(i)) => Ok(Scalar::F64(i as f64)),
            (PropType::I64, Scalar::F64(_)) if !self.fixed => {
                for (slot, ok) in self.vals.iter_mut().zip(&self.valid) {
                    if *ok {
                        *slot = (*slot as i64 as f64).to_bits();
                    }
                }
                self.ty = Some(PropType::F64);
                Ok(value)
            }
            _ => Err(if self.fixed {
                format!("expected {ty} (the property's type), got {}", describe(value))
            } else {
                format!(
                    "expected {ty} (inferred from line {}), got {}; give the type with --type {}=TYPE",
                    self.inferred_at,
                    describe(value),
                    self.name
                )
            }),
        }
    }

    fn push(&mut self, row: usize, value: Option<Scalar<'_>>) {
        self.valid.resize(row, false);
        self.vals.resize(row, 0);
        let slot = match value {
            None => 0,
            Some(Scalar::Str(s)) => u64::from(self.strings.intern(s)),
            Some(Scalar::I64(i)) => i as u64,
            Some(Scalar::F64(x)) => x.to_bits(),
            Some(Scalar::Bool(b)) => u64::from(b),
        };
        self.valid.push(value.is_some());
        self.vals.push(slot);
    }
}

/// The most rows [`Staged::reserve`] makes room for (the caller bounds a file's claim by its
/// size; room not used is address space, never touched).
pub const RESERVE_ROWS_MAX: usize = 1 << 30;

/// The rows of one file, in file order, ready for [`crate::Db::import`] (through [`Staged::into_rows`]).
#[derive(Debug, Default)]
pub struct Staged {
    pub(in crate::internals::import) customers: Strings,
    pub(in crate::internals::import) events: Strings,
    pub(in crate::internals::import) cust: Vec<u32>,
    pub(in crate::internals::import) ts: Vec<TimestampUs>,
    pub(in crate::internals::import) event: Vec<u32>,
    pub(in crate::internals::import) stage: Vec<Option<Stage>>,
    pub(in crate::internals::import) props: Vec<StagedProp>,
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

    /// Distinct customers among the staged rows.
    pub fn customers(&self) -> usize {
        self.customers.names.len()
    }

    /// The distinct event names of the staged rows, in order of first appearance.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.names.iter().map(|name| &**name)
    }

    /// The property columns and the type each was read as (`None`: every value null).
    pub fn properties(&self) -> impl Iterator<Item = (&str, Option<PropType>)> {
        self.props.iter().map(|p| (p.name.as_str(), p.ty))
    }

    /// The span of the staged timestamps, the future judged by `now`.
    pub fn ts_span(&self, now: TimestampUs) -> crate::time::TsSpan {
        crate::time::TsSpan::of(&self.ts, now)
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
    pub(crate) fn admit<'a>(
        &mut self,
        prop: usize,
        value: Scalar<'a>,
        line: u64,
    ) -> Result<Scalar<'a>, String> {
        match self.props.get_mut(prop) {
            Some(p) => p.admit(value, line),
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
        pending: &mut Pending<'_>,
        stage_map: &StageMap,
    ) -> Result<Columns, IngestError> {
        self.rows_into(pending, stage_map, false)
    }

    /// [`into_rows`](Self::into_rows) with the entries added to `p`; `whole` says that these
    /// are all the rows (each staged customer is then new to `p`).
    fn rows_into(
        mut self,
        pending: &mut Pending<'_>,
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
        pending.reserve(self.customers.names.len() + self.events.names.len());
        for (k, name) in std::mem::take(&mut self.customers.names).into_iter().enumerate() {
            // Staged names are distinct (interned): when they are all the rows, each is
            // allocated without a map of the new names (a part looks up the earlier parts').
            let known = if whole {
                pending.dicts_get(DictKind::Customer, &name)
            } else {
                pending.known_remembered(DictKind::Customer, &name)
            };
            if let Some(id) = known {
                cust.push(id);
                continue;
            }
            if pending.full(DictKind::Customer) {
                return Err(full(first_row(&self.cust, k), DictKind::Customer));
            }
            cust.push(if whole {
                pending.add_distinct(DictKind::Customer, name.into_string(), None)
            } else {
                pending.add(DictKind::Customer, name.into_string(), None)
            });
        }
        let mut event = Vec::with_capacity(self.events.names.len());
        let mut default_stage = Vec::with_capacity(self.events.names.len());
        for (k, name) in self.events.names.iter().enumerate() {
            let id = match pending.known(DictKind::Event, name) {
                Some(id) => id,
                None if pending.full(DictKind::Event) => {
                    return Err(full(first_row(&self.event, k), DictKind::Event));
                }
                None => pending.add(DictKind::Event, name.to_string(), None),
            };
            event.push(id);
            default_stage.push(stage_map.get(name.as_ref()).copied());
        }
        let n = self.len();
        let mut props = Vec::with_capacity(self.props.len());
        for prop in self.props {
            props.extend(prop.into_column(pending, n)?);
        }
        props.sort_by_key(|c| c.id);
        let stage = self
            .stage
            .iter()
            .zip(&self.event)
            .map(|(s, &e)| match s {
                Some(explicit) => Stage::stored(Some(*explicit), false),
                None => Stage::stored(default_stage[e as usize], true),
            })
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

impl StagedProp {
    /// The column as stored: its property id given (or checked) in `p`, string values
    /// interned, padded to `count` rows; `None` for a column that is null on every row (it stores
    /// nothing, as with `Db::commit`).
    fn into_column(self, pending: &mut Pending<'_>, count: usize) -> Result<Option<PropColumn>, IngestError> {
        // A column that is null on every row stores nothing (as with `Db::commit`).
        let (Some(ty), Some(first)) = (self.ty, self.valid.iter().position(|&v| v)) else {
            return Ok(None);
        };
        if pending.props_full(&self.name) {
            return Err(IngestError::Invalid {
                index: first,
                reason: format!(
                    "property `{}` would exceed the limit of {} properties",
                    self.name,
                    limits::PROPS_MAX
                ),
            });
        }
        let id = pending.id(DictKind::Prop, &self.name, Some(ty));
        let expected = pending.prop_type(id).unwrap_or(ty);
        if expected != ty {
            return Err(IngestError::PropType {
                index: first,
                prop: self.name,
                expected,
                given: ty,
            });
        }
        let mut col = PropColumn {
            id,
            ty,
            valid: self.valid,
            vals: self.vals,
        };
        if ty == PropType::Str {
            let mut ids = Vec::with_capacity(self.strings.names.len());
            for (k, value) in self.strings.names.iter().enumerate() {
                if let Some(id) = pending.known(DictKind::Str, value) {
                    ids.push(id);
                    continue;
                }
                if pending.full(DictKind::Str) {
                    let row = col
                        .vals
                        .iter()
                        .zip(&col.valid)
                        .position(|(&x, &v)| v && x as usize == k)
                        .unwrap_or(first);
                    return Err(IngestError::Invalid {
                        index: row,
                        reason: crate::ingest::full_reason(DictKind::Str),
                    });
                }
                ids.push(pending.add(DictKind::Str, value.to_string(), None));
            }
            for (x, &v) in col.vals.iter_mut().zip(&col.valid) {
                *x = if v { u64::from(ids[*x as usize]) } else { 0 };
            }
        }
        col.pad_to(count);
        Ok(Some(col))
    }
}
