//! `/config/bot-enabled`, `/config/auto-categorize`, `/config/bot-mode` and the bot's monthly
//! limit (`/config/bot-limits`): the organization's bot switches (`org_bot_settings`). The bot
//! is off until an admin enables it; while off, new conversations go straight to routing.
//! Reading needs any role; changing needs an admin.

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::{self, BotSettings};

use super::{cx_settings::present, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::ApiResult,
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_bot_enabled, put_bot_enabled))
        .routes(routes!(get_auto_categorize, put_auto_categorize))
        .routes(routes!(get_bot_mode, put_bot_mode))
        .routes(routes!(get_limits, put_limits))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

impl Validate for Enabled {
    fn validate(&self, _: &mut Violations) {}
}

async fn load(state: &AppState, auth: &Auth) -> ApiResult<BotSettings> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(bot::load_settings(&mut conn, org_id).await?)
}

/// Sets one column of the admin's organization's bot settings and answers the new settings.
async fn set(state: &AppState, auth: &Auth, column: &str, value: Value) -> ApiResult<BotSettings> {
    let org_id: Uuid = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO org_bot_settings (org_id) VALUES ($1) ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    // `column` is one of this module's constants, never user input.
    let expr = match column {
        "bot_mode" => "$2::jsonb",
        "monthly_token_limit" => "($2::jsonb #>> '{}')::bigint",
        _ => "($2::jsonb)::text::boolean",
    };
    sqlx::query(&format!(
        "UPDATE org_bot_settings SET {column} = {expr}, updated_at = now() WHERE org_id = $1"
    ))
    .bind(org_id)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    let s = bot::load_settings(&mut tx, org_id).await?;
    tx.commit().await?;
    Ok(s)
}

/// Whether the bot answers new conversations.
#[utoipa::path(get, path = "/config/bot-enabled", tag = "config", responses((status = 200, body = Data<Enabled>)))]
async fn get_bot_enabled(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Enabled>>> {
    let s = load(&state, &auth).await?;
    Ok(Data::new(Enabled {
        enabled: s.bot_enabled,
    }))
}

/// Switch the bot on or off (admin).
#[utoipa::path(put, path = "/config/bot-enabled", tag = "config", request_body = Enabled,
    responses((status = 200, body = Data<Enabled>), (status = 422)))]
async fn put_bot_enabled(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<Enabled>,
) -> ApiResult<Json<Data<Enabled>>> {
    let s = set(&state, &auth, "bot_enabled", Value::Bool(body.enabled)).await?;
    Ok(Data::new(Enabled {
        enabled: s.bot_enabled,
    }))
}

/// Whether new conversations are categorised automatically.
#[utoipa::path(get, path = "/config/auto-categorize", tag = "config", responses((status = 200, body = Data<Enabled>)))]
async fn get_auto_categorize(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Enabled>>> {
    let s = load(&state, &auth).await?;
    Ok(Data::new(Enabled {
        enabled: s.auto_categorize,
    }))
}

/// Switch automatic categorisation on or off (admin).
#[utoipa::path(put, path = "/config/auto-categorize", tag = "config", request_body = Enabled,
    responses((status = 200, body = Data<Enabled>), (status = 422)))]
async fn put_auto_categorize(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<Enabled>,
) -> ApiResult<Json<Data<Enabled>>> {
    let s = set(&state, &auth, "auto_categorize", Value::Bool(body.enabled)).await?;
    Ok(Data::new(Enabled {
        enabled: s.auto_categorize,
    }))
}

/// The bot's handling flags (an object of booleans).
#[utoipa::path(get, path = "/config/bot-mode", tag = "config", responses((status = 200, body = Data<Object>)))]
async fn get_bot_mode(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<Value>>> {
    Ok(Data::new(load(&state, &auth).await?.bot_mode.0))
}

/// `{"flag": true, ...}`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct BotModeRequest(pub serde_json::Map<String, Value>);

impl Validate for BotModeRequest {
    fn validate(&self, v: &mut Violations) {
        if self.0.len() > 20 {
            v.add("body", "at most 20 flags");
        }
        for (name, value) in &self.0 {
            if !value.is_boolean() {
                v.add(name, "must be true or false");
            }
        }
    }
}

/// Change the bot's handling flags (admin): the flags sent replace their old values.
#[utoipa::path(put, path = "/config/bot-mode", tag = "config",
    request_body(content = Object, description = "Flags to change: `{\"name\": true|false}`"),
    responses((status = 200, body = Data<Object>), (status = 422)))]
async fn put_bot_mode(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BotModeRequest>,
) -> ApiResult<Json<Data<Value>>> {
    let mut mode = load(&state, &auth).await?.bot_mode.0;
    if let Value::Object(m) = &mut mode {
        m.extend(body.0);
    } else {
        mode = Value::Object(body.0);
    }
    Ok(Data::new(
        set(&state, &auth, "bot_mode", mode).await?.bot_mode.0,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsBody {
    /// Tokens (input + output) per calendar month; `null`: no limit. At the limit the bot
    /// stops and conversations go to people, with an alert.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub monthly_token_limit: Option<Option<i64>>,
}

impl Validate for LimitsBody {
    fn validate(&self, v: &mut Violations) {
        if let Some(Some(l)) = self.monthly_token_limit {
            if l < 0 {
                v.add(
                    "monthlyTokenLimit",
                    "must be 0 or more, or null for no limit",
                );
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsOut {
    pub monthly_token_limit: Option<i64>,
}

/// The bot's monthly token limit.
#[utoipa::path(get, path = "/config/bot-limits", tag = "config", responses((status = 200, body = Data<LimitsOut>)))]
async fn get_limits(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<LimitsOut>>> {
    let s = load(&state, &auth).await?;
    Ok(Data::new(LimitsOut {
        monthly_token_limit: s.monthly_token_limit,
    }))
}

/// Set the bot's monthly token limit (admin).
#[utoipa::path(put, path = "/config/bot-limits", tag = "config", request_body = LimitsBody,
    responses((status = 200, body = Data<LimitsOut>), (status = 422)))]
async fn put_limits(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<LimitsBody>,
) -> ApiResult<Json<Data<LimitsOut>>> {
    let s = match body.monthly_token_limit {
        Some(limit) => {
            set(
                &state,
                &auth,
                "monthly_token_limit",
                serde_json::json!(limit),
            )
            .await?
        }
        None => load(&state, &auth).await?,
    };
    Ok(Data::new(LimitsOut {
        monthly_token_limit: s.monthly_token_limit,
    }))
}
