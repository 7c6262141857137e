//! Hybrid retrieval over one organization's chunks: a full-text ranking (Postgres `tsvector`
//! in the organization's language, any of the question's words matching, ranked by cover
//! density; with no language set, the question's words that are stop words in the common
//! languages are left out, or "the" would rank every chunk that has it) and a vector ranking (cosine against the in-memory vectors of each embedding
//! model the organization's documents are indexed with), fused by reciprocal rank. With no
//! embedding provider it is the full-text ranking alone; when a provider fails at query time
//! the answer falls back to full text rather than to nothing.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::{embedding, vectors};
use crate::{bot::config, crypto::SecretBox, llm::LlmClient};

/// One passage of a document, as retrieval answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub document_name: String,
    pub score: f64,
    pub text: String,
}

/// Candidates each ranking contributes before fusion.
const CANDIDATES: i64 = 50;
/// The reciprocal-rank constant (Cormack et al.): damps the head so both rankings count.
const RRF_K: f64 = 60.0;

/// The full-text ranking: `$1` org, `$2` text search configuration, `$3` question, `$4` limit.
/// Any of the question's words may match (`|`); with the `simple` configuration, words that
/// are stop words in the common languages are dropped first.
const FULL_TEXT_SQL: &str = "WITH q AS (
    SELECT (SELECT string_agg(quote_literal(l), ' | ')
              FROM unnest(tsvector_to_array(to_tsvector($2::regconfig, $3))) AS l
             WHERE l !~ '\\\\'
               AND ($2 <> 'simple' OR NOT EXISTS (
                    SELECT 1 FROM unnest(ARRAY['english', 'spanish', 'portuguese', 'french', 'german',
                                               'italian']::regconfig[]) AS stop(cfg)
                     WHERE length(to_tsvector(stop.cfg, l)) = 0)))::tsquery AS q)
 SELECT c.id FROM kb_chunks c, q
  WHERE q.q IS NOT NULL AND c.org_id = $1 AND c.tsv @@ q.q
  ORDER BY ts_rank_cd(c.tsv, q.q) DESC, c.id LIMIT $4";

/// What retrieval needs besides the organization and the question.
pub struct Searcher<'a> {
    pub pool: &'a PgPool,
    pub llm: &'a LlmClient,
    pub secrets: &'a SecretBox,
}

/// How a search was answered (for `test-rag` and the benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    FullText,
}

/// The `k` chunks of `org_id` that best answer `query`, best first; scores in (0, 1].
pub async fn search(
    s: &Searcher<'_>,
    org_id: Uuid,
    query: &str,
    k: usize,
) -> Result<(Vec<Passage>, Mode), sqlx::Error> {
    let query = query.trim();
    if query.is_empty() || k == 0 {
        return Ok((Vec::new(), Mode::FullText));
    }
    let (ts_config, cfg) = {
        let mut conn = s.pool.acquire().await?;
        (
            embedding::ts_config(&mut conn, org_id).await?,
            config::active(&mut conn, org_id).await?,
        )
    };
    // The two rankings are independent: run them at once.
    let (text_ranked, vector_ranked) = tokio::join!(
        full_text(s.pool, org_id, ts_config, query),
        by_vectors(s, org_id, cfg.as_ref(), query)
    );
    let vector_ranked = vector_ranked?;
    let mode = if vector_ranked.is_empty() {
        Mode::FullText
    } else {
        Mode::Hybrid
    };
    let mut rankings = vec![text_ranked?];
    rankings.extend(vector_ranked);
    let fused = fuse(&rankings, k);
    if fused.is_empty() {
        return Ok((Vec::new(), mode));
    }
    let ids: Vec<Uuid> = fused.iter().map(|(id, _)| *id).collect();
    let rows: Vec<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "SELECT c.id, c.document_id, d.name, c.text FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
          WHERE c.id = ANY($1) AND c.org_id = $2",
    )
    .bind(&ids)
    .bind(org_id)
    .fetch_all(s.pool)
    .await?;
    let by_id: HashMap<Uuid, (Uuid, String, String)> = rows
        .into_iter()
        .map(|(id, doc, name, text)| (id, (doc, name, text)))
        .collect();
    // The best a chunk can do is rank first in every list.
    let best = rankings.len() as f64 / (RRF_K + 1.0);
    let passages = fused
        .into_iter()
        .filter_map(|(id, score)| {
            let (document_id, document_name, text) = by_id.get(&id)?.clone();
            Some(Passage {
                chunk_id: id,
                document_id,
                document_name,
                score: (score / best * 10_000.0).round() / 10_000.0,
                text,
            })
        })
        .collect();
    Ok((passages, mode))
}

/// Chunk ids matching any of the question's words, best first.
async fn full_text(
    pool: &PgPool,
    org_id: Uuid,
    ts_config: &str,
    query: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(FULL_TEXT_SQL)
        .bind(org_id)
        .bind(ts_config)
        .bind(query)
        .bind(CANDIDATES)
        .fetch_all(pool)
        .await
}

/// One ranking per embedding model the organization's chunks carry (the question embedded
/// with each); none when it has no vectors or no provider answers.
async fn by_vectors(
    s: &Searcher<'_>,
    org_id: Uuid,
    cfg: Option<&config::BotConfig>,
    query: &str,
) -> Result<Vec<Vec<Uuid>>, sqlx::Error> {
    let Some(cfg) = cfg else {
        return Ok(Vec::new());
    };
    let indexed = vectors::org_vectors(s.pool, org_id).await?;
    let mut rankings = Vec::new();
    for (model, vecs) in &indexed.models {
        let embedder = match embedding::embedder_for(cfg, s.secrets, model) {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(%org_id, model, why, "no embedder for indexed vectors");
                continue;
            }
        };
        match s
            .llm
            .embed(org_id, &embedder.target, &[query.to_string()])
            .await
        {
            Ok(e) => {
                if let Some(v) = e.vectors.first() {
                    let near = vectors::nearest(vecs, v, CANDIDATES as usize);
                    rankings.push(near.into_iter().map(|(id, _)| id).collect());
                }
            }
            Err(e) => {
                tracing::warn!(%org_id, model, error = %e, "query embedding failed; full text only")
            }
        }
    }
    Ok(rankings)
}

/// Reciprocal-rank fusion: each list gives `1 / (RRF_K + rank)`; the top `k`, best first
/// (ties by id, so the order is stable).
pub fn fuse(rankings: &[Vec<Uuid>], k: usize) -> Vec<(Uuid, f64)> {
    let mut scores: HashMap<Uuid, f64> = HashMap::new();
    for list in rankings {
        for (i, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (RRF_K + i as f64 + 1.0);
        }
    }
    let mut out: Vec<(Uuid, f64)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement() {
        let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        let fused = fuse(&[vec![a, b], vec![b, c]], 3);
        assert_eq!(fused[0].0, b, "in both lists");
        assert_eq!(fused.len(), 3);
        assert!(fuse(&[vec![a]], 0).is_empty());
    }
}
