//! journeydb: an embedded customer-journey database.
//!
//! Events (customer, timestamp, event name, lifecycle stage, typed properties) are appended
//! through a durable write-ahead log, sealed into immutable columnar segments sorted by
//! (customer, timestamp), and indexed with roaring bitmaps per stage, event name and day.
//!
//! ```no_run
//! use journeydb::{Db, Event, Options, Query, Stage};
//! # fn main() -> journeydb::Result<()> {
//! let db = Db::create("shop.journeydb", Options::default())?;
//! let mut batch = db.batch();
//! batch.append(Event::new("alice", 1_767_225_600_000_000, "visit").with_prop("channel", "web"));
//! batch.append(Event::new("alice", 1_767_225_660_000_000, "purchase")
//!     .with_stage(Stage::Purchase)
//!     .with_prop("amount", 19.99));
//! batch.commit()?;
//! let snap = db.snapshot();
//! assert_eq!(snap.customer_events("alice")?.len(), 2);
//! // Queries fail with `QueryError`, which `?` turns into `journeydb::Error` like every other.
//! let funnel = db.query("FUNNEL visit -> purchase WITHIN 7d")?;
//! assert_eq!(funnel.rows.len(), 2);
//! # Ok(()) }
//! ```
//!
//! The engine's modules are declared in `src/internals.rs`, in data-flow order
//! (docs/ARCHITECTURE.md); the crate root re-exports what an application uses.

#[doc(hidden)]
pub mod internals;

pub(crate) use internals::{
    buffer, codec, compaction, db, dict, error, exec, file, index, ingest, limits, manifest, merge, model,
    plan, result, segment, wal,
};
pub use internals::{demo, export, import, query, time};

pub use db::{Batch, Db, Options, Snapshot, Stats, Sync};
pub use error::{DbError, Error, FileError, IngestError, Result};
pub use exec::{Query, QueryError, QueryOptions};
pub use import::{FileFormat, ImportError, ImportOptions};
pub use manifest::CohortEntry;
pub use model::{Event, ProfileUpdate, PropType, Stage, StoredEvent, Value};
pub use result::{Cell, PROPERTIES_PREFIX, Record, Table};
pub use time::TsUnit;
