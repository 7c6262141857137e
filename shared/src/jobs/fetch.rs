//! Taking jobs: fair, batched, lock-free between workers.
//!
//! A fetch is two short statements.
//!
//! 1. **Walk the orgs** that have pending jobs in the lane: a loose index scan (recursive CTE)
//!    over `jobs_fetch_idx (lane, fair_key, …)` that hops from one org to the next, at most
//!    `max_orgs` hops, starting at a cursor the worker rotates. It costs one index probe per org
//!    however deep any org's backlog is.
//! 2. **Claim** up to `limit` jobs round-robin over those orgs: per org the first
//!    `ceil(limit / orgs)` due jobs in priority order (a LATERAL index scan), ranked so every
//!    org's first job comes before any org's second, then locked with `FOR UPDATE SKIP LOCKED`
//!    (workers never wait on each other) and marked running with a lease in the same statement.
//!    A paused lane (`job_lanes.paused`) yields nothing.
//!
//! So with 20k jobs of org A queued, org B's single job is in the very next batch: fairness
//! costs a few index probes, not a scan of the backlog.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{JobsError, Lane};

/// The fairness key of platform jobs (`org_id IS NULL`); the smallest uuid, so walks start here.
pub const PLATFORM_FAIR_KEY: Uuid = Uuid::nil();

/// A job claimed by a worker: state `running`, leased to it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FetchedJob {
    pub id: i64,
    pub kind: String,
    pub lane: String,
    pub org_id: Option<Uuid>,
    pub fair_key: Uuid,
    pub payload: serde_json::Value,
    pub priority: i16,
    /// This attempt's number, 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: DateTime<Utc>,
}

/// Where the next fetch of a lane starts its walk over orgs; one per lane per worker.
#[derive(Debug, Clone)]
pub struct FairCursor {
    next: Uuid,
    max_orgs: i32,
}

impl FairCursor {
    pub fn new(max_orgs: i32) -> Self {
        Self { next: PLATFORM_FAIR_KEY, max_orgs: max_orgs.max(1) }
    }
}

impl Default for FairCursor {
    fn default() -> Self {
        Self::new(64)
    }
}

/// Claims up to `limit` due jobs of `lane` for `worker_id`, fairly across orgs, with a lease of
/// `lease_secs`. Returns nothing when the lane is paused.
pub async fn fetch(
    pool: &sqlx::PgPool,
    lane: Lane,
    limit: usize,
    lease_secs: f64,
    worker_id: &str,
    cursor: &mut FairCursor,
) -> Result<Vec<FetchedJob>, JobsError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let orgs: Vec<Uuid> = sqlx::query_scalar(
        r#"
        WITH RECURSIVE walk(fair_key, depth) AS (
            (SELECT j.fair_key, 1 FROM jobs j
              WHERE j.lane = $1 AND j.state IN ('available', 'scheduled', 'retryable')
                AND j.fair_key >= $2
              ORDER BY j.fair_key LIMIT 1)
            UNION ALL
            SELECT (SELECT j.fair_key FROM jobs j
                     WHERE j.lane = $1 AND j.state IN ('available', 'scheduled', 'retryable')
                       AND j.fair_key > w.fair_key
                     ORDER BY j.fair_key LIMIT 1),
                   w.depth + 1
            FROM walk w
            WHERE w.fair_key IS NOT NULL AND w.depth < $3
        )
        SELECT fair_key FROM walk WHERE fair_key IS NOT NULL
        "#,
    )
    .bind(lane.as_str())
    .bind(cursor.next)
    .bind(cursor.max_orgs)
    .fetch_all(pool)
    .await?;

    // Rotate: a walk that stopped at its hop limit continues from where it stopped (that org is
    // served again, harmlessly); a walk that reached the end starts over from the beginning.
    cursor.next = match orgs.last() {
        Some(last) if orgs.len() >= cursor.max_orgs as usize => *last,
        _ => PLATFORM_FAIR_KEY,
    };
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let per_org = limit.div_ceil(orgs.len()) as i64;

    let jobs = sqlx::query_as::<_, FetchedJob>(
        r#"
        WITH candidates AS (
            SELECT c.id, c.rank
            FROM UNNEST($2::uuid[]) AS o(fair_key)
            CROSS JOIN LATERAL (
                SELECT j.id, row_number() OVER (ORDER BY j.priority, j.run_at, j.id) AS rank
                FROM jobs j
                WHERE j.lane = $1 AND j.fair_key = o.fair_key
                  AND j.state IN ('available', 'scheduled', 'retryable')
                  AND j.run_at <= now()
                ORDER BY j.priority, j.run_at, j.id
                LIMIT $3
            ) AS c
        ),
        locked AS (
            SELECT j.id
            FROM jobs j
            JOIN candidates c ON c.id = j.id
            WHERE j.state IN ('available', 'scheduled', 'retryable')
              AND j.run_at <= now()
              AND NOT EXISTS (SELECT 1 FROM job_lanes l WHERE l.lane = $1 AND l.paused)
            ORDER BY c.rank, j.priority, j.run_at, j.id
            LIMIT $4
            FOR UPDATE OF j SKIP LOCKED
        )
        UPDATE jobs j
        SET state = 'running',
            attempt = j.attempt + 1,
            attempted_at = now(),
            heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => $5),
            attempted_by = $6,
            cancel_requested = false
        FROM locked
        WHERE j.id = locked.id
        RETURNING j.id, j.kind, j.lane, j.org_id, j.fair_key, j.payload, j.priority, j.attempt,
                  j.max_attempts, j.run_at, j.created_at, j.attempted_at
        "#,
    )
    .bind(lane.as_str())
    .bind(&orgs)
    .bind(per_org)
    .bind(limit as i64)
    .bind(lease_secs)
    .bind(worker_id)
    .fetch_all(pool)
    .await?;
    Ok(jobs)
}

/// What a heartbeat learned about one of the worker's running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Heartbeat {
    pub id: i64,
    pub cancel_requested: bool,
}

/// Renews the leases of the given running attempts `(id, attempt)`. Jobs missing from the result
/// are no longer this worker's (finished, or rescued after a lost lease): stop working on them.
pub async fn heartbeat(
    pool: &sqlx::PgPool,
    running: &[(i64, i32)],
    lease_secs: f64,
) -> Result<Vec<Heartbeat>, JobsError> {
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts): (Vec<i64>, Vec<i32>) = running.iter().copied().unzip();
    let beats = sqlx::query_as::<_, Heartbeat>(
        r#"
        UPDATE jobs j
        SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3)
        FROM UNNEST($1::int8[], $2::int4[]) AS u(id, attempt)
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
        RETURNING j.id, j.cancel_requested
        "#,
    )
    .bind(ids)
    .bind(attempts)
    .bind(lease_secs)
    .fetch_all(pool)
    .await?;
    Ok(beats)
}
