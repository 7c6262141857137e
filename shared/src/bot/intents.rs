//! A bot config's intents: keywords that, found in what the customer wrote, decide the answer
//! before the model is asked — a fixed text (ANSWER), a team (HANDOFF), or a tag (TAG, then
//! the bot answers as usual). Checked in position order; the first match wins.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Intent {
    pub id: Uuid,
    pub name: String,
    pub keywords: sqlx::types::Json<Vec<String>>,
    pub action: String,
    pub response: Option<String>,
    pub team_id: Option<Uuid>,
    pub tag_id: Option<Uuid>,
}

/// Whether `text` mentions `keyword`: a phrase anywhere, a single word as a whole word; case
/// ignored.
pub fn mentions(text: &str, keyword: &str) -> bool {
    let (text, keyword) = (text.to_lowercase(), keyword.trim().to_lowercase());
    if keyword.is_empty() {
        return false;
    }
    if keyword.contains(' ') {
        return text.contains(&keyword);
    }
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w == keyword)
}

/// The first active intent of `bot_config_id` whose keywords `texts` mention.
pub async fn matching(
    conn: &mut PgConnection,
    bot_config_id: Uuid,
    texts: &[&str],
) -> Result<Option<Intent>, sqlx::Error> {
    let intents: Vec<Intent> = sqlx::query_as(
        "SELECT id, name, keywords, action, response, team_id, tag_id FROM bot_intents
          WHERE bot_config_id = $1 AND is_active ORDER BY position, created_at, id",
    )
    .bind(bot_config_id)
    .fetch_all(conn)
    .await?;
    Ok(intents.into_iter().find(|i| {
        i.keywords
            .0
            .iter()
            .any(|k| texts.iter().any(|t| mentions(t, k)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_words_and_phrases_are_substrings() {
        assert!(mentions("What are your PRICES?", "prices"));
        assert!(!mentions("surprices", "prices"));
        assert!(mentions("I want a refund please", "refund please"));
        assert!(!mentions("anything", " "));
    }
}
