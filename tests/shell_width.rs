//! The shell fits the terminal (issue 32): `COLUMNS=80 journeydb demo` prints no line wider
//! than 80, wide tables fold under a `(columns a–b of n)` marker with the first column repeated,
//! durations read as durations in the table view while CSV keeps seconds, output into a pipe
//! without `COLUMNS` is not folded, and an 80-column terminal (a PTY) gets the same fitting —
//! a wide statement in the interactive shell and the whole demo tour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
use std::process::{Command, Output};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_journeydb"));
    command.env_remove("COLUMNS").env("NO_COLOR", "1");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn widest(output: &str) -> (usize, String) {
    output
        .lines()
        .map(|line| (line.chars().count(), line.to_owned()))
        .max_by_key(|(width, _)| *width)
        .unwrap_or_default()
}

fn demo(dir: &std::path::Path, columns: Option<&str>) -> Output {
    let mut command = bin();
    command.args(["demo", dir.join("demo").to_str().unwrap(), "--events", "20000"]);
    if let Some(columns) = columns {
        command.env("COLUMNS", columns);
    }
    command.output().unwrap()
}

#[test]
fn the_demo_tour_fits_80_and_60_columns() {
    let dir = tempfile::tempdir().unwrap();
    for columns in ["80", "60"] {
        let out = demo(dir.path(), Some(columns));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let limit: usize = columns.parse().unwrap();
        let (width, line) = widest(&stdout);
        // The one line that may not fit 60 is the command to copy, which is not cut.
        let exempt = line.contains("EXPLAIN FUNNEL");
        assert!(
            width <= limit || (limit == 60 && exempt),
            "{columns}: {width}: {line}\n{stdout}"
        );
        // The funnel's table folds, the first column repeated, and shows durations.
        assert!(stdout.contains("(columns 1–"), "{stdout}");
        assert!(stdout.matches("│ step │").count() >= 2, "{stdout}");
        assert!(
            stdout.contains("m ") && !stdout.contains("_time_to_convert_s"),
            "{stdout}"
        );
        // The daily trend is resampled to the width and says so.
        assert!(
            stdout.contains("(each column: the mean of 2 buckets)"),
            "{stdout}"
        );
    }
}

#[test]
fn a_pipe_without_columns_gets_whole_tables_and_csv_keeps_seconds() {
    let dir = tempfile::tempdir().unwrap();
    assert!(demo(dir.path(), Some("80")).status.success());
    let db = dir.path().join("demo");
    let statement = "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d";
    let whole = bin().arg(&db).args(["-c", statement]).output().unwrap();
    let whole = text(&whole.stdout);
    assert!(!whole.contains("(columns"), "{whole}");
    assert!(whole.contains("│ median_time_to_convert │"), "{whole}");
    assert!(widest(&whole).0 > 80, "{whole}");
    let csv = bin()
        .arg(&db)
        .args(["--format", "csv", "-c", statement])
        .output()
        .unwrap();
    let csv = text(&csv.stdout);
    assert!(csv.starts_with("step,event,customers,"), "{csv}");
    assert!(csv.contains("median_time_to_convert_s"), "{csv}");
    let row: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
    let seconds: f64 = row[5].parse().unwrap();
    assert!(seconds > 60.0, "raw seconds in CSV: {csv}");
    // `--max-width` and `.maxwidth` fit a pipe too.
    let fitted = bin()
        .arg(&db)
        .args(["--max-width", "70", "-c", statement])
        .output()
        .unwrap();
    let fitted = text(&fitted.stdout);
    assert!(
        widest(&fitted).0 <= 70 && fitted.contains("(columns 1–"),
        "{fitted}"
    );
    let dot = bin()
        .arg(&db)
        .args(["-c", &format!(".maxwidth 50\n.maxwidth\n{statement};")])
        .output()
        .unwrap();
    let dot = text(&dot.stdout);
    assert!(dot.contains("maxwidth: 50") && widest(&dot).0 <= 50, "{dot}");
}

/// In a terminal 80 columns wide (and no `COLUMNS`), the shell reads the width from the
/// terminal: a wide funnel table folds and no line passes 80.
#[cfg(unix)]
#[test]
fn an_80_column_terminal_gets_fitted_output() {
    use expectrl::Expect;
    let dir = tempfile::tempdir().unwrap();
    assert!(demo(dir.path(), Some("80")).status.success());
    let mut command = bin();
    command
        .arg(dir.path().join("demo"))
        .env("JOURNEYDB_HISTORY", dir.path().join("history"))
        .env("TERM", "xterm-256color");
    let mut session = expectrl::Session::spawn(command).unwrap();
    session.get_process_mut().set_window_size(80, 24).unwrap();
    session.set_expect_timeout(Some(std::time::Duration::from_secs(60)));
    session.expect("journeydb> ").unwrap();
    session
        .send("FUNNEL visit -> add_to_cart -> purchase WITHIN 7d;\r")
        .unwrap();
    let shown = session.expect("journeydb> ").unwrap();
    let shown = text(shown.before());
    assert!(shown.contains("(columns 1–"), "{shown}");
    // Lines as the terminal shows them: colour codes take no cells.
    assert_fits(&shown, 80);
    session.send(".quit\r").unwrap();
    session.expect(expectrl::Eof).unwrap();
    // The whole demo tour in the 80-column terminal.
    let mut command = bin();
    command
        .args(["demo", dir.path().join("demo").to_str().unwrap()])
        .env("TERM", "xterm-256color");
    let mut tour = expectrl::Session::spawn(command).unwrap();
    tour.get_process_mut().set_window_size(80, 24).unwrap();
    tour.set_expect_timeout(Some(std::time::Duration::from_secs(120)));
    let shown = tour.expect(expectrl::Eof).unwrap();
    // At the end of output the whole of it is the match.
    let shown = text(shown.as_bytes());
    assert!(shown.contains("Open the shell on it"), "{shown}");
    assert_fits(&shown, 80);
}

/// Every line of `shown` (terminal output: `\r\n` ends, colour codes) takes at most `width`
/// cells.
fn assert_fits(shown: &str, width: usize) {
    for line in shown.replace('\r', "").lines() {
        let mut cells = 0;
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            if ch == '\x1b' {
                chars.by_ref().find(|inner| inner.is_ascii_alphabetic());
            } else {
                cells += 1;
            }
        }
        assert!(cells <= width, "{cells}: {line:?}");
    }
}
