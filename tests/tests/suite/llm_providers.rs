//! The LLM client (`wharf_shared::llm`) against the simulator's provider stand-ins over real
//! HTTP: every wire format, tool round trips, streams, embeddings, retries, key errors,
//! timeouts and the per-organization limiter (through Redis).

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;
use wharf_shared::{
    llm::{
        pricing, ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, LlmLimiter,
        LlmLimits, Provider, ProviderUrls, RetryPolicy, StreamEvent, Target, ToolSpec,
    },
    redis_conn::RedisHandle,
    Config,
};
use wharf_sim::llm::{self as simllm, LlmFaultAction, LlmFaultSpec, RuleSpec};
use wharf_sim::SimHandle;
use wharf_tests::platform::llm_settings;

const SYSTEM: &str = "You are terse.";

fn sim_provider(p: Provider) -> simllm::Provider {
    serde_json::from_value(json!(p.as_str())).unwrap()
}

struct Setup {
    sim: SimHandle,
    client: LlmClient,
    org: Uuid,
}

impl Setup {
    /// A simulator with a key per provider, and a client pointed at it.
    async fn new(limits: LlmLimits, timeout: Duration) -> Self {
        let sim = wharf_sim::spawn(wharf_sim::SimConfig::default())
            .await
            .unwrap();
        for p in Provider::ALL {
            sim.state().llm().register_key(sim_provider(p), &key(p));
        }
        let client = LlmClient::new(
            ProviderUrls::all(&sim.base_url()),
            LlmLimiter::local(limits),
        )
        .with_timeout(timeout);
        Self {
            sim,
            client,
            org: Uuid::new_v4(),
        }
    }

    async fn default() -> Self {
        Self::new(LlmLimits::default(), Duration::from_secs(10)).await
    }

    fn target(&self, p: Provider) -> Target {
        let model = match p {
            Provider::OpenAi => "gpt-5.4-mini",
            Provider::Anthropic => "claude-sonnet-4-5",
            Provider::Google => "gemini-2.5-flash",
            Provider::DeepSeek => "deepseek-flash",
            Provider::Kimi => "kimi-k2.6",
            Provider::Local => "llama3.1",
        };
        Target {
            provider: p,
            // Ollama-style: no key at all.
            api_key: if p == Provider::Local {
                String::new()
            } else {
                key(p)
            },
            base_url: (p == Provider::Local).then(|| format!("{}/v1", self.sim.base_url())),
            model: model.into(),
        }
    }

    fn requests(&self, p: Provider) -> Vec<simllm::LlmRequest> {
        self.sim.state().llm().requests(Some(sim_provider(p)))
    }

    fn fault(&self, p: Provider, action: LlmFaultAction, count: u32) {
        self.sim
            .state()
            .llm()
            .add_fault(LlmFaultSpec::new(action, count).for_provider(sim_provider(p)));
    }
}

