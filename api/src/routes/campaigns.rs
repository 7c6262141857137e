//! Campaigns (ARCHITECTURE.md, "Campaigns"): a template broadcast to a frozen audience.
//!
//! - `POST /campaigns` takes JSON (`{"name","templateId","accountId"?,"scheduledAt"?,
//!   "headerMediaLink"?,"recipients":[{"phone", "name"?, "variables"?, ...variables}]}`) or a
//!   CSV upload (`multipart/form-data`: `file` + the same fields). Phones are normalised to
//!   E.164 digits and deduplicated; invalid rows are reported per row (`rejected`, with the JSON
//!   index or the CSV line), never a failed request; the audience is inserted with one UNNEST
//!   statement.
//! - Pricing: `GET /campaigns/pricing`, `POST /campaigns/estimate` (rate table in
//!   `wharf_shared::campaigns::pricing`).
//! - Control: launch (now, or at `scheduledAt` by the scheduler), pause, resume, cancel,
//!   retry-failed, bulk (delete/pause/cancel).
//! - Progress: detail with paginated recipients, stats, streamed CSV export, live SSE events,
//!   global stats, Meta's real costs (pricing_analytics).
//!
//! A recipient's state after dispatch is its message's (joined by primary key), see
//! `migrations/0007_campaigns.sql`.

use std::{
    collections::{BTreeMap, HashSet},
    convert::Infallible,
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Multipart, Path, Request, State},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    campaigns::{
        self, audience, control,
        create::{self, CampaignTemplate},
        meta_costs, pricing,
    },
    meta::MetaClient,
};

use super::{
    admin_orgs::{Selection, SelectionMode},
    failed_messages::{requeue, Requeue},
    Data, PageParams, Pagination, MAX_PAGE_SIZE,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, parse_json, ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

/// Recipients per campaign.
pub const MAX_RECIPIENTS: usize = 1_000_000;
/// Rejected rows listed in a response (all are counted).
const MAX_REJECTED_LISTED: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(global_stats))
        .routes(routes!(get_pricing))
        .routes(routes!(estimate))
        .routes(routes!(meta_costs))
        .routes(routes!(bulk))
        .routes(routes!(get_campaign))
        .routes(routes!(campaign_stats))
        .routes(routes!(export))
        .routes(routes!(events))
        .routes(routes!(meta_cost))
        .routes(routes!(launch))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(retry_failed))
}

// ---- shapes ------------------------------------------------------------------------------

/// Recipient counts by state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Counts {
    pub total: i64,
    /// Not dispatched yet.
    pub pending: i64,
    /// Message created, not accepted by Meta yet.
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
}

const COUNTS_SQL: &str = "SELECT count(*) AS total,
        count(*) FILTER (WHERE r.status = 'pending') AS pending,
        count(*) FILTER (WHERE r.status = 'sending' AND m.status = 'queued') AS sending,
        count(*) FILTER (WHERE r.status = 'sending' AND m.status = 'sent') AS sent,
        count(*) FILTER (WHERE r.status = 'sending' AND m.status = 'delivered') AS delivered,
        count(*) FILTER (WHERE r.status = 'sending' AND m.status = 'read') AS read,
        count(*) FILTER (WHERE r.status = 'sending' AND m.status = 'failed') AS failed,
        count(*) FILTER (WHERE r.status = 'skipped') AS skipped
   FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE r.campaign_id = $1";

async fn counts(db: &PgPool, campaign_id: Uuid) -> Result<Counts, sqlx::Error> {
    sqlx::query_as(COUNTS_SQL)
        .bind(campaign_id)
        .fetch_one(db)
        .await
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct CampaignOut {
    pub id: Uuid,
    pub name: String,
    /// DRAFT | SCHEDULED | RUNNING | PAUSED | COMPLETED | CANCELLED
    pub status: String,
    pub paused_reason: Option<String>,
    pub account_id: Uuid,
    pub template_id: Option<Uuid>,
    pub template_name: String,
    pub template_language: String,
    pub template_category: String,
    pub header_media_link: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub launched_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub recipient_count: i32,
    pub rejected_count: i32,
    /// USD, from the rate table at creation.
    pub estimated_cost: f64,
    pub currency: String,
    pub rate_table_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub counts: Counts,
}

const CAMPAIGN_COLS: &str = "c.id, c.name, c.status, c.paused_reason, c.account_id, c.template_id, c.template_name,
    c.template_language, c.template_category, c.header_media_link, c.scheduled_at, c.launched_at, c.paused_at,
    c.completed_at, c.cancelled_at, c.created_by, c.recipient_count, c.rejected_count, c.estimated_cost, c.currency,
    c.rate_table_version, c.created_at, c.updated_at";

pub(crate) async fn fetch_campaign(db: &PgPool, org_id: Uuid, id: Uuid) -> ApiResult<CampaignOut> {
    let mut c: CampaignOut = sqlx::query_as(&format!(
        "SELECT {CAMPAIGN_COLS} FROM campaigns c WHERE c.id = $1 AND c.org_id = $2 AND c.deleted_at IS NULL"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("Campaign"))?;
    c.counts = counts(db, id).await?;
    Ok(c)
}

fn campaign_id(raw: &str) -> ApiResult<Uuid> {
    parse_id(raw, "Campaign")
}

fn user_id(auth: &Auth) -> Option<Uuid> {
    match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    }
}

// ---- list --------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub page: Option<i64>,
    pub limit: Option<i64>,
    /// DRAFT | SCHEDULED | RUNNING | PAUSED | COMPLETED | CANCELLED
    pub status: Option<String>,
    /// Matches the campaign's or the template's name.
    pub search: Option<String>,
}

pub(crate) const STATUSES: [&str; 6] = [
    "DRAFT",
    "SCHEDULED",
    "RUNNING",
    "PAUSED",
    "COMPLETED",
    "CANCELLED",
];

