//! Validates and normalises a batch of user events into columnar rows with dictionary ids.
//!
//! A batch is checked completely before anything is written: if any event is invalid (bad
//! customer id, a property whose type differs from its first write, …) the whole batch is
//! rejected and no dictionary entry, log record or row is produced.
//!
//! Uses: `dict`, `limits`, `model`.

use std::collections::HashMap;

use crate::dict::{DictDelta, DictEntry, DictKind, Dicts};
use crate::limits;
use crate::model::{Columns, Event, PROFILE_PREFIX, PROFILE_ROW, ProfileUpdate, PropType, Stage, Value};

/// Why a batch was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// An event is malformed; `index` is its position in the batch.
    #[error("event {index} of the batch: {reason}")]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A property value has a different type than the property's first write.
    #[error(
        "event {index} of the batch: property `{prop}` has type {expected} (fixed by its first write) but the value is {given}"
    )]
    PropType {
        /// Position in the batch.
        index: usize,
        /// Property name.
        prop: String,
        /// The property's type.
        expected: PropType,
        /// The given value's type.
        given: PropType,
    },
    /// A profile write is malformed; `index` is its position among the batch's profile writes.
    #[error("profile write {index} of the batch: {reason}")]
    InvalidProfile {
        /// Position among the batch's profile writes.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The batch holds more events than one log record may.
    #[error("batch of {events} events exceeds the limit of {max}; commit in smaller batches")]
    TooLarge {
        /// Events in the batch.
        events: usize,
        /// The limit.
        max: usize,
    },
}

/// Event name → stage, applied at write time to events that carry no explicit stage.
pub type StageMap = HashMap<String, Stage>;

/// A validated batch: the dictionary entries it creates and its rows (ingestion order).
#[derive(Debug, Default)]
pub struct Prepared {
    /// New dictionary entries.
    pub delta: DictDelta,
    /// The rows.
    pub rows: Columns,
}

/// The table hash of a name whose 64-bit hash has `high` as its top 32 bits: those bits twice,
/// so that both hashbrown's bucket (low bits) and its tag (top 7 bits) come from what is kept,
/// and growing a table of names rebuilds it from the kept bits without reading a name.
pub(crate) fn table_hash(high: u32) -> u64 {
    u64::from(high) << 32 | u64::from(high)
}

/// A customer id remembered by [`Pending`] under its decimal name's integer (kept as two
/// halves: 12 bytes an entry, not 16).
#[derive(Clone, Copy)]
struct DecimalId {
    low: u32,
    high: u32,
    id: u32,
}

