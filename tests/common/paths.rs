//! The reference of PATHS, written straight from docs/QUERY.md: each customer's events (the
//! statement's WHERE applied) in event order, tied events with the anchor's matches first
//! (AFTER) or last (BEFORE) and then by name; the first anchor event in range; the path; every
//! path counted and ranked as SQL's RANK().

use std::collections::BTreeMap;

use journeydb::{Cell, Table};

use super::reference::{Common, Ev, StepQ, by_customer};

/// A PATHS statement.
#[derive(Clone, Debug)]
pub struct PathsQ {
    pub anchor: StepQ,
    /// The anchor step's own `WHERE ch = …` (only anchor events must pass it).
    pub anchor_ch: Option<&'static str>,
    pub before: bool,
    pub steps: Option<usize>,
    pub top: Option<usize>,
    pub collapse: bool,
    pub edges: bool,
    /// `WITHIN SESSION [m]`: `Some(None)` the default gap (30 minutes), `Some(Some(m))` m minutes.
    pub session: Option<Option<i64>>,
    /// `BY ch`: paths per value of the anchor's `ch`.
    pub by: bool,
    pub c: Common,
}

impl PathsQ {
    pub fn text(&self) -> String {
        let mut text = format!(
            "PATHS {} {}",
            if self.before { "BEFORE" } else { "AFTER" },
            self.anchor.text()
        );
        if let Some(ch) = self.anchor_ch {
            text += &format!(" WHERE ch = '{ch}'");
        }
        // A WHERE right after the step belongs to the step: the statement's own needs a
        // clause between them.
        let separate = self.top.is_none()
            && !self.collapse
            && !self.edges
            && self.session.is_none()
            && !self.by
            && self.c.where_ch.is_some();
        match self.steps {
            Some(k) => text += &format!(" STEPS {k}"),
            None if separate => text += " STEPS 3",
            None => {}
        }
        if let Some(n) = self.top {
            text += &format!(" TOP {n}");
        }
        if self.collapse {
            text += " COLLAPSE REPEATS";
        }
        if self.edges {
            text += " EDGES";
        }
        match self.session {
            Some(Some(m)) => text += &format!(" WITHIN SESSION {m}m"),
            Some(None) => text += " WITHIN SESSION",
            None => {}
        }
        if self.by {
            text += " BY ch";
        }
        text + &self.c.text()
    }
}

/// A `ch` value as a group label.
fn label(ch: &Option<String>) -> String {
    ch.clone().unwrap_or_else(|| "(null)".into())
}

/// Each customer's path (customers without one left out) and its group (the anchor's `ch`
/// with `BY`, among tied anchors of one name the smallest as text; else empty), in customer
/// order.
pub fn customer_paths(q: &PathsQ, evs: &[Ev]) -> BTreeMap<String, (String, Vec<String>)> {
    let k = q.steps.unwrap_or(3);
    let mut out = BTreeMap::new();
    for (customer, mut ev) in by_customer(evs) {
        ev.retain(|e| q.c.pass(e));
        let anchor = |e: &Ev| q.anchor.matches(e) && q.anchor_ch.is_none_or(|c| e.ch.as_deref() == Some(c));
        ev.sort_by_key(|e| (e.ts, anchor(e) == q.before, e.name.clone()));
        let Some(mut at) = ev.iter().position(|e| anchor(e) && q.c.in_range(e.ts)) else {
            continue;
        };
        let group = if q.by {
            (ev.iter())
                .filter(|e| e.ts == ev[at].ts && e.name == ev[at].name && anchor(e))
                .map(|e| label(&e.ch))
                .min()
                .unwrap_or_default()
        } else {
            String::new()
        };
        if let Some(minutes) = q.session {
            // The anchor's session: neighbours at most the gap apart, on both sides.
            let gap = minutes.unwrap_or(30) * 60_000_000;
            let mut end = at + 1;
            while end < ev.len() && ev[end].ts - ev[end - 1].ts <= gap {
                end += 1;
            }
            let mut start = at;
            while start > 0 && ev[start].ts - ev[start - 1].ts <= gap {
                start -= 1;
            }
            ev = ev[start..end].to_vec();
            at -= start;
        }
        let names: Vec<String> = if q.before {
            ev[..=at].iter().rev().map(|e| e.name.clone()).collect()
        } else {
            ev[at..].iter().map(|e| e.name.clone()).collect()
        };
        let mut path: Vec<String> = Vec::new();
        for name in names {
            if q.collapse && path.last() == Some(&name) {
                continue;
            }
            path.push(name);
        }
        path.truncate(k + 1);
        if q.before {
            path.reverse();
        }
        out.insert(customer, (group, path));
    }
    out
}

