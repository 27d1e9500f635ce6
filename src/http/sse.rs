//! Server-Sent Events: the event encoder and a sender over a streamed response.
//!
//! An SSE response is a streamed body with `Content-Type: text/event-stream`,
//! `Cache-Control: no-cache` and `X-Accel-Buffering: no` (so reverse proxies
//! pass events through as they are written).

use std::time::Duration;

use bytes::Bytes;

use super::encode::format_decimal;
use super::response::{BodyClosed, BodySender, Response};

/// One Server-Sent Event: `Event::new("line one\nline two").id("7")`
/// encodes as `id: 7\ndata: line one\ndata: line two\n\n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    id: Option<&'a str>,
    event: Option<&'a str>,
    retry: Option<Duration>,
    data: &'a str,
}

/// An event field held a byte that would end the field early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SSE id and event name must not contain CR, LF or NUL")]
pub struct InvalidEvent;

impl<'a> Event<'a> {
    /// An event carrying `data` (line breaks become separate `data:` lines).
    pub fn new(data: &'a str) -> Self {
        Event {
            data,
            ..Event::default()
        }
    }

    /// Sets the event id (the client's `Last-Event-ID` when it reconnects).
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the event type.
    #[cfg(test)]
    pub fn event(mut self, event: &'a str) -> Self {
        self.event = Some(event);
        self
    }

    /// Sets the reconnection delay the client should use.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The event as SSE bytes, ready for [`SseSender::send_encoded`].
    pub fn to_bytes(self) -> Result<Bytes, InvalidEvent> {
        Ok(Bytes::from(self.encoded()?))
    }

    /// The event encoded in a buffer of its size (when its data has no
    /// line break, as JSON has not; each break adds a few bytes).
    fn encoded(&self) -> Result<Vec<u8>, InvalidEvent> {
        // `name: value\n` for each field; the blank line that ends it.
        let line = |name: &str, value: usize| name.len() + 2 + value + 1;
        let size = self.id.map_or(0, |id| line("id", id.len()))
            + self.event.map_or(0, |e| line("event", e.len()))
            + self.retry.map_or(0, |_| line("retry", 20))
            + line("data", self.data.len())
            + 1;
        let mut out = Vec::with_capacity(size);
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded event, blank line included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), InvalidEvent> {
        let bad = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
        if self.id.is_some_and(bad) || self.event.is_some_and(bad) {
            return Err(InvalidEvent);
        }
        if let Some(id) = self.id {
            field(out, b"id", id.as_bytes());
        }
        if let Some(event) = self.event {
            field(out, b"event", event.as_bytes());
        }
        if let Some(retry) = self.retry {
            let mut n = [0u8; 20];
            field(
                out,
                b"retry",
                format_decimal(retry.as_millis() as u64, &mut n),
            );
        }
        let data = self.data.as_bytes();
        let mut rest = data;
        loop {
            // Vectorised: a megabyte answer is one scan, not a byte loop.
            let Some(end) = memchr::memchr2(b'\r', b'\n', rest) else {
                field(out, b"data", rest);
                break;
            };
            field(out, b"data", &rest[..end]);
            let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
        }
        out.push(b'\n');
        Ok(())
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Sends events over an SSE response made by [`Response::sse`].
#[derive(Clone, Debug)]
pub struct SseSender {
    body: BodySender,
}

impl Response {
    /// A `200 text/event-stream` response and the sender that feeds it.
    ///
    /// `buffer` bounds the events queued before [`SseSender::send`] waits.
    pub(crate) fn sse(buffer: usize) -> (Response, SseSender) {
        let (resp, body) = Response::stream(200, buffer);
        let resp = resp
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .header("x-accel-buffering", "no");
        (resp, SseSender { body })
    }
}

/// Why an event could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event was malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// The client is gone.
    #[error(transparent)]
    Closed(#[from] BodyClosed),
}

impl SseSender {
    /// Encodes and sends one event, waiting while the queue is full.
    pub async fn send(&self, event: &Event<'_>) -> Result<(), SendError> {
        Ok(self.body.send(Bytes::from(event.encoded()?)).await?)
    }

    /// Sends an event already encoded with [`Event::to_bytes`] (shared,
    /// not copied: the same bytes may go to many streams).
    pub async fn send_encoded(&self, event: Bytes) -> Result<(), SendError> {
        Ok(self.body.send(event).await?)
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.body.closed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: Event<'_>) -> String {
        let mut out = Vec::new();
        e.encode(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_event_is_encoded_in_a_buffer_of_its_size() {
        // Before, 32 bytes were added for the fields: an id of 20 bytes or
        // more doubled a megabyte answer's buffer.
        let data = "x".repeat(1_500_000);
        let id = format!("\"{}\"-12", "f".repeat(36));
        for e in [
            Event::new(&data).id(&id),
            Event::new(&data),
            Event::new("").id("1-0"),
        ] {
            let out = e.encoded().unwrap();
            assert_eq!(out.capacity(), out.len(), "{}", out.len());
            assert_eq!(out, enc(e).into_bytes());
        }
        let priming = Event::new("").id("1-0").retry(Duration::from_millis(1500));
        let out = priming.encoded().unwrap();
        assert!(out.capacity() - out.len() < 20);
    }

    #[test]
    fn encodes_fields_in_order() {
        let e = Event::new("{}")
            .id("s1-3")
            .event("message")
            .retry(Duration::from_millis(1500));
        assert_eq!(
            enc(e),
            "id: s1-3\nevent: message\nretry: 1500\ndata: {}\n\n"
        );
    }

    #[test]
    fn event_streams_are_neither_cached_nor_buffered_by_proxies() {
        let (resp, _events) = Response::sse(1);
        assert_eq!(resp.status(), 200);
        for (name, value) in [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
        ] {
            assert_eq!(resp.header_value(name), Some(value.as_bytes()), "{name}");
        }
    }

    #[test]
    fn priming_event_has_empty_data() {
        assert_eq!(enc(Event::new("").id("0")), "id: 0\ndata: \n\n");
    }

    #[test]
    fn every_line_break_starts_a_data_line() {
        assert_eq!(
            enc(Event::new("a\r\nb\rc\nd\n")),
            "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
        );
    }

    #[test]
    fn ids_with_line_breaks_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            Event::new("x").id("1\n2").encode(&mut out),
            Err(InvalidEvent)
        );
        assert_eq!(
            Event::new("x").event("a\rb").encode(&mut out),
            Err(InvalidEvent)
        );
        assert_eq!(
            Event::new("x").id("a\0").encode(&mut out),
            Err(InvalidEvent)
        );
        assert!(out.is_empty());
    }
}
