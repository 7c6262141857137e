//! A bot config taken elsewhere and back, through `/bot-config`: provider presets (masked keys,
//! names unique per organization), snapshots restored onto their config, exports of each tier
//! that never hold a key, imports (JSON or ZIP) into another organization that reproduce the
//! config and its intents, and bad files refused whole, naming every problem.

use std::io::{Cursor, Read};

use reqwest::{multipart, Method};
use serde_json::{json, Value};
use wharf_tests::{OrgAdmin, Resp, TestApp};

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

#[tokio::test]
async fn exports_never_hold_keys_and_import_into_another_org_as_they_were() {
    let app = TestApp::spawn().await;
    let admin = &configured(&app, "Export Co").await;
    call(
        &app,
        admin,
        Method::POST,
        "/bot-config/presets",
        Some(json!({"name": "Claude", "provider": "ANTHROPIC",
         "model": "claude-3-5-haiku-latest", "apiKey": PRESET_KEY})),
    )
    .await
    .expect(201);
    let mut files = Vec::new();
    for tier in ["config", "standard", "full"] {
        let (status, headers, bytes) = app
            .get_bytes(
                &format!("/api/v1/bot-config/export?tier={tier}"),
                &admin.token,
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
        for secret in [KEY, PRESET_KEY, "apiKey", "****"] {
            assert!(!contains(&bytes, secret), "{secret} in the {tier} export");
        }
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["tier"], tier);
        assert!(doc["exportedAt"].is_string());
        assert_eq!(doc["config"]["name"], "Support bot");
        files.push((doc, bytes));
    }
    let (config, standard, full) = (&files[0].0, &files[1].0, &files[2].0);
    assert!(config.get("intents").is_none() && config.get("presets").is_none());
    assert_eq!(standard["intents"].as_array().unwrap().len(), 3);
    assert_eq!(standard["intents"][1]["teamName"], "Billing");
    assert_eq!(standard["presets"][0]["name"], "Claude");
    assert!(standard.get("promptVersions").is_none());
    assert_eq!(full["promptVersions"].as_array().unwrap().len(), 2);
    assert_eq!(full["documents"], json!([]));
    // Agents may export (the file holds nothing an agent cannot read); standard is the default.
    let (_, agent) = app.create_user(admin, "AGENT").await;
    let (status, _, default) = app.get_bytes("/api/v1/bot-config/export", &agent).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&default).unwrap()["tier"],
        "standard"
    );
    call(
        &app,
        admin,
        Method::GET,
        "/bot-config/export?tier=everything",
        None,
    )
    .await
    .expect(422);

    // Another organization imports the full file: the same config, intents and prompt history.
    let second = app.register_org("Second Co").await;
    teams_and_tags(&app, &second).await;
    let created = import(
        &app,
        &second,
        "export.json",
        files[2].1.clone(),
        Some("true"),
    )
    .await
    .expect(201);
    assert_eq!(created.data()["isActive"], true);
    assert_eq!(created.data()["hasApiKey"], false);
    assert_eq!(settings(&app, &second).await, settings(&app, admin).await);
    let (theirs, ours) = (intents(&app, &second).await, intents(&app, admin).await);
    assert_eq!(without_refs(&theirs), without_refs(&ours));
    assert_eq!(
        theirs[1]["teamId"],
        team_id(&app, &second).await,
        "the team of the same name"
    );
    assert_eq!(
        theirs[2]["tagId"],
        tag_id(&app, &second).await,
        "the tag of the same name"
    );
    let versions = call(
        &app,
        &second,
        Method::GET,
        "/bot-config/prompt-versions",
        None,
    )
    .await
    .expect(200);
    assert_eq!(versions.data()[0]["systemPrompt"], "Be brief and kind.");
    assert_eq!(versions.data()[1]["systemPrompt"], "First prompt.");

    // Imported again: a draft by default, its name taken, so suffixed.
    let again = import(&app, &second, "export.json", files[1].1.clone(), None)
        .await
        .expect(201);
    assert_eq!(again.data()["isActive"], false);
    assert_eq!(again.data()["name"], "Support bot (imported)");
    assert_eq!(count(&app, "bot_intents", &second).await, 6);
    // Agents cannot import.
    app.post_multipart(
        "/api/v1/bot-config/import",
        &agent,
        file_form("x.json", files[0].1.clone(), None),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn zip_exports_round_trip_and_broken_zips_are_refused() {
    let app = TestApp::spawn().await;
    let admin = &configured(&app, "Zip Co").await;
    let (status, headers, zip) = app
        .get_bytes("/api/v1/bot-config/export-zip?tier=full", &admin.token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".zip"));
    let mut archive = zip::ZipArchive::new(Cursor::new(zip.clone())).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["README.txt", "bot-config.json"]);
    let mut json = Vec::new();
    archive
        .by_name("bot-config.json")
        .unwrap()
        .read_to_end(&mut json)
        .unwrap();
    assert!(!contains(&json, KEY));
    assert_eq!(
        serde_json::from_slice::<Value>(&json).unwrap()["tier"],
        "full"
    );
    for bad in ["config", "nope"] {
        call(
            &app,
            admin,
            Method::GET,
            &format!("/bot-config/export-zip?tier={bad}"),
            None,
        )
        .await
        .expect(422);
    }

    // A ZIP is known by its content, whatever its name.
    let second = app.register_org("Second Co").await;
    teams_and_tags(&app, &second).await;
    import(&app, &second, "config.bin", zip.clone(), Some("true"))
        .await
        .expect(201);
    assert_eq!(settings(&app, &second).await, settings(&app, admin).await);
    assert_eq!(
        without_refs(&intents(&app, &second).await),
        without_refs(&intents(&app, admin).await)
    );

    let third = app.register_org("Third Co").await;
    let corrupt = import(
        &app,
        &third,
        "export.zip",
        zip[..zip.len() / 2].to_vec(),
        None,
    )
    .await
    .expect(422);
    assert!(corrupt.body.to_string().contains("ZIP"), "{}", corrupt.body);
    let mut other = zip::ZipWriter::new(Cursor::new(Vec::new()));
    other
        .start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    let other = other.finish().unwrap().into_inner();
    let missing = import(&app, &third, "export.zip", other, None)
        .await
        .expect(422);
    assert!(
        missing.body.to_string().contains("bot-config.json"),
        "{}",
        missing.body
    );
    assert_eq!(count(&app, "bot_configs", &third).await, 0);
}

