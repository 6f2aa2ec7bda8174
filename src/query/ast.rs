//! The abstract syntax tree. Names are unresolved strings; times are unresolved literals (the
//! planner resolves them in the query's time zone).
//!
//! Uses: `model`.

use super::Span;
use crate::model::Stage;

/// A literal value in a predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// 'text'
    Str(String),
    /// 42
    Int(i64),
    /// 4.2
    Float(f64),
    /// true / false
    Bool(bool),
}

/// A comparison operator: `=`, `!=` (also `<>`), `<`, `<=`, `>`, `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in queries.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether a value ordered `ordering` against the constant satisfies the comparison.
    #[inline]
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
        }
    }
}

impl std::fmt::Display for CmpOp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.symbol())
    }
}

/// A predicate over an event's properties.
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    /// `prop op literal`
    Cmp {
        /// Property name and its span.
        prop: (String, Span),
        /// The comparison.
        op: CmpOp,
        /// The constant and its span.
        value: (Literal, Span),
    },
    /// `prop [NOT] IN (literal, ...)`
    In {
        /// Property name and its span.
        prop: (String, Span),
        /// Constants.
        values: Vec<(Literal, Span)>,
        /// NOT IN.
        negated: bool,
    },
    /// `prop IS [NOT] NULL`
    IsNull {
        /// Property name and its span.
        prop: (String, Span),
        /// IS NOT NULL.
        negated: bool,
    },
    /// AND
    And(Box<Pred>, Box<Pred>),
    /// OR
    Or(Box<Pred>, Box<Pred>),
    /// NOT
    Not(Box<Pred>),
    /// `CUSTOMER [NOT] IN cohort`: only as a conjunct of a statement's `WHERE`, where the
    /// parser moves it to [`Common::cohorts`]; the planner refuses it anywhere else.
    InCohort(CohortFilter),
}

/// What a step matches before its optional predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// One or more event names (`visit OR purchase`), each with its span.
    Events(Vec<(String, Span)>),
    /// `STAGE purchase`
    Stage(Stage),
    /// `ANY`
    Any,
}

/// A step: a set of events.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Which events.
    pub kind: StepKind,
    /// Optional `WHERE`.
    pub filter: Option<Pred>,
    /// Span of the step text.
    pub span: Span,
}

/// A time literal: an ISO 8601 date/datetime string or integer unix milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub enum TimeLit {
    /// '2026-02-01' or '2026-02-01T12:00:00Z'
    Text(String, Span),
    /// 1769904000000
    UnixMs(i64, Span),
}

/// Clauses common to statements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Common {
    /// `FROM t1 TO t2` (half-open).
    pub range: Option<(TimeLit, TimeLit)>,
    /// `WHERE` applying to all events.
    pub filter: Option<Pred>,
    /// `TZ 'Europe/Berlin'`.
    pub tz: Option<(String, Span)>,
    /// `WEEK START sunday` (only after `PERIOD week`; weeks start on Monday without it).
    pub week_start: Option<(WeekStart, Span)>,
    /// `CUSTOMER [NOT] IN cohort` conjuncts of `WHERE`, taken out of `filter`: the statement
    /// reads only the rows of the customers they admit (docs/QUERY.md, "Cohorts").
    pub cohorts: Vec<CohortFilter>,
    /// The conjuncts of `WHERE` on customer-profile properties (`customer.NAME`), taken out of
    /// `filter`: the statement reads only the rows of the customers whose latest profile
    /// satisfies them (docs/QUERY.md, "Customer profiles").
    pub profile: Option<Pred>,
    /// `BY COHORT a, b, …`: the statement once per cohort, side by side (a customer in two
    /// cohorts counts in both), the cohort's name in the `group` column.
    pub by_cohorts: Vec<(String, Span)>,
}

/// `CUSTOMER IN name` (or `CUSTOMER NOT IN name`) in a statement's `WHERE`.
#[derive(Clone, Debug, PartialEq)]
pub struct CohortFilter {
    /// The cohort's name and its span.
    pub name: (String, Span),
    /// `NOT IN`.
    pub negated: bool,
}

