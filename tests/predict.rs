//! FIT and PREDICT (issue 29 §3) on the CDNOW sample (tests/fixtures/README.md): the calibration
//! summary, the BG/NBD and Gamma-Gamma parameters, one customer's prediction and the
//! calibration/holdout totals reproduce the published numbers to their precision; answers are
//! the same on every thread count and segment layout; data that cannot identify a model is a
//! clear error. The per-customer summary is checked against a brute-force reference on random
//! data with time zones, several segments and unflushed rows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use journeydb::{Cell, Db, Event, Options, Query, QueryError, QueryOptions, Sync, Table};
use proptest::prelude::*;
use std::collections::BTreeMap;

const DAY: i64 = 86_400_000_000;

/// The CDNOW sample as (customer number, day since the epoch, dollars).
fn cdnow() -> Vec<(u32, i64, f64)> {
    let text = include_str!("fixtures/cdnow/CDNOW_sample.txt");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let date = fields[2];
            let (year, month, day) = (&date[0..4], &date[4..6], &date[6..8]);
            let date = jiff::civil::date(
                year.parse().unwrap(),
                month.parse().unwrap(),
                day.parse().unwrap(),
            );
            let days = date.since(jiff::civil::date(1970, 1, 1)).unwrap().get_days();
            (
                fields[1].parse().unwrap(),
                i64::from(days),
                fields[4].parse().unwrap(),
            )
        })
        .collect()
}

/// A database of the CDNOW purchases: committed in `batches` (each flushed into a segment when
/// `flush`), in file order.
fn load(batches: usize, flush: bool) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let rows = cdnow();
    for chunk in rows.chunks(rows.len().div_ceil(batches)) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|&(customer, day, dollars)| {
                Event::new(customer.to_string(), day * DAY, "purchase").with_prop("amount", dollars)
            })
            .collect();
        db.commit(&events).unwrap();
        if flush {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

const CALIBRATION: &str = "UNIT week FROM '1997-01-01' TO '1997-10-01'";

fn float(cell: &Cell) -> f64 {
    match cell {
        Cell::Float(x) | Cell::Rate(x) => *x,
        Cell::Int(n) => *n as f64,
        other => panic!("not a number: {other:?}"),
    }
}

/// FIT's value of `parameter` of `model`.
fn parameter(table: &Table, model: &str, parameter: &str) -> f64 {
    let row = table
        .rows
        .iter()
        .find(|row| row[0] == Cell::Str(model.into()) && row[1] == Cell::Str(parameter.into()))
        .unwrap_or_else(|| panic!("no {model} {parameter} in {table:?}"));
    float(&row[2])
}

fn close(got: f64, want: f64, tolerance: f64, what: &str) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got} vs {want} ± {tolerance}"
    );
}

/// The published calibration summary: Σx = 2,457, 1,411 customers without a repeat purchase,
/// customer 1 at x = 2, t_x = 30.43, T = 38.86 weeks.
#[test]
fn cdnow_calibration_summary() {
    let (_dir, db) = load(1, false);
    let table = db
        .query(&format!("PREDICT purchase {CALIBRATION} HORIZON 39 LIMIT 10000"))
        .unwrap();
    assert_eq!(table.rows.len(), 2_357);
    let frequencies: Vec<i64> = table.rows.iter().map(|row| float(&row[1]) as i64).collect();
    assert_eq!(frequencies.iter().sum::<i64>(), 2_457);
    assert_eq!(frequencies.iter().filter(|&&x| x == 0).count(), 1_411);
    let one = table
        .rows
        .iter()
        .find(|row| row[0] == Cell::Str("1".into()))
        .unwrap();
    assert_eq!(one[1], Cell::Int(2));
    close(float(&one[2]), 30.43, 0.005, "t_x");
    close(float(&one[3]), 38.86, 0.005, "T");
}

/// The published parameters: BG/NBD r 0.243, α 4.414, a 0.793, b 2.426, log-likelihood
/// −9,582.4; Gamma-Gamma p 6.25, q 3.74, γ 15.44 on the 946 repeat buyers.
#[test]
fn cdnow_fit_reproduces_the_published_parameters() {
    let (_dir, db) = load(1, false);
    let table = db
        .query(&format!("FIT purchase VALUE amount {CALIBRATION}"))
        .unwrap();
    close(parameter(&table, "bg_nbd", "r"), 0.243, 0.0005, "r");
    close(parameter(&table, "bg_nbd", "alpha"), 4.414, 0.0005, "alpha");
    close(parameter(&table, "bg_nbd", "a"), 0.793, 0.0005, "a");
    close(parameter(&table, "bg_nbd", "b"), 2.426, 0.0005, "b");
    close(
        parameter(&table, "bg_nbd", "log_likelihood"),
        -9_582.4,
        0.05,
        "LL",
    );
    assert_eq!(parameter(&table, "bg_nbd", "customers"), 2_357.0);
    close(parameter(&table, "gamma_gamma", "p"), 6.25, 0.005, "p");
    close(parameter(&table, "gamma_gamma", "q"), 3.74, 0.005, "q");
    close(parameter(&table, "gamma_gamma", "gamma"), 15.44, 0.005, "gamma");
    assert_eq!(parameter(&table, "gamma_gamma", "customers"), 946.0);
}

