//! Payloads of the inbox job kinds. They carry ids only; handlers read the rows.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{backoff, JobKind, Lane};

/// Applies one stored webhook event (`webhook_events.id`): messages, statuses, account and
/// template updates. Idempotent: a second run changes nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessWebhook {
    pub event_id: Uuid,
}

impl JobKind for ProcessWebhook {
    const KIND: &'static str = "inbox.process_webhook";
    const LANE: Lane = Lane::Inbound;
    const MAX_ATTEMPTS: i32 = 25;
}

impl ProcessWebhook {
    /// One unfinished job per event.
    pub fn unique_key(&self) -> String {
        format!("process_webhook:{}", self.event_id)
    }
}

/// Applies a batch of stored webhook events that carry only message statuses (Meta's `sent`,
/// `delivered`, `read`, `failed` for our sends), all in one transaction. A campaign's status
/// webhooks arrive at three times its send rate, one per request; a job and a transaction per
/// event made them the bottleneck of a running campaign. The ingestion batcher enqueues one of
/// these per batch for its statuses-only events, and one `process_webhook` per other event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessStatuses {
    pub event_ids: Vec<Uuid>,
}

impl JobKind for ProcessStatuses {
    const KIND: &'static str = "inbox.process_statuses";
    const LANE: Lane = Lane::Inbound;
    const MAX_ATTEMPTS: i32 = 25;
}

/// Tells Meta that the customer's message (`messages.id`, inbound) was read: the customer sees
/// the blue ticks. Best effort: an account that cannot send any more drops it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReadReceipt {
    pub message_id: Uuid,
}

impl JobKind for SendReadReceipt {
    const KIND: &'static str = "inbox.send_read_receipt";
    const LANE: Lane = Lane::Outbound;
    const MAX_ATTEMPTS: i32 = 5;
}

impl SendReadReceipt {
    /// One unfinished receipt per message.
    pub fn unique_key(&self) -> String {
        format!("read_receipt:{}", self.message_id)
    }
}

/// Downloads the media of one inbound message (`messages.id`) with a fresh URL per attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadMedia {
    pub message_id: Uuid,
}

impl DownloadMedia {
    /// One unfinished download per message (retry-media while one is pending is a no-op).
    pub fn unique_key(&self) -> String {
        format!("download_media:{}", self.message_id)
    }
}

/// Base of the media retry backoff (`MEDIA_RETRY_BASE_MS`, default 5 s).
pub static MEDIA_RETRY_BASE: backoff::Tunable =
    backoff::Tunable::new("MEDIA_RETRY_BASE_MS", Duration::from_secs(5));

/// Overrides the base of the media retry backoff for this process (tests use tens of ms).
pub fn set_media_retry_base(base: Duration) {
    MEDIA_RETRY_BASE.set(base);
}

impl JobKind for DownloadMedia {
    const KIND: &'static str = "inbox.download_media";
    const LANE: Lane = Lane::Media;
    const MAX_ATTEMPTS: i32 = 8;

    /// 5 s, 10 s, 20 s … capped at 10 minutes (eight attempts span about ten minutes; Meta keeps
    /// inbound media for 7 days, and retry-media can always start over).
    fn backoff(attempt: i32) -> Duration {
        backoff::exponential_jitter(attempt, MEDIA_RETRY_BASE.get(), Duration::from_secs(600))
    }
}
