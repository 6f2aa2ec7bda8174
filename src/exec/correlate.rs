//! CORRELATE: which events and event property values go with converting through a funnel —
//! for every feature, the customers who converted or dropped with it, an odds ratio, a p-value
//! (Fisher's exact test or the G-test) and a Benjamini–Hochberg cut; the drill-down to one
//! event's converted or dropped customers. docs/QUERY.md, CORRELATE.
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `funnel`, `labels`, `operator`, `options`, `scan`, `stats`.

use super::drive::evaluate;
use super::funnel::{FunnelOp, FunnelOutcome, Scratch};
use super::labels::{customer_table, slot_label};
use super::operator::{HashMap, Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::scan::{columns, gather};
use super::stats::{Table2, benjamini_hochberg};
use crate::dict::Dicts;
use crate::model::{Columns, PropType};
use crate::plan::{Resolver, slot};
use crate::query::ast::{Correlate, Drill};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;

/// The property id of an event feature (a real property id is below it).
const EVENT: u32 = u32::MAX;

/// A feature: (property id, value slot), or (`EVENT`, event id).
type Feature = (u32, u64);

pub(super) struct CorrelateOp<'a> {
    funnel: FunnelOp<'a>,
    significance: f64,
    /// The string and boolean event properties: their values are features.
    props: Vec<(u32, PropType)>,
    /// The drill-down: (the event's id, `None` when no event has the name; CONVERTED).
    drill: Option<(Option<u32>, bool)>,
    dicts: &'a Dicts,
}

/// One worker's counts: customers who converted and dropped, and per feature (converted
/// with it, dropped with it); the drill-down's customers; per-customer scratch.
#[derive(Default)]
pub(super) struct CorrelatePartial {
    converted: u64,
    dropped: u64,
    counts: HashMap<Feature, (u64, u64)>,
    members: RoaringBitmap,
    idx: Vec<usize>,
    seen: Vec<Feature>,
    scratch: Scratch,
    outcome: FunnelOutcome,
}

impl<'a> CorrelateOp<'a> {
    fn plan(
        correlate: &Correlate,
        drill: Option<(&str, bool)>,
        text: &str,
        input: &Input<'a>,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, correlate.funnel.common.tz.as_ref())?;
        let dicts = input.dicts;
        let props = (0..dicts.prop_types.len() as u32)
            .filter_map(|id| {
                let name = dicts.props.name(id)?;
                let ty = *dicts.prop_types.get(id as usize)?;
                let feature = !name.starts_with(crate::model::PROFILE_PREFIX)
                    && matches!(ty, PropType::Str | PropType::Bool);
                feature.then_some((id, ty))
            })
            .collect();
        Ok(CorrelateOp {
            funnel: FunnelOp::resolve(&correlate.funnel, &res, input)?,
            significance: correlate.significance,
            props,
            drill: drill.map(|(name, converted)| (input.dicts.events.get(name), converted)),
            dicts: input.dicts,
        })
    }

    /// The name and value of a feature.
    fn label(&self, (prop, value): Feature) -> (&'static str, String, Cell) {
        if prop == EVENT {
            let name = self.dicts.events.name(value as u32).unwrap_or("?");
            return ("event", name.to_owned(), Cell::Null);
        }
        let ty = (self.props.iter())
            .find(|p| p.0 == prop)
            .map_or(PropType::Str, |p| p.1);
        let name = self.dicts.props.name(prop).unwrap_or("?").to_owned();
        (
            "property",
            name,
            Cell::Str(slot_label(Some(value), ty, self.dicts)),
        )
    }

    /// The customer's features in its funnel window, into `partial.seen` (sorted, distinct);
    /// `None` when it did not enter the funnel, else whether it converted.
    fn features(&self, partial: &mut CorrelatePartial, rows: &Columns, run: Range<usize>) -> Option<bool> {
        let CorrelatePartial {
            idx,
            seen,
            scratch,
            outcome,
            ..
        } = partial;
        self.funnel.events(rows, run, idx);
        let (converted, start, end) = self.funnel.window(rows, idx, (scratch, outcome))?;
        seen.clear();
        for &i in idx.iter() {
            let t = rows.ts[i];
            if t < start {
                continue;
            }
            if t > end {
                break;
            }
            if !self.funnel.is_step_event(rows, i) {
                seen.push((EVENT, u64::from(rows.event[i])));
            }
            for &(id, _) in &self.props {
                if let Some(value) = slot(rows, id, i) {
                    seen.push((id, value));
                }
            }
        }
        seen.sort_unstable();
        seen.dedup();
        Some(converted)
    }
}

