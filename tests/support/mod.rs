//! Helpers for integration tests: a server with test routes on a free port, and a raw client.
#![allow(dead_code)]

pub mod daemon;
pub mod stack;
pub mod victim;
pub mod warehouse;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use snowflake_mcp::http::{
    BodySender, Handler, Method, Reply, Request, Response, Router, Upgraded,
};
use snowflake_mcp::server::StatsHandle;
use snowflake_mcp::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A WebSocket client stream.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket upgrade request for `/ws` on `host`, asking for the `mcp`
/// subprotocol.
pub fn ws_request(host: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{host}/ws")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().expect("header"));
    request
}

/// Opens `ws://ADDR/ws` offering the `mcp` subprotocol; the handshake's
/// answer comes back for checking.
pub async fn ws_connect(
    addr: std::net::SocketAddr,
) -> (
    Ws,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(ws_request(&addr.to_string())),
    )
    .await
    .expect("connect in time")
    .expect("handshake")
}

/// [`ws_connect`] over a socket whose receive buffer is fixed small (64
/// KiB: no autotuning), for tests of clients that stop reading. Without it
/// a machine that lets receive buffers grow to tens of megabytes would
/// hold everything the server sends.
pub async fn ws_connect_small_window(
    addr: std::net::SocketAddr,
) -> (
    Ws,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let stream = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(ws_request(&addr.to_string()), stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

/// How long a test waits for any single answer before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server with the test routes.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub stats: StatsHandle,
    /// Set when the `/forever` stream noticed its client went away.
    pub stream_closed: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), snowflake_mcp::Error>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let stream_closed = Arc::new(AtomicBool::new(false));
        let config = Config { port: 0, ..config };
        let server = Server::bind(config, router(Arc::clone(&stream_closed)))
            .await
            .expect("bind");
        let addr = server.local_addr();
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stats,
            stream_closed,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Begins a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        self.join().await;
    }

    /// Waits for `serve` to return after `begin_shutdown`.
    pub async fn join(mut self) {
        let task = self.task.take().expect("task");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returned in time")
            .expect("serve task")
            .expect("serve result");
    }
}

struct Slow;

impl Handler for Slow {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let ms: u64 = req
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        Reply::new(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::text(200, "slow done")
        })
    }
}

struct Stream;

