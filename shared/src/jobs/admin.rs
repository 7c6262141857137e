//! Operator functions over the queue: what the `/api/v1/admin/jobs` and `/admin/queues` routes
//! wrap.
//!
//! Every function that reads or changes jobs takes `org: Option<Uuid>`: a super admin passes
//! `None` and sees every tenant's (and the platform's) jobs; an org admin passes `Some(org_id)`
//! and another tenant's job simply does not exist for them. Results are plain serde structs
//! (camelCase) the API returns as they are. Lane pause/resume is cluster-wide and therefore
//! super-admin only; the caller checks that.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobState, JobsError, Lane, NOTIFY_CHANNEL};

/// Hard maximum page size for [`list_jobs`].
pub const MAX_PAGE_SIZE: u32 = 500;

/// Filters of a job list or a bulk action. All set fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub lane: Option<Lane>,
    /// Only meaningful for a super admin (an org admin is scoped to their org anyway).
    pub org_id: Option<Uuid>,
}

/// Which jobs a bulk action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobSelection {
    Ids(Vec<i64>),
    Filter(JobFilter),
}

/// One row of a job list.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: i64,
    pub kind: String,
    pub lane: String,
    pub org_id: Option<Uuid>,
    pub state: String,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub unique_key: Option<String>,
    pub last_error: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    pub page: u32,
    pub limit: u32,
    pub total: i64,
}

/// One failed attempt in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub error: String,
}

/// Everything about one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub payload: serde_json::Value,
    pub errors: Vec<AttemptError>,
    pub attempted_by: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
}

/// Health of one lane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneStats {
    pub lane: Lane,
    pub paused: bool,
    /// Jobs by state; every state is present (0 when none).
    pub counts: BTreeMap<String, i64>,
    /// Age of the oldest job that is due but not yet started, in seconds (`None`: no backlog).
    pub oldest_pending_age_secs: Option<f64>,
    /// Jobs that finished (any final state) in the last minute: the lane's jobs/min.
    pub finished_last_minute: i64,
}

const SUMMARY_COLUMNS: &str = "id, kind, lane, org_id, state, priority, attempt, max_attempts, \
     run_at, created_at, attempted_at, finished_at, unique_key, errors->-1->>'error' AS last_error";

/// The WHERE clause shared by lists and bulk actions: $1 scope org, $2 state, $3 kind, $4 lane,
/// $5 filter org, $6 ids (NULL: no id restriction).
const SELECTION_WHERE: &str = "($1::uuid IS NULL OR org_id = $1) \
     AND ($2::text IS NULL OR state = $2) \
     AND ($3::text IS NULL OR kind = $3) \
     AND ($4::text IS NULL OR lane = $4) \
     AND ($5::uuid IS NULL OR org_id = $5) \
     AND ($6::int8[] IS NULL OR id = ANY($6))";

struct Bound {
    org: Option<Uuid>,
    state: Option<&'static str>,
    kind: Option<String>,
    lane: Option<&'static str>,
    filter_org: Option<Uuid>,
    ids: Option<Vec<i64>>,
}

impl Bound {
    fn new(org: Option<Uuid>, selection: &JobSelection) -> Self {
        match selection {
            JobSelection::Ids(ids) => Self {
                org,
                state: None,
                kind: None,
                lane: None,
                filter_org: None,
                ids: Some(ids.clone()),
            },
            JobSelection::Filter(f) => Self {
                org,
                state: f.state.map(JobState::as_str),
                kind: f.kind.clone(),
                lane: f.lane.map(Lane::as_str),
                filter_org: f.org_id,
                ids: None,
            },
        }
    }

    fn bind<'q, O>(
        self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(self.org)
            .bind(self.state)
            .bind(self.kind)
            .bind(self.lane)
            .bind(self.filter_org)
            .bind(self.ids)
    }
}

/// Lists jobs matching `filter`, newest first. `page` is 1-based; `limit` is capped at
/// [`MAX_PAGE_SIZE`].
pub async fn list_jobs(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
    filter: &JobFilter,
    page: u32,
    limit: u32,
) -> Result<JobPage, JobsError> {
    let page = page.max(1);
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let selection = JobSelection::Filter(filter.clone());
    let (total,): (i64,) = Bound::new(org, &selection)
        .bind(sqlx::query_as(&format!(
            "SELECT count(*) FROM jobs WHERE {SELECTION_WHERE}"
        )))
        .fetch_one(pool)
        .await?;
    let jobs: Vec<JobSummary> = Bound::new(org, &selection)
        .bind(sqlx::query_as(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE {SELECTION_WHERE} \
             ORDER BY id DESC LIMIT $7 OFFSET $8"
        )))
        .bind(i64::from(limit))
        .bind(i64::from(page - 1) * i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(JobPage {
        jobs,
        page,
        limit,
        total,
    })
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    summary: JobSummary,
    payload: serde_json::Value,
    errors: serde_json::Value,
    attempted_by: Option<String>,
    heartbeat_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
}

