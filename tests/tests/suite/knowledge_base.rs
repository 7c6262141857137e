//! The knowledge base through `/bot-config`: every format from upload to `test-rag`, re-ingest
//! and model changes replacing chunks, full-text-only mode, tenant isolation, provider 429s,
//! bad files (refused at upload or FAILED with their reason), delete during ingestion, and the
//! bot answering from a document with the chunk named in its trace.

use std::time::Duration;

use reqwest::{
    multipart::{Form, Part},
    Method,
};
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::kb::fixtures;
use wharf_sim::llm::{LlmFaultAction, LlmFaultSpec, Provider as SimProvider};
use wharf_tests::{
    platform::{wait_for, Platform},
    OrgAdmin, Resp,
};

struct Kb {
    p: Platform,
    admin: OrgAdmin,
}

impl Kb {
    async fn start() -> Self {
        let p = Platform::start().await;
        let admin = p.app.register_org("Docs Co").await;
        Kb { p, admin }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.p
            .app
            .request(
                method,
                &format!("/api/v1{path}"),
                Some(&self.admin.token),
                body,
            )
            .await
    }

    /// An active OpenAI config that embeds with `model`.
    async fn embeddings(&self, model: &str) {
        self.call(
            Method::PUT,
            "/bot-config",
            Some(json!({"name": "Bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sim-openai-key",
                        "embeddingProvider": "OPENAI", "embeddingModel": model})),
        )
        .await
        .expect(200);
    }

    async fn upload_as(&self, token: &str, name: &str, mime: &str, bytes: Vec<u8>) -> Resp {
        let form = Form::new().part(
            "file",
            Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str(mime)
                .unwrap(),
        );
        self.p
            .app
            .post_multipart("/api/v1/bot-config/documents", token, form)
            .await
    }

    /// Uploads a file; returns the document's id (answered 202, PENDING).
    async fn upload(&self, name: &str, mime: &str, bytes: Vec<u8>) -> String {
        let r = self
            .upload_as(&self.admin.token, name, mime, bytes)
            .await
            .expect(202);
        assert_eq!(r.data()["status"], "PENDING", "{}", r.body);
        r.data()["id"].as_str().unwrap().to_string()
    }

    async fn status(&self, id: &str) -> Value {
        self.call(
            Method::GET,
            &format!("/bot-config/documents/{id}/status"),
            None,
        )
        .await
        .expect(200)
        .data()
        .clone()
    }

    /// Waits until the document is READY or FAILED; returns its status.
    async fn settled(&self, id: &str) -> Value {
        wait_for("the document settles", || async {
            let s = self.status(id).await;
            s["status"] == "READY" || s["status"] == "FAILED"
        })
        .await;
        self.status(id).await
    }

    async fn rag(&self, query: &str) -> Value {
        self.call(
            Method::POST,
            "/bot-config/test-rag",
            Some(json!({"query": query})),
        )
        .await
        .expect(200)
        .data()
        .clone()
    }

    fn embedding_calls(&self) -> Vec<wharf_sim::llm::LlmRequest> {
        self.p
            .sim
            .state()
            .llm()
            .requests(Some(SimProvider::OpenAi))
            .into_iter()
            .filter(|r| r.path.ends_with("/embeddings"))
            .collect()
    }
}

/// Distinct facts, one per format, so each search has one right document.
fn corpus() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let pdf = fixtures::pdf(&[
        "Welcome to the Harbour Hotel guide.",
        "Breakfast is served in the orangery from seven until eleven every morning.",
    ]);
    let docx = fixtures::docx(&[
        (Some("Heading1"), "Returns policy"),
        (
            None,
            "Unworn sneakers can be returned within thirty days for a full refund.",
        ),
    ]);
    let html = b"<html><head><title>x</title><script>var hidden = 'zebra';</script></head><body>\
        <h1>Shipping</h1><p>Parcels to Lisbon travel by courier and arrive within forty-eight hours.</p></body></html>"
        .to_vec();
    let md = b"# Membership\n\nThe platinum membership includes unlimited sauna access.\n".to_vec();
    let txt =
        b"Our warehouse in Rotterdam closes for inventory on the first Monday of March.\n".to_vec();
    let csv = b"product,price,colour\nkayak,899 EUR,turquoise\nsurfboard,450 EUR,amber\n".to_vec();
    vec![
        (
            "guide.pdf",
            "application/pdf",
            pdf,
            "when is breakfast served in the orangery",
        ),
        (
            "returns.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            docx,
            "can I return unworn sneakers",
        ),
        (
            "shipping.html",
            "text/html",
            html,
            "how long do parcels to Lisbon take",
        ),
        (
            "membership.md",
            "text/markdown",
            md,
            "does platinum membership include sauna",
        ),
        (
            "warehouse.txt",
            "text/plain",
            txt,
            "when does the Rotterdam warehouse close",
        ),
        ("prices.csv", "text/csv", csv, "what does the kayak cost"),
    ]
}

