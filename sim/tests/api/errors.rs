//! Validation and auth errors come back in Meta's exact shape and codes.

use serde_json::json;
use wharf_sim::TokenSpec;

use crate::common::*;

#[tokio::test]
async fn validation_errors_have_meta_shape() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();

    // Missing messaging_product → 100.
    let (status, body) = f
        .send(json!({"to": CUSTOMER, "type": "text", "text": {"body": "hi"}}))
        .await;
    assert_eq!(status, 400);
    let e = assert_meta_error(&body, 100);
    assert_eq!(e["type"], "OAuthException");
    assert_eq!(e["message"], "(#100) Invalid parameter");
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(e["error_data"]["details"]
        .as_str()
        .unwrap()
        .contains("messaging_product"));

    // Missing `to` → 131008.
    let (status, body) = f
        .send(json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}))
        .await;
    assert_eq!(status, 400);
    assert_meta_error(&body, 131008);

    // Type without its object → 131008; unknown type → 131009.
    let (_, body) = f
        .send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image"}))
        .await;
    assert_meta_error(&body, 131008);
    let (_, body) =
        f.send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "hologram", "hologram": {}})).await;
    assert_meta_error(&body, 131009);

    // Text too long → 100.
    let (_, body) = f.send(text(CUSTOMER, &"a".repeat(4097))).await;
    assert_meta_error(&body, 100);

    // Media: both id and link; caption on audio.
    let (_, body) = f
        .send(
            json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
                     "image": {"id": "1", "link": "https://example.com/a.jpg"}}),
        )
        .await;
    assert_meta_error(&body, 100);
    let (_, body) = f
        .send(
            json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "audio",
                     "audio": {"link": "https://example.com/a.ogg", "caption": "no"}}),
        )
        .await;
    assert_meta_error(&body, 100);
    // Unknown media id → 131053.
    let (_, body) = f
        .send(json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"id": "999"}}))
        .await;
    assert_meta_error(&body, 131053);

    // Interactive: 4 buttons, duplicate titles, title too long.
    let buttons = |titles: &[&str]| {
        let b: Vec<_> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": t}}))
            .collect();
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "interactive",
               "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": b}}})
    };
    assert_meta_error(&f.send(buttons(&["a", "b", "c", "d"])).await.1, 131009);
    assert_meta_error(&f.send(buttons(&["a", "a"])).await.1, 131009);
    assert_meta_error(
        &f.send(buttons(&["this title is far too long"])).await.1,
        131009,
    );
    let (status, _) = f.send(buttons(&["Yes", "No"])).await;
    assert_eq!(status, 200);

    // List with 11 rows → 131009.
    let rows: Vec<_> = (0..11)
        .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
        .collect();
    let list = json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "interactive",
        "interactive": {"type": "list", "body": {"text": "Pick"},
            "action": {"button": "Options", "sections": [{"title": "All", "rows": rows}]}}});
    assert_meta_error(&f.send(list).await.1, 131009);

    // Every valid type is accepted.
    for body in [
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "location",
               "location": {"latitude": 1.5, "longitude": 2.5, "name": "Here"}}),
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "contacts",
               "contacts": [{"name": {"formatted_name": "Ann"}, "phones": [{"phone": "+1555"}]}]}),
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "reaction",
               "reaction": {"message_id": "wamid.X", "emoji": "👍"}}),
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
               "image": {"link": "https://example.com/a.jpg", "caption": "c"}}),
    ] {
        let (status, resp) = f.send(body.clone()).await;
        assert_eq!(status, 200, "{body} → {resp}");
        assert!(resp["messages"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("wamid."));
        assert!(resp["messages"][0].get("message_status").is_none());
    }
    f.handle.shutdown().await;
}

