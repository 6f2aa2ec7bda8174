//! Drives the built `journeydb` binary: demo (numbers checked against the reference evaluator on
//! the generator's rows), one-shot queries in every output format, scripts on stdin, import and
//! export round trips through the canonical form, every bad-input case (the error, and the
//! database left unchanged), and the interactive shell through a pseudo-terminal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
#![allow(dead_code)] // the shared reference evaluator has more than this file uses

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use journeydb::{Cell, Db, Query, Stage, Table, demo};

mod common;
use common::reference::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_journeydb"))
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_then_queries_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.journeydb");
    let db_s = db.to_str().unwrap();
    let out = run(&["demo", db_s, "--events", "20000", "--seed", "7"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT"),
        "{stdout}"
    );
    assert!(stdout.contains("│ step │"), "{stdout}");
    // The persona stop: two saved cohorts side by side.
    assert!(
        stdout.contains("BY COHORT mobile_first, repeat_buyers"),
        "{stdout}"
    );
    assert!(stdout.contains("repeat_buyers"), "{stdout}");
    // The profile stop: conversion by the customers' plan.
    assert!(stdout.contains("BY customer.plan"), "{stdout}");
    assert!(
        stdout.contains("\nplus\n") || stdout.contains("│ plus"),
        "{stdout}"
    );
    // The CHANGES stop: each month under its total change, the top riser marked.
    assert!(
        stdout.contains("CHANGES uniq OF purchase PERIOD month BY channel"),
        "{stdout}"
    );
    assert!(
        stdout.contains("total change +") && stdout.contains("top riser"),
        "{stdout}"
    );
    // FIT in words, PREDICT SUMMARY as expected-beside-seen bars.
    let fit = run(
        &[
            db_s,
            "-c",
            ".chart on\nFIT purchase VALUE amount UNIT day FROM '2026-01-01' TO '2026-03-01';\nPREDICT purchase UNIT week FROM '2026-01-01' TO '2026-03-01' HORIZON 4 SUMMARY;",
        ],
        None,
    );
    let fit_text = text(&fit.stdout);
    assert!(fit_text.contains("purchases per day on average"), "{fit_text}");
    assert!(fit_text.contains("mean spend per repeat purchase"), "{fit_text}");
    assert!(
        fit_text.contains("per calibration frequency") && fit_text.contains(" 7+ "),
        "{fit_text}"
    );
    // `.help NAME`: the syntax and examples of docs/QUERY.md.
    let help = text(&run(&[db_s, "-c", ".help funnel"], None).stdout);
    assert!(
        help.contains("FUNNEL s1 -> … -> sk WITHIN d")
            && help.contains("  FUNNEL visit -> add_to_cart -> purchase WITHIN 7d;"),
        "{help}"
    );
    // Reusing the database does not regenerate it (nor save its cohorts again).
    let again = run(&["demo", db_s], None);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("Reusing"));

    // The library computes the same numbers on the same database.
    let q = "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT";
    let want: Vec<i64> = Db::open_read_only(&db)
        .unwrap()
        .snapshot()
        .query(q)
        .unwrap()
        .rows
        .iter()
        .map(|r| match r[2] {
            Cell::Int(n) => n,
            _ => panic!(),
        })
        .collect();
    let csv = run(&[db_s, "-c", q, "--format", "csv"], None);
    assert!(csv.status.success());
    let csv = text(&csv.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "step,event,customers,conversion_from_previous,conversion_from_first,median_time_to_convert_s,mean_time_to_convert_s,median_time_from_previous_s,mean_time_from_previous_s"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let got: Vec<i64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert_eq!(got, want);
    // Rates and decimals keep full precision in CSV (as in JSON; the table view rounds).
    let table = Db::open_read_only(&db).unwrap().snapshot().query(q).unwrap();
    for (row, cells) in rows.iter().zip(&table.rows) {
        for (field, cell) in row.iter().zip(cells) {
            if let Cell::Float(x) | Cell::Rate(x) = cell {
                assert_eq!(field.parse::<f64>().unwrap(), *x, "{row:?}");
            }
        }
    }

    let json = text(&run(&[db_s, "-c", q, "--format", "json"], None).stdout);
    assert!(
        json.starts_with(&format!(
            "[{{\"step\": 1, \"event\": \"visit\", \"customers\": {}, ",
            want[0]
        )),
        "{json}"
    );
    assert!(json.trim_end().ends_with("}]"));
    // Several statements: one array per line (JSON Lines of arrays), each valid JSON.
    let two = format!("{q}; STAGES PERIOD month");
    let json = text(&run(&[db_s, "-c", &two, "--format", "json"], None).stdout);
    let arrays: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(arrays.len(), 2, "{json}");
    assert_eq!(arrays[0].as_array().map(Vec::len), Some(want.len()));
    assert_eq!(arrays[1].as_array().map(Vec::len), Some(15), "{json}");
    // JSON Lines: one object per row of every statement.
    let lines = text(&run(&[db_s, "-c", &two, "--format", "jsonl"], None).stdout);
    let objects: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), want.len() + 15, "{lines}");
    assert_eq!(objects[0]["customers"].as_i64(), Some(want[0]));
    assert_eq!(objects[want.len()]["stage"].as_str(), Some("awareness"));
}

