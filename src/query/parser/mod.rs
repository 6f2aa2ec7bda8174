//! Recursive-descent parser. Keywords are case-insensitive. A `WHERE` directly after a step
//! belongs to that step; a statement's own `WHERE` comes after its required clauses.
//!
//! Uses: `limits`; rooms `ast`, `lexer`, `parser`.

mod clauses;
mod attribution;
mod cohort;
mod paths;
mod correlate;
mod predict;
mod statements;
mod top;

use super::ast::*;
use super::lexer::{Tok, Token, lex};
use super::{ParseError, Span};
use crate::limits;

/// The statement keywords.
pub const STATEMENTS: [&str; 26] = [
    "FORGET",
    "LINK",
    "UNLINK",
    "LINKS",
    "CREATE",
    "DROP",
    "COHORTS",
    "FUNNEL",
    "RETENTION",
    "TREND",
    "TIMELINE",
    "LIFECYCLE",
    "STICKINESS",
    "STAGES",
    "TRANSITIONS",
    "CUSTOMERS",
    "EXPLAIN",
    "TOP",
    "RFM",
    "PATHS",
    "HEATMAP",
    "ATTRIBUTION",
    "CORRELATE",
    "CHANGES",
    "FIT",
    "PREDICT",
];

/// Words with a meaning only in their clause (not reserved; they may also name events).
pub const CONTEXTUAL: [&str; 49] = [
    "COHORT",
    "VALUE",
    "SEGMENT",
    "AS",
    "STATIC",
    "DID",
    "AT",
    "LEAST",
    "TIMES",
    "FIRST",
    "LAST",
    "SEEN",
    "STAGE",
    "FOR",
    "CUSTOMER",
    "STEP",
    "DROPPED",
    "CELL",
    "LIMIT",
    "MIN",
    "CUMULATIVE",
    "IN",
    "PERIOD_ZERO_RETURNS",
    "EXCLUSION",
    "CHAIN",
    "WEEK",
    "START",
    "ASC",
    "DESC",
    "HOLDING",
    "PERCENTILES",
    "AFTER",
    "BEFORE",
    "STEPS",
    "COLLAPSE",
    "REPEATS",
    "EDGES",
    "PATH",
    "MODEL",
    "HALF_LIFE",
    "LOOKBACK",
    "SESSION",
    "SIGNIFICANCE",
    "EVENT",
    "CONVERTED",
    "UNIT",
    "HORIZON",
    "DISCOUNT",
    "SUMMARY",
];

/// Every reserved word of the query language.
pub const KEYWORDS: &[&str] = &[
    "FORGET",
    "FUNNEL",
    "RETENTION",
    "TREND",
    "TIMELINE",
    "WITHIN",
    "MODE",
    "ORDERED",
    "STRICT",
    "UNORDERED",
    "TIES",
    "ALLOW",
    "EXCLUDE",
    "BETWEEN",
    "AND",
    "OR",
    "NOT",
    "FROM",
    "TO",
    "WHERE",
    "BY",
    "TZ",
    "RETURN",
    "PERIOD",
    "PERIODS",
    "FIRST_TIME",
    "RECURRING",
    "ON_OR_AFTER",
    "OF",
    "TOP",
    "STAGE",
    "ANY",
    "IN",
    "IS",
    "NULL",
];

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// The statement's `PERIOD`, once read (`WEEK START` needs a week).
    period: Option<Period>,
    /// Inside a customer set (`CREATE COHORT … AS`): a predicate's or a step's `AND`/`OR`
    /// stops before a set term.
    in_set: bool,
    text: &'a str,
}