impl Validate for ListQuery {
    fn validate(&self, v: &mut Violations) {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
        .check(v);
        v.one_of("status", self.status.as_deref(), &STATUSES);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub data: Vec<CampaignOut>,
    pub pagination: Pagination,
}

fn pagination(p: &PageParams, total: i64) -> Pagination {
    let limit = p.limit();
    Pagination {
        page: p.page(),
        limit,
        total,
        total_pages: (total + limit - 1) / limit,
    }
}

/// List campaigns with their recipient counts.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", params(ListQuery),
    responses((status = 200, body = CampaignPage), (status = 422)))]
async fn list_campaigns(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> ApiResult<Json<CampaignPage>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Json(list(&state.db, org_id, &q).await?))
}

/// A page of the organization's campaigns, newest first, with their recipient counts (the
/// API's list and the console's).
pub(crate) async fn list(db: &PgPool, org_id: Uuid, q: &ListQuery) -> ApiResult<CampaignPage> {
    let paging = PageParams {
        page: q.page,
        limit: q.limit,
    };
    let search = q
        .search
        .as_deref()
        .map(|s| format!("%{}%", s.trim().replace('%', "\\%").replace('_', "\\_")));
    let filter = "c.org_id = $1 AND c.deleted_at IS NULL AND ($2::text IS NULL OR c.status = $2)
        AND ($3::text IS NULL OR c.name ILIKE $3 OR c.template_name ILIKE $3)";
    let mut rows: Vec<CampaignOut> = sqlx::query_as(&format!(
        "SELECT {CAMPAIGN_COLS} FROM campaigns c WHERE {filter} ORDER BY c.created_at DESC, c.id LIMIT $4 OFFSET $5"
    ))
    .bind(org_id)
    .bind(&q.status)
    .bind(&search)
    .bind(paging.limit())
    .bind(paging.offset())
    .fetch_all(db)
    .await?;
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM campaigns c WHERE {filter}"))
            .bind(org_id)
            .bind(&q.status)
            .bind(&search)
            .fetch_one(db)
            .await?;
    for c in &mut rows {
        c.counts = counts(db, c.id).await?;
    }
    Ok(CampaignPage {
        data: rows,
        pagination: pagination(&paging, total),
    })
}

// ---- create ------------------------------------------------------------------------------

/// The JSON create body (the CSV variant sends the same fields as multipart form fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCampaign {
    pub name: Option<String>,
    pub template_id: Option<String>,
    /// Defaults to the template's account.
    pub account_id: Option<String>,
    /// Launch at this time (status SCHEDULED); without it the campaign is a DRAFT until
    /// `POST /campaigns/{id}/launch`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// For templates with an IMAGE, VIDEO or DOCUMENT header: the media every recipient gets.
    pub header_media_link: Option<String>,
    /// `[{"phone": "+1 415 555 0100", "name"?: "Ana", "variables"?: {...} | [...], "1"?: "..."}]`
    #[schema(value_type = Vec<Object>)]
    pub recipients: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejected {
    /// JSON: 1-based index in `recipients`; CSV: line number (the header is line 1).
    pub row: i32,
    pub phone: String,
    pub reason: String,
}

impl From<audience::Rejected> for Rejected {
    fn from(r: audience::Rejected) -> Self {
        Self {
            row: r.row,
            phone: r.phone,
            reason: r.reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCampaign {
    #[serde(flatten)]
    pub campaign: CampaignOut,
    pub accepted: usize,
    pub rejected_total: usize,
    /// Up to 10,000 rejected rows.
    pub rejected: Vec<Rejected>,
}

/// The fields of a create request once its recipients are read (from JSON or CSV).
struct CreateInput {
    name: Option<String>,
    template_id: Option<String>,
    account_id: Option<String>,
    scheduled_at: Option<DateTime<Utc>>,
    header_media_link: Option<String>,
    rows: Option<Vec<audience::InputRow>>,
}

async fn read_create(state: &AppState, req: Request) -> ApiResult<CreateInput> {
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
        let mut input = CreateInput {
            name: None,
            template_id: None,
            account_id: None,
            scheduled_at: None,
            header_media_link: None,
            rows: None,
        };
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
            let text = || String::from_utf8_lossy(&data).trim().to_string();
            match fname.as_str() {
                "file" => {
                    input.rows = Some(
                        audience::csv_rows(&data)
                            .map_err(|m| ApiError::invalid_field("file", m))?,
                    )
                }
                "name" => input.name = Some(text()),
                "templateId" => input.template_id = Some(text()),
                "accountId" => input.account_id = Some(text()).filter(|s| !s.is_empty()),
                "headerMediaLink" => {
                    input.header_media_link = Some(text()).filter(|s| !s.is_empty())
                }
                "scheduledAt" if !text().is_empty() => {
                    input.scheduled_at = Some(
                        DateTime::parse_from_rfc3339(&text())
                            .map_err(|_| {
                                ApiError::invalid_field(
                                    "scheduledAt",
                                    "must be an RFC 3339 date-time",
                                )
                            })?
                            .with_timezone(&Utc),
                    )
                }
                _ => {}
            }
        }
        if input.rows.is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                &["body", "file"],
                "Field required: a CSV file",
                "missing",
            )]));
        }
        return Ok(input);
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("Request body is too large (50 MB at most)".into())
        } else {
            ApiError::BadRequest("Could not read the request body".into())
        }
    })?;
    let body: CreateCampaign = parse_json(&bytes)?;
    Ok(CreateInput {
        name: body.name,
        template_id: body.template_id,
        account_id: body.account_id,
        scheduled_at: body.scheduled_at,
        header_media_link: body.header_media_link,
        rows: body.recipients.map(audience::json_rows),
    })
}

async fn load_template(
    state: &AppState,
    org_id: Uuid,
    template_id: Option<&str>,
) -> ApiResult<CampaignTemplate> {
    let Some(raw) = template_id.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(ApiError::missing_field("templateId"));
    };
    let not_found =
        || ApiError::invalid_field("templateId", "no such template in this organization");
    let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
    create::template_by_id(&state.db, org_id, id)
        .await?
        .ok_or_else(not_found)
}

