//! `/whatsapp-accounts*`: connecting WhatsApp numbers (Embedded Signup or manual credentials,
//! both verified against Meta before anything is saved), their live health, the org's Meta app
//! settings, and the alerts a human must act on.
//!
//! Access tokens and app secrets are stored encrypted and only ever returned masked.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    accounts::{raise_alert, Alert},
    meta::{ErrorClass, MetaClient, MetaError},
    onboarding,
    secret::mask,
};

use super::{
    wa::onboarding::{onboard_error, onboarding_ctx},
    Data,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(connect))
        .routes(routes!(connect_manual))
        .routes(routes!(update_account, disconnect))
        .routes(routes!(health))
        .routes(routes!(get_meta_config, put_meta_config))
        .routes(routes!(list_alerts))
        .routes(routes!(unread_alerts))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(acknowledge_all))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountOut {
    pub id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    pub alias: Option<String>,
    /// CONNECTED, NEEDS_REAUTH (token expired: sends are held) or DISCONNECTED.
    pub status: String,
    pub status_reason: Option<String>,
    pub quality_rating: Option<String>,
    pub throughput_level: Option<String>,
    pub messaging_limit: Option<String>,
    /// The send rate in force: the override, or what the throughput level allows.
    pub messages_per_second: i32,
    pub messages_per_second_override: Option<i32>,
    pub connection_method: String,
    /// Masked, e.g. `EAAB****9xYz`.
    pub access_token: String,
    pub has_app_secret: bool,
    /// Where this channel's own webhooks go (per-channel app secret and verify token).
    pub webhook_url: String,
    pub last_health_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    waba_id: String,
    phone_number_id: String,
    display_phone: Option<String>,
    verified_name: Option<String>,
    alias: Option<String>,
    status: String,
    status_reason: Option<String>,
    quality_rating: Option<String>,
    throughput_level: Option<String>,
    messaging_limit: Option<String>,
    messages_per_second: Option<i32>,
    connection_method: String,
    access_token_enc: String,
    app_secret_enc: Option<String>,
    last_health_at: Option<DateTime<Utc>>,
    connected_at: DateTime<Utc>,
    disconnected_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str = "id, waba_id, phone_number_id, display_phone, verified_name, alias, status, \
    status_reason, quality_rating, throughput_level, messaging_limit, messages_per_second, connection_method, \
    access_token_enc, app_secret_enc, last_health_at, connected_at, disconnected_at, created_at, updated_at";

impl AccountRow {
    fn into_out(self, state: &AppState) -> AccountOut {
        let token = state
            .secrets
            .decrypt(&self.access_token_enc)
            .unwrap_or_default();
        AccountOut {
            messages_per_second: self.messages_per_second.unwrap_or_else(|| {
                wharf_shared::accounts::rate_for_level(self.throughput_level.as_deref())
            }),
            messages_per_second_override: self.messages_per_second,
            access_token: mask(&token),
            has_app_secret: self.app_secret_enc.is_some(),
            webhook_url: format!("{}/webhooks/whatsapp/{}", state.config.public_url, self.id),
            id: self.id,
            waba_id: self.waba_id,
            phone_number_id: self.phone_number_id,
            display_phone: self.display_phone,
            verified_name: self.verified_name,
            alias: self.alias,
            status: self.status,
            status_reason: self.status_reason,
            quality_rating: self.quality_rating,
            throughput_level: self.throughput_level,
            messaging_limit: self.messaging_limit,
            connection_method: self.connection_method,
            last_health_at: self.last_health_at,
            connected_at: self.connected_at,
            disconnected_at: self.disconnected_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

async fn fetch_row(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<AccountRow> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM whatsapp_accounts WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("WhatsApp account"))
}

/// List the organization's WhatsApp accounts (disconnected ones included, last).
#[utoipa::path(get, path = "/whatsapp-accounts", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<Vec<AccountOut>>), (status = 401), (status = 403)))]
async fn list_accounts(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<AccountOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(accounts_of(&state, org_id).await?))
}

/// The organization's accounts (disconnected ones last), tokens masked: the list above and
/// the console's accounts page.
pub(crate) async fn accounts_of(state: &AppState, org_id: Uuid) -> ApiResult<Vec<AccountOut>> {
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM whatsapp_accounts WHERE org_id = $1
          ORDER BY status = 'DISCONNECTED', created_at, id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(rows.into_iter().map(|r| r.into_out(state)).collect())
}

/// Maps a Meta error met while verifying user-supplied credentials: Meta rejecting them is the
/// caller's bad input (422 on `field`); Meta throttling or down is a 503 with `Retry-After`.
fn credentials_error(err: MetaError, field: &str) -> ApiError {
    match err.class() {
        ErrorClass::Retryable => {
            ApiError::from_meta(&err, "verifying the credentials; nothing was saved")
        }
        _ => ApiError::invalid_field(
            field,
            format!(
                "Meta rejected this: {} ({})",
                err.title(),
                err.code().unwrap_or(0)
            ),
        ),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// The Embedded Signup authorization code.
    pub code: String,
    /// From the Embedded Signup session; looked up from the token when absent.
    pub waba_id: Option<String>,
    /// From the Embedded Signup session; the WABA's first number when absent.
    pub phone_number_id: Option<String>,
    /// Six-digit two-step verification PIN used to register the number.
    pub pin: Option<String>,
    pub alias: Option<String>,
}

fn check_pin(v: &mut Violations, pin: Option<&str>) {
    if let Some(p) = pin {
        if p.len() != 6 || !p.chars().all(|c| c.is_ascii_digit()) {
            v.add("pin", "must be exactly 6 digits");
        }
    }
}

fn check_graph_id(v: &mut Violations, field: &str, value: Option<&str>) {
    if let Some(id) = value {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_digit()) {
            v.add(field, "must be a numeric Meta id");
        }
    }
}

impl Validate for ConnectRequest {
    fn validate(&self, v: &mut Violations) {
        if self.code.trim().is_empty() {
            v.add("code", "must not be empty");
        }
        check_graph_id(v, "wabaId", self.waba_id.as_deref());
        check_graph_id(v, "phoneNumberId", self.phone_number_id.as_deref());
        check_pin(v, self.pin.as_deref());
        v.optional_text("alias", self.alias.as_deref(), MAX_NAME_LEN);
    }
}

/// Connect a number through Meta Embedded Signup: exchange the code for a business token,
/// subscribe our app to the WABA, register the number, and save it.
#[utoipa::path(post, path = "/whatsapp-accounts/connect", tag = "whatsapp-accounts", request_body = ConnectRequest,
    responses((status = 201, body = Data<AccountOut>), (status = 409), (status = 422), (status = 503)))]
