//! Message templates end to end: validation before Meta, drafts, submit through a job, the
//! status webhook, sync from the simulator (paging, statuses, drafts kept, vanished removed,
//! budget exhausted → deferred), header media, sends checked against the stored template,
//! tenancy and roles.

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::{meta::MetaClient, templates::set_sync_page_size};
use wharf_sim::{ReceivedFilter, TemplateSpec};
use wharf_tests::{
    platform::{wait_for, Number, Platform},
    OrgAdmin, Resp,
};

struct Setup {
    p: Platform,
    admin: OrgAdmin,
    number: Number,
}

async fn setup() -> Setup {
    let p = Platform::start().await;
    let admin = p.app.register_org("Template Co").await;
    let number = p.connect_number(admin.org_id).await;
    Setup { p, admin, number }
}

fn body_template(name: &str) -> Value {
    json!({
        "name": name,
        "category": "UTILITY",
        "language": "en_US",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["42"]}},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} shipped.", "example": {"body_text": [["Ana", "42"]]}},
            {"type": "FOOTER", "text": "Wharf shop"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}", "example": ["https://shop.example/track/42"]},
                {"type": "QUICK_REPLY", "text": "Thanks"}
            ]}
        ]
    })
}

async fn row(p: &Platform, id: &str) -> Value {
    sqlx::query_scalar::<_, Value>(
        "SELECT to_jsonb(t) FROM message_templates t WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap()
}

async fn wait_status(p: &Platform, id: &str, status: &str) -> Value {
    let pool = p.app.db.pool.clone();
    let what = format!("template {id} becomes {status}");
    wait_for(&what, || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT status FROM message_templates WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
                == status
        }
    })
    .await;
    row(p, id).await
}

async fn count_templates(p: &Platform) -> i64 {
    p.count("SELECT count(*) FROM message_templates").await
}

