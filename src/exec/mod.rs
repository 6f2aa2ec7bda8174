//! Query execution. Every statement runs as a per-customer operator over the merged, sorted
//! sources of a snapshot: each worker thread scans one range of customer ids (zone maps skip
//! other blocks) into a partial state; partials `merge` exactly and `finish` into a table, so
//! the answer never depends on thread count, segment layout or flush timing.
//!
//! Rooms, in the order they may use each other (a room uses only rooms above it):
//! - `options`: what a query is given (options, the snapshot's input) and how it fails.
//! - `operator`: the protocol every statement runs through, and the memory budget.
//! - `linked`: how a scan reads customers with identity links (their ids' journeys merged).
//! - `scan`: the parallel customer-range scan that drives an operator.
//! - `drive`: a planned statement through the protocol, or (`BY COHORT`) several cohorts side
//!   by side in one pass.
//! - `prefilter`, `range`, `labels`, `median`, `overlaps`, `stats`, `btyd`: shared helpers (bitmap
//!   prefilters, the time range, result cells, medians, customers by how many sets hold them, 2×2-table statistics, the BG/NBD and
//!   Gamma-Gamma models).
//! - one room per statement: `funnel` (with its kernel and EXPLAIN), `retention`, `trend`,
//!   `changes`, `paths`, `heatmap`, `attribution`, `correlate`, `predict` (FIT and PREDICT), `customers`,
//!   `timeline`, `lifecycle`, `stickiness`, `stages`, `transitions`.
//! - this file: dispatch of a parsed statement, and the [`Query`] trait.
//!
//! Uses: `db`, `plan`, `query`, `result`.

mod options;
mod group;
mod operator;
mod linked;
mod scan;
mod drive;
mod prefilter;
mod range;
mod measures;
mod ties;
mod labels;
mod median;
mod overlaps;
mod stats;
mod funnel;
mod retention;
mod trend;
mod paths;
mod heatmap;
mod attribution;
mod correlate;
mod changes;
mod btyd;
mod predict;
mod customers;
mod timeline;
mod lifecycle;
mod stickiness;
mod stages;
mod transitions;
mod top;
mod rfm;
mod cohort;
mod links;

pub use options::{Input, QueryError, QueryOptions, Restriction, SideBySide};

use crate::query::ParseError;
use crate::query::ast::Statement;
use crate::result::{Cell, Table};
use customers::customers;
use funnel::explain::explain;
use funnel::funnel;
use retention::retention;
use timeline::timeline;
use trend::trend;

/// Runs a parsed statement.
pub fn execute(
    stmt: &Statement,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let mut table = match stmt {
        Statement::Funnel(f) => funnel(f, text, input, opts, None)?,
        Statement::Retention(r) => retention(r, text, input, opts, None)?,
        Statement::Customers(c) => customers(c, text, input, opts)?,
        Statement::Explain(e) => explain(e, text, input, opts)?,
        Statement::Trend(t) => trend(t, text, input, opts)?,
        Statement::Timeline(t) => timeline(t, text, input, opts)?,
        Statement::Lifecycle(l) => lifecycle::lifecycle(l, text, input, opts)?,
        Statement::Stickiness(st) => stickiness::stickiness(st, text, input, opts)?,
        Statement::Stages(st) => stages::stages(st, text, input, opts)?,
        Statement::Transitions(tr) => transitions::transitions(tr, text, input, opts)?,
        Statement::Top(top) => top::top_customers(top, text, input, opts)?,
        Statement::Rfm(r) => rfm::rfm(r, text, input, opts)?,
        Statement::Paths(p) => paths::paths(p, text, input, opts)?,
        Statement::Heatmap(h) => heatmap::heatmap(h, text, input, opts)?,
        Statement::Attribution(a) => attribution::attribution(a, text, input, opts)?,
        Statement::Correlate(c) => correlate::correlate(c, text, input, opts)?,
        Statement::Changes(c) => changes::changes(c, text, input, opts)?,
        Statement::Fit(spec) | Statement::Predict(spec) => predict::run(spec, text, input, opts)?,
        Statement::Forget(f) => return Err(read_only(f.span, "FORGET CUSTOMER")),
        Statement::CreateCohort(c) => return Err(read_only(c.name.1, "CREATE COHORT")),
        Statement::DropCohort((_, span)) => return Err(read_only(*span, "DROP COHORT")),
        // Answered by `run_on`, which has the snapshot's cohorts.
        Statement::Cohorts => Table::new(&["cohort", "kind", "customers", "definition"]),
        Statement::Link(link) => return Err(read_only(link.span, "LINK")),
        Statement::Unlink((_, span)) => return Err(read_only(*span, "UNLINK")),
        // Answered by `run_on`, which has the snapshot's links.
        Statement::Links(_) => Table::new(&["anonymous_id", "customer_id"]),
    };
    if table.rows.len() > opts.rows_max {
        return Err(QueryError::TooManyRows(opts.rows_max));
    }
    // Unknown events first, then what the statement itself warns of.
    let statement_warnings = std::mem::take(&mut table.warnings);
    table.warnings = crate::plan::unknown_events(&stmt.steps(), input.dicts, text);
    table.warnings.extend(statement_warnings);
    Ok(table)
}

