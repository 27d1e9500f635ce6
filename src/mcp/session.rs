//! One client's session: lifecycle state and the method dispatch.
//!
//! [`Session::dispatch`] parses a message and answers everything that is
//! known at once (lifecycle, `tools/list`, errors) straight into the
//! caller's output buffer. A `tools/call` (or a resource read, or a prompt)
//! comes back as a [`Call`] that
//! borrows the input; the transport decides where it runs (inline, or in a
//! task of its own so that cancellations can reach it).

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use std::borrow::Cow;

use tokio::sync::watch;

use super::call::{Call, CallKind, not_found};
use super::context::{LogLevel, Peer, SessionLink};
use super::pending::Outgoing;
use super::server::{Catalog, List, ListVariant, McpServer, ServerEvent, page_of};
use super::version::{ALL_VERSIONS, ProtocolVersion, supported_json};
use crate::jsonrpc::scan::each_member;
use crate::jsonrpc::write::{write_error, write_result};
use crate::jsonrpc::{
    INVALID_PARAMS, INVALID_REQUEST, Id, Message, RawJson, Request, RpcError, is_batch,
    parse_batch, parse_with,
};

/// JSON-RPC code for a request stamped with a protocol version this server does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
/// Most messages one JSON-RPC batch (2025-03-26) may hold; a larger batch
/// is refused whole. Default: 64.
pub const MAX_BATCH_MEMBERS: usize = 64;
/// Most bytes of answers one batch may gather: once its answers pass it,
/// the requests not yet run are answered with an error instead. Default: 4 MiB.
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
    /// What the client declared in `initialize`. A std mutex: held for a
    /// read or a write, never across an `.await` (as are the ones below).
    client_capabilities: Mutex<Option<serde_json::Value>>,
    /// The `clientInfo` of `initialize` (name, version). Same locking rule.
    client_info: Mutex<Option<serde_json::Value>>,
    /// Calls in flight by raw request id, so that a cancellation can reach them.
    pub(crate) inflight: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Resource URIs this client subscribed to.
    subscriptions: Mutex<HashSet<String>>,
    /// Requests to the client awaiting answers.
    outgoing: Outgoing,
    /// Set when the client authenticated with a read-only key: its calls
    /// may run read-only statements only. Once set it stays set (Relaxed:
    /// a lone flag that orders nothing else).
    read_only: std::sync::atomic::AtomicBool,
    /// Whom the transport admitted this session for (a key, a client
    /// address): what fair shares and limits count against. Set once.
    principal: std::sync::OnceLock<Box<str>>,
    /// Which party of the principal this is, when not the session itself
    /// (a stateless request's connection): calls of one principal take
    /// turns by party. Set once.
    party: std::sync::OnceLock<Box<str>>,
    /// The transport the session came by (`stdio`, `http`, `websocket`),
    /// when the transport said. Set once.
    transport: std::sync::OnceLock<&'static str>,
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

/// What `_meta` carries that dispatch needs.
#[derive(Default)]
struct Meta<'a> {
    version: Option<Cow<'a, str>>,
    progress_token: Option<RawJson<'a>>,
    log_level: Option<LogLevel>,
    client_capabilities: Option<RawJson<'a>>,
    client_info: Option<RawJson<'a>>,
}

