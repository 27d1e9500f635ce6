//! WebSocket: our own opening handshake, and the limits of a WebSocket session.
//!
//! The handshake ([`handshake`]) runs on the HTTP engine's request: sha1 and
//! base64 compute the accept key, the `mcp` subprotocol is negotiated and
//! extensions are declined. After the `101`, frames are tokio-tungstenite's
//! (`WebSocketStream::from_partially_read`, so bytes the client sent right
//! after its handshake are not lost). The MCP session loop on top is
//! `transport::websocket`, which also holds the endpoint's settings
//! (`WsConfig`: these limits, and the admission policy).

use std::time::Duration;

pub mod handshake;
pub(crate) mod watch;

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
/// How long a client may be silent, with no call running, before its
/// socket drops tungstenite's side until it is needed again (see
/// `WsConfig::doze_after`). Default: 250 ms.
pub const DEFAULT_DOZE_AFTER: Duration = Duration::from_millis(250);
/// How long a closing handshake may take before the socket is dropped. Default: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from the socket at a time (tungstenite's default, 128 KiB, is
/// zero-filled on the first read and dominates an idle socket's memory).
/// Default: 768 bytes, which an idle socket keeps. tungstenite zero-fills
/// the buffer's free room before each read, so a smaller one costs little
/// speed: 1 KiB served 69,200 calls/s against 61,000 at 4 KiB (32 sockets,
/// 8 calls in flight each, three alternating rounds). Smaller still costs
/// latency: 512 bytes served as many calls/s as 1 KiB but with 2.5 times
/// its p99 (about 10 ms against 4 ms); 768 bytes, within 15% of its p99. A
/// message larger than the buffer is read 768 bytes per system call.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 768;
