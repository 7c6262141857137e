//! `/bot-config/media`: the organization's media assets, files the bot may send to customers.
//! An admin uploads one (multipart `file`, optional `name`, `description`, and for a video an
//! optional poster image `thumbnail`), renames or describes it, deletes it; any role lists
//! them and downloads a file or its thumbnail.
//!
//! Accepted are the types Meta sends, within Meta's size limits (image 5 MB, WebP 500 KB, video
//! and audio 16 MB, document 100 MB), and the bytes must be of the declared type. Every wrong
//! field of an upload is named in one 422, and a refused upload leaves no row and no file.
//! Thumbnails are PNGs of at most 320 pixels on the long side: a downscaled copy of an image,
//! the uploader's poster of a video or else a generated one (we do not decode video: that
//! would need ffmpeg, which we do not install); audio and documents have none. Files are
//! streamed from disk, never read whole. The storage and thumbnails are
//! `wharf_shared::bot::media`.

use axum::{
    body::Body,
    extract::{
        multipart::{Field, Multipart},
        Path, State,
    },
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use tokio_util::io::ReaderStream;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::media::{
    self, BotMedia, Changes, CreateError, MediaType, NewAsset, ACCEPTED_TYPES, MAX_DESCRIPTION_LEN,
    MAX_FILENAME_LEN, MAX_NAME_LEN, MAX_THUMBNAIL_UPLOAD_BYTES,
};

use super::{cx_settings::present, outbound::user_id, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, ValidJson, NUL_MESSAGE},
    state::AppState,
    upload::{self, ReceivedFile},
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_media, upload_media))
        .routes(routes!(update_media, delete_media))
        .routes(routes!(media_file))
        .routes(routes!(media_thumbnail))
}

const WHAT: &str = "Media asset";
/// The most bytes read of a text field (`name`, `description`); longer is a 422.
const MAX_TEXT_FIELD_BYTES: usize = 16 * 1024;
/// Chunks of a streamed file.
const STREAM_CHUNK: usize = 64 * 1024;

/// An asset as answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaOut {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// IMAGE, VIDEO, AUDIO or DOCUMENT: what Meta sends it as.
    pub media_type: String,
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    pub filename: String,
    /// Images and videos have one; audio and documents none.
    pub has_thumbnail: bool,
    /// `/api/v1/bot-config/media/{id}/file`.
    pub file_url: String,
    /// `/api/v1/bot-config/media/{id}/thumbnail`, or `null`.
    pub thumbnail_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<BotMedia> for MediaOut {
    fn from(m: BotMedia) -> Self {
        let base = format!("/api/v1/bot-config/media/{}", m.id);
        Self {
            id: m.id,
            name: m.name,
            description: m.description,
            media_type: m.media_type,
            mime_type: m.mime_type,
            size: m.size,
            filename: m.filename,
            has_thumbnail: m.thumbnail_path.is_some(),
            file_url: format!("{base}/file"),
            thumbnail_url: m.thumbnail_path.map(|_| format!("{base}/thumbnail")),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The organization's media assets, newest first (any role).
#[utoipa::path(get, path = "/bot-config/media", tag = "bot-config",
    responses((status = 200, body = Data<Vec<MediaOut>>)))]
async fn list_media(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<MediaOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let rows = media::list(&mut conn, org_id).await?;
    Ok(Data::new(rows.into_iter().map(MediaOut::from).collect()))
}

/// Multipart body of an upload (documentation only; the handler reads the fields itself).
#[derive(Debug, ToSchema)]
pub struct MediaUploadForm {
    /// JPEG, PNG (5 MB) or WebP (500 KB) images; MP4 or 3GPP videos (16 MB); AAC, M4A, MP3,
    /// AMR or OGG audio (16 MB); PDF, Word, Excel, PowerPoint or plain-text documents (100 MB).
    /// The content must be of the declared type.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Up to 200 characters; the file's name by default.
    pub name: Option<String>,
    /// Up to 1000 characters.
    pub description: Option<String>,
    /// Videos only: a JPEG or PNG poster (5 MB), stored downscaled. Without it a video gets a
    /// generated poster.
    #[schema(value_type = Option<String>, format = Binary)]
    pub thumbnail: Option<Vec<u8>>,
}

/// The fields of an upload as received; the files wait in temporary files that go away with
/// this value unless kept.
#[derive(Default)]
struct UploadForm {
    file: Option<ReceivedFile>,
    thumbnail: Option<ReceivedFile>,
    name: Option<String>,
    description: Option<String>,
}

/// Upload a media asset (admin): multipart `file`, optional `name`, `description` and, for a
/// video, `thumbnail`. Every wrong field is named in one 422, and nothing is kept then.
#[utoipa::path(post, path = "/bot-config/media", tag = "bot-config",
    request_body(content = MediaUploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Data<MediaOut>),
              (status = 403, description = "Changes need an admin"),
              (status = 413, description = "The body is larger than 100 MB"),
              (status = 422, description = "Every wrong field: a missing file, a type Meta does not send, a file over its type's limit, content not of the declared type, an unreadable image, a name too long ...")))]
