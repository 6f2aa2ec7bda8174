//! RFM: every customer's recency, frequency and monetary value over the events of a step,
//! scored 1–5 against the other customers and mapped to named segments (docs/QUERY.md, RFM).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `operator`, `options`, `prefilter`, `scan`.

use std::ops::Range;

use roaring::RoaringBitmap;

use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, columns_of, evaluate, passes};
use crate::dict::Dicts;
use crate::model::{self, Columns, PropType};
use crate::plan::{CPred, Matcher, Resolver, slot};
use crate::query::ParseError;
use crate::query::ast::{RFM_SEGMENTS, Rfm};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

/// One customer's measures: the last counted event's time, the number of counted events, the
/// sum of the value property over them.
#[derive(Clone, Copy, Debug)]
struct Measures {
    cid: u32,
    last: i64,
    frequency: u64,
    monetary: f64,
}

/// A customer's scores (1–5 each) and segment (index into [`RFM_SEGMENTS`]).
#[derive(Clone, Copy, Debug)]
struct Scored {
    measures: Measures,
    r: u8,
    f: u8,
    m: u8,
    segment: usize,
}

pub(super) struct RfmOp<'a> {
    step: Matcher,
    /// The step by event id, when it tests names only (see `Matcher::name_table`).
    step_events: Option<Vec<bool>>,
    value: (u32, PropType),
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    dicts: &'a Dicts,
}

/// The customers' measures, and scratch space for the values of one customer.
#[derive(Default)]
pub(super) struct RfmPartial {
    customers: Vec<Measures>,
    values: Vec<f64>,
}

/// The segment of an (R, F) score pair: the widely used map of ten segments (champions R 5 and
/// F 4–5, loyal customers R 3–4 and F 4–5, …; docs/QUERY.md lists every pair).
fn segment_of(recency: u8, frequency: u8) -> usize {
    let name = match (recency, frequency) {
        (5, 4..=5) => "champions",
        (3..=4, 4..=5) => "loyal_customers",
        (4..=5, 2..=3) => "potential_loyalists",
        (5, 1) => "new_customers",
        (4, 1) => "promising",
        (3, 3) => "need_attention",
        (3, 1..=2) => "about_to_sleep",
        (1..=2, 5) => "cant_lose",
        (1..=2, 3..=4) => "at_risk",
        _ => "hibernating",
    };
    RFM_SEGMENTS
        .iter()
        .position(|s| *s == name)
        .unwrap_or(RFM_SEGMENTS.len() - 1)
}

/// Every customer's score for one measure (`values[i]` is customer i's): 1 + ⌊5 × (the
/// customers with a strictly smaller value) / N⌋ — quintiles by rank, equal values equal scores,
/// so the answer never depends on the order customers are read in. One sort, then one walk.
fn scores<T: Copy>(values: &[T], cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<u8> {
    let n = values.len().max(1) as u64;
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| cmp(&values[a as usize], &values[b as usize]));
    let mut out = vec![0u8; values.len()];
    let mut below = 0;
    for (position, &i) in order.iter().enumerate() {
        // A new value: every customer before it is strictly below.
        if position > 0 && cmp(&values[order[position - 1] as usize], &values[i as usize]).is_lt() {
            below = position as u64;
        }
        out[i as usize] = 1 + (5 * below / n) as u8;
    }
    out
}

impl<'a> RfmOp<'a> {
    fn plan(rfm: &Rfm, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, rfm.common.tz.as_ref())?;
        let (name, span) = (&rfm.value.0, rfm.value.1);
        let value = res.prop(name, span)?;
        if !matches!(value.1, PropType::I64 | PropType::F64) {
            let why = format!("`{name}` is {}; the monetary value needs a number", value.1);
            return Err(ParseError::new(span, why).into());
        }
        let step = res.step(&rfm.step)?;
        Ok(RfmOp {
            step_events: step.name_table(input.dicts.events.len()),
            step,
            value,
            filter: rfm.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range: res.range(&rfm.common.range)?,
            dicts: input.dicts,
        })
    }

    /// Every customer's scores and segment (customer ids ascending).
    fn scored(mut customers: Vec<Measures>) -> Vec<Scored> {
        customers.sort_unstable_by_key(|m| m.cid);
        // A more recent last event is better: it has the more customers below it.
        let lasts: Vec<i64> = customers.iter().map(|m| m.last).collect();
        let frequencies: Vec<u64> = customers.iter().map(|m| m.frequency).collect();
        let monetary: Vec<f64> = customers.iter().map(|m| m.monetary).collect();
        let r = scores(&lasts, Ord::cmp);
        let f = scores(&frequencies, Ord::cmp);
        let m = scores(&monetary, f64::total_cmp);
        (customers.into_iter().enumerate())
            .map(|(i, measures)| Scored {
                measures,
                r: r[i],
                f: f[i],
                m: m[i],
                segment: segment_of(r[i], f[i]),
            })
            .collect()
    }
}

