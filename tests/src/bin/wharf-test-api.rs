//! The `api` binary, built inside the test package so tests can start it as a process
//! (`CARGO_BIN_EXE_wharf-test-api`).

fn main() {
    wharf_api::cli::main();
}
