//! The reference of customer sets (docs/QUERY.md, "Cohorts"), read sentence by sentence from
//! the definition and evaluated by brute force over each customer's events.

use super::reference::Ev;
use journeydb::Stage;
use std::collections::{BTreeMap, BTreeSet};

/// A customer set as the generators draw it.
#[derive(Clone, Debug)]
pub enum SetQ {
    /// `DID name [WHERE ch = 'x'] [AT LEAST n TIMES] [WITHIN d OF FIRST SEEN] [FROM a TO b]`
    Did {
        name: &'static str,
        where_x: bool,
        at_least: Option<u64>,
        within_us: Option<i64>,
        range: Option<(i64, i64)>,
    },
    /// `FIRST|LAST name WHERE ch = 'x'`
    Edge {
        last: bool,
        name: &'static str,
    },
    /// `IN STAGE s`
    Stage(Stage),
    /// `IN name` (a cohort saved before, with its own set)
    Cohort(&'static str, Box<SetQ>),
    /// `CUSTOMERS FUNNEL first -> second WITHIN {hours}h STEP k [DROPPED]`: the customers the
    /// drill-down lists (ordered mode, TIES ALLOW; the funnel reference's levels).
    FunnelStep {
        first: &'static str,
        second: &'static str,
        hours: i64,
        step: usize,
        dropped: bool,
    },
    Not(Box<SetQ>),
    And(Box<SetQ>, Box<SetQ>),
    Or(Box<SetQ>, Box<SetQ>),
}

impl SetQ {
    pub fn text(&self) -> String {
        match self {
            SetQ::Did {
                name,
                where_x,
                at_least,
                within_us,
                range,
            } => {
                let mut s = format!("DID {name}");
                if *where_x {
                    s += " WHERE ch = 'x'";
                }
                if let Some(n) = at_least {
                    s += &format!(" AT LEAST {n} TIMES");
                }
                if let Some(d) = within_us {
                    s += &format!(" WITHIN {}m OF FIRST SEEN", d / 60_000_000);
                }
                if let Some((lo, hi)) = range {
                    s += &format!(" FROM {} TO {}", lo / 1000, hi / 1000);
                }
                s
            }
            SetQ::Edge { last, name } => {
                format!("{} {name} WHERE ch = 'x'", if *last { "LAST" } else { "FIRST" })
            }
            SetQ::Stage(stage) => format!("IN STAGE {}", stage.name()),
            SetQ::Cohort(name, _) => format!("IN {name}"),
            SetQ::FunnelStep {
                first,
                second,
                hours,
                step,
                dropped,
            } => format!(
                "CUSTOMERS FUNNEL {first} -> {second} WITHIN {hours}h STEP {step}{}",
                if *dropped { " DROPPED" } else { "" }
            ),
            SetQ::Not(inner) => format!("NOT ({})", inner.text()),
            SetQ::And(a, b) => format!("({}) AND ({})", a.text(), b.text()),
            SetQ::Or(a, b) => format!("({}) OR ({})", a.text(), b.text()),
        }
    }

    /// Whether a customer with these events (in time, then sequence order) is in the set.
    pub fn holds(&self, events: &[&Ev]) -> bool {
        match self {
            SetQ::Did {
                name,
                where_x,
                at_least,
                within_us,
                range,
            } => {
                // "the customer's first event": of any name, the earliest.
                let first = events.iter().map(|e| e.ts).min();
                let count = events
                    .iter()
                    .filter(|e| e.name == *name)
                    .filter(|e| !*where_x || e.ch.as_deref() == Some("x"))
                    .filter(|e| range.is_none_or(|(lo, hi)| lo <= e.ts && e.ts < hi))
                    .filter(|e| within_us.is_none_or(|d| first.is_some_and(|f| e.ts - f <= d)))
                    .count() as u64;
                count >= at_least.unwrap_or(1)
            }
            SetQ::Edge { last, name } => {
                let times = events.iter().filter(|e| e.name == *name).map(|e| e.ts);
                let edge = if *last { times.max() } else { times.min() };
                // Every event at that instant counts alike: any with ch = 'x' admits.
                edge.is_some_and(|t| {
                    events
                        .iter()
                        .any(|e| e.name == *name && e.ts == t && e.ch.as_deref() == Some("x"))
                })
            }
            SetQ::Stage(stage) => {
                // "furthest stage so far": the highest in lifecycle order among the events'.
                events.iter().filter_map(|e| e.stage).max_by_key(|s| s.code()) == Some(*stage)
            }
            SetQ::Cohort(_, set) => set.holds(events),
            SetQ::FunnelStep {
                first,
                second,
                hours,
                step,
                dropped,
            } => {
                use super::reference::{Common, Extras, StepQ, chains, funnel_order};
                let steps = [StepQ::Names(vec![*first]), StepQ::Names(vec![*second])];
                let mut ev: Vec<Ev> = events.iter().map(|e| (*e).clone()).collect();
                let (extras, common) = (
                    Extras::default(),
                    Common {
                        range: None,
                        where_ch: None,
                        tz: "UTC",
                    },
                );
                funnel_order(&mut ev, &steps, &None, &extras);
                let within = hours * 3_600_000_000;
                let all = chains(&ev, &steps, within, false, false, &None, (&common, &extras));
                let level = all.iter().map(Vec::len).max().unwrap_or(0);
                if *dropped {
                    level + 1 == *step
                } else {
                    level >= *step
                }
            }
            SetQ::Not(inner) => !inner.holds(events),
            SetQ::And(a, b) => a.holds(events) && b.holds(events),
            SetQ::Or(a, b) => a.holds(events) || b.holds(events),
        }
    }
}

/// The customers (external ids) in `set`: every customer with at least one event is tested.
pub fn members(set: &SetQ, evs: &[Ev]) -> BTreeSet<String> {
    let mut by_customer: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        by_customer.entry(&e.cust).or_default().push(e);
    }
    by_customer
        .into_iter()
        .filter_map(|(c, mut events)| {
            events.sort_by_key(|e| (e.ts, e.seq));
            set.holds(&events).then(|| c.to_owned())
        })
        .collect()
}
