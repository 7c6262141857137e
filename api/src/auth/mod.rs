//! Who is calling: a user with a JWT access token, or an API key (`cm_...`) sent as a bearer
//! token or in `X-Api-Key`. The [`Auth`] extractor resolves either to a [`Principal`] loaded
//! from the database, and handlers ask it for the access they need with [`Auth::authorize`].

pub mod api_keys;
pub mod jwt;
pub mod sessions;
pub mod throttle;

use std::fmt;

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Roles, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    SuperAdmin,
    Admin,
    Supervisor,
    Agent,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::SuperAdmin => 4,
            Role::Admin => 3,
            Role::Supervisor => 2,
            Role::Agent => 1,
        }
    }

    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "SUPER_ADMIN",
            Role::Admin => "ADMIN",
            Role::Supervisor => "SUPERVISOR",
            Role::Agent => "AGENT",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// API key scopes. `admin` implies every other scope.
pub mod scopes {
    pub const WHATSAPP_READ: &str = "whatsapp:read";
    pub const WHATSAPP_WRITE: &str = "whatsapp:write";
    pub const WHATSAPP_SEND: &str = "whatsapp:send";
    pub const ADMIN: &str = "admin";
    pub const ALL: [&str; 4] = [WHATSAPP_READ, WHATSAPP_WRITE, WHATSAPP_SEND, ADMIN];
}

#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub id: Uuid,
    /// `None` for super admins, who belong to no organization.
    pub org_id: Option<Uuid>,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    pub id: Uuid,
    pub org_id: Uuid,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    User(UserPrincipal),
    ApiKey(KeyPrincipal),
}

/// The authenticated caller. Extracting it answers 401 for missing, invalid or expired
/// credentials, disabled keys and users, and suspended organizations.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// Grants the call when a user has at least `role`, or an API key has `scope` (or `admin`).
    /// Returns the organization the call acts on.
    pub fn authorize(&self, role: Role, scope: &str) -> ApiResult<Uuid> {
        match &self.0 {
            Principal::User(u) => {
                if !u.role.at_least(role) {
                    return Err(ApiError::Forbidden(format!(
                        "This action requires the {role} role"
                    )));
                }
                u.org_id.ok_or_else(|| {
                    ApiError::Forbidden(
                        "Super admins have no organization of their own; use /api/v1/admin/organizations".into(),
                    )
                })
            }
            Principal::ApiKey(k) => {
                if k.scopes.iter().any(|s| s == scope || s == scopes::ADMIN) {
                    Ok(k.org_id)
                } else {
                    Err(ApiError::Forbidden(format!(
                        "This API key lacks the {scope} scope"
                    )))
                }
            }
        }
    }

    /// Endpoints about the caller's own account need a user session, not an API key.
    pub fn user(&self) -> ApiResult<&UserPrincipal> {
        match &self.0 {
            Principal::User(u) => Ok(u),
            Principal::ApiKey(_) => Err(ApiError::Forbidden(
                "This endpoint requires a user session, not an API key".into(),
            )),
        }
    }

    pub fn require_super_admin(&self) -> ApiResult<&UserPrincipal> {
        match &self.0 {
            Principal::User(u) if u.role == Role::SuperAdmin => Ok(u),
            _ => Err(ApiError::Forbidden(
                "This action requires the SUPER_ADMIN role".into(),
            )),
        }
    }

    pub fn org_id(&self) -> Option<Uuid> {
        match &self.0 {
            Principal::User(u) => u.org_id,
            Principal::ApiKey(k) => Some(k.org_id),
        }
    }
}

/// The bearer token or API key a request carries in its headers.
pub fn credential(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

#[derive(sqlx::FromRow)]
struct UserAuthRow {
    id: Uuid,
    org_id: Option<Uuid>,
    role: Role,
    is_active: bool,
    org_status: Option<String>,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Auth::from_token(state, credential(&parts.headers).as_deref()).await
    }
}

impl Auth {
    /// Resolves a bearer token or API key (`None` or empty: not authenticated).
    pub async fn from_token(state: &AppState, token: Option<&str>) -> Result<Self, ApiError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
        if token.starts_with(api_keys::KEY_PREFIX) {
            return api_keys::authenticate(state, token)
                .await
                .map(|k| Auth(Principal::ApiKey(k)));
        }
        let claims = state
            .jwt
            .verify(token)
            .ok_or_else(|| ApiError::Unauthorized("Invalid or expired token".into()))?;
        let row: Option<UserAuthRow> = sqlx::query_as(
            "SELECT u.id, u.org_id, u.role, u.is_active, o.status AS org_status
               FROM users u LEFT JOIN organizations o ON o.id = u.org_id
              WHERE u.id = $1 AND u.deleted_at IS NULL",
        )
        .bind(claims.sub)
        .fetch_optional(&state.db)
        .await?;
        let row = row.ok_or_else(|| ApiError::Unauthorized("Invalid or expired token".into()))?;
        if !row.is_active {
            return Err(ApiError::Unauthorized("This user is deactivated".into()));
        }
        ensure_org_active(row.org_status.as_deref())?;
        Ok(Auth(Principal::User(UserPrincipal {
            id: row.id,
            org_id: row.org_id,
            role: row.role,
        })))
    }
}

/// A suspended or cancelled organization's sessions and keys stop working.
pub fn ensure_org_active(status: Option<&str>) -> ApiResult<()> {
    match status {
        None | Some("ACTIVE") => Ok(()),
        Some(_) => Err(ApiError::Unauthorized(
            "This organization is suspended".into(),
        )),
    }
}

/// Timestamps in responses are RFC 3339 in UTC.
pub type Timestamp = DateTime<Utc>;