/// One job with its payload and attempt history; `None` if it does not exist for this caller.
pub async fn get_job(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
    id: i64,
) -> Result<Option<JobDetail>, JobsError> {
    let row: Option<DetailRow> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, payload, errors, attempted_by, heartbeat_at, lease_expires_at, \
         cancel_requested FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)"
    ))
    .bind(id)
    .bind(org)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| JobDetail {
        summary: r.summary,
        payload: r.payload,
        // History written by this runtime always parses; anything else is shown as empty
        // rather than failing the whole request.
        errors: serde_json::from_value(r.errors).unwrap_or_default(),
        attempted_by: r.attempted_by,
        heartbeat_at: r.heartbeat_at,
        lease_expires_at: r.lease_expires_at,
        cancel_requested: r.cancel_requested,
    }))
}

/// Makes dead, cancelled, retryable or scheduled jobs available now. The attempt history stays;
/// the attempt budget is extended so at least one more attempt runs. Returns how many jobs were
/// revived. A job whose unique key is now held by another unfinished job is a
/// [`JobsError::Conflict`].
pub async fn retry_jobs(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
    selection: &JobSelection,
) -> Result<u64, JobsError> {
    let sql = format!(
        r#"
        WITH revived AS (
            UPDATE jobs
            SET state = 'available', run_at = now(), finished_at = NULL, cancel_requested = false,
                lease_expires_at = NULL, max_attempts = GREATEST(max_attempts, attempt + 1)
            WHERE {SELECTION_WHERE}
              AND state IN ('dead', 'cancelled', 'retryable', 'scheduled')
            RETURNING lane
        ),
        notified AS (SELECT pg_notify($7, l.lane) FROM (SELECT DISTINCT lane FROM revived) AS l)
        SELECT (SELECT count(*) FROM revived), (SELECT count(*) FROM notified)
        "#
    );
    let result: Result<(i64, i64), sqlx::Error> = Bound::new(org, selection)
        .bind(sqlx::query_as(&sql))
        .bind(NOTIFY_CHANNEL)
        .fetch_one(pool)
        .await;
    match result {
        Ok((n, _)) => Ok(n.max(0) as u64),
        Err(e) if crate::db::is_unique_violation(&e, "jobs_unique_key_idx") => Err(
            JobsError::Conflict("another unfinished job holds the same unique key".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// [`retry_jobs`] for one job; `false` when it does not exist for this caller or is not in a
/// retryable state.
pub async fn retry_job(pool: &sqlx::PgPool, org: Option<Uuid>, id: i64) -> Result<bool, JobsError> {
    Ok(retry_jobs(pool, org, &JobSelection::Ids(vec![id])).await? == 1)
}

/// Cancels jobs: pending ones become `cancelled` at once; running ones are asked to stop (their
/// worker sees the request through NOTIFY at once, or its next heartbeat) and end `cancelled`.
/// Returns how many jobs were cancelled or asked to stop.
pub async fn cancel_jobs<'e, E>(
    executor: E,
    org: Option<Uuid>,
    selection: &JobSelection,
) -> Result<u64, JobsError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let sql = format!(
        r#"
        WITH hit AS (
            UPDATE jobs
            SET state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END,
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
                cancel_requested = (state = 'running')
            WHERE {SELECTION_WHERE}
              AND state IN ('available', 'scheduled', 'retryable', 'running')
            RETURNING id, state
        ),
        notified AS (
            SELECT pg_notify($7, 'cancel:' || id) FROM hit WHERE state = 'running'
        )
        SELECT (SELECT count(*) FROM hit), (SELECT count(*) FROM notified)
        "#
    );
    let (n, _): (i64, i64) = Bound::new(org, selection)
        .bind(sqlx::query_as(&sql))
        .bind(NOTIFY_CHANNEL)
        .fetch_one(executor)
        .await?;
    Ok(n.max(0) as u64)
}

/// [`cancel_jobs`] for one job; `false` when it does not exist for this caller or already
/// finished.
pub async fn cancel_job(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
    id: i64,
) -> Result<bool, JobsError> {
    Ok(cancel_jobs(pool, org, &JobSelection::Ids(vec![id])).await? == 1)
}

/// Per-lane counts by state, backlog age, throughput and pause flag, for every lane.
pub async fn queue_stats(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
) -> Result<Vec<LaneStats>, JobsError> {
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT lane, state, count(*) FROM jobs WHERE ($1::uuid IS NULL OR org_id = $1) \
         GROUP BY lane, state",
    )
    .bind(org)
    .fetch_all(pool)
    .await?;
    let oldest: Vec<(String, f64)> = sqlx::query_as(
        "SELECT lane, EXTRACT(EPOCH FROM now() - min(run_at))::float8 FROM jobs \
         WHERE state IN ('available', 'scheduled', 'retryable') AND run_at <= now() \
           AND ($1::uuid IS NULL OR org_id = $1) \
         GROUP BY lane",
    )
    .bind(org)
    .fetch_all(pool)
    .await?;
    let finished: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lane, count(*) FROM jobs \
         WHERE state IN ('completed', 'cancelled', 'dead') \
           AND finished_at > now() - interval '1 minute' \
           AND ($1::uuid IS NULL OR org_id = $1) \
         GROUP BY lane",
    )
    .bind(org)
    .fetch_all(pool)
    .await?;
    let paused: Vec<(String, bool)> = sqlx::query_as("SELECT lane, paused FROM job_lanes")
        .fetch_all(pool)
        .await?;

    Ok(Lane::ALL
        .into_iter()
        .map(|lane| {
            let name = lane.as_str();
            let mut by_state: BTreeMap<String, i64> = JobState::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect();
            for (l, state, n) in &counts {
                if l == name {
                    by_state.insert(state.clone(), *n);
                }
            }
            LaneStats {
                lane,
                paused: paused.iter().any(|(l, p)| l == name && *p),
                counts: by_state,
                oldest_pending_age_secs: oldest
                    .iter()
                    .find(|(l, _)| l == name)
                    .map(|(_, age)| age.max(0.0)),
                finished_last_minute: finished
                    .iter()
                    .find(|(l, _)| l == name)
                    .map_or(0, |(_, n)| *n),
            }
        })
        .collect())
}

