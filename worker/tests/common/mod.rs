//! Helpers shared by the worker's integration tests: workers in-process or as real processes,
//! polling for observable outcomes, reading job rows.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    future::Future,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wharf_worker::WorkerConfig;

/// Worker settings for tests: small pool, no metrics endpoint, short leases; `extra` overrides.
pub fn config(url: &str, extra: &[(&str, &str)]) -> WorkerConfig {
    let mut vars: HashMap<String, String> = [
        ("WORKER_METRICS_ADDR", "none"),
        ("WORKER_DB_POOL_SIZE", "6"),
        ("WORKER_LEASE_SECS", "3"),
        ("WORKER_RESCUE_INTERVAL_SECS", "0.5"),
        ("WORKER_SHUTDOWN_GRACE_SECS", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    WorkerConfig::from_lookup(url.to_string(), move |k| vars.get(k).cloned()).expect("test config")
}

/// A worker running inside the test process.
pub struct InProcess {
    pub stop: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub fn start(config: WorkerConfig) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(wharf_worker::run(config, stop.clone()));
        Self { stop, task }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task did not panic");
        result.expect("worker returned Ok");
    }
}

/// A `worker` process (the real binary).
pub struct Process {
    pub child: Child,
}

impl Process {
    pub fn spawn(url: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
        cmd.env("DATABASE_URL", url)
            .env("REDIS_URL", "none")
            .env("WORKER_METRICS_ADDR", "none")
            .env("WORKER_DB_POOL_SIZE", "6")
            .env("WORKER_LEASE_SECS", "3")
            .env("WORKER_RESCUE_INTERVAL_SECS", "0.5")
            .env("RUST_LOG", "warn,wharf_worker=info")
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_WORKER_LOGS").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("start the worker binary"),
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "worker process did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn state(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("job row")
}

pub async fn wait_state(pool: &PgPool, id: i64, want: &str, within: Duration) {
    eventually(within, &format!("job {id} to be {want}"), || async {
        (state(pool, id).await == want).then_some(())
    })
    .await;
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}

pub async fn attempt(pool: &PgPool, id: i64) -> i32 {
    sqlx::query_scalar("SELECT attempt FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("job row")
}
