//! The HydraCore channels dialect (`/v1/instances/{instance_id}/channels...`) with the seed's
//! example bodies: an instance is one of the organization's bot configs; its WhatsApp channel
//! is a number connected with its own app secret and verify token (webhooks at its own URL,
//! inbound answered by the instance's bot); other channel types are stored as `not_supported`.
//!
//! Second section: the WhatsApp API's onboarding endpoints (`/api/v1/whatsapp/onboarding/...`),
//! the same connection flows as `/api/v1/whatsapp-accounts/connect` and `/connect-manual`.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::{NumberSpec, SimHandle, TokenSpec, WabaSpec};
use wharf_tests::{
    platform::{messages_webhook, wait_for, Number, Platform},
    OrgAdmin,
};

const APP_ID: &str = "1000000000000001";

struct Fixture {
    p: Platform,
    admin: OrgAdmin,
    instance: String,
}

async fn fixture() -> Fixture {
    let p = Platform::start_with(&[("META_APP_ID", APP_ID)]).await;
    let admin = p.app.register_org("Hydra Co").await;
    let instance = bot_config(&p, &admin, "Instance bot").await;
    Fixture { p, admin, instance }
}

/// A draft (not active) bot config: an instance.
async fn bot_config(p: &Platform, admin: &OrgAdmin, name: &str) -> String {
    p.app
        .post(
            "/api/v1/bot-config",
            &admin.token,
            json!({"name": name, "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sk-none"}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A WABA with one number and a token for it, in the simulator.
fn meta_number(sim: &SimHandle, waba: &str, number: &str) -> String {
    let s = sim.state();
    s.create_waba(WabaSpec {
        id: Some(waba.into()),
        ..Default::default()
    })
    .unwrap();
    s.create_number(NumberSpec {
        id: Some(number.into()),
        waba_id: waba.into(),
        display_phone_number: Some("61400111222".into()),
        verified_name: Some("Hydra Co".into()),
        ..Default::default()
    })
    .unwrap();
    s.create_token(TokenSpec {
        token: Some(format!("EAAB-token-for-{waba}-xyz")),
        wabas: Some(vec![waba.into()]),
        expires_in_secs: None,
    })
}

async fn call(p: &Platform, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    p.app
        .request(method, path, Some(token), body)
        .await
        .status
        .as_u16()
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn a_whatsapp_channel_is_set_up_verified_by_its_own_secrets_answered_by_its_bot_and_torn_down(
) {
    let f = fixture().await;
    let p = &f.p;
    let key = p.app.create_key(&f.admin, &["whatsapp:write"]).await;
    let read = p.app.create_key(&f.admin, &["whatsapp:read"]).await;
    let base = format!("/v1/instances/{}/channels/whatsapp", f.instance);
    let token = meta_number(&p.sim, "7001", "8001");

    p.app.get(&base, &read).await.expect(404);

    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"access_token": token, "app_secret": "chan-app-secret", "phone_number_id": "8001",
                   "display_phone": "+61400111222", "verify_token": "chan-verify"}),
        )
        .await
        .expect(201);
    assert_eq!(
        keys_of(&r.body),
        [
            "display_phone",
            "enabled",
            "phone_number_id",
            "status",
            "webhook_url"
        ]
    );
    assert_eq!(r.body["phone_number_id"], "8001");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["enabled"], true);
    let account_id: Uuid = sqlx::query_scalar(
        "SELECT id FROM whatsapp_accounts WHERE phone_number_id = '8001' AND status = 'CONNECTED'",
    )
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    let hook = format!("/webhooks/whatsapp/{account_id}");
    assert!(
        r.body["webhook_url"].as_str().unwrap().ends_with(&hook),
        "{}",
        r.body
    );
    // Secrets encrypted at rest, the number answered by the instance's bot.
    let (tok_enc, secret_enc, verify_enc, bot): (String, String, String, Option<Uuid>) =
        sqlx::query_as(
            "SELECT access_token_enc, app_secret_enc, verify_token_enc, bot_config_id FROM whatsapp_accounts WHERE id = $1",
        )
        .bind(account_id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    for enc in [&tok_enc, &secret_enc, &verify_enc] {
        assert!(enc.starts_with("v1:") && !enc.contains("EAAB") && !enc.contains("chan-"));
    }
    assert_eq!(bot.unwrap().to_string(), f.instance);
    assert!(!r.body.to_string().contains(&token), "token never returned");

    // The app is subscribed to the number's WABA.
    let subs: Value = p
        .app
        .client
        .get(format!(
            "{}/{}/7001/subscribed_apps",
            p.sim.base_url(),
            p.app.config.meta_api_version
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subs["data"].as_array().unwrap().len(), 1, "{subs}");

    let got = p.app.get(&base, &read).await.expect(200);
    assert_eq!(got.body, r.body);
    // One WhatsApp channel per instance.
    p.app
        .post(
            &base,
            &key,
            json!({"access_token": token, "app_secret": "x", "phone_number_id": "8001"}),
        )
        .await
        .expect(409);
    let list = p
        .app
        .get(&format!("/v1/instances/{}/channels", f.instance), &read)
        .await
        .expect(200);
    assert_eq!(list.body["count"], 1);
    let ch = &list.body["channels"][0];
    assert_eq!(ch["channel_type"], "whatsapp");
    assert_eq!(ch["provider"], "meta_cloud");
    assert_eq!(ch["external_identifier"], "8001");
    assert_eq!(ch["status"], "active");
    assert_eq!(ch["instance_id"], f.instance.as_str());

    // The webhook URL verifies with the channel's own verify token...
    let challenge = p
        .app
        .client
        .get(format!(
            "{}{hook}?hub.mode=subscribe&hub.verify_token=chan-verify&hub.challenge=4242",
            p.app.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status().as_u16(), 200);
    assert_eq!(challenge.text().await.unwrap(), "4242");
    let wrong = p
        .app
        .client
        .get(format!(
            "{}{hook}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=4242",
            p.app.base_url,
            p.app.config.meta_verify_token.expose()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);

    // ... rejects a POST signed with the platform secret, accepts one signed with its own.
    let number = Number {
        account_id,
        org_id: f.admin.org_id,
        waba_id: "7001".into(),
        phone_number_id: "8001".into(),
        display_phone: "61400111222".into(),
        token: token.clone(),
    };
    let body = serde_json::to_vec(&messages_webhook(
        &number,
        json!({"contacts": [{"profile": {"name": "Kim"}, "wa_id": "61400999888"}],
               "messages": [{"from": "61400999888", "id": "wamid.hydra1", "timestamp": "1749416383",
                             "type": "text", "text": {"body": "hello"}}]}),
    ))
    .unwrap();
    let r = p.post_signed(&hook, &p.app_secret(), &body).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    p.post_signed(&hook, "chan-app-secret", &body)
        .await
        .expect(200);

    // The org's bot switch is off, yet the conversation starts with the instance's bot.
    wait_for("the instance's bot takes the conversation", || async {
        p.count(
            "SELECT count(*) FROM conversations WHERE status = 'BOT_HANDLING'
                OR EXISTS (SELECT 1 FROM jobs WHERE kind = 'bot.reply')",
        )
        .await
            > 0
    })
    .await;
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE direction = 'INBOUND'")
            .await,
        1
    );

    // Teardown: the number is disconnected (history kept), the channel is gone.
    p.app.delete(&base, &read).await.expect(403);
    p.app.delete(&base, &key).await.expect(204);
    p.app.get(&base, &read).await.expect(404);
    p.app.delete(&base, &key).await.expect(404);
    let status: String = sqlx::query_scalar("SELECT status FROM whatsapp_accounts WHERE id = $1")
        .bind(account_id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "DISCONNECTED");
    let subs: Value = p
        .app
        .client
        .get(format!(
            "{}/{}/7001/subscribed_apps",
            p.sim.base_url(),
            p.app.config.meta_api_version
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subs["data"], json!([]), "unsubscribed: {subs}");
    assert_eq!(
        p.count("SELECT count(*) FROM messages").await,
        1,
        "history kept"
    );
    let list = p
        .app
        .get(&format!("/v1/instances/{}/channels", f.instance), &read)
        .await
        .expect(200);
    assert_eq!(list.body["count"], 0);

    // Set up again without a verify token: one is generated and verifies the URL.
    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"access_token": token, "app_secret": "chan-app-secret-2", "phone_number_id": "8001"}),
        )
        .await
        .expect(201);
    let new_id = r.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_id, account_id.to_string());
    let enc: String =
        sqlx::query_scalar("SELECT verify_token_enc FROM whatsapp_accounts WHERE id = $1::uuid")
            .bind(&new_id)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    let generated = p.secrets().decrypt(&enc).unwrap();
    assert!(generated.len() >= 16);
    let ok = p
        .app
        .client
        .get(format!(
            "{}/webhooks/whatsapp/{new_id}?hub.mode=subscribe&hub.verify_token={generated}&hub.challenge=7",
            p.app.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn setup_rejects_what_meta_rejects_and_saves_nothing() {
    let f = fixture().await;
    let p = &f.p;
    let base = format!("/v1/instances/{}/channels/whatsapp", f.instance);
    meta_number(&p.sim, "7002", "8002");
    let r = p
        .app
        .post(
            &base,
            &f.admin.token,
            json!({"access_token": "EAAB-not-a-real-token", "app_secret": "s", "phone_number_id": "8002"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "access_token"]));
    // A token that does not reach the number.
    let stranger = meta_number(&p.sim, "7003", "8003");
    let r = p
        .app
        .post(
            &base,
            &f.admin.token,
            json!({"access_token": stranger, "app_secret": "s", "phone_number_id": "8002"}),
        )
        .await
        .expect(422);
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "phone_number_id"])
    );
    // Snake_case validation errors naming snake_case fields.
    let r = p
        .app
        .post(
            &base,
            &f.admin.token,
            json!({"access_token": "short", "app_secret": "", "phone_number_id": "abc"}),
        )
        .await
        .expect(422);
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"].clone())
        .collect();
    for field in ["access_token", "app_secret", "phone_number_id"] {
        assert!(
            locs.contains(&json!(["body", field])),
            "{field}: {}",
            r.body
        );
    }
    let r = p
        .app
        .post(
            &base,
            &f.admin.token,
            json!({"app_secret": "s", "phone_number_id": "8002"}),
        )
        .await
        .expect(422);
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "access_token"]),
        "{}",
        r.body
    );
    assert_eq!(p.count("SELECT count(*) FROM whatsapp_accounts").await, 0);
    assert_eq!(p.count("SELECT count(*) FROM channel_endpoints").await, 0);
}

