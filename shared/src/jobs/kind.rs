//! The typed face of the queue: a job kind is its payload type.
//!
//! A kind names itself (`KIND`, the string stored in `jobs.kind` and used by the worker to find
//! the handler), its lane, its attempt budget and its backoff. Callers build a [`NewJob`] from a
//! payload value, so a payload can never be enqueued under the wrong kind or lane.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use super::{backoff, Lane};

/// A job kind: the payload type plus how the queue treats it.
pub trait JobKind: Serialize + DeserializeOwned + Send + 'static {
    /// Stable name stored with the job (`"maintenance.prune_jobs"`); never rename a live kind.
    const KIND: &'static str;
    const LANE: Lane;
    /// Attempts before the job is dead (kept, listable, retryable by an operator).
    const MAX_ATTEMPTS: i32 = 25;

    /// Delay before the retry that follows failed attempt `attempt` (1-based).
    fn backoff(attempt: i32) -> Duration {
        backoff::default_backoff(attempt)
    }
}

/// What a handler tells the runtime about one attempt. An `Err` from a handler means "retry
/// after the kind's backoff" (or dead, if that was the last attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done; the job is `completed`.
    Complete,
    /// Run again at this time without spending an attempt (rate limits, waiting on a peer).
    Snooze(DateTime<Utc>),
    /// Fail permanently now, whatever attempts remain; the job is `dead` with this reason.
    Discard(String),
}

impl JobOutcome {
    /// Snooze for a duration from now.
    pub fn snooze_for(d: Duration) -> Self {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        JobOutcome::Snooze(
            Utc::now()
                .checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

/// A job's place in its life cycle (`jobs.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run now (or as soon as `run_at` passes).
    Available,
    /// Enqueued or snoozed to run later.
    Scheduled,
    /// Failed an attempt; waits for its backoff.
    Retryable,
    Running,
    Completed,
    Cancelled,
    /// Out of attempts or discarded; kept with its error history.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Retryable,
        JobState::Running,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Dead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Retryable => "retryable",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Dead => "dead",
        }
    }

    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Dead
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Options shared by typed and untyped jobs.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub org_id: Option<Uuid>,
    /// `None` runs now.
    pub run_at: Option<DateTime<Utc>>,
    /// Lower runs first within an org's backlog in the lane. Default 0.
    pub priority: i16,
    /// Insert-or-skip while an unfinished job with this key exists.
    pub unique_key: Option<String>,
    /// Overrides the kind's `MAX_ATTEMPTS` for this job.
    pub max_attempts: Option<i32>,
    /// Overrides the kind's lane. Only for kinds that legitimately run anywhere (diagnostics);
    /// domain kinds keep the lane they declare.
    pub lane: Option<Lane>,
}

/// A typed job about to be enqueued: `NewJob::new(payload).org(org_id).unique_key(k)`.
#[derive(Debug, Clone)]
pub struct NewJob<T: JobKind> {
    pub payload: T,
    pub options: JobOptions,
}

impl<T: JobKind> NewJob<T> {
    pub fn new(payload: T) -> Self {
        Self {
            payload,
            options: JobOptions::default(),
        }
    }

    pub fn org(mut self, org_id: Uuid) -> Self {
        self.options.org_id = Some(org_id);
        self
    }

    pub fn org_opt(mut self, org_id: Option<Uuid>) -> Self {
        self.options.org_id = org_id;
        self
    }

    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.options.run_at = Some(at);
        self
    }

    pub fn delay(self, d: Duration) -> Self {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_add_signed(d)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.run_at(at)
    }

    pub fn priority(mut self, priority: i16) -> Self {
        self.options.priority = priority;
        self
    }

    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.options.unique_key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.options.max_attempts = Some(n.max(1));
        self
    }

    /// Runs this job in another lane than the kind's (diagnostics only).
    pub fn in_lane(mut self, lane: Lane) -> Self {
        self.options.lane = Some(lane);
        self
    }

    /// The untyped form the store inserts (and the scheduler builds from its table).
    pub fn into_raw(self) -> Result<RawJob, serde_json::Error> {
        Ok(RawJob {
            kind: T::KIND.to_string(),
            lane: self.options.lane.unwrap_or(T::LANE),
            max_attempts: self.options.max_attempts.unwrap_or(T::MAX_ATTEMPTS).max(1),
            payload: serde_json::to_value(&self.payload)?,
            options: self.options,
        })
    }
}

/// A job with its payload already encoded; what the store inserts.
#[derive(Debug, Clone)]
pub struct RawJob {
    pub kind: String,
    pub lane: Lane,
    pub max_attempts: i32,
    pub payload: serde_json::Value,
    pub options: JobOptions,
}
