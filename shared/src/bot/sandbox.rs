//! The admin's sandbox: a conversation with the active bot config without WhatsApp. Each
//! message goes through the reply pipeline's own steps ([`reply::decide`]: handoff words,
//! intents, the turn limit; [`reply::model_request`]; the limiter and retries of
//! [`LlmClient::chat`]; [`reply::read_answer`]), so what the admin sees is what a customer
//! would get. Nothing is queued to Meta and no conversation, tag or trace is written: the
//! turns live in `bot_sandbox_turns`, per organization and user, and the model call is counted
//! in `llm_usage` with purpose `sandbox` (it costs what a real one costs).

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{config, intents, load_settings, reply, retrieval, usage};
use crate::{
    crypto::SecretBox,
    llm::{pricing, LlmClient, RetryPolicy, Role, Usage},
};

/// Stored turns kept per user: enough for the highest turn limit a config may set (1000
/// answers) to be reached in the sandbox too; older ones are deleted.
const KEPT_TURNS: i64 = 2_002;

pub struct SandboxDeps<'a> {
    pub pool: &'a PgPool,
    pub llm: &'a LlmClient,
    pub secrets: &'a SecretBox,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub handed_off: bool,
    pub handoff_reason: Option<String>,
    pub intent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The bot's answer to one sandbox message.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The answer, or the handoff message the customer would hear.
    pub reply: String,
    pub handed_off: bool,
    pub handoff_reason: Option<String>,
    pub intent: Option<String>,
    /// Zero when no model was asked (an intent's answer, a handoff before the call).
    pub usage: Usage,
    pub cost_usd: f64,
    pub latency_ms: u64,
    /// The context after this exchange: the last [`reply::HISTORY`] turns, oldest first.
    pub history: Vec<Turn>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The organization has no active config to talk to.
    #[error("no active bot config")]
    NoActiveConfig,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Deletes `user_id`'s sandbox turns.
