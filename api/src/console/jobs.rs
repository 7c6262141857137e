//! `/console/jobs`: the job queue for operators. A list filtered by lane, kind, state and (for
//! super admins) organization, newest first; a job's page with its payload, attempts, errors
//! and lease; retry and cancel, one job or the whole filter (behind an "I understand" box);
//! and pausing or resuming a lane behind a confirmation page.
//!
//! Everything goes through `wharf_shared::jobs::admin` and `routes::admin_jobs`, with the same
//! scoping as `/api/v1/admin/jobs`: a super admin sees every tenant, an org admin only their
//! organization's jobs (another org's job is a 404); lanes pause cluster-wide, so only a super
//! admin may (anyone else gets a 403 page and never sees the buttons).

mod detail;
mod lanes;

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{Query, State},
    routing::get,
    Router,
};
use serde::Deserialize;
use uuid::Uuid;
use wharf_shared::jobs::{
    admin::{self, JobFilter, JobSelection},
    JobState, Lane,
};

use super::{
    page::{self, Chrome, PageError, PageResult},
    session::{Console, CsrfForm},
};
use crate::{error::ApiError, state::AppState};

const PAGE_SIZE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/jobs", get(list))
        .route("/console/jobs/bulk", axum::routing::post(bulk))
        .route("/console/jobs/{id}", get(detail::detail))
        .route(
            "/console/jobs/{id}/{action}",
            axum::routing::post(detail::act),
        )
        .route(
            "/console/jobs/lanes/{lane}/{action}",
            get(lanes::lane_confirm).post(lanes::lane_act),
        )
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "—".into(), time)
}

/// The list's filters as typed in the query string (or posted back by the bulk form).
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    lane: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    org: Option<String>,
    page: Option<String>,
}

/// Filters checked and parsed: unknown values are a 400 page, never a 500.
struct Filters {
    lane: Option<Lane>,
    kind: Option<String>,
    state: Option<JobState>,
    org: Option<Uuid>,
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

impl Filters {
    fn parse(
        lane: Option<&str>,
        kind: Option<&str>,
        state: Option<&str>,
        org: Option<&str>,
    ) -> Result<Self, PageError> {
        let bad = |what: &str, v: &str| PageError::bad_request(format!("Unknown {what} “{v}”."));
        Ok(Self {
            lane: non_empty(lane)
                .map(|v| v.parse().map_err(|_| bad("lane", v)))
                .transpose()?,
            kind: non_empty(kind).map(str::to_string),
            state: non_empty(state)
                .map(|v| v.parse().map_err(|_| bad("state", v)))
                .transpose()?,
            org: non_empty(org)
                .map(|v| Uuid::parse_str(v).map_err(|_| bad("organization", v)))
                .transpose()?,
        })
    }

    /// The scope (as the JSON API: `None` for a super admin) and the filter to list with. An
    /// org admin naming another org gets a 404, as in the API.
    fn scoped(&self, console: &Console) -> Result<(Option<Uuid>, JobFilter), PageError> {
        let (scope, filter_org) = if console.is_super_admin() {
            (None, self.org)
        } else {
            (console.org_scope(self.org)?, None)
        };
        Ok((
            scope,
            JobFilter {
                state: self.state,
                kind: self.kind.clone(),
                lane: self.lane,
                org_id: filter_org,
            },
        ))
    }

    /// The query string that reproduces these filters (without the page).
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(l) = self.lane {
            q.append_pair("lane", l.as_str());
        }
        if let Some(k) = &self.kind {
            q.append_pair("kind", k);
        }
        if let Some(s) = self.state {
            q.append_pair("state", s.as_str());
        }
        if let Some(o) = self.org {
            q.append_pair("org", &o.to_string());
        }
        q.finish()
    }
}

pub struct JobRow {
    id: i64,
    kind: String,
    lane: String,
    org: String,
    state: String,
    attempts: String,
    created: String,
    run_at: String,
    last_error: String,
}

