//! Template sends (132xxx), management (create/list/paging/delete) and the 80008 budget.

use serde_json::{json, Value};
use wharf_sim::TemplateSpec;

use crate::common::*;

fn send_tpl(name: &str, components: Value) -> Value {
    json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
           "template": {"name": name, "language": {"code": "en_US"}, "components": components}})
}

#[tokio::test]
async fn template_send_codes() {
    let f = Fixture::new().await;
    let seed = |name: &str, status: &str| {
        f.sim
            .seed_template(
                WABA,
                TemplateSpec {
                    name: name.into(),
                    status: Some(status.into()),
                    category: Some("MARKETING".into()),
                    components: Some(json!([
                        {"type": "HEADER", "format": "IMAGE"},
                        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} shipped"},
                        {"type": "BUTTONS", "buttons": [
                            {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}"},
                            {"type": "QUICK_REPLY", "text": "Stop"}]}
                    ])),
                    ..Default::default()
                },
            )
            .unwrap()
    };
    seed("order_shipped", "APPROVED");
    let paused = seed("paused_one", "PAUSED");
    seed("disabled_one", "DISABLED");
    seed("pending_one", "PENDING");
    let good = json!([
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/i.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "42"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "abc"}]}
    ]);
    let (status, body) = f.send(send_tpl("order_shipped", good.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");

    assert_meta_error(&f.send(send_tpl("nope", good.clone())).await.1, 132001);
    assert_meta_error(
        &f.send(send_tpl("pending_one", good.clone())).await.1,
        132001,
    );
    assert_meta_error(
        &f.send(send_tpl("paused_one", good.clone())).await.1,
        132015,
    );
    assert_meta_error(
        &f.send(send_tpl("disabled_one", good.clone())).await.1,
        132016,
    );
    // Wrong language → 132001.
    let mut wrong_lang = send_tpl("order_shipped", good.clone());
    wrong_lang["template"]["language"]["code"] = "pt_BR".into();
    assert_meta_error(&f.send(wrong_lang).await.1, 132001);
    // One body parameter short → 132000.
    let mut short = good.clone();
    short[1]["parameters"].as_array_mut().unwrap().pop();
    assert_meta_error(&f.send(send_tpl("order_shipped", short)).await.1, 132000);
    // Missing header image → 132000; missing URL button param → 132000.
    let no_header = json!([good[1], good[2]]);
    assert_meta_error(
        &f.send(send_tpl("order_shipped", no_header)).await.1,
        132000,
    );
    let no_button = json!([good[0], good[1]]);
    assert_meta_error(
        &f.send(send_tpl("order_shipped", no_button)).await.1,
        132000,
    );
    // Missing language → 131008.
    let (_, body) = f
        .send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template", "template": {"name": "order_shipped"}}))
        .await;
    assert_meta_error(&body, 131008);

    // Reinstating via the control API makes it sendable and emits the status webhook.
    let resp = f
        .http
        .post(format!("{}/_sim/templates/{paused}/status", f.base))
        .json(&json!({"event": "APPROVED"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(f.send(send_tpl("paused_one", good)).await.0, 200);
    let hooks = f
        .hooks
        .wait_for("template status webhook", |h| {
            h.iter().any(|h| {
                h.body["entry"][0]["changes"][0]["field"] == "message_template_status_update"
            })
        })
        .await;
    let h = hooks
        .iter()
        .find(|h| h.body["entry"][0]["changes"][0]["field"] == "message_template_status_update")
        .unwrap();
    let v = &h.body["entry"][0]["changes"][0]["value"];
    assert_eq!(v["event"], "APPROVED");
    assert_eq!(v["message_template_name"], "paused_one");
    assert!(v["message_template_id"].is_u64());
    assert!(h.body["entry"][0]["time"].is_i64());
    f.handle.shutdown().await;
}

#[tokio::test]
async fn create_list_page_and_delete() {
    let f = Fixture::new().await;
    let url = f.url(&format!("{WABA}/message_templates"));
    let create = |name: &str, lang: &str| {
        f.http.post(&url).bearer_auth(TOKEN).json(&json!({
            "name": name, "language": lang, "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Order {{1}} is ready", "example": {"body_text": [["42"]]}}]
        }))
        .send()
    };
    let resp = create("order_ready", "en_US").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-business-use-case-usage"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["category"], "UTILITY");

    // Duplicate name + language → 100 / 2388024.
    let resp = create("order_ready", "en_US").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(assert_meta_error(&body, 100)["error_subcode"], 2388024);
    // Same name, another language is fine; bad name → 100.
    assert_eq!(create("order_ready", "pt_BR").await.unwrap().status(), 200);
    assert_eq!(create("Order-Ready", "en_US").await.unwrap().status(), 400);

    for i in 0..30 {
        f.sim
            .seed_template(
                WABA,
                TemplateSpec {
                    name: format!("bulk_{i:02}"),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    // Page through with limit=10: 32 templates → 4 pages, `next` absent on the last.
    let mut names = Vec::new();
    let mut next = Some(format!("{url}?limit=10&fields=name,status"));
    let mut pages = 0;
    while let Some(page_url) = next {
        let body: Value = f
            .http
            .get(&page_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        for t in body["data"].as_array().unwrap() {
            assert!(t.get("components").is_none(), "fields filter");
            names.push(t["id"].as_str().unwrap().to_string());
        }
        assert!(body["paging"]["cursors"]["after"].is_string());
        next = body["paging"]["next"].as_str().map(String::from);
    }
    assert_eq!(pages, 4);
    assert_eq!(names.len(), 32);
    let mut dedup = names.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 32, "no template repeated across pages");

    // `after` cursor by hand, plus status filter.
    let (_, _, first) = f
        .get(&format!("{WABA}/message_templates?limit=5&status=APPROVED"))
        .await;
    assert_eq!(first["data"].as_array().unwrap().len(), 5);
    let after = first["paging"]["cursors"]["after"].as_str().unwrap();
    let (_, _, second) = f
        .get(&format!(
            "{WABA}/message_templates?limit=5&status=APPROVED&after={after}"
        ))
        .await;
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"]);
    assert!(second["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "APPROVED"));

    // Delete by name removes all languages.
    let resp = f
        .http
        .delete(format!("{url}?name=order_ready"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    assert!(f
        .sim
        .templates(WABA)
        .unwrap()
        .iter()
        .all(|t| t.name != "order_ready"));
    f.handle.shutdown().await;
}

#[tokio::test]
async fn management_budget_exhaustion_80008() {
    let f = Fixture::new().await;
    f.sim.set_management_budget(WABA, 4, true).unwrap();
    for i in 1..=4 {
        let (status, headers, _) = f.get(&format!("{WABA}/message_templates")).await;
        assert_eq!(status, 200);
        let usage: Value =
            serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
        assert_eq!(usage[WABA][0]["type"], "whatsapp_business_management");
        assert_eq!(usage[WABA][0]["call_count"], i * 25);
    }
    let (status, headers, body) = f.get(&format!("{WABA}/phone_numbers")).await;
    assert_eq!(status, 429);
    assert_meta_error(&body, 80008);
    let usage: Value =
        serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage[WABA][0]["call_count"], 100);
    assert!(
        usage[WABA][0]["estimated_time_to_regain_access"]
            .as_u64()
            .unwrap()
            > 0
    );

    // The control API can lift it again.
    let resp = f
        .http
        .put(format!("{}/_sim/wabas/{WABA}/budget", f.base))
        .json(&json!({"budget": 200, "reset": true}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (status, _, body) = f.get(&format!("{WABA}/phone_numbers")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], NUMBER);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn pricing_analytics_counts_delivered_templates() {
    let f = Fixture::new().await;
    f.sim
        .seed_template(
            WABA,
            TemplateSpec {
                name: "promo".into(),
                category: Some("MARKETING".into()),
                ..Default::default()
            },
        )
        .unwrap();
    for to in ["16505550001", "16505550002", "919876543210"] {
        let mut body = send_tpl("promo", json!([]));
        body["to"] = to.into();
        assert_eq!(f.send(body).await.0, 200);
    }
    let now = chrono::Utc::now().timestamp();
    let (status, _, body) = f
        .get(&format!(
            "{WABA}?fields=pricing_analytics.start({}).end({}).granularity(DAILY).dimensions(PRICING_CATEGORY,COUNTRY).metric_types(COST,VOLUME)",
            now - 3600,
            now + 3600
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let points = body["pricing_analytics"]["data"][0]["data_points"]
        .as_array()
        .unwrap();
    let us = points.iter().find(|p| p["country"] == "US").unwrap();
    assert_eq!(us["volume"], 2);
    assert_eq!(us["pricing_category"], "MARKETING");
    assert!(us["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(
        points.iter().find(|p| p["country"] == "IN").unwrap()["volume"],
        1
    );
    f.handle.shutdown().await;
}
