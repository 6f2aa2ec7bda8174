//! How values, timestamps, stages and customer lists are written into result cells.
//!
//! Uses: `dict`, `model`, `result`.

use crate::dict::Dicts;
use crate::model::{Columns, PropType};
use crate::result::{Cell, Table};

/// Property `id` of type `ty` at row `index` of `rows` as a typed cell (NULL where the row has
/// no value).
pub(super) fn prop_cell(rows: &Columns, (id, ty): (u32, PropType), index: usize, dicts: &Dicts) -> Cell {
    let Some(column) = rows.prop(id).filter(|column| column.valid[index]) else {
        return Cell::Null;
    };
    let slot = column.vals[index];
    match ty {
        PropType::Str => Cell::Str(dicts.strings.name(slot as u32).unwrap_or("?").to_owned()),
        PropType::I64 => Cell::Int(slot as i64),
        PropType::F64 => Cell::Float(f64::from_bits(slot)),
        PropType::Bool => Cell::Bool(slot != 0),
    }
}

pub(super) fn slot_label(slot: Option<u64>, ty: PropType, dicts: &Dicts) -> String {
    let Some(x) = slot else { return "(null)".into() };
    match ty {
        PropType::Str => dicts.strings.name(x as u32).unwrap_or("?").to_owned(),
        PropType::I64 => (x as i64).to_string(),
        PropType::F64 => f64::from_bits(x).to_string(),
        PropType::Bool => (x != 0).to_string(),
    }
}

pub(super) fn prop_label(
    rows: &Columns,
    prop: Option<(u32, PropType)>,
    index: usize,
    dicts: &Dicts,
) -> String {
    let Some((id, ty)) = prop else {
        return String::new();
    };
    let Some(c) = rows.prop(id) else {
        return "(null)".into();
    };
    if !c.valid[index] {
        return "(null)".into();
    }
    let x = c.vals[index];
    match ty {
        PropType::Str => dicts.strings.name(x as u32).unwrap_or("?").to_owned(),
        PropType::I64 => (x as i64).to_string(),
        PropType::F64 => f64::from_bits(x).to_string(),
        PropType::Bool => (x != 0).to_string(),
    }
}

/// The customers of a set: columns `total` (the full count, on every row) and `customer`
/// (external id), in internal-id order, at most `limit` rows; an empty set is one row (0, NULL).
/// The customers of `set` (at most `limit`, and never more than one row past the cap, which
/// `execute` then refuses).
pub(super) fn customer_table(
    set: &roaring::RoaringBitmap,
    dicts: &Dicts,
    limit: Option<u64>,
    rows_max: usize,
) -> Table {
    let mut t = Table::new(&["total", "customer"]);
    let total = set.len() as i64;
    let take = limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(rows_max.saturating_add(1));
    for cid in set.iter().take(take) {
        t.rows.push(vec![
            Cell::Int(total),
            Cell::Str(dicts.customers.name(cid).unwrap_or("?").to_owned()),
        ]);
    }
    if t.rows.is_empty() {
        t.rows.push(vec![Cell::Int(total), Cell::Null]);
    }
    t
}

pub(super) fn ts_text(us: i64) -> String {
    Cell::Time(us).to_string()
}
