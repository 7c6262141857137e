//! The bot in conversations, through the simulator: a new conversation starts with the bot
//! once the organization enabled it; a burst of messages gets one answer; an intent answers
//! without the model; asking for a person hands over to routing with a message to the
//! customer; an agent's takeover cancels a pending reply.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wharf_tests::platform::wait_for;

use super::routing::Setup;

impl Setup {
    pub(crate) async fn call(&self, method: Method, path: &str, body: Value) -> wharf_tests::Resp {
        self.p
            .app
            .request(
                method,
                &format!("/api/v1{path}"),
                Some(&self.admin.token),
                Some(body),
            )
            .await
    }

    /// An enabled bot whose active config answers "price" with a fixed text.
    async fn bot(&self, debounce: i32) {
        self.call(
            Method::PUT,
            "/bot-config",
            json!({"name": "Bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sk-none",
                   "debounceSeconds": debounce, "handoffMessage": "A person will help you now."}),
        )
        .await
        .expect(200);
        self.call(
            Method::POST,
            "/bot-config/intents",
            json!({"name": "prices", "action": "ANSWER", "keywords": ["price"], "response": "Plans start at 10 EUR."}),
        )
        .await
        .expect(201);
        self.call(Method::PUT, "/config/bot-enabled", json!({"enabled": true}))
            .await
            .expect(200);
    }

    fn texts_to(&self, to: &str) -> usize {
        self.p.accepted_to(to, "text")
    }

    async fn bot_jobs_done(&self) {
        wait_for("bot replies done", || async {
            self.p
                .count("SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND state NOT IN ('completed', 'cancelled')")
                .await
                == 0
                && self
                    .p
                    .count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'queued'")
                    .await
                    == 0
        })
        .await;
    }
}

#[tokio::test]
async fn a_burst_gets_one_answer_from_an_intent_and_asking_for_a_person_hands_over() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", None).await;
    let team = s.team("Front desk", &[agent]).await;
    s.default_team(&team).await;
    s.bot(2).await;
    let customer = "34633000001";
    let first = s.writes(customer, "hello").await;
    assert_eq!(first["status"], "BOT_HANDLING", "{first}");
    assert_eq!(first["assignedTo"], Value::Null);
    for text in [
        "one question",
        "about the price",
        "of the plans",
        "per month",
        "thanks",
    ] {
        s.p.customer_sends(
            &s.number,
            json!({"from": customer, "type": "text", "body": text}),
        );
    }
    wait_for("one answer", || async { s.texts_to(customer) >= 1 }).await;
    s.bot_jobs_done().await;
    assert_eq!(s.texts_to(customer), 1, "one answer to the whole burst");
    let answered: String = sqlx::query_scalar(
        "SELECT content->>'body' FROM messages WHERE direction = 'OUTBOUND' ORDER BY created_at LIMIT 1",
    )
    .fetch_one(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(answered, "Plans start at 10 EUR.");

    // Asking for a person: the customer is told, routing assigns the agent, the move is recorded.
    s.p.customer_sends(
        &s.number,
        json!({"from": customer, "type": "text", "body": "can I talk to a human?"}),
    );
    let id = first["id"].as_str().unwrap().to_string();
    wait_for("the handoff", || async {
        let c =
            s.p.app
                .get(&format!("/api/v1/conversations/{id}"), &s.admin.token)
                .await
                .expect(200);
        c.data()["assignedTo"] == agent.to_string()
    })
    .await;
    s.bot_jobs_done().await;
    assert_eq!(s.texts_to(customer), 2);
    let c =
        s.p.app
            .get(&format!("/api/v1/conversations/{id}"), &s.admin.token)
            .await
            .expect(200);
    assert_eq!(c.data()["status"], "HUMAN_HANDLING");
    let events: Vec<&str> = c.data()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(events.contains(&"HANDED_OFF"), "{events:?}");
    let traces =
        s.p.count("SELECT count(*) FROM bot_traces WHERE outcome IN ('answered', 'handoff')")
            .await;
    assert_eq!(traces, 2);
}

