//! `/auth`: self-service registration, login, token refresh, the current user, and setting a
//! password.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    admin_orgs::{fetch_org, insert_org_with_unique_slug, OrgOut},
    users::{fetch_user, hash_password, verify_password, UserOut},
    Data,
};
use crate::{
    auth::{sessions, sessions::TokenPair, Auth, Principal, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::ValidJson,
    state::AppState,
    validate::{normalize_email, slugify, Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(me))
        .routes(routes!(set_password))
        .routes(routes!(complete_onboarding))
}

/// A session with who it belongs to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOut {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub user: UserOut,
    pub organization: Option<OrgOut>,
}

async fn session_out(state: &AppState, tokens: TokenPair, user_id: Uuid) -> ApiResult<SessionOut> {
    let user = fetch_user(&state.db, user_id, None).await?;
    let organization = match user.org_id {
        Some(org_id) => Some(fetch_org(&state.db, org_id).await?),
        None => None,
    };
    Ok(SessionOut {
        tokens,
        user,
        organization,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub company_name: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

impl Validate for RegisterRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("companyName", &self.company_name, MAX_NAME_LEN);
        v.text("name", &self.name, MAX_NAME_LEN);
        v.email("email", self.email.trim());
        v.password("password", &self.password);
    }
}

/// Self-service registration: creates an organization and its first admin, and logs them in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Data<SessionOut>), (status = 409, description = "Email already registered"),
              (status = 422)))]
async fn register(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let email = normalize_email(&body.email);
    let password_hash = hash_password(body.password).await?;
    let mut tx = state.db.begin().await?;
    let org_id = insert_org_with_unique_slug(
        &mut tx,
        body.company_name.trim(),
        &slugify(&body.company_name),
        None,
    )
    .await?;
    let user_id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (org_id, email, name, role, password_hash, last_login_at)
         VALUES ($1, $2, $3, 'ADMIN', $4, now()) RETURNING id",
    )
    .bind(org_id)
    .bind(&email)
    .bind(body.name.trim())
    .bind(password_hash)
    .fetch_one(&mut *tx)
    .await
    .on_conflict(
        "users_email_key",
        "An account with this email already exists",
    )?;
    let tokens = sessions::issue(&state, &mut tx, user_id).await?;
    tx.commit().await?;
    tracing::info!(org_id = %org_id, user_id = %user_id, "organization registered");
    Ok((
        StatusCode::CREATED,
        Data::new(session_out(&state, tokens, user_id).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self, v: &mut Violations) {
        v.email("email", self.email.trim());
        if self.password.is_empty() {
            v.add("password", "must not be empty");
        }
    }
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    password_hash: Option<String>,
    is_active: bool,
    org_status: Option<String>,
}

/// Log in with email and password. Throttled per email and per client address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Data<SessionOut>), (status = 401), (status = 422),
              (status = 429, description = "Too many attempts; see Retry-After")))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ValidJson(body): ValidJson<LoginRequest>,
) -> ApiResult<Json<Data<SessionOut>>> {
    let (user_id, tokens) = password_login(&state, &body.email, body.password, peer.ip()).await?;
    Ok(Data::new(session_out(&state, tokens, user_id).await?))
}

/// Checks an email and password (throttled per email and per client address) and opens a
/// session: the one login flow, shared by `POST /auth/login` and the console's sign-in form.
pub(crate) async fn password_login(
    state: &AppState,
    email: &str,
    password: String,
    client: IpAddr,
) -> ApiResult<(Uuid, TokenPair)> {
    let email = normalize_email(email);
    if let Err(wait) = state.login_throttle.check(&email, client) {
        tracing::warn!(%client, "login throttled");
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT u.id, u.password_hash, u.is_active, o.status AS org_status
           FROM users u LEFT JOIN organizations o ON o.id = u.org_id
          WHERE lower(u.email) = $1 AND u.deleted_at IS NULL",
    )
    .bind(&email)
    .fetch_optional(&state.db)
    .await?;
    let hash = row.as_ref().and_then(|r| r.password_hash.clone());
    let valid = verify_password(password, hash).await?;
    let row = match row {
        Some(r) if valid => r,
        _ => return Err(ApiError::Unauthorized("Invalid email or password".into())),
    };
    if !row.is_active {
        return Err(ApiError::Unauthorized("This user is deactivated".into()));
    }
    crate::auth::ensure_org_active(row.org_status.as_deref())?;
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let tokens = sessions::issue(state, &mut tx, row.id).await?;
    tx.commit().await?;
    Ok((row.id, tokens))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self, v: &mut Violations) {
        if self.refresh_token.trim().is_empty() {
            v.add("refreshToken", "must not be empty");
        }
    }
}

