//! Retry delays: exponential with jitter, computed when an attempt fails and stored in `run_at`.
//!
//! The delay is stored, not slept on, so a retry survives a restart and a failing job costs
//! nothing while it waits. Jitter (±20 %) spreads the retries of jobs that failed together (an
//! outage) so they do not return as one thundering herd; with a factor of two per attempt the
//! delays still grow strictly from one attempt to the next.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use rand::Rng;

/// A duration a job kind reads at run time (a backoff base, a wait): its default, overridden by
/// an environment variable (milliseconds), or set by a test for this process. Job kinds'
/// `backoff` is a plain function without configuration, so these carry the knob.
pub struct Tunable {
    env: &'static str,
    default_ms: u64,
    /// 0 = not read yet.
    ms: AtomicU64,
}

impl Tunable {
    pub const fn new(env: &'static str, default: Duration) -> Self {
        Self {
            env,
            default_ms: default.as_millis() as u64,
            ms: AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> Duration {
        let mut ms = self.ms.load(Ordering::Relaxed);
        if ms == 0 {
            ms = std::env::var(self.env)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|v| *v > 0)
                .unwrap_or(self.default_ms)
                .max(1);
            self.ms.store(ms, Ordering::Relaxed);
        }
        Duration::from_millis(ms)
    }

    /// Overrides the value for this process (tests use tens of milliseconds).
    pub fn set(&self, value: Duration) {
        self.ms
            .store((value.as_millis() as u64).max(1), Ordering::Relaxed);
    }
}

/// The delay before the retry that follows failed attempt `attempt` (1-based):
/// `base * 2^(attempt-1)`, capped at `max`, then jittered by ±20 %.
pub fn exponential_jitter(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.clamp(1, 32) - 1;
    let raw = base.saturating_mul(1u32 << exp.min(31));
    let capped = raw.min(max);
    let factor = rand::thread_rng().gen_range(0.8..=1.2);
    capped.mul_f64(factor)
}

/// The default policy: 2 s, 4 s, 8 s, … capped at 6 h. Twenty-five attempts span about three
/// and a half days, enough to ride out a long provider outage.
pub fn default_backoff(attempt: i32) -> Duration {
    exponential_jitter(
        attempt,
        Duration::from_secs(2),
        Duration::from_secs(6 * 3600),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let mut last = Duration::ZERO;
        for attempt in 1..=12 {
            let d = default_backoff(attempt);
            assert!(d > last, "attempt {attempt}: {d:?} <= {last:?}");
            last = d;
        }
        assert!(default_backoff(40) <= Duration::from_secs(6 * 3600).mul_f64(1.2));
        assert!(default_backoff(0) >= Duration::from_millis(1600));
    }
}
