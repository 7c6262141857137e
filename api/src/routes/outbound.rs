//! Sending: `POST /conversations/{id}/messages` (every Cloud API message type),
//! `.../messages/media` (an upload), `POST /messages/{id}/react` and
//! `POST /messages/{id}/toggle-hide`.
//!
//! The API validates the message, builds the exact Cloud API body, inserts the message
//! `queued` and enqueues its send in one transaction, and answers 202 at once: it never calls
//! Meta inline. Free-form messages outside the 24-hour customer-service window are refused
//! before anything is queued. An `Idempotency-Key` header makes a repeated request return the
//! first result without a second send.

use axum::{
    body::Bytes,
    extract::{Multipart, Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    events::Event,
    outbound::{self, NewOutbound, QueueError, Target},
};

use super::{
    messages::{MessageOut, MessageRow, MESSAGE_COLUMNS},
    Data,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, parse_json, ValidJson},
    state::AppState,
    upload,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(send_media))
        .routes(routes!(react))
        .routes(routes!(toggle_hide))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboundType {
    Text,
    Template,
    Image,
    Video,
    Audio,
    Document,
    Sticker,
    Interactive,
    Location,
    Contacts,
}

impl OutboundType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Template => "template",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Interactive => "interactive",
            Self::Location => "location",
            Self::Contacts => "contacts",
        }
    }
}

/// `"text": "hello"` or `"text": {"body": "hello", "previewUrl": true}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TextField {
    Plain(String),
    Full {
        body: String,
        #[serde(rename = "previewUrl", alias = "preview_url")]
        preview_url: Option<bool>,
    },
}

