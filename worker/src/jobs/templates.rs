//! Template jobs (ARCHITECTURE.md, "Template sync"): `templates.submit`, `.edit`, `.delete` call
//! Meta's management API for one template; `templates.sync_account` pulls a WABA's templates
//! page by page; `templates.sync_all` fans out one sync per connected account.
//!
//! Every management call spends the WABA's hourly budget. A throttled call (80007, 80008, 4)
//! snoozes the job until Meta says access is back (`estimated_time_to_regain_access`, at least
//! a minute) without spending an attempt; a sync that sees the budget nearly spent between
//! pages stops and snoozes as well instead of pushing the WABA over the limit.
//!
//! Refusals (terminal errors) are written on the template (`last_error`) and the row goes back
//! to where it was (a failed submit back to DRAFT), so the user sees why; the job is discarded
//! with the same reason.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::{
    accounts::{self, AccountCredentials},
    jobs::JobOutcome,
    meta::{BucUsage, ErrorClass, MetaError},
    templates::{
        self as tpl, DeleteTemplate, EditTemplate, SubmitTemplate, SyncAccount, SyncAll, SyncTarget,
    },
};

use crate::{deps::WorkerDeps, registry::JobContext, registry::Registry};

/// Registers the template kinds.
pub fn register(registry: &mut Registry, deps: WorkerDeps) {
    let (d1, d2, d3, d4) = (deps.clone(), deps.clone(), deps.clone(), deps);
    registry
        .register::<SubmitTemplate, _, _>(move |ctx, job| submit(ctx, d1.clone(), job))
        .register::<EditTemplate, _, _>(move |ctx, job| edit(ctx, d2.clone(), job))
        .register::<DeleteTemplate, _, _>(move |ctx, job| delete(ctx, d3.clone(), job))
        .register::<SyncAccount, _, _>(move |ctx, job| sync_account(ctx, d4.clone(), job))
        .register::<SyncAll, _, _>(sync_all);
}

/// Stop a sync between pages when the budget is this spent (percent).
const BUDGET_CEILING: u64 = 90;

#[derive(sqlx::FromRow)]
struct Row {
    org_id: Uuid,
    account_id: Uuid,
    meta_template_id: Option<String>,
    name: String,
    language: String,
    category: String,
    status: String,
    parameter_format: String,
    components: Value,
}

async fn load(ctx: &JobContext, id: Uuid) -> anyhow::Result<Option<Row>> {
    Ok(sqlx::query_as(
        "SELECT org_id, account_id, meta_template_id, name, language, category, status, parameter_format,
                components
           FROM message_templates WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&ctx.pool)
    .await?)
}

async fn creds(
    ctx: &JobContext,
    deps: &WorkerDeps,
    account_id: Uuid,
) -> anyhow::Result<Option<AccountCredentials>> {
    accounts::credentials(&ctx.pool, &deps.secrets, account_id).await
}

fn describe(e: &MetaError) -> String {
    let mut s = format!("{} ({})", e.title(), e.code().unwrap_or(0));
    if let Some(d) = e.details() {
        s.push_str(": ");
        s.push_str(&d);
    }
    s
}

/// When to retry a throttled call: Meta's estimate, at least a minute.
fn throttle_until(usage: Option<BucUsage>) -> JobOutcome {
    let minutes = usage.map_or(0, |u| u.minutes_to_regain).max(1);
    JobOutcome::snooze_for(Duration::from_secs(minutes * 60))
}

/// What to do with a Meta error of a management call. `Ok(None)` means "refused": the caller
/// records it on the template.
fn on_error(
    ctx: &JobContext,
    e: &MetaError,
    usage: Option<BucUsage>,
) -> anyhow::Result<Option<JobOutcome>> {
    if tpl::is_throttle_code(e.code()) {
        tracing::warn!(job_id = ctx.id, code = ?e.code(), "management budget exhausted; deferring");
        return Ok(Some(throttle_until(usage)));
    }
    match e.class() {
        ErrorClass::Retryable if ctx.attempt < ctx.max_attempts => {
            Err(anyhow::anyhow!("Meta: {}", describe(e)))
        }
        _ => Ok(None),
    }
}

