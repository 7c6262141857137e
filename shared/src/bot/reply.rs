//! `bot.reply` (lane `llm`): the bot's answer to a customer's message. Enqueued per inbound
//! message, debounced by the config's `debounceSeconds`: the job of an older message of a
//! burst finds a newer one and leaves the answer to it, so a burst gets one answer to all of
//! it. The model is called outside any transaction; the answer is queued through the shared
//! outbound function with the idempotency key `bot:<message id>`, so a job that runs twice
//! sends once, and only while the conversation is still the bot's (an agent's takeover wins).
//! A handoff (see [`super::handoff`]) replaces the answer whenever the bot should not or
//! cannot answer. Every run leaves a trace (`bot_traces`).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{config, handoff, intents, load_settings, retrieval, usage};
use crate::{
    accounts::{raise_alert, Alert},
    crypto::SecretBox,
    events::{Event, EventPublisher},
    jobs::{JobKind, Lane},
    llm::{
        ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, RetryPolicy, Role, ToolCall,
        ToolSpec,
    },
    outbound::{self, NewOutbound},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BotReply {
    pub conversation_id: Uuid,
    /// The customer message that triggered it.
    pub message_id: Uuid,
}

impl JobKind for BotReply {
    const KIND: &'static str = "bot.reply";
    const LANE: Lane = Lane::Llm;
    const MAX_ATTEMPTS: i32 = 5;

    /// A retry follows a rate limit that outlasted the call's own waiting (the provider's,
    /// or the organization's budget): 10 s, 20 s, 30 s, 40 s, so the customer gets an answer
    /// within about two minutes, or a person.
    fn backoff(attempt: i32) -> Duration {
        Duration::from_secs(10 * attempt.max(1) as u64)
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The answer was queued (its message id).
    Answered(Uuid),
    /// Handed to people, for this reason.
    HandedOff(String),
    /// Nothing to do, and why.
    Skipped(&'static str),
}

/// What the reply needs besides the database.
pub struct ReplyDeps<'a> {
    pub pool: &'a PgPool,
    pub llm: &'a LlmClient,
    pub secrets: &'a SecretBox,
    pub events: &'a EventPublisher,
    /// The job's last attempt: a rate limit then hands over instead of retrying later.
    pub last_attempt: bool,
}

/// Messages of context sent to the model. Ordered by `seq` (the order they were stored):
/// inbound `created_at` is Meta's whole-second timestamp, which cannot order a burst.
pub const HISTORY: i64 = 20;

/// Said by customers who want a person, in the languages the defaults cover.
const DEFAULT_HANDOFF_WORDS: [&str; 8] = [
    "human",
    "agent",
    "person",
    "operator",
    "humano",
    "agente",
    "persona",
    "atendente",
];

const HANDOFF_TOOL: &str = "handoff_to_human";

fn handoff_tool() -> ToolSpec {
    ToolSpec {
        name: HANDOFF_TOOL.into(),
        description: "Hand the conversation to a human agent when the customer asks for a person or you cannot help."
            .into(),
        parameters: json!({"type": "object",
                           "properties": {"reason": {"type": "string", "description": "why a person should take over"}},
                           "required": ["reason"]}),
    }
}

#[derive(sqlx::FromRow)]
struct Conversation {
    org_id: Uuid,
    status: String,
    bot_turns: i32,
}

#[derive(sqlx::FromRow)]
struct Line {
    direction: String,
    body: Option<String>,
}

/// Whether the customer's words ask for a person (a configured keyword, else the defaults).
pub fn asks_for_person(text: &str, keywords: &[String]) -> bool {
    let configured: Vec<&str> = keywords
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !k.trim().is_empty())
        .collect();
    let words: &[&str] = if configured.is_empty() {
        &DEFAULT_HANDOFF_WORDS
    } else {
        &configured
    };
    words.iter().any(|k| intents::mentions(text, k))
}

/// What the pipeline does with the customer's unanswered words before any model call (the
/// same for a real reply and the admin's sandbox, which must behave alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// A TAG intent matched: the conversation gets this tag, whatever the step.
    pub tag: Option<Uuid>,
    /// The name of the intent that matched, if any.
    pub intent: Option<String>,
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Hand over, for this reason, to `team` (`None`: the routing rules choose).
    HandOff { reason: String, team: Option<Uuid> },
    /// Answer with this fixed text (an ANSWER intent), without the model.
    Answer(String),
    /// Ask the model.
    AskModel,
}

