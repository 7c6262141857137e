//! Anthropic's Messages API (as Anthropic documents it): `system` at the top level, `user`/`assistant`
//! turns that alternate (consecutive turns of one role are merged into one turn of content
//! blocks), tool calls as `tool_use` blocks answered by `tool_result` blocks at the *start* of
//! the next user turn, `max_tokens` required, temperature 0–1.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    stream::{Decoder, SseEvent},
    ChatRequest, ChatResponse, LlmError, Role, Target, ToolCall, Usage,
};

pub(super) const VERSION: &str = "2023-06-01";

/// Models that refuse a non-default temperature (Sonnet 5 per its migration guide; Opus 4.7
/// and later per third parties).
fn fixed_temperature(model: &str) -> bool {
    [
        "claude-sonnet-5",
        "claude-opus-5",
        "claude-haiku-5",
        "claude-fable-5",
        "claude-opus-4-7",
    ]
    .iter()
    .any(|p| model.starts_with(p))
}

/// Placeholder first turn when a history starts with the assistant: the API wants a user turn
/// first, and dropping the assistant's opening (often a template we sent) would lose context.
const OPENING: &str = "(conversation start)";

pub(super) fn chat_body(target: &Target, req: &ChatRequest, stream: bool) -> Value {
    let mut system: Vec<&str> = req.system.as_deref().into_iter().collect();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role {
            Role::System => {
                system.push(&m.content);
                continue;
            }
            Role::User => ("user", text_block(&m.content)),
            Role::Tool => (
                "user",
                vec![json!({"type": "tool_result",
                            "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                            "content": m.content})],
            ),
            Role::Assistant => {
                let mut blocks = text_block(&m.content);
                blocks.extend(m.tool_calls.iter().map(|c| {
                    json!({"type": "tool_use", "id": c.id, "name": c.name,
                           "input": as_object(&c.arguments)})
                }));
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue; // empty text blocks are refused
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == "assistant") {
        turns.insert(0, ("user", text_block(OPENING)));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Tool results must open the user turn; any text follows them.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
            json!({"role": role, "content": blocks})
        })
        .collect();

    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.max(1)));
    body.insert("messages".into(), Value::Array(messages));
    let system = system
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    if !system.is_empty() {
        body.insert("system".into(), json!(system));
    }
    if let Some(t) = req.temperature {
        if !fixed_temperature(&target.model) {
            body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

/// `tool_use.input` must be an object.
fn as_object(v: &Value) -> Value {
    match v {
        Value::Object(_) => v.clone(),
        Value::Null => json!({}),
        other => json!({"value": other}),
    }
}

fn normalize_stop(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop".into(),
        "max_tokens" | "model_context_window_exceeded" => "length".into(),
        "tool_use" => "tool_calls".into(),
        "refusal" => "content_filter".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Input tokens include cache writes and reads: all of them are prompt tokens.
fn input_tokens(u: &Value) -> Option<u32> {
    let base = u["input_tokens"].as_u64()?;
    let cache = u["cache_creation_input_tokens"].as_u64().unwrap_or(0)
        + u["cache_read_input_tokens"].as_u64().unwrap_or(0);
    Some((base + cache) as u32)
}

pub(super) fn parse_chat(target: &Target, body: &Value, latency: Duration) -> ChatResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    // Select blocks by type, not position: `thinking` blocks may come first.
    for block in body["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: block["input"].clone(),
            }),
            _ => {}
        }
    }
    ChatResponse {
        text,
        tool_calls,
        usage: Usage {
            input_tokens: input_tokens(&body["usage"]).unwrap_or(0),
            output_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0) as u32,
        },
        model: body["model"].as_str().unwrap_or(&target.model).to_string(),
        finish_reason: normalize_stop(body["stop_reason"].as_str().unwrap_or("end_turn")),
        latency,
    }
}

