//! MCP's Streamable HTTP transport on the crate's own HTTP engine.
//!
//! One endpoint (`/mcp` by convention). A POST carries one JSON-RPC message:
//! notifications and responses get 202; requests get `application/json`,
//! or `text/event-stream` when they run host code (a tool call, a read, a
//! prompt), so progress, log messages and requests to the client travel on
//! that request's own stream before its answer.
//!
//! Sessions (handshake versions): `initialize` creates one and its id comes
//! back in `MCP-Session-Id`; later requests without it get 400, with an
//! unknown one 404; DELETE ends it; GET opens a stream of the session's
//! server-initiated messages, or with `Last-Event-ID` resumes a response
//! stream the client lost (from a bounded record of the session's streams). 2026-07-28 requests (`MCP-Protocol-Version:
//! 2026-07-28`) need no session and have no GET stream (405).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::replay::{Catchup, Replay, ReplayBudget, parse_event_id};
use crate::guard::Admission;
use crate::http::sse::Event;
use crate::http::{Handler, Method, Reply, Request, Response, Router};
use crate::jsonrpc::{
    INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Message, PARSE_ERROR, RpcError, parse,
};
use crate::mcp::{
    Dispatched, MISSING_CLIENT_CAPABILITY, McpServer, Peer, ProtocolVersion, Session,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use crate::registry::{self, Registration, Registry, Transport};

/// Most sessions kept at once; past it the least recently used session of
/// the principal with the most sessions is closed to make room. Default: 10 000.
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Most sessions one principal (a key, or a client address when there are
/// no keys) keeps at once; past it its own least recently used session is
/// closed to make room. Default: 1 000.
pub(crate) const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 1_000;
pub(crate) use super::replay::{DEFAULT_BYTES_PER_SESSION, DEFAULT_BYTES_TOTAL};
/// Messages of one request's stream queued before the call waits. Default: 64.
const STREAM_QUEUE: usize = 64;
/// The reconnection delay announced in the priming event, in ms. Default: 1000.
const RETRY_MS: u64 = 1000;

/// Settings of the Streamable HTTP endpoint.
#[derive(Clone, Debug)]
pub struct HttpMcpConfig {
    /// Most sessions at once. Default: 10 000.
    pub max_sessions: usize,
    /// Most sessions of one principal at once. Default: 1 000.
    pub max_sessions_per_principal: usize,
    /// Bytes of answers kept per session for `Last-Event-ID` resumption.
    /// Default: 4 MiB.
    pub replay_bytes_per_session: usize,
    /// Bytes of answers kept for resumption across all sessions. Default:
    /// 64 MiB.
    pub replay_bytes_total: usize,
    /// A session unused this long expires (its id then gets 404). Default: 30 minutes.
    pub session_idle: Duration,
}

impl Default for HttpMcpConfig {
    fn default() -> Self {
        HttpMcpConfig {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
            replay_bytes_per_session: DEFAULT_BYTES_PER_SESSION,
            replay_bytes_total: DEFAULT_BYTES_TOTAL,
            session_idle: DEFAULT_SESSION_IDLE,
        }
    }
}

/// How long an unused session lives. Default: 30 minutes.
pub(crate) const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

struct Entry {
    session: Arc<Session>,
    /// Who opened it: only requests of the same principal may use it.
    principal: String,
    /// Unregisters the session from the connection manager when the entry goes.
    _registration: Registration,
    last_used: Instant,
    /// The session's response streams, for `Last-Event-ID` resumption.
    replay: Arc<Replay>,
    /// Dropped with the entry: GET streams of the session watch it and end.
    _ended: tokio::sync::watch::Sender<()>,
    ended: tokio::sync::watch::Receiver<()>,
}

/// The Streamable HTTP endpoint, shared by every connection.
pub struct StreamableHttp {
    server: McpServer,
    /// Live sessions by id. A std mutex: held to insert, look up or remove,
    /// never across an `.await`.
    sessions: Mutex<HashMap<String, Entry>>,
    config: HttpMcpConfig,
    admission: Admission,
    registry: Arc<Registry>,
    /// The byte bounds every session's replay record shares.
    replay_budget: Arc<ReplayBudget>,
}

impl std::fmt::Debug for StreamableHttp {
    // Session ids are bearer secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamableHttp")
            .field("sessions", &self.session_count())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StreamableHttp {
    /// An endpoint serving `server` with the default settings.
    pub fn new(server: McpServer) -> Arc<StreamableHttp> {
        StreamableHttp::with_config(server, HttpMcpConfig::default())
    }

    /// An endpoint serving `server` with these settings.
    pub fn with_config(server: McpServer, config: HttpMcpConfig) -> Arc<StreamableHttp> {
        StreamableHttp::wired(server, config, Admission::default(), Registry::new())
    }

    /// An endpoint that admits requests by `admission` (the service's one
    /// policy: `Host` and `Origin` 403, bearer keys 401, per-address rate
    /// 429) and registers its sessions in `registry` (shared with the
    /// [`crate::Server`] and other transports).
    pub(crate) fn wired(
        server: McpServer,
        config: HttpMcpConfig,
        admission: Admission,
        registry: Arc<Registry>,
    ) -> Arc<StreamableHttp> {
        let replay_budget =
            ReplayBudget::new(config.replay_bytes_per_session, config.replay_bytes_total);
        Arc::new(StreamableHttp {
            server,
            sessions: Mutex::new(HashMap::new()),
            config,
            admission,
            registry,
            replay_budget,
        })
    }

    /// Adds the endpoint's routes at `path` to `router`.
    pub fn routes(self: &Arc<Self>, router: Router, path: &str) -> Router {
        router
            .route_shared(Method::Post, path, Arc::new(Post(Arc::clone(self))))
            .route_shared(Method::Delete, path, Arc::new(Delete(Arc::clone(self))))
            .route_shared(Method::Get, path, Arc::new(Get(Arc::clone(self))))
    }

    /// How many sessions are open (expired ones included until they are swept).
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock()
    }

    /// The live session `principal` opened, and a receiver that closes
    /// when the session ends. Another principal's session is not found.
    fn session_entry(
        &self,
        id: &str,
        principal: &str,
    ) -> Option<(Arc<Session>, tokio::sync::watch::Receiver<()>, Arc<Replay>)> {
        let mut sessions = self.lock();
        let entry = sessions.get_mut(id)?;
        if entry.principal != principal {
            return None;
        }
        if entry.last_used.elapsed() > self.config.session_idle {
            sessions.remove(id);
            self.registry
                .count(Transport::StreamableHttp, registry::Event::Expired);
            return None;
        }
        entry.last_used = Instant::now();
        Some((
            Arc::clone(&entry.session),
            entry.ended.clone(),
            Arc::clone(&entry.replay),
        ))
    }

    /// Removes the session `id` if `principal` opened it.
    fn remove(&self, id: &str, principal: &str) -> bool {
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(entry) if entry.principal == principal => sessions.remove(id).is_some(),
            _ => false,
        }
    }

    /// Adds a session, first sweeping out expired ones. A principal at its
    /// cap gives up its least recently used session; a full table gives up
    /// the least recently used session of the principal holding the most.
    fn insert(&self, id: String, session: Arc<Session>, principal: &str) {
        let idle = self.config.session_idle;
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, e| e.last_used.elapsed() <= idle);
        for _ in sessions.len()..before {
            self.registry
                .count(Transport::StreamableHttp, registry::Event::Expired);
        }
        let mine = sessions
            .values()
            .filter(|e| e.principal == principal)
            .count();
        if mine >= self.config.max_sessions_per_principal.max(1) {
            evict_lru(&mut sessions, principal, &self.registry);
        } else if sessions.len() >= self.config.max_sessions.max(1) {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for e in sessions.values() {
                *counts.entry(e.principal.as_str()).or_default() += 1;
            }
            let busiest = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(p, _)| p.to_owned());
            if let Some(busiest) = busiest {
                evict_lru(&mut sessions, &busiest, &self.registry);
            }
        }
        let (ended_tx, ended) = tokio::sync::watch::channel(());
        let registration = self.registry.register(Transport::StreamableHttp);
        sessions.insert(
            id,
            Entry {
                session,
                principal: principal.to_owned(),
                _registration: registration,
                last_used: Instant::now(),
                _ended: ended_tx,
                ended,
                replay: Arc::new(Replay::new(Arc::clone(&self.replay_budget))),
            },
        );
    }
}

