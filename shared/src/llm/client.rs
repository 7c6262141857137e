//! [`LlmClient`]: URLs and authentication per provider, the limiter and retry loop around every
//! call, and dispatch to the three wire formats.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{
    header::{HeaderName, HeaderValue},
    Method, RequestBuilder,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    anthropic, error, estimate_request_tokens, estimate_tokens, gemini, openai, stream,
    ChatRequest, ChatResponse, Embeddings, LlmError, LlmLimiter, LlmLimits, Provider, RetryPolicy,
    Target, Usage,
};
use crate::{redis_conn::RedisHandle, Config};

pub use super::stream::ChatStream;

/// Where each hosted provider lives: scheme, host and optional prefix, no API path (the
/// client adds `/v1/...`, `/v1beta/...`). Locally all five point at the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrls {
    pub openai: String,
    pub anthropic: String,
    pub google: String,
    pub deepseek: String,
    pub kimi: String,
}

impl Default for ProviderUrls {
    fn default() -> Self {
        Self {
            openai: "https://api.openai.com".into(),
            anthropic: "https://api.anthropic.com".into(),
            google: "https://generativelanguage.googleapis.com".into(),
            deepseek: "https://api.deepseek.com".into(),
            kimi: "https://api.moonshot.ai".into(),
        }
    }
}

impl ProviderUrls {
    pub fn from_config(config: &Config) -> Self {
        Self {
            openai: config.llm_openai_url.clone(),
            anthropic: config.llm_anthropic_url.clone(),
            google: config.llm_google_url.clone(),
            deepseek: config.llm_deepseek_url.clone(),
            kimi: config.llm_kimi_url.clone(),
        }
    }

    /// Every provider at one base (the simulator plays them all on one server).
    pub fn all(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Self {
            openai: base.clone(),
            anthropic: base.clone(),
            google: base.clone(),
            deepseek: base.clone(),
            kimi: base,
        }
    }
}

/// The three formats on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

fn wire(p: Provider) -> Wire {
    match p {
        Provider::Anthropic => Wire::Anthropic,
        Provider::Google => Wire::Gemini,
        Provider::OpenAi | Provider::DeepSeek | Provider::Kimi | Provider::Local => Wire::OpenAi,
    }
}

/// What a call is for, to pick the path.
#[derive(Debug, Clone, Copy)]
enum Api {
    Chat,
    Embeddings,
    Models,
}

/// Largest input array per embeddings request (OpenAI's limit).
const OPENAI_EMBED_BATCH: usize = 2048;
/// Pages of model lists followed at most.
const MAX_MODEL_PAGES: usize = 10;

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    urls: ProviderUrls,
    limiter: LlmLimiter,
    timeout: Duration,
}

/// Cheap to clone: one connection pool and one limiter shared by all clones.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

