//! The organization's own limits on model calls: requests and estimated tokens per window
//! (a minute unless a test says otherwise), per organization and provider, so one busy
//! organization cannot burn through a shared key's provider quota or a runaway bot through
//! its own budget.
//!
//! Two GCRA buckets per (org, provider), decided together by one atomic Lua script in Redis
//! (every API and worker process shares them), mirroring `crate::ratelimit`: a call takes one
//! cell of the requests bucket and `tokens` cells of the tokens bucket, from both or neither;
//! a call that cannot go now reserves the earliest slot both allow, if the caller can wait
//! that long. A bucket holds a whole window's worth (burst = the limit) and refills
//! continuously, which is how the providers' own limiters behave.
//!
//! Without Redis (or while it is unreachable) the same arithmetic runs in-process. It is a
//! hand-written mirror of the script rather than `governor`, because `governor` can neither
//! reserve a future slot nor take from two buckets atomically; during an outage each process
//! then admits the full limit, and the provider's own 429s (retried by the client) cover the
//! difference.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::Provider;
use crate::redis_conn::RedisHandle;

/// Limits applied to every (organization, provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmLimits {
    /// Requests per window (`LLM_REQUESTS_PER_MINUTE`, default 500).
    pub requests: u32,
    /// Estimated tokens per window (`LLM_TOKENS_PER_MINUTE`, default 200 000).
    pub tokens: u32,
    /// The window (a minute; tests use shorter ones).
    pub window: Duration,
}

impl LlmLimits {
    pub fn per_minute(requests: u32, tokens: u32) -> Self {
        Self {
            requests: requests.max(1),
            tokens: tokens.max(1),
            window: Duration::from_secs(60),
        }
    }
}

impl Default for LlmLimits {
    fn default() -> Self {
        Self::per_minute(500, 200_000)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDecision {
    /// Go now.
    Allowed,
    /// A slot this far ahead is taken: sleep, then go.
    Reserved(Duration),
    /// Not within the caller's wait; nothing was taken. Try again after this long.
    Wait(Duration),
}

/// KEYS: bucket keys. ARGV per bucket: `emission_us` (one cell), `tolerance_us` (the burst),
/// `cost` (cells); then `max_reserve_us`. Returns {granted, delay_us}.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local max_reserve = tonumber(ARGV[n * 3 + 1])
local tats = {}
local slot = now
for i = 1, n do
  local emission = tonumber(ARGV[(i - 1) * 3 + 1])
  local tolerance = tonumber(ARGV[(i - 1) * 3 + 2])
  local cost = tonumber(ARGV[(i - 1) * 3 + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + emission * cost - tolerance
  if allow_at > slot then slot = allow_at end
end
local delay = slot - now
if delay > max_reserve then return {0, math.ceil(delay)} end
for i = 1, n do
  local emission = tonumber(ARGV[(i - 1) * 3 + 1])
  local cost = tonumber(ARGV[(i - 1) * 3 + 3])
  local base = tats[i]
  if slot > base then base = slot end
  local new_tat = base + emission * cost
  redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
return {1, math.ceil(delay)}
"#;

/// Longest a decision waits for Redis before deciding in-process.
const REDIS_CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long decisions stay in-process after Redis failed, before one call probes it again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct LlmLimiter {
    redis: RedisHandle,
    prefix: String,
    limits: LlmLimits,
    script: Arc<redis::Script>,
    /// In-process theoretical arrival times (µs since `epoch`), by bucket key.
    local: Arc<Mutex<HashMap<String, f64>>>,
    epoch: Instant,
    /// Unix ms until which decisions stay in-process (0: Redis is fine).
    redis_down_until_ms: Arc<AtomicI64>,
}

struct Bucket {
    key: String,
    emission_us: f64,
    tolerance_us: f64,
    cost: f64,
}

impl LlmLimiter {
    /// Shared through Redis (keys `{prefix}:llm:{org}:{provider}:{req|tok}`).
    pub fn new(redis: RedisHandle, prefix: &str, limits: LlmLimits) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}:llm:"),
            limits,
            script: Arc::new(redis::Script::new(SCRIPT)),
            local: Arc::default(),
            epoch: Instant::now(),
            redis_down_until_ms: Arc::default(),
        }
    }

    /// In-process only (one process, or tests).
    pub fn local(limits: LlmLimits) -> Self {
        Self::new(RedisHandle::disabled(), "local", limits)
    }

    pub fn limits(&self) -> LlmLimits {
        self.limits
    }

    fn buckets(&self, org_id: Uuid, provider: Provider, tokens: u32) -> [Bucket; 2] {
        let window_us = self.limits.window.as_micros() as f64;
        let base = format!("{}{org_id}:{}", self.prefix, provider.as_str());
        [
            Bucket {
                key: format!("{base}:req"),
                emission_us: window_us / f64::from(self.limits.requests),
                tolerance_us: window_us,
                cost: 1.0,
            },
            Bucket {
                key: format!("{base}:tok"),
                emission_us: window_us / f64::from(self.limits.tokens),
                tolerance_us: window_us,
                // A request larger than the whole bucket could never pass: it waits for a
                // full bucket instead.
                cost: f64::from(tokens.clamp(1, self.limits.tokens)),
            },
        ]
    }

    /// Takes a request and `tokens` for `org_id` at `provider` now, or reserves a slot at most
    /// `max_wait` ahead, or says how long until one would be free.
    pub async fn acquire(
        &self,
        org_id: Uuid,
        provider: Provider,
        tokens: u32,
        max_wait: Duration,
    ) -> LimitDecision {
        let buckets = self.buckets(org_id, provider, tokens);
        if let Some(decision) = self.acquire_redis(&buckets, max_wait).await {
            return decision;
        }
        self.acquire_local(&buckets, max_wait)
    }

    /// [`Self::acquire`], sleeping through a reservation. `Err` carries the wait when the
    /// slot is further than `max_wait`.
    pub async fn wait(
        &self,
        org_id: Uuid,
        provider: Provider,
        tokens: u32,
        max_wait: Duration,
    ) -> Result<(), Duration> {
        match self.acquire(org_id, provider, tokens, max_wait).await {
            LimitDecision::Allowed => Ok(()),
            LimitDecision::Reserved(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            LimitDecision::Wait(d) => Err(d),
        }
    }

    async fn acquire_redis(&self, buckets: &[Bucket], max_wait: Duration) -> Option<LimitDecision> {
        let down_until = self.redis_down_until_ms.load(Ordering::Relaxed);
        let now_ms = chrono::Utc::now().timestamp_millis();
        if down_until != 0 {
            if now_ms < down_until {
                return None;
            }
            let next = now_ms + REDIS_RETRY_AFTER.as_millis() as i64;
            if self
                .redis_down_until_ms
                .compare_exchange(down_until, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return None; // another caller is probing
            }
        }
        let mut conn = self.redis.get().await?;
        let mut inv = self.script.prepare_invoke();
        for b in buckets {
            inv.key(&b.key);
        }
        for b in buckets {
            inv.arg(b.emission_us).arg(b.tolerance_us).arg(b.cost);
        }
        inv.arg(max_wait.as_micros() as u64);
        let result = tokio::time::timeout(
            REDIS_CALL_TIMEOUT,
            inv.invoke_async::<(i64, i64)>(&mut conn),
        )
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "LLM limiter call timed out",
            )))
        });
        match result {
            Ok((granted, us)) => {
                if self.redis_down_until_ms.swap(0, Ordering::Relaxed) != 0 {
                    tracing::info!("Redis LLM limiter reachable again");
                }
                Some(decision(granted == 1, us))
            }
            Err(e) => {
                let until = now_ms + REDIS_RETRY_AFTER.as_millis() as i64;
                if self.redis_down_until_ms.swap(until, Ordering::Relaxed) == 0 {
                    tracing::warn!(error = %e, "Redis LLM limiter unavailable; limiting in-process");
                }
                None
            }
        }
    }

    /// The script's arithmetic on process-local state.
    fn acquire_local(&self, buckets: &[Bucket], max_wait: Duration) -> LimitDecision {
        let now = self.epoch.elapsed().as_micros() as f64;
        let mut tats = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = now;
        let current: Vec<f64> = buckets
            .iter()
            .map(|b| {
                let tat = tats.get(&b.key).copied().unwrap_or(0.0).max(now);
                slot = slot.max(tat + b.emission_us * b.cost - b.tolerance_us);
                tat
            })
            .collect();
        let delay = slot - now;
        if delay > max_wait.as_micros() as f64 {
            return decision(false, delay.ceil() as i64);
        }
        for (b, tat) in buckets.iter().zip(current) {
            tats.insert(b.key.clone(), tat.max(slot) + b.emission_us * b.cost);
        }
        // Forget buckets that are full again, so the map does not grow with every org.
        if tats.len() > 10_000 {
            tats.retain(|_, tat| *tat > now);
        }
        decision(true, delay.ceil() as i64)
    }
}

