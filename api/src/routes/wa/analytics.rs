//! WhatsApp API: delivery analytics (`/api/v1/whatsapp/analytics/*`), computed by
//! `wharf_shared::campaigns::analytics` from the messages' statuses (moved forward by Meta's
//! status webhooks) and the campaigns' rate-table prices; costs add Meta's pricing analytics
//! (`wharf_shared::campaigns::meta_costs`, as `/api/v1/campaigns/meta-costs` reads them).

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    Json,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    campaigns::{
        analytics::{self, rate},
        meta_costs,
    },
    meta::MetaClient,
};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::ValidQuery,
    routes::campaigns::meta_costs_error,
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(funnel))
        .routes(routes!(timeseries))
        .routes(routes!(costs))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// Only this campaign's messages (the platform's campaign id).
    pub campaign_id: Option<String>,
}

impl Validate for FunnelQuery {
    fn validate(&self, _: &mut Violations) {}
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaFunnel {
    /// Outbound messages accepted by Meta (sent, delivered or read).
    pub sent: i64,
    /// Delivered or read.
    pub delivered: i64,
    pub read: i64,
    /// The customer wrote back after the send.
    pub replied: i64,
    pub failed: i64,
    /// delivered / sent
    pub delivery_rate: f64,
    /// read / delivered
    pub read_rate: f64,
    /// replied / delivered
    pub reply_rate: f64,
}

/// Sent → delivered → read → replied funnel of the organization's outbound messages
/// (`campaign_id`: one campaign's).
#[utoipa::path(get, path = "/whatsapp/analytics/funnel", tag = "whatsapp-api", params(FunnelQuery),
    responses((status = 200, body = WaFunnel), (status = 403), (status = 404)))]
