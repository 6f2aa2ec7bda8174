//! Row order never changes an answer (docs/QUERY.md, "Event order"): the same events written
//! in two orders — shuffled, in other batches, with other flushes, some left unflushed — give
//! every statement under its defaults the same table. The data is nearly all ties (a few
//! instants per customer, several events at each), where the order of rows is all that differs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
use journeydb::{Db, Event, Options, Query, Stage, Sync};
use proptest::prelude::*;

const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const MINUTE: i64 = 60_000_000;

/// (customer, instant, event name, stage, channel)
type Row = (usize, i64, &'static str, Option<Stage>, Option<&'static str>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0usize..4,
            // Four instants a few minutes apart, and one a day later.
            prop_oneof![(0i64..4).prop_map(|k| k * 5 * MINUTE), Just(24 * 60 * MINUTE)],
            proptest::sample::select(vec!["a", "b", "c", "x"]),
            proptest::option::of(proptest::sample::select(vec![
                Stage::Awareness,
                Stage::Consideration,
                Stage::Purchase,
                Stage::Retention,
            ])),
            proptest::option::of(proptest::sample::select(vec!["web", "app"])),
        ),
        1..40,
    )
}

/// Writes `rows` in the order of `order`, `batch` rows per commit, flushing every `flush`
/// commits (the rows after the last flush stay in the write buffer).
fn load(rows: &[Row], order: &[usize], batch: usize, flush: usize) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    // Every name, property and customer known in both databases, whatever the rows hold.
    let seed: Vec<Event> = ["a", "b", "c", "x"]
        .iter()
        .enumerate()
        .map(|(k, name)| Event::new(format!("c{k}"), T0 - 2 * 24 * 60 * MINUTE, *name).with_prop("ch", "web"))
        .collect();
    db.commit(&seed).unwrap();
    let events: Vec<Event> = order
        .iter()
        .map(|&i| {
            let (customer, at, name, stage, channel) = rows[i];
            let mut event = Event::new(format!("c{customer}"), T0 + at, name);
            event.stage = stage;
            if let Some(channel) = channel {
                event = event.with_prop("ch", channel);
            }
            event
        })
        .collect();
    for (k, chunk) in events.chunks(batch).enumerate() {
        db.commit(chunk).unwrap();
        if (k + 1) % flush == 0 {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

/// Every statement, under its defaults (and the options whose rules read event order).
const STATEMENTS: &[&str] = &[
    "FUNNEL a -> b -> c WITHIN 1h",
    "FUNNEL a -> b -> c WITHIN 1h BY ch",
    "FUNNEL a -> a -> b WITHIN 2d",
    "FUNNEL a OR b -> ANY -> c WITHIN 1h",
    "FUNNEL STAGE awareness -> STAGE purchase WITHIN 1h BY ch",
    "FUNNEL a -> b -> c WITHIN 1h MODE STRICT",
    "FUNNEL a -> ANY -> c WITHIN 1h MODE STRICT",
    "FUNNEL a -> b -> c WITHIN 1h MODE UNORDERED BY ch",
    "FUNNEL a -> b -> c WITHIN 1h EXCLUDE x",
    "FUNNEL a -> b -> c WITHIN 1h EXCLUDE x BETWEEN 1 AND 2 EXCLUSION CHAIN",
    "FUNNEL a -> b -> c WITHIN 1h MODE STRICT EXCLUDE x",
    "FUNNEL a -> b WITHIN 1h WHERE ch = 'web'",
    "FUNNEL a -> b -> c WITHIN 1h TIES STRICT",
    "FUNNEL a -> b -> c WITHIN 1h MODE STRICT HOLDING ch",
    "FUNNEL FIRST a -> b -> FIRST c WITHIN 1h HOLDING ch EXCLUDE x",
    "FUNNEL a -> b WITHIN 1h PERIOD hour BY ch",
    "EXPLAIN FUNNEL FIRST a -> b -> c WITHIN 1h HOLDING ch FOR CUSTOMER 'c0'",
    "CUSTOMERS FUNNEL a -> b -> c WITHIN 1h STEP 2",
    "CUSTOMERS FUNNEL a -> b -> c WITHIN 1h STEP 3 DROPPED",
    "EXPLAIN FUNNEL a -> b -> c WITHIN 1h FOR CUSTOMER 'c0'",
    "EXPLAIN FUNNEL a -> b -> c WITHIN 1h EXCLUDE x FOR CUSTOMER 'c1'",
    "RETENTION a RETURN b PERIOD day PERIODS 2",
    "TREND uniq OF a PERIOD hour BY ch",
    "TREND count PERIOD day",
    "LIFECYCLE OF ANY PERIOD day",
    "STICKINESS OF a PERIOD day",
    "STAGES PERIOD day",
    "TRANSITIONS",
    "TRANSITIONS WITHIN 1h",
    "TIMELINE 'c0'",
    "TIMELINE 'c2' WHERE ch = 'app'",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn shuffling_rows_changes_no_answer(
        rows in rows(),
        seed in any::<u64>(),
        batches in (1usize..6, 1usize..4, 1usize..6, 1usize..4),
    ) {
        let written: Vec<usize> = (0..rows.len()).collect();
        // A permutation of the rows from `seed` (Fisher-Yates on a small LCG).
        let mut shuffled = written.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let (_a, first) = load(&rows, &written, batches.0, batches.1);
        let (_b, second) = load(&rows, &shuffled, batches.2, batches.3);
        let (first, second) = (first.snapshot(), second.snapshot());
        for text in STATEMENTS {
            let want = first.query(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let got = second.query(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&got, &want, "{} with rows in the order {:?}", text, shuffled);
        }
    }
}

/// Named case (issue 34): ClickHouse's windowFunnel test whose level changed from 2 to 1 when
/// its tied rows were re-imported in another order. Both orders give 2 here: tied events are
/// taken in step order.
#[test]
fn tied_steps_complete_the_funnel_in_either_row_order() {
    for names in [["su", "pv"], ["pv", "su"]] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        let events: Vec<Event> = names.iter().map(|name| Event::new("p", T0, *name)).collect();
        db.commit(&events).unwrap();
        let table = db.snapshot().query("FUNNEL su -> pv WITHIN 1h").unwrap();
        let customers: Vec<String> = table.rows.iter().map(|row| format!("{:?}", row[2])).collect();
        assert_eq!(customers, ["Int(1)", "Int(1)"], "rows written {names:?}");
    }
}
