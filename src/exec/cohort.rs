//! Customer sets and saved cohorts (docs/QUERY.md, "Cohorts"): a set expression planned into a
//! tree over per-customer tests, evaluated by one scan (or from the bitmaps alone) into a
//! roaring bitmap of customers; saved cohorts resolved by name (static members as stored,
//! dynamic ones evaluated once per snapshot and cached); and the input of a statement whose
//! `WHERE` holds `CUSTOMER [NOT] IN name`: sources masked and bitmaps restricted to the admitted
//! customers for its planning and prefilter, the snapshot's own sources for its scan (which
//! reads the admitted customers only).
//!
//! Uses: `db`, `dict`, `error`, `index`, `manifest`, `merge`, `model`, `plan`, `query`, `result`, `segment`;
//! rooms `customers`, `labels`, `measures`, `operator`, `options`, `prefilter`, `scan`, `top`.

use crate::db::{Db, Snapshot};
use crate::dict::Dicts;
use crate::exec::linked::rows_of;
use crate::exec::measures::{Counted, Wanted};
use crate::exec::operator::{Operator, Prefilter};
use crate::exec::options::{Input, QueryError, QueryOptions, Restriction};
use crate::exec::scan::{columns, gather};
use crate::manifest::CohortEntry;
use crate::merge::Source;
use crate::model::Columns;
use crate::plan::{CPred, Matcher, Resolver};
use crate::query::ast::{CohortFilter, CreateCohort, CustomerSet, Pred, Statement};
use crate::query::{ParseError, Span};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::ops::Range;
use std::sync::Arc;

/// Most per-customer tests in one set (the truth values of one customer are one `u64`).
const LEAVES_MAX: usize = 64;

/// A per-customer test of a set.
enum Leaf {
    /// `DID`: at least `at_least` matching events, in `range`, at most `within` after the
    /// customer's first event.
    Did {
        matcher: Matcher,
        at_least: u64,
        within: Option<i64>,
        range: Option<(i64, i64)>,
    },
    /// `FIRST|LAST step WHERE pred`.
    Edge {
        last: bool,
        matcher: Matcher,
        pred: CPred,
    },
    /// `IN STAGE s`: the furthest stage code is s.
    Stage(u8),
}

/// A planned set: a tree over leaves and member bitmaps (`IN name`).
enum Node {
    Leaf(usize),
    Members(Arc<RoaringBitmap>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// The operator of a customer set: per customer, the tests, then the tree.
struct SetOp<'d> {
    tree: Node,
    leaves: Vec<Leaf>,
    dicts: &'d Dicts,
    props: bool,
}

/// Where a cohort's resolution is: the snapshot and its input, the options, and the cohorts
/// being resolved (to refuse a cycle in a definition).
pub(super) struct Cohorts<'a> {
    pub(super) snapshot: &'a Snapshot,
    /// The snapshot's whole input.
    pub(super) input: &'a Input<'a>,
    pub(super) opts: &'a QueryOptions,
    stack: Vec<String>,
}

impl<'a> Cohorts<'a> {
    pub(super) fn new(snapshot: &'a Snapshot, input: &'a Input<'a>, opts: &'a QueryOptions) -> Self {
        Cohorts {
            snapshot,
            input,
            opts,
            stack: Vec::new(),
        }
    }

    /// The members of saved cohort `name` (`span`: where the query names it).
    pub(super) fn members(&mut self, name: &str, span: Span) -> Result<Arc<RoaringBitmap>, QueryError> {
        let snapshot = self.snapshot;
        let Some(entry) = snapshot.cohort(name) else {
            return Err(unknown_cohort(name, span, snapshot.cohorts()).into());
        };
        if let Some(members) = &entry.members {
            return Ok(Arc::new(members.clone()));
        }
        if let Some(members) = self.snapshot.cached_cohort(name) {
            return Ok(members);
        }
        if self.stack.iter().any(|n| n == name) {
            let path = self.stack.join(" → ");
            return Err(ParseError::new(
                span,
                format!("cohort `{name}` refers to itself ({path} → {name})"),
            )
            .into());
        }
        let set = crate::query::parse_set(&entry.definition)
            .map_err(|e| in_definition(entry, span, &e.to_string()))?;
        self.stack.push(name.to_owned());
        let members = self.evaluate(&set, &entry.definition);
        self.stack.pop();
        let members = Arc::new(members.map_err(|e| match e {
            QueryError::Parse(p) => in_definition(entry, span, &p.to_string()).into(),
            other => other,
        })?);
        self.snapshot.cache_cohort(name, members.clone());
        Ok(members)
    }