fn split_u64(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

/// The table hash of a decimal name's integer (a multiplicative hash: the integers are
/// distinct, often consecutive; the top bits feed hashbrown's tag, the low its bucket).
fn decimal_hash(value: u64) -> u64 {
    let mixed = (value ^ (value >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^ (mixed >> 32)
}

/// The integer a customer name writes in canonical decimal (digits only, no leading zero, at
/// most 19 digits): two names map to the same integer only when they are the same name.
fn decimal_customer(kind: DictKind, name: &str) -> Option<u64> {
    if kind != DictKind::Customer {
        return None;
    }
    decimal_name(name)
}

/// The integer `name` writes in canonical decimal (see [`decimal_customer`]).
fn decimal_name(name: &str) -> Option<u64> {
    let bytes = name.as_bytes();
    let canonical = match bytes {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => bytes.len() <= 19 && bytes.iter().all(u8::is_ascii_digit),
    };
    canonical.then(|| {
        bytes
            .iter()
            .fold(0u64, |n, &digit| n * 10 + u64::from(digit - b'0'))
    })
}

/// New dictionary entries being allocated for one batch (ids continue the dictionaries).
pub(crate) struct Pending<'d> {
    dicts: &'d Dicts,
    delta: DictDelta,
    /// Per dictionary kind, this batch's new names: each as (index in `delta.entries`, high 32
    /// bits of the name's hash), found by that hash (the name itself is only in the entry: an
    /// import of 4M new customers keeps one copy of each name, not two).
    new: [hashbrown::HashTable<(u32, u32)>; 4],
    hasher: foldhash::fast::RandomState,
    /// Customers whose name is a decimal integer (see [`decimal_name`]), by that integer: the
    /// new ones, and the known ones found so far. A log in time order meets most of its
    /// customers again in every part of an import; found here, a name costs one probe of an
    /// entry that holds its key, instead of a probe, an entry and the name's bytes (three
    /// cache misses: half of a 10M time-ordered import's writer thread).
    decimal: hashbrown::HashTable<DecimalId>,
    /// New entries per dictionary kind.
    added: [u32; 4],
    new_prop_types: Vec<PropType>,
}

impl<'d> Pending<'d> {
    /// No new entries yet.
    pub(crate) fn new(dicts: &'d Dicts) -> Self {
        Pending {
            dicts,
            delta: DictDelta::default(),
            new: Default::default(),
            hasher: Default::default(),
            decimal: hashbrown::HashTable::new(),
            added: [0; 4],
            new_prop_types: Vec::new(),
        }
    }

    /// The entries allocated.
    pub(crate) fn into_delta(self) -> DictDelta {
        self.delta
    }

    /// Room for `count` more new entries (an import of millions of new customers otherwise grows
    /// the entry list by doubling, copying it each time).
    pub(crate) fn reserve(&mut self, count: usize) {
        self.delta.entries.reserve(count);
    }

    /// The id of `name` in `kind`'s dictionary, allocated (with type `ty`, for properties) if new.
    pub(crate) fn id(&mut self, kind: DictKind, name: &str, ty: Option<PropType>) -> u32 {
        match self.known(kind, name) {
            Some(id) => id,
            None => self.add(kind, name.to_owned(), ty),
        }
    }

    /// The id of `name` in `kind`'s dictionary or among this batch's new entries, if any.
    pub(crate) fn known(&self, kind: DictKind, name: &str) -> Option<u32> {
        if let Some(value) = decimal_customer(kind, name) {
            // A new decimal name is only in `decimal`; a known one is in the dictionary.
            return self.decimal_id(value).or_else(|| self.dicts.of(kind).get(name));
        }
        self.dicts.of(kind).get(name).or_else(|| self.new_id(kind, name))
    }

    /// As [`known`](Self::known), remembering a decimal customer name found in the dictionary
    /// so that the next look-up of it is one probe.
    pub(crate) fn known_remembered(&mut self, kind: DictKind, name: &str) -> Option<u32> {
        let Some(value) = decimal_customer(kind, name) else {
            return self.known(kind, name);
        };
        if let Some(id) = self.decimal_id(value) {
            return Some(id);
        }
        let id = self.dicts.of(kind).get(name)?;
        self.remember_decimal(value, id);
        Some(id)
    }

    /// The id of the decimal customer name `value` among those remembered.
    fn decimal_id(&self, value: u64) -> Option<u32> {
        let (low, high) = split_u64(value);
        self.decimal
            .find(decimal_hash(value), |e| e.low == low && e.high == high)
            .map(|e| e.id)
    }

    fn remember_decimal(&mut self, value: u64, id: u32) {
        let (low, high) = split_u64(value);
        let entry = DecimalId { low, high, id };
        self.decimal.insert_unique(decimal_hash(value), entry, |e| {
            decimal_hash(u64::from(e.high) << 32 | u64::from(e.low))
        });
    }

    /// The id of `name` among this batch's new entries of `kind`, if any.
    fn new_id(&self, kind: DictKind, name: &str) -> Option<u32> {
        let high = self.hash_high(name);
        let entries = &self.delta.entries;
        self.new[kind as usize]
            .find(table_hash(high), |&(i, h)| {
                h == high && entries.get(i as usize).is_some_and(|e| e.name == name)
            })
            .and_then(|&(i, _)| entries.get(i as usize))
            .map(|e| e.id)
    }

    fn hash_high(&self, name: &str) -> u32 {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(name) >> 32) as u32
    }

    /// Allocates `name` (which [`known`](Self::known) does not know) in `kind`'s dictionary, with
    /// type `ty` for a property.
    pub(crate) fn add(&mut self, kind: DictKind, name: String, ty: Option<PropType>) -> u32 {
        if let Some(value) = decimal_customer(kind, &name) {
            let id = self.add_distinct(kind, name, ty);
            self.remember_decimal(value, id);
            return id;
        }
        let high = self.hash_high(&name);
        let index = self.delta.entries.len() as u32;
        self.new[kind as usize].insert_unique(table_hash(high), (index, high), |&(_, h)| table_hash(h));
        self.add_distinct(kind, name, ty)
    }

    /// The id of `name` in `kind`'s dictionary (not among this batch's new entries).
    pub(crate) fn dicts_get(&self, kind: DictKind, name: &str) -> Option<u32> {
        self.dicts.of(kind).get(name)
    }

    /// As [`add`](Self::add), when the caller asks for each name once (names already distinct)
    /// and [`dicts_get`](Self::dicts_get) does not know it: not entered among this batch's new
    /// names (no look-up finds it there). Asking again for a name allocated this way allocates
    /// it twice.
    pub(crate) fn add_distinct(&mut self, kind: DictKind, name: String, ty: Option<PropType>) -> u32 {
        let id = self.dicts.of(kind).len() as u32 + self.added[kind as usize];
        self.added[kind as usize] += 1;
        if let Some(ty) = ty {
            self.new_prop_types.push(ty);
        }
        self.delta.entries.push(DictEntry {
            kind,
            id,
            name,
            ty,
            vacant: false,
        });
        id
    }

    /// The type of property `id` (existing or allocated by this batch).
    pub(crate) fn prop_type(&self, id: u32) -> Option<PropType> {
        let base = self.dicts.prop_types.len();
        match (id as usize).checked_sub(base) {
            None => self.dicts.prop_types.get(id as usize).copied(),
            Some(local) => self.new_prop_types.get(local).copied(),
        }
    }

    /// True when property `name` is new and the property dictionary is at its limit.
    pub(crate) fn props_full(&self, name: &str) -> bool {
        self.dicts.props.get(name).is_none()
            && self.dicts.props.len() + self.added[DictKind::Prop as usize] as usize >= limits::PROPS_MAX
            && self.new_id(DictKind::Prop, name).is_none()
    }

    /// True when `kind`'s dictionary cannot take another entry.
    pub(crate) fn full(&self, kind: DictKind) -> bool {
        let max = match kind {
            DictKind::Event => limits::EVENT_NAMES_MAX,
            _ => limits::DICT_ENTRIES_MAX,
        };
        (self.dicts.of(kind).len() as u64 + u64::from(self.added[kind as usize])) >= max
    }
}

/// Why a new name of `kind` was refused by a full dictionary.
pub(crate) fn full_reason(kind: DictKind) -> String {
    match kind {
        DictKind::Event => format!(
            "a new event name would make more than {} distinct event names; event names are \
             categories of actions: put identifiers, URLs and free text in properties",
            limits::EVENT_NAMES_MAX
        ),
        DictKind::Customer => "customer dictionary is full".into(),
        DictKind::Prop => "property dictionary is full".into(),
        DictKind::Str => "string value dictionary is full".into(),
    }
}

/// Checks a customer id, event name or property name: non-empty, at most `max` bytes, no control
/// characters. The error is the reason, starting with `what`.
pub fn check_name_text(what: &str, name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        Err(format!("{what} is empty"))
    } else if name.len() > max {
        Err(format!("{what} is {} bytes, the limit is {max}", name.len()))
    } else if name.chars().any(char::is_control) {
        Err(format!("{what} {name:?} contains a control character"))
    } else {
        Ok(())
    }
}

