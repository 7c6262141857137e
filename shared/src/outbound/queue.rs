//! Queueing one outbound message: the one function every sender calls, an agent's reply
//! through the API as much as an automatic reply from a worker job (ARCHITECTURE.md, "Where
//! domain logic lives"). It inserts the `queued` message with the exact Cloud API body it will
//! send and enqueues its send job, in the caller's transaction, so the 24-hour window,
//! idempotency and the rate limits (applied by the send job) hold for every sender alike.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::enqueue_send;
use crate::{inbox::SERVICE_WINDOW, jobs::JobsError};

/// The conversation a send goes to, with what sending needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Target {
    pub id: Uuid,
    pub account_id: Uuid,
    pub wa_id: String,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub account_status: String,
    /// The organization blocked this number: nothing is sent to it.
    pub contact_blocked: bool,
}

impl Target {
    /// Whether free-form messages may be sent (the customer wrote in the last 24 hours).
    pub fn window_open(&self) -> bool {
        self.last_inbound_at
            .is_some_and(|at| at + SERVICE_WINDOW > Utc::now())
    }

    /// Whether the number can send at all.
    pub fn sendable(&self) -> bool {
        self.account_status != "DISCONNECTED"
    }
}

/// The conversation `conversation_id` of `org_id`, or `None`.
pub async fn load_target(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<Option<Target>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.account_id, ct.wa_id, c.last_inbound_at, a.status AS account_status,
                ct.blocked AS contact_blocked
           FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
           JOIN whatsapp_accounts a ON a.id = c.account_id
          WHERE c.id = $1 AND c.org_id = $2",
    )
    .bind(conversation_id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Everything needed to queue one outbound message.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub org_id: Uuid,
    pub target: Target,
    /// The Cloud API message type (`text`, `template`, `image`, ...).
    pub kind: &'static str,
    /// What the inbox shows (our camelCase shape).
    pub content: Value,
    /// The Cloud API type object.
    pub object: Value,
    pub reply_to_wamid: Option<String>,
    pub template_name: Option<String>,
    /// The agent who sent it; `None` for API keys and automatic replies.
    pub sent_by: Option<Uuid>,
    /// `(Idempotency-Key, hash of the request)`.
    pub idempotency: Option<(String, String)>,
    /// A file stored under BLOB_DIR that the worker uploads to Meta before sending:
    /// `(blob path, MIME type, file name)`.
    pub upload: Option<(String, String, String)>,
}

impl NewOutbound {
    /// A plain text message (automatic replies).
    pub fn text(org_id: Uuid, target: Target, body: &str) -> Self {
        Self {
            org_id,
            target,
            kind: "text",
            content: json!({"body": body}),
            object: json!({"body": body}),
            reply_to_wamid: None,
            template_name: None,
            sent_by: None,
            idempotency: None,
            upload: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The Idempotency-Key already produced a message for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The contact is on the organization's blocklist.
    #[error("this contact is blocked; unblock it (PATCH /contacts/{{waId}} with blocked: false) to send to it")]
    ContactBlocked,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

/// Inserts the message `queued` and enqueues its send, in the caller's transaction. Returns
/// the message id; a request repeated with the same Idempotency-Key returns the first one's id
/// and queues nothing. The caller checks the window and the account (see [`Target`]).
pub async fn queue_outbound(conn: &mut PgConnection, m: NewOutbound) -> Result<Uuid, QueueError> {
    if m.target.contact_blocked {
        return Err(QueueError::ContactBlocked);
    }
    let id = Uuid::new_v4();
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": m.target.wa_id,
        "type": m.kind,
        // Echoed in Meta's status webhooks: settles a send whose response we never got.
        // `<message id>:<generation>`; a dashboard retry starts a new generation.
        "biz_opaque_callback_data": format!("{id}:0"),
    });
    body[m.kind] = m.object;
    if let Some(w) = &m.reply_to_wamid {
        body["context"] = json!({"message_id": w});
    }
    let (key, hash) = m.idempotency.clone().unzip();
    let (blob_path, mime, filename) = match m.upload.clone() {
        Some((p, mime, f)) => (Some(p), Some(mime), Some(f)),
        None => (None, None, None),
    };
    let preview: String = m.content["body"]
        .as_str()
        .or(m.content["caption"].as_str())
        .map(|s| s.chars().take(100).collect())
        .unwrap_or_else(|| format!("[{}]", m.kind));
    // ON CONFLICT: a concurrent request with the same key won; the transaction stays usable.
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO messages (id, org_id, conversation_id, account_id, direction, type, content, status, request,
                idempotency_key, request_hash, sent_by, template_name, blob_path, mime_type, filename)
         VALUES ($1, $2, $3, $4, 'OUTBOUND', $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(m.org_id)
    .bind(m.target.id)
    .bind(m.target.account_id)
    .bind(m.kind)
    .bind(&m.content)
    .bind(&body)
    .bind(&key)
    .bind(&hash)
    .bind(m.sent_by)
    .bind(&m.template_name)
    .bind(blob_path)
    .bind(mime)
    .bind(filename)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        let (Some(key), Some(hash)) = (key, hash) else {
            return Err(QueueError::Database(sqlx::Error::RowNotFound));
        };
        return match replay(conn, m.org_id, &key, &hash).await? {
            Some(existing) => Ok(existing),
            None => Err(QueueError::IdempotencyKeyReused),
        };
    }
    sqlx::query(
        "UPDATE conversations SET last_message_at = now(), last_message_preview = $2, last_message_direction = 'OUTBOUND'
          WHERE id = $1",
    )
    .bind(m.target.id)
    .bind(preview)
    .execute(&mut *conn)
    .await?;
    enqueue_send(conn, m.org_id, id, m.target.account_id, "send").await?;
    Ok(id)
}

/// The message an Idempotency-Key already produced for the same request (`Ok(None)`: no
/// message has that key); a different request with that key is [`QueueError::IdempotencyKeyReused`].
pub async fn replay(
    conn: &mut PgConnection,
    org_id: Uuid,
    key: &str,
    hash: &str,
) -> Result<Option<Uuid>, QueueError> {
    let row: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, request_hash FROM messages WHERE org_id = $1 AND idempotency_key = $2",
    )
    .bind(org_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok(None),
        Some((_, h)) if h.as_deref() != Some(hash) => Err(QueueError::IdempotencyKeyReused),
        Some((id, _)) => Ok(Some(id)),
    }
}
