//! Writing outcomes: completions in batches (one UPDATE for everything finished since the last
//! write), everything else one row at a time.
//!
//! Outcomes wait in a channel until written. When the database is away they stay there and the
//! writer retries with backoff, so an outage delays bookkeeping but loses nothing; a job is
//! removed from this process's running set (and so from its heartbeats) only once its outcome
//! is stored.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wharf_shared::jobs::{lifecycle, JobsError};

use crate::runtime::{db_backoff, Outcome, Recorded, Shared};

const MAX_BATCH: usize = 2_000;
/// Attempts to write what is left once the worker is stopping; after that the leases expire
/// and the jobs are rescued.
const FINAL_ATTEMPTS: u32 = 5;

pub(crate) async fn record_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Recorded>,
    done: CancellationToken,
) {
    let mut buf: Vec<Recorded> = Vec::new();
    loop {
        let next = tokio::select! {
            m = rx.recv() => m,
            _ = done.cancelled() => {
                rx.close();
                while let Ok(m) = rx.try_recv() {
                    buf.push(m);
                }
                write_all(&shared, &mut buf, true).await;
                return;
            }
        };
        let Some(first) = next else {
            return;
        };
        buf.push(first);
        while buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => buf.push(m),
                Err(_) => break,
            }
        }
        write_all(&shared, &mut buf, false).await;
    }
}

async fn write_all(shared: &Shared, buf: &mut Vec<Recorded>, stopping: bool) {
    let mut failures = 0u32;
    while !buf.is_empty() {
        match write_batch(shared, buf).await {
            Ok(()) => {}
            Err(e) => {
                failures += 1;
                if stopping && failures >= FINAL_ATTEMPTS {
                    tracing::error!(
                        error = %e,
                        unwritten = buf.len(),
                        "giving up on outcomes; their leases will expire and the jobs be rescued"
                    );
                    return;
                }
                tracing::warn!(error = %e, pending = buf.len(), "cannot record job outcomes; retrying");
                tokio::time::sleep(db_backoff(failures)).await;
            }
        }
    }
}

/// Writes what it can; written outcomes leave `buf`. Stops at the first database error.
async fn write_batch(shared: &Shared, buf: &mut Vec<Recorded>) -> Result<(), JobsError> {
    let completed: Vec<_> = buf
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Complete))
        .map(|r| r.attempt)
        .collect();
    let handed_back: Vec<_> = buf
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::HandBack))
        .map(|r| r.attempt)
        .collect();
    if !completed.is_empty() {
        lifecycle::complete_many(&shared.pool, &completed).await?;
        forget(shared, buf, |r| matches!(r.outcome, Outcome::Complete));
    }
    if !handed_back.is_empty() {
        let n = lifecycle::hand_back(&shared.pool, &handed_back).await?;
        tracing::info!(jobs = n, "handed unfinished jobs back to the queue");
        forget(shared, buf, |r| matches!(r.outcome, Outcome::HandBack));
    }
    while let Some(r) = buf.last() {
        let pool = &shared.pool;
        match &r.outcome {
            Outcome::Retry { error, retry_in } => {
                lifecycle::fail(pool, r.attempt, error, *retry_in).await?;
            }
            Outcome::Snooze(until) => {
                lifecycle::snooze(pool, r.attempt, *until).await?;
            }
            Outcome::Discard(reason) => {
                lifecycle::discard(pool, r.attempt, reason).await?;
            }
            Outcome::Cancelled => {
                lifecycle::cancelled(pool, r.attempt).await?;
            }
            Outcome::Complete | Outcome::HandBack | Outcome::Lost => {}
        }
        if let Some(r) = buf.pop() {
            shared.running().remove(&r.attempt.0);
        }
    }
    Ok(())
}

fn forget(shared: &Shared, buf: &mut Vec<Recorded>, written: impl Fn(&Recorded) -> bool) {
    let mut running = shared.running();
    buf.retain(|r| {
        if written(r) {
            running.remove(&r.attempt.0);
            false
        } else {
            true
        }
    });
}
