//! One benchmark run's platform: a private database, the simulator, the api and worker
//! processes (the real release binaries), and a client that sets a tenant up through the public
//! API exactly as a user would (register, connect a number, sync a template, create a campaign).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

use crate::procs::{self, Proc};

/// Signs the platform app's webhooks (the simulator and the api share it).
pub const APP_SECRET: &str = "bench-app-secret-0123456789";

/// The Postgres server (its `postgres` database is used to create and drop run databases).
pub fn server_url() -> String {
    std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(db: &str) -> String {
    let server = server_url();
    match server.rfind('/') {
        Some(i) => format!("{}/{db}", &server[..i]),
        None => format!("{server}/{db}"),
    }
}

/// A database of its own for one run, dropped at the end.
pub struct RunDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl RunDb {
    pub async fn create(tag: &str) -> anyhow::Result<Self> {
        let name = format!(
            "wharf_bench_{tag}_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server_url())
            .await
            .context("connect to Postgres (is it running? ./dev services starts it)")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = url_for(&name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await?;
        wharf_shared::db::migrate(&pool).await?;
        Ok(Self { name, url, pool })
    }

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }

    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server_url())
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await;
        }
    }
}

/// Settings of a worker process for a scenario.
#[derive(Clone)]
pub struct WorkerSpec {
    pub lanes: &'static str,
    pub concurrency: String,
    pub pool_size: u32,
    pub fetch_batch: u32,
}

impl WorkerSpec {
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WORKER_LANES", self.lanes.to_string()),
            ("WORKER_CONCURRENCY", self.concurrency.clone()),
            ("WORKER_DB_POOL_SIZE", self.pool_size.to_string()),
            ("WORKER_FETCH_BATCH", self.fetch_batch.to_string()),
            ("WORKER_METRICS_ADDR", "none".to_string()),
            ("WORKER_SHUTDOWN_GRACE_SECS", "5".to_string()),
        ]
    }
}

/// The simulator, the api and the workers of one run.
pub struct Platform {
    pub db: RunDb,
    pub sim: Proc,
    pub sim_url: String,
    pub api: Proc,
    pub api_url: String,
    redis_prefix: String,
    pub http: reqwest::Client,
}