fn key(p: Provider) -> String {
    format!(
        "sk-e2e-{}-0123456789abcdef",
        p.as_str().to_ascii_lowercase()
    )
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        system: Some(SYSTEM.into()),
        messages: vec![ChatMessage::user(text)],
        temperature: Some(0.3),
        max_tokens: 256,
        tools: Vec::new(),
    }
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather in a city".into(),
        parameters: json!({"type": "object", "additionalProperties": false,
                           "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

/// Fast retries for tests: the policy's shape, not its production waits.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn one_chat_per_wire_format_returns_the_scripted_text_and_usage() {
    let s = Setup::default().await;
    s.sim
        .state()
        .llm()
        .add_rule(RuleSpec::text("order 42", "Your order ships today."));
    let req = ask("Where is order 42?");
    for p in Provider::ALL {
        let target = s.target(p);
        let r = s
            .client
            .chat(s.org, &target, &req, &RetryPolicy::default())
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(r.text, "Your order ships today.", "{p}");
        assert_eq!(r.finish_reason, "stop", "{p}");
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.usage.input_tokens,
            simllm::tokens(&format!("{SYSTEM} Where is order 42?")),
            "{p}: the system prompt and the message are both input"
        );
        assert_eq!(
            r.usage.output_tokens,
            simllm::tokens("Your order ships today."),
            "{p}"
        );
        assert_eq!(r.model, target.model, "{p}");
        assert!(r.latency > Duration::ZERO);
        let log = s.requests(p);
        assert_eq!(log.len(), 1, "{p}: one request");
        assert_eq!(log[0].status, Some(200));
        let expected_path = match p {
            Provider::DeepSeek => "/chat/completions".to_string(),
            Provider::Anthropic => "/v1/messages".into(),
            Provider::Google => "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            _ => "/v1/chat/completions".into(),
        };
        assert_eq!(log[0].path, expected_path, "{p}");
        assert_eq!(log[0].key_fingerprint.is_some(), p != Provider::Local);
    }
    // The shapes each server wants.
    let openai = &s.requests(Provider::OpenAi)[0].body;
    assert_eq!(openai["max_completion_tokens"], 256);
    assert!(
        openai.get("temperature").is_none(),
        "gpt-5.x takes only the default"
    );
    assert_eq!(s.requests(Provider::DeepSeek)[0].body["max_tokens"], 256);
    let anthropic = &s.requests(Provider::Anthropic)[0].body;
    assert_eq!(anthropic["system"], SYSTEM);
    assert_eq!(anthropic["messages"][0]["role"], "user");
    let gemini = &s.requests(Provider::Google)[0].body;
    assert_eq!(gemini["systemInstruction"]["parts"][0]["text"], SYSTEM);
    assert_eq!(gemini["generationConfig"]["maxOutputTokens"], 256);
    // And what the call cost, by the price table.
    let r = s
        .client
        .chat_once(&s.target(Provider::OpenAi), &req)
        .await
        .unwrap();
    assert!(pricing::cost_usd(Provider::OpenAi, &r.model, &r.usage) > 0.0);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn tool_call_round_trip_in_each_format() {
    let s = Setup::default().await;
    s.sim.state().llm().add_rule(RuleSpec::tool(
        "weather",
        "get_weather",
        json!({"city": "Paris"}),
    ));
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Google] {
        let target = s.target(p);
        let mut req = ask("What's the weather in Paris?");
        req.tools = vec![weather_tool()];
        let first = s
            .client
            .chat(s.org, &target, &req, &RetryPolicy::default())
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(first.finish_reason, "tool_calls", "{p}");
        assert_eq!(first.tool_calls.len(), 1, "{p}");
        let call = &first.tool_calls[0];
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, json!({"city": "Paris"}), "{p}");
        assert!(!call.id.is_empty());

        req.messages.push(ChatMessage::from_response(&first));
        req.messages
            .push(ChatMessage::tool_result(&call.id, r#"{"temp_c":18}"#));
        let second = s
            .client
            .chat(s.org, &target, &req, &RetryPolicy::default())
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(second.text, r#"Tool result: {"temp_c":18}"#, "{p}");
        assert_eq!(second.finish_reason, "stop");
    }
    // On the wire: OpenAI's arguments are a string, Anthropic's results open the user turn,
    // Gemini answers by function name with an object.
    let openai = &s.requests(Provider::OpenAi)[1].body;
    assert_eq!(
        openai["messages"][2]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(openai["messages"][3]["role"], "tool");
    let anthropic = &s.requests(Provider::Anthropic)[1].body;
    assert_eq!(
        anthropic["messages"][2]["content"][0]["type"],
        "tool_result"
    );
    let gemini = &s.requests(Provider::Google)[1].body;
    assert_eq!(
        gemini["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp_c": 18}})
    );
    assert!(
        gemini["tools"][0]["functionDeclarations"][0]["parameters"]
            .get("additionalProperties")
            .is_none(),
        "Gemini's schema subset"
    );
    s.sim.shutdown().await;
}

/// Deltas and the final answer of a stream.
async fn collect(s: &Setup, target: &Target, req: &ChatRequest) -> (String, ChatResponse) {
    let mut stream = s.client.chat_stream(s.org, target, req).await.unwrap();
    let mut deltas = String::new();
    let mut done = None;
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            StreamEvent::Delta(d) => {
                assert!(done.is_none(), "no delta after Done");
                deltas.push_str(&d);
            }
            StreamEvent::Done(r) => done = Some(r),
        }
    }
    (deltas, done.expect("a Done event"))
}

