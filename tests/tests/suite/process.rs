//! The `api` binary as an operator runs it: start-up configuration, the super admin
//! bootstrap, `create-super-admin`, `migrate`, and logs that never carry secrets.

use std::{
    io::Write,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use wharf_tests::{TestDb, PASSWORD};

const API_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-api");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    base: String,
}

impl Running {
    fn start(db: &TestDb, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(API_BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start api binary");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client
                .get(format!("{}/api/v1/health", self.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("api did not become healthy");
    }

    /// Stops the process and returns everything it logged.
    fn stop(mut self) -> String {
        unsafe_free_kill(&mut self.child);
        let out = self.child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn unsafe_free_kill(child: &mut Child) {
    // SIGTERM through the kill command: graceful shutdown path, no libc needed.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..100 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn logs_never_contain_passwords_tokens_or_keys() {
    let db = TestDb::new().await;
    let root_password = "Root-pass-31337";
    let jwt_secret = "jwt-secret-that-must-not-leak-0123456789";
    let api = Running::start(
        &db,
        &[
            ("SUPER_ADMIN_EMAIL", "root@example.com"),
            ("SUPER_ADMIN_PASSWORD", root_password),
            ("JWT_SECRET", jwt_secret),
        ],
    );
    api.wait_ready().await;
    let c = reqwest::Client::new();
    let b = &api.base;
    let reg = call(&c, reqwest::Method::POST, format!("{b}/api/v1/auth/register"), None,
        Some(json!({"companyName": "Leak Check", "name": "L", "email": "l@leak.example.com", "password": PASSWORD}))).await;
    let access = reg["data"]["accessToken"].as_str().unwrap().to_string();
    let refresh = reg["data"]["refreshToken"].as_str().unwrap().to_string();
    let wrong = "Wrong-password-777";
    call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/auth/login"),
        None,
        Some(json!({"email": "l@leak.example.com", "password": wrong})),
    )
    .await;
    let rotated = call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/auth/refresh"),
        None,
        Some(json!({"refreshToken": refresh})),
    )
    .await;
    let refresh2 = rotated["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    // Replay: logged as a warning, without the token.
    call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/auth/refresh"),
        None,
        Some(json!({"refreshToken": refresh})),
    )
    .await;
    let key = call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/api-keys"),
        Some(&access),
        Some(json!({"name": "k", "scopes": ["admin"]})),
    )
    .await["data"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &c,
        reqwest::Method::GET,
        format!("{b}/api/v1/users"),
        Some(&key),
        None,
    )
    .await;
    call(
        &c,
        reqwest::Method::GET,
        format!("{b}/api/v1/users"),
        Some("cm_invalid_key_value_123"),
        None,
    )
    .await;
    let new_password = "Changed-pass-4242";
    call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/profile/change-password"),
        Some(&access),
        Some(json!({"currentPassword": PASSWORD, "newPassword": new_password})),
    )
    .await;
    let root = call(
        &c,
        reqwest::Method::POST,
        format!("{b}/api/v1/auth/login"),
        None,
        Some(json!({"email": "root@example.com", "password": root_password})),
    )
    .await;
    assert!(
        root["data"]["accessToken"].is_string(),
        "super admin from the environment can log in: {root}"
    );

    let logs = api.stop();
    assert!(
        logs.contains("\"level\""),
        "logs are JSON lines: {}",
        &logs[..logs.len().min(500)]
    );
    assert!(
        logs.contains("organization registered"),
        "the flow was logged"
    );
    for secret in [
        PASSWORD,
        wrong,
        new_password,
        root_password,
        jwt_secret,
        &access,
        &refresh,
        &refresh2,
        &key,
        "cm_invalid_key_value_123",
    ] {
        assert!(
            !logs.contains(secret),
            "a secret appeared in the logs: {secret}"
        );
    }
}

#[tokio::test]
async fn env_super_admin_is_created_once_and_never_overwritten() {
    let db = TestDb::new().await;
    let first = Running::start(
        &db,
        &[
            ("SUPER_ADMIN_EMAIL", "boss@example.com"),
            ("SUPER_ADMIN_PASSWORD", "First-pass-111"),
        ],
    );
    first.wait_ready().await;
    first.stop();
    let second = Running::start(
        &db,
        &[
            ("SUPER_ADMIN_EMAIL", "boss@example.com"),
            ("SUPER_ADMIN_PASSWORD", "Second-pass-222"),
        ],
    );
    second.wait_ready().await;
    let c = reqwest::Client::new();
    let ok = c
        .post(format!("{}/api/v1/auth/login", second.base))
        .json(&json!({"email": "boss@example.com", "password": "First-pass-111"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let overwritten = c
        .post(format!("{}/api/v1/auth/login", second.base))
        .json(&json!({"email": "boss@example.com", "password": "Second-pass-222"}))
        .send()
        .await
        .unwrap();
    assert_eq!(overwritten.status(), 401);
    second.stop();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'SUPER_ADMIN'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn create_super_admin_reads_the_password_from_stdin() {
    let db = TestDb::new().await;
    let run = |email: &str, password: &str| {
        let mut child = Command::new(API_BIN)
            .args(["create-super-admin", "--email", email])
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", "none")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("ops@example.com", "Ops-password-9");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created super admin ops@example.com"));
    let again = run("ops@example.com", "Other-password-9");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already exists"));
    let weak = run("weak@example.com", "weak");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8 characters"));
    let combined = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!combined.contains("Ops-password-9"));
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'ops@example.com'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"));
}

#[test]
fn production_mode_refuses_to_start_without_its_secrets() {
    let out = Command::new(API_BIN)
        .env_clear()
        .env("WHARF_ENV", "production")
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/never_created",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET must be set when WHARF_ENV=production"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_creates_the_database_and_applies_migrations() {
    let name = format!("wharf_migrate_{}", uuid::Uuid::new_v4().simple());
    let url = wharf_shared::testing::url_for(&name);
    let out = Command::new(API_BIN)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("REDIS_URL", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('organizations', 'users', 'api_keys', 'refresh_tokens')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 4);
    pool.close().await;
    let mut admin = sqlx::PgPool::connect(&wharf_shared::testing::server_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut *admin.acquire().await.unwrap())
        .await
        .unwrap();
    admin.close().await;
    let _ = &mut admin;
}
