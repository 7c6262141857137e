//! `/quick-replies`: canned answers agents insert by shortcut (`/greeting`), each optionally
//! with one media attachment kept in the blob store. Agents read the active ones; admins
//! manage them and see the inactive ones too (`/quick-replies/all`).

use axum::{
    extract::{Multipart, Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{admin_orgs::BulkResult, outbound::user_id, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson},
    state::AppState,
    upload,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_active, create))
        .routes(routes!(list_all))
        .routes(routes!(update, delete))
        .routes(routes!(bulk))
        .routes(routes!(upload_media, delete_media))
}

const MAX_SHORTCUT_LEN: usize = 32;
const MAX_TITLE_LEN: usize = 100;
const MAX_CONTENT_LEN: usize = 4096;
const MAX_BULK_IDS: usize = 1000;
const DUPLICATE: &str = "A quick reply with this shortcut already exists";
const SHORTCUT_KEY: &str = "quick_replies_org_shortcut_key";

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickReplyMedia {
    /// image, video, audio or document.
    pub media_type: String,
    pub mime_type: String,
    pub file_name: String,
    pub size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickReplyOut {
    pub id: Uuid,
    pub shortcut: String,
    pub title: String,
    pub content: String,
    pub is_active: bool,
    pub media: Option<QuickReplyMedia>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, shortcut, title, content, is_active, media_type, media_mime_type, \
                       media_file_name, media_size, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct QuickReplyRow {
    id: Uuid,
    shortcut: String,
    title: String,
    content: String,
    is_active: bool,
    media_type: Option<String>,
    media_mime_type: Option<String>,
    media_file_name: Option<String>,
    media_size: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<QuickReplyRow> for QuickReplyOut {
    fn from(r: QuickReplyRow) -> Self {
        let media = match (
            r.media_type,
            r.media_mime_type,
            r.media_file_name,
            r.media_size,
        ) {
            (Some(media_type), Some(mime_type), Some(file_name), Some(size)) => {
                Some(QuickReplyMedia {
                    media_type,
                    mime_type,
                    file_name,
                    size,
                })
            }
            _ => None,
        };
        Self {
            id: r.id,
            shortcut: r.shortcut,
            title: r.title,
            content: r.content,
            is_active: r.is_active,
            media,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

async fn list(state: &AppState, org_id: Uuid, only_active: bool) -> ApiResult<Vec<QuickReplyOut>> {
    let rows: Vec<QuickReplyRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM quick_replies WHERE org_id = $1 AND (is_active OR NOT $2)
          ORDER BY lower(ltrim(shortcut, '/')), id"
    ))
    .bind(org_id)
    .bind(only_active)
    .fetch_all(&state.db)
    .await?;
    Ok(rows.into_iter().map(QuickReplyOut::from).collect())
}

/// List the active quick replies, by shortcut (every role).
#[utoipa::path(get, path = "/quick-replies", tag = "quick-replies",
    responses((status = 200, body = Data<Vec<QuickReplyOut>>)))]
async fn list_active(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<QuickReplyOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(list(&state, org_id, true).await?))
}

/// List every quick reply, inactive ones included (admin).
#[utoipa::path(get, path = "/quick-replies/all", tag = "quick-replies",
    responses((status = 200, body = Data<Vec<QuickReplyOut>>)))]
async fn list_all(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<QuickReplyOut>>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    Ok(Data::new(list(&state, org_id, false).await?))
}

