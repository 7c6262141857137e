//! Plumbing shared by the three formats: the request log, latency and faults, each
//! provider's error envelope (as each provider documents it) and response headers,
//! and SSE bodies.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{fingerprint, LlmFaultAction, LlmRequest, Provider};
use crate::faults::DropConnection;
use crate::Sim;

/// What a handler knows about a request before answering it.
pub(crate) struct Received<'a> {
    pub provider: Provider,
    pub authenticated: bool,
    pub method: &'a str,
    pub path: &'a str,
    pub model: Option<String>,
    pub key: Option<&'a str>,
    pub stream: bool,
    pub body: &'a Value,
}

/// Logs a request; returns its sequence number for [`finish`].
pub(crate) fn record(sim: &Sim, r: Received<'_>) -> u64 {
    sim.llm().record(LlmRequest {
        seq: 0,
        at_ms: chrono::Utc::now().timestamp_millis(),
        at: std::time::Instant::now(),
        provider: r.provider,
        authenticated: r.authenticated,
        method: r.method.to_string(),
        path: r.path.to_string(),
        model: r.model,
        key_fingerprint: r.key.map(fingerprint),
        stream: r.stream,
        status: None,
        body: r.body.clone(),
    })
}

/// Notes the status in the log and answers.
pub(crate) fn finish(sim: &Sim, seq: u64, response: Response) -> Response {
    sim.llm().set_status(seq, response.status().as_u16());
    response
}

/// `Authorization: Bearer <key>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get("authorization")?.to_str().ok()?.trim();
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The body as JSON (`Err` when it is not).
pub(crate) fn parse_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// The provider's latency, then its next fault (if any) as the response to send.
pub(crate) async fn latency_and_fault(
    sim: &Sim,
    provider: Provider,
    model: &str,
) -> Option<Response> {
    let latency = sim.llm().latency(provider);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let action = sim.llm().take_fault(provider)?;
    Some(match action {
        LlmFaultAction::RateLimited { retry_after_secs } => {
            rate_limited(provider, retry_after_secs.unwrap_or(1), model)
        }
        LlmFaultAction::Http { status } => server_error(provider, status),
        LlmFaultAction::InvalidKey => invalid_key(provider, Some("sk-sim-faulted-key")),
        LlmFaultAction::Hang => {
            let stop = sim.inner.shutdown.clone();
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            let mut r = StatusCode::GATEWAY_TIMEOUT.into_response();
            r.extensions_mut().insert(DropConnection);
            r
        }
    })
}

fn request_id() -> String {
    format!("req_sim{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn json_response(
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(body)).into_response();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// Headers the provider puts on successful answers (rate-limit state, request id).
pub(crate) fn success_headers(provider: Provider) -> Vec<(&'static str, String)> {
    match provider {
        Provider::OpenAi => vec![
            ("x-request-id", request_id()),
            ("openai-processing-ms", "12".into()),
            ("x-ratelimit-limit-requests", "10000".into()),
            ("x-ratelimit-remaining-requests", "9999".into()),
            ("x-ratelimit-reset-requests", "6ms".into()),
            ("x-ratelimit-limit-tokens", "10000000".into()),
            ("x-ratelimit-remaining-tokens", "9999000".into()),
            ("x-ratelimit-reset-tokens", "6ms".into()),
        ],
        Provider::Anthropic => {
            let reset = (chrono::Utc::now() + chrono::Duration::seconds(60))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            vec![
                ("request-id", request_id()),
                ("anthropic-ratelimit-requests-limit", "4000".into()),
                ("anthropic-ratelimit-requests-remaining", "3999".into()),
                ("anthropic-ratelimit-requests-reset", reset.clone()),
                ("anthropic-ratelimit-tokens-limit", "2000000".into()),
                ("anthropic-ratelimit-tokens-remaining", "1999000".into()),
                ("anthropic-ratelimit-tokens-reset", reset),
            ]
        }
        Provider::Kimi => vec![
            ("x-ratelimit-limit", "200".into()),
            ("x-ratelimit-remaining", "199".into()),
            ("x-ratelimit-reset", "1".into()),
        ],
        // DeepSeek, Gemini and local servers document none.
        Provider::DeepSeek | Provider::Google | Provider::Local => Vec::new(),
    }
}

// ---- error envelopes ----------------------------------------------------------------

/// OpenAI's `{"error":{message,type,param,code}}` (also DeepSeek's and local servers').
pub(crate) fn openai_error(
    status: u16,
    message: &str,
    etype: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json_response(
        status,
        json!({"error": {"message": message, "type": etype, "param": param, "code": code}}),
        vec![("x-request-id", request_id())],
    )
}

/// Kimi's `{"error":{type,message}}`, no code or param.
pub(crate) fn kimi_error(status: u16, etype: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"type": etype, "message": message}}),
        Vec::new(),
    )
}

/// An error in the envelope of an OpenAI-compatible provider.
pub(crate) fn compat_error(
    provider: Provider,
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let etype = if status == 404 && provider == Provider::Kimi {
        "resource_not_found_error"
    } else {
        "invalid_request_error"
    };
    match provider {
        Provider::Kimi => kimi_error(status, etype, message),
        _ => openai_error(status, message, etype, param, code),
    }
}

