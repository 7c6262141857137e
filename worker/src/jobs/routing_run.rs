//! `routing.run_now`: a retroactive routing run requested through
//! `POST /routing-rules/run-now`. The work is `wharf_shared::cx::reroute::run`; this handler
//! records a run that failed for good.

use wharf_shared::{
    cx::reroute::{self, RoutingRun},
    jobs::JobOutcome,
};

use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn run(ctx: JobContext, deps: WorkerDeps, job: RoutingRun) -> anyhow::Result<JobOutcome> {
    match reroute::run(&ctx.pool, &job, &deps.events).await {
        Ok(()) => Ok(JobOutcome::Complete),
        Err(e) => {
            if ctx.attempt >= ctx.max_attempts {
                reroute::fail(&ctx.pool, job.run_id, &e.to_string()).await?;
            }
            Err(e.into())
        }
    }
}
