//! MCP over WebSocket: one JSON-RPC message per text frame, subprotocol `mcp`.
//!
//! A GET on the endpoint runs our handshake (`handshake`); on a
//! `101` the socket becomes one MCP session. Requests run concurrently and
//! their answers go out as they finish (possibly out of order, each with
//! its own id); server notifications (list changes, resource updates) and
//! requests to the client travel on the same socket. The answers to
//! messages read together (already in the read buffer, or in the socket's)
//! that are ready at once go out together, in order, in one write.
//!
//! Limits, each in [`WsConfig`]: a message bigger than `max_message_bytes`
//! closes with 1009; large messages held at once count against the
//! server's bound on large request bodies (1013 past it); a binary frame closes with 1003 (MCP messages are
//! text); a socket silent for a ping interval plus the pong timeout is
//! taken for dead and dropped; at most `max_in_flight` requests run per
//! socket (the socket is not read past that); answers wait in a bounded
//! queue bounded in messages and in bytes (`max_queued_bytes`, finished
//! answers waiting for room included), and a client that does not take a
//! message within `send_timeout`, or lets more than those bytes wait, is
//! closed with 1008, so a client that stops reading never makes the server
//! buffer without bound. On server shutdown the socket stops taking
//! requests, sends the answers of those in flight, then closes with 1001.
//! When the socket closes, the calls still running on it are cancelled.
//! A socket whose client has been silent for `doze_after`, with no call
//! running, dozes: tungstenite's side is dropped until the client's next
//! bytes or the server's next message (`link`).

use std::sync::Arc;
use std::task::Poll;

use crate::http::BoxedIo;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::budget::{Backlog, COUNTED_FROM, Stalled};
use crate::guard::Admission;
use crate::http::{Handler, Method, Reply, Request, Response, Router, Upgraded};
use crate::mcp::{LARGE_MESSAGE, McpServer, Peer, PeerReceiver, Session};
use crate::registry::{Event, Registry, Transport};
use crate::util::IO_PIECE;
use crate::ws::handshake::negotiate;
use crate::ws::watch::{OverBudget, Watched};
use link::{Input, Link};

mod link;

/// A socket's WebSocket: tungstenite's, over the socket with its frame
/// boundaries followed.
type Ws = WebSocketStream<Watched<BoxedIo>>;

/// The WebSocket endpoint, shared by every connection.
#[derive(Debug)]
pub struct WebSocketMcp {
    server: McpServer,
    config: WsConfig,
    admission: Admission,
    registry: Arc<Registry>,
}

impl WebSocketMcp {
    /// An endpoint serving `server` with the default settings.
    pub fn new(server: McpServer) -> Arc<WebSocketMcp> {
        WebSocketMcp::with_config(server, WsConfig::default())
    }

    /// An endpoint serving `server` with these settings.
    pub fn with_config(server: McpServer, config: WsConfig) -> Arc<WebSocketMcp> {
        WebSocketMcp::wired(server, config, Admission::default(), Registry::new())
    }

    /// An endpoint that admits sockets by `admission` (`Host` and `Origin`
    /// 403, bearer keys 401, per-address rate of handshakes 429) and
    /// registers them in `registry` (shared with the [`crate::Server`] and
    /// other transports).
    pub(crate) fn wired(
        server: McpServer,
        config: WsConfig,
        admission: Admission,
        registry: Arc<Registry>,
    ) -> Arc<WebSocketMcp> {
        Arc::new(WebSocketMcp {
            server,
            config,
            admission,
            registry,
        })
    }

    /// Adds the endpoint's route (GET, the handshake) at `path` to `router`.
    pub fn routes(self: &Arc<Self>, router: Router, path: &str) -> Router {
        router.route_shared(Method::Get, path, Arc::new(Upgrade(Arc::clone(self))))
    }
}

struct Upgrade(Arc<WebSocketMcp>);

