//! A conversation's moves through the API: assign, unassign, take over, follow-up, return to
//! the bot, resolve; each recorded in the detail's `events`; a CLOSED conversation refuses
//! them with a 409 naming its state, and the customer's next message opens a new one.

use serde_json::{json, Value};
use wharf_tests::platform::{wait_for, Platform};

async fn conversation_of(p: &Platform, token: &str, wa_id: &str, skip: Option<&str>) -> String {
    let find = || async {
        let list = p.app.get("/api/v1/conversations", token).await.expect(200);
        list.data()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["contact"]["waId"] == wa_id && c["id"].as_str() != skip)
            .map(|c| c["id"].as_str().unwrap().to_string())
    };
    wait_for("the customer's conversation", || async {
        find().await.is_some()
    })
    .await;
    find().await.unwrap()
}

fn event_types(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_conversation_moves_only_along_allowed_transitions_and_records_each_move() {
    let p = Platform::start().await;
    let admin = p.app.register_org("Inbox Co").await;
    let number = p.connect_number(admin.org_id).await;
    let (agent_id, agent) = p.app.create_user(&admin, "AGENT").await;
    p.customer_sends(
        &number,
        json!({"from": "15558880001", "type": "text", "body": "hi"}),
    );
    let id = conversation_of(&p, &admin.token, "15558880001", None).await;
    let path = |action: &str| format!("/api/v1/conversations/{id}/{action}");

    // Reading the conversation tells Meta: the customer sees the blue ticks.
    let r = p
        .app
        .post(&path("read"), &agent, json!({}))
        .await
        .expect(200);
    assert_eq!(r.data()["unreadCount"], 0);
    let receipts = || {
        p.sim
            .state()
            .received(&wharf_sim::ReceivedFilter {
                number_id: Some(number.phone_number_id.clone()),
                ..Default::default()
            })
            .into_iter()
            .filter(|r| r.kind == "read")
            .count()
    };
    wait_for("the read receipt reaches Meta", || async {
        receipts() == 1
    })
    .await;

    // Bad input changes nothing.
    let r = p
        .app
        .post(
            &path("assign"),
            &admin.token,
            json!({"userId": "nope", "teamId": 5}),
        )
        .await
        .expect(422);
    assert!(
        r.body["detail"].to_string().contains("userId"),
        "{}",
        r.body
    );
    // Another organization's user is unknown here.
    let other = p.app.register_org("Other Co").await;
    p.app
        .post(
            &path("assign"),
            &admin.token,
            json!({"userId": other.user_id}),
        )
        .await
        .expect(404);
    // ...and this conversation is unknown there.
    p.app
        .post(
            &path("assign"),
            &other.token,
            json!({"userId": other.user_id}),
        )
        .await
        .expect(404);
    p.app
        .get(&format!("/api/v1/conversations/{id}"), &other.token)
        .await
        .expect(404);

    let d = p
        .app
        .post(&path("assign"), &admin.token, json!({"userId": agent_id}))
        .await
        .expect(200);
    assert_eq!(d.data()["status"], "HUMAN_HANDLING");
    assert_eq!(d.data()["assignedTo"], agent_id.to_string());
    // Agents cannot assign; they can release and take over.
    p.app
        .post(&path("assign"), &agent, json!({"userId": agent_id}))
        .await
        .expect(403);
    let d = p
        .app
        .post(&path("unassign"), &agent, json!({}))
        .await
        .expect(200);
    assert_eq!(d.data()["status"], "OPEN");
    assert!(d.data()["assignedTo"].is_null());
    let d = p
        .app
        .post(&path("takeover"), &agent, json!({}))
        .await
        .expect(200);
    assert_eq!(d.data()["assignedTo"], agent_id.to_string());

    let d = p
        .app
        .post(
            &path("follow-up"),
            &agent,
            json!({"note": "call back Monday"}),
        )
        .await
        .expect(200);
    assert_eq!(d.data()["followUp"]["note"], "call back Monday");
    assert_eq!(d.data()["followUp"]["createdBy"], agent_id.to_string());
    let d = p.app.delete(&path("follow-up"), &agent).await.expect(200);
    assert!(d.data()["followUp"].is_null());

    let d = p
        .app
        .post(
            &path("return-to-bot"),
            &agent,
            json!({"handoffSummary": "wants a refund"}),
        )
        .await
        .expect(200);
    assert_eq!(d.data()["status"], "BOT_HANDLING");
    let d = p
        .app
        .patch(
            &format!("/api/v1/conversations/{id}"),
            &admin.token,
            json!({"category": "refunds"}),
        )
        .await
        .expect(200);
    assert_eq!(d.data()["category"], "refunds");
    let cats = p
        .app
        .get("/api/v1/conversations/categories", &agent)
        .await
        .expect(200);
    assert_eq!(cats.data(), &json!(["refunds"]));

    let d = p
        .app
        .post(&path("resolve"), &agent, json!({}))
        .await
        .expect(200);
    assert_eq!(d.data()["status"], "CLOSED");
    assert_eq!(
        event_types(d.data()),
        [
            "ASSIGNED",
            "UNASSIGNED",
            "TAKEOVER",
            "FOLLOW_UP_SET",
            "FOLLOW_UP_CLEARED",
            "RETURNED_TO_BOT",
            "RESOLVED"
        ]
    );
    let returned = &d.data()["events"][5];
    assert_eq!(returned["reason"], "wants a refund");
    assert_eq!(returned["fromUserId"], agent_id.to_string());

    // A CLOSED conversation refuses every move, naming its state, and stays as it was.
    for (action, body) in [
        ("assign", json!({"userId": agent_id})),
        ("takeover", json!({})),
        ("follow-up", json!({})),
        ("resolve", json!({})),
    ] {
        let r = p
            .app
            .post(&path(action), &admin.token, body)
            .await
            .expect(409);
        assert!(
            r.body["detail"].as_str().unwrap().contains("CLOSED"),
            "{action}: {}",
            r.body
        );
    }
    let d = p
        .app
        .get(&format!("/api/v1/conversations/{id}"), &admin.token)
        .await
        .expect(200);
    assert_eq!(event_types(d.data()).len(), 7);

    // The customer writes again: a new conversation, with the old one in its history.
    p.customer_sends(
        &number,
        json!({"from": "15558880001", "type": "text", "body": "me again"}),
    );
    let second = conversation_of(&p, &admin.token, "15558880001", Some(&id)).await;
    assert_ne!(second, id);
    let history = p
        .app
        .get(
            &format!("/api/v1/conversations/{second}/contact-history"),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(history.data()[0]["id"], id.as_str());
    assert_eq!(history.data()[0]["status"], "CLOSED");
}
