//! Taking jobs: fair, batched, lock-free between workers.
//!
//! A fetch is two short statements.
//!
//! 1. **Walk the orgs** that have pending jobs in the lane: a loose index scan (recursive CTE)
//!    over `jobs_fetch_idx (lane, fair_key, …)` that hops from one org to the next, at most
//!    `max_orgs` hops, starting right after the org this worker served last and wrapping
//!    around. It costs one index probe per org however deep any org's backlog is (0.8 ms for
//!    64 orgs over 100k pending rows).
//! 2. **Claim** up to `limit` jobs round-robin over those orgs: per org the first
//!    `ceil(limit / orgs)` due jobs in priority order (a LATERAL index scan), taken rank by rank
//!    in walk order so every org's first job comes before any org's second, locked with
//!    `FOR UPDATE SKIP LOCKED` (workers never wait on each other) and marked running with a
//!    lease in the same statement (2–3 ms for a batch of 100 at 100k rows). A paused lane
//!    (`job_lanes.paused`) yields nothing.
//!
//! The worker remembers where the round-robin stopped, so even a fetch of a single job (one
//! free slot) goes to the next org in turn: with 20k jobs of org A queued, org B's job is among
//! the next few claims. Priority orders jobs within an org; across orgs, turns come first.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{JobsError, Lane};

/// The fairness key of platform jobs (`org_id IS NULL`); the smallest uuid.
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

/// Where a lane's round-robin over orgs stands; one per lane per worker.
#[derive(Debug, Clone)]
pub struct FairCursor {
    /// The org served last; the next walk starts right after it and wraps around to it.
    last: Option<Uuid>,
    max_orgs: usize,
}

impl FairCursor {
    pub fn new(max_orgs: i32) -> Self {
        Self {
            last: None,
            max_orgs: max_orgs.max(1) as usize,
        }
    }
}

impl Default for FairCursor {
    fn default() -> Self {
        Self::new(64)
    }
}

/// The loose index scan: up to `$3` distinct orgs with pending jobs in lane `$1`, in key order,
/// from `$2` (exclusive or inclusive, see the two instances below) up to `$4` inclusive.
macro_rules! walk_sql {
    ($first:literal) => {
        concat!(
            r#"
        WITH RECURSIVE walk(fair_key, depth) AS (
            (SELECT j.fair_key, 1 FROM jobs j
              WHERE j.lane = $1 AND j.state IN ('available', 'scheduled', 'retryable')
                AND j.fair_key "#,
            $first,
            r#" $2 AND j.fair_key <= $4
              ORDER BY j.fair_key LIMIT 1)
            UNION ALL
            SELECT (SELECT j.fair_key FROM jobs j
                     WHERE j.lane = $1 AND j.state IN ('available', 'scheduled', 'retryable')
                       AND j.fair_key > w.fair_key AND j.fair_key <= $4
                     ORDER BY j.fair_key LIMIT 1),
                   w.depth + 1
            FROM walk w
            WHERE w.fair_key IS NOT NULL AND w.depth < $3
        )
        SELECT fair_key FROM walk WHERE fair_key IS NOT NULL
        "#
        )
    };
}
const WALK_AFTER: &str = walk_sql!(">");
const WALK_FROM: &str = walk_sql!(">=");

async fn walk(
    pool: &sqlx::PgPool,
    sql: &'static str,
    lane: Lane,
    from: Uuid,
    to: Uuid,
    max: usize,
) -> Result<Vec<Uuid>, JobsError> {
    Ok(sqlx::query_scalar(sql)
        .bind(lane.as_str())
        .bind(from)
        .bind(max as i32)
        .bind(to)
        .fetch_all(pool)
        .await?)
}

