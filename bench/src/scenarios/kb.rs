//! Scenario 8, knowledge base: ingestion and retrieval.
//!
//! Ingestion: an organization whose bot config embeds with OpenAI's `text-embedding-3-small`
//! (512 dimensions), the simulator answering each embeddings call after 300 ms (a 64-input
//! batch takes 200–500 ms at OpenAI). A `--kb-pages`-page PDF (about 350 words a page) is
//! uploaded once and timed from the upload to READY; then `--kb-docs` one-page Markdown
//! documents (about 300 words each, all different) are uploaded 16 at a time and timed from
//! the first upload to the last READY. Each with 1 and 2 worker processes (`llm=32`), a fresh
//! platform per measurement; the largest worker's peak RSS, the CPU used and the most
//! embedding calls in flight at once (from the simulator's request log) beside it.
//!
//! Retrieval: organizations of `--kb-chunks` chunks (100 per document), written straight to
//! the database (ingesting 100,000 chunks through the API would take most of an hour): ~60
//! words a chunk from a 4,000-word vocabulary with a Zipf-like skew, a random 512-dimension
//! unit vector each. Then `--kb-queries` sequential `POST /bot-config/test-rag` calls (2–4
//! words, drawn like the text), the simulator embedding the question at once (latency 0, so
//! the figure is the platform's own); the first query, which loads the organization's vectors
//! into the api's memory, is reported apart. Beside them: the full-text SQL alone (the same
//! statement `kb::search` runs, from the suite) and the in-memory vector scan alone
//! (`kb::vectors::nearest`, timed in the suite's process), to tell which part bounds a query.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use futures::{StreamExt, TryStreamExt};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::kb::{
    fixtures,
    vectors::{self, ModelVectors},
};

use crate::{
    platform::{Platform, Tenant, WorkerSpec, Workers},
    stats::{percentile, Runs},
    wait_until, Row,
};

/// The simulator's answer time for an embeddings call while ingesting.
const EMBED_LATENCY_MS: u64 = 300;
/// Uploads in flight at once for the small documents.
const UPLOAD_CONCURRENCY: usize = 16;
/// Chunks per seeded document.
const CHUNKS_PER_DOC: usize = 100;
/// Chunks per seeding statement.
const SEED_BATCH: usize = 1_000;
/// Words of a seeded chunk (about).
const CHUNK_WORDS: usize = 60;
/// Words of the seeded chunks' vocabulary.
const VOCABULARY: usize = 4_000;
/// Dimensions of the vectors (what the platform asks OpenAI's v3 models for).
const DIMS: usize = 512;
const INDEX_MODEL: &str = "OPENAI/text-embedding-3-small";

/// What the scenario ingests and searches (`--kb-*` options).
pub struct Options {
    /// Pages of the PDF.
    pub pages: usize,
    /// Small documents uploaded.
    pub docs: usize,
    /// Chunks of each retrieval organization.
    pub chunks: Vec<usize>,
    /// Queries per retrieval organization (after the cold one).
    pub queries: usize,
}

fn worker() -> WorkerSpec {
    WorkerSpec {
        lanes: "inbound,outbound,llm,maintenance",
        concurrency: "inbound=4,outbound=4,llm=32,maintenance=1".into(),
        pool_size: 24,
        fetch_batch: 50,
    }
}

// --- deterministic text ----------------------------------------------------------------

/// SplitMix64: small, fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One entry of a `|`-separated list.
    fn pick(&mut self, list: &'static str) -> &'static str {
        let n = list.split('|').count();
        list.split('|').nth(self.below(n)).unwrap_or_default()
    }
}