fn check_name(index: usize, what: &str, name: &str, max: usize) -> Result<(), IngestError> {
    check_name_text(what, name, max).map_err(|reason| IngestError::Invalid { index, reason })
}

/// Validates `events` against the dictionaries and turns them into rows.
pub fn prepare(
    dicts: &Dicts,
    stage_map: &StageMap,
    events: &[Event],
    profiles: &[ProfileUpdate],
) -> Result<Prepared, IngestError> {
    let total = events.len() + profiles.len();
    if total > limits::BATCH_EVENTS_MAX {
        return Err(IngestError::TooLarge {
            events: total,
            max: limits::BATCH_EVENTS_MAX,
        });
    }
    let mut p = Pending::new(dicts);
    let mut rows = Columns::default();
    rows.cid.reserve(total);
    rows.ts.reserve(total);
    rows.event.reserve(total);
    rows.stage.reserve(total);
    let mut seen_props: Vec<u32> = Vec::new();
    for (index, ev) in events.iter().enumerate() {
        if let Some((name, _)) = ev.props.iter().find(|(name, _)| name.starts_with(PROFILE_PREFIX)) {
            return Err(IngestError::Invalid {
                index,
                reason: format!(
                    "property `{name}`: names starting with `{PROFILE_PREFIX}` are customer-profile \
                     properties (write them with set_profile)"
                ),
            });
        }
        add_row(
            &mut p,
            (dicts, stage_map),
            &mut rows,
            (index, ev, false),
            &mut seen_props,
        )?;
    }
    for (index, write) in profiles.iter().enumerate() {
        // A profile write is stored as a row of its own kind; its properties carry the prefix.
        let row = Event {
            customer: write.customer.clone(),
            ts_us: write.ts_us,
            name: String::new(),
            stage: None,
            props: (write.props.iter())
                .map(|(name, value)| (format!("{PROFILE_PREFIX}{name}"), value.clone()))
                .collect(),
        };
        add_row(
            &mut p,
            (dicts, stage_map),
            &mut rows,
            (index, &row, true),
            &mut seen_props,
        )
        .map_err(|e| profile_error(e, PROFILE_PREFIX.len()))?;
    }
    rows.pad_props();
    Ok(Prepared {
        delta: p.into_delta(),
        rows,
    })
}

