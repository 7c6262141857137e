//! `inbox.download_media`: fetches an inbound message's media (ARCHITECTURE.md, "Media download").
//!
//! Every attempt asks Meta for a FRESH URL (they live five minutes), downloads it with the
//! account's bearer token, checks size and sha256, and writes the blob to a temporary file that
//! is renamed into place, so a reader never sees half a file. Retryable failures (5xx, timeouts,
//! an expired URL, a checksum mismatch) return `Err` and are retried with the kind's exponential
//! backoff; after the last attempt, or at once for a failure retrying cannot fix, the message
//! shows `media_status = failed` with the reason. `POST /messages/{id}/retry-media` starts over.

use std::path::Path;

use anyhow::anyhow;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wharf_shared::{
    accounts,
    inbox::{blob_path, jobs::DownloadMedia, MAX_MEDIA_BYTES},
    jobs::JobOutcome,
    meta::{ErrorClass, MetaError},
};

use crate::{deps::WorkerDeps, registry::JobContext};

#[derive(sqlx::FromRow)]
struct MessageRow {
    org_id: Uuid,
    account_id: Uuid,
    media_id: Option<String>,
    sha256: Option<String>,
    media_status: Option<String>,
    blob_path: Option<String>,
    created_at: DateTime<Utc>,
}

/// Why an attempt failed, and whether another attempt can help.
#[derive(Debug)]
enum Failure {
    Retry(String),
    Fatal(String),
}

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: DownloadMedia,
) -> anyhow::Result<JobOutcome> {
    let row: Option<MessageRow> = sqlx::query_as(
        "SELECT org_id, account_id, media_id, sha256, media_status, blob_path, created_at FROM messages WHERE id = $1",
    )
    .bind(job.message_id)
    .fetch_optional(&ctx.pool)
    .await?;
    let Some(row) = row else {
        tracing::warn!(message_id = %job.message_id, "media download for a message that no longer exists");
        return Ok(JobOutcome::Complete);
    };
    if row.media_status.as_deref() == Some("downloaded")
        && row
            .blob_path
            .as_deref()
            .is_some_and(|p| deps.blob_dir.join(p).is_file())
    {
        return Ok(JobOutcome::Complete);
    }
    let Some(media_id) = row.media_id.clone() else {
        mark_failed(&ctx, job.message_id, "the message has no media id").await?;
        return Ok(JobOutcome::Discard("no media id".into()));
    };
    sqlx::query("UPDATE messages SET media_attempts = media_attempts + 1 WHERE id = $1")
        .bind(job.message_id)
        .execute(&ctx.pool)
        .await?;

    match attempt(&ctx, &deps, job.message_id, &row, &media_id).await {
        Ok(()) => Ok(JobOutcome::Complete),
        Err(Failure::Fatal(reason)) => {
            tracing::warn!(message_id = %job.message_id, %reason, "media download failed for good");
            mark_failed(&ctx, job.message_id, &reason).await?;
            Ok(JobOutcome::Discard(reason))
        }
        Err(Failure::Retry(reason)) => {
            if ctx.attempt >= ctx.max_attempts {
                let reason = format!("{reason} (gave up after {} attempts)", ctx.attempt);
                mark_failed(&ctx, job.message_id, &reason).await?;
            } else {
                sqlx::query("UPDATE messages SET media_error = $2 WHERE id = $1")
                    .bind(job.message_id)
                    .bind(&reason)
                    .execute(&ctx.pool)
                    .await?;
            }
            Err(anyhow!(reason))
        }
    }
}

async fn mark_failed(ctx: &JobContext, message_id: Uuid, reason: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE messages SET media_status = 'failed', media_error = $2 WHERE id = $1")
        .bind(message_id)
        .bind(reason)
        .execute(&ctx.pool)
        .await?;
    Ok(())
}

fn classify(what: &str, e: &MetaError) -> Failure {
    let reason = format!("{what}: {e}");
    match e {
        // The download URL expired (or was never valid): a fresh one is fetched next attempt.
        MetaError::Unexpected { status: 404, .. } => Failure::Retry(reason),
        MetaError::Unexpected { body, .. } if body.starts_with("media larger than") => {
            Failure::Fatal(reason)
        }
        _ => match e.class() {
            ErrorClass::Retryable | ErrorClass::RecipientDelay => Failure::Retry(reason),
            ErrorClass::AccountLevel => {
                Failure::Fatal(format!("{reason} (reconnect the account, then retry)"))
            }
            ErrorClass::Terminal => Failure::Fatal(reason),
        },
    }
}

