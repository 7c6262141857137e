//! The campaign dispatcher's own sends: the happy path of a campaign message without a job.
//!
//! A job per recipient costs four queue writes (insert, claim, complete, and the job's own
//! read of its message) for a send that usually succeeds at once. So the dispatcher sends the
//! messages it has just created itself, through the same steps as `outbound.send_message`:
//! the limiter (number and recipient buckets, shared with every worker), the request, and the
//! group-committed wamid. The durable "may be in flight" mark is written when the dispatcher
//! creates the messages (same transaction), not per send; pause and cancel reach the sends
//! through the dispatcher's check every 200 ms, so a pause stops them within a quarter second.
//!
//! Pacing: the dispatcher asks the limiter for the next messages' slots a few at a time (one
//! Redis round trip for up to 64 decisions) and reserves at most 50 ms ahead, so an
//! interactive send arriving meanwhile waits at most that long behind the campaign. Each send
//! starts at its slot in a task of its own; the request's latency does not hold up the pace.
//!
//! Everything else becomes an ordinary send job, so there is one place that knows Meta's
//! errors: a failed request is classified by the send job's `handle_error` (which records the
//! attempt, slows the number down, pauses the campaign for a template error...) and what it
//! decides next (retry, wait) is enqueued as that message's `outbound.send_message`. A send
//! that finds no token within the reservation horizon, or a campaign paused meanwhile, is
//! handed over the same way.
//!
//! Crash safety is the send job's: the mark is durable before the request leaves, and the
//! dispatcher that runs next adopts every queued campaign message without a job (see
//! `campaigns::adopt_orphans`); the job's gate waits for Meta's status webhook before sending
//! a message that may have left already.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;
use wharf_shared::{
    accounts::AccountCredentials,
    campaigns,
    jobs::{self, JobKind, JobOutcome, NewJob},
    outbound::SendMessage,
    ratelimit::{Bucket, Decision},
};

use super::send_message::{handle_error, Attempting};
use crate::{deps::WorkerDeps, send_ledger::Sent};

/// How far ahead the dispatcher reserves its sends' slots: short, so an interactive send that
/// arrives meanwhile (which may reserve up to the limiter's horizon) waits at most this long
/// behind the campaign.
const PACE_HORIZON: Duration = Duration::from_millis(50);
/// Most decisions asked of the limiter in one round trip.
const MAX_CHUNK: usize = 64;
/// Most sends in flight per dispatcher (requests waiting on a slow Meta).
const MAX_IN_FLIGHT: usize = 2048;
/// A message whose recipient's bucket has no token for longer than this goes to its send job
/// (which waits without holding up the rest of the campaign).
const HAND_OVER_AFTER: Duration = wharf_shared::ratelimit::RESERVATION_HORIZON;

/// A queued campaign message ready to go.
pub struct Queued {
    pub message_id: Uuid,
    pub to: String,
    /// The Cloud API body, serialized (as stored in `messages.request`).
    pub request: String,
}

/// The account a dispatcher sends from, as of its latest check.
pub struct SendingAccount {
    pub account: AccountCredentials,
    pub number: Bucket,
}

/// The dispatcher's claimed messages, in order, and its sends in flight.
pub struct Sender {
    deps: WorkerDeps,
    pool: PgPool,
    org_id: Uuid,
    backlog: VecDeque<Queued>,
    tasks: JoinSet<()>,
}

impl Sender {
    pub fn new(deps: WorkerDeps, pool: PgPool, org_id: Uuid) -> Self {
        Self {
            deps,
            pool,
            org_id,
            backlog: VecDeque::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Claimed messages not started yet.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Sends in flight (finished ones are collected first).
    pub fn in_flight(&mut self) -> usize {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.len()
    }

    pub fn push(&mut self, messages: Vec<Queued>) {
        self.backlog.extend(messages);
    }

    /// Takes the limiter's slots for the next messages (one round trip for up to
    /// [`MAX_CHUNK`]) and starts their sends, each at its slot. Returns how long to wait before
    /// asking again, or `None` to go on at once.
    pub async fn pace(&mut self, from: &Arc<SendingAccount>, rate: f64) -> Option<Duration> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight());
        let chunk = ((rate * PACE_HORIZON.as_secs_f64()).ceil() as usize)
            .clamp(1, MAX_CHUNK)
            .min(room)
            .min(self.backlog.len());
        if chunk == 0 {
            return Some(PACE_HORIZON);
        }
        let buckets: Vec<[Bucket; 2]> = self
            .backlog
            .iter()
            .take(chunk)
            .map(|m| {
                [
                    from.number.clone(),
                    Bucket::pair(&from.account.phone_number_id, &m.to),
                ]
            })
            .collect();
        let requests: Vec<&[Bucket]> = buckets.iter().map(|b| &b[..]).collect();
        let decisions = self
            .deps
            .limiter
            .acquire_many(&requests, PACE_HORIZON)
            .await;
        let mut refused = Vec::new();
        let mut wait: Option<Duration> = None;
        for decision in decisions {
            let Some(message) = self.backlog.pop_front() else {
                break;
            };
            match decision {
                Decision::Allowed => self.start(from, message, Duration::ZERO),
                Decision::Reserved(at) => self.start(from, message, at),
                Decision::Wait(w) if w > HAND_OVER_AFTER => {
                    // The recipient's own bucket (or a number slowed right down): its send job
                    // waits instead of the campaign.
                    let job = payload(from, &message);
                    let next = Ok(JobOutcome::snooze_for(w));
                    if let Err(e) = hand_over(&self.pool, self.org_id, job, next, Unsent).await {
                        tracing::warn!(message_id = %message.message_id, error = %e, "could not hand a campaign send to its job; the next dispatcher run adopts it");
                    }
                }
                Decision::Wait(w) => {
                    wait = Some(wait.map_or(w, |x: Duration| x.min(w)));
                    refused.push(message);
                }
            }
        }
        // Refused ones keep their place at the front.
        for message in refused.into_iter().rev() {
            self.backlog.push_front(message);
        }
        wait
    }

