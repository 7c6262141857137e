//! WhatsApp message templates (ARCHITECTURE.md, "Template sync"): the job kinds that talk to Meta
//! (submit, edit, delete, sync), the database side of a sync, and the two entry points other
//! flows call: [`apply_status_update`] (the `message_template_status_update` webhook) and
//! [`request_sync`] (a send failed with 132001/132015/132016).
//!
//! Statuses: Meta's (PENDING, APPROVED, REJECTED, PAUSED, ...) plus DRAFT (local only, never
//! sent to Meta, never touched by a sync), PENDING_SUBMISSION (a submit/edit/delete job is on
//! its way) and REMOVED (soft-deleted here, or gone at Meta).

pub mod manage;
pub mod rules;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::jobs::{self, backoff, JobKind, JobsError, Lane, NewJob};

/// Every status a template row can have.
pub const STATUSES: [&str; 16] = [
    "DRAFT",
    "PENDING_SUBMISSION",
    "PENDING",
    "APPROVED",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "FLAGGED",
    "REINSTATED",
    "PENDING_DELETION",
    "DELETED",
    "ARCHIVED",
    "LIMIT_EXCEEDED",
    "LOCKED",
    "REMOVED",
];

/// Statuses Meta lets us edit (ARCHITECTURE.md, "Meta facts").
pub const EDITABLE: [&str; 3] = ["APPROVED", "REJECTED", "PAUSED"];

/// Meta's status (or webhook event) as one of ours; `None` for values we do not store
/// (UNARCHIVED, unknown future ones: a sync fetches the real status instead).
pub fn meta_status(s: &str) -> Option<&'static str> {
    let up = s.trim().to_uppercase();
    STATUSES
        .iter()
        .copied()
        .find(|x| *x == up && !matches!(*x, "DRAFT" | "PENDING_SUBMISSION" | "REMOVED"))
}

/// Budget codes: the management API is throttled (80007/80008) or the app is (4).
pub fn is_throttle_code(code: Option<i64>) -> bool {
    matches!(code, Some(4 | 80007 | 80008))
}

/// Submits a template (`message_templates.id`, status PENDING_SUBMISSION) to Meta.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitTemplate {
    pub template_id: Uuid,
}

/// Edits a template's components (and category) at Meta. On a refusal the row goes back to
/// `previous_status` with Meta's reason, and a sync restores Meta's components.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditTemplate {
    pub template_id: Uuid,
    pub previous_status: String,
    /// Sent only when it changes (Meta refuses a category change for approved templates).
    pub category: Option<String>,
}

/// Deletes a template at Meta (by name and hsm_id) and marks it REMOVED.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTemplate {
    pub template_id: Uuid,
    pub previous_status: String,
}

/// Pulls every template of an account's WABA from Meta (cursor paging) and upserts them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncAccount {
    pub account_id: Uuid,
}

/// The scheduler's tick: one [`SyncAccount`] per connected account (unique per account).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncAll {}

fn management_backoff(attempt: i32) -> Duration {
    backoff::exponential_jitter(attempt, Duration::from_secs(5), Duration::from_secs(600))
}

// Management calls (submit/edit/delete) run in `outbound`: a user is waiting to see the
// template leave PENDING_SUBMISSION, they are few and short, and `maintenance` (2 slots) may be
// busy pruning. Syncs are background work bounded by Meta's management budget: `maintenance`.
impl JobKind for SubmitTemplate {
    const KIND: &'static str = "templates.submit";
    const LANE: Lane = Lane::Outbound;
    const MAX_ATTEMPTS: i32 = 10;

    fn backoff(attempt: i32) -> Duration {
        management_backoff(attempt)
    }
}

impl JobKind for EditTemplate {
    const KIND: &'static str = "templates.edit";
    const LANE: Lane = Lane::Outbound;
    const MAX_ATTEMPTS: i32 = 10;

    fn backoff(attempt: i32) -> Duration {
        management_backoff(attempt)
    }
}

impl JobKind for DeleteTemplate {
    const KIND: &'static str = "templates.delete";
    const LANE: Lane = Lane::Outbound;
    const MAX_ATTEMPTS: i32 = 10;

