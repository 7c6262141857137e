//! Identifier generation in Meta's formats.
//!
//! Graph object ids (media, templates) are numeric strings; message ids are `wamid.` plus
//! opaque base64. Uniqueness comes from a process-wide counter, not randomness, so two
//! simulators in one test binary never collide and nothing allocates beyond the string.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use base64::Engine;
use rand::Rng;

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

static BASE: OnceLock<u64> = OnceLock::new();

/// A 16-digit numeric Graph id (`"1037543291543636"`). Ids increase monotonically within a
/// process, which gives template listings a stable order for cursor paging.
pub fn object_id() -> String {
    let base = *BASE
        .get_or_init(|| rand::thread_rng().gen_range(10_000_000_000u64..90_000_000_000) * 100_000);
    (base + next()).to_string()
}

/// A unique `wamid.` for a message between `number` and `peer`.
pub fn wamid(peer: &str) -> String {
    let n = next();
    let r: u32 = rand::thread_rng().gen();
    // Shaped like Meta's: a short binary prefix, the peer digits, and an opaque suffix.
    let raw = format!("\x18\x0b{peer}\x15\x02\x00\x12\x18\x20{n:016X}{r:08X}\x00");
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

/// An opaque random token (media download URLs, access tokens made by the simulator).
pub fn token(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::thread_rng().gen();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
