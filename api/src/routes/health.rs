//! `/health` (the process is up) and `/ready` (its dependencies answer). No authentication:
//! load balancers and orchestrators call them.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    pub status: &'static str,
    pub version: &'static str,
}

/// Health check: the process is up.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthOut)))]
pub async fn health() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyOut {
    /// "ready" or "degraded".
    pub status: &'static str,
    pub database: &'static str,
    /// "ok", "down", or "disabled" when REDIS_URL=none.
    pub redis: &'static str,
}

/// Readiness check: Postgres and Redis reachable. 503 when one is not.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = ReadyOut), (status = 503, body = ReadyOut)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyOut>) {
    let database = match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db),
    )
    .await
    {
        Ok(Ok(_)) => "ok",
        _ => "down",
    };
    let redis = if !state.redis.is_configured() {
        "disabled"
    } else if state.redis.ping().await {
        "ok"
    } else {
        "down"
    };
    let healthy = database == "ok" && redis != "down";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyOut {
            status: if healthy { "ready" } else { "degraded" },
            database,
            redis,
        }),
    )
}