/// A campaign creation error with the field named `template_field` / `account_field` /
/// `header_field` in the caller's dialect.
pub(crate) fn create_error(
    e: create::CreateError,
    template_field: &str,
    account_field: &str,
    header_field: &str,
) -> ApiError {
    match e {
        create::CreateError::Invalid { field, msg } => ApiError::invalid_field(
            match field {
                create::Field::Template => template_field,
                create::Field::Account => account_field,
                create::Field::HeaderMediaLink => header_field,
            },
            msg,
        ),
        create::CreateError::Db(e) => e.into(),
        create::CreateError::Jobs(e) => e.into(),
    }
}

/// The audience's size and the header media link, as both dialects check them (`link_field`
/// is the dialect's name of the link). Returns the rows (empty when they were missing).
pub(crate) fn check_audience(
    v: &mut Violations,
    rows: Option<Vec<audience::InputRow>>,
    header_media_link: Option<&str>,
    link_field: &str,
) -> Vec<audience::InputRow> {
    let rows = match rows {
        None => {
            v.add_kind("recipients", "Field required", "missing");
            Vec::new()
        }
        Some(r) if r.is_empty() => {
            v.add("recipients", "at least one recipient is required");
            r
        }
        Some(r) if r.len() > MAX_RECIPIENTS => {
            v.add(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients per campaign"),
            );
            r
        }
        Some(r) => r,
    };
    if let Some(link) = header_media_link {
        if !(link.starts_with("https://") || link.starts_with("http://")) {
            v.add(link_field, "must be an http(s) URL");
        }
    }
    rows
}

/// Create a campaign (JSON recipients or a CSV upload); its audience is frozen here.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns",
    request_body(content = CreateCampaign, description = "JSON, or multipart/form-data with `file` (CSV with a phone column, optional name column, one column per template variable) and the same fields"),
    responses((status = 201, body = Data<CreatedCampaign>), (status = 403), (status = 413), (status = 422)))]
async fn create_campaign(
    State(state): State<AppState>,
    auth: Auth,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let started = std::time::Instant::now();
    let input = read_create(&state, req).await?;
    let mut v = Violations::body();
    match input.name.as_deref().map(str::trim) {
        None | Some("") => v.add_kind("name", "Field required", "missing"),
        Some(n) => v.text("name", n, 200),
    }
    let rows = check_audience(
        &mut v,
        input.rows,
        input.header_media_link.as_deref(),
        "headerMediaLink",
    );
    v.into_result()?;
    let template = load_template(&state, org_id, input.template_id.as_deref()).await?;
    let account_id = match input.account_id.as_deref() {
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::invalid_field("accountId", "no such WhatsApp account"))?,
        ),
        None => None,
    };
    let created = create::create(
        &state.db,
        &template,
        create::NewCampaign {
            org_id,
            name: input.name.unwrap_or_default(),
            account_id,
            scheduled_at: input.scheduled_at,
            header_media_link: input.header_media_link,
            created_by: user_id(&auth),
            rows,
        },
    )
    .await
    .map_err(|e| create_error(e, "templateId", "accountId", "headerMediaLink"))?;
    let (id, n, rejected) = (created.id, created.accepted, created.rejected);
    tracing::info!(campaign_id = %id, accepted = n, rejected = rejected.len(), elapsed_ms = started.elapsed().as_millis() as u64, "campaign created");
    let campaign = fetch_campaign(&state.db, org_id, id).await?;
    let rejected_total = rejected.len();
    let mut rejected: Vec<Rejected> = rejected.into_iter().map(Rejected::from).collect();
    rejected.truncate(MAX_REJECTED_LISTED);
    Ok((
        StatusCode::CREATED,
        Data::new(CreatedCampaign {
            campaign,
            accepted: n,
            rejected_total,
            rejected,
        }),
    ))
}

// ---- pricing -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingOut {
    pub version: &'static str,
    pub currency: &'static str,
    /// Per-message pricing (Meta, since 2025-07-01): charged when a template is delivered.
    pub pricing_model: &'static str,
    pub notes: Vec<&'static str>,
    #[schema(value_type = Vec<Object>)]
    pub rates: Vec<pricing::Rate>,
    #[serde(rename = "default")]
    #[schema(value_type = Object)]
    pub default_rate: pricing::Rate,
}