impl TextField {
    fn body(&self) -> &str {
        match self {
            Self::Plain(b) | Self::Full { body: b, .. } => b,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MediaField {
    /// An uploaded media id, or
    pub id: Option<String>,
    /// a public http(s) URL; exactly one of the two.
    pub link: Option<String>,
    /// Not for audio and stickers.
    pub caption: Option<String>,
    /// Documents only.
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TemplateField {
    pub name: String,
    /// `"en_US"` or `{"code": "en_US"}`.
    pub language: Value,
    /// Cloud API template components (header/body/button parameters).
    #[serde(default)]
    pub components: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LocationField {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// A message to send. `type` names the field that carries it (Cloud API shapes).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    #[serde(rename = "type")]
    pub kind: OutboundType,
    pub text: Option<TextField>,
    pub template: Option<TemplateField>,
    pub image: Option<MediaField>,
    pub video: Option<MediaField>,
    pub audio: Option<MediaField>,
    pub document: Option<MediaField>,
    pub sticker: Option<MediaField>,
    /// A Cloud API `interactive` object (`button` or `list`).
    #[schema(value_type = Object)]
    pub interactive: Option<Value>,
    pub location: Option<LocationField>,
    /// Cloud API contact cards.
    #[schema(value_type = Vec<Object>)]
    pub contacts: Option<Vec<Value>>,
    /// Id of a message of this conversation to reply to.
    pub reply_to: Option<String>,
}

impl SendRequest {
    fn media(&self) -> Option<&MediaField> {
        match self.kind {
            OutboundType::Image => self.image.as_ref(),
            OutboundType::Video => self.video.as_ref(),
            OutboundType::Audio => self.audio.as_ref(),
            OutboundType::Document => self.document.as_ref(),
            OutboundType::Sticker => self.sticker.as_ref(),
            _ => None,
        }
    }
}

const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 1024;

fn check_len(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

fn check_link(v: &mut Violations, field: &str, link: &str) {
    if !(link.starts_with("https://") || link.starts_with("http://"))
        || link.len() > 2048
        || link.contains(' ')
    {
        v.add(field, "must be a public http(s) URL");
    }
}

/// Meta's limits for reply buttons and lists (ARCHITECTURE.md, "Meta facts").
fn check_interactive(v: &mut Violations, i: &Value) {
    let body = i["body"]["text"].as_str().unwrap_or_default();
    match i["type"].as_str() {
        Some("button") => {
            if body.trim().is_empty() {
                v.add("interactive.body.text", "is required");
            }
            check_len(v, "interactive.body.text", body, 1024);
            let buttons = i["action"]["buttons"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if buttons.is_empty() || buttons.len() > 3 {
                v.add("interactive.action.buttons", "must have 1 to 3 buttons");
            }
            let mut titles = std::collections::HashSet::new();
            for b in &buttons {
                let title = b["reply"]["title"].as_str().unwrap_or_default();
                let id = b["reply"]["id"].as_str().unwrap_or_default();
                if title.is_empty() || title.chars().count() > 20 {
                    v.add(
                        "interactive.action.buttons",
                        "each button needs a title of 1 to 20 characters",
                    );
                } else if !titles.insert(title.to_string()) {
                    v.add("interactive.action.buttons", "button titles must be unique");
                }
                if id.is_empty() || id.len() > 256 {
                    v.add(
                        "interactive.action.buttons",
                        "each button needs an id of 1 to 256 characters",
                    );
                }
            }
        }
        Some("list") => {
            if body.trim().is_empty() {
                v.add("interactive.body.text", "is required");
            }
            check_len(v, "interactive.body.text", body, 4096);
            let button = i["action"]["button"].as_str().unwrap_or_default();
            if button.is_empty() || button.chars().count() > 20 {
                v.add("interactive.action.button", "must be 1 to 20 characters");
            }
            let sections = i["action"]["sections"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let rows: Vec<Value> = sections
                .iter()
                .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
                .collect();
            if sections.is_empty() || sections.len() > 10 {
                v.add("interactive.action.sections", "must have 1 to 10 sections");
            }
            if rows.is_empty() || rows.len() > 10 {
                v.add(
                    "interactive.action.sections",
                    "must have 1 to 10 rows in total",
                );
            }
            for r in &rows {
                let title = r["title"].as_str().unwrap_or_default();
                if title.is_empty() || title.chars().count() > 24 {
                    v.add(
                        "interactive.action.sections",
                        "each row needs a title of 1 to 24 characters",
                    );
                }
                if r["id"]
                    .as_str()
                    .is_none_or(|id| id.is_empty() || id.len() > 200)
                {
                    v.add(
                        "interactive.action.sections",
                        "each row needs an id of 1 to 200 characters",
                    );
                }
                if r["description"]
                    .as_str()
                    .is_some_and(|d| d.chars().count() > 72)
                {
                    v.add(
                        "interactive.action.sections",
                        "row descriptions are at most 72 characters",
                    );
                }
            }
        }
        _ => v.add_kind("interactive.type", "must be button or list", "enum"),
    }
}

impl Validate for SendRequest {
    fn validate(&self, v: &mut Violations) {
        let field = self.kind.as_str();
        match self.kind {
            OutboundType::Text => match &self.text {
                None => v.add_kind("text", "Field required for type text", "missing"),
                Some(t) if t.body().trim().is_empty() => v.add("text", "must not be empty"),
                Some(t) => check_len(v, "text", t.body(), MAX_TEXT),
            },
            OutboundType::Template => match &self.template {
                None => v.add_kind("template", "Field required for type template", "missing"),
                Some(t) => {
                    if t.name.is_empty()
                        || t.name.len() > 512
                        || !t
                            .name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    {
                        v.add(
                            "template.name",
                            "must be a template name (lowercase letters, digits, underscores)",
                        );
                    }
                    if template_language(&t.language).is_none() {
                        v.add("template.language", "must be a language code such as en_US");
                    }
                }
            },
            OutboundType::Interactive => match &self.interactive {
                None => v.add_kind(
                    "interactive",
                    "Field required for type interactive",
                    "missing",
                ),
                Some(i) => check_interactive(v, i),
            },
            OutboundType::Location => match &self.location {
                None => v.add_kind("location", "Field required for type location", "missing"),
                Some(l) => {
                    if !(-90.0..=90.0).contains(&l.latitude) {
                        v.add("location.latitude", "must be between -90 and 90");
                    }
                    if !(-180.0..=180.0).contains(&l.longitude) {
                        v.add("location.longitude", "must be between -180 and 180");
                    }
                }
            },
            OutboundType::Contacts => match &self.contacts {
                None => v.add_kind("contacts", "Field required for type contacts", "missing"),
                Some(c) if c.is_empty() || c.len() > 50 => {
                    v.add("contacts", "must hold 1 to 50 contacts")
                }
                Some(c) => {
                    if c.iter().any(|x| {
                        x["name"]["formatted_name"]
                            .as_str()
                            .is_none_or(str::is_empty)
                    }) {
                        v.add("contacts", "each contact needs name.formatted_name");
                    }
                }
            },
            _ => match self.media() {
                None => v.add_kind(field, format!("Field required for type {field}"), "missing"),
                Some(m) => {
                    match (&m.id, &m.link) {
                        (Some(_), Some(_)) | (None, None) => {
                            v.add(field, "give exactly one of id or link")
                        }
                        (None, Some(link)) => check_link(v, &format!("{field}.link"), link),
                        (Some(id), None) if id.trim().is_empty() => {
                            v.add(&format!("{field}.id"), "must not be empty")
                        }
                        _ => {}
                    }
                    if m.caption.is_some()
                        && matches!(self.kind, OutboundType::Audio | OutboundType::Sticker)
                    {
                        v.add(
                            &format!("{field}.caption"),
                            "audio and stickers take no caption",
                        );
                    }
                    if let Some(c) = &m.caption {
                        check_len(v, &format!("{field}.caption"), c, MAX_CAPTION);
                    }
                    if m.filename.is_some() && self.kind != OutboundType::Document {
                        v.add(
                            &format!("{field}.filename"),
                            "only documents take a filename",
                        );
                    }
                }
            },
        }
        if let Some(r) = &self.reply_to {
            if Uuid::parse_str(r).is_err() {
                v.add("replyTo", "must be a message id");
            }
        }
    }
}

fn template_language(lang: &Value) -> Option<String> {
    let code = match lang {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("code")?.as_str()?.to_string(),
        _ => return None,
    };
    let ok = (2..=15).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then_some(code)
}

/// The Cloud API object for the message's type (without envelope).
pub(crate) fn type_object(req: &SendRequest) -> Value {
    match req.kind {
        OutboundType::Text => {
            let t = req.text.as_ref().expect("validated");
            let preview = matches!(
                t,
                TextField::Full {
                    preview_url: Some(true),
                    ..
                }
            );
            json!({"body": t.body(), "preview_url": preview})
        }
        OutboundType::Template => {
            let t = req.template.as_ref().expect("validated");
            let mut o = json!({"name": t.name, "language": {"code": template_language(&t.language).expect("validated")}});
            if !t.components.is_empty() {
                o["components"] = Value::Array(t.components.clone());
            }
            o
        }
        OutboundType::Interactive => req.interactive.clone().expect("validated"),
        OutboundType::Location => {
            let l = req.location.as_ref().expect("validated");
            let mut o = json!({"latitude": l.latitude, "longitude": l.longitude});
            if let Some(n) = &l.name {
                o["name"] = json!(n);
            }
            if let Some(a) = &l.address {
                o["address"] = json!(a);
            }
            o
        }
        OutboundType::Contacts => Value::Array(req.contacts.clone().expect("validated")),
        _ => {
            let m = req.media().expect("validated");
            let mut o = serde_json::Map::new();
            if let Some(id) = &m.id {
                o.insert("id".into(), json!(id));
            }
            if let Some(link) = &m.link {
                o.insert("link".into(), json!(link));
            }
            if let Some(c) = &m.caption {
                o.insert("caption".into(), json!(c));
            }
            if let Some(f) = &m.filename {
                o.insert("filename".into(), json!(f));
            }
            Value::Object(o)
        }
    }
}

/// The conversation `conversation_id` of `org_id` (404 when it is not the caller's).
pub(crate) async fn load_target(
    state: &AppState,
    org_id: Uuid,
    conversation_id: Uuid,
) -> ApiResult<Target> {
    let mut conn = state.db.acquire().await?;
    outbound::load_target(&mut conn, org_id, conversation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Conversation"))
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))?
                .trim();
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 255 characters".into(),
                ));
            }
            Ok(Some(key.to_string()))
        }
    }
}

/// Returns the message an Idempotency-Key already produced, or a 409 if the key was used for
/// a different request.
pub(crate) async fn replay(
    state: &AppState,
    org_id: Uuid,
    key: &str,
    hash: &str,
) -> ApiResult<Option<MessageOut>> {
    let mut conn = state.db.acquire().await?;
    match outbound::replay(&mut conn, org_id, key, hash).await {
        Ok(Some(id)) => Ok(Some(fetch_message(state, org_id, id).await?)),
        Ok(None) => Ok(None),
        Err(e) => Err(queue_error(e)),
    }
}

fn queue_error(err: QueueError) -> ApiError {
    match err {
        QueueError::IdempotencyKeyReused => ApiError::Conflict(
            "This Idempotency-Key was already used for a different request".into(),
        ),
        QueueError::ContactBlocked => ApiError::Conflict(err.to_string()),
        QueueError::Database(e) => e.into(),
        QueueError::Jobs(e) => e.into(),
    }
}

pub async fn fetch_message(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<MessageOut> {
    let row: MessageRow = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 AND m.org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Message"))?;
    Ok(row.into())
}

/// Queues the message (the shared domain operation) and answers with it.
pub(crate) async fn queue(state: &AppState, m: NewOutbound) -> ApiResult<MessageOut> {
    let (org_id, conversation_id) = (m.org_id, m.target.id);
    let mut tx = state.db.begin().await?;
    let id = outbound::queue_outbound(&mut tx, m)
        .await
        .map_err(queue_error)?;
    tx.commit().await?;
    let event = Event::message_created(org_id, conversation_id, id, "OUTBOUND");
    state.events.publish_one(event).await;
    fetch_message(state, org_id, id).await
}

pub(crate) fn user_id(auth: &Auth) -> Option<Uuid> {
    match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    }
}

pub(crate) fn ensure_sendable(target: &Target) -> ApiResult<()> {
    if !target.sendable() {
        return Err(ApiError::Conflict(
            "This conversation's WhatsApp number is disconnected".into(),
        ));
    }
    Ok(())
}

pub(crate) fn window_closed() -> ApiError {
    ApiError::Validation(vec![crate::error::FieldError::new(
        &["body", "type"],
        "The 24-hour customer service window is closed: the customer has not written in the last 24 hours. \
         Send an approved template message instead.",
        "template_required",
    )])
}

/// Send a message in a conversation. Answers 202 with the queued message; the send happens in
/// a job. Free-form types need the 24-hour window; templates do not.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messages", request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: a repeated request returns the first result")),
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 409), (status = 422)))]
async fn send_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let conversation_id = parse_id(&id, "Conversation")?;
    let key = idempotency_key(&headers)?;
    let hash = key.as_ref().map(|_| {
        let mut h = Sha256::new();
        h.update(conversation_id.as_bytes());
        h.update(&body);
        hex::encode(h.finalize())
    });
    if let (Some(k), Some(h)) = (&key, &hash) {
        if let Some(existing) = replay(&state, org_id, k, h).await? {
            return Ok((StatusCode::ACCEPTED, Data::new(existing)));
        }
    }
    let ValidJson(req) = parse_valid::<SendRequest>(&headers, &body)?;
    let target = load_target(&state, org_id, conversation_id).await?;
    ensure_sendable(&target)?;
    if req.kind != OutboundType::Template && !target.window_open() {
        return Err(window_closed());
    }
    let reply_to_wamid = match &req.reply_to {
        None => None,
        Some(r) => Some(reply_wamid(&state, org_id, conversation_id, r).await?),
    };
    let object = type_object(&req);
    let template_name = req.template.as_ref().map(|t| t.name.clone());
    let content = content_of(&req, &object);
    let kind = req.kind.as_str();
    let message = queue(
        &state,
        NewOutbound {
            org_id,
            target,
            kind,
            content,
            object,
            reply_to_wamid,
            template_name,
            sent_by: user_id(&auth),
            idempotency: key.zip(hash),
            upload: None,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Data::new(message)))
}

