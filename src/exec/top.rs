//! TOP CUSTOMERS: customers ranked by a measure of their events (count, a property's sum, mean,
//! minimum or maximum, first or last time seen, days active), as SQL's `RANK()`.
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `measures`, `operator`, `options`, `prefilter`, `range`, `scan`.

use super::drive::evaluate;
use super::measures::{self, Counted, PerCustomer, Wanted};
use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, columns_of};
use crate::dict::Dicts;
use crate::model::{Columns, PropType};
use crate::plan::{CPred, Matcher, Resolver};
use crate::query::ParseError;
use crate::query::ast::{Measure, TopCustomers};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use jiff::tz::TimeZone;
use std::cmp::Ordering;
use std::ops::Range;

/// The measure, its property resolved.
#[derive(Clone, Copy)]
enum MeasureOp {
    Count,
    Sum(u32, PropType),
    Avg(u32, PropType),
    Min(u32, PropType),
    Max(u32, PropType),
    FirstSeen,
    LastSeen,
    DaysActive,
}

/// A customer's measure: exact integers (counts, days, microseconds) or floats (property
/// measures); one statement's values are all of one kind.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    fn cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Int(_), Value::Float(_)) => Ordering::Less,
            (Value::Float(_), Value::Int(_)) => Ordering::Greater,
        }
    }
}

pub(super) struct TopOp<'a> {
    measure: MeasureOp,
    step: Option<Matcher>,
    /// The step as a table by event id, when it tests event names only (no stage, no
    /// property): one look-up per row instead of the general matcher.
    step_events: Option<Vec<bool>>,
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    /// The calendar of `days_active` (`None`: UTC, days by division).
    tz: Option<TimeZone>,
    ascending: bool,
    limit: usize,
    dicts: &'a Dicts,
}

/// One worker's candidates (value, customer id): at most about twice `limit`, pruned to the
/// best `limit` as they grow; plus per-customer scratch space.
#[derive(Default)]
pub(super) struct TopPartial {
    ranked: Vec<(Value, u32)>,
    counted: Vec<usize>,
    values: Vec<f64>,
    days: Vec<i64>,
}

impl<'a> TopOp<'a> {
    /// Plans a TOP CUSTOMERS statement on `input`.
    pub(super) fn plan(top: &TopCustomers, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, top.common.tz.as_ref())?;
        let numeric = |name: &str, span| -> Result<(u32, PropType), QueryError> {
            let (id, ty) = res.prop(name, span)?;
            if !matches!(ty, PropType::I64 | PropType::F64) {
                return Err(
                    ParseError::new(span, format!("`{name}` is {ty}; this measure needs a number")).into(),
                );
            }
            Ok((id, ty))
        };
        let measure = match &top.measure {
            Measure::Count => MeasureOp::Count,
            Measure::FirstSeen => MeasureOp::FirstSeen,
            Measure::LastSeen => MeasureOp::LastSeen,
            Measure::DaysActive => MeasureOp::DaysActive,
            Measure::Sum(p, s) => numeric(p, *s).map(|(id, ty)| MeasureOp::Sum(id, ty))?,
            Measure::Avg(p, s) => numeric(p, *s).map(|(id, ty)| MeasureOp::Avg(id, ty))?,
            Measure::Min(p, s) => numeric(p, *s).map(|(id, ty)| MeasureOp::Min(id, ty))?,
            Measure::Max(p, s) => numeric(p, *s).map(|(id, ty)| MeasureOp::Max(id, ty))?,
        };
        let step = top.step.as_ref().map(|s| res.step(s)).transpose()?;
        let step_events = step.as_ref().and_then(|m| m.name_table(input.dicts.events.len()));
        Ok(TopOp {
            measure,
            step,
            step_events,
            filter: top.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range: res.range(&top.common.range)?,
            tz: (res.tz != TimeZone::UTC).then(|| res.tz.clone()),
            ascending: top.ascending,
            limit: top.limit.map_or(10, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            dicts: input.dicts,
        })
    }

    /// The ranking order: the better candidate first (value, then customer id ascending).
    fn order(&self, left: &(Value, u32), right: &(Value, u32)) -> Ordering {
        let by_value = if self.ascending {
            left.0.cmp(&right.0)
        } else {
            right.0.cmp(&left.0)
        };
        by_value.then_with(|| {
            let name = |cid: u32| self.dicts.customers.name(cid).unwrap_or_default();
            name(left.1).cmp(name(right.1))
        })
    }