impl Pred {
    /// Every property name the predicate reads, with its span.
    pub fn props(&self) -> Vec<&(String, Span)> {
        match self {
            Pred::Cmp { prop, .. } | Pred::In { prop, .. } | Pred::IsNull { prop, .. } => vec![prop],
            Pred::And(a, b) | Pred::Or(a, b) => {
                let mut out = a.props();
                out.extend(b.props());
                out
            }
            Pred::Not(a) => a.props(),
            Pred::InCohort(_) => Vec::new(),
        }
    }
}

/// The first day of a week bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeekStart {
    /// ISO weeks (the default).
    #[default]
    Monday,
    /// Weeks from Sunday (`WEEK START sunday`, PostHog's default).
    Sunday,
}

/// Calendar period of buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Hour.
    Hour,
    /// Day.
    Day,
    /// Week, from Monday (ISO) or Sunday.
    Week(WeekStart),
    /// Calendar month.
    Month,
}

impl Period {
    /// This period with the statement's `WEEK START` applied (a week only).
    pub fn starting(self, common: &Common) -> Period {
        match (self, &common.week_start) {
            (Period::Week(_), Some((start, _))) => Period::Week(*start),
            _ => self,
        }
    }
}

/// Funnel ordering mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunnelMode {
    /// Steps in order, other events allowed in between.
    Ordered,
    /// Steps in order, no other event in between.
    Strict,
    /// Steps in any order within the window.
    Unordered,
}

/// An exclusion: a chain with a matching event strictly between steps `from` and `to` is invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct Exclude {
    /// Excluded events.
    pub step: Step,
    /// First step (1-based).
    pub from: usize,
    /// Last step (1-based).
    pub to: usize,
    /// Span of the clause.
    pub span: Span,
}

/// `FUNNEL ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Funnel {
    /// The steps.
    pub steps: Vec<Step>,
    /// Window in microseconds (`i64::MAX` with `WITHIN SESSION`).
    pub within_us: i64,
    /// `WITHIN SESSION [d]`: the session gap (µs); a chain's events lie in one session.
    pub session: Option<(i64, Span)>,
    /// Mode.
    pub mode: FunnelMode,
    /// TIES STRICT (timestamps strictly increasing along a chain).
    pub ties_strict: bool,
    /// Exclusions.
    pub excludes: Vec<Exclude>,
    /// `EXCLUSION CHAIN`: an exclusion invalidates only the chains it lies inside (the
    /// customer still counts at the steps before); by default (`EXCLUSION CUSTOMER`) a customer
    /// whose every longest chain is hit leaves the funnel.
    pub exclusion_chain: bool,
    /// Common clauses.
    pub common: Common,
    /// Breakdown property.
    pub by: Option<(String, Span)>,
    /// `BY p1, p2`: the second breakdown property (a group is then the pair).
    pub by2: Option<(String, Span)>,
    /// `PERIOD p`: conversion over time, one funnel per bucket of the chains' step-1 events
    /// (docs/QUERY.md, "FUNNEL … PERIOD").
    pub period: Option<(Period, Span)>,
    /// Per step, `FIRST step`: only the customer's first event matching the step can fill it.
    pub first: Vec<bool>,
    /// `HOLDING p`: every event of a chain has the step-1 event's value of p.
    pub holding: Option<(String, Span)>,
    /// `PERCENTILES`: the p25, p75 and p90 times to convert beside the median and mean.
    pub percentiles: bool,
}

/// Retention cohorting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cohorting {
    /// Cohort of the first-ever matching event.
    FirstTime,
    /// Every bucket with a matching event.
    Recurring,
}

