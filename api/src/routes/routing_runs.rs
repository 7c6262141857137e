//! Routing after the fact: `GET /routing-rules/check-conflicts` (preview a rule's collisions
//! before saving it), `POST /routing-rules/run-now` (re-route every open unassigned
//! conversation, as a job whose progress and result `GET /routing-rules/runs/{id}` shows) and
//! `POST /conversations/{id}/re-route` (one conversation, now). The routing itself is
//! `wharf_shared::cx::reroute`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    cx::{
        reroute,
        routing::{check_condition, Condition},
        rule_conflicts::{overlapping, same_conditions},
    },
    events::Event,
};

use super::{conversation_actions::move_error, outbound::user_id, teams::fetch_team, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_conflicts))
        .routes(routes!(run_now))
        .routes(routes!(get_run))
        .routes(routes!(re_route))
}

// ---- check-conflicts ---------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ConflictsQuery {
    /// The team the rule would send conversations to.
    pub team_id: Uuid,
    /// The rule's conditions as a JSON array (as in the rule body).
    pub conditions: String,
    /// ANY (default) or ALL.
    pub match_type: Option<String>,
    /// The rule being edited (left out of the comparison).
    pub exclude_rule_id: Option<Uuid>,
}

impl ConflictsQuery {
    fn parsed_conditions(&self) -> Result<Vec<Condition>, String> {
        serde_json::from_str(&self.conditions).map_err(|e| {
            format!(
                "must be a JSON array of conditions ({{\"field\", \"operator\", \"value\"}}): {e}"
            )
        })
    }
}

impl Validate for ConflictsQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("matchType", self.match_type.as_deref(), &["ANY", "ALL"]);
        match self.parsed_conditions() {
            Err(msg) => v.add("conditions", msg),
            Ok(conditions) if conditions.is_empty() => {
                v.add("conditions", "give at least one condition")
            }
            Ok(conditions) => {
                for (i, c) in conditions.iter().enumerate() {
                    for (field, msg) in check_condition(c) {
                        v.add_at(&["conditions", &i.to_string(), field], msg);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictOut {
    pub rule_id: Uuid,
    pub rule_name: String,
    pub team_id: Uuid,
    pub priority: i32,
    /// OVERLAP: another team's rule can match the same conversations (the lower priority
    /// number wins); DUPLICATE: the same conditions to the same team.
    pub kind: String,
    /// `[[i, j]]`: condition `i` of the checked rule overlaps condition `j` of this rule.
    pub overlapping_conditions: Vec<[usize; 2]>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictsOut {
    pub has_conflicts: bool,
    pub conflicts: Vec<ConflictOut>,
}

/// Preview which active rules a rule would collide with, without saving it.
#[utoipa::path(get, path = "/routing-rules/check-conflicts", tag = "routing-rules",
    params(ConflictsQuery), responses((status = 200, body = Data<ConflictsOut>), (status = 404), (status = 422)))]
async fn check_conflicts(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ConflictsQuery>,
) -> ApiResult<Json<Data<ConflictsOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let conditions = q.parsed_conditions().map_err(ApiError::BadRequest)?;
    let mut conn = state.db.acquire().await?;
    fetch_team(&mut conn, org_id, q.team_id).await?;
    #[derive(sqlx::FromRow)]
    struct Rule {
        id: Uuid,
        name: String,
        team_id: Uuid,
        priority: i32,
        conditions: sqlx::types::Json<Vec<Condition>>,
    }
    let rules: Vec<Rule> = sqlx::query_as(
        "SELECT id, name, team_id, priority, conditions FROM routing_rules
          WHERE org_id = $1 AND is_active AND ($2::uuid IS NULL OR id <> $2)
          ORDER BY priority, created_at, id",
    )
    .bind(org_id)
    .bind(q.exclude_rule_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut conflicts = Vec::new();
    for Rule {
        id: rule_id,
        name: rule_name,
        team_id,
        priority,
        conditions: theirs,
    } in rules
    {
        let pairs = overlapping(&conditions, &theirs.0);
        let (kind, message) = if team_id == q.team_id {
            if !same_conditions(&conditions, &theirs.0) {
                continue;
            }
            (
                "DUPLICATE",
                format!("rule \"{rule_name}\" already sends these conditions to this team"),
            )
        } else if !pairs.is_empty() {
            (
                "OVERLAP",
                format!(
                    "rule \"{rule_name}\" (priority {priority}) sends matching conversations to another team; only the rule with the lower priority number applies"
                ),
            )
        } else {
            continue;
        };
        conflicts.push(ConflictOut {
            rule_id,
            rule_name,
            team_id,
            priority,
            kind: kind.into(),
            overlapping_conditions: pairs.into_iter().map(|(i, j)| [i, j]).collect(),
            message,
        });
    }
    Ok(Data::new(ConflictsOut {
        has_conflicts: !conflicts.is_empty(),
        conflicts,
    }))
}

// ---- run-now -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RunOut {
    pub id: Uuid,
    /// ROUTING (`run-now`) or RECLASSIFY (`POST /conversations/re-classify`).
    pub kind: String,
    /// PENDING, RUNNING, COMPLETED or FAILED.
    pub status: String,
    /// Conversations looked at so far (ROUTING: open unassigned ones; RECLASSIFY: every one
    /// not closed and not in an agent's hands).
    pub checked: i32,
    /// RECLASSIFY: conversations whose category the bot changed.
    pub classified: i32,
    /// RECLASSIFY: conversations the model could not classify (provider failures).
    pub failed: i32,
    /// Those whose team changed.
    pub rerouted: i32,
    /// Those given to an agent.
    pub assigned: i32,
    pub error: Option<String>,
    pub requested_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str =
    "id, kind, status, checked, classified, failed, rerouted, assigned, error, requested_by, created_at,
     started_at, finished_at";

/// Run the routing rules on every open, unassigned conversation (admin). Answers 202 with the
/// run; follow it at `GET /routing-rules/runs/{id}`.
#[utoipa::path(post, path = "/routing-rules/run-now", tag = "routing-rules",
    responses((status = 202, body = Data<RunOut>)))]
async fn run_now(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<Data<RunOut>>)> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let run_id = reroute::start_run(&mut tx, org_id, user_id(&auth)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Data::new(fetch_run(&state, org_id, run_id).await?),
    ))
}

