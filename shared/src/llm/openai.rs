//! The OpenAI Chat Completions format, spoken by OpenAI, DeepSeek, Kimi and local servers.
//!
//! Requests follow each server's rules (as each vendor documents it): OpenAI wants
//! `max_completion_tokens` (reasoning models refuse `max_tokens`), the others `max_tokens`;
//! reasoning models and Kimi's `kimi-*` models accept only their default temperature, so it is
//! not sent; tool-call arguments travel as a JSON *string*. Responses are read leniently
//! (local servers may omit `usage`, `id` or `choices`).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    stream::{Decoder, SseEvent},
    ChatRequest, ChatResponse, Embeddings, LlmError, Provider, Role, Target, ToolCall, Usage,
};

/// Whether the model only takes its default temperature.
fn fixed_temperature(provider: Provider, model: &str) -> bool {
    match provider {
        Provider::OpenAi => ["o1", "o3", "o4", "gpt-5"]
            .iter()
            .any(|p| model.starts_with(p)),
        Provider::Kimi => model.starts_with("kimi-"),
        _ => false,
    }
}

/// The temperature range the provider accepts (values outside are clamped, not refused).
fn temperature_range(provider: Provider) -> (f32, f32) {
    match provider {
        Provider::Kimi => (0.0, 1.0),
        _ => (0.0, 2.0),
    }
}

pub(super) fn chat_body(target: &Target, req: &ChatRequest, stream: bool) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &req.messages {
        messages.push(match m.role {
            Role::System => json!({"role": "system", "content": m.content}),
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Assistant if !m.tool_calls.is_empty() => {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                    })
                    .collect();
                // `content: null` is only valid next to tool calls.
                let content = if m.content.is_empty() {
                    Value::Null
                } else {
                    Value::String(m.content.clone())
                };
                json!({"role": "assistant", "content": content, "tool_calls": calls})
            }
            Role::Assistant => json!({"role": "assistant", "content": m.content}),
            Role::Tool => json!({"role": "tool",
                                 "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                                 "content": m.content}),
        });
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("messages".into(), Value::Array(messages));
    let max_field = if target.provider == Provider::OpenAi {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body.insert(max_field.into(), json!(req.max_tokens));
    if let Some(t) = req.temperature {
        if !fixed_temperature(target.provider, &target.model) {
            let (lo, hi) = temperature_range(target.provider);
            body.insert("temperature".into(), json!(t.clamp(lo, hi)));
        }
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        // Without it the stream carries no usage at all.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

pub(super) fn normalize_finish(reason: &str) -> String {
    match reason {
        "stop" | "length" | "tool_calls" | "content_filter" => reason.to_string(),
        "function_call" => "tool_calls".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    // A model may emit invalid JSON: keep the text rather than fail the whole answer.
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn usage_of(v: &Value) -> Option<Usage> {
    let prompt = v["prompt_tokens"].as_u64()?;
    Some(Usage {
        input_tokens: prompt as u32,
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0) as u32,
    })
}

pub(super) fn parse_chat(target: &Target, body: &Value, latency: Duration) -> ChatResponse {
    let choice = &body["choices"][0];
    let message = &choice["message"];
    let tool_calls = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            arguments: match &c["function"]["arguments"] {
                Value::String(s) => parse_arguments(s),
                other => other.clone(),
            },
        })
        .collect::<Vec<_>>();
    let finish = choice["finish_reason"]
        .as_str()
        .unwrap_or(if tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        });
    ChatResponse {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        usage: usage_of(&body["usage"]).unwrap_or_default(),
        model: body["model"].as_str().unwrap_or(&target.model).to_string(),
        finish_reason: normalize_finish(finish),
        latency,
    }
}

pub(super) fn embed_body(model: &str, inputs: &[String]) -> Value {
    let mut body = json!({"model": model, "input": inputs, "encoding_format": "float"});
    // v3 models may shorten their vectors; ada-002 and local models keep their own size.
    if model.starts_with("text-embedding-3") {
        body["dimensions"] = json!(super::EMBEDDING_DIMENSIONS);
    }
    body
}

pub(super) fn parse_embeddings(body: &Value, expected: usize) -> Result<Embeddings, LlmError> {
    let mut rows: Vec<(u64, Vec<f32>)> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let v = d["embedding"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_f64().map(|f| f as f32))
                .collect();
            (d["index"].as_u64().unwrap_or(0), v)
        })
        .collect();
    if rows.len() != expected {
        return Err(LlmError::Unavailable(format!(
            "embeddings: {} vectors for {expected} inputs",
            rows.len()
        )));
    }
    // `data` is documented in input order, but `index` is what identifies each row.
    rows.sort_by_key(|(i, _)| *i);
    Ok(Embeddings {
        vectors: rows.into_iter().map(|(_, v)| v).collect(),
        usage: Usage {
            input_tokens: body["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as u32,
            output_tokens: 0,
        },
    })
}

