//! `cx.maintenance_window` (at a window's start and end) and `cx.maintenance_windows_sweep`
//! (every minute, from the scheduler): open and close scheduled maintenance windows. The work
//! is `wharf_shared::cx::maintenance::apply_windows`.

use chrono::Utc;
use wharf_shared::{
    cx::maintenance::{self, MaintenanceWindow, MaintenanceWindowsSweep},
    jobs::JobOutcome,
};

use crate::registry::JobContext;

async fn apply(ctx: &JobContext, org_id: Option<uuid::Uuid>) -> anyhow::Result<JobOutcome> {
    let mut tx = ctx.pool.begin().await?;
    let changes = maintenance::apply_windows(&mut tx, org_id, Utc::now()).await?;
    tx.commit().await?;
    if !changes.opened.is_empty() || !changes.closed.is_empty() {
        tracing::info!(opened = ?changes.opened, closed = ?changes.closed, "maintenance windows");
    }
    Ok(JobOutcome::Complete)
}

pub async fn window(ctx: JobContext, job: MaintenanceWindow) -> anyhow::Result<JobOutcome> {
    apply(&ctx, Some(job.org_id)).await
}

pub async fn sweep(ctx: JobContext, _job: MaintenanceWindowsSweep) -> anyhow::Result<JobOutcome> {
    apply(&ctx, None).await
}