/// `RETENTION ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    /// Cohort-defining step.
    pub start: Step,
    /// Returning step.
    pub ret: Step,
    /// Bucket period (day, week or month).
    pub period: Period,
    /// Number of offsets after 0.
    pub periods: u32,
    /// Cohorting.
    pub cohorting: Cohorting,
    /// ON_OR_AFTER.
    pub on_or_after: bool,
    /// PERIOD_ZERO_RETURNS: offset 0 counts the members with a return event in the cohort's own
    /// bucket (by default offset 0 is the whole cohort, as in PostHog and Amplitude).
    pub zero_returns: bool,
    /// Common clauses.
    pub common: Common,
}

/// A trend aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum Agg {
    /// Events.
    Count,
    /// Distinct customers.
    Uniq,
    /// Sum of a property.
    Sum(String, Span),
    /// Mean of a property.
    Avg(String, Span),
    /// Minimum of a property.
    Min(String, Span),
    /// Maximum of a property.
    Max(String, Span),
    /// Exact percentile (1..=99) of a property.
    Pct(u8, String, Span),
    /// Net promoter score of a 0-10 score property (docs/QUERY.md, TREND).
    Nps(String, Span),
    /// Sessions (docs/QUERY.md, "Sessions"), in the bucket of their first event.
    Sessions,
    /// Sessions of one event ÷ sessions.
    BounceRate,
    /// Distinct customers in the 7 days ending with the bucket's day.
    Wau,
    /// Distinct customers in the 30 days ending with the bucket's day.
    Mau,
}

/// What `TOP CUSTOMERS BY …` ranks customers by (docs/QUERY.md, TOP CUSTOMERS).
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// Counted events.
    Count,
    /// Sum of a numeric property.
    Sum(String, Span),
    /// Mean of a numeric property.
    Avg(String, Span),
    /// Minimum of a numeric property.
    Min(String, Span),
    /// Maximum of a numeric property.
    Max(String, Span),
    /// Time of the earliest counted event.
    FirstSeen,
    /// Time of the latest counted event.
    LastSeen,
    /// Distinct local days with a counted event.
    DaysActive,
}

/// `TOP CUSTOMERS BY measure ...`
#[derive(Clone, Debug, PartialEq)]
pub struct TopCustomers {
    /// The measure.
    pub measure: Measure,
    /// Events counted (`OF step`; default ANY).
    pub step: Option<Step>,
    /// `ASC`: smallest first (default: largest first).
    pub ascending: bool,
    /// `LIMIT n` (default 10).
    pub limit: Option<u64>,
    /// Common clauses.
    pub common: Common,
}

/// The RFM segments, best first (docs/QUERY.md, RFM): each is a set of (R, F) score pairs.
pub const RFM_SEGMENTS: [&str; 10] = [
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cant_lose",
    "at_risk",
    "hibernating",
];

/// `RFM OF step VALUE prop …`: recency, frequency and monetary value per customer, scored 1–5
/// and mapped to named segments (docs/QUERY.md, RFM).
#[derive(Clone, Debug, PartialEq)]
pub struct Rfm {
    /// The events that count (purchases, typically).
    pub step: Step,
    /// The numeric property summed as the monetary value, and its span.
    pub value: (String, Span),
    /// Common clauses.
    pub common: Common,
}

/// `PATHS AFTER step | BEFORE step …`: the customers' event sequences from (or up to) their
/// first event of a step, ranked (docs/QUERY.md, PATHS).
#[derive(Clone, Debug, PartialEq)]
pub struct Paths {
    /// The anchor step.
    pub anchor: Step,
    /// `BEFORE` (the events leading to the anchor); else `AFTER`.
    pub before: bool,
    /// `STEPS k`: events besides the anchor (default 3).
    pub steps: u32,
    /// `TOP n`: paths listed (edges per depth with `EDGES`; default 10).
    pub top: u32,
    /// `COLLAPSE REPEATS`: consecutive events of one name count once.
    pub collapse: bool,
    /// `EDGES`: the Sankey form, one row per (depth, from, to).
    pub edges: bool,
    /// `WITHIN SESSION [d]`: the session gap (µs); the path stays in the anchor's session.
    pub session: Option<i64>,
    /// `BY p`: paths per value of p on the anchor event.
    pub by: Option<(String, Span)>,
    /// Common clauses.
    pub common: Common,
}

