//! Server configuration: every limit and timeout, with its default.
//!
//! The library never reads the environment or files by itself; a host fills
//! in a [`Config`] and passes it to [`crate::Server::bind`] (or the service).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::http::head::HeadLimits;

/// Address the server binds to. Default: 127.0.0.1 (loopback only).
pub(crate) const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Port the server binds to. Default: 8000.
pub(crate) const DEFAULT_PORT: u16 = 8000;
/// Most bytes of request body (after chunked decoding); past it: 413. Default: 4 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How many largest bodies all connections may hold at once: bodies past
/// [`LARGE_BODY_BYTES`] count against 16 times `max_body_bytes` together.
const BODIES_AT_ONCE: usize = 16;

/// A request body past this many bytes counts against the bound on what
/// all connections hold at once. Smaller ones (1,024 connections at most,
/// by default) do not: 64 KiB.
pub(crate) const LARGE_BODY_BYTES: usize = 64 * 1024;

/// The bound on bytes of large request bodies all connections hold at
/// once: [`Config::max_large_bodies_bytes`], or 16 times `max_body_bytes`.
pub(crate) fn bodies_budget(config: &Config) -> usize {
    config
        .max_large_bodies_bytes
        .unwrap_or_else(|| config.max_body_bytes.saturating_mul(BODIES_AT_ONCE))
}
/// Most connections served at once; past it: 503 and close. Default: 1024.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// [`Config::max_backlog_bytes`] by default: 64 MiB.
pub(crate) const DEFAULT_MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// [`Config::memory_budget_bytes`] by default: 96 MiB.
pub(crate) const DEFAULT_MEMORY_BUDGET_BYTES: usize = 96 * 1024 * 1024;
/// Deadline for a whole request head, from its first byte; past it: 408 and close. Default: 10 s.
///
/// It is one deadline, not a per-read timeout, so a client that trickles a
/// byte at a time (slowloris) is cut off all the same.
pub(crate) const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a request body; past it: 408 and close. Default: 30 s.
pub(crate) const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an idle keep-alive connection is kept open between requests. Default: 75 s.
pub(crate) const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Longest a write to a client may make no progress before the connection is closed. Default: 30 s.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a graceful shutdown waits for requests in flight before closing them. Default: 30 s.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a [`crate::Server`] needs to know: a plain struct, like every
/// settings type of the crate; fill in what differs from the defaults.
///
/// ```
/// use std::time::Duration;
/// use snowflake_mcp::Config;
///
/// let config = Config {
///     port: 0,
///     max_body_bytes: 1 << 20,
///     head_timeout: Duration::from_secs(5),
///     ..Config::default()
/// };
/// assert_eq!(config.addr().ip().to_string(), "127.0.0.1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to bind. Default: 127.0.0.1 (loopback only).
    pub host: IpAddr,
    /// Port to bind (0 picks a free one). Default: 8000.
    pub port: u16,
    /// Most bytes of a request head; past it: 431. Default: 16 KiB (at least 64).
    pub max_head_bytes: usize,
    /// Most header fields of a request; past it: 431. Default: 100 (at most 256).
    pub max_headers: usize,
    /// Longest request-target; past it: 414. Default: 8 KiB.
    pub max_target_bytes: usize,
    /// Most bytes of request body (after chunked decoding); past it: 413. Default: 4 MiB.
    ///
    /// All connections together hold at most
    /// [`Config::max_large_bodies_bytes`] in bodies past 64 KiB (by
    /// default 16 times this: 64 MiB, however many clients send at once).
    pub max_body_bytes: usize,
    /// Most bytes all connections together hold at once in request bodies
    /// past 64 KiB: a large body that would pass it is refused with 503
    /// ("server busy: too many large request bodies at once; retry later")
    /// before it is read, and the connection closes; its room is given
    /// back once its request is answered. Smaller bodies do not count
    /// (the connection limit bounds them). At least `max_body_bytes`, so
    /// one largest body always fits (a smaller value is
    /// [`crate::Error::Config`]). Default: none, which is 16 times
    /// `max_body_bytes` (64 MiB).
    pub max_large_bodies_bytes: Option<usize>,
    /// Most bytes of answers all connections together hold for clients
    /// that do not take them: an answer of 64 KiB or more counts while its
    /// write waits on the client's full socket. Upgraded connections count
    /// against the same bound: a WebSocket whose client's socket is full
    /// counts the frames it is writing and the messages queued behind
    /// them. So HTTP and WebSocket clients that stop reading share this one
    /// budget, not one each. Past it, the connections
    /// whose clients have taken nothing for the longest are closed (their
    /// answers dropped) until it fits, so clients that stop reading cannot
    /// fill memory however many connections they open, and clients that
    /// read go last. One answer larger than this alone is never cut.
    /// Default: 64 MiB.
    pub max_backlog_bytes: usize,
    /// Most bytes the server holds for its clients at once in all its
    /// bounded pools together: large request bodies and WebSocket messages
    /// being read ([`Config::max_large_bodies_bytes`]), answers waiting for
    /// clients that do not read ([`Config::max_backlog_bytes`]), and, in a
    /// [`crate::Service`], answers kept for resumption, task results, task
    /// states waiting for Redis and the answers 2025-03-26 batches gather.
    /// Each pool keeps its own bound; this one bounds their sum. A pool
    /// that grows past it first makes the pools less worth keeping give up
    /// bytes (answers no client reads first, then answers kept for
    /// resumption, then task results), then applies its own rule (a large
    /// body refused with 503, a WebSocket message closed with 1013, the
    /// oldest kept answer or result dropped). `/status` shows what is held
    /// (`memory`), `/metrics` as `snowflake_mcp_memory_bytes`. Default:
    /// 96 MiB: what the allocator keeps besides (glibc's, by default, held
    /// up to about twice the live bytes in the attack runs of the README)
    /// then stays within a process peak of 256 MiB. At least `max_body_bytes` (a
    /// smaller value is [`crate::Error::Config`]); a WebSocket message
    /// limit above it leaves messages that large no room.
    pub memory_budget_bytes: usize,
    /// Most connections served at once; past it: 503 and close. Default: 1024.
    pub max_connections: usize,
    /// Most connections one client holds at once (a client is an IPv4
    /// address, or an IPv6 /64; with the PROXY protocol, the address the
    /// balancer names); past it: 503 and close, so one client cannot take
    /// every connection. Peers in [`Config::trusted_proxies`] are not
    /// counted (each carries many clients); connections over a Unix
    /// socket all count as one client (127.0.0.1), so a proxy in front of
    /// one should raise this. Default: none, which is a quarter of
    /// `max_connections` (256).
    pub max_connections_per_client: Option<usize>,
    /// Deadline for a whole request head, from its first byte; past it: 408
    /// and close. Default: 10 s. One deadline, not a per-read timeout, so a
    /// client that trickles a byte at a time (slowloris) is cut off all the same.
    pub head_timeout: Duration,
    /// Longest wait for the next bytes of a request body; past it: 408 and close. Default: 30 s.
    pub body_idle_timeout: Duration,
    /// Longest an idle keep-alive connection is kept open between requests. Default: 75 s.
    pub keep_alive_timeout: Duration,
    /// Longest a write to a client may make no progress before the
    /// connection is closed. Default: 30 s.
    pub write_timeout: Duration,
    /// Longest a graceful shutdown waits for requests in flight before
    /// closing them. Default: 30 s.
    pub shutdown_timeout: Duration,
    /// Headers added to every response (the HTTP layer's own error answers
    /// included), as (name, value). Checked like
    /// [`crate::http::Response::try_header`] when the server is made: a bad
    /// one is [`crate::Error::Config`]. Default: none.
    pub response_headers: Vec<(String, String)>,
    /// Adds `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
    /// `Referrer-Policy: no-referrer`, a `Content-Security-Policy` that
    /// allows nothing and `Cache-Control: no-store` to every response.
    /// Default: false.
    pub security_headers: bool,
    /// Sends `Strict-Transport-Security` with this `max-age` (for
    /// deployments behind a TLS terminator). Default: none.
    pub hsts_max_age: Option<Duration>,
    /// Which browser origins may call the server: their requests get
    /// `Access-Control-Allow-Origin` (with `Vary: Origin`, and
    /// `Access-Control-Expose-Headers` when some are set), and their
    /// preflight `OPTIONS` gets 204 with the allowed methods and headers and
    /// a `Max-Age`. Other origins get no CORS headers. A value that cannot go
    /// in a header is refused when the server is made. Default: none.
    pub cors: Option<Cors>,
    /// Proxies (load balancers) whose `X-Forwarded-For` (or, without it,
    /// `Forwarded`) is believed: a request from one of these networks is
    /// taken to come from the rightmost address in that header that is not
    /// itself a trusted proxy, and [`crate::http::Request::remote_addr`]
    /// says so (rate limits, principals, logs, `/status`). From anyone else
    /// the headers are ignored. Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Cross-origin resource sharing: which browser origins may call the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed (exact `scheme://host[:port]`).
    pub origins: Vec<String>,
    /// How long browsers may cache a preflight answer, in seconds. Default: 600.
    pub max_age_secs: u32,
    /// Request headers a preflight may ask to send. Default:
    /// `"Content-Type, Authorization"`; the MCP service adds its own.
    pub allow_headers: String,
    /// Response headers browsers may show to the page (none by default).
    pub expose_headers: String,
}