impl Handler for Upgrade {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        // Host first (403), then the handshake with the Origin policy
        // passed in, then rate and key: the admission of every endpoint.
        let admission = &self.0.admission;
        if let Err(refused) = admission.check_host(&req, false) {
            return Reply::ready(*refused);
        }
        let accepted = match negotiate(&req, |req| admission.check_origin(req)) {
            Err(refused) => return Reply::ready(refused.response()),
            Ok(accepted) => accepted,
        };
        let upgrade = move |admitted| {
            let endpoint = Arc::clone(&self.0);
            let response = Response::upgrade(move |up| endpoint.run(up, admitted));
            Reply::ready(accepted.headers(response))
        };
        match admission.admit(&req) {
            Ok(admitted) => upgrade(admitted),
            Err(refused) => refused.reply(upgrade),
        }
    }
}

/// How a socket's session loop ends.
enum End {
    /// The client closed (or the connection dropped): nothing more to send.
    Gone,
    /// The server closes with this code and reason, then waits for the
    /// reply. `CloseCode::Policy` (1008) only for a client that stopped
    /// reading: such closes are counted.
    Close(CloseCode, &'static str),
    /// The peer stopped answering: a close frame is tried, and the socket dropped.
    Dead,
    /// The client stopped reading in the middle of an answer's frame (the
    /// rest of it here): closed as `Close(Policy, ..)` is, once the rest of
    /// the frame is written (the close frame must not land inside it).
    Stalled(Vec<u8>),
    /// The socket was cut from the endpoint's backlog (its client had
    /// taken nothing for the longest): dropped at once, with what it held
    /// (no close frame: it would wait behind what the client does not
    /// read, in the middle of a frame). Counted as a close for not reading.
    Cut,
}

impl WebSocketMcp {
    /// The MCP session of one socket, for the principal its handshake was
    /// admitted as (read-only when its key is).
    fn open_session(&self, peer: &Peer, admitted: &crate::guard::Admitted) -> Arc<Session> {
        let session = Arc::new(Session::new(self.server.clone(), Some(peer.clone())));
        session.set_transport("websocket");
        if admitted.scope == crate::guard::auth::Scope::ReadOnly {
            session.restrict_to_read_only();
        }
        // The token of the handshake, for the socket's life.
        session.restrict_tools(admitted.denied_tools.clone());
        session.limit_statements(admitted.statement_kinds.clone());
        session.set_principal(Arc::clone(&admitted.principal));
        session
    }

    /// Lets a socket doze ([`Link::doze`]), counted when it does.
    async fn doze(&self, link: &mut Link) {
        Box::pin(link.doze(&self.config)).await;
        if !link.is_awake() {
            self.registry.count(Transport::WebSocket, Event::Dozed);
        }
    }

    /// Takes a received frame and those already read behind it (up to
    /// [`BATCH_BYTES`] of answers), dispatching each message, and writes
    /// the answers ready now in one write; or how the socket ends.
    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        incoming: Option<Result<Message, WsError>>,
        ws: &mut Ws,
        session: &Arc<Session>,
        peer: &Peer,
        calls: &mut super::Calls,
        client: Option<std::net::IpAddr>,
        backlog: &Arc<Backlog>,
    ) -> Result<(), End> {
        let cfg = &self.config;
        let (frames, answers, end) = self
            .gather(incoming, ws, session, peer, calls, client)
            .await;
        if !frames.is_empty() {
            let backlog = Backlogged {
                backlog,
                queued: None,
            };
            write_frames(ws, &frames, &[], cfg, backlog).await?;
            for _ in 0..answers {
                self.registry.count(Transport::WebSocket, Event::MessageOut);
            }
        }
        end.map_or(Ok(()), Err)
    }

