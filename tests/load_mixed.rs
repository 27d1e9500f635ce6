//! 200 clients at once, half over Streamable HTTP and half over WebSocket,
//! each with many requests in flight: every answer must reach the client
//! that asked, carry its own id, and hold that request's own result.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
use snowflake_mcp::{Config, Service};
use support::Client;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

const HTTP_CLIENTS: u64 = 100;
const WS_CLIENTS: u64 = 100;
/// Requests each client has in flight at once.
const IN_FLIGHT: u64 = 20;
/// An HTTP client spreads its requests over this many connections of one session.
const HTTP_CONNECTIONS: u64 = 4;

fn server() -> McpServer {
    McpServer::builder("load", "0")
        .tool(Tool::raw(
            "echo",
            "Answers n after a short wait that depends on n (so answers finish out of order).",
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
            |_ctx, args| async move {
                let n = args["n"].as_u64().unwrap_or(u64::MAX);
                tokio::time::sleep(Duration::from_millis(n % 7)).await;
                ToolOutput::text(n.to_string())
            },
        ))
        .build()
}

fn call(id: u64, n: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"n": n}}})
    .to_string()
}

/// Checks one answer: its id is one this client asked and not yet answered,
/// and its result is that request's own (`n` derives from the id).
fn check(answer: &Value, client: u64, pending: &mut BTreeSet<u64>) {
    let id = answer["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id: {answer}"));
    assert!(
        pending.remove(&id),
        "client {client} got an answer it did not ask for (or twice): {answer}"
    );
    let expected = (client * 1000 + id).to_string();
    assert_eq!(
        answer["result"]["content"][0]["text"],
        expected.as_str(),
        "{answer}"
    );
}

/// A POST of `body`, in `session` when there is one.
fn post(session: Option<&str>, body: &str) -> Vec<u8> {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-11-25\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON-RPC answer in a response (a JSON body or the SSE event that carries it).
fn answer_of(body: &[u8]) -> Value {
    support::answer_of(&String::from_utf8_lossy(body))
}

async fn http_client(addr: SocketAddr, client: u64) {
    let mut c = Client::connect(addr).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": format!("http-{client}"), "version": "0"}}})
    .to_string();
    c.send(&post(None, &init)).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let session = r.header("mcp-session-id").expect("session id").to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    c.send(&post(Some(&session), &note)).await;
    assert_eq!(c.read_response().await.status, 202);

    let per_conn = IN_FLIGHT / HTTP_CONNECTIONS;
    let mut conns = JoinSet::new();
    for k in 0..HTTP_CONNECTIONS {
        let session = session.clone();
        conns.spawn(async move {
            let mut c = Client::connect(addr).await;
            let ids: Vec<u64> = (1..=per_conn).map(|i| k * per_conn + i).collect();
            // Pipelined: every request written before any answer is read.
            let mut batch = Vec::new();
            for &id in &ids {
                batch.extend(post(Some(&session), &call(id, client * 1000 + id)));
            }
            c.send(&batch).await;
            let mut pending: BTreeSet<u64> = ids.iter().copied().collect();
            for _ in &ids {
                let r = c.read_response_to("POST").await;
                assert_eq!(r.status, 200, "{}", r.body_str());
                check(&answer_of(&r.body), client, &mut pending);
            }
            assert!(pending.is_empty());
        });
    }
    while let Some(done) = conns.join_next().await {
        done.expect("connection task");
    }
}

async fn ws_client(addr: SocketAddr, client: u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("handshake");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": format!("ws-{client}"), "version": "0"}}});
    ws.send(Message::text(init.to_string()))
        .await
        .expect("send");
    let mut pending: BTreeSet<u64> = (1..=IN_FLIGHT).collect();
    let mut initialized = false;
    // The calls go out right after initialize, all at once.
    while !pending.is_empty() {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("answer in time")
            .expect("socket open")
            .expect("frame");
        let Message::Text(text) = message else {
            continue;
        };
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        if !initialized {
            assert_eq!(answer["id"], 0, "{answer}");
            initialized = true;
            let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            ws.send(Message::text(note.to_string()))
                .await
                .expect("send");
            for id in 1..=IN_FLIGHT {
                ws.send(Message::text(call(id, client * 1000 + id)))
                    .await
                    .expect("send");
            }
            continue;
        }
        check(&answer, client, &mut pending);
    }
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_half_http_half_websocket() {
    // 200 clients from one address, each with several connections: the
    // share of one client is raised to the whole limit.
    let addr = support::serve_with(
        Service::from_server(server())
            .streamable_http("/mcp")
            .websocket("/ws")
            .ops(),
        Config {
            max_connections_per_client: Some(Config::default().max_connections),
            ..Config::default()
        },
    )
    .await;

    let started = std::time::Instant::now();
    let mut clients = JoinSet::new();
    for client in 0..HTTP_CLIENTS {
        clients.spawn(http_client(addr, client));
    }
    for client in HTTP_CLIENTS..HTTP_CLIENTS + WS_CLIENTS {
        clients.spawn(ws_client(addr, client));
    }
    let all = async {
        while let Some(done) = clients.join_next().await {
            done.expect("client task");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("all clients done in time");
    let requests = (HTTP_CLIENTS + WS_CLIENTS) * IN_FLIGHT;
    eprintln!(
        "{requests} tool calls from {} clients answered in {:?}",
        HTTP_CLIENTS + WS_CLIENTS,
        started.elapsed()
    );
    let opened = |t: &str| format!("snowflake_mcp_sessions_opened_total{{transport=\"{t}\"}}");
    let ws = support::metric(addr, &opened("websocket")).await;
    let http = support::metric(addr, &opened("streamable_http")).await;
    assert_eq!((ws, http), (WS_CLIENTS as f64, HTTP_CLIENTS as f64));
}