/// Current WhatsApp per-message rates by country and template category (USD).
#[utoipa::path(get, path = "/campaigns/pricing", tag = "campaigns", responses((status = 200, body = Data<PricingOut>)))]
async fn get_pricing(auth: Auth) -> ApiResult<Json<Data<PricingOut>>> {
    auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(PricingOut {
        version: pricing::RATE_TABLE_VERSION,
        currency: pricing::CURRENCY,
        pricing_model: "PMP",
        notes: vec![
            "Charged per delivered template message, by template category and the recipient's country calling code.",
            "Utility templates delivered inside an open 24-hour customer service window are free.",
            "Service (non-template) messages are free. Volume tiers are not applied: these are list prices.",
        ],
        rates: pricing::RATES.to_vec(),
        default_rate: pricing::DEFAULT_RATE,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateRequest {
    pub template_id: String,
    /// `[{"phone": "..."}]` as in create (variables are not needed to price).
    #[schema(value_type = Vec<Object>)]
    pub recipients: Vec<Value>,
}

impl Validate for EstimateRequest {
    fn validate(&self, v: &mut Violations) {
        if self.recipients.is_empty() {
            v.add("recipients", "at least one recipient is required");
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            v.add("recipients", format!("at most {MAX_RECIPIENTS} recipients"));
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountryCost {
    pub country: String,
    pub calling_code: String,
    pub recipients: i64,
    /// In an open service window (utility: free).
    pub free: i64,
    pub unit_price: f64,
    pub cost: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateOut {
    pub template_name: String,
    pub template_category: String,
    pub recipients: usize,
    pub rejected_total: usize,
    pub rejected: Vec<Rejected>,
    pub by_country: Vec<CountryCost>,
    pub total_cost: f64,
    pub currency: &'static str,
    pub rate_table_version: &'static str,
}

/// Price a campaign before sending: by template category and recipient country.
#[utoipa::path(post, path = "/campaigns/estimate", tag = "campaigns", request_body = EstimateRequest,
    responses((status = 200, body = Data<EstimateOut>), (status = 422)))]
async fn estimate(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<EstimateRequest>,
) -> ApiResult<Json<Data<EstimateOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let template = load_template(&state, org_id, Some(&body.template_id)).await?;
    let (accepted, rejected) = audience::screen(audience::json_rows(body.recipients), None);
    let mut rejected: Vec<Rejected> = rejected.into_iter().map(Rejected::from).collect();
    let phones: Vec<String> = accepted.iter().map(|a| a.phone.clone()).collect();
    let free = if template.category == "UTILITY" {
        create::open_windows(&state.db, org_id, template.account_id, &phones).await?
    } else {
        HashSet::new()
    };
    let mut by: BTreeMap<&'static str, CountryCost> = BTreeMap::new();
    let mut total = 0.0;
    for p in &phones {
        let m = pricing::market(p);
        let is_free = free.contains(p);
        let price = pricing::unit_price(&template.category, p, is_free);
        let e = by.entry(m.country).or_insert_with(|| CountryCost {
            country: m.country.into(),
            calling_code: m.calling_code.into(),
            recipients: 0,
            free: 0,
            unit_price: pricing::unit_price(&template.category, p, false),
            cost: 0.0,
        });
        e.recipients += 1;
        e.free += i64::from(is_free);
        e.cost += price;
        total += price;
    }
    let rejected_total = rejected.len();
    rejected.truncate(MAX_REJECTED_LISTED);
    let mut by_country: Vec<CountryCost> = by.into_values().collect();
    by_country.sort_by_key(|c| std::cmp::Reverse(c.recipients));
    Ok(Data::new(EstimateOut {
        template_name: template.name,
        template_category: template.category,
        recipients: phones.len(),
        rejected_total,
        rejected,
        by_country,
        total_cost: (total * 10_000.0).round() / 10_000.0,
        currency: pricing::CURRENCY,
        rate_table_version: pricing::RATE_TABLE_VERSION,
    }))
}

// ---- detail ------------------------------------------------------------------------------

/// A recipient's effective state: the dispatcher's for pending/skipped rows, the message's after.
const RECIPIENT_STATUS: &str =
    "CASE WHEN r.status = 'pending' THEN 'PENDING' WHEN r.status = 'skipped' THEN 'SKIPPED'
     WHEN m.status = 'queued' THEN 'SENDING' ELSE upper(m.status) END";
/// Answered after the send. An inbound message's `created_at` is Meta's timestamp, in whole
/// seconds, so a reply in the same second as the send is told by when we received it (as the
/// funnel in `campaigns::analytics` does).
const REPLIED: &str = "(m.sent_at IS NOT NULL AND EXISTS (SELECT 1 FROM messages i WHERE i.conversation_id = m.conversation_id
     AND i.direction = 'INBOUND' AND greatest(i.created_at, i.received_at) > m.sent_at))";
const RECIPIENT_STATUSES: [&str; 9] = [
    "all",
    "PENDING",
    "SENDING",
    "SENT",
    "DELIVERED",
    "READ",
    "FAILED",
    "SKIPPED",
    "REPLIED",
];

fn status_condition(status: Option<&str>) -> Option<String> {
    match status {
        None | Some("all") => None,
        Some("REPLIED") => Some(REPLIED.to_string()),
        Some(s) => Some(format!("({RECIPIENT_STATUS}) = '{s}'")),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    pub page: Option<i64>,
    /// Default 25, at most 100.
    pub limit: Option<i64>,
    /// all | PENDING | SENDING | SENT | DELIVERED | READ | FAILED | SKIPPED | REPLIED
    pub status: Option<String>,
}

impl Validate for DetailQuery {
    fn validate(&self, v: &mut Violations) {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
        .check(v);
        v.one_of("status", self.status.as_deref(), &RECIPIENT_STATUSES);
    }
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RecipientOut {
    pub id: i64,
    pub row_number: i32,
    pub phone: String,
    pub name: Option<String>,
    pub variables: Value,
    pub country: Option<String>,
    /// PENDING | SENDING | SENT | DELIVERED | READ | FAILED | SKIPPED
    pub status: String,
    pub skip_reason: Option<String>,
    pub message_id: Option<Uuid>,
    pub wamid: Option<String>,
    pub error_code: Option<i32>,
    pub error_title: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub replied: bool,
}

fn recipient_select() -> String {
    format!(
        "SELECT r.id, r.row_number, r.phone, r.name, r.variables, r.country, {RECIPIENT_STATUS} AS status, r.skip_reason,
                r.message_id, m.wamid, m.error_code, m.error->>'title' AS error_title, m.sent_at, m.delivered_at,
                m.read_at, m.failed_at, {REPLIED} AS replied
           FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id"
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: CampaignOut,
    pub recipients: Vec<RecipientOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignDetailPage {
    pub data: CampaignDetail,
    /// Of `data.recipients`.
    pub pagination: Pagination,
}

/// Campaign detail with its recipients, paginated and filtered by state.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns", params(("id" = String, Path), DetailQuery),
    responses((status = 200, body = CampaignDetailPage), (status = 404), (status = 422)))]
async fn get_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<DetailQuery>,
) -> ApiResult<Json<CampaignDetailPage>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = campaign_id(&id)?;
    let campaign = fetch_campaign(&state.db, org_id, id).await?;
    let paging = PageParams {
        page: q.page,
        limit: Some(q.limit.unwrap_or(25).clamp(1, MAX_PAGE_SIZE)),
    };
    let cond = status_condition(q.status.as_deref())
        .map(|c| format!(" AND {c}"))
        .unwrap_or_default();
    let recipients: Vec<RecipientOut> = sqlx::query_as(&format!(
        "{} WHERE r.campaign_id = $1{cond} ORDER BY r.id LIMIT $2 OFFSET $3",
        recipient_select()
    ))
    .bind(id)
    .bind(paging.limit())
    .bind(paging.offset())
    .fetch_all(&state.db)
    .await?;
    let total: i64 = if cond.is_empty() {
        campaign.counts.total
    } else {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE r.campaign_id = $1{cond}"
        ))
        .bind(id)
        .fetch_one(&state.db)
        .await?
    };
    Ok(Json(CampaignDetailPage {
        data: CampaignDetail {
            campaign,
            recipients,
        },
        pagination: pagination(&paging, total),
    }))
}

