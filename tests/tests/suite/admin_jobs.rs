//! Job operations over HTTP: `/admin/jobs*`, `/admin/queues*` and `/metrics`. Super admins see
//! every tenant; an org admin only their own; lanes pause cluster-wide.

use std::time::Duration;

use serde_json::json;
use wharf_shared::jobs::{
    builtin::{DiagFail, DiagNoop},
    enqueue, NewJob,
};
use wharf_tests::{platform::wait_for, TestApp};

#[tokio::test]
async fn a_dead_job_is_listed_with_its_errors_and_retry_from_the_api_revives_it() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Jobs Co").await;
    let id = enqueue(
        &app.db.pool,
        NewJob::new(DiagFail {
            times: Some(1),
            message: Some("boom".into()),
        })
        .org(admin.org_id)
        .max_attempts(1),
    )
    .await
    .unwrap()
    .unwrap();
    let stop = app.start_builtin_worker();
    let pool = app.db.pool.clone();
    wait_for("job dead", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == "dead"
        }
    })
    .await;
    let list = app
        .get("/api/v1/admin/jobs?state=dead", &admin.token)
        .await
        .expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    assert_eq!(list.body["data"][0]["kind"], "diag.fail");
    let detail = app
        .get(&format!("/api/v1/admin/jobs/{id}"), &admin.token)
        .await
        .expect(200);
    assert!(detail.data()["errors"][0]["error"]
        .as_str()
        .unwrap()
        .contains("boom"));
    assert_eq!(detail.data()["payload"]["times"], 1);
    app.post(
        &format!("/api/v1/admin/jobs/{id}/retry"),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    let pool = app.db.pool.clone();
    wait_for("retried job completes", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == "completed"
        }
    })
    .await;
    let detail = app
        .get(&format!("/api/v1/admin/jobs/{id}"), &admin.token)
        .await
        .expect(200);
    assert_eq!(
        detail.data()["errors"].as_array().unwrap().len(),
        1,
        "history kept"
    );
    // A completed job cannot be retried or cancelled.
    app.post(
        &format!("/api/v1/admin/jobs/{id}/retry"),
        &admin.token,
        json!({}),
    )
    .await
    .expect(409);
    app.post(
        &format!("/api/v1/admin/jobs/{id}/cancel"),
        &admin.token,
        json!({}),
    )
    .await
    .expect(409);
    stop.cancel();
}

#[tokio::test]
async fn org_admins_see_only_their_jobs_and_super_admins_see_all() {
    let app = TestApp::spawn().await;
    let a = app.register_org("Jobs A").await;
    let b = app.register_org("Jobs B").await;
    let mut a_ids = vec![];
    for _ in 0..3 {
        a_ids.push(
            enqueue(&app.db.pool, NewJob::new(DiagNoop::default()).org(a.org_id))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let b_id = enqueue(&app.db.pool, NewJob::new(DiagNoop::default()).org(b.org_id))
        .await
        .unwrap()
        .unwrap();
    let r = app.get("/api/v1/admin/jobs", &a.token).await.expect(200);
    assert_eq!(r.body["pagination"]["total"], 3);
    app.get(&format!("/api/v1/admin/jobs/{b_id}"), &a.token)
        .await
        .expect(404);
    app.post(
        &format!("/api/v1/admin/jobs/{b_id}/cancel"),
        &a.token,
        json!({}),
    )
    .await
    .expect(404);
    app.get("/api/v1/admin/jobs/not-a-number", &a.token)
        .await
        .expect(404);
    let root = app.super_admin().await;
    let r = app
        .get("/api/v1/admin/jobs?lane=bulk&kind=diag.noop", &root)
        .await
        .expect(200);
    assert_eq!(r.body["pagination"]["total"], 4);
    let r = app
        .get(&format!("/api/v1/admin/jobs?orgId={}", b.org_id), &root)
        .await
        .expect(200);
    assert_eq!(r.body["pagination"]["total"], 1);
    app.get("/api/v1/admin/jobs?state=sleeping", &root)
        .await
        .expect(422);
    app.get("/api/v1/admin/jobs?limit=100000", &root)
        .await
        .expect(422);
    // Bulk cancel by filter touches only the caller's org.
    let r = app
        .post(
            "/api/v1/admin/jobs/bulk",
            &a.token,
            json!({"action": "cancel", "filter": {"state": "available"}}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 3);
    assert_eq!(app.job_state(b_id).await, "available");
    assert_eq!(app.job_state(a_ids[0]).await, "cancelled");
    let r = app
        .post(
            "/api/v1/admin/jobs/bulk",
            &a.token,
            json!({"action": "retry", "ids": [a_ids[0], b_id]}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 1);
    app.post(
        "/api/v1/admin/jobs/bulk",
        &a.token,
        json!({"action": "explode", "ids": [1]}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/admin/jobs/bulk",
        &a.token,
        json!({"action": "retry"}),
    )
    .await
    .expect(422);
    let (_, agent) = app.create_user(&a, "AGENT").await;
    app.get("/api/v1/admin/jobs", &agent).await.expect(403);
    app.get("/api/v1/admin/queues", &agent).await.expect(403);
}

#[tokio::test]
async fn queues_report_counts_and_pause_holds_every_worker_until_resume() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Queue Co").await;
    let root = app.super_admin().await;
    app.post("/api/v1/admin/queues/bulk/pause", &admin.token, json!({}))
        .await
        .expect(403);
    app.post("/api/v1/admin/queues/nolane/pause", &root, json!({}))
        .await
        .expect(404);
    app.post("/api/v1/admin/queues/bulk/pause", &root, json!({}))
        .await
        .expect(200);
    let stop = app.start_builtin_worker();
    let id = enqueue(
        &app.db.pool,
        NewJob::new(DiagNoop::default()).org(admin.org_id),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.job_state(id).await,
        "available",
        "paused lane: not taken"
    );
    let q = app
        .get("/api/v1/admin/queues", &admin.token)
        .await
        .expect(200);
    let bulk = q
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lane"] == "bulk")
        .unwrap()
        .clone();
    assert_eq!(bulk["paused"], true);
    assert_eq!(bulk["counts"]["available"], 1);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wharf_jobs{lane=\"bulk\",state=\"available\"} 1"),
        "{metrics}"
    );
    app.post("/api/v1/admin/queues/bulk/resume", &root, json!({}))
        .await
        .expect(200);
    let pool = app.db.pool.clone();
    wait_for("job runs after resume", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == "completed"
        }
    })
    .await;
    stop.cancel();
}
