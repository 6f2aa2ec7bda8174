//! Not part of the API: the engine's modules, in data-flow order (a module uses only modules
//! declared before it; `tests/tidy.rs` holds this). They are reachable from outside only so that
//! journeydb's own tests, fuzz targets and benchmarks can drive them, and change without notice;
//! an application uses the crate root (and the `import`, `export`, `query` and `demo` modules).

#[path = "limits.rs"]
pub mod limits;
#[path = "model.rs"]
pub mod model;
#[path = "time.rs"]
pub mod time;
#[path = "codec.rs"]
pub mod codec;
#[path = "file.rs"]
pub mod file;
#[path = "dict.rs"]
pub mod dict;
#[path = "ingest.rs"]
pub mod ingest;
#[path = "import/mod.rs"]
pub mod import;
#[path = "wal.rs"]
pub mod wal;
#[path = "buffer.rs"]
pub mod buffer;
#[path = "index/mod.rs"]
pub mod index;
#[path = "segment/mod.rs"]
pub mod segment;
#[path = "manifest.rs"]
pub mod manifest;
#[path = "merge.rs"]
pub mod merge;
#[path = "compaction.rs"]
pub mod compaction;
#[path = "error.rs"]
pub mod error;
#[path = "db/mod.rs"]
pub mod db;
#[path = "export.rs"]
pub mod export;
#[path = "query/mod.rs"]
pub mod query;
#[path = "plan.rs"]
pub mod plan;
#[path = "result.rs"]
pub mod result;
#[path = "exec/mod.rs"]
pub mod exec;
#[path = "demo.rs"]
pub mod demo;