#[tokio::test]
async fn streaming_in_each_format() {
    let s = Setup::default().await;
    s.sim.state().llm().add_rule(RuleSpec::tool(
        "weather",
        "get_weather",
        json!({"city": "Paris"}),
    ));
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Google] {
        let target = s.target(p);
        let (deltas, done) = collect(&s, &target, &ask("stream this please")).await;
        assert_eq!(deltas, "You said: stream this please", "{p}");
        assert_eq!(done.text, deltas);
        assert_eq!(done.finish_reason, "stop");
        assert_eq!(
            done.usage.output_tokens,
            simllm::tokens("You said: stream this please"),
            "{p}: usage from the end of the stream"
        );
        assert!(done.usage.input_tokens > 0, "{p}");

        let mut req = ask("weather in Paris?");
        req.tools = vec![weather_tool()];
        let (_, done) = collect(&s, &target, &req).await;
        assert_eq!(done.finish_reason, "tool_calls", "{p}");
        assert_eq!(
            done.tool_calls[0].arguments,
            json!({"city": "Paris"}),
            "{p}: arguments assembled from fragments"
        );
    }
    let gemini = s.requests(Provider::Google);
    assert_eq!(
        gemini[0].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert!(s.requests(Provider::OpenAi)[0].body["stream_options"]["include_usage"] == true);
    s.sim.shutdown().await;
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_where_supported() {
    let s = Setup::default().await;
    let texts: Vec<String> = ["Where is my order?", "my order is late", "Sunny in Paris"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    // Models that can shorten their vectors are asked for 512 dimensions; the local model
    // answers its own size (the simulator's default, 256).
    for (p, model, dims) in [
        (Provider::OpenAi, "text-embedding-3-small", 512),
        (Provider::Local, "nomic-embed-text", 256),
        (Provider::Google, "gemini-embedding-001", 512),
    ] {
        let target = Target {
            model: model.into(),
            ..s.target(p)
        };
        let e = s
            .client
            .embed(s.org, &target, &texts)
            .await
            .unwrap_or_else(|err| panic!("{p}: {err}"));
        assert_eq!(e.vectors.len(), 3);
        assert!(e.vectors.iter().all(|v| v.len() == dims), "{p}");
        assert!(cosine(&e.vectors[0], &e.vectors[1]) > 0.4, "{p}");
        assert!(cosine(&e.vectors[0], &e.vectors[2]).abs() < 0.3, "{p}");
        assert!(e.usage.input_tokens > 0);
        // One input: Gemini's single `embedContent`.
        let one = s.client.embed(s.org, &target, &texts[..1]).await.unwrap();
        assert_eq!(one.vectors[0], e.vectors[0], "{p}: deterministic");
    }
    let google: Vec<String> = s
        .requests(Provider::Google)
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        google,
        [
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            "/v1beta/models/gemini-embedding-001:embedContent"
        ]
    );
    for p in [Provider::Anthropic, Provider::DeepSeek, Provider::Kimi] {
        let err = s
            .client
            .embed(s.org, &s.target(p), &texts)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LlmError::BadRequest(m) if m.contains("has no embeddings API")),
            "{p}: {err}"
        );
        assert!(s.requests(p).is_empty(), "{p}: refused without a call");
    }
    s.sim.shutdown().await;
}

