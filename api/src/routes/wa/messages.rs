//! WhatsApp API: sending (`POST /whatsapp/messages`, `.../template`, `.../media`,
//! `.../interactive`), read receipts (`POST /whatsapp/messages/{message_id}/read`) and media
//! uploads to Meta (`POST /whatsapp/media`).
//!
//! A send names Meta's `phone_number_id` of one of the organization's connected numbers and the
//! customer's E.164 `to`; the message goes to that number's open conversation with the customer
//! (created for a template, the only message allowed outside the 24-hour window) through
//! `wharf_shared::outbound::queue_outbound`, exactly as `POST /conversations/{id}/messages`:
//! the same Cloud API bodies and checks, the same 24-hour rule (a 422 saying a template is
//! required), `Idempotency-Key`, blocklist and send limits. So the message shows once in that
//! conversation in `/api/v1`. An unknown or another organization's `phone_number_id` is a 422
//! naming `phone_number_id` (it is a body field, not a path id).
//!
//! Answers (the seed is silent): a send is `202` with
//! `{"id", "wamid" (null until Meta accepts it), "status", "conversation_id", "phone_number_id",
//! "to", "type"}`; read is `{"success": true, "id", "wamid", "conversation_id"}`; media is
//! `{"media_id", "mime_type", "size", "filename", "phone_number_id"}`.

use axum::{
    body::Bytes,
    extract::{Multipart, Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{inbox, meta::MetaClient, outbound as shared_outbound};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    routes::{
        messages::MessageOut,
        outbound::{
            self, ensure_sendable, media_limit, parse_valid, queue, type_object, user_id,
            window_closed, MediaField, OutboundType, SendRequest, TemplateField, TextField,
        },
    },
    state::AppState,
    upload,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_text))
        .routes(routes!(send_template))
        .routes(routes!(send_media))
        .routes(routes!(send_interactive))
        .routes(routes!(mark_read))
        .routes(routes!(upload_media))
}

/// A queued message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentOut {
    /// The platform's message id.
    pub id: Uuid,
    /// Meta's message id; `null` until Meta accepted the send.
    pub wamid: Option<String>,
    /// queued | sent | delivered | read | failed.
    pub status: String,
    pub conversation_id: Option<Uuid>,
    pub phone_number_id: String,
    /// The customer's number (digits).
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The customer's number as Meta's `wa_id` (digits, 8 to 15), from an E.164 number (`+`,
/// spaces, dashes and parentheses allowed).
fn wa_id(to: &str) -> Option<String> {
    let t = to.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')')))
    {
        return None;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    ((8..=15).contains(&digits.len()) && !digits.starts_with('0')).then_some(digits)
}

