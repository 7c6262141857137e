//! Group commit for Meta webhooks (ARCHITECTURE.md, "Inbound webhooks").
//!
//! Every accepted webhook needs its event row and its `process_webhook` job durably committed
//! before we answer 200. One transaction per webhook makes the commit (a WAL flush) and four
//! round trips the cost of every request; under load that, not the work, is the ceiling.
//!
//! So handlers verify the signature and parse (in parallel, on the request's task), then hand
//! the event to [`WebhookIngest`] and wait. A batcher task takes whatever events are waiting
//! (never waiting for more: the requests that arrive while the previous batch is stored are the
//! next batch) and stores them in ONE transaction: one multi-row insert of the events (routing
//! by `phone_number_id` joined in), one bulk enqueue of their jobs, one commit. Then every
//! waiter of the batch gets its answer.
//!
//! A few batchers share the queue as a pipeline: the one holding the queue takes a batch and
//! runs its statements, then hands the queue on and commits. So batches stay as large as the
//! load makes them (one is built while the previous one's statements run) and a commit's WAL
//! flush overlaps the next batch's statements. (Handing the queue on as soon as a batch is
//! taken instead made batches 1/N as large, N times the transactions for the same work.)
//!
//! Guarantees, as with one transaction per webhook:
//! - a waiter is answered `Ok` only after the transaction holding its event row and its job has
//!   committed (or, for a duplicate body, after the row stored earlier is committed: the
//!   `ON CONFLICT` check waits for a concurrent inserter to finish);
//! - a body is stored once (sha256 dedupe key) and has one job, duplicates inside a batch are
//!   merged before the insert, duplicates across batches are skipped by `ON CONFLICT`;
//! - a failed transaction stores nothing: a database outage answers every waiter 503 (Meta
//!   retries), and any other failure re-runs the batch one event per transaction, so one event
//!   Postgres refuses cannot fail its neighbours.
//!
//! A full queue makes handlers wait (backpressure); nothing is dropped.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex, MutexGuard};
use uuid::Uuid;
use wharf_shared::{
    inbox::jobs::{ProcessStatuses, ProcessWebhook},
    jobs::{self, JobsError, NewJob},
};

use crate::error::ApiError;

/// Batchers: one building and running a batch while up to two others commit. Each holds a
/// pool connection while it works; more would only add connections.
const BATCHERS: usize = 3;
/// Most events in one transaction.
const MAX_BATCH_EVENTS: usize = 256;
/// Soft cap on one batch's payload bytes (a webhook may be 3 MB): a batch stops growing once
/// it holds this much.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Events waiting for a batcher before handlers wait to enqueue.
const QUEUE_CAPACITY: usize = 2 * MAX_BATCH_EVENTS;

/// Which endpoint received the event (`webhook_events.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /webhooks/whatsapp`, signed with `META_APP_SECRET`.
    Platform,
    /// `POST /webhooks/whatsapp/{channel_id}`, signed with the channel's secret.
    Channel,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Platform => "platform",
            Source::Channel => "channel",
        }
    }
}

/// A signature-verified webhook, ready to store.
#[derive(Debug)]
pub struct WebhookEvent {
    source: Source,
    /// The channel's account and org (channel endpoint), already known.
    channel: Option<(Uuid, Uuid)>,
    /// The one phone number id the whole event is about, if it is about exactly one: the event
    /// is routed to the connected account with that id. Otherwise the job routes per change.
    phone_number_id: Option<String>,
    /// The JSON stored in `webhook_events.payload`, as text (Postgres parses it once).
    payload: String,
    /// sha256 (hex) of the raw body: Meta's retries of the same delivery are stored once.
    dedupe_key: String,
    /// The event holds message statuses and nothing else: it is applied with the other
    /// statuses of its batch by one `process_statuses` job.
    statuses_only: bool,
}

impl WebhookEvent {
    /// An event of the platform app, routed by its `phone_number_id`.
    pub fn platform(body: &[u8]) -> Self {
        let mut payload = parse_body(body);
        replace_nul(&mut payload);
        let ids = phone_number_ids(&payload);
        let phone_number_id = match <[String; 1]>::try_from(ids) {
            Ok([id]) => Some(id),
            Err(_) => None,
        };
        Self::new(Source::Platform, None, phone_number_id, &payload, body)
    }

