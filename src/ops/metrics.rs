//! `/metrics`: every counter in Prometheus text format 0.0.4, section by
//! section (connections and requests, the session pool, HTTP responses,
//! MCP methods and tools, durations).

use std::fmt::Write as _;

use crate::histogram::HistogramSnapshot;
use crate::registry::Transport;

use super::Ops;

/// One sample without labels.
fn one(v: u64) -> [(String, f64); 1] {
    [(String::new(), v as f64)]
}

/// Samples by one label.
fn by(label: &str, pairs: &[(&str, u64)]) -> Vec<(String, f64)> {
    pairs
        .iter()
        .map(|(value, n)| (format!("{{{label}=\"{value}\"}}"), *n as f64))
        .collect()
}

impl Ops {
    /// The `/metrics` body, Prometheus text format 0.0.4.
    pub fn metrics(&self) -> String {
        let mut out = Exposition(String::with_capacity(4096));
        self.connection_metrics(&mut out);
        self.pool_metrics(&mut out);
        self.http_metrics(&mut out);
        self.mcp_metrics(&mut out);
        self.duration_metrics(&mut out);
        out.0
    }

    /// Connections, sessions and warehouse calls.
    fn connection_metrics(&self, out: &mut Exposition) {
        let snap = self.registry.snapshot();
        let http = snap.get(Transport::Http);
        let ws = snap.get(Transport::WebSocket);
        let sessions = |f: fn(crate::registry::TransportStats) -> u64| {
            let pairs: Vec<(&str, u64)> = Transport::SESSIONS
                .iter()
                .map(|&t| (t.name(), f(snap.get(t))))
                .collect();
            by("transport", &pairs)
        };
        out.family(
            "snowflake_mcp_connections_total",
            "counter",
            "HTTP connections accepted since start.",
            one(http.opened),
        );
        out.family(
            "snowflake_mcp_connections_active",
            "gauge",
            "HTTP connections open now.",
            one(http.active),
        );
        out.family(
            "snowflake_mcp_websockets_active",
            "gauge",
            "WebSocket sessions open now.",
            one(ws.active),
        );
        out.family(
            "snowflake_mcp_sessions_active",
            "gauge",
            "MCP sessions open now, by transport.",
            sessions(|s| s.active),
        );
        out.family(
            "snowflake_mcp_sessions_opened_total",
            "counter",
            "MCP sessions opened since start, by transport.",
            sessions(|s| s.opened),
        );
        out.family(
            "snowflake_mcp_sessions_closed_total",
            "counter",
            "MCP sessions ended (closed or expired) since start, by transport.",
            sessions(|s| s.closed),
        );
        out.family(
            "snowflake_mcp_sessions_expired_total",
            "counter",
            "MCP sessions ended because they went unused too long, by transport.",
            sessions(|s| s.expired),
        );
        out.family(
            "snowflake_mcp_websocket_messages_total",
            "counter",
            "WebSocket MCP messages received and sent.",
            by(
                "direction",
                &[("in", ws.messages_in), ("out", ws.messages_out)],
            ),
        );
        out.family(
            "snowflake_mcp_websockets_closed_not_reading_total",
            "counter",
            "WebSockets the server closed because the client stopped reading (answers past the byte bound, or a send blocked past the send timeout).",
            one(ws.closed_not_reading),
        );
        out.family(
            "snowflake_mcp_websocket_dozes_total",
            "counter",
            "Times a WebSocket whose client was silent dropped its frame reader's state and read buffer until its next message.",
            one(ws.dozes),
        );
        self.request_metrics(out);
    }

    /// Warehouse calls: running, waiting, and by outcome.
    fn request_metrics(&self, out: &mut Exposition) {
        let (running, queued) = self.requests.load();
        let rs = self.requests.stats();
        out.family(
            "snowflake_mcp_requests_active",
            "gauge",
            "Warehouse calls running now.",
            one(running as u64),
        );
        out.family(
            "snowflake_mcp_requests_queued",
            "gauge",
            "Warehouse calls waiting for a slot.",
            one(queued as u64),
        );
        out.family(
            "snowflake_mcp_warehouse_calls_total",
            "counter",
            "Warehouse calls by outcome: started, refused busy, timed out, cancelled.",
            by(
                "outcome",
                &[
                    ("started", rs.started),
                    ("busy", rs.busy),
                    ("timeout", rs.timeouts),
                    ("cancelled", rs.cancelled),
                ],
            ),
        );
    }

    /// The warehouse session pool.
    fn pool_metrics(&self, out: &mut Exposition) {
        let pool = self.pool_stats();
        out.family(
            "snowflake_mcp_pool_sessions",
            "gauge",
            "Warehouse sessions by state.",
            by("state", &[("active", pool.active), ("idle", pool.idle)]),
        );
        out.family(
            "snowflake_mcp_pool_waiting",
            "gauge",
            "Callers waiting for a warehouse session.",
            one(pool.waiting),
        );
        out.family(
            "snowflake_mcp_pool_events_total",
            "counter",
            "Warehouse session events since start.",
            by(
                "event",
                &[
                    ("created", pool.created),
                    ("failed", pool.failed),
                    ("broken", pool.broken),
                    ("acquire_timeout", pool.acquire_timeouts),
                    ("acquired", pool.acquires),
                ],
            ),
        );
        out.family(
            "snowflake_mcp_pool_acquire_wait_seconds_total",
            "counter",
            "Total time callers waited for a warehouse session.",
            [(String::new(), pool.wait_time.as_secs_f64())],
        );
    }

