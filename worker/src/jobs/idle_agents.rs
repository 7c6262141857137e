//! `cx.idle_agents_sweep` (every minute, from the scheduler) and `cx.idle_agents` (one
//! organization's pass). The detection itself is `wharf_shared::cx::idle`.

use chrono::Utc;
use wharf_shared::{
    cx::idle::{self, IdleAgents, IdleAgentsSweep},
    jobs::JobOutcome,
};

use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn sweep(ctx: JobContext, _job: IdleAgentsSweep) -> anyhow::Result<JobOutcome> {
    let mut tx = ctx.pool.begin().await?;
    let n = idle::enqueue_sweep(&mut tx, ctx.id).await?;
    tx.commit().await?;
    tracing::debug!(organizations = n, "idle-agent passes enqueued");
    Ok(JobOutcome::Complete)
}

pub async fn run(ctx: JobContext, deps: WorkerDeps, job: IdleAgents) -> anyhow::Result<JobOutcome> {
    let mut tx = ctx.pool.begin().await?;
    let settings = idle::load_settings(&mut tx, job.org_id).await?;
    if !settings.idle_enabled {
        return Ok(JobOutcome::Complete);
    }
    let report = idle::run(&mut tx, job.org_id, &settings, Utc::now()).await?;
    tx.commit().await?;
    let events: Vec<_> = report.moved.iter().map(|m| m.event(job.org_id)).collect();
    deps.events.publish(&events).await;
    if !report.moved.is_empty() {
        tracing::info!(org_id = %job.org_id, moved = report.moved.len(), "idle agents' conversations moved on");
    }
    Ok(JobOutcome::Complete)
}
