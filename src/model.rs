//! Plain data, no I/O: events as users give them, lifecycle stages, typed property values, and
//! the columnar row batch (`Columns`) that the buffer, segments and compaction all speak.
//!
//! Uses: no other module of the crate.

use std::fmt;

/// Microseconds since the Unix epoch, UTC.
pub type TimestampUs = i64;

/// Set in a stored stage code when the stage came from the stage map rather than from the
/// event itself (docs/FORMAT.md §5.1): a stage-map change re-stages exactly those rows (and
/// rows stored as 0, which had no stage at all), never an event's explicit stage. Codes stay
/// below 16, so a stage column still packs at 4 bits.
pub const STAGE_MAPPED: u8 = 8;

/// The stage code (0 = none, 1..=5) of a stored stage byte (which may carry [`STAGE_MAPPED`]).
/// Readers see only codes: the segment reader and the buffer's sorted view strip the flag.
pub fn stage_code(stored: u8) -> u8 {
    stored & !STAGE_MAPPED
}

/// Whether a stored stage byte is valid: 0..=5, or 9..=13 (a mapped stage).
pub fn stored_stage_valid(stored: u8) -> bool {
    stored <= 5 || (STAGE_MAPPED + 1..=STAGE_MAPPED + 5).contains(&stored)
}

/// Whether a stored stage byte follows the stage map: it came from the map, or had no stage
/// (the API has no explicit "no stage", so 0 only ever means the map had no entry).
pub fn stage_follows_map(stored: u8) -> bool {
    stored == 0 || stored & STAGE_MAPPED != 0
}

/// Microseconds in one UTC day.
pub const DAY_US: i64 = 86_400_000_000;

/// The earliest timestamp an event may have: -9999-01-02T01:59:59Z (proleptic Gregorian), the
/// earliest instant that has a local date and time in every time zone (jiff's
/// `Timestamp::MIN`), so that every statement can bucket it in any zone.
pub const TS_MIN: TimestampUs = -377_705_023_201_000_000;
/// The latest timestamp an event may have: 9999-12-30T22:00:00.999999Z, the latest instant
/// that has a local date and time in every time zone (jiff's `Timestamp::MAX`).
pub const TS_MAX: TimestampUs = 253_402_207_200_999_999;

/// `ts` when it lies in [`TS_MIN`]..=[`TS_MAX`], else an error saying so. The range holds the
/// years ISO 8601 writes with four digits (but the last day of year 9999 and the first of
/// -9999, which some time zones cannot name) and is 24 times narrower than i64's, so that time
/// arithmetic (a day's end, a bucket's, a window's) never nears overflow.
pub fn check_ts(ts: TimestampUs) -> Result<TimestampUs, String> {
    if (TS_MIN..=TS_MAX).contains(&ts) {
        Ok(ts)
    } else {
        Err(format!(
            "timestamp {ts} µs is outside the supported range (-9999-01-02T01:59:59Z to 9999-12-30T22:00:00.999999Z)"
        ))
    }
}

/// Checks the values of stored rows with the rules `commit` applies to new events, where they
/// need no dictionary: timestamps in range, stage codes, finite numbers, booleans 0 or 1.
/// Replay and `verify` use it on rows that passed their checksums (a buggy older writer, a
/// bit flip before the checksum was computed, a hostile file), so that no query meets a value
/// that `commit` would have refused.
pub fn check_values(rows: &Columns) -> Result<(), String> {
    if let Some(&ts) = rows.ts.iter().find(|&&ts| !(TS_MIN..=TS_MAX).contains(&ts)) {
        check_ts(ts)?;
    }
    if let Some(&stage) = rows.stage.iter().find(|&&s| !stored_stage_valid(s)) {
        return Err(format!("stage code {stage}"));
    }
    for p in &rows.props {
        let mut set = p.vals.iter().zip(&p.valid).filter(|(_, v)| **v).map(|(x, _)| *x);
        let bad = match p.ty {
            PropType::F64 => set
                .find(|&x| !f64::from_bits(x).is_finite())
                .map(|x| format!("{}", f64::from_bits(x))),
            PropType::Bool => set.find(|&x| x > 1).map(|x| format!("boolean code {x}")),
            PropType::I64 | PropType::Str => None,
        };
        if let Some(what) = bad {
            return Err(format!(
                "property id {}: {what} is not a valid {} value",
                p.id, p.ty
            ));
        }
    }
    Ok(())
}