/// Validates a JSON body already read as bytes (the handler needed the raw bytes for the
/// idempotency hash).
pub(crate) fn parse_valid<T: serde::de::DeserializeOwned + Validate>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<ValidJson<T>> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
    if !is_json {
        return Err(ApiError::Validation(vec![crate::error::FieldError::new(
            &["body"],
            "expected a JSON body (Content-Type: application/json)",
            "json_invalid",
        )]));
    }
    let value: T = parse_json(body)?;
    let mut v = Violations::body();
    value.validate(&mut v);
    v.into_result()?;
    Ok(ValidJson(value))
}

/// What the inbox shows for an outbound message: the same keys inbound messages use.
pub(crate) fn content_of(req: &SendRequest, object: &Value) -> Value {
    match req.kind {
        OutboundType::Text => json!({"body": object["body"]}),
        OutboundType::Template => json!({"template": object}),
        OutboundType::Location => object.clone(),
        OutboundType::Contacts => json!({"contacts": object}),
        OutboundType::Interactive => json!({"interactive": object}),
        _ => {
            let mut c = object.clone();
            if let Some(id) = c.get("id").cloned() {
                c["mediaId"] = id;
            }
            c
        }
    }
}

async fn reply_wamid(
    state: &AppState,
    org_id: Uuid,
    conversation_id: Uuid,
    message_id: &str,
) -> ApiResult<String> {
    let id = Uuid::parse_str(message_id)
        .map_err(|_| ApiError::invalid_field("replyTo", "must be a message id"))?;
    let wamid: Option<Option<String>> = sqlx::query_scalar(
        "SELECT wamid FROM messages WHERE id = $1 AND org_id = $2 AND conversation_id = $3",
    )
    .bind(id)
    .bind(org_id)
    .bind(conversation_id)
    .fetch_optional(&state.db)
    .await?;
    match wamid {
        None => Err(ApiError::invalid_field(
            "replyTo",
            "no such message in this conversation",
        )),
        Some(None) => Err(ApiError::invalid_field(
            "replyTo",
            "that message has not been sent yet",
        )),
        Some(Some(w)) => Ok(w),
    }
}

