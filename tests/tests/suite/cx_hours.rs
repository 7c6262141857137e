//! Business hours, the off-hours reply and maintenance mode, end to end: settings through the
//! API, customers writing through the simulator, replies leaving through the worker. The
//! schedule edge cases (a slot past midnight, holidays, clocks changing) are unit tests of
//! `wharf_shared::cx::hours`.

use std::time::Duration;

use chrono::{Datelike, Utc};
use serde_json::{json, Value};
use wharf_sim::ReceivedFilter;
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin,
};

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
}

async fn setup() -> Setup {
    let p = Platform::start().await;
    let admin = p.app.register_org("Hours Co").await;
    let number = p.connect_number(admin.org_id).await;
    Setup { p, admin, number }
}

impl Setup {
    async fn put(&self, path: &str, body: Value) -> wharf_tests::Resp {
        self.p
            .app
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/routing-rules/{path}"),
                Some(&self.admin.token),
                Some(body),
            )
            .await
    }

    /// Business hours in UTC with one slot around now; `holiday_today` closes today.
    async fn hours_around_now(&self, holiday_today: bool) {
        let now = Utc::now();
        let (from, to) = (
            now - chrono::Duration::hours(2),
            now + chrono::Duration::hours(2),
        );
        let holidays: Vec<String> = if holiday_today {
            vec![now.format("%Y-%m-%d").to_string()]
        } else {
            vec![]
        };
        self.put(
            "business-hours",
            json!({"timezone": "UTC", "isEnabled": true, "holidays": holidays,
                   "slots": [{"dayOfWeek": from.weekday().number_from_monday(),
                              "start": from.format("%H:%M").to_string(), "end": to.format("%H:%M").to_string()}]}),
        )
        .await
        .expect(200);
        self.put(
            "off-hours",
            json!({"offHoursAutoReply": true, "offHoursMessage": "We are closed; back soon."}),
        )
        .await
        .expect(200);
    }

    /// `n` messages from `customer`, all sent before any is processed, then waits until the
    /// platform has filed them.
    async fn customer_writes(&self, customer: &str, n: usize) {
        let sql = format!(
            "SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id
               JOIN contacts c ON c.id = v.contact_id
              WHERE m.direction = 'INBOUND' AND c.wa_id = '{customer}'"
        );
        let before = self.p.count(&sql).await;
        for i in 0..n {
            self.p.customer_sends(
                &self.number,
                json!({"from": customer, "type": "text", "body": format!("hello {i}")}),
            );
        }
        wait_for("inbound messages filed", || async {
            self.p.count(&sql).await >= before + n as i64
        })
        .await;
        self.p.events_settled().await;
    }

    /// The texts sent to `customer`, once every queued message has left.
    async fn replies_to(&self, customer: &str) -> Vec<String> {
        wait_for("queued messages sent", || async {
            self.p
                .count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'queued'")
                .await
                == 0
        })
        .await;
        let sent = self.p.sim.state().received(&ReceivedFilter {
            to: Some(customer.into()),
            accepted: Some(true),
            ..Default::default()
        });
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT m.content->>'body' FROM messages m JOIN conversations v ON v.id = m.conversation_id
               JOIN contacts c ON c.id = v.contact_id
              WHERE m.direction = 'OUTBOUND' AND c.wa_id = $1 ORDER BY m.created_at",
        )
        .bind(customer)
        .fetch_all(&self.p.app.db.pool)
        .await
        .unwrap();
        assert_eq!(
            sent.len(),
            texts.len(),
            "every queued reply reached Meta once"
        );
        texts
    }
}

