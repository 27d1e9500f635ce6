//! Reference servers for the comparative benchmarks (`scripts/perf.sh`),
//! each serving the same trivial tool our conformance example serves,
//! `test_simple_text` (no arguments, one fixed line of text):
//!
//! - `rmcp-stateless PORT`: the official Rust SDK (rmcp) over Streamable
//!   HTTP on axum, stateless, JSON answers;
//! - `rmcp-session PORT`: the same with legacy sessions (2025-06-18
//!   `initialize`, answers on SSE);
//! - `hyper PORT`: the HTTP floor, a bare hyper 1.x server that reads the
//!   body and answers a fixed JSON-RPC result of the same size as ours;
//! - `ws-echo PORT`: the WebSocket floor, tokio-tungstenite echoing every
//!   text message.
//!
//! Built only by the benchmark script: the main crate never compiles it.
//! Each serves on 127.0.0.1 with tokio's default runtime, whose worker
//! count follows the CPU affinity the script pins it to.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio::net::TcpListener;

/// The tool's one line of text, as the conformance fixture has it.
const TEXT: &str = "This is a simple text response for testing.";

/// What the HTTP floor answers to every request: a `tools/call` result
/// carrying [`TEXT`], the shape (and size) of a real server's answer.
const FIXED: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}],"isError":false}}"#;

/// The rmcp server: one tool.
#[derive(Debug, Clone)]
struct Simple {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Simple {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// The conformance fixture's simple text tool.
    #[tool(description = "Tests simple text content response")]
    fn test_simple_text(&self) -> String {
        TEXT.to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Simple {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// rmcp's Streamable HTTP service on axum at `/mcp`.
async fn rmcp(listener: TcpListener, sessions: bool) -> std::io::Result<()> {
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        .with_legacy_session_mode(sessions)
        .with_json_response(!sessions);
    let service: StreamableHttpService<Simple, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Simple::new()), Default::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    // Small answers go out at once (the other servers set it too); without
    // it an SSE answer written in pieces waits on delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await
}

/// The HTTP floor: HTTP/1.1 keep-alive, the body read whole, [`FIXED`]
/// answered.
async fn hyper_floor(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let answer = hyper::service::service_fn(
                |req: hyper::Request<hyper::body::Incoming>| async move {
                    // Read (and drop) the request body, as a server must.
                    let _body = req.into_body().collect().await;
                    let response = hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(FIXED.as_bytes())))
                        .unwrap_or_default();
                    Ok::<_, Infallible>(response)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, answer)
                .await;
        });
    }
}

/// The WebSocket floor: every text or binary message sent back.
async fn ws_echo(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(message)) = rx.next().await {
                if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(port)) = (args.next(), args.next().and_then(|p| p.parse().ok())) else {
        eprintln!("usage: refs rmcp-stateless|rmcp-session|hyper|ws-echo PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {}", listener.local_addr()?);
    match kind.as_str() {
        "rmcp-stateless" => rmcp(listener, false).await,
        "rmcp-session" => rmcp(listener, true).await,
        "hyper" => hyper_floor(listener).await,
        "ws-echo" => ws_echo(listener).await,
        other => {
            eprintln!("unknown reference server {other:?}");
            std::process::exit(2);
        }
    }
}
