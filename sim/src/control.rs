//! The control API under `/_sim/...`: JSON over HTTP for tests and demos in other
//! processes. Each route is a thin wrapper over a [`Sim`] method, so in-process tests and
//! out-of-process tests drive exactly the same behaviour. Errors are `{"error": "..."}`
//! with 400/404 (this is not the Graph API, so no Meta shapes here).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::FaultSpec;
use crate::inbound::InboundSpec;
use crate::sim::{ControlError, NumberSpec, ReceivedFilter, TemplateSpec, TokenSpec, WabaSpec};
use crate::state::{StatusPlan, WindowMode};
use crate::webhooks::WebhookTarget;
use crate::Sim;

type CResult = Result<Response, ControlError>;

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.error}))).into_response()
    }
}

fn ok(v: Value) -> CResult {
    Ok(Json(v).into_response())
}

/// The `/_sim` router.
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/settings", get(get_settings).patch(patch_settings))
        .route(
            "/_sim/error-statuses",
            axum::routing::delete(clear_error_statuses),
        )
        .route("/_sim/error-statuses/{code}", put(set_error_status))
        .route("/_sim/wabas", post(create_waba))
        .route("/_sim/wabas/{id}/budget", put(set_budget))
        .route(
            "/_sim/wabas/{id}/webhook",
            put(set_waba_webhook).delete(clear_waba_webhook),
        )
        .route(
            "/_sim/wabas/{id}/templates",
            post(seed_template).get(list_templates),
        )
        .route("/_sim/wabas/{id}/account_update", post(account_update))
        .route("/_sim/wabas/{id}/webhooks/{field}", post(raw_webhook))
        .route("/_sim/templates/{id}/status", post(template_status))
        .route("/_sim/numbers", post(create_number))
        .route("/_sim/numbers/{id}", get(get_number).patch(patch_number))
        .route("/_sim/numbers/{id}/inbound", post(inbound))
        .route("/_sim/numbers/{id}/stats", get(number_stats))
        .route("/_sim/numbers/{id}/quality", post(quality))
        .route(
            "/_sim/numbers/{id}/windows/{peer}",
            get(get_window).put(put_window).delete(delete_window),
        )
        .route("/_sim/tokens", post(create_token))
        .route("/_sim/tokens/{token}/revoke", post(revoke_token))
        .route("/_sim/tokens/{token}/expire", post(expire_token))
        .route("/_sim/oauth/codes", post(oauth_code))
        .route(
            "/_sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sim/faults/{id}", axum::routing::delete(remove_fault))
        .route("/_sim/received", get(received).delete(clear_received))
        .route("/_sim/webhooks", get(webhook_log).delete(clear_webhooks))
        .route("/_sim/priced", get(priced))
        .with_state(sim)
}

async fn get_settings(State(sim): State<Sim>) -> CResult {
    ok(serde_json::to_value(sim.settings()).unwrap_or_default())
}

async fn patch_settings(State(sim): State<Sim>, Json(patch): Json<Value>) -> CResult {
    let mut current = serde_json::to_value(sim.settings()).unwrap_or_default();
    let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) else {
        return Err(ControlError::bad("expected a JSON object"));
    };
    for (k, v) in p {
        cur.insert(k.clone(), v.clone());
    }
    let new = serde_json::from_value(current).map_err(|e| ControlError::bad(e.to_string()))?;
    sim.update_settings(|s| *s = new);
    ok(serde_json::to_value(sim.settings()).unwrap_or_default())
}

#[derive(Deserialize)]
struct StatusBody {
    status: u16,
}

async fn set_error_status(
    State(sim): State<Sim>,
    Path(code): Path<u32>,
    Json(b): Json<StatusBody>,
) -> CResult {
    let status = StatusCode::from_u16(b.status).map_err(|e| ControlError::bad(e.to_string()))?;
    sim.set_error_status(code, status);
    ok(json!({"code": code, "status": b.status}))
}

async fn clear_error_statuses(State(sim): State<Sim>) -> CResult {
    sim.clear_error_statuses();
    ok(json!({"success": true}))
}

async fn create_waba(State(sim): State<Sim>, Json(spec): Json<WabaSpec>) -> CResult {
    ok(json!({"id": sim.create_waba(spec)?}))
}

#[derive(Deserialize)]
struct BudgetBody {
    budget: u32,
    #[serde(default)]
    reset: bool,
}

async fn set_budget(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(b): Json<BudgetBody>,
) -> CResult {
    sim.set_management_budget(&id, b.budget, b.reset)?;
    ok(json!({"success": true}))
}