async fn upload_media(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let dir = media::org_dir(&state.config.blob_dir, org_id);
    let mut errors = Vec::new();
    let form = read_form(&mut multipart, &dir, &mut errors).await?;
    let checked = check_form(&form, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some((media_type, mime)), Some(file)) = (checked, form.file) else {
        return Err(upload::file_required());
    };
    let upload = Accepted {
        org_id,
        media_type,
        mime,
        file,
        thumbnail: form.thumbnail,
        name: form.name,
        description: form.description,
        created_by: user_id(&auth),
    };
    // Run to the end even if the client goes away (or the request times out) meanwhile: a
    // file moved into place is then always either named by a row or removed.
    let row = tokio::spawn(store(state, upload))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    Ok((StatusCode::CREATED, Data::new(MediaOut::from(row))))
}

/// An upload whose fields passed the checks.
struct Accepted {
    org_id: Uuid,
    media_type: MediaType,
    mime: String,
    file: ReceivedFile,
    thumbnail: Option<ReceivedFile>,
    name: Option<String>,
    description: Option<String>,
    created_by: Option<Uuid>,
}

/// Moves the accepted files into place and creates the asset (its thumbnail made there); on
/// failure nothing is left.
async fn store(state: AppState, upload: Accepted) -> ApiResult<BotMedia> {
    let Accepted {
        org_id,
        media_type,
        mime,
        file,
        thumbnail,
        name,
        description,
        created_by,
    } = upload;
    let id = Uuid::new_v4();
    let blob = state.config.blob_dir.join(media::blob_path(org_id, id));
    let filename = match cut(file.filename.trim(), MAX_FILENAME_LEN) {
        f if f.is_empty() => "upload".to_string(),
        f => f,
    };
    let name = match name.as_deref().map(str::trim) {
        Some(n) => n.to_string(),
        None => cut(&filename, MAX_NAME_LEN),
    };
    let size = file.size;
    file.keep_as(&blob).await?;
    let poster_source = match thumbnail {
        Some(t) => {
            let path = blob.with_extension("poster-source");
            let format = media::image_format(&media::essence(&t.mime));
            if let Err(err) = t.keep_as(&path).await {
                let _ = tokio::fs::remove_file(&blob).await;
                return Err(err);
            }
            format.map(|f| (path, f))
        }
        None => None,
    };
    let new = NewAsset {
        id,
        org_id,
        name,
        description: description
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        media_type,
        mime_type: mime,
        size,
        filename,
        created_by,
        poster_source,
    };
    media::create(&state.db, &state.config.blob_dir, new)
        .await
        .map_err(|e| match e {
            CreateError::Invalid { field, message } => ApiError::invalid_field(field, message),
            CreateError::Database(e) => e.into(),
            CreateError::Io(e) => ApiError::Internal(e.into()),
        })
}

/// Reads every field of an upload: files into temporary files under `dir`, text fields up to
/// [`MAX_TEXT_FIELD_BYTES`] (a longer or malformed one is added to `errors`). Other fields are
/// ignored.
async fn read_form(
    multipart: &mut Multipart,
    dir: &std::path::Path,
    errors: &mut Vec<FieldError>,
) -> ApiResult<UploadForm> {
    let mut form = UploadForm::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(upload::multipart_error)?
    {
        match field.name() {
            Some("file") => form.file = Some(upload::receive(field, "upload", dir).await?),
            Some("thumbnail") => {
                form.thumbnail = Some(upload::receive(field, "thumbnail", dir).await?)
            }
            Some("name") => form.name = text_field(field, "name", errors).await?,
            Some("description") => {
                form.description = text_field(field, "description", errors).await?
            }
            _ => {}
        }
    }
    Ok(form)
}