/// Meta's media limits by type (ARCHITECTURE.md, "Meta facts").
pub(crate) fn media_limit(kind: OutboundType, mime: &str) -> Option<u64> {
    const MB: u64 = 1024 * 1024;
    match kind {
        OutboundType::Image => matches!(mime, "image/jpeg" | "image/png").then_some(5 * MB),
        OutboundType::Video => matches!(mime, "video/mp4" | "video/3gpp").then_some(16 * MB),
        OutboundType::Audio => matches!(
            mime,
            "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg"
        )
        .then_some(16 * MB),
        OutboundType::Sticker => (mime == "image/webp").then_some(500 * 1024),
        OutboundType::Document => Some(100 * MB),
        _ => None,
    }
}

/// Send a media message from an upload (multipart: `file`, optional `type`, `caption`).
/// The file is stored and the worker uploads it to Meta before sending.
#[utoipa::path(post, path = "/conversations/{id}/messages/media", tag = "messages",
    request_body(content_type = "multipart/form-data", description = "file, type (image|video|audio|document|sticker), caption"),
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 413), (status = 422)))]
async fn send_media(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let conversation_id = parse_id(&id, "Conversation")?;
    let dir = state.config.blob_dir.join(format!("{org_id}/outbound"));
    let mut file = None;
    let mut kind_field: Option<String> = None;
    let mut caption: Option<String> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(upload::multipart_error)?
    {
        match field.name() {
            Some("file") => file = Some(upload::receive(field, "upload", &dir).await?),
            Some("type") => kind_field = Some(text_field(field, "type").await?),
            Some("caption") => caption = Some(text_field(field, "caption").await?),
            _ => {}
        }
    }
    let file = file.ok_or_else(upload::file_required)?;
    let mime = file.mime.clone();
    let kind = match kind_field.as_deref() {
        Some("image") => OutboundType::Image,
        Some("video") => OutboundType::Video,
        Some("audio") => OutboundType::Audio,
        Some("sticker") => OutboundType::Sticker,
        Some("document") => OutboundType::Document,
        None if mime.starts_with("image/") && mime != "image/webp" => OutboundType::Image,
        None if mime.starts_with("video/") => OutboundType::Video,
        None if mime.starts_with("audio/") => OutboundType::Audio,
        None => OutboundType::Document,
        Some(_) => {
            return Err(ApiError::Validation(vec![crate::error::FieldError::new(
                &["body", "type"],
                "must be image, video, audio, document or sticker",
                "enum",
            )]))
        }
    };
    let Some(limit) = media_limit(kind, &mime) else {
        return Err(ApiError::invalid_field(
            "file",
            format!("{mime} cannot be sent as {}", kind.as_str()),
        ));
    };
    if file.size == 0 {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    if file.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} files are limited to {} bytes",
            kind.as_str(),
            limit
        )));
    }
    file.check_type("file")?;
    if caption.is_some() && matches!(kind, OutboundType::Audio | OutboundType::Sticker) {
        return Err(ApiError::invalid_field(
            "caption",
            "audio and stickers take no caption",
        ));
    }
    let target = load_target(&state, org_id, conversation_id).await?;
    ensure_sendable(&target)?;
    if !target.window_open() {
        return Err(window_closed());
    }
    let blob = format!("{org_id}/outbound/{}", Uuid::new_v4());
    let (filename, size) = (file.filename.clone(), file.size);
    file.keep_as(&state.config.blob_dir.join(&blob)).await?;
    let mut object = json!({});
    if let Some(c) = &caption {
        object["caption"] = json!(c);
    }
    if kind == OutboundType::Document {
        object["filename"] = json!(filename);
    }
    let content = json!({"caption": caption, "filename": filename, "mimeType": mime, "size": size});
    let message = queue(
        &state,
        NewOutbound {
            org_id,
            target,
            kind: kind.as_str(),
            content,
            object,
            reply_to_wamid: None,
            template_name: None,
            sent_by: user_id(&auth),
            idempotency: None,
            upload: Some((blob, mime, filename)),
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Data::new(message)))
}

