//! `conversations.reclassify` (a bulk run from `POST /conversations/re-classify`) and
//! `conversations.categorize` (one new conversation, when auto-categorisation is on), lane
//! `llm`. The work is `wharf_shared::bot::reclassify`; these handlers decide what a failure
//! means for the job.

use wharf_shared::{
    bot::{
        assist::AssistDeps,
        reclassify::{self, Categorize, ReclassifyRun},
    },
    cx::reroute,
    jobs::JobOutcome,
};

use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: ReclassifyRun,
) -> anyhow::Result<JobOutcome> {
    let d = AssistDeps {
        pool: &ctx.pool,
        llm: &deps.llm,
        secrets: &deps.secrets,
    };
    match reclassify::run(&d, &deps.events, &job).await {
        Ok(()) => Ok(JobOutcome::Complete),
        Err(e) if reclassify::worth_retrying(&e) && ctx.attempt < ctx.max_attempts => Err(e.into()),
        Err(e) => {
            reroute::fail(&ctx.pool, job.run_id, &e.to_string()).await?;
            Ok(JobOutcome::Discard(e.to_string()))
        }
    }
}

pub async fn categorize(
    ctx: JobContext,
    deps: WorkerDeps,
    job: Categorize,
) -> anyhow::Result<JobOutcome> {
    let d = AssistDeps {
        pool: &ctx.pool,
        llm: &deps.llm,
        secrets: &deps.secrets,
    };
    match reclassify::categorize(&d, &deps.events, &job).await {
        Ok(()) => Ok(JobOutcome::Complete),
        Err(e) if reclassify::worth_retrying(&e) => Err(e.into()),
        // A refused key or a broken config: the conversation simply stays uncategorised
        // (the reply flow raises the key alert).
        Err(e) => Ok(JobOutcome::Discard(e.to_string())),
    }
}
