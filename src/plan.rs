//! Planning: resolves a parsed statement against a snapshot's dictionaries (unknown names get a
//! "did you mean" hint), compiles predicates over property columns, resolves times in the query's
//! time zone and builds calendar buckets (DST-correct, weeks start on Monday unless `WEEK START
//! sunday`).
//!
//! Uses: `dict`, `model`, `query`, `time`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime as Zoned};

use crate::dict::Dicts;
use crate::model::{Columns, PROFILE_PREFIX, PropType, TS_MAX, TS_MIN};
use crate::query::ast::{CmpOp, Literal, Period, Pred, Step, StepKind, TimeLit, WeekStart};
use crate::query::parser::suggest;
use crate::query::{ParseError, Span};

/// A compiled predicate. Evaluation is three-valued: a comparison with a null (missing)
/// property is unknown, and an event is selected only when the predicate is true.
#[derive(Clone, Debug)]
pub enum CPred {
    /// Compare a property with a constant slot value.
    Cmp {
        /// Property id.
        prop: u32,
        /// Property type.
        ty: PropType,
        /// Operator.
        op: CmpOp,
        /// Constant (string: dictionary id, or `None` if the string is in no event).
        value: Const,
    },
    /// Membership.
    In {
        /// Property id.
        prop: u32,
        /// Property type.
        ty: PropType,
        /// Constants.
        values: Vec<Const>,
        /// The value slots equal to some constant, when that set is exact and the list long
        /// (a 9,000-literal list is then one hash look-up per row, not 9,000 comparisons).
        slots: Option<std::collections::HashSet<u64>>,
        /// NOT IN.
        negated: bool,
    },
    /// `IS [NOT] NULL`.
    IsNull {
        /// Property id (`None`: a property never written, always null).
        prop: Option<u32>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// AND.
    And(Box<CPred>, Box<CPred>),
    /// OR.
    Or(Box<CPred>, Box<CPred>),
    /// NOT.
    Not(Box<CPred>),
}

/// A constant resolved against a property's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    /// A string (its dictionary id, if any event has it) and its text.
    Str(Option<u32>, String),
    /// A number (i64 and f64 properties compare numerically).
    Num(f64),
    /// An exact integer (for i64 properties).
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl CPred {
    /// Evaluates on row `index` of `cols`; `None` means unknown (null involved).
    pub fn eval(&self, cols: &Columns, index: usize, dicts: &Dicts) -> Option<bool> {
        match self {
            CPred::Cmp { prop, ty, op, value } => {
                let x = slot(cols, *prop, index)?;
                Some(compare(*ty, x, *op, value, dicts))
            }
            CPred::In {
                prop,
                ty,
                values,
                slots,
                negated,
            } => {
                let x = slot(cols, *prop, index)?;
                let hit = match slots {
                    Some(set) => set.contains(&x),
                    None => values.iter().any(|v| compare(*ty, x, CmpOp::Eq, v, dicts)),
                };
                Some(hit != *negated)
            }
            CPred::IsNull { prop, negated } => {
                let null = prop.is_none_or(|p| slot(cols, p, index).is_none());
                Some(null != *negated)
            }
            CPred::And(a, b) => match (a.eval(cols, index, dicts), b.eval(cols, index, dicts)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            CPred::Or(a, b) => match (a.eval(cols, index, dicts), b.eval(cols, index, dicts)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            CPred::Not(a) => a.eval(cols, index, dicts).map(|v| !v),
        }
    }
}

/// The value slot of property `prop` at row `index` (`None` when null or absent).
pub fn slot(cols: &Columns, prop: u32, index: usize) -> Option<u64> {
    let c = cols.prop(prop)?;
    if *c.valid.get(index)? {
        c.vals.get(index).copied()
    } else {
        None
    }
}

/// Lists longer than this are matched through a set of value slots.
const IN_LIST_SET_MIN: usize = 8;

/// Every value slot `x` for which `compare(ty, x, "=", v)` holds, when they can be listed
/// exactly (`None`: an integer column against a float beyond 2^53, compared by rounding).
fn equal_slots(ty: PropType, constant: &Const) -> Option<Vec<u64>> {
    let float = |c: f64| {
        if c.is_nan() {
            vec![]
        } else if c == 0.0 {
            vec![0.0f64.to_bits(), (-0.0f64).to_bits()]
        } else {
            vec![c.to_bits()]
        }
    };
    Some(match (ty, constant) {
        (PropType::Str, Const::Str(id, _)) => id.iter().map(|&id| u64::from(id)).collect(),
        (PropType::I64, Const::Int(c)) => vec![*c as u64],
        (PropType::I64, Const::Num(c)) if c.is_nan() => vec![],
        (PropType::I64, Const::Num(c)) if c.abs() < 9_007_199_254_740_992.0 => {
            if c.fract() == 0.0 {
                vec![*c as i64 as u64]
            } else {
                vec![]
            }
        }
        (PropType::I64, Const::Num(_)) => return None,
        (PropType::F64, Const::Num(c)) => float(*c),
        (PropType::F64, Const::Int(c)) => float(*c as f64),
        // Stored booleans are 0 or 1 (`model::check_values`).
        (PropType::Bool, Const::Bool(b)) => vec![u64::from(*b)],
        _ => vec![],
    })
}

/// The slot set of an `IN` list, when it is long and exact.
fn in_list_slots(ty: PropType, values: &[Const]) -> Option<std::collections::HashSet<u64>> {
    if values.len() <= IN_LIST_SET_MIN {
        return None;
    }
    let mut set = std::collections::HashSet::new();
    for v in values {
        set.extend(equal_slots(ty, v)?);
    }
    Some(set)
}

fn compare(ty: PropType, value: u64, op: CmpOp, constant: &Const, dicts: &Dicts) -> bool {
    match (ty, constant) {
        (PropType::Str, Const::Str(id, text)) => match op {
            CmpOp::Eq => *id == Some(value as u32),
            CmpOp::Ne => *id != Some(value as u32),
            _ => dicts
                .strings
                .name(value as u32)
                .is_some_and(|s| op.holds(s.cmp(text.as_str()))),
        },
        (PropType::I64, Const::Int(c)) => op.holds((value as i64).cmp(c)),
        (PropType::I64, Const::Num(c)) => (value as i64 as f64).partial_cmp(c).is_some_and(|o| op.holds(o)),
        (PropType::F64, Const::Num(c)) => f64::from_bits(value).partial_cmp(c).is_some_and(|o| op.holds(o)),
        (PropType::F64, Const::Int(c)) => f64::from_bits(value)
            .partial_cmp(&(*c as f64))
            .is_some_and(|o| op.holds(o)),
        (PropType::Bool, Const::Bool(b)) => op.holds((value != 0).cmp(b)),
        _ => false,
    }
}

/// A compiled step.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Event ids matched (`None`: any event).
    pub events: Option<Vec<u32>>,
    /// Stage code matched.
    pub stage: Option<u8>,
    /// Property predicate.
    pub filter: Option<CPred>,
    /// The step's text (for result labels).
    pub label: String,
}

impl Matcher {
    /// True when matching needs property columns.
    pub fn uses_props(&self) -> bool {
        self.filter.is_some()
    }

    /// The step as a table by event id (`events` ids), when it tests event names only (no
    /// stage, no property): one look-up per row instead of [`matches`](Self::matches).
    pub fn name_table(&self, events: usize) -> Option<Vec<bool>> {
        let ids = self.events.as_ref()?;
        if self.stage.is_some() || self.uses_props() {
            return None;
        }
        let mut table = vec![false; events];
        for &id in ids {
            if let Some(slot) = table.get_mut(id as usize) {
                *slot = true;
            }
        }
        Some(table)
    }

    /// Whether row `index` matches.
    #[inline]
    pub fn matches(&self, cols: &Columns, index: usize, dicts: &Dicts) -> bool {
        if let Some(evs) = &self.events
            && !evs.contains(&cols.event[index])
        {
            return false;
        }
        if let Some(s) = self.stage
            && cols.stage[index] != s
        {
            return false;
        }
        match &self.filter {
            Some(p) => p.eval(cols, index, dicts) == Some(true),
            None => true,
        }
    }
}

/// Resolves names and literals for one snapshot.
pub struct Resolver<'d> {
    /// The dictionaries.
    pub dicts: &'d Dicts,
    /// The query's time zone.
    pub tz: TimeZone,
    /// Query text, for step labels.
    pub text: &'d str,
}

impl<'d> Resolver<'d> {
    /// A resolver; `tz` defaults to UTC.
    pub fn new(dicts: &'d Dicts, text: &'d str, tz: Option<&(String, Span)>) -> Result<Self, ParseError> {
        let tz = match tz {
            None => TimeZone::UTC,
            Some((name, span)) => TimeZone::get(name).map_err(|_| {
                ParseError::new(*span, format!("unknown time zone '{name}'"))
                    .with_help("use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'")
            })?,
        };
        Ok(Resolver { dicts, tz, text })
    }

