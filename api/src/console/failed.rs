//! `/console/failed-messages`: one organization's outbound messages that need a human. Filters
//! (error code, account, phone number id, campaign, failure date), a table with Meta's code,
//! title and details in words, retry (a real new send) and discard per row, for the ticked
//! rows, or for the whole filter; statistics by code and by day.
//!
//! Reads and actions are the functions of `routes::failed_messages` (`list_page`, `stats`,
//! `requeue`, `retry_many`, `discard_where`, `ids_matching`), so the page and
//! `/api/v1/messages/failed*` cannot disagree. Discarding is for good, so it goes through a
//! confirmation page (rows) or an "I understand" box (whole filter).

mod actions;

use askama::Template;
use axum::{
    extract::{Query, State},
    routing::{get, post},
    Router,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    chart::{self, Bar},
    page::{self, Chrome, PageError, PageResult},
    session::{Console, CsrfForm},
};
use crate::{
    routes::failed_messages::{list_page, stats, FailedFilter, FailedMessageOut},
    state::AppState,
    validate::Violations,
};

const PATH: &str = "/console/failed-messages";
const TITLE: &str = "Failed messages";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route("/console/failed-messages/act", post(actions::act))
        .route("/console/failed-messages/discard", post(actions::discard))
        .route("/console/failed-messages/filter", post(actions::filter_act))
}

/// The filter fields as the form sends them (query string or posted back).
#[derive(Debug, Default, Deserialize)]
pub struct FailedQuery {
    org: Option<String>,
    code: Option<String>,
    account: Option<String>,
    phone: Option<String>,
    campaign: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
}

impl FailedQuery {
    fn from_form(form: &CsrfForm) -> Self {
        let f = |k: &str| form.get(k).map(str::to_string);
        Self {
            org: f("org"),
            code: f("code"),
            account: f("account"),
            phone: f("phone"),
            campaign: f("campaign"),
            from: f("from"),
            to: f("to"),
            page: None,
        }
    }

    /// The query string that reproduces these filters (and the org), without the page.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("org", &self.org),
            ("code", &self.code),
            ("account", &self.account),
            ("phone", &self.phone),
            ("campaign", &self.campaign),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }

    fn back(&self) -> String {
        match self.query() {
            q if q.is_empty() => PATH.to_string(),
            q => format!("{PATH}?{q}"),
        }
    }

    /// The API's filter for these fields; bad values are a 400 page, as the API's 422.
    fn filter(&self) -> Result<FailedFilter, PageError> {
        fn val(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let bad = |what: &str| PageError::bad_request(format!("The {what} is not valid."));
        let uuid = |v: &Option<String>, what: &str| {
            val(v)
                .map(|s| Uuid::parse_str(s).map_err(|_| bad(what)))
                .transpose()
        };
        let day = |v: &Option<String>, what: &str| {
            val(v)
                .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad(what)))
                .transpose()
        };
        let from = day(&self.from, "“from” date")?;
        let to = day(&self.to, "“to” date")?;
        let filter = FailedFilter {
            error_code: val(&self.code)
                .map(|c| c.parse::<i32>().map_err(|_| bad("error code")))
                .transpose()?,
            account_id: uuid(&self.account, "account")?,
            phone_number_id: val(&self.phone).map(str::to_string),
            campaign_id: uuid(&self.campaign, "campaign")?,
            // Dates are whole UTC days, both ends included.
            from: from
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
            to: to
                .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
                .map(|t| t.and_utc()),
            page: val(&self.page)
                .map(|p| p.parse::<i64>().map_err(|_| bad("page")))
                .transpose()?,
            ..Default::default()
        };
        let mut v = Violations::query();
        filter.check(&mut v);
        v.into_result()?;
        Ok(filter)
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Meta's error in words: its title, and its details (`details`, or `error_data.details` as
/// status webhooks carry them), else its message; nothing that only repeats the title.
fn explain(error: Option<&Value>) -> (String, String) {
    let Some(e) = error else {
        return ("Unknown error".into(), String::new());
    };
    fn s(v: &Value) -> Option<&str> {
        v.as_str().map(str::trim).filter(|v| !v.is_empty())
    }
    let title = s(&e["title"]).unwrap_or("Unknown error").to_string();
    let words = s(&e["details"])
        .or_else(|| s(&e["error_data"]["details"]))
        .or_else(|| s(&e["message"]))
        .filter(|w| w.trim_end_matches('.') != title.trim_end_matches('.'))
        .unwrap_or_default();
    (title, words.to_string())
}

fn n_messages(n: i64) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