/// An error of a profile write's row, said of the profile write (its property names as the user
/// gave them, without the prefix of `prefix_len` bytes).
fn profile_error(error: IngestError, prefix_len: usize) -> IngestError {
    match error {
        IngestError::Invalid { index, reason } => IngestError::InvalidProfile { index, reason },
        IngestError::PropType {
            index,
            prop,
            expected,
            given,
        } => IngestError::InvalidProfile {
            index,
            reason: format!(
                "property `{}` has type {expected} (fixed by its first write) but the value is {given}",
                prop.get(prefix_len..).unwrap_or(&prop)
            ),
        },
        other => other,
    }
}

/// Adds `ev` as the next row of `rows`: an event, or (`profile`) a profile write
/// ([`PROFILE_ROW`], no stage; its name is not read).
fn add_row(
    pending: &mut Pending<'_>,
    (dicts, stage_map): (&Dicts, &StageMap),
    rows: &mut Columns,
    (index, ev, profile): (usize, &Event, bool),
    seen_props: &mut Vec<u32>,
) -> Result<(), IngestError> {
    let invalid = |reason: String| IngestError::Invalid { index, reason };
    crate::model::check_ts(ev.ts_us).map_err(invalid)?;
    if dicts.customers.get(&ev.customer).is_none() {
        check_name(index, "customer id", &ev.customer, limits::CUSTOMER_ID_BYTES_MAX)?;
        if pending.full(DictKind::Customer) && pending.known(DictKind::Customer, &ev.customer).is_none() {
            return Err(invalid(full_reason(DictKind::Customer)));
        }
    }
    if !profile && dicts.events.get(&ev.name).is_none() {
        check_name(index, "event name", &ev.name, limits::NAME_BYTES_MAX)?;
        if pending.full(DictKind::Event) && pending.known(DictKind::Event, &ev.name).is_none() {
            return Err(invalid(full_reason(DictKind::Event)));
        }
    }
    if ev.props.len() > limits::EVENT_PROPS_MAX {
        return Err(invalid(format!(
            "{} properties, the limit is {}",
            ev.props.len(),
            limits::EVENT_PROPS_MAX
        )));
    }
    let cid = pending.id(DictKind::Customer, &ev.customer, None);
    let (event, stage) = if profile {
        (PROFILE_ROW, 0)
    } else {
        let stage = match ev.stage {
            Some(explicit) => Stage::stored(Some(explicit), false),
            None => Stage::stored(stage_map.get(&ev.name).copied(), true),
        };
        (pending.id(DictKind::Event, &ev.name, None), stage)
    };
    add_props(pending, dicts, rows, (index, ev), seen_props)?;
    rows.cid.push(cid);
    rows.ts.push(ev.ts_us);
    rows.event.push(event);
    rows.stage.push(stage);
    Ok(())
}