// Word lists, `|`-separated (rustfmt would put each entry of an array on its own line).
const TOPICS: &str = concat!(
    "Returns and refunds|Shipping and delivery|Payments and invoices|",
    "Warranty and repairs|Accounts and security|Store opening hours|Loyalty programme|",
    "Product care|Gift cards|Business customers|Installation service|Subscriptions",
);
const ADJECTIVES: &str = concat!(
    "standard|express|damaged|unopened|refurbished|seasonal|digital|registered|",
    "international|domestic|premium|basic|annual|monthly|faulty|original|partial|urgent|",
    "optional|personal|corporate|local|oversized|fragile|recurring|pending|approved|",
    "cancelled|secure|free",
);
const NOUNS: &str = concat!(
    "order|parcel|refund|invoice|receipt|warranty|voucher|account|password|courier|",
    "warehouse|store|customer|agent|payment|card|subscription|delivery|return|exchange|",
    "repair|technician|appointment|charger|battery|screen|mattress|sofa|kettle|bicycle|",
    "helmet|jacket|shoe|backpack|laptop|printer|router|cable|label|box|address|postcode|",
    "discount|coupon|membership|point|balance|statement|fee|deposit|manual|guarantee|",
    "replacement|component|model|serial number|collection point|pickup locker|",
    "bank transfer|credit note",
);
const VERBS: &str = concat!(
    "covers|includes|requires|excludes|replaces|confirms|extends|reduces|protects|",
    "activates|delays|qualifies for|is sent with|is checked against|is refunded to|",
    "is linked to|must match|can replace|may include|depends on",
);
const TAILS: &str = concat!(
    "within {n} days of delivery|for orders above {n} euros|",
    "unless the customer asks otherwise|at no extra cost|after the technician's visit|",
    "before the parcel leaves the warehouse|on weekdays between {n} and {m} o'clock|",
    "once the payment is confirmed|for up to {n} months|if the seal is unbroken|",
    "in every store except outlets|when the receipt is shown|by email within {n} hours|",
    "through the customer portal|for a fee of {n} euros",
);

fn topic(i: usize) -> &'static str {
    let n = TOPICS.split('|').count();
    TOPICS.split('|').nth(i % n).unwrap_or_default()
}

fn sentence(rng: &mut Rng) -> String {
    let subject = format!("The {} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS));
    let object = format!("the {} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS));
    let tail = rng
        .pick(TAILS)
        .replace("{n}", &(2 + rng.below(58)).to_string())
        .replace("{m}", &(12 + rng.below(10)).to_string());
    format!("{subject} {} {object} {tail}.", rng.pick(VERBS))
}

/// Sentences until about `words` words, in paragraphs of five or six.
fn prose(rng: &mut Rng, words: usize) -> String {
    let mut out = String::new();
    let (mut count, mut in_paragraph) = (0, 0);
    while count < words {
        let s = sentence(rng);
        count += s.split_whitespace().count();
        if in_paragraph == 5 + rng.below(2) {
            out.push_str("\n\n");
            in_paragraph = 0;
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s);
        in_paragraph += 1;
    }
    out
}

/// A PDF of `pages` pages of about 350 words, each headed with its topic and page number.
fn pdf(pages: usize) -> Vec<u8> {
    let texts: Vec<String> = (0..pages)
        .map(|n| {
            let mut rng = Rng(0x5EED_0000 + n as u64);
            let topic = topic(n / 10);
            format!(
                "{topic}, page {}\n{}",
                n + 1,
                prose(&mut rng, 340).replace("\n\n", "\n")
            )
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    fixtures::pdf(&refs)
}

/// A one-page Markdown note of about 300 words, different for every `i`.
fn markdown(i: usize) -> Vec<u8> {
    let mut rng = Rng(0xD0C5_0000 + i as u64);
    let topic = topic(i);
    format!(
        "# {topic}: note {i}\n\nReference KB-{i:05}.\n\n{}\n",
        prose(&mut rng, 290)
    )
    .into_bytes()
}

/// The seeded chunks' vocabulary: distinct six-letter pseudo-words (three consonant-vowel
/// syllables; the index is scrambled so neighbouring ranks do not look alike).
fn vocabulary() -> Vec<String> {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    let syllables = C.len() * V.len();
    let space = syllables.pow(3);
    (0..VOCABULARY)
        .map(|i| {
            let mut code = (i * 7_919 + 13) % space;
            let mut w = String::with_capacity(6);
            for _ in 0..3 {
                let s = code % syllables;
                code /= syllables;
                w.push(C[s / V.len()] as char);
                w.push(V[s % V.len()] as char);
            }
            w
        })
        .collect()
}

/// A word by rank with a Zipf-like skew (`P(rank < k) = (k / n)^(2/3)`): the commonest word
/// is in about a fifth of the chunks, a typical one in about 1 %.
fn skewed<'a>(rng: &mut Rng, vocab: &'a [String]) -> &'a str {
    let rank = (rng.unit().powf(1.5) * vocab.len() as f64) as usize;
    &vocab[rank.min(vocab.len() - 1)]
}

fn chunk_text(rng: &mut Rng, vocab: &[String]) -> String {
    let n = CHUNK_WORDS - 10 + rng.below(21);
    let mut out = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            out.push(if i % 12 == 0 { '.' } else { ' ' });
            if i % 12 == 0 {
                out.push(' ');
            }
        }
        out.push_str(skewed(rng, vocab));
    }
    out.push('.');
    out
}

