//! Google's Gemini API, `v1beta` `generateContent` (as Google documents it): `systemInstruction`,
//! `contents` with roles `user`/`model`, tools as `functionDeclarations`, calls as
//! `functionCall` parts answered by one `functionResponse` part per call (in one user turn,
//! with an object `response`). `finishReason` is `STOP` even for tool calls.

use std::{collections::HashMap, time::Duration};

use serde_json::{json, Map, Value};

use super::{
    stream::{Decoder, SseEvent},
    ChatRequest, ChatResponse, Embeddings, LlmError, Role, Target, ToolCall, Usage,
};

/// Gemini's limit of requests per `batchEmbedContents`.
pub(super) const BATCH_LIMIT: usize = 100;

/// The model id without the `models/` prefix Gemini uses in names.
pub(super) fn model_id(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// Placeholder first turn when a history starts with the model (see `anthropic::OPENING`).
const OPENING: &str = "(conversation start)";

pub(super) fn chat_body(req: &ChatRequest) -> Value {
    let mut system: Vec<&str> = req.system.as_deref().into_iter().collect();
    // functionResponse names the function, not the call id: remember which id was which.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, parts) = match m.role {
            Role::System => {
                system.push(&m.content);
                continue;
            }
            Role::User => ("user", text_part(&m.content)),
            Role::Assistant => {
                let mut parts = text_part(&m.content);
                for c in &m.tool_calls {
                    names.insert(&c.id, &c.name);
                    parts.push(
                        json!({"functionCall": {"name": c.name, "args": as_object(&c.arguments)}}),
                    );
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = names.get(id).copied().unwrap_or(id);
                (
                    "user",
                    vec![
                        json!({"functionResponse": {"name": name, "response": response_object(&m.content)}}),
                    ],
                )
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == "model") {
        turns.insert(0, ("user", text_part(OPENING)));
    }
    let contents: Vec<Value> = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    let system = system
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system}]}),
        );
    }
    let mut generation = Map::new();
    generation.insert("maxOutputTokens".into(), json!(req.max_tokens));
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), json!(t.clamp(0.0, 2.0)));
    }
    body.insert("generationConfig".into(), Value::Object(generation));
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": sanitize_schema(&t.parameters)}))
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    Value::Object(body)
}

fn text_part(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"text": text})]
    }
}

fn as_object(v: &Value) -> Value {
    match v {
        Value::Object(_) => v.clone(),
        Value::Null => json!({}),
        other => json!({"value": other}),
    }
}

/// `functionResponse.response` must be an object: a JSON object result is sent as is, any
/// other result wrapped as `{"result": …}`.
fn response_object(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(other) => json!({"result": other}),
        Err(_) => json!({"result": content}),
    }
}

/// Gemini's schema is an OpenAPI subset: keywords it does not know are refused with a 400,
/// and `additionalProperties` / `$schema` are the usual ones in JSON schemas written for
/// OpenAI.
fn sanitize_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "additionalProperties" | "$schema"))
                .map(|(k, v)| (k.clone(), sanitize_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(sanitize_schema).collect()),
        other => other.clone(),
    }
}

fn normalize_finish(reason: &str, has_calls: bool) -> String {
    match reason {
        "STOP" if has_calls => "tool_calls".into(),
        "STOP" => "stop".into(),
        "MAX_TOKENS" => "length".into(),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter".into()
        }
        other => other.to_ascii_lowercase(),
    }
}

fn usage_of(u: &Value) -> Option<Usage> {
    let prompt = u["promptTokenCount"].as_u64()?;
    // Thinking tokens are billed as output.
    let out = u["candidatesTokenCount"].as_u64().unwrap_or(0)
        + u["thoughtsTokenCount"].as_u64().unwrap_or(0);
    Some(Usage {
        input_tokens: prompt as u32,
        output_tokens: out as u32,
    })
}

/// Text (without thought summaries) and calls of one response's first candidate.
fn parts_of(body: &Value, text: &mut String, calls: &mut Vec<ToolCall>) {
    for part in body["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if part["thought"] == true {
            continue;
        }
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            calls.push(ToolCall {
                id: call["id"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("gemini-call-{}", calls.len() + 1)),
                name: call["name"].as_str().unwrap_or_default().to_string(),
                arguments: call["args"].clone(),
            });
        }
    }
}

pub(super) fn parse_chat(target: &Target, body: &Value, latency: Duration) -> ChatResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    parts_of(body, &mut text, &mut tool_calls);
    let finish = match body["candidates"][0]["finishReason"].as_str() {
        Some(r) => normalize_finish(r, !tool_calls.is_empty()),
        // No candidate at all: the prompt itself was blocked (`promptFeedback.blockReason`).
        None if body["promptFeedback"]["blockReason"].is_string() => "content_filter".into(),
        None => normalize_finish("STOP", !tool_calls.is_empty()),
    };
    ChatResponse {
        text,
        tool_calls,
        usage: usage_of(&body["usageMetadata"]).unwrap_or_default(),
        model: body["modelVersion"]
            .as_str()
            .unwrap_or(model_id(&target.model))
            .to_string(),
        finish_reason: finish,
        latency,
    }
}