    /// An event of a channel: it belongs to that channel's account and org.
    pub fn channel(account_id: Uuid, org_id: Uuid, body: &[u8]) -> Self {
        let mut payload = parse_body(body);
        replace_nul(&mut payload);
        Self::new(
            Source::Channel,
            Some((account_id, org_id)),
            None,
            &payload,
            body,
        )
    }

    fn new(
        source: Source,
        channel: Option<(Uuid, Uuid)>,
        phone_number_id: Option<String>,
        payload: &Value,
        body: &[u8],
    ) -> Self {
        Self {
            source,
            channel,
            phone_number_id,
            payload: payload.to_string(),
            dedupe_key: hex::encode(Sha256::digest(body)),
            statuses_only: statuses_only(payload),
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }
}

/// The body as JSON. A signed body that is not JSON is still kept (the job records it as
/// malformed).
fn parse_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::json!({"_raw": String::from_utf8_lossy(body)}))
}

/// Postgres's `jsonb` cannot hold the character U+0000, so a body with one would be refused
/// and Meta would retry it for days. Each is replaced with U+FFFD (the replacement character):
/// the event is kept, and the raw body's hash still dedupes Meta's retries.
fn replace_nul(value: &mut Value) {
    const NUL: char = '\0';
    match value {
        Value::String(s) if s.contains(NUL) => *s = s.replace(NUL, "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) if map.keys().any(|k| k.contains(NUL)) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                replace_nul(&mut item);
                map.insert(key.replace(NUL, "\u{FFFD}"), item);
            }
        }
        Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

/// Whether every change of the event is a `messages` change with statuses and nothing else
/// (no messages, no errors): Meta's delivery reports for our sends.
fn statuses_only(payload: &Value) -> bool {
    let mut changes = payload["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .peekable();
    changes.peek().is_some()
        && changes.all(|c| {
            let value = c["value"].as_object();
            c["field"] == "messages"
                && value.is_some_and(|v| {
                    v.get("statuses").and_then(Value::as_array).is_some()
                        && v.keys().all(|k| {
                            matches!(k.as_str(), "messaging_product" | "metadata" | "statuses")
                        })
                })
        })
}

/// The distinct phone number ids an event is about
/// (`entry[].changes[].value.metadata.phone_number_id`).
fn phone_number_ids(payload: &Value) -> Vec<String> {
    let mut ids: Vec<String> = payload["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .filter_map(|c| {
            c["value"]["metadata"]["phone_number_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What became of an event whose transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now, with its `process_webhook` job.
    Stored { event_id: Uuid },
    /// The same body was stored before (or by another delivery in the same batch).
    Duplicate,
}

/// Why an event was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// The database is unreachable, overloaded or restarting (logged once per batch by the
    /// batcher): 503, Meta retries.
    Unavailable,
    /// Postgres refused this event, alone in its transaction; the cause, for the log: 500.
    Failed(String),
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Unavailable => {
                ApiError::Unavailable("Database temporarily unavailable, please retry".into())
            }
            IngestError::Failed(cause) => {
                ApiError::Internal(anyhow::anyhow!("webhook event not stored: {cause}"))
            }
        }
    }
}

/// An event and the handler waiting for its outcome.
struct Pending {
    event: WebhookEvent,
    reply: oneshot::Sender<Result<Ingested, IngestError>>,
}

/// The handle handlers submit events through; owned by the app state. The batchers stop (after
/// storing what is queued) when the last handle is dropped.
#[derive(Clone)]
pub struct WebhookIngest {
    queue: mpsc::Sender<Pending>,
}

impl WebhookIngest {
    /// Starts the batchers on the current tokio runtime.
    pub fn start(db: PgPool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        // The batchers share one queue: the one holding it takes the next batch.
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..BATCHERS {
            tokio::spawn(run_batcher(db.clone(), rx.clone()));
        }
        Self { queue }
    }

    /// Stores `event` and enqueues its job; returns once that is committed (or failed).
    pub async fn ingest(&self, event: WebhookEvent) -> Result<Ingested, IngestError> {
        let (reply, answer) = oneshot::channel();
        // Waits while the queue is full.
        self.queue
            .send(Pending { event, reply })
            .await
            .map_err(|_| IngestError::Unavailable)?;
        // A dropped reply means the batcher is gone (shutdown): nothing was committed for us.
        answer.await.unwrap_or(Err(IngestError::Unavailable))
    }
}

/// The queue, held by the batcher whose turn it is to take and run a batch.
type QueueTurn<'a> = MutexGuard<'a, mpsc::Receiver<Pending>>;

async fn run_batcher(db: PgPool, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
    loop {
        let mut rx = queue.lock().await;
        // Wait for one event, then take whatever else is already waiting.
        let Some(first) = rx.recv().await else {
            return; // every handle dropped and the queue drained
        };
        let mut bytes = first.event.payload.len();
        batch.push(first);
        while batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.event.payload.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // The turn passes on once the batch's statements have run (or failed).
        commit_batch(&db, std::mem::take(&mut batch), rx).await;
    }
}

/// Stores a batch in one transaction and answers its waiters.
async fn commit_batch(db: &PgPool, batch: Vec<Pending>, turn: QueueTurn<'_>) {
    let events: Vec<&WebhookEvent> = batch.iter().map(|p| &p.event).collect();
    match store(db, &events, Some(turn)).await {
        Ok(stored) => answer(batch, stored),
        Err(err) if batch.len() > 1 && !is_transient(&err) => {
            // Not an outage: perhaps one event Postgres refuses. Isolate it.
            tracing::warn!(error = %err, events = batch.len(),
                "webhook batch failed; storing its events one by one");
            for p in batch {
                match store(db, &[&p.event], None).await {
                    Ok(stored) => answer(vec![p], stored),
                    Err(err) => fail(vec![p], err),
                }
            }
        }
        Err(err) => fail(batch, err),
    }
}

/// Answers waiters after their transaction committed: the first waiter of a newly stored body
/// gets `Stored`, every other one `Duplicate`.
fn answer(batch: Vec<Pending>, mut stored: HashMap<String, Uuid>) {
    for p in batch {
        let outcome = match stored.remove(&p.event.dedupe_key) {
            Some(event_id) => Ingested::Stored { event_id },
            None => Ingested::Duplicate,
        };
        // The handler may be gone (client disconnected); the event is stored all the same.
        let _ = p.reply.send(Ok(outcome));
    }
}

/// Answers waiters whose transaction failed: nothing of theirs was stored.
fn fail(batch: Vec<Pending>, err: StoreError) {
    let answer = if is_transient(&err) {
        tracing::warn!(error = %err, events = batch.len(),
            "webhooks not stored: database unavailable");
        IngestError::Unavailable
    } else {
        // Logged with this cause when the handler turns it into a 500.
        IngestError::Failed(err.to_string())
    };
    for p in batch {
        let _ = p.reply.send(Err(answer.clone()));
    }
}

/// Why a batch's transaction failed.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    /// No connection or no transaction (pool timed out, Postgres down or refusing
    /// connections): nothing was attempted.
    #[error("no database connection: {0}")]
    Connect(sqlx::Error),
    #[error(transparent)]
    Statement(#[from] JobsError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Statement(err.into())
    }
}

