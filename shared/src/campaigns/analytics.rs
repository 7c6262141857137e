//! Delivery analytics over an organization's outbound messages: the funnel (sent → delivered
//! → read → replied), daily volume, and costs per conversation category from the rate table.
//! Read by the WhatsApp API dialect (`/api/v1/whatsapp/analytics/*`).

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use super::pricing;

/// Outbound messages of the organization (optionally one campaign's) by how far they got.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Funnel {
    /// Accepted by Meta (sent, delivered or read).
    pub sent: i64,
    /// Delivered or read.
    pub delivered: i64,
    pub read: i64,
    /// The customer wrote back in that conversation after the send (by when we received it:
    /// Meta's inbound timestamps have whole seconds).
    pub replied: i64,
    pub failed: i64,
}

/// Rounded to four decimals; 0 when `of` is 0.
pub fn rate(part: i64, of: i64) -> f64 {
    if of == 0 {
        0.0
    } else {
        ((part as f64 / of as f64) * 10_000.0).round() / 10_000.0
    }
}

/// The funnel of outbound messages (`campaign_id`: only that campaign's).
pub async fn funnel(
    db: &PgPool,
    org_id: Uuid,
    campaign_id: Option<Uuid>,
) -> Result<Funnel, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE m.status IN ('sent', 'delivered', 'read')) AS sent,
                count(*) FILTER (WHERE m.status IN ('delivered', 'read')) AS delivered,
                count(*) FILTER (WHERE m.status = 'read') AS read,
                count(*) FILTER (WHERE m.sent_at IS NOT NULL AND m.status <> 'failed' AND EXISTS (
                    SELECT 1 FROM messages i WHERE i.conversation_id = m.conversation_id
                       AND i.direction = 'INBOUND' AND greatest(i.created_at, i.received_at) > m.sent_at)) AS replied,
                count(*) FILTER (WHERE m.status = 'failed') AS failed
           FROM messages m
          WHERE m.org_id = $1 AND m.direction = 'OUTBOUND' AND ($2::uuid IS NULL OR m.campaign_id = $2)",
    )
    .bind(org_id)
    .bind(campaign_id)
    .fetch_one(db)
    .await
}

/// One UTC day of message volume.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Day {
    pub date: NaiveDate,
    /// Outbound messages created that day (whatever became of them).
    pub outbound: i64,
    /// Of those, accepted by Meta.
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    /// Inbound messages received that day.
    pub received: i64,
}

/// Daily volume of the last `days` UTC days (today included), oldest first, every day listed.
pub async fn timeseries(db: &PgPool, org_id: Uuid, days: i32) -> Result<Vec<Day>, sqlx::Error> {
    sqlx::query_as(
        "WITH d AS (SELECT generate_series((now() AT TIME ZONE 'UTC')::date - ($2 - 1), (now() AT TIME ZONE 'UTC')::date,
                                           interval '1 day')::date AS date),
              m AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS date, direction, status FROM messages
                     WHERE org_id = $1 AND created_at >= ((now() AT TIME ZONE 'UTC')::date - ($2 - 1))::timestamp AT TIME ZONE 'UTC')
         SELECT d.date,
                count(m.*) FILTER (WHERE m.direction = 'OUTBOUND') AS outbound,
                count(m.*) FILTER (WHERE m.direction = 'OUTBOUND' AND m.status IN ('sent', 'delivered', 'read')) AS sent,
                count(m.*) FILTER (WHERE m.direction = 'OUTBOUND' AND m.status IN ('delivered', 'read')) AS delivered,
                count(m.*) FILTER (WHERE m.direction = 'OUTBOUND' AND m.status = 'read') AS read,
                count(m.*) FILTER (WHERE m.direction = 'OUTBOUND' AND m.status = 'failed') AS failed,
                count(m.*) FILTER (WHERE m.direction = 'INBOUND') AS received
           FROM d LEFT JOIN m ON m.date = d.date
          GROUP BY d.date ORDER BY d.date",
    )
    .bind(org_id)
    .bind(days)
    .fetch_all(db)
    .await
}

/// Delivered campaign messages of one conversation category, priced by the rate table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CategoryCost {
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// Delivered (or read) messages: Meta charges on delivery.
    pub delivered: i64,
    /// USD, the unit price each recipient was priced at (free utility inside an open window).
    pub cost: f64,
}

/// Costs per conversation category of the organization's delivered campaign messages (every
/// category listed, also at zero), with the rate table's currency and version.
pub async fn costs(db: &PgPool, org_id: Uuid) -> Result<Vec<CategoryCost>, sqlx::Error> {
    let rows: Vec<CategoryCost> = sqlx::query_as(
        "SELECT c.template_category AS category, count(*) AS delivered,
                coalesce(sum(r.unit_cost), 0)::float8 AS cost
           FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id
           JOIN messages m ON m.id = r.message_id
          WHERE r.org_id = $1 AND m.status IN ('delivered', 'read')
          GROUP BY c.template_category",
    )
    .bind(org_id)
    .fetch_all(db)
    .await?;
    let mut out: Vec<CategoryCost> = ["MARKETING", "UTILITY", "AUTHENTICATION"]
        .iter()
        .map(|c| {
            rows.iter()
                .find(|r| r.category == *c)
                .cloned()
                .unwrap_or(CategoryCost {
                    category: c.to_string(),
                    delivered: 0,
                    cost: 0.0,
                })
        })
        .collect();
    for r in &mut out {
        r.cost = (r.cost * 10_000.0).round() / 10_000.0;
    }
    Ok(out)
}

/// The currency and rate table version costs are given in.
pub fn cost_basis() -> (&'static str, &'static str) {
    (pricing::CURRENCY, pricing::RATE_TABLE_VERSION)
}