/// The session gap when a statement names none: 30 minutes (docs/QUERY.md, TREND, Sessions).
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// How `ATTRIBUTION` shares a conversion among its touches (docs/QUERY.md, ATTRIBUTION).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributionModel {
    /// All credit to the earliest touch.
    First,
    /// All credit to the latest touch.
    Last,
    /// Equal credit to every touch.
    Linear,
    /// 40% to the first touch, 40% to the last, 20% shared by those between.
    Position,
    /// Weight 2^(−age / half-life) per touch.
    TimeDecay,
}

/// `ATTRIBUTION step [VALUE p] BY p MODEL m …`: which property values get the credit for
/// conversions (docs/QUERY.md, ATTRIBUTION).
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    /// The conversions.
    pub step: Step,
    /// `VALUE p`: the conversion event's numeric property credited with it.
    pub value: Option<(String, Span)>,
    /// `BY p`: the touch property credited.
    pub by: (String, Span),
    /// `MODEL m`.
    pub model: AttributionModel,
    /// `HALF_LIFE d` (time decay; default 7 days).
    pub half_life_us: i64,
    /// `LOOKBACK d` (default 30 days).
    pub lookback_us: i64,
    /// Common clauses.
    pub common: Common,
}

/// `HEATMAP [OF step] …`: events and customers per local weekday and hour (docs/QUERY.md,
/// HEATMAP).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Events counted (`OF step`; default ANY).
    pub step: Option<Step>,
    /// Common clauses.
    pub common: Common,
}

/// `TREND ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    /// Aggregate.
    pub agg: Agg,
    /// Events counted (`OF step`; default ANY).
    pub step: Option<Step>,
    /// Bucket period.
    pub period: Period,
    /// Common clauses.
    pub common: Common,
    /// Breakdown property and optional TOP n.
    pub by: Option<(String, Span, Option<u32>)>,
    /// A second breakdown property (`BY p1, p2`).
    pub by2: Option<(String, Span)>,
    /// `SESSION d`: the longest gap inside a session (session aggregates only; default 30m).
    pub session: Option<(i64, Span)>,
}

/// The name that reads a session's length in `avg(…)` and `pNN(…)` of TREND.
pub const SESSION_LENGTH: &str = "session_length";

impl Agg {
    /// True for the aggregates over sessions: `sessions`, `bounce_rate`,
    /// `avg(session_length)`, `pNN(session_length)`.
    pub fn of_sessions(&self) -> bool {
        match self {
            Agg::Sessions | Agg::BounceRate => true,
            Agg::Avg(p, _) | Agg::Pct(_, p, _) => p == SESSION_LENGTH,
            _ => false,
        }
    }
}

/// `TIMELINE 'customer' ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// External customer id.
    pub customer: (String, Span),
    /// `LIMIT n`: the first n events (in the order the answer lists them).
    pub limit: Option<u64>,
    /// Common clauses.
    pub common: Common,
}

/// `LIFECYCLE OF s PERIOD p ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    /// Activity step.
    pub step: Step,
    /// Bucket period.
    pub period: Period,
    /// Common clauses.
    pub common: Common,
}

/// `STICKINESS OF s PERIOD day|week ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Stickiness {
    /// Activity step.
    pub step: Step,
    /// Bucket period (day or week).
    pub period: Period,
    /// Events needed in a bucket to count as active in it.
    pub min: u32,
    /// Count customers active in at least d buckets (instead of exactly d).
    pub cumulative: bool,
    /// Common clauses.
    pub common: Common,
}

/// `STAGES PERIOD p ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Stages {
    /// Bucket period.
    pub period: Period,
    /// Common clauses (FROM..TO and TZ).
    pub common: Common,
}

/// `TRANSITIONS [FROM..TO] [WITHIN d]`
#[derive(Clone, Debug, PartialEq)]
pub struct Transitions {
    /// Count only advances made within this long of reaching the previous stage (µs).
    pub within_us: Option<i64>,
    /// Common clauses (FROM..TO).
    pub common: Common,
}

