//! The WhatsApp API dialect's templates, campaigns and analytics (`/api/v1/whatsapp/...`),
//! end to end against the simulator: the seed's example bodies, scopes, tenancy, snake_case
//! validation errors, a campaign created and launched here reaching its recipients at Meta,
//! and the funnel after the status webhooks.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::{
    platform::{wait_for, Platform},
    Resp, TestApp,
};

fn locs(r: &Resp) -> Vec<String> {
    r.body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("a validation error: {}", r.body))
        .iter()
        .map(|d| {
            d["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

async fn call(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Resp {
    app.request(method, path, Some(key), body).await
}

#[tokio::test]
async fn templates_create_list_sync_delete_and_waba_choice() {
    let p = Platform::start().await;
    let admin = p.app.register_org("WA Templates").await;
    let number = p.connect_number(admin.org_id).await;
    let write = p.app.create_key(&admin, &["whatsapp:write"]).await;
    let read = p.app.create_key(&admin, &["whatsapp:read"]).await;

    // The seed's body.
    let created = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(
            json!({"name": "order_update", "category": "UTILITY", "language": "en_US",
                    "components": [{"type": "BODY", "text": "Your order {{1}} has shipped",
                                    "example": {"body_text": [["A-1"]]}}]}),
        ),
    )
    .await
    .expect(202);
    let t = &created.body;
    assert!(t.get("data").is_none(), "no data envelope: {t}");
    assert_eq!(t["name"], "order_update");
    assert_eq!(t["status"], "PENDING_SUBMISSION");
    assert_eq!(t["waba_id"], number.waba_id.as_str());
    assert_eq!(t["parameter_format"], "POSITIONAL");
    let id = t["id"].as_str().unwrap().to_string();

    // Submitted to Meta by the job.
    wait_for("the template submitted to Meta", || async {
        p.count(&format!(
            "SELECT count(*) FROM message_templates WHERE id = '{id}' AND meta_template_id IS NOT NULL"
        ))
        .await
            == 1
    })
    .await;

    let list = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/templates",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["templates"][0]["id"], id.as_str());
    assert!(list.body["templates"][0]["meta_template_id"].is_string());

    // Same name and language again: a conflict.
    call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(
            json!({"name": "order_update", "category": "UTILITY", "language": "en_US",
                    "components": [{"type": "BODY", "text": "Again"}]}),
        ),
    )
    .await
    .expect(409);

    let sync = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates/sync",
        &write,
        None,
    )
    .await
    .expect(202);
    assert_eq!(sync.body["accounts"], 1);
    assert_eq!(
        sync.body["job_ids"].as_array().unwrap().len()
            + sync.body["already_queued"].as_u64().unwrap() as usize,
        1
    );

    // Validation: snake_case fields.
    let bad = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(json!({"components": []})),
    )
    .await
    .expect(422);
    let l = locs(&bad);
    for f in ["body.name", "body.category", "body.language"] {
        assert!(l.contains(&f.to_string()), "{f} in {l:?}");
    }
    let bad = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(
            json!({"name": "Bad Name", "category": "PROMO", "language": "en_US",
                    "parameter_format": "WEIRD", "components": [{"type": "BODY", "text": "x"}]}),
        ),
    )
    .await
    .expect(422);
    let l = locs(&bad);
    for f in ["body.name", "body.category", "body.parameter_format"] {
        assert!(l.contains(&f.to_string()), "{f} in {l:?}");
    }

    // Another organization: its key cannot see or delete this template.
    let other = p.app.register_org("Other WA").await;
    let other_key = p.app.create_key(&other, &["admin"]).await;
    call(
        &p.app,
        Method::DELETE,
        &format!("/api/v1/whatsapp/templates/{id}"),
        &other_key,
        None,
    )
    .await
    .expect(404);
    let other_list = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/templates",
        &other_key,
        None,
    )
    .await
    .expect(200);
    assert_eq!(other_list.body["count"], 0);
    call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates/sync",
        &other_key,
        None,
    )
    .await
    .expect(422);

    // Delete.
    let deleted = call(
        &p.app,
        Method::DELETE,
        &format!("/api/v1/whatsapp/templates/{id}"),
        &write,
        None,
    )
    .await
    .expect(200);
    assert_eq!(deleted.body["status"], "REMOVED");
    let list = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/templates",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(list.body["count"], 0);
    call(
        &p.app,
        Method::DELETE,
        "/api/v1/whatsapp/templates/not-a-uuid",
        &write,
        None,
    )
    .await
    .expect(404);

    // A second number: waba_id is then required, and chooses the WABA.
    let second = p.connect_number(admin.org_id).await;
    let body = json!({"name": "welcome", "category": "MARKETING", "language": "en_US",
                      "components": [{"type": "BODY", "text": "Welcome!"}]});
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(body.clone()),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.waba_id".to_string()]);
    let mut with_waba = body.clone();
    with_waba["waba_id"] = json!(second.waba_id);
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(with_waba),
    )
    .await
    .expect(202);
    assert_eq!(r.body["waba_id"], second.waba_id.as_str());
    let mut foreign = body;
    foreign["waba_id"] = json!("999999999");
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/templates",
        &write,
        Some(foreign),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.waba_id".to_string()]);
}

