//! A job's page (`/console/jobs/{id}`): its facts, lease and heartbeat, error history and
//! payload; retry and cancel through `routes::admin_jobs::act_on_job_in`, as the JSON API.

use askama::Template;
use axum::extract::{Path, State};
use uuid::Uuid;
use wharf_shared::jobs::{admin, JobState};

use super::{opt_time, time};
use crate::{
    console::{
        page::{self, Chrome, PageError, PageResult},
        session::{Console, CsrfForm},
    },
    error::ApiError,
    routes::admin_jobs::{act_on_job_in, BulkJobAction},
    state::AppState,
};

fn parse_job_id(raw: &str) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError::not_found("Job"))
}

/// As the API: `None` (every org) for a super admin, the own org for an org admin.
pub(super) fn scope(console: &Console) -> Option<Uuid> {
    if console.is_super_admin() {
        None
    } else {
        console.user.org_id
    }
}

#[derive(Template)]
#[template(path = "console/jobs_detail.html")]
struct DetailPage {
    chrome: Chrome,
    id: i64,
    facts: Vec<(&'static str, String)>,
    state: String,
    payload: String,
    errors: Vec<(i32, String, String)>,
    can_retry: bool,
    can_cancel: bool,
}

/// `GET /console/jobs/{id}`.
pub(super) async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_job_id(&id)?;
    let job = admin::get_job(&state.db, scope(&console), id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| PageError::not_found("Job"))?;
    let s = &job.summary;
    let org_name = match s.org_id {
        None => "platform (no organization)".to_string(),
        Some(o) => sqlx::query_scalar::<_, String>("SELECT name FROM organizations WHERE id = $1")
            .bind(o)
            .fetch_optional(&state.db)
            .await?
            .unwrap_or_else(|| o.to_string()),
    };
    let st: Option<JobState> = s.state.parse().ok();
    let facts = vec![
        ("Kind", s.kind.clone()),
        ("Lane", s.lane.clone()),
        ("Organization", org_name),
        ("State", s.state.clone()),
        ("Attempts", format!("{} of {}", s.attempt, s.max_attempts)),
        ("Priority", s.priority.to_string()),
        ("Created", time(s.created_at)),
        ("Runs at", time(s.run_at)),
        ("Last attempt", opt_time(s.attempted_at)),
        ("Finished", opt_time(s.finished_at)),
        (
            "Unique key",
            s.unique_key.clone().unwrap_or_else(|| "—".into()),
        ),
        (
            "Leased by",
            job.attempted_by.clone().unwrap_or_else(|| "—".into()),
        ),
        ("Last heartbeat", opt_time(job.heartbeat_at)),
        ("Lease expires", opt_time(job.lease_expires_at)),
        (
            "Cancel requested",
            if job.cancel_requested { "yes" } else { "no" }.into(),
        ),
    ];
    let mut shown = job.payload.clone();
    mask_secrets(&mut shown);
    let payload = serde_json::to_string_pretty(&shown).unwrap_or_else(|_| shown.to_string());
    Ok(page::render(
        &console,
        &DetailPage {
            chrome: Chrome::new(&console, "jobs", format!("Job {id}")),
            id,
            state: s.state.clone(),
            facts,
            payload,
            errors: job
                .errors
                .iter()
                .map(|e| (e.attempt, time(e.at), e.error.clone()))
                .collect(),
            // The states `retry_jobs` and `cancel_jobs` act on.
            can_retry: matches!(
                st,
                Some(
                    JobState::Dead
                        | JobState::Cancelled
                        | JobState::Retryable
                        | JobState::Scheduled
                )
            ),
            can_cancel: matches!(
                st,
                Some(
                    JobState::Available
                        | JobState::Scheduled
                        | JobState::Retryable
                        | JobState::Running
                )
            ),
        },
    ))
}

/// `POST /console/jobs/{id}/retry` and `/cancel`.
pub(super) async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    form: CsrfForm,
) -> PageResult {
    let id = parse_job_id(&id)?;
    let action = match action.as_str() {
        "retry" => BulkJobAction::Retry,
        "cancel" => BulkJobAction::Cancel,
        _ => return Err(PageError::not_found("Action")),
    };
    let back = format!("/console/jobs/{id}");
    match act_on_job_in(&state, scope(&form.console), id, action).await {
        Ok(_) => Ok(page::redirect_with_notice(
            &back,
            match action {
                BulkJobAction::Retry => "Job retried: it is queued to run now.",
                BulkJobAction::Cancel => "Job cancelled (a running job is asked to stop).",
            },
        )),
        // A state that does not allow it: say so on the job's page.
        Err(ApiError::Conflict(msg)) => Ok(page::redirect_with_notice(&back, &format!("{msg}."))),
        Err(e) => Err(e.into()),
    }
}

/// Payload fields whose name says they hold a credential are shown masked. No job kind carries
/// one today (jobs hold ids); this keeps it so if one ever does.
fn mask_secrets(v: &mut serde_json::Value) {
    const SECRET: [&str; 6] = [
        "token",
        "secret",
        "password",
        "api_key",
        "apikey",
        "authorization",
    ];
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                if SECRET.iter().any(|s| k.contains(s)) && !val.is_null() {
                    *val = serde_json::Value::String("•••• (hidden)".into());
                } else {
                    mask_secrets(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_a_payload_are_masked() {
        let mut v = serde_json::json!({"message_id": "m1", "nested": [{"access_token": "EAAG"}]});
        super::mask_secrets(&mut v);
        assert_eq!(v["message_id"], "m1");
        assert_eq!(v["nested"][0]["access_token"], "•••• (hidden)");
    }
}