fn read_only(span: crate::query::Span, what: &str) -> QueryError {
    ParseError::new(
        span,
        format!("{what} changes the database; a snapshot is read-only"),
    )
    .with_help("run it with Db::query (the shell does)")
    .into()
}

/// Running statements: `snapshot.query("FUNNEL visit -> purchase WITHIN 7d")`. On a [`Db`](crate::db::Db)
/// (crate::db::Db), a query runs on a fresh snapshot, and `FORGET CUSTOMER 'id'` erases.
pub trait Query {
    /// Parses, plans and runs `text` with default options.
    fn query(&self, text: &str) -> Result<Table, QueryError>;
    /// Parses, plans and runs `text`.
    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError>;
}

impl Query for crate::db::Db {
    fn query(&self, text: &str) -> Result<Table, QueryError> {
        self.query_with(text, &QueryOptions::default())
    }

    /// Parses once; a statement that changes the database is carried out by the database,
    /// any other runs on a fresh snapshot.
    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError> {
        let stmt = crate::query::parse(text)?;
        match &stmt {
            Statement::Forget(f) => {
                let erased = self.forget_customer(&f.customer.0)?;
                let mut t = Table::new(&["customer", "events_erased"]);
                t.rows
                    .push(vec![Cell::Str(f.customer.0.clone()), Cell::Int(erased as i64)]);
                Ok(t)
            }
            Statement::CreateCohort(create) => cohort::create(self, create, text, opts),
            Statement::DropCohort((name, span)) => cohort::drop(self, name, *span),
            Statement::Link(link) => links::link(self, link),
            Statement::Unlink((anonymous, _)) => links::unlink(self, anonymous),
            _ => run_on(&self.snapshot(), &stmt, text, opts),
        }
    }
}

impl Query for crate::db::Snapshot {
    fn query(&self, text: &str) -> Result<Table, QueryError> {
        self.query_with(text, &QueryOptions::default())
    }

    fn query_with(&self, text: &str, opts: &QueryOptions) -> Result<Table, QueryError> {
        run_on(self, &crate::query::parse(text)?, text, opts)
    }
}

/// Runs a parsed statement on a snapshot: its `CUSTOMER IN` filters (if any) restrict the input
/// first.
fn run_on(
    snapshot: &crate::db::Snapshot,
    stmt: &Statement,
    text: &str,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let dicts = snapshot.dicts();
    let input = Input::of(snapshot, &dicts);
    let mut cohorts = cohort::Cohorts::new(snapshot, &input, opts);
    match stmt {
        Statement::Cohorts => return cohort::list(&mut cohorts),
        Statement::Links(id) => return links::list(snapshot, id.as_ref().map(|(id, _)| id.as_str())),
        Statement::Customers(crate::query::ast::Customers {
            drill: crate::query::ast::Drill::Cohort((name, span)),
            limit,
        }) => {
            let members = cohorts.members(name, *span)?;
            return Ok(labels::customer_table(&members, &dicts, *limit, opts.rows_max));
        }
        _ => {}
    }
    let Some(common) = stmt.common() else {
        return execute(stmt, text, &input, opts);
    };
    if !common.by_cohorts.is_empty() {
        return by_cohorts(stmt, common, text, &mut cohorts, opts);
    }
    restricted(stmt, text, &common.cohorts, &mut cohorts, opts)
}

