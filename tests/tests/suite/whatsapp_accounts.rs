//! `/whatsapp-accounts*` against the simulator over real HTTP: manual and Embedded Signup
//! connection (verified against Meta), masking, health, token replacement, meta-config and
//! alerts, plus roles and tenancy.

use serde_json::json;
use wharf_sim::{NumberSpec, SimConfig, SimHandle, TokenSpec, WabaSpec};
use wharf_tests::{OrgAdmin, TestApp};

struct Fixture {
    app: TestApp,
    sim: SimHandle,
    admin: OrgAdmin,
}

async fn fixture() -> Fixture {
    let sim = wharf_sim::spawn(SimConfig::default()).await.unwrap();
    let app = TestApp::spawn_with(&[
        ("META_GRAPH_URL", &sim.base_url()),
        ("META_APP_ID", "1000000000000001"),
    ])
    .await;
    let admin = app.register_org("Wa Co").await;
    Fixture { app, sim, admin }
}

/// A WABA with one number and a token for it, in the simulator.
fn meta_number(sim: &SimHandle, waba: &str, number: &str, level: &str) -> String {
    let s = sim.state();
    s.create_waba(WabaSpec {
        id: Some(waba.into()),
        ..Default::default()
    })
    .unwrap();
    s.create_number(NumberSpec {
        id: Some(number.into()),
        waba_id: waba.into(),
        display_phone_number: Some("15550001111".into()),
        verified_name: Some("Wa Co".into()),
        throughput_level: Some(level.into()),
        ..Default::default()
    })
    .unwrap();
    s.create_token(TokenSpec {
        token: Some(format!("EAAB-token-for-{waba}-xyz")),
        wabas: Some(vec![waba.into()]),
        expires_in_secs: None,
    })
}

#[tokio::test]
async fn manual_connection_is_verified_saved_encrypted_and_masked() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2001", "3001", "HIGH");
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2001", "phoneNumberId": "3001", "accessToken": token, "alias": "Support"}),
        )
        .await
        .expect(201);
    let d = r.data();
    assert_eq!(d["phoneNumberId"], "3001");
    assert_eq!(d["displayPhone"], "15550001111");
    assert_eq!(d["verifiedName"], "Wa Co");
    assert_eq!(d["status"], "CONNECTED");
    assert_eq!(d["throughputLevel"], "HIGH");
    assert_eq!(d["messagesPerSecond"], 1000);
    assert_eq!(d["alias"], "Support");
    assert_eq!(d["accessToken"], "EAAB****-xyz");
    assert!(d["webhookUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/webhooks/whatsapp/{}", d["id"].as_str().unwrap())));
    let list = f
        .app
        .get("/api/v1/whatsapp-accounts", &f.admin.token)
        .await
        .expect(200);
    assert!(
        !list.body.to_string().contains(&token),
        "token never returned"
    );
    let stored: String = sqlx::query_scalar("SELECT access_token_enc FROM whatsapp_accounts")
        .fetch_one(&f.app.db.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1:") && !stored.contains("EAAB"),
        "token encrypted at rest"
    );

    // The same number again: 409, in this org or another.
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2001", "phoneNumberId": "3001", "accessToken": token}),
        )
        .await
        .expect(409);
    let other = f.app.register_org("Other Co").await;
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &other.token,
            json!({"wabaId": "2001", "phoneNumberId": "3001", "accessToken": token}),
        )
        .await
        .expect(409);
    // A caller whose token does not reach that number learns nothing about it: Meta's refusal
    // of the token, not "connected elsewhere".
    let stranger = f.sim.state().create_token(TokenSpec {
        token: Some("EAAB-stranger-token-xyz".into()),
        wabas: Some(vec!["9999".into()]),
        expires_in_secs: None,
    });
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &other.token,
            json!({"wabaId": "2001", "phoneNumberId": "3001", "accessToken": stranger}),
        )
        .await
        .expect(422);
    assert!(
        !r.body.to_string().contains("already connected"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn manual_connection_rejects_what_meta_rejects_and_saves_nothing() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2002", "3002", "STANDARD");
    let r = f
        .app
        .post("/api/v1/whatsapp-accounts/connect-manual", &f.admin.token,
            json!({"wabaId": "2002", "phoneNumberId": "3002", "accessToken": "EAAB-not-a-real-token"}))
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "accessToken"]));
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2002", "phoneNumberId": "9999", "accessToken": token}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "phoneNumberId"]));
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "abc", "phoneNumberId": "", "accessToken": "x"}),
        )
        .await
        .expect(422);
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({}),
        )
        .await
        .expect(422);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM whatsapp_accounts")
        .fetch_one(&f.app.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn meta_outage_during_connection_is_a_503_with_retry_after_and_saves_nothing() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2003", "3003", "STANDARD");
    // Take the simulator down: Meta unreachable.
    let base = f.sim.base_url();
    f.sim.shutdown().await;
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2003", "phoneNumberId": "3003", "accessToken": token}),
        )
        .await
        .expect(503);
    assert!(r.headers.get("retry-after").is_some());
    assert!(
        r.body["detail"].as_str().unwrap().contains("retry"),
        "{base}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM whatsapp_accounts")
        .fetch_one(&f.app.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn embedded_signup_exchanges_the_code_subscribes_and_registers() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2004", "3004", "STANDARD");
    f.sim
        .state()
        .register_oauth_code("signup-code-1", &token, Some(vec!["2004".into()]));
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect",
            &f.admin.token,
            json!({"code": "signup-code-1", "pin": "123456"}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["wabaId"], "2004");
    assert_eq!(r.data()["phoneNumberId"], "3004");
    assert_eq!(r.data()["connectionMethod"], "EMBEDDED_SIGNUP");
    assert_eq!(r.data()["messagesPerSecond"], 80);
    // A wrong code is the caller's bad input.
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect",
            &f.admin.token,
            json!({"code": "nope"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "code"]));
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect",
            &f.admin.token,
            json!({"code": "x", "pin": "12"}),
        )
        .await
        .expect(422);
}

