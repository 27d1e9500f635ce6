//! MCP counters: requests by method and outcome, and their durations.
//!
//! Every slot exists from the start (known methods, then `other`), so
//! recording is an atomic add into a fixed array: no lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The methods counted by name; anything else counts as `other`.
pub const METHODS: [&str; 17] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "other",
];

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A result was sent.
    Ok,
    /// A JSON-RPC error was sent.
    Error,
    /// The client cancelled it (no answer).
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Cancelled];
}

pub use crate::histogram::Histogram;

/// Counters of one MCP server, shared by all its sessions.
#[derive(Debug)]
pub struct McpMetrics {
    requests: [[AtomicU64; 3]; METHODS.len()],
    /// Time from a request's arrival to its answer.
    pub request_duration: Histogram,
}

impl Default for McpMetrics {
    fn default() -> Self {
        McpMetrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            request_duration: Histogram::default(),
        }
    }
}

impl McpMetrics {
    fn slot(method: &str) -> usize {
        METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1)
    }

    fn count(&self, method: &str, outcome: Outcome) {
        // The slots follow `Outcome::ALL`, which is the declaration order.
        self.requests[Self::slot(method)][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request of `method` that ended as `outcome` after `took`.
    pub fn record(&self, method: &str, outcome: Outcome, took: Duration) {
        self.count(method, outcome);
        self.request_duration.record(took);
    }

    /// Counts a request answered at once, during dispatch (no clock is read:
    /// it goes in the first duration bucket with a zero duration).
    pub fn record_immediate(&self, method: &str, outcome: Outcome) {
        self.count(method, outcome);
        self.request_duration.record_immediate();
    }

    /// Every (method, outcome, count), for exposition.
    pub fn requests(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (m, row) in METHODS.iter().zip(&self.requests) {
            for (o, n) in Outcome::ALL.iter().zip(row) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.push((*m, o.name(), n));
                }
            }
        }
        out
    }
}

/// How a tool call ended, as `snowflake_mcp_tool_calls_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolOutcome {
    /// A result that is not an error.
    Ok,
    /// A result with `isError: true` (the tool reported a failure).
    ToolError,
    /// A JSON-RPC error (bad arguments, refused, stopped at shutdown).
    Error,
    /// Cancelled by the client (no answer).
    Cancelled,
}

impl ToolOutcome {
    /// Every outcome, in slot order.
    pub const ALL: [ToolOutcome; 4] = [
        ToolOutcome::Ok,
        ToolOutcome::ToolError,
        ToolOutcome::Error,
        ToolOutcome::Cancelled,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::ToolError => "tool_error",
            ToolOutcome::Error => "error",
            ToolOutcome::Cancelled => "cancelled",
        }
    }
}

/// One tool's calls by outcome: four atomics, added to without a lock.
#[derive(Debug, Default)]
pub struct ToolCalls {
    counts: [AtomicU64; 4],
}

impl ToolCalls {
    /// Counts one call.
    pub fn record(&self, outcome: ToolOutcome) {
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, in [`ToolOutcome::ALL`] order.
    pub fn counts(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }
}
