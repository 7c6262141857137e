//! Marketing consent and the blocklist: keywords a customer writes (STOP / BAJA / START, any
//! case and punctuation) change the contact with one confirmation each, users change it
//! through `PATCH /contacts/{waId}`, every change is recorded with its source, and a blocked
//! number's inbound is dropped and sends to it are refused.

use reqwest::Method;
use serde_json::{json, Value};
use wharf_tests::platform::wait_for;

use super::routing::Setup;

impl Setup {
    async fn contact(&self, wa_id: &str) -> Value {
        self.p
            .app
            .get(&format!("/api/v1/contacts/{wa_id}"), &self.admin.token)
            .await
            .expect(200)
            .data()
            .clone()
    }

    /// The texts Meta accepted for `to`, once nothing is left queued.
    async fn texts_sent_to(&self, to: &str) -> usize {
        wait_for("queued messages sent", || async {
            self.p
                .count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'queued'")
                .await
                == 0
        })
        .await;
        self.p.accepted_to(to, "text")
    }

    async fn inbound_count(&self, from: &str) -> i64 {
        self.p
            .count(&format!(
                "SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id
                   JOIN contacts c ON c.id = v.contact_id WHERE m.direction = 'INBOUND' AND c.wa_id = '{from}'"
            ))
            .await
    }

    /// The customer writes and the message is filed.
    async fn says(&self, from: &str, text: &str) {
        let before = self.inbound_count(from).await;
        self.p.customer_sends(
            &self.number,
            json!({"from": from, "type": "text", "body": text}),
        );
        wait_for("the message filed", || async {
            self.inbound_count(from).await > before
        })
        .await;
    }
}

