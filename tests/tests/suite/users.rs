//! `/users`: admins manage the team, roles limit who may do what, and another tenant's users
//! are invisible.

use serde_json::json;
use wharf_tests::{TestApp, PASSWORD};

#[tokio::test]
async fn admin_creates_lists_updates_and_soft_deletes_users() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Team Co").await;
    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "Sam@Team.example.com", "name": "Sam", "role": "SUPERVISOR", "password": PASSWORD}),
        )
        .await
        .expect(201);
    let sam = r.data()["id"].as_str().unwrap().to_string();
    assert_eq!(r.data()["email"], "sam@team.example.com");
    assert_eq!(r.data()["role"], "SUPERVISOR");
    assert_eq!(r.data()["status"], "OFFLINE");

    let list = app.get("/api/v1/users", &admin.token).await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 2);
    let list = app
        .get("/api/v1/users?search=sam&limit=1", &admin.token)
        .await
        .expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    assert_eq!(list.body["data"][0]["id"], sam);
    let list = app
        .get("/api/v1/users?role=ADMIN", &admin.token)
        .await
        .expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);

    let r = app
        .patch(
            &format!("/api/v1/users/{sam}"),
            &admin.token,
            json!({"name": "Samuel", "role": "AGENT"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["name"], "Samuel");
    assert_eq!(r.data()["role"], "AGENT");

    app.delete(&format!("/api/v1/users/{sam}"), &admin.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/users/{sam}"), &admin.token)
        .await
        .expect(404);
    let list = app.get("/api/v1/users", &admin.token).await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    // Soft delete: the row stays, the login stops working, the email is free again.
    let deleted: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM users WHERE id = $1::uuid")
            .bind(&sam)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(deleted);
    app.post_anon(
        "/api/v1/auth/login",
        json!({"email": "sam@team.example.com", "password": PASSWORD}),
    )
    .await
    .expect(401);
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": "sam@team.example.com", "name": "Sam again"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn user_input_errors_are_422_and_409() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Valid Co").await;
    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "x", "name": ""}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"].as_array().unwrap().len(), 2);
    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "a@b.co", "name": "A", "role": "OWNER"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "enum");
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": "a@b.co", "name": "A", "role": "SUPER_ADMIN"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": admin.email, "name": "Dup"}),
    )
    .await
    .expect(409);
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": "p@b.co", "name": "P", "password": "abc"}),
    )
    .await
    .expect(422);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "rejected requests stored nothing");
}

#[tokio::test]
async fn roles_limit_user_management() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Roles Co").await;
    let (agent_id, agent) = app.create_user(&admin, "AGENT").await;
    let (supervisor_id, supervisor) = app.create_user(&admin, "SUPERVISOR").await;

    // Everyone sees the team.
    app.get("/api/v1/users", &agent).await.expect(200);
    // Only admins change it.
    for token in [&agent, &supervisor] {
        app.post(
            "/api/v1/users",
            token,
            json!({"email": "z@z.co", "name": "Z"}),
        )
        .await
        .expect(403);
        app.patch(
            &format!("/api/v1/users/{agent_id}"),
            token,
            json!({"name": "N"}),
        )
        .await
        .expect(403);
        app.delete(&format!("/api/v1/users/{agent_id}"), token)
            .await
            .expect(403);
    }
    // Agents set their own status only; supervisors anyone's.
    let r = app
        .patch(
            &format!("/api/v1/users/{agent_id}/status"),
            &agent,
            json!({"status": "ONLINE"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["status"], "ONLINE");
    app.patch(
        &format!("/api/v1/users/{supervisor_id}/status"),
        &agent,
        json!({"status": "AWAY"}),
    )
    .await
    .expect(403);
    let r = app
        .patch(
            &format!("/api/v1/users/{agent_id}/status"),
            &supervisor,
            json!({"status": "AWAY"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["status"], "AWAY");
    app.patch(
        &format!("/api/v1/users/{agent_id}/status"),
        &agent,
        json!({"status": "BUSY"}),
    )
    .await
    .expect(422);
    app.patch(
        &format!("/api/v1/users/{agent_id}/status"),
        &agent,
        json!({}),
    )
    .await
    .expect(422);
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_and_admins_cannot_delete_themselves() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Last Co").await;
    app.delete(&format!("/api/v1/users/{}", admin.user_id), &admin.token)
        .await
        .expect(409);
    app.patch(
        &format!("/api/v1/users/{}", admin.user_id),
        &admin.token,
        json!({"role": "AGENT"}),
    )
    .await
    .expect(409);
    app.patch(
        &format!("/api/v1/users/{}", admin.user_id),
        &admin.token,
        json!({"isActive": false}),
    )
    .await
    .expect(409);
    let (second_admin, _) = app.create_user(&admin, "ADMIN").await;
    app.patch(
        &format!("/api/v1/users/{}", admin.user_id),
        &admin.token,
        json!({"role": "SUPERVISOR"}),
    )
    .await
    .expect(200);
    // Now an admin no longer: the same token lost admin rights at once.
    app.delete(&format!("/api/v1/users/{second_admin}"), &admin.token)
        .await
        .expect(403);
}

#[tokio::test]
async fn deactivated_users_lose_access_immediately() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Deact Co").await;
    let (agent_id, agent) = app.create_user(&admin, "AGENT").await;
    app.get("/api/v1/auth/me", &agent).await.expect(200);
    app.patch(
        &format!("/api/v1/users/{agent_id}"),
        &admin.token,
        json!({"isActive": false}),
    )
    .await
    .expect(200);
    app.get("/api/v1/auth/me", &agent).await.expect(401);
}

#[tokio::test]
async fn another_tenants_users_are_invisible() {
    let app = TestApp::spawn().await;
    let a = app.register_org("Tenant A").await;
    let b = app.register_org("Tenant B").await;
    let (a_agent, _) = app.create_user(&a, "AGENT").await;
    let path = format!("/api/v1/users/{a_agent}");
    app.get(&path, &b.token).await.expect(404);
    app.patch(&path, &b.token, json!({"name": "Hacked"}))
        .await
        .expect(404);
    app.delete(&path, &b.token).await.expect(404);
    app.patch(
        &format!("{path}/status"),
        &b.token,
        json!({"status": "ONLINE"}),
    )
    .await
    .expect(404);
    let list = app.get("/api/v1/users", &b.token).await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    assert!(list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["orgId"] == b.org_id.to_string()));
    // Untouched.
    let r = app.get(&path, &a.token).await.expect(200);
    assert_eq!(r.data()["name"], "A AGENT");
    assert_eq!(r.data()["status"], "OFFLINE");
}

#[tokio::test]
async fn api_keys_reach_users_only_with_the_admin_scope() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("Scope Users Co").await;
    let read_key = app
        .create_key(&admin, &["whatsapp:read", "whatsapp:send"])
        .await;
    let admin_key = app.create_key(&admin, &["admin"]).await;
    let r = app.get("/api/v1/users", &read_key).await.expect(403);
    assert!(r.body["detail"].as_str().unwrap().contains("admin"));
    app.post(
        "/api/v1/users",
        &read_key,
        json!({"email": "k@k.co", "name": "K"}),
    )
    .await
    .expect(403);
    app.get("/api/v1/users", &admin_key).await.expect(200);
    app.post(
        "/api/v1/users",
        &admin_key,
        json!({"email": "k@k.co", "name": "K"}),
    )
    .await
    .expect(201);
}
