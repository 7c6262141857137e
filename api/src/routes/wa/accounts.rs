//! WhatsApp API: connected accounts and numbers (`GET /whatsapp/accounts`,
//! `GET /whatsapp/phone_numbers`) and a number's bot settings
//! (`POST /whatsapp/phone_numbers/{phone_id}/link-bot` and `.../autoreply`, through
//! `wharf_shared::bot::numbers`). `phone_id` is Meta's phone number id.
//!
//! Shapes (the seed is silent): lists are `{"accounts": [...], "count": n}` and
//! `{"phone_numbers": [...], "count": n}`; link-bot and autoreply answer the number's object.
//! Disconnected numbers are not listed.

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::numbers::{self, NumberError};

use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(list_phone_numbers))
        .routes(routes!(link_bot))
        .routes(routes!(set_autoreply))
}

/// A connected number.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct PhoneNumberOut {
    /// The platform's id of the number (`whatsapp_accounts.id`).
    pub id: Uuid,
    /// Meta's phone number id (what `:phone_id` and `phone_number_id` name).
    pub phone_number_id: String,
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    pub waba_id: String,
    /// CONNECTED or NEEDS_REAUTH.
    pub status: String,
    pub quality_rating: Option<String>,
    /// The bot config this number's conversations start with (`null`: the organization's).
    pub bot_id: Option<Uuid>,
    /// Whether the AI may reply on this number.
    pub autoreply: bool,
    pub connected_at: DateTime<Utc>,
}

const NUMBER_COLUMNS: &str = "id, phone_number_id, display_phone, verified_name, waba_id, status, \
    quality_rating, bot_config_id AS bot_id, ai_autoreply AS autoreply, connected_at";

/// A connected WhatsApp Business Account: the numbers of the organization under one WABA.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub waba_id: String,
    /// CONNECTED when at least one of its numbers is, else NEEDS_REAUTH.
    pub status: String,
    /// Meta phone number ids of its connected numbers.
    pub phone_number_ids: Vec<String>,
    pub phone_numbers_count: usize,
    pub connected_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountOut>,
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberList {
    pub phone_numbers: Vec<PhoneNumberOut>,
    pub count: usize,
}

async fn connected_numbers(state: &AppState, org_id: Uuid) -> ApiResult<Vec<PhoneNumberOut>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {NUMBER_COLUMNS} FROM whatsapp_accounts WHERE org_id = $1 AND status <> 'DISCONNECTED'
          ORDER BY connected_at, id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?)
}

/// List connected WhatsApp Business Accounts.
#[utoipa::path(get, path = "/whatsapp/accounts", tag = "whatsapp-api",
    responses((status = 200, body = AccountList), (status = 401), (status = 403)))]
async fn list_accounts(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<AccountList>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut accounts: Vec<AccountOut> = Vec::new();
    for n in connected_numbers(&state, org_id).await? {
        match accounts.iter_mut().find(|a| a.waba_id == n.waba_id) {
            Some(a) => {
                if n.status == "CONNECTED" {
                    a.status = n.status;
                }
                a.phone_number_ids.push(n.phone_number_id);
                a.phone_numbers_count += 1;
            }
            None => accounts.push(AccountOut {
                waba_id: n.waba_id,
                status: n.status,
                phone_number_ids: vec![n.phone_number_id],
                phone_numbers_count: 1,
                connected_at: n.connected_at,
            }),
        }
    }
    let count = accounts.len();
    Ok(Json(AccountList { accounts, count }))
}

/// List connected phone numbers.
#[utoipa::path(get, path = "/whatsapp/phone_numbers", tag = "whatsapp-api",
    responses((status = 200, body = PhoneNumberList), (status = 401), (status = 403)))]
async fn list_phone_numbers(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<PhoneNumberList>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let phone_numbers = connected_numbers(&state, org_id).await?;
    let count = phone_numbers.len();
    Ok(Json(PhoneNumberList {
        phone_numbers,
        count,
    }))
}

/// Present-but-null is `Some(Value::Null)`; absent is `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkBotRequest {
    /// A bot config id of the organization, or `null` to unlink.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub bot_id: Option<Value>,
}

impl LinkBotRequest {
    fn bot_id(&self) -> Option<Uuid> {
        self.bot_id
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    }
}

impl Validate for LinkBotRequest {
    fn validate(&self, v: &mut Violations) {
        match &self.bot_id {
            None => v.add_kind(
                "bot_id",
                "Field required (a bot config id or null)",
                "missing",
            ),
            Some(Value::Null) => {}
            Some(Value::String(s)) if Uuid::parse_str(s).is_ok() => {}
            Some(_) => v.add_kind("bot_id", "must be a UUID or null", "uuid_parsing"),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AutoreplyRequest {
    pub enabled: bool,
}

impl Validate for AutoreplyRequest {
    fn validate(&self, _: &mut Violations) {}
}

fn number_error(err: NumberError) -> ApiError {
    match err {
        NumberError::NumberNotFound => ApiError::not_found("Phone number"),
        NumberError::BotNotFound => {
            ApiError::invalid_field("bot_id", "no bot config of this organization has this id")
        }
        NumberError::Database(e) => e.into(),
    }
}

async fn number_out(state: &AppState, org_id: Uuid, account_id: Uuid) -> ApiResult<PhoneNumberOut> {
    Ok(sqlx::query_as(&format!(
        "SELECT {NUMBER_COLUMNS} FROM whatsapp_accounts WHERE id = $1 AND org_id = $2"
    ))
    .bind(account_id)
    .bind(org_id)
    .fetch_one(&state.db)
    .await?)
}

/// Link a bot to a phone number (`bot_id`), or unlink it (`null`): the number's new
/// conversations start with that bot. An unknown bot is a 422 on `bot_id`; a number that is
/// not one of the organization's connected numbers is a 404.
#[utoipa::path(post, path = "/whatsapp/phone_numbers/{phone_id}/link-bot", tag = "whatsapp-api",
    params(("phone_id" = String, Path, description = "Meta's phone number id")),
    request_body = LinkBotRequest,
    responses((status = 200, body = PhoneNumberOut), (status = 403), (status = 404), (status = 422)))]
async fn link_bot(
    State(state): State<AppState>,
    auth: Auth,
    Path(phone_id): Path<String>,
    ValidJson(body): ValidJson<LinkBotRequest>,
) -> ApiResult<Json<PhoneNumberOut>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let mut conn = state.db.acquire().await?;
    let done = numbers::link_bot(&mut conn, org_id, &phone_id, body.bot_id())
        .await
        .map_err(number_error)?;
    drop(conn);
    Ok(Json(number_out(&state, org_id, done.account_id).await?))
}

/// Turn the AI auto-reply on or off for a phone number.
#[utoipa::path(post, path = "/whatsapp/phone_numbers/{phone_id}/autoreply", tag = "whatsapp-api",
    params(("phone_id" = String, Path, description = "Meta's phone number id")),
    request_body = AutoreplyRequest,
    responses((status = 200, body = PhoneNumberOut), (status = 403), (status = 404), (status = 422)))]
async fn set_autoreply(
    State(state): State<AppState>,
    auth: Auth,
    Path(phone_id): Path<String>,
    ValidJson(body): ValidJson<AutoreplyRequest>,
) -> ApiResult<Json<PhoneNumberOut>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let mut conn = state.db.acquire().await?;
    let done = numbers::set_autoreply(&mut conn, org_id, &phone_id, body.enabled)
        .await
        .map_err(number_error)?;
    drop(conn);
    Ok(Json(number_out(&state, org_id, done.account_id).await?))
}
