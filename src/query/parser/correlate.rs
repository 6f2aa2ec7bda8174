//! The parser of `CORRELATE FUNNEL … [SIGNIFICANCE a]` (docs/QUERY.md, CORRELATE) and of its
//! drill-down's `EVENT 'x' CONVERTED|DROPPED`, after their first words.
//!
//! Uses: rooms `ast`, `lexer`.

use super::{Parser, describe};
use crate::query::ParseError;
use crate::query::ast::*;
use crate::query::lexer::Tok;

const EXAMPLE: &str = "(CORRELATE FUNNEL visit -> purchase WITHIN 7d)";

impl Parser<'_> {
    /// `CORRELATE FUNNEL …`, after `CORRELATE`.
    pub(super) fn correlate(&mut self) -> Result<Correlate, ParseError> {
        self.expect_kw("FUNNEL", EXAMPLE)?;
        let funnel = self.funnel()?;
        funnel.without_period("CORRELATE")?;
        if let Some((_, span)) = &funnel.by {
            return Err(ParseError::new(
                *span,
                "CORRELATE compares converted and dropped customers over the whole funnel: leave out BY",
            )
            .with_help("narrow the funnel with WHERE, or CREATE COHORT and WHERE CUSTOMER IN it"));
        }
        if funnel.mode == FunnelMode::Unordered {
            return Err(self.err_here(
                "CORRELATE needs an ordered or strict funnel: an unordered funnel's window has no first step",
            ));
        }
        let mut significance = 0.05;
        if self.eat_kw("SIGNIFICANCE") {
            let t = self.next();
            significance = match t.tok {
                Tok::Float(x) => x,
                Tok::Int(n) => n as f64,
                other => {
                    return Err(ParseError::new(
                        t.span,
                        format!(
                            "expected a false discovery rate like 0.05, found {}",
                            describe(&other)
                        ),
                    ));
                }
            };
            if !(significance > 0.0 && significance <= 1.0) {
                return Err(ParseError::new(
                    t.span,
                    "SIGNIFICANCE must be above 0 and at most 1",
                ));
            }
        }
        Ok(Correlate { funnel, significance })
    }

    /// `CUSTOMERS CORRELATE … EVENT 'x' CONVERTED|DROPPED`, after `CUSTOMERS CORRELATE`.
    pub(super) fn correlate_drill(&mut self) -> Result<Drill, ParseError> {
        let correlate = self.correlate()?;
        let example = "(CUSTOMERS CORRELATE FUNNEL visit -> purchase WITHIN 7d EVENT 'review' CONVERTED)";
        self.expect_kw("EVENT", example)?;
        let event = self.name("an event name")?;
        let converted = if self.eat_kw("CONVERTED") {
            true
        } else if self.eat_kw("DROPPED") {
            false
        } else {
            return Err(self.err_here("expected CONVERTED or DROPPED after the event"));
        };
        Ok(Drill::Correlate {
            correlate: Box::new(correlate),
            event,
            converted,
        })
    }
}
