//! Wharf's job-queue benchmark (`worker/tests/bench.rs`) re-done on apalis-postgres 1.0, so the two
//! queues can be compared in the same run on the same machine:
//!
//! - enqueue: 100k no-op jobs in one call of apalis's bulk API;
//! - drain: the same 100k jobs by one worker in this process (500 concurrent, fetch batch 500);
//! - pickup: 300 jobs pushed 20 ms apart to an idle worker woken by LISTEN/NOTIFY.
//!
//! One JSON line per scenario goes to stdout; progress goes to stderr. See README.md.

use std::{
    process::ExitCode,
    str::FromStr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use sqlx::{
    AssertSqlSafe, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::{mpsc, oneshot};

const SYSTEM: &str = "apalis-postgres 1.0";
const DRAIN_QUEUE: &str = "bench-drain";
const PICKUP_QUEUE: &str = "bench-pickup";
/// Our bench: `WORKER_CONCURRENCY=bulk=500`, `WORKER_FETCH_BATCH=500`, 1 s poll fallback.
const CONCURRENCY: usize = 500;
const FETCH_BATCH: usize = 500;
const POLL_FALLBACK: Duration = Duration::from_secs(1);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

type Res<T> = Result<T, BoxDynError>;
type StartTx = mpsc::UnboundedSender<(u32, Instant)>;

struct Args {
    url: String,
    jobs: usize,
    pickup_jobs: usize,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        jobs: 100_000,
        pickup_jobs: 300,
        runs: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--database-url" => args.url = value.clone(),
            "--jobs" => args.jobs = num()?,
            "--pickup-jobs" => args.pickup_jobs = num()?,
            "--runs" => args.runs = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.url.is_empty() {
        return Err(
            "usage: apalis-queue-bench --database-url URL [--jobs N] [--pickup-jobs N] [--runs N]"
                .into(),
        );
    }
    if args.jobs == 0 || args.pickup_jobs == 0 {
        return Err("--jobs and --pickup-jobs must be > 0".into());
    }
    Ok(args)
}

/// The queue config for both workers, tuned for throughput as far as `Config` allows.
fn config(queue: &str) -> Config {
    Config::default()
        .queue(queue)
        // Rows claimed per fetch (`apalis.get_jobs(.., LIMIT n) FOR UPDATE SKIP LOCKED`).
        .batch_size(FETCH_BATCH)
        // Skip the extra `Queued → Running` UPDATE per batch (apalis's own basic example does);
        // the fetch already marks rows claimed (`lock_by`), and orphan recovery covers
        // `Queued` rows too, so this loses no safety. Like ours: one claim, one completion.
        .lock_tasks(false)
    // `persist_results` stays on (default): it is the ack that marks a job `Done`.
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.url)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot connect to {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    for run in 1..=args.runs {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let db = format!(
            "wharf_bench_apalis_{:x}",
            nanos ^ std::process::id() as u128
        );
        // `db` is our own `[a-z0-9_]` name: safe to splice into DDL (which takes no binds).
        if let Err(e) = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&admin)
            .await
        {
            eprintln!("create database {db}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("run {run}/{}: database {db}", args.runs);
        // Spawned so that a panic also reaches the DROP below.
        let opts = PgConnectOptions::from_str(&args.url).map(|o| o.database(&db));
        let (jobs, pickup_jobs) = (args.jobs, args.pickup_jobs);
        let outcome = match opts {
            Ok(opts) => tokio::spawn(async move { run_once(opts, jobs, pickup_jobs, run).await })
                .await
                .unwrap_or_else(|e| Err(format!("panicked: {e}").into())),
            Err(e) => Err(e.into()),
        };
        // Best effort; FORCE ends any connection still open (e.g. after an error).
        if let Err(e) = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&admin)
        .await
        {
            eprintln!("drop database {db}: {e}");
        }
        if let Err(e) = outcome {
            eprintln!("run {run} failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn run_once(opts: PgConnectOptions, jobs: usize, pickup_jobs: usize, run: usize) -> Res<()> {
    // ≤ 10 connections in all: the worker's fetch/ack, its LISTEN connection, our count polls.
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(opts)
        .await?;
    PostgresStorage::setup(&pool).await?; // apalis's own migrations (schema `apalis`)

    let secs = enqueue(&pool, jobs).await?;
    println!(
        r#"{{"system":"{SYSTEM}","scenario":"enqueue","jobs":{jobs},"seconds":{secs:.3},"per_sec":{:.1}}}"#,
        jobs as f64 / secs
    );
    // `seconds` is the database-side span (first claim to last done), as the platform's own
    // drain figure is; `wall_seconds` also counts the worker's start-up and our 50 ms polling.
    let (wall, secs) = drain(&pool, jobs, run).await?;
    println!(
        r#"{{"system":"{SYSTEM}","scenario":"drain","jobs":{jobs},"seconds":{secs:.3},"per_sec":{:.1},"wall_seconds":{wall:.3}}}"#,
        jobs as f64 / secs
    );
    // Start pickup from an empty table, as ours does (a fresh database).
    sqlx::query("TRUNCATE apalis.jobs").execute(&pool).await?;
    let (p50, p99, max) = pickup(&pool, pickup_jobs, run).await?;
    println!(
        r#"{{"system":"{SYSTEM}","scenario":"pickup","jobs":{pickup_jobs},"p50_ms":{p50:.2},"p99_ms":{p99:.2},"max_ms":{max:.2}}}"#
    );
    pool.close().await;
    Ok(())
}

async fn count_done(pool: &PgPool, queue: &str) -> Res<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
    )
    .bind(queue)
    .fetch_one(pool)
    .await?)
}

/// Bulk enqueue with `TaskSink::push_bulk`: it buffers every task in the sink and flushes once,
/// i.e. one transaction with one `INSERT .. SELECT unnest(..)` statement (apalis's `push_tasks`).
/// Note apalis's `AFTER INSERT .. FOR EACH ROW` trigger sends one NOTIFY per row (ours: one).
async fn enqueue(pool: &PgPool, jobs: usize) -> Res<f64> {
    let mut storage = PostgresStorage::<u32>::new(pool).with_config(config(DRAIN_QUEUE));
    let args = vec![0u32; jobs];
    let started = Instant::now();
    storage.push_bulk(args).await?;
    let secs = started.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(pool)
        .await?;
    if stored != jobs as i64 {
        return Err(format!("enqueued {stored} rows, expected {jobs}").into());
    }
    eprintln!("enqueue: {jobs} jobs in {:.0} ms", secs * 1000.0);
    Ok(secs)
}

async fn noop(_: u32) -> Res<()> {
    Ok(())
}

/// The backend of both workers: LISTEN/NOTIFY wake-ups (`with_pubsub`, apalis's per-worker
/// listener on channel `apalis::job::insert`) plus a 1 s polling fallback, as ours. While busy,
/// apalis fetches the next batch as soon as the previous one is handed out, so neither limits
/// the drain.
type Bench = PollWith<PollWith<PostgresStorage<u32>, StreamStrategy<Pubsub>>, IntervalStrategy>;

fn backend(pool: &PgPool, queue: &str) -> Bench {
    PostgresStorage::<u32>::new(pool)
        .with_config(config(queue))
        .with_pubsub()
        .poll_with_interval(POLL_FALLBACK)
}

/// A future that resolves when `stop` fires: the worker's `run_until` signal.
fn stop_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = Result<(), WorkerError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
        Ok(())
    })
}

