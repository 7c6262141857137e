//! `GET /metrics`: Prometheus text. The API serves the queue's state (jobs by lane and state,
//! oldest pending age, finished per minute, paused lanes) read from Postgres; each worker
//! serves its own timing histograms (enqueue-to-start, run duration, failures by kind) on
//! `WORKER_METRICS_ADDR`.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};

use crate::{error::ApiResult, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let text = wharf_shared::jobs::metrics::render_queue_gauges(&state.db).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
