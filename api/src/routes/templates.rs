//! `/templates*`: WhatsApp message templates in sync with Meta (ARCHITECTURE.md, "Template sync").
//!
//! Drafts live only here. Creating, submitting, editing and deleting at Meta are jobs
//! (`templates.submit`, `.edit`, `.delete`): the API validates everything Meta would check,
//! writes the row (status PENDING_SUBMISSION, or PENDING_DELETION for a delete) and enqueues the
//! job in the same transaction, then answers 202. The job records Meta's id and status, or
//! Meta's refusal in `lastError`. Syncs (`templates.sync_account`) pull Meta's list; status
//! webhooks apply at once.
//!
//! Sending (`/templates/{name}/send`, `/send-to-phone`) checks the parameters against the
//! stored template before anything is queued, then queues like every other outbound message.
//! The path segment after `/templates/` is a template id everywhere except in the two send
//! routes, where it is the template name (one router segment, so it is called `{id}` in both).

use std::collections::HashSet;

use axum::{
    body::Bytes,
    extract::{Multipart, Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::outbound::NewOutbound;
use wharf_shared::templates::{
    self as tpl,
    manage::{self, check_content, Content},
    rules::{self, Issue, Issues, SendComponent},
    DeleteTemplate, EditTemplate,
};

use super::{
    admin_orgs::{Selection, SelectionMode},
    messages::MessageOut,
    outbound::{ensure_sendable, load_target, queue, user_id},
    Data, Page, PageParams,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, parse_json, ValidJson, ValidQuery},
    state::AppState,
    upload,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(create_draft))
        .routes(routes!(get_template, edit_template, soft_delete))
        .routes(routes!(update_draft))
        .routes(routes!(submit_draft))
        .routes(routes!(duplicate))
        .routes(routes!(delete_at_meta))
        .routes(routes!(bulk))
        .routes(routes!(upload_media))
        .routes(routes!(header_media_file))
        .routes(routes!(sync))
        .routes(routes!(send))
        .routes(routes!(send_to_phone))
}

// ---- rows and output ------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateOut {
    pub id: Uuid,
    pub account_id: Uuid,
    pub waba_id: String,
    /// Meta's id; null for drafts and submissions Meta has not answered yet.
    pub meta_template_id: Option<String>,
    pub name: String,
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    pub previous_category: Option<String>,
    /// DRAFT, PENDING_SUBMISSION, PENDING, APPROVED, REJECTED, PAUSED, DISABLED, IN_APPEAL,
    /// FLAGGED, REINSTATED, PENDING_DELETION, DELETED, ARCHIVED, LIMIT_EXCEEDED, LOCKED, REMOVED.
    pub status: String,
    /// POSITIONAL ({{1}}) or NAMED ({{first_name}}).
    pub parameter_format: String,
    /// Meta's component list (HEADER, BODY, FOOTER, BUTTONS).
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    /// GREEN, YELLOW, RED or UNKNOWN.
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    /// Why the last submit, edit or delete at Meta failed.
    pub last_error: Option<String>,
    /// Where the uploaded header file is served (also the default header link of sends).
    pub header_media_url: Option<String>,
    pub header_mime_type: Option<String>,
    pub header_handle: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct TemplateRow {
    id: Uuid,
    account_id: Uuid,
    waba_id: String,
    meta_template_id: Option<String>,
    name: String,
    language: String,
    category: String,
    previous_category: Option<String>,
    status: String,
    parameter_format: String,
    components: Value,
    quality_score: Option<String>,
    rejected_reason: Option<String>,
    last_error: Option<String>,
    header_blob_path: Option<String>,
    header_mime_type: Option<String>,
    header_handle: Option<String>,
    last_synced_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "t.id, t.account_id, t.waba_id, t.meta_template_id, t.name, t.language, t.category, \
    t.previous_category, t.status, t.parameter_format, t.components, t.quality_score, t.rejected_reason, t.last_error, \
    t.header_blob_path, t.header_mime_type, t.header_handle, t.last_synced_at, t.submitted_at, t.created_at, \
    t.updated_at, t.deleted_at";

fn media_url(state: &AppState, id: Uuid) -> String {
    format!(
        "{}/api/v1/templates/{id}/header-media",
        state.config.public_url.trim_end_matches('/')
    )
}

impl TemplateRow {
    fn into_out(self, state: &AppState) -> TemplateOut {
        TemplateOut {
            header_media_url: self
                .header_blob_path
                .as_ref()
                .map(|_| media_url(state, self.id)),
            id: self.id,
            account_id: self.account_id,
            waba_id: self.waba_id,
            meta_template_id: self.meta_template_id,
            name: self.name,
            language: self.language,
            category: self.category,
            previous_category: self.previous_category,
            status: self.status,
            parameter_format: self.parameter_format,
            components: self.components,
            quality_score: self.quality_score,
            rejected_reason: self.rejected_reason,
            last_error: self.last_error,
            header_mime_type: self.header_mime_type,
            header_handle: self.header_handle,
            last_synced_at: self.last_synced_at,
            submitted_at: self.submitted_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }

    fn named(&self) -> bool {
        self.parameter_format == "NAMED"
    }
}

async fn fetch(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<TemplateRow> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM message_templates t WHERE t.id = $1 AND t.org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Template"))
}

async fn fetch_path(state: &AppState, org_id: Uuid, raw: &str) -> ApiResult<TemplateRow> {
    fetch(state, org_id, parse_id(raw, "Template")?).await
}

fn out(state: &AppState, row: TemplateRow) -> Json<Data<TemplateOut>> {
    Data::new(row.into_out(state))
}

// ---- validation -------------------------------------------------------------------------------

fn field_errors(issues: Issues) -> ApiResult<()> {
    if issues.is_empty() {
        return Ok(());
    }
    Err(ApiError::Validation(
        issues.0.into_iter().map(issue_to_field).collect(),
    ))
}

fn issue_to_field(i: Issue) -> FieldError {
    let mut loc = vec!["body".to_string()];
    loc.extend(i.loc);
    FieldError {
        loc,
        msg: i.msg,
        kind: i.kind.to_string(),
    }
}

fn default_language() -> String {
    "en_US".into()
}

/// `POST /templates` and `POST /templates/draft`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRequest {
    /// `^[a-z0-9_]+$`, at most 512 characters; unique per language and number.
    pub name: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// Default en_US.
    #[serde(default = "default_language")]
    pub language: String,
    /// POSITIONAL (default) or NAMED.
    pub parameter_format: Option<String>,
    /// Meta's components: HEADER, BODY, FOOTER, BUTTONS.
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    /// The number (WhatsApp account) whose WABA gets the template; optional when the
    /// organization has one connected number.
    pub account_id: Option<String>,
}

// Everything is checked by `check_content`, which locates nested problems precisely.
impl Validate for TemplateRequest {
    fn validate(&self, _: &mut Violations) {}
}

impl TemplateRequest {
    fn format(&self) -> String {
        self.parameter_format
            .as_deref()
            .unwrap_or("POSITIONAL")
            .to_uppercase()
    }

    fn check(&self) -> ApiResult<()> {
        let category = self.category.to_uppercase();
        let format = self.format();
        field_errors(check_content(&Content {
            name: &self.name,
            language: &self.language,
            category: &category,
            parameter_format: &format,
            components: &self.components,
        }))
    }
}

/// The account a new template goes to: the one named, or the org's only connected number.
async fn resolve_account(
    state: &AppState,
    org_id: Uuid,
    account_id: Option<&str>,
) -> ApiResult<(Uuid, String)> {
    let choice = match account_id {
        Some(raw) => manage::AccountChoice::Id(
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::invalid_field("accountId", "no such WhatsApp account"))?,
        ),
        None => manage::AccountChoice::Only,
    };
    manage::resolve_account(&state.db, org_id, choice)
        .await?
        .map_err(|p| {
            ApiError::invalid_field(
                "accountId",
                match p {
                    manage::AccountProblem::NoSuch => "no such WhatsApp account",
                    manage::AccountProblem::NoneConnected => "connect a WhatsApp number first",
                    manage::AccountProblem::Several => {
                        "this organization has several WhatsApp numbers: say which one gets the template"
                    }
                },
            )
        })
}

