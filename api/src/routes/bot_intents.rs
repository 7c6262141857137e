//! `/bot-config/intents`: the active bot config's intents (see `wharf_shared::bot::intents`).
//! Reading needs any role; changing needs an admin. A team or tag of another organization is
//! a 404.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::config;

use super::Data;
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_intents, create_intent))
        .routes(routes!(update_intent, delete_intent))
        .routes(routes!(reorder_intents))
}

const ACTIONS: [&str; 3] = ["ANSWER", "HANDOFF", "TAG"];

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct IntentOut {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub keywords: sqlx::types::Json<Vec<String>>,
    #[schema(value_type = Vec<String>)]
    pub examples: sqlx::types::Json<Vec<String>>,
    /// ANSWER, HANDOFF or TAG.
    pub action: String,
    pub response: Option<String>,
    pub team_id: Option<Uuid>,
    pub tag_id: Option<Uuid>,
    pub position: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const INTENT_COLUMNS: &str =
    "id, name, keywords, examples, action, response, team_id, tag_id, position, is_active,
    created_at, updated_at";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentRequest {
    pub name: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub examples: Option<Vec<String>>,
    pub action: Option<String>,
    /// ANSWER: the text sent.
    pub response: Option<String>,
    /// HANDOFF: the team (default: the routing rules choose).
    pub team_id: Option<Uuid>,
    /// TAG: the tag added.
    pub tag_id: Option<Uuid>,
    pub is_active: Option<bool>,
}

fn check_list(v: &mut Violations, field: &str, items: &[String], max: usize) {
    if items.len() > 100 {
        v.add(field, "at most 100 items");
    }
    for (i, item) in items.iter().enumerate() {
        if item.trim().is_empty() || item.chars().count() > max {
            v.add_at(
                &[field, &i.to_string()],
                format!("must be 1 to {max} characters"),
            );
        }
    }
}

impl Validate for IntentRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        v.one_of("action", self.action.as_deref(), &ACTIONS);
        if let Some(k) = &self.keywords {
            check_list(v, "keywords", k, 100);
        }
        if let Some(e) = &self.examples {
            check_list(v, "examples", e, 1000);
        }
        v.optional_text("response", self.response.as_deref(), 4096);
    }
}

/// The active config's id (intents belong to it); 409 when there is none.
async fn active_config(conn: &mut PgConnection, org_id: Uuid) -> ApiResult<Uuid> {
    config::active(conn, org_id)
        .await?
        .map(|c| c.id)
        .ok_or_else(|| ApiError::Conflict("There is no active bot config; create one first".into()))
}

/// 404 for a team or tag that is not the organization's.
async fn check_refs(conn: &mut PgConnection, org_id: Uuid, req: &IntentRequest) -> ApiResult<()> {
    if let Some(team) = req.team_id {
        let ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM teams WHERE id = $1 AND org_id = $2 AND is_active)",
        )
        .bind(team)
        .bind(org_id)
        .fetch_one(&mut *conn)
        .await?;
        if !ok {
            return Err(ApiError::not_found("Team"));
        }
    }
    if let Some(tag) = req.tag_id {
        let ok: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tags WHERE id = $1 AND org_id = $2)")
                .bind(tag)
                .bind(org_id)
                .fetch_one(&mut *conn)
                .await?;
        if !ok {
            return Err(ApiError::not_found("Tag"));
        }
    }
    Ok(())
}

/// What only the whole intent can tell: ANSWER needs a response, TAG a tag, and some keyword.
fn check_complete(i: &IntentOut) -> ApiResult<()> {
    let mut v = Violations::body();
    if i.action == "ANSWER" && i.response.as_deref().is_none_or(|r| r.trim().is_empty()) {
        v.add(
            "response",
            "an ANSWER intent needs the text it answers with",
        );
    }
    if i.action == "TAG" && i.tag_id.is_none() {
        v.add("tagId", "a TAG intent needs the tag it adds");
    }
    if i.keywords.0.is_empty() {
        v.add("keywords", "give at least one keyword");
    }
    v.into_result()
}

/// The active config's intents, in the order they are checked.
#[utoipa::path(get, path = "/bot-config/intents", tag = "bot-config",
    responses((status = 200, body = Data<Vec<IntentOut>>)))]
async fn list_intents(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<IntentOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rows = sqlx::query_as(&format!(
        "SELECT {INTENT_COLUMNS} FROM bot_intents
          WHERE org_id = $1 AND bot_config_id = (SELECT id FROM bot_configs WHERE org_id = $1 AND is_active)
          ORDER BY position, created_at, id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(rows))
}

/// Add an intent to the active config, checked last (admin).
#[utoipa::path(post, path = "/bot-config/intents", tag = "bot-config", request_body = IntentRequest,
    responses((status = 201, body = Data<IntentOut>), (status = 409), (status = 422)))]
