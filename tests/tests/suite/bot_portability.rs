//! A bot config taken elsewhere and back, through `/bot-config`: provider presets (masked keys,
//! names unique per organization), snapshots restored onto their config, exports of each tier
//! that never hold a key, imports (JSON or ZIP) into another organization that reproduce the
//! config and its intents, and bad files refused whole, naming every problem.

use reqwest::{multipart, Method};
use serde_json::{json, Value};
use wharf_tests::{OrgAdmin, Resp, TestApp};

mod files;
mod presets;

const KEY: &str = "sk-live-portable-0123456789";
const PRESET_KEY: &str = "sk-preset-abcdef-9876543210";

async fn call(
    app: &TestApp,
    org: &OrgAdmin,
    method: Method,
    path: impl std::fmt::Display,
    body: Option<Value>,
) -> Resp {
    app.request(method, &format!("/api/v1{path}"), Some(&org.token), body)
        .await
}

/// An organization with an active config (key, prompt with two versions, settings), a team, a
/// tag and three intents (an answer, a hand-over to the team, a tag).
async fn configured(app: &TestApp, company: &str) -> OrgAdmin {
    let admin = app.register_org(company).await;
    let c = |m, p: &str, b| call(app, &admin, m, p.to_string(), b);
    c(Method::PUT, "/bot-config", Some(json!({
        "name": "Support bot", "provider": "ANTHROPIC", "model": "claude-3-5-haiku-latest", "apiKey": KEY,
        "systemPrompt": "First prompt.", "greeting": "Hello!", "temperature": 0.25, "debounceSeconds": 4,
        "maxTurns": 9, "handoffKeywords": ["human", "agent"]})))
    .await
    .expect(200);
    c(
        Method::PUT,
        "/bot-config",
        Some(json!({"systemPrompt": "Be brief and kind."})),
    )
    .await
    .expect(200);
    teams_and_tags(app, &admin).await;
    for intent in [
        json!({"name": "prices", "action": "ANSWER", "keywords": ["price", "cost"], "examples": ["how much?"],
               "response": "From 10 EUR."}),
        json!({"name": "billing", "action": "HANDOFF", "keywords": ["invoice"], "teamId": team_id(app, &admin).await}),
        json!({"name": "vip", "action": "TAG", "keywords": ["gold"], "tagId": tag_id(app, &admin).await,
               "isActive": false}),
    ] {
        c(Method::POST, "/bot-config/intents", Some(intent))
            .await
            .expect(201);
    }
    admin
}

async fn teams_and_tags(app: &TestApp, admin: &OrgAdmin) {
    call(
        app,
        admin,
        Method::POST,
        "/teams",
        Some(json!({"name": "Billing"})),
    )
    .await
    .expect(201);
    call(
        app,
        admin,
        Method::POST,
        "/tags",
        Some(json!({"name": "VIP", "color": "#EF4444"})),
    )
    .await
    .expect(201);
}

async fn team_id(app: &TestApp, admin: &OrgAdmin) -> Value {
    let teams = call(app, admin, Method::GET, "/teams", None)
        .await
        .expect(200);
    teams.data().as_array().unwrap()[0]["id"].clone()
}

async fn tag_id(app: &TestApp, admin: &OrgAdmin) -> Value {
    let tags = call(app, admin, Method::GET, "/tags", None)
        .await
        .expect(200);
    tags.data().as_array().unwrap()[0]["id"].clone()
}

/// The active config's settings, without what differs between copies (ids, times, state, key).
async fn settings(app: &TestApp, admin: &OrgAdmin) -> Value {
    let mut c = call(app, admin, Method::GET, "/bot-config", None)
        .await
        .expect(200)
        .body["data"]
        .take();
    let o = c.as_object_mut().expect("an active config");
    for k in [
        "id",
        "createdAt",
        "updatedAt",
        "isActive",
        "apiKey",
        "hasApiKey",
    ] {
        o.remove(k);
    }
    c
}

/// The active config's intents, in order, without ids and times (team and tag ids kept).
async fn intents(app: &TestApp, admin: &OrgAdmin) -> Vec<Value> {
    let list = call(app, admin, Method::GET, "/bot-config/intents", None)
        .await
        .expect(200);
    list.data()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut i = i.clone();
            for k in ["id", "createdAt", "updatedAt"] {
                i.as_object_mut().unwrap().remove(k);
            }
            i
        })
        .collect()
}

/// Intents as another organization would see them: team and tag by position in the list only.
fn without_refs(list: &[Value]) -> Vec<Value> {
    list.iter()
        .map(|i| {
            let mut i = i.clone();
            let o = i.as_object_mut().unwrap();
            o.insert("teamId".into(), json!(o["teamId"].is_string()));
            o.insert("tagId".into(), json!(o["tagId"].is_string()));
            i
        })
        .collect()
}

fn file_form(name: &str, bytes: Vec<u8>, activate: Option<&str>) -> multipart::Form {
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    match activate {
        Some(a) => form.text("activate", a.to_string()),
        None => form,
    }
}

