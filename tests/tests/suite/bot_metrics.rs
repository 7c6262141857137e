//! The bot's feedback, metrics and sandbox, through HTTP and the simulator: people rate the
//! bot's answers (only those, once per user, listed by cursor); quality, sessions and traces
//! follow real replies and handoffs; the sandbox runs the reply pipeline with its history and
//! reaches neither Meta nor any conversation.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::{llm::Provider as SimProvider, ReceivedFilter};
use wharf_tests::platform::wait_for;

use super::routing::Setup;

/// The routing setup with an enabled bot answering through the simulator's OpenAI.
struct Bot {
    s: Setup,
}

impl Bot {
    async fn start() -> Self {
        let s = Setup::start().await;
        let b = Bot { s };
        b.call(
            Method::PUT,
            "/bot-config",
            json!({"name": "Bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sim-openai-key",
                   "debounceSeconds": 0, "systemPrompt": "You are the shop's assistant.",
                   "handoffMessage": "A person will help you now."}),
        )
        .await
        .expect(200);
        b.call(Method::PUT, "/config/bot-enabled", json!({"enabled": true}))
            .await
            .expect(200);
        b
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> wharf_tests::Resp {
        self.as_user(&self.s.admin.token, method, path, body).await
    }

    async fn as_user(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> wharf_tests::Resp {
        let body = (!body.is_null()).then_some(body);
        self.s
            .p
            .app
            .request(method, &format!("/api/v1{path}"), Some(token), body)
            .await
    }

    async fn get(&self, path: &str) -> wharf_tests::Resp {
        self.call(Method::GET, path, Value::Null).await
    }

    async fn settled(&self) {
        wait_for("bot replies done", || async {
            self.s
                .p
                .count("SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND state NOT IN ('completed', 'cancelled')")
                .await
                == 0
        })
        .await;
    }

    /// The customer writes and the bot answers; returns the conversation id.
    async fn answered(&self, customer: &str, text: &str) -> String {
        let before = self.s.p.accepted_to(customer, "text");
        let c = self.s.writes(customer, text).await;
        wait_for("the bot's answer", || async {
            self.s.p.accepted_to(customer, "text") > before
        })
        .await;
        self.settled().await;
        c["id"].as_str().unwrap().to_string()
    }

    async fn message(&self, conversation: &str, bot: bool) -> String {
        let sql = format!(
            "SELECT id::text FROM messages WHERE conversation_id = $1::uuid AND {} ORDER BY seq LIMIT 1",
            if bot {
                "request_hash = 'bot'"
            } else {
                "direction = 'INBOUND'"
            }
        );
        sqlx::query_scalar(&sql)
            .bind(conversation)
            .fetch_one(&self.s.p.app.db.pool)
            .await
            .unwrap()
    }
}

fn locs(r: &wharf_tests::Resp) -> Vec<String> {
    r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"][1].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn feedback_quality_sessions_and_traces_follow_replies_and_handoffs() {
    let b = Bot::start().await;
    let agent = b.s.agent("ONLINE", None).await;
    let team = b.s.team("Desk", &[agent]).await;
    b.s.default_team(&team).await;

    // A: one answer, then the customer asks for a person.
    let a = b.answered("34677000001", "hello").await;
    b.s.p.customer_sends(
        &b.s.number,
        json!({"from": "34677000001", "type": "text", "body": "can I talk to a human?"}),
    );
    wait_for("the handoff", || async {
        b.s.p
            .count("SELECT count(*) FROM conversation_events WHERE type = 'HANDED_OFF'")
            .await
            == 1
    })
    .await;
    b.settled().await;
    let answer = b.message(&a, true).await;
    let question = b.message(&a, false).await;

    // Ratings: only the bot's answers, one per user (a second POST replaces it).
    let rate = |token: String, message: String, rating: i64| {
        let body =
            json!({"messageId": message, "conversationId": a, "rating": rating, "comment": "ok"});
        let b = &b;
        async move { b.as_user(&token, Method::POST, "/bot-feedback", body).await }
    };
    let first = rate(b.s.admin.token.clone(), answer.clone(), 4)
        .await
        .expect(201);
    assert_eq!(first.data()["rating"], 4);
    assert_eq!(first.data()["messageBody"], "You said: hello");
    let again = rate(b.s.admin.token.clone(), answer.clone(), 5)
        .await
        .expect(200);
    assert_eq!(again.data()["id"], first.data()["id"]);
    let customer = rate(b.s.admin.token.clone(), question.clone(), 5)
        .await
        .expect(422);
    assert_eq!(locs(&customer), ["messageId"]);
    let (_, agent_token) = b.s.p.app.create_user(&b.s.admin, "AGENT").await;
    rate(agent_token.clone(), answer.clone(), 3)
        .await
        .expect(201);
    assert_eq!(b.s.p.count("SELECT count(*) FROM bot_feedback").await, 2);
    let elsewhere = json!({"messageId": answer, "conversationId": Uuid::new_v4(), "rating": 3});
    b.call(Method::POST, "/bot-feedback", elsewhere)
        .await
        .expect(404);
    let other = b.s.p.app.register_org("Other Co").await;
    let theirs = json!({"messageId": answer, "conversationId": a, "rating": 3});
    b.as_user(&other.token, Method::POST, "/bot-feedback", theirs)
        .await
        .expect(404);
    let bad =
        json!({"messageId": "nope", "conversationId": a, "rating": 9, "comment": "x".repeat(2001)});
    let bad = b.call(Method::POST, "/bot-feedback", bad).await.expect(422);
    let mut wrong = locs(&bad);
    wrong.sort();
    assert_eq!(wrong, ["comment", "messageId", "rating"], "{}", bad.body);

    // Newest first, by cursor.
    let page = b.get("/bot-feedback?limit=1").await.expect(200);
    assert_eq!(page.body["data"][0]["rating"], 3, "{}", page.body);
    let next = page.body["nextCursor"].as_str().unwrap().to_string();
    let page = b
        .get(&format!("/bot-feedback?limit=1&cursor={next}"))
        .await
        .expect(200);
    assert_eq!(page.body["data"][0]["rating"], 5);
    assert_eq!(page.body["nextCursor"], Value::Null);
    b.get("/bot-feedback?cursor=zz&limit=0").await.expect(422);
    let empty = b
        .as_user(&other.token, Method::GET, "/bot-feedback", Value::Null)
        .await
        .expect(200);
    assert_eq!(empty.body["data"], json!([]));

    // Quality after one answer and one handoff.
    let q = b
        .get("/bot-config/metrics/quality?days=30")
        .await
        .expect(200);
    let q = q.data();
    assert_eq!(q["repliesAnswered"], 1, "{q}");
    assert_eq!(q["handoffs"], 1);
    assert_eq!(
        q["handoffsByReason"][0]["reason"],
        "the customer asked for a person"
    );
    assert_eq!(q["feedbackCount"], 2);
    assert_eq!(q["averageRating"], 4.0);
    assert_eq!(q["sessions"]["escalated"], 1);
    assert_eq!(q["handoffRate"], 1.0);
    assert_eq!(q["resolutionRate"], 0.0);
    assert!(q["usage"]["inputTokens"].as_i64().unwrap() > 0);
    assert!(q["latencyP50Ms"].is_number());
    let bad = b
        .get("/bot-config/metrics/quality?days=366")
        .await
        .expect(422);
    assert_eq!(locs(&bad), ["days"]);
    b.get("/bot-config/metrics/quality?days=0")
        .await
        .expect(422);

    // B is resolved while the bot has it; C's customer went silent 25 hours ago.
    let c_b = b.answered("34677000002", "question b").await;
    b.call(
        Method::POST,
        &format!("/conversations/{c_b}/resolve"),
        Value::Null,
    )
    .await
    .expect(200);
    let c_c = b.answered("34677000003", "question c").await;
    for (table, column) in [("messages", "conversation_id"), ("conversations", "id")] {
        let sql = format!(
            "UPDATE {table} SET created_at = created_at - interval '25 hours' WHERE {column} = $1::uuid"
        );
        sqlx::query(&sql)
            .bind(&c_c)
            .execute(&b.s.p.app.db.pool)
            .await
            .unwrap();
    }

    let all = b.get("/bot-config/metrics/sessions").await.expect(200);
    assert_eq!(all.body["pagination"]["total"], 3, "{}", all.body);
    let of = |id: &str| {
        all.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["conversationId"] == id)
            .cloned()
            .unwrap()
    };
    let escalated = of(&a);
    assert_eq!(escalated["closureType"], "ESCALATED");
    assert_eq!(escalated["endEvent"], "HANDED_OFF");
    assert_eq!(
        escalated["handoffReason"],
        "the customer asked for a person"
    );
    assert_eq!(escalated["botTurns"], 1);
    assert_eq!(escalated["contact"]["waId"], "34677000001");
    assert!(escalated["endedAt"].is_string());
    assert_eq!(of(&c_b)["closureType"], "RESOLVED_CONFIRMED");
    assert_eq!(of(&c_c)["closureType"], "ABANDONED");
    let only = b
        .get("/bot-config/metrics/sessions?closureType=ESCALATED&days=30&page=1&limit=20")
        .await
        .expect(200);
    assert_eq!(only.body["pagination"]["total"], 1);
    assert_eq!(only.body["data"][0]["conversationId"], a.as_str());
    let paged = b
        .get("/bot-config/metrics/sessions?limit=2&page=2")
        .await
        .expect(200);
    assert_eq!(paged.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(paged.body["pagination"]["totalPages"], 2);
    let bad = b
        .get("/bot-config/metrics/sessions?closureType=LOST&page=0&days=400")
        .await
        .expect(422);
    let mut wrong = locs(&bad);
    wrong.sort();
    assert_eq!(wrong, ["closureType", "days", "page"]);

    // Traces: the aggregate and one trace in full.
    let t = b
        .get("/bot-config/metrics/traces?days=7&force=true")
        .await
        .expect(200);
    let t = t.data();
    assert_eq!(t["byOutcome"]["answered"], 3, "{t}");
    assert_eq!(t["byOutcome"]["handoff"], 1);
    assert_eq!(t["modelCalls"], 3);
    assert!(t["inputTokens"].as_i64().unwrap() > 0);
    assert!(t["latency"]["p99Ms"].is_number());
    assert!(t["providerLatency"]["p50Ms"].is_number());
    let newest = t["newest"].as_array().unwrap();
    assert_eq!(newest.len(), 4);
    let answered = newest
        .iter()
        .find(|x| x["conversationId"] == a.as_str() && x["outcome"] == "answered")
        .unwrap();
    let id = answered["id"].as_str().unwrap();
    let one = b
        .get(&format!("/bot-config/metrics/traces/{id}"))
        .await
        .expect(200);
    let call = &one.data()["call"];
    assert_eq!(call["provider"], "OPENAI", "{}", one.body);
    assert!(call["model"].as_str().unwrap().starts_with("gpt-4o-mini"));
    assert!(call["inputTokens"].as_i64().unwrap() > 0);
    assert!(call["contextMessages"].as_i64().unwrap() >= 1);
    assert_eq!(call["retrieval"], json!([]));
    assert_eq!(one.data()["detail"]["messageId"], question.as_str());
    let path = format!("/api/v1/bot-config/metrics/traces/{id}");
    b.s.p.app.get(&path, &other.token).await.expect(404);
    b.get("/bot-config/metrics/traces/not-a-uuid")
        .await
        .expect(404);
    b.get(&format!("/bot-config/metrics/traces/{}", Uuid::new_v4()))
        .await
        .expect(404);
    b.get("/bot-config/metrics/traces?days=31")
        .await
        .expect(422);
    // Reading is for every role.
    b.as_user(
        &agent_token,
        Method::GET,
        "/bot-config/metrics/quality",
        Value::Null,
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn the_sandbox_runs_the_reply_pipeline_without_whatsapp() {
    let b = Bot::start().await;
    b.call(
        Method::POST,
        "/bot-config/intents",
        json!({"name": "prices", "action": "ANSWER", "keywords": ["price"], "response": "Plans start at 10 EUR."}),
    )
    .await
    .expect(201);
    let say = |message: &str, reset: bool| {
        let body = json!({"message": message, "reset": reset});
        let b = &b;
        async move { b.call(Method::POST, "/bot-config/test-sandbox", body).await }
    };
    let one = say("first message", false).await.expect(200);
    assert_eq!(
        one.data()["reply"],
        "You said: first message",
        "{}",
        one.body
    );
    assert_eq!(one.data()["handedOff"], false);
    assert!(one.data()["usage"]["inputTokens"].as_u64().unwrap() > 0);
    assert_eq!(one.data()["history"].as_array().unwrap().len(), 2);
    let two = say("second message", false).await.expect(200);
    assert_eq!(two.data()["reply"], "You said: second message");
    let history = two.data()["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[1]["role"], "assistant");
    assert_eq!(history[1]["content"], "You said: first message");
    // The second request carried the first turn.
    let state = b.s.p.sim.state();
    let llm = state.llm();
    let sent = llm.requests(Some(SimProvider::OpenAi));
    assert_eq!(sent.len(), 2);
    let second = sent[1].body.to_string();
    assert!(second.contains("first message") && second.contains("You said: first message"));
    assert!(second.contains("You are the shop's assistant."));

    // An intent answers without the model; asking for a person hands over.
    let price = say("what is the price?", false).await.expect(200);
    assert_eq!(price.data()["reply"], "Plans start at 10 EUR.");
    assert_eq!(price.data()["intent"], "prices");
    assert_eq!(price.data()["usage"]["inputTokens"], 0);
    let human = say("I want a human", false).await.expect(200);
    assert_eq!(human.data()["handedOff"], true, "{}", human.body);
    assert_eq!(
        human.data()["handoffReason"],
        "the customer asked for a person"
    );
    assert_eq!(human.data()["reply"], "A person will help you now.");
    assert_eq!(llm.requests(Some(SimProvider::OpenAi)).len(), 2);

    // Nothing reached Meta or the inbox; the calls count in usage as `sandbox`.
    assert!(b
        .s
        .p
        .sim
        .state()
        .received(&ReceivedFilter::default())
        .is_empty());
    assert_eq!(b.s.p.count("SELECT count(*) FROM conversations").await, 0);
    assert_eq!(b.s.p.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(b.s.p.count("SELECT count(*) FROM bot_traces").await, 0);
    let sandbox =
        b.s.p
            .count("SELECT count(*) FROM llm_usage WHERE purpose = 'sandbox'")
            .await;
    assert_eq!(sandbox, 2);

    // A reset starts over.
    let fresh = say("fresh start", true).await.expect(200);
    assert_eq!(fresh.data()["history"].as_array().unwrap().len(), 2);
    let last = llm
        .requests(Some(SimProvider::OpenAi))
        .pop()
        .unwrap()
        .body
        .to_string();
    assert!(last.contains("fresh start") && !last.contains("first message"));

    // Every endpoint is in the OpenAPI document.
    let spec =
        b.s.p
            .app
            .request(Method::GET, "/api/v1/openapi.json", None, None);
    let spec = spec.await.expect(200);
    for path in [
        "/api/v1/bot-feedback",
        "/api/v1/bot-config/metrics/quality",
        "/api/v1/bot-config/metrics/sessions",
        "/api/v1/bot-config/metrics/traces",
        "/api/v1/bot-config/metrics/traces/{traceId}",
        "/api/v1/bot-config/test-sandbox",
    ] {
        assert!(spec.body["paths"].get(path).is_some(), "{path}");
    }

    // Bad input is named field by field; agents may not; no active config is a 404.
    let bad = b
        .call(
            Method::POST,
            "/bot-config/test-sandbox",
            json!({"message": " ", "reset": "yes"}),
        )
        .await
        .expect(422);
    let mut wrong = locs(&bad);
    wrong.sort();
    assert_eq!(wrong, ["message", "reset"], "{}", bad.body);
    let (_, agent) = b.s.p.app.create_user(&b.s.admin, "AGENT").await;
    let hello = json!({"message": "hello"});
    b.as_user(
        &agent,
        Method::POST,
        "/bot-config/test-sandbox",
        hello.clone(),
    )
    .await
    .expect(403);
    let other = b.s.p.app.register_org("No Bot Co").await;
    b.as_user(
        &other.token,
        Method::POST,
        "/bot-config/test-sandbox",
        hello,
    )
    .await
    .expect(404);
}
