//! The parsers of `FIT step [VALUE p] [UNIT day|week] FROM a TO b …` and `PREDICT … HORIZON n
//! [DISCOUNT r] [SUMMARY] [LIMIT k]` (docs/QUERY.md, FIT and PREDICT), after their first words.
//!
//! Uses: rooms `ast`, `lexer`.

use super::{Parser, describe};
use crate::query::ast::*;
use crate::query::lexer::Tok;
use crate::query::{ParseError, Span};

impl Parser<'_> {
    /// `FIT …` (`predict` false) or `PREDICT …`, after the first word.
    pub(super) fn predict(&mut self, predict: bool) -> Result<Predict, ParseError> {
        let start = self.peek().span;
        let mut spec = Predict {
            step: self.step()?,
            value: None,
            unit: TimeUnit::Week,
            horizon: None,
            discount: 0.0,
            summary: false,
            limit: None,
            common: Common::default(),
        };
        let mut unit_given = false;
        loop {
            let t = self.peek();
            let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
            let only_predict = |what: &str| {
                ParseError::new(
                    t.span,
                    format!("{what} belongs to PREDICT; FIT reports the model"),
                )
                .with_help("write PREDICT … HORIZON n to have the model predict")
            };
            if self.eat_kw("VALUE") {
                if spec.value.is_some() {
                    return Err(dup("VALUE"));
                }
                spec.value = Some(self.name("a numeric property")?);
            } else if self.eat_kw("UNIT") {
                if unit_given {
                    return Err(dup("UNIT"));
                }
                unit_given = true;
                spec.unit = self.time_unit()?;
            } else if self.eat_kw("HORIZON") {
                if !predict {
                    return Err(only_predict("HORIZON"));
                }
                if spec.horizon.is_some() {
                    return Err(dup("HORIZON"));
                }
                let (n, span) = self.int("a number of units")?;
                if !(1..=10_000).contains(&n) {
                    return Err(ParseError::new(span, "HORIZON must be 1 to 10000 units"));
                }
                spec.horizon = Some(n as u32);
            } else if self.eat_kw("DISCOUNT") {
                if !predict {
                    return Err(only_predict("DISCOUNT"));
                }
                spec.discount = self.discount()?;
            } else if self.eat_kw("SUMMARY") {
                if !predict {
                    return Err(only_predict("SUMMARY"));
                }
                spec.summary = true;
            } else if self.eat_kw("LIMIT") {
                if !predict {
                    return Err(only_predict("LIMIT"));
                }
                if spec.limit.is_some() {
                    return Err(dup("LIMIT"));
                }
                let (n, span) = self.int("a number of customers")?;
                if n < 1 {
                    return Err(ParseError::new(span, "LIMIT must be at least 1"));
                }
                spec.limit = Some(n as u64);
            } else if !self.common(&mut spec.common)? {
                break;
            }
        }
        check(
            &spec,
            predict,
            start,
            self.err_here("PREDICT needs HORIZON n: how many units ahead to predict"),
        )?;
        Ok(spec)
    }

    /// `CUSTOMERS PREDICT …`, after `CUSTOMERS PREDICT`: the conjuncts of its WHERE on a
    /// prediction column become the drill's conditions; the rest stays the event predicate.
    pub(super) fn predict_drill(&mut self) -> Result<Drill, ParseError> {
        let start = self.peek().span;
        let mut predict = self.predict(true)?;
        if predict.summary {
            return Err(ParseError::new(
                start,
                "CUSTOMERS PREDICT lists customers; leave out SUMMARY",
            ));
        }
        let mut conditions = Vec::new();
        if let Some(filter) = predict.common.filter.take() {
            predict.common.filter = split_conditions(filter, &mut conditions)?;
        }
        Ok(Drill::Predict {
            predict: Box::new(predict),
            conditions,
        })
    }

    /// `day` or `week`.
    fn time_unit(&mut self) -> Result<TimeUnit, ParseError> {
        let t = self.next();
        let word = match &t.tok {
            Tok::Ident(word) => word.to_ascii_lowercase(),
            other => {
                return Err(ParseError::new(
                    t.span,
                    format!("expected day or week, found {}", describe(other)),
                ));
            }
        };
        match word.as_str() {
            "day" | "days" => Ok(TimeUnit::Day),
            "week" | "weeks" => Ok(TimeUnit::Week),
            _ => Err(ParseError::new(
                t.span,
                format!("expected day or week, found `{word}`"),
            )),
        }
    }

    /// A discount rate per unit: a number from 0 to 1.
    fn discount(&mut self) -> Result<f64, ParseError> {
        let t = self.next();
        let rate = match t.tok {
            Tok::Float(x) => x,
            Tok::Int(n) => n as f64,
            other => {
                return Err(ParseError::new(
                    t.span,
                    format!(
                        "expected a discount rate per unit like 0.01, found {}",
                        describe(&other)
                    ),
                ));
            }
        };
        if !(0.0..1.0).contains(&rate) {
            return Err(ParseError::new(t.span, "DISCOUNT must be at least 0 and below 1"));
        }
        Ok(rate)
    }
}

