//! Drives the built `journeydb` binary: demo, one-shot queries in every output format (numbers
//! cross-checked against the library on the same database), scripts on stdin, and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::process::{Command, Output, Stdio};

use journeydb::{Cell, Db, Query};

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
    // Reusing the database does not regenerate it.
    let again = run(&["demo", db_s], None);
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
            "step,event,customers,conversion_from_previous,conversion_from_first,median_time_to_convert_s,mean_time_to_convert_s"
        )
    );
    let got: Vec<i64> = lines
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, want);

    let json = text(&run(&[db_s, "-c", q, "--format", "json"], None).stdout);
    assert!(
        json.starts_with(&format!(
            "[{{\"step\": 1, \"event\": \"visit\", \"customers\": {}, ",
            want[0]
        )),
        "{json}"
    );
    assert!(json.trim_end().ends_with("}]"));
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
        stdout.starts_with("ts,event,stage,properties\nbucket,value\n2026-01-01,"),
        "{stdout}"
    );

    // A bad statement: non-zero exit, a caret and a hint on stderr, nothing on stdout.
    let out = run(&[db_s, "-c", "FUNNEL visit -> add_to_crt WITHIN 7d"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("^^^^^^^^^^") && err.contains("did you mean `add_to_cart`?"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

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
