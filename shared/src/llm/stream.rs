//! Server-sent events for the three streaming formats, and the stream handed to callers.
//!
//! The SSE parser is written here rather than taken from `eventsource-stream` (the
//! usual suggestion): it is about forty lines, saves a dependency, and covers exactly
//! what the three formats use (`event:`/`data:` fields, comments such as DeepSeek's
//! `: keep-alive`, CRLF line ends) and nothing we must not do (reconnecting, which would
//! re-send a prompt).

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{error, ChatResponse, LlmError, Provider, StreamEvent};

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SseEvent {
    /// `event:` (empty when absent, as in OpenAI and Gemini streams).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Default)]
pub(super) struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        // Lines split on `\n` are whole UTF-8: no multi-byte character contains 0x0A.
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            self.line(&line, &mut out);
        }
        out
    }

    /// The body ended: an event not yet closed by a blank line still counts (some servers
    /// end the last event with the body).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        if !rest.is_empty() {
            self.line(&String::from_utf8_lossy(&rest), &mut out);
        }
        self.line("", &mut out);
        out.pop()
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.current));
            }
            self.current = SseEvent::default();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry: nothing to do without reconnects
        }
    }
}

/// Turns one format's events into deltas and, at the end, the whole answer.
pub(super) trait Decoder: Send + 'static {
    /// Handles one event; returns the text it adds. `Err` for an error sent in the stream.
    fn event(&mut self, ev: &SseEvent) -> Result<Vec<String>, LlmError>;
    /// The format's end marker was seen (OpenAI `[DONE]`, Anthropic `message_stop`).
    fn done(&self) -> bool;
    /// The answer, once the stream is over; `Err` when it was cut short.
    fn finish(&mut self, latency: Duration) -> Result<ChatResponse, LlmError>;
}

type Inner = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// [`super::LlmClient::chat_stream`]'s stream: `Delta`s, then one `Done`, or an `Err` that
/// ends it.
pub struct ChatStream {
    inner: Inner,
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct State {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    decoder: Box<dyn Decoder>,
    queue: VecDeque<Result<StreamEvent, LlmError>>,
    finished: bool,
    provider: Provider,
    /// Longest silence between events. Comments (keep-alives) do not count as events, so a
    /// server that only ever sends keep-alives still times out.
    idle: Duration,
    last_event: Instant,
    started: Instant,
}

impl State {
    fn events(&mut self, events: Vec<SseEvent>) {
        for ev in events {
            self.last_event = Instant::now();
            match self.decoder.event(&ev) {
                Ok(deltas) => self.queue.extend(
                    deltas
                        .into_iter()
                        .filter(|d| !d.is_empty())
                        .map(|d| Ok(StreamEvent::Delta(d))),
                ),
                Err(e) => {
                    self.queue.push_back(Err(e));
                    self.finished = true;
                    return;
                }
            }
            if self.decoder.done() {
                self.end();
                return;
            }
        }
    }

    fn end(&mut self) {
        let done = self.decoder.finish(self.started.elapsed());
        self.queue.push_back(done.map(StreamEvent::Done));
        self.finished = true;
    }
}

pub(super) fn chat_stream(
    response: reqwest::Response,
    decoder: Box<dyn Decoder>,
    provider: Provider,
    idle: Duration,
    started: Instant,
) -> ChatStream {
    let state = State {
        body: Box::pin(response.bytes_stream()),
        parser: SseParser::default(),
        decoder,
        queue: VecDeque::new(),
        finished: false,
        provider,
        idle,
        last_event: Instant::now(),
        started,
    };
    let inner = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.queue.pop_front() {
                return Some((item, s));
            }
            if s.finished {
                return None;
            }
            let left = s.idle.saturating_sub(s.last_event.elapsed());
            match tokio::time::timeout(left, s.body.next()).await {
                Ok(Some(Ok(bytes))) => {
                    let events = s.parser.push(&bytes);
                    s.events(events);
                }
                Ok(Some(Err(e))) => {
                    s.queue
                        .push_back(Err(error::from_transport(s.provider, &e)));
                    s.finished = true;
                }
                Ok(None) => {
                    if let Some(ev) = s.parser.finish() {
                        s.events(vec![ev]);
                    }
                    if !s.finished {
                        s.end();
                    }
                }
                Err(_) => {
                    s.queue.push_back(Err(LlmError::Unavailable(format!(
                        "{}: the stream stalled for {}s",
                        s.provider,
                        s.idle.as_secs()
                    ))));
                    s.finished = true;
                }
            }
        }
    });
    ChatStream {
        inner: Box::pin(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_comments_and_crlf() {
        let mut p = SseParser::default();
        let mut got = p.push(b": keep-alive\n\nevent: message_start\r\ndata: {\"a\":");
        assert!(got.is_empty());
        got = p.push(b"1}\r\n\r\ndata: x\ndata: y\n\ndata: [DONE]");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "message_start".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "x\ny".into()
                },
            ]
        );
        assert_eq!(p.finish().unwrap().data, "[DONE]");
        assert_eq!(p.finish(), None);
    }
}
