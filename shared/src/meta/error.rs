//! Meta Graph API errors, typed and classified.
//!
//! Meta says to key error handling on `error.code`, not on HTTP status or subcode; the
//! classification below is the table in ARCHITECTURE.md, "Meta errors".

use serde::{Deserialize, Serialize};

/// How a sender must react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Try again later with backoff (throughput, transient server errors, transport).
    Retryable,
    /// Only this recipient must wait (pair rate limit 131056): 4^n seconds.
    RecipientDelay,
    /// Do not retry this message; a human or a payload change is needed.
    Terminal,
    /// The account itself is unusable (token expired, locked, payment): hold its sends.
    AccountLevel,
}

/// The `error` object of a Graph response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GraphError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    /// Meta's title, e.g. "Rate limit hit" (the part of `message` after `(#code) `).
    pub title: String,
    pub message: String,
    pub details: Option<String>,
    pub error_type: Option<String>,
    pub fbtrace_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("Meta error {}: {}", .0.code, .0.message)]
    Graph(GraphError),
    /// The request timed out. `request_sent` is true when it may have reached Meta: the
    /// outcome is unknown and a resend could duplicate the message.
    #[error("Meta request timed out (request sent: {request_sent})")]
    Timeout { request_sent: bool },
    /// Connection refused, reset or dropped. `request_sent` as for timeouts.
    #[error("transport error talking to Meta: {message}")]
    Transport { message: String, request_sent: bool },
    /// A non-JSON or unexpected response (a proxy's HTML page, a truncated body).
    #[error("unexpected response from Meta (HTTP {status}): {body}")]
    Unexpected { status: u16, body: String },
}

/// Codes that clear up on their own with backoff.
const RETRYABLE: &[i64] = &[
    1, 2, 4, 17, 32, 341, 613, 80007, 80008, 130429, 131000, 131016, 131057, 133004, 133015,
];
/// Codes that make the whole account unusable until a human acts.
const ACCOUNT_LEVEL: &[i64] = &[0, 190, 131031, 131042];

impl MetaError {
    pub fn code(&self) -> Option<i64> {
        match self {
            MetaError::Graph(g) => Some(g.code),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            MetaError::Graph(g) => classify_code(g.code, g.http_status),
            MetaError::Timeout { .. } | MetaError::Transport { .. } => ErrorClass::Retryable,
            MetaError::Unexpected { status, .. } if *status >= 500 || *status == 429 => {
                ErrorClass::Retryable
            }
            MetaError::Unexpected { .. } => ErrorClass::Terminal,
        }
    }

    /// True when the request may have reached Meta although we have no answer.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            MetaError::Timeout { request_sent } | MetaError::Transport { request_sent, .. } => {
                *request_sent
            }
            MetaError::Unexpected { status, .. } => *status >= 500,
            MetaError::Graph(_) => false,
        }
    }

    /// A short title for dashboards.
    pub fn title(&self) -> String {
        match self {
            MetaError::Graph(g) => g.title.clone(),
            MetaError::Timeout { .. } => "Request to Meta timed out".into(),
            MetaError::Transport { .. } => "Could not reach Meta".into(),
            MetaError::Unexpected { status, .. } => format!("Unexpected HTTP {status} from Meta"),
        }
    }

    pub fn details(&self) -> Option<String> {
        match self {
            MetaError::Graph(g) => g.details.clone(),
            MetaError::Transport { message, .. } => Some(message.clone()),
            MetaError::Unexpected { body, .. } => Some(body.chars().take(500).collect()),
            MetaError::Timeout { .. } => None,
        }
    }
}

/// Classification by code; 5xx without a known code is retryable.
pub fn classify_code(code: i64, http_status: u16) -> ErrorClass {
    if code == 131056 {
        ErrorClass::RecipientDelay
    } else if ACCOUNT_LEVEL.contains(&code) {
        ErrorClass::AccountLevel
    } else if RETRYABLE.contains(&code) || (http_status >= 500 && !(132000..133000).contains(&code))
    {
        ErrorClass::Retryable
    } else {
        ErrorClass::Terminal
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: RawError,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    message: String,
    #[serde(rename = "type")]
    error_type: Option<String>,
    code: i64,
    error_subcode: Option<i64>,
    error_data: Option<RawErrorData>,
    error_user_title: Option<String>,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct RawErrorData {
    details: Option<String>,
}

/// Parses an error body (`{"error": {...}}`). `None` when the body is not Meta's shape.
pub fn parse_graph_error(http_status: u16, body: &[u8]) -> Option<GraphError> {
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let e = env.error;
    let prefix = format!("(#{}) ", e.code);
    let title = e.error_user_title.clone().unwrap_or_else(|| {
        e.message
            .strip_prefix(&prefix)
            .unwrap_or(&e.message)
            .to_string()
    });
    Some(GraphError {
        http_status,
        code: e.code,
        subcode: e.error_subcode,
        title,
        message: e.message,
        details: e.error_data.and_then(|d| d.details),
        error_type: e.error_type,
        fbtrace_id: e.fbtrace_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metas_error_shape() {
        let body = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,
            "error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},
            "error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        let e = parse_graph_error(429, body).unwrap();
        assert_eq!(e.code, 130429);
        assert_eq!(e.title, "Rate limit hit");
        assert_eq!(
            e.details.as_deref(),
            Some("Cloud API message throughput has been reached.")
        );
        assert_eq!(MetaError::Graph(e).class(), ErrorClass::Retryable);
        assert!(parse_graph_error(502, b"<html>bad gateway</html>").is_none());
    }

    #[test]
    fn classifies_by_code() {
        assert_eq!(classify_code(131056, 400), ErrorClass::RecipientDelay);
        assert_eq!(classify_code(190, 401), ErrorClass::AccountLevel);
        assert_eq!(classify_code(0, 401), ErrorClass::AccountLevel);
        assert_eq!(classify_code(131047, 400), ErrorClass::Terminal);
        assert_eq!(classify_code(132001, 400), ErrorClass::Terminal);
        assert_eq!(classify_code(131026, 400), ErrorClass::Terminal);
        assert_eq!(classify_code(131000, 500), ErrorClass::Retryable);
        assert_eq!(classify_code(999_999, 503), ErrorClass::Retryable);
        assert_eq!(classify_code(131048, 429), ErrorClass::Terminal);
    }

    #[test]
    fn timeouts_after_sending_are_outcome_unknown() {
        assert!(MetaError::Timeout { request_sent: true }.outcome_unknown());
        assert!(!MetaError::Timeout {
            request_sent: false
        }
        .outcome_unknown());
        assert_eq!(
            MetaError::Timeout { request_sent: true }.class(),
            ErrorClass::Retryable
        );
    }
}
