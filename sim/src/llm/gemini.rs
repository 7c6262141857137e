//! Gemini's `v1beta` API: the key in `x-goog-api-key` or `?key=` (a bad one is a
//! 400 `API_KEY_INVALID`, a missing one a 403), roles `user`/`model`, one `functionResponse`
//! per `functionCall` of the previous model turn with an object `response`, `finishReason`
//! `STOP` even for calls, `alt=sse` streams without a terminator, at most 100 requests per
//! batch embed, `models/` prefixes in names. Field names may be camelCase or snake_case.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::engine::{Conversation, Reply};
use super::http::{
    data, finish, gemini_error, gemini_invalid, invalid_key, json_response, latency_and_fault,
    parse_body, pieces, record, sse, success_headers, Received,
};
use super::{embed_text, Provider};
use crate::Sim;

/// A field by its camelCase or snake_case name.
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a Value {
    v.get(camel)
        .or_else(|| v.get(snake))
        .unwrap_or(&Value::Null)
}

fn is_embedding_model(model: &str) -> bool {
    model.contains("embedding")
}

fn key_of<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| query.get("key").map(String::as_str))
}

fn authenticate(sim: &Sim, key: Option<&str>) -> Result<(), Response> {
    match key {
        Some(k) if sim.llm().key_provider(k) == Some(Provider::Google) => Ok(()),
        _ => Err(invalid_key(Provider::Google, key)),
    }
}

