//! Query benchmarks: each canonical statement on the demo dataset (10M events by default; set
//! `JOURNEYDB_BENCH_EVENTS`). `cargo bench --bench query`.
//!
//! Two data shapes (`JOURNEYDB_BENCH_SHAPE`): `demo` (default; committed by customer, then
//! compacted into one segment) and `time` (the same events as real logs arrive: in time order,
//! timestamps cut to whole seconds so that a customer's events tie, committed in batches and
//! sealed into several segments, never compacted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use journeydb::{Db, Options, Query, QueryOptions, Sync, demo};

fn queries(c: &mut Criterion) {
    let n: u64 = std::env::var("JOURNEYDB_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let time_ordered = std::env::var("JOURNEYDB_BENCH_SHAPE").is_ok_and(|s| s == "time");
    // `JOURNEYDB_BENCH_DB=DIR` builds the dataset in DIR and stops (no benchmark runs: some
    // of them commit events), for a profiler or `query_time` to run on the same data.
    if let Some(path) = std::env::var_os("JOURNEYDB_BENCH_DB") {
        build(std::path::Path::new(&path), n, time_ordered);
        eprintln!("dataset kept in {}", path.to_string_lossy());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (db, rows) = build(&dir.path().join("db"), n, time_ordered);
    let snap = db.snapshot();
    let customer = rows[rows.len() / 2].customer.to_string();
    let events = snap.len();
    eprintln!(
        "dataset: {events} events, {} customers, {} segments",
        db.stats().customers,
        db.stats().segments
    );
    let mut g = c.benchmark_group(if time_ordered {
        "query_time_ordered"
    } else {
        "query"
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    let timeline = format!("TIMELINE '{customer}' FROM '2026-02-01' TO '2026-03-03'");
    let qs: Vec<(&str, String)> = vec![
        (
            "Q1_funnel",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT".into(),
        ),
        (
            // The default tie rule (TIES ALLOW): tied rows are held until their timestamp ends.
            "Q1_funnel_ties_allow",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d".into(),
        ),
        (
            "Q2_retention",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME".into(),
        ),
        ("Q3_uniq_by_channel", "TREND uniq PERIOD day BY channel".into()),
        ("Q3b_uniq_day", "TREND uniq PERIOD day".into()),
        (
            "Q4_revenue",
            "TREND sum(amount) OF STAGE retention PERIOD day".into(),
        ),
        ("Q5_timeline", timeline),
        (
            "Q6_lifecycle_week",
            "LIFECYCLE OF visit OR purchase PERIOD week".into(),
        ),
        ("Q7_stickiness_day", "STICKINESS OF visit PERIOD day".into()),
        (
            "top_customers_revenue",
            "TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 10".into(),
        ),
        (
            "top_customers_days",
            "TOP CUSTOMERS BY days_active LIMIT 10".into(),
        ),
        ("stages_week_bitmaps", "STAGES PERIOD week".into()),
        (
            "Q1_funnel_in_everyone",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT WHERE CUSTOMER IN everyone".into(),
        ),
        (
            "Q1_funnel_not_in_heavy",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q2_retention_not_in_heavy",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q3_uniq_by_channel_not_in_heavy",
            "TREND uniq PERIOD day BY channel WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q4_revenue_not_in_heavy",
            "TREND sum(amount) OF STAGE retention PERIOD day WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q1_funnel_in_repeat_buyers",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT WHERE CUSTOMER IN repeat_buyers".into(),
        ),
        // Customer profiles (issue 27 §1) beside the same statements on event properties.
        (
            "Q1_funnel_where_plan_pro",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT WHERE customer.plan = 'pro'".into(),
        ),
        (
            "Q1_funnel_by_channel",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT BY channel".into(),
        ),
        (
            "Q1_funnel_by_plan",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT BY customer.plan".into(),
        ),
        (
            "Q3_uniq_by_country",
            "TREND uniq PERIOD day BY customer.country".into(),
        ),
        ("rfm_revenue", "RFM OF purchase VALUE amount".into()),
        // The funnel forms of issue 27 §4, beside Q1 with TIES ALLOW (their default).
        (
            "Q1_funnel_period_week",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d PERIOD week".into(),
        ),
        (
            "Q1_funnel_first_visit",
            "FUNNEL FIRST visit -> add_to_cart -> purchase WITHIN 7d".into(),
        ),
        (
            "Q1_funnel_holding_channel",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d HOLDING channel".into(),
        ),
        (
            "Q1_funnel_percentiles",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d PERCENTILES".into(),
        ),
        (
            "Q1_funnel_by_channel_plan",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d BY channel, customer.plan".into(),
        ),
        (
            "Q1_funnel_by_3_cohorts",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT BY COHORT repeat_buyers, mobile_first, heavy".into(),
        ),
        // Paths (issue 28).
        ("paths_after_visit_3", "PATHS AFTER visit STEPS 3 TOP 10".into()),
        (
            "paths_before_purchase_2_collapse",
            "PATHS BEFORE purchase STEPS 2 TOP 10 COLLAPSE REPEATS".into(),
        ),
        ("paths_after_visit_edges", "PATHS AFTER visit STEPS 3 EDGES".into()),
        (
            "attribution_last",
            "ATTRIBUTION purchase VALUE amount BY channel MODEL last LOOKBACK 30d".into(),
        ),
        (
            "attribution_linear",
            "ATTRIBUTION purchase VALUE amount BY channel MODEL linear LOOKBACK 30d".into(),
        ),
        (
            "attribution_time_decay",
            "ATTRIBUTION purchase VALUE amount BY channel MODEL time_decay LOOKBACK 30d".into(),
        ),
        ("sessions_day", "TREND sessions PERIOD day".into()),
        (
            "session_length_avg_week",
            "TREND avg(session_length) PERIOD week".into(),
        ),
        ("heatmap_visit", "HEATMAP OF visit".into()),
        ("correlate_visit_purchase", "CORRELATE FUNNEL visit -> purchase WITHIN 7d".into()),
        // Issue 29 §2: CHANGES beside the TREND it extends (scan; value-index shortcut; means).
        ("trend_uniq_purchase_month_channel", "TREND uniq OF purchase PERIOD month BY channel".into()),
        ("changes_uniq_purchase_month_channel", "CHANGES uniq OF purchase PERIOD month BY channel".into()),
        ("trend_uniq_week_channel", "TREND uniq PERIOD week BY channel".into()),
        ("changes_uniq_week_channel", "CHANGES uniq PERIOD week BY channel".into()),
        ("trend_avg_amount_week_channel_plan", "TREND avg(amount) OF purchase PERIOD week BY channel, customer.plan".into()),
        ("changes_avg_amount_week_channel_plan", "CHANGES avg(amount) OF purchase PERIOD week BY channel, customer.plan".into()),
        // Issue 29 §3: BG/NBD and Gamma-Gamma on two months, predictions for March.
        (
            "fit_purchase_week",
            "FIT purchase VALUE amount UNIT week FROM '2026-01-01' TO '2026-03-01'".into(),
        ),
        (
            "predict_purchase_summary",
            "PREDICT purchase UNIT week FROM '2026-01-01' TO '2026-03-01' HORIZON 4 SUMMARY".into(),
        ),
        ("heatmap_visit_new_york", "HEATMAP OF visit TZ 'America/New_York'".into()),
        // BY COHORT of three wide cohorts (everyone, 94%, ~35%): one pass, not three.
        (
            "Q1_funnel_by_3_wide_cohorts",
            "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q4_revenue_by_3_wide_cohorts",
            "TREND sum(amount) OF STAGE retention PERIOD day BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q6_lifecycle_week_by_3_wide_cohorts",
            "LIFECYCLE OF visit OR purchase PERIOD week BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q7_stickiness_day_by_3_wide_cohorts",
            "STICKINESS OF visit PERIOD day BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "paths_after_visit_3_by_3_wide_cohorts",
            "PATHS AFTER visit STEPS 3 TOP 10 BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q2_retention_by_3_wide_cohorts",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q3b_uniq_day_by_3_wide_cohorts",
            "TREND uniq PERIOD day BY COHORT everyone, light, repeat_buyers".into(),
        ),
        (
            "Q6_lifecycle_week_not_in_heavy",
            "LIFECYCLE OF visit OR purchase PERIOD week WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q7_stickiness_day_not_in_heavy",
            "STICKINESS OF visit PERIOD day WHERE CUSTOMER NOT IN heavy".into(),
        ),
        (
            "Q2_retention_by_3_cohorts",
            "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME BY COHORT repeat_buyers, mobile_first, heavy".into(),
        ),
    ];
    for (name, q) in &qs {
        for threads in [1usize, 2] {
            let opts = QueryOptions {
                threads,
                ..Default::default()
            };
            g.bench_function(BenchmarkId::new(*name, format!("{threads}t")), |b| {
                b.iter(|| snap.query_with(q, &opts).unwrap());
            });
        }
    }
    // What an application calling `Db::query` sees: every statement on a fresh snapshot (the
    // index's union over segments is kept per version, not per snapshot).
    fresh_snapshots(&mut g, &db, "");
    // Creating (and dropping) a cohort: one evaluation and two durable manifest switches.
    for (name, set) in [
        ("cohort_create_did_twice", "DID purchase AT LEAST 2 TIMES"),
        (
            "cohort_create_first_where",
            "FIRST visit WHERE channel = 'mobile'",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                db.query(&format!("CREATE COHORT bench_tmp AS {set}")).unwrap();
                db.query("DROP COHORT bench_tmp").unwrap();
            });
        });
    }
    // The same with 100,000 events committed since the last flush (a database fed live): the
    // union of the index and the buffered rows is built by the first statement after a commit
    // and kept for the next ones.
    let recent: Vec<_> = demo::generate(100_000, 0, 7)
        .iter()
        .map(demo::Row::to_event)
        .collect();
    for chunk in recent.chunks(50_000) {
        db.commit(chunk).unwrap();
    }
    fresh_snapshots(&mut g, &db, "_buffered");
    // The first statement after each commit (a dashboard on a database fed live): one event
    // committed, then the statement, which extends the union of the index and the buffered
    // rows. `commit_one_event`, the commit alone, runs last: its millions of iterations each
    // add a row to the buffer, which the statements would then read.
    let one = &recent[..1];
    for (name, q) in INDEX_STATEMENTS {
        g.bench_function(format!("{name}_after_commit"), |b| {
            b.iter(|| {
                db.commit(one).unwrap();
                db.query(q).unwrap()
            });
        });
    }
    g.bench_function("commit_one_event", |b| b.iter(|| db.commit(one).unwrap()));
    g.finish();
}

/// Two statements the index answers.
const INDEX_STATEMENTS: [(&str, &str); 2] = [
    ("Q4_revenue", "TREND sum(amount) OF STAGE retention PERIOD day"),
    ("Q3b_uniq_day", "TREND uniq PERIOD day"),
];

/// Two statements the index answers, each run by `Db::query` on a fresh snapshot (bench names
/// `<statement>_fresh_snapshot<suffix>`).
fn fresh_snapshots(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    db: &Db,
    suffix: &str,
) {
    for (name, q) in INDEX_STATEMENTS {
        g.bench_function(format!("{name}_fresh_snapshot{suffix}"), |b| {
            b.iter(|| db.query(q).unwrap());
        });
    }
}

/// One customer whose events all fall inside one funnel window: the worst case for sequence
/// matching. Time per event must stay flat as the customer grows (linear evaluation);
/// `JOURNEYDB_BENCH_EVENTS` scales the sizes down for the CI smoke run.
fn funnel_worst_case(c: &mut Criterion) {
    let scale: u64 = std::env::var("JOURNEYDB_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(1, |n: u64| if n < 1_000_000 { 10 } else { 1 });
    let mut g = c.benchmark_group("funnel_one_customer");
    g.sample_size(10);
    for n in [10_000u64, 40_000, 160_000].map(|n| n / scale) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path().join("db"), Options::default().sync(Sync::Never)).unwrap();
        let t0 = 1_772_668_800_000_000i64;
        // Mostly visits (step 1 and 4 match), some carts, no purchase: no chain completes, so
        // no early exit; every event is a candidate start.
        let events: Vec<journeydb::Event> = (0..n as i64)
            .map(|i| journeydb::Event::new("whale", t0 + i, if i % 5 == 0 { "add_to_cart" } else { "visit" }))
            .collect();
        for chunk in events.chunks(50_000) {
            db.commit(chunk).unwrap();
        }
        // The name must exist for the query to plan; another customer's purchase.
        db.commit(&[journeydb::Event::new("other", t0, "purchase")])
            .unwrap();
        db.flush().unwrap();
        let snap = db.snapshot();
        g.throughput(Throughput::Elements(n));
        // Exclusions: every visit hits the chains at step 2 (customer form: each cart then
        // extends all open step-1 chains again).
        let cases = [
            ("ordered", "MODE ORDERED"),
            ("strict", "MODE STRICT"),
            ("unordered", "MODE UNORDERED"),
            ("exclude_customer", "EXCLUDE visit BETWEEN 2 AND 3"),
            (
                "exclude_customer_strict",
                "MODE STRICT EXCLUDE visit BETWEEN 2 AND 3",
            ),
            ("exclude_chain", "EXCLUDE visit BETWEEN 2 AND 3 EXCLUSION CHAIN"),
        ];
        for (name, clauses) in cases {
            let q = format!("FUNNEL visit -> add_to_cart -> visit -> purchase WITHIN 7d {clauses}");
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| snap.query(&q).unwrap());
            });
        }
    }
    g.finish();
}

