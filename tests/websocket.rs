//! The WebSocket transport over real sockets: every handshake rule, and the
//! session loop (concurrency, limits, keep-alive, backpressure, shutdown).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use snowflake_mcp::http::Router;
use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
use snowflake_mcp::transport::websocket::WebSocketMcp;
use snowflake_mcp::transport::websocket::WsConfig;
use snowflake_mcp::{Config, Server, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::WAIT;

use support::Ws;

/// Calls of `slow` that were dropped before they finished.
static SLOW_DROPPED: AtomicUsize = AtomicUsize::new(0);

struct DropCounter(bool);

impl Drop for DropCounter {
    fn drop(&mut self) {
        if !self.0 {
            SLOW_DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), snowflake_mcp::Error>>,
}

fn mcp_server() -> McpServer {
    McpServer::builder("ws-test", "0")
        .tool(Tool::raw(
            "slow",
            "Sleeps for ms milliseconds, then answers.",
            json!({"type": "object"}),
            |_ctx, args| async move {
                let mut guard = DropCounter(false);
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(300);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                guard.0 = true;
                ToolOutput::text(format!("slept {ms}"))
            },
        ))
        .tool(Tool::raw(
            "big",
            "Answers 64 KiB of text.",
            json!({"type": "object"}),
            |_ctx, _| async { ToolOutput::text("x".repeat(64 * 1024)) },
        ))
        .tool(Tool::raw(
            "bigger",
            "Answers 1 MiB of text.",
            json!({"type": "object"}),
            |_ctx, _| async { ToolOutput::text("y".repeat(1024 * 1024)) },
        ))
        .build()
}

async fn start(config: WsConfig) -> Running {
    start_with(config, Config::default()).await
}

/// [`start`] on a server with these settings (its port and shutdown time
/// replaced).
async fn start_with(config: WsConfig, server: Config) -> Running {
    let endpoint = WebSocketMcp::with_config(mcp_server(), config);
    let router = endpoint.routes(Router::new(), "/ws");
    let server = Server::bind(
        Config {
            port: 0,
            shutdown_timeout: Duration::from_secs(5),
            ..server
        },
        router,
    )
    .await
    .expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn connect(addr: SocketAddr) -> Ws {
    let (ws, response) = support::ws_connect(addr).await;
    assert_eq!(response.status(), 101);
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"mcp"[..])
    );
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The next text message as JSON (pings and pongs skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("socket open")
            .expect("frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code.
async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

async fn initialize(ws: &mut Ws) {
    send(
        ws,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "ws-test", "version": "0"}}}),
    )
    .await;
    let answer = recv(ws).await;
    assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
    send(
        ws,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

/// Sends a raw request head and returns the whole answer head.
async fn raw_handshake(addr: SocketAddr, head: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    (String::from_utf8(got).expect("ASCII head"), stream)
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn handshake(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A masked client text frame (payload under 126 bytes).
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn handshake_rules_over_a_socket() {
    let server = start(WsConfig::default()).await;
    let cases: &[(String, &str)] = &[
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            "HTTP/1.1 426 ",
        ),
        (
            handshake("").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            "HTTP/1.1 426 ",
        ),
        (handshake("").replace(KEY, "c2hvcnQ="), "HTTP/1.1 400 "),
        (
            handshake("").replace(KEY, "not base64 at all!!!!!!!"),
            "HTTP/1.1 400 ",
        ),
        (
            handshake("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
            "HTTP/1.1 400 ",
        ),
        (
            handshake("").replace("Connection: Upgrade", "Connection: keep-alive"),
            "HTTP/1.1 400 ",
        ),
        (
            handshake("Origin: https://evil.example\r\n"),
            "HTTP/1.1 403 ",
        ),
        (
            handshake("Sec-WebSocket-Protocol: chat\r\n"),
            "HTTP/1.1 400 ",
        ),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".into(),
            "HTTP/1.1 405 ",
        ),
    ];
    for (head, status) in cases {
        let (answer, _) = raw_handshake(server.addr, head).await;
        assert!(answer.starts_with(status), "{head:?} -> {answer:?}");
        if status.contains("426") {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("sec-websocket-version: 13\r\n"),
                "{answer}"
            );
        }
    }

    // The good handshake: accept key, subprotocol, no extension echoed.
    let (answer, _) = raw_handshake(
        server.addr,
        &handshake("Sec-WebSocket-Protocol: mcp\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nOrigin: http://localhost:3000\r\n"),
    )
    .await;
    let lower = answer.to_ascii_lowercase();
    assert!(
        answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{answer}"
    );
    assert!(answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
    assert!(lower.contains("upgrade: websocket\r\n"), "{answer}");
    assert!(lower.contains("connection: upgrade\r\n"), "{answer}");
    assert!(
        lower.contains("sec-websocket-protocol: mcp\r\n"),
        "{answer}"
    );
    assert!(!lower.contains("sec-websocket-extensions"), "{answer}");
}

#[tokio::test]
async fn bytes_sent_with_the_handshake_are_not_lost() {
    let server = start(WsConfig::default()).await;
    let mut bytes = handshake("Sec-WebSocket-Protocol: mcp\r\n").into_bytes();
    bytes.extend(masked_text(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#));
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // Head and first frame in one write: the frame arrives with the head.
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let answer = br#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
    while !got.windows(answer.len()).any(|w| w == answer) {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn requests_run_concurrently_and_answer_out_of_order() {
    let server = start(WsConfig::default()).await;
    let mut ws = connect(server.addr).await;
    initialize(&mut ws).await;
    send(&mut ws, call(1, "slow", json!({"ms": 400}))).await;
    send(&mut ws, call(2, "slow", json!({"ms": 10}))).await;
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let answer = recv(&mut ws).await;
        assert!(answer.get("error").is_none(), "{answer}");
        order.push(answer["id"].as_u64().expect("id"));
    }
    assert_eq!(order, [3, 2, 1]);
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let server = start(WsConfig::default()).await;
    let mut ws = connect(server.addr).await;
    ws.send(Message::binary(b"{}".to_vec()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));
}

#[tokio::test]
async fn oversized_messages_close_with_1009() {
    let config = WsConfig {
        max_message_bytes: 1024,
        ..WsConfig::default()
    };
    let server = start(config).await;
    let mut ws = connect(server.addr).await;
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(2000)}});
    send(&mut ws, big).await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
    // Past the limit by more than all sockets may hold of large messages
    // (16 times the limit): still 1009, not the bound's 1013.
    let config = WsConfig {
        max_message_bytes: 100 * 1024,
        ..WsConfig::default()
    };
    let server = start(config).await;
    let mut ws = connect(server.addr).await;
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "ping",
                      "params": {"pad": "x".repeat(2 << 20)}});
    send(&mut ws, huge).await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
}

/// The server's `max_large_bodies_bytes` bounds the large frames and
/// messages all sockets hold at once too: with room for 500 KiB, a socket
/// that holds a 300 KiB first fragment leaves no room for another's
/// (closed with 1013 at its header); the first goes on and is answered,
/// and its room is then taken again.
#[tokio::test]
async fn the_bound_on_large_messages_is_the_servers_bound_on_large_bodies() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let config = WsConfig {
        max_message_bytes: 400 * 1024,
        ..WsConfig::default()
    };
    let bodies = Config {
        max_body_bytes: 400 * 1024,
        max_large_bodies_bytes: Some(500 * 1024),
        ..Config::default()
    };
    let server = start_with(config, bodies).await;
    let fragment = |bytes: &[u8], first: bool, last: bool| {
        let opcode = if first {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        Message::Frame(Frame::message(bytes.to_vec(), opcode, last))
    };
    let json = |len: usize| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "ping",
               "params": {"pad": "x".repeat(len)}})
        .to_string()
    };
    let message = json(350 * 1024);
    let (head, tail) = message.as_bytes().split_at(300 * 1024);
    let mut holder = connect(server.addr).await;
    initialize(&mut holder).await;
    holder
        .send(fragment(head, true, false))
        .await
        .expect("first fragment");
    // Another socket's first 300 KiB fragment would pass the bound.
    let mut other = connect(server.addr).await;
    initialize(&mut other).await;
    let _ = other.send(fragment(head, true, false)).await;
    assert_eq!(close_code(&mut other).await, Some(CloseCode::Again));
    // The holder finishes its message and is answered.
    holder
        .send(fragment(tail, false, true))
        .await
        .expect("last fragment");
    assert_eq!(recv(&mut holder).await["id"], 7);
    // Its room is given back once it is idle again (a small round trip
    // after the answer makes sure of that): a new socket's large message
    // fits.
    send(
        &mut holder,
        json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}),
    )
    .await;
    assert_eq!(recv(&mut holder).await["id"], 8);
    let mut later = connect(server.addr).await;
    initialize(&mut later).await;
    later
        .send(Message::text(json(300 * 1024)))
        .await
        .expect("large message");
    assert_eq!(recv(&mut later).await["id"], 7);
}