#[tokio::test]
async fn a_takeover_cancels_the_pending_reply_and_a_disabled_bot_leaves_conversations_to_routing() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", None).await;
    s.bot(3).await;
    let customer = "34633000002";
    let c = s.writes(customer, "what is the price?").await;
    let id = c["id"].as_str().unwrap().to_string();
    s.call(
        Method::POST,
        &format!("/conversations/{id}/takeover"),
        json!({"userId": agent}),
    )
    .await
    .expect(200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.bot_jobs_done().await;
    assert_eq!(s.texts_to(customer), 0, "no bot message after the takeover");

    s.call(
        Method::PUT,
        "/config/bot-enabled",
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let other = s.writes("34633000003", "what is the price?").await;
    assert_eq!(other["status"], "OPEN");
}

// ---- with the model (the simulator plays each provider) --------------------------------

use wharf_sim::llm::{LlmFaultAction, LlmFaultSpec, Provider as SimProvider, RuleSpec};

impl Setup {
    /// An enabled bot on `provider` with the simulator's key for it.
    pub(crate) async fn model_bot(&self, provider: &str, model: &str, extra: Value) {
        let mut body = json!({"name": "Bot", "provider": provider, "model": model,
                              "apiKey": format!("sim-{}-key", provider.to_lowercase()),
                              "debounceSeconds": 0, "systemPrompt": "You are the shop's assistant.",
                              "handoffMessage": "A person will help you now."});
        if let Value::Object(o) = extra {
            for (k, v) in o {
                body[k] = v;
            }
        }
        self.call(Method::PUT, "/bot-config", body)
            .await
            .expect(200);
        self.call(Method::PUT, "/config/bot-enabled", json!({"enabled": true}))
            .await
            .expect(200);
    }

    async fn last_text_to(&self, to: &str) -> String {
        sqlx::query_scalar(
            "SELECT m.content->>'body' FROM messages m JOIN conversations v ON v.id = m.conversation_id
               JOIN contacts c ON c.id = v.contact_id
              WHERE m.direction = 'OUTBOUND' AND c.wa_id = $1 ORDER BY m.created_at DESC LIMIT 1",
        )
        .bind(to)
        .fetch_one(&self.p.app.db.pool)
        .await
        .unwrap()
    }

    async fn conversation_of(&self, customer: &str) -> Value {
        let list = self
            .p
            .app
            .get("/api/v1/conversations", &self.admin.token)
            .await
            .expect(200);
        list.data()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["contact"]["waId"] == customer)
            .cloned()
            .unwrap()
    }
}

