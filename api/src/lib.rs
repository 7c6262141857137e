//! The Wharf API process: REST (`/api/v1/...`), health, OpenAPI and docs.
//!
//! `main.rs` stays thin: it parses the command line and calls [`cli::run`]. Tests start the
//! same [`serve`] on a port-0 listener.

pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;
pub mod validate;
pub mod webhook_ingest;

use std::{net::SocketAddr, time::Duration};

use axum::{extract::DefaultBodyLimit, http::Request, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;
use wharf_shared::{db, redis_conn::RedisHandle, Config};

pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Wharf API", description = "WhatsApp customer experience at campaign scale."),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("apiKey" = []))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or cm_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// The router and the OpenAPI document generated from it.
pub fn app(state: AppState) -> Router {
    let (api, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::api_v1())
        .split_for_parts();
    api.merge(routes::docs::router(spec))
        .merge(routes::metrics::router())
        .merge(routes::webhooks::router())
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
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
