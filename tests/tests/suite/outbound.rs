//! Sending through the whole path: API (202 + queued row) → send job (limits, Meta call) →
//! simulator → status webhooks; Meta's error classes injected at the simulator, each ending in
//! the state ARCHITECTURE.md gives in "Meta errors"; the failed-messages dashboard (retry
//! really resends, discard stops for good); idempotency; tenancy and roles.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::outbound::{HOLD_RECHECK, SEND_RETRY_BASE, UNKNOWN_OUTCOME_WAIT};
use wharf_sim::{FaultAction, FaultSpec, ReceivedFilter, TemplateSpec, TokenSpec};
use wharf_tests::{
    platform::{meta_error, wait_for, Number, Platform},
    OrgAdmin,
};

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
}

async fn setup() -> Setup {
    SEND_RETRY_BASE.set(Duration::from_millis(50));
    UNKNOWN_OUTCOME_WAIT.set(Duration::from_millis(1500));
    HOLD_RECHECK.set(Duration::from_secs(30));
    let p = Platform::start_with(&[("META_TIMEOUT_MS", "2000")]).await;
    let admin = p.app.register_org("Send Co").await;
    let number = p.connect_number(admin.org_id).await;
    Setup { p, admin, number }
}

/// A conversation whose customer wrote `minutes_ago` (window open when < 24 h).
async fn conversation(s: &Setup, customer: &str, minutes_ago: i64) -> String {
    s.p.customer_sends(
        &s.number,
        json!({"from": customer, "profile_name": "Cust", "type": "text", "body": "hi",
               "timestamp": Utc::now().timestamp() - minutes_ago * 60}),
    );
    let pool = s.p.app.db.pool.clone();
    let customer = customer.to_string();
    wait_for("conversation created", || {
        let pool = pool.clone();
        let customer = customer.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1",
            )
            .bind(customer)
            .fetch_one(&pool)
            .await
            .unwrap()
                == 1
        }
    })
    .await;
    let id: Uuid = sqlx::query_scalar(
        "SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1",
    )
    .bind(&customer)
    .fetch_one(&s.p.app.db.pool)
    .await
    .unwrap();
    if minutes_ago >= 24 * 60 {
        // The simulator tracks its own window from the inbound timestamp too.
        s.p.sim
            .state()
            .close_window(&s.number.phone_number_id, &customer)
            .unwrap();
    }
    id.to_string()
}

async fn send(s: &Setup, conv: &str, body: Value) -> wharf_tests::Resp {
    s.p.app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &s.admin.token,
            body,
        )
        .await
}

async fn message(s: &Setup, id: &str) -> Value {
    sqlx::query_scalar::<_, Value>("SELECT to_jsonb(m) - 'raw' FROM messages m WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap()
}

async fn wait_status(s: &Setup, id: &str, status: &str) -> Value {
    let what = format!("message {id} {status}");
    let pool = s.p.app.db.pool.clone();
    let (id2, status2) = (id.to_string(), status.to_string());
    wait_for(&what, || {
        let pool = pool.clone();
        let (id, status) = (id2.clone(), status2.clone());
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM messages WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == status
        }
    })
    .await;
    message(s, id).await
}

fn received_to(s: &Setup, to: &str) -> Vec<wharf_sim::Received> {
    s.p.sim.state().received(&ReceivedFilter {
        to: Some(to.into()),
        accepted: Some(true),
        ..Default::default()
    })
}

async fn attempts(s: &Setup, id: &str) -> Vec<(String, Option<i32>)> {
    sqlx::query_as("SELECT outcome, error_code FROM message_attempts WHERE message_id = $1::uuid ORDER BY attempt, finished_at")
        .bind(id)
        .fetch_all(&s.p.app.db.pool)
        .await
        .unwrap()
}

fn fault(s: &Setup, to: &str, action: FaultAction, count: u32) {
    s.p.sim.state().add_fault(FaultSpec {
        number_id: Some(s.number.phone_number_id.clone()),
        recipient: Some(to.into()),
        endpoint: Some(wharf_sim::Endpoint::Messages),
        action,
        count: Some(count),
    });
}