    fn unknown(&self, what: &str, name: &str, span: Span, candidates: Vec<&str>) -> ParseError {
        let e = ParseError::new(span, format!("unknown {what} `{name}`"));
        match suggest(name, &candidates) {
            Some(s) => e.with_help(format!("did you mean `{s}`?")),
            None => e,
        }
    }

    /// A property's id and type.
    pub fn prop(&self, name: &str, span: Span) -> Result<(u32, PropType), ParseError> {
        self.prop_of(name, span, false)
    }

    /// Resolves a customer-profile property (`customer.NAME`).
    pub fn profile_prop(&self, name: &str, span: Span) -> Result<(u32, PropType), ParseError> {
        self.prop_of(name, span, true)
    }

    /// Resolves an event property (`profile` false) or a customer-profile property
    /// (`customer.NAME`, `profile` true); the other kind is an error that says where it goes.
    fn prop_of(&self, name: &str, span: Span, profile: bool) -> Result<(u32, PropType), ParseError> {
        if name.starts_with(PROFILE_PREFIX) != profile {
            return Err(if profile {
                ParseError::new(
                    span,
                    format!("`{name}` is an event property, not a customer property"),
                )
            } else {
                ParseError::new(
                    span,
                    format!("`{name}` is a customer-profile property: it has no value on an event"),
                )
                .with_help("test it in the statement's WHERE (WHERE customer.plan = 'pro') or in a cohort")
            });
        }
        match self.dicts.props.get(name) {
            Some(id) => Ok((
                id,
                self.dicts
                    .prop_types
                    .get(id as usize)
                    .copied()
                    .unwrap_or(PropType::Str),
            )),
            None => {
                let same_kind =
                    (self.dicts.props.names()).filter(|n| n.starts_with(PROFILE_PREFIX) == profile);
                let what = if profile { "customer property" } else { "property" };
                Err(self.unknown(what, name, span, same_kind.collect()))
            }
        }
    }

