//! The `worker` process: see [`wharf_worker::main_from_env`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf_worker::main_from_env().await
}
