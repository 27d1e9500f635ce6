//! Responses: a status, extra header lines, and a body that is whole, streamed, or an upgrade.
//!
//! Framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`,
//! `Date`) belong to the connection, which writes them from the body kind and
//! the keep-alive state; handlers cannot set them, so a response can never
//! carry two framings.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::budget::ByteBudget;
use tokio::sync::mpsc;

use super::upgrade::Upgraded;

/// A boxed future that runs a connection taken over by an upgrade.
pub(crate) type OnUpgrade =
    Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A response body.
pub(crate) enum Body {
    /// No body bytes.
    Empty,
    /// Bytes known at compile time.
    Static(&'static [u8]),
    /// Bytes known when the handler returns.
    Full(Bytes),
    /// Bytes known when the handler returns, in a buffer of their own
    /// (no shared handle to allocate: the common answer is copied into the
    /// connection's buffer and dropped).
    Owned(Vec<u8>),
    /// Chunks sent later through a [`BodySender`]; the body ends when it is dropped.
    Stream(BodyReceiver),
}

/// How many compile-time headers a response holds without allocating:
/// one (a JSON answer's `Content-Type`, most responses' only one). More
/// would make every response larger than a move the compiler makes in
/// place (it calls `memcpy` past 128 bytes), and a response is moved about
/// ten times between its handler and its write; others are encoded lines.
const INLINE_HEADERS: usize = 1;

/// An HTTP response built by a handler.
pub struct Response {
    pub(crate) status: u16,
    /// Headers known at compile time, kept inline so fixed answers never allocate.
    pub(crate) static_headers: [(&'static str, &'static str); INLINE_HEADERS],
    pub(crate) static_count: u8,
    /// Other header lines, each already encoded as `name: value\r\n`.
    pub(crate) headers: Vec<u8>,
    pub(crate) body: Body,
    /// The handler asks to close the connection after this response.
    pub(crate) close: bool,
    pub(crate) on_upgrade: Option<OnUpgrade>,
}

impl std::fmt::Debug for Response {
    // Bodies are never printed: they may hold query results or secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("close", &self.close)
            .field("upgrade", &self.on_upgrade.is_some())
            .finish_non_exhaustive()
    }
}

/// A header name or value a handler tried to set was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidHeader {
    /// The name is not a token.
    #[error("invalid header name")]
    Name,
    /// The value holds CR, LF, NUL or another control byte.
    #[error("invalid header value")]
    Value,
    /// The header is written by the connection itself (framing, `Date`).
    #[error("header is managed by the server")]
    Reserved,
}

impl Response {
    /// A response with this status and an empty body.
    ///
    /// A status outside 100..=999 is replaced by 500.
    pub fn new(status: u16) -> Self {
        Response {
            status: if (100..=999).contains(&status) {
                status
            } else {
                500
            },
            static_headers: [("", ""); INLINE_HEADERS],
            static_count: 0,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
            on_upgrade: None,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
    }

    /// An `application/json` response; `body` must already be JSON.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Response::json_head(status).body(body)
    }

    /// A response with the JSON content type and no body yet.
    fn json_head(status: u16) -> Self {
        // A constant known valid: not checked on every answer.
        Response::new(status).known_header("content-type", "application/json")
    }

    /// [`Response::json`] for a body in a `Vec` of its own: kept as it is
    /// rather than turned into `Bytes`.
    pub(crate) fn json_vec(status: u16, body: Vec<u8>) -> Self {
        let mut r = Response::json_head(status);
        if !body.is_empty() {
            r.body = Body::Owned(body);
        }
        r
    }

    /// A response whose body is a compile-time constant (no allocation).
    pub fn static_body(status: u16, content_type: &'static str, body: &'static [u8]) -> Self {
        let mut r = Response::new(status).header("content-type", content_type);
        r.body = Body::Static(body);
        r
    }

