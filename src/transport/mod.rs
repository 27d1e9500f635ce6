//! Transports: how MCP messages travel between a client and a [`crate::mcp::Session`].

mod replay;
pub mod stdio;
pub mod streamable_http;