#[tokio::test]
async fn every_format_from_upload_to_test_rag_with_hybrid_retrieval() {
    let kb = Kb::start().await;
    kb.embeddings("text-embedding-3-small").await;
    let mut ids = Vec::new();
    for (name, mime, bytes, _) in corpus() {
        ids.push(kb.upload(name, mime, bytes).await);
    }
    for (id, (name, ..)) in ids.iter().zip(corpus()) {
        let s = kb.settled(id).await;
        assert_eq!(s["status"], "READY", "{name}: {s}");
        assert!(
            s["progress"]["chunksTotal"].as_i64().unwrap() >= 1,
            "{name}: {s}"
        );
        assert_eq!(
            s["progress"]["chunksEmbedded"],
            s["progress"]["chunksTotal"]
        );
        assert_eq!(s["error"], Value::Null);
    }
    for (id, (name, _, _, question)) in ids.iter().zip(corpus()) {
        let found = kb.rag(question).await;
        assert_eq!(found["mode"], "HYBRID");
        let top = &found["results"][0];
        assert_eq!(
            top["documentId"],
            id.as_str(),
            "{name}: {question} → {found}"
        );
        assert_eq!(top["documentName"], name);
        assert!(top["score"].as_f64().unwrap() > 0.0);
    }
    // The script's words are not text of the page.
    let hidden = kb.rag("zebra").await;
    assert!(
        hidden["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["text"].as_str().unwrap().contains("zebra")),
        "{hidden}"
    );

    let list = kb
        .call(Method::GET, "/bot-config/documents", None)
        .await
        .expect(200);
    let docs = list.data().as_array().unwrap();
    assert_eq!(docs.len(), 6);
    let pdf = docs.iter().find(|d| d["format"] == "PDF").unwrap();
    assert_eq!(pdf["pages"], 2);
    assert_eq!(pdf["indexModel"], "OPENAI/text-embedding-3-small");
    assert!(pdf["size"].as_i64().unwrap() > 0 && pdf["chunkCount"].as_i64().unwrap() >= 1);

    let chunks = kb
        .call(
            Method::GET,
            &format!("/bot-config/documents/{}/chunks?limit=1", ids[0]),
            None,
        )
        .await
        .expect(200);
    let first = &chunks.body["data"][0];
    assert_eq!(first["position"], 0);
    assert!(
        first["text"].as_str().unwrap().contains("Harbour Hotel"),
        "{}",
        chunks.body
    );
    assert_eq!(first["page"], 1);
    assert_eq!(first["hasEmbedding"], true);
    assert!(chunks.body["pagination"]["total"].as_i64().unwrap() >= 1);

    let info = kb
        .call(Method::GET, "/bot-config/embedding-info", None)
        .await
        .expect(200);
    let i = info.data();
    assert_eq!(i["provider"], "OPENAI");
    assert_eq!(i["model"], "text-embedding-3-small");
    assert_eq!(i["dimensions"], 512);
    assert_eq!(i["documents"], 6);
    assert_eq!(i["retrieval"], "HYBRID");
    // Chunks were embedded in batches, each asking for shortened vectors.
    let calls = kb.embedding_calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.body["dimensions"] == 512),
        "{:?}",
        calls[0].body
    );
}