    /// The customers in `set` (`text`: the text its spans point into).
    pub(super) fn evaluate(&mut self, set: &CustomerSet, text: &str) -> Result<RoaringBitmap, QueryError> {
        let res = Resolver::new(self.input.dicts, text, None)?;
        let mut op = SetOp {
            tree: Node::Not(Box::new(Node::Members(Arc::new(RoaringBitmap::new())))),
            leaves: Vec::new(),
            dicts: self.input.dicts,
            props: false,
        };
        op.tree = self.plan(set, &res, &mut op)?;
        gather(&op, self.input, self.opts)
    }

    fn plan(
        &mut self,
        set: &CustomerSet,
        res: &Resolver<'_>,
        op: &mut SetOp<'_>,
    ) -> Result<Node, QueryError> {
        let leaf = |op: &mut SetOp<'_>, leaf: Leaf, span: Span| {
            if op.leaves.len() == LEAVES_MAX {
                return Err(ParseError::new(
                    span,
                    format!("a customer set holds at most {LEAVES_MAX} tests"),
                ));
            }
            op.props |= match &leaf {
                Leaf::Did { matcher, .. } => matcher.uses_props(),
                Leaf::Edge { .. } => true,
                Leaf::Stage(_) => false,
            };
            op.leaves.push(leaf);
            Ok(Node::Leaf(op.leaves.len() - 1))
        };
        Ok(match set {
            CustomerSet::Did(did) => {
                let range = res.range(&did.range)?;
                let l = Leaf::Did {
                    matcher: res.step(&did.step)?,
                    at_least: did.at_least,
                    within: did.within_first_seen_us,
                    range,
                };
                leaf(op, l, did.step.span)?
            }
            CustomerSet::Edge { last, step, pred } => {
                let l = Leaf::Edge {
                    last: *last,
                    matcher: res.step(step)?,
                    pred: res.pred(pred)?,
                };
                leaf(op, l, step.span)?
            }
            CustomerSet::InStage(stage, span) => leaf(op, Leaf::Stage(stage.code()), *span)?,
            CustomerSet::InCohort(name, span) => Node::Members(self.members(name, *span)?),
            CustomerSet::Profile(pred) => Node::Members(Arc::new(self.profile_members(pred, res)?)),
            CustomerSet::Listed(statement, _) => Node::Members(Arc::new(self.listed(statement, res.text)?)),
            CustomerSet::Not(inner) => Node::Not(Box::new(self.plan(inner, res, op)?)),
            CustomerSet::And(a, b) => {
                Node::And(Box::new(self.plan(a, res, op)?), Box::new(self.plan(b, res, op)?))
            }
            CustomerSet::Or(a, b) => {
                Node::Or(Box::new(self.plan(a, res, op)?), Box::new(self.plan(b, res, op)?))
            }
        })
    }

    /// The customers a `CUSTOMERS …` or `TOP CUSTOMERS …` statement lists (all of them: no
    /// row cap), by the statement's own evaluation, so that a set and the drill-down it names
    /// agree by construction.
    fn listed(&self, statement: &Statement, text: &str) -> Result<RoaringBitmap, QueryError> {
        let opts = QueryOptions {
            rows_max: usize::MAX,
            ..self.opts.clone()
        };
        let table = match statement {
            Statement::Customers(c) => super::customers::customers(c, text, self.input, &opts)?,
            Statement::Top(top) => super::top::top_customers(top, text, self.input, &opts)?,
            _ => return Ok(RoaringBitmap::new()),
        };
        let at = table.columns.iter().position(|c| c == "customer");
        let customers = &self.input.dicts.customers;
        Ok((table.rows.iter())
            .filter_map(|row| match at.and_then(|at| row.get(at)) {
                Some(Cell::Str(id)) => customers.get(id),
                _ => None,
            })
            .collect())
    }

    /// The customers whose latest profile satisfies `pred` (on `customer.NAME` properties); a
    /// customer without profile writes has every property null.
    fn profile_members(&self, pred: &Pred, res: &Resolver<'_>) -> Result<RoaringBitmap, QueryError> {
        let pred = res.profile_pred(pred)?;
        let profiles = self.snapshot.profiles()?;
        let rows = &profiles.rows;
        let dicts = self.input.dicts;
        let mut out: RoaringBitmap = (0..rows.len())
            .filter(|&i| pred.eval(rows, i, dicts) == Some(true))
            .map(|i| rows.cid[i])
            .collect();
        let nobody = Columns {
            cid: vec![0],
            ts: vec![0],
            event: vec![0],
            stage: vec![0],
            props: Vec::new(),
        };
        if pred.eval(&nobody, 0, dicts) == Some(true) {
            let mut without: RoaringBitmap = (0..self.input.customers).collect();
            without -= rows.cid.iter().copied().collect::<RoaringBitmap>();
            out |= without;
        }
        Ok(out)
    }

    /// The input of a statement with `CUSTOMER [NOT] IN` filters: every source reads only the
    /// admitted customers' rows (segments masked, buffered rows filtered), the bitmaps hold
    /// only them, and the scan reads the admitted customers of the snapshot's own sources.
    /// `None` when there are no filters, or when they admit every customer with an event.
    pub(super) fn restrict(
        &mut self,
        filters: &[CohortFilter],
        profile: Option<(&Pred, &str)>,
    ) -> Result<Option<Restricted>, QueryError> {
        if filters.is_empty() && profile.is_none() {
            return Ok(None);
        }
        // Computing the masks and restricting every bitmap of a large database take
        // milliseconds: both are kept per snapshot.
        let mut key: String = filters
            .iter()
            .map(|f| format!("{}{}\u{0}", if f.negated { "!" } else { "" }, f.name.0))
            .collect();
        if let Some((pred, _)) = profile {
            key.push_str(&format!("{pred:?}"));
        }
        let masks = match self.snapshot.cached_masks(&key) {
            Some(masks) => masks,
            None => {
                let masks = self.masks(filters, profile)?;
                self.snapshot.cache_masks(&key, masks.clone());
                masks
            }
        };
        let Some((admitted, hidden)) = masks else {
            return Ok(None);
        };
        let sources = self
            .input
            .sources
            .iter()
            .map(|source| match source {
                Source::Segment(seg) => Source::Masked(seg.clone(), hidden.clone()),
                Source::Masked(seg, mask) => Source::Masked(seg.clone(), Arc::new(&**mask | &*hidden)),
                Source::Memory(rows) => Source::Memory(Arc::new(rows_of(rows, |cid| admitted.contains(cid)))),
            })
            .collect();
        let bitmaps = match self.snapshot.cached_bitmaps(&key) {
            Some(bitmaps) => bitmaps,
            None => {
                let mut bitmaps = self.input.bitmaps.clone();
                bitmaps.remove_customers(&hidden);
                let bitmaps = Arc::new(bitmaps);
                self.snapshot.cache_bitmaps(&key, bitmaps.clone());
                bitmaps
            }
        };
        Ok(Some(Restricted {
            sources,
            bitmaps,
            scan: Restriction {
                admitted,
                sources: self.input.sources.clone(),
            },
        }))
    }

    /// The customers `filters` and `profile` admit and hide (`None`: they admit every customer
    /// with an event).
    fn masks(
        &mut self,
        filters: &[CohortFilter],
        profile: Option<(&Pred, &str)>,
    ) -> Result<crate::db::CustomerMasks, QueryError> {
        let customers = self.input.customers;
        let mut admitted = RoaringBitmap::new();
        admitted.insert_range(0..customers);
        if let Some((pred, text)) = profile {
            let res = Resolver::new(self.input.dicts, text, None)?;
            admitted &= self.profile_members(pred, &res)?;
        }
        for filter in filters {
            let members = self.members(&filter.name.0, filter.name.1)?;
            if filter.negated {
                admitted -= &*members;
            } else {
                admitted &= &*members;
            }
        }
        let universe = customers_with_events(self.input.bitmaps);
        if universe.is_subset(&admitted) {
            return Ok(None);
        }
        let mut hidden = RoaringBitmap::new();
        hidden.insert_range(0..customers);
        hidden -= &admitted;
        // Run containers (from the range) make every `day - hidden` a remove-range per run:
        // 14× slower than array and bitmap containers (RETENTION BY COHORT, 5M demo).
        hidden.remove_run_compression();
        admitted.remove_run_compression();
        Ok(Some((Arc::new(admitted), Arc::new(hidden))))
    }
}

