//! The one error type of the API and its JSON shapes.
//!
//! Client errors carry a clear message: `{"detail": "..."}`, and validation errors the list
//! shape of the seeds: `{"detail": [{"loc": ["body", "email"], "msg": "...", "type": "..."}]}`.
//! Internal errors are logged once, with their cause, and answered with an opaque 500: a
//! database message can contain user data and must not reach the client.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use wharf_shared::meta::{ErrorClass, MetaError};

pub type ApiResult<T> = Result<T, ApiError>;

/// Meta's throttling codes (application, account and business-use-case limits).
const THROTTLE_CODES: &[i64] = &[4, 17, 32, 613, 80007, 80008, 130429];
const META_THROTTLE_RETRY_SECS: u64 = 60;
const META_OUTAGE_RETRY_SECS: u64 = 5;

/// One entry of a 422 response.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// Where the problem is: `["body", "email"]`, `["query", "limit"]`, `["path", "id"]`.
    pub loc: Vec<String>,
    pub msg: String,
    /// Machine-readable kind: `missing`, `type_error`, `value_error`, `enum`, `json_invalid`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// Every error answer: `{"detail": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// A 422: every wrong field of the request, each with its location.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Meta (or another upstream) is throttling us or not answering: 503 with `Retry-After`.
    /// Our client asked us, not Meta, so a Meta failure never passes through as a 502.
    #[error("{message}")]
    UpstreamUnavailable {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// A 422 for a required field of the request body that is missing.
    pub fn missing_field(field: &str) -> Self {
        Self::Validation(vec![FieldError::new(
            &["body", field],
            "Field required",
            "missing",
        )])
    }

    /// A 422 for a single field of the request body.
    pub fn invalid_field(field: &str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(&["body", field], msg, "value_error")])
    }

    /// What our client hears when a Meta call made on its behalf fails (`what`: the thing we
    /// asked Meta for, e.g. "pricing analytics"): a throttle or an outage is a 503 with
    /// `Retry-After`; an account Meta no longer accepts, or a refusal, is a 409 saying why.
    pub fn from_meta(err: &MetaError, what: &str) -> Self {
        match err.class() {
            ErrorClass::Retryable if err.code().is_some_and(|c| THROTTLE_CODES.contains(&c)) => {
                Self::UpstreamUnavailable {
                    message: format!(
                        "Meta is throttling this WhatsApp Business Account ({}); retry in {META_THROTTLE_RETRY_SECS} seconds",
                        err.title()
                    ),
                    retry_after_secs: META_THROTTLE_RETRY_SECS,
                }
            }
            ErrorClass::Retryable => {
                tracing::warn!(error = %err, what, "Meta unavailable");
                Self::UpstreamUnavailable {
                    message: format!("Meta is not answering right now ({what}); please retry"),
                    retry_after_secs: META_OUTAGE_RETRY_SECS,
                }
            }
            ErrorClass::AccountLevel => Self::Conflict(format!(
                "Meta no longer accepts this WhatsApp account's credentials ({}): reconnect it with a new access token",
                err.title()
            )),
            ErrorClass::Terminal | ErrorClass::RecipientDelay => Self::Conflict(format!(
                "Meta refused {what}: {} ({})",
                err.title(),
                err.code().unwrap_or(0)
            )),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            // Pool exhausted or Postgres restarting: the client may retry.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                tracing::warn!(error = %err, "database unavailable");
                Self::Unavailable("Database temporarily unavailable, please retry".into())
            }
            _ => Self::Internal(err.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Validation(errors) => json!({ "detail": errors }),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                json!({ "detail": "Internal server error" })
            }
            Self::TooManyRequests { retry_after_secs } => json!({
                "detail": format!("Too many attempts, retry in {retry_after_secs} seconds")
            }),
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            Self::TooManyRequests { retry_after_secs }
            | Self::UpstreamUnavailable {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<wharf_shared::jobs::JobsError> for ApiError {
    fn from(err: wharf_shared::jobs::JobsError) -> Self {
        use wharf_shared::jobs::JobsError;
        match err {
            JobsError::Database(e) => e.into(),
            JobsError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Maps a unique violation on `constraint` to a 409 with `message`; other errors pass through.
pub trait OnConflict<T> {
    fn on_conflict(self, constraint: &str, message: &str) -> ApiResult<T>;
}

impl<T> OnConflict<T> for Result<T, sqlx::Error> {
    fn on_conflict(self, constraint: &str, message: &str) -> ApiResult<T> {
        self.map_err(|e| {
            if wharf_shared::db::is_unique_violation(&e, constraint) {
                ApiError::Conflict(message.to_string())
            } else {
                e.into()
            }
        })
    }
}