#[tokio::test]
async fn rate_limited_then_success_after_retry_after() {
    let s = Setup::default().await;
    // OpenAI says when in `retry-after`; Gemini in the body's RetryInfo.
    for p in [Provider::OpenAi, Provider::Google] {
        s.fault(
            p,
            LlmFaultAction::RateLimited {
                retry_after_secs: Some(1),
            },
            1,
        );
        let started = Instant::now();
        let r = s
            .client
            .chat(s.org, &s.target(p), &ask("hello"), &quick_retries())
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(r.text, "You said: hello");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{p}: waited {:?}, less than Retry-After",
            started.elapsed()
        );
        let log = s.requests(p);
        assert_eq!(
            log.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Some(429), Some(200)]
        );
        assert!(log[1].at.duration_since(log[0].at) >= Duration::from_secs(1));
    }
    // A wait longer than the policy honours is not slept through.
    s.fault(
        Provider::Anthropic,
        LlmFaultAction::RateLimited {
            retry_after_secs: Some(120),
        },
        1,
    );
    let started = Instant::now();
    let err = s
        .client
        .chat(
            s.org,
            &s.target(Provider::Anthropic),
            &ask("hello"),
            &quick_retries(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120))
    );
    assert!(err.is_retryable() && err.kind() == "rate_limited");
    assert!(started.elapsed() < Duration::from_secs(5));
    s.sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_then_success() {
    let s = Setup::default().await;
    let state = s.sim.state();
    let llm = state.llm();
    llm.add_fault(
        LlmFaultSpec::new(LlmFaultAction::Http { status: 529 }, 1)
            .for_provider(simllm::Provider::Anthropic),
    );
    llm.add_fault(
        LlmFaultSpec::new(LlmFaultAction::Http { status: 500 }, 1)
            .for_provider(simllm::Provider::Anthropic),
    );
    let r = s
        .client
        .chat(
            s.org,
            &s.target(Provider::Anthropic),
            &ask("hello"),
            &quick_retries(),
        )
        .await
        .unwrap();
    assert_eq!(r.text, "You said: hello");
    let statuses: Vec<_> = s
        .requests(Provider::Anthropic)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(529), Some(500), Some(200)]);

    // Attempts are bounded: four 503s and the fourth is the caller's.
    s.fault(Provider::DeepSeek, LlmFaultAction::Http { status: 503 }, 5);
    let err = s
        .client
        .chat(
            s.org,
            &s.target(Provider::DeepSeek),
            &ask("hello"),
            &quick_retries(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert_eq!(s.requests(Provider::DeepSeek).len(), 4);
    // chat_once never retries.
    s.fault(Provider::OpenAi, LlmFaultAction::Http { status: 500 }, 1);
    let err = s
        .client
        .chat_once(&s.target(Provider::OpenAi), &ask("hello"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)));
    assert_eq!(s.requests(Provider::OpenAi).len(), 1);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn invalid_key_fails_at_once_without_leaking_it() {
    let s = Setup::default().await;
    for p in [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Google,
        Provider::DeepSeek,
        Provider::Kimi,
    ] {
        let secret = format!("sk-live-{}-SECRET-7f3a9c2e", p.as_str());
        let target = Target {
            api_key: secret.clone(),
            ..s.target(p)
        };
        let started = Instant::now();
        let err = s
            .client
            .chat(s.org, &target, &ask("hello"), &RetryPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::InvalidKey(_)), "{p}: {err}");
        assert!(!err.is_retryable());
        assert_eq!(err.kind(), "invalid_key");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{p}: no backoff"
        );
        assert_eq!(s.requests(p).len(), 1, "{p}: one request, no retries");
        assert!(
            !err.to_string().contains(&secret),
            "{p}: key in Display: {err}"
        );
        assert!(!format!("{err:?}").contains(&secret));
        assert!(!format!("{target:?}").contains(&secret));
        // The same key refused for a key check.
        let err = s.client.list_models(&target).await.unwrap_err();
        assert!(matches!(err, LlmError::InvalidKey(_)), "{p}: {err}");
    }
    // A fault that refuses a good key is the same to the client.
    s.fault(Provider::OpenAi, LlmFaultAction::InvalidKey, 1);
    let err = s
        .client
        .chat(
            s.org,
            &s.target(Provider::OpenAi),
            &ask("hi"),
            &RetryPolicy::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::InvalidKey(_)));
    // No key configured: refused before any call.
    let err = s
        .client
        .chat_once(
            &Target {
                api_key: " ".into(),
                ..s.target(Provider::Kimi)
            },
            &ask("hi"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::InvalidKey(_)));
    assert_eq!(s.requests(Provider::Kimi).len(), 1);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn a_timeout_is_unavailable_and_retried() {
    let s = Setup::new(LlmLimits::default(), Duration::from_millis(400)).await;
    s.fault(Provider::Kimi, LlmFaultAction::Hang, 1);
    let started = Instant::now();
    let r = s
        .client
        .chat(
            s.org,
            &s.target(Provider::Kimi),
            &ask("hello"),
            &quick_retries(),
        )
        .await
        .unwrap();
    assert_eq!(r.text, "You said: hello");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let statuses: Vec<_> = s
        .requests(Provider::Kimi)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [None, Some(200)],
        "the hung request never answered"
    );

    s.fault(Provider::Kimi, LlmFaultAction::Hang, 1);
    let err = s
        .client
        .chat_once(&s.target(Provider::Kimi), &ask("hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Unavailable(m) if m.contains("timed out")),
        "{err}"
    );
    assert!(err.is_retryable());
    s.sim.shutdown().await;
}

