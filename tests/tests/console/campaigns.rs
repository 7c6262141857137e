//! Campaigns in the console: the list, a campaign's live page (SSE), pause / resume / cancel
//! from its buttons, and the CSV download; checked against the simulator (what Meta received)
//! and the database. Campaigns here send at 20 msg/s so they are still running while the
//! browser acts (setup copied from `tests/suite/campaigns.rs`). One test acts as a super admin
//! (who picks the organization), the other as the organization's admin.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::ReceivedFilter;
use wharf_tests::{
    platform::{Number, Platform},
    OrgAdmin, PASSWORD,
};

use crate::browser::Browser;

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
    template_id: Uuid,
}

/// A platform with a number sending at `mps` and an approved template "promo" with body
/// "Hi {{1}}, your code is {{2}}", known to both the simulator and the platform.
async fn setup(mps: u32) -> Setup {
    let p = Platform::start().await;
    let admin = p.app.register_org("Campaign Console Co").await;
    let number = p.connect_number(admin.org_id).await;
    p.set_send_rate(&number, mps).await;
    let (template_id, _) = p.approved_promo(&number).await;
    Setup {
        p,
        admin,
        number,
        template_id,
    }
}

impl Setup {
    /// Creates and launches a campaign "Spring" for `n` recipients.
    async fn launch(&self, n: usize, prefix: &str) -> Uuid {
        let recipients: Vec<Value> = (0..n)
            .map(|i| json!({"phone": format!("+1 555 {prefix}{i:06}"), "1": format!("C{i}"), "2": i.to_string()}))
            .collect();
        let body =
            json!({"name": "Spring", "templateId": self.template_id, "recipients": recipients});
        let token = &self.admin.token;
        let resp = self
            .p
            .app
            .post("/api/v1/campaigns", token, body)
            .await
            .expect(201);
        assert_eq!(resp.data()["accepted"], n);
        let id = Uuid::parse_str(resp.data()["id"].as_str().unwrap()).unwrap();
        self.p
            .app
            .post(&format!("/api/v1/campaigns/{id}/launch"), token, json!({}))
            .await
            .expect(200);
        id
    }

    /// Sends Meta accepted from the campaign's number (it sends nothing else).
    fn accepted(&self) -> u64 {
        self.p
            .sim
            .state()
            .stats(&self.number.phone_number_id)
            .unwrap()
            .accepted
    }

