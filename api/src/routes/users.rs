//! `/users`: the organization's team (admins, supervisors, agents). Admins create, update and
//! soft-delete users; everyone sees the list and sets their own presence status, which
//! idle-agent detection reads later.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{crypto, cx::presence, events::Event};

use super::{Data, Page, PageParams};
use crate::{
    auth::{scopes, sessions, Auth, Principal, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{normalize_email, Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(update_status))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Presence {
    Online,
    Away,
    Offline,
}

/// A user as every endpoint returns it. Never carries the password hash.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub status: Presence,
    pub status_changed_at: DateTime<Utc>,
    pub is_active: bool,
    pub has_password: bool,
    /// Most open conversations routing assigns to this agent at once (null: no limit).
    pub max_conversations: Option<i32>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const USER_COLUMNS: &str = "u.id, u.org_id, u.email, u.name, u.role, u.status, u.status_changed_at, \
     u.is_active, u.password_hash IS NOT NULL AS has_password, u.max_conversations, u.last_login_at, u.created_at, u.updated_at";

/// Loads a live (not deleted) user, scoped to `org_id` when given.
pub async fn fetch_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    org_id: Option<Uuid>,
) -> ApiResult<UserOut> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u
          WHERE u.id = $1 AND u.deleted_at IS NULL AND ($2::uuid IS NULL OR u.org_id = $2)"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(org_id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| ApiError::not_found("User"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Matches name or email.
    pub search: Option<String>,
    pub role: Option<Role>,
    pub status: Option<Presence>,
    pub is_active: Option<bool>,
    pub page: Option<i64>,
    pub limit: Option<i64>,
}

impl ListUsersQuery {
    fn paging(&self) -> PageParams {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
    }
}

impl Validate for ListUsersQuery {
    fn validate(&self, v: &mut Violations) {
        self.paging().check(v);
    }
}

/// List users (agents) of the caller's organization.
#[utoipa::path(get, path = "/users", tag = "users", params(ListUsersQuery),
    responses((status = 200, body = Page<UserOut>), (status = 401), (status = 403)))]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListUsersQuery>,
) -> ApiResult<Json<Page<UserOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::ADMIN)?;
    let (users, total) = list_org_users(&state, org_id, &q).await?;
    Ok(Page::new(users, &q.paging(), total))
}

/// Shared by `/users` and the super admin's `/admin/organizations/{id}/users`.
pub async fn list_org_users(
    state: &AppState,
    org_id: Uuid,
    q: &ListUsersQuery,
) -> ApiResult<(Vec<UserOut>, i64)> {
    let paging = q.paging();
    let search = q.search.as_deref().map(|s| format!("%{}%", s.trim()));
    let filter = "u.org_id = $1 AND u.deleted_at IS NULL
          AND ($2::text IS NULL OR u.name ILIKE $2 OR u.email ILIKE $2)
          AND ($3::text IS NULL OR u.role = $3)
          AND ($4::text IS NULL OR u.status = $4)
          AND ($5::bool IS NULL OR u.is_active = $5)";
    let rows: Vec<UserOut> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE {filter} ORDER BY u.created_at, u.id LIMIT $6 OFFSET $7"
    ))
    .bind(org_id)
    .bind(&search)
    .bind(q.role)
    .bind(q.status)
    .bind(q.is_active)
    .bind(paging.limit())
    .bind(paging.offset())
    .fetch_all(&state.db)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM users u WHERE {filter}"))
        .bind(org_id)
        .bind(&search)
        .bind(q.role)
        .bind(q.status)
        .bind(q.is_active)
        .fetch_one(&state.db)
        .await?;
    Ok((rows, total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserRequest {
    pub email: String,
    pub name: String,
    /// ADMIN, SUPERVISOR or AGENT (default AGENT).
    pub role: Option<Role>,
    /// Optional initial password; without one the user sets it later.
    pub password: Option<String>,
}

impl Validate for CreateUserRequest {
    fn validate(&self, v: &mut Violations) {
        v.email("email", self.email.trim());
        v.text("name", &self.name, MAX_NAME_LEN);
        if let Some(p) = &self.password {
            v.password("password", p);
        }
        if self.role == Some(Role::SuperAdmin) {
            v.add_kind(
                "role",
                "role must be one of ADMIN, SUPERVISOR, AGENT",
                "enum",
            );
        }
    }
}

/// Create a new user (admin only).
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = Data<UserOut>), (status = 409, description = "Email already in use"),
              (status = 422)))]
async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<CreateUserRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let password_hash = match body.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (org_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(org_id)
    .bind(normalize_email(&body.email))
    .bind(body.name.trim())
    .bind(body.role.unwrap_or(Role::Agent))
    .bind(password_hash)
    .fetch_one(&state.db)
    .await
    .on_conflict("users_email_key", "A user with this email already exists")?;
    let user = fetch_user(&state.db, id, Some(org_id)).await?;
    tracing::info!(user_id = %id, org_id = %org_id, "user created");
    Ok((StatusCode::CREATED, Data::new(user)))
}

