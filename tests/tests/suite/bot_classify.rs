//! The bot's help on conversations, through the simulator's model (whose default answer is
//! `You said: <last user message>`, so the answer carries the transcript's words): a handoff
//! summary for the agent, a category for one conversation, every open conversation
//! re-classified and routed again as a run, and auto-categorisation of new conversations.

use reqwest::Method;
use serde_json::{json, Value};
use wharf_sim::llm::{LlmFaultAction, LlmFaultSpec, Provider as SimProvider};
use wharf_tests::platform::wait_for;

use super::routing::Setup;

impl Setup {
    /// An active OpenAI config on the simulator, with the bot itself switched off so new
    /// conversations go to routing.
    async fn assistant(&self) {
        self.model_bot("OPENAI", "gpt-4o-mini", json!({})).await;
        self.call(
            Method::PUT,
            "/config/bot-enabled",
            json!({"enabled": false}),
        )
        .await
        .expect(200);
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_handoff_summary_and_a_category_come_from_the_model_and_count_in_usage() {
    let s = Setup::start().await;
    // Without an active config there is nobody to ask.
    let early = s
        .writes("34655000001", "my invoice is wrong, billing please")
        .await;
    let id = id_of(&early);
    let r = s
        .call(
            Method::POST,
            &format!("/conversations/{id}/generate-handoff-summary"),
            json!({}),
        )
        .await
        .expect(409);
    assert!(
        r.body.to_string().contains("no active bot config"),
        "{}",
        r.body
    );

    s.assistant().await;
    let summary = s
        .call(
            Method::POST,
            &format!("/conversations/{id}/generate-handoff-summary"),
            json!({}),
        )
        .await
        .expect(200);
    let text = summary.data()["summary"].as_str().unwrap();
    assert!(
        text.contains("Customer: my invoice is wrong"),
        "the transcript reached the model: {text}"
    );
    let sent = s.p.sim.state().llm().requests(Some(SimProvider::OpenAi));
    let system = &sent.last().unwrap().body["messages"][0];
    assert_eq!(system["role"], "system");
    assert!(system["content"]
        .as_str()
        .unwrap()
        .contains("handoff notes"));

    // No routing rule names a category, so the defaults are offered; the echo names "billing".
    let c = s
        .call(
            Method::POST,
            &format!("/conversations/{id}/re-classify"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(c.data()["category"], "billing", "{}", c.body);
    assert_eq!(c.data()["previousCategory"], Value::Null);
    assert_eq!(c.data()["changed"], true);
    assert_eq!(s.conversation(&id).await["category"], "billing");
    let classify_prompt = s.p.sim.state().llm().requests(Some(SimProvider::OpenAi));
    let prompt = classify_prompt.last().unwrap().body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("sales, support, billing, complaint, other"),
        "{prompt}"
    );
    let purposes =
        s.p.count("SELECT count(*) FROM llm_usage WHERE purpose IN ('summary', 'classify')")
            .await;
    assert_eq!(purposes, 2);

    // Another tenant's conversation does not exist for them; an unknown one neither.
    let other = s.p.app.register_org("Other Co").await;
    s.p.app
        .request(
            Method::POST,
            &format!("/api/v1/conversations/{id}/re-classify"),
            Some(&other.token),
            None,
        )
        .await
        .expect(404);
    s.call(
        Method::POST,
        "/conversations/00000000-0000-4000-8000-000000000000/generate-handoff-summary",
        json!({}),
    )
    .await
    .expect(404);

    // A refused key is the organization's to fix: 409, not a 5xx.
    s.p.sim
        .state()
        .llm()
        .add_fault(LlmFaultSpec::new(LlmFaultAction::InvalidKey, 1));
    let refused = s
        .call(
            Method::POST,
            &format!("/conversations/{id}/re-classify"),
            json!({}),
        )
        .await
        .expect(409);
    assert!(
        refused.body.to_string().contains("refused"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn bulk_re_classification_routes_changed_conversations_again_as_a_run() {
    let s = Setup::start().await;
    let front = s.team("Front desk", &[]).await;
    s.default_team(&front).await;
    let biller = s.agent("ONLINE", None).await;
    let billing = s.team("Billing", &[biller]).await;
    s.post(
        "/routing-rules",
        json!({"name": "billing", "teamId": billing, "matchType": "ANY",
               "conditions": [{"field": "category", "operator": "equals", "value": "billing"}]}),
    )
    .await
    .expect(201);
    s.assistant().await;
    let invoice = s
        .writes("34655000002", "a billing question about my invoice")
        .await;
    let hello = s.writes("34655000003", "hello there").await;
    for c in [&invoice, &hello] {
        assert_eq!(c["teamId"], front.as_str(), "{c}");
        assert_eq!(c["assignedTo"], Value::Null);
    }

    // Bad input and roles first: nothing starts.
    s.call(
        Method::POST,
        "/conversations/re-classify",
        json!({"all": true}),
    )
    .await
    .expect(422);
    let (_, agent_token) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.p.app
        .request(
            Method::POST,
            "/api/v1/conversations/re-classify",
            Some(&agent_token),
            None,
        )
        .await
        .expect(403);
    assert_eq!(s.p.count("SELECT count(*) FROM routing_runs").await, 0);

    let run = s
        .call(Method::POST, "/conversations/re-classify", json!({}))
        .await
        .expect(202);
    assert_eq!(run.data()["kind"], "RECLASSIFY");
    let run_id = id_of(run.data());
    let finished = || async {
        s.p.app
            .get(
                &format!("/api/v1/routing-rules/runs/{run_id}"),
                &s.admin.token,
            )
            .await
            .expect(200)
            .data()
            .clone()
    };
    wait_for("the run", || async {
        finished().await["status"] == "COMPLETED"
    })
    .await;
    let done = finished().await;
    assert_eq!(done["checked"], 2, "{done}");
    assert_eq!(done["classified"], 1, "{done}");
    assert_eq!(done["rerouted"], 1, "{done}");
    assert_eq!(done["assigned"], 1, "{done}");
    assert_eq!(done["failed"], 0, "{done}");

    let moved = s.conversation(&id_of(&invoice)).await;
    assert_eq!(moved["category"], "billing");
    assert_eq!(moved["teamId"], billing.as_str());
    assert_eq!(moved["assignedTo"], biller.to_string());
    let stayed = s.conversation(&id_of(&hello)).await;
    assert_eq!(
        stayed["category"],
        Value::Null,
        "the echo names no category"
    );
    assert_eq!(stayed["teamId"], front.as_str());
}

#[tokio::test]
async fn auto_categorisation_classifies_and_routes_a_new_conversation() {
    let s = Setup::start().await;
    let front = s.team("Front desk", &[]).await;
    s.default_team(&front).await;
    let biller = s.agent("ONLINE", None).await;
    let billing = s.team("Billing", &[biller]).await;
    s.post(
        "/routing-rules",
        json!({"name": "billing", "teamId": billing, "matchType": "ANY",
               "conditions": [{"field": "category", "operator": "in", "value": ["billing", "refunds"]}]}),
    )
    .await
    .expect(201);
    s.assistant().await;
    s.call(
        Method::PUT,
        "/config/auto-categorize",
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    let c = s.writes("34655000004", "I want refunds for my order").await;
    let id = id_of(&c);
    wait_for("the category", || async {
        s.conversation(&id).await["assignedTo"] == biller.to_string()
    })
    .await;
    let now = s.conversation(&id).await;
    assert_eq!(now["category"], "refunds");
    assert_eq!(now["teamId"], billing.as_str());
    let events: Vec<String> = now["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    assert!(events.iter().any(|e| e == "CATEGORIZED"), "{events:?}");
}
