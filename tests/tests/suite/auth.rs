//! Registration, login (with throttling), rotating refresh tokens, /auth/me, passwords and
//! the profile.

use serde_json::json;
use wharf_tests::{TestApp, PASSWORD};

#[tokio::test]
async fn register_creates_an_org_and_its_admin_and_logs_them_in() {
    let app = TestApp::spawn().await;
    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "Acme Coffee", "name": "Ana", "email": "Ana@Acme.example.com", "password": PASSWORD}),
        )
        .await
        .expect(201);
    let d = r.data();
    assert_eq!(d["user"]["email"], "ana@acme.example.com");
    assert_eq!(d["user"]["role"], "ADMIN");
    assert_eq!(d["organization"]["slug"], "acme-coffee");
    assert_eq!(d["organization"]["status"], "ACTIVE");
    assert_eq!(d["tokenType"], "Bearer");
    assert!(d["user"].get("passwordHash").is_none());
    let token = d["accessToken"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", token).await.expect(200);
    assert_eq!(me.data()["user"]["name"], "Ana");
    assert_eq!(me.data()["organization"]["name"], "Acme Coffee");

    // Same company name again: a new org with a suffixed slug, not an error.
    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "Acme Coffee", "name": "Bo", "email": "bo@acme2.example.com", "password": PASSWORD}),
        )
        .await
        .expect(201);
    assert_ne!(r.data()["organization"]["slug"], "acme-coffee");
    assert!(r.data()["organization"]["slug"]
        .as_str()
        .unwrap()
        .starts_with("acme-coffee-"));
}

#[tokio::test]
async fn register_rejects_duplicates_and_bad_values_without_side_effects() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("First").await;
    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "Second", "name": "X", "email": admin.email.to_uppercase(), "password": PASSWORD}),
        )
        .await
        .expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("email"));

    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "", "name": "X", "email": "not-an-email", "password": "short"}),
        )
        .await
        .expect(422);
    let locs: Vec<String> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap().to_string())
        .collect();
    assert!(locs.contains(&"companyName".into()));
    assert!(locs.contains(&"email".into()));
    assert!(locs.contains(&"password".into()));

    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "C", "name": "X", "email": "ok@example.com", "password": "allletters"}),
        )
        .await
        .expect(422);
    assert!(r.body["detail"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("letter and one digit"));

    // Nothing from the rejected attempts was stored.
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(orgs, 1);
}

#[tokio::test]
async fn login_succeeds_with_the_right_password_only() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Login Co").await;
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            json!({"email": admin.email.to_uppercase(), "password": PASSWORD}),
        )
        .await
        .expect(200);
    assert!(r.data()["user"]["lastLoginAt"].is_string());
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            json!({"email": admin.email, "password": "Wrong-password-1"}),
        )
        .await
        .expect(401);
    assert_eq!(r.body["detail"], "Invalid email or password");
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await
        .expect(401);
    assert_eq!(r.body["detail"], "Invalid email or password");
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": "bad", "password": PASSWORD}),
    )
    .await
    .expect(422);
}

#[tokio::test]
async fn login_is_throttled_per_email_with_retry_after() {
    let app = TestApp::spawn_with(&[("LOGIN_ATTEMPTS_PER_EMAIL_PER_MINUTE", "3")]).await;
    let admin = app.register_org("Throttle Co").await;
    for _ in 0..3 {
        app.post_anon(
            "/api/v1/auth/login",
            json!({"email": admin.email, "password": "Wrong-guess-1"}),
        )
        .await
        .expect(401);
    }
    // Even the right password is refused while throttled: the attacker learns nothing.
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            json!({"email": admin.email, "password": PASSWORD}),
        )
        .await
        .expect(429);
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another account is not affected by this email's limit.
    let other = app.register_org("Other Co").await;
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": other.email, "password": PASSWORD}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn login_is_throttled_per_client_address() {
    let app = TestApp::spawn_with(&[("LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "4")]).await;
    for i in 0..4 {
        app.post_anon(
            "/api/v1/auth/login",
            json!({"email": format!("u{i}@example.com"), "password": "Guess-1234"}),
        )
        .await
        .expect(401);
    }
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            json!({"email": "u9@example.com", "password": "Guess-1234"}),
        )
        .await
        .expect(429);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_family() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Refresh Co").await;
    let first = app
        .post_anon(
            "/api/v1/auth/refresh",
            json!({"refreshToken": admin.refresh_token}),
        )
        .await
        .expect(200);
    let second_refresh = first.data()["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, admin.refresh_token);
    app.get(
        "/api/v1/auth/me",
        first.data()["accessToken"].as_str().unwrap(),
    )
    .await
    .expect(200);

    // The used token no longer works...
    app.post_anon(
        "/api/v1/auth/refresh",
        json!({"refreshToken": admin.refresh_token}),
    )
    .await
    .expect(401);
    // ...and its replay revoked the newer token of the same family too.
    app.post_anon(
        "/api/v1/auth/refresh",
        json!({"refreshToken": second_refresh}),
    )
    .await
    .expect(401);

    app.post_anon("/api/v1/auth/refresh", json!({"refreshToken": "rt_bogus"}))
        .await
        .expect(401);
    app.post_anon("/api/v1/auth/refresh", json!({"refreshToken": ""}))
        .await
        .expect(422);
    app.post_anon("/api/v1/auth/refresh", json!({}))
        .await
        .expect(422);
    // An access token is not a refresh token.
    app.post_anon("/api/v1/auth/refresh", json!({"refreshToken": admin.token}))
        .await
        .expect(401);
}

#[tokio::test]
async fn expired_access_tokens_are_rejected() {
    let app = TestApp::spawn_with(&[("ACCESS_TOKEN_TTL_SECS", "1")]).await;
    let admin = app.register_org("Expiry Co").await;
    app.get("/api/v1/auth/me", &admin.token).await.expect(200);
    // 1 s lifetime plus the 5 s clock-skew leeway.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let r = app.get("/api/v1/auth/me", &admin.token).await.expect(401);
    assert_eq!(r.body["detail"], "Invalid or expired token");
}

#[tokio::test]
async fn change_password_requires_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Pw Co").await;
    let r = app
        .post(
            "/api/v1/profile/change-password",
            &admin.token,
            json!({"currentPassword": "Not-the-password-1", "newPassword": "Brand-new-pass-2"}),
        )
        .await
        .expect(400);
    assert_eq!(r.body["detail"], "Current password is incorrect");
    app.post(
        "/api/v1/profile/change-password",
        &admin.token,
        json!({"currentPassword": PASSWORD, "newPassword": "weak"}),
    )
    .await
    .expect(422);
    let r = app
        .post(
            "/api/v1/profile/change-password",
            &admin.token,
            json!({"currentPassword": PASSWORD, "newPassword": "Brand-new-pass-2"}),
        )
        .await
        .expect(200);
    assert!(r.data()["accessToken"].is_string());
    // The old refresh token (another session) is revoked; the old password fails.
    app.post_anon(
        "/api/v1/auth/refresh",
        json!({"refreshToken": admin.refresh_token}),
    )
    .await
    .expect(401);
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": admin.email, "password": PASSWORD}),
    )
    .await
    .expect(401);
    app.login(&admin.email, "Brand-new-pass-2").await;
}