async fn create_intent(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<IntentRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut v = Violations::body();
    if body.name.is_none() {
        v.add_kind("name", "Field required", "missing");
    }
    if body.action.is_none() {
        v.add_kind("action", "Field required", "missing");
    }
    v.into_result()?;
    let mut tx = state.db.begin().await?;
    let config_id = active_config(&mut tx, org_id).await?;
    check_refs(&mut tx, org_id, &body).await?;
    let intent: IntentOut = sqlx::query_as(&format!(
        "INSERT INTO bot_intents (org_id, bot_config_id, name, keywords, examples, action, response, team_id, tag_id,
                                  is_active, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 (SELECT COALESCE(max(position), -1) + 1 FROM bot_intents WHERE bot_config_id = $2))
         RETURNING {INTENT_COLUMNS}"
    ))
    .bind(org_id)
    .bind(config_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(sqlx::types::Json(body.keywords.clone().unwrap_or_default()))
    .bind(sqlx::types::Json(body.examples.clone().unwrap_or_default()))
    .bind(&body.action)
    .bind(&body.response)
    .bind(body.team_id)
    .bind(body.tag_id)
    .bind(body.is_active.unwrap_or(true))
    .fetch_one(&mut *tx)
    .await?;
    check_complete(&intent)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(intent)))
}

/// Change an intent (admin): the fields sent.
#[utoipa::path(put, path = "/bot-config/intents/{id}", tag = "bot-config", request_body = IntentRequest,
    responses((status = 200, body = Data<IntentOut>), (status = 404), (status = 422)))]
async fn update_intent(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<IntentRequest>,
) -> ApiResult<Json<Data<IntentOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Intent")?;
    let mut tx = state.db.begin().await?;
    check_refs(&mut tx, org_id, &body).await?;
    let intent: IntentOut = sqlx::query_as(&format!(
        "UPDATE bot_intents SET name = COALESCE($3, name), keywords = COALESCE($4, keywords),
                examples = COALESCE($5, examples), action = COALESCE($6, action), response = COALESCE($7, response),
                team_id = COALESCE($8, team_id), tag_id = COALESCE($9, tag_id), is_active = COALESCE($10, is_active),
                updated_at = now()
          WHERE id = $1 AND org_id = $2 RETURNING {INTENT_COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(body.keywords.clone().map(sqlx::types::Json))
    .bind(body.examples.clone().map(sqlx::types::Json))
    .bind(&body.action)
    .bind(&body.response)
    .bind(body.team_id)
    .bind(body.tag_id)
    .bind(body.is_active)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("Intent"))?;
    check_complete(&intent)?;
    tx.commit().await?;
    Ok(Data::new(intent))
}

/// Delete an intent (admin).
#[utoipa::path(delete, path = "/bot-config/intents/{id}", tag = "bot-config",
    responses((status = 204), (status = 404)))]
async fn delete_intent(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Intent")?;
    let gone = sqlx::query("DELETE FROM bot_intents WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&state.db)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found("Intent"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderRequest {
    /// Every intent of the active config, in the new order.
    pub ids: Vec<Uuid>,
}

impl Validate for ReorderRequest {
    fn validate(&self, v: &mut Violations) {
        let mut seen = std::collections::HashSet::new();
        if self.ids.iter().any(|id| !seen.insert(id)) {
            v.add("ids", "an intent is listed twice");
        }
    }
}

/// Set the order intents are checked in (admin): `ids` lists every intent of the active config.
#[utoipa::path(put, path = "/bot-config/intents/reorder", tag = "bot-config", request_body = ReorderRequest,
    responses((status = 200, body = Data<Vec<IntentOut>>), (status = 422)))]
async fn reorder_intents(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ReorderRequest>,
) -> ApiResult<Json<Data<Vec<IntentOut>>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let config_id = active_config(&mut tx, org_id).await?;
    let mut current: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM bot_intents WHERE bot_config_id = $1")
            .bind(config_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut given = body.ids.clone();
    current.sort();
    given.sort();
    if current != given {
        return Err(ApiError::invalid_field(
            "ids",
            "list every intent of the active bot config exactly once",
        ));
    }
    sqlx::query(
        "UPDATE bot_intents i SET position = u.pos - 1, updated_at = now()
           FROM UNNEST($1::uuid[]) WITH ORDINALITY AS u(id, pos) WHERE i.id = u.id",
    )
    .bind(&body.ids)
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {INTENT_COLUMNS} FROM bot_intents WHERE bot_config_id = $1 ORDER BY position, id"
    ))
    .bind(config_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Data::new(rows))
}
