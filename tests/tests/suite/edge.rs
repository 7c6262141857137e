//! What every route does with hostile or careless input, walked over the whole OpenAPI
//! document: NUL characters, invalid UTF-8, huge page numbers, wrong methods, unknown sub-paths,
//! trailing JSON, too-large bodies, several wrong fields at once. No answer may be a 5xx, and
//! every error is JSON in the `{"detail": ...}` shape.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_tests::{platform::Platform, Resp, TestApp};

/// The served OpenAPI document.
async fn openapi_doc(app: &TestApp) -> Value {
    app.client
        .get(format!("{}/api/v1/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

/// Every (method, path template, operation) of the served OpenAPI document.
async fn operations(app: &TestApp) -> Vec<(Method, String, Value)> {
    let doc = openapi_doc(app).await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            out.push((method, path.clone(), op.clone()));
        }
    }
    assert!(
        out.len() > 100,
        "the document lists {} operations",
        out.len()
    );
    out
}

/// The path with every `{param}` replaced by `value`.
fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn query_params(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

async fn call(
    app: &TestApp,
    method: Method,
    path_and_query: &str,
    token: &str,
    body: Option<&str>,
) -> Resp {
    let mut req = app
        .client
        .request(method, format!("{}{path_and_query}", app.base_url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    TestApp::read(req.send().await.expect("the server answers")).await
}

/// An error answer in the API's shape.
fn assert_json_error(r: &Resp, what: &str) {
    assert!(
        !r.status.is_server_error(),
        "{what}: {} {}",
        r.status,
        r.body
    );
    if r.status.is_client_error() {
        assert!(
            r.body.get("detail").is_some(),
            "{what}: {} without a JSON detail: {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn every_route_survives_nul_bytes_invalid_utf8_and_huge_pages() {
    let p = Platform::start().await;
    let app = &p.app;
    let admin = app.register_org("Fuzz Co").await;
    p.connect_number(admin.org_id).await;
    let root = app.super_admin().await;
    let nul_body =
        r#"{"name":"a\u0000b","text":"x\u0000","email":"a\u0000@x.io","items":[{"k":"\u0000"}]}"#;
    for (method, path, op) in operations(app).await {
        for token in [admin.token.as_str(), root.as_str()] {
            let what = |case: &str| format!("{method} {path} ({case})");
            if path.contains('{') {
                let r = call(app, method.clone(), &fill(&path, "a%00b"), token, None).await;
                assert_json_error(&r, &what("NUL in the path"));
                assert_eq!(r.status, 422, "{}: {}", what("NUL in the path"), r.body);
                let r = call(app, method.clone(), &fill(&path, "%FF%FE"), token, None).await;
                assert_json_error(&r, &what("invalid UTF-8 in the path"));
            }
            let concrete = fill(&path, "00000000-0000-4000-8000-000000000000");
            for param in query_params(&op) {
                let r = call(
                    app,
                    method.clone(),
                    &format!("{concrete}?{param}=x%00y"),
                    token,
                    None,
                )
                .await;
                assert_eq!(r.status, 422, "{}: {}", what("NUL in the query"), r.body);
                assert_eq!(r.body["detail"][0]["loc"], json!(["query", param]));
                let r = call(
                    app,
                    method.clone(),
                    &format!("{concrete}?{param}=%C3%28"),
                    token,
                    None,
                )
                .await;
                assert_json_error(&r, &what("invalid UTF-8 in the query"));
                if param == "page" {
                    let r = call(
                        app,
                        method.clone(),
                        &format!("{concrete}?page=9223372036854775807"),
                        token,
                        None,
                    )
                    .await;
                    assert_json_error(&r, &what("huge page"));
                    assert!(
                        r.status == 422 || r.status == 403 || r.status == 401,
                        "{}: {} {}",
                        what("huge page"),
                        r.status,
                        r.body
                    );
                }
            }
            if op.get("requestBody").is_some() {
                let r = call(app, method.clone(), &concrete, token, Some(nul_body)).await;
                assert_json_error(&r, &what("NUL in the body"));
            }
        }
    }
    // Nothing a refused request carried was stored.
    assert_eq!(
        p.count("SELECT count(*) FROM users WHERE position(chr(65533) in name) > 0")
            .await,
        0
    );
}

#[tokio::test]
async fn wrong_methods_and_unknown_sub_paths_answer_json() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Method Co").await;
    let ops = operations(&app).await;
    let mut by_path: std::collections::BTreeMap<String, Vec<Method>> = Default::default();
    for (method, path, _) in &ops {
        by_path
            .entry(path.clone())
            .or_default()
            .push(method.clone());
    }
    for (path, methods) in &by_path {
        let concrete = fill(path, "00000000-0000-4000-8000-000000000000");
        let wrong = [
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::POST,
            Method::GET,
        ]
        .into_iter()
        .find(|m| !methods.contains(m))
        .unwrap();
        let r = call(&app, wrong.clone(), &concrete, &admin.token, None).await;
        assert_eq!(r.status, 405, "{wrong} {path}: {}", r.body);
        assert!(r.body["detail"].is_string(), "{wrong} {path}: {}", r.body);
        let allow = r
            .headers
            .get("allow")
            .expect("Allow header")
            .to_str()
            .unwrap();
        for m in methods {
            assert!(
                allow.contains(m.as_str()),
                "{path}: Allow {allow} lacks {m}"
            );
        }
        let r = call(
            &app,
            Method::GET,
            &format!("{concrete}/no-such-thing"),
            &admin.token,
            None,
        )
        .await;
        // 404 or 405; 403 where the sub-path fits another route's parameter
        // (`/admin/organizations/{id}` for `/admin/organizations/no-such-thing`).
        assert!(
            [403, 404, 405].contains(&r.status.as_u16()),
            "{path}/no-such-thing: {}",
            r.status
        );
        assert!(
            r.body["detail"].is_string(),
            "{path}/no-such-thing: {}",
            r.body
        );
    }
    let r = app.get("/nowhere", &admin.token).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["detail"], "No such route: GET /nowhere");
}

#[tokio::test]
async fn every_operation_but_the_public_ones_requires_credentials() {
    let app = TestApp::spawn().await;
    for (method, path, _) in operations(&app).await {
        let public =
            wharf_api::openapi::PUBLIC_OPERATIONS.contains(&(method.as_str(), path.as_str()));
        if public {
            continue;
        }
        let concrete = fill(&path, "00000000-0000-4000-8000-000000000000");
        let r = app.request(method.clone(), &concrete, None, None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert!(r.body["detail"].is_string());
    }
}

#[tokio::test]
async fn the_openapi_document_describes_errors_and_distinct_bulk_bodies() {
    let app = TestApp::spawn().await;
    let doc = openapi_doc(&app).await;
    let body_ref = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let campaigns = body_ref("/api/v1/campaigns/bulk");
    let failed = body_ref("/api/v1/messages/failed/bulk-retry");
    assert!(!campaigns.is_empty() && !failed.is_empty());
    assert_ne!(campaigns, failed);
    let users = &doc["paths"]["/api/v1/users/{id}"]["patch"]["responses"];
    for status in ["401", "403", "404", "413", "422"] {
        assert!(
            users.get(status).is_some(),
            "PATCH /users/{{id}} lacks {status}"
        );
    }
    assert_eq!(
        users["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ValidationErrorBody"
    );
    assert!(doc["paths"]["/api/v1/auth/login"]["post"]["responses"]
        .get("429")
        .is_some());
    // Public operations say so.
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["security"],
        json!([{}])
    );
}

#[tokio::test]
async fn validation_names_every_wrong_field_at_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post_anon(
            "/api/v1/auth/register",
            json!({"companyName": "Three Co", "email": "not-an-email", "password": "short"}),
        )
        .await
        .expect(422);
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    for field in ["name", "email", "password"] {
        assert!(
            locs.contains(&json!(["body", field])),
            "{field} missing from {}",
            r.body
        );
    }
    // Type errors and rule violations together, in a query too.
    let admin = app.register_org("Query Co").await;
    let r = app
        .get("/api/v1/users?page=abc&limit=0&role=NOPE", &admin.token)
        .await
        .expect(422);
    let locs = r.body["detail"].to_string();
    for field in ["page", "limit", "role"] {
        assert!(locs.contains(field), "{field} missing from {}", r.body);
    }
}

#[tokio::test]
async fn trailing_json_nul_bytes_and_huge_pages_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Strict Co").await;
    let r = app
        .client
        .patch(format!("{}/api/v1/profile", app.base_url))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body(r#"{"name":"Ana"}{"name":"Eve"}"#)
        .send()
        .await
        .unwrap();
    let r = TestApp::read(r).await.expect(422);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");
    let me = app.get("/api/v1/profile", &admin.token).await.expect(200);
    assert_eq!(me.data()["name"], "Ada Admin");

    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "nul@example.com", "name": "Nu\u{0}l", "role": "AGENT"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "name"]));
    let r = app
        .get("/api/v1/users?search=a%00", &admin.token)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "search"]));
    let users = app.get("/api/v1/users", &admin.token).await.expect(200);
    assert_eq!(users.body["pagination"]["total"], 1);

    let r = app
        .get("/api/v1/users?page=9223372036854775807", &admin.token)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "page"]));
    app.get("/api/v1/users?page=1000000", &admin.token)
        .await
        .expect(200);
}

