//! `sim`: runs the Meta Graph API simulator as a standalone process.
//!
//! Listens on `SIM_ADDR` (default `127.0.0.1:8090`), logs with `tracing` (`RUST_LOG`,
//! `LOG_FORMAT=json`), and stops gracefully on Ctrl-C or SIGTERM. Seed it through the
//! control API (`/_sim/...`).

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator: many small, short-lived allocations per message
/// (JSON values, request bodies) made malloc/free a quarter of the send path's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let addr = std::env::var("SIM_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let config = wharf_sim::SimConfig {
        addr: local,
        ..Default::default()
    };
    let sim = wharf_sim::Sim::new(config);
    tracing::info!(%local, "Graph API simulator listening (control API under /_sim)");
    wharf_sim::run(listener, sim, shutdown_signal()).await?;
    tracing::info!("simulator stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}
