//! `examples/embed_http.rs`, the host that serves its own typed tool through
//! the composition root, run as a process: its tool over Streamable HTTP and
//! WebSocket, `/health`, `/status` and `/metrics`, on one port.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::Client;
use tokio_tungstenite::tungstenite::Message;

/// The example on a free port; killed on drop.
struct Example(std::process::Child, std::net::SocketAddr);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Example {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join("embed_http");
    assert!(path.exists(), "{} not built", path.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(path)
        .arg(port.to_string())
        .spawn()
        .expect("start the example");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Example(child, addr)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn the_host_tool_over_http_and_websocket_with_health_and_metrics() {
    let example = start();
    let addr = example.1;
    let mut c = Client::connect(addr).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "greet", "arguments": {"name": "Ada"},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "embed-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    }}})
    .to_string();
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
             Mcp-Method: tools/call\r\nMcp-Name: greet\r\nContent-Length: {}\r\n\r\n{call}",
            call.len()
        )
        .as_bytes(),
    )
    .await;
    let r = c.read_response_to("POST").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let answer: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(answer["result"]["content"][0]["text"], "Hello, Ada!");

    let (mut ws, _) = support::ws_connect(addr).await;
    for message in [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "embed-test", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "greet", "arguments": {"name": "Grace"}}}),
    ] {
        ws.send(Message::text(message.to_string()))
            .await
            .expect("send");
    }
    let mut greeted = None;
    while greeted.is_none() {
        let frame = tokio::time::timeout(support::WAIT, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = frame {
            let v: Value = serde_json::from_str(&text).expect("JSON");
            if v["id"] == 2 {
                greeted = Some(v);
            }
        }
    }
    let greeted = greeted.expect("answer");
    assert_eq!(greeted["result"]["content"][0]["text"], "Hello, Grace!");

    c.send(&get("/health")).await;
    let health = c.read_response_to("GET").await;
    assert_eq!(health.status, 200);
    c.send(&get("/status")).await;
    let status: Value =
        serde_json::from_slice(&c.read_response_to("GET").await.body).expect("status");
    assert_eq!(status["warehouse"], Value::Null, "{status}");
    assert!(
        status["transports"]
            .as_array()
            .is_some_and(|t| t.len() == 2),
        "{status}"
    );
    c.send(&get("/metrics")).await;
    let metrics = c.read_response_to("GET").await.body_str();
    assert!(
        metrics.contains("method=\"tools/call\""),
        "the one MCP server counted the calls: {metrics}"
    );
}