/// Exchange a refresh token for a new pair. The presented token stops working.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Data<SessionOut>), (status = 401), (status = 422)))]
async fn refresh(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<RefreshRequest>,
) -> ApiResult<Json<Data<SessionOut>>> {
    let (user_id, tokens) = sessions::rotate(&state, body.refresh_token.trim()).await?;
    Ok(Data::new(session_out(&state, tokens, user_id).await?))
}

/// Who am I: the user (or API key) and organization behind the credentials.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeOut {
    pub user: Option<UserOut>,
    pub api_key: Option<ApiKeyIdentity>,
    pub organization: Option<OrgOut>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyIdentity {
    pub id: Uuid,
    pub scopes: Vec<String>,
}

/// Get the current user profile (or the API key's identity).
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = Data<MeOut>), (status = 401)))]
async fn me(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<MeOut>>> {
    let (user, api_key) = match &auth.0 {
        Principal::User(u) => (Some(fetch_user(&state.db, u.id, None).await?), None),
        Principal::ApiKey(k) => (
            None,
            Some(ApiKeyIdentity {
                id: k.id,
                scopes: k.scopes.clone(),
            }),
        ),
    };
    let organization = match auth.org_id() {
        Some(org_id) => Some(fetch_org(&state.db, org_id).await?),
        None => None,
    };
    Ok(Data::new(MeOut {
        user,
        api_key,
        organization,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    pub password: String,
}

impl Validate for SetPasswordRequest {
    fn validate(&self, v: &mut Violations) {
        v.password("password", &self.password);
    }
}

/// Set a first password for an account that has none (invited, or signed in by code). An
/// account with a password changes it at `/profile/change-password`, which asks for the current
/// one: a stolen access token must not be enough to take an account over. Other sessions end;
/// a fresh session is returned.
#[utoipa::path(post, path = "/auth/set-password", tag = "auth", request_body = SetPasswordRequest,
    responses((status = 200, body = Data<SessionOut>), (status = 401),
        (status = 403, description = "The account already has a password"), (status = 422)))]
async fn set_password(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<SetPasswordRequest>,
) -> ApiResult<Json<Data<SessionOut>>> {
    let user_id = auth.user()?.id;
    let session = replace_password(&state, user_id, body.password, OnlyIfUnset(true)).await?;
    Ok(Data::new(session))
}

/// Whether [`replace_password`] may only set a first password.
pub struct OnlyIfUnset(pub bool);

/// Stores a new password, ends every other session (refresh tokens included) and opens a new
/// one. With `OnlyIfUnset(true)` an account that already has a password is a 403.
pub async fn replace_password(
    state: &AppState,
    user_id: Uuid,
    password: String,
    only_if_unset: OnlyIfUnset,
) -> ApiResult<SessionOut> {
    let hash = hash_password(password).await?;
    let mut tx = state.db.begin().await?;
    let updated = sqlx::query(
        "UPDATE users SET password_hash = $2 WHERE id = $1 AND (NOT $3 OR password_hash IS NULL)",
    )
    .bind(user_id)
    .bind(hash)
    .bind(only_if_unset.0)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::Forbidden(
            "This account already has a password: change it with POST /api/v1/profile/change-password, which asks for the current one".into(),
        ));
    }
    sessions::revoke_all(&mut *tx, user_id).await?;
    let tokens = sessions::issue(state, &mut tx, user_id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user_id, "password changed");
    session_out(state, tokens, user_id).await
}

/// Mark onboarding as completed for the current organization (admin).
#[utoipa::path(post, path = "/auth/complete-onboarding", tag = "auth",
    responses((status = 200, body = Data<OrgOut>), (status = 403)))]
async fn complete_onboarding(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<OrgOut>>> {
    let org_id = auth.authorize(Role::Admin, crate::auth::scopes::ADMIN)?;
    sqlx::query("UPDATE organizations SET onboarding_completed = true WHERE id = $1")
        .bind(org_id)
        .execute(&state.db)
        .await?;
    Ok(Data::new(fetch_org(&state.db, org_id).await?))
}
