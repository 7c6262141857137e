//! Everything two Wharf processes need: configuration, database access and migrations, the
//! durable job runtime, crypto for secrets at rest, telemetry and shutdown handling.

pub mod accounts;
pub mod bot;
pub mod campaigns;
pub mod config;
pub mod crypto;
pub mod cx;
pub mod db;
pub mod events;
pub mod inbox;
pub mod jobs;
pub mod kb;
pub mod llm;
pub mod meta;
pub mod onboarding;
pub mod outbound;
pub mod ratelimit;
pub mod redis_conn;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
pub use secret::Secret;
