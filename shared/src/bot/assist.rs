//! The bot's help to people, outside the reply flow: a handoff summary an agent can review
//! (`POST /conversations/{id}/generate-handoff-summary`) and a category for a conversation
//! (`re-classify`, one now or all open ones as a job, and auto-categorisation of new
//! conversations). Each is one call to the active config's model through the shared client
//! (limiter, retries), recorded in usage with its purpose; the model is called outside any
//! transaction.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{config, usage};
use crate::{
    crypto::SecretBox,
    llm::{ChatMessage, ChatRequest, LlmClient, LlmError, RetryPolicy, Role},
};

/// What the assistant calls need besides their arguments.
pub struct AssistDeps<'a> {
    pub pool: &'a PgPool,
    pub llm: &'a LlmClient,
    pub secrets: &'a SecretBox,
}

#[derive(Debug, thiserror::Error)]
pub enum AssistError {
    #[error("the organization has no active bot config")]
    NoActiveConfig,
    #[error("conversation not found")]
    ConversationNotFound,
    /// The active config cannot be used (its key cannot be decrypted, unknown provider).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Provider(#[from] LlmError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Messages of the conversation shown to the model: enough for a summary, cheap to send.
const TRANSCRIPT_MESSAGES: i64 = 30;

/// Used when an organization has no categories of its own yet (no routing rule names one and
/// no conversation has one).
pub const DEFAULT_CATEGORIES: [&str; 5] = ["sales", "support", "billing", "complaint", "other"];

const SUMMARY_PROMPT: &str = "You write handoff notes for the human agent who takes over a customer conversation \
from a bot. In at most five short lines, in the customer's language: who the customer is, what they want, what \
was already answered or tried, and what is still pending. No greeting, no advice to the agent.";

/// The conversation's latest messages as `Customer: ...` / `Business: ...` lines, oldest
/// first (by `seq`, the order they were stored).
async fn transcript(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<String, AssistError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND org_id = $2)",
    )
    .bind(conversation_id)
    .bind(org_id)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(AssistError::ConversationNotFound);
    }
    let lines: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT direction, content->>'body', type FROM (
             SELECT direction, content, type, seq FROM messages WHERE conversation_id = $1
              ORDER BY seq DESC LIMIT $2) h
          ORDER BY seq",
    )
    .bind(conversation_id)
    .bind(TRANSCRIPT_MESSAGES)
    .fetch_all(&mut *conn)
    .await?;
    Ok(lines
        .iter()
        .map(|(direction, body, kind)| {
            let who = if direction == "INBOUND" {
                "Customer"
            } else {
                "Business"
            };
            match body {
                Some(b) => format!("{who}: {b}"),
                None => format!("{who}: [{kind}]"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// One call to the active config's model with `system` and a single user message; usage is
/// recorded under `purpose`.
async fn ask(
    d: &AssistDeps<'_>,
    org_id: Uuid,
    conversation_id: Uuid,
    purpose: &str,
    system: String,
    user: String,
) -> Result<String, AssistError> {
    let mut conn = d.pool.acquire().await?;
    let cfg = config::active(&mut conn, org_id)
        .await?
        .ok_or(AssistError::NoActiveConfig)?;
    let target = cfg.target(d.secrets).map_err(AssistError::Config)?;
    drop(conn);
    let request = ChatRequest {
        system: Some(system),
        messages: vec![ChatMessage {
            role: Role::User,
            content: user,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }],
        temperature: Some(0.0),
        max_tokens: 300,
        tools: Vec::new(),
    };
    let answer = d
        .llm
        .chat(org_id, &target, &request, &RetryPolicy::default())
        .await?;
    let mut conn = d.pool.acquire().await?;
    usage::record(
        &mut conn,
        usage::Call {
            org_id,
            bot_config_id: Some(cfg.id),
            conversation_id: Some(conversation_id),
            purpose,
            provider: target.provider,
            model: &answer.model,
            usage: &answer.usage,
            latency: answer.latency,
        },
    )
    .await?;
    Ok(answer.text.trim().to_string())
}

/// A summary of the conversation for the agent taking over. Not stored: the agent reviews it
/// and may pass it to `return-to-bot` or keep it as a note.
pub async fn handoff_summary(
    d: &AssistDeps<'_>,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<String, AssistError> {
    let mut conn = d.pool.acquire().await?;
    let text = transcript(&mut conn, org_id, conversation_id).await?;
    drop(conn);
    if text.is_empty() {
        return Ok("No messages yet.".into());
    }
    ask(
        d,
        org_id,
        conversation_id,
        "summary",
        SUMMARY_PROMPT.into(),
        format!("Conversation:\n{text}"),
    )
    .await
}

/// The categories a classifier may choose from: those the organization's routing rules test
/// (`category` and `contactCategory` conditions) and those its conversations already carry;
/// [`DEFAULT_CATEGORIES`] when there are none.
pub async fn candidate_categories(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lower(v) FROM (
             SELECT CASE jsonb_typeof(c->'value') WHEN 'string' THEN c->>'value' END AS v
               FROM routing_rules r, jsonb_array_elements(r.conditions) c
              WHERE r.org_id = $1 AND c->>'field' IN ('category', 'contactCategory')
             UNION ALL
             SELECT jsonb_array_elements_text(c->'value')
               FROM routing_rules r, jsonb_array_elements(r.conditions) c
              WHERE r.org_id = $1 AND c->>'field' IN ('category', 'contactCategory')
                AND jsonb_typeof(c->'value') = 'array'
             UNION ALL
             SELECT category FROM conversations WHERE org_id = $1 AND category IS NOT NULL
         ) s WHERE v IS NOT NULL AND btrim(v) <> '' ORDER BY 1 LIMIT 50",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await?;
    Ok(if found.is_empty() {
        DEFAULT_CATEGORIES.iter().map(|c| c.to_string()).collect()
    } else {
        found
    })
}

/// The first candidate the model's answer names as a whole word (case-insensitive), so a
/// chatty answer ("The category is billing.") still counts; `None` when it names none.
pub fn pick_category(answer: &str, candidates: &[String]) -> Option<String> {
    let answer = answer.to_lowercase();
    let words: Vec<&str> = answer
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    let answer_norm = words.join(" ");
    candidates
        .iter()
        .filter(|c| {
            let c_norm = c
                .to_lowercase()
                .split(|ch: char| !ch.is_alphanumeric() && ch != '-' && ch != '_')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            !c_norm.is_empty() && format!(" {answer_norm} ").contains(&format!(" {c_norm} "))
        })
        // Earliest mention wins: "billing, not sales" is billing.
        .min_by_key(|c| answer_norm.find(&c.to_lowercase()).unwrap_or(usize::MAX))
        .cloned()
}

/// What a classification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub category: Option<String>,
    pub previous: Option<String>,
    /// Whether the model named one of the candidates (else the category stays as it was).
    pub recognised: bool,
}

impl Classified {
    pub fn changed(&self) -> bool {
        self.recognised && self.category != self.previous
    }
}

/// Asks the model which category the conversation belongs to and stores it on the
/// conversation (with a `CATEGORIZED` event when it changed).
pub async fn classify(
    d: &AssistDeps<'_>,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<Classified, AssistError> {
    let mut conn = d.pool.acquire().await?;
    let text = transcript(&mut conn, org_id, conversation_id).await?;
    let candidates = candidate_categories(&mut conn, org_id).await?;
    drop(conn);
    let system = format!(
        "You sort customer conversations into categories. Answer with exactly one of these \
         categories and nothing else: {}.",
        candidates.join(", ")
    );
    let answer = ask(
        d,
        org_id,
        conversation_id,
        "classify",
        system,
        format!("Conversation:\n{text}"),
    )
    .await?;
    let picked = pick_category(&answer, &candidates);
    let mut tx = d.pool.begin().await?;
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT category FROM conversations WHERE id = $1 AND org_id = $2 FOR UPDATE",
    )
    .bind(conversation_id)
    .bind(org_id)
    .fetch_one(&mut *tx)
    .await?;
    let result = Classified {
        category: picked.clone().or_else(|| previous.clone()),
        previous,
        recognised: picked.is_some(),
    };
    if result.changed() {
        sqlx::query("UPDATE conversations SET category = $2, updated_at = now() WHERE id = $1")
            .bind(conversation_id)
            .bind(&result.category)
            .execute(&mut *tx)
            .await?;
        let reason = match &result.previous {
            Some(p) => format!(
                "classified by the bot as {:?} (was {p:?})",
                result.category.as_deref().unwrap_or("")
            ),
            None => format!(
                "classified by the bot as {:?}",
                result.category.as_deref().unwrap_or("")
            ),
        };
        sqlx::query(
            "INSERT INTO conversation_events (conversation_id, org_id, type, reason)
             VALUES ($1, $2, 'CATEGORIZED', $3)",
        )
        .bind(conversation_id)
        .bind(org_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_category_is_read_from_a_chatty_answer() {
        let c = cats(&["billing", "sales", "tech support"]);
        assert_eq!(pick_category("Billing", &c).as_deref(), Some("billing"));
        assert_eq!(
            pick_category("The category is: Tech Support.", &c).as_deref(),
            Some("tech support")
        );
        assert_eq!(
            pick_category("billing, not sales", &c).as_deref(),
            Some("billing")
        );
        assert_eq!(pick_category("rebilling", &c), None);
        assert_eq!(pick_category("no idea", &c), None);
    }
}