/// Closes the least recently used session of `principal` (its id then gets
/// 404); counted with the expired sessions.
fn evict_lru(sessions: &mut HashMap<String, Entry>, principal: &str, registry: &Registry) {
    let oldest = sessions
        .iter()
        .filter(|(_, e)| e.principal == principal)
        .min_by_key(|(_, e)| e.last_used)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        sessions.remove(&id);
        registry.count(Transport::StreamableHttp, registry::Event::Expired);
    }
}

/// The HTTP status a 2026-07-28 answer carries: errors that mean "no such
/// method" are 404, malformed or unsupported requests 400.
fn modern_status(answer: &[u8]) -> u16 {
    match parse(answer) {
        Ok(Message::Response(r)) => match r.outcome {
            Err(error) => {
                let code = serde_json::from_str::<serde_json::Value>(error.get())
                    .ok()
                    .and_then(|e| e["code"].as_i64());
                match code.and_then(|c| i32::try_from(c).ok()) {
                    Some(METHOD_NOT_FOUND) => 404,
                    Some(
                        INVALID_PARAMS
                        | INVALID_REQUEST
                        | PARSE_ERROR
                        | MISSING_CLIENT_CAPABILITY
                        | UNSUPPORTED_PROTOCOL_VERSION,
                    ) => 400,
                    _ => 200,
                }
            }
            Ok(_) => 200,
        },
        _ => 200,
    }
}