/// Parses one statement (an optional trailing `;` is allowed).
pub fn parse(text: &str) -> Result<Statement, ParseError> {
    if text.len() > limits::QUERY_BYTES_MAX {
        return Err(ParseError::new(
            Span {
                start: limits::QUERY_BYTES_MAX,
                end: text.len(),
            },
            format!(
                "query of {} bytes exceeds the limit of {}",
                text.len(),
                limits::QUERY_BYTES_MAX
            ),
        ));
    }
    let text_trimmed = text.trim_end();
    let body = text_trimmed.strip_suffix(';').unwrap_or(text_trimmed);
    let mut p = Parser {
        toks: lex(body)?,
        pos: 0,
        depth: 0,
        period: None,
        in_set: false,
        text,
    };
    let stmt = p.statement()?;
    cohort::check_by_cohort(&stmt)?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(ParseError::new(
            t.span,
            format!("unexpected {} after the end of the statement", describe(&t.tok)),
        ));
    }
    Ok(stmt)
}

/// Parses a customer set alone (a saved cohort's definition, as `CREATE COHORT … AS` wrote it).
pub fn parse_set(text: &str) -> Result<CustomerSet, ParseError> {
    let mut p = Parser {
        toks: lex(text)?,
        pos: 0,
        depth: 0,
        period: None,
        in_set: true,
        text,
    };
    let set = p.customer_set()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(ParseError::new(
            t.span,
            format!(
                "unexpected {} after the end of the customer set",
                describe(&t.tok)
            ),
        ));
    }
    Ok(set)
}

fn describe(token: &Tok) -> String {
    match token {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Float(n) => format!("number {n}"),
        Tok::Duration(_) => "a duration".into(),
        Tok::Arrow => "`->`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Cmp(op) => format!("`{op}`"),
        Tok::Minus => "`-`".into(),
        Tok::Eof => "end of query".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .cloned()
            .unwrap_or(Token {
                tok: Tok::Eof,
                span: Span::default(),
            })
    }

    /// The token `ahead` places after the next one (`None` past the end).
    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.toks.get(self.pos + ahead)
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str, what: &str) -> Result<Span, ParseError> {
        let t = self.peek();
        if self.eat_kw(kw) {
            return Ok(t.span);
        }
        Err(ParseError::new(
            t.span,
            format!("expected {kw} {what}, found {}", describe(&t.tok)),
        ))
    }

    fn err_here(&self, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.peek().span, msg)
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let t = self.peek();
        if self.eat_kw("FUNNEL") {
            return self.funnel().map(Statement::Funnel);
        }
        if self.eat_kw("RETENTION") {
            return self.retention().map(Statement::Retention);
        }
        if self.eat_kw("TREND") {
            return self.trend().map(Statement::Trend);
        }
        if self.eat_kw("TIMELINE") {
            return self.timeline().map(Statement::Timeline);
        }
        if self.eat_kw("LIFECYCLE") {
            return self.lifecycle().map(Statement::Lifecycle);
        }
        if self.eat_kw("STICKINESS") {
            return self.stickiness().map(Statement::Stickiness);
        }
        if self.eat_kw("STAGES") {
            return self.stages().map(Statement::Stages);
        }
        if self.eat_kw("TRANSITIONS") {
            return self.transitions().map(Statement::Transitions);
        }
        if self.eat_kw("CUSTOMERS") {
            return self.customers().map(Statement::Customers);
        }
        if self.eat_kw("TOP") {
            self.expect_kw("CUSTOMERS", "(TOP CUSTOMERS BY count LIMIT 10)")?;
            return self.top_customers().map(Statement::Top);
        }
        if self.eat_kw("RFM") {
            return self.rfm().map(Statement::Rfm);
        }
        if self.eat_kw("PATHS") {
            return self.paths().map(Statement::Paths);
        }
        if self.eat_kw("HEATMAP") {
            return self.heatmap().map(Statement::Heatmap);
        }
        if self.eat_kw("ATTRIBUTION") {
            return self.attribution().map(Statement::Attribution);
        }
        if self.eat_kw("CORRELATE") {
            return self.correlate().map(|c| Statement::Correlate(Box::new(c)));
        }
        if self.eat_kw("CHANGES") {
            return self.changes().map(|c| Statement::Changes(Box::new(c)));
        }
        if self.eat_kw("FIT") {
            return self.predict(false).map(|p| Statement::Fit(Box::new(p)));
        }
        if self.eat_kw("PREDICT") {
            return self.predict(true).map(|p| Statement::Predict(Box::new(p)));
        }
        if self.eat_kw("FORGET") {
            return self.forget(t.span).map(Statement::Forget);
        }
        if self.eat_kw("CREATE") {
            return self.create_cohort().map(Statement::CreateCohort);
        }
        if self.eat_kw("DROP") {
            return self.drop_cohort().map(Statement::DropCohort);
        }
        if self.eat_kw("COHORTS") {
            return Ok(Statement::Cohorts);
        }
        if let Some(statement) = self.link_statement(t.span) {
            return statement;
        }
        if self.eat_kw("EXPLAIN") {
            return self.explain().map(Statement::Explain);
        }
        let mut e = ParseError::new(
            t.span,
            format!("expected a statement, found {}", describe(&t.tok)),
        );
        if let Tok::Ident(s) = &t.tok
            && let Some(best) = crate::query::parser::suggest(s, &STATEMENTS)
        {
            e = e.with_help(format!("did you mean {best}?"));
        } else {
            e = e.with_help(
                "statements are FUNNEL, RETENTION, TREND, TIMELINE, LIFECYCLE, STICKINESS, STAGES, TRANSITIONS, CUSTOMERS, TOP CUSTOMERS, RFM, PATHS, HEATMAP, ATTRIBUTION, CORRELATE, CHANGES, FIT, PREDICT, EXPLAIN, FORGET CUSTOMER, CREATE COHORT, DROP COHORT, COHORTS, LINK, UNLINK and LINKS",
            );
        }
        Err(e)
    }
}