/// A server with `config` and a client with a small window that calls
/// `tool` `calls` times and reads nothing until the server has found the
/// socket full for longer than its send timeout and closed it (its
/// operators see the count); then everything the client gets, each answer
/// checked by `check`: how many answers, and the close code (`None` for a
/// broken frame or no close).
async fn unread_until_closed(
    config: WsConfig,
    tool: &str,
    calls: u64,
    mut check: impl FnMut(&str),
) -> (usize, Option<CloseCode>) {
    let addr = support::serve(
        Service::from_server(mcp_server())
            .websocket_with("/ws", config)
            .ops(),
    )
    .await;
    let (mut ws, _) = support::ws_connect_small_window(addr).await;
    initialize(&mut ws).await;
    for id in 1..=calls {
        send(&mut ws, call(id, tool, json!({}))).await;
    }
    let closed = "snowflake_mcp_websockets_closed_not_reading_total";
    // (A debug build on a slow machine spends a few milliseconds of CPU on
    // each answer.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while support::metric(addr, closed).await != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "not closed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
        {
            Some(Ok(Message::Text(text))) => {
                check(text.as_str());
                answers += 1;
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    (answers, code)
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_with_1008() {
    let config = WsConfig {
        send_timeout: Duration::from_millis(300),
        outbound_queue: 8,
        ..WsConfig::default()
    };
    // 400 answers of 64 KiB (25 MiB) are more than the socket buffers hold.
    let (answers, code) = unread_until_closed(config, "big", 400, |_| {}).await;
    assert!(answers < 400, "every answer was buffered: {answers}");
    assert_eq!(code, Some(CloseCode::Policy));
}

/// Answers past the 256 KiB a write offers go to the socket without a
/// copy, header and payload apart: one cut short by a client that stops
/// reading inside it is finished before the close, so every answer the
/// client gets is whole.
#[tokio::test]
async fn a_large_answer_cut_short_by_a_reader_that_stops_is_finished_before_the_close() {
    let config = WsConfig {
        send_timeout: Duration::from_millis(300),
        outbound_queue: 32,
        // The send timeout ends it, not the bound on bytes queued.
        max_queued_bytes: 64 * 1024 * 1024,
        ..WsConfig::default()
    };
    // 24 MiB of answers: more than the socket buffers hold.
    let (answers, code) = unread_until_closed(config, "bigger", 24, |text| {
        let answer: Value = serde_json::from_str(text).expect("whole JSON");
        let got = answer["result"]["content"][0]["text"]
            .as_str()
            .map(str::len);
        assert_eq!(got, Some(1024 * 1024), "answer {}", answer["id"]);
    })
    .await;
    assert!((1..24).contains(&answers), "{answers} answers");
    assert_eq!(code, Some(CloseCode::Policy));
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_a_live_one_kept() {
    let config = WsConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let server = start(config).await;

    // A raw client that never answers pings: pinged, then closed.
    let (answer, mut raw) = raw_handshake(server.addr, &handshake("")).await;
    assert!(answer.starts_with("HTTP/1.1 101 "));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    loop {
        let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(&got[..2], &[0x89, 0x00], "a ping first: {got:?}");
    let close = got
        .windows(2)
        .position(|w| w[0] == 0x88)
        .expect("a close frame");
    assert_eq!(&got[close + 2..close + 4], &1001u16.to_be_bytes());

    // A client that answers pings (tungstenite does, while it is read) stays.
    let mut ws = connect(server.addr).await;
    initialize(&mut ws).await;
    let reader = async {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
            assert!(matches!(message, Message::Ping(_)), "{message:?}");
        }
    };
    reader.await;
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["id"], 9);
}

#[tokio::test]
async fn shutdown_answers_in_flight_calls_then_closes_with_1001() {
    let mut server = start(WsConfig::default()).await;
    let mut ws = connect(server.addr).await;
    initialize(&mut ws).await;
    send(&mut ws, call(1, "slow", json!({"ms": 500}))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().expect("running").send(()).expect("stop");
    let answer = recv(&mut ws).await;
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["content"][0]["text"], "slept 500");
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("server stopped in time")
        .expect("task")
        .expect("serve");
}

#[tokio::test]
async fn closing_the_socket_cancels_its_calls() {
    let server = start(WsConfig::default()).await;
    let before = SLOW_DROPPED.load(Ordering::SeqCst);
    let mut ws = connect(server.addr).await;
    initialize(&mut ws).await;
    send(&mut ws, call(1, "slow", json!({"ms": 3000}))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.close(None).await.expect("close");
    let deadline = tokio::time::Instant::now() + WAIT;
    while SLOW_DROPPED.load(Ordering::SeqCst) == before {
        assert!(tokio::time::Instant::now() < deadline, "call not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
}

#[tokio::test]
async fn server_notifications_reach_the_socket() {
    let server_state = mcp_server();
    let endpoint = WebSocketMcp::new(server_state.clone());
    let http = Server::bind(
        Config {
            port: 0,
            ..Config::default()
        },
        endpoint.routes(Router::new(), "/ws"),
    )
    .await
    .expect("bind");
    let addr = http.local_addr();
    tokio::spawn(http.serve(std::future::pending()));
    let mut ws = connect(addr).await;
    initialize(&mut ws).await;
    // Round-trip once so the session is surely listening.
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["id"], 1);
    server_state.add_tool(Tool::raw(
        "late",
        "Added later.",
        json!({"type": "object"}),
        |_ctx, _| async { ToolOutput::text("late") },
    ));
    let note = recv(&mut ws).await;
    assert_eq!(note["method"], "notifications/tools/list_changed");
}

#[tokio::test]
async fn the_connection_manager_sees_every_transport() {
    let addr = support::serve(
        Service::from_server(mcp_server())
            .streamable_http("/mcp")
            .websocket("/ws")
            .ops(),
    )
    .await;

    let mut a = connect(addr).await;
    initialize(&mut a).await;
    let b = connect(addr).await;
    // A Streamable HTTP session, made over a connection that then closes.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"http-client","version":"1"}}}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    raw.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let sessions = |t: &str| format!("snowflake_mcp_sessions_active{{transport=\"{t}\"}}");
    assert_eq!(
        support::metric(addr, "snowflake_mcp_websockets_active").await,
        2.0
    );
    assert_eq!(support::metric(addr, &sessions("websocket")).await, 2.0);
    assert_eq!(
        support::metric(addr, &sessions("streamable_http")).await,
        1.0
    );
    // One request read, one answer sent (so far) on the initialized socket.
    let messages = |d: &str| format!("snowflake_mcp_websocket_messages_total{{direction=\"{d}\"}}");
    assert!(support::metric(addr, &messages("in")).await >= 1.0);
    assert_eq!(support::metric(addr, &messages("out")).await, 1.0);
    // The two upgraded sockets stay counted as HTTP connections too: three
    // clients, and the scrapes so far (this one included).
    assert_eq!(
        support::metric(addr, "snowflake_mcp_connections_total").await,
        3.0 + 6.0
    );

    a.close(None).await.expect("close");
    drop(b);
    let deadline = tokio::time::Instant::now() + WAIT;
    // Nothing open but the scrape itself.
    while support::metric(addr, "snowflake_mcp_websockets_active").await != 0.0
        || support::metric(addr, "snowflake_mcp_connections_active").await != 1.0
    {
        assert!(tokio::time::Instant::now() < deadline, "still registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed = |t: &str| format!("snowflake_mcp_sessions_closed_total{{transport=\"{t}\"}}");
    assert_eq!(support::metric(addr, &closed("websocket")).await, 2.0);
    assert_eq!(support::metric(addr, &closed("streamable_http")).await, 0.0);
}

/// The daemon's count of WebSocket dozes, from `/metrics`.
async fn dozes(addr: SocketAddr) -> u64 {
    let mut c = support::Client::connect(addr).await;
    c.send(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    r.body_str()
        .lines()
        .find_map(|l| l.strip_prefix("snowflake_mcp_websocket_dozes_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the dozes counter")
}

/// Waits until the dozes counter passes `seen`; its new value.
async fn doze_after(addr: SocketAddr, seen: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = dozes(addr).await;
        if now > seen {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the socket never dozed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A socket whose client is silent dozes (its frame reader dropped), and
/// every kind of traffic wakes it with nothing lost: a request, a server
/// notification, a message far larger than the first read after the doze,
/// a frame whose first bytes come alone, and pings answered by a client
/// that only reads.
#[tokio::test]
async fn an_idle_socket_dozes_and_every_kind_of_traffic_wakes_it() {
    let server_state = mcp_server();
    let config = WsConfig {
        doze_after: Duration::from_millis(30),
        ping_interval: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(300),
        ..WsConfig::default()
    };
    let addr = support::serve(
        Service::from_server(server_state.clone())
            .websocket_with("/ws", config)
            .ops(),
    )
    .await;
    let mut ws = connect(addr).await;
    initialize(&mut ws).await;
    let mut seen = doze_after(addr, 0).await;

    // A request.
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["id"], 1);
    seen = doze_after(addr, seen).await;

    // A notification from the server.
    server_state.add_tool(Tool::raw(
        "late",
        "Added later.",
        json!({"type": "object"}),
        |_ctx, _| async { ToolOutput::text("late") },
    ));
    assert_eq!(
        recv(&mut ws).await["method"],
        "notifications/tools/list_changed"
    );
    seen = doze_after(addr, seen).await;

    // A message of 200 KB: the wake reads its first KiB, tungstenite the rest.
    let filler = "y".repeat(200_000);
    send(&mut ws, call(2, "slow", json!({"ms": 1, "filler": filler}))).await;
    let answer = recv(&mut ws).await;
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["content"][0]["text"], "slept 1");
    seen = doze_after(addr, seen).await;

    // Pings, while the client only reads: answered, so the socket stays
    // open past several ping intervals and pong timeouts, dozing between.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut pings = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        assert!(matches!(message, Message::Ping(_)), "{message:?}");
        pings += 1;
    }
    assert!(pings >= 2, "{pings} pings");
    let after_pings = doze_after(addr, seen).await;
    assert!(
        after_pings >= seen + 2,
        "dozed between pings: {seen} -> {after_pings}"
    );
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["id"], 3);

    // A frame whose first three bytes come alone, to a dozing socket (the
    // only socket now: its doze alone moves the counter).
    ws.close(None).await.expect("close");
    assert_eq!(close_code(&mut ws).await, None);
    let (answer, mut raw) = raw_handshake(addr, &handshake("")).await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    let seen = doze_after(addr, dozes(addr).await).await;
    let frame = masked_text(br#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#);
    raw.write_all(&frame[..3]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.write_all(&frame[3..]).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains(r#""id":4"#) {
        let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    // Woken by those bytes, it dozes again once silent.
    doze_after(addr, seen).await;
}