fn random_vector(rng: &mut Rng) -> Vec<f32> {
    (0..DIMS).map(|_| (rng.unit() * 2.0 - 1.0) as f32).collect()
}

// --- the platform side -----------------------------------------------------------------

/// A new organization whose active bot config embeds with OpenAI; returns it and its id.
async fn org_with_embeddings(p: &Platform) -> anyhow::Result<(Tenant, Uuid)> {
    let tenant = p.register().await?;
    p.call(
        Some(&tenant),
        reqwest::Method::PUT,
        "/bot-config",
        Some(
            json!({"name": "Bench bot", "provider": "OPENAI", "model": "gpt-4o-mini",
                    "apiKey": "sim-openai-key", "embeddingProvider": "OPENAI",
                    "embeddingModel": "text-embedding-3-small"}),
        ),
        200,
    )
    .await?;
    let me = p
        .call(Some(&tenant), reqwest::Method::GET, "/auth/me", None, 200)
        .await?;
    let org_id: Uuid = me["data"]["organization"]["id"]
        .as_str()
        .context("organization id")?
        .parse()?;
    Ok((tenant, org_id))
}

async fn sim_latency(p: &Platform, ms: u64) -> anyhow::Result<()> {
    let r = p
        .http
        .put(format!("{}/_sim/llm/latency", p.sim_url))
        .json(&json!({"provider": "OPENAI", "ms": ms}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "sim latency: {}", r.status());
    Ok(())
}

/// Uploads a document; returns its id (answered 202, PENDING).
async fn upload(
    p: &Platform,
    tenant: &Tenant,
    name: String,
    mime: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<String> {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name).mime_str(mime)?);
    let r = p
        .http
        .post(format!("{}/api/v1/bot-config/documents", p.api_url))
        .bearer_auth(&tenant.token)
        .multipart(form)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    ensure!(status == 202, "upload: {status} (wanted 202) {v}");
    ensure!(v["data"]["status"] == "PENDING", "upload answered {v}");
    Ok(v["data"]["id"].as_str().context("document id")?.to_string())
}

/// Where the api and the workers keep uploads (they run in this process's directory).
fn blob_dir() -> PathBuf {
    PathBuf::from(std::env::var("BLOB_DIR").unwrap_or_else(|_| "./data/blobs".into()))
}

/// Removes an organization's uploaded files (its database is dropped with the run).
fn remove_blobs(org_id: Uuid) {
    let _ = std::fs::remove_dir_all(blob_dir().join("kb").join(org_id.to_string()));
}

