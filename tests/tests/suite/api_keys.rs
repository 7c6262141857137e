//! `/api-keys`: creation shows the key once, keys authenticate as bearer or X-Api-Key within
//! their scopes, and disabled, expired or deleted keys stop working.

use serde_json::json;
use wharf_tests::TestApp;

#[tokio::test]
async fn a_key_is_shown_once_and_only_its_hash_is_stored() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Keys Co").await;
    let r = app
        .post(
            "/api/v1/api-keys",
            &admin.token,
            json!({"name": "CRM sync", "scopes": ["whatsapp:send", "whatsapp:read"]}),
        )
        .await
        .expect(201);
    let key = r.data()["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("cm_") && key.len() > 30);
    assert_eq!(
        r.data()["scopes"],
        json!(["whatsapp:read", "whatsapp:send"])
    );
    assert!(key.starts_with(r.data()["keyPrefix"].as_str().unwrap()));

    let list = app.get("/api/v1/api-keys", &admin.token).await.expect(200);
    let text = list.body.to_string();
    assert!(!text.contains(&key), "the full key must never be listed");
    assert_eq!(list.data().as_array().unwrap().len(), 1);

    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    let raw: String = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(!raw.contains(&key[3..]), "no column holds the key itself");
}

#[tokio::test]
async fn keys_work_as_bearer_or_x_api_key_and_record_last_use() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Use Co").await;
    let key = app.create_key(&admin, &["admin"]).await;
    app.get("/api/v1/users", &key).await.expect(200);
    let r = app
        .client
        .get(format!("{}/api/v1/users", app.base_url))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut last_used = serde_json::Value::Null;
    for _ in 0..50 {
        let list = app.get("/api/v1/api-keys", &admin.token).await.expect(200);
        last_used = list.data()[0]["lastUsedAt"].clone();
        if last_used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(last_used.is_string(), "lastUsedAt recorded");
}

#[tokio::test]
async fn disabled_expired_and_deleted_keys_stop_working() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Stop Co").await;
    let key = app.create_key(&admin, &["admin"]).await;
    let id = app.get("/api/v1/api-keys", &admin.token).await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            &admin.token,
            json!({"enabled": false}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["enabled"], false);
    let r = app.get("/api/v1/users", &key).await.expect(401);
    assert_eq!(r.body["detail"], "This API key is disabled");
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        &admin.token,
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    app.get("/api/v1/users", &key).await.expect(200);

    // Expiry: set in the past directly (the API refuses past dates).
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 minute'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let r = app.get("/api/v1/users", &key).await.expect(401);
    assert_eq!(r.body["detail"], "This API key has expired");
    sqlx::query("UPDATE api_keys SET expires_at = NULL")
        .execute(&app.db.pool)
        .await
        .unwrap();

    app.delete(&format!("/api/v1/api-keys/{id}"), &admin.token)
        .await
        .expect(204);
    app.get("/api/v1/users", &key).await.expect(401);
    app.delete(&format!("/api/v1/api-keys/{id}"), &admin.token)
        .await
        .expect(404);
}

#[tokio::test]
async fn updates_change_name_and_scopes_and_reject_bad_values() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Upd Co").await;
    let key = app.create_key(&admin, &["whatsapp:read"]).await;
    let id = app.get("/api/v1/api-keys", &admin.token).await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.get("/api/v1/users", &key).await.expect(403);
    let r = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            &admin.token,
            json!({"name": "Renamed", "scopes": ["admin"]}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["name"], "Renamed");
    // Scope changes apply to the existing key at once.
    app.get("/api/v1/users", &key).await.expect(200);

    let r = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            &admin.token,
            json!({"scopes": ["root"]}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "enum");
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        &admin.token,
        json!({"scopes": []}),
    )
    .await
    .expect(422);
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        &admin.token,
        json!({"enabled": "yes"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/api-keys",
        &admin.token,
        json!({"name": "x", "scopes": ["admin"], "expiresAt": "2001-01-01T00:00:00Z"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/api-keys",
        &admin.token,
        json!({"name": "x", "scopes": ["admin"], "expiresAt": "tomorrow"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/api-keys",
        &admin.token,
        json!({"scopes": ["admin"]}),
    )
    .await
    .expect(422);
    let r = app
        .post(
            "/api/v1/api-keys",
            &admin.token,
            json!({"name": "future", "scopes": ["admin"], "expiresAt": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["expiresAt"], "2099-01-01T00:00:00Z");
}

#[tokio::test]
async fn only_admins_and_admin_keys_manage_keys() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Perm Co").await;
    let (_, supervisor) = app.create_user(&admin, "SUPERVISOR").await;
    let (_, agent) = app.create_user(&admin, "AGENT").await;
    let send_key = app.create_key(&admin, &["whatsapp:send"]).await;
    for token in [&supervisor, &agent, &send_key] {
        app.get("/api/v1/api-keys", token).await.expect(403);
        app.post(
            "/api/v1/api-keys",
            token,
            json!({"name": "x", "scopes": ["admin"]}),
        )
        .await
        .expect(403);
    }
    let admin_key = app.create_key(&admin, &["admin"]).await;
    app.post(
        "/api/v1/api-keys",
        &admin_key,
        json!({"name": "from key", "scopes": ["whatsapp:read"]}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn another_tenants_keys_are_invisible_and_untouchable() {
    let app = TestApp::spawn().await;
    let a = app.register_org("Key Tenant A").await;
    let b = app.register_org("Key Tenant B").await;
    let a_key = app.create_key(&a, &["admin"]).await;
    let a_key_id = app.get("/api/v1/api-keys", &a.token).await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = app.get("/api/v1/api-keys", &b.token).await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 0);
    app.patch(
        &format!("/api/v1/api-keys/{a_key_id}"),
        &b.token,
        json!({"enabled": false}),
    )
    .await
    .expect(404);
    app.delete(&format!("/api/v1/api-keys/{a_key_id}"), &b.token)
        .await
        .expect(404);
    app.get("/api/v1/users", &a_key).await.expect(200);
    // A's key only ever sees A.
    let users = app.get("/api/v1/users", &a_key).await.expect(200);
    assert!(users.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["orgId"] == a.org_id.to_string()));
}
