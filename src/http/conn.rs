//! One HTTP/1.1 connection: read a head, read its body, call the handler, write the answer.
//!
//! Buffers: one read buffer per busy connection, reused for every request
//! (bytes are read into its spare capacity, never zeroed); head fields and
//! a `Content-Length` body are borrowed from it in place. Responses are
//! built in one write buffer and flushed only before the connection would
//! wait for the client, so pipelined requests get their answers in one
//! write. A connection that waits for its next request gives both buffers
//! to its thread's spares (`spare`) and takes them back when bytes come.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

use crate::util::IO_PIECE;

use super::chunked::ChunkedDecoder;
use super::config::LARGE_BODY_BYTES;
use super::encode::{
    BodyFraming, CONTINUE, ConnHeader, Headers, LAST_CHUNK, write_chunk, write_chunk_size,
    write_head,
};
use super::head::{Expect, Framing, Head, HeaderSpan, KnownHeader, Method, Version, parse_head};
use super::io::Io;
use super::request::Request;
use super::response::{Body, OnUpgrade, Response, status_has_no_body};
use super::router::{Lookup, Reply};
use super::stats::Shared;
use super::upgrade::Upgraded;
use crate::budget::Held;
use crate::shutdown::{ShutdownSignal, ShutdownWait};
use futures_util::FutureExt as _;

/// Initial capacity of a connection's read and write buffers. Default:
/// 1 KiB, which holds a typical MCP request and answer (each grows on
/// demand, up to the head and body limits, and is kept up to
/// [`RETAINED_BUFFER`] while the connection is busy). An idle keep-alive
/// connection holds neither: they wait among its thread's spares
/// (`spare`).
const INITIAL_READ_BUFFER: usize = 1024;
/// Spare room ensured before each read of a head. Default: 1 KiB.
const MIN_READ_SPACE: usize = 1024;
/// A buffer grown past this by a large request is released once that request is done.
const RETAINED_BUFFER: usize = 64 * 1024;
/// Bodies larger than this are written straight from their own buffer instead of copied.
const COPY_BODY_LIMIT: usize = 16 * 1024;
/// Most pending chunks batched into one write of a streamed body.
const STREAM_BATCH_BYTES: usize = 64 * 1024;
/// How long a closing connection keeps reading (and dropping) what the client still sends,
/// so that the client sees our last response instead of a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the connection stops reading a request.
enum Stop {
    /// Close without a response (EOF, idle timeout, shutdown while idle, I/O error).
    Quiet,
    /// Answer with this status and message, then close.
    Reply(u16, &'static str),
}

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Self {
        Stop::Quiet
    }
}

/// What follows a response.
enum Next {
    KeepAlive,
    Close,
    Upgrade(OnUpgrade),
}