#[tokio::test]
async fn the_root_sends_people_to_the_docs_and_answers_probes() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/docs");
    for probe in ["/health", "/ready"] {
        let r = client
            .get(format!("{}{probe}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
}

/// A PNG of `size` bytes (a real signature, then filler).
fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 7);
    bytes
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, mime: &str) -> Resp {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name("header.png")
            .mime_str(mime)
            .unwrap(),
    );
    let r = app
        .client
        .post(format!("{}/api/v1/templates/upload-media", app.base_url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    TestApp::read(r).await
}

#[tokio::test]
async fn uploads_take_the_documented_sizes_and_check_the_bytes() {
    let p = Platform::start_without_worker().await;
    let app = &p.app;
    let admin = app.register_org("Upload Co").await;
    // 4.5 MB: above the old 2 MB cap, within the 5 MB documented for header images.
    let r = upload(app, &admin.token, png(4_500_000), "image/png")
        .await
        .expect(201);
    assert_eq!(r.data()["size"], 4_500_000);
    // 6 MB of PNG is over the image limit.
    let r = upload(app, &admin.token, png(6_000_000), "image/png")
        .await
        .expect(413);
    assert!(r.body["detail"].is_string());
    // Declared PNG, really text.
    let r = upload(
        app,
        &admin.token,
        b"hello, not an image".to_vec(),
        "image/png",
    )
    .await
    .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "file"]));
    // A malformed multipart body is a JSON 400.
    let r = app
        .post_raw(
            "/api/v1/templates/upload-media",
            Some(&admin.token),
            "multipart/form-data; boundary=xyz",
            "garbage",
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body["detail"].is_string(), "{}", r.body);
    // Nothing but the accepted file stayed in the blob store (no temporary files).
    let files = std::fs::read_dir(p.blob_dir.join(admin.org_id.to_string()).join("templates"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Huge Co").await;
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/v1/templates/upload-media HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 209715200\r\n\r\n",
        admin.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The answer comes without the body ever being sent (the time-out would answer after 30 s).
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"detail\""), "{text}");
}