/// A text field, read up to [`MAX_TEXT_FIELD_BYTES`]; `None` (with the problem in `errors`)
/// when it is longer, not UTF-8 or holds U+0000.
async fn text_field(
    mut field: Field<'_>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Option<String>> {
    let mut bytes = Vec::new();
    let mut too_long = false;
    while let Some(chunk) = field.chunk().await.map_err(upload::multipart_error)? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            too_long = true;
        } else {
            bytes.extend_from_slice(&chunk);
        }
    }
    let max = if name == "name" {
        MAX_NAME_LEN
    } else {
        MAX_DESCRIPTION_LEN
    };
    let problem = match String::from_utf8(bytes) {
        _ if too_long => format!("must be at most {max} characters"),
        Ok(text) if !text.contains('\0') => return Ok(Some(text)),
        Ok(_) => NUL_MESSAGE.to_string(),
        Err(_) => "must be valid UTF-8".to_string(),
    };
    errors.push(FieldError::new(&["body", name], problem, "value_error"));
    Ok(None)
}

/// Checks an upload's fields, adding every problem to `errors`. Returns the file's type and
/// MIME type when the file itself is acceptable.
fn check_form(
    form: &UploadForm,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Option<(MediaType, String)>> {
    let add = |errors: &mut Vec<FieldError>, field: &str, msg: String| {
        errors.push(FieldError::new(&["body", field], msg, "value_error"));
    };
    let mut v = Violations::body();
    v.optional_text("name", form.name.as_deref(), MAX_NAME_LEN);
    if let Some(d) = &form.description {
        if d.trim().chars().count() > MAX_DESCRIPTION_LEN {
            v.add(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            );
        }
    }
    if let Err(ApiError::Validation(mut found)) = v.into_result() {
        errors.append(&mut found);
    }

    let mut checked = None;
    match &form.file {
        None => errors.push(FieldError::new(
            &["body", "file"],
            "Field required",
            "missing",
        )),
        Some(file) => {
            let mime = media::essence(&file.mime);
            match media::accepted(&mime) {
                None => add(
                    errors,
                    "file",
                    format!("{mime} cannot be sent by the bot: use {ACCEPTED_TYPES}"),
                ),
                Some(_) if file.size == 0 => add(errors, "file", "the file is empty".into()),
                Some((_, limit)) if file.size > limit => add(
                    errors,
                    "file",
                    format!(
                        "{mime} files are limited to {} (this one is {} bytes)",
                        human_size(limit),
                        file.size
                    ),
                ),
                Some((kind, _)) => match file.check_type("file") {
                    Ok(()) => checked = Some((kind, mime)),
                    Err(ApiError::Validation(mut found)) => errors.append(&mut found),
                    Err(other) => return Err(other),
                },
            }
        }
    }

    if let Some(thumb) = &form.thumbnail {
        let file_kind = form
            .file
            .as_ref()
            .and_then(|f| media::accepted(&media::essence(&f.mime)))
            .map(|(kind, _)| kind);
        let mime = media::essence(&thumb.mime);
        if file_kind.is_some_and(|k| k != MediaType::Video) {
            add(
                errors,
                "thumbnail",
                "only a video takes a thumbnail: an image's is made from it, audio and documents have none".into(),
            );
        } else if !matches!(mime.as_str(), "image/jpeg" | "image/png") {
            add(
                errors,
                "thumbnail",
                format!("must be a JPEG or PNG image, not {mime}"),
            );
        } else if thumb.size == 0 {
            add(errors, "thumbnail", "the file is empty".into());
        } else if thumb.size > MAX_THUMBNAIL_UPLOAD_BYTES {
            add(
                errors,
                "thumbnail",
                format!(
                    "is limited to {} (this one is {} bytes)",
                    human_size(MAX_THUMBNAIL_UPLOAD_BYTES),
                    thumb.size
                ),
            );
        } else {
            match thumb.check_type("thumbnail") {
                Ok(()) => {}
                Err(ApiError::Validation(mut found)) => errors.append(&mut found),
                Err(other) => return Err(other),
            }
        }
    }
    Ok(checked)
}

fn human_size(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} KB", bytes / 1024)
    }
}

