//! journeydb: an embedded customer-journey database.
//!
//! Events (customer, timestamp, event name, lifecycle stage, typed properties) are appended
//! through a durable write-ahead log, sealed into immutable columnar segments sorted by
//! (customer, timestamp), and indexed with roaring bitmaps per stage, event name and day.
//!
//! ```no_run
//! use journeydb::{Db, Event, Options, Stage};
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
//! # Ok(()) }
//! ```
//!
//! Module order is the data flow; a module uses only modules listed before it
//! (docs/ARCHITECTURE.md): limits, model, demo, codec, file, dict, ingest, import, wal, buffer,
//! index, segment, manifest, compaction, error, db, export,

pub mod limits;
pub mod model;
pub mod demo;
pub mod codec;
pub mod file;
pub mod dict;
pub mod ingest;
pub mod import;
pub mod wal;
pub mod buffer;
pub mod index;
pub mod segment;
pub mod manifest;
pub mod compaction;
pub mod error;
pub mod db;
pub mod export;
pub mod query;
pub mod plan;
pub mod result;
pub mod exec;

pub use db::{Batch, Db, Options, Snapshot, Stats, Sync};
pub use error::{DbError, Error, Result};
pub use exec::{Query, QueryError, QueryOptions};
pub use model::{Event, PropType, Stage, StoredEvent, Value};
pub use result::{Cell, Table};