fn locs(resp: &Resp) -> Vec<Vec<String>> {
    resp.body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("validation detail: {}", resp.body))
        .iter()
        .map(|d| {
            d["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn has_loc(resp: &Resp, want: &[&str]) -> bool {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    locs(resp).contains(&want)
}

#[tokio::test]
async fn every_rule_is_a_422_that_stores_nothing() {
    let s = setup().await;
    let t = &s.admin.token;
    type Case = (&'static str, Box<dyn Fn(&mut Value)>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "uppercase name",
            Box::new(|b| b["name"] = json!("Order-Update")),
            vec!["body", "name"],
        ),
        (
            "long name",
            Box::new(|b| b["name"] = json!("a".repeat(513))),
            vec!["body", "name"],
        ),
        (
            "category",
            Box::new(|b| b["category"] = json!("PROMO")),
            vec!["body", "category"],
        ),
        (
            "language",
            Box::new(|b| b["language"] = json!("english")),
            vec!["body", "language"],
        ),
        (
            "parameter format",
            Box::new(|b| b["parameterFormat"] = json!("BOTH")),
            vec!["body", "parameterFormat"],
        ),
        (
            "header format",
            Box::new(|b| b["components"][0]["format"] = json!("GIF")),
            vec!["body", "components", "0", "format"],
        ),
        (
            "two headers",
            Box::new(|b| {
                let h = b["components"][0].clone();
                b["components"].as_array_mut().unwrap().insert(0, h);
            }),
            vec!["body", "components"],
        ),
        (
            "no body",
            Box::new(|b| {
                b["components"].as_array_mut().unwrap().remove(1);
            }),
            vec!["body", "components"],
        ),
        (
            "long body",
            Box::new(|b| b["components"][1]["text"] = json!("x".repeat(1025))),
            vec!["body", "components", "1", "text"],
        ),
        (
            "long footer",
            Box::new(|b| b["components"][2]["text"] = json!("x".repeat(61))),
            vec!["body", "components", "2", "text"],
        ),
        (
            "gap in placeholders",
            Box::new(|b| b["components"][1]["text"] = json!("Hi {{1}}, order {{3}}")),
            vec!["body", "components", "1", "text"],
        ),
        (
            "named placeholder in a positional template",
            Box::new(|b| {
                b["components"][1]["text"] = json!("Hi {{first_name}}");
            }),
            vec!["body", "components", "1", "text"],
        ),
        (
            "example count",
            Box::new(|b| b["components"][1]["example"] = json!({"body_text": [["Ana"]]})),
            vec!["body", "components", "1", "example", "body_text"],
        ),
        (
            "missing example",
            Box::new(|b| {
                b["components"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("example");
            }),
            vec!["body", "components", "1", "example", "body_text"],
        ),
        (
            "too many buttons",
            Box::new(|b| {
                b["components"][3]["buttons"] =
                    json!(vec![json!({"type": "QUICK_REPLY", "text": "x"}); 11])
            }),
            vec!["body", "components", "3", "buttons"],
        ),
        (
            "button type",
            Box::new(|b| b["components"][3]["buttons"][1]["type"] = json!("FAX")),
            vec!["body", "components", "3", "buttons", "1", "type"],
        ),
        (
            "media header without a sample",
            Box::new(|b| b["components"][0] = json!({"type": "HEADER", "format": "IMAGE"})),
            vec!["body", "components", "0", "example", "header_handle"],
        ),
    ];
    for (what, change, loc) in &cases {
        for path in ["/api/v1/templates", "/api/v1/templates/draft"] {
            let mut b = body_template("order_update");
            change(&mut b);
            let resp = s.p.app.post(path, t, b).await.expect(422);
            assert!(
                has_loc(&resp, loc),
                "{what} at {path}: expected {loc:?} in {:?}",
                locs(&resp)
            );
        }
    }
    // Named templates: names are fine, examples must name them.
    let mut named = body_template("named_ok");
    named["parameterFormat"] = json!("NAMED");
    named["components"] = json!([{"type": "BODY", "text": "Hi {{first_name}}",
        "example": {"body_text_named_params": [{"param_name": "name", "example": "Ana"}]}}]);
    let resp =
        s.p.app
            .post("/api/v1/templates/draft", t, named)
            .await
            .expect(422);
    assert!(
        has_loc(
            &resp,
            &[
                "body",
                "components",
                "0",
                "example",
                "body_text_named_params"
            ]
        ),
        "{:?}",
        locs(&resp)
    );
    assert_eq!(count_templates(&s.p).await, 0, "nothing stored");
    assert_eq!(
        s.p.count("SELECT count(*) FROM jobs WHERE kind LIKE 'templates.%'")
            .await,
        0,
        "nothing queued"
    );

    // Duplicate (name, language) per number → 409, drafts included.
    s.p.app
        .post("/api/v1/templates/draft", t, body_template("order_update"))
        .await
        .expect(201);
    s.p.app
        .post("/api/v1/templates/draft", t, body_template("order_update"))
        .await
        .expect(409);
    s.p.app
        .post("/api/v1/templates", t, body_template("order_update"))
        .await
        .expect(409);
    let mut other_lang = body_template("order_update");
    other_lang["language"] = json!("pt_BR");
    s.p.app
        .post("/api/v1/templates/draft", t, other_lang)
        .await
        .expect(201);
    assert_eq!(count_templates(&s.p).await, 2);
}

#[tokio::test]
async fn drafts_submit_through_a_job_and_status_webhooks_apply_at_once() {
    let s = setup().await;
    let (app, t) = (&s.p.app, s.admin.token.as_str());
    let draft = app
        .post("/api/v1/templates/draft", t, body_template("order_update"))
        .await
        .expect(201);
    let id = draft.data()["id"].as_str().unwrap().to_string();
    assert_eq!(draft.data()["status"], "DRAFT");
    assert_eq!(draft.data()["accountId"], s.number.account_id.to_string());

    // Update the draft; an invalid update changes nothing.
    let mut comps = body_template("x")["components"].clone();
    comps[1]["text"] = json!("Hello {{1}}, order {{2}} is on its way.");
    let upd = app
        .request(
            Method::PUT,
            &format!("/api/v1/templates/{id}/draft"),
            Some(t),
            Some(json!({"components": comps})),
        )
        .await
        .expect(200);
    assert_eq!(
        upd.data()["components"][1]["text"],
        "Hello {{1}}, order {{2}} is on its way."
    );
    let bad = app
        .request(
            Method::PUT,
            &format!("/api/v1/templates/{id}/draft"),
            Some(t),
            Some(json!({"name": "Bad Name"})),
        )
        .await
        .expect(422);
    assert!(has_loc(&bad, &["body", "name"]));
    assert_eq!(row(&s.p, &id).await["name"], "order_update");
    // A draft never reaches Meta, and the list shows approved ones by default.
    assert!(s
        .p
        .sim
        .state()
        .templates(&s.number.waba_id)
        .unwrap()
        .is_empty());
    // A template just created is listed by default (every status but REMOVED)...
    assert_eq!(
        app.get("/api/v1/templates", t).await.expect(200).body["pagination"]["total"],
        1
    );
    let all = app.get("/api/v1/templates?status=all", t).await.expect(200);
    assert_eq!(all.body["pagination"]["total"], 1);
    // ...and `?status=APPROVED` keeps only the sendable ones.
    assert_eq!(
        app.get("/api/v1/templates?status=APPROVED", t)
            .await
            .expect(200)
            .body["pagination"]["total"],
        0
    );
    let drafts = app
        .get("/api/v1/templates?status=DRAFT&search=order", t)
        .await
        .expect(200);
    assert_eq!(drafts.data()[0]["id"], id.as_str());

    // Submit → 202 PENDING_SUBMISSION → the job gets Meta's id (PENDING).
    let sub = app
        .post(&format!("/api/v1/templates/{id}/submit"), t, json!({}))
        .await
        .expect(202);
    assert_eq!(sub.data()["status"], "PENDING_SUBMISSION");
    let r = wait_status(&s.p, &id, "PENDING").await;
    let meta_id = r["meta_template_id"].as_str().unwrap().to_string();
    assert!(r["submitted_at"].is_string());
    let at_meta = s.p.sim.state().templates(&s.number.waba_id).unwrap();
    assert_eq!(at_meta.len(), 1);
    assert_eq!(at_meta[0].id, meta_id);
    // Submitting again is refused (only drafts are submitted).
    app.post(&format!("/api/v1/templates/{id}/submit"), t, json!({}))
        .await
        .expect(409);

    // Meta approves: the webhook updates the template at once.
    s.p.sim
        .state()
        .set_template_status(&meta_id, "APPROVED", None)
        .unwrap();
    wait_status(&s.p, &id, "APPROVED").await;
    let list = app.get("/api/v1/templates", t).await.expect(200);
    assert_eq!(list.data()[0]["id"], id.as_str());
    s.p.sim
        .state()
        .set_template_status(&meta_id, "REJECTED", Some("INCORRECT_CATEGORY"))
        .unwrap();
    let r = wait_status(&s.p, &id, "REJECTED").await;
    assert_eq!(r["rejected_reason"], "INCORRECT_CATEGORY");
    // Identical webhook bodies within one second are one delivery to the ingestion dedupe.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.p.sim
        .state()
        .set_template_status(&meta_id, "APPROVED", None)
        .unwrap();
    wait_status(&s.p, &id, "APPROVED").await;

    // Edit at Meta: category of an approved template cannot change; components can.
    let bad = app
        .request(
            Method::PUT,
            &format!("/api/v1/templates/{id}"),
            Some(t),
            Some(json!({"components": comps, "category": "MARKETING"})),
        )
        .await
        .expect(422);
    assert!(has_loc(&bad, &["body", "category"]));
    let mut edited = comps.clone();
    edited[2]["text"] = json!("Wharf shop, since 2026");
    app.request(
        Method::PUT,
        &format!("/api/v1/templates/{id}"),
        Some(t),
        Some(json!({"components": edited})),
    )
    .await
    .expect(202);
    wait_status(&s.p, &id, "PENDING").await;
    let at_meta = s.p.sim.state().templates(&s.number.waba_id).unwrap();
    assert_eq!(at_meta[0].components[2]["text"], "Wharf shop, since 2026");

    // Create-and-submit in one call; Meta's refusal (a template of that name was created
    // directly at Meta) comes back as lastError on a DRAFT.
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "welcome".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let mut welcome = body_template("welcome");
    welcome["components"] = json!([{"type": "BODY", "text": "Welcome!"}]);
    let created = app.post("/api/v1/templates", t, welcome).await.expect(202);
    let wid = created.data()["id"].as_str().unwrap().to_string();
    let r = wait_status(&s.p, &wid, "DRAFT").await;
    assert!(
        r["last_error"].as_str().unwrap().contains("2388024")
            || r["last_error"].as_str().unwrap().contains("100"),
        "{r}"
    );

    // Duplicate as a draft with a new name; soft delete; delete at Meta.
    let dup = app
        .post(&format!("/api/v1/templates/{id}/duplicate"), t, json!({}))
        .await
        .expect(201);
    assert_eq!(dup.data()["name"], "order_update_copy");
    assert_eq!(dup.data()["status"], "DRAFT");
    let dup2 = app
        .post(&format!("/api/v1/templates/{id}/duplicate"), t, json!({}))
        .await
        .expect(201);
    assert_eq!(dup2.data()["name"], "order_update_copy_2");
    let gone = app
        .delete(
            &format!("/api/v1/templates/{}", dup2.data()["id"].as_str().unwrap()),
            t,
        )
        .await
        .expect(200);
    assert_eq!(gone.data()["status"], "REMOVED");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.p.sim
        .state()
        .set_template_status(&meta_id, "APPROVED", None)
        .unwrap();
    wait_status(&s.p, &id, "APPROVED").await;
    app.delete(&format!("/api/v1/templates/{id}/meta"), t)
        .await
        .expect(202);
    let r = wait_status(&s.p, &id, "REMOVED").await;
    assert!(r["deleted_at"].is_string());
    assert!(s
        .p
        .sim
        .state()
        .templates(&s.number.waba_id)
        .unwrap()
        .iter()
        .all(|x| x.id != meta_id));

    // Bulk: submit by ids (one is not a draft: skipped with why), delete by filter.
    let bulk = app
        .post(
            "/api/v1/templates/bulk",
            t,
            json!({"action": "submit", "selection": {"mode": "ids", "ids": [dup.data()["id"], id]}}),
        )
        .await
        .expect(200);
    assert_eq!(bulk.data()["affected"], 1);
    assert_eq!(bulk.data()["skipped"].as_array().unwrap().len(), 1);
    let bulk = app
        .post("/api/v1/templates/bulk", t, json!({"action": "delete", "selection": {"mode": "filter", "filter": {"status": "DRAFT"}}}))
        .await
        .expect(200);
    assert_eq!(bulk.data()["affected"], 1, "{}", bulk.body);
}

#[tokio::test]
async fn header_media_upload_is_served_and_used_by_the_template() {
    let s = setup().await;
    let t = s.admin.token.as_str();
    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3, 4];
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png.clone())
            .file_name("h.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let res =
        s.p.app
            .client
            .post(format!(
                "{}/api/v1/templates/upload-media",
                s.p.app.base_url
            ))
            .bearer_auth(t)
            .multipart(form)
            .send()
            .await
            .unwrap();
    let up = wharf_tests::TestApp::read(res).await.expect(201);
    let handle = up.data()["handle"].as_str().unwrap().to_string();
    let mut b = body_template("with_image");
    b["components"][0] =
        json!({"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}});
    let d =
        s.p.app
            .post("/api/v1/templates/draft", t, b)
            .await
            .expect(201);
    let url = d.data()["headerMediaUrl"].as_str().unwrap().to_string();
    let id = d.data()["id"].as_str().unwrap();
    // Public, like the seed: it is the link Meta fetches for sends.
    let res =
        s.p.app
            .client
            .get(format!(
                "{}/api/v1/templates/{id}/header-media",
                s.p.app.base_url
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), png);
    assert!(url.ends_with(&format!("/api/v1/templates/{id}/header-media")));
}

/// Seeds `n` approved templates at Meta named `t_0`..; returns their Meta ids.
fn seed(p: &Platform, number: &Number, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            p.sim
                .state()
                .seed_template(
                    &number.waba_id,
                    TemplateSpec {
                        name: format!("t_{i}"),
                        ..Default::default()
                    },
                )
                .unwrap()
        })
        .collect()
}

async fn sync_and_wait(s: &Setup) {
    let resp =
        s.p.app
            .post("/api/v1/templates/sync", &s.admin.token, json!({}))
            .await
            .expect(202);
    assert_eq!(resp.data()["accounts"], 1);
    let pool = s.p.app.db.pool.clone();
    wait_for("sync finished", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM jobs WHERE kind = 'templates.sync_account' AND state NOT IN ('completed', 'dead')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 0
        }
    })
    .await;
    let dead = s
        .p
        .count("SELECT count(*) FROM jobs WHERE kind = 'templates.sync_account' AND state = 'dead'")
        .await;
    assert_eq!(dead, 0, "sync failed");
}