    /// The dispatch half of [`WebSocketMcp::receive`]: the answers ready
    /// now, framed, how many there are, and how the socket ends if it does
    /// (answers made before an end are still due).
    async fn gather(
        &self,
        mut incoming: Option<Result<Message, WsError>>,
        ws: &mut Ws,
        session: &Arc<Session>,
        peer: &Peer,
        calls: &mut super::Calls,
        client: Option<std::net::IpAddr>,
    ) -> (Vec<u8>, usize, Option<End>) {
        let cfg = &self.config;
        let mut frames = Vec::new();
        let mut answers = 0;
        let mut out = Vec::new();
        loop {
            match text_of(incoming) {
                Ok(Some(text)) => {
                    self.registry.count(Transport::WebSocket, Event::MessageIn);
                    if out.capacity() == 0 {
                        out.reserve(256);
                    }
                    if let Some(refused) = self.throttled(client, text.as_bytes()) {
                        out = refused;
                    } else if text.len() >= LARGE_MESSAGE {
                        let message = bytes::Bytes::from(text);
                        // Boxed: rare, and large.
                        Box::pin(super::dispatch_large_to_peer(
                            session, peer, message, &mut out, calls,
                        ))
                        .await;
                    } else {
                        super::dispatch_to_peer(session, peer, text.as_bytes(), &mut out, calls)
                            .await;
                    }
                    if !out.is_empty() {
                        if let Err(end) = frame_into(&mut frames, &out, cfg) {
                            return (frames, answers, Some(end));
                        }
                        out.clear();
                        answers += 1;
                    }
                }
                Ok(None) => {}
                Err(end) => return (frames, answers, Some(end)),
            }
            // A call's own messages, queued, go first: the next answer must
            // not pass them.
            if frames.len() >= BATCH_BYTES || calls.len() >= cfg.max_in_flight || !peer.is_empty() {
                return (frames, answers, None);
            }
            match std::future::poll_fn(|cx| Poll::Ready(ws.poll_next_unpin(cx))).await {
                Poll::Ready(next) => incoming = next,
                Poll::Pending => return (frames, answers, None),
            }
        }
    }

    /// Whether a message from `client` is past the rate limit: `None` when
    /// it may be dispatched, else its answer: a request gets the error a
    /// 429 carries, with its id; a notification is dropped. A response (to
    /// the server's own request) always passes.
    fn throttled(&self, client: Option<std::net::IpAddr>, text: &[u8]) -> Option<Vec<u8>> {
        let limiter = self.admission.rate_limit.as_deref()?;
        let wait = limiter.check(client?).err()?;
        let mut out = Vec::new();
        match crate::jsonrpc::parse(text) {
            Ok(crate::jsonrpc::Message::Response(_)) => return None,
            Ok(crate::jsonrpc::Message::Request(r)) => crate::jsonrpc::write::write_error(
                &mut out,
                Some(r.id),
                &crate::guard::rate::RateLimiter::error(wait),
            ),
            _ => {}
        }
        Some(out)
    }