#[tokio::test]
async fn expired_token_is_detected_by_health_and_fixed_by_a_new_token() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2005", "3005", "STANDARD");
    let id = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2005", "phoneNumberId": "3005", "accessToken": token}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let h = f
        .app
        .get(
            &format!("/api/v1/whatsapp-accounts/{id}/health"),
            &f.admin.token,
        )
        .await
        .expect(200);
    assert_eq!(h.data()["tokenValid"], true);
    assert_eq!(h.data()["meta"]["quality_rating"], "GREEN");

    f.sim.state().expire_token(&token).unwrap();
    let h = f
        .app
        .get(
            &format!("/api/v1/whatsapp-accounts/{id}/health"),
            &f.admin.token,
        )
        .await
        .expect(200);
    assert_eq!(h.data()["tokenValid"], false);
    assert_eq!(h.data()["account"]["status"], "NEEDS_REAUTH");
    let unread = f
        .app
        .get(
            "/api/v1/whatsapp-accounts/alerts/unread-count",
            &f.admin.token,
        )
        .await
        .expect(200);
    assert_eq!(unread.data()["count"], 1);
    // Checking again does not pile up alerts.
    f.app
        .get(
            &format!("/api/v1/whatsapp-accounts/{id}/health"),
            &f.admin.token,
        )
        .await
        .expect(200);
    let alerts = f
        .app
        .get(
            "/api/v1/whatsapp-accounts/alerts?acknowledged=false",
            &f.admin.token,
        )
        .await
        .expect(200);
    assert_eq!(alerts.data().as_array().unwrap().len(), 1);
    assert_eq!(alerts.data()[0]["kind"], "token_invalid");

    // An invalid replacement is refused; a valid one reconnects and resolves the alert.
    f.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &f.admin.token,
            json!({"accessToken": "EAAB-bogus-token"}),
        )
        .await
        .expect(422);
    let fresh = f.sim.state().create_token(TokenSpec {
        token: Some("EAAB-fresh-token-2005".into()),
        wabas: Some(vec!["2005".into()]),
        expires_in_secs: None,
    });
    let r = f
        .app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &f.admin.token,
            json!({"accessToken": fresh, "messagesPerSecond": 40}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["status"], "CONNECTED");
    assert_eq!(r.data()["messagesPerSecond"], 40);
    assert_eq!(r.data()["accessToken"], "EAAB****2005");
    let unread = f
        .app
        .get(
            "/api/v1/whatsapp-accounts/alerts/unread-count",
            &f.admin.token,
        )
        .await
        .expect(200);
    assert_eq!(unread.data()["count"], 0);
    let r = f
        .app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &f.admin.token,
            json!({"resetMessagesPerSecond": true}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["messagesPerSecond"], 80);
    f.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &f.admin.token,
            json!({"messagesPerSecond": 0}),
        )
        .await
        .expect(422);
}

