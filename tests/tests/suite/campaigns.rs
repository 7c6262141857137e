//! Campaigns at scale, end to end against the simulator: audience snapshot (JSON and CSV),
//! pricing, pacing at the number's rate with two worker processes, crash safety (kill -9),
//! pause/resume/cancel, scheduled launch with two schedulers, a template paused at Meta
//! mid-campaign, progress (SSE), stats and the streamed export.
//!
//! Heavy tests (worker processes, rate measurements) take a lock so they do not compete for
//! the cores.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_sim::{FaultAction, FaultSpec, ReceivedFilter};
use wharf_tests::{
    platform::{meta_error, wait_for, Number, Platform},
    OrgAdmin, Resp,
};

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-worker");
const SCHEDULER_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-scheduler");

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
    /// Local template id (message_templates.id) and the simulator's id.
    template_id: Uuid,
    sim_template_id: String,
    children: Vec<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A platform with a number sending at `mps` and an approved template "promo" with body
/// "Hi {{1}}, your code is {{2}}" (utility), known to both the simulator and the platform.
async fn setup(in_process_worker: bool, mps: u32) -> Setup {
    let p = if in_process_worker {
        Platform::start().await
    } else {
        Platform::start_without_worker().await
    };
    let admin = p.app.register_org("Campaign Co").await;
    let number = p.connect_number(admin.org_id).await;
    p.set_send_rate(&number, mps).await;
    let (template_id, sim_template_id) = p.approved_promo(&number).await;
    Setup {
        p,
        admin,
        number,
        template_id,
        sim_template_id,
        children: vec![],
    }
}

impl Setup {
    fn spawn_worker(&mut self) -> usize {
        let child = Command::new(WORKER_BIN)
            .env("DATABASE_URL", &self.p.app.db.url)
            .env("REDIS_PREFIX", &self.p.app.config.redis_prefix)
            .env("META_GRAPH_URL", self.p.sim.base_url())
            .env("WORKER_LANES", "outbound,inbound,bulk,maintenance")
            .env(
                "WORKER_CONCURRENCY",
                "outbound=32,inbound=8,bulk=4,maintenance=2",
            )
            .env("WORKER_METRICS_ADDR", "none")
            .env("WORKER_DB_POOL_SIZE", "8")
            .env("WORKER_POLL_MS", "100")
            .env("WORKER_LEASE_SECS", "3")
            .env("WORKER_RESCUE_INTERVAL_SECS", "1")
            .env("WORKER_SHUTDOWN_GRACE_SECS", "2")
            .env("WORKER_REPLICAS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start worker process");
        self.children.push(child);
        self.children.len() - 1
    }

    fn spawn_scheduler(&mut self) {
        let child = Command::new(SCHEDULER_BIN)
            .env("DATABASE_URL", &self.p.app.db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scheduler process");
        self.children.push(child);
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.p
            .app
            .post(&format!("/api/v1{path}"), &self.admin.token, body)
            .await
    }

    async fn get(&self, path: &str) -> Resp {
        self.p
            .app
            .get(&format!("/api/v1{path}"), &self.admin.token)
            .await
    }

    /// Creates a campaign for `n` recipients (phones 1555<prefix><6 digits>) and returns its id.
    async fn create(&self, n: usize, prefix: &str, extra: Value) -> Uuid {
        let recipients: Vec<Value> =
            (0..n).map(|i| json!({"phone": format!("+1 555 {prefix}{i:06}"), "1": format!("C{i}"), "2": i.to_string()})).collect();
        let mut body =
            json!({"name": "Spring", "templateId": self.template_id, "recipients": recipients});
        if let Value::Object(o) = extra {
            for (k, v) in o {
                body[k] = v;
            }
        }
        let resp = self.post("/campaigns", body).await.expect(201);
        assert_eq!(
            resp.data()["accepted"],
            n,
            "{}",
            resp.body["data"]["rejected"]
        );
        Uuid::parse_str(resp.data()["id"].as_str().unwrap()).unwrap()
    }

    async fn status(&self, id: Uuid) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, paused_reason FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_one(&self.p.app.db.pool)
            .await
            .unwrap()
    }

