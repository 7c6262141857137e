//! One module per job kind (or family of kinds); [`registry`] wires them all.
//!
//! Adding a kind: define its payload (implementing `JobKind`) in `wharf_shared`, write the
//! handler in a module here, register it below.

pub mod bot_reply;
pub mod campaign_sends;
pub mod campaigns;
pub mod diag;
pub mod download_media;
pub mod idle_agents;
pub mod ingest_document;
pub mod maintenance;
pub mod maintenance_windows;
mod message_statuses;
pub mod process_statuses;
pub mod process_webhook;
pub mod read_receipt;
pub mod reclassify;
pub mod routing_run;
pub mod send_message;
pub mod templates;

use wharf_shared::{
    inbox::jobs::{DownloadMedia, ProcessStatuses, ProcessWebhook},
    jobs::builtin::{DiagFail, DiagNoop, DiagSleep, DiagSnooze, PruneJobs},
    outbound::SendMessage,
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
        Ok(shared) => register_domain(&mut registry, crate::deps::WorkerDeps::from_config(&shared)),
        Err(e) => {
            tracing::error!(error = %e, "domain job kinds not registered: configuration is invalid")
        }
    }
    registry
}

/// Registers every domain kind (inbox, outbound, ...) with their dependencies. Tests that run
/// a worker in-process call this with their own configuration.
pub fn register_domain(registry: &mut Registry, deps: crate::deps::WorkerDeps) {
    register_inbox(registry, deps.clone());
    templates::register(registry, deps.clone());
    register_outbound(registry, deps.clone());
    register_campaigns(registry, deps.clone());
    let idle_deps = deps.clone();
    registry
        .register::<wharf_shared::cx::idle::IdleAgentsSweep, _, _>(idle_agents::sweep)
        .register::<wharf_shared::cx::idle::IdleAgents, _, _>(move |ctx, payload| {
            idle_agents::run(ctx, idle_deps.clone(), payload)
        })
        .register::<wharf_shared::cx::reroute::RoutingRun, _, _>({
            let deps = deps.clone();
            move |ctx, payload| routing_run::run(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::bot::reclassify::ReclassifyRun, _, _>({
            let deps = deps.clone();
            move |ctx, payload| reclassify::run(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::bot::reclassify::Categorize, _, _>({
            let deps = deps.clone();
            move |ctx, payload| reclassify::categorize(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::kb::ingest::IngestDocument, _, _>({
            let deps = deps.clone();
            move |ctx, payload| ingest_document::run(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::bot::reply::BotReply, _, _>(move |ctx, payload| {
            bot_reply::run(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::cx::maintenance::MaintenanceWindow, _, _>(
            maintenance_windows::window,
        )
        .register::<wharf_shared::cx::maintenance::MaintenanceWindowsSweep, _, _>(
            maintenance_windows::sweep,
        );
}

/// Registers the campaign kinds (`campaigns.dispatch`, `campaigns.launch_scheduled`,
/// `campaigns.launch_due`).
pub fn register_campaigns(registry: &mut Registry, deps: crate::deps::WorkerDeps) {
    registry
        .register::<wharf_shared::campaigns::DispatchCampaign, _, _>(move |ctx, payload| {
            campaigns::dispatch(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::campaigns::LaunchDue, _, _>(campaigns::launch_due)
        .register::<wharf_shared::campaigns::LaunchScheduled, _, _>(campaigns::launch_scheduled);
}

/// Registers the outbound kinds (`send_message`).
pub fn register_outbound(registry: &mut Registry, deps: crate::deps::WorkerDeps) {
    registry.register::<SendMessage, _, _>(move |ctx, payload| {
        send_message::run(ctx, deps.clone(), payload)
    });
}

/// Registers the inbox kinds (`process_webhook`, `process_statuses`, `download_media`) with their dependencies.
pub fn register_inbox(registry: &mut Registry, deps: crate::deps::WorkerDeps) {
    registry
        .register::<ProcessWebhook, _, _>({
            let deps = deps.clone();
            move |ctx, payload| process_webhook::run(ctx, deps.clone(), payload)
        })
        .register::<ProcessStatuses, _, _>({
            let deps = deps.clone();
            move |ctx, payload| process_statuses::run(ctx, deps.clone(), payload)
        })
        .register::<DownloadMedia, _, _>({
            let deps = deps.clone();
            move |ctx, payload| download_media::run(ctx, deps.clone(), payload)
        })
        .register::<wharf_shared::inbox::jobs::SendReadReceipt, _, _>(move |ctx, payload| {
            read_receipt::run(ctx, deps.clone(), payload)
        });
}
