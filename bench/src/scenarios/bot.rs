//! Scenario 7, bot replies: `--bot-conversations` customers each write one message (signed
//! webhooks, posted at `--bot-rate`, default 200/s) to an organization whose bot is on; the simulator's model
//! answers after 800 ms, a real model's latency. Measured with 1 and 2 worker processes:
//! replies per second from the first webhook to the last answer Meta accepted, how many
//! model calls were in flight at once (from the simulator's request log), and the inbound
//! lane's pickup latency meanwhile (`attempted_at - run_at` of every `inbox.process_webhook`
//! job): the slow `llm` lane must not starve it. The organization's LLM budget is lifted so
//! the figure is the platform's, not the budget's.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    platform::{sign, text_webhook, Platform, WorkerSpec},
    stats::{percentile, Runs},
    wait_until, Row,
};

const MODEL_LATENCY_MS: u64 = 800;

fn worker() -> WorkerSpec {
    WorkerSpec {
        lanes: "inbound,outbound,llm,maintenance",
        concurrency: "inbound=16,outbound=16,llm=256,maintenance=1".into(),
        pool_size: 24,
        fetch_batch: 50,
    }
}

#[derive(Default)]
struct Figures {
    replies_per_s: Runs,
    in_flight: Runs,
    pickup_p99: Runs,
}

pub async fn run(runs: usize, conversations: usize, rate: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for workers in [1, 2] {
        let mut f = Figures::default();
        for run in 1..=runs {
            eprintln!("[bot] {workers} worker(s), run {run}/{runs}");
            let p = Platform::start("bot", 16).await?;
            let result = one_run(&p, workers, conversations, rate, &mut f).await;
            p.stop().await;
            result?;
        }
        let what = format!(
            "{conversations} conversations written at {rate}/s, model latency {MODEL_LATENCY_MS} ms, {workers} worker(s)"
        );
        rows.push(
            Row::new(
                "7 bot",
                format!("{what}: replies"),
                f.replies_per_s.show(0),
                "replies/s",
                "hundreds in flight",
            )
            .beside(format!(
                "model calls in flight at once: {}",
                f.in_flight.median()
            )),
        );
        rows.push(Row::new(
            "7 bot",
            format!("{what}: inbound pickup p99 meanwhile"),
            f.pickup_p99.show(0),
            "ms",
            "not starved",
        ));
    }
    Ok(rows)
}

/// The most model calls whose [arrival, arrival + latency) windows overlap.
fn peak_in_flight(arrivals_ms: &mut [i64]) -> usize {
    arrivals_ms.sort_unstable();
    let window = MODEL_LATENCY_MS as i64;
    let (mut peak, mut start) = (0, 0);
    for end in 0..arrivals_ms.len() {
        while arrivals_ms[end] - arrivals_ms[start] >= window {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    peak
}

async fn one_run(
    p: &Platform,
    workers: usize,
    conversations: usize,
    rate: usize,
    f: &mut Figures,
) -> anyhow::Result<()> {
    let tenant = p.register().await?;
    let number = p.connect_number(&tenant, 1000.0, 1000, false).await?;
    // The customers' webhooks go straight to the api (as in the routing scenario), so the
    // simulator never saw them write: its 24-hour window check is off for this number.
    let window = p
        .http
        .patch(format!(
            "{}/_sim/numbers/{}",
            p.sim_url, number.phone_number_id
        ))
        .json(&json!({"window_mode": "off"}))
        .send()
        .await?;
    anyhow::ensure!(
        window.status().is_success(),
        "sim window mode: {}",
        window.status()
    );
    let latency = p
        .http
        .put(format!("{}/_sim/llm/latency", p.sim_url))
        .json(&json!({"provider": "OPENAI", "ms": MODEL_LATENCY_MS}))
        .send()
        .await?;
    anyhow::ensure!(
        latency.status().is_success(),
        "sim latency: {}",
        latency.status()
    );
    p.call(
        Some(&tenant),
        reqwest::Method::PUT,
        "/bot-config",
        Some(
            json!({"name": "Bench bot", "provider": "OPENAI", "model": "gpt-4o-mini",
                    "apiKey": "sim-openai-key", "debounceSeconds": 0,
                    "systemPrompt": "You are the shop's assistant."}),
        ),
        200,
    )
    .await?;
    p.call(
        Some(&tenant),
        reqwest::Method::PUT,
        "/config/bot-enabled",
        Some(json!({"enabled": true})),
        200,
    )
    .await?;
    let procs = p.start_workers(workers, &worker())?;
    let url = format!("{}/webhooks/whatsapp", p.api_url);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut sends = Vec::with_capacity(conversations);
    for chunk in (0..conversations).collect::<Vec<_>>().chunks(per_tick) {
        tick.tick().await;
        for &i in chunk {
            let from = format!("1888{i:07}");
            let body = text_webhook(
                &number.phone_number_id,
                &number.waba_id,
                &from,
                &format!("wamid.bot{i}"),
                "what time do you open tomorrow?",
            );
            let (http, url, sig) = (p.http.clone(), url.clone(), sign(&body));
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
    anyhow::ensure!(failed == 0, "{failed} webhooks were not accepted");
    wait_until(
        Duration::from_secs(600),
        "every answer accepted by Meta",
        || async {
            p.ensure_running(&procs)?;
            let failed = p
                .db
                .count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'failed'")
                .await?;
            anyhow::ensure!(failed == 0, "{failed} answers failed");
            Ok(p.sim_stats(&number.phone_number_id).await?.0 >= conversations as u64)
        },
    )
    .await?;
    let took = started.elapsed().as_secs_f64();
    procs.stop();

    let answered =
        p.db.count("SELECT count(*) FROM bot_traces WHERE outcome = 'answered'")
            .await?;
    anyhow::ensure!(
        answered == conversations as i64,
        "{answered} of {conversations} conversations answered by the model"
    );
    let log = p.sim_get("/_sim/llm/requests").await?;
    let mut arrivals: Vec<i64> = log["data"]
        .as_array()
        .map(|list| list.iter().filter_map(|r| r["at_ms"].as_i64()).collect())
        .unwrap_or_default();
    let pickups: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM attempted_at - run_at)::float8 * 1000 FROM jobs
          WHERE kind = 'inbox.process_webhook' AND attempted_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&p.db.pool)
    .await?;
    f.replies_per_s.push(conversations as f64 / took);
    f.in_flight.push(peak_in_flight(&mut arrivals) as f64);
    f.pickup_p99.push(percentile(&pickups, 0.99));
    Ok(())
}
