//! The `journeydb` command: the shell (interactive, `-c`, scripts on stdin), demo data, import
//! and export, compaction, statistics and verification. docs/SHELL.md documents every command.

mod chart;
mod help;
mod importing;
mod layout;
mod render;
mod shell;
mod statements;
mod transfer;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use journeydb::export::Range;
use journeydb::import::FileFormat;
use journeydb::{Db, Event, Options, Stage, Sync, demo};
use render::Format;
use shell::{Flow, Session};

/// mimalloc rather than the system allocator (feature `mimalloc`, on by default): an import
/// allocates and frees large column buffers, which glibc's malloc returns to the kernel and
/// faults back in; docs/BENCHMARKS.md has the measurement.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "journeydb", version, about = "An embedded customer-journey database")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Database directory to open.
    db: Option<PathBuf>,
    /// Run these statements (and dot-commands) and exit.
    #[arg(short = 'c', long = "command")]
    query: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Open read-only (no lock; works while another process writes).
    #[arg(long)]
    read_only: bool,
    /// No charts under table results.
    #[arg(long)]
    no_chart: bool,
    /// The width tables and charts fit (default: COLUMNS, else the terminal's, else 80; 0: no
    /// limit).
    #[arg(long, value_name = "COLUMNS")]
    max_width: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FileFormatArg {
    Csv,
    Ndjson,
    Parquet,
}

