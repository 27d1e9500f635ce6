//! One client's session: lifecycle state and the method dispatch.
//!
//! [`Session::dispatch`] parses a message and answers everything that is
//! known at once (lifecycle, `tools/list`, errors) straight into the
//! caller's output buffer. A `tools/call` (or a resource read, or a prompt)
//! comes back as a [`Call`] that
//! borrows the input; the transport decides where it runs (inline, or in a
//! task of its own so that cancellations can reach it).

use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use std::borrow::Cow;

use super::call::{Call, CallKind, not_found};
use super::context::{LogLevel, SessionLink};
use super::peer::Peer;
use super::pending::Outgoing;
use super::server::{Catalog, List, ListVariant, McpServer, ServerEvent, page_of};
use super::version::{ALL_VERSIONS, ProtocolVersion, supported_json};
use crate::jsonrpc::scan::each_member;
use crate::jsonrpc::write::{write_error, write_result, write_result_with};
use crate::jsonrpc::{
    INVALID_PARAMS, INVALID_REQUEST, Id, Message, RawJson, Request, RpcError, is_batch,
    parse_with_meta,
};

/// JSON-RPC code for a request stamped with a protocol version this server does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
/// JSON-RPC code for a call of a tool the caller's authorization does not
/// cover (see [`Session::restrict_tools`]); `data.scope` names the scope it
/// needs. Streamable HTTP answers it with 403 `insufficient_scope`.
pub const INSUFFICIENT_SCOPE: i32 = -32044;

pub use super::context::{DeniedTools, StatementKinds};
/// Most messages one JSON-RPC batch (2025-03-26) may hold; a larger batch
/// is refused whole. Default: 64.
pub const MAX_BATCH_MEMBERS: usize = 64;
/// Most bytes of answers one batch may gather: once its answers pass it,
/// the requests not yet run are answered with an error instead (as they are
/// once the server's memory budget, which the gathered answers count
/// against, is full). Default: 4 MiB.
pub const MAX_BATCH_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// One client's session.
#[derive(Debug)]
pub struct Session {
    server: McpServer,
    peer: Option<Peer>,
    /// The version `initialize` settled on (0: none yet; else 1 + index in
    /// `ALL_VERSIONS`). Read on every request without a lock: stored with
    /// Release after the rest of the handshake state, loaded with Acquire.
    version: AtomicU8,
    /// The `logging/setLevel` threshold (0: none; else 1 + index in
    /// `ALL_LEVELS`). Relaxed: a lone setting that orders nothing else.
    log_level: AtomicU8,
    /// What the client declared in `initialize`, as the JSON text it sent
    /// (read into a value only when asked, which is rare: every open
    /// session holds it). A std mutex: held for a read or a write, never
    /// across an `.await` (as are the ones below).
    client_capabilities: Mutex<Option<Box<str>>>,
    /// The `clientInfo` of `initialize` (name, version), as its JSON text.
    /// Same locking rule.
    client_info: Mutex<Option<Box<str>>>,
    /// The session lives for one HTTP request (2026-07-28, no session
    /// across requests): no later message can name its calls, so they are
    /// not tracked for cancellation (the client cancels by closing).
    one_request: bool,
    /// Calls in flight by raw request id, so that a cancellation can reach them.
    pub(crate) inflight: Mutex<inflight::Inflight>,
    /// Resource URIs this client subscribed to; none until it subscribes
    /// (the set's own fields are most sessions' cost otherwise).
    #[allow(clippy::box_collection)] // On purpose: see above.
    subscriptions: Mutex<Option<Box<HashSet<String>>>>,
    /// Requests to the client awaiting answers.
    outgoing: Outgoing,
    /// Set when the client authenticated with a read-only key: its calls
    /// may run read-only statements only. Once set it stays set (Relaxed:
    /// a lone flag that orders nothing else).
    read_only: std::sync::atomic::AtomicBool,
    /// What the caller's latest token allows, when its scopes limit it: a
    /// lock held for a load or a store (cheaper to create, read and drop
    /// than a lock-free swap for a session that lives one request).
    scoped: Mutex<Scoped>,
    /// Whom the transport admitted this session for (a key, a client
    /// address): what fair shares and limits count against. Set once.
    principal: OnceCell<Arc<str>>,
    /// Which party of the principal this is, when not the session itself
    /// (a stateless request's connection): calls of one principal take
    /// turns by party. Set once.
    party: OnceCell<String>,
    /// The connection that is the party, named only when asked.
    party_connection: OnceCell<std::net::SocketAddr>,
    /// The transport the session came by (`stdio`, `http`, `websocket`),
    /// when the transport said. Set once.
    transport: OnceCell<&'static str>,
}

