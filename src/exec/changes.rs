//! CHANGES: each group's change of a TREND aggregate from one bucket to the next, and its share
//! of the total change (docs/QUERY.md, CHANGES). The TREND operator computes the (group,
//! bucket) states over the range and one bucket before it; this room compares them.
//!
//! Uses: `model`, `query`, `result`, `segment`; rooms `drive`, `operator`, `options`, `scan`, `trend`.

use std::ops::Range;

use crate::exec::drive::evaluate;
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions};
use crate::exec::trend::{AggState, TrendOp, TrendPartial};
use crate::model::Columns;
use crate::query::ast::{Agg, Changes};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

/// CHANGES runs TREND's operator and compares its buckets in `finish`.
struct ChangesOp<'a> {
    trend: TrendOp<'a>,
}

/// One reported row before ranking: the group's labels and its cells.
struct Change {
    labels: Vec<String>,
    value: Cell,
    previous: Cell,
    change: Cell,
    contribution: Cell,
}

impl Change {
    /// |change| for ranking (`None`: no change can be computed, ranked last).
    fn size(&self) -> Option<f64> {
        number(&self.change).map(f64::abs)
    }
}

/// A mean's (numerator, denominator) of a state.
type Ratio = fn(&AggState) -> (f64, f64);

/// A numeric cell's value.
fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(n) => Some(*n as f64),
        Cell::Float(x) => Some(*x),
        _ => None,
    }
}

/// `value − previous`: an integer for counts, a float otherwise, NULL when either is NULL.
fn difference(value: &Cell, previous: &Cell) -> Cell {
    match (value, previous) {
        (Cell::Int(now), Cell::Int(before)) => Cell::Int(now - before),
        _ => match (number(value), number(previous)) {
            (Some(now), Some(before)) => Cell::Float(now - before),
            _ => Cell::Null,
        },
    }
}

/// A distinct count's share of the customers: Σⱼ (customers in j groups) / j.
fn share(state: &AggState) -> f64 {
    (state.split.iter().enumerate())
        .map(|(j, customers)| *customers as f64 / (j as f64 + 1.0))
        .sum()
}

impl ChangesOp<'_> {
    /// The bucket's total over every group. Event-level counts add up; a distinct count is
    /// Σⱼ (customers counted in j groups, over all groups) / j, which counts each customer once.
    fn total<'s>(&self, states: impl Iterator<Item = &'s AggState>) -> AggState {
        let mut total = AggState::default();
        for state in states {
            total.add(state.clone());
        }
        if matches!(self.trend.agg, Agg::Uniq | Agg::Wau | Agg::Mau) {
            total.customers = (total.split.iter().enumerate())
                .map(|(j, customers)| customers / (j as u64 + 1))
                .sum();
        }
        total
    }

    /// The group's part of the total's change from `before` to `now` (the states of the group
    /// and of the total in the two buckets); `None` for min, max and percentiles, which no sum
    /// of parts makes. Counts and sums add up over groups, so the part is the group's own
    /// change; a distinct count's part is the change of its share (each customer counts 1/j in
    /// each of its j groups). A mean (avg, bounce_rate, nps) is Σ w·a over groups, w the
    /// group's share of the denominator and a its mean: its part is the shift-share sum of a
    /// rate effect w̄·Δa and a mix effect (ā − T̄)·Δw, T̄ the total's mean of the two buckets
    /// (Σ Δw = 0 makes the parts add up to ΔT).
    fn part(&self, before: &AggState, now: &AggState, totals: [&AggState; 2]) -> Option<f64> {
        let Some(ratio) = self.ratio() else {
            return match &self.trend.agg {
                Agg::Count | Agg::Sessions => Some(now.events as f64 - before.events as f64),
                Agg::Sum(..) => Some(now.sum - before.sum),
                Agg::Uniq | Agg::Wau | Agg::Mau => Some(share(now) - share(before)),
                _ => None,
            };
        };
        let [(total_before, all_before), (total_now, all_now)] = totals.map(ratio);
        if all_before == 0.0 || all_now == 0.0 {
            return None;
        }
        let ((sum_before, weight_before), (sum_now, weight_now)) = (ratio(before), ratio(now));
        // A group without values in one bucket has no mean there; any number serves, as its
        // weight there is 0 and the rate and mix terms then sum to the same part.
        let mean = |sum: f64, weight: f64| if weight > 0.0 { sum / weight } else { 0.0 };
        let (mean_before, mean_now) = (mean(sum_before, weight_before), mean(sum_now, weight_now));
        let (share_before, share_now) = (weight_before / all_before, weight_now / all_now);
        let total_mean = (total_before / all_before + total_now / all_now) / 2.0;
        let rate = (share_before + share_now) / 2.0 * (mean_now - mean_before);
        let mix = ((mean_before + mean_now) / 2.0 - total_mean) * (share_now - share_before);
        Some(rate + mix)
    }

    /// For a mean, a state's (numerator, denominator): the mean is their ratio.
    fn ratio(&self) -> Option<Ratio> {
        match &self.trend.agg {
            Agg::Avg(..) => Some(|state| (state.sum, state.n as f64)),
            Agg::BounceRate => Some(|state| (state.bounces as f64, state.events as f64)),
            Agg::Nps(..) => Some(|state| {
                let responses = state.promoters + state.passives + state.detractors;
                (
                    100.0 * (state.promoters as f64 - state.detractors as f64),
                    responses as f64,
                )
            }),
            _ => None,
        }
    }

    /// The rows of bucket `bucket` (> the first), ranked by |change| and cut to `TOP n`.
    fn bucket_rows(
        &self,
        partial: &TrendPartial,
        groups: &[(Vec<String>, Option<u64>)],
        bucket: usize,
    ) -> (Vec<Change>, Cell) {
        let empty = AggState::default();
        let state = |group: Option<u64>, at: usize| partial.get(&(group, at));
        let totals = [bucket - 1, bucket]
            .map(|at| self.total(groups.iter().filter_map(|(_, group)| state(*group, at))));
        let total_values = totals.each_ref().map(|total| self.trend.aggregate(total));
        let total_change = difference(&total_values[1], &total_values[0]);
        let denominator = number(&total_change).filter(|&change| change != 0.0);
        let mut rows: Vec<Change> = Vec::new();
        for (labels, group) in groups {
            let (before, now) = (state(*group, bucket - 1), state(*group, bucket));
            if before.is_none() && now.is_none() {
                continue;
            }
            let (before, now) = (before.unwrap_or(&empty), now.unwrap_or(&empty));
            let (value, previous) = (self.trend.aggregate(now), self.trend.aggregate(before));
            let part = self.part(before, now, [&totals[0], &totals[1]]);
            let contribution = match (part, denominator) {
                (Some(part), Some(total)) => Cell::Float(part / total),
                _ => Cell::Null,
            };
            rows.push(Change {
                labels: labels.clone(),
                change: difference(&value, &previous),
                value,
                previous,
                contribution,
            });
        }
        rows.sort_by(|a, b| {
            let by_size = match (a.size(), b.size()) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_size.then_with(|| a.labels.cmp(&b.labels))
        });
        if let Some(top) = self.trend.top {
            rows.truncate(top as usize);
        }
        (rows, total_change)
    }
}

