//! The reference of CORRELATE's counts, written straight from docs/QUERY.md: each customer who
//! entered the funnel (by the reference funnel's chains) is converted or dropped; its window
//! runs from the counted chain's step-1 event to its last step (converted) or from its first
//! step-1 event to the end of the window or of that event's session (dropped); its features are
//! the names of the events in the window that are no funnel step (by name or stage) and the
//! `ch` values of every event in it.

use std::collections::{BTreeMap, BTreeSet};

use super::reference::{Ev, Q, StepQ, by_customer, chains, funnel_order, keeps_customer};

/// A feature: (kind, name, value).
pub type Feature = (String, String, Option<String>);

/// Per customer who entered: whether it converted and its features.
pub fn customer_features(q: &Q, evs: &[Ev]) -> BTreeMap<String, (bool, BTreeSet<Feature>)> {
    let Q::Funnel {
        steps,
        within,
        mode,
        ties_strict,
        exclude,
        extras,
        c,
        ..
    } = q
    else {
        return BTreeMap::new();
    };
    let n = steps.len();
    let mut out = BTreeMap::new();
    for (customer, ev) in by_customer(evs) {
        let mut ev: Vec<Ev> = ev.into_iter().filter(|e| c.pass(e)).collect();
        funnel_order(&mut ev, steps, exclude, extras);
        if !keeps_customer(q, &ev) {
            continue;
        }
        let all = chains(
            &ev,
            steps,
            *within,
            *mode == "STRICT",
            *ties_strict,
            exclude,
            (c, extras),
        );
        let level = all.iter().map(Vec::len).max().unwrap_or(0);
        if level == 0 {
            continue;
        }
        let (converted, start, end) = if level == n {
            let full = || all.iter().filter(|ch| ch.len() == n);
            let earliest = full().map(|ch| ch[n - 1]).min().unwrap();
            let start = full()
                .filter(|ch| ch[n - 1] == earliest)
                .map(|ch| ev[ch[0]].ts)
                .max()
                .unwrap();
            (true, start, ev[earliest].ts)
        } else {
            let first = all.iter().map(|ch| ch[0]).min().unwrap();
            let start = ev[first].ts;
            let end = match extras.session {
                None => start.saturating_add(*within),
                Some(gap) => {
                    let mut last = first;
                    while last + 1 < ev.len() && ev[last + 1].ts - ev[last].ts <= gap {
                        last += 1;
                    }
                    ev[last].ts
                }
            };
            (false, start, end)
        };
        let step = |e: &Ev| {
            steps.iter().any(|s| match s {
                StepQ::Names(names) => names.contains(&e.name.as_str()),
                StepQ::Stage(stage) => e.stage == Some(*stage),
                StepQ::Any => true,
            })
        };
        let mut features = BTreeSet::new();
        for e in ev.iter().filter(|e| start <= e.ts && e.ts <= end) {
            if !step(e) {
                features.insert(("event".to_owned(), e.name.clone(), None));
            }
            if let Some(ch) = &e.ch {
                features.insert(("property".to_owned(), "ch".to_owned(), Some(ch.clone())));
            }
        }
        out.insert(customer, (converted, features));
    }
    out
}

/// Per feature: (customers converted with it, dropped with it).
pub fn feature_counts(q: &Q, evs: &[Ev]) -> BTreeMap<Feature, (i64, i64)> {
    let mut out: BTreeMap<Feature, (i64, i64)> = BTreeMap::new();
    for (converted, features) in customer_features(q, evs).into_values() {
        for f in features {
            let e = out.entry(f).or_default();
            if converted {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    out
}
