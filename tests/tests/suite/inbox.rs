//! The inbox read API: conversations (filters, sorts, cursors, counts, read marking), messages,
//! contacts, tenant isolation and 422s for bad input. Data arrives the real way: the simulator's
//! customers write, webhooks are ingested and processed by the worker.

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin,
};

/// Customers write (phone, name, minutes ago, text); waits until all are processed.
async fn seed(p: &Platform, number: &Number, msgs: &[(&str, &str, i64, &str)]) {
    let before = p.count("SELECT count(*) FROM messages").await;
    for (from, name, minutes_ago, body) in msgs {
        p.customer_sends(
            number,
            json!({"from": from, "profile_name": name, "type": "text", "body": body,
                   "timestamp": Utc::now().timestamp() - minutes_ago * 60}),
        );
    }
    let expected = before + msgs.len() as i64;
    wait_for("messages processed", || async {
        p.count("SELECT count(*) FROM messages").await == expected
    })
    .await;
    p.events_settled().await;
}

fn names(resp: &Value) -> Vec<String> {
    resp["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contact"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn setup() -> (Platform, OrgAdmin, Number) {
    let p = Platform::start().await;
    let org = p.app.register_org("Inbox Co").await;
    let number = p.connect_number(org.org_id).await;
    seed(
        &p,
        &number,
        &[
            ("15550000001", "Alice", 30, "first from alice"),
            ("15550000002", "Bob", 20, "bob here"),
            ("15550000003", "Carol", 10, "carol says hi"),
            ("15550000001", "Alice", 5, "alice again"),
        ],
    )
    .await;
    (p, org, number)
}

#[tokio::test]
async fn conversations_list_with_filters_sorts_and_cursors() {
    let (p, org, _number) = setup().await;
    let t = &org.token;
    let all = p.app.get("/api/v1/conversations", t).await.expect(200);
    assert_eq!(
        names(&all.body),
        ["Alice", "Carol", "Bob"],
        "newest activity first"
    );
    assert_eq!(all.body["nextCursor"], Value::Null);
    let alice = &all.body["data"][0];
    assert_eq!(alice["unreadCount"], 2);
    assert_eq!(alice["lastMessagePreview"], "alice again");
    assert_eq!(alice["lastMessageDirection"], "INBOUND");
    assert_eq!(alice["status"], "OPEN");
    assert_eq!(alice["windowOpen"], true);
    assert_eq!(alice["contact"]["waId"], "15550000001");

    // Cursor pages.
    let page1 = p
        .app
        .get("/api/v1/conversations?limit=2", t)
        .await
        .expect(200);
    assert_eq!(names(&page1.body), ["Alice", "Carol"]);
    let cursor = page1.body["nextCursor"].as_str().unwrap().to_string();
    let page2 = p
        .app
        .get(&format!("/api/v1/conversations?limit=2&cursor={cursor}"), t)
        .await
        .expect(200);
    assert_eq!(names(&page2.body), ["Bob"]);
    assert_eq!(page2.body["nextCursor"], Value::Null);

    let oldest = p
        .app
        .get("/api/v1/conversations?sort=oldest", t)
        .await
        .expect(200);
    assert_eq!(names(&oldest.body), ["Bob", "Carol", "Alice"]);
    let created_new = p
        .app
        .get("/api/v1/conversations?sort=created_newest", t)
        .await
        .expect(200);
    let mut created_old = names(
        &p.app
            .get("/api/v1/conversations?sort=created_oldest", t)
            .await
            .expect(200)
            .body,
    );
    created_old.reverse();
    assert_eq!(names(&created_new.body), created_old);

    // Search by name and by phone.
    let found = p
        .app
        .get("/api/v1/conversations?search=car", t)
        .await
        .expect(200);
    assert_eq!(names(&found.body), ["Carol"]);
    let found = p
        .app
        .get("/api/v1/conversations?search=0000002", t)
        .await
        .expect(200);
    assert_eq!(names(&found.body), ["Bob"]);
    let none = p
        .app
        .get("/api/v1/conversations?search=%25", t)
        .await
        .expect(200);
    assert_eq!(names(&none.body).len(), 0, "wildcards are literal");

    // Read marking, sub-filters and counts.
    let bob_id = page2.body["data"][0]["id"].as_str().unwrap().to_string();
    let read = p
        .app
        .post(
            &format!("/api/v1/conversations/{bob_id}/read"),
            t,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(read.data()["unreadCount"], 0);
    let unread = p
        .app
        .get("/api/v1/conversations?subFilter=unread", t)
        .await
        .expect(200);
    assert_eq!(names(&unread.body), ["Alice", "Carol"]);
    let counts = p
        .app
        .get("/api/v1/conversations/counts", t)
        .await
        .expect(200);
    assert_eq!(
        counts.data(),
        &json!({"all": 3, "unread": 2, "needsAction": 3})
    );
    let needs = p
        .app
        .get(
            "/api/v1/conversations?subFilter=needs_action&sort=waiting_longest",
            t,
        )
        .await
        .expect(200);
    assert_eq!(
        names(&needs.body),
        ["Bob", "Carol", "Alice"],
        "longest waiting customer first"
    );

    // Status and assignment filters.
    let closed = p
        .app
        .get("/api/v1/conversations?status=CLOSED", t)
        .await
        .expect(200);
    assert_eq!(names(&closed.body).len(), 0);
    let open = p
        .app
        .get("/api/v1/conversations/counts?status=OPEN", t)
        .await
        .expect(200);
    assert_eq!(open.data()["all"], 3);
    let unassigned = p
        .app
        .get("/api/v1/conversations?assignedTo=unassigned", t)
        .await
        .expect(200);
    assert_eq!(names(&unassigned.body).len(), 3);
    let mine = p
        .app
        .get("/api/v1/conversations?assignedTo=me", t)
        .await
        .expect(200);
    assert_eq!(names(&mine.body).len(), 0);
    sqlx::query("UPDATE conversations SET assigned_to = $1 WHERE id = $2::uuid")
        .bind(org.user_id)
        .bind(&bob_id)
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    let mine = p
        .app
        .get(
            &format!("/api/v1/conversations?assignedTo={}", org.user_id),
            t,
        )
        .await
        .expect(200);
    assert_eq!(names(&mine.body), ["Bob"]);
}

#[tokio::test]
async fn a_conversation_its_window_and_its_messages_newest_first() {
    let (p, org, number) = setup().await;
    let t = &org.token;
    let list = p
        .app
        .get("/api/v1/conversations?search=Alice", t)
        .await
        .expect(200);
    let id = list.body["data"][0]["id"].as_str().unwrap().to_string();
    let conv = p
        .app
        .get(&format!("/api/v1/conversations/{id}"), t)
        .await
        .expect(200);
    let c = conv.data();
    assert_eq!(c["contact"]["name"], "Alice");
    assert_eq!(c["contact"]["profileName"], "Alice");
    assert_eq!(c["windowOpen"], true);
    let last_inbound: chrono::DateTime<Utc> = c["lastInboundAt"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<Utc> = c["windowExpiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - last_inbound, chrono::Duration::hours(24));

    // Three more from Alice: five in all, paged two at a time, newest first.
    seed(
        &p,
        &number,
        &[
            ("15550000001", "Alice", 3, "m3"),
            ("15550000001", "Alice", 2, "m4"),
            ("15550000001", "Alice", 1, "m5"),
        ],
    )
    .await;
    let mut bodies = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations/{id}/messages?limit=2&cursor={c}"),
            None => format!("/api/v1/conversations/{id}/messages?limit=2"),
        };
        let page = p.app.get(&path, t).await.expect(200);
        for m in page.body["data"].as_array().unwrap() {
            assert_eq!(m["direction"], "INBOUND");
            assert_eq!(m["type"], "text");
            assert_eq!(m["status"], "received");
            assert_eq!(m["conversationId"], json!(id));
            assert!(m["wamid"].as_str().unwrap().starts_with("wamid."));
            bodies.push(m["content"]["body"].as_str().unwrap().to_string());
        }
        cursor = page.body["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        bodies,
        ["m5", "m4", "m3", "alice again", "first from alice"]
    );

    // API keys: whatsapp:read reads but cannot mark read; whatsapp:write can.
    let reader = p.app.create_key(&org, &["whatsapp:read"]).await;
    p.app
        .get(&format!("/api/v1/conversations/{id}/messages"), &reader)
        .await
        .expect(200);
    p.app.get("/api/v1/contacts", &reader).await.expect(200);
    p.app
        .post(
            &format!("/api/v1/conversations/{id}/read"),
            &reader,
            json!({}),
        )
        .await
        .expect(403);
    let writer = p.app.create_key(&org, &["whatsapp:write"]).await;
    p.app
        .get("/api/v1/conversations", &writer)
        .await
        .expect(403);
    let read = p
        .app
        .post(
            &format!("/api/v1/conversations/{id}/read"),
            &writer,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(read.data()["unreadCount"], 0);
    // Any org user (agent) reads the inbox.
    let (_, agent) = p.app.create_user(&org, "AGENT").await;
    p.app
        .get(&format!("/api/v1/conversations/{id}"), &agent)
        .await
        .expect(200);
    p.app
        .request(Method::GET, "/api/v1/conversations", None, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn contacts_are_listed_searched_and_updated() {
    let (p, org, _) = setup().await;
    let t = &org.token;
    let list = p.app.get("/api/v1/contacts", t).await.expect(200);
    let wa_ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["waId"].as_str().unwrap())
        .collect();
    assert_eq!(wa_ids.len(), 3);
    let page = p.app.get("/api/v1/contacts?limit=2", t).await.expect(200);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_string();
    let rest = p
        .app
        .get(&format!("/api/v1/contacts?limit=2&cursor={cursor}"), t)
        .await
        .expect(200);
    assert_eq!(
        page.body["data"].as_array().unwrap().len() + rest.body["data"].as_array().unwrap().len(),
        3
    );
    assert_eq!(rest.body["nextCursor"], Value::Null);

    let bob = p
        .app
        .get("/api/v1/contacts/15550000002", t)
        .await
        .expect(200);
    assert_eq!(bob.data()["profileName"], "Bob");
    assert_eq!(bob.data()["name"], Value::Null);
    assert_eq!(bob.data()["customFields"], json!({}));

    let updated = p
        .app
        .patch(
            "/api/v1/contacts/15550000002",
            t,
            json!({"name": "  Robert Builder ", "category": "VIP"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.data()["name"], "Robert Builder");
    assert_eq!(updated.data()["category"], "VIP");
    // The inbox shows the agent-given name; search finds it.
    let conv = p
        .app
        .get("/api/v1/conversations?search=robert", t)
        .await
        .expect(200);
    assert_eq!(names(&conv.body), ["Robert Builder"]);
    let found = p
        .app
        .get("/api/v1/contacts?search=ROBERT", t)
        .await
        .expect(200);
    assert_eq!(found.body["data"][0]["waId"], "15550000002");
    // Absent fields stay; null clears.
    let cleared = p
        .app
        .patch("/api/v1/contacts/15550000002", t, json!({"name": null}))
        .await
        .expect(200);
    assert_eq!(cleared.data()["name"], Value::Null);
    assert_eq!(cleared.data()["category"], "VIP");
    p.app
        .patch("/api/v1/contacts/15550000002", t, json!({}))
        .await
        .expect(200);
    p.app
        .get("/api/v1/contacts/19999999999", t)
        .await
        .expect(404);
    p.app
        .patch("/api/v1/contacts/19999999999", t, json!({"name": "X"}))
        .await
        .expect(404);
    let reader = p.app.create_key(&org, &["whatsapp:read"]).await;
    p.app
        .patch(
            "/api/v1/contacts/15550000002",
            &reader,
            json!({"name": "X"}),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn another_organization_sees_nothing() {
    let (p, org_a, number) = setup().await;
    p.customer_sends(
        &number,
        json!({"from": "15550000009", "profile_name": "Pic", "type": "image", "image": {"data_base64": "cGljdHVyZQ==", "mime_type": "image/jpeg"}}),
    );
    wait_for("image downloaded", || async {
        p.count("SELECT count(*) FROM messages WHERE media_status = 'downloaded'")
            .await
            == 1
    })
    .await;
    let (conv_id, msg_id): (Uuid, Uuid) =
        sqlx::query_as("SELECT conversation_id, id FROM messages WHERE type = 'image'")
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    // Org A sees its data (and the file).
    p.app
        .get(&format!("/api/v1/conversations/{conv_id}"), &org_a.token)
        .await
        .expect(200);
    let file = p
        .app
        .client
        .get(format!("{}/api/v1/messages/{msg_id}/media", p.app.base_url))
        .bearer_auth(&org_a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"picture");

    let org_b = p.app.register_org("Other Co").await;
    let b = &org_b.token;
    let key_b = p.app.create_key(&org_b, &["admin"]).await;
    for token in [b.as_str(), key_b.as_str()] {
        let list = p.app.get("/api/v1/conversations", token).await.expect(200);
        assert_eq!(list.body["data"], json!([]));
        let counts = p
            .app
            .get("/api/v1/conversations/counts", token)
            .await
            .expect(200);
        assert_eq!(counts.data()["all"], 0);
        let contacts = p
            .app
            .get("/api/v1/contacts?search=Alice", token)
            .await
            .expect(200);
        assert_eq!(contacts.body["data"], json!([]));
        p.app
            .get(&format!("/api/v1/conversations/{conv_id}"), token)
            .await
            .expect(404);
        p.app
            .get(&format!("/api/v1/conversations/{conv_id}/messages"), token)
            .await
            .expect(404);
        p.app
            .post(
                &format!("/api/v1/conversations/{conv_id}/read"),
                token,
                json!({}),
            )
            .await
            .expect(404);
        p.app
            .get("/api/v1/contacts/15550000001", token)
            .await
            .expect(404);
        p.app
            .patch(
                "/api/v1/contacts/15550000001",
                token,
                json!({"name": "Hijack"}),
            )
            .await
            .expect(404);
        p.app
            .get(&format!("/api/v1/messages/{msg_id}/media"), token)
            .await
            .expect(404);
        p.app
            .post(
                &format!("/api/v1/messages/{msg_id}/retry-media"),
                token,
                json!({}),
            )
            .await
            .expect(404);
    }
    // Nothing of org A changed.
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM contacts WHERE wa_id = '15550000001'")
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(name, None);
    assert_eq!(
        p.count("SELECT sum(unread_count) FROM conversations").await,
        5
    );
}

#[tokio::test]
async fn bad_input_is_a_422_in_the_seed_shape() {
    let (p, org, _) = setup().await;
    let t = &org.token;
    let conv = p.app.get("/api/v1/conversations", t).await.expect(200);
    let id = conv.body["data"][0]["id"].as_str().unwrap().to_string();
    let gets = [
        ("/api/v1/conversations?limit=0", "limit"),
        ("/api/v1/conversations?limit=101", "limit"),
        ("/api/v1/conversations?limit=abc", "limit"),
        ("/api/v1/conversations?status=SLEEPING", "status"),
        ("/api/v1/conversations?sort=random", "sort"),
        ("/api/v1/conversations?subFilter=starred", "subFilter"),
        ("/api/v1/conversations?assignedTo=nobody", "assignedTo"),
        ("/api/v1/conversations?cursor=garbage!", "cursor"),
        ("/api/v1/conversations?teamId=x", "teamId"),
        ("/api/v1/conversations/counts?status=nope", "status"),
        ("/api/v1/conversations/counts?assignedTo=1", "assignedTo"),
        ("/api/v1/contacts?limit=-1", "limit"),
        ("/api/v1/contacts?cursor=bm90LWEtY3Vyc29y", "cursor"),
    ];
    for (path, field) in gets {
        let r = p.app.get(path, t).await.expect(422);
        assert_eq!(
            r.body["detail"][0]["loc"],
            json!(["query", field]),
            "{path}: {}",
            r.body
        );
        assert!(r.body["detail"][0]["msg"].is_string());
        assert!(r.body["detail"][0]["type"].is_string());
    }
    for path in [
        format!("/api/v1/conversations/{id}/messages?limit=1000"),
        format!("/api/v1/conversations/{id}/messages?cursor=xyz"),
    ] {
        let r = p.app.get(&path, t).await.expect(422);
        assert_eq!(r.body["detail"][0]["loc"][0], "query");
    }
    // assignedTo=me with an API key: there is no "me".
    let key = p.app.create_key(&org, &["whatsapp:read"]).await;
    let r = p
        .app
        .get("/api/v1/conversations?assignedTo=me", &key)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "assignedTo"]));

    let patches = [
        (json!({"name": 5}), json!(["body", "name"])),
        (json!({"name": ""}), json!(["body", "name"])),
        (json!({"name": "x".repeat(201)}), json!(["body", "name"])),
        (json!({"category": "   "}), json!(["body", "category"])),
        (json!({"nickname": "x"}), json!(["body", "nickname"])),
    ];
    for (body, loc) in patches {
        let r = p
            .app
            .patch("/api/v1/contacts/15550000001", t, body.clone())
            .await
            .expect(422);
        assert_eq!(r.body["detail"][0]["loc"], loc, "{body}: {}", r.body);
    }
    let r = p
        .app
        .post_raw(
            "/api/v1/contacts/15550000001",
            Some(t),
            "application/json",
            "{",
        )
        .await;
    assert_eq!(r.status, 405, "PATCH only");
    let r = p
        .app
        .request(Method::PATCH, "/api/v1/contacts/15550000001", Some(t), None)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "missing");
    let raw = p
        .app
        .client
        .patch(format!("{}/api/v1/contacts/15550000001", p.app.base_url))
        .bearer_auth(t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let r = wharf_tests::TestApp::read(raw).await.expect(422);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");

    // Ids that are not ids are 404s, never 500s.
    for path in [
        "/api/v1/conversations/not-a-uuid",
        "/api/v1/conversations/1/messages",
        "/api/v1/messages/x/media",
    ] {
        p.app.get(path, t).await.expect(404);
    }
    p.app
        .post("/api/v1/conversations/nope/read", t, json!({}))
        .await
        .expect(404);
    p.app
        .post("/api/v1/messages/nope/retry-media", t, json!({}))
        .await
        .expect(404);
    // A text message has no media.
    let text_id: Uuid = sqlx::query_scalar("SELECT id FROM messages LIMIT 1")
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    p.app
        .post(
            &format!("/api/v1/messages/{text_id}/retry-media"),
            t,
            json!({}),
        )
        .await
        .expect(409);
    p.app
        .get(&format!("/api/v1/messages/{text_id}/media"), t)
        .await
        .expect(404);
}

#[tokio::test]
async fn the_inbox_routes_are_in_the_openapi_document() {
    let app = wharf_tests::TestApp::spawn().await;
    let spec = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let paths = spec.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/conversations",
        "/api/v1/conversations/counts",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/conversations/{id}/read",
        "/api/v1/contacts",
        "/api/v1/contacts/{waId}",
        "/api/v1/messages/{id}/retry-media",
        "/api/v1/messages/{id}/media",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
}