    /// Keeps the best `limit` of `ranked` once it holds twice as many (amortised linear).
    fn prune(&self, ranked: &mut Vec<(Value, u32)>, force: bool) {
        if ranked.len() > self.limit && (force || ranked.len() >= self.limit.saturating_mul(2)) {
            ranked.select_nth_unstable_by(self.limit - 1, |a, b| self.order(a, b));
            ranked.truncate(self.limit);
        }
    }

    /// The local day (days since the epoch) of `ts` in the statement's calendar.
    fn day(&self, ts: i64) -> i64 {
        super::range::local_day(self.tz.as_ref(), ts)
    }

    /// A numeric property's value at row `index` (`None`: absent).
    fn number(rows: &Columns, (id, ty): (u32, PropType), index: usize) -> Option<f64> {
        let value = crate::plan::slot(rows, id, index)?;
        match ty {
            PropType::I64 => Some(value as i64 as f64),
            PropType::F64 => Some(f64::from_bits(value)),
            PropType::Str | PropType::Bool => None,
        }
    }

    /// The measure of one customer's counted events `counted` (`None`: not ranked).
    fn measure(&self, rows: &Columns, counted: &[usize], partial: &mut TopPartial) -> Option<Value> {
        let first = *counted.first()?;
        let last = *counted.last()?;
        let property = |m: MeasureOp| match m {
            MeasureOp::Sum(id, ty)
            | MeasureOp::Avg(id, ty)
            | MeasureOp::Min(id, ty)
            | MeasureOp::Max(id, ty) => Some((id, ty)),
            _ => None,
        };
        if let Some(prop) = property(self.measure) {
            let values = &mut partial.values;
            values.clear();
            values.extend(counted.iter().filter_map(|&i| Self::number(rows, prop, i)));
            // Ascending order: the sum does not depend on the order rows were written in.
            values.sort_unstable_by(f64::total_cmp);
            return self.of_values(values);
        }
        Some(match self.measure {
            MeasureOp::FirstSeen => Value::Int(rows.ts[first]),
            MeasureOp::LastSeen => Value::Int(rows.ts[last]),
            MeasureOp::DaysActive => {
                let days = &mut partial.days;
                days.clear();
                days.extend(counted.iter().map(|&i| self.day(rows.ts[i])));
                // Local days need not ascend with time (a zone may turn its clock back
                // across midnight).
                days.sort_unstable();
                days.dedup();
                Value::Int(days.len() as i64)
            }
            _ => Value::Int(counted.len() as i64),
        })
    }
}

impl TopOp<'_> {
    /// The rows this statement counts, and the measures its measure needs.
    fn counted_and_wanted(&self) -> (Counted<'_>, Wanted) {
        let counted = Counted {
            step: self.step.as_ref(),
            step_events: self.step_events.as_deref(),
            filter: self.filter.as_ref(),
            range: self.range,
            dicts: self.dicts,
        };
        let wanted = Wanted {
            first: matches!(self.measure, MeasureOp::FirstSeen),
            last: matches!(self.measure, MeasureOp::LastSeen),
            value: match self.measure {
                MeasureOp::Sum(id, ty)
                | MeasureOp::Avg(id, ty)
                | MeasureOp::Min(id, ty)
                | MeasureOp::Max(id, ty) => Some((id, ty)),
                _ => None,
            },
        };
        (counted, wanted)
    }

    /// The measure of the customer at `position` from the measures of every customer (as [`TopOp::measure`] from
    /// the customer's rows; `None`: not ranked).
    fn measure_of(&self, measures: &PerCustomer, position: usize) -> Option<Value> {
        let int = |value: i64| Some(Value::Int(value));
        let values = match self.measure {
            MeasureOp::Count => return int(measures.counts[position] as i64),
            MeasureOp::FirstSeen => return int(measures.first[position]),
            MeasureOp::LastSeen => return int(measures.last[position]),
            // Not measured by rows (see `by_rows`).
            MeasureOp::DaysActive => return None,
            MeasureOp::Sum(..) | MeasureOp::Avg(..) | MeasureOp::Min(..) | MeasureOp::Max(..) => {
                measures.values_of(position)
            }
        };
        self.of_values(values)
    }

    /// A property measure of a customer's `values`, ascending (`None`: no values, not ranked).
    fn of_values(&self, values: &[f64]) -> Option<Value> {
        let (&min, &max) = (values.first()?, values.last()?);
        let sum: f64 = values.iter().sum();
        let value = match self.measure {
            MeasureOp::Sum(..) => sum,
            MeasureOp::Avg(..) => sum / values.len() as f64,
            MeasureOp::Min(..) => min,
            _ => max,
        };
        // `+ 0.0` makes −0.0 zero: the ranking (a total order) must tie it with 0.
        Some(Value::Float(value + 0.0))
    }
}

