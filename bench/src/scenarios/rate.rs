//! Scenario 3, rate fidelity: one number allowed 80 messages/s and one allowed 1,000/s, both
//! sending a campaign at once through two worker processes, with the simulator answering every
//! send after 200 ms (Meta's real latency, so 1,000/s needs about 200 requests in flight).
//! Reports the rate the simulator accepted over a 60-second window against the allowed rate,
//! and the number of 130429 (throughput exceeded) it returned, which must be zero.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{platform::Platform, scenarios::fanout::sender, stats::Runs, Row};

const LATENCY_MS: u64 = 200;
/// Sends before the window opens (dispatchers and connections warm up).
const WARM_UP: Duration = Duration::from_secs(5);

pub async fn run(runs: usize, window: Duration) -> anyhow::Result<Vec<Row>> {
    let rates = [80u32, 1000];
    let mut achieved = [Runs::default(), Runs::default()];
    let mut throttled = [0u64; 2];
    let mut sim_cpu = Runs::default();
    for run in 1..=runs {
        eprintln!("[rate] run {run}/{runs} ({} s window)", window.as_secs());
        let p = Platform::start("rate", 16).await?;
        let result = one_run(&p, &rates, window).await;
        p.stop().await;
        let (got, errors, cpu) = result?;
        for i in 0..2 {
            achieved[i].push(got[i]);
            throttled[i] += errors[i];
        }
        sim_cpu.push(cpu);
    }
    Ok(rates
        .iter()
        .enumerate()
        .map(|(i, rate)| {
            Row::new(
                "3 rate fidelity",
                format!(
                    "number allowed {rate}/s, Meta latency {LATENCY_MS} ms, {} s window",
                    window.as_secs()
                ),
                achieved[i].show(1),
                "msg/s",
                format!("{rate}/s, zero 130429"),
            )
            .beside(format!(
                "130429: {} over all runs; sim CPU {:.0}% of one core",
                throttled[i],
                sim_cpu.median()
            ))
        })
        .collect())
}

/// Returns the achieved rates, the 130429 counts and the simulator's CPU use (% of one core).
async fn one_run(
    p: &Platform,
    rates: &[u32; 2],
    window: Duration,
) -> anyhow::Result<([f64; 2], [u64; 2], f64)> {
    // 1,000/s at 200 ms needs ~200 sends in flight; two processes with 300 slots each.
    let running = p.start_workers(2, &sender(300))?;
    let tenant = p.register().await?;
    let mut numbers = Vec::new();
    let mut campaigns = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        let number = p
            .connect_number(&tenant, f64::from(rate), rate, false)
            .await?;
        p.sim_post(
            "/_sim/faults",
            json!({"number_id": number.phone_number_id, "endpoint": "messages",
                   "action": {"kind": "latency", "ms": LATENCY_MS}}),
        )
        .await?;
        let template = p.approved_template(&tenant, &number).await?;
        // Enough recipients to keep sending past the end of the window.
        let n = (f64::from(rate) * (window + WARM_UP).as_secs_f64() * 1.2) as usize + 100;
        let first_phone = 15_550_000_000 + (i as u64) * 10_000_000;
        let (campaign, _) = p
            .create_campaign(&tenant, &template, n, first_phone)
            .await?;
        numbers.push(number);
        campaigns.push(campaign);
    }
    for c in &campaigns {
        p.launch(&tenant, c).await?;
    }
    tokio::time::sleep(WARM_UP).await;
    let mut start = [0u64; 2];
    for (i, n) in numbers.iter().enumerate() {
        start[i] = p.sim_stats(&n.phone_number_id).await?.0;
    }
    let cpu0 = p.cpu(&running);
    let opened = Instant::now();
    tokio::time::sleep(window).await;
    let mut end = [0u64; 2];
    let mut errors = [0u64; 2];
    for (i, n) in numbers.iter().enumerate() {
        (end[i], errors[i]) = p.sim_stats(&n.phone_number_id).await?;
    }
    let secs = opened.elapsed().as_secs_f64();
    let cpu = p.cpu(&running) - cpu0;
    p.ensure_running(&running)?;
    for c in &campaigns {
        p.cancel(&tenant, c).await?;
    }
    running.stop();
    let achieved = [
        (end[0] - start[0]) as f64 / secs,
        (end[1] - start[1]) as f64 / secs,
    ];
    Ok((achieved, errors, cpu.sim / secs * 100.0))
}