    /// Runs one socket's MCP session until it closes.
    ///
    /// Not an `async fn`, which would keep its arguments twice in the state
    /// every open socket holds.
    fn run(
        self: Arc<Self>,
        up: Upgraded,
        admitted: crate::guard::Admitted,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Upgraded {
            stream,
            read_ahead,
            shutdown,
            remote_addr,
            backlog,
            bodies,
        } = up;
        // Kept only where messages are rate-limited: each counts against
        // the client's address, as an HTTP request does.
        let client = self
            .admission
            .rate_limit
            .is_some()
            .then(|| remote_addr.ip());
        // Made before the loop's state: what only the start needs (the
        // stream before it is wrapped, what was read ahead, the admission)
        // would otherwise stay in the state every open socket holds.
        // Boxed: the opening's state would set the size of every socket's.
        let cfg = &self.config;
        let opening = Box::pin(open_stream(stream, &read_ahead, cfg, &bodies));
        let (peer, outbound) =
            Peer::bounded(cfg.outbound_queue.max(1), cfg.max_queued_bytes.max(1));
        let session = self.open_session(&peer, &admitted);
        async move {
            let cfg = &self.config;
            let mut link = Link::new(opening.await);
            let _registration = self.registry.register(Transport::WebSocket);
            // The server's list and resource changes, forwarded by this
            // loop itself (a task of their own would cost every idle socket
            // its state).
            let mut events = Some(self.server.events());
            let mut calls = super::Calls::default();
            let mut last_heard = Instant::now();
            // Whether the client was pinged since it was last heard.
            let mut pinged = false;
            // One timer in the state itself (an interval boxes its own), for
            // the pings, the dead-peer check, and whether the socket may doze.
            let tick = tokio::time::sleep_until(next_tick(cfg, last_heard, pinged, true));
            tokio::pin!(tick);
            let mut draining = false;
            // One wait for the whole socket: a fresh one per turn of the
            // loop would register with the signal and leave it every time.
            let shutdown = shutdown.recv();
            tokio::pin!(shutdown);

            let end = loop {
                if draining && calls.is_empty() && outbound.is_empty() {
                    break End::Close(CloseCode::Away, "server shutting down");
                }
                if link.rebuild_due() {
                    // A large frame grew tungstenite's read buffer, and it
                    // now holds nothing unread: the buffer is dropped (the
                    // side is built afresh from the client's next bytes).
                    self.doze(&mut link).await;
                }
                tokio::select! {
                    biased;
                    // Polls, not futures: the state of a wait would be kept
                    // by every idle socket.
                    Some(message) = std::future::poll_fn(|cx| outbound.poll_recv(cx)) => {
                        let Some(ws) = link.awake(cfg) else { break End::Gone };
                        let backlog = Backlogged { backlog: &backlog, queued: Some(&outbound) };
                        if let Err(end) = Box::pin(send(ws, message, cfg, backlog)).await {
                            break end;
                        }
                        self.registry.count(Transport::WebSocket, Event::MessageOut);
                    }
                    Some(()) = std::future::poll_fn(|cx| calls.poll_join_next(cx)), if !calls.is_empty() => {}
                    () = std::future::poll_fn(|cx| outbound.poll_overflowed(cx)) => {
                        break End::Close(CloseCode::Policy, "client is not reading: too many bytes queued");
                    }
                    () = &mut shutdown, if !draining => draining = true,
                    event = super::next_event(&mut events), if events.is_some() => {
                        // After what the peer queue holds (it comes first above).
                        let Some(message) = event.and_then(|e| session.notification_for(&e)) else {
                            continue;
                        };
                        let Some(ws) = link.awake(cfg) else { break End::Gone };
                        let backlog = Backlogged { backlog: &backlog, queued: Some(&outbound) };
                        if let Err(end) = Box::pin(send(ws, message, cfg, backlog)).await {
                            break end;
                        }
                        self.registry.count(Transport::WebSocket, Event::MessageOut);
                    }
                    input = std::future::poll_fn(|cx| link.poll_input(cx)), if !draining && calls.len() < cfg.max_in_flight => {
                        last_heard = Instant::now();
                        pinged = false;
                        let incoming = match input {
                            Input::Frame(incoming) => incoming,
                            Input::Woke(Ok(part)) if !part.is_empty() => {
                                if link.wake(part, cfg).is_none() {
                                    break End::Gone;
                                }
                                // Awake again: the next doze check comes
                                // after the doze time, not at the next ping.
                                tick.as_mut().reset(next_tick(cfg, last_heard, pinged, true));
                                continue;
                            }
                            Input::Woke(Ok(_)) => break End::Gone,
                            Input::Woke(Err(e)) => break read_error(&WsError::Io(e)),
                        };
                        let Some(ws) = link.awake(cfg) else { break End::Gone };
                        // Boxed, as are the sends above: their state (a
                        // message's dispatch, a write under a timer) would
                        // otherwise set the size of every idle socket's.
                        if let Err(end) =
                            Box::pin(self.receive(incoming, ws, &session, &peer, &mut calls, client, &backlog)).await
                        {
                            break end;
                        }
                    }
                    () = &mut tick => {
                        let silence = last_heard.elapsed();
                        if silence >= cfg.ping_interval + cfg.pong_timeout {
                            break End::Dead;
                        }
                        if silence >= cfg.ping_interval && !pinged {
                            let Some(ws) = link.awake(cfg) else { break End::Gone };
                            if let Err(end) = Box::pin(send_message(ws, Message::Ping(Default::default()), cfg)).await {
                                break end;
                            }
                            pinged = true;
                        }
                        if link.is_awake() && calls.is_empty() && silence >= doze_after(cfg) {
                            self.doze(&mut link).await;
                        }
                        tick.as_mut().reset(next_tick(cfg, last_heard, pinged, link.is_awake()));
                    }
                }
            };
            if matches!(
                end,
                End::Close(CloseCode::Policy, _) | End::Stalled(_) | End::Cut
            ) {
                self.registry
                    .count(Transport::WebSocket, Event::ClosedNotReading);
            }
            // Calls still running are cancelled: their futures are dropped.
            calls.abort_all();
            // What waits for the client goes now, not after the close.
            drop(outbound);
            drop(session);
            Box::pin(close_link(link, end, cfg)).await;
        }
    }
}

