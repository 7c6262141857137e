//! The shared send limiter against the real Redis: several "workers" (limiter instances) share
//! one schedule, decisions are all-or-nothing across buckets, 130429 slows a number down for
//! everyone, and without Redis governor keeps the same limits in-process.

use std::time::{Duration, Instant};

use wharf_shared::{
    ratelimit::{Bucket, Decision, SendLimiter},
    redis_conn::RedisHandle,
    Config,
};

async fn redis_limiter(prefix: &str, replicas: u32) -> SendLimiter {
    let config = Config::from_lookup(|_| None).unwrap();
    let redis = RedisHandle::connect(&config).await;
    assert!(redis.ping().await, "tests need Redis on 127.0.0.1:6379");
    SendLimiter::new(redis, prefix, replicas)
}

/// Runs `limiters` round-robin for `dur`, sleeping as told; returns how many were allowed.
async fn drive(limiters: &[SendLimiter], bucket: &Bucket, dur: Duration) -> u32 {
    let start = Instant::now();
    let mut allowed = 0;
    let mut i = 0;
    while start.elapsed() < dur {
        match limiters[i % limiters.len()]
            .acquire(std::slice::from_ref(bucket), Duration::ZERO)
            .await
        {
            Decision::Allowed | Decision::Reserved(_) => allowed += 1,
            Decision::Wait(w) => tokio::time::sleep(w.min(Duration::from_millis(50))).await,
        }
        i += 1;
    }
    allowed
}

#[tokio::test]
async fn two_limiters_share_one_rate_through_redis() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let a = redis_limiter(&prefix, 2).await;
    let b = redis_limiter(&prefix, 2).await;
    let bucket = Bucket::number("5001", 50.0);
    let allowed = drive(&[a, b], &bucket, Duration::from_secs(2)).await;
    // 2 s at 50/s plus a burst of 5: both instances together, not each.
    assert!((95..=106).contains(&allowed), "allowed {allowed}");
}

#[tokio::test]
async fn pair_bucket_allows_44_then_one_per_six_seconds_and_takes_nothing_on_refusal() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let l = redis_limiter(&prefix, 1).await;
    let number = Bucket::number("5002", 1000.0);
    let pair = Bucket::pair("5002", "15550001");
    let mut allowed = 0;
    for _ in 0..60 {
        if l.acquire(&[number.clone(), pair.clone()], Duration::ZERO)
            .await
            == Decision::Allowed
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 44);
    match l
        .acquire(&[number.clone(), pair.clone()], Duration::ZERO)
        .await
    {
        Decision::Wait(w) => assert!(
            w > Duration::from_secs(4) && w <= Duration::from_secs(6),
            "{w:?}"
        ),
        other => panic!("pair limit exceeded: {other:?}"),
    }
    // The refusals above took nothing from the number: its burst of 100 is intact.
    let mut number_only = 0;
    for _ in 0..100 {
        if l.acquire(std::slice::from_ref(&number), Duration::ZERO)
            .await
            == Decision::Allowed
        {
            number_only += 1;
        }
    }
    assert!(
        number_only >= 55,
        "number tokens were not burnt by pair refusals: {number_only}"
    );
}

#[tokio::test]
async fn slow_down_halves_the_rate_for_every_worker() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let a = redis_limiter(&prefix, 2).await;
    let b = redis_limiter(&prefix, 2).await;
    let bucket = Bucket::number("5003", 40.0);
    let factor = a.slow_down(&bucket).await;
    assert!((factor - 0.5).abs() < 0.01, "{factor}");
    let allowed = drive(&[a, b], &bucket, Duration::from_secs(2)).await;
    // About 20/s (recovering slowly) instead of 40/s.
    assert!((38..=52).contains(&allowed), "allowed {allowed}");
}