#[tokio::test]
async fn full_text_only_without_an_embedding_provider_and_one_org_never_sees_another() {
    let kb = Kb::start().await;
    let id = kb
        .upload(
            "faq.md",
            "text/markdown",
            b"# Opening hours\n\nThe shop opens at nine and closes at six on weekdays.\n\n# Parking\n\nCustomers park for free behind the bakery.\n".to_vec(),
        )
        .await;
    let s = kb.settled(&id).await;
    assert_eq!(s["status"], "READY", "{s}");
    assert_eq!(s["progress"]["chunksEmbedded"], 0);
    let found = kb.rag("where can customers park").await;
    assert_eq!(found["mode"], "FULL_TEXT");
    assert!(
        found["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("bakery"),
        "{found}"
    );
    let info = kb
        .call(Method::GET, "/bot-config/embedding-info", None)
        .await
        .expect(200);
    assert_eq!(info.data()["retrieval"], "FULL_TEXT");
    assert_eq!(info.data()["provider"], Value::Null);
    assert!(kb.embedding_calls().is_empty(), "no provider was called");

    // Another organization: nothing of the first one's, by search or by id.
    let other = kb.p.app.register_org("Other Co").await;
    let theirs =
        kb.p.app
            .post(
                "/api/v1/bot-config/test-rag",
                &other.token,
                json!({"query": "where can customers park"}),
            )
            .await
            .expect(200);
    assert_eq!(theirs.data()["results"], json!([]));
    for path in [
        format!("/api/v1/bot-config/documents/{id}/status"),
        format!("/api/v1/bot-config/documents/{id}/chunks"),
    ] {
        kb.p.app.get(&path, &other.token).await.expect(404);
    }
    kb.p.app
        .delete(&format!("/api/v1/bot-config/documents/{id}"), &other.token)
        .await
        .expect(404);
    let list =
        kb.p.app
            .get("/api/v1/bot-config/documents", &other.token)
            .await
            .expect(200);
    assert_eq!(list.data(), &json!([]));

    // A language makes the search stem: "parking" finds "park".
    kb.call(
        Method::PUT,
        "/config/knowledge-language",
        Some(json!({"language": "en"})),
    )
    .await
    .expect(200);
    wait_for("re-indexed in English", || async {
        kb.p.count("SELECT count(*) FROM kb_documents WHERE ts_config = 'english'")
            .await
            == 1
    })
    .await;
    let stemmed = kb.rag("parking").await;
    assert!(
        stemmed["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("bakery"),
        "{stemmed}"
    );
    let bad = kb
        .call(
            Method::PUT,
            "/config/knowledge-language",
            Some(json!({"language": "klingon"})),
        )
        .await
        .expect(422);
    assert!(bad.body.to_string().contains("language"), "{}", bad.body);
}

#[tokio::test]
async fn re_ingest_and_a_new_embedding_model_replace_chunks_without_duplicates() {
    let kb = Kb::start().await;
    kb.embeddings("text-embedding-3-small").await;
    let text: String = (0..40)
        .map(|i| format!("## Section {i}\n\nParagraph {i} talks about topic number {i} and nothing else.\n\n"))
        .collect();
    let id = kb
        .upload("long.md", "text/markdown", text.into_bytes())
        .await;
    assert_eq!(kb.settled(&id).await["status"], "READY");
    let count = || async {
        kb.p.count(&format!(
            "SELECT count(*) FROM kb_chunks WHERE document_id = '{id}'"
        ))
        .await
    };
    let n = count().await;
    assert!(n >= 2, "{n} chunks");
    let before: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM kb_chunks ORDER BY position")
        .fetch_all(&kb.p.app.db.pool)
        .await
        .unwrap();

    kb.call(
        Method::POST,
        &format!("/bot-config/documents/{id}/reprocess"),
        None,
    )
    .await
    .expect(202);
    wait_for("re-ingested", || async {
        let after: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM kb_chunks ORDER BY position")
            .fetch_all(&kb.p.app.db.pool)
            .await
            .unwrap();
        !after.is_empty() && after[0] != before[0]
    })
    .await;
    assert_eq!(count().await, n, "replaced, not added");

    // A new embedding model re-indexes; the document stays READY throughout.
    kb.embeddings("text-embedding-3-large").await;
    wait_for("re-embedded with the new model", || async {
        kb.p.count(
            "SELECT count(*) FROM kb_documents WHERE index_model = 'OPENAI/text-embedding-3-large'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(kb.status(&id).await["status"], "READY");
    assert_eq!(count().await, n);
    let large = kb
        .embedding_calls()
        .into_iter()
        .filter(|c| c.model.as_deref() == Some("text-embedding-3-large"))
        .count();
    assert!(large >= 1);
    let found = kb.rag("topic number 17").await;
    assert_eq!(found["mode"], "HYBRID");
    assert!(
        found["results"][0]["text"].as_str().unwrap().contains("17"),
        "{found}"
    );
}

#[tokio::test]
async fn a_rate_limited_provider_is_retried_until_the_document_is_ready() {
    let kb = Kb::start().await;
    kb.embeddings("text-embedding-3-small").await;
    kb.p.sim.state().llm().add_fault(
        LlmFaultSpec::new(
            LlmFaultAction::RateLimited {
                retry_after_secs: Some(1),
            },
            2,
        )
        .for_provider(SimProvider::OpenAi),
    );
    let id = kb
        .upload(
            "notes.txt",
            "text/plain",
            b"The ferry to the island leaves every hour on the hour.".to_vec(),
        )
        .await;
    let s = kb.settled(&id).await;
    assert_eq!(s["status"], "READY", "{s}");
    let statuses: Vec<Option<u16>> = kb.embedding_calls().iter().map(|c| c.status).collect();
    assert!(
        statuses.contains(&Some(429)) && statuses.last() == Some(&Some(200)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn bad_files_are_refused_or_fail_with_their_reason() {
    let kb = Kb::start().await;
    // Refused at upload, nothing stored.
    let exe = kb
        .upload_as(
            &kb.admin.token,
            "invoice.pdf",
            "application/pdf",
            b"MZ\x90\x00\x03\x00\x00\x00 this is a windows program".to_vec(),
        )
        .await
        .expect(422);
    assert!(exe.body.to_string().contains("file"), "{}", exe.body);
    let empty = kb
        .upload_as(&kb.admin.token, "empty.txt", "text/plain", Vec::new())
        .await
        .expect(422);
    assert!(empty.body.to_string().contains("empty"), "{}", empty.body);
    kb.upload_as(
        &kb.admin.token,
        "tool.exe",
        "application/x-msdownload",
        b"MZ...".to_vec(),
    )
    .await
    .expect(422);
    let missing =
        kb.p.app
            .post_multipart(
                "/api/v1/bot-config/documents",
                &kb.admin.token,
                Form::new().text("title", "No file"),
            )
            .await
            .expect(422);
    assert!(
        missing.body.to_string().contains("file"),
        "{}",
        missing.body
    );
    let huge = vec![b'a'; 25 * 1024 * 1024 + 1];
    kb.upload_as(&kb.admin.token, "huge.txt", "text/plain", huge)
        .await
        .expect(413);
    let (_, agent) = kb.p.app.create_user(&kb.admin, "AGENT").await;
    kb.upload_as(&agent, "a.txt", "text/plain", b"hello".to_vec())
        .await
        .expect(403);
    assert_eq!(kb.p.count("SELECT count(*) FROM kb_documents").await, 0);

    // Accepted, then FAILED with a reason a person can act on; never stuck PROCESSING.
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "locked.pdf",
            "application/pdf",
            fixtures::pdf_encrypted(),
            "encrypted",
        ),
        (
            "broken.pdf",
            "application/pdf",
            b"%PDF-1.7\n garbage garbage".to_vec(),
            "damaged",
        ),
        (
            "bomb.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            fixtures::docx_bomb(),
            "too large",
        ),
        (
            "blank.txt",
            "text/plain",
            b"   \n\n\t  \n".to_vec(),
            "no text",
        ),
        (
            "latin1.txt",
            "text/plain",
            b"caf\xe9 au lait".to_vec(),
            "not UTF-8",
        ),
    ];
    for (name, mime, bytes, reason) in cases {
        let r = kb.upload_as(&kb.admin.token, name, mime, bytes).await;
        if r.status.as_u16() == 422 {
            // Refusing at upload is as good, as long as the reason is named.
            assert!(r.body.to_string().contains("file"), "{name}: {}", r.body);
            continue;
        }
        let id = r.expect(202).data()["id"].as_str().unwrap().to_string();
        let s = kb.settled(&id).await;
        assert_eq!(s["status"], "FAILED", "{name}: {s}");
        let error = s["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{name}: {error}");
    }
    assert_eq!(
        kb.p.count("SELECT count(*) FROM jobs WHERE kind = 'kb.ingest_document' AND attempt > 1")
            .await,
        0,
        "a bad file is not retried"
    );
}

#[tokio::test]
async fn deleting_a_document_during_ingestion_stops_it_and_leaves_nothing() {
    let kb = Kb::start().await;
    kb.embeddings("text-embedding-3-small").await;
    kb.p.sim
        .state()
        .llm()
        .set_latency(SimProvider::OpenAi, Duration::from_millis(700));
    let text: String = (0..400)
        .map(|i| format!("Paragraph {i}: the quick brown fox number {i} jumps over the lazy dog again and again.\n\n"))
        .collect();
    let id = kb.upload("big.txt", "text/plain", text.into_bytes()).await;
    wait_for("embedding started", || async {
        kb.status(&id).await["status"] == "PROCESSING" && !kb.embedding_calls().is_empty()
    })
    .await;
    let blob: String = sqlx::query_scalar("SELECT blob_path FROM kb_documents")
        .fetch_one(&kb.p.app.db.pool)
        .await
        .unwrap();
    kb.call(Method::DELETE, &format!("/bot-config/documents/{id}"), None)
        .await
        .expect(204);
    kb.call(
        Method::GET,
        &format!("/bot-config/documents/{id}/status"),
        None,
    )
    .await
    .expect(404);
    wait_for("the ingestion stopped", || async {
        kb.p
            .count("SELECT count(*) FROM jobs WHERE kind = 'kb.ingest_document' AND state IN ('available', 'running', 'retryable', 'scheduled')")
            .await
            == 0
    })
    .await;
    let calls = kb.embedding_calls().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(kb.embedding_calls().len(), calls, "no more batches");
    assert_eq!(kb.p.count("SELECT count(*) FROM kb_chunks").await, 0);
    assert!(!kb.p.blob_dir.join(blob).exists(), "the file is gone");
}

#[tokio::test]
async fn the_bot_answers_from_a_document_and_its_trace_names_the_chunk() {
    let s = super::routing::Setup::start().await;
    s.call(
        Method::PUT,
        "/bot-config",
        json!({"name": "Bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sim-openai-key",
               "debounceSeconds": 0, "embeddingProvider": "OPENAI"}),
    )
    .await
    .expect(200);
    s.call(Method::PUT, "/config/bot-enabled", json!({"enabled": true}))
        .await
        .expect(200);
    let form = Form::new().part(
        "file",
        Part::bytes(
            b"# Deliveries\n\nWe deliver furniture to Porto on Tuesdays and Fridays only.\n\n# Payment\n\nWe accept cards and bank transfers.\n"
                .to_vec(),
        )
        .file_name("delivery.md")
        .mime_str("text/markdown")
        .unwrap(),
    );
    let doc =
        s.p.app
            .post_multipart("/api/v1/bot-config/documents", &s.admin.token, form)
            .await
            .expect(202);
    let doc_id = doc.data()["id"].as_str().unwrap().to_string();
    wait_for("indexed", || async {
        s.p.count("SELECT count(*) FROM kb_documents WHERE status = 'READY'")
            .await
            == 1
    })
    .await;
    s.writes(
        "34611000777",
        "which days do you deliver furniture to Porto?",
    )
    .await;
    wait_for("the bot answered", || async {
        s.p.count("SELECT count(*) FROM bot_traces WHERE outcome = 'answered'")
            .await
            == 1
    })
    .await;
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM bot_traces WHERE outcome = 'answered'")
            .fetch_one(&s.p.app.db.pool)
            .await
            .unwrap();
    let used = &detail["call"]["retrieval"][0];
    assert_eq!(used["documentId"], doc_id.as_str(), "{detail}");
    let chunk: String = sqlx::query_scalar("SELECT text FROM kb_chunks WHERE id = $1::text::uuid")
        .bind(used["chunkId"].as_str().unwrap())
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    assert!(chunk.contains("Tuesdays"), "{chunk}");
    // The model was given the passage.
    let chat =
        s.p.sim
            .state()
            .llm()
            .requests(Some(SimProvider::OpenAi))
            .into_iter()
            .find(|r| r.path.ends_with("/chat/completions"))
            .expect("a chat call");
    assert!(
        chat.body.to_string().contains("Tuesdays and Fridays"),
        "{}",
        chat.body
    );
}
