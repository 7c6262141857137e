//! Which embedding model indexes an organization's documents: its active bot config's
//! `embeddingProvider` and `embeddingModel` (the provider's usual model when none is named),
//! called with that config's API key (and base URL for LOCAL). No embedding provider means the
//! knowledge base works on full text alone.

use uuid::Uuid;

use crate::{
    bot::config::{self, BotConfig},
    crypto::SecretBox,
    llm::{Provider, Target},
};

/// How one organization's chunks get their vectors.
#[derive(Debug, Clone)]
pub struct Embedder {
    pub target: Target,
    /// `PROVIDER/model`, as recorded on each indexed document (`kb_documents.index_model`).
    pub index_model: String,
}

/// The model a provider embeds with when the config names none.
pub fn default_model(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::OpenAi => Some("text-embedding-3-small"),
        Provider::Google => Some("gemini-embedding-001"),
        Provider::Local => Some("nomic-embed-text"),
        Provider::Anthropic | Provider::DeepSeek | Provider::Kimi => None,
    }
}

/// `PROVIDER/model` of a config's embeddings, or `None` for full text only.
pub fn index_model_of(cfg: &BotConfig) -> Option<String> {
    let provider: Provider = cfg.embedding_provider.as_deref()?.parse().ok()?;
    let model = cfg
        .embedding_model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| default_model(provider).map(str::to_string))?;
    Some(format!("{provider}/{model}"))
}

/// The embedder for `index_model` (`PROVIDER/model`) with `cfg`'s key, or why there is none.
pub fn embedder_for(
    cfg: &BotConfig,
    secrets: &SecretBox,
    index_model: &str,
) -> Result<Embedder, String> {
    let (provider, model) = index_model
        .split_once('/')
        .ok_or_else(|| format!("malformed embedding model {index_model}"))?;
    let provider: Provider = provider
        .parse()
        .map_err(|_| format!("unknown embedding provider {provider}"))?;
    let mut target = cfg.target(secrets)?;
    if provider != target.provider {
        // A LOCAL server keeps its base URL; others use the provider's own origin.
        target.base_url = None;
    }
    target.provider = provider;
    target.model = model.to_string();
    Ok(Embedder {
        target,
        index_model: index_model.to_string(),
    })
}

/// The organization's current embedder: `Ok(None)` when it indexes full text only (no active
/// config, or one without an embedding provider).
pub async fn current(
    conn: &mut sqlx::PgConnection,
    secrets: &SecretBox,
    org_id: Uuid,
) -> Result<Option<Result<Embedder, String>>, sqlx::Error> {
    let Some(cfg) = config::active(conn, org_id).await? else {
        return Ok(None);
    };
    Ok(index_model_of(&cfg).map(|m| embedder_for(&cfg, secrets, &m)))
}

/// Text search configurations an organization may choose, by name and by ISO 639-1 code.
const LANGUAGES: [(&str, &str); 17] = [
    ("simple", "-"),
    ("arabic", "ar"),
    ("danish", "da"),
    ("dutch", "nl"),
    ("english", "en"),
    ("finnish", "fi"),
    ("french", "fr"),
    ("german", "de"),
    ("hungarian", "hu"),
    ("indonesian", "id"),
    ("italian", "it"),
    ("norwegian", "no"),
    ("portuguese", "pt"),
    ("romanian", "ro"),
    ("russian", "ru"),
    ("spanish", "es"),
    ("turkish", "tr"),
];

/// The text search configuration for a language name or code (`English`, `en`, `pt`), if
/// Postgres ships one.
pub fn ts_config_for(language: &str) -> Option<&'static str> {
    let l = language.trim().to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(name, code)| *name == l || *code == l)
        .map(|(name, _)| *name)
}

/// The names accepted by [`ts_config_for`], for error messages.
pub fn language_names() -> Vec<&'static str> {
    LANGUAGES.iter().map(|(n, _)| *n).collect()
}

/// The organization's text search configuration (`simple` unless it set a language).
pub async fn ts_config(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
) -> Result<&'static str, sqlx::Error> {
    let language: Option<String> =
        sqlx::query_scalar("SELECT kb_language FROM org_bot_settings WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(language
        .as_deref()
        .and_then(ts_config_for)
        .unwrap_or("simple"))
}

/// Sets the organization's search language (`None`: `simple`) and queues the re-index of
/// every document built with another one. Returns the configuration now in force.
pub async fn set_language(
    conn: &mut sqlx::PgConnection,
    secrets: &SecretBox,
    org_id: Uuid,
    language: Option<&str>,
) -> Result<&'static str, crate::jobs::JobsError> {
    let ts = language.and_then(ts_config_for);
    sqlx::query(
        "INSERT INTO org_bot_settings (org_id, kb_language) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE SET kb_language = EXCLUDED.kb_language, updated_at = now()",
    )
    .bind(org_id)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    super::ingest::reindex_stale(conn, secrets, org_id).await?;
    Ok(ts.unwrap_or("simple"))
}

/// What the organization's index holds for `index_model`: the vectors' size (`None` before
/// any is embedded) and how many READY documents still carry another model or language
/// (being re-indexed).
pub async fn index_state(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    index_model: Option<&str>,
    ts_config: &str,
) -> Result<(Option<i64>, i64), sqlx::Error> {
    let dimensions: Option<i64> = sqlx::query_scalar(
        "SELECT (octet_length(c.embedding) / 4)::int8 FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
          WHERE c.org_id = $1 AND c.embedding IS NOT NULL AND d.index_model = $2 LIMIT 1",
    )
    .bind(org_id)
    .bind(index_model)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    let reindexing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM kb_documents WHERE org_id = $1 AND status = 'READY'
            AND (index_model IS DISTINCT FROM $2 OR ts_config IS DISTINCT FROM $3)",
    )
    .bind(org_id)
    .bind(index_model)
    .bind(ts_config)
    .fetch_one(&mut *conn)
    .await?;
    Ok((dimensions, reindexing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_name_or_code() {
        assert_eq!(ts_config_for("English"), Some("english"));
        assert_eq!(ts_config_for("pt"), Some("portuguese"));
        assert_eq!(ts_config_for("klingon"), None);
    }
}