async fn connect(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ConnectRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = onboarding::connect_embedded(
        onboarding_ctx(&state),
        org_id,
        onboarding::EmbeddedSignup {
            code: &body.code,
            waba_id: body.waba_id.as_deref(),
            phone_number_id: body.phone_number_id.as_deref(),
            pin: body.pin.as_deref(),
            alias: body.alias.as_deref(),
        },
    )
    .await
    .map_err(|e| onboard_error(e, true))?;
    Ok((
        StatusCode::CREATED,
        Data::new(fetch_row(&state, org_id, id).await?.into_out(&state)),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectManualRequest {
    pub waba_id: String,
    pub phone_number_id: String,
    /// A system-user access token with whatsapp_business_messaging and _management.
    pub access_token: String,
    pub alias: Option<String>,
    /// Own Meta app secret, to receive this channel's webhooks at its own URL.
    pub app_secret: Option<String>,
    /// Verify token for this channel's webhook GET challenge.
    pub verify_token: Option<String>,
}

impl Validate for ConnectManualRequest {
    fn validate(&self, v: &mut Violations) {
        check_graph_id(v, "wabaId", Some(&self.waba_id));
        check_graph_id(v, "phoneNumberId", Some(&self.phone_number_id));
        if self.access_token.trim().len() < 8 || self.access_token.len() > 4096 {
            v.add("accessToken", "must be a Meta access token");
        }
        v.optional_text("alias", self.alias.as_deref(), MAX_NAME_LEN);
        v.optional_text("appSecret", self.app_secret.as_deref(), 256);
        v.optional_text("verifyToken", self.verify_token.as_deref(), 256);
    }
}

/// Connect a number with manually provided credentials, verified against Meta first.
#[utoipa::path(post, path = "/whatsapp-accounts/connect-manual", tag = "whatsapp-accounts",
    request_body = ConnectManualRequest,
    responses((status = 201, body = Data<AccountOut>), (status = 409), (status = 422), (status = 503)))]
async fn connect_manual(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ConnectManualRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = onboarding::connect_manual(
        onboarding_ctx(&state),
        org_id,
        onboarding::ManualCredentials {
            waba_id: &body.waba_id,
            phone_number_id: &body.phone_number_id,
            access_token: &body.access_token,
            alias: body.alias.as_deref(),
            app_secret: body.app_secret.as_deref(),
            verify_token: body.verify_token.as_deref(),
        },
    )
    .await
    .map_err(|e| onboard_error(e, true))?;
    Ok((
        StatusCode::CREATED,
        Data::new(fetch_row(&state, org_id, id).await?.into_out(&state)),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccountRequest {
    pub alias: Option<String>,
    /// A new access token; verified against Meta before it replaces the old one.
    pub access_token: Option<String>,
    /// Send-rate override (1-10000 messages/s); `null` keeps it, use `resetMessagesPerSecond`
    /// to go back to Meta's throughput level.
    pub messages_per_second: Option<i32>,
    #[serde(default)]
    pub reset_messages_per_second: bool,
}

impl Validate for UpdateAccountRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("alias", self.alias.as_deref(), MAX_NAME_LEN);
        if let Some(t) = &self.access_token {
            if t.trim().len() < 8 || t.len() > 4096 {
                v.add("accessToken", "must be a Meta access token");
            }
        }
        if self
            .messages_per_second
            .is_some_and(|m| !(1..=10_000).contains(&m))
        {
            v.add("messagesPerSecond", "must be between 1 and 10000");
        }
    }
}

/// Update an account's alias, access token or send-rate override. A new token is verified
/// against Meta; an account waiting for one (NEEDS_REAUTH) is connected again.
#[utoipa::path(patch, path = "/whatsapp-accounts/{id}", tag = "whatsapp-accounts", request_body = UpdateAccountRequest,
    responses((status = 200, body = Data<AccountOut>), (status = 404), (status = 422), (status = 503)))]