/// 409 when another live template (drafts included) of the number has this name and language.
async fn ensure_unique(
    state: &AppState,
    account_id: Uuid,
    name: &str,
    language: &str,
    except: Option<Uuid>,
) -> ApiResult<()> {
    let taken = manage::name_taken(&state.db, account_id, name, language, except).await?;
    if taken {
        return Err(duplicate_name(name, language));
    }
    Ok(())
}

fn duplicate_name(name: &str, language: &str) -> ApiError {
    ApiError::Conflict(format!(
        "A template named {name} in {language} already exists for this number"
    ))
}

fn unique_violation(e: sqlx::Error, name: &str, language: &str) -> ApiError {
    if wharf_shared::db::is_unique_violation(&e, "message_templates_name_key") {
        duplicate_name(name, language)
    } else {
        e.into()
    }
}

/// The uploaded header file a template's example handle names: (blob path, mime, handle).
async fn header_media(
    state: &AppState,
    org_id: Uuid,
    components: &Value,
) -> ApiResult<(Option<String>, Option<String>, Option<String>)> {
    Ok(manage::header_media(&state.db, org_id, components).await?)
}

async fn insert_template(
    state: &AppState,
    auth: &Auth,
    org_id: Uuid,
    body: &TemplateRequest,
    status: &str,
) -> ApiResult<TemplateRow> {
    let (account_id, waba_id) = resolve_account(state, org_id, body.account_id.as_deref()).await?;
    let id = manage::create(
        &state.db,
        &manage::NewTemplate {
            org_id,
            account_id,
            waba_id: &waba_id,
            name: &body.name,
            language: &body.language,
            category: &body.category.to_uppercase(),
            parameter_format: &body.format(),
            components: &body.components,
            status,
            created_by: user_id(auth),
        },
    )
    .await
    .map_err(template_create_error)?;
    fetch(state, org_id, id).await
}

fn template_create_error(e: manage::CreateError) -> ApiError {
    match e {
        manage::CreateError::Duplicate { name, language } => duplicate_name(&name, &language),
        manage::CreateError::Db(e) => e.into(),
        manage::CreateError::Jobs(e) => ApiError::Internal(e.into()),
    }
}

// ---- list and read ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// One status, or `all` (the default): every template but REMOVED ones, so a template just
    /// created or still in review is listed too.
    pub status: Option<String>,
    pub account_id: Option<Uuid>,
    /// Part of the name.
    pub search: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub page: Option<i64>,
    pub limit: Option<i64>,
}

impl ListQuery {
    fn page(&self) -> PageParams {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
    }

    fn status(&self) -> Option<String> {
        match self.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if s.eq_ignore_ascii_case("all") => None,
            Some(s) => Some(s.to_uppercase()),
        }
    }
}

impl Validate for ListQuery {
    fn validate(&self, v: &mut Violations) {
        self.page().check(v);
        if let Some(s) = self.status() {
            if !tpl::STATUSES.contains(&s.as_str()) {
                v.add_kind(
                    "status",
                    format!("must be all or one of {}", tpl::STATUSES.join(", ")),
                    "enum",
                );
            }
        }
        v.optional_text("search", self.search.as_deref(), 200);
    }
}

/// The list filter, shared by the list and bulk selections by filter.
/// `$1` org, `$2` status (NULL = all but REMOVED), `$3` account, `$4` search pattern,
/// `$5` category, `$6` language.
const LIST_FILTER: &str =
    "t.org_id = $1 AND (($2::text IS NULL AND t.status <> 'REMOVED') OR t.status = $2)
    AND ($3::uuid IS NULL OR t.account_id = $3) AND ($4::text IS NULL OR t.name ILIKE $4)
    AND ($5::text IS NULL OR t.category = $5) AND ($6::text IS NULL OR t.language = $6)";

fn search_pattern(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(|s| {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

/// List templates: every one but REMOVED ones by default (`?status=APPROVED` for the sendable
/// ones, or any one status),
/// filtered by number, name, category and language, newest first.
#[utoipa::path(get, path = "/templates", tag = "templates", params(ListQuery),
    responses((status = 200, body = Page<TemplateOut>), (status = 401), (status = 403), (status = 422)))]
async fn list_templates(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> ApiResult<Json<Page<TemplateOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let params = q.page();
    let status = q.status();
    let search = search_pattern(q.search.as_deref());
    let category = q.category.as_deref().map(str::to_uppercase);
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM message_templates t WHERE {LIST_FILTER}"
    ))
    .bind(org_id)
    .bind(&status)
    .bind(q.account_id)
    .bind(&search)
    .bind(&category)
    .bind(&q.language)
    .fetch_one(&state.db)
    .await?;
    let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM message_templates t WHERE {LIST_FILTER}
          ORDER BY t.created_at DESC, t.id LIMIT $7 OFFSET $8"
    ))
    .bind(org_id)
    .bind(&status)
    .bind(q.account_id)
    .bind(&search)
    .bind(&category)
    .bind(&q.language)
    .bind(params.limit())
    .bind(params.offset())
    .fetch_all(&state.db)
    .await?;
    Ok(Page::new(
        rows.into_iter().map(|r| r.into_out(&state)).collect(),
        &params,
        total,
    ))
}

