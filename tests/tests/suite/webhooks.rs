//! Meta webhooks: verification, signatures, durable ingestion, processing of every inbound type,
//! dedupe, monotonic statuses, account and template updates. The simulator signs and sends
//! real webhooks over HTTP; exotic cases are hand-made signed payloads.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_tests::platform::{messages_webhook, wait_for, Platform};

/// (stored events, events the jobs apply): a `process_webhook` job applies one event, a
/// `process_statuses` job the statuses-only events of one ingestion batch.
async fn counts(p: &Platform) -> (i64, i64) {
    (
        p.count("SELECT count(*) FROM webhook_events").await,
        p.count(
            "SELECT COALESCE(sum(CASE WHEN kind = 'inbox.process_statuses'
                                      THEN jsonb_array_length(payload->'event_ids') ELSE 1 END), 0)::bigint
               FROM jobs",
        )
        .await,
    )
}

#[tokio::test]
async fn challenge_answers_only_the_right_verify_token() {
    let p = Platform::start_without_worker().await;
    let org = p.app.register_org("Challenge Co").await;
    let channel = p
        .connect_channel(org.org_id, "chan-secret", "chan-verify")
        .await;
    let get = |path: String| {
        let app = &p.app;
        async move { app.request(Method::GET, &path, None, None).await }
    };
    let ok = get("/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wharf-dev-verify-token".into())
        .await
        .expect(200);
    assert_eq!(ok.body, json!(1158201444), "the raw challenge is echoed");
    get("/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope".into())
        .await
        .expect(403);
    get("/webhooks/whatsapp?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=wharf-dev-verify-token".into())
        .await
        .expect(403);
    get("/webhooks/whatsapp".into()).await.expect(403);

    let chan = format!("/webhooks/whatsapp/{}", channel.account_id);
    let ok = get(format!(
        "{chan}?hub.mode=subscribe&hub.challenge=abc&hub.verify_token=chan-verify"
    ))
    .await
    .expect(200);
    assert_eq!(ok.body, json!("abc"));
    get(format!(
        "{chan}?hub.mode=subscribe&hub.challenge=abc&hub.verify_token=wharf-dev-verify-token"
    ))
    .await
    .expect(403);
    get(format!(
        "/webhooks/whatsapp/{}?hub.mode=subscribe&hub.challenge=a&hub.verify_token=chan-verify",
        Uuid::new_v4()
    ))
    .await
    .expect(404);
    get("/webhooks/whatsapp/not-a-uuid?hub.mode=subscribe".into())
        .await
        .expect(404);
    assert_eq!(counts(&p).await, (0, 0));
}

#[tokio::test]
async fn bad_or_missing_signatures_are_rejected_and_nothing_is_stored() {
    let p = Platform::start_without_worker().await;
    let org = p.app.register_org("Sig Co").await;
    let number = p.connect_number(org.org_id).await;
    let channel = p
        .connect_channel(org.org_id, "chan-secret", "chan-verify")
        .await;
    let body = serde_json::to_vec(&messages_webhook(
        &number,
        json!({"messages": [{"from": "15551234567", "id": "wamid.sig1", "timestamp": "1749416383", "type": "text", "text": {"body": "hi"}}]}),
    ))
    .unwrap();

    // Missing signature.
    let res = p
        .app
        .post_raw(
            "/webhooks/whatsapp",
            None,
            "application/json",
            std::str::from_utf8(&body).unwrap(),
        )
        .await;
    assert_eq!(res.status, 401);
    // Wrong secret, malformed header, signature of another body.
    p.post_signed("/webhooks/whatsapp", "not-the-secret", &body)
        .await
        .expect(401);
    for header in ["sha256=zz", "md5=abcd", "", "sha256="] {
        let res = p
            .app
            .client
            .post(format!("{}/webhooks/whatsapp", p.app.base_url))
            .header("x-hub-signature-256", header)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "header {header:?}");
    }
    let other_sig = wharf_sim::webhooks::sign(&p.app_secret(), b"{}");
    let res = p
        .app
        .client
        .post(format!("{}/webhooks/whatsapp", p.app.base_url))
        .header("x-hub-signature-256", other_sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A channel only accepts its own secret.
    let chan = format!("/webhooks/whatsapp/{}", channel.account_id);
    p.post_signed(&chan, &p.app_secret(), &body)
        .await
        .expect(401);
    p.post_signed(
        &format!("/webhooks/whatsapp/{}", Uuid::new_v4()),
        "chan-secret",
        &body,
    )
    .await
    .expect(404);

    assert_eq!(counts(&p).await, (0, 0), "nothing stored, nothing enqueued");

    // The right secrets are accepted.
    p.post_signed("/webhooks/whatsapp", &p.app_secret(), &body)
        .await
        .expect(200);
    p.post_signed(&chan, "chan-secret", &body).await.expect(200);
    assert_eq!(counts(&p).await.0, 1, "the same body is stored once");
}

