//! Sending at Meta's limits with real worker processes: two workers share one number's 80/s
//! without a single 130429, three numbers go at once, one recipient never trips the pair limit,
//! Redis dying mid-run loses nothing, and a worker killed mid-burst sends nothing twice.
//!
//! The heavy tests take a lock so their rate measurements do not compete for the two cores.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;
use wharf_sim::{ReceivedFilter, TemplateSpec};
use wharf_tests::{
    platform::{Number, Platform},
    OrgAdmin,
};

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-worker");

struct Run {
    p: Platform,
    admin: OrgAdmin,
    workers: Vec<Child>,
    redis_url: Option<String>,
}

impl Run {
    async fn new() -> Self {
        let p = Platform::start_without_worker().await;
        let admin = p.app.register_org("Scale Co").await;
        Self {
            p,
            admin,
            workers: vec![],
            redis_url: None,
        }
    }

    async fn number(&self) -> Number {
        let n = self.p.connect_number(self.admin.org_id).await;
        self.p
            .sim
            .state()
            .seed_template(
                &n.waba_id,
                TemplateSpec {
                    name: "promo".into(),
                    body: Some("Sale today".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        n
    }

    fn start_worker(&mut self, replicas: u32) {
        let mut cmd = Command::new(WORKER_BIN);
        cmd.env("DATABASE_URL", &self.p.app.db.url)
            .env("REDIS_PREFIX", &self.p.app.config.redis_prefix)
            .env("META_GRAPH_URL", self.p.sim.base_url())
            .env("WORKER_LANES", "outbound,inbound")
            .env("WORKER_CONCURRENCY", "outbound=32,inbound=8")
            .env("WORKER_METRICS_ADDR", "none")
            .env("WORKER_DB_POOL_SIZE", "8")
            .env("WORKER_POLL_MS", "100")
            .env("WORKER_LEASE_SECS", "3")
            .env("WORKER_RESCUE_INTERVAL_SECS", "1")
            .env("WORKER_SHUTDOWN_GRACE_SECS", "2")
            .env("WORKER_REPLICAS", replicas.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = &self.redis_url {
            cmd.env("REDIS_URL", url);
        }
        self.workers
            .push(cmd.spawn().expect("start worker process"));
    }

    /// Contacts and conversations for `n` recipients of `number`; returns (conversation id, phone).
    async fn audience(&self, number: &Number, n: usize, prefix: &str) -> Vec<(Uuid, String)> {
        sqlx::query_as(
            "WITH c AS (
                INSERT INTO contacts (org_id, wa_id)
                SELECT $1, $3 || lpad(i::text, 6, '0') FROM generate_series(1, $4) i RETURNING id, wa_id),
             v AS (
                INSERT INTO conversations (org_id, account_id, contact_id)
                SELECT $1, $2, c.id FROM c RETURNING id, contact_id)
             SELECT v.id, c.wa_id FROM v JOIN c ON c.id = v.contact_id",
        )
        .bind(self.admin.org_id)
        .bind(number.account_id)
        .bind(prefix)
        .bind(n as i32)
        .fetch_all(&self.p.app.db.pool)
        .await
        .unwrap()
    }

    /// Queues one template message per conversation through the API (32 requests at a time).
    async fn queue(&self, conversations: &[(Uuid, String)]) {
        let base = self.p.app.base_url.clone();
        let token = self.admin.token.clone();
        let client = self.p.app.client.clone();
        let statuses: Vec<u16> = futures::stream::iter(conversations.iter().map(|(id, _)| {
            let (client, token, url) = (client.clone(), token.clone(), format!("{base}/api/v1/conversations/{id}/messages"));
            async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"type": "template", "template": {"name": "promo", "language": "en_US"}}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        }))
        .buffer_unordered(32)
        .collect()
        .await;
        assert!(
            statuses.iter().all(|s| *s == 202),
            "every send accepted by the API"
        );
    }

    async fn wait_all_settled(&self, total: i64, limit: Duration) {
        let start = Instant::now();
        loop {
            let settled = self.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND' AND (wamid IS NOT NULL OR status = 'failed')").await;
            if settled >= total {
                return;
            }
            if start.elapsed() >= limit {
                let stuck: Vec<serde_json::Value> = sqlx::query_scalar(
                    "SELECT jsonb_build_object('message', m.id, 'status', m.status, 'hold', m.hold_reason,
                            'attempts', m.send_attempts, 'job', to_jsonb(j) - 'payload')
                       FROM messages m LEFT JOIN jobs j ON j.payload->>'message_id' = m.id::text
                      WHERE m.direction = 'OUTBOUND' AND m.wamid IS NULL AND m.status <> 'failed' LIMIT 5",
                )
                .fetch_all(&self.p.app.db.pool)
                .await
                .unwrap();
                panic!(
                    "only {settled} of {total} messages settled in {limit:?}; stuck: {stuck:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Accepted sends per recipient at the simulator.
    fn received_per_recipient(&self, number: &Number) -> HashMap<String, usize> {
        let mut per = HashMap::new();
        for r in self.p.sim.state().received(&ReceivedFilter {
            number_id: Some(number.phone_number_id.clone()),
            accepted: Some(true),
            ..Default::default()
        }) {
            *per.entry(r.to).or_insert(0) += 1;
        }
        per
    }

    fn assert_limits_kept(&self, number: &Number, expected: usize, rate: f64) {
        let stats = self.p.sim.state().stats(&number.phone_number_id).unwrap();
        assert_eq!(
            stats.errors.get(&130429).copied().unwrap_or(0),
            0,
            "no 130429: {:?}",
            stats.errors
        );
        assert_eq!(
            stats.errors.get(&131056).copied().unwrap_or(0),
            0,
            "no 131056: {:?}",
            stats.errors
        );
        let per = self.received_per_recipient(number);
        assert_eq!(per.len(), expected, "every recipient reached");
        assert!(
            per.values().all(|c| *c == 1),
            "nobody received a message twice"
        );
        let achieved = stats.achieved_rate().unwrap();
        println!(
            "number {}: {} sent, achieved {achieved:.1}/s of {rate}/s",
            number.phone_number_id, stats.accepted
        );
        assert!(
            (achieved - rate).abs() <= rate * 0.05,
            "achieved {achieved:.1}/s, allowed {rate}/s"
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

#[tokio::test]
async fn two_workers_send_2000_messages_from_one_number_at_80_per_second() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut run = Run::new().await;
    let number = run.number().await;
    let audience = run.audience(&number, 2000, "1555100").await;
    run.queue(&audience).await;
    run.start_worker(2);
    run.start_worker(2);
    run.wait_all_settled(2000, Duration::from_secs(60)).await;
    run.assert_limits_kept(&number, 2000, 80.0);
}

#[tokio::test]
async fn three_numbers_at_once_each_at_its_own_limit() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut run = Run::new().await;
    let mut numbers = vec![];
    for i in 0..3 {
        let n = run.number().await;
        let audience = run.audience(&n, 1200, &format!("155520{i}")).await;
        run.queue(&audience).await;
        numbers.push(n);
    }
    run.start_worker(2);
    run.start_worker(2);
    run.wait_all_settled(3600, Duration::from_secs(60)).await;
    for n in &numbers {
        run.assert_limits_kept(n, 1200, 80.0);
    }
}

#[tokio::test]
async fn fifty_messages_to_one_recipient_never_trip_the_pair_limit() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut run = Run::new().await;
    let number = run.number().await;
    let audience = run.audience(&number, 1, "1555300").await;
    let fifty: Vec<(Uuid, String)> = std::iter::repeat_n(audience[0].clone(), 50).collect();
    run.queue(&fifty).await;
    run.start_worker(2);
    run.start_worker(2);
    // 44 at once, then one every 6 s: about 36 s.
    run.wait_all_settled(50, Duration::from_secs(60)).await;
    let stats = run.p.sim.state().stats(&number.phone_number_id).unwrap();
    assert_eq!(stats.accepted, 50);
    assert_eq!(
        stats.errors.get(&131056).copied().unwrap_or(0),
        0,
        "{:?}",
        stats.errors
    );
    assert_eq!(
        run.p
            .count("SELECT count(*) FROM messages WHERE status = 'failed'")
            .await,
        0
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_stopped_mid_run_loses_nothing_and_keeps_the_limits() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("wharf-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut run = Run::new().await;
    run.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let number = run.number().await;
    let audience = run.audience(&number, 800, "1555400").await;
    run.queue(&audience).await;
    run.start_worker(2);
    run.start_worker(2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent_before = run
        .p
        .count("SELECT count(*) FROM messages WHERE wamid IS NOT NULL")
        .await;
    assert!(
        sent_before > 100 && sent_before < 800,
        "mid-run when Redis stops: {sent_before}"
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
    run.wait_all_settled(800, Duration::from_secs(60)).await;
    let stats = run.p.sim.state().stats(&number.phone_number_id).unwrap();
    assert_eq!(
        stats.errors.get(&130429).copied().unwrap_or(0),
        0,
        "each worker kept to its share: {:?}",
        stats.errors
    );
    let per = run.received_per_recipient(&number);
    assert_eq!(per.len(), 800);
    assert!(per.values().all(|c| *c == 1));
    assert_eq!(
        run.p
            .count("SELECT count(*) FROM messages WHERE status = 'failed'")
            .await,
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_worker_killed_mid_burst_sends_nothing_twice_and_loses_nothing() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut run = Run::new().await;
    let number = run.number().await;
    run.p
        .sim
        .state()
        .set_throughput(&number.phone_number_id, None, Some(200.0), None)
        .unwrap();
    sqlx::query("UPDATE whatsapp_accounts SET messages_per_second = 200 WHERE id = $1")
        .bind(number.account_id)
        .execute(&run.p.app.db.pool)
        .await
        .unwrap();
    let audience = run.audience(&number, 1000, "1555500").await;
    run.queue(&audience).await;
    run.start_worker(2);
    run.start_worker(2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = &mut run.workers[0];
    Command::new("kill")
        .args(["-9", &victim.id().to_string()])
        .status()
        .unwrap();
    victim.wait().unwrap();
    run.wait_all_settled(1000, Duration::from_secs(60)).await;
    let per = run.received_per_recipient(&number);
    assert_eq!(per.len(), 1000, "no recipient lost");
    let twice: Vec<_> = per.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(
        run.p
            .count("SELECT count(*) FROM messages WHERE wamid IS NULL")
            .await,
        0
    );
}