#[tokio::test]
async fn the_model_answers_in_each_wire_format_with_usage_and_a_trace() {
    let s = Setup::start().await;
    s.p.sim
        .state()
        .llm()
        .add_rule(RuleSpec::text("opening hours", "We open at 9."));
    for (i, (provider, model)) in [
        ("OPENAI", "gpt-4o-mini"),
        ("ANTHROPIC", "claude-3-5-haiku-latest"),
        ("GOOGLE", "gemini-2.5-flash"),
    ]
    .into_iter()
    .enumerate()
    {
        s.model_bot(provider, model, json!({})).await;
        let customer = format!("3464400000{i}");
        s.writes(&customer, "what are your opening hours?").await;
        wait_for("the model's answer", || async {
            s.texts_to(&customer) == 1
        })
        .await;
        assert_eq!(
            s.last_text_to(&customer).await,
            "We open at 9.",
            "{provider}"
        );
    }
    s.bot_jobs_done().await;
    let usage = s
        .call(Method::GET, "/bot-config/usage", json!({}))
        .await
        .expect(200);
    assert_eq!(usage.data()["replies"], 3, "{}", usage.body);
    assert!(usage.data()["tokens"].as_i64().unwrap() > 0);
    let providers: Vec<String> = sqlx::query_scalar("SELECT provider FROM llm_usage ORDER BY id")
        .fetch_all(&s.p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(providers, ["OPENAI", "ANTHROPIC", "GOOGLE"]);
    let answered =
        s.p.count("SELECT count(*) FROM bot_traces WHERE outcome = 'answered'")
            .await;
    assert_eq!(answered, 3);
    // The system prompt and the customer's words reached the provider.
    let sent = s.p.sim.state().llm().requests(Some(SimProvider::Anthropic));
    assert!(sent[0]
        .body
        .to_string()
        .contains("You are the shop's assistant."));
}

#[tokio::test]
async fn a_refused_key_hands_over_with_an_alert_and_the_key_appears_nowhere() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", None).await;
    let team = s.team("Desk", &[agent]).await;
    s.default_team(&team).await;
    s.model_bot(
        "OPENAI",
        "gpt-4o-mini",
        json!({"apiKey": "sk-definitely-wrong-0001"}),
    )
    .await;
    let customer = "34655000001";
    s.writes(customer, "hello there").await;
    wait_for("the handoff", || async {
        s.conversation_of(customer).await["assignedTo"] == agent.to_string()
    })
    .await;
    s.bot_jobs_done().await;
    assert_eq!(
        s.last_text_to(customer).await,
        "A person will help you now."
    );
    assert_eq!(
        s.p.sim
            .state()
            .llm()
            .requests(Some(SimProvider::OpenAi))
            .len(),
        1,
        "a refused key is not retried"
    );
    let alerts =
        s.p.app
            .get("/api/v1/whatsapp-accounts/alerts", &s.admin.token)
            .await
            .expect(200);
    assert!(
        alerts
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "LLM_KEY_INVALID"),
        "{}",
        alerts.body
    );
    assert!(!alerts.body.to_string().contains("sk-definitely-wrong-0001"));
}

#[tokio::test]
async fn throttling_and_outages_are_retried_then_answered() {
    let s = Setup::start().await;
    s.model_bot("OPENAI", "gpt-4o-mini", json!({})).await;
    let state = s.p.sim.state();
    let llm = state.llm();
    llm.add_fault(LlmFaultSpec::new(
        LlmFaultAction::RateLimited {
            retry_after_secs: Some(1),
        },
        1,
    ));
    llm.add_fault(LlmFaultSpec::new(LlmFaultAction::Http { status: 503 }, 1));
    let customer = "34655000002";
    s.writes(customer, "anyone there").await;
    wait_for("the answer", || async { s.texts_to(customer) == 1 }).await;
    assert_eq!(s.last_text_to(customer).await, "You said: anyone there");
    assert_eq!(llm.requests(Some(SimProvider::OpenAi)).len(), 3);
    assert_eq!(s.conversation_of(customer).await["status"], "BOT_HANDLING");
}

