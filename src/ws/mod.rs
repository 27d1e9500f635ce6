//! WebSocket: our own opening handshake, and the limits of a WebSocket session.
//!
//! The handshake ([`handshake`]) runs on the HTTP engine's request: sha1 and
//! base64 compute the accept key, the `mcp` subprotocol is negotiated and
//! extensions are declined. After the `101`, frames are tokio-tungstenite's
//! (`WebSocketStream::from_partially_read`, so bytes the client sent right
//! after its handshake are not lost). The MCP session loop on top is
//! [`crate::transport::websocket`].

use std::time::Duration;

pub mod handshake;

/// Largest message a client may send (bigger ones close with 1009). Default: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Largest message the server will write (a bigger answer closes with 1009). Default: 64 MiB.
pub const DEFAULT_MAX_OUTGOING_BYTES: usize = 64 * 1024 * 1024;
/// How often an idle socket is pinged. Default: 30 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after a ping after which the peer is taken for dead. Default: 30 s.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages queued for one socket before the calls producing them wait. Default: 256.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;
/// Bytes of answers and notifications one socket may have waiting to be
/// sent (queued, or finished and waiting for room in the queue); past it
/// the client is taken for one that does not read and is closed with 1008.
/// Default: 16 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// How long one message may take to reach the socket before the client is
/// taken for one that does not read and is closed with 1008. Default: 10 s.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one socket running at once; past it the socket is not read
/// until one finishes. Default: 256.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// How long a closing handshake may take before the socket is dropped. Default: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from the socket at a time (tungstenite's default, 128 KiB, is
/// zero-filled on the first read and dominates an idle socket's memory). Default: 8 KiB.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Settings of the WebSocket endpoint.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Browser origins accepted besides loopback ones (exact `scheme://host[:port]`). Default: none.
    pub allowed_origins: Vec<String>,
    /// `Host` names the endpoint answers to (any port); others get 403.
    /// Default: none (any name).
    pub allowed_hosts: Vec<String>,
    /// Default: [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Default: [`DEFAULT_MAX_OUTGOING_BYTES`].
    pub max_outgoing_bytes: usize,
    /// Default: [`DEFAULT_PING_INTERVAL`].
    pub ping_interval: Duration,
    /// Default: [`DEFAULT_PONG_TIMEOUT`].
    pub pong_timeout: Duration,
    /// Default: [`DEFAULT_OUTBOUND_QUEUE`].
    pub outbound_queue: usize,
    /// Default: [`DEFAULT_MAX_QUEUED_BYTES`].
    pub max_queued_bytes: usize,
    /// Default: [`DEFAULT_SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// Default: [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// Default: [`DEFAULT_CLOSE_TIMEOUT`].
    pub close_timeout: Duration,
    /// Default: [`DEFAULT_READ_BUFFER_BYTES`].
    pub read_buffer_bytes: usize,
    /// Bearer keys the handshake must carry (401 otherwise). Default: none (open).
    pub auth: Option<std::sync::Arc<crate::ops::auth::Auth>>,
    /// Per-client-address limit on handshakes (429 with `Retry-After`). Default: none.
    pub rate_limit: Option<std::sync::Arc<crate::ops::rate::RateLimiter>>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_outgoing_bytes: DEFAULT_MAX_OUTGOING_BYTES,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
            auth: None,
            rate_limit: None,
        }
    }
}