/// Which number a `CUSTOMERS` drill-down lists the customers of.
#[derive(Clone, Debug, PartialEq)]
pub enum Drill {
    /// `CUSTOMERS <funnel> STEP k [DROPPED]`: customers reaching step k (or reaching k−1 but
    /// not k).
    Funnel {
        /// The funnel.
        funnel: Box<Funnel>,
        /// 1-based step.
        step: usize,
        /// DROPPED.
        dropped: bool,
    },
    /// `CUSTOMERS <retention> CELL 'cohort', k`.
    Retention {
        /// The retention query.
        retention: Box<Retention>,
        /// Any time inside the cohort's bucket.
        cohort: TimeLit,
        /// Offset.
        period: u32,
    },
    /// `CUSTOMERS IN STAGE x [FROM..TO]`.
    Stage {
        /// The stage.
        stage: Stage,
        /// FROM..TO.
        common: Box<Common>,
    },
    /// `CUSTOMERS IN COHORT name`: the members of a saved cohort.
    Cohort((String, Span)),
    /// `CUSTOMERS <rfm> SEGMENT name`: the customers of one RFM segment.
    Rfm {
        /// The RFM statement.
        rfm: Box<Rfm>,
        /// The segment's name and span.
        segment: (String, Span),
    },
    /// `CUSTOMERS <paths> PATH 'a > b'`: the customers whose path begins (AFTER) or ends
    /// (BEFORE) with these events.
    Paths {
        /// The PATHS statement.
        paths: Box<Paths>,
        /// The event names, nearest the anchor last for BEFORE (as written), and the span.
        path: (Vec<String>, Span),
    },
    /// `CUSTOMERS PREDICT … [WHERE p_alive < 0.3 AND …]`: the customers of a PREDICT's cohort
    /// whose predictions satisfy the conditions.
    Predict {
        /// The PREDICT statement (its WHERE without the conditions).
        predict: Box<Predict>,
        /// The conjuncts of WHERE on a prediction column.
        conditions: Vec<PredictCondition>,
    },
    /// `CUSTOMERS CORRELATE … EVENT 'x' CONVERTED|DROPPED`: the converted (dropped) customers
    /// who had event x in their funnel window.
    Correlate {
        /// The CORRELATE statement.
        correlate: Box<Correlate>,
        /// The event's name and span.
        event: (String, Span),
        /// CONVERTED (else DROPPED).
        converted: bool,
    },
}

/// `CORRELATE <funnel> [SIGNIFICANCE a]`: the events and event property values that the
/// customers who converted had more (or less) often than those who dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Correlate {
    /// The funnel (no BY, PERIOD or PERCENTILES).
    pub funnel: Funnel,
    /// The false discovery rate of the Benjamini–Hochberg cut (`SIGNIFICANCE`, default 0.05).
    pub significance: f64,
}

/// `CHANGES agg [OF step] PERIOD p BY p1[, p2] [TOP n] …`: each group's change of a TREND
/// aggregate from one bucket to the next and its share of the total change (docs/QUERY.md,
/// CHANGES).
#[derive(Clone, Debug, PartialEq)]
pub struct Changes {
    /// The TREND whose buckets and groups are compared (its `BY` is required; its `TOP n` is
    /// CHANGES' own: the n groups with the largest |change| in each bucket).
    pub trend: Trend,
}

/// The time unit of a FIT or PREDICT: frequencies count days, times are in days or weeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// `UNIT day`.
    Day,
    /// `UNIT week` (7 days; the default).
    Week,
}

impl TimeUnit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Day => 1.0,
            TimeUnit::Week => 7.0,
        }
    }
}

