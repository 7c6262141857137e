//! `kb.ingest_document` (lane `llm`): one document from its stored file to searchable chunks.
//!
//! Extract the text and cut it into chunks (CPU work, on a blocking thread), embed the chunks in
//! batches of 64, four in flight, through the organization's embedding provider (its limiter
//! and retries), then write
//! every chunk with its vector and full-text vector in ONE transaction that first deletes the
//! document's previous chunks: a re-run never duplicates and a reader never sees half a
//! document. Progress (`chunks_embedded` of `chunks_total`) is written after each batch.
//!
//! A first ingestion moves the document PENDING → PROCESSING → READY | FAILED. A re-index of a
//! READY document (the embedding model or the language changed) leaves it READY with its old
//! chunks serving until the new ones replace them. A file that cannot be read (damaged,
//! encrypted, no text, too large) fails at once with the reason; a provider's 429 or 5xx that
//! outlasts the client's own retries retries the job with backoff, and the last attempt fails
//! the document with the provider's message, so no document stays PROCESSING. A document
//! deleted meanwhile stops the job between batches, and the final transaction writes nothing
//! for it.

use std::{path::PathBuf, time::Duration};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    chunk::{self, Chunk},
    embedding::{self, Embedder},
    extract::{self, Format, Limits},
    vectors,
};
use crate::{
    crypto::SecretBox,
    jobs::{backoff, JobKind, JobOutcome, Lane},
    llm::LlmClient,
};

/// Chunks embedded per provider call (well under OpenAI's 2,048 and Gemini's 100 inputs, so
/// progress moves and a 429 costs one small batch).
pub const EMBED_BATCH: usize = 64;
/// Batches of one document in flight at once.
pub const EMBED_PARALLEL: usize = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestDocument {
    pub document_id: Uuid,
}

impl IngestDocument {
    /// One unfinished ingestion per document.
    pub fn unique_key(&self) -> String {
        format!("kb_ingest:{}", self.document_id)
    }
}

impl JobKind for IngestDocument {
    const KIND: &'static str = "kb.ingest_document";
    const LANE: Lane = Lane::Llm;
    const MAX_ATTEMPTS: i32 = 6;

    /// 10 s, 20 s, 40 s … (capped at 5 minutes): a provider's rate limit usually clears
    /// within a minute; six attempts span about ten minutes before the document fails.
    fn backoff(attempt: i32) -> Duration {
        backoff::exponential_jitter(attempt, Duration::from_secs(10), Duration::from_secs(300))
    }
}

pub struct IngestDeps<'a> {
    pub pool: &'a PgPool,
    pub llm: &'a LlmClient,
    pub secrets: &'a SecretBox,
    pub blob_dir: &'a std::path::Path,
    pub last_attempt: bool,
}

#[derive(sqlx::FromRow)]
struct DocRow {
    org_id: Uuid,
    format: String,
    blob_path: String,
    status: String,
}

