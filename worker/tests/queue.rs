//! The queue's contract, observed through rows: transactional enqueue, uniqueness, retries,
//! snooze, undecodable payloads, unknown kinds, cancel, pause, NOTIFY batching, pruning.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{attempt, config, count, eventually, state, wait_state, InProcess};
use sqlx::postgres::PgListener;
use wharf_shared::{
    jobs::{
        admin::{self, JobFilter, JobSelection},
        builtin::{DiagFail, DiagNoop, DiagSleep, DiagSnooze, PruneJobs},
        enqueue, enqueue_many, enqueue_raw, JobOptions, Lane, NewJob, RawJob, NOTIFY_CHANNEL,
    },
    testing::TestDb,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn rolled_back_enqueue_leaves_no_job_and_committed_one_runs() {
    let db = TestDb::new().await;
    let worker = InProcess::start(config(&db.url, &[]));

    let mut tx = db.pool.begin().await.unwrap();
    let rolled = enqueue(
        &mut *tx,
        NewJob::new(DiagNoop {
            tag: Some("rolled back".into()),
        }),
    )
    .await
    .unwrap();
    assert!(rolled.is_some());
    tx.rollback().await.unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    let id = enqueue(
        &mut *tx,
        NewJob::new(DiagNoop {
            tag: Some("committed".into()),
        }),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();

    wait_state(&db.pool, id, "completed", WAIT).await;
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM jobs").await,
        1,
        "the rolled-back job does not exist"
    );
    assert_eq!(attempt(&db.pool, id).await, 1);
    worker.shutdown().await;
}

#[tokio::test]
async fn unique_key_enqueued_twice_runs_once() {
    let db = TestDb::new().await;
    let first = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).unique_key("sync:42"),
    )
    .await
    .unwrap();
    let second = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).unique_key("sync:42"),
    )
    .await
    .unwrap();
    assert!(first.is_some());
    assert_eq!(second, None, "second enqueue is skipped");

    // Duplicates inside one bulk statement are skipped too.
    let ids = enqueue_many(
        &db.pool,
        vec![
            NewJob::new(DiagNoop::default()).unique_key("bulk:1"),
            NewJob::new(DiagNoop::default()).unique_key("bulk:1"),
            NewJob::new(DiagNoop::default()).unique_key("sync:42"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 1);

    let worker = InProcess::start(config(&db.url, &[]));
    let first = first.unwrap();
    wait_state(&db.pool, first, "completed", WAIT).await;
    wait_state(&db.pool, ids[0], "completed", WAIT).await;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM jobs").await, 2);

    // Once the first finished, the key is free again.
    let again = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).unique_key("sync:42"),
    )
    .await
    .unwrap();
    assert!(again.is_some());
    worker.shutdown().await;
}

#[derive(sqlx::FromRow)]
struct Row {
    state: String,
    attempt: i32,
    run_at: DateTime<Utc>,
    errors: serde_json::Value,
}