#[tokio::test]
async fn a_text_goes_out_and_its_statuses_come_back() {
    let s = setup().await;
    let conv = conversation(&s, "15551110001", 5).await;
    let r = send(
        &s,
        &conv,
        json!({"type": "text", "text": "Your order shipped"}),
    )
    .await
    .expect(202);
    assert_eq!(r.data()["status"], "queued");
    assert!(r.data()["wamid"].is_null());
    let id = r.data()["id"].as_str().unwrap().to_string();
    let m = wait_status(&s, &id, "read").await;
    assert!(m["wamid"].as_str().unwrap().starts_with("wamid."));
    assert!(m["sent_at"].is_string() && m["delivered_at"].is_string() && m["read_at"].is_string());
    // Meta's status times are whole seconds, sentAt is not: a later step never shows earlier.
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(m[k].as_str().unwrap()).unwrap();
    assert!(
        at("sent_at") <= at("delivered_at") && at("delivered_at") <= at("read_at"),
        "{m}"
    );
    let got = received_to(&s, "15551110001");
    assert_eq!(got.len(), 1, "sent exactly once");
    assert_eq!(attempts(&s, &id).await, vec![("sent".into(), None)]);
}

/// An uploaded document above the JSON body limit is streamed to the blob store, checked
/// against its declared type, uploaded to Meta by the worker and sent.
#[tokio::test]
async fn an_uploaded_document_is_stored_checked_and_sent() {
    let s = setup().await;
    let conv = conversation(&s, "15551110009", 5).await;
    let post = |bytes: Vec<u8>, mime: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("caption", "your invoice")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name("invoice.pdf")
                    .mime_str(mime)
                    .unwrap(),
            );
        s.p.app
            .client
            .post(format!(
                "{}/api/v1/conversations/{conv}/messages/media",
                s.p.app.base_url
            ))
            .bearer_auth(&s.admin.token)
            .multipart(form)
            .send()
    };
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.resize(3 * 1024 * 1024, b' ');
    let r = wharf_tests::TestApp::read(post(pdf, "application/pdf").await.unwrap())
        .await
        .expect(202);
    assert_eq!(r.data()["type"], "document");
    let id = r.data()["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "read").await;
    let got = received_to(&s, "15551110009");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "document");
    // Declared a PDF, really an HTML page: refused, nothing queued.
    let r = wharf_tests::TestApp::read(
        post(b"<html>nope</html>".to_vec(), "application/pdf")
            .await
            .unwrap(),
    )
    .await
    .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "file"]));
    let queued =
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await;
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn every_message_type_is_built_as_meta_expects() {
    let s = setup().await;
    let conv = conversation(&s, "15551110002", 5).await;
    let bodies = [
        json!({"type": "text", "text": {"body": "see https://x.example.com", "previewUrl": true}}),
        json!({"type": "image", "image": {"link": "https://cdn.example.com/a.jpg", "caption": "look"}}),
        json!({"type": "document", "document": {"link": "https://cdn.example.com/a.pdf", "filename": "a.pdf"}}),
        json!({"type": "location", "location": {"latitude": 19.43, "longitude": -99.13, "name": "Office"}}),
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana", "first_name": "Ana"}, "phones": [{"phone": "+15550001"}]}]}),
        json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
               "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}, {"type": "reply", "reply": {"id": "n", "title": "No"}}]}}}),
        json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Choose"},
               "action": {"button": "Options", "sections": [{"title": "S", "rows": [{"id": "a", "title": "A"}]}]}}}),
    ];
    let mut ids = vec![];
    for b in &bodies {
        ids.push(
            send(&s, &conv, b.clone()).await.expect(202).data()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for id in &ids {
        wait_status(&s, id, "read").await;
    }
    let got = received_to(&s, "15551110002");
    let mut types: Vec<String> = got.iter().map(|r| r.kind.to_string()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "contacts",
            "document",
            "image",
            "interactive",
            "interactive",
            "location",
            "text"
        ]
    );
    // A reaction to the first message, and a reply to it.
    let first = &ids[0];
    let r =
        s.p.app
            .post(
                &format!("/api/v1/messages/{first}/react"),
                &s.admin.token,
                json!({"emoji": "👍"}),
            )
            .await
            .expect(202);
    wait_status(&s, r.data()["id"].as_str().unwrap(), "read").await;
    let r = send(
        &s,
        &conv,
        json!({"type": "text", "text": "replying", "replyTo": first}),
    )
    .await
    .expect(202);
    let m = wait_status(&s, r.data()["id"].as_str().unwrap(), "read").await;
    let wamid = message(&s, first).await["wamid"].clone();
    assert_eq!(m["request"]["context"]["message_id"], wamid);
}