/// Runs one ingestion; `Err` means "retry later" (the runtime's backoff).
pub async fn run(d: &IngestDeps<'_>, job: &IngestDocument) -> anyhow::Result<JobOutcome> {
    let doc: Option<DocRow> =
        sqlx::query_as("SELECT org_id, format, blob_path, status FROM kb_documents WHERE id = $1")
            .bind(job.document_id)
            .fetch_optional(d.pool)
            .await?;
    let Some(doc) = doc else {
        return Ok(JobOutcome::Complete);
    };
    let id = job.document_id;
    let reindex = doc.status == "READY";
    if !reindex {
        sqlx::query(
            "UPDATE kb_documents SET status = 'PROCESSING', error = NULL, chunks_embedded = 0, updated_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .execute(d.pool)
        .await?;
    }

    let path: PathBuf = d.blob_dir.join(&doc.blob_path);
    let format = match Format::parse(&doc.format) {
        Some(f) => f,
        None => return fail(d, id, &format!("unknown format {}", doc.format)).await,
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(d, id, "the uploaded file is missing from storage").await
        }
        Err(e) => return Err(e.into()),
    };
    let prepared = tokio::task::spawn_blocking(move || {
        let extracted = extract::extract(format, &bytes, &Limits::default())?;
        let chunks = chunk::chunk(
            &extracted,
            chunk::DEFAULT_BUDGET_TOKENS,
            chunk::DEFAULT_OVERLAP_TOKENS,
        );
        Ok::<_, extract::ExtractError>((extracted.pages, chunks))
    })
    .await;
    let (pages, chunks) = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return fail(d, id, &e.to_string()).await,
        Err(join) => {
            return fail(d, id, &format!("the file could not be read ({join})")).await;
        }
    };
    if chunks.is_empty() {
        return fail(d, id, &extract::ExtractError::NoText.to_string()).await;
    }

    let (embedder, ts_config) = {
        let mut conn = d.pool.acquire().await?;
        let embedder = embedding::current(&mut conn, d.secrets, doc.org_id).await?;
        (embedder, embedding::ts_config(&mut conn, doc.org_id).await?)
    };
    let embedder: Option<Embedder> = match embedder {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(why)) => return fail(d, id, &format!("embeddings: {why}")).await,
    };
    if !reindex {
        sqlx::query("UPDATE kb_documents SET chunks_total = $2, pages = $3 WHERE id = $1")
            .bind(id)
            .bind(chunks.len() as i32)
            .bind(pages.map(|p| p as i32))
            .execute(d.pool)
            .await?;
    }

    let mut vectors_out: Vec<Option<Vec<u8>>> = vec![None; chunks.len()];
    if let Some(e) = &embedder {
        // A few batches in flight at once: one document's embedding is bound by the
        // provider's latency, not by CPU (the limiter still paces every call).
        let inputs: Vec<Vec<String>> = chunks
            .chunks(EMBED_BATCH)
            .map(|b| b.iter().map(|c| c.text.clone()).collect())
            .collect();
        let (llm, target, org_id) = (d.llm, &e.target, doc.org_id);
        let mut calls = futures::stream::iter(0..inputs.len())
            .map(|batch_no| {
                let batch = inputs[batch_no].clone();
                async move { (batch_no, llm.embed(org_id, target, &batch).await) }
            })
            .buffered(EMBED_PARALLEL);
        let mut done = 0usize;
        while let Some((batch_no, result)) = calls.next().await {
            let embedded = match result {
                Ok(v) => v,
                Err(err) if err.is_retryable() && !d.last_attempt => {
                    note_retry(d.pool, id, reindex, &err.to_string()).await?;
                    anyhow::bail!("embedding provider: {err}");
                }
                Err(err) => {
                    return fail(d, id, &format!("embedding provider: {err}")).await;
                }
            };
            let start = batch_no * EMBED_BATCH;
            for (i, v) in embedded.vectors.iter().enumerate() {
                vectors_out[start + i] = Some(vectors::to_bytes(v));
            }
            done += inputs[batch_no].len();
            if !exists(d.pool, id).await? {
                return Ok(JobOutcome::Complete);
            }
            if !reindex {
                sqlx::query("UPDATE kb_documents SET chunks_embedded = $2, updated_at = now() WHERE id = $1")
                    .bind(id)
                    .bind(done as i32)
                    .execute(d.pool)
                    .await?;
            }
        }
    }

    let index_model = embedder.as_ref().map(|e| e.index_model.clone());
    if !write_chunks(
        d.pool,
        id,
        doc.org_id,
        &chunks,
        vectors_out,
        ts_config,
        &index_model,
        pages,
    )
    .await?
    {
        return Ok(JobOutcome::Complete);
    }
    // The model or language changed while this ran: index again with the new one.
    let mut conn = d.pool.acquire().await?;
    let now_model = match embedding::current(&mut conn, d.secrets, doc.org_id).await? {
        Some(Ok(e)) => Some(e.index_model),
        _ => None,
    };
    let now_ts = embedding::ts_config(&mut conn, doc.org_id).await?;
    if now_model != index_model || now_ts != ts_config {
        return Ok(JobOutcome::snooze_for(Duration::ZERO));
    }
    Ok(JobOutcome::Complete)
}

