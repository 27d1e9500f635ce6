//! The request a handler sees: borrowed views into the connection's buffers.

use std::net::SocketAddr;

use super::head::{Head, HeaderSpan, KnownHeader, Method, Version};
use crate::shutdown::ShutdownSignal;

/// A request as a handler receives it.
///
/// Everything is borrowed from the connection's read buffer: nothing of the
/// head is copied, and a `Content-Length` body that arrived with the head is
/// the very bytes the socket delivered. Copy what must outlive the handler.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The head bytes; spans in `head` and `headers` index into them.
    pub(crate) buf: &'a [u8],
    pub(crate) head: &'a Head,
    pub(crate) headers: &'a [HeaderSpan],
    pub(crate) body: &'a [u8],
    pub(crate) remote: SocketAddr,
    /// The server's shutdown signal (`None` for requests built by hand).
    pub(crate) shutdown: Option<&'a ShutdownSignal>,
}

impl std::fmt::Debug for Request<'_> {
    // Header values and the body are never printed: they may carry tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("version", &self.version())
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl<'a> Request<'a> {
    /// A request over a head parsed by `head::parse_head` from `buf`.
    ///
    /// The server builds requests itself; this is for fuzzing and testing
    /// handlers (the WebSocket handshake, say) without a socket.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_parts(
        buf: &'a [u8],
        head: &'a Head,
        headers: &'a [HeaderSpan],
        body: &'a [u8],
        remote: SocketAddr,
    ) -> Self {
        Request {
            buf,
            head,
            headers,
            body,
            remote,
            shutdown: None,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.head.method
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The request-target as sent (origin form `/p?q`, absolute form, or `*`).
    pub fn target(&self) -> &'a str {
        ascii(self.head.target.slice(self.buf))
    }

    /// The path, without the query (`/` for an absolute-form target with no path).
    pub fn path(&self) -> &'a str {
        match ascii(self.head.path.slice(self.buf)) {
            "" => "/",
            p => p,
        }
    }

    /// The query string without the `?`, if the target had one.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query.map(|q| ascii(q.slice(self.buf)))
    }

    /// The first value of a header, by case-insensitive name, without surrounding whitespace.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        match KnownHeader::of(name.as_bytes()) {
            Some(k) => self.known_header(k),
            None => self.header_all(name).next(),
        }
    }

    /// The first value of a header the parser notes the place of, without
    /// comparing names: what [`Request::header`] answers for that name.
    pub fn known_header(&self, k: KnownHeader) -> Option<&'a [u8]> {
        self.head.known.value(k, self.headers, self.buf)
    }

    /// Every value of a header, in the order received.
    pub fn header_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        values_named(self.headers, self.buf, name)
    }

    /// Every header as (name, value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let buf = self.buf;
        self.headers
            .iter()
            .map(move |h| (ascii(h.name.slice(buf)), h.value.slice(buf)))
    }

    /// The body (already de-chunked), empty when there was none.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The server's shutdown signal, for handlers that start long-lived
    /// work (an event stream, say) that must end when the server stops.
    /// `None` for requests built with `from_parts`.
    pub fn shutdown(&self) -> Option<ShutdownSignal> {
        self.shutdown.cloned()
    }

    /// Whether the client sent `Connection: upgrade`.
    pub fn wants_upgrade(&self) -> bool {
        self.head.connection_upgrade
    }
}

/// Target and header names were checked to be ASCII by the head parser.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Parses `raw` (a whole request head) and hands the request to `f`, for
/// unit tests of handlers and checks.
/// The values of the headers named `name` (any case) among `headers`
/// (spans into `buf`), in the order received.
pub(crate) fn values_named<'a, 'n>(
    headers: &'a [HeaderSpan],
    buf: &'a [u8],
    name: &'n str,
) -> impl Iterator<Item = &'a [u8]> + 'n
where
    'a: 'n,
{
    headers
        .iter()
        // The length from the span first: most names differ in it.
        .filter(move |h| {
            h.name.end.saturating_sub(h.name.start) as usize == name.len()
                && h.name.slice(buf).eq_ignore_ascii_case(name.as_bytes())
        })
        .map(move |h| h.value.slice(buf))
}

#[cfg(test)]
pub(crate) fn with_parsed<R>(raw: &[u8], f: impl FnOnce(Request<'_>) -> R) -> R {
    let limits = super::head::HeadLimits {
        max_head_bytes: 16 * 1024,
        max_headers: 100,
        max_target_bytes: 8 * 1024,
    };
    let mut spans = Vec::new();
    let head = super::head::parse_head(raw, &limits, &mut spans)
        .expect("valid head")
        .expect("complete head");
    let remote = SocketAddr::from(([127, 0, 0, 1], 1));
    f(Request::from_parts(raw, &head, &spans, b"", remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_header_reads_the_first_field_of_its_name_in_any_case() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Name: 0\r\nACCEPT: first\r\n\
                    Mcp-Session-ID: s\r\naccept: second\r\norigin:  o \r\n\r\n";
        with_parsed(raw, |req| {
            assert_eq!(req.known_header(KnownHeader::Accept), Some(&b"first"[..]));
            assert_eq!(req.header("Accept"), Some(&b"first"[..]));
            assert_eq!(req.header_all("accept").count(), 2);
            assert_eq!(req.known_header(KnownHeader::McpSessionId), Some(&b"s"[..]));
            assert_eq!(req.known_header(KnownHeader::Origin), Some(&b"o"[..]));
            assert_eq!(req.known_header(KnownHeader::Host), Some(&b"a"[..]));
            assert_eq!(req.header("x-long-name"), Some(&b"0"[..]));
            assert_eq!(req.known_header(KnownHeader::Authorization), None);
            assert_eq!(req.header("authorization"), None);
        });
    }
}
