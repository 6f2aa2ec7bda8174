//! Timestamps are never silently wrong (issue 31): real exports' forms (epoch seconds,
//! milliseconds, microseconds, nanoseconds, CDNOW's `YYYYMMDD`, a Mixpanel-style and a
//! PostHog-style export, day-first text) read right, the inferred unit is said, mixed units and
//! values too close to 1970 are refused at their line, implausible dates are warned about, and
//! `--check` writes nothing. Through the binary (as a user runs it) and the library.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
#![allow(dead_code)] // the shared helpers have more than this file uses

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use journeydb::time::{Inferred, TsUnit};
use journeydb::{Db, Options};

mod common;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_journeydb"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timestamps")
        .join(name)
}

/// Imports `file` (with `args`) into a new database under `dir`; the output and the database.
fn import(dir: &Path, file: &str, args: &[&str]) -> (Output, PathBuf) {
    let db = dir.join(file.replace('.', "_"));
    let path = fixture(file);
    let mut all = vec!["import", db.to_str().unwrap(), path.to_str().unwrap()];
    all.extend_from_slice(args);
    (run(&all), db)
}

fn export(db: &Path) -> String {
    let out = run(&["export", db.to_str().unwrap(), "-", "--format", "ndjson"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn success(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn every_unit_reads_the_same_instants_and_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut exports = Vec::new();
    for (file, unit) in [
        ("seconds.csv", "seconds"),
        ("millis.csv", "milliseconds"),
        ("micros.csv", "microseconds"),
        ("nanos.csv", "nanoseconds"),
    ] {
        let (out, db) = import(dir.path(), file, &[]);
        let stdout = success(&out);
        assert!(
            stdout.contains(&format!(
                "integers read as {unit} since the Unix epoch, inferred from their magnitude"
            )),
            "{file}: {stdout}"
        );
        assert!(
            stdout.contains("timestamps 2024-03-13T10:21:14.000Z … 2024-03-14T10:21:14.000Z"),
            "{file}: {stdout}"
        );
        assert!(!text(&out.stderr).contains("warning"), "{}", text(&out.stderr));
        exports.push(export(&db));
    }
    assert!(
        exports[0].contains("\"ts\":\"2024-03-13T10:21:40.000Z\""),
        "{}",
        exports[0]
    );
    assert!(exports.iter().all(|e| *e == exports[0]), "{exports:#?}");
}

#[test]
fn cdnow_dates_with_one_event_name() {
    let dir = tempfile::tempdir().unwrap();
    // No event column: the error says how to give one.
    let (out, db) = import(dir.path(), "cdnow.csv", &["--ts-col", "date"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--event NAME"),
        "{}",
        text(&out.stderr)
    );
    assert!(!db.exists(), "a database the failed import created is removed");
    let (out, db) = import(
        dir.path(),
        "cdnow.csv",
        &["--ts-col", "date", "--event", "purchase"],
    );
    let stdout = success(&out);
    assert!(stdout.contains("imported 6 events"), "{stdout}");
    assert!(stdout.contains("integers read as YYYYMMDD dates"), "{stdout}");
    assert!(
        stdout.contains("timestamps 1997-01-01T00:00:00.000Z … 1997-04-02T00:00:00.000Z"),
        "{stdout}"
    );
    let exported = export(&db);
    assert!(
        exported.starts_with(
            "{\"customer\":\"1\",\"ts\":\"1997-01-01T00:00:00.000Z\",\"event\":\"purchase\",\"quantity\":1,\"amount\":11.77}\n"
        ),
        "{exported}"
    );
    // Customer 3 bought on three days in 1997: a question CDNOW's users ask.
    let out = run(&[
        db.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "TOP CUSTOMERS BY days_active OF purchase LIMIT 1",
    ]);
    assert_eq!(success(&out), "rank,customer,value\n1,3,3\n");
}

#[test]
fn mixpanel_and_posthog_style_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (out, db) = import(dir.path(), "mixpanel.ndjson", &[]);
    let stdout = success(&out);
    assert!(
        stdout.contains("seconds since the Unix epoch, inferred"),
        "{stdout}"
    );
    let exported = export(&db);
    assert!(
        exported.contains(
            "{\"customer\":\"8f3a\",\"ts\":\"2024-03-13T10:21:14.000Z\",\"event\":\"Viewed Page\",\"$browser\":\"Chrome\",\"$city\":\"Berlin\",\"mp_country_code\":\"DE\"}"
        ),
        "{exported}"
    );
    assert!(
        exported.contains("\"ts\":\"2024-03-14T10:21:14.000Z\",\"event\":\"Purchased\""),
        "{exported}"
    );

    let (out, db) = import(dir.path(), "posthog.csv", &[]);
    let stdout = success(&out);
    assert!(
        stdout.contains("timestamps 2024-03-13T10:21:14.123Z … 2024-03-13T10:22:00.500Z; ISO 8601"),
        "{stdout}"
    );
    let exported = export(&db);
    assert!(
        exported.contains("{\"customer\":\"alice@example.com\",\"ts\":\"2024-03-13T10:22:00.500Z\",\"event\":\"purchase\",\"$current_url\":\"https://shop.example/checkout\"}"),
        "{exported}"
    );
    assert!(
        exported.contains("\"$anon_distinct_id\":\"0190a1b2-anon\""),
        "{exported}"
    );
}

#[test]
fn mixed_units_and_values_near_1970_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let (out, db) = import(dir.path(), "mixed_units.csv", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mixed_units.csv:4:2: column `ts`"), "{stderr}");
    assert!(
        stderr.contains("1710325300000") && stderr.contains("(1710325274)"),
        "{stderr}"
    );
    assert!(!db.exists());
    let (out, _) = import(dir.path(), "near_1970.csv", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("near_1970.csv:2:2") && stderr.contains("too close to 1970"),
        "{stderr}"
    );
    assert!(stderr.contains("--ts-unit"), "{stderr}");
    // Said explicitly, they import, with a warning that the dates look wrong.
    let (out, db) = import(dir.path(), "near_1970.csv", &["--ts-unit", "s"]);
    let stdout = success(&out);
    assert!(
        stdout.contains("integers read as seconds (--ts-unit)"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("2 of 2 events are dated before 1990"),
        "{stderr}"
    );
    assert!(export(&db).contains("\"ts\":\"1970-01-01T01:00:00.000Z\""));
}

#[test]
fn dates_far_ahead_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ahead.csv");
    let tomorrow_and_a_bit = journeydb::time::now() / 1_000_000 + 86_400 + 600;
    std::fs::write(
        &file,
        format!("customer,ts,event\nu1,1710325274,visit\nu1,{tomorrow_and_a_bit},visit\n"),
    )
    .unwrap();
    let db = dir.path().join("db");
    let out = run(&["import", db.to_str().unwrap(), file.to_str().unwrap()]);
    success(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 of 2 events are dated more than a day after this machine's clock"),
        "{stderr}"
    );
    assert!(!stderr.contains("before 1990"), "{stderr}");
}

#[test]
fn patterns_read_day_first_text() {
    let dir = tempfile::tempdir().unwrap();
    let (out, db) = import(
        dir.path(),
        "day_first.csv",
        &["--ts-col", "when", "--ts-format", "%d/%m/%Y %H:%M"],
    );
    let stdout = success(&out);
    assert!(
        stdout.contains("read with --ts-format \"%d/%m/%Y %H:%M\""),
        "{stdout}"
    );
    let exported = export(&db);
    assert!(
        exported.contains("\"ts\":\"2024-03-13T10:21:00.000Z\",\"event\":\"visit\""),
        "{exported}"
    );
    assert!(
        exported.contains("\"ts\":\"2024-03-14T09:05:00.000Z\",\"event\":\"purchase\""),
        "{exported}"
    );
    // A pattern the text does not match: the line, the column and the pattern.
    let (out, _) = import(
        dir.path(),
        "day_first.csv",
        &["--ts-col", "when", "--ts-format", "%Y-%m-%d"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("day_first.csv:2:2: column `when`") && stderr.contains("%Y-%m-%d"),
        "{stderr}"
    );
    // Unit and pattern together are refused before anything is read.
    let (out, _) = import(
        dir.path(),
        "day_first.csv",
        &["--ts-unit", "s", "--ts-format", "%s"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_reads_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("mixpanel.ndjson");
    let out = run(&["import", "--check", file.to_str().unwrap()]);
    let stdout = success(&out);
    for want in [
        "mixpanel.ndjson: 4 rows would be imported (0 bad rows skipped); nothing was written (--check)",
        "customers  2",
        "events     3 names: Viewed Page, Signed Up, Purchased",
        "properties $browser string, $city string, mp_country_code string, amount f64",
        "timestamps 2024-03-13T10:21:14.000Z … 2024-03-14T10:21:14.000Z; integers read as seconds",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    // Against a database: its types apply, and it is left as it was.
    let db = dir.path().join("db");
    let seconds = fixture("seconds.csv");
    success(&run(&["import", db.to_str().unwrap(), seconds.to_str().unwrap()]));
    let before = export(&db);
    let out = run(&[
        "import",
        db.to_str().unwrap(),
        file.to_str().unwrap(),
        "--check",
        "--type",
        "amount=int",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("mixpanel.ndjson:4:"),
        "{}",
        text(&out.stderr)
    );
    success(&run(&[
        "import",
        db.to_str().unwrap(),
        file.to_str().unwrap(),
        "--check",
    ]));
    assert_eq!(export(&db), before);
    // A bad file fails --check at its line.
    let bad = fixture("mixed_units.csv");
    let out = run(&["import", "--check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("mixed_units.csv:4:2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_shell_import_takes_the_commands_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    success(&run(&[
        "import",
        db.to_str().unwrap(),
        fixture("seconds.csv").to_str().unwrap(),
    ]));
    let cdnow = fixture("cdnow.csv");
    let script = format!(
        ".import '{}' --ts-col date --event purchase\nTOP CUSTOMERS BY count OF purchase LIMIT 1;",
        cdnow.display()
    );
    let out = run(&[db.to_str().unwrap(), "--format", "csv", "-c", &script]);
    let stdout = success(&out);
    assert!(stdout.contains("integers read as YYYYMMDD dates"), "{stdout}");
    assert!(stdout.contains("rank,customer,value\n1,3,3\n"), "{stdout}");
    // An option the command does not have is refused by name; --check writes nothing.
    let out = run(&[
        db.to_str().unwrap(),
        "-c",
        &format!(".import {} --ts-colum date", cdnow.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--ts-colum"), "{}", text(&out.stderr));
    let before = export(&db);
    let mixpanel = fixture("mixpanel.ndjson");
    let out = run(&[
        db.to_str().unwrap(),
        "-c",
        &format!(".import {} --check", mixpanel.display()),
    ]);
    assert!(success(&out).contains("4 rows would be imported"));
    assert_eq!(export(&db), before);
}

/// The library says the same: `Db::import_file` returns the span and the inferred unit, for a
/// CSV read whole and for a Parquet file of integer seconds streamed in parts (no event
/// column; every row one event).
#[cfg(feature = "parquet")]
#[test]
fn the_library_reports_span_and_unit() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default()).unwrap();
    let opts = journeydb::ImportOptions::default();
    let done = db
        .import_file(&fixture("millis.csv"), &opts, &mut |_, _| {})
        .unwrap();
    assert_eq!(done.ts_inferred, Some(Inferred::Unit(TsUnit::Ms)));
    assert_eq!(done.timestamps.first, Some(1_710_325_274_000_000));
    assert_eq!(done.timestamps.last, Some(1_710_411_674_000_000));
    assert_eq!((done.timestamps.count, done.timestamps.before_1990), (3, 0));

    let path = dir.path().join("seconds.parquet");
    let n = 5_000usize;
    common::write_columns(&path, n, 1_000, &|rows: std::ops::Range<usize>| {
        vec![
            (
                "customer_id",
                Arc::new(arrow_array::StringArray::from(
                    rows.clone()
                        .map(|i| format!("c{:05}", i / 10))
                        .collect::<Vec<_>>(),
                )) as arrow_array::ArrayRef,
            ),
            (
                "time",
                Arc::new(arrow_array::Int64Array::from(
                    rows.clone()
                        .map(|i| 1_710_000_000 + i as i64 * 60)
                        .collect::<Vec<_>>(),
                )) as _,
            ),
            (
                "amount",
                Arc::new(arrow_array::Float64Array::from(
                    rows.map(|i| i as f64).collect::<Vec<_>>(),
                )) as _,
            ),
        ]
    });
    for (part_rows, streamed) in [(Some(1_000), true), (Some(0), false)] {
        let db = Db::create(dir.path().join(format!("pq{streamed}")), Options::default()).unwrap();
        let opts = journeydb::ImportOptions {
            event: Some("purchase".into()),
            part_rows,
            ..Default::default()
        };
        let done = db.import_file(&path, &opts, &mut |_, _| {}).unwrap();
        assert_eq!(done.streamed, streamed);
        assert_eq!(done.events, n as u64);
        assert_eq!(done.ts_inferred, Some(Inferred::Unit(TsUnit::S)));
        assert_eq!(done.timestamps.first, Some(1_710_000_000_000_000));
        // Every part's span merged: the first part's first row, the last part's last.
        assert_eq!(
            done.timestamps.last,
            Some((1_710_000_000 + 4_999 * 60) * 1_000_000)
        );
        assert_eq!(done.timestamps.count, n as u64);
        let events = db.snapshot().customer_events("c00001").unwrap();
        assert_eq!(events.len(), 10);
        assert!(events.iter().all(|e| e.name == "purchase"));
    }
}
