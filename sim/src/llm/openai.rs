//! OpenAI's Chat Completions, Embeddings and Models, as OpenAI, DeepSeek, Kimi and local
//! servers serve them. Which provider a request is for comes from its key (keys are
//! registered per provider); a request without a key is LOCAL (`local_keyless`). Checks per
//! the providers' documentation: roles, tool pairing, argument strings, `max_tokens` vs
//! `max_completion_tokens`, fixed temperatures, `stream_options`, unknown fields (OpenAI
//! only: vLLM and Ollama accept extras), unknown models.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::engine::{tokens, Conversation, Reply};
use super::http::{
    bearer, compat_error, data, finish, halves, invalid_key, json_response, latency_and_fault,
    now_secs, openai_error, parse_body, pieces, record, sse, success_headers, Received,
};
use super::{anthropic, embed_text, Provider};
use crate::Sim;

/// Top-level fields OpenAI accepts on `/v1/chat/completions`.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "service_tier",
    "store",
    "metadata",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    "functions",
    "function_call",
];

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Why a key was not accepted.
enum AuthFail {
    Refused,
    /// A real key used on a path its provider does not serve (OpenAI has no `/chat/completions`).
    WrongPath,
}

/// The provider a request is for, and whether its key is accepted there. `root`: the path
/// has no `/v1` (DeepSeek's documented base, or a local server's).
fn resolve(
    sim: &Sim,
    key: Option<&str>,
    root: bool,
    model: Option<&str>,
) -> (Provider, Result<(), AuthFail>) {
    let guess = || {
        if root {
            Provider::DeepSeek
        } else if model.is_some_and(|m| m.starts_with("kimi") || m.starts_with("moonshot")) {
            Provider::Kimi
        } else {
            Provider::OpenAi
        }
    };
    let Some(key) = key else {
        return if sim.llm().settings().local_keyless {
            (Provider::Local, Ok(()))
        } else {
            (guess(), Err(AuthFail::Refused))
        };
    };
    match sim.llm().key_provider(key) {
        Some(p @ (Provider::DeepSeek | Provider::Local)) => (p, Ok(())),
        Some(p @ (Provider::OpenAi | Provider::Kimi)) if root => (p, Err(AuthFail::WrongPath)),
        Some(p @ (Provider::OpenAi | Provider::Kimi)) => (p, Ok(())),
        _ => (guess(), Err(AuthFail::Refused)),
    }
}

fn auth_error(
    provider: Provider,
    fail: AuthFail,
    key: Option<&str>,
    method: &str,
    path: &str,
) -> Response {
    match fail {
        AuthFail::Refused => invalid_key(provider, key),
        AuthFail::WrongPath => compat_error(
            provider,
            404,
            &format!("Invalid URL ({method} {path})"),
            None,
            None,
        ),
    }
}

fn is_reasoning(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p))
}

fn is_embedding_model(provider: Provider, model: &str) -> bool {
    match provider {
        Provider::OpenAi => model.starts_with("text-embedding"),
        _ => true, // a local server embeds with whatever model it has
    }
}

/// The text of a `content` (a string or an array of parts).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn unknown_model(provider: Provider, model: &str) -> Response {
    match provider {
        Provider::OpenAi => openai_error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ),
        Provider::DeepSeek => {
            openai_error(400, "Model Not Exist", "invalid_request_error", None, None)
        }
        Provider::Kimi => compat_error(
            provider,
            404,
            &format!("Not found the model {model} or Permission denied"),
            None,
            None,
        ),
        _ => openai_error(
            404,
            &format!("model \"{model}\" not found, try pulling it first"),
            "api_error",
            None,
            None,
        ),
    }
}

fn bad(provider: Provider, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    compat_error(provider, 400, message, param, code)
}

struct Parsed {
    conv: Conversation,
    model: String,
    stream: bool,
    include_usage: bool,
}

/// The model named by the body, known to the provider.
fn model_of(sim: &Sim, provider: Provider, body: &Map<String, Value>) -> Result<String, Response> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad(provider, "you must provide a model parameter", None, None))?;
    if !sim.llm().knows_model(provider, model) {
        return Err(unknown_model(provider, model));
    }
    Ok(model.to_string())
}

