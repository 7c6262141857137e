//! The `scheduler` process: parse configuration, hand it and a shutdown signal to the library.

use wharf_scheduler::SchedulerConfig;
use wharf_shared::{shutdown, telemetry, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(telemetry::format_from_env(), "info,sqlx=warn");
    let config = Config::from_env()?;
    let scheduler = SchedulerConfig::from_env(&config)?;
    wharf_scheduler::run(scheduler, shutdown::on_signal()).await
}
