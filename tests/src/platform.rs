//! The whole platform in one test: the simulator (Meta), the API and a worker, all in-process
//! and talking over real HTTP. The simulator plays the customer and signs its webhooks; the
//! API ingests them; the worker processes them and downloads media from the simulator.

use std::{
    future::Future,
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wharf_shared::{crypto::SecretBox, inbox::jobs::set_media_retry_base};
use wharf_sim::{
    InboundResult, InboundSpec, NumberSpec, ReceivedFilter, SimHandle, TokenSpec, WabaSpec,
    WebhookTarget,
};
use wharf_worker::{jobs::register_domain, Registry, WorkerConfig, WorkerDeps};

use crate::{Resp, TestApp};

/// The simulator, the API (pointed at it) and optionally a worker.
pub struct Platform {
    pub app: TestApp,
    pub sim: SimHandle,
    pub blob_dir: PathBuf,
    worker: Option<CancellationToken>,
}

/// A number connected in the simulator and in the platform.
#[derive(Debug, Clone)]
pub struct Number {
    pub account_id: Uuid,
    pub org_id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone: String,
    pub token: String,
}

fn digits(n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rand_digit())).collect()
}

fn rand_digit() -> u8 {
    (Uuid::new_v4().as_u128() % 10) as u8
}

impl Platform {
    /// Simulator + API + worker.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Simulator + API (with extra settings, e.g. `("META_TIMEOUT_MS", "1000")`) + worker.
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let mut p = Self::start_without_worker_with(settings).await;
        p.start_worker();
        p
    }

    /// Simulator + API; no job runs until [`Self::start_worker`].
    pub async fn start_without_worker() -> Self {
        Self::start_without_worker_with(&[]).await
    }

    /// Simulator + API with extra settings; no job runs until [`Self::start_worker`].
    pub async fn start_without_worker_with(settings: &[(&str, &str)]) -> Self {
        // Media retries in tens of milliseconds, not seconds.
        set_media_retry_base(Duration::from_millis(40));
        let sim = wharf_sim::spawn(wharf_sim::SimConfig {
            webhook_retry_base: Duration::from_millis(100),
            ..Default::default()
        })
        .await
        .expect("simulator starts");
        sim.state()
            .update_settings(|s| s.webhook_retry_base_ms = 100);
        let blob_dir =
            std::env::temp_dir().join(format!("wharf-blobs-{}", Uuid::new_v4().simple()));
        let graph = sim.base_url();
        let blobs = blob_dir.to_string_lossy().to_string();
        // Meta and every LLM provider are the simulator: a test never reaches the internet.
        let llm = llm_settings(&graph);
        let mut all = vec![
            ("META_GRAPH_URL", graph.as_str()),
            ("BLOB_DIR", blobs.as_str()),
        ];
        all.extend(llm.iter().map(|(k, v)| (*k, v.as_str())));
        all.extend_from_slice(settings);
        let app = TestApp::spawn_with(&all).await;
        Self {
            app,
            sim,
            blob_dir,
            worker: None,
        }
    }

    /// Starts a worker running the inbox kinds against this platform's database.
    pub fn start_worker(&mut self) {
        if self.worker.is_some() {
            return;
        }
        let settings = [
            ("WORKER_POLL_MS", "50"),
            ("WORKER_METRICS_ADDR", "none"),
            ("WORKER_SHUTDOWN_GRACE_SECS", "1"),
            ("WORKER_DB_POOL_SIZE", "4"),
            ("WORKER_RESCUE_INTERVAL_SECS", "1"),
        ];
        let config = WorkerConfig::from_lookup(self.app.db.url.clone(), |k| {
            settings
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
        .expect("worker config");
        let mut registry = Registry::new();
        register_domain(&mut registry, WorkerDeps::from_config(&self.app.config));
        let stop = CancellationToken::new();
        tokio::spawn(wharf_worker::run_with_registry(
            config,
            registry,
            stop.clone(),
        ));
        self.worker = Some(stop);
    }

    pub fn secrets(&self) -> SecretBox {
        SecretBox::new(self.app.config.secret_key.expose())
    }

    /// The platform app's secret (signs `/webhooks/whatsapp`).
    pub fn app_secret(&self) -> String {
        self.app.config.meta_app_secret.expose().clone()
    }

    /// Connects a number whose webhooks go to the platform endpoint (`/webhooks/whatsapp`).
    pub async fn connect_number(&self, org_id: Uuid) -> Number {
        let url = format!("{}/webhooks/whatsapp", self.app.base_url);
        self.connect(org_id, None, None, |_| url.clone()).await
    }

    /// Connects a number as a channel with its own app secret and verify token; its webhooks
    /// go to `/webhooks/whatsapp/{account_id}`.
    pub async fn connect_channel(
        &self,
        org_id: Uuid,
        app_secret: &str,
        verify_token: &str,
    ) -> Number {
        let base = self.app.base_url.clone();
        self.connect(org_id, Some(app_secret), Some(verify_token), |id| {
            format!("{base}/webhooks/whatsapp/{id}")
        })
        .await
    }

    async fn connect(
        &self,
        org_id: Uuid,
        app_secret: Option<&str>,
        verify_token: Option<&str>,
        url: impl Fn(Uuid) -> String,
    ) -> Number {
        let sim = self.sim.state();
        let waba_id = format!("1{}", digits(14));
        let phone_number_id = format!("2{}", digits(14));
        let display_phone = format!("1555{}", digits(7));
        let token = sim.create_token(TokenSpec::default());
        let secrets = self.secrets();
        let account_id: Uuid = sqlx::query_scalar(
            "INSERT INTO whatsapp_accounts (org_id, waba_id, phone_number_id, display_phone, access_token_enc,
                                            app_secret_enc, verify_token_enc)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(org_id)
        .bind(&waba_id)
        .bind(&phone_number_id)
        .bind(&display_phone)
        .bind(secrets.encrypt(&token))
        .bind(app_secret.map(|s| secrets.encrypt(s)))
        .bind(verify_token.map(|s| secrets.encrypt(s)))
        .fetch_one(&self.app.db.pool)
        .await
        .expect("insert whatsapp account");
        let target = WebhookTarget {
            url: url(account_id),
            app_secret: app_secret
                .map(str::to_string)
                .unwrap_or_else(|| self.app_secret()),
        };
        sim.create_waba(WabaSpec {
            id: Some(waba_id.clone()),
            webhook: Some(target),
            ..Default::default()
        })
        .expect("sim waba");
        sim.create_number(NumberSpec {
            id: Some(phone_number_id.clone()),
            waba_id: waba_id.clone(),
            display_phone_number: Some(display_phone.clone()),
            ..Default::default()
        })
        .expect("sim number");
        Number {
            account_id,
            org_id,
            waba_id,
            phone_number_id,
            display_phone,
            token,
        }
    }

    /// The customer `spec.from` sends a message (the simulator's inbound spec, as JSON).
    pub fn customer_sends(&self, number: &Number, spec: Value) -> InboundResult {
        let spec: InboundSpec = serde_json::from_value(spec).expect("valid inbound spec");
        self.sim
            .state()
            .inbound(&number.phone_number_id, spec)
            .expect("simulated inbound message")
    }

    /// POSTs a webhook body signed with `secret` to `path`.
    pub async fn post_signed(&self, path: &str, secret: &str, body: &[u8]) -> Resp {
        let res = self
            .app
            .client
            .post(format!("{}{}", self.app.base_url, path))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                wharf_sim::webhooks::sign(secret, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        TestApp::read(res).await
    }

    /// How many messages of `kind` (`text`, `template`, ...) Meta accepted for `to`.
    pub fn accepted_to(&self, to: &str, kind: &str) -> usize {
        self.sim
            .state()
            .received(&ReceivedFilter {
                to: Some(to.into()),
                accepted: Some(true),
                ..Default::default()
            })
            .iter()
            .filter(|r| r.kind == kind)
            .count()
    }

    /// `SELECT count(*) ...` on the platform database.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.db.pool)
            .await
            .expect(sql)
    }

    /// Waits until every stored webhook event has been processed (or gave up as malformed).
    pub async fn events_settled(&self) {
        wait_for("webhook events processed", || async {
            self.count(
                "SELECT count(*) FROM webhook_events e WHERE processed_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.payload->>'event_id' = e.id::text AND j.state = 'dead')",
            )
            .await
                == 0
        })
        .await;
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(stop) = self.worker.take() {
            stop.cancel();
        }
        let _ = std::fs::remove_dir_all(&self.blob_dir);
    }
}

/// Polls `check` every 25 ms for up to 20 s; panics with `what` on time-out.
pub async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `messages` webhook body as Meta sends it, for hand-made events.
pub fn messages_webhook(number: &Number, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": number.display_phone, "phone_number_id": number.phone_number_id});
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": number.waba_id, "changes": [{"field": "messages", "value": value}]}]
    })
}