/// `FIT step [VALUE p] [UNIT u] FROM a TO b …` and `PREDICT … HORIZON n [DISCOUNT r]
/// [SUMMARY] [LIMIT k]`: the BG/NBD (and with VALUE the Gamma-Gamma) model fitted on the
/// customers whose first event of the step falls in the calibration period, and what it
/// predicts (docs/QUERY.md, FIT and PREDICT).
#[derive(Clone, Debug, PartialEq)]
pub struct Predict {
    /// The purchases.
    pub step: Step,
    /// `VALUE p`: the numeric property summed per purchase day.
    pub value: Option<(String, Span)>,
    /// `UNIT day|week`.
    pub unit: TimeUnit,
    /// `HORIZON n`: units after the calibration period (PREDICT only).
    pub horizon: Option<u32>,
    /// `DISCOUNT r`: per unit, for the lifetime value (PREDICT with VALUE).
    pub discount: f64,
    /// `SUMMARY`: totals and the calibration/holdout table instead of customers.
    pub summary: bool,
    /// `LIMIT k`: customers listed.
    pub limit: Option<u64>,
    /// Common clauses; FROM … TO … is the calibration period.
    pub common: Common,
}

/// The columns of PREDICT that a `CUSTOMERS PREDICT … WHERE` may test.
pub const PREDICTION_COLUMNS: [&str; 5] = ["p_alive", "expected_purchases", "frequency", "recency", "age"];

/// `column op number` on a prediction column (see [`PREDICTION_COLUMNS`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PredictCondition {
    /// The column's name and span.
    pub column: (String, Span),
    /// The comparison.
    pub op: CmpOp,
    /// The number compared with.
    pub value: f64,
}

/// `CUSTOMERS ... [LIMIT n]`
#[derive(Clone, Debug, PartialEq)]
pub struct Customers {
    /// What to drill into.
    pub drill: Drill,
    /// Most ids listed (the count is always the full count).
    pub limit: Option<u64>,
}

/// `EXPLAIN <funnel> FOR CUSTOMER 'id'`
#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    /// The funnel.
    pub funnel: Box<Funnel>,
    /// External customer id and its span.
    pub customer: (String, Span),
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// EXPLAIN
    Explain(Explain),
    /// CUSTOMERS
    Customers(Customers),
    /// TRANSITIONS
    Transitions(Transitions),
    /// LIFECYCLE
    Lifecycle(Lifecycle),
    /// STICKINESS
    Stickiness(Stickiness),
    /// STAGES
    Stages(Stages),
    /// FUNNEL
    Funnel(Funnel),
    /// RETENTION
    Retention(Retention),
    /// TREND
    Trend(Trend),
    /// TIMELINE
    Timeline(Timeline),
    /// TOP CUSTOMERS
    Top(TopCustomers),
    /// RFM
    Rfm(Rfm),
    /// PATHS
    Paths(Paths),
    /// HEATMAP
    Heatmap(Heatmap),
    /// ATTRIBUTION
    Attribution(Attribution),
    /// CORRELATE
    Correlate(Box<Correlate>),
    /// CHANGES
    Changes(Box<Changes>),
    /// FIT
    Fit(Box<Predict>),
    /// PREDICT
    Predict(Box<Predict>),
    /// FORGET CUSTOMER (changes the database)
    Forget(Forget),
    /// CREATE COHORT (changes the database)
    CreateCohort(CreateCohort),
    /// DROP COHORT name (changes the database)
    DropCohort((String, Span)),
    /// COHORTS: the saved cohorts, their definitions and sizes.
    Cohorts,
    /// `LINK 'anonymous' TO 'known'` (changes the database).
    Link(Link),
    /// `UNLINK 'anonymous'` (changes the database).
    Unlink((String, Span)),
    /// `LINKS ['id']`: the identity links (of one id: its known id's group).
    Links(Option<(String, Span)>),
}

/// `LINK 'anonymous' TO 'known'`: the anonymous id's events are the known customer's from now
/// on (docs/QUERY.md, "Identity links").
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The anonymous id.
    pub anonymous: (String, Span),
    /// The known id.
    pub known: (String, Span),
    /// Span of the `LINK` keyword.
    pub span: Span,
}