fn validate_chat(
    sim: &Sim,
    provider: Provider,
    body: &Map<String, Value>,
) -> Result<Parsed, Response> {
    if provider == Provider::OpenAi {
        if let Some(k) = body.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(bad(
                provider,
                &format!("Unrecognized request argument supplied: {k}"),
                None,
                None,
            ));
        }
    }
    let model = model_of(sim, provider, body)?;
    if provider == Provider::OpenAi && model.starts_with("text-embedding") {
        return Err(openai_error(404, "This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?", "invalid_request_error", Some("model"), None));
    }
    let messages = match body.get("messages") {
        None => return Err(bad(provider, "Missing required parameter: 'messages'.", Some("messages"), Some("missing_required_parameter"))),
        Some(Value::Array(m)) if m.is_empty() => return Err(bad(provider, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", Some("messages"), Some("empty_array"))),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(bad(provider, "Invalid type for 'messages': expected an array of objects.", Some("messages"), Some("invalid_type"))),
    };
    let mut conv = Conversation::default();
    check_messages(provider, messages, &mut conv)?;
    check_parameters(provider, &model, body)?;
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = t["function"]["name"]
            .as_str()
            .filter(|_| t["type"] == "function");
        let Some(name) = name else {
            return Err(bad(
                provider,
                &format!("Missing required parameter: 'tools[{i}].function.name'."),
                Some(&format!("tools[{i}].function.name")),
                Some("missing_required_parameter"),
            ));
        };
        conv.tools.push(name.to_string());
    }
    conv.max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n as u32);
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let include_usage = body
        .get("stream_options")
        .is_some_and(|o| o["include_usage"] == true);
    Ok(Parsed {
        conv,
        model,
        stream,
        include_usage,
    })
}

