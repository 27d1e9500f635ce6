//! Whole connections over in-memory streams (`tokio::io::duplex`), no
//! socket: the server takes streams from a channel (a host's own accepted
//! streams), serves Streamable HTTP with keep-alive, upgrades to WebSocket
//! and runs an MCP session on it, and shuts down gracefully when the
//! channel closes. One `McpServer` serves both transports, and a call can
//! tell which one it came by.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use snowflake_mcp::http::Router;
use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
use snowflake_mcp::transport::streamable_http::StreamableHttp;
use snowflake_mcp::transport::websocket::WebSocketMcp;
use snowflake_mcp::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn mcp() -> McpServer {
    McpServer::builder("in-memory", "0")
        .tool(Tool::raw(
            "echo",
            "Echoes its text.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}}),
            |ctx, args| async move {
                // One server for both transports: the call says which it came by.
                let by = ctx.transport().unwrap_or("none");
                ToolOutput::text(format!(
                    "{} via {by}",
                    args["text"].as_str().unwrap_or_default()
                ))
            },
        ))
        .build()
}

/// Where the test hands the server its streams.
type Streams = tokio::sync::mpsc::Sender<(DuplexStream, SocketAddr)>;
/// The running server.
type Serving = tokio::task::JoinHandle<Result<(), snowflake_mcp::Error>>;

/// A server fed by a channel of in-memory streams; the sender and its task.
fn start() -> (Streams, Serving) {
    start_with()
}

/// [`start`] for streams of any kind.
fn start_with<S: snowflake_mcp::http::Io>() -> (tokio::sync::mpsc::Sender<(S, SocketAddr)>, Serving)
{
    let server = mcp();
    let http = StreamableHttp::new(server.clone());
    let ws = WebSocketMcp::new(server);
    let router = ws.routes(http.routes(Router::new(), "/mcp"), "/ws");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let server = Server::from_listener(rx, Config::default(), router).expect("valid settings");
    let task = tokio::spawn(server.serve(std::future::pending()));
    (tx, task)
}

/// The `initialize` request the WebSocket sessions here open with.
fn initialize() -> Message {
    Message::text(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "in-memory", "version": "0"}}})
        .to_string(),
    )
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000))
}

/// Reads one HTTP response with a `Content-Length` body; (status, body).
async fn response(client: &mut DuplexStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, client.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        if body.len() >= length {
            let status = head[9..12].parse().expect("status");
            return (status, serde_json::from_str(&body[..length]).expect("JSON"));
        }
    }
}

fn post(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: echo\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn call(id: i64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
    "name": "echo", "arguments": {"text": text},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "in-memory", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    }}})
}

/// The WebSocket handshake (subprotocol `mcp`) over an in-memory stream;
/// the socket and the answer's status.
async fn websocket(
    client: DuplexStream,
) -> (tokio_tungstenite::WebSocketStream<DuplexStream>, u16) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = "ws://localhost/ws".into_client_request().expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().expect("header"));
    let (ws, answer) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, client))
        .await
        .expect("handshake in time")
        .expect("handshake");
    (ws, answer.status().as_u16())
}

/// The host closes its channel of streams: the server stops accepting and,
/// its connections closed, returns.
async fn server_ends<S>(tx: tokio::sync::mpsc::Sender<(S, SocketAddr)>, task: Serving) {
    drop(tx);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the server ends")
        .expect("task")
        .expect("served");
}

#[tokio::test]
async fn streamable_http_keep_alive_over_an_in_memory_stream() {
    let (tx, task) = start();
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    tx.send((server_end, peer())).await.expect("handed over");
    for id in 1..=3 {
        client
            .write_all(&post(&call(id, &format!("hello {id}"))))
            .await
            .expect("write");
        let (status, answer) = response(&mut client).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["id"], json!(id));
        assert_eq!(
            answer["result"]["content"][0]["text"],
            json!(format!("hello {id} via http")),
            "{answer}"
        );
    }
    // A request split in two writes is read whole.
    let bytes = post(&call(4, "split"));
    client.write_all(&bytes[..20]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.write_all(&bytes[20..]).await.expect("write");
    let (_, answer) = response(&mut client).await;
    assert_eq!(answer["result"]["content"][0]["text"], "split via http");
    // The host closes its channel: the server stops accepting and, once
    // the connection closes, returns.
    drop(tx);
    drop(client);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the server ends")
        .expect("task")
        .expect("served");
}