async fn set_waba_webhook(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(t): Json<WebhookTarget>,
) -> CResult {
    sim.set_waba_webhook(&id, Some(t))?;
    ok(json!({"success": true}))
}

async fn clear_waba_webhook(State(sim): State<Sim>, Path(id): Path<String>) -> CResult {
    sim.set_waba_webhook(&id, None)?;
    ok(json!({"success": true}))
}

async fn seed_template(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(spec): Json<TemplateSpec>,
) -> CResult {
    ok(json!({"id": sim.seed_template(&id, spec)?}))
}

async fn list_templates(State(sim): State<Sim>, Path(id): Path<String>) -> CResult {
    ok(json!({"data": sim.templates(&id)?}))
}

async fn account_update(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(v): Json<Value>,
) -> CResult {
    ok(json!({"webhook_id": sim.account_update(&id, v)?}))
}

async fn raw_webhook(
    State(sim): State<Sim>,
    Path((id, field)): Path<(String, String)>,
    Json(v): Json<Value>,
) -> CResult {
    ok(json!({"webhook_id": sim.raw_webhook(&id, &field, v)?}))
}

#[derive(Deserialize)]
struct TemplateStatusBody {
    event: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn template_status(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(b): Json<TemplateStatusBody>,
) -> CResult {
    sim.set_template_status(&id, &b.event, b.reason.as_deref())?;
    ok(json!({"success": true}))
}

async fn create_number(State(sim): State<Sim>, Json(spec): Json<NumberSpec>) -> CResult {
    ok(json!({"id": sim.create_number(spec)?}))
}

async fn get_number(State(sim): State<Sim>, Path(id): Path<String>) -> CResult {
    let config = sim.number_config(&id)?;
    let stats = sim.stats(&id)?;
    let rate = stats.achieved_rate();
    ok(json!({"id": id, "config": config, "stats": stats, "achieved_rate": rate}))
}

/// Partial update of a number.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NumberPatch {
    throughput_level: Option<String>,
    mps: Option<f64>,
    burst: Option<u32>,
    quality_rating: Option<String>,
    messaging_limit: Option<String>,
    registered: Option<bool>,
    pin: Option<String>,
    status: Option<String>,
    webhook: Option<Option<WebhookTarget>>,
    status_plan: Option<Option<StatusPlan>>,
    window_mode: Option<Option<WindowMode>>,
    pair_interval_ms: Option<u64>,
    pair_burst: Option<u32>,
}

async fn patch_number(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(p): Json<NumberPatch>,
) -> CResult {
    if p.throughput_level.is_some() || p.mps.is_some() || p.burst.is_some() {
        sim.set_throughput(&id, p.throughput_level.as_deref(), p.mps, p.burst)?;
    }
    if p.pair_interval_ms.is_some() || p.pair_burst.is_some() {
        sim.set_pair_limit(
            &id,
            Duration::from_millis(p.pair_interval_ms.unwrap_or(6000)),
            p.pair_burst.unwrap_or(45),
        )?;
    }
    sim.update_number(&id, |c| {
        if let Some(q) = p.quality_rating {
            c.quality_rating = q;
        }
        if let Some(l) = p.messaging_limit {
            c.messaging_limit = l;
        }
        if let Some(r) = p.registered {
            c.registered = r;
        }
        if let Some(pin) = p.pin {
            c.pin = pin;
        }
        if let Some(s) = p.status {
            c.status = s;
        }
        if let Some(w) = p.webhook {
            c.webhook = w;
        }
        if let Some(sp) = p.status_plan {
            c.status_plan = sp;
        }
        if let Some(m) = p.window_mode {
            c.window_mode = m;
        }
    })?;
    get_number(State(sim), Path(id)).await
}

async fn inbound(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(spec): Json<InboundSpec>,
) -> CResult {
    ok(serde_json::to_value(sim.inbound(&id, spec)?).unwrap_or_default())
}

async fn number_stats(State(sim): State<Sim>, Path(id): Path<String>) -> CResult {
    let stats = sim.stats(&id)?;
    let mut v = serde_json::to_value(&stats).unwrap_or_default();
    v["achieved_rate"] = json!(stats.achieved_rate());
    ok(v)
}

#[derive(Deserialize)]
struct QualityBody {
    event: String,
    #[serde(default)]
    current_limit: Option<String>,
    #[serde(default)]
    quality: Option<String>,
}

async fn quality(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(b): Json<QualityBody>,
) -> CResult {
    let wid = sim.quality_update(
        &id,
        &b.event,
        b.current_limit.as_deref(),
        b.quality.as_deref(),
    )?;
    ok(json!({"webhook_id": wid}))
}

