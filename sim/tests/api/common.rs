//! Shared fixtures: a simulator with one WABA, one number and one token, plus a tiny
//! webhook receiver that verifies `X-Hub-Signature-256` like the platform must.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wharf_sim::{
    NumberSpec, Sim, SimConfig, SimHandle, StatusDelays, TokenSpec, WabaSpec, WebhookTarget,
};

pub const WABA: &str = "102290129340398";
pub const NUMBER: &str = "106540352242922";
pub const TOKEN: &str = "EAAG-test-token";
pub const APP_SECRET: &str = "test-app-secret";
pub const CUSTOMER: &str = "16505551234";

pub struct Fixture {
    pub handle: SimHandle,
    pub sim: Sim,
    pub base: String,
    pub http: reqwest::Client,
    pub hooks: Receiver,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: SimConfig) -> Self {
        let hooks = Receiver::start().await;
        let handle = wharf_sim::spawn(config).await.expect("spawn sim");
        let sim = handle.state();
        sim.create_waba(WabaSpec {
            id: Some(WABA.into()),
            ..Default::default()
        })
        .unwrap();
        sim.create_number(NumberSpec {
            id: Some(NUMBER.into()),
            waba_id: WABA.into(),
            display_phone_number: Some("15550783881".into()),
            webhook: Some(WebhookTarget {
                url: hooks.url.clone(),
                app_secret: APP_SECRET.into(),
            }),
            ..Default::default()
        })
        .unwrap();
        sim.create_token(TokenSpec {
            token: Some(TOKEN.into()),
            wabas: Some(vec![WABA.into()]),
            expires_in_secs: None,
        });
        let base = handle.base_url();
        Self {
            handle,
            sim,
            base,
            http: reqwest::Client::new(),
            hooks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v23.0/{}", self.base, path.trim_start_matches('/'))
    }

    /// POSTs a message body with the fixture token; returns (status, json).
    pub async fn send(&self, body: Value) -> (u16, Value) {
        self.send_as(NUMBER, TOKEN, body).await
    }

    pub async fn send_as(&self, number: &str, token: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("{number}/messages")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, HeaderMap, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }
}

pub fn test_config() -> SimConfig {
    SimConfig {
        webhook_retry_base: Duration::from_millis(20),
        status_delays: StatusDelays {
            sent: Duration::from_millis(5),
            delivered: Duration::from_millis(10),
            read: Duration::from_millis(15),
        },
        ..Default::default()
    }
}

pub fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}})
}

/// Asserts Meta's error shape and returns the error object.
pub fn assert_meta_error(body: &Value, code: u64) -> &Value {
    let e = &body["error"];
    assert_eq!(e["code"], code, "unexpected error: {body}");
    let message = e["message"].as_str().expect("message");
    assert!(
        // Cloud API errors read "(#code) Title"; Graph-level ones (190, 100/33, oauth) do not
        // and carry no `error_data`.
        message.starts_with(&format!("(#{code}) ")) || e.get("error_data").is_none(),
        "message format: {message}"
    );
    assert!(e["type"].is_string(), "type: {body}");
    assert!(
        e["fbtrace_id"].as_str().is_some_and(|s| !s.is_empty()),
        "fbtrace_id: {body}"
    );
    e
}

/// One webhook the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub signature_ok: bool,
    pub body: Value,
}

/// A webhook receiver: verifies signatures, can fail the first N requests.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    pub fail_next: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct RxState {
    hooks: Arc<Mutex<Vec<Hook>>>,
    fail_next: Arc<AtomicUsize>,
}

async fn receive(State(st): State<RxState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if st
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let ct_ok = headers
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    st.hooks.lock().unwrap().push(Hook {
        signature_ok: sig == expected && ct_ok,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    StatusCode::OK
}

async fn challenge(
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    if q.get("hub.mode").map(String::as_str) == Some("subscribe")
        && q.get("hub.verify_token").map(String::as_str) == Some("verify-me")
    {
        (
            StatusCode::OK,
            q.get("hub.challenge").cloned().unwrap_or_default(),
        )
    } else {
        (StatusCode::FORBIDDEN, String::new())
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/webhook", post(receive).get(challenge))
            .with_state(RxState {
                hooks: hooks.clone(),
                fail_next: fail_next.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            hooks,
            fail_next,
        }
    }

    pub fn all(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the received hooks (or panics after 5 s).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        for _ in 0..500 {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}; got {:#?}", self.all());
    }

    /// Status values received for `wamid`, in arrival order.
    pub fn statuses_for(&self, wamid: &str) -> Vec<Value> {
        self.all()
            .iter()
            .flat_map(|h| {
                h.body["entry"][0]["changes"][0]["value"]["statuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s["id"] == wamid)
            .collect()
    }
}