fn not_found(model: &str, method: &str) -> Response {
    gemini_error(404, "NOT_FOUND", &format!("models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."), Vec::new())
}

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn call(
    State(sim): State<Sim>,
    Path(model_action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (model, method) = model_action.split_once(':').unwrap_or((&model_action, ""));
    let parsed = parse_body(&body);
    let json = parsed.clone().unwrap_or(Value::Null);
    let key = key_of(&headers, &query);
    let seq = record(
        &sim,
        Received {
            provider: Provider::Google,
            authenticated: key.and_then(|k| sim.llm().key_provider(k)) == Some(Provider::Google),
            method: "POST",
            path: uri.path(),
            model: Some(model.to_string()),
            key,
            stream: method == "streamGenerateContent",
            body: &json,
        },
    );
    let response = match authenticate(&sim, key) {
        Err(r) => r,
        Ok(()) => {
            let sse = query.get("alt").is_some_and(|a| a == "sse");
            answer(&sim, model, method, parsed, sse, seq).await
        }
    };
    finish(&sim, seq, response)
}

async fn answer(
    sim: &Sim,
    model: &str,
    method: &str,
    parsed: Result<Value, String>,
    sse: bool,
    seq: u64,
) -> Response {
    let embedding = match method {
        "generateContent" | "streamGenerateContent" => false,
        "embedContent" | "batchEmbedContents" => true,
        _ => {
            return gemini_error(
                404,
                "NOT_FOUND",
                &format!("Method not found: {method}"),
                Vec::new(),
            )
        }
    };
    if !sim.llm().knows_model(Provider::Google, model) || is_embedding_model(model) != embedding {
        return not_found(model, method);
    }
    let Ok(body @ Value::Object(_)) = parsed else {
        return gemini_invalid("Invalid JSON payload received. Unexpected token.");
    };
    let prepared = match method {
        "embedContent" => embed_one(sim, &body),
        "batchEmbedContents" => embed_batch(sim, model, &body),
        _ => validate(&body).map(|conv| (Value::Null, Some(conv))),
    };
    let (embeddings, conv) = match prepared {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = latency_and_fault(sim, Provider::Google, model).await {
        return r;
    }
    let Some(conv) = conv else {
        return json_response(200, embeddings, Vec::new());
    };
    let reply = sim.llm().reply(Provider::Google, &conv);
    let chunks = response_chunks(model, seq, &reply, method == "streamGenerateContent");
    match (method, sse) {
        ("streamGenerateContent", true) => sse_response(&chunks),
        // Without alt=sse Gemini streams one JSON array.
        ("streamGenerateContent", false) => json_response(200, Value::Array(chunks), Vec::new()),
        _ => json_response(
            200,
            chunks.into_iter().next().unwrap_or_default(),
            success_headers(Provider::Google),
        ),
    }
}

fn sse_response(chunks: &[Value]) -> Response {
    sse(chunks.iter().map(data).collect(), Vec::new())
}

fn validate(body: &Value) -> Result<Conversation, Response> {
    let contents = match body.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => {
            return Err(gemini_invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ))
        }
    };
    let mut conv = Conversation::default();
    let system = field(body, "systemInstruction", "system_instruction");
    for p in system["parts"].as_array().into_iter().flatten() {
        conv.add_input(p["text"].as_str().unwrap_or_default());
    }
    let generation = field(body, "generationConfig", "generation_config");
    if let Some(t) = generation["temperature"].as_f64() {
        if !(0.0..=2.0).contains(&t) {
            return Err(gemini_invalid("* GenerateContentRequest.generation_config.temperature: must be between 0.0 and 2.0\n"));
        }
    }
    if let Some(m) = field(generation, "maxOutputTokens", "max_output_tokens").as_u64() {
        conv.max_tokens = Some(m as u32);
    }
    for t in body["tools"].as_array().into_iter().flatten() {
        for d in field(t, "functionDeclarations", "function_declarations")
            .as_array()
            .into_iter()
            .flatten()
        {
            conv.tools
                .push(d["name"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut calls_before = 0usize;
    for (i, c) in contents.iter().enumerate() {
        let role = c["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(gemini_invalid("Please use a valid role: user, model."));
        }
        let parts = match c["parts"].as_array() {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(gemini_invalid(&format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )))
            }
        };
        let mut text = Vec::new();
        let mut results = Vec::new();
        let mut calls = 0;
        for (j, p) in parts.iter().enumerate() {
            if let Some(t) = p["text"].as_str() {
                text.push(t.to_string());
            }
            let call = field(p, "functionCall", "function_call");
            if !call.is_null() {
                calls += 1;
                conv.add_input(&field(call, "args", "args").to_string());
            }
            let resp = field(p, "functionResponse", "function_response");
            if !resp.is_null() {
                if !resp["response"].is_object() {
                    return Err(gemini_invalid(&format!("* GenerateContentRequest.contents[{i}].parts[{j}].function_response.response: Invalid value, expected an object\n")));
                }
                results.push(resp["response"].to_string());
            }
        }
        if !results.is_empty() && results.len() != calls_before {
            return Err(gemini_invalid("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."));
        }
        let text = text.join(" ");
        conv.add_input(&text);
        results.iter().for_each(|r| conv.add_input(r));
        if role == "user" {
            if !text.is_empty() {
                conv.last_user_text = text.clone();
            }
            conv.tool_results = if text.is_empty() { results } else { Vec::new() };
        } else {
            conv.tool_results.clear();
        }
        calls_before = calls;
    }
    Ok(conv)
}

/// The answer as `GenerateContentResponse` chunks: one chunk, or for a stream one per piece
/// of text with the call, `finishReason` and the full usage on the last.
fn response_chunks(model: &str, seq: u64, reply: &Reply, stream: bool) -> Vec<Value> {
    let response_id = format!("sim{seq}");
    let usage = json!({"promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
                       "totalTokenCount": reply.input_tokens + reply.output_tokens});
    let mut texts = if stream {
        pieces(&reply.text)
    } else {
        vec![reply.text.clone()]
    };
    texts.retain(|t| !t.is_empty());
    let mut chunks: Vec<Vec<Value>> = texts
        .into_iter()
        .map(|t| vec![json!({"text": t})])
        .collect();
    if let Some((name, args)) = &reply.tool_call {
        let part = json!({"functionCall": {"name": name, "args": args}});
        match chunks.last_mut() {
            Some(last) if !stream => last.push(part),
            _ => chunks.push(vec![part]),
        }
    }
    if chunks.is_empty() {
        chunks.push(vec![json!({"text": ""})]);
    }
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
            let usage = if i + 1 == n {
                candidate["finishReason"] = json!(if reply.truncated { "MAX_TOKENS" } else { "STOP" });
                usage.clone()
            } else {
                json!({"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens})
            };
            json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id})
        })
        .collect()
}

/// The text of `{content:{parts:[{text}]}}`.
fn content_text(v: &Value) -> Option<String> {
    let parts = v["content"]["parts"].as_array()?;
    let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    (!text.is_empty() && text.iter().any(|t| !t.is_empty())).then(|| text.join(" "))
}

fn dims(sim: &Sim, v: &Value, what: &str) -> Result<usize, Response> {
    match field(v, "outputDimensionality", "output_dimensionality").as_u64() {
        None => Ok(sim.llm().settings().embedding_dims),
        Some(d) if (1..=3072).contains(&d) => Ok(d as usize),
        Some(_) => Err(gemini_invalid(&format!(
            "* {what}.output_dimensionality: must be between 1 and 3072\n"
        ))),
    }
}

