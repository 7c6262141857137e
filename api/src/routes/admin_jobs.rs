//! Job operations: `/admin/jobs*` and `/admin/queues*` (thin wrappers over
//! `wharf_shared::jobs::admin`). A super admin sees every tenant's jobs and pauses lanes
//! cluster-wide; an org admin (or an `admin`-scoped key) sees and retries or cancels only their
//! organization's jobs.

use axum::{
    extract::{Path, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::jobs::{
    admin::{self, JobFilter, JobSelection},
    JobState, Lane,
};

use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
        .routes(routes!(bulk_jobs))
        .routes(routes!(queues))
        .routes(routes!(pause_lane))
        .routes(routes!(resume_lane))
}

/// `None` for a super admin (every org), the caller's org for an org admin.
fn scope(auth: &Auth) -> ApiResult<Option<Uuid>> {
    match &auth.0 {
        Principal::User(u) if u.role == Role::SuperAdmin => Ok(None),
        _ => auth.authorize(Role::Admin, scopes::ADMIN).map(Some),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// available, scheduled, retryable, running, completed, cancelled, dead.
    #[param(value_type = Option<String>)]
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// inbound, outbound, bulk, media, llm, maintenance.
    #[param(value_type = Option<String>)]
    pub lane: Option<Lane>,
    /// Super admins only: one organization's jobs.
    pub org_id: Option<Uuid>,
    pub page: Option<u32>,
    /// Default 50, at most 500.
    pub limit: Option<u32>,
}

impl Validate for JobsQuery {
    fn validate(&self, v: &mut Violations) {
        if self
            .page
            .is_some_and(|p| p == 0 || i64::from(p) > super::MAX_PAGE)
        {
            v.add("page", format!("must be between 1 and {}", super::MAX_PAGE));
        }
        if self
            .limit
            .is_some_and(|l| l == 0 || l > admin::MAX_PAGE_SIZE)
        {
            v.add(
                "limit",
                format!("must be between 1 and {}", admin::MAX_PAGE_SIZE),
            );
        }
    }
}

/// List jobs (filters: state, kind, lane, org; pagination), newest first.
#[utoipa::path(get, path = "/admin/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "`{data: [job], pagination}`"), (status = 403), (status = 422)))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<JobsQuery>,
) -> ApiResult<Json<Value>> {
    let org = scope(&auth)?;
    let filter = JobFilter {
        state: q.state,
        kind: q.kind,
        lane: q.lane,
        org_id: q.org_id,
    };
    let page = admin::list_jobs(
        &state.db,
        org,
        &filter,
        q.page.unwrap_or(1),
        q.limit.unwrap_or(50),
    )
    .await?;
    let pages = (page.total + i64::from(page.limit) - 1) / i64::from(page.limit);
    Ok(Json(json!({
        "data": page.jobs,
        "pagination": {"page": page.page, "limit": page.limit, "total": page.total, "totalPages": pages},
    })))
}

fn parse_job_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found("Job"))
}

/// One job: payload, attempts with their errors and times, lease.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "jobs",
    responses((status = 200, description = "`{data: job}`"), (status = 404)))]
async fn get_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = scope(&auth)?;
    let job = admin::get_job(&state.db, org, parse_job_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("Job"))?;
    Ok(Json(json!({ "data": job })))
}

/// Retry a dead, cancelled or failed job now (its error history is kept).
#[utoipa::path(post, path = "/admin/jobs/{id}/retry", tag = "jobs",
    responses((status = 200, description = "`{data: job}`"), (status = 404), (status = 409)))]
async fn retry_job(state: State<AppState>, auth: Auth, id: Path<String>) -> ApiResult<Json<Value>> {
    act_on_job(state, auth, id, BulkJobAction::Retry).await
}

/// Cancel a pending or scheduled job; a running one is told to stop.
#[utoipa::path(post, path = "/admin/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, description = "`{data: job}`"), (status = 404), (status = 409)))]
async fn cancel_job(
    state: State<AppState>,
    auth: Auth,
    id: Path<String>,
) -> ApiResult<Json<Value>> {
    act_on_job(state, auth, id, BulkJobAction::Cancel).await
}

/// Retries or cancels one job: 404 when the caller cannot see it, 409 when its state does not
/// allow the action.
async fn act_on_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    action: BulkJobAction,
) -> ApiResult<Json<Value>> {
    let org = scope(&auth)?;
    let id = parse_job_id(&id)?;
    let job = act_on_job_in(&state, org, id, action).await?;
    Ok(Json(json!({ "data": job })))
}

