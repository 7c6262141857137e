//! Connecting WhatsApp numbers, the one flow behind `/api/v1/whatsapp-accounts/connect` and
//! `/connect-manual`, the WhatsApp API's `onboarding/exchange` and `onboarding/manual`, and
//! HydraCore's `POST /v1/instances/{id}/channels/whatsapp`: credentials are verified against
//! Meta before anything is saved, secrets are stored encrypted, the app is subscribed to the
//! WABA. Also the disconnection (history kept) and HydraCore's channel endpoints.
//!
//! Errors name fields in snake_case (`waba_id`, `phone_number_id`, `access_token`, `code`,
//! `pin`); a camelCase dialect converts them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    crypto::SecretBox,
    meta::{ErrorClass, MetaClient, MetaError, PhoneNumberInfo},
    Config,
};

/// What connecting needs: the database, the secret box and the configuration (Meta's URL, the
/// platform app).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub db: &'a PgPool,
    pub secrets: &'a SecretBox,
    pub config: &'a Config,
}

#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    /// Meta rejected what the caller gave (or it does not fit): a 422 on `field` (snake_case).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Meta throttled us or did not answer: nothing was saved, retry later.
    #[error("Meta unavailable: {0}")]
    Unavailable(MetaError),
    /// The number is already connected (here or in another organization).
    #[error("{0}")]
    Conflict(String),
    /// No Meta app is configured (META_APP_ID or the org's meta config).
    #[error("No Meta app configured: set META_APP_ID or PUT /whatsapp-accounts/meta-config")]
    NoApp,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type Result<T> = std::result::Result<T, OnboardError>;

const ALREADY_CONNECTED: &str = "This phone number is already connected";

/// A Meta error met while verifying user-supplied credentials: Meta rejecting them is the
/// caller's bad input on `field`; Meta throttling or down is `Unavailable`.
fn credentials_error(err: MetaError, field: &'static str) -> OnboardError {
    match err.class() {
        ErrorClass::Retryable => OnboardError::Unavailable(err),
        _ => OnboardError::Invalid {
            field,
            message: format!(
                "Meta rejected this: {} ({})",
                err.title(),
                err.code().unwrap_or(0)
            ),
        },
    }
}

fn invalid(field: &'static str, message: &str) -> OnboardError {
    OnboardError::Invalid {
        field,
        message: message.into(),
    }
}

/// The Meta app id used for Embedded Signup and token inspection: `META_APP_ID`, else the
/// organization's saved meta config.
pub async fn app_id(ctx: Ctx<'_>, org_id: Uuid) -> Result<String> {
    if let Some(id) = &ctx.config.meta_app_id {
        return Ok(id.clone());
    }
    let saved: Option<String> =
        sqlx::query_scalar("SELECT app_id FROM meta_app_configs WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(ctx.db)
            .await?;
    saved.ok_or(OnboardError::NoApp)
}

struct NewAccount<'a> {
    org_id: Uuid,
    waba_id: &'a str,
    token: &'a str,
    info: &'a PhoneNumberInfo,
    display_phone: Option<&'a str>,
    alias: Option<&'a str>,
    app_secret: Option<&'a str>,
    verify_token: Option<&'a str>,
    method: &'a str,
    bot_config_id: Option<Uuid>,
}

async fn insert_account(ctx: Ctx<'_>, a: NewAccount<'_>) -> Result<Uuid> {
    let display = a
        .info
        .display_phone_number
        .as_deref()
        .or(a.display_phone)
        .map(str::to_string);
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO whatsapp_accounts (org_id, waba_id, phone_number_id, display_phone, verified_name, alias,
                access_token_enc, app_secret_enc, verify_token_enc, quality_rating, throughput_level,
                messaging_limit, connection_method, last_health_at, bot_config_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), $14) RETURNING id",
    )
    .bind(a.org_id)
    .bind(a.waba_id)
    .bind(&a.info.id)
    .bind(display)
    .bind(&a.info.verified_name)
    .bind(a.alias)
    .bind(ctx.secrets.encrypt(a.token))
    .bind(a.app_secret.map(|s| ctx.secrets.encrypt(s)))
    .bind(a.verify_token.map(|s| ctx.secrets.encrypt(s)))
    .bind(&a.info.quality_rating)
    .bind(a.info.throughput.as_ref().and_then(|t| t.level.clone()))
    .bind(&a.info.whatsapp_business_manager_messaging_limit)
    .bind(a.method)
    .bind(a.bot_config_id)
    .fetch_one(ctx.db)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e, "whatsapp_accounts_phone_key") {
            OnboardError::Conflict(ALREADY_CONNECTED.into())
        } else {
            e.into()
        }
    })?;
    tracing::info!(account_id = %id, org_id = %a.org_id, connection_method = a.method, "WhatsApp account connected");
    Ok(id)
}