/// Decides, in order: the customer asked for a person; the first matching intent (`intent`,
/// found by [`intents::matching`]) answers, hands over or tags; the bot reached its turn limit
/// (`bot_turns` answers so far); else the model is asked.
pub fn decide(
    cfg: &config::BotConfig,
    unanswered: &[&str],
    bot_turns: i32,
    intent: Option<&intents::Intent>,
) -> Decision {
    let mut decision = Decision {
        tag: None,
        intent: None,
        step: Step::AskModel,
    };
    if unanswered
        .iter()
        .any(|t| asks_for_person(t, &cfg.handoff_keywords.0))
    {
        decision.step = Step::HandOff {
            reason: "the customer asked for a person".into(),
            team: None,
        };
        return decision;
    }
    if let Some(intent) = intent {
        decision.intent = Some(intent.name.clone());
        match intent.action.as_str() {
            "ANSWER" => {
                let text = intent.response.clone().unwrap_or_default();
                if !text.trim().is_empty() {
                    decision.step = Step::Answer(text);
                    return decision;
                }
            }
            "HANDOFF" => {
                decision.step = Step::HandOff {
                    reason: format!("intent \"{}\"", intent.name),
                    team: intent.team_id,
                };
                return decision;
            }
            _ => decision.tag = intent.tag_id,
        }
    }
    if cfg.max_turns > 0 && bot_turns >= cfg.max_turns {
        decision.step = Step::HandOff {
            reason: "the bot reached its turn limit".into(),
            team: None,
        };
    }
    decision
}

/// The model request: the config's system prompt and temperature, `turns` (oldest first) and
/// the handoff tool.
pub fn build_request(cfg: &config::BotConfig, turns: Vec<(Role, String)>) -> ChatRequest {
    ChatRequest {
        system: Some(cfg.system_prompt.clone()).filter(|s| !s.trim().is_empty()),
        messages: turns
            .into_iter()
            .map(|(role, content)| ChatMessage {
                role,
                content,
                tool_calls: Vec::new(),
                tool_call_id: None,
            })
            .collect(),
        temperature: Some(cfg.temperature),
        max_tokens: 512,
        tools: vec![handoff_tool()],
    }
}

/// [`build_request`] with the knowledge base's passages for the customer's unanswered words
/// (`unanswered`, newest first) appended to the system prompt; also returns the passages, for
/// the trace.
pub async fn model_request(
    searcher: &retrieval::Searcher<'_>,
    cfg: &config::BotConfig,
    turns: Vec<(Role, String)>,
    unanswered: &[&str],
) -> Result<(ChatRequest, Vec<retrieval::Passage>), sqlx::Error> {
    let query = unanswered
        .iter()
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let passages = retrieval::retrieve(searcher, cfg, &query).await?;
    let mut request = build_request(cfg, turns);
    if !passages.is_empty() {
        request.system = Some(retrieval::with_context(&cfg.system_prompt, &passages));
    }
    Ok((request, passages))
}

/// What the model's answer means for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelAnswer<'a> {
    Text(&'a str),
    /// It called the handoff tool, or said nothing: hand over for this reason.
    HandOff(String),
}

pub fn read_answer(answer: &ChatResponse) -> ModelAnswer<'_> {
    if let Some(call) = answer.tool_calls.iter().find(|t| t.name == HANDOFF_TOOL) {
        let reason = call.arguments["reason"]
            .as_str()
            .unwrap_or("the bot asked for a person")
            .to_string();
        return ModelAnswer::HandOff(reason);
    }
    if answer.text.trim().is_empty() {
        return ModelAnswer::HandOff("the model gave no answer".into());
    }
    ModelAnswer::Text(&answer.text)
}

/// The handoff reason when the provider failed after its retries.
pub fn provider_failure_reason(e: &LlmError) -> String {
    format!("the AI provider failed ({})", e.kind())
}

