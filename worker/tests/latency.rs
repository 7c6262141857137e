//! Isolation bounds the issue states: lanes do not block each other, orgs do not starve each
//! other. Measured from the rows (`attempted_at - created_at`), with generous margins.

mod common;

use std::time::Duration;

use common::{config, count, eventually, wait_state, InProcess};
use wharf_shared::{
    jobs::{
        builtin::{DiagNoop, DiagSleep},
        enqueue, enqueue_many, Lane, NewJob,
    },
    testing::TestDb,
};

async fn start_delay_ms(pool: &sqlx::PgPool, id: i64) -> f64 {
    sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM attempted_at - created_at)::float8 * 1000 FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn inbound_job_starts_within_a_second_behind_50k_bulk_jobs() {
    let db = TestDb::new().await;
    let bulk: Vec<_> = (0..50_000)
        .map(|_| NewJob::new(DiagSleep { ms: 200 }))
        .collect();
    assert_eq!(enqueue_many(&db.pool, bulk).await.unwrap().len(), 50_000);
    let worker = InProcess::start(config(
        &db.url,
        &[("WORKER_CONCURRENCY", "bulk=8,inbound=4")],
    ));
    eventually(Duration::from_secs(10), "bulk slots to fill", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'running'",
        )
        .await
            >= 8)
            .then_some(())
    })
    .await;

    let inbound = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).in_lane(Lane::Inbound),
    )
    .await
    .unwrap()
    .unwrap();
    wait_state(&db.pool, inbound, "completed", Duration::from_secs(5)).await;
    let delay = start_delay_ms(&db.pool, inbound).await;
    println!("inbound job started {delay:.0} ms after enqueue, behind 50k bulk jobs");
    assert!(delay < 1000.0, "inbound job started after {delay} ms");
    assert!(
        count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE lane = 'bulk' AND state = 'available'"
        )
        .await
            > 40_000,
        "the bulk backlog was still there"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn org_b_starts_within_seconds_behind_20k_jobs_of_org_a() {
    let db = TestDb::new().await;
    let org_a = uuid::Uuid::new_v4();
    let org_b = uuid::Uuid::new_v4();
    let a: Vec<_> = (0..20_000)
        .map(|_| NewJob::new(DiagSleep { ms: 50 }).org(org_a))
        .collect();
    enqueue_many(&db.pool, a).await.unwrap();
    // One slot (the hardest case: every fetch claims a single job) at 50 ms per job: org A
    // alone needs over fifteen minutes to drain.
    let worker = InProcess::start(config(&db.url, &[("WORKER_CONCURRENCY", "bulk=1")]));
    eventually(Duration::from_secs(10), "org A's jobs to run", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'completed'",
        )
        .await
            >= 20)
            .then_some(())
    })
    .await;

    let b = enqueue(&db.pool, NewJob::new(DiagSleep { ms: 1 }).org(org_b))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, b, "completed", Duration::from_secs(10)).await;
    let delay = start_delay_ms(&db.pool, b).await;
    println!("org B's job started {delay:.0} ms after enqueue, behind 20k of org A");
    assert!(delay < 3000.0, "org B's job started after {delay} ms");
    worker.shutdown().await;
}
