//! The inbox: inbound webhooks, contacts, conversations and messages. The API enqueues the
//! jobs below; the worker runs them (`process_webhook`, `download_media`).

pub mod jobs;

/// Largest media file we download (Meta: inbound media over 100 MB is refused with 131052).
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// The customer-service window: free-form messages are allowed this long after the customer's
/// last message (ARCHITECTURE.md, "Meta facts").
pub const SERVICE_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Path of a media blob relative to `BLOB_DIR`: `<org_id>/<yyyy>/<mm>/<message_id>`.
pub fn blob_path(
    org_id: uuid::Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    message_id: uuid::Uuid,
) -> String {
    format!("{org_id}/{}/{message_id}", created_at.format("%Y/%m"))
}

/// An agent read the conversation: its unread count goes to zero and Meta is told the
/// customer's latest message was read (`jobs::SendReadReceipt`, paced like any send). `false`
/// when the conversation is not `org_id`'s.
pub async fn mark_read(
    conn: &mut sqlx::PgConnection,
    org_id: uuid::Uuid,
    conversation_id: uuid::Uuid,
) -> Result<bool, crate::jobs::JobsError> {
    let updated =
        sqlx::query("UPDATE conversations SET unread_count = 0 WHERE id = $1 AND org_id = $2")
            .bind(conversation_id)
            .bind(org_id)
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let latest: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE conversation_id = $1 AND direction = 'INBOUND' AND wamid IS NOT NULL
          ORDER BY created_at DESC, seq DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(message_id) = latest {
        let job = jobs::SendReadReceipt { message_id };
        let key = job.unique_key();
        crate::jobs::enqueue(
            &mut *conn,
            crate::jobs::NewJob::new(job).org(org_id).unique_key(key),
        )
        .await?;
    }
    Ok(true)
}