    async fn wait_accepted(&self, at_least: u64) {
        let start = Instant::now();
        while self.accepted() < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sends never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn status(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_one(&self.p.app.db.pool)
            .await
            .unwrap()
    }

    /// Meta received every recipient exactly once.
    fn assert_each_sent_once(&self, n: usize, prefix: &str) {
        let mut per = std::collections::HashMap::<String, usize>::new();
        for r in self.p.sim.state().received(&ReceivedFilter {
            number_id: Some(self.number.phone_number_id.clone()),
            accepted: Some(true),
            ..Default::default()
        }) {
            *per.entry(r.to).or_insert(0) += 1;
        }
        assert_eq!(per.len(), n, "every recipient received");
        assert!(per.values().all(|c| *c == 1), "a recipient received twice");
        assert!(per.contains_key(&format!("1555{prefix}{:06}", n - 1)));
    }
}

#[tokio::test]
async fn pausing_a_running_campaign_from_its_page_stops_sends_and_resume_completes_it() {
    let s = setup(20).await;
    let n = 300;
    // A super admin: picks the organization first, and every link and form keeps it.
    let root = format!("root-{}@example.com", Uuid::new_v4().simple());
    wharf_api::bootstrap::create_super_admin(&s.p.app.db.pool, &root, PASSWORD)
        .await
        .unwrap();
    let b = Browser::start(&s.p.app.base_url).await;
    b.sign_in(&root, PASSWORD).await;
    // Launched once the browser is up, so the campaign is early in its run when paused.
    let id = s.launch(n, "7").await;
    s.wait_accepted(10).await;
    b.goto("/console/campaigns").await;
    b.find("#org")
        .await
        .select_by_value(&s.admin.org_id.to_string())
        .await
        .unwrap();
    b.click("main form.filters button").await;
    b.click("#campaigns a").await;
    assert_eq!(
        b.path().await,
        format!("/console/campaigns/{id}?org={}", s.admin.org_id)
    );
    assert_eq!(b.text("h1").await, "Campaign: Spring");
    assert_eq!(b.text("#status").await, "RUNNING");
    b.wait_text("#rate", Duration::from_secs(10), |t| {
        t.ends_with(" msg/s") && !t.starts_with("0 ")
    })
    .await;
    b.screenshot("campaign-detail").await;

    b.click("#pause").await;
    b.wait_text("#status", Duration::from_secs(10), |t| t == "PAUSED")
        .await;
    assert!(b.text("#notice").await.contains("Campaign paused"));
    // Sends already handed to Meta settle within a second; after that nothing leaves.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = s.accepted();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.accepted(), before, "Meta received sends while paused");
    assert!(before < n as u64, "paused before the end ({before})");
    assert_eq!(s.status(id).await, "PAUSED");
    assert!(b.text("#paused-reason").await.contains("paused by a user"));

    b.click("#resume").await;
    assert!(b.text("#notice").await.contains("Campaign resumed"));
    // The page follows the campaign to its end by itself.
    b.wait_text("#status", Duration::from_secs(60), |t| t == "COMPLETED")
        .await;
    assert_eq!(
        b.text("#progress-text").await,
        format!("{n} of {n} sent (100%)")
    );
    assert_eq!(s.status(id).await, "COMPLETED");
    s.assert_each_sent_once(n, "7");
    b.close().await;
}

#[tokio::test]
async fn the_list_live_progress_csv_export_and_cancel_with_confirmation() {
    let s = setup(20).await;
    // 30 s of sending at 20 msg/s: still running when the test cancels it.
    let n = 600;
    let b = Browser::start(&s.p.app.base_url).await;
    b.sign_in(&s.admin.email, PASSWORD).await;
    let id = s.launch(n, "8").await;
    s.wait_accepted(5).await;

    // The list shows the campaign with its state and progress.
    b.goto("/console/campaigns").await;
    let table = b.text("#campaigns").await;
    assert!(
        table.contains("Spring") && table.contains("RUNNING"),
        "{table}"
    );
    assert!(table.contains(&format!("of {n} sent")), "{table}");
    b.screenshot("campaigns").await;
    assert!(
        !b.overflows_at(390).await,
        "the list scrolls sideways at 390 px"
    );
    b.client.set_window_size(1280, 900).await.unwrap();
    b.goto("/console/campaigns?state=COMPLETED").await;
    assert!(b.text("#campaigns").await.contains("No campaign matches"));
    b.goto("/console/campaigns?state=NOPE").await;
    assert!(b.text("h1").await.starts_with("422"));

    // Live progress: the sent counter moves without a reload.
    b.goto("/console/campaigns?state=RUNNING").await;
    b.click("#campaigns a").await;
    assert_eq!(b.path().await, format!("/console/campaigns/{id}"));
    b.client
        .execute("window.__samePage = true;", vec![])
        .await
        .unwrap();
    let first: i64 = b.text("#sent-count").await.parse().unwrap();
    let later = b
        .wait_text("#sent-count", Duration::from_secs(15), |t| {
            t.parse::<i64>().is_ok_and(|v| v > first)
        })
        .await;
    let same = b
        .client
        .execute("return window.__samePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "the page was reloaded");
    println!("sent counter went from {first} to {later} live");
    assert!(
        !b.overflows_at(390).await,
        "the campaign page scrolls sideways at 390 px"
    );
    b.screenshot("campaign-detail-390").await;
    b.client.set_window_size(1280, 900).await.unwrap();

    // The download is the API's CSV: a header and one line per recipient.
    let http = reqwest::Client::new();
    let cookie = b.session_cookie().await;
    let res = http
        .get(format!(
            "{}/console/campaigns/{id}/export.csv",
            s.p.app.base_url
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("row,phone,name,status"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), n + 1);
    assert!(lines[1].starts_with("1,15558000000,"), "{}", lines[1]);
    // Bad or unknown ids are 404 pages, not errors.
    for path in [
        "/console/campaigns/not-a-uuid".to_string(),
        format!("/console/campaigns/{}", Uuid::new_v4()),
        format!("/console/campaigns/{}/export.csv", Uuid::new_v4()),
        format!("/console/campaigns?org={}", Uuid::new_v4()),
    ] {
        let res = http
            .get(format!("{}{path}", s.p.app.base_url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // A cancel without the confirmation, or without the CSRF token, changes nothing.
    let csrf = b.csrf().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cancel_url = format!("{}/console/campaigns/{id}/cancel", s.p.app.base_url);
    for (form, want) in [
        (vec![("_csrf", csrf.as_str())], StatusCode::SEE_OTHER),
        (vec![("confirm", "yes")], StatusCode::FORBIDDEN),
    ] {
        let res = no_redirect
            .post(&cancel_url)
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want);
    }
    assert_eq!(s.status(id).await, "RUNNING");

    // Cancel needs the confirmation box: without it the browser does not submit (a plain
    // click: `Browser::click` would wait for a page that never comes).
    b.find("#cancel").await.click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.path().await, format!("/console/campaigns/{id}"));
    assert_eq!(s.status(id).await, "RUNNING");
    b.click("#confirm-cancel").await;
    b.click("#cancel").await;
    b.wait_text("#status", Duration::from_secs(10), |t| t == "CANCELLED")
        .await;
    assert!(b.text("#notice").await.contains("Campaign cancelled"));
    let skipped: i64 = b.text("#skipped-count").await.parse().unwrap();
    assert!(skipped > 0, "recipients not sent were skipped");
    assert!(!b.exists("#pause").await && !b.exists("#cancel").await);
    b.close().await;
}
