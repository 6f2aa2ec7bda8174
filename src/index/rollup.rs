//! Roll-ups: per (event, UTC day) counts and numeric aggregates, for TREND without a scan.
//!
//! Uses: `codec`, `limits`, `model`; rooms `days`.

use crate::codec::{self, DecodeError, Reader};
use crate::index::days::{DENSE_SLOTS_MAX, DayCursor, day_span};
use crate::model::{Columns, stage_code};
use std::collections::BTreeMap;

/// The aggregate of one numeric property's values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NumAgg {
    /// Values present.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl NumAgg {
    fn add(&mut self, value: f64) {
        if self.n == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.n += 1;
        self.sum += value;
    }

    fn merge(&mut self, agg: &NumAgg) {
        if agg.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *agg;
            return;
        }
        self.n += agg.n;
        self.sum += agg.sum;
        self.min = self.min.min(agg.min);
        self.max = self.max.max(agg.max);
    }
}

/// One (stage, UTC day) cell of [`Rollups`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollupCell {
    /// Events.
    pub events: u64,
    /// Per numeric (i64 or f64) property id: its values' aggregate.
    pub props: BTreeMap<u32, NumAgg>,
}

impl RollupCell {
    fn merge(&mut self, cell: &RollupCell) {
        self.events += cell.events;
        for (id, a) in &cell.props {
            self.props
                .entry(*id)
                .or_insert(NumAgg {
                    n: 0,
                    sum: 0.0,
                    min: 0.0,
                    max: 0.0,
                })
                .merge(a);
        }
    }
}

/// Per (stage code, UTC day) of one segment: the number of events and, for each numeric
/// property, the count, sum, minimum and maximum of its values. `TREND count|sum|avg|min|max
/// [OF STAGE s]` by UTC day, week or month reads these instead of the rows. Stored in the
/// segment footer after the bitmaps (docs/FORMAT.md §5.3); segments written before rollups
/// existed have none, and queries then scan them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollups {
    /// (stage code, UTC day) → cell.
    pub cells: BTreeMap<(u8, i32), RollupCell>,
}

