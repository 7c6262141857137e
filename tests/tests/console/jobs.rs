//! `/console/jobs`: a super admin pauses and resumes a lane through its confirmation page,
//! retries a dead job from its page and cancels a filter in bulk; an org admin sees only their
//! organization's jobs and may not pause lanes.

use std::time::Duration;

use reqwest::StatusCode;
use uuid::Uuid;
use wharf_shared::jobs::{
    builtin::{DiagFail, DiagNoop},
    enqueue, NewJob,
};
use wharf_tests::{platform::wait_for, TestApp, PASSWORD};

use crate::browser::Browser;

async fn wait_state(app: &TestApp, id: i64, state: &str) {
    wait_for(&format!("job {id} {state}"), || async {
        app.job_state(id).await == state
    })
    .await;
}

async fn lane_paused(app: &TestApp, lane: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT paused FROM job_lanes WHERE lane = $1")
        .bind(lane)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
        .unwrap_or(false)
}

#[tokio::test]
async fn super_admin_pauses_a_lane_retries_a_dead_job_and_org_admins_stay_in_their_org() {
    let app = TestApp::spawn().await;
    let root = format!("root-{}@example.com", Uuid::new_v4().simple());
    wharf_api::bootstrap::create_super_admin(&app.db.pool, &root, PASSWORD)
        .await
        .unwrap();
    let owner = app.register_org("Jobs Co").await;
    let outsider = app.register_org("Elsewhere Co").await;

    // A job of Jobs Co that dies on its only attempt (bulk lane), with its error kept.
    let dead = enqueue(
        &app.db.pool,
        NewJob::new(DiagFail {
            times: Some(1),
            message: Some("boom: the diag job failed".into()),
        })
        .org(owner.org_id)
        .max_attempts(1),
    )
    .await
    .unwrap()
    .unwrap();
    let stop = app.start_builtin_worker();
    wait_state(&app, dead, "dead").await;

    let b = Browser::start(&app.base_url).await;
    b.sign_in(&root, PASSWORD).await;
    b.goto("/console/jobs?state=dead").await;
    assert_eq!(b.text("h1").await, "Jobs");
    let jobs = b.text("#jobs").await;
    assert!(
        jobs.contains(&format!("#{dead}")) && jobs.contains("diag.fail"),
        "{jobs}"
    );
    assert!(
        jobs.contains("Jobs Co"),
        "the super admin sees the org: {jobs}"
    );
    assert!(b.text("#lane-bulk").await.contains("running"));
    b.screenshot("jobs").await;
    assert!(
        !b.overflows_at(390).await,
        "the jobs page scrolls sideways at 390 px"
    );
    b.client.set_window_size(1280, 900).await.unwrap();
    // Unknown filter values are a 400 page, not a 500.
    b.goto("/console/jobs?state=exploded").await;
    assert!(b.text("h1").await.starts_with("400"));

    // Pause the bulk lane through its confirmation page.
    b.goto("/console/jobs").await;
    b.click("#lane-bulk a.button").await;
    b.wait_text("h1", Duration::from_secs(10), |t| t == "Pause lane bulk?")
        .await;
    assert_eq!(b.path().await, "/console/jobs/lanes/bulk/pause");
    b.screenshot("lane-pause-confirm").await;
    assert!(
        !lane_paused(&app, "bulk").await,
        "nothing happens before confirming"
    );
    b.click("#confirm-lane").await;
    assert!(b.text("#notice").await.contains("Lane bulk paused"));
    assert!(b.text("#paused-summary").await.contains("bulk"));
    assert!(lane_paused(&app, "bulk").await);
    assert_eq!(b.text("#lane-bulk .badge").await, "paused");

    // Retry the dead job from its page: it is queued again but waits in the paused lane.
    b.goto(&format!("/console/jobs/{dead}")).await;
    assert_eq!(b.text("#job-state").await, "dead");
    assert!(b
        .text("#job-errors")
        .await
        .contains("boom: the diag job failed"));
    assert!(b.text("#job-payload").await.contains("\"times\": 1"));
    b.screenshot("job-detail").await;
    b.click("#retry-job").await;
    assert!(b.text("#notice").await.contains("Job retried"));
    assert_eq!(b.text("#job-state").await, "available");
    assert_eq!(app.job_state(dead).await, "available");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.job_state(dead).await,
        "available",
        "a paused lane takes no job"
    );

    // Resume: the job runs (its second attempt succeeds).
    b.goto("/console/jobs").await;
    b.click("#lane-bulk a.button").await;
    b.wait_text("h1", Duration::from_secs(10), |t| t == "Resume lane bulk?")
        .await;
    b.click("#confirm-lane").await;
    assert!(b.text("#notice").await.contains("Lane bulk resumed"));
    assert!(!lane_paused(&app, "bulk").await);
    assert_eq!(b.text("#lane-bulk .badge").await, "running");
    wait_state(&app, dead, "completed").await;
    stop.cancel();

    // Bulk cancel of a filter, behind the "I understand" box.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut scheduled = vec![];
    for tag in ["a", "b"] {
        let job = NewJob::new(DiagNoop {
            tag: Some(tag.into()),
        })
        .org(owner.org_id)
        .run_at(later);
        scheduled.push(enqueue(&app.db.pool, job).await.unwrap().unwrap());
    }
    b.goto(&format!(
        "/console/jobs?kind=diag.noop&state=scheduled&org={}",
        owner.org_id
    ))
    .await;
    assert!(b
        .text("label[for=bulk-confirm]")
        .await
        .contains("affects 2 jobs"));
    b.click("#bulk-confirm").await;
    b.click("#bulk-cancel").await;
    assert!(b.text("#notice").await.contains("Cancelled 2 jobs"));
    for id in &scheduled {
        assert_eq!(app.job_state(*id).await, "cancelled");
    }

    // Another org's admin: the job does not exist for them, and lanes are not theirs to pause.
    b.click("header form button").await;
    b.find("#sign-in").await;
    b.sign_in(&outsider.email, PASSWORD).await;
    b.goto("/console/jobs").await;
    assert!(!b.text("#jobs").await.contains(&format!("#{dead}")));
    assert!(
        !b.exists("#lane-bulk a.button").await,
        "no pause buttons for org admins"
    );
    b.goto(&format!("/console/jobs/{dead}")).await;
    assert_eq!(b.text("h1").await, "404 Not Found");
    assert!(b.text("#error-message").await.contains("Job not found"));
    b.goto("/console/jobs/lanes/bulk/pause").await;
    assert_eq!(b.text("h1").await, "403 Forbidden");
    b.goto("/console/jobs").await;
    let (cookie, csrf) = (b.session_cookie().await, b.csrf().await);
    b.close().await;
    let res = reqwest::Client::new()
        .post(format!("{}/console/jobs/lanes/bulk/pause", app.base_url))
        .header("cookie", cookie)
        .form(&[("_csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!lane_paused(&app, "bulk").await);
}
