//! The Graph API surface: `/{version}/...` routes, authentication, and the shared plumbing
//! (version check, object dispatch, management budget + `x-business-use-case-usage`).
//!
//! One module per concern: `messages` (send + validation in `validate`), `media`,
//! `templates`, `numbers` (phone numbers, WABA, registration, subscriptions, analytics) and
//! `oauth`. Handlers authenticate first (190 before anything else, as Graph does), then
//! resolve the object (100/33 if unknown), then check the token's scope (10/200).

pub mod media;
pub mod messages;
pub mod numbers;
pub mod oauth;
pub mod templates;
pub mod validate;

use std::time::Instant;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;

use crate::errors::{apply_status_overrides, GraphError, GraphResult};
use crate::faults::{self, Endpoint};
use crate::state::Waba;
use crate::Sim;

/// The Graph API router (including media download URLs).
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/{version}/{id}/messages", post(messages::send))
        .route(
            "/{version}/{id}/media",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::max(120 * 1024 * 1024)),
        )
        .route("/{version}/{id}/register", post(numbers::register))
        .route("/{version}/{id}/deregister", post(numbers::deregister))
        .route("/{version}/{id}/phone_numbers", get(numbers::list_numbers))
        .route(
            "/{version}/{id}/subscribed_apps",
            get(numbers::subscribed_apps)
                .post(numbers::subscribed_apps)
                .delete(numbers::subscribed_apps),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(templates::list)
                .post(templates::create)
                .delete(templates::delete),
        )
        .route("/{version}/oauth/access_token", get(oauth::exchange))
        .route("/{version}/debug_token", get(oauth::debug_token))
        .route(
            "/{version}/{id}",
            get(get_object).post(post_object).delete(delete_object),
        )
        .route("/media-download/{token}", get(media::download))
        .route("/media-lookaside/{id}", get(media::lookaside))
        .layer(middleware::from_fn_with_state(
            sim.clone(),
            apply_status_overrides,
        ))
        .with_state(sim)
}

/// Validates the `vNN.N` prefix; returns the major version.
pub(crate) fn check_version(sim: &Sim, version: &str) -> GraphResult<u32> {
    let bad = || {
        let mut e = GraphError::new(2500, "");
        e.message = Some(format!("Unknown path components: /{version}"));
        e.status(axum::http::StatusCode::BAD_REQUEST)
    };
    let rest = version.strip_prefix('v').ok_or_else(bad)?;
    let (major, minor) = rest.split_once('.').ok_or_else(bad)?;
    let major: u32 = major.parse().map_err(|_| bad())?;
    minor.parse::<u32>().map_err(|_| bad())?;
    if !sim.config.api_version_prefix_any && !sim.config.api_versions.iter().any(|v| v == version) {
        return Err(bad());
    }
    Ok(major)
}

/// The access token of a request (`Authorization: Bearer` or `?access_token=`).
pub(crate) fn token_of<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    if let Some(h) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let h = h.trim();
        if let Some(t) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        {
            return Some(t.trim());
        }
        if let Some(t) = h.strip_prefix("OAuth ") {
            return Some(t.trim());
        }
    }
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
}

/// Checks the request's token exists and is live (no scope check yet).
pub(crate) fn authenticate(sim: &Sim, headers: &HeaderMap, uri: &Uri) -> GraphResult<String> {
    let token = token_of(headers, uri).ok_or_else(|| {
        let mut e = GraphError::new(104, "");
        e.message = Some("An access token is required to request this resource.".into());
        e
    })?;
    sim.check_token(token, None)?;
    Ok(token.to_string())
}

/// Checks the token may act on `waba_id`, with `code` (10 or 200) when it may not.
pub(crate) fn authorize(sim: &Sim, token: &str, waba_id: &str, code: u32) -> GraphResult<()> {
    sim.check_token(token, Some(waba_id)).map_err(|mut e| {
        if e.code == 200 {
            e.code = code;
            e.title = crate::errors::default_title(code).to_string();
        }
        e
    })
}

