//! FIT and PREDICT: every customer's purchase history summarised as BG/NBD needs it (repeat
//! purchase days, recency, age, and the days bought in the holdout after the calibration
//! period), the models fitted on the summaries, and what they predict per customer and in total
//! (docs/QUERY.md, FIT and PREDICT).
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `btyd`, `drive`, `operator`.
//! `options`, `range`, `scan`.

use std::collections::BTreeMap;
use std::ops::Range;

use jiff::tz::TimeZone;

use super::btyd::{BgNbd, FitError, GammaGamma, Summary};
use super::drive::evaluate;
use super::operator::Operator;
use super::options::{Input, QueryError, QueryOptions};
use super::scan::{columns, columns_of, passes};
use crate::dict::Dicts;
use crate::model::{self, Columns, PropType};
use crate::plan::{CPred, Matcher, Resolver, slot};
use crate::query::ParseError;
use crate::query::ast::{CmpOp, Predict, PredictCondition};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;

/// One customer's history: local days since the epoch, and in the step's unit only in
/// [`History::summary`].
#[derive(Clone, Copy, Debug)]
struct History {
    cid: u32,
    /// Repeat purchase days in the calibration period (x).
    repeat_days: u32,
    /// First and last purchase day in the calibration period.
    first_day: i64,
    last_day: i64,
    /// Purchase days in the holdout period.
    holdout_days: u32,
    /// The mean value of the repeat days that have one (a day's value is the sum over its
    /// purchases), and how many such days there are.
    repeat_value: f64,
    valued_days: u32,
}

pub(super) struct PredictOp<'a> {
    step: Matcher,
    /// The step by event id, when it tests names only.
    step_events: Option<Vec<bool>>,
    value: Option<(u32, PropType)>,
    filter: Option<CPred>,
    /// The calibration period (half-open).
    range: (i64, i64),
    /// Its last local day, and the holdout's last day (the horizon's, for PREDICT).
    last_day: i64,
    holdout_end: i64,
    unit_days: f64,
    tz: Option<TimeZone>,
    dicts: &'a Dicts,
    /// PREDICT's horizon (units); `None` for FIT.
    horizon: Option<f64>,
    discount: f64,
    summary: bool,
    limit: usize,
}

/// Customers PREDICT lists without LIMIT.
const DEFAULT_LIMIT: usize = 100;

/// The customers' histories, and scratch space for one customer's days.
#[derive(Default)]
pub(super) struct PredictPartial {
    customers: Vec<History>,
    days: Vec<(i64, f64, bool)>,
    holdout: Vec<i64>,
}

impl<'a> PredictOp<'a> {
    fn plan(spec: &Predict, text: &str, input: &Input<'a>) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, spec.common.tz.as_ref())?;
        let value = match &spec.value {
            Some((name, span)) => {
                let value = res.prop(name, *span)?;
                if !matches!(value.1, PropType::I64 | PropType::F64) {
                    let why = format!("`{name}` is {}; VALUE needs a number", value.1);
                    return Err(ParseError::new(*span, why).into());
                }
                Some(value)
            }
            None => None,
        };
        let step = res.step(&spec.step)?;
        let range = res.range(&spec.common.range)?.unwrap_or((0, 0));
        let tz = (res.tz != TimeZone::UTC).then(|| res.tz.clone());
        let unit_days = spec.unit.days();
        let mut op = PredictOp {
            step_events: step.name_table(input.dicts.events.len()),
            step,
            value,
            filter: spec.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range,
            last_day: 0,
            holdout_end: 0,
            unit_days,
            tz,
            dicts: input.dicts,
            horizon: spec.horizon.map(f64::from),
            discount: spec.discount,
            summary: spec.summary,
            limit: spec
                .limit
                .map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        op.last_day = op.day(range.1 - 1);
        // The holdout: the horizon for PREDICT; FIT reads none.
        let horizon_days = f64::from(spec.horizon.unwrap_or(0)) * unit_days;
        op.holdout_end = op.last_day + horizon_days as i64;
        Ok(op)
    }

    /// The local day (days since the epoch) of `ts` in the statement's calendar.
    fn day(&self, ts: i64) -> i64 {
        super::range::local_day(self.tz.as_ref(), ts)
    }

    fn is_step(&self, rows: &Columns, index: usize) -> bool {
        match &self.step_events {
            Some(table) => table.get(rows.event[index] as usize).copied().unwrap_or(false),
            None => self.step.matches(rows, index, self.dicts),
        }
    }

    fn number(&self, rows: &Columns, index: usize) -> Option<f64> {
        let (id, ty) = self.value?;
        let value = slot(rows, id, index)?;
        Some(match ty {
            PropType::I64 => value as i64 as f64,
            _ => f64::from_bits(value),
        })
    }

    /// A history's summary in the statement's unit.
    fn summary(&self, history: &History) -> Summary {
        Summary {
            frequency: f64::from(history.repeat_days),
            recency: (history.last_day - history.first_day) as f64 / self.unit_days,
            age: (self.last_day - history.first_day) as f64 / self.unit_days,
        }
    }
}

impl Operator for PredictOp<'_> {
    type Partial = PredictPartial;