/// Returns (wall seconds from worker start, database-side seconds).
async fn drain(pool: &PgPool, jobs: usize, run: usize) -> Res<(f64, f64)> {
    let started = Instant::now();
    let worker = WorkerBuilder::new(format!("drain-{run}"))
        .backend(backend(pool, DRAIN_QUEUE))
        .concurrency(CONCURRENCY)
        .build(noop);
    let (stop, signal) = stop_signal();
    let handle = tokio::spawn(worker.run_until(signal));
    // Done when the database says so: poll every 50 ms.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if count_done(pool, DRAIN_QUEUE).await? == jobs as i64 {
            break;
        }
        if handle.is_finished() {
            return Err(format!("the drain worker stopped: {:?}", handle.await?).into());
        }
        if started.elapsed() > DRAIN_TIMEOUT {
            return Err(format!("drain not done after {DRAIN_TIMEOUT:?}").into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    handle.await??;
    // The database-side span, comparable with ours' headline figure (first claim → last done).
    let db_secs: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(done_at) - min(lock_at))::float8 FROM apalis.jobs",
    )
    .fetch_one(pool)
    .await?;
    eprintln!(
        "drain: {jobs} jobs in {secs:.2} s wall from worker start ({:.0}/s); \
         first claim → last done {db_secs:.2} s ({:.0}/s)",
        jobs as f64 / secs,
        jobs as f64 / db_secs
    );
    Ok((secs, db_secs))
}

/// The next handler start, or an error if none comes within 30 s.
async fn recv(rx: &mut mpsc::UnboundedReceiver<(u32, Instant)>) -> Res<(u32, Instant)> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| "a pickup job was not started within 30 s".into())
}

/// Percentile `p` of `v`, by the rule ours uses.
fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]
}

/// The handler notes when it starts; the bench pairs that with the instant of the push.
async fn record_start(i: u32, tx: Data<StartTx>) -> Res<()> {
    let now = Instant::now();
    let _ = tx.send((i, now));
    Ok(())
}

async fn pickup(pool: &PgPool, samples: usize, run: usize) -> Res<(f64, f64, f64)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u32, Instant)>();
    let worker = WorkerBuilder::new(format!("pickup-{run}"))
        .backend(backend(pool, PICKUP_QUEUE))
        .data(tx)
        .concurrency(CONCURRENCY)
        .build(record_start);
    let (stop, signal) = stop_signal();
    let handle = tokio::spawn(worker.run_until(signal));
    let mut sink = PostgresStorage::<u32>::new(pool).with_config(config(PICKUP_QUEUE));

    // Warm up as ours does: connections, the LISTEN connection, prepared statements.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        sink.push(u32::MAX).await?;
    }
    for _ in 0..20 {
        recv(&mut rx).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut pushed = Vec::with_capacity(samples);
    let mut push_ms = Vec::with_capacity(samples);
    for i in 0..samples {
        // Taken before the push: the handler may start before `push` returns.
        let at = Instant::now();
        pushed.push(at);
        sink.push(i as u32).await?;
        push_ms.push(at.elapsed().as_secs_f64() * 1000.0);
        // Idle between jobs: every job finds the worker waiting on LISTEN.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (i, started) = recv(&mut rx).await?;
        ms.push((started - pushed[i as usize]).as_secs_f64() * 1000.0);
    }
    let _ = stop.send(());
    handle.await??;

    let (p50, p99, max) = (pct(&mut ms, 0.50), pct(&mut ms, 0.99), pct(&mut ms, 1.0));
    eprintln!(
        "pickup: {samples} jobs, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms \
         (of which the push call itself: p50 {:.2} ms)",
        pct(&mut push_ms, 0.5)
    );
    Ok((p50, p99, max))
}