/// Runs a management call against the WABA's budget and stamps the usage header on the
/// response, whatever it is (80008 when the budget is exhausted).
pub(crate) fn management(waba: &Waba, f: impl FnOnce() -> GraphResult<Response>) -> Response {
    let now = Instant::now();
    let verdict = waba.state.lock().budget.try_call(now);
    let (resp, usage) = match verdict {
        Ok(usage) => (f().unwrap_or_else(IntoResponse::into_response), usage),
        Err(usage) => (
            GraphError::new(
                80008,
                "There have been too many calls to this WhatsApp Business account. Wait a bit and try again.",
            )
            .with("is_transient", true)
            .into_response(),
            usage,
        ),
    };
    let usage = waba
        .state
        .lock()
        .budget
        .usage(now)
        .percent
        .max(usage.percent);
    let minutes = if usage >= 100 {
        waba.state.lock().budget.usage(now).minutes_to_regain
    } else {
        0
    };
    let header = json!({ waba.id.as_str(): [{
        "type": "whatsapp_business_management",
        "call_count": usage,
        "total_cputime": usage / 2,
        "total_time": usage / 2,
        "estimated_time_to_regain_access": minutes,
    }]});
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&header.to_string()) {
        resp.headers_mut().insert("x-business-use-case-usage", v);
    }
    resp
}

/// Applies faults for a request. `Err` is the response to return instead.
pub(crate) async fn faults_for(
    sim: &Sim,
    number_id: &str,
    recipient: Option<&str>,
    endpoint: Endpoint,
) -> Result<Option<faults::FaultAction>, Response> {
    let decision = sim.inner.faults.check(number_id, recipient, endpoint);
    faults::apply(sim, decision).await
}

/// Splits `?fields=a,b,c` (top-level only; nested `x{...}` and `x.y(...)` kept whole).
pub(crate) fn fields_param(query: &HashMap<String, String>) -> Option<Vec<String>> {
    let raw = query.get("fields")?;
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in raw.chars() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Some(out)
}

/// `GET /{v}/{id}`: a media object, phone number, WABA or template.
async fn get_object(
    State(sim): State<Sim>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        if sim.inner.media.read().contains_key(&id) {
            return Ok(media::get_url(&sim, &id, &query, &headers, &uri).await);
        }
        let token = authenticate(&sim, &headers, &uri)?;
        if let Ok(number) = sim.number(&id) {
            return numbers::get_number(&sim, &number, &token, &query).await;
        }
        if let Ok(waba) = sim.waba(&id) {
            authorize(&sim, &token, &waba.id, 200)?;
            return Ok(management(&waba, || numbers::get_waba(&sim, &waba, &query)));
        }
        if let Some(waba_id) = sim.inner.template_owner.read().get(&id).cloned() {
            let waba = sim
                .waba(&waba_id)
                .map_err(|_| GraphError::no_object(&id, "get"))?;
            authorize(&sim, &token, &waba.id, 200)?;
            return Ok(management(&waba, || templates::get_one(&waba, &id, &query)));
        }
        Err(GraphError::no_object(&id, "get"))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /{v}/{id}`: template edit.
async fn post_object(
    State(sim): State<Sim>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(_q): RawQuery,
    body: Bytes,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        let waba_id = sim.inner.template_owner.read().get(&id).cloned();
        let Some(waba) = waba_id.and_then(|w| sim.waba(&w).ok()) else {
            return Err(GraphError::no_object(&id, "post"));
        };
        authorize(&sim, &token, &waba.id, 200)?;
        Ok(management(&waba, || {
            templates::edit(&sim, &waba, &id, &body)
        }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /{v}/{id}`: media deletion.
async fn delete_object(
    State(sim): State<Sim>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
    method: Method,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        media::delete(&sim, &id, &token, &query, method.as_str())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
