//! `Db::import_file` streams a Parquet file part by part: in customer order straight into its
//! segment, in any other order through sorted runs spilled to disk and merged; every other
//! file is read whole first (`Db::import`). They must all leave the same database: checked
//! against the whole-file import on random files (sorted or not, ties, bad rows, properties
//! that appear late, customers the database already holds, runs of a few rows), and byte for
//! byte on a file of several segment blocks, in customer order and in time order.

#![cfg(feature = "parquet")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should abort loudly

use std::path::Path;

use common::{Row, T0, write_parquet};
use journeydb::export::{self, Range};
use journeydb::import::{FileFormat, ImportOptions};
use journeydb::{Db, Event, Options};
use proptest::prelude::*;

mod common;

/// Every event of `db` as NDJSON text (customer order, then time), each line's properties by
/// name (the order of their ids is that of their first value in the file, or in the first part
/// that has one).
fn dump(db: &Db) -> String {
    let mut out = Vec::new();
    export::write(&db.snapshot(), FileFormat::Ndjson, Range::default(), &mut out).unwrap();
    let lines = String::from_utf8(out).unwrap();
    lines
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap()
                .to_string()
                + "\n"
        })
        .collect()
}

/// A database with the stage map set and `existing` committed.
fn database(dir: &Path, existing: &[Event]) -> Db {
    let db = Db::create(dir, Options::default()).unwrap();
    db.set_stages(&[("visit", Some(journeydb::Stage::Awareness))])
        .unwrap();
    if !existing.is_empty() {
        db.commit(existing).unwrap();
    }
    db
}

/// What an import did, comparable between the two paths (and the sorted runs it used, which
/// are not compared).
#[derive(Debug)]
struct Outcome {
    ok: Result<(u64, u64, usize), String>,
    dump: String,
    events: u64,
    runs: u64,
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        (&self.ok, &self.dump, self.events) == (&other.ok, &other.dump, other.events)
    }
}

/// Imports `file` into a fresh database holding `existing`: streamed (with `part_rows` rows per
/// part, `run_rows` per sorted run) when `part_rows` is not 0, else read whole first. Also
/// returns whether it streamed.
fn import(
    dir: &Path,
    file: &Path,
    existing: &[Event],
    (part_rows, run_rows): (usize, usize),
    skip_bad: usize,
) -> (Outcome, bool) {
    let db = database(dir, existing);
    let opts = ImportOptions {
        skip_bad,
        part_rows: Some(part_rows),
        run_rows: Some(run_rows),
        ..ImportOptions::default()
    };
    let r = db.import_file(file, &opts, &mut |_, _| {});
    let streamed = r.as_ref().is_ok_and(|d| d.streamed);
    let runs = r.as_ref().map_or(0, |d| d.runs);
    let ok = r
        .map(|d| (d.first_seq, d.events, d.skipped.len()))
        .map_err(|e| e.to_string());
    let outcome = |db: &Db| Outcome {
        ok: ok.clone(),
        dump: dump(db),
        events: db.snapshot().len(),
        runs,
    };
    let before = outcome(&db);
    // No segment file beside the published ones (an open would remove it; this one must).
    let segs = std::fs::read_dir(dir.join("seg")).unwrap().count();
    assert_eq!(segs, db.stats().segments, "a segment file was left behind");
    // What was published survives a reopen.
    drop(db);
    let db = Db::open(dir, Options::default()).unwrap();
    assert_eq!(before, outcome(&db), "the import differs after reopening");
    (before, streamed)
}

/// Writes `rows` as CSV (by the extension `.csv`: an empty field is a null, so a row without a
/// customer is bad) or as NDJSON (a null customer is bad too), timestamps in µs.
fn write_text(file: &Path, rows: &[Row]) {
    let csv = file.extension().is_some_and(|e| e == "csv");
    let mut out = String::new();
    if csv {
        out.push_str("customer_id,ts,event,amount,channel,late\n");
    }
    let text = |v: Option<String>| v.unwrap_or_default();
    for r in rows {
        let amount = r.amount.map(|a| a.to_string());
        let late = r.late.map(|l| l.to_string());
        if csv {
            let fields = [
                text(r.customer.clone()),
                r.ts.to_string(),
                r.event.to_owned(),
                text(amount),
                text(r.channel.clone()),
                text(late),
            ];
            out.push_str(&fields.join(","));
        } else {
            let json = serde_json::json!({
                "customer_id": r.customer, "ts": r.ts, "event": r.event,
                "amount": r.amount, "channel": r.channel, "late": r.late,
            });
            out.push_str(&json.to_string());
        }
        out.push('\n');
    }
    std::fs::write(file, out).unwrap();
}