/// A JSON-RPC error answer with an HTTP status.
fn rpc_error(status: u16, code: i32, message: &str) -> Response {
    super::error_response(status, None, &RpcError::new(code, message))
}

impl StreamableHttp {
    /// The checks every `/mcp` request passes first: Origin and Host (DNS
    /// rebinding, see [`super::origin`]; 403), then the bearer key (401) and
    /// the client's rate (429). The key's scope, or the refusal to send.
    fn admit(&self, req: &Request<'_>) -> Result<crate::guard::Admitted, Box<Response>> {
        self.admission.check_host(req, true)?;
        self.admission.admit(req)
    }
}

/// Whether an Accept header allows the answers this endpoint sends.
fn accepts_mcp(accept: &[u8]) -> bool {
    let accept = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let allows = |t: &str| accept.contains(t) || accept.contains("*/*");
    allows("application/json") && allows("text/event-stream")
}

/// 2026-07-28: `Mcp-Method` must name the body's method, `Mcp-Name` the tool,
/// resource or prompt, and `MCP-Protocol-Version` the body's `_meta` version
/// (400 with -32020 on a mismatch).
/// Returns the refusal to send, if any.
fn check_modern_headers(req: &Request<'_>, body: &[u8], server: &McpServer) -> Option<Response> {
    let Ok(Message::Request(r)) = parse(body) else {
        return None;
    };
    let id = Some(r.id);
    let mismatch = |what: &str| {
        let error = RpcError::new(HEADER_MISMATCH, format!("header mismatch: {what}"));
        Some(super::error_response(400, id, &error))
    };
    let invalid = |what: &str| {
        let error = RpcError::new(INVALID_PARAMS, format!("invalid params: {what}"));
        Some(super::error_response(400, id, &error))
    };
    let params: serde_json::Value = r
        .params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let meta = &params["_meta"];
    if !meta.is_object() {
        return invalid("a 2026-07-28 request needs _meta");
    }
    let meta_version = meta[crate::mcp::version::PROTOCOL_VERSION_META_KEY].as_str();
    let Some(meta_version) = meta_version else {
        return invalid("_meta needs io.modelcontextprotocol/protocolVersion");
    };
    if !meta["io.modelcontextprotocol/clientCapabilities"].is_object() {
        return invalid("_meta needs io.modelcontextprotocol/clientCapabilities");
    }
    if meta_version != "2026-07-28" {
        return mismatch("MCP-Protocol-Version differs from the body's _meta version");
    }
    match req.header("mcp-method") {
        Some(m) if m == r.method.as_bytes() => {}
        Some(_) => return mismatch("Mcp-Method differs from the body's method"),
        None => return mismatch("Mcp-Method is missing"),
    }
    let named = match &*r.method {
        "tools/call" | "prompts/get" => params["name"].as_str(),
        "resources/read" => params["uri"].as_str(),
        "tasks/get" | "tasks/update" | "tasks/cancel" => params["taskId"].as_str(),
        _ => return None,
    };
    let header = req.header("mcp-name").map(String::from_utf8_lossy);
    match (header, named) {
        (Some(h), Some(n)) if h == n => {}
        (None, _) => return mismatch("Mcp-Name is missing"),
        _ => return mismatch("Mcp-Name differs from the body"),
    }
    if r.method == "tools/call"
        && let Some(tool) = named.and_then(|n| server.tool_header_params(n))
    {
        for (property, suffix) in tool {
            let header_name = format!("mcp-param-{suffix}");
            let header = req.header(&header_name);
            let argument = &params["arguments"][&property];
            if let Err(why) = check_param_header(header, argument) {
                return mismatch(&format!("Mcp-Param-{suffix} {why}"));
            }
        }
    }
    None
}