/// Concurrent deliveries share transactions (group commit): every 200 means stored with its
/// job, each distinct body is stored once with one job, and routing is per event.
#[tokio::test]
async fn concurrent_deliveries_with_duplicates_store_each_event_once_with_one_job() {
    let p = Platform::start_without_worker().await;
    let org_a = p.app.register_org("Burst A").await;
    let org_b = p.app.register_org("Burst B").await;
    let a = p.connect_number(org_a.org_id).await;
    let b = p.connect_number(org_b.org_id).await;
    let channel = p
        .connect_channel(org_a.org_id, "burst-secret", "burst-verify")
        .await;
    let mut unknown = a.clone();
    unknown.phone_number_id = "999999".into();
    let status = |i: usize| {
        json!({"statuses": [{"id": format!("wamid.burst{i}"), "status": "delivered",
                             "timestamp": "1750030073", "recipient_id": "15550001111"}]})
    };
    // 120 distinct bodies: routed to A, to B, to the channel, unknown number, two numbers.
    let platform = "/webhooks/whatsapp".to_string();
    let chan = format!("/webhooks/whatsapp/{}", channel.account_id);
    let bodies: Vec<(String, String, Vec<u8>)> = (0..120)
        .map(|i| {
            let (path, secret, event) = match i % 5 {
                0 | 1 => (&platform, p.app_secret(), messages_webhook(&a, status(i))),
                2 => (&platform, p.app_secret(), messages_webhook(&b, status(i))),
                3 => (
                    &chan,
                    "burst-secret".into(),
                    messages_webhook(&channel, status(i)),
                ),
                _ if i % 2 == 0 => (
                    &platform,
                    p.app_secret(),
                    messages_webhook(&unknown, status(i)),
                ),
                _ => {
                    let mut event = messages_webhook(&a, status(i));
                    let other = messages_webhook(&b, status(i))["entry"][0].clone();
                    event["entry"].as_array_mut().unwrap().push(other);
                    (&platform, p.app_secret(), event)
                }
            };
            (path.clone(), secret, serde_json::to_vec(&event).unwrap())
        })
        .collect();
    // 200 deliveries: the first 80 bodies twice, the duplicate right behind the original.
    let deliveries: Vec<&(String, String, Vec<u8>)> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, d)| std::iter::repeat_n(d, if i < 80 { 2 } else { 1 }))
        .collect();
    assert_eq!(deliveries.len(), 200);
    let statuses = futures::future::join_all(
        deliveries
            .iter()
            .map(|(path, secret, body)| p.post_signed(path, secret, body)),
    )
    .await;
    for res in statuses {
        res.expect(200);
    }

    assert_eq!(
        counts(&p).await,
        (120, 120),
        "each distinct body once, in one job each"
    );
    // Statuses-only bodies: applied in batches, one `process_statuses` job per ingestion batch
    // and org.
    assert_eq!(
        p.count(
            "SELECT count(*) FROM webhook_events e
              WHERE (SELECT count(*) FROM jobs j
                      WHERE j.kind = 'inbox.process_statuses' AND j.payload->'event_ids' ? e.id::text
                        AND j.org_id IS NOT DISTINCT FROM e.org_id) = 1"
        )
        .await,
        120,
        "every event is in exactly one job, in the event's org"
    );
    let routed = |account: Option<Uuid>, org: Option<Uuid>, source: &'static str| {
        let p = &p;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM webhook_events WHERE account_id IS NOT DISTINCT FROM $1
                   AND org_id IS NOT DISTINCT FROM $2 AND source = $3",
            )
            .bind(account)
            .bind(org)
            .bind(source)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        routed(Some(a.account_id), Some(org_a.org_id), "platform").await,
        48
    );
    assert_eq!(
        routed(Some(b.account_id), Some(org_b.org_id), "platform").await,
        24
    );
    assert_eq!(
        routed(Some(channel.account_id), Some(org_a.org_id), "channel").await,
        24
    );
    assert_eq!(
        routed(None, None, "platform").await,
        24,
        "unknown number and two-number events are routed by the job"
    );
}