async fn status_of(p: &Platform, name: &str) -> String {
    sqlx::query_scalar(
        "SELECT status FROM message_templates WHERE name = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(name)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn sync_pages_through_meta_keeps_drafts_and_removes_vanished() {
    set_sync_page_size(3);
    let s = setup().await;
    let ids = seed(&s.p, &s.number, 7);
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "waiting".into(),
                status: Some("PENDING".into()),
                ..Default::default()
            },
        )
        .unwrap();
    // A local draft that shares a name with nothing at Meta, and one that shares t_0's name.
    s.p.app
        .post(
            "/api/v1/templates/draft",
            &s.admin.token,
            body_template("local_only"),
        )
        .await
        .expect(201);
    sync_and_wait(&s).await;
    assert_eq!(
        s.p.count("SELECT count(*) FROM message_templates WHERE meta_template_id IS NOT NULL")
            .await,
        8,
        "3 pages of 3"
    );
    assert_eq!(status_of(&s.p, "t_6").await, "APPROVED");
    assert_eq!(status_of(&s.p, "waiting").await, "PENDING");
    assert_eq!(status_of(&s.p, "local_only").await, "DRAFT");
    let q: Option<String> =
        sqlx::query_scalar("SELECT quality_score FROM message_templates WHERE name = 't_0'")
            .fetch_one(&s.p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(q.as_deref(), Some("GREEN"));

    // At Meta: t_1 is paused (no webhook), t_2 is deleted; then sync again.
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                id: Some(ids[1].clone()),
                name: "t_1".into(),
                status: Some("PAUSED".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let meta = MetaClient::new(&s.p.sim.base_url(), "v23.0");
    meta.delete_template(&s.number.token, &s.number.waba_id, "t_2", Some(&ids[2]))
        .await
        .unwrap();
    // An edit on its way to Meta (t_3) is not overwritten by what Meta lists meanwhile.
    sqlx::query("UPDATE message_templates SET status = 'PENDING_SUBMISSION', components = '[{\"type\": \"BODY\", \"text\": \"edited\"}]' WHERE name = 't_3'")
        .execute(&s.p.app.db.pool)
        .await
        .unwrap();
    sync_and_wait(&s).await;
    assert_eq!(status_of(&s.p, "t_3").await, "PENDING_SUBMISSION");
    let c: Value =
        sqlx::query_scalar("SELECT components FROM message_templates WHERE name = 't_3'")
            .fetch_one(&s.p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(c[0]["text"], "edited");
    assert_eq!(status_of(&s.p, "t_1").await, "PAUSED");
    assert_eq!(status_of(&s.p, "t_2").await, "REMOVED");
    assert_eq!(
        status_of(&s.p, "local_only").await,
        "DRAFT",
        "drafts are never touched"
    );
    assert_eq!(
        s.p.count("SELECT count(*) FROM message_templates WHERE status <> 'REMOVED'")
            .await,
        8
    );
    // A template removed here stays removed after a sync.
    let t0: Uuid = sqlx::query_scalar("SELECT id FROM message_templates WHERE name = 't_0'")
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    s.p.app
        .delete(&format!("/api/v1/templates/{t0}"), &s.admin.token)
        .await
        .expect(200);
    sync_and_wait(&s).await;
    assert_eq!(status_of(&s.p, "t_0").await, "REMOVED");
}

#[tokio::test]
async fn a_sync_with_the_budget_exhausted_is_deferred_not_failed() {
    let s = setup().await;
    seed(&s.p, &s.number, 2);
    s.p.sim
        .state()
        .set_management_budget(&s.number.waba_id, 0, true)
        .unwrap();
    let resp =
        s.p.app
            .post("/api/v1/templates/sync", &s.admin.token, json!({}))
            .await
            .expect(202);
    let job_id = resp.data()["jobIds"][0].as_i64().unwrap();
    let pool = s.p.app.db.pool.clone();
    wait_for("sync snoozed", || {
        let pool = pool.clone();
        async move {
            let (state, attempt, errors): (String, i32, Value) =
                sqlx::query_as("SELECT state, attempt, errors FROM jobs WHERE id = $1")
                    .bind(job_id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            state == "scheduled" && attempt == 0 && errors == json!([])
        }
    })
    .await;
    let run_at: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT run_at FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    assert!(
        run_at > Utc::now() + chrono::Duration::seconds(30),
        "deferred until the budget is back: {run_at}"
    );
    assert_eq!(count_templates(&s.p).await, 0);
    // A second request while one waits adds nothing.
    let again =
        s.p.app
            .post("/api/v1/templates/sync", &s.admin.token, json!({}))
            .await
            .expect(202);
    assert_eq!(again.data()["alreadyQueued"], 1);
}

async fn conversation(s: &Setup, customer: &str) -> String {
    s.p.customer_sends(
        &s.number,
        json!({"from": customer, "profile_name": "Cust", "type": "text", "body": "hi"}),
    );
    let pool = s.p.app.db.pool.clone();
    let c = customer.to_string();
    wait_for("conversation created", || {
        let pool = pool.clone();
        let c = c.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1",
            )
            .bind(c)
            .fetch_one(&pool)
            .await
            .unwrap()
                == 1
        }
    })
    .await;
    let id: Uuid = sqlx::query_scalar("SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE ct.wa_id = $1")
        .bind(customer)
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    id.to_string()
}

async fn wait_received(p: &Platform, to: &str) -> usize {
    let sim = p.sim.state();
    let to = to.to_string();
    wait_for("the simulator received the template", || {
        let sim = sim.clone();
        let to = to.clone();
        async move {
            sim.received(&ReceivedFilter {
                to: Some(to),
                accepted: Some(true),
                ..Default::default()
            })
            .iter()
            .any(|r| r.kind == "template")
        }
    })
    .await;
    sim.received(&ReceivedFilter {
        to: Some(to),
        ..Default::default()
    })
    .len()
}

#[tokio::test]
async fn sends_are_checked_against_the_template_then_queued_and_delivered() {
    let s = setup().await;
    let comps = body_template("x")["components"].clone();
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "order_update".into(),
                components: Some(comps),
                ..Default::default()
            },
        )
        .unwrap();
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "greet".into(),
                parameter_format: Some("NAMED".into()),
                components: Some(json!([{"type": "BODY", "text": "Hi {{first_name}}",
                    "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}])),
                ..Default::default()
            },
        )
        .unwrap();
    sync_and_wait(&s).await;
    let t = s.admin.token.as_str();
    let conv = conversation(&s, "15550001111").await;
    let before =
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await;

    // Wrong parameters → 422 with the path, nothing queued.
    let cases = [
        (
            json!({"conversationId": conv, "header": "42", "parameters": ["Ana"], "buttons": [{"index": 0, "text": "42"}]}),
            vec!["body", "parameters"],
        ),
        (
            json!({"conversationId": conv, "parameters": ["Ana", "42"], "buttons": [{"index": 0, "text": "42"}]}),
            vec!["body", "header"],
        ),
        (
            json!({"conversationId": conv, "header": "42", "parameters": ["Ana", "42"]}),
            vec!["body", "buttons"],
        ),
        (
            json!({"conversationId": conv, "header": "42", "parameters": ["Ana", ""], "buttons": [{"index": 0, "text": "1"}]}),
            vec!["body", "parameters", "1"],
        ),
        (
            json!({"conversationId": conv, "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana", "parameter_name": "x"}, {"type": "text", "text": "1"}]}]}),
            vec!["body", "components", "0", "parameters", "0"],
        ),
    ];
    for (body, loc) in &cases {
        let resp =
            s.p.app
                .post("/api/v1/templates/order_update/send", t, body.clone())
                .await
                .expect(422);
        assert!(has_loc(&resp, loc), "expected {loc:?} in {:?}", locs(&resp));
    }
    let named =
        s.p.app
            .post(
                "/api/v1/templates/greet/send",
                t,
                json!({"conversationId": conv, "parameters": ["Ana"]}),
            )
            .await
            .expect(422);
    assert!(
        has_loc(&named, &["body", "parameters", "0"]),
        "{:?}",
        locs(&named)
    );
    s.p.app
        .post(
            "/api/v1/templates/nope/send",
            t,
            json!({"conversationId": conv}),
        )
        .await
        .expect(404);
    assert_eq!(
        s.p.count("SELECT count(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        before
    );

    // Right parameters → 202, queued, and the simulator gets the template.
    let sent = s
        .p
        .app
        .post(
            "/api/v1/templates/order_update/send",
            t,
            json!({"conversationId": conv, "header": "42", "parameters": ["Ana", "42"], "buttons": [{"index": 0, "text": "42"}]}),
        )
        .await
        .expect(202);
    assert_eq!(sent.data()["type"], "template");
    assert_eq!(sent.data()["conversationId"], conv.as_str());
    let request: Value = sqlx::query_scalar("SELECT request FROM messages WHERE id = $1::uuid")
        .bind(sent.data()["id"].as_str().unwrap())
        .fetch_one(&s.p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(request["template"]["name"], "order_update");
    assert_eq!(request["template"]["language"]["code"], "en_US");
    assert_eq!(
        sent.data()["content"]["body"],
        "Hi Ana, your order 42 shipped."
    );
    wait_received(&s.p, "15550001111").await;
    s.p.app
        .post(
            "/api/v1/templates/greet/send",
            t,
            json!({"conversationId": conv, "parameters": {"first_name": "Ana"}}),
        )
        .await
        .expect(202);

    // Send to a phone never seen: contact and conversation are created, the template goes out.
    let to_phone = s
        .p
        .app
        .post(
            "/api/v1/templates/greet/send-to-phone",
            t,
            json!({"phone": "+1 555 000 2222", "parameters": {"first_name": "Bo"}, "name": "Bo"}),
        )
        .await
        .expect(202);
    let conv2 = to_phone.data()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.p.count("SELECT count(*) FROM contacts WHERE wa_id = '15550002222'")
            .await,
        1
    );
    wait_received(&s.p, "15550002222").await;
    // Again: the same contact and open conversation are reused.
    let again =
        s.p.app
            .post(
                "/api/v1/templates/greet/send-to-phone",
                t,
                json!({"phone": "15550002222", "parameters": {"first_name": "Bo"}}),
            )
            .await
            .expect(202);
    assert_eq!(again.data()["conversationId"], conv2.as_str());
    let bad =
        s.p.app
            .post(
                "/api/v1/templates/greet/send-to-phone",
                t,
                json!({"phone": "15550003333"}),
            )
            .await
            .expect(422);
    assert!(has_loc(&bad, &["body", "parameters"]), "{:?}", locs(&bad));
    assert_eq!(
        s.p.count("SELECT count(*) FROM contacts WHERE wa_id = '15550003333'")
            .await,
        0,
        "checked before anything is created"
    );

    // Not approved → 409.
    s.p.sim
        .state()
        .seed_template(
            &s.number.waba_id,
            TemplateSpec {
                name: "later".into(),
                status: Some("PENDING".into()),
                ..Default::default()
            },
        )
        .unwrap();
    sync_and_wait(&s).await;
    s.p.app
        .post(
            "/api/v1/templates/later/send",
            t,
            json!({"conversationId": conv}),
        )
        .await
        .expect(409);
}