pub async fn run(d: &ReplyDeps<'_>, job: &BotReply) -> anyhow::Result<ReplyOutcome> {
    let started = Instant::now();
    let mut conn = d.pool.acquire().await?;
    let Some(c) = sqlx::query_as::<_, Conversation>(
        "SELECT org_id, status, bot_turns FROM conversations WHERE id = $1",
    )
    .bind(job.conversation_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(ReplyOutcome::Skipped("the conversation no longer exists"));
    };
    if c.status != "BOT_HANDLING" {
        return Ok(ReplyOutcome::Skipped(
            "the conversation is no longer the bot's",
        ));
    }
    let newer: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages n, messages m
                         WHERE m.id = $2 AND n.conversation_id = $1 AND n.direction = 'INBOUND'
                           AND n.seq > m.seq)",
    )
    .bind(job.conversation_id)
    .bind(job.message_id)
    .fetch_one(&mut *conn)
    .await?;
    if newer {
        return Ok(ReplyOutcome::Skipped("a newer message gets the answer"));
    }
    if already_answered(&mut conn, c.org_id, job.message_id).await? {
        return Ok(ReplyOutcome::Skipped("already answered"));
    }
    let Some(cfg) = config::for_conversation(&mut conn, c.org_id, job.conversation_id).await?
    else {
        return hand_off(d, &c, job, None, "no active bot config", started).await;
    };
    let settings = load_settings(&mut conn, c.org_id).await?;
    if usage::over_monthly_limit(
        &mut conn,
        c.org_id,
        settings.monthly_token_limit,
        Utc::now(),
    )
    .await?
    {
        raise_alert(
            &mut *conn,
            Alert {
                org_id: c.org_id,
                account_id: None,
                kind: "llm_monthly_limit",
                severity: "WARNING",
                title: "The bot reached its monthly limit",
                message: "The bot used this month's tokens; conversations go to your team until next month or a higher limit.",
                details: json!({"limit": settings.monthly_token_limit}),
            },
        )
        .await?;
        return hand_off(
            d,
            &c,
            job,
            Some(&cfg),
            "monthly token limit reached",
            started,
        )
        .await;
    }
    let history: Vec<Line> = sqlx::query_as(
        "SELECT direction, content->>'body' AS body FROM (
             SELECT direction, content, seq FROM messages WHERE conversation_id = $1
              ORDER BY seq DESC LIMIT $2) h
          ORDER BY seq",
    )
    .bind(job.conversation_id)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await?;
    let unanswered: Vec<&str> = history
        .iter()
        .rev()
        .take_while(|l| l.direction == "INBOUND")
        .filter_map(|l| l.body.as_deref())
        .collect();
    let intent = intents::matching(&mut conn, cfg.id, &unanswered).await?;
    let decision = decide(&cfg, &unanswered, c.bot_turns, intent.as_ref());
    if let Some(tag) = decision.tag {
        sqlx::query(
            "INSERT INTO conversation_tags (conversation_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(job.conversation_id)
        .bind(tag)
        .execute(&mut *conn)
        .await?;
    }
    match decision.step {
        Step::HandOff { reason, team } => {
            let why = Why {
                reason: &reason,
                team,
                call: None,
            };
            return hand_off_to(d, &c, job, Some(&cfg), why, started).await;
        }
        Step::Answer(text) => {
            let detail = json!({"intent": decision.intent});
            return queue_answer(d, &c, job, &cfg, &text, detail, started).await;
        }
        Step::AskModel => {}
    }
    let target = match cfg.target(d.secrets) {
        Ok(t) => t,
        Err(e) => return hand_off(d, &c, job, Some(&cfg), &e, started).await,
    };
    let turns: Vec<(Role, String)> = history
        .iter()
        .filter_map(|l| {
            let role = if l.direction == "INBOUND" {
                Role::User
            } else {
                Role::Assistant
            };
            Some((role, l.body.clone()?))
        })
        .collect();
    drop(conn);
    let searcher = retrieval::Searcher {
        pool: d.pool,
        llm: d.llm,
        secrets: d.secrets,
    };
    let (request, passages) = model_request(&searcher, &cfg, turns, &unanswered).await?;
    let answer = d
        .llm
        .chat(c.org_id, &target, &request, &RetryPolicy::default())
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return provider_failed(d, &c, job, &cfg, e, started).await,
    };
    let mut tx = d.pool.begin().await?;
    usage::record(
        &mut tx,
        usage::Call {
            org_id: c.org_id,
            bot_config_id: Some(cfg.id),
            conversation_id: Some(job.conversation_id),
            purpose: "reply",
            provider: target.provider,
            model: &answer.model,
            usage: &answer.usage,
            latency: answer.latency,
        },
    )
    .await?;
    tx.commit().await?;
    let call_detail = json!({"provider": target.provider.as_str(), "model": answer.model,
        "inputTokens": answer.usage.input_tokens, "outputTokens": answer.usage.output_tokens,
        "providerLatencyMs": answer.latency.as_millis() as u64, "contextMessages": request.messages.len(),
        "retrieval": passages.iter().map(|p| json!({"chunkId": p.chunk_id, "documentId": p.document_id,
            "score": p.score})).collect::<Vec<_>>(),
        "toolCalls": tool_calls_json(&answer.tool_calls)});
    match read_answer(&answer) {
        ModelAnswer::HandOff(reason) => {
            let why = Why {
                reason: &reason,
                team: None,
                call: Some(call_detail),
            };
            hand_off_to(d, &c, job, Some(&cfg), why, started).await
        }
        ModelAnswer::Text(text) => queue_answer(d, &c, job, &cfg, text, call_detail, started).await,
    }
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|t| json!({"name": t.name, "arguments": t.arguments}))
            .collect(),
    )
}