/// Retries or cancels job `id` as seen from `org` (`None`: every org): 404 when it does not
/// exist for the caller, 409 when its state does not allow the action; the job afterwards.
/// Shared by the JSON routes and the console's job page.
pub(crate) async fn act_on_job_in(
    state: &AppState,
    org: Option<Uuid>,
    id: i64,
    action: BulkJobAction,
) -> ApiResult<Option<admin::JobDetail>> {
    let existing = admin::get_job(&state.db, org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Job"))?;
    let (done, verb) = match action {
        BulkJobAction::Retry => (admin::retry_job(&state.db, org, id).await?, "retried"),
        BulkJobAction::Cancel => (admin::cancel_job(&state.db, org, id).await?, "cancelled"),
    };
    if !done {
        return Err(ApiError::Conflict(format!(
            "A {} job cannot be {verb}",
            existing.summary.state
        )));
    }
    Ok(admin::get_job(&state.db, org, id).await?)
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkJobAction {
    Retry,
    Cancel,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkJobsRequest {
    pub action: BulkJobAction,
    /// Job ids, or
    pub ids: Option<Vec<i64>>,
    /// a filter: `{"state", "kind", "lane", "orgId"}`.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<JobFilter>,
}

impl Validate for BulkJobsRequest {
    fn validate(&self, v: &mut Violations) {
        match (&self.ids, &self.filter) {
            (None, None) => v.add_kind("ids", "give ids or a filter", "missing"),
            (Some(_), Some(_)) => v.add("ids", "give ids or a filter, not both"),
            (Some(ids), None) if ids.is_empty() || ids.len() > 10_000 => {
                v.add("ids", "must hold 1 to 10000 ids")
            }
            _ => {}
        }
    }
}

/// Retry or cancel many jobs, by ids or by filter.
#[utoipa::path(post, path = "/admin/jobs/bulk", tag = "jobs", request_body = BulkJobsRequest,
    responses((status = 200, description = "`{data: {affected}}`"), (status = 403), (status = 422)))]
async fn bulk_jobs(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BulkJobsRequest>,
) -> ApiResult<Json<Value>> {
    let org = scope(&auth)?;
    let selection = match (body.ids, body.filter) {
        (Some(ids), _) => JobSelection::Ids(ids),
        (None, Some(f)) => JobSelection::Filter(f),
        (None, None) => unreachable!("validated: ids or filter"),
    };
    let affected = match body.action {
        BulkJobAction::Retry => admin::retry_jobs(&state.db, org, &selection).await?,
        BulkJobAction::Cancel => admin::cancel_jobs(&state.db, org, &selection).await?,
    };
    Ok(Json(json!({ "data": { "affected": affected } })))
}

/// Per lane: counts by state, oldest pending age, jobs finished in the last minute, paused.
#[utoipa::path(get, path = "/admin/queues", tag = "jobs", responses((status = 200, description = "`{data: [lane]}`")))]
async fn queues(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let org = scope(&auth)?;
    Ok(Json(
        json!({ "data": admin::queue_stats(&state.db, org).await? }),
    ))
}

fn parse_lane(raw: &str) -> ApiResult<Lane> {
    raw.parse().map_err(|_| ApiError::not_found("Lane"))
}

/// Pause a lane on every worker (super admin): no worker takes its jobs until resumed.
#[utoipa::path(post, path = "/admin/queues/{lane}/pause", tag = "jobs", responses((status = 200), (status = 403), (status = 404)))]
async fn pause_lane(
    State(state): State<AppState>,
    auth: Auth,
    Path(lane): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_super_admin()?;
    let lane = parse_lane(&lane)?;
    admin::pause_lane(&state.db, lane).await?;
    tracing::warn!(lane = lane.as_str(), "lane paused");
    Ok(Json(json!({ "data": { "lane": lane, "paused": true } })))
}

/// Resume a paused lane (super admin).
#[utoipa::path(post, path = "/admin/queues/{lane}/resume", tag = "jobs", responses((status = 200), (status = 403), (status = 404)))]
async fn resume_lane(
    State(state): State<AppState>,
    auth: Auth,
    Path(lane): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_super_admin()?;
    let lane = parse_lane(&lane)?;
    admin::resume_lane(&state.db, lane).await?;
    tracing::info!(lane = lane.as_str(), "lane resumed");
    Ok(Json(json!({ "data": { "lane": lane, "paused": false } })))
}