/// The most embeddings calls whose [arrival, arrival + latency) windows overlap, and how
/// many calls there were.
async fn embedding_calls(p: &Platform) -> anyhow::Result<(usize, usize)> {
    let log = p.sim_get("/_sim/llm/requests?provider=OPENAI").await?;
    let mut at: Vec<i64> = log["data"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|r| {
                    r["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/embeddings"))
                })
                .filter_map(|r| r["at_ms"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    at.sort_unstable();
    let window = EMBED_LATENCY_MS as i64;
    let (mut peak, mut start) = (0, 0);
    for end in 0..at.len() {
        while at[end] - at[start] >= window {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    Ok((at.len(), peak))
}

// --- ingestion -------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Pdf,
    Docs,
}

#[derive(Default)]
struct Ingest {
    /// Pages (or documents) per second.
    rate: Runs,
    secs: Runs,
    upload_secs: Runs,
    chunks: Runs,
    calls: Runs,
    in_flight: Runs,
    worker_rss: Runs,
    worker_cpu: Runs,
    pg_cpu: Runs,
}

/// The files of a load, made once (outside any timing).
enum Files {
    Pdf { bytes: Vec<u8>, pages: usize },
    Docs(Vec<Vec<u8>>),
}

async fn ingest_run(
    p: &Platform,
    files: &Files,
    workers: usize,
    f: &mut Ingest,
) -> anyhow::Result<()> {
    let (tenant, org_id) = org_with_embeddings(p).await?;
    sim_latency(p, EMBED_LATENCY_MS).await?;
    let procs = p.start_workers(workers, &worker())?;
    // Let the workers connect, so their start-up is not part of the figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    p.ensure_running(&procs)?;
    let result = ingest_measure(p, &tenant, files, &procs, f).await;
    procs.stop();
    remove_blobs(org_id);
    result
}

async fn ingest_measure(
    p: &Platform,
    tenant: &Tenant,
    files: &Files,
    procs: &Workers,
    f: &mut Ingest,
) -> anyhow::Result<()> {
    let cpu0 = p.cpu(procs);
    let started = Instant::now();
    let units = match files {
        Files::Pdf { bytes, pages } => {
            let id = upload(
                p,
                tenant,
                "manual.pdf".into(),
                "application/pdf",
                bytes.clone(),
            )
            .await?;
            f.upload_secs.push(started.elapsed().as_secs_f64());
            let path = format!("/bot-config/documents/{id}/status");
            wait_until(Duration::from_secs(600), "the PDF READY", || async {
                p.ensure_running(procs)?;
                let v = p
                    .call(Some(tenant), reqwest::Method::GET, &path, None, 200)
                    .await?;
                let status = v["data"]["status"].as_str().unwrap_or_default();
                ensure!(status != "FAILED", "the PDF FAILED: {}", v["data"]["error"]);
                Ok(status == "READY")
            })
            .await?;
            *pages
        }
        Files::Docs(docs) => {
            futures::stream::iter(docs.iter().enumerate())
                .map(|(i, bytes)| {
                    upload(
                        p,
                        tenant,
                        format!("note-{i:05}.md"),
                        "text/markdown",
                        bytes.clone(),
                    )
                })
                .buffer_unordered(UPLOAD_CONCURRENCY)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            f.upload_secs.push(started.elapsed().as_secs_f64());
            let total = docs.len() as i64;
            wait_until(Duration::from_secs(900), "every document READY", || async {
                p.ensure_running(procs)?;
                let (ready, failed): (i64, i64) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE status = 'READY'),
                            count(*) FILTER (WHERE status = 'FAILED') FROM kb_documents",
                )
                .fetch_one(&p.db.pool)
                .await?;
                if failed > 0 {
                    let why: Option<String> = sqlx::query_scalar(
                        "SELECT error FROM kb_documents WHERE status = 'FAILED' LIMIT 1",
                    )
                    .fetch_one(&p.db.pool)
                    .await?;
                    anyhow::bail!("{failed} documents FAILED, e.g. {why:?}");
                }
                Ok(ready == total)
            })
            .await?;
            docs.len()
        }
    };
    let took = started.elapsed().as_secs_f64();
    let cpu = p.cpu(procs) - cpu0;
    let (_, _, rss) = p.peak_rss(procs);
    let (chunks, pages): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(chunks_total), 0)::int8, coalesce(sum(pages), 0)::int8 FROM kb_documents",
    )
    .fetch_one(&p.db.pool)
    .await?;
    if matches!(files, Files::Pdf { .. }) {
        ensure!(
            pages == units as i64,
            "the PDF has {pages} pages indexed, not {units}"
        );
    }
    let (calls, in_flight) = embedding_calls(p).await?;
    f.rate.push(units as f64 / took);
    f.secs.push(took);
    f.chunks.push(chunks as f64);
    f.calls.push(calls as f64);
    f.in_flight.push(in_flight as f64);
    f.worker_rss.push(rss);
    f.worker_cpu.push(cpu.workers);
    f.pg_cpu.push(cpu.postgres);
    Ok(())
}