/// The statement's table: per group (with `BY`, in label order) the edges or the ranked paths.
pub fn paths_ref(q: &PathsQ, evs: &[Ev]) -> Table {
    let mut groups: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (group, path) in customer_paths(q, evs).into_values() {
        groups.entry(group).or_default().push(path);
    }
    let mut columns: Vec<&str> = if q.by { vec!["group"] } else { vec![] };
    columns.extend(if q.edges {
        ["depth", "from", "to", "customers"].as_slice()
    } else {
        ["rank", "path", "customers"].as_slice()
    });
    let mut t = Table::new(&columns);
    for (group, paths) in groups {
        let rows = if q.edges {
            edge_rows(q, &paths)
        } else {
            path_rows(q, paths)
        };
        for row in rows {
            let mut cells: Vec<Cell> = if q.by {
                vec![Cell::Str(group.clone())]
            } else {
                vec![]
            };
            cells.extend(row);
            t.rows.push(cells);
        }
    }
    t
}

/// The Sankey rows of one group's paths.
fn edge_rows(q: &PathsQ, paths: &[Vec<String>]) -> Vec<Vec<Cell>> {
    let k = q.steps.unwrap_or(3);
    let top = q.top.unwrap_or(10);
    let mut edges: BTreeMap<(usize, String, String), i64> = BTreeMap::new();
    for path in paths {
        let shift = if q.before { k + 1 - path.len() } else { 0 };
        for j in 1..path.len() {
            *edges
                .entry((shift + j, path[j - 1].clone(), path[j].clone()))
                .or_default() += 1;
        }
    }
    let mut rows: Vec<_> = edges.into_iter().collect();
    rows.sort_by(|((d1, f1, t1), c1), ((d2, f2, t2), c2)| {
        d1.cmp(d2).then(c2.cmp(c1)).then((f1, t1).cmp(&(f2, t2)))
    });
    let mut out: Vec<Vec<Cell>> = Vec::new();
    for ((depth, from, to), customers) in rows {
        let shown = out.iter().filter(|r| r[0] == Cell::Int(depth as i64)).count();
        if shown < top {
            out.push(vec![
                Cell::Int(depth as i64),
                Cell::Str(from),
                Cell::Str(to),
                Cell::Int(customers),
            ]);
        }
    }
    out
}

/// The ranked rows of one group's paths.
fn path_rows(q: &PathsQ, paths: Vec<Vec<String>>) -> Vec<Vec<Cell>> {
    let top = q.top.unwrap_or(10);
    let mut counts: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for path in paths {
        *counts.entry(path).or_default() += 1;
    }
    // Most customers first; ties by path, node by node (a BTreeMap's order of the Vec).
    let mut ranked: Vec<(Vec<String>, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top);
    let mut out = Vec::new();
    for (i, (path, customers)) in ranked.iter().enumerate() {
        let rank = ranked.iter().position(|r| r.1 == *customers).unwrap_or(i) + 1;
        out.push(vec![
            Cell::Int(rank as i64),
            Cell::Str(path.join(" > ")),
            Cell::Int(*customers),
        ]);
    }
    out
}

/// The customers of `CUSTOMERS <q> PATH 'names'`: paths beginning (AFTER) or ending (BEFORE)
/// with `names`.
pub fn path_members(q: &PathsQ, names: &[String], evs: &[Ev]) -> Vec<String> {
    customer_paths(q, evs)
        .into_iter()
        .filter(|(_, (_, path))| {
            if q.before {
                path.ends_with(names)
            } else {
                path.starts_with(names)
            }
        })
        .map(|(customer, _)| customer)
        .collect()
}