/// One template.
#[utoipa::path(get, path = "/templates/{id}", tag = "templates",
    responses((status = 200, body = Data<TemplateOut>), (status = 404)))]
async fn get_template(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<TemplateOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(out(&state, fetch_path(&state, org_id, &id).await?))
}

// ---- create, drafts, submit -------------------------------------------------------------------

/// Create a template and submit it to Meta for approval. Answers 202 with the template in
/// PENDING_SUBMISSION; a job submits it (then PENDING, or back to DRAFT with `lastError`).
#[utoipa::path(post, path = "/templates", tag = "templates", request_body = TemplateRequest,
    responses((status = 202, body = Data<TemplateOut>), (status = 403), (status = 409), (status = 422)))]
async fn create_template(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TemplateRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    body.check()?;
    let row = insert_template(&state, &auth, org_id, &body, "PENDING_SUBMISSION").await?;
    Ok((StatusCode::ACCEPTED, out(&state, row)))
}

/// Save a template locally as DRAFT, without submitting it to Meta.
#[utoipa::path(post, path = "/templates/draft", tag = "templates", request_body = TemplateRequest,
    responses((status = 201, body = Data<TemplateOut>), (status = 409), (status = 422)))]
async fn create_draft(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TemplateRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    body.check()?;
    let row = insert_template(&state, &auth, org_id, &body, "DRAFT").await?;
    Ok((StatusCode::CREATED, out(&state, row)))
}

/// `PUT /templates/{id}/draft`: any field, the rest stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDraftUpdate {
    pub name: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub parameter_format: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Value>,
}

impl Validate for TemplateDraftUpdate {
    fn validate(&self, _: &mut Violations) {}
}

fn check_row(row: &TemplateRow) -> ApiResult<()> {
    field_errors(check_content(&Content {
        name: &row.name,
        language: &row.language,
        category: &row.category,
        parameter_format: &row.parameter_format,
        components: &row.components,
    }))
}

fn require_status(row: &TemplateRow, allowed: &[&str], action: &str) -> ApiResult<()> {
    if !allowed.contains(&row.status.as_str()) {
        return Err(ApiError::Conflict(format!(
            "A {} template cannot be {action}",
            row.status
        )));
    }
    Ok(())
}

/// Update a DRAFT template locally.
#[utoipa::path(put, path = "/templates/{id}/draft", tag = "templates", request_body = TemplateDraftUpdate,
    responses((status = 200, body = Data<TemplateOut>), (status = 404), (status = 409), (status = 422)))]
async fn update_draft(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<TemplateDraftUpdate>,
) -> ApiResult<Json<Data<TemplateOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let mut row = fetch_path(&state, org_id, &id).await?;
    require_status(
        &row,
        &["DRAFT"],
        "updated as a draft (use PUT /templates/{id} to edit it at Meta)",
    )?;
    if let Some(n) = body.name {
        row.name = n;
    }
    if let Some(c) = body.category {
        row.category = c.to_uppercase();
    }
    if let Some(l) = body.language {
        row.language = l;
    }
    if let Some(f) = body.parameter_format {
        row.parameter_format = f.to_uppercase();
    }
    if let Some(c) = body.components {
        row.components = rules::normalize_components(&c);
    }
    check_row(&row)?;
    ensure_unique(
        &state,
        row.account_id,
        &row.name,
        &row.language,
        Some(row.id),
    )
    .await?;
    let (blob, mime, handle) = header_media(&state, org_id, &row.components).await?;
    sqlx::query(
        "UPDATE message_templates SET name = $3, category = $4, language = $5, parameter_format = $6, components = $7,
                header_blob_path = $8, header_mime_type = $9, header_handle = $10
          WHERE id = $1 AND org_id = $2 AND status = 'DRAFT'",
    )
    .bind(row.id)
    .bind(org_id)
    .bind(&row.name)
    .bind(&row.category)
    .bind(&row.language)
    .bind(&row.parameter_format)
    .bind(&row.components)
    .bind(blob)
    .bind(mime)
    .bind(handle)
    .execute(&state.db)
    .await?;
    Ok(out(&state, fetch(&state, org_id, row.id).await?))
}

/// Submits a stored draft: checks it, marks it PENDING_SUBMISSION and enqueues the submit.
async fn submit_row(state: &AppState, org_id: Uuid, row: &TemplateRow) -> ApiResult<()> {
    require_status(row, &["DRAFT"], "submitted (only drafts are)")?;
    check_row(row)?;
    ensure_unique(
        state,
        row.account_id,
        &row.name,
        &row.language,
        Some(row.id),
    )
    .await?;
    let mut tx = state.db.begin().await?;
    let done = sqlx::query(
        "UPDATE message_templates SET status = 'PENDING_SUBMISSION', last_error = NULL
          WHERE id = $1 AND org_id = $2 AND status = 'DRAFT'",
    )
    .bind(row.id)
    .bind(org_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, &row.name, &row.language))?;
    if done.rows_affected() == 0 {
        return Err(ApiError::Conflict(
            "This draft was submitted or changed meanwhile".into(),
        ));
    }
    tpl::enqueue_submit(&mut tx, org_id, row.id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    Ok(())
}

/// Submit a DRAFT template to Meta for approval (202; a job does the call).
#[utoipa::path(post, path = "/templates/{id}/submit", tag = "templates",
    responses((status = 202, body = Data<TemplateOut>), (status = 404), (status = 409), (status = 422)))]
async fn submit_draft(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row = fetch_path(&state, org_id, &id).await?;
    submit_row(&state, org_id, &row).await?;
    Ok((
        StatusCode::ACCEPTED,
        out(&state, fetch(&state, org_id, row.id).await?),
    ))
}

// ---- edit, duplicate, delete ------------------------------------------------------------------

/// `PUT /templates/{id}`: new components (and, unless approved, a new category).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateEditRequest {
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    pub category: Option<String>,
}

impl Validate for TemplateEditRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// Edit a template's components at Meta. Only APPROVED, REJECTED and PAUSED templates can be
/// edited, and an approved template's category cannot change. 202: a job sends the edit (the
/// template then goes back to PENDING review at Meta).
#[utoipa::path(put, path = "/templates/{id}", tag = "templates", request_body = TemplateEditRequest,
    responses((status = 202, body = Data<TemplateOut>), (status = 404), (status = 409), (status = 422)))]