/// The rules of the text fields, for creating (all given) and updating (those given).
fn check_fields(
    v: &mut Violations,
    shortcut: Option<&str>,
    title: Option<&str>,
    content: Option<&str>,
) {
    if let Some(s) = shortcut {
        let name = s.strip_prefix('/').unwrap_or(s);
        let ok = (1..=MAX_SHORTCUT_LEN).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !ok {
            v.add(
                "shortcut",
                format!(
                    "must be 1 to {MAX_SHORTCUT_LEN} letters, digits, - or _, after an optional /"
                ),
            );
        }
    }
    v.optional_text("title", title, MAX_TITLE_LEN);
    v.optional_text("content", content, MAX_CONTENT_LEN);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewQuickReply {
    /// What agents type, e.g. `/greeting`: 1 to 32 letters, digits, - or _ after an optional
    /// `/`; unique in the organization whatever the case (and the `/`).
    pub shortcut: String,
    /// 1 to 100 characters.
    pub title: String,
    /// The text inserted, 1 to 4096 characters.
    pub content: String,
    /// Default true.
    pub is_active: Option<bool>,
}

impl Validate for NewQuickReply {
    fn validate(&self, v: &mut Violations) {
        check_fields(
            v,
            Some(&self.shortcut),
            Some(&self.title),
            Some(&self.content),
        );
    }
}

/// Create a quick reply (admin).
#[utoipa::path(post, path = "/quick-replies", tag = "quick-replies", request_body = NewQuickReply,
    responses((status = 201, body = Data<QuickReplyOut>), (status = 409)))]
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<NewQuickReply>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row: QuickReplyRow = sqlx::query_as(&format!(
        "INSERT INTO quick_replies (org_id, shortcut, title, content, is_active, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(&body.shortcut)
    .bind(body.title.trim())
    .bind(body.content.trim())
    .bind(body.is_active.unwrap_or(true))
    .bind(user_id(&auth))
    .fetch_one(&state.db)
    .await
    .on_conflict(SHORTCUT_KEY, DUPLICATE)?;
    Ok((StatusCode::CREATED, Data::new(QuickReplyOut::from(row))))
}

/// The fields to change; those left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickReplyChanges {
    pub shortcut: Option<String>,
    pub title: Option<String>,
    pub content: Option<String>,
    pub is_active: Option<bool>,
}

impl Validate for QuickReplyChanges {
    fn validate(&self, v: &mut Violations) {
        check_fields(
            v,
            self.shortcut.as_deref(),
            self.title.as_deref(),
            self.content.as_deref(),
        );
    }
}

/// Update a quick reply (admin).
#[utoipa::path(patch, path = "/quick-replies/{id}", tag = "quick-replies", request_body = QuickReplyChanges,
    responses((status = 200, body = Data<QuickReplyOut>), (status = 409)))]
async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<QuickReplyChanges>,
) -> ApiResult<Json<Data<QuickReplyOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Quick reply")?;
    let row: Option<QuickReplyRow> = sqlx::query_as(&format!(
        "UPDATE quick_replies SET shortcut = COALESCE($3, shortcut), title = COALESCE($4, title),
                content = COALESCE($5, content), is_active = COALESCE($6, is_active)
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&body.shortcut)
    .bind(body.title.as_deref().map(str::trim))
    .bind(body.content.as_deref().map(str::trim))
    .bind(body.is_active)
    .fetch_optional(&state.db)
    .await
    .on_conflict(SHORTCUT_KEY, DUPLICATE)?;
    let row = row.ok_or_else(|| ApiError::not_found("Quick reply"))?;
    Ok(Data::new(row.into()))
}

/// Removes an attachment's file once no row names it. A file already gone is fine; any other
/// failure leaves an orphan file, which is logged rather than failing a change already made.
async fn remove_blob(state: &AppState, blob: &str) {
    if let Err(err) = tokio::fs::remove_file(state.config.blob_dir.join(blob)).await {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %err, blob, "could not remove a quick reply attachment");
        }
    }
}

