//! The `worker` process: parse configuration, hand it and a shutdown signal to the library.

use wharf_shared::{shutdown, telemetry, Config};
use wharf_worker::WorkerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(telemetry::format_from_env(), "info,sqlx=warn");
    let config = Config::from_env()?;
    let worker = WorkerConfig::from_env(&config)?;
    wharf_worker::run(worker, shutdown::on_signal()).await
}
