//! WhatsApp API dialect: sending (`POST /api/v1/whatsapp/messages`, `.../template`,
//! `.../media`, `.../interactive`), read receipts (`.../messages/{message_id}/read`) and media
//! uploads (`POST /api/v1/whatsapp/media`), end to end against the simulator: the same queue,
//! 24-hour rule and idempotency as `/api/v1`, and each message once in the `/api/v1`
//! conversation.

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::TemplateSpec;
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin, Resp,
};

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
    send: String,
}

async fn setup() -> Setup {
    let p = Platform::start().await;
    let admin = p.app.register_org("WA Send Co").await;
    let number = p.connect_number(admin.org_id).await;
    let send = p.app.create_key(&admin, &["whatsapp:send"]).await;
    Setup {
        p,
        admin,
        number,
        send,
    }
}

fn customer() -> String {
    format!("1415{:07}", Uuid::new_v4().as_u128() % 10_000_000)
}

/// The customer writes (`minutes_ago`); returns (conversation id, inbound wamid).
async fn customer_writes(s: &Setup, from: &str, minutes_ago: i64) -> (Uuid, String) {
    let sent = s.p.customer_sends(
        &s.number,
        json!({"from": from, "profile_name": "Cust", "type": "text", "body": "hi",
               "timestamp": Utc::now().timestamp() - minutes_ago * 60}),
    );
    let pool = s.p.app.db.pool.clone();
    let wamid = sent.wamid.clone();
    wait_for("inbound stored", || {
        let pool = pool.clone();
        let wamid = wamid.clone();
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
    let conv: Uuid = sqlx::query_scalar("SELECT conversation_id FROM messages WHERE wamid = $1")
        .bind(&sent.wamid)
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    if minutes_ago >= 24 * 60 {
        s.p.sim
            .state()
            .close_window(&s.number.phone_number_id, from)
            .unwrap();
    }
    (conv, sent.wamid)
}

async fn post(s: &Setup, path: &str, key: &str, body: Value) -> Resp {
    s.p.app
        .post(&format!("/api/v1/whatsapp{path}"), key, body)
        .await
}

async fn wait_accepted(s: &Setup, to: &str, kind: &str, n: usize) {
    wait_for(&format!("{n} {kind} accepted for {to}"), || async {
        s.p.accepted_to(to, kind) >= n
    })
    .await;
}

/// The `/api/v1` conversation's messages with this id.
async fn in_conversation(s: &Setup, conv: &str, id: &str) -> usize {
    let r =
        s.p.app
            .get(
                &format!("/api/v1/conversations/{conv}/messages?limit=100"),
                &s.admin.token,
            )
            .await
            .expect(200);
    r.data()
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == id)
        .count()
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
async fn a_text_reaches_meta_and_shows_once_in_the_api_v1_conversation() {
    let s = setup().await;
    let to = customer();
    let (conv, _) = customer_writes(&s, &to, 5).await;
    // The seed's body.
    let r = post(
        &s,
        "/messages",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": format!("+{to}"), "text": "Hello from the API"}),
    )
    .await
    .expect(202);
    assert!(r.body.get("data").is_none(), "plain object: {}", r.body);
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["wamid"], Value::Null);
    assert_eq!(r.body["conversation_id"], conv.to_string());
    assert_eq!(r.body["to"], to.as_str());
    assert_eq!(r.body["type"], "text");
    let id = r.body["id"].as_str().unwrap().to_string();
    wait_accepted(&s, &to, "text", 1).await;
    assert_eq!(in_conversation(&s, &conv.to_string(), &id).await, 1);
    let r =
        s.p.app
            .get(
                &format!("/api/v1/conversations/{conv}/messages"),
                &s.admin.token,
            )
            .await;
    let m = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(m["direction"], "OUTBOUND");
    assert_eq!(m["content"]["body"], "Hello from the API");
    // Only one conversation with that customer.
    assert_eq!(
        s.p.count(&format!(
            "SELECT count(*) FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = '{to}'"
        ))
        .await,
        1
    );
    assert_eq!(s.p.accepted_to(&to, "text"), 1);
}

#[tokio::test]
async fn a_template_opens_a_conversation_outside_the_window_with_its_variables() {
    let s = setup().await;
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "order_update".into(),
                language: Some("en_US".into()),
                body: Some("Hi {{1}}, order {{2}} shipped".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let to = customer();
    // Nobody wrote: a text is refused (template required), a template goes out.
    let r = post(
        &s,
        "/messages",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": format!("+{to}"), "text": "Hi"}),
    )
    .await
    .expect(422);
    let msg = r.body["detail"][0]["msg"].as_str().unwrap();
    assert!(msg.contains("template"), "{msg}");
    assert_eq!(
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        0
    );
    let r = post(
        &s,
        "/messages/template",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": format!("+{to}"),
               "template": "order_update", "language": "en_US", "components": ["Ana", "A-42"]}),
    )
    .await
    .expect(202);
    assert_eq!(r.body["type"], "template");
    let id = r.body["id"].as_str().unwrap().to_string();
    let conv = r.body["conversation_id"].as_str().unwrap().to_string();
    wait_accepted(&s, &to, "template", 1).await;
    let request: Value = sqlx::query_scalar("SELECT request FROM messages WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        request["template"]["components"],
        json!([{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-42"}]}])
    );
    assert_eq!(in_conversation(&s, &conv, &id).await, 1);
    // Cloud API components are passed as they are.
    let r = post(
        &s,
        "/messages/template",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "template": "order_update",
               "language": "en_US",
               "components": [{"type": "body", "parameters": [{"type": "text", "text": "Bo"}, {"type": "text", "text": "B-7"}]}]}),
    )
    .await
    .expect(202);
    assert_eq!(r.body["conversation_id"], conv.as_str());
    wait_accepted(&s, &to, "template", 2).await;
}

#[tokio::test]
async fn the_24_hour_rule_applies_to_every_free_form_type() {
    let s = setup().await;
    let to = customer();
    customer_writes(&s, &to, 25 * 60).await;
    let pn = s.number.phone_number_id.clone();
    for (path, body) in [
        (
            "/messages",
            json!({"phone_number_id": pn, "to": to, "text": "late"}),
        ),
        (
            "/messages/media",
            json!({"phone_number_id": pn, "to": to, "type": "image", "media_id": "https://example.com/a.png"}),
        ),
        (
            "/messages/interactive",
            json!({"phone_number_id": pn, "to": to, "interactive": {"type": "button", "body": {"text": "Pick"},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}}),
        ),
    ] {
        let r = post(&s, path, &s.send, body).await.expect(422);
        let msg = r.body["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains("template"), "{path}: {msg}");
        assert_eq!(r.body["detail"][0]["type"], "template_required");
    }
    assert_eq!(
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        0
    );
}

#[tokio::test]
async fn media_and_interactive_messages_reach_meta() {
    let s = setup().await;
    let to = customer();
    let (conv, _) = customer_writes(&s, &to, 1).await;
    let pn = s.number.phone_number_id.clone();
    let r = post(
        &s,
        "/messages/media",
        &s.send,
        json!({"phone_number_id": pn, "to": to, "type": "image", "media_id": "https://example.com/cat.png", "caption": "A cat"}),
    )
    .await
    .expect(202);
    let image = r.body["id"].as_str().unwrap().to_string();
    let r = post(
        &s,
        "/messages/interactive",
        &s.send,
        json!({"phone_number_id": pn, "to": to, "interactive": {"type": "button", "body": {"text": "Continue?"},
               "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                      {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}}),
    )
    .await
    .expect(202);
    let interactive = r.body["id"].as_str().unwrap().to_string();
    wait_accepted(&s, &to, "image", 1).await;
    wait_accepted(&s, &to, "interactive", 1).await;
    assert_eq!(in_conversation(&s, &conv.to_string(), &image).await, 1);
    assert_eq!(
        in_conversation(&s, &conv.to_string(), &interactive).await,
        1
    );
    // An uploaded media id: sent as an id.
    let r = post(
        &s,
        "/messages/media",
        &s.send,
        json!({"phone_number_id": pn, "to": to, "type": "document", "media_id": "123456789", "filename": "a.pdf"}),
    )
    .await
    .expect(202);
    let request: Value = sqlx::query_scalar("SELECT request FROM messages WHERE id = $1::uuid")
        .bind(r.body["id"].as_str().unwrap())
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        request["document"],
        json!({"id": "123456789", "filename": "a.pdf"})
    );
    // Interactive limits are /api/v1's: four buttons are too many.
    let buttons: Vec<Value> = (1..=4)
        .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("B{i}")}}))
        .collect();
    let r = post(
        &s,
        "/messages/interactive",
        &s.send,
        json!({"phone_number_id": pn, "to": to, "interactive": {"type": "button", "body": {"text": "?"},
               "action": {"buttons": buttons}}}),
    )
    .await
    .expect(422);
    assert_eq!(
        locs(&r),
        vec![json!(["body", "interactive.action.buttons"])]
    );
}

