//! The `scheduler` process: turns the cron table into jobs, exactly once per tick however many
//! replicas run (ARCHITECTURE.md, "Cron").
//!
//! The loop sleeps until the earliest next tick of any entry, then fires, for every entry, the
//! latest tick that has passed if it is newer than the last one fired. That one rule gives
//! the policy for missed ticks: after downtime (or a suspended machine) an entry runs once,
//! not once per missed tick. An entry that never fired starts with its next tick. Database
//! errors are logged and retried; the tick stays due until it is recorded.

pub mod fire;
pub mod table;

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use wharf_shared::{
    config::ConfigError,
    db::{self, PoolSettings},
    Config,
};

pub use table::{CronEntry, TableError};

/// Longest sleep between evaluations, so a clock change is noticed within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub database_url: String,
    /// `SCHEDULER_CRON`: expression overrides by entry name.
    pub overrides: HashMap<String, String>,
}

impl SchedulerConfig {
    pub fn from_env(config: &Config) -> Result<Self, ConfigError> {
        let spec = std::env::var("SCHEDULER_CRON").unwrap_or_default();
        let overrides = table::parse_overrides(&spec).map_err(|e| ConfigError::Invalid {
            name: "SCHEDULER_CRON",
            reason: e.to_string(),
        })?;
        Ok(Self {
            database_url: config.database_url.expose().clone(),
            overrides,
        })
    }
}

/// Runs the scheduler until `shutdown` is cancelled.
pub async fn run(config: SchedulerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let entries = table::table(&config.overrides)?;
    let pool = db::lazy_pool(
        &config.database_url,
        PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
        },
    )?;
    let mut failures = 0u32;
    loop {
        match db::migrate(&pool).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "database not ready; retrying");
                if !sleep_or_stop(backoff(failures), &shutdown).await {
                    return Ok(());
                }
            }
        }
    }
    tracing::info!(entries = ?entries.iter().map(|e| (e.name, e.schedule.source())).collect::<Vec<_>>(), "scheduler starting");

    let mut last: HashMap<&'static str, DateTime<Utc>> = HashMap::new();
    for entry in &entries {
        loop {
            match fire::last_tick(&pool, entry.name).await {
                Ok(Some(t)) => {
                    last.insert(entry.name, t);
                    break;
                }
                // Never fired: start with the next tick, no catch-up for a brand-new entry.
                Ok(None) => {
                    if let Some(t) = entry.latest_tick(Utc::now()) {
                        last.insert(entry.name, t);
                    }
                    break;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "cannot read cron ticks; retrying");
                    if !sleep_or_stop(backoff(failures), &shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    loop {
        let now = Utc::now();
        let mut errors = false;
        for entry in &entries {
            let Some(due) = entry.latest_tick(now) else {
                continue;
            };
            if last.get(entry.name).is_some_and(|l| *l >= due) {
                continue;
            }
            match fire::fire(&pool, entry, due).await {
                Ok(Some(job_id)) => {
                    // Routine: at debug, so a day of ticks does not drown the log.
                    tracing::debug!(entry = entry.name, tick = %due, job_id, "enqueued cron job");
                    last.insert(entry.name, due);
                }
                Ok(None) => {
                    tracing::debug!(entry = entry.name, tick = %due, "tick already fired elsewhere");
                    last.insert(entry.name, due);
                }
                Err(e) => {
                    errors = true;
                    tracing::warn!(entry = entry.name, tick = %due, error = %e, "cannot fire tick; retrying");
                }
            }
        }
        let wait = if errors {
            failures += 1;
            backoff(failures)
        } else {
            failures = 0;
            let now = Utc::now();
            entries
                .iter()
                .filter_map(|e| e.next_tick(now))
                .min()
                .and_then(|next| (next - now).to_std().ok())
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP)
        };
        if !sleep_or_stop(wait, &shutdown).await {
            break;
        }
    }
    pool.close().await;
    tracing::info!("scheduler stopped");
    Ok(())
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// What the `scheduler` binary runs: configuration from the environment, shutdown on SIGTERM or
/// Ctrl-C. Test crates build the same entry point into their own binaries to run real
/// processes (kill -9, SIGTERM, several replicas).
pub async fn main_from_env() -> anyhow::Result<()> {
    wharf_shared::telemetry::init(wharf_shared::telemetry::format_from_env(), "info,sqlx=warn");
    let config = wharf_shared::Config::from_env()?;
    let settings = SchedulerConfig::from_env(&config)?;
    run(settings, wharf_shared::shutdown::on_signal()).await
}
