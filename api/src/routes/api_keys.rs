//! `/api-keys`: organization API keys (admin only). The full key is returned once, at creation;
//! afterwards only its prefix is shown.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Data;
use crate::{
    auth::{api_keys, scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(update_key, delete_key))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const KEY_COLUMNS: &str =
    "id, name, key_prefix, scopes, enabled, expires_at, last_used_at, created_by, created_at, updated_at";

async fn fetch_key(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<ApiKeyOut> {
    sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("API key"))
}

fn check_scopes(v: &mut Violations, field: &str, list: &[String]) {
    if list.is_empty() {
        v.add(field, "at least one scope is required");
    }
    for s in list {
        if !scopes::ALL.contains(&s.as_str()) {
            v.add_kind(
                field,
                format!(
                    "unknown scope {s:?}; expected one of {}",
                    scopes::ALL.join(", ")
                ),
                "enum",
            );
        }
    }
}

/// List the organization's API keys (admin only).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys",
    responses((status = 200, body = Data<Vec<ApiKeyOut>>), (status = 403)))]
async fn list_keys(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<ApiKeyOut>>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let keys = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(keys))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyRequest {
    pub name: String,
    /// Any of whatsapp:read, whatsapp:write, whatsapp:send, admin.
    pub scopes: Vec<String>,
    /// Optional expiry, in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Validate for CreateKeyRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("name", &self.name, MAX_NAME_LEN);
        check_scopes(v, "scopes", &self.scopes);
        v.future("expiresAt", self.expires_at);
    }
}

/// A new key: the stored fields plus the full key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyOut {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The full key. Store it now: it cannot be shown again.
    #[serde(rename = "key")]
    pub full_key: String,
}

/// Create a new API key (admin only). Returns the full key once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateKeyRequest,
    responses((status = 201, body = Data<CreatedKeyOut>), (status = 403), (status = 422)))]
async fn create_key(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let created_by = match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    };
    let mut scopes_sorted = body.scopes.clone();
    scopes_sorted.sort();
    scopes_sorted.dedup();
    let new_key = api_keys::generate();
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO api_keys (org_id, name, key_prefix, key_hash, scopes, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(org_id)
    .bind(body.name.trim())
    .bind(&new_key.display_prefix)
    .bind(&new_key.hash)
    .bind(&scopes_sorted)
    .bind(body.expires_at)
    .bind(created_by)
    .fetch_one(&state.db)
    .await?;
    tracing::info!(api_key_id = %id, org_id = %org_id, "API key created");
    let key = fetch_key(&state, org_id, id).await?;
    Ok((
        StatusCode::CREATED,
        Data::new(CreatedKeyOut {
            key,
            full_key: new_key.full,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateKeyRequest {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl Validate for UpdateKeyRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        if let Some(list) = &self.scopes {
            check_scopes(v, "scopes", list);
        }
    }
}

/// Update an API key's name, scopes or enabled flag (admin only).
#[utoipa::path(patch, path = "/api-keys/{id}", tag = "api-keys", request_body = UpdateKeyRequest,
    responses((status = 200, body = Data<ApiKeyOut>), (status = 404), (status = 422)))]
async fn update_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<UpdateKeyRequest>,
) -> ApiResult<Json<Data<ApiKeyOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "API key")?;
    let scopes_sorted = body.scopes.map(|mut s| {
        s.sort();
        s.dedup();
        s
    });
    let updated = sqlx::query(
        "UPDATE api_keys SET name = COALESCE($3, name), scopes = COALESCE($4, scopes),
                enabled = COALESCE($5, enabled)
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(scopes_sorted)
    .bind(body.enabled)
    .execute(&state.db)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found("API key"));
    }
    Ok(Data::new(fetch_key(&state, org_id, id).await?))
}

/// Delete an API key permanently (admin only). It stops working at once.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", responses((status = 204), (status = 404)))]
async fn delete_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "API key")?;
    let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&state.db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::not_found("API key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
