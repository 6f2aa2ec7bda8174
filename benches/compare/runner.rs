//! journeydb's side of the peer comparison (`benches/compare/`): generates the dataset, loads it,
//! and times the canonical queries in-process, printing JSON for `compare.py`.
//!
//! ```text
//! compare_runner gen   EVENTS OUT_DIR          # demo data -> OUT_DIR/events.parquet, events.csv
//! compare_runner load  DB FILE                 # import FILE into a new DB, flush, compact
//! compare_runner query DB REPS CUSTOMER        # Q1..Q8: one warm-up, REPS timed runs each
//! compare_runner serve DB CUSTOMER              # one timed run per query id read on stdin
//! compare_runner canonical EVENTS SHAPE DIR    # issue 27's statements on one data shape
//! compare_runner cdnow SAMPLE DIR              # issue 29's FIT and PREDICT on the CDNOW sample
//! ```
//!
//! `gen`, `load` and `query` print one JSON object on stdout; `serve` answers each line of stdin
//! (a query id, `Q1`..`Q8`) with one line of JSON, so that `compare.py` can interleave
//! journeydb's runs with the peers' (every engine then meets the same moments of this shared
//! machine). Errors go to stderr with exit status 1.

#![allow(clippy::print_stdout)] // a measurement program: its output is the point

use std::path::{Path, PathBuf};
use std::time::Instant;

use journeydb::export::{self, Range};
use journeydb::import::{FileFormat, ImportOptions};
use journeydb::{Cell, Db, Options, Query, QueryOptions, Sync, demo};
use serde_json::{Value as J, json};

/// The allocator of the `journeydb` shell (feature `mimalloc`, on by default), so that the
/// runner measures what `journeydb import` does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events per commit while loading (as `journeydb import` does).
const CHUNK: usize = 100_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["gen", events, dir] => parse(events).and_then(|n| generate(n, Path::new(dir))),
        ["load", db, file] => load(Path::new(db), Path::new(file)),
        ["query", db, reps, customer] => {
            parse(reps).and_then(|r| queries(Path::new(db), r as usize, customer))
        }
        ["serve", db, customer] => serve(Path::new(db), customer).map(|()| J::Null),
        ["canonical", events, shape, dir] => {
            parse(events).and_then(|n| canonical(n, shape, Path::new(dir)))
        }
        ["cdnow", sample, dir] => cdnow(Path::new(sample), Path::new(dir)),
        _ => Err(
            "usage: compare_runner gen EVENTS DIR | load DB FILE | query DB REPS CUSTOMER | serve DB CUSTOMER | canonical EVENTS SHAPE DIR | cdnow SAMPLE DIR"
                .into(),
        ),
    };
    match out {
        Ok(J::Null) => {}
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("compare_runner: {e}");
            std::process::exit(1);
        }
    }
}

