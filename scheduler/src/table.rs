//! The cron table: what runs periodically, and when.
//!
//! Each entry has a stable name (its row in `cron_ticks`, part of its jobs' unique keys), a
//! seconds-precision cron expression (`sec min hour day-of-month month day-of-week`, the `cron`
//! crate's syntax) and a function building the job for a tick. Later features add their
//! entries to [`table`]: template sync every 30 minutes, idle-agent detection every minute,
//! off-hours switches, account health checks. Work due at one moment (a scheduled campaign's
//! launch) is not an entry but a job with `run_at` at that moment.
//!
//! `SCHEDULER_CRON="name=expr;name=expr"` overrides expressions (`off` disables an entry); the
//! `diag_noop` entry exists only when given an expression there (tests use it).

use std::{collections::HashMap, str::FromStr};

use chrono::{DateTime, Utc};
use cron::Schedule;
use wharf_shared::jobs::{
    builtin::{DiagNoop, PruneJobs},
    JobKind, NewJob, RawJob,
};

type Build = Box<dyn Fn(DateTime<Utc>) -> Result<RawJob, serde_json::Error> + Send + Sync>;

pub struct CronEntry {
    pub name: &'static str,
    pub schedule: Schedule,
    build: Build,
}

impl CronEntry {
    /// An entry that enqueues `job()` at every tick of `expression`.
    pub fn new<T: JobKind>(
        name: &'static str,
        expression: &str,
        job: impl Fn() -> NewJob<T> + Send + Sync + 'static,
    ) -> Result<Self, TableError> {
        let schedule = Schedule::from_str(expression).map_err(|e| TableError::Expression {
            name,
            expression: expression.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            name,
            schedule,
            build: Box::new(move |_tick| job().into_raw()),
        })
    }

    /// The job for `tick`, unique per (entry, tick).
    pub fn job_for(&self, tick: DateTime<Utc>) -> Result<RawJob, serde_json::Error> {
        let mut job = (self.build)(tick)?;
        job.options.unique_key = Some(format!("cron:{}:{}", self.name, tick.timestamp()));
        Ok(job)
    }

    /// The latest tick at or before `now`.
    pub fn latest_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let just_after = now + chrono::Duration::milliseconds(1);
        self.schedule.after(&just_after).next_back()
    }

    /// The first tick after `now`.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&now).next()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cron entry {name}: invalid expression {expression:?}: {reason}")]
    Expression {
        name: &'static str,
        expression: String,
        reason: String,
    },
    #[error("SCHEDULER_CRON: {0}")]
    Override(String),
}

/// The default expressions, by entry name.
const DEFAULTS: &[(&str, &str)] = &[
    // Hourly, at minute 7 (away from the top of the hour, when everyone's cron fires).
    ("prune_jobs", "0 7 * * * *"),
    // Scheduled campaign launches: a conditional UPDATE, so a tick costs one indexed query.
    ("campaigns_launch_due", "0 * * * * *"),
    // Idle-agent detection: one pass per organization that enabled it, every minute.
    ("idle_agents", "0 * * * * *"),
    // Scheduled maintenance windows: a catch-up for the jobs at each window's start and end.
    ("maintenance_windows", "30 * * * * *"),
];

