//! Login throttling: per email and per client address, with governor's GCRA limiters. A
//! throttled attempt is answered 429 with Retry-After before the password is even checked, so
//! guessing is slow whichever account or address an attacker rotates.
//!
//! The limiters live in the process. With several API replicas the allowance multiplies by the
//! replica count, which still keeps guessing at a handful of attempts per minute.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};

type KeyedLimiter<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub struct LoginThrottle {
    by_email: KeyedLimiter<String>,
    by_ip: KeyedLimiter<IpAddr>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).expect("max(1) is non-zero");
    Quota::per_minute(n).allow_burst(n)
}

impl LoginThrottle {
    pub fn new(per_email_per_minute: u32, per_ip_per_minute: u32) -> Self {
        Self {
            by_email: RateLimiter::keyed(per_minute(per_email_per_minute)),
            by_ip: RateLimiter::keyed(per_minute(per_ip_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt. `Err(wait)` when either limit is exhausted.
    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Err(not_until) = self.by_ip.check_key(&ip) {
            return Err(not_until.wait_time_from(now));
        }
        if let Err(not_until) = self.by_email.check_key(&email.to_string()) {
            return Err(not_until.wait_time_from(now));
        }
        // Forget idle keys now and then so memory stays bounded under a spray attack.
        if self.by_email.len() > 100_000 {
            self.by_email.retain_recent();
            self.by_ip.retain_recent();
        }
        Ok(())
    }
}