#[tokio::test]
async fn a_bad_file_is_refused_whole_naming_every_problem() {
    let app = TestApp::spawn().await;
    let source = configured(&app, "Source Co").await;
    let (_, _, bytes) = app
        .get_bytes("/api/v1/bot-config/export", &source.token)
        .await;
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["version"] = json!(99);
    doc["config"]["provider"] = json!("SKYNET");
    doc["intents"][2]["action"] = json!("SHOUT");
    let target = app.register_org("Target Co").await;
    let bad = import(
        &app,
        &target,
        "bad.json",
        serde_json::to_vec(&doc).unwrap(),
        Some("true"),
    )
    .await
    .expect(422);
    let detail = bad.body["detail"].as_array().unwrap();
    let locs: Vec<Value> = detail.iter().map(|d| d["loc"].clone()).collect();
    assert_eq!(
        locs,
        [
            json!(["body", "file", "version"]),
            json!(["body", "file", "config", "provider"]),
            json!(["body", "file", "intents", "2", "action"])
        ],
        "{}",
        bad.body
    );
    assert!(detail[2]["msg"]
        .as_str()
        .unwrap()
        .starts_with("intents[2].action"));

    // A team the importing organization lacks is named too; nothing was written by any of it.
    let (_, _, good) = app
        .get_bytes("/api/v1/bot-config/export", &source.token)
        .await;
    let lacking = import(&app, &target, "good.json", good, None)
        .await
        .expect(422);
    assert!(
        lacking.body.to_string().contains("intents[1].teamName"),
        "{}",
        lacking.body
    );
    import(
        &app,
        &target,
        "text.json",
        b"not json at all".to_vec(),
        None,
    )
    .await
    .expect(422);
    let no_file = app
        .post_multipart(
            "/api/v1/bot-config/import",
            &target.token,
            multipart::Form::new().text("activate", "true"),
        )
        .await
        .expect(422);
    assert!(no_file.body.to_string().contains("file"));
    let huge = import(
        &app,
        &target,
        "huge.json",
        vec![b' '; 10 * 1024 * 1024 + 1],
        None,
    )
    .await
    .expect(413);
    assert!(huge.body["detail"].is_string(), "{}", huge.body);
    for table in ["bot_configs", "bot_intents", "bot_prompt_versions"] {
        assert_eq!(count(&app, table, &target).await, 0, "{table}");
    }
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
