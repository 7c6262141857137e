//! What the scheduler drives in the inbox: a maintenance window opened and closed on time by
//! its jobs (customers answered once during it, held conversations routed after it), and the
//! idle-agent sweep fired once per tick and organization with two schedulers running.

use std::process::{Child, Command, Stdio};

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use wharf_sim::ReceivedFilter;
use wharf_tests::platform::wait_for;

use super::routing::Setup;

const SCHEDULER_BIN: &str = env!("CARGO_BIN_EXE_wharf-test-scheduler");

/// Scheduler processes, killed when the test ends (even when it fails).
struct Schedulers(Vec<Child>);

impl Drop for Schedulers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Setup {
    async fn maintenance_settings(&self) -> Value {
        self.p
            .app
            .get("/api/v1/routing-rules/maintenance", &self.admin.token)
            .await
            .expect(200)
            .data()
            .clone()
    }
}

#[tokio::test]
async fn a_scheduled_maintenance_window_opens_and_closes_on_time_then_held_conversations_route() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", None).await;
    let general = s.team("General", &[agent]).await;
    s.default_team(&general).await;
    let start = Utc::now() + chrono::Duration::seconds(2);
    let end = start + chrono::Duration::seconds(3);
    let saved =
        s.p.app
            .request(
                Method::PUT,
                "/api/v1/routing-rules/maintenance",
                Some(&s.admin.token),
                Some(
                    json!({"maintenanceMessage": "We are upgrading; back at 10:00.",
                        "scheduledStart": start, "scheduledEnd": end}),
                ),
            )
            .await
            .expect(200);
    assert_eq!(saved.data()["maintenanceMode"], false);
    assert_eq!(saved.data()["active"], false);

    wait_for("the window to open", || async {
        s.maintenance_settings().await["maintenanceMode"] == true
    })
    .await;
    assert!(Utc::now() >= start);
    let customer = "34622000001";
    let held = s.writes(customer, "is anyone there?").await;
    s.writes(customer, "hello??").await;
    assert_eq!(held["teamId"], Value::Null, "routing holds: {held}");

    wait_for("the window to close", || async {
        let m = s.maintenance_settings().await;
        m["maintenanceMode"] == false && m["scheduledStart"].is_null()
    })
    .await;
    assert!(Utc::now() >= end);
    let id = held["id"].as_str().unwrap().to_string();
    wait_for("the held conversation routed", || async {
        let c =
            s.p.app
                .get(&format!("/api/v1/conversations/{id}"), &s.admin.token)
                .await
                .expect(200);
        c.data()["assignedTo"] == agent.to_string()
    })
    .await;
    let replies =
        s.p.sim
            .state()
            .received(&ReceivedFilter {
                to: Some(customer.into()),
                accepted: Some(true),
                ..Default::default()
            })
            .len();
    assert_eq!(replies, 1, "one maintenance message for the window");
}

#[tokio::test]
async fn two_schedulers_fire_one_idle_agent_pass_per_organization_per_tick() {
    let s = Setup::start().await;
    let other = s.p.app.register_org("Second Co").await;
    for token in [&s.admin.token, &other.token] {
        s.p.app
            .request(
                Method::PUT,
                "/api/v1/routing-rules/idle-agent",
                Some(token),
                Some(json!({"enabled": true, "thresholdMinutes": 5, "inactivityMinutes": 5})),
            )
            .await
            .expect(200);
    }
    let spawn = || {
        Command::new(SCHEDULER_BIN)
            .env("DATABASE_URL", &s.p.app.db.url)
            .env(
                "SCHEDULER_CRON",
                "prune_jobs=off; templates_sync=off; campaigns_launch_due=off; maintenance_windows=off; idle_agents=* * * * * *",
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scheduler process")
    };
    let schedulers = Schedulers(vec![spawn(), spawn()]);
    let sweeps = "SELECT count(*) FROM jobs WHERE kind = 'cx.idle_agents_sweep'";
    wait_for("four ticks", || async { s.p.count(sweeps).await >= 4 }).await;
    drop(schedulers);
    // Every sweep has run its organizations' passes.
    wait_for("the sweeps done", || async {
        s.p.count(
            "SELECT count(*) FROM jobs WHERE kind LIKE 'cx.idle_agents%' AND state <> 'completed'",
        )
        .await
            == 0
    })
    .await;
    let ticks = s.p.count(sweeps).await;
    let distinct_ticks = s
        .p
        .count("SELECT count(DISTINCT unique_key) FROM jobs WHERE kind = 'cx.idle_agents_sweep'")
        .await;
    assert_eq!(ticks, distinct_ticks, "each tick fired once");
    for org in [s.admin.org_id, other.org_id] {
        let passes =
            s.p.count(&format!(
                "SELECT count(*) FROM jobs WHERE kind = 'cx.idle_agents' AND org_id = '{org}'"
            ))
            .await;
        assert_eq!(passes, ticks, "one pass per tick for {org}");
    }
}
