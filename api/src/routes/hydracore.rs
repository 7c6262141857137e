//! The HydraCore channels dialect (`/v1/instances/{instance_id}/channels...`): an instance is
//! one of the organization's bot configs; its channels are endpoints, only WhatsApp operated
//! (through a number connected with its own app secret and verify token, answered by the
//! instance's bot). Other channel types are stored with `status: "not_supported"`.
//!
//! Snake_case bodies, plain objects, 422 `{"detail": [{"loc", "msg", "type"}]}`. Scopes:
//! `whatsapp:read` for GETs, `whatsapp:write` (or `admin`) for the rest. Every handler calls
//! `wharf_shared::onboarding`, the flow `/api/v1/whatsapp-accounts` uses.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::onboarding::{self, ChannelEndpoint, CHANNEL_TYPES};

use super::wa::onboarding::{onboard_error, onboarding_ctx};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

/// The OpenAPI tag of every operation of this dialect.
pub const TAG: &str = "hydracore";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whatsapp_status, setup_whatsapp, teardown_whatsapp))
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(update_channel, delete_channel))
}

/// A path id: malformed is a 422 naming the path parameter (the seed's `detail` shape).
fn path_uuid(raw: &str, name: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            &["path", name],
            format!("Input should be a valid UUID, {e}"),
            "uuid_parsing",
        )])
    })
}

/// The org's instance (bot config): 404 when unknown or another organization's.
async fn instance(state: &AppState, org_id: Uuid, raw: &str) -> ApiResult<Uuid> {
    let id = path_uuid(raw, "instance_id")?;
    if !onboarding::instance_exists(&state.db, org_id, id)
        .await
        .map_err(|e| onboard_error(e, false))?
    {
        return Err(ApiError::not_found("Instance"));
    }
    Ok(id)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhatsAppChannelOut {
    pub display_phone: Option<String>,
    pub enabled: bool,
    pub phone_number_id: String,
    /// `active` (connected), `needs_reauth` (Meta no longer accepts the token) or `disconnected`.
    pub status: String,
    /// Where Meta must send this channel's webhooks (verified with its own app secret and
    /// verify token).
    pub webhook_url: String,
}

async fn whatsapp_out(
    state: &AppState,
    org_id: Uuid,
    endpoint: ChannelEndpoint,
) -> ApiResult<WhatsAppChannelOut> {
    let account_id = endpoint
        .account_id
        .ok_or_else(|| ApiError::not_found("WhatsApp channel"))?;
    let a = onboarding::account_summary(&state.db, org_id, account_id)
        .await
        .map_err(|e| onboard_error(e, false))?
        .ok_or_else(|| ApiError::not_found("WhatsApp channel"))?;
    Ok(WhatsAppChannelOut {
        display_phone: a.display_phone,
        enabled: endpoint.enabled,
        phone_number_id: a.phone_number_id,
        status: endpoint.status,
        webhook_url: format!(
            "{}/webhooks/whatsapp/{}",
            state.config.public_url, account_id
        ),
    })
}

/// WhatsApp channel status for an instance (live: the connected number's status).
#[utoipa::path(get, path = "/instances/{instance_id}/channels/whatsapp", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id")),
    responses((status = 200, body = WhatsAppChannelOut), (status = 403), (status = 404), (status = 422)))]
async fn whatsapp_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<WhatsAppChannelOut>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    let endpoint = onboarding::whatsapp_endpoint(&state.db, org_id, instance_id)
        .await
        .map_err(|e| onboard_error(e, false))?
        .ok_or_else(|| ApiError::not_found("WhatsApp channel"))?;
    Ok(Json(whatsapp_out(&state, org_id, endpoint).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetupWhatsAppRequest {
    /// WABA access token (stored encrypted).
    pub access_token: String,
    /// Meta app secret for X-Hub-Signature-256 verification of this channel's webhooks.
    pub app_secret: String,
    /// Display phone number (e.g. +61400111222); Meta's when it reports one.
    pub display_phone: Option<String>,
    /// Meta phone number id from Embedded Signup.
    pub phone_number_id: String,
    /// Verify token for the webhook GET challenge; generated when absent.
    pub verify_token: Option<String>,
}

impl Validate for SetupWhatsAppRequest {
    fn validate(&self, v: &mut Violations) {
        if self.access_token.trim().len() < 8 || self.access_token.len() > 4096 {
            v.add("access_token", "must be a Meta access token");
        }
        v.text("app_secret", &self.app_secret, 256);
        if self.phone_number_id.is_empty()
            || self.phone_number_id.len() > 64
            || !self.phone_number_id.chars().all(|c| c.is_ascii_digit())
        {
            v.add("phone_number_id", "must be a numeric Meta id");
        }
        v.optional_text("display_phone", self.display_phone.as_deref(), 32);
        v.optional_text("verify_token", self.verify_token.as_deref(), 256);
    }
}

/// Configure WhatsApp for an instance: verifies the token with Meta, stores the secrets
/// encrypted, subscribes the app, links the number to the instance's bot and creates the
/// channel endpoint.
#[utoipa::path(post, path = "/instances/{instance_id}/channels/whatsapp", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id")),
    request_body = SetupWhatsAppRequest,
    responses((status = 201, body = WhatsAppChannelOut), (status = 403), (status = 404), (status = 409),
              (status = 422), (status = 503)))]
