//! Arbitrary request heads through the WebSocket handshake.
//!
//! Must never panic, and must never accept (101) a handshake that breaks a
//! rule: every accepted head is re-checked here from httparse's own view of
//! the bytes (GET, HTTP/1.1, `Upgrade` listing websocket, `Connection`
//! listing upgrade, one `Sec-WebSocket-Version: 13`, one key that is base64
//! of 16 bytes), and the accept key must be the one tungstenite derives.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use snowflake_mcp::http::Request;
use snowflake_mcp::http::head::{HeadLimits, parse_head};
use snowflake_mcp::ws::handshake::negotiate;

fn lists(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .any(|h| {
            h.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
}

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_target_bytes: 2 * 1024,
    };
    let mut spans = Vec::new();
    let Ok(Some(head)) = parse_head(data, &limits, &mut spans) else {
        return;
    };
    let remote = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let req = Request::from_parts(data, &head, &spans, b"", remote);
    let allowed = ["https://app.example".to_owned()];
    let accepted = match negotiate(&req, |req| {
        snowflake_mcp::guard::origin::check(req, &allowed).map_err(|refused| refused.message())
    }) {
        Ok(accepted) => accepted,
        Err(refused) => {
            assert!(matches!(refused.status(), 400 | 403 | 426));
            let _ = refused.response();
            return;
        }
    };

    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut raw);
    assert!(matches!(
        parsed.parse(data),
        Ok(httparse::Status::Complete(_))
    ));
    assert_eq!(parsed.method, Some("GET"));
    assert_eq!(parsed.version, Some(1));
    let headers = parsed.headers;
    assert!(lists(headers, "upgrade", "websocket"));
    assert!(lists(headers, "connection", "upgrade"));
    let named = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
            .collect()
    };
    assert_eq!(named("sec-websocket-version"), [b"13"]);
    let keys = named("sec-websocket-key");
    assert_eq!(keys.len(), 1);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(keys[0])
        .expect("accepted key is base64");
    assert_eq!(decoded.len(), 16);
    let expected = tungstenite::handshake::derive_accept_key(keys[0]);
    assert_eq!(accepted.accept_key(), expected);
    if accepted.subprotocol {
        assert!(lists(headers, "sec-websocket-protocol", "mcp"));
    }
});