async fn row(pool: &sqlx::PgPool, id: i64) -> Row {
    sqlx::query_as("SELECT state, attempt, run_at, errors FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn failing_job_retries_at_growing_times_ends_dead_and_admin_retry_revives_it() {
    let db = TestDb::new().await;
    let worker = InProcess::start(config(&db.url, &[]));
    // Fails its first three attempts; the kind allows three.
    let id = enqueue(
        &db.pool,
        NewJob::new(DiagFail {
            times: Some(3),
            message: Some("boom".into()),
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // Observe each retry's stored time: the gap after failed attempt n grows with n.
    let mut gaps = Vec::new();
    for n in 1..=2 {
        let r = eventually(WAIT, &format!("attempt {n} to fail"), || async {
            let r = row(&db.pool, id).await;
            (r.state == "retryable" && r.attempt == n).then_some(r)
        })
        .await;
        let errors = r.errors.as_array().unwrap();
        assert_eq!(errors.len(), n as usize);
        let failed_at: DateTime<Utc> =
            serde_json::from_value(errors[n as usize - 1]["at"].clone()).unwrap();
        gaps.push((r.run_at - failed_at).num_milliseconds());
    }
    assert!(gaps[0] > 0 && gaps[1] > gaps[0], "backoff grows: {gaps:?}");

    wait_state(&db.pool, id, "dead", WAIT).await;
    let dead = admin::get_job(&db.pool, None, id).await.unwrap().unwrap();
    assert_eq!(dead.summary.attempt, 3);
    assert_eq!(
        dead.errors.len(),
        3,
        "every failed attempt is in the history"
    );
    assert_eq!(
        dead.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(dead.errors[2].error.contains("boom"));
    assert!(dead.summary.finished_at.is_some());

    assert!(admin::retry_job(&db.pool, None, id).await.unwrap());
    wait_state(&db.pool, id, "completed", WAIT).await;
    let done = admin::get_job(&db.pool, None, id).await.unwrap().unwrap();
    assert_eq!(
        done.summary.attempt, 4,
        "the revived job ran one more attempt"
    );
    assert_eq!(done.errors.len(), 3, "history is kept");
    worker.shutdown().await;
}

#[tokio::test]
async fn discard_and_undecodable_payload_kill_only_that_job() {
    let db = TestDb::new().await;
    let worker = InProcess::start(config(&db.url, &[]));
    let bad = enqueue_raw(
        &db.pool,
        RawJob {
            kind: "diag.sleep".into(),
            lane: Lane::Bulk,
            max_attempts: 25,
            payload: serde_json::json!({"ms": "not a number"}),
            options: JobOptions::default(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let unknown = enqueue_raw(
        &db.pool,
        RawJob {
            kind: "nobody.handles_this".into(),
            lane: Lane::Bulk,
            max_attempts: 25,
            payload: serde_json::json!({}),
            options: JobOptions::default(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    wait_state(&db.pool, bad, "dead", WAIT).await;
    let detail = admin::get_job(&db.pool, None, bad).await.unwrap().unwrap();
    assert_eq!(
        detail.summary.attempt, 1,
        "no retries for a payload that can never decode"
    );
    assert!(
        detail.errors[0].error.contains("decode"),
        "{:?}",
        detail.errors
    );

    wait_state(&db.pool, unknown, "retryable", WAIT).await;
    let detail = admin::get_job(&db.pool, None, unknown)
        .await
        .unwrap()
        .unwrap();
    assert!(
        detail.errors[0].error.contains("no handler"),
        "{:?}",
        detail.errors
    );

    // The worker carries on.
    let good = enqueue(&db.pool, NewJob::new(DiagNoop::default()))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, good, "completed", WAIT).await;
    worker.shutdown().await;
}

#[tokio::test]
async fn snooze_does_not_spend_an_attempt() {
    let db = TestDb::new().await;
    let worker = InProcess::start(config(&db.url, &[]));
    let until = Utc::now() + chrono::Duration::milliseconds(1500);
    // One attempt allowed: if the snooze spent it, the second run could not happen.
    let id = enqueue(&db.pool, NewJob::new(DiagSnooze { until }))
        .await
        .unwrap()
        .unwrap();
    eventually(WAIT, "the job to snooze", || async {
        let r = row(&db.pool, id).await;
        (r.state == "scheduled" && r.attempt == 0).then_some(())
    })
    .await;
    let stored = row(&db.pool, id).await.run_at;
    assert!(
        (stored - until).num_microseconds() == Some(0),
        "run_at {stored} is the snooze time {until}"
    );
    wait_state(&db.pool, id, "completed", WAIT).await;
    let r = row(&db.pool, id).await;
    assert_eq!(r.attempt, 1);
    assert_eq!(r.errors, serde_json::json!([]));
    worker.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_a_running_job_and_cancels_pending_ones() {
    let db = TestDb::new().await;
    let worker = InProcess::start(config(&db.url, &[("WORKER_CONCURRENCY", "bulk=1")]));
    let running = enqueue(&db.pool, NewJob::new(DiagSleep { ms: 60_000 }))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, running, "running", WAIT).await;
    let pending = enqueue(
        &db.pool,
        NewJob::new(DiagSleep { ms: 60_000 }).delay(Duration::from_secs(3600)),
    )
    .await
    .unwrap()
    .unwrap();

    assert!(admin::cancel_job(&db.pool, None, pending).await.unwrap());
    assert_eq!(state(&db.pool, pending).await, "cancelled");

    assert!(admin::cancel_job(&db.pool, None, running).await.unwrap());
    // NOTIFY reaches the worker at once; the heartbeat would within a second anyway.
    wait_state(&db.pool, running, "cancelled", Duration::from_secs(5)).await;
    let detail = admin::get_job(&db.pool, None, running)
        .await
        .unwrap()
        .unwrap();
    assert!(detail.summary.finished_at.is_some());

    // The slot is free again.
    let next = enqueue(&db.pool, NewJob::new(DiagNoop::default()))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, next, "completed", WAIT).await;
    worker.shutdown().await;
}

#[tokio::test]
async fn pause_stops_every_worker_within_a_second_and_resume_restarts() {
    let db = TestDb::new().await;
    let a = InProcess::start(config(&db.url, &[]));
    let b = InProcess::start(config(&db.url, &[]));
    let warm = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).in_lane(Lane::Outbound),
    )
    .await
    .unwrap()
    .unwrap();
    wait_state(&db.pool, warm, "completed", WAIT).await;

    admin::pause_lane(&db.pool, Lane::Outbound).await.unwrap();
    let stats = admin::queue_stats(&db.pool, None).await.unwrap();
    assert!(stats.iter().any(|s| s.lane == Lane::Outbound && s.paused));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held: Vec<i64> = enqueue_many(
        &db.pool,
        (0..20)
            .map(|_| NewJob::new(DiagNoop::default()).in_lane(Lane::Outbound))
            .collect(),
    )
    .await
    .unwrap();
    // Other lanes keep working while outbound is paused.
    let other = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).in_lane(Lane::Inbound),
    )
    .await
    .unwrap()
    .unwrap();
    wait_state(&db.pool, other, "completed", WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE lane = 'outbound' AND state <> 'available'"
        )
        .await,
        1,
        "no worker took a paused lane's job (only the warm-up ran)"
    );

    admin::resume_lane(&db.pool, Lane::Outbound).await.unwrap();
    for id in held {
        wait_state(&db.pool, id, "completed", Duration::from_secs(5)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn bulk_enqueue_sends_one_notification_per_statement() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let ids = enqueue_many(
        &mut *tx,
        (0..5_000)
            .map(|_| NewJob::new(DiagNoop::default()))
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 5_000);
    tx.commit().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.payload(), "bulk");
    let more = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(more.is_err(), "exactly one notification for 5000 jobs");
}

#[tokio::test]
async fn admin_functions_are_scoped_by_org() {
    let db = TestDb::new().await;
    let org_a = uuid::Uuid::new_v4();
    let org_b = uuid::Uuid::new_v4();
    let later = Utc::now() + chrono::Duration::hours(1);
    let a_ids = enqueue_many(
        &db.pool,
        (0..3)
            .map(|_| NewJob::new(DiagNoop::default()).org(org_a).run_at(later))
            .collect(),
    )
    .await
    .unwrap();
    let b_id = enqueue(
        &db.pool,
        NewJob::new(DiagNoop::default()).org(org_b).run_at(later),
    )
    .await
    .unwrap()
    .unwrap();
    let platform = enqueue(&db.pool, NewJob::new(PruneJobs::default()).run_at(later))
        .await
        .unwrap()
        .unwrap();

    let all = admin::list_jobs(&db.pool, None, &JobFilter::default(), 1, 50)
        .await
        .unwrap();
    assert_eq!(all.total, 5);
    let mine = admin::list_jobs(&db.pool, Some(org_a), &JobFilter::default(), 1, 2)
        .await
        .unwrap();
    assert_eq!((mine.total, mine.jobs.len()), (3, 2));
    assert!(mine.jobs.iter().all(|j| j.org_id == Some(org_a)));
    let filtered = admin::list_jobs(
        &db.pool,
        None,
        &JobFilter {
            lane: Some(Lane::Maintenance),
            ..Default::default()
        },
        1,
        50,
    )
    .await
    .unwrap();
    assert_eq!(
        filtered.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![platform]
    );

    assert!(
        admin::get_job(&db.pool, Some(org_a), b_id)
            .await
            .unwrap()
            .is_none(),
        "another tenant's job is invisible"
    );
    assert!(!admin::cancel_job(&db.pool, Some(org_a), b_id)
        .await
        .unwrap());
    assert_eq!(state(&db.pool, b_id).await, "scheduled");

    let n = admin::cancel_jobs(
        &db.pool,
        Some(org_a),
        &JobSelection::Filter(JobFilter::default()),
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(state(&db.pool, b_id).await, "scheduled");
    let n = admin::retry_jobs(&db.pool, Some(org_a), &JobSelection::Ids(a_ids.clone()))
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(state(&db.pool, a_ids[0]).await, "available");

    let stats = admin::queue_stats(&db.pool, None).await.unwrap();
    let bulk = stats.iter().find(|s| s.lane == Lane::Bulk).unwrap();
    assert_eq!(bulk.counts["available"], 3);
    assert_eq!(bulk.counts["scheduled"], 1);
    let json = serde_json::to_value(bulk).unwrap();
    assert!(
        json.get("oldestPendingAgeSecs").is_some(),
        "camelCase for the API: {json}"
    );

    let text = wharf_shared::jobs::metrics::render_queue_gauges(&db.pool)
        .await
        .unwrap();
    assert!(
        text.contains("wharf_jobs{lane=\"bulk\",state=\"available\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn prune_job_deletes_finished_jobs_past_retention() {
    let db = TestDb::new().await;
    let old = enqueue_many(
        &db.pool,
        (0..4).map(|_| NewJob::new(DiagNoop::default())).collect(),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET state = CASE WHEN id = $2 THEN 'dead' ELSE 'completed' END, \
         finished_at = now() - interval '2 days' WHERE id = ANY($1)",
    )
    .bind(&old)
    .bind(old[0])
    .execute(&db.pool)
    .await
    .unwrap();
    let worker = InProcess::start(config(&db.url, &[]));
    let fresh = enqueue(&db.pool, NewJob::new(DiagNoop::default()))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, fresh, "completed", WAIT).await;
    // Default retention: completed 24 h (three go), dead 7 days (kept).
    let prune = enqueue(&db.pool, NewJob::new(PruneJobs::default()))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, prune, "completed", WAIT).await;
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![old[0], fresh, prune]);
    worker.shutdown().await;
}
