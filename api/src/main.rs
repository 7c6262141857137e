//! Thin binary: see `wharf_api::cli`.

fn main() {
    wharf_api::cli::main();
}
