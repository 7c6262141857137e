//! Provider presets: keys encrypted and masked, names unique per organization in any case,
//! partial updates, a config set up from a preset, roles and tenants; and the routes of this
//! area in the OpenAPI document.

use reqwest::Method;
use serde_json::json;
use wharf_tests::TestApp;

use super::{call, PRESET_KEY};

#[tokio::test]
async fn presets_keep_keys_masked_names_unique_and_tenants_apart() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Preset Co").await;
    let c = |m, p: &str, b| call(&app, &admin, m, p.to_string(), b);
    let created = c(
        Method::POST,
        "/bot-config/presets",
        Some(json!({"name": "Claude prod", "provider": "ANTHROPIC",
                    "model": "claude-3-5-haiku-latest", "apiKey": PRESET_KEY, "temperature": 0.4})),
    )
    .await
    .expect(201);
    let p = created.data();
    assert_eq!(p["apiKey"], "sk-p****3210");
    assert_eq!(p["hasApiKey"], true);
    assert!(
        !created.body.to_string().contains(PRESET_KEY),
        "never the key"
    );
    let stored: String = sqlx::query_scalar("SELECT api_key FROM bot_presets")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1:") && !stored.contains(PRESET_KEY),
        "encrypted at rest"
    );
    let id = p["id"].as_str().unwrap().to_string();

    // Names are unique in any case; every missing or wrong field is named at once.
    c(
        Method::POST,
        "/bot-config/presets",
        Some(json!({"name": "CLAUDE PROD", "provider": "OPENAI", "model": "gpt-4o"})),
    )
    .await
    .expect(409);
    let bad = c(
        Method::POST,
        "/bot-config/presets",
        Some(json!({"provider": "SKYNET", "temperature": 3})),
    )
    .await
    .expect(422);
    for field in ["name", "provider", "model", "temperature"] {
        assert!(
            bad.body.to_string().contains(field),
            "{field} in {}",
            bad.body
        );
    }
    let other = c(
        Method::POST,
        "/bot-config/presets",
        Some(
            json!({"name": "Local", "provider": "LOCAL", "model": "llama3.1",
                  "baseUrl": "http://localhost:11434/v1"}),
        ),
    )
    .await
    .expect(201);
    let other_id = other.data()["id"].as_str().unwrap().to_string();

    // PUT changes only the fields sent; the key stays.
    let changed = c(
        Method::PUT,
        &format!("/bot-config/presets/{id}"),
        Some(json!({"model": "claude-sonnet-4-5"})),
    )
    .await
    .expect(200);
    assert_eq!(changed.data()["model"], "claude-sonnet-4-5");
    assert_eq!(changed.data()["apiKey"], "sk-p****3210");
    assert_eq!(changed.data()["temperature"], 0.4);
    c(
        Method::PUT,
        &format!("/bot-config/presets/{other_id}"),
        Some(json!({"name": "claude prod"})),
    )
    .await
    .expect(409);
    let list = c(Method::GET, "/bot-config/presets", None)
        .await
        .expect(200);
    let names: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Claude prod", "Local"]);

    // A config set up from a preset takes its connection, key included (masked).
    let config = c(
        Method::PUT,
        "/bot-config",
        Some(json!({"name": "Bot", "presetId": id})),
    )
    .await
    .expect(200);
    assert_eq!(config.data()["provider"], "ANTHROPIC");
    assert_eq!(config.data()["model"], "claude-sonnet-4-5");
    assert_eq!(config.data()["apiKey"], "sk-p****3210");

    // Agents read, admins change; another organization sees none of it.
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    let seen = app
        .get("/api/v1/bot-config/presets", &agent)
        .await
        .expect(200);
    assert_eq!(seen.data().as_array().unwrap().len(), 2);
    app.request(
        Method::POST,
        "/api/v1/bot-config/presets",
        Some(&agent),
        Some(json!({"name": "x", "provider": "OPENAI", "model": "gpt-4o"})),
    )
    .await
    .expect(403);
    app.request(
        Method::PUT,
        &format!("/api/v1/bot-config/presets/{id}"),
        Some(&agent),
        Some(json!({"model": "x"})),
    )
    .await
    .expect(403);
    app.delete(&format!("/api/v1/bot-config/presets/{id}"), &agent)
        .await
        .expect(403);
    let stranger = app.register_org("Stranger").await;
    let s = |m, p: &str, b| call(&app, &stranger, m, p.to_string(), b);
    s(
        Method::PUT,
        &format!("/bot-config/presets/{id}"),
        Some(json!({"model": "x"})),
    )
    .await
    .expect(404);
    s(Method::DELETE, &format!("/bot-config/presets/{id}"), None)
        .await
        .expect(404);
    s(Method::PUT, "/bot-config", Some(json!({"presetId": id})))
        .await
        .expect(404);
    let theirs = s(Method::GET, "/bot-config/presets", None)
        .await
        .expect(200);
    assert_eq!(theirs.data(), &json!([]));
    c(Method::DELETE, &format!("/bot-config/presets/{id}"), None)
        .await
        .expect(204);
    c(Method::DELETE, &format!("/bot-config/presets/{id}"), None)
        .await
        .expect(404);
}

#[tokio::test]
async fn the_routes_are_documented_and_need_credentials() {
    let app = TestApp::spawn().await;
    let doc = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200)
        .body;
    let paths = &doc["paths"];
    let responses =
        |path: &str, method: &str| paths[format!("/api/v1{path}")][method]["responses"].clone();
    for (path, method, statuses) in [
        (
            "/bot-config/presets",
            "post",
            &["201", "401", "403", "409", "422"][..],
        ),
        (
            "/bot-config/presets/{id}",
            "put",
            &["200", "401", "403", "404", "409", "422"],
        ),
        ("/bot-config/snapshots", "get", &["200", "401"]),
        (
            "/bot-config/snapshots/{id}/restore",
            "post",
            &["200", "401", "403", "404"],
        ),
        ("/bot-config/export", "get", &["200", "401", "404", "422"]),
        (
            "/bot-config/export-zip",
            "get",
            &["200", "401", "404", "422"],
        ),
        (
            "/bot-config/import",
            "post",
            &["201", "401", "403", "413", "422"],
        ),
    ] {
        let r = responses(path, method);
        for status in statuses {
            assert!(r.get(*status).is_some(), "{method} {path} lacks {status}");
        }
        let concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let anon = app
            .request(
                method.to_uppercase().parse().unwrap(),
                &format!("/api/v1{concrete}"),
                None,
                None,
            )
            .await;
        assert_eq!(anon.status, 401, "{method} {path}");
    }
    assert!(responses("/bot-config/export-zip", "get")["200"]["content"]
        .get("application/zip")
        .is_some());
}