async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM kb_documents WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// The provider failed but the job will try again: say so on the document.
async fn note_retry(pool: &PgPool, id: Uuid, reindex: bool, why: &str) -> Result<(), sqlx::Error> {
    if !reindex {
        sqlx::query("UPDATE kb_documents SET error = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(format!("embedding provider busy, retrying: {why}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Marks the document FAILED with `why` and ends the job without a retry. A READY document
/// whose re-index fails keeps its chunks and says why in `error`.
async fn fail(d: &IngestDeps<'_>, id: Uuid, why: &str) -> anyhow::Result<JobOutcome> {
    tracing::info!(document_id = %id, why, "document ingestion failed");
    sqlx::query(
        "UPDATE kb_documents SET status = CASE WHEN status = 'READY' THEN 'READY' ELSE 'FAILED' END,
                error = $2, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(why)
    .execute(d.pool)
    .await?;
    Ok(JobOutcome::Discard(why.to_string()))
}

/// Replaces the document's chunks in one transaction; `false` when the document was deleted
/// meanwhile (nothing written).
#[allow(clippy::too_many_arguments)]
async fn write_chunks(
    pool: &PgPool,
    id: Uuid,
    org_id: Uuid,
    chunks: &[Chunk],
    embeddings: Vec<Option<Vec<u8>>>,
    ts_config: &str,
    index_model: &Option<String>,
    pages: Option<u32>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM kb_documents WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if locked.is_none() {
        return Ok(false);
    }
    sqlx::query("DELETE FROM kb_chunks WHERE document_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let positions: Vec<i32> = chunks.iter().map(|c| c.position).collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let headings: Vec<Option<&str>> = chunks.iter().map(|c| c.heading.as_deref()).collect();
    let pages_of: Vec<Option<i32>> = chunks.iter().map(|c| c.page).collect();
    let starts: Vec<i64> = chunks.iter().map(|c| c.start_char).collect();
    let ends: Vec<i64> = chunks.iter().map(|c| c.end_char).collect();
    let tokens: Vec<i32> = chunks.iter().map(|c| c.tokens).collect();
    sqlx::query(
        "INSERT INTO kb_chunks (org_id, document_id, position, text, heading, page, start_char, end_char,
                                tokens, embedding, tsv)
         SELECT $1, $2, u.position, u.text, u.heading, u.page, u.start_char, u.end_char, u.tokens, u.embedding,
                to_tsvector($11::regconfig, u.text)
           FROM UNNEST($3::int4[], $4::text[], $5::text[], $6::int4[], $7::int8[], $8::int8[], $9::int4[], $10::bytea[])
                AS u(position, text, heading, page, start_char, end_char, tokens, embedding)",
    )
    .bind(org_id)
    .bind(id)
    .bind(&positions)
    .bind(&texts)
    .bind(&headings)
    .bind(&pages_of)
    .bind(&starts)
    .bind(&ends)
    .bind(&tokens)
    .bind(&embeddings)
    .bind(ts_config)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE kb_documents SET status = 'READY', error = NULL, chunks_total = $2, chunks_embedded = $3,
                pages = $4, index_model = $5, ts_config = $6, indexed_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(chunks.len() as i32)
    .bind(if index_model.is_some() { chunks.len() as i32 } else { 0 })
    .bind(pages.map(|p| p as i32))
    .bind(index_model)
    .bind(ts_config)
    .execute(&mut *tx)
    .await?;
    vectors::bump_version(&mut tx, org_id).await?;
    tx.commit().await?;
    Ok(true)
}

/// Enqueues a re-index of every document of the organization whose index no longer matches
/// its embedding model or language (after a bot config or language change). Old chunks keep
/// serving until each document's new ones replace them. Returns how many were enqueued.
pub async fn reindex_stale(
    conn: &mut sqlx::PgConnection,
    secrets: &SecretBox,
    org_id: Uuid,
) -> Result<usize, crate::jobs::JobsError> {
    let model = match embedding::current(conn, secrets, org_id).await? {
        Some(Ok(e)) => Some(e.index_model),
        _ => None,
    };
    let ts = embedding::ts_config(conn, org_id).await?;
    let stale: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM kb_documents
          WHERE org_id = $1 AND status = 'READY'
            AND (index_model IS DISTINCT FROM $2 OR ts_config IS DISTINCT FROM $3)",
    )
    .bind(org_id)
    .bind(&model)
    .bind(ts)
    .fetch_all(&mut *conn)
    .await?;
    for document_id in &stale {
        enqueue(&mut *conn, org_id, *document_id).await?;
    }
    Ok(stale.len())
}

/// Queues the ingestion of one document (a no-op while one is already queued or running).
pub async fn enqueue(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    document_id: Uuid,
) -> Result<(), crate::jobs::JobsError> {
    let job = IngestDocument { document_id };
    let key = job.unique_key();
    crate::jobs::enqueue(
        &mut *conn,
        crate::jobs::NewJob::new(job).org(org_id).unique_key(key),
    )
    .await?;
    Ok(())
}