async fn edit_template(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<TemplateEditRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row = fetch_path(&state, org_id, &id).await?;
    if row.status == "DRAFT" {
        return Err(ApiError::Conflict(
            "This is a draft: update it with PUT /templates/{id}/draft".into(),
        ));
    }
    require_status(
        &row,
        &tpl::EDITABLE,
        "edited (only APPROVED, REJECTED and PAUSED templates can be)",
    )?;
    let Some(meta_id) = row.meta_template_id.clone() else {
        return Err(ApiError::Conflict(
            "Meta has not answered this template's submission yet".into(),
        ));
    };
    let category = body
        .category
        .as_deref()
        .map(str::to_uppercase)
        .unwrap_or_else(|| row.category.clone());
    let mut issues = check_content(&Content {
        name: &row.name,
        language: &row.language,
        category: &category,
        parameter_format: &row.parameter_format,
        components: &body.components,
    });
    if row.status == "APPROVED" && category != row.category {
        issues.0.push(Issue {
            loc: vec!["category".to_string()],
            msg: "the category of an approved template cannot change".into(),
            kind: "value_error",
        });
    }
    field_errors(issues)?;
    let components = rules::normalize_components(&body.components);
    let (blob, mime, handle) = header_media(&state, org_id, &components).await?;
    let mut tx = state.db.begin().await?;
    let done = sqlx::query(
        "UPDATE message_templates SET components = $3, category = $4, status = 'PENDING_SUBMISSION', last_error = NULL,
                header_blob_path = COALESCE($5, header_blob_path), header_mime_type = COALESCE($6, header_mime_type),
                header_handle = COALESCE($7, header_handle)
          WHERE id = $1 AND org_id = $2 AND status = $8",
    )
    .bind(row.id)
    .bind(org_id)
    .bind(&components)
    .bind(&category)
    .bind(blob)
    .bind(mime)
    .bind(handle)
    .bind(&row.status)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::Conflict(
            "This template changed meanwhile; reload it".into(),
        ));
    }
    let job = EditTemplate {
        template_id: row.id,
        previous_status: row.status.clone(),
        category: (category != row.category).then_some(category),
    };
    wharf_shared::jobs::enqueue(
        &mut *tx,
        wharf_shared::jobs::NewJob::new(job)
            .org(org_id)
            .unique_key(format!("templates.edit:{}", row.id)),
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    tracing::info!(template_id = %row.id, meta_id, "template edit queued");
    Ok((
        StatusCode::ACCEPTED,
        out(&state, fetch(&state, org_id, row.id).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDuplicateRequest {
    /// The copy's name; default `<name>_copy` (then `_copy_2`, ...).
    pub name: Option<String>,
    pub language: Option<String>,
}

/// Duplicate a template as a DRAFT with a new name.
#[utoipa::path(post, path = "/templates/{id}/duplicate", tag = "templates", request_body(content = TemplateDuplicateRequest, description = "optional"),
    responses((status = 201, body = Data<TemplateOut>), (status = 404), (status = 409), (status = 422)))]
async fn duplicate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row = fetch_path(&state, org_id, &id).await?;
    let req: TemplateDuplicateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TemplateDuplicateRequest {
            name: None,
            language: None,
        }
    } else {
        parse_json(&body)?
    };
    let language = req.language.unwrap_or_else(|| row.language.clone());
    let name = match req.name {
        Some(n) => {
            ensure_unique(&state, row.account_id, &n, &language, None).await?;
            n
        }
        None => free_copy_name(&state, row.account_id, &row.name, &language).await?,
    };
    let copy = TemplateRow {
        name,
        language,
        ..row.clone()
    };
    check_row(&copy)?;
    let new_id: Uuid = sqlx::query_scalar(
        "INSERT INTO message_templates (org_id, account_id, waba_id, name, language, category, status, parameter_format,
                components, header_blob_path, header_mime_type, header_handle, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'DRAFT', $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(org_id)
    .bind(copy.account_id)
    .bind(&copy.waba_id)
    .bind(&copy.name)
    .bind(&copy.language)
    .bind(&copy.category)
    .bind(&copy.parameter_format)
    .bind(&copy.components)
    .bind(&copy.header_blob_path)
    .bind(&copy.header_mime_type)
    .bind(&copy.header_handle)
    .bind(user_id(&auth))
    .fetch_one(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        out(&state, fetch(&state, org_id, new_id).await?),
    ))
}

async fn free_copy_name(
    state: &AppState,
    account_id: Uuid,
    name: &str,
    language: &str,
) -> ApiResult<String> {
    let taken: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM message_templates WHERE account_id = $1 AND language = $2 AND status <> 'REMOVED'
            AND name LIKE $3",
    )
    .bind(account_id)
    .bind(language)
    .bind(format!("{}%", name.chars().take(400).collect::<String>().replace('_', "\\_")))
    .fetch_all(&state.db)
    .await?;
    let taken: HashSet<String> = taken.into_iter().collect();
    let base: String = name.chars().take(rules::MAX_NAME - 12).collect();
    (1..10_000)
        .map(|n| {
            if n == 1 {
                format!("{base}_copy")
            } else {
                format!("{base}_copy_{n}")
            }
        })
        .find(|candidate| !taken.contains(candidate))
        .ok_or_else(|| ApiError::Conflict("No free name for the copy; give one".into()))
}

/// Soft-delete a template: it is marked REMOVED here (Meta keeps it; a sync never revives it).
#[utoipa::path(delete, path = "/templates/{id}", tag = "templates",
    responses((status = 200, body = Data<TemplateOut>), (status = 404)))]
async fn soft_delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<TemplateOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row = fetch_path(&state, org_id, &id).await?;
    manage::soft_delete(&mut *state.db.acquire().await?, org_id, row.id).await?;
    Ok(out(&state, fetch(&state, org_id, row.id).await?))
}

/// Starts the deletion of a template at Meta: a template Meta never had is removed at once;
/// otherwise it is PENDING_DELETION until the job deletes it. Returns true when a job was queued.
async fn delete_row_at_meta(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    row: &TemplateRow,
) -> ApiResult<bool> {
    if row.status == "DISABLED" {
        return Err(ApiError::Conflict(
            "Meta does not allow deleting a DISABLED template".into(),
        ));
    }
    if row.meta_template_id.is_none() {
        sqlx::query(
            "UPDATE message_templates SET status = 'REMOVED', deleted_at = COALESCE(deleted_at, now()) WHERE id = $1",
        )
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
        return Ok(false);
    }
    sqlx::query(
        "UPDATE message_templates SET status = 'PENDING_DELETION', last_error = NULL WHERE id = $1",
    )
    .bind(row.id)
    .execute(&mut *conn)
    .await?;
    let job = DeleteTemplate {
        template_id: row.id,
        previous_status: row.status.clone(),
    };
    wharf_shared::jobs::enqueue(
        &mut *conn,
        wharf_shared::jobs::NewJob::new(job)
            .org(org_id)
            .unique_key(format!("templates.delete:{}", row.id)),
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(true)
}

/// Delete a template at Meta (this language only: by name and hsm_id) and mark it REMOVED.
/// 202 while the job runs (status PENDING_DELETION); 200 when Meta never had it.
#[utoipa::path(delete, path = "/templates/{id}/meta", tag = "templates",
    responses((status = 202, body = Data<TemplateOut>), (status = 200, body = Data<TemplateOut>), (status = 404), (status = 409)))]
