//! Scenario 4, API latency under load: agents send text messages in 100 open conversations
//! (`POST /conversations/{id}/messages`) at a fixed request rate while a campaign drains in
//! the background on the same number (1,000/s allowed, two worker processes). Reports the
//! request latency (p50, p99), non-202 answers, and how long the interactive messages took from
//! the request to Meta's acceptance (they go ahead of the campaign's sends).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{
    platform::Platform,
    scenarios::fanout::sender,
    stats::{percentile, Runs},
    wait_until, Row,
};

const CONVERSATIONS: usize = 100;

#[derive(Default)]
struct Figures {
    p50: Runs,
    p99: Runs,
    errors: u64,
    requests: u64,
    send_p50: Runs,
    send_p99: Runs,
    campaign_rate: Runs,
    sim_cpu: Runs,
}

pub async fn run(runs: usize, rps: u32, duration: Duration) -> anyhow::Result<Vec<Row>> {
    let mut f = Figures::default();
    for run in 1..=runs {
        eprintln!("[api] run {run}/{runs}");
        let p = Platform::start("api", 16).await?;
        let result = one_run(&p, rps, duration, &mut f).await;
        p.stop().await;
        result?;
    }
    let what = format!(
        "POST /conversations/{{id}}/messages at {rps} req/s for {} s while a campaign drains",
        duration.as_secs()
    );
    Ok(vec![
        Row::new(
            "4 API under load",
            format!("{what}: p50"),
            f.p50.show(1),
            "ms",
            "",
        )
        .beside(format!("{} requests, {} not 202", f.requests, f.errors)),
        Row::new(
            "4 API under load",
            format!("{what}: p99"),
            f.p99.show(1),
            "ms",
            "",
        )
        .beside(format!(
            "campaign meanwhile at {:.0} msg/s; sim CPU {:.0}% of one core",
            f.campaign_rate.median(),
            f.sim_cpu.median()
        )),
        Row::new(
            "4 API under load",
            "those messages, request → accepted by Meta: p50",
            f.send_p50.show(0),
            "ms",
            "",
        ),
        Row::new(
            "4 API under load",
            "those messages, request → accepted by Meta: p99",
            f.send_p99.show(0),
            "ms",
            "",
        ),
    ])
}

async fn one_run(
    p: &Platform,
    rps: u32,
    duration: Duration,
    f: &mut Figures,
) -> anyhow::Result<()> {
    let running = p.start_workers(2, &sender(64))?;
    let tenant = p.register().await?;
    let number = p.connect_number(&tenant, 1000.0, 1000, false).await?;
    let template = p.approved_template(&tenant, &number).await?;

    // 100 customers write first, which opens their conversations' 24-hour windows.
    for i in 0..CONVERSATIONS {
        p.sim_post(
            &format!("/_sim/numbers/{}/inbound", number.phone_number_id),
            json!({"from": format!("1999{:07}", i), "type": "text", "body": "Hello, is anyone there?"}),
        )
        .await?;
    }
    wait_until(
        Duration::from_secs(60),
        "the customers' conversations",
        || async {
            Ok(p.db.count("SELECT count(*) FROM conversations").await? >= CONVERSATIONS as i64)
        },
    )
    .await?;
    let conversations: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM conversations ORDER BY id")
        .fetch_all(&p.db.pool)
        .await?;

    // The background campaign: enough for the whole measurement.
    let n = (1000.0 * (duration.as_secs_f64() + 15.0)) as usize;
    let (campaign, _) = p
        .create_campaign(&tenant, &template, n, 15_550_000_000)
        .await?;
    p.launch(&tenant, &campaign).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (sent0, _) = p.sim_stats(&number.phone_number_id).await?;
    let cpu0 = p.cpu(&running);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let started = Instant::now();
    let total = (f64::from(rps) * duration.as_secs_f64()) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let url = format!(
            "{}/api/v1/conversations/{}/messages",
            p.api_url,
            conversations[i % conversations.len()]
        );
        let (http, token) = (p.http.clone(), tenant.token.clone());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"type": "text", "text": {"body": format!("Agent reply {i}")}}))
                .send()
                .await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            latencies.lock().await.push(ms);
            if !matches!(r, Ok(ref r) if r.status().as_u16() == 202) {
                *errors.lock().await += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let (sent1, _) = p.sim_stats(&number.phone_number_id).await?;
    let cpu = p.cpu(&running) - cpu0;
    let ms = latencies.lock().await.clone();
    f.p50.push(percentile(&ms, 0.50));
    f.p99.push(percentile(&ms, 0.99));
    f.requests += ms.len() as u64;
    f.errors += *errors.lock().await;
    f.sim_cpu.push(cpu.sim / secs * 100.0);

    // The agents' messages are sent ahead of the campaign: wait for all, then their latency.
    wait_until(Duration::from_secs(120), "the agents' messages", || async {
        p.ensure_running(&running)?;
        Ok(p.db
            .count("SELECT count(*) FROM messages WHERE campaign_id IS NULL AND direction = 'OUTBOUND' AND sent_at IS NULL")
            .await?
            == 0)
    })
    .await?;
    let send_ms: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM sent_at - created_at)::float8 * 1000 FROM messages
          WHERE campaign_id IS NULL AND direction = 'OUTBOUND'",
    )
    .fetch_all(&p.db.pool)
    .await?;
    f.send_p50.push(percentile(&send_ms, 0.50));
    f.send_p99.push(percentile(&send_ms, 0.99));
    // Campaign sends = all accepted sends minus the agents' ones in the window.
    let campaign_sends = (sent1 - sent0) as f64 - send_ms.len() as f64;
    f.campaign_rate.push(campaign_sends.max(0.0) / secs);
    p.cancel(&tenant, &campaign).await?;
    running.stop();
    Ok(())
}
