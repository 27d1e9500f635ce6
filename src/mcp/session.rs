//! One client's session: lifecycle state and the method dispatch.
//!
//! [`Session::dispatch`] parses a message and answers everything that is
//! known at once (lifecycle, `tools/list`, errors) straight into the
//! caller's output buffer. A `tools/call` comes back as a [`ToolCall`] that
//! borrows the input; the transport decides where it runs (inline, or in a
//! task of its own so that cancellations can reach it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use std::borrow::Cow;

use serde_json::value::RawValue;
use tokio::sync::watch;

use super::context::{Context, LogLevel, Peer};
use super::server::{ListVariant, McpServer, page_of};
use super::tool::ToolOutput;
use super::version::{ProtocolVersion, supported_json};
use crate::jsonrpc::scan::each_member;
use crate::jsonrpc::write::{write_error, write_result, write_result_with};
use crate::jsonrpc::{
    INVALID_PARAMS, INVALID_REQUEST, Id, Message, RawJson, Request, RpcError, is_batch,
    parse_batch, parse_with,
};

/// JSON-RPC code for a request stamped with a protocol version this server does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// One client's session.
#[derive(Debug)]
pub struct Session {
    server: McpServer,
    peer: Option<Peer>,
    /// Lifecycle state. A std mutex: held for a few field reads or writes,
    /// never across an `.await`.
    state: Mutex<State>,
    /// Calls in flight by raw request id, so that a cancellation can reach them.
    /// Same locking rule as `state`.
    inflight: Mutex<HashMap<String, watch::Sender<bool>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Set by `initialize` (legacy era).
    version: Option<ProtocolVersion>,
    log_level: Option<LogLevel>,
}

/// What [`Session::dispatch`] left to do.
#[derive(Debug)]
pub enum Dispatched<'a> {
    /// Everything is done: an answer (if any) is in the output buffer.
    Done,
    /// A tool call to run; its answer comes from [`OwnedToolCall::run`].
    Call(ToolCall<'a>),
    /// A JSON-RPC batch (2025-03-26 only): run it with [`Session::handle`].
    Batch,
}

/// A `tools/call` ready to run, borrowing the request bytes.
#[derive(Debug)]
pub struct ToolCall<'a> {
    id: Id<'a>,
    tool: usize,
    arguments: Option<RawJson<'a>>,
    progress_token: Option<RawJson<'a>>,
    version: ProtocolVersion,
    log_level: Option<LogLevel>,
}

/// A `tools/call` that owns what it needs, to run on a task of its own.
#[derive(Debug)]
pub struct OwnedToolCall {
    session: Arc<Session>,
    id: String,
    tool: usize,
    arguments: Option<Box<RawValue>>,
    progress_token: Option<Box<RawValue>>,
    version: ProtocolVersion,
    log_level: Option<LogLevel>,
}

/// What `_meta` carries that dispatch needs.
#[derive(Default)]
struct Meta<'a> {
    version: Option<Cow<'a, str>>,
    progress_token: Option<RawJson<'a>>,
    log_level: Option<LogLevel>,
}

