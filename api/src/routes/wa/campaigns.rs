//! WhatsApp API: broadcast campaigns (`/api/v1/whatsapp/campaigns*`). Created by template
//! name on one of the organization's numbers (Meta's `phone_number_id`); the audience is JSON
//! `recipients` or a CSV `file` (multipart), read and screened exactly as `/api/v1/campaigns`
//! does (`wharf_shared::campaigns::{audience, create}`).

use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Path, Request, State},
    http::{header, StatusCode},
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    campaigns::{audience, create},
    outbound::account_by_phone_number_id,
};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, parse_json},
    routes::{
        campaigns::{check_audience, create_error, launch_error},
        outbound::user_id,
    },
    state::AppState,
    validate::Violations,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(launch_campaign))
}

/// A campaign in this dialect.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaCampaign {
    pub id: Uuid,
    pub name: String,
    /// DRAFT | SCHEDULED | RUNNING | PAUSED | COMPLETED | CANCELLED
    pub status: String,
    /// Meta's id of the number it sends from.
    pub phone_number_id: String,
    pub template: String,
    pub language: String,
    pub category: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub launched_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Accepted recipients.
    pub recipient_count: i32,
    pub rejected_count: i32,
    /// Not sent yet.
    pub pending: i64,
    /// Accepted by Meta (sent, delivered or read).
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    /// Skipped at dispatch (opted out, blocked).
    pub skipped: i64,
    /// USD, from the rate table at creation.
    pub estimated_cost: f64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl From<create::Summary> for WaCampaign {
    fn from(c: create::Summary) -> Self {
        Self {
            id: c.id,
            name: c.name,
            status: c.status,
            phone_number_id: c.phone_number_id,
            template: c.template_name,
            language: c.template_language,
            category: c.template_category,
            scheduled_at: c.scheduled_at,
            launched_at: c.launched_at,
            completed_at: c.completed_at,
            recipient_count: c.recipient_count,
            rejected_count: c.rejected_count,
            pending: c.pending,
            sent: c.sent,
            delivered: c.delivered,
            read: c.read,
            failed: c.failed,
            skipped: c.skipped,
            estimated_cost: c.estimated_cost,
            currency: c.currency,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaCampaignList {
    pub campaigns: Vec<WaCampaign>,
    pub count: usize,
}

async fn one(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<WaCampaign> {
    create::summaries(&state.db, org_id, Some(id), 1, 0)
        .await?
        .into_iter()
        .next()
        .map(WaCampaign::from)
        .ok_or_else(|| ApiError::not_found("Campaign"))
}

/// The newest campaigns listed at most.
const LIST_LIMIT: i64 = 500;

/// List broadcast campaigns, newest first (at most 500), with their delivery progress.
#[utoipa::path(get, path = "/whatsapp/campaigns", tag = "whatsapp-api",
    responses((status = 200, body = WaCampaignList), (status = 401), (status = 403)))]
async fn list_campaigns(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<WaCampaignList>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let campaigns: Vec<WaCampaign> = create::summaries(&state.db, org_id, None, LIST_LIMIT, 0)
        .await?
        .into_iter()
        .map(WaCampaign::from)
        .collect();
    Ok(Json(WaCampaignList {
        count: campaigns.len(),
        campaigns,
    }))
}

/// `POST /whatsapp/campaigns` as JSON (the multipart variant sends the same fields as form
/// fields and the audience as `file`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WaCampaignCreate {
    pub name: Option<String>,
    /// The template's name.
    #[serde(alias = "template_name")]
    pub template: Option<String>,
    /// Meta's id of one of the organization's numbers (the template must be on its WABA).
    pub phone_number_id: Option<String>,
    /// The template's language; needed only when the name exists in several.
    pub language: Option<String>,
    /// `[{"phone": "+14155550100", "variables"?: {"1": "Ana"} | ["Ana"]}]`
    #[schema(value_type = Vec<Object>)]
    pub recipients: Option<Vec<Value>>,
    /// Launch at this time (SCHEDULED); without it the campaign is a DRAFT until launched.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// For templates with a media header: the link every recipient gets.
    pub header_media_link: Option<String>,
}

struct Input {
    body: WaCampaignCreate,
    rows: Option<Vec<audience::InputRow>>,
}

async fn read_input(state: &AppState, req: Request) -> ApiResult<Input> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::BadRequest(format!("Malformed multipart body: {}", e.body_text()))
        })?;
        let mut body = WaCampaignCreate::default();
        let mut rows = None;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(crate::upload::multipart_error)?
        {
            let fname = field.name().unwrap_or_default().to_string();
            let data = field
                .bytes()
                .await
                .map_err(crate::upload::multipart_error)?;
            if data.contains(&0) {
                return Err(ApiError::invalid_field(&fname, crate::extract::NUL_MESSAGE));
            }
            let text = String::from_utf8_lossy(&data).trim().to_string();
            let opt = || Some(text.clone()).filter(|s| !s.is_empty());
            match fname.as_str() {
                "file" => {
                    rows = Some(
                        audience::csv_rows(&data)
                            .map_err(|m| ApiError::invalid_field("file", m))?,
                    )
                }
                "name" => body.name = opt(),
                "template" | "template_name" => body.template = opt(),
                "phone_number_id" => body.phone_number_id = opt(),
                "language" => body.language = opt(),
                "header_media_link" => body.header_media_link = opt(),
                "scheduled_at" if !text.is_empty() => {
                    body.scheduled_at = Some(
                        DateTime::parse_from_rfc3339(&text)
                            .map_err(|_| {
                                ApiError::invalid_field(
                                    "scheduled_at",
                                    "must be an RFC 3339 date-time",
                                )
                            })?
                            .with_timezone(&Utc),
                    )
                }
                _ => {}
            }
        }
        if rows.is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                &["body", "file"],
                "Field required: a CSV file",
                "missing",
            )]));
        }
        return Ok(Input { body, rows });
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("Request body is too large (50 MB at most)".into())
        } else {
            ApiError::BadRequest("Could not read the request body".into())
        }
    })?;
    let mut body: WaCampaignCreate = parse_json(&bytes)?;
    let rows = body.recipients.take().map(audience::json_rows);
    Ok(Input { body, rows })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaRejected {
    /// JSON: 1-based index in `recipients`; CSV: line number (the header is line 1).
    pub row: i32,
    pub phone: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaCampaignCreated {
    #[serde(flatten)]
    pub campaign: WaCampaign,
    pub accepted: usize,
    pub rejected_total: usize,
    /// Up to 10,000 rejected rows.
    pub rejected: Vec<WaRejected>,
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// Create a template broadcast campaign (DRAFT until launched, or SCHEDULED with
/// `scheduled_at`): by template name on the number `phone_number_id`, to `recipients` (JSON) or
/// a CSV `file` (multipart: a phone column, optional name, one column per variable).
#[utoipa::path(post, path = "/whatsapp/campaigns", tag = "whatsapp-api",
    request_body(content = WaCampaignCreate, description = "JSON, or multipart/form-data with `file` (CSV) and the same fields"),
    responses((status = 201, body = WaCampaignCreated), (status = 403), (status = 413), (status = 422)))]
