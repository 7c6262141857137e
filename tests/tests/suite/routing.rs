//! Routing end to end: customers write through the simulator; the first matching rule by
//! priority (ANY / ALL over message, phone, category and number conditions), else the default
//! team, takes the conversation; an ONLINE member under capacity gets it; otherwise it waits in
//! the team's queue until a member comes online.

use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin,
};

pub(crate) struct Setup {
    pub(crate) p: Platform,
    pub(crate) admin: OrgAdmin,
    pub(crate) number: Number,
}

impl Setup {
    pub(crate) async fn start() -> Self {
        let p = Platform::start().await;
        let admin = p.app.register_org("Routing Co").await;
        let number = p.connect_number(admin.org_id).await;
        Setup { p, admin, number }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> wharf_tests::Resp {
        self.p
            .app
            .post(&format!("/api/v1{path}"), &self.admin.token, body)
            .await
    }

    pub(crate) async fn team(&self, name: &str, members: &[Uuid]) -> String {
        let id = self
            .post("/teams", json!({"name": name}))
            .await
            .expect(201)
            .data()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for m in members {
            self.post(&format!("/teams/{id}/members"), json!({"userId": m}))
                .await
                .expect(201);
        }
        id
    }

    pub(crate) async fn default_team(&self, team: &str) {
        self.p
            .app
            .request(
                reqwest::Method::PUT,
                "/api/v1/routing-rules/default-team",
                Some(&self.admin.token),
                Some(json!({"teamId": team})),
            )
            .await
            .expect(200);
    }

    pub(crate) async fn agent(&self, status: &str, max: Option<i32>) -> Uuid {
        let (id, _) = self.p.app.create_user(&self.admin, "AGENT").await;
        if let Some(max) = max {
            self.p
                .app
                .patch(
                    &format!("/api/v1/users/{id}"),
                    &self.admin.token,
                    json!({"maxConversations": max}),
                )
                .await
                .expect(200);
        }
        self.presence(id, status).await;
        id
    }

    pub(crate) async fn presence(&self, id: Uuid, status: &str) {
        self.p
            .app
            .patch(
                &format!("/api/v1/users/{id}/status"),
                &self.admin.token,
                json!({"status": status}),
            )
            .await
            .expect(200);
    }

    /// `GET /conversations/{id}` as the admin sees it.
    pub(crate) async fn conversation(&self, id: &str) -> Value {
        self.p
            .app
            .get(&format!("/api/v1/conversations/{id}"), &self.admin.token)
            .await
            .expect(200)
            .data()
            .clone()
    }

    /// The customer writes; returns their conversation once it is filed.
    pub(crate) async fn writes(&self, from: &str, text: &str) -> Value {
        self.p.customer_sends(
            &self.number,
            json!({"from": from, "type": "text", "body": text}),
        );
        let find = || async {
            let list = self
                .p
                .app
                .get("/api/v1/conversations", &self.admin.token)
                .await
                .expect(200);
            list.data()
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["contact"]["waId"] == from)
                .cloned()
        };
        wait_for("the conversation", || async { find().await.is_some() }).await;
        find().await.unwrap()
    }
}

