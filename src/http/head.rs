//! Request head parsing: httparse for the syntax, then our own framing rules.
//!
//! [`parse_head`] reads the request line and header fields from the front of a
//! buffer and decides how the body is framed. It never allocates (the caller
//! owns the header span storage) and never copies: the result holds offsets
//! into the buffer.
//!
//! httparse accepts a little more than a strict server should (bare LF line
//! ends, any printable byte in the request-target, any framing headers). The
//! checks here close those gaps, following RFC 9112 and what nginx and hyper
//! reject, so that no two parsers in a chain can disagree on where this
//! message ends.

use std::mem::MaybeUninit;

/// The most header fields [`parse_head`] can hold, whatever the configured limit.
///
/// The header slots live on the stack; a configured limit above this is
/// clamped to it. Default: 256.
pub const MAX_HEADERS_CAP: usize = 256;

/// Most bytes of request line plus header fields; past it: 431. Default: 16 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request; past it: 431. Default: 100.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Most bytes of request-target; past it: 414. Default: 8 KiB.
pub const DEFAULT_MAX_TARGET_BYTES: usize = 8 * 1024;

/// Limits applied while parsing a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most bytes of request line plus header fields (431 past it).
    pub max_head_bytes: usize,
    /// Most header fields (431 past it).
    pub max_headers: usize,
    /// Most bytes of request-target (414 past it).
    pub max_target_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_target_bytes: DEFAULT_MAX_TARGET_BYTES,
        }
    }
}

/// A byte range within the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes this span covers in `buf`.
    pub fn slice<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// One header field, as offsets of its name and (trimmed) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    /// The field name.
    pub name: Span,
    /// The field value, without surrounding whitespace.
    pub value: Span,
}

/// The request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// TRACE
    Trace,
    /// CONNECT
    Connect,
    /// Any other method token; the router answers 405 for it.
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// The method's name as sent on the wire (`"OTHER"` for unknown methods).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other => "OTHER",
        }
    }
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close by default, no chunked bodies.
    Http10,
    /// HTTP/1.1: keep-alive by default.
    Http11,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows the head.
    Chunked,
}

/// What the `Expect` header asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expect {
    /// No expectation.
    #[default]
    Nothing,
    /// `100-continue`: the client waits for a 100 before sending the body.
    Continue,
    /// An expectation we cannot meet (answered with 417).
    Unsupported,
}

/// A parsed request head: offsets into the buffer plus the framing decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Length of the head in bytes, final empty line included.
    pub len: usize,
    /// The method.
    pub method: Method,
    /// The version.
    pub version: Version,
    /// The raw request-target.
    pub target: Span,
    /// The path (for the absolute form, the part after the authority; `/` when empty).
    pub path: Span,
    /// The query, without the `?`, if there is one.
    pub query: Option<Span>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    /// What `Expect` asked for.
    pub expect: Expect,
    /// Whether `Connection` named `upgrade` (used by the WebSocket handshake).
    pub connection_upgrade: bool,
    /// Where the fields most requests are asked for are.
    pub known: KnownFields,
}

/// Why a request head was refused. Each maps to a status and a short message.
///
/// After any of these the connection is closed: the framing of what follows
/// is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The request line is malformed.
    BadRequestLine,
    /// The method is not a token.
    BadMethod,
    /// The request-target is not in a form this server accepts.
    BadTarget,
    /// The version is well formed but not 1.0 or 1.1.
    UnsupportedVersion,
    /// A header name is malformed, has whitespace before the colon, or is folded (obs-fold).
    BadHeaderName,
    /// A header value holds a forbidden byte.
    BadHeaderValue,
    /// A line ends with a bare LF or a bare CR.
    BadLineEnding,
    /// Host is missing on HTTP/1.1.
    MissingHost,
    /// Host appears more than once.
    DuplicateHost,
    /// Host has a malformed value.
    BadHost,
    /// Content-Length is not a plain decimal number.
    BadContentLength,
    /// Content-Length appears more than once.
    DuplicateContentLength,
    /// Content-Length and Transfer-Encoding are both present.
    LengthAndChunked,
    /// Transfer-Encoding was sent with HTTP/1.0.
    ChunkedOnHttp10,
    /// Transfer-Encoding is malformed, repeated, or its last coding is not chunked.
    BadTransferEncoding,
    /// Transfer-Encoding names a coding other than chunked.
    UnsupportedTransferCoding,
    /// CONNECT is a proxy method; this server is not a proxy.
    ConnectUnsupported,
    /// The request-target is longer than the limit.
    TargetTooLong,
    /// The head is larger than the limit.
    HeadTooLarge,
    /// There are more header fields than the limit.
    TooManyHeaders,
}

