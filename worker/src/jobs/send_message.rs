//! `outbound.send_message`: sends one queued message through Meta within the number's and the
//! recipient's rate limits, and records what happened as an attempt (ARCHITECTURE.md, "Rate limits"
//! and "Meta errors").
//!
//! - A message that has a wamid is never sent again; a discarded one never at all.
//! - No token for the number or the pair: the job defers itself to when the token exists
//!   (short waits are slept in place so the pace stays exact), without spending an attempt.
//! - 130429 slows the number down for every worker and retries; 131056 delays only this
//!   recipient, 4^n seconds; 190/0 marks the account NEEDS_REAUTH and holds the message until
//!   a new token is saved; 131048 pauses the number's bulk sends and alerts; retryable codes,
//!   5xx and timeouts retry with backoff; terminal codes fail the message at once with Meta's
//!   code and details.
//! - A timeout after the request left us is "outcome unknown": the message waits for Meta's
//!   status webhook (matched by `biz_opaque_callback_data`) before it is sent again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;
use wharf_shared::{
    accounts::{self, raise_alert, Alert},
    jobs::JobOutcome,
    meta::{ErrorClass, MetaError},
    outbound::{SendMessage, HOLD_RECHECK, UNKNOWN_OUTCOME_WAIT},
    ratelimit::{Bucket, Decision},
};

use crate::{deps::WorkerDeps, registry::JobContext, send_ledger::Sent};

/// A send may reserve its slot this far ahead and sleep until it; further ones defer the job.
/// The outbound lane's concurrency bounds how many slots are reserved at once.
const MAX_RESERVE: Duration = wharf_shared::ratelimit::RESERVATION_HORIZON;
/// Waits shorter than this (process-local limiter, which cannot reserve) are slept in place.
const SLEEP_IN_PLACE: Duration = Duration::from_millis(250);
/// Pair-rate refusals (131056) before the message is failed as retryable.
const MAX_PAIR_DELAYS: i64 = 6;
/// Sends of one message in all, counting the outcome-unknown waits that spend no job attempt.
const MAX_TOTAL_ATTEMPTS: i32 = 12;

#[derive(sqlx::FromRow)]
struct Row {
    org_id: Uuid,
    wamid: Option<String>,
    status: String,
    request: Option<Value>,
    hold_reason: Option<String>,
    discarded_at: Option<DateTime<Utc>>,
    send_attempts: i32,
    blob_path: Option<String>,
    mime_type: Option<String>,
    filename: Option<String>,
    #[sqlx(rename = "type")]
    kind: String,
    messages_per_second: Option<i32>,
    throughput_level: Option<String>,
    last_attempt_at: Option<DateTime<Utc>>,
    pair_delays: i64,
    campaign_status: Option<String>,
    send_started_at: Option<DateTime<Utc>>,
}

