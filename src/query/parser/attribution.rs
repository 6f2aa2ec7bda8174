//! The parser of `ATTRIBUTION step [VALUE p] BY p MODEL m [HALF_LIFE d] [LOOKBACK d] common…`
//! (docs/QUERY.md, ATTRIBUTION), after `ATTRIBUTION`.
//!
//! Uses: `model`; rooms `ast`, `lexer`.

use super::{Parser, describe, suggest};
use crate::model::DAY_US;
use crate::query::ParseError;
use crate::query::ast::*;
use crate::query::lexer::Tok;

const EXAMPLE: &str = "(ATTRIBUTION purchase VALUE amount BY channel MODEL last)";
const MODELS: [&str; 5] = ["first", "last", "linear", "position", "time_decay"];

impl Parser<'_> {
    pub(super) fn attribution(&mut self) -> Result<Attribution, ParseError> {
        let step = self.step()?;
        let (mut value, mut by, mut model) = (None, None, None);
        let (mut half_life, mut lookback) = (None, None);
        let mut common = Common::default();
        loop {
            let t = self.peek();
            let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
            let by_cohort = self
                .peek_at(1)
                .is_some_and(|n| matches!(&n.tok, Tok::Ident(w) if w.eq_ignore_ascii_case("COHORT")));
            if self.eat_kw("VALUE") {
                if value.replace(self.name("a numeric property")?).is_some() {
                    return Err(dup("VALUE"));
                }
            } else if self.is_kw("BY") && !by_cohort {
                self.pos += 1;
                if by.replace(self.name("the property credited")?).is_some() {
                    return Err(dup("BY"));
                }
            } else if self.eat_kw("MODEL") {
                if model.replace(self.model()?).is_some() {
                    return Err(dup("MODEL"));
                }
            } else if self.eat_kw("HALF_LIFE") {
                if half_life.replace((self.positive_duration()?, t.span)).is_some() {
                    return Err(dup("HALF_LIFE"));
                }
            } else if self.eat_kw("LOOKBACK") {
                if lookback.replace((self.positive_duration()?, t.span)).is_some() {
                    return Err(dup("LOOKBACK"));
                }
            } else if !self.common(&mut common)? {
                break;
            }
        }
        let by =
            by.ok_or_else(|| self.err_here(format!("expected BY and the property credited {EXAMPLE}")))?;
        let model = model.ok_or_else(|| {
            self.err_here(format!(
                "expected MODEL first|last|linear|position|time_decay {EXAMPLE}"
            ))
        })?;
        if let Some((_, span)) = half_life
            && model != AttributionModel::TimeDecay
        {
            return Err(ParseError::new(span, "HALF_LIFE belongs to MODEL time_decay"));
        }
        let half_life_us = half_life.map_or(7 * DAY_US, |(d, _)| d);
        let lookback_us = lookback.map_or(30 * DAY_US, |(d, _)| d);
        if model == AttributionModel::TimeDecay && lookback_us / 1000 > half_life_us {
            // A touch at the lookback's edge would weigh less than 2^-1000 (the decay's sums
            // keep their terms in f64; docs/QUERY.md).
            let span = half_life.or(lookback).map_or(self.peek().span, |(_, span)| span);
            return Err(ParseError::new(
                span,
                "HALF_LIFE must be at least LOOKBACK / 1000 (a shorter half-life leaves all the credit to the last touches)",
            ));
        }
        Ok(Attribution {
            step,
            value,
            by,
            model,
            half_life_us,
            lookback_us,
            common,
        })
    }

    fn model(&mut self) -> Result<AttributionModel, ParseError> {
        let t = self.next();
        let Tok::Ident(word) = &t.tok else {
            return Err(ParseError::new(
                t.span,
                format!("expected a model, found {}", describe(&t.tok)),
            ));
        };
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "first" => AttributionModel::First,
            "last" => AttributionModel::Last,
            "linear" => AttributionModel::Linear,
            "position" => AttributionModel::Position,
            "time_decay" => AttributionModel::TimeDecay,
            _ => {
                let e = ParseError::new(t.span, format!("unknown model `{word}`"));
                return Err(match suggest(&lower, &MODELS) {
                    Some(s) => e.with_help(format!("did you mean {s}?")),
                    None => e.with_help("models: first, last, linear, position, time_decay"),
                });
            }
        })
    }

    fn positive_duration(&mut self) -> Result<i64, ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Duration(us) if us > 0 => Ok(us),
            Tok::Duration(_) => Err(ParseError::new(t.span, "the duration must be positive")),
            other => {
                let e = ParseError::new(
                    t.span,
                    format!("expected a duration like 30d, found {}", describe(&other)),
                );
                Err(self.with_duration_hint(e, &other))
            }
        }
    }
}