/// A received frame's text; `Ok(None)` for frames that carry no message
/// (pings, pongs), or how the session ends.
fn text_of(
    incoming: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<tokio_tungstenite::tungstenite::Utf8Bytes>, End> {
    match incoming {
        None => Err(End::Gone),
        Some(Err(e)) => Err(read_error(&e)),
        Some(Ok(Message::Text(text))) => Ok(Some(text)),
        Some(Ok(Message::Binary(_))) => Err(End::Close(
            CloseCode::Unsupported,
            "binary frames are not MCP messages",
        )),
        // The close reply is queued by tungstenite and sent as the stream is polled on.
        Some(Ok(Message::Close(_))) => Err(End::Gone),
        Some(Ok(_)) => Ok(None),
    }
}

/// The WebSocket over the upgraded stream, with the endpoint's limits
/// (bytes the client sent right after its handshake are read first).
fn open_stream(
    stream: crate::http::BoxedIo,
    read_ahead: &[u8],
    cfg: &WsConfig,
    budget: &Arc<crate::budget::ByteBudget>,
) -> impl Future<Output = Ws> + Send + use<> {
    let watched = Watched::new(stream, read_ahead, budget, cfg.max_message_bytes);
    WebSocketStream::from_partially_read(
        watched,
        read_ahead.to_vec(),
        Role::Server,
        Some(ws_config(cfg)),
    )
}

/// tungstenite's settings for the endpoint's limits.
fn ws_config(cfg: &WsConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(cfg.read_buffer_bytes)
        // Every message is flushed as it is sent; the bound below then
        // caps what one message may hold.
        .write_buffer_size(0)
        .max_write_buffer_size(cfg.max_outgoing_bytes.max(1))
        .max_message_size(Some(cfg.max_message_bytes))
        .max_frame_size(Some(cfg.max_message_bytes))
}

/// [`close`] for a socket awake or dozing: a dozing one is woken for its
/// close frame, unless its client is gone (it needs no close reply).
async fn close_link(link: Link, end: End, cfg: &WsConfig) {
    let ws = if matches!(end, End::Gone) {
        link.into_ws()
    } else {
        link.into_awake(cfg)
    };
    if let Some(ws) = ws {
        close(ws, end, cfg).await;
    }
}

/// Ends a socket as `end` says: a close frame where one is due, then
/// reading on until the peer's close arrives (bounded by the close
/// timeout), so the closing handshake completes cleanly.
async fn close(mut ws: Ws, end: End, cfg: &WsConfig) {
    let end = match end {
        End::Stalled(rest) => {
            // Within the close's own time limit, as the close frame is.
            let io = ws.get_mut();
            match timeout(cfg.close_timeout, io.write_all(&rest)).await {
                Ok(Ok(())) => End::Close(CloseCode::Policy, NOT_READING),
                _ => return,
            }
        }
        end => end,
    };
    match end {
        End::Gone | End::Stalled(_) => {}
        End::Cut => return,
        End::Close(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = timeout(cfg.close_timeout, ws.close(Some(frame))).await;
        }
        End::Dead => {
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "no answer to ping".into(),
            };
            let _ = timeout(cfg.send_timeout, ws.close(Some(frame))).await;
            return;
        }
    }
    let _ = timeout(cfg.close_timeout, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends one JSON-RPC message as a text frame. A large one is not copied
/// behind its header: the header and the message go to the socket as they
/// are (a copy of megabytes is a stretch in which this worker gives way to
/// no one).
async fn send(
    ws: &mut Ws,
    message: Vec<u8>,
    cfg: &WsConfig,
    backlog: Backlogged<'_>,
) -> Result<(), End> {
    let mut frames = Vec::new();
    if message.len() < IO_PIECE {
        frame_into(&mut frames, &message, cfg)?;
        return write_frames(ws, &frames, &[], cfg, backlog).await;
    }
    header_into(&mut frames, &message, cfg)?;
    write_frames(ws, &frames, &message, cfg, backlog).await
}

/// Where a socket whose client stops taking its frames counts what waits
/// (the frames being written and its queue, when there is one to count).
#[derive(Clone, Copy)]
struct Backlogged<'a> {
    backlog: &'a Arc<Backlog>,
    queued: Option<&'a PeerReceiver>,
}

impl Backlogged<'_> {
    /// Bytes waiting for the client: `writing` and what is queued behind.
    fn waiting(&self, writing: usize) -> usize {
        writing + self.queued.map_or(0, PeerReceiver::queued_bytes)
    }
}

