//! The overview refreshes itself: a change in the queue shows up without a reload.

use std::time::Duration;

use serde_json::json;
use wharf_tests::{TestApp, PASSWORD};

use crate::browser::Browser;

#[tokio::test]
async fn the_overview_shows_a_paused_lane_without_a_reload() {
    let app = TestApp::spawn().await;
    let email = format!("root-{}@example.com", uuid::Uuid::new_v4().simple());
    wharf_api::bootstrap::create_super_admin(&app.db.pool, &email, PASSWORD)
        .await
        .unwrap();
    let token = app.login(&email, PASSWORD).await;
    let b = Browser::start(&app.base_url).await;
    b.sign_in(&email, PASSWORD).await;
    b.goto("/console").await;
    assert_eq!(b.text("#paused-lanes").await, "none");
    assert!(b.text("#signed-in-as").await.contains("All organizations"));

    app.post("/api/v1/admin/queues/media/pause", &token, json!({}))
        .await
        .expect(200);
    // No navigation from here on: the live region fetches the change itself.
    let paused = b
        .wait_text("#paused-lanes", Duration::from_secs(15), |t| {
            t.contains("media")
        })
        .await;
    assert_eq!(paused, "media");
    assert!(b
        .text("#lanes tr[data-lane=media]")
        .await
        .contains("paused"));
    b.close().await;
}
