//! Lanes: independent queues inside the one jobs table.
//!
//! Every job runs in exactly one lane, and every worker process gives each lane its own
//! concurrency, so a million-recipient campaign in `bulk` never takes a slot an inbound reply
//! needs. Lanes are a closed set (the migration checks it): a typo is a compile error, not a
//! lane nobody works on.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// Webhook processing: what a customer is waiting on right now.
    Inbound,
    /// Individual sends (agent replies, API sends).
    Outbound,
    /// Campaign dispatch and other mass work.
    Bulk,
    /// Media download and upload.
    Media,
    /// Bot replies, embeddings, anything talking to an LLM provider.
    Llm,
    /// Platform housekeeping: pruning, syncs, health checks.
    Maintenance,
}

impl Lane {
    pub const ALL: [Lane; 6] = [
        Lane::Inbound,
        Lane::Outbound,
        Lane::Bulk,
        Lane::Media,
        Lane::Llm,
        Lane::Maintenance,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Lane::Inbound => "inbound",
            Lane::Outbound => "outbound",
            Lane::Bulk => "bulk",
            Lane::Media => "media",
            Lane::Llm => "llm",
            Lane::Maintenance => "maintenance",
        }
    }

    /// Slots per worker process when `WORKER_CONCURRENCY` does not say otherwise.
    pub const fn default_concurrency(self) -> usize {
        match self {
            Lane::Inbound => 16,
            Lane::Outbound => 32,
            Lane::Bulk => 8,
            Lane::Media => 8,
            Lane::Llm => 8,
            Lane::Maintenance => 2,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown lane {0:?} (expected one of inbound, outbound, bulk, media, llm, maintenance)")]
pub struct UnknownLane(pub String);

impl FromStr for Lane {
    type Err = UnknownLane;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lane::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownLane(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip_through_their_names() {
        for lane in Lane::ALL {
            assert_eq!(lane.as_str().parse::<Lane>().unwrap(), lane);
        }
        assert!("nope".parse::<Lane>().is_err());
    }
}