/// Delete a quick reply and its attachment (admin).
#[utoipa::path(delete, path = "/quick-replies/{id}", tag = "quick-replies", responses((status = 204)))]
async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Quick reply")?;
    let blob: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM quick_replies WHERE id = $1 AND org_id = $2 RETURNING media_blob_path",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?;
    let blob = blob.ok_or_else(|| ApiError::not_found("Quick reply"))?;
    if let Some(blob) = blob {
        remove_blob(&state, &blob).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- bulk -------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuickReplyBulkAction {
    Delete,
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuickReplySelectionMode {
    Ids,
    All,
}

/// `{"mode": "ids", "ids": [...]}` or `{"mode": "all"}` (every quick reply of the organization).
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuickReplySelection {
    pub mode: QuickReplySelectionMode,
    #[serde(default)]
    pub ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct QuickReplyBulkRequest {
    pub action: QuickReplyBulkAction,
    pub selection: QuickReplySelection,
}

impl Validate for QuickReplyBulkRequest {
    fn validate(&self, v: &mut Violations) {
        let ids = &self.selection.ids;
        match self.selection.mode {
            QuickReplySelectionMode::Ids if ids.is_empty() => {
                v.add_at(&["selection", "ids"], "at least one id is required")
            }
            QuickReplySelectionMode::Ids if ids.len() > MAX_BULK_IDS => v.add_at(
                &["selection", "ids"],
                format!("at most {MAX_BULK_IDS} ids per request"),
            ),
            // Ids with "all" are most likely a mistake that would touch everything.
            QuickReplySelectionMode::All if !ids.is_empty() => v.add_at(
                &["selection", "ids"],
                "leave ids out with mode \"all\", or use mode \"ids\"",
            ),
            _ => {}
        }
    }
}

/// Delete, activate or deactivate the selected quick replies (admin). `affected` counts those
/// that changed: ids of other organizations, and replies already in the asked state, are not.
#[utoipa::path(post, path = "/quick-replies/bulk", tag = "quick-replies", request_body = QuickReplyBulkRequest,
    responses((status = 200, body = Data<BulkResult>)))]
async fn bulk(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<QuickReplyBulkRequest>,
) -> ApiResult<Json<Data<BulkResult>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    // NULL selects every quick reply of the organization.
    let ids = (body.selection.mode == QuickReplySelectionMode::Ids).then_some(&body.selection.ids);
    let selected = "org_id = $1 AND ($2::uuid[] IS NULL OR id = ANY($2))";
    let affected = match body.action {
        QuickReplyBulkAction::Delete => {
            let blobs: Vec<Option<String>> = sqlx::query_scalar(&format!(
                "DELETE FROM quick_replies WHERE {selected} RETURNING media_blob_path"
            ))
            .bind(org_id)
            .bind(ids)
            .fetch_all(&state.db)
            .await?;
            for blob in blobs.iter().flatten() {
                remove_blob(&state, blob).await;
            }
            blobs.len() as u64
        }
        QuickReplyBulkAction::Activate | QuickReplyBulkAction::Deactivate => {
            let active = matches!(body.action, QuickReplyBulkAction::Activate);
            sqlx::query(&format!(
                "UPDATE quick_replies SET is_active = $3 WHERE {selected} AND is_active <> $3"
            ))
            .bind(org_id)
            .bind(ids)
            .bind(active)
            .execute(&state.db)
            .await?
            .rows_affected()
        }
    };
    Ok(Data::new(BulkResult { affected }))
}

// ---- media ------------------------------------------------------------------------------------

/// What a quick reply may carry, by MIME type: its media type and size limit (WhatsApp's, as
/// the reply is sent as that kind of message).
fn media_kind(mime: &str) -> Option<(&'static str, u64)> {
    const MB: u64 = 1024 * 1024;
    match mime {
        "image/jpeg" | "image/png" => Some(("image", 5 * MB)),
        "video/mp4" => Some(("video", 16 * MB)),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => {
            Some(("audio", 16 * MB))
        }
        "application/pdf" => Some(("document", 100 * MB)),
        _ => None,
    }
}

/// A stored attachment, as its columns hold it.
struct StoredMedia {
    media_type: &'static str,
    mime: String,
    file_name: String,
    size: u64,
    blob: String,
}