impl Rollups {
    /// Adds the rows of `cols`: summed per (stage, day) of the block in dense slots when the
    /// block's span allows, else run by run (rows come in customer and time order, so runs of
    /// one key are common).
    pub fn add(&mut self, cols: &Columns) {
        let numeric: Vec<&crate::model::PropColumn> = cols
            .props
            .iter()
            .filter(|c| matches!(c.ty, crate::model::PropType::I64 | crate::model::PropType::F64))
            .collect();
        let stages = cols
            .stage
            .iter()
            .map(|&s| stage_code(s))
            .max()
            .map_or(0, |s| usize::from(s) + 1);
        let dense = day_span(cols).and_then(|(d0, days)| {
            let slots = stages.checked_mul(days).filter(|&s| s <= DENSE_SLOTS_MAX)?;
            Some((d0, days, slots))
        });
        let Some((d0, days, slots)) = dense else {
            return self.add_runs(cols, &numeric);
        };
        let k = numeric.len();
        let zero = NumAgg {
            n: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        };
        let mut events = vec![0u64; slots];
        let mut aggs = vec![zero; slots * k];
        let mut cursor = DayCursor::new();
        for (i, (&stage, &ts)) in cols.stage.iter().zip(&cols.ts).enumerate() {
            // In range by construction: stage < stages, d0 ≤ day < d0 + days.
            let day = (i64::from(cursor.of(ts)) - i64::from(d0)) as usize;
            let s = usize::from(stage_code(stage)) * days + day;
            if let Some(e) = events.get_mut(s) {
                *e += 1;
            }
            for (c_at, c) in numeric.iter().enumerate() {
                if c.valid.get(i) == Some(&true)
                    && let (Some(&raw), Some(a)) = (c.vals.get(i), aggs.get_mut(s * k + c_at))
                {
                    a.add(match c.ty {
                        crate::model::PropType::I64 => raw as i64 as f64,
                        _ => f64::from_bits(raw),
                    });
                }
            }
        }
        for (s, &count) in events.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let Ok(stage) = u8::try_from(s / days) else {
                continue;
            };
            let cell = RollupCell {
                events: count,
                props: numeric
                    .iter()
                    .zip(aggs.get(s * k..(s + 1) * k).unwrap_or(&[]))
                    .filter(|(_, a)| a.n > 0)
                    .map(|(c, a)| (c.id, *a))
                    .collect(),
            };
            let key = (stage, d0 + (s % days) as i32);
            match self.cells.entry(key) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(cell);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().merge(&cell),
            }
        }
    }

    /// [`add`](Self::add) run by run of equal (stage, day).
    fn add_runs(&mut self, cols: &Columns, numeric: &[&crate::model::PropColumn]) {
        let mut cur: Option<((u8, i32), RollupCell)> = None;
        let mut days = DayCursor::new();
        for i in 0..cols.len() {
            let key = (stage_code(cols.stage[i]), days.of(cols.ts[i]));
            if cur.as_ref().is_some_and(|(k, _)| *k != key)
                && let Some((k, cell)) = cur.take()
            {
                self.cells.entry(k).or_default().merge(&cell);
            }
            let cell = &mut cur.get_or_insert_with(|| (key, RollupCell::default())).1;
            cell.events += 1;
            for c in numeric {
                if c.valid[i] {
                    let v = match c.ty {
                        crate::model::PropType::I64 => c.vals[i] as i64 as f64,
                        _ => f64::from_bits(c.vals[i]),
                    };
                    cell.props
                        .entry(c.id)
                        .or_insert(NumAgg {
                            n: 0,
                            sum: 0.0,
                            min: 0.0,
                            max: 0.0,
                        })
                        .add(v);
                }
            }
        }
        if let Some((k, cell)) = cur {
            self.cells.entry(k).or_default().merge(&cell);
        }
    }

    /// Appends the encoding: count u32, then per cell `stage u8 | day i32 | events varint |
    /// nprops varint | nprops × (id varint | n varint | sum, min, max as f64 bits u64)`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.cells.len() as u32);
        for ((stage, day), cell) in &self.cells {
            out.push(*stage);
            codec::put_i32(out, *day);
            codec::put_varint(out, cell.events);
            codec::put_varint(out, cell.props.len() as u64);
            for (id, a) in &cell.props {
                codec::put_varint(out, u64::from(*id));
                codec::put_varint(out, a.n);
                codec::put_u64(out, a.sum.to_bits());
                codec::put_u64(out, a.min.to_bits());
                codec::put_u64(out, a.max.to_bits());
            }
        }
    }

    /// Decodes what [`Rollups::encode`] wrote.
    pub fn decode(reader: &mut Reader<'_>) -> Result<Rollups, DecodeError> {
        let n = reader.u32()? as usize;
        if n > reader.remaining() / 7 {
            return Err(reader.err("rollup count exceeds the data"));
        }
        let mut out = Rollups::default();
        for _ in 0..n {
            let stage = reader.u8()?;
            if stage > 5 {
                return Err(reader.err(format!("stage code {stage}")));
            }
            let day = reader.i32()?;
            let mut cell = RollupCell {
                events: reader.varint()?,
                props: BTreeMap::new(),
            };
            let np = reader.len_prefix(crate::limits::PROPS_MAX)?;
            for _ in 0..np {
                let id = reader.varint_u32()?;
                let a = NumAgg {
                    n: reader.varint()?,
                    sum: f64::from_bits(reader.u64()?),
                    min: f64::from_bits(reader.u64()?),
                    max: f64::from_bits(reader.u64()?),
                };
                if a.n == 0 || a.n > cell.events || cell.props.insert(id, a).is_some() {
                    return Err(reader.err("bad rollup property entry"));
                }
            }
            if cell.events == 0 || out.cells.insert((stage, day), cell).is_some() {
                return Err(reader.err("bad rollup cell"));
            }
        }
        Ok(out)
    }
}