async fn forget(conn: &mut PgConnection, org_id: Uuid, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bot_sandbox_turns WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn last_turns(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<Turn>, sqlx::Error> {
    sqlx::query_as(
        "SELECT role, content, handed_off, handoff_reason, intent, created_at FROM (
             SELECT * FROM bot_sandbox_turns WHERE org_id = $1 AND user_id = $2
              ORDER BY id DESC LIMIT $3) t
          ORDER BY id",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(reply::HISTORY)
    .fetch_all(conn)
    .await
}

/// The admin `user_id` says `message` to the organization's active config, after forgetting
/// the earlier turns when `reset`.
pub async fn converse(
    d: &SandboxDeps<'_>,
    org_id: Uuid,
    user_id: Uuid,
    message: &str,
    reset: bool,
) -> Result<Exchange, SandboxError> {
    let started = Instant::now();
    let mut conn = d.pool.acquire().await?;
    let cfg = config::active(&mut conn, org_id)
        .await?
        .ok_or(SandboxError::NoActiveConfig)?;
    if reset {
        forget(&mut conn, org_id, user_id).await?;
    }
    // The turn limit counts the bot's answers, as `conversations.bot_turns` does.
    let bot_turns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bot_sandbox_turns
          WHERE org_id = $1 AND user_id = $2 AND role = 'assistant' AND NOT handed_off",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut out = Exchange {
        reply: String::new(),
        handed_off: false,
        handoff_reason: None,
        intent: None,
        usage: Usage::default(),
        cost_usd: 0.0,
        latency_ms: 0,
        history: Vec::new(),
    };
    let settings = load_settings(&mut conn, org_id).await?;
    let over_limit =
        usage::over_monthly_limit(&mut conn, org_id, settings.monthly_token_limit, Utc::now())
            .await?;
    // Same reason as a real reply; no alert, though: the sandbox is not live traffic.
    let mut handoff: Option<String> = over_limit.then(|| "monthly token limit reached".into());
    if handoff.is_none() {
        // Each sandbox message is answered before the next, so it is the only unanswered one.
        let unanswered = [message];
        let intent = intents::matching(&mut conn, cfg.id, &unanswered).await?;
        let decision = reply::decide(&cfg, &unanswered, clamp(bot_turns), intent.as_ref());
        out.intent = decision.intent;
        match decision.step {
            reply::Step::HandOff { reason, .. } => handoff = Some(reason),
            reply::Step::Answer(text) => out.reply = text,
            reply::Step::AskModel => {
                let mut turns: Vec<(Role, String)> = last_turns(&mut conn, org_id, user_id)
                    .await?
                    .into_iter()
                    .map(|t| (role_of(&t.role), t.content))
                    .collect();
                turns.push((Role::User, message.to_string()));
                // The context holds the last HISTORY turns, the new message included.
                let skip = turns.len().saturating_sub(reply::HISTORY as usize);
                turns.drain(..skip);
                // As in a real reply, no connection is held while the provider thinks.
                drop(conn);
                let called = ask_model(d, &cfg, turns).await?;
                out.usage = called.usage;
                out.cost_usd = called.cost_usd;
                match called.outcome {
                    Ok(text) => out.reply = text,
                    Err(reason) => handoff = Some(reason),
                }
            }
        }
    }
    if let Some(reason) = handoff {
        out.reply = cfg.handoff_message().to_string();
        out.handed_off = true;
        out.handoff_reason = Some(reason);
    }
    let mut tx = d.pool.begin().await?;
    sqlx::query(
        "INSERT INTO bot_sandbox_turns (org_id, user_id, role, content) VALUES ($1, $2, 'user', $3)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(message)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO bot_sandbox_turns (org_id, user_id, role, content, handed_off, handoff_reason, intent)
         VALUES ($1, $2, 'assistant', $3, $4, $5, $6)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(&out.reply)
    .bind(out.handed_off)
    .bind(&out.handoff_reason)
    .bind(&out.intent)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM bot_sandbox_turns WHERE org_id = $1 AND user_id = $2 AND id <=
           (SELECT id FROM bot_sandbox_turns WHERE org_id = $1 AND user_id = $2 ORDER BY id DESC OFFSET $3 LIMIT 1)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(KEPT_TURNS)
    .execute(&mut *tx)
    .await?;
    out.history = last_turns(&mut tx, org_id, user_id).await?;
    tx.commit().await?;
    out.latency_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// A model call: the answer's text, or the handoff reason when the model hands over or the
/// provider fails after its retries (then nothing was used).
struct Called {
    outcome: Result<String, String>,
    usage: Usage,
    cost_usd: f64,
}

impl Called {
    fn hand_off(reason: String) -> Self {
        Self {
            outcome: Err(reason),
            usage: Usage::default(),
            cost_usd: 0.0,
        }
    }
}

/// Asks the model like [`reply::run`] does and records the call in usage when it answered.
async fn ask_model(
    d: &SandboxDeps<'_>,
    cfg: &config::BotConfig,
    turns: Vec<(Role, String)>,
) -> Result<Called, sqlx::Error> {
    let target = match cfg.target(d.secrets) {
        Ok(t) => t,
        Err(e) => return Ok(Called::hand_off(e)),
    };
    let last = turns
        .last()
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    let searcher = retrieval::Searcher {
        pool: d.pool,
        llm: d.llm,
        secrets: d.secrets,
    };
    let (request, _) = reply::model_request(&searcher, cfg, turns, &[last.as_str()]).await?;
    let answer = match d
        .llm
        .chat(cfg.org_id, &target, &request, &RetryPolicy::default())
        .await
    {
        Ok(a) => a,
        Err(e) => return Ok(Called::hand_off(reply::provider_failure_reason(&e))),
    };
    let mut conn = d.pool.acquire().await?;
    usage::record(
        &mut conn,
        usage::Call {
            org_id: cfg.org_id,
            bot_config_id: Some(cfg.id),
            conversation_id: None,
            purpose: "sandbox",
            provider: target.provider,
            model: &answer.model,
            usage: &answer.usage,
            latency: answer.latency,
        },
    )
    .await?;
    let outcome = match reply::read_answer(&answer) {
        reply::ModelAnswer::Text(text) => Ok(text.to_string()),
        reply::ModelAnswer::HandOff(reason) => Err(reason),
    };
    Ok(Called {
        outcome,
        usage: answer.usage,
        cost_usd: pricing::cost_usd(target.provider, &answer.model, &answer.usage),
    })
}

fn role_of(role: &str) -> Role {
    if role == "user" {
        Role::User
    } else {
        Role::Assistant
    }
}

fn clamp(n: i64) -> i32 {
    n.min(i64::from(i32::MAX)) as i32
}