fn embed_one(sim: &Sim, body: &Value) -> Result<(Value, Option<Conversation>), Response> {
    let text = content_text(body).ok_or_else(|| {
        gemini_invalid("* EmbedContentRequest.content: content is not specified\n")
    })?;
    let d = dims(sim, body, "EmbedContentRequest")?;
    Ok((json!({"embedding": {"values": embed_text(&text, d)}}), None))
}

fn embed_batch(
    sim: &Sim,
    model: &str,
    body: &Value,
) -> Result<(Value, Option<Conversation>), Response> {
    let requests = match body["requests"].as_array() {
        Some(r) if !r.is_empty() => r,
        _ => {
            return Err(gemini_invalid(
                "* BatchEmbedContentsRequest.requests: requests is not specified\n",
            ))
        }
    };
    if requests.len() > 100 {
        return Err(gemini_invalid(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
        ));
    }
    let mut out = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        if r["model"].as_str() != Some(format!("models/{model}").as_str()) {
            return Err(gemini_invalid(&format!("* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}, the model of the batch\n")));
        }
        let text = content_text(r).ok_or_else(|| {
            gemini_invalid(&format!(
                "* BatchEmbedContentsRequest.requests[{i}].content: content is not specified\n"
            ))
        })?;
        let d = dims(sim, r, &format!("BatchEmbedContentsRequest.requests[{i}]"))?;
        out.push(json!({"values": embed_text(&text, d)}));
    }
    Ok((json!({"embeddings": out}), None))
}

fn model_json(id: &str) -> Value {
    let methods = if is_embedding_model(id) {
        json!(["embedContent", "batchEmbedContents", "countTextTokens"])
    } else {
        json!(["generateContent", "countTokens", "streamGenerateContent"])
    };
    json!({"name": format!("models/{id}"), "version": "001", "displayName": id,
           "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
           "supportedGenerationMethods": methods})
}

/// `GET /v1beta/models?pageSize=&pageToken=` (the token is an offset here).
pub(crate) async fn models(
    State(sim): State<Sim>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = key_of(&headers, &query);
    let seq = record(
        &sim,
        Received {
            provider: Provider::Google,
            authenticated: key.and_then(|k| sim.llm().key_provider(k)) == Some(Provider::Google),
            method: "GET",
            path: uri.path(),
            model: None,
            key,
            stream: false,
            body: &Value::Null,
        },
    );
    let response = match authenticate(&sim, key) {
        Err(r) => r,
        Ok(()) => match latency_and_fault(&sim, Provider::Google, "").await {
            Some(r) => r,
            None => {
                let size = query
                    .get("pageSize")
                    .and_then(|s| s.parse::<usize>().ok())
                    .unwrap_or(50)
                    .clamp(1, 1000);
                let start = query
                    .get("pageToken")
                    .and_then(|s| s.parse::<usize>().ok())
                    .unwrap_or(0);
                let all = sim.llm().models(Provider::Google);
                let page: Vec<Value> = all
                    .iter()
                    .skip(start)
                    .take(size)
                    .map(|m| model_json(m))
                    .collect();
                let mut body = json!({"models": page});
                if start + size < all.len() {
                    body["nextPageToken"] = json!((start + size).to_string());
                }
                json_response(200, body, Vec::new())
            }
        },
    };
    finish(&sim, seq, response)
}

/// `GET /v1beta/models/{model}`.
pub(crate) async fn model(
    State(sim): State<Sim>,
    Path(model): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&sim, key_of(&headers, &query)) {
        return r;
    }
    if !sim.llm().knows_model(Provider::Google, &model) {
        return gemini_error(
            404,
            "NOT_FOUND",
            &format!("models/{model} is not found for API version v1beta"),
            Vec::new(),
        );
    }
    json_response(200, model_json(&model), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::super::engine::tokens;
    use super::*;

    #[test]
    fn streamed_chunks_end_with_usage_and_finish() {
        let reply = Reply {
            text: "You said: hi there".into(),
            tool_call: None,
            truncated: false,
            input_tokens: 3,
            output_tokens: tokens("You said: hi there"),
        };
        let chunks = response_chunks("gemini-2.5-flash", 1, &reply, true);
        assert_eq!(chunks.len(), 4);
        assert!(chunks[0]["candidates"][0].get("finishReason").is_none());
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    }
}
