//! The campaign page's live part: the API's progress stream (`routes::campaigns::
//! progress_stream`) as unnamed SSE events whose JSON keys are the page's `data-field`s, with
//! the send rate over the last seconds and the funnel; `{"final": true}` once it is over.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, RawQuery, State},
    response::sse::{Event, KeepAlive, Sse},
};
use chrono::Utc;
use futures::{stream::BoxStream, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{accepted, campaign, percent, progress_text, query_org};
use crate::{
    console::{page::PageError, session::Console},
    routes::campaigns::{self as api, Funnel, Progress, ProgressTick},
    state::AppState,
};

/// The values the page shows live, keyed by their `data-field`: the page renders them first,
/// then every SSE event carries them again.
pub(super) fn live_values(p: &Progress, rate: Option<f64>) -> Value {
    let c = &p.counts;
    json!({
        "status": p.status,
        "paused_reason": p.paused_reason.clone().unwrap_or_else(|| "—".into()),
        "total": c.total, "pending": c.pending, "sending": c.sending, "sent": c.sent,
        "delivered": c.delivered, "read": c.read, "failed": c.failed, "skipped": c.skipped,
        "accepted": accepted(c),
        "progress": accepted(c),
        "progress_text": progress_text(c),
        "rate": match (p.status.as_str(), rate) {
            ("RUNNING", Some(r)) => format!("{r:.1} msg/s"),
            ("RUNNING", None) => "measuring…".to_string(),
            _ => "0 msg/s (not sending)".to_string(),
        },
        "updated_at": Utc::now().format("%H:%M:%S UTC").to_string(),
    })
}

/// The funnel's live values (sent → delivered → read → replied), as the API's stats count.
pub(super) fn funnel_values(f: &Funnel) -> Vec<(&'static str, Value)> {
    vec![
        ("funnel_sent", json!(f.sent)),
        ("funnel_delivered", json!(f.delivered)),
        ("funnel_read", json!(f.read)),
        ("funnel_replied", json!(f.replied)),
        ("delivery_rate", json!(percent(f.delivery_rate))),
        ("read_rate", json!(percent(f.read_rate))),
        ("reply_rate", json!(percent(f.reply_rate))),
    ]
}

/// How far back the send rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Replies (a query over the conversations) are recounted at most this often.
const STATS_EVERY: Duration = Duration::from_secs(5);

/// What one console stream remembers between looks.
struct Live {
    ticks: BoxStream<'static, ProgressTick>,
    /// Recent (instant, accepted) samples, for the send rate.
    samples: VecDeque<(Instant, i64)>,
    /// Recipients who replied (the one funnel step the counts do not give) and when that was
    /// counted.
    replied: Option<(Instant, i64)>,
    done: bool,
}

impl Live {
    fn rate(&mut self, now: Instant, accepted: i64) -> Option<f64> {
        self.samples.push_back((now, accepted));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now - *at > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, n0)), Some((t1, n1))) if *t1 - *t0 >= Duration::from_secs(1) => {
                Some((n1 - n0) as f64 / (*t1 - *t0).as_secs_f64())
            }
            _ => None,
        }
    }
}

/// `GET /console/campaigns/{id}/events`: the API's progress stream as unnamed SSE events
/// whose JSON keys are the page's `data-field`s; `{"final": true}` once the campaign is over.
pub(super) async fn events(
    State(state): State<AppState>,
    console: Console,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let org = console
        .requested_org(query_org(&raw.unwrap_or_default()).as_deref())?
        .ok_or_else(|| PageError::not_found("Campaign"))?;
    let id = campaign(&state, org, &raw_id).await?.id;
    let db = state.db.clone();
    let live = Live {
        // Repeated every 2 s even when unchanged, so the rate falls to zero when sends stall.
        ticks: api::progress_stream(db.clone(), id, Some(Duration::from_secs(2))).boxed(),
        samples: VecDeque::new(),
        replied: None,
        done: false,
    };
    let stream = futures::stream::unfold(live, move |mut live| {
        let db = db.clone();
        async move {
            if live.done {
                return None;
            }
            let (progress, last) = match live.ticks.next().await? {
                ProgressTick::Progress(p) => (p, false),
                ProgressTick::Done(p) => (p, true),
                ProgressTick::Deleted => {
                    live.done = true;
                    let v = json!({"status": "DELETED", "final": true});
                    return Some((Ok(Event::default().data(v.to_string())), live));
                }
            };
            let now = Instant::now();
            let rate = live.rate(now, accepted(&progress.counts));
            let mut v = live_values(&progress, rate);
            let stale = live.replied.is_none_or(|(at, _)| now - at >= STATS_EVERY);
            if last || stale {
                if let Ok(c) = api::fetch_campaign(&db, org, id).await {
                    if let Ok(s) = api::stats_of(&db, c).await {
                        live.replied = Some((now, s.funnel.replied));
                    }
                }
            }
            if let Some((_, replied)) = live.replied {
                for (k, val) in funnel_values(&api::funnel(&progress.counts, replied)) {
                    v[k] = val;
                }
            }
            if last {
                v["final"] = json!(true);
                live.done = true;
            }
            Some((Ok(Event::default().data(v.to_string())), live))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