async fn delete_at_meta(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let row = fetch_path(&state, org_id, &id).await?;
    if row.status == "REMOVED" && row.deleted_at.is_some() {
        return Err(ApiError::not_found("Template"));
    }
    if row.status == "PENDING_DELETION" {
        return Ok((StatusCode::ACCEPTED, out(&state, row)));
    }
    let mut tx = state.db.begin().await?;
    let queued = delete_row_at_meta(&mut tx, org_id, &row).await?;
    tx.commit().await?;
    let status = if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, out(&state, fetch(&state, org_id, row.id).await?)))
}

// ---- bulk -------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateBulkAction {
    /// Soft-delete (REMOVED here).
    Delete,
    /// Submit drafts to Meta.
    Submit,
    /// Delete at Meta.
    #[serde(alias = "deleteMeta")]
    DeleteMeta,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFilter {
    pub status: Option<String>,
    pub account_id: Option<Uuid>,
    pub search: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TemplateBulkRequest {
    pub action: TemplateBulkAction,
    pub selection: Selection<TemplateFilter>,
}

impl Validate for TemplateBulkRequest {
    fn validate(&self, v: &mut Violations) {
        self.selection.check(v);
        if let Some(s) = self
            .selection
            .filter
            .as_ref()
            .and_then(|f| f.status.as_deref())
        {
            if !s.eq_ignore_ascii_case("all") && !tpl::STATUSES.contains(&s.to_uppercase().as_str())
            {
                v.add_kind("selection.filter.status", "unknown status", "enum");
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateBulkSkip {
    pub id: Uuid,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateBulkResult {
    pub matched: usize,
    pub affected: usize,
    /// Templates the action does not apply to, with why.
    pub skipped: Vec<TemplateBulkSkip>,
}

fn api_error_reason(e: &ApiError) -> String {
    match e {
        ApiError::Validation(errs) => errs
            .iter()
            .map(|f| format!("{}: {}", f.loc[1..].join("."), f.msg))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Bulk actions on templates (admin only): `delete` (soft), `submit` (drafts), `delete_meta`,
/// on a list of ids or on everything a filter matches (the list's filter).
#[utoipa::path(post, path = "/templates/bulk", tag = "templates", request_body = TemplateBulkRequest,
    responses((status = 200, body = Data<TemplateBulkResult>), (status = 403), (status = 422)))]
async fn bulk(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TemplateBulkRequest>,
) -> ApiResult<Json<Data<TemplateBulkResult>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let rows: Vec<TemplateRow> = match body.selection.mode {
        SelectionMode::Ids => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM message_templates t WHERE t.org_id = $1 AND t.id = ANY($2)"
            ))
            .bind(org_id)
            .bind(body.selection.uuids())
            .fetch_all(&state.db)
            .await?
        }
        SelectionMode::Filter => {
            let f = body
                .selection
                .filter
                .as_ref()
                .expect("validated: filter mode has a filter");
            let status = match f.status.as_deref() {
                None => None,
                Some(s) if s.eq_ignore_ascii_case("all") => None,
                Some(s) => Some(s.to_uppercase()),
            };
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM message_templates t WHERE {LIST_FILTER} LIMIT 1000"
            ))
            .bind(org_id)
            .bind(status)
            .bind(f.account_id)
            .bind(search_pattern(f.search.as_deref()))
            .bind(f.category.as_deref().map(str::to_uppercase))
            .bind(&f.language)
            .fetch_all(&state.db)
            .await?
        }
    };
    let matched = rows.len();
    let mut affected = 0;
    let mut skipped = Vec::new();
    match body.action {
        TemplateBulkAction::Delete => {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            affected = sqlx::query(
                "UPDATE message_templates SET status = 'REMOVED', deleted_at = COALESCE(deleted_at, now())
                  WHERE org_id = $1 AND id = ANY($2) AND status <> 'REMOVED'",
            )
            .bind(org_id)
            .bind(&ids)
            .execute(&state.db)
            .await?
            .rows_affected() as usize;
        }
        TemplateBulkAction::Submit => {
            for row in &rows {
                match submit_row(&state, org_id, row).await {
                    Ok(()) => affected += 1,
                    Err(ApiError::Internal(e)) => return Err(ApiError::Internal(e)),
                    Err(e) => skipped.push(TemplateBulkSkip {
                        id: row.id,
                        reason: api_error_reason(&e),
                    }),
                }
            }
        }
        TemplateBulkAction::DeleteMeta => {
            for row in &rows {
                if row.status == "REMOVED" || row.status == "PENDING_DELETION" {
                    skipped.push(TemplateBulkSkip {
                        id: row.id,
                        reason: format!("already {}", row.status),
                    });
                    continue;
                }
                let mut tx = state.db.begin().await?;
                match delete_row_at_meta(&mut tx, org_id, row).await {
                    Ok(_) => {
                        tx.commit().await?;
                        affected += 1;
                    }
                    Err(ApiError::Internal(e)) => return Err(ApiError::Internal(e)),
                    Err(e) => skipped.push(TemplateBulkSkip {
                        id: row.id,
                        reason: api_error_reason(&e),
                    }),
                }
            }
        }
    }
    Ok(Data::new(TemplateBulkResult {
        matched,
        affected,
        skipped,
    }))
}

// ---- header media -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateUploadOut {
    /// Put this in the header's `example.header_handle` (our own handle: the file is stored
    /// here and served at `/templates/{id}/header-media` once a template uses it).
    pub handle: String,
    pub mime_type: String,
    pub size: usize,
    pub filename: String,
}

fn header_limit(mime: &str) -> Option<u64> {
    const MB: u64 = 1024 * 1024;
    match mime {
        "image/jpeg" | "image/png" => Some(5 * MB),
        "video/mp4" | "video/3gpp" => Some(16 * MB),
        "application/pdf" => Some(100 * MB),
        _ => None,
    }
}

