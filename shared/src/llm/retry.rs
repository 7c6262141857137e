//! How [`super::LlmClient::chat`] retries: what the official OpenAI and Anthropic SDKs do
//! (exponential backoff from 0.5 s, capped at 8 s, with jitter; retry 408/409/429/5xx and
//! connection errors; honour `retry-after`), bounded by a total time budget so a job never
//! holds its worker slot for longer than it can afford.

use std::time::Duration;

use rand::Rng;

use super::LlmError;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4).
    pub max_attempts: u32,
    /// Budget for the whole call: limiter wait, attempts and the waits between them
    /// (default 60 s). A wait that would end past it is not started: the last error returns.
    pub max_total: Duration,
    /// First backoff (default 500 ms); doubles per attempt.
    pub base_delay: Duration,
    /// Longest backoff (default 8 s).
    pub max_delay: Duration,
    /// Longest `retry-after` honoured (default 30 s): a provider asking for longer makes the
    /// call fail with `RateLimited`, and the job's own retry takes over.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_total: Duration::from_secs(60),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries (still limited by the org's limiter, for `max_total`).
    pub fn once() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// "Equal jitter": half the exponential delay fixed, half random, so retries of many
    /// callers hit by the same outage spread out instead of arriving together.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// The wait before the next attempt after `err` on attempt `attempt`; `None` when the
    /// provider asks for a longer wait than we honour.
    pub(super) fn wait_after(&self, err: &LlmError, attempt: u32) -> Option<Duration> {
        match err {
            LlmError::RateLimited {
                retry_after: Some(ra),
                ..
            } => {
                if *ra > self.max_retry_after {
                    return None;
                }
                // At least what was asked, plus a little jitter so callers told the same
                // instant do not come back together.
                let jitter = ra
                    .max(&Duration::from_millis(100))
                    .mul_f64(rand::thread_rng().gen_range(0.0..=0.1));
                Some(*ra + jitter)
            }
            _ => Some(self.backoff(attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            let d = p.backoff(attempt);
            let exp = (p.base_delay * 2u32.pow(attempt - 1)).min(p.max_delay);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        let asked = |s| LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
            message: String::new(),
        };
        let w = p.wait_after(&asked(2), 1).unwrap();
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2200));
        assert_eq!(p.wait_after(&asked(120), 1), None);
    }
}