#[tokio::test]
async fn a_websocket_session_over_an_in_memory_stream() {
    let (tx, task) = start();
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    tx.send((server_end, peer())).await.expect("handed over");
    let (mut ws, status) = websocket(client).await;
    assert_eq!(status, 101);
    ws.send(initialize()).await.expect("send");
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ))
    .await
    .expect("send");
    let echo = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "over ws"}}});
    ws.send(Message::text(echo.to_string()))
        .await
        .expect("send");
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            answers.push(serde_json::from_str::<Value>(&text).expect("JSON"));
        }
    }
    assert_eq!(answers[0]["id"], 0, "{answers:?}");
    assert_eq!(answers[1]["id"], 1, "{answers:?}");
    assert_eq!(
        answers[1]["result"]["content"][0]["text"],
        "over ws via websocket"
    );
    ws.close(None).await.expect("close");
    drop(ws);
    server_ends(tx, task).await;
}

/// Messages from 64 KiB on are read off the async workers: answered the
/// same, and over WebSocket still dispatched in the order they came (a
/// large `initialize` is done before the calls sent right behind it).
#[tokio::test]
async fn large_messages_are_answered_in_order_on_both_transports() {
    let big = "x".repeat(200 * 1024);
    let (tx, task) = start();
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    tx.send((server_end, peer())).await.expect("handed over");
    for (id, text) in [(1, big.as_str()), (2, "small")] {
        client
            .write_all(&post(&call(id, text)))
            .await
            .expect("write");
        let (status, answer) = response(&mut client).await;
        assert_eq!(status, 200);
        assert_eq!(answer["id"], json!(id));
        assert_eq!(
            answer["result"]["content"][0]["text"],
            json!(format!("{text} via http"))
        );
    }
    drop(client);

    let (client, server_end) = tokio::io::duplex(64 * 1024);
    tx.send((server_end, peer())).await.expect("handed over");
    let (mut ws, _) = websocket(client).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "in-memory", "version": "0"},
        // Large (so it takes the large-message path) in a member nobody
        // keeps: capabilities past 16 KiB are refused.
        "pad": {"text": &big}}});
    let echo = |id: i64, text: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": text}}})
        .to_string()
    };
    for message in [
        init.to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        echo(1, &big),
        echo(2, "small"),
    ] {
        ws.send(Message::text(message)).await.expect("send");
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < 3 {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(&text).expect("JSON");
            answers.insert(v["id"].as_i64().expect("an id"), v);
        }
    }
    assert_eq!(answers[&0]["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        answers[&1]["result"]["content"][0]["text"],
        json!(format!("{big} via websocket"))
    );
    assert_eq!(
        answers[&2]["result"]["content"][0]["text"],
        "small via websocket"
    );
    ws.close(None).await.expect("close");
    drop(ws);
    server_ends(tx, task).await;
}

/// The `AsyncRead` of a test stream that wraps an in-memory one as `inner`:
/// reads go straight to it.
macro_rules! reads_from_inner {
    ($stream:ty) => {
        impl tokio::io::AsyncRead for $stream {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
            }
        }
    };
}

/// An in-memory stream that keeps what is written until it is flushed, as
/// a TLS stream does with the tail of a write made while its socket is
/// full (it reports the bytes written and holds them in its own buffer).
struct HeldUntilFlushed {
    inner: DuplexStream,
    held: Vec<u8>,
}

reads_from_inner!(HeldUntilFlushed);

impl tokio::io::AsyncWrite for HeldUntilFlushed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.held.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        while !this.held.is_empty() {
            let n =
                std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
            this.held.drain(..n);
        }
        std::pin::Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream that holds written bytes until it is flushed gets its answers:
/// the connection flushes the stream once it has written an answer, not
/// only writes it (before, every answer here waited for a flush that never
/// came, as the tail of a large TLS answer to a slow reader did).
#[tokio::test]
async fn answers_reach_a_stream_that_holds_writes_until_flushed() {
    let (tx, task) = start_with::<HeldUntilFlushed>();
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    let stream = HeldUntilFlushed {
        inner: server_end,
        held: Vec::new(),
    };
    tx.send((stream, peer())).await.expect("handed over");
    for id in 1..=2 {
        client
            .write_all(&post(&call(id, &format!("held {id}"))))
            .await
            .expect("write");
        let (status, answer) = response(&mut client).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            json!(format!("held {id} via http")),
            "{answer}"
        );
    }
    drop(client);
    server_ends(tx, task).await;
}

