//! The failed-messages page's actions: retry or discard one row, the ticked rows, or the
//! whole filter, through `routes::failed_messages` (`requeue`, `retry_many`, `discard_where`,
//! `ids_matching`), as the JSON API. A discard is confirmed on a page of its own first (rows)
//! or with an "I understand" box (whole filter).

use askama::Template;
use axum::extract::State;
use uuid::Uuid;

use super::{n_messages, FailedQuery, PATH};
use crate::{
    console::{
        page::{self, Chrome, PageError, PageResult},
        session::CsrfForm,
    },
    routes::failed_messages::{
        discard_where, ensure_exists, ids_matching, requeue, retry_many, Requeue,
    },
    state::AppState,
};

fn parse_ids(values: &[&str]) -> Result<Vec<Uuid>, PageError> {
    values
        .iter()
        .map(|v| Uuid::parse_str(v.trim()).map_err(|_| PageError::not_found("Message")))
        .collect()
}

fn retried(done: u64, skipped: u64) -> String {
    match skipped {
        0 => format!(
            "Retried {}: queued for a new send.",
            n_messages(done as i64)
        ),
        _ => format!(
            "Retried {}; {skipped} skipped (no longer failed, or a free-form message outside the 24-hour window).",
            n_messages(done as i64)
        ),
    }
}

#[derive(Template)]
#[template(path = "console/failed_discard_confirm.html")]
struct DiscardConfirm {
    chrome: Chrome,
    org: String,
    back: String,
    ids: Vec<Uuid>,
}

/// `POST /console/failed-messages/act`: a row's Retry or Discard, or the ticked rows'.
pub(super) async fn act(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let org_id = form.console.action_org(form.get("org"))?;
    let back = FailedQuery::from_form(&form).back();
    let (action, ids) = if let Some(id) = form.get("retry_one") {
        ("retry", parse_ids(&[id])?)
    } else if let Some(id) = form.get("discard_one") {
        ("discard", parse_ids(&[id])?)
    } else {
        let ids = parse_ids(&form.all("id"))?;
        match form.get("action") {
            Some("retry_selected") => ("retry", ids),
            Some("discard_selected") => ("discard", ids),
            _ => return Err(PageError::bad_request("Unknown action.".into())),
        }
    };
    if ids.is_empty() {
        return Ok(page::redirect_with_notice(
            &back,
            "Nothing changed: tick the messages first.",
        ));
    }
    if ids.len() > 1000 {
        return Err(PageError::bad_request(
            "At most 1000 messages at once.".into(),
        ));
    }
    if form.get("retry_one").or(form.get("discard_one")).is_some() {
        // One row: another organization's (or a made-up) id is a 404, as in the API.
        ensure_exists(&state, org_id, ids[0]).await?;
    }
    if action == "discard" {
        // Discarding is for good: confirm on a page of its own first.
        let n = ids.len();
        return Ok(page::render(
            &form.console,
            &DiscardConfirm {
                chrome: Chrome::new(
                    &form.console,
                    "failed",
                    format!("Discard {n} message{}?", if n == 1 { "" } else { "s" }),
                ),
                org: form.get("org").unwrap_or_default().to_string(),
                back,
                ids,
            },
        ));
    }
    let notice = if let [id] = ids[..] {
        match requeue(&state, org_id, id, "retry").await? {
            Requeue::Queued => "Retried 1 message: it is queued for a new send.".to_string(),
            Requeue::WindowClosed => "Not retried: the 24-hour customer service window is closed; only a template can reach this customer now.".to_string(),
            Requeue::NotFailed => "Not retried: only failed, not discarded, messages can be retried.".to_string(),
        }
    } else {
        let out = retry_many(&state, org_id, &ids).await?;
        retried(out.queued, out.skipped)
    };
    Ok(page::redirect_with_notice(&back, &notice))
}

/// `POST /console/failed-messages/discard`: the confirmed discard of the listed rows.
pub(super) async fn discard(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let org_id = form.console.action_org(form.get("org"))?;
    let back = form
        .get("back")
        .filter(|b| b.starts_with(PATH))
        .unwrap_or(PATH)
        .to_string();
    let ids = parse_ids(&form.all("id"))?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(PageError::bad_request(
            "Give 1 to 1000 messages to discard.".into(),
        ));
    }
    let n = discard_where(&state, org_id, &ids, Some(form.console.user.id)).await?;
    Ok(page::redirect_with_notice(
        &back,
        &format!("Discarded {}: never sent or retried.", n_messages(n as i64)),
    ))
}

/// `POST /console/failed-messages/filter`: retry or discard every message of the filter,
/// once "I understand" is ticked.
pub(super) async fn filter_act(State(state): State<AppState>, form: CsrfForm) -> PageResult {
    let org_id = form.console.action_org(form.get("org"))?;
    let q = FailedQuery::from_form(&form);
    let back = q.back();
    if form.get("confirm") != Some("yes") {
        return Ok(page::redirect_with_notice(
            &back,
            "Nothing changed: tick “I understand” to act on every message of the filter.",
        ));
    }
    let ids = ids_matching(&state, org_id, &q.filter()?).await?;
    let notice = match form.get("action") {
        Some("retry") => {
            let out = retry_many(&state, org_id, &ids).await?;
            retried(out.queued, out.skipped)
        }
        Some("discard") => {
            let n = discard_where(&state, org_id, &ids, Some(form.console.user.id)).await?;
            format!("Discarded {}: never sent or retried.", n_messages(n as i64))
        }
        _ => return Err(PageError::bad_request("Unknown action.".into())),
    };
    Ok(page::redirect_with_notice(&back, &notice))
}
