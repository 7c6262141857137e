//! `/admin/organizations*` and `/admin/stats`: super admins only; suspension cuts off an
//! organization's sessions and keys.

use serde_json::json;
use wharf_tests::{TestApp, PASSWORD};

#[tokio::test]
async fn super_admin_creates_reads_updates_and_lists_organizations() {
    let app = TestApp::spawn().await;
    let root = app.super_admin().await;
    let r = app
        .post(
            "/api/v1/admin/organizations",
            &root,
            json!({"name": "Globex", "slug": "globex", "adminEmail": "hank@globex.example.com",
                   "adminName": "Hank", "plan": "PROFESSIONAL", "adminPassword": PASSWORD}),
        )
        .await
        .expect(201);
    let org_id = r.data()["organization"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.data()["organization"]["plan"], "PROFESSIONAL");
    assert_eq!(r.data()["admin"]["role"], "ADMIN");
    // The new admin can log in and manage their org.
    let hank = app.login("hank@globex.example.com", PASSWORD).await;
    app.get("/api/v1/users", &hank).await.expect(200);

    let r = app
        .get(&format!("/api/v1/admin/organizations/{org_id}"), &root)
        .await
        .expect(200);
    assert_eq!(r.data()["userCount"], 1);
    assert_eq!(r.data()["adminCount"], 1);
    let r = app
        .patch(
            &format!("/api/v1/admin/organizations/{org_id}"),
            &root,
            json!({"name": "Globex Corp", "plan": "ENTERPRISE"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["name"], "Globex Corp");
    assert_eq!(r.data()["plan"], "ENTERPRISE");

    let users = app
        .get(
            &format!("/api/v1/admin/organizations/{org_id}/users"),
            &root,
        )
        .await
        .expect(200);
    assert_eq!(users.body["pagination"]["total"], 1);
    assert_eq!(users.body["data"][0]["email"], "hank@globex.example.com");
}

#[tokio::test]
async fn organization_list_filters_sorts_and_paginates() {
    let app = TestApp::spawn().await;
    let root = app.super_admin().await;
    for (name, plan) in [
        ("Alpha", "FREE"),
        ("Bravo", "STARTER"),
        ("Charlie", "FREE"),
        ("Delta", "ENTERPRISE"),
    ] {
        app.post(
            "/api/v1/admin/organizations",
            &root,
            json!({"name": name, "slug": name.to_lowercase(), "adminEmail": format!("a@{}.example.com", name.to_lowercase()),
                   "adminName": "A", "plan": plan}),
        )
        .await
        .expect(201);
    }
    let r = app
        .get("/api/v1/admin/organizations?plan=FREE", &root)
        .await
        .expect(200);
    assert_eq!(r.body["pagination"]["total"], 2);
    let r = app
        .get("/api/v1/admin/organizations?search=rav", &root)
        .await
        .expect(200);
    assert_eq!(r.body["data"][0]["name"], "Bravo");
    let r = app
        .get(
            "/api/v1/admin/organizations?sortBy=name&sortOrder=asc&limit=2&page=2",
            &root,
        )
        .await
        .expect(200);
    assert_eq!(
        r.body["pagination"],
        json!({"page": 2, "limit": 2, "total": 4, "totalPages": 2})
    );
    assert_eq!(r.body["data"][0]["name"], "Charlie");
    assert_eq!(r.body["data"][1]["name"], "Delta");
    assert_eq!(r.body["data"][0]["userCount"], 1);

    let r = app
        .get("/api/v1/admin/organizations?sortBy=password", &root)
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "sortBy"]));
    app.get("/api/v1/admin/organizations?status=GONE", &root)
        .await
        .expect(422);
    app.get("/api/v1/admin/organizations?page=0", &root)
        .await
        .expect(422);
}

