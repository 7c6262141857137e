//! `campaigns.dispatch` and `campaigns.launch_due` (ARCHITECTURE.md, "Campaigns"), plus the
//! campaign gate the send job calls.
//!
//! The dispatcher paces from the recipients table; it never floods the queue:
//! 1. adopt the unsettled sends of an earlier run (a dead worker's) as send jobs;
//! 2. re-read the campaign and its account (stop unless RUNNING; a number paused for spam
//!    pauses it);
//! 3. when it has room (sends in flight below its capacity, about 0.3 s of the number's rate,
//!    and fewer than ~2 s of the rate queued in all), claim the next `pending` recipients
//!    (`FOR UPDATE SKIP LOCKED`) and, in ONE transaction, upsert their contacts and open
//!    conversations in bulk, insert their `queued` messages (full Cloud API body, already
//!    marked "may be in flight" when the dispatcher sends them itself) and mark the recipients
//!    `sending` with their message id. A crash anywhere rolls the whole slice back;
//! 4. send them itself (`campaign_sends`: limiter, request, group-committed wamid); anything
//!    but an accepted send becomes that message's `outbound.send_message`
//!    job. A number that needs a new token or was disconnected gets send jobs right away
//!    (they hold or fail the messages);
//! 5. repeat as sends finish; when nothing is pending, let the last sends settle; when nothing
//!    is pending or queued, the campaign is COMPLETED. A run gives its bulk slot back after a
//!    minute (snooze), so many campaigns share the lane.
//!
//! Neither path sends a message that has a wamid, so a recipient is sent at most once whatever
//! crashes, retries or relaunches happen.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;
use wharf_shared::{
    accounts,
    campaigns::{self, DispatchCampaign, LaunchDue, TemplateVars},
    jobs::{self, JobOutcome, NewJob},
    outbound::SendMessage,
    ratelimit::Bucket,
    templates::rules,
};

use super::campaign_sends::{Queued, Sender, SendingAccount};
use crate::{deps::WorkerDeps, registry::JobContext, send_ledger::SendLedger};

/// Seconds of the number's rate kept queued ahead of the senders.
const WINDOW_SECS: f64 = 2.0;
/// Largest slice claimed by one transaction.
const MAX_SLICE: i64 = 2000;
/// Most messages a direct-sending dispatcher keeps claimed ahead of its pacer.
const MAX_AHEAD: i64 = 5000;
/// Sends are scheduled this much faster than the number's rate, so they are always due
/// before the limiter lets them go.
const DUE_AHEAD: f64 = 1.25;
/// How long a dispatcher waits for its sends in flight when it stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// Longest a winding-down run keeps sending its backlog before it hands the rest to jobs.
const WIND_DOWN_LIMIT: Duration = Duration::from_secs(5);
/// How often a direct-sending dispatcher re-reads its campaign (pause, cancel, account).
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// Pause between two iterations of the loop.
const TICK: Duration = Duration::from_millis(200);
/// After this long a dispatcher gives its bulk slot back (snoozes) if other bulk work is
/// waiting, so many campaigns share the lane fairly; otherwise it runs on, since every
/// hand-over pauses the campaign's pace for a moment.
const MAX_RUN: Duration = Duration::from_secs(60);

#[derive(Clone, sqlx::FromRow)]
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

