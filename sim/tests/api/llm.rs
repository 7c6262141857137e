//! The LLM providers' stand-ins over real HTTP: each format's answers, errors, streams,
//! embeddings and model lists, scripted through `sim.llm()` and `/_sim/llm`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wharf_sim::llm::{tokens, LlmFaultAction, LlmFaultSpec, Provider, RuleSpec};
use wharf_sim::{Sim, SimConfig, SimHandle};

const OPENAI_KEY: &str = "sk-test-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789";
const GOOGLE_KEY: &str = "AIza-test-0123456789";
const DEEPSEEK_KEY: &str = "sk-test-deepseek-0123456789";
const KIMI_KEY: &str = "sk-test-kimi-0123456789";

struct Llm {
    handle: SimHandle,
    sim: Sim,
    base: String,
    http: reqwest::Client,
}

impl Llm {
    async fn new() -> Self {
        let handle = wharf_sim::spawn(SimConfig::default()).await.unwrap();
        let sim = handle.state();
        let llm = sim.llm();
        llm.register_key(Provider::OpenAi, OPENAI_KEY);
        llm.register_key(Provider::Anthropic, ANTHROPIC_KEY);
        llm.register_key(Provider::Google, GOOGLE_KEY);
        llm.register_key(Provider::DeepSeek, DEEPSEEK_KEY);
        llm.register_key(Provider::Kimi, KIMI_KEY);
        let base = handle.base_url();
        Self {
            handle,
            sim,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn read(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn openai(
        &self,
        path: &str,
        key: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::read(resp).await
    }

    async fn anthropic(&self, key: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/messages", self.base))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::read(resp).await
    }

    async fn gemini(
        &self,
        action: &str,
        key: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .post(format!("{}/v1beta/models/{action}", self.base))
            .header("x-goog-api-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::read(resp).await
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[tokio::test]
async fn each_openai_compatible_provider_echoes_with_usage() {
    let t = Llm::new().await;
    let body = |model: &str| json!({"model": model, "messages": [{"role": "system", "content": "Be terse."}, user("hello there")]});
    let (s, h, b) = t
        .openai("/v1/chat/completions", OPENAI_KEY, body("gpt-5-nano"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["object"], "chat.completion");
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "You said: hello there"
    );
    assert_eq!(b["choices"][0]["finish_reason"], "stop");
    assert_eq!(b["usage"]["prompt_tokens"], tokens("Be terse. hello there"));
    assert_eq!(
        b["usage"]["completion_tokens"],
        tokens("You said: hello there")
    );
    assert!(h.contains_key("x-request-id") && h.contains_key("x-ratelimit-remaining-requests"));

    // DeepSeek at its documented base (no /v1), with its cache fields.
    let (s, _, b) = t
        .openai("/chat/completions", DEEPSEEK_KEY, body("deepseek-flash"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["usage"]["prompt_cache_miss_tokens"],
        b["usage"]["prompt_tokens"]
    );
    let (s, _, b) = t
        .openai("/v1/chat/completions", KIMI_KEY, body("kimi-k2.6"))
        .await;
    assert_eq!(s, 200, "{b}");
    // LOCAL: no key at all, as Ollama takes it.
    let resp = t
        .http
        .post(format!("{}/v1/chat/completions", t.base))
        .json(&body("llama3.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let log = t.sim.llm().requests(None);
    let providers: Vec<Provider> = log.iter().map(|r| r.provider).collect();
    assert_eq!(
        providers,
        [
            Provider::OpenAi,
            Provider::DeepSeek,
            Provider::Kimi,
            Provider::Local
        ]
    );
    assert!(log.iter().all(|r| r.status == Some(200) && r.authenticated));
    assert_eq!(log[0].model.as_deref(), Some("gpt-5-nano"));
    assert_eq!(log[0].body["messages"][1]["content"], "hello there");
    // A fingerprint, never the key.
    let fp = log[0].key_fingerprint.clone().unwrap();
    assert!(fp.starts_with("sha256:") && !fp.contains(OPENAI_KEY));
    assert!(!serde_json::to_string(&log).unwrap().contains(OPENAI_KEY));
    t.handle.shutdown().await;
}

#[tokio::test]
async fn wrong_keys_get_each_providers_error() {
    let t = Llm::new().await;
    let chat = json!({"model": "gpt-5-nano", "messages": [user("hi")]});
    let (s, _, b) = t
        .openai(
            "/v1/chat/completions",
            "sk-wrong-key-0123456789",
            chat.clone(),
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "invalid_api_key");
    assert!(
        !b.to_string().contains("sk-wrong-key-0123456789"),
        "the key is masked: {b}"
    );
    // A real key of another provider is just as wrong.
    let (s, _, _) = t
        .openai("/v1/chat/completions", ANTHROPIC_KEY, chat.clone())
        .await;
    assert_eq!(s, 401);
    let (s, _, b) = t
        .openai(
            "/chat/completions",
            "sk-nope-0123456789",
            json!({"model": "deepseek-flash", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let (s, _, b) = t
        .openai(
            "/v1/chat/completions",
            "sk-nope-0123456789",
            json!({"model": "kimi-k2.6", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (401, Some("invalid_authentication_error"))
    );
    let (s, _, b) = t
        .anthropic(
            "sk-ant-wrong",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(b["type"], "error");
    assert_eq!(b["error"]["type"], "authentication_error");
    let (s, _, b) = t
        .gemini(
            "gemini-2.5-flash:generateContent",
            "AIza-wrong",
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        )
        .await;
    assert_eq!(s, 400, "Gemini answers a bad key with 400");
    assert_eq!(b["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(b["error"]["details"][0]["reason"], "API_KEY_INVALID");
    // OpenAI has no /chat/completions without /v1.
    let (s, _, _) = t.openai("/chat/completions", OPENAI_KEY, chat).await;
    assert_eq!(s, 404);
    assert!(t
        .sim
        .llm()
        .requests(None)
        .iter()
        .all(|r| !r.authenticated || r.status == Some(404)));
    t.handle.shutdown().await;
}

#[tokio::test]
async fn openai_request_shape_is_checked() {
    let t = Llm::new().await;
    let cases = [
        (
            json!({"model": "gpt-5-nano", "messages": []}),
            400,
            "empty array",
        ),
        (
            json!({"messages": [user("hi")]}),
            400,
            "you must provide a model parameter",
        ),
        (
            json!({"model": "gpt-nope", "messages": [user("hi")]}),
            404,
            "does not exist",
        ),
        (
            json!({"model": "gpt-5-nano", "messages": [user("hi")], "top_k": 3}),
            400,
            "Unrecognized request argument supplied: top_k",
        ),
        (
            json!({"model": "gpt-5-nano", "messages": [user("hi")], "max_tokens": 10}),
            400,
            "Use 'max_completion_tokens' instead",
        ),
        (
            json!({"model": "gpt-5-nano", "messages": [user("hi")], "temperature": 0.2}),
            400,
            "Only the default (1) value is supported",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [user("hi")], "stream_options": {"include_usage": true}}),
            400,
            "only allowed when 'stream' is enabled",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "Invalid value: 'robot'",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [user("hi"), {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}),
            400,
            "preceeding message with 'tool_calls'",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [user("hi"), {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, user("and?")]}),
            400,
            "did not have response messages: call_1",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [user("hi"), {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}),
            400,
            "expected a string",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [{"role": "assistant", "content": null}]}),
            400,
            "got null",
        ),
    ];
    for (body, status, text) in cases {
        let (s, _, b) = t
            .openai("/v1/chat/completions", OPENAI_KEY, body.clone())
            .await;
        assert_eq!(s, status, "{body} → {b}");
        let msg = b["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(text), "{body} → {msg}");
    }
    // Kimi's K2.6+ fix the temperature at 1.
    let (s, _, b) = t
        .openai(
            "/v1/chat/completions",
            KIMI_KEY,
            json!({"model": "kimi-k2.6", "messages": [user("hi")], "temperature": 0.3}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["error"]["message"],
        "invalid temperature: only 1 is allowed for this model"
    );
    t.handle.shutdown().await;
}

#[tokio::test]
async fn anthropic_and_gemini_request_shapes_are_checked() {
    let t = Llm::new().await;
    let m = |extra: Value| {
        let mut b =
            json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [user("hi")]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            json!({"model": "claude-sonnet-4-5", "messages": [user("hi")]}),
            400,
            "max_tokens: Field required",
        ),
        (
            m(json!({"messages": [{"role": "system", "content": "x"}, user("hi")]})),
            400,
            "Unexpected role \"system\"",
        ),
        (
            m(json!({"messages": [user("a"), user("b")]})),
            400,
            "roles must alternate",
        ),
        (
            m(json!({"messages": [{"role": "assistant", "content": "x"}, user("b")]})),
            400,
            "first message must use the \"user\" role",
        ),
        (
            m(
                json!({"messages": [user("a"), {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}, user("b")]}),
            ),
            400,
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        ),
        (
            m(
                json!({"messages": [user("a"), {"role": "assistant", "content": "x"}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]}),
            ),
            400,
            "unexpected `tool_use_id`",
        ),
        (m(json!({"temperature": 1.5})), 400, "temperature"),
        (
            m(json!({"model": "claude-nope"})),
            404,
            "model: claude-nope",
        ),
        (m(json!({"messages": []})), 400, "at least one message"),
    ];
    for (body, status, text) in cases {
        let (s, _, b) = t.anthropic(ANTHROPIC_KEY, body.clone()).await;
        assert_eq!(s, status, "{body} → {b}");
        assert_eq!(b["type"], "error");
        let msg = b["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(text), "{body} → {msg}");
    }
    let resp = t
        .http
        .post(format!("{}/v1/messages", t.base))
        .header("x-api-key", ANTHROPIC_KEY)
        .json(&m(json!({})))
        .send()
        .await
        .unwrap();
    let (s, _, b) = Llm::read(resp).await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));

    let g = |contents: Value| json!({"contents": contents});
    let cases = [
        (g(json!([])), 400, "contents is not specified"),
        (
            g(json!([{"role": "assistant", "parts": [{"text": "x"}]}])),
            400,
            "Please use a valid role: user, model.",
        ),
        (
            g(json!([{"role": "user", "parts": [{"text": "x"}]},
                  {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}]},
                  {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]}])),
            400,
            "number of function response parts is equal to the number of function call parts",
        ),
        (
            g(json!([{"role": "user", "parts": []}])),
            400,
            "parts must not be empty",
        ),
    ];
    for (body, status, text) in cases {
        let (s, _, b) = t
            .gemini("gemini-2.5-flash:generateContent", GOOGLE_KEY, body.clone())
            .await;
        assert_eq!(s, status, "{body} → {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(text),
            "{b}"
        );
    }
    let (s, _, b) = t
        .gemini(
            "gemini-nope:generateContent",
            GOOGLE_KEY,
            g(json!([{"parts": [{"text": "x"}]}])),
        )
        .await;
    assert_eq!((s, b["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
    t.handle.shutdown().await;
}

#[tokio::test]
async fn rules_script_text_and_tool_calls_in_every_format() {
    let t = Llm::new().await;
    let llm = t.sim.llm();
    llm.add_rule(RuleSpec::tool(
        "weather",
        "get_weather",
        json!({"city": "Paris"}),
    ));
    llm.add_rule(
        RuleSpec::text("refund", "Refunds take 5 days.")
            .for_provider(Provider::OpenAi)
            .times(1),
    );

    let (_, _, b) = t
        .openai(
            "/v1/chat/completions",
            OPENAI_KEY,
            json!({"model": "gpt-4o-mini", "messages": [user("any refund?")]}),
        )
        .await;
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "Refunds take 5 days."
    );
    let (_, _, b) = t
        .openai(
            "/v1/chat/completions",
            OPENAI_KEY,
            json!({"model": "gpt-4o-mini", "messages": [user("any refund?")]}),
        )
        .await;
    assert_eq!(
        b["choices"][0]["message"]["content"], "You said: any refund?",
        "times(1) used up"
    );

    // A tool rule fires only when the tool is offered.
    let (_, _, b) = t
        .openai(
            "/v1/chat/completions",
            OPENAI_KEY,
            json!({"model": "gpt-4o-mini", "messages": [user("weather?")]}),
        )
        .await;
    assert!(b["choices"][0]["message"].get("tool_calls").is_none());
    let (_, _, b) = t.openai("/v1/chat/completions", OPENAI_KEY,
        json!({"model": "gpt-4o-mini", "messages": [user("weather?")], "tools": weather_tool_openai()})).await;
    let choice = &b["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    // The round trip: with the result the model answers instead of calling again.
    let (s, _, b) = t.openai("/v1/chat/completions", OPENAI_KEY, json!({"model": "gpt-4o-mini", "tools": weather_tool_openai(),
        "messages": [user("weather?"), choice["message"].clone(), {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], "Tool result: 18 C");

    let tools = json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]);
    let (_, _, b) = t.anthropic(ANTHROPIC_KEY, json!({"model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools, "messages": [user("weather?")]})).await;
    assert_eq!(b["stop_reason"], "tool_use");
    let tool_use = b["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(tool_use["input"], json!({"city": "Paris"}));
    let (s, _, b) = t.anthropic(ANTHROPIC_KEY, json!({"model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools, "messages": [
        user("weather?"), {"role": "assistant", "content": b["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "18 C"}]}]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["content"][0]["text"], "Tool result: 18 C");
    assert_eq!(b["stop_reason"], "end_turn");

    let decl = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}]}]);
    let (_, _, b) = t
        .gemini(
            "gemini-2.5-flash:generateContent",
            GOOGLE_KEY,
            json!({"tools": decl, "contents": [{"role": "user", "parts": [{"text": "weather?"}]}]}),
        )
        .await;
    let c = &b["candidates"][0];
    assert_eq!(c["finishReason"], "STOP", "STOP even for a call");
    assert_eq!(
        c["content"]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    let (s, _, b) = t.gemini("gemini-2.5-flash:generateContent", GOOGLE_KEY, json!({"tools": decl, "contents": [
        {"role": "user", "parts": [{"text": "weather?"}]}, c["content"],
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}}]}]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["candidates"][0]["content"]["parts"][0]["text"],
        "Tool result: {\"temp_c\":18}"
    );
    t.handle.shutdown().await;
}

/// `data:` payloads of an SSE body, and the event names.
fn sse(body: &str) -> (Vec<String>, Vec<String>) {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for line in body.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(d.to_string());
        } else if let Some(e) = line.strip_prefix("event: ") {
            events.push(e.to_string());
        }
    }
    (data, events)
}

#[tokio::test]
async fn streams_in_each_format() {
    let t = Llm::new().await;
    let resp = t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(OPENAI_KEY)
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": [user("hello stream")]}))
        .send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (data, events) = sse(&resp.text().await.unwrap());
    assert!(events.is_empty(), "OpenAI streams have no event names");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: hello stream");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
    assert_eq!(
        chunks.last().unwrap()["usage"]["completion_tokens"],
        tokens("You said: hello stream")
    );

    let resp = t.http.post(format!("{}/v1/messages", t.base)).header("x-api-key", ANTHROPIC_KEY).header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true, "messages": [user("hello stream")]}))
        .send().await.unwrap();
    let (data, events) = sse(&resp.text().await.unwrap());
    assert_eq!(events.first().unwrap(), "message_start");
    assert_eq!(events.last().unwrap(), "message_stop");
    assert!(
        events.contains(&"message_delta".to_string())
            && events.contains(&"content_block_stop".to_string())
    );
    assert!(!data.iter().any(|d| d == "[DONE]"));

    let resp = t
        .http
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            t.base
        ))
        .header("x-goog-api-key", GOOGLE_KEY)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello stream"}]}]}))
        .send()
        .await
        .unwrap();
    let (data, events) = sse(&resp.text().await.unwrap());
    assert!(events.is_empty());
    let chunks: Vec<Value> = data
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() > 1);
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"]["candidatesTokenCount"],
        tokens("You said: hello stream")
    );
    t.handle.shutdown().await;
}

fn cosine(a: &Value, b: &Value) -> f64 {
    let a: Vec<f64> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let b: Vec<f64> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    a.iter().zip(&b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_deterministic_bags_of_words() {
    let t = Llm::new().await;
    let (s, _, b) = t
        .openai(
            "/v1/embeddings",
            OPENAI_KEY,
            json!({"model": "text-embedding-3-small",
        "input": ["Where is my order?", "my order is late", "Sunny in Paris"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let v = |i: usize| b["data"][i]["embedding"].clone();
    assert_eq!(v(0).as_array().unwrap().len(), 256);
    assert!(cosine(&v(0), &v(1)) > 0.4);
    assert!(cosine(&v(0), &v(2)).abs() < 0.3);
    assert!(b["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let (s, _, b2) = t.openai("/v1/embeddings", OPENAI_KEY, json!({"model": "text-embedding-3-small", "input": "Where is my order?", "dimensions": 64})).await;
    assert_eq!(s, 200);
    assert_eq!(b2["data"][0]["embedding"].as_array().unwrap().len(), 64);
    let (s, _, _) = t
        .openai(
            "/v1/embeddings",
            OPENAI_KEY,
            json!({"model": "text-embedding-3-small", "input": [""]}),
        )
        .await;
    assert_eq!(s, 400, "empty inputs are refused");
    let (s, _, _) = t
        .openai(
            "/v1/embeddings",
            DEEPSEEK_KEY,
            json!({"model": "deepseek-flash", "input": ["x"]}),
        )
        .await;
    assert_eq!(s, 404, "DeepSeek has no embeddings");

    let req = |text: &str| json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]}});
    let (s, _, b) = t
        .gemini(
            "gemini-embedding-001:batchEmbedContents",
            GOOGLE_KEY,
            json!({"requests": [req("my order"), req("order status")]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(cosine(&b["embeddings"][0]["values"], &b["embeddings"][1]["values"]) > 0.3);
    let (s, _, b) = t
        .gemini(
            "gemini-embedding-001:embedContent",
            GOOGLE_KEY,
            json!({"content": {"parts": [{"text": "my order"}]}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["embedding"]["values"].as_array().unwrap().len(), 256);
    let many: Vec<Value> = (0..101).map(|i| req(&format!("text {i}"))).collect();
    let (s, _, b) = t
        .gemini(
            "gemini-embedding-001:batchEmbedContents",
            GOOGLE_KEY,
            json!({"requests": many}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 100 requests"));
    t.handle.shutdown().await;
}

#[tokio::test]
async fn faults_latency_and_the_control_api() {
    let t = Llm::new().await;
    // Over HTTP, as another process would.
    let post =
        |path: &str, body: Value| t.http.post(format!("{}{path}", t.base)).json(&body).send();
    let r: Value = post(
        "/_sim/llm/keys",
        json!({"provider": "OPENAI", "key": "sk-http-registered-000000"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(r["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    post(
        "/_sim/llm/rules",
        json!({"contains": "ping", "reply": {"kind": "text", "text": "pong"}}),
    )
    .await
    .unwrap();
    post("/_sim/llm/faults", json!({"provider": "OPENAI", "action": {"kind": "rate_limited", "retry_after_secs": 7}, "count": 2})).await.unwrap();
    let chat = json!({"model": "gpt-4o-mini", "messages": [user("ping")]});
    for _ in 0..2 {
        let (s, h, b) = t
            .openai(
                "/v1/chat/completions",
                "sk-http-registered-000000",
                chat.clone(),
            )
            .await;
        assert_eq!(s, 429);
        assert_eq!(h["retry-after"], "7");
        assert_eq!(b["error"]["code"], "rate_limit_exceeded");
    }
    let (s, _, b) = t
        .openai(
            "/v1/chat/completions",
            "sk-http-registered-000000",
            chat.clone(),
        )
        .await;
    assert_eq!(
        (s, b["choices"][0]["message"]["content"].as_str()),
        (200, Some("pong"))
    );

    let llm = t.sim.llm();
    llm.add_fault(
        LlmFaultSpec::new(
            LlmFaultAction::RateLimited {
                retry_after_secs: Some(3),
            },
            1,
        )
        .for_provider(Provider::Google),
    );
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]});
    let (s, _, b) = t
        .gemini(
            "gemini-2.5-flash:generateContent",
            GOOGLE_KEY,
            contents.clone(),
        )
        .await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    assert_eq!(b["error"]["details"][1]["retryDelay"], "3s");
    llm.add_fault(
        LlmFaultSpec::new(LlmFaultAction::Http { status: 529 }, 1)
            .for_provider(Provider::Anthropic),
    );
    let (s, _, b) = t
        .anthropic(
            ANTHROPIC_KEY,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [user("x")]}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );
    llm.add_fault(LlmFaultSpec::new(LlmFaultAction::InvalidKey, 1).for_provider(Provider::Google));
    let (s, _, b) = t
        .gemini(
            "gemini-2.5-flash:generateContent",
            GOOGLE_KEY,
            contents.clone(),
        )
        .await;
    assert_eq!(
        (s, b["error"]["details"][0]["reason"].as_str()),
        (400, Some("API_KEY_INVALID"))
    );

    // A hang outlasts the client's timeout.
    llm.add_fault(LlmFaultSpec::new(LlmFaultAction::Hang, 1));
    let started = Instant::now();
    let err = t
        .http
        .post(format!("{}/v1/chat/completions", t.base))
        .bearer_auth(OPENAI_KEY)
        .json(&chat)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(started.elapsed() >= Duration::from_millis(300));

    llm.set_latency(Provider::Kimi, Duration::from_millis(250));
    let started = Instant::now();
    let (s, _, _) = t
        .openai(
            "/v1/chat/completions",
            KIMI_KEY,
            json!({"model": "moonshot-v1-8k", "messages": [user("x")]}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    let log: Value = t
        .http
        .get(format!("{}/_sim/llm/requests?provider=GOOGLE", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 400]);
    let faults: Value = t
        .http
        .get(format!("{}/_sim/llm/faults", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["data"], json!([]), "used-up faults are gone");
    t.http
        .post(format!("{}/_sim/llm/reset", t.base))
        .send()
        .await
        .unwrap();
    assert!(llm.requests(None).is_empty() && llm.rules().is_empty());
    t.handle.shutdown().await;
}

#[tokio::test]
async fn model_lists_per_provider_on_shared_paths() {
    let t = Llm::new().await;
    let get = |path: &str| t.http.get(format!("{}{path}", t.base));
    let b: Value = get("/v1/models")
        .bearer_auth(OPENAI_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["object"], "list");
    assert!(b["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-5-nano"));
    let b: Value = get("/v1/models")
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(b["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["type"] == "model" && m["id"].as_str().unwrap().starts_with("claude")));
    assert_eq!(b["has_more"], false);
    let b: Value = get("/v1/models?limit=2")
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (b["data"].as_array().unwrap().len(), b["has_more"].as_bool()),
        (2, Some(true))
    );
    let b: Value = get("/v1beta/models")
        .header("x-goog-api-key", GOOGLE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(b["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["name"].as_str().unwrap().starts_with("models/")));
    let b: Value = get("/models")
        .bearer_auth(DEEPSEEK_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(b["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "deepseek-flash"));
    let s = get("/v1/models")
        .header("x-api-key", "wrong")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 401);
    // The Graph API still answers next to the providers.
    let s = get("/v23.0/123")
        .bearer_auth("EAAG-unknown")
        .send()
        .await
        .unwrap()
        .status();
    assert_ne!(s, 404);
    t.handle.shutdown().await;
}
