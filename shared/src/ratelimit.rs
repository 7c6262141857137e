//! Send-rate limits shared by every worker: GCRA token buckets in Redis, decided by one atomic
//! Lua script per send, with `governor` in-process when Redis is absent or unreachable.
//!
//! A decision covers several buckets at once (the phone number's throughput and the
//! number-recipient pair), and consumes from all of them only when all allow: a send that must
//! wait for its recipient does not burn a token of the number. The answer is either "go" or
//! "the earliest time all buckets allow it", so a job can defer itself to exactly that time
//! instead of sleeping on a worker slot.
//!
//! The script also applies the number's adaptive slowdown: after a 130429 from Meta the rate
//! is multiplied by a factor (halved, down to 10 %) that recovers linearly to 100 % over
//! [`RECOVERY`]; all workers see the same factor.
//!
//! Time comes from Redis (`TIME`), so workers with skewed clocks still share one schedule.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    Quota, RateLimiter,
};

use crate::redis_conn::RedisHandle;

/// How long a throttled number takes to recover from the minimum factor to full speed.
pub const RECOVERY: Duration = Duration::from_secs(60);

/// One bucket of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Key without prefix, e.g. `num:1234` or `pair:1234:15551234567`.
    pub key: String,
    /// Tokens per second.
    pub rate: f64,
    /// Tokens that may be taken at once after idling.
    pub burst: u32,
    /// Apply the adaptive factor stored for this key (the number's throughput bucket).
    pub adaptive: bool,
}

impl Bucket {
    /// The number's throughput bucket. The burst is a tenth of a second's worth: sending at a
    /// steady pace keeps Meta's own bucket (a second's worth) full enough to absorb network
    /// jitter, so our pace never trips 130429.
    pub fn number(phone_number_id: &str, rate: f64) -> Self {
        Self {
            key: format!("num:{phone_number_id}"),
            rate,
            burst: ((rate / 10.0).ceil() as u32).max(1),
            adaptive: true,
        }
    }

