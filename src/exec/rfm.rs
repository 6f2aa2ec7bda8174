//! RFM: every customer's recency, frequency and monetary value over the events of a step,
//! scored 1–5 against the other customers and mapped to named segments (docs/QUERY.md, RFM).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `measures`, `operator`, `options`, `prefilter`, `scan`.

use std::ops::Range;

use roaring::RoaringBitmap;

use super::drive::evaluate;
use super::measures::{self, Counted, Wanted};
use super::operator::{Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, columns_of};
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

/// Every customer's score for one measure (`keys[i]` is customer i's value as a key that
/// orders as the value): 1 + ⌊5 × (the customers with a strictly smaller value) / N⌋ —
/// quintiles by rank, equal values equal scores, so the answer never depends on the order
/// customers are read in.
///
/// No sort: with b(x) the customers strictly below x, the score passes s + 1 exactly when
/// 5·b(x) ≥ s·N, that is b(x) ≥ t = ⌈s·N/5⌉, that is x is above the t-th smallest key. So four
/// selections (linear each) find the edges, and a customer's score is 1 + the edges below it.
fn scores(keys: Vec<u64>) -> Vec<u8> {
    let customers = keys.len();
    let mut work = keys.clone();
    let mut edges = Vec::with_capacity(4);
    for step in 1..=4 {
        let rank = (step * customers).div_ceil(5);
        if rank > 0 {
            let (_, &mut edge, _) = work.select_nth_unstable(rank - 1);
            edges.push(edge);
        }
    }
    keys.iter()
        .map(|&key| 1 + edges.iter().filter(|&&edge| key > edge).count() as u8)
        .collect()
}

