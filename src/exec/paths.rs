//! PATHS: each customer's events from (AFTER) or up to (BEFORE) its first event of the anchor
//! step, ranked by customers; the Sankey form (EDGES); the customers of one path's beginning
//! (`CUSTOMERS PATHS … PATH 'a > b'`). docs/QUERY.md, PATHS.
//!
//! Uses: `dict`, `model`, `plan`, `query`, `result`, `segment`; rooms `drive`, `labels`, `operator`, `options`, `prefilter`, `scan`.

use super::drive::evaluate;
use super::group::GroupBy;
use super::labels::{customer_table, slot_label};
use super::operator::{HashMap, Operator, Prefilter};
use super::options::{Input, QueryError, QueryOptions};
use super::prefilter::candidates;
use super::scan::{columns, gather, passes};
use crate::dict::Dicts;
use crate::model::Columns;
use crate::plan::{CPred, Matcher, Resolver};
use crate::query::ast::{Drill, Paths};
use crate::result::{Cell, Table};
use crate::segment::ColumnSet;
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::ops::Range;

pub(super) struct PathsOp<'a> {
    anchor: Matcher,
    /// The anchor as a table by event id, when it tests event names only.
    anchor_events: Option<Vec<bool>>,
    filter: Option<CPred>,
    range: Option<(i64, i64)>,
    before: bool,
    /// Events besides the anchor (`STEPS k`).
    steps: usize,
    top: usize,
    collapse: bool,
    edges: bool,
    /// Per event id, the rank of its name in byte order: tied events are ordered by name.
    name_rank: Vec<u32>,
    /// `CUSTOMERS … PATH`: the path's event ids (`None`: a name no event has, so no customer).
    drill: Option<Option<Vec<u32>>>,
    /// `WITHIN SESSION`: the gap (µs) that ends the anchor's session.
    session: Option<i64>,
    /// `BY p`: groups by the anchor event's value.
    by: Option<GroupBy>,
    dicts: &'a Dicts,
}

/// A path's group (`BY p`: the anchor's value, `None` for null; always `None` without BY).
type Group = Option<u64>;

/// Counts split by group: (label with `BY`, the group's (key, customers)), in label order.
type Grouped<K> = Vec<(Option<String>, Vec<(K, u64)>)>;

/// One worker's state: customers per path (or per Sankey edge), the drill-down's customers,
/// and per-customer scratch space.
#[derive(Default)]
pub(super) struct PathsPartial {
    paths: HashMap<(Group, Box<[u32]>), u64>,
    /// (group, (depth, from, to)) → customers.
    edges: HashMap<(Group, (u32, u32, u32)), u64>,
    members: RoaringBitmap,
    kept: Vec<usize>,
    group: Vec<(u64, u32, bool)>,
    nodes: Vec<u32>,
}

impl<'a> PathsOp<'a> {
    /// Plans a PATHS statement (with `drill`, the customers of a path's beginning).
    fn plan(
        paths: &Paths,
        drill: Option<&[String]>,
        text: &str,
        input: &Input<'a>,
    ) -> Result<Self, QueryError> {
        let res = Resolver::new(input.dicts, text, paths.common.tz.as_ref())?;
        let events = &input.dicts.events;
        let mut by_name: Vec<u32> = (0..events.len() as u32).collect();
        by_name.sort_by(|&a, &b| events.name(a).cmp(&events.name(b)));
        let mut name_rank = vec![0; by_name.len()];
        for (rank, &id) in by_name.iter().enumerate() {
            name_rank[id as usize] = rank as u32;
        }
        let drill = drill.map(|names| names.iter().map(|n| events.get(n)).collect::<Option<Vec<u32>>>());
        let anchor = res.step(&paths.anchor)?;
        Ok(PathsOp {
            anchor_events: anchor.name_table(events.len()),
            anchor,
            filter: paths.common.filter.as_ref().map(|p| res.pred(p)).transpose()?,
            range: res.range(&paths.common.range)?,
            before: paths.before,
            steps: paths.steps as usize,
            top: paths.top as usize,
            collapse: paths.collapse,
            edges: paths.edges,
            name_rank,
            drill,
            session: paths.session,
            by: (paths.by.as_ref())
                .map(|(name, span)| GroupBy::resolve(&res, input, (name, *span)))
                .transpose()?,
            dicts: input.dicts,
        })
    }

    fn name(&self, event: u32) -> &str {
        self.dicts.events.name(event).unwrap_or("?")
    }

