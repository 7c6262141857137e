//! The dispatch loop: one fetch loop per lane, one task per job, and the background tasks that
//! keep leases alive, rescue dead workers' jobs, record outcomes and listen for wake-ups.
//!
//! Why it is shaped like this:
//! - Each lane has its own semaphore, so bulk work can fill every bulk slot and still never take
//!   an inbound one. A lane fetches only as many jobs as it has free slots (no prefetched jobs
//!   waiting without a heartbeat), in one batch.
//! - An idle lane sleeps until a NOTIFY for it arrives or the poll interval (≤ 1 s) passes, so
//!   pickup is immediate when notified and bounded when a notification is lost.
//! - No database error ends the process: every loop logs, backs off (up to 5 s) and carries on.
//!   Outcomes that cannot be written yet are kept and retried; leases that cannot be renewed
//!   expire and the rescuer (in any worker) gives the job to someone else.
//! - Shutdown stops fetching, lets in-flight jobs finish within the grace period, then stops the
//!   rest and hands them back without spending their attempt.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use wharf_shared::{
    db::{self, PoolSettings},
    jobs::{
        backoff, fetch, lifecycle::AttemptRef, FairCursor, FetchedJob, JobOutcome, Lane,
        QueueSignal,
    },
};

use crate::{
    config::WorkerConfig,
    lease, listen, metrics, outcomes,
    registry::{JobContext, Registry},
};

/// Why a running job's token was cancelled.
pub(crate) const STOP_SHUTDOWN: u8 = 0;
pub(crate) const STOP_CANCEL_REQUESTED: u8 = 1;
pub(crate) const STOP_LEASE_LOST: u8 = 2;

/// A job running in this process.
pub(crate) struct Running {
    pub attempt: i32,
    pub token: CancellationToken,
    pub reason: Arc<AtomicU8>,
}

impl Running {
    pub fn stop(&self, reason: u8) {
        if !self.token.is_cancelled() {
            self.reason.store(reason, Ordering::SeqCst);
            self.token.cancel();
        }
    }
}

/// What became of one attempt, waiting to be written.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Complete,
    Retry {
        error: String,
        retry_in: Duration,
    },
    Snooze(DateTime<Utc>),
    Discard(String),
    Cancelled,
    HandBack,
    /// The lease was lost (the job was rescued elsewhere): nothing to write.
    Lost,
}

pub(crate) struct Recorded {
    pub attempt: AttemptRef,
    pub outcome: Outcome,
}

pub(crate) struct Shared {
    pub pool: PgPool,
    pub worker_id: String,
    pub config: WorkerConfig,
    registry: Registry,
    running: Mutex<HashMap<i64, Running>>,
    outcomes: mpsc::UnboundedSender<Recorded>,
    /// Cancelled when the shutdown grace period is over: every running job stops.
    hard_stop: CancellationToken,
    wakers: HashMap<Lane, Arc<Notify>>,
}

impl Shared {
    pub fn running(&self) -> MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn wake_all(&self) {
        for waker in self.wakers.values() {
            waker.notify_one();
        }
    }

    pub fn signal(&self, payload: &str) {
        match QueueSignal::parse(payload) {
            Some(QueueSignal::Lane(lane)) => {
                if let Some(waker) = self.wakers.get(&lane) {
                    waker.notify_one();
                }
            }
            Some(QueueSignal::Cancel(id)) => {
                if let Some(job) = self.running().get(&id) {
                    tracing::info!(job_id = id, "cancel requested; stopping the job");
                    job.stop(STOP_CANCEL_REQUESTED);
                }
            }
            None => tracing::debug!(payload, "ignoring unknown queue notification"),
        }
    }

    fn record(&self, attempt: AttemptRef, outcome: Outcome) {
        if self.outcomes.send(Recorded { attempt, outcome }).is_err() {
            // Only after the recorder stopped; the lease will expire and the job be rescued.
            tracing::error!(
                job_id = attempt.0,
                "outcome recorder stopped; outcome dropped"
            );
        }
    }
}

/// Backoff after consecutive database failures: 200 ms, 400 ms, … capped at 5 s.
pub(crate) fn db_backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

