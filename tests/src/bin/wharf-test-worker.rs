//! The `worker` binary, built inside the test package so process tests can start real worker
//! processes (`CARGO_BIN_EXE_wharf-test-worker`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf_worker::main_from_env().await
}
