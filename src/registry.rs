//! The connection manager: every HTTP connection, MCP session and WebSocket
//! is counted here by transport.
//!
//! Counters (active, opened, closed, messages, per transport) are atomics:
//! reading them is a `Registry::snapshot` that takes no lock and is cheap
//! enough for every scrape of an ops endpoint. Registering happens once per
//! connection or session (never per request), and unregistering is a
//! `Registration` being dropped, so nothing can be left behind when a task
//! ends in any way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a registered entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// An HTTP/1.1 connection (a TCP socket the HTTP engine serves).
    Http,
    /// An MCP session of the Streamable HTTP transport (it outlives connections).
    StreamableHttp,
    /// A WebSocket carrying one MCP session.
    WebSocket,
    /// An MCP session over stdin and stdout.
    Stdio,
}

impl Transport {
    /// Every transport, in the order snapshots list them.
    pub const ALL: [Transport; 4] = [
        Transport::Http,
        Transport::StreamableHttp,
        Transport::WebSocket,
        Transport::Stdio,
    ];

    /// The transports that carry MCP sessions (all but plain HTTP connections).
    pub const SESSIONS: [Transport; 3] = [
        Transport::StreamableHttp,
        Transport::WebSocket,
        Transport::Stdio,
    ];

    /// A short lower-case name (`http`, `streamable_http`, `websocket`, `stdio`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::StreamableHttp => "streamable_http",
            Transport::WebSocket => "websocket",
            Transport::Stdio => "stdio",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one transport. `Relaxed` everywhere: each is a standalone
/// tally that orders nothing else.
#[derive(Debug, Default)]
struct Counters {
    active: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
    expired: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    closed_not_reading: AtomicU64,
    dozes: AtomicU64,
}

/// Something counted per transport besides opening and closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Event {
    /// A session ended because it went unused too long.
    Expired,
    /// A message was received (WebSocket frames carrying MCP).
    MessageIn,
    /// A message was sent.
    MessageOut,
    /// The server closed the connection because its client stopped
    /// reading (answers past the byte bound, or a send blocked past the
    /// send timeout).
    ClosedNotReading,
    /// A socket dropped its WebSocket library's side while idle (it is
    /// built again when needed).
    Dozed,
}

/// One transport's counters at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TransportStats {
    /// Open now.
    pub active: u64,
    /// Opened since start.
    pub opened: u64,
    /// Closed since start (expired ones included).
    pub closed: u64,
    /// Ended by expiry since start.
    pub expired: u64,
    /// Messages received since start (counted by WebSocket).
    pub messages_in: u64,
    /// Messages sent since start (counted by WebSocket).
    pub messages_out: u64,
    /// Closed by the server since start because the client stopped reading
    /// (counted by WebSocket).
    pub closed_not_reading: u64,
    /// Times a socket dozed since start (counted by WebSocket).
    pub dozes: u64,
}

/// Every transport's counters at a moment (no lock taken to read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegistrySnapshot {
    by_transport: [TransportStats; 4],
}

impl RegistrySnapshot {
    /// The counters of one transport.
    pub fn get(&self, transport: Transport) -> TransportStats {
        self.by_transport[transport.index()]
    }

    /// MCP sessions open now, whatever their transport.
    pub fn active_sessions(&self) -> u64 {
        Transport::SESSIONS
            .iter()
            .map(|&t| self.get(t).active)
            .sum()
    }
}

/// The connection manager. Share it (`Arc`) between the [`crate::Server`]
/// and the transports so one snapshot covers them all.
#[derive(Default)]
pub struct Registry {
    counters: [Counters; 4],
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Registers something open; it stays registered until the returned
    /// [`Registration`] is dropped.
    pub(crate) fn register(self: &Arc<Self>, transport: Transport) -> Registration {
        let counters = &self.counters[transport.index()];
        counters.opened.fetch_add(1, Ordering::Relaxed);
        counters.active.fetch_add(1, Ordering::Relaxed);
        Registration {
            registry: Arc::clone(self),
            transport,
        }
    }

    /// Counts `event` for `transport` (one atomic add).
    pub(crate) fn count(&self, transport: Transport, event: Event) {
        let c = &self.counters[transport.index()];
        let counter = match event {
            Event::Expired => &c.expired,
            Event::MessageIn => &c.messages_in,
            Event::MessageOut => &c.messages_out,
            Event::ClosedNotReading => &c.closed_not_reading,
            Event::Dozed => &c.dozes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of every transport, read without a lock.
    pub(crate) fn snapshot(&self) -> RegistrySnapshot {
        let mut snapshot = RegistrySnapshot::default();
        for t in Transport::ALL {
            let c = &self.counters[t.index()];
            snapshot.by_transport[t.index()] = TransportStats {
                active: c.active.load(Ordering::Relaxed),
                opened: c.opened.load(Ordering::Relaxed),
                closed: c.closed.load(Ordering::Relaxed),
                expired: c.expired.load(Ordering::Relaxed),
                messages_in: c.messages_in.load(Ordering::Relaxed),
                messages_out: c.messages_out.load(Ordering::Relaxed),
                closed_not_reading: c.closed_not_reading.load(Ordering::Relaxed),
                dozes: c.dozes.load(Ordering::Relaxed),
            };
        }
        snapshot
    }
}

/// Keeps an entry registered; dropping it unregisters.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    transport: Transport,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("transport", &self.transport)
            .finish()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let counters = &self.registry.counters[self.transport.index()];
        counters.active.fetch_sub(1, Ordering::Relaxed);
        counters.closed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_open() {
        let registry = Registry::new();
        let a = registry.register(Transport::Http);
        let b = registry.register(Transport::WebSocket);
        let c = registry.register(Transport::WebSocket);
        let snap = registry.snapshot();
        assert_eq!(
            snap.get(Transport::Http),
            TransportStats {
                active: 1,
                opened: 1,
                ..TransportStats::default()
            }
        );
        assert_eq!(snap.get(Transport::WebSocket).active, 2);
        assert_eq!(snap.active_sessions(), 2);
        drop(b);
        let snap = registry.snapshot();
        assert_eq!(
            snap.get(Transport::WebSocket),
            TransportStats {
                active: 1,
                opened: 2,
                closed: 1,
                ..TransportStats::default()
            }
        );
        registry.count(Transport::WebSocket, Event::MessageIn);
        registry.count(Transport::WebSocket, Event::MessageOut);
        registry.count(Transport::WebSocket, Event::MessageOut);
        registry.count(Transport::StreamableHttp, Event::Expired);
        let snap = registry.snapshot();
        assert_eq!(snap.get(Transport::WebSocket).messages_in, 1);
        assert_eq!(snap.get(Transport::WebSocket).messages_out, 2);
        assert_eq!(snap.get(Transport::StreamableHttp).expired, 1);
        assert_eq!(snap.get(Transport::Http).expired, 0);
        assert_eq!(registry.snapshot().get(Transport::WebSocket).active, 1);
        drop((a, c));
        assert_eq!(registry.snapshot().active_sessions(), 0);
        assert_eq!(registry.snapshot().get(Transport::Http).closed, 1);
    }
}
