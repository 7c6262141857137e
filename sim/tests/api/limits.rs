//! Throughput (130429), pair rate (131056) and the 24 h window (131047).

use std::time::{Duration, Instant};

use serde_json::json;
use wharf_sim::{NumberSpec, ReceivedFilter, WindowMode};

use crate::common::*;

fn template(to: &str) -> serde_json::Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template",
           "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}

#[tokio::test]
async fn throughput_bucket_rejects_bursts_and_admits_80_per_second() {
    let f = Fixture::new().await;
    f.sim
        .seed_template(
            WABA,
            wharf_sim::TemplateSpec {
                name: "hello_world".into(),
                ..Default::default()
            },
        )
        .unwrap();

    // Burst: 150 concurrent sends to distinct recipients; ≈80 pass, the rest get 130429.
    let mut tasks = Vec::new();
    for i in 0..150 {
        let http = f.http.clone();
        let url = f.url(&format!("{NUMBER}/messages"));
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&template(&format!("1650555{i:04}")))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            ok += 1;
        } else {
            assert_eq!(status, 429);
            assert_meta_error(&body, 130429);
            limited += 1;
        }
    }
    assert!((80..=100).contains(&ok), "burst admitted {ok}");
    assert!(limited >= 50, "limited {limited}");
    assert_eq!(
        f.sim.stats(NUMBER).unwrap().errors.get(&130429).copied(),
        Some(limited)
    );

    // Steady: retry-as-fast-as-possible for ~1.5 s; the admitted rate is ≈80/s.
    f.sim.clear_received();
    tokio::time::sleep(Duration::from_millis(1100)).await; // refill
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        i += 1;
        f.send(template(&format!("1650666{i:04}"))).await;
    }
    let stats = f.sim.stats(NUMBER).unwrap();
    // 80 burst + 80/s × 1.5 s = 200.
    assert!(
        (170..=230).contains(&stats.accepted),
        "accepted {}",
        stats.accepted
    );
    let rate = stats.achieved_rate().unwrap();
    assert!(rate > 60.0 && rate < 160.0, "rate {rate}");
    f.handle.shutdown().await;
}

#[tokio::test]
async fn pair_limit_allows_burst_of_45_then_131056() {
    let f = Fixture::new().await;
    f.sim
        .seed_template(
            WABA,
            wharf_sim::TemplateSpec {
                name: "hello_world".into(),
                ..Default::default()
            },
        )
        .unwrap();
    f.sim
        .set_throughput(NUMBER, None, Some(10_000.0), None)
        .unwrap();
    for i in 0..45 {
        let (status, body) = f.send(template(CUSTOMER)).await;
        assert_eq!(status, 200, "send {i}: {body}");
    }
    let (status, body) = f.send(template(CUSTOMER)).await;
    assert_eq!(status, 429);
    assert_meta_error(&body, 131056);
    // Other recipients are unaffected.
    let (status, _) = f.send(template("16505550000")).await;
    assert_eq!(status, 200);
    // A shrunk pair interval refills quickly.
    f.sim
        .set_pair_limit(NUMBER, Duration::from_millis(50), 1)
        .unwrap();
    assert_eq!(f.send(template(CUSTOMER)).await.0, 200);
    assert_eq!(f.send(template(CUSTOMER)).await.0, 429);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(f.send(template(CUSTOMER)).await.0, 200);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn window_131047_outside_ok_inside_and_async_mode() {
    let f = Fixture::new().await;
    // No inbound ever → 131047.
    let (status, body) = f.send(text(CUSTOMER, "hi")).await;
    assert_eq!(status, 400);
    assert_meta_error(&body, 131047);
    // Older than 24 h → 131047 (via the control API).
    let resp = f
        .http
        .put(format!(
            "{}/_sim/numbers/{NUMBER}/windows/{CUSTOMER}",
            f.base
        ))
        .json(&json!({"secs_ago": 25 * 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["open"],
        false
    );
    assert_meta_error(&f.send(text(CUSTOMER, "hi")).await.1, 131047);
    // Customer writes → window open → OK.
    f.sim
        .inbound(
            NUMBER,
            serde_json::from_value(json!({"from": CUSTOMER, "type": "text", "body": "hello"}))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(f.send(text(CUSTOMER, "hi")).await.0, 200);

    // Async mode: 200 + wamid, then a failed status webhook with 131047.
    f.sim
        .set_window_mode(NUMBER, Some(WindowMode::Async))
        .unwrap();
    let (status, body) = f.send(text("16505559999", "hi")).await;
    assert_eq!(status, 200);
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    f.hooks
        .wait_for("failed status", |_| {
            !f.hooks.statuses_for(&wamid).is_empty()
        })
        .await;
    let statuses = f.hooks.statuses_for(&wamid);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["status"], "failed");
    assert_eq!(statuses[0]["errors"][0]["code"], 131047);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn inbound_messages_consume_throughput() {
    let f = Fixture::new().await;
    f.sim
        .create_number(NumberSpec {
            id: Some("777".into()),
            waba_id: WABA.into(),
            mps: Some(5.0),
            ..Default::default()
        })
        .unwrap();
    for i in 0..5 {
        f.sim
            .inbound(
                "777",
                serde_json::from_value(
                    json!({"from": format!("1650555000{i}"), "type": "text", "body": "x"}),
                )
                .unwrap(),
            )
            .unwrap();
    }
    f.sim.open_window("777", CUSTOMER).unwrap();
    let (status, body) = f.send_as("777", TOKEN, text(CUSTOMER, "hi")).await;
    assert_eq!(status, 429, "{body}");
    assert_meta_error(&body, 130429);
    let recorded = f.sim.received(&ReceivedFilter {
        number_id: Some("777".into()),
        ..Default::default()
    });
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].error_code, Some(130429));
    f.handle.shutdown().await;
}

#[tokio::test]
async fn tight_loop_of_sends_with_high_limits() {
    let f = Fixture::new().await;
    f.sim
        .set_throughput(NUMBER, None, Some(1e6), Some(1_000_000))
        .unwrap();
    f.sim
        .set_window_mode(NUMBER, Some(WindowMode::Off))
        .unwrap();
    f.sim.set_number_webhook(NUMBER, None).unwrap();
    let n = 2000;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let http = f.http.clone();
        let url = f.url(&format!("{NUMBER}/messages"));
        tasks.push(tokio::spawn(async move {
            for i in 0..n / 8 {
                let resp = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&text(&format!("1650{w}{i:06}"), "hi"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(f.sim.stats(NUMBER).unwrap().accepted, n as u64);
    f.handle.shutdown().await;
}

/// Throughput check, not a correctness test: `cargo test -p wharf-sim --release -- --ignored
/// perf_20k --nocapture` prints the achieved request rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn perf_20k_sends() {
    let f = Fixture::new().await;
    f.sim
        .set_throughput(NUMBER, None, Some(1e6), Some(1_000_000))
        .unwrap();
    f.sim
        .set_window_mode(NUMBER, Some(WindowMode::Off))
        .unwrap();
    f.sim.set_number_webhook(NUMBER, None).unwrap();
    let total = 20_000;
    let workers = 32;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let http = f.http.clone();
        let url = f.url(&format!("{NUMBER}/messages"));
        tasks.push(tokio::spawn(async move {
            for i in 0..total / workers {
                let resp = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&text(&format!("1651{w:02}{i:06}"), "hi"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "{total} sends in {elapsed:?} = {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(f.sim.stats(NUMBER).unwrap().accepted, total as u64);
    f.handle.shutdown().await;
}
