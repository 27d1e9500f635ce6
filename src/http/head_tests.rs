//! Table-driven tests of the head parser: one row per rule.

use super::*;

fn parse(raw: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut spans = Vec::new();
    parse_head(raw, &HeadLimits::default(), &mut spans)
}

fn ok(raw: &[u8]) -> Head {
    match parse(raw) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn accepted_heads() {
    // (request, framing, keep_alive, expect)
    let rows: &[(&[u8], Framing, bool, Expect)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.0\r\n\r\n",
            Framing::Empty,
            false,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n",
            Framing::Empty,
            false,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Framing::Empty,
            false,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
            Framing::Empty,
            false,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n",
            Framing::Length(42),
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  7 \r\n\r\n",
            Framing::Length(7),
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0007\r\n\r\n",
            Framing::Length(7),
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
            Framing::Length(3),
            false,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            Framing::Chunked,
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
            Framing::Chunked,
            true,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            Framing::Length(1),
            true,
            Expect::Continue,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
            Framing::Length(1),
            true,
            Expect::Continue,
        ),
        (
            b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            Framing::Length(1),
            false,
            Expect::Nothing,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: gzip\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Unsupported,
        ),
        (
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Nothing,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
            Framing::Empty,
            true,
            Expect::Nothing,
        ),
    ];
    for (raw, framing, keep_alive, expect) in rows {
        let h = ok(raw);
        let name = String::from_utf8_lossy(raw);
        assert_eq!(h.framing, *framing, "{name}");
        assert_eq!(h.keep_alive, *keep_alive, "{name}");
        assert_eq!(h.expect, *expect, "{name}");
        assert_eq!(h.len, raw.len(), "{name}");
    }
}

#[test]
fn refused_heads() {
    let rows: &[(&[u8], HeadError)] = &[
        // Request line.
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", HeadError::UnsupportedVersion),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", HeadError::UnsupportedVersion),
        (b"GET / HTTP/0.9\r\n\r\n", HeadError::UnsupportedVersion),
        (b"GET / HTTP/1\r\nHost: a\r\n\r\n", HeadError::BadRequestLine),
        (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", HeadError::BadRequestLine),
        (b"GET /\r\n\r\n", HeadError::BadRequestLine),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadRequestLine),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadRequestLine),
        (b"GET / HTTP/1.1\nHost: a\n\n", HeadError::BadLineEnding),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", HeadError::BadLineEnding),
        (b"GET / HTTP/1.1\r\nHost: a\r\rX: b\r\n\r\n", HeadError::BadHeaderValue),
        // Request-target forms.
        (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET /\"x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::BadTarget),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::ConnectUnsupported),
        // Header syntax.
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\n: a\r\n\r\n", HeadError::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", HeadError::BadHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n", HeadError::BadHeaderValue),
        // Host.
        (b"GET / HTTP/1.1\r\n\r\n", HeadError::MissingHost),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HeadError::DuplicateHost),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HeadError::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HeadError::BadHost),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", HeadError::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", HeadError::BadHost),
        // Content-Length.
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", HeadError::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HeadError::DuplicateContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", HeadError::DuplicateContentLength),
        // Transfer-Encoding.
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HeadError::LengthAndChunked),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", HeadError::LengthAndChunked),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HeadError::ChunkedOnHttp10),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HeadError::BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HeadError::UnsupportedTransferCoding),
    ];
    for (raw, want) in rows {
        assert_eq!(parse(raw), Err(*want), "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn error_statuses() {
    assert_eq!(HeadError::UnsupportedVersion.status(), 505);
    assert_eq!(HeadError::TargetTooLong.status(), 414);
    assert_eq!(HeadError::HeadTooLarge.status(), 431);
    assert_eq!(HeadError::TooManyHeaders.status(), 431);
    assert_eq!(HeadError::UnsupportedTransferCoding.status(), 501);
    assert_eq!(HeadError::LengthAndChunked.status(), 400);
}

#[test]
fn every_prefix_is_partial() {
    let raw = b"POST /mcp?x=1 HTTP/1.1\r\nHost: localhost:8000\r\nContent-Length: 2\r\n\r\n";
    for cut in 0..raw.len() {
        assert_eq!(parse(&raw[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse(raw).unwrap().is_some());
}

#[test]
fn target_forms_and_spans() {
    let raw = b"GET /a/b?c=d&e HTTP/1.1\r\nHost: x\r\nX-One:  v1 \r\n\r\n";
    let mut spans = Vec::new();
    let h = parse_head(raw, &HeadLimits::default(), &mut spans)
        .unwrap()
        .unwrap();
    assert_eq!(h.path.slice(raw), b"/a/b");
    assert_eq!(h.query.unwrap().slice(raw), b"c=d&e");
    assert_eq!(h.target.slice(raw), b"/a/b?c=d&e");
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].name.slice(raw), b"X-One");
    assert_eq!(spans[1].value.slice(raw), b"v1");

    let raw = b"GET http://example.com:80/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let h = ok(raw);
    assert_eq!(h.path.slice(raw), b"/p");
    assert_eq!(h.query.unwrap().slice(raw), b"q");

    let raw = b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_eq!(ok(raw).path.slice(raw), b"");

    let raw = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(ok(raw).path.slice(raw), b"*");
}

#[test]
fn connection_upgrade_tokens() {
    let h = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n");
    assert!(h.connection_upgrade);
    assert!(h.keep_alive);
    let h = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrades\r\n\r\n");
    assert!(!h.connection_upgrade);
}

fn limits(head: usize, headers: usize, target: usize) -> HeadLimits {
    HeadLimits {
        max_head_bytes: head,
        max_headers: headers,
        max_target_bytes: target,
    }
}

#[test]
fn limits_are_enforced() {
    let mut spans = Vec::new();
    // Target limit, complete head.
    let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
    assert_eq!(
        parse_head(raw.as_bytes(), &limits(4096, 10, 100), &mut spans),
        Err(HeadError::TargetTooLong)
    );
    assert!(parse_head(raw.as_bytes(), &limits(4096, 10, 101), &mut spans).is_ok());
    // Target limit while the request line is still arriving.
    let raw = format!("GET /{}", "a".repeat(200));
    assert_eq!(
        parse_head(raw.as_bytes(), &limits(4096, 10, 100), &mut spans),
        Err(HeadError::TargetTooLong)
    );
    // Header count.
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..10 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(
        parse_head(raw.as_bytes(), &limits(4096, 10, 100), &mut spans),
        Err(HeadError::TooManyHeaders)
    );
    assert!(parse_head(raw.as_bytes(), &limits(4096, 11, 100), &mut spans).is_ok());
    // Head size, complete and partial.
    assert_eq!(
        parse_head(raw.as_bytes(), &limits(100, 20, 100), &mut spans),
        Err(HeadError::HeadTooLarge)
    );
    assert_eq!(
        parse_head(
            &raw.as_bytes()[..raw.len() - 2],
            &limits(100, 20, 100),
            &mut spans
        ),
        Err(HeadError::HeadTooLarge)
    );
    assert_eq!(
        parse_head(
            &raw.as_bytes()[..raw.len() - 2],
            &limits(4096, 20, 100),
            &mut spans
        ),
        Ok(None)
    );
}

#[test]
fn spans_are_reused_without_growth() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    let mut spans = Vec::new();
    parse_head(raw, &HeadLimits::default(), &mut spans).unwrap();
    let cap = spans.capacity();
    for _ in 0..10 {
        parse_head(raw, &HeadLimits::default(), &mut spans).unwrap();
    }
    assert_eq!(spans.capacity(), cap);
    assert_eq!(spans.len(), 3);
}