/// The fields every send has.
fn check_common(v: &mut Violations, phone_number_id: Option<&str>, to: Option<&str>) {
    match phone_number_id.map(str::trim) {
        None => v.add_kind("phone_number_id", "Field required", "missing"),
        Some("") => v.add("phone_number_id", "must not be empty"),
        Some(p) if p.len() > 64 => v.add("phone_number_id", "must be at most 64 characters"),
        Some(_) => {}
    }
    match to {
        None => v.add_kind("to", "Field required", "missing"),
        Some(t) if wa_id(t).is_none() => v.add(
            "to",
            "must be a phone number in E.164 format, e.g. +14155550123",
        ),
        Some(_) => {}
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TextRequest {
    /// Meta's phone number id of one of the organization's numbers.
    pub phone_number_id: Option<String>,
    /// The customer's number (E.164).
    pub to: Option<String>,
    pub text: Option<String>,
    /// Show a preview of the first link.
    pub preview_url: Option<bool>,
}

impl Validate for TextRequest {
    fn validate(&self, v: &mut Violations) {
        check_common(v, self.phone_number_id.as_deref(), self.to.as_deref());
        match &self.text {
            None => v.add_kind("text", "Field required", "missing"),
            Some(t) if t.trim().is_empty() => v.add("text", "must not be empty"),
            Some(t) if t.chars().count() > 4096 => v.add("text", "must be at most 4096 characters"),
            Some(_) => {}
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TemplateRequest {
    pub phone_number_id: Option<String>,
    pub to: Option<String>,
    /// The approved template's name.
    pub template: Option<String>,
    /// e.g. `en_US`; the template's own language when omitted.
    pub language: Option<String>,
    /// Cloud API components (`[{"type": "body", "parameters": [...]}]`), or the body's
    /// variables in order (`["Ana", "42"]`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<Value>,
}

impl Validate for TemplateRequest {
    fn validate(&self, v: &mut Violations) {
        check_common(v, self.phone_number_id.as_deref(), self.to.as_deref());
        match self.template.as_deref() {
            None => v.add_kind("template", "Field required", "missing"),
            Some(n)
                if n.is_empty()
                    || n.len() > 512
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                v.add(
                    "template",
                    "must be a template name (lowercase letters, digits, underscores)",
                )
            }
            Some(_) => {}
        }
        if let Some(l) = &self.language {
            if !(2..=15).contains(&l.len())
                || !l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                v.add("language", "must be a language code such as en_US");
            }
        }
        let objects = self.components.iter().filter(|c| c.is_object()).count();
        if objects != 0 && objects != self.components.len() {
            v.add(
                "components",
                "must be Cloud API component objects or a list of variables, not both",
            );
        }
        if objects == 0
            && self
                .components
                .iter()
                .any(|c| !(c.is_string() || c.is_number()))
        {
            v.add("components", "variables must be strings or numbers");
        }
    }
}

impl TemplateRequest {
    /// Cloud API components: as given, or the variables as body text parameters.
    fn cloud_components(&self) -> Vec<Value> {
        if self.components.is_empty() || self.components.iter().all(Value::is_object) {
            return self.components.clone();
        }
        let parameters: Vec<Value> = self
            .components
            .iter()
            .map(|c| {
                let text = c
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| c.to_string());
                json!({"type": "text", "text": text})
            })
            .collect();
        vec![json!({"type": "body", "parameters": parameters})]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Document,
    Audio,
    Video,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MediaRequest {
    pub phone_number_id: Option<String>,
    pub to: Option<String>,
    /// image | document | audio | video
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A media id from `POST /whatsapp/media`, or a public http(s) link.
    pub media_id: Option<String>,
    /// A public http(s) link (instead of `media_id`).
    pub link: Option<String>,
    /// Not for audio.
    pub caption: Option<String>,
    /// Documents only.
    pub filename: Option<String>,
}

impl MediaRequest {
    fn kind(&self) -> Option<OutboundType> {
        match self.kind.as_deref() {
            Some("image") => Some(OutboundType::Image),
            Some("document") => Some(OutboundType::Document),
            Some("audio") => Some(OutboundType::Audio),
            Some("video") => Some(OutboundType::Video),
            _ => None,
        }
    }

    /// `(id, link)`: a `media_id` holding a URL is a link.
    fn source(&self) -> (Option<String>, Option<String>) {
        let link = self.link.clone();
        match self.media_id.as_deref().map(str::trim) {
            Some(m) if m.starts_with("http://") || m.starts_with("https://") => {
                (None, Some(m.to_string()))
            }
            Some(m) => (Some(m.to_string()), link),
            None => (None, link),
        }
    }
}

impl Validate for MediaRequest {
    fn validate(&self, v: &mut Violations) {
        check_common(v, self.phone_number_id.as_deref(), self.to.as_deref());
        match (&self.kind, self.kind()) {
            (None, _) => v.add_kind("type", "Field required", "missing"),
            (Some(_), None) => {
                v.add_kind("type", "must be image, document, audio or video", "enum")
            }
            _ => {}
        }
        match self.source() {
            (None, None) => v.add_kind(
                "media_id",
                "Field required (a media id or a link)",
                "missing",
            ),
            (Some(_), Some(_)) => v.add("media_id", "give either media_id or link, not both"),
            (Some(id), None) if id.is_empty() => v.add("media_id", "must not be empty"),
            (None, Some(l))
                if !(l.starts_with("https://") || l.starts_with("http://"))
                    || l.len() > 2048
                    || l.contains(' ') =>
            {
                let field = if self.link.is_some() {
                    "link"
                } else {
                    "media_id"
                };
                v.add(field, "must be a public http(s) URL");
            }
            _ => {}
        }
        if self.caption.is_some() && self.kind() == Some(OutboundType::Audio) {
            v.add("caption", "audio takes no caption");
        }
        if let Some(c) = &self.caption {
            if c.chars().count() > 1024 {
                v.add("caption", "must be at most 1024 characters");
            }
        }
        if self.filename.is_some() && self.kind().is_some_and(|k| k != OutboundType::Document) {
            v.add("filename", "only documents take a filename");
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InteractiveRequest {
    pub phone_number_id: Option<String>,
    pub to: Option<String>,
    /// A Cloud API `interactive` object (`button` or `list`).
    #[schema(value_type = Object)]
    pub interactive: Option<Value>,
}

impl Validate for InteractiveRequest {
    fn validate(&self, v: &mut Violations) {
        check_common(v, self.phone_number_id.as_deref(), self.to.as_deref());
        match &self.interactive {
            None => v.add_kind("interactive", "Field required", "missing"),
            Some(i) if !i.is_object() => v.add("interactive", "must be an object"),
            Some(_) => {}
        }
    }
}

fn empty_send(kind: OutboundType) -> SendRequest {
    SendRequest {
        kind,
        text: None,
        template: None,
        image: None,
        video: None,
        audio: None,
        document: None,
        sticker: None,
        interactive: None,
        location: None,
        contacts: None,
        reply_to: None,
    }
}

/// The idempotency key and the hash of this request (its route and body).
fn idempotency(
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
) -> ApiResult<Option<(String, String)>> {
    Ok(outbound::idempotency_key(headers)?.map(|key| {
        let mut h = Sha256::new();
        h.update(b"whatsapp-api:");
        h.update(route.as_bytes());
        h.update(b"\n");
        h.update(body);
        (key, hex::encode(h.finalize()))
    }))
}

fn sent_out(m: MessageOut, phone_number_id: &str, to: &str) -> SentOut {
    SentOut {
        id: m.id,
        wamid: m.wamid,
        status: m.status,
        conversation_id: m.conversation_id,
        phone_number_id: phone_number_id.to_string(),
        to: to.to_string(),
        kind: m.kind,
    }
}

fn unknown_number() -> ApiError {
    ApiError::invalid_field(
        "phone_number_id",
        "no connected number of this organization has this phone number id",
    )
}

/// Queues `req` (already validated) to `to` on `phone_number_id`: the shared flow of every send.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    state: &AppState,
    auth: &Auth,
    org_id: Uuid,
    idem: Option<(String, String)>,
    phone_number_id: &str,
    to: &str,
    mut req: SendRequest,
    language_from_template: bool,
) -> ApiResult<(StatusCode, Json<SentOut>)> {
    if let Some((key, hash)) = &idem {
        if let Some(existing) = outbound::replay(state, org_id, key, hash).await? {
            let to = wa_id(to).unwrap_or_else(|| to.to_string());
            return Ok((
                StatusCode::ACCEPTED,
                Json(sent_out(existing, phone_number_id.trim(), &to)),
            ));
        }
    }
    let mut v = Violations::body();
    req.validate(&mut v);
    v.into_result()?;
    let wa_id = wa_id(to).expect("validated");
    let mut conn = state.db.acquire().await?;
    let account_id =
        shared_outbound::account_by_phone_number_id(&mut conn, org_id, phone_number_id.trim())
            .await?
            .ok_or_else(unknown_number)?;
    if language_from_template {
        let t = req.template.as_mut().expect("template");
        let lang: Option<String> = sqlx::query_scalar(
            "SELECT language FROM message_templates WHERE account_id = $1 AND name = $2
              ORDER BY status = 'APPROVED' DESC, updated_at DESC LIMIT 1",
        )
        .bind(account_id)
        .bind(&t.name)
        .fetch_optional(&mut *conn)
        .await?;
        let lang = lang.ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                &["body", "language"],
                "Field required: this number has no template of that name to take the language from",
                "missing",
            )])
        })?;
        t.language = json!(lang);
    }
    let is_template = req.kind == OutboundType::Template;
    let target = if is_template {
        shared_outbound::open_target(&mut conn, org_id, account_id, &wa_id).await?
    } else {
        shared_outbound::existing_target(&mut conn, org_id, account_id, &wa_id)
            .await?
            .ok_or_else(window_closed)?
    };
    drop(conn);
    ensure_sendable(&target)?;
    if !is_template && !target.window_open() {
        return Err(window_closed());
    }
    let object = type_object(&req);
    let content = outbound::content_of(&req, &object);
    let template_name = req.template.as_ref().map(|t| t.name.clone());
    let message = queue(
        state,
        shared_outbound::NewOutbound {
            org_id,
            target,
            kind: req.kind.as_str(),
            content,
            object,
            reply_to_wamid: None,
            template_name,
            sent_by: user_id(auth),
            idempotency: idem,
            upload: None,
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(sent_out(message, phone_number_id.trim(), &wa_id)),
    ))
}

/// Send a text message (needs the 24-hour window).
#[utoipa::path(post, path = "/whatsapp/messages", tag = "whatsapp-api", request_body = TextRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: a repeated request returns the first result")),
    responses((status = 202, body = SentOut), (status = 403), (status = 409), (status = 422)))]