#[tokio::test]
async fn meta_failures_are_never_our_5xx_pass_through() {
    let p = Platform::start_without_worker().await;
    let admin = p.app.register_org("Costs Co").await;
    let number = p.connect_number(admin.org_id).await;
    // Meta throttles the WABA (80008): a 503 with Retry-After saying so, never a 502.
    p.sim
        .state()
        .set_management_budget(&number.waba_id, 0, true)
        .unwrap();
    let r = p
        .app
        .get("/api/v1/campaigns/meta-costs", &admin.token)
        .await
        .expect(503);
    assert!(r.headers.get("retry-after").is_some());
    assert!(r.body["detail"].as_str().unwrap().contains("throttling"));
    // A campaign whose number was disconnected: a 409 saying why, no call to Meta with an
    // emptied token.
    let campaign: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO campaigns (org_id, account_id, name, template_name, template_language, template_category,
                                status, launched_at, completed_at)
         VALUES ($1, $2, 'Old', 'hello', 'en_US', 'UTILITY', 'COMPLETED', now() - interval '1 hour', now())
         RETURNING id",
    )
    .bind(admin.org_id)
    .bind(number.account_id)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE whatsapp_accounts SET status = 'DISCONNECTED' WHERE id = $1")
        .bind(number.account_id)
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    let r = p
        .app
        .get(
            &format!("/api/v1/campaigns/{campaign}/meta-cost"),
            &admin.token,
        )
        .await
        .expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("DISCONNECTED"));
}