async fn setup_whatsapp(
    State(state): State<AppState>,
    auth: Auth,
    Path(instance_id): Path<String>,
    ValidJson(body): ValidJson<SetupWhatsAppRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    if onboarding::whatsapp_endpoint(&state.db, org_id, instance_id)
        .await
        .map_err(|e| onboard_error(e, false))?
        .is_some()
    {
        return Err(ApiError::Conflict(
            "This instance already has a WhatsApp channel; DELETE it first".into(),
        ));
    }
    let verify_token = body
        .verify_token
        .clone()
        .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::thread_rng(), 32));
    let account_id = onboarding::connect_channel(
        onboarding_ctx(&state),
        org_id,
        onboarding::ChannelCredentials {
            access_token: &body.access_token,
            app_secret: body.app_secret.trim(),
            phone_number_id: &body.phone_number_id,
            display_phone: body.display_phone.as_deref(),
            verify_token: &verify_token,
            bot_config_id: instance_id,
        },
    )
    .await
    .map_err(|e| onboard_error(e, false))?;
    let endpoint = onboarding::attach_whatsapp(
        onboarding_ctx(&state),
        org_id,
        instance_id,
        account_id,
        &body.phone_number_id,
    )
    .await
    .map_err(|e| onboard_error(e, false))?;
    Ok((
        StatusCode::CREATED,
        Json(whatsapp_out(&state, org_id, endpoint).await?),
    ))
}

/// Remove the WhatsApp channel from an instance: the app is unsubscribed from the WABA, the
/// number disconnected (its secrets erased, its sends stopped), its history kept.
#[utoipa::path(delete, path = "/instances/{instance_id}/channels/whatsapp", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id")),
    responses((status = 204), (status = 403), (status = 404), (status = 422)))]
