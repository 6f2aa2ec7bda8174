//! A statement's `BY`: an event property (the value on the row that decides the group) or a
//! customer-profile property `customer.NAME` (the customer's latest value: the same on every row
//! of the customer; docs/QUERY.md, "Customer profiles").
//!
//! Uses: `db`, `dict`, `model`, `plan`, `query`; rooms `labels`, `options`.

use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::db::profiles::ValueGroups;
use crate::dict::Dicts;
use crate::exec::labels::slot_label;
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
    /// `BY p1, p2`: the second property (a group is then the pair, packed into one slot).
    second: Option<Box<GroupBy>>,
}

/// A null half of a packed pair (no dictionary id reaches it).
const NULL_HALF: u64 = u32::MAX as u64;

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
                second: None,
            });
        }
        let (prop, ty) = res.profile_prop(name, span)?;
        let Some(snapshot) = input.snapshot else {
            return Err(ParseError::new(span, "customer properties need a snapshot").into());
        };
        let customers = Some(snapshot.profiles()?.groups(prop));
        Ok(GroupBy {
            prop,
            ty,
            customers,
            second: None,
        })
    }

    /// Resolves `BY p1, p2`: both properties strings or booleans (a pair of their value ids
    /// is one group slot).
    pub(super) fn resolve_pair(
        res: &Resolver<'_>,
        input: &Input<'_>,
        (first, second): ((&str, Span), (&str, Span)),
    ) -> Result<Self, QueryError> {
        let mut by = Self::resolve(res, input, first)?;
        let other = Self::resolve(res, input, second)?;
        for (g, (name, span)) in [(&by, first), (&other, second)] {
            if !matches!(g.ty, PropType::Str | PropType::Bool) {
                let why = format!(
                    "`{name}` is {}; BY of two properties takes strings or booleans",
                    g.ty
                );
                return Err(ParseError::new(span, why).into());
            }
        }
        by.second = Some(Box::new(other));
        Ok(by)
    }

    /// The labels of group `slot`: one, or two for a pair.
    pub(super) fn labels(&self, slot: Option<u64>, dicts: &Dicts) -> Vec<String> {
        let Some(second) = &self.second else {
            return vec![slot_label(slot, self.ty, dicts)];
        };
        let half = |h: u64| (h != NULL_HALF).then_some(h);
        let packed = slot.unwrap_or(u64::MAX);
        vec![
            slot_label(half(packed >> 32), self.ty, dicts),
            slot_label(half(packed & NULL_HALF), second.ty, dicts),
        ]
    }

    /// True for `BY p1, p2`.
    pub(super) fn is_pair(&self) -> bool {
        self.second.is_some()
    }

    /// The event properties the groups read (for the scan's columns).
    pub(super) fn event_props(&self) -> Vec<u32> {
        let own = self.customers.is_none().then_some(self.prop);
        own.into_iter()
            .chain(self.second.iter().flat_map(|g| g.event_props()))
            .collect()
    }

    /// The group of row `index` of `rows` (`None`: the null group).
    #[inline]
    pub(super) fn slot(&self, rows: &Columns, index: usize) -> Option<u64> {
        let own = match &self.customers {
            Some(groups) => groups.values.get(rows.cid[index] as usize).copied().flatten(),
            None => slot(rows, self.prop, index),
        };
        match &self.second {
            None => own,
            Some(second) => {
                let half = |h: Option<u64>| h.map_or(NULL_HALF, |h| h & NULL_HALF);
                Some(half(own) << 32 | half(second.slot(rows, index)))
            }
        }
    }

    /// For a customer property, the customers of each value (value slots ascending; the
    /// customers in none are the null group).
    pub(super) fn customer_members(&self) -> Option<&[(u64, RoaringBitmap)]> {
        if self.second.is_some() {
            return None;
        }
        self.customers.as_ref().map(|groups| groups.members.as_slice())
    }

    /// The event property grouped by, if it is one (what the scan must read, and what index
    /// shortcuts by an event property's values may answer).
    pub(super) fn event_prop(&self) -> Option<(u32, PropType)> {
        (self.customers.is_none() && self.second.is_none()).then_some((self.prop, self.ty))
    }
}
