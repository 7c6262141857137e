//! Extractors that turn malformed input into the seed's 422 shape instead of axum's plain-text
//! rejections: JSON bodies, query strings and path ids.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    error::{ApiError, FieldError},
    validate::{Validate, Violations},
};

/// A JSON body that was parsed and validated. Every failure is a 422 naming the field.
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("Request body is too large".into())
            } else {
                ApiError::BadRequest("Could not read the request body".into())
            }
        })?;
        if is_json == Some(false) {
            return Err(ApiError::Validation(vec![FieldError::new(
                &["body"],
                "expected a JSON body (Content-Type: application/json)",
                "json_invalid",
            )]));
        }
        let value = parse_json::<T>(&bytes)?;
        let mut violations = Violations::body();
        value.validate(&mut violations);
        violations.into_result()?;
        Ok(Self(value))
    }
}

/// Parses JSON with the path of the failing field, mapped to the 422 entry shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["body"],
            "Field required",
            "missing",
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        ApiError::Validation(vec![describe_serde_error("body", &path, &inner)])
    })
}

fn describe_serde_error(origin: &str, path: &str, err: &serde_json::Error) -> FieldError {
    use serde_json::error::Category;
    let message = err.to_string();
    // serde_json appends " at line X column Y"; the location is already in `loc`.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    let mut loc: Vec<String> = vec![origin.to_string()];
    if path != "." {
        loc.extend(path.split('.').map(str::to_string));
    }
    match err.classify() {
        Category::Syntax | Category::Eof => FieldError {
            loc: vec![origin.to_string()],
            msg: format!("Invalid JSON: {message}"),
            kind: "json_invalid".into(),
        },
        _ => {
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                loc.push(field.to_string());
                return FieldError {
                    loc,
                    msg: "Field required".into(),
                    kind: "missing".into(),
                };
            }
            let kind = if message.starts_with("unknown variant") {
                "enum"
            } else if message.starts_with("invalid type") {
                "type_error"
            } else {
                "value_error"
            };
            FieldError {
                loc,
                msg: message,
                kind: kind.into(),
            }
        }
    }
}

/// A query string parsed into `T` and validated; errors are 422s located in `query`.
pub struct ValidQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
            let field = err.path().to_string();
            let msg = err.into_inner().to_string();
            let loc: Vec<&str> = if field == "." {
                vec!["query"]
            } else {
                vec!["query", &field]
            };
            let kind = if msg.starts_with("unknown variant") {
                "enum"
            } else {
                "type_error"
            };
            ApiError::Validation(vec![FieldError::new(&loc, msg, kind)])
        })?;
        let mut violations = Violations::query();
        value.validate(&mut violations);
        violations.into_result()?;
        Ok(Self(value))
    }
}

/// Parses a path id. An id that is not a UUID cannot name any row, so it is a 404 like any
/// other unknown id (and reveals nothing about which ids exist).
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// A multipart file field: its bytes, MIME type (`application/octet-stream` when the client
/// gave none) and file name (`default_name` when it gave none). Too large a file is a 413.
pub async fn read_file_field(
    field: axum::extract::multipart::Field<'_>,
    default_name: &str,
) -> Result<(bytes::Bytes, String, String), ApiError> {
    let filename = field.file_name().unwrap_or(default_name).to_string();
    let mime = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_string();
    let bytes = field
        .bytes()
        .await
        .map_err(|_| ApiError::PayloadTooLarge("The file is too large".into()))?;
    Ok((bytes, mime, filename))
}
