//! The parsers of the per-customer statements: `TOP CUSTOMERS BY m [OF step] [ASC | DESC]
//! [LIMIT n] common…` (docs/QUERY.md, TOP CUSTOMERS) and `RFM OF step VALUE prop common…`
//! (docs/QUERY.md, RFM), after their first words.
//!
//! Uses: rooms `ast`, `lexer`.

use super::{Parser, describe, suggest};
use crate::query::ParseError;
use crate::query::ast::*;
use crate::query::lexer::Tok;

/// Every measure's name, for the "did you mean" hint.
const MEASURES: [&str; 8] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first_seen",
    "last_seen",
    "days_active",
];

impl Parser<'_> {
    pub(super) fn top_customers(&mut self) -> Result<TopCustomers, ParseError> {
        self.expect_kw("BY", "(TOP CUSTOMERS BY count LIMIT 10)")?;
        let mut top = TopCustomers {
            measure: self.measure()?,
            step: None,
            ascending: false,
            limit: None,
            common: Common::default(),
        };
        let mut order_given = false;
        loop {
            let t = self.peek();
            let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
            if self.eat_kw("OF") {
                if top.step.is_some() {
                    return Err(dup("OF"));
                }
                top.step = Some(self.step()?);
            } else if self.is_kw("ASC") || self.is_kw("DESC") {
                if order_given {
                    return Err(dup("the order (ASC or DESC)"));
                }
                order_given = true;
                top.ascending = self.eat_kw("ASC");
                if !top.ascending {
                    self.pos += 1;
                }
            } else if self.eat_kw("LIMIT") {
                if top.limit.is_some() {
                    return Err(dup("LIMIT"));
                }
                let (n, span) = self.int("a number of customers")?;
                if n < 1 {
                    return Err(ParseError::new(span, "LIMIT must be at least 1"));
                }
                top.limit = Some(n as u64);
            } else if !self.common(&mut top.common)? {
                break;
            }
        }
        Ok(top)
    }

    /// `RFM OF step VALUE prop common…`, after `RFM`.
    pub(super) fn rfm(&mut self) -> Result<Rfm, ParseError> {
        const EXAMPLE: &str = "(RFM OF purchase VALUE amount)";
        self.expect_kw("OF", EXAMPLE)?;
        let step = self.step()?;
        self.expect_kw("VALUE", EXAMPLE)?;
        let value = self.name("a numeric property")?;
        let mut common = Common::default();
        while self.common(&mut common)? {}
        Ok(Rfm { step, value, common })
    }

    /// `count`, `sum(p)`, `avg(p)`, `min(p)`, `max(p)`, `first_seen`, `last_seen`,
    /// `days_active`.
    fn measure(&mut self) -> Result<Measure, ParseError> {
        let t = self.next();
        let Tok::Ident(word) = &t.tok else {
            return Err(
                ParseError::new(t.span, format!("expected a measure, found {}", describe(&t.tok)))
                    .with_help(MEASURE_HELP),
            );
        };
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "count" => Measure::Count,
            "first_seen" => Measure::FirstSeen,
            "last_seen" => Measure::LastSeen,
            "days_active" => Measure::DaysActive,
            "sum" => {
                let (p, s) = self.prop_arg()?;
                Measure::Sum(p, s)
            }
            "avg" => {
                let (p, s) = self.prop_arg()?;
                Measure::Avg(p, s)
            }
            "min" => {
                let (p, s) = self.prop_arg()?;
                Measure::Min(p, s)
            }
            "max" => {
                let (p, s) = self.prop_arg()?;
                Measure::Max(p, s)
            }
            _ => {
                let e = ParseError::new(t.span, format!("unknown measure `{word}`"));
                return Err(match suggest(&lower, &MEASURES) {
                    Some(s) => e.with_help(format!("did you mean {s}?")),
                    None => e.with_help(MEASURE_HELP),
                });
            }
        })
    }
}

const MEASURE_HELP: &str =
    "measures: count, sum(p), avg(p), min(p), max(p), first_seen, last_seen, days_active";
