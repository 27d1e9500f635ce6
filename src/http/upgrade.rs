//! A connection handed over by the HTTP layer after a `101 Switching Protocols`.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::shutdown::ShutdownSignal;

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("read_ahead", &self.read_ahead.len())
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// The stream of an upgraded connection and everything needed to go on with it.
///
/// The connection still counts against the server's connection limit and
/// keeps a graceful shutdown waiting until the task that owns it ends.
pub struct Upgraded {
    /// The stream (a TCP or Unix socket, a TLS stream, an in-memory pipe);
    /// the 101 response has been written and flushed.
    pub stream: super::io::BoxedIo,
    /// Bytes the client sent after the request head, before the switch (feed
    /// them to the new protocol first).
    pub read_ahead: Bytes,
    /// Resolves when the server begins a graceful shutdown.
    pub shutdown: ShutdownSignal,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The server's bound on what waits for clients that do not read
    /// ([`crate::http::config::Config::max_backlog_bytes`]): what the new
    /// protocol writes counts against it too.
    pub(crate) backlog: std::sync::Arc<crate::budget::Backlog>,
    /// The server's bound on large request bodies held at once
    /// ([`crate::http::config::Config::max_large_bodies_bytes`]): the new
    /// protocol's large incoming messages count against it too.
    pub(crate) bodies: std::sync::Arc<crate::budget::ByteBudget>,
}