/// Upload media for a template header (multipart `file`: JPEG/PNG ≤5 MB, MP4 ≤16 MB, PDF
/// ≤100 MB). Returns the handle to use as the header's example.
#[utoipa::path(post, path = "/templates/upload-media", tag = "templates",
    request_body(content_type = "multipart/form-data", description = "file"),
    responses((status = 201, body = Data<TemplateUploadOut>), (status = 413), (status = 422)))]
async fn upload_media(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let dir = state.config.blob_dir.join(format!("{org_id}/templates"));
    let file = upload::receive_only_file(&mut multipart, "header", &dir).await?;
    let Some(limit) = header_limit(&file.mime) else {
        return Err(ApiError::invalid_field(
            "file",
            format!(
                "{} cannot be a template header: use JPEG, PNG, MP4 or PDF",
                file.mime
            ),
        ));
    };
    if file.size == 0 {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    if file.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} headers are limited to {limit} bytes",
            file.mime
        )));
    }
    file.check_type("file")?;
    let id = Uuid::new_v4();
    let blob = format!("{org_id}/templates/{id}");
    let (mime, filename, size) = (file.mime.clone(), file.filename.clone(), file.size);
    file.keep_as(&state.config.blob_dir.join(&blob)).await?;
    let handle = format!("wharf:{}", id.simple());
    sqlx::query(
        "INSERT INTO template_media (id, org_id, handle, blob_path, mime_type, filename, size_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(org_id)
    .bind(&handle)
    .bind(&blob)
    .bind(&mime)
    .bind(&filename)
    .bind(size as i64)
    .execute(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Data::new(TemplateUploadOut {
            handle,
            mime_type: mime,
            size: size as usize,
            filename,
        }),
    ))
}

/// Serve a template's header file. Public (no credentials), like the seed: it is the link
/// Meta fetches when a template with a media header is sent; the id is unguessable.
#[utoipa::path(get, path = "/templates/{id}/header-media", tag = "templates",
    responses((status = 200, description = "the file"), (status = 404)))]
async fn header_media_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "Header media")?;
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT header_blob_path, header_mime_type FROM message_templates WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    let Some((Some(blob), mime)) = row else {
        return Err(ApiError::not_found("Header media"));
    };
    let bytes = tokio::fs::read(state.config.blob_dir.join(&blob))
        .await
        .map_err(|_| ApiError::not_found("Header media"))?;
    let mime = mime.unwrap_or_else(|| "application/octet-stream".into());
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=300".into()),
        ],
        bytes,
    )
        .into_response())
}

// ---- sync -------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SyncQuery {
    /// Only this number (default: every connected number of the organization).
    pub account_id: Option<Uuid>,
}

impl Validate for SyncQuery {
    fn validate(&self, _: &mut Violations) {}
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSyncOut {
    /// Connected numbers whose templates will be synced.
    pub accounts: usize,
    /// Jobs enqueued now.
    pub job_ids: Vec<i64>,
    /// Numbers whose sync was already waiting or running.
    pub already_queued: usize,
}

/// Sync templates from Meta: enqueues one `templates.sync_account` job per connected number
/// (one unfinished per number). 202 with the job ids.
#[utoipa::path(post, path = "/templates/sync", tag = "templates", params(SyncQuery),
    responses((status = 202, body = Data<TemplateSyncOut>), (status = 403), (status = 422)))]
async fn sync(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<SyncQuery>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let done = manage::request_org_sync(&state.db, org_id, q.account_id)
        .await
        .map_err(ApiError::from)?;
    if done.accounts == 0 {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["query", "accountId"],
            "no connected WhatsApp number to sync",
            "value_error",
        )]));
    }
    let already_queued = done.accounts - done.job_ids.len();
    Ok((
        StatusCode::ACCEPTED,
        Data::new(TemplateSyncOut {
            accounts: done.accounts,
            job_ids: done.job_ids,
            already_queued,
        }),
    ))
}

// ---- send -------------------------------------------------------------------------------------

/// The parameters of a template send: either Cloud API `components`, or the shorthand
/// `parameters` (body: a list for positional templates, an object for named ones), `header`
/// and `buttons`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    /// Template language; needed only when the template exists in several.
    pub language: Option<String>,
    /// Body parameters: `["Ana", "42"]` (positional) or `{"first_name": "Ana"}` (named).
    /// `variables` is the same field under the name campaign recipients use for it.
    #[schema(value_type = Option<Object>)]
    #[serde(alias = "variables")]
    pub parameters: Option<Value>,
    /// Header parameter: a string for a text header, or `{"link": ...}` / `{"id": ...}` for a
    /// media header (default: the template's uploaded header file), or a location object.
    #[schema(value_type = Option<Object>)]
    pub header: Option<Value>,
    /// Button parameters: `[{"index": 0, "text": "url-suffix"}]`, `payload` for quick replies,
    /// `couponCode` for copy-code buttons.
    #[schema(value_type = Option<Vec<Object>>)]
    pub buttons: Option<Vec<Value>>,
    /// Cloud API template components, sent as given (instead of the shorthand).
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendTemplateRequest {
    pub conversation_id: String,
    #[serde(flatten)]
    pub params: SendParams,
}

impl Validate for SendTemplateRequest {
    fn validate(&self, v: &mut Violations) {
        if Uuid::parse_str(self.conversation_id.trim()).is_err() {
            v.add("conversationId", "must be a conversation id");
        }
        self.params.validate(v);
    }
}