/// A text field of a multipart body: UTF-8 without U+0000, or a 422 naming it.
async fn text_field(
    field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, ApiError> {
    let text = field.text().await.map_err(upload::multipart_error)?;
    if text.contains('\0') {
        return Err(ApiError::invalid_field(name, crate::extract::NUL_MESSAGE));
    }
    Ok(text)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactRequest {
    /// An emoji; an empty string removes the reaction.
    pub emoji: String,
}

impl Validate for ReactRequest {
    fn validate(&self, v: &mut Violations) {
        if self.emoji.chars().count() > 10 {
            v.add("emoji", "must be a single emoji");
        }
    }
}

/// React to a message with an emoji (sent as a reaction message).
#[utoipa::path(post, path = "/messages/{id}/react", tag = "messages", request_body = ReactRequest,
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 422)))]
async fn react(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<ReactRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let message_id = parse_id(&id, "Message")?;
    let row: Option<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT conversation_id, wamid FROM messages WHERE id = $1 AND org_id = $2")
            .bind(message_id)
            .bind(org_id)
            .fetch_optional(&state.db)
            .await?;
    let (conversation_id, wamid) = row.ok_or_else(|| ApiError::not_found("Message"))?;
    let wamid =
        wamid.ok_or_else(|| ApiError::Conflict("That message has not been sent yet".into()))?;
    let target = load_target(&state, org_id, conversation_id).await?;
    ensure_sendable(&target)?;
    if !target.window_open() {
        return Err(window_closed());
    }
    let object = json!({"message_id": wamid, "emoji": body.emoji});
    let message = queue(
        &state,
        NewOutbound {
            org_id,
            target,
            kind: "reaction",
            content: json!({"messageId": message_id, "emoji": body.emoji}),
            object,
            reply_to_wamid: None,
            template_name: None,
            sent_by: user_id(&auth),
            idempotency: None,
            upload: None,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Data::new(message)))
}

/// Hide or unhide a message in the inbox (it stays in the history).
#[utoipa::path(post, path = "/messages/{id}/toggle-hide", tag = "messages",
    responses((status = 200, body = Data<MessageOut>), (status = 404)))]
async fn toggle_hide(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<MessageOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let message_id = parse_id(&id, "Message")?;
    let done =
        sqlx::query("UPDATE messages SET is_hidden = NOT is_hidden WHERE id = $1 AND org_id = $2")
            .bind(message_id)
            .bind(org_id)
            .execute(&state.db)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Message"));
    }
    Ok(Data::new(fetch_message(&state, org_id, message_id).await?))
}