impl Operator for TopOp<'_> {
    type Partial = TopPartial;

    fn by_rows(&self, input: &Input<'_>, opts: &QueryOptions) -> Result<Option<TopPartial>, QueryError> {
        if matches!(self.measure, MeasureOp::DaysActive) {
            // Distinct days need each customer's days together: as fast by the scan on several
            // segments, and 1.5× faster on one (where the scan merges nothing).
            return Ok(None);
        }
        let (counted, wanted) = self.counted_and_wanted();
        let Some(measured) = measures::measure(input, &counted, &wanted, opts)? else {
            return Ok(None);
        };
        let mut partial = TopPartial::default();
        for (k, &cid) in measured.cids.iter().enumerate() {
            if let Some(value) = self.measure_of(&measured, k) {
                partial.ranked.push((value, cid));
                self.prune(&mut partial.ranked, false);
            }
        }
        Ok(Some(partial))
    }

    fn columns(&self) -> ColumnSet {
        if self.filter.is_some() || self.step.as_ref().is_some_and(Matcher::uses_props) {
            return columns(true);
        }
        // Without a predicate the only property read is the measure's.
        match self.measure {
            MeasureOp::Sum(id, _) | MeasureOp::Avg(id, _) | MeasureOp::Min(id, _) | MeasureOp::Max(id, _) => {
                columns_of(&[id])
            }
            MeasureOp::Count | MeasureOp::FirstSeen | MeasureOp::LastSeen | MeasureOp::DaysActive => {
                columns(false)
            }
        }
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<TopPartial>, QueryError> {
        // Only customers with an event of the step (in the range's days) can be ranked.
        let only = self
            .step
            .as_ref()
            .and_then(|step| candidates(step, input.bitmaps, self.range));
        Ok(Prefilter::only(only))
    }

    fn customer(&self, partial: &mut TopPartial, rows: &Columns, run: Range<usize>) {
        let Some(&cid) = rows.cid.get(run.start) else {
            return;
        };
        let test = self.counted_and_wanted().0;
        let mut counted = std::mem::take(&mut partial.counted);
        counted.clear();
        counted.extend(run.filter(|&i| test.counts(rows, i)));
        if let Some(value) = self.measure(rows, &counted, partial) {
            partial.ranked.push((value, cid));
            let mut ranked = std::mem::take(&mut partial.ranked);
            self.prune(&mut ranked, false);
            partial.ranked = ranked;
        }
        partial.counted = counted;
    }

    fn footprint(&self, partial: &TopPartial) -> usize {
        partial.ranked.capacity() * 24
            + (partial.counted.capacity() + partial.values.capacity() + partial.days.capacity()) * 8
    }

    fn merge(&self, into: &mut TopPartial, from: TopPartial) {
        into.ranked.extend(from.ranked);
        let mut ranked = std::mem::take(&mut into.ranked);
        self.prune(&mut ranked, false);
        into.ranked = ranked;
    }

    fn finish(&self, partial: TopPartial, _: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        let mut ranked = partial.ranked;
        self.prune(&mut ranked, true);
        ranked.sort_by(|a, b| self.order(a, b));
        let mut t = Table::new(&["rank", "customer", "value"]);
        let mut rank = 0;
        for (position, &(value, cid)) in ranked.iter().enumerate() {
            // RANK(): a tie keeps the rank of the first of its values.
            if position == 0 || ranked[position - 1].0.cmp(&value) != Ordering::Equal {
                rank = position + 1;
            }
            let value = match (self.measure, value) {
                (MeasureOp::FirstSeen | MeasureOp::LastSeen, Value::Int(us)) => Cell::Time(us),
                (_, Value::Int(n)) => Cell::Int(n),
                (_, Value::Float(x)) => Cell::Float(x),
            };
            t.rows.push(vec![
                Cell::Int(rank as i64),
                Cell::Str(self.dicts.customers.name(cid).unwrap_or("?").to_owned()),
                value,
            ]);
        }
        Ok(t)
    }
}

/// Runs a TOP CUSTOMERS statement.
pub(super) fn top_customers(
    top: &TopCustomers,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&TopOp::plan(top, text, input)?, input, opts)
}