async fn ensure_not_connected(ctx: Ctx<'_>, phone_number_id: &str) -> Result<()> {
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM whatsapp_accounts WHERE phone_number_id = $1 AND status <> 'DISCONNECTED')",
    )
    .bind(phone_number_id)
    .fetch_one(ctx.db)
    .await?;
    if taken {
        return Err(OnboardError::Conflict(ALREADY_CONNECTED.into()));
    }
    Ok(())
}

/// Embedded Signup: the authorization code and what the session reported.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedSignup<'a> {
    pub code: &'a str,
    /// Looked up from the token when absent.
    pub waba_id: Option<&'a str>,
    /// The WABA's first number when absent.
    pub phone_number_id: Option<&'a str>,
    /// Two-step verification PIN to register the number with.
    pub pin: Option<&'a str>,
    pub alias: Option<&'a str>,
}

/// Connects a number through Meta Embedded Signup: exchanges the code for a business token,
/// subscribes our app to the WABA, registers the number (with a PIN), and saves it.
pub async fn connect_embedded(ctx: Ctx<'_>, org_id: Uuid, req: EmbeddedSignup<'_>) -> Result<Uuid> {
    let meta = MetaClient::from_config(ctx.config);
    let app_id = app_id(ctx, org_id).await?;
    let app_secret = ctx.config.meta_app_secret.expose();
    let token = meta
        .exchange_code(&app_id, app_secret, req.code.trim())
        .await
        .map_err(|e| credentials_error(e, "code"))?;
    let waba_id = match req.waba_id {
        Some(w) => w.to_string(),
        None => meta
            .token_wabas(&app_id, app_secret, &token)
            .await
            .map_err(|e| credentials_error(e, "code"))?
            .into_iter()
            .next()
            .ok_or_else(|| invalid("waba_id", "the signup granted no WhatsApp Business Account"))?,
    };
    let phone_number_id = match req.phone_number_id {
        Some(p) => p.to_string(),
        None => meta
            .waba_phone_numbers(&token, &waba_id)
            .await
            .map_err(|e| credentials_error(e, "waba_id"))?
            .data
            .into_iter()
            .next()
            .map(|n| n.id)
            .ok_or_else(|| {
                invalid(
                    "phone_number_id",
                    "this WhatsApp Business Account has no phone number",
                )
            })?,
    };
    ensure_not_connected(ctx, &phone_number_id).await?;
    meta.subscribe_app(&token, &waba_id)
        .await
        .map_err(|e| credentials_error(e, "waba_id"))?;
    if let Some(pin) = req.pin {
        meta.register_number(&token, &phone_number_id, pin)
            .await
            .map_err(|e| credentials_error(e, "pin"))?;
    }
    let info = meta
        .phone_number(&token, &phone_number_id)
        .await
        .map_err(|e| credentials_error(e, "phone_number_id"))?;
    insert_account(
        ctx,
        NewAccount {
            org_id,
            waba_id: &waba_id,
            token: &token,
            info: &info,
            display_phone: None,
            alias: req.alias,
            app_secret: None,
            verify_token: None,
            method: "EMBEDDED_SIGNUP",
            bot_config_id: None,
        },
    )
    .await
}

/// Manually provided system-user credentials.
#[derive(Debug, Clone, Default)]
pub struct ManualCredentials<'a> {
    pub waba_id: &'a str,
    pub phone_number_id: &'a str,
    pub access_token: &'a str,
    pub alias: Option<&'a str>,
    /// Own Meta app secret, to receive this channel's webhooks at its own URL.
    pub app_secret: Option<&'a str>,
    pub verify_token: Option<&'a str>,
}

