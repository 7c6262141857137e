//! Pausing, resuming and cancelling campaigns: the state changes behind the API's control
//! routes and the console's buttons, so both act the same way.
//!
//! Each change is a conditional UPDATE on the current status, so two people pressing at once
//! (or the dispatcher completing the campaign meanwhile) never apply it twice; the caller learns
//! what happened from [`Outcome`].

use sqlx::PgPool;
use uuid::Uuid;

use crate::jobs::JobsError;

/// What a control action found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// No such campaign in the organization (or deleted).
    NotFound,
    /// The campaign is in a status the action does not apply to (that status).
    WrongState(String),
}

async fn current_status(db: &PgPool, org_id: Uuid, id: Uuid) -> Result<Option<String>, JobsError> {
    Ok(sqlx::query_scalar(
        "SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?)
}

/// Pauses the RUNNING campaigns among `ids`; returns how many were paused. The dispatcher and
/// the send jobs' gate stop sending within a second.
pub async fn pause_many(db: &PgPool, org_id: Uuid, ids: &[Uuid]) -> Result<u64, JobsError> {
    Ok(sqlx::query(
        "UPDATE campaigns SET status = 'PAUSED', paused_at = now(), paused_reason = 'paused by a user'
          WHERE id = ANY($1) AND org_id = $2 AND status = 'RUNNING'",
    )
    .bind(ids)
    .bind(org_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// Pauses a RUNNING campaign.
pub async fn pause(db: &PgPool, org_id: Uuid, id: Uuid) -> Result<Outcome, JobsError> {
    let Some(status) = current_status(db, org_id, id).await? else {
        return Ok(Outcome::NotFound);
    };
    if pause_many(db, org_id, &[id]).await? == 0 {
        return Ok(Outcome::WrongState(status));
    }
    Ok(Outcome::Done)
}

/// Resumes a PAUSED campaign and enqueues its dispatcher, in one transaction.
pub async fn resume(db: &PgPool, org_id: Uuid, id: Uuid) -> Result<Outcome, JobsError> {
    let Some(status) = current_status(db, org_id, id).await? else {
        return Ok(Outcome::NotFound);
    };
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE campaigns SET status = 'RUNNING', paused_reason = NULL, paused_at = NULL
          WHERE id = $1 AND org_id = $2 AND status = 'PAUSED'",
    )
    .bind(id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(Outcome::WrongState(status));
    }
    super::enqueue_dispatch(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok(Outcome::Done)
}

/// Cancels the unfinished campaigns among `ids`; returns how many were cancelled.
pub async fn cancel_many(db: &PgPool, org_id: Uuid, ids: &[Uuid]) -> Result<u64, JobsError> {
    let mut tx = db.begin().await?;
    let cancelled: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE campaigns SET status = 'CANCELLED', cancelled_at = now()
          WHERE id = ANY($1) AND org_id = $2 AND status IN ('DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED') AND deleted_at IS NULL
          RETURNING id",
    )
    .bind(ids)
    .bind(org_id)
    .fetch_all(&mut *tx)
    .await?;
    // Recipients not dispatched yet are skipped now; messages already queued are dropped by
    // the send job's gate when their job runs (within a second or two).
    sqlx::query(
        "UPDATE campaign_recipients SET status = 'skipped', skip_reason = 'cancelled', updated_at = now()
          WHERE campaign_id = ANY($1) AND status = 'pending'",
    )
    .bind(&cancelled)
    .execute(&mut *tx)
    .await?;
    super::unschedule_launch(&mut tx, &cancelled).await?;
    tx.commit().await?;
    Ok(cancelled.len() as u64)
}

/// Cancels a campaign that has not finished: recipients not sent yet are skipped.
pub async fn cancel(db: &PgPool, org_id: Uuid, id: Uuid) -> Result<Outcome, JobsError> {
    let Some(status) = current_status(db, org_id, id).await? else {
        return Ok(Outcome::NotFound);
    };
    if cancel_many(db, org_id, &[id]).await? == 0 {
        return Ok(Outcome::WrongState(status));
    }
    Ok(Outcome::Done)
}