/// Postgres's jsonb cannot hold `\u0000`. A body with one, delivered among others (one batch
/// transaction), is still stored and acknowledged, with U+FFFD in place of the NUL, and its
/// neighbours are stored too: nothing makes Meta retry it for days.
#[tokio::test]
async fn a_nul_character_does_not_cost_the_event_or_its_neighbours() {
    let p = Platform::start_without_worker().await;
    let org = p.app.register_org("Poison Co").await;
    let number = p.connect_number(org.org_id).await;
    let secret = p.app_secret();
    let mut bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let st = json!({"id": format!("wamid.n{i}"), "status": "read",
                            "timestamp": "1750030073", "recipient_id": "15550001111"});
            serde_json::to_vec(&messages_webhook(&number, json!({"statuses": [st]}))).unwrap()
        })
        .collect();
    let poison = br#"{"object": "whatsapp_business_account", "entry": [], "x": "a\u0000b"}"#;
    bodies.insert(20, poison.to_vec());
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|body| p.post_signed("/webhooks/whatsapp", &secret, body)),
    )
    .await;
    for res in answers {
        res.expect(200);
    }
    assert_eq!(counts(&p).await, (41, 41));
    let kept: String =
        sqlx::query_scalar("SELECT payload->>'x' FROM webhook_events WHERE payload ? 'x'")
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(kept, "a\u{FFFD}b");
}

/// A database that refuses connections is an outage: 503 on both endpoints (Meta retries),
/// nothing stored; the retry after recovery is stored.
#[tokio::test]
async fn a_database_outage_is_a_503_and_the_retry_is_stored() {
    use sqlx::Connection;
    let p = Platform::start_without_worker().await;
    let org = p.app.register_org("Outage Co").await;
    let number = p.connect_number(org.org_id).await;
    let channel = p
        .connect_channel(org.org_id, "outage-secret", "outage-verify")
        .await;
    let body = status_event(
        &number,
        "wamid.OUTAGE",
        "delivered",
        1_750_000_000,
        json!({}),
    );
    let chan = format!("/webhooks/whatsapp/{}", channel.account_id);

    let mut admin = sqlx::PgConnection::connect(&wharf_shared::testing::server_url())
        .await
        .unwrap();
    let db = &p.app.db.name;
    let set_allow = |allow: bool| format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}");
    sqlx::query(&set_allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .execute(&mut admin)
    .await
    .unwrap();
    for (path, secret) in [
        ("/webhooks/whatsapp", p.app_secret()),
        (chan.as_str(), "outage-secret".to_string()),
    ] {
        let res = p.post_signed(path, &secret, &body).await.expect(503);
        assert_eq!(
            res.body,
            json!({"detail": "Database temporarily unavailable, please retry"}),
            "{path}"
        );
    }
    sqlx::query(&set_allow(true))
        .execute(&mut admin)
        .await
        .unwrap();

    p.post_signed("/webhooks/whatsapp", &p.app_secret(), &body)
        .await
        .expect(200);
    assert_eq!(counts(&p).await, (1, 1));
}

#[tokio::test]
async fn bodies_over_three_megabytes_are_refused() {
    let p = Platform::start_without_worker().await;
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let res = p
        .post_signed("/webhooks/whatsapp", &p.app_secret(), &big)
        .await;
    assert_eq!(res.status, 413);
    // 2.5 MB (above the API's general 2 MB limit) is fine for webhooks.
    let mut body =
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": []})).unwrap();
    body.extend(std::iter::repeat_n(b' ', 2_500_000));
    p.post_signed("/webhooks/whatsapp", &p.app_secret(), &body)
        .await
        .expect(200);
}

#[tokio::test]
async fn the_same_webhook_delivered_five_times_is_one_message() {
    let p = Platform::start().await;
    let org = p.app.register_org("Dupes Co").await;
    let number = p.connect_number(org.org_id).await;
    let event = messages_webhook(
        &number,
        json!({
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.DUP1", "timestamp": "1749416383", "type": "text",
                          "text": {"body": "Does it come in another color?"}}]
        }),
    );
    let body = serde_json::to_vec(&event).unwrap();
    for _ in 0..5 {
        p.post_signed("/webhooks/whatsapp", &p.app_secret(), &body)
            .await
            .expect(200);
    }
    // Meta's retry of the same message in a differently serialised body.
    let pretty = serde_json::to_vec_pretty(&event).unwrap();
    p.post_signed("/webhooks/whatsapp", &p.app_secret(), &pretty)
        .await
        .expect(200);
    assert_eq!(p.count("SELECT count(*) FROM webhook_events").await, 2);
    p.events_settled().await;

    assert_eq!(p.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(p.count("SELECT count(*) FROM contacts").await, 1);
    let (unread, preview, name): (i32, String, String) = sqlx::query_as(
        "SELECT c.unread_count, c.last_message_preview, k.profile_name FROM conversations c JOIN contacts k ON k.id = c.contact_id",
    )
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(unread, 1);
    assert_eq!(preview, "Does it come in another color?");
    assert_eq!(name, "Sheena");

    // Processing the same event again (an operator retry) changes nothing.
    let event_id: Uuid = sqlx::query_scalar("SELECT id FROM webhook_events LIMIT 1")
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_events SET processed_at = NULL WHERE id = $1")
        .bind(event_id)
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    wharf_shared::jobs::enqueue(
        &p.app.db.pool,
        wharf_shared::jobs::NewJob::new(wharf_shared::inbox::jobs::ProcessWebhook { event_id }),
    )
    .await
    .unwrap();
    p.events_settled().await;
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(
        p.count("SELECT sum(unread_count) FROM conversations").await,
        1
    );
}

