//! Recursive-descent parser. Keywords are case-insensitive. A `WHERE` directly after a step
//! belongs to that step; a statement's own `WHERE` comes after its required clauses.

use super::ast::*;
use super::lexer::{Tok, Token, lex};
use super::{ParseError, Span};
use crate::limits;
use crate::model::Stage;

/// The statement keywords.
pub const STATEMENTS: [&str; 11] = [
    "FORGET",
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
];

/// Words with a meaning only in their clause (not reserved; they may also name events).
pub const CONTEXTUAL: [&str; 9] = [
    "FOR",
    "CUSTOMER",
    "STEP",
    "DROPPED",
    "CELL",
    "LIMIT",
    "MIN",
    "CUMULATIVE",
    "IN",
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
    _text: &'a str,
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
        _text: text,
    };
    let stmt = p.statement()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(ParseError::new(
            t.span,
            format!("unexpected {} after the end of the statement", describe(&t.tok)),
        ));
    }
    Ok(stmt)
}

fn describe(t: &Tok) -> String {
    match t {
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
        if self.eat_kw("FORGET") {
            self.expect_kw("CUSTOMER", "(FORGET CUSTOMER 'id')")?;
            let c = self.next();
            let customer = match c.tok {
                Tok::Str(s) | Tok::Ident(s) => (s, c.span),
                Tok::Int(n) => (n.to_string(), c.span),
                other => {
                    return Err(ParseError::new(
                        c.span,
                        format!("expected a customer id in quotes, found {}", describe(&other)),
                    ));
                }
            };
            return Ok(Statement::Forget(Forget {
                customer,
                span: t.span,
            }));
        }
        if self.eat_kw("EXPLAIN") {
            self.expect_kw("FUNNEL", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
            let funnel = Box::new(self.funnel()?);
            self.expect_kw("FOR", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
            self.expect_kw("CUSTOMER", "(EXPLAIN FUNNEL ... FOR CUSTOMER 'id')")?;
            let t = self.next();
            let customer = match t.tok {
                Tok::Str(s) | Tok::Ident(s) => (s, t.span),
                Tok::Int(n) => (n.to_string(), t.span),
                other => {
                    return Err(ParseError::new(
                        t.span,
                        format!("expected a customer id in quotes, found {}", describe(&other)),
                    ));
                }
            };
            return Ok(Statement::Explain(Explain { funnel, customer }));
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
                "statements are FUNNEL, RETENTION, TREND, TIMELINE, LIFECYCLE, STICKINESS, STAGES, TRANSITIONS, CUSTOMERS, EXPLAIN and FORGET CUSTOMER",
            );
        }
        Err(e)
    }

    fn name(&mut self, what: &str) -> Result<(String, Span), ParseError> {
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

    fn step(&mut self) -> Result<Step, ParseError> {
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
            while self.eat_kw("OR") {
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
        while self.eat_kw("OR") {
            let right = self.pred_and()?;
            left = Pred::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn pred_and(&mut self) -> Result<Pred, ParseError> {
        let mut left = self.pred_not()?;
        while self.eat_kw("AND") {
            let right = self.pred_not()?;
            left = Pred::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn pred_not(&mut self) -> Result<Pred, ParseError> {
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

    fn time(&mut self) -> Result<TimeLit, ParseError> {
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

    fn int(&mut self, what: &str) -> Result<(i64, Span), ParseError> {
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
    fn common(&mut self, c: &mut Common) -> Result<bool, ParseError> {
        let t = self.peek();
        let dup = |what: &str| ParseError::new(t.span, format!("{what} given twice"));
        if self.eat_kw("FROM") {
            if c.range.is_some() {
                return Err(dup("FROM"));
            }
            let from = self.time()?;
            self.expect_kw("TO", "after FROM ...")?;
            let to = self.time()?;
            c.range = Some((from, to));
            return Ok(true);
        }
        if self.eat_kw("WHERE") {
            if c.filter.is_some() {
                return Err(dup("WHERE"));
            }
            c.filter = Some(self.pred()?);
            return Ok(true);
        }
        if self.eat_kw("TZ") {
            if c.tz.is_some() {
                return Err(dup("TZ"));
            }
            let t = self.next();
            let Tok::Str(s) = t.tok else {
                return Err(ParseError::new(
                    t.span,
                    "expected a time zone name in quotes, like 'Europe/Berlin'",
                ));
            };
            c.tz = Some((s, t.span));
            return Ok(true);
        }
        Ok(false)
    }

    fn period(&mut self) -> Result<Period, ParseError> {
        let t = self.next();
        let p = match &t.tok {
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "hour" => Some(Period::Hour),
                "day" => Some(Period::Day),
                "week" => Some(Period::Week),
                "month" => Some(Period::Month),
                _ => None,
            },
            _ => None,
        };
        p.ok_or_else(|| {
            ParseError::new(
                t.span,
                format!(
                    "expected a period (hour, day, week, month), found {}",
                    describe(&t.tok)
                ),
            )
        })
    }

    fn funnel(&mut self) -> Result<Funnel, ParseError> {
        let mut steps = vec![self.step()?];
        while self.peek().tok == Tok::Arrow {
            self.next();
            steps.push(self.step()?);
        }
        if steps.len() > limits::FUNNEL_STEPS_MAX {
            return Err(ParseError::new(
                steps[limits::FUNNEL_STEPS_MAX].span,
                format!("a funnel has at most {} steps", limits::FUNNEL_STEPS_MAX),
            ));
        }
        let t = self.peek();
        if !self.eat_kw("WITHIN") {
            return Err(ParseError::new(
                t.span,
                format!("expected `->` or WITHIN, found {}", describe(&t.tok)),
            )
            .with_help("a funnel needs a window, e.g. FUNNEL visit -> purchase WITHIN 7d"));
        }
        let t = self.next();
        let Tok::Duration(within_us) = t.tok else {
            return Err(ParseError::new(
                t.span,
                format!("expected a duration like 7d, found {}", describe(&t.tok)),
            ));
        };
        if within_us <= 0 {
            return Err(ParseError::new(t.span, "the window must be positive"));
        }
        let mut f = Funnel {
            steps,
            within_us,
            mode: FunnelMode::Ordered,
            ties_strict: false,
            excludes: Vec::new(),
            common: Common::default(),
            by: None,
        };
        let (mut seen_mode, mut seen_ties) = (false, false);
        loop {
            let t = self.peek();
            if self.eat_kw("MODE") {
                if seen_mode {
                    return Err(ParseError::new(t.span, "MODE given twice"));
                }
                seen_mode = true;
                let m = self.next();
                f.mode = match &m.tok {
                    Tok::Ident(s) if s.eq_ignore_ascii_case("ORDERED") => FunnelMode::Ordered,
                    Tok::Ident(s) if s.eq_ignore_ascii_case("STRICT") => FunnelMode::Strict,
                    Tok::Ident(s) if s.eq_ignore_ascii_case("UNORDERED") => FunnelMode::Unordered,
                    other => {
                        return Err(ParseError::new(
                            m.span,
                            format!("expected ORDERED, STRICT or UNORDERED, found {}", describe(other)),
                        ));
                    }
                };
            } else if self.eat_kw("TIES") {
                if seen_ties {
                    return Err(ParseError::new(t.span, "TIES given twice"));
                }
                seen_ties = true;
                let m = self.next();
                f.ties_strict = match &m.tok {
                    Tok::Ident(s) if s.eq_ignore_ascii_case("ALLOW") => false,
                    Tok::Ident(s) if s.eq_ignore_ascii_case("STRICT") => true,
                    other => {
                        return Err(ParseError::new(
                            m.span,
                            format!("expected ALLOW or STRICT, found {}", describe(other)),
                        ));
                    }
                };
            } else if self.eat_kw("EXCLUDE") {
                let step = self.step()?;
                let n = f.steps.len();
                let (from, to) = if self.eat_kw("BETWEEN") {
                    let (a, sa) = self.int("a step number")?;
                    self.expect_kw("AND", "in BETWEEN i AND j")?;
                    let (b, sb) = self.int("a step number")?;
                    if a < 1 || b as usize > n || a >= b {
                        return Err(ParseError::new(
                            Span {
                                start: sa.start,
                                end: sb.end,
                            },
                            format!("BETWEEN needs 1 <= i < j <= {n} (the funnel's steps)"),
                        ));
                    }
                    (a as usize, b as usize)
                } else {
                    (1, n)
                };
                let span = Span {
                    start: t.span.start,
                    end: self
                        .toks
                        .get(self.pos.saturating_sub(1))
                        .map_or(t.span.end, |x| x.span.end),
                };
                f.excludes.push(Exclude { step, from, to, span });
            } else if self.eat_kw("BY") {
                if f.by.is_some() {
                    return Err(ParseError::new(t.span, "BY given twice"));
                }
                f.by = Some(self.name("a property name")?);
            } else if !self.common(&mut f.common)? {
                break;
            }
        }
        if f.steps.len() < 2 && f.mode != FunnelMode::Unordered {
            // A one-step funnel is allowed: it counts customers with the event in range.
        }
        Ok(f)
    }

    fn retention(&mut self) -> Result<Retention, ParseError> {
        let start = self.step()?;
        self.expect_kw("RETURN", "after the cohort step (RETENTION s RETURN r ...)")?;
        let ret = self.step()?;
        self.expect_kw("PERIOD", "(RETENTION s RETURN r PERIOD week PERIODS 8)")?;
        let pt = self.peek();
        let period = self.period()?;
        if period == Period::Hour {
            return Err(ParseError::new(
                pt.span,
                "retention periods are day, week or month",
            ));
        }
        self.expect_kw("PERIODS", "after PERIOD ...")?;
        let (n, span) = self.int("the number of periods")?;
        if !(0..=limits::RETENTION_PERIODS_MAX as i64).contains(&n) {
            return Err(ParseError::new(
                span,
                format!("PERIODS must be 0..={}", limits::RETENTION_PERIODS_MAX),
            ));
        }
        let mut r = Retention {
            start,
            ret,
            period,
            periods: n as u32,
            cohorting: Cohorting::FirstTime,
            on_or_after: false,
            common: Common::default(),
        };
        let mut seen_cohorting = false;
        loop {
            let t = self.peek();
            if self.is_kw("FIRST_TIME") || self.is_kw("RECURRING") {
                if seen_cohorting {
                    return Err(ParseError::new(t.span, "FIRST_TIME / RECURRING given twice"));
                }
                seen_cohorting = true;
                r.cohorting = if self.eat_kw("FIRST_TIME") {
                    Cohorting::FirstTime
                } else {
                    self.next();
                    Cohorting::Recurring
                };
            } else if self.eat_kw("ON_OR_AFTER") {
                r.on_or_after = true;
            } else if !self.common(&mut r.common)? {
                break;
            }
        }
        Ok(r)
    }

    fn prop_arg(&mut self) -> Result<(String, Span), ParseError> {
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

    fn trend(&mut self) -> Result<Trend, ParseError> {
        let t = self.next();
        let Tok::Ident(word) = &t.tok else {
            return Err(ParseError::new(
                t.span,
                format!("expected an aggregate, found {}", describe(&t.tok)),
            ));
        };
        let lower = word.to_ascii_lowercase();
        let agg = match lower.as_str() {
            "count" => Agg::Count,
            "uniq" => Agg::Uniq,
            "wau" => Agg::Wau,
            "mau" => Agg::Mau,
            "sum" => {
                let (p, s) = self.prop_arg()?;
                Agg::Sum(p, s)
            }
            "avg" => {
                let (p, s) = self.prop_arg()?;
                Agg::Avg(p, s)
            }
            "min" => {
                let (p, s) = self.prop_arg()?;
                Agg::Min(p, s)
            }
            "max" => {
                let (p, s) = self.prop_arg()?;
                Agg::Max(p, s)
            }
            w if w.len() == 3
                && w.starts_with('p')
                && w[1..].bytes().all(|b| b.is_ascii_digit())
                && &w[1..] != "00" =>
            {
                let q: u8 = w[1..]
                    .parse()
                    .map_err(|_| ParseError::new(t.span, "bad percentile"))?;
                let (p, s) = self.prop_arg()?;
                Agg::Pct(q, p, s)
            }
            _ => {
                let mut e = ParseError::new(t.span, format!("unknown aggregate `{word}`"));
                let all = [
                    "count", "uniq", "sum", "avg", "min", "max", "p50", "p90", "p99", "wau", "mau",
                ];
                e = match suggest(&lower, &all) {
                    Some(s) => e.with_help(format!("did you mean {s}?")),
                    None => e.with_help(
                        "aggregates: count, uniq, sum(p), avg(p), min(p), max(p), p50(p)..p99(p), wau, mau",
                    ),
                };
                return Err(e);
            }
        };
        let step = if self.eat_kw("OF") {
            Some(self.step()?)
        } else {
            None
        };
        self.expect_kw("PERIOD", "(TREND agg [OF step] PERIOD day)")?;
        let pt = self.peek();
        let period = self.period()?;
        if matches!(agg, Agg::Wau | Agg::Mau) && period != Period::Day {
            return Err(ParseError::new(
                pt.span,
                "wau and mau are computed per day: use PERIOD day",
            ));
        }
        let mut tr = Trend {
            agg,
            step,
            period,
            common: Common::default(),
            by: None,
        };
        loop {
            let t = self.peek();
            if self.eat_kw("BY") {
                if tr.by.is_some() {
                    return Err(ParseError::new(t.span, "BY given twice"));
                }
                let (name, span) = self.name("a property name")?;
                let top = if self.eat_kw("TOP") {
                    let (n, s) = self.int("a number of groups")?;
                    if n < 1 || n > i64::from(u32::MAX) {
                        return Err(ParseError::new(s, "TOP needs a positive number"));
                    }
                    Some(n as u32)
                } else {
                    None
                };
                tr.by = Some((name, span, top));
            } else if !self.common(&mut tr.common)? {
                break;
            }
        }
        Ok(tr)
    }

    fn lifecycle(&mut self) -> Result<Lifecycle, ParseError> {
        self.expect_kw("OF", "(LIFECYCLE OF step PERIOD week)")?;
        let step = self.step()?;
        self.expect_kw("PERIOD", "(LIFECYCLE OF step PERIOD week)")?;
        let period = self.period()?;
        let mut l = Lifecycle {
            step,
            period,
            common: Common::default(),
        };
        while self.common(&mut l.common)? {}
        Ok(l)
    }

    fn stickiness(&mut self) -> Result<Stickiness, ParseError> {
        self.expect_kw("OF", "(STICKINESS OF step PERIOD day)")?;
        let step = self.step()?;
        self.expect_kw("PERIOD", "(STICKINESS OF step PERIOD day)")?;
        let pt = self.peek();
        let period = self.period()?;
        if !matches!(period, Period::Day | Period::Week) {
            return Err(ParseError::new(pt.span, "stickiness periods are day or week"));
        }
        let mut st = Stickiness {
            step,
            period,
            min: 1,
            cumulative: false,
            common: Common::default(),
        };
        loop {
            let t = self.peek();
            if self.eat_kw("MIN") {
                let (n, span) = self.int("a minimum number of events")?;
                if !(1..=i64::from(u32::MAX)).contains(&n) {
                    return Err(ParseError::new(span, "MIN needs a positive number"));
                }
                st.min = n as u32;
            } else if self.eat_kw("CUMULATIVE") {
                if st.cumulative {
                    return Err(ParseError::new(t.span, "CUMULATIVE given twice"));
                }
                st.cumulative = true;
            } else if !self.common(&mut st.common)? {
                break;
            }
        }
        Ok(st)
    }

    fn stages(&mut self) -> Result<Stages, ParseError> {
        self.expect_kw("PERIOD", "(STAGES PERIOD week)")?;
        let period = self.period()?;
        let mut st = Stages {
            period,
            common: Common::default(),
        };
        while self.common(&mut st.common)? {}
        if let Some(f) = &st.common.filter {
            let _ = f;
            return Err(self.err_here("STAGES takes no WHERE (it is computed from the stage bitmaps)"));
        }
        Ok(st)
    }

    fn transitions(&mut self) -> Result<Transitions, ParseError> {
        let mut tr = Transitions {
            within_us: None,
            common: Common::default(),
        };
        loop {
            let t = self.peek();
            if self.eat_kw("WITHIN") {
                if tr.within_us.is_some() {
                    return Err(ParseError::new(t.span, "WITHIN given twice"));
                }
                let d = self.next();
                let Tok::Duration(us) = d.tok else {
                    return Err(ParseError::new(
                        d.span,
                        format!("expected a duration like 7d, found {}", describe(&d.tok)),
                    ));
                };
                tr.within_us = Some(us);
            } else if self.is_kw("WHERE") || self.is_kw("TZ") {
                return Err(self.err_here("TRANSITIONS takes FROM .. TO and WITHIN only"));
            } else if !self.common(&mut tr.common)? {
                break;
            }
        }
        Ok(tr)
    }

    fn customers(&mut self) -> Result<Customers, ParseError> {
        let t = self.peek();
        let drill = if self.eat_kw("FUNNEL") {
            let funnel = self.funnel()?;
            self.expect_kw("STEP", "(CUSTOMERS FUNNEL ... STEP k [DROPPED])")?;
            let (k, span) = self.int("a step number")?;
            if k < 1 || k as usize > funnel.steps.len() {
                return Err(ParseError::new(
                    span,
                    format!("STEP must be 1..={}", funnel.steps.len()),
                ));
            }
            let dropped = self.eat_kw("DROPPED");
            if dropped && k == 1 {
                return Err(ParseError::new(span, "DROPPED needs a step after the first"));
            }
            Drill::Funnel {
                funnel: Box::new(funnel),
                step: k as usize,
                dropped,
            }
        } else if self.eat_kw("RETENTION") {
            let retention = self.retention()?;
            self.expect_kw("CELL", "(CUSTOMERS RETENTION ... CELL '2026-02-02', 1)")?;
            let cohort = self.time()?;
            let c = self.next();
            if c.tok != Tok::Comma {
                return Err(ParseError::new(c.span, "expected `,` and the period number"));
            }
            let (k, span) = self.int("a period number")?;
            if k < 0 || k > i64::from(retention.periods) {
                return Err(ParseError::new(
                    span,
                    format!("the period must be 0..={}", retention.periods),
                ));
            }
            Drill::Retention {
                retention: Box::new(retention),
                cohort,
                period: k as u32,
            }
        } else if self.eat_kw("IN") {
            self.expect_kw("STAGE", "(CUSTOMERS IN STAGE purchase)")?;
            let s = self.next();
            let stage = match &s.tok {
                Tok::Ident(x) | Tok::Str(x) => Stage::parse(x),
                _ => None,
            }
            .ok_or_else(|| {
                ParseError::new(s.span, format!("expected a stage, found {}", describe(&s.tok)))
                    .with_help("stages are awareness, consideration, purchase, retention, advocacy")
            })?;
            let mut common = Common::default();
            loop {
                if self.is_kw("WHERE") || self.is_kw("TZ") {
                    return Err(self.err_here("CUSTOMERS IN STAGE takes FROM .. TO only"));
                }
                if !self.common(&mut common)? {
                    break;
                }
            }
            Drill::Stage { stage, common }
        } else {
            return Err(ParseError::new(
                t.span,
                format!(
                    "expected FUNNEL, RETENTION or IN STAGE after CUSTOMERS, found {}",
                    describe(&t.tok)
                ),
            ));
        };
        let limit = if self.eat_kw("LIMIT") {
            let (n, span) = self.int("a number of customers")?;
            if n < 0 {
                return Err(ParseError::new(span, "LIMIT must not be negative"));
            }
            Some(n as u64)
        } else {
            None
        };
        Ok(Customers { drill, limit })
    }

    fn timeline(&mut self) -> Result<Timeline, ParseError> {
        let t = self.next();
        let customer = match t.tok {
            Tok::Str(s) => (s, t.span),
            Tok::Int(n) => (n.to_string(), t.span),
            Tok::Ident(s) => (s, t.span),
            other => {
                return Err(ParseError::new(
                    t.span,
                    format!("expected a customer id in quotes, found {}", describe(&other)),
                ));
            }
        };
        let mut tl = Timeline {
            customer,
            common: Common::default(),
        };
        while self.common(&mut tl.common)? {}
        Ok(tl)
    }
}

/// Edit distance (Levenshtein, case-insensitive).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
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
