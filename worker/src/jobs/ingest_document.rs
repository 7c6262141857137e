//! `kb.ingest_document` (lane `llm`): one knowledge-base document from its file to searchable
//! chunks. The flow is `wharf_shared::kb::ingest`.

use wharf_shared::{
    jobs::JobOutcome,
    kb::ingest::{self, IngestDeps, IngestDocument},
};

use crate::{deps::WorkerDeps, registry::JobContext};

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: IngestDocument,
) -> anyhow::Result<JobOutcome> {
    let d = IngestDeps {
        pool: &ctx.pool,
        llm: &deps.llm,
        secrets: &deps.secrets,
        blob_dir: &deps.blob_dir,
        last_attempt: ctx.attempt >= ctx.max_attempts,
    };
    ingest::run(&d, &job).await
}