/// The UTC day number (days since 1970-01-01) of a timestamp.
pub fn day_of(ts_us: TimestampUs) -> i32 {
    // Days since the epoch of any i64 microsecond value fit in i32 (±106 751 991 days).
    ts_us.div_euclid(DAY_US) as i32
}

/// The first supported instant of UTC day `day` (its midnight, or [`TS_MIN`] on the range's
/// first day, which starts after midnight): the instant whose bucket holds the day's events.
pub fn first_instant_of_day(day: i32) -> TimestampUs {
    (i64::from(day) * DAY_US).max(TS_MIN)
}

/// Formats a timestamp as ISO 8601 UTC: `2026-01-05T10:00:00.000Z` (or 6 fraction digits).
pub fn format_ts(us: i64) -> String {
    let days = us.div_euclid(DAY_US);
    let in_day = us.rem_euclid(DAY_US);
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac % 1000 == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", frac / 1000)
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:06}Z")
    }
}

/// A lifecycle stage. The journey runs awareness → consideration → purchase → retention → advocacy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The customer learns the product exists.
    Awareness = 1,
    /// The customer evaluates it.
    Consideration = 2,
    /// The customer buys.
    Purchase = 3,
    /// The customer comes back.
    Retention = 4,
    /// The customer recommends it.
    Advocacy = 5,
}

impl Stage {
    /// All stages in journey order.
    pub const ALL: [Stage; 5] = [
        Stage::Awareness,
        Stage::Consideration,
        Stage::Purchase,
        Stage::Retention,
        Stage::Advocacy,
    ];

    /// The stored code (1..=5); 0 means "no stage".
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The stage for a stored code; `None` for 0 or an unknown code.
    pub fn from_code(code: u8) -> Option<Stage> {
        match code {
            1 => Some(Stage::Awareness),
            2 => Some(Stage::Consideration),
            3 => Some(Stage::Purchase),
            4 => Some(Stage::Retention),
            5 => Some(Stage::Advocacy),
            _ => None,
        }
    }

    /// The stored form of a row's stage: an explicit `stage` as its code, or
    /// the stage the map gave (`mapped`) with [`STAGE_MAPPED`] set; no stage from the map is 0.
    pub fn stored(stage: Option<Stage>, mapped: bool) -> u8 {
        match (stage, mapped) {
            (None, _) => 0,
            (Some(s), false) => s.code(),
            (Some(s), true) => s.code() | STAGE_MAPPED,
        }
    }

    /// The lower-case name used in queries and files.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Awareness => "awareness",
            Stage::Consideration => "consideration",
            Stage::Purchase => "purchase",
            Stage::Retention => "retention",
            Stage::Advocacy => "advocacy",
        }
    }

    /// Parses a stage name, case-insensitively.
    pub fn parse(text: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The type of a property; fixed by the first value ever written for that property name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropType {
    /// UTF-8 string, dictionary-encoded.
    Str = 1,
    /// Signed 64-bit integer.
    I64 = 2,
    /// 64-bit float (finite values only).
    F64 = 3,
    /// Boolean.
    Bool = 4,
}

impl PropType {
    /// The stored code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type for a stored code.
    pub fn from_code(code: u8) -> Option<PropType> {
        match code {
            1 => Some(PropType::Str),
            2 => Some(PropType::I64),
            3 => Some(PropType::F64),
            4 => Some(PropType::Bool),
            _ => None,
        }
    }

    /// The name used in messages and schemas.
    pub fn name(self) -> &'static str {
        match self {
            PropType::Str => "string",
            PropType::I64 => "i64",
            PropType::F64 => "f64",
            PropType::Bool => "bool",
        }
    }
}

impl fmt::Display for PropType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A property value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The type of this value.
    pub fn prop_type(&self) -> PropType {
        match self {
            Value::Str(_) => PropType::Str,
            Value::I64(_) => PropType::I64,
            Value::F64(_) => PropType::F64,
            Value::Bool(_) => PropType::Bool,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Str(text.to_owned())
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Str(value)
    }
}
impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::I64(value)
    }
}
impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::F64(value)
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

