//! Pausing and resuming a lane (`/console/jobs/lanes/{lane}/pause|resume`): a confirmation
//! page, then `wharf_shared::jobs::admin::pause_lane` / `resume_lane`, as the JSON API.

use askama::Template;
use axum::extract::{Path, State};
use wharf_shared::jobs::{admin, Lane};

use crate::{
    console::{
        page::{self, Chrome, PageError, PageResult},
        session::{Console, CsrfForm},
    },
    error::ApiError,
    state::AppState,
};

/// Lane actions are cluster-wide: super admins only, exactly as `/admin/queues/{lane}/*`.
fn lane_action(console: &Console, lane: &str, action: &str) -> Result<(Lane, bool), PageError> {
    if !console.is_super_admin() {
        return Err(PageError::forbidden(
            "Pausing and resuming lanes affects every organization; only a super admin may.".into(),
        ));
    }
    let lane: Lane = lane.parse().map_err(|_| PageError::not_found("Lane"))?;
    match action {
        "pause" => Ok((lane, true)),
        "resume" => Ok((lane, false)),
        _ => Err(PageError::not_found("Action")),
    }
}

#[derive(Template)]
#[template(path = "console/jobs_lane_confirm.html")]
struct LaneConfirmPage {
    chrome: Chrome,
    lane: &'static str,
    pause: bool,
    paused_now: bool,
}

/// `GET /console/jobs/lanes/{lane}/pause` (or `/resume`): "Pause lane X?".
pub(super) async fn lane_confirm(
    State(state): State<AppState>,
    console: Console,
    Path((lane, action)): Path<(String, String)>,
) -> PageResult {
    let (lane, pause) = lane_action(&console, &lane, &action)?;
    let stats = admin::queue_stats(&state.db, None)
        .await
        .map_err(ApiError::from)?;
    let paused_now = stats.iter().any(|l| l.lane == lane && l.paused);
    let verb = if pause { "Pause" } else { "Resume" };
    Ok(page::render(
        &console,
        &LaneConfirmPage {
            chrome: Chrome::new(&console, "jobs", format!("{verb} lane {}?", lane.as_str())),
            lane: lane.as_str(),
            pause,
            paused_now,
        },
    ))
}

/// `POST /console/jobs/lanes/{lane}/pause` (or `/resume`).
pub(super) async fn lane_act(
    State(state): State<AppState>,
    Path((lane, action)): Path<(String, String)>,
    form: CsrfForm,
) -> PageResult {
    let (lane, pause) = lane_action(&form.console, &lane, &action)?;
    if pause {
        admin::pause_lane(&state.db, lane)
            .await
            .map_err(ApiError::from)?;
        tracing::warn!(lane = lane.as_str(), user_id = %form.console.user.id, "lane paused from the console");
    } else {
        admin::resume_lane(&state.db, lane)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(lane = lane.as_str(), user_id = %form.console.user.id, "lane resumed from the console");
    }
    let notice = format!(
        "Lane {} {}.",
        lane.as_str(),
        if pause { "paused" } else { "resumed" }
    );
    Ok(page::redirect_with_notice("/console/jobs", &notice))
}
