//! Graph API errors in Meta's exact wire shape.
//!
//! Every failure the simulator returns on a Graph path goes through [`GraphError`], so the
//! platform's error classifier sees the same `{"error":{...}}` object it will see in
//! production. Meta documents that clients must key on `error.code`, and its HTTP statuses
//! have changed over time (the older table said 429 for 130429, many live clients observe
//! 400), so the status per code is a *default* here that [`crate::Sim::set_error_status`]
//! can override at run time. The override is applied by a response middleware
//! ([`apply_status_overrides`]) which reads the [`ErrorCode`] extension every error carries.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Map, Value};

/// Extension attached to every error response: the Meta code, and whether its HTTP status
/// came from the default table (and may be remapped by middleware) or was forced.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub u32, pub bool);

/// One Graph API error, rendered as Meta renders it. Boxed so `Result<_, GraphError>`
/// stays pointer-sized on the hot path; fields are reachable through `Deref`.
#[derive(Debug, Clone)]
pub struct GraphError(Box<GraphErrorData>);

/// The fields of a [`GraphError`].
#[derive(Debug, Clone)]
pub struct GraphErrorData {
    /// Meta's `error.code`.
    pub code: u32,
    /// Optional `error.error_subcode`.
    pub subcode: Option<u32>,
    /// The short title, used in `message` as `(#code) Title`.
    pub title: String,
    /// Longer text for `error_data.details`.
    pub details: String,
    /// `OAuthException` (default) or `GraphMethodException` for missing objects.
    pub kind: &'static str,
    /// Explicit status; `None` means the default table (and any run-time override).
    pub status: Option<StatusCode>,
    /// Replace `message` entirely (Graph-level errors such as 190 do not use `(#code)`).
    pub message: Option<String>,
    /// Extra members merged into the `error` object (`error_user_title`, `is_transient`...).
    pub extra: Map<String, Value>,
}

impl std::ops::Deref for GraphError {
    type Target = GraphErrorData;
    fn deref(&self) -> &GraphErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for GraphError {
    fn deref_mut(&mut self) -> &mut GraphErrorData {
        &mut self.0
    }
}

/// Result alias for Graph handlers.
pub type GraphResult<T> = Result<T, GraphError>;

impl GraphError {
    /// An error with Meta's default title for `code` and the given details.
    pub fn new(code: u32, details: impl Into<String>) -> Self {
        Self(Box::new(GraphErrorData {
            code,
            subcode: None,
            title: default_title(code).to_string(),
            details: details.into(),
            kind: "OAuthException",
            status: None,
            message: None,
            extra: Map::new(),
        }))
    }

    /// An error with an explicit title.
    pub fn titled(code: u32, title: impl Into<String>, details: impl Into<String>) -> Self {
        let mut e = Self::new(code, details);
        e.title = title.into();
        e
    }

    /// Sets `error_subcode`.
    pub fn subcode(mut self, subcode: u32) -> Self {
        self.subcode = Some(subcode);
        self
    }

    /// Forces the HTTP status for this one response.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a member to the `error` object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// `(#100) Invalid parameter` with details.
    pub fn invalid_param(details: impl Into<String>) -> Self {
        Self::new(100, details)
    }

    /// `(#131008) Required parameter is missing`.
    pub fn missing(param: &str) -> Self {
        Self::new(131008, format!("The parameter {param} is required."))
    }

    /// `(#131009) Parameter value is not valid`.
    pub fn invalid_value(details: impl Into<String>) -> Self {
        Self::new(131009, details)
    }

