//! `wharf-bench`: the benchmark suite. It starts the simulator, the api and worker processes
//! (the release binaries next to it) against private databases, runs each scenario several
//! times and prints one table of medians with their spread (min–max), plus CPU use of the
//! simulator and the other processes beside the results. Postgres and Redis must be running:
//! `bench/run` makes sure they are, builds everything and then runs this.

mod platform;
mod procs;
mod scenarios;
mod stats;

use std::{future::Future, time::Duration, time::Instant};

use clap::Parser;

/// Command-line options; the defaults are the documented suite (under 15 minutes here).
#[derive(Parser, Debug)]
#[command(about = "Wharf benchmark suite (see bench/README.md)")]
struct Args {
    /// Scenarios to run: queue, fanout, rate, api, webhooks, routing, bot, kb (comma-separated).
    #[arg(
        long,
        default_value = "queue,fanout,rate,api,webhooks,routing,bot,kb",
        value_delimiter = ','
    )]
    only: Vec<String>,
    /// Runs per scenario (the rate scenario, 60 s each, runs `--rate-runs` times).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 2)]
    rate_runs: usize,
    /// Jobs of the queue scenario.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Recipients of the fan-out campaign.
    #[arg(long, default_value_t = 100_000)]
    recipients: usize,
    /// Measurement window of the rate scenario, seconds.
    #[arg(long, default_value_t = 60)]
    rate_window: u64,
    /// Request rate and duration of the API-latency scenario.
    #[arg(long, default_value_t = 100)]
    api_rps: u32,
    #[arg(long, default_value_t = 20)]
    api_secs: u64,
    /// Webhooks per run of the ingestion scenario.
    #[arg(long, default_value_t = 20_000)]
    webhooks: usize,
    /// Inbound rate and duration of the routing scenario.
    #[arg(long, default_value_t = 500)]
    routing_rate: u32,
    #[arg(long, default_value_t = 20)]
    routing_secs: u64,
    /// Conversations of the bot scenario (one customer message each).
    #[arg(long, default_value_t = 1000)]
    bot_conversations: usize,
    /// Rate at which the bot scenario's customers write (webhooks per second).
    #[arg(long, default_value_t = 200)]
    bot_rate: usize,
    /// Pages of the knowledge-base scenario's PDF.
    #[arg(long, default_value_t = 300)]
    kb_pages: usize,
    /// One-page documents the knowledge-base scenario uploads.
    #[arg(long, default_value_t = 1000)]
    kb_docs: usize,
    /// Chunks of each organization the knowledge-base scenario searches (comma-separated).
    #[arg(long, default_value = "10000,100000", value_delimiter = ',')]
    kb_chunks: Vec<usize>,
    /// Queries per organization searched (the api's model budget, 500 a minute by default,
    /// holds them back beyond about 450).
    #[arg(long, default_value_t = 300)]
    kb_queries: usize,
    /// Also write the table (Markdown) to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// One line of the result table.
pub struct Row {
    scenario: String,
    what: String,
    result: String,
    unit: String,
    target: String,
    beside: String,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        what: impl Into<String>,
        result: String,
        unit: &str,
        target: impl Into<String>,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            what: what.into(),
            result,
            unit: unit.into(),
            target: target.into(),
            beside: String::new(),
        }
    }

    /// What was measured beside the result (CPU use, error counts).
    pub fn beside(mut self, text: String) -> Self {
        self.beside = text;
        self
    }
}

/// Polls `check` every 50 ms until it says done; fails after `limit` (a run never hangs).
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let until = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < until, "{what}: not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn table(rows: &[Row], args: &Args, took: Duration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Wharf benchmarks, {} — {} run(s) per scenario ({} for rate fidelity), median (min–max); {} cores; suite took {:.1} min\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.runs,
        args.rate_runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        took.as_secs_f64() / 60.0
    ));
    out.push_str(
        "| scenario | measure | result | unit | target | beside it |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario, r.what, r.result, r.unit, r.target, r.beside
        ));
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut rows = Vec::new();
    for scenario in &args.only {
        let result = match scenario.as_str() {
            "queue" => scenarios::queue::run(args.runs, args.jobs).await,
            "fanout" => scenarios::fanout::run(args.runs, args.recipients).await,
            "rate" => {
                scenarios::rate::run(args.rate_runs, Duration::from_secs(args.rate_window)).await
            }
            "api" => {
                scenarios::api_latency::run(
                    args.runs,
                    args.api_rps,
                    Duration::from_secs(args.api_secs),
                )
                .await
            }
            "webhooks" => scenarios::webhooks::run(args.runs, args.webhooks).await,
            "routing" => {
                scenarios::routing::run(args.runs, args.routing_rate, args.routing_secs).await
            }
            "bot" => scenarios::bot::run(args.runs, args.bot_conversations, args.bot_rate).await,
            "kb" => {
                let options = scenarios::kb::Options {
                    pages: args.kb_pages,
                    docs: args.kb_docs,
                    chunks: args.kb_chunks.clone(),
                    queries: args.kb_queries,
                };
                scenarios::kb::run(args.runs, &options).await
            }
            other => anyhow::bail!("unknown scenario {other:?}"),
        };
        match result {
            Ok(r) => rows.extend(r),
            // One scenario failing still reports the others; the exit status says it failed.
            Err(e) => {
                eprintln!("[{scenario}] FAILED: {e:#}");
                rows.push(Row::new(
                    scenario.as_str(),
                    "FAILED",
                    format!("{e:#}"),
                    "",
                    "",
                ));
            }
        }
    }
    let text = table(&rows, &args, started.elapsed());
    println!("\n{text}");
    if let Some(path) = &args.out {
        std::fs::write(path, &text)?;
    }
    if rows.iter().any(|r| r.what == "FAILED") {
        std::process::exit(1);
    }
    Ok(())
}
