//! Transports: how MCP messages travel between a client and a [`crate::mcp::Session`].

pub(crate) mod origin;
mod replay;
pub mod stdio;
pub mod streamable_http;
pub mod websocket;

use std::sync::Arc;

use crate::mcp::{McpServer, Peer, Session};

/// Tells the client about server changes it should hear of (list changes,
/// updates of resources it subscribed to).
pub(crate) async fn forward_updates(server: McpServer, session: Arc<Session>, peer: Peer) {
    let mut events = server.events();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // Missed some under load: the client re-reads what it cares about anyway.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let Some(message) = session.notification_for(&event)
            && !peer.send(message).await
        {
            return;
        }
    }
}