async fn teardown_whatsapp(
    State(state): State<AppState>,
    auth: Auth,
    Path(instance_id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    if !onboarding::teardown_channel(onboarding_ctx(&state), org_id, instance_id)
        .await
        .map_err(|e| onboard_error(e, false))?
    {
        return Err(ApiError::not_found("WhatsApp channel"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelOut {
    pub channel_type: String,
    pub config: serde_json::Value,
    pub connection_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub enabled: bool,
    pub error_message: Option<String>,
    pub external_identifier: String,
    pub id: Uuid,
    pub instance_id: Uuid,
    pub last_event_at: Option<DateTime<Utc>>,
    pub provider: String,
    /// `active`, `pending`, `needs_reauth`, `disconnected`, or `not_supported` for the types
    /// this platform does not operate.
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

impl From<ChannelEndpoint> for ChannelOut {
    fn from(e: ChannelEndpoint) -> Self {
        Self {
            channel_type: e.channel_type,
            config: e.config,
            connection_id: e.connection_id,
            created_at: e.created_at,
            enabled: e.enabled,
            error_message: e.error_message,
            external_identifier: e.external_identifier,
            id: e.id,
            instance_id: e.instance_id,
            last_event_at: e.last_event_at,
            provider: e.provider,
            status: e.status,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelOut>,
    pub count: usize,
}

/// List an instance's channel endpoints.
#[utoipa::path(get, path = "/instances/{instance_id}/channels", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id")),
    responses((status = 200, body = ChannelList), (status = 403), (status = 404), (status = 422)))]
async fn list_channels(
    State(state): State<AppState>,
    auth: Auth,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<ChannelList>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    let channels: Vec<ChannelOut> = onboarding::list_endpoints(&state.db, org_id, instance_id)
        .await
        .map_err(|e| onboard_error(e, false))?
        .into_iter()
        .map(ChannelOut::from)
        .collect();
    Ok(Json(ChannelList {
        count: channels.len(),
        channels,
    }))
}

fn object_config(v: &mut Violations, config: Option<&serde_json::Value>) {
    if config.is_some_and(|c| !c.is_object()) {
        v.add("config", "must be an object");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChannelRequest {
    /// telegram | whatsapp | voice | sms | email | web_chat.
    pub channel_type: String,
    /// Channel-specific config (streaming mode, processing rules, ...).
    pub config: Option<serde_json::Value>,
    pub connection_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Phone number, bot username, email address, ... (at most 255 characters).
    pub external_identifier: String,
    /// telegram | meta_cloud | retell | twilio | gmail | resend | ... (at most 50 characters).
    pub provider: String,
    pub webhook_secret: Option<String>,
}

impl Validate for CreateChannelRequest {
    fn validate(&self, v: &mut Violations) {
        if !CHANNEL_TYPES.contains(&self.channel_type.as_str()) {
            v.add_kind(
                "channel_type",
                format!("must be one of: {}", CHANNEL_TYPES.join(", ")),
                "enum",
            );
        }
        v.text("external_identifier", &self.external_identifier, 255);
        v.text("provider", &self.provider, 50);
        object_config(v, self.config.as_ref());
        v.optional_text("webhook_secret", self.webhook_secret.as_deref(), 512);
    }
}

/// Create a channel endpoint. Types this platform does not operate are stored with
/// `status: "not_supported"` and an `error_message` saying so.
#[utoipa::path(post, path = "/instances/{instance_id}/channels", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id")),
    request_body = CreateChannelRequest,
    responses((status = 201, body = ChannelOut), (status = 403), (status = 404), (status = 422)))]
async fn create_channel(
    State(state): State<AppState>,
    auth: Auth,
    Path(instance_id): Path<String>,
    ValidJson(body): ValidJson<CreateChannelRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    let endpoint = onboarding::create_endpoint(
        onboarding_ctx(&state),
        org_id,
        instance_id,
        onboarding::NewEndpoint {
            channel_type: &body.channel_type,
            provider: body.provider.trim(),
            external_identifier: body.external_identifier.trim(),
            config: body.config.unwrap_or_else(|| serde_json::json!({})),
            connection_id: body.connection_id,
            credential_id: body.credential_id,
            enabled: body.enabled.unwrap_or(true),
            webhook_secret: body.webhook_secret.as_deref(),
            account_id: None,
        },
    )
    .await
    .map_err(|e| onboard_error(e, false))?;
    Ok((StatusCode::CREATED, Json(ChannelOut::from(endpoint))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateChannelRequest {
    pub config: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub error_message: Option<String>,
    pub external_identifier: Option<String>,
    pub provider: Option<String>,
    pub status: Option<String>,
}

impl Validate for UpdateChannelRequest {
    fn validate(&self, v: &mut Violations) {
        object_config(v, self.config.as_ref());
        v.optional_text(
            "external_identifier",
            self.external_identifier.as_deref(),
            255,
        );
        v.optional_text("provider", self.provider.as_deref(), 50);
        v.optional_text("status", self.status.as_deref(), 50);
        if self.error_message.as_ref().is_some_and(|m| m.len() > 2000) {
            v.add("error_message", "must be at most 2000 characters");
        }
    }
}

/// Update a channel endpoint. The status of a type this platform does not operate stays
/// `not_supported`.
#[utoipa::path(patch, path = "/instances/{instance_id}/channels/{endpoint_id}", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id"),
           ("endpoint_id" = String, Path, description = "Channel endpoint id")),
    request_body = UpdateChannelRequest,
    responses((status = 200, body = ChannelOut), (status = 403), (status = 404), (status = 422)))]
async fn update_channel(
    State(state): State<AppState>,
    auth: Auth,
    Path((instance_id, endpoint_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<UpdateChannelRequest>,
) -> ApiResult<Json<ChannelOut>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    let endpoint_id = path_uuid(&endpoint_id, "endpoint_id")?;
    let endpoint = onboarding::update_endpoint(
        &state.db,
        org_id,
        instance_id,
        endpoint_id,
        onboarding::EndpointChanges {
            config: body.config,
            enabled: body.enabled,
            error_message: body.error_message.as_deref(),
            external_identifier: body.external_identifier.as_deref().map(str::trim),
            provider: body.provider.as_deref().map(str::trim),
            status: body.status.as_deref().map(str::trim),
        },
    )
    .await
    .map_err(|e| onboard_error(e, false))?
    .ok_or_else(|| ApiError::not_found("Channel endpoint"))?;
    Ok(Json(endpoint.into()))
}

/// Delete a channel endpoint (a WhatsApp endpoint's number is torn down as by
/// `DELETE .../channels/whatsapp`, history kept).
#[utoipa::path(delete, path = "/instances/{instance_id}/channels/{endpoint_id}", tag = "hydracore",
    params(("instance_id" = String, Path, description = "Instance (bot config) id"),
           ("endpoint_id" = String, Path, description = "Channel endpoint id")),
    responses((status = 204), (status = 403), (status = 404), (status = 422)))]
async fn delete_channel(
    State(state): State<AppState>,
    auth: Auth,
    Path((instance_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let instance_id = instance(&state, org_id, &instance_id).await?;
    let endpoint_id = path_uuid(&endpoint_id, "endpoint_id")?;
    if !onboarding::delete_endpoint(onboarding_ctx(&state), org_id, instance_id, endpoint_id)
        .await
        .map_err(|e| onboard_error(e, false))?
    {
        return Err(ApiError::not_found("Channel endpoint"));
    }
    Ok(StatusCode::NO_CONTENT)
}