#[tokio::test]
async fn rules_by_priority_then_the_default_team_and_available_agents_only() {
    let s = Setup::start().await;
    let (a, b, c, d) = (
        s.agent("ONLINE", Some(1)).await,
        s.agent("AWAY", None).await,
        s.agent("ONLINE", None).await,
        s.agent("ONLINE", None).await,
    );
    let sales = s.team("Sales", &[a, b]).await;
    let support = s.team("Support", &[c]).await;
    let general = s.team("General", &[d]).await;
    s.default_team(&general).await;
    let vip = s
        .post(
            "/routing-rules",
            json!({"name": "vip orders", "teamId": sales, "matchType": "ALL",
                   "conditions": [{"field": "phone", "operator": "startsWith", "value": "+1555999"},
                                  {"field": "message", "operator": "contains", "value": "ORDER"}]}),
        )
        .await
        .expect(201);
    let refunds = s
        .post(
            "/routing-rules",
            json!({"name": "refunds", "teamId": support, "matchType": "ANY",
                   "conditions": [{"field": "message", "operator": "regex", "value": "\\brefunds?\\b"},
                                  {"field": "whatsappAccountId", "operator": "in", "value": ["00000000-0000-4000-8000-000000000000"]}]}),
        )
        .await
        .expect(201);
    assert_eq!(vip.data()["priority"], 0);
    assert_eq!(refunds.data()["priority"], 1);

    // ALL: both conditions.
    let c1 = s.writes("15559990001", "where is my order?").await;
    assert_eq!(c1["teamId"], sales.as_str());
    assert_eq!(c1["assignedTo"], a.to_string());
    assert_eq!(c1["status"], "HUMAN_HANDLING");
    // ALL fails on the phone; ANY matches the regex.
    let c2 = s.writes("15551110002", "I want a refund").await;
    assert_eq!(c2["teamId"], support.as_str());
    assert_eq!(c2["assignedTo"], c.to_string());
    // Nothing matches: the default team.
    let c3 = s.writes("15551110003", "hello").await;
    assert_eq!(c3["teamId"], general.as_str());
    assert_eq!(c3["assignedTo"], d.to_string());
    // Both rules match: priority decides...
    let c4 = s.writes("15559990004", "order refund").await;
    assert_eq!(c4["teamId"], sales.as_str());
    // ...A is at capacity (1) and B is AWAY: it waits unassigned in Sales' queue.
    assert!(c4["assignedTo"].is_null());
    assert_eq!(c4["status"], "OPEN");
    // B comes online and picks it up, recorded with the reason.
    s.presence(b, "ONLINE").await;
    let id4 = c4["id"].as_str().unwrap();
    let detail =
        s.p.app
            .get(&format!("/api/v1/conversations/{id4}"), &s.admin.token)
            .await
            .expect(200);
    assert_eq!(detail.data()["assignedTo"], b.to_string());
    let event = &detail.data()["events"][0];
    assert_eq!(event["type"], "ASSIGNED");
    assert!(event["actorId"].is_null());
    assert_eq!(event["reason"], "an agent became available");
    let c1_detail =
        s.p.app
            .get(
                &format!("/api/v1/conversations/{}", c1["id"].as_str().unwrap()),
                &s.admin.token,
            )
            .await
            .expect(200);
    assert_eq!(
        c1_detail.data()["events"][0]["reason"],
        "routing rule \"vip orders\""
    );

    // Reordered, the refunds rule comes first.
    let order = json!({"orderedIds": [refunds.data()["id"], vip.data()["id"]]});
    let rules = s.post("/routing-rules/reorder", order).await.expect(200);
    assert_eq!(rules.data()[0]["name"], "refunds");
    let c5 = s.writes("15559990005", "order refund").await;
    assert_eq!(c5["teamId"], support.as_str());
}