/// Adds event `index`'s properties as row `rows.len()` (not pushed yet): names and string
/// values interned in `p`, types checked against the dictionaries (or fixed by this event).
fn add_props(
    pending: &mut Pending<'_>,
    dicts: &Dicts,
    rows: &mut Columns,
    (index, ev): (usize, &Event),
    seen_props: &mut Vec<u32>,
) -> Result<(), IngestError> {
    let invalid = |reason: String| IngestError::Invalid { index, reason };
    let row = rows.len();
    seen_props.clear();
    for (name, value) in &ev.props {
        let Some(value) = value else { continue };
        let given = value.prop_type();
        let pid = match dicts.props.get(name) {
            Some(pid) => pid,
            None => {
                check_name(index, "property name", name, limits::NAME_BYTES_MAX)?;
                if pending.props_full(name) {
                    return Err(invalid(format!(
                        "property `{name}` would exceed the limit of {} properties",
                        limits::PROPS_MAX
                    )));
                }
                pending.id(DictKind::Prop, name, Some(given))
            }
        };
        if seen_props.contains(&pid) {
            return Err(invalid(format!("property `{name}` given twice")));
        }
        seen_props.push(pid);
        let expected = pending.prop_type(pid).unwrap_or(given);
        if expected != given {
            return Err(IngestError::PropType {
                index,
                prop: name.clone(),
                expected,
                given,
            });
        }
        let slot = match value {
            Value::Str(s) => {
                if s.len() > limits::STRING_VALUE_BYTES_MAX {
                    return Err(invalid(format!(
                        "property `{name}`: string of {} bytes exceeds the limit of {}",
                        s.len(),
                        limits::STRING_VALUE_BYTES_MAX
                    )));
                }
                if dicts.strings.get(s).is_none()
                    && pending.full(DictKind::Str)
                    && pending.known(DictKind::Str, s).is_none()
                {
                    return Err(invalid(full_reason(DictKind::Str)));
                }
                u64::from(pending.id(DictKind::Str, s, None))
            }
            Value::I64(v) => *v as u64,
            Value::F64(v) => {
                if !v.is_finite() {
                    return Err(invalid(format!("property `{name}`: {v} is not a finite number")));
                }
                v.to_bits()
            }
            Value::Bool(v) => u64::from(*v),
        };
        let col = rows.prop_mut(pid, given);
        col.pad_to(row);
        col.valid.push(true);
        col.vals.push(slot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Names where decimal and non-decimal forms of one integer meet.
    const NAMES: [&str; 12] = [
        "7",
        "07",
        "0",
        "00",
        "12",
        "a",
        "9999999999999999999",
        "18446744073709551615",
        "99999999999999999999",
        "-3",
        "1 ",
        "4294967296",
    ];

    #[test]
    fn decimal_names_are_canonical_integers() {
        assert_eq!(decimal_name("7"), Some(7));
        assert_eq!(decimal_name("0"), Some(0));
        assert_eq!(
            decimal_name("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for name in [
            "",
            "07",
            "00",
            "-3",
            "+3",
            "1 ",
            "a",
            "18446744073709551615",
            "1.5",
        ] {
            assert_eq!(decimal_name(name), None, "{name:?}");
        }
    }

    /// Thousands of decimal customers, many sharing one half of their integer (every integer
    /// below 2^32 has the same high half): each is found as itself, never as another whose
    /// table entry shares a half and a hash tag.
    #[test]
    fn many_decimal_customers_are_each_found() {
        let dicts = Dicts::default();
        let mut pending = Pending::new(&dicts);
        let values: Vec<u64> = (0..3_000u64).chain((1..3_000).map(|v| (v << 32) | 7)).collect();
        for (index, value) in values.iter().enumerate() {
            let id = pending.add(DictKind::Customer, value.to_string(), None);
            assert_eq!(id as usize, index);
        }
        for (index, value) in values.iter().enumerate() {
            let name = value.to_string();
            assert_eq!(
                pending.known(DictKind::Customer, &name),
                Some(index as u32),
                "{name}"
            );
            assert_eq!(
                pending.known_remembered(DictKind::Customer, &name),
                Some(index as u32)
            );
        }
        assert_eq!(pending.known(DictKind::Customer, "3000"), None);
    }

    proptest! {
        /// A batch's ids, found or allocated name by name (decimal customer names through the
        /// table of integers, the rest by name), equal a map of (dictionary, name): known names
        /// keep their ids, each new name gets its dictionary's next id once, the same text in
        /// two dictionaries is two entries, and `known` agrees after every step.
        #[test]
        fn pending_ids_equal_a_map_of_names(
            existing in proptest::collection::vec(0..NAMES.len(), 0..6),
            asked in proptest::collection::vec((0..3usize, 0..NAMES.len()), 0..40),
        ) {
            const KINDS: [DictKind; 3] = [DictKind::Customer, DictKind::Event, DictKind::Str];
            let mut dicts = Dicts::default();
            let mut reference: HashMap<(usize, &str), u32> = HashMap::new();
            let mut next = [0u32; 3];
            let mut delta = DictDelta::default();
            for &k in &existing {
                if let std::collections::hash_map::Entry::Vacant(slot) = reference.entry((0, NAMES[k])) {
                    slot.insert(next[0]);
                    delta.entries.push(DictEntry {
                        kind: DictKind::Customer,
                        id: next[0],
                        name: NAMES[k].to_string(),
                        ty: None,
                        vacant: false,
                    });
                    next[0] += 1;
                }
            }
            prop_assert!(dicts.apply(&delta).is_ok());
            let mut pending = Pending::new(&dicts);
            for &(kind, k) in &asked {
                let name = NAMES[k];
                let id = match pending.known_remembered(KINDS[kind], name) {
                    Some(id) => id,
                    None => pending.add(KINDS[kind], name.to_string(), None),
                };
                let want = *reference.entry((kind, name)).or_insert_with(|| {
                    next[kind] += 1;
                    next[kind] - 1
                });
                prop_assert_eq!(id, want, "{:?} {:?}", KINDS[kind], name);
                for (other_kind, dict_kind) in KINDS.iter().enumerate() {
                    for other in NAMES {
                        prop_assert_eq!(
                            pending.known(*dict_kind, other),
                            reference.get(&(other_kind, other)).copied()
                        );
                    }
                }
            }
            prop_assert_eq!(pending.into_delta().entries.len() + delta.entries.len(), reference.len());
        }
    }
}