#[test]
fn scripts_on_stdin_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d");
    let db_s = db.to_str().unwrap();
    assert!(run(&["demo", db_s, "--events", "5000"], None).status.success());

    // Two statements; the `;` inside quotes does not split.
    let script = "-- a comment; with a semicolon\nTIMELINE '1;2';\nTREND count PERIOD month FROM '2026-01-01' TO '2026-03-01';";
    let out = run(&[db_s, "--format", "csv"], Some(script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ts,event,stage\nbucket,value,complete\n2026-01-01,"),
        "{stdout}"
    );

    // A bad statement: non-zero exit, a caret and a hint on stderr, nothing on stdout.
    let out = run(&[db_s, "-c", "TREND sum(amout) PERIOD day"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("^^^^^") && err.contains("did you mean `amount`?"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // An event not stored yet: the answer (zeros) on stdout, unchanged in form; the warning
    // with its hint on stderr; success (issue 34).
    let out = run(
        &[
            db_s,
            "--format",
            "json",
            "-c",
            "FUNNEL visit -> add_to_crt WITHIN 7d",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("warning: unknown event `add_to_crt` (column 17)")
            && err.contains("did you mean `add_to_cart`?"),
        "{err}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("[{\"step\": 1,")
            && stdout.contains("\"event\": \"add_to_crt\", \"customers\": 0,"),
        "{stdout}"
    );

    // A memory budget too small for a breakdown by customer-level notes: a clear error.
    let q = "TREND count PERIOD day BY channel;";
    let out = run(&[db_s], Some(&format!(".memory 4KB\n{q}")));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("memory budget of 4.0 KiB"), "{err}");
    let out = run(&[db_s], Some(&format!(".memory 4KB\n.memory 1GB\n.memory\n{q}")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("memory: 1024 MiB per query"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&[db_s], Some(".memory lots"));
    assert!(
        text(&out.stderr).contains("expected a size"),
        "{}",
        text(&out.stderr)
    );

    // The first failing statement of a script fails the run.
    let out = run(&[db_s], Some("TREND count PERIOD day; NOPE;"));
    assert_eq!(out.status.code(), Some(1));

    // Not a database.
    let out = run(
        &[dir.path().join("missing").to_str().unwrap(), "-c", "TRANSITIONS"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a journeydb database"));
    // Bad arguments.
    assert_eq!(run(&["demo", "--events", "many"], None).status.code(), Some(2));
}

fn csv_rows(out: &Output) -> Vec<Vec<String>> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn ints_of(t: &Table, col: &str) -> Vec<i64> {
    let i = t.columns.iter().position(|c| c == col).unwrap();
    t.rows
        .iter()
        .map(|r| match &r[i] {
            Cell::Int(n) => *n,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The demo's numbers, printed by the binary, equal the reference evaluator's on the rows the
/// generator produces (computed without the engine).
#[test]
fn demo_numbers_match_the_reference_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.journeydb");
    let db_s = db.to_str().unwrap();
    let out = run(&["demo", db_s, "--events", "20000", "--seed", "11"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stages: BTreeMap<&str, Stage> = demo::EVENTS.into_iter().collect();
    let evs: Vec<Ev> = demo::demo_rows(20_000, 0, 11)
        .iter()
        .enumerate()
        .map(|(seq, r)| {
            let e = r.to_event();
            Ev {
                stage: stages.get(e.name.as_str()).copied(),
                ch: Some(demo::CHANNELS[r.channel as usize].to_owned()),
                amt: (r.amount_cents > 0).then(|| f64::from(r.amount_cents) / 100.0),
                cust: e.customer,
                ts: e.ts_us,
                seq,
                name: e.name,
            }
        })
        .collect();
    let c = Common {
        range: None,
        where_ch: None,
        tz: "UTC",
    };
    let funnel = Q::Funnel {
        steps: vec![
            StepQ::Names(vec!["visit"]),
            StepQ::Names(vec!["add_to_cart"]),
            StepQ::Names(vec!["purchase"]),
        ],
        within: 7 * 24 * 3_600_000_000,
        mode: "ORDERED",
        ties_strict: true,
        exclude: None,
        exclusion_chain: false,
        extras: Extras::default(),
        c: c.clone(),
    };
    let want = ints_of(&reference(&funnel, &evs), "customers");
    assert!(want[0] > 100 && want[2] > 0, "{want:?}");
    let got: Vec<i64> = csv_rows(&run(
        &[
            db_s,
            "--format",
            "csv",
            "-c",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        ],
        None,
    ))
    .iter()
    .map(|r| r[2].parse().unwrap())
    .collect();
    assert_eq!(got, want);

    let retention = Q::Retention {
        start: StepQ::Names(vec!["visit"]),
        ret: StepQ::Names(vec!["visit", "purchase"]),
        period: "week",
        periods: 8,
        recurring: false,
        on_or_after: false,
        zero_returns: false,
        c,
    };
    let reference = reference(&retention, &evs);
    let want: Vec<(i64, i64)> = ints_of(&reference, "cohort_size")
        .into_iter()
        .zip(ints_of(&reference, "customers"))
        .collect();
    let got: Vec<(i64, i64)> = csv_rows(&run(
        &[
            db_s,
            "--format",
            "csv",
            "-c",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME",
        ],
        None,
    ))
    .iter()
    .map(|r| (r[2].parse().unwrap(), r[3].parse().unwrap()))
    .collect();
    assert_eq!(got, want);
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn export(db: &Path, format: &str) -> String {
    let out = run(&["export", db.to_str().unwrap(), "-", "--format", format], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn import(db: &Path, args: &[&str]) -> Output {
    let mut all = vec!["import", db.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, None)
}

/// Import → export gives the canonical form, byte for byte; importing the canonical form again
/// gives it back (a fixpoint). Also through gzip and zstd.
#[test]
fn import_export_round_trips_through_the_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    for (src, format, canonical) in [
        ("events.csv", "csv", "events.canonical.csv"),
        ("events.ndjson", "ndjson", "events.canonical.ndjson"),
    ] {
        let want = std::fs::read_to_string(fixture(canonical)).unwrap();
        let raw = std::fs::read(fixture(src)).unwrap();
        let gz = dir.path().join(format!("{src}.gz"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&raw).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let zst = dir.path().join(format!("{src}.zst"));
        std::fs::write(&zst, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
        for (i, input) in [fixture(src), gz, zst, fixture(canonical)].iter().enumerate() {
            let db = dir.path().join(format!("{format}-{i}.journeydb"));
            let out = import(&db, &[input.to_str().unwrap()]);
            assert!(out.status.success(), "{input:?}: {}", text(&out.stderr));
            assert!(text(&out.stdout).contains("imported"), "{}", text(&out.stdout));
            assert_eq!(export(&db, format), want, "{input:?}");
        }
    }
    // Parquet: a file written by DuckDB (snappy, TIMESTAMP WITH TIME ZONE, `customer_id`; made by
    // tests/fixtures/README.md's command), and our own export read back.
    let want = std::fs::read_to_string(fixture("events.canonical.csv")).unwrap();
    let db = dir.path().join("pq-duckdb.journeydb");
    let out = import(&db, &[fixture("events.duckdb.parquet").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(export(&db, "csv"), want);
    let pq = dir.path().join("ours.parquet");
    let out = run(&["export", db.to_str().unwrap(), pq.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db2 = dir.path().join("pq-ours.journeydb");
    assert!(import(&db2, &[pq.to_str().unwrap()]).status.success());
    assert_eq!(export(&db2, "csv"), want);
    let bytes = std::fs::read(&pq).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let out = import(&db2, &[cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cut.parquet: not a Parquet file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(export(&db2, "csv"), want);

    // Export to a compressed file, then import it back.
    let db = dir.path().join("csv-0.journeydb");
    let zst = dir.path().join("again.csv.zst");
    let out = run(&["export", db.to_str().unwrap(), zst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db2 = dir.path().join("again.journeydb");
    assert!(import(&db2, &[zst.to_str().unwrap()]).status.success());
    assert_eq!(
        export(&db2, "csv"),
        std::fs::read_to_string(fixture("events.canonical.csv")).unwrap()
    );
    // A time range: [from, to).
    let out = run(
        &[
            "export",
            db.to_str().unwrap(),
            "-",
            "--format",
            "csv",
            "--from",
            "2026-01-06",
            "--to",
            "2026-01-07T00:00:00Z",
        ],
        None,
    );
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1..].iter().all(|l| l.contains("2026-01-06T")), "{lines:?}");
}

/// Every bad input gives its documented error (file, line, column, reason) and leaves the
/// database exactly as it was.
#[test]
fn bad_inputs_give_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.journeydb");
    assert!(
        import(&db, &[fixture("events.csv").to_str().unwrap()])
            .status
            .success()
    );
    let before = export(&db, "ndjson");
    let write = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let good_then =
        |bad: &str| format!("customer,ts,event,amount\nx,2026-01-01T00:00:00Z,visit,1.5\n{bad}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut body = good_then("y,2026-01-02T00:00:00Z,visit,2.5");
    for i in 0..5000 {
        body += &format!("c{i},2026-01-03T00:00:00Z,visit,{i}.5\n");
    }
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let cases: Vec<(String, Vec<String>, String)> = vec![
        (
            "missing column".into(),
            vec![write("nocol.csv", b"customer,ts,channel\nx,2026-01-01,web\n")],
            "nocol.csv: no event column (looked for `event`, `event_name`, `name`); name it with --event-col".into(),
        ),
        (
            "bad timestamp".into(),
            vec![write("badts.csv", good_then("y,yesterday,visit,2").as_bytes())],
            "badts.csv:3:2: column `ts`: \"yesterday\" is not a timestamp".into(),
        ),
        (
            "wrong type (the database fixed amount as f64)".into(),
            vec![write("badtype.csv", good_then("y,2026-01-02,visit,lots").as_bytes())],
            "badtype.csv:3:4: column `amount`: expected f64 (the property's type), got string \"lots\"".into(),
        ),
        (
            "wrong type (inferred from the file)".into(),
            vec![write("badqty.csv", b"customer,ts,event,qty\nx,2026-01-01,visit,1\ny,2026-01-01,visit,two\n")],
            "badqty.csv:3:4: column `qty`: expected i64 (inferred from line 2), got string \"two\"; give the type with --type qty=TYPE".into(),
        ),
        (
            "wrong number of fields".into(),
            vec![write("short.csv", good_then("y,2026-01-02").as_bytes())],
            "short.csv:3:3: 2 fields, the header has 4".into(),
        ),
        (
            "unknown stage".into(),
            vec![write("stage.csv", b"customer,ts,event,stage\nx,2026-01-01,visit,nirvana\n")],
            "stage.csv:2:4: column `stage`: unknown stage \"nirvana\"".into(),
        ),
        (
            "bad JSON".into(),
            vec![write("bad.ndjson", b"{\"customer\":\"x\",\"ts\":1,\"event\":\"v\"}\n{\"customer\": \"y\",\n")],
            "bad.ndjson:2:".into(),
        ),
        (
            "nested JSON".into(),
            vec![write("nested.ndjson", b"{\"customer\":\"x\",\"ts\":1,\"event\":\"v\",\"p\":{\"a\":1}}\n")],
            "nested.ndjson:1:4: column `p`: nested objects are not supported".into(),
        ),
        (
            "truncated gzip".into(),
            vec![write("cut.csv.gz", &gz[..gz.len() / 2])],
            "cut.csv.gz: ".into(),
        ),
        (
            "unknown format".into(),
            vec![write("events.txt", b"customer,ts,event\n")],
            "events.txt: cannot tell the format from the file name".into(),
        ),
        (
            "missing file".into(),
            vec![dir.path().join("nope.csv").to_str().unwrap().to_owned()],
            "nope.csv: no such file".into(),
        ),
        (
            "a good file then a bad one: the good one stays, nothing of the bad one".into(),
            vec![
                write("good.csv", b"customer,ts,event\nnewbie,2026-01-01,visit\n"),
                write("bad2.csv", good_then("y,2026-13-01,visit,1").as_bytes()),
            ],
            "bad2.csv:3:2".into(),
        ),
    ];
    for (what, files, want) in cases {
        let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
        args.insert(0, "--ts-unit");
        args.insert(1, "ms");
        let out = import(&db, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(&want), "{what}: expected {want:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let now = export(&db, "ndjson");
        if what.starts_with("a good file") {
            assert!(now.contains("newbie") && !now.contains("\"y\""), "{what}: {now}");
        } else {
            assert_eq!(now, before, "{what}: the database changed");
        }
    }
    // Unwritable output path and unknown export format.
    let out = run(&["export", db.to_str().unwrap(), "/nonexistent-dir/x.csv"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent-dir/x.csv: cannot create the file"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &[
            "export",
            db.to_str().unwrap(),
            dir.path().join("x.txt").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains("cannot tell the format"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x.txt").exists());
}

/// `--skip-bad N` skips and reports up to N bad rows; one more fails the file as a whole.
#[test]
fn skip_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("some-bad.csv");
    std::fs::write(
        &f,
        "customer,ts,event\na,2026-01-01,visit\nb,never,visit\nc,2026-01-02,visit\nd,,visit\n",
    )
    .unwrap();
    let db = dir.path().join("db");
    let out = import(&db, &["--skip-bad", "1", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        !db.exists(),
        "a database created by a failed import is removed again"
    );
    assert!(
        text(&out.stderr).contains("more than 1 bad rows"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("some-bad.csv:5:2"),
        "{}",
        text(&out.stderr)
    );
    let out = import(&db, &["--skip-bad", "2", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("skipped: ") && err.contains("some-bad.csv:3:2"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("imported 2 events") && text(&out.stdout).contains("skipped 2 bad rows")
    );
    let csv = export(&db, "csv");
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

/// Column mapping, integer timestamps in seconds, and explicit property types.
#[test]
fn column_mapping_units_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mapped.csv");
    std::fs::write(
        &f,
        "who,when,what,zip\nu1,1767225600,signup,02134\nu1,1767225660,visit,10001\n",
    )
    .unwrap();
    let db = dir.path().join("db");
    let out = import(
        &db,
        &[
            "--customer-col",
            "who",
            "--ts-col",
            "when",
            "--event-col",
            "what",
            "--ts-unit",
            "s",
            "--type",
            "zip=string",
            f.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        export(&db, "ndjson"),
        "{\"customer\":\"u1\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"signup\",\"zip\":\"02134\"}\n\
         {\"customer\":\"u1\",\"ts\":\"2026-01-01T00:01:00.000Z\",\"event\":\"visit\",\"zip\":\"10001\"}\n"
    );
    // A column named explicitly must exist, even the optional stage.
    let out = import(
        &db,
        &[
            "--customer-col",
            "who",
            "--ts-col",
            "when",
            "--event-col",
            "what",
            "--stage-col",
            "phase",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no stage column (looked for `phase`)"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[db.to_str().unwrap(), "-c", ".schema", "--format", "csv"], None);
    assert!(
        text(&out.stdout).contains("zip,string,property"),
        "{}",
        text(&out.stdout)
    );
}

/// The interactive shell, for real, through a pseudo-terminal: a multi-line statement, the
/// result table, history recall with the up arrow, tab completion, a dot-command, and the
/// history file written on the way out.
#[cfg(unix)]
#[test]
fn interactive_shell_through_a_pty() {
    use expectrl::Expect;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pty.journeydb");
    let out = run(&["demo", db.to_str().unwrap(), "--events", "5000"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = dir.path().join("history");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_journeydb"));
    cmd.arg(&db)
        .env("JOURNEYDB_HISTORY", &history)
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    let mut p = expectrl::Session::spawn(cmd).unwrap();
    p.set_expect_timeout(Some(std::time::Duration::from_secs(60)));
    p.expect("journeydb> ").unwrap();
    // A statement over two lines: Enter on the first line only continues the statement, under
    // the continuation prompt.
    p.send("FUNNEL visit -> add_to_cart\r").unwrap();
    p.expect("   ...> ").unwrap();
    p.send("-> purchase WITHIN 7d;\r").unwrap();
    p.expect("│ step │").unwrap();
    p.expect("3 rows").unwrap();
    p.expect("journeydb> ").unwrap();
    // Up arrow recalls the whole statement; Enter runs it again.
    p.send("\x1b[A").unwrap();
    p.send("\r").unwrap();
    p.expect("│ step │").unwrap();
    p.expect("3 rows").unwrap();
    p.expect("journeydb> ").unwrap();
    // Tab completes a keyword and an event name, each with its trailing space.
    p.send("STICK\tOF rev\tPERIOD week;\r").unwrap();
    p.expect("│ buckets │ customers │").unwrap();
    p.expect("journeydb> ").unwrap();
    // The grammar narrows the choice: after `->` event names, after `BY` properties, after
    // `PERIOD` the periods (`w` is only `week` there, though `WITHIN` and `WHERE` exist).
    p.send("FUNNEL vis\t-> add\tWITHIN 1d BY chan\t;\r").unwrap();
    p.expect("rows").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send("TREND count PERIOD w\t;\r").unwrap();
    p.expect("rows").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send(".help FUNNEL\r").unwrap();
    p.expect("Examples:").unwrap();
    p.expect("docs/QUERY.md, \"FUNNEL\"").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send(".mode csv\r").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send("TREND count PERIOD month;\r").unwrap();
    p.expect("bucket,value").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send("TREND nonsense;\r").unwrap();
    p.expect("^").unwrap();
    p.expect("journeydb> ").unwrap();
    // Several statements pasted at once (lines arriving together): every one runs, in order.
    p.send("TREND uniq PERIOD month;\rSTAGES PERIOD month;\rTREND count\rPERIOD week;\r")
        .unwrap();
    p.expect("bucket,value").unwrap();
    p.expect("bucket,stage,active,furthest").unwrap();
    p.expect("bucket,value").unwrap();
    p.expect("journeydb> ").unwrap();
    p.send(".quit\r").unwrap();
    p.expect(expectrl::Eof).unwrap();
    let h = std::fs::read_to_string(&history).unwrap();
    assert!(
        h.contains("add_to_cart") && h.contains("-> purchase WITHIN 7d;"),
        "{h}"
    );
    assert!(h.contains("STICKINESS OF review PERIOD week;"), "{h}");
    assert!(
        h.contains("FUNNEL visit -> add_to_cart WITHIN 1d BY channel;"),
        "{h}"
    );
    assert!(h.contains("TREND count PERIOD week;"), "{h}");
}

/// `stats --format json`, `compact`, `verify`, and dot-commands in a script.
#[test]
fn maintenance_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.journeydb");
    let db_s = db.to_str().unwrap();
    assert!(
        import(&db, &[fixture("events.csv").to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        import(&db, &[fixture("events.ndjson").to_str().unwrap()])
            .status
            .success()
    );
    let out = run(&["stats", db_s, "--format", "json"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["events"], 12);
    assert_eq!(json["segments"], 2);
    let out = run(&["compact", db_s], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 → 1 segments"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["verify", db_s], None);
    assert!(
        out.status.success() && text(&out.stdout).starts_with("ok: 1 segments, 12 sealed events"),
        "{}",
        text(&out.stdout)
    );
    // `.stats` shows what the caches hold: nothing in a fresh session, the segment's key
    // columns once a funnel has scanned it.
    let out = run(
        &[db_s],
        Some(".stats\nFUNNEL visit -> purchase WITHIN 7d;\n.stats\n"),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (before, after) = stdout.split_once("visit").unwrap_or_default();
    assert!(!before.contains("cached bytes"), "{stdout}");
    assert!(after.contains("cached bytes"), "{stdout}");
    // Dot-commands from a script; `.stagemap` changes what later writes get.
    let script =
        ".stagemap signup awareness\n.mode csv\n.stagemap\n.events\nTREND count PERIOD month;\n.bogus\n";
    let out = run(&[db_s], Some(script));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("signup,awareness"), "{stdout}");
    assert!(
        stdout.contains("event,events,customers,stage\nvisit,4,3,\npurchase,4,3,\nreview,2,2,"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bucket,value,complete\n2026-01-01,12,"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown command .bogus"),
        "{}",
        text(&out.stderr)
    );
    // `.read` of a script that reads itself stops with an error instead of overflowing the stack.
    let selfread = dir.path().join("self.jdb");
    std::fs::write(&selfread, format!(".read {}\n", selfread.display())).unwrap();
    let out = run(&[db_s, "-c", &format!(".read {}", selfread.display())], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(".read nested more than 16 deep"),
        "{}",
        text(&out.stderr)
    );
    // FORGET CUSTOMER through the shell: hidden at once, pending until compaction.
    let before = run(&[db_s, "-c", "TIMELINE 'alice'", "--format", "csv"], None);
    let alice_events = text(&before.stdout).lines().count() - 1;
    assert!(alice_events > 0);
    let out = run(&[db_s, "-c", "FORGET CUSTOMER 'alice'", "--format", "csv"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("customer,events_erased\nalice,{alice_events}\n")
    );
    let out = run(&[db_s, "-c", "TIMELINE 'alice'", "--format", "csv"], None);
    assert_eq!(text(&out.stdout), "ts,event,stage\n");
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["stats", db_s, "--format", "json"], None).stdout).unwrap();
    assert_eq!(json["pending_erasures"], 1);
    assert_eq!(json["events"], 12 - alice_events);
    assert!(run(&["compact", db_s], None).status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["stats", db_s, "--format", "json"], None).stdout).unwrap();
    assert_eq!(json["pending_erasures"], 0);
    assert_eq!(json["events"], 12 - alice_events);
    // A corrupted segment: verify names the file and fails.
    let seg = std::fs::read_dir(db.join("seg"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let out = run(&["verify", db_s], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(".seg"), "{}", text(&out.stderr));
}

/// A database on a read-only mount opens read-only with a note instead of failing on its lock
/// file (issue 33). Needs a read-only bind mount (root); skipped, saying so, where mounting is
/// not allowed.
#[test]
fn read_only_mount_falls_back_to_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let ro = tmp.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let db = Db::create(src.join("db"), journeydb::Options::default()).unwrap();
    db.commit(&[journeydb::Event::new("a", 1_767_225_600_000_000, "visit")])
        .unwrap();
    drop(db);
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let (s, r) = (src.to_str().unwrap(), ro.to_str().unwrap());
    if !mount(&["--bind", s, r]) {
        eprintln!("skipped: cannot bind-mount here");
        return;
    }
    let remounted = mount(&["-o", "remount,ro,bind", r]);
    let out = remounted.then(|| {
        run(
            &[ro.join("db").to_str().unwrap(), "-c", "TREND count PERIOD month"],
            None,
        )
    });
    let _ = Command::new("umount").arg(r).output();
    let Some(out) = out else {
        eprintln!("skipped: cannot remount read-only here");
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("opened read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("2026-01-01"), "{}", text(&out.stdout));
}

/// `journeydb export DB FILE --cohort NAME` writes the members of a saved cohort (CSV or
/// NDJSON), the same set `CUSTOMERS IN COHORT` lists; an unknown cohort is an error.
#[test]
fn export_writes_a_cohorts_members() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let csv = dir.path().join("events.csv");
    std::fs::write(
        &csv,
        "customer,ts,event\nann,2026-02-02T10:00:00Z,buy\nann,2026-02-03T10:00:00Z,buy\n\"b,en\",2026-02-02T10:00:00Z,buy\n\"b,en\",2026-02-04T10:00:00Z,buy\ncal,2026-02-02T10:00:00Z,buy\n",
    )
    .unwrap();
    let out = import(&db, &[csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db_s = db.to_str().unwrap();
    let out = run(
        &[db_s, "-c", "CREATE COHORT twice AS DID buy AT LEAST 2 TIMES"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["export", db_s, "-", "--cohort", "twice"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "customer\nann\n\"b,en\"\n");
    let file = dir.path().join("twice.ndjson");
    let out = run(
        &["export", db_s, file.to_str().unwrap(), "--cohort", "twice"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"customer\":\"ann\"}\n{\"customer\":\"b,en\"}\n"
    );
    let out = run(&["export", db_s, "-", "--cohort", "twise"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown cohort `twise`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn profiles_import_query_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_s = db.to_str().unwrap();
    let events = dir.path().join("events.csv");
    std::fs::write(
        &events,
        "customer,ts,event\nann,2026-02-02T10:00:00Z,buy\nbob,2026-02-02T11:00:00Z,buy\n",
    )
    .unwrap();
    assert!(import(&db, &[events.to_str().unwrap()]).status.success());
    // Times from a column; a new customer (cal) is created; an empty field sets nothing.
    let profiles = dir.path().join("profiles.csv");
    std::fs::write(
        &profiles,
        "user_id,time,plan,seats\nann,2026-01-01T00:00:00Z,free,1\nann,2026-03-01T00:00:00Z,pro,\ncal,2026-01-05T00:00:00Z,team,4\n",
    )
    .unwrap();
    let out = import(&db, &["--profiles", profiles.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("3 profile writes of 2 customers")
            && said.contains("times from column `time`")
            && said.contains("customer.plan (string), customer.seats (i64)"),
        "{said}"
    );
    let out = run(&[db_s, "-c", "TIMELINE 'ann'", "--format", "csv"], None);
    assert!(
        text(&out.stdout).starts_with("ts,event,stage,properties.customer.plan,properties.customer.seats\n")
            && text(&out.stdout).contains(",,,pro,1\n"),
        "{}",
        text(&out.stdout)
    );
    // A bad value names the file, line and column; nothing of the file is written.
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        "{\"customer\":\"dan\",\"time\":\"2026-01-02T00:00:00Z\",\"plan\":\"pro\",\"vip\":true,\"score\":1.5,\"seats\":2,\"note\":null}\n{\"customer\":\"eve\",\"seats\":\"many\"}\n",
    )
    .unwrap();
    let out = import(&db, &["--profiles", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.ndjson:2:") && err.contains("column `seats`") && err.contains("i64"),
        "{err}"
    );
    // A CSV error names its field: a bad value (line 3, field 3), a bad time, an empty id.
    let bad_csv = dir.path().join("bad.csv");
    for (body, want) in [
        (
            "customer,ts,seats\nann,2026-01-01T00:00:00Z,2\nbob,2026-01-01T00:00:00Z,lots\n",
            "bad.csv:3:3: column `seats`",
        ),
        ("customer,ts,seats\nann,yesterday,2\n", "bad.csv:2:2: column `ts`"),
        (
            "customer,ts,seats\n,2026-01-01T00:00:00Z,2\n",
            "bad.csv:2:1: column `customer`",
        ),
    ] {
        std::fs::write(&bad_csv, body).unwrap();
        let out = import(&db, &["--profiles", bad_csv.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(want), "{want}: {}", text(&out.stderr));
    }
    // With an allowance the bad row is skipped and reported, the good one written.
    let out = import(&db, &["--profiles", "--skip-bad", "1", bad.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("skipped: ") && text(&out.stderr).contains("bad.ndjson:2:"));
    assert!(
        text(&out.stdout).contains("1 profile writes of 1 customers"),
        "{}",
        text(&out.stdout)
    );
    // The customer and time columns are not properties.
    let out = run(&[db_s, "--format", "csv", "-c", "TIMELINE 'dan'"], None);
    assert_eq!(
        text(&out.stdout),
        "ts,event,stage,properties.customer.plan,properties.customer.score,properties.customer.seats,properties.customer.vip\n2026-01-02T00:00:00.000Z,,,pro,1.5,2,true\n"
    );
    // JSON: the properties as one object, typed; the table view: one `name=value` column.
    let out = run(&[db_s, "--format", "json", "-c", "TIMELINE 'dan'"], None);
    assert_eq!(
        text(&out.stdout),
        "[{\"ts\": \"2026-01-02T00:00:00.000Z\", \"event\": null, \"stage\": null, \"properties\": {\"customer.plan\": \"pro\", \"customer.score\": 1.5, \"customer.seats\": 2, \"customer.vip\": true}}]\n"
    );
    let out = run(&[db_s, "-c", "TIMELINE 'dan'"], None);
    assert!(
        text(&out.stdout)
            .contains("│ customer.plan=pro, customer.score=1.5, customer.seats=2, customer.vip=true │"),
        "{}",
        text(&out.stdout)
    );
    // Cal has a profile but no event: sets are over customers with events until it has one.
    let later = dir.path().join("later.csv");
    std::fs::write(&later, "customer,ts,event\ncal,2026-02-05T10:00:00Z,visit\n").unwrap();
    assert!(import(&db, &[later.to_str().unwrap()]).status.success());
    let out = run(
        &[
            db_s,
            "-c",
            "CREATE COHORT paying AS customer.plan IN ('pro', 'team')",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The members with their profiles; the file imports back as profiles (no time column:
    // the import's time, which the summary says).
    let out = run(&["export", db_s, "-", "--cohort", "paying"], None);
    assert_eq!(text(&out.stdout), "customer,plan,seats\nann,pro,1\ncal,team,4\n");
    let back = dir.path().join("paying.csv");
    std::fs::write(&back, text(&out.stdout)).unwrap();
    let other = dir.path().join("other");
    let out = import(&other, &["--profiles", back.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no timestamp column: every write at"));
    assert!(
        text(&out.stdout).contains("2 profile writes of 2 customers"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 32: an error in a script names the script's line (and file, for `.read`), not the
/// line within the statement.
#[test]
fn script_errors_name_the_scripts_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_s = db.to_str().unwrap();
    assert!(run(&["demo", db_s, "--events", "2000"], None).status.success());
    let script = "-- a script\nTREND count PERIOD month;\n\nFUNNEL visit\n  -> purchase WITHIN 7 days;\n";
    let out = run(&[db_s], Some(script));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(" --> line 5, column 22\n"),
        "{}",
        text(&out.stderr)
    );
    let file = dir.path().join("report.sql");
    std::fs::write(&file, script).unwrap();
    let out = run(&[db_s, "-c", &format!(".read {}", file.display())], None);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(" --> {}:5:22\n", file.display())),
        "{stderr}"
    );
    // Two statements on a line, the second over two lines.
    let out = run(
        &[db_s],
        Some("TREND count PERIOD month; TREND uniq\nPERIOD wek;\n"),
    );
    assert!(
        text(&out.stderr).contains(" --> line 2, column 8\n"),
        "{}",
        text(&out.stderr)
    );
    // A failing dot-command in a file names its line too.
    std::fs::write(&file, "TREND count PERIOD month;\n.mode nonsense\n").unwrap();
    let out = run(&[db_s, "-c", &format!(".read {}", file.display())], None);
    assert!(
        text(&out.stderr).contains(&format!(" --> {}:2\n", file.display())),
        "{}",
        text(&out.stderr)
    );
}