async fn update_account(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<UpdateAccountRequest>,
) -> ApiResult<Json<Data<AccountOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "WhatsApp account")?;
    let current = fetch_row(&state, org_id, id).await?;
    if current.status == "DISCONNECTED" {
        return Err(ApiError::Conflict(
            "This account is disconnected; connect the number again".into(),
        ));
    }
    let mut info = None;
    if let Some(token) = body.access_token.as_deref().map(str::trim) {
        let meta = MetaClient::from_config(&state.config);
        info = Some(
            meta.phone_number(token, &current.phone_number_id)
                .await
                .map_err(|e| credentials_error(e, "accessToken"))?,
        );
    }
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE whatsapp_accounts SET alias = COALESCE($3, alias),
                messages_per_second = CASE WHEN $5 THEN NULL ELSE COALESCE($4, messages_per_second) END
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .bind(body.alias.as_deref().map(str::trim))
    .bind(body.messages_per_second)
    .bind(body.reset_messages_per_second)
    .execute(&mut *tx)
    .await?;
    if let (Some(token), Some(info)) = (body.access_token.as_deref().map(str::trim), info) {
        sqlx::query(
            "UPDATE whatsapp_accounts SET access_token_enc = $3, status = 'CONNECTED', status_reason = NULL,
                    quality_rating = $4, throughput_level = $5, last_health_at = now()
              WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(org_id)
        .bind(state.secrets.encrypt(token))
        .bind(&info.quality_rating)
        .bind(info.throughput.as_ref().and_then(|t| t.level.clone()))
        .execute(&mut *tx)
        .await?;
        // The expired-token alert is resolved by the new token.
        sqlx::query(
            "UPDATE account_alerts SET acknowledged_at = now() WHERE account_id = $1 AND kind = 'token_invalid'
                AND acknowledged_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Sends held for the token go out now rather than at their next check.
        let released = wharf_shared::outbound::release_held(&mut tx, id).await?;
        tracing::info!(account_id = %id, released, "access token replaced");
    }
    tx.commit().await?;
    Ok(Data::new(
        fetch_row(&state, org_id, id).await?.into_out(&state),
    ))
}

/// Disconnect a WhatsApp account. Its token is erased; its history stays.
#[utoipa::path(delete, path = "/whatsapp-accounts/{id}", tag = "whatsapp-accounts",
    responses((status = 204), (status = 404)))]
