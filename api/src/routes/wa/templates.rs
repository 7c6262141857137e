//! WhatsApp API: message templates (`/api/v1/whatsapp/templates*`). The flows are
//! `wharf_shared::templates::manage`'s, the same `/api/v1/templates` calls.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::templates::manage::{self, AccountChoice, AccountProblem, Content};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, parse_valid_json},
    routes::outbound::user_id,
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(sync_templates))
        .routes(routes!(delete_template))
}

/// A template in this dialect.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaTemplate {
    /// The platform's id (the `:uuid` of `DELETE /whatsapp/templates/:uuid`).
    pub id: Uuid,
    pub waba_id: String,
    /// Meta's id; null until Meta has answered the submission.
    pub meta_template_id: Option<String>,
    pub name: String,
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// PENDING_SUBMISSION, PENDING, APPROVED, REJECTED, PAUSED, DISABLED, REMOVED...
    pub status: String,
    /// POSITIONAL or NAMED.
    pub parameter_format: String,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    /// Why the last submission to Meta failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<manage::Summary> for WaTemplate {
    fn from(t: manage::Summary) -> Self {
        Self {
            id: t.id,
            waba_id: t.waba_id,
            meta_template_id: t.meta_template_id,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            parameter_format: t.parameter_format,
            components: t.components,
            quality_score: t.quality_score,
            rejected_reason: t.rejected_reason,
            last_error: t.last_error,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaTemplateList {
    pub templates: Vec<WaTemplate>,
    pub count: usize,
}

async fn one(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<WaTemplate> {
    manage::list(&state.db, org_id, Some(id))
        .await?
        .into_iter()
        .next()
        .map(WaTemplate::from)
        .ok_or_else(|| ApiError::not_found("Template"))
}

/// List message templates and their approval status (every one but removed ones, newest
/// first).
#[utoipa::path(get, path = "/whatsapp/templates", tag = "whatsapp-api",
    responses((status = 200, body = WaTemplateList), (status = 401), (status = 403)))]
async fn list_templates(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<WaTemplateList>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let templates: Vec<WaTemplate> = manage::list(&state.db, org_id, None)
        .await?
        .into_iter()
        .map(WaTemplate::from)
        .collect();
    Ok(Json(WaTemplateList {
        count: templates.len(),
        templates,
    }))
}

/// `POST /whatsapp/templates`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WaTemplateCreate {
    /// `^[a-z0-9_]+$`.
    pub name: Option<String>,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: Option<String>,
    /// e.g. en_US.
    pub language: Option<String>,
    /// Meta's components: HEADER, BODY, FOOTER, BUTTONS.
    #[schema(value_type = Vec<Object>)]
    pub components: Option<Value>,
    /// POSITIONAL (default) or NAMED.
    pub parameter_format: Option<String>,
    /// The WABA that gets the template; required when the organization has several numbers.
    pub waba_id: Option<String>,
}

impl Validate for WaTemplateCreate {
    fn validate(&self, v: &mut Violations) {
        let missing = |v: &mut Violations, f: &str| v.add_kind(f, "Field required", "missing");
        if self.name.as_deref().is_none_or(|s| s.trim().is_empty()) {
            missing(v, "name");
        }
        if self.category.as_deref().is_none_or(|s| s.trim().is_empty()) {
            missing(v, "category");
        }
        if self.language.as_deref().is_none_or(|s| s.trim().is_empty()) {
            missing(v, "language");
        }
        if self.components.is_none() {
            missing(v, "components");
        }
    }
}

/// `parameterFormat` → `parameter_format`.
pub(crate) fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Create a message template and submit it to Meta for review: 202 with the template in
/// PENDING_SUBMISSION. It goes to the WABA of the organization's only number, or to `waba_id`.
#[utoipa::path(post, path = "/whatsapp/templates", tag = "whatsapp-api", request_body = WaTemplateCreate,
    responses((status = 202, body = WaTemplate), (status = 403), (status = 409), (status = 422)))]