/// Sleeps `d` unless `stop` fires first; returns false when stopped.
pub(crate) async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// Runs the worker with the handlers of this binary until `shutdown` is cancelled, then shuts
/// down gracefully.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = crate::jobs::registry(&config);
    run_with_registry(config, registry, shutdown).await
}

/// [`run`] with a registry of the caller's choosing (tests register extra kinds).
pub async fn run_with_registry(
    config: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = db::lazy_pool(
        &config.database_url,
        PoolSettings {
            max_connections: config.pool_size,
            acquire_timeout: Duration::from_secs(5),
        },
    )?;
    // Start even while Postgres is down: wait for it, as every loop below does.
    let mut failures = 0;
    loop {
        match db::migrate(&pool).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "database not ready; retrying");
                if !pause(db_backoff(failures), &shutdown).await {
                    return Ok(());
                }
            }
        }
    }

    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let worker_id = format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    tracing::info!(
        worker_id,
        lanes = ?config.lanes,
        kinds = ?registry.kinds(),
        "worker starting"
    );

    let background = CancellationToken::new();
    let metrics_task = config
        .metrics_addr
        .map(|addr| tokio::spawn(metrics::serve(addr, background.clone())));

    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        pool: pool.clone(),
        worker_id,
        wakers: config
            .lanes
            .iter()
            .map(|(lane, _)| (*lane, Arc::new(Notify::new())))
            .collect(),
        config: config.clone(),
        registry,
        running: Mutex::new(HashMap::new()),
        outcomes: tx,
        hard_stop: CancellationToken::new(),
    });

    let recorder_done = CancellationToken::new();
    let recorder = tokio::spawn(outcomes::record_loop(
        Arc::clone(&shared),
        rx,
        recorder_done.clone(),
    ));
    let heartbeat = tokio::spawn(lease::heartbeat_loop(
        Arc::clone(&shared),
        background.clone(),
    ));
    let rescuer = tokio::spawn(lease::rescue_loop(Arc::clone(&shared), background.clone()));
    let listener = tokio::spawn(listen::listen_loop(Arc::clone(&shared), background.clone()));

    let tracker = TaskTracker::new();
    let lanes: Vec<_> = config
        .lanes
        .iter()
        .map(|&(lane, slots)| {
            tokio::spawn(lane_loop(
                Arc::clone(&shared),
                lane,
                slots,
                shutdown.clone(),
                tracker.clone(),
            ))
        })
        .collect();

    shutdown.cancelled().await;
    tracing::info!(
        in_flight = tracker.len(),
        "shutting down: no new jobs; waiting for in-flight jobs"
    );
    for lane in lanes {
        let _ = lane.await;
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            unfinished = tracker.len(),
            "grace period over; stopping and handing back unfinished jobs"
        );
        shared.hard_stop.cancel();
        tracker.wait().await;
    }
    recorder_done.cancel();
    let _ = recorder.await;
    background.cancel();
    let _ = tokio::join!(heartbeat, rescuer, listener);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn lane_loop(
    shared: Arc<Shared>,
    lane: Lane,
    slots: usize,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let semaphore = Arc::new(Semaphore::new(slots));
    let Some(wake) = shared.wakers.get(&lane).cloned() else {
        return;
    };
    let mut cursor = FairCursor::new(shared.config.fair_orgs);
    let lease_secs = shared.config.lease.as_secs_f64();
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        if semaphore.available_permits() == 0 {
            tokio::select! {
                permit = Arc::clone(&semaphore).acquire_owned() => drop(permit),
                _ = stop.cancelled() => return,
            }
        }
        let free = semaphore.available_permits().min(shared.config.fetch_batch);
        match fetch::fetch(
            &shared.pool,
            lane,
            free,
            lease_secs,
            &shared.worker_id,
            &mut cursor,
        )
        .await
        {
            Ok(jobs) => {
                failures = 0;
                let full = !jobs.is_empty() && jobs.len() == free;
                for job in jobs {
                    // Only this loop takes permits and it counted the free ones, so this holds.
                    match Arc::clone(&semaphore).try_acquire_owned() {
                        Ok(permit) => start(&shared, job, permit, &tracker),
                        Err(_) => shared.record((job.id, job.attempt), Outcome::HandBack),
                    }
                }
                if full {
                    continue;
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(lane = %lane, error = %e, "fetch failed; backing off");
                if !pause(db_backoff(failures), &stop).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

fn start(
    shared: &Arc<Shared>,
    job: FetchedJob,
    permit: OwnedSemaphorePermit,
    tracker: &TaskTracker,
) {
    let token = shared.hard_stop.child_token();
    let reason = Arc::new(AtomicU8::new(STOP_SHUTDOWN));
    shared.running().insert(
        job.id,
        Running {
            attempt: job.attempt,
            token: token.clone(),
            reason: Arc::clone(&reason),
        },
    );
    let shared = Arc::clone(shared);
    tracker.spawn(async move {
        let attempt = (job.id, job.attempt);
        let outcome = execute(&shared, job, token, &reason).await;
        if matches!(outcome, Outcome::Lost) {
            shared.running().remove(&attempt.0);
        } else {
            shared.record(attempt, outcome);
        }
        drop(permit);
    });
}

async fn execute(
    shared: &Shared,
    job: FetchedJob,
    token: CancellationToken,
    reason: &AtomicU8,
) -> Outcome {
    let queued = (job.attempted_at - job.run_at).to_std().unwrap_or_default();
    ::metrics::histogram!(metrics::ENQUEUE_TO_START, "lane" => job.lane.clone())
        .record(queued.as_secs_f64());
    let started = Instant::now();
    let kind = job.kind.clone();
    let stopped = |reason: &AtomicU8| match reason.load(Ordering::SeqCst) {
        STOP_CANCEL_REQUESTED => Outcome::Cancelled,
        STOP_LEASE_LOST => Outcome::Lost,
        _ => Outcome::HandBack,
    };

    let outcome = match shared.registry.get(&job.kind) {
        None => Outcome::Retry {
            error: format!("no handler for job kind {:?} in this worker", job.kind),
            retry_in: backoff::default_backoff(job.attempt),
        },
        Some(entry) => {
            let ctx = JobContext {
                pool: shared.pool.clone(),
                cancel: token.clone(),
                id: job.id,
                kind: job.kind.clone(),
                lane: job.lane.clone(),
                org_id: job.org_id,
                attempt: job.attempt,
                max_attempts: job.max_attempts,
            };
            match (entry.run)(ctx, job.payload) {
                Err(e) => Outcome::Discard(format!("payload does not decode as {}: {e}", job.kind)),
                Ok(future) => {
                    let result = tokio::select! {
                        biased;
                        _ = token.cancelled() => None,
                        r = AssertUnwindSafe(future).catch_unwind() => Some(r),
                    };
                    match result {
                        None => stopped(reason),
                        // A handler that gave up because it was told to stop did not fail.
                        Some(Ok(Err(_))) | Some(Err(_)) if token.is_cancelled() => stopped(reason),
                        Some(Ok(Ok(JobOutcome::Complete))) => Outcome::Complete,
                        Some(Ok(Ok(JobOutcome::Snooze(until)))) => Outcome::Snooze(until),
                        Some(Ok(Ok(JobOutcome::Discard(why)))) => Outcome::Discard(why),
                        Some(Ok(Err(e))) => Outcome::Retry {
                            error: format!("{e:#}"),
                            retry_in: (entry.backoff)(job.attempt),
                        },
                        Some(Err(panic)) => Outcome::Retry {
                            error: format!("handler panicked: {}", panic_message(&panic)),
                            retry_in: (entry.backoff)(job.attempt),
                        },
                    }
                }
            }
        }
    };

    ::metrics::histogram!(metrics::RUN_SECONDS, "kind" => kind.clone())
        .record(started.elapsed().as_secs_f64());
    match &outcome {
        Outcome::Retry { error, .. } | Outcome::Discard(error) => {
            ::metrics::counter!(metrics::FAILURES, "kind" => kind.clone()).increment(1);
            tracing::warn!(
                job_id = job.id,
                kind,
                attempt = job.attempt,
                error,
                "job attempt failed"
            );
        }
        _ => {}
    }
    outcome
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}