/// `campaigns.launch_scheduled`: starts one SCHEDULED campaign at its time, once.
pub async fn launch_scheduled(
    ctx: JobContext,
    job: campaigns::LaunchScheduled,
) -> anyhow::Result<JobOutcome> {
    let mut tx = ctx.pool.begin().await?;
    let found = campaigns::launch_scheduled(&mut tx, job.campaign_id).await?;
    tx.commit().await?;
    Ok(match found {
        campaigns::ScheduledLaunch::Launched => {
            tracing::info!(campaign_id = %job.campaign_id, "scheduled campaign launched");
            JobOutcome::Complete
        }
        // Moved later: wait for the new time.
        campaigns::ScheduledLaunch::NotYet(at) => JobOutcome::snooze_for(
            (at - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
                .max(std::time::Duration::from_millis(100)),
        ),
        campaigns::ScheduledLaunch::Gone => JobOutcome::Complete,
    })
}

/// `campaigns.launch_due`: the catch-up sweep; starts every due SCHEDULED campaign, once.
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
pub async fn dispatch(
    ctx: JobContext,
    deps: WorkerDeps,
    job: DispatchCampaign,
) -> anyhow::Result<JobOutcome> {
    let pool = &ctx.pool;
    // Sends of a run that ended without settling them (a dead worker) go to send jobs first.
    adopt_orphans(pool, job.campaign_id).await?;
    let mut sender: Option<(Uuid, Sender)> = None;
    let outcome = dispatch_loop(&ctx, &deps, &job, &mut sender).await;
    if let Some((account_id, sender)) = sender {
        // Let the sends in flight settle (a shutdown's grace period bounds this too) and give
        // the claimed messages not started to send jobs.
        sender.finish(account_id, DRAIN_LIMIT).await;
    }
    outcome
}

/// What one look at the campaign found.
struct Check {
    campaign: CampaignRow,
    rate: f64,
    /// The account, when the dispatcher may send itself.
    direct: Option<Arc<SendingAccount>>,
    /// The campaign's queued, unsent messages.
    in_flight: i64,
}

/// Re-reads the campaign, its account and its messages in flight; `Err(outcome)` ends the run.
async fn check(
    pool: &PgPool,
    deps: &WorkerDeps,
    campaign_id: Uuid,
) -> anyhow::Result<Result<Check, JobOutcome>> {
    let Some(c) = load(pool, campaign_id).await? else {
        tracing::warn!(%campaign_id, "dispatch for a campaign that no longer exists");
        return Ok(Err(JobOutcome::Complete));
    };
    if c.status != "RUNNING" {
        // Paused, cancelled or done: resume enqueues a new dispatcher.
        return Ok(Err(JobOutcome::Complete));
    }
    if c.bulk_paused_at.is_some() {
        let reason = format!(
            "the number's bulk sends are paused ({})",
            c.bulk_paused_reason
                .as_deref()
                .unwrap_or("spam rate limit, 131048")
        );
        pause(pool, campaign_id, &reason).await?;
        return Ok(Err(JobOutcome::Complete));
    }
    let rate =
        f64::from(c.messages_per_second.unwrap_or_else(|| {
            wharf_shared::accounts::rate_for_level(c.throughput_level.as_deref())
        }));
    // Re-read every check: a replaced token is used at once, and a number that needs a new
    // token or was disconnected gets send jobs (which hold or fail the messages).
    let direct = accounts::credentials(pool, &deps.secrets, c.account_id)
        .await?
        .filter(|a| a.status == "CONNECTED")
        .map(|account| {
            let number = Bucket::number(&account.phone_number_id, rate);
            Arc::new(SendingAccount { account, number })
        });
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages
          WHERE campaign_id = $1 AND status = 'queued' AND wamid IS NULL AND failed_at IS NULL",
    )
    .bind(campaign_id)
    .fetch_one(pool)
    .await?;
    Ok(Ok(Check {
        campaign: c,
        rate,
        direct,
        in_flight,
    }))
}

