//! `campaigns.dispatch` and `campaigns.launch_due` (DESIGN.md "Flows: Campaign"), plus the
//! campaign gate the send job calls.
//!
//! The dispatcher paces from the recipients table; it never floods the queue:
//! 1. re-read the campaign (stop unless RUNNING; a number paused for spam pauses it);
//! 2. count the campaign's messages that are queued but unsent (the partial index
//!    `messages_campaign_queued_idx` makes this O(in flight));
//! 3. if fewer than ~2 s of the number's rate are in flight, claim the next `pending`
//!    recipients (`FOR UPDATE SKIP LOCKED`) and, in ONE transaction, upsert their contacts and
//!    open conversations in bulk, insert their `queued` messages (full Cloud API body), mark
//!    them `sending` with their message id and enqueue one `outbound.send_message` each
//!    (priority below interactive sends). A crash anywhere rolls the whole slice back;
//! 4. sleep briefly (watching cancellation) and repeat; when nothing is pending but messages
//!    are in flight, snooze (freeing the bulk slot); when nothing is pending or in flight, the
//!    campaign is COMPLETED.
//!
//! The send job never sends a message that has a wamid, so a recipient is sent at most once
//! whatever crashes, retries or relaunches happen.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;
use wharf_shared::{
    campaigns::{self, DispatchCampaign, LaunchDue, TemplateVars, SEND_PRIORITY},
    jobs::{self, JobOutcome, NewJob},
    outbound::SendMessage,
    templates::rules,
};

use crate::{registry::JobContext, send_ledger::SendLedger};

/// Seconds of the number's rate kept queued ahead of the senders.
const WINDOW_SECS: f64 = 2.0;
/// Largest slice claimed by one transaction.
const MAX_SLICE: i64 = 1000;
/// Sends are scheduled this much faster than the number's rate, so they are always due
/// before the limiter lets them go.
const DUE_AHEAD: f64 = 1.25;
/// Pause between two iterations of the loop.
const TICK: Duration = Duration::from_millis(200);
/// A dispatcher gives its bulk slot back (snoozes) after this long, so many campaigns share
/// the lane fairly.
const MAX_RUN: Duration = Duration::from_secs(60);

#[derive(sqlx::FromRow)]
struct CampaignRow {
    org_id: Uuid,
    account_id: Uuid,
    status: String,
    template_name: String,
    template_language: String,
    parameter_format: String,
    template_components: Value,
    header_media_link: Option<String>,
    messages_per_second: Option<i32>,
    throughput_level: Option<String>,
    bulk_paused_at: Option<chrono::DateTime<chrono::Utc>>,
    bulk_paused_reason: Option<String>,
}

/// `campaigns.launch_due`: starts every due SCHEDULED campaign, once.
pub async fn launch_due(ctx: JobContext, _job: LaunchDue) -> anyhow::Result<JobOutcome> {
    let mut tx = ctx.pool.begin().await?;
    let started = campaigns::launch_due(&mut tx).await?;
    tx.commit().await?;
    for (_, id) in started {
        tracing::info!(campaign_id = %id, "scheduled campaign launched");
    }
    Ok(JobOutcome::Complete)
}