async fn create_template(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    // Parsed after the scope check, so a key without the scope hears 403 whatever it sent.
    let body: WaTemplateCreate = parse_valid_json(&body)?;
    let name = body.name.unwrap_or_default();
    let language = body.language.unwrap_or_default();
    let category = body.category.unwrap_or_default().to_uppercase();
    let format = body
        .parameter_format
        .as_deref()
        .unwrap_or("POSITIONAL")
        .to_uppercase();
    let components = body.components.unwrap_or(Value::Null);
    let issues = manage::check_content(&Content {
        name: &name,
        language: &language,
        category: &category,
        parameter_format: &format,
        components: &components,
    });
    if !issues.is_empty() {
        return Err(ApiError::Validation(
            issues
                .0
                .into_iter()
                .map(|i| {
                    let mut loc = vec!["body".to_string()];
                    loc.extend(i.loc.iter().map(|l| snake(l)));
                    FieldError {
                        loc,
                        msg: i.msg,
                        kind: i.kind.to_string(),
                    }
                })
                .collect(),
        ));
    }
    let waba = body
        .waba_id
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    let choice = waba.map_or(AccountChoice::Only, AccountChoice::Waba);
    let (account_id, waba_id) = manage::resolve_account(&state.db, org_id, choice)
        .await?
        .map_err(|p| {
            ApiError::invalid_field(
                "waba_id",
                match p {
                    AccountProblem::NoSuch => "no such WhatsApp Business Account in this organization",
                    AccountProblem::NoneConnected => "connect a WhatsApp Business Account first",
                    AccountProblem::Several => {
                        "this organization has several WhatsApp numbers: give the waba_id that gets the template"
                    }
                },
            )
        })?;
    let id = manage::create(
        &state.db,
        &manage::NewTemplate {
            org_id,
            account_id,
            waba_id: &waba_id,
            name: &name,
            language: &language,
            category: &category,
            parameter_format: &format,
            components: &components,
            status: "PENDING_SUBMISSION",
            created_by: user_id(&auth),
        },
    )
    .await
    .map_err(|e| match e {
        manage::CreateError::Duplicate { .. } => ApiError::Conflict(e.to_string()),
        manage::CreateError::Db(e) => e.into(),
        manage::CreateError::Jobs(e) => e.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(one(&state, org_id, id).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaTemplateSync {
    /// Connected numbers whose templates will be synced from Meta.
    pub accounts: usize,
    /// Sync jobs enqueued now.
    pub job_ids: Vec<i64>,
    /// Numbers whose sync was already waiting or running.
    pub already_queued: usize,
}

/// Re-sync template approval status from Meta: one sync job per connected number (202).
#[utoipa::path(post, path = "/whatsapp/templates/sync", tag = "whatsapp-api",
    responses((status = 202, body = WaTemplateSync), (status = 403), (status = 422)))]
async fn sync_templates(State(state): State<AppState>, auth: Auth) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let done = manage::request_org_sync(&state.db, org_id, None).await?;
    if done.accounts == 0 {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["body"],
            "no connected WhatsApp number to sync",
            "value_error",
        )]));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(WaTemplateSync {
            accounts: done.accounts,
            already_queued: done.accounts - done.job_ids.len(),
            job_ids: done.job_ids,
        }),
    ))
}

/// Delete a template (the platform's id): it is REMOVED here and never revived by a sync.
/// Answers the template as it now is.
#[utoipa::path(delete, path = "/whatsapp/templates/{uuid}", tag = "whatsapp-api",
    params(("uuid" = String, Path, description = "The platform's template id")),
    responses((status = 200, body = WaTemplate), (status = 403), (status = 404)))]
async fn delete_template(
    State(state): State<AppState>,
    auth: Auth,
    Path(uuid): Path<String>,
) -> ApiResult<Json<WaTemplate>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&uuid, "Template")?;
    if !manage::soft_delete(&mut *state.db.acquire().await?, org_id, id).await? {
        return Err(ApiError::not_found("Template"));
    }
    Ok(Json(one(&state, org_id, id).await?))
}
