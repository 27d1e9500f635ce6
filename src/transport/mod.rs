//! Transports: how MCP messages travel between a client and a [`crate::mcp::Session`].

mod replay;
pub mod stdio;
pub mod streamable_http;
pub mod websocket;

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::mcp::{
    Dispatched, Handled, LARGE_MESSAGE, McpServer, OwnedCall, Peer, Session, Started,
    owned_in_pieces,
};
use bytes::Bytes;

pub(crate) use crate::guard::error_response;

/// Request headers MCP clients send that a CORS preflight must allow (the
/// service adds them to [`crate::http::Cors::allow_headers`]).
pub const MCP_CORS_ALLOW_HEADERS: &str =
    "Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID";

/// Response headers of MCP a browser page must be able to read.
pub const MCP_CORS_EXPOSE_HEADERS: &str = "Mcp-Session-Id";

/// The calls of one connection that run on tasks of their own (those not
/// done at their first poll). The set is made when the first one starts and
/// dropped when the last one ends: an idle socket keeps none (about 80
/// bytes each).
#[derive(Default)]
pub(crate) struct Calls(Option<JoinSet<()>>);

impl Calls {
    fn spawn(&mut self, call: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.get_or_insert_with(JoinSet::new).spawn(call);
    }

    /// Whether none runs.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(JoinSet::is_empty)
    }

    /// How many run.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, JoinSet::len)
    }

    /// Waits for one to end (`None` at once when none runs).
    pub(crate) async fn join_next(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`Calls::join_next`] as a poll, which keeps no state between polls.
    pub(crate) fn poll_join_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        let Some(set) = self.0.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let ended = std::task::ready!(set.poll_join_next(cx)).map(|_| ());
        if set.is_empty() {
            self.0 = None;
        }
        std::task::Poll::Ready(ended)
    }

    /// Reaps the ended ones without waiting.
    pub(crate) fn reap(&mut self) {
        if let Some(set) = &mut self.0 {
            while set.try_join_next().is_some() {}
            if set.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Cancels every one still running.
    pub(crate) fn abort_all(&mut self) {
        if let Some(set) = &mut self.0 {
            set.abort_all();
        }
    }
}

/// Handles one message of a transport that carries answers back over a
/// [`Peer`] (stdio, WebSocket): what dispatch answers at once lands in
/// `out` for the caller to send; a call or a batch runs in `calls`, its
/// answer sent to `peer` when it ends. A large message is read off the
/// async workers (`Session::dispatch_large`); the caller waits for that, so
/// the connection's messages are still dispatched in order.
pub(crate) async fn dispatch_to_peer(
    session: &Arc<Session>,
    peer: &Peer,
    message: &[u8],
    out: &mut Vec<u8>,
    calls: &mut Calls,
) {
    if message.len() >= LARGE_MESSAGE {
        let message = owned_in_pieces(message).await;
        // Boxed: rare, and its state would set the size of every caller's.
        return Box::pin(dispatch_large_to_peer(session, peer, message, out, calls)).await;
    }
    match session.dispatch(message, out) {
        Dispatched::Done => {}
        Dispatched::Call(call) => run_to_peer(call.into_owned(session), peer, calls, out).await,
        Dispatched::Batch => {
            let session = Arc::clone(session);
            let peer = peer.clone();
            let batch = message.to_vec();
            calls.spawn(async move {
                let plan = session.plan_batch(&batch);
                if let Some(answer) = session.run_batch(&batch, plan).await {
                    peer.send(answer).await;
                }
            });
        }
    }
}

/// [`dispatch_to_peer`] for a large message the caller already owns
/// (a WebSocket frame's payload: no copy).
pub(crate) async fn dispatch_large_to_peer(
    session: &Arc<Session>,
    peer: &Peer,
    message: Bytes,
    out: &mut Vec<u8>,
    calls: &mut Calls,
) {
    match session.dispatch_large(message.clone(), None).await {
        Handled::Done(answer) => out.extend_from_slice(&answer),
        Handled::Call(call) => run_to_peer(*call, peer, calls, out).await,
        Handled::Batch(plan) => {
            let (session, peer) = (Arc::clone(session), peer.clone());
            calls.spawn(async move {
                if let Some(answer) = session.run_batch(&message, plan).await {
                    peer.send(answer).await;
                }
            });
        }
    }
}

/// Runs a call; its answer goes to `peer`. A call done at its first poll
/// (most are) is answered in `out` instead, without a task of its own,
/// when nothing waits in `peer`'s queue: the caller sends `out` at once,
/// so it must not pass a message the call queued before its answer. Any
/// other call runs in `calls` (that first poll's waker does nothing; the
/// task's first poll looks again and takes the wake over).
async fn run_to_peer(call: OwnedCall, peer: &Peer, calls: &mut Calls, out: &mut Vec<u8>) {
    let mut idle = std::task::Context::from_waker(std::task::Waker::noop());
    match call.start(&mut idle) {
        Started::Answered(None) => {}
        // Moved when `out` is empty (it is: dispatch wrote nothing for a call).
        Started::Answered(Some(answer)) if peer.is_empty() && out.is_empty() => {
            *out = answer.bytes;
        }
        Started::Answered(Some(answer)) if peer.is_empty() => {
            out.extend_from_slice(&answer.bytes);
        }
        Started::Answered(Some(answer)) => {
            let peer = peer.clone();
            calls.spawn(async move {
                peer.send(answer.bytes).await;
            });
        }
        Started::Running(run) => {
            let peer = peer.clone();
            calls.spawn(async move {
                if let Some(answer) = run.await {
                    peer.send(answer.bytes).await;
                }
            });
        }
    }
}

/// Tells the client about server changes it should hear of (list changes,
/// updates of resources it subscribed to), through its peer queue.
pub(crate) async fn forward_updates(server: McpServer, session: Arc<Session>, peer: Peer) {
    let mut events = Some(server.events());
    while events.is_some() {
        if let Some(message) = next_event(&mut events)
            .await
            .and_then(|e| session.notification_for(&e))
            && !peer.send(message).await
        {
            return;
        }
    }
}

/// The server's next event for a session; `None` once there will be no
/// more (`events` is then emptied) or when some were missed under load
/// (the client re-reads what it cares about anyway).
pub(crate) async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::mcp::ServerEvent>>,
) -> Option<crate::mcp::ServerEvent> {
    use tokio::sync::broadcast::error::RecvError;
    let receiver = events.as_mut()?;
    match receiver.recv().await {
        Ok(event) => Some(event),
        Err(RecvError::Lagged(_)) => None,
        Err(RecvError::Closed) => {
            *events = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::{LogLevel, Tool, ToolOutput};
    use serde_json::{Value, json};

    fn server() -> McpServer {
        let tool = |name: &'static str, logs: bool, waits: bool| {
            Tool::raw(
                name,
                "A fixture.",
                json!({"type": "object"}),
                move |ctx, _| async move {
                    if logs {
                        ctx.log(LogLevel::Info, json!("before the answer")).await;
                    }
                    if waits {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    ToolOutput::text(name)
                },
            )
        };
        McpServer::builder("t", "1")
            .tool(tool("quiet", false, false))
            .tool(tool("chatty", true, false))
            .tool(tool("waits", false, true))
            .build()
    }

    fn call(id: u32, name: &str) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name}})
            .to_string()
            .into_bytes()
    }

    fn text_of(answer: &[u8]) -> Value {
        let answer: Value = serde_json::from_slice(answer).expect("JSON");
        answer["result"]["content"][0]["text"].clone()
    }

    /// A call done at its first poll is answered in `out`, without a task;
    /// one that queued a message first is answered through the queue,
    /// after that message; one that waits runs as a task.
    #[tokio::test]
    async fn a_call_done_at_once_is_answered_in_place_unless_it_queued_a_message() {
        let (peer, mut rx) = Peer::channel(16);
        let session = Arc::new(Session::new(server(), Some(peer.clone())));
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        assert!(session.handle(init.to_string().as_bytes()).await.is_some());
        let (mut out, mut calls) = (Vec::new(), Calls::default());

        dispatch_to_peer(&session, &peer, &call(1, "quiet"), &mut out, &mut calls).await;
        assert_eq!(text_of(&out), json!("quiet"));
        assert!(calls.is_empty() && rx.is_empty());

        out.clear();
        dispatch_to_peer(&session, &peer, &call(2, "chatty"), &mut out, &mut calls).await;
        assert!(out.is_empty(), "the answer would pass the log message");
        while calls.join_next().await.is_some() {}
        let log: Value = serde_json::from_slice(&rx.try_recv().expect("log")).expect("JSON");
        assert_eq!(log["method"], "notifications/message");
        assert_eq!(text_of(&rx.try_recv().expect("answer")), json!("chatty"));

        dispatch_to_peer(&session, &peer, &call(3, "waits"), &mut out, &mut calls).await;
        assert!(out.is_empty());
        assert_eq!(calls.len(), 1);
        while calls.join_next().await.is_some() {}
        assert_eq!(text_of(&rx.try_recv().expect("answer")), json!("waits"));
        assert!(rx.is_empty());
    }
}