impl Handler for Stream {
    fn call<'a>(&'a self, _req: Request<'a>) -> Reply<'a> {
        let (resp, tx) = Response::stream(200, 4);
        tokio::spawn(async move {
            for part in ["one", "two", "three"] {
                if tx.send(part).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Reply::ready(resp.header("content-type", "text/plain"))
    }
}

/// A `200 text/event-stream` response streamed in chunks, and its sender
/// (the MCP layer encodes events itself; here they are written out whole).
fn event_stream() -> (Response, BodySender) {
    let (resp, tx) = Response::stream(200, 4);
    let resp = resp
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache");
    (resp, tx)
}

struct Sse;

impl Handler for Sse {
    fn call<'a>(&'a self, _req: Request<'a>) -> Reply<'a> {
        let (resp, tx) = event_stream();
        tokio::spawn(async move {
            let _ = tx.send("id: 0\ndata: \n\n").await;
            for i in 1..=3 {
                let event = format!("id: {i}\nevent: message\ndata: {{\"n\":{i}}}\n\n");
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Reply::ready(resp)
    }
}

/// An event stream that never ends by itself; records when the client leaves.
struct Forever(Arc<AtomicBool>);

impl Handler for Forever {
    fn call<'a>(&'a self, _req: Request<'a>) -> Reply<'a> {
        let (resp, tx) = event_stream();
        let flag = Arc::clone(&self.0);
        tokio::spawn(async move {
            let _ = tx.send("data: hello\n\n").await;
            tx.closed().await;
            flag.store(true, Ordering::SeqCst);
        });
        Reply::ready(resp)
    }
}

fn upgrade(_req: Request<'_>) -> Response {
    Response::upgrade(|mut up: Upgraded| async move {
        // Echo: first what arrived with the head, then whatever follows.
        if up.stream.write_all(&up.read_ahead).await.is_err() {
            return;
        }
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                r = up.stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if up.stream.write_all(&buf[..n]).await.is_err() { return },
                },
                () = up.shutdown.recv() => {
                    let _ = up.stream.write_all(b"bye").await;
                    return;
                }
            }
        }
    })
    .header("upgrade", "echo")
}

pub fn router(stream_closed: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(Method::Get, "/health", |_: Request<'_>| {
            Response::static_body(200, "application/json", br#"{"status":"ok"}"#)
        })
        .route(Method::Post, "/echo", |req: Request<'_>| {
            Response::text(200, req.body().to_vec())
        })
        .route(Method::Get, "/headers", |req: Request<'_>| {
            let mut out = String::new();
            for (name, value) in req.headers() {
                out.push_str(&format!(
                    "{}={}\n",
                    name.to_ascii_lowercase(),
                    String::from_utf8_lossy(value)
                ));
            }
            out.push_str(&format!("path={} query={:?}\n", req.path(), req.query()));
            Response::text(200, out)
        })
        .route(Method::Get, "/big", |_: Request<'_>| {
            Response::text(200, vec![b'x'; 100 * 1024])
        })
        .route(Method::Get, "/close", |_: Request<'_>| {
            Response::text(200, "bye").close()
        })
        .route(Method::Get, "/nocontent", |_: Request<'_>| {
            Response::new(204)
        })
        .route(Method::Get, "/panic", |req: Request<'_>| {
            let _ = req.body()[usize::MAX / 2];
            Response::new(200)
        })
        .route(Method::Get, "/slow", Slow)
        .route(Method::Get, "/stream", Stream)
        .route(Method::Get, "/sse", Sse)
        .route(Method::Get, "/forever", Forever(stream_closed))
        .route(Method::Get, "/upgrade", upgrade)
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The response bytes as received (chunk framing included).
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The raw bytes with the Date value replaced, for exact comparisons.
    pub fn raw_without_date(&self) -> String {
        normalize_date(&String::from_utf8_lossy(&self.raw))
    }
}

/// Replaces every `Date: ...` value with `<date>`.
pub fn normalize_date(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("Date: ") {
        out.push_str(&rest[..i + 6]);
        out.push_str("<date>");
        let after = &rest[i + 6..];
        let end = after.find("\r\n").unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A client that writes raw bytes and reads responses.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Longest wait for the next bytes of an answer (default [`WAIT`]).
    wait: Duration,
}

impl Client {
    /// The same client, waiting at most `wait` for the next bytes of an
    /// answer (for calls that may take their whole timeout).
    pub fn waiting(mut self, wait: Duration) -> Client {
        self.wait = wait;
        self
    }

    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            wait: WAIT,
        }
    }

    /// A client over a connection already made.
    pub fn from_stream(stream: TcpStream) -> Client {
        let _ = stream.set_nodelay(true);
        Client {
            stream,
            buf: Vec::new(),
            wait: WAIT,
        }
    }

    /// Reads one response; `None` if the server closed before sending any
    /// byte of it. A response cut off part-way fails the test.
    pub async fn try_read_response(&mut self, method: &str) -> Option<Resp> {
        while self.buf.is_empty() {
            if self.fill().await == 0 {
                return None;
            }
        }
        Some(self.read_response_to(method).await)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends, ignoring errors (the server may already have closed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(self.wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "no answer within {:?}; have {:?}",
                self.wait,
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads one response to a request with `method` (HEAD responses have no body).
    pub async fn read_response_to(&mut self, method: &str) -> Resp {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf).expect("valid response head") {
                httparse::Status::Complete(len) => {
                    let status = parsed.code.unwrap();
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    return self.read_body(status, headers, len, method).await;
                }
                httparse::Status::Partial => {
                    if self.fill().await == 0 {
                        panic!(
                            "closed before a full head: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        );
                    }
                }
            }
        }
    }

    pub async fn read_response(&mut self) -> Resp {
        self.read_response_to("GET").await
    }

    async fn read_body(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        head_len: usize,
        method: &str,
    ) -> Resp {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let no_body = method == "HEAD" || status < 200 || status == 204 || status == 304;
        let (body, total) = if no_body {
            (Vec::new(), head_len)
        } else if let Some(cl) = get("content-length") {
            let n: usize = cl.parse().unwrap();
            while self.buf.len() < head_len + n {
                if self.fill().await == 0 {
                    panic!("closed inside body");
                }
            }
            (self.buf[head_len..head_len + n].to_vec(), head_len + n)
        } else if get("transfer-encoding").is_some() {
            loop {
                if let Some((body, used)) = decode_chunked(&self.buf[head_len..]) {
                    break (body, head_len + used);
                }
                if self.fill().await == 0 {
                    panic!("closed inside chunked body");
                }
            }
        } else {
            while self.fill().await > 0 {}
            (self.buf[head_len..].to_vec(), self.buf.len())
        };
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    /// Reads the 100 Continue interim response.
    pub async fn read_continue(&mut self) {
        let want = b"HTTP/1.1 100 Continue\r\n\r\n";
        while self.buf.len() < want.len() {
            assert!(self.fill().await > 0, "closed before 100 Continue");
        }
        assert_eq!(&self.buf[..want.len()], want);
        self.buf.drain(..want.len());
    }

    /// Reads exactly `n` raw bytes.
    pub async fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "closed early");
        }
        self.buf.drain(..n).collect()
    }

    /// Whether the server closes the connection (EOF) within `within`, with no more bytes sent.
    pub async fn is_closed_within(&mut self, within: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(_) => false,
        }
    }

    /// Whether response bytes have arrived and not been read yet.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Whatever bytes arrive until the server closes.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }
}

