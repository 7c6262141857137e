//! `/console/accounts`: a connected number's health, quality, tier, send rate and token state
//! as Meta (the simulator) reports them; alerts raised by Meta's webhooks, acknowledged one by
//! one and all at once from the page; the access token never on the page.

use std::time::Duration;

use reqwest::StatusCode;
use uuid::Uuid;
use wharf_tests::{
    platform::{wait_for, Platform},
    PASSWORD,
};

use crate::browser::Browser;

async fn alert_id(p: &Platform, kind: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM account_alerts WHERE kind = $1")
        .bind(kind)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_sees_number_health_and_acknowledges_alerts() {
    let p = Platform::start().await;
    let admin = p.app.register_org("Accounts Co").await;
    let number = p.connect_number(admin.org_id).await;
    // Meta lowers the number's limit and its quality, then flags it: two alerts.
    let sim = p.sim.state();
    sim.quality_update(
        &number.phone_number_id,
        "DOWNGRADE",
        Some("TIER_250"),
        Some("YELLOW"),
    )
    .unwrap();
    sim.quality_update(&number.phone_number_id, "FLAGGED", None, None)
        .unwrap();
    wait_for("both alerts raised", || async {
        p.count("SELECT count(*) FROM account_alerts WHERE acknowledged_at IS NULL")
            .await
            == 2
    })
    .await;
    let downgrade = alert_id(&p, "messaging_limit_downgraded").await;
    let flagged = alert_id(&p, "quality_flagged").await;

    let b = Browser::start(&p.app.base_url).await;
    b.sign_in(&admin.email, PASSWORD).await;
    b.goto("/console/accounts").await;
    assert_eq!(b.text("h1").await, "WhatsApp accounts");
    // Quality comes from Meta's phone-number record: ask for a check now.
    b.click("#check-now").await;
    let notice = b.text("#notice").await;
    assert!(
        notice.contains("Checked 1 number with Meta: 1 fine."),
        "{notice}"
    );
    let row = b
        .text(&format!("tr[data-account='{}']", number.account_id))
        .await;
    for expected in [
        number.display_phone.as_str(),
        "CONNECTED",
        "YELLOW",
        "TIER_250",
        "80 msg/s",
        "Valid",
    ] {
        assert!(row.contains(expected), "{expected:?} missing from {row:?}");
    }
    let alerts = b.text("#alerts").await;
    assert!(alerts.contains("Messaging limit downgraded"), "{alerts}");
    assert!(alerts.contains("Phone number quality flagged"), "{alerts}");
    let source = b.client.source().await.unwrap();
    assert!(
        !source.contains(&number.token),
        "the access token reached the page"
    );
    b.screenshot("accounts").await;
    assert!(
        !b.overflows_at(390).await,
        "the accounts page scrolls sideways at 390 px"
    );
    b.screenshot("accounts-390").await;
    b.client.set_window_size(1280, 900).await.unwrap();

    // Acknowledge one: it leaves the list and the row records who and when.
    b.click(&format!("tr[data-alert='{downgrade}'] button"))
        .await;
    assert!(b
        .text("#notice")
        .await
        .contains("Messaging limit downgraded"));
    assert!(!b.exists(&format!("tr[data-alert='{downgrade}']")).await);
    assert!(b.exists(&format!("tr[data-alert='{flagged}']")).await);
    let (at, by): (Option<chrono::DateTime<chrono::Utc>>, Option<Uuid>) =
        sqlx::query_as("SELECT acknowledged_at, acknowledged_by FROM account_alerts WHERE id = $1")
            .bind(downgrade)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert!(at.is_some(), "acknowledged_at set");
    assert_eq!(by, Some(admin.user_id));

    // Another organization's alert cannot be acknowledged from this session.
    let other = p.app.register_org("Other Accounts Co").await;
    let foreign: Uuid = sqlx::query_scalar(
        "INSERT INTO account_alerts (org_id, kind, severity, title, message, details)
         VALUES ($1, 'webhook_error', 'WARNING', 'Other org alert', 'x', '{}') RETURNING id",
    )
    .bind(other.org_id)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, csrf) = (b.session_cookie().await, b.csrf().await);
    for id in [foreign.to_string(), "not-a-uuid".to_string()] {
        let res = http
            .post(format!(
                "{}/console/accounts/alerts/{id}/acknowledge",
                p.app.base_url
            ))
            .header("cookie", &cookie)
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
    }
    assert_eq!(
        p.count("SELECT count(*) FROM account_alerts WHERE title = 'Other org alert' AND acknowledged_at IS NULL")
            .await,
        1
    );

    // Acknowledge all: the list empties.
    b.click("#acknowledge-all").await;
    assert!(b.text("#notice").await.contains("Acknowledged 1 alert"));
    b.find("#no-alerts").await;
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM account_alerts WHERE org_id = '{}' AND acknowledged_at IS NULL",
            admin.org_id
        ))
        .await,
        0
    );

    // The token expires at Meta: a check from the page finds out and says the number needs a
    // new one.
    sim.expire_token(&number.token).unwrap();
    b.goto("/console/accounts").await;
    b.click("#check-now").await;
    assert!(b
        .text("#notice")
        .await
        .contains("Checked 1 number with Meta: 0 fine"));
    let row = b
        .wait_text(
            &format!("tr[data-account='{}']", number.account_id),
            Duration::from_secs(5),
            |t| t.contains("Needs a new token"),
        )
        .await;
    assert!(row.contains("NEEDS_REAUTH"), "{row}");
    assert!(b
        .text("#alerts")
        .await
        .contains("WhatsApp access token is no longer valid"));
    assert!(!b.client.source().await.unwrap().contains(&number.token));
    b.close().await;
}