async fn send_text(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SentOut>)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let idem = idempotency(&headers, "text", &body)?;
    let crate::extract::ValidJson(r) = parse_valid::<TextRequest>(&headers, &body)?;
    let mut req = empty_send(OutboundType::Text);
    req.text = Some(TextField::Full {
        body: r.text.clone().unwrap_or_default(),
        preview_url: r.preview_url,
    });
    deliver(
        &state,
        &auth,
        org_id,
        idem,
        r.phone_number_id.as_deref().unwrap_or_default(),
        r.to.as_deref().unwrap_or_default(),
        req,
        false,
    )
    .await
}

/// Send an approved template message (the only kind allowed outside the 24-hour window).
#[utoipa::path(post, path = "/whatsapp/messages/template", tag = "whatsapp-api", request_body = TemplateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: a repeated request returns the first result")),
    responses((status = 202, body = SentOut), (status = 403), (status = 409), (status = 422)))]
async fn send_template(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SentOut>)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let idem = idempotency(&headers, "template", &body)?;
    let crate::extract::ValidJson(r) = parse_valid::<TemplateRequest>(&headers, &body)?;
    let mut req = empty_send(OutboundType::Template);
    req.template = Some(TemplateField {
        name: r.template.clone().unwrap_or_default(),
        language: json!(r.language.clone().unwrap_or_else(|| "en".into())),
        components: r.cloud_components(),
    });
    deliver(
        &state,
        &auth,
        org_id,
        idem,
        r.phone_number_id.as_deref().unwrap_or_default(),
        r.to.as_deref().unwrap_or_default(),
        req,
        r.language.is_none(),
    )
    .await
}

