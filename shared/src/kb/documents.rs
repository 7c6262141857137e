//! Knowledge-base documents as the API shows them, and the operations on them: register an
//! uploaded file (and queue its ingestion), list, read, page through chunks, delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{extract::Format, ingest, vectors};
use crate::jobs::JobsError;

/// Largest document accepted (`KB_MAX_DOCUMENT_BYTES`, default 25 MB).
pub fn max_document_bytes() -> u64 {
    std::env::var("KB_MAX_DOCUMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25 * 1024 * 1024)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: Uuid,
    pub name: String,
    pub filename: String,
    pub format: String,
    pub mime_type: String,
    #[sqlx(rename = "size_bytes")]
    pub size: i64,
    /// PENDING, PROCESSING, READY or FAILED.
    pub status: String,
    pub error: Option<String>,
    pub pages: Option<i32>,
    #[sqlx(rename = "chunks_total")]
    pub chunk_count: i32,
    pub chunks_embedded: i32,
    /// `PROVIDER/model` of its vectors; `null` when indexed for full text only.
    pub index_model: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub indexed_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub blob_path: String,
}

const COLUMNS: &str =
    "id, name, filename, format, mime_type, size_bytes, status, error, pages, chunks_total,
    chunks_embedded, index_model, created_at, updated_at, indexed_at, blob_path";

/// Path of a document's file relative to `BLOB_DIR`.
pub fn blob_path(org_id: Uuid, id: Uuid) -> String {
    format!("kb/{org_id}/{id}")
}

/// What an upload registers (the file is already stored at `blob_path(org_id, id)`).
pub struct NewDocument<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub filename: &'a str,
    pub format: Format,
    pub size: i64,
    pub created_by: Option<Uuid>,
}

/// Registers an uploaded document as PENDING and queues its ingestion, in one transaction.
pub async fn create(
    conn: &mut PgConnection,
    org_id: Uuid,
    new: &NewDocument<'_>,
) -> Result<Document, JobsError> {
    let doc: Document = sqlx::query_as(&format!(
        "INSERT INTO kb_documents (id, org_id, name, filename, format, mime_type, size_bytes, blob_path, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(org_id)
    .bind(new.name)
    .bind(new.filename)
    .bind(new.format.as_str())
    .bind(new.format.mime())
    .bind(new.size)
    .bind(blob_path(org_id, new.id))
    .bind(new.created_by)
    .fetch_one(&mut *conn)
    .await?;
    ingest::enqueue(conn, org_id, new.id).await?;
    Ok(doc)
}

pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<Document>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM kb_documents WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Document>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM kb_documents WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Queues a fresh ingestion of a document (its chunks are replaced when it finishes).
/// `None` when it is not the organization's.
pub async fn reingest(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Document>, JobsError> {
    let doc: Option<Document> = sqlx::query_as(&format!(
        "UPDATE kb_documents SET status = CASE WHEN status = 'FAILED' THEN 'PENDING' ELSE status END,
                updated_at = now()
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    if doc.is_some() {
        ingest::enqueue(conn, org_id, id).await?;
    }
    Ok(doc)
}

/// One chunk as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ChunkOut {
    pub id: Uuid,
    pub position: i32,
    pub text: String,
    pub heading: Option<String>,
    pub page: Option<i32>,
    pub start_char: i64,
    pub end_char: i64,
    pub tokens: i32,
    pub has_embedding: bool,
}

/// A page of a document's chunks in order, and how many it has.
pub async fn chunks(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    offset: i64,
    limit: i64,
) -> Result<(Vec<ChunkOut>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, position, text, heading, page, start_char, end_char, tokens, embedding IS NOT NULL AS has_embedding
           FROM kb_chunks WHERE document_id = $1 AND org_id = $2 ORDER BY position OFFSET $3 LIMIT $4",
    )
    .bind(id)
    .bind(org_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM kb_chunks WHERE document_id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .fetch_one(conn)
            .await?;
    Ok((rows, total))
}

/// Deletes a document and its chunks and stops a queued or running ingestion of it; returns
/// its blob path (the caller removes the file after the commit), or `None` when it is not the
/// organization's.
pub async fn delete(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<String>, JobsError> {
    let path: Option<String> = sqlx::query_scalar(
        "DELETE FROM kb_documents WHERE id = $1 AND org_id = $2 RETURNING blob_path",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    if path.is_none() {
        return Ok(None);
    }
    vectors::bump_version(&mut *conn, org_id).await?;
    let key = ingest::IngestDocument { document_id: id }.unique_key();
    let jobs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE unique_key = $1 AND state IN ('available', 'scheduled', 'retryable', 'running')",
    )
    .bind(&key)
    .fetch_all(&mut *conn)
    .await?;
    if !jobs.is_empty() {
        crate::jobs::admin::cancel_jobs(
            &mut *conn,
            Some(org_id),
            &crate::jobs::admin::JobSelection::Ids(jobs),
        )
        .await?;
    }
    Ok(path)
}

/// Counts for `embedding-info`: documents and chunks indexed.
pub async fn counts(conn: &mut PgConnection, org_id: Uuid) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM kb_documents WHERE org_id = $1),
                (SELECT count(*) FROM kb_documents WHERE org_id = $1 AND status = 'READY'),
                (SELECT count(*) FROM kb_chunks WHERE org_id = $1)",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await
}