impl Platform {
    /// Starts the simulator and the api against a fresh database; workers start with
    /// [`Self::start_workers`] (so a scenario can measure from their first moment).
    pub async fn start(tag: &str, api_pool: u32) -> anyhow::Result<Self> {
        let db = RunDb::create(tag).await?;
        let sim_addr = format!("127.0.0.1:{}", procs::free_port());
        let sim = Proc::spawn(
            &format!("{tag}-sim"),
            "sim",
            &[("SIM_ADDR", sim_addr.clone())],
        )?;
        let sim_url = format!("http://{sim_addr}");
        let api_addr = format!("127.0.0.1:{}", procs::free_port());
        let api_url = format!("http://{api_addr}");
        let redis_prefix = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
        let api = Proc::spawn(
            &format!("{tag}-api"),
            "api",
            &[
                ("DATABASE_URL", db.url.clone()),
                ("DATABASE_POOL_SIZE", api_pool.to_string()),
                ("API_ADDR", api_addr),
                ("PUBLIC_URL", api_url.clone()),
                ("META_GRAPH_URL", sim_url.clone()),
                ("META_APP_SECRET", APP_SECRET.into()),
                ("REDIS_PREFIX", redis_prefix.clone()),
                ("ACCESS_TOKEN_TTL_SECS", "7200".into()),
                ("LLM_OPENAI_URL", sim_url.clone()),
            ],
        )?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()?;
        let p = Self {
            db,
            sim,
            sim_url,
            api,
            api_url,
            redis_prefix,
            http,
        };
        p.wait_ready().await?;
        Ok(p)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            self.sim.ensure_running()?;
            self.api.ensure_running()?;
            let sim_ok = self
                .http
                .get(format!("{}/_sim/health", self.sim_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let api_ok = self
                .http
                .get(format!("{}/api/v1/ready", self.api_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if sim_ok && api_ok {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("the simulator or the api did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `n` worker processes that share Meta's limits through Redis.
    pub fn start_workers(&self, n: usize, spec: &WorkerSpec) -> anyhow::Result<Workers> {
        let tag = self.api.name.trim_end_matches("-api");
        let procs = (1..=n)
            .map(|i| {
                let mut env = spec.env();
                env.extend([
                    ("DATABASE_URL", self.db.url.clone()),
                    ("META_GRAPH_URL", self.sim_url.clone()),
                    ("META_APP_SECRET", APP_SECRET.to_string()),
                    ("REDIS_PREFIX", self.redis_prefix.clone()),
                    ("WORKER_REPLICAS", n.to_string()),
                    // The model is the simulator; the organization's LLM budget is lifted so
                    // a scenario measures the platform, not the budget.
                    ("LLM_OPENAI_URL", self.sim_url.clone()),
                    ("LLM_REQUESTS_PER_MINUTE", "1000000".to_string()),
                    ("LLM_TOKENS_PER_MINUTE", "1000000000".to_string()),
                ]);
                Proc::spawn(&format!("{tag}-worker{i}"), "worker", &env)
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Workers { procs })
    }

    /// Fails if the simulator, the api or one of `workers` died.
    pub fn ensure_running(&self, workers: &Workers) -> anyhow::Result<()> {
        self.sim.ensure_running()?;
        self.api.ensure_running()?;
        workers.procs.iter().try_for_each(Proc::ensure_running)
    }

    /// CPU seconds so far: sim, api, workers (summed), Postgres, the load generator.
    pub fn cpu(&self, workers: &Workers) -> Cpu {
        Cpu {
            sim: self.sim.cpu_secs(),
            api: self.api.cpu_secs(),
            workers: workers.procs.iter().map(Proc::cpu_secs).sum(),
            postgres: procs::postgres_cpu_secs(),
            bench: procs::self_cpu_secs(),
        }
    }

    /// Peak RSS in MiB: sim, api, and the largest worker.
    pub fn peak_rss(&self, workers: &Workers) -> (f64, f64, f64) {
        (
            self.sim.peak_rss_mib(),
            self.api.peak_rss_mib(),
            workers
                .procs
                .iter()
                .map(Proc::peak_rss_mib)
                .fold(0.0, f64::max),
        )
    }

    pub async fn stop(mut self) {
        self.api.stop(Duration::from_secs(5));
        self.sim.stop(Duration::from_secs(5));
        self.db.drop_db().await;
    }

    // --- the simulator's control API ---

    pub async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.sim_url))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "simulator {path}: {status} {v}");
        Ok(v)
    }

    pub async fn sim_get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.sim_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Accepted sends and 130429 rejections the simulator counted for a number.
    pub async fn sim_stats(&self, number: &str) -> anyhow::Result<(u64, u64)> {
        let v = self
            .sim_get(&format!("/_sim/numbers/{number}/stats"))
            .await?;
        let stats = if v["stats"].is_object() {
            &v["stats"]
        } else {
            &v
        };
        Ok((
            stats["accepted"].as_u64().unwrap_or(0),
            stats["errors"]["130429"].as_u64().unwrap_or(0),
        ))
    }

    // --- the platform's public API ---

    pub async fn register(&self) -> anyhow::Result<Tenant> {
        let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
        let v = self
            .call(
                None,
                reqwest::Method::POST,
                "/auth/register",
                Some(
                    json!({"companyName": "Bench Co", "name": "Bea Bench", "email": email,
                            "password": "correct horse battery staple 42"}),
                ),
                201,
            )
            .await?;
        Ok(Tenant {
            token: v["data"]["accessToken"]
                .as_str()
                .context("accessToken")?
                .to_string(),
        })
    }

    /// A JSON call to `/api/v1{path}` that must answer `want`; returns the body.
    pub async fn call(
        &self,
        tenant: Option<&Tenant>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.api_url));
        if let Some(t) = tenant {
            req = req.bearer_auth(&t.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(
            status == want,
            "{method} {path}: {status} (wanted {want}) {v}"
        );
        Ok(v)
    }

    /// Creates a number in the simulator (sending at `mps`; `statuses` = whether it reports
    /// sent/delivered/read by webhook) and connects it through `connect-manual`; the platform's
    /// send rate for it is set to `platform_mps`.
    pub async fn connect_number(
        &self,
        tenant: &Tenant,
        mps: f64,
        platform_mps: u32,
        statuses: bool,
    ) -> anyhow::Result<Number> {
        let suffix = &Uuid::new_v4().as_u128().to_string()[..12];
        let waba_id = format!("1{suffix}");
        let phone_number_id = format!("2{suffix}");
        let webhook =
            json!({"url": format!("{}/webhooks/whatsapp", self.api_url), "app_secret": APP_SECRET});
        self.sim_post(
            "/_sim/wabas",
            json!({"id": waba_id, "webhook": webhook, "management_budget": 1_000_000}),
        )
        .await?;
        let plan = if statuses {
            Value::Null
        } else {
            json!({"sent_ms": null, "delivered_ms": null, "read_ms": null})
        };
        let mut spec = json!({"id": phone_number_id, "waba_id": waba_id,
                              "display_phone_number": format!("1555{}", &suffix[..7]),
                              "mps": mps});
        if !plan.is_null() {
            spec["status_plan"] = plan;
        }
        self.sim_post("/_sim/numbers", spec).await?;
        let token = self
            .sim_post("/_sim/tokens", json!({"wabas": [waba_id]}))
            .await?["token"]
            .as_str()
            .context("token")?
            .to_string();
        let v = self
            .call(
                Some(tenant),
                reqwest::Method::POST,
                "/whatsapp-accounts/connect-manual",
                Some(json!({"wabaId": waba_id, "phoneNumberId": phone_number_id, "accessToken": token})),
                201,
            )
            .await?;
        let account_id = v["data"]["id"].as_str().context("account id")?.to_string();
        self.call(
            Some(tenant),
            reqwest::Method::PATCH,
            &format!("/whatsapp-accounts/{account_id}"),
            Some(json!({"messagesPerSecond": platform_mps})),
            200,
        )
        .await?;
        Ok(Number {
            account_id,
            waba_id,
            phone_number_id,
        })
    }

    /// An approved template `promo` ("Hi {{1}}, your code is {{2}}") at Meta, synced into the
    /// platform; returns its local id.
    pub async fn approved_template(
        &self,
        tenant: &Tenant,
        number: &Number,
    ) -> anyhow::Result<String> {
        self.sim_post(
            &format!("/_sim/wabas/{}/templates", number.waba_id),
            json!({"name": "promo", "category": "UTILITY", "status": "APPROVED",
                   "components": [{"type": "BODY", "text": "Hi {{1}}, your code is {{2}}",
                                   "example": {"body_text": [["Ana", "42"]]}}]}),
        )
        .await?;
        self.call(
            Some(tenant),
            reqwest::Method::POST,
            "/templates/sync",
            None,
            202,
        )
        .await?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self
                .call(
                    Some(tenant),
                    reqwest::Method::GET,
                    "/templates?status=all",
                    None,
                    200,
                )
                .await?;
            let found = v["data"].as_array().into_iter().flatten().find(|t| {
                t["name"] == "promo"
                    && t["status"] == "APPROVED"
                    && t["accountId"].as_str() == Some(number.account_id.as_str())
            });
            if let Some(t) = found {
                return Ok(t["id"].as_str().context("template id")?.to_string());
            }
            ensure!(Instant::now() < until, "template sync did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a campaign of `n` recipients (JSON body); returns its id and the seconds the
    /// request took.
    pub async fn create_campaign(
        &self,
        tenant: &Tenant,
        template_id: &str,
        n: usize,
        first_phone: u64,
    ) -> anyhow::Result<(String, f64)> {
        let recipients: Vec<Value> = (0..n as u64)
            .map(|i| json!({"phone": format!("+1{}", first_phone + i), "1": format!("C{i}"), "2": i.to_string()}))
            .collect();
        let body = json!({"name": "Bench", "templateId": template_id, "recipients": recipients});
        let started = Instant::now();
        let v = self
            .call(
                Some(tenant),
                reqwest::Method::POST,
                "/campaigns",
                Some(body),
                201,
            )
            .await?;
        let took = started.elapsed().as_secs_f64();
        let id = v["data"]["id"].as_str().context("campaign id")?.to_string();
        Ok((id, took))
    }

    pub async fn launch(&self, tenant: &Tenant, campaign_id: &str) -> anyhow::Result<()> {
        self.call(
            Some(tenant),
            reqwest::Method::POST,
            &format!("/campaigns/{campaign_id}/launch"),
            Some(json!({})),
            200,
        )
        .await
        .map(|_| ())
    }

    pub async fn cancel(&self, tenant: &Tenant, campaign_id: &str) -> anyhow::Result<()> {
        self.call(
            Some(tenant),
            reqwest::Method::POST,
            &format!("/campaigns/{campaign_id}/cancel"),
            Some(json!({})),
            200,
        )
        .await
        .map(|_| ())
    }

    /// Messages of a campaign that Meta accepted (they carry a wamid and `sent_at`).
    pub async fn campaign_sent(&self, campaign_id: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE campaign_id = $1::uuid AND wamid IS NOT NULL",
        )
        .bind(campaign_id)
        .fetch_one(&self.db.pool)
        .await?)
    }
}

impl Platform {
    /// Messages of a campaign whose `read` status webhook has been processed.
    pub async fn campaign_read(&self, campaign_id: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE campaign_id = $1::uuid AND read_at IS NOT NULL",
        )
        .bind(campaign_id)
        .fetch_one(&self.db.pool)
        .await?)
    }
}

/// The worker processes of a run.
pub struct Workers {
    procs: Vec<Proc>,
}

impl Workers {
    /// No worker (scenarios that measure the api alone).
    pub fn none() -> Self {
        Self { procs: Vec::new() }
    }

    /// SIGTERM each (in-flight jobs finish), SIGKILL after 10 s.
    pub fn stop(mut self) {
        for w in &mut self.procs {
            w.stop(Duration::from_secs(10));
        }
    }
}

/// A registered organization (its admin's access token).
pub struct Tenant {
    pub token: String,
}

/// A number connected in the simulator and the platform.
pub struct Number {
    pub account_id: String,
    pub waba_id: String,
    pub phone_number_id: String,
}

/// CPU seconds per component.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub sim: f64,
    pub api: f64,
    pub workers: f64,
    pub postgres: f64,
    pub bench: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            sim: self.sim - o.sim,
            api: self.api - o.api,
            workers: self.workers - o.workers,
            postgres: self.postgres - o.postgres,
            bench: self.bench - o.bench,
        }
    }
}

/// `X-Hub-Signature-256` of a webhook body, as Meta signs it with the app secret.
pub fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A `messages` webhook in which customer `from` writes `text` to the number.
pub fn text_webhook(
    number_id: &str,
    waba_id: &str,
    from: &str,
    wamid: &str,
    text: &str,
) -> Vec<u8> {
    let message = json!({"from": from, "id": wamid, "timestamp": "1750030073",
                         "type": "text", "text": {"body": text}});
    let value = json!({"messaging_product": "whatsapp",
                       "metadata": {"display_phone_number": "15550000000", "phone_number_id": number_id},
                       "contacts": [{"wa_id": from, "profile": {"name": "Customer"}}],
                       "messages": [message]});
    serde_json::to_vec(&json!({"object": "whatsapp_business_account",
                               "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}]}))
    .expect("json")
}