/// Send an image, document, audio or video (`media_id` from `POST /whatsapp/media`, or a link).
#[utoipa::path(post, path = "/whatsapp/messages/media", tag = "whatsapp-api", request_body = MediaRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: a repeated request returns the first result")),
    responses((status = 202, body = SentOut), (status = 403), (status = 409), (status = 422)))]
async fn send_media(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SentOut>)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let idem = idempotency(&headers, "media", &body)?;
    let crate::extract::ValidJson(r) = parse_valid::<MediaRequest>(&headers, &body)?;
    let kind = r.kind().expect("validated");
    let (id, link) = r.source();
    let media = MediaField {
        id,
        link,
        caption: r.caption.clone(),
        filename: r.filename.clone(),
    };
    let mut req = empty_send(kind);
    match kind {
        OutboundType::Image => req.image = Some(media),
        OutboundType::Video => req.video = Some(media),
        OutboundType::Audio => req.audio = Some(media),
        _ => req.document = Some(media),
    }
    deliver(
        &state,
        &auth,
        org_id,
        idem,
        r.phone_number_id.as_deref().unwrap_or_default(),
        r.to.as_deref().unwrap_or_default(),
        req,
        false,
    )
    .await
}

/// Send interactive reply buttons or a list (Cloud API `interactive` object).
#[utoipa::path(post, path = "/whatsapp/messages/interactive", tag = "whatsapp-api", request_body = InteractiveRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: a repeated request returns the first result")),
    responses((status = 202, body = SentOut), (status = 403), (status = 409), (status = 422)))]