#[tokio::test]
async fn bad_messages_are_422_and_nothing_is_queued() {
    let s = setup().await;
    let conv = conversation(&s, "15551110003", 5).await;
    for (body, loc) in [
        (json!({"type": "text"}), "text"),
        (json!({"type": "text", "text": ""}), "text"),
        (json!({"type": "text", "text": "x".repeat(4097)}), "text"),
        (json!({"type": "fax", "text": "x"}), "type"),
        (json!({"type": "image", "image": {}}), "image"),
        (
            json!({"type": "image", "image": {"id": "1", "link": "https://a.example.com/a.jpg"}}),
            "image",
        ),
        (
            json!({"type": "audio", "audio": {"id": "1", "caption": "no"}}),
            "audio.caption",
        ),
        (
            json!({"type": "image", "image": {"link": "ftp://x"}}),
            "image.link",
        ),
        (
            json!({"type": "location", "location": {"latitude": 91, "longitude": 0}}),
            "location.latitude",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "b"},
            "action": {"buttons": [{"reply": {"id": "1", "title": "a"}}, {"reply": {"id": "2", "title": "b"}}, {"reply": {"id": "3", "title": "c"}}, {"reply": {"id": "4", "title": "d"}}]}}}),
            "interactive.action.buttons",
        ),
        (
            json!({"type": "template", "template": {"name": "Bad Name", "language": "en_US"}}),
            "template.name",
        ),
        (
            json!({"type": "text", "text": "x", "replyTo": "nope"}),
            "replyTo",
        ),
    ] {
        let r = send(&s, &conv, body.clone()).await.expect(422);
        let locs: Vec<String> = r.body["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["loc"][1].as_str().unwrap_or("").to_string())
            .collect();
        assert!(locs.contains(&loc.to_string()), "{body}: {locs:?}");
    }
    let queued =
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await;
    assert_eq!(queued, 0);
    s.p.app
        .post_raw(
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&s.admin.token),
            "application/json",
            "{",
        )
        .await
        .expect(422);
}

