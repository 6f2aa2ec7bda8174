//! A statement's `BY`: an event property (the value on the row that decides the group) or a
//! customer-profile property `customer.NAME` (the customer's latest value: the same on every row
//! of the customer; docs/QUERY.md, "Customer profiles").
//!
//! Uses: `db`, `model`, `plan`, `query`; rooms `options`.

use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::db::profiles::ValueGroups;
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
    /// For a customer property: each customer's latest value and each value's customers
    /// (shared with the snapshot's profile table). `None` for an event property.
    customers: Option<Arc<ValueGroups>>,
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
        let customers = Some(snapshot.profiles()?.groups(prop));
        Ok(GroupBy { prop, ty, customers })
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