#[tokio::test]
async fn the_model_handing_over_the_turn_limit_and_the_monthly_limit_go_to_people() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", Some(10)).await;
    let team = s.team("Desk", &[agent]).await;
    s.default_team(&team).await;
    s.p.sim.state().llm().add_rule(RuleSpec::tool(
        "complicated",
        "handoff_to_human",
        json!({"reason": "a billing dispute"}),
    ));
    s.model_bot(
        "OPENAI",
        "gpt-4o-mini",
        json!({"maxTurns": 1, "greeting": "Hi, I am the shop's bot."}),
    )
    .await;

    // The model calls handoff_to_human.
    let a = "34655000003";
    s.writes(a, "it's complicated").await;
    wait_for("handed over", || async {
        s.conversation_of(a).await["assignedTo"] == agent.to_string()
    })
    .await;
    // The trace keeps the call that asked for a person.
    let tool: String = sqlx::query_scalar(
        "SELECT detail->'call'->'toolCalls'->0->>'name' FROM bot_traces WHERE outcome = 'handoff'",
    )
    .fetch_one(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(tool, "handoff_to_human");
    // One answer, opened by the greeting, then the turn limit.
    let b = "34655000004";
    s.writes(b, "first question").await;
    wait_for("the greeting and the answer", || async {
        s.texts_to(b) == 2
    })
    .await;
    let sent: Vec<String> = sqlx::query_scalar(
        "SELECT m.content->>'body' FROM messages m JOIN conversations v ON v.id = m.conversation_id
           JOIN contacts c ON c.id = v.contact_id
          WHERE m.direction = 'OUTBOUND' AND c.wa_id = $1 ORDER BY m.seq",
    )
    .bind(b)
    .fetch_all(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        sent,
        ["Hi, I am the shop's bot.", "You said: first question"]
    );
    s.p.customer_sends(
        &s.number,
        json!({"from": b, "type": "text", "body": "second question"}),
    );
    wait_for("handed over", || async {
        s.conversation_of(b).await["assignedTo"] == agent.to_string()
    })
    .await;
    // The month's tokens used up: the next conversation goes to people, with an alert.
    s.call(
        Method::PUT,
        "/config/bot-limits",
        json!({"monthlyTokenLimit": 1}),
    )
    .await
    .expect(200);
    let c = "34655000005";
    s.writes(c, "hello").await;
    wait_for("handed over", || async {
        s.conversation_of(c).await["assignedTo"] == agent.to_string()
    })
    .await;
    s.bot_jobs_done().await;
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM conversation_events WHERE type = 'HANDED_OFF' ORDER BY id",
    )
    .fetch_all(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        reasons,
        [
            "a billing dispute",
            "the bot reached its turn limit",
            "monthly token limit reached"
        ]
    );
    let usage = s
        .call(Method::GET, "/bot-config/usage", json!({}))
        .await
        .expect(200);
    assert_eq!(usage.data()["limitReached"], true);
}

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-worker");