impl LlmClient {
    /// A client with a 60 s timeout per attempt ([`Self::with_timeout`] to change it).
    pub fn new(urls: ProviderUrls, limiter: LlmLimiter) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                http,
                urls,
                limiter,
                timeout: Duration::from_secs(60),
            }),
        }
    }

    /// URLs, timeout (`LLM_TIMEOUT_SECS`) and limits (`LLM_REQUESTS_PER_MINUTE`,
    /// `LLM_TOKENS_PER_MINUTE`) from the configuration; limits shared through Redis.
    pub fn from_config(config: &Config, redis: RedisHandle) -> Self {
        let limits =
            LlmLimits::per_minute(config.llm_requests_per_minute, config.llm_tokens_per_minute);
        let limiter = LlmLimiter::new(redis, &config.redis_prefix, limits);
        Self::new(ProviderUrls::from_config(config), limiter).with_timeout(config.llm_timeout)
    }

    /// How long one attempt may take (a stream: the longest silence between events).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.inner).timeout = timeout;
        self
    }

    pub fn limiter(&self) -> &LlmLimiter {
        &self.inner.limiter
    }

    // ---- calls ----------------------------------------------------------------------

    /// One chat call without limiter or retries: a single attempt, its error classified.
    pub async fn chat_once(
        &self,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        check(target, true)?;
        self.chat_attempt(target, req, self.inner.timeout).await
    }

    /// The call every caller uses: waits for the organization's limiter (requests and
    /// estimated tokens per minute, per org and provider), then retries 429 (honouring
    /// Retry-After, capped), 5xx and timeouts with exponential backoff and jitter, up to
    /// `policy.max_attempts` within `policy.max_total`. `InvalidKey`/`BadRequest` return at
    /// once; so does a limiter wait longer than the budget (`RateLimited` with the wait).
    pub async fn chat(
        &self,
        org_id: Uuid,
        target: &Target,
        req: &ChatRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatResponse, LlmError> {
        check(target, true)?;
        let tokens = estimate_request_tokens(req);
        self.with_retries(org_id, target, tokens, policy, |timeout| {
            self.chat_attempt(target, req, timeout)
        })
        .await
    }

    /// Streaming: text deltas, then a final `Done` with the whole answer (tool calls
    /// assembled, usage). Limiter and retries (default policy) apply until the provider
    /// starts answering; an error after that ends the stream with an `Err` item.
    pub async fn chat_stream(
        &self,
        org_id: Uuid,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatStream, LlmError> {
        check(target, true)?;
        let tokens = estimate_request_tokens(req);
        let policy = RetryPolicy::default();
        let (response, started) = self
            .with_retries(org_id, target, tokens, &policy, |timeout| {
                self.open_stream(target, req, timeout)
            })
            .await?;
        let decoder: Box<dyn stream::Decoder> = match wire(target.provider) {
            Wire::OpenAi => Box::new(openai::StreamDecoder::new(target)),
            Wire::Anthropic => Box::new(anthropic::StreamDecoder::new(target)),
            Wire::Gemini => Box::new(gemini::StreamDecoder::new(target)),
        };
        Ok(stream::chat_stream(
            response,
            decoder,
            target.provider,
            self.inner.timeout,
            started,
        ))
    }

    /// Embeddings of `inputs`, in order (`target.model` is the embedding model). OpenAI and
    /// LOCAL use `/embeddings` (2048 inputs a request), Google `embedContent` /
    /// `batchEmbedContents` (100 a request); Anthropic, DeepSeek and Kimi have no public
    /// embeddings API.
    pub async fn embed(
        &self,
        org_id: Uuid,
        target: &Target,
        inputs: &[String],
    ) -> Result<Embeddings, LlmError> {
        check(target, true)?;
        if matches!(
            target.provider,
            Provider::Anthropic | Provider::DeepSeek | Provider::Kimi
        ) {
            return Err(LlmError::BadRequest(format!(
                "{} has no embeddings API",
                target.provider
            )));
        }
        if inputs.iter().any(|t| t.trim().is_empty()) {
            return Err(LlmError::BadRequest("an embeddings input is empty".into()));
        }
        let batch = if target.provider == Provider::Google {
            gemini::BATCH_LIMIT
        } else {
            OPENAI_EMBED_BATCH
        };
        let policy = RetryPolicy::default();
        let mut out = Embeddings {
            vectors: Vec::with_capacity(inputs.len()),
            usage: Usage::default(),
        };
        for chunk in inputs.chunks(batch) {
            let tokens = chunk.iter().map(|t| estimate_tokens(t)).sum();
            let part = self
                .with_retries(org_id, target, tokens, &policy, |timeout| {
                    self.embed_attempt(target, chunk, timeout)
                })
                .await?;
            out.vectors.extend(part.vectors);
            out.usage.input_tokens += part.usage.input_tokens;
        }
        Ok(out)
    }

    /// The models the key can use (one attempt, no limiter: this is a key check a person
    /// is waiting for). Gemini names lose their `models/` prefix.
    pub async fn list_models(&self, target: &Target) -> Result<Vec<String>, LlmError> {
        check(target, false)?;
        let url = self.url(target, Api::Models)?;
        let timeout = self.inner.timeout.min(Duration::from_secs(30));
        match wire(target.provider) {
            Wire::OpenAi => {
                let body = self
                    .send(target, Method::GET, &url, &[], None, timeout)
                    .await?;
                Ok(openai::parse_models(&body))
            }
            Wire::Anthropic | Wire::Gemini => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                for _ in 0..MAX_MODEL_PAGES {
                    let mut query = Vec::new();
                    match (wire(target.provider), cursor.take()) {
                        (Wire::Anthropic, c) => {
                            query.push(("limit", "1000".to_string()));
                            if let Some(c) = c {
                                query.push(("after_id", c));
                            }
                        }
                        (_, c) => {
                            query.push(("pageSize", "1000".to_string()));
                            if let Some(c) = c {
                                query.push(("pageToken", c));
                            }
                        }
                    }
                    let body = self
                        .send(target, Method::GET, &url, &query, None, timeout)
                        .await?;
                    let (ids, next) = if target.provider == Provider::Anthropic {
                        anthropic::parse_models(&body)
                    } else {
                        gemini::parse_models(&body)
                    };
                    all.extend(ids);
                    match next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                Ok(all)
            }
        }
    }

    // ---- the retry loop ---------------------------------------------------------------

    async fn with_retries<T, F, Fut>(
        &self,
        org_id: Uuid,
        target: &Target,
        tokens: u32,
        policy: &RetryPolicy,
        attempt_fn: F,
    ) -> Result<T, LlmError>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let provider = target.provider;
        let deadline = Instant::now() + policy.max_total;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Every attempt counts against the limits, as it does at the provider.
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(wait) = self
                .inner
                .limiter
                .wait(org_id, provider, tokens, left)
                .await
            {
                let l = self.inner.limiter.limits();
                return Err(LlmError::RateLimited {
                    retry_after: Some(wait),
                    message: format!(
                        "{provider}: this organization's limit of {} requests and {} tokens per {}s is reached",
                        l.requests,
                        l.tokens,
                        l.window.as_secs_f64()
                    ),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LlmError::Unavailable(format!(
                    "{provider}: no time left for the call"
                )));
            }
            let err = match attempt_fn(self.inner.timeout.min(left)).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= policy.max_attempts.max(1) {
                return Err(err);
            }
            let Some(wait) = policy.wait_after(&err, attempt) else {
                return Err(err);
            };
            if Instant::now() + wait >= deadline {
                return Err(err);
            }
            tracing::info!(provider = provider.as_str(), model = %target.model, attempt,
                kind = err.kind(), wait_ms = wait.as_millis() as u64, error = %err,
                "LLM call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    // ---- one attempt ------------------------------------------------------------------

    async fn chat_attempt(
        &self,
        target: &Target,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let url = self.url(target, Api::Chat)?;
        let body = match wire(target.provider) {
            Wire::OpenAi => openai::chat_body(target, req, false),
            Wire::Anthropic => anthropic::chat_body(target, req, false),
            Wire::Gemini => gemini::chat_body(req),
        };
        let answer = self
            .send(target, Method::POST, &url, &[], Some(&body), timeout)
            .await?;
        let latency = started.elapsed();
        tracing::debug!(provider = target.provider.as_str(), model = %target.model,
            latency_ms = latency.as_millis() as u64, "LLM call answered");
        Ok(match wire(target.provider) {
            Wire::OpenAi => openai::parse_chat(target, &answer, latency),
            Wire::Anthropic => anthropic::parse_chat(target, &answer, latency),
            Wire::Gemini => gemini::parse_chat(target, &answer, latency),
        })
    }

    async fn open_stream(
        &self,
        target: &Target,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<(reqwest::Response, Instant), LlmError> {
        let started = Instant::now();
        let mut url = self.url(target, Api::Chat)?;
        let body = match wire(target.provider) {
            Wire::OpenAi => openai::chat_body(target, req, true),
            Wire::Anthropic => anthropic::chat_body(target, req, true),
            Wire::Gemini => {
                url = url.replace(":generateContent", ":streamGenerateContent");
                gemini::chat_body(req)
            }
        };
        let mut builder = self.request(target, Method::POST, &url)?.json(&body);
        if wire(target.provider) == Wire::Gemini {
            builder = builder.query(&[("alt", "sse")]);
        }
        // No whole-request timeout: the body streams for as long as the answer takes; the
        // stream has its own idle timeout.
        let response = tokio::time::timeout(timeout, builder.send())
            .await
            .map_err(|_| LlmError::Unavailable(format!("{}: timed out", target.provider)))?
            .map_err(|e| error::from_transport(target.provider, &e))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let text = tokio::time::timeout(timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(error::from_response(
                target.provider,
                status.as_u16(),
                &headers,
                &text,
                &target.api_key,
            ));
        }
        Ok((response, started))
    }

    async fn embed_attempt(
        &self,
        target: &Target,
        inputs: &[String],
        timeout: Duration,
    ) -> Result<Embeddings, LlmError> {
        let url = self.url(target, Api::Embeddings)?;
        if target.provider != Provider::Google {
            let body = openai::embed_body(&target.model, inputs);
            let answer = self
                .send(target, Method::POST, &url, &[], Some(&body), timeout)
                .await?;
            return openai::parse_embeddings(&answer, inputs.len());
        }
        let vectors = if let [one] = inputs {
            let body = gemini::embed_one_body(one);
            let answer = self
                .send(target, Method::POST, &url, &[], Some(&body), timeout)
                .await?;
            gemini::parse_embed_one(&answer)
        } else {
            let url = url.replace(":embedContent", ":batchEmbedContents");
            let body = gemini::embed_batch_body(&target.model, inputs);
            let answer = self
                .send(target, Method::POST, &url, &[], Some(&body), timeout)
                .await?;
            gemini::parse_embed_batch(&answer)
        };
        gemini::check_embeddings(vectors, inputs)
    }

    // ---- HTTP -----------------------------------------------------------------------

    fn url(&self, target: &Target, api: Api) -> Result<String, LlmError> {
        let urls = &self.inner.urls;
        let (base, path) = match target.provider {
            Provider::OpenAi => (
                urls.openai.as_str(),
                match api {
                    Api::Chat => "/v1/chat/completions",
                    Api::Embeddings => "/v1/embeddings",
                    Api::Models => "/v1/models",
                },
            ),
            // DeepSeek's documented base has no `/v1`.
            Provider::DeepSeek => (
                urls.deepseek.as_str(),
                match api {
                    Api::Chat => "/chat/completions",
                    Api::Embeddings => "/embeddings",
                    Api::Models => "/models",
                },
            ),
            Provider::Kimi => (
                urls.kimi.as_str(),
                match api {
                    Api::Chat => "/v1/chat/completions",
                    Api::Embeddings => "/v1/embeddings",
                    Api::Models => "/v1/models",
                },
            ),
            Provider::Local => {
                let base = target
                    .base_url
                    .as_deref()
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        LlmError::BadRequest(
                            "a LOCAL provider needs its OpenAI-compatible base URL".into(),
                        )
                    })?;
                if !(base.starts_with("http://") || base.starts_with("https://")) {
                    return Err(LlmError::BadRequest(
                        "the LOCAL base URL must start with http:// or https://".into(),
                    ));
                }
                (
                    base,
                    match api {
                        Api::Chat => "/chat/completions",
                        Api::Embeddings => "/embeddings",
                        Api::Models => "/models",
                    },
                )
            }
            Provider::Anthropic => (
                urls.anthropic.as_str(),
                match api {
                    Api::Models => "/v1/models",
                    _ => "/v1/messages",
                },
            ),
            Provider::Google => {
                let base = urls.google.trim_end_matches('/');
                if let Api::Models = api {
                    return Ok(format!("{base}/v1beta/models"));
                }
                let model = gemini::model_id(&target.model);
                if !model
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                {
                    return Err(LlmError::BadRequest(format!(
                        "not a Gemini model id: {model:?}"
                    )));
                }
                let method = match api {
                    Api::Embeddings => "embedContent",
                    _ => "generateContent",
                };
                return Ok(format!("{base}/v1beta/models/{model}:{method}"));
            }
        };
        Ok(format!("{}{path}", base.trim_end_matches('/')))
    }

    /// A request with the provider's authentication. Header values holding the key are
    /// marked sensitive, so no debug output of the request shows them.
    fn request(
        &self,
        target: &Target,
        method: Method,
        url: &str,
    ) -> Result<RequestBuilder, LlmError> {
        let key = target.api_key.trim();
        let secret = |v: String| {
            HeaderValue::from_str(&v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_| {
                    LlmError::InvalidKey(format!(
                        "{}: the API key contains characters that cannot be sent",
                        target.provider
                    ))
                })
        };
        let mut b = self.inner.http.request(method, url);
        match wire(target.provider) {
            Wire::OpenAi => {
                // Local servers often need no key: send none rather than an empty Bearer.
                if !key.is_empty() {
                    b = b.header(
                        reqwest::header::AUTHORIZATION,
                        secret(format!("Bearer {key}"))?,
                    );
                }
            }
            Wire::Anthropic => {
                b = b
                    .header(
                        HeaderName::from_static("x-api-key"),
                        secret(key.to_string())?,
                    )
                    .header("anthropic-version", anthropic::VERSION);
            }
            Wire::Gemini => {
                // The header, never `?key=`: URLs end up in logs and error messages.
                b = b.header(
                    HeaderName::from_static("x-goog-api-key"),
                    secret(key.to_string())?,
                );
            }
        }
        Ok(b)
    }

    async fn send(
        &self,
        target: &Target,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, LlmError> {
        let provider = target.provider;
        let mut b = self.request(target, method, url)?.timeout(timeout);
        if !query.is_empty() {
            b = b.query(query);
        }
        if let Some(body) = body {
            b = b.json(body);
        }
        let response = b
            .send()
            .await
            .map_err(|e| error::from_transport(provider, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| error::from_transport(provider, &e))?;
        if !status.is_success() {
            let e =
                error::from_response(provider, status.as_u16(), &headers, &text, &target.api_key);
            tracing::debug!(
                provider = provider.as_str(),
                status = status.as_u16(),
                kind = e.kind(),
                "LLM provider refused the call"
            );
            return Err(e);
        }
        serde_json::from_str(&text)
            .map_err(|e| LlmError::Unavailable(format!("{provider}: the answer is not JSON ({e})")))
    }
}

/// Refuses what no provider would accept, without a round trip.
fn check(target: &Target, needs_model: bool) -> Result<(), LlmError> {
    if target.provider != Provider::Local && target.api_key.trim().is_empty() {
        return Err(LlmError::InvalidKey(format!(
            "no API key is configured for {}",
            target.provider
        )));
    }
    if needs_model && target.model.trim().is_empty() {
        return Err(LlmError::BadRequest("no model is configured".into()));
    }
    Ok(())
}