/// Inserts an outbound message with `wamid` in a fresh conversation.
async fn outbound_message(p: &Platform, org_id: Uuid, account_id: Uuid, wamid: &str) -> Uuid {
    let contact: Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (org_id, wa_id) VALUES ($1, $2) ON CONFLICT (org_id, wa_id) DO UPDATE SET wa_id = EXCLUDED.wa_id RETURNING id",
    )
    .bind(org_id)
    .bind("16505550000")
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    let conversation: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (org_id, account_id, contact_id) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, contact_id) WHERE status <> 'CLOSED' DO UPDATE SET status = conversations.status RETURNING id",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(contact)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO messages (org_id, conversation_id, account_id, direction, wamid, type, content, status)
         VALUES ($1, $2, $3, 'OUTBOUND', $4, 'text', '{\"body\": \"hello\"}', 'queued') RETURNING id",
    )
    .bind(org_id)
    .bind(conversation)
    .bind(account_id)
    .bind(wamid)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap()
}

fn status_event(
    number: &wharf_tests::platform::Number,
    wamid: &str,
    status: &str,
    ts: i64,
    extra: Value,
) -> Vec<u8> {
    let mut st = json!({"id": wamid, "status": status, "timestamp": ts.to_string(), "recipient_id": "16505550000"});
    if let (Some(o), Some(e)) = (st.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::to_vec(&messages_webhook(number, json!({"statuses": [st]}))).unwrap()
}

#[tokio::test]
async fn statuses_only_move_forward() {
    let p = Platform::start().await;
    let org = p.app.register_org("Status Co").await;
    let number = p.connect_number(org.org_id).await;
    let m1 = outbound_message(&p, org.org_id, number.account_id, "wamid.OUT1").await;
    let secret = p.app_secret();

    // read → sent → delivered (out of order), each delivered twice.
    for (status, ts) in [
        ("read", 1_750_000_300),
        ("sent", 1_750_000_100),
        ("delivered", 1_750_000_200),
    ] {
        let body = status_event(&number, "wamid.OUT1", status, ts, json!({}));
        p.post_signed("/webhooks/whatsapp", &secret, &body)
            .await
            .expect(200);
        p.post_signed("/webhooks/whatsapp", &secret, &body)
            .await
            .expect(200);
        p.events_settled().await;
    }
    let (status, sent, delivered, read): (String, Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT status, extract(epoch FROM sent_at)::bigint, extract(epoch FROM delivered_at)::bigint,
                extract(epoch FROM read_at)::bigint FROM messages WHERE id = $1",
    )
    .bind(m1)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(status, "read");
    // The read receipt implies sent and delivered; it came first, so its time fills them.
    assert_eq!(read, Some(1_750_000_300));
    assert_eq!(sent, Some(1_750_000_300));
    assert_eq!(delivered, Some(1_750_000_300));

    // failed is terminal and keeps Meta's error; a later delivered does not move it.
    let m2 = outbound_message(&p, org.org_id, number.account_id, "wamid.OUT2").await;
    let failed = status_event(
        &number,
        "wamid.OUT2",
        "failed",
        1_750_000_400,
        json!({"errors": [{"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                           "message": "not delivered", "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."}}]}),
    );
    p.post_signed("/webhooks/whatsapp", &secret, &failed)
        .await
        .expect(200);
    p.events_settled().await;
    let late = status_event(&number, "wamid.OUT2", "delivered", 1_750_000_500, json!({}));
    p.post_signed("/webhooks/whatsapp", &secret, &late)
        .await
        .expect(200);
    // A status for a message we never sent is ignored.
    let unknown = status_event(
        &number,
        "wamid.UNKNOWN",
        "delivered",
        1_750_000_500,
        json!({}),
    );
    p.post_signed("/webhooks/whatsapp", &secret, &unknown)
        .await
        .expect(200);
    p.events_settled().await;
    let (status, error): (String, Value) =
        sqlx::query_as("SELECT status, error FROM messages WHERE id = $1")
            .bind(m2)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(error["code"], 131049);
    assert!(error["title"]
        .as_str()
        .unwrap()
        .starts_with("This message was not delivered"));
    assert!(error["details"]
        .as_str()
        .unwrap()
        .contains("healthy ecosystem"));
    assert_eq!(
        p.count("SELECT count(*) FROM jobs WHERE state = 'dead'")
            .await,
        0
    );
}

/// A batch of statuses that Postgres keeps refusing (here a trigger refuses one message's
/// update) is split after its third attempt into one `process_webhook` per event: the other
/// events' statuses are applied, the refused one stays unprocessed and retries on its own.
#[tokio::test]
async fn a_status_batch_that_keeps_failing_is_applied_event_by_event() {
    let mut p = Platform::start_without_worker().await;
    let org = p.app.register_org("Split Co").await;
    let number = p.connect_number(org.org_id).await;
    let wamids = ["wamid.SPLIT1", "wamid.POISON", "wamid.SPLIT2"];
    let mut ids = Vec::new();
    for wamid in wamids {
        ids.push(outbound_message(&p, org.org_id, number.account_id, wamid).await);
    }
    for sql in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.wamid = 'wamid.POISON' AND NEW.status <> OLD.status THEN
             RAISE EXCEPTION 'refused by the test';
           END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_poison BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(sql).execute(&p.app.db.pool).await.unwrap();
    }
    let secret = p.app_secret();
    for (i, wamid) in wamids.iter().enumerate() {
        let body = status_event(
            &number,
            wamid,
            "delivered",
            1_750_000_100 + i as i64,
            json!({}),
        );
        p.post_signed("/webhooks/whatsapp", &secret, &body)
            .await
            .expect(200);
    }
    // One batch of all three, as the ingestion batcher makes of deliveries arriving together.
    let events: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM webhook_events ORDER BY id")
        .fetch_all(&p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    sqlx::query("DELETE FROM jobs WHERE kind = 'inbox.process_statuses'")
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    let batch = wharf_shared::jobs::NewJob::new(wharf_shared::inbox::jobs::ProcessStatuses {
        event_ids: events.clone(),
    })
    .org(org.org_id);
    wharf_shared::jobs::enqueue(&p.app.db.pool, batch)
        .await
        .unwrap();
    p.start_worker();

    let status_of = |id: Uuid| {
        let pool = p.app.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Two failed attempts (retried after about 2 s, then 4 s), then the split.
    wait_for("the other events applied after the split", || async {
        status_of(ids[0]).await == "delivered" && status_of(ids[2]).await == "delivered"
    })
    .await;
    assert_eq!(
        status_of(ids[1]).await,
        "queued",
        "the refused status is not applied"
    );
    let unprocessed: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM webhook_events WHERE processed_at IS NULL")
            .fetch_all(&p.app.db.pool)
            .await
            .unwrap();
    let refused: Uuid = sqlx::query_scalar(
        "SELECT id FROM webhook_events WHERE payload::text LIKE '%wamid.POISON%'",
    )
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    assert_eq!(unprocessed, vec![refused], "only the refused event waits");
    assert_eq!(
        p.count(
            "SELECT count(*) FROM jobs WHERE kind = 'inbox.process_statuses' AND state = 'completed'
                AND attempt = 3"
        )
        .await,
        1,
        "the batch ended by splitting on its third attempt"
    );
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM jobs WHERE kind = 'inbox.process_webhook'
              AND payload->>'event_id' = '{refused}' AND state IN ('available', 'scheduled', 'retryable', 'running')"
        ))
        .await,
        1,
        "the refused event retries in a job of its own"
    );
}

#[tokio::test]
async fn ingestion_answers_200_without_a_worker_and_nothing_is_lost() {
    let mut p = Platform::start_without_worker().await;
    let org = p.app.register_org("Offline Co").await;
    let number = p.connect_number(org.org_id).await;
    for i in 0..5 {
        p.customer_sends(
            &number,
            json!({"from": format!("1650555100{i}"), "type": "text", "body": format!("hello {i}")}),
        );
    }
    assert!(
        p.sim
            .state()
            .webhooks_idle(std::time::Duration::from_secs(10))
            .await
    );
    let log = p.sim.state().webhook_log();
    assert_eq!(log.len(), 5);
    for d in &log {
        assert!(d.delivered, "{d:?}");
        assert_eq!(d.attempts.len(), 1, "answered 200 the first time");
    }
    assert_eq!(p.count("SELECT count(*) FROM webhook_events").await, 5);
    assert_eq!(p.count("SELECT count(*) FROM jobs WHERE kind = 'inbox.process_webhook' AND state = 'available'").await, 5);
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 0);

    p.start_worker();
    wait_for("five messages", || async {
        p.count("SELECT count(*) FROM messages").await == 5
    })
    .await;
    assert_eq!(p.count("SELECT count(*) FROM conversations").await, 5);
    p.events_settled().await;
}

#[tokio::test]
async fn malformed_events_are_discarded_with_the_reason_and_kept() {
    let p = Platform::start().await;
    for body in [
        &b"not json at all"[..],
        br#"{"object": "page", "entry": []}"#,
        br#"{"hello": 1}"#,
    ] {
        p.post_signed("/webhooks/whatsapp", &p.app_secret(), body)
            .await
            .expect(200);
    }
    wait_for("three dead jobs", || async {
        p.count("SELECT count(*) FROM jobs WHERE kind = 'inbox.process_webhook' AND state = 'dead'")
            .await
            == 3
    })
    .await;
    assert_eq!(
        p.count("SELECT count(*) FROM jobs WHERE state = 'dead' AND attempt = 1")
            .await,
        3,
        "not retried"
    );
    assert_eq!(
        p.count(
            "SELECT count(*) FROM webhook_events WHERE error IS NOT NULL AND processed_at IS NULL"
        )
        .await,
        3
    );
    let errors: Vec<String> = sqlx::query_scalar("SELECT error FROM webhook_events ORDER BY error")
        .fetch_all(&p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        errors,
        [
            "body is not JSON",
            "missing `object`",
            "unsupported object \"page\""
        ]
    );
}

#[tokio::test]
async fn events_for_unknown_numbers_are_kept_with_a_note() {
    let p = Platform::start().await;
    let org = p.app.register_org("Unknown Co").await;
    let mut number = p.connect_number(org.org_id).await;
    number.phone_number_id = "999999".into();
    let body = serde_json::to_vec(&messages_webhook(
        &number,
        json!({"messages": [{"from": "15551234567", "id": "wamid.U1", "timestamp": "1749416383", "type": "text", "text": {"body": "hi"}}]}),
    ))
    .unwrap();
    p.post_signed("/webhooks/whatsapp", &p.app_secret(), &body)
        .await
        .expect(200);
    p.events_settled().await;
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        p.count(
            "SELECT count(*) FROM webhook_events WHERE error = 'unknown phone_number_id 999999'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn channel_webhooks_arrive_with_the_channels_own_secret() {
    let p = Platform::start().await;
    let org = p.app.register_org("Channel Co").await;
    let channel = p
        .connect_channel(org.org_id, "chan-secret-1", "chan-verify-1")
        .await;
    p.customer_sends(&channel, json!({"from": "447700900123", "profile_name": "Ann", "type": "text", "body": "via channel"}));
    wait_for("channel message", || async {
        p.count("SELECT count(*) FROM messages").await == 1
    })
    .await;
    let (source, account): (String, Option<Uuid>) =
        sqlx::query_as("SELECT source, account_id FROM webhook_events")
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(source, "channel");
    assert_eq!(account, Some(channel.account_id));
}

/// The stored message of `wamid`: (type, content, media_id, mime, filename, media_status, error).
async fn stored(
    p: &Platform,
    wamid: &str,
) -> (
    String,
    Value,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Value>,
) {
    sqlx::query_as(
        "SELECT type, content, media_id, mime_type, filename, media_status, error FROM messages WHERE wamid = $1",
    )
    .bind(wamid)
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_inbound_type_lands_with_the_right_fields() {
    let p = Platform::start().await;
    let org = p.app.register_org("Types Co").await;
    let number = p.connect_number(org.org_id).await;
    let from = "15557654321";
    let send = |spec: Value| {
        let mut spec = spec;
        spec["from"] = json!(from);
        spec["profile_name"] = json!("Tess Types");
        p.customer_sends(&number, spec).wamid
    };
    let text = send(json!({"type": "text", "body": "plain text"}));
    // Reactions and replies below point at it: let it land first (webhooks race otherwise, and
    // a reaction to a message we do not have yet keeps only the wamid).
    wait_for("text stored", || async {
        p.count("SELECT count(*) FROM messages").await == 1
    })
    .await;
    let image = send(
        json!({"type": "image", "image": {"data_base64": "aW1hZ2U=", "mime_type": "image/png", "caption": "a photo"}}),
    );
    let audio = send(
        json!({"type": "audio", "audio": {"data_base64": "dm9pY2U=", "mime_type": "audio/ogg"}}),
    );
    let video = send(
        json!({"type": "video", "video": {"data_base64": "dmlkZW8=", "mime_type": "video/mp4", "caption": "clip"}}),
    );
    let document = send(
        json!({"type": "document", "document": {"data_base64": "JVBERi0=", "mime_type": "application/pdf", "filename": "invoice.pdf", "caption": "my invoice"}}),
    );
    let sticker = send(
        json!({"type": "sticker", "sticker": {"data_base64": "UklGRg==", "mime_type": "image/webp"}}),
    );
    let location = send(
        json!({"type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Office", "address": "Berlin"}}),
    );
    let contacts = send(
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Bob Builder", "first_name": "Bob"}, "phones": [{"phone": "+1 555 0100", "wa_id": "15550100", "type": "CELL"}]}]}),
    );
    let reaction =
        send(json!({"type": "reaction", "reaction": {"message_id": text, "emoji": "👍"}}));
    let button = send(
        json!({"type": "button", "button": {"payload": "YES_PAYLOAD", "text": "Yes"}, "context": {"from": number.display_phone, "id": "wamid.template1"}}),
    );
    let button_reply = send(
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "btn-1", "title": "Track order"}}}),
    );
    let list_reply = send(
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Returns", "description": "Start a return"}}}),
    );
    let unsupported = send(json!({"type": "unsupported"}));
    let reply =
        send(json!({"type": "text", "body": "replying", "context": {"from": from, "id": text}}));
    let referral = send(
        json!({"type": "text", "body": "from an ad", "referral": {"source_url": "https://fb.me/x", "source_id": "ad1", "source_type": "ad", "headline": "Sale", "ctwa_clid": "clid-1"}}),
    );
    let system = send(json!({"type": "system"}));

    wait_for("16 messages", || async {
        p.count("SELECT count(*) FROM messages").await == 16
    })
    .await;
    p.events_settled().await;

    let (t, c, ..) = stored(&p, &text).await;
    assert_eq!((t.as_str(), c), ("text", json!({"body": "plain text"})));

    let (t, c, media_id, mime, _, status, _) = stored(&p, &image).await;
    assert_eq!(t, "image");
    assert_eq!(c["caption"], "a photo");
    assert!(media_id.is_some());
    assert_eq!(mime.as_deref(), Some("image/png"));
    assert!(matches!(status.as_deref(), Some("pending" | "downloaded")));

    let (t, c, media_id, mime, ..) = stored(&p, &audio).await;
    assert_eq!(
        (t.as_str(), c["voice"].clone(), mime.as_deref()),
        ("audio", json!(true), Some("audio/ogg"))
    );
    assert!(media_id.is_some());

    let (t, c, ..) = stored(&p, &video).await;
    assert_eq!((t.as_str(), c["caption"].clone()), ("video", json!("clip")));

    let (t, c, _, mime, filename, ..) = stored(&p, &document).await;
    assert_eq!(t, "document");
    assert_eq!(filename.as_deref(), Some("invoice.pdf"));
    assert_eq!(c["filename"], "invoice.pdf");
    assert_eq!(c["caption"], "my invoice");
    assert_eq!(mime.as_deref(), Some("application/pdf"));

    let (t, c, media_id, ..) = stored(&p, &sticker).await;
    assert_eq!(
        (t.as_str(), c["animated"].clone()),
        ("sticker", json!(false))
    );
    assert!(media_id.is_some());

    let (t, c, ..) = stored(&p, &location).await;
    assert_eq!(t, "location");
    assert_eq!(
        c,
        json!({"latitude": 52.52, "longitude": 13.405, "name": "Office", "address": "Berlin"})
    );

    let (t, c, ..) = stored(&p, &contacts).await;
    assert_eq!(t, "contacts");
    assert_eq!(c["contacts"][0]["name"]["formatted_name"], "Bob Builder");
    assert_eq!(c["contacts"][0]["phones"][0]["wa_id"], "15550100");

    let (t, c, ..) = stored(&p, &reaction).await;
    let text_id: Uuid = sqlx::query_scalar("SELECT id FROM messages WHERE wamid = $1")
        .bind(&text)
        .fetch_one(&p.app.db.pool)
        .await
        .unwrap();
    assert_eq!(t, "reaction");
    assert_eq!(c["messageId"], json!(text));
    assert_eq!(c["emoji"], "👍");
    assert_eq!(c["reactedMessageId"], json!(text_id));

    let (t, c, ..) = stored(&p, &button).await;
    assert_eq!(t, "button");
    assert_eq!(
        (c["payload"].clone(), c["text"].clone()),
        (json!("YES_PAYLOAD"), json!("Yes"))
    );
    assert_eq!(c["context"]["messageId"], "wamid.template1");

    let (t, c, ..) = stored(&p, &button_reply).await;
    assert_eq!(t, "interactive");
    assert_eq!(
        c,
        json!({"type": "button_reply", "id": "btn-1", "title": "Track order"})
    );
    let (_, c, ..) = stored(&p, &list_reply).await;
    assert_eq!(
        c,
        json!({"type": "list_reply", "id": "row-2", "title": "Returns", "description": "Start a return"})
    );

    let (t, c, _, _, _, _, error) = stored(&p, &unsupported).await;
    assert_eq!(t, "unsupported");
    assert_eq!(c["error"]["code"], 131051);
    assert_eq!(error.unwrap()["code"], 131051);

    let (_, c, ..) = stored(&p, &reply).await;
    assert_eq!(c["context"]["messageId"], json!(text));
    assert_eq!(c["context"]["replyToId"], json!(text_id));

    let (_, c, ..) = stored(&p, &referral).await;
    assert_eq!(c["referral"]["ctwa_clid"], "clid-1");

    let (t, c, ..) = stored(&p, &system).await;
    assert_eq!(t, "system");
    assert_eq!(c["type"], "user_changed_number");

    // One contact, one conversation; the system notice does not count as unread.
    assert_eq!(p.count("SELECT count(*) FROM contacts").await, 1);
    assert_eq!(p.count("SELECT count(*) FROM conversations").await, 1);
    assert_eq!(
        p.count("SELECT unread_count::bigint FROM conversations")
            .await,
        15
    );
    assert_eq!(
        p.count("SELECT count(*) FROM jobs WHERE kind = 'inbox.download_media'")
            .await,
        5,
        "one download per media message"
    );
    let (window_open, profile): (bool, String) = sqlx::query_as(
        "SELECT c.last_inbound_at > now() - interval '24 hours', k.profile_name FROM conversations c JOIN contacts k ON k.id = c.contact_id",
    )
    .fetch_one(&p.app.db.pool)
    .await
    .unwrap();
    assert!(window_open);
    assert_eq!(profile, "Tess Types");
}