/// Claims up to `limit` due jobs of `lane` for `worker_id`, round-robin across orgs, with a
/// lease of `lease_secs`. Returns nothing when the lane is paused.
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
    // Orgs after the one served last, then (wrapping around) those up to and including it.
    let max_key = Uuid::max();
    let mut orgs = match cursor.last {
        None => {
            walk(
                pool,
                WALK_FROM,
                lane,
                PLATFORM_FAIR_KEY,
                max_key,
                cursor.max_orgs,
            )
            .await?
        }
        Some(last) => walk(pool, WALK_AFTER, lane, last, max_key, cursor.max_orgs).await?,
    };
    if let Some(last) = cursor.last {
        if orgs.len() < cursor.max_orgs {
            let room = cursor.max_orgs - orgs.len();
            orgs.extend(walk(pool, WALK_FROM, lane, PLATFORM_FAIR_KEY, last, room).await?);
        }
    }
    if orgs.is_empty() {
        cursor.last = None;
        return Ok(Vec::new());
    }
    let per_org = limit.div_ceil(orgs.len()) as i64;

    // Candidates are ranked within their org (priority, then due time) and taken rank by rank
    // in walk order: every org's first job before any org's second. The candidate scan itself
    // skips rows another worker holds: without that, concurrent fetchers of one org all pick
    // the same first N candidates, the later ones find them locked and come back empty (two
    // worker processes drained slower than one).
    let jobs = sqlx::query_as::<_, FetchedJob>(
        r#"
        WITH candidates AS (
            SELECT c.id, c.rank, o.pos
            FROM UNNEST($2::uuid[]) WITH ORDINALITY AS o(fair_key, pos)
            CROSS JOIN LATERAL (
                SELECT s.id, row_number() OVER (ORDER BY s.priority, s.run_at, s.id) AS rank
                FROM (
                    SELECT j.id, j.priority, j.run_at
                    FROM jobs j
                    WHERE j.lane = $1 AND j.fair_key = o.fair_key
                      AND j.state IN ('available', 'scheduled', 'retryable')
                      AND j.run_at <= now()
                    ORDER BY j.priority, j.run_at, j.id
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                ) AS s
            ) AS c
        ),
        locked AS (
            SELECT j.id
            FROM jobs j
            JOIN candidates c ON c.id = j.id
            WHERE j.state IN ('available', 'scheduled', 'retryable')
              AND j.run_at <= now()
              AND NOT EXISTS (SELECT 1 FROM job_lanes l WHERE l.lane = $1 AND l.paused)
            ORDER BY c.rank, c.pos
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

    cursor.last = Some(stop_point(&orgs, &jobs).unwrap_or(orgs[orgs.len() - 1]));
    Ok(jobs)
}

/// The org the round-robin stopped at: the last claimed job in (rank, walk position) order,
/// i.e. among the orgs that got the most jobs, the one latest in the walk.
fn stop_point(orgs: &[Uuid], jobs: &[FetchedJob]) -> Option<Uuid> {
    let counts: Vec<usize> = orgs
        .iter()
        .map(|org| jobs.iter().filter(|j| j.fair_key == *org).count())
        .collect();
    let most = *counts.iter().max()?;
    if most == 0 {
        return None;
    }
    orgs.iter()
        .zip(&counts)
        .rev()
        .find(|(_, n)| **n == most)
        .map(|(org, _)| *org)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(org: Uuid) -> FetchedJob {
        FetchedJob {
            id: 0,
            kind: String::new(),
            lane: String::new(),
            org_id: Some(org),
            fair_key: org,
            payload: serde_json::Value::Null,
            priority: 0,
            attempt: 1,
            max_attempts: 1,
            run_at: Utc::now(),
            created_at: Utc::now(),
            attempted_at: Utc::now(),
        }
    }

    #[test]
    fn the_round_robin_stops_at_the_last_org_of_the_deepest_round() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let orgs = [a, b, c];
        assert_eq!(stop_point(&orgs, &[job(a)]), Some(a));
        assert_eq!(stop_point(&orgs, &[job(a), job(b)]), Some(b));
        assert_eq!(
            stop_point(&orgs, &[job(a), job(b), job(c), job(a)]),
            Some(a)
        );
        assert_eq!(stop_point(&orgs, &[]), None);
    }
}
