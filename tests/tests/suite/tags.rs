//! Tags: supervisors and admins manage the organization's tags (a name unique whatever the
//! case, a `#RRGGBB` colour, suggestions at `/tags/colors`); any agent puts them on and takes
//! them off conversations, which show them in the list and the detail and filter by them.
//! Another organization's tags and conversations are unknown (404).

use reqwest::Method;
use serde_json::{json, Value};
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    Resp, TestApp,
};

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    app.request(Method::PUT, path, Some(token), Some(body))
        .await
}

/// The `loc`s of a 422, as `body.field` strings (the quick reply tests use it too).
pub(crate) fn wrong_fields(r: &Resp) -> Vec<String> {
    r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

async fn create_tag(app: &TestApp, token: &str, name: &str, color: &str) -> String {
    app.post("/api/v1/tags", token, json!({"name": name, "color": color}))
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The customer `wa_id` writes in; returns the id of the conversation that opens.
async fn conversation_with(p: &Platform, token: &str, number: &Number, wa_id: &str) -> String {
    p.customer_sends(
        number,
        json!({"from": wa_id, "type": "text", "body": "hello"}),
    );
    let path = format!("/api/v1/conversations?search={wa_id}");
    wait_for("the customer's conversation", || async {
        p.app.get(&path, token).await.expect(200).data()[0].is_object()
    })
    .await;
    p.app.get(&path, token).await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn supervisors_manage_tags_with_colours_and_unique_names() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Tag Co").await;
    let (_, supervisor) = app.create_user(&admin, "SUPERVISOR").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;

    // The palette, for every role.
    let colors = app.get("/api/v1/tags/colors", &agent).await.expect(200);
    let colors = colors.data().as_array().unwrap();
    assert_eq!(colors.len(), 12);
    assert!(colors.contains(&json!("#EF4444")));
    for c in colors {
        let c = c.as_str().unwrap();
        assert!(
            c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|h| h.is_ascii_hexdigit()),
            "{c}"
        );
    }

    // Colours are stored upper-case.
    let vip = app
        .post(
            "/api/v1/tags",
            &supervisor,
            json!({"name": " VIP ", "color": "#ef4444"}),
        )
        .await
        .expect(201);
    assert_eq!(vip.data()["name"], "VIP");
    assert_eq!(vip.data()["color"], "#EF4444");
    assert!(vip.data()["createdAt"].is_string() && vip.data()["updatedAt"].is_string());
    let vip = vip.data()["id"].as_str().unwrap().to_string();
    let billing = create_tag(&app, &admin.token, "Billing", "#3B82F6").await;

    // Names are unique whatever the case.
    let r = app
        .post(
            "/api/v1/tags",
            &admin.token,
            json!({"name": "vip", "color": "#22C55E"}),
        )
        .await
        .expect(409);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("already exists"));

    // Bad input names every wrong field and stores nothing.
    let r = app
        .post(
            "/api/v1/tags",
            &admin.token,
            json!({"name": "  ", "color": "red"}),
        )
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.name", "body.color"]);
    let r = app
        .post("/api/v1/tags", &admin.token, json!({}))
        .await
        .expect(422);
    let fields = wrong_fields(&r);
    assert!(
        fields.contains(&"body.name".to_string()) && fields.contains(&"body.color".to_string()),
        "{}",
        r.body
    );
    let r = app
        .post(
            "/api/v1/tags",
            &admin.token,
            json!({"name": "x".repeat(51), "color": "#EF44"}),
        )
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.name", "body.color"]);

    // Agents read tags but do not manage them.
    let list = app.get("/api/v1/tags", &agent).await.expect(200);
    assert_eq!(names(list.data()), ["Billing", "VIP"]);
    app.post(
        "/api/v1/tags",
        &agent,
        json!({"name": "Mine", "color": "#22C55E"}),
    )
    .await
    .expect(403);
    put(
        &app,
        &format!("/api/v1/tags/{vip}"),
        &agent,
        json!({"name": "Mine", "color": "#22C55E"}),
    )
    .await
    .expect(403);
    app.delete(&format!("/api/v1/tags/{vip}"), &agent)
        .await
        .expect(403);

    // PUT replaces the name and the colour.
    let r = put(
        &app,
        &format!("/api/v1/tags/{vip}"),
        &supervisor,
        json!({"name": "Gold", "color": "#F59E0B"}),
    )
    .await
    .expect(200);
    assert_eq!(r.data()["name"], "Gold");
    assert_eq!(r.data()["color"], "#F59E0B");
    put(
        &app,
        &format!("/api/v1/tags/{billing}"),
        &admin.token,
        json!({"name": "GOLD", "color": "#3B82F6"}),
    )
    .await
    .expect(409);
    let r = put(
        &app,
        &format!("/api/v1/tags/{billing}"),
        &admin.token,
        json!({"name": "Invoices", "color": "blue"}),
    )
    .await
    .expect(422);
    assert_eq!(wrong_fields(&r), ["body.color"]);
    let list = app.get("/api/v1/tags", &admin.token).await.expect(200);
    assert_eq!(names(list.data()), ["Billing", "Gold"]);

    // Unknown and malformed ids.
    let unknown = "00000000-0000-4000-8000-000000000000";
    put(
        &app,
        &format!("/api/v1/tags/{unknown}"),
        &admin.token,
        json!({"name": "X", "color": "#EF4444"}),
    )
    .await
    .expect(404);
    app.delete("/api/v1/tags/not-a-uuid", &admin.token)
        .await
        .expect(404);

    // Another organization sees none of them and can change none of them.
    let other = app.register_org("Other Tag Co").await;
    let list = app.get("/api/v1/tags", &other.token).await.expect(200);
    assert_eq!(list.data(), &json!([]));
    put(
        &app,
        &format!("/api/v1/tags/{vip}"),
        &other.token,
        json!({"name": "Stolen", "color": "#EF4444"}),
    )
    .await
    .expect(404);
    app.delete(&format!("/api/v1/tags/{vip}"), &other.token)
        .await
        .expect(404);
    // ...and may use the same names.
    create_tag(&app, &other.token, "Gold", "#EF4444").await;

    app.delete(&format!("/api/v1/tags/{vip}"), &supervisor)
        .await
        .expect(204);
    app.delete(&format!("/api/v1/tags/{vip}"), &supervisor)
        .await
        .expect(404);
    let list = app.get("/api/v1/tags", &admin.token).await.expect(200);
    assert_eq!(names(list.data()), ["Billing"]);
}

