#![cfg(feature = "sqlite")]
//! Several replicas of one service: a 2026-07-28 `input_required` round
//! sealed by one replica opens on another that shares its state key (and
//! on none that does not), keys rotate without breaking rounds in flight;
//! a draining daemon answers `/ready` 503 while it still serves, then
//! shuts down.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use snowflake_mcp::Service;
use snowflake_mcp::mcp::{Context, InputRequests, McpServer, Tool, ToolOutput};
use support::Client;
use support::daemon::Daemon;

/// A replica whose `confirm` tool asks for a confirmation and checks the
/// state it sealed comes back.
async fn replica(keys: Vec<[u8; 32]>) -> std::net::SocketAddr {
    let form = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
    let confirm = Tool::raw(
        "confirm",
        "Asks for a confirmation, carrying state.",
        json!({"type": "object"}),
        move |ctx: Context, _args: Value| {
            let form = form.clone();
            async move {
                let asked = InputRequests::new()
                    .elicit("confirm", "Please confirm", form)
                    .state("awaiting-confirmation");
                match ctx.input(asked).await {
                    Ok(_) if ctx.request_state() == Some("awaiting-confirmation") => {
                        ToolOutput::text("confirmed")
                    }
                    Ok(_) => ToolOutput::error("no state"),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    );
    support::serve(
        Service::new(
            McpServer::builder("replica", "0")
                .state_keys(keys)
                .tool(confirm),
        )
        .streamable_http("/mcp"),
    )
    .await
}

/// A 2026-07-28 `tools/call` of `confirm` (with `params` added).
async fn call(addr: std::net::SocketAddr, more: Value) -> Value {
    let mut params = json!({"name": "confirm", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}});
    if let (Some(p), Some(m)) = (params.as_object_mut(), more.as_object()) {
        p.extend(m.clone());
    }
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string();
    support::post_modern(addr, "tools/call", Some("confirm"), &body).await
}

/// The round's `requestState`, from replica `addr`.
async fn first_round(addr: std::net::SocketAddr) -> String {
    let asked = call(addr, json!({})).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    asked["result"]["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned()
}

/// The retried call with the answer and `state`, on replica `addr`.
async fn second_round(addr: std::net::SocketAddr, state: &str) -> Value {
    call(
        addr,
        json!({"inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}},
               "requestState": state}),
    )
    .await
}

fn confirmed(answer: &Value) -> bool {
    answer["result"]["content"][0]["text"] == "confirmed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_crosses_replicas_that_share_the_state_key() {
    let (old, new) = ([7u8; 32], [9u8; 32]);
    let a = replica(vec![old]).await;
    let b = replica(vec![old]).await;
    let stranger = replica(Vec::new()).await;
    let state = first_round(a).await;
    assert!(
        confirmed(&second_round(b, &state).await),
        "another replica opens it"
    );
    let refused = second_round(stranger, &state).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    // Rotation: the new key first, the old one kept while rounds in flight
    // may carry it.
    let rotated = replica(vec![new, old]).await;
    assert!(
        confirmed(&second_round(rotated, &state).await),
        "the old key still opens"
    );
    let sealed_new = first_round(rotated).await;
    assert!(confirmed(
        &second_round(replica(vec![new]).await, &sealed_new).await
    ));
    let not_yet = second_round(a, &sealed_new).await;
    assert_eq!(
        not_yet["error"]["code"], -32602,
        "a replica without the new key: {not_yet}"
    );
}

async fn get(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut c = Client::connect(addr).await;
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    c.read_response().await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_daemon_says_not_ready_while_it_still_serves() {
    let mut daemon = Daemon::start(&["--port", "0", "--drain-grace", "2s"], &[]);
    let addr = daemon.addr;
    assert_eq!(get(addr, "/ready").await, 200);
    let started = Instant::now();
    daemon.signal("TERM");
    let mut ready = 200;
    while started.elapsed() < Duration::from_secs(1) && ready == 200 {
        ready = get(addr, "/ready").await;
    }
    assert_eq!(ready, 503, "/ready turns 503 on SIGTERM");
    // Liveness stays, and MCP requests are still served during the grace.
    assert_eq!(get(addr, "/health").await, 200);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.read_response_to("POST").await.status, 200);
    let (status, _, stderr) = daemon.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it served out its grace: {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("draining"), "{stderr}");
}

/// An `initialize` POST's status, after `prefix` (a PROXY header) and with
/// `extra` header lines.
async fn initialize(addr: std::net::SocketAddr, prefix: &[u8], extra: &str) -> u16 {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        )
        .as_bytes(),
    );
    let mut c = Client::connect(addr).await;
    c.send(&bytes).await;
    c.read_response_to("POST").await.status
}

/// A PROXY protocol v2 header naming `client` (IPv4).
fn proxy_v2(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8000u16.to_be_bytes());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_protocol_names_the_client_the_rate_limit_counts() {
    let daemon = Daemon::start(
        &["--port", "0", "--proxy-protocol", "--rate-limit", "0.2:1"],
        &[],
    );
    let addr = daemon.addr;
    // One request each from two clients behind the balancer: both served.
    assert_eq!(
        initialize(addr, &proxy_v2([203, 0, 113, 1], 4000), "").await,
        200
    );
    assert_eq!(
        initialize(addr, &proxy_v2([203, 0, 113, 2], 4001), "").await,
        200
    );
    // The first again: its own bucket is empty.
    assert_eq!(
        initialize(addr, &proxy_v2([203, 0, 113, 1], 4002), "").await,
        429
    );
    // Version 1 works too; a connection without a header is closed unanswered.
    let v1 = b"PROXY TCP4 203.0.113.3 127.0.0.1 4003 8000\r\n";
    assert_eq!(initialize(addr, v1, "").await, 200);
    let mut plain = Client::connect(addr).await;
    plain
        .send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert!(plain.is_closed_within(Duration::from_secs(8)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusting = Daemon::start(
        &[
            "--port",
            "0",
            "--trusted-proxies",
            "127.0.0.0/8",
            "--rate-limit",
            "0.2:1",
        ],
        &[],
    );
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    // Each forwarded client its own bucket; a client cannot pick its
    // address by sending its own header first (the last one counts).
    for (forwarded, status) in [
        ("203.0.113.1", 200),
        ("203.0.113.2", 200),
        ("203.0.113.1", 429),
        ("198.51.100.7, 203.0.113.2", 429),
    ] {
        assert_eq!(
            initialize(trusting.addr, b"", &xff(forwarded)).await,
            status,
            "{forwarded}"
        );
    }
    // Without trusted proxies the header is ignored: one address, one bucket.
    let plain = Daemon::start(&["--port", "0", "--rate-limit", "0.2:1"], &[]);
    assert_eq!(initialize(plain.addr, b"", &xff("203.0.113.1")).await, 200);
    assert_eq!(initialize(plain.addr, b"", &xff("203.0.113.2")).await, 429);
}
