//! Scenario 2, campaign fan-out: a 100,000-recipient campaign created through the API and
//! launched with Meta's limits lifted (the simulator answers at once and allows 100,000/s; the
//! number's platform rate is the 10,000/s ceiling). Measures the seconds to accept the audience,
//! messages per second from launch until the last recipient has its wamid and `sent` state in
//! Postgres, CPU seconds per 1,000 messages of each process, and peak RSS. With 1 and 2 worker
//! processes.
//!
//! Then the same campaign with 1 worker and Meta's status webhooks on: the simulator reports
//! `sent`, `delivered` and `read` for every accepted send (three webhooks per message, arriving
//! at three times the send rate), as Meta does. Measured: the send rate while they pour in,
//! the rate at which all of them are ingested and processed (from launch until every message
//! is `read` in Postgres), CPU per 1,000 messages of each process over that whole time, and
//! that the campaign's funnel (`GET /campaigns/{id}/stats`) counts every recipient delivered
//! and read.

use std::time::Duration;

use crate::{
    platform::{Platform, WorkerSpec},
    stats::Runs,
    wait_until, Row,
};

pub fn sender(outbound: u32) -> WorkerSpec {
    WorkerSpec {
        lanes: "outbound,bulk,inbound,maintenance",
        concurrency: format!("outbound={outbound},bulk=2,inbound=8,maintenance=1"),
        pool_size: 16,
        fetch_batch: 200,
    }
}

#[derive(Default)]
struct Figures {
    accept_secs: Runs,
    rate: Runs,
    /// With status webhooks: status webhooks processed per second, launch to the last `read`.
    statuses_rate: Runs,
    cpu_workers: Runs,
    cpu_api: Runs,
    cpu_pg: Runs,
    cpu_sim: Runs,
    rss_api: Runs,
    rss_worker: Runs,
    rss_sim: Runs,
}

pub async fn run(runs: usize, recipients: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut accept = Runs::default();
    // (worker processes, status webhooks on)
    for (workers, statuses) in [(1usize, false), (2, false), (1, true)] {
        let mut f = Figures::default();
        for run in 1..=runs {
            eprintln!("[fanout] {workers} worker(s), statuses {statuses}, run {run}/{runs}");
            let p = Platform::start("fanout", 16).await?;
            let result = one_run(&p, workers, recipients, statuses, &mut f).await;
            p.stop().await;
            result?;
        }
        if !statuses {
            accept.0.extend(f.accept_secs.0.iter().copied());
        }
        let label = match (workers, statuses) {
            (1, false) => "1 worker process",
            (_, false) => "2 worker processes",
            _ => "1 worker process, Meta's status webhooks on (3 per message)",
        };
        let beside = format!(
            "CPU s per 1,000 msgs: workers {:.3}, api {:.3}, Postgres {:.3}, sim {:.3}; peak RSS MiB: worker {:.0}, api {:.0}, sim {:.0}",
            f.cpu_workers.median(),
            f.cpu_api.median(),
            f.cpu_pg.median(),
            f.cpu_sim.median(),
            f.rss_worker.median(),
            f.rss_api.median(),
            f.rss_sim.median()
        );
        rows.push(
            Row::new(
                "2 fan-out",
                format!("campaign of {recipients}, limits lifted, {label}: send rate"),
                f.rate.show(0),
                "msg/s",
                "10,000/s",
            )
            .beside(if statuses {
                String::new()
            } else {
                beside.clone()
            }),
        );
        if statuses {
            rows.push(
                Row::new(
                    "2 fan-out",
                    format!(
                        "campaign of {recipients}, {label}: status webhooks ingested and processed, funnel complete"
                    ),
                    f.statuses_rate.show(0),
                    "statuses/s",
                    "3 × the send rate",
                )
                .beside(format!("{beside} (launch to the last status)")),
            );
        }
    }
    rows.insert(
        0,
        Row::new(
            "2 fan-out",
            format!("campaign of {recipients} recipients accepted (POST /campaigns, JSON)"),
            accept.show(2),
            "s",
            "a few seconds",
        ),
    );
    Ok(rows)
}

async fn one_run(
    p: &Platform,
    workers: usize,
    n: usize,
    statuses: bool,
    f: &mut Figures,
) -> anyhow::Result<()> {
    // Workers run from the start, as a deployed platform's would (the template sync is a job).
    let running = p.start_workers(workers, &sender(128))?;
    let tenant = p.register().await?;
    let number = p
        .connect_number(&tenant, 100_000.0, 10_000, statuses)
        .await?;
    let template = p.approved_template(&tenant, &number).await?;
    let (campaign, accept) = p
        .create_campaign(&tenant, &template, n, 15_550_000_000)
        .await?;
    f.accept_secs.push(accept);

    // A checkpoint now, not in the middle of the sends: one that falls inside a run makes
    // Postgres write whole pages again and was the main cause of run-to-run spread.
    sqlx::query("CHECKPOINT").execute(&p.db.pool).await?;
    let cpu0 = p.cpu(&running);
    let launched: f64 = sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        .fetch_one(&p.db.pool)
        .await?;
    p.launch(&tenant, &campaign).await?;
    // Watch the simulator (cheap), then confirm in Postgres: counting the campaign's messages
    // every 50 ms would itself load the database being measured.
    wait_until(Duration::from_secs(600), "the campaign's sends", || async {
        p.ensure_running(&running)?;
        Ok(p.sim_stats(&number.phone_number_id).await?.0 >= n as u64)
    })
    .await?;
    wait_until(
        Duration::from_secs(60),
        "the campaign's sends recorded",
        || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(p.campaign_sent(&campaign).await? >= n as i64)
        },
    )
    .await?;
    if statuses {
        wait_until(
            Duration::from_secs(900),
            "every status webhook processed",
            || async {
                p.ensure_running(&running)?;
                // Every 2 s: the count scans the campaign's messages, load on the database
                // being measured.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(p.campaign_read(&campaign).await? >= n as i64)
            },
        )
        .await?;
        let processed: f64 =
            sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
                .fetch_one(&p.db.pool)
                .await?;
        f.statuses_rate
            .push(3.0 * n as f64 / (processed - launched));
        let stats = p
            .call(
                Some(&tenant),
                reqwest::Method::GET,
                &format!("/campaigns/{campaign}/stats"),
                None,
                200,
            )
            .await?;
        let funnel = &stats["data"]["funnel"];
        anyhow::ensure!(
            funnel["sent"] == n && funnel["delivered"] == n && funnel["read"] == n,
            "the funnel does not count every recipient: {funnel}"
        );
    }
    let cpu = p.cpu(&running) - cpu0;
    let last: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(sent_at))::float8 FROM messages WHERE campaign_id = $1::uuid",
    )
    .bind(&campaign)
    .fetch_one(&p.db.pool)
    .await?;
    let (accepted, throttled) = p.sim_stats(&number.phone_number_id).await?;
    anyhow::ensure!(
        accepted == n as u64 && throttled == 0,
        "the simulator accepted {accepted} of {n} sends ({throttled} × 130429)"
    );
    let thousands = n as f64 / 1000.0;
    f.rate.push(n as f64 / (last - launched));
    f.cpu_workers.push(cpu.workers / thousands);
    f.cpu_api.push(cpu.api / thousands);
    f.cpu_pg.push(cpu.postgres / thousands);
    f.cpu_sim.push(cpu.sim / thousands);
    let (sim, api, worker) = p.peak_rss(&running);
    f.rss_sim.push(sim);
    f.rss_api.push(api);
    f.rss_worker.push(worker);
    running.stop();
    Ok(())
}
