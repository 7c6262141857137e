//! Rate limiting the way Meta applies it, precisely enough to test a sender against.
//!
//! * [`Gcra`] is the generic cell-rate algorithm (a token bucket expressed as one
//!   "theoretical arrival time"): exact to the nanosecond, O(1), one `Instant` of state, so
//!   a bucket per (number, recipient) pair costs 16 bytes and is cheap at 10k+ decisions/s.
//!   It backs the per-number throughput limit (130429, inbound and outbound together) and the
//!   per-pair limit (burst 45, 1 per 6 s → 131056).
//! * [`RollingBudget`] counts management calls over a rolling hour per WABA (→ 80008) and
//!   produces the `x-business-use-case-usage` percentages Meta reports.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// GCRA limiter: `rate` per second with a burst of `burst` cells.
#[derive(Debug, Clone)]
pub struct Gcra {
    /// Emission interval: time one cell "costs".
    interval: Duration,
    /// Burst capacity expressed as time: `interval * burst`.
    tolerance: Duration,
    /// Theoretical arrival time of the next conforming cell.
    tat: Option<Instant>,
}

impl Gcra {
    /// A limiter admitting `per_second` on average with bursts of `burst`.
    pub fn per_second(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1e9
        };
        Self::with_interval(Duration::from_secs_f64(1.0 / per_second), burst)
    }

    /// A limiter emitting one cell every `interval` with bursts of `burst`.
    pub fn with_interval(interval: Duration, burst: u32) -> Self {
        let burst = burst.max(1);
        Self {
            interval,
            tolerance: interval * burst,
            tat: None,
        }
    }

    /// Takes one cell if it conforms at `now`; returns the wait until it would otherwise.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let new_tat = tat + self.interval;
        let allow_at = new_tat.checked_sub(self.tolerance).unwrap_or(now);
        if allow_at > now {
            return Err(allow_at - now);
        }
        self.tat = Some(new_tat);
        Ok(())
    }

    /// Takes one cell unconditionally (inbound traffic still consumes throughput).
    pub fn consume(&mut self, now: Instant) {
        let tat = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(tat + self.interval);
    }

    /// Cells available right now (for state inspection).
    pub fn available(&self, now: Instant) -> f64 {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let used = tat.saturating_duration_since(now).as_secs_f64();
        ((self.tolerance.as_secs_f64() - used) / self.interval.as_secs_f64()).max(0.0)
    }

    /// Whether the bucket is full again (and can be forgotten to save memory).
    pub fn is_idle(&self, now: Instant) -> bool {
        self.tat.is_none_or(|t| t <= now)
    }
}

/// A count of calls over a rolling window with a fixed budget.
#[derive(Debug, Clone)]
pub struct RollingBudget {
    /// Calls allowed per window.
    pub budget: u32,
    /// Window length (one hour at Meta).
    pub window: Duration,
    calls: VecDeque<Instant>,
}

/// Usage figures reported in `x-business-use-case-usage`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Percent of the budget used (0..=100).
    pub percent: u32,
    /// Minutes until a call is possible again (0 if not throttled).
    pub minutes_to_regain: u64,
}

impl RollingBudget {
    /// A budget of `budget` calls per `window`.
    pub fn new(budget: u32, window: Duration) -> Self {
        Self {
            budget,
            window,
            calls: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&first) = self.calls.front() {
            if now.duration_since(first) >= self.window {
                self.calls.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a call if the budget allows; `Err` when exhausted (the call is not counted).
    pub fn try_call(&mut self, now: Instant) -> Result<Usage, Usage> {
        self.prune(now);
        if self.calls.len() as u64 >= u64::from(self.budget) {
            return Err(self.usage(now));
        }
        self.calls.push_back(now);
        Ok(self.usage(now))
    }

    /// Current usage.
    pub fn usage(&mut self, now: Instant) -> Usage {
        self.prune(now);
        let used = self.calls.len() as u64;
        let budget = u64::from(self.budget.max(1));
        let percent = ((used * 100) / budget).min(100) as u32;
        let minutes_to_regain = if used >= budget {
            self.calls
                .front()
                .map(|first| {
                    let left = self.window.saturating_sub(now.duration_since(*first));
                    left.as_secs().div_ceil(60)
                })
                .unwrap_or(0)
        } else {
            0
        };
        Usage {
            percent,
            minutes_to_regain,
        }
    }

    /// Forgets all recorded calls.
    pub fn reset(&mut self) {
        self.calls.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_burst_then_steady() {
        let start = Instant::now();
        let mut g = Gcra::per_second(80.0, 80);
        for _ in 0..80 {
            assert!(g.check(start).is_ok());
        }
        assert!(g.check(start).is_err());
        // 1/80 s later exactly one more cell.
        let later = start + Duration::from_micros(12_500);
        assert!(g.check(later).is_ok());
        assert!(g.check(later).is_err());
    }

    #[test]
    fn pair_bucket() {
        let start = Instant::now();
        let mut g = Gcra::with_interval(Duration::from_secs(6), 45);
        for _ in 0..45 {
            assert!(g.check(start).is_ok());
        }
        let wait = g.check(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(g.check(start + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn budget_counts_and_reports() {
        let now = Instant::now();
        let mut b = RollingBudget::new(4, Duration::from_secs(3600));
        assert_eq!(b.try_call(now).unwrap().percent, 25);
        b.try_call(now).unwrap();
        b.try_call(now).unwrap();
        assert_eq!(b.try_call(now).unwrap().percent, 100);
        let err = b.try_call(now).unwrap_err();
        assert_eq!(err.percent, 100);
        assert_eq!(err.minutes_to_regain, 60);
        assert!(b.try_call(now + Duration::from_secs(3600)).is_ok());
    }
}