#[tokio::test]
async fn bad_rules_and_teams_are_refused_with_every_field_named() {
    let s = Setup::start().await;
    let team = s.team("Sales", &[]).await;
    let r = s
        .post(
            "/routing-rules",
            json!({"name": "bad", "teamId": team, "matchType": "SOME",
                   "conditions": [{"field": "mood", "operator": "regex", "value": "(unclosed"},
                                  {"field": "phone", "operator": "in", "value": "1555"}]}),
        )
        .await
        .expect(422);
    let locs = r.body["detail"].to_string();
    for part in [
        "\"matchType\"",
        "\"conditions\",\"0\",\"field\"",
        "\"conditions\",\"0\",\"value\"",
        "\"conditions\",\"1\",\"value\"",
    ] {
        assert!(locs.contains(part), "{part} missing from {locs}");
    }
    s.post(
        "/routing-rules",
        json!({"name": "empty", "teamId": team, "conditions": []}),
    )
    .await
    .expect(422);
    // Another organization's team is not there.
    let other = s.p.app.register_org("Other Co").await;
    let r = s
        .p
        .app
        .post(
            "/api/v1/routing-rules",
            &other.token,
            json!({"name": "x", "teamId": team, "conditions": [{"field": "message", "operator": "contains", "value": "x"}]}),
        )
        .await
        .expect(404);
    assert!(r.body["detail"].as_str().unwrap().contains("Team"));
    let rules =
        s.p.app
            .get("/api/v1/routing-rules", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(rules.data().as_array().unwrap().len(), 0);
    // Team schedules are checked like business hours.
    let r = s
        .p
        .app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/teams/{team}/schedule"),
            Some(&s.admin.token),
            Some(json!({"timezone": "Nowhere/City", "slots": [{"dayOfWeek": 1, "start": "10:00", "end": "10:00"}]})),
        )
        .await
        .expect(422);
    let locs = r.body["detail"].to_string();
    assert!(
        locs.contains("timezone") && locs.contains("must differ from start"),
        "{locs}"
    );
    // Duplicate team names conflict; deactivated teams leave the list.
    s.post("/teams", json!({"name": "sales"})).await.expect(409);
    s.p.app
        .delete(&format!("/api/v1/teams/{team}"), &s.admin.token)
        .await
        .expect(204);
    let teams =
        s.p.app
            .get("/api/v1/teams", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(teams.data().as_array().unwrap().len(), 0);
}

/// Ten customers at the same instant, one agent with room for three: exactly three are
/// assigned, the rest wait in the queue (assignment is serialised per team).
#[tokio::test]
async fn a_burst_never_pushes_an_agent_over_capacity() {
    let s = Setup::start().await;
    let agent = s.agent("ONLINE", Some(3)).await;
    let team = s.team("Everyone", &[agent]).await;
    s.default_team(&team).await;
    for i in 0..10 {
        s.p.customer_sends(
            &s.number,
            json!({"from": format!("1555444{i:04}"), "type": "text", "body": "hi"}),
        );
    }
    wait_for("ten conversations", || async {
        s.p.count("SELECT count(*) FROM conversations").await == 10
    })
    .await;
    s.p.events_settled().await;
    let assigned =
        s.p.count(&format!(
            "SELECT count(*) FROM conversations WHERE assigned_to = '{agent}'"
        ))
        .await;
    assert_eq!(assigned, 3);
    let waiting = s
        .p
        .count(&format!(
            "SELECT count(*) FROM conversations WHERE assigned_to IS NULL AND team_id = '{team}' AND status = 'OPEN'"
        ))
        .await;
    assert_eq!(waiting, 7);
}

/// An agent who leaves a customer waiting past the threshold while inactive past the
/// inactivity period loses the conversation: REASSIGN hands it to another available member,
/// UNASSIGN puts it back in the queue; the idle agent goes AWAY. Time is moved by back-dating
/// the rows, not by sleeping.
#[tokio::test]
async fn idle_agents_lose_waiting_conversations_both_ways() {
    let s = Setup::start().await;
    let (x, y) = (s.agent("ONLINE", None).await, s.agent("ONLINE", None).await);
    let team = s.team("Care", &[x, y]).await;
    s.default_team(&team).await;
    let put_idle = |body: Value| {
        s.p.app.request(
            reqwest::Method::PUT,
            "/api/v1/routing-rules/idle-agent",
            Some(&s.admin.token),
            Some(body),
        )
    };
    put_idle(json!({"enabled": true, "thresholdMinutes": 0, "action": "LATER"}))
        .await
        .expect(422);
    let r = put_idle(json!({"enabled": true, "thresholdMinutes": 10, "inactivityMinutes": 30}))
        .await
        .expect(200);
    assert_eq!(r.data()["action"], "REASSIGN");
    let run = || s.post("/routing-rules/idle-agent/run", json!({}));
    let age = |conversation: &str, agent: Uuid| {
        let pool = s.p.app.db.pool.clone();
        let conversation = conversation.to_string();
        async move {
            sqlx::query("UPDATE messages SET created_at = now() - interval '20 minutes' WHERE conversation_id = $1::uuid")
                .bind(&conversation)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "UPDATE users SET status_changed_at = now() - interval '2 hours' WHERE id = $1",
            )
            .bind(agent)
            .execute(&pool)
            .await
            .unwrap();
        }
    };

    let c1 = s.writes("15556660001", "anyone there?").await;
    let first: Uuid = c1["assignedTo"].as_str().unwrap().parse().unwrap();
    let other = if first == x { y } else { x };
    // Fresh: nothing to move.
    let r = run().await.expect(200);
    assert_eq!(r.data()["checked"], 1);
    assert_eq!(r.data()["moved"], json!([]));
    // Twenty minutes unanswered, the agent inactive for two hours: reassigned.
    let id1 = c1["id"].as_str().unwrap();
    age(id1, first).await;
    let r = run().await.expect(200);
    let moved = &r.data()["moved"][0];
    assert_eq!(moved["conversationId"], id1);
    assert_eq!(moved["fromUserId"], first.to_string());
    assert_eq!(moved["toUserId"], other.to_string());
    let user =
        s.p.app
            .get(&format!("/api/v1/users/{first}"), &s.admin.token)
            .await
            .expect(200);
    assert_eq!(user.data()["status"], "AWAY");
    let detail =
        s.p.app
            .get(&format!("/api/v1/conversations/{id1}"), &s.admin.token)
            .await
            .expect(200);
    let events = detail.data()["events"].as_array().unwrap();
    let last_two: Vec<&str> = events[events.len() - 2..]
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(last_two, ["UNASSIGNED", "ASSIGNED"]);
    assert!(events.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .starts_with("idle agent"));

    // UNASSIGN: back to the queue (the first agent is AWAY, so the other got it).
    put_idle(json!({"action": "UNASSIGN"})).await.expect(200);
    let c2 = s.writes("15556660002", "hello?").await;
    assert_eq!(c2["assignedTo"], other.to_string());
    let id2 = c2["id"].as_str().unwrap();
    age(id2, other).await;
    let r = run().await.expect(200);
    let moved: Vec<&Value> = r.data()["moved"].as_array().unwrap().iter().collect();
    assert!(moved.iter().all(|m| m["toUserId"].is_null()), "{moved:?}");
    assert!(moved.iter().any(|m| m["conversationId"] == id2));
    let c2_now =
        s.p.app
            .get(&format!("/api/v1/conversations/{id2}"), &s.admin.token)
            .await
            .expect(200);
    assert!(c2_now.data()["assignedTo"].is_null());
    assert_eq!(c2_now.data()["status"], "OPEN");
}