pub(super) fn parse_models(body: &Value) -> (Vec<String>, Option<String>) {
    let ids = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    let next = (body["has_more"] == true)
        .then(|| body["last_id"].as_str().map(str::to_string))
        .flatten();
    (ids, next)
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// `message_start → (content_block_start, delta*, content_block_stop)* → message_delta →
/// message_stop`, with `ping`s anywhere and errors as `error` events.
pub(super) struct StreamDecoder {
    model: String,
    text: String,
    blocks: Vec<Block>,
    stop: Option<String>,
    usage: Usage,
    done: bool,
}

impl StreamDecoder {
    pub fn new(target: &Target) -> Self {
        Self {
            model: target.model.clone(),
            text: String::new(),
            blocks: Vec::new(),
            stop: None,
            usage: Usage::default(),
            done: false,
        }
    }
}

impl Decoder for StreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Vec<String>, LlmError> {
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::Unavailable(format!("unreadable stream event: {e}")))?;
        let kind = data["type"].as_str().unwrap_or(ev.event.as_str());
        match kind {
            "message_start" => {
                let m = &data["message"];
                if let Some(model) = m["model"].as_str() {
                    self.model = model.to_string();
                }
                self.usage.input_tokens = input_tokens(&m["usage"]).unwrap_or(0);
                self.usage.output_tokens = m["usage"]["output_tokens"].as_u64().unwrap_or(0) as u32;
            }
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                let b = &data["content_block"];
                let block = match b["type"].as_str() {
                    Some("text") => Block::Text,
                    Some("tool_use") => Block::Tool {
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                while self.blocks.len() <= index {
                    self.blocks.push(Block::Other);
                }
                self.blocks[index] = block;
                if let Some(t) = b["text"].as_str().filter(|t| !t.is_empty()) {
                    self.text.push_str(t);
                    return Ok(vec![t.to_string()]);
                }
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                let d = &data["delta"];
                match (d["type"].as_str(), self.blocks.get_mut(index)) {
                    (Some("text_delta"), _) => {
                        let t = d["text"].as_str().unwrap_or_default();
                        self.text.push_str(t);
                        return Ok(vec![t.to_string()]);
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(d["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {} // thinking, signature, citations
                }
            }
            "message_delta" => {
                if let Some(s) = data["delta"]["stop_reason"].as_str() {
                    self.stop = Some(s.to_string());
                }
                // Cumulative, not an increment.
                if let Some(o) = data["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = o as u32;
                }
                if let Some(i) = input_tokens(&data["usage"]) {
                    self.usage.input_tokens = self.usage.input_tokens.max(i);
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let e = &data["error"];
                let msg = format!(
                    "in the stream: {}",
                    e["message"].as_str().unwrap_or("error")
                );
                return Err(match e["type"].as_str() {
                    Some("rate_limit_error") => LlmError::RateLimited {
                        retry_after: None,
                        message: msg,
                    },
                    Some("invalid_request_error") => LlmError::BadRequest(msg),
                    _ => LlmError::Unavailable(msg),
                });
            }
            _ => {} // ping, content_block_stop, unknown future events
        }
        Ok(Vec::new())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, latency: Duration) -> Result<ChatResponse, LlmError> {
        if !self.done && self.stop.is_none() {
            return Err(LlmError::Unavailable(
                "the stream ended before message_stop".into(),
            ));
        }
        let tool_calls = self
            .blocks
            .drain(..)
            .filter_map(|b| match b {
                Block::Tool { id, name, json } => Some(ToolCall {
                    id,
                    name,
                    arguments: if json.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&json).unwrap_or(Value::String(json))
                    },
                }),
                _ => None,
            })
            .collect();
        Ok(ChatResponse {
            text: std::mem::take(&mut self.text),
            tool_calls,
            usage: self.usage,
            model: self.model.clone(),
            finish_reason: normalize_stop(self.stop.as_deref().unwrap_or("end_turn")),
            latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, Provider};

    #[test]
    fn turns_alternate_and_tool_results_open_the_user_turn() {
        let target = Target {
            provider: Provider::Anthropic,
            api_key: "k".into(),
            base_url: None,
            model: "claude-sonnet-4-5".into(),
        };
        let req = ChatRequest {
            system: Some("Be terse.".into()),
            messages: vec![
                ChatMessage::assistant("Hi! How can I help?"),
                ChatMessage::user("Weather?"),
                ChatMessage::user("In Paris."),
                ChatMessage {
                    tool_calls: vec![ToolCall {
                        id: "toolu_1".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                    ..ChatMessage::assistant("")
                },
                ChatMessage::tool_result("toolu_1", "18 °C"),
            ],
            temperature: Some(1.5),
            max_tokens: 64,
            tools: Vec::new(),
        };
        let b = chat_body(&target, &req, false);
        let roles: Vec<&str> = b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        assert_eq!(b["messages"][2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(b["messages"][4]["content"][0]["type"], "tool_result");
        assert_eq!(b["temperature"], 1.0);
        assert_eq!(b["system"], "Be terse.");
    }
}