pub(super) fn parse_models(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

/// Assembles a streamed answer: content deltas, tool calls by `index`, usage from the final
/// chunk (or, on Kimi, from the choice at its finish).
pub(super) struct StreamDecoder {
    target_model: String,
    model: Option<String>,
    text: String,
    /// (id, name, arguments text) per index.
    calls: Vec<(String, String, String)>,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamDecoder {
    pub fn new(target: &Target) -> Self {
        Self {
            target_model: target.model.clone(),
            model: None,
            text: String::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }
}

impl Decoder for StreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Vec<String>, LlmError> {
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::Unavailable(format!("unreadable stream chunk: {e}")))?;
        if let Some(err) = chunk.get("error") {
            let msg = err["message"].as_str().unwrap_or("error in the stream");
            return Err(LlmError::Unavailable(format!("in the stream: {msg}")));
        }
        if let Some(m) = chunk["model"].as_str() {
            self.model = Some(m.to_string());
        }
        if let Some(u) = usage_of(&chunk["usage"]) {
            self.usage = Some(u);
        }
        let mut deltas = Vec::new();
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                self.text.push_str(text);
                deltas.push(text.to_string());
            }
            for frag in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = frag["index"].as_u64().unwrap_or(0) as usize;
                if self.calls.len() <= index {
                    self.calls.resize(index + 1, Default::default());
                }
                let call = &mut self.calls[index];
                if let Some(id) = frag["id"].as_str() {
                    call.0 = id.to_string();
                }
                if let Some(name) = frag["function"]["name"].as_str() {
                    call.1.push_str(name);
                }
                if let Some(args) = frag["function"]["arguments"].as_str() {
                    call.2.push_str(args);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                self.finish = Some(f.to_string());
            }
            if let Some(u) = usage_of(&choice["usage"]) {
                self.usage = Some(u);
            }
        }
        Ok(deltas)
    }

    fn done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, latency: Duration) -> Result<ChatResponse, LlmError> {
        let Some(finish) = self.finish.take() else {
            return Err(LlmError::Unavailable(
                "the stream ended before the answer was complete".into(),
            ));
        };
        Ok(ChatResponse {
            text: std::mem::take(&mut self.text),
            tool_calls: self
                .calls
                .drain(..)
                .map(|(id, name, args)| ToolCall {
                    id,
                    name,
                    arguments: parse_arguments(&args),
                })
                .collect(),
            usage: self.usage.unwrap_or_default(),
            model: self
                .model
                .take()
                .unwrap_or_else(|| self.target_model.clone()),
            finish_reason: normalize_finish(&finish),
            latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolSpec};

    fn target(provider: Provider, model: &str) -> Target {
        Target {
            provider,
            api_key: "k".into(),
            base_url: None,
            model: model.into(),
        }
    }

    #[test]
    fn request_shape_per_server() {
        let req = ChatRequest {
            system: Some("Be terse.".into()),
            messages: vec![
                ChatMessage::user("Weather?"),
                ChatMessage {
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                    ..ChatMessage::assistant("")
                },
                ChatMessage::tool_result("call_1", "{\"temp_c\":18}"),
            ],
            temperature: Some(0.3),
            max_tokens: 100,
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: "Weather".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        let b = chat_body(&target(Provider::OpenAi, "gpt-5.4-mini"), &req, false);
        assert_eq!(b["max_completion_tokens"], 100);
        assert!(
            b.get("temperature").is_none(),
            "reasoning model: default only"
        );
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][2]["content"], Value::Null);
        assert_eq!(
            b["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(b["messages"][3]["tool_call_id"], "call_1");
        let d = chat_body(&target(Provider::DeepSeek, "deepseek-flash"), &req, true);
        assert_eq!(d["max_tokens"], 100);
        assert!((d["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
        assert_eq!(d["stream_options"]["include_usage"], true);
        let k = chat_body(&target(Provider::Kimi, "kimi-k2.6"), &req, false);
        assert!(k.get("temperature").is_none());
    }

    #[test]
    fn streamed_tool_call_is_assembled() {
        let mut d = StreamDecoder::new(&target(Provider::OpenAi, "gpt-5-nano"));
        let chunks = [
            r#"{"model":"gpt-5-nano","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#,
            "[DONE]",
        ];
        for c in chunks {
            d.event(&SseEvent {
                event: String::new(),
                data: c.into(),
            })
            .unwrap();
        }
        assert!(d.done());
        let r = d.finish(Duration::ZERO).unwrap();
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(r.usage.output_tokens, 5);
    }
}
