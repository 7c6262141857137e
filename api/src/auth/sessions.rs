//! Sessions: an access JWT plus an opaque, rotating refresh token.
//!
//! Each refresh marks the presented token used and issues a new one in the same family. A used
//! token presented again means it was copied: the whole family is revoked, so both the thief
//! and the victim must log in again.

use chrono::{Duration as ChronoDuration, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;
use wharf_shared::crypto;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

const REFRESH_PREFIX: &str = "rt_";

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always "Bearer".
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Issues a new session (new refresh-token family) for a user.
pub async fn issue(
    state: &AppState,
    conn: &mut PgConnection,
    user_id: Uuid,
) -> ApiResult<TokenPair> {
    issue_in_family(state, conn, user_id, Uuid::new_v4()).await
}

async fn issue_in_family(
    state: &AppState,
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
) -> ApiResult<TokenPair> {
    let refresh = format!("{REFRESH_PREFIX}{}", crypto::random_token(32));
    let expires_at = Utc::now()
        + ChronoDuration::from_std(state.config.refresh_token_ttl)
            .unwrap_or(ChronoDuration::days(30));
    sqlx::query(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(family_id)
    .bind(crypto::hash_token(&refresh))
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(TokenPair {
        access_token: state.jwt.issue(user_id, state.config.access_token_ttl),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: state.config.access_token_ttl.as_secs(),
    })
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expired: bool,
    used: bool,
    revoked: bool,
}

/// Exchanges a refresh token for a new pair. Returns the user id with the pair.
pub async fn rotate(state: &AppState, refresh_token: &str) -> ApiResult<(Uuid, TokenPair)> {
    let invalid = || ApiError::Unauthorized("Invalid or expired refresh token".into());
    let mut tx = state.db.begin().await?;
    // Lock the row so two concurrent refreshes with the same token cannot both succeed.
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at <= now() AS expired,
                used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
           FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(crypto::hash_token(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(invalid)?;
    if row.used && !row.revoked {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
            .bind(row.family_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::warn!(user_id = %row.user_id, "refresh token reused; session family revoked");
        return Err(invalid());
    }
    if row.used || row.revoked || row.expired {
        return Err(invalid());
    }
    let active: Option<(bool, Option<String>)> = sqlx::query_as(
        "SELECT u.is_active, o.status FROM users u LEFT JOIN organizations o ON o.id = u.org_id
          WHERE u.id = $1 AND u.deleted_at IS NULL",
    )
    .bind(row.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    match active {
        Some((true, status)) => super::ensure_org_active(status.as_deref())?,
        _ => return Err(invalid()),
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let pair = issue_in_family(state, &mut tx, row.user_id, row.family_id).await?;
    tx.commit().await?;
    Ok((row.user_id, pair))
}

/// Ends every session of a user, console sign-ins included (password change, deletion,
/// deactivation).
pub async fn revoke_all(db: impl sqlx::PgExecutor<'_>, user_id: Uuid) -> ApiResult<()> {
    sqlx::query(
        "WITH console AS (DELETE FROM console_sessions WHERE user_id = $1)
         UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(())
}