/// Customer 1 (x 2, t_x 30.43, T 38.86) expects 1.226 purchases in the next 39 weeks, alive
/// with probability 0.727; the calibration/holdout totals: expected 1,653.4, forecast 1,666.7,
/// actual 1,882 in weeks 40–78.
#[test]
fn cdnow_predictions_reproduce_the_published_numbers() {
    let (_dir, db) = load(1, false);
    let table = db
        .query(&format!(
            "PREDICT purchase VALUE amount {CALIBRATION} HORIZON 39 LIMIT 10000"
        ))
        .unwrap();
    let one = table
        .rows
        .iter()
        .find(|row| row[0] == Cell::Str("1".into()))
        .unwrap();
    close(float(&one[4]), 0.727, 0.0005, "p_alive");
    close(float(&one[5]), 1.226, 0.0005, "expected purchases");
    // Ranked by expected purchases, most first.
    let expected: Vec<f64> = table.rows.iter().map(|row| float(&row[5])).collect();
    assert!(expected.is_sorted_by(|x, y| x >= y));
    let summary = db
        .query(&format!("PREDICT purchase {CALIBRATION} HORIZON 39 SUMMARY"))
        .unwrap();
    let all = &summary.rows[0];
    assert_eq!(all[0], Cell::Str("all".into()));
    assert_eq!(all[1], Cell::Int(2_357));
    close(float(&all[2]), 1_653.4, 0.05, "expected_total");
    close(float(&all[3]), 1_666.7, 0.05, "forecast_total");
    assert_eq!(all[4], Cell::Int(1_882));
    // Calibration frequencies 0 and 7+ (1,411 customers without a repeat day; 64 with 7 or
    // more), and the groups add up to all.
    assert_eq!(
        (&summary.rows[1][0], &summary.rows[1][1]),
        (&Cell::Str("0".into()), &Cell::Int(1_411))
    );
    assert_eq!(
        (&summary.rows[8][0], &summary.rows[8][1]),
        (&Cell::Str("7+".into()), &Cell::Int(64))
    );
    let groups: i64 = summary.rows[1..].iter().map(|row| float(&row[1]) as i64).sum();
    assert_eq!(groups, 2_357);
    let actual: i64 = summary.rows[1..].iter().map(|row| float(&row[4]) as i64).sum();
    assert_eq!(actual, 1_882);
}

/// The value columns: expected_value is the Gamma-Gamma conditional mean
/// p(γ + x m_x) / (p x + q − 1) with FIT's parameters; without a discount the CLV is expected purchases × expected value
/// (the per-unit increments add up), with one it is less, and more so for a higher rate.
#[test]
fn value_columns_follow_the_spend_model() {
    let (_dir, db) = load(1, false);
    let fit = db
        .query(&format!("FIT purchase VALUE amount {CALIBRATION}"))
        .unwrap();
    let (p, q, gamma) = (
        parameter(&fit, "gamma_gamma", "p"),
        parameter(&fit, "gamma_gamma", "q"),
        parameter(&fit, "gamma_gamma", "gamma"),
    );
    let predict = |discount: &str| {
        db.query(&format!(
            "PREDICT purchase VALUE amount {CALIBRATION} HORIZON 39 {discount} LIMIT 10000"
        ))
        .unwrap()
    };
    let (plain, low, high) = (predict(""), predict("DISCOUNT 0.01"), predict("DISCOUNT 0.05"));
    let one = |table: &Table| {
        table
            .rows
            .iter()
            .find(|row| row[0] == Cell::Str("1".into()))
            .unwrap()
            .clone()
    };
    // Customer 1: repeat days of $29.73 and $14.96.
    let want = p * (gamma + 2.0 * 22.345) / (p * 2.0 + q - 1.0);
    let row = one(&plain);
    close(float(&row[6]), want, 1e-9, "expected_value");
    close(
        float(&row[7]),
        float(&row[5]) * float(&row[6]),
        1e-9,
        "clv without discount",
    );
    let (low, high) = (float(&one(&low)[7]), float(&one(&high)[7]));
    assert!(
        high < low && low < float(&row[7]),
        "{high} < {low} < {}",
        float(&row[7])
    );
    // One unit ahead: the value of that unit's purchases, discounted once.
    let next = db
        .query(&format!(
            "PREDICT purchase VALUE amount {CALIBRATION} HORIZON 1 DISCOUNT 0.05 LIMIT 10000"
        ))
        .unwrap();
    let row = one(&next);
    close(
        float(&row[7]),
        float(&row[5]) * float(&row[6]) / 1.05,
        1e-9,
        "clv of one unit",
    );
    // A customer without a repeat purchase is expected to spend the population mean.
    let new = plain.rows.iter().find(|row| row[1] == Cell::Int(0)).unwrap();
    close(float(&new[6]), p * gamma / (q - 1.0), 1e-9, "population mean");
}