async fn import(
    app: &TestApp,
    admin: &OrgAdmin,
    name: &str,
    bytes: Vec<u8>,
    activate: Option<&str>,
) -> Resp {
    app.post_multipart(
        "/api/v1/bot-config/import",
        &admin.token,
        file_form(name, bytes, activate),
    )
    .await
}

async fn count(app: &TestApp, table: &str, org: &OrgAdmin) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE org_id = $1"))
        .bind(org.org_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_restored_snapshot_brings_back_the_config_and_its_intents() {
    let app = TestApp::spawn().await;
    let admin = &configured(&app, "Snap Co").await;
    let c = |m, p: &str, b| call(&app, admin, m, p.to_string(), b);
    let (before, before_intents) = (settings(&app, admin).await, intents(&app, admin).await);

    let snap = c(Method::POST, "/bot-config/snapshots", None)
        .await
        .expect(201);
    let meta = snap.data().clone();
    assert_eq!(meta["intentCount"], 3);
    assert_eq!(meta["promptChars"], "Be brief and kind.".len());
    assert_eq!(meta["botConfigName"], "Support bot");
    assert!(meta["sizeBytes"].as_i64().unwrap() > 0);
    assert!(
        !snap.body.to_string().contains(KEY),
        "snapshots hold no key"
    );
    let snap_id = meta["id"].as_str().unwrap().to_string();

    // Change everything: prompt, settings, key, intents.
    c(Method::PUT, "/bot-config", Some(json!({"systemPrompt": "Sell, sell, sell.", "temperature": 1.5, "maxTurns": 2,
                                             "handoffKeywords": ["boss"], "apiKey": "sk-new-key-111122223333"})))
        .await
        .expect(200);
    let first = before_intents[0]["name"].clone();
    let listed = c(Method::GET, "/bot-config/intents", None)
        .await
        .expect(200);
    let first_id = listed.data()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed.data()[0]["name"], first);
    c(
        Method::DELETE,
        &format!("/bot-config/intents/{first_id}"),
        None,
    )
    .await
    .expect(204);
    c(
        Method::POST,
        "/bot-config/intents",
        Some(json!({"name": "new", "action": "HANDOFF", "keywords": ["x"]})),
    )
    .await
    .expect(201);
    assert_ne!(settings(&app, admin).await, before);

    // Others cannot restore it; an admin can, and everything is as it was but the key.
    let (_, agent) = app.create_user(admin, "AGENT").await;
    app.request(
        Method::POST,
        &format!("/api/v1/bot-config/snapshots/{snap_id}/restore"),
        Some(&agent),
        None,
    )
    .await
    .expect(403);
    app.request(
        Method::POST,
        "/api/v1/bot-config/snapshots",
        Some(&agent),
        None,
    )
    .await
    .expect(403);
    let stranger = app.register_org("Stranger").await;
    call(
        &app,
        &stranger,
        Method::POST,
        &format!("/bot-config/snapshots/{snap_id}/restore"),
        None,
    )
    .await
    .expect(404);
    call(
        &app,
        &stranger,
        Method::DELETE,
        &format!("/bot-config/snapshots/{snap_id}"),
        None,
    )
    .await
    .expect(404);
    call(
        &app,
        &stranger,
        Method::POST,
        "/bot-config/snapshots",
        Some(json!({"name": "none"})),
    )
    .await
    .expect(404);
    let restored = c(
        Method::POST,
        &format!("/bot-config/snapshots/{snap_id}/restore"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        restored.data()["apiKey"],
        "sk-n****3333",
        "the key the config has now"
    );
    assert_eq!(settings(&app, admin).await, before);
    assert_eq!(intents(&app, admin).await, before_intents);
    let versions = c(Method::GET, "/bot-config/prompt-versions", None)
        .await
        .expect(200);
    let prompts: Vec<&str> = versions
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["systemPrompt"].as_str().unwrap())
        .collect();
    assert_eq!(
        prompts,
        [
            "Be brief and kind.",
            "Sell, sell, sell.",
            "Be brief and kind.",
            "First prompt."
        ]
    );

    // Listed as metadata only, newest first; named snapshots; deleted for good.
    let named = c(
        Method::POST,
        "/bot-config/snapshots",
        Some(json!({"name": "Before the sale"})),
    )
    .await
    .expect(201);
    let list = app
        .get("/api/v1/bot-config/snapshots", &agent)
        .await
        .expect(200);
    let list = list.data().as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "Before the sale");
    assert!(
        list[0].get("content").is_none()
            && !Value::Array(list.clone()).to_string().contains("brief")
    );
    c(
        Method::DELETE,
        &format!("/bot-config/snapshots/{snap_id}"),
        None,
    )
    .await
    .expect(204);
    c(
        Method::POST,
        &format!("/bot-config/snapshots/{snap_id}/restore"),
        None,
    )
    .await
    .expect(404);
    assert_eq!(named.data()["intentCount"], 3);
}
