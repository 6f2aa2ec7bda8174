//! The in-memory buffer of committed events not yet sealed into a segment.
//!
//! Rows are appended in sequence order by the single writer; readers see a prefix (the rows a
//! snapshot may see) sorted by (customer, timestamp, sequence), computed once per prefix length
//! and shared by every snapshot of that length.
//!
//! Uses: `model`.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::model::{Columns, PROFILE_ROW, PropColumn};

/// A sorted prefix's length, its events and its profile writes.
type SortedPrefix = (usize, Arc<Columns>, Arc<Columns>);

/// The mutable buffer of one generation (replaced by an empty one at each seal).
#[derive(Debug)]
pub struct Buffer {
    seq_base: u64,
    rows: RwLock<Columns>,
    sorted: Mutex<Option<SortedPrefix>>,
}

impl Buffer {
    /// An empty buffer whose first row has sequence number `seq_base`.
    pub fn new(seq_base: u64) -> Self {
        Buffer {
            seq_base,
            rows: RwLock::new(Columns::default()),
            sorted: Mutex::new(None),
        }
    }

    /// Sequence number of row 0.
    pub fn seq_base(&self) -> u64 {
        self.seq_base
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    /// Event rows among the first `len` rows held (profile writes, which share the buffer and
    /// the sequence numbers, are not events).
    pub fn events_in(&self, len: usize) -> usize {
        let rows = self.rows.read();
        let len = len.min(rows.event.len());
        rows.event[..len]
            .iter()
            .filter(|&&event| event != PROFILE_ROW)
            .count()
    }

    /// True when no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a batch (ingestion order).
    pub fn push(&self, batch: &Columns) {
        self.rows.write().extend_from(batch);
    }

    /// The first `len` rows sorted by (customer, timestamp, sequence), split into events and
    /// customer-profile writes (`model::PROFILE_ROW`), as readers see them (stage codes without
    /// `model::STAGE_MAPPED`). The last prefix sorted is kept; a longer one (the statement after
    /// a commit) sorts only the rows added since and merges them in, instead of sorting the
    /// whole prefix again.
    pub fn sorted_prefix(&self, len: usize) -> (Arc<Columns>, Arc<Columns>) {
        let mut cache = self.sorted.lock();
        let len = len.min(self.len());
        let (events, profiles) = match &*cache {
            Some((n, events, profiles)) if *n == len => return (events.clone(), profiles.clone()),
            Some((n, events, profiles)) if *n < len => {
                let (mut new_events, new_profiles) = self.sorted_range(*n..len);
                new_events.strip_stage_flags();
                (
                    merge_later(events, new_events),
                    merge_later(profiles, new_profiles),
                )
            }
            _ => {
                let (mut events, profiles) = self.sorted_range(0..len);
                events.strip_stage_flags();
                (Arc::new(events), Arc::new(profiles))
            }
        };
        *cache = Some((len, events.clone(), profiles.clone()));
        (events, profiles)
    }

    /// The events among rows `from..to` (ingestion order), sorted by customer, stages as
    /// readers see them (what [`sorted_prefix`](Self::sorted_prefix) adds between those
    /// lengths).
    pub fn events_between(&self, from: usize, to: usize) -> Columns {
        let (mut events, _) = self.sorted_range(from..to);
        events.strip_stage_flags();
        events
    }

    /// [`sorted_prefix`](Self::sorted_prefix) in the stored form (stages that came from the
    /// stage map keep `model::STAGE_MAPPED`), for the seal that writes them to a segment.
    pub fn sorted_stored(&self, len: usize) -> (Columns, Columns) {
        self.sorted_range(0..len)
    }

    /// Rows `range` (ingestion order, clamped to the rows held) sorted by (customer,
    /// timestamp, sequence) and split into events and profile writes, in the stored form.
    fn sorted_range(&self, range: std::ops::Range<usize>) -> (Columns, Columns) {
        let rows = self.rows.read();
        let to = range.end.min(rows.len());
        let from = range.start.min(to);
        let sorted = if from == 0 && to == rows.len() {
            rows.gather(&rows.sort_order())
        } else {
            let part = rows.slice(from..to);
            part.gather(&part.sort_order())
        };
        sorted.split_profiles()
    }
}

/// `older` and then `newer` (both sorted by (customer, timestamp, sequence), every row of
/// `newer` later in sequence than every row of `older`) as one sorted set of rows: a linear
/// merge that takes `older`'s row on equal (customer, timestamp), each column copied once.
fn merge_later(older: &Arc<Columns>, newer: Columns) -> Arc<Columns> {
    if newer.is_empty() {
        return older.clone();
    }
    if older.is_empty() {
        return Arc::new(newer);
    }
    let order = merge_order(older, &newer);
    let mut ids: Vec<u32> = older.props.iter().chain(&newer.props).map(|p| p.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let props = ids
        .into_iter()
        .filter_map(|id| {
            let (old, new) = (older.prop(id), newer.prop(id));
            let ty = old.or(new)?.ty;
            Some(PropColumn {
                id,
                ty,
                valid: pick_from(prop_valid(old), prop_valid(new), &order),
                vals: pick_from(prop_vals(old), prop_vals(new), &order),
            })
        })
        .collect();
    Arc::new(Columns {
        cid: pick_from(&older.cid, &newer.cid, &order),
        ts: pick_from(&older.ts, &newer.ts, &order),
        event: pick_from(&older.event, &newer.event, &order),
        stage: pick_from(&older.stage, &newer.stage, &order),
        props,
    })
}

fn prop_valid(column: Option<&PropColumn>) -> &[bool] {
    column.map_or(&[], |p| &p.valid)
}

fn prop_vals(column: Option<&PropColumn>) -> &[u64] {
    column.map_or(&[], |p| &p.vals)
}

/// Marks an index of [`merge_order`] as `newer`'s row.
const NEWER: u32 = 1 << 31;

/// The rows of `older` and `newer` in merged order: an index into `older`, or [`NEWER`] and an
/// index into `newer`; `older`'s row first on equal (customer, timestamp).
fn merge_order(older: &Columns, newer: &Columns) -> Vec<u32> {
    let key = |rows: &Columns, row: usize| (rows.cid[row], rows.ts[row]);
    let mut order = Vec::with_capacity(older.len() + newer.len());
    let (mut left, mut right) = (0, 0);
    while left < older.len() && right < newer.len() {
        if key(newer, right) < key(older, left) {
            order.push(NEWER | right as u32);
            right += 1;
        } else {
            order.push(left as u32);
            left += 1;
        }
    }
    order.extend((left..older.len()).map(|row| row as u32));
    order.extend((right..newer.len()).map(|row| NEWER | row as u32));
    order
}

/// One column of the merged rows (see [`merge_order`]); a row a side does not have (a
/// property column absent there) reads as the type's default (null, 0).
fn pick_from<T: Copy + Default>(older: &[T], newer: &[T], order: &[u32]) -> Vec<T> {
    order
        .iter()
        .map(|&index| {
            let row = if index & NEWER != 0 {
                newer.get((index & !NEWER) as usize)
            } else {
                older.get(index as usize)
            };
            row.copied().unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PropType;
    use proptest::prelude::*;

    /// A batch from (customer, timestamp, event or profile write, property value) rows; the
    /// property is present only in batches that have `with_prop`.
    fn batch(rows: &[(u32, i64, bool, u64)], with_prop: bool) -> Columns {
        let mut cols = Columns {
            cid: rows.iter().map(|r| r.0).collect(),
            ts: rows.iter().map(|r| r.1).collect(),
            event: rows
                .iter()
                .map(|r| if r.2 { PROFILE_ROW } else { (r.3 % 3) as u32 })
                .collect(),
            stage: vec![0; rows.len()],
            props: Vec::new(),
        };
        if with_prop {
            let mut prop = PropColumn::new(4, PropType::I64);
            prop.valid = rows.iter().map(|r| r.3 % 2 == 0).collect();
            prop.vals = rows.iter().map(|r| if r.3 % 2 == 0 { r.3 } else { 0 }).collect();
            cols.props.push(prop);
        }
        cols
    }

    /// Every row's content, in order, with the property looked up by id (an absent column and
    /// a column of nulls read the same).
    fn contents(cols: &Columns) -> Vec<(u32, i64, u32, Option<u64>)> {
        let prop = cols.prop(4);
        (0..cols.len())
            .map(|i| {
                let value = prop.filter(|p| p.valid[i]).map(|p| p.vals[i]);
                (cols.cid[i], cols.ts[i], cols.event[i], value)
            })
            .collect()
    }

    proptest! {
        /// The sorted prefix grown commit by commit (the rows since the last one sorted and
        /// merged in) equals the same prefix sorted whole, ties (equal customer and timestamp)
        /// in sequence order, events and profile writes apart.
        #[test]
        fn grown_prefix_equals_a_whole_sort(
            batches in proptest::collection::vec(
                (proptest::collection::vec((0u32..6, 0i64..5, proptest::bool::weighted(0.2), 0u64..9), 0..12), any::<bool>()),
                1..8,
            ),
            asked in proptest::collection::vec(0usize..100, 1..10),
        ) {
            let grown = Buffer::new(0);
            for (rows, with_prop) in &batches {
                grown.push(&batch(rows, *with_prop));
            }
            let mut lens: Vec<usize> = asked.iter().map(|&a| a % (grown.len() + 1)).collect();
            lens.sort_unstable();
            for &len in &lens {
                let (events, profiles) = grown.sorted_prefix(len);
                // A new buffer with the same rows sorts the prefix whole.
                let whole = Buffer::new(0);
                for (rows, with_prop) in &batches {
                    whole.push(&batch(rows, *with_prop));
                }
                let (want_events, want_profiles) = whole.sorted_prefix(len);
                prop_assert_eq!(contents(&events), contents(&want_events), "len {}", len);
                prop_assert_eq!(contents(&profiles), contents(&want_profiles), "len {}", len);
            }
        }
    }
}
