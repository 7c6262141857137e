//! Classification as jobs: `POST /conversations/re-classify` (every conversation not closed and
//! not in an agent's hands: the bot classifies it, then the routing rules place it again) and
//! auto-categorisation of a new conversation when the organization switched it on
//! (`/config/auto-categorize`). A bulk run is a `routing_runs` row of kind RECLASSIFY, so its
//! progress shows at `GET /routing-rules/runs/{id}` like a routing run's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::assist::{self, AssistDeps, AssistError};
use crate::{
    cx::reroute,
    events::{Event, EventPublisher},
    jobs::{self, JobKind, JobsError, Lane, NewJob},
};

/// `conversations.reclassify`: one bulk run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReclassifyRun {
    pub run_id: Uuid,
    pub org_id: Uuid,
}

impl JobKind for ReclassifyRun {
    const KIND: &'static str = "conversations.reclassify";
    const LANE: Lane = Lane::Llm;
    const MAX_ATTEMPTS: i32 = 3;
}

/// `conversations.categorize`: classify one new conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Categorize {
    pub org_id: Uuid,
    pub conversation_id: Uuid,
}

impl JobKind for Categorize {
    const KIND: &'static str = "conversations.categorize";
    const LANE: Lane = Lane::Llm;
    const MAX_ATTEMPTS: i32 = 5;
}

/// Records a RECLASSIFY run and enqueues its job (in the caller's transaction).
pub async fn start_run(
    conn: &mut PgConnection,
    org_id: Uuid,
    requested_by: Option<Uuid>,
) -> Result<Uuid, JobsError> {
    let run_id = reroute::record_run(conn, org_id, requested_by, "RECLASSIFY").await?;
    jobs::enqueue(
        &mut *conn,
        NewJob::new(ReclassifyRun { run_id, org_id }).org(org_id),
    )
    .await?;
    Ok(run_id)
}

/// Enqueues auto-categorisation of a conversation just created, when the organization has it
/// on and a bot config to ask (in the caller's transaction; once per conversation).
pub async fn categorize_new(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<bool, JobsError> {
    let on: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM org_bot_settings s JOIN bot_configs c ON c.org_id = s.org_id AND c.is_active
                         WHERE s.org_id = $1 AND s.auto_categorize)",
    )
    .bind(org_id)
    .fetch_one(&mut *conn)
    .await?;
    if on {
        jobs::enqueue(
            &mut *conn,
            NewJob::new(Categorize {
                org_id,
                conversation_id,
            })
            .org(org_id)
            .unique_key(format!("conversations.categorize:{conversation_id}")),
        )
        .await?;
    }
    Ok(on)
}

/// Classifies one conversation, then routes it again when its category changed (only while no
/// agent holds it: the classifier never takes a conversation away from a person).
async fn classify_and_route(
    d: &AssistDeps<'_>,
    events: &EventPublisher,
    org_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(bool, Option<reroute::Rerouted>), AssistError> {
    let classified = assist::classify(d, org_id, id).await?;
    if !classified.changed() {
        return Ok((false, None));
    }
    let mut tx = d.pool.begin().await?;
    let held: bool = sqlx::query_scalar(
        "SELECT assigned_to IS NOT NULL OR status = 'CLOSED' FROM conversations WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if held {
        return Ok((true, None));
    }
    let routed = reroute::reroute(&mut tx, org_id, id, None, now)
        .await
        .map_err(|e| match e {
            crate::cx::lifecycle::MoveError::Database(db) => AssistError::Db(db),
            other => AssistError::Config(other.to_string()),
        })?;
    tx.commit().await?;
    if let Some(r) = &routed {
        events
            .publish_one(Event::conversation_assigned(
                org_id,
                id,
                Some(r.routed.team_id),
                r.routed.assigned_to,
            ))
            .await;
    }
    Ok((true, routed))
}

/// The `conversations.categorize` job. A conversation that is gone or closed meanwhile is
/// left alone.
pub async fn categorize(
    d: &AssistDeps<'_>,
    events: &EventPublisher,
    job: &Categorize,
) -> Result<(), AssistError> {
    match classify_and_route(d, events, job.org_id, job.conversation_id, Utc::now()).await {
        Ok(_) | Err(AssistError::ConversationNotFound | AssistError::NoActiveConfig) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Conversations classified per progress update.
const BATCH: i64 = 50;

/// The bulk run: every conversation of the organization that is not closed and not assigned
/// to an agent, oldest first. A conversation the provider cannot classify counts as failed
/// and the run goes on; a key the provider refuses (or no active config) fails the run at
/// once, since every other call would fail the same way.
pub async fn run(
    d: &AssistDeps<'_>,
    events: &EventPublisher,
    job: &ReclassifyRun,
) -> Result<(), AssistError> {
    sqlx::query(
        "UPDATE routing_runs SET status = 'RUNNING', started_at = now(), checked = 0, classified = 0,
                failed = 0, rerouted = 0, assigned = 0, error = NULL
          WHERE id = $1",
    )
    .bind(job.run_id)
    .execute(d.pool)
    .await?;
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let batch: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(
            "SELECT created_at, id FROM conversations
              WHERE org_id = $1 AND status <> 'CLOSED' AND assigned_to IS NULL
                AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
              ORDER BY created_at, id LIMIT $4",
        )
        .bind(job.org_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(BATCH)
        .fetch_all(d.pool)
        .await?;
        let Some(last) = batch.last().copied() else {
            break;
        };
        after = Some(last);
        let (mut classified, mut failed, mut rerouted, mut assigned) = (0, 0, 0, 0);
        for (_, id) in &batch {
            match classify_and_route(d, events, job.org_id, *id, Utc::now()).await {
                Ok((changed, routed)) => {
                    classified += i32::from(changed);
                    if let Some(r) = routed {
                        rerouted += i32::from(r.team_changed());
                        assigned += i32::from(r.routed.assigned_to.is_some());
                    }
                }
                Err(AssistError::ConversationNotFound) => {}
                Err(
                    e @ (AssistError::NoActiveConfig
                    | AssistError::Config(_)
                    | AssistError::Provider(crate::llm::LlmError::InvalidKey(_))),
                ) => return Err(e),
                Err(AssistError::Provider(e)) => {
                    tracing::warn!(conversation_id = %id, kind = e.kind(), "re-classify: the provider failed");
                    failed += 1;
                }
                Err(e @ AssistError::Db(_)) => return Err(e),
            }
        }
        sqlx::query(
            "UPDATE routing_runs SET checked = checked + $2, classified = classified + $3,
                    failed = failed + $4, rerouted = rerouted + $5, assigned = assigned + $6
              WHERE id = $1",
        )
        .bind(job.run_id)
        .bind(batch.len() as i32)
        .bind(classified)
        .bind(failed)
        .bind(rerouted)
        .bind(assigned)
        .execute(d.pool)
        .await?;
    }
    sqlx::query("UPDATE routing_runs SET status = 'COMPLETED', finished_at = now() WHERE id = $1")
        .bind(job.run_id)
        .execute(d.pool)
        .await?;
    Ok(())
}

/// Whether a failed run should be retried: only what may pass (the provider or the database
/// being briefly unavailable); a missing config or refused key will not fix itself.
pub fn worth_retrying(e: &AssistError) -> bool {
    match e {
        AssistError::Provider(p) => p.is_retryable(),
        AssistError::Db(_) => true,
        _ => false,
    }
}
