//! Console pages for campaigns (org-scoped; a super admin picks the organization first):
//!
//! - `/console/campaigns`: the organization's campaigns, newest first, with state and progress,
//!   filtered by state or name, paginated (the API's list).
//! - `/console/campaigns/{id}`: one campaign: counts, progress, send rate and funnel live over
//!   SSE (`/events`, the API's progress stream), failures by error code (the API's stats),
//!   pause / resume / cancel (the API's control functions) and the CSV export (`/export.csv`,
//!   the API's export).

use askama::Template;
use axum::{
    extract::{Path, RawQuery, State},
    routing::{get, post},
    Router,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    page::{self, Chrome, PageError, PageResult},
    session::Console,
};
use crate::{
    extract::parse_query,
    routes::campaigns::{self as api, CampaignOut, Counts, ListQuery, Progress},
    state::AppState,
};

mod actions;
mod live;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/campaigns", get(list_page))
        .route("/console/campaigns/{id}", get(detail_page))
        .route("/console/campaigns/{id}/events", get(live::events))
        .route("/console/campaigns/{id}/export.csv", get(actions::export))
        .route("/console/campaigns/{id}/pause", post(actions::pause))
        .route("/console/campaigns/{id}/resume", post(actions::resume))
        .route("/console/campaigns/{id}/cancel", post(actions::cancel))
}

// ---- helpers -----------------------------------------------------------------------------

fn parse_uuid(raw: &str, what: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw.trim()).map_err(|_| PageError::not_found(what))
}

/// The `org` value of a raw query string.
fn query_org(raw: &str) -> Option<String> {
    form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "org")
        .map(|(_, v)| v.into_owned())
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn state_class(status: &str) -> &'static str {
    match status {
        "RUNNING" | "COMPLETED" => "ok",
        "PAUSED" | "SCHEDULED" => "warn",
        "CANCELLED" => "bad",
        _ => "",
    }
}

/// Accepted by Meta: sent, delivered or read (the funnel's first step).
fn accepted(c: &Counts) -> i64 {
    c.sent + c.delivered + c.read
}

fn progress_text(c: &Counts) -> String {
    let pct = if c.total == 0 {
        0.0
    } else {
        accepted(c) as f64 * 100.0 / c.total as f64
    };
    format!("{} of {} sent ({pct:.0}%)", accepted(c), c.total)
}

fn is_final(status: &str) -> bool {
    status == "COMPLETED" || status == "CANCELLED"
}

// ---- list --------------------------------------------------------------------------------

struct Row {
    name: String,
    href: String,
    status: String,
    class: &'static str,
    sent: i64,
    total: i64,
    progress: String,
    created: String,
    started: String,
}

