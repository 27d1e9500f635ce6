//! The per-call context a tool handler receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::heavy::HeavyGate;
use super::lazy::LazyJson;
use super::peer::Peer;
use super::pending::Outgoing;
use super::version::ProtocolVersion;
use crate::jsonrpc::write::write_notification;

/// Tools a session's caller may not call, each with the scope it needs.
pub type DeniedTools = Arc<Vec<(String, String)>>;

/// The statement kinds a session's caller may run (within what the tools
/// allow anyone).
pub type StatementKinds = Arc<Vec<crate::util::sql_guard::StatementKind>>;

/// What a call's context (and the call running it) may ask of the session
/// the call came in on. The session implements it; the context holds it as
/// a trait object, so this file (which tools, prompts and resources name)
/// never names the session (which names them all): no import cycle.
pub(crate) trait SessionLink:
    super::lazy::ClientInfoSource + Send + Sync + std::fmt::Debug
{
    /// The transport the session came by, once it said.
    fn transport(&self) -> Option<&'static str>;
    /// Whether the session's calls may run read-only statements only.
    fn is_read_only(&self) -> bool;
    /// The statement kinds the session's calls are limited to, if any.
    fn statement_kinds(&self) -> Option<StatementKinds>;
    /// Whom the session's calls count against, when the transport said.
    fn principal(&self) -> Option<&str>;
    /// The party of the principal the session belongs to, when set.
    fn party(&self) -> Option<&str>;
    /// The server's gate for CPU-heavy work.
    fn heavy(&self) -> &Arc<HeavyGate>;
    /// What the client declared in `initialize`.
    fn client_capabilities(&self) -> Option<Value>;
    /// Whether the client declared `capability` in `initialize`.
    fn client_has_capability(&self, capability: &str) -> bool;
    /// Requests sent to the client and waiting for answers.
    fn outgoing(&self) -> &Outgoing;
    /// Where the session's own messages go, when it has a stream.
    fn peer(&self) -> Option<&Peer>;
    /// Whether a later message can reach this session's calls (a
    /// `notifications/cancelled`); when not, they are not tracked.
    fn reachable(&self) -> bool;
    /// Tracks a running call so `notifications/cancelled` can reach it.
    fn track(&self, id: &super::kept::Kept, cancel: watch::Sender<bool>);
    /// Forgets a call that ended.
    fn untrack(&self, id: &str);
}

/// Severity of a log message (RFC 5424 levels, as MCP names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Notice.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Alert.
    Alert,
    /// Emergency.
    Emergency,
}

/// What a running tool can learn and do.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The session, for requests to the client; None in contexts made outside one.
    session: Option<Arc<dyn SessionLink>>,
    request_id: super::kept::Kept,
    version: ProtocolVersion,
    progress_token: Option<Box<RawValue>>,
    peer: Option<Peer>,
    min_log_level: Option<LogLevel>,
    /// Set when the client cancels; none for a call nothing can cancel
    /// but its end (its session lives for one request).
    cancelled: Option<watch::Receiver<bool>>,
    /// Last progress sent, as f64 bits; progress must increase. Relaxed: one
    /// call's own counter, ordering nothing else.
    last_progress: AtomicU64,
    /// 2026-07-28: answers the client already gave, and what this run still needs.
    input: InputRound,
    client_info: LazyJson,
    /// The tool answered a result with `isError` (for the metrics). Relaxed:
    /// written once before the answer, read after it.
    tool_failed: std::sync::atomic::AtomicBool,
}

/// What a call's context is made from.
pub(crate) struct CallSetup {
    pub(crate) session: Option<Arc<dyn SessionLink>>,
    pub(crate) request_id: super::kept::Kept,
    pub(crate) version: ProtocolVersion,
    pub(crate) progress_token: Option<Box<RawValue>>,
    pub(crate) peer: Option<Peer>,
    pub(crate) min_log_level: Option<LogLevel>,
    pub(crate) client_info: LazyJson,
    pub(crate) input: InputRound,
}

/// What a call's run gets instead of its handler's answer.
#[derive(Debug)]
pub(crate) enum Wanted {
    /// Requests the client must answer first (2026-07-28 `input_required`),
    /// by key, and the state to seal into `requestState`.
    Input {
        requests: serde_json::Map<String, Value>,
        state: Option<String>,
    },
    /// The call fails with this error (a missing client capability, say).
    Fail(crate::jsonrpc::RpcError),
}

