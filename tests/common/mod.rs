//! Shared test helpers: an in-memory oracle of the storage model and event generators.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod reference;
pub mod queries;
pub mod correlate;
pub mod funnel_period;
pub mod cohort;
pub mod top;
pub mod paths;
pub mod heatmap;
pub mod nps;
pub mod attribution;
pub mod sessions;
pub mod changes;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use journeydb::internals::model::day_of;
use journeydb::{Event, Snapshot, Stage, StoredEvent, Value};

/// The oracle: every committed event with its sequence number, plus the stage map.
#[derive(Default, Clone, Debug)]
pub struct Oracle {
    pub events: Vec<(u64, StoredEvent)>,
    pub next_seq: u64,
    pub first_seen: HashMap<String, usize>,
    pub stage_map: HashMap<String, Stage>,
    pub prop_types: HashMap<String, journeydb::PropType>,
    /// Each event's own stage by sequence number (`None`: the stage map decides, now and after
    /// every later change of the map).
    pub explicit: HashMap<u64, Option<Stage>>,
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
            self.explicit.insert(self.next_seq, ev.stage);
            self.events.push((self.next_seq, stored));
            self.next_seq += 1;
        }
        true
    }

    /// Changes the stage map as `Db::set_stages` does: every event stored without a stage of
    /// its own takes the new map's stage.
    pub fn set_stages(&mut self, entries: &[(String, Option<Stage>)]) {
        for (name, stage) in entries {
            match stage {
                Some(s) => self.stage_map.insert(name.clone(), *s),
                None => self.stage_map.remove(name),
            };
        }
        for (seq, e) in &mut self.events {
            if let Some(None) = self.explicit.get(seq) {
                e.stage = self.stage_map.get(&e.name).copied();
            }
        }
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
        ts_unit: Some(journeydb::TsUnit::Us),
        ..Default::default()
    };
    let read = journeydb::import::read_file(&path, &opts, &mut |_, _| {}).unwrap();
    assert!(read.skipped.is_empty());
    read.staged
}

/// One row of a Parquet test file ([`write_parquet`]); a `None` customer is a bad row.
#[derive(Clone, Debug)]
pub struct Row {
    pub customer: Option<String>,
    pub ts: i64,
    pub event: &'static str,
    pub amount: Option<f64>,
    pub channel: Option<String>,
    pub late: Option<i64>,
}

/// 2026-01-01 00:00 UTC in µs.
pub const T0: i64 = 1_767_225_600_000_000;

/// `n` rows in customer order (37 rows per customer, seconds apart), bad (null customer) at
/// the indexes `bad`, and a few of each property.
pub fn sorted_rows(n: u64, bad: &[u64]) -> Vec<Row> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Row {
                customer: (!bad.contains(&i)).then(|| format!("cust-{:06}", i / 37)),
                ts: T0 + (i % 37) as i64 * 1_000_000 + (x % 999) as i64,
                event: ["visit", "view", "add_to_cart", "purchase"][(x >> 40) as usize % 4],
                amount: x.is_multiple_of(5).then(|| (x % 10_000) as f64 / 100.0),
                channel: (!x.is_multiple_of(3))
                    .then(|| ["web", "app", "mail"][(x >> 20) as usize % 3].to_owned()),
                late: x.is_multiple_of(7).then_some((x % 100) as i64),
            }
        })
        .collect()
}

/// Writes `rows` as a Parquet file (columns customer_id, ts, event, amount, channel, late)
/// with row groups of `group` rows.
#[cfg(feature = "parquet")]
pub fn write_parquet(path: &std::path::Path, rows: &[Row], group: usize) {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};

    write_columns(path, rows.len(), group, &|r: std::ops::Range<usize>| {
        let rows = &rows[r];
        vec![
            (
                "customer_id",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.customer.clone()).collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(
                    rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "event",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.amount).collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "channel",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.channel.clone()).collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "late",
                Arc::new(Int64Array::from(rows.iter().map(|r| r.late).collect::<Vec<_>>())) as _,
            ),
        ]
    });
}