/// The limits of a session's latest token (see [`Session::restrict_tools`]
/// and [`Session::limit_statements`]).
#[derive(Debug, Default)]
struct Scoped {
    denied_tools: Option<DeniedTools>,
    statement_kinds: Option<StatementKinds>,
}

const ALL_LEVELS: [LogLevel; 8] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Notice,
    LogLevel::Warning,
    LogLevel::Error,
    LogLevel::Critical,
    LogLevel::Alert,
    LogLevel::Emergency,
];

/// 0 for none, else 1 + the position of `item` in `all`.
fn encode<T: PartialEq>(all: &[T], item: Option<T>) -> u8 {
    item.and_then(|x| all.iter().position(|a| *a == x))
        .map_or(0, |i| i as u8 + 1)
}

fn decode<T: Copy>(all: &[T], code: u8) -> Option<T> {
    (code as usize)
        .checked_sub(1)
        .and_then(|i| all.get(i).copied())
}

/// What [`Session::dispatch`] left to do.
#[derive(Debug)]
pub enum Dispatched<'a> {
    /// Everything is done: an answer (if any) is in the output buffer.
    Done,
    /// Host code to run (a tool, a resource read, a prompt); its answer
    /// comes from [`super::OwnedCall::run`].
    Call(Call<'a>),
    /// A JSON-RPC batch (2025-03-26 only): run it with [`Session::handle`].
    Batch,
}

impl Session {
    /// A session of `server`; `peer` carries server-initiated messages when the transport can.
    pub fn new(server: McpServer, peer: Option<Peer>) -> Session {
        Session {
            server,
            peer,
            version: AtomicU8::new(0),
            log_level: AtomicU8::new(0),
            client_capabilities: Mutex::new(None),
            client_info: Mutex::new(None),
            one_request: false,
            inflight: Mutex::new(inflight::Inflight::Idle),
            subscriptions: Mutex::new(None),
            outgoing: Outgoing::default(),
            read_only: std::sync::atomic::AtomicBool::new(false),
            scoped: Mutex::new(Scoped::default()),
            principal: OnceCell::new(),
            party: OnceCell::new(),
            party_connection: OnceCell::new(),
            transport: OnceCell::new(),
        }
    }

    /// A session that serves one stateless HTTP request and is dropped
    /// with it (no later message can reach its calls, so they are not
    /// tracked). Its transport, principal and party (the client's
    /// connection) are set as it is built, not through a shared cell's
    /// once-only set-up (about 260 instructions a request for the three).
    pub(crate) fn one_http_request(
        server: McpServer,
        principal: Arc<str>,
        connection: std::net::SocketAddr,
    ) -> Session {
        Session {
            one_request: true,
            principal: OnceCell::with_value(principal),
            party_connection: OnceCell::with_value(connection),
            transport: OnceCell::with_value("http"),
            ..Session::new(server, None)
        }
    }

    /// The `clientInfo` the client sent in `initialize` (name, version), if any.
    pub fn client_info(&self) -> Option<serde_json::Value> {
        json_of(self.client_info.lock().as_deref())
    }

    /// Restricts this session's calls to read-only statements (a
    /// read-only key was used); it cannot be lifted.
    pub fn restrict_to_read_only(&self) {
        self.read_only.store(true, Ordering::Relaxed);
    }

    /// The tools this session's calls may not call from now on (with the
    /// scope each needs), or none: what the caller's latest token allows
    /// (a token with more scopes lifts a restriction). A call of one is
    /// answered [`INSUFFICIENT_SCOPE`].
    pub fn restrict_tools(&self, denied: Option<DeniedTools>) {
        self.scoped.lock().denied_tools = denied;
    }

    /// The statement kinds this session's calls may run from now on, or
    /// none (whatever the tools allow): what the caller's latest token's
    /// scopes grant (a token with more scopes lifts a limit, unlike
    /// [`Session::restrict_to_read_only`]).
    pub fn limit_statements(&self, kinds: Option<StatementKinds>) {
        self.scoped.lock().statement_kinds = kinds;
    }

    /// The statement kinds this session's calls are limited to, if any.
    pub fn statement_kinds(&self) -> Option<StatementKinds> {
        self.scoped.lock().statement_kinds.clone()
    }

    /// The tools this session's calls may not call, if any.
    fn denied_tools(&self) -> Option<DeniedTools> {
        self.scoped.lock().denied_tools.clone()
    }

