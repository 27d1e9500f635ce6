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
use crate::http::{Handler, KnownHeader, Method, Reply, Request, Response, Router};
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
    /// Live sessions by id. A mutex held to insert, look up or remove,
    /// never across an `.await`.
    sessions: Mutex<SessionTable>,
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
        StreamableHttp::wired(
            server,
            config,
            Admission::default(),
            Registry::new(),
            &crate::budget::Memory::unbounded(),
        )
    }

    /// An endpoint that admits requests by `admission` (the service's one
    /// policy: `Host` and `Origin` 403, bearer keys 401, per-address rate
    /// 429) and registers its sessions in `registry` (shared with the
    /// [`crate::Server`] and other transports); what it keeps for
    /// resumption counts against `memory` (the service's budget over all
    /// its pools).
    pub(crate) fn wired(
        server: McpServer,
        config: HttpMcpConfig,
        admission: Admission,
        registry: Arc<Registry>,
        memory: &Arc<crate::budget::Memory>,
    ) -> Arc<StreamableHttp> {
        let replay_budget = ReplayBudget::within_memory(
            config.replay_bytes_per_session,
            config.replay_bytes_total,
            memory,
        );
        Arc::new(StreamableHttp {
            server,
            sessions: Mutex::new(SessionTable::default()),
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

    fn lock(&self) -> parking_lot::MutexGuard<'_, SessionTable> {
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
                replay: Replay::new(Arc::clone(&self.replay_budget)),
            },
        );
    }
}

/// The sessions by id, hashed with foldhash rather than SipHash: the ids
/// are the server's own random ones (a client's made-up id is only looked
/// up, never stored), so no client picks keys that would collide.
type SessionTable = HashMap<String, Entry, foldhash::fast::RandomState>;

/// Closes the least recently used session of `principal` (its id then gets
/// 404); counted with the expired sessions.
fn evict_lru(sessions: &mut SessionTable, principal: &str, registry: &Registry) {
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

/// A JSON-RPC error answer with an HTTP status.
fn rpc_error(status: u16, code: i32, message: &str) -> Response {
    super::error_response(status, None, &RpcError::new(code, message))
}

impl StreamableHttp {
    /// The checks every `/mcp` request passes first: Origin and Host (DNS
    /// rebinding, see [`super::origin`]; 403), then the bearer key (401) and
    /// the client's rate (429). The key's scope, or the refusal to send.
    fn admit(&self, req: &Request<'_>) -> Result<crate::guard::Admitted, crate::guard::Refused> {
        self.admission
            .check_host(req, true)
            .map_err(crate::guard::Refused::Now)?;
        self.admission.admit(req)
    }
}

mod get;
mod headers;
mod post;

use get::{Delete, Get};
use post::Post;