fn idempotency_key(message_id: Uuid) -> String {
    format!("bot:{message_id}")
}

async fn already_answered(
    conn: &mut PgConnection,
    org_id: Uuid,
    message_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE org_id = $1 AND idempotency_key = $2)",
    )
    .bind(org_id)
    .bind(idempotency_key(message_id))
    .fetch_one(conn)
    .await
}

/// Queues the answer if the conversation is still the bot's, counts the turn, keeps a trace.
async fn queue_answer(
    d: &ReplyDeps<'_>,
    c: &Conversation,
    job: &BotReply,
    cfg: &config::BotConfig,
    text: &str,
    detail: Value,
    started: Instant,
) -> anyhow::Result<ReplyOutcome> {
    let mut tx = d.pool.begin().await?;
    let locked: Option<(String, i32)> =
        sqlx::query_as("SELECT status, bot_turns FROM conversations WHERE id = $1 FOR UPDATE")
            .bind(job.conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status, turns) = locked.unzip();
    if status.as_deref() != Some("BOT_HANDLING") {
        trace(
            &mut tx,
            c,
            job,
            Some(cfg),
            "skipped",
            json!({"reason": "taken over during the reply", "call": detail}),
            started,
        )
        .await?;
        tx.commit().await?;
        return Ok(ReplyOutcome::Skipped("taken over during the reply"));
    }
    let Some(target) = outbound::load_target(&mut tx, c.org_id, job.conversation_id).await? else {
        return Ok(ReplyOutcome::Skipped("the conversation no longer exists"));
    };
    // The config's greeting opens the bot's first answer of a conversation, as its own message.
    if let Some(greeting) = cfg.greeting.as_deref().filter(|g| !g.trim().is_empty()) {
        if turns == Some(0) {
            let mut g = NewOutbound::text(c.org_id, target.clone(), greeting);
            // Not hashed `bot`: a greeting is no answer (metrics count answers by that hash).
            g.idempotency = Some((
                format!("bot-greeting:{}", job.conversation_id),
                "bot-greeting".into(),
            ));
            outbound::queue_outbound(&mut tx, g).await?;
        }
    }
    let mut m = NewOutbound::text(c.org_id, target, text);
    m.idempotency = Some((idempotency_key(job.message_id), "bot".into()));
    let id = outbound::queue_outbound(&mut tx, m).await?;
    sqlx::query("UPDATE conversations SET bot_turns = bot_turns + 1 WHERE id = $1")
        .bind(job.conversation_id)
        .execute(&mut *tx)
        .await?;
    trace(
        &mut tx,
        c,
        job,
        Some(cfg),
        "answered",
        json!({"messageId": id, "call": detail}),
        started,
    )
    .await?;
    tx.commit().await?;
    d.events
        .publish_one(Event::message_created(
            c.org_id,
            job.conversation_id,
            id,
            "OUTBOUND",
        ))
        .await;
    Ok(ReplyOutcome::Answered(id))
}