pub struct LaneRow {
    lane: &'static str,
    paused: bool,
    queued: i64,
    running: i64,
    dead: i64,
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    chrome: Chrome,
    super_admin: bool,
    lanes: Vec<LaneRow>,
    jobs: Vec<JobRow>,
    total: i64,
    total_label: String,
    paused: Vec<&'static str>,
    page: u32,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    lane_options: Vec<(&'static str, bool)>,
    state_options: Vec<(&'static str, bool)>,
    org_options: Vec<(String, String, bool)>,
    kind: String,
    lane: String,
    state: String,
    org: String,
}

/// `GET /console/jobs`.
async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<JobsQuery>,
) -> PageResult {
    let f = Filters::parse(
        q.lane.as_deref(),
        q.kind.as_deref(),
        q.state.as_deref(),
        q.org.as_deref(),
    )?;
    let page: u32 = match non_empty(q.page.as_deref()) {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .ok_or_else(|| PageError::bad_request("The page must be a number from 1.".into()))?,
    };
    let (scope, filter) = f.scoped(&console)?;
    let list = admin::list_jobs(&state.db, scope, &filter, page, PAGE_SIZE)
        .await
        .map_err(ApiError::from)?;
    let stats = admin::queue_stats(&state.db, scope)
        .await
        .map_err(ApiError::from)?;
    let orgs = if console.is_super_admin() {
        page::org_choices(&state.db).await?
    } else {
        vec![]
    };
    let names: HashMap<Uuid, &str> = orgs.iter().map(|o| (o.id, o.name.as_str())).collect();
    let org_label = |id: Option<Uuid>| match id {
        None => "platform".to_string(),
        Some(id) => names.get(&id).map_or_else(
            || console.org_name.clone().unwrap_or_else(|| id.to_string()),
            |n| n.to_string(),
        ),
    };
    let pages = ((list.total + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE)).max(1);
    let base = f.query();
    let link = |p: u32| {
        if base.is_empty() {
            format!("/console/jobs?page={p}")
        } else {
            format!("/console/jobs?{base}&page={p}")
        }
    };
    let jobs = list
        .jobs
        .iter()
        .map(|j| JobRow {
            id: j.id,
            kind: j.kind.clone(),
            lane: j.lane.clone(),
            org: org_label(j.org_id),
            state: j.state.clone(),
            attempts: format!("{} / {}", j.attempt, j.max_attempts),
            created: time(j.created_at),
            run_at: time(j.run_at),
            last_error: j
                .last_error
                .as_deref()
                .map(|e| e.chars().take(120).collect())
                .unwrap_or_default(),
        })
        .collect();
    let lanes = stats
        .iter()
        .map(|l| {
            let n = |s: &str| l.counts.get(s).copied().unwrap_or(0);
            LaneRow {
                lane: l.lane.as_str(),
                paused: l.paused,
                queued: n("available") + n("scheduled") + n("retryable"),
                running: n("running"),
                dead: n("dead"),
            }
        })
        .collect();
    Ok(page::render(
        &console,
        &JobsPage {
            chrome: Chrome::new(&console, "jobs", "Jobs"),
            super_admin: console.is_super_admin(),
            lanes,
            jobs,
            total: list.total,
            total_label: match list.total {
                1 => "1 job".to_string(),
                n => format!("{n} jobs"),
            },
            paused: stats
                .iter()
                .filter(|l| l.paused)
                .map(|l| l.lane.as_str())
                .collect(),
            page,
            pages,
            prev: (page > 1).then(|| link(page - 1)),
            next: (i64::from(page) < pages).then(|| link(page + 1)),
            lane_options: Lane::ALL
                .iter()
                .map(|l| (l.as_str(), f.lane == Some(*l)))
                .collect(),
            state_options: JobState::ALL
                .iter()
                .map(|s| (s.as_str(), f.state == Some(*s)))
                .collect(),
            org_options: orgs
                .iter()
                .map(|o| (o.id.to_string(), o.name.clone(), f.org == Some(o.id)))
                .collect(),
            kind: f.kind.clone().unwrap_or_default(),
            lane: f.lane.map(|l| l.as_str().to_string()).unwrap_or_default(),
            state: f.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
            org: f.org.map(|o| o.to_string()).unwrap_or_default(),
        },
    ))
}

/// `POST /console/jobs/bulk`: retry or cancel every job of the posted filter, once the
/// "I understand" box is ticked.
async fn bulk(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let f = Filters::parse(
        form.get("lane"),
        form.get("kind"),
        form.get("state"),
        form.get("org"),
    )?;
    let (scope, filter) = f.scoped(&form.console)?;
    let back = match f.query() {
        q if q.is_empty() => "/console/jobs".to_string(),
        q => format!("/console/jobs?{q}"),
    };
    if form.get("confirm") != Some("yes") {
        return Ok(page::redirect_with_notice(
            &back,
            "Nothing changed: tick “I understand” to act on every job of the filter.",
        ));
    }
    let selection = JobSelection::Filter(filter);
    let notice = match form.get("action") {
        Some("retry") => {
            match admin::retry_jobs(&state.db, scope, &selection).await {
                Ok(n) => format!("Retried {n} jobs."),
                // Another unfinished job holds a unique key: nothing was changed.
                Err(wharf_shared::jobs::JobsError::Conflict(m)) => {
                    format!("Nothing retried: {m}.")
                }
                Err(e) => return Err(ApiError::from(e).into()),
            }
        }
        Some("cancel") => {
            let n = admin::cancel_jobs(&state.db, scope, &selection)
                .await
                .map_err(ApiError::from)?;
            format!("Cancelled {n} jobs (running ones are asked to stop).")
        }
        _ => return Err(PageError::bad_request("Unknown action.".into())),
    };
    Ok(page::redirect_with_notice(&back, &notice))
}
