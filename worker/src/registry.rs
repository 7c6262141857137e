//! Handler registry: job kind string → handler, with the kind's backoff.
//!
//! Handlers are typed (`Fn(JobContext, T) -> Future<Output = anyhow::Result<JobOutcome>>`);
//! the registry erases the type once, at registration, so the dispatch loop only sees JSON in
//! and an outcome out. Decoding happens per job: a payload that does not decode fails that one
//! job (dead, with the decode error), never the worker.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wharf_shared::jobs::{JobKind, JobOutcome};

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub pool: PgPool,
    /// Cancelled when an operator cancels the job, the worker loses the job's lease, or the
    /// shutdown grace period ends. Long handlers should watch it; the runtime stops polling the
    /// handler future at that point anyway.
    pub cancel: CancellationToken,
    pub id: i64,
    pub kind: String,
    pub lane: String,
    pub org_id: Option<Uuid>,
    /// 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = anyhow::Result<JobOutcome>> + Send>>;

type Erased = Arc<
    dyn Fn(JobContext, serde_json::Value) -> Result<HandlerFuture, serde_json::Error> + Send + Sync,
>;

#[derive(Clone)]
pub(crate) struct Entry {
    pub run: Erased,
    pub backoff: fn(i32) -> Duration,
}

#[derive(Clone, Default)]
pub struct Registry {
    entries: HashMap<&'static str, Entry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of kind `T`. A second registration of a kind replaces the first.
    pub fn register<T, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        T: JobKind,
        F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<JobOutcome>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run: Erased = Arc::new(move |ctx, payload| {
            let payload: T = serde_json::from_value(payload)?;
            let handler = Arc::clone(&handler);
            Ok(Box::pin(async move { handler(ctx, payload).await }) as HandlerFuture)
        });
        self.entries.insert(
            T::KIND,
            Entry {
                run,
                backoff: T::backoff,
            },
        );
        self
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Entry> {
        self.entries.get(kind)
    }

    /// The registered kinds, sorted (start-up log).
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.entries.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }
}