#[tokio::test]
async fn account_and_template_updates_are_recorded_with_alerts() {
    let p = Platform::start().await;
    let org = p.app.register_org("Alerts Co").await;
    let number = p.connect_number(org.org_id).await;
    let sim = p.sim.state();
    sim.quality_update(
        &number.phone_number_id,
        "FLAGGED",
        Some("TIER_250"),
        Some("RED"),
    )
    .unwrap();
    let template = sim
        .seed_template(
            &number.waba_id,
            wharf_sim::TemplateSpec {
                name: "order_update".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sim.set_template_status(&template, "REJECTED", Some("INVALID_FORMAT"))
        .unwrap();
    sim.account_update(
        &number.waba_id,
        json!({"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}}),
    )
    .unwrap();
    assert!(sim.webhooks_idle(std::time::Duration::from_secs(10)).await);
    p.events_settled().await;
    wait_for("three events processed", || async {
        p.count("SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL")
            .await
            == 3
    })
    .await;

    let limit: Option<String> =
        sqlx::query_scalar("SELECT messaging_limit FROM whatsapp_accounts WHERE id = $1")
            .bind(number.account_id)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(limit.as_deref(), Some("TIER_250"));
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM account_alerts WHERE org_id = $1 ORDER BY kind")
            .bind(org.org_id)
            .fetch_all(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        [
            "account_account_violation",
            "quality_flagged",
            "template_rejected:order_update:en_US"
        ]
    );
    let (event, reason): (String, Option<String>) =
        sqlx::query_as("SELECT event, reason FROM template_status_events WHERE org_id = $1")
            .bind(org.org_id)
            .fetch_one(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (event.as_str(), reason.as_deref()),
        ("REJECTED", Some("INVALID_FORMAT"))
    );
}

#[tokio::test]
async fn a_closed_conversation_stays_closed_and_a_new_one_opens() {
    let p = Platform::start().await;
    let org = p.app.register_org("Reopen Co").await;
    let number = p.connect_number(org.org_id).await;
    p.customer_sends(
        &number,
        json!({"from": "15550002222", "type": "text", "body": "first"}),
    );
    wait_for("first", || async {
        p.count("SELECT count(*) FROM messages").await == 1
    })
    .await;
    p.events_settled().await;
    sqlx::query("UPDATE conversations SET status = 'CLOSED', closed_at = now()")
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    p.customer_sends(
        &number,
        json!({"from": "15550002222", "type": "text", "body": "second"}),
    );
    wait_for("second", || async {
        p.count("SELECT count(*) FROM messages").await == 2
    })
    .await;
    p.events_settled().await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM conversations ORDER BY created_at")
            .fetch_all(&p.app.db.pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["CLOSED", "OPEN"]);
    assert_eq!(p.count("SELECT count(*) FROM contacts").await, 1);

    // A customer answering a conversation that waits for them puts it back in the queue.
    sqlx::query("UPDATE conversations SET status = 'WAITING_FOR_CUSTOMER' WHERE status = 'OPEN'")
        .execute(&p.app.db.pool)
        .await
        .unwrap();
    p.customer_sends(
        &number,
        json!({"from": "15550002222", "type": "text", "body": "third"}),
    );
    wait_for("third", || async {
        p.count("SELECT count(*) FROM messages").await == 3
    })
    .await;
    p.events_settled().await;
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE status = 'OPEN'")
            .await,
        1
    );
}
