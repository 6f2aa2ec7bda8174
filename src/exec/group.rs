//! A statement's `BY`: an event property (the value on the row that decides the group) or a
//! customer-profile property `customer.NAME` (the customer's latest value: the same on every row
//! of the customer; docs/QUERY.md, "Customer profiles").
//!
//! Uses: `model`, `plan`, `query`; rooms `options`.

use std::collections::BTreeMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::exec::options::{Input, QueryError};
use crate::model::{Columns, PROFILE_PREFIX, PropType};
use crate::plan::{Resolver, slot};
use crate::query::ParseError;
use crate::query::Span;

/// What a `BY` groups by.
#[derive(Clone, Debug)]
pub(super) struct GroupBy {
    /// The property id.
    pub(super) prop: u32,
    /// Its type.
    pub(super) ty: PropType,
    /// For a customer property: each customer's latest value (by internal id; `None`: never
    /// set), and the customers of each value. `None` for an event property.
    customers: Option<Arc<CustomerGroups>>,
}

/// The groups of a customer property.
#[derive(Debug)]
struct CustomerGroups {
    /// Each customer's value, by internal id.
    values: Vec<Option<u64>>,
    /// The customers of each value (value slots ascending).
    members: Vec<(u64, RoaringBitmap)>,
}

impl GroupBy {
    /// Resolves `BY name` on `input`.
    pub(super) fn resolve(
        res: &Resolver<'_>,
        input: &Input<'_>,
        (name, span): (&str, Span),
    ) -> Result<Self, QueryError> {
        if !name.starts_with(PROFILE_PREFIX) {
            let (prop, ty) = res.prop(name, span)?;
            return Ok(GroupBy {
                prop,
                ty,
                customers: None,
            });
        }
        let (prop, ty) = res.profile_prop(name, span)?;
        let Some(snapshot) = input.snapshot else {
            return Err(ParseError::new(span, "customer properties need a snapshot").into());
        };
        let profiles = snapshot.profiles()?;
        let rows = &profiles.rows;
        let mut values = vec![None; input.customers as usize];
        let mut members: BTreeMap<u64, RoaringBitmap> = BTreeMap::new();
        if let Some(col) = rows.prop(prop) {
            for (i, &cid) in rows.cid.iter().enumerate() {
                if let Some(value) = values.get_mut(cid as usize)
                    && col.valid[i]
                {
                    *value = Some(col.vals[i]);
                    members.entry(col.vals[i]).or_default().insert(cid);
                }
            }
        }
        let groups = CustomerGroups {
            values,
            members: members.into_iter().collect(),
        };
        Ok(GroupBy {
            prop,
            ty,
            customers: Some(Arc::new(groups)),
        })
    }

    /// The group of row `i` of `rows` (`None`: the null group).
    #[inline]
    pub(super) fn slot(&self, rows: &Columns, i: usize) -> Option<u64> {
        match &self.customers {
            Some(groups) => groups.values.get(rows.cid[i] as usize).copied().flatten(),
            None => slot(rows, self.prop, i),
        }
    }

    /// For a customer property, the customers of each value (value slots ascending; the
    /// customers in none are the null group).
    pub(super) fn customer_members(&self) -> Option<&[(u64, RoaringBitmap)]> {
        self.customers.as_ref().map(|groups| groups.members.as_slice())
    }

    /// The event property grouped by, if it is one (what the scan must read, and what index
    /// shortcuts by an event property's values may answer).
    pub(super) fn event_prop(&self) -> Option<(u32, PropType)> {
        self.customers.is_none().then_some((self.prop, self.ty))
    }
}
