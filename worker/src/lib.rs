//! The `worker` process: runs jobs from the lanes it is configured for (ARCHITECTURE.md,
//! "Job rules").
//!
//! The queue itself (tables, enqueue, fetch, admin) lives in `wharf_shared::jobs`; this crate is
//! the runtime that drives it: per-lane fetch loops, the handler registry and one module per job
//! kind in [`jobs`], leases, outcome recording and metrics.

pub mod config;
pub mod deps;
pub mod jobs;
mod lease;
mod listen;
pub mod metrics;
mod outcomes;
pub mod registry;
mod runtime;
pub mod send_ledger;

pub use config::WorkerConfig;
pub use deps::WorkerDeps;
pub use registry::{JobContext, Registry};
pub use runtime::{run, run_with_registry};

/// What the `worker` binary runs: configuration from the environment, shutdown on SIGTERM or
/// Ctrl-C. Test crates build the same entry point into their own binaries to run real
/// processes (kill -9, SIGTERM, several replicas).
pub async fn main_from_env() -> anyhow::Result<()> {
    wharf_shared::telemetry::init(wharf_shared::telemetry::format_from_env(), "info,sqlx=warn");
    let config = wharf_shared::Config::from_env()?;
    let settings = WorkerConfig::from_env(&config)?;
    run(settings, wharf_shared::shutdown::on_signal()).await
}