fn parse(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The demo dataset of about `events` events, exported as Parquet and CSV (the files every
/// engine loads). The database used to write them is removed again.
fn generate(events: u64, dir: &Path) -> Result<J, String> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join("gen.journeydb");
    let _ = std::fs::remove_dir_all(&tmp);
    let db = Db::create(&tmp, Options::default().sync(Sync::Never)).map_err(err)?;
    db.set_stages(&demo::EVENTS.map(|(name, stage)| (name, Some(stage))))
        .map_err(err)?;
    for chunk in demo::generate(events, 0, 42).chunks(CHUNK) {
        db.commit(&chunk.iter().map(demo::Row::to_event).collect::<Vec<_>>())
            .map_err(err)?;
    }
    db.flush().map_err(err)?;
    let snap = db.snapshot();
    let mut written = 0;
    for (name, format) in [
        ("events.parquet", FileFormat::Parquet),
        ("events.csv", FileFormat::Csv),
    ] {
        let path = dir.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(err)?);
        written = export::write(&snap, format, Range::default(), &mut f).map_err(err)?;
        std::io::Write::flush(&mut f).map_err(err)?;
    }
    drop(snap);
    drop(db);
    std::fs::remove_dir_all(&tmp).map_err(err)?;
    Ok(json!({ "events": written }))
}

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Loads `file` into a new database the way `journeydb import` + `journeydb compact` do: the
/// file imported by `Db::import_file` (a Parquet file in customer order streamed part by part
/// into one sealed segment, any other read whole and sorted first; fsynced, published by one
/// manifest switch); flush and compaction have nothing left to do. The time covers all of it.
/// With `JOURNEYDB_WHOLE=1` the file is read whole first even when it could stream.
fn load(db_dir: &Path, file: &Path) -> Result<J, String> {
    let _ = std::fs::remove_dir_all(db_dir);
    let opts = ImportOptions {
        part_rows: std::env::var_os("JOURNEYDB_WHOLE").map(|_| 0).or_else(|| {
            std::env::var("JOURNEYDB_PART_ROWS")
                .ok()
                .and_then(|v| v.parse().ok())
        }),
        run_rows: std::env::var("JOURNEYDB_RUN_ROWS")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..ImportOptions::default()
    };
    let t0 = Instant::now();
    let db = Db::create(db_dir, Options::default()).map_err(err)?;
    db.set_stages(&demo::EVENTS.map(|(name, stage)| (name, Some(stage))))
        .map_err(err)?;
    let create_s = t0.elapsed().as_secs_f64();
    let done = db.import_file(file, &opts, &mut |_, _| {}).map_err(err)?;
    let import_s = t0.elapsed().as_secs_f64();
    db.flush().map_err(err)?;
    db.compact().map_err(err)?;
    let secs = t0.elapsed().as_secs_f64();
    drop(db);
    Ok(json!({
        "events": done.events,
        "streamed": done.streamed,
        "seconds": secs,
        "create_seconds": create_s,
        "import_seconds": import_s,
        "bytes": dir_bytes(db_dir),
    }))
}

/// The canonical queries in journeydb's spelling (docs/BENCHMARKS.md, "Side by side").
fn statements(customer: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Q1",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT".into(),
        ),
        (
            "Q2",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME".into(),
        ),
        ("Q3", "TREND uniq PERIOD day BY channel".into()),
        ("Q4", "TREND sum(amount) OF STAGE retention PERIOD day".into()),
        (
            "Q5",
            format!("TIMELINE '{customer}' FROM '2026-02-01' TO '2026-03-03'"),
        ),
        ("Q6", "LIFECYCLE OF visit OR purchase PERIOD week".into()),
        ("Q7", "STICKINESS OF visit PERIOD day".into()),
        ("Q8", "TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 10".into()),
    ]
}

fn cell(c: &Cell) -> J {
    match c {
        Cell::Null => J::Null,
        Cell::Int(n) => json!(n),
        Cell::Float(x) | Cell::Rate(x) => json!(x),
        Cell::Str(s) => json!(s),
        Cell::Bool(b) => json!(b),
        Cell::Time(us) => json!(journeydb::internals::model::format_ts(*us)),
    }
}

/// A result table's rows as JSON arrays of cells.
fn rows_json(table: &journeydb::Table) -> J {
    table
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect::<Vec<_>>())
        .collect()
}

/// Reads query ids (`Q1`..`Q8`) from stdin, one per line, and answers each with one JSON line:
/// the id, the in-process time of one run (ms) and its result. Ends at the end of stdin.
fn serve(db_dir: &Path, customer: &str) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let db = Db::open_read_only(db_dir).map_err(err)?;
    let snap = db.snapshot();
    let opts = QueryOptions::default();
    let texts = statements(customer);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(err)?;
        let id = line.trim();
        let Some((_, text)) = texts.iter().find(|(q, _)| *q == id) else {
            return Err(format!("unknown query id {id:?}"));
        };
        let t0 = Instant::now();
        let table = snap.query_with(text, &opts).map_err(|e| format!("{id}: {e}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let answer = json!({
            "id": id,
            "ms": ms,
            "columns": table.columns,
            "rows": rows_json(&table),
        });
        writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .map_err(err)?;
    }
    Ok(())
}

