//! One parser per statement, each reading the statement's grammar of docs/QUERY.md after its
//! keyword.
//!
//! Uses: `limits`, `model`; rooms `ast`, `lexer`.

use super::{Parser, describe, suggest};
use crate::limits;
use crate::model::Stage;
use crate::query::ast::*;
use crate::query::lexer::Tok;
use crate::query::{ParseError, Span};

impl Parser<'_> {
    pub(super) fn funnel(&mut self) -> Result<Funnel, ParseError> {
        let mut first = vec![self.first_time()];
        let mut steps = vec![self.step()?];
        while self.peek().tok == Tok::Arrow {
            self.next();
            first.push(self.first_time());
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
        let (within_us, session) = if self.is_kw("SESSION") {
            let at = self.peek().span;
            (i64::MAX, Some((self.within_session()?, at)))
        } else {
            let t = self.next();
            let Tok::Duration(within_us) = t.tok else {
                let e = ParseError::new(
                    t.span,
                    format!(
                        "expected a duration like 7d, or SESSION, found {}",
                        describe(&t.tok)
                    ),
                );
                return Err(self.with_duration_hint(e, &t.tok));
            };
            if within_us <= 0 {
                return Err(ParseError::new(t.span, "the window must be positive"));
            }
            (within_us, None)
        };
        let mut f = Funnel {
            steps,
            within_us,
            session,
            mode: FunnelMode::Ordered,
            ties_strict: false,
            excludes: Vec::new(),
            exclusion_chain: false,
            common: Common::default(),
            by: None,
            by2: None,
            period: None,
            first,
            holding: None,
            percentiles: false,
        };
        let (mut seen_mode, mut seen_ties, mut seen_exclusion) = (false, false, false);
        loop {
            let t = self.peek();
            if self.eat_kw("MODE") {
                if seen_mode {
                    return Err(ParseError::new(t.span, "MODE given twice"));
                }
                seen_mode = true;
                f.mode = self.funnel_mode()?;
            } else if self.eat_kw("TIES") {
                if seen_ties {
                    return Err(ParseError::new(t.span, "TIES given twice"));
                }
                seen_ties = true;
                f.ties_strict = self.ties_strict()?;
            } else if self.eat_kw("EXCLUDE") {
                let exclude = self.exclude(t.span, f.steps.len())?;
                f.excludes.push(exclude);
            } else if self.eat_kw("EXCLUSION") {
                if seen_exclusion {
                    return Err(ParseError::new(t.span, "EXCLUSION given twice"));
                }
                seen_exclusion = true;
                f.exclusion_chain = self.exclusion_chain()?;
            } else if !self.funnel_form(&mut f)? && !self.common(&mut f.common)? {
                break;
            }
        }
        // A one-step funnel is allowed: it counts customers with the event in range.
        Ok(f)
    }

    /// A funnel's breakdown and form clauses (`BY p [, p2]`, `PERCENTILES`, `HOLDING p`,
    /// `PERIOD p`) at the parser's position: true when one was read.
    fn funnel_form(&mut self, funnel: &mut Funnel) -> Result<bool, ParseError> {
        let t = self.peek();
        let twice = |what: &str| Err(ParseError::new(t.span, format!("{what} given twice")));
        if !self.at_by_cohort() && self.eat_kw("BY") {
            if funnel.by.is_some() {
                return twice("BY");
            }
            funnel.by = Some(self.name("a property name")?);
            if self.peek().tok == Tok::Comma {
                self.next();
                funnel.by2 = Some(self.name("a second property name")?);
            }
        } else if self.eat_kw("PERCENTILES") {
            if funnel.percentiles {
                return twice("PERCENTILES");
            }
            funnel.percentiles = true;
        } else if self.eat_kw("HOLDING") {
            if funnel.holding.is_some() {
                return twice("HOLDING");
            }
            funnel.holding = Some(self.name("a property name")?);
        } else if self.eat_kw("PERIOD") {
            if funnel.period.is_some() {
                return twice("PERIOD");
            }
            let at = self.peek().span;
            funnel.period = Some((self.period()?, at));
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Eats `FIRST` before a funnel step (true): the modifier, when what follows starts a step
    /// (`FIRST visit`, `FIRST 'a b'`, `FIRST STAGE purchase`); otherwise `FIRST` is an event's
    /// name (`FIRST -> visit`, `FIRST OR visit`, `FIRST WITHIN 1d`).
    fn first_time(&mut self) -> bool {
        let step_follows = self.peek_at(1).is_some_and(|t| match &t.tok {
            Tok::Str(_) => true,
            Tok::Ident(s) => !["WITHIN", "OR", "WHERE"]
                .iter()
                .any(|k| s.eq_ignore_ascii_case(k)),
            _ => false,
        });
        step_follows && self.eat_kw("FIRST")
    }

    /// The mode after `MODE`.
    fn funnel_mode(&mut self) -> Result<FunnelMode, ParseError> {
        let m = self.next();
        Ok(match &m.tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case("ORDERED") => FunnelMode::Ordered,
            Tok::Ident(s) if s.eq_ignore_ascii_case("STRICT") => FunnelMode::Strict,
            Tok::Ident(s) if s.eq_ignore_ascii_case("UNORDERED") => FunnelMode::Unordered,
            other => {
                return Err(ParseError::new(
                    m.span,
                    format!("expected ORDERED, STRICT or UNORDERED, found {}", describe(other)),
                ));
            }
        })
    }

    /// One of two words: false for `first`, true for `second`.
    fn either(&mut self, first: &str, second: &str) -> Result<bool, ParseError> {
        let m = self.next();
        match &m.tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case(first) => Ok(false),
            Tok::Ident(s) if s.eq_ignore_ascii_case(second) => Ok(true),
            other => Err(ParseError::new(
                m.span,
                format!("expected {first} or {second}, found {}", describe(other)),
            )),
        }
    }

    /// The exclusion form after `EXCLUSION`: true for CHAIN.
    fn exclusion_chain(&mut self) -> Result<bool, ParseError> {
        self.either("CUSTOMER", "CHAIN").map_err(|e| {
            e.with_help("EXCLUSION CUSTOMER (default) removes the customer; EXCLUSION CHAIN only the chains")
        })
    }

    /// The tie policy after `TIES`: true for STRICT.
    fn ties_strict(&mut self) -> Result<bool, ParseError> {
        self.either("ALLOW", "STRICT")
    }

    /// `EXCLUDE step [BETWEEN i AND j]` after its keyword (at `keyword`) in a funnel of `count`
    /// steps.
    fn exclude(&mut self, keyword: Span, count: usize) -> Result<Exclude, ParseError> {
        let step = self.step()?;
        let (from, to) = if self.eat_kw("BETWEEN") {
            let (a, sa) = self.int("a step number")?;
            self.expect_kw("AND", "in BETWEEN i AND j")?;
            let (b, sb) = self.int("a step number")?;
            if a < 1 || b as usize > count || a >= b {
                return Err(ParseError::new(
                    Span {
                        start: sa.start,
                        end: sb.end,
                    },
                    format!("BETWEEN needs 1 <= i < j <= {count} (the funnel's steps)"),
                ));
            }
            (a as usize, b as usize)
        } else {
            (1, count)
        };
        let span = Span {
            start: keyword.start,
            end: self
                .toks
                .get(self.pos.saturating_sub(1))
                .map_or(keyword.end, |x| x.span.end),
        };
        Ok(Exclude { step, from, to, span })
    }

    pub(super) fn retention(&mut self) -> Result<Retention, ParseError> {
        let start = self.step()?;
        self.expect_kw("RETURN", "after the cohort step (RETENTION s RETURN r ...)")?;
        let ret = self.step()?;
        self.expect_kw("PERIOD", "(RETENTION s RETURN r PERIOD week PERIODS 8)")?;
        let period = self.period()?;
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
            zero_returns: false,
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
            } else if self.eat_kw("PERIOD_ZERO_RETURNS") {
                r.zero_returns = true;
            } else if !self.common(&mut r.common)? {
                break;
            }
        }
        Ok(r)
    }

    /// A TREND aggregate: `count`, `uniq`, `sum(p)`, …
    fn agg(&mut self) -> Result<Agg, ParseError> {
        let t = self.next();
        let Tok::Ident(word) = &t.tok else {
            return Err(ParseError::new(
                t.span,
                format!("expected an aggregate, found {}", describe(&t.tok)),
            ));
        };
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "count" => Agg::Count,
            "uniq" => Agg::Uniq,
            "sessions" => Agg::Sessions,
            "bounce_rate" => Agg::BounceRate,
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
            "nps" => {
                let (p, s) = self.prop_arg()?;
                Agg::Nps(p, s)
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
                    "count",
                    "uniq",
                    "sum",
                    "avg",
                    "min",
                    "max",
                    "p50",
                    "p90",
                    "p99",
                    "wau",
                    "mau",
                    "nps",
                    "sessions",
                    "bounce_rate",
                ];
                e = match suggest(&lower, &all) {
                    Some(s) => e.with_help(format!("did you mean {s}?")),
                    None => e.with_help(
                        "aggregates: count, uniq, sum(p), avg(p), min(p), max(p), p50(p)..p99(p), nps(p), wau, mau, sessions, bounce_rate, avg(session_length), p50(session_length)",
                    ),
                };
                return Err(e);
            }
        })
    }

    pub(super) fn trend(&mut self) -> Result<Trend, ParseError> {
        let agg = self.agg()?;
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
            by2: None,
            session: None,
        };
        loop {
            let t = self.peek();
            if !self.at_by_cohort() && self.eat_kw("BY") {
                if tr.by.is_some() {
                    return Err(ParseError::new(t.span, "BY given twice"));
                }
                self.trend_by(&mut tr)?;
            } else if self.eat_kw("SESSION") {
                self.trend_session(&mut tr, t.span)?;
            } else if !self.common(&mut tr.common)? {
                break;
            }
        }
        Ok(tr)
    }

    /// `CHANGES agg [OF step] PERIOD p BY p1[, p2] [TOP n] …`, after `CHANGES`: TREND's
    /// grammar, with BY required.
    pub(super) fn changes(&mut self) -> Result<Changes, ParseError> {
        let trend = self.trend()?;
        if trend.by.is_none() {
            return Err(self
                .err_here("CHANGES needs BY p: the groups whose changes make up the total's")
                .with_help("e.g. CHANGES uniq OF purchase PERIOD month BY channel"));
        }
        Ok(Changes { trend })
    }

    /// TREND's `SESSION d`, after `SESSION` (at `span`).
    fn trend_session(&mut self, tr: &mut Trend, span: Span) -> Result<(), ParseError> {
        if tr.session.is_some() {
            return Err(ParseError::new(span, "SESSION given twice"));
        }
        if !tr.agg.of_sessions() {
            return Err(ParseError::new(
                span,
                "SESSION sets the gap of sessions: it goes with sessions, bounce_rate, avg(session_length) or pNN(session_length)",
            ));
        }
        let d = self.next();
        match d.tok {
            Tok::Duration(us) if us > 0 => tr.session = Some((us, d.span)),
            _ => {
                let e = ParseError::new(d.span, "expected a positive duration like 30m");
                return Err(self.with_duration_hint(e, &d.tok));
            }
        }
        Ok(())
    }

    /// TREND's `BY p [, p2] [TOP n]`, after `BY`.
    fn trend_by(&mut self, tr: &mut Trend) -> Result<(), ParseError> {
        let (name, span) = self.name("a property name")?;
        if self.peek().tok == Tok::Comma {
            self.next();
            tr.by2 = Some(self.name("a second property name")?);
        }
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
        Ok(())
    }

    pub(super) fn lifecycle(&mut self) -> Result<Lifecycle, ParseError> {
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

    /// `HEATMAP [OF step] common…`, after `HEATMAP`.
    pub(super) fn heatmap(&mut self) -> Result<Heatmap, ParseError> {
        let step = if self.eat_kw("OF") {
            Some(self.step()?)
        } else {
            None
        };
        let mut common = Common::default();
        while self.common(&mut common)? {}
        Ok(Heatmap { step, common })
    }

    pub(super) fn stickiness(&mut self) -> Result<Stickiness, ParseError> {
        self.expect_kw("OF", "(STICKINESS OF step PERIOD day)")?;
        let step = self.step()?;
        self.expect_kw("PERIOD", "(STICKINESS OF step PERIOD day)")?;
        let period = self.period()?;
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

    pub(super) fn stages(&mut self) -> Result<Stages, ParseError> {
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

    pub(super) fn transitions(&mut self) -> Result<Transitions, ParseError> {
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
                    let e = ParseError::new(
                        d.span,
                        format!("expected a duration like 7d, found {}", describe(&d.tok)),
                    );
                    return Err(self.with_duration_hint(e, &d.tok));
                };
                tr.within_us = Some(us);
            } else if self.is_kw("TZ") {
                return Err(self.err_here("TRANSITIONS takes FROM .. TO, WITHIN and WHERE CUSTOMER IN only"));
            } else if self.is_kw("WHERE") {
                self.common(&mut tr.common)?;
                if tr.common.filter.is_some() {
                    return Err(ParseError::new(
                        t.span,
                        "TRANSITIONS takes FROM .. TO, WITHIN and WHERE CUSTOMER IN only",
                    ));
                }
            } else if !self.common(&mut tr.common)? {
                break;
            }
        }
        Ok(tr)
    }

    pub(super) fn customers(&mut self) -> Result<Customers, ParseError> {
        let t = self.peek();
        let drill = if self.eat_kw("FUNNEL") {
            let funnel = self.funnel()?;
            funnel.without_period("CUSTOMERS")?;
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
        } else if self.is_kw("IN")
            && self
                .peek_at(1)
                .is_some_and(|t| matches!(&t.tok, Tok::Ident(s) if s.eq_ignore_ascii_case("COHORT")))
        {
            self.pos += 2;
            Drill::Cohort(self.name("a cohort name")?)
        } else if self.eat_kw("IN") {
            self.stage_drill()?
        } else if self.eat_kw("RFM") {
            let rfm = self.rfm()?;
            self.expect_kw(
                "SEGMENT",
                "(CUSTOMERS RFM OF purchase VALUE amount SEGMENT champions)",
            )?;
            let segment = self.name("an RFM segment")?;
            if !RFM_SEGMENTS.contains(&segment.0.as_str()) {
                let mut e = ParseError::new(segment.1, format!("unknown RFM segment `{}`", segment.0));
                e = match suggest(&segment.0, &RFM_SEGMENTS) {
                    Some(s) => e.with_help(format!("did you mean `{s}`?")),
                    None => e.with_help(format!("the segments are {}", RFM_SEGMENTS.join(", "))),
                };
                return Err(e);
            }
            Drill::Rfm {
                rfm: Box::new(rfm),
                segment,
            }
        } else if self.eat_kw("PATHS") {
            self.paths_drill()?
        } else if self.eat_kw("CORRELATE") {
            self.correlate_drill()?
        } else if self.eat_kw("PREDICT") {
            self.predict_drill()?
        } else {
            return Err(ParseError::new(
                t.span,
                format!(
                    "expected FUNNEL, RETENTION, RFM, PATHS, CORRELATE, PREDICT, IN STAGE or IN COHORT after CUSTOMERS, found {}",
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

    pub(super) fn timeline(&mut self) -> Result<Timeline, ParseError> {
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
            limit: None,
            common: Common::default(),
        };
        loop {
            let at = self.peek().span;
            if self.eat_kw("LIMIT") {
                if tl.limit.is_some() {
                    return Err(ParseError::new(at, "LIMIT given twice"));
                }
                let (n, span) = self.int("a number of events")?;
                if n < 1 {
                    return Err(ParseError::new(span, "LIMIT must be at least 1"));
                }
                tl.limit = Some(n as u64);
            } else if !self.common(&mut tl.common)? {
                break;
            }
        }
        Ok(tl)
    }

    /// `IN STAGE s { FROM .. TO | WHERE CUSTOMER IN … }` of CUSTOMERS, after `IN`.
    fn stage_drill(&mut self) -> Result<Drill, ParseError> {
        self.expect_kw(
            "STAGE",
            "(CUSTOMERS IN STAGE purchase, or CUSTOMERS IN COHORT name)",
        )?;
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
            let at = self.peek().span;
            if self.is_kw("TZ") {
                return Err(self.err_here("CUSTOMERS IN STAGE takes FROM .. TO and WHERE CUSTOMER IN only"));
            }
            if !self.common(&mut common)? {
                break;
            }
            if common.filter.is_some() {
                return Err(ParseError::new(
                    at,
                    "CUSTOMERS IN STAGE takes FROM .. TO and WHERE CUSTOMER IN only",
                ));
            }
        }
        Ok(Drill::Stage {
            stage,
            common: Box::new(common),
        })
    }
}

impl Funnel {
    /// Refuses `PERIOD` in a funnel of `form` (EXPLAIN, CUSTOMERS): one customer or one set of
    /// customers belongs to one bucket's funnel, which `FROM … TO …` selects exactly.
    pub(super) fn without_period(&self, form: &str) -> Result<(), ParseError> {
        match &self.period {
            None => Ok(()),
            Some((_, span)) => Err(
                ParseError::new(*span, format!("{form} of a funnel takes no PERIOD"))
                    .with_help("one bucket's funnel is the funnel FROM the bucket's start TO its end"),
            ),
        }
    }
}
