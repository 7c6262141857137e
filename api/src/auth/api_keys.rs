//! API key format and authentication. A key is `cm_` + 40 random URL-safe characters; we keep
//! only its SHA-256 (and a short prefix to tell keys apart in lists).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wharf_shared::crypto;

use super::{ensure_org_active, KeyPrincipal};
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

pub const KEY_PREFIX: &str = "cm_";

/// A new key and the parts we store of it.
pub struct NewKey {
    pub full: String,
    pub display_prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let full = format!("{KEY_PREFIX}{}", crypto::random_token(30));
    let display_prefix = full.chars().take(10).collect();
    let hash = crypto::hash_token(&full);
    NewKey {
        full,
        display_prefix,
        hash,
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    org_id: Uuid,
    scopes: Vec<String>,
    enabled: bool,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    org_status: String,
}

pub async fn authenticate(state: &AppState, key: &str) -> ApiResult<KeyPrincipal> {
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.org_id, k.scopes, k.enabled, k.expires_at, k.last_used_at, o.status AS org_status
           FROM api_keys k JOIN organizations o ON o.id = k.org_id
          WHERE k.key_hash = $1",
    )
    .bind(crypto::hash_token(key))
    .fetch_optional(&state.db)
    .await?;
    let row = row.ok_or_else(|| ApiError::Unauthorized("Invalid API key".into()))?;
    if !row.enabled {
        return Err(ApiError::Unauthorized("This API key is disabled".into()));
    }
    if row.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::Unauthorized("This API key has expired".into()));
    }
    ensure_org_active(Some(&row.org_status))?;
    // Record use at most once a minute per key: a write per request would turn every read
    // into a write under load.
    if row
        .last_used_at
        .is_none_or(|t| Utc::now() - t > chrono::Duration::seconds(60))
    {
        let db = state.db.clone();
        let id = row.id;
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
                .bind(id)
                .execute(&db)
                .await
            {
                tracing::warn!(error = %e, "could not record API key use");
            }
        });
    }
    Ok(KeyPrincipal {
        id: row.id,
        org_id: row.org_id,
        scopes: row.scopes,
    })
}
