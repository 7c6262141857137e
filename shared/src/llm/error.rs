//! One error type for every provider, classified by what a caller should do with it: wait and
//! retry (`RateLimited`, `Unavailable`), fix the key (`InvalidKey`) or fix the request
//! (`BadRequest`). Messages quote the provider's own text (useful in traces and alerts) with
//! the API key scrubbed out, and never include the request URL's credentials.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::Provider;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429 (the provider's limits, or this organization's own limiter): retry after a while.
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx, Anthropic's 529 overloaded, 408/409, timeouts and connection errors: retryable.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// 401/403, Gemini's 400 `API_KEY_INVALID`: terminal until someone changes the key.
    #[error("API key refused: {0}")]
    InvalidKey(String),
    /// Every other 4xx (bad model, bad shape, exhausted quota or balance): terminal.
    #[error("request refused: {0}")]
    BadRequest(String),
}

impl LlmError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. } | LlmError::Unavailable(_)
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Unavailable(_) => "unavailable",
            LlmError::InvalidKey(_) => "invalid_key",
            LlmError::BadRequest(_) => "bad_request",
        }
    }
}

/// Longest provider text kept in an error message.
const MAX_MESSAGE: usize = 400;

/// Removes the key (and anything that long) from text that came back from a provider.
pub(super) fn scrub(text: &str, key: &str) -> String {
    let mut out = if key.len() >= 4 {
        text.replace(key, "****")
    } else {
        text.to_string()
    };
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// Classifies a non-2xx answer. `body` is the raw text; every format's shape is tried, since
/// OpenAI-compatible servers do not all answer in OpenAI's envelope.
pub(super) fn from_response(
    provider: Provider,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    key: &str,
) -> LlmError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &json["error"];
    let text = err["message"]
        .as_str()
        .or_else(|| err.as_str()) // Ollama: {"error": "model \"x\" not found"}
        .or_else(|| json["message"].as_str()) // vLLM: {"object":"error","message":…}
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let code = err["code"].as_str().unwrap_or_default();
    let etype = err["type"].as_str().unwrap_or_default();
    let message = scrub(&format!("{provider} {status}: {text}"), key);

    let gemini_reason = err["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["reason"].as_str())
        .unwrap_or_default();
    match status {
        401 | 403 => LlmError::InvalidKey(message),
        400 if gemini_reason == "API_KEY_INVALID" => LlmError::InvalidKey(message),
        429 => {
            // Exhausted quota or balance is a 429 that no wait will fix.
            let terminal = matches!(code, "insufficient_quota" | "credit_balance_exhausted")
                || etype == "insufficient_quota"
                || err["details"]["error_code"] == "enforced_spend_limit_reached";
            if terminal {
                LlmError::BadRequest(message)
            } else {
                LlmError::RateLimited {
                    retry_after: retry_after(headers, &json, &text),
                    message,
                }
            }
        }
        408 | 409 | 500..=599 => LlmError::Unavailable(message),
        _ => LlmError::BadRequest(message),
    }
}

/// A transport failure (no HTTP answer).
pub(super) fn from_transport(provider: Provider, e: &reqwest::Error) -> LlmError {
    // `without_url`: a LOCAL base URL may carry credentials (`http://user:pass@host`).
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        let mut detail = e.to_string();
        if let Some(url) = e.url() {
            detail = detail.replace(url.as_str(), "<url>");
        }
        detail
    };
    LlmError::Unavailable(format!("{provider}: {what}"))
}

/// The wait a 429 asks for, from whichever place the provider puts it: `retry-after-ms`,
/// `retry-after` (seconds), Gemini's `RetryInfo.retryDelay` ("59s"), or the message text
/// (OpenAI "try again in 2.5s", Kimi "try again after 1 seconds").
pub(super) fn retry_after(headers: &HeaderMap, body: &Value, text: &str) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return secs(ms / 1000.0);
    }
    if let Some(s) = header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()) {
        return secs(s);
    }
    let from_details = body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["retryDelay"].as_str())
        .and_then(parse_go_duration);
    if from_details.is_some() {
        return from_details;
    }
    let lower = text.to_ascii_lowercase();
    for marker in ["try again in ", "try again after "] {
        if let Some(rest) = lower.split(marker).nth(1) {
            let rest = rest.trim_start();
            let token = rest.split_whitespace().next().unwrap_or_default();
            let token = token.trim_end_matches(['.', ',']);
            if let Some(d) = parse_go_duration(token) {
                return Some(d);
            }
            if rest[token.len()..].trim_start().starts_with("second") {
                if let Ok(n) = token.parse::<f64>() {
                    return secs(n);
                }
            }
        }
    }
    None
}

fn secs(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)))
}

/// `59s`, `1.5s`, `20ms`, `6m0s`, `1h2m3s` (Go's format, used by OpenAI and Google).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
    }
    if !number.is_empty() {
        return None; // a bare number has no unit
    }
    secs(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("59s"), Some(Duration::from_secs(59)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("12"), None);
    }

    #[test]
    fn retry_after_from_each_place() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            retry_after(&h, &Value::Null, ""),
            Some(Duration::from_secs(3))
        );
        let gemini = json!({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}});
        assert_eq!(
            retry_after(&HeaderMap::new(), &gemini, ""),
            Some(Duration::from_secs(2))
        );
        let kimi = "request reached organization max RPM: 3, please try again after 1 seconds";
        assert_eq!(
            retry_after(&HeaderMap::new(), &Value::Null, kimi),
            Some(Duration::from_secs(1))
        );
        let openai =
            "Rate limit reached for gpt-5 on tokens per min (TPM). Please try again in 2.5s.";
        assert_eq!(
            retry_after(&HeaderMap::new(), &Value::Null, openai),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn classification() {
        let h = HeaderMap::new();
        let gemini_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(
            from_response(Provider::Google, 400, &h, gemini_key, "k").kind(),
            "invalid_key"
        );
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(
            from_response(Provider::OpenAi, 429, &h, quota, "k").kind(),
            "bad_request"
        );
        assert_eq!(
            from_response(Provider::Anthropic, 529, &h, "{}", "k").kind(),
            "unavailable"
        );
        let leaky = r#"{"error":{"message":"Incorrect API key provided: sk-secret-key-123"}}"#;
        let e = from_response(Provider::OpenAi, 401, &h, leaky, "sk-secret-key-123");
        assert!(!e.to_string().contains("sk-secret-key-123"), "{e}");
    }
}