/// Runs each canonical query once to warm up, then `reps` times; reports every time, the
/// median, and the result of the last run.
fn queries(db_dir: &Path, reps: usize, customer: &str) -> Result<J, String> {
    let db = Db::open_read_only(db_dir).map_err(err)?;
    let snap = db.snapshot();
    let opts = QueryOptions::default();
    let mut out = Vec::new();
    // JOURNEYDB_COMPARE_ONLY=Q3 runs one query (for profiling).
    let only = std::env::var("JOURNEYDB_COMPARE_ONLY").ok();
    for (id, text) in statements(customer) {
        if only.as_deref().is_some_and(|o| o != id) {
            continue;
        }
        let mut table = snap.query_with(&text, &opts).map_err(|e| format!("{id}: {e}"))?;
        let mut times = Vec::new();
        for _ in 0..reps.max(1) {
            let t0 = Instant::now();
            table = snap.query_with(&text, &opts).map_err(|e| format!("{id}: {e}"))?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        out.push(json!({
            "id": id,
            "text": text,
            "times_ms": times,
            "median_ms": median,
            "columns": table.columns,
            "rows": rows_json(&table),
        }));
    }
    Ok(json!({ "queries": out }))
}

/// Issue 27's canonical statements, verbatim, then the members of the two cohorts they create;
/// then issue 28's PATHS and ATTRIBUTION statements, and issue 29's CORRELATE and CHANGES.
const CANONICAL: [&str; 19] = [
    "CREATE COHORT repeat_buyers AS DID purchase AT LEAST 2 TIMES",
    "CREATE COHORT mobile_first AS FIRST visit WHERE channel = 'mobile'",
    "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d BY COHORT mobile_first, repeat_buyers",
    "RETENTION purchase RETURN purchase PERIOD month PERIODS 12 FIRST_TIME WHERE CUSTOMER IN repeat_buyers",
    "TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 10",
    "TREND uniq PERIOD week BY channel, customer.country",
    "FUNNEL visit -> purchase WITHIN 7d PERIOD week",
    "RFM OF purchase VALUE amount",
    "CUSTOMERS IN COHORT repeat_buyers LIMIT 100000000",
    "CUSTOMERS IN COHORT mobile_first LIMIT 100000000",
    "PATHS AFTER visit STEPS 3 TOP 10",
    "PATHS BEFORE purchase STEPS 2 TOP 10 COLLAPSE REPEATS",
    "ATTRIBUTION purchase VALUE amount BY channel MODEL last LOOKBACK 30d",
    "ATTRIBUTION purchase VALUE amount BY channel MODEL linear LOOKBACK 30d",
    "TREND sessions PERIOD day",
    "HEATMAP OF visit",
    "TREND nps(score) OF survey PERIOD month",
    "CORRELATE FUNNEL visit -> purchase WITHIN 7d SIGNIFICANCE 1",
    "CHANGES uniq OF purchase PERIOD month BY channel",
];

/// The demo data (with profiles) in one of two shapes — `demo`: committed by customer and
/// compacted into one segment; `time`: as real logs arrive, timestamps cut to ten minutes (many
/// of a customer's events tie), committed in time order in batches, sealed into several segments
/// and the last rows left unflushed — loaded into a database in `DIR`, written out for the peers
/// (`events.parquet`, and every profile write in commit order as `profiles.csv`), and the
/// canonical statements' answers as JSON (`benches/compare/canonical.py` checks them).
fn canonical(events: u64, shape: &str, dir: &Path) -> Result<J, String> {
    let time_ordered = match shape {
        "demo" => false,
        "time" => true,
        other => return Err(format!("unknown shape {other:?} (demo or time)")),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let path = dir.join("db.journeydb");
    let _ = std::fs::remove_dir_all(&path);
    let buffer = if time_ordered {
        (events as usize / 5).max(1)
    } else {
        4 << 20
    };
    let db = Db::create(
        &path,
        Options::default().sync(Sync::Never).buffer_events_max(buffer),
    )
    .map_err(err)?;
    db.set_stages(&demo::EVENTS.map(|(name, stage)| (name, Some(stage))))
        .map_err(err)?;
    let mut rows = demo::demo_rows(events, 0, 42);
    if time_ordered {
        // Ten-minute resolution: about a fifth of the events tie with another of their
        // customer's (whole seconds would give the demo data no ties at all).
        for r in &mut rows {
            r.ts_us -= r.ts_us.rem_euclid(600_000_000);
        }
        rows.sort_by_key(|r| r.ts_us);
    }
    for chunk in rows.chunks(10_000) {
        db.commit(&chunk.iter().map(demo::Row::to_event).collect::<Vec<_>>())
            .map_err(err)?;
    }
    let profiles = demo::profiles(&rows, 42);
    for chunk in profiles.chunks(10_000) {
        db.commit_with_profiles(&[], chunk).map_err(err)?;
    }
    if !time_ordered {
        db.flush().map_err(err)?;
        db.compact().map_err(err)?;
    }
    write_profiles(&profiles, &dir.join("profiles.csv"))?;
    let snap = db.snapshot();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("events.parquet")).map_err(err)?);
    let written = export::write(&snap, FileFormat::Parquet, Range::default(), &mut f).map_err(err)?;
    std::io::Write::flush(&mut f).map_err(err)?;
    drop(snap);
    let mut answers = Vec::new();
    for text in CANONICAL {
        let table = db.query(text).map_err(|e| format!("{text}: {e}"))?;
        answers.push(json!({ "text": text, "columns": table.columns, "rows": rows_json(&table) }));
    }
    Ok(json!({ "events": written, "segments": db.stats().segments, "answers": answers }))
}

