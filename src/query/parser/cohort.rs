//! The parsers of `CREATE COHORT`, `DROP COHORT` and `COHORTS` (docs/QUERY.md, "Cohorts"), of
//! customer sets, and of the `CUSTOMER [NOT] IN name` conjuncts of a statement's `WHERE`.
//!
//! Uses: `limits`, `model`; rooms `ast`, `lexer`, `parser`.

use super::{Parser, describe};
use crate::limits;
use crate::model::PROFILE_PREFIX;
use crate::query::ast::*;
use crate::query::lexer::Tok;
use crate::query::{ParseError, Span};

impl Parser<'_> {
    /// `CREATE COHORT name [STATIC] AS set`, after `CREATE`.
    pub(super) fn create_cohort(&mut self) -> Result<CreateCohort, ParseError> {
        self.expect_kw("COHORT", "(CREATE COHORT name AS DID purchase)")?;
        let name = self.name("a cohort name")?;
        let is_static = self.eat_kw("STATIC");
        self.expect_kw(
            "AS",
            "and the cohort's definition (CREATE COHORT name AS DID purchase)",
        )?;
        let start = self.peek().span.start;
        self.in_set = true;
        let set = self.customer_set();
        self.in_set = false;
        let set = set?;
        let end = self.last_end(start);
        let definition = self.text.get(start..end).unwrap_or_default().to_owned();
        Ok(CreateCohort {
            name,
            is_static,
            set,
            definition,
        })
    }

    /// `DROP COHORT name`, after `DROP`.
    pub(super) fn drop_cohort(&mut self) -> Result<(String, Span), ParseError> {
        self.expect_kw("COHORT", "(DROP COHORT name)")?;
        self.name("a cohort name")
    }

    /// The end of the token read last (or `fallback` when none was).
    fn last_end(&self, fallback: usize) -> usize {
        self.toks
            .get(self.pos.saturating_sub(1))
            .map_or(fallback, |t| t.span.end)
    }

    /// `set := and_set { OR and_set }`.
    pub(super) fn customer_set(&mut self) -> Result<CustomerSet, ParseError> {
        self.depth += 1;
        if self.depth > limits::QUERY_DEPTH_MAX {
            return Err(self.err_here(format!(
                "customer set nested deeper than {}",
                limits::QUERY_DEPTH_MAX
            )));
        }
        let mut left = self.set_and()?;
        while self.eat_kw("OR") {
            let right = self.set_and()?;
            left = CustomerSet::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn set_and(&mut self) -> Result<CustomerSet, ParseError> {
        let mut left = self.set_not()?;
        while self.eat_kw("AND") {
            let right = self.set_not()?;
            left = CustomerSet::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn set_not(&mut self) -> Result<CustomerSet, ParseError> {
        if self.eat_kw("NOT") {
            self.depth += 1;
            if self.depth > limits::QUERY_DEPTH_MAX {
                return Err(self.err_here(format!(
                    "customer set nested deeper than {}",
                    limits::QUERY_DEPTH_MAX
                )));
            }
            let inner = self.set_not()?;
            self.depth -= 1;
            return Ok(CustomerSet::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let set = self.customer_set()?;
            let t = self.next();
            if t.tok != Tok::RParen {
                return Err(ParseError::new(
                    t.span,
                    format!("expected `)`, found {}", describe(&t.tok)),
                ));
            }
            return Ok(set);
        }
        self.set_term()
    }

    /// `DID …`, `FIRST|LAST step WHERE pred`, `IN STAGE s`, `IN name`.
    fn set_term(&mut self) -> Result<CustomerSet, ParseError> {
        let t = self.peek();
        if self.eat_kw("DID") {
            return self.did().map(CustomerSet::Did);
        }
        if self.is_kw("FIRST") || self.is_kw("LAST") {
            let last = self.is_kw("LAST");
            self.pos += 1;
            let mut step = self.step()?;
            let Some(pred) = step.filter.take() else {
                let word = if last { "LAST" } else { "FIRST" };
                return Err(ParseError::new(
                    Span {
                        start: t.span.start,
                        end: step.span.end,
                    },
                    format!("{word} needs a WHERE: the property its event must have"),
                )
                .with_help(format!(
                    "e.g. {word} visit WHERE channel = 'mobile'; DID visit for any visit"
                )));
            };
            return Ok(CustomerSet::Edge { last, step, pred });
        }
        if matches!(&t.tok, Tok::Ident(name) if name.starts_with(PROFILE_PREFIX)) {
            return self.pred_not().map(CustomerSet::Profile);
        }
        if self.is_kw("CUSTOMERS") || self.is_kw("TOP") {
            return self.listed();
        }
        if self.eat_kw("IN") {
            if self.eat_kw("STAGE") {
                let t = self.next();
                let stage = match &t.tok {
                    Tok::Ident(s) | Tok::Str(s) => crate::model::Stage::parse(s),
                    _ => None,
                };
                return match stage {
                    Some(stage) => Ok(CustomerSet::InStage(stage, t.span)),
                    None => Err(ParseError::new(
                        t.span,
                        format!("expected a stage, found {}", describe(&t.tok)),
                    )
                    .with_help("stages are awareness, consideration, purchase, retention, advocacy")),
                };
            }
            let (name, span) = self.name("a cohort name")?;
            return Ok(CustomerSet::InCohort(name, span));
        }
        Err(ParseError::new(
            t.span,
            format!("expected a customer set, found {}", describe(&t.tok)),
        )
        .with_help("sets are DID step, FIRST step WHERE …, LAST step WHERE …, IN STAGE s, IN cohort, customer.NAME = value, CUSTOMERS … and TOP CUSTOMERS …, combined with AND, OR, NOT and ( )"))
    }

    /// `CUSTOMERS …` or `TOP CUSTOMERS …` as a set term: every customer the statement lists.
    /// Its own `WHERE` may not name cohorts or customer properties, nor may it take `LIMIT`
    /// (`CUSTOMERS`) or `BY COHORT`: a set combines those with AND.
    fn listed(&mut self) -> Result<CustomerSet, ParseError> {
        let start = self.peek().span.start;
        let statement = if self.eat_kw("TOP") {
            self.expect_kw("CUSTOMERS", "(TOP CUSTOMERS BY count LIMIT 10)")?;
            Statement::Top(self.top_customers()?)
        } else {
            self.pos += 1;
            Statement::Customers(self.customers()?)
        };
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(start, |t| t.span.end);
        let span = Span { start, end };
        let refuse =
            |what: &str, help: &str| Err(ParseError::new(span, what.to_owned()).with_help(help.to_owned()));
        if let Statement::Customers(c) = &statement {
            if matches!(c.drill, Drill::Cohort(_)) {
                return refuse(
                    "a customer set names a cohort's members as IN name",
                    "e.g. IN repeat_buyers",
                );
            }
            if c.limit.is_some() {
                return refuse(
                    "a customer set takes every customer listed: LIMIT does not apply",
                    "leave LIMIT out",
                );
            }
        }
        if let Some(common) = statement.common()
            && (!common.cohorts.is_empty() || common.profile.is_some() || !common.by_cohorts.is_empty())
        {
            return refuse(
                "inside a customer set, a statement's WHERE takes no cohorts or customer properties",
                "combine them with AND: CUSTOMERS FUNNEL … STEP 2 AND IN repeat_buyers",
            );
        }
        Ok(CustomerSet::Listed(Box::new(statement), span))
    }

    /// `DID step [AT LEAST n TIMES] [WITHIN d OF FIRST SEEN] [FROM t TO t]`, after `DID`.
    fn did(&mut self) -> Result<Did, ParseError> {
        let mut did = Did {
            step: self.step()?,
            at_least: 1,
            within_first_seen_us: None,
            range: None,
        };
        let mut at_least_given = false;
        loop {
            let t = self.peek();
            let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
            if self.eat_kw("AT") {
                if at_least_given {
                    return Err(dup("AT LEAST"));
                }
                at_least_given = true;
                self.expect_kw("LEAST", "(DID purchase AT LEAST 2 TIMES)")?;
                let (n, span) = self.int("a number of events")?;
                if n < 1 {
                    return Err(ParseError::new(span, "AT LEAST must be at least 1"));
                }
                self.expect_kw("TIMES", "(DID purchase AT LEAST 2 TIMES)")?;
                did.at_least = n as u64;
            } else if self.eat_kw("WITHIN") {
                if did.within_first_seen_us.is_some() {
                    return Err(dup("WITHIN"));
                }
                let d = self.next();
                let Tok::Duration(us) = d.tok else {
                    let e = ParseError::new(
                        d.span,
                        format!("expected a duration like 7d, found {}", describe(&d.tok)),
                    );
                    return Err(self.with_duration_hint(e, &d.tok));
                };
                if us <= 0 {
                    return Err(ParseError::new(d.span, "the window must be positive"));
                }
                for (word, what) in [("OF", "OF FIRST SEEN"), ("FIRST", "FIRST SEEN"), ("SEEN", "SEEN")] {
                    self.expect_kw(
                        word,
                        &format!("(WITHIN 7d {what}: days from the customer's first event)"),
                    )?;
                }
                did.within_first_seen_us = Some(us);
            } else if self.eat_kw("FROM") {
                if did.range.is_some() {
                    return Err(dup("FROM"));
                }
                let from = self.time()?;
                self.expect_kw("TO", "after FROM ...")?;
                did.range = Some((from, self.time()?));
            } else {
                return Ok(did);
            }
        }
    }

    /// Inside a customer set, whether the token `ahead` places on (after any `NOT` and `(`)
    /// starts a set term: a predicate's or a step's `AND`/`OR` stops before it, so that
    /// `DID visit WHERE x = 1 AND DID purchase` reads as two terms.
    pub(super) fn set_term_at(&self, ahead: usize) -> bool {
        if !self.in_set {
            return false;
        }
        let mut k = ahead;
        while let Some(t) = self.peek_at(k) {
            match &t.tok {
                Tok::LParen => k += 1,
                Tok::Ident(s) if s.eq_ignore_ascii_case("NOT") => k += 1,
                Tok::Ident(s) if s.starts_with(PROFILE_PREFIX) => return true,
                Tok::Ident(s) => {
                    let word = s.to_ascii_uppercase();
                    let next_is_name = self
                        .peek_at(k + 1)
                        .is_some_and(|n| matches!(n.tok, Tok::Ident(_) | Tok::Str(_)));
                    return matches!(
                        word.as_str(),
                        "DID" | "FIRST" | "LAST" | "IN" | "CUSTOMERS" | "TOP"
                    ) && next_is_name;
                }
                _ => return false,
            }
        }
        false
    }

    /// `BY COHORT` at the parser's position.
    pub(super) fn at_by_cohort(&self) -> bool {
        self.is_kw("BY")
            && self
                .peek_at(1)
                .is_some_and(|t| matches!(&t.tok, Tok::Ident(s) if s.eq_ignore_ascii_case("COHORT")))
    }

    /// `CUSTOMER [NOT] IN name` at the parser's position (a name, not a parenthesised list,
    /// which is the property `customer`'s IN list).
    pub(super) fn at_cohort_filter(&self) -> bool {
        if !self.is_kw("CUSTOMER") {
            return false;
        }
        let word = |k: usize, w: &str| {
            self.peek_at(k)
                .is_some_and(|t| matches!(&t.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(w)))
        };
        let name = |k: usize| {
            self.peek_at(k)
                .is_some_and(|t| matches!(t.tok, Tok::Ident(_) | Tok::Str(_)))
        };
        (word(1, "IN") && name(2)) || (word(1, "NOT") && word(2, "IN") && name(3))
    }

    /// Reads `CUSTOMER [NOT] IN name` (where [`at_cohort_filter`](Self::at_cohort_filter)).
    pub(super) fn cohort_filter(&mut self) -> Result<CohortFilter, ParseError> {
        self.pos += 1;
        let negated = self.eat_kw("NOT");
        self.expect_kw("IN", "(CUSTOMER IN cohort)")?;
        Ok(CohortFilter {
            name: self.name("a cohort name")?,
            negated,
        })
    }
}

/// Moves the `CUSTOMER [NOT] IN name` conjuncts of a statement's `WHERE` into `cohorts`; what
/// is left stays the event predicate. One under `OR` or `NOT` is refused: a cohort filter
/// selects customers, an event predicate events, and only their conjunction has one meaning.
pub(super) fn split_cohort_filters(
    pred: Pred,
    cohorts: &mut Vec<CohortFilter>,
    profile: &mut Option<Pred>,
) -> Result<Option<Pred>, ParseError> {
    match pred {
        Pred::InCohort(filter) => {
            cohorts.push(filter);
            Ok(None)
        }
        Pred::And(a, b) => {
            let a = split_cohort_filters(*a, cohorts, profile)?;
            let b = split_cohort_filters(*b, cohorts, profile)?;
            Ok(match (a, b) {
                (Some(a), Some(b)) => Some(Pred::And(Box::new(a), Box::new(b))),
                (one, None) | (None, one) => one,
            })
        }
        other => {
            if let Some(filter) = nested_cohort_filter(&other) {
                return Err(ParseError::new(
                    filter.name.1,
                    "CUSTOMER IN combines with the rest of WHERE by AND only",
                )
                .with_help("define a cohort that combines them: CREATE COHORT ab AS IN a OR IN b"));
            }
            let props = other.props();
            let on_profile = |p: &(String, Span)| p.0.starts_with(PROFILE_PREFIX);
            let customer = props.iter().find(|p| on_profile(p));
            match (customer, props.iter().find(|p| !on_profile(p))) {
                (None, _) => Ok(Some(other)),
                (Some(_), None) => {
                    *profile = Some(match profile.take() {
                        Some(before) => Pred::And(Box::new(before), Box::new(other)),
                        None => other,
                    });
                    Ok(None)
                }
                (Some(customer), Some(_)) => Err(ParseError::new(
                    customer.1,
                    "a customer property combines with event properties by AND only",
                )
                .with_help("a customer's profile holds one value per property; an event's properties are tested event by event")),
            }
        }
    }
}

/// A `CUSTOMER IN` anywhere inside `pred`.
pub(super) fn nested_cohort_filter(pred: &Pred) -> Option<&CohortFilter> {
    match pred {
        Pred::InCohort(filter) => Some(filter),
        Pred::And(a, b) | Pred::Or(a, b) => nested_cohort_filter(a).or_else(|| nested_cohort_filter(b)),
        Pred::Not(a) => nested_cohort_filter(a),
        Pred::Cmp { .. } | Pred::In { .. } | Pred::IsNull { .. } => None,
    }
}

/// Refuses `BY COHORT` where it has no meaning: statements other than FUNNEL, RETENTION, TREND,
/// LIFECYCLE, STICKINESS, PATHS and HEATMAP; drill-downs (which list one set), and beside a property `BY`.
pub(super) fn check_by_cohort(stmt: &Statement) -> Result<(), ParseError> {
    let Some(common) = stmt.common() else {
        return Ok(());
    };
    let Some((_, span)) = common.by_cohorts.first() else {
        return Ok(());
    };
    let refuse = |why: &str| Err(ParseError::new(*span, why.to_owned()));
    match stmt {
        Statement::Funnel(f) if f.by.is_some() => {
            refuse("BY COHORT and a property BY cannot be combined (yet)")
        }
        Statement::Trend(t) if t.by.is_some() => {
            refuse("BY COHORT and a property BY cannot be combined (yet)")
        }
        Statement::Paths(p) if p.by.is_some() => {
            refuse("BY COHORT and a property BY cannot be combined (yet)")
        }
        Statement::Funnel(_)
        | Statement::Retention(_)
        | Statement::Trend(_)
        | Statement::Lifecycle(_)
        | Statement::Stickiness(_)
        | Statement::Paths(_)
        | Statement::Heatmap(_) => Ok(()),
        Statement::Customers(_) | Statement::Explain(_) => Err(ParseError::new(
            *span,
            "a drill-down lists one set: use WHERE CUSTOMER IN name",
        )
        .with_help("BY COHORT is for FUNNEL, RETENTION, TREND, LIFECYCLE, STICKINESS, PATHS and HEATMAP")),
        _ => Err(ParseError::new(
            *span,
            "BY COHORT applies to FUNNEL, RETENTION, TREND, LIFECYCLE, STICKINESS, PATHS and HEATMAP",
        )),
    }
}
