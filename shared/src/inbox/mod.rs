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