#[tokio::test]
async fn list_models_for_each_provider() {
    let s = Setup::default().await;
    for (p, expected) in [
        (Provider::OpenAi, "gpt-5-nano"),
        (Provider::Anthropic, "claude-sonnet-4-5"),
        (Provider::Google, "gemini-2.5-flash"),
        (Provider::DeepSeek, "deepseek-flash"),
        (Provider::Kimi, "kimi-k2.6"),
        (Provider::Local, "llama3.1"),
    ] {
        let models = s
            .client
            .list_models(&s.target(p))
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(models.iter().any(|m| m == expected), "{p}: {models:?}");
    }
    // Anthropic's list comes in pages of at most 1000; the client follows them.
    s.sim.state().llm().set_models(
        simllm::Provider::Anthropic,
        (0..1005).map(|i| format!("claude-test-{i}")).collect(),
    );
    let all = s
        .client
        .list_models(&s.target(Provider::Anthropic))
        .await
        .unwrap();
    assert_eq!(all.len(), 1005);
    assert_eq!(s.requests(Provider::Anthropic).len(), 3, "1 + 2 pages");
    s.sim.shutdown().await;
}

/// A call that fails fast instead of waiting for the limiter.
fn no_waiting() -> RetryPolicy {
    RetryPolicy {
        max_total: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn the_limiter_holds_an_org_to_its_requests_per_minute() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    // Through Redis, with the limits read from the configuration: 5 requests a minute.
    let sim = wharf_sim::spawn(wharf_sim::SimConfig::default())
        .await
        .unwrap();
    sim.state()
        .llm()
        .register_key(simllm::Provider::OpenAi, &key(Provider::OpenAi));
    let prefix = format!("test-{}", Uuid::new_v4().simple());
    let mut vars: Vec<(&str, String)> = llm_settings(&sim.base_url());
    vars.push(("REDIS_PREFIX", prefix));
    vars.push(("LLM_REQUESTS_PER_MINUTE", "5".into()));
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let redis = RedisHandle::connect(&config).await;
    assert!(redis.ping().await, "the suite runs with Redis");
    let client = LlmClient::from_config(&config, redis);
    let s = Setup {
        sim,
        client,
        org: Uuid::new_v4(),
    };
    let target = s.target(Provider::OpenAi);
    let req = ask("hello");
    let policy = no_waiting();
    let calls = (0..8).map(|_| s.client.chat(s.org, &target, &req, &policy));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 5, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        match r {
            Err(LlmError::RateLimited {
                retry_after: Some(d),
                message,
            }) => {
                assert!(*d > Duration::from_secs(5), "{d:?}");
                assert!(message.contains("organization"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        s.requests(Provider::OpenAi).len(),
        5,
        "only 5 reached the provider"
    );
    // Another organization, and another provider of the same one, have their own budget.
    s.client
        .chat(Uuid::new_v4(), &target, &req, &no_waiting())
        .await
        .unwrap();
    s.client
        .chat(s.org, &s.target(Provider::Local), &req, &no_waiting())
        .await
        .unwrap();
    // A second client (another process) shares the same budget through Redis.
    let other = LlmClient::from_config(&config, RedisHandle::connect(&config).await);
    let err = other
        .chat(s.org, &target, &req, &no_waiting())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "rate_limited");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn callers_that_can_wait_are_paced_not_refused() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    // In-process, with a one-second window: 5 at once, then one every 200 ms.
    let limits = LlmLimits {
        requests: 5,
        tokens: 1_000_000,
        window: Duration::from_secs(1),
    };
    let s = Setup::new(limits, Duration::from_secs(10)).await;
    let target = s.target(Provider::Anthropic);
    let req = ask("hello");
    let started = Instant::now();
    let policy = RetryPolicy::default();
    let calls = (0..8).map(|_| s.client.chat(s.org, &target, &req, &policy));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let mut at: Vec<Duration> = s
        .requests(Provider::Anthropic)
        .iter()
        .map(|r| r.at.duration_since(started))
        .collect();
    at.sort();
    assert_eq!(at.len(), 8);
    assert!(at[4] < Duration::from_millis(150), "the burst: {at:?}");
    assert!(at[5] >= Duration::from_millis(150), "then paced: {at:?}");
    assert!(at[7] >= Duration::from_millis(550), "{at:?}");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn the_token_budget_counts_prompt_and_max_tokens() {
    let limits = LlmLimits {
        requests: 1000,
        tokens: 1000,
        window: Duration::from_secs(60),
    };
    let s = Setup::new(limits, Duration::from_secs(10)).await;
    let target = s.target(Provider::Google);
    let mut req = ask("hello");
    req.max_tokens = 600;
    s.client
        .chat(s.org, &target, &req, &no_waiting())
        .await
        .unwrap();
    let err = s
        .client
        .chat(s.org, &target, &req, &no_waiting())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "rate_limited");
    assert_eq!(s.requests(Provider::Google).len(), 1);
    s.sim.shutdown().await;
}