    fn constant(&self, ty: PropType, lit: &Literal, span: Span, prop: &str) -> Result<Const, ParseError> {
        let c = match (ty, lit) {
            (PropType::Str, Literal::Str(s)) => Const::Str(self.dicts.strings.get(s), s.clone()),
            (PropType::I64, Literal::Int(n)) => Const::Int(*n),
            (PropType::I64 | PropType::F64, Literal::Float(f)) => Const::Num(*f),
            (PropType::F64, Literal::Int(n)) => Const::Num(*n as f64),
            (PropType::Bool, Literal::Bool(b)) => Const::Bool(*b),
            _ => {
                return Err(ParseError::new(
                    span,
                    format!("property `{prop}` is {ty} but the value is not"),
                ));
            }
        };
        Ok(c)
    }

    /// Compiles a predicate.
    pub fn pred(&self, pred: &Pred) -> Result<CPred, ParseError> {
        self.pred_of(pred, false)
    }

    /// Compiles a predicate on customer-profile properties (evaluated on the rows of
    /// `db::profiles::Profiles`).
    pub fn profile_pred(&self, pred: &Pred) -> Result<CPred, ParseError> {
        self.pred_of(pred, true)
    }

    fn pred_of(&self, pred: &Pred, profile: bool) -> Result<CPred, ParseError> {
        Ok(match pred {
            Pred::Cmp { prop, op, value } => {
                let (id, ty) = self.prop_of(&prop.0, prop.1, profile)?;
                if ty == PropType::Bool && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(ParseError::new(
                        prop.1,
                        format!("`{}` is bool: use = or !=", prop.0),
                    ));
                }
                CPred::Cmp {
                    prop: id,
                    ty,
                    op: *op,
                    value: self.constant(ty, &value.0, value.1, &prop.0)?,
                }
            }
            Pred::In {
                prop,
                values,
                negated,
            } => {
                let (id, ty) = self.prop_of(&prop.0, prop.1, profile)?;
                let values: Vec<Const> = values
                    .iter()
                    .map(|(v, s)| self.constant(ty, v, *s, &prop.0))
                    .collect::<Result<_, _>>()?;
                CPred::In {
                    prop: id,
                    ty,
                    slots: in_list_slots(ty, &values),
                    values,
                    negated: *negated,
                }
            }
            Pred::IsNull { prop, negated } => {
                let id = self.prop_of(&prop.0, prop.1, profile)?.0;
                CPred::IsNull {
                    prop: Some(id),
                    negated: *negated,
                }
            }
            Pred::And(a, b) => CPred::And(
                Box::new(self.pred_of(a, profile)?),
                Box::new(self.pred_of(b, profile)?),
            ),
            Pred::Or(a, b) => CPred::Or(
                Box::new(self.pred_of(a, profile)?),
                Box::new(self.pred_of(b, profile)?),
            ),
            Pred::Not(a) => CPred::Not(Box::new(self.pred_of(a, profile)?)),
            // The parser moves a statement's conjuncts out and refuses the rest.
            Pred::InCohort(filter) => {
                return Err(ParseError::new(
                    filter.name.1,
                    "CUSTOMER IN combines with the rest of WHERE by AND only",
                ));
            }
        })
    }

