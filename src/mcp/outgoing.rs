//! Requests from the server to the client (sampling, elicitation, roots) and
//! the matching of their answers.

use std::time::Duration;

use serde_json::Value;

use super::context::{Context, InputRound, Wanted};
use crate::jsonrpc::write::{write_notification, write_request};
use crate::jsonrpc::{INTERNAL_ERROR, METHOD_NOT_FOUND, RpcError};

/// How long a server-to-client request waits for its answer. Default: 60 s.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// JSON-RPC code (2026-07-28) for a request that needs a client capability
/// the client did not declare; `data.requiredCapabilities` names it.
pub const MISSING_CLIENT_CAPABILITY: i32 = -32021;

fn missing_capability(method: &str, cap: &str) -> RpcError {
    RpcError::new(
        MISSING_CLIENT_CAPABILITY,
        format!("{method} needs the client capability {cap:?}, which the client did not declare"),
    )
    .with_data(serde_json::json!({ "requiredCapabilities": { cap: {} } }).to_string())
}

/// Requests a handler needs the client to answer before it can go on, by key
/// (see [`Context::input`]).
///
/// ```
/// use snowflake_mcp::mcp::InputRequests;
/// use serde_json::json;
///
/// let requests = InputRequests::new()
///     .elicit("user_name", "What is your name?", json!({
///         "type": "object",
///         "properties": { "name": { "type": "string" } },
///         "required": ["name"]
///     }))
///     .list_roots("client_roots")
///     .state("round-1");
/// assert_eq!(requests.len(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct InputRequests {
    requests: Vec<(String, &'static str, Value)>,
    state: Option<String>,
}

impl InputRequests {
    /// No requests yet.
    pub fn new() -> InputRequests {
        InputRequests::default()
    }

    /// An `elicitation/create` request: ask the user, with a form schema.
    pub fn elicit(self, key: impl Into<String>, message: &str, schema: Value) -> Self {
        self.request(
            key,
            "elicitation/create",
            serde_json::json!({ "message": message, "requestedSchema": schema }),
        )
    }

    /// A `sampling/createMessage` request with these params.
    pub fn sample(self, key: impl Into<String>, params: Value) -> Self {
        self.request(key, "sampling/createMessage", params)
    }

    /// A `roots/list` request.
    pub fn list_roots(self, key: impl Into<String>) -> Self {
        self.request(key, "roots/list", serde_json::json!({}))
    }

    fn request(mut self, key: impl Into<String>, method: &'static str, params: Value) -> Self {
        self.requests.push((key.into(), method, params));
        self
    }

    /// State the handler wants back on the retried request (2026-07-28
    /// `requestState`, sealed so the client cannot alter it; read it with
    /// [`Context::request_state`]).
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// How many requests there are.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// 2026-07-28: the -32021 error when the client's `_meta` capabilities
/// lack what `method` needs.
fn undeclared(input: &InputRound, method: &str) -> Option<RpcError> {
    let cap = capability_for(method)?;
    input
        .client_capabilities
        .get()
        .is_none_or(|c| c.get(cap).is_none())
        .then(|| missing_capability(method, cap))
}

/// Fails the call with `e`: inside a task the handler gets it back; else
/// the run ends with it (and this future never resolves).
async fn fail<T>(input: &InputRound, e: RpcError) -> Result<T, RpcError> {
    if input.task.get().is_some() {
        return Err(e);
    }
    input.want(Wanted::Fail(e));
    std::future::pending().await
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
    /// What the client declared it can do (`sampling`, `elicitation`,
    /// `roots`, ...): from `initialize`, or on 2026-07-28 from the request's `_meta`.
    pub fn client_capabilities(&self) -> Option<Value> {
        if self.protocol_version().is_modern() {
            return self.round().client_capabilities.get().cloned();
        }
        self.session().and_then(|s| s.client_capabilities())
    }

    /// The state this handler set with [`InputRequests::state`] in an earlier
    /// round, as the client echoed it (checked: a tampered state never gets here).
    pub fn request_state(&self) -> Option<&str> {
        self.round().request_state.as_deref()
    }

    /// The client's answer to the input request `key` of an earlier round (2026-07-28).
    pub fn input_response(&self, key: &str) -> Option<&Value> {
        self.round().responses.get(key)
    }

    /// Gets the client's answers to several requests at once, by key.
    ///
    /// On 2026-07-28: when the retried request carries an answer for every
    /// key, they are returned; otherwise the call ends here with an
    /// `input_required` result listing the unanswered requests (and the
    /// sealed state), and the handler runs again when the client retries.
    /// Before 2026-07-28 each request is sent to the client in turn and its
    /// answer awaited. A request whose capability the client did not declare
    /// fails the call with -32021 on 2026-07-28, and returns -32601 before.
    pub async fn input(
        &self,
        requests: InputRequests,
    ) -> Result<serde_json::Map<String, Value>, RpcError> {
        let mut answers = serde_json::Map::new();
        if !self.protocol_version().is_modern() {
            for (key, method, params) in requests.requests {
                let answer = self.request(method, params).await?;
                answers.insert(key, answer);
            }
            return Ok(answers);
        }
        let input = self.round();
        for (_, method, _) in &requests.requests {
            if let Some(e) = undeclared(input, method) {
                return fail(input, e).await;
            }
        }
        if let Some(task) = input.task.get() {
            let asked = requests
                .requests
                .into_iter()
                .map(|(key, method, params)| {
                    (
                        key,
                        serde_json::json!({ "method": method, "params": params }),
                    )
                })
                .collect();
            return Ok(task.input(asked).await);
        }
        let mut missing = serde_json::Map::new();
        for (key, method, params) in requests.requests {
            match input.responses.get(&key) {
                Some(answer) => {
                    answers.insert(key, answer.clone());
                }
                None => {
                    missing.insert(
                        key,
                        serde_json::json!({ "method": method, "params": params }),
                    );
                }
            }
        }
        if missing.is_empty() {
            return Ok(answers);
        }
        input.want(Wanted::Input {
            requests: missing,
            state: requests.state,
        });
        std::future::pending().await
    }

    /// Sends a request to the client and waits for its answer.
    ///
    /// On 2026-07-28 nothing is sent: the call answers `input_required` with
    /// this request, and when the client retries with its answer the handler
    /// runs again and this call returns it (so code before a request must be
    /// safe to run twice).
    ///
    /// Fails with -32601 when the client did not declare the capability the
    /// method needs (on 2026-07-28 the whole call fails with -32021 instead)
    /// or the transport cannot carry requests to the client; with -32001
    /// after 60 s. If this call is cancelled meanwhile,
    /// the request to the client is cancelled too.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let unavailable = |why: &str| RpcError::new(METHOD_NOT_FOUND, format!("{method}: {why}"));
        if self.protocol_version().is_modern() {
            let input = self.round();
            if let Some(e) = undeclared(input, method) {
                return fail(input, e).await;
            }
            let key = input.next_key();
            if let Some(task) = input.task.get() {
                let mut asked = serde_json::Map::new();
                asked.insert(
                    key.clone(),
                    serde_json::json!({ "method": method, "params": params }),
                );
                let mut answers = task.input(asked).await;
                return answers.remove(&key).ok_or_else(|| {
                    RpcError::new(INTERNAL_ERROR, "the task ended without the answer")
                });
            }
            if let Some(answer) = input.responses.get(&key) {
                return Ok(answer.clone());
            }
            // Not answered yet: the call ends with `input_required` and runs again.
            input.want_one(key, method, params);
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