impl Next {
    fn after(keep_alive: bool) -> Next {
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Where the body of the current request is.
#[derive(Clone, Copy)]
enum BodyAt {
    None,
    /// `len` bytes right after the head in the read buffer.
    InBuffer(usize),
    /// Decoded into `Conn::body`.
    Decoded,
}

pub(crate) struct Conn<S> {
    stream: S,
    remote: SocketAddr,
    shared: Arc<Shared>,
    shutdown: ShutdownSignal,
    /// The wait for `shutdown` a read between requests races, made at the
    /// first such read and kept.
    shutdown_wait: Option<ShutdownWait>,
    /// The deadline of a wait for a request head, moved lazily (`timer`).
    timer: timer::Timer,
    /// Read buffer; bytes before `start` belong to requests already answered.
    rbuf: Vec<u8>,
    start: usize,
    /// Response bytes not yet written.
    wbuf: Vec<u8>,
    /// Header offsets of the current request; kept between requests to avoid allocating.
    spans: Vec<HeaderSpan>,
    /// De-chunked body of the current request.
    body: Vec<u8>,
    decoder: ChunkedDecoder,
    /// A large response body to write after `wbuf`, without copying it there.
    pending_body: Option<Bytes>,
    /// Requests answered on this connection.
    served: u64,
    /// CORS header lines for the current request's origin (empty when none);
    /// kept between requests to avoid allocating.
    cors: Vec<u8>,
}

impl<S: Io> Conn<S> {
    pub(crate) fn new(
        stream: S,
        remote: SocketAddr,
        shared: Arc<Shared>,
        shutdown: ShutdownSignal,
    ) -> Conn<S> {
        let max_body = shared.config.max_body_bytes as u64;
        Conn {
            stream,
            remote,
            shared,
            shutdown,
            shutdown_wait: None,
            timer: timer::Timer::default(),
            rbuf: Vec::new(),
            start: 0,
            wbuf: Vec::new(),
            spans: Vec::new(),
            body: Vec::new(),
            decoder: ChunkedDecoder::new(max_body),
            pending_body: None,
            served: 0,
            cors: Vec::new(),
        }
    }

    /// Counts bytes a read brought in (`Relaxed`: a standalone tally).
    fn counted_in(&self, read: io::Result<usize>) -> io::Result<usize> {
        if let Ok(n) = read {
            self.shared
                .stats
                .bytes_in
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        read
    }

    /// Fills `self.cors` for an allowed `Origin` (with the preflight
    /// answers for an `OPTIONS` that asks for a method).
    fn prepare_cors(&mut self, head: &Head) {
        self.cors.clear();
        let Some(cors) = self.shared.prepared.cors.as_deref() else {
            return;
        };
        let buf = &self.rbuf[self.start..self.start + head.len];
        let header = |name: &str| {
            self.spans
                .iter()
                .find(|h| h.name.slice(buf).eq_ignore_ascii_case(name.as_bytes()))
                .map(|h| h.value.slice(buf))
        };
        let Some(origin) = head.known.value(KnownHeader::Origin, &self.spans, buf) else {
            return;
        };
        if !cors.origins.iter().any(|o| o.as_bytes() == origin) {
            return;
        }
        let preflight =
            head.method == Method::Options && header("access-control-request-method").is_some();
        self.cors
            .extend_from_slice(b"Access-Control-Allow-Origin: ");
        self.cors.extend_from_slice(origin);
        self.cors.extend_from_slice(b"\r\nVary: Origin\r\n");
        if preflight {
            self.cors
                .extend_from_slice(b"Access-Control-Allow-Methods: ");
            self.cors
                .extend_from_slice(super::config::CORS_ALLOW_METHODS.as_bytes());
            self.cors
                .extend_from_slice(b"\r\nAccess-Control-Allow-Headers: ");
            self.cors.extend_from_slice(cors.allow_headers.as_bytes());
            self.cors.extend_from_slice(b"\r\nAccess-Control-Max-Age: ");
            let mut num = [0u8; 20];
            self.cors
                .extend_from_slice(crate::http::encode::format_decimal(
                    u64::from(cors.max_age_secs),
                    &mut num,
                ));
            self.cors.extend_from_slice(b"\r\n");
        } else if !cors.expose_headers.is_empty() {
            self.cors
                .extend_from_slice(b"Access-Control-Expose-Headers: ");
            self.cors.extend_from_slice(cors.expose_headers.as_bytes());
            self.cors.extend_from_slice(b"\r\n");
        }
    }

    /// The request's client: the peer, or the client a trusted proxy names.
    fn client_addr(&self, head: &Head) -> SocketAddr {
        let trusted = &self.shared.config.trusted_proxies;
        if trusted.is_empty() {
            return self.remote;
        }
        let buf = &self.rbuf[self.start..self.start + head.len];
        let named = |name| super::request::values_named(&self.spans, buf, name);
        super::forwarded::client(
            self.remote,
            trusted,
            named("x-forwarded-for"),
            named("forwarded"),
        )
    }

    /// Serves requests until the connection closes, then hands it over if
    /// upgraded; `force` ends it at once. `life` is whatever must live as
    /// long as the connection, dropped when it ends however it ends.
    ///
    /// Not an `async fn`: one of those keeps its arguments twice in its
    /// state (as given and as moved into its body), and this state is what
    /// every idle connection holds.
    #[allow(clippy::manual_async_fn)] // On purpose: see above.
    pub(crate) fn run(
        mut self,
        force: ShutdownSignal,
        life: impl Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            // A wait that registers once: a fresh `recv` is polled again
            // (and takes the signal's lock) at every wake of the task.
            let forced = ShutdownWait::new(force.clone());
            let upgrade = tokio::select! {
                biased;
                upgrade = self.serve() => upgrade,
                () = forced => None,
            };
            if let Some(on_upgrade) = upgrade {
                // A task of its own, which holds only what the upgrade
                // needs: this one's state, sized for HTTP, is freed.
                let upgraded = on_upgrade(self.into_upgraded());
                tokio::spawn(async move {
                    tokio::select! {
                        () = upgraded => {}
                        () = force.recv() => {}
                    }
                    drop(life);
                });
                return;
            }
            drop(life);
        }
    }

    /// Serves requests until the connection closes; what to hand it to when
    /// a request upgraded it.
    async fn serve(&mut self) -> Option<OnUpgrade> {
        loop {
            match self.serve_one().await {
                Next::KeepAlive => continue,
                Next::Close => break,
                Next::Upgrade(on_upgrade) => return Some(on_upgrade),
            }
        }
        if self.flush().await.is_ok() {
            // Rare and large (its sink buffer): kept out of the state every
            // connection holds.
            Box::pin(self.linger()).await;
        }
        None
    }

    /// The stream and what was read past the handshake, for the upgrade's
    /// handler; the HTTP buffers are given back before it runs.
    fn into_upgraded(mut self) -> Upgraded {
        let read_ahead = Bytes::copy_from_slice(&self.rbuf[self.start..]);
        spare::give(std::mem::take(&mut self.rbuf));
        spare::give(std::mem::take(&mut self.wbuf));
        Upgraded {
            stream: Box::new(self.stream),
            read_ahead,
            shutdown: self.shutdown,
            remote_addr: self.remote,
            backlog: std::sync::Arc::clone(&self.shared.backlog),
            bodies: std::sync::Arc::clone(&self.shared.bodies),
        }
    }

    async fn serve_one(&mut self) -> Next {
        let head = match self.read_head().await {
            Ok(head) => head,
            Err(stop) => return self.stop(stop),
        };
        if self.wbuf.capacity() == 0 {
            self.wbuf = spare::take();
        }
        self.served += 1;
        // Once shutdown has begun no new work starts: a request read after
        // it is refused, and the connection closes.
        if self.shutdown.is_shutdown() {
            return self.stop(Stop::Reply(
                503,
                "server shutting down; retry on a new connection",
            ));
        }
        // A preflight (OPTIONS) is answered by the route table's own 204.
        self.prepare_cors(&head);
        if head.expect == Expect::Unsupported {
            return self.early(&head, 417, "only 100-continue is supported", None);
        }
        let shared = Arc::clone(&self.shared);
        let lookup = {
            let path = match head.path.slice(&self.rbuf[self.start..]) {
                b"" => b"/",
                p => p,
            };
            shared.router.lookup(head.method, path)
        };
        let handler = match lookup {
            Lookup::Found(h) => h,
            Lookup::NotFound => return self.early(&head, 404, "no route for this path", None),
            Lookup::MethodNotAllowed(allow) => {
                return self.early(&head, 405, "method not allowed here", Some(allow));
            }
            Lookup::Options(allow) => return self.early(&head, 204, "", Some(allow)),
        };
        // Held until the request is answered and its bytes consumed.
        let (body_at, _held) = match self.read_body(&head).await {
            Ok(at) => at,
            Err(stop) => return self.stop(stop),
        };
        let body: &[u8] = match body_at {
            BodyAt::None => &[],
            BodyAt::InBuffer(n) => &self.rbuf[self.start + head.len..self.start + head.len + n],
            BodyAt::Decoded => &self.body,
        };
        let remote = self.client_addr(&head);
        let req = Request {
            buf: &self.rbuf[self.start..self.start + head.len],
            head: &head,
            headers: &self.spans,
            body,
            remote,
            shutdown: Some(&self.shutdown),
        };
        // A panicking handler costs its own request, not the connection task:
        // the client gets a 500 and the connection closes.
        // While the handler runs, the socket is watched: a client that closes
        // the connection has its request's work dropped (the handler future
        // with it), like nginx's "client closed request". Bytes a pipelining
        // client sends meanwhile are kept and served next.
        let mut early = Vec::new();
        let response = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(req))) {
            Ok(reply) => {
                tokio::select! {
                    biased;
                    r = CatchPanic(reply) => r,
                    () = watch_for_close(&mut self.stream, &mut early) => return Next::Close,
                }
            }
            Err(_) => None,
        };
        let response = response.unwrap_or_else(|| {
            tracing::error!("request handler panicked");
            Response::text(500, "internal error in request handler").close()
        });
        let consumed = head.len
            + match body_at {
                BodyAt::InBuffer(n) => n,
                _ => 0,
            };
        self.consume(consumed);
        if !early.is_empty() {
            self.rbuf.extend_from_slice(&early);
        }
        self.respond(&head, response).await
    }

