//! `bot.reply` (lane `llm`): the bot answers a customer, or hands the conversation to people.
//! The flow is `wharf_shared::bot::reply`.

use wharf_shared::{
    bot::reply::{self, BotReply, ReplyDeps},
    jobs::JobOutcome,
};

use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn run(ctx: JobContext, deps: WorkerDeps, job: BotReply) -> anyhow::Result<JobOutcome> {
    let d = ReplyDeps {
        pool: &ctx.pool,
        llm: &deps.llm,
        secrets: &deps.secrets,
        events: &deps.events,
        last_attempt: ctx.attempt >= ctx.max_attempts,
    };
    let outcome = reply::run(&d, &job).await?;
    tracing::debug!(conversation_id = %job.conversation_id, ?outcome, "bot reply");
    Ok(JobOutcome::Complete)
}
