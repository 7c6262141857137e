//! WhatsApp accounts as jobs need them: the number's ids and its decrypted access token.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::crypto::SecretBox;

/// Messages per second Meta allows a number at a throughput level (ARCHITECTURE.md, "Rate limits"):
/// 80 by default, 1,000 after the upgrade, 20 for coexistence numbers.
pub fn rate_for_level(level: Option<&str>) -> i32 {
    match level {
        Some("HIGH") => 1000,
        Some("COEXISTENCE") => 20,
        _ => 80,
    }
}

/// What a job needs to call Meta for one connected number.
#[derive(Debug, Clone)]
pub struct AccountCredentials {
    pub id: Uuid,
    pub org_id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    pub access_token: crate::Secret<String>,
    /// CONNECTED, NEEDS_REAUTH or DISCONNECTED.
    pub status: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    org_id: Uuid,
    waba_id: String,
    phone_number_id: String,
    access_token_enc: String,
    status: String,
}

/// Loads an account's credentials. `Ok(None)` when the account does not exist.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    secrets: &SecretBox,
    account_id: Uuid,
) -> anyhow::Result<Option<AccountCredentials>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, org_id, waba_id, phone_number_id, access_token_enc, status FROM whatsapp_accounts WHERE id = $1",
    )
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let token = secrets.decrypt(&row.access_token_enc)?;
    Ok(Some(AccountCredentials {
        id: row.id,
        org_id: row.org_id,
        waba_id: row.waba_id,
        phone_number_id: row.phone_number_id,
        access_token: crate::Secret::new(token),
        status: row.status,
    }))
}

/// An alert for a human: expired token, quality drop, spam limit, paused template...
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    pub org_id: Uuid,
    pub account_id: Option<Uuid>,
    /// Stable machine name, e.g. `token_expired`, `quality_red`.
    pub kind: &'a str,
    /// INFO, WARNING or CRITICAL.
    pub severity: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    pub details: serde_json::Value,
}

/// Raises an alert. Repeats of the same kind for the same account collapse into the first
/// while it is unacknowledged, so a flood of identical failures is one alert, not thousands.
pub async fn raise_alert(db: impl PgExecutor<'_>, alert: Alert<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO account_alerts (org_id, account_id, kind, severity, title, message, details)
         SELECT $1, $2, $3, $4, $5, $6, $7
          WHERE NOT EXISTS (SELECT 1 FROM account_alerts WHERE org_id = $1 AND account_id IS NOT DISTINCT FROM $2
                              AND kind = $3 AND acknowledged_at IS NULL)",
    )
    .bind(alert.org_id)
    .bind(alert.account_id)
    .bind(alert.kind)
    .bind(alert.severity)
    .bind(alert.title)
    .bind(alert.message)
    .bind(alert.details)
    .execute(db)
    .await?;
    Ok(())
}