/// One event as the user gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// External customer id (UTF-8, 1..=256 bytes).
    pub customer: String,
    /// Timestamp in microseconds since the Unix epoch, UTC.
    pub ts_us: TimestampUs,
    /// Event name, e.g. `visit`.
    pub name: String,
    /// Explicit stage; when `None` the database's stage map decides (see `Db::set_stage`).
    pub stage: Option<Stage>,
    /// Properties; a `None` value is an explicit null (the same as leaving the property out).
    pub props: Vec<(String, Option<Value>)>,
}

impl Event {
    /// A new event with no stage and no properties.
    pub fn new(customer: impl Into<String>, ts_us: TimestampUs, name: impl Into<String>) -> Self {
        Event {
            customer: customer.into(),
            ts_us,
            name: name.into(),
            stage: None,
            props: Vec::new(),
        }
    }

    /// A new event at an instant given as a `jiff::Timestamp` (kept to the microsecond).
    ///
    /// ```
    /// use journeydb::Event;
    /// let at: jiff::Timestamp = "2026-03-05T10:00:00Z".parse().unwrap();
    /// let visit = Event::at("ann", at, "visit");
    /// assert_eq!(visit.ts_us, 1_772_704_800_000_000);
    /// ```
    pub fn at(customer: impl Into<String>, at: jiff::Timestamp, name: impl Into<String>) -> Self {
        Event::new(customer, at.as_microsecond(), name)
    }

    /// A new event at a `SystemTime` (kept to the microsecond; an instant before 1970 is
    /// negative, one too far from it for an `i64` of microseconds saturates, and `commit`
    /// refuses it as out of range).
    pub fn at_system_time(
        customer: impl Into<String>,
        at: std::time::SystemTime,
        name: impl Into<String>,
    ) -> Self {
        let micros = |duration: std::time::Duration| i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        let ts_us = match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => micros(after),
            Err(before) => -micros(before.duration()),
        };
        Event::new(customer, ts_us, name)
    }

    /// Sets the explicit stage.
    pub fn with_stage(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }

    /// Adds a property.
    pub fn with_prop(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.props.push((name.into(), Some(value.into())));
        self
    }
}

/// The event id that marks a row as a customer-profile write (not an event) in the log and the
/// buffer; no dictionary id reaches it (docs/FORMAT.md, "Profiles").
pub const PROFILE_ROW: u32 = u32::MAX;

/// Prefix of a profile property's name in the property dictionary and in queries:
/// `Batch::set_profile(…, [("plan", …)])` writes property `customer.plan`.
pub const PROFILE_PREFIX: &str = "customer.";

/// A write of customer-profile properties (plan, country, …) as the user gives it: the values
/// the customer has from `ts_us` on. Every write is kept with its time; queries read each
/// property's latest value (docs/QUERY.md, "Customer profiles").
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileUpdate {
    /// External customer id (created if new).
    pub customer: String,
    /// When the values took effect (µs since the Unix epoch, UTC).
    pub ts_us: TimestampUs,
    /// Property names without the `customer.` prefix; a `None` value is left out.
    pub props: Vec<(String, Option<Value>)>,
}

impl ProfileUpdate {
    /// A write with no properties yet.
    pub fn new(customer: impl Into<String>, ts_us: TimestampUs) -> Self {
        ProfileUpdate {
            customer: customer.into(),
            ts_us,
            props: Vec::new(),
        }
    }

    /// Adds a property.
    pub fn with_prop(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.props.push((name.into(), Some(value.into())));
        self
    }
}

/// One stored event as read back: names resolved, nulls left out, properties sorted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// External customer id.
    pub customer: String,
    /// Timestamp in microseconds since the Unix epoch, UTC.
    pub ts_us: TimestampUs,
    /// Event name.
    pub name: String,
    /// The stage the event was stored with (explicit, or from the stage map at write time).
    pub stage: Option<Stage>,
    /// Non-null properties sorted by name.
    pub props: Vec<(String, Value)>,
}

/// One property column of a [`Columns`] batch.
///
/// Every value is held in a `u64` slot: i64 as its two's complement bits, f64 as its IEEE bits,
/// bool as 0/1, string as its id in the string-value dictionary.
#[derive(Clone, Debug, PartialEq)]
pub struct PropColumn {
    /// Property id (dictionary).
    pub id: u32,
    /// Property type.
    pub ty: PropType,
    /// Validity per row (false = null).
    pub valid: Vec<bool>,
    /// Value slot per row (0 where null).
    pub vals: Vec<u64>,
}

