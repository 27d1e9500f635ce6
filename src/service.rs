//! The composition root: from an MCP server (the host's tools, and
//! optionally the warehouse tools) to routes to mount or a running server.
//!
//! [`Service`] owns the parts that must be one per process: the
//! `Registry` (connections, sessions, WebSockets), the
//! `RequestManager` (warehouse call limits), the one [`McpServer`] every
//! transport serves (so `/metrics` counts each call once and the shutdown
//! deadline cancels calls once), and the admission settings every endpoint
//! applies alike. Nothing is handed around by hand.
//!
//! ```no_run
//! use serde::Deserialize;
//! use serde_json::json;
//! use snowflake_mcp::mcp::{Context, McpServer, Tool, ToolOutput};
//! use snowflake_mcp::{Config, Service};
//!
//! #[derive(Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! # async fn run() -> Result<(), snowflake_mcp::Error> {
//! let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
//! let greet = Tool::typed("greet", "Greets.", schema, |_: Context, a: Greet| async move {
//!     ToolOutput::text(format!("Hello, {}!", a.name))
//! });
//! Service::new(McpServer::builder("host", "1.0").tool(greet))
//!     .streamable_http("/mcp")
//!     .websocket("/ws")
//!     .ops()
//!     .config(Config { port: 8000, ..Config::default() })
//!     .serve(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::guard::Admission;
use crate::guard::auth::Auth;
use crate::guard::rate::RateLimiter;
use crate::http::Router;
use crate::http::config::{Config, Cors};
use crate::mcp::{McpServer, McpServerBuilder};
use crate::ops::Ops;
use crate::registry::Registry;
use crate::requests::{RequestManager, RequestsConfig};
use crate::server::{Listener, Server};
use crate::tools::{self, ToolsConfig};
use crate::transport::streamable_http::{HttpMcpConfig, StreamableHttp};
use crate::transport::websocket::{WebSocketMcp, WsConfig};
use crate::warehouse::Warehouse;

/// The MCP server a service serves: still to build (the warehouse tools
/// can join it), or built by the host.
enum Mcp {
    Builder(McpServerBuilder),
    Built(McpServer),
}

