//! The Wharf API process: REST (`/api/v1/...`), health, OpenAPI and docs.
//!
//! `main.rs` stays thin: it parses the command line and calls [`cli::run`]. Tests start the
//! same [`serve`] on a port-0 listener.

pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod console;
pub mod edge;
pub mod error;
pub mod extract;
pub mod live;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod upload;
pub mod validate;
pub mod webhook_ingest;

use std::{net::SocketAddr, time::Duration};

use axum::{extract::DefaultBodyLimit, http::Request, middleware, routing::get, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use wharf_shared::{db, redis_conn::RedisHandle, Config};

pub use state::AppState;

/// The router and the OpenAPI document generated from it.
pub fn app(state: AppState) -> Router {
    let (api, mut spec) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", routes::api_v1())
        // The HydraCore channels dialect lives at the root: `/v1/instances/...`.
        .nest("/v1", routes::hydracore::router())
        .split_for_parts();
    openapi::add_error_responses_everywhere(&mut spec);
    api.merge(routes::docs::router(spec))
        .merge(routes::metrics::router())
        .merge(routes::webhooks::router())
        .merge(console::router())
        // Load balancers probe the root; people opening the server land on the docs.
        .route("/", get(edge::root))
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        // Body limits are per route, in one table (`edge::body_limit`), enforced by the guard.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(edge::guard))
        .layer(middleware::from_fn(edge::json_errors))
        .layer(
            // Spans carry method and path only: query strings can hold webhook verify tokens.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// A pool of `max_connections` on the configured database, created (in development) and
/// migrated first.
pub(crate) async fn migrated_pool(
    config: &Config,
    max_connections: u32,
) -> anyhow::Result<sqlx::PgPool> {
    let url = config.database_url.expose().clone();
    if !config.is_production() {
        db::ensure_database(&url).await?;
    }
    let pool = db::lazy_pool(
        &url,
        db::PoolSettings {
            max_connections,
            ..Default::default()
        },
    )?;
    db::migrate(&pool).await?;
    Ok(pool)
}

/// Connects to Postgres (creating the database in development), applies migrations,
/// connects to Redis and ensures the configured super admin exists.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let pool = migrated_pool(&config, config.database_pool_size).await?;
    let redis = RedisHandle::connect(&config).await;
    let state = AppState::new(config, pool, redis);
    bootstrap::ensure_super_admin_from_config(&state).await?;
    Ok(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api listening");
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}
