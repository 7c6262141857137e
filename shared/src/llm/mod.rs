//! Thin clients for the LLM providers the bot can use: OpenAI, Anthropic, Google Gemini,
//! DeepSeek, Moonshot/Kimi and OpenAI-compatible local servers (Ollama, vLLM, llama.cpp).
//!
//! One plain `reqwest` client and three wire formats (`openai`, `anthropic`, `gemini`) instead
//! of an SDK per vendor: the simulator (`wharf-sim`) plays every provider byte for byte, so the
//! shapes we send and parse must be exactly the ones the providers document (ARCHITECTURE.md
//! "LLM providers in the simulator"), and one small module per format keeps that reviewable.
//!
//! [`LlmClient::chat`] is what callers use: it waits for the organization's limiter
//! (requests and estimated tokens per minute, per provider, shared through Redis), then
//! retries rate limits, 5xx and timeouts with backoff. The API key never reaches a log line
//! or an error message: errors are built from the provider's message with the key scrubbed.

mod anthropic;
mod client;
mod error;
mod gemini;
mod limiter;
mod openai;
pub mod pricing;
mod retry;
mod stream;

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

pub use client::{ChatStream, LlmClient, ProviderUrls};
pub use error::LlmError;
pub use limiter::{LimitDecision, LlmLimiter, LlmLimits};
pub use retry::RetryPolicy;

/// A model provider. Stored as its upper-case name (`bot_configs.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    #[serde(rename = "OPENAI")]
    OpenAi,
    #[serde(rename = "ANTHROPIC")]
    Anthropic,
    #[serde(rename = "GOOGLE")]
    Google,
    #[serde(rename = "DEEPSEEK")]
    DeepSeek,
    #[serde(rename = "KIMI")]
    Kimi,
    /// An OpenAI-compatible server at a base URL the user gives (Ollama, vLLM, llama.cpp).
    #[serde(rename = "LOCAL")]
    Local,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Google,
        Provider::DeepSeek,
        Provider::Kimi,
        Provider::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI",
            Provider::Anthropic => "ANTHROPIC",
            Provider::Google => "GOOGLE",
            Provider::DeepSeek => "DEEPSEEK",
            Provider::Kimi => "KIMI",
            Provider::Local => "LOCAL",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the six provider names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// Where and how to call a model. `Debug` masks the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    pub api_key: String,
    /// LOCAL only: the OpenAI-compatible base as users type it (`http://localhost:11434/v1`).
    /// Ignored for the hosted providers, whose bases come from the configuration.
    pub base_url: Option<String>,
    pub model: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("provider", &self.provider)
            .field("api_key", &"****")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call (`tool_call_id` names the call).
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Assistant turns that called tools (resend them as returned).
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: the call this answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn plain(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(Role::Assistant, content)
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(Role::System, content)
    }

    /// The answer to tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::plain(Role::Tool, content)
        }
    }

    /// The assistant turn of a response, to resend before the tool results.
    pub fn from_response(r: &ChatResponse) -> Self {
        Self {
            tool_calls: r.tool_calls.clone(),
            ..Self::plain(Role::Assistant, r.text.clone())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id (Gemini gives none: we make one up, `gemini-call-N`).
    pub id: String,
    pub name: String,
    /// Always a JSON value here, whatever the wire carries (OpenAI sends a JSON string).
    pub arguments: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    /// Includes reasoning ("thinking") tokens where the provider reports them apart: they are
    /// billed as output.
    pub output_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// The model that answered, as the provider names it (often a dated id).
    pub model: String,
    /// Normalised to OpenAI's words: `stop`, `length`, `tool_calls`, `content_filter`; any
    /// other provider value is passed through lower-cased.
    pub finish_reason: String,
    /// Time of the successful attempt, from sending to the complete answer.
    pub latency: Duration,
}

/// What [`LlmClient::chat_stream`] yields: text as it comes, then the whole answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    Done(ChatResponse),
}

/// Size of the vectors asked of models that can shorten theirs (OpenAI's v3 models, Gemini):
/// 512 keeps most of the quality (both vendors train for shortened vectors) at a third of the
/// memory of 1,536, which is what the knowledge base's in-memory scan costs.
pub const EMBEDDING_DIMENSIONS: u32 = 512;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Gemini reports no usage for embeddings: there it is our estimate (see `estimate_tokens`).
    pub usage: Usage,
}

/// A rough token count (4 characters a token, OpenAI's rule of thumb) for limiter budgets and
/// for usage a provider does not report. Never billed from: real usage comes from responses.
pub fn estimate_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

/// Estimated tokens a request consumes against a tokens-per-minute limit: the prompt plus
/// `max_tokens`, the way OpenAI counts a request at admission.
pub fn estimate_request_tokens(req: &ChatRequest) -> u32 {
    let mut n = req.system.as_deref().map(estimate_tokens).unwrap_or(0);
    for m in &req.messages {
        n += estimate_tokens(&m.content) + 4;
        for c in &m.tool_calls {
            n += estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string());
        }
    }
    for t in &req.tools {
        n += estimate_tokens(&t.name)
            + estimate_tokens(&t.description)
            + estimate_tokens(&t.parameters.to_string());
    }
    n.saturating_add(req.max_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert!("openai".parse::<Provider>().is_ok());
        assert!("azure".parse::<Provider>().is_err());
    }

    #[test]
    fn target_debug_masks_the_key() {
        let t = Target {
            provider: Provider::OpenAi,
            api_key: "sk-very-secret".into(),
            base_url: None,
            model: "gpt-5-nano".into(),
        };
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