impl From<FileFormatArg> for FileFormat {
    fn from(format: FileFormatArg) -> FileFormat {
        match format {
            FileFormatArg::Csv => FileFormat::Csv,
            FileFormatArg::Ndjson => FileFormat::Ndjson,
            FileFormatArg::Parquet => FileFormat::Parquet,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StatsFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create (or reuse) a database of synthetic customer journeys and show a short tour.
    Demo {
        /// Database directory (default ./demo.journeydb).
        db: Option<PathBuf>,
        /// Events to generate.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Customers (default: events / 25).
        #[arg(long, default_value_t = 0)]
        customers: u64,
        /// Random seed (same seed, same data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Import CSV or NDJSON files (optionally .gz or .zst) or Parquet files into a database (created if missing).
    ///
    /// Columns: customer, ts (ISO 8601, or integers in --ts-unit), event, optional stage; every
    /// other column is a property. A bad row stops the import of its file with file:line:column
    /// and reason, and nothing of that file is committed.
    Import(ImportArgs),
    /// Export events as CSV, NDJSON (optionally .gz or .zst) or Parquet; `-` is standard output.
    Export {
        /// Database directory.
        db: PathBuf,
        /// Output file.
        out: PathBuf,
        /// File format (default: from the file name).
        #[arg(long, value_enum)]
        format: Option<FileFormatArg>,
        /// Only events at or after this time (ISO 8601 or unix ms).
        #[arg(long)]
        from: Option<String>,
        /// Only events before this time (ISO 8601 or unix ms).
        #[arg(long)]
        to: Option<String>,
        /// Export the members of this saved cohort (a `customer` column, CSV or NDJSON)
        /// instead of events.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        cohort: Option<String>,
    },
    /// Merge all segments into one.
    Compact {
        /// Database directory.
        db: PathBuf,
    },
    /// Print storage statistics.
    Stats {
        /// Database directory.
        db: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
        format: StatsFormat,
    },
    /// Open the database (which checks the manifest, the dictionary log and the log) and check
    /// the crc32 of every segment block; exit 1 on any problem.
    Verify {
        /// Database directory.
        db: PathBuf,
    },
    /// Create a small database, append events, reopen it, print stats and two queries.
    Example {
        /// Database directory (default: a temporary directory removed afterwards).
        db: Option<PathBuf>,
    },
}

fn print_stats(db: &Db) {
    print!("{}", shell::stats_text(db));
}

fn stats_json(db: &Db) -> String {
    let s = db.stats();
    format!(
        "{{\"events\": {}, \"customers\": {}, \"segments\": {}, \"buffered_events\": {}, \"bytes_on_disk\": {}, \"bytes_per_event\": {:.4}, \"pending_erasures\": {}, \"pending_erased_events\": {}}}\n",
        s.events,
        s.customers,
        s.segments,
        s.buffered_events,
        s.bytes_on_disk,
        s.bytes_per_event,
        s.pending_erasures,
        s.pending_erased_events
    )
}

/// Opens `path` for the shell: read-write when the writer lock is free, else read-only.
/// A missing database is created only for the interactive shell (`create`): a mistyped path in a
/// one-shot query or script is an error, not an empty answer.
fn open_for_shell(path: &Path, read_only: bool, create: bool) -> journeydb::Result<(Db, bool)> {
    if read_only {
        return Ok((Db::open_read_only(path)?, true));
    }
    if create && !path.exists() {
        eprintln!(
            "note: {} did not exist; created an empty database",
            path.display()
        );
        return Ok((Db::create(path, Options::default())?, false));
    }
    match Db::open(path, Options::default()) {
        Ok(db) => Ok((db, false)),
        Err(journeydb::Error::File(journeydb::FileError::Locked { .. })) => {
            eprintln!(
                "note: another process is writing {}; opened read-only",
                path.display()
            );
            Ok((Db::open_read_only(path)?, true))
        }
        Err(journeydb::Error::File(journeydb::FileError::Io { source, .. }))
            if matches!(
                source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            eprintln!(
                "note: {} cannot be written here ({source}); opened read-only",
                path.display()
            );
            Ok((Db::open_read_only(path)?, true))
        }
        Err(e) => Err(e),
    }
}

/// Opens a database for writing, creating it when the directory holds none.
fn open_or_create(path: &Path) -> journeydb::Result<Db> {
    if path.join("CURRENT").exists() {
        Db::open(path, Options::default())
    } else {
        Db::create(path, Options::default())
    }
}

fn demo_cmd(path: &Path, events: u64, customers: u64, seed: u64) -> journeydb::Result<()> {
    if path.join("CURRENT").exists() {
        println!("Reusing {} (delete it to regenerate).", path.display());
    } else {
        println!(
            "Creating {} with about {events} synthetic events (seed {seed})…",
            path.display()
        );
    }
    let t0 = std::time::Instant::now();
    let (db, created) = demo::open_or_create(path, events, customers, seed)?;
    if created {
        let loaded = db.stats().events;
        println!("Loaded {loaded} events in {:.1} s.", t0.elapsed().as_secs_f64());
    }
    println!();
    print_stats(&db);
    let about = format!(
        "The data: synthetic customer journeys over {} days from 2026-01-01 (UTC) — visits, \
         product views, carts, purchases, repeat purchases, newsletters, support tickets, \
         reviews, referrals and surveys, each event name mapped to a lifecycle stage \
         (.stagemap lists the map). Two personas are saved as cohorts (COHORTS lists them).",
        demo::DAYS
    );
    let prose = layout::terminal_width()
        .unwrap_or(layout::DEFAULT_WIDTH)
        .min(layout::DEFAULT_WIDTH);
    println!("\n{}", layout::wrap_words(&about, prose, "", ""));
    run_tour(db, path);
    Ok(())
}

/// The demo's tour: each stop's question, statement and table rows shown (`None`: all).
const TOUR: [(&str, &str, Option<usize>); 11] = [
    (
        "How many visitors add to cart and buy within a week?",
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        None,
    ),
    (
        "Who comes back, week after week? (cohort by first visit)",
        "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 6",
        Some(8),
    ),
    (
        "Daily active customers per channel",
        "TREND uniq PERIOD day BY channel",
        Some(6),
    ),
    (
        "How customers move through the lifecycle stages",
        "TRANSITIONS",
        Some(0),
    ),
    (
        "What do visitors do next in the same session? (paths; EDGES draws the flows)",
        "PATHS AFTER visit STEPS 3 TOP 6 WITHIN SESSION",
        Some(0),
    ),
    (
        "When are customers active? (visits per weekday and hour, UTC; TZ changes the clock)",
        "HEATMAP OF visit",
        Some(0),
    ),
    (
        "Net promoter score of the post-purchase survey, by week",
        "TREND nps(score) OF survey PERIOD week",
        Some(0),
    ),
    (
        "What goes with buying? (events and property values in each visitor's week, tested)",
        "CORRELATE FUNNEL visit -> purchase WITHIN 7d",
        Some(6),
    ),
    (
        "Which channels drive the month-to-month change in buyers? (a buyer on two channels counts half on each)",
        "CHANGES uniq OF purchase PERIOD month BY channel",
        Some(0),
    ),
    (
        "Conversion by plan (customer profiles: country and plan; TIMELINE shows them)",
        "FUNNEL visit -> purchase WITHIN 7d BY customer.plan",
        Some(0),
    ),
    (
        "Personas side by side: first visit on mobile vs repeat buyers (saved cohorts; COHORTS lists them)",
        "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 6 BY COHORT mobile_first, repeat_buyers",
        Some(0),
    ),
];

/// Runs [`TOUR`] on `db`, then says how to go on.
fn run_tour(db: Db, path: &Path) {
    // A demo database made before profiles existed has none: its tour skips that stop.
    let profiled = db.snapshot().dicts().props.get("customer.plan").is_some();
    let mut session = Session::new(db, false, Format::Table);
    for (title, q, rows) in TOUR {
        if !profiled && q.contains("customer.") {
            println!(
                "\n== {title}\n(skipped: this database predates customer profiles; delete it to regenerate)"
            );
            continue;
        }
        let width = session.width().unwrap_or(usize::MAX);
        println!(
            "\n{}\n{}\n",
            layout::wrap_words(title, width, "== ", "   "),
            layout::wrap_words(&format!("{q};"), width, "> ", "  ")
        );
        session.rows_max = rows;
        session.statement(q);
    }
    let db = path.display();
    let width = session.width().unwrap_or(usize::MAX);
    let open = "Open the shell on it (statements end with `;`, .help lists the commands):";
    println!("\n{}", layout::wrap_words(open, width, "", ""));
    println!("  cargo run --release -- {db}");
    println!("or run one statement:");
    println!("  cargo run --release -- {db} -c \\");
    println!("    \"EXPLAIN FUNNEL visit -> purchase WITHIN 7d FOR CUSTOMER '42'\"");
}

fn example(path: &Path) -> journeydb::Result<()> {
    let t0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z in µs
    let hour: i64 = 3_600_000_000;
    {
        let db = Db::create(
            path,
            Options::default().sync(Sync::Group(std::time::Duration::from_millis(1))),
        )?;
        for c in 0..1000i64 {
            let who = format!("customer-{c}");
            let mut batch = db.batch();
            batch.append(
                Event::new(&who, t0 + c * hour, "visit")
                    .with_stage(Stage::Awareness)
                    .with_prop("channel", "web"),
            );
            if c % 2 == 0 {
                batch.append(
                    Event::new(&who, t0 + c * hour + 60_000_000, "add_to_cart")
                        .with_stage(Stage::Consideration),
                );
            }
            if c % 4 == 0 {
                batch.append(
                    Event::new(&who, t0 + c * hour + 120_000_000, "purchase")
                        .with_stage(Stage::Purchase)
                        .with_prop("amount", 10.0 + (c % 50) as f64),
                );
            }
            batch.commit()?;
        }
        db.flush()?;
    }
    let db = Db::open(path, Options::default())?;
    print_stats(&db);
    let mut session = Session::new(db, false, Format::Table);
    for q in [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "TREND uniq OF STAGE purchase PERIOD week",
    ] {
        println!("\n> {q}");
        session.statement(q);
    }
    Ok(())
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            shell::report(&e);
            ExitCode::FAILURE
        }
    }
}

fn shell_main(cli: Cli) -> ExitCode {
    let Some(path) = cli.db else {
        eprintln!("usage: journeydb DB [-c STATEMENTS] | journeydb demo | journeydb --help");
        return ExitCode::from(2);
    };
    let interactive = cli.query.is_none() && std::io::stdin().is_terminal();
    let (db, read_only) = match open_for_shell(&path, cli.read_only, interactive) {
        Ok(x) => x,
        Err(e) => {
            shell::report(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    shell::install_ctrl_c();
    let mut session = Session::new(db, read_only, cli.format);
    if cli.no_chart {
        session.chart = false;
    }
    if let Some(width) = cli.max_width {
        session.width_setting = Some((width > 0).then_some(width.max(layout::MIN_WIDTH)));
    }
    let script = match cli.query {
        Some(q) => q,
        None if interactive => return exit(session.interactive()),
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                shell::report(&format!("reading standard input: {e}"));
                return ExitCode::FAILURE;
            }
            s
        }
    };
    // One-shot and piped runs print no charts unless the output is a terminal.
    if !std::io::stdout().is_terminal() {
        session.chart = false;
    }
    match session.script(&script, None) {
        Ok(Flow::Continue | Flow::Quit) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// The arguments of `journeydb import`.
#[derive(clap::Args)]
struct ImportArgs {
    /// Database directory (with --check, optional: the files are checked against its
    /// property types when given).
    db: PathBuf,
    /// Files to import, in order.
    #[arg(required_unless_present = "check")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    flags: importing::ImportFlags,
}

/// `journeydb import`: the files into the database (created when missing; removed again when
/// this command created it and imported nothing). With `--check`, only reads and checks them.
fn import_cmd(args: ImportArgs, stdout: &mut std::io::Stdout) -> Result<(), String> {
    let ImportArgs { db, mut files, flags } = args;
    let (opts, overrides) = flags.options()?;
    if flags.check {
        // `journeydb import --check FILE…`: the first path is a file, not a database.
        let db = if db.is_file() {
            files.insert(0, db);
            None
        } else {
            Some(db).filter(|d| d.join("CURRENT").exists())
        };
        for f in &files {
            if !f.is_file() {
                return Err(format!("{}: no such file", f.display()));
            }
        }
        let handle = db
            .map(|d| Db::open_read_only(&d).map_err(|e| e.to_string()))
            .transpose()?;
        if flags.profiles || flags.links {
            return Err(
                "--check reads event files; check a profile or link file by importing it into a scratch database"
                    .into(),
            );
        }
        return importing::check(handle.as_ref(), &files, &opts, &overrides, stdout);
    }
    for f in &files {
        if !f.is_file() {
            return Err(format!("{}: no such file", f.display()));
        }
    }
    let created = !db.join("CURRENT").exists();
    let handle = open_or_create(&db).map_err(|e| e.to_string())?;
    let result = if flags.links {
        transfer::import_links(&handle, &files, stdout).map(|_| ())
    } else if flags.profiles {
        transfer::import_profiles(&handle, &files, &opts, &overrides, stdout).map(|_| ())
    } else {
        transfer::import(&handle, &files, &opts, &overrides, stdout).map(|_| ())
    };
    // A database this command created and filled with nothing is removed again.
    if created && result.is_err() && handle.stats().customers == 0 {
        drop(handle);
        let _ = std::fs::remove_dir_all(&db);
    }
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return shell_main(cli);
    };
    let mut stdout = std::io::stdout();
    let result: Result<(), String> = match command {
        Command::Demo {
            db,
            events,
            customers,
            seed,
        } => demo_cmd(
            &db.unwrap_or_else(|| PathBuf::from("demo.journeydb")),
            events,
            customers,
            seed,
        )
        .map_err(|e| e.to_string()),
        Command::Import(args) => import_cmd(args, &mut stdout),
        Command::Export {
            db,
            out,
            format,
            from,
            to,
            cohort,
        } => (|| {
            let range = Range {
                from: from.as_deref().map(transfer::parse_time).transpose()?,
                to: to.as_deref().map(transfer::parse_time).transpose()?,
            };
            let db = Db::open_read_only(&db).map_err(|e| e.to_string())?;
            let mut msg: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
                Box::new(std::io::sink())
            } else {
                Box::new(std::io::stderr())
            };
            match cohort {
                Some(name) => transfer::export_cohort(&db, &out, format.map(Into::into), &name, &mut msg),
                None => transfer::export(&db, &out, format.map(Into::into), range, &mut msg),
            }
            .map(|_| ())
        })(),
        Command::Compact { db } => (|| {
            let db = Db::open(&db, Options::default()).map_err(|e| e.to_string())?;
            let before = db.stats();
            let n = db.compact().map_err(|e| e.to_string())?;
            let after = db.stats();
            println!(
                "compacted {n} segments: {} → {} segments, {} → {} bytes",
                before.segments, after.segments, before.bytes_on_disk, after.bytes_on_disk
            );
            Ok(())
        })(),
        Command::Stats { db, format } => Db::open_read_only(&db)
            .map(|db| match format {
                StatsFormat::Table => print_stats(&db),
                StatsFormat::Json => print!("{}", stats_json(&db)),
            })
            .map_err(|e| e.to_string()),
        Command::Verify { db } => (|| {
            let db = Db::open_read_only(&db).map_err(|e| format!("open failed: {e}"))?;
            let n = db.verify().map_err(|e| format!("verify failed: {e}"))?;
            let s = db.stats();
            println!(
                "ok: {} segments, {n} sealed events; manifest, dictionary log, log, every segment block checksum and every dictionary reference verified",
                s.segments
            );
            Ok(())
        })(),
        Command::Example { db: Some(path) } => example(&path).map_err(|e| e.to_string()),
        Command::Example { db: None } => {
            let dir = std::env::temp_dir().join(format!("journeydb-example-{}", std::process::id()));
            let r = example(&dir).map_err(|e| e.to_string());
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
    };
    exit(result)
}