#[tokio::test]
async fn a_campaign_created_and_launched_here_reaches_its_recipients_and_the_funnel_counts() {
    let p = Platform::start().await;
    let admin = p.app.register_org("WA Campaigns").await;
    let number = p.connect_number(admin.org_id).await;
    p.approved_promo(&number).await;
    let write = p.app.create_key(&admin, &["whatsapp:write"]).await;
    let send = p.app.create_key(&admin, &["whatsapp:send"]).await;
    let read = p.app.create_key(&admin, &["whatsapp:read"]).await;
    let (a, b) = ("14155550101", "14155550102");

    // The seed's fields plus the audience.
    let created = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &write,
        Some(json!({"name": "Spring promo", "template": "promo", "phone_number_id": number.phone_number_id,
                    "recipients": [{"phone": format!("+{a}"), "variables": {"1": "Ana", "2": "A1"}},
                                   {"phone": b, "variables": ["Bo", "B2"]},
                                   {"phone": "123"},
                                   {"phone": "+14155550103"}]})),
    )
    .await
    .expect(201);
    let c = &created.body;
    assert!(c.get("data").is_none(), "no data envelope: {c}");
    assert_eq!(c["status"], "DRAFT");
    assert_eq!(c["template"], "promo");
    assert_eq!(c["language"], "en_US");
    assert_eq!(c["phone_number_id"], number.phone_number_id.as_str());
    assert_eq!(c["accepted"], 2);
    assert_eq!(c["rejected_total"], 2);
    assert_eq!(c["rejected"][0]["row"], 3);
    assert!(c["rejected"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("missing template variable"));
    let id = c["id"].as_str().unwrap().to_string();

    // Not sent before the launch.
    assert_eq!(p.accepted_to(a, "template"), 0);
    // Creating needs whatsapp:write; launching needs whatsapp:send.
    call(
        &p.app,
        Method::POST,
        &format!("/api/v1/whatsapp/campaigns/{id}/launch"),
        &write,
        None,
    )
    .await
    .expect(403);
    let launched = call(
        &p.app,
        Method::POST,
        &format!("/api/v1/whatsapp/campaigns/{id}/launch"),
        &send,
        None,
    )
    .await
    .expect(200);
    assert_eq!(launched.body["status"], "RUNNING");

    wait_for("both recipients received at Meta", || async {
        p.accepted_to(a, "template") == 1 && p.accepted_to(b, "template") == 1
    })
    .await;
    let sent = p.sim.state().received(&wharf_sim::ReceivedFilter {
        to: Some(a.into()),
        ..Default::default()
    });
    assert_eq!(sent[0].template.as_deref(), Some("promo"));
    assert_eq!(sent[0].number_id, number.phone_number_id);

    // Launching twice is a conflict; another org's launch is a 404.
    call(
        &p.app,
        Method::POST,
        &format!("/api/v1/whatsapp/campaigns/{id}/launch"),
        &send,
        None,
    )
    .await
    .expect(409);
    let other = p.app.register_org("Other WA C").await;
    let other_key = p.app.create_key(&other, &["admin"]).await;
    call(
        &p.app,
        Method::POST,
        &format!("/api/v1/whatsapp/campaigns/{id}/launch"),
        &other_key,
        None,
    )
    .await
    .expect(404);
    call(
        &p.app,
        Method::GET,
        &format!("/api/v1/whatsapp/analytics/funnel?campaign_id={id}"),
        &other_key,
        None,
    )
    .await
    .expect(404);
    let other_list = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/campaigns",
        &other_key,
        None,
    )
    .await
    .expect(200);
    assert_eq!(other_list.body["count"], 0);

    // Meta's status webhooks move both messages to read; the funnel follows.
    wait_for("both messages read", || async {
        p.count(&format!(
            "SELECT count(*) FROM messages WHERE campaign_id = '{id}' AND status = 'read'"
        ))
        .await
            == 2
    })
    .await;
    let f = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/analytics/funnel",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        (
            f.body["sent"].as_i64(),
            f.body["delivered"].as_i64(),
            f.body["read"].as_i64(),
            f.body["replied"].as_i64()
        ),
        (Some(2), Some(2), Some(2), Some(0)),
        "{}",
        f.body
    );
    assert_eq!(f.body["delivery_rate"], 1.0);

    // One customer answers: replied.
    p.customer_sends(
        &number,
        json!({"from": a, "type": "text", "body": "thanks!"}),
    );
    wait_for("the reply counted", || async {
        let f = call(
            &p.app,
            Method::GET,
            &format!("/api/v1/whatsapp/analytics/funnel?campaign_id={id}"),
            &read,
            None,
        )
        .await
        .expect(200);
        f.body["replied"] == 1 && f.body["sent"] == 2
    })
    .await;

    let list = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/campaigns",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(list.body["count"], 1);
    let c = &list.body["campaigns"][0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!((c["sent"].as_i64(), c["read"].as_i64()), (Some(2), Some(2)));

    let ts = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/analytics/timeseries?days=7",
        &read,
        None,
    )
    .await
    .expect(200);
    let series = ts.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 7);
    let today = series.last().unwrap();
    assert_eq!(today["date"], chrono::Utc::now().date_naive().to_string());
    assert_eq!(today["outbound"], 2);
    assert_eq!(today["read"], 2);
    assert_eq!(today["received"], 1);
    let ts = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/analytics/timeseries",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(ts.body["series"].as_array().unwrap().len(), 30);

    // Costs: two delivered utility templates to the US at the rate table's price.
    let costs = call(
        &p.app,
        Method::GET,
        "/api/v1/whatsapp/analytics/costs",
        &read,
        None,
    )
    .await
    .expect(200);
    assert_eq!(costs.body["currency"], "USD");
    let utility = costs.body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "UTILITY")
        .unwrap()
        .clone();
    assert_eq!(utility["delivered"], 2);
    let expected = 2.0 * wharf_shared::campaigns::pricing::unit_price("UTILITY", a, false);
    assert!(
        (utility["cost"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{}",
        costs.body
    );
    assert!((costs.body["total_cost"].as_f64().unwrap() - expected).abs() < 1e-9);
    // Meta's own pricing analytics of the number's WABA: the two delivered templates.
    let meta = &costs.body["meta"];
    assert_eq!(meta.as_array().unwrap().len(), 1, "{}", costs.body);
    assert_eq!(meta[0]["waba_id"], number.waba_id.as_str());
    assert!(meta[0]["error"].is_null(), "{}", costs.body);
    assert_eq!(meta[0]["total_volume"], 2, "{}", costs.body);
}

#[tokio::test]
async fn a_campaign_from_a_csv_file_and_the_validation_errors() {
    let p = Platform::start().await;
    let admin = p.app.register_org("WA CSV").await;
    let number = p.connect_number(admin.org_id).await;
    p.approved_promo(&number).await;
    let write = p.app.create_key(&admin, &["whatsapp:write"]).await;

    let csv = "phone,name,1,2\n+14155550111,Ana,Ana,X1\n14155550112,Bo,Bo,X2\n";
    let form = reqwest::multipart::Form::new()
        .text("name", "CSV promo")
        .text("template", "promo")
        .text("phone_number_id", number.phone_number_id.clone())
        .text("language", "en_US")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name("audience.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = p
        .app
        .post_multipart("/api/v1/whatsapp/campaigns", &write, form)
        .await
        .expect(201);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["recipient_count"], 2);

    // Missing fields, named in snake_case.
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &write,
        Some(json!({})),
    )
    .await
    .expect(422);
    let l = locs(&r);
    for f in [
        "body.name",
        "body.template",
        "body.phone_number_id",
        "body.recipients",
    ] {
        assert!(l.contains(&f.to_string()), "{f} in {l:?}");
    }
    let base = json!({"name": "x", "template": "promo", "phone_number_id": number.phone_number_id,
                      "recipients": [{"phone": "14155550113", "variables": ["a", "b"]}]});
    // A number of another organization (or unknown).
    let mut unknown = base.clone();
    unknown["phone_number_id"] = json!("000111");
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &write,
        Some(unknown),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.phone_number_id".to_string()]);
    // An unknown template, or one in another language.
    let mut t = base.clone();
    t["template"] = json!("nope");
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &write,
        Some(t),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.template".to_string()]);
    let mut t = base.clone();
    t["language"] = json!("pt_BR");
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &write,
        Some(t),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.template".to_string()]);
    // Another org cannot use this org's number.
    let other = p.app.register_org("Other CSV").await;
    let other_key = p.app.create_key(&other, &["admin"]).await;
    let r = call(
        &p.app,
        Method::POST,
        "/api/v1/whatsapp/campaigns",
        &other_key,
        Some(base),
    )
    .await
    .expect(422);
    assert_eq!(locs(&r), vec!["body.phone_number_id".to_string()]);

    // timeseries: days 1..90.
    let read = p.app.create_key(&admin, &["whatsapp:read"]).await;
    for bad in ["0", "91", "abc"] {
        let r = call(
            &p.app,
            Method::GET,
            &format!("/api/v1/whatsapp/analytics/timeseries?days={bad}"),
            &read,
            None,
        )
        .await
        .expect(422);
        assert_eq!(locs(&r), vec!["query.days".to_string()]);
    }
    for ok in ["1", "90"] {
        call(
            &p.app,
            Method::GET,
            &format!("/api/v1/whatsapp/analytics/timeseries?days={ok}"),
            &read,
            None,
        )
        .await
        .expect(200);
    }
}