async fn dispatch_loop(
    ctx: &JobContext,
    deps: &WorkerDeps,
    job: &DispatchCampaign,
    sender: &mut Option<(Uuid, Sender)>,
) -> anyhow::Result<JobOutcome> {
    let pool = &ctx.pool;
    let mut started = Instant::now();
    // Giving the slot back: no more claims; the run ends once its backlog has been sent.
    let mut winding_down = false;
    // Where the schedule of this dispatcher's send jobs has reached (see `dispatch_slice`).
    let mut next_due = chrono::Utc::now();
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(JobOutcome::snooze_for(Duration::ZERO));
        }
        if !winding_down && started.elapsed() > MAX_RUN {
            if bulk_work_waiting(pool).await? {
                winding_down = true;
            } else {
                started = Instant::now();
            }
        }
        let backlog_left = sender.as_ref().map_or(0, |(_, s)| s.backlog());
        if winding_down && (backlog_left == 0 || started.elapsed() > MAX_RUN + WIND_DOWN_LIMIT) {
            return Ok(JobOutcome::snooze_for(Duration::ZERO));
        }
        let now = match check(pool, deps, job.campaign_id).await? {
            Ok(now) => now,
            Err(outcome) => return Ok(outcome),
        };
        let c = &now.campaign;
        // Direct sends keep their backlog (up to a second of the rate) in the window too.
        let window_secs = WINDOW_SECS + if now.direct.is_some() { 1.0 } else { 0.0 };
        let window = (now.rate * window_secs).ceil().max(1.0) as i64;
        // Room in the window: in all (direct sends claim it in several slices per check) and
        // for one slice.
        let window_room = if winding_down {
            0
        } else {
            window - now.in_flight
        };
        let room = window_room.min(MAX_SLICE);
        let mut claimed = 0;
        let mut backlog = 0;
        match &now.direct {
            Some(from) => {
                let (_, s) = sender.get_or_insert_with(|| {
                    (
                        c.account_id,
                        Sender::new(deps.clone(), pool.clone(), c.org_id),
                    )
                });
                // Keep about a second of the rate (at most MAX_AHEAD) claimed ahead of the
                // pacer, and claim again while three quarters of it remain: a slice's
                // transaction (tens of milliseconds, more when Postgres is busy) must never
                // leave the pacer without messages. Claims run beside the pacer, one at a time,
                // and the next starts as soon as the last is in (not at the next check: one
                // claim per check capped a fast number at five slices a second).
                let ahead = (now.rate.ceil() as i64).clamp(1, MAX_AHEAD);
                let mut room = window_room;
                let mut claim = None;
                let mut exhausted = false;
                let until = Instant::now() + CHECK_EVERY;
                loop {
                    let stop = ctx.cancel.is_cancelled();
                    if let Some(pending) = claim.take_if(|h: &mut tokio::task::JoinHandle<_>| {
                        h.is_finished() || stop || s.backlog() == 0
                    }) {
                        let queued: Vec<Queued> = pending.await??;
                        exhausted = queued.is_empty();
                        claimed += queued.len();
                        room -= queued.len() as i64;
                        s.push(queued);
                    }
                    let waiting = s.backlog() as i64;
                    let want = (ahead - waiting).min(room).min(MAX_SLICE);
                    if !stop
                        && !exhausted
                        && claim.is_none()
                        && want > 0
                        && waiting <= ahead * 3 / 4
                        && Instant::now() < until
                    {
                        let (pool, c, id) = (pool.clone(), c.clone(), job.campaign_id);
                        claim = Some(tokio::spawn(async move {
                            dispatch_slice(&pool, id, &c, want, Route::Direct).await
                        }));
                    }
                    if stop || (claim.is_none() && (s.backlog() == 0 || Instant::now() >= until)) {
                        break;
                    }
                    if let Some(wait) = s.pace(from, now.rate).await {
                        tokio::time::sleep(wait).await;
                    }
                }
                backlog = s.backlog();
            }
            None => {
                if let Some((account_id, s)) = sender.take() {
                    // No longer sendable directly (token invalid, disconnected): the messages
                    // claimed for direct sends go to their jobs too.
                    s.finish(account_id, DRAIN_LIMIT).await;
                }
                if room > 0 {
                    let route = Route::Jobs {
                        rate: now.rate,
                        next_due: &mut next_due,
                    };
                    claimed = dispatch_slice(pool, job.campaign_id, c, room, route)
                        .await?
                        .len();
                }
                if claimed as i64 == MAX_SLICE && room == MAX_SLICE {
                    // A full slice and the window still has room (a fast number): claim the
                    // next one at once; the tick only paces numbers whose window is full.
                    continue;
                }
            }
        }
        if claimed == 0 && backlog == 0 {
            // Nothing claimable: either everything is claimed or another dispatcher holds the
            // rows (SKIP LOCKED).
            let pending: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND status = 'pending')",
            )
            .bind(job.campaign_id)
            .fetch_one(pool)
            .await?;
            if !pending {
                if let Some((account_id, s)) =
                    sender.take_if(|(_, s)| s.in_flight() > 0 || s.backlog() > 0)
                {
                    // The last sends: let them settle, then look again.
                    s.finish(account_id, DRAIN_LIMIT).await;
                    continue;
                }
                if now.in_flight == 0 && complete_if_done(pool, job.campaign_id).await? {
                    tracing::info!(campaign_id = %job.campaign_id, "campaign completed");
                    return Ok(JobOutcome::Complete);
                }
                // Messages still in flight (or held): check again soon without a slot.
                return Ok(JobOutcome::snooze_for(Duration::from_secs(1)));
            }
        }
        if claimed == 0 && backlog == 0 {
            // Nothing to send now (window full, or the rest is held by send jobs).
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(JobOutcome::snooze_for(Duration::ZERO)),
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}

/// Whether other bulk jobs (another campaign's dispatcher, say) are due and waiting for a slot.
async fn bulk_work_waiting(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE lane = 'bulk' AND state IN ('available', 'scheduled', 'retryable')
                    AND run_at <= now())",
    )
    .fetch_one(pool)
    .await?)
}