    /// Orders two paths: node by node by name (a path that is a beginning of the other first).
    fn by_names(&self, left: &[u32], right: &[u32]) -> Ordering {
        let rank = |e: &u32| self.name_rank.get(*e as usize).copied().unwrap_or(u32::MAX);
        left.iter().map(rank).cmp(right.iter().map(rank))
    }

    /// Whether row `index` matches the anchor step.
    fn is_anchor(&self, rows: &Columns, index: usize) -> bool {
        match &self.anchor_events {
            Some(table) => table.get(rows.event[index] as usize).copied().unwrap_or(false),
            None => self.anchor.matches(rows, index, self.dicts),
        }
    }

    /// The events of `kept` (one instant) in event order: the anchor's matches first (AFTER)
    /// or last (BEFORE), then by name — as (order key, event, matches the anchor) into `group`.
    fn tied(&self, rows: &Columns, kept: &[usize], group: &mut Vec<(u64, u32, bool)>) {
        group.clear();
        for &i in kept {
            let event = rows.event[i];
            let matched = self.is_anchor(rows, i);
            let side = u64::from(matched == self.before);
            let rank = self.name_rank.get(event as usize).copied().unwrap_or(u32::MAX);
            group.push(((side << 32) | u64::from(rank), event, matched));
        }
        group.sort_unstable();
    }

    /// The group of the anchor among the events `instant` (one instant): with `BY`, the value
    /// of the first anchor match in event order (tied matches of one name: the smallest value
    /// as text, as FUNNEL orders ties by its BY value).
    fn anchor_group(&self, rows: &Columns, instant: &[usize]) -> Group {
        let by = self.by.as_ref()?;
        let rank = |i: usize| {
            self.name_rank
                .get(rows.event[i] as usize)
                .copied()
                .unwrap_or(u32::MAX)
        };
        let mut matches = instant.iter().copied().filter(|&i| self.is_anchor(rows, i));
        let first = matches.next()?;
        let mut best = (rank(first), by.slot(rows, first));
        for i in matches {
            let (r, slot) = (rank(i), by.slot(rows, i));
            let label = |slot| slot_label(slot, by.ty, self.dicts);
            if r < best.0 || (r == best.0 && slot != best.1 && label(slot) < label(best.1)) {
                best = (r, slot);
            }
        }
        best.1
    }

    /// Counts customer `cid`'s path `nodes` (of `group`) in `partial`: its path, its edges, or
    /// (a drill-down) the customer when the path begins (ends) as wanted.
    fn count(&self, partial: &mut PathsPartial, cid: u32, group: Group, nodes: &[u32]) {
        if let Some(drill) = &self.drill {
            let hit = drill.as_ref().is_some_and(|want| {
                if self.before {
                    nodes.ends_with(want)
                } else {
                    nodes.starts_with(want)
                }
            });
            if hit {
                partial.members.insert(cid);
            }
        } else if self.edges {
            // Depth of the edge into node j: j after the anchor (AFTER); counted so that the
            // edge into the anchor is at depth STEPS (BEFORE), shorter paths aligned on it.
            let shift = if self.before {
                (self.steps + 1 - nodes.len()) as u32
            } else {
                0
            };
            for (j, pair) in nodes.windows(2).enumerate() {
                *partial
                    .edges
                    .entry((group, (shift + j as u32 + 1, pair[0], pair[1])))
                    .or_default() += 1;
            }
        } else {
            *partial.paths.entry((group, nodes.into())).or_default() += 1;
        }
    }

