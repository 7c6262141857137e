//! The worker's Prometheus metrics: recorded with the `metrics` crate, served as text on
//! `WORKER_METRICS_ADDR` by a tiny axum server.
//!
//! - `wharf_jobs_enqueue_to_start_seconds{lane}`: due time to start (queueing delay);
//! - `wharf_job_run_seconds{kind}`: handler run time;
//! - `wharf_job_failures_total{kind}`: failed attempts (errors, panics, discards, decode errors).

use std::{net::SocketAddr, time::Duration};

use axum::{routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

pub const ENQUEUE_TO_START: &str = "wharf_jobs_enqueue_to_start_seconds";
pub const RUN_SECONDS: &str = "wharf_job_run_seconds";
pub const FAILURES: &str = "wharf_job_failures_total";

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the global recorder and serves `/metrics` on `addr` until `stop`. A recorder that
/// is already installed (several workers in one test process) or a port in use is logged, not
/// fatal: metrics are not worth a worker that does no work.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) {
    let handle = match PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map(PrometheusBuilder::install_recorder)
    {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            return;
        }
    };
    metrics::describe_histogram!(
        ENQUEUE_TO_START,
        metrics::Unit::Seconds,
        "Due time to start of a job"
    );
    metrics::describe_histogram!(RUN_SECONDS, metrics::Unit::Seconds, "Handler run time");
    metrics::describe_counter!(FAILURES, "Failed job attempts");

    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "metrics endpoint not served");
            return;
        }
    };
    tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    let upkeep = tokio::spawn(upkeep(handle.clone(), stop.clone()));
    let app = Router::new().route("/metrics", get(move || render(handle.clone())));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "metrics endpoint stopped");
    }
    let _ = upkeep.await;
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}

async fn upkeep(handle: PrometheusHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.cancelled() => return,
        }
    }
}