/// A set of customers, as `CREATE COHORT … AS` defines it (docs/QUERY.md, "Cohorts").
#[derive(Clone, Debug, PartialEq)]
pub enum CustomerSet {
    /// `DID step [AT LEAST n TIMES] [WITHIN d OF FIRST SEEN] [FROM … TO …]`.
    Did(Did),
    /// `FIRST step WHERE pred` / `LAST step WHERE pred`: the customer's first (last) event
    /// matching the step satisfies the predicate.
    Edge {
        /// `LAST` (else `FIRST`).
        last: bool,
        /// The events (the step without its `WHERE`).
        step: Step,
        /// The predicate the first (last) such event must satisfy.
        pred: Pred,
    },
    /// `IN STAGE s`: the customer's furthest stage so far is s.
    InStage(Stage, Span),
    /// `IN name`: the members of another cohort.
    InCohort(String, Span),
    /// `customer.NAME op value` (and `IN`, `IS NULL`): the customer's latest profile satisfies it.
    Profile(Pred),
    /// A set a statement lists: `CUSTOMERS …` (a funnel step or drop-off, a retention cell, a
    /// stage, an RFM segment) or `TOP CUSTOMERS …` (the customers ranked).
    Listed(Box<Statement>, Span),
    /// NOT
    Not(Box<CustomerSet>),
    /// AND
    And(Box<CustomerSet>, Box<CustomerSet>),
    /// OR
    Or(Box<CustomerSet>, Box<CustomerSet>),
}

/// `DID step …`: customers with at least `at_least` events matching the step.
#[derive(Clone, Debug, PartialEq)]
pub struct Did {
    /// The step (with its optional `WHERE`).
    pub step: Step,
    /// `AT LEAST n TIMES` (1 without it).
    pub at_least: u64,
    /// `WITHIN d OF FIRST SEEN`: only events before the customer's first event + d (µs).
    pub within_first_seen_us: Option<i64>,
    /// `FROM … TO …`: only events in this half-open range.
    pub range: Option<(TimeLit, TimeLit)>,
}

/// `CREATE COHORT name [STATIC] AS set`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateCohort {
    /// The name and its span.
    pub name: (String, Span),
    /// `STATIC`: members fixed at creation (else re-evaluated on every snapshot).
    pub is_static: bool,
    /// The definition.
    pub set: CustomerSet,
    /// The definition as written (what `COHORTS` lists and the manifest keeps).
    pub definition: String,
}

impl CustomerSet {
    /// The cohorts this set names (`IN name`), in text order.
    pub fn cohorts(&self) -> Vec<(&str, Span)> {
        match self {
            CustomerSet::InCohort(name, span) => vec![(name.as_str(), *span)],
            CustomerSet::Not(inner) => inner.cohorts(),
            CustomerSet::And(a, b) | CustomerSet::Or(a, b) => {
                let mut out = a.cohorts();
                out.extend(b.cohorts());
                out
            }
            CustomerSet::Did(_)
            | CustomerSet::Edge { .. }
            | CustomerSet::InStage(..)
            | CustomerSet::Profile(_)
            | CustomerSet::Listed(..) => Vec::new(),
        }
    }

    /// Every step the set names, in text order.
    pub fn steps(&self) -> Vec<&Step> {
        match self {
            CustomerSet::Did(did) => vec![&did.step],
            CustomerSet::Edge { step, .. } => vec![step],
            CustomerSet::Not(inner) => inner.steps(),
            CustomerSet::And(a, b) | CustomerSet::Or(a, b) => {
                let mut out = a.steps();
                out.extend(b.steps());
                out
            }
            CustomerSet::InStage(..) | CustomerSet::InCohort(..) | CustomerSet::Profile(_) => Vec::new(),
            CustomerSet::Listed(statement, _) => statement.steps(),
        }
    }
}

impl Funnel {
    /// The steps, then the excluded events.
    fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(self.excludes.iter().map(|x| &x.step))
    }
}

