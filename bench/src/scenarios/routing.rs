//! Scenario 6, routing: customers write at a steady rate (signed `messages` webhooks to the
//! api) to an organization with 50 teams of 10 ONLINE agents and 50 routing rules (a phone
//! prefix each); the worker stores each message, routes the new conversation and assigns an
//! agent. Inbound-to-assigned latency is what an agent's screen sees: from the webhook's POST
//! to the `conversation.assigned` event on `GET /api/v1/events`. Then one idle-agent pass
//! (`POST /routing-rules/idle-agent/run`) over the open conversations: once with none stuck
//! (the cost every minute) and once with every agent idle (it moves at most 1,000 per pass).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    platform::{sign, text_webhook, Platform, Tenant, WorkerSpec},
    stats::{percentile, Runs},
    wait_until, Row,
};

const TEAMS: usize = 50;
const AGENTS_PER_TEAM: usize = 10;

fn worker() -> WorkerSpec {
    WorkerSpec {
        lanes: "inbound,outbound,bulk,maintenance",
        concurrency: "inbound=16,outbound=4,bulk=1,maintenance=1".into(),
        pool_size: 20,
        fetch_batch: 50,
    }
}

#[derive(Default)]
struct Figures {
    rate: Runs,
    p50: Runs,
    p99: Runs,
    idle_quiet_ms: Runs,
    idle_busy_ms: Runs,
    moved: Runs,
    checked: Runs,
    worker_cpu: Runs,
    pg_cpu: Runs,
}

pub async fn run(runs: usize, rate: u32, secs: u64) -> anyhow::Result<Vec<Row>> {
    let mut f = Figures::default();
    for run in 1..=runs {
        eprintln!("[routing] run {run}/{runs}");
        let p = Platform::start("routing", 16).await?;
        let result = one_run(&p, rate, secs, &mut f).await;
        p.stop().await;
        result?;
    }
    let total = rate as u64 * secs;
    let what = format!(
        "{total} new conversations at {rate}/s, {TEAMS} teams, {} agents, {TEAMS} rules",
        TEAMS * AGENTS_PER_TEAM
    );
    Ok(vec![
        Row::new(
            "6 routing",
            format!("{what}: inbound rate kept"),
            f.rate.show(0),
            "msg/s",
            format!("{rate}/s"),
        )
        .beside(format!(
            "CPU s per 1,000: worker {:.2}, Postgres {:.2}",
            f.worker_cpu.median(),
            f.pg_cpu.median()
        )),
        Row::new(
            "6 routing",
            format!("{what}: inbound-to-assigned p50"),
            f.p50.show(0),
            "ms",
            "",
        ),
        Row::new(
            "6 routing",
            format!("{what}: inbound-to-assigned p99"),
            f.p99.show(0),
            "ms",
            "p99 < 1,000 ms",
        ),
        Row::new(
            "6 routing",
            format!(
                "idle-agent pass over {} open conversations, none stuck",
                f.checked.median()
            ),
            f.idle_quiet_ms.show(0),
            "ms",
            "< 1,000 ms",
        )
        .beside("3 statements, whatever the number of conversations".into()),
        Row::new(
            "6 routing",
            format!(
                "idle-agent pass, every agent idle ({} conversations moved)",
                f.moved.median()
            ),
            f.idle_busy_ms.show(0),
            "ms",
            "",
        )
        .beside("3 statements + about 12 per conversation moved".into()),
    ])
}

/// Teams, agents, rules and the default team, written straight to the database (creating
/// 500 users through the API would measure password hashing, not routing).
async fn seed(p: &Platform) -> anyhow::Result<Uuid> {
    let pool = &p.db.pool;
    let org_id: Uuid = sqlx::query_scalar("SELECT org_id FROM whatsapp_accounts LIMIT 1")
        .fetch_one(pool)
        .await?;
    for t in 0..TEAMS {
        let team_id: Uuid =
            sqlx::query_scalar("INSERT INTO teams (org_id, name) VALUES ($1, $2) RETURNING id")
                .bind(org_id)
                .bind(format!("Team {t:02}"))
                .fetch_one(pool)
                .await?;
        sqlx::query(
            "WITH agents AS (
                 INSERT INTO users (org_id, email, name, role, status, max_conversations)
                 SELECT $1, 'agent-' || $2 || '-' || g || '@bench.example.com', 'Agent ' || g, 'AGENT', 'ONLINE', 1000
                   FROM generate_series(1, $3) g RETURNING id)
             INSERT INTO team_members (team_id, user_id) SELECT $4, id FROM agents",
        )
        .bind(org_id)
        .bind(t as i32)
        .bind(AGENTS_PER_TEAM as i32)
        .bind(team_id)
        .execute(pool)
        .await?;
        sqlx::query(
            "INSERT INTO routing_rules (org_id, name, team_id, priority, conditions) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org_id)
        .bind(format!("prefix {t:02}"))
        .bind(team_id)
        .bind(t as i32)
        .bind(json!([{"field": "phone", "operator": "startsWith", "value": format!("1777{t:02}")}]))
        .execute(pool)
        .await?;
        if t == 0 {
            sqlx::query("INSERT INTO org_cx_settings (org_id, default_team_id) VALUES ($1, $2)")
                .bind(org_id)
                .bind(team_id)
                .execute(pool)
                .await?;
        }
    }
    // A live database has planner statistics for its users and teams; this one was seeded a
    // second ago and autovacuum would only gather them after its first minute. (The inbox
    // tables, empty now, are left unanalysed: their size estimates then follow their growth.)
    sqlx::query("ANALYZE users, teams, team_members, routing_rules, org_cx_settings")
        .execute(pool)
        .await?;
    Ok(org_id)
}