/// One builder for the whole service. See the [module docs](self).
pub struct Service {
    mcp: Mcp,
    version: String,
    warehouse: Option<(Arc<dyn Warehouse>, ToolsConfig)>,
    requests: RequestsConfig,
    http: Option<(String, HttpMcpConfig)>,
    ws: Option<(String, WsConfig)>,
    ops: bool,
    db_check: Option<(Duration, Duration)>,
    admission: Admission,
    config: Config,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("http", &self.http.as_ref().map(|(p, _)| p))
            .field("ws", &self.ws.as_ref().map(|(p, _)| p))
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service over `mcp` (the host's tools, resources and prompts). No
    /// endpoint is mounted until asked for.
    pub fn new(mcp: McpServerBuilder) -> Service {
        let version = mcp.server_version().to_owned();
        Service::over(Mcp::Builder(mcp), version)
    }

    /// A service over an MCP server the host already built (and may keep a
    /// handle to, for `resource_updated` and the like). The warehouse tools
    /// cannot join a built server: with [`Service::warehouse`] the
    /// warehouse is only reported on by the operations endpoints, so
    /// register its tools first (`tools::register`) if it should serve them.
    pub fn from_server(mcp: McpServer) -> Service {
        let version = mcp.server_version().to_owned();
        Service::over(Mcp::Built(mcp), version)
    }

    fn over(mcp: Mcp, version: String) -> Service {
        Service {
            mcp,
            version,
            warehouse: None,
            requests: RequestsConfig::default(),
            http: None,
            ws: None,
            ops: false,
            db_check: None,
            admission: Admission::default(),
            config: Config::default(),
        }
    }

    /// Adds the warehouse tools over `warehouse` (and reports on it in the
    /// operations endpoints).
    pub fn warehouse(mut self, warehouse: Arc<dyn Warehouse>, tools: ToolsConfig) -> Self {
        self.warehouse = Some((warehouse, tools));
        self
    }

    /// The limits of warehouse calls (the one request manager).
    pub fn requests(mut self, requests: RequestsConfig) -> Self {
        self.requests = requests;
        self
    }

    /// Serves MCP's Streamable HTTP at `path` with the default settings.
    pub fn streamable_http(self, path: &str) -> Self {
        self.streamable_http_with(path, HttpMcpConfig::default())
    }

    /// Serves Streamable HTTP at `path` with these settings (its admission
    /// fields are replaced by the service's: see [`Service::keys`]).
    pub fn streamable_http_with(mut self, path: &str, config: HttpMcpConfig) -> Self {
        self.http = Some((path.to_owned(), config));
        self
    }

    /// Serves MCP over WebSocket at `path` with the default settings.
    pub fn websocket(self, path: &str) -> Self {
        self.websocket_with(path, WsConfig::default())
    }

    /// Serves WebSocket at `path` with these settings (admission fields
    /// replaced by the service's).
    pub fn websocket_with(mut self, path: &str, config: WsConfig) -> Self {
        self.ws = Some((path.to_owned(), config));
        self
    }

    /// Mounts `/health`, `/health/detailed`, `/status` and `/metrics`.
    pub fn ops(mut self) -> Self {
        self.ops = true;
        self
    }

    /// How long the operations endpoints' database check may take, and
    /// how long its result is reused.
    pub fn db_check(mut self, timeout: Duration, ttl: Duration) -> Self {
        self.db_check = Some((timeout, ttl));
        self
    }

    /// Bearer keys every MCP endpoint (and the operations endpoints but
    /// `/health`) requires.
    pub fn keys(mut self, keys: Auth) -> Self {
        self.admission.keys = Some(Arc::new(keys));
        self
    }

    /// OAuth 2.1 access tokens every MCP endpoint requires (MCP's
    /// authorization spec): also mounts the protected-resource metadata
    /// (RFC 9728) at [`OAuth::metadata_paths`](crate::guard::oauth::OAuth::metadata_paths).
    /// Bearer keys set with [`Service::keys`] are still taken. Load the
    /// authorization server's keys first
    /// ([`OAuth::load_keys`](crate::guard::oauth::OAuth::load_keys)) so the
    /// first request does not wait for them.
    #[cfg(feature = "oauth")]
    pub fn oauth(mut self, oauth: Arc<crate::guard::oauth::OAuth>) -> Self {
        self.admission.oauth = Some(oauth);
        self
    }

    /// A per-client-address rate limit (requests per second, burst) on
    /// every endpoint.
    pub fn rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.admission.rate_limit = Some(Arc::new(RateLimiter::new(per_second, burst)));
        self
    }