/// Roles, content, tool-call shape and pairing; fills the conversation.
fn check_messages(
    provider: Provider,
    messages: &[Value],
    conv: &mut Conversation,
) -> Result<(), Response> {
    let mut pending: Vec<String> = Vec::new();
    let mut in_tool_block = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(bad(provider, &format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."), Some(&format!("messages[{i}].role")), Some("invalid_value")));
        }
        if role == "tool" {
            if !in_tool_block {
                return Err(bad(provider, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", Some(&format!("messages.[{i}].role")), None));
            }
            let id = m["tool_call_id"].as_str().unwrap_or_default();
            pending.retain(|p| p != id);
            let content = text_of(&m["content"]);
            conv.add_input(&content);
            conv.tool_results.push(content);
            continue;
        }
        if !pending.is_empty() {
            return Err(bad(provider, &format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", pending.join(", ")), Some(&format!("messages.[{i}].role")), None));
        }
        in_tool_block = false;
        conv.tool_results.clear();
        let calls = m
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty());
        if m["content"].is_null() && !(role == "assistant" && calls.is_some()) {
            return Err(bad(
                provider,
                "Invalid value for 'content': expected a string, got null.",
                Some(&format!("messages.[{i}].content")),
                None,
            ));
        }
        let text = text_of(&m["content"]);
        conv.add_input(&text);
        if role == "user" {
            conv.last_user_text = text;
        }
        if let Some(calls) = calls.filter(|_| role == "assistant") {
            for (j, c) in calls.iter().enumerate() {
                let Some(args) = c["function"]["arguments"].as_str() else {
                    return Err(bad(provider, &format!("Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': expected a string, but got {} instead.", kind(&c["function"]["arguments"])), Some(&format!("messages[{i}].tool_calls[{j}].function.arguments")), Some("invalid_type")));
                };
                let id = c["id"].as_str().unwrap_or_default();
                if id.is_empty() {
                    return Err(bad(
                        provider,
                        &format!("Missing required parameter: 'messages[{i}].tool_calls[{j}].id'."),
                        Some(&format!("messages[{i}].tool_calls[{j}].id")),
                        Some("missing_required_parameter"),
                    ));
                }
                conv.add_input(args);
                pending.push(id.to_string());
            }
            in_tool_block = true;
        }
    }
    if !pending.is_empty() {
        return Err(bad(provider, &format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", pending.join(", ")), Some("messages"), None));
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Per-model parameters.
fn check_parameters(
    provider: Provider,
    model: &str,
    body: &Map<String, Value>,
) -> Result<(), Response> {
    let temperature = body.get("temperature").and_then(Value::as_f64);
    if provider == Provider::OpenAi && is_reasoning(model) {
        if body.contains_key("max_tokens") {
            return Err(bad(provider, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", Some("max_tokens"), Some("unsupported_parameter")));
        }
        if let Some(t) = temperature.filter(|t| (*t - 1.0).abs() > f64::EPSILON) {
            return Err(bad(provider, &format!("Unsupported value: 'temperature' does not support {t} with this model. Only the default (1) value is supported."), Some("temperature"), Some("unsupported_value")));
        }
    }
    if provider == Provider::Kimi {
        if model.starts_with("kimi-") {
            if temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
                return Err(compat_error(
                    provider,
                    400,
                    "invalid temperature: only 1 is allowed for this model",
                    None,
                    None,
                ));
            }
        } else if temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(compat_error(
                provider,
                400,
                "Invalid request: temperature must be in [0, 1]",
                None,
                None,
            ));
        }
    }
    if let Some(t) = temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(bad(provider, &format!("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."), Some("temperature"), Some("decimal_above_max_value")));
        }
    }
    if body.contains_key("stream_options") && body.get("stream") != Some(&Value::Bool(true)) {
        return Err(bad(
            provider,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            Some("stream_options"),
            Some("invalid_value"),
        ));
    }
    Ok(())
}

pub(crate) async fn chat(
    State(sim): State<Sim>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let parsed = parse_body(&body);
    let json = parsed.clone().unwrap_or(Value::Null);
    let model = json["model"].as_str().map(str::to_string);
    let key = bearer(&headers);
    let (provider, auth) = resolve(&sim, key, !path.starts_with("/v1/"), model.as_deref());
    let seq = record(
        &sim,
        Received {
            provider,
            authenticated: auth.is_ok(),
            method: "POST",
            path,
            model,
            key,
            stream: json["stream"] == true,
            body: &json,
        },
    );
    let response = match auth {
        Err(fail) => auth_error(provider, fail, key, "POST", path),
        Ok(()) => answer_chat(&sim, provider, parsed, seq).await,
    };
    finish(&sim, seq, response)
}

async fn answer_chat(
    sim: &Sim,
    provider: Provider,
    parsed: Result<Value, String>,
    seq: u64,
) -> Response {
    let Ok(Value::Object(body)) = parsed else {
        return bad(provider, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", None, None);
    };
    let p = match validate_chat(sim, provider, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = latency_and_fault(sim, provider, &p.model).await {
        return r;
    }
    let reply = sim.llm().reply(provider, &p.conv);
    let id = format!("chatcmpl-sim{seq}");
    if p.stream {
        return sse(
            stream_chunks(provider, &id, &p.model, &reply, p.include_usage),
            success_headers(provider),
        );
    }
    let mut message = json!({"role": "assistant", "content": reply.text, "refusal": null});
    if let Some((name, args)) = &reply.tool_call {
        if reply.text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!([{"id": format!("call_sim{seq}"), "type": "function",
            "function": {"name": name, "arguments": args.to_string()}}]);
    }
    let body = json!({
        "id": id, "object": "chat.completion", "created": now_secs(), "model": p.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(&reply)}],
        "usage": usage(provider, &reply),
        "service_tier": "default", "system_fingerprint": "fp_sim",
    });
    json_response(200, body, success_headers(provider))
}

fn finish_reason(r: &Reply) -> &'static str {
    if r.tool_call.is_some() {
        "tool_calls"
    } else if r.truncated {
        "length"
    } else {
        "stop"
    }
}

fn usage(provider: Provider, r: &Reply) -> Value {
    let mut u = json!({
        "prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
        "total_tokens": r.input_tokens + r.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    });
    if provider == Provider::DeepSeek {
        u["prompt_cache_hit_tokens"] = json!(0);
        u["prompt_cache_miss_tokens"] = json!(r.input_tokens);
    }
    u
}

/// As documented: role first, content deltas, tool-call fragments by index, one finish_reason, the
/// usage chunk when asked for, `[DONE]`. DeepSeek opens with a keep-alive comment; Kimi also
/// puts usage on the choice at its finish.
fn stream_chunks(
    provider: Provider,
    id: &str,
    model: &str,
    reply: &Reply,
    include_usage: bool,
) -> Vec<String> {
    let created = now_secs();
    let chunk = |choices: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut out = Vec::new();
    if provider == Provider::DeepSeek {
        out.push(": keep-alive\n\n".to_string());
    }
    out.push(chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    ));
    for piece in pieces(&reply.text) {
        out.push(chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
        ));
    }
    if let Some((name, args)) = &reply.tool_call {
        out.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": format!("call_{id}"), "type": "function",
            "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}])));
        let (a, b) = halves(&args.to_string());
        for part in [a, b] {
            out.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}, "finish_reason": null}])));
        }
    }
    let mut last = json!({"index": 0, "delta": {}, "finish_reason": finish_reason(reply)});
    if provider == Provider::Kimi {
        last["usage"] = usage(provider, reply);
    }
    out.push(chunk(json!([last])));
    if include_usage {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": []});
        c["usage"] = usage(provider, reply);
        out.push(data(&c));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

// ---- embeddings ---------------------------------------------------------------------

/// Native dimensions of OpenAI's embedding models (`dimensions` may only shorten v3 ones).
fn native_dims(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

pub(crate) async fn embeddings(
    State(sim): State<Sim>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let parsed = parse_body(&body);
    let json = parsed.clone().unwrap_or(Value::Null);
    let model = json["model"].as_str().map(str::to_string);
    let key = bearer(&headers);
    let (provider, auth) = resolve(&sim, key, false, model.as_deref());
    let seq = record(
        &sim,
        Received {
            provider,
            authenticated: auth.is_ok(),
            method: "POST",
            path,
            model,
            key,
            stream: false,
            body: &json,
        },
    );
    let response = match auth {
        Err(fail) => auth_error(provider, fail, key, "POST", path),
        // DeepSeek and Kimi have no embeddings endpoint.
        Ok(()) if matches!(provider, Provider::DeepSeek | Provider::Kimi) => compat_error(
            provider,
            404,
            &format!("Invalid URL (POST {path})"),
            None,
            None,
        ),
        Ok(()) => answer_embeddings(&sim, provider, parsed).await,
    };
    finish(&sim, seq, response)
}

async fn answer_embeddings(
    sim: &Sim,
    provider: Provider,
    parsed: Result<Value, String>,
) -> Response {
    let Ok(Value::Object(body)) = parsed else {
        return bad(
            provider,
            "We could not parse the JSON body of your request.",
            None,
            None,
        );
    };
    let model = match model_of(sim, provider, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !is_embedding_model(provider, &model) {
        return bad(
            provider,
            &format!("The model `{model}` does not support embeddings."),
            Some("model"),
            None,
        );
    }
    let invalid_input = || {
        bad(provider, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", None, None)
    };
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 2048 => {
            match a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
            {
                Some(v) => v,
                None => return invalid_input(),
            }
        }
        None => {
            return bad(
                provider,
                "Missing required parameter: 'input'.",
                Some("input"),
                Some("missing_required_parameter"),
            )
        }
        Some(_) => return invalid_input(),
    };
    if inputs.iter().any(|s| s.is_empty()) {
        return invalid_input();
    }
    let counts: Vec<u32> = inputs.iter().map(|s| tokens(s).max(1)).collect();
    if let Some(n) = counts.iter().find(|n| **n > 8192) {
        return bad(provider, &format!("This model's maximum context length is 8192 tokens, however you requested {n} tokens ({n} in your prompt; 0 for the completion). Please reduce your prompt; or completion length."), None, None);
    }
    let total: u32 = counts.iter().sum();
    if total > 300_000 {
        return bad(
            provider,
            &format!("Requested {total} tokens, max 300000 tokens per request"),
            None,
            Some("max_tokens_per_request"),
        );
    }
    let dims = match body.get("dimensions").and_then(Value::as_u64) {
        None => sim.llm().settings().embedding_dims,
        Some(d) => match native_dims(&model) {
            Some(native) if d >= 1 && d as usize <= native => d as usize,
            _ if provider == Provider::Local => d.max(1) as usize,
            _ => {
                return bad(
                    provider,
                    &format!("This model does not support specifying dimensions: {d}."),
                    Some("dimensions"),
                    None,
                )
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return bad(
                provider,
                &format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
                Some("encoding_format"),
                Some("invalid_value"),
            )
        }
    };
    if let Some(r) = latency_and_fault(sim, provider, &model).await {
        return r;
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embed_text(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_response(
        200,
        json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": total, "total_tokens": total}}),
        success_headers(provider),
    )
}

// ---- models -------------------------------------------------------------------------

/// `GET /v1/models` (OpenAI, Kimi, local; Anthropic when its headers are there) and
/// `GET /models` (DeepSeek, local).
pub(crate) async fn models(State(sim): State<Sim>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/v1/models"
        && (headers.contains_key("x-api-key") || headers.contains_key("anthropic-version"))
    {
        return anthropic::list_models(&sim, &headers, &uri).await;
    }
    let key = bearer(&headers);
    let (provider, auth) = resolve(&sim, key, !path.starts_with("/v1/"), None);
    let seq = record(
        &sim,
        Received {
            provider,
            authenticated: auth.is_ok(),
            method: "GET",
            path,
            model: None,
            key,
            stream: false,
            body: &Value::Null,
        },
    );
    let response = match auth {
        Err(fail) => auth_error(provider, fail, key, "GET", path),
        Ok(()) => match latency_and_fault(&sim, provider, "").await {
            Some(r) => r,
            None => {
                let created = now_secs() - 86_400;
                let owner = match provider {
                    Provider::DeepSeek => "deepseek",
                    Provider::Kimi => "moonshot",
                    Provider::Local => "library",
                    _ => "system",
                };
                let data: Vec<Value> = sim
                    .llm()
                    .models(provider)
                    .into_iter()
                    .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": owner}))
                    .collect();
                json_response(
                    200,
                    json!({"object": "list", "data": data}),
                    success_headers(provider),
                )
            }
        },
    };
    finish(&sim, seq, response)
}
