//! `/teams`: teams of agents, their members (MEMBER or LEAD) and working hours. Deactivating
//! a team (DELETE) moves its open conversations to the default team. Reading needs any role;
//! changing needs an admin.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::cx::{hours::Slot, routing};

use super::{
    cx_settings::{holidays_of, slots_of, validate_schedule},
    Data,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(add_member))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(get_schedule, put_schedule))
        .routes(routes!(schedule_status))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TeamOut {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MemberOut {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    /// MEMBER or LEAD.
    pub role: String,
    /// The agent's presence: ONLINE, AWAY or OFFLINE.
    pub status: String,
    pub open_conversations: i64,
    pub max_conversations: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamDetail {
    #[serde(flatten)]
    pub team: TeamOut,
    pub members: Vec<MemberOut>,
}

const TEAM_SELECT: &str =
    "SELECT t.id, t.name, t.description, t.is_active, t.created_at, t.updated_at,
        (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count
   FROM teams t";

/// A team of `org_id` (active or not), or a 404.
pub async fn fetch_team(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> ApiResult<TeamOut> {
    sqlx::query_as(&format!("{TEAM_SELECT} WHERE t.id = $1 AND t.org_id = $2"))
        .bind(id)
        .bind(org_id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("Team"))
}

async fn detail(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<TeamDetail> {
    let mut conn = state.db.acquire().await?;
    let team = fetch_team(&mut conn, org_id, id).await?;
    let members = sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.email, m.role, u.status, u.max_conversations,
                (SELECT count(*) FROM conversations c WHERE c.assigned_to = u.id AND c.status <> 'CLOSED') AS open_conversations
           FROM team_members m JOIN users u ON u.id = m.user_id
          WHERE m.team_id = $1 AND u.deleted_at IS NULL ORDER BY m.created_at, u.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(TeamDetail { team, members })
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListTeamsQuery {
    /// Also list deactivated teams (default false).
    pub include_inactive: Option<bool>,
}

impl Validate for ListTeamsQuery {
    fn validate(&self, _: &mut Violations) {}
}

/// List the organization's teams.
#[utoipa::path(get, path = "/teams", tag = "teams", params(ListTeamsQuery),
    responses((status = 200, body = Data<Vec<TeamOut>>)))]
async fn list_teams(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListTeamsQuery>,
) -> ApiResult<Json<Data<Vec<TeamOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let teams = sqlx::query_as(&format!(
        "{TEAM_SELECT} WHERE t.org_id = $1 AND (t.is_active OR $2) ORDER BY lower(t.name), t.id"
    ))
    .bind(org_id)
    .bind(q.include_inactive.unwrap_or(false))
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(teams))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

impl Validate for TeamRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        if let Some(d) = &self.description {
            if d.chars().count() > 1000 {
                v.add("description", "must be at most 1000 characters");
            }
        }
    }
}

const DUPLICATE: &str = "A team with this name already exists";

/// Create a team (admin).
#[utoipa::path(post, path = "/teams", tag = "teams", request_body = TeamRequest,
    responses((status = 201, body = Data<TeamDetail>), (status = 409)))]
async fn create_team(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TeamRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let Some(name) = body.name.as_deref().map(str::trim) else {
        return Err(ApiError::missing_field("name"));
    };
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO teams (org_id, name, description, is_active) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(body.description.as_deref().map(str::trim))
    .bind(body.is_active.unwrap_or(true))
    .fetch_one(&state.db)
    .await
    .on_conflict("teams_org_name_key", DUPLICATE)?;
    Ok((
        StatusCode::CREATED,
        Data::new(detail(&state, org_id, id).await?),
    ))
}

/// Get a team with its members.
#[utoipa::path(get, path = "/teams/{id}", tag = "teams", responses((status = 200, body = Data<TeamDetail>)))]
async fn get_team(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<TeamDetail>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Team")?;
    Ok(Data::new(detail(&state, org_id, id).await?))
}

/// Update a team's name, description or active flag (admin).
#[utoipa::path(patch, path = "/teams/{id}", tag = "teams", request_body = TeamRequest,
    responses((status = 200, body = Data<TeamDetail>), (status = 409)))]