/// What one attempt ended as, for the attempts table.
struct AttemptRecord<'a> {
    outcome: &'a str,
    wamid: Option<&'a str>,
    error: Option<&'a MetaError>,
}

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: SendMessage,
) -> anyhow::Result<JobOutcome> {
    let pool = &ctx.pool;
    let row: Option<Row> = sqlx::query_as(
        "SELECT m.org_id, m.wamid, m.status, m.request, m.hold_reason, m.discarded_at, m.send_attempts, m.blob_path,
                m.mime_type, m.filename, m.type, a.messages_per_second, a.throughput_level,
                (SELECT max(finished_at) FROM message_attempts WHERE message_id = m.id) AS last_attempt_at,
                (SELECT count(*) FROM message_attempts WHERE message_id = m.id AND error_code = 131056
                   AND finished_at > coalesce((SELECT max(finished_at) FROM message_attempts
                                                WHERE message_id = m.id AND outcome = 'sent'), '-infinity')) AS pair_delays,
                c.status AS campaign_status, m.send_started_at
           FROM messages m JOIN whatsapp_accounts a ON a.id = m.account_id
                LEFT JOIN campaigns c ON c.id = m.campaign_id
          WHERE m.id = $1",
    )
    .bind(job.message_id)
    .fetch_optional(pool)
    .await?;
    let Some(m) = row else {
        tracing::warn!(message_id = %job.message_id, "send for a message that no longer exists");
        return Ok(JobOutcome::Complete);
    };
    if m.wamid.is_some() || m.discarded_at.is_some() || m.status != "queued" {
        // Sent already (a crash after Meta answered, a duplicate job) or given up on.
        return Ok(JobOutcome::Complete);
    }
    // ---- campaigns (issue #6): a paused campaign's message waits, a cancelled one's is dropped ----
    let gate = super::campaigns::GateRow {
        campaign_status: m.campaign_status.clone(),
        send_started_at: m.send_started_at,
        last_attempt_at: m.last_attempt_at,
    };
    if let Some(outcome) = super::campaigns::gate(pool, job.message_id, gate).await? {
        return Ok(outcome);
    }
    // ---- end campaigns ----
    let Some(request) = m.request.clone() else {
        fail(
            pool,
            &job,
            m.org_id,
            m.send_attempts,
            None,
            "Message has no request body",
            false,
        )
        .await?;
        return Ok(JobOutcome::Discard("message has no request body".into()));
    };
    if m.hold_reason.as_deref() == Some("outcome_unknown") {
        if let Some(at) = m.last_attempt_at {
            let waited = (Utc::now() - at).to_std().unwrap_or_default();
            if waited < UNKNOWN_OUTCOME_WAIT.get() {
                return Ok(JobOutcome::snooze_for(UNKNOWN_OUTCOME_WAIT.get() - waited));
            }
        }
        tracing::info!(message_id = %job.message_id, "no status webhook settled the unknown outcome; sending again");
    }

    let Some(account) = accounts::credentials(pool, &deps.secrets, job.account_id).await? else {
        fail(
            pool,
            &job,
            m.org_id,
            m.send_attempts,
            None,
            "The WhatsApp account no longer exists",
            false,
        )
        .await?;
        return Ok(JobOutcome::Discard("account missing".into()));
    };
    match account.status.as_str() {
        "DISCONNECTED" => {
            fail(
                pool,
                &job,
                m.org_id,
                m.send_attempts,
                None,
                "The WhatsApp number was disconnected",
                true,
            )
            .await?;
            return Ok(JobOutcome::Discard("account disconnected".into()));
        }
        "NEEDS_REAUTH" => {
            hold(pool, job.message_id, "token_invalid").await?;
            return Ok(JobOutcome::snooze_for(HOLD_RECHECK.get()));
        }
        _ => {}
    }

    let to = request["to"].as_str().unwrap_or_default().to_string();
    let rate = f64::from(
        m.messages_per_second
            .unwrap_or_else(|| accounts::rate_for_level(m.throughput_level.as_deref())),
    );
    let number = Bucket::number(&account.phone_number_id, rate);
    let buckets = [number.clone(), Bucket::pair(&account.phone_number_id, &to)];
    if let Some(wait) = take_slot(&deps, &buckets).await {
        return Ok(JobOutcome::snooze_for(wait));
    }
    let sending = Attempting {
        org_id: m.org_id,
        send_attempts: m.send_attempts,
        pair_delays: m.pair_delays,
        last_try: ctx.attempt >= ctx.max_attempts,
    };

    let mut request = request;
    if let Some(blob) = &m.blob_path {
        if request[&m.kind]["id"].is_null() && request[&m.kind]["link"].is_null() {
            match upload(
                &deps,
                &account,
                blob,
                m.mime_type.as_deref(),
                m.filename.as_deref(),
            )
            .await
            {
                Ok(media_id) => {
                    request[&m.kind]["id"] = json!(media_id);
                    sqlx::query("UPDATE messages SET request = $2, media_id = $3 WHERE id = $1")
                        .bind(job.message_id)
                        .bind(&request)
                        .bind(&media_id)
                        .execute(pool)
                        .await?;
                }
                Err(e) => {
                    return handle_error(pool, &deps, &job, &sending, &account, &number, e).await
                }
            }
        }
    }

    // ---- campaigns (issue #6): last pause/cancel check, then mark the request as possibly in flight ----
    if let Some(outcome) = super::campaigns::before_send(pool, &deps.ledger, job.message_id).await?
    {
        return Ok(outcome);
    }
    // ---- end campaigns ----
    match deps
        .meta
        .send_message(
            account.access_token.expose(),
            &account.phone_number_id,
            &request,
        )
        .await
    {
        Ok(resp) => {
            deps.ledger
                .record_sent(
                    pool,
                    Sent {
                        message_id: job.message_id,
                        org_id: m.org_id,
                        attempt: m.send_attempts + 1,
                        wamid: resp.wamid().unwrap_or_default().to_string(),
                        trigger: job.trigger.clone(),
                    },
                )
                .await?;
            Ok(JobOutcome::Complete)
        }
        Err(e) => handle_error(pool, &deps, &job, &sending, &account, &number, e).await,
    }
}