/// Issue 29's canonical FIT and PREDICT statements, verbatim, and the per-customer PREDICT
/// they summarise.
const CDNOW: [&str; 3] = [
    "FIT purchase VALUE amount UNIT week FROM '1997-01-01' TO '1997-10-01'",
    "PREDICT purchase VALUE amount UNIT week FROM '1997-01-01' TO '1997-10-01' HORIZON 39 SUMMARY",
    "PREDICT purchase VALUE amount UNIT week FROM '1997-01-01' TO '1997-10-01' HORIZON 39 LIMIT 100000",
];

/// The CDNOW sample (`CDNOW_sample.txt`: id, customer number, YYYYMMDD, CDs, dollars) as
/// `purchase` events with an `amount`, committed in two batches (two segments) and a third left
/// unflushed; written out for the peers (`events.parquet`) with the answers of [`CDNOW`].
fn cdnow(sample: &Path, dir: &Path) -> Result<J, String> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let path = dir.join("db.journeydb");
    let _ = std::fs::remove_dir_all(&path);
    let db = Db::create(&path, Options::default().sync(Sync::Never)).map_err(err)?;
    let text = std::fs::read_to_string(sample).map_err(err)?;
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, customer, date, _, dollars] = fields[..] else {
            return Err(format!("{}: not a CDNOW line: {line}", sample.display()));
        };
        let day = |range: std::ops::Range<usize>| date.get(range).and_then(|d| d.parse::<i16>().ok());
        let (Some(year), Some(month), Some(day)) = (day(0..4), day(4..6), day(6..8)) else {
            return Err(format!("{}: not a YYYYMMDD date: {date}", sample.display()));
        };
        let since = jiff::civil::date(year, month as i8, day as i8).since(jiff::civil::date(1970, 1, 1));
        let ts = i64::from(since.map_err(err)?.get_days()) * 86_400_000_000;
        let amount: f64 = dollars.parse().map_err(err)?;
        events.push(journeydb::Event::new(customer, ts, "purchase").with_prop("amount", amount));
    }
    for (part, chunk) in events.chunks(events.len().div_ceil(3)).enumerate() {
        db.commit(chunk).map_err(err)?;
        if part < 2 {
            db.flush().map_err(err)?;
        }
    }
    let snap = db.snapshot();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("events.parquet")).map_err(err)?);
    let written = export::write(&snap, FileFormat::Parquet, Range::default(), &mut f).map_err(err)?;
    std::io::Write::flush(&mut f).map_err(err)?;
    let mut answers = Vec::new();
    for text in CDNOW {
        let table = db.query(text).map_err(|e| format!("{text}: {e}"))?;
        answers.push(json!({ "text": text, "columns": table.columns, "rows": rows_json(&table) }));
    }
    Ok(json!({ "events": written, "answers": answers }))
}

/// Every profile write, in commit order: `seq, customer, ts_us, country, plan` (empty: not set).
fn write_profiles(profiles: &[journeydb::ProfileUpdate], path: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    writeln!(f, "seq,customer,ts_us,country,plan").map_err(err)?;
    for (seq, p) in profiles.iter().enumerate() {
        let value = |name: &str| {
            p.props
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_ref())
                .map_or(String::new(), |v| match v {
                    journeydb::Value::Str(s) => s.clone(),
                    other => format!("{other:?}"),
                })
        };
        writeln!(
            f,
            "{seq},{},{},{},{}",
            p.customer,
            p.ts_us,
            value("country"),
            value("plan")
        )
        .map_err(err)?;
    }
    f.flush().map_err(err)
}
