//! Routing after the fact: conversations that arrived while maintenance held routing are
//! routed by `POST /conversations/{id}/re-route` and by a `run-now` job whose result the
//! caller can follow; `check-conflicts` previews a rule's collisions before it is saved.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::platform::wait_for;

use super::routing::Setup;

impl Setup {
    async fn maintenance(&self, on: bool) {
        self.p
            .app
            .request(
                Method::PUT,
                "/api/v1/routing-rules/maintenance",
                Some(&self.admin.token),
                Some(json!({"maintenanceMode": on})),
            )
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn conversations_held_by_maintenance_are_routed_by_re_route_and_run_now() {
    let s = Setup::start().await;
    let (a, b) = (s.agent("ONLINE", None).await, s.agent("ONLINE", None).await);
    let sales = s.team("Sales", &[a]).await;
    let general = s.team("General", &[b]).await;
    s.default_team(&general).await;
    s.post(
        "/routing-rules",
        json!({"name": "orders", "teamId": sales,
               "conditions": [{"field": "message", "operator": "contains", "value": "order"}]}),
    )
    .await
    .expect(201);
    s.maintenance(true).await;
    let first = s.writes("34611000001", "where is my order?").await;
    let second = s.writes("34611000002", "hello").await;
    let third = s.writes("34611000003", "my order again").await;
    for c in [&first, &second, &third] {
        assert_eq!(c["teamId"], Value::Null, "held during maintenance: {c}");
        assert_eq!(c["assignedTo"], Value::Null);
    }
    // Asked for explicitly, re-routing and runs route even while maintenance holds routing.

    let id = first["id"].as_str().unwrap();
    let r = s
        .post(&format!("/conversations/{id}/re-route"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.data()["teamId"], sales);
    assert_eq!(r.data()["assignedTo"], a.to_string());
    assert_eq!(r.data()["teamChanged"], true);
    assert_eq!(r.data()["reason"], "routing rule \"orders\"");
    let detail = s.conversation(id).await;
    assert_eq!(detail["teamId"], sales);
    assert_eq!(detail["assignedTo"], a.to_string());

    // The rest goes through a run, followed until it completes.
    let run = s
        .post("/routing-rules/run-now", json!({}))
        .await
        .expect(202);
    let run_id = run.data()["id"].as_str().unwrap().to_string();
    let done = || async {
        s.p.app
            .get(
                &format!("/api/v1/routing-rules/runs/{run_id}"),
                &s.admin.token,
            )
            .await
            .expect(200)
            .data()
            .clone()
    };
    wait_for("the run to complete", || async {
        done().await["status"] == "COMPLETED"
    })
    .await;
    let result = done().await;
    assert_eq!(result["checked"], 2, "{result}");
    assert_eq!(result["rerouted"], 2);
    assert_eq!(result["assigned"], 2);
    let (second, third) = (
        s.conversation(second["id"].as_str().unwrap()).await,
        s.conversation(third["id"].as_str().unwrap()).await,
    );
    assert_eq!(second["teamId"], general);
    assert_eq!(second["assignedTo"], b.to_string());
    assert_eq!(third["teamId"], sales);

    // What arrives during maintenance is routed by itself once maintenance is switched off.
    let fourth = s.writes("34611000004", "an order question").await;
    assert_eq!(fourth["teamId"], Value::Null);
    s.maintenance(false).await;
    let fourth_id = fourth["id"].as_str().unwrap().to_string();
    wait_for("the held conversation routed", || async {
        s.conversation(&fourth_id).await["assignedTo"] == a.to_string()
    })
    .await;

    // Agents may not run it; another org cannot see the run; a closed conversation stays put.
    let (_, agent_token) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.p.app
        .post("/api/v1/routing-rules/run-now", &agent_token, json!({}))
        .await
        .expect(403);
    let other = s.p.app.register_org("Other Co").await;
    s.p.app
        .get(
            &format!("/api/v1/routing-rules/runs/{run_id}"),
            &other.token,
        )
        .await
        .expect(404);
    s.p.app
        .post(
            &format!("/api/v1/conversations/{id}/re-route"),
            &other.token,
            json!({}),
        )
        .await
        .expect(404);
    s.post(&format!("/conversations/{id}/resolve"), json!({}))
        .await
        .expect(200);
    let closed = s
        .post(&format!("/conversations/{id}/re-route"), json!({}))
        .await
        .expect(409);
    assert!(closed.body["detail"].as_str().unwrap().contains("CLOSED"));
}

#[tokio::test]
async fn check_conflicts_previews_overlaps_and_duplicates_without_saving() {
    let s = Setup::start().await;
    let sales = s.team("Sales", &[]).await;
    let support = s.team("Support", &[]).await;
    let refunds = s
        .post(
            "/routing-rules",
            json!({"name": "refunds", "teamId": sales, "priority": 1,
                   "conditions": [{"field": "message", "operator": "contains", "value": "refund"}]}),
        )
        .await
        .expect(201);
    let refunds_id = refunds.data()["id"].as_str().unwrap().to_string();
    let check = |team: &str, conditions: Value, extra: &str| {
        let q = format!(
            "/api/v1/routing-rules/check-conflicts?teamId={team}&conditions={}{extra}",
            percent(&conditions.to_string())
        );
        let (app, token) = (&s.p.app, s.admin.token.clone());
        async move { app.get(&q, &token).await }
    };
    let overlap = check(
        &support,
        json!([{"field": "message", "operator": "contains", "value": "Refund please"}]),
        "",
    )
    .await
    .expect(200);
    assert_eq!(overlap.data()["hasConflicts"], true);
    assert_eq!(overlap.data()["conflicts"][0]["ruleId"], refunds_id);
    assert_eq!(overlap.data()["conflicts"][0]["kind"], "OVERLAP");
    assert_eq!(
        overlap.data()["conflicts"][0]["overlappingConditions"],
        json!([[0, 0]])
    );

    let same = json!([{"field": "message", "operator": "contains", "value": "REFUND"}]);
    let dup = check(&sales, same.clone(), "").await.expect(200);
    assert_eq!(dup.data()["conflicts"][0]["kind"], "DUPLICATE");
    let editing = check(&sales, same, &format!("&excludeRuleId={refunds_id}"))
        .await
        .expect(200);
    assert_eq!(editing.data()["hasConflicts"], false);
    let unrelated = check(
        &support,
        json!([{"field": "phone", "operator": "startsWith", "value": "+44"}]),
        "",
    )
    .await
    .expect(200);
    assert_eq!(unrelated.data()["conflicts"], json!([]));

    let bad = check(&sales, json!({"not": "a list"}), "&matchType=SOME")
        .await
        .expect(422);
    let text = bad.body.to_string();
    assert!(
        text.contains("conditions") && text.contains("matchType"),
        "{text}"
    );
    check(
        &Uuid::new_v4().to_string(),
        json!([{"field": "message", "operator": "contains", "value": "x"}]),
        "",
    )
    .await
    .expect(404);
    let rules =
        s.p.app
            .get("/api/v1/routing-rules", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(rules.data().as_array().unwrap().len(), 1, "nothing saved");
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