    fn backoff(attempt: i32) -> Duration {
        management_backoff(attempt)
    }
}

impl JobKind for SyncAccount {
    const KIND: &'static str = "templates.sync_account";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 8;

    fn backoff(attempt: i32) -> Duration {
        management_backoff(attempt)
    }
}

impl JobKind for SyncAll {
    const KIND: &'static str = "templates.sync_all";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 5;
}

/// The unique key of an account's sync: one unfinished sync per account.
pub fn sync_key(account_id: Uuid) -> String {
    format!("templates.sync:{account_id}")
}

/// Enqueues a sync of the account's templates unless one is already waiting or running.
/// Cheap to call repeatedly (one insert that the unique key turns into a no-op); call it in
/// the caller's transaction. Returns the job id, or `None` when one was already queued.
pub async fn request_sync(
    conn: &mut PgConnection,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<Option<i64>, JobsError> {
    let job = NewJob::new(SyncAccount { account_id })
        .org(org_id)
        .unique_key(sync_key(account_id));
    jobs::enqueue(&mut *conn, job).await
}

/// Enqueues the submit of a template (one unfinished per template).
pub async fn enqueue_submit(
    conn: &mut PgConnection,
    org_id: Uuid,
    template_id: Uuid,
) -> Result<Option<i64>, JobsError> {
    let job = NewJob::new(SubmitTemplate { template_id })
        .org(org_id)
        .unique_key(format!("templates.submit:{template_id}"));
    jobs::enqueue(&mut *conn, job).await
}

/// Applies a `message_template_status_update` webhook at once: the template with Meta's id
/// (or, for a submission whose answer we never got, the one with its name and language) takes
/// the new status; REJECTED keeps the reason. Templates removed here stay REMOVED; drafts are
/// never touched. An event about a template we do not know enqueues a sync of the WABA's
/// accounts. Returns how many rows changed. Runs in the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn apply_status_update(
    conn: &mut PgConnection,
    org_id: Uuid,
    waba_id: &str,
    template_id: Option<&str>,
    name: &str,
    language: &str,
    event: &str,
    reason: Option<&str>,
) -> Result<u64, JobsError> {
    let language = rules::normalize_language(language);
    let reason = reason.filter(|r| !r.is_empty() && *r != "NONE");
    let Some(status) = meta_status(event) else {
        // UNARCHIVED and unknown events: ask Meta for the real status.
        return sync_waba(conn, org_id, waba_id).await.map(|_| 0);
    };
    let mut changed = 0;
    if let Some(id) = template_id {
        changed = sqlx::query(
            "UPDATE message_templates
                SET status = CASE WHEN deleted_at IS NULL THEN $4 ELSE status END,
                    rejected_reason = CASE WHEN $4 = 'REJECTED' THEN COALESCE($5, rejected_reason)
                                           WHEN $4 = 'APPROVED' THEN NULL ELSE rejected_reason END
              WHERE org_id = $1 AND waba_id = $2 AND meta_template_id = $3
                AND status NOT IN ('DRAFT', 'PENDING_SUBMISSION', 'PENDING_DELETION')",
        )
        .bind(org_id)
        .bind(waba_id)
        .bind(id)
        .bind(status)
        .bind(reason)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    if changed == 0 && !name.is_empty() {
        // A submission whose response was lost: adopt Meta's id.
        changed = sqlx::query(
            "UPDATE message_templates
                SET status = $5, meta_template_id = COALESCE($6, meta_template_id),
                    rejected_reason = CASE WHEN $5 = 'REJECTED' THEN $7 ELSE NULL END
              WHERE org_id = $1 AND waba_id = $2 AND name = $3 AND language = $4 AND meta_template_id IS NULL
                AND status NOT IN ('DRAFT', 'REMOVED')",
        )
        .bind(org_id)
        .bind(waba_id)
        .bind(name)
        .bind(&language)
        .bind(status)
        .bind(template_id)
        .bind(reason)
        .execute(&mut *conn)
        .await
        .or_else(|e| {
            // Another row already holds this Meta id: nothing to adopt.
            if crate::db::is_unique_violation(&e, "message_templates_meta_key") {
                Ok(Default::default())
            } else {
                Err(e)
            }
        })?
        .rows_affected();
    }
    if changed == 0 {
        tracing::info!(%org_id, waba_id, name, language, event, "status update for a template we do not have; syncing");
        sync_waba(conn, org_id, waba_id).await?;
    }
    Ok(changed)
}

/// Requests a sync of every connected account of the org on this WABA.
async fn sync_waba(
    conn: &mut PgConnection,
    org_id: Uuid,
    waba_id: &str,
) -> Result<usize, JobsError> {
    let accounts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM whatsapp_accounts WHERE org_id = $1 AND waba_id = $2 AND status = 'CONNECTED'",
    )
    .bind(org_id)
    .bind(waba_id)
    .fetch_all(&mut *conn)
    .await?;
    for a in &accounts {
        request_sync(conn, org_id, *a).await?;
    }
    Ok(accounts.len())
}

