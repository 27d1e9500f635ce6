//! A WebSocket echo server on the crate's own HTTP engine and handshake,
//! with tokio-tungstenite frames as `/ws` uses them: the server the Autobahn
//! cases (`tests/autobahn/run.sh`) run against. Any path upgrades.
//!
//! ```text
//! cargo run --features fuzzing --example ws_echo -- 9001
//! ```
//!
//! It needs the `fuzzing` feature: the handshake (`ws::handshake`) is an
//! engine internal the feature exposes to harnesses like this one.

use futures_util::{SinkExt as _, StreamExt as _};
use snowflake_mcp::http::{Handler, Method, Reply, Request, Response, Router, Upgraded};
use snowflake_mcp::ws::handshake::negotiate;
use snowflake_mcp::{Config, Server};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Upgrades any GET and echoes every data message.
struct Echo;

impl Handler for Echo {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        // Any origin: Autobahn's client sends none that matters here.
        let accepted = match negotiate(&req, |_| Ok(())) {
            Ok(accepted) => accepted,
            Err(refused) => return Reply::ready(refused.response()),
        };
        Reply::ready(accepted.headers(Response::upgrade(echo)))
    }
}

async fn echo(up: Upgraded) {
    // Autobahn's cases send messages up to 16 MiB.
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let mut ws = WebSocketStream::from_partially_read(
        up.stream,
        up.read_ahead.to_vec(),
        Role::Server,
        Some(config),
    )
    .await;
    // Poll on after a Close: tungstenite sends its Close reply as the
    // stream is polled, and the stream ends (None) once the closing
    // handshake is complete.
    while let Some(message) = ws.next().await {
        let reply = match message {
            Ok(Message::Text(text)) => Message::Text(text),
            Ok(Message::Binary(data)) => Message::Binary(data),
            Ok(_) => continue,
            Err(_) => break,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), snowflake_mcp::Error> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let router = Router::new().route(Method::Get, "/", Echo);
    let config = Config {
        port,
        ..Config::default()
    };
    let server = Server::bind(config, router).await?;
    println!("listening on ws://{}", server.local_addr());
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
