//! The `scheduler` process: see [`wharf_scheduler::main_from_env`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf_scheduler::main_from_env().await
}