/// Verifies that the token reaches the number within the WABA, then returns its details.
async fn verify_number(
    meta: &MetaClient,
    token: &str,
    waba_id: &str,
    phone_number_id: &str,
) -> Result<PhoneNumberInfo> {
    let numbers = meta
        .waba_phone_numbers(token, waba_id)
        .await
        .map_err(|e| match &e {
            MetaError::Graph(g) if matches!(g.code, 0 | 190) => {
                credentials_error(e, "access_token")
            }
            _ => credentials_error(e, "waba_id"),
        })?;
    if !numbers.data.iter().any(|n| n.id == phone_number_id) {
        return Err(invalid(
            "phone_number_id",
            "this phone number does not belong to that WhatsApp Business Account",
        ));
    }
    meta.phone_number(token, phone_number_id)
        .await
        .map_err(|e| credentials_error(e, "phone_number_id"))
}

/// Connects a number with manually provided credentials, verified against Meta first.
pub async fn connect_manual(
    ctx: Ctx<'_>,
    org_id: Uuid,
    req: ManualCredentials<'_>,
) -> Result<Uuid> {
    let meta = MetaClient::from_config(ctx.config);
    let token = req.access_token.trim();
    let info = verify_number(&meta, token, req.waba_id, req.phone_number_id).await?;
    // Only a caller whose token reaches the number learns whether it is connected elsewhere.
    ensure_not_connected(ctx, req.phone_number_id).await?;
    insert_account(
        ctx,
        NewAccount {
            org_id,
            waba_id: req.waba_id,
            token,
            info: &info,
            display_phone: None,
            alias: req.alias,
            app_secret: req.app_secret,
            verify_token: req.verify_token,
            method: "MANUAL",
            bot_config_id: None,
        },
    )
    .await
}

/// A channel of its own (HydraCore): the number's token, its own app secret and verify token,
/// and the bot that answers it.
#[derive(Debug, Clone)]
pub struct ChannelCredentials<'a> {
    pub access_token: &'a str,
    pub app_secret: &'a str,
    pub phone_number_id: &'a str,
    pub display_phone: Option<&'a str>,
    pub verify_token: &'a str,
    pub bot_config_id: Uuid,
}