#[tokio::test]
async fn organization_input_errors() {
    let app = TestApp::spawn().await;
    let root = app.super_admin().await;
    let body = |slug: &str, email: &str| json!({"name": "N", "slug": slug, "adminEmail": email, "adminName": "A"});
    app.post(
        "/api/v1/admin/organizations",
        &root,
        body("taken", "one@x.example.com"),
    )
    .await
    .expect(201);
    let r = app
        .post(
            "/api/v1/admin/organizations",
            &root,
            body("taken", "two@x.example.com"),
        )
        .await
        .expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("slug"));
    app.post(
        "/api/v1/admin/organizations",
        &root,
        body("fresh", "one@x.example.com"),
    )
    .await
    .expect(409);
    let r = app
        .post(
            "/api/v1/admin/organizations",
            &root,
            body("Bad Slug!", "bad"),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"].as_array().unwrap().len(), 2);
    app.post("/api/v1/admin/organizations", &root, json!({"name": "N"}))
        .await
        .expect(422);
    // The 409 on the admin email rolled back the org insert too.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let org = app.get("/api/v1/admin/organizations", &root).await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v1/admin/organizations/{org}"),
        &root,
        json!({"plan": "GOLD"}),
    )
    .await
    .expect(422);
    app.patch(
        &format!("/api/v1/admin/organizations/{}", uuid::Uuid::new_v4()),
        &root,
        json!({"plan": "FREE"}),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn suspension_stops_an_orgs_tokens_and_keys_and_activation_restores_them() {
    let app = TestApp::spawn().await;
    let root = app.super_admin().await;
    let a = app.register_org("Suspend Me").await;
    let b = app.register_org("Bystander").await;
    let key = app.create_key(&a, &["admin"]).await;
    let r = app
        .post(
            "/api/v1/admin/organizations/bulk",
            &root,
            json!({"action": "suspend", "selection": {"mode": "ids", "ids": [a.org_id.to_string(), "junk"]}}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 1);
    let r = app.get("/api/v1/auth/me", &a.token).await.expect(401);
    assert_eq!(r.body["detail"], "This organization is suspended");
    app.get("/api/v1/users", &key).await.expect(401);
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": a.email, "password": PASSWORD}),
    )
    .await
    .expect(401);
    app.post_anon(
        "/api/v1/auth/refresh",
        json!({"refreshToken": a.refresh_token}),
    )
    .await
    .expect(401);
    app.get("/api/v1/auth/me", &b.token).await.expect(200);

    let r = app
        .get(&format!("/api/v1/admin/organizations/{}", a.org_id), &root)
        .await
        .expect(200);
    assert_eq!(r.data()["status"], "SUSPENDED");
    assert!(r.data()["suspendedAt"].is_string());

    let r = app
        .post(
            "/api/v1/admin/organizations/bulk",
            &root,
            json!({"action": "activate", "selection": {"mode": "filter", "filter": {"status": "SUSPENDED"}}}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["affected"], 1);
    app.get("/api/v1/auth/me", &a.token).await.expect(200);
    app.get("/api/v1/users", &key).await.expect(200);

    app.post(
        "/api/v1/admin/organizations/bulk",
        &root,
        json!({"action": "explode", "selection": {"mode": "ids", "ids": ["x"]}}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/admin/organizations/bulk",
        &root,
        json!({"action": "suspend", "selection": {"mode": "ids"}}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/admin/organizations/bulk",
        &root,
        json!({"action": "suspend", "selection": {"mode": "filter"}}),
    )
    .await
    .expect(422);
}

#[tokio::test]
async fn platform_stats_count_what_exists() {
    let app = TestApp::spawn().await;
    let root = app.super_admin().await;
    let a = app.register_org("Stats A").await;
    app.create_user(&a, "AGENT").await;
    app.register_org("Stats B").await;
    app.create_key(&a, &["admin"]).await;
    let r = app.get("/api/v1/admin/stats", &root).await.expect(200);
    assert_eq!(r.data()["organizations"], 2);
    assert_eq!(r.data()["activeOrganizations"], 2);
    assert_eq!(r.data()["users"], 3);
    assert_eq!(r.data()["admins"], 2);
    assert_eq!(r.data()["agents"], 1);
    assert_eq!(r.data()["apiKeys"], 1);
}

#[tokio::test]
async fn only_super_admins_reach_the_admin_routes() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Not Root").await;
    let key = app.create_key(&admin, &["admin"]).await;
    let org = admin.org_id;
    for token in [&admin.token, &key] {
        app.get("/api/v1/admin/organizations", token)
            .await
            .expect(403);
        app.get("/api/v1/admin/stats", token).await.expect(403);
        app.get(&format!("/api/v1/admin/organizations/{org}"), token)
            .await
            .expect(403);
        app.get(&format!("/api/v1/admin/organizations/{org}/users"), token)
            .await
            .expect(403);
        app.patch(
            &format!("/api/v1/admin/organizations/{org}"),
            token,
            json!({"status": "ACTIVE"}),
        )
        .await
        .expect(403);
        app.post(
            "/api/v1/admin/organizations",
            token,
            json!({"name": "N", "slug": "nn", "adminEmail": "a@b.co", "adminName": "A"}),
        )
        .await
        .expect(403);
        app.post(
            "/api/v1/admin/organizations/bulk",
            token,
            json!({"action": "suspend", "selection": {"mode": "ids", "ids": [org.to_string()]}}),
        )
        .await
        .expect(403);
    }
    // A super admin has no tenant of its own to act on.
    let root = app.super_admin().await;
    let r = app.get("/api/v1/users", &root).await.expect(403);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("admin/organizations"));
}
