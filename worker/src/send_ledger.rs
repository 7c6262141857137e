//! Group commit for the send path. Every send writes twice: a durable "may be in flight" mark
//! before the request leaves (so a worker that dies mid-request never causes a blind resend)
//! and the wamid with its attempt row after Meta answers (so the message is never sent again).
//! One transaction per write made the WAL flush the ceiling of the whole platform (about 800
//! sends/s on the benchmark machine, every backend waiting on `WALWrite`). Here the concurrent
//! send jobs of a process hand those writes to a few writer tasks, which apply everything that
//! is waiting in ONE transaction and answer each job after the commit: the same guarantees
//! (nothing is acknowledged before it is durable), a fraction of the commits.

use std::sync::{Arc, OnceLock};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// Most writes applied by one transaction.
const MAX_BATCH: usize = 512;
/// Writer tasks per process: while one waits for its commit to be flushed, another collects
/// and applies the next batch.
const WRITERS: usize = 3;

/// A send Meta accepted.
pub struct Sent {
    pub message_id: Uuid,
    pub org_id: Uuid,
    /// The attempt's number (the message's `send_attempts` after it).
    pub attempt: i32,
    pub wamid: String,
    /// What asked for the send (`send`, `retry`, `bulk_retry`).
    pub trigger: String,
}

enum Write {
    /// Mark the message as possibly in flight unless its campaign is paused or cancelled;
    /// answers whether it was marked.
    MarkStarted(Uuid, oneshot::Sender<Result<bool, String>>),
    Sent(Sent, oneshot::Sender<Result<(), String>>),
}

/// The process's send ledger (cheap to clone; writers start on first use).
#[derive(Clone, Default)]
pub struct SendLedger {
    queue: Arc<OnceLock<mpsc::Sender<Write>>>,
}

impl SendLedger {
    fn queue(&self, pool: &PgPool) -> &mpsc::Sender<Write> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..WRITERS {
                tokio::spawn(writer(pool.clone(), rx.clone()));
            }
            tx
        })
    }

    /// Durably marks `message_id` as about to be sent; `false` when its campaign is paused or
    /// cancelled (the caller must not send).
    pub async fn mark_started(&self, pool: &PgPool, message_id: Uuid) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.submit(pool, Write::MarkStarted(message_id, reply))
            .await?;
        answer
            .await?
            .map_err(|e| anyhow::anyhow!("marking the send as started: {e}"))
    }

    /// Durably records an accepted send: the wamid (kept if a status webhook adopted one first),
    /// the `sent` status and an attempt row.
    pub async fn record_sent(&self, pool: &PgPool, sent: Sent) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.submit(pool, Write::Sent(sent, reply)).await?;
        answer
            .await?
            .map_err(|e| anyhow::anyhow!("recording the accepted send: {e}"))
    }

    async fn submit(&self, pool: &PgPool, write: Write) -> anyhow::Result<()> {
        self.queue(pool)
            .send(write)
            .await
            .map_err(|_| anyhow::anyhow!("the send ledger's writers stopped"))
    }
}

async fn writer(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Write>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            // Whatever else is already waiting joins this transaction; no artificial delay.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
        }
        apply(&pool, batch).await;
    }
}

async fn apply(pool: &PgPool, batch: Vec<Write>) {
    let mut marks = Vec::new();
    let mut sents = Vec::new();
    for w in batch {
        match w {
            Write::MarkStarted(id, reply) => marks.push((id, reply)),
            Write::Sent(s, reply) => sents.push((s, reply)),
        }
    }
    match write(pool, &marks, &sents).await {
        Ok(marked) => {
            for (id, reply) in marks {
                let _ = reply.send(Ok(marked.contains(&id)));
            }
            for (_, reply) in sents {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            // Nothing of the batch is committed: every job sees the error and retries.
            tracing::warn!(error = %e, "send ledger batch failed");
            let text = e.to_string();
            for (_, reply) in marks {
                let _ = reply.send(Err(text.clone()));
            }
            for (_, reply) in sents {
                let _ = reply.send(Err(text.clone()));
            }
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// One transaction for the whole batch; returns the ids that were marked as started.
async fn write(
    pool: &PgPool,
    marks: &[(Uuid, Reply<bool>)],
    sents: &[(Sent, Reply<()>)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut marked = Vec::new();
    if !marks.is_empty() {
        // Sorted ids: concurrent batches lock rows in one order.
        let mut ids: Vec<Uuid> = marks.iter().map(|(id, _)| *id).collect();
        ids.sort();
        marked = sqlx::query_scalar(
            "UPDATE messages m SET send_started_at = now()
               FROM UNNEST($1::uuid[]) AS u(id)
              WHERE m.id = u.id
                AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = m.campaign_id
                                   AND c.status IN ('PAUSED', 'CANCELLED'))
             RETURNING m.id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    }
    if !sents.is_empty() {
        let mut rows: Vec<&Sent> = sents.iter().map(|(s, _)| s).collect();
        rows.sort_by_key(|s| s.message_id);
        let ids: Vec<Uuid> = rows.iter().map(|s| s.message_id).collect();
        let orgs: Vec<Uuid> = rows.iter().map(|s| s.org_id).collect();
        let attempts: Vec<i32> = rows.iter().map(|s| s.attempt).collect();
        let wamids: Vec<&str> = rows.iter().map(|s| s.wamid.as_str()).collect();
        let triggers: Vec<&str> = rows.iter().map(|s| s.trigger.as_str()).collect();
        // A status webhook may have adopted the wamid first (biz_opaque_callback_data): keep
        // its status if it is further along.
        sqlx::query(
            "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[])
                                 AS u(id, org_id, attempt, wamid, trigger)),
                  updated AS (
                    UPDATE messages m SET wamid = COALESCE(m.wamid, u.wamid),
                           status = CASE WHEN message_status_rank(m.status) < 1 THEN 'sent' ELSE m.status END,
                           sent_at = COALESCE(m.sent_at, now()), hold_reason = NULL, error = NULL,
                           error_code = NULL, retryable = NULL, send_attempts = m.send_attempts + 1
                      FROM u WHERE m.id = u.id)
             INSERT INTO message_attempts (message_id, org_id, attempt, outcome, wamid, trigger)
             SELECT id, org_id, attempt, 'sent', wamid, trigger FROM u",
        )
        .bind(&ids)
        .bind(&orgs)
        .bind(&attempts)
        .bind(&wamids)
        .bind(&triggers)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(marked)
}