/// Arrival time of each `conversation.assigned` event, by conversation id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn listen(p: &Platform, tenant: &Tenant) -> anyhow::Result<Arrivals> {
    let res = p
        .http
        .get(format!("{}/api/v1/events", p.api_url))
        .bearer_auth(&tenant.token)
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "events stream: {}", res.status());
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if !block.contains("event: conversation.assigned") {
                    continue;
                }
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                let v: Value = data
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default();
                if let (Some(id), false) = (v["conversationId"].as_str(), v["assignedTo"].is_null())
                {
                    seen.lock().unwrap().entry(id.to_string()).or_insert(now);
                }
            }
        }
    });
    Ok(arrivals)
}

async fn one_run(p: &Platform, rate: u32, secs: u64, f: &mut Figures) -> anyhow::Result<()> {
    let tenant = p.register().await?;
    let number = p.connect_number(&tenant, 80.0, 80, false).await?;
    seed(p).await?;
    let workers = p.start_workers(1, &worker())?;
    let arrivals = listen(p, &tenant).await?;
    let total = (rate as u64 * secs) as usize;
    let customers: Vec<String> = (0..total)
        .map(|i| format!("1777{:02}{i:07}", i % TEAMS))
        .collect();
    let url = format!("{}/webhooks/whatsapp", p.api_url);
    let cpu0 = p.cpu(&workers);

    // Paced: a slice every 10 ms, so the rate holds whatever each POST takes.
    let per_slice = (rate as usize / 100).max(1);
    let mut posted: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for (slice, chunk) in customers.chunks(per_slice).enumerate() {
        tick.tick().await;
        for (j, from) in chunk.iter().enumerate() {
            let body = text_webhook(
                &number.phone_number_id,
                &number.waba_id,
                from,
                &format!("wamid.route{}", slice * per_slice + j),
                "hello, I need help",
            );
            let (http, url, sig) = (p.http.clone(), url.clone(), sign(&body));
            posted.insert(from.clone(), Instant::now());
            sends.push(tokio::spawn(async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }));
        }
    }
    let mut failed = 0;
    for s in sends {
        failed += usize::from(!s.await.unwrap_or(false));
    }
    let sent_in = started.elapsed().as_secs_f64();
    anyhow::ensure!(failed == 0, "{failed} webhooks were not accepted");
    wait_until(
        Duration::from_secs(300),
        "every conversation assigned",
        || async {
            p.ensure_running(&workers)?;
            Ok(arrivals.lock().unwrap().len() >= total)
        },
    )
    .await?;
    let cpu = p.cpu(&workers) - cpu0;

    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT c.id, k.wa_id FROM conversations c JOIN contacts k ON k.id = c.contact_id",
    )
    .fetch_all(&p.db.pool)
    .await?;
    let arrivals = arrivals.lock().unwrap().clone();
    let mut ms: Vec<f64> = rows
        .iter()
        .filter_map(|(id, wa)| {
            let at = arrivals.get(&id.to_string())?;
            Some(at.duration_since(*posted.get(wa)?).as_secs_f64() * 1000.0)
        })
        .collect();
    anyhow::ensure!(
        ms.len() == total,
        "{} of {total} latencies matched",
        ms.len()
    );
    ms.sort_by(f64::total_cmp);
    let thousands = total as f64 / 1000.0;
    f.rate.push(total as f64 / sent_in);
    f.p50.push(percentile(&ms, 0.50));
    f.p99.push(percentile(&ms, 0.99));
    f.worker_cpu.push(cpu.workers / thousands);
    f.pg_cpu.push(cpu.postgres / thousands);

    // Idle-agent passes: first with nobody stuck, then with every agent idle for an hour.
    let put = |body: Value| {
        p.call(
            Some(&tenant),
            reqwest::Method::PUT,
            "/routing-rules/idle-agent",
            Some(body),
            200,
        )
    };
    put(json!({"enabled": true, "thresholdMinutes": 10, "inactivityMinutes": 30, "action": "REASSIGN"}))
        .await?;
    let pass = || async {
        let t = Instant::now();
        let v = p
            .call(
                Some(&tenant),
                reqwest::Method::POST,
                "/routing-rules/idle-agent/run",
                Some(json!({})),
                200,
            )
            .await?;
        anyhow::Ok((t.elapsed().as_secs_f64() * 1000.0, v))
    };
    let (quiet_ms, quiet) = pass().await?;
    f.idle_quiet_ms.push(quiet_ms);
    f.checked
        .push(quiet["data"]["checked"].as_f64().context("checked")?);
    sqlx::query("UPDATE messages SET created_at = created_at - interval '1 hour' WHERE direction = 'INBOUND'")
        .execute(&p.db.pool)
        .await?;
    sqlx::query("UPDATE users SET status_changed_at = now() - interval '1 hour'")
        .execute(&p.db.pool)
        .await?;
    sqlx::query("UPDATE conversation_events SET at = at - interval '1 hour'")
        .execute(&p.db.pool)
        .await?;
    let (busy_ms, busy) = pass().await?;
    f.idle_busy_ms.push(busy_ms);
    f.moved
        .push(busy["data"]["moved"].as_array().map_or(0, Vec::len) as f64);
    workers.stop();
    Ok(())
}