/// `campaigns.dispatch`: see the module documentation.
pub async fn dispatch(ctx: JobContext, job: DispatchCampaign) -> anyhow::Result<JobOutcome> {
    let pool = &ctx.pool;
    let started = Instant::now();
    // Where the schedule of this dispatcher's sends has reached (see `dispatch_slice`).
    let mut next_due = chrono::Utc::now();
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(JobOutcome::snooze_for(Duration::ZERO));
        }
        let Some(c) = load(pool, job.campaign_id).await? else {
            tracing::warn!(campaign_id = %job.campaign_id, "dispatch for a campaign that no longer exists");
            return Ok(JobOutcome::Complete);
        };
        if c.status != "RUNNING" {
            // Paused, cancelled or done: resume enqueues a new dispatcher.
            return Ok(JobOutcome::Complete);
        }
        if c.bulk_paused_at.is_some() {
            let reason = format!(
                "the number's bulk sends are paused ({})",
                c.bulk_paused_reason
                    .as_deref()
                    .unwrap_or("spam rate limit, 131048")
            );
            pause(pool, job.campaign_id, &reason).await?;
            return Ok(JobOutcome::Complete);
        }
        let rate = f64::from(c.messages_per_second.unwrap_or_else(|| {
            wharf_shared::accounts::rate_for_level(c.throughput_level.as_deref())
        }));
        let window = (rate * WINDOW_SECS).ceil().max(1.0) as i64;
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE campaign_id = $1 AND status = 'queued'",
        )
        .bind(job.campaign_id)
        .fetch_one(pool)
        .await?;
        let budget = (window - in_flight).min(MAX_SLICE);
        let mut claimed = 0;
        if budget > 0 {
            claimed =
                dispatch_slice(pool, job.campaign_id, &c, budget, rate, &mut next_due).await?;
        }
        if claimed == 0 && budget > 0 {
            // Nothing claimable: either everything is claimed or another dispatcher holds the
            // rows (SKIP LOCKED).
            let pending: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND status = 'pending')",
            )
            .bind(job.campaign_id)
            .fetch_one(pool)
            .await?;
            if !pending {
                if in_flight == 0 && complete_if_done(pool, job.campaign_id).await? {
                    tracing::info!(campaign_id = %job.campaign_id, "campaign completed");
                    return Ok(JobOutcome::Complete);
                }
                // Messages still in flight (or held): check again soon without a slot.
                return Ok(JobOutcome::snooze_for(Duration::from_secs(1)));
            }
        }
        if started.elapsed() > MAX_RUN {
            return Ok(JobOutcome::snooze_for(Duration::ZERO));
        }
        if claimed as i64 == MAX_SLICE && budget == MAX_SLICE {
            // A full slice and the window still has room (a fast number): claim the next one
            // at once; the tick only paces numbers whose window is full.
            continue;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(JobOutcome::snooze_for(Duration::ZERO)),
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn load(pool: &PgPool, campaign_id: Uuid) -> anyhow::Result<Option<CampaignRow>> {
    Ok(sqlx::query_as(
        "SELECT c.org_id, c.account_id, c.status, c.template_name, c.template_language, c.parameter_format,
                c.template_components, c.header_media_link, a.messages_per_second, a.throughput_level,
                a.bulk_paused_at, a.bulk_paused_reason
           FROM campaigns c JOIN whatsapp_accounts a ON a.id = c.account_id
          WHERE c.id = $1 AND c.deleted_at IS NULL",
    )
    .bind(campaign_id)
    .fetch_optional(pool)
    .await?)
}

async fn pause(pool: &PgPool, campaign_id: Uuid, reason: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE campaigns SET status = 'PAUSED', paused_at = now(), paused_reason = $2 WHERE id = $1 AND status = 'RUNNING'",
    )
    .bind(campaign_id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// COMPLETED when no recipient is pending and no campaign message is queued (unsent).
async fn complete_if_done(pool: &PgPool, campaign_id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE campaigns SET status = 'COMPLETED', completed_at = now()
          WHERE id = $1 AND status = 'RUNNING'
            AND NOT EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND status = 'pending')
            AND NOT EXISTS (SELECT 1 FROM messages WHERE campaign_id = $1 AND status = 'queued')",
    )
    .bind(campaign_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    phone: String,
    name: Option<String>,
    variables: Value,
}

/// Claims up to `limit` pending recipients and turns them into queued messages with their send
/// jobs, in one transaction. Returns how many were claimed.
/// Claims up to `limit` pending recipients and queues their sends. The send jobs are due one
/// after another at a little above the number's `rate` (continuing from `next_due`), not all at
/// once: the lane fetches by due time, so two campaigns on numbers of different speeds
/// interleave by schedule instead of the slow number's sends waiting behind the fast number's
/// whole window. The limiter still sets the exact pace.
async fn dispatch_slice(
    pool: &PgPool,
    campaign_id: Uuid,
    c: &CampaignRow,
    limit: i64,
    rate: f64,
    next_due: &mut chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    // Re-checked under the row lock: a pause or cancel committed before this point stops the
    // slice; one committed after it finds the messages and holds them in the send job's gate.
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1 FOR SHARE")
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
    if status.as_deref() != Some("RUNNING") {
        return Ok(0);
    }
    let rows: Vec<Claimed> = sqlx::query_as(
        "SELECT id, phone, name, variables FROM campaign_recipients
          WHERE campaign_id = $1 AND status = 'pending'
          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(campaign_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let phones: Vec<String> = rows.iter().map(|r| r.phone.clone()).collect();
    let names: Vec<Option<String>> = rows.iter().map(|r| r.name.clone()).collect();
    // Contacts: insert the missing ones, then read all ids (no write to existing rows).
    sqlx::query(
        "INSERT INTO contacts (org_id, wa_id, name)
         SELECT $1, u.wa_id, u.name FROM UNNEST($2::text[], $3::text[]) AS u(wa_id, name)
         ON CONFLICT (org_id, wa_id) DO NOTHING",
    )
    .bind(c.org_id)
    .bind(&phones)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    let contacts: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT wa_id, id FROM contacts WHERE org_id = $1 AND wa_id = ANY($2)")
            .bind(c.org_id)
            .bind(&phones)
            .fetch_all(&mut *tx)
            .await?;
    let contact_of: HashMap<String, Uuid> = contacts.into_iter().collect();
    let contact_ids: Vec<Uuid> = phones
        .iter()
        .filter_map(|p| contact_of.get(p).copied())
        .collect();
    // Open conversations: one per (number, contact) thanks to the partial unique index.
    sqlx::query(
        "INSERT INTO conversations (org_id, account_id, contact_id, last_message_direction)
         SELECT $1, $2, u.contact_id, 'OUTBOUND' FROM UNNEST($3::uuid[]) AS u(contact_id)
         ON CONFLICT (account_id, contact_id) WHERE status <> 'CLOSED' DO NOTHING",
    )
    .bind(c.org_id)
    .bind(c.account_id)
    .bind(&contact_ids)
    .execute(&mut *tx)
    .await?;
    let convs: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT contact_id, id FROM conversations WHERE account_id = $1 AND contact_id = ANY($2) AND status <> 'CLOSED'",
    )
    .bind(c.account_id)
    .bind(&contact_ids)
    .fetch_all(&mut *tx)
    .await?;
    let conv_of: HashMap<Uuid, Uuid> = convs.into_iter().collect();

    let vars = TemplateVars::of(&c.template_components, &c.parameter_format);
    let n = rows.len();
    let (mut rec_ids, mut msg_ids, mut conv_ids, mut contents, mut requests, mut previews) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in &rows {
        let Some(conv) = contact_of.get(&r.phone).and_then(|ct| conv_of.get(ct)) else {
            // A conversation closed between the two statements: the recipient stays pending
            // for the next slice.
            continue;
        };
        let message_id = Uuid::now_v7();
        let empty = Map::new();
        let values = r.variables.as_object().unwrap_or(&empty);
        let template = campaigns::template_object(
            &c.template_name,
            &c.template_language,
            &vars,
            c.header_media_link.as_deref(),
            values,
        );
        let sent_components = template["components"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let preview = rules::render_body(&c.template_components, &sent_components)
            .map(|t| t.chars().take(100).collect::<String>())
            .unwrap_or_else(|| format!("[template] {}", c.template_name));
        rec_ids.push(r.id);
        msg_ids.push(message_id);
        conv_ids.push(*conv);
        contents.push(json!({"template": template}).to_string());
        requests.push(campaigns::request_body(message_id, &r.phone, &template).to_string());
        previews.push(preview);
    }
    sqlx::query(
        "INSERT INTO messages (id, org_id, conversation_id, account_id, direction, type, content, status, request,
                               template_name, campaign_id)
         SELECT u.id, $1, u.conversation_id, $2, 'OUTBOUND', 'template', u.content::jsonb, 'queued', u.request::jsonb,
                $3, $4
           FROM UNNEST($5::uuid[], $6::uuid[], $7::text[], $8::text[]) AS u(id, conversation_id, content, request)",
    )
    .bind(c.org_id)
    .bind(c.account_id)
    .bind(&c.template_name)
    .bind(campaign_id)
    .bind(&msg_ids)
    .bind(&conv_ids)
    .bind(&contents)
    .bind(&requests)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE conversations c SET last_message_at = now(), last_message_preview = u.preview,
                last_message_direction = 'OUTBOUND'
           FROM UNNEST($1::uuid[], $2::text[]) AS u(id, preview) WHERE c.id = u.id",
    )
    .bind(&conv_ids)
    .bind(&previews)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE campaign_recipients r SET status = 'sending', message_id = u.message_id, updated_at = now()
           FROM UNNEST($1::bigint[], $2::uuid[]) AS u(id, message_id) WHERE r.id = u.id",
    )
    .bind(&rec_ids)
    .bind(&msg_ids)
    .execute(&mut *tx)
    .await?;
    let spacing = chrono::Duration::microseconds((1e6 / (rate * DUE_AHEAD)).max(1.0) as i64);
    let first = (*next_due).max(chrono::Utc::now());
    let jobs: Vec<NewJob<SendMessage>> = msg_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            NewJob::new(SendMessage {
                message_id: *id,
                account_id: c.account_id,
                trigger: "campaign".into(),
            })
            .org(c.org_id)
            .priority(SEND_PRIORITY)
            .run_at(first + spacing * i as i32)
            .unique_key(format!("send:{id}"))
        })
        .collect();
    *next_due = first + spacing * msg_ids.len() as i32;
    jobs::enqueue_many(&mut *tx, jobs).await?;
    tx.commit().await?;
    Ok(msg_ids.len())
}

