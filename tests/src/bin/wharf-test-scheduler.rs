//! The `scheduler` binary, built inside the test package so process tests can run several
//! scheduler replicas (`CARGO_BIN_EXE_wharf-test-scheduler`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf_scheduler::main_from_env().await
}
