//! The server side of the WebSocket opening handshake (RFC 6455 section 4.2).
//!
//! [`negotiate`] reads a request that arrived on the HTTP engine and either
//! accepts it (the `Sec-WebSocket-Accept` value and the chosen subprotocol)
//! or refuses it with the status a client can act on: 400 for a malformed
//! handshake, 403 for a refused `Origin`, 426 (with `Sec-WebSocket-Version:
//! 13`) for a missing or other protocol version or a plain GET. Nothing is
//! allocated: the key is decoded and the answer encoded on the stack.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};

use crate::http::{Method, Request, Response, Version};

/// The GUID RFC 6455 appends to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The subprotocol MCP clients ask for.
pub const SUBPROTOCOL: &str = "mcp";

/// A handshake the server will complete.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Accept` value (base64 of a SHA-1 digest: 28 bytes).
    accept: [u8; 28],
    /// Whether the client offered the `mcp` subprotocol (it is then echoed).
    pub subprotocol: bool,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("accept", &self.accept_key())
            .field("subprotocol", &self.subprotocol)
            .finish()
    }
}

impl Accepted {
    /// The `Sec-WebSocket-Accept` value.
    pub fn accept_key(&self) -> &str {
        // Base64 output is ASCII.
        std::str::from_utf8(&self.accept).unwrap_or_default()
    }

    /// Adds the handshake's headers to a `101` response (see [`Response::upgrade`]).
    pub fn headers(&self, response: Response) -> Response {
        let mut response = response.header("upgrade", "websocket");
        if self.subprotocol {
            response = response.header("sec-websocket-protocol", SUBPROTOCOL);
        }
        match response.try_header("sec-websocket-accept", self.accept) {
            Ok(r) => r,
            // Base64 is always a valid header value; this arm is never taken.
            Err(_) => Response::text(500, "invalid accept key"),
        }
    }
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The request is not `HTTP/1.1` (or later).
    #[error("a WebSocket handshake needs HTTP/1.1")]
    Version,
    /// No `Upgrade: websocket` (a plain request to the WebSocket endpoint).
    #[error("this endpoint speaks WebSocket: send Upgrade: websocket")]
    NoUpgrade,
    /// `Connection` does not list `upgrade`.
    #[error("Connection must list upgrade")]
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or is not `13`.
    #[error("Sec-WebSocket-Version must be 13")]
    WsVersion,
    /// `Sec-WebSocket-Key` is missing, repeated, or not base64 of 16 bytes.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes, sent once")]
    Key,
    /// The client offered subprotocols, none of them `mcp`.
    #[error("Sec-WebSocket-Protocol must offer mcp")]
    Subprotocol,
    /// The `Origin` (or, with a loopback origin, the `Host`) is not allowed.
    #[error("{0}")]
    Origin(&'static str),
}

impl Refused {
    /// The HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            Refused::NoUpgrade | Refused::WsVersion => 426,
            Refused::Origin(_) => 403,
            _ => 400,
        }
    }

    /// The refusal as a response (plain text naming the rule; 426 answers
    /// carry `Sec-WebSocket-Version: 13` and `Upgrade: websocket`).
    pub fn response(self) -> Response {
        let response = Response::text(self.status(), self.to_string());
        if self.status() == 426 {
            response
                .header("sec-websocket-version", "13")
                .header("upgrade", "websocket")
        } else {
            response
        }
    }
}

/// Checks a request against the handshake rules and computes the answer.
///
/// `origin_allowed` is the caller's Origin policy (the handshake is
/// mechanism only): it gets the request once the handshake headers are
/// valid, and its refusal's message becomes a 403.
/// The request's method must be GET (the router only sends GETs here;
/// anything else is refused as [`Refused::NoUpgrade`]).
pub fn negotiate(
    req: &Request<'_>,
    origin_allowed: impl FnOnce(&Request<'_>) -> Result<(), &'static str>,
) -> Result<Accepted, Refused> {
    if req.method() != Method::Get || !has_token(req, "upgrade", "websocket") {
        return Err(Refused::NoUpgrade);
    }
    if req.version() != Version::Http11 {
        return Err(Refused::Version);
    }
    if !req.wants_upgrade() {
        return Err(Refused::NoConnectionUpgrade);
    }
    let mut versions = req.header_all("sec-websocket-version");
    if versions.next() != Some(b"13") || versions.next().is_some() {
        return Err(Refused::WsVersion);
    }
    let mut keys = req.header_all("sec-websocket-key");
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(Refused::Key);
    };
    if !key_is_valid(key) {
        return Err(Refused::Key);
    }
    origin_allowed(req).map_err(Refused::Origin)?;
    let offered = req.header_all("sec-websocket-protocol").next().is_some();
    let subprotocol = has_token(req, "sec-websocket-protocol", SUBPROTOCOL);
    if offered && !subprotocol {
        return Err(Refused::Subprotocol);
    }
    Ok(Accepted {
        accept: accept_key(key),
        subprotocol,
    })
}