async fn get_window(State(sim): State<Sim>, Path((id, peer)): Path<(String, String)>) -> CResult {
    let open = sim.window_open(&id, &peer)?;
    let peer_digits = crate::state::normalize_phone(&peer).unwrap_or_default();
    let last = sim.number(&id)?.last_inbound(&peer_digits);
    ok(json!({"open": open, "last_inbound": last}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WindowBody {
    /// Unix seconds of the last inbound message.
    last_inbound: Option<i64>,
    /// Or: how long ago the customer last wrote.
    secs_ago: Option<i64>,
}

async fn put_window(
    State(sim): State<Sim>,
    Path((id, peer)): Path<(String, String)>,
    body: Option<Json<WindowBody>>,
) -> CResult {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let at = b.last_inbound.unwrap_or(now - b.secs_ago.unwrap_or(0));
    sim.set_last_inbound(&id, &peer, Some(at))?;
    get_window(State(sim), Path((id, peer))).await
}

async fn delete_window(
    State(sim): State<Sim>,
    Path((id, peer)): Path<(String, String)>,
) -> CResult {
    sim.close_window(&id, &peer)?;
    ok(json!({"open": false}))
}

async fn create_token(State(sim): State<Sim>, Json(spec): Json<TokenSpec>) -> CResult {
    ok(json!({"token": sim.create_token(spec)}))
}

async fn revoke_token(State(sim): State<Sim>, Path(t): Path<String>) -> CResult {
    sim.revoke_token(&t)?;
    ok(json!({"success": true}))
}

async fn expire_token(State(sim): State<Sim>, Path(t): Path<String>) -> CResult {
    sim.expire_token(&t)?;
    ok(json!({"success": true}))
}

#[derive(Deserialize)]
struct OauthCodeBody {
    code: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    wabas: Option<Vec<String>>,
}

async fn oauth_code(State(sim): State<Sim>, Json(b): Json<OauthCodeBody>) -> CResult {
    let token = b.access_token.unwrap_or_else(|| crate::ids::token("EAAG"));
    sim.register_oauth_code(&b.code, &token, b.wabas);
    ok(json!({"code": b.code, "access_token": token}))
}

async fn add_fault(State(sim): State<Sim>, Json(spec): Json<FaultSpec>) -> CResult {
    ok(json!({"id": sim.add_fault(spec)}))
}

async fn list_faults(State(sim): State<Sim>) -> CResult {
    ok(json!({"data": sim.faults()}))
}

async fn clear_faults(State(sim): State<Sim>, Query(q): Query<HashMap<String, String>>) -> CResult {
    sim.clear_faults(q.get("number_id").map(String::as_str));
    ok(json!({"success": true}))
}

async fn remove_fault(State(sim): State<Sim>, Path(id): Path<u64>) -> CResult {
    if sim.remove_fault(id) {
        ok(json!({"success": true}))
    } else {
        Err(ControlError::not_found("fault", &id.to_string()))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReceivedQuery {
    number_id: Option<String>,
    to: Option<String>,
    accepted: Option<bool>,
    limit: Option<usize>,
    raw: bool,
}

async fn received(State(sim): State<Sim>, Query(q): Query<ReceivedQuery>) -> CResult {
    let filter = ReceivedFilter {
        number_id: q.number_id,
        to: q.to,
        accepted: q.accepted,
        limit: q.limit,
    };
    let list = sim.received(&filter);
    let data: Vec<Value> = list
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if q.raw {
                if let Some(raw) = &r.raw {
                    v["raw"] = serde_json::from_slice(raw)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into()));
                }
            }
            v
        })
        .collect();
    ok(json!({"data": data}))
}

async fn clear_received(State(sim): State<Sim>) -> CResult {
    sim.clear_received();
    ok(json!({"success": true}))
}

async fn webhook_log(State(sim): State<Sim>, Query(q): Query<HashMap<String, String>>) -> CResult {
    let data: Vec<_> = sim
        .webhook_log()
        .into_iter()
        .filter(|d| q.get("field").is_none_or(|f| &d.field == f))
        .filter(|d| {
            q.get("number_id")
                .is_none_or(|n| d.number_id.as_ref() == Some(n))
        })
        .collect();
    ok(json!({"data": data}))
}

async fn clear_webhooks(State(sim): State<Sim>) -> CResult {
    sim.clear_webhook_log();
    ok(json!({"success": true}))
}

async fn priced(State(sim): State<Sim>) -> CResult {
    ok(json!({"data": sim.priced()}))
}