#[tokio::test]
async fn tagged_conversations_show_their_tags_and_filter_by_them() {
    let p = Platform::start().await;
    let app = &p.app;
    let admin = app.register_org("Tagged Inbox Co").await;
    let number = p.connect_number(admin.org_id).await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    let first = conversation_with(&p, &admin.token, &number, "15557770001").await;
    let second = conversation_with(&p, &admin.token, &number, "15557770002").await;
    let vip = create_tag(app, &admin.token, "VIP", "#EF4444").await;
    let billing = create_tag(app, &admin.token, "Billing", "#3B82F6").await;
    let tags_path = format!("/api/v1/conversations/{first}/tags");

    // Any agent tags; tagging twice is fine.
    let r = app
        .post(&tags_path, &agent, json!({"tagId": vip}))
        .await
        .expect(201);
    assert_eq!(
        r.data(),
        &json!([{"id": vip, "name": "VIP", "color": "#EF4444"}])
    );
    let r = app
        .post(&tags_path, &agent, json!({"tagId": vip}))
        .await
        .expect(200);
    assert_eq!(names(r.data()), ["VIP"]);
    let r = app
        .post(&tags_path, &agent, json!({"tagId": billing}))
        .await
        .expect(201);
    assert_eq!(names(r.data()), ["Billing", "VIP"]);

    // Bad input is a 422 naming the field, and tags nothing.
    let r = app
        .post(&tags_path, &agent, json!({"tagId": "nope"}))
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.tagId"]);
    let r = app.post(&tags_path, &agent, json!({})).await.expect(422);
    assert_eq!(wrong_fields(&r), ["body.tagId"]);

    // The detail and the list show the tags.
    let d = app
        .get(&format!("/api/v1/conversations/{first}"), &agent)
        .await
        .expect(200);
    assert_eq!(
        d.data()["tags"],
        json!([
            {"id": billing, "name": "Billing", "color": "#3B82F6"},
            {"id": vip, "name": "VIP", "color": "#EF4444"},
        ])
    );
    let list = app.get("/api/v1/conversations", &agent).await.expect(200);
    let tags_of = |id: &str| {
        list.data()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["tags"]
            .clone()
    };
    assert_eq!(names(&tags_of(&first)), ["Billing", "VIP"]);
    assert_eq!(tags_of(&second), json!([]));

    // The list and its counts filter by tag.
    let r = app
        .get(&format!("/api/v1/conversations?tagId={vip}"), &agent)
        .await
        .expect(200);
    let ids: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str()]);
    let r = app
        .get(&format!("/api/v1/conversations/counts?tagId={vip}"), &agent)
        .await
        .expect(200);
    assert_eq!(r.data()["all"], 1);
    let r = app
        .get(
            "/api/v1/conversations?tagId=00000000-0000-4000-8000-000000000000",
            &agent,
        )
        .await
        .expect(200);
    assert_eq!(r.data(), &json!([]));
    let r = app
        .get("/api/v1/conversations?tagId=nope", &agent)
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["query.tagId"]);

    // A renamed tag is renamed on its conversations.
    put(
        app,
        &format!("/api/v1/tags/{vip}"),
        &admin.token,
        json!({"name": "Gold", "color": "#F59E0B"}),
    )
    .await
    .expect(200);
    let d = app
        .get(&format!("/api/v1/conversations/{first}"), &agent)
        .await
        .expect(200);
    assert_eq!(names(&d.data()["tags"]), ["Billing", "Gold"]);
    assert_eq!(d.data()["tags"][1]["color"], "#F59E0B");

    // Taking a tag off answers with the remaining ones.
    let r = app
        .delete(&format!("{tags_path}/{billing}"), &agent)
        .await
        .expect(200);
    assert_eq!(names(r.data()), ["Gold"]);

    // Deleting a tag takes it off every conversation.
    app.delete(&format!("/api/v1/tags/{vip}"), &admin.token)
        .await
        .expect(204);
    let d = app
        .get(&format!("/api/v1/conversations/{first}"), &agent)
        .await
        .expect(200);
    assert_eq!(d.data()["tags"], json!([]));
    assert_eq!(p.count("SELECT count(*) FROM conversation_tags").await, 0);
    // The deleted tag is unknown now.
    app.post(&tags_path, &agent, json!({"tagId": vip}))
        .await
        .expect(404);
}

