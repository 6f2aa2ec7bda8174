//! What an import is told: the file format, the timestamp unit, the column roles (given or found
//! by name), and the other options.
//!
//! Uses: `dict`, `limits`, `model`, `time`.

use crate::limits;
use crate::model::PropType;
use crate::time::{TsForm, TsUnit};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row (RFC 4180).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (needs the `parquet` cargo feature, on by default).
    Parquet,
}

impl FileFormat {
    /// The format a file name implies: `.csv`, `.ndjson`/`.jsonl`/`.json`, each optionally
    /// followed by `.gz` or `.zst`.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = [".gz", ".zst", ".zstd"]
            .iter()
            .find_map(|c| name.strip_suffix(c))
            .unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(FileFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        })
    }
}

/// Rows per part when [`crate::Db::import_file`] streams a Parquet file (unless
/// [`ImportOptions::part_rows`] says otherwise): two segment blocks.
pub const PART_ROWS: usize = 2 * limits::BLOCK_ROWS;

/// Rows per sorted run when [`crate::Db::import_file`] sorts a file in parts (unless
/// [`ImportOptions::run_rows`] says otherwise): about 90 MB of rows of the demo's shape. A file
/// of at most this many rows is sorted in memory and written without a run file; larger ones
/// keep the import's memory to a few hundred megabytes whatever their size (measured in
/// docs/BENCHMARKS.md, "Import in any order").
pub const RUN_ROWS: usize = 32 * limits::BLOCK_ROWS;

/// How to read a file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The format; `None` means from the file name.
    pub format: Option<FileFormat>,
    /// The unit of integer timestamps; `None` infers it from the first one's magnitude (see
    /// [`crate::time`]; [`crate::import::Imported::ts_inferred`] says what was chosen).
    pub ts_unit: Option<TsUnit>,
    /// A strftime-style pattern the timestamps are written in (`%Y%m%d`, `%d/%m/%Y %H:%M`);
    /// it takes precedence over `ts_unit`.
    pub ts_format: Option<String>,
    /// One event name for every row of a file without an event column (no event column is
    /// then looked for: a column named like one is a property).
    pub event: Option<String>,
    /// Name of the customer column (default: the first of `customer`, `customer_id`, `user_id`,
    /// `distinct_id`).
    pub customer_col: Option<String>,
    /// Name of the timestamp column (default: `ts`, `timestamp`, `time`, `event_time`).
    pub ts_col: Option<String>,
    /// Name of the event column (default: `event`, `event_name`, `name`).
    pub event_col: Option<String>,
    /// Name of the stage column (default: `stage`; the column is optional).
    pub stage_col: Option<String>,
    /// Bad rows to skip (and report) before the import fails; 0 = fail on the first.
    pub skip_bad: usize,
    /// Property types fixed in advance: the database's existing properties and any overrides.
    /// Other properties get the type of their first value (see docs/SHELL.md).
    pub prop_types: HashMap<String, PropType>,
    /// Rows per part when [`crate::Db::import_file`] streams a Parquet file into its segment
    /// (`None`: [`PART_ROWS`]); `Some(0)` reads every file whole first.
    pub part_rows: Option<usize>,
    /// Rows sorted in memory at a time when a streamed file's rows are out of (customer, time)
    /// order (`None`: [`RUN_ROWS`]): each such run is sorted and spilled to a temporary file,
    /// and the runs are merged into the imported segment — the import's memory is bounded by a
    /// run, whatever the file's size.
    pub run_rows: Option<usize>,
}

/// The role of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Customer,
    Ts,
    Event,
    Stage,
}

pub const ALIASES: [(Role, &[&str]); 4] = [
    (
        Role::Customer,
        &["customer", "customer_id", "user_id", "distinct_id"],
    ),
    (Role::Ts, &["ts", "timestamp", "time", "event_time"]),
    (Role::Event, &["event", "event_name", "name"]),
    (Role::Stage, &["stage"]),
];