/// Connects a number as a channel with its own webhook secrets, answered by `bot_config_id`:
/// finds the token's WABA holding the number (`debug_token`), verifies the number, subscribes
/// the app, and saves it.
pub async fn connect_channel(
    ctx: Ctx<'_>,
    org_id: Uuid,
    req: ChannelCredentials<'_>,
) -> Result<Uuid> {
    let meta = MetaClient::from_config(ctx.config);
    let token = req.access_token.trim();
    let app_id = app_id(ctx, org_id).await?;
    let wabas = meta
        .token_wabas(&app_id, ctx.config.meta_app_secret.expose(), token)
        .await
        .map_err(|e| credentials_error(e, "access_token"))?;
    let mut found = None;
    for waba in &wabas {
        match verify_number(&meta, token, waba, req.phone_number_id).await {
            Ok(info) => {
                found = Some((waba.clone(), info));
                break;
            }
            Err(OnboardError::Invalid { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    let Some((waba_id, info)) = found else {
        // Meta's own verdict on a token it does not accept at all (expired, made up).
        if let Err(e) = meta.phone_number(token, req.phone_number_id).await {
            match &e {
                MetaError::Graph(g) if matches!(g.code, 0 | 190) => {
                    return Err(credentials_error(e, "access_token"))
                }
                _ if e.class() == ErrorClass::Retryable => {
                    return Err(OnboardError::Unavailable(e))
                }
                _ => {}
            }
        }
        return Err(invalid(
            "phone_number_id",
            "this access token grants no WhatsApp Business Account holding this phone number",
        ));
    };
    ensure_not_connected(ctx, req.phone_number_id).await?;
    meta.subscribe_app(token, &waba_id)
        .await
        .map_err(|e| credentials_error(e, "access_token"))?;
    insert_account(
        ctx,
        NewAccount {
            org_id,
            waba_id: &waba_id,
            token,
            info: &info,
            display_phone: req.display_phone,
            alias: None,
            app_secret: Some(req.app_secret),
            verify_token: Some(req.verify_token),
            method: "MANUAL",
            bot_config_id: Some(req.bot_config_id),
        },
    )
    .await
}

/// Disconnects an account: its secrets are erased, its history stays. `false` when the org has
/// no such connected account.
pub async fn disconnect(
    db: &PgPool,
    secrets: &SecretBox,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE whatsapp_accounts SET status = 'DISCONNECTED', disconnected_at = now(), access_token_enc = $3,
                app_secret_enc = NULL, verify_token_enc = NULL
          WHERE id = $1 AND org_id = $2 AND status <> 'DISCONNECTED'",
    )
    .bind(account_id)
    .bind(org_id)
    .bind(secrets.encrypt(""))
    .execute(db)
    .await?;
    if done.rows_affected() > 0 {
        tracing::info!(account_id = %account_id, "WhatsApp account disconnected");
    }
    Ok(done.rows_affected() > 0)
}

/// A connected account as the dialects describe it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AccountSummary {
    pub id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    pub status: String,
    pub quality_rating: Option<String>,
    pub throughput_level: Option<String>,
    pub connection_method: String,
    pub bot_config_id: Option<Uuid>,
    pub connected_at: DateTime<Utc>,
}

pub async fn account_summary(
    db: &PgPool,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<Option<AccountSummary>> {
    Ok(sqlx::query_as(
        "SELECT id, waba_id, phone_number_id, display_phone, verified_name, status, quality_rating,
                throughput_level, connection_method, bot_config_id, connected_at
           FROM whatsapp_accounts WHERE id = $1 AND org_id = $2",
    )
    .bind(account_id)
    .bind(org_id)
    .fetch_optional(db)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// HydraCore channel endpoints: one row per channel of an instance (a bot config).

/// The channel types HydraCore knows; only `whatsapp` is operated by this platform.
pub const CHANNEL_TYPES: &[&str] = &["telegram", "whatsapp", "voice", "sms", "email", "web_chat"];

/// Status and message of a channel type this platform does not operate.
pub const NOT_SUPPORTED: &str = "not_supported";

pub fn not_supported_message(channel_type: &str) -> String {
    format!(
        "Channel type '{channel_type}' is not operated by this platform: the endpoint is stored but receives and sends nothing"
    )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChannelEndpoint {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub channel_type: String,
    pub provider: String,
    pub external_identifier: String,
    pub config: serde_json::Value,
    pub connection_id: Option<Uuid>,
    pub enabled: bool,
    pub status: String,
    pub error_message: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub account_id: Option<Uuid>,
}

const ENDPOINT_COLUMNS: &str = "e.id, e.instance_id, e.channel_type, e.provider, e.external_identifier, e.config, \
    e.connection_id, e.enabled, \
    CASE WHEN a.id IS NULL THEN e.status \
         WHEN a.status = 'CONNECTED' THEN 'active' \
         WHEN a.status = 'NEEDS_REAUTH' THEN 'needs_reauth' ELSE 'disconnected' END AS status, \
    CASE WHEN a.status = 'NEEDS_REAUTH' THEN a.status_reason ELSE e.error_message END AS error_message, \
    e.last_event_at, e.created_at, e.updated_at, e.account_id";

/// True when `instance_id` is one of the organization's bot configs.
pub async fn instance_exists(db: &PgPool, org_id: Uuid, instance_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bot_configs WHERE id = $1 AND org_id = $2)",
    )
    .bind(instance_id)
    .bind(org_id)
    .fetch_one(db)
    .await?)
}

pub async fn list_endpoints(
    db: &PgPool,
    org_id: Uuid,
    instance_id: Uuid,
) -> Result<Vec<ChannelEndpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM channel_endpoints e
           LEFT JOIN whatsapp_accounts a ON a.id = e.account_id
          WHERE e.org_id = $1 AND e.instance_id = $2 ORDER BY e.created_at, e.id"
    ))
    .bind(org_id)
    .bind(instance_id)
    .fetch_all(db)
    .await?)
}

pub async fn get_endpoint(
    db: &PgPool,
    org_id: Uuid,
    instance_id: Uuid,
    endpoint_id: Uuid,
) -> Result<Option<ChannelEndpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM channel_endpoints e
           LEFT JOIN whatsapp_accounts a ON a.id = e.account_id
          WHERE e.org_id = $1 AND e.instance_id = $2 AND e.id = $3"
    ))
    .bind(org_id)
    .bind(instance_id)
    .bind(endpoint_id)
    .fetch_optional(db)
    .await?)
}