// ---- stats -------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Funnel {
    /// Accepted by Meta (sent, delivered or read).
    pub sent: i64,
    /// Delivered or read.
    pub delivered: i64,
    pub read: i64,
    /// The customer wrote back after the send.
    pub replied: i64,
    pub delivery_rate: f64,
    pub read_rate: f64,
    pub reply_rate: f64,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct FailureCount {
    pub code: Option<i32>,
    pub title: Option<String>,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// At creation, for every accepted recipient.
    pub estimated: f64,
    /// Delivered messages at their rate-table price (Meta charges on delivery).
    pub delivered: f64,
    pub currency: String,
    pub rate_table_version: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStats {
    pub status: String,
    pub counts: Counts,
    pub funnel: Funnel,
    pub failures_by_code: Vec<FailureCount>,
    pub cost: Cost,
}

fn rate(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0
    }
}

/// The funnel of a campaign whose recipients are `k`, `replied` of whom wrote back (the stats
/// route's arithmetic, also the console's live funnel).
pub(crate) fn funnel(k: &Counts, replied: i64) -> Funnel {
    let sent = k.sent + k.delivered + k.read;
    let delivered = k.delivered + k.read;
    Funnel {
        sent,
        delivered,
        read: k.read,
        replied,
        delivery_rate: rate(delivered, sent),
        read_rate: rate(k.read, delivered),
        reply_rate: rate(replied, delivered),
    }
}

pub(crate) async fn stats_of(db: &PgPool, c: CampaignOut) -> ApiResult<CampaignStats> {
    let (replied, delivered_cost): (i64, f64) = sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE {REPLIED}),
                coalesce(sum(r.unit_cost) FILTER (WHERE m.status IN ('delivered', 'read')), 0)::float8
           FROM campaign_recipients r JOIN messages m ON m.id = r.message_id
          WHERE r.campaign_id = $1 AND r.status = 'sending'"
    ))
    .bind(c.id)
    .fetch_one(db)
    .await?;
    let failures_by_code: Vec<FailureCount> = sqlx::query_as(
        "SELECT m.error_code AS code, max(m.error->>'title') AS title, count(*) AS count
           FROM campaign_recipients r JOIN messages m ON m.id = r.message_id
          WHERE r.campaign_id = $1 AND r.status = 'sending' AND m.status = 'failed'
          GROUP BY m.error_code ORDER BY count(*) DESC",
    )
    .bind(c.id)
    .fetch_all(db)
    .await?;
    Ok(CampaignStats {
        status: c.status.clone(),
        funnel: funnel(&c.counts, replied),
        counts: c.counts.clone(),
        failures_by_code,
        cost: Cost {
            estimated: c.estimated_cost,
            delivered: (delivered_cost * 10_000.0).round() / 10_000.0,
            currency: c.currency,
            rate_table_version: c.rate_table_version,
        },
    })
}

/// Funnel (sent → delivered → read → replied), failures by code and cost of a campaign.
#[utoipa::path(get, path = "/campaigns/{id}/stats", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignStats>), (status = 404)))]
async fn campaign_stats(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignStats>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let c = fetch_campaign(&state.db, org_id, campaign_id(&id)?).await?;
    Ok(Data::new(stats_of(&state.db, c).await?))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct GlobalStats {
    pub campaigns: i64,
    pub running: i64,
    pub scheduled: i64,
    pub paused: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub estimated_cost: f64,
}

/// Aggregated stats across all campaigns of the organization.
#[utoipa::path(get, path = "/campaigns/stats/global", tag = "campaigns", responses((status = 200, body = Data<GlobalStats>)))]
async fn global_stats(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<GlobalStats>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let s: GlobalStats = sqlx::query_as(
        "WITH c AS (SELECT * FROM campaigns WHERE org_id = $1 AND deleted_at IS NULL),
              m AS (SELECT m.status FROM messages m JOIN c ON c.id = m.campaign_id WHERE m.org_id = $1)
         SELECT (SELECT count(*) FROM c) AS campaigns,
                (SELECT count(*) FROM c WHERE status = 'RUNNING') AS running,
                (SELECT count(*) FROM c WHERE status = 'SCHEDULED') AS scheduled,
                (SELECT count(*) FROM c WHERE status = 'PAUSED') AS paused,
                (SELECT count(*) FROM c WHERE status = 'COMPLETED') AS completed,
                (SELECT count(*) FROM c WHERE status = 'CANCELLED') AS cancelled,
                (SELECT coalesce(sum(recipient_count), 0)::int8 FROM c) AS recipients,
                (SELECT count(*) FROM m WHERE status IN ('sent', 'delivered', 'read')) AS sent,
                (SELECT count(*) FROM m WHERE status IN ('delivered', 'read')) AS delivered,
                (SELECT count(*) FROM m WHERE status = 'read') AS read,
                (SELECT count(*) FROM m WHERE status = 'failed') AS failed,
                (SELECT coalesce(sum(estimated_cost), 0)::float8 FROM c) AS estimated_cost",
    )
    .bind(org_id)
    .fetch_one(&state.db)
    .await?;
    Ok(Data::new(s))
}

// ---- export ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// all | PENDING | SENDING | SENT | DELIVERED | READ | FAILED | SKIPPED | REPLIED
    pub status: Option<String>,
}

impl Validate for ExportQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("status", self.status.as_deref(), &RECIPIENT_STATUSES);
    }
}