    /// The customer's path into `nodes` (empty when it has no anchor event in range) and its
    /// group. Rows come in time order; only the instants the path reads are put in event order.
    fn path(&self, rows: &Columns, run: Range<usize>, partial: &mut PathsPartial) -> Group {
        let PathsPartial {
            kept, group, nodes, ..
        } = partial;
        kept.clear();
        nodes.clear();
        kept.extend(run.filter(|&i| passes(&self.filter, rows, i, self.dicts)));
        let in_range = |ts: i64| self.range.is_none_or(|(lo, hi)| lo <= ts && ts < hi);
        let mut first = kept
            .iter()
            .position(|&i| in_range(rows.ts[i]) && self.is_anchor(rows, i))?;
        if let Some(gap) = self.session {
            first = keep_session(rows, kept, first, gap);
        }
        let ts = |p: usize| rows.ts[kept[p]];
        let at = ts(first);
        let (lo, hi) = (
            kept.partition_point(|&i| rows.ts[i] < at),
            kept.partition_point(|&i| rows.ts[i] <= at),
        );
        let anchor_group = self.anchor_group(rows, &kept[lo..hi]);
        let mut push = |event: u32| {
            if self.collapse && nodes.last() == Some(&event) {
                return true;
            }
            if nodes.len() > self.steps {
                return false;
            }
            nodes.push(event);
            true
        };
        if self.before {
            // The anchor is the first match of its instant (matches last); then backwards.
            self.tied(rows, &kept[lo..hi], group);
            let anchor = group.iter().position(|&(_, _, matched)| matched).unwrap_or(0);
            for &(_, event, _) in group[..=anchor].iter().rev() {
                push(event);
            }
            let mut end = lo;
            while end > 0 {
                let start = kept[..end].partition_point(|&i| rows.ts[i] < ts(end - 1));
                self.tied(rows, &kept[start..end], group);
                if !group.iter().rev().all(|&(_, event, _)| push(event)) {
                    break;
                }
                end = start;
            }
            nodes.reverse();
        } else {
            // The anchor is the first of its instant (matches first); then forwards.
            let mut start = lo;
            let mut end = hi;
            while start < kept.len() {
                self.tied(rows, &kept[start..end], group);
                if !group.iter().all(|&(_, event, _)| push(event)) {
                    break;
                }
                start = end;
                if start < kept.len() {
                    let at = ts(start);
                    end = start + kept[start..].partition_point(|&i| rows.ts[i] <= at);
                }
            }
        }
        anchor_group
    }

    /// Splits per-(group, key) counts by group, groups in label order (`(null)` as a label).
    fn by_group<K>(&self, counts: HashMap<(Group, K), u64>) -> Grouped<K> {
        let mut groups: HashMap<Group, Vec<(K, u64)>> = HashMap::default();
        for ((group, key), n) in counts {
            groups.entry(group).or_default().push((key, n));
        }
        let mut out: Grouped<K> = (groups.into_iter())
            .map(|(group, rows)| {
                let label = self.by.as_ref().map(|by| slot_label(group, by.ty, self.dicts));
                (label, rows)
            })
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The table's columns: `group` first with `BY`.
    fn table(&self, columns: &[&str]) -> Table {
        let mut names: Vec<&str> = self.by.as_ref().map(|_| "group").into_iter().collect();
        names.extend_from_slice(columns);
        Table::new(&names)
    }

    /// The paths table: `[group,] rank, path, customers`, most customers first (ties by path),
    /// the best `top` (of each group; RANK(): tied counts share the first one's rank).
    fn path_rows(&self, paths: HashMap<(Group, Box<[u32]>), u64>) -> Table {
        let mut t = self.table(&["rank", "path", "customers"]);
        for (label, mut ranked) in self.by_group(paths) {
            let order = |a: &(Box<[u32]>, u64), b: &(Box<[u32]>, u64)| {
                b.1.cmp(&a.1).then_with(|| self.by_names(&a.0, &b.0))
            };
            if ranked.len() > self.top {
                ranked.select_nth_unstable_by(self.top - 1, order);
                ranked.truncate(self.top);
            }
            ranked.sort_unstable_by(order);
            let mut rank = 0;
            for (position, (path, customers)) in ranked.iter().enumerate() {
                if position == 0 || ranked[position - 1].1 != *customers {
                    rank = position + 1;
                }
                let text: Vec<&str> = path.iter().map(|&e| self.name(e)).collect();
                let mut row: Vec<Cell> = label.iter().map(|l| Cell::Str(l.clone())).collect();
                row.extend([
                    Cell::Int(rank as i64),
                    Cell::Str(text.join(" > ")),
                    Cell::Int(*customers as i64),
                ]);
                t.rows.push(row);
            }
        }
        t
    }

    /// The Sankey table: `[group,] depth, from, to, customers`, by depth, then most customers
    /// first (ties by names), the best `top` of each depth (of each group).
    fn edge_rows(&self, edges: HashMap<(Group, (u32, u32, u32)), u64>) -> Table {
        let rank = |e: u32| self.name_rank.get(e as usize).copied().unwrap_or(u32::MAX);
        let mut t = self.table(&["depth", "from", "to", "customers"]);
        for (label, mut all) in self.by_group(edges) {
            all.sort_unstable_by(|((d1, f1, t1), c1), ((d2, f2, t2), c2)| {
                d1.cmp(d2)
                    .then(c2.cmp(c1))
                    .then_with(|| (rank(*f1), rank(*t1)).cmp(&(rank(*f2), rank(*t2))))
            });
            let mut shown = (u32::MAX, 0);
            for ((depth, from, to), customers) in all {
                if shown.0 != depth {
                    shown = (depth, 0);
                }
                if shown.1 == self.top {
                    continue;
                }
                shown.1 += 1;
                let mut row: Vec<Cell> = label.iter().map(|l| Cell::Str(l.clone())).collect();
                row.extend([
                    Cell::Int(i64::from(depth)),
                    Cell::Str(self.name(from).to_owned()),
                    Cell::Str(self.name(to).to_owned()),
                    Cell::Int(customers as i64),
                ]);
                t.rows.push(row);
            }
        }
        t
    }
}

/// Cuts `kept` (row indices in time order) to the session around position `at`: the maximal
/// run in which no two consecutive events are more than `gap` apart. Returns `at`'s position
/// in the cut list.
fn keep_session(rows: &Columns, kept: &mut Vec<usize>, at: usize, gap: i64) -> usize {
    let apart = |kept: &[usize], p: usize| rows.ts[kept[p]] - rows.ts[kept[p - 1]];
    let mut end = at + 1;
    while end < kept.len() && apart(kept, end) <= gap {
        end += 1;
    }
    let mut start = at;
    while start > 0 && apart(kept, start) <= gap {
        start -= 1;
    }
    kept.truncate(end);
    kept.drain(..start);
    at - start
}

impl Operator for PathsOp<'_> {
    type Partial = PathsPartial;

