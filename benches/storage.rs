//! Storage benchmarks: append + commit per sync policy, seal (flush), full-scan decode of the
//! customer, timestamp and event columns, and bytes per event on the demo dataset.
//!
//! `cargo bench --bench storage` (set `JOURNEYDB_BENCH_EVENTS` to change the dataset size,
//! default 1,000,000). Numbers are reported in docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test/bench code: a failure should abort loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use journeydb::demo;
use journeydb::internals::model::Columns;
use journeydb::internals::segment::ColumnSet;
use journeydb::{Db, Event, Options, Sync};

const BATCH: usize = 1_000;

fn dataset_events() -> u64 {
    std::env::var("JOURNEYDB_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn batches(n: usize) -> Arc<Vec<Vec<Event>>> {
    let rows = demo::generate((n * BATCH) as u64, 0, 7);
    Arc::new(
        rows.chunks(BATCH)
            .map(|c| c.iter().map(demo::Row::to_event).collect())
            .collect(),
    )
}

fn open(sync: Sync) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::default().sync(sync).buffer_events_max(usize::MAX);
    let db = Db::create(dir.path().join("db"), opts).expect("create");
    for (name, stage) in demo::EVENTS {
        db.set_stage(name, Some(stage)).expect("stage map");
    }
    (dir, db)
}

fn append(c: &mut Criterion) {
    let pool = batches(200);
    let mut g = c.benchmark_group("append_commit");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(6));
    let policies: [(&str, Sync, usize); 5] = [
        ("never_1thread", Sync::Never, 1),
        ("every_commit_1thread", Sync::EveryCommit, 1),
        ("every_commit_4threads", Sync::EveryCommit, 4),
        ("group_1ms_2threads", Sync::Group(Duration::from_millis(1)), 2),
        ("group_1ms_4threads", Sync::Group(Duration::from_millis(1)), 4),
    ];
    for (name, sync, threads) in policies {
        g.bench_function(BenchmarkId::new(name, format!("{BATCH}-event batches")), |b| {
            b.iter_custom(|iters| {
                let (_dir, db) = open(sync);
                let per_thread = iters.div_ceil(threads as u64);
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let db = db.clone();
                        let pool = pool.clone();
                        s.spawn(move || {
                            for i in 0..per_thread {
                                let batch = &pool[(i as usize * threads + t) % pool.len()];
                                db.commit(batch).expect("commit");
                            }
                        });
                    }
                });
                t0.elapsed()
                    .mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
            });
        });
    }
    g.finish();
}

fn seal_and_scan(c: &mut Criterion) {
    let n = dataset_events();
    let rows = demo::generate(n, 0, 42);
    let events: Vec<Vec<Event>> = rows
        .chunks(10_000)
        .map(|c| c.iter().map(demo::Row::to_event).collect())
        .collect();
    let load = |db: &Db| {
        for b in &events {
            db.commit(b).expect("commit");
        }
    };

    let mut g = c.benchmark_group("seal");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(BenchmarkId::new("flush", rows.len()), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, db) = open(Sync::Never);
                load(&db);
                let t0 = Instant::now();
                db.flush().expect("flush");
                total += t0.elapsed();
            }
            total
        });
    });
    g.finish();

    // One sealed, compacted segment of the whole dataset.
    let (_dir, db) = open(Sync::Never);
    load(&db);
    db.flush().expect("flush");
    let stats = db.stats();
    eprintln!(
        "dataset: {} events, {} customers; segment bytes {} = {:.3} bytes/event; all files {} bytes",
        stats.events, stats.customers, stats.segment_bytes, stats.bytes_per_event, stats.bytes_on_disk
    );
    let snap = db.snapshot();
    let sources = snap.sources();
    let Some(journeydb::internals::merge::Source::Segment(seg)) = sources.first().cloned() else {
        panic!("expected one segment")
    };
    let mut g = c.benchmark_group("scan_decode");
    g.throughput(Throughput::Elements(seg.footer.rows));
    let set = ColumnSet {
        ts: true,
        event: true,
        stage: false,
        props: false,
        prop_mask: 0,
    };
    g.bench_function(BenchmarkId::new("customer+ts+event", seg.footer.rows), |b| {
        let mut cols = Columns::default();
        b.iter(|| {
            let mut sum = 0u64;
            for i in 0..seg.footer.blocks.len() {
                seg.read_block_into(i, set, &mut cols).expect("read");
                sum += cols.ts.len() as u64;
            }
            sum
        });
    });
    g.bench_function(
        BenchmarkId::new("customer+ts+event_2threads", seg.footer.rows),
        |b| {
            b.iter(|| {
                let blocks = seg.footer.blocks.len();
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let seg = &seg;
                        s.spawn(move || {
                            let mut cols = Columns::default();
                            for i in (t..blocks).step_by(2) {
                                seg.read_block_into(i, set, &mut cols).expect("read");
                            }
                        });
                    }
                });
            });
        },
    );
    g.finish();
}

criterion_group!(benches, append, seal_and_scan);
criterion_main!(benches);
