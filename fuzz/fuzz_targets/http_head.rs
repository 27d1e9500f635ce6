//! Arbitrary bytes through head parsing and chunked body decoding.
//!
//! Must never panic, and must never accept a message whose framing is
//! ambiguous: an accepted head is checked against httparse's own view of the
//! same bytes (at most one framing header, the framing we chose is the one it
//! names, CRLF line ends only), and the chunked decoder must agree with
//! itself whether fed all at once or a byte at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snowflake_mcp::http::chunked::ChunkedDecoder;
use snowflake_mcp::http::head::{Framing, HeadLimits, Version, parse_head};

const MAX_BODY: u64 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_target_bytes: 2 * 1024,
    };
    let mut spans = Vec::new();
    let head = match parse_head(data, &limits, &mut spans) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert!(data.len() < limits.max_head_bytes);
            return;
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 414 | 431 | 501 | 505));
            return;
        }
    };
    let head_bytes = &data[..head.len];
    assert!(head.len <= limits.max_head_bytes);
    assert!(spans.len() <= limits.max_headers);
    for s in &spans {
        assert!(s.name.end as usize <= head.len && s.value.end as usize <= head.len);
    }
    // Every LF ends a CRLF.
    for (i, &b) in head_bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && head_bytes[i - 1] == b'\r', "bare LF accepted");
        }
    }

    // httparse's independent view of the same head.
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut raw);
    assert_eq!(req.parse(data), Ok(httparse::Status::Complete(head.len)));
    let named = |n: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value)
            .collect()
    };
    let cl = named("content-length");
    let te = named("transfer-encoding");
    let hosts = named("host").len();
    assert!(cl.len() + te.len() <= 1, "two framing headers accepted");
    assert!(hosts <= 1, "two Host headers accepted");
    if head.version == Version::Http11 {
        assert_eq!(hosts, 1, "HTTP/1.1 without Host accepted");
    }
    match head.framing {
        Framing::Chunked => {
            assert_eq!(te.len(), 1);
            assert!(te[0].eq_ignore_ascii_case(b"chunked"));
            assert_eq!(head.version, Version::Http11);
        }
        Framing::Length(n) => {
            assert_eq!(cl.len(), 1);
            assert!(cl[0].iter().all(u8::is_ascii_digit));
            assert_eq!(
                std::str::from_utf8(cl[0]).ok().and_then(|s| s.parse().ok()),
                Some(n)
            );
        }
        Framing::Empty => {
            assert!(te.is_empty());
            assert!(
                cl.iter()
                    .all(|v| v.iter().all(|&b| b == b'0') && !v.is_empty())
            );
        }
    }

    if head.framing == Framing::Chunked {
        check_chunked(&data[head.len..]);
    }
});

/// Decoding in one call and a byte at a time must agree on the body, the end and the error.
fn check_chunked(body: &[u8]) {
    let mut whole = ChunkedDecoder::new(MAX_BODY);
    let mut out_whole = Vec::new();
    let r_whole = whole.decode(body, &mut out_whole);

    let mut bytewise = ChunkedDecoder::new(MAX_BODY);
    let mut out_bytewise = Vec::new();
    let mut r_bytewise = Ok(None);
    for i in 0..body.len() {
        match bytewise.decode(&body[i..i + 1], &mut out_bytewise) {
            Ok(Some(n)) => {
                r_bytewise = Ok(Some(i + n));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                r_bytewise = Err(e);
                break;
            }
        }
    }
    assert_eq!(r_whole, r_bytewise);
    if let Ok(Some(end)) = r_whole {
        assert!(end <= body.len());
        assert_eq!(out_whole, out_bytewise);
        assert!(
            out_whole.len() < end,
            "decoded more than the framing carried"
        );
        assert!(out_whole.len() as u64 <= MAX_BODY);
    }
}
