//! Anthropic's Messages API: `x-api-key` and `anthropic-version` required,
//! `max_tokens` required, roles `user`/`assistant` only (a `system` role is refused),
//! alternation and a user first turn (behind `anthropic_strict_alternation`), every
//! `tool_use` answered by `tool_result` blocks at the start of the next user turn,
//! temperature 0–1. Streams in named events, `message_start` … `message_stop`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::engine::{Conversation, Reply};
use super::http::{
    anthropic_error, event, finish, halves, invalid_key, json_response, latency_and_fault,
    parse_body, pieces, record, sse, success_headers, Received,
};
use super::Provider;
use crate::Sim;

const VERSIONS: &[&str] = &["2023-06-01", "2023-01-01"];

fn bad(message: &str) -> Response {
    anthropic_error(400, "invalid_request_error", message)
}

/// The key and version checks every Anthropic route makes.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key.and_then(|k| sim.llm().key_provider(k)) != Some(Provider::Anthropic) {
        return Err(invalid_key(Provider::Anthropic, key));
    }
    match headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
    {
        None => Err(bad("anthropic-version: header is required")),
        Some(v) if !VERSIONS.contains(&v) => {
            Err(bad(&format!("anthropic-version: invalid version {v}")))
        }
        Some(_) => Ok(()),
    }
}

fn key_of(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

pub(crate) async fn messages(
    State(sim): State<Sim>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = parse_body(&body);
    let json = parsed.clone().unwrap_or(Value::Null);
    let key = key_of(&headers);
    let seq = record(
        &sim,
        Received {
            provider: Provider::Anthropic,
            authenticated: key.and_then(|k| sim.llm().key_provider(k)) == Some(Provider::Anthropic),
            method: "POST",
            path: uri.path(),
            model: json["model"].as_str().map(str::to_string),
            key,
            stream: json["stream"] == true,
            body: &json,
        },
    );
    let response = match authenticate(&sim, &headers) {
        Err(r) => r,
        Ok(()) => answer(&sim, parsed, seq).await,
    };
    finish(&sim, seq, response)
}

async fn answer(sim: &Sim, parsed: Result<Value, String>, seq: u64) -> Response {
    let Ok(Value::Object(body)) = parsed else {
        return bad("There was an error parsing the body of your request: not a JSON object");
    };
    let (conv, model) = match validate(sim, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = latency_and_fault(sim, Provider::Anthropic, &model).await {
        return r;
    }
    let reply = sim.llm().reply(Provider::Anthropic, &conv);
    let id = format!("msg_sim{seq}");
    let tool_id = format!("toolu_sim{seq}");
    if body.get("stream") == Some(&Value::Bool(true)) {
        return sse(
            stream_events(&id, &tool_id, &model, &reply),
            success_headers(Provider::Anthropic),
        );
    }
    let mut content = Vec::new();
    if !reply.text.is_empty() {
        content.push(json!({"type": "text", "text": reply.text}));
    }
    if let Some((name, args)) = &reply.tool_call {
        content.push(json!({"type": "tool_use", "id": tool_id, "name": name, "input": args}));
    }
    let body = json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(&reply), "stop_sequence": null,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"},
    });
    json_response(200, body, success_headers(Provider::Anthropic))
}

fn stop_reason(r: &Reply) -> &'static str {
    if r.tool_call.is_some() {
        "tool_use"
    } else if r.truncated {
        "max_tokens"
    } else {
        "end_turn"
    }
}

/// Content as blocks (a string is one text block).
fn blocks(content: &Value) -> Option<Vec<Value>> {
    match content {
        Value::String(s) => Some(vec![json!({"type": "text", "text": s})]),
        Value::Array(a) => Some(a.clone()),
        _ => None,
    }
}

/// The text of a `tool_result`'s content (a string or text blocks).
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn validate(sim: &Sim, body: &Map<String, Value>) -> Result<(Conversation, String), Response> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("model: Field required"))?;
    let max_tokens = match body.get("max_tokens") {
        None => return Err(bad("max_tokens: Field required")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("max_tokens: Input should be a valid integer"))?,
    };
    if max_tokens == 0 {
        return Err(bad(
            "max_tokens: Input should be greater than or equal to 1",
        ));
    }
    if !sim.llm().knows_model(Provider::Anthropic, model) {
        return Err(anthropic_error(
            404,
            "not_found_error",
            &format!("model: {model}"),
        ));
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&t) {
            return Err(bad("temperature: Input should be less than or equal to 1"));
        }
    }
    let messages = match body.get("messages") {
        None => return Err(bad("messages: Field required")),
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(bad("messages: at least one message is required"))
        }
        Some(Value::Array(m)) => m,
        Some(_) => return Err(bad("messages: Input should be a valid list")),
    };
    let mut conv = Conversation {
        max_tokens: Some(max_tokens as u32),
        ..Default::default()
    };
    match body.get("system") {
        None => {}
        Some(Value::String(s)) => conv.add_input(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|b| b["text"].as_str())
            .for_each(|t| conv.add_input(t)),
        Some(_) => return Err(bad("system: Input should be a valid string")),
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(name) = t["name"].as_str() else {
            return Err(bad(&format!("tools.{i}.name: Field required")));
        };
        if t.get("input_schema").is_none() && t.get("type").is_none() {
            return Err(bad(&format!(
                "tools.{i}.custom.input_schema: Field required"
            )));
        }
        conv.tools.push(name.to_string());
    }
    check_messages(sim, messages, &mut conv)?;
    Ok((conv, model.to_string()))
}

