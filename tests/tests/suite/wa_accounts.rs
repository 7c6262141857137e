//! WhatsApp API dialect: connected accounts and numbers (`GET /api/v1/whatsapp/accounts`,
//! `GET /api/v1/whatsapp/phone_numbers`) and a number's bot settings
//! (`POST /api/v1/whatsapp/phone_numbers/{phone_id}/link-bot` and `.../autoreply`), with the
//! seed's bodies: plain snake_case objects, scopes, another organization's ids.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{platform::Platform, Resp, TestApp};

async fn bot_config(p: &Platform, org_id: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO bot_configs (org_id, name) VALUES ($1, $2) RETURNING id")
        .bind(org_id)
        .bind(name)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

async fn call(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Resp {
    app.request(method, path, Some(key), body).await
}

fn locs(r: &Resp) -> Vec<Value> {
    r.body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("validation detail: {}", r.body))
        .iter()
        .map(|d| d["loc"].clone())
        .collect()
}

#[tokio::test]
async fn lists_connected_accounts_and_numbers_as_plain_objects() {
    let p = Platform::start_without_worker().await;
    let admin = p.app.register_org("Numbers Co").await;
    let a = p.connect_number(admin.org_id).await;
    let b = p.connect_number(admin.org_id).await;
    let gone = p.connect_number(admin.org_id).await;
    sqlx::query("UPDATE whatsapp_accounts SET status = 'DISCONNECTED' WHERE id = $1")
        .bind(gone.account_id)
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    let other = p.app.register_org("Other Co").await;
    p.connect_number(other.org_id).await;
    let read = p.app.create_key(&admin, &["whatsapp:read"]).await;

    let r = p
        .app
        .get("/api/v1/whatsapp/accounts", &read)
        .await
        .expect(200);
    assert!(r.body.get("data").is_none(), "no data envelope: {}", r.body);
    assert_eq!(r.body["count"], 2);
    let wabas: Vec<&str> = r.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["waba_id"].as_str().unwrap())
        .collect();
    assert_eq!(wabas, vec![a.waba_id.as_str(), b.waba_id.as_str()]);
    assert_eq!(r.body["accounts"][0]["status"], "CONNECTED");
    assert_eq!(
        r.body["accounts"][0]["phone_number_ids"],
        json!([a.phone_number_id])
    );

    let r = p
        .app
        .get("/api/v1/whatsapp/phone_numbers", &read)
        .await
        .expect(200);
    assert_eq!(r.body["count"], 2);
    let first = &r.body["phone_numbers"][0];
    assert_eq!(first["phone_number_id"], a.phone_number_id.as_str());
    assert_eq!(first["display_phone"], a.display_phone.as_str());
    assert_eq!(first["waba_id"], a.waba_id.as_str());
    assert_eq!(first["status"], "CONNECTED");
    assert_eq!(first["bot_id"], Value::Null);
    assert_eq!(first["autoreply"], true);
    assert_eq!(first["id"], a.account_id.to_string());
    assert_eq!(
        r.body["phone_numbers"][1]["phone_number_id"],
        b.phone_number_id.as_str()
    );
}

