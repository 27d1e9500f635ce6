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
//! unknown one 404; DELETE ends it. 2026-07-28 requests (`MCP-Protocol-Version:
//! 2026-07-28`) need no session. GET streams are not offered yet (405).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::http::sse::Event;
use crate::http::{Handler, Method, Reply, Request, Response, Router};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{INVALID_REQUEST, Message, RpcError, parse};
use crate::mcp::{Dispatched, McpServer, Peer, ProtocolVersion, Session};

/// Most sessions kept at once; `initialize` past it gets 503. Default: 10 000.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Messages of one request's stream queued before the call waits. Default: 64.
const STREAM_QUEUE: usize = 64;
/// The reconnection delay announced in the priming event, in ms. Default: 1000.
const RETRY_MS: u64 = 1000;

/// The Streamable HTTP endpoint, shared by every connection.
#[derive(Debug)]
pub struct StreamableHttp {
    server: McpServer,
    /// Live sessions by id. A std mutex: held to insert, look up or remove,
    /// never across an `.await`.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    max_sessions: usize,
}

impl StreamableHttp {
    /// An endpoint serving `server`.
    pub fn new(server: McpServer) -> Arc<StreamableHttp> {
        Arc::new(StreamableHttp {
            server,
            sessions: Mutex::new(HashMap::new()),
            max_sessions: DEFAULT_MAX_SESSIONS,
        })
    }

    /// Adds the endpoint's routes at `path` to `router`.
    pub fn routes(self: &Arc<Self>, router: Router, path: &str) -> Router {
        router
            .route_shared(Method::Post, path, Arc::new(Post(Arc::clone(self))))
            .route_shared(Method::Delete, path, Arc::new(Delete(Arc::clone(self))))
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }
}

/// A JSON-RPC error answer with an HTTP status.
fn rpc_error(status: u16, code: i32, message: &str) -> Response {
    let mut out = Vec::new();
    write_error(&mut out, None, &RpcError::new(code, message));
    Response::json(status, out)
}

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
            return Reply::ready(rpc_error(
                400,
                INVALID_REQUEST,
                "unsupported MCP-Protocol-Version",
            ));
        }
        let body = req.body();
        let (session, new_id) = if modern {
            (Arc::new(Session::new(endpoint.server.clone(), None)), None)
        } else {
            match req.header("mcp-session-id") {
                Some(id) => {
                    let id = std::str::from_utf8(id).unwrap_or_default();
                    match endpoint.session(id) {
                        Some(s) => (s, None),
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
                    if endpoint.session_count() >= endpoint.max_sessions {
                        return Reply::ready(rpc_error(503, INVALID_REQUEST, "too many sessions"));
                    }
                    let Some(id) = new_session_id() else {
                        return Reply::ready(rpc_error(
                            500,
                            INVALID_REQUEST,
                            "no randomness for a session id",
                        ));
                    };
                    let session = Arc::new(Session::new(endpoint.server.clone(), None));
                    endpoint.lock().insert(id.clone(), Arc::clone(&session));
                    (session, Some(id))
                }
            }
        };
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
            Dispatched::Done => Reply::ready(with_id(Response::json(200, out))),
            Dispatched::Batch => Reply::new(async move {
                match session.handle(body).await {
                    Some(answer) => Response::json(200, answer),
                    None => Response::new(202),
                }
            }),
            Dispatched::Call(call) => {
                let (peer, mut messages) = Peer::channel(STREAM_QUEUE);
                let call = call.into_owned(&session).with_peer(peer);
                let (response, events) = Response::sse(STREAM_QUEUE);
                tokio::spawn(async move {
                    let stream_id = call.id().to_owned();
                    let mut n = 0u64;
                    let mut next_id = || {
                        n += 1;
                        format!("{stream_id}-{n}")
                    };
                    let priming = next_id();
                    let prime = Event::new("")
                        .id(&priming)
                        .retry(std::time::Duration::from_millis(RETRY_MS));
                    if events.send(&prime).await.is_err() {
                        return;
                    }
                    let run = call.run();
                    tokio::pin!(run);
                    loop {
                        tokio::select! {
                            Some(message) = messages.recv() => {
                                let text = String::from_utf8_lossy(&message);
                                let id = next_id();
                                if events.send(&Event::new(&text).id(&id)).await.is_err() {
                                    return;
                                }
                            }
                            answer = &mut run => {
                                // Messages sent just before the answer go first.
                                while let Ok(message) = messages.try_recv() {
                                    let text = String::from_utf8_lossy(&message);
                                    let id = next_id();
                                    let _ = events.send(&Event::new(&text).id(&id)).await;
                                }
                                if let Some(answer) = answer {
                                    let text = String::from_utf8_lossy(&answer);
                                    let id = next_id();
                                    let _ = events.send(&Event::new(&text).id(&id)).await;
                                }
                                return;
                            }
                            () = events.closed() => return,
                        }
                    }
                });
                Reply::ready(with_id(response))
            }
        }
    }
}

struct Delete(Arc<StreamableHttp>);

impl Handler for Delete {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let Some(id) = req.header("mcp-session-id") else {
            return Reply::ready(rpc_error(400, INVALID_REQUEST, "missing MCP-Session-Id"));
        };
        let id = std::str::from_utf8(id).unwrap_or_default();
        let removed = self.0.lock().remove(id).is_some();
        Reply::ready(if removed {
            Response::new(204)
        } else {
            rpc_error(404, INVALID_REQUEST, "unknown or expired session")
        })
    }
}
