//! `/routing-rules`: which team an inbound conversation goes to (the first active rule that
//! matches, by priority; else the default team, `/routing-rules/default-team`). Matching and
//! assignment live in `wharf_shared::cx::routing`. Reading needs any role; changing needs an
//! admin.

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
use wharf_shared::cx::routing::{self, check_condition, Condition};

use super::{teams::fetch_team, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, ValidJson},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(update_rule, delete_rule))
        .routes(routes!(reorder))
        .routes(routes!(get_default_team, put_default_team))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RuleOut {
    pub id: Uuid,
    pub name: String,
    pub team_id: Uuid,
    /// ANY or ALL.
    pub match_type: String,
    pub is_active: bool,
    pub priority: i32,
    #[schema(value_type = Vec<Object>)]
    pub conditions: sqlx::types::Json<Vec<Condition>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const RULE_COLUMNS: &str =
    "id, name, team_id, match_type, is_active, priority, conditions, created_at, updated_at";

async fn fetch_rule(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> ApiResult<RuleOut> {
    sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM routing_rules WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("Routing rule"))
}

/// The organization's rules in the order they are tried.
async fn all_rules(conn: &mut PgConnection, org_id: Uuid) -> ApiResult<Vec<RuleOut>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM routing_rules WHERE org_id = $1 ORDER BY priority, created_at, id"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await?)
}

/// List the routing rules in the order they are tried.
#[utoipa::path(get, path = "/routing-rules", tag = "routing-rules", responses((status = 200, body = Data<Vec<RuleOut>>)))]
async fn list_rules(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<RuleOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(Data::new(all_rules(&mut conn, org_id).await?))
}

/// A rule as sent; on PATCH every field is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleRequest {
    pub name: Option<String>,
    pub team_id: Option<Uuid>,
    /// ANY (default) or ALL.
    pub match_type: Option<String>,
    pub is_active: Option<bool>,
    /// Lower first (default: after the last rule).
    pub priority: Option<i32>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub conditions: Option<Vec<Condition>>,
}

impl Validate for RuleRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        v.one_of("matchType", self.match_type.as_deref(), &["ANY", "ALL"]);
        if let Some(conditions) = &self.conditions {
            if conditions.is_empty() {
                v.add("conditions", "give at least one condition");
            }
            for (i, c) in conditions.iter().enumerate() {
                for (field, msg) in check_condition(c) {
                    v.add_at(&["conditions", &i.to_string(), field], msg);
                }
            }
        }
    }
}

/// Create a routing rule (admin).
#[utoipa::path(post, path = "/routing-rules", tag = "routing-rules", request_body = RuleRequest,
    responses((status = 201, body = Data<RuleOut>)))]
async fn create_rule(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<RuleRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let (Some(name), Some(team_id), Some(conditions)) =
        (&body.name, body.team_id, &body.conditions)
    else {
        let missing = [
            ("name", body.name.is_none()),
            ("teamId", body.team_id.is_none()),
            ("conditions", body.conditions.is_none()),
        ];
        return Err(ApiError::Validation(
            missing
                .iter()
                .filter(|(_, absent)| *absent)
                .map(|(field, _)| FieldError::new(&["body", field], "Field required", "missing"))
                .collect(),
        ));
    };
    let mut tx = state.db.begin().await?;
    fetch_team(&mut tx, org_id, team_id).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO routing_rules (org_id, name, team_id, match_type, is_active, priority, conditions)
         VALUES ($1, $2, $3, $4, $5,
                 COALESCE($6, (SELECT COALESCE(max(priority) + 1, 0) FROM routing_rules WHERE org_id = $1)), $7)
         RETURNING id",
    )
    .bind(org_id)
    .bind(name.trim())
    .bind(team_id)
    .bind(body.match_type.as_deref().unwrap_or("ANY"))
    .bind(body.is_active.unwrap_or(true))
    .bind(body.priority)
    .bind(sqlx::types::Json(conditions))
    .fetch_one(&mut *tx)
    .await?;
    let rule = fetch_rule(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(rule)))
}

/// Update a routing rule (admin).
#[utoipa::path(patch, path = "/routing-rules/{id}", tag = "routing-rules", request_body = RuleRequest,
    responses((status = 200, body = Data<RuleOut>)))]