    fn columns(&self) -> ColumnSet {
        match self.value {
            _ if self.filter.is_some() || self.step.uses_props() => columns(true),
            Some((id, _)) => columns_of(&[id]),
            None => columns(false),
        }
    }

    fn customer(&self, partial: &mut PredictPartial, rows: &Columns, run: Range<usize>) {
        let Some(&cid) = rows.cid.get(run.start) else {
            return;
        };
        let (lo, hi) = self.range;
        partial.days.clear();
        partial.holdout.clear();
        for index in run {
            if !self.is_step(rows, index) || !passes(&self.filter, rows, index, self.dicts) {
                continue;
            }
            let ts = rows.ts[index];
            if ts < lo {
                // A customer who bought before the calibration period is not in its cohort.
                return;
            }
            let day = self.day(ts);
            if ts < hi {
                let value = self.number(rows, index);
                partial.days.push((day, value.unwrap_or(0.0), value.is_some()));
            } else if day <= self.holdout_end {
                partial.holdout.push(day);
            }
        }
        if partial.days.is_empty() {
            return;
        }
        // Local days need not ascend with time (a zone may turn its clock back across
        // midnight); values are summed in a fixed order per day.
        partial
            .days
            .sort_unstable_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
        partial.holdout.sort_unstable();
        partial.holdout.dedup();
        let first_day = partial.days[0].0;
        let (mut repeat_days, mut last_day, mut value_sum, mut valued_days) = (0u32, first_day, 0.0, 0u32);
        for same_day in partial.days.chunk_by(|x, y| x.0 == y.0) {
            let day = same_day[0].0;
            if day == first_day {
                continue;
            }
            repeat_days += 1;
            last_day = day;
            if same_day.iter().any(|d| d.2) {
                value_sum += same_day.iter().map(|d| d.1).sum::<f64>();
                valued_days += 1;
            }
        }
        partial.customers.push(History {
            cid,
            repeat_days,
            first_day,
            last_day,
            holdout_days: partial.holdout.len() as u32,
            repeat_value: if valued_days > 0 {
                value_sum / f64::from(valued_days)
            } else {
                0.0
            },
            valued_days,
        });
    }

    fn footprint(&self, partial: &PredictPartial) -> usize {
        partial.customers.capacity() * std::mem::size_of::<History>() + partial.days.capacity() * 24
    }

    fn merge(&self, into: &mut PredictPartial, from: PredictPartial) {
        into.customers.extend(from.customers);
    }

    fn finish(
        &self,
        partial: PredictPartial,
        input: &Input<'_>,
        _: &QueryOptions,
    ) -> Result<Table, QueryError> {
        let mut customers = partial.customers;
        // Customer order: every sum below is the same for every run and thread count.
        customers.sort_unstable_by_key(|h| h.cid);
        let fitted = self.fit(&customers)?;
        let mut table = match self.horizon {
            None => fit_table(&fitted),
            Some(horizon) if self.summary => self.summary_table(&fitted, &customers, horizon, input),
            Some(horizon) => self.customer_table(&fitted, &customers, horizon),
        };
        table.warnings.extend(fitted.warnings());
        Ok(table)
    }
}

