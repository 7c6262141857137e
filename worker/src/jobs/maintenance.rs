//! `maintenance.prune_jobs`: deletes finished jobs past their retention, so the jobs table
//! holds the backlog plus a bounded history instead of growing forever.

use std::time::Duration;

use wharf_shared::jobs::{admin, builtin::PruneJobs, JobOutcome};

use crate::registry::JobContext;

/// Rows deleted per statement: short locks, steady progress.
const PRUNE_CHUNK: i64 = 5_000;

/// The worker's configured retention (`JOBS_RETENTION_HOURS`, `JOBS_DEAD_RETENTION_HOURS`).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub finished: Duration,
    pub dead: Duration,
}

pub async fn prune_jobs(
    ctx: JobContext,
    payload: PruneJobs,
    retention: Retention,
) -> anyhow::Result<JobOutcome> {
    let secs = |v: Option<i64>, default: Duration| {
        v.map_or(default, |s| Duration::from_secs(s.max(0).unsigned_abs()))
    };
    let finished = secs(payload.completed_retention_secs, retention.finished);
    let dead = secs(payload.dead_retention_secs, retention.dead);
    let deleted = admin::prune_finished(&ctx.pool, finished, dead, PRUNE_CHUNK).await?;
    tracing::info!(job_id = ctx.id, deleted, "pruned finished jobs");
    Ok(JobOutcome::Complete)
}