/// The input side of a 2026-07-28 call: requests to the client are not sent
/// but returned as an `input_required` result; the client retries the call
/// with `inputResponses` (and the sealed `requestState`), and the handler
/// runs again from the start, its requests now answered.
#[derive(Debug, Default)]
pub(crate) struct InputRound {
    /// What the client declared in `_meta` (2026-07-28 has no `initialize`).
    pub(crate) client_capabilities: LazyJson,
    /// `inputResponses` of this attempt.
    pub(crate) responses: serde_json::Map<String, Value>,
    /// The `requestState` the client echoed, already checked and unsealed.
    pub(crate) request_state: Option<String>,
    /// Requests made so far by [`Context::request`] (keys `r0`, `r1`, ...).
    /// Relaxed: one call's own counter.
    next: std::sync::atomic::AtomicUsize,
    /// What the run gets instead of an answer, once the handler asked for
    /// input it does not have. A std mutex, held only to set or take it.
    wanted: parking_lot::Mutex<Option<Wanted>>,
    notify: tokio::sync::Notify,
    /// Set when the call became a task: requests then wait on the task
    /// (answered through `tasks/update`) instead of ending the call.
    pub(crate) task: std::sync::OnceLock<Arc<super::tasks::Task>>,
}

impl InputRound {
    /// A round with what the client sent.
    pub(crate) fn new(
        client_capabilities: LazyJson,
        responses: serde_json::Map<String, Value>,
        request_state: Option<String>,
    ) -> InputRound {
        InputRound {
            client_capabilities,
            responses,
            request_state,
            next: std::sync::atomic::AtomicUsize::new(0),
            wanted: parking_lot::Mutex::new(None),
            notify: tokio::sync::Notify::new(),
            task: std::sync::OnceLock::new(),
        }
    }