impl<'a> Meta<'a> {
    fn read(raw: RawJson<'a>) -> Result<Meta<'a>, RpcError> {
        let mut meta = Meta::default();
        if !raw.is_object() {
            return Err(RpcError::invalid_params("\"_meta\" must be an object"));
        }
        let mut bad = None;
        let scanned = each_member(raw, |k, v| match &*k {
            "io.modelcontextprotocol/protocolVersion" => match v.as_str() {
                Some(s) => meta.version = Some(s),
                None => bad = Some("the protocol version in \"_meta\" must be a string"),
            },
            "progressToken" => meta.progress_token = Some(v),
            "io.modelcontextprotocol/clientCapabilities" => meta.client_capabilities = Some(v),
            "io.modelcontextprotocol/clientInfo" => meta.client_info = Some(v),
            "io.modelcontextprotocol/logLevel" => match read_log_level(v) {
                Some(l) => meta.log_level = Some(l),
                None => bad = Some("the log level in \"_meta\" is not a level"),
            },
            _ => {}
        });
        if scanned.is_err() {
            return Err(RpcError::invalid_params("\"_meta\" is malformed"));
        }
        match bad {
            Some(why) => Err(RpcError::invalid_params(why)),
            None => Ok(meta),
        }
    }
}

fn read_log_level(v: RawJson<'_>) -> Option<LogLevel> {
    serde_json::from_str(v.get()).ok()
}

/// Members of `params` that dispatch needs, picked out while the message is parsed.
#[derive(Default)]
struct Params<'a> {
    meta: Option<RawJson<'a>>,
    name: Option<RawJson<'a>>,
    arguments: Option<RawJson<'a>>,
    cursor: Option<RawJson<'a>>,
    protocol_version: Option<RawJson<'a>>,
    level: Option<RawJson<'a>>,
    request_id: Option<RawJson<'a>>,
    uri: Option<RawJson<'a>>,
    capabilities: Option<RawJson<'a>>,
    reference: Option<RawJson<'a>>,
    argument: Option<RawJson<'a>>,
    input_responses: Option<RawJson<'a>>,
    request_state: Option<RawJson<'a>>,
    notifications: Option<RawJson<'a>>,
    task_id: Option<RawJson<'a>>,
    client_info: Option<RawJson<'a>>,
    duplicate: bool,
}

impl<'a> Params<'a> {
    fn take(&mut self, key: &str, value: RawJson<'a>) {
        let slot = match key {
            "_meta" => &mut self.meta,
            "name" => &mut self.name,
            "arguments" => &mut self.arguments,
            "cursor" => &mut self.cursor,
            "protocolVersion" => &mut self.protocol_version,
            "level" => &mut self.level,
            "requestId" => &mut self.request_id,
            "uri" => &mut self.uri,
            "capabilities" => &mut self.capabilities,
            "ref" => &mut self.reference,
            "argument" => &mut self.argument,
            "inputResponses" => &mut self.input_responses,
            "requestState" => &mut self.request_state,
            "notifications" => &mut self.notifications,
            "taskId" => &mut self.task_id,
            "clientInfo" => &mut self.client_info,
            _ => return,
        };
        self.duplicate |= slot.replace(value).is_some();
    }