/// The provider failed after its retries. A refused key is the organization's to fix: it gets
/// an alert. Either way the customer goes to a person rather than waiting on a broken bot.
async fn provider_failed(
    d: &ReplyDeps<'_>,
    c: &Conversation,
    job: &BotReply,
    cfg: &config::BotConfig,
    e: LlmError,
    started: Instant,
) -> anyhow::Result<ReplyOutcome> {
    tracing::warn!(conversation_id = %job.conversation_id, kind = e.kind(), "bot reply failed at the provider");
    if matches!(e, LlmError::InvalidKey(_)) {
        let mut conn = d.pool.acquire().await?;
        raise_alert(
            &mut *conn,
            Alert {
                org_id: c.org_id,
                account_id: None,
                kind: "llm_key_invalid",
                severity: "CRITICAL",
                title: "The AI provider refused the bot's API key",
                message: "Update the API key of the active bot config; until then conversations go to your team.",
                details: json!({"provider": cfg.provider, "botConfigId": cfg.id, "error": e.to_string()}),
            },
        )
        .await?;
    }
    if matches!(e, LlmError::RateLimited { .. }) && !d.last_attempt {
        // Our budget or the provider's limit outlasted the call's own waiting: the job tries
        // again after its backoff, and hands over on its last attempt.
        anyhow::bail!("the AI provider is rate limiting; the reply is retried later: {e}");
    }
    let reason = provider_failure_reason(&e);
    hand_off(d, c, job, Some(cfg), &reason, started).await
}

async fn hand_off(
    d: &ReplyDeps<'_>,
    c: &Conversation,
    job: &BotReply,
    cfg: Option<&config::BotConfig>,
    reason: &str,
    started: Instant,
) -> anyhow::Result<ReplyOutcome> {
    let why = Why {
        reason,
        team: None,
        call: None,
    };
    hand_off_to(d, c, job, cfg, why, started).await
}

/// Why the bot hands over: the reason, the team (`None`: the routing rules choose) and the
/// model call that asked for it, if one did (kept in the trace).
struct Why<'a> {
    reason: &'a str,
    team: Option<Uuid>,
    call: Option<Value>,
}

async fn hand_off_to(
    d: &ReplyDeps<'_>,
    c: &Conversation,
    job: &BotReply,
    cfg: Option<&config::BotConfig>,
    why: Why<'_>,
    started: Instant,
) -> anyhow::Result<ReplyOutcome> {
    let Why { reason, team, call } = why;
    let message = cfg.map_or(config::DEFAULT_HANDOFF_MESSAGE, |c| c.handoff_message());
    let summary = format!("Handed over by the bot: {reason}.");
    let mut tx = d.pool.begin().await?;
    let handover = handoff::Handover {
        reason,
        summary: &summary,
        message,
        team,
    };
    let done = handoff::hand_off(
        &mut tx,
        c.org_id,
        job.conversation_id,
        &handover,
        Utc::now(),
    )
    .await?;
    let outcome = if done.is_some() { "handoff" } else { "skipped" };
    trace(
        &mut tx,
        c,
        job,
        cfg,
        outcome,
        match call {
            Some(call) => json!({"reason": reason, "call": call}),
            None => json!({"reason": reason}),
        },
        started,
    )
    .await?;
    tx.commit().await?;
    let Some(routed) = done else {
        return Ok(ReplyOutcome::Skipped("taken over before the handoff"));
    };
    let (team, agent) = routed.map_or((None, None), |r| (Some(r.team_id), r.assigned_to));
    d.events
        .publish_one(Event::conversation_assigned(
            c.org_id,
            job.conversation_id,
            team,
            agent,
        ))
        .await;
    Ok(ReplyOutcome::HandedOff(reason.to_string()))
}