    /// HTTP responses and bytes.
    fn http_metrics(&self, out: &mut Exposition) {
        if let Some(stats) = self.http.get() {
            let h = stats.snapshot();
            out.family(
                "snowflake_mcp_http_responses_total",
                "counter",
                "HTTP responses sent, by status code (codes sent at least once).",
                stats
                    .responses_by_code()
                    .into_iter()
                    .map(|(code, n)| (format!("{{code=\"{code}\"}}"), n as f64)),
            );
            out.family(
                "snowflake_mcp_connections_rejected_total",
                "counter",
                "Connections refused with 503 at the connection limit.",
                one(h.rejected),
            );
            out.family(
                "snowflake_mcp_bytes_total",
                "counter",
                "Bytes read from and written to HTTP clients.",
                by("direction", &[("in", h.bytes_in), ("out", h.bytes_out)]),
            );
            out.family(
                "snowflake_mcp_backlog_bytes",
                "gauge",
                "Bytes of answers waiting behind the full sockets of clients that do not read \
                 (HTTP and WebSocket).",
                one(stats.backlog_bytes() as u64),
            );
            out.family(
                "snowflake_mcp_backlog_cuts_total",
                "counter",
                "Connections closed because answers waiting for clients that do not read passed \
                 the backlog bound (theirs had taken nothing for the longest).",
                one(stats.backlog_cuts()),
            );
            out.family(
                "snowflake_mcp_memory_bytes",
                "gauge",
                "Bytes held for clients by all bounded pools together (large bodies and messages, \
                 answers waiting for clients that do not read, answers kept for resumption, task \
                 results).",
                one(stats.memory_bytes() as u64),
            );
            out.family(
                "snowflake_mcp_memory_budget_bytes",
                "gauge",
                "The bound on what all bounded pools hold together.",
                one(stats.memory_budget_bytes() as u64),
            );
        }
    }

    /// MCP requests by method and outcome, tool calls.
    fn mcp_metrics(&self, out: &mut Exposition) {
        if let Some(servers) = self.mcp.get() {
            let mut requests: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
            let mut tools: std::collections::BTreeMap<String, [u64; 4]> = Default::default();
            let mut durations = HistogramSnapshot::default();
            for server in servers {
                let m = server.metrics();
                for (method, outcome, n) in m.requests() {
                    *requests.entry((method, outcome)).or_default() += n;
                }
                for (name, counts) in server.tool_calls() {
                    let slot = tools.entry(name).or_default();
                    for (sum, n) in slot.iter_mut().zip(counts) {
                        *sum += n;
                    }
                }
                durations.merge(&m.request_duration.read());
            }
            out.family(
                "snowflake_mcp_mcp_requests_total",
                "counter",
                "MCP requests by method and outcome.",
                requests
                    .iter()
                    .map(|((m, o), n)| (format!("{{method=\"{m}\",outcome=\"{o}\"}}"), *n as f64)),
            );
            out.family(
                "snowflake_mcp_tool_calls_total",
                "counter",
                "MCP tool calls by tool and outcome (tool_error: a result with isError).",
                tools.iter().flat_map(|(name, counts)| {
                    let name = label_value(name);
                    crate::mcp::metrics::ToolOutcome::ALL
                        .iter()
                        .zip(counts)
                        .map(move |(outcome, n)| {
                            (
                                format!("{{tool=\"{name}\",outcome=\"{}\"}}", outcome.name()),
                                *n as f64,
                            )
                        })
                }),
            );
            out.histogram(
                "snowflake_mcp_request_duration_seconds",
                "Time from an MCP request's arrival to its answer.",
                &durations,
            );
        }
    }

    /// Durations, and uptime.
    fn duration_metrics(&self, out: &mut Exposition) {
        let pool = self.pool_stats();
        out.histogram(
            "snowflake_mcp_statement_duration_seconds",
            "How long warehouse calls ran (after any wait for a slot).",
            &self.requests.statement_duration.read(),
        );
        out.histogram(
            "snowflake_mcp_queue_wait_seconds",
            "How long warehouse calls that found no free slot waited for one.",
            &self.requests.queue_wait.read(),
        );
        out.histogram(
            "snowflake_mcp_pool_acquire_wait_seconds",
            "Waits of callers that found no warehouse session free.",
            &pool.waits,
        );
        out.family(
            "snowflake_mcp_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            [(String::new(), self.started.elapsed().as_secs_f64())],
        );
    }
}

/// Prometheus text being written.
struct Exposition(String);

impl Exposition {
    /// One family: its help and type lines, then `name{labels} value` lines.
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, f64)>,
    ) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }

    /// A histogram family: cumulative buckets, `+Inf`, sum and count.
    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (le, n) in crate::histogram::DURATION_BUCKETS.iter().zip(h.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum_seconds());
        let _ = writeln!(out, "{name}_count {}", h.count);
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 4);
    for c in raw.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}