    /// Browser origins accepted besides loopback ones, on every endpoint
    /// (and in CORS answers, unless [`Service::config`] set its own).
    pub fn allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.admission.allowed_origins = origins;
        self
    }

    /// `Host` names answered (DNS-rebinding defence); empty: any.
    pub fn allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.admission.allowed_hosts = hosts;
        self
    }

    /// The HTTP server's settings (address, limits, headers, CORS).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Builds every part: the routes to mount on a router of the host's or
    /// to serve with [`Built::bind`].
    pub fn build(self) -> Built {
        let registry = Registry::new();
        let memory = crate::budget::Memory::new(self.config.memory_budget_bytes);
        let requests = RequestManager::new(self.requests);
        let warehouse = self.warehouse.as_ref().map(|(w, _)| Arc::clone(w));
        let mcp = match (self.mcp, self.warehouse) {
            (Mcp::Builder(b), Some((warehouse, tools))) => {
                tools::register(b, warehouse, tools, Arc::clone(&requests)).build()
            }
            (Mcp::Builder(b), None) => b.build(),
            (Mcp::Built(server), _) => server,
        };
        mcp.use_memory(&memory);
        let mut router = Router::new();
        let ops = self.ops.then(|| {
            let ops = match &warehouse {
                Some(w) => Ops::new(
                    self.version.clone(),
                    Arc::clone(&registry),
                    Arc::clone(&requests),
                    Arc::clone(w),
                ),
                None => Ops::without_warehouse(
                    self.version.clone(),
                    Arc::clone(&registry),
                    Arc::clone(&requests),
                ),
            };
            let ops = match self.db_check {
                Some((timeout, ttl)) => ops.db_check(timeout, ttl),
                None => ops,
            };
            let ops = Arc::new(ops.admission(self.admission.clone()));
            ops.set_mcp_servers(vec![mcp.clone()]);
            ops
        });
        if let Some(ops) = &ops {
            router = ops.routes(router);
        }
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.admission.oauth {
            let metadata: Arc<dyn crate::http::Handler> =
                Arc::new(crate::guard::oauth::MetadataEndpoint::new(oauth));
            for path in oauth.metadata_paths() {
                router = router
                    .route_shared(crate::http::Method::Get, &path, Arc::clone(&metadata))
                    .route_shared(crate::http::Method::Options, &path, Arc::clone(&metadata));
            }
        }
        let mut paths = Vec::new();
        if let Some((path, config)) = self.http {
            let http = StreamableHttp::wired(
                mcp.clone(),
                config,
                self.admission.clone(),
                Arc::clone(&registry),
                &memory,
            );
            router = http.routes(router, &path);
            paths.push(("streamable_http", "http", path));
        }
        if let Some((path, config)) = self.ws {
            let ws = WebSocketMcp::wired(
                mcp.clone(),
                config,
                self.admission.clone(),
                Arc::clone(&registry),
            );
            router = ws.routes(router, &path);
            paths.push(("websocket", "ws", path));
        }
        let mut config = self.config;
        if !self.admission.allowed_origins.is_empty() && config.cors.is_none() {
            config.cors = Some(Cors::origins(self.admission.allowed_origins));
        }
        if let Some(cors) = config.cors.as_mut().filter(|_| !paths.is_empty()) {
            // Browsers may send and read MCP's own headers.
            cors.allow_headers = format!(
                "{}, {}",
                cors.allow_headers,
                crate::transport::MCP_CORS_ALLOW_HEADERS
            );
            cors.expose_headers = crate::transport::MCP_CORS_EXPOSE_HEADERS.to_owned();
        }
        Built {
            router,
            mcp,
            registry,
            memory,
            ops,
            config,
            paths,
        }
    }

    /// Builds, binds the configured TCP address and serves until
    /// `shutdown` resolves (then shuts down gracefully).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
        self.build().bind().await?.serve(shutdown).await
    }
}

/// A built service: its parts, and the routes to mount or serve.
pub struct Built {
    /// Every route of the service (MCP endpoints, operations endpoints).
    pub router: Router,
    /// The one MCP server every transport serves.
    pub mcp: McpServer,
    registry: Arc<Registry>,
    /// The budget over all the service's pools, handed to its server.
    memory: Arc<crate::budget::Memory>,
    ops: Option<Arc<Ops>>,
    config: Config,
    paths: Vec<(&'static str, &'static str, String)>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// The message of a call cancelled by the shutdown deadline.
fn deadline_reason(deadline: Duration) -> String {
    format!(
        "server shutting down: the call was still running when the {}s shutdown deadline passed and was cancelled",
        deadline.as_secs_f64()
    )
}

impl Built {
    /// The handle that turns `/ready` to 503 while requests are still
    /// served (a replica leaving its load balancer before shutting down);
    /// `None` when the operations endpoints are not mounted.
    pub fn readiness(&self) -> Option<crate::ops::Readiness> {
        self.ops.as_ref().map(|ops| ops.readiness())
    }

    /// Binds the configured TCP address; the server is wired to the
    /// service (its registry, the deadline's cancel, the operations
    /// endpoints' counters and addresses).
    pub async fn bind(self) -> Result<Server, Error> {
        let (rest, router) = self.split();
        let server = Server::bind(rest.config.clone(), router).await?;
        let addr = server.local_addr();
        Ok(rest.wire(server, |scheme| format!("{scheme}://{addr}")))
    }

