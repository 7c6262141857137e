//! The durable job runtime's store: a Postgres job queue (ARCHITECTURE.md, "Job rules"; River
//! and Oban are the models).
//!
//! Why our own: the queue must enqueue inside the caller's transaction, store retry times,
//! survive database blips and undecodable payloads, rescue jobs of dead workers, pause lanes
//! cluster-wide and stay fair between tenants; no crate we measured does all of that.
//!
//! The pieces, one concern per module:
//! - [`kind`]: the typed API ([`JobKind`], [`NewJob`], [`JobOutcome`], [`JobState`]);
//! - [`lanes`]: the closed set of lanes, each with its own concurrency in every worker;
//! - [`enqueue`]: transactional single and bulk enqueue, one NOTIFY per statement;
//! - [`fetch`]: fair batched claiming with `SKIP LOCKED`, leases and heartbeats;
//! - [`lifecycle`]: outcomes of attempts (batched completion, retries, snoozes) and rescue;
//! - [`backoff`]: exponential backoff with jitter;
//! - [`admin`]: operator functions (list, inspect, retry, cancel, stats, pause, prune);
//! - [`metrics`]: "jobs by lane and state" gauges in Prometheus text;
//! - [`builtin`]: payloads of the kinds this runtime ships (maintenance and diagnostics).
//!
//! The worker loop that drives these lives in the `wharf-worker` crate; the cron table in
//! `wharf-scheduler`.

pub mod admin;
pub mod backoff;
pub mod builtin;
pub mod enqueue;
pub mod fetch;
pub mod kind;
pub mod lanes;
pub mod lifecycle;
pub mod metrics;

pub use enqueue::{enqueue, enqueue_many, enqueue_many_raw, enqueue_raw};
pub use fetch::{FairCursor, FetchedJob};
pub use kind::{JobKind, JobOptions, JobOutcome, JobState, NewJob, RawJob};
pub use lanes::Lane;

/// The LISTEN/NOTIFY channel of the queue. Payloads: a lane name ("jobs are available in this
/// lane", sent once per enqueue statement and on resume) or `cancel:<job id>`.
pub const NOTIFY_CHANNEL: &str = "wharf_jobs";

/// A notification on [`NOTIFY_CHANNEL`], parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSignal {
    /// New or released jobs in a lane, or the lane was resumed.
    Lane(Lane),
    /// An operator cancelled this job; if it runs here, stop it.
    Cancel(i64),
}

impl QueueSignal {
    pub fn parse(payload: &str) -> Option<Self> {
        if let Some(id) = payload.strip_prefix("cancel:") {
            return id.parse().ok().map(QueueSignal::Cancel);
        }
        payload.parse().ok().map(QueueSignal::Lane)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("payload encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The change would create a second unfinished job with the same unique key.
    #[error("conflict: {0}")]
    Conflict(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(
            QueueSignal::parse("bulk"),
            Some(QueueSignal::Lane(Lane::Bulk))
        );
        assert_eq!(
            QueueSignal::parse("cancel:42"),
            Some(QueueSignal::Cancel(42))
        );
        assert_eq!(QueueSignal::parse("cancel:x"), None);
        assert_eq!(QueueSignal::parse("other"), None);
    }
}