/// Stops every worker in the cluster from taking jobs of `lane` (their next fetch, within a
/// second). Running jobs finish.
pub async fn pause_lane(pool: &sqlx::PgPool, lane: Lane) -> Result<(), JobsError> {
    set_paused(pool, lane, true).await
}

/// Lets workers take jobs of `lane` again; idle workers are woken at once.
pub async fn resume_lane(pool: &sqlx::PgPool, lane: Lane) -> Result<(), JobsError> {
    set_paused(pool, lane, false).await
}

async fn set_paused(pool: &sqlx::PgPool, lane: Lane, paused: bool) -> Result<(), JobsError> {
    sqlx::query(
        r#"
        WITH up AS (
            INSERT INTO job_lanes (lane, paused) VALUES ($1, $2)
            ON CONFLICT (lane) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()
            RETURNING lane
        )
        SELECT pg_notify($3, lane) FROM up
        "#,
    )
    .bind(lane.as_str())
    .bind(paused)
    .bind(NOTIFY_CHANNEL)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes finished jobs older than their retention, in chunks of `chunk` rows so no statement
/// holds locks for long. Completed and cancelled jobs use `finished_retention`; dead jobs (kept
/// longer for inspection) use `dead_retention`. Returns how many were deleted.
pub async fn prune_finished(
    pool: &sqlx::PgPool,
    finished_retention: Duration,
    dead_retention: Duration,
    chunk: i64,
) -> Result<u64, JobsError> {
    let chunk = chunk.max(1);
    let mut total = 0u64;
    loop {
        let done = sqlx::query(
            r#"
            DELETE FROM jobs WHERE id IN (
                (SELECT id FROM jobs
                  WHERE state IN ('completed', 'cancelled')
                    AND finished_at < now() - make_interval(secs => $1)
                  LIMIT $3)
                UNION ALL
                (SELECT id FROM jobs
                  WHERE state = 'dead' AND finished_at < now() - make_interval(secs => $2)
                  LIMIT $3)
            )
            "#,
        )
        .bind(finished_retention.as_secs_f64())
        .bind(dead_retention.as_secs_f64())
        .bind(chunk)
        .execute(pool)
        .await?;
        total += done.rows_affected();
        if done.rows_affected() < chunk as u64 {
            return Ok(total);
        }
    }
}

/// Jobs finished in one minute: completed, and dead (out of attempts).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MinuteThroughput {
    pub minute: DateTime<Utc>,
    pub completed: i64,
    pub dead: i64,
}

/// Jobs finished per minute over the last hour: 60 points, oldest first, empty minutes as 0.
pub async fn throughput_last_hour(
    pool: &sqlx::PgPool,
    org: Option<Uuid>,
) -> Result<Vec<MinuteThroughput>, JobsError> {
    Ok(sqlx::query_as(
        "WITH minutes AS (
             SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes',
                                    date_trunc('minute', now()), interval '1 minute') AS minute),
         done AS (
             SELECT date_trunc('minute', finished_at) AS minute,
                    count(*) FILTER (WHERE state = 'completed') AS completed,
                    count(*) FILTER (WHERE state = 'dead') AS dead
               FROM jobs
              WHERE state IN ('completed', 'cancelled', 'dead')
                AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
                AND ($1::uuid IS NULL OR org_id = $1)
              GROUP BY 1)
         SELECT m.minute, coalesce(d.completed, 0) AS completed, coalesce(d.dead, 0) AS dead
           FROM minutes m LEFT JOIN done d USING (minute) ORDER BY m.minute",
    )
    .bind(org)
    .fetch_all(pool)
    .await?)
}