impl PropColumn {
    /// An empty column.
    pub fn new(id: u32, ty: PropType) -> Self {
        PropColumn {
            id,
            ty,
            valid: Vec::new(),
            vals: Vec::new(),
        }
    }

    /// Pads with nulls up to `len` rows.
    pub fn pad_to(&mut self, len: usize) {
        self.valid.resize(len, false);
        self.vals.resize(len, 0);
    }
}

/// A batch of rows in columnar form, with internal (dictionary) ids.
///
/// Used by the in-memory buffer, the segment writer and reader, and compaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns {
    /// Internal customer id per row.
    pub cid: Vec<u32>,
    /// Timestamp per row (µs).
    pub ts: Vec<i64>,
    /// Event-name id per row.
    pub event: Vec<u32>,
    /// Stage code per row (0 = none). On the write path (a prepared batch, the log, the buffer,
    /// a segment being written or compacted) it is the stored form, which may carry
    /// [`STAGE_MAPPED`]; every read path (segment blocks, the buffer's sorted view) strips it.
    pub stage: Vec<u8>,
    /// Property columns, sorted by property id, each `len()` rows long.
    pub props: Vec<PropColumn>,
}

impl Columns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.cid.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.cid.is_empty()
    }

    /// Strips [`STAGE_MAPPED`] from every stage: the stored form becomes what readers see.
    pub fn strip_stage_flags(&mut self) {
        for s in &mut self.stage {
            *s = stage_code(*s);
        }
    }

    /// The column of property `id`, creating it (null-padded) if absent.
    pub fn prop_mut(&mut self, id: u32, ty: PropType) -> &mut PropColumn {
        let len = self.len();
        let pos = match self.props.binary_search_by_key(&id, |p| p.id) {
            Ok(pos) => pos,
            Err(pos) => {
                let mut col = PropColumn::new(id, ty);
                col.pad_to(len);
                self.props.insert(pos, col);
                pos
            }
        };
        &mut self.props[pos]
    }

    /// The column of property `id`, if present.
    pub fn prop(&self, id: u32) -> Option<&PropColumn> {
        self.props
            .binary_search_by_key(&id, |p| p.id)
            .ok()
            .and_then(|pos| self.props.get(pos))
    }

    /// Pads every property column with nulls to the current row count.
    pub fn pad_props(&mut self) {
        let len = self.len();
        for p in &mut self.props {
            p.pad_to(len);
        }
    }

    /// Removes every row, keeping the fixed columns' allocations (property columns are dropped).
    pub fn clear(&mut self) {
        self.cid.clear();
        self.ts.clear();
        self.event.clear();
        self.stage.clear();
        self.props.clear();
    }

    /// Removes every row, keeping every column's allocation: property columns stay, empty (a
    /// reader of one customer's rows at a time refills them without allocating).
    pub fn truncate_rows(&mut self) {
        self.cid.clear();
        self.ts.clear();
        self.event.clear();
        self.stage.clear();
        for column in &mut self.props {
            column.valid.clear();
            column.vals.clear();
        }
    }

    /// Appends the rows of `other`.
    pub fn extend_from(&mut self, other: &Columns) {
        let base = self.len();
        self.cid.extend_from_slice(&other.cid);
        self.ts.extend_from_slice(&other.ts);
        self.event.extend_from_slice(&other.event);
        self.stage.extend_from_slice(&other.stage);
        for p in &other.props {
            let col = self.prop_mut(p.id, p.ty);
            col.pad_to(base);
            col.valid.extend_from_slice(&p.valid);
            col.vals.extend_from_slice(&p.vals);
        }
        self.pad_props();
    }

    /// Appends rows `range` of `other`: the same rows as `extend_from(&other.slice(range))`
    /// (property columns with no value in the range are not added), without building the
    /// slice — the merge appends one run per customer and source this way.
    pub fn extend_from_range(&mut self, other: &Columns, range: std::ops::Range<usize>) {
        let base = self.len();
        self.cid.extend_from_slice(&other.cid[range.clone()]);
        self.event
            .extend_from_slice(other.event.get(range.clone()).unwrap_or_default());
        self.ts
            .extend_from_slice(other.ts.get(range.clone()).unwrap_or_default());
        self.stage
            .extend_from_slice(other.stage.get(range.clone()).unwrap_or_default());
        for p in &other.props {
            let valid = &p.valid[range.clone()];
            if !valid.contains(&true) {
                continue;
            }
            let col = self.prop_mut(p.id, p.ty);
            col.pad_to(base);
            col.valid.extend_from_slice(valid);
            col.vals.extend_from_slice(&p.vals[range.clone()]);
        }
        self.pad_props();
    }

    /// The rows split into events and profile writes ([`PROFILE_ROW`]), each in the order
    /// they have here; no copy when there is no profile write.
    pub fn split_profiles(self) -> (Columns, Columns) {
        if !self.event.contains(&PROFILE_ROW) {
            return (self, Columns::default());
        }
        let (profiles, events): (Vec<u32>, Vec<u32>) =
            (0..self.len() as u32).partition(|&i| self.event[i as usize] == PROFILE_ROW);
        (self.gather(&events), self.gather(&profiles))
    }

    /// A new batch holding the rows at `order`, in that order.
    /// A column that was not decoded (empty) stays empty.
    pub fn gather(&self, order: &[u32]) -> Columns {
        fn pick<T: Copy>(values: &[T], order: &[u32]) -> Vec<T> {
            if values.is_empty() {
                return Vec::new();
            }
            order.iter().map(|&i| values[i as usize]).collect()
        }
        Columns {
            cid: pick(&self.cid, order),
            ts: pick(&self.ts, order),
            event: pick(&self.event, order),
            stage: pick(&self.stage, order),
            props: self
                .props
                .iter()
                .map(|p| PropColumn {
                    id: p.id,
                    ty: p.ty,
                    valid: order.iter().map(|&i| p.valid[i as usize]).collect(),
                    vals: order.iter().map(|&i| p.vals[i as usize]).collect(),
                })
                .filter(|p| p.valid.iter().any(|&v| v))
                .collect(),
        }
    }

    /// The rows `range` as a new batch.
    /// A column that was not decoded (empty) stays empty.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Columns {
        fn part<T: Copy>(values: &[T], run: &std::ops::Range<usize>) -> Vec<T> {
            values.get(run.clone()).map_or_else(Vec::new, <[T]>::to_vec)
        }
        Columns {
            cid: self.cid[range.clone()].to_vec(),
            ts: part(&self.ts, &range),
            event: part(&self.event, &range),
            stage: part(&self.stage, &range),
            props: self
                .props
                .iter()
                .map(|p| PropColumn {
                    id: p.id,
                    ty: p.ty,
                    valid: p.valid[range.clone()].to_vec(),
                    vals: p.vals[range.clone()].to_vec(),
                })
                .filter(|p| p.valid.iter().any(|&v| v))
                .collect(),
        }
    }

    /// True when the rows are already in (customer, timestamp) order — then
    /// [`sort_order`](Self::sort_order) is the identity (a file exported by customer, or the
    /// rows of one customer's batch, need no sort and no gather).
    pub fn is_sorted(&self) -> bool {
        self.cid
            .iter()
            .zip(&self.ts)
            .is_sorted_by(|a, b| (a.0, a.1) <= (b.0, b.1))
    }

    /// The order that sorts rows by (customer, timestamp), keeping the current order among
    /// equal keys (the current order is ingestion order, so ties keep sequence order).
    ///
    /// When the customer ids span at most about twice as many values as there are rows (an
    /// import: ids are dense), a counting sort by customer (linear, stable, on up to four
    /// threads from a million rows on) that then sorts by timestamp only the customers whose
    /// rows came out of time order; otherwise [`sort_order_by_keys`](Self::sort_order_by_keys).
    pub fn sort_order(&self) -> Vec<u32> {
        let threads = if self.len() < 1 << 20 {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |t| t.get().min(4))
        };
        self.sort_order_on(threads)
    }

    /// [`sort_order`](Self::sort_order) on `threads` threads (at least one).
    fn sort_order_on(&self, threads: usize) -> Vec<u32> {
        let threads = threads.max(1);
        let n = self.len();
        let (Some(&lo), Some(&hi)) = (self.cid.iter().min(), self.cid.iter().max()) else {
            return Vec::new();
        };
        let span = (hi - lo) as usize + 1;
        if span > n.saturating_mul(2).max(4096) {
            return self.sort_order_by_keys();
        }
        // 1. Rows per customer, each thread counting a share of the rows.
        let count = |part: &[u32]| {
            let mut h = vec![0u32; span];
            for &c in part {
                h[(c - lo) as usize] += 1;
            }
            h
        };
        let mut counts = if threads == 1 {
            vec![count(&self.cid)]
        } else {
            std::thread::scope(|s| {
                let parts: Vec<_> = self
                    .cid
                    .chunks(n.div_ceil(threads))
                    .map(|part| s.spawn(move || count(part)))
                    .collect();
                parts.into_iter().map(join).collect::<Vec<Vec<u32>>>()
            })
        };
        let mut start = counts.pop().unwrap_or_default();
        for h in &counts {
            start.iter_mut().zip(h).for_each(|(a, b)| *a += b);
        }
        drop(counts);
        // start[k]: the first slot of customer lo + k (start[span] = n).
        let mut sum = 0u32;
        for x in &mut start {
            let count = *x;
            *x = sum;
            sum += count;
        }
        start.push(sum);
        // 2. Each thread places the rows of a contiguous range of customers (about n / threads
        //    rows) into its own part of the order.
        let mut order = vec![0u32; n];
        if threads == 1 {
            self.place(lo, &start, &mut order);
            return order;
        }
        let mut bounds = vec![0usize];
        for t in 1..threads {
            let target = (n * t / threads) as u32;
            bounds.push(start.partition_point(|&x| x < target).clamp(bounds[t - 1], span));
        }
        bounds.push(span);
        std::thread::scope(|s| {
            let mut rest = &mut order[..];
            let mut handles = Vec::new();
            for w in bounds.windows(2) {
                let (ka, kb) = (w[0], w[1]);
                let base = start[ka] as usize;
                let len = start[kb] as usize - base;
                let (o, r) = std::mem::take(&mut rest).split_at_mut(len);
                rest = r;
                let start = &start[ka..=kb];
                handles.push(s.spawn(move || self.place(lo + ka as u32, start, o)));
            }
            handles.into_iter().for_each(join);
        });
        order
    }

    /// Places the rows of customers `first ..` (slots `start[k] - start[0] .. start[k + 1] -
    /// start[0]` of `order` for customer `first + k`) in row order, then sorts by timestamp
    /// the rows of each customer whose timestamps came out of order (ties keep row order).
    fn place(&self, first: u32, start: &[u32], order: &mut [u32]) {
        let base = start[0];
        // Per customer: the next slot, and the timestamp last placed there.
        let mut cursor: Vec<(u32, bool, TimestampUs)> = start[..start.len() - 1]
            .iter()
            .map(|&x| (x - base, false, TimestampUs::MIN))
            .collect();
        let mut unordered = Vec::new();
        for (i, (&c, &ts)) in self.cid.iter().zip(&self.ts).enumerate() {
            let Some((slot, marked, last)) = cursor.get_mut(c.wrapping_sub(first) as usize) else {
                continue;
            };
            order[*slot as usize] = i as u32;
            *slot += 1;
            if ts < *last && !*marked {
                unordered.push(c - first);
                *marked = true;
            }
            *last = ts;
        }
        let mut pairs = Vec::new();
        for k in unordered {
            let r = (start[k as usize] - base) as usize..(start[k as usize + 1] - base) as usize;
            pairs.clear();
            pairs.extend(order[r.clone()].iter().map(|&i| (self.ts[i as usize], i)));
            // Row indexes are unique: sorting (timestamp, row) keeps ties in row order.
            pairs.sort_unstable();
            order[r].iter_mut().zip(&pairs).for_each(|(o, p)| *o = p.1);
        }
    }

    /// [`sort_order`](Self::sort_order) by sorting one 128-bit key per row (any customer ids).
    pub fn sort_order_by_keys(&self) -> Vec<u32> {
        // One 128-bit key per row: customer, timestamp (sign flipped so that it orders as
        // unsigned), row index (unique, so an unstable sort keeps the current order of ties).
        let mut keys: Vec<u128> = (0..self.len())
            .map(|i| {
                let ts = (self.ts[i] as u64) ^ (1 << 63);
                (u128::from(self.cid[i]) << 96) | (u128::from(ts) << 32) | i as u128
            })
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| k as u32).collect()
    }
}

