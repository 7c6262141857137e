//! Recording what happened to a running attempt, and rescuing attempts whose worker died.
//!
//! Every write names the attempt it concerns (`id`, `attempt`) and only touches a row that is
//! still `running` that attempt: a worker that lost its lease (it was partitioned away and the
//! job rescued and re-run elsewhere) can never overwrite the newer attempt's outcome.
//! Completions, the common case, are written in batches with one UPDATE.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::JobsError;

/// One attempt of one job: `(id, attempt)`.
pub type AttemptRef = (i64, i32);

/// Marks the attempts completed. Returns how many rows changed.
pub async fn complete_many(pool: &sqlx::PgPool, attempts: &[AttemptRef]) -> Result<u64, JobsError> {
    if attempts.is_empty() {
        return Ok(0);
    }
    let (ids, nums): (Vec<i64>, Vec<i32>) = attempts.iter().copied().unzip();
    let done = sqlx::query(
        r#"
        UPDATE jobs j
        SET state = 'completed', finished_at = now(), lease_expires_at = NULL
        FROM UNNEST($1::int8[], $2::int4[]) AS u(id, attempt)
        WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
        "#,
    )
    .bind(ids)
    .bind(nums)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Records a failed attempt: `retryable` after `retry_in`, or `dead` when it was the last
/// attempt (or `cancelled` if a cancel was requested meanwhile). The error joins the history.
pub async fn fail(
    pool: &sqlx::PgPool,
    (id, attempt): AttemptRef,
    error: &str,
    retry_in: Duration,
) -> Result<bool, JobsError> {
    let done = sqlx::query(
        r#"
        UPDATE jobs
        SET state = CASE WHEN cancel_requested THEN 'cancelled'
                         WHEN attempt >= max_attempts THEN 'dead'
                         ELSE 'retryable' END,
            run_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN run_at
                          ELSE now() + make_interval(secs => $3) END,
            finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN now() END,
            errors = errors || jsonb_build_array(jsonb_build_object(
                         'attempt', attempt, 'at', now(), 'error', $4::text)),
            lease_expires_at = NULL
        WHERE id = $1 AND attempt = $2 AND state = 'running'
        "#,
    )
    .bind(id)
    .bind(attempt)
    .bind(retry_in.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Fails the job permanently (`dead`) whatever attempts remain.
pub async fn discard(
    pool: &sqlx::PgPool,
    (id, attempt): AttemptRef,
    reason: &str,
) -> Result<bool, JobsError> {
    finish_with_error(pool, (id, attempt), "dead", reason).await
}

/// Records that a running attempt stopped because an operator cancelled the job.
pub async fn cancelled(pool: &sqlx::PgPool, (id, attempt): AttemptRef) -> Result<bool, JobsError> {
    finish_with_error(pool, (id, attempt), "cancelled", "cancelled while running").await
}

async fn finish_with_error(
    pool: &sqlx::PgPool,
    (id, attempt): AttemptRef,
    state: &str,
    error: &str,
) -> Result<bool, JobsError> {
    let done = sqlx::query(
        r#"
        UPDATE jobs
        SET state = $3, finished_at = now(), lease_expires_at = NULL,
            errors = errors || jsonb_build_array(jsonb_build_object(
                         'attempt', attempt, 'at', now(), 'error', $4::text))
        WHERE id = $1 AND attempt = $2 AND state = 'running'
        "#,
    )
    .bind(id)
    .bind(attempt)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Defers the job to `until` and gives the attempt back: a snooze is not a failure.
pub async fn snooze(
    pool: &sqlx::PgPool,
    (id, attempt): AttemptRef,
    until: DateTime<Utc>,
) -> Result<bool, JobsError> {
    let done = sqlx::query(
        r#"
        UPDATE jobs
        SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
            finished_at = CASE WHEN cancel_requested THEN now() END,
            run_at = $3, attempt = attempt - 1, lease_expires_at = NULL
        WHERE id = $1 AND attempt = $2 AND state = 'running'
        "#,
    )
    .bind(id)
    .bind(attempt)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Hands attempts back unrun (graceful shutdown ran out of time): `available` now, attempt
/// given back.
pub async fn hand_back(pool: &sqlx::PgPool, attempts: &[AttemptRef]) -> Result<u64, JobsError> {
    if attempts.is_empty() {
        return Ok(0);
    }
    let (ids, nums): (Vec<i64>, Vec<i32>) = attempts.iter().copied().unzip();
    let done: (i64, i64) = sqlx::query_as(
        r#"
        WITH back AS (
            UPDATE jobs j
            SET state = 'available', run_at = now(), attempt = j.attempt - 1,
                lease_expires_at = NULL, attempted_by = NULL
            FROM UNNEST($1::int8[], $2::int4[]) AS u(id, attempt)
            WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'
            RETURNING j.lane
        ),
        notified AS (SELECT pg_notify($3, l.lane) FROM (SELECT DISTINCT lane FROM back) AS l)
        SELECT (SELECT count(*) FROM back), (SELECT count(*) FROM notified)
        "#,
    )
    .bind(ids)
    .bind(nums)
    .bind(super::NOTIFY_CHANNEL)
    .fetch_one(pool)
    .await?;
    Ok(done.0.max(0) as u64)
}

/// A running attempt whose lease expired, put back in the queue (or dead, out of attempts).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rescued {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub attempted_by: Option<String>,
}

/// Rescues up to `limit` running attempts whose lease expired (their worker died or lost the
/// database for longer than the lease). The attempt counts as failed. Safe to run from every
/// worker at once: rows are claimed with `SKIP LOCKED` and re-checked under the lock.
pub async fn rescue_expired(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<Rescued>, JobsError> {
    let rescued = sqlx::query_as::<_, Rescued>(
        r#"
        WITH stuck AS (
            SELECT id FROM jobs
            WHERE state = 'running' AND lease_expires_at < now()
            ORDER BY lease_expires_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs j
        SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                         WHEN j.attempt >= j.max_attempts THEN 'dead'
                         ELSE 'retryable' END,
            finished_at = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts
                               THEN now() END,
            run_at = now(),
            errors = j.errors || jsonb_build_array(jsonb_build_object(
                         'attempt', j.attempt, 'at', now(),
                         'error', 'lease expired: worker ' || COALESCE(j.attempted_by, '?')
                                  || ' stopped heartbeating')),
            lease_expires_at = NULL
        FROM stuck
        WHERE j.id = stuck.id AND j.state = 'running'
        RETURNING j.id, j.kind, j.state, j.attempted_by
        "#,
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rescued)
}