#[tokio::test]
async fn validation_names_snake_case_fields_and_foreign_numbers_are_refused() {
    let s = setup().await;
    let other = s.p.app.register_org("Other Co").await;
    let theirs = s.p.connect_number(other.org_id).await;
    let to = customer();
    let r = post(&s, "/messages", &s.send, json!({})).await.expect(422);
    assert_eq!(
        locs(&r),
        vec![
            json!(["body", "phone_number_id"]),
            json!(["body", "to"]),
            json!(["body", "text"])
        ]
    );
    let r = post(
        &s,
        "/messages",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": "not a number", "text": "x"}),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "to"])]);
    let r = post(
        &s,
        "/messages/media",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "type": "sticker"}),
    )
    .await
    .expect(422);
    assert_eq!(
        locs(&r),
        vec![json!(["body", "type"]), json!(["body", "media_id"])]
    );
    let r = post(
        &s,
        "/messages/template",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "template": "Bad Name"}),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "template"])]);
    // Without `language`, the number's template of that name gives it; there is none here.
    let r = post(
        &s,
        "/messages/template",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "template": "unknown_one"}),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "language"])]);
    // Another organization's number, an unknown one: 422 naming phone_number_id.
    for pn in [theirs.phone_number_id.as_str(), "999999999999"] {
        let r = post(
            &s,
            "/messages/template",
            &s.send,
            json!({"phone_number_id": pn, "to": to, "template": "hello", "language": "en_US"}),
        )
        .await
        .expect(422);
        assert_eq!(locs(&r), vec![json!(["body", "phone_number_id"])]);
    }
    assert_eq!(s.p.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(s.p.count("SELECT count(*) FROM conversations").await, 0);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_message() {
    let s = setup().await;
    let to = customer();
    customer_writes(&s, &to, 1).await;
    let body = json!({"phone_number_id": s.number.phone_number_id, "to": to, "text": "once"});
    let send = |b: Value, key: &'static str| {
        let s = &s;
        async move {
            let res =
                s.p.app
                    .client
                    .post(format!("{}/api/v1/whatsapp/messages", s.p.app.base_url))
                    .bearer_auth(&s.send)
                    .header("Idempotency-Key", key)
                    .json(&b)
                    .send()
                    .await
                    .unwrap();
            wharf_tests::TestApp::read(res).await
        }
    };
    let first = send(body.clone(), "wa-key-1").await.expect(202);
    let again = send(body.clone(), "wa-key-1").await.expect(202);
    assert_eq!(first.body["id"], again.body["id"]);
    send(
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "text": "other"}),
        "wa-key-1",
    )
    .await
    .expect(409);
    wait_accepted(&s, &to, "text", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.p.accepted_to(&to, "text"), 1);
}