async fn send_interactive(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SentOut>)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let idem = idempotency(&headers, "interactive", &body)?;
    let crate::extract::ValidJson(r) = parse_valid::<InteractiveRequest>(&headers, &body)?;
    let mut req = empty_send(OutboundType::Interactive);
    req.interactive = r.interactive.clone();
    deliver(
        &state,
        &auth,
        org_id,
        idem,
        r.phone_number_id.as_deref().unwrap_or_default(),
        r.to.as_deref().unwrap_or_default(),
        req,
        false,
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadOut {
    pub success: bool,
    pub id: Uuid,
    pub wamid: Option<String>,
    pub conversation_id: Uuid,
}

/// Mark an inbound message (platform id or wamid) as read: the conversation's unread count
/// goes to zero and Meta gets the read receipt (the customer sees blue ticks).
#[utoipa::path(post, path = "/whatsapp/messages/{message_id}/read", tag = "whatsapp-api",
    params(("message_id" = String, Path, description = "The platform's message id or the wamid")),
    responses((status = 200, body = ReadOut), (status = 403), (status = 404), (status = 422)))]
async fn mark_read(
    State(state): State<AppState>,
    auth: Auth,
    Path(message_id): Path<String>,
) -> ApiResult<Json<ReadOut>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let by_id = Uuid::parse_str(&message_id).ok();
    let row: Option<(Uuid, Option<Uuid>, String, Option<String>)> = sqlx::query_as(
        "SELECT id, conversation_id, direction, wamid FROM messages
          WHERE org_id = $1 AND (id = $2 OR ($2 IS NULL AND wamid = $3))
          LIMIT 1",
    )
    .bind(org_id)
    .bind(by_id)
    .bind(&message_id)
    .fetch_optional(&state.db)
    .await?;
    let (id, conversation_id, direction, wamid) =
        row.ok_or_else(|| ApiError::not_found("Message"))?;
    if direction != "INBOUND" {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["path", "message_id"],
            "only inbound messages can be marked as read",
            "value_error",
        )]));
    }
    // Inbound messages always have their conversation.
    let conversation_id = conversation_id.ok_or_else(|| ApiError::not_found("Message"))?;
    let mut tx = state.db.begin().await?;
    if !inbox::mark_read(&mut tx, org_id, conversation_id).await? {
        return Err(ApiError::not_found("Message"));
    }
    tx.commit().await?;
    Ok(Json(ReadOut {
        success: true,
        id,
        wamid,
        conversation_id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaOut {
    /// Meta's media id, for `POST /whatsapp/messages/media`.
    pub media_id: String,
    pub mime_type: String,
    pub size: u64,
    pub filename: String,
    /// The number the media was uploaded for.
    pub phone_number_id: String,
}

/// The Cloud API type a file is sent as, by its MIME type.
fn kind_of(mime: &str) -> OutboundType {
    if mime == "image/webp" {
        OutboundType::Sticker
    } else if mime.starts_with("image/") {
        OutboundType::Image
    } else if mime.starts_with("video/") {
        OutboundType::Video
    } else if mime.starts_with("audio/") {
        OutboundType::Audio
    } else {
        OutboundType::Document
    }
}

/// Upload media to Meta (multipart `file`, at most 100 MB, and Meta's limit for its type;
/// `phone_number_id` when the organization has several numbers). Returns Meta's `media_id`.
#[utoipa::path(post, path = "/whatsapp/media", tag = "whatsapp-api",
    request_body(content_type = "multipart/form-data", description = "file; phone_number_id (needed when the organization has several numbers)"),
    responses((status = 200, body = MediaOut), (status = 403), (status = 409), (status = 413), (status = 422), (status = 503)))]
async fn upload_media(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<Json<MediaOut>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let dir = state.config.blob_dir.join(format!("{org_id}/wa-media"));
    let mut file = None;
    let mut phone_number_id: Option<String> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(upload::multipart_error)?
    {
        match field.name() {
            Some("file") => file = Some(upload::receive(field, "upload", &dir).await?),
            Some("phone_number_id") => {
                let text = field.text().await.map_err(upload::multipart_error)?;
                if text.contains('\0') {
                    return Err(ApiError::invalid_field(
                        "phone_number_id",
                        crate::extract::NUL_MESSAGE,
                    ));
                }
                phone_number_id = Some(text.trim().to_string());
            }
            _ => {}
        }
    }
    let file = file.ok_or_else(upload::file_required)?;
    let mime = file.mime.clone();
    let kind = kind_of(&mime);
    let Some(limit) = media_limit(kind, &mime) else {
        return Err(ApiError::invalid_field(
            "file",
            format!("{mime} cannot be sent on WhatsApp"),
        ));
    };
    if file.size == 0 {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    if file.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} files are limited to {limit} bytes",
            kind.as_str()
        )));
    }
    file.check_type("file")?;
    let account_id = match &phone_number_id {
        Some(p) => {
            let mut conn = state.db.acquire().await?;
            shared_outbound::account_by_phone_number_id(&mut conn, org_id, p)
                .await?
                .ok_or_else(unknown_number)?
        }
        None => {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM whatsapp_accounts WHERE org_id = $1 AND status <> 'DISCONNECTED' LIMIT 2",
            )
            .bind(org_id)
            .fetch_all(&state.db)
            .await?;
            match ids.as_slice() {
                [only] => *only,
                [] => {
                    return Err(ApiError::invalid_field(
                        "phone_number_id",
                        "connect a WhatsApp number first",
                    ))
                }
                _ => {
                    return Err(ApiError::Validation(vec![FieldError::new(
                        &["body", "phone_number_id"],
                        "Field required: the organization has several numbers",
                        "missing",
                    )]))
                }
            }
        }
    };
    let account = wharf_shared::accounts::credentials(&state.db, &state.secrets, account_id)
        .await?
        .ok_or_else(unknown_number)?;
    if account.status != "CONNECTED" {
        return Err(ApiError::Conflict(
            "This WhatsApp number needs to be reconnected before it can upload media".into(),
        ));
    }
    let blob = state
        .config
        .blob_dir
        .join(format!("{org_id}/wa-media/{}", Uuid::new_v4().simple()));
    let (filename, size) = (file.filename.clone(), file.size);
    file.keep_as(&blob).await?;
    let bytes = tokio::fs::read(&blob).await;
    let _ = tokio::fs::remove_file(&blob).await;
    let bytes = bytes.map_err(|e| ApiError::Internal(e.into()))?;
    let meta = MetaClient::from_config(&state.config);
    let media_id = meta
        .upload_media(
            account.access_token.expose(),
            &account.phone_number_id,
            bytes,
            &mime,
            &filename,
        )
        .await
        .map_err(|e| ApiError::from_meta(&e, "media upload"))?;
    Ok(Json(MediaOut {
        media_id,
        mime_type: mime,
        size,
        filename,
        phone_number_id: account.phone_number_id,
    }))
}
