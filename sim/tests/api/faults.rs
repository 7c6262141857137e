//! Fault injection over the control API: 5xx N times, per-recipient error codes, dropped
//! connections, timeouts, latency, expired token, async failures.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wharf_sim::{Endpoint, FaultAction, FaultSpec};

use crate::common::*;

async fn add_fault(f: &Fixture, spec: Value) -> u64 {
    let resp: Value = f
        .http
        .post(format!("{}/_sim/faults", f.base))
        .json(&spec)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["id"].as_u64().expect("fault id")
}

#[tokio::test]
async fn http_5xx_n_times_then_ok() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    add_fault(&f, json!({"number_id": NUMBER, "endpoint": "messages", "action": {"kind": "http", "status": 503}, "count": 2})).await;
    let (s1, b1) = f.send(text(CUSTOMER, "a")).await;
    let (s2, _) = f.send(text(CUSTOMER, "b")).await;
    let (s3, _) = f.send(text(CUSTOMER, "c")).await;
    assert_eq!((s1, s2, s3), (503, 503, 200));
    assert_eq!(b1["error"]["code"], 2);
    assert_eq!(b1["error"]["is_transient"], true);
    let list: Value = f
        .http
        .get(format!("{}/_sim/faults", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]), "exhausted rules are removed");
    assert_eq!(f.sim.stats(NUMBER).unwrap().faulted, 2);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn per_recipient_meta_error_and_async_failure() {
    let f = Fixture::new().await;
    f.sim
        .update_settings(|s| s.window_mode = wharf_sim::WindowMode::Off);
    let bad = "16505550666";
    add_fault(&f, json!({"number_id": NUMBER, "recipient": bad, "action": {"kind": "meta_error", "code": 131026}})).await;
    let (status, body) = f.send(text(bad, "x")).await;
    assert_eq!(status, 400);
    let e = assert_meta_error(&body, 131026);
    assert_eq!(e["message"], "(#131026) Message Undeliverable");
    assert_eq!(
        f.send(text(CUSTOMER, "x")).await.0,
        200,
        "other recipients unaffected"
    );
    assert_eq!(f.send(text(bad, "again")).await.0, 400, "until cleared");
    assert_eq!(
        f.sim.stats(NUMBER).unwrap().errors.get(&131026).copied(),
        Some(2)
    );
    f.http
        .delete(format!("{}/_sim/faults", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(f.send(text(bad, "x")).await.0, 200);

    // With an explicit HTTP status, and async (200 then a failed webhook).
    f.sim.add_fault(FaultSpec {
        number_id: Some(NUMBER.into()),
        recipient: None,
        endpoint: Some(Endpoint::Messages),
        action: FaultAction::MetaError {
            code: 130429,
            subcode: None,
            title: None,
            details: None,
            http_status: Some(400),
            is_async: false,
        },
        count: Some(1),
    });
    let (status, body) = f.send(text(CUSTOMER, "x")).await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_meta_error(&body, 130429)["error_data"]["details"],
        "Cloud API message throughput has been reached."
    );
    f.sim.add_fault(FaultSpec {
        number_id: Some(NUMBER.into()),
        recipient: None,
        endpoint: Some(Endpoint::Messages),
        action: FaultAction::MetaError {
            code: 131049,
            subcode: None,
            title: None,
            details: None,
            http_status: None,
            is_async: true,
        },
        count: Some(1),
    });
    let (status, body) = f.send(text(CUSTOMER, "x")).await;
    assert_eq!(status, 200);
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    f.hooks
        .wait_for("failed", |_| !f.hooks.statuses_for(&wamid).is_empty())
        .await;
    let st = &f.hooks.statuses_for(&wamid)[0];
    assert_eq!(st["status"], "failed");
    assert_eq!(st["errors"][0]["code"], 131049);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_timeout_latency_expired_token() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    // Dropped connection: the client sees a transport error, no HTTP response.
    add_fault(
        &f,
        json!({"number_id": NUMBER, "action": {"kind": "drop"}, "count": 1}),
    )
    .await;
    let err = f
        .http
        .post(f.url(&format!("{NUMBER}/messages")))
        .bearer_auth(TOKEN)
        .json(&text(CUSTOMER, "x"))
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_status());

    // Timeout: the request hangs until the client gives up.
    add_fault(
        &f,
        json!({"number_id": NUMBER, "action": {"kind": "timeout"}, "count": 1}),
    )
    .await;
    let err = f
        .http
        .post(f.url(&format!("{NUMBER}/messages")))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .json(&text(CUSTOMER, "x"))
        .send()
        .await
        .expect_err("must time out");
    assert!(err.is_timeout());

    // Latency.
    add_fault(
        &f,
        json!({"number_id": NUMBER, "action": {"kind": "latency", "ms": 200}, "count": 1}),
    )
    .await;
    let start = Instant::now();
    assert_eq!(f.send(text(CUSTOMER, "x")).await.0, 200);
    assert!(start.elapsed() >= Duration::from_millis(200));

    // Expired token.
    add_fault(&f, json!({"action": {"kind": "expired_token"}, "count": 1})).await;
    let (status, body) = f.send(text(CUSTOMER, "x")).await;
    assert_eq!(status, 401);
    assert_eq!(assert_meta_error(&body, 190)["error_subcode"], 463);
    assert_eq!(f.send(text(CUSTOMER, "x")).await.0, 200);

    // Received log shows what got through, with raw bodies on request.
    let recv: Value = f
        .http
        .get(format!(
            "{}/_sim/received?number_id={NUMBER}&raw=true",
            f.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data: Vec<&Value> = recv["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["error_code"].is_null())
        .collect();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["type"], "text");
    assert_eq!(data[0]["raw"]["text"]["body"], "x");
    assert!(data[0]["wamid"].as_str().unwrap().starts_with("wamid."));
    f.http
        .delete(format!("{}/_sim/received", f.base))
        .send()
        .await
        .unwrap();
    assert!(f.sim.received(&Default::default()).is_empty());
    f.handle.shutdown().await;
}
