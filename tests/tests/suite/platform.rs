//! Health, readiness, OpenAPI, docs, and the error conventions every route shares.

use serde_json::json;
use wharf_tests::TestApp;

#[tokio::test]
async fn health_and_ready_answer_without_auth() {
    let app = TestApp::spawn().await;
    let health = app
        .request(reqwest::Method::GET, "/api/v1/health", None, None)
        .await
        .expect(200);
    assert_eq!(health.body["status"], "ok");
    let ready = app
        .request(reqwest::Method::GET, "/api/v1/ready", None, None)
        .await
        .expect(200);
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["redis"], "ok");
}

#[tokio::test]
async fn ready_reports_redis_disabled_when_switched_off() {
    let app = TestApp::spawn_with(&[("REDIS_URL", "none")]).await;
    let ready = app
        .request(reqwest::Method::GET, "/api/v1/ready", None, None)
        .await
        .expect(200);
    assert_eq!(ready.body["redis"], "disabled");
}

#[tokio::test]
async fn ready_is_503_when_redis_is_unreachable() {
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let ready = app
        .request(reqwest::Method::GET, "/api/v1/ready", None, None)
        .await
        .expect(503);
    assert_eq!(ready.body["redis"], "down");
    assert_eq!(ready.body["database"], "ok");
}

#[tokio::test]
async fn openapi_document_is_generated_from_the_routes() {
    let app = TestApp::spawn().await;
    let spec = app
        .request(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    assert!(
        spec.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec.body["openapi"]
    );
    let paths = spec.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/me",
        "/api/v1/users/{id}/status",
        "/api/v1/api-keys/{id}",
        "/api/v1/admin/organizations/bulk",
        "/api/v1/admin/stats",
        "/api/v1/profile/change-password",
    ] {
        assert!(paths.contains_key(p), "missing {p} in openapi paths");
    }
    assert!(spec.body["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn docs_page_and_its_assets_are_served_locally() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(format!("{}/docs", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "docs page must not load remote assets"
    );
    let js = app
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().len() > 100_000);
}

#[tokio::test]
async fn malformed_bodies_get_422_in_the_seed_shape() {
    let app = TestApp::spawn().await;
    let r = app
        .post_raw("/api/v1/auth/login", None, "application/json", "{not json")
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body"]));

    let r = app
        .post_raw("/api/v1/auth/login", None, "text/plain", "hello")
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body"]));

    let r = app
        .post_raw("/api/v1/auth/login", None, "application/json", "")
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "missing");

    let r = app
        .post_anon("/api/v1/auth/login", json!({"email": "a@b.co"}))
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "password"]));
    assert_eq!(r.body["detail"][0]["type"], "missing");

    let r = app
        .post_anon("/api/v1/auth/login", json!({"email": 5, "password": "x"}))
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "email"]));
    assert_eq!(r.body["detail"][0]["type"], "type_error");

    let r = app
        .post_anon("/api/v1/auth/login", json!([1, 2]))
        .await
        .expect(422);
    assert!(r.body["detail"].is_array());
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_not_500() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Ids Co").await;
    app.get("/api/v1/users/not-a-uuid", &admin.token)
        .await
        .expect(404);
    app.get(
        &format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
        &admin.token,
    )
    .await
    .expect(404);
    let r = app
        .patch("/api/v1/api-keys/xyz", &admin.token, json!({"name": "n"}))
        .await
        .expect(404);
    assert!(r.body["detail"].is_string());
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Query Co").await;
    let r = app
        .get("/api/v1/users?limit=1000", &admin.token)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "limit"]));
    let r = app
        .get("/api/v1/users?limit=abc", &admin.token)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"][0], "query");
    let r = app
        .get("/api/v1/users?role=KING", &admin.token)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "enum");
}

#[tokio::test]
async fn missing_or_garbage_credentials_are_401() {
    let app = TestApp::spawn().await;
    let r = app
        .request(reqwest::Method::GET, "/api/v1/auth/me", None, None)
        .await
        .expect(401);
    assert_eq!(r.body["detail"], "Not authenticated");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    app.get("/api/v1/auth/me", "garbage").await.expect(401);
    app.get("/api/v1/auth/me", "cm_notarealkey")
        .await
        .expect(401);
    let r = app
        .client
        .get(format!("{}/api/v1/auth/me", app.base_url))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