/// Sets (or, with `None`, clears) a quick reply's attachment. Returns the reply and the blob
/// it named before, whose file the caller removes once this is committed.
async fn set_media(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    media: Option<&StoredMedia>,
) -> ApiResult<(QuickReplyRow, Option<String>)> {
    let old: Option<Option<String>> = sqlx::query_scalar(
        "SELECT media_blob_path FROM quick_replies WHERE id = $1 AND org_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    let old = old.ok_or_else(|| ApiError::not_found("Quick reply"))?;
    let row = sqlx::query_as(&format!(
        "UPDATE quick_replies SET media_type = $3, media_mime_type = $4, media_file_name = $5,
                media_size = $6, media_blob_path = $7
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(media.map(|m| m.media_type))
    .bind(media.map(|m| &m.mime))
    .bind(media.map(|m| &m.file_name))
    .bind(media.map(|m| m.size as i64))
    .bind(media.map(|m| &m.blob))
    .fetch_one(&mut *conn)
    .await?;
    Ok((row, old))
}

/// Attach a file to a quick reply (admin), replacing its attachment: multipart `file`, JPEG
/// or PNG ≤5 MB, MP4 ≤16 MB, audio (AAC, AMR, MP3, M4A, OGG) ≤16 MB, PDF ≤100 MB; the bytes
/// must be of the declared type.
#[utoipa::path(post, path = "/quick-replies/{id}/media", tag = "quick-replies",
    request_body(content_type = "multipart/form-data", description = "file"),
    responses((status = 200, body = Data<QuickReplyOut>), (status = 413), (status = 422)))]
async fn upload_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> ApiResult<Json<Data<QuickReplyOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Quick reply")?;
    // Refused before the upload is read and stored.
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM quick_replies WHERE id = $1 AND org_id = $2)",
    )
    .bind(id)
    .bind(org_id)
    .fetch_one(&state.db)
    .await?;
    if !known {
        return Err(ApiError::not_found("Quick reply"));
    }
    let dir = state
        .config
        .blob_dir
        .join(format!("{org_id}/quick-replies"));
    let file = upload::receive_only_file(&mut multipart, "attachment", &dir).await?;
    let mime = file
        .mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((media_type, limit)) = media_kind(&mime) else {
        return Err(ApiError::invalid_field(
            "file",
            format!(
                "{mime} cannot be attached: use JPEG, PNG, MP4, AAC, AMR, MP3, M4A, OGG or PDF"
            ),
        ));
    };
    if file.size == 0 {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    if file.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "{media_type} attachments are limited to {limit} bytes"
        )));
    }
    file.check_type("file")?;
    let media = StoredMedia {
        media_type,
        mime,
        file_name: file.filename.clone(),
        size: file.size,
        blob: format!("{org_id}/quick-replies/{}", Uuid::new_v4()),
    };
    file.keep_as(&state.config.blob_dir.join(&media.blob))
        .await?;
    let stored = async {
        let mut tx = state.db.begin().await?;
        let out = set_media(&mut tx, org_id, id, Some(&media)).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(out)
    }
    .await;
    // The new file is kept only if a row names it; the old one only while a row does.
    let (row, old) = match stored {
        Ok(done) => done,
        Err(err) => {
            remove_blob(&state, &media.blob).await;
            return Err(err);
        }
    };
    if let Some(old) = old {
        remove_blob(&state, &old).await;
    }
    Ok(Data::new(row.into()))
}

/// Remove a quick reply's attachment and its file (admin). Removing none is fine.
#[utoipa::path(delete, path = "/quick-replies/{id}/media", tag = "quick-replies",
    responses((status = 200, body = Data<QuickReplyOut>)))]
async fn delete_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<QuickReplyOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Quick reply")?;
    let mut tx = state.db.begin().await?;
    let (row, old) = set_media(&mut tx, org_id, id, None).await?;
    tx.commit().await?;
    if let Some(old) = old {
        remove_blob(&state, &old).await;
    }
    Ok(Data::new(row.into()))
}