/// Every customer with an event (each is in exactly one stage bitmap).
fn customers_with_events(bitmaps: &crate::index::Bitmaps) -> RoaringBitmap {
    (bitmaps.stages.iter()).fold(RoaringBitmap::new(), |all, s| all | &**s)
}

/// What [`Cohorts::restrict`] gives: the sources and bitmaps of the restricted input, and how
/// its scan reads.
pub(super) struct Restricted {
    pub(super) sources: Vec<Source>,
    pub(super) bitmaps: Arc<crate::index::Bitmaps>,
    pub(super) scan: Restriction,
}

fn unknown_cohort(name: &str, span: Span, cohorts: &[CohortEntry]) -> ParseError {
    let e = ParseError::new(span, format!("unknown cohort `{name}`"));
    let names: Vec<&str> = cohorts.iter().map(|c| c.name.as_str()).collect();
    match crate::query::parser::suggest(name, &names) {
        Some(best) => e.with_help(format!("did you mean `{best}`?")),
        None if names.is_empty() => e.with_help("no cohort is saved yet: CREATE COHORT name AS DID purchase"),
        None => e.with_help(format!("saved cohorts: {}", names.join(", "))),
    }
}

/// An error inside a saved definition, reported where the query names the cohort.
fn in_definition(entry: &CohortEntry, span: Span, why: &str) -> ParseError {
    ParseError::new(
        span,
        format!("cohort `{}` ({}): {why}", entry.name, entry.definition),
    )
}

