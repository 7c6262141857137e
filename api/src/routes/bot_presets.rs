//! `/bot-config/presets`: the organization's saved provider connections (provider, model, key,
//! base URL, temperature) under names unique in any case (a duplicate is a 409). The key is
//! stored encrypted and answered masked. Reading needs any role; changing needs an admin. The
//! storage is `wharf_shared::bot::portable::presets`.

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
    bot::portable::presets::{self, Preset, PresetFields},
    llm::Provider,
    secret::mask,
};

use super::{
    bot_config::{check_url, PROVIDERS},
    Data,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_presets, create_preset))
        .routes(routes!(update_preset, delete_preset))
}

const DUPLICATE: &str = "A preset with this name exists";

/// A preset as answered: the key masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetOut {
    pub id: Uuid,
    pub name: String,
    /// OPENAI, ANTHROPIC, GOOGLE, DEEPSEEK, KIMI or LOCAL.
    pub provider: String,
    pub model: String,
    /// Masked (first and last 4 characters); `null` when none is set.
    pub api_key: Option<String>,
    pub has_api_key: bool,
    pub base_url: Option<String>,
    pub temperature: Option<f32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PresetOut {
    fn of(p: Preset, state: &AppState) -> Self {
        let api_key = p
            .api_key
            .as_deref()
            .and_then(|k| state.secrets.decrypt(k).ok())
            .map(|k| mask(&k));
        Self {
            id: p.id,
            name: p.name,
            provider: p.provider,
            model: p.model,
            has_api_key: api_key.is_some(),
            api_key,
            base_url: p.base_url,
            temperature: p.temperature,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A preset's fields as sent: POST needs `name`, `provider` and `model`; PUT changes the
/// fields sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresetRequest {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Stored encrypted; answered masked.
    pub api_key: Option<String>,
    /// LOCAL: the OpenAI-compatible base, e.g. `http://localhost:11434/v1`.
    pub base_url: Option<String>,
    /// 0 to 2.
    pub temperature: Option<f32>,
}

impl Validate for PresetRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        v.one_of("provider", self.provider.as_deref(), &PROVIDERS);
        v.optional_text("model", self.model.as_deref(), 100);
        if let Some(k) = &self.api_key {
            if k.trim().is_empty() || k.chars().count() > 500 || k.chars().any(char::is_whitespace)
            {
                v.add("apiKey", "must be 1 to 500 characters, without spaces");
            }
        }
        if let Some(u) = &self.base_url {
            check_url(v, "baseUrl", u);
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            v.add("temperature", "must be between 0 and 2");
        }
    }
}

/// POST's body: `name`, `provider` and `model` are required, reported with the other
/// problems of the body.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NewPreset(PresetRequest);

impl Validate for NewPreset {
    fn validate(&self, v: &mut Violations) {
        let b = &self.0;
        for (field, value) in [
            ("name", &b.name),
            ("provider", &b.provider),
            ("model", &b.model),
        ] {
            if value.is_none() {
                v.add_kind(field, "Field required", "missing");
            }
        }
        b.validate(v);
    }
}

impl PresetRequest {
    fn fields(&self, state: &AppState) -> PresetFields {
        let trim = |s: &Option<String>| s.as_deref().map(|t| t.trim().to_string());
        PresetFields {
            name: trim(&self.name),
            provider: self.provider.clone(),
            model: trim(&self.model),
            api_key: self.api_key.as_deref().map(|k| state.secrets.encrypt(k)),
            base_url: trim(&self.base_url),
            temperature: self.temperature,
        }
    }
}

/// What only the whole preset can tell: a LOCAL provider needs its server's URL.
fn check_complete(p: &Preset) -> ApiResult<()> {
    if p.provider == Provider::Local.as_str() && p.base_url.is_none() {
        return Err(ApiError::invalid_field(
            "baseUrl",
            "a LOCAL provider needs the server's OpenAI-compatible base URL",
        ));
    }
    Ok(())
}

/// The organization's presets, by name.
#[utoipa::path(get, path = "/bot-config/presets", tag = "bot-config",
    responses((status = 200, body = Data<Vec<PresetOut>>),
              (status = 401, description = "Missing, invalid or expired credentials")))]
async fn list_presets(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<PresetOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let rows = presets::list(&mut conn, org_id).await?;
    Ok(Data::new(
        rows.into_iter().map(|p| PresetOut::of(p, &state)).collect(),
    ))
}

/// Save a provider connection as a preset (admin).
#[utoipa::path(post, path = "/bot-config/presets", tag = "bot-config", request_body = PresetRequest,
    responses((status = 201, body = Data<PresetOut>), (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"),
              (status = 409, description = "A preset of that name exists"), (status = 422)))]
async fn create_preset(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(NewPreset(body)): ValidJson<NewPreset>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let p = presets::create(&mut tx, org_id, &body.fields(&state))
        .await
        .on_conflict(presets::NAME_KEY, DUPLICATE)?;
    check_complete(&p)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(PresetOut::of(p, &state))))
}

/// Change a preset (admin): the fields sent.
#[utoipa::path(put, path = "/bot-config/presets/{id}", tag = "bot-config", request_body = PresetRequest,
    responses((status = 200, body = Data<PresetOut>), (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"), (status = 404),
              (status = 409, description = "A preset of that name exists"), (status = 422)))]
async fn update_preset(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PresetRequest>,
) -> ApiResult<Json<Data<PresetOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Preset")?;
    let mut tx = state.db.begin().await?;
    let p = presets::update(&mut tx, org_id, id, &body.fields(&state))
        .await
        .on_conflict(presets::NAME_KEY, DUPLICATE)?
        .ok_or_else(|| ApiError::not_found("Preset"))?;
    check_complete(&p)?;
    tx.commit().await?;
    Ok(Data::new(PresetOut::of(p, &state)))
}

/// Delete a preset (admin); configs set up from it keep their settings.
#[utoipa::path(delete, path = "/bot-config/presets/{id}", tag = "bot-config",
    responses((status = 204), (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"), (status = 404)))]
async fn delete_preset(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Preset")?;
    let mut conn = state.db.acquire().await?;
    if !presets::delete(&mut conn, org_id, id).await? {
        return Err(ApiError::not_found("Preset"));
    }
    Ok(StatusCode::NO_CONTENT)
}