#[derive(Template)]
#[template(path = "console/campaigns.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    states: &'static [&'static str],
    state: String,
    search: String,
    org: Option<String>,
    summary: String,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /console/campaigns?state=&search=&page=&org=`.
async fn list_page(
    State(state): State<AppState>,
    console: Console,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let raw = raw.unwrap_or_default();
    let Some(org) = console.requested_org(query_org(&raw).as_deref())? else {
        return page::pick_org(
            &state.db,
            &console,
            "campaigns",
            "Campaigns",
            "/console/campaigns",
        )
        .await;
    };
    // The page's `state` is the API's `status`.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| match k.as_ref() {
            "state" => ("status".to_string(), v.into_owned()),
            _ => (k.into_owned(), v.into_owned()),
        })
        .filter(|(k, _)| ["status", "search", "page"].contains(&k.as_str()))
        .collect();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let q: ListQuery = parse_query(&query)?;
    let found = api::list(&state.db, org, &q).await?;
    let p = &found.pagination;
    let state_f = q.status.clone().unwrap_or_default();
    let search = q.search.clone().unwrap_or_default();
    let link = |page: i64| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !state_f.is_empty() {
            s.append_pair("state", &state_f);
        }
        if !search.is_empty() {
            s.append_pair("search", &search);
        }
        s.append_pair("page", &page.to_string());
        format!(
            "/console/campaigns?{}{}",
            s.finish(),
            console.org_param(org, '&')
        )
    };
    let rows = found
        .data
        .iter()
        .map(|c| Row {
            name: c.name.clone(),
            href: format!("/console/campaigns/{}{}", c.id, console.org_param(org, '?')),
            status: c.status.clone(),
            class: state_class(&c.status),
            sent: accepted(&c.counts),
            total: c.counts.total,
            progress: progress_text(&c.counts),
            created: when(Some(c.created_at)),
            started: when(c.launched_at),
        })
        .collect();
    let chrome = Chrome::new(&console, "campaigns", "Campaigns");
    Ok(page::render(
        &console,
        &ListPage {
            chrome,
            rows,
            states: &api::STATUSES,
            summary: format!(
                "{} campaign{}, page {} of {}",
                p.total,
                if p.total == 1 { "" } else { "s" },
                p.page,
                p.total_pages.max(1)
            ),
            prev: (p.page > 1).then(|| link(p.page - 1)),
            next: (p.page < p.total_pages).then(|| link(p.page + 1)),
            state: state_f.clone(),
            search: search.clone(),
            org: console.is_super_admin().then(|| org.to_string()),
        },
    ))
}

// ---- detail ------------------------------------------------------------------------------

struct Failure {
    code: String,
    title: String,
    count: i64,
}

#[derive(Template)]
#[template(path = "console/campaign.html")]
struct DetailPage {
    chrome: Chrome,
    id: Uuid,
    org: Option<String>,
    org_q: String,
    status: String,
    class: &'static str,
    facts: Vec<(&'static str, String)>,
    live: Value,
    counts: Counts,
    stream: bool,
    failures: Vec<Failure>,
    failed_href: String,
}

impl DetailPage {
    /// A live value as the page first shows it (the stream then keeps it current).
    fn v(&self, key: &str) -> String {
        match self.live.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "—".into(),
            Some(other) => other.to_string(),
        }
    }
}

/// The campaign in the org the page acts on (404 for another org's or a bad id).
async fn campaign(state: &AppState, org: Uuid, raw_id: &str) -> Result<CampaignOut, PageError> {
    let id = parse_uuid(raw_id, "Campaign")?;
    Ok(api::fetch_campaign(&state.db, org, id).await?)
}

/// `GET /console/campaigns/{id}`.
async fn detail_page(
    State(state): State<AppState>,
    console: Console,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let Some(org) = console.requested_org(query_org(&raw.unwrap_or_default()).as_deref())? else {
        let action = format!("/console/campaigns/{}", parse_uuid(&raw_id, "Campaign")?);
        return page::pick_org(&state.db, &console, "campaigns", "Campaign", &action).await;
    };
    let c = campaign(&state, org, &raw_id).await?;
    let (id, name, status) = (c.id, c.name.clone(), c.status.clone());
    let progress = Progress {
        status: c.status.clone(),
        paused_reason: c.paused_reason.clone(),
        counts: c.counts.clone(),
    };
    let facts = vec![
        (
            "Template",
            format!("{} ({})", c.template_name, c.template_language),
        ),
        ("Created", when(Some(c.created_at))),
        ("Scheduled for", when(c.scheduled_at)),
        ("Started", when(c.launched_at)),
        ("Finished", when(c.completed_at.or(c.cancelled_at))),
        (
            "Recipients rejected at upload",
            c.rejected_count.to_string(),
        ),
        (
            "Estimated cost",
            format!("{:.2} {}", c.estimated_cost, c.currency),
        ),
    ];
    let counts = c.counts.clone();
    let stats = api::stats_of(&state.db, c).await?;
    let failures = stats
        .failures_by_code
        .iter()
        .map(|f| Failure {
            code: f.code.map_or_else(|| "none".into(), |c| c.to_string()),
            title: f.title.clone().unwrap_or_else(|| "(no title)".into()),
            count: f.count,
        })
        .collect();
    let org_q = console.org_param(org, '?');
    Ok(page::render(
        &console,
        &DetailPage {
            chrome: Chrome::new(&console, "campaigns", format!("Campaign: {name}")),
            id,
            org: console.is_super_admin().then(|| org.to_string()),
            class: state_class(&status),
            stream: !is_final(&status),
            live: {
                let mut v = live::live_values(&progress, None);
                for (k, val) in live::funnel_values(&stats.funnel) {
                    v[k] = val;
                }
                v
            },
            failed_href: format!(
                "/console/failed-messages?campaign={id}{}",
                console.org_param(org, '&')
            ),
            org_q,
            status,
            facts,
            counts,
            failures,
        },
    ))
}