// ---- The send job's campaign hooks (called from `send_message.rs`) ----------------------

/// How long a send whose worker died mid-request waits for Meta's status webhook before the
/// message is sent again.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(30);

/// Called by the send job right before it hands the request to Meta (after the limiter, which
/// may have slept): a campaign paused or cancelled meanwhile stops the send here
/// (`Some(outcome)`); otherwise the message is marked as possibly in flight.
pub async fn before_send(
    pool: &PgPool,
    ledger: &SendLedger,
    message_id: Uuid,
) -> anyhow::Result<Option<JobOutcome>> {
    let marked = ledger.mark_started(pool, message_id).await?;
    if marked {
        return Ok(None);
    }
    Ok(Some(send_gate(pool, message_id).await?.unwrap_or_else(
        || JobOutcome::snooze_for(Duration::from_secs(1)),
    )))
}

/// What the gate decides from (the send job loads it with the message, in one query).
#[derive(sqlx::FromRow)]
pub struct GateRow {
    pub campaign_status: Option<String>,
    pub send_started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The send job's gate, right after it loaded a queued, unsent message: `Some(outcome)` stops
/// the send.
/// - A previous run handed the request to Meta and recorded no outcome (the worker died
///   mid-request): wait up to 30 s for Meta's status webhook to adopt the wamid instead of
///   sending a second copy.
/// - PAUSED campaign: wait (snooze 1 s) without sending.
/// - CANCELLED campaign: the message is failed and discarded (it never leaves) and the
///   recipient is skipped (cancelled).
pub async fn send_gate(pool: &PgPool, message_id: Uuid) -> anyhow::Result<Option<JobOutcome>> {
    let row: Option<GateRow> = sqlx::query_as(
        "SELECT c.status AS campaign_status, m.send_started_at,
                (SELECT max(finished_at) FROM message_attempts a WHERE a.message_id = m.id) AS last_attempt_at
           FROM messages m LEFT JOIN campaigns c ON c.id = m.campaign_id WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => gate(pool, message_id, row).await,
        None => Ok(None),
    }
}

/// [`send_gate`] with the row already loaded.
pub async fn gate(
    pool: &PgPool,
    message_id: Uuid,
    row: GateRow,
) -> anyhow::Result<Option<JobOutcome>> {
    if let Some(started) = row.send_started_at {
        if row.last_attempt_at.is_none_or(|a| a < started) {
            let waited = (chrono::Utc::now() - started).to_std().unwrap_or_default();
            if waited < IN_FLIGHT_WAIT {
                tracing::info!(%message_id, "a previous send of this message may have reached Meta; waiting for its status webhook");
                return Ok(Some(JobOutcome::snooze_for(
                    (IN_FLIGHT_WAIT - waited).min(Duration::from_secs(2)),
                )));
            }
        }
    }
    match row.campaign_status.as_deref() {
        Some("PAUSED") => Ok(Some(JobOutcome::snooze_for(Duration::from_secs(1)))),
        Some("CANCELLED") => {
            let mut tx = pool.begin().await?;
            let cancelled = sqlx::query(
                "UPDATE messages SET status = 'failed', failed_at = now(), discarded_at = now(), hold_reason = NULL,
                        retryable = false, error = '{\"code\": null, \"title\": \"Campaign cancelled\", \"message\": \"The campaign was cancelled before this message was sent\", \"details\": null}'
                  WHERE id = $1 AND status = 'queued' AND wamid IS NULL",
            )
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
            if cancelled.rows_affected() > 0 {
                sqlx::query(
                    "UPDATE campaign_recipients SET status = 'skipped', skip_reason = 'cancelled', updated_at = now()
                      WHERE message_id = $1",
                )
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(Some(JobOutcome::Complete))
        }
        _ => Ok(None),
    }
}

/// Meta refused a campaign message's template (132001 missing, 132015 paused, 132016
/// disabled): pause its campaign saying why and request a template sync. Returns `false` when
/// the message is not a campaign message (the send job then fails it as usual).
pub async fn pause_for_template_error(
    pool: &PgPool,
    message_id: Uuid,
    code: i64,
) -> anyhow::Result<bool> {
    let row: Option<(Uuid, Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT c.id, c.org_id, c.account_id, c.template_name FROM messages m JOIN campaigns c ON c.id = m.campaign_id
          WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(pool)
    .await?;
    let Some((campaign_id, org_id, account_id, template)) = row else {
        return Ok(false);
    };
    let what = match code {
        132001 => "does not exist at Meta (any more)",
        132015 => "was paused at Meta",
        132016 => "was disabled at Meta",
        _ => "was refused by Meta",
    };
    let reason = format!("template {template} {what} ({code})");
    let mut tx = pool.begin().await?;
    let paused = sqlx::query(
        "UPDATE campaigns SET status = 'PAUSED', paused_at = now(), paused_reason = $2 WHERE id = $1 AND status = 'RUNNING'",
    )
    .bind(campaign_id)
    .bind(&reason)
    .execute(&mut *tx)
    .await?;
    wharf_shared::templates::request_sync(&mut tx, org_id, account_id).await?;
    tx.commit().await?;
    if paused.rows_affected() > 0 {
        tracing::warn!(%campaign_id, code, "campaign paused: {reason}");
    }
    Ok(true)
}