/// An `i64` as a key that orders as it does.
fn int_key(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// An `f64` as a key that orders as `f64::total_cmp` does.
fn float_key(value: f64) -> u64 {
    let bits = value.to_bits();
    // Negative values: every bit flipped (larger magnitudes first); others: the sign set.
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
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

    /// The rows this statement counts (the step's, passing the filter, in the range).
    fn counted(&self) -> Counted<'_> {
        Counted {
            step: Some(&self.step),
            step_events: self.step_events.as_deref(),
            filter: self.filter.as_ref(),
            range: self.range,
            dicts: self.dicts,
        }
    }

    /// Every customer's scores and segment (customer ids ascending).
    fn scored(mut customers: Vec<Measures>) -> Vec<Scored> {
        customers.sort_unstable_by_key(|m| m.cid);
        // A more recent last event is better: it has the more customers below it.
        let r = scores(customers.iter().map(|m| int_key(m.last)).collect());
        let f = scores(customers.iter().map(|m| m.frequency).collect());
        let m = scores(customers.iter().map(|m| float_key(m.monetary)).collect());
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

    fn by_rows(&self, input: &Input<'_>, opts: &QueryOptions) -> Result<Option<RfmPartial>, QueryError> {
        let counted = self.counted();
        let wanted = Wanted {
            first: false,
            last: true,
            value: Some(self.value),
        };
        let measured = measures::measure(input, &counted, &wanted, opts)?;
        Ok(measured.map(|measured| RfmPartial {
            customers: (measured.cids.iter().enumerate())
                .map(|(k, &cid)| Measures {
                    cid,
                    last: measured.last[k],
                    frequency: measured.counts[k],
                    // Ascending, `+ 0.0`: as the customer step sums.
                    monetary: measured.values_of(k).iter().sum::<f64>() + 0.0,
                })
                .collect(),
            values: Vec::new(),
        }))
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
        let test = self.counted();
        for i in run {
            if !test.counts(rows, i) {
                continue;
            }
            // Rows come in time order: the last counted one is the latest.
            last = rows.ts[i];
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
        // Per segment: its customers, and the sums of the six measures — added in customer-id
        // order, the same for every run.
        let mut sums = vec![(0usize, [0f64; 6]); RFM_SEGMENTS.len()];
        for s in &scored {
            let (members, sum) = &mut sums[s.segment];
            *members += 1;
            let measures = [
                (now - s.measures.last) as f64 / model::DAY_US as f64,
                s.measures.frequency as f64,
                s.measures.monetary,
                f64::from(s.r),
                f64::from(s.f),
                f64::from(s.m),
            ];
            for (into, value) in sum.iter_mut().zip(measures) {
                *into += value;
            }
        }
        for (name, &(n, sum)) in RFM_SEGMENTS.iter().zip(&sums) {
            let share = match total {
                0 => Cell::Null,
                _ => Cell::Rate(n as f64 / total as f64),
            };
            let mut row = vec![Cell::Str((*name).to_owned()), Cell::Int(n as i64), share];
            row.extend(sum.iter().map(|&sum| match n {
                0 => Cell::Null,
                _ => Cell::Float(sum / n as f64),
            }));
            t.rows.push(row);
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

#[cfg(test)]
mod tests {
    use super::super::operator::Operator;
    use super::super::options::{Input, QueryOptions};
    use super::super::scan::{scan_customers, scanned};
    use super::super::top::TopOp;
    use super::RfmOp;
    use crate::db::{Db, Options, Snapshot};
    use crate::model::Event;
    use crate::query::ast::Statement;
    use crate::result::Table;
    use proptest::prelude::*;

    /// The statement answered by the order-free pass and by the customer scan.
    fn both_ways<O: Operator>(op: &O, input: &Input<'_>, threads: usize) -> (Option<Table>, Table) {
        let opts = QueryOptions {
            threads,
            ..QueryOptions::default()
        };
        let by_rows = op.by_rows(input, &opts).unwrap();
        let by_rows = by_rows.map(|state| op.finish(state, input, &opts).unwrap());
        let scanned = scanned(op, input, &opts, scan_customers::<O>).unwrap();
        (by_rows, op.finish(scanned, input, &opts).unwrap())
    }

    fn check(snapshot: &Snapshot, text: &str) -> Result<(), TestCaseError> {
        let dicts = snapshot.dicts();
        let input = Input::of(snapshot, &dicts);
        for threads in [1, 2] {
            let (by_rows, scanned) = match crate::query::parse(text).unwrap() {
                Statement::Top(top) => both_ways(&TopOp::plan(&top, text, &input).unwrap(), &input, threads),
                Statement::Rfm(rfm) => both_ways(&RfmOp::plan(&rfm, text, &input).unwrap(), &input, threads),
                _ => unreachable!("{text}"),
            };
            match by_rows {
                Some(by_rows) => prop_assert_eq!(&by_rows, &scanned, "{} on {} threads", text, threads),
                // Distinct days are left to the scan.
                None => prop_assert!(text.contains("days_active"), "{} not answered by rows", text),
            }
        }
        Ok(())
    }

    /// A pass whose state would outgrow the query's memory budget gives way to the customer
    /// scan (which holds one customer's values at a time), and the answer is the same.
    #[test]
    fn by_rows_over_the_budget_leaves_the_statement_to_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
        let events: Vec<Event> = (0..300)
            .map(|i| Event::new(format!("c{}", i % 7), i * 1_000, "a").with_prop("amt", i as f64 * 0.1))
            .collect();
        db.commit(&events).unwrap();
        db.flush().unwrap();
        let snapshot = db.snapshot();
        let dicts = snapshot.dicts();
        let input = Input::of(&snapshot, &dicts);
        let text = "TOP CUSTOMERS BY sum(amt) OF a LIMIT 3";
        let Statement::Top(top) = crate::query::parse(text).unwrap() else {
            unreachable!()
        };
        let op = TopOp::plan(&top, text, &input).unwrap();
        // The values' first chunk alone holds 1 MiB; the dense counts of 7 customers fit.
        let small = QueryOptions {
            memory_max: 128 << 10,
            threads: 1,
            ..QueryOptions::default()
        };
        assert!(op.by_rows(&input, &small).unwrap().is_none());
        assert!(op.by_rows(&input, &QueryOptions::default()).unwrap().is_some());
        let scanned = scanned(&op, &input, &small, scan_customers::<TopOp<'_>>).unwrap();
        let by_rows = op.by_rows(&input, &QueryOptions::default()).unwrap().unwrap();
        assert_eq!(
            op.finish(scanned, &input, &small).unwrap(),
            op.finish(by_rows, &input, &small).unwrap()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

        /// The sort keys order as the values do (floats as `total_cmp`: −0.0 below 0.0).
        #[test]
        fn keys_order_as_their_values(a in any::<i64>(), b in any::<i64>(), x in any::<f64>(), y in any::<f64>()) {
            prop_assert_eq!(super::int_key(a).cmp(&super::int_key(b)), a.cmp(&b));
            prop_assert_eq!(super::float_key(x).cmp(&super::float_key(y)), x.total_cmp(&y));
            for (x, y) in [(-0.0, 0.0), (-1.5, -0.25), (f64::NEG_INFINITY, -1e308), (1e-300, 2.0)] {
                prop_assert_eq!(super::float_key(x).cmp(&super::float_key(y)), x.total_cmp(&y));
            }
        }

        /// TOP CUSTOMERS and RFM read by rows, source by source, give exactly what the
        /// customer scan gives from each customer's merged rows: several segments, rows not
        /// yet flushed, ties, values in any order (sums added in ascending order), −0.0,
        /// missing values, time zones.
        #[test]
        fn by_rows_equals_the_customer_scan(
            rows in proptest::collection::vec((0u8..9, 0i64..40, 0u8..4, proptest::option::of(-3i8..6), any::<bool>()), 1..120),
            flush_every in 1usize..40,
            which in 0usize..3,
            filtered in any::<bool>(),
            ranged in any::<bool>(),
            forgotten in proptest::option::of(0u8..9),
        ) {
            let mut rows = rows;
            // `amt` exists (a statement naming an unknown property is an error).
            rows[0].3 = rows[0].3.or(Some(1));
            let dir = tempfile::tempdir().unwrap();
            let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
            for (k, chunk) in rows.chunks(flush_every).enumerate() {
                let events: Vec<Event> = chunk
                    .iter()
                    .map(|&(customer, hour, event, amount, x)| {
                        let mut e = Event::new(format!("c{customer}"), hour * 3_600_000_000 + 1_000, ["a", "b", "c", "d"][event as usize])
                            .with_prop("ch", if x { "x" } else { "y" });
                        if let Some(amount) = amount {
                            // Tenths (whose sums round differently in different orders), and
                            // −0.0 (which must tie with 0).
                            let value = if amount == 0 && x { -0.0 } else { f64::from(amount) * 0.1 + 0.7 };
                            e = e.with_prop("amt", value);
                        }
                        e
                    })
                    .collect();
                db.commit(&events).unwrap();
                // The last chunk stays in the buffer.
                if k + 1 < rows.len().div_ceil(flush_every) {
                    db.flush().unwrap();
                }
            }
            let step = ["a", "a OR b", "ANY"][which];
            let mut common = String::new();
            if ranged {
                common += " FROM '1970-01-01T05:00:00Z' TO '1970-01-02T10:00:00Z'";
            }
            if filtered {
                common += " WHERE ch = 'x'";
            }
            // A customer erased and not yet compacted away: segments read with a mask.
            if let Some(customer) = forgotten {
                db.forget_customer(&format!("c{customer}")).unwrap();
            }
            let snapshot = db.snapshot();
            for measure in ["count", "sum(amt)", "avg(amt)", "min(amt)", "max(amt)", "first_seen", "last_seen", "days_active"] {
                check(&snapshot, &format!("TOP CUSTOMERS BY {measure} OF {step} LIMIT 4{common}"))?;
                check(&snapshot, &format!("TOP CUSTOMERS BY {measure} OF {step} ASC LIMIT 100{common}"))?;
            }
            check(&snapshot, &format!("TOP CUSTOMERS BY days_active LIMIT 5{common} TZ 'America/New_York'"))?;
            if which < 2 {
                check(&snapshot, &format!("RFM OF {step} VALUE amt{common}"))?;
            }
        }
    }
}
