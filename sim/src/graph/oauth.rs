//! Embedded-signup token exchange (`GET /oauth/access_token`) and `GET /debug_token`.
//!
//! Codes are registered through the control API and are single-use, as Meta's are.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{authenticate, check_version};
use crate::errors::{GraphError, GraphResult};
use crate::Sim;

/// `GET /{v}/oauth/access_token?client_id&client_secret&code`.
pub async fn exchange(
    State(sim): State<Sim>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = (|| -> GraphResult<Response> {
        check_version(&sim, &version)?;
        let client_id = q
            .get("client_id")
            .ok_or_else(|| GraphError::invalid_param("Missing client_id parameter."))?;
        let secret = q
            .get("client_secret")
            .ok_or_else(|| GraphError::invalid_param("Missing client_secret parameter."))?;
        let code = q
            .get("code")
            .ok_or_else(|| GraphError::invalid_param("Missing code parameter."))?;
        let s = sim.settings();
        if s.app_id.as_ref().is_some_and(|id| id != client_id) {
            return Err(GraphError::invalid_param(
                "Error validating application. Invalid application ID.",
            )
            .subcode(0));
        }
        if s.app_secret.as_ref().is_some_and(|x| x != secret) {
            return Err(GraphError::invalid_param("Error validating client secret."));
        }
        let token = sim.inner.oauth_codes.lock().remove(code).ok_or_else(|| {
            let mut e = GraphError::new(100, "").subcode(36007);
            e.message = Some("Invalid verification code format.".into());
            e
        })?;
        Ok(Json(json!({"access_token": token, "token_type": "bearer"})).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /{v}/debug_token?input_token=...`.
pub async fn debug_token(
    State(sim): State<Sim>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = (|| -> GraphResult<Response> {
        check_version(&sim, &version)?;
        // The caller authenticates with an app token (`APP_ID|APP_SECRET`) or a user token.
        let caller_ok = q.get("access_token").is_some_and(|t| t.contains('|'));
        if !caller_ok {
            authenticate(&sim, &headers, &uri)?;
        }
        let input = q
            .get("input_token")
            .ok_or_else(|| GraphError::invalid_param("The parameter input_token is required."))?;
        let app_id = sim
            .settings()
            .app_id
            .unwrap_or_else(|| "1000000000000001".into());
        let data = match sim.token_info(input) {
            None => {
                json!({"is_valid": false, "error": {"code": 190, "message": "Invalid OAuth access token."}})
            }
            Some(t) => {
                let valid = !t.revoked
                    && t.expires_at
                        .is_none_or(|e| e > chrono::Utc::now().timestamp());
                let targets = t.wabas.clone().unwrap_or_default();
                json!({
                    "app_id": app_id,
                    "type": "SYSTEM_USER",
                    "application": "Wharf",
                    "is_valid": valid,
                    "expires_at": t.expires_at.unwrap_or(0),
                    "data_access_expires_at": 0,
                    "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
                    "granular_scopes": [
                        {"scope": "whatsapp_business_management", "target_ids": targets},
                        {"scope": "whatsapp_business_messaging", "target_ids": targets},
                    ],
                })
            }
        };
        Ok(Json(json!({"data": data})).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}