    /// Compiles a step.
    pub fn step(&self, step: &Step) -> Result<Matcher, ParseError> {
        let (events, stage) = match &step.kind {
            StepKind::Any => (None, None),
            StepKind::Stage(st) => (None, Some(st.code())),
            // A name not stored yet matches nothing (see `unknown_events` for its warning).
            StepKind::Events(names) => (
                Some(
                    names
                        .iter()
                        .filter_map(|(name, _)| self.dicts.events.get(name))
                        .collect(),
                ),
                None,
            ),
        };
        let filter = step.filter.as_ref().map(|p| self.pred(p)).transpose()?;
        let label = self
            .text
            .get(step.span.start..step.span.end)
            .unwrap_or("")
            .trim()
            .to_owned();
        Ok(Matcher {
            events,
            stage,
            filter,
            label,
        })
    }

    /// A time literal as µs since the epoch (dates are midnight in the query's zone).
    pub fn time(&self, time: &TimeLit) -> Result<i64, ParseError> {
        match time {
            TimeLit::UnixMs(ms, span) => ms
                .checked_mul(1000)
                .ok_or_else(|| ParseError::new(*span, "time out of range")),
            TimeLit::Text(s, span) => {
                let bad = || {
                    ParseError::new(*span, format!("cannot read '{s}' as a time")).with_help(
                        "use '2026-02-01', '2026-02-01T12:00:00', '2026-02-01T12:00:00Z' or '...+01:00'",
                    )
                };
                if let Ok(ts) = s.parse::<Timestamp>() {
                    return Ok(ts.as_microsecond().clamp(TS_MIN, TS_MAX + 1));
                }
                let dt = s.parse::<jiff::civil::DateTime>().or_else(|_| {
                    s.parse::<Date>()
                        .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                });
                if let Ok(dt) = dt {
                    return Ok(match dt.to_zoned_datetime(self.tz.clone()) {
                        Ok(z) => z.timestamp().as_microsecond().clamp(TS_MIN, TS_MAX + 1),
                        // A local time past either end of the supported range (TO '9999-12-31'
                        // in UTC): the range's end, or its start.
                        Err(_) if dt.date().year() > 0 => TS_MAX + 1,
                        Err(_) => TS_MIN,
                    });
                }
                Err(bad())
            }
        }
    }

    /// The half-open range of a `FROM .. TO`.
    pub fn range(&self, range: &Option<(TimeLit, TimeLit)>) -> Result<Option<(i64, i64)>, ParseError> {
        let Some((a, b)) = range else { return Ok(None) };
        let (lo, hi) = (self.time(a)?, self.time(b)?);
        if lo >= hi {
            let span = match b {
                TimeLit::Text(_, s) | TimeLit::UnixMs(_, s) => *s,
            };
            return Err(ParseError::new(span, "TO must be later than FROM"));
        }
        Ok(Some((lo, hi)))
    }
}

/// One warning per event name in `steps` that no stored event has: the step matches nothing
/// (a dashboard is often set up before its events ship), and the warning keeps a misspelling
/// visible, with the nearest stored name.
pub fn unknown_events(steps: &[&Step], dicts: &Dicts, text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let stored: Vec<&str> = dicts.events.names().collect();
    for step in steps {
        let StepKind::Events(names) = &step.kind else {
            continue;
        };
        for (name, span) in names {
            if dicts.events.get(name).is_some() {
                continue;
            }
            let (line, column) = span.line_column(text);
            let place = if line == 1 {
                format!("column {column}")
            } else {
                format!("line {line}, column {column}")
            };
            let mut warning = format!(
                "unknown event `{name}` ({place}): no such event is stored yet, so it matches nothing"
            );
            if let Some(near) = suggest(name, &stored) {
                warning += &format!("; did you mean `{near}`?");
            }
            if !out.contains(&warning) {
                out.push(warning);
            }
        }
    }
    out
}

