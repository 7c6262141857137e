//! `onboarding/exchange` (Embedded Signup) and `onboarding/manual` (system-user credentials):
//! the same `wharf_shared::onboarding` flows as `/whatsapp-accounts/connect` and
//! `/connect-manual`, answered as a plain snake_case object describing the connected account.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::onboarding::{self, AccountSummary, Ctx, OnboardError};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(exchange))
        .routes(routes!(manual))
}

/// The connection context of the shared onboarding functions.
pub(crate) fn onboarding_ctx(state: &AppState) -> Ctx<'_> {
    Ctx {
        db: &state.db,
        secrets: &state.secrets,
        config: &state.config,
    }
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Maps an onboarding failure to the platform's answer; `camel_case` names fields the
/// `/api/v1` way (`phoneNumberId`), otherwise as the snake_case dialects do.
pub(crate) fn onboard_error(err: OnboardError, camel_case: bool) -> ApiError {
    match err {
        OnboardError::Invalid { field, message } => {
            let name = if camel_case {
                camel(field)
            } else {
                field.to_string()
            };
            ApiError::invalid_field(&name, message)
        }
        OnboardError::Unavailable(e) => {
            ApiError::from_meta(&e, "verifying the credentials; nothing was saved")
        }
        OnboardError::Conflict(m) => ApiError::Conflict(m),
        e @ OnboardError::NoApp => ApiError::BadRequest(e.to_string()),
        OnboardError::Db(e) => e.into(),
        OnboardError::Other(e) => ApiError::Internal(e),
    }
}

/// The connected account, as this dialect describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAccount {
    pub id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    /// CONNECTED, NEEDS_REAUTH or DISCONNECTED.
    pub status: String,
    pub quality_rating: Option<String>,
    pub throughput_level: Option<String>,
    /// EMBEDDED_SIGNUP or MANUAL.
    pub connection_method: String,
    /// The bot answering this number, when one is linked.
    pub bot_id: Option<Uuid>,
    /// Where this number's own webhooks go.
    pub webhook_url: String,
    pub connected_at: chrono::DateTime<chrono::Utc>,
}

async fn connected(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<impl IntoResponse> {
    let a: AccountSummary = onboarding::account_summary(&state.db, org_id, id)
        .await
        .map_err(|e| onboard_error(e, false))?
        .ok_or_else(|| ApiError::not_found("WhatsApp account"))?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectedAccount {
            webhook_url: format!("{}/webhooks/whatsapp/{}", state.config.public_url, a.id),
            id: a.id,
            waba_id: a.waba_id,
            phone_number_id: a.phone_number_id,
            display_phone: a.display_phone,
            verified_name: a.verified_name,
            status: a.status,
            quality_rating: a.quality_rating,
            throughput_level: a.throughput_level,
            connection_method: a.connection_method,
            bot_id: a.bot_config_id,
            connected_at: a.connected_at,
        }),
    ))
}

fn check_graph_id(v: &mut Violations, field: &str, value: Option<&str>) {
    if let Some(id) = value {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_digit()) {
            v.add(field, "must be a numeric Meta id");
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExchangeRequest {
    /// The Meta authorization code from Embedded Signup.
    pub code: String,
    /// The number chosen in the signup session (the WABA's first number when absent).
    pub phone_number_id: Option<String>,
}

impl Validate for ExchangeRequest {
    fn validate(&self, v: &mut Violations) {
        if self.code.trim().is_empty() {
            v.add("code", "must not be empty");
        } else if self.code.len() > 4096 {
            v.add("code", "must be at most 4096 characters");
        }
        check_graph_id(v, "phone_number_id", self.phone_number_id.as_deref());
    }
}

/// Complete Embedded Signup: exchange Meta's code for a business token, subscribe the app to
/// the WABA and connect the number.
#[utoipa::path(post, path = "/whatsapp/onboarding/exchange", tag = "whatsapp-api",
    request_body = ExchangeRequest,
    responses((status = 201, body = ConnectedAccount), (status = 400), (status = 403), (status = 409),
              (status = 422), (status = 503)))]
async fn exchange(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ExchangeRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = onboarding::connect_embedded(
        onboarding_ctx(&state),
        org_id,
        onboarding::EmbeddedSignup {
            code: &body.code,
            phone_number_id: body.phone_number_id.as_deref(),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| onboard_error(e, false))?;
    connected(&state, org_id, id).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ManualRequest {
    pub waba_id: String,
    pub phone_number_id: String,
    /// A system-user access token with whatsapp_business_messaging and _management.
    pub access_token: String,
}

impl Validate for ManualRequest {
    fn validate(&self, v: &mut Violations) {
        check_graph_id(v, "waba_id", Some(&self.waba_id));
        check_graph_id(v, "phone_number_id", Some(&self.phone_number_id));
        if self.access_token.trim().len() < 8 || self.access_token.len() > 4096 {
            v.add("access_token", "must be a Meta access token");
        }
    }
}

/// Connect a WABA's number manually with system-user credentials, verified against Meta first.
#[utoipa::path(post, path = "/whatsapp/onboarding/manual", tag = "whatsapp-api",
    request_body = ManualRequest,
    responses((status = 201, body = ConnectedAccount), (status = 403), (status = 409), (status = 422),
              (status = 503)))]
async fn manual(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ManualRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = onboarding::connect_manual(
        onboarding_ctx(&state),
        org_id,
        onboarding::ManualCredentials {
            waba_id: &body.waba_id,
            phone_number_id: &body.phone_number_id,
            access_token: &body.access_token,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| onboard_error(e, false))?;
    connected(&state, org_id, id).await
}
