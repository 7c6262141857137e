use chrono::Utc;
use serde_json::json;

use super::{archive, check, ConfigDoc, ExportDoc, IntentDoc, Tier};

fn export() -> ExportDoc {
    ExportDoc {
        version: super::FORMAT_VERSION,
        tier: Tier::Standard,
        exported_at: Utc::now(),
        config: ConfigDoc {
            name: "Support".into(),
            provider: "ANTHROPIC".into(),
            model: "claude-3-5-haiku-latest".into(),
            base_url: None,
            system_prompt: "Be kind.".into(),
            greeting: Some("Hi!".into()),
            handoff_message: None,
            temperature: 0.2,
            debounce_seconds: 2,
            max_turns: 7,
            handoff_keywords: vec!["human".into()],
            embedding_provider: None,
            embedding_model: None,
        },
        intents: Some(vec![IntentDoc {
            name: "prices".into(),
            keywords: sqlx::types::Json(vec!["price".into()]),
            examples: sqlx::types::Json(vec![]),
            action: "ANSWER".into(),
            response: Some("From 10 EUR.".into()),
            team_name: None,
            tag_name: None,
            is_active: true,
        }]),
        presets: Some(vec![]),
        prompt_versions: None,
        documents: None,
    }
}

#[test]
fn an_export_parses_back_to_the_same_config_and_intents() {
    let doc = export();
    let bytes = serde_json::to_vec(&doc).unwrap();
    let parsed = check::parse(&bytes).unwrap();
    assert_eq!(parsed.config, doc.config);
    assert_eq!(Some(parsed.intents), doc.intents);
    assert!(parsed.prompt_history.is_empty());
}

#[test]
fn every_problem_is_named_by_its_json_path() {
    let mut file = serde_json::to_value(export()).unwrap();
    file["version"] = json!(7);
    file["config"]["provider"] = json!("SKYNET");
    file["config"]["apiKey"] = json!("sk-secret");
    file["intents"] = json!([
        {"name": "a", "action": "ANSWER", "keywords": ["a"], "response": "A"},
        {"name": "b", "action": "HANDOFF", "keywords": ["b"]},
        {"name": "c", "action": "SHOUT", "keywords": ["c"]},
        {"name": "d", "action": "ANSWER", "keywords": []}
    ]);
    let problems = check::parse(&serde_json::to_vec(&file).unwrap()).unwrap_err();
    let paths: Vec<String> = problems.iter().map(check::Problem::path).collect();
    for p in [
        "version",
        "config.provider",
        "config.apiKey",
        "intents[2].action",
        "intents[3].keywords",
        "intents[3].response",
    ] {
        assert!(paths.contains(&p.to_string()), "{p} in {paths:?}");
    }
    assert_eq!(paths.len(), 6, "{problems:?}");
}

#[test]
fn files_that_are_not_exports() {
    let not_json = check::parse(b"{nope").unwrap_err();
    assert_eq!(not_json[0].kind, "json_invalid");
    assert_eq!(not_json[0].path(), "$");
    let not_object = check::parse(b"[1]").unwrap_err();
    assert_eq!(not_object.len(), 1);
    let empty = check::parse(b"{}").unwrap_err();
    let paths: Vec<String> = empty.iter().map(check::Problem::path).collect();
    assert_eq!(paths, ["version", "config"]);
}

#[test]
fn zips_are_told_by_content_and_hold_the_document() {
    let json = serde_json::to_vec(&export()).unwrap();
    let zip = archive::write(&json).unwrap();
    assert!(archive::is_zip(&zip));
    assert!(!archive::is_zip(&json));
    assert_eq!(archive::document_bytes(&zip).unwrap(), json);
    assert_eq!(archive::document_bytes(&json).unwrap(), json);
    let corrupt = archive::document_bytes(&zip[..zip.len() / 2]).unwrap_err();
    assert!(corrupt.msg.contains("ZIP"), "{}", corrupt.msg);

    let mut other = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    other
        .start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    let other = other.finish().unwrap().into_inner();
    let missing = archive::document_bytes(&other).unwrap_err();
    assert!(missing.msg.contains("bot-config.json"), "{}", missing.msg);
}