impl ImportOptions {
    /// Fixes the types of the properties a database already has (`dicts`: its dictionaries),
    /// so that a column of integers for a float property is read as floats and a column that
    /// cannot be is a row error, not a failed commit. With `profiles`, the customer-profile
    /// properties (named in the file without `customer.`), else every property by its name.
    pub fn fix_types_of(&mut self, dicts: &crate::dict::Dicts, profiles: bool) {
        for (id, name) in dicts.props.names().enumerate() {
            let name = match (profiles, name.strip_prefix("customer.")) {
                (true, Some(profile)) => profile,
                (true, None) => continue,
                (false, _) => name,
            };
            if let Some(ty) = dicts.prop_types.get(id) {
                self.prop_types.insert(name.to_owned(), *ty);
            }
        }
    }

    /// How the timestamps are read: the pattern, else the unit, else inferred.
    pub fn ts_form(&self) -> TsForm {
        match (&self.ts_format, self.ts_unit) {
            (Some(pattern), _) => TsForm::Pattern(pattern.clone()),
            (None, Some(unit)) => TsForm::Unit(unit),
            (None, None) => TsForm::Infer,
        }
    }

    /// The names that may hold `role`, in order of preference.
    pub(crate) fn names(&self, role: Role) -> Vec<&str> {
        let explicit = match role {
            Role::Customer => &self.customer_col,
            Role::Ts => &self.ts_col,
            Role::Event => &self.event_col,
            Role::Stage => &self.stage_col,
        };
        match explicit {
            Some(name) => vec![name.as_str()],
            None => ALIASES
                .iter()
                .find(|(r, _)| *r == role)
                .map_or_else(Vec::new, |(_, names)| names.to_vec()),
        }
    }
}

/// Where the customer, timestamp, event and (optional) stage columns are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) customer: usize,
    pub(crate) ts: usize,
    /// `None`: the file has no event column ([`ImportOptions::event`] names every row's event).
    pub(crate) event: Option<usize>,
    pub(crate) stage: Option<usize>,
}

impl Layout {
    /// Finds the columns among `names` (in order); the error names what is missing and where it
    /// was looked for.
    pub(crate) fn locate<S: AsRef<str>>(names: &[S], opts: &ImportOptions) -> Result<Layout, String> {
        let find = |role: Role| {
            let wanted = opts.names(role);
            wanted
                .iter()
                .find_map(|w| names.iter().position(|n| n.as_ref() == *w))
                .ok_or(wanted)
        };
        let required = |role: Role, what: &str, flag: &str| {
            find(role).map_err(|wanted| {
                let list: Vec<String> = wanted.iter().map(|w| format!("`{w}`")).collect();
                let or_event = if role == Role::Event {
                    ", or give every row one event name with --event NAME"
                } else {
                    ""
                };
                format!(
                    "no {what} column (looked for {}); name it with {flag}{or_event}",
                    list.join(", ")
                )
            })
        };
        Ok(Layout {
            customer: required(Role::Customer, "customer", "--customer-col")?,
            ts: required(Role::Ts, "timestamp", "--ts-col")?,
            event: match (&opts.event, &opts.event_col) {
                (None, _) => Some(required(Role::Event, "event", "--event-col")?),
                (Some(_), None) => None,
                (Some(_), Some(_)) => {
                    return Err(
                        "--event names every row's event; it cannot be given with --event-col".into(),
                    );
                }
            },
            // Optional, unless named explicitly.
            stage: if opts.stage_col.is_some() {
                Some(required(Role::Stage, "stage", "--stage-col")?)
            } else {
                find(Role::Stage).ok()
            },
        })
    }

    /// True for the customer, timestamp, event and stage columns (the rest are properties).
    pub(crate) fn is_core(&self, index: usize) -> bool {
        [Some(self.customer), Some(self.ts), self.event, self.stage].contains(&Some(index))
    }
}