/// Decodes a complete chunked body; `None` if incomplete.
fn decode_chunked(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = b.len();
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            if b.len() < 2 {
                return None;
            }
            assert_eq!(&b[..2], b"\r\n", "no trailers expected");
            return Some((out, total - b.len() + 2));
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n");
        b = &b[size + 2..];
    }
}

/// One sample of `/metrics` (`name` with its labels, as exposed), read
/// over a connection of its own.
pub async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut c,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    use tokio::io::AsyncReadExt as _;
    let mut text = String::new();
    c.read_to_string(&mut text).await.expect("read");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Serves `service` on a free loopback port until the test ends; its address.
#[allow(dead_code)]
pub async fn serve(service: snowflake_mcp::Service) -> std::net::SocketAddr {
    serve_with(service, Config::default()).await
}

/// Like [`serve`], with `config` (its port is ignored: a free one is taken).
#[allow(dead_code)]
pub async fn serve_with(service: snowflake_mcp::Service, config: Config) -> std::net::SocketAddr {
    let server = service
        .config(Config { port: 0, ..config })
        .build()
        .bind()
        .await
        .expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}

/// The JSON-RPC answer in a POST's body: the body itself when it is JSON,
/// else the SSE event that answers (an `id` and no `method`).
pub fn answer_of(text: &str) -> serde_json::Value {
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find(|m| m.get("id").is_some() && m.get("method").is_none())
        .unwrap_or_else(|| panic!("no answer in {text:?}"))
}

/// A 2026-07-28 POST of `body` (a JSON-RPC request of `method`, with
/// `Mcp-Name: name` when given) to `/mcp` on a connection of its own; its
/// JSON-RPC answer.
pub async fn post_modern(
    addr: std::net::SocketAddr,
    method: &str,
    name: Option<&str>,
    body: &str,
) -> serde_json::Value {
    post_modern_with(addr, method, name, body, "").await
}

/// Like [`post_modern`], with `extra` header lines (each ending in CRLF).
pub async fn post_modern_with(
    addr: std::net::SocketAddr,
    method: &str,
    name: Option<&str>,
    body: &str,
    extra: &str,
) -> serde_json::Value {
    let name = name.map_or(String::new(), |n| format!("Mcp-Name: {n}\r\n"));
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\n{name}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let r = c.read_response_to("POST").await;
    answer_of(&r.body_str())
}