    /// A response whose body is sent later, chunk by chunk, through the returned sender.
    ///
    /// `buffer` bounds the chunks queued before `send` waits (backpressure).
    /// The body ends when the sender is dropped. On HTTP/1.1 it is sent with
    /// chunked encoding; on HTTP/1.0 it is delimited by closing the connection.
    ///
    /// Besides `buffer` chunks, at most 16 MiB may wait
    /// for a client that does not read: a chunk past that (unless nothing
    /// waits) is refused with [`BodyClosed`], and the producer is expected
    /// to stop, which ends the body once what waits is written.
    pub fn stream(status: u16, buffer: usize) -> (Self, BodySender) {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let queued = Arc::new(ByteBudget::new(MAX_QUEUED_BODY_BYTES));
        let mut r = Response::new(status);
        r.body = Body::Stream(BodyReceiver {
            rx,
            queued: Arc::clone(&queued),
        });
        (r, BodySender { tx, queued })
    }

    /// A `101 Switching Protocols` response that hands the connection to `on_upgrade`.
    ///
    /// Once the response head is written, `on_upgrade` receives the socket and
    /// any bytes the client sent after the request head. The `Connection:
    /// upgrade` header is written by the server; add `Upgrade` and the
    /// protocol's own headers with [`Response::header`].
    pub fn upgrade<F, Fut>(on_upgrade: F) -> Self
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut r = Response::new(101);
        r.on_upgrade = Some(Box::new(move |up| Box::pin(on_upgrade(up))));
        r
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        self.body = if body.is_empty() {
            Body::Empty
        } else {
            Body::Full(body)
        };
        self
    }

    /// Adds a header known at compile time.
    ///
    /// # Panics
    ///
    /// When the name is not a token, the value holds a control byte, or the
    /// header is one the server manages (see [`InvalidHeader::Reserved`]):
    /// those are programming errors. Use [`Response::try_header`] for values
    /// that come from input.
    pub fn header(self, name: &'static str, value: &'static str) -> Self {
        if let Err(e) = check_header(name, value.as_bytes()) {
            panic!("Response::header({name:?}): {e}");
        }
        self.known_header(name, value)
    }

    /// [`Response::header`] for a field this module writes itself, known
    /// valid: not checked again on every response.
    fn known_header(mut self, name: &'static str, value: &'static str) -> Self {
        debug_assert!(check_header(name, value.as_bytes()).is_ok());
        let n = usize::from(self.static_count);
        if n < INLINE_HEADERS {
            self.static_headers[n] = (name, value);
            self.static_count += 1;
            return self;
        }
        self.push_header(name, value.as_bytes());
        self
    }

    fn push_header(&mut self, name: &str, value: &[u8]) {
        self.headers.reserve(name.len() + value.len() + 4);
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value);
        self.headers.extend_from_slice(b"\r\n");
    }

    /// The compile-time headers set so far.
    pub(crate) fn inline_headers(&self) -> &[(&'static str, &'static str)] {
        &self.static_headers[..usize::from(self.static_count)]
    }

    /// Adds a header, refusing names and values that could break the framing.
    pub fn try_header(
        mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, InvalidHeader> {
        let value = value.as_ref();
        check_header(name, value)?;
        self.push_header(name, value);
        Ok(self)
    }

    /// Asks the server to close the connection after this response.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of an extra header this response carries (names compared case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        if let Some((_, v)) = self
            .inline_headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(v.as_bytes());
        }
        self.headers.split(|&b| b == b'\n').find_map(|line| {
            let line = line.strip_suffix(b"\r")?;
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon]
                .eq_ignore_ascii_case(name.as_bytes())
                .then(|| &line[colon + 2..])
        })
    }
}

pub(crate) fn check_header(name: &str, value: &[u8]) -> Result<(), InvalidHeader> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(InvalidHeader::Name);
    }
    const RESERVED: [&str; 5] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "date",
        "keep-alive",
    ];
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(InvalidHeader::Reserved);
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(InvalidHeader::Value);
    }
    Ok(())
}

pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Most bytes of one streamed body waiting to be written (queued, or
/// handed to `send` and waiting for room). Default: 16 MiB.
pub const MAX_QUEUED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The sending half of a streamed response body.
#[derive(Clone, Debug)]
pub struct BodySender {
    tx: mpsc::Sender<Bytes>,
    /// Bytes sent and not yet taken by the connection.
    queued: Arc<ByteBudget>,
}

/// The connection's end of a streamed body.
pub(crate) struct BodyReceiver {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<ByteBudget>,
}

impl BodyReceiver {
    /// The next chunk; `None` once every sender is dropped.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let chunk = self.rx.recv().await?;
        self.queued.give_back(chunk.len());
        Some(chunk)
    }

    /// The next chunk if one waits.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let chunk = self.rx.try_recv().ok()?;
        self.queued.give_back(chunk.len());
        Some(chunk)
    }
}