/// Writes `events` as a Parquet file (customer_id, ts, event, stage, then each property, typed
/// by its first value), in one row group.
#[cfg(feature = "parquet")]
pub fn events_parquet(path: &std::path::Path, events: &[Event]) {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    let mut names: Vec<String> = events
        .iter()
        .flat_map(|e| e.props.iter().map(|p| p.0.clone()))
        .collect();
    names.sort();
    names.dedup();
    let names: Vec<&'static str> = names.into_iter().map(|n| &*n.leak()).collect();
    let value = |e: &Event, name: &str| e.props.iter().find(|p| p.0 == name).and_then(|p| p.1.clone());
    write_columns(path, events.len(), events.len(), &|r: std::ops::Range<usize>| {
        let events = &events[r];
        let mut cols: Vec<(&'static str, ArrayRef)> = vec![
            (
                "customer_id",
                Arc::new(StringArray::from(
                    events.iter().map(|e| e.customer.clone()).collect::<Vec<_>>(),
                )),
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(
                    events.iter().map(|e| e.ts_us).collect::<Vec<_>>(),
                )),
            ),
            (
                "event",
                Arc::new(StringArray::from(
                    events.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
                )),
            ),
            (
                "stage",
                Arc::new(StringArray::from(
                    events
                        .iter()
                        .map(|e| e.stage.map(|s| s.name()))
                        .collect::<Vec<_>>(),
                )),
            ),
        ];
        for &name in &names {
            let vals: Vec<Option<Value>> = events.iter().map(|e| value(e, name)).collect();
            // The column's values of one type (others null).
            fn typed<T>(vals: &[Option<Value>], pick: impl Fn(&Value) -> Option<T>) -> Vec<Option<T>> {
                vals.iter().map(|v| v.as_ref().and_then(&pick)).collect()
            }
            let col: ArrayRef = match vals.iter().flatten().next() {
                Some(Value::I64(_)) => Arc::new(Int64Array::from(typed(&vals, |v| match v {
                    Value::I64(x) => Some(*x),
                    _ => None,
                }))),
                Some(Value::F64(_)) => Arc::new(Float64Array::from(typed(&vals, |v| match v {
                    Value::F64(x) => Some(*x),
                    _ => None,
                }))),
                Some(Value::Bool(_)) => Arc::new(BooleanArray::from(typed(&vals, |v| match v {
                    Value::Bool(x) => Some(*x),
                    _ => None,
                }))),
                _ => Arc::new(StringArray::from(typed(&vals, |v| match v {
                    Value::Str(x) => Some(x.clone()),
                    _ => None,
                }))),
            };
            cols.push((name, col));
        }
        cols
    });
}

/// Writes a Parquet file of `n` rows in row groups of `group` rows, each made by `columns`
/// from its range of rows.
#[cfg(feature = "parquet")]
pub fn write_columns(
    path: &std::path::Path,
    n: usize,
    group: usize,
    columns: &dyn Fn(std::ops::Range<usize>) -> Vec<(&'static str, arrow_array::ArrayRef)>,
) {
    let group = group.max(1);
    let mut w = None;
    // No rows: a file with the columns and no row.
    for start in (0..n.max(1)).step_by(group) {
        let cols = columns(start..(start + group).min(n));
        // Every column nullable, so that each row group has the first one's schema.
        let batch = arrow_array::RecordBatch::try_from_iter_with_nullable(
            cols.into_iter().map(|(n, a)| (n, a, true)),
        )
        .unwrap();
        let w = w.get_or_insert_with(|| {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_row_count(Some(group))
                .build();
            let file = std::fs::File::create(path).unwrap();
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap()
        });
        w.write(&batch).unwrap();
    }
    if let Some(w) = w {
        w.close().unwrap();
    }
}

/// The payload of a one-row log record (customer 0, event 0, at `first_seq` ms) written
/// straight from docs/FORMAT.md §4's encoder, for tests that build logs by hand.
pub fn log_record(first_seq: u64, durable_seq: u64) -> Vec<u8> {
    let rows = journeydb::internals::model::Columns {
        cid: vec![0],
        ts: vec![first_seq as i64 * 1000],
        event: vec![0],
        stage: vec![0],
        props: vec![],
    };
    let mut payload = Vec::new();
    journeydb::internals::wal::encode(first_seq, durable_seq, &Default::default(), &rows, &mut payload);
    payload
}