/// The fitted models, and what they were fitted on.
struct Fitted {
    bg_nbd: BgNbd,
    ln_likelihood: f64,
    customers: usize,
    gamma_gamma: Option<(GammaGamma, f64, usize)>,
}

impl Fitted {
    /// What a reader of the parameters must know: a parameter that ran to a boundary of its
    /// range (the likelihood rises along a ridge towards it).
    fn warnings(&self) -> Vec<String> {
        let BgNbd { r, alpha, a, b } = self.bg_nbd;
        let mut out = Vec::new();
        if a < 1e-6 && b < 1e-6 {
            out.push(format!(
                "the BG/NBD dropout parameters ran to 0 (a = {a:.3e}, b = {b:.3e}): the data fit a split into customers who drop out after their first purchase ({:.1}%) and customers who never do; the calibration period may be too short to see customers drop out",
                100.0 * a / (a + b)
            ));
        } else {
            for (name, value) in [("r", r), ("alpha", alpha), ("a", a), ("b", b)] {
                if !(1e-6..=1e6).contains(&value) {
                    out.push(format!("the BG/NBD parameter {name} ran to a boundary ({value:.3e}): the data barely identify it"));
                }
            }
        }
        if let Some((GammaGamma { p, q, gamma }, _, _)) = self.gamma_gamma {
            for (name, value) in [("p", p), ("q", q), ("gamma", gamma)] {
                if !(1e-6..=1e8).contains(&value) {
                    out.push(format!("the Gamma-Gamma parameter {name} ran to a boundary ({value:.3e}): the data barely identify it"));
                }
            }
            if q <= 1.0 {
                out.push(format!("the Gamma-Gamma q is {q:.3} (at most 1): the expected spend per purchase has no finite mean"));
            }
        }
        out
    }
}

impl PredictOp<'_> {
    /// Fits BG/NBD (and Gamma-Gamma with VALUE) on `customers`' summaries, grouped by
    /// (x, t_x, T) in days — sums in that order, so the fit is the same for every run and
    /// thread count.
    fn fit(&self, customers: &[History]) -> Result<Fitted, QueryError> {
        let mut tuples: BTreeMap<(u32, i64, i64), f64> = BTreeMap::new();
        for history in customers {
            let key = (
                history.repeat_days,
                history.last_day - history.first_day,
                self.last_day - history.first_day,
            );
            *tuples.entry(key).or_default() += 1.0;
        }
        let summaries: Vec<(Summary, f64)> = tuples
            .into_iter()
            .map(|((x, recency, age), weight)| {
                let summary = Summary {
                    frequency: f64::from(x),
                    recency: recency as f64 / self.unit_days,
                    age: age as f64 / self.unit_days,
                };
                (summary, weight)
            })
            .collect();
        let (bg_nbd, ln_likelihood) = BgNbd::fit(&summaries).map_err(|e| fit_error("BG/NBD", e))?;
        let gamma_gamma = match self.value {
            None => None,
            Some(_) => {
                let mut spends: Vec<(f64, f64, f64)> = customers
                    .iter()
                    .filter(|h| h.valued_days > 0 && h.repeat_value > 0.0)
                    .map(|h| (f64::from(h.valued_days), h.repeat_value, 1.0))
                    .collect();
                spends.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
                let count = spends.len();
                let (model, ll) = GammaGamma::fit(&spends).map_err(|e| fit_error("Gamma-Gamma", e))?;
                Some((model, ll, count))
            }
        };
        Ok(Fitted {
            bg_nbd,
            ln_likelihood,
            customers: customers.len(),
            gamma_gamma,
        })
    }
}

fn fit_error(model: &str, error: FitError) -> QueryError {
    QueryError::Model(match error {
        FitError::NotIdentified(why) => format!("the {model} model cannot be fitted: {why}"),
        FitError::NoConvergence => format!("the {model} fit did not converge"),
    })
}