pub(crate) async fn fetch_run(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<RunOut> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM routing_runs WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Routing run"))
}

/// A retroactive routing run: its progress and result.
#[utoipa::path(get, path = "/routing-rules/runs/{id}", tag = "routing-rules",
    responses((status = 200, body = Data<RunOut>), (status = 404)))]
async fn get_run(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<RunOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Routing run")?;
    Ok(Data::new(fetch_run(&state, org_id, id).await?))
}

// ---- re-route ----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerouteOut {
    pub conversation_id: Uuid,
    /// `null`: no rule matched and there is no default team; nothing changed.
    pub team_id: Option<Uuid>,
    pub previous_team_id: Option<Uuid>,
    pub assigned_to: Option<Uuid>,
    pub team_changed: bool,
    /// The rule that chose the team, or "default team".
    pub reason: Option<String>,
}

/// Evaluate the routing rules again for one conversation (supervisors and admins): it moves to
/// the team they give and, if its agent is not in that team, to an available member.
#[utoipa::path(post, path = "/conversations/{id}/re-route", tag = "conversations",
    responses((status = 200, body = Data<RerouteOut>), (status = 404), (status = 409)))]
async fn re_route(
    State(state): State<AppState>,
    auth: Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Data<RerouteOut>>> {
    let org_id = auth.authorize(Role::Supervisor, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&raw_id, "Conversation")?;
    let mut tx = state.db.begin().await?;
    let done = reroute::reroute(&mut tx, org_id, id, user_id(&auth), Utc::now())
        .await
        .map_err(move_error)?;
    tx.commit().await?;
    let out = match done {
        Some(r) => {
            let event = Event::conversation_assigned(
                org_id,
                id,
                Some(r.routed.team_id),
                r.routed.assigned_to,
            );
            state.events.publish_one(event).await;
            RerouteOut {
                conversation_id: id,
                team_id: Some(r.routed.team_id),
                previous_team_id: r.previous_team_id,
                assigned_to: r.routed.assigned_to,
                team_changed: r.team_changed(),
                reason: Some(r.reason),
            }
        }
        None => RerouteOut {
            conversation_id: id,
            team_id: None,
            previous_team_id: None,
            assigned_to: None,
            team_changed: false,
            reason: None,
        },
    };
    Ok(Data::new(out))
}