#[tokio::test]
async fn read_marks_an_inbound_message_by_id_or_wamid() {
    let s = setup().await;
    let to = customer();
    let (conv, wamid) = customer_writes(&s, &to, 1).await;
    let r = post(&s, &format!("/messages/{wamid}/read"), &s.send, json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["wamid"], wamid.as_str());
    assert_eq!(r.body["conversation_id"], conv.to_string());
    let id = r.body["id"].as_str().unwrap().to_string();
    let reads = || {
        s.p.sim
            .state()
            .received(&Default::default())
            .iter()
            .filter(|x| x.kind == "read")
            .count()
    };
    wait_for("read receipt at Meta", || async { reads() >= 1 }).await;
    assert_eq!(
        s.p.count(&format!(
            "SELECT unread_count::bigint FROM conversations WHERE id = '{conv}'"
        ))
        .await,
        0
    );
    post(&s, &format!("/messages/{id}/read"), &s.send, json!({}))
        .await
        .expect(200);
    // Unknown and another organization's messages are 404; an outbound one is a 422.
    post(
        &s,
        &format!("/messages/{}/read", Uuid::new_v4()),
        &s.send,
        json!({}),
    )
    .await
    .expect(404);
    post(&s, "/messages/wamid.unknown/read", &s.send, json!({}))
        .await
        .expect(404);
    let other = s.p.app.register_org("Other Co").await;
    let other_key = s.p.app.create_key(&other, &["whatsapp:send"]).await;
    post(
        &s,
        &format!("/messages/{wamid}/read"),
        &other_key,
        json!({}),
    )
    .await
    .expect(404);
    let sent = post(
        &s,
        "/messages",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "text": "hi"}),
    )
    .await
    .expect(202);
    let r = post(
        &s,
        &format!("/messages/{}/read", sent.body["id"].as_str().unwrap()),
        &s.send,
        json!({}),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec![json!(["path", "message_id"])]);
}

fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend_from_slice(&[0u8; 64]);
    b
}