#[tokio::test]
async fn scope_matrix() {
    let app = TestApp::spawn().await;
    let admin = app.register_org("WA Scopes").await;
    let keys = [
        (
            "whatsapp:read",
            app.create_key(&admin, &["whatsapp:read"]).await,
        ),
        (
            "whatsapp:write",
            app.create_key(&admin, &["whatsapp:write"]).await,
        ),
        (
            "whatsapp:send",
            app.create_key(&admin, &["whatsapp:send"]).await,
        ),
        ("admin", app.create_key(&admin, &["admin"]).await),
    ];
    let missing = Uuid::new_v4();
    // (method, path, the scope it needs)
    let endpoints = [
        (
            Method::GET,
            "/api/v1/whatsapp/templates".to_string(),
            "whatsapp:read",
        ),
        (
            Method::POST,
            "/api/v1/whatsapp/templates".to_string(),
            "whatsapp:write",
        ),
        (
            Method::POST,
            "/api/v1/whatsapp/templates/sync".to_string(),
            "whatsapp:write",
        ),
        (
            Method::DELETE,
            format!("/api/v1/whatsapp/templates/{missing}"),
            "whatsapp:write",
        ),
        (
            Method::GET,
            "/api/v1/whatsapp/campaigns".to_string(),
            "whatsapp:read",
        ),
        (
            Method::POST,
            "/api/v1/whatsapp/campaigns".to_string(),
            "whatsapp:write",
        ),
        (
            Method::POST,
            format!("/api/v1/whatsapp/campaigns/{missing}/launch"),
            "whatsapp:send",
        ),
        (
            Method::GET,
            "/api/v1/whatsapp/analytics/funnel".to_string(),
            "whatsapp:read",
        ),
        (
            Method::GET,
            "/api/v1/whatsapp/analytics/timeseries?days=7".to_string(),
            "whatsapp:read",
        ),
        (
            Method::GET,
            "/api/v1/whatsapp/analytics/costs".to_string(),
            "whatsapp:read",
        ),
    ];
    for (method, path, needs) in &endpoints {
        for (scope, key) in &keys {
            let body = (*method == Method::POST).then(|| json!({}));
            let r = call(&app, method.clone(), path, key, body).await;
            let allowed = scope == needs || *scope == "admin";
            if allowed {
                assert_ne!(
                    r.status.as_u16(),
                    403,
                    "{method} {path} with {scope}: {}",
                    r.body
                );
            } else {
                assert_eq!(
                    r.status.as_u16(),
                    403,
                    "{method} {path} with {scope}: {}",
                    r.body
                );
                assert!(
                    r.body["detail"].as_str().unwrap().contains(needs),
                    "{method} {path}: {}",
                    r.body
                );
            }
        }
        // No credentials: 401.
        let r = app.request(method.clone(), path, None, None).await;
        assert_eq!(r.status.as_u16(), 401, "{method} {path}");
    }
    // A user's JWT works too.
    app.get("/api/v1/whatsapp/analytics/funnel", &admin.token)
        .await
        .expect(200);
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document_under_their_tag() {
    let app = TestApp::spawn().await;
    let spec = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let paths = &spec.body["paths"];
    for (path, method) in [
        ("/api/v1/whatsapp/templates", "get"),
        ("/api/v1/whatsapp/templates", "post"),
        ("/api/v1/whatsapp/templates/sync", "post"),
        ("/api/v1/whatsapp/templates/{uuid}", "delete"),
        ("/api/v1/whatsapp/campaigns", "get"),
        ("/api/v1/whatsapp/campaigns", "post"),
        ("/api/v1/whatsapp/campaigns/{id}/launch", "post"),
        ("/api/v1/whatsapp/analytics/funnel", "get"),
        ("/api/v1/whatsapp/analytics/timeseries", "get"),
        ("/api/v1/whatsapp/analytics/costs", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path}");
        assert_eq!(op["tags"][0], "whatsapp-api", "{method} {path}");
    }
}
