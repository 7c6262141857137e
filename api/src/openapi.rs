//! The OpenAPI document's frame: security schemes, the error bodies, and the error answers
//! every operation can give, added from what the edge and the extractors really do (see
//! ARCHITECTURE.md, "API conventions"), so that a generated client and a schema-driven fuzzer
//! agree with the server.

use utoipa::{
    openapi::{
        path::Operation,
        response::{Response, ResponseBuilder},
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
        ContentBuilder, Ref, RefOr,
    },
    Modify, OpenApi,
};

use crate::error::{ErrorBody, FieldError, ValidationErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(title = "Wharf API", description = "WhatsApp customer experience at campaign scale."),
    components(schemas(ErrorBody, ValidationErrorBody, FieldError)),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("apiKey" = []))
)]
pub struct ApiDoc;

/// Operations that take no credentials (method, path under `/api/v1`). A test calls every
/// other operation without credentials and expects 401, so this list cannot drift.
pub const PUBLIC_OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ready"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/templates/{id}/header-media"),
];

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or cm_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// Adds the error answers to every operation; run on the finished document (the routes are
/// merged in after `ApiDoc`'s own modifiers ran).
pub fn add_error_responses_everywhere(openapi: &mut utoipa::openapi::OpenApi) {
    {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, slot) in [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ] {
                if let Some(op) = slot.as_mut() {
                    let public = PUBLIC_OPERATIONS.contains(&(method, path.as_str()));
                    add_error_responses(op, path, public);
                }
            }
        }
    }
}

fn add_error_responses(op: &mut Operation, path: &str, public: bool) {
    if public {
        // An empty requirement: no credentials needed.
        op.security = Some(vec![SecurityRequirement::default()]);
    }
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        let entry = op
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
        // Declared by a handler without a body: give it the error shape.
        if let RefOr::T(response) = entry {
            if response.content.is_empty() {
                *response = error_response(status, &response.description);
            }
        }
    };
    if !public {
        add("401", "Missing, invalid or expired credentials");
        add("403", "The role or API key scope does not allow this");
    }
    if path.contains('{') {
        add("404", "Unknown id, or another organization's");
    }
    if has_body {
        add("413", "The body is larger than this route accepts");
    }
    add("414", "The URI is too long");
    add("422", "Invalid input: every wrong field is listed");
    if path.ends_with("/auth/login") {
        add("429", "Too many attempts; see Retry-After");
    }
    add(
        "503",
        "A dependency (the database, or Meta) is unavailable; retry (see Retry-After when given)",
    );
    // Statuses a handler declared itself (409, 429, ...) get the error shape too.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = response {
            if r.content.is_empty() && status.starts_with(['4', '5']) {
                *r = error_response(status, &r.description);
            }
        }
    }
}

fn error_response(status: &str, description: &str) -> Response {
    let schema = if status == "422" {
        "ValidationErrorBody"
    } else {
        "ErrorBody"
    };
    let description = if description.is_empty() {
        "Error"
    } else {
        description
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}
