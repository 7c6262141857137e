//! Queue benchmarks (ignored by default; figures, not assertions). Run in release mode:
//!
//! ```text
//! cargo test -p wharf-worker --release --test bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - bulk enqueue of 100k jobs in one statement (jobs/s);
//! - drain of 100k `diag.noop` jobs by one worker process (jobs/s);
//! - pickup latency of a job enqueued to an idle worker (p50/p99, database clock).

mod common;

use std::time::{Duration, Instant};

use common::{count, eventually, InProcess, Process};
use wharf_shared::{
    jobs::{builtin::DiagNoop, enqueue, enqueue_many, NewJob},
    testing::TestDb,
};

const N: usize = 100_000;

#[tokio::test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
async fn bench_enqueue_and_drain_100k() {
    let db = TestDb::new().await;
    let jobs: Vec<_> = (0..N).map(|_| NewJob::new(DiagNoop::default())).collect();
    let started = Instant::now();
    let mut tx = db.pool.begin().await.unwrap();
    let ids = enqueue_many(&mut *tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    let took = started.elapsed();
    assert_eq!(ids.len(), N);
    println!(
        "bulk enqueue: {N} jobs in {:.0} ms = {:.0} jobs/s",
        took.as_secs_f64() * 1000.0,
        N as f64 / took.as_secs_f64()
    );

    let started = Instant::now();
    let mut worker = Process::spawn(
        &db.url,
        &[
            ("WORKER_LANES", "bulk"),
            ("WORKER_CONCURRENCY", "bulk=500"),
            ("WORKER_FETCH_BATCH", "500"),
            ("WORKER_DB_POOL_SIZE", "8"),
            ("WORKER_LEASE_SECS", "30"),
        ],
    );
    eventually(Duration::from_secs(300), "the drain", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'completed'",
        )
        .await
            == N as i64)
            .then_some(())
    })
    .await;
    let wall = started.elapsed();
    let (first, last): (f64, f64) = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM min(attempted_at))::float8, EXTRACT(EPOCH FROM max(finished_at))::float8 FROM jobs",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    println!(
        "drain: {N} diag.noop by one worker process: {:.2} s from first start to last completion = {:.0} jobs/s \
         ({:.2} s wall including process start)",
        last - first,
        N as f64 / (last - first),
        wall.as_secs_f64()
    );
    worker.sigterm();
    worker.wait_exit(Duration::from_secs(30)).await;
}

#[tokio::test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
async fn bench_pickup_latency_of_an_idle_worker() {
    let db = TestDb::new().await;
    let worker = InProcess::start(common::config(&db.url, &[]));
    // Warm up: connections, prepared statements.
    for _ in 0..20 {
        enqueue(&db.pool, NewJob::new(DiagNoop::default()))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::query("DELETE FROM jobs")
        .execute(&db.pool)
        .await
        .unwrap();

    let samples = 300;
    for _ in 0..samples {
        enqueue(&db.pool, NewJob::new(DiagNoop::default()))
            .await
            .unwrap();
        // Idle between jobs: every job finds the worker waiting on LISTEN.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually(Duration::from_secs(30), "all picked up", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'completed'",
        )
        .await
            == samples)
            .then_some(())
    })
    .await;
    let mut ms: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM attempted_at - created_at)::float8 * 1000 FROM jobs",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms[((ms.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(ms.len() - 1)]
    };
    println!(
        "pickup latency (enqueue commit → start, idle worker, {samples} jobs): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1]
    );
    worker.shutdown().await;
}