#[tokio::test]
async fn keywords_opt_out_and_in_once_each_with_a_confirmation_and_a_recorded_source() {
    let s = Setup::start().await;
    let customer = "34600100200";
    s.says(customer, "¡Baja!").await;
    let c = s.contact(customer).await;
    assert_eq!(c["marketingOptOut"], true, "{c}");
    assert!(c["optedOutAt"].is_string());
    assert_eq!(c["consentHistory"][0]["change"], "OPT_OUT");
    assert_eq!(c["consentHistory"][0]["source"], "KEYWORD");
    assert_eq!(c["consentHistory"][0]["keyword"], "BAJA");
    assert_eq!(s.texts_sent_to(customer).await, 1, "one confirmation");

    // Saying it again changes nothing and sends nothing; a sentence with the word is no keyword.
    s.says(customer, "stop").await;
    s.says(customer, "please don't stop my order").await;
    assert_eq!(s.texts_sent_to(customer).await, 1);
    assert_eq!(
        s.contact(customer).await["consentHistory"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    s.says(customer, "START").await;
    let c = s.contact(customer).await;
    assert_eq!(c["marketingOptOut"], false);
    assert_eq!(c["consentHistory"][0]["change"], "OPT_IN");
    assert_eq!(s.texts_sent_to(customer).await, 2);

    // A user opts the contact out by hand: recorded with who did it.
    let c =
        s.p.app
            .patch(
                &format!("/api/v1/contacts/{customer}"),
                &s.admin.token,
                json!({"marketingOptOut": true}),
            )
            .await
            .expect(200);
    assert_eq!(c.data()["marketingOptOut"], true);
    assert_eq!(c.data()["consentHistory"][0]["source"], "API");
    assert_eq!(
        c.data()["consentHistory"][0]["userId"],
        s.admin.user_id.to_string()
    );
}

#[tokio::test]
async fn an_org_sets_its_own_keywords_and_bad_ones_are_refused_naming_each_field() {
    let s = Setup::start().await;
    let put = |body: Value| {
        s.p.app.request(
            Method::PUT,
            "/api/v1/routing-rules/opt-out",
            Some(&s.admin.token),
            Some(body),
        )
    };
    let defaults =
        s.p.app
            .get("/api/v1/routing-rules/opt-out", &s.admin.token)
            .await
            .expect(200);
    assert!(defaults.data()["optOutKeywords"]["en"]
        .as_array()
        .unwrap()
        .contains(&json!("STOP")));

    let bad = put(json!({"optOutKeywords": {"EN!": ["STOP"], "es": ["!!"]},
                          "optInConfirmation": ""}))
    .await
    .expect(422);
    let fields: Vec<String> = bad.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let loc = d["loc"].as_array().unwrap();
            loc[1..]
                .iter()
                .map(|l| l.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    for want in [
        "optOutKeywords.EN!",
        "optOutKeywords.es.0",
        "optInConfirmation",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:?}");
    }
    put(json!({"optOutKeywords": {"en": ["START"]}}))
        .await
        .expect(422);
    // Nothing was saved by the refused requests.
    let now =
        s.p.app
            .get("/api/v1/routing-rules/opt-out", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(now.data(), defaults.data());

    let saved = put(
        json!({"optOutKeywords": {"en": ["UNSUB"]}, "optOutConfirmation": "Done, no more offers."}),
    )
    .await
    .expect(200);
    assert_eq!(saved.data()["optOutKeywords"], json!({"en": ["UNSUB"]}));
    let customer = "34600100300";
    s.says(customer, "STOP").await;
    assert_eq!(s.contact(customer).await["marketingOptOut"], false);
    s.says(customer, "unsub").await;
    assert_eq!(s.contact(customer).await["marketingOptOut"], true);
    let body: String = sqlx::query_scalar(
        "SELECT m.content->>'body' FROM messages m JOIN conversations v ON v.id = m.conversation_id
           JOIN contacts c ON c.id = v.contact_id WHERE m.direction = 'OUTBOUND' AND c.wa_id = $1",
    )
    .bind(customer)
    .fetch_one(&s.p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(body, "Done, no more offers.");
    // null restores the built-in list.
    let restored = put(json!({"optOutKeywords": null})).await.expect(200);
    assert_eq!(
        restored.data()["optOutKeywords"],
        defaults.data()["optOutKeywords"]
    );
}

#[tokio::test]
async fn a_blocked_number_is_not_heard_and_not_sent_to_until_unblocked() {
    let s = Setup::start().await;
    let customer = "34600100400";
    let conversation = s.writes(customer, "hello").await;
    let id = conversation["id"].as_str().unwrap().to_string();
    let contact_path = format!("/api/v1/contacts/{customer}");
    let patch = |blocked: bool| {
        s.p.app
            .patch(&contact_path, &s.admin.token, json!({"blocked": blocked}))
    };
    let c = patch(true).await.expect(200);
    assert_eq!(c.data()["blocked"], true);
    assert_eq!(c.data()["consentHistory"][0]["change"], "BLOCK");

    let send_path = format!("/api/v1/conversations/{id}/messages");
    let send = || {
        s.p.app.post(
            &send_path,
            &s.admin.token,
            json!({"type": "text", "text": {"body": "hi"}}),
        )
    };
    let refused = send().await.expect(409);
    assert!(refused.body["detail"].as_str().unwrap().contains("blocked"));

    let before = s.inbound_count(customer).await;
    s.p.customer_sends(
        &s.number,
        json!({"from": customer, "type": "text", "body": "are you there?"}),
    );
    // The event is stored and processed; the message is dropped, with a note saying why.
    let noted = "SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL AND error LIKE '%blocked number%'";
    wait_for("the event processed", || async {
        s.p.count(noted).await == 1
    })
    .await;
    assert_eq!(s.inbound_count(customer).await, before, "dropped");

    patch(false).await.expect(200);
    send().await.expect(202);
    assert_eq!(
        s.contact(customer).await["consentHistory"][0]["change"],
        "UNBLOCK"
    );
    // Another organization sees no such contact.
    let other = s.p.app.register_org("Other Co").await;
    s.p.app
        .patch(
            &format!("/api/v1/contacts/{customer}"),
            &other.token,
            json!({"blocked": true}),
        )
        .await
        .expect(404);
}
