//! Requests from the server to the client (sampling, elicitation, roots) and
//! the matching of their answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::context::Context;
use crate::jsonrpc::write::{write_notification, write_request};
use crate::jsonrpc::{INTERNAL_ERROR, METHOD_NOT_FOUND, RawJson, RpcError};

/// How long a server-to-client request waits for its answer. Default: 60 s.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

type Answer = Result<Value, RpcError>;

/// Requests this session sent and is waiting on.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Ids are numbers counting up; Relaxed: uniqueness is all that matters.
    next: AtomicU64,
    /// Waiting requests. A std mutex: held only to insert or remove, never across `.await`.
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

impl Outgoing {
    fn register(&self) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (id, rx)
    }

    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a response from the client to the request waiting for it (ids not ours are ignored).
    pub(crate) fn resolve(&self, id: Option<&str>, outcome: Result<RawJson<'_>, RawJson<'_>>) {
        let Some(id) = id.and_then(|i| i.parse::<u64>().ok()) else {
            return;
        };
        let Some(tx) = self.lock().remove(&id) else {
            return;
        };
        let answer = match outcome {
            Ok(result) => serde_json::from_str(result.get())
                .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string())),
            Err(error) => Err(client_error(error)),
        };
        let _ = tx.send(answer);
    }
}

fn client_error(error: RawJson<'_>) -> RpcError {
    let v: Value = serde_json::from_str(error.get()).unwrap_or_default();
    let code = v["code"]
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(INTERNAL_ERROR);
    let message = v["message"]
        .as_str()
        .unwrap_or("the client answered with an error")
        .to_owned();
    let mut e = RpcError::new(code, message);
    if let Some(data) = v.get("data") {
        e = e.with_data(data.to_string());
    }
    e
}

/// The client capability a server-to-client method needs.
fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

impl Context {
    /// Sends a request to the client and waits for its answer.
    ///
    /// On 2026-07-28 nothing is sent: the call answers `input_required` with
    /// this request, and when the client retries with its answer the handler
    /// runs again and this call returns it (so code before a request must be
    /// safe to run twice).
    ///
    /// Fails with -32601 when the client did not declare the capability the
    /// method needs or the transport cannot carry requests to the client; with -32001
    /// after [`CLIENT_REQUEST_TIMEOUT`]. If this call is cancelled meanwhile,
    /// the request to the client is cancelled too.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let unavailable = |why: &str| RpcError::new(METHOD_NOT_FOUND, format!("{method}: {why}"));
        if self.protocol_version().is_modern() {
            let input = self.input();
            if let Some(cap) = capability_for(method)
                && input
                    .client_capabilities
                    .as_ref()
                    .is_none_or(|c| c.get(cap).is_none())
            {
                return Err(unavailable(&format!(
                    "the client did not declare the {cap:?} capability"
                )));
            }
            let key = input.next_key();
            if let Some(answer) = input.responses.get(&key) {
                return Ok(answer.clone());
            }
            // Not answered yet: the call ends with `input_required` and runs again.
            input.want(key, method, params);
            return std::future::pending().await;
        }
        let (Some(session), Some(peer)) = (self.session(), self.peer()) else {
            return Err(unavailable(
                "this transport cannot carry requests to the client",
            ));
        };
        if let Some(cap) = capability_for(method)
            && !session.client_has_capability(cap)
        {
            return Err(unavailable(&format!(
                "the client did not declare the {cap:?} capability"
            )));
        }
        let outgoing = session.outgoing();
        let (id, rx) = outgoing.register();
        let mut msg = Vec::with_capacity(256);
        write_request(&mut msg, id, method, params.to_string().as_bytes());
        if !peer.send(msg).await {
            outgoing.forget(id);
            return Err(RpcError::new(INTERNAL_ERROR, "the client is gone"));
        }
        let answer = tokio::select! {
            a = tokio::time::timeout(CLIENT_REQUEST_TIMEOUT, rx) => a,
            () = self.cancelled() => {
                outgoing.forget(id);
                let mut note = Vec::new();
                write_notification(&mut note, "notifications/cancelled", format!(r#"{{"requestId":{id},"reason":"the request that needed it was cancelled"}}"#).as_bytes());
                peer.send(note).await;
                return Err(RpcError::new(INTERNAL_ERROR, "cancelled"));
            }
        };
        match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(RpcError::new(
                INTERNAL_ERROR,
                "the session ended before the client answered",
            )),
            Err(_) => {
                outgoing.forget(id);
                Err(RpcError::new(
                    -32001,
                    format!(
                        "{method}: no answer from the client within {}s",
                        CLIENT_REQUEST_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }
}
