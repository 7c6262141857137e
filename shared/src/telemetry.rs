//! Tracing set-up shared by every binary: pretty logs in development, JSON when
//! `LOG_FORMAT=json`. Log fields never carry passwords, tokens or keys: those travel in
//! [`crate::Secret`] whose `Debug` is a mask.

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use crate::config::LogFormat;

pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Reads LOG_FORMAT before the full configuration is parsed, so configuration warnings are
/// already formatted as the operator asked.
pub fn format_from_env() -> LogFormat {
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok(_) => LogFormat::Pretty,
        Err(_) if matches!(std::env::var("WHARF_ENV").as_deref(), Ok("production")) => {
            LogFormat::Json
        }
        Err(_) => LogFormat::Pretty,
    }
}