#[tokio::test]
async fn channel_endpoints_of_every_type_are_stored_listed_updated_and_deleted() {
    let f = fixture().await;
    let p = &f.p;
    let key = p
        .app
        .create_key(&f.admin, &["whatsapp:read", "whatsapp:write"])
        .await;
    let base = format!("/v1/instances/{}/channels", f.instance);

    // The seed's example body.
    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"channel_type": "telegram", "external_identifier": "@hydra_bot", "provider": "telegram"}),
        )
        .await
        .expect(201);
    assert_eq!(
        keys_of(&r.body),
        [
            "channel_type",
            "config",
            "connection_id",
            "created_at",
            "enabled",
            "error_message",
            "external_identifier",
            "id",
            "instance_id",
            "last_event_at",
            "provider",
            "status",
            "updated_at"
        ]
    );
    assert_eq!(r.body["status"], "not_supported");
    assert!(r.body["error_message"]
        .as_str()
        .unwrap()
        .contains("not operated"));
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["config"], json!({}));
    assert_eq!(r.body["instance_id"], f.instance.as_str());
    let telegram = r.body["id"].as_str().unwrap().to_string();

    for (kind, provider, ident) in [
        ("voice", "retell", "+61400111333"),
        ("sms", "twilio", "+61400111444"),
        ("email", "resend", "help@hydra.example"),
        ("web_chat", "widget", "site-1"),
    ] {
        let r = p
            .app
            .post(
                &base,
                &key,
                json!({"channel_type": kind, "external_identifier": ident, "provider": provider,
                       "config": {"streaming": true}, "enabled": false, "webhook_secret": "whs",
                       "connection_id": Uuid::new_v4(), "credential_id": Uuid::new_v4()}),
            )
            .await
            .expect(201);
        assert_eq!(r.body["status"], "not_supported", "{kind}");
        assert_eq!(r.body["enabled"], false);
        assert_eq!(r.body["config"], json!({"streaming": true}));
        assert!(r.body["connection_id"].is_string());
    }
    // A WhatsApp endpoint without a connected number waits for one.
    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"channel_type": "whatsapp", "external_identifier": "+61400111222", "provider": "meta_cloud"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["status"], "pending");
    let wa = r.body["id"].as_str().unwrap().to_string();

    let list = p.app.get(&base, &key).await.expect(200);
    assert_eq!(list.body["count"], 6);
    assert_eq!(list.body["channels"].as_array().unwrap().len(), 6);
    assert_eq!(list.body["channels"][0]["id"], telegram.as_str());

    // PATCH: empty body changes nothing; an unsupported type stays not_supported.
    let before = p
        .app
        .patch(&format!("{base}/{telegram}"), &key, json!({}))
        .await
        .expect(200);
    assert_eq!(before.body["external_identifier"], "@hydra_bot");
    let r = p
        .app
        .patch(
            &format!("{base}/{telegram}"),
            &key,
            json!({"enabled": false, "config": {"mode": "stream"}, "external_identifier": "@hydra_bot2",
                   "provider": "telegram", "status": "active", "error_message": "x"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["config"], json!({"mode": "stream"}));
    assert_eq!(r.body["external_identifier"], "@hydra_bot2");
    assert_eq!(r.body["status"], "not_supported");
    let r = p
        .app
        .patch(&format!("{base}/{wa}"), &key, json!({"status": "paused"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "paused");

    // Validation as the seed states, snake_case fields; 422 for malformed path ids.
    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"channel_type": "fax", "external_identifier": "x".repeat(256), "provider": "p".repeat(51)}),
        )
        .await
        .expect(422);
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"].clone())
        .collect();
    for field in ["channel_type", "external_identifier", "provider"] {
        assert!(
            locs.contains(&json!(["body", field])),
            "{field}: {}",
            r.body
        );
    }
    let r = p
        .app
        .post(
            &base,
            &key,
            json!({"channel_type": "sms", "provider": "twilio"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"][1], "external_identifier");
    let r = p
        .app
        .patch(
            &format!("{base}/{telegram}"),
            &key,
            json!({"provider": "p".repeat(51), "config": [1]}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"].as_array().unwrap().len(), 2, "{}", r.body);
    let r = p
        .app
        .get("/v1/instances/not-a-uuid/channels", &key)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["path", "instance_id"]));
    for d in r.body["detail"].as_array().unwrap() {
        assert!(d["msg"].is_string() && d["type"].is_string());
    }
    let r = p
        .app
        .delete(&format!("{base}/not-a-uuid"), &key)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["path", "endpoint_id"]));

    // DELETE.
    p.app
        .delete(&format!("{base}/{telegram}"), &key)
        .await
        .expect(204);
    p.app
        .delete(&format!("{base}/{telegram}"), &key)
        .await
        .expect(404);
    p.app
        .patch(&format!("{base}/{telegram}"), &key, json!({}))
        .await
        .expect(404);
    assert_eq!(p.app.get(&base, &key).await.expect(200).body["count"], 5);

    // Connecting the instance's number takes the pending WhatsApp endpoint.
    let token = meta_number(&p.sim, "7004", "8004");
    p.app
        .post(
            &format!("{base}/whatsapp"),
            &key,
            json!({"access_token": token, "app_secret": "s3cret", "phone_number_id": "8004"}),
        )
        .await
        .expect(201);
    let list = p.app.get(&base, &key).await.expect(200);
    assert_eq!(list.body["count"], 5);
    let wa_row = list.body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == wa.as_str())
        .unwrap()
        .clone();
    assert_eq!(wa_row["status"], "active", "{wa_row}");
    assert_eq!(wa_row["external_identifier"], "8004");
    assert!(wa_row["error_message"].is_null());
}