impl<'a> Meta<'a> {
    fn read(raw: Option<RawJson<'a>>) -> Result<Meta<'a>, RpcError> {
        let mut meta = Meta::default();
        let Some(raw) = raw else { return Ok(meta) };
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
            state: Mutex::new(State::default()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// The protocol version `initialize` settled on, if it ran.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.lock_state().version
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
            // Answers to requests of ours: none are sent yet, so there is nothing to match.
            Ok(Message::Response(_)) => Dispatched::Done,
            Ok(Message::Notification { method, .. }) => {
                self.notification(&method, &params);
                Dispatched::Done
            }
            Ok(Message::Request(req)) => {
                let id = req.id;
                match self.request(req, params, out) {
                    Ok(d) => d,
                    Err(e) => {
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
        let mut answers = Vec::new();
        for member in members {
            let member = member.get().as_bytes();
            if is_batch(member) {
                let e = RpcError::new(INVALID_REQUEST, "invalid request: nested batch");
                let mut one = Vec::new();
                write_error(&mut one, None, &e);
                answers.push(one);
                continue;
            }
            if let Some(a) = Box::pin(self.handle(member)).await {
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
                    let inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
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
        params: Params<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Dispatched<'a>, RpcError> {
        if params.duplicate {
            return Err(RpcError::invalid_params(
                "a member of \"params\" appears twice",
            ));
        }
        let meta = Meta::read(params.meta)?;
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
        let (version, log_level) = match stamped {
            Some(v) => (v, meta.log_level),
            None => {
                if method == "initialize" {
                    return Ok(self.initialize(req.id, &params, out));
                }
                if method == "ping" {
                    write_result(out, req.id, b"{}");
                    return Ok(Dispatched::Done);
                }
                if method == "server/discover" {
                    write_result(out, req.id, &self.server.0.discover);
                    return Ok(Dispatched::Done);
                }
                let state = self.lock_state();
                match state.version {
                    Some(v) => (v, state.log_level),
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
        };
        match method {
            "server/discover" => write_result(out, req.id, &self.server.0.discover),
            "tools/list" => {
                let page = match Params::string(params.cursor, "cursor")? {
                    None => 0,
                    Some(c) => page_of(&c, self.server.page_count()).ok_or_else(|| {
                        RpcError::new(INVALID_PARAMS, format!("invalid cursor {c:?}"))
                    })?,
                };
                write_result(
                    out,
                    req.id,
                    self.server.tools_page(page, ListVariant::of(version)),
                );
            }
            "tools/call" => {
                let Some(name) = Params::string(params.name, "name")? else {
                    return Err(RpcError::invalid_params("tools/call needs a \"name\""));
                };
                let tool = self
                    .server
                    .tool_index(&name)
                    .ok_or_else(|| RpcError::invalid_params(format!("unknown tool {name:?}")))?;
                return Ok(Dispatched::Call(ToolCall {
                    id: req.id,
                    tool,
                    arguments: params.arguments,
                    progress_token: meta.progress_token,
                    version,
                    log_level,
                }));
            }
            "logging/setLevel" if !version.is_modern() => {
                let level = params.level.and_then(read_log_level).ok_or_else(|| {
                    RpcError::invalid_params("logging/setLevel needs a valid \"level\"")
                })?;
                self.lock_state().log_level = Some(level);
                write_result(out, req.id, b"{}");
            }
            "ping" if !version.is_modern() => write_result(out, req.id, b"{}"),
            _ => return Err(RpcError::method_not_found(method)),
        }
        Ok(Dispatched::Done)
    }

    fn initialize<'a>(&self, id: Id<'a>, params: &Params<'_>, out: &mut Vec<u8>) -> Dispatched<'a> {
        let requested = params.protocol_version.and_then(|v| v.as_str());
        let version = ProtocolVersion::negotiate(requested.as_deref().unwrap_or(""));
        self.lock_state().version = Some(version);
        write_result(out, id, self.server.initialize_result(version));
        Dispatched::Done
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl ToolCall<'_> {
    /// The name of the tool to run.
    pub fn tool_name<'s>(&self, session: &'s Session) -> &'s str {
        session.server.0.tools[self.tool].name()
    }

    /// Copies what the call borrows so it can run on a task of its own.
    pub fn into_owned(self, session: &Arc<Session>) -> OwnedToolCall {
        OwnedToolCall {
            session: Arc::clone(session),
            id: self.id.raw().to_owned(),
            tool: self.tool,
            arguments: self.arguments.map(|a| a.to_raw_value()),
            progress_token: self.progress_token.map(|p| p.to_raw_value()),
            version: self.version,
            log_level: self.log_level,
        }
    }
}

impl OwnedToolCall {
    /// The raw JSON id of the call.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the tool and encodes its answer; `None` if the client cancelled it.
    pub async fn run(self) -> Option<Vec<u8>> {
        let session = &self.session;
        let tool = &session.server.0.tools[self.tool];
        let id = Id::from_raw(RawJson(&self.id))?;
        let output = match tool.check_arguments(self.arguments.as_deref()) {
            Err(why) => ToolOutput::error(format!("invalid arguments: {why}")),
            Ok(()) => {
                let (cancel_tx, cancel_rx) = watch::channel(false);
                session
                    .inflight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(self.id.clone(), cancel_tx);
                let ctx = Context::new(
                    self.id.clone(),
                    self.version,
                    self.progress_token,
                    session.peer.clone(),
                    self.log_level,
                    cancel_rx,
                );
                let watcher = ctx.clone();
                let output = tokio::select! {
                    // Cancellation first: a handler that ends because it saw the
                    // cancellation must not have its answer sent.
                    biased;
                    () = watcher.cancelled() => None,
                    out = tool.handler.call(ctx, self.arguments.as_deref()) => Some(out),
                };
                let output = output.filter(|_| !watcher.is_cancelled());
                session
                    .inflight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&self.id);
                // A cancelled request gets no answer (the client has stopped waiting).
                output?
            }
        };
        let mut out = Vec::with_capacity(256);
        write_result_with(&mut out, id, |out| {
            encode_output(out, &output, self.version)
        });
        Some(out)
    }
}

/// Writes a tool result for `version`: `structuredContent` only where the
/// version has it, `resultType` on 2026-07-28.
fn encode_output(out: &mut Vec<u8>, output: &ToolOutput, version: ProtocolVersion) {
    let mut v = serde_json::to_value(output).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        if !version.has_structured_output() {
            obj.remove("structuredContent");
        }
        if version.is_modern() {
            obj.insert("resultType".into(), "complete".into());
        }
    }
    let _ = serde_json::to_writer(&mut *out, &v);
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
