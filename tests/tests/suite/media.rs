//! Inbound media: downloaded from the simulator over real HTTP with a fresh URL per attempt,
//! checked, stored, retried through faults, failed with a reason, retried on demand, served.

use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::{Endpoint, FaultAction, FaultSpec};
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin,
};

const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

async fn setup() -> (Platform, OrgAdmin, Number) {
    let p = Platform::start().await;
    let org = p.app.register_org("Media Co").await;
    let number = p.connect_number(org.org_id).await;
    (p, org, number)
}

fn fault(
    number: &Number,
    endpoint: Endpoint,
    action: FaultAction,
    count: Option<u32>,
) -> FaultSpec {
    FaultSpec {
        number_id: Some(number.phone_number_id.clone()),
        recipient: None,
        endpoint: Some(endpoint),
        action,
        count,
    }
}

/// The customer sends a photo; returns the platform's message id once it is stored.
async fn send_photo(p: &Platform, number: &Number) -> Uuid {
    let wamid = p
        .customer_sends(
            number,
            json!({"from": "15550001111", "profile_name": "Pat", "type": "image",
                   "image": {"data_base64": PNG_B64, "mime_type": "image/png", "caption": "receipt"}}),
        )
        .wamid;
    wait_for("photo stored", || async {
        p.count(&format!(
            "SELECT count(*) FROM messages WHERE wamid = '{wamid}'"
        ))
        .await
            == 1
    })
    .await;
    sqlx::query_scalar("SELECT id FROM messages WHERE wamid = $1")
        .bind(&wamid)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

async fn media_state(p: &Platform, id: Uuid) -> (Option<String>, Option<String>, i32) {
    sqlx::query_as("SELECT media_status, media_error, media_attempts FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap()
}

async fn wait_media(p: &Platform, id: Uuid, status: &str) {
    wait_for(&format!("media {status}"), || async {
        media_state(p, id).await.0.as_deref() == Some(status)
    })
    .await;
}

async fn fetch_file(p: &Platform, token: &str, id: Uuid) -> (u16, String, Vec<u8>) {
    let res = p
        .app
        .client
        .get(format!("{}/api/v1/messages/{id}/media", p.app.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, res.bytes().await.unwrap().to_vec())
}

fn png() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap()
}

/// The message as the conversation's message list shows it.
async fn listed(p: &Platform, token: &str, id: Uuid) -> Value {
    let conv: Uuid = sqlx::query_scalar("SELECT conversation_id FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    let page = p
        .app
        .get(&format!("/api/v1/conversations/{conv}/messages"), token)
        .await
        .expect(200);
    page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == json!(id))
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_photo_is_downloaded_stored_and_served() {
    let (p, org, number) = setup().await;
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "downloaded").await;
    let (status, ct, bytes) = fetch_file(&p, &org.token, id).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, png());
    let m = listed(&p, &org.token, id).await;
    assert_eq!(m["type"], "image");
    assert_eq!(m["content"]["caption"], "receipt");
    assert_eq!(m["media"]["status"], "downloaded");
    assert_eq!(m["media"]["mimeType"], "image/png");
    assert_eq!(m["media"]["fileSize"], png().len());
    assert_eq!(m["media"]["url"], format!("/api/v1/messages/{id}/media"));
    // Stored under BLOB_DIR/<org>/<yyyy>/<mm>/<message id>, no temporary files left.
    let path: String = sqlx::query_scalar("SELECT blob_path FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    assert!(
        path.starts_with(&org.org_id.to_string()) && path.ends_with(&id.to_string()),
        "{path}"
    );
    let dir = p.blob_dir.join(&path);
    let siblings: Vec<_> = std::fs::read_dir(dir.parent().unwrap()).unwrap().collect();
    assert_eq!(siblings.len(), 1);

    // A voice note and a document too, with their file names.
    let voice = p.customer_sends(&number, json!({"from": "15550001111", "type": "audio", "audio": {"data_base64": "T2dnUw==", "mime_type": "audio/ogg"}}));
    let doc = p.customer_sends(
        &number,
        json!({"from": "15550001111", "type": "document", "document": {"data_base64": "JVBERi0xLjQ=", "mime_type": "application/pdf", "filename": "contract.pdf"}}),
    );
    wait_for("three downloads", || async {
        p.count("SELECT count(*) FROM messages WHERE media_status = 'downloaded'")
            .await
            == 3
    })
    .await;
    let doc_id: Uuid = sqlx::query_scalar("SELECT id FROM messages WHERE wamid = $1")
        .bind(&doc.wamid)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    let res = p
        .app
        .client
        .get(format!("{}/api/v1/messages/{doc_id}/media", p.app.base_url))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(
        res.headers()["content-disposition"],
        "inline; filename=\"contract.pdf\""
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF-1.4");
    let voice_id: Uuid = sqlx::query_scalar("SELECT id FROM messages WHERE wamid = $1")
        .bind(&voice.wamid)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    let (status, ct, bytes) = fetch_file(&p, &org.token, voice_id).await;
    assert_eq!(
        (status, ct.as_str(), bytes.as_slice()),
        (200, "audio/ogg", &b"OggS"[..])
    );
    // Read-scoped keys may fetch media; unauthenticated callers may not.
    let key = p.app.create_key(&org, &["whatsapp:read"]).await;
    assert_eq!(fetch_file(&p, &key, id).await.0, 200);
    let anon = p
        .app
        .client
        .get(format!("{}/api/v1/messages/{id}/media", p.app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
}

#[tokio::test]
async fn two_server_errors_then_success() {
    let (p, org, number) = setup().await;
    let sim = p.sim.state();
    sim.add_fault(fault(
        &number,
        Endpoint::MediaDownload,
        FaultAction::Http {
            status: 500,
            body: None,
        },
        Some(1),
    ));
    sim.add_fault(fault(
        &number,
        Endpoint::MediaGet,
        FaultAction::Http {
            status: 503,
            body: None,
        },
        Some(1),
    ));
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "downloaded").await;
    let (_, error, attempts) = media_state(&p, id).await;
    assert_eq!(error, None);
    assert_eq!(attempts, 3, "two failed attempts, then success");
    assert_eq!(fetch_file(&p, &org.token, id).await.2, png());
    let errors: Value =
        sqlx::query_scalar("SELECT errors FROM jobs WHERE kind = 'inbox.download_media'")
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(errors.as_array().unwrap().len(), 2, "{errors}");
}

#[tokio::test]
async fn an_expired_url_is_replaced_by_a_fresh_one() {
    let (p, org, number) = setup().await;
    let sim = p.sim.state();
    let rule = sim.add_fault(fault(
        &number,
        Endpoint::MediaDownload,
        FaultAction::MediaExpiredUrl,
        Some(1),
    ));
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "downloaded").await;
    assert!(
        sim.faults().iter().all(|f| f.id != rule),
        "the expired URL was tried once"
    );
    assert_eq!(
        media_state(&p, id).await.2,
        1,
        "a fresh URL within the same attempt"
    );
    assert_eq!(fetch_file(&p, &org.token, id).await.2, png());

    // URLs that keep expiring: retried with backoff, fresh URL each time, then downloaded.
    sim.add_fault(fault(
        &number,
        Endpoint::MediaDownload,
        FaultAction::MediaExpiredUrl,
        Some(3),
    ));
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "downloaded").await;
    assert_eq!(media_state(&p, id).await.2, 2);
}

#[tokio::test]
async fn a_checksum_mismatch_retries_then_fails_with_the_reason_and_retry_media_recovers() {
    let (p, org, number) = setup().await;
    let sim = p.sim.state();
    sim.add_fault(fault(
        &number,
        Endpoint::MediaDownload,
        FaultAction::MediaCorrupt,
        None,
    ));
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "failed").await;
    let (_, error, attempts) = media_state(&p, id).await;
    let error = error.unwrap();
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert!(error.contains("gave up after 8 attempts"), "{error}");
    assert_eq!(attempts, 8);
    assert_eq!(
        p.count("SELECT count(*) FROM jobs WHERE kind = 'inbox.download_media' AND state = 'dead'")
            .await,
        1
    );
    let m = listed(&p, &org.token, id).await;
    assert_eq!(m["media"]["status"], "failed");
    assert!(m["media"]["error"]
        .as_str()
        .unwrap()
        .contains("sha256 mismatch"));
    assert_eq!(m["media"]["url"], Value::Null);
    let (status, ..) = fetch_file(&p, &org.token, id).await;
    assert_eq!(status, 409, "not downloaded");
    assert_eq!(
        std::fs::read_dir(&p.blob_dir)
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing stored"
    );

    // The fault clears; an agent retries.
    sim.clear_faults(None);
    let retry = p
        .app
        .post(
            &format!("/api/v1/messages/{id}/retry-media"),
            &org.token,
            json!({}),
        )
        .await
        .expect(202);
    assert_eq!(retry.data(), &json!({"id": id, "mediaStatus": "pending"}));
    wait_media(&p, id, "downloaded").await;
    let (_, error, attempts) = media_state(&p, id).await;
    assert_eq!((error, attempts), (None, 1));
    assert_eq!(fetch_file(&p, &org.token, id).await.2, png());
    // A read-only key cannot retry.
    let key = p.app.create_key(&org, &["whatsapp:read"]).await;
    p.app
        .post(
            &format!("/api/v1/messages/{id}/retry-media"),
            &key,
            json!({}),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn an_expired_token_fails_at_once_with_the_reason() {
    let (p, _org, number) = setup().await;
    p.sim.state().expire_token(&number.token).unwrap();
    let id = send_photo(&p, &number).await;
    wait_media(&p, id, "failed").await;
    let (_, error, attempts) = media_state(&p, id).await;
    assert_eq!(attempts, 1, "retrying cannot fix an expired token");
    assert!(error.unwrap().contains("reconnect the account"));
}
