//! One module per job kind (or family of kinds); [`registry`] wires them all.
//!
//! Adding a kind: define its payload (implementing `JobKind`) in `wharf_shared`, write the
//! handler in a module here, register it below.

pub mod diag;
pub mod download_media;
pub mod maintenance;
pub mod process_webhook;

use wharf_shared::{
    inbox::jobs::{DownloadMedia, ProcessWebhook},
    jobs::builtin::{DiagFail, DiagNoop, DiagSleep, DiagSnooze, PruneJobs},
};

use crate::{config::WorkerConfig, registry::Registry};

/// Every handler this worker binary knows.
pub fn registry(config: &WorkerConfig) -> Registry {
    let mut registry = Registry::new();
    let retention = maintenance::Retention {
        finished: config.finished_retention,
        dead: config.dead_retention,
    };
    registry
        .register::<PruneJobs, _, _>(move |ctx, payload| {
            maintenance::prune_jobs(ctx, payload, retention)
        })
        .register::<DiagNoop, _, _>(diag::noop)
        .register::<DiagSleep, _, _>(diag::sleep)
        .register::<DiagFail, _, _>(diag::fail)
        .register::<DiagSnooze, _, _>(diag::snooze);
    // Domain kinds need the shared configuration (Meta URL, secret key, blob directory).
    // TODO(job-runtime owner): thread `Config` into `run` instead of reading it here.
    match wharf_shared::Config::from_env() {
        Ok(shared) => register_inbox(&mut registry, crate::deps::WorkerDeps::from_config(&shared)),
        Err(e) => {
            tracing::error!(error = %e, "inbox job kinds not registered: configuration is invalid")
        }
    }
    registry
}

/// Registers the inbox kinds (`process_webhook`, `download_media`) with their dependencies.
pub fn register_inbox(registry: &mut Registry, deps: crate::deps::WorkerDeps) {
    registry
        .register::<ProcessWebhook, _, _>(process_webhook::run)
        .register::<DownloadMedia, _, _>(move |ctx, payload| {
            download_media::run(ctx, deps.clone(), payload)
        });
}