impl HeadError {
    /// The status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::UnsupportedVersion => 505,
            HeadError::UnsupportedTransferCoding | HeadError::ConnectUnsupported => 501,
            HeadError::TargetTooLong => 414,
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// A short message for the response body, saying what was wrong.
    pub fn message(self) -> &'static str {
        match self {
            HeadError::BadRequestLine => "malformed request line",
            HeadError::BadMethod => "invalid method token",
            HeadError::BadTarget => "invalid request-target",
            HeadError::UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadError::BadHeaderName => {
                "invalid header name (whitespace before colon and line folding are not allowed)"
            }
            HeadError::BadHeaderValue => "invalid byte in a header value",
            HeadError::BadLineEnding => "lines must end with CRLF",
            HeadError::MissingHost => "HTTP/1.1 requests need a Host header",
            HeadError::DuplicateHost => "more than one Host header",
            HeadError::BadHost => "invalid Host header",
            HeadError::BadContentLength => "Content-Length must be a decimal number",
            HeadError::DuplicateContentLength => "more than one Content-Length header",
            HeadError::LengthAndChunked => "both Content-Length and Transfer-Encoding are present",
            HeadError::ChunkedOnHttp10 => "Transfer-Encoding is not allowed in HTTP/1.0",
            HeadError::BadTransferEncoding => {
                "Transfer-Encoding must be sent once and end with chunked"
            }
            HeadError::UnsupportedTransferCoding => "only the chunked transfer coding is supported",
            HeadError::ConnectUnsupported => "CONNECT is not supported",
            HeadError::TargetTooLong => "request-target too long",
            HeadError::HeadTooLarge => "request header section too large",
            HeadError::TooManyHeaders => "too many header fields",
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HeadError {}

/// Parses a request head from the front of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (read more and call again
/// with the longer buffer), `Ok(Some(head))` once it is complete and valid.
/// The header fields' offsets are left in `headers` (cleared first), so a
/// caller that keeps that `Vec` between requests parses without allocating.
///
/// (The module is public with the `fuzzing` feature only; so is this example.)
///
/// ```
/// # #[cfg(feature = "fuzzing")]
/// # {
/// use snowflake_mcp::http::head::{parse_head, Framing, HeadLimits};
///
/// let mut spans = Vec::new();
/// let buf = b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
/// let head = parse_head(buf, &HeadLimits::default(), &mut spans).unwrap().unwrap();
/// assert_eq!(head.framing, Framing::Length(2));
/// assert_eq!(&buf[head.len..], b"{}");
/// # }
/// ```
pub fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<Head>, HeadError> {
    headers.clear();
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP + 1];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, &mut slots[..max_headers + 1]);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(classify(buf, e)),
    };
    if len > limits.max_head_bytes {
        return Err(HeadError::HeadTooLarge);
    }
    if req.headers.len() > max_headers {
        return Err(HeadError::TooManyHeaders);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequestLine);
    };
    // httparse also ends lines at a bare LF: every line end must be CRLF here.
    let target_end = Span::of(buf, target.as_bytes()).end as usize;
    if !crlf_at(buf, target_end + " HTTP/1.1".len())
        || buf[len - 2] != b'\r'
        || !leading_lines_crlf(buf)
    {
        return Err(HeadError::BadLineEnding);
    }
    let method = Method::from_token(method);
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    if target.len() > limits.max_target_bytes {
        return Err(HeadError::TargetTooLong);
    }
    let target_span = Span::of(buf, target.as_bytes());
    let (path, query) = split_target(buf, method, target.as_bytes())?;

    let mut fields = Fields::default();
    let mut known = KnownFields::default();
    headers.reserve(req.headers.len());
    for (i, h) in req.headers.iter().enumerate() {
        // httparse has already trimmed the value's surrounding whitespace.
        let value = Span::of(buf, h.value);
        if !crlf_after_value(buf, value.end as usize) {
            return Err(HeadError::BadLineEnding);
        }
        fields.read(h.name.as_bytes(), h.value)?;
        known.note(h.name.as_bytes(), i);
        headers.push(HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value,
        });
    }
    let framing = fields.framing(version)?;
    if version == Version::Http11 && !fields.host {
        return Err(HeadError::MissingHost);
    }
    let keep_alive = match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };
    let expect = match (version, fields.expect) {
        // RFC 9110 10.1.1: a 100-continue from an HTTP/1.0 client is ignored.
        (Version::Http10, Expect::Continue) => Expect::Nothing,
        (_, e) => e,
    };
    Ok(Some(Head {
        len,
        method,
        version,
        target: target_span,
        path,
        query,
        framing,
        keep_alive,
        expect,
        connection_upgrade: fields.upgrade,
        known,
    }))
}