impl Operator for ChangesOp<'_> {
    type Partial = TrendPartial;

    fn columns(&self) -> ColumnSet {
        self.trend.columns()
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<TrendPartial>, QueryError> {
        self.trend.prefilter(input)
    }

    fn customer(&self, partial: &mut TrendPartial, rows: &Columns, run: Range<usize>) {
        self.trend.customer(partial, rows, run);
    }

    const READS_PARTS: bool = <TrendOp<'_> as Operator>::READS_PARTS;

    fn customer_in_parts<'r>(
        &self,
        partial: &mut TrendPartial,
        parts: impl Iterator<Item = (&'r Columns, Range<usize>)>,
    ) {
        self.trend.customer_in_parts(partial, parts);
    }

    fn footprint(&self, partial: &TrendPartial) -> usize {
        self.trend.footprint(partial)
    }

    fn merge(&self, into: &mut TrendPartial, from: TrendPartial) {
        self.trend.merge(into, from);
    }

    fn finish(
        &self,
        partial: TrendPartial,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        self.trend.check_scores(&partial, input)?;
        let Some(by) = &self.trend.by else {
            return Err(QueryError::Internal("CHANGES without BY".into()));
        };
        let mut groups: Vec<(Vec<String>, Option<u64>)> = partial
            .group_slots()
            .into_iter()
            .map(|group| (by.labels(group, input.dicts), group))
            .collect();
        groups.sort();
        let mut columns = vec!["bucket", "group"];
        if by.is_pair() {
            columns.push("group2");
        }
        columns.extend(["value", "previous", "change", "contribution", "total_change"]);
        let mut table = Table::new(&columns);
        let buckets = &self.trend.buckets;
        for bucket in self.trend.first + 1..buckets.len() {
            let (rows, total_change) = self.bucket_rows(&partial, &groups, bucket);
            if table.rows.len() + rows.len() > opts.rows_max {
                return Err(QueryError::TooManyRows(opts.rows_max));
            }
            for row in rows {
                let mut cells = vec![Cell::Str(buckets.label(bucket))];
                cells.extend(row.labels.into_iter().map(Cell::Str));
                cells.extend([
                    row.value,
                    row.previous,
                    row.change,
                    row.contribution,
                    total_change.clone(),
                ]);
                table.rows.push(cells);
            }
        }
        Ok(table)
    }
}

/// Runs a CHANGES statement.
pub(super) fn changes(
    statement: &Changes,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let trend = TrendOp::plan(&statement.trend, text, input, true)?;
    evaluate(&ChangesOp { trend }, input, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_keep_integers_and_nulls() {
        assert_eq!(difference(&Cell::Int(5), &Cell::Int(7)), Cell::Int(-2));
        assert_eq!(difference(&Cell::Float(1.5), &Cell::Int(1)), Cell::Float(0.5));
        assert_eq!(difference(&Cell::Null, &Cell::Float(1.0)), Cell::Null);
    }
}