impl SetOp<'_> {
    /// The truth of every leaf for one customer's rows (bit k: leaf k).
    fn tests(&self, rows: &Columns, range: Range<usize>) -> u64 {
        let mut bits = 0u64;
        for (k, leaf) in self.leaves.iter().enumerate() {
            if self.leaf(leaf, rows, range.clone()) {
                bits |= 1 << k;
            }
        }
        bits
    }

    fn leaf(&self, leaf: &Leaf, rows: &Columns, range: Range<usize>) -> bool {
        match leaf {
            Leaf::Did {
                matcher,
                at_least,
                within,
                range: time,
            } => {
                // Rows are in time order: the customer's first row is its first event.
                let first = rows.ts[range.start];
                let mut count = 0u64;
                for i in range {
                    let ts = rows.ts[i];
                    // ts ≥ first (time order); exact for any two i64 timestamps.
                    if within.is_some_and(|d| ts.wrapping_sub(first) as u64 > d as u64) {
                        break;
                    }
                    if time.is_some_and(|(lo, hi)| ts < lo || ts >= hi)
                        || !matcher.matches(rows, i, self.dicts)
                    {
                        continue;
                    }
                    count += 1;
                    if count >= *at_least {
                        return true;
                    }
                }
                false
            }
            Leaf::Edge { last, matcher, pred } => {
                let matching = |i: &usize| matcher.matches(rows, *i, self.dicts);
                let edge = if *last {
                    range.clone().rev().find(matching)
                } else {
                    range.clone().find(matching)
                };
                let Some(edge) = edge else {
                    return false;
                };
                // Events tied with the first (last) one count alike: the customer is in the set
                // when any of them satisfies the predicate (independent of row order).
                let at = rows.ts[edge];
                range
                    .filter(|&i| rows.ts[i] == at && matching(&i))
                    .any(|i| pred.eval(rows, i, self.dicts) == Some(true))
            }
            Leaf::Stage(code) => rows.stage[range].iter().copied().max() == Some(*code),
        }
    }
}

