//! `/console/failed-messages`: a send Meta refuses shows up with its code and title; Retry
//! on its row really sends again (the simulator gets a second send); two more failures are
//! ticked and discarded for good; a super admin picks the organization first.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use wharf_shared::outbound::{HOLD_RECHECK, SEND_RETRY_BASE, UNKNOWN_OUTCOME_WAIT};
use wharf_sim::{FaultSpec, ReceivedFilter};
use wharf_tests::{
    platform::{meta_error, wait_for, Number, Platform},
    OrgAdmin, PASSWORD,
};

use crate::browser::Browser;

/// A conversation with `customer`, who wrote five minutes ago (the service window is open).
async fn conversation(p: &Platform, number: &Number, customer: &str) -> Uuid {
    p.customer_sends(
        number,
        json!({"from": customer, "profile_name": "Cust", "type": "text", "body": "hi",
               "timestamp": Utc::now().timestamp() - 300}),
    );
    let sql = format!(
        "SELECT count(*) FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = '{customer}'"
    );
    wait_for("conversation created", || async {
        p.count(&sql).await == 1
    })
    .await;
    sqlx::query_scalar(
        "SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1",
    )
    .bind(customer)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap()
}

async fn status(p: &Platform, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

/// A text to `customer` that Meta refuses once with 131026 (undeliverable): a failed message.
async fn failed_send(p: &Platform, admin: &OrgAdmin, number: &Number, customer: &str) -> Uuid {
    let conv = conversation(p, number, customer).await;
    p.sim.state().add_fault(FaultSpec {
        number_id: Some(number.phone_number_id.clone()),
        recipient: Some(customer.into()),
        endpoint: Some(wharf_sim::Endpoint::Messages),
        action: meta_error(131026),
        count: Some(1),
    });
    let r = p
        .app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &admin.token,
            json!({"type": "text", "text": "Your order shipped"}),
        )
        .await
        .expect(202);
    let id: Uuid = r.data()["id"].as_str().unwrap().parse().unwrap();
    wait_for("message failed", || async {
        status(p, id).await == "failed"
    })
    .await;
    id
}

