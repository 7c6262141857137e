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
        Ok(Self(parse_valid_json::<T>(&bytes)?))
    }
}

/// Parses a JSON body into `T`, reporting every wrong field at once (see [`collect_errors`]).
///
/// The body must be exactly one JSON value (trailing data is a 422), and no string in it (keys
/// included) may hold U+0000: PostgreSQL cannot store it in text or jsonb, so it is refused here,
/// at the edge, naming the field, instead of failing deep inside a query.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_value(bytes).and_then(|value| from_value(value, None::<fn(&T, &mut Violations)>))
}

/// Like [`parse_json`], and then runs `T`'s validation, so type errors and rule violations
/// come back together in one 422.
pub fn parse_valid_json<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_json_value(bytes)?;
    from_value(value, Some(|v: &T, out: &mut Violations| v.validate(out)))
}

/// A body that may be left out: empty means `T::default()`, anything else is parsed and
/// validated like [`ValidJson`].
pub fn parse_optional_json<T: DeserializeOwned + Validate + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_valid_json(bytes)
}

fn parse_json_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["body"],
            "Field required",
            "missing",
        )]));
    }
    // `from_slice` insists on one value followed only by whitespace.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::Validation(vec![FieldError {
            loc: vec!["body".into()],
            msg: format!("Invalid JSON: {}", strip_position(&err.to_string())),
            kind: "json_invalid".into(),
        }])
    })?;
    let mut nul_errors = Vec::new();
    find_nul(&value, &mut vec!["body".to_string()], &mut nul_errors);
    if !nul_errors.is_empty() {
        return Err(ApiError::Validation(nul_errors));
    }
    Ok(value)
}

/// The message for text holding U+0000, wherever it is found (body, query, path, upload).
pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

fn find_nul(value: &serde_json::Value, loc: &mut Vec<String>, out: &mut Vec<FieldError>) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => out.push(FieldError {
            loc: loc.clone(),
            msg: NUL_MESSAGE.into(),
            kind: "value_error".into(),
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                loc.push(i.to_string());
                find_nul(item, loc, out);
                loc.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                loc.push(key.replace('\0', "\u{fffd}"));
                if key.contains('\0') {
                    out.push(FieldError {
                        loc: loc.clone(),
                        msg: format!("key {NUL_MESSAGE}"),
                        kind: "value_error".into(),
                    });
                }
                find_nul(item, loc, out);
                loc.pop();
            }
        }
        _ => {}
    }
}

/// Most wrong fields one 422 reports, and the most re-parses spent finding them.
const MAX_REPORTED: usize = 20;
const MAX_REPARSES: usize = 120;
/// Above this size only the first type error is reported: finding the others re-parses the
/// whole body each time.
const MAX_MULTI_ERROR_BYTES: usize = 256 * 1024;

