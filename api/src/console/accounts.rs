//! `/console/accounts`: the organization's WhatsApp numbers and the alerts about them. Per
//! number: its phone and verified name, status, quality rating, messaging limit tier, the send
//! rate the limiter applies, and whether the number needs a new access token (never the
//! token), as last recorded. "Check with Meta now" runs the same check as
//! `GET /api/v1/whatsapp-accounts/{id}/health` for every number (it refreshes quality, tier and
//! token state); opening the page does not call Meta, so a slow Graph API never slows the page
//! and viewing it spends none of the WABA's call budget. Below, the unacknowledged alerts with
//! Acknowledge and Acknowledge all (the API's own functions).
//!
//! Org-scoped: a super admin picks an organization first and carries `org=` in every link
//! and form.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use uuid::Uuid;
use wharf_shared::outbound;

use super::{
    page::{self, Chrome, PageError, PageResult},
    session::{Console, CsrfForm},
};
use crate::{
    routes::whatsapp_accounts::{self as api, AccountOut, AlertOut},
    state::AppState,
};

const TITLE: &str = "WhatsApp accounts";
const PATH: &str = "/console/accounts";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(accounts_page))
        .route("/console/accounts/check", post(check_now))
        .route(
            "/console/accounts/alerts/acknowledge-all",
            post(acknowledge_all),
        )
        .route(
            "/console/accounts/alerts/{id}/acknowledge",
            post(acknowledge_one),
        )
}

#[derive(Deserialize)]
pub(super) struct OrgQuery {
    org: Option<String>,
}

impl OrgQuery {
    pub(super) fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }
}

/// The organization an org-scoped page shows, with, for a super admin, its name (the page
/// says which one it shows; an org admin's is in the header already). `Ok(None)`: a super
/// admin has not chosen one yet. An unknown organization is a 404.
pub(super) async fn scoped_org_named(
    db: &sqlx::PgPool,
    console: &Console,
    raw: Option<&str>,
) -> Result<Option<(Uuid, Option<String>)>, PageError> {
    let Some(org) = console.requested_org(raw)? else {
        return Ok(None);
    };
    if !console.is_super_admin() {
        return Ok(Some((org, None)));
    }
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_optional(db)
        .await?;
    match name {
        Some(name) => Ok(Some((org, Some(name)))),
        None => Err(PageError::not_found("Organization")),
    }
}

pub struct NumberRow {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub alias: String,
    pub status: String,
    pub status_class: &'static str,
    pub status_reason: String,
    pub quality: String,
    pub quality_class: &'static str,
    pub tier: String,
    pub rate: String,
    pub rate_source: String,
    /// Messages per second actually sent over the last minute.
    pub sending: String,
    pub token: &'static str,
    pub token_class: &'static str,
    pub checked: String,
}

/// "TIER_250" → "250 customers / 24 h (TIER_250)".
fn tier_words(tier: Option<&str>) -> String {
    match tier {
        None => "Not reported".into(),
        Some(t) => match t.strip_prefix("TIER_") {
            Some("UNLIMITED") => format!("Unlimited ({t})"),
            Some(n) => format!("{n} customers / 24 h ({t})"),
            None => t.to_string(),
        },
    }
}

impl From<&AccountOut> for NumberRow {
    fn from(a: &AccountOut) -> Self {
        let needs_token = a.status == "NEEDS_REAUTH";
        Self {
            id: a.id.to_string(),
            phone: a
                .display_phone
                .clone()
                .unwrap_or_else(|| a.phone_number_id.clone()),
            name: a.verified_name.clone().unwrap_or_else(|| "—".into()),
            alias: a.alias.clone().unwrap_or_default(),
            status_class: match a.status.as_str() {
                "CONNECTED" => "ok",
                "NEEDS_REAUTH" => "bad",
                _ => "",
            },
            status: a.status.clone(),
            status_reason: a.status_reason.clone().unwrap_or_default(),
            quality_class: match a.quality_rating.as_deref() {
                Some("GREEN") => "ok",
                Some("YELLOW") => "warn",
                Some("RED") => "bad",
                _ => "",
            },
            quality: a
                .quality_rating
                .clone()
                .unwrap_or_else(|| "Not reported".into()),
            tier: tier_words(a.messaging_limit.as_deref()),
            rate: format!("{} msg/s", a.messages_per_second),
            sending: "idle".into(),
            rate_source: match (a.messages_per_second_override, &a.throughput_level) {
                (Some(_), _) => "set for this number".into(),
                (None, Some(level)) => format!("throughput level {level}"),
                (None, None) => "default throughput level".into(),
            },
            token: if a.status == "DISCONNECTED" {
                "None (disconnected)"
            } else if needs_token {
                "Needs a new token"
            } else {
                "Valid"
            },
            token_class: if needs_token { "bad" } else { "ok" },
            checked: a.last_health_at.map_or_else(
                || "never".into(),
                |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
            ),
        }
    }
}