    /// A string member, or -32602 naming it.
    fn string(value: Option<RawJson<'a>>, name: &str) -> Result<Option<Cow<'a, str>>, RpcError> {
        match value {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| RpcError::invalid_params(format!("\"{name}\" must be a string"))),
        }
    }
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
            inflight: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashSet::new()),
            outgoing: Outgoing::default(),
            read_only: std::sync::atomic::AtomicBool::new(false),
            principal: std::sync::OnceLock::new(),
            party: std::sync::OnceLock::new(),
            transport: std::sync::OnceLock::new(),
        }
    }

    /// The `clientInfo` the client sent in `initialize` (name, version), if any.
    pub fn client_info(&self) -> Option<serde_json::Value> {
        self.client_info.lock().clone()
    }

    /// Whether the client declared `capability` in `initialize`.
    /// What the client declared in `initialize`.
    pub(crate) fn client_capabilities(&self) -> Option<serde_json::Value> {
        self.client_capabilities.lock().clone()
    }

    /// Restricts this session's calls to read-only statements (a
    /// read-only key was used); it cannot be lifted.
    pub fn restrict_to_read_only(&self) {
        self.read_only.store(true, Ordering::Relaxed);
    }

    /// Names whom this session's calls count against (`key:<name>`,
    /// `addr:<ip>`: see `Admitted`); the first call wins.
    pub fn set_principal(&self, principal: &str) {
        let _ = self.principal.set(principal.into());
    }

    /// Names the party of the principal this session's calls belong to
    /// (by default the session itself); the first call wins.
    pub fn set_party(&self, party: &str) {
        let _ = self.party.set(party.into());
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

    /// The party set with [`Session::set_party`], if any.
    pub fn party(&self) -> Option<&str> {
        self.party.get().map(|p| &**p)
    }

    /// Whom this session's calls count against, when the transport said.
    pub fn principal(&self) -> Option<&str> {
        self.principal.get().map(|p| &**p)
    }

    /// Whether this session's calls may run read-only statements only.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    pub(crate) fn client_has_capability(&self, capability: &str) -> bool {
        self.client_capabilities
            .lock()
            .as_ref()
            .is_some_and(|c| c.get(capability).is_some())
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
        self.subscriptions.lock().contains(uri)
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
        if is_batch(bytes) {
            return Dispatched::Batch;
        }
        let mut params = Params::default();
        let parsed = parse_with(bytes, |k, v| params.take(&k, v));
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
                match self.request(req, &params, out) {
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
        let mut out = Vec::new();
        match self.dispatch(bytes, &mut out) {
            Dispatched::Done => (!out.is_empty()).then_some(out),
            Dispatched::Call(call) => call.into_owned(self).run().await,
            Dispatched::Batch => self.batch(bytes).await,
        }
    }

    async fn batch(self: &Arc<Self>, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        if !self
            .protocol_version()
            .is_some_and(ProtocolVersion::allows_batches)
        {
            let e = RpcError::new(
                INVALID_REQUEST,
                "invalid request: JSON-RPC batches are only allowed in protocol version 2025-03-26",
            );
            write_error(&mut out, None, &e);
            return Some(out);
        }
        let members = match parse_batch(bytes) {
            Ok(m) => m,
            Err(e) => {
                write_error(&mut out, e.id, &e.error);
                return Some(out);
            }
        };
        if members.len() > MAX_BATCH_MEMBERS {
            let e = RpcError::new(
                INVALID_REQUEST,
                format!(
                    "invalid request: the batch has {} messages; at most {MAX_BATCH_MEMBERS} are allowed",
                    members.len()
                ),
            );
            write_error(&mut out, None, &e);
            return Some(out);
        }
        let mut answers = Vec::new();
        let mut answer_bytes = 0usize;
        for member in members {
            let member = member.get().as_bytes();
            if answer_bytes > MAX_BATCH_ANSWER_BYTES {
                // Past the budget nothing more runs; each request still gets an answer.
                if let Ok(crate::jsonrpc::Message::Request(r)) = crate::jsonrpc::parse(member) {
                    let e = RpcError::new(
                        crate::jsonrpc::INTERNAL_ERROR,
                        format!(
                            "not run: the batch's answers passed {MAX_BATCH_ANSWER_BYTES} bytes; send the rest in another request"
                        ),
                    );
                    let mut one = Vec::new();
                    write_error(&mut one, Some(r.id), &e);
                    answers.push(one);
                }
                continue;
            }
            if is_batch(member) {
                let e = RpcError::new(INVALID_REQUEST, "invalid request: nested batch");
                let mut one = Vec::new();
                write_error(&mut one, None, &e);
                answers.push(one);
                continue;
            }
            if let Some(a) = Box::pin(self.handle(member)).await {
                answer_bytes += a.len();
                answers.push(a);
            }
        }
        if answers.is_empty() {
            return None;
        }
        out.push(b'[');
        for (i, a) in answers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(a);
        }
        out.push(b']');
        Some(out)
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

    fn request<'a>(
        &self,
        req: Request<'a>,
        params: &Params<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Dispatched<'a>, RpcError> {
        if params.duplicate {
            return Err(RpcError::invalid_params(
                "a member of \"params\" appears twice",
            ));
        }
        let meta = match params.meta {
            None => Meta::default(),
            Some(raw) => Meta::read(raw)?,
        };
        let (version, log_level) = match self.version_of(&req, &meta, params, out)? {
            Ok(settled) => settled,
            Err(answered) => return Ok(answered),
        };
        let method: &str = &req.method;
        let catalog = self.server.catalog();
        let call = |kind, catalog: &Arc<Catalog>| {
            Ok(Dispatched::Call(Call {
                catalog: Arc::clone(catalog),
                id: req.id,
                kind,
                progress_token: meta.progress_token,
                version,
                log_level,
                client_capabilities: meta.client_capabilities,
                client_info: meta.client_info,
                input_responses: params.input_responses,
                request_state: params.request_state,
            }))
        };
        let list = match method {
            "tools/list" => Some(List::Tools),
            "resources/list" => Some(List::Resources),
            "resources/templates/list" => Some(List::ResourceTemplates),
            "prompts/list" => Some(List::Prompts),
            _ => None,
        };
        if let Some(list) = list {
            let page = match Params::string(params.cursor, "cursor")? {
                None => 0,
                Some(c) => page_of(&c, catalog.page_count(list)).ok_or_else(|| {
                    RpcError::new(INVALID_PARAMS, format!("invalid cursor {c:?}"))
                })?,
            };
            let answer = catalog.list_page(list, page, ListVariant::of(version));
            write_result(out, req.id, answer);
            return Ok(Dispatched::Done);
        }
        match method {
            "server/discover" => write_result(out, req.id, &catalog.discover),
            "tools/call" => {
                let Some(name) = Params::string(params.name, "name")? else {
                    return Err(RpcError::invalid_params("tools/call needs a \"name\""));
                };
                let tool = catalog
                    .tool_index(&name)
                    .ok_or_else(|| RpcError::invalid_params(format!("unknown tool {name:?}")))?;
                return call(
                    CallKind::Tool {
                        tool,
                        arguments: params.arguments,
                    },
                    &catalog,
                );
            }
            "resources/read" => {
                let Some(uri) = Params::string(params.uri, "uri")? else {
                    return Err(RpcError::invalid_params("resources/read needs a \"uri\""));
                };
                let (resource, vars) = catalog
                    .find_resource(&uri)
                    .ok_or_else(|| not_found(&uri, version))?;
                return call(
                    CallKind::Read {
                        resource,
                        uri,
                        vars,
                    },
                    &catalog,
                );
            }
            // 2026-07-28 replaced subscriptions with a listen stream.
            "resources/subscribe" | "resources/unsubscribe" if !version.is_modern() => {
                let Some(uri) = Params::string(params.uri, "uri")? else {
                    return Err(RpcError::invalid_params(format!(
                        "{method} needs a \"uri\""
                    )));
                };
                let mut subs = self.subscriptions.lock();
                if method == "resources/subscribe" {
                    subs.insert(uri.into_owned());
                } else {
                    subs.remove(&*uri);
                }
                drop(subs);
                write_result(out, req.id, b"{}");
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" if version.is_modern() => {
                if let Some(done) = self.task_request(method, req.id, params, &meta, out)? {
                    return Ok(done);
                }
            }
            "subscriptions/listen" if version.is_modern() => {
                let filter = super::listen::ListenFilter::read(params.notifications)?;
                return call(CallKind::Listen(filter), &catalog);
            }
            "prompts/get" => {
                let Some(name) = Params::string(params.name, "name")? else {
                    return Err(RpcError::invalid_params("prompts/get needs a \"name\""));
                };
                let prompt = catalog
                    .prompt_index(&name)
                    .ok_or_else(|| RpcError::invalid_params(format!("unknown prompt {name:?}")))?;
                let args = string_pairs(params.arguments, "arguments")?;
                catalog.prompts[prompt]
                    .check(&args)
                    .map_err(RpcError::invalid_params)?;
                return call(CallKind::Prompt { prompt, args }, &catalog);
            }
            "completion/complete" => {
                let values = complete(&catalog, params.reference, params.argument)?;
                let answer = complete_result(&values, version);
                write_result(out, req.id, answer.as_bytes());
            }
            "logging/setLevel" if !version.is_modern() => {
                let level = params.level.and_then(read_log_level).ok_or_else(|| {
                    RpcError::invalid_params("logging/setLevel needs a valid \"level\"")
                })?;
                self.log_level
                    .store(encode(&ALL_LEVELS, Some(level)), Ordering::Relaxed);
                write_result(out, req.id, b"{}");
            }
            "ping" if !version.is_modern() => write_result(out, req.id, b"{}"),
            _ => return Err(RpcError::method_not_found(method)),
        }
        Ok(Dispatched::Done)
    }

    /// The protocol version and log level a request runs under: its own
    /// `_meta` stamp (2026-07-28), else the session's; `Err` with the
    /// answer for the requests that need no session (`initialize`, `ping`,
    /// `server/discover`), and an error for the rest before `initialize`.
    #[allow(clippy::type_complexity)]
    fn version_of<'a>(
        &self,
        req: &Request<'a>,
        meta: &Meta<'a>,
        params: &Params<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Result<(ProtocolVersion, Option<LogLevel>), Dispatched<'a>>, RpcError> {
        let stamped = match &meta.version {
            None => None,
            Some(v) => match ProtocolVersion::parse(v) {
                Some(v) if v.is_modern() => Some(v),
                _ => {
                    return Err(RpcError::new(
                        UNSUPPORTED_PROTOCOL_VERSION,
                        format!("unsupported protocol version {v:?}"),
                    )
                    .with_data(format!(
                        r#"{{"supported":{},"requested":{}}}"#,
                        supported_json(),
                        json_str(v)
                    )));
                }
            },
        };
        let method: &str = &req.method;
        Ok(Ok(match stamped {
            Some(v) => (v, meta.log_level),
            None => {
                if method == "initialize" {
                    return Ok(Err(self.initialize(req.id, params, out)));
                }
                if method == "ping" {
                    write_result(out, req.id, b"{}");
                    return Ok(Err(Dispatched::Done));
                }
                if method == "server/discover" {
                    write_result(out, req.id, &self.server.catalog().discover);
                    return Ok(Err(Dispatched::Done));
                }
                match self.protocol_version() {
                    Some(v) => (v, self.log_level()),
                    None => {
                        return Err(RpcError::new(
                            INVALID_REQUEST,
                            format!(
                                "session not initialized: send \"initialize\" before {method:?}"
                            ),
                        ));
                    }
                }
            }
        }))
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel` (the tasks extension);
    /// `Some` when the answer is complete already.
    fn task_request<'a>(
        &self,
        method: &str,
        id: Id<'a>,
        params: &Params<'a>,
        meta: &Meta<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Dispatched<'a>>, RpcError> {
        let caps = meta
            .client_capabilities
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok());
        if !super::tasks::negotiated(caps.as_ref()) {
            return Err(super::tasks::extension_required(method));
        }
        let Some(task_id) = Params::string(params.task_id, "taskId")? else {
            return Err(RpcError::invalid_params(format!(
                "{method} needs a \"taskId\""
            )));
        };
        let task = self
            .server
            .0
            .tasks
            .get(&task_id)
            .ok_or_else(|| RpcError::invalid_params(format!("unknown taskId {task_id:?}")))?;
        match method {
            "tasks/get" => {
                write_result(out, id, task.detailed().to_string().as_bytes());
                return Ok(Some(Dispatched::Done));
            }
            "tasks/update" => {
                let responses = match params.input_responses {
                    None => serde_json::Map::new(),
                    Some(raw) => match serde_json::from_str(raw.get()) {
                        Ok(serde_json::Value::Object(m)) => m,
                        _ => {
                            return Err(RpcError::invalid_params(
                                "\"inputResponses\" must be an object",
                            ));
                        }
                    },
                };
                task.update(responses);
            }
            _ => task.cancel(),
        }
        write_result(out, id, br#"{"resultType":"complete"}"#);
        Ok(None)
    }
}

/// Suggestions for `completion/complete` from the prompt or template it names.
fn complete(
    catalog: &Catalog,
    reference: Option<RawJson<'_>>,
    argument: Option<RawJson<'_>>,
) -> Result<Vec<String>, RpcError> {
    let bad = |why: &str| RpcError::invalid_params(format!("completion/complete: {why}"));
    let reference = reference.ok_or_else(|| bad("needs a \"ref\""))?;
    let argument = argument.ok_or_else(|| bad("needs an \"argument\""))?;
    let r: serde_json::Value =
        serde_json::from_str(reference.get()).map_err(|_| bad("bad \"ref\""))?;
    let a: serde_json::Value =
        serde_json::from_str(argument.get()).map_err(|_| bad("bad \"argument\""))?;
    let (Some(arg), Some(value)) = (a["name"].as_str(), a["value"].as_str()) else {
        return Err(bad("\"argument\" needs a \"name\" and a \"value\""));
    };
    let completer = match r["type"].as_str() {
        Some("ref/prompt") => {
            let name = r["name"]
                .as_str()
                .ok_or_else(|| bad("a prompt ref needs a \"name\""))?;
            let p = catalog
                .prompt_index(name)
                .ok_or_else(|| bad(&format!("unknown prompt {name:?}")))?;
            catalog.prompts[p]
                .completions
                .iter()
                .find(|(n, _)| n == arg)
                .map(|(_, f)| f.clone())
        }
        Some("ref/resource") => {
            let uri = r["uri"]
                .as_str()
                .ok_or_else(|| bad("a resource ref needs a \"uri\""))?;
            let template = catalog
                .resources
                .iter()
                .find(|t| {
                    t.def.uri_template.as_deref() == Some(uri) || t.def.uri.as_deref() == Some(uri)
                })
                .ok_or_else(|| bad(&format!("unknown resource {uri:?}")))?;
            template
                .completions
                .iter()
                .find(|(n, _)| n == arg)
                .map(|(_, f)| f.clone())
        }
        _ => {
            return Err(bad(
                "\"ref.type\" must be \"ref/prompt\" or \"ref/resource\"",
            ));
        }
    };
    Ok(completer.map(|f| f(value)).unwrap_or_default())
}

impl Session {
    fn initialize<'a>(&self, id: Id<'a>, params: &Params<'_>, out: &mut Vec<u8>) -> Dispatched<'a> {
        let requested = params.protocol_version.and_then(|v| v.as_str());
        let version = ProtocolVersion::negotiate(requested.as_deref().unwrap_or(""));
        let caps = params
            .capabilities
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok());
        *self.client_capabilities.lock() = caps;
        *self.client_info.lock() = params
            .client_info
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok());
        self.version
            .store(encode(&ALL_VERSIONS, Some(version)), Ordering::Release);
        write_result(out, id, self.server.catalog().initialize_result(version));
        Dispatched::Done
    }
}

/// A `completion/complete` result: at most 100 values, with the total and whether more exist.
fn complete_result(values: &[String], version: ProtocolVersion) -> String {
    let shown = &values[..values.len().min(100)];
    let mut v = serde_json::json!({
        "completion": { "values": shown, "total": values.len(), "hasMore": values.len() > shown.len() }
    });
    if version.is_modern() {
        v["resultType"] = "complete".into();
    }
    v.to_string()
}

/// An object of string values (prompt arguments) as pairs; -32602 otherwise.
fn string_pairs(raw: Option<RawJson<'_>>, name: &str) -> Result<Vec<(String, String)>, RpcError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if !raw.is_object() {
        return Err(RpcError::invalid_params(format!(
            "\"{name}\" must be an object"
        )));
    }
    let mut pairs = Vec::new();
    let mut bad = None;
    let scanned = each_member(raw, |k, v| match v.as_str() {
        Some(s) => pairs.push((k.into_owned(), s.into_owned())),
        None => bad = Some(k.into_owned()),
    });
    if scanned.is_err() {
        return Err(RpcError::invalid_params(format!("\"{name}\" is malformed")));
    }
    match bad {
        Some(k) => Err(RpcError::invalid_params(format!(
            "argument {k:?} must be a string"
        ))),
        None => Ok(pairs),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests;

impl SessionLink for Session {
    fn transport(&self) -> Option<&'static str> {
        Session::transport(self)
    }

    fn is_read_only(&self) -> bool {
        Session::is_read_only(self)
    }

    fn principal(&self) -> Option<&str> {
        Session::principal(self)
    }

    fn party(&self) -> Option<&str> {
        Session::party(self)
    }

    fn heavy(&self) -> &super::heavy::HeavyGate {
        &self.server.0.heavy
    }

    fn client_capabilities(&self) -> Option<serde_json::Value> {
        Session::client_capabilities(self)
    }

    fn client_has_capability(&self, capability: &str) -> bool {
        Session::client_has_capability(self, capability)
    }

    fn client_info(&self) -> Option<serde_json::Value> {
        Session::client_info(self)
    }

    fn outgoing(&self) -> &Outgoing {
        &self.outgoing
    }

    fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    fn track(&self, id: &str, cancel: tokio::sync::watch::Sender<bool>) {
        self.inflight.lock().insert(id.to_owned(), cancel);
    }

    fn untrack(&self, id: &str) {
        self.inflight.lock().remove(id);
    }
}

impl Call<'_> {
    /// Copies what the call borrows so it can run on a task of its own, in
    /// `session` (the one that dispatched it).
    pub fn into_owned(self, session: &Arc<Session>) -> super::call::OwnedCall {
        let link: Arc<dyn SessionLink> = Arc::clone(session) as Arc<dyn SessionLink>;
        self.own(link, session.server.clone())
    }
}