    async fn wait_status(&self, id: Uuid, want: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let (s, _) = self.status(id).await;
            if s == want {
                return;
            }
            let sent = self.accepted();
            assert!(
                start.elapsed() < limit,
                "campaign still {s} (want {want}) after {limit:?}; {sent} accepted by Meta"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Accepted sends at the simulator.
    fn accepted(&self) -> u64 {
        self.p
            .sim
            .state()
            .stats(&self.number.phone_number_id)
            .unwrap()
            .accepted
    }

    async fn wait_accepted(&self, at_least: u64, limit: Duration) {
        let start = Instant::now();
        while self.accepted() < at_least {
            assert!(
                start.elapsed() < limit,
                "only {} accepted after {limit:?}",
                self.accepted()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn received_per_recipient(&self) -> HashMap<String, usize> {
        let mut per = HashMap::new();
        for r in self.p.sim.state().received(&ReceivedFilter {
            number_id: Some(self.number.phone_number_id.clone()),
            accepted: Some(true),
            ..Default::default()
        }) {
            *per.entry(r.to).or_insert(0) += 1;
        }
        per
    }

    /// Every recipient of the campaign was received exactly once by Meta, and its message
    /// carries that one wamid.
    async fn assert_each_sent_once(&self, id: Uuid, n: usize) {
        let per = self.received_per_recipient();
        let twice: Vec<_> = per.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "recipients sent more than once: {:?}",
            &twice[..twice.len().min(5)]
        );
        let phones: Vec<String> =
            sqlx::query_scalar("SELECT phone FROM campaign_recipients WHERE campaign_id = $1")
                .bind(id)
                .fetch_all(&self.p.app.db.pool)
                .await
                .unwrap();
        assert_eq!(phones.len(), n);
        let missing = phones
            .iter()
            .filter(|p| per.get(*p).copied().unwrap_or(0) != 1)
            .count();
        assert_eq!(missing, 0, "recipients not received exactly once by Meta");
        let with_wamid: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT m.wamid) FROM campaign_recipients r JOIN messages m ON m.id = r.message_id
              WHERE r.campaign_id = $1 AND m.wamid IS NOT NULL",
        )
        .bind(id)
        .fetch_one(&self.p.app.db.pool)
        .await
        .unwrap();
        assert_eq!(with_wamid, n as i64, "one wamid per recipient");
        let attempts_sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM message_attempts a JOIN messages m ON m.id = a.message_id
              WHERE m.campaign_id = $1 AND a.outcome = 'sent'",
        )
        .bind(id)
        .fetch_one(&self.p.app.db.pool)
        .await
        .unwrap();
        // A send whose worker died mid-request has no "sent" attempt: its wamid came from the
        // status webhook.
        assert!(
            attempts_sent <= n as i64,
            "no message recorded two successful sends"
        );
    }

    fn errors(&self, code: u32) -> u64 {
        self.p
            .sim
            .state()
            .stats(&self.number.phone_number_id)
            .unwrap()
            .errors
            .get(&code)
            .copied()
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn twenty_thousand_recipients_two_workers_exactly_once_at_80_per_second() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut s = setup(false, 80).await;
    let id = s.create(20_000, "1", json!({})).await;
    s.spawn_worker();
    s.spawn_worker();
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(420))
        .await;
    s.assert_each_sent_once(id, 20_000).await;
    let stats = s.p.sim.state().stats(&s.number.phone_number_id).unwrap();
    let e130429 = s.errors(130429);
    let (first, last) = (
        stats.first_accepted_ms.unwrap(),
        stats.last_accepted_ms.unwrap(),
    );
    let achieved = (stats.accepted - 1) as f64 / ((last - first) as f64 / 1000.0);
    println!(
        "20k campaign: accepted {}, achieved {achieved:.2}/s, 130429: {e130429}, errors {:?}",
        stats.accepted, stats.errors
    );
    assert_eq!(e130429, 0, "no 130429");
    assert!(
        (achieved - 80.0).abs() <= 4.0,
        "achieved rate {achieved:.2}/s not within 5% of 80/s"
    );
    let detail = s
        .get(&format!("/campaigns/{id}?status=PENDING"))
        .await
        .expect(200);
    assert_eq!(detail.body["pagination"]["total"], 0);
}

#[tokio::test]
async fn a_worker_killed_mid_campaign_loses_no_recipient_and_sends_none_twice() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut s = setup(false, 300).await;
    let n = 4000;
    let id = s.create(n, "2", json!({})).await;
    s.spawn_worker();
    s.spawn_worker();
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_accepted(1200, Duration::from_secs(60)).await;
    // The victim is the worker running the dispatcher: it sends the campaign's messages itself,
    // so it dies with sends in flight (marked, maybe at Meta, not recorded).
    let runner: String = sqlx::query_scalar(
        "SELECT attempted_by FROM jobs WHERE kind = 'campaigns.dispatch' AND state = 'running'",
    )
    .fetch_one(&s.p.app.db.pool)
    .await
    .unwrap();
    let victim = s
        .children
        .iter()
        .position(|c| runner.contains(&format!(":{}:", c.id())))
        .expect("the dispatcher runs in one of the test's workers");
    // kill -9: no graceful shutdown, leased jobs are rescued after the lease expires.
    s.children[victim].kill().unwrap();
    s.children[victim].wait().unwrap();
    println!("killed a worker at {} accepted", s.accepted());
    s.spawn_worker();
    s.wait_status(id, "COMPLETED", Duration::from_secs(120))
        .await;
    s.assert_each_sent_once(id, n).await;
}