/// Kills the worker processes when the test ends, whatever happened.
struct Workers(Vec<std::process::Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn two_worker_processes_hold_an_org_to_its_llm_requests_per_minute() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let p = wharf_tests::platform::Platform::start_without_worker().await;
    let admin = p.app.register_org("Busy Bot Co").await;
    let number = p.connect_number(admin.org_id).await;
    let s = Setup { p, admin, number };
    s.model_bot("OPENAI", "gpt-4o-mini", json!({})).await;
    // Two worker processes, each able to run three replies at once, and a budget of three
    // requests a minute for the organization: six customers, three calls reach the provider.
    let mut workers = Workers(Vec::new());
    let logs: Vec<std::path::PathBuf> = (0..2)
        .map(|i| {
            std::env::temp_dir().join(format!(
                "wharf-bot-worker-{}-{i}.log",
                uuid::Uuid::new_v4().simple()
            ))
        })
        .collect();
    for log in &logs {
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = std::process::Command::new(WORKER_BIN);
        cmd.env("DATABASE_URL", &s.p.app.db.url)
            .env("REDIS_PREFIX", &s.p.app.config.redis_prefix)
            .env("META_GRAPH_URL", s.p.sim.base_url())
            .env("LLM_REQUESTS_PER_MINUTE", "3")
            .env("WORKER_LANES", "inbound,outbound,llm")
            .env("WORKER_CONCURRENCY", "inbound=4,outbound=4,llm=3")
            .env("WORKER_METRICS_ADDR", "none")
            .env("WORKER_DB_POOL_SIZE", "6")
            .env("WORKER_POLL_MS", "50")
            .env("RUST_LOG", "debug")
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in wharf_tests::platform::llm_settings(&s.p.sim.base_url()) {
            cmd.env(k, v);
        }
        workers.0.push(cmd.spawn().expect("start a worker process"));
    }
    for i in 0..6 {
        s.p.customer_sends(
            &s.number,
            json!({"from": format!("3465100000{i}"), "type": "text", "body": "hello"}),
        );
    }
    let calls = || {
        s.p.sim
            .state()
            .llm()
            .requests(Some(SimProvider::OpenAi))
            .len()
    };
    wait_for("three calls", || async { calls() >= 3 }).await;
    wait_for("all six replies taken by the two processes", || async {
        s.p.count(
            "SELECT count(*) FROM jobs WHERE kind = 'bot.reply' AND state IN ('running', 'completed')",
        )
        .await
            == 6
    })
    .await;
    let answers = || {
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
    };
    wait_for("three answers", || async { answers().await == 3 }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        calls(),
        3,
        "the organization's budget holds across processes"
    );
    let processes =
        s.p.count("SELECT count(DISTINCT attempted_by) FROM jobs WHERE kind = 'bot.reply'")
            .await;
    assert_eq!(processes, 2, "both processes ran replies");
    assert_eq!(answers().await, 3, "three answers so far, the rest wait");
    drop(workers);
    // Everything the processes logged at debug level: the key sent with every call is in none.
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap();
        let _ = std::fs::remove_file(log);
        assert!(text.contains("bot"), "the worker logged its work");
        assert!(!text.contains("sim-openai-key"), "a key reached a log line");
    }
    let answered =
        s.p.app
            .get("/api/v1/bot-config", &s.admin.token)
            .await
            .expect(200);
    assert!(!answered.body.to_string().contains("sim-openai-key"));
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_call_can_wait_retries_the_reply_later() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", None).await;
    let team = s.team("Desk", &[agent]).await;
    s.default_team(&team).await;
    s.model_bot("OPENAI", "gpt-4o-mini", json!({})).await;
    // The provider asks for 40 s, more than one call waits (30 s): the job tries again after
    // its backoff instead of handing the customer over.
    s.p.sim.state().llm().add_fault(LlmFaultSpec::new(
        LlmFaultAction::RateLimited {
            retry_after_secs: Some(40),
        },
        1,
    ));
    let customer = "34655000009";
    s.writes(customer, "are you open on sunday").await;
    wait_for("the answer on the job's second attempt", || async {
        s.texts_to(customer) == 1
    })
    .await;
    assert_eq!(
        s.last_text_to(customer).await,
        "You said: are you open on sunday"
    );
    assert_eq!(s.conversation_of(customer).await["status"], "BOT_HANDLING");
    let attempts =
        s.p.count("SELECT max(attempt)::bigint FROM jobs WHERE kind = 'bot.reply'")
            .await;
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn a_handoff_intent_sends_the_conversation_to_its_team_without_the_model() {
    let s = Setup::start().await;
    let front = s.agent("ONLINE", None).await;
    let desk = s.team("Front desk", &[front]).await;
    s.default_team(&desk).await;
    let biller = s.agent("ONLINE", None).await;
    let billing = s.team("Billing", &[biller]).await;
    s.model_bot("OPENAI", "gpt-4o-mini", json!({})).await;
    s.call(
        Method::POST,
        "/bot-config/intents",
        json!({"name": "invoices", "action": "HANDOFF", "keywords": ["invoice"], "teamId": billing}),
    )
    .await
    .expect(201);
    let customer = "34655000010";
    s.writes(customer, "a question about my invoice").await;
    wait_for("handed to billing", || async {
        s.conversation_of(customer).await["assignedTo"] == biller.to_string()
    })
    .await;
    s.bot_jobs_done().await;
    let c = s.conversation_of(customer).await;
    assert_eq!(c["teamId"], billing.as_str());
    assert_eq!(c["status"], "HUMAN_HANDLING");
    assert_eq!(
        s.last_text_to(customer).await,
        "A person will help you now."
    );
    assert!(
        s.p.sim.state().llm().requests(None).is_empty(),
        "an intent decides without the model"
    );
}