#[tokio::test]
async fn link_bot_and_autoreply_set_the_numbers_bot() {
    let p = Platform::start_without_worker().await;
    let admin = p.app.register_org("Bots Co").await;
    let number = p.connect_number(admin.org_id).await;
    let bot = bot_config(&p, admin.org_id, "Sales bot").await;
    let other = p.app.register_org("Other Co").await;
    let other_number = p.connect_number(other.org_id).await;
    let other_bot = bot_config(&p, other.org_id, "Their bot").await;
    let write = p.app.create_key(&admin, &["whatsapp:write"]).await;
    let link = format!(
        "/api/v1/whatsapp/phone_numbers/{}/link-bot",
        number.phone_number_id
    );
    let autoreply = format!(
        "/api/v1/whatsapp/phone_numbers/{}/autoreply",
        number.phone_number_id
    );
    let stored = || async {
        sqlx::query_as::<_, (Option<Uuid>, bool)>(
            "SELECT bot_config_id, ai_autoreply FROM whatsapp_accounts WHERE id = $1",
        )
        .bind(number.account_id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
    };

    // The seed's body.
    let r = p
        .app
        .post(&link, &write, json!({"bot_id": bot}))
        .await
        .expect(200);
    assert!(r.body.get("data").is_none());
    assert_eq!(r.body["bot_id"], bot.to_string());
    assert_eq!(r.body["phone_number_id"], number.phone_number_id.as_str());
    assert_eq!(stored().await, (Some(bot), true));
    let listed = p.app.get("/api/v1/whatsapp/phone_numbers", &write).await;
    // A write-only key cannot list (whatsapp:read).
    assert_eq!(listed.status, 403);

    // Unknown bot, another organization's bot: 422 naming bot_id; nothing changes.
    for id in [Uuid::new_v4(), other_bot] {
        let r = p
            .app
            .post(&link, &write, json!({"bot_id": id}))
            .await
            .expect(422);
        assert_eq!(locs(&r), vec![json!(["body", "bot_id"])]);
    }
    for body in [
        json!({"bot_id": "not-a-uuid"}),
        json!({}),
        json!({"bot_id": 7}),
    ] {
        let r = p.app.post(&link, &write, body).await.expect(422);
        assert_eq!(locs(&r), vec![json!(["body", "bot_id"])]);
    }
    assert_eq!(stored().await, (Some(bot), true));

    // Unlink.
    let r = p
        .app
        .post(&link, &write, json!({"bot_id": null}))
        .await
        .expect(200);
    assert_eq!(r.body["bot_id"], Value::Null);
    assert_eq!(stored().await, (None, true));

    // Autoreply off and on.
    let r = p
        .app
        .post(&autoreply, &write, json!({"enabled": false}))
        .await
        .expect(200);
    assert_eq!(r.body["autoreply"], false);
    assert_eq!(stored().await, (None, false));
    p.app
        .post(&autoreply, &write, json!({"enabled": true}))
        .await
        .expect(200);
    assert_eq!(stored().await, (None, true));
    let r = p.app.post(&autoreply, &write, json!({})).await.expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "enabled"]));

    // Another organization's number, an unknown one: 404, and the other number is untouched.
    for phone_id in [other_number.phone_number_id.as_str(), "999999999999"] {
        p.app
            .post(
                &format!("/api/v1/whatsapp/phone_numbers/{phone_id}/link-bot"),
                &write,
                json!({"bot_id": bot}),
            )
            .await
            .expect(404);
        p.app
            .post(
                &format!("/api/v1/whatsapp/phone_numbers/{phone_id}/autoreply"),
                &write,
                json!({"enabled": false}),
            )
            .await
            .expect(404);
    }
    let theirs: (Option<Uuid>, bool) =
        sqlx::query_as("SELECT bot_config_id, ai_autoreply FROM whatsapp_accounts WHERE id = $1")
            .bind(other_number.account_id)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(theirs, (None, true));
}

#[tokio::test]
async fn scope_matrix() {
    let p = Platform::start_without_worker().await;
    let admin = p.app.register_org("Scopes Co").await;
    let number = p.connect_number(admin.org_id).await;
    let mut keys = Vec::new();
    for scope in ["whatsapp:read", "whatsapp:write", "whatsapp:send", "admin"] {
        keys.push((scope, p.app.create_key(&admin, &[scope]).await));
    }
    let link = format!(
        "/api/v1/whatsapp/phone_numbers/{}/link-bot",
        number.phone_number_id
    );
    let autoreply = format!(
        "/api/v1/whatsapp/phone_numbers/{}/autoreply",
        number.phone_number_id
    );
    let endpoints: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::GET,
            "/api/v1/whatsapp/accounts",
            None,
            "whatsapp:read",
        ),
        (
            Method::GET,
            "/api/v1/whatsapp/phone_numbers",
            None,
            "whatsapp:read",
        ),
        (
            Method::POST,
            &link,
            Some(json!({"bot_id": null})),
            "whatsapp:write",
        ),
        (
            Method::POST,
            &autoreply,
            Some(json!({"enabled": true})),
            "whatsapp:write",
        ),
    ];
    for (method, path, body, needed) in &endpoints {
        for (scope, key) in &keys {
            let r = call(&p.app, method.clone(), path, key, body.clone()).await;
            if scope == needed || *scope == "admin" {
                assert_eq!(r.status, 200, "{scope} on {method} {path}: {}", r.body);
            } else {
                assert_eq!(r.status, 403, "{scope} on {method} {path}: {}", r.body);
                let detail = r.body["detail"].as_str().unwrap();
                assert!(detail.contains(needed), "{detail}");
            }
        }
    }
    // A user session works too, and no credentials is a 401.
    p.app
        .get("/api/v1/whatsapp/phone_numbers", &admin.token)
        .await
        .expect(200);
    let r = p
        .app
        .request(Method::GET, "/api/v1/whatsapp/accounts", None, None)
        .await;
    assert_eq!(r.status, 401);
}