/// `templates_sync`: every `TEMPLATE_SYNC_INTERVAL_SECS` (default 1800 = every 30 minutes),
/// as a cron expression (`SCHEDULER_CRON` can still override it). Intervals that do not
/// divide a minute, an hour or a day are rounded to the nearest one that does.
fn template_sync_expression() -> String {
    let secs: u64 = std::env::var("TEMPLATE_SYNC_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(1800);
    interval_expression(secs)
}

fn interval_expression(secs: u64) -> String {
    let nearest = |value: u64, divisors: &[u64]| {
        *divisors
            .iter()
            .min_by_key(|d| d.abs_diff(value))
            .expect("divisors")
    };
    if secs < 60 {
        format!(
            "*/{} * * * * *",
            nearest(secs, &[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30])
        )
    } else if secs < 3600 {
        // Minute 3 of the cycle, away from the top of the hour.
        let m = nearest(secs / 60, &[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]);
        format!("0 {}/{m} * * * *", 3 % m)
    } else {
        let h = nearest(secs / 3600, &[1, 2, 3, 4, 6, 8, 12, 24]);
        if h == 24 {
            "0 3 4 * * *".to_string()
        } else {
            format!("0 3 */{h} * * *")
        }
    }
}

/// Builds the table: defaults, with `overrides` (the parsed `SCHEDULER_CRON`) applied.
pub fn table(overrides: &HashMap<String, String>) -> Result<Vec<CronEntry>, TableError> {
    let known: Vec<&str> = DEFAULTS
        .iter()
        .map(|(n, _)| *n)
        .chain(["templates_sync", "diag_noop"])
        .collect();
    if let Some(unknown) = overrides.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(TableError::Override(format!(
            "unknown entry {unknown:?} (known: {known:?})"
        )));
    }
    let expression = |name: &str| -> Option<String> {
        let default = DEFAULTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.to_string())
            .or_else(|| (name == "templates_sync").then(template_sync_expression));
        match overrides.get(name) {
            Some(e) if e.trim() == "off" => None,
            Some(e) => Some(e.clone()),
            None => default,
        }
    };
    let mut entries = Vec::new();
    if let Some(e) = expression("prune_jobs") {
        entries.push(CronEntry::new("prune_jobs", &e, || {
            NewJob::new(PruneJobs::default())
        })?);
    }
    if let Some(e) = expression("templates_sync") {
        entries.push(CronEntry::new("templates_sync", &e, || {
            NewJob::new(wharf_shared::templates::SyncAll {})
        })?);
    }
    if let Some(e) = expression("campaigns_launch_due") {
        entries.push(CronEntry::new("campaigns_launch_due", &e, || {
            NewJob::new(wharf_shared::campaigns::LaunchDue {})
        })?);
    }
    if let Some(e) = expression("idle_agents") {
        entries.push(CronEntry::new("idle_agents", &e, || {
            NewJob::new(wharf_shared::cx::idle::IdleAgentsSweep {})
        })?);
    }
    if let Some(e) = expression("maintenance_windows") {
        entries.push(CronEntry::new("maintenance_windows", &e, || {
            NewJob::new(wharf_shared::cx::maintenance::MaintenanceWindowsSweep {})
        })?);
    }
    if let Some(e) = expression("diag_noop") {
        entries.push(CronEntry::new("diag_noop", &e, || {
            NewJob::new(DiagNoop {
                tag: Some("cron".into()),
            })
        })?);
    }
    Ok(entries)
}

/// Parses `name=expr;name=expr`.
pub fn parse_overrides(spec: &str) -> Result<HashMap<String, String>, TableError> {
    spec.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|part| {
            part.split_once('=')
                .map(|(n, e)| (n.trim().to_string(), e.trim().to_string()))
                .ok_or_else(|| TableError::Override(format!("{part:?}: expected name=expression")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn template_sync_intervals() {
        assert_eq!(interval_expression(1800), "0 3/30 * * * *");
        assert_eq!(interval_expression(300), "0 3/5 * * * *");
        assert_eq!(interval_expression(10), "*/10 * * * * *");
        assert_eq!(interval_expression(7200), "0 3 */2 * * *");
        for s in [1, 59, 60, 1800, 3599, 3600, 86_400, 1_000_000] {
            Schedule::from_str(&interval_expression(s)).unwrap();
        }
    }

    #[test]
    fn default_table_prunes_hourly() {
        let t = table(&HashMap::new()).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[1].name, "templates_sync");
        assert_eq!(t[2].name, "campaigns_launch_due");
        assert_eq!(t[3].name, "idle_agents");
        assert_eq!(t[4].name, "maintenance_windows");
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 0).unwrap();
        assert_eq!(
            t[0].latest_tick(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 0).unwrap())
        );
        assert_eq!(
            t[0].next_tick(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 11, 7, 0).unwrap())
        );
        let tick = Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 0).unwrap();
        assert_eq!(
            t[0].latest_tick(tick),
            Some(tick),
            "a tick counts at its own instant"
        );
        let job = t[0].job_for(tick).unwrap();
        assert_eq!(job.kind, "maintenance.prune_jobs");
        assert_eq!(
            job.options.unique_key.as_deref(),
            Some("cron:prune_jobs:1767262020")
        );
    }

    #[test]
    fn overrides_change_disable_and_validate() {
        let o = parse_overrides(
            "prune_jobs=off; templates_sync=off; campaigns_launch_due=off; idle_agents=off; maintenance_windows=off; diag_noop=* * * * * *",
        )
        .unwrap();
        let t = table(&o).unwrap();
        assert_eq!(
            t.iter().map(|e| e.name).collect::<Vec<_>>(),
            vec!["diag_noop"]
        );
        assert!(table(&parse_overrides("nope=* * * * * *").unwrap()).is_err());
        assert!(table(&parse_overrides("prune_jobs=every hour").unwrap()).is_err());
        assert!(parse_overrides("prune_jobs").is_err());
    }
}