/// The client is gone or the response was abandoned; nothing more can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("response body stream closed")]
pub struct BodyClosed;

impl BodySender {
    /// Sends one chunk, waiting while the queue is full. Empty chunks are skipped.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), BodyClosed> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return if self.tx.is_closed() {
                Err(BodyClosed)
            } else {
                Ok(())
            };
        }
        let len = chunk.len();
        if !self.queued.take(len) {
            // The client is not reading: nothing more is held for it.
            return Err(BodyClosed);
        }
        let sent = self.tx.send(chunk).await.map_err(|_| BodyClosed);
        if sent.is_err() {
            self.queued.give_back(len);
        }
        sent
    }

    /// Resolves when the connection stops taking this body (the client closed it).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Whether the connection has stopped taking this body.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The reason phrase for a status code (empty for unknown codes).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Whether a response with this status never has a body (RFC 9110 6.4.1).
pub(crate) fn status_has_no_body(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_nobody_reads_is_bounded_in_bytes() {
        let (response, sender) = Response::stream(200, 1000);
        let Body::Stream(mut receiver) = response.body else {
            panic!("a streamed body");
        };
        let chunk = Bytes::from(vec![b'x'; 4 * 1024 * 1024]);
        for _ in 0..4 {
            assert_eq!(sender.send(chunk.clone()).await, Ok(()));
        }
        // 16 MiB wait unread: the next chunk is refused, not held.
        assert_eq!(sender.send(chunk.clone()).await, Err(BodyClosed));
        // Once the connection takes one, there is room again.
        assert_eq!(receiver.recv().await.map(|c| c.len()), Some(chunk.len()));
        assert_eq!(sender.send(chunk.clone()).await, Ok(()));
        // A single chunk larger than the bound still goes when nothing waits.
        let (response, sender) = Response::stream(200, 4);
        let Body::Stream(_receiver) = response.body else {
            panic!("a streamed body");
        };
        let huge = Bytes::from(vec![b'y'; MAX_QUEUED_BODY_BYTES + 1]);
        assert_eq!(sender.send(huge).await, Ok(()));
    }

    #[test]
    fn a_response_is_moved_in_place() {
        // Past 128 bytes each of its moves is a `memcpy` call.
        assert!(std::mem::size_of::<Response>() <= 128);
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(
            Response::new(200).try_header("x-a", "b\r\nx-evil: 1").err(),
            Some(InvalidHeader::Value)
        );
        assert_eq!(
            Response::new(200).try_header("x a", "b").err(),
            Some(InvalidHeader::Name)
        );
        assert_eq!(
            Response::new(200).try_header("Content-Length", "1").err(),
            Some(InvalidHeader::Reserved)
        );
        let r = Response::new(200).try_header("X-Id", "abc").unwrap();
        assert_eq!(r.header_value("x-id"), Some(&b"abc"[..]));
        assert_eq!(r.header_value("x-other"), None);
        let mut r = Response::new(200);
        for name in ["a", "b", "c", "d", "e", "f"] {
            r = r.header(name, "v");
        }
        // The first inline; the rest, in order, among the encoded lines.
        assert_eq!(r.inline_headers(), &[("a", "v")][..]);
        assert_eq!(r.headers, b"b: v\r\nc: v\r\nd: v\r\ne: v\r\nf: v\r\n");
        assert_eq!(r.header_value("F"), Some(&b"v"[..]));
        assert_eq!(r.header_value("A"), Some(&b"v"[..]));
    }

    #[test]
    fn out_of_range_status_becomes_500() {
        assert_eq!(Response::new(42).status(), 500);
        assert_eq!(Response::new(1000).status(), 500);
        assert_eq!(Response::new(299).status(), 299);
    }

    #[test]
    #[should_panic(expected = "managed by the server")]
    fn static_reserved_header_panics() {
        let _ = Response::new(200).header("transfer-encoding", "chunked");
    }
}
