//! Leases: heartbeats that keep this worker's jobs, and the rescuer that frees jobs of workers
//! that stopped heartbeating.
//!
//! Every running job has `lease_expires_at`. The heartbeat renews the leases of all of this
//! process's jobs in one UPDATE every `lease / 3`, and learns from the same statement which of
//! them an operator wants cancelled, and which are no longer ours (the lease expired during a
//! long outage and the job was rescued). The rescuer runs in every worker; it is a single
//! `SKIP LOCKED` UPDATE, so any number of them can run at once and each expired job is rescued
//! once.

use std::{collections::HashMap, sync::Arc};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use wharf_shared::jobs::{fetch, lifecycle};

use crate::runtime::{Shared, STOP_CANCEL_REQUESTED, STOP_LEASE_LOST};

const RESCUE_BATCH: i64 = 1_000;

pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let lease_secs = shared.config.lease.as_secs_f64();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let snapshot: Vec<(i64, i32)> = shared
            .running()
            .iter()
            .map(|(id, job)| (*id, job.attempt))
            .collect();
        if snapshot.is_empty() {
            continue;
        }
        match fetch::heartbeat(&shared.pool, &snapshot, lease_secs).await {
            Ok(beats) => {
                let alive: HashMap<i64, bool> = beats
                    .into_iter()
                    .map(|b| (b.id, b.cancel_requested))
                    .collect();
                let running = shared.running();
                for (id, attempt) in snapshot {
                    let Some(job) = running.get(&id).filter(|j| j.attempt == attempt) else {
                        continue;
                    };
                    match alive.get(&id) {
                        Some(true) => job.stop(STOP_CANCEL_REQUESTED),
                        Some(false) => {}
                        // Finished and recorded meanwhile (harmless), or rescued elsewhere.
                        None => job.stop(STOP_LEASE_LOST),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, jobs = snapshot.len(), "heartbeat failed"),
        }
    }
}

pub(crate) async fn rescue_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.rescue_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match lifecycle::rescue_expired(&shared.pool, RESCUE_BATCH).await {
            Ok(rescued) if rescued.is_empty() => {}
            Ok(rescued) => {
                for job in &rescued {
                    tracing::warn!(
                        job_id = job.id,
                        kind = job.kind,
                        state = job.state,
                        previous_worker = job.attempted_by.as_deref().unwrap_or("?"),
                        "rescued a job whose lease expired"
                    );
                }
                shared.wake_all();
            }
            Err(e) => tracing::warn!(error = %e, "rescue failed"),
        }
    }
}