fn form(bytes: Vec<u8>, mime: &str, phone_number_id: Option<&str>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("photo.png")
        .mime_str(mime)
        .unwrap();
    let f = reqwest::multipart::Form::new().part("file", part);
    match phone_number_id {
        Some(p) => f.text("phone_number_id", p.to_string()),
        None => f,
    }
}

#[tokio::test]
async fn media_uploads_to_meta_and_returns_its_media_id() {
    let s = setup().await;
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                form(png(), "image/png", None),
            )
            .await
            .expect(200);
    let media_id = r.body["media_id"].as_str().unwrap().to_string();
    assert!(!media_id.is_empty());
    assert_eq!(r.body["mime_type"], "image/png");
    assert_eq!(r.body["phone_number_id"], s.number.phone_number_id.as_str());
    // The id sends.
    let to = customer();
    customer_writes(&s, &to, 1).await;
    post(
        &s,
        "/messages/media",
        &s.send,
        json!({"phone_number_id": s.number.phone_number_id, "to": to, "type": "image", "media_id": media_id}),
    )
    .await
    .expect(202);
    wait_accepted(&s, &to, "image", 1).await;

    // Content that is not what it claims, a type WhatsApp does not send, no file.
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                form(b"plain text, not a png".to_vec(), "image/png", None),
            )
            .await
            .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "file"])]);
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                reqwest::multipart::Form::new()
                    .text("phone_number_id", s.number.phone_number_id.clone()),
            )
            .await
            .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "file"])]);
    // Meta's limit for the type: images are at most 5 MB.
    let mut big = png();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                form(big, "image/png", None),
            )
            .await;
    assert_eq!(r.status, 413, "{}", r.body);
    // Several numbers: phone_number_id is needed, and must be the organization's.
    let second = s.p.connect_number(s.admin.org_id).await;
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                form(png(), "image/png", None),
            )
            .await
            .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "phone_number_id"])]);
    s.p.app
        .post_multipart(
            "/api/v1/whatsapp/media",
            &s.send,
            form(png(), "image/png", Some(&second.phone_number_id)),
        )
        .await
        .expect(200);
    let other = s.p.app.register_org("Other Co").await;
    let theirs = s.p.connect_number(other.org_id).await;
    let r =
        s.p.app
            .post_multipart(
                "/api/v1/whatsapp/media",
                &s.send,
                form(png(), "image/png", Some(&theirs.phone_number_id)),
            )
            .await
            .expect(422);
    assert_eq!(locs(&r), vec![json!(["body", "phone_number_id"])]);
}

#[tokio::test]
async fn scope_matrix() {
    let s = setup().await;
    let to = customer();
    let (_, wamid) = customer_writes(&s, &to, 1).await;
    let mut keys = Vec::new();
    for scope in ["whatsapp:read", "whatsapp:write", "whatsapp:send", "admin"] {
        keys.push((scope, s.p.app.create_key(&s.admin, &[scope]).await));
    }
    let pn = s.number.phone_number_id.clone();
    let endpoints: Vec<(String, Value)> = vec![
        (
            "/messages".into(),
            json!({"phone_number_id": pn, "to": to, "text": "hi"}),
        ),
        (
            "/messages/template".into(),
            json!({"phone_number_id": pn, "to": to, "template": "hello_world", "language": "en_US"}),
        ),
        (
            "/messages/media".into(),
            json!({"phone_number_id": pn, "to": to, "type": "image", "media_id": "https://example.com/a.png"}),
        ),
        (
            "/messages/interactive".into(),
            json!({"phone_number_id": pn, "to": to, "interactive": {"type": "button", "body": {"text": "?"},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}),
        ),
        (format!("/messages/{wamid}/read"), json!({})),
    ];
    for (path, body) in &endpoints {
        for (scope, key) in &keys {
            let r = post(&s, path, key, body.clone()).await;
            if *scope == "whatsapp:send" || *scope == "admin" {
                assert!(
                    r.status == 202 || r.status == 200,
                    "{scope} on {path}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(r.status, 403, "{scope} on {path}: {}", r.body);
                assert!(r.body["detail"].as_str().unwrap().contains("whatsapp:send"));
            }
        }
    }
    for (scope, key) in &keys {
        let r =
            s.p.app
                .post_multipart(
                    "/api/v1/whatsapp/media",
                    key,
                    form(png(), "image/png", None),
                )
                .await;
        let expected = if *scope == "whatsapp:send" || *scope == "admin" {
            200
        } else {
            403
        };
        assert_eq!(r.status, expected, "{scope} on /media: {}", r.body);
    }
    // Without credentials: 401.
    let r =
        s.p.app
            .request(
                Method::POST,
                "/api/v1/whatsapp/messages",
                None,
                Some(json!({})),
            )
            .await;
    assert_eq!(r.status, 401);
}
