//! The day table (docs/FORMAT.md §5.3): each UTC day's customers listed once, each with the
//! keys it holds that day — its event names, stage codes and indexed property values — as the
//! number of a tuple of keys. It stores the per-(stage, day), per-(event, day) and
//! per-(value, day) customer sets, which repeat the same customers (a customer seen on a day
//! is in a stage's set, an event's set and a value's set of that day): a day's customers are
//! written once as gaps, and a customer's keys mostly as one of a few common tuples (a visit;
//! a visit and a view in one channel; …), a byte each. The sets decoded are the ones encoded.
//!
//! Uses: `codec`; rooms `value_index`.

use crate::codec::{self, DecodeError, Reader};
use crate::index::value_index::{get_value_key, put_value_key};
use hashbrown::HashMap;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Stage codes (0 = no stage, 1..5 the lifecycle stages).
const STAGES: u32 = 6;

/// The keys a tuple numbers: `events.len()` event ids, then the six stage codes, then the
/// (property, value) keys of the value index (`None`: the property absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keys {
    pub events: Vec<u32>,
    pub values: Vec<(u32, Option<u64>)>,
}

/// What a key number stands for.
enum Key {
    Event(u32),
    Stage(u8),
    Value(u32, Option<u64>),
}

impl Keys {
    /// How many keys there are.
    pub fn count(&self) -> usize {
        self.events.len() + STAGES as usize + self.values.len()
    }

    fn key(&self, number: u32) -> Key {
        let number = number as usize;
        let events = self.events.len();
        match number.checked_sub(events) {
            None => Key::Event(self.events[number]),
            Some(stage) if stage < STAGES as usize => Key::Stage(stage as u8),
            Some(stage) => {
                let (prop, value) = self.values[stage - STAGES as usize];
                Key::Value(prop, value)
            }
        }
    }

    /// `e u32 | e × event id u32 | v u32 | v × (prop u32 | has_value u8 | [value varint])`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.events.len() as u32);
        for &event in &self.events {
            codec::put_u32(out, event);
        }
        codec::put_u32(out, self.values.len() as u32);
        for &key in &self.values {
            put_value_key(out, key);
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Keys, DecodeError> {
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 4 {
            return Err(reader.err("day table: event key count exceeds the data"));
        }
        let mut keys = Keys::default();
        for _ in 0..n {
            let event = reader.u32()?;
            if keys.events.last().is_some_and(|&last| last >= event) {
                return Err(reader.err("day table: event keys out of order"));
            }
            keys.events.push(event);
        }
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 5 {
            return Err(reader.err("day table: value key count exceeds the data"));
        }
        for _ in 0..n {
            let key = get_value_key(reader)?;
            if keys.values.last().is_some_and(|&last| last >= key) {
                return Err(reader.err("day table: value keys out of order"));
            }
            keys.values.push(key);
        }
        Ok(keys)
    }
}

/// One day's sets, each with its key number, in ascending key order.
pub type Day<'a> = (i32, Vec<(u32, &'a RoaringBitmap)>);

/// The keys and the days of the sets given, ready to encode.
pub struct Table<'a> {
    pub keys: Keys,
    pub days: Vec<Day<'a>>,
}

impl<'a> Table<'a> {
    /// The table of `stage_days`, `event_days` and `values`.
    pub fn new(
        stage_days: &'a BTreeMap<(u8, i32), Arc<RoaringBitmap>>,
        event_days: &'a BTreeMap<(u32, i32), RoaringBitmap>,
        values: &'a BTreeMap<(u32, Option<u64>, i32), RoaringBitmap>,
    ) -> Table<'a> {
        let mut keys = Keys {
            events: event_days.keys().map(|&(event, _)| event).collect(),
            values: values.keys().map(|&(prop, value, _)| (prop, value)).collect(),
        };
        keys.events.dedup();
        keys.values.dedup();
        let mut days: BTreeMap<i32, Vec<(u32, &RoaringBitmap)>> = BTreeMap::new();
        // Key numbers ascend in this order: events, stages, values (each map in key order).
        // Empty sets are left out: every day listed has a member.
        for (&(event, day), set) in event_days.iter().filter(|(_, set)| !set.is_empty()) {
            let number = keys.events.partition_point(|&e| e < event) as u32;
            days.entry(day).or_default().push((number, set));
        }
        let stages_at = keys.events.len() as u32;
        for (&(stage, day), set) in stage_days.iter().filter(|(_, set)| !set.is_empty()) {
            days.entry(day)
                .or_default()
                .push((stages_at + u32::from(stage), &**set));
        }
        let values_at = stages_at + STAGES;
        for (&(prop, value, day), set) in values.iter().filter(|(_, set)| !set.is_empty()) {
            let number = keys.values.partition_point(|&v| v < (prop, value)) as u32;
            days.entry(day).or_default().push((values_at + number, set));
        }
        for sets in days.values_mut() {
            sets.sort_by_key(|&(number, _)| number);
        }
        Table {
            keys,
            days: days.into_iter().collect(),
        }
    }

    /// Where to cut the days into `parts` runs of about equal customers.
    pub fn cuts(&self, parts: usize) -> Vec<usize> {
        let weight = |sets: &Vec<(u32, &RoaringBitmap)>| sets.iter().map(|(_, s)| s.len()).sum::<u64>();
        let total: u64 = self.days.iter().map(|(_, sets)| weight(sets)).sum();
        let mut cuts = Vec::with_capacity(parts + 1);
        cuts.push(0);
        let mut done = 0u64;
        for (i, (_, sets)) in self.days.iter().enumerate() {
            if cuts.len() < parts && done * parts as u64 >= total * cuts.len() as u64 {
                cuts.push(i);
            }
            done += weight(sets);
        }
        while cuts.len() <= parts {
            cuts.push(self.days.len());
        }
        cuts
    }
}