/// Headers a preflight may ask to send, by default.
pub(crate) const CORS_ALLOW_HEADERS: &str = "Content-Type, Authorization";
/// Methods a preflight may ask for.
pub(crate) const CORS_ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// The security headers [`Config::security_headers`] adds to every response.
pub(crate) const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("Cache-Control", "no-store"),
];

impl Default for Config {
    fn default() -> Self {
        Config {
            host: DEFAULT_HOST,
            port: DEFAULT_PORT,
            max_head_bytes: HeadLimits::default().max_head_bytes,
            max_headers: HeadLimits::default().max_headers,
            max_target_bytes: HeadLimits::default().max_target_bytes,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_large_bodies_bytes: None,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: None,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            response_headers: Vec::new(),
            security_headers: false,
            hsts_max_age: None,
            cors: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origins: Vec::new(),
            max_age_secs: 600,
            allow_headers: CORS_ALLOW_HEADERS.to_owned(),
            expose_headers: String::new(),
        }
    }
}

impl Cors {
    /// These origins, with the default headers and `Max-Age`.
    pub fn origins(origins: Vec<String>) -> Cors {
        Cors {
            origins,
            ..Cors::default()
        }
    }
}

impl Config {
    /// The address to bind: [`Config::host`] and [`Config::port`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// What the engine reads on every request, worked out once: the head
    /// limits (clamped to what the parser allows), the response header
    /// lines encoded, CORS shared. A bad response header is refused.
    pub(crate) fn prepare(&self) -> Result<Prepared, crate::Error> {
        if let Some(bound) = self.max_large_bodies_bytes
            && bound < self.max_body_bytes
        {
            return Err(crate::Error::Config {
                setting: "max_large_bodies_bytes",
                why: format!(
                    "{bound} is less than max_body_bytes ({}): no largest body would fit",
                    self.max_body_bytes
                ),
            });
        }
        if self.memory_budget_bytes < self.max_body_bytes {
            return Err(crate::Error::Config {
                setting: "memory_budget_bytes",
                why: format!(
                    "{} is less than max_body_bytes ({}): no largest body would fit",
                    self.memory_budget_bytes, self.max_body_bytes
                ),
            });
        }
        let mut headers: Vec<(&str, String)> = Vec::new();
        if self.security_headers {
            headers.extend(SECURITY_HEADERS.iter().map(|(n, v)| (*n, (*v).to_owned())));
        }
        if let Some(age) = self.hsts_max_age {
            headers.push((
                "Strict-Transport-Security",
                format!("max-age={}", age.as_secs()),
            ));
        }
        headers.extend(
            self.response_headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone())),
        );
        let mut lines = Vec::new();
        for (name, value) in headers {
            crate::http::check_header(name, value.as_bytes()).map_err(|e| {
                crate::Error::Config {
                    setting: "response_headers",
                    why: format!("{name}: {e}"),
                }
            })?;
            lines.extend_from_slice(name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        if let Some(cors) = &self.cors {
            // Each goes out in a header: no line break may hide in one.
            let fields = cors
                .origins
                .iter()
                .map(|o| ("Access-Control-Allow-Origin", o.as_str()))
                .chain([
                    ("Access-Control-Allow-Headers", cors.allow_headers.as_str()),
                    (
                        "Access-Control-Expose-Headers",
                        cors.expose_headers.as_str(),
                    ),
                ]);
            for (name, value) in fields {
                crate::http::check_header(name, value.as_bytes()).map_err(|e| {
                    crate::Error::Config {
                        setting: "cors",
                        why: format!("{name}: {e}"),
                    }
                })?;
            }
        }
        Ok(Prepared {
            head: HeadLimits {
                max_head_bytes: self.max_head_bytes.max(64),
                max_headers: self.max_headers.min(crate::http::head::MAX_HEADERS_CAP),
                max_target_bytes: self.max_target_bytes.max(1),
            },
            max_connections: self.max_connections.max(1),
            max_connections_per_client: self
                .max_connections_per_client
                .unwrap_or(self.max_connections / 4)
                .max(1),
            response_headers: lines.into(),
            cors: self
                .cors
                .clone()
                .filter(|c| !c.origins.is_empty())
                .map(std::sync::Arc::new),
        })
    }
}

/// A [`Config`] as the engine reads it on every request.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) head: HeadLimits,
    pub(crate) max_connections: usize,
    /// [`Config::max_connections_per_client`], worked out.
    pub(crate) max_connections_per_client: usize,
    /// Header lines added to every response, encoded (`name: value\r\n`).
    pub(crate) response_headers: bytes::Bytes,
    /// Cross-origin settings; `None`: no CORS headers at all.
    pub(crate) cors: Option<std::sync::Arc<Cors>>,
}