    /// The key of the next [`Context::request`] of this run.
    pub(crate) fn next_key(&self) -> String {
        format!("r{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Records what ends the run (the first thing recorded wins) and wakes the call's runner.
    pub(crate) fn want(&self, wanted: Wanted) {
        let mut slot = self.wanted.lock();
        if slot.is_none() {
            *slot = Some(wanted);
        }
        drop(slot);
        self.notify.notify_one();
    }

    /// Records one request the client must answer first.
    pub(crate) fn want_one(&self, key: String, method: &str, params: Value) {
        let mut requests = serde_json::Map::new();
        requests.insert(
            key,
            serde_json::json!({ "method": method, "params": params }),
        );
        self.want(Wanted::Input {
            requests,
            state: None,
        });
    }

    /// Resolves once the handler needs input it does not have (or failed the call).
    pub(crate) async fn wanted(&self) {
        loop {
            if self.wanted.lock().is_some() {
                return;
            }
            self.notify.notified().await;
        }
    }

    /// What the run gets instead of an answer.
    pub(crate) fn take_wanted(&self) -> Option<Wanted> {
        self.wanted.lock().take()
    }
}

impl Context {
    pub(crate) fn new(setup: CallSetup, cancelled: Option<watch::Receiver<bool>>) -> Context {
        Context {
            inner: Arc::new(Inner {
                session: setup.session,
                request_id: setup.request_id,
                version: setup.version,
                progress_token: setup.progress_token,
                peer: setup.peer,
                min_log_level: setup.min_log_level,
                cancelled,
                last_progress: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
                tool_failed: std::sync::atomic::AtomicBool::new(false),
                input: setup.input,
                client_info: setup.client_info,
            }),
        }
    }

    /// Notes that the tool's result is an `isError` one.
    pub(crate) fn mark_tool_failed(&self) {
        self.inner
            .tool_failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the tool's result was an `isError` one.
    pub(crate) fn tool_failed(&self) -> bool {
        self.inner
            .tool_failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn round(&self) -> &InputRound {
        &self.inner.input
    }

    pub(crate) fn session(&self) -> Option<&dyn SessionLink> {
        self.inner.session.as_deref()
    }

    pub(crate) fn peer(&self) -> Option<&Peer> {
        self.inner.peer.as_ref()
    }

    /// Who is calling: the client's `clientInfo` (`name`, `version`), from
    /// `initialize` or, on 2026-07-28, from the request's `_meta`.
    pub fn client_info(&self) -> Option<&Value> {
        self.inner.client_info.get()
    }

    /// The transport the call came by (`stdio`, `http`, `websocket`), when
    /// it came through one of the crate's transports: one [`McpServer`]
    /// serves them all, and a tool can still say which one it was.
    ///
    /// [`McpServer`]: crate::mcp::McpServer
    pub fn transport(&self) -> Option<&'static str> {
        self.inner.session.as_ref().and_then(|s| s.transport())
    }

    /// Whether the caller may run read-only statements only (it
    /// authenticated with a read-only key).
    pub fn is_read_only(&self) -> bool {
        self.inner
            .session
            .as_ref()
            .is_some_and(|s| s.is_read_only())
    }

    /// The statement kinds the caller may run, when its authorization
    /// limits them (an OAuth token's scopes); `None`: whatever the tools
    /// allow (and [`Context::is_read_only`] says).
    pub fn statement_kinds(&self) -> Option<StatementKinds> {
        self.inner
            .session
            .as_ref()
            .and_then(|s| s.statement_kinds())
    }

    /// A key telling clients apart, for fair scheduling and limits: the
    /// principal the transport admitted the session for (a key, or a
    /// client address), so neither a new session nor a new client name
    /// buys a bigger share. Sessions made outside a transport fall back to
    /// the client's name.
    pub fn client_key(&self) -> String {
        if let Some(principal) = self.inner.session.as_ref().and_then(|s| s.principal()) {
            return principal.to_owned();
        }
        self.client_info()
            .and_then(|c| c["name"].as_str())
            .unwrap_or("unknown")
            .to_owned()
    }

    /// Which party of [`Context::client_key`]'s client the call comes
    /// from: the transport's word (a stateless request's connection), else
    /// the session itself, else the call. Waiting calls of one client take
    /// turns by party.
    pub fn party_key(&self) -> String {
        match &self.inner.session {
            Some(session) => session.party().map(str::to_owned).unwrap_or_else(|| {
                format!("session-{:x}", Arc::as_ptr(session).cast::<()>() as usize)
            }),
            None => format!("call-{}", self.inner.request_id),
        }
    }

    /// Runs CPU-heavy `work` (checking a long statement, shaping or
    /// encoding a large result) on a blocking thread, at most one such job
    /// at a time per client ([`Context::client_key`]): one client's heavy
    /// calls take at most one core however many it sends, and the async
    /// workers stay free. `None` if `work` panicked.
    pub async fn run_heavy<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match &self.inner.session {
            Some(session) => session.heavy().run(&self.client_key(), work).await,
            None => tokio::task::spawn_blocking(work).await.ok(),
        }
    }

    /// The JSON-RPC id of the call, as raw JSON.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The protocol version the call was made under.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.inner.version
    }

    /// The progress token the client sent in `_meta`, as raw JSON, if any.
    pub fn progress_token(&self) -> Option<&RawValue> {
        self.inner.progress_token.as_deref()
    }

    /// Whether the client cancelled the call.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves when the client cancels the call.
    pub async fn cancelled(&self) {
        let Some(rx) = &self.inner.cancelled else {
            // Nothing can cancel this call but dropping it.
            return std::future::pending().await;
        };
        let mut rx = rx.clone();
        // A closed channel means nobody can cancel any more (the call became
        // a task, whose cancellation aborts the handler instead): wait forever.
        if rx.wait_for(|&c| c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Reports progress when the client asked for it (`_meta.progressToken`).
    ///
    /// Progress must increase: a value not above the last one is dropped.
    /// Returns whether a notification was sent.
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) -> bool {
        let (Some(token), Some(peer)) = (&self.inner.progress_token, &self.inner.peer) else {
            return false;
        };
        let last = f64::from_bits(self.inner.last_progress.load(Ordering::Relaxed));
        // NaN and non-increasing values are both dropped.
        if progress.partial_cmp(&last) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        self.inner
            .last_progress
            .store(progress.to_bits(), Ordering::Relaxed);
        let mut params = serde_json::Map::new();
        params.insert("progressToken".into(), raw_to_value(token));
        params.insert("progress".into(), progress.into());
        if let Some(total) = total {
            params.insert("total".into(), total.into());
        }
        if let Some(message) = message {
            params.insert("message".into(), message.into());
        }
        let mut out = Vec::with_capacity(128);
        write_notification(
            &mut out,
            "notifications/progress",
            Value::Object(params).to_string().as_bytes(),
        );
        peer.send(out).await
    }

    /// Sends a log message (`notifications/message`) unless the client filtered it out.
    ///
    /// Before 2026-07-28 everything is sent until `logging/setLevel` sets a
    /// threshold; from 2026-07-28 on, only requests that opted in with a
    /// `_meta` log level get messages.
    pub async fn log(&self, level: LogLevel, data: Value) -> bool {
        let Some(peer) = &self.inner.peer else {
            return false;
        };
        let wanted = match self.inner.min_log_level {
            Some(min) => level >= min,
            None => !self.inner.version.is_modern(),
        };
        if !wanted {
            return false;
        }
        let params = serde_json::json!({ "level": level, "data": data });
        let mut out = Vec::with_capacity(128);
        write_notification(
            &mut out,
            "notifications/message",
            params.to_string().as_bytes(),
        );
        peer.send(out).await
    }
}

fn raw_to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}