async fn create_campaign(
    State(state): State<AppState>,
    auth: Auth,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let Input { body, rows } = read_input(&state, req).await?;
    let mut v = Violations::body();
    if blank(&body.name) {
        v.add_kind("name", "Field required", "missing");
    } else {
        v.text("name", body.name.as_deref().unwrap_or_default().trim(), 200);
    }
    if blank(&body.template) {
        v.add_kind("template", "Field required", "missing");
    }
    if blank(&body.phone_number_id) {
        v.add_kind("phone_number_id", "Field required", "missing");
    }
    let rows = check_audience(
        &mut v,
        rows,
        body.header_media_link.as_deref(),
        "header_media_link",
    );
    v.into_result()?;
    let phone_number_id = body.phone_number_id.as_deref().unwrap_or_default().trim();
    let mut conn = state.db.acquire().await?;
    let account_id = account_by_phone_number_id(&mut conn, org_id, phone_number_id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field(
                "phone_number_id",
                "no such phone number in this organization",
            )
        })?;
    let name = body.template.as_deref().unwrap_or_default().trim();
    let language = body
        .language
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let template = create::template_by_name(&state.db, org_id, account_id, name, language)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field(
                "template",
                match language {
                    Some(l) => format!("no template {name} in {l} on this number's WABA"),
                    None => format!("no template {name} on this number's WABA"),
                },
            )
        })?;
    let created = create::create(
        &state.db,
        &template,
        create::NewCampaign {
            org_id,
            name: body.name.unwrap_or_default(),
            account_id: Some(account_id),
            scheduled_at: body.scheduled_at,
            header_media_link: body.header_media_link,
            created_by: user_id(&auth),
            rows,
        },
    )
    .await
    .map_err(|e| create_error(e, "template", "phone_number_id", "header_media_link"))?;
    let rejected_total = created.rejected.len();
    let rejected = created
        .rejected
        .into_iter()
        .take(10_000)
        .map(|r| WaRejected {
            row: r.row,
            phone: r.phone,
            reason: r.reason,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(WaCampaignCreated {
            campaign: one(&state, org_id, created.id).await?,
            accepted: created.accepted,
            rejected_total,
            rejected,
        }),
    ))
}

/// Launch a campaign to its recipients now (DRAFT or SCHEDULED → RUNNING); 409 otherwise.
#[utoipa::path(post, path = "/whatsapp/campaigns/{id}/launch", tag = "whatsapp-api",
    params(("id" = String, Path, description = "The platform's campaign id")),
    responses((status = 200, body = WaCampaign), (status = 403), (status = 404), (status = 409)))]
async fn launch_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<WaCampaign>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let id = parse_id(&id, "Campaign")?;
    let mut tx = state.db.begin().await?;
    create::launch(&mut tx, org_id, id)
        .await
        .map_err(launch_error)?;
    tx.commit().await?;
    Ok(Json(one(&state, org_id, id).await?))
}
