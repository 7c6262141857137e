//! Scenario 1, the job queue: bulk enqueue of no-op jobs in one statement, their drain by one
//! and by two `worker` processes, and the pickup latency of a job enqueued to an idle worker.
//! The same work on apalis-postgres 1.0 runs beside it when its benchmark binary is built
//! (`bench/apalis`, built by `bench/run`).

use std::{path::PathBuf, process::Command, time::Duration, time::Instant};

use anyhow::{ensure, Context};
use serde_json::Value;
use wharf_shared::jobs::{builtin::DiagNoop, enqueue, enqueue_many, NewJob};

use crate::{
    platform::{server_url, RunDb, WorkerSpec},
    procs::Proc,
    stats::{percentile, Runs},
    wait_until, Row,
};

const PICKUP_JOBS: usize = 300;

fn drain_worker() -> WorkerSpec {
    WorkerSpec {
        lanes: "bulk",
        concurrency: "bulk=500".into(),
        pool_size: 8,
        fetch_batch: 500,
    }
}

#[derive(Default)]
struct Figures {
    enqueue: Runs,
    drain: [Runs; 2],
    worker_cpu: [Runs; 2],
    pg_cpu: [Runs; 2],
    pickup_p50: Runs,
    pickup_p99: Runs,
}

pub async fn run(runs: usize, jobs: usize) -> anyhow::Result<Vec<Row>> {
    let mut f = Figures::default();
    for run in 1..=runs {
        eprintln!("[queue] run {run}/{runs}");
        let db = RunDb::create("queue").await?;
        let result = one_run(&db, jobs, &mut f).await;
        db.drop_db().await;
        result?;
    }
    let mut rows = vec![Row::new(
        "1 queue",
        format!("bulk enqueue of {jobs} jobs, one statement"),
        f.enqueue.show(0),
        "jobs/s",
        "well under 1 s",
    )];
    for (i, workers) in ["1 worker process", "2 worker processes"]
        .iter()
        .enumerate()
    {
        rows.push(
            Row::new(
                "1 queue",
                format!("drain of {jobs} no-op jobs, {workers}"),
                f.drain[i].show(0),
                "jobs/s",
                if i == 0 { "≥ 10,000/s" } else { "" },
            )
            .beside(format!(
                "CPU per 1,000 jobs: workers {:.3} s, Postgres {:.3} s",
                f.worker_cpu[i].median(),
                f.pg_cpu[i].median()
            )),
        );
    }
    rows.push(Row::new(
        "1 queue",
        "pickup latency p50, idle worker",
        f.pickup_p50.show(1),
        "ms",
        "",
    ));
    rows.push(Row::new(
        "1 queue",
        "pickup latency p99, idle worker",
        f.pickup_p99.show(1),
        "ms",
        "p99 < 50 ms",
    ));
    rows.extend(apalis(runs, jobs)?);
    Ok(rows)
}

