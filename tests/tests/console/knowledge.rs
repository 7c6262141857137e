//! `/console/knowledge`: a super admin picks the organization, sees its index state and its
//! documents (one READY, one FAILED because the embedding provider refused the key, with that
//! reason), and retries the failed one from the page: the worker ingests it again and the
//! table follows it to READY without a reload.

use std::time::Duration;

use reqwest::{
    multipart::{Form, Part},
    Method,
};
use serde_json::json;
use uuid::Uuid;
use wharf_sim::llm::{LlmFaultAction, LlmFaultSpec, Provider as SimProvider};
use wharf_tests::{
    platform::{wait_for, Platform},
    OrgAdmin, PASSWORD,
};

use crate::browser::Browser;

async fn upload(p: &Platform, admin: &OrgAdmin, name: &str, text: &str) -> Uuid {
    let form = Form::new().part(
        "file",
        Part::bytes(text.as_bytes().to_vec())
            .file_name(name.to_string())
            .mime_str("text/plain")
            .unwrap(),
    );
    let r = p
        .app
        .post_multipart("/api/v1/bot-config/documents", &admin.token, form)
        .await
        .expect(202);
    r.data()["id"].as_str().unwrap().parse().unwrap()
}

async fn status(p: &Platform, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, error FROM kb_documents WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

async fn settled(p: &Platform, id: Uuid) -> (String, Option<String>) {
    wait_for("the document settles", || async {
        matches!(status(p, id).await.0.as_str(), "READY" | "FAILED")
    })
    .await;
    status(p, id).await
}

#[tokio::test]
async fn a_super_admin_sees_documents_and_retries_a_failed_one() {
    let p = Platform::start().await;
    let admin = p.app.register_org("Knowledge Co").await;
    p.app
        .request(
            Method::PUT,
            "/api/v1/bot-config",
            Some(&admin.token),
            Some(json!({"name": "Bot", "provider": "OPENAI", "model": "gpt-4o-mini", "apiKey": "sim-openai-key",
                        "embeddingProvider": "OPENAI", "embeddingModel": "text-embedding-3-small"})),
        )
        .await
        .expect(200);
    // The provider refuses the key once: the first document fails with the provider's reason.
    p.sim.state().llm().add_fault(
        LlmFaultSpec::new(LlmFaultAction::InvalidKey, 1).for_provider(SimProvider::OpenAi),
    );
    let failed = upload(
        &p,
        &admin,
        "returns.txt",
        "Unworn sneakers can be returned within thirty days for a full refund.",
    )
    .await;
    let (s, error) = settled(&p, failed).await;
    assert_eq!(s, "FAILED");
    let error = error.unwrap_or_default();
    assert!(error.contains("embedding provider"), "{error}");
    let ready = upload(
        &p,
        &admin,
        "hours.txt",
        "The shop opens at nine and closes at six on weekdays.",
    )
    .await;
    assert_eq!(settled(&p, ready).await.0, "READY");

    let root = format!("root-{}@example.com", Uuid::new_v4().simple());
    wharf_api::bootstrap::create_super_admin(&p.app.db.pool, &root, PASSWORD)
        .await
        .unwrap();
    let b = Browser::start(&p.app.base_url).await;
    b.sign_in(&root, PASSWORD).await;
    // A super admin chooses the organization first.
    b.goto("/console/knowledge").await;
    b.find("select#org").await;
    b.goto(&format!("/console/knowledge?org={}", admin.org_id))
        .await;
    assert_eq!(b.text("h1").await, "Knowledge base");
    assert!(b.text("#viewing-org").await.contains("Knowledge Co"));
    let index = b.text("#index-state").await;
    assert!(index.contains("Hybrid"), "{index}");
    assert!(index.contains("text-embedding-3-small"), "{index}");
    assert!(index.contains("1 of 2 ready"), "{index}");
    let ready_row = b.text(&format!("tr[data-document='{ready}']")).await;
    assert!(
        ready_row.contains("hours.txt") && ready_row.contains("READY"),
        "{ready_row}"
    );
    let failed_row = b.text(&format!("tr[data-document='{failed}']")).await;
    assert!(failed_row.contains("FAILED"), "{failed_row}");
    assert!(failed_row.contains("embedding provider"), "{failed_row}");
    b.screenshot("knowledge").await;
    assert!(
        !b.overflows_at(390).await,
        "the knowledge page scrolls sideways at 390 px"
    );
    b.client.set_window_size(1280, 900).await.unwrap();

    // Retry: the document leaves FAILED at once and the worker takes it to READY; the table
    // follows by itself.
    b.click(&format!("tr[data-document='{failed}'] button"))
        .await;
    assert!(b.text("#notice").await.contains("returns.txt is queued"));
    assert_eq!(
        b.path().await,
        format!("/console/knowledge?org={}", admin.org_id)
    );
    assert_ne!(status(&p, failed).await.0, "FAILED");
    b.wait_text(
        &format!("tr[data-document='{failed}'] .status"),
        Duration::from_secs(20),
        |t| t == "READY",
    )
    .await;
    let (s, error) = status(&p, failed).await;
    assert_eq!(s, "READY");
    assert_eq!(error, None);
    assert!(b.text("#documents").await.contains("hours.txt"));

    // Bad ids are a 404 page, not an error.
    b.goto(&format!("/console/knowledge?org={}", Uuid::new_v4()))
        .await;
    assert!(b.body_text().await.contains("Organization not found"));
    b.goto("/console/knowledge?org=nope").await;
    assert!(b.body_text().await.contains("not valid"));
    b.close().await;
}
