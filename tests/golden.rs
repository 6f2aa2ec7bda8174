//! Golden query files: `tests/golden/*.test`, each an isolated database and queries with their
//! expected output. `JOURNEYDB_GOLDEN=rewrite cargo test --test golden` rewrites the expected
//! output for review (as sqllogictest's `--complete`).
//!
//! File format, line by line:
//! - `# ...` comment; blank lines separate blocks;
//! - `event CUSTOMER TIME NAME [stage=S] [key=value ...]` appends an event (TIME is ISO 8601;
//!   a value is i64 if it looks like an integer, f64 if it has a `.`, bool for true/false,
//!   otherwise a string); consecutive `event` lines form one batch;
//! - `flush` seals the buffer into a segment;
//! - `query` then the query text (one or more lines; run with `Db::query`, so statements that
//!   change the database, such as CREATE COHORT, work), `----`, then the expected output up to a
//!   blank line: the result table as text, or the rendered error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use journeydb::{Db, Event, Options, Query, QueryError, Stage, Sync, Value};

fn value(v: &str) -> Value {
    if let Ok(n) = v.parse::<i64>() {
        Value::I64(n)
    } else if v.contains('.') && v.parse::<f64>().is_ok() {
        Value::F64(v.parse().unwrap())
    } else if v == "true" || v == "false" {
        Value::Bool(v == "true")
    } else {
        Value::Str(v.to_owned())
    }
}

fn run_file(path: &Path, rewrite: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut batch: Vec<Event> = Vec::new();
    let mut failures = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.strip_prefix("event ") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let ts = parts[1]
                .parse::<jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            let mut ev = Event::new(parts[0], ts.as_microsecond(), parts[2]);
            for kv in &parts[3..] {
                let (k, v) = kv.split_once('=').unwrap();
                if k == "stage" {
                    ev.stage = Stage::parse(v);
                } else {
                    ev.props.push((k.to_owned(), Some(value(v))));
                }
            }
            batch.push(ev);
            out.push(line.to_owned());
            i += 1;
            continue;
        }
        if !batch.is_empty() {
            db.commit(&batch).unwrap();
            batch.clear();
        }
        if line == "flush" {
            db.flush().unwrap();
            out.push(line.to_owned());
            i += 1;
        } else if line == "query" {
            out.push(line.to_owned());
            i += 1;
            let mut q = Vec::new();
            while i < lines.len() && lines[i] != "----" {
                q.push(lines[i]);
                out.push(lines[i].to_owned());
                i += 1;
            }
            i += 1;
            let mut expected = Vec::new();
            while i < lines.len() && !lines[i].is_empty() {
                expected.push(lines[i]);
                i += 1;
            }
            let q = q.join("\n");
            let got = match db.query(&q) {
                Ok(t) => t.to_text(),
                Err(QueryError::Parse(e)) => e.render(&q) + "\n",
                Err(e) => format!("error: {e}\n"),
            };
            let want = expected.iter().map(|l| format!("{l}\n")).collect::<String>();
            if got.trim_end() != want.trim_end() {
                failures.push(format!(
                    "{}: query\n{q}\n--- expected\n{want}--- got\n{got}",
                    path.display()
                ));
            }
            out.push("----".into());
            out.extend(got.trim_end().lines().map(str::to_owned));
        } else {
            out.push(line.to_owned());
            i += 1;
        }
    }
    if rewrite {
        std::fs::write(path, out.join("\n") + "\n").unwrap();
        return Ok(());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n"))
    }
}

#[test]
fn golden_files() {
    let rewrite = std::env::var("JOURNEYDB_GOLDEN").is_ok_and(|v| v == "rewrite");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "golden files missing");
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f, rewrite).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
