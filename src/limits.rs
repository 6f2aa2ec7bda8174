//! Every hard limit of journeydb as a named constant, with the reason it exists.
//!
//! Limits protect the process from hostile or corrupt input: every length read from a file or
//! taken from a user is checked against one of these before any allocation or decompression.
//!
//! Uses: no other module of the crate.

/// Longest customer external id in bytes (the data model: "up to 256 bytes").
pub const CUSTOMER_ID_BYTES_MAX: usize = 256;
/// Longest event name or property name in bytes; names are identifiers, not payloads.
pub const NAME_BYTES_MAX: usize = 256;
/// Longest string property value in bytes; larger values belong in another store.
pub const STRING_VALUE_BYTES_MAX: usize = 64 * 1024;
/// Most properties on one event.
pub const EVENT_PROPS_MAX: usize = 256;
/// Most distinct property names in one database (each is a column in every segment).
pub const PROPS_MAX: usize = 4096;
/// Most events in one committed batch (one log record); larger loads use several batches.
pub const BATCH_EVENTS_MAX: usize = 4 * 1024 * 1024;
/// Most rows in one [`crate::Db::import`] (rows are addressed by `u32` while sorted).
pub const IMPORT_ROWS_MAX: usize = u32::MAX as usize;
/// Largest log record payload in bytes; bounds the allocation made while replaying the log.
pub const WAL_RECORD_BYTES_MAX: usize = 1 << 30;
/// Largest dictionary frame payload in bytes.
pub const DICT_FRAME_BYTES_MAX: usize = 1 << 30;
/// Largest manifest payload in bytes.
pub const MANIFEST_BYTES_MAX: usize = 64 << 20;
/// Most identity links a database holds (8 bytes each in every manifest: 32 MiB at the most).
pub const LINKS_MAX: usize = 4 << 20;
/// Rows per segment block: the unit of compression, checksumming and zone maps.
pub const BLOCK_ROWS: usize = 64 * 1024;
/// Largest decoded size of one column chunk of one block; bounds decompression.
pub const CHUNK_RAW_BYTES_MAX: usize = BLOCK_ROWS * 16 + 64;
/// Largest segment footer in bytes; checked before the footer is read.
pub const FOOTER_BYTES_MAX: u64 = 1 << 32;
/// Most distinct event names in one database. Event names are categories of actions (tools
/// advise hundreds, Amplitude allows 2,000 per project); every open holds each name with its
/// per-segment bitmap (~600 bytes each: 10^6 names cost ~587 MB per open), so a name that is
/// really an identifier, a URL or free text is refused with advice to make it a property.
/// Databases that already hold more keep opening; new names are refused.
pub const EVENT_NAMES_MAX: u64 = 100_000;
/// Most distinct dictionary entries of one kind (ids are dense `u32`).
pub const DICT_ENTRIES_MAX: u64 = u32::MAX as u64;
/// Largest decompressed bitmap index of one segment.
pub const INDEX_RAW_BYTES_MAX: usize = 1 << 30;
/// Longest query text in bytes.
pub const QUERY_BYTES_MAX: usize = 64 * 1024;
/// Deepest predicate nesting (the parser is recursive; this bounds its stack).
pub const QUERY_DEPTH_MAX: usize = 64;
/// Most steps in a funnel.
pub const FUNNEL_STEPS_MAX: usize = 32;

/// The most events after (or before) the anchor of a `PATHS` statement (`STEPS k`).
pub const PATH_STEPS_MAX: usize = 10;
/// Most retention offsets.
pub const RETENTION_PERIODS_MAX: u32 = 1000;
/// Default memory budget of one query's working state in bytes (configurable per query).
pub const QUERY_MEMORY_DEFAULT: usize = 1 << 30;
/// Default cap on result rows (configurable per query).
pub const RESULT_ROWS_MAX: usize = 1_000_000;
/// Most time buckets in one query result.
pub const BUCKETS_MAX: usize = 100_000;