pub struct AlertRow {
    pub id: String,
    pub created: String,
    pub severity: String,
    pub severity_class: &'static str,
    pub title: String,
    pub message: String,
    pub number: String,
}

fn alert_row(a: &AlertOut, phones: &HashMap<Uuid, String>) -> AlertRow {
    AlertRow {
        id: a.id.to_string(),
        created: a.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        severity_class: match a.severity.as_str() {
            "CRITICAL" | "ERROR" => "bad",
            "WARNING" => "warn",
            _ => "",
        },
        severity: a.severity.clone(),
        title: a.title.clone(),
        message: a.message.clone(),
        number: a
            .account_id
            .and_then(|id| phones.get(&id).cloned())
            .unwrap_or_else(|| "Whole organization".into()),
    }
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct AccountsPage {
    chrome: Chrome,
    org: Option<String>,
    /// The organization's name, for a super admin.
    viewing: Option<String>,
    numbers: Vec<NumberRow>,
    alerts: Vec<AlertRow>,
}

/// `GET /console/accounts`.
async fn accounts_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<OrgQuery>,
) -> PageResult {
    let Some((org_id, viewing)) = scoped_org_named(&state.db, &console, q.org()).await? else {
        return page::pick_org(&state.db, &console, "accounts", TITLE, PATH).await;
    };
    let accounts = api::accounts_of(&state, org_id).await?;
    let phones: HashMap<Uuid, String> = accounts
        .iter()
        .map(|a| {
            (
                a.id,
                a.display_phone
                    .clone()
                    .unwrap_or_else(|| a.phone_number_id.clone()),
            )
        })
        .collect();
    let alerts = api::alerts_of(&state.db, org_id, Some(false)).await?;
    let rates = outbound::recent_send_rates(&state.db, org_id).await?;
    let numbers = accounts
        .iter()
        .map(|a| {
            let mut row = NumberRow::from(a);
            if let Some((_, r)) = rates.iter().find(|(id, _)| *id == a.id) {
                row.sending = format!("{r:.1} msg/s");
            }
            row
        })
        .collect();
    Ok(page::render(
        &console,
        &AccountsPage {
            chrome: Chrome::new(&console, "accounts", TITLE),
            org: console.org_field(org_id),
            viewing,
            numbers,
            alerts: alerts.iter().map(|a| alert_row(a, &phones)).collect(),
        },
    ))
}

/// `POST /console/accounts/alerts/{id}/acknowledge`.
async fn acknowledge_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> PageResult {
    let id = Uuid::parse_str(&id).map_err(|_| PageError::not_found("Alert"))?;
    let org_id = form.console.action_org(form.get("org"))?;
    let alert = api::acknowledge(&state.db, org_id, id, Some(form.console.user.id)).await?;
    Ok(page::redirect_with_notice(
        &form.console.back_to(PATH, org_id),
        &format!("Acknowledged: {}", alert.title),
    ))
}

/// `POST /console/accounts/alerts/acknowledge-all`.
async fn acknowledge_all(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let org_id = form.console.action_org(form.get("org"))?;
    let n = api::acknowledge_all_of(&state.db, org_id, Some(form.console.user.id)).await?;
    let notice = match n {
        0 => "There was no open alert.".to_string(),
        1 => "Acknowledged 1 alert.".to_string(),
        n => format!("Acknowledged {n} alerts."),
    };
    Ok(page::redirect_with_notice(
        &form.console.back_to(PATH, org_id),
        &notice,
    ))
}

/// `POST /console/accounts/check`: every number's health check with Meta, at once (a slow
/// answer costs one timeout, not one per number), then back to the page with what was found.
async fn check_now(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let org_id = form.console.action_org(form.get("org"))?;
    let accounts = api::accounts_of(&state, org_id).await?;
    let healths = futures::future::try_join_all(
        accounts
            .iter()
            .map(|a| api::account_health(&state, org_id, a.id)),
    )
    .await?;
    let answered = healths.iter().filter(|h| h.error.is_none()).count();
    let problems: Vec<String> = healths
        .iter()
        .filter_map(|h| {
            let phone = h
                .account
                .display_phone
                .as_deref()
                .unwrap_or(&h.account.phone_number_id);
            h.error.as_ref().map(|e| format!("{phone}: {e}"))
        })
        .collect();
    let checked = match healths.len() {
        1 => "1 number".to_string(),
        n => format!("{n} numbers"),
    };
    let mut notice = format!("Checked {checked} with Meta: {answered} fine.");
    if !problems.is_empty() {
        notice.push_str(&format!(" Problems: {}.", problems.join("; ")));
    }
    Ok(page::redirect_with_notice(
        &form.console.back_to(PATH, org_id),
        &notice,
    ))
}
