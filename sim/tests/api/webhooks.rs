//! Signed status/inbound webhooks, retries after failures, every inbound type.

use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn status_webhooks_are_signed_ordered_and_priced() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    let mut body = text(CUSTOMER, "hi");
    body["biz_opaque_callback_data"] = "cb-1".into();
    let (status, resp) = f.send(body).await;
    assert_eq!(status, 200);
    let wamid = resp["messages"][0]["id"].as_str().unwrap().to_string();
    f.hooks
        .wait_for("3 statuses", |_| f.hooks.statuses_for(&wamid).len() == 3)
        .await;
    assert!(
        f.hooks.all().iter().all(|h| h.signature_ok),
        "every webhook signed"
    );
    let statuses = f.hooks.statuses_for(&wamid);
    let names: Vec<_> = statuses
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sent", "delivered", "read"]);
    let sent = &statuses[0];
    assert_eq!(sent["recipient_id"], CUSTOMER);
    assert!(sent["timestamp"].is_string());
    assert_eq!(sent["biz_opaque_callback_data"], "cb-1");
    assert_eq!(
        sent["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
    );
    // v23 requests still carry `conversation` on sent.
    assert!(sent["conversation"]["expiration_timestamp"].is_string());
    assert!(statuses[2].get("pricing").is_none());
    let hook = f
        .hooks
        .all()
        .into_iter()
        .find(|h| h.body["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] == wamid.as_str())
        .unwrap();
    assert_eq!(hook.body["object"], "whatsapp_business_account");
    assert_eq!(hook.body["entry"][0]["id"], WABA);
    let value = &hook.body["entry"][0]["changes"][0]["value"];
    assert_eq!(
        value["metadata"],
        json!({"display_phone_number": "15550783881", "phone_number_id": NUMBER})
    );

    // A template on v24 has billable marketing pricing and no conversation.
    f.sim
        .seed_template(
            WABA,
            wharf_sim::TemplateSpec {
                name: "promo".into(),
                category: Some("MARKETING".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let resp: Value = f
        .http
        .post(format!("{}/v24.0/{NUMBER}/messages", f.base))
        .bearer_auth(TOKEN)
        .json(
            &json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
                      "template": {"name": "promo", "language": {"code": "en_US"}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = resp["messages"][0]["id"].as_str().unwrap().to_string();
    f.hooks
        .wait_for("template statuses", |_| {
            f.hooks.statuses_for(&wamid).len() == 3
        })
        .await;
    let sent = &f.hooks.statuses_for(&wamid)[0];
    assert_eq!(sent["pricing"]["billable"], true);
    assert_eq!(sent["pricing"]["category"], "marketing");
    assert_eq!(sent["pricing"]["type"], "regular");
    assert!(sent.get("conversation").is_none());
    f.handle.shutdown().await;
}

#[tokio::test]
async fn webhook_retried_after_500() {
    let f = Fixture::new().await;
    f.hooks
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let res = f
        .sim
        .inbound(
            NUMBER,
            serde_json::from_value(json!({"from": CUSTOMER, "type": "text", "body": "hello"}))
                .unwrap(),
        )
        .unwrap();
    f.hooks
        .wait_for("delivery after retries", |h| !h.is_empty())
        .await;
    assert!(f.sim.webhooks_idle(std::time::Duration::from_secs(2)).await);
    let log = f.sim.webhook_log();
    let d = log.iter().find(|d| Some(d.id) == res.webhook_id).unwrap();
    let statuses: Vec<_> = d.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert!(d.delivered && !d.gave_up);
    // Exponential backoff: second gap ≥ first gap (base 20 ms, then 40 ms).
    let gaps: Vec<i64> = d
        .attempts
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .collect();
    assert!(gaps[0] >= 15 && gaps[1] >= 35, "gaps {gaps:?}");

    // Control API view of the log.
    let log: Value = f
        .http
        .get(format!("{}/_sim/webhooks?field=messages", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!log["data"].as_array().unwrap().is_empty());

    // Gives up after max attempts on a dead target.
    f.sim.update_settings(|s| s.webhook_max_attempts = 3);
    f.sim
        .set_number_webhook(
            NUMBER,
            Some(wharf_sim::WebhookTarget {
                url: "http://127.0.0.1:9/none".into(),
                app_secret: "x".into(),
            }),
        )
        .unwrap();
    let res = f
        .sim
        .inbound(
            NUMBER,
            serde_json::from_value(json!({"from": CUSTOMER, "type": "text", "body": "again"}))
                .unwrap(),
        )
        .unwrap();
    assert!(f.sim.webhooks_idle(std::time::Duration::from_secs(3)).await);
    let d = f
        .sim
        .webhook_log()
        .into_iter()
        .find(|d| Some(d.id) == res.webhook_id)
        .unwrap();
    assert_eq!(d.attempts.len(), 3);
    assert!(d.gave_up && !d.delivered);
    assert!(d.attempts[0].error.is_some());
    f.handle.shutdown().await;
}

#[tokio::test]
async fn every_inbound_type_has_meta_shape() {
    let f = Fixture::new().await;
    let cases = [
        json!({"type": "text", "text": {"body": "hi"}}),
        json!({"type": "image", "image": {"caption": "pic"}}),
        json!({"type": "audio", "audio": {}}),
        json!({"type": "video", "video": {}}),
        json!({"type": "document", "document": {"filename": "a.pdf"}}),
        json!({"type": "sticker", "sticker": {}}),
        json!({"type": "location", "location": {"latitude": 1.0, "longitude": 2.0, "name": "HQ"}}),
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ann"}, "phones": [{"phone": "+1555", "wa_id": "1555", "type": "CELL"}]}]}),
        json!({"type": "reaction", "reaction": {"message_id": "wamid.abc", "emoji": "❤️"}}),
        json!({"type": "button", "button": {"payload": "STOP", "text": "Stop"}, "context": {"from": "15550783881", "id": "wamid.t"}}),
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}}),
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "d"}}}),
        json!({"type": "unsupported"}),
        json!({"type": "system"}),
    ];
    for c in &cases {
        let mut spec = c.clone();
        spec["from"] = CUSTOMER.into();
        f.sim
            .inbound(NUMBER, serde_json::from_value(spec).unwrap())
            .unwrap();
    }
    let hooks = f
        .hooks
        .wait_for("all inbound", |h| h.len() == cases.len())
        .await;
    for h in &hooks {
        assert!(h.signature_ok);
        let value = &h.body["entry"][0]["changes"][0]["value"];
        assert_eq!(h.body["entry"][0]["changes"][0]["field"], "messages");
        let m = &value["messages"][0];
        let kind = m["type"].as_str().unwrap();
        assert!(m["id"].as_str().unwrap().starts_with("wamid."));
        assert!(m["timestamp"].is_string());
        assert_eq!(m["from"], CUSTOMER);
        if kind == "system" {
            assert!(value.get("contacts").is_none());
            assert_eq!(m["system"]["type"], "user_changed_number");
        } else {
            assert_eq!(value["contacts"][0]["wa_id"], CUSTOMER);
        }
        match kind {
            "unsupported" => assert_eq!(m["errors"][0]["code"], 131051),
            "image" | "audio" | "video" | "document" | "sticker" => {
                assert!(
                    m[kind]["id"].is_string()
                        && m[kind]["sha256"].is_string()
                        && m[kind]["mime_type"].is_string()
                )
            }
            "button" => assert_eq!(m["context"]["id"], "wamid.t"),
            _ => assert!(m.get(kind).is_some(), "{kind}: {m}"),
        }
    }
    // Inbound opened the window.
    assert!(f.sim.window_open(NUMBER, CUSTOMER).unwrap());

    // Other webhook kinds.
    f.sim
        .quality_update(NUMBER, "FLAGGED", Some("TIER_250"), Some("RED"))
        .unwrap();
    f.sim
        .account_update(
            WABA,
            json!({"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}),
        )
        .unwrap();
    let hooks = f
        .hooks
        .wait_for("quality + account", |h| h.len() == cases.len() + 2)
        .await;
    let fields: Vec<_> = hooks
        .iter()
        .map(|h| {
            h.body["entry"][0]["changes"][0]["field"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(fields.contains(&"phone_number_quality_update".into()));
    assert!(fields.contains(&"account_update".into()));
    f.handle.shutdown().await;
}

#[tokio::test]
async fn subscribed_apps_override_verifies_challenge() {
    let f = Fixture::new().await;
    let url = f.url(&format!("{WABA}/subscribed_apps"));
    let resp = f
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"override_callback_uri": f.hooks.url, "verify_token": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = f
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"override_callback_uri": f.hooks.url, "verify_token": "verify-me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let (_, _, body) = f.get(&format!("{WABA}/subscribed_apps")).await;
    assert_eq!(
        body["data"][0]["override_callback_uri"],
        f.hooks.url.as_str()
    );
    let resp = f.http.delete(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_, _, body) = f.get(&format!("{WABA}/subscribed_apps")).await;
    assert_eq!(body["data"], json!([]));
    f.handle.shutdown().await;
}

#[tokio::test]
async fn status_plan_skips_duplicates_and_shuffles() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    // Skip `delivered`, duplicate every status.
    let resp = f
        .http
        .patch(format!("{}/_sim/numbers/{NUMBER}", f.base))
        .json(&json!({"status_plan": {"sent_ms": 5, "delivered_ms": null, "read_ms": 10, "duplicate": true, "shuffle": true}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (_, body) = f.send(text(CUSTOMER, "hi")).await;
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    f.hooks
        .wait_for("4 statuses", |_| f.hooks.statuses_for(&wamid).len() == 4)
        .await;
    let mut names: Vec<String> = f
        .hooks
        .statuses_for(&wamid)
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["read", "read", "sent", "sent"]);
    f.handle.shutdown().await;
}