#[tokio::test]
async fn set_password_lets_an_invited_user_log_in() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Invite Co").await;
    // A user created without a password cannot log in...
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": "new@invite.example.com", "name": "Newbie"}),
    )
    .await
    .expect(201);
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": "new@invite.example.com", "password": PASSWORD}),
    )
    .await
    .expect(401);
    // ...until they set a first password, signed in (as by a sign-in code) with an access
    // token of their own.
    let invited: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'new@invite.example.com'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let invited_token =
        wharf_api::auth::jwt::JwtKeys::new(app.config.jwt_secret.expose().as_bytes())
            .issue(invited, std::time::Duration::from_secs(300));
    app.post(
        "/api/v1/auth/set-password",
        &invited_token,
        json!({"password": "123"}),
    )
    .await
    .expect(422);
    let r = app
        .post(
            "/api/v1/auth/set-password",
            &invited_token,
            json!({"password": "Another-pass-9"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["user"]["hasPassword"], true);
    app.login("new@invite.example.com", "Another-pass-9").await;
    app.post_anon(
        "/api/v1/auth/set-password",
        json!({"password": "Another-pass-9"}),
    )
    .await
    .expect(401);
}

/// A stolen access token must not be enough to take an account over: an account with a
/// password changes it only with the current one, and that revokes its other sessions.
#[tokio::test]
async fn set_password_cannot_replace_an_existing_password() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Takeover Co").await;
    let r = app
        .post(
            "/api/v1/auth/set-password",
            &admin.token,
            json!({"password": "Attacker-pass-1"}),
        )
        .await
        .expect(403);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("/profile/change-password"));
    // Nothing changed: the old password still works, the attacker's does not.
    app.login(&admin.email, PASSWORD).await;
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": admin.email, "password": "Attacker-pass-1"}),
    )
    .await
    .expect(401);
    // change-password (with the current one) revokes every other refresh token.
    app.post(
        "/api/v1/profile/change-password",
        &admin.token,
        json!({"currentPassword": PASSWORD, "newPassword": "Owner-new-pass-2"}),
    )
    .await
    .expect(200);
    app.post_anon(
        "/api/v1/auth/refresh",
        json!({"refreshToken": admin.refresh_token}),
    )
    .await
    .expect(401);
}

#[tokio::test]
async fn profile_reads_and_updates_the_callers_own_account() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Profile Co").await;
    let r = app.get("/api/v1/profile", &admin.token).await.expect(200);
    assert_eq!(r.data()["id"], admin.user_id.to_string());
    let r = app
        .patch(
            "/api/v1/profile",
            &admin.token,
            json!({"name": "  Renamed  "}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["name"], "Renamed");
    app.patch("/api/v1/profile", &admin.token, json!({"name": ""}))
        .await
        .expect(422);
    app.patch("/api/v1/profile", &admin.token, json!({}))
        .await
        .expect(422);
    // API keys have no profile.
    let key = app.create_key(&admin, &["admin"]).await;
    app.get("/api/v1/profile", &key).await.expect(403);
    app.post(
        "/api/v1/profile/change-password",
        &key,
        json!({"currentPassword": PASSWORD, "newPassword": "Brand-new-pass-2"}),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn me_describes_an_api_key_caller() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Me Key Co").await;
    let key = app.create_key(&admin, &["whatsapp:read"]).await;
    let r = app.get("/api/v1/auth/me", &key).await.expect(200);
    assert!(r.data()["user"].is_null());
    assert_eq!(r.data()["apiKey"]["scopes"], json!(["whatsapp:read"]));
    assert_eq!(r.data()["organization"]["id"], admin.org_id.to_string());
}

#[tokio::test]
async fn complete_onboarding_is_admin_only() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Onboard Co").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    app.post("/api/v1/auth/complete-onboarding", &agent, json!({}))
        .await
        .expect(403);
    let r = app
        .post("/api/v1/auth/complete-onboarding", &admin.token, json!({}))
        .await
        .expect(200);
    assert_eq!(r.data()["onboardingCompleted"], true);
}
