//! The bot's configuration through `/bot-config`: drafts and exactly one active config, the key
//! encrypted and masked (revealed to admins only), prompt versions with rollback, intents with
//! their order, the organization's switches, and bad input named field by field.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{OrgAdmin, Resp, TestApp};

struct Bot {
    app: TestApp,
    admin: OrgAdmin,
}

impl Bot {
    async fn start() -> Self {
        let app = TestApp::spawn().await;
        let admin = app.register_org("Bot Co").await;
        Bot { app, admin }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.app
            .request(
                method,
                &format!("/api/v1{path}"),
                Some(&self.admin.token),
                body,
            )
            .await
    }
}

const KEY: &str = "sk-test-0123456789abcdef";

#[tokio::test]
async fn one_active_config_drafts_masked_keys_and_prompt_versions() {
    let b = Bot::start().await;
    let none = b.call(Method::GET, "/bot-config", None).await.expect(200);
    assert_eq!(none.data(), &Value::Null);

    let active = b
        .call(
            Method::PUT,
            "/bot-config",
            Some(json!({"name": "Support bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": KEY,
                        "systemPrompt": "You are helpful.", "temperature": 0.2, "debounceSeconds": 2,
                        "maxTurns": 5, "handoffKeywords": ["supervisor"]})),
        )
        .await
        .expect(200);
    let d = active.data();
    assert_eq!(d["isActive"], true);
    assert_eq!(d["apiKey"], "sk-t****cdef");
    assert!(!active.body.to_string().contains(KEY), "never the key");
    let stored: String = sqlx::query_scalar("SELECT api_key FROM bot_configs")
        .fetch_one(&b.app.db.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1:") && !stored.contains(KEY),
        "encrypted at rest"
    );
    let revealed = b
        .call(Method::GET, "/bot-config/reveal-key", None)
        .await
        .expect(200);
    assert_eq!(revealed.data()["apiKey"], KEY);
    let (_, agent) = b.app.create_user(&b.admin, "AGENT").await;
    b.app
        .request(
            Method::GET,
            "/api/v1/bot-config/reveal-key",
            Some(&agent),
            None,
        )
        .await
        .expect(403);

    // A prompt change is a version; activating an old one rolls back.
    b.call(
        Method::PUT,
        "/bot-config",
        Some(json!({"systemPrompt": "Be brief."})),
    )
    .await
    .expect(200);
    let versions = b
        .call(Method::GET, "/bot-config/prompt-versions", None)
        .await
        .expect(200);
    let v = versions.data().as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["systemPrompt"], "Be brief.");
    assert_eq!(v[0]["isCurrent"], true);
    let first = v[1]["id"].as_str().unwrap();
    let back = b
        .call(
            Method::POST,
            &format!("/bot-config/prompt-versions/{first}/activate"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(back.data()["systemPrompt"], "You are helpful.");

    // Drafts: create, duplicate, activate (exactly one active), delete only drafts.
    let draft = b
        .call(
            Method::POST,
            "/bot-config",
            Some(json!({"name": "Sales bot", "provider": "ANTHROPIC",
                                                       "model": "claude-3-5-haiku-latest"})),
        )
        .await
        .expect(201);
    assert_eq!(draft.data()["isActive"], false);
    let draft_id = draft.data()["id"].as_str().unwrap().to_string();
    let active_id = d["id"].as_str().unwrap().to_string();
    let copy = b
        .call(
            Method::POST,
            &format!("/bot-config/{active_id}/duplicate"),
            None,
        )
        .await
        .expect(201);
    assert_eq!(copy.data()["name"], "Support bot (copy)");
    assert_eq!(copy.data()["apiKey"], "sk-t****cdef");
    b.call(
        Method::PUT,
        &format!("/bot-config/{draft_id}/activate"),
        None,
    )
    .await
    .expect(200);
    let list = b
        .call(Method::GET, "/bot-config/list", None)
        .await
        .expect(200);
    let actives: Vec<&Value> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["isActive"] == true)
        .collect();
    assert_eq!(actives.len(), 1);
    assert_eq!(actives[0]["id"], draft_id);
    b.call(Method::DELETE, &format!("/bot-config/{draft_id}"), None)
        .await
        .expect(409);
    b.call(Method::DELETE, &format!("/bot-config/{active_id}"), None)
        .await
        .expect(204);
    // Another organization sees none of it.
    let other = b.app.register_org("Other").await;
    b.app
        .request(
            Method::PUT,
            &format!("/api/v1/bot-config/{draft_id}/activate"),
            Some(&other.token),
            None,
        )
        .await
        .expect(404);
}