/// The shape's rows: the demo's, or the same events in time order, cut to whole seconds.
fn shape_rows(n: u64, time_ordered: bool) -> Vec<demo::Row> {
    let mut rows = demo::generate(n, 0, 42);
    if time_ordered {
        for r in &mut rows {
            r.ts_us -= r.ts_us.rem_euclid(1_000_000);
        }
        rows.sort_by_key(|r| r.ts_us);
    }
    rows
}

/// Creates the benchmark's database at `path` in the shape asked for, with profiles and cohorts.
fn build(path: &std::path::Path, n: u64, time_ordered: bool) -> (Db, Vec<demo::Row>) {
    let buffer = if time_ordered {
        n.div_ceil(8).max(1) as usize
    } else {
        4 << 20
    };
    let db = Db::create(
        path,
        Options::default().sync(Sync::Never).buffer_events_max(buffer),
    )
    .unwrap();
    for (name, stage) in demo::EVENTS {
        db.set_stage(name, Some(stage)).unwrap();
    }
    let rows = shape_rows(n, time_ordered);
    for chunk in rows.chunks(50_000) {
        db.commit(&chunk.iter().map(demo::Row::to_event).collect::<Vec<_>>())
            .unwrap();
    }
    // Customer profiles (country, plan; some upgrade at their first purchase).
    for chunk in demo::profiles(&rows, 42).chunks(50_000) {
        db.commit_with_profiles(&[], chunk).unwrap();
    }
    db.flush().unwrap();
    if !time_ordered {
        db.compact().unwrap();
    }
    // Cohorts (issue 27): `everyone` admits every customer (a filter that hides nobody is
    // skipped), `heavy` is ~6% of the customers (`NOT IN heavy` measures what a restriction
    // costs on top of the statement: 94% of the work), `repeat_buyers` and `mobile_first`
    // are typical personas.
    for definition in [
        "everyone AS DID ANY",
        "heavy AS DID purchase AT LEAST 5 TIMES",
        "repeat_buyers AS DID purchase AT LEAST 2 TIMES",
        "mobile_first AS FIRST visit WHERE channel = 'mobile'",
        "light AS NOT IN heavy",
    ] {
        db.query(&format!("CREATE COHORT {definition}")).unwrap();
    }
    (db, rows)
}

criterion_group!(benches, queries, funnel_worst_case);
criterion_main!(benches);
