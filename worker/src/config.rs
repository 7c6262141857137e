//! The worker's own settings, from environment variables (each with a working default).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WORKER_LANES` | all | lanes this process works on, comma-separated |
//! | `WORKER_CONCURRENCY` | `inbound=16,outbound=32,bulk=8,media=8,llm=8,maintenance=2` | slots per lane (listed lanes override the defaults) |
//! | `WORKER_FETCH_BATCH` | 100 | most jobs one fetch claims |
//! | `WORKER_POLL_MS` | 1000 | polling fallback when no NOTIFY arrives (capped at 1000) |
//! | `WORKER_LEASE_SECS` | 30 | lease of a running job, renewed by heartbeats |
//! | `WORKER_HEARTBEAT_SECS` | lease / 3 | heartbeat period |
//! | `WORKER_RESCUE_INTERVAL_SECS` | 10 | how often this worker rescues expired leases |
//! | `WORKER_SHUTDOWN_GRACE_SECS` | 30 | in-flight jobs get this long to finish on SIGTERM |
//! | `WORKER_METRICS_ADDR` | `127.0.0.1:9464` | Prometheus endpoint; `none` disables |
//! | `WORKER_DB_POOL_SIZE` | 20 | Postgres connections |
//! | `WORKER_FAIR_ORGS` | 64 | orgs one fetch round-robins over |
//! | `JOBS_RETENTION_HOURS` | 24 | completed and cancelled jobs are pruned after this |
//! | `JOBS_DEAD_RETENTION_HOURS` | 168 | dead jobs are pruned after this |
//!
//! Durations accept fractions (`WORKER_LEASE_SECS=1.5`) so tests run in seconds.

use std::{net::SocketAddr, time::Duration};

use wharf_shared::{
    config::{parse_or, ConfigError},
    jobs::Lane,
    Config,
};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub database_url: String,
    /// Lanes this process works on, with their slot counts.
    pub lanes: Vec<(Lane, usize)>,
    pub fetch_batch: usize,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub heartbeat_interval: Duration,
    pub rescue_interval: Duration,
    pub shutdown_grace: Duration,
    pub metrics_addr: Option<SocketAddr>,
    pub pool_size: u32,
    pub fair_orgs: i32,
    pub finished_retention: Duration,
    pub dead_retention: Duration,
}

impl WorkerConfig {
    /// Settings from the environment, on top of the shared configuration.
    pub fn from_env(config: &Config) -> Result<Self, ConfigError> {
        Self::from_lookup(config.database_url.expose().clone(), |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// Settings from any variable source (tests pass a closure over a map).
    pub fn from_lookup(
        database_url: String,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let lanes: Vec<Lane> = match get("WORKER_LANES") {
            None => Lane::ALL.to_vec(),
            Some(list) if list.trim() == "all" => Lane::ALL.to_vec(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.parse::<Lane>().map_err(|e| ConfigError::Invalid {
                        name: "WORKER_LANES",
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut concurrency: Vec<(Lane, usize)> = Lane::ALL
            .iter()
            .map(|l| (*l, l.default_concurrency()))
            .collect();
        if let Some(spec) = get("WORKER_CONCURRENCY") {
            for part in spec.split(',').filter(|s| !s.trim().is_empty()) {
                let invalid = |reason: String| ConfigError::Invalid {
                    name: "WORKER_CONCURRENCY",
                    reason,
                };
                let (lane, n) = part
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("{part:?}: expected lane=number")))?;
                let lane: Lane = lane
                    .parse()
                    .map_err(|e: wharf_shared::jobs::lanes::UnknownLane| invalid(e.to_string()))?;
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|e| invalid(format!("{part:?}: {e}")))?;
                if let Some(slot) = concurrency.iter_mut().find(|(l, _)| *l == lane) {
                    slot.1 = n.max(1);
                }
            }
        }
        let mut selected: Vec<(Lane, usize)> = concurrency
            .into_iter()
            .filter(|(l, _)| lanes.contains(l))
            .collect();
        selected.dedup_by_key(|(l, _)| *l);

        let secs = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            let v: f64 = parse_or(name, get(name), default)?;
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{v} is not a duration"),
                });
            }
            Ok(Duration::from_secs_f64(v))
        };
        let lease = secs("WORKER_LEASE_SECS", "30")?.max(Duration::from_millis(200));
        let heartbeat_interval = match get("WORKER_HEARTBEAT_SECS") {
            Some(_) => secs("WORKER_HEARTBEAT_SECS", "10")?,
            None => lease / 3,
        }
        .max(Duration::from_millis(50));
        let poll_ms: u64 = parse_or("WORKER_POLL_MS", get("WORKER_POLL_MS"), "1000")?;
        let metrics_addr = match get("WORKER_METRICS_ADDR").as_deref() {
            Some("none") | Some("off") => None,
            other => Some(parse_or(
                "WORKER_METRICS_ADDR",
                other.map(str::to_string),
                "127.0.0.1:9464",
            )?),
        };
        let hours = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            let h: f64 = parse_or(name, get(name), default)?;
            Ok(Duration::from_secs_f64(h.max(0.0) * 3600.0))
        };

        Ok(Self {
            database_url,
            lanes: selected,
            fetch_batch: parse_or::<usize>("WORKER_FETCH_BATCH", get("WORKER_FETCH_BATCH"), "100")?
                .max(1),
            poll_interval: Duration::from_millis(poll_ms.clamp(10, 1000)),
            lease,
            heartbeat_interval,
            rescue_interval: secs("WORKER_RESCUE_INTERVAL_SECS", "10")?
                .max(Duration::from_millis(50)),
            shutdown_grace: secs("WORKER_SHUTDOWN_GRACE_SECS", "30")?,
            metrics_addr,
            pool_size: parse_or::<u32>("WORKER_DB_POOL_SIZE", get("WORKER_DB_POOL_SIZE"), "20")?
                .max(4),
            fair_orgs: parse_or::<i32>("WORKER_FAIR_ORGS", get("WORKER_FAIR_ORGS"), "64")?.max(1),
            finished_retention: hours("JOBS_RETENTION_HOURS", "24")?,
            dead_retention: hours("JOBS_DEAD_RETENTION_HOURS", "168")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorkerConfig::from_lookup("postgres://x/y".into(), move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_cover_every_lane() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.lanes.len(), 6);
        assert!(c.lanes.contains(&(Lane::Outbound, 32)));
        assert_eq!(c.lease, Duration::from_secs(30));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert!(c.metrics_addr.is_some());
    }

    #[test]
    fn lanes_and_concurrency_are_configurable() {
        let c = cfg(&[
            ("WORKER_LANES", "inbound,bulk"),
            ("WORKER_CONCURRENCY", "bulk=3"),
            ("WORKER_METRICS_ADDR", "none"),
            ("WORKER_LEASE_SECS", "1.5"),
        ])
        .unwrap();
        assert_eq!(c.lanes, vec![(Lane::Inbound, 16), (Lane::Bulk, 3)]);
        assert!(c.metrics_addr.is_none());
        assert_eq!(c.lease, Duration::from_millis(1500));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(cfg(&[("WORKER_LANES", "inbound,nope")])
            .unwrap_err()
            .to_string()
            .contains("WORKER_LANES"));
        assert!(cfg(&[("WORKER_CONCURRENCY", "bulk")])
            .unwrap_err()
            .to_string()
            .contains("WORKER_CONCURRENCY"));
    }
}