/// Runs `stmt` on the customers `filters` admit (all, without filters).
fn restricted(
    stmt: &Statement,
    text: &str,
    filters: &[crate::query::ast::CohortFilter],
    cohorts: &mut cohort::Cohorts<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let input = cohorts.input;
    let profile = stmt.common().and_then(|c| c.profile.as_ref()).map(|p| (p, text));
    let Some(restricted) = cohorts.restrict(filters, profile)? else {
        let table = execute(stmt, text, input, opts)?;
        return timeline::with_profile(stmt, table, cohorts.snapshot, None);
    };
    let admitted = restricted.scan.admitted.clone();
    let table = execute(stmt, text, &restricted_input(input, &restricted), opts)?;
    timeline::with_profile(stmt, table, cohorts.snapshot, Some(&admitted))
}

/// `input` as `restricted` shows it: masked sources and bitmaps for the prefilters, the
/// admitted customers for the scan.
fn restricted_input<'a>(input: &Input<'a>, restricted: &'a cohort::Restricted) -> Input<'a> {
    Input {
        sources: restricted.sources.clone(),
        bitmaps: &restricted.bitmaps,
        restriction: Some(restricted.scan.clone()),
        side_by_side: None,
        ..*input
    }
}

/// `BY COHORT a, b, …`: the statement on each cohort's members (and the statement's own
/// `CUSTOMER IN` filters), side by side in one pass (the `drive` room), one table per cohort
/// joined with the cohort's name in a `group` column.
fn by_cohorts(
    stmt: &Statement,
    common: &crate::query::ast::Common,
    text: &str,
    cohorts: &mut cohort::Cohorts<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    // Where the group column goes, and the rows of one bucket (0: not by bucket).
    let (group_at, bucket_rows) = match stmt {
        Statement::Trend(_) => (1, 1),
        Statement::Funnel(f) if f.period.is_some() => (1, f.steps.len()),
        _ => (0, 0),
    };
    let profile = common.profile.as_ref().map(|p| (p, text));
    let mut restricted = Vec::with_capacity(common.by_cohorts.len());
    for (name, span) in &common.by_cohorts {
        let mut filters = common.cohorts.clone();
        filters.push(crate::query::ast::CohortFilter {
            name: (name.clone(), *span),
            negated: false,
        });
        restricted.push(cohorts.restrict(&filters, profile)?);
    }
    let input = cohorts.input;
    let shared = options::Shared::default();
    let unrestricted = || Input {
        sources: input.sources.clone(),
        restriction: input.restriction.clone(),
        side_by_side: None,
        shared: Some(&shared),
        ..*input
    };
    let side = SideBySide {
        cohorts: common
            .by_cohorts
            .iter()
            .zip(&restricted)
            .map(|((name, _), restricted)| {
                let cohort = match restricted {
                    Some(restricted) => Input {
                        shared: Some(&shared),
                        ..restricted_input(input, restricted)
                    },
                    None => unrestricted(),
                };
                (name.clone(), cohort)
            })
            .collect(),
        group_at,
        bucket_rows,
        driven: std::sync::atomic::AtomicBool::new(false),
    };
    let together = Input {
        side_by_side: Some(&side),
        ..unrestricted()
    };
    let table = execute(stmt, text, &together, opts)?;
    // A statement that never reached the driver answered for everyone, not per cohort.
    if !side.driven.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(QueryError::Internal(
            "BY COHORT: the statement was not run per cohort".into(),
        ));
    }
    Ok(table)
}
