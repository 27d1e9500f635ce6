//! The accept loop: connection limit, backoff on accept errors, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::http::Io;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::http::config::Config;
use crate::http::conn::Conn;
use crate::http::router::Router;
use crate::http::stats::Shared;
pub(crate) use crate::http::stats::Stats;
pub use crate::http::stats::StatsSnapshot;
use crate::registry::{Registration, Registry, Transport};
use crate::shutdown::{Guard, Trigger, completion};

/// Answer to a connection over the limit; it is closed right after.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many open connections";
/// Most over-limit connections being answered at once; more are dropped unanswered.
const MAX_REJECTING: usize = 64;
/// How long the answers of work cancelled at the shutdown deadline (see
/// [`Server::on_deadline`]) get to be written before connections are closed.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(2);
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
/// let server = Server::bind(Config { port: 8000, ..Config::default() }, router).await?;
/// println!("listening on http://{}", server.local_addr());
/// server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Server<L: Listener = TcpListener> {
    listener: L,
    /// The bound TCP address (none for other listeners).
    local_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// Where each connection registers (see [`Server::with_registry`]).
    registry: Arc<Registry>,
    /// Run when the shutdown deadline passes (see [`Server::on_deadline`]).
    on_deadline: Option<Box<dyn FnOnce() + Send>>,
}

impl<L: Listener> std::fmt::Debug for Server<L> {
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
        let addr = config.addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(Error::Io)?;
        let mut server = Server::from_listener(listener, config, router)?;
        server.local_addr = Some(local_addr);
        Ok(server)
    }
}

impl<L: Listener> Server<L> {
    /// The address actually bound (useful with port 0): the TCP address
    /// for [`Server::bind`] and a TLS server over TCP; `0.0.0.0:0` for a
    /// listener the server did not bind.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr.unwrap_or_else(self_addr_unknown)
    }

    /// Records the address a wrapped listener's socket is bound to (a TLS
    /// listener over TCP), for [`Server::local_addr`].
    pub(crate) fn bound_at(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }
}

/// What `local_addr` says when nothing was bound by TCP (never for `bind`).
fn self_addr_unknown() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[cfg(unix)]
impl Server<tokio::net::UnixListener> {
    /// Binds a Unix socket at `path` (the file must not exist). Peers of a
    /// Unix socket are local: their address reads as 127.0.0.1 port 0 (for
    /// rate limits and the principal of clients without keys), so every
    /// client of the socket counts as one address.
    pub fn bind_unix(
        path: impl AsRef<std::path::Path>,
        config: Config,
        router: Router,
    ) -> Result<Server<tokio::net::UnixListener>, Error> {
        let prepared = config.prepare()?;
        let listener = tokio::net::UnixListener::bind(path.as_ref()).map_err(Error::Io)?;
        Ok(Server::prepared(listener, config, prepared, router))
    }
}

impl<L: Listener> Server<L> {
    /// A server over connections from `listener`: a pre-bound socket, a
    /// TLS acceptor of the host's, or a channel of streams the host
    /// accepted itself (see [`Listener`]). `config`'s address is not used;
    /// a setting it cannot work with is refused ([`Error::Config`]).
    pub fn from_listener(listener: L, config: Config, router: Router) -> Result<Server<L>, Error> {
        let prepared = config.prepare()?;
        Ok(Server::prepared(listener, config, prepared, router))
    }

    fn prepared(
        listener: L,
        config: Config,
        prepared: crate::http::config::Prepared,
        router: Router,
    ) -> Server<L> {
        let memory = crate::budget::Memory::new(config.memory_budget_bytes);
        Server {
            listener,
            local_addr: None,
            shared: Arc::new(Shared {
                bodies: Arc::new(crate::budget::ByteBudget::within_memory(
                    crate::http::config::bodies_budget(&config),
                    &memory,
                )),
                backlog: crate::budget::Backlog::within_memory(config.max_backlog_bytes, &memory),
                memory,
                clients: crate::http::clients::ClientConns::new(
                    prepared.max_connections_per_client,
                    config.trusted_proxies.clone(),
                ),
                config,
                prepared,
                router,
                stats: Stats::default(),
            }),
            registry: Registry::new(),
            on_deadline: None,
        }
    }