#[tokio::test]
async fn another_organizations_instances_and_endpoints_are_404() {
    let f = fixture().await;
    let p = &f.p;
    let other = p.app.register_org("Other Co").await;
    let theirs = bot_config(p, &other, "Their bot").await;
    let endpoint = p
        .app
        .post(
            &format!("/v1/instances/{theirs}/channels"),
            &other.token,
            json!({"channel_type": "sms", "external_identifier": "+1555", "provider": "twilio"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = p.app.create_key(&f.admin, &["admin"]).await;
    let unknown = Uuid::new_v4();
    for inst in [theirs.clone(), unknown.to_string()] {
        let b = format!("/v1/instances/{inst}/channels");
        p.app.get(&b, &key).await.expect(404);
        p.app
            .post(
                &b,
                &key,
                json!({"channel_type": "sms", "external_identifier": "+1", "provider": "twilio"}),
            )
            .await
            .expect(404);
        p.app
            .patch(&format!("{b}/{endpoint}"), &key, json!({}))
            .await
            .expect(404);
        p.app
            .delete(&format!("{b}/{endpoint}"), &key)
            .await
            .expect(404);
        p.app.get(&format!("{b}/whatsapp"), &key).await.expect(404);
        p.app
            .post(
                &format!("{b}/whatsapp"),
                &key,
                json!({"access_token": "EAAB-whatever-token", "app_secret": "s", "phone_number_id": "1"}),
            )
            .await
            .expect(404);
        p.app
            .delete(&format!("{b}/whatsapp"), &key)
            .await
            .expect(404);
    }
    // Their endpoint under our own instance is 404 too, and it survived.
    let mine = format!("/v1/instances/{}/channels/{endpoint}", f.instance);
    p.app.patch(&mine, &key, json!({})).await.expect(404);
    p.app.delete(&mine, &key).await.expect(404);
    assert_eq!(
        p.app
            .get(&format!("/v1/instances/{theirs}/channels"), &other.token)
            .await
            .expect(200)
            .body["count"],
        1
    );
}

#[tokio::test]
async fn hydracore_scope_matrix() {
    let f = fixture().await;
    let p = &f.p;
    let base = format!("/v1/instances/{}/channels", f.instance);
    let endpoint = p
        .app
        .post(
            &base,
            &f.admin.token,
            json!({"channel_type": "email", "external_identifier": "a@b.example", "provider": "gmail"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut keys = Vec::new();
    for scope in ["whatsapp:read", "whatsapp:write", "whatsapp:send", "admin"] {
        keys.push((scope, p.app.create_key(&f.admin, &[scope]).await));
    }
    let wa = format!("{base}/whatsapp");
    let item = format!("{base}/{endpoint}");
    let create =
        json!({"channel_type": "sms", "external_identifier": "+1555", "provider": "twilio"});
    let setup = json!({"access_token": "EAAB-not-a-real-token", "app_secret": "s", "phone_number_id": "99"});
    // (method, path, body, the scope it needs)
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (Method::GET, &wa, None, "whatsapp:read"),
        (Method::POST, &wa, Some(setup), "whatsapp:write"),
        (Method::DELETE, &wa, None, "whatsapp:write"),
        (Method::GET, &base, None, "whatsapp:read"),
        (Method::POST, &base, Some(create), "whatsapp:write"),
        (Method::PATCH, &item, Some(json!({})), "whatsapp:write"),
        (Method::DELETE, &item, None, "whatsapp:write"),
    ];
    for (method, path, body, needs) in &cases {
        for (scope, key) in &keys {
            if *method == Method::DELETE && path == &item.as_str() && (*scope == "admin") {
                continue; // checked last, it deletes the endpoint
            }
            let allowed = scope == needs || *scope == "admin";
            let r = p
                .app
                .request(method.clone(), path, Some(key), body.clone())
                .await;
            if allowed {
                assert_ne!(
                    r.status.as_u16(),
                    403,
                    "{method} {path} with {scope}: {}",
                    r.body
                );
            } else {
                assert_eq!(
                    r.status.as_u16(),
                    403,
                    "{method} {path} with {scope}: {}",
                    r.body
                );
                assert!(
                    r.body["detail"].as_str().unwrap().contains(needs),
                    "{}",
                    r.body
                );
            }
        }
    }
    let admin_key = &keys[3].1;
    assert_eq!(
        call(p, Method::DELETE, &item, admin_key, None).await,
        404,
        "deleted by the write key"
    );
}

// ---------------------------------------------------------------------------------------------
// WhatsApp API onboarding: `/api/v1/whatsapp/onboarding/manual` and `/exchange`.

#[tokio::test]
async fn wa_onboarding_manual_connects_with_system_user_credentials() {
    let f = fixture().await;
    let p = &f.p;
    let key = p.app.create_key(&f.admin, &["whatsapp:write"]).await;
    let token = meta_number(&p.sim, "7101", "8101");
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/manual",
            &key,
            json!({"waba_id": "7101", "phone_number_id": "8101", "access_token": token}),
        )
        .await
        .expect(201);
    assert!(r.body.get("data").is_none(), "no envelope");
    assert_eq!(r.body["waba_id"], "7101");
    assert_eq!(r.body["phone_number_id"], "8101");
    assert_eq!(r.body["display_phone"], "61400111222");
    assert_eq!(r.body["status"], "CONNECTED");
    assert_eq!(r.body["connection_method"], "MANUAL");
    assert!(!r.body.to_string().contains(&token));
    let id = r.body["id"].as_str().unwrap();
    // The same account the `/api/v1` routes see.
    let list = p
        .app
        .get("/api/v1/whatsapp-accounts", &f.admin.token)
        .await
        .expect(200);
    assert_eq!(list.data()[0]["id"], id);
    assert_eq!(list.data()[0]["accessToken"], "EAAB****-xyz");

    // Again: 409. A token Meta refuses: 422 naming the snake_case field; nothing saved.
    p.app
        .post(
            "/api/v1/whatsapp/onboarding/manual",
            &key,
            json!({"waba_id": "7101", "phone_number_id": "8101", "access_token": token}),
        )
        .await
        .expect(409);
    meta_number(&p.sim, "7102", "8102");
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/manual",
            &key,
            json!({"waba_id": "7102", "phone_number_id": "8102", "access_token": "EAAB-not-a-real-token"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "access_token"]));
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/manual",
            &key,
            json!({"waba_id": "x", "phone_number_id": "", "access_token": "short"}),
        )
        .await
        .expect(422);
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"].clone())
        .collect();
    for field in ["waba_id", "phone_number_id", "access_token"] {
        assert!(
            locs.contains(&json!(["body", field])),
            "{field}: {}",
            r.body
        );
    }
    assert_eq!(p.count("SELECT count(*) FROM whatsapp_accounts").await, 1);
}

#[tokio::test]
async fn wa_onboarding_exchange_completes_embedded_signup() {
    let f = fixture().await;
    let p = &f.p;
    let key = p.app.create_key(&f.admin, &["whatsapp:write"]).await;
    let token = meta_number(&p.sim, "7201", "8201");
    p.sim
        .state()
        .register_oauth_code("signup-code-h1", &token, Some(vec!["7201".into()]));
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/exchange",
            &key,
            json!({"code": "signup-code-h1", "phone_number_id": "8201"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["waba_id"], "7201");
    assert_eq!(r.body["phone_number_id"], "8201");
    assert_eq!(r.body["connection_method"], "EMBEDDED_SIGNUP");
    assert_eq!(r.body["status"], "CONNECTED");
    // A code is single-use: Meta refuses it, named in snake_case.
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/exchange",
            &key,
            json!({"code": "signup-code-h1", "phone_number_id": "8201"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "code"]));
    let r = p
        .app
        .post(
            "/api/v1/whatsapp/onboarding/exchange",
            &key,
            json!({"code": "", "phone_number_id": "abc"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"].as_array().unwrap().len(), 2, "{}", r.body);
    assert_eq!(
        r.body["detail"][1]["loc"],
        json!(["body", "phone_number_id"])
    );
}

#[tokio::test]
async fn wa_onboarding_scope_matrix() {
    let f = fixture().await;
    let p = &f.p;
    for scope in ["whatsapp:read", "whatsapp:write", "whatsapp:send", "admin"] {
        let key = p.app.create_key(&f.admin, &[scope]).await;
        let allowed = scope == "whatsapp:write" || scope == "admin";
        for (path, body) in [
            (
                "/api/v1/whatsapp/onboarding/manual",
                json!({"waba_id": "7301", "phone_number_id": "8301", "access_token": "EAAB-not-a-real-token"}),
            ),
            (
                "/api/v1/whatsapp/onboarding/exchange",
                json!({"code": "no-such-code", "phone_number_id": "8301"}),
            ),
        ] {
            let r = p.app.post(path, &key, body).await;
            if allowed {
                // Past authorization: Meta refuses the made-up credentials.
                assert_eq!(r.status.as_u16(), 422, "{path} with {scope}: {}", r.body);
            } else {
                assert_eq!(r.status.as_u16(), 403, "{path} with {scope}: {}", r.body);
                assert!(r.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("whatsapp:write"));
            }
        }
    }
}

#[tokio::test]
async fn both_dialects_are_in_the_openapi_document_under_their_tags() {
    let app = wharf_tests::TestApp::spawn().await;
    let spec = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200)
        .body;
    let paths = &spec["paths"];
    for (path, method) in [
        ("/v1/instances/{instance_id}/channels/whatsapp", "get"),
        ("/v1/instances/{instance_id}/channels/whatsapp", "post"),
        ("/v1/instances/{instance_id}/channels/whatsapp", "delete"),
        ("/v1/instances/{instance_id}/channels", "get"),
        ("/v1/instances/{instance_id}/channels", "post"),
        (
            "/v1/instances/{instance_id}/channels/{endpoint_id}",
            "patch",
        ),
        (
            "/v1/instances/{instance_id}/channels/{endpoint_id}",
            "delete",
        ),
    ] {
        assert_eq!(
            paths[path][method]["tags"],
            json!(["hydracore"]),
            "{method} {path}"
        );
    }
    for path in [
        "/api/v1/whatsapp/onboarding/manual",
        "/api/v1/whatsapp/onboarding/exchange",
    ] {
        assert_eq!(
            paths[path]["post"]["tags"],
            json!(["whatsapp-api"]),
            "{path}"
        );
    }
}
