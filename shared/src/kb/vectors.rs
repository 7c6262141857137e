//! The vector side of retrieval: each process keeps an organization's chunk vectors in memory
//! (unit length, one contiguous `f32` array per embedding model) and scans them by dot product.
//! A scan of 100,000 vectors of 512 dimensions is about 50 million multiply-adds (a few
//! milliseconds with SIMD, see [`dot`]); Postgres has no vector type here (pgvector is not in the machines' package
//! sources), and SQL over `real[]` would be orders of magnitude slower. The copy is reloaded
//! when `kb_index_versions.version` moves (every transaction that changes the organization's
//! chunks bumps it), so a query costs one primary-key look-up to stay current. [`nearest`] is
//! the one function an approximate index would replace.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use sqlx::PgPool;
use uuid::Uuid;

/// Organizations whose vectors one process keeps at most (least recently used leave first).
const MAX_ORGS: usize = 64;

/// Vector memory one process keeps across organizations (`KB_VECTOR_CACHE_MB`, default
/// 1024): 100,000 chunks of 512 dimensions take 200 MB. Least recently used leave first.
fn max_cache_bytes() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("KB_VECTOR_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1024)
            * 1024
            * 1024
    })
}

impl OrgVectors {
    fn bytes(&self) -> usize {
        self.models
            .values()
            .map(|m| m.data.len() * 4 + m.ids.len() * 16)
            .sum()
    }
}

/// One embedding model's vectors of one organization.
#[derive(Debug, Default)]
pub struct ModelVectors {
    pub dims: usize,
    pub ids: Vec<Uuid>,
    /// `ids.len() * dims` values, each vector of unit length.
    pub data: Vec<f32>,
}

/// An organization's vectors as of `version`, by `PROVIDER/model`.
#[derive(Debug, Default)]
pub struct OrgVectors {
    pub version: i64,
    pub models: HashMap<String, ModelVectors>,
}

struct Cached {
    vectors: Arc<OrgVectors>,
    used: u64,
}

#[derive(Default)]
struct Cache {
    orgs: HashMap<Uuid, Cached>,
    clock: u64,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Bumps the organization's index version (inside the transaction that changes its chunks).
pub async fn bump_version(conn: &mut sqlx::PgConnection, org_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO kb_index_versions (org_id, version) VALUES ($1, 1)
         ON CONFLICT (org_id) DO UPDATE SET version = kb_index_versions.version + 1",
    )
    .bind(org_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The organization's current vectors, loaded when this process has none or an old copy.
pub async fn org_vectors(pool: &PgPool, org_id: Uuid) -> Result<Arc<OrgVectors>, sqlx::Error> {
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM kb_index_versions WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0);
    {
        let mut c = cache().lock().expect("vector cache poisoned");
        c.clock += 1;
        let now = c.clock;
        if let Some(hit) = c.orgs.get_mut(&org_id) {
            if hit.vectors.version == version {
                hit.used = now;
                return Ok(hit.vectors.clone());
            }
        }
    }
    let loaded = Arc::new(load(pool, org_id, version).await?);
    let mut c = cache().lock().expect("vector cache poisoned");
    c.clock += 1;
    let now = c.clock;
    c.orgs.remove(&org_id);
    let budget = max_cache_bytes().saturating_sub(loaded.bytes());
    while c.orgs.len() >= MAX_ORGS
        || c.orgs.values().map(|v| v.vectors.bytes()).sum::<usize>() > budget
    {
        let Some(oldest) = c.orgs.iter().min_by_key(|(_, v)| v.used).map(|(k, _)| *k) else {
            break;
        };
        c.orgs.remove(&oldest);
    }
    c.orgs.insert(
        org_id,
        Cached {
            vectors: loaded.clone(),
            used: now,
        },
    );
    Ok(loaded)
}

async fn load(pool: &PgPool, org_id: Uuid, version: i64) -> Result<OrgVectors, sqlx::Error> {
    use futures::TryStreamExt;
    let mut rows = sqlx::query_as::<_, (Uuid, String, Vec<u8>)>(
        "SELECT c.id, d.index_model, c.embedding FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
          WHERE c.org_id = $1 AND c.embedding IS NOT NULL AND d.index_model IS NOT NULL",
    )
    .bind(org_id)
    .fetch(pool);
    let mut out = OrgVectors {
        version,
        models: HashMap::new(),
    };
    while let Some((id, model, bytes)) = rows.try_next().await? {
        let dims = bytes.len() / 4;
        let m = out.models.entry(model).or_default();
        if m.dims == 0 {
            m.dims = dims;
        }
        if dims != m.dims || dims == 0 {
            continue;
        }
        m.ids.push(id);
        m.data.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    Ok(out)
}

/// A vector scaled to unit length (zero stays zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}

/// A unit vector as stored (`kb_chunks.embedding`): little-endian `f32` bytes.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    normalized(v).iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The dot product in eight independent lanes: a single running sum is a dependency chain
/// the compiler may not reorder (float addition is not associative), so it would not use
/// SIMD; eight sums it can.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The `k` vectors most similar to `query` (cosine), best first.
pub fn nearest(m: &ModelVectors, query: &[f32], k: usize) -> Vec<(Uuid, f32)> {
    if query.len() != m.dims || m.dims == 0 || k == 0 {
        return Vec::new();
    }
    let q = normalized(query);
    let mut scored: Vec<(usize, f32)> = m
        .data
        .chunks_exact(m.dims)
        .enumerate()
        .map(|(i, v)| (i, dot(v, &q)))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().map(|(i, s)| (m.ids[i], s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_ranks_by_cosine() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut m = ModelVectors {
            dims: 2,
            ids: ids.clone(),
            data: Vec::new(),
        };
        for v in [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]] {
            m.data.extend(normalized(&v));
        }
        let top = nearest(&m, &[1.0, 0.1], 2);
        assert_eq!(
            top.iter().map(|t| t.0).collect::<Vec<_>>(),
            [ids[0], ids[2]]
        );
        assert!(nearest(&m, &[1.0], 2).is_empty(), "wrong dimension");
        let bytes = to_bytes(&[3.0, 4.0]);
        assert_eq!(bytes.len(), 8);
        assert_eq!(f32::from_le_bytes(bytes[..4].try_into().unwrap()), 0.6);
    }
}