/// The clauses a FIT or PREDICT must have and must not have (`start`: the statement's first
/// step; `no_horizon`: the error for a PREDICT without HORIZON, pointing where it ended).
fn check(spec: &Predict, predict: bool, start: Span, no_horizon: ParseError) -> Result<(), ParseError> {
    let statement = if predict { "PREDICT" } else { "FIT" };
    let example = example(predict);
    if spec.common.range.is_none() {
        return Err(ParseError::new(
            start,
            format!("{statement} needs its calibration period: FROM … TO …"),
        )
        .with_help(format!("for example {example}")));
    }
    if predict && spec.horizon.is_none() {
        return Err(no_horizon.with_help(format!("for example {example}")));
    }
    if let Some((_, span)) = spec.common.by_cohorts.first() {
        return Err(
            ParseError::new(*span, format!("{statement} fits one model: leave out BY COHORT"))
                .with_help("narrow the customers with WHERE CUSTOMER IN a cohort"),
        );
    }
    if let Some((_, span)) = &spec.common.week_start {
        return Err(ParseError::new(
            *span,
            format!("{statement} has no weekly buckets: leave out WEEK START"),
        ));
    }
    Ok(())
}

fn example(predict: bool) -> &'static str {
    if predict {
        "(PREDICT purchase UNIT week FROM '2024-01-01' TO '2024-10-01' HORIZON 39)"
    } else {
        "(FIT purchase UNIT week FROM '2024-01-01' TO '2024-10-01')"
    }
}

/// Moves the conjuncts of `pred` on a prediction column (`p_alive < 0.3`) into `conditions`;
/// what is left stays the event predicate. One under OR or NOT is refused.
fn split_conditions(pred: Pred, conditions: &mut Vec<PredictCondition>) -> Result<Option<Pred>, ParseError> {
    let is_prediction =
        |prop: &(String, Span)| PREDICTION_COLUMNS.contains(&prop.0.to_ascii_lowercase().as_str());
    match pred {
        Pred::And(left, right) => {
            let left = split_conditions(*left, conditions)?;
            let right = split_conditions(*right, conditions)?;
            Ok(match (left, right) {
                (Some(left), Some(right)) => Some(Pred::And(Box::new(left), Box::new(right))),
                (one, None) | (None, one) => one,
            })
        }
        Pred::Cmp { prop, op, value } if is_prediction(&prop) => {
            let number = match value.0 {
                Literal::Int(n) => n as f64,
                Literal::Float(x) => x,
                _ => {
                    return Err(ParseError::new(
                        value.1,
                        format!("`{}` is a number: compare it with one", prop.0),
                    ));
                }
            };
            conditions.push(PredictCondition {
                column: (prop.0.to_ascii_lowercase(), prop.1),
                op,
                value: number,
            });
            Ok(None)
        }
        other => match other.props().into_iter().find(|prop| is_prediction(prop)) {
            Some(prop) => Err(ParseError::new(
                prop.1,
                format!(
                    "`{}` is tested as `{} < number` joined to the rest of WHERE by AND",
                    prop.0, prop.0
                ),
            )),
            None => Ok(Some(other)),
        },
    }
}