fn decision(granted: bool, us: i64) -> LimitDecision {
    let d = Duration::from_micros(us.max(0) as u64);
    match (granted, us <= 0) {
        (true, true) => LimitDecision::Allowed,
        (true, false) => LimitDecision::Reserved(d),
        (false, _) => LimitDecision::Wait(d.max(Duration::from_micros(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_per_window_then_a_reserved_slot() {
        let l = LlmLimiter::local(LlmLimits::per_minute(5, 1_000_000));
        let org = Uuid::new_v4();
        for _ in 0..5 {
            let d = l.acquire(org, Provider::OpenAi, 10, Duration::ZERO).await;
            assert_eq!(d, LimitDecision::Allowed);
        }
        match l.acquire(org, Provider::OpenAi, 10, Duration::ZERO).await {
            LimitDecision::Wait(d) => assert!(d > Duration::from_secs(11), "{d:?}"),
            other => panic!("{other:?}"),
        }
        // Another provider, another org: their own buckets.
        assert_eq!(
            l.acquire(org, Provider::Anthropic, 10, Duration::ZERO)
                .await,
            LimitDecision::Allowed
        );
        assert_eq!(
            l.acquire(Uuid::new_v4(), Provider::OpenAi, 10, Duration::ZERO)
                .await,
            LimitDecision::Allowed
        );
        match l
            .acquire(org, Provider::OpenAi, 10, Duration::from_secs(13))
            .await
        {
            LimitDecision::Reserved(d) => assert!(d > Duration::from_secs(11), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn tokens_are_weighed() {
        let l = LlmLimiter::local(LlmLimits::per_minute(100, 1000));
        let org = Uuid::new_v4();
        assert_eq!(
            l.acquire(org, Provider::Kimi, 900, Duration::ZERO).await,
            LimitDecision::Allowed
        );
        assert!(matches!(
            l.acquire(org, Provider::Kimi, 200, Duration::ZERO).await,
            LimitDecision::Wait(_)
        ));
        // The refused call took nothing: a small one still fits.
        assert_eq!(
            l.acquire(org, Provider::Kimi, 100, Duration::ZERO).await,
            LimitDecision::Allowed
        );
    }
}