/// SEP-2243: a header that mirrors a tool argument must be there exactly
/// when the argument is, and say the same; `=?base64?...?=` values are
/// decoded (canonical padding, standard alphabet), others taken literally.
fn check_param_header(
    header: Option<&[u8]>,
    argument: &serde_json::Value,
) -> Result<(), &'static str> {
    use base64::Engine as _;
    let header = match header {
        None if argument.is_null() => return Ok(()),
        None => return Err("is missing but the argument is in the body"),
        Some(h) => h,
    };
    let text = std::str::from_utf8(header).map_err(|_| "is not UTF-8")?;
    let decoded = match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| "is not valid base64")?;
            String::from_utf8(bytes).map_err(|_| "does not decode to UTF-8")?
        }
        None => text.to_owned(),
    };
    let expected = match argument {
        serde_json::Value::Null => return Err("is sent but the argument is not in the body"),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if decoded == expected {
        Ok(())
    } else {
        Err("differs from the argument in the body")
    }
}

/// JSON-RPC code for a header that disagrees with the body (2026-07-28).
pub(crate) const HEADER_MISMATCH: i32 = -32020;

/// A session id: 128 bits from the operating system's CSPRNG, as hex.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

struct Post(Arc<StreamableHttp>);

impl Handler for Post {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let endpoint = &self.0;
        let admitted = match endpoint.admit(&req) {
            Ok(admitted) => admitted,
            Err(refused) => return Reply::ready(*refused),
        };
        if let Some(accept) = req.header("accept")
            && !accepts_mcp(accept)
        {
            return Reply::ready(rpc_error(
                406,
                INVALID_REQUEST,
                "Accept must allow application/json and text/event-stream",
            ));
        }
        let content_type = req.header("content-type").unwrap_or_default();
        if !content_type.starts_with(b"application/json") {
            return Reply::ready(rpc_error(
                415,
                INVALID_REQUEST,
                "Content-Type must be application/json",
            ));
        }
        let version = req.header("mcp-protocol-version");
        let modern = version == Some(&b"2026-07-28"[..]);
        if let Some(v) = version
            && std::str::from_utf8(v)
                .ok()
                .and_then(ProtocolVersion::parse)
                .is_none()
        {
            let error = RpcError::new(
                UNSUPPORTED_PROTOCOL_VERSION,
                "unsupported MCP-Protocol-Version",
            )
            .with_data(format!(
                r#"{{"supported":{},"requested":{}}}"#,
                crate::mcp::version::supported_json(),
                serde_json::Value::from(String::from_utf8_lossy(v))
            ));
            let id = match parse(req.body()) {
                Ok(Message::Request(r)) => Some(r.id),
                _ => None,
            };
            return Reply::ready(super::error_response(400, id, &error));
        }
        let body = req.body();
        if modern && let Some(mismatch) = check_modern_headers(&req, body, &endpoint.server) {
            return Reply::ready(mismatch);
        }
        let (session, new_id, replay) = if modern {
            let session = Arc::new(Session::new(endpoint.server.clone(), None));
            session.set_transport("http");
            session.set_principal(&admitted.principal);
            // No session across requests: the connection is the party.
            session.set_party(&format!("conn-{}", req.remote_addr()));
            (session, None, None)
        } else {
            match req.header("mcp-session-id") {
                Some(id) => {
                    let id = std::str::from_utf8(id).unwrap_or_default();
                    match endpoint.session_entry(id, &admitted.principal) {
                        Some((s, _, replay)) => (s, None, Some(replay)),
                        None => {
                            return Reply::ready(rpc_error(
                                404,
                                INVALID_REQUEST,
                                "unknown or expired session",
                            ));
                        }
                    }
                }
                None => {
                    let is_initialize =
                        matches!(parse(body), Ok(Message::Request(r)) if r.method == "initialize");
                    if !is_initialize {
                        return Reply::ready(rpc_error(
                            400,
                            INVALID_REQUEST,
                            "missing MCP-Session-Id (send initialize first)",
                        ));
                    }

                    let Some(id) = new_session_id() else {
                        return Reply::ready(rpc_error(
                            500,
                            INVALID_REQUEST,
                            "no randomness for a session id",
                        ));
                    };
                    let session = Arc::new(Session::new(endpoint.server.clone(), None));
                    session.set_transport("http");
                    session.set_principal(&admitted.principal);
                    endpoint.insert(id.clone(), Arc::clone(&session), &admitted.principal);
                    (session, Some(id), None)
                }
            }
        };
        if admitted.scope == crate::guard::auth::Scope::ReadOnly {
            session.restrict_to_read_only();
        }
        let mut out = Vec::new();
        let dispatched = session.dispatch(body, &mut out);
        let with_id = |r: Response| match &new_id {
            Some(id) => r
                .try_header("mcp-session-id", id)
                .unwrap_or_else(|_| Response::new(500)),
            None => r,
        };
        match dispatched {
            Dispatched::Done if out.is_empty() => Reply::ready(with_id(Response::new(202))),
            Dispatched::Done => {
                let status = if modern { modern_status(&out) } else { 200 };
                Reply::ready(with_id(Response::json(status, out)))
            }
            Dispatched::Batch => Reply::new(async move {
                match session.handle(body).await {
                    Some(answer) => Response::json(200, answer),
                    None => Response::new(202),
                }
            }),
            Dispatched::Call(call) => {
                let (peer, mut messages) = Peer::channel(STREAM_QUEUE);
                let call = call.into_owned(&session).with_peer(peer);
                let stream_id = call.id().to_owned();
                let mut run: RunningCall = Box::pin(call.run());
                if !modern {
                    let (response, events) = Response::sse(STREAM_QUEUE);
                    let stream = CallStream {
                        id: stream_id,
                        events,
                        replay,
                        cancel_on_close: false,
                    };
                    tokio::spawn(stream.run(run, messages, None));
                    return Reply::ready(with_id(response));
                }
                // 2026-07-28: a call that says nothing before its answer gets
                // a plain JSON answer (with the HTTP status its error calls
                // for); one that streams first gets SSE.
                Reply::new(async move {
                    tokio::select! {
                        answer = &mut run => match answer {
                            Some(answer) => Response::json(modern_status(&answer), answer),
                            None => Response::new(202),
                        },
                        Some(first) = messages.recv() => {
                            let (response, events) = Response::sse(STREAM_QUEUE);
                            let stream = CallStream {
                                id: stream_id,
                                events,
                                replay,
                                cancel_on_close: true,
                            };
                            tokio::spawn(stream.run(run, messages, Some(first)));
                            response
                        }
                    }
                })
            }
        }
    }
}