/// The account a sync works on.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub org_id: Uuid,
    pub account_id: Uuid,
    pub waba_id: String,
}

/// Templates per page of a sync (default 100; a WABA has at most 250).
static SYNC_PAGE_SIZE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);

/// Overrides the page size of syncs in this process (tests use small pages to page through).
pub fn set_sync_page_size(n: u32) {
    SYNC_PAGE_SIZE.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

pub fn sync_page_size() -> u32 {
    SYNC_PAGE_SIZE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Fields asked for on every listed template.
pub const SYNC_FIELDS: &str =
    "id,name,language,status,category,previous_category,parameter_format,components,quality_score,rejected_reason";

/// Upserts one template as Meta listed it, by Meta's id; a local submission without an id
/// (lost response) with the same name and language adopts it; a stale row with another id for
/// that name and language is REMOVED (Meta keeps one per WABA). Drafts are never touched and
/// templates a user removed stay removed. Returns false when the template was not stored
/// (malformed or unknown status).
pub async fn upsert_from_meta(
    conn: &mut PgConnection,
    t: &SyncTarget,
    tpl: &Value,
) -> Result<bool, sqlx::Error> {
    let Some(meta_id) = tpl["id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| tpl["id"].as_u64().map(|n| n.to_string()))
    else {
        return Ok(false);
    };
    let name = tpl["name"].as_str().unwrap_or_default();
    let language = rules::normalize_language(tpl["language"].as_str().unwrap_or_default());
    let category = tpl["category"].as_str().unwrap_or_default().to_uppercase();
    let Some(status) = tpl["status"].as_str().and_then(meta_status) else {
        tracing::warn!(meta_id, status = ?tpl["status"], "template with a status we do not know; skipped");
        return Ok(false);
    };
    if !rules::valid_name(name)
        || !rules::CATEGORIES.contains(&category.as_str())
        || language.is_empty()
    {
        tracing::warn!(meta_id, name, "malformed template from Meta; skipped");
        return Ok(false);
    }
    let parameter_format = match tpl["parameter_format"]
        .as_str()
        .map(str::to_uppercase)
        .as_deref()
    {
        Some("NAMED") => "NAMED",
        _ => "POSITIONAL",
    };
    let components =
        rules::normalize_components(tpl.get("components").unwrap_or(&Value::Array(vec![])));
    let quality = tpl["quality_score"]["score"]
        .as_str()
        .or(tpl["quality_score"].as_str());
    let rejected = tpl["rejected_reason"].as_str().filter(|r| *r != "NONE");
    let previous_category = tpl["previous_category"].as_str();
    let set = "status = CASE WHEN deleted_at IS NULL THEN $3 ELSE 'REMOVED' END, category = $4, parameter_format = $5,
               components = $6, quality_score = COALESCE($7, quality_score), rejected_reason = $8,
               previous_category = COALESCE($9, previous_category), last_synced_at = now()";
    // An edit or delete on its way to Meta keeps its status and components until its job ran
    // (what Meta lists now is the version before it).
    let guarded = "status = CASE WHEN deleted_at IS NOT NULL THEN 'REMOVED'
                                 WHEN status IN ('PENDING_SUBMISSION', 'PENDING_DELETION') THEN status ELSE $3 END,
               category = CASE WHEN status = 'PENDING_SUBMISSION' THEN category ELSE $4 END, parameter_format = $5,
               components = CASE WHEN status = 'PENDING_SUBMISSION' THEN components ELSE $6 END,
               quality_score = COALESCE($7, quality_score), rejected_reason = $8,
               previous_category = COALESCE($9, previous_category), last_synced_at = now()";
    let updated = sqlx::query(&format!(
        "UPDATE message_templates SET {guarded}
          WHERE account_id = $1 AND meta_template_id = $2 AND $10::text IS NOT NULL AND $11::text IS NOT NULL"
    ))
    .bind(t.account_id)
    .bind(&meta_id)
    .bind(status)
    .bind(&category)
    .bind(parameter_format)
    .bind(&components)
    .bind(quality)
    .bind(rejected)
    .bind(previous_category)
    .bind(name)
    .bind(&language)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() > 0 {
        return Ok(true);
    }
    let adopted = sqlx::query(&format!(
        "UPDATE message_templates SET {set}, meta_template_id = $2
          WHERE account_id = $1 AND name = $10 AND language = $11 AND meta_template_id IS NULL
            AND status NOT IN ('DRAFT', 'REMOVED')"
    ))
    .bind(t.account_id)
    .bind(&meta_id)
    .bind(status)
    .bind(&category)
    .bind(parameter_format)
    .bind(&components)
    .bind(quality)
    .bind(rejected)
    .bind(previous_category)
    .bind(name)
    .bind(&language)
    .execute(&mut *conn)
    .await?;
    if adopted.rows_affected() > 0 {
        return Ok(true);
    }
    sqlx::query(
        "UPDATE message_templates SET status = 'REMOVED'
          WHERE account_id = $1 AND name = $2 AND language = $3 AND meta_template_id IS DISTINCT FROM $4
            AND status NOT IN ('DRAFT', 'REMOVED')",
    )
    .bind(t.account_id)
    .bind(name)
    .bind(&language)
    .bind(&meta_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO message_templates (org_id, account_id, waba_id, meta_template_id, name, language, category,
                status, parameter_format, components, quality_score, rejected_reason, previous_category, last_synced_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())
         ON CONFLICT DO NOTHING",
    )
    .bind(t.org_id)
    .bind(t.account_id)
    .bind(&t.waba_id)
    .bind(&meta_id)
    .bind(name)
    .bind(&language)
    .bind(&category)
    .bind(status)
    .bind(parameter_format)
    .bind(&components)
    .bind(quality)
    .bind(rejected)
    .bind(previous_category)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// After a complete pass: templates of the account that Meta no longer lists are REMOVED.
/// Drafts and submissions newer than the pass (`started`) are left alone. Returns the count.
pub async fn mark_vanished(
    conn: &mut PgConnection,
    account_id: Uuid,
    seen_meta_ids: &[String],
    started: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE message_templates SET status = 'REMOVED', last_synced_at = now()
          WHERE account_id = $1 AND meta_template_id IS NOT NULL AND NOT (meta_template_id = ANY($2))
            AND status NOT IN ('DRAFT', 'REMOVED') AND (submitted_at IS NULL OR submitted_at < $3)",
    )
    .bind(account_id)
    .bind(seen_meta_ids)
    .bind(started)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// The connected accounts a [`SyncAll`] fans out to, as sync jobs (unique per account).
pub async fn enqueue_sync_all(conn: &mut PgConnection) -> Result<Vec<i64>, JobsError> {
    let accounts: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, org_id FROM whatsapp_accounts WHERE status = 'CONNECTED' ORDER BY created_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    let jobs: Vec<NewJob<SyncAccount>> = accounts
        .into_iter()
        .map(|(account_id, org_id)| {
            NewJob::new(SyncAccount { account_id })
                .org(org_id)
                .unique_key(sync_key(account_id))
        })
        .collect();
    jobs::enqueue_many(&mut *conn, jobs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map() {
        assert_eq!(meta_status("approved"), Some("APPROVED"));
        assert_eq!(meta_status("PENDING_DELETION"), Some("PENDING_DELETION"));
        assert_eq!(meta_status("UNARCHIVED"), None);
        assert_eq!(meta_status("DRAFT"), None);
        assert!(is_throttle_code(Some(80008)) && !is_throttle_code(Some(100)));
    }
}