async fn disconnect(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "WhatsApp account")?;
    let done = onboarding::disconnect(&state.db, &state.secrets, org_id, id)
        .await
        .map_err(|e| onboard_error(e, true))?;
    if !done {
        return Err(ApiError::not_found("WhatsApp account"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountHealthOut {
    pub account: AccountOut,
    /// True when Meta answered with the number's details using the stored token.
    pub reachable: bool,
    pub token_valid: bool,
    pub meta: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Live health and status from Meta. Refreshes the stored quality and throughput; an expired
/// token marks the account NEEDS_REAUTH and raises an alert.
#[utoipa::path(get, path = "/whatsapp-accounts/{id}/health", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<AccountHealthOut>), (status = 404)))]
async fn health(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<AccountHealthOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "WhatsApp account")?;
    Ok(Data::new(account_health(&state, org_id, id).await?))
}

/// A number's live health from Meta (the body of `GET /whatsapp-accounts/{id}/health`, also
/// shown by the console): refreshes the stored quality and throughput; an expired token marks
/// the account NEEDS_REAUTH and raises an alert.
pub(crate) async fn account_health(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<AccountHealthOut> {
    let row = fetch_row(state, org_id, id).await?;
    if row.status == "DISCONNECTED" {
        let account = row.into_out(state);
        return Ok(AccountHealthOut {
            account,
            reachable: false,
            token_valid: false,
            meta: None,
            error: Some("disconnected".into()),
        });
    }
    let token = state
        .secrets
        .decrypt(&row.access_token_enc)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let meta = MetaClient::from_config(&state.config);
    let (reachable, token_valid, meta_json, error) = match meta
        .phone_number(&token, &row.phone_number_id)
        .await
    {
        Ok(info) => {
            sqlx::query(
                "UPDATE whatsapp_accounts SET display_phone = COALESCE($2, display_phone),
                        verified_name = COALESCE($3, verified_name), quality_rating = $4, throughput_level = $5,
                        messaging_limit = $6, last_health_at = now()
                  WHERE id = $1",
            )
            .bind(id)
            .bind(&info.display_phone_number)
            .bind(&info.verified_name)
            .bind(&info.quality_rating)
            .bind(info.throughput.as_ref().and_then(|t| t.level.clone()))
            .bind(&info.whatsapp_business_manager_messaging_limit)
            .execute(&state.db)
            .await?;
            (true, true, serde_json::to_value(&info).ok(), None)
        }
        Err(e) if e.class() == ErrorClass::AccountLevel => {
            mark_needs_reauth(state, org_id, id, &e).await?;
            (
                true,
                false,
                None,
                Some(format!("{} ({})", e.title(), e.code().unwrap_or(0))),
            )
        }
        Err(e) => (false, true, None, Some(e.to_string())),
    };
    let account = fetch_row(state, org_id, id).await?.into_out(state);
    Ok(AccountHealthOut {
        account,
        reachable,
        token_valid,
        meta: meta_json,
        error,
    })
}

/// Marks an account as needing a new token and raises one alert for it.
async fn mark_needs_reauth(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    err: &MetaError,
) -> ApiResult<()> {
    let reason = format!("{} ({})", err.title(), err.code().unwrap_or(0));
    sqlx::query("UPDATE whatsapp_accounts SET status = 'NEEDS_REAUTH', status_reason = $2 WHERE id = $1 AND status = 'CONNECTED'")
        .bind(id)
        .bind(&reason)
        .execute(&state.db)
        .await?;
    raise_alert(
        &state.db,
        Alert {
            org_id,
            account_id: Some(id),
            kind: "token_invalid",
            severity: "CRITICAL",
            title: "WhatsApp access token is no longer valid",
            message: "Sends from this number are held until a new access token is saved.",
            details: serde_json::json!({"reason": reason}),
        },
    )
    .await
    .map_err(ApiError::Internal)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaConfig {
    pub app_id: Option<String>,
    pub config_id: Option<String>,
}

/// The Meta app used for Embedded Signup (app id and configuration id; never the secret).
#[utoipa::path(get, path = "/whatsapp-accounts/meta-config", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<MetaConfig>)))]
async fn get_meta_config(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<MetaConfig>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT app_id, config_id FROM meta_app_configs WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&state.db)
            .await?;
    let config = match row {
        Some((app_id, config_id)) => MetaConfig {
            app_id: Some(app_id),
            config_id,
        },
        None => MetaConfig {
            app_id: state.config.meta_app_id.clone(),
            config_id: None,
        },
    };
    Ok(Data::new(config))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutMetaConfig {
    pub app_id: String,
    pub config_id: Option<String>,
}

impl Validate for PutMetaConfig {
    fn validate(&self, v: &mut Violations) {
        check_graph_id(v, "appId", Some(&self.app_id));
        check_graph_id(v, "configId", self.config_id.as_deref());
    }
}

/// Save the Meta app configuration (admin).
#[utoipa::path(put, path = "/whatsapp-accounts/meta-config", tag = "whatsapp-accounts", request_body = PutMetaConfig,
    responses((status = 200, body = Data<MetaConfig>), (status = 403), (status = 422)))]
async fn put_meta_config(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<PutMetaConfig>,
) -> ApiResult<Json<Data<MetaConfig>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    sqlx::query(
        "INSERT INTO meta_app_configs (org_id, app_id, config_id) VALUES ($1, $2, $3)
         ON CONFLICT (org_id) DO UPDATE SET app_id = EXCLUDED.app_id, config_id = EXCLUDED.config_id",
    )
    .bind(org_id)
    .bind(&body.app_id)
    .bind(&body.config_id)
    .execute(&state.db)
    .await?;
    Ok(Data::new(MetaConfig {
        app_id: Some(body.app_id),
        config_id: body.config_id,
    }))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AlertOut {
    pub id: Uuid,
    /// `null` for organization-wide alerts (the bot's key, its monthly limit).
    pub account_id: Option<Uuid>,
    pub kind: String,
    /// The kind in capitals (`TOKEN_INVALID`, `LLM_KEY_INVALID`, ...).
    #[serde(rename = "type")]
    pub alert_type: String,
    pub severity: String,
    pub title: String,
    pub message: String,
    pub details: serde_json::Value,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// "true" or "false".
    pub acknowledged: Option<bool>,
}

impl Validate for AlertsQuery {
    fn validate(&self, _: &mut Violations) {}
}

/// List account alerts of the organization (newest first, at most 200).
#[utoipa::path(get, path = "/whatsapp-accounts/alerts", tag = "whatsapp-accounts", params(AlertsQuery),
    responses((status = 200, body = Data<Vec<AlertOut>>)))]
async fn list_alerts(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<AlertsQuery>,
) -> ApiResult<Json<Data<Vec<AlertOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(
        alerts_of(&state.db, org_id, q.acknowledged).await?,
    ))
}