/// Takes the send's tokens from the number's and the recipient's buckets, sleeping for short
/// waits and reserved slots. `Some(wait)`: no token within the reservation horizon; the
/// caller defers the send by `wait` (nothing was taken).
pub(crate) async fn take_slot(deps: &WorkerDeps, buckets: &[Bucket]) -> Option<Duration> {
    loop {
        match deps.limiter.acquire(buckets, MAX_RESERVE).await {
            Decision::Allowed => return None,
            Decision::Reserved(w) => {
                tokio::time::sleep(w).await;
                return None;
            }
            Decision::Wait(w) if w <= SLEEP_IN_PLACE => tokio::time::sleep(w).await,
            Decision::Wait(w) => return Some(w),
        }
    }
}

/// The message's sending history that error handling decides from.
pub(crate) struct Attempting {
    pub org_id: Uuid,
    /// Sends recorded before this one.
    pub send_attempts: i32,
    /// 131056 refusals since the last accepted send.
    pub pair_delays: i64,
    /// No retry remains after this attempt.
    pub last_try: bool,
}

async fn upload(
    deps: &WorkerDeps,
    account: &accounts::AccountCredentials,
    blob: &str,
    mime: Option<&str>,
    filename: Option<&str>,
) -> Result<String, MetaError> {
    let bytes = tokio::fs::read(deps.blob_dir.join(blob))
        .await
        .map_err(|e| MetaError::Transport {
            message: format!("stored upload unreadable: {e}"),
            request_sent: false,
        })?;
    deps.meta
        .upload_media(
            account.access_token.expose(),
            &account.phone_number_id,
            bytes,
            mime.unwrap_or("application/octet-stream"),
            filename.unwrap_or("upload"),
        )
        .await
}