/// How often a socket waiting on its client's full socket counts again
/// what it holds (its queue grows while it waits).
const RECOUNT: std::time::Duration = std::time::Duration::from_millis(50);

/// The most answer bytes gathered for one write: past it, what was framed
/// is written before another message is read.
const BATCH_BYTES: usize = 16 * 1024;

/// Appends one JSON-RPC message to `frames` as a text frame (tungstenite's
/// encoding).
fn frame_into(frames: &mut Vec<u8>, message: &[u8], cfg: &WsConfig) -> Result<(), End> {
    frames.reserve(message.len() + 14);
    header_into(frames, message, cfg)?;
    frames.extend_from_slice(message);
    Ok(())
}

/// Appends the header of a text frame carrying `message` to `frames`.
fn header_into(frames: &mut Vec<u8>, message: &[u8], cfg: &WsConfig) -> Result<(), End> {
    // Our writers only produce UTF-8; refuse rather than send a broken frame.
    if std::str::from_utf8(message).is_err() {
        return Err(End::Close(CloseCode::Error, "internal error"));
    }
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let length = message.len() as u64;
    if header.len(length) + message.len() > cfg.max_outgoing_bytes.max(1) {
        return Err(End::Close(
            CloseCode::Size,
            "answer too large for this socket",
        ));
    }
    if header.format(length, frames).is_err() {
        return Err(End::Close(CloseCode::Error, "internal error"));
    }
    Ok(())
}