/// The customer `from` writes to `number`; returns the conversation once stored.
async fn conversation_of(p: &Platform, number: &wharf_tests::platform::Number, from: &str) -> Uuid {
    let sent = p.customer_sends(
        number,
        json!({"from": from, "profile_name": "Cust", "type": "text", "body": "hello"}),
    );
    let pool = p.app.db.pool.clone();
    wharf_tests::platform::wait_for("inbound stored", || {
        let pool = pool.clone();
        let wamid = sent.wamid.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages WHERE wamid = $1")
                .bind(wamid)
                .fetch_one(&pool)
                .await
                .unwrap()
                == 1
        }
    })
    .await;
    sqlx::query_scalar("SELECT conversation_id FROM messages WHERE wamid = $1")
        .bind(&sent.wamid)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_linked_bot_takes_the_numbers_new_conversations_unless_autoreply_is_off() {
    let p = Platform::start().await;
    let admin = p.app.register_org("Linked Co").await;
    let number = p.connect_number(admin.org_id).await;
    let bot = bot_config(&p, admin.org_id, "Support bot").await;
    let write = p.app.create_key(&admin, &["whatsapp:write"]).await;
    let base = format!("/api/v1/whatsapp/phone_numbers/{}", number.phone_number_id);
    // The organization has no bot enabled: without a linked bot, conversations are the agents'.
    let conv = conversation_of(&p, &number, "14155550101").await;
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND payload->>'conversation_id' = '{conv}'"
        ))
        .await,
        0
    );
    p.app
        .post(&format!("{base}/link-bot"), &write, json!({"bot_id": bot}))
        .await
        .expect(200);
    let conv = conversation_of(&p, &number, "14155550102").await;
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND payload->>'conversation_id' = '{conv}'"
        ))
        .await,
        1,
        "the linked bot answers the number's new conversation"
    );
    p.app
        .post(
            &format!("{base}/autoreply"),
            &write,
            json!({"enabled": false}),
        )
        .await
        .expect(200);
    let conv = conversation_of(&p, &number, "14155550103").await;
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND payload->>'conversation_id' = '{conv}'"
        ))
        .await,
        0,
        "autoreply off keeps the bot away"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_these_operations_under_the_whatsapp_api_tag() {
    let app = TestApp::spawn().await;
    let doc = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200)
        .body;
    for (method, path) in [
        ("get", "/api/v1/whatsapp/accounts"),
        ("get", "/api/v1/whatsapp/phone_numbers"),
        ("post", "/api/v1/whatsapp/phone_numbers/{phone_id}/link-bot"),
        (
            "post",
            "/api/v1/whatsapp/phone_numbers/{phone_id}/autoreply",
        ),
        ("post", "/api/v1/whatsapp/messages"),
        ("post", "/api/v1/whatsapp/messages/template"),
        ("post", "/api/v1/whatsapp/messages/media"),
        ("post", "/api/v1/whatsapp/messages/interactive"),
        ("post", "/api/v1/whatsapp/messages/{message_id}/read"),
        ("post", "/api/v1/whatsapp/media"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["whatsapp-api"]), "{method} {path}: {op}");
    }
}
