//! One module per job kind (or family of kinds); [`registry`] wires them all.
//!
//! Adding a kind: define its payload (implementing `JobKind`) in `wharf_shared`, write the
//! handler in a module here, register it below.

pub mod diag;
pub mod maintenance;

use wharf_shared::jobs::builtin::{DiagFail, DiagNoop, DiagSleep, DiagSnooze, PruneJobs};

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
    registry
}