/// `CUSTOMERS PREDICT … WHERE p_alive < 0.3` lists exactly the customers PREDICT shows below
/// 0.3 (conditions on several columns combine by AND); a cohort of them has as many members;
/// a condition under OR, a text compared with a prediction, or SUMMARY is refused.
#[test]
fn predicted_churners_are_a_customer_set() {
    let (_dir, db) = load(1, false);
    let all = db
        .query(&format!("PREDICT purchase {CALIBRATION} HORIZON 39 LIMIT 10000"))
        .unwrap();
    let ids = |table: &Table, column: usize| -> std::collections::BTreeSet<String> {
        table
            .rows
            .iter()
            .map(|row| match &row[column] {
                Cell::Str(id) => id.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let pick = |keep: &dyn Fn(&Vec<Cell>) -> bool| -> std::collections::BTreeSet<String> {
        all.rows
            .iter()
            .filter(|row| keep(row))
            .map(|row| match &row[0] {
                Cell::Str(id) => id.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    for (condition, keep) in [
        (
            "p_alive < 0.3",
            &(|row: &Vec<Cell>| float(&row[4]) < 0.3) as &dyn Fn(&Vec<Cell>) -> bool,
        ),
        ("p_alive >= 0.5 AND expected_purchases > 1", &|row: &Vec<Cell>| {
            float(&row[4]) >= 0.5 && float(&row[5]) > 1.0
        }),
        ("frequency = 0", &|row: &Vec<Cell>| float(&row[1]) == 0.0),
    ] {
        let want = pick(keep);
        assert!(!want.is_empty(), "{condition}");
        let statement =
            format!("CUSTOMERS PREDICT purchase {CALIBRATION} HORIZON 39 WHERE {condition} LIMIT 100000");
        let got = db.query(&statement).unwrap();
        let column = got.columns.iter().position(|c| c == "customer").unwrap();
        assert_eq!(ids(&got, column), want, "{condition}");
    }
    db.query(&format!(
        "CREATE COHORT churners AS CUSTOMERS PREDICT purchase {CALIBRATION} HORIZON 39 WHERE p_alive < 0.3"
    ))
    .unwrap();
    let cohorts = db.query("COHORTS").unwrap();
    let row = cohorts
        .rows
        .iter()
        .find(|row| row[0] == Cell::Str("churners".into()))
        .unwrap();
    assert_eq!(
        row[2],
        Cell::Int(pick(&|row: &Vec<Cell>| float(&row[4]) < 0.3).len() as i64)
    );
    for (statement, message) in [
        ("WHERE p_alive < 0.3 OR amount > 10", "AND"),
        ("WHERE p_alive < 'x'", "is a number"),
        ("SUMMARY", "SUMMARY"),
    ] {
        let error = db
            .query(&format!(
                "CUSTOMERS PREDICT purchase {CALIBRATION} HORIZON 39 {statement}"
            ))
            .unwrap_err();
        assert!(error.to_string().contains(message), "{statement}: {error}");
    }
}

/// ln Γ (Lanczos, g = 7), for the test's own likelihood.
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = C[0] + (1..9).map(|k| C[k] / (x + k as f64)).sum::<f64>();
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// FIT's Gamma-Gamma log-likelihood equals the sum of the published per-customer formula at
/// FIT's parameters, over the repeat days of the calibration period computed here from the
/// file (x' days after the first, m_x their mean day total).
#[test]
fn spend_log_likelihood_is_the_published_formula() {
    let (_dir, db) = load(1, false);
    let fit = db
        .query(&format!("FIT purchase VALUE amount {CALIBRATION}"))
        .unwrap();
    let (p, q, gamma) = (
        parameter(&fit, "gamma_gamma", "p"),
        parameter(&fit, "gamma_gamma", "q"),
        parameter(&fit, "gamma_gamma", "gamma"),
    );
    // 1997-10-01 in days since the epoch.
    let end = 10_135;
    let mut days: BTreeMap<u32, BTreeMap<i64, f64>> = BTreeMap::new();
    for (customer, day, dollars) in cdnow() {
        if day < end {
            *days.entry(customer).or_default().entry(day).or_default() += dollars;
        }
    }
    let mut total = 0.0;
    let mut customers = 0;
    for per_day in days.values() {
        let repeats: Vec<f64> = per_day.values().skip(1).copied().collect();
        if repeats.is_empty() {
            continue;
        }
        let x = repeats.len() as f64;
        let mean = repeats.iter().sum::<f64>() / x;
        customers += 1;
        total += ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * gamma.ln()
            + (p * x - 1.0) * mean.ln()
            + p * x * x.ln()
            - (p * x + q) * (x * mean + gamma).ln();
    }
    assert_eq!(customers, 946);
    close(
        parameter(&fit, "gamma_gamma", "log_likelihood"),
        total,
        1e-6 * total.abs(),
        "LL",
    );
}

/// The same answers on one thread and two, one segment or ten and rows not yet flushed.
#[test]
fn answers_do_not_depend_on_threads_or_layout() {
    let statements = [
        format!("FIT purchase VALUE amount {CALIBRATION}"),
        format!("PREDICT purchase VALUE amount {CALIBRATION} HORIZON 39 DISCOUNT 0.01 LIMIT 50"),
        format!("PREDICT purchase {CALIBRATION} HORIZON 39 SUMMARY"),
    ];
    let (_one, single) = load(1, true);
    let (_many, layered) = load(10, true);
    let (_open, unflushed) = load(3, false);
    for statement in &statements {
        let want = single.query(statement).unwrap();
        for threads in [1, 2] {
            let opts = QueryOptions {
                threads,
                ..QueryOptions::default()
            };
            for db in [&single, &layered, &unflushed] {
                assert_eq!(
                    db.query_with(statement, &opts).unwrap(),
                    want,
                    "{statement}, {threads} threads"
                );
            }
        }
    }
}

/// Too few customers, no repeat purchase, or no number for VALUE: clear errors, never a panic
/// or a NaN.
#[test]
fn data_that_cannot_identify_a_model_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
    let t0 = 1_735_689_600_000_000; // 2025-01-01
    let few: Vec<Event> = (0..5)
        .flat_map(|c| {
            [0, 3].map(|d| Event::new(format!("c{c}"), t0 + d * DAY, "purchase").with_prop("plan", "pro"))
        })
        .collect();
    db.commit(&few).unwrap();
    let fit = "FIT purchase UNIT day FROM '2025-01-01' TO '2025-03-01'";
    let error = db.query(fit).unwrap_err();
    assert!(matches!(error, QueryError::Model(_)), "{error}");
    assert!(error.to_string().contains("at least 10"), "{error}");
    let once: Vec<Event> = (0..40)
        .map(|c| Event::new(format!("d{c}"), t0 + c * DAY, "purchase"))
        .collect();
    db.commit(&once).unwrap();
    let error = db
        .query("FIT purchase UNIT day FROM '2025-01-06' TO '2025-03-01'")
        .unwrap_err();
    assert!(
        error.to_string().contains("no customer made a repeat purchase"),
        "{error}"
    );
    let error = db.query(&format!("{fit} VALUE plan")).unwrap_err();
    assert!(error.to_string().contains("needs a number"), "{error}");
    for (statement, message) in [
        ("FIT purchase UNIT week", "calibration period"),
        (
            "FIT purchase FROM '2025-01-01' TO '2025-03-01' HORIZON 3",
            "belongs to PREDICT",
        ),
        ("PREDICT purchase FROM '2025-01-01' TO '2025-03-01'", "HORIZON"),
        (
            "PREDICT purchase UNIT month FROM '2025-01-01' TO '2025-03-01' HORIZON 3",
            "day or week",
        ),
        (
            "PREDICT purchase FROM '2025-01-01' TO '2025-03-01' HORIZON 3 DISCOUNT 2",
            "DISCOUNT",
        ),
    ] {
        let error = db.query(statement).unwrap_err();
        assert!(error.to_string().contains(message), "{statement}: {error}");
    }
}

/// One random event: customer, hour since T0, purchase or not, value.
type Raw = (u8, i64, bool, Option<u8>);

/// The reference summary: per customer whose first purchase is in the period, (x, t_x days,
/// T days) from distinct local days, and their purchase days in the horizon in all.
fn reference(
    events: &[Raw],
    tz: &jiff::tz::TimeZone,
    period: (i64, i64),
    horizon_days: i64,
) -> (BTreeMap<String, (i64, i64, i64)>, i64) {
    let day = |ts: i64| {
        let date = tz
            .to_datetime(jiff::Timestamp::from_microsecond(ts).unwrap())
            .date();
        i64::from(date.since(jiff::civil::date(1970, 1, 1)).unwrap().get_days())
    };
    let last = day(period.1 - 1);
    let (mut out, mut holdout_total) = (BTreeMap::new(), 0);
    for customer in 0..CUSTOMERS {
        let times: Vec<i64> = events
            .iter()
            .filter(|e| e.0 == customer && e.2)
            .map(|e| T0 + e.1 * 3_600_000_000)
            .collect();
        if times.iter().any(|&ts| ts < period.0) || !times.iter().any(|&ts| ts < period.1) {
            continue;
        }
        let mut calibration: Vec<i64> = times
            .iter()
            .filter(|&&ts| ts < period.1)
            .map(|&ts| day(ts))
            .collect();
        calibration.sort_unstable();
        calibration.dedup();
        let mut holdout: Vec<i64> = times
            .iter()
            .filter(|&&ts| ts >= period.1)
            .map(|&ts| day(ts))
            .filter(|&d| d <= last + horizon_days)
            .collect();
        holdout.sort_unstable();
        holdout.dedup();
        holdout_total += holdout.len() as i64;
        let first = calibration[0];
        let x = calibration.len() as i64 - 1;
        let recency = calibration[calibration.len() - 1] - first;
        out.insert(format!("c{customer}"), (x, recency, last - first));
    }
    (out, holdout_total)
}

/// 2026-03-05T00:00Z.
const T0: i64 = 1_772_668_800_000_000;
const CUSTOMERS: u8 = 30;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// PREDICT's per-customer frequency, recency and age (in days) and SUMMARY's actual total
    /// equal the reference's, in UTC and in a zone with a DST change, with purchases before the
    /// period (those customers are left out), across segments and unflushed rows.
    #[test]
    fn summaries_equal_the_reference(
        events in proptest::collection::vec((0..CUSTOMERS, -72i64..24 * 40, proptest::bool::weighted(0.7), proptest::option::of(0u8..50)), 100..300),
        flush_every in 1usize..120,
        berlin in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        for (index, &(customer, hour, purchase, value)) in events.iter().enumerate() {
            let mut event = Event::new(format!("c{customer}"), T0 + hour * 3_600_000_000, if purchase { "purchase" } else { "visit" });
            if let Some(value) = value {
                event = event.with_prop("amount", f64::from(value));
            }
            db.commit(&[event]).unwrap();
            if (index + 1) % flush_every == 0 {
                db.flush().unwrap();
            }
        }
        let (zone, tz) = if berlin { ("Europe/Berlin", jiff::tz::TimeZone::get("Europe/Berlin").unwrap()) } else { ("UTC", jiff::tz::TimeZone::UTC) };
        // 2026-03-05 … 2026-04-01 (Berlin moves its clocks on 29 March), a 5-day horizon.
        let period = (T0, T0 + 27 * DAY);
        let (want, holdout) = reference(&events, &tz, period, 5);
        let clauses = format!("UNIT day FROM '2026-03-05T00:00:00Z' TO '2026-04-01T00:00:00Z' TZ '{zone}' HORIZON 5");
        let table = match db.query(&format!("PREDICT purchase {clauses} LIMIT 100")) {
            Ok(table) => table,
            // Too few customers or no repeat purchase in this draw: nothing to compare.
            Err(QueryError::Model(_)) => return Ok(()),
            Err(other) => panic!("{other}"),
        };
        let got: BTreeMap<String, (i64, i64, i64)> = table.rows.iter().map(|row| {
            let Cell::Str(customer) = &row[0] else { panic!("{row:?}") };
            (customer.clone(), (float(&row[1]) as i64, float(&row[2]).round() as i64, float(&row[3]).round() as i64))
        }).collect();
        prop_assert_eq!(got, want);
        let summary = db.query(&format!("PREDICT purchase {clauses} SUMMARY")).unwrap();
        match &summary.rows[0][4] {
            // No event after the period: no actual counts.
            Cell::Null => prop_assert_eq!(holdout, 0),
            actual => prop_assert_eq!(actual, &Cell::Int(holdout)),
        }
    }
}