pub(super) fn embed_one_body(text: &str) -> Value {
    json!({"content": {"parts": [{"text": text}]}, "outputDimensionality": super::EMBEDDING_DIMENSIONS})
}

pub(super) fn embed_batch_body(model: &str, inputs: &[String]) -> Value {
    let requests: Vec<Value> = inputs
        .iter()
        .map(|t| {
            json!({"model": format!("models/{}", model_id(model)), "content": {"parts": [{"text": t}]},
                   "outputDimensionality": super::EMBEDDING_DIMENSIONS})
        })
        .collect();
    json!({"requests": requests})
}

fn values(v: &Value) -> Vec<f32> {
    v["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

pub(super) fn parse_embed_one(body: &Value) -> Vec<Vec<f32>> {
    vec![values(&body["embedding"])]
}

pub(super) fn parse_embed_batch(body: &Value) -> Vec<Vec<f32>> {
    body["embeddings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(values)
        .collect()
}

pub(super) fn check_embeddings(
    vectors: Vec<Vec<f32>>,
    inputs: &[String],
) -> Result<Embeddings, LlmError> {
    if vectors.len() != inputs.len() {
        return Err(LlmError::Unavailable(format!(
            "embeddings: {} vectors for {} inputs",
            vectors.len(),
            inputs.len()
        )));
    }
    Ok(Embeddings {
        vectors,
        // Gemini reports no usage for embeddings.
        usage: Usage {
            input_tokens: inputs.iter().map(|t| super::estimate_tokens(t)).sum(),
            output_tokens: 0,
        },
    })
}

pub(super) fn parse_models(body: &Value) -> (Vec<String>, Option<String>) {
    let ids = body["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(|n| model_id(n).to_string()))
        .collect();
    let next = body["nextPageToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    (ids, next)
}

/// `alt=sse` chunks: each a response with only the new parts; the last carries
/// `finishReason` and the full `usageMetadata`. No terminator: the body just ends.
pub(super) struct StreamDecoder {
    model: String,
    text: String,
    calls: Vec<ToolCall>,
    finish: Option<String>,
    usage: Usage,
}

impl StreamDecoder {
    pub fn new(target: &Target) -> Self {
        Self {
            model: model_id(&target.model).to_string(),
            text: String::new(),
            calls: Vec::new(),
            finish: None,
            usage: Usage::default(),
        }
    }
}

impl Decoder for StreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Vec<String>, LlmError> {
        let chunk: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::Unavailable(format!("unreadable stream chunk: {e}")))?;
        if let Some(err) = chunk.get("error") {
            let msg = err["message"].as_str().unwrap_or("error in the stream");
            return Err(LlmError::Unavailable(format!("in the stream: {msg}")));
        }
        let mut text = String::new();
        parts_of(&chunk, &mut text, &mut self.calls);
        self.text.push_str(&text);
        if let Some(r) = chunk["candidates"][0]["finishReason"].as_str() {
            self.finish = Some(r.to_string());
        } else if chunk["promptFeedback"]["blockReason"].is_string() {
            self.finish = Some("SAFETY".into());
        }
        if let Some(u) = usage_of(&chunk["usageMetadata"]) {
            self.usage = u;
        }
        if let Some(m) = chunk["modelVersion"].as_str() {
            self.model = m.to_string();
        }
        Ok(vec![text])
    }

    fn done(&self) -> bool {
        false
    }

    fn finish(&mut self, latency: Duration) -> Result<ChatResponse, LlmError> {
        let Some(finish) = self.finish.take() else {
            return Err(LlmError::Unavailable(
                "the stream ended before a finishReason".into(),
            ));
        };
        // Gemini gives no ids; numbering restarts per chunk, so renumber across the stream.
        let mut calls = std::mem::take(&mut self.calls);
        for (i, c) in calls.iter_mut().enumerate() {
            if c.id.starts_with("gemini-call-") {
                c.id = format!("gemini-call-{}", i + 1);
            }
        }
        Ok(ChatResponse {
            text: std::mem::take(&mut self.text),
            finish_reason: normalize_finish(&finish, !calls.is_empty()),
            tool_calls: calls,
            usage: self.usage,
            model: self.model.clone(),
            latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolSpec};

    #[test]
    fn function_round_trip_shape() {
        let req = ChatRequest {
            system: Some("Be terse.".into()),
            messages: vec![
                ChatMessage::user("Weather in Paris?"),
                ChatMessage {
                    tool_calls: vec![ToolCall {
                        id: "gemini-call-1".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                    ..ChatMessage::assistant("")
                },
                ChatMessage::tool_result("gemini-call-1", "18"),
            ],
            temperature: Some(0.2),
            max_tokens: 50,
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: "Weather".into(),
                parameters: json!({"type": "object", "additionalProperties": false,
                                   "properties": {"city": {"type": "string"}}}),
            }],
        };
        let b = chat_body(&req);
        assert_eq!(b["systemInstruction"]["parts"][0]["text"], "Be terse.");
        assert_eq!(b["contents"][1]["role"], "model");
        assert_eq!(
            b["contents"][2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"result": 18}})
        );
        let decl = &b["tools"][0]["functionDeclarations"][0];
        assert!(decl["parameters"].get("additionalProperties").is_none());
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 50);
    }
}