async fn funnel(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<FunnelQuery>,
) -> ApiResult<Json<WaFunnel>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let campaign = match q
        .campaign_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => {
            let id = Uuid::parse_str(raw).map_err(|_| ApiError::not_found("Campaign"))?;
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL)",
            )
            .bind(id)
            .bind(org_id)
            .fetch_one(&state.db)
            .await?;
            if !known {
                return Err(ApiError::not_found("Campaign"));
            }
            Some(id)
        }
    };
    let f = analytics::funnel(&state.db, org_id, campaign).await?;
    Ok(Json(WaFunnel {
        delivery_rate: rate(f.delivered, f.sent),
        read_rate: rate(f.read, f.delivered),
        reply_rate: rate(f.replied, f.delivered),
        sent: f.sent,
        delivered: f.delivered,
        read: f.read,
        replied: f.replied,
        failed: f.failed,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesQuery {
    /// 1 to 90 (default 30): the last N UTC days, today included.
    pub days: Option<String>,
}

impl TimeseriesQuery {
    fn days(&self) -> Option<i32> {
        match self.days.as_deref().map(str::trim) {
            None | Some("") => Some(30),
            Some(s) => s.parse::<i32>().ok().filter(|d| (1..=90).contains(d)),
        }
    }
}

impl Validate for TimeseriesQuery {
    fn validate(&self, v: &mut Violations) {
        if self.days().is_none() {
            v.add("days", "must be a whole number from 1 to 90");
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaDay {
    /// UTC day, YYYY-MM-DD.
    pub date: NaiveDate,
    /// Outbound messages created that day.
    pub outbound: i64,
    /// Of those, accepted by Meta (sent, delivered or read).
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    /// Inbound messages received that day.
    pub received: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaTimeseries {
    pub days: i32,
    /// One entry per day, oldest first.
    pub series: Vec<WaDay>,
}

/// Message volume per UTC day over the last `days` days (1–90, default 30).
#[utoipa::path(get, path = "/whatsapp/analytics/timeseries", tag = "whatsapp-api", params(TimeseriesQuery),
    responses((status = 200, body = WaTimeseries), (status = 403), (status = 422)))]
async fn timeseries(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<TimeseriesQuery>,
) -> ApiResult<Json<WaTimeseries>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    // Checked after the scope, so a key without it hears 403 whatever it asked.
    let mut v = Violations::query();
    q.validate(&mut v);
    v.into_result()?;
    let days = q.days().unwrap_or(30);
    let series = analytics::timeseries(&state.db, org_id, days)
        .await?
        .into_iter()
        .map(|d| WaDay {
            date: d.date,
            outbound: d.outbound,
            sent: d.sent,
            delivered: d.delivered,
            read: d.read,
            failed: d.failed,
            received: d.received,
        })
        .collect();
    Ok(Json(WaTimeseries { days, series }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaCategoryCost {
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// Delivered template messages (Meta charges on delivery).
    pub delivered: i64,
    pub cost: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaMetaCategory {
    /// Meta's pricing category (MARKETING, UTILITY, AUTHENTICATION, SERVICE...).
    pub pricing_category: Option<String>,
    pub volume: i64,
    pub cost: f64,
}

/// What Meta bills one WABA (its `pricing_analytics` over the last 30 days).
#[derive(Debug, Serialize, ToSchema)]
pub struct WaMetaCosts {
    pub waba_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub total_cost: f64,
    pub total_volume: i64,
    pub categories: Vec<WaMetaCategory>,
    /// Why Meta's figures could not be read (then the totals are 0).
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaCosts {
    pub currency: String,
    /// The rate table the prices come from.
    pub rate_table_version: String,
    pub total_cost: f64,
    /// Delivered campaign messages per category at the rate table's prices.
    pub categories: Vec<WaCategoryCost>,
    /// Meta's own figures per WABA of the organization, by pricing category.
    pub meta: Vec<WaMetaCosts>,
}

/// Days of Meta's pricing analytics the costs include.
const META_DAYS: i64 = 30;

async fn meta_figures(state: &AppState, org_id: Uuid) -> ApiResult<Vec<WaMetaCosts>> {
    // Meta's `end` is exclusive and in whole seconds: one second ahead includes this one.
    let end = Utc::now() + chrono::Duration::seconds(1);
    let start = end - chrono::Duration::days(META_DAYS);
    let client = MetaClient::from_config(&state.config);
    let mut out = Vec::new();
    for account in meta_costs::org_accounts(&state.db, org_id).await? {
        let waba_id: String =
            sqlx::query_scalar("SELECT waba_id FROM whatsapp_accounts WHERE id = $1")
                .bind(account)
                .fetch_one(&state.db)
                .await?;
        let mut w = WaMetaCosts {
            waba_id,
            start,
            end,
            total_cost: 0.0,
            total_volume: 0,
            categories: Vec::new(),
            error: None,
        };
        match meta_costs::pricing_analytics(&state.db, &state.secrets, &client, account, start, end)
            .await
        {
            Ok(c) => {
                let mut by: BTreeMap<Option<String>, (i64, f64)> = BTreeMap::new();
                for l in c.lines {
                    let e = by.entry(l.pricing_category).or_default();
                    e.0 += l.volume;
                    e.1 += l.cost;
                }
                w.total_cost = c.total_cost;
                w.total_volume = c.total_volume;
                w.categories = by
                    .into_iter()
                    .map(|(pricing_category, (volume, cost))| WaMetaCategory {
                        pricing_category,
                        volume,
                        cost,
                    })
                    .collect();
            }
            Err(e @ (meta_costs::Error::NotConnected(_) | meta_costs::Error::Meta(_))) => {
                w.error = Some(e.to_string());
            }
            Err(e) => return Err(meta_costs_error(e)),
        }
        out.push(w);
    }
    Ok(out)
}

/// Conversation-based cost breakdown: delivered campaign messages per conversation category,
/// priced by the rate table (utility messages inside an open service window are free), and
/// Meta's own pricing analytics per WABA over the last 30 days (a WABA Meta cannot answer for
/// carries an `error` instead of failing the whole answer).
#[utoipa::path(get, path = "/whatsapp/analytics/costs", tag = "whatsapp-api",
    responses((status = 200, body = WaCosts), (status = 403)))]
async fn costs(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<WaCosts>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rows = analytics::costs(&state.db, org_id).await?;
    let (currency, version) = analytics::cost_basis();
    let total: f64 = rows.iter().map(|r| r.cost).sum();
    let meta = meta_figures(&state, org_id).await?;
    Ok(Json(WaCosts {
        meta,
        currency: currency.into(),
        rate_table_version: version.into(),
        total_cost: (total * 10_000.0).round() / 10_000.0,
        categories: rows
            .into_iter()
            .map(|r| WaCategoryCost {
                category: r.category,
                delivered: r.delivered,
                cost: r.cost,
            })
            .collect(),
    }))
}
