//! `/console`: the queue at a glance. Per lane: queued, running, scheduled, retryable and dead
//! jobs, the oldest waiting job's age and whether the lane is paused; jobs finished per minute
//! over the last hour. The live part refreshes itself every few seconds
//! (`/console/overview/live`, swapped in by `console.js`).

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use wharf_shared::jobs::admin::{self, LaneStats};

use super::{
    chart::{self, Bar},
    page::{self, Chrome, PageResult},
    session::Console,
};
use crate::{error::ApiError, state::AppState};

pub struct LaneRow {
    pub lane: &'static str,
    pub paused: bool,
    pub queued: i64,
    pub running: i64,
    pub scheduled: i64,
    pub retryable: i64,
    pub dead: i64,
    pub oldest: String,
    pub per_minute: i64,
}

/// Seconds as a person reads them: "45 s", "3 min", "2 h 5 min".
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

impl From<&LaneStats> for LaneRow {
    fn from(l: &LaneStats) -> Self {
        let n = |state: &str| l.counts.get(state).copied().unwrap_or(0);
        Self {
            lane: l.lane.as_str(),
            paused: l.paused,
            queued: n("available"),
            running: n("running"),
            scheduled: n("scheduled"),
            retryable: n("retryable"),
            dead: n("dead"),
            oldest: l.oldest_pending_age_secs.map_or_else(|| "—".into(), age),
            per_minute: l.finished_last_minute,
        }
    }
}

/// The part of the page that refreshes itself.
pub struct Live {
    pub lanes: Vec<LaneRow>,
    pub paused: Vec<&'static str>,
    pub oldest: String,
    pub chart: String,
    pub finished_last_hour: i64,
    pub dead_last_hour: i64,
    pub updated_at: String,
}

#[derive(Template)]
#[template(path = "console/overview_fragment.html")]
struct LiveFragment {
    live: Live,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    live: Live,
}

async fn live_data(state: &AppState, console: &Console) -> Result<Live, ApiError> {
    // A super admin's overview covers every tenant and the platform's own jobs.
    let org = console.user.org_id;
    let stats = admin::queue_stats(&state.db, org)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let minutes = admin::throughput_last_hour(&state.db, org)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let bars: Vec<Bar> = minutes
        .iter()
        .map(|m| Bar {
            label: m.minute.format("%H:%M").to_string(),
            value: m.completed as f64,
        })
        .collect();
    let oldest = stats
        .iter()
        .filter_map(|l| l.oldest_pending_age_secs.map(|a| (a, l.lane.as_str())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(
            || "No job is waiting".to_string(),
            |(a, lane)| format!("{} ({lane})", age(a)),
        );
    Ok(Live {
        paused: stats
            .iter()
            .filter(|l| l.paused)
            .map(|l| l.lane.as_str())
            .collect(),
        lanes: stats.iter().map(LaneRow::from).collect(),
        oldest,
        chart: chart::bars("Jobs completed per minute over the last hour", &bars),
        finished_last_hour: minutes.iter().map(|m| m.completed).sum(),
        dead_last_hour: minutes.iter().map(|m| m.dead).sum(),
        updated_at: chrono::Utc::now().format("%H:%M:%S UTC").to_string(),
    })
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, console: Console) -> PageResult {
    let live = live_data(&state, &console).await?;
    Ok(page::render(
        &console,
        &OverviewPage {
            chrome: Chrome::new(&console, "overview", "Overview"),
            live,
        },
    ))
}

/// `GET /console/overview/live`: the self-refreshing fragment.
pub async fn live(
    State(state): State<AppState>,
    console: Console,
) -> Result<Response, page::PageError> {
    let live = live_data(&state, &console).await?;
    Ok(page::html(StatusCode::OK, &LiveFragment { live }))
}