    /// Binds the configured TCP address and serves it over TLS (the `tls`
    /// feature): every route, `https://` and `wss://`. Set
    /// [`Config::hsts_max_age`] too, so browsers keep to https.
    #[cfg(feature = "tls")]
    pub async fn bind_tls(
        self,
        tls: &crate::tls::Tls,
    ) -> Result<Server<crate::tls::TlsListener<tokio::net::TcpListener>>, Error> {
        self.bind_wrapped(true, |tcp| tls.listener(tcp)).await
    }

    /// Binds the configured TCP address and serves the connections of the
    /// listener `wrap` makes of it: a PROXY protocol reader
    /// ([`crate::proxy_protocol::ProxyProtocolListener`]), TLS over that,
    /// or a host's own. `tls` says whether its URLs are `https`/`wss`.
    pub async fn bind_wrapped<L: Listener>(
        self,
        tls: bool,
        wrap: impl FnOnce(tokio::net::TcpListener) -> L,
    ) -> Result<Server<L>, Error> {
        let (rest, router) = self.split();
        let addr = rest.config.addr();
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = tcp.local_addr().map_err(Error::Io)?;
        let server = Server::from_listener(wrap(tcp), rest.config.clone(), router)?.bound_at(local);
        let secure = if tls { "s" } else { "" };
        Ok(rest.wire(server, |scheme| format!("{scheme}{secure}://{local}")))
    }

    /// Serves on a Unix socket at `path` (a new file).
    #[cfg(unix)]
    pub fn bind_unix(
        self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Server<tokio::net::UnixListener>, Error> {
        let shown = path.as_ref().display().to_string();
        let (rest, router) = self.split();
        let server = Server::bind_unix(path, rest.config.clone(), router)?;
        Ok(rest.wire(server, |_| format!("unix:{shown}:")))
    }

    /// Serves the connections of `listener` (a host's acceptor, or a
    /// channel of streams it accepted itself).
    pub fn on_listener<L: Listener>(self, listener: L) -> Result<Server<L>, Error> {
        let (rest, router) = self.split();
        let server = Server::from_listener(listener, rest.config.clone(), router)?;
        Ok(rest.wire(server, |_| String::new()))
    }

    /// Serves MCP over one byte stream pair (the process's stdin and stdout:
    /// [`crate::transport::stdio::stdin`] and `tokio::io::stdout()`) until
    /// the input ends or `stop` resolves. Calls already read then finish;
    /// those still running when the shutdown deadline
    /// ([`Config::shutdown_timeout`]) passes end with an error saying why.
    /// The routes are not served.
    pub async fn serve_stdio<R, W>(
        self,
        input: R,
        output: W,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = self.config.shutdown_timeout;
        let mcp = self.mcp.clone();
        let stop = async move {
            stop.await;
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                mcp.abort_calls(&deadline_reason(deadline));
            });
        };
        crate::transport::stdio::serve_until(self.mcp, input, output, &self.registry, stop).await
    }

    fn split(self) -> (Parts, Router) {
        (
            Parts {
                mcp: self.mcp,
                registry: self.registry,
                memory: self.memory,
                ops: self.ops,
                config: self.config,
                paths: self.paths,
            },
            self.router,
        )
    }
}

/// What wiring a server needs of a built service (its routes gone to the server).
struct Parts {
    mcp: McpServer,
    registry: Arc<Registry>,
    memory: Arc<crate::budget::Memory>,
    ops: Option<Arc<Ops>>,
    config: Config,
    paths: Vec<(&'static str, &'static str, String)>,
}

impl Parts {
    fn wire<L: Listener>(self, server: Server<L>, base: impl Fn(&str) -> String) -> Server<L> {
        let deadline = self.config.shutdown_timeout;
        let mcp = self.mcp;
        let server = server
            .with_memory(&self.memory)
            .with_registry(self.registry)
            .on_deadline(move || mcp.abort_calls(&deadline_reason(deadline)));
        if let Some(ops) = &self.ops {
            ops.set_http_stats(server.stats());
            ops.set_transports(
                self.paths
                    .iter()
                    .map(|(name, scheme, path)| {
                        ((*name).to_owned(), format!("{}{path}", base(scheme)))
                    })
                    .collect(),
            );
        }
        server
    }
}
