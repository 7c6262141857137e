//! Diagnostic kinds: the runtime's own tests and benchmarks drive the queue with these.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use wharf_shared::jobs::{
    builtin::{DiagFail, DiagNoop, DiagSleep, DiagSnooze},
    JobOutcome,
};

use crate::registry::JobContext;

pub async fn noop(_ctx: JobContext, _payload: DiagNoop) -> anyhow::Result<JobOutcome> {
    Ok(JobOutcome::Complete)
}

/// Sleeps, but stops as soon as the job is cancelled (that is what cancellation tests observe).
pub async fn sleep(ctx: JobContext, payload: DiagSleep) -> anyhow::Result<JobOutcome> {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(payload.ms)) => Ok(JobOutcome::Complete),
        _ = ctx.cancel.cancelled() => bail!("cancelled after sleeping part of {} ms", payload.ms),
    }
}

pub async fn fail(ctx: JobContext, payload: DiagFail) -> anyhow::Result<JobOutcome> {
    match payload.times {
        Some(times) if ctx.attempt > times => Ok(JobOutcome::Complete),
        _ => bail!(
            "{} (attempt {})",
            payload
                .message
                .as_deref()
                .unwrap_or("diag.fail failing on purpose"),
            ctx.attempt
        ),
    }
}

pub async fn snooze(_ctx: JobContext, payload: DiagSnooze) -> anyhow::Result<JobOutcome> {
    if Utc::now() < payload.until {
        Ok(JobOutcome::Snooze(payload.until))
    } else {
        Ok(JobOutcome::Complete)
    }
}