#[tokio::test]
async fn tenants_are_isolated_and_roles_enforced() {
    let s = setup().await;
    let t = s.admin.token.as_str();
    let d =
        s.p.app
            .post("/api/v1/templates/draft", t, body_template("mine"))
            .await
            .expect(201);
    let id = d.data()["id"].as_str().unwrap().to_string();
    let conv = conversation(&s, "15550004444").await;

    let other = s.p.app.register_org("Other Co").await;
    let _other_number = s.p.connect_number(other.org_id).await;
    let o = other.token.as_str();
    s.p.app
        .get(&format!("/api/v1/templates/{id}"), o)
        .await
        .expect(404);
    s.p.app
        .post(&format!("/api/v1/templates/{id}/submit"), o, json!({}))
        .await
        .expect(404);
    s.p.app
        .delete(&format!("/api/v1/templates/{id}"), o)
        .await
        .expect(404);
    s.p.app
        .request(
            Method::PUT,
            &format!("/api/v1/templates/{id}/draft"),
            Some(o),
            Some(json!({"name": "x"})),
        )
        .await
        .expect(404);
    s.p.app
        .post(&format!("/api/v1/templates/{id}/duplicate"), o, json!({}))
        .await
        .expect(404);
    assert_eq!(
        s.p.app
            .get("/api/v1/templates?status=all", o)
            .await
            .expect(200)
            .body["pagination"]["total"],
        0
    );
    s.p.app
        .post(
            "/api/v1/templates/mine/send",
            o,
            json!({"conversationId": conv}),
        )
        .await
        .expect(404);
    let bulk =
        s.p.app
            .post(
                "/api/v1/templates/bulk",
                o,
                json!({"action": "delete", "selection": {"mode": "ids", "ids": [id]}}),
            )
            .await
            .expect(200);
    assert_eq!(bulk.data()["affected"], 0);
    assert_eq!(row(&s.p, &id).await["status"], "DRAFT");

    // Roles and scopes.
    let (_, agent) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.p.app
        .get("/api/v1/templates?status=all", &agent)
        .await
        .expect(200);
    s.p.app
        .post(
            "/api/v1/templates/draft",
            &agent,
            body_template("agent_made"),
        )
        .await
        .expect(403);
    s.p.app
        .post("/api/v1/templates/sync", &agent, json!({}))
        .await
        .expect(403);
    s.p.app
        .post(
            "/api/v1/templates/bulk",
            &agent,
            json!({"action": "delete", "selection": {"mode": "ids", "ids": [id]}}),
        )
        .await
        .expect(403);
    let read_key = s.p.app.create_key(&s.admin, &["whatsapp:read"]).await;
    s.p.app
        .get("/api/v1/templates", &read_key)
        .await
        .expect(200);
    s.p.app
        .post("/api/v1/templates", &read_key, body_template("key_made"))
        .await
        .expect(403);
    s.p.app
        .post(
            "/api/v1/templates/mine/send",
            &read_key,
            json!({"conversationId": conv}),
        )
        .await
        .expect(403);
    let write_key = s.p.app.create_key(&s.admin, &["whatsapp:write"]).await;
    s.p.app
        .post(
            "/api/v1/templates/mine/send",
            &write_key,
            json!({"conversationId": conv}),
        )
        .await
        .expect(403);
    s.p.app
        .post(
            "/api/v1/templates/draft",
            &write_key,
            body_template("key_made"),
        )
        .await
        .expect(201);
    assert_eq!(s.p.count("SELECT count(*) FROM message_templates").await, 2);
}