#[tokio::test]
async fn pause_stops_every_send_within_a_second_and_resume_completes() {
    let s = setup(true, 200).await;
    let n = 2000;
    let id = s.create(n, "3", json!({})).await;
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_accepted(300, Duration::from_secs(30)).await;
    let paused = s
        .post(&format!("/campaigns/{id}/pause"), json!({}))
        .await
        .expect(200);
    assert_eq!(paused.data()["status"], "PAUSED");
    assert_eq!(paused.data()["pausedReason"], "paused by a user");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = s.accepted();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.accepted(), before, "no send while paused");
    assert!(before < n as u64, "paused before the end ({before})");
    s.post(&format!("/campaigns/{id}/pause"), json!({}))
        .await
        .expect(409);
    s.post(&format!("/campaigns/{id}/resume"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(60))
        .await;
    s.assert_each_sent_once(id, n).await;
    let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
    assert_eq!(stats.data()["funnel"]["sent"], n);
}

/// Meta fails some of the dispatcher's own sends: server errors, a throughput refusal and
/// lost responses (the request reached Meta, the answer did not). Each failed send is recorded
/// as an attempt and handed to its send job, which retries it (or, for a lost response, adopts
/// the wamid from the status webhook); every recipient ends sent exactly once.
#[tokio::test]
async fn meta_errors_during_a_campaign_are_retried_and_each_recipient_is_sent_once() {
    let s = setup(true, 200).await;
    let n = 600;
    let id = s.create(n, "9", json!({})).await;
    let number_fault = |action: FaultAction, count: u32| {
        s.p.sim.state().add_fault(FaultSpec {
            number_id: Some(s.number.phone_number_id.clone()),
            recipient: None,
            endpoint: Some(wharf_sim::Endpoint::Messages),
            action,
            count: Some(count),
        });
    };
    number_fault(meta_error(2), 15);
    number_fault(meta_error(130429), 1);
    number_fault(FaultAction::LoseResponse, 5);
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(120))
        .await;
    s.assert_each_sent_once(id, n).await;
    let failed_attempts =
        s.p.count(&format!(
            "SELECT count(*) FROM message_attempts a JOIN messages m ON m.id = a.message_id
              WHERE m.campaign_id = '{id}' AND a.error_code IN (2, 130429)"
        ))
        .await;
    assert_eq!(
        failed_attempts, 16,
        "each refused send is an attempt on record"
    );
    let unknown =
        s.p.count(&format!(
            "SELECT count(*) FROM message_attempts a JOIN messages m ON m.id = a.message_id
              WHERE m.campaign_id = '{id}' AND a.outcome = 'unknown'"
        ))
        .await;
    assert_eq!(
        unknown, 5,
        "each lost response is an attempt of unknown outcome"
    );
    let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
    assert_eq!(stats.data()["counts"]["failed"], 0, "{}", stats.body);
}