/// A call's answer, once it runs to its end (`None`: cancelled).
type RunningCall = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send>>;

/// The SSE stream of one call: its messages, then its answer.
struct CallStream {
    /// The call's request id; event ids are `<id>-<n>`.
    id: String,
    events: crate::http::sse::SseSender,
    replay: Option<Arc<Replay>>,
    /// 2026-07-28: the client closing the stream cancels the call. Before,
    /// a dropped stream is not a cancellation: the call runs to its end and
    /// what it would have sent is discarded (and kept for resumption).
    cancel_on_close: bool,
}

impl CallStream {
    /// Sends the priming event, `first` (a message already taken from the
    /// call), then the call's messages and answer as they come.
    async fn run(
        self,
        mut run: RunningCall,
        mut messages: crate::mcp::PeerReceiver,
        first: Option<Vec<u8>>,
    ) {
        let CallStream {
            id: stream_id,
            events,
            replay,
            cancel_on_close,
        } = self;
        if let Some(r) = &replay {
            r.open(&stream_id);
        }
        let mut n = 0u64;
        let mut open = true;
        let mut send = async |data: &[u8], open: &mut bool| {
            n += 1;
            if replay.is_none() && !*open {
                return;
            }
            let id = format!("{stream_id}-{n}");
            let text = String::from_utf8_lossy(data);
            let event = if data.is_empty() {
                Event::new("")
                    .id(&id)
                    .retry(Duration::from_millis(RETRY_MS))
            } else {
                Event::new(&text).id(&id)
            };
            // Encoded once: the live stream and the record share the bytes.
            let Ok(encoded) = event.to_bytes() else {
                return;
            };
            // Kept for a client that comes back with Last-Event-ID, open stream or not.
            if let Some(r) = &replay
                && !data.is_empty()
            {
                r.record(&stream_id, n, encoded.clone());
            }
            if *open && events.send_encoded(encoded).await.is_err() {
                *open = false;
            }
        };
        // The priming event: an id to resume from and the retry delay.
        send(b"", &mut open).await;
        if let Some(first) = first {
            send(&first, &mut open).await;
        }
        loop {
            if !open && cancel_on_close {
                return;
            }
            tokio::select! {
                Some(message) = messages.recv() => send(&message, &mut open).await,
                answer = &mut run => {
                    // Messages sent just before the answer go first.
                    while let Some(message) = messages.try_recv() {
                        send(&message, &mut open).await;
                    }
                    if let Some(answer) = answer {
                        send(&answer, &mut open).await;
                    }
                    if let Some(r) = &replay {
                        r.finish(&stream_id);
                    }
                    return;
                }
                () = events.closed(), if open => open = false,
            }
        }
    }
}

