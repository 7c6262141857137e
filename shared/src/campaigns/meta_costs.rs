//! Meta's real costs of a WABA (`pricing_analytics`), aggregated by country, pricing category
//! and pricing type: read where a person waits for them (`GET /api/v1/campaigns/meta-costs`,
//! `/{id}/meta-cost`, `GET /api/v1/whatsapp/analytics/costs`). Nothing is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    accounts,
    crypto::SecretBox,
    meta::{MetaClient, MetaError},
};

/// One (country, pricing category, pricing type) of Meta's analytics.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub country: Option<String>,
    pub pricing_category: Option<String>,
    pub pricing_type: Option<String>,
    pub volume: i64,
    pub cost: f64,
}

/// A WABA's costs between two instants.
#[derive(Debug, Clone)]
pub struct WabaCosts {
    pub account_id: Uuid,
    pub waba_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub total_cost: f64,
    pub total_volume: i64,
    pub lines: Vec<Line>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("WhatsApp account not found")]
    NotFound,
    /// The account's status (not CONNECTED): asking Meta would only fail.
    #[error("The WhatsApp account is {0}: Meta's costs can be read once it is connected again")]
    NotConnected(String),
    #[error(transparent)]
    Meta(MetaError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// One account per WABA of the organization (the oldest not disconnected), by WABA id.
pub async fn org_accounts(db: &PgPool, org_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT ON (waba_id) id FROM whatsapp_accounts WHERE org_id = $1 AND status <> 'DISCONNECTED' ORDER BY waba_id, created_at",
    )
    .bind(org_id)
    .fetch_all(db)
    .await
}

/// `pricing_analytics` of the account's WABA between two instants (daily granularity),
/// aggregated by (country, pricing category, pricing type).
pub async fn pricing_analytics(
    db: &PgPool,
    secrets: &SecretBox,
    meta: &MetaClient,
    account_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<WabaCosts, Error> {
    let acc = accounts::credentials(db, secrets, account_id)
        .await?
        .ok_or(Error::NotFound)?;
    if acc.status != "CONNECTED" {
        return Err(Error::NotConnected(acc.status));
    }
    let fields = format!(
        "pricing_analytics.start({}).end({}).granularity(DAILY).dimensions(PRICING_CATEGORY,PRICING_TYPE,COUNTRY)",
        start.timestamp(),
        end.timestamp()
    );
    let v = meta
        .get_json(
            acc.access_token.expose(),
            &acc.waba_id,
            &[("fields", fields.as_str())],
        )
        .await
        .map_err(Error::Meta)?;
    type Key = (Option<String>, Option<String>, Option<String>);
    let mut agg: BTreeMap<Key, (i64, f64)> = BTreeMap::new();
    for block in v["pricing_analytics"]["data"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for p in block["data_points"].as_array().into_iter().flatten() {
            let key = (
                p["country"].as_str().map(str::to_string),
                p["pricing_category"].as_str().map(str::to_string),
                p["pricing_type"].as_str().map(str::to_string),
            );
            let e = agg.entry(key).or_default();
            e.0 += p["volume"].as_i64().unwrap_or(0);
            e.1 += p["cost"].as_f64().unwrap_or(0.0);
        }
    }
    let lines: Vec<Line> = agg
        .into_iter()
        .map(
            |((country, pricing_category, pricing_type), (volume, cost))| Line {
                country,
                pricing_category,
                pricing_type,
                volume,
                cost,
            },
        )
        .collect();
    Ok(WabaCosts {
        account_id,
        waba_id: acc.waba_id,
        start,
        end,
        total_cost: lines.iter().map(|l| l.cost).sum(),
        total_volume: lines.iter().map(|l| l.volume).sum(),
        lines,
    })
}
