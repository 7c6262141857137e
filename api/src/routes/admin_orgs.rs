//! `/admin/organizations*` and `/admin/stats`: the platform operator's view (super admin only).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    users::{hash_password, list_org_users, ListUsersQuery, UserOut},
    Data, Page, PageParams,
};
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{normalize_email, Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, update_org))
        .routes(routes!(bulk_orgs))
        .routes(routes!(org_users))
        .routes(routes!(stats))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Plan {
    Free,
    Starter,
    Professional,
    Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrgStatus {
    Active,
    Suspended,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct OrgOut {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub plan: Plan,
    pub status: OrgStatus,
    pub onboarding_completed: bool,
    pub suspended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ORG_COLUMNS: &str =
    "o.id, o.name, o.slug, o.plan, o.status, o.onboarding_completed, o.suspended_at, o.created_at, o.updated_at";

pub async fn fetch_org(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<OrgOut> {
    sqlx::query_as(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations o WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("Organization"))
}

/// Inserts an organization. With `explicit_slug` a taken slug is a 409; a slug derived from the
/// name instead gets a short suffix until it is unique.
pub async fn insert_org_with_unique_slug(
    tx: &mut PgConnection,
    name: &str,
    slug: &str,
    plan: Option<Plan>,
) -> ApiResult<Uuid> {
    for attempt in 0..5 {
        let candidate = if attempt == 0 {
            slug.to_string()
        } else {
            format!("{slug}-{}", &Uuid::new_v4().simple().to_string()[..6])
        };
        // A savepoint, so a slug collision does not abort the caller's transaction.
        sqlx::query("SAVEPOINT org_slug").execute(&mut *tx).await?;
        let inserted = sqlx::query_scalar(
            "INSERT INTO organizations (name, slug, plan) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(&candidate)
        .bind(plan.unwrap_or(Plan::Free))
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(id) => {
                sqlx::query("RELEASE SAVEPOINT org_slug")
                    .execute(&mut *tx)
                    .await?;
                return Ok(id);
            }
            Err(e) if wharf_shared::db::is_unique_violation(&e, "organizations_slug_key") => {
                sqlx::query("ROLLBACK TO SAVEPOINT org_slug")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(
        "Could not find a free slug for this organization".into(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrgsQuery {
    /// Matches name or slug.
    pub search: Option<String>,
    pub page: Option<i64>,
    pub limit: Option<i64>,
    pub plan: Option<Plan>,
    pub status: Option<OrgStatus>,
    /// createdAt (default), updatedAt, name, slug, plan, status.
    pub sort_by: Option<String>,
    /// asc or desc (default).
    pub sort_order: Option<String>,
}

const SORTABLE: [(&str, &str); 6] = [
    ("createdAt", "o.created_at"),
    ("updatedAt", "o.updated_at"),
    ("name", "lower(o.name)"),
    ("slug", "o.slug"),
    ("plan", "o.plan"),
    ("status", "o.status"),
];

impl ListOrgsQuery {
    fn paging(&self) -> PageParams {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
    }

    fn order_by(&self) -> String {
        let column = SORTABLE
            .iter()
            .find(|(k, _)| Some(*k) == self.sort_by.as_deref())
            .map(|(_, c)| *c)
            .unwrap_or("o.created_at");
        let dir = if self.sort_order.as_deref() == Some("asc") {
            "ASC"
        } else {
            "DESC"
        };
        format!("{column} {dir}, o.id {dir}")
    }
}

impl Validate for ListOrgsQuery {
    fn validate(&self, v: &mut Violations) {
        self.paging().check(v);
        let sortable: Vec<&str> = SORTABLE.iter().map(|(k, _)| *k).collect();
        v.one_of("sortBy", self.sort_by.as_deref(), &sortable);
        if let Some(o) = &self.sort_order {
            if o != "asc" && o != "desc" {
                v.add_kind("sortOrder", "must be asc or desc", "enum");
            }
        }
    }
}

/// An organization in the operator's list, with its size.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct OrgSummary {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub org: OrgOut,
    pub user_count: i64,
}

/// Filter shared by the list and bulk-by-filter: `$1` search, `$2` plan, `$3` status.
const ORG_FILTER: &str = "($1::text IS NULL OR o.name ILIKE $1 OR o.slug ILIKE $1)
      AND ($2::text IS NULL OR o.plan = $2) AND ($3::text IS NULL OR o.status = $3)";

/// List organizations with pagination and filters (super admin only).
#[utoipa::path(get, path = "/admin/organizations", tag = "admin", params(ListOrgsQuery),
    responses((status = 200, body = Page<OrgSummary>), (status = 403)))]
async fn list_orgs(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListOrgsQuery>,
) -> ApiResult<Json<Page<OrgSummary>>> {
    auth.require_super_admin()?;
    let paging = q.paging();
    let search = q.search.as_deref().map(|s| format!("%{}%", s.trim()));
    let rows: Vec<OrgSummary> = sqlx::query_as(&format!(
        "SELECT {ORG_COLUMNS},
                (SELECT count(*) FROM users u WHERE u.org_id = o.id AND u.deleted_at IS NULL) AS user_count
           FROM organizations o WHERE {ORG_FILTER}
          ORDER BY {} LIMIT $4 OFFSET $5",
        q.order_by()
    ))
    .bind(&search)
    .bind(q.plan)
    .bind(q.status)
    .bind(paging.limit())
    .bind(paging.offset())
    .fetch_all(&state.db)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM organizations o WHERE {ORG_FILTER}"
    ))
    .bind(&search)
    .bind(q.plan)
    .bind(q.status)
    .fetch_one(&state.db)
    .await?;
    Ok(Page::new(rows, &paging, total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrgRequest {
    pub name: String,
    pub slug: String,
    pub admin_email: String,
    pub admin_name: String,
    pub plan: Option<Plan>,
    /// Optional initial password for the admin; without one they set it later.
    pub admin_password: Option<String>,
}

impl Validate for CreateOrgRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("name", &self.name, MAX_NAME_LEN);
        v.slug("slug", &self.slug);
        v.email("adminEmail", self.admin_email.trim());
        v.text("adminName", &self.admin_name, MAX_NAME_LEN);
        if let Some(p) = &self.admin_password {
            v.password("adminPassword", p);
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrgOut {
    pub organization: OrgOut,
    pub admin: UserOut,
}

/// Create an organization with its initial admin user (super admin only).
#[utoipa::path(post, path = "/admin/organizations", tag = "admin", request_body = CreateOrgRequest,
    responses((status = 201, body = Data<CreatedOrgOut>), (status = 403), (status = 409), (status = 422)))]
async fn create_org(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<CreateOrgRequest>,
) -> ApiResult<impl IntoResponse> {
    auth.require_super_admin()?;
    let password_hash = match body.admin_password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    let org_id: Uuid = sqlx::query_scalar(
        "INSERT INTO organizations (name, slug, plan) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(body.name.trim())
    .bind(&body.slug)
    .bind(body.plan.unwrap_or(Plan::Free))
    .fetch_one(&mut *tx)
    .await
    .on_conflict(
        "organizations_slug_key",
        "An organization with this slug already exists",
    )?;
    let admin_id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (org_id, email, name, role, password_hash) VALUES ($1, $2, $3, 'ADMIN', $4) RETURNING id",
    )
    .bind(org_id)
    .bind(normalize_email(&body.admin_email))
    .bind(body.admin_name.trim())
    .bind(password_hash)
    .fetch_one(&mut *tx)
    .await
    .on_conflict("users_email_key", "A user with this email already exists")?;
    let organization = fetch_org(&mut *tx, org_id).await?;
    let admin = super::users::fetch_user(&mut *tx, admin_id, Some(org_id)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Data::new(CreatedOrgOut {
            organization,
            admin,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgDetail {
    #[serde(flatten)]
    pub org: OrgOut,
    pub user_count: i64,
    pub admin_count: i64,
    pub api_key_count: i64,
}

/// Get organization detail (super admin only).
#[utoipa::path(get, path = "/admin/organizations/{id}", tag = "admin",
    responses((status = 200, body = Data<OrgDetail>), (status = 403), (status = 404)))]
async fn get_org(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<OrgDetail>>> {
    auth.require_super_admin()?;
    let id = parse_id(&id, "Organization")?;
    Ok(Data::new(org_detail(&state, id).await?))
}

async fn org_detail(state: &AppState, id: Uuid) -> ApiResult<OrgDetail> {
    let org = fetch_org(&state.db, id).await?;
    let (user_count, admin_count, api_key_count): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE org_id = $1 AND deleted_at IS NULL),
                (SELECT count(*) FROM users WHERE org_id = $1 AND deleted_at IS NULL AND role = 'ADMIN'),
                (SELECT count(*) FROM api_keys WHERE org_id = $1)",
    )
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    Ok(OrgDetail {
        org,
        user_count,
        admin_count,
        api_key_count,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateOrgRequest {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub plan: Option<Plan>,
    pub status: Option<OrgStatus>,
}

impl Validate for UpdateOrgRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        if let Some(s) = &self.slug {
            v.slug("slug", s);
        }
    }
}

/// Update an organization (super admin only). Suspending it stops its sessions and keys.
#[utoipa::path(patch, path = "/admin/organizations/{id}", tag = "admin", request_body = UpdateOrgRequest,
    responses((status = 200, body = Data<OrgDetail>), (status = 404), (status = 409), (status = 422)))]
async fn update_org(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<UpdateOrgRequest>,
) -> ApiResult<Json<Data<OrgDetail>>> {
    auth.require_super_admin()?;
    let id = parse_id(&id, "Organization")?;
    let updated = sqlx::query(
        "UPDATE organizations SET name = COALESCE($2, name), slug = COALESCE($3, slug),
                plan = COALESCE($4, plan), status = COALESCE($5, status),
                suspended_at = CASE WHEN $5 IS NULL THEN suspended_at
                                    WHEN $5 = 'ACTIVE' THEN NULL
                                    ELSE COALESCE(suspended_at, now()) END
          WHERE id = $1",
    )
    .bind(id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(&body.slug)
    .bind(body.plan)
    .bind(body.status)
    .execute(&state.db)
    .await
    .on_conflict(
        "organizations_slug_key",
        "An organization with this slug already exists",
    )?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found("Organization"));
    }
    Ok(Data::new(org_detail(&state, id).await?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkOrgAction {
    Suspend,
    Activate,
    Cancel,
}

/// Which rows a bulk action applies to: explicit ids, or every row matching a filter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection<F> {
    /// "ids" or "filter".
    pub mode: SelectionMode,
    #[serde(default)]
    pub ids: Vec<String>,
    pub filter: Option<F>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelectionMode {
    Ids,
    Filter,
}

impl<F> Selection<F> {
    pub fn check(&self, v: &mut Violations) {
        match self.mode {
            SelectionMode::Ids if self.ids.is_empty() => {
                v.add("selection.ids", "at least one id is required")
            }
            SelectionMode::Ids if self.ids.len() > 1000 => {
                v.add("selection.ids", "at most 1000 ids per request")
            }
            SelectionMode::Filter if self.filter.is_none() => {
                v.add("selection.filter", "a filter is required")
            }
            _ => {}
        }
    }

    /// The ids, ignoring ones that are not UUIDs (they match no row).
    pub fn uuids(&self) -> Vec<Uuid> {
        self.ids
            .iter()
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrgFilter {
    pub search: Option<String>,
    pub plan: Option<Plan>,
    pub status: Option<OrgStatus>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkOrgRequest {
    pub action: BulkOrgAction,
    pub selection: Selection<OrgFilter>,
}

impl Validate for BulkOrgRequest {
    fn validate(&self, v: &mut Violations) {
        self.selection.check(v);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub affected: u64,
}

/// Bulk status change on organizations (super admin only).
#[utoipa::path(post, path = "/admin/organizations/bulk", tag = "admin", request_body = BulkOrgRequest,
    responses((status = 200, body = Data<BulkResult>), (status = 403), (status = 422)))]
async fn bulk_orgs(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BulkOrgRequest>,
) -> ApiResult<Json<Data<BulkResult>>> {
    auth.require_super_admin()?;
    let status = match body.action {
        BulkOrgAction::Suspend => OrgStatus::Suspended,
        BulkOrgAction::Activate => OrgStatus::Active,
        BulkOrgAction::Cancel => OrgStatus::Cancelled,
    };
    let set = "status = $1, suspended_at = CASE WHEN $1 = 'ACTIVE' THEN NULL ELSE COALESCE(suspended_at, now()) END";
    let done = match body.selection.mode {
        SelectionMode::Ids => {
            sqlx::query(&format!(
                "UPDATE organizations SET {set} WHERE id = ANY($2) AND status <> $1"
            ))
            .bind(status)
            .bind(body.selection.uuids())
            .execute(&state.db)
            .await?
        }
        SelectionMode::Filter => {
            let f = body
                .selection
                .filter
                .as_ref()
                .expect("validated: filter mode has a filter");
            let search = f.search.as_deref().map(|s| format!("%{}%", s.trim()));
            // Same filter as the list, with parameters shifted by one.
            let filter = ORG_FILTER
                .replace("$3", "$4")
                .replace("$2", "$3")
                .replace("$1", "$2");
            sqlx::query(&format!(
                "UPDATE organizations o SET {set} WHERE {filter} AND o.status <> $1"
            ))
            .bind(status)
            .bind(search)
            .bind(f.plan)
            .bind(f.status)
            .execute(&state.db)
            .await?
        }
    };
    tracing::info!(affected = done.rows_affected(), action = ?body.action, "bulk organization status change");
    Ok(Data::new(BulkResult {
        affected: done.rows_affected(),
    }))
}

/// List users of an organization (super admin only).
#[utoipa::path(get, path = "/admin/organizations/{id}/users", tag = "admin", params(ListUsersQuery),
    responses((status = 200, body = Page<UserOut>), (status = 403), (status = 404)))]
async fn org_users(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<ListUsersQuery>,
) -> ApiResult<Json<Page<UserOut>>> {
    auth.require_super_admin()?;
    let id = parse_id(&id, "Organization")?;
    fetch_org(&state.db, id).await?;
    let (users, total) = list_org_users(&state, id, &q).await?;
    Ok(Page::new(
        users,
        &PageParams {
            page: q.page,
            limit: q.limit,
        },
        total,
    ))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PlatformStats {
    pub organizations: i64,
    pub active_organizations: i64,
    pub suspended_organizations: i64,
    pub cancelled_organizations: i64,
    pub users: i64,
    pub users_online: i64,
    pub admins: i64,
    pub agents: i64,
    pub api_keys: i64,
    pub organizations_created_last_30_days: i64,
}

/// Global platform statistics (super admin only).
#[utoipa::path(get, path = "/admin/stats", tag = "admin",
    responses((status = 200, body = Data<PlatformStats>), (status = 403)))]
async fn stats(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<PlatformStats>>> {
    auth.require_super_admin()?;
    let stats = sqlx::query_as(
        "SELECT (SELECT count(*) FROM organizations) AS organizations,
                (SELECT count(*) FROM organizations WHERE status = 'ACTIVE') AS active_organizations,
                (SELECT count(*) FROM organizations WHERE status = 'SUSPENDED') AS suspended_organizations,
                (SELECT count(*) FROM organizations WHERE status = 'CANCELLED') AS cancelled_organizations,
                (SELECT count(*) FROM users WHERE deleted_at IS NULL AND org_id IS NOT NULL) AS users,
                (SELECT count(*) FROM users WHERE deleted_at IS NULL AND org_id IS NOT NULL AND status = 'ONLINE') AS users_online,
                (SELECT count(*) FROM users WHERE deleted_at IS NULL AND role = 'ADMIN') AS admins,
                (SELECT count(*) FROM users WHERE deleted_at IS NULL AND role IN ('AGENT', 'SUPERVISOR')) AS agents,
                (SELECT count(*) FROM api_keys) AS api_keys,
                (SELECT count(*) FROM organizations WHERE created_at > now() - interval '30 days')
                    AS organizations_created_last_30_days",
    )
    .fetch_one(&state.db)
    .await?;
    Ok(Data::new(stats))
}