async fn trace(
    conn: &mut PgConnection,
    c: &Conversation,
    job: &BotReply,
    cfg: Option<&config::BotConfig>,
    outcome: &str,
    mut detail: Value,
    started: Instant,
) -> Result<(), sqlx::Error> {
    detail["messageId"] = json!(job.message_id);
    let elapsed: Duration = started.elapsed();
    sqlx::query(
        "INSERT INTO bot_traces (org_id, conversation_id, bot_config_id, outcome, detail, latency_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.org_id)
    .bind(job.conversation_id)
    .bind(cfg.map(|c| c.id))
    .bind(outcome)
    .bind(detail)
    .bind(elapsed.as_millis().min(i32::MAX as u128) as i32)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_turns: i32) -> config::BotConfig {
        config::BotConfig {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            name: "Bot".into(),
            is_active: true,
            provider: "OPENAI".into(),
            model: "gpt-4o-mini".into(),
            api_key: None,
            base_url: None,
            system_prompt: "  ".into(),
            greeting: None,
            handoff_message: None,
            temperature: 0.3,
            debounce_seconds: 0,
            max_turns,
            handoff_keywords: sqlx::types::Json(Vec::new()),
            embedding_provider: None,
            embedding_model: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn intent(action: &str, response: Option<&str>) -> intents::Intent {
        intents::Intent {
            id: Uuid::nil(),
            name: "prices".into(),
            keywords: sqlx::types::Json(vec!["price".into()]),
            action: action.into(),
            response: response.map(str::to_string),
            team_id: None,
            tag_id: Some(Uuid::max()),
        }
    }

    #[test]
    fn the_decision_comes_before_the_model_in_the_flow_order() {
        let cfg = config(2);
        let person = decide(
            &cfg,
            &["a human please"],
            0,
            Some(&intent("ANSWER", Some("x"))),
        );
        assert!(
            matches!(person.step, Step::HandOff { ref reason, team: None } if reason == "the customer asked for a person")
        );
        assert_eq!(person.intent, None);
        let answer = decide(
            &cfg,
            &["price?"],
            5,
            Some(&intent("ANSWER", Some("10 EUR"))),
        );
        assert_eq!(answer.step, Step::Answer("10 EUR".into()));
        // An ANSWER intent without text falls through to the turn limit, then the model.
        let empty = decide(&cfg, &["price?"], 2, Some(&intent("ANSWER", Some(" "))));
        assert!(
            matches!(empty.step, Step::HandOff { ref reason, .. } if reason == "the bot reached its turn limit")
        );
        assert_eq!(empty.tag, None);
        // A TAG intent tags even when the turn limit then hands over.
        let tagged = decide(&cfg, &["price?"], 2, Some(&intent("TAG", None)));
        assert_eq!(tagged.tag, Some(Uuid::max()));
        assert!(matches!(tagged.step, Step::HandOff { .. }));
        let handoff = decide(&cfg, &["price?"], 0, Some(&intent("HANDOFF", None)));
        assert!(
            matches!(handoff.step, Step::HandOff { ref reason, .. } if reason == "intent \"prices\"")
        );
        assert_eq!(decide(&config(0), &["hi"], 99, None).step, Step::AskModel);
        let request = build_request(&cfg, vec![(Role::User, "hi".into())]);
        assert_eq!(request.system, None, "a blank prompt is left out");
        assert_eq!(request.tools[0].name, HANDOFF_TOOL);
    }

    #[test]
    fn asking_for_a_person_is_read_as_whole_words() {
        assert!(asks_for_person("Can I talk to a HUMAN please?", &[]));
        assert!(asks_for_person("quiero hablar con un agente", &[]));
        assert!(!asks_for_person("my agenda is full", &[]));
        let custom = vec!["supervisor".to_string(), "call me".to_string()];
        assert!(asks_for_person("get me a supervisor", &custom));
        assert!(asks_for_person("please call me back", &custom));
        assert!(!asks_for_person("a human please", &custom));
    }
}
