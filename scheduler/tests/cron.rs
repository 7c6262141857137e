//! The scheduler's guarantees, observed through rows: one job per tick however many replicas
//! run, and one catch-up (not N) after downtime.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use wharf_scheduler::{table, SchedulerConfig};
use wharf_shared::testing::TestDb;

fn spawn_scheduler(url: &str, cron: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .env("DATABASE_URL", url)
        .env("REDIS_URL", "none")
        .env("SCHEDULER_CRON", cron)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the scheduler binary")
}

#[tokio::test]
async fn two_scheduler_processes_enqueue_once_per_tick() {
    let db = TestDb::new().await;
    let cron = "diag_noop=* * * * * *";
    let mut a = spawn_scheduler(&db.url, cron);
    let mut b = spawn_scheduler(&db.url, cron);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();

    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT unique_key FROM jobs WHERE kind = 'diag.noop' ORDER BY unique_key",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(keys.len() >= 3, "a tick every second fired: {keys:?}");
    let mut distinct = keys.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "no tick enqueued twice: {keys:?}"
    );
    let ticks: Vec<i64> = keys
        .iter()
        .filter_map(|k| k.rsplit(':').next()?.parse().ok())
        .collect();
    // Ticks are consecutive seconds (none lost between the first and the last).
    assert_eq!(
        ticks.last().unwrap() - ticks[0] + 1,
        ticks.len() as i64,
        "{ticks:?}"
    );
    let hourly: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'maintenance.prune_jobs'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(hourly, 0, "the hourly prune was not due");
}

#[tokio::test]
async fn missed_ticks_run_once_not_n_times() {
    let db = TestDb::new().await;
    // The scheduler was down for three hours: three hourly prune ticks were missed.
    let three_hours_ago = Utc::now() - chrono::Duration::hours(3);
    sqlx::query("INSERT INTO cron_ticks (name, last_tick) VALUES ('prune_jobs', $1)")
        .bind(three_hours_ago)
        .execute(&db.pool)
        .await
        .unwrap();
    let config = SchedulerConfig {
        database_url: db.url.clone(),
        overrides: HashMap::new(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(wharf_scheduler::run(config.clone(), stop.clone()));
    let second = tokio::spawn(wharf_scheduler::run(config, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    second.await.unwrap().unwrap();

    // Only the hourly entry missed ticks; the every-few-seconds entries fire on their own.
    let jobs: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, unique_key FROM jobs WHERE unique_key LIKE 'cron:prune_jobs:%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs.len(), 1, "one catch-up: {jobs:?}");
    let entries = table::table(&HashMap::new()).unwrap();
    let expected_tick = entries[0].latest_tick(Utc::now()).unwrap();
    assert_eq!(jobs[0].0, "maintenance.prune_jobs");
    assert_eq!(
        jobs[0].1,
        format!("cron:prune_jobs:{}", expected_tick.timestamp())
    );
    let recorded: DateTime<Utc> =
        sqlx::query_scalar("SELECT last_tick FROM cron_ticks WHERE name = 'prune_jobs'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, expected_tick);
}