/// The account can call Meta, or the outcome that says why not.
fn usable(c: Option<AccountCredentials>) -> Result<AccountCredentials, JobOutcome> {
    match c {
        None => Err(JobOutcome::Discard("the account no longer exists".into())),
        Some(c) if c.status == "CONNECTED" => Ok(c),
        Some(c) => Err(JobOutcome::Discard(format!("the account is {}", c.status))),
    }
}

/// `templates.submit`: creates the template at Meta and records its id and status.
pub async fn submit(
    ctx: JobContext,
    deps: WorkerDeps,
    job: SubmitTemplate,
) -> anyhow::Result<JobOutcome> {
    let Some(row) = load(&ctx, job.template_id).await? else {
        tracing::warn!(template_id = %job.template_id, "template to submit no longer exists");
        return Ok(JobOutcome::Complete);
    };
    if row.status != "PENDING_SUBMISSION" || row.meta_template_id.is_some() {
        return Ok(JobOutcome::Complete);
    }
    let c = match usable(creds(&ctx, &deps, row.account_id).await?) {
        Ok(c) => c,
        Err(outcome) => {
            revert(
                &ctx,
                job.template_id,
                "DRAFT",
                "The WhatsApp number is not connected",
            )
            .await?;
            return Ok(outcome);
        }
    };
    let mut body = json!({
        "name": row.name,
        "language": row.language,
        "category": row.category,
        "components": row.components,
    });
    if row.parameter_format == "NAMED" {
        body["parameter_format"] = json!("named");
    }
    match deps
        .meta
        .create_template(c.access_token.expose(), &c.waba_id, &body)
        .await
    {
        Ok(res) => {
            let meta_id = res["id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| res["id"].as_u64().map(|n| n.to_string()));
            let status = res["status"]
                .as_str()
                .and_then(tpl::meta_status)
                .unwrap_or("PENDING");
            let category = res["category"]
                .as_str()
                .map(str::to_uppercase)
                .filter(|c| tpl::rules::CATEGORIES.contains(&c.as_str()));
            sqlx::query(
                "UPDATE message_templates
                    SET meta_template_id = $2, status = $3, category = COALESCE($4, category), submitted_at = now(),
                        last_error = NULL
                  WHERE id = $1 AND status = 'PENDING_SUBMISSION'",
            )
            .bind(job.template_id)
            .bind(&meta_id)
            .bind(status)
            .bind(category)
            .execute(&ctx.pool)
            .await?;
            tracing::info!(template_id = %job.template_id, meta_id = ?meta_id, status, "template submitted to Meta");
            Ok(JobOutcome::Complete)
        }
        Err(e) => match on_error(&ctx, &e, None)? {
            Some(outcome) => Ok(outcome),
            None => {
                let reason = format!("Meta refused the template: {}", describe(&e));
                revert(&ctx, job.template_id, "DRAFT", &reason).await?;
                Ok(JobOutcome::Discard(reason))
            }
        },
    }
}

/// Puts a template back to `status` (from PENDING_SUBMISSION / PENDING_DELETION) with why.
async fn revert(ctx: &JobContext, id: Uuid, status: &str, reason: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE message_templates SET status = $2, last_error = $3
          WHERE id = $1 AND status IN ('PENDING_SUBMISSION', 'PENDING_DELETION')",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .execute(&ctx.pool)
    .await?;
    Ok(())
}

/// `templates.edit`: sends the new components (and category) to Meta; the template goes back to
/// PENDING review. A refusal restores the previous status and syncs Meta's components back.
pub async fn edit(
    ctx: JobContext,
    deps: WorkerDeps,
    job: EditTemplate,
) -> anyhow::Result<JobOutcome> {
    let Some(row) = load(&ctx, job.template_id).await? else {
        return Ok(JobOutcome::Complete);
    };
    let Some(meta_id) = row
        .meta_template_id
        .clone()
        .filter(|_| row.status == "PENDING_SUBMISSION")
    else {
        return Ok(JobOutcome::Complete);
    };
    let c = match usable(creds(&ctx, &deps, row.account_id).await?) {
        Ok(c) => c,
        Err(outcome) => {
            revert(
                &ctx,
                job.template_id,
                &job.previous_status,
                "The WhatsApp number is not connected",
            )
            .await?;
            return Ok(outcome);
        }
    };
    let mut body = json!({"components": row.components});
    if let Some(cat) = &job.category {
        body["category"] = json!(cat);
    }
    match deps
        .meta
        .edit_template(c.access_token.expose(), &meta_id, &body)
        .await
    {
        Ok(_) => {
            sqlx::query(
                "UPDATE message_templates SET status = 'PENDING', submitted_at = now(), last_error = NULL, rejected_reason = NULL
                  WHERE id = $1 AND status = 'PENDING_SUBMISSION'",
            )
            .bind(job.template_id)
            .execute(&ctx.pool)
            .await?;
            Ok(JobOutcome::Complete)
        }
        Err(e) => match on_error(&ctx, &e, None)? {
            Some(outcome) => Ok(outcome),
            None => {
                let reason = format!("Meta refused the edit: {}", describe(&e));
                let mut tx = ctx.pool.begin().await?;
                sqlx::query(
                    "UPDATE message_templates SET status = $2, last_error = $3 WHERE id = $1 AND status = 'PENDING_SUBMISSION'",
                )
                .bind(job.template_id)
                .bind(&job.previous_status)
                .bind(&reason)
                .execute(&mut *tx)
                .await?;
                tpl::request_sync(&mut tx, row.org_id, row.account_id).await?;
                tx.commit().await?;
                Ok(JobOutcome::Discard(reason))
            }
        },
    }
}

/// `templates.delete`: deletes this language of the template at Meta (name + hsm_id) and marks
/// it REMOVED. "Not found" at Meta counts as deleted.
pub async fn delete(
    ctx: JobContext,
    deps: WorkerDeps,
    job: DeleteTemplate,
) -> anyhow::Result<JobOutcome> {
    let Some(row) = load(&ctx, job.template_id).await? else {
        return Ok(JobOutcome::Complete);
    };
    if row.status != "PENDING_DELETION" {
        return Ok(JobOutcome::Complete);
    }
    let c = match usable(creds(&ctx, &deps, row.account_id).await?) {
        Ok(c) => c,
        Err(outcome) => {
            revert(
                &ctx,
                job.template_id,
                &job.previous_status,
                "The WhatsApp number is not connected",
            )
            .await?;
            return Ok(outcome);
        }
    };
    let result = deps
        .meta
        .delete_template(
            c.access_token.expose(),
            &c.waba_id,
            &row.name,
            row.meta_template_id.as_deref(),
        )
        .await;
    let gone = match &result {
        Ok(()) => true,
        Err(MetaError::Graph(g)) => g.subcode == Some(2593002),
        Err(_) => false,
    };
    if gone {
        sqlx::query(
            "UPDATE message_templates SET status = 'REMOVED', deleted_at = COALESCE(deleted_at, now()), last_error = NULL
              WHERE id = $1",
        )
        .bind(job.template_id)
        .execute(&ctx.pool)
        .await?;
        tracing::info!(template_id = %job.template_id, "template deleted at Meta");
        return Ok(JobOutcome::Complete);
    }
    let e = result.expect_err("not gone means an error");
    match on_error(&ctx, &e, None)? {
        Some(outcome) => Ok(outcome),
        None => {
            let reason = format!("Meta refused the deletion: {}", describe(&e));
            revert(&ctx, job.template_id, &job.previous_status, &reason).await?;
            Ok(JobOutcome::Discard(reason))
        }
    }
}

/// `templates.sync_account`: follows Meta's cursor through every page, upserts each template
/// (one transaction per page), then marks what Meta no longer lists as REMOVED. Drafts are
/// never touched. The budget is respected: throttled → snooze; nearly spent between pages →
/// snooze before the next call (a sync restarts from the first page; it is idempotent).
pub async fn sync_account(
    ctx: JobContext,
    deps: WorkerDeps,
    job: SyncAccount,
) -> anyhow::Result<JobOutcome> {
    let c = match accounts::credentials(&ctx.pool, &deps.secrets, job.account_id).await? {
        None => {
            tracing::warn!(account_id = %job.account_id, "account to sync no longer exists");
            return Ok(JobOutcome::Complete);
        }
        Some(c) if c.status != "CONNECTED" => {
            tracing::info!(account_id = %job.account_id, status = %c.status, "account not connected; sync skipped");
            return Ok(JobOutcome::Complete);
        }
        Some(c) => c,
    };
    let target = SyncTarget {
        org_id: c.org_id,
        account_id: c.id,
        waba_id: c.waba_id.clone(),
    };
    let started = Utc::now();
    let mut after: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut pages = 0u32;
    loop {
        let (page, usage) = deps
            .meta
            .list_templates_with_usage(
                c.access_token.expose(),
                &c.waba_id,
                after.as_deref(),
                tpl::sync_page_size(),
                Some(tpl::SYNC_FIELDS),
            )
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if tpl::is_throttle_code(e.code()) => {
                tracing::warn!(account_id = %c.id, pages, "template sync throttled by Meta; deferring");
                return Ok(throttle_until(usage));
            }
            Err(e) if e.class() == ErrorClass::AccountLevel => {
                return Ok(JobOutcome::Discard(format!(
                    "the account's token is not valid: {}",
                    describe(&e)
                )));
            }
            Err(e) if e.class() == ErrorClass::Retryable => {
                return Err(anyhow::anyhow!("Meta: {}", describe(&e)))
            }
            Err(e) => {
                return Ok(JobOutcome::Discard(format!(
                    "Meta refused the template list: {}",
                    describe(&e)
                )))
            }
        };
        pages += 1;
        let mut tx = ctx.pool.begin().await?;
        for t in &page.data {
            if tpl::upsert_from_meta(&mut tx, &target, t).await? {
                if let Some(id) = t["id"].as_str() {
                    seen.push(id.to_string());
                }
            } else if let Some(id) = t["id"].as_str() {
                // Not stored (unknown status), but it exists: never mark it vanished.
                seen.push(id.to_string());
            }
        }
        tx.commit().await?;
        match page.next_cursor() {
            None => break,
            Some(next) => {
                if usage.is_some_and(|u| u.percent() >= BUDGET_CEILING) {
                    tracing::warn!(account_id = %c.id, pages, usage = ?usage, "management budget nearly spent; sync deferred");
                    return Ok(throttle_until(usage));
                }
                after = Some(next);
            }
        }
    }
    let mut tx = ctx.pool.begin().await?;
    let removed = tpl::mark_vanished(&mut tx, c.id, &seen, started).await?;
    tx.commit().await?;
    tracing::info!(account_id = %c.id, pages, templates = seen.len(), removed, "templates synced");
    Ok(JobOutcome::Complete)
}

/// `templates.sync_all`: one sync per connected account (unique per account, so a tick while
/// an account's sync still waits adds nothing).
pub async fn sync_all(ctx: JobContext, _job: SyncAll) -> anyhow::Result<JobOutcome> {
    let mut conn = ctx.pool.acquire().await?;
    let ids = tpl::enqueue_sync_all(&mut conn).await?;
    tracing::info!(jobs = ids.len(), "template syncs enqueued");
    Ok(JobOutcome::Complete)
}
