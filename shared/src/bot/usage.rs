//! What model calls cost: one `llm_usage` row per call (tokens, cost from the versioned price
//! table, latency), and the organization's tokens this calendar month (UTC) against its limit.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::llm::{pricing, Provider, Usage};

/// One call's record.
pub struct Call<'a> {
    pub org_id: Uuid,
    pub bot_config_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// reply, test, summary, classify, embedding
    pub purpose: &'a str,
    pub provider: Provider,
    pub model: &'a str,
    pub usage: &'a Usage,
    pub latency: Duration,
}

pub async fn record(conn: &mut PgConnection, c: Call<'_>) -> Result<(), sqlx::Error> {
    let cost = pricing::cost_usd(c.provider, c.model, c.usage);
    sqlx::query(
        "INSERT INTO llm_usage (org_id, bot_config_id, conversation_id, purpose, provider, model,
                                input_tokens, output_tokens, cost_usd, price_version, latency_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.org_id)
    .bind(c.bot_config_id)
    .bind(c.conversation_id)
    .bind(c.purpose)
    .bind(c.provider.as_str())
    .bind(c.model)
    .bind(c.usage.input_tokens as i32)
    .bind(c.usage.output_tokens as i32)
    .bind(cost)
    .bind(pricing::PRICE_TABLE_VERSION)
    .bind(c.latency.as_millis().min(i32::MAX as u128) as i32)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first instant of `now`'s month (UTC).
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// Tokens, replies and cost of `org_id` since `from`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Totals {
    pub tokens: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub replies: i64,
    pub calls: i64,
    pub cost_usd: f64,
}

pub async fn totals_since(
    conn: &mut PgConnection,
    org_id: Uuid,
    from: DateTime<Utc>,
) -> Result<Totals, sqlx::Error> {
    totals_between(conn, org_id, from, None).await
}

/// Tokens, replies and cost of `org_id` from `from` until `until` (excluded; `None`: now).
pub async fn totals_between(
    conn: &mut PgConnection,
    org_id: Uuid,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(sum(input_tokens + output_tokens), 0)::bigint AS tokens,
                COALESCE(sum(input_tokens), 0)::bigint AS input_tokens,
                COALESCE(sum(output_tokens), 0)::bigint AS output_tokens,
                count(*) FILTER (WHERE purpose = 'reply') AS replies,
                count(*) AS calls,
                COALESCE(sum(cost_usd), 0)::float8 AS cost_usd
           FROM llm_usage WHERE org_id = $1 AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)",
    )
    .bind(org_id)
    .bind(from)
    .bind(until)
    .fetch_one(conn)
    .await
}

/// Whether the organization used up this month's tokens.
pub async fn over_monthly_limit(
    conn: &mut PgConnection,
    org_id: Uuid,
    limit: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Some(limit) = limit else {
        return Ok(false);
    };
    Ok(totals_since(conn, org_id, month_start(now)).await?.tokens >= limit)
}