#[tokio::test]
async fn without_redis_governor_enforces_the_same_limits() {
    let l = SendLimiter::new(RedisHandle::disabled(), "x", 1);
    let bucket = Bucket::number("5004", 20.0);
    let allowed = drive(std::slice::from_ref(&l), &bucket, Duration::from_secs(2)).await;
    assert!((38..=44).contains(&allowed), "allowed {allowed}");
    let pair = Bucket::pair("5004", "1555");
    let mut n = 0;
    for _ in 0..50 {
        if l.acquire(std::slice::from_ref(&pair), Duration::ZERO).await == Decision::Allowed {
            n += 1;
        }
    }
    assert_eq!(n, 44);
}

#[tokio::test]
async fn reservations_hand_out_distinct_slots_at_the_rate() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let l = redis_limiter(&prefix, 1).await;
    let bucket = Bucket::number("5005", 100.0);
    let mut delays = vec![];
    for _ in 0..60 {
        match l
            .acquire(std::slice::from_ref(&bucket), Duration::from_secs(1))
            .await
        {
            Decision::Allowed => delays.push(Duration::ZERO),
            Decision::Reserved(d) => delays.push(d),
            Decision::Wait(w) => panic!("within the reserve window: {w:?}"),
        }
    }
    // A burst of 10 goes at once; the next 50 get slots 10 ms apart, about half a second out.
    assert_eq!(delays.iter().filter(|d| d.is_zero()).count(), 10);
    let last = *delays.last().unwrap();
    assert!(
        last > Duration::from_millis(450) && last < Duration::from_millis(560),
        "{last:?}"
    );
    // Beyond the window nothing is taken.
    let mut waits = 0;
    for _ in 0..100 {
        if let Decision::Wait(_) = l
            .acquire(std::slice::from_ref(&bucket), Duration::from_millis(600))
            .await
        {
            waits += 1;
        }
    }
    assert!(waits >= 85, "{waits}");
}

/// Several decisions in one round trip are the same as one by one: in order, each
/// all-or-nothing; and a Redis that has forgotten the script (a restart, `SCRIPT FLUSH`) is
/// given it again instead of the limiter falling back to its local share.
#[tokio::test]
async fn many_decisions_in_one_round_trip_keep_the_schedule_and_survive_a_script_flush() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let l = redis_limiter(&prefix, 4).await;
    let number = Bucket::number("5009", 100.0);
    let pairs: Vec<[Bucket; 2]> = (0..30)
        .map(|i| {
            [
                number.clone(),
                Bucket::pair("5009", &format!("1555000{i:02}")),
            ]
        })
        .collect();
    let requests: Vec<&[Bucket]> = pairs.iter().map(|p| &p[..]).collect();
    // 100/s with a burst of 10 and 100 ms of reservation: the first ~20 go (now or in a
    // reserved slot, in order), the rest must wait and took nothing.
    let decisions = l.acquire_many(&requests, Duration::from_millis(100)).await;
    assert_eq!(decisions.len(), 30);
    let granted = decisions
        .iter()
        .take_while(|d| !matches!(d, Decision::Wait(_)))
        .count();
    assert!((19..=21).contains(&granted), "{decisions:?}");
    assert!(decisions[granted..]
        .iter()
        .all(|d| matches!(d, Decision::Wait(_))));
    let mut last = Duration::ZERO;
    for d in &decisions[..granted] {
        let at = match d {
            Decision::Allowed => Duration::ZERO,
            Decision::Reserved(w) => *w,
            Decision::Wait(_) => unreachable!(),
        };
        assert!(at >= last, "slots in order: {decisions:?}");
        last = at;
    }

    let config = Config::from_lookup(|_| None).unwrap();
    let client = redis::Client::open(config.redis_url.as_ref().unwrap().expose().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = l.acquire_many(&requests[..2], Duration::ZERO).await;
    // Allowed, not the local fallback's "wait while Redis is away".
    assert!(after.iter().all(|d| *d == Decision::Allowed), "{after:?}");
}