/// Tuples numbered in the order first seen within one table, found by their keys or by their
/// keys' bit mask (one table uses one or the other).
#[derive(Default)]
struct Numbers {
    by_keys: HashMap<Vec<u32>, u32, foldhash::fast::FixedState>,
    by_mask: HashMap<u128, u32, foldhash::fast::FixedState>,
    next: u32,
}

impl Numbers {
    /// The number of `tuple`, appending its definition to `defined` when it is new.
    fn number(&mut self, tuple: &[u32], defined: &mut Vec<u8>) -> u32 {
        if let Some(&number) = self.by_keys.get(tuple) {
            return number;
        }
        self.by_keys.insert(tuple.to_vec(), self.next);
        self.define(tuple.iter().copied(), tuple.len(), defined)
    }

    /// The number of the tuple of the keys whose bits are set in `mask`, as [`Numbers::number`].
    fn number_of_mask(&mut self, mask: u128, defined: &mut Vec<u8>) -> u32 {
        if let Some(&number) = self.by_mask.get(&mask) {
            return number;
        }
        self.by_mask.insert(mask, self.next);
        let bits = std::iter::successors(Some(mask), |rest| Some(rest & rest.wrapping_sub(1)))
            .take_while(|&rest| rest != 0)
            .map(u128::trailing_zeros);
        self.define(bits, mask.count_ones() as usize, defined)
    }

    /// Appends the definition of the next number's tuple, `len` ascending `keys`.
    fn define(&mut self, keys: impl Iterator<Item = u32>, len: usize, defined: &mut Vec<u8>) -> u32 {
        codec::put_varint(defined, len as u64);
        let mut previous = 0;
        for (i, key) in keys.enumerate() {
            codec::put_varint(defined, u64::from(if i == 0 { key } else { key - previous }));
            previous = key;
        }
        self.next += 1;
        self.next - 1
    }
}

/// Calls `found` with the position in `members` (ascending) of each member of `set` (ascending),
/// which must be a subset of `members`.
fn ranks(set: impl Iterator<Item = u32>, members: &[u32], mut found: impl FnMut(usize)) {
    // `at`: where the next member can be, at the earliest (its rank, when sets are dense).
    let mut at = 0;
    for member in set {
        if members.get(at) != Some(&member) {
            // Gallop: sets are often much sparser than the day.
            let mut step = 1;
            while at + step < members.len() && members[at + step] <= member {
                at += step;
                step *= 2;
            }
            at += members[at..(at + step).min(members.len())].partition_point(|&m| m < member);
        }
        found(at);
        at += 1;
    }
}

/// Most keys for which a customer's keys are gathered as a bit mask rather than as a list.
const MASK_KEYS: usize = 128;

