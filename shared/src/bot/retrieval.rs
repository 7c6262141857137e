//! The knowledge-base hook of the reply flow: the passages of the organization's documents
//! that answer the customer's words, best first. The reply job (and the sandbox) call
//! [`retrieve`] before every model call, put what it returns into the system prompt and
//! record the chunk and document ids in the trace. With no document indexed it returns no
//! passage and replies rely on the system prompt alone.

pub use crate::kb::search::{Passage, Searcher};

use super::config::BotConfig;

/// Passages sent to the model at most.
pub const TOP_K: usize = 5;

/// The passages of `cfg`'s organization that best answer `query` (hybrid retrieval, see
/// `crate::kb::search`).
pub async fn retrieve(
    s: &Searcher<'_>,
    cfg: &BotConfig,
    query: &str,
) -> Result<Vec<Passage>, sqlx::Error> {
    Ok(crate::kb::search::search(s, cfg.org_id, query, TOP_K)
        .await?
        .0)
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
    use uuid::Uuid;

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