#[tokio::test]
async fn free_form_outside_the_window_is_refused_but_templates_go() {
    let s = setup().await;
    let conv = conversation(&s, "15551110004", 25 * 60).await;
    let r = send(&s, &conv, json!({"type": "text", "text": "hello again"}))
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["type"], "template_required");
    assert!(r.body["detail"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("template"));
    assert_eq!(
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        0
    );
    assert_eq!(
        s.p.count("SELECT count(*) FROM jobs WHERE kind = 'outbound.send_message'")
            .await,
        0
    );
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "order_update".into(),
                body: Some("Your order shipped".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let r = send(
        &s,
        &conv,
        json!({"type": "template", "template": {"name": "order_update", "language": "en_US"}}),
    )
    .await
    .expect(202);
    wait_status(&s, r.data()["id"].as_str().unwrap(), "read").await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_result_without_a_second_send() {
    let s = setup().await;
    let conv = conversation(&s, "15551110005", 5).await;
    let path = format!("{}/api/v1/conversations/{conv}/messages", s.p.app.base_url);
    let post = |body: Value| {
        s.p.app
            .client
            .post(&path)
            .bearer_auth(&s.admin.token)
            .header("Idempotency-Key", "order-42-shipped")
            .json(&body)
            .send()
    };
    let first = wharf_tests::TestApp::read(
        post(json!({"type": "text", "text": "Shipped!"}))
            .await
            .unwrap(),
    )
    .await
    .expect(202);
    let again = wharf_tests::TestApp::read(
        post(json!({"type": "text", "text": "Shipped!"}))
            .await
            .unwrap(),
    )
    .await
    .expect(202);
    assert_eq!(first.data()["id"], again.data()["id"]);
    let other = wharf_tests::TestApp::read(
        post(json!({"type": "text", "text": "Different"}))
            .await
            .unwrap(),
    )
    .await
    .expect(409);
    assert!(other.body["detail"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    wait_status(&s, first.data()["id"].as_str().unwrap(), "read").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_to(&s, "15551110005").len(), 1);
}

#[tokio::test]
async fn terminal_errors_fail_at_once_with_metas_code_and_land_in_the_dashboard() {
    let s = setup().await;
    let conv = conversation(&s, "15551110006", 5).await;
    fault(&s, "15551110006", meta_error(131026), 1);
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = wait_status(&s, &id, "failed").await;
    assert_eq!(m["error_code"], 131026);
    assert_eq!(m["retryable"], false);
    assert!(m["error"]["title"].as_str().unwrap().len() > 3);
    assert_eq!(
        attempts(&s, &id).await,
        vec![("failed".into(), Some(131026))]
    );
    let list =
        s.p.app
            .get("/api/v1/messages/failed", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    assert_eq!(list.body["data"][0]["errorCode"], 131026);
    assert_eq!(list.body["data"][0]["contactWaId"], "15551110006");
    let list =
        s.p.app
            .get(
                "/api/v1/messages/failed?errorCode=131026&permanent=true",
                &s.admin.token,
            )
            .await
            .expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);
    let list =
        s.p.app
            .get("/api/v1/messages/failed?errorCode=130429", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(list.body["pagination"]["total"], 0);
    let stats =
        s.p.app
            .get("/api/v1/messages/failed/stats", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(stats.data()["total"], 1);
    assert_eq!(stats.data()["permanent"], 1);
    assert_eq!(stats.data()["byCode"][0]["code"], 131026);
    assert_eq!(stats.data()["byDay"][0]["count"], 1);
}

#[tokio::test]
async fn server_errors_and_throttling_retry_with_backoff_and_then_send_once() {
    let s = setup().await;
    let conv = conversation(&s, "15551110007", 5).await;
    fault(
        &s,
        "15551110007",
        FaultAction::Http {
            status: 503,
            body: None,
        },
        1,
    );
    fault(&s, "15551110007", meta_error(131000), 1);
    fault(&s, "15551110007", meta_error(130429), 1);
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = wait_status(&s, &id, "read").await;
    assert!(m["wamid"].is_string());
    let tries = attempts(&s, &id).await;
    assert_eq!(tries.len(), 4, "{tries:?}");
    assert_eq!(tries.last().unwrap().0, "sent");
    assert!(tries.iter().any(|t| t.1 == Some(130429)) && tries.iter().any(|t| t.1 == Some(131000)));
    assert_eq!(received_to(&s, "15551110007").len(), 1);
}

#[tokio::test]
async fn pair_rate_limit_delays_only_that_recipient() {
    let s = setup().await;
    let conv = conversation(&s, "15551110008", 5).await;
    let other = conversation(&s, "15551110009", 5).await;
    fault(&s, "15551110008", meta_error(131056), 1);
    let slow = send(&s, &conv, json!({"type": "text", "text": "a"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fast = send(&s, &other, json!({"type": "text", "text": "b"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&s, &fast, "sent").await;
    let m = wait_status(&s, &slow, "read").await;
    assert!(m["wamid"].is_string());
    assert_eq!(attempts(&s, &slow).await.first().unwrap().1, Some(131056));
}

#[tokio::test]
async fn an_expired_token_holds_sends_until_a_new_token_is_saved() {
    let s = setup().await;
    let conv = conversation(&s, "15551110010", 5).await;
    s.p.sim.state().expire_token(&s.number.token).unwrap();
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(
            send(&s, &conv, json!({"type": "text", "text": format!("m{i}")}))
                .await
                .expect(202)
                .data()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let pool = s.p.app.db.pool.clone();
    wait_for("sends held", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages WHERE hold_reason = 'token_invalid' AND status = 'queued'")
                .fetch_one(&pool).await.unwrap() == 3
        }
    })
    .await;
    let acct =
        s.p.app
            .get("/api/v1/whatsapp-accounts", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(acct.data()[0]["status"], "NEEDS_REAUTH");
    let failed =
        s.p.app
            .get("/api/v1/messages/failed?status=PENDING", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(failed.body["pagination"]["total"], 3, "held, not failed");
    assert_eq!(
        s.p.count("SELECT count(*) FROM messages WHERE status = 'failed'")
            .await,
        0
    );
    let fresh = s.p.sim.state().create_token(TokenSpec::default());
    s.p.app
        .patch(
            &format!("/api/v1/whatsapp-accounts/{}", s.number.account_id),
            &s.admin.token,
            json!({"accessToken": fresh}),
        )
        .await
        .expect(200);
    for id in &ids {
        wait_status(&s, id, "read").await;
    }
    assert_eq!(
        received_to(&s, "15551110010").len(),
        3,
        "each sent once, none lost"
    );
}

#[tokio::test]
async fn spam_rate_limit_fails_the_message_pauses_bulk_and_alerts() {
    let s = setup().await;
    let conv = conversation(&s, "15551110011", 5).await;
    fault(&s, "15551110011", meta_error(131048), 1);
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = wait_status(&s, &id, "failed").await;
    assert_eq!(m["error_code"], 131048);
    assert_eq!(m["retryable"], true);
    let alerts =
        s.p.app
            .get("/api/v1/whatsapp-accounts/alerts", &s.admin.token)
            .await
            .expect(200);
    assert!(alerts
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "spam_rate_limit"));
    assert_eq!(
        s.p.count("SELECT count(*) FROM whatsapp_accounts WHERE bulk_paused_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_timeout_is_outcome_unknown_and_the_status_webhook_settles_it_without_a_resend() {
    let s = setup().await;
    let conv = conversation(&s, "15551110012", 5).await;
    // Meta takes the message but the answer is lost: the platform must not send it twice.
    s.p.sim.state().add_fault(FaultSpec {
        number_id: Some(s.number.phone_number_id.clone()),
        recipient: Some("15551110012".into()),
        endpoint: Some(wharf_sim::Endpoint::Messages),
        action: FaultAction::LoseResponse,
        count: Some(1),
    });
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = wait_status(&s, &id, "read").await;
    assert!(m["wamid"].is_string());
    let tries = attempts(&s, &id).await;
    assert_eq!(tries.first().unwrap().0, "unknown", "{tries:?}");
    tokio::time::sleep(UNKNOWN_OUTCOME_WAIT.get() + Duration::from_millis(500)).await;
    assert_eq!(
        received_to(&s, "15551110012").len(),
        1,
        "settled by the webhook, not resent"
    );
}

#[tokio::test]
async fn retry_send_really_sends_again_and_keeps_the_history() {
    let s = setup().await;
    let conv = conversation(&s, "15551110013", 5).await;
    fault(&s, "15551110013", meta_error(131026), 1);
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&s, &id, "failed").await;
    let r =
        s.p.app
            .post(
                &format!("/api/v1/messages/{id}/retry-send"),
                &s.admin.token,
                json!({}),
            )
            .await
            .expect(202);
    assert_eq!(r.data()["status"], "queued");
    let m = wait_status(&s, &id, "read").await;
    assert!(m["wamid"].is_string());
    let tries = attempts(&s, &id).await;
    assert_eq!(
        tries,
        vec![("failed".into(), Some(131026)), ("sent".into(), None)]
    );
    assert_eq!(received_to(&s, "15551110013").len(), 1);
    // Not failed any more: a second retry is a conflict, not a second send.
    s.p.app
        .post(
            &format!("/api/v1/messages/{id}/retry-send"),
            &s.admin.token,
            json!({}),
        )
        .await
        .expect(409);
}

#[tokio::test]
async fn bulk_retry_by_filter_and_discard_for_good() {
    let s = setup().await;
    let mut failed = vec![];
    for i in 0..4 {
        let to = format!("1555222000{i}");
        let conv = conversation(&s, &to, 5).await;
        fault(&s, &to, meta_error(if i < 3 { 131000 } else { 131026 }), 20);
        failed.push(
            send(&s, &conv, json!({"type": "text", "text": "x"}))
                .await
                .expect(202)
                .data()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for id in &failed {
        wait_status(&s, id, "failed").await;
    }
    s.p.sim.state().clear_faults(None);
    // Discard the permanent one; bulk-retry every retryable one by filter.
    let r =
        s.p.app
            .post(
                "/api/v1/messages/failed/bulk-discard",
                &s.admin.token,
                json!({"messageIds": [failed[3]]}),
            )
            .await
            .expect(200);
    assert_eq!(r.data()["discarded"], 1);
    let r =
        s.p.app
            .post(
                "/api/v1/messages/failed/bulk-retry",
                &s.admin.token,
                json!({"selection": {"mode": "filter", "filter": {"permanent": false}}}),
            )
            .await
            .expect(200);
    assert_eq!(r.data()["queued"], 3);
    for id in &failed[..3] {
        wait_status(&s, id, "read").await;
    }
    s.p.app
        .post(
            &format!("/api/v1/messages/{}/retry-send", failed[3]),
            &s.admin.token,
            json!({}),
        )
        .await
        .expect(409);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        received_to(&s, "15552220003").is_empty(),
        "a discarded message is never sent"
    );
    let list =
        s.p.app
            .get("/api/v1/messages/failed", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(list.body["pagination"]["total"], 0);
    s.p.app
        .post(
            "/api/v1/messages/failed/bulk-retry",
            &s.admin.token,
            json!({}),
        )
        .await
        .expect(422);
}

#[tokio::test]
async fn another_tenant_cannot_send_retry_or_see_failures_and_agents_cannot_use_the_dashboard() {
    let s = setup().await;
    let conv = conversation(&s, "15551110014", 5).await;
    fault(&s, "15551110014", meta_error(131026), 1);
    let id = send(&s, &conv, json!({"type": "text", "text": "hi"}))
        .await
        .expect(202)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&s, &id, "failed").await;
    let b = s.p.app.register_org("Other Send Co").await;
    s.p.app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &b.token,
            json!({"type": "text", "text": "x"}),
        )
        .await
        .expect(404);
    s.p.app
        .post(
            &format!("/api/v1/messages/{id}/retry-send"),
            &b.token,
            json!({}),
        )
        .await
        .expect(404);
    s.p.app
        .post(
            &format!("/api/v1/messages/{id}/discard"),
            &b.token,
            json!({}),
        )
        .await
        .expect(404);
    s.p.app
        .post(
            &format!("/api/v1/messages/{id}/react"),
            &b.token,
            json!({"emoji": "x"}),
        )
        .await
        .expect(404);
    let r =
        s.p.app
            .post(
                "/api/v1/messages/failed/bulk-retry",
                &b.token,
                json!({"messageIds": [id]}),
            )
            .await
            .expect(200);
    assert_eq!(r.data()["queued"], 0);
    assert_eq!(
        s.p.app
            .get("/api/v1/messages/failed", &b.token)
            .await
            .expect(200)
            .body["pagination"]["total"],
        0
    );
    let (_, agent) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.p.app
        .get("/api/v1/messages/failed", &agent)
        .await
        .expect(403);
    s.p.app
        .post(
            &format!("/api/v1/messages/{id}/retry-send"),
            &agent,
            json!({}),
        )
        .await
        .expect(403);
    let read_key = s.p.app.create_key(&s.admin, &["whatsapp:read"]).await;
    s.p.app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &read_key,
            json!({"type": "text", "text": "x"}),
        )
        .await
        .expect(403);
    let send_key = s.p.app.create_key(&s.admin, &["whatsapp:send"]).await;
    s.p.app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &send_key,
            json!({"type": "text", "text": "x"}),
        )
        .await
        .expect(202);
}

#[tokio::test]
async fn a_template_error_fails_the_send_and_triggers_a_template_sync() {
    let s = setup().await;
    let conv = conversation(&s, "15551110015", 5).await;
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "paused_promo".into(),
                status: Some("PAUSED".into()),
                body: Some("Hi".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let id = send(
        &s,
        &conv,
        json!({"type": "template", "template": {"name": "paused_promo", "language": "en_US"}}),
    )
    .await
    .expect(202)
    .data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = wait_status(&s, &id, "failed").await;
    assert_eq!(m["error_code"], 132015);
    assert!(
        s.p.count("SELECT count(*) FROM jobs WHERE kind = 'templates.sync_account'")
            .await
            >= 1,
        "a sync was requested"
    );
}