/// Records a failed send and decides what happens next; an `Err` asks for a retry after the
/// kind's backoff.
pub(crate) async fn handle_error(
    pool: &PgPool,
    deps: &WorkerDeps,
    job: &SendMessage,
    m: &Attempting,
    account: &accounts::AccountCredentials,
    number: &Bucket,
    err: MetaError,
) -> anyhow::Result<JobOutcome> {
    let attempt = m.send_attempts + 1;
    let code = err.code();
    tracing::info!(message_id = %job.message_id, code = ?code, class = ?err.class(), error = %err, "send attempt failed");
    let last_try = m.last_try;
    if matches!(code, Some(132001 | 132015 | 132016)) {
        // Our copy of the template is stale (missing, paused or disabled at Meta): refresh it.
        let mut conn = pool.acquire().await?;
        wharf_shared::templates::request_sync(&mut conn, m.org_id, account.id).await?;
    }
    // ---- campaigns (issue #6): template missing/paused/disabled at Meta pauses the campaign ----
    if let Some(c @ (132001 | 132015 | 132016)) = code {
        if super::campaigns::pause_for_template_error(pool, job.message_id, c).await? {
            // Not failed: the message waits in the paused campaign's gate and is sent after resume.
            note_attempt(pool, job, m.org_id, attempt, "retry", &err, None).await?;
            return Ok(JobOutcome::snooze_for(Duration::from_secs(1)));
        }
    }
    // ---- end campaigns ----
    match (err.class(), code) {
        (_, Some(130429)) => {
            let factor = deps.limiter.slow_down(number).await;
            tracing::warn!(phone_number_id = %account.phone_number_id, factor, "130429 from Meta: number slowed down");
            retry_or_fail(pool, job, m, attempt, &err, last_try).await
        }
        (ErrorClass::RecipientDelay, _) => {
            note_attempt(pool, job, m.org_id, attempt, "retry", &err, None).await?;
            if m.pair_delays + 1 >= MAX_PAIR_DELAYS {
                fail(pool, job, m.org_id, attempt, Some(&err), "", true).await?;
                return Ok(JobOutcome::Discard("pair rate limit persisted".into()));
            }
            // 4^n seconds, n = refusals so far (Meta's advice for 131056).
            let delay = Duration::from_secs(4u64.pow(m.pair_delays.clamp(0, 5) as u32));
            Ok(JobOutcome::snooze_for(delay))
        }
        (ErrorClass::AccountLevel, Some(0 | 190)) => {
            let reason = format!("{} ({})", err.title(), code.unwrap_or(0));
            let mut tx = pool.begin().await?;
            record(
                &mut tx,
                job,
                m.org_id,
                attempt,
                AttemptRecord {
                    outcome: "held",
                    wamid: None,
                    error: Some(&err),
                },
            )
            .await?;
            sqlx::query(
                "UPDATE whatsapp_accounts SET status = 'NEEDS_REAUTH', status_reason = $2 WHERE id = $1 AND status = 'CONNECTED'",
            )
            .bind(account.id)
            .bind(&reason)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE messages SET hold_reason = 'token_invalid', send_attempts = send_attempts + 1 WHERE id = $1")
                .bind(job.message_id)
                .execute(&mut *tx)
                .await?;
            raise_alert(
                &mut *tx,
                Alert {
                    org_id: m.org_id,
                    account_id: Some(account.id),
                    kind: "token_invalid",
                    severity: "CRITICAL",
                    title: "WhatsApp access token is no longer valid",
                    message: "Sends from this number are held until a new access token is saved.",
                    details: json!({"reason": reason}),
                },
            )
            .await?;
            tx.commit().await?;
            Ok(JobOutcome::snooze_for(HOLD_RECHECK.get()))
        }
        (_, Some(131048)) => {
            // Spam rate limit: stop bulk traffic from this number and tell a human.
            let mut tx = pool.begin().await?;
            raise_alert(
                &mut *tx,
                Alert {
                    org_id: m.org_id,
                    account_id: Some(account.id),
                    kind: "spam_rate_limit",
                    severity: "CRITICAL",
                    title: "Meta limited this number for spam (131048)",
                    message: "Bulk sends from this number are paused. Check its quality rating before resuming.",
                    details: json!({"details": err.details()}),
                },
            )
            .await?;
            sqlx::query("UPDATE whatsapp_accounts SET bulk_paused_at = now(), bulk_paused_reason = 'spam_rate_limit' WHERE id = $1")
                .bind(account.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            fail(pool, job, m.org_id, attempt, Some(&err), "", true).await?;
            Ok(JobOutcome::Discard("131048 spam rate limit".into()))
        }
        (ErrorClass::Retryable, _) if err.outcome_unknown() => {
            note_attempt(
                pool,
                job,
                m.org_id,
                attempt,
                "unknown",
                &err,
                Some("outcome_unknown"),
            )
            .await?;
            if last_try || attempt >= MAX_TOTAL_ATTEMPTS {
                fail(pool, job, m.org_id, attempt, Some(&err), "", true).await?;
                return Ok(JobOutcome::Discard(
                    "outcome unknown after the last attempt".into(),
                ));
            }
            // Wait for Meta's status webhook to settle it; the attempt is not spent on waiting.
            Ok(JobOutcome::snooze_for(UNKNOWN_OUTCOME_WAIT.get()))
        }
        (ErrorClass::Retryable, _) => retry_or_fail(pool, job, m, attempt, &err, last_try).await,
        (class, _) => {
            let retryable =
                class == ErrorClass::AccountLevel || matches!(code, Some(131049 | 131000));
            fail(pool, job, m.org_id, attempt, Some(&err), "", retryable).await?;
            Ok(JobOutcome::Discard(format!(
                "terminal Meta error {}",
                code.unwrap_or(0)
            )))
        }
    }
}

async fn retry_or_fail(
    pool: &PgPool,
    job: &SendMessage,
    m: &Attempting,
    attempt: i32,
    err: &MetaError,
    last_try: bool,
) -> anyhow::Result<JobOutcome> {
    if last_try {
        fail(pool, job, m.org_id, attempt, Some(err), "", true).await?;
        return Ok(JobOutcome::Discard(format!(
            "gave up after {attempt} attempts: {err}"
        )));
    }
    note_attempt(pool, job, m.org_id, attempt, "retry", err, None).await?;
    // The runtime retries after the kind's backoff.
    Err(anyhow::anyhow!("{err}"))
}

/// Records an attempt that did not settle the message and counts it; `hold` says why the
/// message now waits (`token_invalid`, `outcome_unknown`).
async fn note_attempt(
    pool: &PgPool,
    job: &SendMessage,
    org_id: Uuid,
    attempt: i32,
    outcome: &str,
    err: &MetaError,
    hold: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    record(
        &mut tx,
        job,
        org_id,
        attempt,
        AttemptRecord {
            outcome,
            wamid: None,
            error: Some(err),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE messages SET send_attempts = send_attempts + 1, hold_reason = COALESCE($2, hold_reason) WHERE id = $1",
    )
    .bind(job.message_id)
    .bind(hold)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn hold(pool: &PgPool, message_id: Uuid, reason: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE messages SET hold_reason = $2 WHERE id = $1 AND status = 'queued'")
        .bind(message_id)
        .bind(reason)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the message failed with Meta's error (or `reason` when there is none) and records
/// the attempt. Only a queued message without a wamid can fail here.
async fn fail(
    pool: &PgPool,
    job: &SendMessage,
    org_id: Uuid,
    attempt: i32,
    err: Option<&MetaError>,
    reason: &str,
    retryable: bool,
) -> anyhow::Result<()> {
    let error = match err {
        Some(e) => {
            json!({"code": e.code(), "title": e.title(), "message": e.to_string(), "details": e.details()})
        }
        None => json!({"code": null, "title": reason, "message": reason, "details": null}),
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE messages SET status = 'failed', failed_at = now(), error = $2, error_code = $3, retryable = $4,
                hold_reason = NULL, send_attempts = GREATEST(send_attempts, $5)
          WHERE id = $1 AND wamid IS NULL AND status = 'queued'",
    )
    .bind(job.message_id)
    .bind(&error)
    .bind(err.and_then(|e| e.code()).map(|c| c as i32))
    .bind(retryable)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        job,
        org_id,
        attempt,
        AttemptRecord {
            outcome: "failed",
            wamid: None,
            error: err,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn record(
    tx: &mut sqlx::PgConnection,
    job: &SendMessage,
    org_id: Uuid,
    attempt: i32,
    a: AttemptRecord<'_>,
) -> anyhow::Result<()> {
    let http_status = match a.error {
        Some(MetaError::Graph(g)) => Some(i32::from(g.http_status)),
        Some(MetaError::Unexpected { status, .. }) => Some(i32::from(*status)),
        _ => None,
    };
    sqlx::query(
        "INSERT INTO message_attempts (message_id, org_id, attempt, outcome, wamid, http_status, error_code,
                error_title, error_details, trigger)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(job.message_id)
    .bind(org_id)
    .bind(attempt)
    .bind(a.outcome)
    .bind(a.wamid)
    .bind(http_status)
    .bind(a.error.and_then(|e| e.code()).map(|c| c as i32))
    .bind(a.error.map(|e| e.title()))
    .bind(a.error.and_then(|e| e.details()))
    .bind(&job.trigger)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