/// Deserializes `value` into `T`. When a field is wrong, the error is recorded, the field is
/// replaced by a stand-in of a type that fits (see [`collect_errors`]) and parsing goes on, so
/// the client learns about every wrong field at once; once `T` parses, `validate` adds the rule
/// violations of the fields that were not already reported.
fn from_value<T, F>(value: serde_json::Value, validate: Option<F>) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    F: Fn(&T, &mut Violations),
{
    let first = match deserialize_at::<T>(&value) {
        Ok(parsed) => {
            if let Some(validate) = &validate {
                let mut violations = Violations::body();
                validate(&parsed, &mut violations);
                violations.into_result()?;
            }
            return Ok(parsed);
        }
        Err(err) => err,
    };
    let small = serde_json::to_vec(&value).map_or(0, |b| b.len()) <= MAX_MULTI_ERROR_BYTES;
    let (mut errors, parsed) = if small {
        collect_errors::<T>(value, first)
    } else {
        (vec![first.field_error()], None)
    };
    if let (Some(parsed), Some(validate)) = (parsed, &validate) {
        let mut violations = Violations::body();
        validate(&parsed, &mut violations);
        if let Err(ApiError::Validation(more)) = violations.into_result() {
            for e in more {
                if !errors.iter().any(|known| overlaps(&known.loc, &e.loc)) {
                    errors.push(e);
                }
            }
        }
    }
    Err(ApiError::Validation(errors))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// One failed attempt to deserialize: where it failed and why.
struct TypeError {
    /// The path of the failing value (for a missing field, the object holding it).
    path: Vec<serde_path_to_error::Segment>,
    error: serde_json::Error,
}

impl TypeError {
    fn missing_field(&self) -> Option<String> {
        self.error
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(str::to_string)
    }

    fn loc(&self) -> Vec<String> {
        let mut loc = vec!["body".to_string()];
        for segment in &self.path {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(index.to_string()),
                serde_path_to_error::Segment::Map { key } => loc.push(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => loc.push(variant.clone()),
                serde_path_to_error::Segment::Unknown => loc.push("?".into()),
            }
        }
        if let Some(field) = self.missing_field() {
            loc.push(field);
        }
        loc
    }

    fn field_error(&self) -> FieldError {
        let message = strip_position(&self.error.to_string());
        let loc = self.loc();
        if self.missing_field().is_some() {
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

fn deserialize_at<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, TypeError> {
    serde_path_to_error::deserialize(value).map_err(|err| TypeError {
        path: err.path().iter().cloned().collect(),
        error: err.into_inner(),
    })
}

/// Finds the wrong fields one after another: each is patched with the first stand-in
/// (`""`, `0`, `false`, `[]`, `{}`, an enum's first variant, or removal for optional fields)
/// that lets parsing get past it. Stops when `T` parses, when no stand-in helps or at the
/// limits above. Returns the errors and, if it got that far, the parsed (patched) value.
fn collect_errors<T: DeserializeOwned>(
    mut value: serde_json::Value,
    first: TypeError,
) -> (Vec<FieldError>, Option<T>) {
    let mut errors = vec![first.field_error()];
    let mut current = first;
    let mut reparses = 0;
    loop {
        if errors.len() >= MAX_REPORTED {
            return (errors, None);
        }
        let loc = current.loc();
        let mut advanced = None;
        for candidate in stand_ins(&current) {
            if reparses >= MAX_REPARSES {
                return (errors, None);
            }
            reparses += 1;
            let mut patched = value.clone();
            if !patch(&mut patched, &loc[1..], candidate) {
                continue;
            }
            match deserialize_at::<T>(&patched) {
                Ok(parsed) => return (errors, Some(parsed)),
                Err(next) => {
                    let next_loc = next.loc();
                    if !overlaps(&next_loc, &loc) {
                        advanced = Some((patched, next));
                        break;
                    }
                }
            }
        }
        let Some((patched, next)) = advanced else {
            return (errors, None);
        };
        value = patched;
        errors.push(next.field_error());
        current = next;
    }
}

/// Values to try in place of a wrong or missing field; `None` removes it.
fn stand_ins(err: &TypeError) -> Vec<Option<serde_json::Value>> {
    use serde_json::json;
    let mut out = Vec::new();
    let message = err.error.to_string();
    if let Some(expected) = message.split("expected one of `").nth(1) {
        if let Some(variant) = expected.split('`').next() {
            out.push(Some(json!(variant)));
        }
    } else if let Some(expected) = message.split("expected `").nth(1) {
        if let Some(variant) = expected.split('`').next() {
            out.push(Some(json!(variant)));
        }
    }
    if err.missing_field().is_none() {
        out.push(None);
    }
    out.extend(
        [
            json!(""),
            json!(0),
            json!(false),
            json!([]),
            json!({}),
            json!("00000000-0000-0000-0000-000000000000"),
            json!("1970-01-01T00:00:00Z"),
        ]
        .into_iter()
        .map(Some),
    );
    out
}

/// Sets (or, with `None`, removes) the value at `path` (object keys and array indexes).
fn patch(
    root: &mut serde_json::Value,
    path: &[String],
    candidate: Option<serde_json::Value>,
) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        node = match node {
            serde_json::Value::Object(map) => match map.get_mut(segment) {
                Some(next) => next,
                None => return false,
            },
            serde_json::Value::Array(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match (node, candidate) {
        (serde_json::Value::Object(map), Some(v)) => {
            map.insert(last.clone(), v);
            true
        }
        (serde_json::Value::Object(map), None) => map.remove(last).is_some(),
        (serde_json::Value::Array(items), Some(v)) => {
            match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(slot) => {
                    *slot = v;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// serde_json appends " at line X column Y"; the location is already in `loc`.
fn strip_position(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string()
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
        parse_query(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// Parses and validates a query string, reporting every wrong parameter at once: a parameter
/// that does not parse is recorded and left out (or, when required, given a stand-in) and
/// parsing goes on. Text holding U+0000 or bytes that are not UTF-8 is refused by the edge guard
/// before any handler runs (`crate::edge`).
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut errors: Vec<FieldError> = Vec::new();
    let parsed = loop {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter())
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(value) => break Some(value),
            Err(err) => {
                let field = err.path().to_string();
                let msg = err.into_inner().to_string();
                let missing = msg
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_string);
                let name = missing.clone().unwrap_or(field);
                let kind = if missing.is_some() {
                    "missing"
                } else if msg.starts_with("unknown variant") {
                    "enum"
                } else {
                    "type_error"
                };
                let loc: Vec<&str> = if name == "." {
                    vec!["query"]
                } else {
                    vec!["query", &name]
                };
                let msg = if missing.is_some() {
                    "Field required".to_string()
                } else {
                    msg
                };
                let error = FieldError::new(&loc, msg, kind);
                let seen = errors.iter().any(|e| e.loc == error.loc);
                if !seen {
                    errors.push(error);
                }
                if name == "." || seen || errors.len() >= MAX_REPORTED {
                    break None;
                }
                pairs.retain(|(k, _)| *k != name);
                if missing.is_some() {
                    // A required parameter: a stand-in lets parsing reach the others.
                    pairs.push((name, String::new()));
                }
            }
        }
    };
    let mut violations = Violations::query();
    if let Some(value) = &parsed {
        value.validate(&mut violations);
    }
    if let Err(ApiError::Validation(more)) = violations.into_result() {
        for e in more {
            if !errors.iter().any(|known| overlaps(&known.loc, &e.loc)) {
                errors.push(e);
            }
        }
    }
    match parsed {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Parses a path id. An id that is not a UUID cannot name any row, so it is a 404 like any
/// other unknown id (and reveals nothing about which ids exist).
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}