#[tokio::test]
async fn schedules_are_validated_with_every_problem_named_and_nothing_saved() {
    let s = setup().await;
    let r = s
        .put(
            "business-hours",
            json!({"timezone": "Mars/Olympus", "isEnabled": true,
                   "slots": [{"dayOfWeek": 8, "start": "09:00", "end": "18:00"},
                             {"dayOfWeek": 1, "start": "9am", "end": "25:00"}],
                   "holidays": ["25/12/2026"]}),
        )
        .await
        .expect(422);
    let locs: Vec<Value> = r.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    for loc in [
        json!(["body", "timezone"]),
        json!(["body", "slots", "0", "dayOfWeek"]),
        json!(["body", "slots", "1", "start"]),
        json!(["body", "slots", "1", "end"]),
        json!(["body", "holidays", "0"]),
    ] {
        assert!(locs.contains(&loc), "{loc} missing from {}", r.body);
    }
    let r = s
        .put(
            "business-hours",
            json!({"timezone": "Europe/Madrid",
                   "slots": [{"dayOfWeek": 1, "start": "09:00", "end": "12:00"},
                             {"dayOfWeek": 1, "start": "11:00", "end": "13:00"},
                             {"dayOfWeek": 2, "start": "10:00", "end": "10:00"},
                             {"dayOfWeek": 7, "start": "22:00", "end": "09:30"}]}),
        )
        .await
        .expect(422);
    let detail = r.body["detail"].to_string();
    assert!(detail.contains("overlaps slot 0"), "{detail}");
    assert!(detail.contains("must differ from start"), "{detail}");
    // Sunday 22:00 runs past midnight into Monday 09:00-12:00.
    assert!(
        detail.contains("\"slots\",\"3\"") || detail.contains("overlaps slot 3"),
        "{detail}"
    );
    let r = s
        .put(
            "maintenance",
            json!({"scheduledStart": "2026-12-05T10:00:00Z"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "scheduledEnd"]));
    let got =
        s.p.app
            .get("/api/v1/routing-rules/business-hours", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(got.data()["timezone"], "UTC");
    assert_eq!(got.data()["isEnabled"], false);
    // Agents read, only admins change.
    let (_, agent) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.p.app
        .get("/api/v1/routing-rules/off-hours", &agent)
        .await
        .expect(200);
    s.p.app
        .request(
            reqwest::Method::PUT,
            "/api/v1/routing-rules/off-hours",
            Some(&agent),
            Some(json!({"offHoursAutoReply": true})),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn a_burst_on_a_holiday_gets_one_off_hours_reply() {
    let s = setup().await;
    // Today is a holiday: closed all day, although the slot says open now.
    s.hours_around_now(true).await;
    let r =
        s.p.app
            .get("/api/v1/routing-rules/business-hours", &s.admin.token)
            .await
            .expect(200);
    assert_eq!(r.data()["openNow"], false);
    s.customer_writes("15557770001", 20).await;
    assert_eq!(
        s.replies_to("15557770001").await,
        vec!["We are closed; back soon.".to_string()]
    );
    // More messages in the same closed period: still one reply.
    s.customer_writes("15557770001", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.replies_to("15557770001").await.len(), 1);
}

#[tokio::test]
async fn inside_business_hours_nobody_gets_the_off_hours_reply() {
    let s = setup().await;
    s.hours_around_now(false).await;
    s.customer_writes("15557770002", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.replies_to("15557770002").await.is_empty());
}

#[tokio::test]
async fn maintenance_answers_once_per_window_before_off_hours() {
    let s = setup().await;
    s.hours_around_now(true).await;
    let r = s
        .put(
            "maintenance",
            json!({"maintenanceMode": true, "maintenanceMessage": "Down for maintenance."}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["active"], true);
    s.customer_writes("15557770003", 5).await;
    assert_eq!(
        s.replies_to("15557770003").await,
        vec!["Down for maintenance.".to_string()]
    );
    // Maintenance over: the closed period's off-hours reply comes next, once.
    s.put("maintenance", json!({"maintenanceMode": false}))
        .await
        .expect(200);
    s.customer_writes("15557770003", 2).await;
    assert_eq!(
        s.replies_to("15557770003").await,
        vec![
            "Down for maintenance.".to_string(),
            "We are closed; back soon.".to_string()
        ]
    );
    // A scheduled window is in force only between its start and end.
    let now = Utc::now();
    let past = s
        .put(
            "maintenance",
            json!({"scheduledStart": now - chrono::Duration::hours(2), "scheduledEnd": now - chrono::Duration::hours(1)}),
        )
        .await
        .expect(200);
    assert_eq!(past.data()["active"], false);
    let current = s
        .put(
            "maintenance",
            json!({"scheduledStart": now - chrono::Duration::minutes(1), "scheduledEnd": now + chrono::Duration::hours(1)}),
        )
        .await
        .expect(200);
    assert_eq!(current.data()["active"], true);
    // `null` clears the window.
    let cleared = s
        .put(
            "maintenance",
            json!({"scheduledStart": null, "scheduledEnd": null}),
        )
        .await
        .expect(200);
    assert_eq!(cleared.data()["active"], false);
    assert!(cleared.data()["scheduledStart"].is_null());
}