async fn update_rule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<RuleRequest>,
) -> ApiResult<Json<Data<RuleOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Routing rule")?;
    let mut tx = state.db.begin().await?;
    fetch_rule(&mut tx, org_id, id).await?;
    if let Some(team_id) = body.team_id {
        fetch_team(&mut tx, org_id, team_id).await?;
    }
    sqlx::query(
        "UPDATE routing_rules SET name = COALESCE($3, name), team_id = COALESCE($4, team_id),
                match_type = COALESCE($5, match_type), is_active = COALESCE($6, is_active),
                priority = COALESCE($7, priority), conditions = COALESCE($8, conditions), updated_at = now()
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(body.team_id)
    .bind(&body.match_type)
    .bind(body.is_active)
    .bind(body.priority)
    .bind(body.conditions.as_ref().map(sqlx::types::Json))
    .execute(&mut *tx)
    .await?;
    let rule = fetch_rule(&mut tx, org_id, id).await?;
    tx.commit().await?;
    Ok(Data::new(rule))
}

/// Delete a routing rule (admin).
#[utoipa::path(delete, path = "/routing-rules/{id}", tag = "routing-rules", responses((status = 204)))]
async fn delete_rule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Routing rule")?;
    let done = sqlx::query("DELETE FROM routing_rules WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&state.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Routing rule"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReorderRequest {
    /// Every rule of the organization, in the order to try them.
    pub ordered_ids: Vec<Uuid>,
}

impl Validate for ReorderRequest {
    fn validate(&self, v: &mut Violations) {
        let mut seen = std::collections::HashSet::new();
        if self.ordered_ids.iter().any(|id| !seen.insert(*id)) {
            v.add("orderedIds", "must not repeat an id");
        }
    }
}

/// Reorder the rules (admin): priorities become 0, 1, 2, ... in the order given, which must
/// name every rule of the organization exactly once.
#[utoipa::path(post, path = "/routing-rules/reorder", tag = "routing-rules", request_body = ReorderRequest,
    responses((status = 200, body = Data<Vec<RuleOut>>)))]
async fn reorder(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ReorderRequest>,
) -> ApiResult<Json<Data<Vec<RuleOut>>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let mut existing: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM routing_rules WHERE org_id = $1 FOR UPDATE")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut given = body.ordered_ids.clone();
    existing.sort();
    given.sort();
    if existing != given {
        return Err(ApiError::invalid_field(
            "orderedIds",
            "must list every routing rule of the organization exactly once",
        ));
    }
    sqlx::query(
        "UPDATE routing_rules r SET priority = o.ord - 1, updated_at = now()
           FROM UNNEST($1::uuid[]) WITH ORDINALITY AS o(id, ord)
          WHERE r.id = o.id AND r.org_id = $2",
    )
    .bind(&body.ordered_ids)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    let rules = all_rules(&mut tx, org_id).await?;
    tx.commit().await?;
    Ok(Data::new(rules))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultTeamOut {
    /// Where conversations no rule matches go; null: they wait unrouted.
    pub team_id: Option<Uuid>,
}

/// Get the default team.
#[utoipa::path(get, path = "/routing-rules/default-team", tag = "routing-rules",
    responses((status = 200, body = Data<DefaultTeamOut>)))]
async fn get_default_team(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<DefaultTeamOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(Data::new(DefaultTeamOut {
        team_id: routing::default_team(&mut conn, org_id).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultTeamRequest {
    /// An active team of the organization, or null for none.
    pub team_id: Option<Uuid>,
}

impl Validate for DefaultTeamRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// Set the default team (admin).
#[utoipa::path(put, path = "/routing-rules/default-team", tag = "routing-rules", request_body = DefaultTeamRequest,
    responses((status = 200, body = Data<DefaultTeamOut>)))]
async fn put_default_team(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<DefaultTeamRequest>,
) -> ApiResult<Json<Data<DefaultTeamOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    if let Some(team_id) = body.team_id {
        let team = fetch_team(&mut tx, org_id, team_id).await?;
        if !team.is_active {
            return Err(ApiError::invalid_field("teamId", "the team is deactivated"));
        }
    }
    sqlx::query(
        "INSERT INTO org_cx_settings (org_id, default_team_id) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE SET default_team_id = EXCLUDED.default_team_id, updated_at = now()",
    )
    .bind(org_id)
    .bind(body.team_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Data::new(DefaultTeamOut {
        team_id: body.team_id,
    }))
}
