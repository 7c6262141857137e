//! Quick replies: admins manage them (shortcut unique whatever the case and the leading `/`),
//! agents read the active ones; bulk actions on ids or on all of them; one media attachment
//! each, checked by its bytes, stored in the blob store and removed with the reply. Another
//! organization's quick replies are unknown (404).

use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{platform::Platform, OrgAdmin, Resp, TestApp};

use crate::tags::wrong_fields;

fn shortcuts(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|q| q["shortcut"].as_str().unwrap())
        .collect()
}

async fn create(app: &TestApp, admin: &OrgAdmin, shortcut: &str) -> String {
    app.post(
        "/api/v1/quick-replies",
        &admin.token,
        json!({"shortcut": shortcut, "title": format!("About {shortcut}"), "content": "Thanks for writing!"}),
    )
    .await
    .expect(201)
    .data()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn all(app: &TestApp, admin: &OrgAdmin) -> Value {
    app.get("/api/v1/quick-replies/all", &admin.token)
        .await
        .expect(200)
        .data()
        .clone()
}

#[tokio::test]
async fn admins_manage_quick_replies_and_agents_read_the_active_ones() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Replies Co").await;
    let (_, supervisor) = app.create_user(&admin, "SUPERVISOR").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;

    let r = app
        .post(
            "/api/v1/quick-replies",
            &admin.token,
            json!({"shortcut": "/greeting", "title": " Greeting ", "content": "Hello! How can we help?"}),
        )
        .await
        .expect(201);
    let d = r.data();
    assert_eq!(d["shortcut"], "/greeting");
    assert_eq!(d["title"], "Greeting");
    assert_eq!(d["content"], "Hello! How can we help?");
    assert_eq!(d["isActive"], true);
    assert_eq!(d["media"], Value::Null);
    assert!(d["createdAt"].is_string() && d["updatedAt"].is_string());
    let greeting = d["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/v1/quick-replies",
            &admin.token,
            json!({"shortcut": "hours", "title": "Hours", "content": "9 to 5", "isActive": false}),
        )
        .await
        .expect(201);
    let hours = r.data()["id"].as_str().unwrap().to_string();

    // A shortcut is one whatever its case and its leading slash.
    for taken in ["/GREETING", "greeting"] {
        let r = app
            .post(
                "/api/v1/quick-replies",
                &admin.token,
                json!({"shortcut": taken, "title": "Again", "content": "Again"}),
            )
            .await
            .expect(409);
        assert!(r.body["detail"]
            .as_str()
            .unwrap()
            .contains("already exists"));
    }

    // Bad input names every wrong field and stores nothing.
    let r = app
        .post(
            "/api/v1/quick-replies",
            &admin.token,
            json!({"shortcut": "has space", "title": " ", "content": ""}),
        )
        .await
        .expect(422);
    assert_eq!(
        wrong_fields(&r),
        ["body.shortcut", "body.title", "body.content"]
    );
    let r = app
        .post("/api/v1/quick-replies", &admin.token, json!({}))
        .await
        .expect(422);
    let fields = wrong_fields(&r);
    for field in ["body.shortcut", "body.title", "body.content"] {
        assert!(fields.contains(&field.to_string()), "{}", r.body);
    }
    let r = app
        .post(
            "/api/v1/quick-replies",
            &admin.token,
            json!({"shortcut": "/", "title": "t".repeat(101), "content": "c".repeat(4097)}),
        )
        .await
        .expect(422);
    assert_eq!(
        wrong_fields(&r),
        ["body.shortcut", "body.title", "body.content"]
    );
    let r = app
        .post(
            "/api/v1/quick-replies",
            &admin.token,
            json!({"shortcut": format!("/{}", "a".repeat(33)), "title": "T", "content": "C"}),
        )
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.shortcut"]);
    assert_eq!(shortcuts(&all(&app, &admin).await), ["/greeting", "hours"]);

    // Agents (and supervisors) read the active ones only, and manage nothing.
    let r = app.get("/api/v1/quick-replies", &agent).await.expect(200);
    assert_eq!(shortcuts(r.data()), ["/greeting"]);
    app.get("/api/v1/quick-replies/all", &agent)
        .await
        .expect(403);
    for token in [&agent, &supervisor] {
        app.post(
            "/api/v1/quick-replies",
            token,
            json!({"shortcut": "mine", "title": "Mine", "content": "Mine"}),
        )
        .await
        .expect(403);
        app.patch(
            &format!("/api/v1/quick-replies/{greeting}"),
            token,
            json!({"title": "Mine"}),
        )
        .await
        .expect(403);
        app.delete(&format!("/api/v1/quick-replies/{greeting}"), token)
            .await
            .expect(403);
    }

    // PATCH changes only what it is given.
    let r = app
        .patch(
            &format!("/api/v1/quick-replies/{hours}"),
            &admin.token,
            json!({"isActive": true}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["isActive"], true);
    assert_eq!(r.data()["title"], "Hours");
    assert_eq!(r.data()["content"], "9 to 5");
    let r = app.get("/api/v1/quick-replies", &agent).await.expect(200);
    assert_eq!(shortcuts(r.data()), ["/greeting", "hours"]);
    let r = app
        .patch(
            &format!("/api/v1/quick-replies/{hours}"),
            &admin.token,
            json!({"title": "", "shortcut": "a b"}),
        )
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.shortcut", "body.title"]);
    app.patch(
        &format!("/api/v1/quick-replies/{hours}"),
        &admin.token,
        json!({"shortcut": "Greeting"}),
    )
    .await
    .expect(409);
    let r = app
        .patch(
            &format!("/api/v1/quick-replies/{hours}"),
            &admin.token,
            json!({"shortcut": "/opening-hours", "content": "9 to 6"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["shortcut"], "/opening-hours");
    assert_eq!(r.data()["content"], "9 to 6");
    assert_eq!(r.data()["title"], "Hours");

    // Another organization sees none of them and changes none of them.
    let other = app.register_org("Other Replies Co").await;
    let r = app
        .get("/api/v1/quick-replies/all", &other.token)
        .await
        .expect(200);
    assert_eq!(r.data(), &json!([]));
    app.patch(
        &format!("/api/v1/quick-replies/{hours}"),
        &other.token,
        json!({"title": "Stolen"}),
    )
    .await
    .expect(404);
    app.delete(&format!("/api/v1/quick-replies/{hours}"), &other.token)
        .await
        .expect(404);
    let r = app
        .post(
            "/api/v1/quick-replies/bulk",
            &other.token,
            json!({"action": "delete", "selection": {"mode": "ids", "ids": [hours, greeting]}}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 0);
    // ...and may use the same shortcuts.
    create(&app, &other, "/greeting").await;

    app.patch(
        "/api/v1/quick-replies/not-a-uuid",
        &admin.token,
        json!({"title": "X"}),
    )
    .await
    .expect(404);
    app.delete(&format!("/api/v1/quick-replies/{hours}"), &admin.token)
        .await
        .expect(204);
    app.delete(&format!("/api/v1/quick-replies/{hours}"), &admin.token)
        .await
        .expect(404);
    assert_eq!(shortcuts(&all(&app, &admin).await), ["/greeting"]);
}

#[tokio::test]
async fn bulk_actions_apply_to_the_selected_ids_or_to_all() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Bulk Replies Co").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    let a = create(&app, &admin, "a").await;
    let b = create(&app, &admin, "b").await;
    create(&app, &admin, "c").await;
    create(&app, &admin, "d").await;
    let bulk = |body: Value| {
        let app = &app;
        let token = admin.token.clone();
        async move { app.post("/api/v1/quick-replies/bulk", &token, body).await }
    };
    let active = || async {
        let r = app.get("/api/v1/quick-replies", &agent).await.expect(200);
        shortcuts(r.data())
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let r = bulk(json!({"action": "deactivate", "selection": {"mode": "ids", "ids": [a, b]}}))
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 2);
    assert_eq!(active().await, ["c", "d"]);
    // Already inactive: nothing changes.
    let r = bulk(json!({"action": "deactivate", "selection": {"mode": "ids", "ids": [a]}}))
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 0);
    let r = bulk(json!({"action": "activate", "selection": {"mode": "all"}}))
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 2);
    assert_eq!(active().await, ["a", "b", "c", "d"]);

    // Bad input names every wrong field and changes nothing.
    let r = bulk(json!({"action": "archive", "selection": {"mode": "ids", "ids": []}}))
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.action", "body.selection.ids"]);
    let r = bulk(json!({"action": "delete", "selection": {"mode": "some", "ids": [a]}}))
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.selection.mode"]);
    assert_eq!(r.body["detail"][0]["type"], "enum");
    let r = bulk(json!({"action": "delete", "selection": {"mode": "all", "ids": [a]}}))
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.selection.ids"]);
    let r = bulk(json!({"action": "delete", "selection": {"mode": "ids", "ids": ["nope"]}}))
        .await
        .expect(422);
    assert_eq!(wrong_fields(&r), ["body.selection.ids.0"]);
    app.post(
        "/api/v1/quick-replies/bulk",
        &agent,
        json!({"action": "delete", "selection": {"mode": "all"}}),
    )
    .await
    .expect(403);
    assert_eq!(active().await, ["a", "b", "c", "d"]);

    let r =
        bulk(json!({"action": "delete", "selection": {"mode": "ids", "ids": [a, Uuid::new_v4()]}}))
            .await
            .expect(200);
    assert_eq!(r.data()["affected"], 1);
    assert_eq!(shortcuts(&all(&app, &admin).await), ["b", "c", "d"]);
    let r = bulk(json!({"action": "delete", "selection": {"mode": "all"}}))
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 3);
    assert_eq!(all(&app, &admin).await, json!([]));
}