impl Node {
    fn holds(&self, tests: u64, cid: u32) -> bool {
        match self {
            Node::Leaf(k) => tests >> k & 1 == 1,
            Node::Members(members) => members.contains(cid),
            Node::Not(inner) => !inner.holds(tests, cid),
            Node::And(a, b) => a.holds(tests, cid) && b.holds(tests, cid),
            Node::Or(a, b) => a.holds(tests, cid) || b.holds(tests, cid),
        }
    }

    /// The set from the bitmaps alone, when every leaf can be answered there (`universe`:
    /// the customers with any event).
    fn answer(
        &self,
        leaves: &[Leaf],
        bitmaps: &crate::index::Bitmaps,
        universe: &RoaringBitmap,
    ) -> Option<RoaringBitmap> {
        Some(match self {
            Node::Leaf(k) => leaf_answer(leaves.get(*k)?, bitmaps, universe)?,
            Node::Members(members) => &**members & universe,
            Node::Not(inner) => universe - inner.answer(leaves, bitmaps, universe)?,
            Node::And(a, b) => a.answer(leaves, bitmaps, universe)? & b.answer(leaves, bitmaps, universe)?,
            Node::Or(a, b) => a.answer(leaves, bitmaps, universe)? | b.answer(leaves, bitmaps, universe)?,
        })
    }

    /// A superset of the set's customers (`None`: every customer may be in it).
    fn superset(&self, leaves: &[Leaf], bitmaps: &crate::index::Bitmaps) -> Option<RoaringBitmap> {
        match self {
            Node::Leaf(k) => match leaves.get(*k)? {
                Leaf::Did { matcher, .. } | Leaf::Edge { matcher, .. } => {
                    crate::exec::prefilter::candidates(matcher, bitmaps, None)
                }
                Leaf::Stage(code) => bitmaps
                    .stages
                    .get(usize::from(*code))
                    .map(|set| RoaringBitmap::clone(set)),
            },
            Node::Members(members) => Some((**members).clone()),
            Node::Not(_) => None,
            Node::And(a, b) => match (a.superset(leaves, bitmaps), b.superset(leaves, bitmaps)) {
                (Some(x), Some(y)) => Some(x & y),
                (one, None) | (None, one) => one,
            },
            Node::Or(a, b) => Some(a.superset(leaves, bitmaps)? | b.superset(leaves, bitmaps)?),
        }
    }
}

/// A leaf from the bitmaps: `DID` of event names or a stage without a predicate, count or
/// window, over whole UTC days; `IN STAGE` (had the stage, and no later one).
fn leaf_answer(
    leaf: &Leaf,
    bitmaps: &crate::index::Bitmaps,
    universe: &RoaringBitmap,
) -> Option<RoaringBitmap> {
    match leaf {
        Leaf::Did {
            matcher,
            at_least: 1,
            within: None,
            range,
        } if !matcher.uses_props() && range.is_none() => {
            // `ANY` (no names, no stage): every customer with an event.
            crate::exec::prefilter::candidates(matcher, bitmaps, None).or_else(|| Some(universe.clone()))
        }
        Leaf::Stage(code) => {
            let mut out = RoaringBitmap::clone(bitmaps.stages.get(usize::from(*code))?);
            for later in bitmaps.stages.iter().skip(usize::from(*code) + 1) {
                out -= &**later;
            }
            Some(out)
        }
        _ => None,
    }
}

