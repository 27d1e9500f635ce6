//! Server configuration: every limit and timeout, with its default.
//!
//! The library never reads the environment or files by itself; a host builds
//! a [`Config`] and passes it to [`crate::Server::bind`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::http::head::HeadLimits;

/// Address the server binds to. Default: 127.0.0.1 (loopback only).
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Port the server binds to. Default: 8000.
pub const DEFAULT_PORT: u16 = 8000;
/// Most bytes of request body (after chunked decoding); past it: 413. Default: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most connections served at once; past it: 503 and close. Default: 1024.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Deadline for a whole request head, from its first byte; past it: 408 and close. Default: 10 s.
///
/// It is one deadline, not a per-read timeout, so a client that trickles a
/// byte at a time (slowloris) is cut off all the same.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a request body; past it: 408 and close. Default: 30 s.
pub(crate) const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an idle keep-alive connection is kept open between requests. Default: 75 s.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Longest a write to a client may make no progress before the connection is closed. Default: 30 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a graceful shutdown waits for requests in flight before closing them. Default: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a [`crate::Server`] needs to know, built with setters.
///
/// ```
/// use std::time::Duration;
/// use snowflake_mcp::Config;
///
/// let config = Config::new()
///     .port(0)
///     .max_body_bytes(1 << 20)
///     .head_timeout(Duration::from_secs(5));
/// assert_eq!(config, Config::new().port(0).max_body_bytes(1 << 20).head_timeout(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) addr: SocketAddr,
    pub(crate) head: HeadLimits,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) head_timeout: Duration,
    pub(crate) body_idle_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    /// Header lines added to every response, encoded (`name: value\r\n`).
    pub(crate) response_headers: bytes::Bytes,
    /// Cross-origin settings; `None`: no CORS headers at all.
    pub(crate) cors: Option<std::sync::Arc<Cors>>,
}

/// Cross-origin resource sharing: which browser origins may call the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed (exact `scheme://host[:port]`).
    pub origins: Vec<String>,
    /// How long browsers may cache a preflight answer, in seconds. Default: 600.
    pub max_age_secs: u32,
    /// Request headers a preflight may ask to send. Default:
    /// `"Content-Type, Authorization"`; the protocol on top adds its own (see
    /// [`Config::cors_headers`]).
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
            addr: SocketAddr::new(DEFAULT_HOST, DEFAULT_PORT),
            head: HeadLimits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            response_headers: bytes::Bytes::new(),
            cors: None,
        }
    }
}

impl Config {
    /// The defaults: 127.0.0.1:8000 and every `DEFAULT_*` limit of this module.
    pub fn new() -> Self {
        Config::default()
    }

    /// Sets the address to bind. Default: 127.0.0.1:8000.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Sets the IP address to bind, keeping the port. Default: [`DEFAULT_HOST`].
    pub fn host(mut self, host: IpAddr) -> Self {
        self.addr.set_ip(host);
        self
    }

    /// Sets the port to bind (0 picks a free one), keeping the host. Default: [`DEFAULT_PORT`].
    pub fn port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Sets the request head limit. Default: 16 KiB.
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.head.max_head_bytes = bytes.max(64);
        self
    }

    /// Sets the header count limit, at most 256 (`http::head::MAX_HEADERS_CAP`).
    /// Default: 100.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.head.max_headers = count.min(crate::http::head::MAX_HEADERS_CAP);
        self
    }

    /// Sets the request-target length limit. Default: 8 KiB.
    pub fn max_target_bytes(mut self, bytes: usize) -> Self {
        self.head.max_target_bytes = bytes.max(1);
        self
    }

    /// Sets the request body limit. Default: [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the concurrent connection limit. Default: [`DEFAULT_MAX_CONNECTIONS`].
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count.max(1);
        self
    }

    /// Sets the request head deadline. Default: [`DEFAULT_HEAD_TIMEOUT`].
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// Sets the body read idle timeout. Default: 30 s.
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// Sets the keep-alive idle timeout. Default: [`DEFAULT_KEEP_ALIVE_TIMEOUT`].
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Sets the write progress timeout. Default: [`DEFAULT_WRITE_TIMEOUT`].
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets how long a graceful shutdown waits. Default: [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Adds a header to every response (error answers of the HTTP layer
    /// included). Names and values are checked like [`crate::http::Response::try_header`].
    pub fn response_header(
        mut self,
        name: &str,
        value: &str,
    ) -> Result<Self, crate::http::InvalidHeader> {
        crate::http::check_header(name, value.as_bytes())?;
        let mut lines = self.response_headers.to_vec();
        lines.extend_from_slice(name.as_bytes());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value.as_bytes());
        lines.extend_from_slice(b"\r\n");
        self.response_headers = lines.into();
        Ok(self)
    }

    /// Adds `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
    /// `Referrer-Policy: no-referrer`, a `Content-Security-Policy` that
    /// allows nothing and `Cache-Control: no-store` to every response, and
    /// `Strict-Transport-Security` when `hsts_max_age` is given (for
    /// deployments behind a TLS terminator). Default: none.
    pub fn security_headers(self, hsts_max_age: Option<Duration>) -> Self {
        let mut config = self;
        for (name, value) in SECURITY_HEADERS {
            config = match config.response_header(name, value) {
                Ok(c) => c,
                Err(_) => unreachable!("the security headers are valid"),
            };
        }
        if let Some(age) = hsts_max_age {
            let value = format!("max-age={}", age.as_secs());
            config = match config.response_header("Strict-Transport-Security", &value) {
                Ok(c) => c,
                Err(_) => unreachable!("a number is a valid header value"),
            };
        }
        config
    }

    /// Allows these browser origins: their requests get
    /// `Access-Control-Allow-Origin` (with `Vary: Origin`, and
    /// `Access-Control-Expose-Headers` when some are set), and their
    /// preflight `OPTIONS` gets 204 with the allowed methods and headers and
    /// a `Max-Age`. Other origins get no CORS headers. Default: no origins.
    pub fn cors(mut self, origins: Vec<String>) -> Self {
        let (allow_headers, expose_headers) = match &self.cors {
            Some(c) => (c.allow_headers.clone(), c.expose_headers.clone()),
            None => (CORS_ALLOW_HEADERS.to_owned(), String::new()),
        };
        self.cors = (!origins.is_empty()).then(|| {
            std::sync::Arc::new(Cors {
                origins,
                max_age_secs: 600,
                allow_headers,
                expose_headers,
            })
        });
        self
    }

    /// Sets the request headers a CORS preflight may ask for (beyond
    /// `"Content-Type, Authorization"`) and the response headers browsers may show:
    /// the protocol served decides (MCP's transports name theirs). No effect
    /// without allowed origins ([`Config::cors`]).
    pub fn cors_headers(mut self, allow: &str, expose: &str) -> Self {
        if let Some(c) = &self.cors {
            let mut cors = Cors::clone(c);
            cors.allow_headers = format!("{CORS_ALLOW_HEADERS}, {allow}");
            cors.expose_headers = expose.to_owned();
            self.cors = Some(std::sync::Arc::new(cors));
        }
        self
    }
}
