//! Test harness shared by the end-to-end tests: a private database per test, the API started
//! in-process on port 0, and HTTP helpers that return what a client would see.

pub mod platform;

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
pub use wharf_shared::testing::TestDb;
use wharf_shared::Config;

/// Held by tests that run worker processes or measure rates, so no two of them compete for the
/// machine's two cores at once (the suite is one binary, so this one lock covers all of them).
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running API with its own database.
pub struct TestApp {
    pub base_url: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub config: Config,
    shutdown: CancellationToken,
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// `body.data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// Credentials of a registered organization's first admin.
#[derive(Debug, Clone)]
pub struct OrgAdmin {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "Sup3r-secret-pass";

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the API with extra environment-style settings (`("LOGIN_ATTEMPTS_PER_EMAIL_PER_MINUTE", "3")`).
    pub async fn spawn_with(settings: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), db.url.clone()),
            (
                "REDIS_PREFIX".into(),
                format!("test-{}", Uuid::new_v4().simple()),
            ),
            ("API_ADDR".into(), "127.0.0.1:0".into()),
            // Tests run in parallel against one Postgres (max_connections 100 by default).
            ("DATABASE_POOL_SIZE".into(), "8".into()),
        ]);
        for (k, v) in settings {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let state = wharf_api::build_state(config.clone())
            .await
            .expect("api state");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(wharf_api::serve(listener, state, shutdown.clone()));
        Self {
            base_url,
            db,
            client: reqwest::Client::new(),
            config,
            shutdown,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base_url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request reaches the test server");
        Self::read(res).await
    }

    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn post_anon(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, None, Some(body)).await
    }

    /// Sends a raw body with a content type, for malformed-input tests.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Resp {
        let mut req = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Registers a new organization and returns its admin's session.
    pub async fn register_org(&self, company: &str) -> OrgAdmin {
        let email = format!(
            "admin-{}@{}.example.com",
            Uuid::new_v4().simple(),
            company.to_lowercase().replace(' ', "-")
        );
        let resp = self
            .post_anon(
                "/api/v1/auth/register",
                json!({"companyName": company, "name": "Ada Admin", "email": email, "password": PASSWORD}),
            )
            .await
            .expect(201);
        let d = resp.data();
        OrgAdmin {
            org_id: d["organization"]["id"].as_str().unwrap().parse().unwrap(),
            user_id: d["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            password: PASSWORD.into(),
            token: d["accessToken"].as_str().unwrap().into(),
            refresh_token: d["refreshToken"].as_str().unwrap().into(),
        }
    }

    /// Creates a user with `role` in the admin's organization and logs them in.
    pub async fn create_user(&self, admin: &OrgAdmin, role: &str) -> (Uuid, String) {
        let email = format!(
            "{}-{}@example.com",
            role.to_lowercase(),
            Uuid::new_v4().simple()
        );
        let resp = self
            .post(
                "/api/v1/users",
                &admin.token,
                json!({"email": email, "name": format!("A {role}"), "role": role, "password": PASSWORD}),
            )
            .await
            .expect(201);
        let id = resp.data()["id"].as_str().unwrap().parse().unwrap();
        (id, self.login(&email, PASSWORD).await)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .post_anon(
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await
            .expect(200);
        resp.data()["accessToken"].as_str().unwrap().to_string()
    }

    /// Creates an API key with `scopes` and returns the full key.
    pub async fn create_key(&self, admin: &OrgAdmin, scopes: &[&str]) -> String {
        let resp = self
            .post(
                "/api/v1/api-keys",
                &admin.token,
                json!({"name": "test key", "scopes": scopes}),
            )
            .await
            .expect(201);
        resp.data()["key"].as_str().unwrap().to_string()
    }

    /// Creates a super admin directly (as `api create-super-admin` does) and logs in.
    pub async fn super_admin(&self) -> String {
        let email = format!("root-{}@example.com", Uuid::new_v4().simple());
        wharf_api::bootstrap::create_super_admin(&self.db.pool, &email, PASSWORD)
            .await
            .unwrap();
        self.login(&email, PASSWORD).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The job runtime against the app's database, for tests of job operations.
impl TestApp {
    /// A worker running the built-in job kinds (`diag.*`, maintenance) on this app's
    /// database, polling every 50 ms; cancel the token to stop it.
    pub fn start_builtin_worker(&self) -> CancellationToken {
        let settings = [
            ("WORKER_POLL_MS", "50"),
            ("WORKER_METRICS_ADDR", "none"),
            ("WORKER_SHUTDOWN_GRACE_SECS", "1"),
        ];
        let config = wharf_worker::WorkerConfig::from_lookup(self.db.url.clone(), |k| {
            settings
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .expect("worker config");
        let registry = wharf_worker::jobs::registry(&config);
        let stop = CancellationToken::new();
        tokio::spawn(wharf_worker::run_with_registry(
            config,
            registry,
            stop.clone(),
        ));
        stop
    }

    /// A job's state as stored.
    pub async fn job_state(&self, id: i64) -> String {
        sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await
            .expect("job exists")
    }
}

/// Multipart uploads and raw downloads, for routes that take or answer files.
impl TestApp {
    /// Posts `form` as `multipart/form-data` with the bearer `token`.
    pub async fn post_multipart(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> Resp {
        let res = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("request reaches the test server");
        Self::read(res).await
    }

    /// GETs `path` and returns the status, headers and the body's bytes as they came.
    pub async fn get_bytes(
        &self,
        path: &str,
        token: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let res = self
            .client
            .get(format!("{}{}", self.base_url, path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request reaches the test server");
        let (status, headers) = (res.status(), res.headers().clone());
        (
            status,
            headers,
            res.bytes().await.unwrap_or_default().to_vec(),
        )
    }
}