async fn one_run(db: &RunDb, jobs: usize, f: &mut Figures) -> anyhow::Result<()> {
    for (i, workers) in [1usize, 2].into_iter().enumerate() {
        sqlx::query("TRUNCATE jobs").execute(&db.pool).await?;
        let batch: Vec<_> = (0..jobs)
            .map(|_| NewJob::new(DiagNoop::default()))
            .collect();
        let started = Instant::now();
        let mut tx = db.pool.begin().await?;
        let ids = enqueue_many(&mut *tx, batch).await?;
        tx.commit().await?;
        let took = started.elapsed().as_secs_f64();
        ensure!(
            ids.len() == jobs,
            "enqueue_many stored {} of {jobs}",
            ids.len()
        );
        if i == 0 {
            f.enqueue.push(jobs as f64 / took);
        }

        let pg0 = crate::procs::postgres_cpu_secs();
        let mut procs = Vec::new();
        for n in 0..workers {
            let mut env = drain_worker().env();
            env.push(("DATABASE_URL", db.url.clone()));
            procs.push(Proc::spawn(
                &format!("queue-drain-worker{n}"),
                "worker",
                &env,
            )?);
        }
        wait_completed(db, &procs, jobs, Duration::from_secs(300), "the drain").await?;
        let worker_cpu: f64 = procs.iter().map(Proc::cpu_secs).sum();
        let pg_cpu = crate::procs::postgres_cpu_secs() - pg0;
        // The database's clock: first start to last completion (process start-up excluded).
        let secs: f64 = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(attempted_at))::float8 FROM jobs",
        )
        .fetch_one(&db.pool)
        .await?;
        f.drain[i].push(jobs as f64 / secs);
        f.worker_cpu[i].push(worker_cpu / (jobs as f64 / 1000.0));
        f.pg_cpu[i].push(pg_cpu / (jobs as f64 / 1000.0));
        for p in &mut procs {
            p.stop(Duration::from_secs(10));
        }
    }

    // Pickup: a worker with the default settings, idle on LISTEN when each job arrives.
    sqlx::query("TRUNCATE jobs").execute(&db.pool).await?;
    let mut env = WorkerSpec {
        lanes: "bulk",
        concurrency: "bulk=8".into(),
        pool_size: 4,
        fetch_batch: 100,
    }
    .env();
    env.push(("DATABASE_URL", db.url.clone()));
    let mut worker = Proc::spawn("queue-pickup-worker", "worker", &env)?;
    // Warm up its connections, then measure from an empty table.
    for _ in 0..20 {
        enqueue(&db.pool, NewJob::new(DiagNoop::default())).await?;
    }
    wait_completed(
        db,
        std::slice::from_ref(&worker),
        20,
        Duration::from_secs(30),
        "the warm-up jobs",
    )
    .await?;
    sqlx::query("TRUNCATE jobs").execute(&db.pool).await?;
    for _ in 0..PICKUP_JOBS {
        enqueue(&db.pool, NewJob::new(DiagNoop::default())).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_completed(
        db,
        std::slice::from_ref(&worker),
        PICKUP_JOBS,
        Duration::from_secs(30),
        "the pickup jobs",
    )
    .await?;
    let ms: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM attempted_at - created_at)::float8 * 1000 FROM jobs",
    )
    .fetch_all(&db.pool)
    .await?;
    f.pickup_p50.push(percentile(&ms, 0.50));
    f.pickup_p99.push(percentile(&ms, 0.99));
    worker.stop(Duration::from_secs(10));
    Ok(())
}

/// Waits until `n` jobs are completed, failing if a worker process dies.
async fn wait_completed(
    db: &RunDb,
    workers: &[Proc],
    n: usize,
    limit: Duration,
    what: &str,
) -> anyhow::Result<()> {
    wait_until(limit, what, || async {
        workers.iter().try_for_each(Proc::ensure_running)?;
        Ok(db
            .count("SELECT count(*) FROM jobs WHERE state = 'completed'")
            .await?
            == n as i64)
    })
    .await
}

/// The apalis-postgres comparison binary, if built.
fn apalis_bin() -> Option<PathBuf> {
    let path = std::env::var_os("APALIS_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/apalis/target/release/apalis-queue-bench"));
    path.exists().then_some(path)
}

fn apalis(runs: usize, jobs: usize) -> anyhow::Result<Vec<Row>> {
    let Some(bin) = apalis_bin() else {
        eprintln!("[queue] apalis-postgres comparison skipped: bench/apalis is not built");
        return Ok(vec![]);
    };
    let (mut enqueue, mut drain, mut p50, mut p99) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    let mut system = String::from("apalis-postgres");
    for run in 1..=runs {
        eprintln!("[queue] apalis-postgres run {run}/{runs}");
        let out = Command::new(&bin)
            .args(["--database-url", &server_url(), "--jobs", &jobs.to_string()])
            .output()
            .with_context(|| format!("run {}", bin.display()))?;
        ensure!(
            out.status.success(),
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(s) = v["system"].as_str() {
                system = s.to_string();
            }
            match v["scenario"].as_str() {
                Some("enqueue") => enqueue.push(v["per_sec"].as_f64().unwrap_or(f64::NAN)),
                Some("drain") => drain.push(v["per_sec"].as_f64().unwrap_or(f64::NAN)),
                Some("pickup") => {
                    p50.push(v["p50_ms"].as_f64().unwrap_or(f64::NAN));
                    p99.push(v["p99_ms"].as_f64().unwrap_or(f64::NAN));
                }
                _ => {}
            }
        }
    }
    let s = "1 queue (comparison)";
    Ok(vec![
        Row::new(
            s,
            format!("{system}: bulk enqueue of {jobs} jobs"),
            enqueue.show(0),
            "jobs/s",
            "",
        ),
        Row::new(
            s,
            format!("{system}: drain of {jobs} no-op jobs, 1 process"),
            drain.show(0),
            "jobs/s",
            "",
        ),
        Row::new(
            s,
            format!("{system}: pickup latency p50"),
            p50.show(1),
            "ms",
            "",
        ),
        Row::new(
            s,
            format!("{system}: pickup latency p99"),
            p99.show(1),
            "ms",
            "",
        ),
    ])
}