/// A simulator fault answering with Meta's error `code` (Meta's status, title and details).
pub fn meta_error(code: u32) -> wharf_sim::FaultAction {
    wharf_sim::FaultAction::MetaError {
        code,
        subcode: None,
        title: None,
        details: None,
        http_status: None,
        is_async: false,
    }
}

/// Settings pointing every hosted LLM provider at the simulator (`sim_base`, e.g.
/// `SimHandle::base_url()`), for `TestApp::spawn_with` / `Platform::start_with` or
/// `Config::from_lookup`. A LOCAL bot config's base is `{sim_base}/v1`.
pub fn llm_settings(sim_base: &str) -> Vec<(&'static str, String)> {
    [
        "LLM_OPENAI_URL",
        "LLM_ANTHROPIC_URL",
        "LLM_GOOGLE_URL",
        "LLM_DEEPSEEK_URL",
        "LLM_KIMI_URL",
    ]
    .into_iter()
    .map(|name| (name, sim_base.to_string()))
    .collect()
}

/// Campaign fixtures shared by the campaign tests of both dialects and the console.
impl Platform {
    /// Limits `number` to `mps` messages per second, at the simulator (Meta's throughput) and
    /// in the platform (the number's send rate).
    pub async fn set_send_rate(&self, number: &Number, mps: u32) {
        self.sim
            .state()
            .set_throughput(&number.phone_number_id, None, Some(f64::from(mps)), None)
            .unwrap();
        sqlx::query("UPDATE whatsapp_accounts SET messages_per_second = $2 WHERE id = $1")
            .bind(number.account_id)
            .bind(mps as i32)
            .execute(&self.app.db.pool)
            .await
            .unwrap();
    }

    /// An approved utility template "promo" ("Hi {{1}}, your code is {{2}}") on `number`,
    /// known to the simulator and the platform: (the platform's id, the simulator's id).
    pub async fn approved_promo(&self, number: &Number) -> (Uuid, String) {
        let components = json!([{"type": "BODY", "text": "Hi {{1}}, your code is {{2}}",
                                 "example": {"body_text": [["Ana", "42"]]}}]);
        let sim_id = self
            .sim
            .state()
            .seed_template(
                &number.waba_id,
                wharf_sim::TemplateSpec {
                    name: "promo".into(),
                    components: Some(components.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        let id = sqlx::query_scalar(
            "INSERT INTO message_templates (org_id, account_id, waba_id, meta_template_id, name, language, category, status,
                                            parameter_format, components)
             VALUES ($1, $2, $3, $4, 'promo', 'en_US', 'UTILITY', 'APPROVED', 'POSITIONAL', $5) RETURNING id",
        )
        .bind(number.org_id)
        .bind(number.account_id)
        .bind(&number.waba_id)
        .bind(&sim_id)
        .bind(&components)
        .fetch_one(&self.app.db.pool)
        .await
        .unwrap();
        (id, sim_id)
    }
}