/// `{"type":"error","error":{type,message},"request_id"}` with `x-should-retry`.
pub(crate) fn anthropic_error(status: u16, etype: &str, message: &str) -> Response {
    let id = request_id();
    let retry = matches!(status, 408 | 409 | 429) || status >= 500;
    json_response(
        status,
        json!({"type": "error", "error": {"type": etype, "message": message}, "request_id": id}),
        vec![("request-id", id), ("x-should-retry", retry.to_string())],
    )
}

/// google.rpc.Status: `{"error":{code,message,status,details}}`.
pub(crate) fn gemini_error(
    code: u16,
    status: &str,
    message: &str,
    details: Vec<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json_response(code, json!({"error": error}), Vec::new())
}

/// A 400 INVALID_ARGUMENT from Gemini.
pub(crate) fn gemini_invalid(message: &str) -> Response {
    gemini_error(400, "INVALID_ARGUMENT", message, Vec::new())
}

/// OpenAI's way of showing which key was refused: a prefix and suffix at most.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}

/// Each provider's answer to a missing or wrong key.
pub(crate) fn invalid_key(provider: Provider, key: Option<&str>) -> Response {
    match (provider, key) {
        (Provider::OpenAi, None) => openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            None,
        ),
        (Provider::OpenAi, Some(k)) => openai_error(
            401,
            &format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", masked(k)),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
        (Provider::DeepSeek, k) => openai_error(
            401,
            &format!("Authentication Fails, Your api key: {} is invalid", masked(k.unwrap_or_default())),
            "authentication_error",
            None,
            Some("invalid_request_error"),
        ),
        (Provider::Kimi, _) => kimi_error(401, "invalid_authentication_error", "Invalid Authentication"),
        (Provider::Local, _) => json_response(401, json!({"error": "Unauthorized"}), Vec::new()),
        (Provider::Anthropic, None) => {
            anthropic_error(401, "authentication_error", "x-api-key header is required")
        }
        (Provider::Anthropic, Some(_)) => anthropic_error(401, "authentication_error", "invalid x-api-key"),
        (Provider::Google, None) => gemini_error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            Vec::new(),
        ),
        (Provider::Google, Some(_)) => gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                       "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}),
                json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                       "message": "API key not valid. Please pass a valid API key."}),
            ],
        ),
    }
}

/// A 429 with the wait where each provider puts it.
pub(crate) fn rate_limited(provider: Provider, secs: u64, model: &str) -> Response {
    match provider {
        Provider::OpenAi | Provider::Local => {
            let mut r = openai_error(
                429,
                &format!("Rate limit reached for {model} in organization org-sim on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {secs}s. Visit https://platform.openai.com/account/rate-limits to learn more."),
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            r.headers_mut().insert("retry-after", HeaderValue::from(secs));
            r
        }
        // DeepSeek's 429 is its concurrency cap; it documents no wait.
        Provider::DeepSeek => openai_error(429, "Rate Limit Reached", "rate_limit_reached", None, None),
        Provider::Kimi => kimi_error(
            429,
            "rate_limit_reached_error",
            &format!("Your account org-sim<ak-sim> request reached organization max RPM: 3, please try again after {secs} seconds"),
        ),
        Provider::Anthropic => {
            let mut r = anthropic_error(
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
            );
            r.headers_mut().insert("retry-after", HeaderValue::from(secs));
            r
        }
        Provider::Google => gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"model": model, "location": "global"}}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}),
            ],
        ),
    }
}

/// A 5xx (or 529) in the provider's shape.
pub(crate) fn server_error(provider: Provider, status: u16) -> Response {
    match provider {
        Provider::OpenAi | Provider::Local => match status {
            503 => openai_error(503, "The engine is currently overloaded, please try again later.", "service_unavailable_error", None, Some("server_is_overloaded")),
            _ => openai_error(status, "The server had an error while processing your request. Sorry about that!", "server_error", None, None),
        },
        Provider::DeepSeek => match status {
            503 => openai_error(503, "Server Overloaded", "server_error", None, None),
            _ => openai_error(status, "Server Error", "server_error", None, None),
        },
        Provider::Kimi => kimi_error(status, "server_error", "The server had an error while processing your request"),
        Provider::Anthropic => match status {
            529 | 503 => anthropic_error(status, "overloaded_error", "Overloaded"),
            504 => anthropic_error(status, "timeout_error", "Request timed out"),
            _ => anthropic_error(status, "api_error", "Internal server error"),
        },
        Provider::Google => match status {
            503 => gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", Vec::new()),
            504 => gemini_error(504, "DEADLINE_EXCEEDED", "The request timed out. Please try again.", Vec::new()),
            _ => gemini_error(status, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", Vec::new()),
        },
    }
}

// ---- SSE ------------------------------------------------------------------------------

/// `data: <json>` + blank line.
pub(crate) fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// `event: <name>` + `data: <json>` + blank line.
pub(crate) fn event(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

/// An SSE answer whose events are written one chunk each.
pub(crate) fn sse(events: Vec<String>, headers: Vec<(&'static str, String)>) -> Response {
    let stream = futures::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, Infallible>(Bytes::from(e))),
    );
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    r
}

/// A text cut into word-sized deltas (each keeps its trailing space).
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(w.to_string());
        } else {
            out.push(format!(" {w}"));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// A JSON text in two fragments (how tool-call arguments stream).
pub(crate) fn halves(s: &str) -> (String, String) {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid -= 1;
    }
    (s[..mid].to_string(), s[mid..].to_string())
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
