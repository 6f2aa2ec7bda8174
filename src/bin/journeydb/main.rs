//! The `journeydb` command: demo data, one-shot queries and scripts, stats. The interactive shell
//! (line editing, history, dot-commands, charts) is being built (issue 5).

mod render;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use journeydb::{Db, Event, Options, Query, QueryError, Stage, Sync, demo};
use render::Format;

#[derive(Parser)]
#[command(name = "journeydb", version, about = "An embedded customer-journey database")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Database directory to query.
    db: Option<PathBuf>,
    /// Run this statement and exit (otherwise statements are read from standard input).
    #[arg(short = 'c', long = "command")]
    query: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
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
    /// Print storage statistics.
    Stats {
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
    let s = db.stats();
    println!("events          {}", s.events);
    println!("customers       {}", s.customers);
    println!("segments        {}", s.segments);
    println!("buffered events {}", s.buffered_events);
    println!("bytes on disk   {}", s.bytes_on_disk);
    println!("bytes/event     {:.2}", s.bytes_per_event);
}

/// Runs one statement; prints the result or the rendered error. Returns false on error.
fn run_one(db: &Db, q: &str, format: Format, rows_max: Option<usize>) -> bool {
    match db.snapshot().query(q) {
        Ok(mut t) => {
            let total = t.rows.len();
            if let Some(m) = rows_max {
                t.rows.truncate(m);
            }
            print!("{}", render::render(&t, format));
            if t.rows.len() < total {
                println!("… {} more rows", total - t.rows.len());
            }
            true
        }
        Err(QueryError::Parse(e)) => {
            eprintln!("{}", e.render(q));
            false
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// Splits a script into statements at `;` outside quotes; `--` comments run to the line end.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn demo_cmd(path: &Path, events: u64, customers: u64, seed: u64) -> journeydb::Result<()> {
    let db = if path.join("CURRENT").exists() {
        println!("Reusing {} (delete it to regenerate).", path.display());
        Db::open(path, Options::default())?
    } else {
        println!(
            "Creating {} with about {events} synthetic events (seed {seed})…",
            path.display()
        );
        let t0 = std::time::Instant::now();
        let db = Db::create(path, Options::default().sync(Sync::Never))?;
        for (name, stage) in demo::EVENTS {
            db.set_stage(name, Some(stage))?;
        }
        let rows = demo::generate(events, customers, seed);
        for chunk in rows.chunks(50_000) {
            db.commit(&chunk.iter().map(demo::Row::to_event).collect::<Vec<_>>())?;
        }
        db.flush()?;
        db.compact()?;
        println!(
            "Loaded {} events in {:.1} s.",
            rows.len(),
            t0.elapsed().as_secs_f64()
        );
        db
    };
    println!();
    print_stats(&db);
    let tour = [
        (
            "How many visitors add to cart and buy within a week?",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
            None,
        ),
        (
            "Who comes back, week after week?",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 4",
            Some(10),
        ),
        (
            "Weekly active customers per channel",
            "TREND uniq PERIOD week BY channel",
            Some(9),
        ),
        (
            "Where customers stand in the journey (from bitmaps)",
            "STAGES PERIOD month",
            None,
        ),
    ];
    for (title, q, rows) in tour {
        println!("\n{title}\n> {q}");
        run_one(&db, q, Format::Table, rows);
    }
    println!(
        "\nQuery it yourself, e.g.:\n  journeydb {} -c \"TRANSITIONS\"",
        path.display()
    );
    println!(
        "  journeydb {} -c \"EXPLAIN FUNNEL visit -> purchase WITHIN 7d FOR CUSTOMER '42'\"",
        path.display()
    );
    Ok(())
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
    for q in [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "TREND uniq OF STAGE purchase PERIOD week",
    ] {
        println!("\n> {q}");
        run_one(&db, q, Format::Table, None);
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Demo {
            db,
            events,
            customers,
            seed,
        }) => demo_cmd(
            &db.unwrap_or_else(|| PathBuf::from("demo.journeydb")),
            events,
            customers,
            seed,
        ),
        Some(Command::Stats { db }) => Db::open_read_only(&db).map(|db| print_stats(&db)),
        Some(Command::Example { db: Some(path) }) => example(&path),
        Some(Command::Example { db: None }) => {
            let dir = std::env::temp_dir().join(format!("journeydb-example-{}", std::process::id()));
            let r = example(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
        None => {
            let Some(path) = cli.db else {
                eprintln!("usage: journeydb DB [-c STATEMENT] | journeydb demo | journeydb --help");
                return ExitCode::from(2);
            };
            let db = match Db::open_read_only(&path) {
                Ok(db) => db,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let script = match cli.query {
                Some(q) => q,
                None if std::io::stdin().is_terminal() => {
                    eprintln!(
                        "The interactive shell is not built yet: use -c \"STATEMENT\" or pipe statements on stdin."
                    );
                    return ExitCode::from(2);
                }
                None => {
                    let mut s = String::new();
                    if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                        eprintln!("error: reading standard input: {e}");
                        return ExitCode::FAILURE;
                    }
                    s
                }
            };
            let ok = statements(&script)
                .iter()
                .all(|q| run_one(&db, q, cli.format, None));
            return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
