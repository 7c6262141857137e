//! Media upload → URL → download with bearer, expiry, MIME checks, inbound media.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::*;

async fn upload(f: &Fixture, bytes: &[u8], mime: &str, declared: &str) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", declared.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec())
                .file_name("f.bin")
                .mime_str(mime)
                .unwrap(),
        );
    let resp = f
        .http
        .post(f.url(&format!("{NUMBER}/media")))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn upload_url_download_and_expiry() {
    let f = Fixture::new().await;
    let bytes = b"\xFF\xD8\xFFfake-jpeg-bytes".to_vec();
    let (status, body) = upload(&f, &bytes, "image/jpeg", "image/jpeg").await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_string();

    let (status, _, meta) = f.get(&id).await;
    assert_eq!(status, 200);
    assert_eq!(meta["messaging_product"], "whatsapp");
    assert_eq!(meta["mime_type"], "image/jpeg");
    assert_eq!(meta["file_size"], bytes.len().to_string());
    assert_eq!(meta["sha256"], hex::encode(Sha256::digest(&bytes)));
    let url = meta["url"].as_str().unwrap();

    // With the bearer → bytes + content type; without → 401.
    let resp = f.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let resp = f.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Send it by id (image) works; as a sticker it does not (MIME mismatch → 131053).
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    let (status, _) = f
        .send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"id": id}}))
        .await;
    assert_eq!(status, 200);
    let (_, body) = f
        .send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "sticker", "sticker": {"id": id}}))
        .await;
    assert_meta_error(&body, 131053);

    // Expiry: shrink the TTL; a fresh URL dies after it → 404; a new GET gives a new URL.
    f.sim.update_settings(|s| s.media_url_ttl_ms = 100);
    let (_, _, meta) = f.get(&id).await;
    let url = meta["url"].as_str().unwrap().to_string();
    assert_eq!(
        f.http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        f.http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (_, _, meta) = f.get(&id).await;
    let fresh = meta["url"].as_str().unwrap();
    assert_ne!(fresh, url);
    assert_eq!(
        f.http
            .get(fresh)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Delete.
    let resp = f
        .http
        .delete(f.url(&id))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let (status, _, body) = f.get(&id).await;
    assert_eq!(status, 400);
    assert_meta_error(&body, 100);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn upload_rejects_bad_mime_and_size() {
    let f = Fixture::new().await;
    // Unsupported type.
    let (status, body) = upload(&f, b"GIF89a", "image/gif", "image/gif").await;
    assert_eq!(status, 400);
    assert_meta_error(&body, 131053);
    // Declared type disagrees with the file part.
    let (_, body) = upload(&f, b"x", "image/png", "image/jpeg").await;
    assert_meta_error(&body, 131053);
    // Sticker over 500 KB.
    let (_, body) = upload(&f, &vec![0u8; 600 * 1024], "image/webp", "image/webp").await;
    assert_meta_error(&body, 131053);
    // Missing messaging_product → 100.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec())
            .mime_str("image/png")
            .unwrap(),
    );
    let resp = f
        .http
        .post(f.url(&format!("{NUMBER}/media")))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_meta_error(&resp.json().await.unwrap(), 100);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn inbound_media_is_downloadable_and_media_faults() {
    let f = Fixture::new().await;
    let data = b"OggS-voice-note".to_vec();
    use base64::Engine;
    let spec = json!({"from": CUSTOMER, "type": "audio", "audio": {
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&data), "mime_type": "audio/ogg"}});
    let res = f
        .sim
        .inbound(NUMBER, serde_json::from_value(spec).unwrap())
        .unwrap();
    let media_id = res.media_id.unwrap();
    let hooks = f.hooks.wait_for("inbound audio", |h| !h.is_empty()).await;
    let msg = &hooks[0].body["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(msg["type"], "audio");
    assert_eq!(msg["audio"]["id"], media_id);
    assert_eq!(msg["audio"]["voice"], true);
    assert_eq!(msg["audio"]["sha256"], hex::encode(Sha256::digest(&data)));

    let download = |f: &Fixture| {
        let id = media_id.clone();
        let http = f.http.clone();
        let url = f.url(&id);
        async move {
            let meta: Value = http
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let resp = http
                .get(meta["url"].as_str().unwrap())
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
        }
    };
    assert_eq!(download(&f).await, (200, data.clone()));

    // 5xx twice, then OK.
    f.sim.add_fault(wharf_sim::FaultSpec {
        number_id: Some(NUMBER.into()),
        recipient: None,
        endpoint: Some(wharf_sim::Endpoint::MediaDownload),
        action: wharf_sim::FaultAction::Http {
            status: 503,
            body: None,
        },
        count: Some(2),
    });
    assert_eq!(download(&f).await.0, 503);
    assert_eq!(download(&f).await.0, 503);
    assert_eq!(download(&f).await.0, 200);
    // Corrupt bytes → sha256 mismatch.
    f.sim.add_fault(wharf_sim::FaultSpec {
        number_id: Some(NUMBER.into()),
        recipient: None,
        endpoint: Some(wharf_sim::Endpoint::MediaDownload),
        action: wharf_sim::FaultAction::MediaCorrupt,
        count: Some(1),
    });
    let (status, bytes) = download(&f).await;
    assert_eq!(status, 200);
    assert_ne!(
        hex::encode(Sha256::digest(&bytes)),
        hex::encode(Sha256::digest(&data))
    );
    // Expired URL fault → 404.
    f.sim.add_fault(wharf_sim::FaultSpec {
        number_id: None,
        recipient: None,
        endpoint: Some(wharf_sim::Endpoint::MediaDownload),
        action: wharf_sim::FaultAction::MediaExpiredUrl,
        count: Some(1),
    });
    assert_eq!(download(&f).await.0, 404);
    assert_eq!(download(&f).await.0, 200);
    f.handle.shutdown().await;
}