/// Calendar buckets covering a time range in a time zone.
#[derive(Clone, Debug)]
pub struct Buckets {
    /// Bucket start instants (µs), ascending; bucket `i` is `[starts[i], starts[i + 1])`.
    /// The last entry is the end of the last bucket.
    pub starts: Vec<i64>,
    /// Period.
    pub period: Period,
    /// Zone.
    pub tz: TimeZone,
    /// The common width when every bucket has the same length (UTC days and weeks, fixed-offset
    /// zones): then [`index`](Buckets::index) divides instead of searching.
    uniform: Option<i64>,
}

fn ts_of(zoned: &Zoned) -> i64 {
    zoned.timestamp().as_microsecond()
}

/// The start of the bucket containing `ts` (µs).
fn bucket_start(ts: i64, period: Period, tz: &TimeZone) -> Option<Zoned> {
    let z = crate::time::instant(ts)?.to_zoned_datetime(tz.clone());
    match period {
        Period::Hour => {
            // The instant at which the local clock last read HH:00:00: the local minutes and
            // seconds are taken off the instant itself, not the local time converted back
            // (which at a fall-back fold names the first of two 01:00s, an hour early for
            // the second: the next bucket then started where this one did, for ever).
            let dt = z.datetime();
            let into_hour = (i64::from(dt.minute()) * 60 + i64::from(dt.second())) * 1_000_000
                + i64::from(dt.subsec_nanosecond()) / 1000;
            crate::time::instant(ts - into_hour).map(|t| t.to_zoned_datetime(tz.clone()))
        }
        Period::Day => z.start_of_day().ok(),
        Period::Week(start) => {
            let d = z.date();
            let back = i64::from(match start {
                WeekStart::Monday => d.weekday().to_monday_zero_offset(),
                WeekStart::Sunday => d.weekday().to_sunday_zero_offset(),
            });
            day_start(d.checked_sub(jiff::Span::new().days(back)).ok()?, tz)
        }
        Period::Month => day_start(z.date().first_of_month(), tz),
    }
}

/// The first instant of local date `date` in `tz` (a day may start after midnight at a DST gap).
fn day_start(date: Date, tz: &TimeZone) -> Option<Zoned> {
    date.to_zoned_datetime(tz.clone()).ok()?.start_of_day().ok()
}

fn next_start(zoned: &Zoned, period: Period, tz: &TimeZone) -> Option<Zoned> {
    let d = zoned.date();
    match period {
        Period::Hour => bucket_start(ts_of(zoned) + 3_600_000_000, Period::Hour, tz),
        Period::Day => day_start(d.tomorrow().ok()?, tz),
        Period::Week(_) => day_start(d.checked_add(jiff::Span::new().days(7)).ok()?, tz),
        Period::Month => day_start(
            d.first_of_month().checked_add(jiff::Span::new().months(1)).ok()?,
            tz,
        ),
    }
}