/// Sends the events of a recorded stream after `after`, then the rest as they
/// come, until the stream ends, the client leaves, or events it has not had
/// yet were dropped (the stream then ends: no gap is sent as if whole).
async fn resume_stream(
    replay: Arc<Replay>,
    stream: String,
    mut after: u64,
    events: crate::http::sse::SseSender,
) {
    loop {
        // Register interest before reading, so an append in between is not missed.
        let changed = replay.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Some(Catchup::Events { events: kept, done }) = replay.after(&stream, after) else {
            return;
        };
        for (n, encoded) in kept {
            if events.send_encoded(encoded).await.is_err() {
                return;
            }
            after = n;
        }
        if done {
            return;
        }
        tokio::select! {
            () = changed => {}
            () = events.closed() => return,
        }
    }
}

/// GET: a stream of the session's server-initiated messages (list changes,
/// resource updates), until the client leaves or the session ends.
struct Get(Arc<StreamableHttp>);

impl Handler for Get {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let endpoint = &self.0;
        let admitted = match endpoint.admit(&req) {
            Ok(admitted) => admitted,
            Err(refused) => return Reply::ready(*refused),
        };
        if req.header("mcp-protocol-version") == Some(&b"2026-07-28"[..]) {
            return Reply::ready(
                rpc_error(405, INVALID_REQUEST, "2026-07-28 has no GET stream")
                    .header("allow", "POST"),
            );
        }
        let accept = req.header("accept").unwrap_or_default();
        if !String::from_utf8_lossy(accept).contains("text/event-stream") {
            return Reply::ready(rpc_error(
                406,
                INVALID_REQUEST,
                "Accept must allow text/event-stream",
            ));
        }
        let Some(id) = req.header("mcp-session-id") else {
            return Reply::ready(rpc_error(400, INVALID_REQUEST, "missing MCP-Session-Id"));
        };
        let id = std::str::from_utf8(id).unwrap_or_default();
        let Some((session, mut ended, replay)) = endpoint.session_entry(id, &admitted.principal)
        else {
            return Reply::ready(rpc_error(
                404,
                INVALID_REQUEST,
                "unknown or expired session",
            ));
        };
        // Resumption of a response stream the client lost.
        let resume = req
            .header("last-event-id")
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(parse_event_id)
            .filter(|(stream, _)| replay.knows(stream))
            .map(|(stream, n)| (stream.to_owned(), n));
        if let Some((stream, after)) = &resume
            && matches!(replay.after(stream, *after), Some(Catchup::Gap))
        {
            return Reply::ready(rpc_error(
                409,
                INVALID_REQUEST,
                "cannot resume: events after this Last-Event-ID are no longer kept \
                 (the server keeps a bounded number of bytes per session); retry the request",
            ));
        }
        if let Some((stream, after)) = resume {
            let (response, events) = Response::sse(STREAM_QUEUE);
            tokio::spawn(resume_stream(replay, stream, after, events));
            return Reply::ready(response);
        }
        let mut server_events = endpoint.server.events();
        let (response, events) = Response::sse(STREAM_QUEUE);
        // The stream ends when the server shuts down (the client reconnects elsewhere).
        let shutdown = req.shutdown();
        tokio::spawn(async move {
            let stopping = async move {
                match shutdown {
                    Some(mut s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(stopping);
            let mut n = 0u64;
            let prime = Event::new("")
                .id("get-0")
                .retry(Duration::from_millis(RETRY_MS));
            if events.send(&prime).await.is_err() {
                return;
            }
            loop {
                let event = tokio::select! {
                    e = server_events.recv() => e,
                    _ = ended.changed() => return,
                    () = events.closed() => return,
                    () = &mut stopping => return,
                };
                let event = match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if let Some(message) = session.notification_for(&event) {
                    n += 1;
                    let text = String::from_utf8_lossy(&message);
                    let id = format!("get-{n}");
                    if events.send(&Event::new(&text).id(&id)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Reply::ready(response)
    }
}

struct Delete(Arc<StreamableHttp>);

impl Handler for Delete {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let admitted = match self.0.admit(&req) {
            Ok(admitted) => admitted,
            Err(refused) => return Reply::ready(*refused),
        };
        let Some(id) = req.header("mcp-session-id") else {
            return Reply::ready(rpc_error(400, INVALID_REQUEST, "missing MCP-Session-Id"));
        };
        let id = std::str::from_utf8(id).unwrap_or_default();
        let removed = self.0.remove(id, &admitted.principal);
        Reply::ready(if removed {
            Response::new(204)
        } else {
            rpc_error(404, INVALID_REQUEST, "unknown or expired session")
        })
    }
}