/// Get one user of the organization.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    responses((status = 200, body = Data<UserOut>), (status = 404)))]
async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<UserOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::ADMIN)?;
    let id = parse_id(&id, "User")?;
    Ok(Data::new(fetch_user(&state.db, id, Some(org_id)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    /// Admin reset of the user's password.
    pub password: Option<String>,
    /// Most open conversations routing assigns to this agent at once (1-1000).
    pub max_conversations: Option<i32>,
}

impl Validate for UpdateUserRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        if let Some(e) = &self.email {
            v.email("email", e.trim());
        }
        if let Some(p) = &self.password {
            v.password("password", p);
        }
        if self
            .max_conversations
            .is_some_and(|m| !(1..=1000).contains(&m))
        {
            v.add("maxConversations", "must be between 1 and 1000");
        }
        if self.role == Some(Role::SuperAdmin) {
            v.add_kind(
                "role",
                "role must be one of ADMIN, SUPERVISOR, AGENT",
                "enum",
            );
        }
    }
}

/// Update a user (admin only).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UpdateUserRequest,
    responses((status = 200, body = Data<UserOut>), (status = 404), (status = 409), (status = 422)))]
async fn update_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<UpdateUserRequest>,
) -> ApiResult<Json<Data<UserOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "User")?;
    let mut tx = state.db.begin().await?;
    let current = fetch_user(&mut *tx, id, Some(org_id)).await?;
    let demoting = body.role.is_some_and(|r| r != Role::Admin) || body.is_active == Some(false);
    if current.role == Role::Admin && demoting {
        ensure_another_admin(&mut tx, org_id, id).await?;
    }
    let password_hash = match body.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    sqlx::query(
        "UPDATE users SET name = COALESCE($3, name), email = COALESCE($4, email),
                role = COALESCE($5, role), is_active = COALESCE($6, is_active),
                password_hash = COALESCE($7, password_hash),
                max_conversations = COALESCE($8, max_conversations)
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(body.email.as_deref().map(normalize_email))
    .bind(body.role)
    .bind(body.is_active)
    .bind(&password_hash)
    .bind(body.max_conversations)
    .execute(&mut *tx)
    .await
    .on_conflict("users_email_key", "A user with this email already exists")?;
    if body.is_active == Some(false) || password_hash.is_some() {
        sessions::revoke_all(&mut *tx, id).await?;
    }
    let user = fetch_user(&mut *tx, id, Some(org_id)).await?;
    tx.commit().await?;
    Ok(Data::new(user))
}

/// Soft-delete a user (admin only). Their sessions end; their history stays.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    responses((status = 204), (status = 404), (status = 409)))]
async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "User")?;
    if let Principal::User(me) = &auth.0 {
        if me.id == id {
            return Err(ApiError::Conflict(
                "You cannot delete your own account".into(),
            ));
        }
    }
    let mut tx = state.db.begin().await?;
    let current = fetch_user(&mut *tx, id, Some(org_id)).await?;
    if current.role == Role::Admin {
        ensure_another_admin(&mut tx, org_id, id).await?;
    }
    sqlx::query("UPDATE users SET deleted_at = now(), is_active = false, status = 'OFFLINE' WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    sessions::revoke_all(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An organization must keep at least one active admin, or nobody could manage it.
async fn ensure_another_admin(
    tx: &mut sqlx::PgConnection,
    org_id: Uuid,
    except: Uuid,
) -> ApiResult<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE org_id = $1 AND id <> $2 AND role = 'ADMIN'
            AND is_active AND deleted_at IS NULL",
    )
    .bind(org_id)
    .bind(except)
    .fetch_one(&mut *tx)
    .await?;
    if others == 0 {
        return Err(ApiError::Conflict(
            "The organization must keep at least one active admin".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusRequest {
    pub status: Presence,
}

impl Validate for StatusRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// Update a user's presence status: users set their own; admins and supervisors anyone's.
#[utoipa::path(patch, path = "/users/{id}/status", tag = "users", request_body = StatusRequest,
    responses((status = 200, body = Data<UserOut>), (status = 403), (status = 404), (status = 422)))]
async fn update_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<StatusRequest>,
) -> ApiResult<Json<Data<UserOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::ADMIN)?;
    let id = parse_id(&id, "User")?;
    // Look the user up first: another tenant's id is a 404 whatever the caller's role.
    fetch_user(&state.db, id, Some(org_id)).await?;
    if let Principal::User(me) = &auth.0 {
        if me.id != id && !me.role.at_least(Role::Supervisor) {
            return Err(ApiError::Forbidden(
                "Agents can only change their own status".into(),
            ));
        }
    }
    let status = match body.status {
        Presence::Online => "ONLINE",
        Presence::Away => "AWAY",
        Presence::Offline => "OFFLINE",
    };
    let mut tx = state.db.begin().await?;
    let picked_up = presence::set_presence(&mut tx, org_id, id, status, chrono::Utc::now())
        .await
        .map_err(super::conversation_actions::move_error)?;
    tx.commit().await?;
    let events: Vec<Event> = picked_up
        .into_iter()
        .map(|c| Event::conversation_assigned(org_id, c, None, Some(id)))
        .collect();
    state.events.publish(&events).await;
    Ok(Data::new(fetch_user(&state.db, id, Some(org_id)).await?))
}

/// argon2 is deliberately slow; keep it off the async workers.
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

pub async fn verify_password(password: String, hash: Option<String>) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => crypto::verify_password(&password, &h),
        None => {
            // Same cost as a real check, so timing does not tell which emails exist.
            crypto::verify_password(&password, crypto::dummy_password_hash());
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))
}
