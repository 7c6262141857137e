//! Export files (JSON by tier, ZIP) that never hold a key, imported into another organization
//! as they were; bad files refused whole, naming every problem, and writing nothing.

use std::io::{Cursor, Read};

use reqwest::{multipart, Method};
use serde_json::{json, Value};
use wharf_tests::TestApp;

use super::{
    call, configured, contains, count, file_form, import, intents, settings, tag_id, team_id,
    teams_and_tags, without_refs, KEY, PRESET_KEY,
};

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