    /// Answers without reading the body; closes if a body was left unread.
    fn early(&mut self, head: &Head, status: u16, msg: &'static str, allow: Option<&str>) -> Next {
        let body_left = head.framing != Framing::Empty;
        let mut response = if msg.is_empty() {
            Response::new(status)
        } else {
            Response::static_body(status, "text/plain; charset=utf-8", msg.as_bytes())
        };
        if let Some(allow) = allow {
            response = match response.try_header("allow", allow) {
                Ok(r) => r,
                Err(_) => Response::new(500),
            };
        }
        if body_left {
            response = response.close();
        }
        self.consume(head.len);
        self.queue_whole(head, response)
    }

    /// Queues a response head: counts it, and adds the server's own header
    /// lines and the CORS lines of the request's origin. Every response goes
    /// out through here.
    fn queue_head(
        &mut self,
        status: u16,
        headers: Headers<'_>,
        framing: BodyFraming,
        conn: ConnHeader,
    ) {
        self.shared.stats.response(status);
        let headers = headers.with(&self.shared.prepared.response_headers, &self.cors);
        write_head(&mut self.wbuf, status, headers, framing, conn);
    }

    /// Queues an error answer for a request whose head was refused, and closes.
    fn stop(&mut self, stop: Stop) -> Next {
        if let Stop::Reply(status, msg) = stop {
            // Refused before its origin was looked at: no CORS lines (not
            // even the previous request's).
            self.cors.clear();
            self.queue_head(
                status,
                Headers::encoded(b"Content-Type: text/plain; charset=utf-8\r\n"),
                BodyFraming::Length(msg.len() as u64),
                ConnHeader::Close,
            );
            self.wbuf.extend_from_slice(msg.as_bytes());
        }
        Next::Close
    }
}

/// The refusal of a large body when all connections together already hold
/// as many bytes of large bodies as they may.
const BODIES_FULL: &str = "server busy: too many large request bodies at once; retry later";

/// Most bytes buffered from a client while its request's handler runs; past
/// this the socket is no longer read (and so no longer watched) until the
/// handler answers. Default: 64 KiB.
const MAX_EARLY_BYTES: usize = 64 * 1024;

/// Resolves when the client closes the connection (or it fails); keeps what
/// the client sends meanwhile in `early`.
async fn watch_for_close<S: Io>(stream: &mut S, early: &mut Vec<u8>) {
    while early.len() < MAX_EARLY_BYTES {
        match stream.read_buf(early).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// Polls a handler's reply, turning a panic into `None`.
struct CatchPanic<'a>(Reply<'a>);

impl Future for CatchPanic<'_> {
    type Output = Option<Response>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let reply = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(reply).poll(cx))) {
            Ok(Poll::Ready(r)) => Poll::Ready(Some(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}

mod read;
mod spare;
mod timer;
mod write;