    /// Meta's pair limit: one message per 6 s to the same user, bursts of up to 45. We burst
    /// 44: the token left over at Meta absorbs the jitter between our clock and Meta's (a
    /// send that reaches Meta a little earlier than the one before it would otherwise trip
    /// 131056), while the steady pace stays Meta's.
    pub fn pair(phone_number_id: &str, recipient: &str) -> Self {
        Self {
            key: format!("pair:{phone_number_id}:{recipient}"),
            rate: 1.0 / 6.0,
            burst: 44,
            adaptive: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Go now: the tokens are taken.
    Allowed,
    /// The tokens are taken for a slot this far ahead: sleep, then go. Each caller gets its own
    /// slot, so waiting senders do not race each other for the next token.
    Reserved(Duration),
    /// Not before this long from now, further than the caller will wait; nothing was taken.
    Wait(Duration),
}

/// GCRA over several keys with reservation. KEYS: bucket keys, then the factor key of each
/// bucket. ARGV: for each bucket `emission_us`, `burst`, `adaptive` (0/1); then `max_reserve_us`,
/// `recovery_us`. The request's slot is the earliest time every bucket allows it; when that is
/// within `max_reserve_us` all buckets are charged as of that slot and {1, delay_us} is
/// returned, else nothing is charged and {0, delay_us}.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
local max_reserve = tonumber(ARGV[n * 3 + 1])
local recovery = tonumber(ARGV[n * 3 + 2])
local emissions = {}
local tolerances = {}
local tats = {}
local slot = now
for i = 1, n do
  local emission = tonumber(ARGV[(i - 1) * 3 + 1])
  local burst = tonumber(ARGV[(i - 1) * 3 + 2])
  local adaptive = tonumber(ARGV[(i - 1) * 3 + 3])
  if adaptive == 1 then
    local f = redis.call('HMGET', KEYS[n + i], 'factor', 'at')
    if f[1] then
      local factor = tonumber(f[1]) + (1 - tonumber(f[1])) * math.min(1, (now - tonumber(f[2])) / recovery)
      emission = emission / math.max(factor, 0.01)
    end
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  emissions[i] = emission
  tolerances[i] = emission * burst
  tats[i] = tat
  local allow_at = tat + emission - emission * burst
  if allow_at > slot then slot = allow_at end
end
local delay = slot - now
if delay > max_reserve then return {0, math.ceil(delay)} end
for i = 1, n do
  local base = tats[i]
  if slot > base then base = slot end
  local new_tat = base + emissions[i]
  redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
return {1, math.ceil(delay)}
"#;

/// Records a throttle signal: halves the current factor (after applying recovery so far).
const SLOW_DOWN: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local recovery = tonumber(ARGV[1])
local min_factor = tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'factor', 'at')
local factor = 1
if f[1] then
  factor = tonumber(f[1]) + (1 - tonumber(f[1])) * math.min(1, (now - tonumber(f[2])) / recovery)
end
factor = math.max(min_factor, factor / 2)
redis.call('HSET', KEYS[1], 'factor', tostring(factor), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(recovery / 1000) + 1000)
return tostring(factor)
"#;

const MIN_FACTOR: f64 = 0.1;

type Direct = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

/// Process-local state used without Redis: one limiter per bucket key (rates differ per
/// number), and the adaptive factors.
#[derive(Default)]
struct Local {
    limiters: HashMap<String, (u64, Arc<Direct>)>,
    factors: HashMap<String, (f64, std::time::Instant)>,
}

#[derive(Clone)]
pub struct SendLimiter {
    redis: RedisHandle,
    prefix: String,
    /// Share of each limit this process may use when it cannot reach Redis: 1 / the number of
    /// worker processes sharing the limits (`WORKER_REPLICAS`).
    local_share: f64,
    local: Arc<Mutex<Local>>,
    script: Arc<redis::Script>,
    slow_down: Arc<redis::Script>,
    clock: DefaultClock,
    /// After a Redis failure, decisions stay local until this instant (unix ms) instead of
    /// paying a connection timeout on every send; then one call probes Redis again.
    redis_down_until_ms: Arc<std::sync::atomic::AtomicI64>,
    /// When this process last switched from Redis to local decisions (unix ms, 0: never).
    local_since_ms: Arc<std::sync::atomic::AtomicI64>,
}

/// The furthest ahead callers reserve slots ([`SendLimiter::acquire`]'s `max_reserve`). When
/// Redis fails, slots already reserved through it are still being used for this long, so the
/// process-local fallback holds off for as long before granting anything of its own: the two
/// schedules never overlap into more than Meta's rate.
pub const RESERVATION_HORIZON: Duration = Duration::from_secs(2);

/// Longest a limiter decision waits for Redis before deciding locally.
const REDIS_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// How long decisions stay process-local after Redis failed.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SendLimiter {
    pub fn new(redis: RedisHandle, prefix: &str, replicas: u32) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}:rl:"),
            local_share: 1.0 / f64::from(replicas.max(1)),
            local: Arc::default(),
            script: Arc::new(redis::Script::new(SCRIPT)),
            slow_down: Arc::new(redis::Script::new(SLOW_DOWN)),
            clock: DefaultClock::default(),
            redis_down_until_ms: Arc::default(),
            local_since_ms: Arc::default(),
        }
    }

    /// A Redis connection unless Redis failed recently. After a failure, one caller at a
    /// time probes Redis once the back-off has passed; everyone else stays local, so an
    /// outage costs one slow call per back-off period rather than one per send.
    async fn shared_state(&self) -> Option<redis::aio::ConnectionManager> {
        use std::sync::atomic::Ordering;
        let down_until = self.redis_down_until_ms.load(Ordering::Relaxed);
        if down_until != 0 {
            let now = now_ms();
            if now < down_until {
                return None;
            }
            let next = now + REDIS_RETRY_AFTER.as_millis() as i64;
            if self
                .redis_down_until_ms
                .compare_exchange(down_until, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return None; // another caller is probing
            }
        }
        self.redis.get().await
    }

    fn redis_ok(&self) {
        use std::sync::atomic::Ordering;
        if self.redis_down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("Redis rate limiter reachable again");
        }
    }

    fn redis_failed(&self, err: &redis::RedisError) {
        let until = now_ms() + REDIS_RETRY_AFTER.as_millis() as i64;
        let previous = self
            .redis_down_until_ms
            .swap(until, std::sync::atomic::Ordering::Relaxed);
        if previous == 0 {
            self.local_since_ms
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %err, "Redis rate limiter unavailable; this process uses its share of each limit");
        }
    }

    /// Takes one token from every bucket now, or for a slot at most `max_reserve` ahead, or
    /// says how long to wait.
    pub async fn acquire(&self, buckets: &[Bucket], max_reserve: Duration) -> Decision {
        self.acquire_many(&[buckets], max_reserve)
            .await
            .pop()
            .unwrap_or(Decision::Wait(REDIS_RETRY_AFTER))
    }

    /// Several decisions in one round trip to Redis (a pipeline of the script, each decision
    /// atomic on its own), in order: a dispatcher pacing many sends asks for a few at a time
    /// instead of one request per send.
    pub async fn acquire_many(
        &self,
        requests: &[&[Bucket]],
        max_reserve: Duration,
    ) -> Vec<Decision> {
        if let Some(mut conn) = self.shared_state().await {
            let mut pipe = redis::pipe();
            for buckets in requests {
                let cmd = pipe
                    .cmd("EVALSHA")
                    .arg(self.script.get_hash())
                    .arg(buckets.len() * 2);
                for b in buckets.iter() {
                    cmd.arg(format!("{}{}", self.prefix, b.key));
                }
                for b in buckets.iter() {
                    cmd.arg(format!("{}factor:{}", self.prefix, b.key));
                }
                for b in buckets.iter() {
                    cmd.arg(1_000_000.0 / b.rate.max(0.000_1))
                        .arg(b.burst)
                        .arg(u8::from(b.adaptive));
                }
                cmd.arg(max_reserve.as_micros() as u64)
                    .arg(RECOVERY.as_micros() as u64);
            }
            let call = tokio::time::timeout(REDIS_CALL_TIMEOUT, async {
                match pipe.query_async::<Vec<(i64, i64)>>(&mut conn).await {
                    // A restarted Redis has forgotten the script: load it and ask again. A
                    // decision that failed charged nothing, so asking again is safe.
                    Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                        self.script.prepare_invoke().load_async(&mut conn).await?;
                        pipe.query_async::<Vec<(i64, i64)>>(&mut conn).await
                    }
                    other => other,
                }
            });
            let result = call.await.unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "rate limiter call timed out",
                )))
            });
            match result {
                Ok(answers) => {
                    self.redis_ok();
                    return answers
                        .into_iter()
                        .map(|(granted, us)| {
                            let d = Duration::from_micros(us.max(0) as u64);
                            match (granted, us) {
                                (1, 0) => Decision::Allowed,
                                (1, _) => Decision::Reserved(d),
                                _ => Decision::Wait(d.max(Duration::from_micros(1))),
                            }
                        })
                        .collect();
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        requests
            .iter()
            .map(|buckets| self.acquire_local(buckets))
            .collect()
    }

    fn acquire_local(&self, buckets: &[Bucket]) -> Decision {
        let since = self
            .local_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if since != 0 {
            let held = now_ms() - since;
            let horizon = RESERVATION_HORIZON.as_millis() as i64;
            if held < horizon {
                return Decision::Wait(Duration::from_millis((horizon - held) as u64));
            }
        }
        let share = if self.redis.is_configured() {
            self.local_share
        } else {
            1.0
        };
        let mut local = self.local.lock().expect("limiter mutex not poisoned");
        let now = std::time::Instant::now();
        let limiters: Vec<Arc<Direct>> = buckets
            .iter()
            .map(|b| {
                let factor = if b.adaptive {
                    current_local_factor(&local.factors, &b.key, now)
                } else {
                    1.0
                };
                let rate = (b.rate * share * factor).max(0.000_1);
                // One limiter per (key, rate): a changed rate gets a fresh limiter.
                let rate_key = (rate * 1000.0) as u64;
                let entry = local
                    .limiters
                    .entry(b.key.clone())
                    .or_insert_with(|| (rate_key, Arc::new(direct(rate, b.burst))));
                if entry.0 != rate_key {
                    *entry = (rate_key, Arc::new(direct(rate, b.burst)));
                }
                entry.1.clone()
            })
            .collect();
        drop(local);
        // governor cannot peek, so buckets are taken in order and the first refusal stops:
        // the pair bucket (rarely refusing in campaigns, always first to refuse when one
        // recipient gets many messages) goes before the number's, so a refusal by the pair
        // costs the number nothing.
        let now = self.clock.now();
        let mut order: Vec<usize> = (0..buckets.len()).collect();
        order.sort_by_key(|&i| buckets[i].adaptive);
        for i in order {
            if let Err(not_until) = limiters[i].check() {
                return Decision::Wait(not_until.wait_time_from(now).max(Duration::from_millis(1)));
            }
        }
        Decision::Allowed
    }

    /// Records a 130429 for this bucket's key (the number): all workers slow it down.
    pub async fn slow_down(&self, bucket: &Bucket) -> f64 {
        if let Some(mut conn) = self.shared_state().await {
            let mut inv = self.slow_down.prepare_invoke();
            inv.key(format!("{}factor:{}", self.prefix, bucket.key))
                .arg(RECOVERY.as_micros() as u64)
                .arg(MIN_FACTOR);
            let result =
                tokio::time::timeout(REDIS_CALL_TIMEOUT, inv.invoke_async::<String>(&mut conn))
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::IoError,
                            "rate limiter call timed out",
                        )))
                    });
            match result {
                Ok(f) => return f.parse().unwrap_or(MIN_FACTOR),
                Err(e) => self.redis_failed(&e),
            }
        }
        let mut local = self.local.lock().expect("limiter mutex not poisoned");
        let now = std::time::Instant::now();
        let factor = (current_local_factor(&local.factors, &bucket.key, now) / 2.0).max(MIN_FACTOR);
        local.factors.insert(bucket.key.clone(), (factor, now));
        factor
    }
}

fn current_local_factor(
    factors: &HashMap<String, (f64, std::time::Instant)>,
    key: &str,
    now: std::time::Instant,
) -> f64 {
    match factors.get(key) {
        None => 1.0,
        Some((f, at)) => {
            f + (1.0 - f)
                * (now.duration_since(*at).as_secs_f64() / RECOVERY.as_secs_f64()).min(1.0)
        }
    }
}

fn direct(rate: f64, burst: u32) -> Direct {
    let period = Duration::from_secs_f64(1.0 / rate);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero"));
    RateLimiter::direct(quota)
}