/// FIT's table: `model, parameter, value`.
fn fit_table(fitted: &Fitted) -> Table {
    let mut table = Table::new(&["model", "parameter", "value"]);
    let mut row = |model: &str, parameter: &str, value: Cell| {
        table.rows.push(vec![
            Cell::Str(model.to_owned()),
            Cell::Str(parameter.to_owned()),
            value,
        ]);
    };
    let BgNbd { r, alpha, a, b } = fitted.bg_nbd;
    for (name, value) in [
        ("r", r),
        ("alpha", alpha),
        ("a", a),
        ("b", b),
        ("log_likelihood", fitted.ln_likelihood),
    ] {
        row("bg_nbd", name, Cell::Float(value));
    }
    row("bg_nbd", "customers", Cell::Int(fitted.customers as i64));
    if let Some((GammaGamma { p, q, gamma }, ll, count)) = fitted.gamma_gamma {
        for (name, value) in [("p", p), ("q", q), ("gamma", gamma), ("log_likelihood", ll)] {
            row("gamma_gamma", name, Cell::Float(value));
        }
        row("gamma_gamma", "customers", Cell::Int(count as i64));
    }
    table
}

/// Runs a FIT or PREDICT statement.
pub(super) fn run(
    spec: &Predict,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&PredictOp::plan(spec, text, input)?, input, opts)
}

impl PredictOp<'_> {
    /// PREDICT's customers, most expected purchases first (ties by customer id): `customer,
    /// frequency, recency, age, p_alive, expected_purchases[, expected_value, clv]`.
    fn customer_table(&self, fitted: &Fitted, customers: &[History], horizon: f64) -> Table {
        let model = fitted.bg_nbd;
        let mut cache = Expectations::default();
        let mut ranked: Vec<(f64, &History)> = customers
            .iter()
            .map(|h| (cache.conditional(&model, self, h, horizon), h))
            .collect();
        ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cid.cmp(&y.1.cid)));
        let mut columns = vec![
            "customer",
            "frequency",
            "recency",
            "age",
            "p_alive",
            "expected_purchases",
        ];
        if fitted.gamma_gamma.is_some() {
            columns.extend(["expected_value", "clv"]);
        }
        let mut table = Table::new(&columns);
        for (expected, history) in ranked.into_iter().take(self.limit) {
            let summary = self.summary(history);
            let mut row = vec![
                Cell::Str(self.dicts.customers.name(history.cid).unwrap_or("?").to_owned()),
                Cell::Int(i64::from(history.repeat_days)),
                Cell::Float(summary.recency),
                Cell::Float(summary.age),
                Cell::Rate(model.p_alive(&summary)),
                Cell::Float(expected),
            ];
            if let Some((spend, _, _)) = fitted.gamma_gamma {
                let value = spend.conditional_mean(f64::from(history.valued_days), history.repeat_value);
                row.push(Cell::Float(value));
                row.push(Cell::Float(self.lifetime_value(&model, &summary, value, horizon)));
            }
            table.rows.push(row);
        }
        table
    }

    /// The discounted value of the purchases expected in each unit of the horizon:
    /// Σ_{i=1..n} (E[Y(i)] − E[Y(i − 1)]) · value / (1 + discount)^i (a last part unit counts
    /// whole).
    fn lifetime_value(&self, model: &BgNbd, summary: &Summary, value: f64, horizon: f64) -> f64 {
        let (mut total, mut before) = (0.0, 0.0);
        let units = horizon.ceil() as u32;
        for unit in 1..=units {
            let expected = model.conditional_expected(summary, f64::from(unit).min(horizon));
            total += (expected - before) * value / (1.0 + self.discount).powi(unit as i32);
            before = expected;
        }
        total
    }

    /// PREDICT … SUMMARY: per calibration frequency (0 … 6, 7+) and for all customers, the
    /// customers, the conditional expectations' total, the model's unconditional forecast's
    /// total, the purchase days actually seen in the horizon (when the data goes past the
    /// calibration period), and the expected and actual means.
    fn summary_table(
        &self,
        fitted: &Fitted,
        customers: &[History],
        horizon: f64,
        input: &Input<'_>,
    ) -> Table {
        let model = fitted.bg_nbd;
        let seen_after = input.ts_range.is_some_and(|(_, latest)| latest >= self.range.1);
        let mut cache = Expectations::default();
        // Per group: customers, expected, forecast, actual.
        let mut groups = [(0u64, 0.0, 0.0, 0u64); 9];
        for history in customers {
            let expected = cache.conditional(&model, self, history, horizon);
            let age = self.summary(history).age;
            let forecast = cache.unconditional(&model, age + horizon) - cache.unconditional(&model, age);
            for group in [history.repeat_days.min(7) as usize, 8] {
                let totals = &mut groups[group];
                totals.0 += 1;
                totals.1 += expected;
                totals.2 += forecast;
                totals.3 += u64::from(history.holdout_days);
            }
        }
        let mut table = Table::new(&[
            "frequency",
            "customers",
            "expected_total",
            "forecast_total",
            "actual_total",
            "expected_mean",
            "actual_mean",
        ]);
        for group in [8, 0, 1, 2, 3, 4, 5, 6, 7] {
            let (count, expected, forecast, actual) = groups[group];
            let label = match group {
                8 => "all".to_owned(),
                7 => "7+".to_owned(),
                _ => group.to_string(),
            };
            let mean = |total: f64| {
                if count == 0 {
                    Cell::Null
                } else {
                    Cell::Float(total / count as f64)
                }
            };
            table.rows.push(vec![
                Cell::Str(label),
                Cell::Int(count as i64),
                Cell::Float(expected),
                Cell::Float(forecast),
                if seen_after {
                    Cell::Int(actual as i64)
                } else {
                    Cell::Null
                },
                mean(expected),
                if seen_after {
                    mean(actual as f64)
                } else {
                    Cell::Null
                },
            ]);
        }
        if seen_after {
            let end = self.holdout_end;
            if input.ts_range.is_some_and(|(_, latest)| self.day(latest) < end) {
                table.warnings.push(format!(
                    "the data ends before the horizon does (day {}): actual counts cover only part of it",
                    crate::model::format_ts(end * model::DAY_US)
                ));
            }
        }
        table
    }
}