#[tokio::test]
async fn cancel_skips_the_remaining_recipients() {
    let s = setup(true, 100).await;
    let n = 2000;
    let id = s.create(n, "4", json!({})).await;
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_accepted(200, Duration::from_secs(30)).await;
    let c = s
        .post(&format!("/campaigns/{id}/cancel"), json!({}))
        .await
        .expect(200);
    assert_eq!(c.data()["status"], "CANCELLED");
    // Messages already queued are dropped by the send gate within a second or two.
    let start = Instant::now();
    loop {
        let queued =
            s.p.count(&format!(
                "SELECT count(*) FROM messages WHERE campaign_id = '{id}' AND status = 'queued'"
            ))
            .await;
        if queued == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{queued} campaign messages still queued after cancel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = s.accepted();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.accepted(), sent, "nothing leaves after cancel");
    let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
    let counts = &stats.data()["counts"];
    let skipped = counts["skipped"].as_i64().unwrap();
    assert!(skipped > 0 && skipped < n as i64, "{counts}");
    assert_eq!(counts["pending"], 0);
    assert_eq!(counts["sending"], 0);
    let accepted_by_meta = counts["sent"].as_i64().unwrap()
        + counts["delivered"].as_i64().unwrap()
        + counts["read"].as_i64().unwrap();
    assert_eq!(accepted_by_meta + skipped, n as i64, "{counts}");
    assert_eq!(accepted_by_meta as u64, s.accepted());
    let reasons: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT skip_reason FROM campaign_recipients WHERE campaign_id = $1 AND status = 'skipped'",
    )
    .bind(id)
    .fetch_all(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(reasons, vec![Some("cancelled".to_string())]);
    let skipped_page = s
        .get(&format!("/campaigns/{id}?status=SKIPPED&limit=5"))
        .await
        .expect(200);
    assert_eq!(
        skipped_page.data()["recipients"][0]["skipReason"],
        "cancelled"
    );
    s.post(&format!("/campaigns/{id}/resume"), json!({}))
        .await
        .expect(409);
}

#[tokio::test]
async fn a_scheduled_campaign_starts_once_on_time_with_two_schedulers() {
    let _heavy = wharf_tests::HEAVY.lock().await;
    let mut s = setup(true, 500).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let id = s
        .create(50, "5", json!({"scheduledAt": at.to_rfc3339()}))
        .await;
    assert_eq!(s.status(id).await.0, "SCHEDULED");
    s.spawn_scheduler();
    s.spawn_scheduler();
    s.wait_status(id, "COMPLETED", Duration::from_secs(30))
        .await;
    let launched: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT launched_at FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_one(&s.p.app.db.pool)
            .await
            .unwrap();
    let late = (launched - at).num_milliseconds();
    println!("scheduled campaign launched {late} ms after scheduledAt");
    assert!(
        (0..4000).contains(&late),
        "launched {late} ms after its time"
    );
    let dispatchers = s
        .p
        .count(&format!("SELECT count(*) FROM jobs WHERE kind = 'campaigns.dispatch' AND payload->>'campaign_id' = '{id}'"))
        .await;
    assert_eq!(dispatchers, 1, "started once");
    s.assert_each_sent_once(id, 50).await;
}

