//! Response encoding: status line, server-managed headers, chunk framing.

use super::response::reason;
use crate::util::date::write_date;

/// The interim response sent before reading a body the client is waiting to send.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body and no length header (1xx, 204, 304).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No length header: the body ends when the connection closes (HTTP/1.0 streams).
    UntilClose,
}

/// What the `Connection` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnHeader {
    /// Nothing: HTTP/1.1 keep-alive is the default.
    Omit,
    /// `Connection: close`.
    Close,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `Connection: upgrade` (101 responses).
    Upgrade,
}

/// A response's own header fields, as [`write_head`] takes them.
#[derive(Clone, Copy, Default)]
pub(crate) struct Headers<'a> {
    /// Name and value pairs.
    pub(crate) inline: &'a [(&'a str, &'a str)],
    /// Lines already encoded as `name: value\r\n`.
    pub(crate) encoded: &'a [u8],
    /// Encoded lines the server adds to every response (security headers, CORS).
    pub(crate) server: &'a [u8],
    /// Encoded lines for this request only (CORS for its origin).
    pub(crate) request: &'a [u8],
}

impl<'a> Headers<'a> {
    /// The same headers plus the server-wide and per-request lines.
    /// A response that names its own `Access-Control-Allow-Origin` (a
    /// public document readable from any origin) keeps it, without the
    /// request's CORS lines.
    pub(crate) fn with(self, server: &'a [u8], request: &'a [u8]) -> Self {
        let own_cors = !request.is_empty()
            && self
                .inline
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-origin"));
        Headers {
            server,
            request: if own_cors { &[] } else { request },
            ..self
        }
    }

    pub(crate) fn of(response: &'a super::response::Response) -> Self {
        Headers {
            inline: response.inline_headers(),
            encoded: &response.headers,
            server: &[],
            request: &[],
        }
    }

    pub(crate) fn encoded(encoded: &'a [u8]) -> Self {
        Headers {
            inline: &[],
            encoded,
            server: &[],
            request: &[],
        }
    }
}

/// Appends a complete response head (status line through the empty line) to `out`.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: Headers<'_>,
    framing: BodyFraming,
    conn: ConnHeader,
) {
    let mut num = [0u8; 20];
    match status {
        // Most answers' status lines, with the Date line's start: one copy.
        200 => out.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: "),
        202 => out.extend_from_slice(b"HTTP/1.1 202 Accepted\r\nDate: "),
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(format_decimal(u64::from(status), &mut num));
            out.push(b' ');
            out.extend_from_slice(reason(status).as_bytes());
            out.extend_from_slice(b"\r\nDate: ");
        }
    }
    write_date(out);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.inline {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(headers.encoded);
    out.extend_from_slice(headers.server);
    out.extend_from_slice(headers.request);
    match framing {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(format_decimal(n, &mut num));
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    match conn {
        ConnHeader::Omit => {}
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Upgrade => out.extend_from_slice(b"Connection: upgrade\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body; `data` must not be empty (that would end the body).
pub(crate) fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(!data.is_empty());
    write_chunk_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a chunk's size line (hex, CRLF); the data and its CRLF follow.
pub(crate) fn write_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut hex = [0u8; 16];
    let mut i = hex.len();
    let mut n = len;
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

pub(crate) fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without_date(out: &[u8]) -> String {
        let s = String::from_utf8(out.to_vec()).unwrap();
        let start = s.find("Date: ").unwrap();
        let end = start + s[start..].find("\r\n").unwrap() + 2;
        format!("{}{}", &s[..start], &s[end..])
    }

    #[test]
    fn head_with_length() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            200,
            Headers {
                inline: &[("content-type", "text/plain")],
                encoded: b"x-a: b\r\n",
                server: b"x-s: 1\r\n",
                request: b"x-r: 2\r\n",
            },
            BodyFraming::Length(12),
            ConnHeader::Omit,
        );
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-a: b\r\nx-s: 1\r\nx-r: 2\r\nContent-Length: 12\r\n\r\n"
        );
    }

    #[test]
    fn every_status_line_is_the_code_and_its_reason() {
        // The common ones are written whole; the rest piece by piece.
        for status in [200, 202, 204, 400, 404, 500, 599] {
            let mut out = Vec::new();
            write_head(
                &mut out,
                status,
                Headers::default(),
                BodyFraming::None,
                ConnHeader::Omit,
            );
            let line = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            assert_eq!(without_date(&out), format!("{line}\r\n"));
            assert!(out.starts_with(format!("{line}Date: ").as_bytes()));
        }
    }

    #[test]
    fn head_chunked_close() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            503,
            Headers::default(),
            BodyFraming::Chunked,
            ConnHeader::Close,
        );
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunk_sizes_are_lower_hex() {
        let mut out = Vec::new();
        write_chunk(&mut out, &[b'x'; 26]);
        assert!(out.starts_with(b"1a\r\nxxxx"));
        assert!(out.ends_with(b"x\r\n"));
        out.clear();
        write_chunk(&mut out, &[b'y'; 4096]);
        assert!(out.starts_with(b"1000\r\n"));
    }
}