/// Expectations computed once per distinct summary (they need the hypergeometric series).
#[derive(Default)]
struct Expectations {
    conditional: std::collections::HashMap<(u32, i64, i64), f64>,
    unconditional: std::collections::HashMap<u64, f64>,
}

impl Expectations {
    fn conditional(&mut self, model: &BgNbd, op: &PredictOp<'_>, history: &History, horizon: f64) -> f64 {
        let key = (
            history.repeat_days,
            history.last_day - history.first_day,
            op.last_day - history.first_day,
        );
        *self
            .conditional
            .entry(key)
            .or_insert_with(|| model.conditional_expected(&op.summary(history), horizon))
    }

    fn unconditional(&mut self, model: &BgNbd, time: f64) -> f64 {
        *self
            .unconditional
            .entry(time.to_bits())
            .or_insert_with(|| model.expected(time))
    }
}

/// The customers of a PREDICT's cohort whose predictions satisfy every condition
/// (`CUSTOMERS PREDICT … WHERE p_alive < 0.3`): a customer set, as cohorts use.
pub(super) fn predicted_members(
    spec: &Predict,
    conditions: &[PredictCondition],
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<roaring::RoaringBitmap, QueryError> {
    let op = PredictOp::plan(spec, text, input)?;
    let mut customers = super::scan::gather(&op, input, opts)?.customers;
    customers.sort_unstable_by_key(|h| h.cid);
    let fitted = op.fit(&customers)?;
    let horizon = op.horizon.unwrap_or(0.0);
    let mut cache = Expectations::default();
    let mut members = roaring::RoaringBitmap::new();
    for history in &customers {
        let summary = op.summary(history);
        let mut admitted = true;
        for condition in conditions {
            let value = match condition.column.0.as_str() {
                "p_alive" => fitted.bg_nbd.p_alive(&summary),
                "expected_purchases" => cache.conditional(&fitted.bg_nbd, &op, history, horizon),
                "frequency" => summary.frequency,
                "recency" => summary.recency,
                _ => summary.age,
            };
            admitted &= match condition.op {
                CmpOp::Eq => value == condition.value,
                CmpOp::Ne => value != condition.value,
                CmpOp::Lt => value < condition.value,
                CmpOp::Le => value <= condition.value,
                CmpOp::Gt => value > condition.value,
                CmpOp::Ge => value >= condition.value,
            };
        }
        if admitted {
            members.insert(history.cid);
        }
    }
    Ok(members)
}