/// Customer `index`'s name: names and decimal integers, some of them the same integer written
/// another way (the import finds decimal names by their integer: `7` and `07` must stay two
/// customers, and a decimal customer already in the database must be found again).
fn customer_name(index: usize) -> String {
    const NAMES: [&str; 12] = [
        "c00",
        "7",
        "07",
        "0",
        "00",
        "12",
        "120",
        "a",
        "9999999999999999999",
        "18446744073709551615",
        "c10",
        "5",
    ];
    NAMES
        .get(index)
        .map_or_else(|| format!("c{index:02}"), |name| (*name).to_owned())
}

fn row_strategy(customers: usize) -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.97, 0..customers),
        0i64..50,
        0usize..4,
        prop::option::of(0u32..1000),
        prop::option::of(0usize..3),
        prop::option::of(-5i64..5),
    )
        .prop_map(|(c, t, e, a, ch, late)| Row {
            customer: c.map(customer_name),
            ts: T0 + t * 60_000_000,
            event: ["visit", "view", "add_to_cart", "purchase"][e],
            amount: a.map(|a| f64::from(a) / 4.0),
            channel: ch.map(|c| ["web", "app", "mail"][c].to_owned()),
            late,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// A streamed import leaves the database a whole-file import leaves (or fails as it
    /// does), whatever the file — in customer order (sorted by name here: "customer order" is
    /// the order of the ids the import gives new customers, by first appearance), in time
    /// order with ties, or in no order — and whatever the sizes of its parts and sorted runs;
    /// every file streams unless it fails.
    #[test]
    fn streamed_import_equals_whole_import(
        mut rows in prop::collection::vec(row_strategy(12), 0..300),
        sorted in any::<bool>(),
        late_from in 0usize..300,
        existing in prop::collection::vec((0usize..16, 0i64..50), 0..4),
        group in 1usize..60,
        part_rows in 1usize..80,
        run_rows in prop_oneof![1usize..40, Just(1_000_000)],
        skip_bad in 0usize..12,
        order in 0u8..3,
        format in 0u8..3,
    ) {
        match (sorted, order) {
            (true, _) => rows.sort_by(|a, b| (&a.customer, a.ts).cmp(&(&b.customer, b.ts))),
            // As logs arrive: by time, ties in the generated order (the stable sort keeps it).
            (false, 0) => rows.sort_by_key(|r| r.ts),
            _ => {}
        }
        // The `late` column holds nothing before row `late_from`.
        for r in rows.iter_mut().take(late_from) {
            r.late = None;
        }
        let existing: Vec<Event> = existing
            .iter()
            .map(|&(c, t)| Event::new(customer_name(c), T0 + t * 60_000_000, "visit"))
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let file = match format {
            0 => tmp.path().join("rows.parquet"),
            1 => tmp.path().join("rows.csv"),
            _ => tmp.path().join("rows.ndjson"),
        };
        match format {
            0 => write_parquet(&file, &rows, group),
            _ => write_text(&file, &rows),
        }
        let (streamed, did_stream) =
            import(&tmp.path().join("a"), &file, &existing, (part_rows, run_rows), skip_bad);
        let (whole, whole_streamed) = import(&tmp.path().join("b"), &file, &existing, (0, 0), skip_bad);
        prop_assert!(!whole_streamed);
        prop_assert_eq!(&streamed, &whole);
        // A text file's `amount` may be read as integers in one part and floats in a later
        // one: the import then falls back to reading the file whole.
        let widens = format > 0 && rows.iter().any(|r| r.amount.is_some_and(|a| a.fract() != 0.0));
        if !widens {
            prop_assert_eq!(did_stream, streamed.ok.is_ok(), "{:?}", streamed.ok);
        }
    }
}

/// A file of several segment blocks, in customer order, with bad rows skipped and parts that
/// do not divide a block: the streamed segment is byte for byte the segment of a whole-file
/// import, and so is the dictionary file.
#[test]
fn streamed_segment_has_the_blocks_of_a_whole_import() {
    let rows = common::sorted_rows(200_000, &[7, 50_028, 100_049, 150_070]);
    same_files_as_whole_import(&rows, 1_000_000, 0);
}

/// The same rows in time order (as logs arrive; ties between customers kept in file order),
/// sorted through runs of 45,000 rows that do not divide a block: the merged segment is byte
/// for byte the segment of a whole-file import. Then with every timestamp cut to ten
/// seconds, so that most of a customer's rows tie with another (ties must keep file order
/// across runs).
#[test]
fn sorted_runs_merge_into_the_blocks_of_a_whole_import() {
    let mut rows = common::sorted_rows(200_000, &[7, 50_028, 100_049, 150_070]);
    rows.sort_by_key(|r| r.ts);
    // 199,996 good rows: four runs of 45,000 and the last of 19,996.
    same_files_as_whole_import(&rows, 45_000, 5);
    for r in &mut rows {
        r.ts -= (r.ts - T0) % 10_000_000;
    }
    same_files_as_whole_import(&rows, 45_000, 5);
}

/// Imports `rows` (four of them bad) streamed, in parts of 10,000 rows and sorted runs of
/// `run_rows`, and read whole: the same segment and dictionary files, byte for byte.
fn same_files_as_whole_import(rows: &[Row], run_rows: usize, expect_runs: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rows.parquet");
    write_parquet(&file, rows, 30_000);
    let (a, streamed) = import(&tmp.path().join("a"), &file, &[], (10_000, run_rows), 10);
    assert!(streamed, "the file did not stream");
    assert_eq!(a.runs, expect_runs, "sorted runs");
    let (b, _) = import(&tmp.path().join("b"), &file, &[], (0, 0), 10);
    assert_eq!(a.ok, b.ok);
    assert_eq!(a.ok.as_ref().map(|o| (o.1, o.2)), Ok((200_000 - 4, 4)));
    // The segment files and the dictionary file.
    let files = |name: &str| {
        let root = tmp.path().join(name);
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join("seg"))
            .unwrap()
            .chain(std::fs::read_dir(&root).unwrap())
            .flatten()
            .filter(|e| e.path().is_file())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".seg") || n.starts_with("dict")
            })
            .map(|e| {
                // Each database has its own id (header bytes 12..16); the rest must match.
                let mut bytes = std::fs::read(e.path()).unwrap();
                bytes[12..16].fill(0);
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        v.sort();
        v
    };
    let (fa, fb) = (files("a"), files("b"));

    assert_eq!(fa.len(), 2, "{:?}", fa.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert_eq!(
        fa.iter().map(|f| (&f.0, f.1.len())).collect::<Vec<_>>(),
        fb.iter().map(|f| (&f.0, f.1.len())).collect::<Vec<_>>()
    );
    assert!(fa == fb, "the streamed files differ from the whole import's");
    assert_eq!(a.dump, b.dump);
}

/// A bad row beyond the allowance in a late part fails the import after earlier parts were
/// written: the error names the file and the line, nothing is visible, before or after
/// reopening, and no segment file is left behind.
#[test]
fn a_bad_row_in_a_late_part_leaves_nothing() {
    let rows = common::sorted_rows(150_000, &[140_000]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rows.parquet");
    write_parquet(&file, &rows, 20_000);
    let dir = tmp.path().join("db");
    let existing = [Event::new("early", T0, "visit")];
    let (outcome, streamed) = import(&dir, &file, &existing, (10_000, 30_000), 0);
    assert!(!streamed);
    let err = outcome.ok.expect_err("the bad row must fail the import");
    assert!(err.contains("rows.parquet:140001"), "{err}");
    assert_eq!(outcome.events, 1);
}