pub struct Row {
    id: Uuid,
    contact: String,
    number: String,
    template: String,
    code: String,
    title: String,
    details: String,
    retryable: bool,
    failed_at: String,
    attempts: i32,
}

impl Row {
    fn new(m: &FailedMessageOut, accounts: &[(Uuid, String)]) -> Self {
        let (title, details) = explain(m.error.as_ref());
        Self {
            id: m.id,
            contact: match &m.contact_name {
                Some(n) => format!("{n} (+{})", m.contact_wa_id),
                None => format!("+{}", m.contact_wa_id),
            },
            number: accounts
                .iter()
                .find(|(id, _)| *id == m.account_id)
                .map_or_else(|| m.phone_number_id.clone(), |(_, label)| label.clone()),
            template: m.template_name.clone().unwrap_or_else(|| m.kind.clone()),
            code: m.error_code.map_or_else(|| "—".into(), |c| c.to_string()),
            title,
            details,
            retryable: m.retryable.unwrap_or(false),
            failed_at: time(m.failed_at.or(Some(m.created_at))),
            attempts: m.send_attempts,
        }
    }
}

#[derive(Template)]
#[template(path = "console/failed.html")]
struct FailedPage {
    chrome: Chrome,
    org: String,
    f: Shown,
    /// (id, label, selected).
    accounts: Vec<(String, String, bool)>,
    campaigns: Vec<(String, String, bool)>,
    rows: Vec<Row>,
    total: i64,
    total_label: String,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    stat_total: i64,
    stat_retryable: i64,
    stat_permanent: i64,
    stat_held: i64,
    by_code: Vec<(String, String, bool, i64)>,
    chart: String,
}

/// The filter fields as the form shows them again.
pub struct Shown {
    code: String,
    account: String,
    phone: String,
    campaign: String,
    from: String,
    to: String,
}

impl From<&FailedQuery> for Shown {
    fn from(q: &FailedQuery) -> Self {
        let s = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
        Self {
            code: s(&q.code),
            account: s(&q.account),
            phone: s(&q.phone),
            campaign: s(&q.campaign),
            from: s(&q.from),
            to: s(&q.to),
        }
    }
}

fn options(items: &[(Uuid, String)], selected: Option<Uuid>) -> Vec<(String, String, bool)> {
    items
        .iter()
        .map(|(id, label)| (id.to_string(), label.clone(), selected == Some(*id)))
        .collect()
}

/// `GET /console/failed-messages`.
async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<FailedQuery>,
) -> PageResult {
    let Some(org_id) = console.requested_org(q.org.as_deref())? else {
        return page::pick_org(&state.db, &console, "failed", TITLE, PATH).await;
    };
    let filter = q.filter()?;
    let (messages, paging, total) = list_page(&state, org_id, &filter).await?;
    let st = stats(&state, org_id).await?;
    let accounts: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, coalesce(display_phone, phone_number_id) || ' · ' || phone_number_id
           FROM whatsapp_accounts WHERE org_id = $1 ORDER BY created_at LIMIT 200",
    )
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    let campaigns: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, name FROM campaigns WHERE org_id = $1 ORDER BY created_at DESC LIMIT 200",
    )
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    let (page, limit) = (paging.page(), paging.limit());
    let pages = ((total + limit - 1) / limit).max(1);
    let base = q.query();
    let link = |p: i64| {
        if base.is_empty() {
            format!("{PATH}?page={p}")
        } else {
            format!("{PATH}?{base}&page={p}")
        }
    };
    let bars: Vec<Bar> = st
        .by_day
        .iter()
        .map(|d| Bar {
            label: d.day.clone(),
            value: d.count as f64,
        })
        .collect();
    Ok(page::render(
        &console,
        &FailedPage {
            chrome: Chrome::new(&console, "failed", TITLE),
            org: if console.is_super_admin() {
                org_id.to_string()
            } else {
                String::new()
            },
            rows: messages.iter().map(|m| Row::new(m, &accounts)).collect(),
            accounts: options(&accounts, filter.account_id),
            campaigns: options(&campaigns, filter.campaign_id),
            f: Shown::from(&q),
            total,
            total_label: n_messages(total),
            page,
            pages,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
            stat_total: st.total,
            stat_retryable: st.retryable,
            stat_permanent: st.permanent,
            stat_held: st.held,
            by_code: st
                .by_code
                .iter()
                .map(|c| {
                    (
                        c.code.map_or_else(|| "none".into(), |c| c.to_string()),
                        c.title.clone().unwrap_or_default(),
                        c.retryable,
                        c.count,
                    )
                })
                .collect(),
            chart: chart::bars("Failed messages per day, last 90 days", &bars),
        },
    ))
}