async fn discarded(p: &Platform, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT discarded_at IS NOT NULL FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

fn sends_to(p: &Platform, to: &str) -> Vec<wharf_sim::Received> {
    p.sim.state().received(&ReceivedFilter {
        to: Some(to.into()),
        ..Default::default()
    })
}

#[tokio::test]
async fn retry_resends_from_the_page_and_ticked_rows_are_discarded_for_good() {
    SEND_RETRY_BASE.set(Duration::from_millis(50));
    UNKNOWN_OUTCOME_WAIT.set(Duration::from_millis(1500));
    HOLD_RECHECK.set(Duration::from_secs(30));
    let p = Platform::start_with(&[("META_TIMEOUT_MS", "2000")]).await;
    let admin = p.app.register_org("Failing Co").await;
    let number = p.connect_number(admin.org_id).await;
    let first = failed_send(&p, &admin, &number, "15553330001").await;
    // Meta answers normally again.
    p.sim.state().clear_faults(None);

    let b = Browser::start(&p.app.base_url).await;
    b.sign_in(&admin.email, PASSWORD).await;
    b.goto("/console/failed-messages").await;
    assert_eq!(b.text("h1").await, "Failed messages");
    let row = format!("tr[data-message=\"{first}\"]");
    let text = b.text(&row).await;
    assert!(text.contains("+15553330001"), "{text}");
    assert!(text.contains("131026"), "{text}");
    assert!(text.contains("permanent"), "{text}");
    assert!(b.text("#failed-by-code").await.contains("131026"));
    assert!(b.exists("svg.chart rect").await, "a bar for today");
    b.screenshot("failed-messages").await;
    assert!(
        !b.overflows_at(390).await,
        "the failed-messages page scrolls sideways at 390 px"
    );
    b.screenshot("failed-messages-390").await;
    b.client.set_window_size(1280, 900).await.unwrap();

    // Retry on the row: a real second send reaches Meta and is accepted.
    b.click(&format!("{row} button[name=retry_one]")).await;
    assert!(b.text("#notice").await.contains("Retried 1 message"));
    wait_for("the resend reached the simulator", || async {
        sends_to(&p, "15553330001").len() == 2
    })
    .await;
    let sends = sends_to(&p, "15553330001");
    assert_eq!(sends[0].error_code, Some(131026));
    assert_eq!(sends[1].error_code, None, "the resend was accepted");
    wait_for("retried message sent", || async {
        ["sent", "delivered", "read"].contains(&status(&p, first).await.as_str())
    })
    .await;
    b.goto("/console/failed-messages").await;
    assert!(!b.exists(&row).await, "a retried message leaves the list");

    // Two more failures, ticked and discarded through the confirmation page.
    let second = failed_send(&p, &admin, &number, "15553330002").await;
    let third = failed_send(&p, &admin, &number, "15553330003").await;
    p.sim.state().clear_faults(None);
    b.goto("/console/failed-messages?code=131026").await;
    b.click(&format!("#sel-{second}")).await;
    b.click(&format!("#sel-{third}")).await;
    b.click("#discard-selected").await;
    b.wait_text("h1", Duration::from_secs(10), |t| {
        t == "Discard 2 messages?"
    })
    .await;
    assert!(
        !discarded(&p, second).await,
        "nothing happens before confirming"
    );
    b.click("#confirm-discard").await;
    assert!(b.text("#notice").await.contains("Discarded 2 messages"));
    assert_eq!(b.path().await, "/console/failed-messages?code=131026");
    assert!(discarded(&p, second).await && discarded(&p, third).await);
    let list = b.text("#failed").await;
    assert!(
        !list.contains("15553330002") && !list.contains("15553330003"),
        "{list}"
    );
    assert!(list.contains("No failed message"), "{list}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends_to(&p, "15553330002").len(), 1, "never sent again");

    // Retry a whole filter, behind the "I understand" box: Meta gets the resend.
    let fourth = failed_send(&p, &admin, &number, "15553330004").await;
    p.sim.state().clear_faults(None);
    b.goto("/console/failed-messages?code=131026").await;
    assert!(b
        .text("label[for=filter-confirm]")
        .await
        .contains("affects 1 message"));
    b.click("#filter-confirm").await;
    b.click("#retry-filter").await;
    assert!(b.text("#notice").await.contains("Retried 1 message"));
    wait_for("the filter's resend reached the simulator", || async {
        sends_to(&p, "15553330004").len() == 2
    })
    .await;
    wait_for("filter-retried message sent", || async {
        status(&p, fourth).await != "failed"
    })
    .await;

    // Bad filters are a 400 page; another organization's id a 404.
    b.goto("/console/failed-messages?code=abc").await;
    assert!(b.text("h1").await.starts_with("400"));
    b.goto("/console/failed-messages?from=2026-02-30").await;
    assert!(b.text("h1").await.starts_with("400"));
    b.goto(&format!("/console/failed-messages?org={}", Uuid::new_v4()))
        .await;
    assert!(b.text("h1").await.starts_with("404"));

    // A super admin chooses the organization first, then sees its list.
    b.goto("/console/failed-messages").await;
    b.click("header form button").await;
    b.find("#sign-in").await;
    let root = format!("root-{}@example.com", Uuid::new_v4().simple());
    wharf_api::bootstrap::create_super_admin(&p.app.db.pool, &root, PASSWORD)
        .await
        .unwrap();
    b.sign_in(&root, PASSWORD).await;
    b.goto("/console/failed-messages").await;
    b.find("#org")
        .await
        .select_by_value(&admin.org_id.to_string())
        .await
        .unwrap();
    b.click("main form button[type=submit]").await;
    b.find("#failed-stats").await;
    assert_eq!(
        b.path().await,
        format!("/console/failed-messages?org={}", admin.org_id)
    );
    assert_eq!(
        b.text("#stat-total").await,
        "0",
        "retried and discarded: none left"
    );
    b.close().await;
}