    fn start(&mut self, from: &Arc<SendingAccount>, message: Queued, at: Duration) {
        let (deps, pool, org_id, from) = (
            self.deps.clone(),
            self.pool.clone(),
            self.org_id,
            from.clone(),
        );
        self.tasks.spawn(async move {
            if !at.is_zero() {
                tokio::time::sleep(at).await;
            }
            let message_id = message.message_id;
            if let Err(e) = send(&deps, &pool, org_id, &from, message).await {
                // Not lost: the message is queued without a job, and the next dispatcher run
                // adopts it (a job, whose gate handles a send that may have left).
                tracing::warn!(%message_id, error = %e, "campaign send not settled; its dispatcher will hand it to a send job");
            }
        });
    }

    /// Waits for the sends in flight (at most `limit`; the rest are aborted and adopted by the
    /// next run), then hands the messages not started to their send jobs, whose gate holds
    /// them while the campaign is paused and drops them when it is cancelled.
    pub async fn finish(mut self, account_id: Uuid, limit: Duration) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                left = self.tasks.len(),
                "campaign sends still running at the dispatcher's end; aborted"
            );
            self.tasks.abort_all();
        }
        if self.backlog.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.backlog.iter().map(|m| m.message_id).collect();
        let jobs: Vec<NewJob<SendMessage>> = self
            .backlog
            .drain(..)
            .map(|m| campaigns::send_job(m.message_id, self.org_id, account_id))
            .collect();
        let handed = async {
            let mut tx = self.pool.begin().await?;
            clear_in_flight_mark(&mut tx, &ids).await?;
            jobs::enqueue_many(&mut *tx, jobs).await?;
            tx.commit().await?;
            anyhow::Ok(())
        };
        if let Err(e) = handed.await {
            tracing::warn!(error = %e, "could not hand the dispatcher's backlog to send jobs; the next run adopts it");
        }
    }
}

/// The send job payload of a campaign message (what `handle_error` and `hand_over` take).
fn payload(from: &SendingAccount, message: &Queued) -> SendMessage {
    SendMessage {
        message_id: message.message_id,
        account_id: from.account.id,
        trigger: "campaign".into(),
    }
}

async fn send(
    deps: &WorkerDeps,
    pool: &PgPool,
    org_id: Uuid,
    from: &SendingAccount,
    message: Queued,
) -> anyhow::Result<()> {
    let job = payload(from, &message);
    let sent = deps
        .meta
        .send_message_text(
            from.account.access_token.expose(),
            &from.account.phone_number_id,
            message.request,
        )
        .await;
    match sent {
        Ok(resp) => {
            deps.ledger
                .record_sent(
                    pool,
                    Sent {
                        message_id: message.message_id,
                        org_id,
                        attempt: 1,
                        wamid: resp.wamid().unwrap_or_default().to_string(),
                        trigger: job.trigger.clone(),
                    },
                )
                .await
        }
        Err(err) => {
            let first = Attempting {
                org_id,
                send_attempts: 0,
                pair_delays: 0,
                last_try: false,
            };
            let next =
                handle_error(pool, deps, &job, &first, &from.account, &from.number, err).await;
            hand_over(pool, org_id, job, next, Tried).await
        }
    }
}

/// Whether the dispatcher tried the message's request before handing it over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handed {
    /// Never sent: its "may be in flight" mark is cleared with the hand-over, so the send
    /// job sends it without waiting for a status webhook that cannot come.
    Unsent,
    /// Sent and answered with an error (`handle_error` recorded the attempt).
    Tried,
}
use Handed::{Tried, Unsent};

/// Clears the "may be in flight" mark of messages the dispatcher created for itself and hands
/// over without having sent them.
async fn clear_in_flight_mark(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ids: &[Uuid],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET send_started_at = NULL
          WHERE id = ANY($1) AND wamid IS NULL
            AND NOT EXISTS (SELECT 1 FROM message_attempts a WHERE a.message_id = messages.id)",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Enqueues the message's send job for what the send job's logic decided: nothing when the
/// message is settled (sent, failed, discarded), a job at the snooze time, or a retry after
/// the kind's first backoff.
async fn hand_over(
    pool: &PgPool,
    org_id: Uuid,
    job: SendMessage,
    next: anyhow::Result<JobOutcome>,
    handed: Handed,
) -> anyhow::Result<()> {
    let run_at = match next {
        Ok(JobOutcome::Complete | JobOutcome::Discard(_)) => return Ok(()),
        Ok(JobOutcome::Snooze(at)) => at,
        Err(e) => {
            tracing::info!(message_id = %job.message_id, error = %e, "campaign send will be retried by its send job");
            chrono::Utc::now()
                + chrono::Duration::from_std(SendMessage::backoff(1)).unwrap_or_default()
        }
    };
    let mut tx = pool.begin().await?;
    if handed == Unsent {
        clear_in_flight_mark(&mut tx, &[job.message_id]).await?;
    }
    jobs::enqueue(
        &mut *tx,
        campaigns::send_job(job.message_id, org_id, job.account_id).run_at(run_at),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