    /// Graph's "object does not exist" error (code 100, subcode 33, `GraphMethodException`).
    pub fn no_object(id: &str, method: &str) -> Self {
        let mut e = Self::new(100, "");
        e.kind = "GraphMethodException";
        e.subcode = Some(33);
        e.message = Some(format!(
            "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be \
             loaded due to missing permissions, or does not support this operation. Please \
             read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ));
        e
    }

    /// Code 190: token unknown / cannot be parsed.
    pub fn invalid_token() -> Self {
        let mut e = Self::new(190, "");
        e.message = Some("Invalid OAuth access token - Cannot parse access token".into());
        e
    }

    /// Code 190 subcode 463: token expired.
    pub fn expired_token() -> Self {
        let mut e = Self::new(190, "").subcode(463);
        e.message = Some(
            "Error validating access token: Session has expired on Tuesday, 01-Jul-25 \
             12:00:00 PDT. The current time is later."
                .into(),
        );
        e
    }

    /// Code 190 subcode 460: token invalidated (revoked).
    pub fn revoked_token() -> Self {
        let mut e = Self::new(190, "").subcode(460);
        e.message = Some(
            "Error validating access token: The session has been invalidated because the \
             user changed their password or Facebook has changed the session for security \
             reasons."
                .into(),
        );
        e
    }

    /// Renders the `{"error":{...}}` body.
    pub fn body(&self) -> Value {
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| format!("(#{}) {}", self.code, self.title));
        let mut err = Map::new();
        err.insert("message".into(), message.into());
        err.insert("type".into(), self.kind.into());
        err.insert("code".into(), self.code.into());
        if !self.details.is_empty() {
            err.insert(
                "error_data".into(),
                json!({"messaging_product": "whatsapp", "details": self.details}),
            );
        }
        if let Some(sub) = self.subcode {
            err.insert("error_subcode".into(), sub.into());
        }
        for (k, v) in &self.extra {
            err.insert(k.clone(), v.clone());
        }
        err.insert("fbtrace_id".into(), fbtrace_id().into());
        json!({ "error": err })
    }

    /// The object used inside webhooks (`statuses[].errors[]`, `messages[].errors[]`).
    pub fn webhook_object(&self) -> Value {
        json!({
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| default_status(self.code));
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        resp.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("OAuth \"Facebook Platform\""),
        );
        resp.extensions_mut()
            .insert(ErrorCode(self.code, self.status.is_none()));
        resp
    }
}

/// A random-looking `fbtrace_id` like Meta's (`Az8or2yhqkZfEZ-_4Qn_Bam`).
pub fn fbtrace_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..23)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Default HTTP status per code, after Meta's older documented table.
pub fn default_status(code: u32) -> StatusCode {
    match code {
        0 | 104 | 190 => StatusCode::UNAUTHORIZED,
        10 | 200..=299 | 368 | 131031 | 131005 => StatusCode::FORBIDDEN,
        4 | 80007 | 80008 | 130429 | 131048 | 131056 => StatusCode::TOO_MANY_REQUESTS,
        3 | 131000 => StatusCode::INTERNAL_SERVER_ERROR,
        2 | 131016 | 133004 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Meta's title for each code the simulator emits.
pub fn default_title(code: u32) -> &'static str {
    match code {
        0 => "AuthException",
        1 => "API Unknown",
        2 => "API Service",
        3 => "API Method",
        4 => "Application request limit reached",
        10 => "Application does not have permission for this action",
        33 => "Parameter value is not valid",
        100 => "Invalid parameter",
        104 => "An access token is required to request this resource",
        190 => "Invalid OAuth access token",
        200 => "Permissions error",
        368 => "Temporarily blocked for policies violations",
        80007 => "Rate limit issues",
        80008 => "There have been too many calls to this WhatsApp Business account",
        130403 => "Business has blocked this user",
        130429 => "Rate limit hit",
        130472 => "User's number is part of an experiment",
        131000 => "Something went wrong",
        131005 => "Access denied",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131016 => "Service unavailable",
        131021 => "Recipient cannot be sender",
        131026 => "Message Undeliverable",
        131030 => "Recipient phone number not in allowed list",
        131031 => "Business Account locked",
        131042 => "Business eligibility payment issue",
        131045 => "Incorrect certificate",
        131047 => "Re-engagement message",
        131048 => "Spam rate limit hit",
        131049 => "This message was not delivered to maintain healthy ecosystem engagement.",
        131050 => "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        131051 => "Message type unknown",
        131052 => "Media download error",
        131053 => "Media upload error",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        131057 => "Account in maintenance mode",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132005 => "Translated text too long",
        132007 => "Template Format Character Policy Violated",
        132012 => "Parameter format does not match format in the created template",
        132015 => "Template is Paused",
        132016 => "Template is Disabled",
        132018 => "Template Parameter Validation Error",
        133004 => "Server Temporarily Unavailable",
        133005 => "Two step verification PIN Mismatch",
        133006 => "Phone number re-verification needed",
        133010 => "Phone number Not Registered",
        _ => "Error",
    }
}

/// Default `details` text for codes a test might inject without saying more.
pub fn default_details(code: u32) -> &'static str {
    match code {
        130429 => "Cloud API message throughput has been reached.",
        131056 => "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        131047 => "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        131000 => "Message failed to send due to an unknown error.",
        131026 => "Message Undeliverable.",
        131048 => "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
        131016 => "A service is temporarily unavailable.",
        2 => "Temporary due to downtime or due to being overloaded.",
        4 => "The app has reached its API call rate limit.",
        80007 => "The WhatsApp Business Account has reached its rate limit.",
        _ => "",
    }
}

/// Response middleware: remaps the status of error responses per run-time overrides.
pub async fn apply_status_overrides(
    axum::extract::State(sim): axum::extract::State<crate::Sim>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    if let Some(ErrorCode(code, true)) = resp.extensions().get::<ErrorCode>().copied() {
        if let Some(status) = sim.error_status_override(code) {
            *resp.status_mut() = status;
        }
    }
    resp
}