impl Operator for CorrelateOp<'_> {
    type Partial = CorrelatePartial;

    fn columns(&self) -> ColumnSet {
        columns(true)
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<CorrelatePartial>, QueryError> {
        Ok(Prefilter::only(self.funnel.entry_candidates(input)))
    }

    fn customer(&self, partial: &mut CorrelatePartial, rows: &Columns, run: Range<usize>) {
        let Some(&cid) = rows.cid.get(run.start) else {
            return;
        };
        let Some(converted) = self.features(partial, rows, run) else {
            return;
        };
        if let Some((event, want)) = self.drill {
            let has = event.is_some_and(|e| partial.seen.binary_search(&(EVENT, u64::from(e))).is_ok());
            if has && converted == want {
                partial.members.insert(cid);
            }
            return;
        }
        if converted {
            partial.converted += 1;
        } else {
            partial.dropped += 1;
        }
        for &feature in &partial.seen {
            let entry = partial.counts.entry(feature).or_default();
            if converted {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }

    fn footprint(&self, partial: &CorrelatePartial) -> usize {
        partial.counts.capacity() * 40 + partial.members.serialized_size() + partial.idx.capacity() * 8
    }

    fn merge(&self, into: &mut CorrelatePartial, from: CorrelatePartial) {
        into.converted += from.converted;
        into.dropped += from.dropped;
        for (feature, (c, d)) in from.counts {
            let entry = into.counts.entry(feature).or_default();
            entry.0 += c;
            entry.1 += d;
        }
        into.members |= from.members;
    }

    fn finish(
        &self,
        partial: CorrelatePartial,
        _: &Input<'_>,
        _: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let tested: Vec<(Feature, Table2, f64, f64)> = (partial.counts.into_iter())
            .map(|(feature, (a, c))| {
                let table = Table2 {
                    a,
                    b: partial.converted - a,
                    c,
                    d: partial.dropped - c,
                };
                (feature, table, table.odds_ratio(), table.p_value())
            })
            .collect();
        let p: Vec<f64> = tested.iter().map(|t| t.3).collect();
        let kept = benjamini_hochberg(&p, self.significance);
        let mut rows: Vec<_> = tested
            .into_iter()
            .map(|(feature, table, odds, p)| {
                let (kind, name, value) = self.label(feature);
                // The value's tie-break text, made once (not per comparison).
                let order = format!("{value:?}");
                (p, odds, kind, name, value, table, order)
            })
            .collect();
        // Strongest first: smallest p-value, then the odds ratio furthest from 1, then names.
        rows.sort_by(|x, y| {
            x.0.total_cmp(&y.0)
                .then_with(|| y.1.ln().abs().total_cmp(&x.1.ln().abs()))
                .then_with(|| (x.2, &x.3, &x.6).cmp(&(y.2, &y.3, &y.6)))
        });
        rows.truncate(kept);
        let mut t = Table::new(&[
            "kind",
            "name",
            "value",
            "converted",
            "dropped",
            "odds_ratio",
            "p_value",
            "direction",
        ]);
        for (p, odds, kind, name, value, table, _) in rows {
            let direction = if odds > 1.0 { "success" } else { "failure" };
            t.rows.push(vec![
                Cell::Str(kind.to_owned()),
                Cell::Str(name),
                value,
                Cell::Int(table.a as i64),
                Cell::Int(table.c as i64),
                Cell::Float(odds),
                Cell::Float(p),
                Cell::Str(direction.to_owned()),
            ]);
        }
        Ok(t)
    }
}

/// Runs a CORRELATE statement.
pub(super) fn correlate(
    correlate: &Correlate,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&CorrelateOp::plan(correlate, None, text, input)?, input, opts)
}

/// `CUSTOMERS CORRELATE … EVENT 'x' CONVERTED|DROPPED`.
pub(super) fn correlate_customers(
    drill: &Drill,
    limit: Option<u64>,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let Drill::Correlate {
        correlate,
        event,
        converted,
    } = drill
    else {
        return Ok(Table::new(&["customer"]));
    };
    let op = CorrelateOp::plan(correlate, Some((&event.0, *converted)), text, input)?;
    let members = gather(&op, input, opts)?.members;
    Ok(customer_table(&members, input.dicts, limit, opts.rows_max))
}
