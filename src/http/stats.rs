//! What every connection of a server shares: its settings, its routes, and
//! its counters.

use std::sync::atomic::{AtomicU64, Ordering};

use super::config::Config;
use super::router::Router;

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// What the engine reads of `config` on every request, worked out once.
    pub(crate) prepared: crate::http::config::Prepared,
    pub(crate) router: Router,
    pub(crate) stats: Stats,
    /// Bytes of large request bodies (and WebSocket messages) all
    /// connections hold at once (see
    /// [`crate::http::config::Config::max_large_bodies_bytes`]).
    pub(crate) bodies: std::sync::Arc<crate::budget::ByteBudget>,
    /// Answers waiting for clients that do not take them (see
    /// [`crate::http::config::Config::max_backlog_bytes`]).
    pub(crate) backlog: std::sync::Arc<crate::budget::Backlog>,
    /// The budget over all the server's pools (see
    /// [`crate::http::config::Config::memory_budget_bytes`]).
    pub(crate) memory: std::sync::Arc<crate::budget::Memory>,
    /// The connections each client holds.
    pub(crate) clients: super::clients::ClientConns,
}

/// Connection counters, read without locking.
///
/// Every counter is updated with `Relaxed` ordering: each is a standalone
/// tally that orders nothing else.
pub(crate) struct Stats {
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// Bytes read from and written to clients.
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// Responses by status code, 100 to 599 (a slot each: one atomic add per
    /// response, no lock, no lookup).
    responses: [AtomicU64; STATUS_SLOTS],
}

/// Status codes 100..=599.
const STATUS_SLOTS: usize = 500;

impl Default for Stats {
    fn default() -> Self {
        Stats {
            accepted: AtomicU64::new(0),
            active: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Stats {
    /// Counts one response of `status` (the server only sends 100..=599).
    pub(crate) fn response(&self, status: u16) {
        let slot = usize::from(status.clamp(100, 599) - 100);
        self.responses[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The status codes sent so far and how often, in code order.
    pub fn responses_by_code(&self) -> Vec<(u16, u64)> {
        (100u16..)
            .zip(&self.responses)
            .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// A copy of the connection counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted and served since start.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections refused with 503 because the limit was reached.
    pub rejected: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
}

impl Stats {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            responses: std::array::from_fn(|class| {
                let codes = &self.responses[class * 100..class * 100 + 100];
                codes.iter().map(|n| n.load(Ordering::Relaxed)).sum()
            }),
        }
    }
}
