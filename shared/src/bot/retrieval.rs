//! The knowledge-base hook of the reply flow: the passages of the organization's documents
//! that answer the customer's words, best first. The reply job calls [`retrieve`] before
//! every model call, puts what it returns into the system prompt and records the chunk and
//! document ids in its trace. Until document ingestion exists nothing is indexed, so it
//! returns no passage and replies rely on the system prompt alone.

use sqlx::PgPool;
use uuid::Uuid;

use super::config::BotConfig;

/// One passage of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub document_name: String,
    pub score: f64,
    pub text: String,
}

/// Passages sent to the model at most.
pub const TOP_K: usize = 5;

/// The passages of `cfg`'s organization that best answer `query`.
pub async fn retrieve(
    _pool: &PgPool,
    _cfg: &BotConfig,
    _query: &str,
) -> Result<Vec<Passage>, sqlx::Error> {
    Ok(Vec::new())
}

/// The system prompt with the passages appended as numbered context.
pub fn with_context(system_prompt: &str, passages: &[Passage]) -> String {
    if passages.is_empty() {
        return system_prompt.to_string();
    }
    let mut out = String::from(system_prompt);
    out.push_str(
        "\n\nAnswer from these passages of the business's documents when they are relevant:\n",
    );
    for (i, p) in passages.iter().enumerate() {
        out.push_str(&format!("[{}] ({}) {}\n", i + 1, p.document_name, p.text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_numbered_after_the_prompt() {
        let p = Passage {
            chunk_id: Uuid::nil(),
            document_id: Uuid::nil(),
            document_name: "prices.md".into(),
            score: 0.9,
            text: "Plans start at 10 EUR.".into(),
        };
        assert_eq!(with_context("Be brief.", &[]), "Be brief.");
        let s = with_context("Be brief.", &[p]);
        assert!(s.starts_with("Be brief.\n\n"));
        assert!(s.ends_with("[1] (prices.md) Plans start at 10 EUR.\n"));
    }
}