async fn upload(app: &TestApp, token: &str, id: &str, part: reqwest::multipart::Part) -> Resp {
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = app
        .client
        .post(format!("{}/api/v1/quick-replies/{id}/media", app.base_url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    TestApp::read(r).await
}

fn file(bytes: Vec<u8>, name: &str, mime: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap()
}

/// A tiny PNG: the signature, then an IHDR chunk.
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
    ]);
    bytes
}

/// The attachment files the organization has in the blob store.
fn stored_files(p: &Platform, admin: &OrgAdmin) -> usize {
    std::fs::read_dir(
        p.blob_dir
            .join(admin.org_id.to_string())
            .join("quick-replies"),
    )
    .map_or(0, |dir| dir.count())
}

#[tokio::test]
async fn media_is_checked_by_its_bytes_stored_replaced_and_removed() {
    let p = Platform::start_without_worker().await;
    let app = &p.app;
    let admin = app.register_org("Media Replies Co").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    let id = create(app, &admin, "/menu").await;

    let png = png();
    let r = upload(
        app,
        &admin.token,
        &id,
        file(png.clone(), "menu.png", "image/png"),
    )
    .await
    .expect(200);
    assert_eq!(
        r.data()["media"],
        json!({"mediaType": "image", "mimeType": "image/png", "fileName": "menu.png", "size": png.len()})
    );
    assert_eq!(stored_files(&p, &admin), 1);
    let r = app.get("/api/v1/quick-replies", &agent).await.expect(200);
    assert_eq!(r.data()[0]["media"]["fileName"], "menu.png");

    // Declared PNG, really text; a type no message can carry; no file at all; too large.
    let r = upload(
        app,
        &admin.token,
        &id,
        file(b"not an image".to_vec(), "menu.png", "image/png"),
    )
    .await
    .expect(422);
    assert_eq!(wrong_fields(&r), ["body.file"]);
    let r = upload(
        app,
        &admin.token,
        &id,
        file(b"PK\x03\x04zip".to_vec(), "menu.zip", "application/zip"),
    )
    .await
    .expect(422);
    assert_eq!(wrong_fields(&r), ["body.file"]);
    let form = reqwest::multipart::Form::new().text("caption", "no file");
    let r = app
        .client
        .post(format!("{}/api/v1/quick-replies/{id}/media", app.base_url))
        .bearer_auth(&admin.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let r = TestApp::read(r).await.expect(422);
    assert_eq!(wrong_fields(&r), ["body.file"]);
    let mut big = png.clone();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let r = upload(app, &admin.token, &id, file(big, "big.png", "image/png"))
        .await
        .expect(413);
    assert!(r.body["detail"].is_string());
    // None of that changed the attachment or left a file behind.
    let r = app.get("/api/v1/quick-replies", &agent).await.expect(200);
    assert_eq!(r.data()[0]["media"]["fileName"], "menu.png");
    assert_eq!(stored_files(&p, &admin), 1);

    // Only admins attach, and only to their organization's replies.
    upload(app, &agent, &id, file(png.clone(), "menu.png", "image/png"))
        .await
        .expect(403);
    let other = app.register_org("Other Media Co").await;
    upload(
        app,
        &other.token,
        &id,
        file(png.clone(), "menu.png", "image/png"),
    )
    .await
    .expect(404);
    app.delete(&format!("/api/v1/quick-replies/{id}/media"), &other.token)
        .await
        .expect(404);
    let unknown = Uuid::new_v4();
    upload(
        app,
        &admin.token,
        &unknown.to_string(),
        file(png.clone(), "menu.png", "image/png"),
    )
    .await
    .expect(404);
    assert_eq!(stored_files(&p, &admin), 1);

    // Replacing the attachment removes the old file.
    let pdf = b"%PDF-1.7\n%menu\n".to_vec();
    let r = upload(
        app,
        &admin.token,
        &id,
        file(pdf.clone(), "menu.pdf", "application/pdf"),
    )
    .await
    .expect(200);
    assert_eq!(r.data()["media"]["mediaType"], "document");
    assert_eq!(r.data()["media"]["size"], pdf.len());
    assert_eq!(stored_files(&p, &admin), 1);

    // Removing it removes the file; removing none is fine.
    let r = app
        .delete(&format!("/api/v1/quick-replies/{id}/media"), &admin.token)
        .await
        .expect(200);
    assert_eq!(r.data()["media"], Value::Null);
    assert_eq!(stored_files(&p, &admin), 0);
    app.delete(&format!("/api/v1/quick-replies/{id}/media"), &admin.token)
        .await
        .expect(200);

    // Deleting a reply, alone or in bulk, removes its file.
    upload(
        app,
        &admin.token,
        &id,
        file(png.clone(), "menu.png", "image/png"),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/v1/quick-replies/{id}"), &admin.token)
        .await
        .expect(204);
    assert_eq!(stored_files(&p, &admin), 0);
    let second = create(app, &admin, "/prices").await;
    upload(
        app,
        &admin.token,
        &second,
        file(png, "prices.png", "image/png"),
    )
    .await
    .expect(200);
    assert_eq!(stored_files(&p, &admin), 1);
    app.post(
        "/api/v1/quick-replies/bulk",
        &admin.token,
        json!({"action": "delete", "selection": {"mode": "all"}}),
    )
    .await
    .expect(200);
    assert_eq!(stored_files(&p, &admin), 0);
}