/// The organization's alerts, newest first, at most 200; only acknowledged ones or only
/// unacknowledged ones when `acknowledged` says so (the API's list and the console's).
pub(crate) async fn alerts_of(
    db: &sqlx::PgPool,
    org_id: Uuid,
    acknowledged: Option<bool>,
) -> Result<Vec<AlertOut>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, account_id, kind, upper(kind) AS alert_type, severity, title, message, details, acknowledged_at, acknowledged_by, created_at
           FROM account_alerts
          WHERE org_id = $1 AND ($2::bool IS NULL OR (acknowledged_at IS NOT NULL) = $2)
          ORDER BY created_at DESC, id LIMIT 200",
    )
    .bind(org_id)
    .bind(acknowledged)
    .fetch_all(db)
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountOut {
    pub count: i64,
}

/// Count unacknowledged alerts.
#[utoipa::path(get, path = "/whatsapp-accounts/alerts/unread-count", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<CountOut>)))]
async fn unread_alerts(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<CountOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM account_alerts WHERE org_id = $1 AND acknowledged_at IS NULL",
    )
    .bind(org_id)
    .fetch_one(&state.db)
    .await?;
    Ok(Data::new(CountOut { count }))
}

fn acting_user(auth: &Auth) -> Option<Uuid> {
    match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    }
}