/// The result of a scoped thread; its panic, if it panicked, continues in the caller.
pub(crate) fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rows(cid: Vec<u32>, ts: Vec<i64>) -> Columns {
        let n = cid.len().min(ts.len());
        Columns {
            cid: cid[..n].to_vec(),
            ts: ts[..n].to_vec(),
            event: vec![0; n],
            stage: vec![0; n],
            props: Vec::new(),
        }
    }

    proptest! {
        /// The counting sort orders exactly as the key sort (the definition): customer, then
        /// timestamp, ties in row order; dense ids, sparse ids (the key sort itself), repeated
        /// and out-of-order timestamps, extreme timestamps; one to four threads.
        #[test]
        fn sort_order_is_the_key_order(
            base in prop_oneof![Just(0u32), Just(u32::MAX - 300), 0u32..1_000_000],
            spread in prop_oneof![Just(1u32), Just(40u32), Just(300u32)],
            pairs in prop::collection::vec((0u32..300, prop_oneof![
                -3i64..3,
                Just(i64::MIN),
                Just(i64::MAX),
                any::<i64>(),
            ]), 0..400),
            sparse in any::<bool>(),
            threads in 1usize..5,
        ) {
            let (mut cid, ts): (Vec<u32>, Vec<i64>) = pairs
                .into_iter()
                .map(|(c, t)| (base.saturating_add(c % spread), t))
                .unzip();
            if sparse && !cid.is_empty() {
                // A span far beyond twice the rows: the key sort's path.
                cid[0] = if base > u32::MAX / 2 { 0 } else { u32::MAX };
            }
            let r = rows(cid, ts);
            let order = r.sort_order_on(threads);
            prop_assert_eq!(&order, &r.sort_order_by_keys());
            // Sorted exactly when the order is the identity; sorted rows are sorted.
            let identity = order.iter().enumerate().all(|(i, &o)| o as usize == i);
            prop_assert_eq!(r.is_sorted(), identity);
            prop_assert!(r.gather(&order).is_sorted());
        }

        /// Appending a range equals appending its slice: rows, and which property columns
        /// exist (a column with no value in the range is not added), onto rows that already
        /// hold other columns.
        #[test]
        fn extend_from_range_equals_extend_from_a_slice(
            n in 1usize..40,
            cut in (0usize..40, 0usize..40),
            valid in proptest::collection::vec(any::<(bool, bool)>(), 40),
            base in 0usize..5,
        ) {
            let mut other = rows((0..n as u32).collect(), (0..n as i64).collect());
            for (k, id) in [(0, 3u32), (1, 7)] {
                let col = other.prop_mut(id, PropType::I64);
                for (i, v) in valid.iter().take(n).enumerate() {
                    let on = if k == 0 { v.0 } else { v.1 };
                    col.valid[i] = on;
                    col.vals[i] = if on { i as u64 } else { 0 };
                }
            }
            let (a, b) = (cut.0.min(n), cut.1.min(n));
            let range = a.min(b)..a.max(b);
            let mut start = rows(vec![9; base], vec![1; base]);
            start.prop_mut(5, PropType::Str).pad_to(base);
            let mut want = start.clone();
            want.extend_from(&other.slice(range.clone()));
            let mut got = start;
            got.extend_from_range(&other, range);
            prop_assert_eq!(got, want);
        }
    }

    /// An event's instant from a `SystemTime`, after and before 1970, to the microsecond.
    #[test]
    fn events_take_system_times() {
        use std::time::{Duration, UNIX_EPOCH};
        let after = UNIX_EPOCH + Duration::from_nanos(1_772_704_800_123_456_789);
        assert_eq!(
            Event::at_system_time("ann", after, "visit").ts_us,
            1_772_704_800_123_456
        );
        let before = UNIX_EPOCH - Duration::from_micros(86_400_000_001);
        assert_eq!(
            Event::at_system_time("ann", before, "visit").ts_us,
            -86_400_000_001
        );
    }
}