fn ingest_rows(load: Load, o: &Options, workers: usize, f: &Ingest) -> Row {
    let what = match load {
        Load::Pdf => format!(
            "{}-page PDF ({:.0} chunks), {workers} worker(s): upload to READY",
            o.pages,
            f.chunks.median()
        ),
        Load::Docs => format!(
            "{} one-page Markdown documents ({:.0} chunks) uploaded {UPLOAD_CONCURRENCY} at a time, {workers} worker(s): first upload to all READY",
            o.docs,
            f.chunks.median()
        ),
    };
    let unit = match load {
        Load::Pdf => "pages/s",
        Load::Docs => "docs/s",
    };
    let mut beside = format!(
        "took {:.1} s (uploads {:.2} s); {:.0} embedding calls at {EMBED_LATENCY_MS} ms, at most {:.0} in flight; worker peak RSS {:.0} MiB; CPU s: worker {:.1}, Postgres {:.1}",
        f.secs.median(),
        f.upload_secs.median(),
        f.calls.median(),
        f.in_flight.median(),
        f.worker_rss.median(),
        f.worker_cpu.median(),
        f.pg_cpu.median()
    );
    if load == Load::Pdf && workers > 1 {
        beside.push_str("; one document is one job, so a second worker cannot share it");
    }
    Row::new("8 kb", what, f.rate.show(1), unit, "").beside(beside)
}

// --- retrieval -------------------------------------------------------------------------

#[derive(Default)]
struct Retrieval {
    p50: Runs,
    p99: Runs,
    cold: Runs,
    api_rss: Runs,
    ft_p50: Runs,
    ft_p99: Runs,
    scan_ms: Runs,
    api_cpu_ms: Runs,
    pg_cpu_ms: Runs,
    empty: Runs,
    seed_secs: Runs,
}

/// Writes `chunks` chunks (in documents of [`CHUNKS_PER_DOC`]) for the organization, as
/// ingestion would leave them, then bumps its index version and vacuums the tables.
async fn seed(p: &Platform, org_id: Uuid, chunks: usize, vocab: &[String]) -> anyhow::Result<()> {
    let pool = &p.db.pool;
    let docs = chunks.div_ceil(CHUNKS_PER_DOC);
    let doc_ids: Vec<Uuid> = (0..docs).map(|_| Uuid::new_v4()).collect();
    let names: Vec<String> = (0..docs).map(|i| format!("Seeded manual {i:05}")).collect();
    let sizes: Vec<i32> = (0..docs)
        .map(|i| CHUNKS_PER_DOC.min(chunks - i * CHUNKS_PER_DOC) as i32)
        .collect();
    sqlx::query(
        "INSERT INTO kb_documents (id, org_id, name, filename, format, mime_type, size_bytes, blob_path,
                                   status, pages, chunks_total, chunks_embedded, index_model, ts_config,
                                   indexed_at)
         SELECT u.id, $1, u.name, u.name || '.txt', 'TEXT', 'text/plain', u.chunks * 420,
                'kb/' || $1 || '/' || u.id, 'READY', NULL, u.chunks, u.chunks, $2, 'simple', now()
           FROM UNNEST($3::uuid[], $4::text[], $5::int4[]) AS u(id, name, chunks)",
    )
    .bind(org_id)
    .bind(INDEX_MODEL)
    .bind(&doc_ids)
    .bind(&names)
    .bind(&sizes)
    .execute(pool)
    .await?;
    let mut rng = Rng(0xC4A7_0000 ^ chunks as u64);
    let mut offset = 0i64;
    for first in (0..chunks).step_by(SEED_BATCH) {
        let n = SEED_BATCH.min(chunks - first);
        let mut document = Vec::with_capacity(n);
        let mut position = Vec::with_capacity(n);
        let mut text = Vec::with_capacity(n);
        let mut start = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        let mut tokens = Vec::with_capacity(n);
        let mut embedding = Vec::with_capacity(n);
        for k in first..first + n {
            let pos = k % CHUNKS_PER_DOC;
            if pos == 0 {
                offset = 0;
            }
            let t = chunk_text(&mut rng, vocab);
            let len = t.chars().count() as i64;
            document.push(doc_ids[k / CHUNKS_PER_DOC]);
            position.push(pos as i32);
            start.push(offset);
            end.push(offset + len);
            tokens.push((t.split_whitespace().count() as f64 * 1.3).round() as i32);
            embedding.push(vectors::to_bytes(&random_vector(&mut rng)));
            text.push(t);
            offset += len + 1;
        }
        sqlx::query(
            "INSERT INTO kb_chunks (org_id, document_id, position, text, start_char, end_char, tokens,
                                    embedding, tsv)
             SELECT $1, u.document_id, u.position, u.text, u.start_char, u.end_char, u.tokens, u.embedding,
                    to_tsvector('simple', u.text)
               FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::int8[], $6::int8[], $7::int4[], $8::bytea[])
                    AS u(document_id, position, text, start_char, end_char, tokens, embedding)",
        )
        .bind(org_id)
        .bind(&document)
        .bind(&position)
        .bind(&text)
        .bind(&start)
        .bind(&end)
        .bind(&tokens)
        .bind(&embedding)
        .execute(pool)
        .await?;
    }
    sqlx::query(
        "INSERT INTO kb_index_versions (org_id, version) VALUES ($1, 1)
         ON CONFLICT (org_id) DO UPDATE SET version = kb_index_versions.version + 1",
    )
    .bind(org_id)
    .execute(pool)
    .await?;
    // A live database's tables have been vacuumed and analyzed; these were written a moment
    // ago, and autovacuum would otherwise visit them (and use Postgres' CPU) mid-measurement.
    sqlx::query("VACUUM (ANALYZE) kb_documents, kb_chunks, kb_index_versions")
        .execute(pool)
        .await?;
    Ok(())
}