/// Appends `days u32 | days × DAY` for `days` (one table: tuples are numbered afresh) of a table
/// of `key_count` keys, calling `seal` after each day.
pub fn encode_days(
    days: &[Day<'_>],
    key_count: usize,
    out: &mut Vec<u8>,
    seal: super::Seal<'_>,
) -> std::io::Result<()> {
    encode_days_as(days, key_count <= MASK_KEYS, out, seal)
}

/// Each member's keys: a bit mask per member, or lists (any number of keys).
#[derive(Default)]
struct Scratch {
    masks: Vec<u128>,
    keys: Vec<u32>,
    starts: Vec<u32>,
    defined: Vec<u8>,
}

/// [`encode_days`], gathering each customer's keys as a bit mask (`by_masks`: every key number
/// below 128) or as a list; the bytes are the same.
pub(super) fn encode_days_as(
    days: &[Day<'_>],
    by_masks: bool,
    out: &mut Vec<u8>,
    seal: super::Seal<'_>,
) -> std::io::Result<()> {
    codec::put_u32(out, days.len() as u32);
    let (mut numbers, mut scratch) = (Numbers::default(), Scratch::default());
    for (day, sets) in days {
        let mut union = RoaringBitmap::new();
        for (_, set) in sets {
            union |= *set;
        }
        let members: Vec<u32> = union.iter().collect();
        codec::put_i32(out, *day);
        codec::put_varint(out, members.len() as u64);
        let mut previous = 0;
        for &member in &members {
            codec::put_varint(out, u64::from(member - previous));
            previous = member;
        }
        scratch.defined.clear();
        if by_masks {
            number_by_masks(sets, &members, &mut numbers, &mut scratch, out);
        } else {
            number_by_lists(sets, &members, &mut numbers, &mut scratch, out);
        }
        out.extend_from_slice(&scratch.defined);
        seal(out)?;
    }
    Ok(())
}

/// Appends each member's tuple number, its keys gathered as a bit mask.
fn number_by_masks(
    sets: &[(u32, &RoaringBitmap)],
    members: &[u32],
    numbers: &mut Numbers,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) {
    // A container's members (ids sharing their upper 16 bits) at a time: their masks stay in
    // the cache while every set ORs its bits in (a day's masks at 100M events are megabytes).
    let masks = &mut scratch.masks;
    let mut from = 0;
    while from < members.len() {
        let high = members[from] >> 16;
        let to = from + members[from..].partition_point(|&m| m >> 16 == high);
        let chunk = &members[from..to];
        masks.clear();
        masks.resize(chunk.len(), 0);
        let container = (high << 16)..=(high << 16 | 0xFFFF);
        for &(number, set) in sets {
            ranks(set.range(container.clone()), chunk, |rank| {
                masks[rank] |= 1u128 << number
            });
        }
        for &mask in masks.iter() {
            let number = numbers.number_of_mask(mask, &mut scratch.defined);
            codec::put_varint(out, u64::from(number));
        }
        from = to;
    }
}

/// Appends each member's tuple number, its keys gathered as a list (ascending: sets are in key
/// order): counted, then placed.
fn number_by_lists(
    sets: &[(u32, &RoaringBitmap)],
    members: &[u32],
    numbers: &mut Numbers,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) {
    let Scratch {
        keys,
        starts,
        defined,
        ..
    } = scratch;
    starts.clear();
    starts.resize(members.len() + 1, 0u32);
    for (_, set) in sets {
        ranks(set.iter(), members, |rank| starts[rank + 1] += 1);
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    keys.clear();
    keys.resize(starts[members.len()] as usize, 0u32);
    let mut fill = starts.clone();
    for &(number, set) in sets {
        ranks(set.iter(), members, |rank| {
            keys[fill[rank] as usize] = number;
            fill[rank] += 1;
        });
    }
    for window in starts.windows(2) {
        let tuple = &keys[window[0] as usize..window[1] as usize];
        let number = numbers.number(tuple, defined);
        codec::put_varint(out, u64::from(number));
    }
}

/// The sets a day table holds, as the index keeps them.
#[derive(Default)]
pub struct Decoded {
    pub stage_days: BTreeMap<(u8, i32), Arc<RoaringBitmap>>,
    /// Customers with any event each day (the union of the day's stage sets).
    pub days: BTreeMap<i32, Arc<RoaringBitmap>>,
    pub event_days: BTreeMap<(u32, i32), RoaringBitmap>,
    pub values: BTreeMap<(u32, Option<u64>, i32), RoaringBitmap>,
}

/// The tuples of one table being decoded: their keys, flat.
#[derive(Default)]
struct Tuples {
    keys: Vec<u32>,
    ends: Vec<usize>,
    /// Per tuple: it holds a stage key.
    staged: Vec<bool>,
}

impl Tuples {
    fn get(&self, number: u32) -> &[u32] {
        let number = number as usize;
        let start = number.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.keys[start..self.ends[number]]
    }

    /// Reads one tuple's definition (`k varint ≥ 1 | first key | k − 1 gaps ≥ 1`).
    fn define(&mut self, reader: &mut Reader<'_>, keys: &Keys) -> Result<(), DecodeError> {
        let n = reader.varint()?;
        if n == 0 || n > keys.count() as u64 {
            return Err(reader.err("day table: bad tuple length"));
        }
        let (stages_at, mut key, mut staged) = (keys.events.len() as u64, 0u64, false);
        for i in 0..n {
            let step = reader.varint()?;
            if i > 0 && step == 0 {
                return Err(reader.err("day table: tuple keys out of order"));
            }
            key = key.saturating_add(step);
            if key >= keys.count() as u64 {
                return Err(reader.err("day table: tuple key out of range"));
            }
            staged |= (stages_at..stages_at + u64::from(STAGES)).contains(&key);
            self.keys.push(key as u32);
        }
        self.ends.push(self.keys.len());
        self.staged.push(staged);
        Ok(())
    }
}

/// Decodes `keys` (see [`Keys`]) and `tables u32 | tables × (days u32 | days × DAY)` into `out`.
pub fn decode(reader: &mut Reader<'_>) -> Result<Decoded, DecodeError> {
    let keys = Keys::decode(reader)?;
    let tables = reader.u32()?;
    if tables as usize > reader.remaining() / 4 {
        return Err(reader.err("day table: table count exceeds the data"));
    }
    let mut out = Decoded::default();
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); keys.count()];
    for _ in 0..tables {
        let days = reader.u32()?;
        if days as usize > reader.remaining() / 5 {
            return Err(reader.err("day table: day count exceeds the data"));
        }
        let mut tuples = Tuples::default();
        for _ in 0..days {
            decode_day(reader, &keys, &mut tuples, &mut lists, &mut out)?;
        }
    }
    Ok(out)
}

/// Reads one `DAY := day i32 | n varint | n × gap varint | n × tuple varint | new × TUPLE`.
fn decode_day(
    reader: &mut Reader<'_>,
    keys: &Keys,
    tuples: &mut Tuples,
    lists: &mut [Vec<u32>],
    out: &mut Decoded,
) -> Result<(), DecodeError> {
    let day = reader.i32()?;
    let n = reader.varint()?;
    // Each member takes at least two bytes (a gap and a tuple number).
    if n == 0 || n > reader.remaining() as u64 / 2 {
        return Err(reader.err("day table: member count exceeds the data"));
    }
    let mut members = Vec::with_capacity(n as usize);
    let mut member = 0u64;
    for i in 0..n {
        let gap = reader.varint()?;
        if i > 0 && gap == 0 {
            return Err(reader.err("day table: members out of order"));
        }
        member = member.saturating_add(gap);
        if member > u64::from(u32::MAX) {
            return Err(reader.err("day table: member past the id range"));
        }
        members.push(member as u32);
    }
    let (known, mut next) = (tuples.ends.len() as u64, tuples.ends.len() as u64);
    let mut numbers = Vec::with_capacity(members.len());
    for _ in 0..n {
        let number = reader.varint()?;
        if number == next {
            next += 1;
        } else if number > next {
            return Err(reader.err("day table: tuple number out of order"));
        }
        numbers.push(number as u32);
    }
    for _ in known..next {
        tuples.define(reader, keys)?;
    }
    let mut all_staged = true;
    for (&member, &number) in members.iter().zip(&numbers) {
        all_staged &= tuples.staged[number as usize];
        for &key in tuples.get(number) {
            lists[key as usize].push(member);
        }
    }
    put_day(day, &members, all_staged, keys, lists, out)
        .map_err(|what| reader.err(format!("day table: {what}")))
}

/// Moves the sets of `day` gathered in `lists` into `out`.
fn put_day(
    day: i32,
    members: &[u32],
    all_staged: bool,
    keys: &Keys,
    lists: &mut [Vec<u32>],
    out: &mut Decoded,
) -> Result<(), &'static str> {
    let mut any_stage = RoaringBitmap::new();
    for (number, list) in lists.iter_mut().enumerate() {
        if list.is_empty() {
            continue;
        }
        let set = RoaringBitmap::from_sorted_iter(list.drain(..)).map_err(|_| "members out of order")?;
        let fresh = match keys.key(number as u32) {
            Key::Event(event) => out.event_days.insert((event, day), set).is_none(),
            Key::Stage(stage) => {
                if !all_staged {
                    any_stage |= &set;
                }
                out.stage_days.insert((stage, day), Arc::new(set)).is_none()
            }
            Key::Value(prop, value) => out.values.insert((prop, value, day), set).is_none(),
        };
        if !fresh {
            return Err("a day listed twice");
        }
    }
    let day_set = if all_staged {
        RoaringBitmap::from_sorted_iter(members.iter().copied()).map_err(|_| "members out of order")?
    } else {
        any_stage
    };
    if !day_set.is_empty() && out.days.insert(day, Arc::new(day_set)).is_some() {
        return Err("a day listed twice");
    }
    Ok(())
}
