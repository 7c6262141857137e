//! `inbox.send_read_receipt`: marks a customer's message read at Meta when an agent reads the
//! conversation, paced through the number's shared rate bucket like any call to its messages
//! endpoint. Best effort: a disconnected or unauthorised account drops the receipt; Meta
//! throttling or down retries with backoff.

use uuid::Uuid;
use wharf_shared::{
    accounts, inbox::jobs::SendReadReceipt, jobs::JobOutcome, meta::ErrorClass, ratelimit::Bucket,
};

use super::send_message::take_slot;
use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: SendReadReceipt,
) -> anyhow::Result<JobOutcome> {
    let row: Option<(Uuid, String, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT m.account_id, m.wamid, a.messages_per_second, a.throughput_level
           FROM messages m JOIN whatsapp_accounts a ON a.id = m.account_id
          WHERE m.id = $1 AND m.direction = 'INBOUND' AND m.wamid IS NOT NULL",
    )
    .bind(job.message_id)
    .fetch_optional(&ctx.pool)
    .await?;
    let Some((account_id, wamid, mps, level)) = row else {
        return Ok(JobOutcome::Complete);
    };
    let Some(account) = accounts::credentials(&ctx.pool, &deps.secrets, account_id).await? else {
        return Ok(JobOutcome::Complete);
    };
    if account.status != "CONNECTED" {
        return Ok(JobOutcome::Complete);
    }
    let rate = f64::from(mps.unwrap_or_else(|| accounts::rate_for_level(level.as_deref())));
    if let Some(wait) = take_slot(&deps, &[Bucket::number(&account.phone_number_id, rate)]).await {
        return Ok(JobOutcome::snooze_for(wait));
    }
    match deps
        .meta
        .mark_read(
            account.access_token.expose(),
            &account.phone_number_id,
            &wamid,
        )
        .await
    {
        Ok(()) => Ok(JobOutcome::Complete),
        Err(e) if e.class() == ErrorClass::Retryable => Err(e.into()),
        Err(e) => {
            tracing::warn!(message_id = %job.message_id, error = %e, "read receipt refused by Meta; dropped");
            Ok(JobOutcome::Complete)
        }
    }
}