/// Failures worth a retry by Meta: no connection, a lost connection, Postgres restarting or out
/// of resources, a deadlock or serialization failure.
fn is_transient(err: &StoreError) -> bool {
    let err = match err {
        StoreError::Connect(_) => return true,
        StoreError::Statement(JobsError::Database(err)) => err,
        StoreError::Statement(_) => return false,
    };
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| ["08", "40", "53", "57P"].iter().any(|p| c.starts_with(p))),
        _ => false,
    }
}

/// Inserts the events (each distinct body once) and their jobs in one transaction. Returns the
/// dedupe keys of the newly stored events with their ids; absent keys were stored before.
///
/// `turn`, if given, is released just before the commit (or on failure), so the next batch's
/// statements overlap this commit.
async fn store(
    db: &PgPool,
    events: &[&WebhookEvent],
    turn: Option<QueueTurn<'_>>,
) -> Result<HashMap<String, Uuid>, StoreError> {
    // One row per distinct body, in dedupe-key order: concurrent batches then take the unique
    // index's locks in the same order and cannot deadlock on a body both of them hold.
    let mut rows: Vec<&WebhookEvent> = events.to_vec();
    rows.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    rows.dedup_by(|a, b| a.dedupe_key == b.dedupe_key);

    let n = rows.len();
    let mut sources = Vec::with_capacity(n);
    let mut accounts: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut orgs: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut phone_number_ids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut payloads: Vec<&str> = Vec::with_capacity(n);
    let mut keys: Vec<&str> = Vec::with_capacity(n);
    let statuses_only: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|e| e.statuses_only)
        .map(|e| e.dedupe_key.as_str())
        .collect();
    for e in rows {
        sources.push(e.source.as_str());
        accounts.push(e.channel.map(|(account, _)| account));
        orgs.push(e.channel.map(|(_, org)| org));
        phone_number_ids.push(e.phone_number_id.as_deref());
        payloads.push(&e.payload);
        keys.push(&e.dedupe_key);
    }

    let mut tx = db.begin().await.map_err(StoreError::Connect)?;
    // Routing as one join: an event about exactly one phone number goes to the connected
    // (not DISCONNECTED) account of that number; at most one exists (partial unique index).
    let inserted: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
        "INSERT INTO webhook_events (source, account_id, org_id, payload, dedupe_key)
         SELECT u.source, COALESCE(u.account_id, a.id), COALESCE(u.org_id, a.org_id),
                u.payload::jsonb, u.dedupe_key
           FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[])
                AS u(source, account_id, org_id, phone_number_id, payload, dedupe_key)
           LEFT JOIN whatsapp_accounts a
                  ON a.phone_number_id = u.phone_number_id AND a.status <> 'DISCONNECTED'
          ORDER BY u.dedupe_key
         ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id, dedupe_key, org_id",
    )
    .bind(&sources)
    .bind(&accounts)
    .bind(&orgs)
    .bind(&phone_number_ids)
    .bind(&payloads)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;

    if inserted.is_empty() {
        // Every body was stored before: nothing to commit.
        tx.rollback().await?;
        return Ok(HashMap::new());
    }
    // Statuses-only events: one job for all of them (per organization, so fairness between
    // tenants holds); every other event: a job of its own.
    let mut statuses: HashMap<Option<Uuid>, Vec<Uuid>> = HashMap::new();
    let mut jobs = Vec::new();
    for (event_id, key, org_id) in &inserted {
        if statuses_only.contains(key.as_str()) {
            statuses.entry(*org_id).or_default().push(*event_id);
        } else {
            let job = ProcessWebhook {
                event_id: *event_id,
            };
            let key = job.unique_key();
            jobs.push(NewJob::new(job).org_opt(*org_id).unique_key(key));
        }
    }
    jobs::enqueue_many(&mut *tx, jobs).await?;
    let batches = statuses
        .into_iter()
        .map(|(org_id, event_ids)| NewJob::new(ProcessStatuses { event_ids }).org_opt(org_id))
        .collect();
    jobs::enqueue_many(&mut *tx, batches).await?;
    drop(turn);
    tx.commit().await?;
    Ok(inserted
        .into_iter()
        .map(|(event_id, key, _)| (key, event_id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_events_about_one_number() {
        let one = br#"{"object":"whatsapp_business_account","entry":[
            {"changes":[{"value":{"metadata":{"phone_number_id":"111"}}},
                        {"value":{"metadata":{"phone_number_id":"111"}}}]}]}"#;
        assert_eq!(
            WebhookEvent::platform(one).phone_number_id.as_deref(),
            Some("111")
        );
        let two = br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"111"}}}]},
                               {"changes":[{"value":{"metadata":{"phone_number_id":"222"}}}]}]}"#;
        assert_eq!(WebhookEvent::platform(two).phone_number_id, None);
        assert_eq!(WebhookEvent::platform(b"{}").phone_number_id, None);
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_raw() {
        let e = WebhookEvent::platform(b"not json");
        assert_eq!(e.payload, r#"{"_raw":"not json"}"#);
        assert_eq!(e.dedupe_key, hex::encode(Sha256::digest(b"not json")));
        assert_eq!(e.phone_number_id, None);
    }

    #[test]
    fn nul_characters_are_replaced_so_postgres_can_store_the_event() {
        let e = WebhookEvent::platform(br#"{"a\u0000": ["x\u0000y", {"k": "\\u0000"}]}"#);
        // The escaped backslash before "u0000" is text, not a NUL: it stays.
        assert_eq!(
            e.payload,
            "{\"a\u{FFFD}\":[\"x\u{FFFD}y\",{\"k\":\"\\\\u0000\"}]}"
        );
        let raw = WebhookEvent::platform(b"not\0json");
        assert_eq!(raw.payload, "{\"_raw\":\"not\u{FFFD}json\"}");
    }

    #[test]
    fn outages_are_transient_refusals_are_not() {
        assert!(is_transient(&StoreError::Connect(sqlx::Error::RowNotFound)));
        assert!(is_transient(&sqlx::Error::PoolTimedOut.into()));
        assert!(!is_transient(&sqlx::Error::RowNotFound.into()));
    }
}
