//! The statements of identity links: `LINK 'anonymous' TO 'known'`, `UNLINK 'anonymous'` and
//! `LINKS ['id']` (docs/QUERY.md, "Identity links"). How a statement reads linked customers
//! is `linked`'s business.
//!
//! Uses: `db`, `query`, `result`; rooms `options`.

use crate::db::{Db, Snapshot};
use crate::exec::options::QueryError;
use crate::query::ast::Link;
use crate::result::{Cell, Table};

/// `LINK 'anonymous' TO 'known'`: one row, whether the link is new.
pub(super) fn link(db: &Db, link: &Link) -> Result<Table, QueryError> {
    let added = db.link(&[(link.anonymous.0.as_str(), link.known.0.as_str())])?;
    let mut table = Table::new(&["anonymous_id", "customer_id", "linked"]);
    table.rows.push(vec![
        Cell::Str(link.anonymous.0.clone()),
        Cell::Str(link.known.0.clone()),
        Cell::Bool(added == 1),
    ]);
    if added == 0 {
        table.warnings.push(format!(
            "'{}' was already linked to '{}'",
            link.anonymous.0, link.known.0
        ));
    }
    Ok(table)
}

/// `UNLINK 'anonymous'`: one row, whether a link was removed.
pub(super) fn unlink(db: &Db, anonymous: &str) -> Result<Table, QueryError> {
    let removed = db.unlink(anonymous)?;
    let mut table = Table::new(&["anonymous_id", "unlinked"]);
    table
        .rows
        .push(vec![Cell::Str(anonymous.to_owned()), Cell::Bool(removed)]);
    if !removed {
        table.warnings.push(format!("'{anonymous}' was not linked"));
    }
    Ok(table)
}

/// `LINKS ['id']`: every link by known id, then anonymous id; with an id, the links of its
/// known customer (the id's own group, whether it is the anonymous or the known one).
pub(super) fn list(snapshot: &Snapshot, id: Option<&str>) -> Result<Table, QueryError> {
    let dicts = snapshot.dicts();
    let links = snapshot.links();
    let name = |cid: u32| Cell::Str(dicts.customers.name(cid).unwrap_or("?").to_owned());
    let mut table = Table::new(&["anonymous_id", "customer_id"]);
    let groups: Vec<(u32, &[u32])> = match id {
        None => links
            .groups()
            .iter()
            .map(|(known, ids)| (*known, ids.as_slice()))
            .collect(),
        Some(id) => match dicts.customers.get(id) {
            Some(cid) => {
                let known = links.resolve(cid);
                vec![(known, links.anonymous_of(known))]
            }
            None => Vec::new(),
        },
    };
    for (known, anonymous) in groups {
        for &anonymous in anonymous {
            table.rows.push(vec![name(anonymous), name(known)]);
        }
    }
    Ok(table)
}