/// Hands every queued, unsent message of the campaign to a send job unless it has one: the
/// direct sends of a dispatcher run that died (or was cut off) are settled by the send job,
/// whose gate waits for Meta's status webhook when a request may have left.
async fn adopt_orphans(pool: &PgPool, campaign_id: Uuid) -> anyhow::Result<()> {
    let orphans: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "SELECT m.id, m.org_id, m.account_id FROM messages m
          WHERE m.campaign_id = $1 AND m.status = 'queued' AND m.wamid IS NULL AND m.failed_at IS NULL
            AND m.discarded_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = 'send:' || m.id::text
                               AND j.state IN ('available', 'scheduled', 'retryable', 'running'))",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await?;
    if orphans.is_empty() {
        return Ok(());
    }
    tracing::info!(%campaign_id, count = orphans.len(), "campaign sends left unsettled by an earlier run go to send jobs");
    let jobs: Vec<NewJob<SendMessage>> = orphans
        .into_iter()
        .map(|(message_id, org_id, account_id)| campaigns::send_job(message_id, org_id, account_id))
        .collect();
    let mut conn = pool.acquire().await?;
    jobs::enqueue_many(&mut *conn, jobs).await?;
    Ok(())
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
            AND NOT EXISTS (SELECT 1 FROM messages WHERE campaign_id = $1 AND status = 'queued'
                            AND wamid IS NULL AND failed_at IS NULL)",
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
    variables: Value,
    /// Chosen by the claim (version 7: the slice's messages are inserted in key order).
    message_id: Uuid,
}

/// Who sends a slice's messages.
enum Route<'a> {
    /// The dispatcher itself (`campaign_sends`): no job is enqueued.
    Direct,
    /// One `outbound.send_message` each, due one after another at a little above the number's
    /// `rate` (continuing from `next_due`), not all at once: the lane fetches by due time, so
    /// two campaigns on numbers of different speeds interleave by schedule instead of the slow
    /// number's sends waiting behind the fast number's whole window. The limiter still sets
    /// the exact pace.
    Jobs {
        rate: f64,
        next_due: &'a mut chrono::DateTime<chrono::Utc>,
    },
}

