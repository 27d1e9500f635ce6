//! snowflake-mcp: a Model Context Protocol server library for Snowflake.
//!
//! It serves MCP over stdio, Streamable HTTP and WebSocket to many clients at
//! once, from inside whatever process links it. There is no web framework
//! underneath: the HTTP/1.1 engine ([`http`]) is this crate's own, on raw
//! tokio sockets, with `httparse` reading request heads and our own framing
//! rules on top.
//!
//! # Example
//!
//! Serve a route on a free port, call it over a real socket, shut down:
//!
//! ```
//! use snowflake_mcp::http::{Method, Request, Response, Router};
//! use snowflake_mcp::{Config, Server};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new().route(Method::Get, "/health", |_: Request<'_>| {
//!     Response::json(200, r#"{"status":"ok"}"#)
//! });
//! let server = Server::bind(Config { port: 0, ..Config::default() }, router).await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.serve(async { let _ = stopped.await; }));
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client
//!     .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
//!     .await?;
//! let mut answer = String::new();
//! client.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(answer.ends_with(r#"{"status":"ok"}"#));
//!
//! stop.send(()).ok();
//! serving.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`service`]: [`Service`], the composition root: one MCP server (the
//!   host's tools, and optionally the warehouse's) on Streamable HTTP,
//!   WebSocket, stdio and the operations endpoints; [`prelude`] imports
//!   what a host uses.
//! - [`server`]: [`Server`] binds (127.0.0.1 by default), accepts under a
//!   connection limit, and shuts down gracefully.
//! - [`http`]: the HTTP/1.1 engine, one module per protocol stage: request
//!   head (`http::head`), chunked bodies (`http::chunked`), the
//!   connection loop with its limits and timeouts, response encoding,
//!   Server-Sent Events (`sse`), and the [`http::Router`] that later
//!   layers (MCP, WebSocket upgrade, operations endpoints) plug into.
//! - [`config`]: [`Config`], every limit and timeout, a plain struct with
//!   its defaults.
//! - [`shutdown`]: the shutdown signal fanned out to connections.
//! - `registry` (crate-internal): the connection manager; counters of every
//!   connection, MCP session and WebSocket by transport, read without a lock.
//! - `jsonrpc`, [`mcp`]: JSON-RPC parsing and writing, and the MCP protocol
//!   (versions, lifecycle, tools, resources, prompts) on top.
//! - [`transport`]: stdio, Streamable HTTP and WebSocket; `ws`: the
//!   WebSocket handshake and limits.
//! - [`error`]: the public [`Error`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod budget;
pub mod config;
pub mod error;
pub mod guard;
#[cfg(feature = "fuzzing")]
pub mod histogram;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod histogram;
pub mod http;
#[cfg(feature = "fuzzing")]
pub mod jsonrpc;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod jsonrpc;
pub mod mcp;
pub(crate) mod ops;
pub mod pool;
pub mod proxy_protocol;
pub(crate) mod registry;
pub mod requests;
pub mod server;
pub mod service;
pub mod shutdown;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tools;
pub mod transport;
#[cfg(feature = "fuzzing")]
pub mod util;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod util;
pub mod warehouse;
#[cfg(feature = "fuzzing")]
pub mod ws;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod ws;

pub use config::Config;
pub use error::Error;
pub use ops::Readiness;
pub use server::Server;
pub use service::Service;

/// What a host embedding the server usually needs, in one import:
/// `use snowflake_mcp::prelude::*;`.
pub mod prelude {
    pub use crate::http::Cors;
    pub use crate::mcp::{
        Content, Context, McpServer, McpServerBuilder, Prompt, PromptMessage, PromptOutput,
        Resource, ResourceContents, Tool, ToolOutput,
    };
    pub use crate::pool::PoolConfig;
    pub use crate::requests::RequestsConfig;
    pub use crate::tools::ToolsConfig;
    pub use crate::transport::streamable_http::HttpMcpConfig;
    pub use crate::transport::websocket::WsConfig;
    pub use crate::warehouse::Warehouse;
    pub use crate::{Config, Error, Server, Service};
}
