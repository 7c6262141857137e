//! The campaign page's download and buttons: the API's CSV export, and pause / resume /
//! cancel through the same control functions as the API (`wharf_shared::campaigns::control`).

use axum::extract::{Path, RawQuery, State};
use wharf_shared::campaigns::control::{self, Outcome};

use super::{parse_uuid, query_org};
use crate::{
    console::{
        page::{self, PageError, PageResult},
        session::{Console, CsrfForm},
    },
    routes::campaigns as api,
    state::AppState,
};

/// `GET /console/campaigns/{id}/export.csv`: the API's CSV export of every recipient.
pub(super) async fn export(
    State(state): State<AppState>,
    console: Console,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let org = console
        .requested_org(query_org(&raw.unwrap_or_default()).as_deref())?
        .ok_or_else(|| PageError::not_found("Campaign"))?;
    let id = parse_uuid(&raw_id, "Campaign")?;
    Ok(api::export_csv(&state.db, org, id, None).await?)
}

#[derive(Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Cancel,
}

/// A control button's POST: the API's control function, then back to the campaign's page
/// with what happened.
async fn act(state: &AppState, form: CsrfForm, raw_id: &str, action: Action) -> PageResult {
    let console = &form.console;
    let org = console.action_org(form.get("org"))?;
    let id = parse_uuid(raw_id, "Campaign")?;
    let back = format!("/console/campaigns/{id}{}", console.org_param(org, '?'));
    if matches!(action, Action::Cancel) && form.get("confirm") != Some("yes") {
        return Ok(page::redirect_with_notice(
            &back,
            "Nothing was cancelled: tick the confirmation box to cancel the campaign.",
        ));
    }
    let db = &state.db;
    let outcome = match action {
        Action::Pause => control::pause(db, org, id).await,
        Action::Resume => control::resume(db, org, id).await,
        Action::Cancel => control::cancel(db, org, id).await,
    }
    .map_err(crate::error::ApiError::from)?;
    let notice = match (outcome, action) {
        (Outcome::NotFound, _) => return Err(PageError::not_found("Campaign")),
        (Outcome::Done, Action::Pause) => {
            "Campaign paused: no message leaves until you resume it.".to_string()
        }
        (Outcome::Done, Action::Resume) => "Campaign resumed.".to_string(),
        (Outcome::Done, Action::Cancel) => {
            "Campaign cancelled: recipients not sent yet are skipped.".to_string()
        }
        (Outcome::WrongState(s), Action::Pause) => api::pause_conflict(&s),
        (Outcome::WrongState(s), Action::Resume) => api::resume_conflict(&s),
        (Outcome::WrongState(s), Action::Cancel) => api::cancel_conflict(&s),
    };
    Ok(page::redirect_with_notice(&back, &notice))
}

/// `POST /console/campaigns/{id}/pause`.
pub(super) async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> PageResult {
    act(&state, form, &id, Action::Pause).await
}

/// `POST /console/campaigns/{id}/resume`.
pub(super) async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> PageResult {
    act(&state, form, &id, Action::Resume).await
}

/// `POST /console/campaigns/{id}/cancel` (with the confirmation box ticked).
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> PageResult {
    act(&state, form, &id, Action::Cancel).await
}
