//! `/_sim/llm/...`: the [`super::LlmSim`] operations as JSON over HTTP, for tests and demos
//! in other processes. Errors are `{"error": "..."}` like the rest of `/_sim`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{LlmFaultSpec, LlmSettings, Provider, RuleSpec};
use crate::sim::ControlError;
use crate::Sim;

type CResult = Result<Response, ControlError>;

fn ok(v: Value) -> CResult {
    Ok(Json(v).into_response())
}

fn provider(s: &str) -> Result<Provider, ControlError> {
    serde_json::from_value(Value::String(s.to_ascii_uppercase()))
        .map_err(|_| ControlError::bad(format!("unknown provider {s}")))
}

pub(crate) fn router() -> Router<Sim> {
    Router::new()
        .route(
            "/_sim/llm/keys",
            post(add_key).get(list_keys).delete(clear_keys),
        )
        .route("/_sim/llm/keys/revoke", post(revoke_key))
        .route(
            "/_sim/llm/rules",
            post(add_rule).get(list_rules).delete(clear_rules),
        )
        .route("/_sim/llm/rules/{id}", delete(remove_rule))
        .route("/_sim/llm/latency", put(set_latency))
        .route(
            "/_sim/llm/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sim/llm/requests", get(requests).delete(clear_requests))
        .route(
            "/_sim/llm/models/{provider}",
            get(get_models).put(put_models),
        )
        .route(
            "/_sim/llm/settings",
            get(get_settings).patch(patch_settings),
        )
        .route("/_sim/llm/reset", post(reset))
}

#[derive(Deserialize)]
struct KeyBody {
    provider: Provider,
    key: String,
}

async fn add_key(State(sim): State<Sim>, Json(b): Json<KeyBody>) -> CResult {
    if b.key.trim().is_empty() {
        return Err(ControlError::bad("key must not be empty"));
    }
    ok(json!({"provider": b.provider, "fingerprint": sim.llm().register_key(b.provider, &b.key)}))
}

#[derive(Deserialize)]
struct RevokeBody {
    key: String,
}

async fn revoke_key(State(sim): State<Sim>, Json(b): Json<RevokeBody>) -> CResult {
    if sim.llm().revoke_key(&b.key) {
        ok(json!({"success": true}))
    } else {
        Err(ControlError::not_found("key", "…"))
    }
}

async fn list_keys(State(sim): State<Sim>) -> CResult {
    let data: Vec<Value> = sim
        .llm()
        .keys()
        .into_iter()
        .map(|(p, f)| json!({"provider": p, "fingerprint": f}))
        .collect();
    ok(json!({"data": data}))
}

async fn clear_keys(State(sim): State<Sim>) -> CResult {
    sim.llm().clear_keys();
    ok(json!({"success": true}))
}

async fn add_rule(State(sim): State<Sim>, Json(spec): Json<RuleSpec>) -> CResult {
    ok(json!({"id": sim.llm().add_rule(spec)}))
}

async fn list_rules(State(sim): State<Sim>) -> CResult {
    ok(json!({"data": sim.llm().rules()}))
}

async fn clear_rules(State(sim): State<Sim>) -> CResult {
    sim.llm().clear_rules();
    ok(json!({"success": true}))
}

async fn remove_rule(State(sim): State<Sim>, Path(id): Path<u64>) -> CResult {
    if sim.llm().remove_rule(id) {
        ok(json!({"success": true}))
    } else {
        Err(ControlError::not_found("rule", &id.to_string()))
    }
}

#[derive(Deserialize)]
struct LatencyBody {
    provider: Provider,
    ms: u64,
}

async fn set_latency(State(sim): State<Sim>, Json(b): Json<LatencyBody>) -> CResult {
    sim.llm()
        .set_latency(b.provider, Duration::from_millis(b.ms));
    ok(json!({"provider": b.provider, "ms": b.ms}))
}

async fn add_fault(State(sim): State<Sim>, Json(spec): Json<LlmFaultSpec>) -> CResult {
    ok(json!({"id": sim.llm().add_fault(spec)}))
}

async fn list_faults(State(sim): State<Sim>) -> CResult {
    ok(json!({"data": sim.llm().faults()}))
}

async fn clear_faults(State(sim): State<Sim>) -> CResult {
    sim.llm().clear_faults();
    ok(json!({"success": true}))
}

async fn requests(State(sim): State<Sim>, Query(q): Query<HashMap<String, String>>) -> CResult {
    let only = q.get("provider").map(|p| provider(p)).transpose()?;
    let mut data = sim.llm().requests(only);
    if let Some(limit) = q.get("limit").and_then(|l| l.parse::<usize>().ok()) {
        let skip = data.len().saturating_sub(limit);
        data.drain(..skip);
    }
    ok(json!({"data": data}))
}

async fn clear_requests(State(sim): State<Sim>) -> CResult {
    sim.llm().clear_requests();
    ok(json!({"success": true}))
}

async fn get_models(State(sim): State<Sim>, Path(p): Path<String>) -> CResult {
    ok(json!({"data": sim.llm().models(provider(&p)?)}))
}

#[derive(Deserialize)]
struct ModelsBody {
    models: Vec<String>,
}

async fn put_models(
    State(sim): State<Sim>,
    Path(p): Path<String>,
    Json(b): Json<ModelsBody>,
) -> CResult {
    let p = provider(&p)?;
    sim.llm().set_models(p, b.models);
    ok(json!({"data": sim.llm().models(p)}))
}

async fn get_settings(State(sim): State<Sim>) -> CResult {
    ok(serde_json::to_value(sim.llm().settings()).unwrap_or_default())
}

async fn patch_settings(State(sim): State<Sim>, Json(patch): Json<Value>) -> CResult {
    let mut current = serde_json::to_value(sim.llm().settings()).unwrap_or_default();
    let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) else {
        return Err(ControlError::bad("expected a JSON object"));
    };
    for (k, v) in p {
        cur.insert(k.clone(), v.clone());
    }
    let new: LlmSettings =
        serde_json::from_value(current).map_err(|e| ControlError::bad(e.to_string()))?;
    sim.llm().update_settings(|s| *s = new);
    ok(serde_json::to_value(sim.llm().settings()).unwrap_or_default())
}

async fn reset(State(sim): State<Sim>) -> CResult {
    sim.llm().reset();
    ok(json!({"success": true}))
}
