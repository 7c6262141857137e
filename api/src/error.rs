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

pub type ApiResult<T> = Result<T, ApiError>;

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
    /// Meta (or another upstream) failed or is unreachable: 502, the client may retry.
    #[error("{0}")]
    BadGateway(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// A 422 for a single field of the request body.
    pub fn invalid_field(field: &str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(&["body", field], msg, "value_error")])
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
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
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
            Self::TooManyRequests { retry_after_secs } => {
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