impl Operator for RfmOp<'_> {
    type Partial = RfmPartial;

    fn columns(&self) -> ColumnSet {
        if self.filter.is_some() || self.step.uses_props() {
            columns(true)
        } else {
            columns_of(&[self.value.0])
        }
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<RfmPartial>, QueryError> {
        Ok(Prefilter::only(candidates(&self.step, input.bitmaps, self.range)))
    }

    fn customer(&self, partial: &mut RfmPartial, rows: &Columns, run: Range<usize>) {
        let Some(&cid) = rows.cid.get(run.start) else {
            return;
        };
        let mut values = std::mem::take(&mut partial.values);
        values.clear();
        let (mut last, mut frequency) = (0, 0u64);
        for i in run {
            let ts = rows.ts[i];
            let step = match &self.step_events {
                Some(table) => table.get(rows.event[i] as usize).copied().unwrap_or(false),
                None => self.step.matches(rows, i, self.dicts),
            };
            if self.range.is_some_and(|(lo, hi)| ts < lo || ts >= hi)
                || !step
                || !passes(&self.filter, rows, i, self.dicts)
            {
                continue;
            }
            // Rows come in time order: the last counted one is the latest.
            last = ts;
            frequency += 1;
            if let Some(x) = slot(rows, self.value.0, i) {
                values.push(match self.value.1 {
                    PropType::I64 => x as i64 as f64,
                    _ => f64::from_bits(x),
                });
            }
        }
        if frequency > 0 {
            // Ascending order: the sum does not depend on the order rows were written in.
            values.sort_unstable_by(f64::total_cmp);
            partial.customers.push(Measures {
                cid,
                last,
                frequency,
                // `+ 0.0`: an empty sum is −0.0, which must equal a sum of zeros when scored.
                monetary: values.iter().sum::<f64>() + 0.0,
            });
        }
        partial.values = values;
    }

    fn footprint(&self, partial: &RfmPartial) -> usize {
        partial.customers.capacity() * std::mem::size_of::<Measures>() + partial.values.capacity() * 8
    }

    fn merge(&self, into: &mut RfmPartial, from: RfmPartial) {
        into.customers.extend(from.customers);
    }

    fn finish(&self, partial: RfmPartial, input: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        // "Now": the end of the range, else the latest event of the database.
        let now = match self.range {
            Some((_, hi)) => hi,
            None => input.ts_range.map_or(0, |(_, latest)| latest),
        };
        let scored = Self::scored(partial.customers);
        let total = scored.len();
        let mut t = Table::new(&[
            "segment",
            "customers",
            "share",
            "recency_days",
            "frequency",
            "monetary",
            "r",
            "f",
            "m",
        ]);
        for (k, name) in RFM_SEGMENTS.iter().enumerate() {
            let members: Vec<&Scored> = scored.iter().filter(|s| s.segment == k).collect();
            let n = members.len();
            let mean = |f: &dyn Fn(&Scored) -> f64| {
                if n == 0 {
                    return Cell::Null;
                }
                // Summed in customer-id order: the same for every run.
                Cell::Float(members.iter().map(|s| f(s)).sum::<f64>() / n as f64)
            };
            t.rows.push(vec![
                Cell::Str((*name).to_owned()),
                Cell::Int(n as i64),
                if total == 0 {
                    Cell::Null
                } else {
                    Cell::Rate(n as f64 / total as f64)
                },
                mean(&|s| (now - s.measures.last) as f64 / model::DAY_US as f64),
                mean(&|s| s.measures.frequency as f64),
                mean(&|s| s.measures.monetary),
                mean(&|s| f64::from(s.r)),
                mean(&|s| f64::from(s.f)),
                mean(&|s| f64::from(s.m)),
            ]);
        }
        Ok(t)
    }
}

/// Runs an RFM statement.
pub(super) fn rfm(
    rfm: &Rfm,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&RfmOp::plan(rfm, text, input)?, input, opts)
}

/// The customers of RFM segment `segment` (`CUSTOMERS RFM … SEGMENT name`).
pub(super) fn segment_members(
    rfm: &Rfm,
    segment: &str,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<RoaringBitmap, QueryError> {
    let op = RfmOp::plan(rfm, text, input)?;
    let k = RFM_SEGMENTS
        .iter()
        .position(|s| *s == segment)
        .unwrap_or(usize::MAX);
    let partial = super::scan::gather(&op, input, opts)?;
    Ok(RfmOp::scored(partial.customers)
        .into_iter()
        .filter(|s| s.segment == k)
        .map(|s| s.measures.cid)
        .collect())
}