/// The instance's WhatsApp channel connected through `connect_channel` (not torn down).
pub async fn whatsapp_endpoint(
    db: &PgPool,
    org_id: Uuid,
    instance_id: Uuid,
) -> Result<Option<ChannelEndpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM channel_endpoints e
           JOIN whatsapp_accounts a ON a.id = e.account_id
          WHERE e.org_id = $1 AND e.instance_id = $2 AND e.channel_type = 'whatsapp'
            AND a.status <> 'DISCONNECTED'
          ORDER BY e.created_at DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(instance_id)
    .fetch_optional(db)
    .await?)
}

#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub channel_type: &'a str,
    pub provider: &'a str,
    pub external_identifier: &'a str,
    pub config: serde_json::Value,
    pub connection_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    pub enabled: bool,
    pub webhook_secret: Option<&'a str>,
    /// The connected account behind a WhatsApp channel.
    pub account_id: Option<Uuid>,
}

/// Stores a channel endpoint. Types this platform does not operate get `not_supported` and a
/// message saying so; a WhatsApp endpoint without a connected number waits for
/// `POST .../channels/whatsapp` (`pending`).
pub async fn create_endpoint(
    ctx: Ctx<'_>,
    org_id: Uuid,
    instance_id: Uuid,
    e: NewEndpoint<'_>,
) -> Result<ChannelEndpoint> {
    let (status, message) = if e.channel_type != "whatsapp" {
        (NOT_SUPPORTED, Some(not_supported_message(e.channel_type)))
    } else if e.account_id.is_some() {
        ("active", None)
    } else {
        (
            "pending",
            Some("No WhatsApp number connected: POST /v1/instances/{instance_id}/channels/whatsapp with its credentials".to_string()),
        )
    };
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO channel_endpoints (org_id, instance_id, channel_type, provider, external_identifier, config,
                connection_id, credential_id, enabled, webhook_secret_enc, status, error_message, account_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(org_id)
    .bind(instance_id)
    .bind(e.channel_type)
    .bind(e.provider)
    .bind(e.external_identifier)
    .bind(&e.config)
    .bind(e.connection_id)
    .bind(e.credential_id)
    .bind(e.enabled)
    .bind(e.webhook_secret.map(|s| ctx.secrets.encrypt(s)))
    .bind(status)
    .bind(message)
    .bind(e.account_id)
    .fetch_one(ctx.db)
    .await?;
    get_endpoint(ctx.db, org_id, instance_id, id)
        .await?
        .ok_or_else(|| OnboardError::Other(anyhow::anyhow!("channel endpoint vanished")))
}

/// The endpoint of a number just connected with [`connect_channel`]: the instance's WhatsApp
/// endpoint still waiting for a number (`pending`) takes it; otherwise one is created.
pub async fn attach_whatsapp(
    ctx: Ctx<'_>,
    org_id: Uuid,
    instance_id: Uuid,
    account_id: Uuid,
    phone_number_id: &str,
) -> Result<ChannelEndpoint> {
    let adopted: Option<Uuid> = sqlx::query_scalar(
        "UPDATE channel_endpoints SET account_id = $3, status = 'active', error_message = NULL,
                external_identifier = $4, updated_at = now()
          WHERE id = (SELECT id FROM channel_endpoints
                       WHERE org_id = $1 AND instance_id = $2 AND channel_type = 'whatsapp'
                         AND account_id IS NULL
                       ORDER BY created_at, id LIMIT 1)
          RETURNING id",
    )
    .bind(org_id)
    .bind(instance_id)
    .bind(account_id)
    .bind(phone_number_id)
    .fetch_optional(ctx.db)
    .await?;
    if let Some(id) = adopted {
        return get_endpoint(ctx.db, org_id, instance_id, id)
            .await?
            .ok_or_else(|| OnboardError::Other(anyhow::anyhow!("channel endpoint vanished")));
    }
    create_endpoint(
        ctx,
        org_id,
        instance_id,
        NewEndpoint {
            channel_type: "whatsapp",
            provider: "meta_cloud",
            external_identifier: phone_number_id,
            config: serde_json::json!({}),
            connection_id: None,
            credential_id: None,
            enabled: true,
            webhook_secret: None,
            account_id: Some(account_id),
        },
    )
    .await
}

#[derive(Debug, Clone, Default)]
pub struct EndpointChanges<'a> {
    pub config: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub error_message: Option<&'a str>,
    pub external_identifier: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Updates an endpoint. An unsupported type stays `not_supported` whatever status is asked.
pub async fn update_endpoint(
    db: &PgPool,
    org_id: Uuid,
    instance_id: Uuid,
    endpoint_id: Uuid,
    c: EndpointChanges<'_>,
) -> Result<Option<ChannelEndpoint>> {
    let done = sqlx::query(
        "UPDATE channel_endpoints SET config = COALESCE($4, config), enabled = COALESCE($5, enabled),
                error_message = CASE WHEN channel_type = 'whatsapp' THEN COALESCE($6, error_message) ELSE error_message END,
                external_identifier = COALESCE($7, external_identifier), provider = COALESCE($8, provider),
                status = CASE WHEN channel_type = 'whatsapp' THEN COALESCE($9, status) ELSE status END,
                updated_at = now()
          WHERE org_id = $1 AND instance_id = $2 AND id = $3",
    )
    .bind(org_id)
    .bind(instance_id)
    .bind(endpoint_id)
    .bind(c.config)
    .bind(c.enabled)
    .bind(c.error_message)
    .bind(c.external_identifier)
    .bind(c.provider)
    .bind(c.status)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    get_endpoint(db, org_id, instance_id, endpoint_id).await
}

/// Deletes an endpoint. A WhatsApp endpoint's number is torn down: the app is unsubscribed
/// from its WABA, the number disconnected (secrets erased, sends stopped, history kept).
/// `false` when there is no such endpoint.
pub async fn delete_endpoint(
    ctx: Ctx<'_>,
    org_id: Uuid,
    instance_id: Uuid,
    endpoint_id: Uuid,
) -> Result<bool> {
    let (db, secrets) = (ctx.db, ctx.secrets);
    let account: Option<Option<Uuid>> = sqlx::query_scalar(
        "DELETE FROM channel_endpoints WHERE org_id = $1 AND instance_id = $2 AND id = $3 RETURNING account_id",
    )
    .bind(org_id)
    .bind(instance_id)
    .bind(endpoint_id)
    .fetch_optional(db)
    .await?;
    let Some(account) = account else {
        return Ok(false);
    };
    if let Some(account_id) = account {
        unsubscribe_if_alone(ctx, account_id).await?;
        disconnect(db, secrets, org_id, account_id).await?;
    }
    Ok(true)
}

/// Tears down an instance's WhatsApp channel (see [`delete_endpoint`]). `false` when the
/// instance has no WhatsApp channel.
pub async fn teardown_channel(ctx: Ctx<'_>, org_id: Uuid, instance_id: Uuid) -> Result<bool> {
    let Some(endpoint) = whatsapp_endpoint(ctx.db, org_id, instance_id).await? else {
        return Ok(false);
    };
    delete_endpoint(ctx, org_id, instance_id, endpoint.id).await
}

/// Unsubscribes the app from a number's WABA unless another connected number of the platform
/// shares it. Best effort: the channel goes whatever Meta says.
async fn unsubscribe_if_alone(ctx: Ctx<'_>, account_id: Uuid) -> Result<()> {
    let Some(c) = crate::accounts::credentials(ctx.db, ctx.secrets, account_id).await? else {
        return Ok(());
    };
    if c.status == "DISCONNECTED" {
        return Ok(());
    }
    let shared_waba: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM whatsapp_accounts WHERE waba_id = $1 AND id <> $2
                          AND status <> 'DISCONNECTED')",
    )
    .bind(&c.waba_id)
    .bind(account_id)
    .fetch_one(ctx.db)
    .await?;
    if !shared_waba {
        let meta = MetaClient::from_config(ctx.config);
        if let Err(e) = meta
            .unsubscribe_app(c.access_token.expose(), &c.waba_id)
            .await
        {
            tracing::warn!(account_id = %account_id, error = %e, "unsubscribing the app failed");
        }
    }
    Ok(())
}
