//! `GET /api/v1/events`: an agent's screen hears of a customer's message within a second (the
//! worker publishes through Redis, the api streams server-sent events), with the token in the
//! header or in `?token=`; another organization hears nothing of it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use super::routing::Setup;

/// One open event stream, read event by event.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Stream {
    async fn open(s: &Setup, token: &str, in_query: bool) -> Stream {
        let client = &s.p.app.client;
        let url = format!("{}/api/v1/events", s.p.app.base_url);
        let req = if in_query {
            client.get(format!("{url}?token={token}"))
        } else {
            client.get(url).bearer_auth(token)
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Stream {
            body: res.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next named event within `limit`: `(name, data)`.
    async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                };
                if let (Some(name), Some(data)) = (field("event:"), field("data:")) {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next event called `name` within `limit`.
    async fn next_named(&mut self, name: &str, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Some((n, data)) if n == name => return Some(data),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }
}

#[tokio::test]
async fn an_inbound_message_reaches_its_orgs_stream_within_a_second_and_no_other() {
    let s = Setup::start().await;
    let other = s.p.app.register_org("Elsewhere").await;
    let (agent, agent_token) = s.p.app.create_user(&s.admin, "AGENT").await;
    s.presence(agent, "ONLINE").await;
    let mut mine = Stream::open(&s, &agent_token, true).await;
    let mut theirs = Stream::open(&s, &other.token, false).await;

    let sent_at = Instant::now();
    s.p.customer_sends(
        &s.number,
        json!({"from": "34600999000", "type": "text", "body": "hello?"}),
    );
    let created = mine
        .next_named("message.created", Duration::from_secs(5))
        .await
        .expect("message.created");
    let took = sent_at.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(created["direction"], "INBOUND");
    let conversation = created["conversationId"].as_str().unwrap().to_string();
    assert!(theirs.next(Duration::from_millis(1500)).await.is_none());

    // An assignment by hand is streamed too, with the conversation it is about.
    s.post(
        &format!("/conversations/{conversation}/assign"),
        json!({"userId": agent}),
    )
    .await
    .expect(200);
    let assigned = mine
        .next_named("conversation.assigned", Duration::from_secs(5))
        .await
        .expect("conversation.assigned");
    assert_eq!(assigned["conversationId"], conversation);
    assert_eq!(assigned["assignedTo"], agent.to_string());
    assert!(theirs.next(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn the_stream_needs_a_valid_token() {
    let s = Setup::start().await;
    let url = format!("{}/api/v1/events", s.p.app.base_url);
    for req in [
        s.p.app.client.get(&url),
        s.p.app.client.get(format!("{url}?token=not-a-token")),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
    }
}