/// The full-text half of `kb::search` (the same statement, `simple` configuration).
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
  ORDER BY ts_rank_cd(c.tsv, q.q) DESC, c.id LIMIT 50";

fn question(rng: &mut Rng, vocab: &[String]) -> String {
    let n = 2 + rng.below(3);
    (0..n)
        .map(|_| skewed(rng, vocab))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn test_rag(p: &Platform, tenant: &Tenant, query: &str) -> anyhow::Result<(f64, Value)> {
    let t = Instant::now();
    let v = p
        .call(
            Some(tenant),
            reqwest::Method::POST,
            "/bot-config/test-rag",
            Some(json!({"query": query, "topK": 5})),
            200,
        )
        .await?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, v))
}

async fn retrieval_run(
    p: &Platform,
    chunks: usize,
    queries: usize,
    vocab: &[String],
    f: &mut Retrieval,
) -> anyhow::Result<()> {
    let (tenant, org_id) = org_with_embeddings(p).await?;
    let seeding = Instant::now();
    seed(p, org_id, chunks, vocab).await?;
    f.seed_secs.push(seeding.elapsed().as_secs_f64());
    let mut rng = Rng(0x0E5E_0000 ^ chunks as u64);
    let none = Workers::none();

    let (cold_ms, v) = test_rag(p, &tenant, &question(&mut rng, vocab)).await?;
    ensure!(
        v["data"]["mode"] == "HYBRID",
        "the first query was not answered HYBRID: {v}"
    );
    f.cold.push(cold_ms);

    let asked: Vec<String> = (0..queries).map(|_| question(&mut rng, vocab)).collect();
    let cpu0 = p.cpu(&none);
    let mut ms = Vec::with_capacity(queries);
    let mut empty = 0;
    for q in &asked {
        let (took, v) = test_rag(p, &tenant, q).await?;
        ensure!(
            v["data"]["mode"] == "HYBRID",
            "{q:?} was not answered HYBRID: {v}"
        );
        empty += usize::from(v["data"]["results"].as_array().is_none_or(Vec::is_empty));
        ms.push(took);
    }
    let cpu = p.cpu(&none) - cpu0;
    let (_, api_rss, _) = p.peak_rss(&none);
    f.p50.push(percentile(&ms, 0.50));
    f.p99.push(percentile(&ms, 0.99));
    f.api_rss.push(api_rss);
    f.api_cpu_ms.push(cpu.api * 1000.0 / queries as f64);
    f.pg_cpu_ms.push(cpu.postgres * 1000.0 / queries as f64);
    f.empty.push(empty as f64);

    // The full-text statement alone, for the same questions.
    let mut ft = Vec::with_capacity(queries);
    for q in &asked {
        let t = Instant::now();
        let _: Vec<Uuid> = sqlx::query_scalar(FULL_TEXT_SQL)
            .bind(org_id)
            .bind("simple")
            .bind(q)
            .fetch_all(&p.db.pool)
            .await?;
        ft.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    f.ft_p50.push(percentile(&ft, 0.50));
    f.ft_p99.push(percentile(&ft, 0.99));

    // The vector scan alone: the same function over as many random vectors.
    let mut m = ModelVectors {
        dims: DIMS,
        ids: (0..chunks).map(|_| Uuid::new_v4()).collect(),
        data: Vec::with_capacity(chunks * DIMS),
    };
    for _ in 0..chunks {
        m.data.extend(vectors::normalized(&random_vector(&mut rng)));
    }
    let probe = random_vector(&mut rng);
    let scans: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(vectors::nearest(&m, &probe, 50));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    f.scan_ms.push(percentile(&scans, 0.5));
    Ok(())
}

fn retrieval_rows(chunks: usize, queries: usize, f: &Retrieval) -> Vec<Row> {
    let docs = chunks.div_ceil(CHUNKS_PER_DOC);
    let what = format!(
        "test-rag over {chunks} chunks ({docs} documents), {queries} queries one at a time"
    );
    vec![
        Row::new("8 kb", format!("{what}: p50"), f.p50.show(1), "ms", "")
            .beside(format!(
                "embedding at 0 ms (sim); full-text SQL alone p50 {:.1} ms; vector scan alone {:.1} ms; CPU ms per query: api {:.1}, Postgres {:.1}",
                f.ft_p50.median(),
                f.scan_ms.median(),
                f.api_cpu_ms.median(),
                f.pg_cpu_ms.median()
            )),
        Row::new("8 kb", format!("{what}: p99"), f.p99.show(1), "ms", "").beside(format!(
            "full-text SQL alone p99 {:.1} ms; every answer HYBRID, {:.0} with no passage",
            f.ft_p99.median(),
            f.empty.median()
        )),
        Row::new(
            "8 kb",
            format!("test-rag over {chunks} chunks: first query (loads the vectors)"),
            f.cold.show(0),
            "ms",
            "",
        )
        .beside(format!(
            "api peak RSS after: {:.0} MiB; seeding took {:.0} s (not measured)",
            f.api_rss.median(),
            f.seed_secs.median()
        )),
    ]
}

// --- the scenario ----------------------------------------------------------------------

pub async fn run(runs: usize, o: &Options) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for load in [Load::Pdf, Load::Docs] {
        let files = match load {
            Load::Pdf => Files::Pdf {
                bytes: pdf(o.pages),
                pages: o.pages,
            },
            Load::Docs => Files::Docs((0..o.docs).map(markdown).collect()),
        };
        for workers in [1, 2] {
            let mut f = Ingest::default();
            for run in 1..=runs {
                let name = if load == Load::Pdf { "pdf" } else { "docs" };
                eprintln!("[kb] {name}, {workers} worker(s), run {run}/{runs}");
                let p = Platform::start("kb", 16).await?;
                let result = ingest_run(&p, &files, workers, &mut f).await;
                p.stop().await;
                result?;
            }
            rows.push(ingest_rows(load, o, workers, &f));
        }
    }

    let vocab = vocabulary();
    let mut sizes = o.chunks.clone();
    sizes.sort_unstable();
    let mut figures: Vec<Retrieval> = sizes.iter().map(|_| Retrieval::default()).collect();
    for run in 1..=runs {
        // One api for every size (as one process serves many organizations): its RSS after
        // each size includes the vectors of the smaller ones still cached.
        let p = Platform::start("kb", 16).await?;
        let result = async {
            sim_latency(&p, 0).await?;
            for (size, f) in sizes.iter().zip(figures.iter_mut()) {
                eprintln!("[kb] retrieval over {size} chunks, run {run}/{runs}");
                retrieval_run(&p, *size, o.queries, &vocab, f).await?;
            }
            anyhow::Ok(())
        }
        .await;
        p.stop().await;
        result?;
    }
    for (size, f) in sizes.iter().zip(&figures) {
        rows.extend(retrieval_rows(*size, o.queries, f));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_deterministic_and_sized() {
        assert_eq!(markdown(7), markdown(7));
        assert_ne!(markdown(7), markdown(8));
        let words = String::from_utf8(markdown(1))
            .unwrap()
            .split_whitespace()
            .count();
        assert!((280..360).contains(&words), "{words}");
        let vocab = vocabulary();
        let distinct: std::collections::HashSet<&String> = vocab.iter().collect();
        assert_eq!(distinct.len(), VOCABULARY);
        let mut rng = Rng(1);
        let chunk = chunk_text(&mut rng, &vocab);
        assert!((50..=71).contains(&chunk.split_whitespace().count()));
    }
}