#[tokio::test]
async fn bad_configs_are_refused_naming_every_field_and_change_nothing() {
    let b = Bot::start().await;
    let bad = b
        .call(
            Method::PUT,
            "/bot-config",
            Some(json!({"provider": "SKYNET", "temperature": 3.5, "debounceSeconds": -1, "maxTurns": 5000,
                        "baseUrl": "ftp://nope", "handoffKeywords": [""], "apiKey": "has space"})),
        )
        .await
        .expect(422);
    let text = bad.body.to_string();
    for field in [
        "provider",
        "temperature",
        "debounceSeconds",
        "maxTurns",
        "baseUrl",
        "handoffKeywords",
        "apiKey",
    ] {
        assert!(text.contains(field), "{field} named in {text}");
    }
    let local = b
        .call(
            Method::PUT,
            "/bot-config",
            Some(json!({"provider": "LOCAL", "model": "llama3.1"})),
        )
        .await
        .expect(422);
    assert!(local.body.to_string().contains("baseUrl"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bot_configs")
        .fetch_one(&b.app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing saved");
    b.call(Method::GET, "/bot-config/models?provider=NOPE", None)
        .await
        .expect(422);
    let models = b
        .call(Method::GET, "/bot-config/models?provider=GOOGLE", None)
        .await
        .expect(200);
    assert!(models.data()["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "gemini-2.5-flash"));
}

#[tokio::test]
async fn intents_switches_and_limits() {
    let b = Bot::start().await;
    // Intents need an active config.
    b.call(Method::POST, "/bot-config/intents", Some(json!({"name": "prices", "action": "ANSWER",
                                                            "keywords": ["price"], "response": "From 10 EUR."})))
        .await
        .expect(409);
    b.call(
        Method::PUT,
        "/bot-config",
        Some(json!({"name": "Bot", "apiKey": KEY})),
    )
    .await
    .expect(200);
    let prices = b
        .call(Method::POST, "/bot-config/intents", Some(json!({"name": "prices", "action": "ANSWER",
                                                               "keywords": ["price", "cost"], "response": "From 10 EUR."})))
        .await
        .expect(201);
    let refund = b
        .call(
            Method::POST,
            "/bot-config/intents",
            Some(json!({"name": "refunds", "action": "HANDOFF",
                                                               "keywords": ["refund"]})),
        )
        .await
        .expect(201);
    let bad = b
        .call(
            Method::POST,
            "/bot-config/intents",
            Some(json!({"name": "x", "action": "ANSWER", "keywords": []})),
        )
        .await
        .expect(422);
    assert!(bad.body.to_string().contains("response") && bad.body.to_string().contains("keywords"));
    b.call(
        Method::POST,
        "/bot-config/intents",
        Some(json!({"name": "x", "action": "HANDOFF", "keywords": ["x"],
                                                            "teamId": Uuid::new_v4()})),
    )
    .await
    .expect(404);
    let (p, r) = (
        prices.data()["id"].as_str().unwrap(),
        refund.data()["id"].as_str().unwrap(),
    );
    let order = b
        .call(
            Method::PUT,
            "/bot-config/intents/reorder",
            Some(json!({"ids": [r, p]})),
        )
        .await
        .expect(200);
    assert_eq!(order.data()[0]["name"], "refunds");
    b.call(
        Method::PUT,
        "/bot-config/intents/reorder",
        Some(json!({"ids": [r]})),
    )
    .await
    .expect(422);
    let listed = b
        .call(Method::GET, "/bot-config/intents", None)
        .await
        .expect(200);
    assert_eq!(listed.data()[1]["name"], "prices");

    // Switches: off by default; admins turn them on; agents may read, not change.
    let off = b
        .call(Method::GET, "/config/bot-enabled", None)
        .await
        .expect(200);
    assert_eq!(off.data()["enabled"], false);
    b.call(
        Method::PUT,
        "/config/bot-enabled",
        Some(json!({"enabled": true})),
    )
    .await
    .expect(200);
    let (_, agent) = b.app.create_user(&b.admin, "AGENT").await;
    let seen = b
        .app
        .request(
            Method::GET,
            "/api/v1/config/bot-enabled",
            Some(&agent),
            None,
        )
        .await
        .expect(200);
    assert_eq!(seen.data()["enabled"], true);
    b.app
        .request(
            Method::PUT,
            "/api/v1/config/bot-enabled",
            Some(&agent),
            Some(json!({"enabled": false})),
        )
        .await
        .expect(403);
    b.call(
        Method::PUT,
        "/config/bot-enabled",
        Some(json!({"enabled": "yes"})),
    )
    .await
    .expect(422);
    let mode = b
        .call(
            Method::PUT,
            "/config/bot-mode",
            Some(json!({"greetNewCustomers": true})),
        )
        .await
        .expect(200);
    assert_eq!(mode.data()["greetNewCustomers"], true);
    b.call(
        Method::PUT,
        "/config/bot-mode",
        Some(json!({"greetNewCustomers": "sure"})),
    )
    .await
    .expect(422);
    b.call(
        Method::PUT,
        "/config/bot-limits",
        Some(json!({"monthlyTokenLimit": 1000})),
    )
    .await
    .expect(200);
    let usage = b
        .call(Method::GET, "/bot-config/usage", None)
        .await
        .expect(200);
    assert_eq!(usage.data()["monthlyTokenLimit"], 1000);
    assert_eq!(usage.data()["tokens"], 0);
    assert_eq!(usage.data()["limitReached"], false);
    let history = b
        .call(Method::GET, "/bot-config/usage/history", None)
        .await
        .expect(200);
    assert_eq!(history.data().as_array().unwrap().len(), 12);
}