fn csv_field(s: &str) -> String {
    // Quote when needed; neutralise spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) && !s.chars().skip(1).all(|c| c.is_ascii_digit())
    {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Export the campaign's recipients as CSV, streamed from the database.
#[utoipa::path(get, path = "/campaigns/{id}/export", tag = "campaigns", params(("id" = String, Path), ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404)))]
async fn export(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> ApiResult<Response> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = campaign_id(&id)?;
    export_csv(&state.db, org_id, id, q.status.as_deref()).await
}

/// The campaign's recipients (all, or those in `status`, one of the export's statuses) as a
/// CSV download streamed from the database: the API's export and the console's download.
pub(crate) async fn export_csv(
    db: &PgPool,
    org_id: Uuid,
    id: Uuid,
    status: Option<&str>,
) -> ApiResult<Response> {
    let name: String = sqlx::query_scalar(
        "SELECT name FROM campaigns WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("Campaign"))?;
    let cond = status_condition(status)
        .map(|c| format!(" AND {c}"))
        .unwrap_or_default();
    let sql = format!(
        "{} WHERE r.campaign_id = $1{cond} ORDER BY r.id",
        recipient_select()
    );
    // A producer task streams rows into a small bounded channel: the body is sent as it is
    // read, and never held whole in memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let db = db.clone();
    tokio::spawn(async move {
        let header = "row,phone,name,status,skip_reason,wamid,error_code,error_title,sent_at,delivered_at,read_at,failed_at,replied,variables\n";
        if tx.send(Ok(Bytes::from(header))).await.is_err() {
            return;
        }
        let mut rows = sqlx::query_as::<_, RecipientOut>(&sql).bind(id).fetch(&db);
        let mut buf = String::with_capacity(64 * 1024);
        while let Some(row) = rows.next().await {
            match row {
                Ok(r) => {
                    let line = [
                        r.row_number.to_string(),
                        r.phone,
                        csv_field(r.name.as_deref().unwrap_or_default()),
                        r.status,
                        csv_field(r.skip_reason.as_deref().unwrap_or_default()),
                        r.wamid.unwrap_or_default(),
                        r.error_code.map(|c| c.to_string()).unwrap_or_default(),
                        csv_field(r.error_title.as_deref().unwrap_or_default()),
                        ts(r.sent_at),
                        ts(r.delivered_at),
                        ts(r.read_at),
                        ts(r.failed_at),
                        r.replied.to_string(),
                        csv_field(&r.variables.to_string()),
                    ]
                    .join(",");
                    buf.push_str(&line);
                    buf.push('\n');
                    if buf.len() >= 60 * 1024
                        && tx
                            .send(Ok(Bytes::from(std::mem::take(&mut buf))))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "campaign export failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Ok(Bytes::from(buf))).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let filename: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{filename}.csv\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

// ---- live progress -----------------------------------------------------------------------

/// One look at a campaign's progress.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress {
    pub status: String,
    pub paused_reason: Option<String>,
    pub counts: Counts,
}

/// What [`progress_stream`] yields.
#[derive(Debug, Clone)]
pub(crate) enum ProgressTick {
    /// The campaign is still going (or paused).
    Progress(Progress),
    /// It completed or was cancelled: the last item.
    Done(Progress),
    /// It no longer exists: the last item.
    Deleted,
}

/// A campaign's progress, polled every 500 ms: the first look at once, then a look whenever
/// the status or counts change (or, with `repeat_after`, also when that long has passed
/// unchanged), ending after the campaign completes, is cancelled or disappears (or the
/// database fails). Both the API's SSE route and the console's live page stream this.
pub(crate) fn progress_stream(
    db: PgPool,
    id: Uuid,
    repeat_after: Option<Duration>,
) -> impl Stream<Item = ProgressTick> {
    // (db, last look and when it was sent, finished, first)
    futures::stream::unfold(
        (db, None::<(Progress, tokio::time::Instant)>, false, true),
        move |(db, last, finished, first)| async move {
            if finished {
                return None;
            }
            loop {
                if !first {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let status: Option<(String, Option<String>)> =
                    sqlx::query_as("SELECT status, paused_reason FROM campaigns WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&db)
                        .await
                        .ok()?;
                let Some((status, paused_reason)) = status else {
                    return Some((ProgressTick::Deleted, (db, last, true, false)));
                };
                let counts = counts(&db, id).await.ok()?;
                let now = tokio::time::Instant::now();
                let look = Progress {
                    status,
                    paused_reason,
                    counts,
                };
                if look.status == "COMPLETED" || look.status == "CANCELLED" {
                    return Some((
                        ProgressTick::Done(look.clone()),
                        (db, Some((look, now)), true, false),
                    ));
                }
                let due = match &last {
                    None => true,
                    Some((prev, at)) => {
                        *prev != look || repeat_after.is_some_and(|d| now - *at >= d)
                    }
                };
                if due || first {
                    return Some((
                        ProgressTick::Progress(look.clone()),
                        (db, Some((look, now)), false, false),
                    ));
                }
            }
        },
    )
}

/// Live progress as server-sent events: a `progress` event with the status and counts every
/// 500 ms while they change (and a keep-alive otherwise); a final `done` event when the
/// campaign completes or is cancelled, then the stream ends.
#[utoipa::path(get, path = "/campaigns/{id}/events", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404)))]
async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = campaign_id(&id)?;
    fetch_campaign(&state.db, org_id, id).await?;
    let payload = |p: &Progress| {
        json!({"status": p.status, "pausedReason": p.paused_reason, "counts": p.counts}).to_string()
    };
    let stream = progress_stream(state.db.clone(), id, None).map(move |tick| {
        Ok(match tick {
            ProgressTick::Progress(p) => Event::default().event("progress").data(payload(&p)),
            ProgressTick::Done(p) => Event::default().event("done").data(payload(&p)),
            ProgressTick::Deleted => Event::default()
                .event("done")
                .data("{\"status\":\"DELETED\"}"),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ---- control -----------------------------------------------------------------------------

async fn current_status(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<String> {
    sqlx::query_scalar(
        "SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Campaign"))
}

pub(crate) fn launch_error(e: create::LaunchError) -> ApiError {
    match e {
        create::LaunchError::NotFound => ApiError::not_found("Campaign"),
        e @ create::LaunchError::NotLaunchable(_) => ApiError::Conflict(e.to_string()),
        create::LaunchError::Db(e) => e.into(),
        create::LaunchError::Jobs(e) => e.into(),
    }
}

/// Launch now (DRAFT or SCHEDULED → RUNNING): the dispatcher starts within a moment.
#[utoipa::path(post, path = "/campaigns/{id}/launch", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignOut>), (status = 404), (status = 409)))]
async fn launch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let id = campaign_id(&id)?;
    let mut tx = state.db.begin().await?;
    create::launch(&mut tx, org_id, id)
        .await
        .map_err(launch_error)?;
    tx.commit().await?;
    Ok(Data::new(fetch_campaign(&state.db, org_id, id).await?))
}

/// The API's answer to a control action that did not apply: 404, or 409 with `conflict`'s
/// message for the campaign's status.
fn control_error(outcome: control::Outcome, conflict: impl Fn(&str) -> String) -> ApiResult<()> {
    match outcome {
        control::Outcome::Done => Ok(()),
        control::Outcome::NotFound => Err(ApiError::not_found("Campaign")),
        control::Outcome::WrongState(status) => Err(ApiError::Conflict(conflict(&status))),
    }
}

/// Why pause did not apply to a campaign in `status` (the API's and the console's words).
pub(crate) fn pause_conflict(status: &str) -> String {
    format!("Only RUNNING campaigns can be paused (this one is {status})")
}

pub(crate) fn resume_conflict(status: &str) -> String {
    format!("Only PAUSED campaigns can be resumed (this one is {status})")
}

pub(crate) fn cancel_conflict(status: &str) -> String {
    format!("This campaign is {status}; it cannot be cancelled")
}

/// Pause a running campaign: no message leaves while paused (effective within a second).
#[utoipa::path(post, path = "/campaigns/{id}/pause", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignOut>), (status = 404), (status = 409)))]
async fn pause(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = campaign_id(&id)?;
    control_error(control::pause(&state.db, org_id, id).await?, pause_conflict)?;
    Ok(Data::new(fetch_campaign(&state.db, org_id, id).await?))
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/campaigns/{id}/resume", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignOut>), (status = 404), (status = 409)))]
async fn resume(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let id = campaign_id(&id)?;
    control_error(
        control::resume(&state.db, org_id, id).await?,
        resume_conflict,
    )?;
    Ok(Data::new(fetch_campaign(&state.db, org_id, id).await?))
}

/// Cancel a campaign: recipients not sent yet are skipped (cancelled); nothing more leaves.
#[utoipa::path(post, path = "/campaigns/{id}/cancel", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignOut>), (status = 404), (status = 409)))]
async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = campaign_id(&id)?;
    control_error(
        control::cancel(&state.db, org_id, id).await?,
        cancel_conflict,
    )?;
    Ok(Data::new(fetch_campaign(&state.db, org_id, id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryOut {
    pub queued: u64,
    pub skipped: u64,
}

/// Retry the campaign's failed messages (as the failed-messages dashboard does).
#[utoipa::path(post, path = "/campaigns/{id}/retry-failed", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<RetryOut>), (status = 404), (status = 409)))]
async fn retry_failed(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<RetryOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let id = campaign_id(&id)?;
    let status = current_status(&state, org_id, id).await?;
    if status == "CANCELLED" || status == "DRAFT" || status == "SCHEDULED" {
        return Err(ApiError::Conflict(format!(
            "This campaign is {status}; only launched campaigns have failures to retry"
        )));
    }
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM campaign_recipients r JOIN messages m ON m.id = r.message_id
          WHERE r.campaign_id = $1 AND r.status = 'sending' AND m.status = 'failed' AND m.discarded_at IS NULL ORDER BY r.id",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    let (mut queued, mut skipped) = (0, 0);
    for mid in ids {
        match requeue(&state, org_id, mid, "campaign_retry").await? {
            Requeue::Queued => queued += 1,
            _ => skipped += 1,
        }
    }
    if queued > 0 && status == "COMPLETED" {
        // Back to RUNNING until the retried messages settle; the dispatcher completes it again.
        let mut tx = state.db.begin().await?;
        sqlx::query("UPDATE campaigns SET status = 'RUNNING', completed_at = NULL WHERE id = $1 AND status = 'COMPLETED'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        campaigns::enqueue_dispatch(&mut tx, org_id, id)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        tx.commit().await?;
    }
    Ok(Data::new(RetryOut { queued, skipped }))
}

// ---- bulk --------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CampaignFilter {
    pub status: Option<String>,
    pub search: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignBulkRequest {
    /// delete | pause | cancel
    pub action: String,
    pub selection: Selection<CampaignFilter>,
}

impl Validate for CampaignBulkRequest {
    fn validate(&self, v: &mut Violations) {
        if !["delete", "pause", "cancel"].contains(&self.action.as_str()) {
            v.add_kind("action", "must be delete, pause or cancel", "enum");
        }
        self.selection.check(v);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOut {
    pub affected: u64,
    /// Selected but not in a state the action applies to.
    pub skipped: u64,
}

/// Bulk actions on campaigns (admin): delete (not while running or paused: cancel first),
/// pause, cancel.
#[utoipa::path(post, path = "/campaigns/bulk", tag = "campaigns", request_body = CampaignBulkRequest,
    responses((status = 200, body = Data<BulkOut>), (status = 403), (status = 422)))]
async fn bulk(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<CampaignBulkRequest>,
) -> ApiResult<Json<Data<BulkOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let ids: Vec<Uuid> = match body.selection.mode {
        SelectionMode::Ids => {
            let ids = body.selection.uuids();
            sqlx::query_scalar("SELECT id FROM campaigns WHERE org_id = $1 AND id = ANY($2) AND deleted_at IS NULL")
                .bind(org_id)
                .bind(&ids)
                .fetch_all(&state.db)
                .await?
        }
        SelectionMode::Filter => {
            let f = body.selection.filter.clone().unwrap_or_default();
            let mut q = QueryBuilder::<Postgres>::new("SELECT id FROM campaigns WHERE org_id = ");
            q.push_bind(org_id).push(" AND deleted_at IS NULL");
            if let Some(s) = f.status {
                q.push(" AND status = ").push_bind(s);
            }
            if let Some(s) = f.search {
                q.push(" AND name ILIKE ")
                    .push_bind(format!("%{}%", s.trim()));
            }
            q.push(" LIMIT 1000");
            q.build_query_scalar().fetch_all(&state.db).await?
        }
    };
    let affected = match body.action.as_str() {
        "delete" => sqlx::query(
            "UPDATE campaigns SET deleted_at = now() WHERE id = ANY($1) AND org_id = $2 AND status NOT IN ('RUNNING', 'PAUSED')",
        )
        .bind(&ids)
        .bind(org_id)
        .execute(&state.db)
        .await?
        .rows_affected(),
        "pause" => control::pause_many(&state.db, org_id, &ids).await?,
        _ => control::cancel_many(&state.db, org_id, &ids).await?,
    };
    Ok(Data::new(BulkOut {
        affected,
        skipped: ids.len() as u64 - affected,
    }))
}

// ---- Meta's real costs -------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaCostLine {
    pub country: Option<String>,
    pub pricing_category: Option<String>,
    pub pricing_type: Option<String>,
    pub volume: i64,
    pub cost: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaCostsOut {
    pub account_id: Uuid,
    pub waba_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub total_cost: f64,
    pub total_volume: i64,
    pub lines: Vec<MetaCostLine>,
}

/// `pricing_analytics` of a WABA between two instants, aggregated by (country, category, type).
async fn pricing_analytics(
    state: &AppState,
    account_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> ApiResult<MetaCostsOut> {
    let meta = MetaClient::from_config(&state.config);
    let c = meta_costs::pricing_analytics(&state.db, &state.secrets, &meta, account_id, start, end)
        .await
        .map_err(meta_costs_error)?;
    Ok(MetaCostsOut {
        account_id: c.account_id,
        waba_id: c.waba_id,
        start: c.start,
        end: c.end,
        total_cost: c.total_cost,
        total_volume: c.total_volume,
        lines: c
            .lines
            .into_iter()
            .map(|l| MetaCostLine {
                country: l.country,
                pricing_category: l.pricing_category,
                pricing_type: l.pricing_type,
                volume: l.volume,
                cost: l.cost,
            })
            .collect(),
    })
}

pub(crate) fn meta_costs_error(e: meta_costs::Error) -> ApiError {
    match e {
        meta_costs::Error::NotFound => ApiError::not_found("WhatsApp account"),
        e @ meta_costs::Error::NotConnected(_) => ApiError::Conflict(e.to_string()),
        meta_costs::Error::Meta(e) => ApiError::from_meta(&e, "pricing analytics"),
        meta_costs::Error::Other(e) => ApiError::Internal(e),
    }
}

/// Real costs from Meta per WABA of the organization (last 90 days, pricing_analytics).
#[utoipa::path(get, path = "/campaigns/meta-costs", tag = "campaigns",
    responses((status = 200, body = Data<Vec<MetaCostsOut>>), (status = 503, description = "Meta is throttling or not answering; see Retry-After")))]
async fn meta_costs(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<MetaCostsOut>>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_READ)?;
    let accounts = meta_costs::org_accounts(&state.db, org_id).await?;
    let end = Utc::now();
    let start = end - chrono::Duration::days(90);
    let mut out = Vec::new();
    for a in accounts {
        out.push(pricing_analytics(&state, a, start, end).await?);
    }
    Ok(Data::new(out))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignMetaCost {
    pub campaign_id: Uuid,
    /// The campaign's delivered messages by country, priced at Meta's average real cost per
    /// message of the campaign's category in that country over the campaign's days.
    pub calculated_cost: f64,
    pub delivered: i64,
    /// Delivered messages in countries Meta reported no cost for (free or not billed yet).
    pub unpriced: i64,
    pub estimated_cost: f64,
    pub meta: MetaCostsOut,
}

/// Calculated real cost of a campaign from Meta's pricing analytics over its days.
#[utoipa::path(get, path = "/campaigns/{id}/meta-cost", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = Data<CampaignMetaCost>), (status = 404), (status = 409), (status = 503, description = "Meta is throttling or not answering; see Retry-After")))]
async fn meta_cost(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<CampaignMetaCost>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_READ)?;
    let c = fetch_campaign(&state.db, org_id, campaign_id(&id)?).await?;
    let Some(launched) = c.launched_at else {
        return Err(ApiError::Conflict(
            "The campaign has not been launched yet".into(),
        ));
    };
    let start = launched - chrono::Duration::days(1);
    let end = c.completed_at.unwrap_or_else(Utc::now) + chrono::Duration::days(1);
    let meta = pricing_analytics(&state, c.account_id, start, end).await?;
    let by_country: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT r.country, count(*) FROM campaign_recipients r JOIN messages m ON m.id = r.message_id
          WHERE r.campaign_id = $1 AND m.status IN ('delivered', 'read') GROUP BY r.country",
    )
    .bind(c.id)
    .fetch_all(&state.db)
    .await?;
    let (mut cost, mut delivered, mut unpriced) = (0.0, 0, 0);
    for (country, n) in by_country {
        delivered += n;
        let (vol, total): (i64, f64) = meta
            .lines
            .iter()
            .filter(|l| {
                l.country == country
                    && l.pricing_category
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(&c.template_category))
            })
            .fold((0, 0.0), |(v, t), l| (v + l.volume, t + l.cost));
        if vol > 0 {
            cost += total / vol as f64 * n as f64;
        } else {
            unpriced += n;
        }
    }
    Ok(Data::new(CampaignMetaCost {
        campaign_id: c.id,
        calculated_cost: (cost * 10_000.0).round() / 10_000.0,
        delivered,
        unpriced,
        estimated_cost: c.estimated_cost,
        meta,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_export_fields() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
