//! Signing in and out, who may, and CSRF.

use std::time::Duration;

use reqwest::StatusCode;
use wharf_tests::{TestApp, PASSWORD};

use crate::browser::Browser;

#[tokio::test]
async fn admin_signs_in_sees_the_overview_and_signs_out() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Console Co").await;
    let b = Browser::start(&app.base_url).await;

    // An anonymous visit goes to the sign-in page and comes back after it.
    b.goto("/console?from=bookmark").await;
    assert!(b.path().await.starts_with("/console/login?next="));
    b.fill("#email", &admin.email).await;
    b.fill("#password", "wrong password").await;
    b.click("#sign-in").await;
    assert!(b
        .text("#login-error")
        .await
        .contains("Invalid email or password"));
    b.fill("#password", PASSWORD).await;
    b.click("#sign-in").await;
    b.find("h1").await;
    assert_eq!(b.path().await, "/console?from=bookmark");

    b.goto("/console").await;
    assert_eq!(b.text("h1").await, "Overview");
    assert!(b.text("#signed-in-as").await.contains(&admin.email));
    let lanes = b.text("#lanes").await;
    for lane in ["inbound", "outbound", "bulk", "media", "llm", "maintenance"] {
        assert!(lanes.contains(lane), "{lane} missing from {lanes}");
    }
    // The cookie is HttpOnly and SameSite=Strict.
    let cookie = b
        .client
        .get_named_cookie("wharf_console")
        .await
        .expect("session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    b.screenshot("overview").await;
    assert!(
        !b.overflows_at(390).await,
        "the overview scrolls sideways at 390 px"
    );
    b.screenshot("overview-390").await;

    b.click("header form button").await;
    b.find("#sign-in").await;
    b.goto("/console").await;
    assert!(b.path().await.starts_with("/console/login"));
    b.close().await;
}

#[tokio::test]
async fn agents_and_supervisors_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Refusing Co").await;
    let email = format!("agent-{}@example.com", uuid::Uuid::new_v4().simple());
    app.post(
        "/api/v1/users",
        &admin.token,
        serde_json::json!({"email": email, "name": "Agent", "role": "AGENT", "password": PASSWORD}),
    )
    .await
    .expect(201);
    let b = Browser::start(&app.base_url).await;
    b.sign_in(&email, PASSWORD).await;
    assert!(b.text("#login-error").await.contains("for administrators"));
    assert!(b.client.get_named_cookie("wharf_console").await.is_err());
    b.goto("/console").await;
    assert!(b.path().await.starts_with("/console/login"));
    b.screenshot("login-refused").await;
    b.close().await;

    // No session row was created for the agent.
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1",
    )
    .bind(&email)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Csrf Co").await;
    let b = Browser::start(&app.base_url).await;
    b.sign_in(&admin.email, PASSWORD).await;
    let cookie = b.session_cookie().await;
    let csrf = b.csrf().await;
    b.close().await;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |token: Option<String>| {
        let mut form = vec![];
        if let Some(t) = token {
            form.push(("_csrf".to_string(), t));
        }
        http.post(format!("{}/console/logout", app.base_url))
            .header("cookie", cookie.clone())
            .form(&form)
            .send()
    };
    // Sign-out is a state change like any other: without the token it is refused...
    let res = post(None).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("did not come from the console"));
    let res = post(Some("forged".into())).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // ...and the session still works.
    let res = http
        .get(format!("{}/console", app.base_url))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // With the token it goes through.
    let res = post(Some(csrf)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = http
        .get(format!("{}/console", app.base_url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the session ended");
    let _ = Duration::ZERO;
}
