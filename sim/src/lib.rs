//! `wharf-sim`: a strict, fast, in-memory stand-in for Meta's WhatsApp Cloud (Graph) API.
//!
//! Workers and end-to-end tests talk to it over real HTTP exactly as they would talk to
//! `graph.facebook.com`: it validates every request the way Meta does, answers with Meta's
//! error shapes and codes, enforces throughput / pair / 24 h window / management limits,
//! stores media, and sends signed status and inbound webhooks back to the platform. A
//! control API under `/_sim/...` (mirrored by methods on [`Sim`]) lets tests seed accounts,
//! play the customer, flip template statuses, inject faults and read what was received.
//!
//! Start it in-process on port 0 with [`spawn`], or run the `sim` binary.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = wharf_sim::spawn(wharf_sim::SimConfig::default()).await?;
//! let state = sim.state();
//! state.create_waba(wharf_sim::WabaSpec { id: Some("100".into()), ..Default::default() })?;
//! println!("Graph base URL: {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod control;
pub mod errors;
pub mod faults;
pub mod graph;
pub mod ids;
pub mod inbound;
pub mod limits;
pub mod llm;
mod server;
mod sim;
pub mod state;
pub mod statuses;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::{Endpoint, FaultAction, FaultSpec};
pub use inbound::{InboundResult, InboundSpec};
pub use sim::{ControlError, NumberSpec, ReceivedFilter, TemplateSpec, TokenSpec, WabaSpec};
pub use state::{NumberStats, Received, Settings, StatusPlan, WindowMode};
pub use webhooks::{Delivery, WebhookTarget};

/// Delays before the `sent`, `delivered` and `read` status webhooks of an accepted send.
#[derive(Debug, Clone, Copy)]
pub struct StatusDelays {
    /// Delay before `sent`.
    pub sent: Duration,
    /// Delay before `delivered`.
    pub delivered: Duration,
    /// Delay before `read`.
    pub read: Duration,
}

impl Default for StatusDelays {
    fn default() -> Self {
        Self {
            sent: Duration::from_millis(50),
            delivered: Duration::from_millis(100),
            read: Duration::from_millis(150),
        }
    }
}

/// Start-up configuration. Everything here can also be changed later through
/// [`Sim::update_settings`] except the address and the webhook pool size.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Accept any `vNN.N` version prefix; otherwise only those in `api_versions`.
    pub api_version_prefix_any: bool,
    /// Accepted versions when `api_version_prefix_any` is false.
    pub api_versions: Vec<String>,
    /// Base of the exponential webhook retry backoff (compressed clock).
    pub webhook_retry_base: Duration,
    /// Attempts per webhook before giving up.
    pub webhook_max_attempts: u32,
    /// Concurrent webhook deliveries.
    pub webhook_concurrency: usize,
    /// Default delays of status webhooks.
    pub status_delays: StatusDelays,
    /// Latency added to every Graph request.
    pub default_latency: Duration,
    /// Lifetime of media download URLs (Meta: 5 minutes).
    pub media_url_ttl: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_version_prefix_any: true,
            api_versions: vec!["v23.0".into(), "v24.0".into(), "v25.0".into()],
            webhook_retry_base: Duration::from_secs(1),
            webhook_max_attempts: 8,
            webhook_concurrency: 64,
            status_delays: StatusDelays::default(),
            default_latency: Duration::ZERO,
            media_url_ttl: Duration::from_secs(300),
        }
    }
}

/// Cheap-to-clone handle on the simulator's shared state; see the methods in `sim.rs`.
#[derive(Clone)]
pub struct Sim {
    pub(crate) inner: Arc<state::Inner>,
    pub(crate) config: Arc<SimConfig>,
    /// The LLM providers' stand-ins (see [`llm`]).
    pub(crate) llm: Arc<llm::LlmSim>,
}

/// A running simulator.
pub struct SimHandle {
    base_url: String,
    sim: Sim,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash). Graph paths are `{base}/v23.0/...`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The shared state, for direct control from tests.
    pub fn state(&self) -> Sim {
        self.sim.clone()
    }

    /// Stops serving, releases hanging requests and pending webhook retries, and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "simulator stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "simulator task failed"),
            Ok(Ok(())) => {}
        }
    }
}

/// Binds `config.addr` and serves in the background.
pub async fn spawn(config: SimConfig) -> anyhow::Result<SimHandle> {
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let sim = Sim::new(config);
    let base_url = format!("http://{addr}");
    sim.set_base_url(&base_url);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(run(listener, sim.clone(), async move {
        stopped.cancelled().await
    }));
    Ok(SimHandle {
        base_url,
        sim,
        stop,
        task,
    })
}

/// Serves the simulator on `listener` until `shutdown` resolves (used by the binary).
pub async fn run(
    listener: TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        sim.set_base_url(&format!("http://{addr}"));
    }
    let app = router(sim.clone());
    let result = server::serve(listener, app, shutdown, sim.inner.shutdown.clone()).await;
    sim.inner.shutdown.cancel();
    result
}

/// The full router: Graph API, media downloads, the LLM providers and the control API.
pub fn router(sim: Sim) -> axum::Router {
    graph::router(sim.clone())
        .merge(llm::router(sim.clone()))
        .merge(control::router(sim))
}