/// Whether a comma-separated header (all its lines) lists `token`, any case.
fn has_token(req: &Request<'_>, name: &str, token: &str) -> bool {
    req.header_all(name).any(|value| {
        value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// A key is base64 (with padding) of exactly 16 bytes: 24 characters.
fn key_is_valid(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

/// `base64(sha1(key + GUID))`.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut hasher = Sha1::new();
    hasher.update(key);
    hasher.update(ACCEPT_GUID);
    let digest = hasher.finalize();
    let mut out = [0u8; 28];
    // 20 bytes encode to exactly 28 base64 characters.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{HeadLimits, parse_head};

    fn run(head: &str) -> Result<Accepted, Refused> {
        let limits = HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_target_bytes: 8 * 1024,
        };
        let mut spans = Vec::new();
        let parsed = parse_head(head.as_bytes(), &limits, &mut spans)
            .expect("valid head")
            .expect("complete head");
        let remote = "127.0.0.1:1".parse().expect("addr");
        let req = Request::from_parts(head.as_bytes(), &parsed, &spans, b"", remote);
        // A policy for the test: one origin refused, any other allowed.
        negotiate(&req, |req| match req.header("origin") {
            Some(b"https://evil.example") => Err("Origin not allowed"),
            _ => Ok(()),
        })
    }

    const GOOD: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    /// The good handshake plus `extra` header lines (CRLF-separated, no final CRLF).
    fn with(extra: &str) -> String {
        if extra.is_empty() {
            format!("{GOOD}\r\n")
        } else {
            format!("{GOOD}{extra}\r\n\r\n")
        }
    }

    #[test]
    fn rfc_example_key() {
        // RFC 6455 section 1.3.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let accepted = run(&with("")).expect("accepted");
        assert_eq!(accepted.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(!accepted.subprotocol);
    }

    #[test]
    fn matches_tungstenite() {
        for key in ["AAAAAAAAAAAAAAAAAAAAAA==", "x3JJHMbDL1EzLkh9GBhXDw=="] {
            let ours = accept_key(key.as_bytes());
            let theirs =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            assert_eq!(std::str::from_utf8(&ours).ok(), Some(theirs.as_str()));
        }
    }

    #[test]
    fn subprotocol_is_negotiated() {
        assert!(run(&with("Sec-WebSocket-Protocol: mcp")).is_ok_and(|a| a.subprotocol));
        assert!(run(&with("Sec-WebSocket-Protocol: chat, MCP")).is_ok_and(|a| a.subprotocol));
        assert!(
            run(&with(
                "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: mcp"
            ))
            .is_ok_and(|a| a.subprotocol)
        );
        assert_eq!(
            run(&with("Sec-WebSocket-Protocol: chat")),
            Err(Refused::Subprotocol)
        );
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, Refused)] = &[
            ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", Refused::NoUpgrade),
            (
                "GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                Refused::Version,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                Refused::NoConnectionUpgrade,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
                Refused::WsVersion,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                Refused::WsVersion,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                Refused::Key,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
                Refused::Key,
            ),
        ];
        for (head, refused) in cases {
            assert_eq!(run(head), Err(*refused), "{head}");
        }
        assert_eq!(
            run(&with("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==")),
            Err(Refused::Key)
        );
        assert_eq!(
            run(&with("Origin: https://evil.example")),
            Err(Refused::Origin("Origin not allowed"))
        );
        assert!(run(&with("Origin: https://app.example")).is_ok());
        assert_eq!(Refused::WsVersion.response().status(), 426);
        assert_eq!(
            Refused::WsVersion
                .response()
                .header_value("sec-websocket-version"),
            Some(&b"13"[..])
        );
    }

    #[test]
    fn connection_and_upgrade_are_token_lists() {
        let head = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c, WebSocket\r\nConnection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(run(head).is_ok());
    }
}