    /// Counts the server's large bodies and backlog against `memory` (the
    /// budget a [`crate::Service`] shares with its other pools) instead of
    /// a budget of the server's own. Before serving only.
    pub(crate) fn with_memory(mut self, memory: &Arc<crate::budget::Memory>) -> Self {
        // Nothing holds the shared state yet (no stats handle, no
        // connection): the composition root calls this first.
        debug_assert_eq!(
            Arc::strong_count(&self.shared),
            1,
            "memory set after sharing"
        );
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.bodies = Arc::new(crate::budget::ByteBudget::within_memory(
                crate::http::config::bodies_budget(&shared.config),
                memory,
            ));
            shared.backlog =
                crate::budget::Backlog::within_memory(shared.config.max_backlog_bytes, memory);
            shared.memory = Arc::clone(memory);
        }
        self
    }

    /// Registers connections in `registry` (shared with the transports, so
    /// one snapshot covers connections, sessions and WebSockets) instead of
    /// the server's own.
    pub(crate) fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Runs `stop` when a graceful shutdown's deadline passes with work still
    /// running, before the connections are closed: the place to end that
    /// work with an answer the clients can read (for MCP,
    /// [`crate::mcp::McpServer::abort_calls`]). The answers then get up to
    /// 2 s to be written.
    pub fn on_deadline(mut self, stop: impl FnOnce() + Send + 'static) -> Self {
        self.on_deadline = Some(Box::new(stop));
        self
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
    /// [`ShutdownSignal`](crate::shutdown::ShutdownSignal). Whatever is
    /// still open after the configured shutdown timeout is dropped.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (trigger, _signal) = Trigger::new();
        let (force, _) = Trigger::new();
        let (stop, stop_signal) = Trigger::new();
        let (guard, mut done) = completion();
        // The accept loop runs on a task of its own, so what it makes for
        // each connection (the socket's registration, the connection's
        // task) comes from a worker thread's memory, where what a
        // connection frees (its HTTP state, when it upgrades) is used
        // again; made on the host's thread (`block_on`'s, say), each
        // connection would leave a hole there that nothing fills.
        let accepting = tokio::spawn(
            Acceptor {
                listener: self.listener,
                shared: Arc::clone(&self.shared),
                registry: self.registry,
                conns: trigger.signal(),
                force: force.signal(),
                guard: guard.clone(),
            }
            .run(stop_signal),
        );
        tokio::pin!(accepting);
        tokio::pin!(shutdown);
        tokio::select! {
            biased;
            () = &mut shutdown => {
                stop.fire();
                // The loop ends at its next turn; a panic in it ends it too.
                let _ = accepting.await;
            }
            _ = &mut accepting => {}
        }
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
}

/// The accept loop of [`Server::serve`], with what it gives each connection.
struct Acceptor<L: Listener> {
    listener: L,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    /// The graceful shutdown signal, for each connection.
    conns: crate::shutdown::ShutdownSignal,
    /// The signal that closes connections at the shutdown deadline.
    force: crate::shutdown::ShutdownSignal,
    guard: Guard,
}

