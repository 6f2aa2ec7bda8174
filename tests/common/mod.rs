//! Shared test helpers: an in-memory oracle of the storage model and event generators.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use journeydb::model::day_of;
use journeydb::{Event, Snapshot, Stage, StoredEvent, Value};

/// The oracle: every committed event with its sequence number, plus the stage map.
#[derive(Default, Clone, Debug)]
pub struct Oracle {
    pub events: Vec<(u64, StoredEvent)>,
    pub next_seq: u64,
    pub first_seen: HashMap<String, usize>,
    pub stage_map: HashMap<String, Stage>,
    pub prop_types: HashMap<String, journeydb::PropType>,
}

impl Oracle {
    /// Applies a batch the way the engine must: all or nothing, types fixed on first write.
    /// Returns false (and changes nothing) when the batch must be rejected.
    pub fn commit(&mut self, batch: &[Event]) -> bool {
        let mut types = self.prop_types.clone();
        for ev in batch {
            for (k, v) in &ev.props {
                if let Some(v) = v {
                    let t = *types.entry(k.clone()).or_insert(v.prop_type());
                    if t != v.prop_type() {
                        return false;
                    }
                }
            }
        }
        self.prop_types = types;
        for ev in batch {
            let n = self.first_seen.len();
            self.first_seen.entry(ev.customer.clone()).or_insert(n);
            let mut props: Vec<(String, Value)> = ev
                .props
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            props.sort_by(|a, b| a.0.cmp(&b.0));
            let stored = StoredEvent {
                customer: ev.customer.clone(),
                ts_us: ev.ts_us,
                name: ev.name.clone(),
                stage: ev.stage.or_else(|| self.stage_map.get(&ev.name).copied()),
                props,
            };
            self.events.push((self.next_seq, stored));
            self.next_seq += 1;
        }
        true
    }

    /// Every event in (customer first-seen order, timestamp, sequence) order.
    pub fn scan(&self) -> Vec<StoredEvent> {
        let mut v: Vec<&(u64, StoredEvent)> = self.events.iter().collect();
        v.sort_by_key(|(seq, e)| (self.first_seen[&e.customer], e.ts_us, *seq));
        v.into_iter().map(|(_, e)| e.clone()).collect()
    }

    /// One customer's events in (timestamp, sequence) order.
    pub fn customer(&self, c: &str) -> Vec<StoredEvent> {
        self.scan().into_iter().filter(|e| e.customer == c).collect()
    }

    pub fn customers_where(&self, f: impl Fn(&StoredEvent) -> bool) -> BTreeSet<String> {
        self.events
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(_, e)| e.customer.clone())
            .collect()
    }
}

/// External ids of a bitmap of internal ids.
pub fn names(snap: &Snapshot, bm: &roaring::RoaringBitmap) -> BTreeSet<String> {
    bm.iter()
        .map(|c| snap.customer_name(c).unwrap_or_else(|| format!("?{c}")))
        .collect()
}

/// Asserts that the snapshot equals the oracle: full scan, per-customer scans, bitmaps.
pub fn check(snap: &Snapshot, oracle: &Oracle) -> Result<(), String> {
    let got = snap.events().map_err(|e| e.to_string())?;
    let want = oracle.scan();
    if got != want {
        return Err(format!("full scan differs:\n got {got:?}\nwant {want:?}"));
    }
    let customers: BTreeSet<&String> = oracle.first_seen.keys().collect();
    for c in customers {
        let got = snap.customer_events(c).map_err(|e| e.to_string())?;
        if got != oracle.customer(c) {
            return Err(format!("customer {c} differs"));
        }
    }
    if !snap
        .customer_events("nobody")
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Err("unknown customer has events".into());
    }
    for stage in Stage::ALL {
        let got = names(snap, &snap.customers_in_stage(stage));
        let want = oracle.customers_where(|e| e.stage == Some(stage));
        if got != want {
            return Err(format!("stage {stage}: got {got:?} want {want:?}"));
        }
    }
    let event_names: BTreeSet<String> = oracle.events.iter().map(|(_, e)| e.name.clone()).collect();
    for name in &event_names {
        let got = names(snap, &snap.customers_with_event(name));
        let want = oracle.customers_where(|e| &e.name == name);
        if got != want {
            return Err(format!("event {name}: got {got:?} want {want:?}"));
        }
    }
    let days: BTreeMap<i32, ()> = oracle.events.iter().map(|(_, e)| (day_of(e.ts_us), ())).collect();
    for (&day, ()) in &days {
        let got = names(snap, &snap.customers_on_day(day));
        let want = oracle.customers_where(|e| day_of(e.ts_us) == day);
        if got != want {
            return Err(format!("day {day}: got {got:?} want {want:?}"));
        }
        for stage in Stage::ALL {
            let got = names(snap, &snap.customers_in_stage_on_day(stage, day));
            let want = oracle.customers_where(|e| day_of(e.ts_us) == day && e.stage == Some(stage));
            if got != want {
                return Err(format!("stage {stage} day {day} differs"));
            }
        }
    }
    if snap.len() != oracle.events.len() as u64 {
        return Err("event count differs".into());
    }
    Ok(())
}

/// `events` written to an NDJSON file (microsecond timestamps, every property a key, the stage
/// when given) and read back by `journeydb::import::read_file`: what `Db::import` takes.
pub fn stage(events: &[Event]) -> journeydb::import::Staged {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.ndjson");
    let mut text = String::new();
    for e in events {
        let mut obj = serde_json::json!({
            "customer_id": e.customer,
            "ts": e.ts_us,
            "event": e.name,
        });
        for (k, v) in &e.props {
            obj[k] = match v {
                None => serde_json::Value::Null,
                Some(Value::I64(x)) => serde_json::json!(x),
                Some(Value::F64(x)) => serde_json::json!(x),
                Some(Value::Str(x)) => serde_json::json!(x),
                Some(Value::Bool(x)) => serde_json::json!(x),
            };
        }
        if let Some(stage) = e.stage {
            obj["stage"] = serde_json::json!(stage.name());
        }
        text.push_str(&obj.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let opts = journeydb::import::ImportOptions {
        ts_unit: journeydb::import::TsUnit::Us,
        ..Default::default()
    };
    let read = journeydb::import::read_file(&path, &opts, &mut |_, _| {}).unwrap();
    assert!(read.skipped.is_empty());
    read.staged
}