/// Mark an alert as acknowledged.
#[utoipa::path(post, path = "/whatsapp-accounts/alerts/{id}/acknowledge", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<AlertOut>), (status = 404)))]
async fn acknowledge_alert(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<AlertOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Alert")?;
    Ok(Data::new(
        acknowledge(&state.db, org_id, id, acting_user(&auth)).await?,
    ))
}

/// Acknowledges one of the organization's alerts (again: a no-op keeping the first time and
/// person); 404 when it is not the organization's.
pub(crate) async fn acknowledge(
    db: &sqlx::PgPool,
    org_id: Uuid,
    id: Uuid,
    by: Option<Uuid>,
) -> ApiResult<AlertOut> {
    let alert: Option<AlertOut> = sqlx::query_as(
        "UPDATE account_alerts SET acknowledged_at = COALESCE(acknowledged_at, now()),
                acknowledged_by = COALESCE(acknowledged_by, $3)
          WHERE id = $1 AND org_id = $2
          RETURNING id, account_id, kind, upper(kind) AS alert_type, severity, title, message, details, acknowledged_at, acknowledged_by, created_at",
    )
    .bind(id)
    .bind(org_id)
    .bind(by)
    .fetch_optional(db)
    .await?;
    alert.ok_or_else(|| ApiError::not_found("Alert"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgedOut {
    pub acknowledged: u64,
}

/// Mark all alerts of the organization as acknowledged.
#[utoipa::path(post, path = "/whatsapp-accounts/alerts/acknowledge-all", tag = "whatsapp-accounts",
    responses((status = 200, body = Data<AcknowledgedOut>)))]
async fn acknowledge_all(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<AcknowledgedOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    Ok(Data::new(AcknowledgedOut {
        acknowledged: acknowledge_all_of(&state.db, org_id, acting_user(&auth)).await?,
    }))
}

/// Acknowledges every open alert of the organization; returns how many.
pub(crate) async fn acknowledge_all_of(
    db: &sqlx::PgPool,
    org_id: Uuid,
    by: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_alerts SET acknowledged_at = now(), acknowledged_by = $2
          WHERE org_id = $1 AND acknowledged_at IS NULL",
    )
    .bind(org_id)
    .bind(by)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