/// Claims up to `limit` pending recipients and, in one transaction, turns them into queued
/// messages routed as `route` says. Returns the queued messages.
///
/// Rows per message: the recipient (claimed and marked `sending` by one UPDATE) and the
/// message. No contact or conversation is created for a customer who has not written: the
/// message joins the customer's open conversation when there is one (which it brings up to
/// date, as any send does), and otherwise waits without one until a conversation is opened
/// (`campaigns::attach_to_conversation`).
async fn dispatch_slice(
    pool: &PgPool,
    campaign_id: Uuid,
    c: &CampaignRow,
    limit: i64,
    route: Route<'_>,
) -> anyhow::Result<Vec<Queued>> {
    let mut tx = pool.begin().await?;
    // Re-checked under the row lock: a pause or cancel committed before this point stops the
    // slice; one committed after it finds the messages and holds them at the send's mark.
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1 FOR SHARE")
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
    if status.as_deref() != Some("RUNNING") {
        return Ok(Vec::new());
    }
    // Claim and mark in one statement: the n-th claimed recipient (in id order) gets the n-th
    // message id.
    let message_ids: Vec<Uuid> = (0..limit).map(|_| Uuid::now_v7()).collect();
    let mut rows: Vec<Claimed> = sqlx::query_as(
        "UPDATE campaign_recipients r SET status = 'sending', message_id = ($3::uuid[])[c.n], updated_at = now()
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                   FROM (SELECT id FROM campaign_recipients
                          WHERE campaign_id = $1 AND status = 'pending'
                          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) p) c
          WHERE r.id = c.id
         RETURNING r.id, r.phone, r.variables, r.message_id",
    )
    .bind(campaign_id)
    .bind(limit)
    .bind(&message_ids)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    rows.sort_by_key(|r| r.id);
    let phones: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
    // The recipients we know: opted out or blocked (skipped), or with an open conversation on
    // this number (the message goes there).
    let known: Vec<(String, Option<String>, Option<Uuid>)> = sqlx::query_as(
        "SELECT ct.wa_id, CASE WHEN ct.blocked THEN 'blocked' WHEN ct.marketing_opt_out THEN 'opted_out' END, c.id
           FROM contacts ct
           LEFT JOIN conversations c ON c.contact_id = ct.id AND c.account_id = $2 AND c.status <> 'CLOSED'
          WHERE ct.org_id = $1 AND ct.wa_id = ANY($3)",
    )
    .bind(c.org_id)
    .bind(c.account_id)
    .bind(&phones)
    .fetch_all(&mut *tx)
    .await?;
    let mut refused: HashMap<String, String> = HashMap::new();
    let mut conversation_of: HashMap<String, Uuid> = HashMap::new();
    for (wa_id, reason, conversation) in known {
        if let Some(reason) = reason {
            refused.insert(wa_id, reason);
        } else if let Some(id) = conversation {
            conversation_of.insert(wa_id, id);
        }
    }
    if !refused.is_empty() {
        // Opted-out and blocked contacts are skipped, with the reason the stats and export show.
        let (ids, reasons): (Vec<i64>, Vec<&str>) = rows
            .iter()
            .filter_map(|r| Some((r.id, refused.get(&r.phone)?.as_str())))
            .unzip();
        sqlx::query(
            "UPDATE campaign_recipients r SET status = 'skipped', skip_reason = u.reason, message_id = NULL,
                    updated_at = now()
               FROM UNNEST($1::bigint[], $2::text[]) AS u(id, reason) WHERE r.id = u.id",
        )
        .bind(&ids)
        .bind(&reasons)
        .execute(&mut *tx)
        .await?;
        rows.retain(|r| !refused.contains_key(&r.phone));
    }

    // Each recipient's request; the inbox preview only for those with a conversation.
    let vars = TemplateVars::of(&c.template_components, &c.parameter_format);
    let n = rows.len();
    let (mut msg_ids, mut conv_ids, mut contents, mut requests) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::<String>::with_capacity(n),
    );
    let mut bumped: Vec<(Uuid, String)> = Vec::new();
    let empty = Map::new();
    for r in &rows {
        let values = r.variables.as_object().unwrap_or(&empty);
        let template = campaigns::template_object(
            &c.template_name,
            &c.template_language,
            &vars,
            c.header_media_link.as_deref(),
            values,
        );
        let conversation = conversation_of.get(&r.phone).copied();
        if let Some(id) = conversation {
            let sent_components = template["components"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let preview = rules::render_body(&c.template_components, &sent_components)
                .map(|t| t.chars().take(100).collect::<String>())
                .unwrap_or_else(|| format!("[template] {}", c.template_name));
            bumped.push((id, preview));
        }
        let request = campaigns::request_body(r.message_id, &r.phone, &template);
        msg_ids.push(r.message_id);
        conv_ids.push(conversation);
        contents.push(json!({"template": template}).to_string());
        requests.push(request.to_string());
    }
    if !bumped.is_empty() {
        // In id order, so that concurrent writers lock shared conversations in one order.
        bumped.sort_by_key(|(id, _)| *id);
        let (ids, previews): (Vec<Uuid>, Vec<String>) = bumped.into_iter().unzip();
        sqlx::query(
            "UPDATE conversations c SET last_message_at = now(), last_message_preview = u.preview,
                    last_message_direction = 'OUTBOUND'
               FROM UNNEST($1::uuid[], $2::text[]) AS u(id, preview) WHERE c.id = u.id",
        )
        .bind(&ids)
        .bind(&previews)
        .execute(&mut *tx)
        .await?;
    }
    // A slice the dispatcher sends itself is marked "may be in flight" as it is created, in
    // this transaction: its sends then need no write before their requests leave (that write
    // per message was the send path's second-largest cost). The dispatcher clears the mark of
    // any message it hands to a send job without having sent it (`campaign_sends`); after a
    // crash the mark makes the send job wait for Meta's status webhook before sending, as for
    // any send that may have left.
    let direct = matches!(route, Route::Direct);
    sqlx::query(
        "INSERT INTO messages (id, org_id, conversation_id, account_id, direction, type, content, status, request,
                               template_name, campaign_id, send_started_at)
         SELECT u.id, $1, u.conversation_id, $2, 'OUTBOUND', 'template', u.content::jsonb, 'queued', u.request::jsonb,
                $3, $4, CASE WHEN $9 THEN now() END
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
    .bind(direct)
    .execute(&mut *tx)
    .await?;
    if let Route::Jobs { rate, next_due } = route {
        let spacing = chrono::Duration::microseconds((1e6 / (rate * DUE_AHEAD)).max(1.0) as i64);
        let first = (*next_due).max(chrono::Utc::now());
        let jobs: Vec<NewJob<SendMessage>> = msg_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                campaigns::send_job(*id, c.org_id, c.account_id).run_at(first + spacing * i as i32)
            })
            .collect();
        *next_due = first + spacing * msg_ids.len() as i32;
        jobs::enqueue_many(&mut *tx, jobs).await?;
    }
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .zip(requests)
        .map(|(r, request)| Queued {
            message_id: r.message_id,
            to: r.phone,
            request,
        })
        .collect())
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
