//! The parts statements share: names, steps, predicates, literals, times, the common clauses
//! (WHERE, FROM/TO, TZ, BY) and periods.
//!
//! Uses: `limits`, `model`; rooms `ast`, `lexer`.

use super::{KEYWORDS, Parser, describe};
use crate::limits;
use crate::model::Stage;
use crate::query::ast::*;
use crate::query::lexer::Tok;
use crate::query::{ParseError, Span};

impl Parser<'_> {
    pub(super) fn name(&mut self, what: &str) -> Result<(String, Span), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(s) if !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&s)) => Ok((s, t.span)),
            Tok::Str(s) => Ok((s, t.span)),
            Tok::Ident(s) => Err(ParseError::new(
                t.span,
                format!("`{s}` is a keyword; quote it ('{s}') to use it as {what}"),
            )),
            other => Err(ParseError::new(
                t.span,
                format!("expected {what}, found {}", describe(&other)),
            )),
        }
    }

    pub(super) fn step(&mut self) -> Result<Step, ParseError> {
        let start = self.peek().span.start;
        let kind = if self.eat_kw("ANY") {
            StepKind::Any
        } else if self.eat_kw("STAGE") {
            let t = self.next();
            let stage = match &t.tok {
                Tok::Ident(s) | Tok::Str(s) => Stage::parse(s),
                _ => None,
            };
            match stage {
                Some(s) => StepKind::Stage(s),
                None => {
                    return Err(ParseError::new(
                        t.span,
                        format!("expected a stage, found {}", describe(&t.tok)),
                    )
                    .with_help("stages are awareness, consideration, purchase, retention, advocacy"));
                }
            }
        } else {
            let mut names = vec![self.name("an event name")?];
            while self.is_kw("OR") && !self.set_term_at(1) {
                self.pos += 1;
                names.push(self.name("an event name")?);
            }
            StepKind::Events(names)
        };
        let mut end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(start, |t| t.span.end);
        let filter = if self.eat_kw("WHERE") {
            let p = self.pred()?;
            if let Some(filter) = super::cohort::nested_cohort_filter(&p) {
                return Err(ParseError::new(
                    filter.name.1,
                    "CUSTOMER IN belongs in the statement's WHERE, not a step's",
                )
                .with_help("put it after the statement's clauses: … WHERE CUSTOMER IN name"));
            }
            end = self
                .toks
                .get(self.pos.saturating_sub(1))
                .map_or(end, |t| t.span.end);
            Some(p)
        } else {
            None
        };
        Ok(Step {
            kind,
            filter,
            span: Span { start, end },
        })
    }

    fn pred(&mut self) -> Result<Pred, ParseError> {
        self.depth += 1;
        if self.depth > limits::QUERY_DEPTH_MAX {
            return Err(self.err_here(format!(
                "predicate nested deeper than {}",
                limits::QUERY_DEPTH_MAX
            )));
        }
        let mut left = self.pred_and()?;
        while self.is_kw("OR") && !self.set_term_at(1) {
            self.pos += 1;
            let right = self.pred_and()?;
            left = Pred::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn pred_and(&mut self) -> Result<Pred, ParseError> {
        let mut left = self.pred_not()?;
        while self.is_kw("AND") && !self.set_term_at(1) {
            self.pos += 1;
            let right = self.pred_not()?;
            left = Pred::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(super) fn pred_not(&mut self) -> Result<Pred, ParseError> {
        if self.eat_kw("NOT") {
            self.depth += 1;
            if self.depth > limits::QUERY_DEPTH_MAX {
                return Err(self.err_here(format!(
                    "predicate nested deeper than {}",
                    limits::QUERY_DEPTH_MAX
                )));
            }
            let inner = self.pred_not()?;
            self.depth -= 1;
            return Ok(Pred::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let p = self.pred()?;
            let t = self.next();
            if t.tok != Tok::RParen {
                return Err(ParseError::new(
                    t.span,
                    format!("expected `)`, found {}", describe(&t.tok)),
                ));
            }
            return Ok(p);
        }
        if self.at_cohort_filter() {
            return self.cohort_filter().map(Pred::InCohort);
        }
        let prop = self.name("a property name")?;
        if self.eat_kw("IS") {
            let negated = self.eat_kw("NOT");
            self.expect_kw("NULL", "after IS")?;
            return Ok(Pred::IsNull { prop, negated });
        }
        let negated = self.eat_kw("NOT");
        if self.eat_kw("IN") {
            let t = self.next();
            if t.tok != Tok::LParen {
                return Err(ParseError::new(t.span, "expected `(` after IN"));
            }
            let mut values = vec![self.literal()?];
            loop {
                let t = self.next();
                match t.tok {
                    Tok::Comma => values.push(self.literal()?),
                    Tok::RParen => break,
                    other => {
                        return Err(ParseError::new(
                            t.span,
                            format!("expected `,` or `)`, found {}", describe(&other)),
                        ));
                    }
                }
            }
            return Ok(Pred::In {
                prop,
                values,
                negated,
            });
        }
        if negated {
            return Err(self.err_here("expected IN after NOT"));
        }
        let t = self.next();
        let Tok::Cmp(op) = t.tok else {
            return Err(ParseError::new(
                t.span,
                format!(
                    "expected a comparison (=, !=, <, <=, >, >=, IN, IS), found {}",
                    describe(&t.tok)
                ),
            ));
        };
        let value = self.literal()?;
        Ok(Pred::Cmp { prop, op, value })
    }

    fn literal(&mut self) -> Result<(Literal, Span), ParseError> {
        let t = self.next();
        let neg = t.tok == Tok::Minus;
        let t = if neg { self.next() } else { t };
        let v = match t.tok {
            Tok::Str(s) if !neg => Literal::Str(s),
            Tok::Int(n) => Literal::Int(if neg { -n } else { n }),
            Tok::Float(f) => Literal::Float(if neg { -f } else { f }),
            Tok::Ident(s) if !neg && s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(s) if !neg && s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            other => {
                return Err(
                    ParseError::new(t.span, format!("expected a value, found {}", describe(&other)))
                        .with_help("values are 'strings', numbers, true or false"),
                );
            }
        };
        Ok((v, t.span))
    }

    pub(super) fn time(&mut self) -> Result<TimeLit, ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok(TimeLit::Text(s, t.span)),
            Tok::Int(n) => Ok(TimeLit::UnixMs(n, t.span)),
            other => Err(ParseError::new(
                t.span,
                format!(
                    "expected a time ('2026-02-01', '2026-02-01T12:00:00Z' or unix milliseconds), found {}",
                    describe(&other)
                ),
            )),
        }
    }

    pub(super) fn int(&mut self, what: &str) -> Result<(i64, Span), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Int(n) => Ok((n, t.span)),
            other => Err(ParseError::new(
                t.span,
                format!("expected {what}, found {}", describe(&other)),
            )),
        }
    }

    /// Parses common clauses in any order, each at most once.
    pub(super) fn common(&mut self, common: &mut Common) -> Result<bool, ParseError> {
        let t = self.peek();
        let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
        if self.eat_kw("FROM") {
            if common.range.is_some() {
                return Err(dup("FROM"));
            }
            let from = self.time()?;
            self.expect_kw("TO", "after FROM ...")?;
            let to = self.time()?;
            common.range = Some((from, to));
            return Ok(true);
        }
        if self.eat_kw("WHERE") {
            if common.filter.is_some() || !common.cohorts.is_empty() || common.profile.is_some() {
                return Err(dup("WHERE"));
            }
            let pred = self.pred()?;
            common.filter =
                super::cohort::split_cohort_filters(pred, &mut common.cohorts, &mut common.profile)?;
            return Ok(true);
        }
        if self.at_by_cohort() {
            if !common.by_cohorts.is_empty() {
                return Err(dup("BY COHORT"));
            }
            self.pos += 2;
            common.by_cohorts.push(self.name("a cohort name")?);
            while self.peek().tok == Tok::Comma {
                self.pos += 1;
                common.by_cohorts.push(self.name("a cohort name")?);
            }
            return Ok(true);
        }
        if self.eat_kw("TZ") {
            if common.tz.is_some() {
                return Err(dup("TZ"));
            }
            let t = self.next();
            let Tok::Str(s) = t.tok else {
                return Err(ParseError::new(
                    t.span,
                    "expected a time zone name in quotes, like 'Europe/Berlin'",
                ));
            };
            common.tz = Some((s, t.span));
            return Ok(true);
        }
        if self.is_kw("WEEK")
            && self
                .peek_at(1)
                .is_some_and(|t| matches!(&t.tok, Tok::Ident(s) if s.eq_ignore_ascii_case("START")))
        {
            if common.week_start.is_some() {
                return Err(dup("WEEK START"));
            }
            self.pos += 2;
            if !matches!(self.period, Some(Period::Week(_))) {
                return Err(ParseError::new(
                    Span {
                        start: t.span.start,
                        end: self.peek().span.start,
                    },
                    "WEEK START applies to PERIOD week only",
                ));
            }
            let day = self.next();
            let start = match &day.tok {
                Tok::Ident(s) if s.eq_ignore_ascii_case("sunday") => WeekStart::Sunday,
                Tok::Ident(s) if s.eq_ignore_ascii_case("monday") => WeekStart::Monday,
                other => {
                    return Err(ParseError::new(
                        day.span,
                        format!("expected sunday or monday, found {}", describe(other)),
                    ));
                }
            };
            let span = Span {
                start: t.span.start,
                end: day.span.end,
            };
            common.week_start = Some((start, span));
            return Ok(true);
        }
        Ok(false)
    }

    /// `err` with a hint when the token it is about (`found`, just read) is a number followed
    /// by a unit word, as in `WITHIN 7 days`: "write 7d".
    pub(super) fn with_duration_hint(&self, err: ParseError, found: &Tok) -> ParseError {
        let (Tok::Int(n), Tok::Ident(word)) = (found, &self.peek().tok) else {
            return err;
        };
        let unit = match word.to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => "s",
            "m" | "min" | "mins" | "minute" | "minutes" => "m",
            "h" | "hr" | "hrs" | "hour" | "hours" => "h",
            "d" | "day" | "days" => "d",
            "w" | "wk" | "week" | "weeks" => "w",
            _ => return err,
        };
        err.with_help(format!("write a duration without a space: {n}{unit}"))
    }

    pub(super) fn period(&mut self) -> Result<Period, ParseError> {
        let t = self.next();
        let p = match &t.tok {
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "hour" => Some(Period::Hour),
                "day" => Some(Period::Day),
                "week" => Some(Period::Week(WeekStart::Monday)),
                "month" => Some(Period::Month),
                _ => None,
            },
            _ => None,
        };
        self.period = p;
        p.ok_or_else(|| {
            let e = ParseError::new(
                t.span,
                format!(
                    "expected a period (hour, day, week, month), found {}",
                    describe(&t.tok)
                ),
            );
            let Tok::Ident(word) = &t.tok else { return e };
            let word = word.to_ascii_lowercase();
            match super::suggest(&word, &["hour", "day", "week", "month"]) {
                Some(best) => e.with_help(format!("did you mean {best}?")),
                None => e,
            }
        })
    }

    pub(super) fn prop_arg(&mut self) -> Result<(String, Span), ParseError> {
        let t = self.next();
        if t.tok != Tok::LParen {
            return Err(ParseError::new(t.span, "expected `(` and a property name"));
        }
        let name = self.name("a property name")?;
        let t = self.next();
        if t.tok != Tok::RParen {
            return Err(ParseError::new(
                t.span,
                format!("expected `)`, found {}", describe(&t.tok)),
            ));
        }
        Ok(name)
    }
}