/// Writes whole frames (`head`, then `body`: the payload of `head`'s last
/// frame, when it was not copied behind it) straight to the socket, after
/// whatever tungstenite holds (a pong, say), not through its write buffer:
/// that buffer would keep the size of the largest answer for the socket's
/// life (about 500 bytes of every idle socket), and the frames would be
/// copied into it. A client that takes none of it within
/// the send timeout is closed with 1008; one that stalls inside it gets
/// the rest first ([`End::Stalled`]).
async fn write_frames(
    ws: &mut Ws,
    head: &[u8],
    body: &[u8],
    cfg: &WsConfig,
    backlog: Backlogged<'_>,
) -> Result<(), End> {
    let parts = [head, body];
    let writing = head.len() + body.len();
    // Bytes written of each part.
    let mut written = [0usize; 2];
    let write = async {
        // tungstenite's own frames first, whole: the stream is then ours
        // until the next frame boundary.
        ws.flush().await.map_err(|_| End::Gone)?;
        let io = ws.get_mut();
        // Joined once the client's socket is full and enough waits.
        let mut stalled: Option<Stalled> = None;
        for (part, written) in parts.iter().zip(written.iter_mut()) {
            while *written < part.len() {
                // A piece at a time, giving way after each whole one: the
                // kernel copies all a write offers before anyone else on
                // this CPU runs (see `crate::util::give_way`).
                let piece = &part[*written..part.len().min(*written + IO_PIECE)];
                let done = match futures_util::FutureExt::now_or_never(io.write(piece)) {
                    Some(done) => done,
                    None => loop {
                        let waiting = backlog.waiting(writing);
                        if waiting < COUNTED_FROM && stalled.is_none() {
                            break io.write(piece).await;
                        }
                        let stalled = stalled.get_or_insert_with(|| Stalled::new(backlog.backlog));
                        stalled.wait(waiting, false);
                        tokio::select! {
                            done = io.write(piece) => break done,
                            // Dropped at once: a close frame would wait
                            // behind what it does not read.
                            () = stalled.cut() => return Err(End::Cut),
                            () = tokio::time::sleep(RECOUNT) => {}
                        }
                    },
                };
                match done {
                    Ok(0) | Err(_) => return Err(End::Gone),
                    Ok(n) => {
                        *written += n;
                        if let Some(stalled) = &mut stalled {
                            // The client took some: the newest waiter again.
                            stalled.wait(backlog.waiting(writing), true);
                        }
                        if n == IO_PIECE {
                            crate::util::give_way().await;
                        }
                    }
                }
            }
        }
        io.flush().await.map_err(|_| End::Gone)
    };
    match timeout(cfg.send_timeout, write).await {
        Ok(done) => done,
        Err(_) if written.iter().all(|&n| n == 0) => {
            Err(End::Close(CloseCode::Policy, NOT_READING))
        }
        Err(_) => Err(End::Stalled(
            parts
                .iter()
                .zip(written)
                .flat_map(|(part, n)| &part[n..])
                .copied()
                .collect(),
        )),
    }
}

/// The shortest doze time: a shorter one would wake an awake socket's
/// timer without pause.
const MIN_DOZE_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a client may be silent before its socket dozes.
fn doze_after(cfg: &WsConfig) -> std::time::Duration {
    cfg.doze_after.max(MIN_DOZE_AFTER)
}

/// When a socket's timer next fires: a ping due after a ping interval of
/// the client's silence, the dead-peer check a pong timeout after the
/// ping, and, while the socket is awake, the check whether it may doze
/// (a doze time after the client was last heard, or from now when that
/// is past: a call was running, or tungstenite held something).
fn next_tick(cfg: &WsConfig, last_heard: Instant, pinged: bool, awake: bool) -> Instant {
    let silence_limit = if pinged {
        cfg.ping_interval + cfg.pong_timeout
    } else {
        cfg.ping_interval
    };
    let due = last_heard + silence_limit;
    if !awake {
        return due;
    }
    let (now, after) = (Instant::now(), doze_after(cfg));
    let doze_check = if last_heard + after > now {
        last_heard + after
    } else {
        now + after
    };
    due.min(doze_check)
}

/// The reason of a close for not reading (1008).
const NOT_READING: &str = "client is not reading";