#[tokio::test]
async fn a_template_paused_at_meta_pauses_the_campaign_and_resume_finishes_it() {
    let s = setup(true, 50).await;
    let n = 600;
    let id = s.create(n, "6", json!({})).await;
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_accepted(60, Duration::from_secs(30)).await;
    s.p.sim
        .state()
        .set_template_status(&s.sim_template_id, "PAUSED", None)
        .unwrap();
    s.wait_status(id, "PAUSED", Duration::from_secs(15)).await;
    let (_, reason) = s.status(id).await;
    let reason = reason.unwrap();
    println!("paused reason: {reason}");
    assert!(
        reason.contains("132015") && reason.contains("promo"),
        "{reason}"
    );
    assert!(s.errors(132015) > 0, "Meta refused sends with 132015");
    // The template follows (status webhook, and the sync the send job requested).
    let start = Instant::now();
    loop {
        let status: String =
            sqlx::query_scalar("SELECT status FROM message_templates WHERE id = $1")
                .bind(s.template_id)
                .fetch_one(&s.p.app.db.pool)
                .await
                .unwrap();
        if status == "PAUSED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "template still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.p.count("SELECT count(*) FROM jobs WHERE kind = 'templates.sync_account'")
            .await
            >= 1,
        "a sync was requested"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = s.accepted();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.accepted(), before, "sends stopped");
    // Meta reinstates the template; the user resumes; every recipient gets it exactly once
    // (the refused ones waited instead of failing).
    s.p.sim
        .state()
        .set_template_status(&s.sim_template_id, "APPROVED", None)
        .unwrap();
    s.post(&format!("/campaigns/{id}/resume"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(60))
        .await;
    s.assert_each_sent_once(id, n).await;
}

async fn post_csv(s: &Setup, csv: &str, fields: &[(&str, String)]) -> Resp {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
            .file_name("audience.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    let res =
        s.p.app
            .client
            .post(format!("{}/api/v1/campaigns", s.p.app.base_url))
            .bearer_auth(&s.admin.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
    wharf_tests::TestApp::read(res).await
}

#[tokio::test]
async fn csv_upload_keeps_good_rows_and_reports_bad_ones_with_line_numbers() {
    let s = setup(false, 500).await;
    let csv = "phone,name,1,2\n\
               +1 (555) 200-0001,Ana,Ana,11\n\
               12345,Bob,Bob,12\n\
               \"+1 555 200 0003\",\"Lee, Jr\",Lee,13\n\
               001-555-200-0001,Dup,Dup,14\n\
               +15552000005,Eve,Eve,\n\
               +44 20 7946 0958,Kim,Kim,16\n";
    let resp = post_csv(
        &s,
        csv,
        &[
            ("name", "CSV run".into()),
            ("templateId", s.template_id.to_string()),
        ],
    )
    .await
    .expect(201);
    let d = resp.data();
    assert_eq!(d["accepted"], 3, "{d}");
    assert_eq!(d["rejectedTotal"], 3);
    let rejected: Vec<(i64, String)> = d["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![3, 5, 6],
        "{rejected:?}"
    );
    assert!(rejected[0].1.contains("8 to 15 digits"), "{rejected:?}");
    assert!(rejected[1].1.contains("duplicate of row 2"), "{rejected:?}");
    assert!(
        rejected[2].1.contains("missing template variable"),
        "{rejected:?}"
    );
    assert_eq!(d["status"], "DRAFT");
    let id = d["id"].as_str().unwrap();
    let detail = s.get(&format!("/campaigns/{id}")).await.expect(200);
    let phones: Vec<&str> = detail.data()["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, vec!["15552000001", "15552000003", "442079460958"]);
    assert_eq!(detail.data()["recipients"][1]["name"], "Lee, Jr");
    assert_eq!(
        detail.data()["recipients"][1]["variables"],
        json!({"1": "Lee", "2": "13"})
    );
    assert_eq!(detail.body["pagination"]["total"], 3);
    // Estimated at creation: utility, US and GB rates.
    let est = detail.data()["estimatedCost"].as_f64().unwrap();
    assert!((est - (0.0034 * 2.0 + 0.0220)).abs() < 1e-9, "{est}");
    // No phone column: a 422 naming the file.
    let bad = post_csv(
        &s,
        "tel,x\n1,2\n",
        &[
            ("name", "x".into()),
            ("templateId", s.template_id.to_string()),
        ],
    )
    .await;
    assert_eq!(bad.status.as_u16(), 422, "{}", bad.body);
}

#[tokio::test]
async fn one_hundred_thousand_recipients_are_accepted_in_one_request() {
    let s = setup(false, 500).await;
    let recipients: Vec<Value> = (0..100_000)
        .map(|i| json!({"phone": format!("+1555{:07}", i), "variables": [format!("N{i}"), "x"]}))
        .collect();
    let body = json!({"name": "Big", "templateId": s.template_id, "recipients": recipients});
    let started = Instant::now();
    let resp = s.post("/campaigns", body).await.expect(201);
    let elapsed = started.elapsed();
    println!("100k recipients accepted in {elapsed:?}");
    assert_eq!(resp.data()["accepted"], 100_000);
    assert_eq!(resp.data()["rejectedTotal"], 0);
    let id = resp.data()["id"].as_str().unwrap();
    assert_eq!(
        s.p.count(&format!(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = '{id}'"
        ))
        .await,
        100_000
    );
    assert_eq!(resp.data()["counts"]["pending"], 100_000);
}

#[tokio::test]
async fn a_small_campaign_end_to_end_estimate_events_stats_export_retry_and_bulk() {
    let s = setup(true, 500).await;
    // Pricing and estimate before anything is sent.
    let pricing = s.get("/campaigns/pricing").await.expect(200);
    assert_eq!(pricing.data()["pricingModel"], "PMP");
    assert!(pricing.data()["version"]
        .as_str()
        .unwrap()
        .starts_with("2025-07"));
    let est = s
        .post(
            "/campaigns/estimate",
            json!({"templateId": s.template_id, "recipients": [{"phone": "+1 555 700 0001"}, {"phone": "+91 98765 43210"}, {"phone": "x"}]}),
        )
        .await
        .expect(200);
    assert_eq!(est.data()["recipients"], 2);
    assert_eq!(est.data()["rejectedTotal"], 1);
    assert!(
        (est.data()["totalCost"].as_f64().unwrap() - (0.0034 + 0.0014)).abs() < 1e-9,
        "{}",
        est.body
    );

    // Variables are checked per row.
    let bad = s
        .post(
            "/campaigns",
            json!({"name": "v", "templateId": s.template_id, "recipients": [{"phone": "+15557000001", "1": "a"}, {"phone": "+15557000002", "variables": ["a", "b"]}]}),
        )
        .await
        .expect(201);
    assert_eq!(bad.data()["accepted"], 1);
    assert_eq!(bad.data()["rejected"][0]["row"], 1);

    // One recipient will be refused by Meta (131026, terminal) and retried later.
    let n = 40;
    let failing = "15558000007";
    let fault = s.p.sim.state().add_fault(
        serde_json::from_value(
            json!({"recipient": failing, "action": {"kind": "meta_error", "code": 131026}}),
        )
        .unwrap(),
    );
    let id = s.create(n, "8", json!({})).await;
    let launched = s
        .post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    assert_eq!(launched.data()["status"], "RUNNING");
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(409);

    // Live progress until the end.
    let res =
        s.p.app
            .client
            .get(format!("{}/api/v1/campaigns/{id}/events", s.p.app.base_url))
            .bearer_auth(&s.admin.token)
            .send()
            .await
            .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(chunk)) = tokio::time::timeout(deadline - Instant::now(), body.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.contains("event: progress"), "{text}");
    assert!(
        text.contains("event: done") && text.contains("COMPLETED"),
        "{text}"
    );

    let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
    let d = stats.data();
    assert_eq!(d["counts"]["failed"], 1, "{d}");
    assert_eq!(d["failuresByCode"][0]["code"], 131026);
    assert_eq!(d["funnel"]["sent"], n - 1);
    // The failure shows in the failed-messages dashboard, filtered by campaign.
    let failed = s
        .get(&format!("/messages/failed?campaignId={id}"))
        .await
        .expect(200);
    assert_eq!(failed.body["pagination"]["total"], 1);

    // Export (streamed CSV): header + one line per recipient; filter by status.
    let csv =
        s.p.app
            .client
            .get(format!("{}/api/v1/campaigns/{id}/export", s.p.app.base_url))
            .bearer_auth(&s.admin.token)
            .send()
            .await
            .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().count(), n + 1);
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("row,phone,name,status"));
    let failed_csv =
        s.p.app
            .client
            .get(format!(
                "{}/api/v1/campaigns/{id}/export?status=FAILED",
                s.p.app.base_url
            ))
            .bearer_auth(&s.admin.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert_eq!(failed_csv.lines().count(), 2, "{failed_csv}");
    assert!(failed_csv.contains(failing) && failed_csv.contains("131026"));

    // Retry the failure once Meta accepts it: the campaign runs again and completes.
    s.p.sim.state().remove_fault(fault);
    let retry = s
        .post(&format!("/campaigns/{id}/retry-failed"), json!({}))
        .await
        .expect(200);
    assert_eq!(retry.data()["queued"], 1);
    s.wait_status(id, "COMPLETED", Duration::from_secs(20))
        .await;
    let start = Instant::now();
    while s
        .received_per_recipient()
        .get(failing)
        .copied()
        .unwrap_or(0)
        != 1
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "retried recipient not sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // List, global stats, bulk delete.
    let list = s.get("/campaigns?status=COMPLETED").await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    assert_eq!(list.body["data"][0]["counts"]["total"], n);
    let global = s.get("/campaigns/stats/global").await.expect(200);
    assert_eq!(global.data()["campaigns"], 2);
    assert_eq!(global.data()["sent"], n);
    let bulk = s
        .post(
            "/campaigns/bulk",
            json!({"action": "delete", "selection": {"mode": "ids", "ids": [id]}}),
        )
        .await
        .expect(200);
    assert_eq!(bulk.data()["affected"], 1);
    s.get(&format!("/campaigns/{id}")).await.expect(404);
    s.post(
        "/campaigns/bulk",
        json!({"action": "explode", "selection": {"mode": "ids", "ids": [id]}}),
    )
    .await
    .expect(422);
}

#[tokio::test]
async fn opted_out_and_blocked_recipients_are_skipped_with_their_reason() {
    let s = setup(true, 100).await;
    let id = s.create(4, "7", json!({})).await;
    let (stopper, blocked) = ("15557000000", "15557000001");
    // One recipient wrote STOP before the launch; another was blocked by an agent.
    s.p.customer_sends(
        &s.number,
        json!({"from": stopper, "type": "text", "body": "STOP"}),
    );
    s.p.customer_sends(
        &s.number,
        json!({"from": blocked, "type": "text", "body": "hi"}),
    );
    wait_for("both contacts filed", || async {
        s.p.count(&format!(
            "SELECT count(*) FROM contacts WHERE wa_id IN ('{stopper}', '{blocked}')
                AND (marketing_opt_out OR wa_id = '{blocked}')"
        ))
        .await
            == 2
    })
    .await;
    s.p.app
        .patch(
            &format!("/api/v1/contacts/{blocked}"),
            &s.admin.token,
            json!({"blocked": true}),
        )
        .await
        .expect(200);

    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(30))
        .await;
    let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
    assert_eq!(stats.data()["counts"]["skipped"], 2, "{}", stats.body);
    let templates_to = |to: &str| s.p.accepted_to(to, "template");
    assert_eq!(templates_to(stopper), 0);
    assert_eq!(templates_to(blocked), 0);
    assert_eq!(templates_to("15557000002"), 1);
    assert_eq!(templates_to("15557000003"), 1);
    let csv =
        s.p.app
            .client
            .get(format!(
                "{}/api/v1/campaigns/{id}/export?status=SKIPPED",
                s.p.app.base_url
            ))
            .bearer_auth(&s.admin.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let reason_of = |phone: &str| {
        csv.lines()
            .find(|l| l.contains(phone))
            .map(|l| l.split(',').nth(4).unwrap_or_default().to_string())
    };
    assert_eq!(reason_of(stopper).as_deref(), Some("opted_out"), "{csv}");
    assert_eq!(reason_of(blocked).as_deref(), Some("blocked"), "{csv}");
}

/// A campaign message to a customer with an open conversation lands in it (and brings it up to
/// date); one to a customer who has none creates no contact or conversation, and joins the
/// conversation the customer opens by answering, so the thread shows what they answer and
/// the funnel counts the reply.
#[tokio::test]
async fn campaign_messages_join_the_open_conversation_or_the_one_the_customer_opens() {
    let s = setup(true, 100).await;
    let (talking, silent, answering) = ("15558000000", "15558000001", "15558000002");
    s.p.customer_sends(
        &s.number,
        json!({"from": talking, "type": "text", "body": "hello there"}),
    );
    let conversation_of = |phone: &'static str| {
        let p = &s.p;
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1",
            )
            .bind(phone)
            .fetch_optional(&p.app.db.pool)
            .await
            .unwrap()
        }
    };
    wait_for("the talking customer's conversation", || async {
        conversation_of(talking).await.is_some()
    })
    .await;
    let open = conversation_of(talking).await.unwrap();

    let id = s.create(3, "8", json!({})).await;
    s.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await
        .expect(200);
    s.wait_status(id, "COMPLETED", Duration::from_secs(60))
        .await;
    s.assert_each_sent_once(id, 3).await;

    let in_open: i64 = s
        .p
        .count(&format!(
            "SELECT count(*) FROM messages WHERE campaign_id = '{id}' AND conversation_id = '{open}'"
        ))
        .await;
    assert_eq!(
        in_open, 1,
        "the message to the talking customer is in their conversation"
    );
    let thread =
        s.p.app
            .get(&format!("/api/v1/conversations/{open}"), &s.admin.token)
            .await
            .expect(200);
    assert_eq!(
        thread.data()["lastMessageDirection"],
        "OUTBOUND",
        "{}",
        thread.body
    );
    assert_eq!(
        s.p.count("SELECT count(*) FROM conversations").await,
        1,
        "no conversation for customers who have not written"
    );
    assert_eq!(
        s.p.count(&format!(
            "SELECT count(*) FROM contacts WHERE wa_id IN ('{silent}', '{answering}')"
        ))
        .await,
        0,
        "no contact for customers who have not written"
    );
    assert_eq!(
        s.p.count(&format!(
            "SELECT count(*) FROM messages WHERE campaign_id = '{id}' AND conversation_id IS NULL"
        ))
        .await,
        2
    );

    s.p.customer_sends(
        &s.number,
        json!({"from": answering, "type": "text", "body": "yes please"}),
    );
    wait_for("the answering customer's conversation", || async {
        conversation_of(answering).await.is_some()
    })
    .await;
    let opened = conversation_of(answering).await.unwrap();
    let messages =
        s.p.app
            .get(
                &format!("/api/v1/conversations/{opened}/messages"),
                &s.admin.token,
            )
            .await
            .expect(200);
    let kinds: Vec<(String, String)> = messages.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("OUTBOUND".into(), "template".into()))
            && kinds.contains(&("INBOUND".into(), "text".into())),
        "the thread shows the campaign message and the answer: {}",
        messages.body
    );
    wait_for("the reply counted", || async {
        let stats = s.get(&format!("/campaigns/{id}/stats")).await.expect(200);
        stats.data()["funnel"]["replied"] == 1
    })
    .await;
    assert_eq!(
        s.p.count(&format!(
            "SELECT count(*) FROM messages WHERE campaign_id = '{id}' AND conversation_id IS NULL"
        ))
        .await,
        1,
        "the silent customer's message still waits"
    );
}
