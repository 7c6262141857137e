//! `inbox.process_statuses`: applies the statuses-only webhook events of one ingestion batch in
//! ONE transaction (ARCHITECTURE.md, "Inbound webhooks").
//!
//! A running campaign's status webhooks arrive at three times its send rate, one per request.
//! A job and a transaction (with its WAL flush) per event made them the bottleneck; here the
//! events the ingestion batcher stored together are applied together, as one set, with the same
//! logic as `process_webhook` (`message_statuses`: forward-only statuses, Meta's errors, the
//! adoption of a wamid our send never recorded) and the same guarantee: every event is marked
//! processed in the transaction that applied it, and a re-run skips what is processed.
//!
//! Statuses are applied in wamid order, so two batches holding statuses of the same messages
//! (a message's `sent` in one, its `delivered` in the next) lock them in one order and do not
//! deadlock. A batch that keeps failing is split into one `process_webhook` job per event, so
//! one event Postgres refuses cannot hold up its neighbours.

use serde_json::Value;
use uuid::Uuid;
use wharf_shared::{
    inbox::jobs::{ProcessStatuses, ProcessWebhook},
    jobs::{self, JobOutcome, NewJob},
};

use super::process_webhook::{check_envelope, Account, EventRow, Processor};
use crate::{deps::WorkerDeps, registry::JobContext};

/// From this attempt on, the batch is split into one job per event.
const SPLIT_AT_ATTEMPT: i32 = 3;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    #[sqlx(flatten)]
    event: EventRow,
}

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: ProcessStatuses,
) -> anyhow::Result<JobOutcome> {
    if ctx.attempt >= SPLIT_AT_ATTEMPT {
        return split(&ctx, job).await;
    }
    let mut tx = ctx.pool.begin().await?;
    // Locked: a `process_webhook` job of the same event (after a split) waits, then skips it.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, source, account_id, org_id, payload, processed_at FROM webhook_events
          WHERE id = ANY($1) AND processed_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&job.event_ids)
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = rows.first() else {
        tx.rollback().await?;
        return Ok(JobOutcome::Complete);
    };
    let mut p = Processor::new(tx, first.id, &first.event);
    // Every change of the batch with its account (one per change, not per status), and each
    // event's notes.
    let mut changes_of_accounts: Vec<(Account, &Value)> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    for row in &rows {
        p.event = &row.event;
        p.notes.clear();
        if let Err(reason) = check_envelope(&row.event.payload) {
            p.notes.push(reason);
        }
        for change in changes(&row.event.payload) {
            let value = &change["value"];
            let Some(number) = value["metadata"]["phone_number_id"].as_str() else {
                p.notes
                    .push("a messages change has no metadata.phone_number_id".into());
                continue;
            };
            let Some(account) = p.account_for_number(number).await? else {
                tracing::warn!(
                    phone_number_id = number,
                    "webhook for a phone number no account has"
                );
                p.notes.push(format!("unknown phone_number_id {number}"));
                continue;
            };
            changes_of_accounts.push((account, value));
        }
        notes.push(std::mem::take(&mut p.notes));
    }
    // Applied as a set, in rounds that each lock their messages in wamid order.
    let statuses: Vec<(&Account, &Value)> = changes_of_accounts
        .iter()
        .flat_map(|(account, value)| {
            let all = value["statuses"].as_array().into_iter().flatten();
            all.map(move |st| (account, st))
        })
        .collect();
    p.statuses(&statuses).await?;
    if !p.notes.is_empty() {
        // Notes of the status step ("a status lacks id or status"): the batch's first event
        // carries them, as they cannot be told apart by event any more.
        notes[0].append(&mut p.notes);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let errors: Vec<Option<String>> = notes
        .iter()
        .map(|n| (!n.is_empty()).then(|| n.join("; ")))
        .collect();
    let mut tx = p.tx;
    sqlx::query(
        "UPDATE webhook_events e SET processed_at = now(), error = u.error
           FROM UNNEST($1::uuid[], $2::text[]) AS u(id, error) WHERE e.id = u.id",
    )
    .bind(&ids)
    .bind(&errors)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    deps.events.publish(&p.events).await;
    Ok(JobOutcome::Complete)
}

/// The `changes` of every entry of an event.
fn changes(payload: &Value) -> impl Iterator<Item = &Value> {
    payload["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
}

/// Hands every unprocessed event of the batch to a `process_webhook` job of its own.
async fn split(ctx: &JobContext, job: ProcessStatuses) -> anyhow::Result<JobOutcome> {
    let events: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, org_id FROM webhook_events WHERE id = ANY($1) AND processed_at IS NULL",
    )
    .bind(&job.event_ids)
    .fetch_all(&ctx.pool)
    .await?;
    tracing::warn!(
        events = events.len(),
        "a batch of status webhooks keeps failing; applying its events one by one"
    );
    let jobs: Vec<NewJob<ProcessWebhook>> = events
        .into_iter()
        .map(|(event_id, org_id)| {
            let job = ProcessWebhook { event_id };
            let key = job.unique_key();
            NewJob::new(job).org_opt(org_id).unique_key(key)
        })
        .collect();
    let mut conn = ctx.pool.acquire().await?;
    jobs::enqueue_many(&mut *conn, jobs).await?;
    Ok(JobOutcome::Complete)
}