impl<L: Listener> Acceptor<L> {
    /// Accepts until `stop` fires or the listener has no more to give; the
    /// listener is dropped when it returns.
    async fn run(self, stop: crate::shutdown::ShutdownSignal) {
        let limit = Arc::new(Semaphore::new(self.shared.prepared.max_connections));
        let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
        let mut backoff = ACCEPT_BACKOFF.0;
        let Acceptor {
            mut listener,
            shared,
            registry,
            conns,
            force,
            guard,
        } = self;
        // One wait for the whole loop: ready at every poll once fired.
        let stopped = crate::shutdown::ShutdownWait::new(stop);
        tokio::pin!(stopped);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stopped => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    let admitted = Arc::clone(&limit)
                        .try_acquire_owned()
                        .ok()
                        .and_then(|permit| Some((permit, shared.clients.take(peer.ip()).ok()?)));
                    match admitted {
                        Some((permit, client)) => {
                            let life =
                                ConnLife::begin(&shared, &registry, guard.clone(), permit, client);
                            let conn = Conn::new(stream, peer, Arc::clone(&shared), conns.clone());
                            tokio::spawn(conn.run(force.clone(), life));
                        }
                        None => reject(&shared, stream, &rejecting),
                    }
                }
                Err(e) if is_per_connection(&e) => {}
                // The listener has no more connections to give (a host's
                // channel closed): stop accepting, as at shutdown.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => {
                    tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        () = &mut stopped => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                }
            }
        }
    }
}

/// Answers a connection over the limit with a 503 (at most
/// [`MAX_REJECTING`] at once; more are dropped unanswered).
fn reject<S: Io>(shared: &Shared, mut stream: S, rejecting: &Arc<Semaphore>) {
    shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
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

/// Where a [`Server`]'s connections come from: TCP and Unix listeners are
/// built in; a host implements it for its own acceptor (TLS, say), or
/// sends streams it accepted itself through a channel
/// (`tokio::sync::mpsc::Receiver<(S, SocketAddr)>` is a listener).
pub trait Listener: Send + 'static {
    /// The stream of an accepted connection.
    type Io: Io;

    /// Waits for the next connection: its stream and its peer's address.
    /// An `UnexpectedEof` error means no more will come: the server stops
    /// accepting and shuts down gracefully.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Small answers go out at once (no Nagle delay).
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(tokio::net::UnixStream, SocketAddr)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, SocketAddr::from(([127, 0, 0, 1], 0))))
    }
}

impl<S: Io> Listener for tokio::sync::mpsc::Receiver<(S, SocketAddr)> {
    type Io = S;

    async fn accept(&mut self) -> io::Result<(S, SocketAddr)> {
        self.recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no more streams"))
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

/// What a connection holds for its life besides its own state: its count
/// among the active ones, its registration, its slot among the connections
/// allowed, and the server's shutdown tracker.
struct ConnLife {
    shared: Arc<Shared>,
    /// The client whose connection count it holds (none from a trusted proxy).
    client: Option<std::net::IpAddr>,
    _registration: Registration,
    _guard: Guard,
    _permit: OwnedSemaphorePermit,
}

impl ConnLife {
    fn begin(
        shared: &Arc<Shared>,
        registry: &Arc<Registry>,
        guard: Guard,
        permit: OwnedSemaphorePermit,
        client: Option<std::net::IpAddr>,
    ) -> ConnLife {
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        shared.stats.active.fetch_add(1, Ordering::Relaxed);
        ConnLife {
            shared: Arc::clone(shared),
            client,
            _registration: registry.register(Transport::Http),
            _guard: guard,
            _permit: permit,
        }
    }
}

impl Drop for ConnLife {
    fn drop(&mut self) {
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
        if let Some(client) = self.client {
            self.shared.clients.give_back(client);
        }
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

    /// Bytes of answers waiting now behind the full sockets of clients
    /// that do not read (HTTP and WebSocket), against
    /// [`Config::max_backlog_bytes`].
    pub fn backlog_bytes(&self) -> usize {
        self.0.backlog.waiting_bytes()
    }

    /// Connections closed since the start because what waited for their
    /// clients passed [`Config::max_backlog_bytes`] and they had taken
    /// nothing for the longest.
    pub fn backlog_cuts(&self) -> u64 {
        self.0.backlog.cuts()
    }

    /// Bytes the server's bounded pools hold now, all together, against
    /// [`Config::memory_budget_bytes`].
    pub fn memory_bytes(&self) -> usize {
        self.0.memory.used()
    }

    /// [`Config::memory_budget_bytes`].
    pub fn memory_budget_bytes(&self) -> usize {
        self.0.memory.max()
    }
}