impl Operator for SetOp<'_> {
    type Partial = RoaringBitmap;

    fn columns(&self) -> ColumnSet {
        columns(self.props)
    }

    /// The whole set from the bitmaps when they can say; else the scan of a superset of it.
    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<RoaringBitmap>, QueryError> {
        let universe = customers_with_events(input.bitmaps);
        if let Some(set) = self.tree.answer(&self.leaves, input.bitmaps, &universe) {
            return Ok(Prefilter::Answered(set));
        }
        Ok(Prefilter::only(self.tree.superset(&self.leaves, input.bitmaps)))
    }

    /// A set whose tests are all `DID` without `WITHIN … OF FIRST SEEN` — each a count of a
    /// customer's matching rows, whatever their order — from one pass over every block per
    /// test (the `measures` room, on all workers) instead of merging each customer's rows over
    /// the segments; the tree then runs on each candidate's counts, as the scan runs it.
    fn by_rows(&self, input: &Input<'_>, opts: &QueryOptions) -> Result<Option<RoaringBitmap>, QueryError> {
        // Any other test leaves the set to the prefilter and the scan, with nothing done twice.
        let counted = |leaf: &Leaf| matches!(leaf, Leaf::Did { within: None, .. });
        if !self.leaves.iter().all(counted) {
            return Ok(None);
        }
        let universe = customers_with_events(input.bitmaps);
        if let Some(set) = self.tree.answer(&self.leaves, input.bitmaps, &universe) {
            return Ok(Some(set));
        }
        let mut tests = Vec::with_capacity(self.leaves.len());
        for leaf in &self.leaves {
            let Leaf::Did {
                matcher,
                at_least,
                within: None,
                range,
            } = leaf
            else {
                return Ok(None);
            };
            let step_events = matcher.name_table(input.dicts.events.len());
            let counted = Counted {
                step: Some(matcher),
                step_events: step_events.as_deref(),
                filter: None,
                range: *range,
                dicts: self.dicts,
            };
            match super::measures::measure(input, &counted, &Wanted::default(), opts)? {
                Some(measured) => tests.push((measured, *at_least, 0usize)),
                None => return Ok(None),
            }
        }
        // The customers the scan would read: the tree's superset, else everyone with an event.
        let candidates = self
            .tree
            .superset(&self.leaves, input.bitmaps)
            .unwrap_or(universe);
        let mut members = RoaringBitmap::new();
        for cid in &candidates {
            let mut bits = 0u64;
            for (k, (measured, at_least, at)) in tests.iter_mut().enumerate() {
                // Both ascend: each test's position only moves forward.
                while measured.cids.get(*at).is_some_and(|&c| c < cid) {
                    *at += 1;
                }
                if measured.cids.get(*at) == Some(&cid) && measured.counts[*at] >= *at_least {
                    bits |= 1 << k;
                }
            }
            if self.tree.holds(bits, cid) {
                members.insert(cid);
            }
        }
        Ok(Some(members))
    }

    fn customer(&self, members: &mut RoaringBitmap, rows: &Columns, range: Range<usize>) {
        let Some(&cid) = rows.cid.get(range.start) else {
            return;
        };
        if self.tree.holds(self.tests(rows, range), cid) {
            members.insert(cid);
        }
    }

    fn merge(&self, members: &mut RoaringBitmap, other: RoaringBitmap) {
        *members |= other;
    }

    fn footprint(&self, members: &RoaringBitmap) -> usize {
        // At most two bytes a member (array containers), plus the container headers.
        members.len() as usize * 2
    }

    fn finish(
        &self,
        members: RoaringBitmap,
        input: &Input<'_>,
        opts: &QueryOptions,
    ) -> Result<Table, QueryError> {
        Ok(crate::exec::labels::customer_table(
            &members,
            input.dicts,
            None,
            opts.rows_max,
        ))
    }
}