    /// Names whom this session's calls count against (`key:<name>`,
    /// `addr:<ip>`: see `Admitted`); the first call wins.
    pub fn set_principal(&self, principal: impl Into<Arc<str>>) {
        let _ = self.principal.set(principal.into());
    }

    /// Names the party of the principal this session's calls belong to
    /// (by default the session itself); the first call wins.
    pub fn set_party(&self, party: impl Into<String>) {
        if self.party_connection.get().is_none() {
            let _ = self.party.set(party.into());
        }
    }

    /// Names the transport this session came by (`stdio`, `http`,
    /// `websocket`); the first call wins. The transports set it.
    pub fn set_transport(&self, transport: &'static str) {
        let _ = self.transport.set(transport);
    }

    /// The transport set with [`Session::set_transport`], if any.
    pub fn transport(&self) -> Option<&'static str> {
        self.transport.get().copied()
    }

    /// Names the party as the connection from `remote` (`conn-<addr>`),
    /// written out only when asked (most calls never ask); the first call
    /// of this or [`Session::set_party`] wins.
    pub fn set_party_connection(&self, remote: std::net::SocketAddr) {
        if self.party.get().is_none() {
            let _ = self.party_connection.set(remote);
        }
    }

    /// The party set with [`Session::set_party`] or
    /// [`Session::set_party_connection`], if any.
    pub fn party(&self) -> Option<&str> {
        if let Some(party) = self.party.get() {
            return Some(party);
        }
        let remote = self.party_connection.get()?;
        Some(self.party.get_or_init(|| {
            let mut party = String::with_capacity(32);
            party.push_str("conn-");
            crate::util::addr::push_socket_addr(&mut party, *remote);
            party
        }))
    }

    /// Whom this session's calls count against, when the transport said.
    pub fn principal(&self) -> Option<&str> {
        self.principal.get().map(|p| &**p)
    }

    /// Whether this session's calls may run read-only statements only.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// The notification this session's client should get for a server change, if any.
    ///
    /// List changes go to sessions that completed `initialize` (2026-07-28
    /// clients have no session to notify); resource updates only to clients
    /// that subscribed to that URI.
    pub fn notification_for(&self, event: &ServerEvent) -> Option<Vec<u8>> {
        let (method, params) = match event {
            ServerEvent::ResourceUpdated(uri) => {
                if !self.is_subscribed(uri) {
                    return None;
                }
                let params = serde_json::json!({ "uri": &**uri }).to_string();
                ("notifications/resources/updated", params)
            }
            _ if self.protocol_version().is_none() => return None,
            ServerEvent::ToolsChanged => ("notifications/tools/list_changed", String::new()),
            ServerEvent::ResourcesChanged => {
                ("notifications/resources/list_changed", String::new())
            }
            ServerEvent::PromptsChanged => ("notifications/prompts/list_changed", String::new()),
        };
        let mut out = Vec::with_capacity(64 + params.len());
        crate::jsonrpc::write::write_notification(&mut out, method, params.as_bytes());
        Some(out)
    }

    /// Whether the client subscribed to updates of `uri`.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .as_ref()
            .is_some_and(|subs| subs.contains(uri))
    }

    /// The protocol version `initialize` settled on, if it ran.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        decode(&ALL_VERSIONS, self.version.load(Ordering::Acquire))
    }

    fn log_level(&self) -> Option<LogLevel> {
        decode(&ALL_LEVELS, self.log_level.load(Ordering::Relaxed))
    }

    /// Parses one message and answers what can be answered now into `out`.
    pub fn dispatch<'a>(&self, bytes: &'a [u8], out: &mut Vec<u8>) -> Dispatched<'a> {
        self.dispatch_checked(bytes, out, None)
    }

    /// [`Session::dispatch`], with the transport's `check` of a request
    /// run once the message is read (a refusal is answered at once).
    pub(crate) fn dispatch_checked<'a>(
        &self,
        bytes: &'a [u8],
        out: &mut Vec<u8>,
        check: Option<&dyn RequestCheck>,
    ) -> Dispatched<'a> {
        if is_batch(bytes) {
            return Dispatched::Batch;
        }
        let mut params = Params::default();
        // Apart from `params` while parsing: each callback borrows its own.
        let (mut meta, mut meta_bad) = (Meta::default(), None);
        let parsed = parse_with_meta(
            bytes,
            |k, v| params.take(&k, v),
            |k, v| meta.take(&k, v, &mut meta_bad),
        );
        (params.meta_members, params.meta_bad) = (meta, meta_bad);
        match parsed {
            Err(e) => {
                write_error(out, e.id, &e.error);
                Dispatched::Done
            }
            Ok(Message::Response(r)) => {
                self.outgoing.resolve(r.id.map(|i| i.raw()), r.outcome);
                Dispatched::Done
            }
            Ok(Message::Notification { method, .. }) => {
                self.notification(&method, &params);
                Dispatched::Done
            }
            Ok(Message::Request(req)) => {
                let id = req.id;
                let method = req.method.clone();
                let metrics = &self.server.0.metrics;
                match self.request(req, &params, out, check) {
                    Ok(Dispatched::Done) => {
                        metrics.record_immediate(&method, super::metrics::Outcome::Ok);
                        Dispatched::Done
                    }
                    // Calls are counted when they end (`OwnedCall::run`).
                    Ok(d) => d,
                    Err(e) => {
                        metrics.record_immediate(&method, super::metrics::Outcome::Error);
                        write_error(out, Some(id), &e);
                        Dispatched::Done
                    }
                }
            }
        }
    }

    /// Handles one message completely, tool calls and batches included.
    ///
    /// Returns the answer, or `None` when there is none (notifications,
    /// responses, cancelled calls).
    pub async fn handle(self: &Arc<Self>, bytes: &[u8]) -> Option<Vec<u8>> {
        if bytes.len() >= LARGE_MESSAGE {
            return match self
                .dispatch_large(owned_in_pieces(bytes).await, None)
                .await
            {
                Handled::Done(out) => (!out.is_empty()).then_some(out),
                Handled::Call(call) => call.run().await,
                Handled::Batch(plan) => self.run_batch(bytes, plan).await,
            };
        }
        let mut out = Vec::new();
        match self.dispatch(bytes, &mut out) {
            Dispatched::Done => (!out.is_empty()).then_some(out),
            Dispatched::Call(call) => call.into_owned(self).run().await,
            Dispatched::Batch => {
                let plan = self.plan_batch(bytes);
                self.run_batch(bytes, plan).await
            }
        }
    }

    fn notification(&self, method: &str, params: &Params<'_>) {
        match method {
            "notifications/cancelled" => {
                if let Some(id) = params.request_id {
                    let inflight = self.inflight.lock();
                    if let Some(cancel) = inflight.get(id.get()) {
                        cancel.send_replace(true);
                    }
                }
            }
            // `initialized` needs no action: requests are served once `initialize` answered.
            "notifications/initialized" => {}
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

mod batch;
mod check;
mod inflight;
mod large;
mod link;
mod params;
mod request;

pub(crate) use check::{RequestCheck, RequestView};
pub(crate) use large::{Handled, LARGE_MESSAGE, owned_in_pieces};
use params::{Meta, Params};

/// The value of JSON text a session kept.
fn json_of(text: Option<&str>) -> Option<serde_json::Value> {
    serde_json::from_str(text?).ok()
}

/// The longest `clientInfo` a session keeps from `initialize`: 4 KiB (a
/// name, a version, a title, a few icons). Longer: `initialize` is refused.
pub(crate) const MAX_CLIENT_INFO_BYTES: usize = 4 * 1024;
/// The longest `capabilities` a session keeps from `initialize`: 16 KiB.
/// Longer: `initialize` is refused.
pub(crate) const MAX_CLIENT_CAPABILITIES_BYTES: usize = 16 * 1024;
/// Most resources one session is subscribed to at once: 128.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 128;
/// The longest resource URI a session may read or subscribe to: 2 KiB.
pub(crate) const MAX_URI_BYTES: usize = 2 * 1024;

/// Refuses an `initialize` whose `clientInfo` or `capabilities` are longer
/// than a session keeps: every session keeps them for its life, so their
/// size bounds what a client's sessions hold (1,000 sessions of 4 MiB each
/// would be 4 GB).
fn check_kept_sizes(params: &Params<'_>) -> Result<(), crate::jsonrpc::RpcError> {
    for (raw, name, most) in [
        (params.client_info, "clientInfo", MAX_CLIENT_INFO_BYTES),
        (
            params.capabilities,
            "capabilities",
            MAX_CLIENT_CAPABILITIES_BYTES,
        ),
    ] {
        if raw.is_some_and(|r| r.get().len() > most) {
            return Err(crate::jsonrpc::RpcError::invalid_params(format!(
                "\"{name}\" is longer than {most} bytes"
            )));
        }
    }
    Ok(())
}

/// The JSON text of a member of `initialize`, kept if it is well-formed.
fn kept_json(raw: Option<crate::jsonrpc::RawJson<'_>>) -> Option<Box<str>> {
    let text = raw?.get();
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .is_ok()
        .then(|| text.into())
}
