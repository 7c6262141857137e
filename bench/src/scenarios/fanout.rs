//! Scenario 2, campaign fan-out: a 100,000-recipient campaign created through the API and
//! launched with Meta's limits lifted (the simulator answers at once and allows 100,000/s; the
//! number's platform rate is the 10,000/s ceiling). Measures the seconds to accept the audience,
//! messages per second from launch until the last recipient has its wamid and `sent` state in
//! Postgres, CPU seconds per 1,000 messages of each process, and peak RSS. With 1 and 2 worker
//! processes.
//!
//! The simulator sends no status webhooks here: this scenario measures the send path; webhook
//! ingestion has its own scenario (5).

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
    for workers in [1usize, 2] {
        let mut f = Figures::default();
        for run in 1..=runs {
            eprintln!("[fanout] {workers} worker(s), run {run}/{runs}");
            let p = Platform::start("fanout", 16).await?;
            let result = one_run(&p, workers, recipients, &mut f).await;
            p.stop().await;
            result?;
        }
        accept.0.extend(f.accept_secs.0.iter().copied());
        let label = if workers == 1 {
            "1 worker process"
        } else {
            "2 worker processes"
        };
        rows.push(
            Row::new(
                "2 fan-out",
                format!("campaign of {recipients}, limits lifted, {label}: send rate"),
                f.rate.show(0),
                "msg/s",
                "10,000/s",
            )
            .beside(format!(
                "CPU s per 1,000 msgs: workers {:.2}, api {:.2}, Postgres {:.2}, sim {:.2}; peak RSS MiB: worker {:.0}, api {:.0}, sim {:.0}",
                f.cpu_workers.median(),
                f.cpu_api.median(),
                f.cpu_pg.median(),
                f.cpu_sim.median(),
                f.rss_worker.median(),
                f.rss_api.median(),
                f.rss_sim.median()
            )),
        );
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

async fn one_run(p: &Platform, workers: usize, n: usize, f: &mut Figures) -> anyhow::Result<()> {
    // Workers run from the start, as a deployed platform's would (the template sync is a job).
    let running = p.start_workers(workers, &sender(128))?;
    let tenant = p.register().await?;
    let number = p.connect_number(&tenant, 100_000.0, 10_000, false).await?;
    let template = p.approved_template(&tenant, &number).await?;
    let (campaign, accept) = p
        .create_campaign(&tenant, &template, n, 15_550_000_000)
        .await?;
    f.accept_secs.push(accept);

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