/// The head is incomplete: wait for more, unless it is already over a limit.
fn partial(buf: &[u8], limits: &HeadLimits) -> Result<Option<Head>, HeadError> {
    // Leading empty lines are allowed and skipped by httparse; the request line
    // starts after them.
    let line_start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[line_start..];
    let line_end = line.iter().position(|&b| b == b'\n');
    // "GET " plus " HTTP/1.1\r" around the target: 32 bytes covers any method we route.
    let line_limit = limits.max_target_bytes.saturating_add(32);
    match line_end {
        None if line.len() > line_limit => Err(HeadError::TargetTooLong),
        _ if buf.len() >= limits.max_head_bytes => Err(HeadError::HeadTooLarge),
        _ => Ok(None),
    }
}

/// Maps an httparse error to ours, telling an unsupported version (505) from garbage (400).
fn classify(buf: &[u8], e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::HeaderName => HeadError::BadHeaderName,
        httparse::Error::HeaderValue => HeadError::BadHeaderValue,
        httparse::Error::NewLine => HeadError::BadLineEnding,
        httparse::Error::Version if version_shaped(buf) => HeadError::UnsupportedVersion,
        httparse::Error::Token if !buf.is_empty() && !buf[0].is_ascii_uppercase() => {
            HeadError::BadMethod
        }
        _ => HeadError::BadRequestLine,
    }
}

/// Whether the request line is `METHOD TARGET HTTP/d.d` with a version httparse refused.
fn version_shaped(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

/// Whether `buf[at..]` starts with CRLF.
fn crlf_at(buf: &[u8], at: usize) -> bool {
    buf.get(at..at + 2) == Some(b"\r\n")
}

/// Whether the line holding a header value (which ends at `end`) ends with CRLF,
/// after any trailing whitespace httparse trimmed off.
#[inline(always)]
fn crlf_after_value(buf: &[u8], end: usize) -> bool {
    // The common case first: no trailing whitespace.
    if let Some(&[b'\r', b'\n']) = buf.get(end..end + 2) {
        return true;
    }
    let rest = &buf[end..];
    let ws = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    crlf_at(rest, ws)
}

/// Whether the empty lines httparse skips before the request line are all CRLF.
fn leading_lines_crlf(buf: &[u8]) -> bool {
    let mut i = 0;
    while matches!(buf.get(i), Some(b'\r' | b'\n')) {
        if !crlf_at(buf, i) {
            return false;
        }
        i += 2;
    }
    true
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

mod fields;
mod known;
mod target;

pub use known::{KnownFields, KnownHeader};

/// A byte table of RFC 3986's unreserved characters, sub-delims, `:` and
/// `%` (for percent-encoding), plus `extra`.
const fn uri_bytes(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
            );
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

use fields::Fields;
use target::split_target;

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
