//! Thin binary: see `wharf_api::cli`.

/// mimalloc instead of glibc's allocator: many small, short-lived allocations per message
/// (JSON values, request bodies) made malloc/free a quarter of the send path's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    wharf_api::cli::main();
}