#[tokio::test]
async fn disconnect_erases_the_token_and_frees_the_number() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2006", "3006", "STANDARD");
    let body = json!({"wabaId": "2006", "phoneNumberId": "3006", "accessToken": token});
    let id = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            body.clone(),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.app
        .delete(&format!("/api/v1/whatsapp-accounts/{id}"), &f.admin.token)
        .await
        .expect(204);
    f.app
        .delete(&format!("/api/v1/whatsapp-accounts/{id}"), &f.admin.token)
        .await
        .expect(404);
    let list = f
        .app
        .get("/api/v1/whatsapp-accounts", &f.admin.token)
        .await
        .expect(200);
    assert_eq!(list.data()[0]["status"], "DISCONNECTED");
    assert_eq!(list.data()[0]["accessToken"], "****");
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            body,
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn meta_config_round_trips_and_validates() {
    let f = fixture().await;
    let r = f
        .app
        .get("/api/v1/whatsapp-accounts/meta-config", &f.admin.token)
        .await
        .expect(200);
    assert_eq!(r.data()["appId"], "1000000000000001");
    f.app
        .request(
            reqwest::Method::PUT,
            "/api/v1/whatsapp-accounts/meta-config",
            Some(&f.admin.token),
            Some(json!({"appId": "42", "configId": "77"})),
        )
        .await
        .expect(200);
    let r = f
        .app
        .get("/api/v1/whatsapp-accounts/meta-config", &f.admin.token)
        .await
        .expect(200);
    assert_eq!(r.data(), &json!({"appId": "42", "configId": "77"}));
    f.app
        .request(
            reqwest::Method::PUT,
            "/api/v1/whatsapp-accounts/meta-config",
            Some(&f.admin.token),
            Some(json!({"appId": "x y"})),
        )
        .await
        .expect(422);
    let (_, agent) = f.app.create_user(&f.admin, "AGENT").await;
    f.app
        .request(
            reqwest::Method::PUT,
            "/api/v1/whatsapp-accounts/meta-config",
            Some(&agent),
            Some(json!({"appId": "1"})),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn roles_scopes_and_tenants_are_enforced() {
    let f = fixture().await;
    let token = meta_number(&f.sim, "2007", "3007", "STANDARD");
    let id = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &f.admin.token,
            json!({"wabaId": "2007", "phoneNumberId": "3007", "accessToken": token}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, agent) = f.app.create_user(&f.admin, "AGENT").await;
    f.app
        .get("/api/v1/whatsapp-accounts", &agent)
        .await
        .expect(200);
    f.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &agent,
            json!({"alias": "x"}),
        )
        .await
        .expect(403);
    f.app
        .delete(&format!("/api/v1/whatsapp-accounts/{id}"), &agent)
        .await
        .expect(403);
    let read_key = f.app.create_key(&f.admin, &["whatsapp:read"]).await;
    f.app
        .get("/api/v1/whatsapp-accounts", &read_key)
        .await
        .expect(200);
    f.app
        .post(
            "/api/v1/whatsapp-accounts/connect-manual",
            &read_key,
            json!({"wabaId": "1", "phoneNumberId": "2", "accessToken": "EAAB12345"}),
        )
        .await
        .expect(403);
    let write_key = f.app.create_key(&f.admin, &["whatsapp:write"]).await;
    f.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &write_key,
            json!({"alias": "Via key"}),
        )
        .await
        .expect(200);

    // Another tenant sees none of it.
    let b = f.app.register_org("Other Tenant").await;
    let list = f
        .app
        .get("/api/v1/whatsapp-accounts", &b.token)
        .await
        .expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 0);
    f.app
        .get(&format!("/api/v1/whatsapp-accounts/{id}/health"), &b.token)
        .await
        .expect(404);
    f.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{id}"),
            &b.token,
            json!({"alias": "x"}),
        )
        .await
        .expect(404);
    f.app
        .delete(&format!("/api/v1/whatsapp-accounts/{id}"), &b.token)
        .await
        .expect(404);
    // Alerts are per tenant too.
    f.sim.state().expire_token(&token).unwrap();
    f.app
        .get(
            &format!("/api/v1/whatsapp-accounts/{id}/health"),
            &f.admin.token,
        )
        .await
        .expect(200);
    let alert = f
        .app
        .get("/api/v1/whatsapp-accounts/alerts", &f.admin.token)
        .await
        .expect(200)
        .data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.app
        .post(
            &format!("/api/v1/whatsapp-accounts/alerts/{alert}/acknowledge"),
            &b.token,
            json!({}),
        )
        .await
        .expect(404);
    let r = f
        .app
        .post(
            "/api/v1/whatsapp-accounts/alerts/acknowledge-all",
            &b.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["acknowledged"], 0);
    let r = f
        .app
        .post(
            &format!("/api/v1/whatsapp-accounts/alerts/{alert}/acknowledge"),
            &f.admin.token,
            json!({}),
        )
        .await
        .expect(200);
    assert!(r.data()["acknowledgedAt"].is_string());
    assert_eq!(r.data()["acknowledgedBy"], f.admin.user_id.to_string());
}