/// `text` cut to at most `max` characters.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// PATCH's body: the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MediaChanges {
    /// 1 to 200 characters.
    pub name: Option<String>,
    /// Up to 1000 characters; `null` or empty clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

impl Validate for MediaChanges {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        if let Some(Some(d)) = &self.description {
            if d.trim().chars().count() > MAX_DESCRIPTION_LEN {
                v.add(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
                );
            }
        }
    }
}

/// Rename or describe a media asset (admin).
#[utoipa::path(patch, path = "/bot-config/media/{id}", tag = "bot-config", request_body = MediaChanges,
    responses((status = 200, body = Data<MediaOut>),
              (status = 403, description = "Changes need an admin"), (status = 404), (status = 422)))]
async fn update_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<MediaChanges>,
) -> ApiResult<Json<Data<MediaOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, WHAT)?;
    let changes = Changes {
        name: body.name.map(|n| n.trim().to_string()),
        description: body
            .description
            .map(|d| d.map(|d| d.trim().to_string()).filter(|d| !d.is_empty())),
    };
    let mut conn = state.db.acquire().await?;
    let row = media::update(&mut conn, org_id, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found(WHAT))?;
    Ok(Data::new(row.into()))
}

/// Delete a media asset with its file and thumbnail (admin).
#[utoipa::path(delete, path = "/bot-config/media/{id}", tag = "bot-config",
    responses((status = 204), (status = 403, description = "Changes need an admin"), (status = 404)))]
async fn delete_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, WHAT)?;
    let mut conn = state.db.acquire().await?;
    if !media::delete(&mut conn, &state.config.blob_dir, org_id, id).await? {
        return Err(ApiError::not_found(WHAT));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn fetch(state: &AppState, auth: &Auth, id: &str) -> ApiResult<BotMedia> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(id, WHAT)?;
    let mut conn = state.db.acquire().await?;
    media::fetch(&mut conn, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(WHAT))
}

/// The asset's file, with its MIME type, streamed (any role).
#[utoipa::path(get, path = "/bot-config/media/{id}/file", tag = "bot-config",
    responses((status = 200, description = "The file, with its MIME type", content_type = "application/octet-stream"),
              (status = 404)))]
async fn media_file(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = fetch(&state, &auth, &id).await?;
    let mut response = stream_blob(&state, &m, &m.blob_path, &m.mime_type).await?;
    let disposition = content_disposition(&m.filename);
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

/// The asset's thumbnail: a PNG of at most 320 pixels on its long side (any role). Audio and
/// documents have none (404).
#[utoipa::path(get, path = "/bot-config/media/{id}/thumbnail", tag = "bot-config",
    responses((status = 200, description = "The thumbnail", content_type = "image/png"),
              (status = 404, description = "Unknown id, or an asset without a thumbnail")))]
async fn media_thumbnail(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = fetch(&state, &auth, &id).await?;
    let Some(thumb) = &m.thumbnail_path else {
        return Err(ApiError::NotFound("This asset has no thumbnail".into()));
    };
    stream_blob(&state, &m, thumb, "image/png").await
}

/// Streams the blob at `relative` (under `BLOB_DIR`) as `mime`, with its length.
async fn stream_blob(
    state: &AppState,
    m: &BotMedia,
    relative: &str,
    mime: &str,
) -> ApiResult<Response> {
    let path = media::resolve(&state.config.blob_dir, relative).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "suspicious blob path for bot media {}",
            m.id
        ))
    })?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(media_id = %m.id, "bot media blob missing on disk");
            return Err(ApiError::NotFound(
                "The file of this asset is missing; upload it again".into(),
            ));
        }
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .len();
    let body = Body::from_stream(ReaderStream::with_capacity(file, STREAM_CHUNK));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

/// `inline; filename="<ASCII stand-in>"; filename*=UTF-8''<the name, percent-encoded>`.
fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = if ascii == filename {
        format!("inline; filename=\"{ascii}\"")
    } else {
        format!(
            "inline; filename=\"{ascii}\"; filename*=UTF-8''{}",
            utf8_percent_encode(filename, NON_ALPHANUMERIC)
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("inline"))
}