/// Sends a frame, taking a client that does not read within the send
/// timeout for one that never will (close 1008).
async fn send_message(ws: &mut Ws, message: Message, cfg: &WsConfig) -> Result<(), End> {
    match timeout(cfg.send_timeout, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(WsError::WriteBufferFull(_))) => Err(End::Close(
            CloseCode::Size,
            "answer too large for this socket",
        )),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => Err(End::Close(CloseCode::Policy, NOT_READING)),
    }
}

/// The close that answers a read error.
fn read_error(e: &WsError) -> End {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            End::Close(CloseCode::Size, "message too large")
        }
        WsError::Capacity(_) => End::Close(CloseCode::Size, "frame too large"),
        WsError::Utf8(_) => End::Close(CloseCode::Invalid, "text frame is not UTF-8"),
        WsError::Protocol(_) => End::Close(CloseCode::Protocol, "protocol error"),
        WsError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<OverBudget>()) => End::Close(
            CloseCode::Again,
            "server busy: too many large messages at once; retry later",
        ),
        _ => End::Gone,
    }
}

/// Settings of the WebSocket endpoint.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Default: 4 MiB. Frames and messages past 64 KiB count against the
    /// server's bound on large request bodies held at once
    /// ([`crate::Config::max_large_bodies_bytes`], 64 MiB by default):
    /// HTTP bodies and WebSocket messages share that one budget, so
    /// clients that hold both open cannot hold twice it. A socket whose
    /// next large frame would pass it is closed with 1013 (try again later)
    /// before its payload is read; one socket alone may pass it, so one
    /// message of this size always fits.
    pub max_message_bytes: usize,
    /// Default: 64 MiB.
    pub max_outgoing_bytes: usize,
    /// Default: 30 s.
    pub ping_interval: std::time::Duration,
    /// Default: 30 s.
    pub pong_timeout: std::time::Duration,
    /// Default: 256.
    pub outbound_queue: usize,
    /// Most bytes of messages one socket queues for its client. Past it,
    /// the socket is closed with 1008. All sockets' queues, with what their
    /// stalled writes hold, also count against the server's one backlog
    /// bound ([`crate::Config::max_backlog_bytes`]). Default: 16 MiB.
    pub max_queued_bytes: usize,
    /// Default: 10 s.
    pub send_timeout: std::time::Duration,
    /// Default: 256.
    pub max_in_flight: usize,
    /// Default: 5 s.
    pub close_timeout: std::time::Duration,
    /// Default: 768 bytes.
    pub read_buffer_bytes: usize,
    /// How long a client may be silent, with no call of its socket
    /// running, before its socket dozes: tungstenite's side (its state and
    /// read buffer, about 900 bytes) is dropped until the client's next bytes
    /// or the server's next message, which build it afresh. A socket dozes
    /// between this time and twice it after its client's last frame.
    /// Values under 10 ms count as 10 ms. Default: 250 ms.
    pub doze_after: std::time::Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_bytes: crate::ws::DEFAULT_MAX_MESSAGE_BYTES,
            max_outgoing_bytes: crate::ws::DEFAULT_MAX_OUTGOING_BYTES,
            ping_interval: crate::ws::DEFAULT_PING_INTERVAL,
            pong_timeout: crate::ws::DEFAULT_PONG_TIMEOUT,
            outbound_queue: crate::ws::DEFAULT_OUTBOUND_QUEUE,
            max_queued_bytes: crate::ws::DEFAULT_MAX_QUEUED_BYTES,
            send_timeout: crate::ws::DEFAULT_SEND_TIMEOUT,
            max_in_flight: crate::ws::DEFAULT_MAX_IN_FLIGHT,
            close_timeout: crate::ws::DEFAULT_CLOSE_TIMEOUT,
            read_buffer_bytes: crate::ws::DEFAULT_READ_BUFFER_BYTES,
            doze_after: crate::ws::DEFAULT_DOZE_AFTER,
        }
    }
}
