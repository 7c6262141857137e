//! The `scheduler` process: see [`wharf_scheduler::main_from_env`].

/// mimalloc instead of glibc's allocator: many small, short-lived allocations per message
/// (JSON values, request bodies) made malloc/free a quarter of the send path's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf_scheduler::main_from_env().await
}
