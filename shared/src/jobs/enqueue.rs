//! Enqueueing: inside the caller's transaction, so a committed domain write has its job and a
//! rolled-back one has none.
//!
//! Both functions take any sqlx executor (`&mut *tx`, `&mut conn`, `&pool`) and run ONE
//! statement: the insert plus a single `pg_notify` per lane touched. Postgres delivers
//! notifications at commit, so an idle worker wakes the moment the job becomes visible and never
//! for a job that was rolled back; a bulk insert of 100k rows sends one notification, not 100k.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{JobKind, JobsError, NewJob, RawJob, NOTIFY_CHANNEL};

/// Enqueues one job. Returns its id, or `None` when `unique_key` matched an unfinished job and
/// the insert was skipped.
pub async fn enqueue<'e, E, T>(executor: E, job: NewJob<T>) -> Result<Option<i64>, JobsError>
where
    E: sqlx::PgExecutor<'e>,
    T: JobKind,
{
    enqueue_raw(executor, job.into_raw()?).await
}

/// Enqueues one already-encoded job (the scheduler's table holds these).
pub async fn enqueue_raw<'e, E>(executor: E, job: RawJob) -> Result<Option<i64>, JobsError>
where
    E: sqlx::PgExecutor<'e>,
{
    let id: Option<i64> = sqlx::query_scalar(
        r#"
        WITH ins AS (
            INSERT INTO jobs (kind, lane, org_id, payload, priority, run_at, state, max_attempts,
                              unique_key)
            VALUES ($1, $2, $3, $4, $5, COALESCE($6::timestamptz, now()),
                    CASE WHEN $6::timestamptz > now() THEN 'scheduled' ELSE 'available' END,
                    $7, $8)
            ON CONFLICT DO NOTHING
            RETURNING id, lane
        ),
        notified AS (SELECT pg_notify($9, lane) FROM ins)
        SELECT ins.id FROM ins CROSS JOIN (SELECT count(*) FROM notified) AS n
        "#,
    )
    .bind(&job.kind)
    .bind(job.lane.as_str())
    .bind(job.options.org_id)
    .bind(&job.payload)
    .bind(job.options.priority)
    .bind(job.options.run_at)
    .bind(job.max_attempts)
    .bind(&job.options.unique_key)
    .bind(NOTIFY_CHANNEL)
    .fetch_optional(executor)
    .await?;
    Ok(id)
}

/// Enqueues many jobs of one kind in one statement (UNNEST over arrays). Returns the ids of the
/// inserted jobs; jobs skipped by their unique key are absent.
pub async fn enqueue_many<'e, E, T>(
    executor: E,
    jobs: Vec<NewJob<T>>,
) -> Result<Vec<i64>, JobsError>
where
    E: sqlx::PgExecutor<'e>,
    T: JobKind,
{
    let raw = jobs
        .into_iter()
        .map(NewJob::into_raw)
        .collect::<Result<Vec<_>, _>>()?;
    enqueue_many_raw(executor, raw).await
}

macro_rules! bulk_insert_sql {
    ($on_conflict:literal) => {
        concat!(
            r#"
        WITH ins AS (
            INSERT INTO jobs (kind, lane, org_id, payload, priority, run_at, state, max_attempts,
                              unique_key)
            SELECT u.kind, u.lane, u.org_id, u.payload::jsonb, u.priority,
                   COALESCE(u.run_at, now()),
                   CASE WHEN u.run_at > now() THEN 'scheduled' ELSE 'available' END,
                   u.max_attempts, u.unique_key
            FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::int2[],
                        $6::timestamptz[], $7::int4[], $8::text[])
                 AS u(kind, lane, org_id, payload, priority, run_at, max_attempts, unique_key)
            "#,
            $on_conflict,
            r#"
            RETURNING id, lane
        ),
        notified AS (SELECT pg_notify($9, l.lane) FROM (SELECT DISTINCT lane FROM ins) AS l)
        SELECT ins.id FROM ins CROSS JOIN (SELECT count(*) FROM notified) AS n
        "#
        )
    };
}
const BULK_INSERT: &str = bulk_insert_sql!("");
const BULK_INSERT_SKIPPING_DUPLICATES: &str = bulk_insert_sql!("ON CONFLICT DO NOTHING");

/// [`enqueue_many`] for already-encoded jobs, possibly of different kinds and lanes.
pub async fn enqueue_many_raw<'e, E>(executor: E, jobs: Vec<RawJob>) -> Result<Vec<i64>, JobsError>
where
    E: sqlx::PgExecutor<'e>,
{
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let n = jobs.len();
    let mut kinds = Vec::with_capacity(n);
    let mut lanes = Vec::with_capacity(n);
    let mut orgs: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut run_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut unique_keys: Vec<Option<String>> = Vec::with_capacity(n);
    for job in jobs {
        kinds.push(job.kind);
        lanes.push(job.lane.as_str());
        orgs.push(job.options.org_id);
        // Text is cheaper to bind in bulk than jsonb; Postgres parses it once per row.
        payloads.push(job.payload.to_string());
        priorities.push(job.options.priority);
        run_ats.push(job.options.run_at);
        max_attempts.push(job.max_attempts);
        unique_keys.push(job.options.unique_key);
    }
    // ON CONFLICT makes every row a speculative insertion (about a quarter slower at 100k
    // rows); only pay for it when a key can conflict.
    let sql = if unique_keys.iter().any(Option::is_some) {
        BULK_INSERT_SKIPPING_DUPLICATES
    } else {
        BULK_INSERT
    };
    let ids: Vec<i64> = sqlx::query_scalar(sql)
        .bind(kinds)
        .bind(lanes)
        .bind(orgs)
        .bind(payloads)
        .bind(priorities)
        .bind(run_ats)
        .bind(max_attempts)
        .bind(unique_keys)
        .bind(NOTIFY_CHANNEL)
        .fetch_all(executor)
        .await?;
    Ok(ids)
}