impl SendParams {
    fn validate(&self, v: &mut Violations) {
        if self.components.is_some()
            && (self.parameters.is_some() || self.header.is_some() || self.buttons.is_some())
        {
            v.add(
                "components",
                "give either components or parameters/header/buttons, not both",
            );
        }
        if let Some(l) = &self.language {
            if !rules::valid_language(l) {
                v.add("language", "must be a language code such as en_US");
            }
        }
        if let Some(p) = &self.parameters {
            if !(p.is_array() || p.is_object()) {
                v.add_kind(
                    "parameters",
                    "must be a list (positional) or an object (named)",
                    "type_error",
                );
            }
        }
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendToPhoneRequest {
    /// The customer's number with country code (`+`, spaces and dashes are ignored).
    pub phone: String,
    /// The sending number; default the first connected number that has this template.
    pub account_id: Option<String>,
    /// A name for a new contact.
    pub name: Option<String>,
    #[serde(flatten)]
    pub params: SendParams,
}

impl Validate for SendToPhoneRequest {
    fn validate(&self, v: &mut Violations) {
        if normalize_phone(&self.phone).is_none() {
            v.add(
                "phone",
                "must be a phone number with country code (8 to 15 digits)",
            );
        }
        if self
            .account_id
            .as_deref()
            .is_some_and(|a| Uuid::parse_str(a).is_err())
        {
            v.add("accountId", "must be a WhatsApp account id");
        }
        v.optional_text("name", self.name.as_deref(), 200);
        self.params.validate(v);
    }
}

fn normalize_phone(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return None;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    (8..=15).contains(&digits.len()).then_some(digits)
}

/// Finds the approved template `name` of an account for a send.
async fn sendable_template(
    state: &AppState,
    org_id: Uuid,
    account_id: Uuid,
    name: &str,
    language: Option<&str>,
) -> ApiResult<TemplateRow> {
    let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM message_templates t
          WHERE t.org_id = $1 AND t.account_id = $2 AND t.name = $3 AND t.status NOT IN ('REMOVED', 'DRAFT')
          ORDER BY t.language"
    ))
    .bind(org_id)
    .bind(account_id)
    .bind(name)
    .fetch_all(&state.db)
    .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!(
            "Template {name} not found for this WhatsApp number"
        )));
    }
    let languages: Vec<String> = rows.iter().map(|r| r.language.clone()).collect();
    let row = match language {
        Some(l) => rows.into_iter().find(|r| r.language == l).ok_or_else(|| {
            ApiError::invalid_field(
                "language",
                format!(
                    "template {name} has no {l} version (it has {})",
                    languages.join(", ")
                ),
            )
        })?,
        None if rows.len() == 1 => rows.into_iter().next().expect("one row"),
        None => {
            return Err(ApiError::invalid_field(
                "language",
                format!(
                    "template {name} exists in several languages ({}): say which",
                    languages.join(", ")
                ),
            ))
        }
    };
    if row.status != "APPROVED" {
        return Err(ApiError::Conflict(format!(
            "Template {name} ({}) is {}: only APPROVED templates can be sent",
            row.language, row.status
        )));
    }
    Ok(row)
}

fn text_or_value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"type": "text", "text": s}),
        Value::Number(n) => json!({"type": "text", "text": n.to_string()}),
        other => other.clone(),
    }
}

/// The Cloud API components of a send, each with where it came from, after the default header
/// (the template's uploaded file) is filled in.
fn build_components(state: &AppState, row: &TemplateRow, p: &SendParams) -> Vec<SendComponent> {
    let l = |segs: &[&str]| segs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if let Some(components) = &p.components {
        return components
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let i = i.to_string();
                let n = c["parameters"].as_array().map_or(0, Vec::len);
                SendComponent {
                    value: c.clone(),
                    loc: l(&["components", &i]),
                    params_at: l(&["components", &i, "parameters"]),
                    param_locs: (0..n)
                        .map(|j| l(&["components", &i, "parameters", &j.to_string()]))
                        .collect(),
                }
            })
            .collect();
    }
    let mut out = Vec::new();
    let format = rules::header_format(&row.components);
    match (&p.header, format.as_deref()) {
        (Some(h), Some(f)) if f != "TEXT" => {
            let kind = f.to_lowercase();
            let param = if h.get("type").is_some() {
                h.clone()
            } else if kind == "location" {
                json!({"type": "location", "location": h})
            } else {
                json!({"type": kind, kind.clone(): h})
            };
            out.push(SendComponent {
                value: json!({"type": "header", "parameters": [param]}),
                loc: l(&["header"]),
                params_at: l(&["header"]),
                param_locs: vec![l(&["header"])],
            });
        }
        (Some(h), _) => {
            let param = match h {
                Value::String(_) => text_or_value(h),
                Value::Object(o) if o.len() == 1 && !o.contains_key("type") => {
                    let (k, v) = o.iter().next().expect("one entry");
                    json!({"type": "text", "text": v.as_str().unwrap_or_default(), "parameter_name": k})
                }
                other => other.clone(),
            };
            out.push(SendComponent {
                value: json!({"type": "header", "parameters": [param]}),
                loc: l(&["header"]),
                params_at: l(&["header"]),
                param_locs: vec![l(&["header"])],
            });
        }
        (None, Some(f)) if f != "TEXT" && f != "LOCATION" && row.header_blob_path.is_some() => {
            let kind = f.to_lowercase();
            out.push(SendComponent {
                value: json!({"type": "header", "parameters": [{"type": kind, kind.clone(): {"link": media_url(state, row.id)}}]}),
                loc: l(&["header"]),
                params_at: l(&["header"]),
                param_locs: vec![l(&["header"])],
            });
        }
        _ => {}
    }
    match &p.parameters {
        Some(Value::Array(items)) => out.push(SendComponent {
            value: json!({"type": "body", "parameters": items.iter().map(text_or_value).collect::<Vec<_>>()}),
            loc: l(&["parameters"]),
            params_at: l(&["parameters"]),
            param_locs: (0..items.len()).map(|j| l(&["parameters", &j.to_string()])).collect(),
        }),
        Some(Value::Object(map)) => {
            let (params, locs): (Vec<Value>, Vec<Vec<String>>) = map
                .iter()
                .map(|(k, v)| {
                    let mut p = text_or_value(v);
                    p["parameter_name"] = json!(k);
                    (p, l(&["parameters", k]))
                })
                .unzip();
            out.push(SendComponent { value: json!({"type": "body", "parameters": params}), loc: l(&["parameters"]), params_at: l(&["parameters"]), param_locs: locs });
        }
        _ => {}
    }
    for (k, b) in p.buttons.iter().flatten().enumerate() {
        let k = k.to_string();
        let index = match &b["index"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        let template_button = rules::component(&row.components, "BUTTONS")
            .and_then(|c| {
                c["buttons"]
                    .get(index.parse::<usize>().unwrap_or(usize::MAX))
                    .cloned()
            })
            .unwrap_or(Value::Null);
        let ttype = template_button["type"]
            .as_str()
            .unwrap_or("URL")
            .to_uppercase();
        let (sub_type, param) = match ttype.as_str() {
            "QUICK_REPLY" => (
                "quick_reply",
                b.get("payload")
                    .map(|p| json!({"type": "payload", "payload": p})),
            ),
            "COPY_CODE" => (
                "copy_code",
                b.get("couponCode")
                    .or(b.get("coupon_code"))
                    .map(|c| json!({"type": "coupon_code", "coupon_code": c})),
            ),
            _ => (
                "url",
                b.get("text").map(|t| json!({"type": "text", "text": t})),
            ),
        };
        out.push(SendComponent {
            value: json!({"type": "button", "sub_type": sub_type, "index": index, "parameters": param.into_iter().collect::<Vec<_>>()}),
            loc: l(&["buttons", &k]),
            params_at: l(&["buttons", &k]),
            param_locs: vec![l(&["buttons", &k])],
        });
    }
    out
}