impl Statement {
    /// Every step the statement names (funnel steps and exclusions, retention's two, the
    /// activity step), in text order within each clause.
    pub fn steps(&self) -> Vec<&Step> {
        match self {
            Statement::Funnel(f) => f.all_steps().collect(),
            Statement::Explain(e) => e.funnel.all_steps().collect(),
            Statement::Retention(r) => vec![&r.start, &r.ret],
            Statement::Customers(c) => match &c.drill {
                Drill::Funnel { funnel, .. } => funnel.all_steps().collect(),
                Drill::Retention { retention, .. } => vec![&retention.start, &retention.ret],
                Drill::Stage { .. } | Drill::Cohort(_) => Vec::new(),
                Drill::Rfm { rfm, .. } => vec![&rfm.step],
                Drill::Paths { paths, .. } => vec![&paths.anchor],
                Drill::Correlate { correlate, .. } => correlate.funnel.all_steps().collect(),
                Drill::Predict { predict, .. } => vec![&predict.step],
            },
            Statement::Trend(t) => t.step.iter().collect(),
            Statement::Changes(c) => c.trend.step.iter().collect(),
            Statement::Top(top) => top.step.iter().collect(),
            Statement::Rfm(rfm) => vec![&rfm.step],
            Statement::Paths(paths) => vec![&paths.anchor],
            Statement::Heatmap(h) => h.step.iter().collect(),
            Statement::Attribution(a) => vec![&a.step],
            Statement::Correlate(c) => c.funnel.all_steps().collect(),
            Statement::Fit(spec) | Statement::Predict(spec) => vec![&spec.step],
            Statement::Lifecycle(l) => vec![&l.step],
            Statement::Stickiness(st) => vec![&st.step],
            Statement::CreateCohort(c) => c.set.steps(),
            Statement::Timeline(_)
            | Statement::Stages(_)
            | Statement::Transitions(_)
            | Statement::Forget(_)
            | Statement::DropCohort(_)
            | Statement::Cohorts
            | Statement::Link(_)
            | Statement::Unlink(_)
            | Statement::Links(_) => Vec::new(),
        }
    }

    /// The statement's common clauses (`None` for statements without them).
    pub fn common(&self) -> Option<&Common> {
        Some(match self {
            Statement::Funnel(f) => &f.common,
            Statement::Explain(e) => &e.funnel.common,
            Statement::Retention(r) => &r.common,
            Statement::Customers(c) => match &c.drill {
                Drill::Funnel { funnel, .. } => &funnel.common,
                Drill::Retention { retention, .. } => &retention.common,
                Drill::Stage { common, .. } => common,
                Drill::Cohort(_) => return None,
                Drill::Rfm { rfm, .. } => &rfm.common,
                Drill::Paths { paths, .. } => &paths.common,
                Drill::Correlate { correlate, .. } => &correlate.funnel.common,
                Drill::Predict { predict, .. } => &predict.common,
            },
            Statement::Trend(t) => &t.common,
            Statement::Changes(c) => &c.trend.common,
            Statement::Top(top) => &top.common,
            Statement::Rfm(rfm) => &rfm.common,
            Statement::Paths(paths) => &paths.common,
            Statement::Heatmap(h) => &h.common,
            Statement::Attribution(a) => &a.common,
            Statement::Correlate(c) => &c.funnel.common,
            Statement::Fit(spec) | Statement::Predict(spec) => &spec.common,
            Statement::Lifecycle(l) => &l.common,
            Statement::Stickiness(st) => &st.common,
            Statement::Timeline(t) => &t.common,
            Statement::Stages(st) => &st.common,
            Statement::Transitions(tr) => &tr.common,
            Statement::Forget(_)
            | Statement::CreateCohort(_)
            | Statement::DropCohort(_)
            | Statement::Cohorts
            | Statement::Link(_)
            | Statement::Unlink(_)
            | Statement::Links(_) => return None,
        })
    }
}

/// `FORGET CUSTOMER 'id'`: erase every event of a customer so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Forget {
    /// External customer id.
    pub customer: (String, Span),
    /// Span of the `FORGET` keyword.
    pub span: Span,
}