fn check_messages(sim: &Sim, messages: &[Value], conv: &mut Conversation) -> Result<(), Response> {
    let strict = sim.llm().settings().anthropic_strict_alternation;
    let mut previous_role = "";
    let mut open_tool_ids: Vec<String> = Vec::new();
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        match role {
            "user" | "assistant" => {}
            "system" => return Err(bad("messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.")),
            other => return Err(bad(&format!("messages.{i}.role: Input should be 'user' or 'assistant', got {other:?}"))),
        }
        if strict && i == 0 && role != "user" {
            return Err(bad("messages: first message must use the \"user\" role"));
        }
        if strict && role == previous_role {
            return Err(bad(&format!("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row")));
        }
        let Some(content) = blocks(&m["content"]) else {
            return Err(bad(&format!(
                "messages.{i}.content: Input should be a valid list"
            )));
        };
        let empty = content.is_empty()
            || content
                .iter()
                .all(|b| b["type"] == "text" && b["text"].as_str().is_none_or(str::is_empty));
        if empty && !(i == last && role == "assistant") {
            return Err(bad(&format!("messages.{i}: all messages must have non-empty content except for the optional final assistant message")));
        }
        // Tool results: the turn after a tool_use must open with one per id.
        let leading: Vec<&str> = content
            .iter()
            .take_while(|b| b["type"] == "tool_result")
            .map(|b| b["tool_use_id"].as_str().unwrap_or_default())
            .collect();
        for (j, b) in content
            .iter()
            .enumerate()
            .filter(|(_, b)| b["type"] == "tool_result")
        {
            let id = b["tool_use_id"].as_str().unwrap_or_default();
            if role != "user" || !open_tool_ids.iter().any(|o| o == id) {
                return Err(bad(&format!("messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")));
            }
        }
        let missing: Vec<&str> = open_tool_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !leading.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(bad(&format!("messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", missing.join(", "))));
        }
        open_tool_ids.clear();
        let mut text = Vec::new();
        let mut results = Vec::new();
        for b in &content {
            match b["type"].as_str() {
                Some("text") => text.push(b["text"].as_str().unwrap_or_default().to_string()),
                Some("tool_result") => results.push(result_text(&b["content"])),
                Some("tool_use") if role == "assistant" => {
                    let Some(id) = b["id"].as_str() else {
                        return Err(bad(&format!(
                            "messages.{i}.content: tool_use.id: Field required"
                        )));
                    };
                    if !b["input"].is_object() {
                        return Err(bad(&format!("messages.{i}.content: tool_use.input: Input should be a valid dictionary")));
                    }
                    conv.add_input(&b["input"].to_string());
                    open_tool_ids.push(id.to_string());
                }
                _ => {}
            }
        }
        let text = text.join(" ");
        conv.add_input(&text);
        results.iter().for_each(|r| conv.add_input(r));
        if role == "user" {
            if !text.is_empty() {
                conv.last_user_text = text.clone();
            }
            conv.tool_results = if text.is_empty() { results } else { Vec::new() };
        } else {
            conv.tool_results.clear();
        }
        previous_role = role;
    }
    Ok(())
}

/// The documented event order, with a `ping` after `message_start`.
fn stream_events(id: &str, tool_id: &str, model: &str, reply: &Reply) -> Vec<String> {
    let mut out = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    if !reply.text.is_empty() {
        out.push(event("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for p in pieces(&reply.text) {
            out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}})));
        }
        out.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    if let Some((name, args)) = &reply.tool_call {
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
        ));
        let (a, b) = halves(&args.to_string());
        for part in [a, b] {
            out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
        out.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(event(
        "message_delta",
        &json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason(reply), "stop_sequence": null},
        "usage": {"output_tokens": reply.output_tokens}}),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}

/// `GET /v1/models?limit=&after_id=` (newest first in the real API; here in list order).
pub(crate) async fn list_models(sim: &Sim, headers: &HeaderMap, uri: &Uri) -> Response {
    let key = key_of(headers);
    let seq = record(
        sim,
        Received {
            provider: Provider::Anthropic,
            authenticated: key.and_then(|k| sim.llm().key_provider(k)) == Some(Provider::Anthropic),
            method: "GET",
            path: uri.path(),
            model: None,
            key,
            stream: false,
            body: &Value::Null,
        },
    );
    let response = match authenticate(sim, headers) {
        Err(r) => r,
        Ok(()) => match latency_and_fault(sim, Provider::Anthropic, "").await {
            Some(r) => r,
            None => models_page(sim, uri),
        },
    };
    finish(sim, seq, response)
}

fn models_page(sim: &Sim, uri: &Uri) -> Response {
    let query = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let get = |k: &str| query.get(k).map(String::as_str);
    let limit = match get("limit").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return bad("limit: Input should be less than or equal to 1000"),
    };
    let all = sim.llm().models(Provider::Anthropic);
    let start = match get("after_id") {
        Some(after) => all
            .iter()
            .position(|m| m == after)
            .map_or(all.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<&String> = all.iter().skip(start).take(limit).collect();
    let data: Vec<Value> = page
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2026-01-01T00:00:00Z"}))
        .collect();
    json_response(
        200,
        json!({
            "data": data,
            "has_more": start + page.len() < all.len(),
            "first_id": page.first(),
            "last_id": page.last(),
        }),
        success_headers(Provider::Anthropic),
    )
}