impl Buckets {
    /// Buckets from the one containing `lo` through the one containing `hi - 1`, plus `extra`
    /// more; at most `max` buckets (an error message otherwise).
    pub fn new(
        lo: i64,
        hi: i64,
        extra: usize,
        period: Period,
        tz: &TimeZone,
        max: usize,
    ) -> Result<Buckets, String> {
        // At the ends of the supported range a bucket may start before its first instant or
        // end after its last (a month bucket of -9999-01 in UTC starts a day before TS_MIN;
        // the day after 9999-12-30 has no start): the first bucket then starts at TS_MIN and
        // the last ends at TS_MAX + 1, still holding every instant of its period that exists.
        let lo = lo.clamp(TS_MIN, TS_MAX);
        let mut z = match bucket_start(lo, period, tz) {
            Some(z) => z,
            None => crate::time::instant(TS_MIN)
                .ok_or("time out of range")?
                .to_zoned_datetime(tz.clone()),
        };
        let mut starts = vec![ts_of(&z).max(TS_MIN)];
        let mut after = 0usize;
        loop {
            let Some(next) = next_start(&z, period, tz).filter(|n| ts_of(n) <= TS_MAX) else {
                starts.push(TS_MAX + 1);
                break;
            };
            z = next;
            let t = ts_of(&z);
            starts.push(t);
            if t >= hi {
                if after == extra {
                    break;
                }
                after += 1;
            }
            if starts.len() > max + 1 {
                return Err(format!(
                    "the query covers more than {max} buckets; narrow FROM .. TO or use a longer PERIOD"
                ));
            }
        }
        let width = starts.get(1).zip(starts.first()).map(|(b, a)| b - a);
        let uniform = width.filter(|&w| w > 0 && starts.windows(2).all(|p| p[1] - p[0] == w));
        Ok(Buckets {
            starts,
            period,
            tz: tz.clone(),
            uniform,
        })
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// True when there are no buckets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket containing `ts`.
    #[inline]
    pub fn index(&self, ts: i64) -> Option<usize> {
        if let (Some(w), Some(&first), Some(&end)) = (self.uniform, self.starts.first(), self.starts.last()) {
            return (first <= ts && ts < end).then(|| ((ts - first) / w) as usize);
        }
        let p = self.starts.partition_point(|&s| s <= ts);
        if p == 0 || p >= self.starts.len() {
            None
        } else {
            Some(p - 1)
        }
    }

    /// The label of bucket `index`: a local date (day/week/month) or local date-time (hour).
    pub fn label(&self, index: usize) -> String {
        let Some(&t) = self.starts.get(index) else {
            return String::new();
        };
        let Some(ts) = crate::time::instant(t) else {
            return String::new();
        };
        let z = ts.to_zoned_datetime(self.tz.clone());
        match self.period {
            Period::Hour => z.strftime("%Y-%m-%dT%H:%M%:z").to_string(),
            _ => z.date().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot set of a long `IN` list selects exactly the slots that comparing with each
    /// constant in turn selects: signed zeros, NaN, integers against float constants, strings
    /// absent from the dictionary, booleans.
    #[test]
    fn in_list_slots_equal_the_comparisons() {
        let dicts = Dicts::default();
        let floats = [0.0, -0.0, 1.5, -2.0, 3.0, f64::NAN, 1e300, 7.0, 8.0, 9.0, 4.5e15];
        let probes_f: Vec<u64> = floats
            .iter()
            .chain(&[2.0, 1.0, f64::INFINITY, 5e-324])
            .map(|f| f.to_bits())
            .collect();
        let probes_i: Vec<u64> = [
            0i64,
            -2,
            3,
            7,
            9,
            10,
            i64::MIN,
            i64::MAX,
            4_500_000_000_000_000,
            -1,
        ]
        .iter()
        .map(|&i| i as u64)
        .collect();
        let cases: Vec<(PropType, Vec<Const>, Vec<u64>)> = vec![
            (
                PropType::F64,
                floats.iter().map(|&f| Const::Num(f)).collect(),
                probes_f.clone(),
            ),
            (PropType::F64, (0..10).map(Const::Int).collect(), probes_f),
            (
                PropType::I64,
                floats
                    .iter()
                    .filter(|f| f.abs() < 1e16 || f.is_nan())
                    .map(|&f| Const::Num(f))
                    .collect(),
                probes_i.clone(),
            ),
            (PropType::I64, (-5..5).map(Const::Int).collect(), probes_i),
            (
                PropType::Str,
                (0..10)
                    .map(|i| Const::Str((i % 3 != 0).then_some(i), format!("s{i}")))
                    .collect(),
                (0..12).collect(),
            ),
            (
                PropType::Bool,
                [true, false, true, true, true, true, true, true, true]
                    .iter()
                    .map(|&b| Const::Bool(b))
                    .collect(),
                vec![0, 1],
            ),
        ];
        for (ty, values, probes) in cases {
            let set = in_list_slots(ty, &values).unwrap_or_else(|| panic!("{ty}: no set"));
            for x in probes {
                let linear = values.iter().any(|v| compare(ty, x, CmpOp::Eq, v, &dicts));
                assert_eq!(set.contains(&x), linear, "{ty}: slot {x:#x}");
            }
        }
        // Short lists compare one by one; an integer column against floats past 2^53 too.
        assert!(in_list_slots(PropType::I64, &[Const::Int(1)]).is_none());
        let far: Vec<Const> = (0..10).map(|i| Const::Num(1e17 + f64::from(i))).collect();
        assert!(in_list_slots(PropType::I64, &far).is_none());
    }
}