/// Checks a send's parameters against the template and builds the Cloud API template object
/// and what the inbox shows.
fn template_message(
    state: &AppState,
    row: &TemplateRow,
    p: &SendParams,
) -> ApiResult<(Value, Value)> {
    let send = build_components(state, row, p);
    let mut issues = Issues::default();
    let shorthand = p.components.is_none();
    rules::check_send(
        &row.components,
        row.named(),
        &send,
        |kind| match (shorthand, kind) {
            (false, _) => vec!["components".to_string()],
            (true, "body") => vec!["parameters".to_string()],
            (true, k) => vec![k.to_string()],
        },
        &mut issues,
    );
    field_errors(issues)?;
    let components: Vec<Value> = send.into_iter().map(|c| c.value).collect();
    let mut object = json!({"name": row.name, "language": {"code": row.language}});
    if !components.is_empty() {
        object["components"] = Value::Array(components.clone());
    }
    let mut content = json!({"template": object.clone()});
    if let Some(body) = rules::render_body(&row.components, &components) {
        content["body"] = json!(body);
    }
    Ok((object, content))
}

fn idempotency(
    headers: &HeaderMap,
    scope: &str,
    req: &impl Serialize,
) -> ApiResult<Option<(String, String)>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 characters".into(),
        ));
    }
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update(serde_json::to_vec(req).unwrap_or_default());
    Ok(Some((key.to_string(), hex::encode(h.finalize()))))
}

/// Send a template message in a conversation (`{name}` is the template name). Parameters are
/// checked against the template first (422 with the path of the wrong one); then the message
/// is queued (202). Templates need no 24-hour window.
#[utoipa::path(post, path = "/templates/{id}/send", tag = "templates", request_body = SendTemplateRequest,
    params(("id" = String, Path, description = "the template name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key")),
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 409), (status = 422)))]
async fn send(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<SendTemplateRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let conversation_id = Uuid::parse_str(req.conversation_id.trim())
        .map_err(|_| ApiError::not_found("Conversation"))?;
    let idem = idempotency(&headers, &format!("template:{name}"), &req)?;
    let target = load_target(&state, org_id, conversation_id).await?;
    ensure_sendable(&target)?;
    let row = sendable_template(
        &state,
        org_id,
        target.account_id,
        &name,
        req.params.language.as_deref(),
    )
    .await?;
    let (object, content) = template_message(&state, &row, &req.params)?;
    let message = queue(
        &state,
        NewOutbound {
            org_id,
            target,
            kind: "template",
            content,
            object,
            reply_to_wamid: None,
            template_name: Some(row.name.clone()),
            sent_by: user_id(&auth),
            idempotency: idem,
            upload: None,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Data::new(message)))
}

/// Send a template message to any phone number: the contact and its open conversation on the
/// sending number are created or reused, then the message is queued (202).
#[utoipa::path(post, path = "/templates/{id}/send-to-phone", tag = "templates", request_body = SendToPhoneRequest,
    params(("id" = String, Path, description = "the template name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key")),
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 409), (status = 422)))]
async fn send_to_phone(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<SendToPhoneRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_SEND)?;
    let wa_id = normalize_phone(&req.phone).expect("validated");
    let idem = idempotency(&headers, &format!("template-phone:{name}"), &req)?;
    let account_id = match req.account_id.as_deref() {
        Some(raw) => {
            let id = Uuid::parse_str(raw).expect("validated");
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM whatsapp_accounts WHERE id = $1 AND org_id = $2",
            )
            .bind(id)
            .bind(org_id)
            .fetch_optional(&state.db)
            .await?;
            match status.as_deref() {
                None => {
                    return Err(ApiError::invalid_field(
                        "accountId",
                        "no such WhatsApp account",
                    ))
                }
                Some("DISCONNECTED") => {
                    return Err(ApiError::Conflict(
                        "This WhatsApp number is disconnected".into(),
                    ))
                }
                Some(_) => id,
            }
        }
        None => {
            let found: Option<Uuid> = sqlx::query_scalar(
                "SELECT a.id FROM whatsapp_accounts a
                  WHERE a.org_id = $1 AND a.status <> 'DISCONNECTED'
                  ORDER BY EXISTS (SELECT 1 FROM message_templates t WHERE t.account_id = a.id AND t.name = $2
                                     AND t.status = 'APPROVED') DESC, a.created_at
                  LIMIT 1",
            )
            .bind(org_id)
            .bind(&name)
            .fetch_optional(&state.db)
            .await?;
            found.ok_or_else(|| {
                ApiError::invalid_field("accountId", "connect a WhatsApp number first")
            })?
        }
    };
    // Everything is checked before the contact or conversation is created.
    let row = sendable_template(
        &state,
        org_id,
        account_id,
        &name,
        req.params.language.as_deref(),
    )
    .await?;
    let (object, content) = template_message(&state, &row, &req.params)?;
    let mut tx = state.db.begin().await?;
    let contact_id: Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (org_id, wa_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, wa_id) DO UPDATE SET name = COALESCE(contacts.name, EXCLUDED.name)
         RETURNING id",
    )
    .bind(org_id)
    .bind(&wa_id)
    .bind(req.name.as_deref().map(str::trim))
    .fetch_one(&mut *tx)
    .await?;
    let conversation_id: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (org_id, account_id, contact_id, status) VALUES ($1, $2, $3, 'OPEN')
         ON CONFLICT (account_id, contact_id) WHERE status <> 'CLOSED' DO UPDATE SET updated_at = now()
         RETURNING id",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(contact_id)
    .fetch_one(&mut *tx)
    .await?;
    wharf_shared::campaigns::attach_to_conversation(
        &mut tx,
        org_id,
        account_id,
        &wa_id,
        conversation_id,
    )
    .await?;
    tx.commit().await?;
    let target = load_target(&state, org_id, conversation_id).await?;
    ensure_sendable(&target)?;
    let message = queue(
        &state,
        NewOutbound {
            org_id,
            target,
            kind: "template",
            content,
            object,
            reply_to_wamid: None,
            template_name: Some(row.name.clone()),
            sent_by: user_id(&auth),
            idempotency: idem,
            upload: None,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Data::new(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+1 (650) 555-1234").as_deref(),
            Some("16505551234")
        );
        assert_eq!(normalize_phone("123"), None);
        assert_eq!(normalize_phone("abc12345678"), None);
    }

    #[test]
    fn search_escapes_wildcards() {
        assert_eq!(search_pattern(Some("a_b%")).as_deref(), Some("%a\\_b\\%%"));
        assert_eq!(search_pattern(Some("  ")), None);
    }
}
