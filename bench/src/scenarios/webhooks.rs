//! Scenario 5, webhook ingestion: signed `statuses` webhooks POSTed by 64 concurrent clients to
//! `/webhooks/whatsapp`; each is signature-checked, stored and its processing job enqueued
//! durably before the 200. No worker runs, so this measures ingestion alone. Reports accepted
//! webhooks per second and the p50/p99 latency.

use std::time::Instant;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::{
    platform::{Platform, Workers, APP_SECRET},
    stats::{percentile, Runs},
    Row,
};

const CONCURRENCY: usize = 64;

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn run(runs: usize, total: usize) -> anyhow::Result<Vec<Row>> {
    let (mut rate, mut p50, mut p99, mut api_cpu, mut pg_cpu) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    for run in 1..=runs {
        eprintln!("[webhooks] run {run}/{runs}");
        // The api's pool sized for the load, as a production deployment would be.
        let p = Platform::start("webhooks", 32).await?;
        let result = one_run(&p, total).await;
        p.stop().await;
        let (r, ms, cpu) = result?;
        rate.push(r);
        p50.push(percentile(&ms, 0.50));
        p99.push(percentile(&ms, 0.99));
        api_cpu.push(cpu.0);
        pg_cpu.push(cpu.1);
    }
    let what = format!("{total} signed status webhooks, {CONCURRENCY} concurrent senders");
    Ok(vec![
        Row::new(
            "5 webhooks",
            format!("{what}: accepted"),
            rate.show(0),
            "webhooks/s",
            "4,000/s",
        )
        .beside(format!(
            "CPU s per 1,000: api {:.2}, Postgres {:.2} (the load generator, not the sim, sends)",
            api_cpu.median(),
            pg_cpu.median()
        )),
        Row::new("5 webhooks", format!("{what}: p50"), p50.show(1), "ms", ""),
        Row::new(
            "5 webhooks",
            format!("{what}: p99"),
            p99.show(1),
            "ms",
            "p99 < 250 ms",
        ),
    ])
}

/// Returns webhooks/s, the latencies (ms) and CPU s per 1,000 webhooks of the api and Postgres.
async fn one_run(p: &Platform, total: usize) -> anyhow::Result<(f64, Vec<f64>, (f64, f64))> {
    let tenant = p.register().await?;
    let number = p.connect_number(&tenant, 80.0, 80, false).await?;
    let bodies: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let status = json!({"id": format!("wamid.bench{i}"), "status": "delivered",
                                "timestamp": "1750030073", "recipient_id": "15550001111"});
            let value = json!({"messaging_product": "whatsapp",
                               "metadata": {"display_phone_number": "15550000000", "phone_number_id": number.phone_number_id},
                               "statuses": [status]});
            serde_json::to_vec(&json!({"object": "whatsapp_business_account",
                                       "entry": [{"id": number.waba_id, "changes": [{"field": "messages", "value": value}]}]}))
            .expect("json")
        })
        .collect();
    let url = format!("{}/webhooks/whatsapp", p.api_url);
    let workers = Workers::none();
    let cpu0 = p.cpu(&workers);
    let started = Instant::now();
    let results: Vec<(bool, f64)> = futures::stream::iter(bodies.into_iter().map(|body| {
        let (http, url, sig) = (p.http.clone(), url.clone(), sign(&body));
        async move {
            let t = Instant::now();
            let ok = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = p.cpu(&workers) - cpu0;
    let failed = results.iter().filter(|(ok, _)| !ok).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {total} webhooks were not answered 200"
    );
    let stored = p.db.count("SELECT count(*) FROM webhook_events").await?;
    anyhow::ensure!(
        stored as usize == total,
        "{stored} of {total} webhooks stored"
    );
    let thousands = total as f64 / 1000.0;
    Ok((
        total as f64 / secs,
        results.into_iter().map(|(_, ms)| ms).collect(),
        (cpu.api / thousands, cpu.postgres / thousands),
    ))
}