async fn update_team(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<TeamRequest>,
) -> ApiResult<Json<Data<TeamDetail>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let done = sqlx::query(
        "UPDATE teams SET name = COALESCE($3, name), description = COALESCE($4, description),
                is_active = COALESCE($5, is_active), updated_at = now()
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(body.description.as_deref().map(str::trim))
    .bind(body.is_active)
    .execute(&state.db)
    .await
    .on_conflict("teams_org_name_key", DUPLICATE)?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Team"));
    }
    Ok(Data::new(detail(&state, org_id, id).await?))
}

/// Deactivate a team (admin). Its open conversations move to the default team (or wait
/// unrouted when there is none, or it was the default team).
#[utoipa::path(delete, path = "/teams/{id}", tag = "teams", responses((status = 204)))]
async fn delete_team(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let mut tx = state.db.begin().await?;
    let done = sqlx::query(
        "UPDATE teams SET is_active = false, updated_at = now() WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Team"));
    }
    let default = routing::default_team(&mut tx, org_id).await?;
    sqlx::query(
        "UPDATE conversations SET team_id = $3, updated_at = now()
          WHERE org_id = $1 AND team_id = $2 AND status <> 'CLOSED'",
    )
    .bind(org_id)
    .bind(id)
    .bind(default)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRequest {
    pub user_id: Uuid,
    /// MEMBER (default) or LEAD.
    pub role: Option<String>,
}

const MEMBER_ROLES: [&str; 2] = ["MEMBER", "LEAD"];

impl Validate for MemberRequest {
    fn validate(&self, v: &mut Violations) {
        v.one_of("role", self.role.as_deref(), &MEMBER_ROLES);
    }
}

/// Add a member to a team (admin); adding one again updates the role.
#[utoipa::path(post, path = "/teams/{id}/members", tag = "teams", request_body = MemberRequest,
    responses((status = 201, body = Data<TeamDetail>)))]
async fn add_member(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<MemberRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let mut tx = state.db.begin().await?;
    fetch_team(&mut tx, org_id, id).await?;
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL)",
    )
    .bind(body.user_id)
    .bind(org_id)
    .fetch_one(&mut *tx)
    .await?;
    if !member {
        return Err(ApiError::not_found("User"));
    }
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(id)
    .bind(body.user_id)
    .bind(body.role.as_deref().unwrap_or("MEMBER"))
    .execute(&mut *tx)
    .await?;
    // A new member who is online can take what waits in the team's queue.
    routing::pick_up_waiting(&mut tx, org_id, body.user_id, Utc::now())
        .await
        .map_err(crate::routes::conversation_actions::move_error)?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Data::new(detail(&state, org_id, id).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRoleRequest {
    /// MEMBER or LEAD.
    pub role: String,
}

impl Validate for MemberRoleRequest {
    fn validate(&self, v: &mut Violations) {
        v.one_of("role", Some(&self.role), &MEMBER_ROLES);
    }
}

/// Change a member's role (admin).
#[utoipa::path(patch, path = "/teams/{id}/members/{userId}", tag = "teams", request_body = MemberRoleRequest,
    params(("id" = String, Path), ("userId" = String, Path)),
    responses((status = 200, body = Data<TeamDetail>)))]
async fn update_member(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<MemberRoleRequest>,
) -> ApiResult<Json<Data<TeamDetail>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let user_id = parse_id(&user_id, "Team member")?;
    let done = sqlx::query(
        "UPDATE team_members m SET role = $3 FROM teams t
          WHERE m.team_id = $1 AND m.user_id = $2 AND t.id = m.team_id AND t.org_id = $4",
    )
    .bind(id)
    .bind(user_id)
    .bind(&body.role)
    .bind(org_id)
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Team member"));
    }
    Ok(Data::new(detail(&state, org_id, id).await?))
}

/// Remove a member from a team (admin).
#[utoipa::path(delete, path = "/teams/{id}/members/{userId}", tag = "teams",
    params(("id" = String, Path), ("userId" = String, Path)), responses((status = 204)))]
