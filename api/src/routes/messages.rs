//! `/messages/{id}/...`: a message's media (download status, the file itself, retry).

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    inbox::jobs::DownloadMedia,
    jobs::{self, NewJob},
};

use super::Data;
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::parse_id,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(retry_media))
        .routes(routes!(get_media))
}

/// The columns [`MessageRow`] reads (table alias `m`).
pub const MESSAGE_COLUMNS: &str = "m.id, m.seq, m.conversation_id, m.account_id, m.direction, m.wamid, m.type, m.content,
    m.status, m.error, m.sent_at, m.delivered_at, m.read_at, m.failed_at, m.media_id, m.mime_type, m.sha256,
    m.file_size, m.filename, m.media_status, m.media_error, m.media_attempts, m.is_hidden, m.created_at,
    m.received_at";

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub seq: i64,
    conversation_id: Option<Uuid>,
    account_id: Uuid,
    direction: String,
    wamid: Option<String>,
    #[sqlx(rename = "type")]
    kind: String,
    content: Value,
    status: String,
    error: Option<Value>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    media_id: Option<String>,
    mime_type: Option<String>,
    sha256: Option<String>,
    file_size: Option<i64>,
    filename: Option<String>,
    media_status: Option<String>,
    media_error: Option<String>,
    media_attempts: i32,
    is_hidden: bool,
    pub created_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
}

/// A message's media and its download state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaOut {
    /// Meta's media id.
    pub media_id: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub file_size: Option<i64>,
    pub filename: Option<String>,
    /// pending | downloaded | failed.
    pub status: Option<String>,
    /// Why the download failed (or why the last attempt did).
    pub error: Option<String>,
    pub attempts: i32,
    /// Where to fetch the file once downloaded (`GET /api/v1/messages/{id}/media`).
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub id: Uuid,
    /// `null` for a campaign message to a customer who has no conversation yet: it joins the
    /// conversation opened when the customer writes.
    pub conversation_id: Option<Uuid>,
    pub account_id: Uuid,
    /// INBOUND or OUTBOUND.
    pub direction: String,
    pub wamid: Option<String>,
    /// text, image, audio, video, document, sticker, location, contacts, reaction, button,
    /// interactive, order, unsupported, system.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's payload: `body`; `caption`/`filename`/`voice`; location fields; `contacts`;
    /// reaction `messageId`/`emoji`; button `payload`/`text`; interactive `type`/`id`/`title`;
    /// and `context` (reply-to) and `referral` (click-to-WhatsApp ad) when present.
    pub content: Value,
    /// received (inbound) | queued | sent | delivered | read | failed.
    pub status: String,
    /// Meta's error `{code, title, message, details}` for failed and unsupported messages.
    pub error: Option<Value>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub media: Option<MediaOut>,
    pub is_hidden: bool,
    /// When the message was written (Meta's timestamp for inbound messages).
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

impl From<MessageRow> for MessageOut {
    fn from(r: MessageRow) -> Self {
        let media = r.media_status.is_some().then(|| MediaOut {
            url: (r.media_status.as_deref() == Some("downloaded"))
                .then(|| format!("/api/v1/messages/{}/media", r.id)),
            media_id: r.media_id,
            mime_type: r.mime_type,
            sha256: r.sha256,
            file_size: r.file_size,
            filename: r.filename,
            status: r.media_status,
            error: r.media_error,
            attempts: r.media_attempts,
        });
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            account_id: r.account_id,
            direction: r.direction,
            wamid: r.wamid,
            kind: r.kind,
            content: r.content,
            status: r.status,
            error: r.error,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            read_at: r.read_at,
            failed_at: r.failed_at,
            media,
            is_hidden: r.is_hidden,
            timestamp: r.created_at,
            received_at: r.received_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryMediaOut {
    pub id: Uuid,
    /// `pending`: a download is queued.
    pub media_status: String,
}

/// Retry the media download of a message (failed or missing media). Starts over with a full
/// attempt budget; a download already queued is not duplicated.
#[utoipa::path(post, path = "/messages/{id}/retry-media", tag = "messages",
    responses((status = 202, body = Data<RetryMediaOut>), (status = 404), (status = 409)))]
async fn retry_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Message")?;
    let mut tx = state.db.begin().await?;
    let media_id: Option<Option<String>> = sqlx::query_scalar(
        "SELECT media_id FROM messages WHERE id = $1 AND org_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *tx)
    .await?;
    match media_id {
        None => return Err(ApiError::not_found("Message")),
        Some(None) => return Err(ApiError::Conflict("This message has no media".into())),
        Some(Some(_)) => {}
    }
    sqlx::query(
        "UPDATE messages SET media_status = 'pending', media_error = NULL, media_attempts = 0 WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let job = DownloadMedia { message_id: id };
    let key = job.unique_key();
    jobs::enqueue(&mut *tx, NewJob::new(job).org(org_id).unique_key(key))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    tracing::info!(message_id = %id, "media download re-queued");
    Ok((
        StatusCode::ACCEPTED,
        Data::new(RetryMediaOut {
            id,
            media_status: "pending".into(),
        }),
    ))
}

#[derive(sqlx::FromRow)]
struct MediaFileRow {
    media_status: Option<String>,
    blob_path: Option<String>,
    mime_type: Option<String>,
    filename: Option<String>,
}

/// The media file of a message, to users of its organization only. 409 while it is not
/// downloaded (see `media.status` on the message).
#[utoipa::path(get, path = "/messages/{id}/media", tag = "messages",
    responses((status = 200, description = "The file, with its MIME type", content_type = "application/octet-stream"),
              (status = 404), (status = 409)))]
async fn get_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Message")?;
    let row: Option<MediaFileRow> = sqlx::query_as(
        "SELECT media_status, blob_path, mime_type, filename FROM messages WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?;
    let MediaFileRow {
        media_status: status,
        blob_path,
        mime_type: mime,
        filename,
    } = row.ok_or_else(|| ApiError::not_found("Message"))?;
    let Some(status) = status else {
        return Err(ApiError::NotFound("This message has no media".into()));
    };
    let blob_path = match (status.as_str(), blob_path) {
        ("downloaded", Some(p)) => p,
        _ => {
            return Err(ApiError::Conflict(format!(
                "The media is not downloaded (status: {status})"
            )))
        }
    };
    // Stored paths are relative and built by the worker from ids; refuse anything else.
    if blob_path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "suspicious blob path for message {id}"
        )));
    }
    let bytes = match tokio::fs::read(state.config.blob_dir.join(&blob_path)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(message_id = %id, "media blob missing on disk");
            return Err(ApiError::NotFound(
                "The media file is missing; retry the download".into(),
            ));
        }
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    let content_type = mime
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Some(name) = filename {
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{safe}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}
