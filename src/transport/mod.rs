//! Transports: how MCP messages travel between a client and a [`crate::mcp::Session`].

mod replay;
pub mod stdio;
pub mod streamable_http;
pub mod websocket;

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::mcp::{
    Dispatched, Handled, LARGE_MESSAGE, McpServer, OwnedCall, Peer, Session, owned_in_pieces,
};
use bytes::Bytes;

pub(crate) use crate::guard::error_response;

/// Request headers MCP clients send that a CORS preflight must allow (the
/// service adds them to [`crate::http::Cors::allow_headers`]).
pub const MCP_CORS_ALLOW_HEADERS: &str =
    "Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID";

/// Response headers of MCP a browser page must be able to read.
pub const MCP_CORS_EXPOSE_HEADERS: &str = "Mcp-Session-Id";

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
    calls: &mut JoinSet<()>,
) {
    if message.len() >= LARGE_MESSAGE {
        let message = owned_in_pieces(message).await;
        // Boxed: rare, and its state would set the size of every caller's.
        return Box::pin(dispatch_large_to_peer(session, peer, message, out, calls)).await;
    }
    match session.dispatch(message, out) {
        Dispatched::Done => {}
        Dispatched::Call(call) => run_to_peer(call.into_owned(session), peer, calls),
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
    calls: &mut JoinSet<()>,
) {
    match session.dispatch_large(message.clone(), None).await {
        Handled::Done(answer) => out.extend_from_slice(&answer),
        Handled::Call(call) => run_to_peer(*call, peer, calls),
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

/// Runs a call in `calls`; its answer goes to `peer`.
fn run_to_peer(call: OwnedCall, peer: &Peer, calls: &mut JoinSet<()>) {
    let peer = peer.clone();
    calls.spawn(async move {
        if let Some(answer) = call.run().await {
            peer.send(answer).await;
        }
    });
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