async fn remove_member(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let user_id = parse_id(&user_id, "Team member")?;
    let done = sqlx::query(
        "DELETE FROM team_members m USING teams t
          WHERE m.team_id = $1 AND m.user_id = $2 AND t.id = m.team_id AND t.org_id = $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(org_id)
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Team member"));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- working hours -----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOut {
    pub timezone: String,
    pub is_enabled: bool,
    #[schema(value_type = Vec<Object>)]
    pub slots: Vec<Slot>,
    #[schema(value_type = Vec<String>)]
    pub holidays: Vec<NaiveDate>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    pub timezone: String,
    pub is_enabled: Option<bool>,
    #[schema(value_type = Vec<Object>)]
    pub slots: Vec<super::cx_settings::SlotIn>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl Validate for ScheduleRequest {
    fn validate(&self, v: &mut Violations) {
        validate_schedule(
            v,
            Some(&self.timezone),
            Some(&self.slots),
            Some(&self.holidays),
        );
    }
}

async fn schedule_of(conn: &mut PgConnection, team_id: Uuid) -> ApiResult<ScheduleOut> {
    Ok(match routing::team_schedule(conn, team_id).await? {
        Some(s) => ScheduleOut {
            timezone: s.timezone,
            is_enabled: s.is_enabled,
            slots: s.slots.0,
            holidays: s.holidays.0,
        },
        None => ScheduleOut {
            timezone: "UTC".into(),
            is_enabled: false,
            slots: Vec::new(),
            holidays: Vec::new(),
        },
    })
}

/// Get a team's working hours (a team without them works whenever its members are online).
#[utoipa::path(get, path = "/teams/{id}/schedule", tag = "teams", responses((status = 200, body = Data<ScheduleOut>)))]
async fn get_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ScheduleOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Team")?;
    let mut conn = state.db.acquire().await?;
    fetch_team(&mut conn, org_id, id).await?;
    Ok(Data::new(schedule_of(&mut conn, id).await?))
}

/// Create or replace a team's working hours (admin): no conversation is assigned to the team
/// outside them.
#[utoipa::path(put, path = "/teams/{id}/schedule", tag = "teams", request_body = ScheduleRequest,
    responses((status = 200, body = Data<ScheduleOut>)))]
async fn put_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<ScheduleRequest>,
) -> ApiResult<Json<Data<ScheduleOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Team")?;
    let mut tx = state.db.begin().await?;
    fetch_team(&mut tx, org_id, id).await?;
    let slots = slots_of(&body.slots);
    let holidays = holidays_of(&body.holidays);
    sqlx::query(
        "INSERT INTO team_schedules (team_id, timezone, is_enabled, slots, holidays) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (team_id) DO UPDATE SET timezone = EXCLUDED.timezone, is_enabled = EXCLUDED.is_enabled,
                slots = EXCLUDED.slots, holidays = EXCLUDED.holidays, updated_at = now()",
    )
    .bind(id)
    .bind(&body.timezone)
    .bind(body.is_enabled.unwrap_or(true))
    .bind(sqlx::types::Json(&slots))
    .bind(sqlx::types::Json(&holidays))
    .execute(&mut *tx)
    .await?;
    let out = schedule_of(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Data::new(out))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatusOut {
    /// Whether the team is within its working hours now (always true without enabled hours).
    pub is_open: bool,
    pub timezone: String,
}

/// Whether the team is within its working hours now.
#[utoipa::path(get, path = "/teams/{id}/schedule/status", tag = "teams",
    responses((status = 200, body = Data<ScheduleStatusOut>)))]
async fn schedule_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ScheduleStatusOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Team")?;
    let mut conn = state.db.acquire().await?;
    fetch_team(&mut conn, org_id, id).await?;
    let schedule = schedule_of(&mut conn, id).await?;
    let is_open = routing::team_open(&mut conn, id, Utc::now()).await?;
    Ok(Data::new(ScheduleStatusOut {
        is_open,
        timezone: schedule.timezone,
    }))
}
