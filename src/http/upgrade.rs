//! A connection handed over by the HTTP layer after a `101 Switching Protocols`.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::shutdown::ShutdownSignal;

/// The socket of an upgraded connection and everything needed to go on with it.
///
/// The connection still counts against the server's connection limit and
/// keeps a graceful shutdown waiting until the task that owns it ends.
#[derive(Debug)]
pub struct Upgraded {
    /// The socket; the 101 response has been written and flushed.
    pub stream: TcpStream,
    /// Bytes the client sent after the request head, before the switch (feed
    /// them to the new protocol first).
    pub read_ahead: Bytes,
    /// Resolves when the server begins a graceful shutdown.
    pub shutdown: ShutdownSignal,
    /// The peer's address.
    pub remote_addr: SocketAddr,
}
