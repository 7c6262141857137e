//! Payloads of the job kinds the runtime itself ships. Their handlers live in the worker
//! (`worker/src/jobs/`); the payloads live here so the scheduler, the API and tests can enqueue
//! them.

use serde::{Deserialize, Serialize};

use super::{JobKind, Lane};

/// Deletes finished jobs older than the retention (`maintenance.prune_jobs`, hourly by cron).
/// `None` fields use the worker's configured retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneJobs {
    /// Completed and cancelled jobs older than this are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_retention_secs: Option<i64>,
    /// Dead jobs (kept longer: operators inspect and retry them) older than this are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_retention_secs: Option<i64>,
}

impl JobKind for PruneJobs {
    const KIND: &'static str = "maintenance.prune_jobs";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 5;
}

/// Does nothing (tests and the drain benchmark). Diagnostics run in `bulk` unless the job's
/// options name another lane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagNoop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl JobKind for DiagNoop {
    const KIND: &'static str = "diag.noop";
    const LANE: Lane = Lane::Bulk;
}

/// Sleeps `ms` milliseconds, stopping early when cancelled (tests of leases, shutdown, fairness).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagSleep {
    pub ms: u64,
}

impl JobKind for DiagSleep {
    const KIND: &'static str = "diag.sleep";
    const LANE: Lane = Lane::Bulk;
}

/// Fails its first `times` attempts (all of them when `None`), then completes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagFail {
    #[serde(default)]
    pub times: Option<i32>,
    /// The error text to fail with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl JobKind for DiagFail {
    const KIND: &'static str = "diag.fail";
    const LANE: Lane = Lane::Bulk;
    const MAX_ATTEMPTS: i32 = 3;

    /// Short, still exponential with jitter: 0.5 s, 1 s, 2 s, … so tests see retries quickly.
    fn backoff(attempt: i32) -> std::time::Duration {
        super::backoff::exponential_jitter(
            attempt,
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(60),
        )
    }
}

/// Snoozes until `until`, then completes (tests that a snooze spends no attempt: the kind has
/// one attempt and still completes after snoozing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagSnooze {
    pub until: chrono::DateTime<chrono::Utc>,
}

impl JobKind for DiagSnooze {
    const KIND: &'static str = "diag.snooze";
    const LANE: Lane = Lane::Bulk;
    const MAX_ATTEMPTS: i32 = 1;
}