/// `COHORTS`: every saved cohort with its kind, size on this snapshot and definition.
pub(super) fn list(cohorts: &mut Cohorts<'_>) -> Result<Table, QueryError> {
    let mut table = Table::new(&["cohort", "kind", "customers", "definition"]);
    let snapshot = cohorts.snapshot;
    for entry in snapshot.cohorts() {
        let members = cohorts.members(&entry.name, Span::default())?;
        let kind = if entry.members.is_some() {
            "static"
        } else {
            "dynamic"
        };
        table.rows.push(vec![
            Cell::Str(entry.name.clone()),
            Cell::Str(kind.into()),
            Cell::Int(members.len() as i64),
            Cell::Str(entry.definition.clone()),
        ]);
    }
    Ok(table)
}

/// `CREATE COHORT`: the definition is evaluated once (so that a bad name fails now, and a
/// static cohort keeps these members), then saved — durable when this returns.
pub(super) fn create(
    db: &Db,
    create: &CreateCohort,
    text: &str,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let (name, span) = (&create.name.0, create.name.1);
    if let Some((_, at)) = create.set.cohorts().into_iter().find(|(other, _)| other == name) {
        return Err(ParseError::new(at, format!("cohort `{name}` cannot refer to itself")).into());
    }
    let snapshot = db.snapshot();
    if snapshot.cohort(name).is_some() {
        return Err(exists(name, span).into());
    }
    let dicts = snapshot.dicts();
    let input = Input::of(&snapshot, &dicts);
    let members = Cohorts::new(&snapshot, &input, opts).evaluate(&create.set, text)?;
    let size = members.len();
    let entry = CohortEntry {
        name: name.clone(),
        definition: create.definition.clone(),
        members: create.is_static.then_some(members),
    };
    db.change_cohorts(|saved| {
        if saved.iter().any(|c| c.name == entry.name) {
            return Err(QueryError::from(exists(name, span)).into());
        }
        let mut out = saved.to_vec();
        out.push(entry);
        Ok(out)
    })
    .map_err(query_error)?;
    let mut table = Table::new(&["cohort", "kind", "customers"]);
    table.warnings = crate::plan::unknown_events(&create.set.steps(), &dicts, text);
    let kind = if create.is_static { "static" } else { "dynamic" };
    table.rows.push(vec![
        Cell::Str(name.clone()),
        Cell::Str(kind.into()),
        Cell::Int(size as i64),
    ]);
    Ok(table)
}

/// `DROP COHORT name`: refused while another cohort's definition names it.
pub(super) fn drop(db: &Db, name: &str, span: Span) -> Result<Table, QueryError> {
    db.change_cohorts(|saved| {
        if !saved.iter().any(|c| c.name == name) {
            return Err(QueryError::from(unknown_cohort(name, span, saved)).into());
        }
        for other in saved.iter().filter(|c| c.name != name) {
            let names_it = crate::query::parse_set(&other.definition)
                .is_ok_and(|set| set.cohorts().iter().any(|(n, _)| *n == name));
            if names_it {
                let e = ParseError::new(span, format!("cohort `{}` uses `{name}`", other.name))
                    .with_help(format!("drop `{}` first", other.name));
                return Err(QueryError::from(e).into());
            }
        }
        Ok(saved.iter().filter(|c| c.name != name).cloned().collect())
    })
    .map_err(query_error)?;
    let mut table = Table::new(&["cohort"]);
    table.rows.push(vec![Cell::Str(name.to_owned())]);
    Ok(table)
}

fn exists(name: &str, span: Span) -> ParseError {
    ParseError::new(span, format!("cohort `{name}` exists"))
        .with_help(format!("DROP COHORT {name} first to define it anew"))
}

/// A database error as a query error (a query's own error as itself).
fn query_error(source: crate::error::Error) -> QueryError {
    match source {
        crate::error::Error::Query(q) => q,
        other => other.into(),
    }
}