#[tokio::test]
async fn another_organizations_tags_and_conversations_are_unknown() {
    let p = Platform::start().await;
    let app = &p.app;
    let a = app.register_org("Org A Tags").await;
    let b = app.register_org("Org B Tags").await;
    let number = p.connect_number(a.org_id).await;
    let conversation = conversation_with(&p, &a.token, &number, "15557770003").await;
    let tag_a = create_tag(app, &a.token, "Urgent", "#EF4444").await;
    let tag_b = create_tag(app, &b.token, "Urgent", "#EF4444").await;
    let tags_path = format!("/api/v1/conversations/{conversation}/tags");

    // Org B's tag on org A's conversation.
    let r = app
        .post(&tags_path, &a.token, json!({"tagId": tag_b}))
        .await
        .expect(404);
    assert_eq!(r.body["detail"], "Tag not found");
    app.delete(&format!("{tags_path}/{tag_b}"), &a.token)
        .await
        .expect(404);
    // Org A's conversation, seen from org B, with either tag.
    for tag in [&tag_a, &tag_b] {
        let r = app
            .post(&tags_path, &b.token, json!({"tagId": tag}))
            .await
            .expect(404);
        assert_eq!(r.body["detail"], "Conversation not found");
        app.delete(&format!("{tags_path}/{tag}"), &b.token)
            .await
            .expect(404);
    }
    // Malformed ids are unknown too.
    app.post(
        "/api/v1/conversations/not-a-uuid/tags",
        &a.token,
        json!({"tagId": tag_a}),
    )
    .await
    .expect(404);
    app.delete(&format!("{tags_path}/not-a-uuid"), &a.token)
        .await
        .expect(404);
    assert_eq!(p.count("SELECT count(*) FROM conversation_tags").await, 0);

    // Tagged in org A, the conversation still is not in org B's filtered list.
    app.post(&tags_path, &a.token, json!({"tagId": tag_a}))
        .await
        .expect(201);
    let r = app
        .get(&format!("/api/v1/conversations?tagId={tag_a}"), &b.token)
        .await
        .expect(200);
    assert_eq!(r.data(), &json!([]));
    let r = app
        .get(&format!("/api/v1/conversations?tagId={tag_a}"), &a.token)
        .await
        .expect(200);
    assert_eq!(r.data().as_array().unwrap().len(), 1);
}