/// Whether `bytes` match Meta's `sha256` (hex, as the Graph API and the simulator send it;
/// base64 is accepted as well).
fn sha_matches(expected: &str, bytes: &[u8]) -> bool {
    let digest = Sha256::digest(bytes);
    let expected = expected.trim();
    hex::encode(digest).eq_ignore_ascii_case(expected)
        || base64::engine::general_purpose::STANDARD.encode(digest) == expected
}

async fn attempt(
    ctx: &JobContext,
    deps: &WorkerDeps,
    message_id: Uuid,
    row: &MessageRow,
    media_id: &str,
) -> Result<(), Failure> {
    let internal = |e: anyhow::Error| Failure::Retry(format!("internal: {e:#}"));
    let creds = accounts::credentials(&ctx.pool, &deps.secrets, row.account_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Failure::Fatal("the WhatsApp account no longer exists".into()))?;
    let token = creds.access_token.expose();

    // A fresh URL every attempt; if it has expired by the time we use it, one more right away.
    let mut fetched = None;
    for _ in 0..2 {
        let info = deps
            .meta
            .media_info(token, media_id)
            .await
            .map_err(|e| classify("media URL", &e))?;
        match deps
            .meta
            .download_media(token, &info.url, MAX_MEDIA_BYTES)
            .await
        {
            Ok(bytes) => {
                fetched = Some((info, bytes));
                break;
            }
            Err(MetaError::Unexpected { status: 404, .. }) => {
                tracing::debug!(%message_id, "media URL expired; fetching a fresh one");
            }
            Err(e) => return Err(classify("download", &e)),
        }
    }
    let (info, bytes) =
        fetched.ok_or_else(|| Failure::Retry("download: the media URL expired twice".into()))?;

    if let Some(size) = info.file_size {
        if size != bytes.len() as u64 {
            return Err(Failure::Retry(format!(
                "size mismatch: Meta announced {size} bytes, got {}",
                bytes.len()
            )));
        }
    }
    let expected = info.sha256.as_deref().or(row.sha256.as_deref());
    if let Some(expected) = expected {
        if !sha_matches(expected, &bytes) {
            return Err(Failure::Retry(format!(
                "sha256 mismatch: expected {expected}, got {}",
                hex::encode(Sha256::digest(&bytes))
            )));
        }
    }

    let relative = blob_path(row.org_id, row.created_at, message_id);
    let target = deps.blob_dir.join(&relative);
    write_atomically(&target, &bytes)
        .await
        .map_err(|e| Failure::Retry(format!("storing the blob: {e:#}")))?;

    sqlx::query(
        "UPDATE messages SET media_status = 'downloaded', media_error = NULL, blob_path = $2,
                mime_type = COALESCE($3, mime_type), file_size = $4, sha256 = COALESCE(sha256, $5)
          WHERE id = $1",
    )
    .bind(message_id)
    .bind(&relative)
    .bind(&info.mime_type)
    .bind(bytes.len() as i64)
    .bind(hex::encode(Sha256::digest(&bytes)))
    .execute(&ctx.pool)
    .await
    .map_err(|e| internal(e.into()))?;
    tracing::debug!(%message_id, bytes = bytes.len(), "media downloaded");
    Ok(())
}

/// Writes `bytes` to a temporary sibling, then renames it over `target`.
async fn write_atomically(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| anyhow!("blob path has no parent"))?;
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("blob"),
        Uuid::new_v4().simple()
    ));
    let result = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, target).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_accepts_hex_and_base64() {
        let bytes = b"hello";
        let hex = hex::encode(Sha256::digest(bytes));
        assert!(sha_matches(&hex, bytes));
        assert!(sha_matches(&hex.to_uppercase(), bytes));
        assert!(sha_matches(
            &base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes)),
            bytes
        ));
        assert!(!sha_matches(&hex, b"other"));
    }

    #[test]
    fn expired_urls_and_5xx_retry() {
        assert!(matches!(
            classify(
                "x",
                &MetaError::Unexpected {
                    status: 404,
                    body: String::new()
                }
            ),
            Failure::Retry(_)
        ));
        assert!(matches!(
            classify(
                "x",
                &MetaError::Unexpected {
                    status: 502,
                    body: String::new()
                }
            ),
            Failure::Retry(_)
        ));
        assert!(matches!(
            classify("x", &MetaError::Timeout { request_sent: true }),
            Failure::Retry(_)
        ));
        assert!(matches!(
            classify(
                "x",
                &MetaError::Unexpected {
                    status: 200,
                    body: "media larger than 5 bytes".into()
                }
            ),
            Failure::Fatal(_)
        ));
    }
}
