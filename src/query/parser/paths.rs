//! The parser of `PATHS AFTER step | BEFORE step [STEPS k] [TOP n] [COLLAPSE REPEATS] [EDGES]
//! common…` (docs/QUERY.md, PATHS) and of its drill-down's `PATH 'a > b'`, after their first
//! words.
//!
//! Uses: `limits`; rooms `ast`, `lexer`.

use super::{Parser, describe};
use crate::limits;
use crate::query::ast::*;
use crate::query::lexer::Tok;
use crate::query::{ParseError, Span};

const EXAMPLE: &str = "(PATHS AFTER visit STEPS 3 TOP 10)";

impl Parser<'_> {
    /// `PATHS …`, after `PATHS`.
    pub(super) fn paths(&mut self) -> Result<Paths, ParseError> {
        let t = self.peek();
        let before = if self.eat_kw("BEFORE") {
            true
        } else if self.eat_kw("AFTER") {
            false
        } else {
            return Err(ParseError::new(
                t.span,
                format!("expected AFTER or BEFORE {EXAMPLE}, found {}", describe(&t.tok)),
            ));
        };
        let mut paths = Paths {
            anchor: self.step()?,
            before,
            steps: 3,
            top: 10,
            collapse: false,
            edges: false,
            session: None,
            by: None,
            common: Common::default(),
        };
        let (mut steps_given, mut top_given) = (false, false);
        loop {
            let t = self.peek();
            let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
            if self.eat_kw("STEPS") {
                if std::mem::replace(&mut steps_given, true) {
                    return Err(dup("STEPS"));
                }
                let (k, span) = self.int("a number of steps")?;
                let max = limits::PATH_STEPS_MAX;
                if !(1..=max as i64).contains(&k) {
                    return Err(ParseError::new(span, format!("STEPS must be 1..={max}")));
                }
                paths.steps = k as u32;
            } else if self.eat_kw("TOP") {
                if std::mem::replace(&mut top_given, true) {
                    return Err(dup("TOP"));
                }
                let (n, span) = self.int("a number of paths")?;
                if !(1..=i64::from(u32::MAX)).contains(&n) {
                    return Err(ParseError::new(span, "TOP must be at least 1"));
                }
                paths.top = n as u32;
            } else if self.eat_kw("COLLAPSE") {
                if paths.collapse {
                    return Err(dup("COLLAPSE REPEATS"));
                }
                self.expect_kw("REPEATS", "after COLLAPSE")?;
                paths.collapse = true;
            } else if self.eat_kw("EDGES") {
                if paths.edges {
                    return Err(dup("EDGES"));
                }
                paths.edges = true;
            } else if self.eat_kw("WITHIN") {
                if paths.session.is_some() {
                    return Err(dup("WITHIN SESSION"));
                }
                paths.session = Some(self.within_session()?);
            } else if !self.at_by_cohort() && self.eat_kw("BY") {
                if paths.by.is_some() {
                    return Err(dup("BY"));
                }
                paths.by = Some(self.name("a property name")?);
            } else if !self.common(&mut paths.common)? {
                break;
            }
        }
        Ok(paths)
    }

    /// `SESSION [d]` after `WITHIN`: the session gap, 30 minutes unless a duration follows.
    pub(super) fn within_session(&mut self) -> Result<i64, ParseError> {
        self.expect_kw("SESSION", "after WITHIN (WITHIN SESSION, or WITHIN SESSION 45m)")?;
        let t = self.peek();
        match t.tok {
            Tok::Duration(us) if us > 0 => {
                self.next();
                Ok(us)
            }
            Tok::Duration(_) => Err(ParseError::new(t.span, "the session gap must be positive")),
            _ => Ok(SESSION_GAP_US),
        }
    }

    /// `CUSTOMERS PATHS … PATH 'a > b'`, after `CUSTOMERS PATHS`.
    pub(super) fn paths_drill(&mut self) -> Result<Drill, ParseError> {
        let paths = self.paths()?;
        if paths.edges {
            return Err(self.err_here("CUSTOMERS PATHS lists a path's customers: leave out EDGES"));
        }
        if let Some((_, span)) = &paths.by {
            return Err(ParseError::new(
                *span,
                "CUSTOMERS PATHS lists one path's customers: leave out BY (or add WHERE p = value)",
            ));
        }
        self.expect_kw(
            "PATH",
            "(CUSTOMERS PATHS AFTER visit STEPS 3 PATH 'visit > view_product')",
        )?;
        let path = self.path_literal(&paths)?;
        Ok(Drill::Paths {
            paths: Box::new(paths),
            path,
        })
    }

    /// `PATH 'a > b > c'` of `CUSTOMERS PATHS …`, after `PATH`: the event names, split at `>`
    /// (each trimmed; none may be empty), at most the path's events.
    pub(super) fn path_literal(&mut self, paths: &Paths) -> Result<(Vec<String>, Span), ParseError> {
        let t = self.next();
        let Tok::Str(text) = t.tok else {
            return Err(ParseError::new(
                t.span,
                format!(
                    "expected a path in quotes ('visit > view_product'), found {}",
                    describe(&t.tok)
                ),
            ));
        };
        let names: Vec<String> = text.split('>').map(|n| n.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            return Err(ParseError::new(
                t.span,
                "a path is event names separated by `>`, none empty ('visit > view_product')",
            ));
        }
        let most = paths.steps as usize + 1;
        if names.len() > most {
            return Err(ParseError::new(
                t.span,
                format!(
                    "the path has {} events; these paths have at most {most} (STEPS + 1)",
                    names.len()
                ),
            ));
        }
        Ok((names, t.span))
    }
}
