//! The accept loop: connection limit, backoff on accept errors, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::http::config::Config;
use crate::http::conn::Conn;
use crate::http::router::Router;
use crate::http::stats::Shared;
pub use crate::http::stats::{Stats, StatsSnapshot};
use crate::registry::{Registry, Transport};
use crate::shutdown::{Guard, ShutdownSignal, Trigger, completion};

/// Answer to a connection over the limit; it is closed right after.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many open connections";
/// Most over-limit connections being answered at once; more are dropped unanswered.
const MAX_REJECTING: usize = 64;
/// How long the answers of work cancelled at the shutdown deadline (see
/// [`Server::on_deadline`]) get to be written before connections are closed.
pub const ABORT_GRACE: Duration = Duration::from_secs(2);
/// How long an over-limit connection is given to take its 503.
const REJECT_TIMEOUT: Duration = Duration::from_secs(1);
/// First and longest pause after an accept error such as EMFILE.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// An HTTP/1.1 server bound to a socket, ready to serve a [`Router`].
///
/// ```no_run
/// use snowflake_mcp::{Config, Server};
/// use snowflake_mcp::http::{Method, Request, Response, Router};
///
/// # async fn run() -> Result<(), snowflake_mcp::Error> {
/// let router = Router::new().route(Method::Get, "/health", |_: Request<'_>| {
///     Response::json(200, r#"{"status":"ok"}"#)
/// });
/// let server = Server::bind(Config::new().port(8000), router).await?;
/// println!("listening on http://{}", server.local_addr());
/// server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Where each connection registers (see [`Server::with_registry`]).
    registry: Arc<Registry>,
    /// Run when the shutdown deadline passes (see [`Server::on_deadline`]).
    on_deadline: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the configured address (127.0.0.1:8000 by default).
    pub async fn bind(config: Config, router: Router) -> Result<Server, Error> {
        let addr = config.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(Error::Io)?;
        Ok(Server {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                config,
                router,
                stats: Stats::default(),
            }),
            registry: Registry::new(),
            on_deadline: None,
        })
    }

    /// Registers connections in `registry` (shared with the transports, so
    /// one snapshot covers connections, sessions and WebSockets) instead of
    /// the server's own.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Runs `stop` when a graceful shutdown's deadline passes with work still
    /// running, before the connections are closed: the place to end that
    /// work with an answer the clients can read (for MCP,
    /// [`crate::mcp::McpServer::abort_calls`]). The answers then get up to
    /// [`ABORT_GRACE`] to be written.
    pub fn on_deadline(mut self, stop: impl FnOnce() + Send + 'static) -> Self {
        self.on_deadline = Some(Box::new(stop));
        self
    }

    /// The registry connections are registered in.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to the connection counters, valid after `serve` starts.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    ///
    /// Graceful shutdown: stop accepting; idle keep-alive connections close;
    /// requests in flight finish and their responses carry
    /// `Connection: close`; upgraded connections see their
    /// [`ShutdownSignal`]. Whatever is still open after the configured
    /// shutdown timeout is dropped.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (trigger, _signal) = Trigger::new();
        let (force, _) = Trigger::new();
        let (guard, mut done) = completion();
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
        let mut backoff = ACCEPT_BACKOFF.0;
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    let _ = stream.set_nodelay(true);
                    match Arc::clone(&limit).try_acquire_owned() {
                        Ok(permit) => {
                            let task = ConnTask {
                                shared: Arc::clone(&self.shared),
                                registry: Arc::clone(&self.registry),
                                shutdown: trigger.signal(),
                                force: force.signal(),
                                _guard: guard.clone(),
                            };
                            tokio::spawn(async move {
                                task.run(stream, peer).await;
                                drop(permit);
                            });
                        }
                        Err(_) => self.reject(stream, &rejecting),
                    }
                }
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                }
            }
        }
        drop(self.listener);
        trigger.fire();
        drop(guard);
        let grace = self.shared.config.shutdown_timeout;
        if tokio::time::timeout(grace, done.wait()).await.is_err() {
            if let Some(stop) = self.on_deadline {
                tracing::warn!(
                    deadline_s = grace.as_secs_f64(),
                    "shutdown deadline passed: cancelling the work still running"
                );
                stop();
                if tokio::time::timeout(ABORT_GRACE, done.wait()).await.is_ok() {
                    return Ok(());
                }
            }
            tracing::warn!("shutdown deadline passed: closing the connections still open");
            force.fire();
            done.wait().await;
        }
        Ok(())
    }

    fn reject(&self, mut stream: TcpStream, rejecting: &Arc<Semaphore>) {
        self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = Arc::clone(rejecting).try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REJECT_TIMEOUT, async {
                stream.write_all(OVERLOADED).await?;
                stream.shutdown().await?;
                // Drain what the client sent so closing does not reset the 503 away.
                let mut sink = [0u8; 512];
                while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
                io::Result::Ok(())
            })
            .await;
            drop(permit);
        });
    }
}

/// Errors from `accept` that concern one connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

struct ConnTask {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    shutdown: ShutdownSignal,
    force: ShutdownSignal,
    _guard: Guard,
}

impl ConnTask {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let stats = &self.shared.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.active.fetch_add(1, Ordering::Relaxed);
        let _registration = self.registry.register(Transport::Http, Some(peer));
        let conn = Conn::new(stream, peer, Arc::clone(&self.shared), self.shutdown);
        tokio::select! {
            () = conn.run() => {}
            () = self.force.recv() => {}
        }
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads a running server's connection counters.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.stats.fmt(f)
    }
}

impl StatsHandle {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.stats.snapshot()
    }

    /// The status codes sent so far and how often, in code order.
    pub fn responses_by_code(&self) -> Vec<(u16, u64)> {
        self.0.stats.responses_by_code()
    }
}