    fn columns(&self) -> ColumnSet {
        ColumnSet {
            // Stages only for a STAGE anchor (predicates read properties).
            stage: self.anchor.stage.is_some(),
            ..columns(
                self.filter.is_some()
                    || self.anchor.uses_props()
                    || self.by.as_ref().is_some_and(|by| !by.event_props().is_empty()),
            )
        }
    }

    fn prefilter(&self, input: &Input<'_>) -> Result<Prefilter<PathsPartial>, QueryError> {
        // Only customers with an anchor event (in the range's days) have a path.
        Ok(Prefilter::only(candidates(
            &self.anchor,
            input.bitmaps,
            self.range,
        )))
    }

    fn customer(&self, partial: &mut PathsPartial, rows: &Columns, run: Range<usize>) {
        self.customer_each(std::iter::once(partial), rows, run);
    }

    /// The path is found once and counted in each partial.
    fn customer_each<'p>(
        &self,
        mut partials: impl Iterator<Item = &'p mut PathsPartial>,
        rows: &Columns,
        run: Range<usize>,
    ) where
        PathsPartial: 'p,
    {
        let (Some(first), Some(&cid)) = (partials.next(), rows.cid.get(run.start)) else {
            return;
        };
        let group = self.path(rows, run, first);
        let nodes = std::mem::take(&mut first.nodes);
        if !nodes.is_empty() {
            self.count(first, cid, group, &nodes);
            for partial in partials {
                self.count(partial, cid, group, &nodes);
            }
        }
        first.nodes = nodes;
    }

    fn footprint(&self, partial: &PathsPartial) -> usize {
        partial.paths.capacity() * (40 + 4 * (self.steps + 1))
            + partial.edges.capacity() * 32
            + partial.members.serialized_size()
            + partial.kept.capacity() * 8
            + partial.group.capacity() * 16
    }

    fn merge(&self, into: &mut PathsPartial, from: PathsPartial) {
        for (path, customers) in from.paths {
            *into.paths.entry(path).or_default() += customers;
        }
        for (edge, customers) in from.edges {
            *into.edges.entry(edge).or_default() += customers;
        }
        into.members |= from.members;
    }

    fn finish(&self, partial: PathsPartial, _: &Input<'_>, _: &QueryOptions) -> Result<Table, QueryError> {
        Ok(if self.edges {
            self.edge_rows(partial.edges)
        } else {
            self.path_rows(partial.paths)
        })
    }
}

/// Runs a PATHS statement.
pub(super) fn paths(
    paths: &Paths,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    evaluate(&PathsOp::plan(paths, None, text, input)?, input, opts)
}

/// `CUSTOMERS PATHS … PATH 'a > b'`: the customers whose path begins (AFTER) or ends (BEFORE)
/// with those events.
pub(super) fn path_customers(
    drill: &Drill,
    limit: Option<u64>,
    text: &str,
    input: &Input<'_>,
    opts: &QueryOptions,
) -> Result<Table, QueryError> {
    let Drill::Paths { paths, path } = drill else {
        return Ok(Table::new(&["customer"]));
    };
    let op = PathsOp::plan(paths, Some(&path.0), text, input)?;
    let members = gather(&op, input, opts)?.members;
    Ok(customer_table(&members, input.dicts, limit, opts.rows_max))
}