#[tokio::test]
async fn success_response_shape_and_read_receipts() {
    let f = Fixture::new().await;
    let inbound = f
        .sim
        .inbound(
            NUMBER,
            serde_json::from_value(
                json!({"from": CUSTOMER, "type": "text", "text": {"body": "hi"}}),
            )
            .unwrap(),
        )
        .unwrap();
    let (status, body) = f.send(text("+1 (650) 555-1234", "hello")).await;
    assert_eq!(status, 200);
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+1 (650) 555-1234");
    assert_eq!(body["contacts"][0]["wa_id"], CUSTOMER);

    let (status, body) = f
        .send(
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound.wamid}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, body) =
        f.send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.unknown"})).await;
    assert_eq!(status, 400);
    assert_meta_error(&body, 100);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn auth_errors() {
    let f = Fixture::new().await;
    f.sim.open_window(NUMBER, CUSTOMER).unwrap();
    // Unknown token → 401 / 190.
    let (status, body) = f.send_as(NUMBER, "nope", text(CUSTOMER, "x")).await;
    assert_eq!(status, 401);
    assert_meta_error(&body, 190);

    // Expired → 190 / 463.
    let t = f.sim.create_token(TokenSpec::default());
    f.sim.expire_token(&t).unwrap();
    let (status, body) = f.send_as(NUMBER, &t, text(CUSTOMER, "x")).await;
    assert_eq!(status, 401);
    assert_eq!(assert_meta_error(&body, 190)["error_subcode"], 463);

    // Revoked → 190 / 460.
    let t = f.sim.create_token(TokenSpec::default());
    f.sim.revoke_token(&t).unwrap();
    let (_, body) = f.send_as(NUMBER, &t, text(CUSTOMER, "x")).await;
    assert_eq!(assert_meta_error(&body, 190)["error_subcode"], 460);

    // Scoped to another WABA → 403 / 10.
    let t = f.sim.create_token(TokenSpec {
        wabas: Some(vec!["other".into()]),
        ..Default::default()
    });
    let (status, body) = f.send_as(NUMBER, &t, text(CUSTOMER, "x")).await;
    assert_eq!(status, 403);
    assert_meta_error(&body, 10);

    // Unknown number → 400 / 100 / 33, GraphMethodException.
    let (status, body) = f.send_as("424242", TOKEN, text(CUSTOMER, "x")).await;
    assert_eq!(status, 400);
    let e = assert_meta_error(&body, 100);
    assert_eq!(e["type"], "GraphMethodException");
    assert_eq!(e["error_subcode"], 33);

    // No token at all.
    let resp = f
        .http
        .post(f.url(&format!("{NUMBER}/messages")))
        .json(&text(CUSTOMER, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Status overrides per code.
    f.sim
        .set_error_status(190, axum::http::StatusCode::BAD_REQUEST);
    let (status, _) = f.send_as(NUMBER, "nope", text(CUSTOMER, "x")).await;
    assert_eq!(status, 400);
    f.handle.shutdown().await;
}

#[tokio::test]
async fn phone_number_fields_register_and_oauth() {
    let f = Fixture::new().await;
    let (status, _, body) = f.get(NUMBER).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], NUMBER);
    assert_eq!(body["display_phone_number"], "15550783881");
    assert!(body.get("throughput").is_none());
    let (_, _, body) = f
        .get(&format!(
            "{NUMBER}?fields=throughput,whatsapp_business_manager_messaging_limit"
        ))
        .await;
    assert_eq!(body["throughput"]["level"], "STANDARD");
    assert_eq!(body["whatsapp_business_manager_messaging_limit"], "TIER_1K");
    assert!(body.get("verified_name").is_none());

    // Register: bad pin → 133005; good → success.
    let register = |pin: &str| {
        f.http
            .post(f.url(&format!("{NUMBER}/register")))
            .bearer_auth(TOKEN)
            .json(&json!({"messaging_product": "whatsapp", "pin": pin}))
            .send()
    };
    let resp = register("000000").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_meta_error(&resp.json().await.unwrap(), 133005);
    let resp = register("123456").await.unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!({"success": true})
    );

    // OAuth code exchange (single use).
    f.sim
        .register_oauth_code("code-1", "EAAG-from-code", Some(vec![WABA.into()]));
    let url = format!(
        "{}/v23.0/oauth/access_token?client_id=1&client_secret=s&code=code-1",
        f.base
    );
    let body: serde_json::Value = f.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["access_token"], "EAAG-from-code");
    assert_eq!(body["token_type"], "bearer");
    let (status, _) = f
        .send_as(NUMBER, "EAAG-from-code", text(CUSTOMER, "x"))
        .await;
    assert_ne!(status, 401);
    let resp = f.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_meta_error(&resp.json().await.unwrap(), 100);

    // debug_token lists the WABA in granular scopes.
    let url = format!(
        "{}/v23.0/debug_token?input_token=EAAG-from-code&access_token=1|s",
        f.base
    );
    let body: serde_json::Value = f.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["is_valid"], true);
    assert_eq!(body["data"]["granular_scopes"][0]["target_ids"][0], WABA);
    f.handle.shutdown().await;
}
