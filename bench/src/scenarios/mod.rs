//! One module per scenario of issue 7; each returns table rows (medians over its runs).

pub mod api_latency;
pub mod bot;
pub mod fanout;
pub mod kb;
pub mod queue;
pub mod rate;
pub mod routing;
pub mod webhooks;