/// An in-memory stream that counts the writes which carried bytes.
struct CountedWrites {
    inner: DuplexStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

reads_from_inner!(CountedWrites);

impl tokio::io::AsyncWrite for CountedWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let done = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(done, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        done
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Messages that arrive together (here one write of eight calls, more than
/// the socket's read buffer holds) are answered together: the answers
/// ready at once go out in order, in one write, not one write each.
#[tokio::test]
async fn websocket_answers_to_messages_read_together_go_out_in_one_write() {
    let (tx, task) = start_with::<CountedWrites>();
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = CountedWrites {
        inner: server_end,
        writes: std::sync::Arc::clone(&writes),
    };
    tx.send((counted, peer())).await.expect("handed over");
    let (mut ws, status) = websocket(client).await;
    assert_eq!(status, 101);
    ws.send(initialize()).await.expect("send");
    let opened = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("an answer in time")
        .expect("open")
        .expect("frame");
    assert!(opened.to_text().expect("text").contains("protocolVersion"));
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ))
    .await
    .expect("send");
    let before = writes.load(std::sync::atomic::Ordering::SeqCst);
    // Queued, then written at once: the server reads them together.
    for id in 1..=8 {
        ws.feed(Message::text(call(id, &format!("number {id}")).to_string()))
            .await
            .expect("queued");
    }
    ws.flush().await.expect("sent");
    for id in 1..=8 {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("frame");
        let answer: Value = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("number {id} via websocket")
        );
    }
    let written = writes.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(written, 1, "eight answers took {written} writes");
    ws.close(None).await.expect("close");
    drop(ws);
    server_ends(tx, task).await;
}

/// After a large message the server drops tungstenite's grown read buffer
/// once nothing is left unread (`ws::watch`): the socket goes on as before,
/// with pings, a message split in frames with a ping between them, and
/// messages sent right behind one another.
#[tokio::test]
async fn a_websocket_goes_on_after_its_read_buffer_is_dropped() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let (tx, task) = start();
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    tx.send((server_end, peer())).await.expect("handed over");
    let (mut ws, status) = websocket(client).await;
    assert_eq!(status, 101);
    ws.send(initialize()).await.expect("send");
    assert_eq!(next_message(&mut ws).await["id"], 0);
    let large = "y".repeat(100_000);
    let text_of = |v: &Value| v["result"]["content"][0]["text"].as_str().map(str::len);
    for round in 0..3 {
        let id = 10 * round + 1;
        // One large message in one frame; then, once the server is idle,
        // a ping and a small message.
        ws.send(Message::text(call(id, &large).to_string()))
            .await
            .expect("send");
        let answer = next_message(&mut ws).await;
        assert_eq!(answer["id"], id);
        assert_eq!(text_of(&answer), Some(large.len() + " via websocket".len()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        ws.send(Message::Ping(format!("p{round}").into_bytes().into()))
            .await
            .expect("ping");
        assert_eq!(next_message(&mut ws).await["pong"], format!("p{round}"));
        // A large message in two frames with a ping between them, and a
        // small one right behind it, written at once.
        let whole = call(id + 1, &large).to_string();
        let (first, second) = whole.split_at(whole.len() / 2);
        ws.feed(Message::Frame(Frame::message(
            first.as_bytes().to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .expect("queued");
        ws.feed(Message::Ping(b"between".to_vec().into()))
            .await
            .expect("queued");
        ws.feed(Message::Frame(Frame::message(
            second.as_bytes().to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .expect("queued");
        ws.feed(Message::text(call(id + 2, "small").to_string()))
            .await
            .expect("queued");
        ws.flush().await.expect("sent");
        let mut got: Vec<Value> = Vec::new();
        while got.len() < 3 {
            got.push(next_message(&mut ws).await);
        }
        // Answers go out as calls finish (the large one is read off the
        // async workers), so they are found by id.
        let find = |key: &str, value: Value| {
            got.iter()
                .find(|m| m[key] == value)
                .unwrap_or_else(|| panic!("no {key} {value} in {got:?}"))
        };
        find("pong", json!("between"));
        let whole = find("id", json!(id + 1));
        assert_eq!(text_of(whole), Some(large.len() + " via websocket".len()));
        let small = find("id", json!(id + 2));
        assert_eq!(text_of(small), Some("small via websocket".len()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ws.close(None).await.expect("close");
    drop(ws);
    server_ends(tx, task).await;
}

/// The next text message (as JSON) or pong (as `{"pong": data}`).
async fn next_message(ws: &mut tokio_tungstenite::WebSocketStream<DuplexStream>) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        match message {
            Message::Text(text) => return serde_json::from_str::<Value>(&text).expect("JSON"),
            Message::Pong(data) => return json!({"pong": String::from_utf8_lossy(&data)}),
            _ => {}
        }
    }
}
