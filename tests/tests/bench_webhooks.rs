//! Webhook ingestion benchmark (ignored by default; figures go to BENCHMARKS.md):
//! signed status webhooks POSTed by 64 concurrent clients to `/webhooks/whatsapp`; each is
//! signature-checked, stored durably and its job enqueued before the 200. Reports accepted
//! webhooks per second and latency percentiles.
//!
//! `cargo test -p wharf-tests --release --test bench_webhooks -- --ignored --nocapture`

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use wharf_tests::platform::{messages_webhook, Platform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn webhook_ingestion_rate_and_latency() {
    let total: usize = std::env::var("BENCH_WEBHOOKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let concurrency = 64;
    // The api's pool sized for the load, as a production deployment would be.
    let p = Platform::start_without_worker_with(&[("DATABASE_POOL_SIZE", "32")]).await;
    let admin = p.app.register_org("Bench Co").await;
    let number = p.connect_number(admin.org_id).await;
    let secret = p.app_secret();
    let url = format!("{}/webhooks/whatsapp", p.app.base_url);
    let bodies: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let st = json!({"id": format!("wamid.bench{i}"), "status": "delivered",
                            "timestamp": "1750030073", "recipient_id": "15550001111"});
            serde_json::to_vec(&messages_webhook(&number, json!({"statuses": [st]}))).unwrap()
        })
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(bodies.into_iter().map(|body| {
        let (client, url, sig) = (
            client.clone(),
            url.clone(),
            wharf_sim::webhooks::sign(&secret, &body),
        );
        async move {
            let t = Instant::now();
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
            t.elapsed()
        }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let stored = p.count("SELECT count(*) FROM webhook_events").await;
    assert_eq!(stored as usize, total, "every webhook stored");
    println!(
        "webhooks: {total} in {:.2}s = {:.0}/s; latency p50 {:?} p99 {:?} max {:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );
}