impl Parser<'_> {
    /// `LINK 'anonymous' TO 'known'`, `UNLINK 'anonymous'` or `LINKS ['id']` (`span`: the
    /// statement's first word), when the statement is one of them.
    fn link_statement(&mut self, span: Span) -> Option<Result<Statement, ParseError>> {
        if self.eat_kw("LINK") {
            return Some((|| {
                let anonymous = self.customer_id()?;
                self.expect_kw("TO", "(LINK 'anonymous id' TO 'known id')")?;
                let known = self.customer_id()?;
                Ok(Statement::Link(Link {
                    anonymous,
                    known,
                    span,
                }))
            })());
        }
        if self.eat_kw("UNLINK") {
            return Some(self.customer_id().map(Statement::Unlink));
        }
        if self.eat_kw("LINKS") {
            let id = match self.peek().tok {
                Tok::Str(_) | Tok::Int(_) => self.customer_id().map(Some),
                _ => Ok(None),
            };
            return Some(id.map(Statement::Links));
        }
        None
    }

    /// `FORGET CUSTOMER 'id'`, after `FORGET` (at `span`).
    fn forget(&mut self, span: Span) -> Result<Forget, ParseError> {
        self.expect_kw("CUSTOMER", "(FORGET CUSTOMER 'id')")?;
        let customer = self.customer_id()?;
        Ok(Forget { customer, span })
    }

    /// `EXPLAIN FUNNEL … FOR CUSTOMER 'id'`, after `EXPLAIN`.
    fn explain(&mut self) -> Result<Explain, ParseError> {
        self.expect_kw("FUNNEL", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
        let funnel = Box::new(self.funnel()?);
        funnel.without_period("EXPLAIN")?;
        self.expect_kw("FOR", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
        self.expect_kw("CUSTOMER", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
        let customer = self.customer_id()?;
        Ok(Explain { funnel, customer })
    }

    /// A customer id: a string, a name or an integer.
    fn customer_id(&mut self) -> Result<(String, Span), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) | Tok::Ident(s) => Ok((s, t.span)),
            Tok::Int(n) => Ok((n.to_string(), t.span)),
            other => Err(ParseError::new(
                t.span,
                format!("expected a customer id in quotes, found {}", describe(&other)),
            )),
        }
    }
}

/// Edit distance (Levenshtein, case-insensitive).
pub fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.to_lowercase().chars().collect();
    let right: Vec<char> = right.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=right.len()).collect();
    for (i, ca) in left.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in right.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[right.len()]
}

/// The closest candidate within a small edit distance.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, c)| c)
}
