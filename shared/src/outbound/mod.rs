//! Outbound sending (ARCHITECTURE.md, "Sending a message"): the API inserts a `queued` message
//! with the Cloud API body it will send and enqueues [`SendMessage`] in the same transaction;
//! a worker in the `outbound` lane takes a permit from the number's and the recipient's
//! limiters, calls Meta, and records the result as an attempt.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::jobs::{self, backoff, JobKind, Lane, NewJob};

mod queue;
mod recipient;
pub use queue::{load_target, queue_outbound, replay, NewOutbound, QueueError, Target};
pub use recipient::{account_by_phone_number_id, existing_target, open_target};

/// Base of the send retry backoff (`SEND_RETRY_BASE_MS`, default 2 s).
pub static SEND_RETRY_BASE: backoff::Tunable =
    backoff::Tunable::new("SEND_RETRY_BASE_MS", Duration::from_secs(2));
/// How long a send whose outcome is unknown (timeout after the request left) waits for Meta's
/// status webhook before it is sent again (`SEND_UNKNOWN_OUTCOME_WAIT_MS`, default 30 s).
pub static UNKNOWN_OUTCOME_WAIT: backoff::Tunable =
    backoff::Tunable::new("SEND_UNKNOWN_OUTCOME_WAIT_MS", Duration::from_secs(30));
/// How often a message held for a new token checks again (`SEND_HOLD_RECHECK_MS`, default
/// 60 s); saving a new token wakes held messages at once anyway.
pub static HOLD_RECHECK: backoff::Tunable =
    backoff::Tunable::new("SEND_HOLD_RECHECK_MS", Duration::from_secs(60));

/// Sends one outbound message (`messages.id`). Never sends a message that has a wamid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendMessage {
    pub message_id: Uuid,
    /// The sending account, so held sends can be released when its token is fixed.
    pub account_id: Uuid,
    /// What asked for this send: `send`, `retry`, `bulk_retry`.
    #[serde(default = "default_trigger")]
    pub trigger: String,
}

fn default_trigger() -> String {
    "send".into()
}

impl JobKind for SendMessage {
    const KIND: &'static str = "outbound.send_message";
    const LANE: Lane = Lane::Outbound;
    /// Transient failures (5xx, timeouts, 130429) retry with backoff this many times before
    /// the message is marked failed (retryable) for the dashboard.
    const MAX_ATTEMPTS: i32 = 8;

    fn backoff(attempt: i32) -> Duration {
        backoff::exponential_jitter(attempt, SEND_RETRY_BASE.get(), Duration::from_secs(300))
    }
}

/// Enqueues the send of a message, once: a second enqueue while one is unfinished is skipped.
pub async fn enqueue_send(
    conn: &mut PgConnection,
    org_id: Uuid,
    message_id: Uuid,
    account_id: Uuid,
    trigger: &str,
) -> Result<Option<i64>, jobs::JobsError> {
    let job = NewJob::new(SendMessage {
        message_id,
        account_id,
        trigger: trigger.into(),
    })
    .org(org_id)
    .unique_key(format!("send:{message_id}"));
    jobs::enqueue(&mut *conn, job).await
}

/// Wakes the held sends of an account (its token was fixed): they run now instead of at their
/// next check.
pub async fn release_held(conn: &mut PgConnection, account_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = now(), state = 'available'
          WHERE kind = $1 AND state IN ('scheduled', 'retryable') AND payload->>'account_id' = $2",
    )
    .bind(SendMessage::KIND)
    .bind(account_id.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(jobs::NOTIFY_CHANNEL)
            .bind(Lane::Outbound.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(done.rows_affected())
}

/// Messages each of an organization's numbers sent in the last minute (accepted by Meta), per
/// second: the send rate a person watching the console sees. Numbers that sent nothing are
/// absent. Reads through `messages_org_idx` (messages created in the last hour).
pub async fn recent_send_rates(
    pool: &sqlx::PgPool,
    org_id: Uuid,
) -> Result<Vec<(Uuid, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, count(*)::float8 / 60.0
           FROM messages
          WHERE org_id = $1 AND created_at > now() - interval '1 hour'
            AND direction = 'OUTBOUND' AND sent_at > now() - interval '1 minute'
          GROUP BY account_id",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await
}
