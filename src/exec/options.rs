//! What a query is given and how it can fail: the per-query options, the snapshot's
//! input, and the error type.
//!
//! Uses only crate modules below the executor (dict, index, compaction, query, error).
//!
//! Uses: `db`, `dict`, `error`, `file`, `index`, `limits`, `merge`, `query`.

use crate::dict::Dicts;
use crate::limits;
use crate::merge::Source;
use crate::query::ParseError;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Why a query failed after parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The text is not a valid query, or names something unknown (span + message).
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The query was cancelled.
    #[error("query cancelled")]
    Cancelled,
    /// A query worker stopped on a bug (a panic); the message is the panic's. No partial
    /// answer is returned.
    #[error("internal error in a query worker: {0} (a bug in journeydb: please report it)")]
    Internal(String),
    /// The result would exceed the row cap.
    #[error("result exceeds {0} rows (raise the cap or narrow the query)")]
    TooManyRows(usize),
    /// The query's working state grew past its memory budget.
    #[error(
        "query needs more than its memory budget of {} (raise QueryOptions::memory_max, `.memory` in the shell, or narrow the query)",
        human_bytes(*.0)
    )]
    MemoryExceeded(usize),
    /// Reading data failed.
    #[error(transparent)]
    File(#[from] crate::file::FileError),
    /// A model cannot be fitted to the data the statement selects (FIT, PREDICT): too few
    /// customers, no repeat purchase, or an optimiser that did not converge.
    #[error("{0}")]
    Model(String),
    /// A statement that changes the database failed.
    #[error(transparent)]
    Storage(Box<crate::error::Error>),
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(count: usize) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut x = count as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{count} bytes")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

/// Per-query options.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Set to true from another thread to cancel.
    pub cancel: Arc<AtomicBool>,
    /// Largest result.
    pub rows_max: usize,
    /// Budget in bytes for the query's working state (per-group aggregates, time-to-convert
    /// samples, percentile values, one customer's rows held across blocks, result rows),
    /// summed over all worker threads. Decoded blocks (at most one per source per worker) are
    /// not counted. Exceeding it stops the query with [`QueryError::MemoryExceeded`].
    pub memory_max: usize,
    /// Worker threads (0 = available parallelism).
    pub threads: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            cancel: Arc::new(AtomicBool::new(false)),
            rows_max: limits::RESULT_ROWS_MAX,
            memory_max: limits::QUERY_MEMORY_DEFAULT,
            threads: 0,
        }
    }
}

/// What a query needs from a snapshot.
pub struct Input<'a> {
    /// Sorted sources in sequence order.
    pub sources: Vec<Source>,
    /// Dictionaries.
    pub dicts: &'a Dicts,
    /// Number of customer ids (upper bound of internal ids).
    pub customers: u32,
    /// Smallest and largest timestamp present (None when empty).
    pub ts_range: Option<(i64, i64)>,
    /// The union of the sources' bitmap indices.
    pub bitmaps: &'a crate::index::Bitmaps,
    /// Set for a statement restricted to some customers (`WHERE CUSTOMER IN`): `sources` and
    /// `bitmaps` then show only their rows (what prefilters read), and the scan reads these.
    pub restriction: Option<Restriction>,
    /// The snapshot read (its customer profiles: `BY customer.NAME`); `None` in unit tests.
    pub snapshot: Option<&'a crate::db::Snapshot>,
    /// The identity links a scan resolves (`None` when there are none).
    pub links: Option<&'a crate::db::Links>,
    /// Set for `BY COHORT a, b, …`: the statement runs once per cohort, side by side, in one
    /// scan (see [`SideBySide`]).
    pub side_by_side: Option<&'a SideBySide<'a>>,
    /// What the cohorts of one `BY COHORT` share (see [`Shared`]); `None` otherwise.
    pub shared: Option<&'a Shared>,
}

/// Customers per UTC day (a step's, as the per-day indices give them).
pub type DaySets = std::collections::BTreeMap<i32, roaring::RoaringBitmap>;

/// `BY COHORT a, b, …`: each cohort's restricted input (what its prefilter and its finish
/// read) and where the cohort's name goes in the joined table. The statement is planned once,
/// on the snapshot's own input, and driven for all cohorts in one pass (the `drive` room).
pub struct SideBySide<'a> {
    /// Each cohort's name and input (restricted to its members and the statement's own
    /// `CUSTOMER IN` filters).
    pub cohorts: Vec<(String, Input<'a>)>,
    /// The column the `group` column (the cohort's name) is inserted at.
    pub group_at: usize,
    /// The rows of one bucket in each cohort's table (0: the table is not by bucket), which
    /// the joined table interleaves bucket by bucket.
    pub bucket_rows: usize,
    /// Set once the statement was driven side by side (a statement that never reaches the
    /// driver would answer for everyone: the caller refuses that).
    pub driven: std::sync::atomic::AtomicBool,
}

/// What the cohorts of one `BY COHORT` statement share. Their inputs differ only by their
/// restrictions, which bitmap answers apply last (to their final customer sets), so the
/// unrestricted part of such an answer — a step's customers per day, a retention's cohorts
/// per bucket — is computed once for all cohorts and kept here for the statement's run.
#[derive(Default)]
pub struct Shared {
    answers: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl Shared {
    /// The answer kept under `key`, or `compute`'s (kept); `None` when `compute` gives none.
    /// The lock is not held while computing (a computation may ask for another answer).
    pub fn get_or<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        compute: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        let kept = self.answers.lock().ok()?.get(key).cloned();
        if let Some(answer) = kept.and_then(|kept| kept.downcast::<T>().ok()) {
            return Some(answer);
        }
        let answer = Arc::new(compute()?);
        self.answers.lock().ok()?.insert(key.to_string(), answer.clone());
        Some(answer)
    }
}

/// How the scan of a restricted input reads (see [`Input::restriction`]): the snapshot's own
/// sources, for the admitted customers only — the scan's customer filter skips the others
/// without copying rows, and a one-segment input keeps its lazy scan.
#[derive(Clone)]
pub struct Restriction {
    /// The customers admitted.
    pub admitted: Arc<roaring::RoaringBitmap>,
    /// The sources without the restriction's masks.
    pub sources: Vec<Source>,
}

impl<'a> Input<'a> {
    /// Everything `snapshot` sees (`dicts`: its dictionaries).
    pub fn of(snapshot: &'a crate::db::Snapshot, dicts: &'a Dicts) -> Input<'a> {
        Input {
            sources: snapshot.sources(),
            dicts,
            customers: dicts.customers.len() as u32,
            ts_range: snapshot.ts_range(),
            bitmaps: snapshot.bitmaps(),
            restriction: None,
            snapshot: Some(snapshot),
            links: Some(&**snapshot.links()).filter(|links| !links.is_empty()),
            side_by_side: None,
            shared: None,
        }
    }
}

impl From<crate::error::Error> for QueryError {
    fn from(source: crate::error::Error) -> Self {
        QueryError::Storage(Box::new(source))
    }
}
