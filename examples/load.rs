//! A load generator for MCP servers: `tools/call` over Streamable HTTP
//! keep-alive connections (2026-07-28 stateless, or a 2025-06-18 session
//! each) or over WebSockets (many calls in flight per socket), for a
//! duration, as fast as answers come or at a fixed rate; latencies in an
//! HDR histogram, every answer checked against its request.
//!
//! ```text
//! cargo run --release --example load -- --url http://127.0.0.1:8000/mcp \
//!     --mode stateless --connections 32 --duration 10
//! ```
//!
//! Flags (all optional): `--url` (`…/mcp`, or `…/ws` for `--mode ws`),
//! `--mode stateless|session|ws|stdio`, `--command "PROGRAM ARGS"` (for
//! `stdio`: the server each connection starts and speaks to over its stdin
//! and stdout, many calls in flight like a WebSocket), `--connections N`,
//! `--duration SECONDS`, `--calls N` (each connection stops after N calls),
//! `--hold SECONDS` (then each stays open and idle that long; `holding N`
//! on stderr once all are), `--spread` (each connection from a loopback
//! address of its own, 127.0.1.1 on: each its own client to a server that
//! limits by address),
//! `--rate CALLS_PER_SECOND` (total, spread over the connections; a call
//! that falls behind its schedule because an earlier answer came late has
//! its latency counted from when it was due, so a stalled server is not
//! hidden by calls never sent: coordinated omission corrected), `--in-flight
//! N` (calls outstanding per WebSocket), `--tool NAME`, `--args JSON` (every
//! `{n}` is replaced by a number unique to the call), `--expect TEXT`
//! (text every answer must contain; `{n}` as in `--args`), `--check
//! full|none` (`full`, the default: every answer is read as JSON-RPC and
//! must carry its call's id, a result that is not an error, and the
//! expected text; `none`: an HTTP 200 with a whole body, or one WebSocket
//! text message per call, is enough: for comparing servers whose answers
//! differ, such as a bare HTTP server answering fixed bytes, with the
//! client's own work the same for all).
//!
//! Defaults: stateless, 16 connections, 5 s, as fast as possible, 8 in
//! flight per WebSocket, `execute_query` of `SELECT {n} AS v` expecting
//! `{n}`. The last line printed is the summary, `key=value` pairs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Stateless,
    Session,
    Ws,
    Stdio,
}

#[derive(Clone, Debug)]
struct Settings {
    host: String,
    path: String,
    mode: Mode,
    connections: u64,
    duration: Duration,
    rate: Option<f64>,
    in_flight: usize,
    tool: String,
    args: String,
    expect: Option<String>,
    check: bool,
    calls: u64,
    command: Vec<String>,
    hold: Duration,
    spread: bool,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        host: "127.0.0.1:8000".into(),
        path: "/mcp".into(),
        mode: Mode::Stateless,
        connections: 16,
        duration: Duration::from_secs(5),
        rate: None,
        in_flight: 8,
        tool: "execute_query".into(),
        args: r#"{"query":"SELECT {n} AS v"}"#.into(),
        expect: Some("{n}".into()),
        check: true,
        calls: u64::MAX,
        command: Vec::new(),
        hold: Duration::ZERO,
        spread: false,
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--mode" => {
                s.mode = match value()?.as_str() {
                    "stateless" => Mode::Stateless,
                    "session" => Mode::Session,
                    "ws" => Mode::Ws,
                    "stdio" => Mode::Stdio,
                    other => {
                        return Err(format!("--mode {other:?}: stateless, session, ws or stdio"));
                    }
                }
            }
            "--connections" => s.connections = number(&flag, &value()?)?,
            "--duration" => s.duration = Duration::from_secs_f64(number(&flag, &value()?)?),
            "--rate" => s.rate = Some(number(&flag, &value()?)?),
            "--in-flight" => s.in_flight = number(&flag, &value()?)?,
            "--tool" => s.tool = value()?,
            "--args" => {
                let v = value()?;
                serde_json::from_str::<Value>(&v.replace("{n}", "0"))
                    .map_err(|e| format!("--args is not JSON: {e}"))?;
                s.args = v;
            }
            "--expect" => {
                let v = value()?;
                s.expect = (!v.is_empty()).then_some(v);
            }
            "--calls" => s.calls = number(&flag, &value()?)?,
            "--hold" => s.hold = Duration::from_secs_f64(number(&flag, &value()?)?),
            "--spread" => s.spread = true,
            "--command" => s.command = value()?.split_whitespace().map(str::to_owned).collect(),
            "--check" => {
                s.check = match value()?.as_str() {
                    "full" => true,
                    "none" => false,
                    other => return Err(format!("--check {other:?}: full or none")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if s.mode == Mode::Ws && url.is_none() {
        s.path = "/ws".into();
    }
    if let Some(url) = url {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or("--url must start with http:// or ws://")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        s.host = host.to_owned();
        s.path = format!("/{path}");
    }
    if s.mode == Mode::Stdio && s.command.is_empty() {
        return Err("--mode stdio needs --command".into());
    }
    if s.connections == 0 || s.in_flight == 0 {
        return Err("--connections and --in-flight must be at least 1".into());
    }
    Ok(s)
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v:?} is not a number"))
}

/// Errors printed so far, by every connection (the first few are shown).
static PRINTED: AtomicU64 = AtomicU64::new(0);

/// One connection's counts and latencies, merged when all are done.
struct Tally {
    ok: u64,
    errors: u64,
    latencies: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            ok: 0,
            errors: 0,
            latencies: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }
    }

    fn record(&mut self, due: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let micros = due.elapsed().as_micros().max(1) as u64;
                self.latencies.saturating_record(micros);
            }
            Err(why) => {
                self.errors += 1;
                if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("error: {why}");
                }
            }
        }
    }

    /// This tally ended by `why`.
    fn failed(mut self, due: Instant, why: String) -> Tally {
        self.record(due, Err(why));
        self
    }
}

/// When each call of one connection is due: at once (as fast as answers
/// come) or on a fixed schedule.
struct Pace {
    next: Instant,
    every: Option<Duration>,
}

impl Pace {
    fn new(settings: &Settings) -> Pace {
        Pace {
            next: Instant::now(),
            every: settings
                .rate
                .map(|r| Duration::from_secs_f64(settings.connections as f64 / r.max(0.001))),
        }
    }

    /// Waits until the next call is due; the time its latency counts from.
    /// Behind schedule (an earlier answer came late), that is when it was
    /// due; on schedule, when the timer woke us (tokio's timer is ms-grained:
    /// its own lateness is not the server's).
    async fn due(&mut self) -> Instant {
        match self.every {
            None => Instant::now(),
            Some(every) => {
                let due = self.next;
                self.next += every;
                if due > Instant::now() {
                    tokio::time::sleep_until(due).await;
                    return Instant::now();
                }
                due
            }
        }
    }
}

/// The request body of every call, rendered once with markers where a
/// call's id and unique number go, so a call's body is a few copies (the
/// client's own work must stay far below the server's).
struct Template {
    /// Text, then a marker, alternately; the last piece is text.
    pieces: Vec<(String, Option<Marker>)>,
    expect: Option<String>,
}

#[derive(Clone, Copy)]
enum Marker {
    Id,
    N,
}

/// Stand-ins for the id and the number while rendering (numbers no call
/// uses, so they cannot clash with text of the arguments).
const ID_MARK: u64 = 9_007_199_254_740_881;
const N_MARK: u64 = 9_007_199_254_740_847;

impl Template {
    /// The template of `s`'s calls; 2026-07-28 (`modern`) ones carry the
    /// `_meta` it wants in every request.
    fn new(s: &Settings, modern: bool) -> Template {
        let args = s.args.replace("{n}", &N_MARK.to_string());
        let arguments: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
        let mut params = json!({"name": s.tool, "arguments": arguments});
        if modern {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "load", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {}
            });
        }
        let body =
            json!({"jsonrpc": "2.0", "id": ID_MARK, "method": "tools/call", "params": params})
                .to_string();
        let (id, n) = (ID_MARK.to_string(), N_MARK.to_string());
        let mut pieces = Vec::new();
        let mut rest = body.as_str();
        loop {
            let next_id = rest.find(&id).map(|at| (at, Marker::Id, id.len()));
            let next_n = rest.find(&n).map(|at| (at, Marker::N, n.len()));
            let next = match (next_id, next_n) {
                (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
                (a, b) => a.or(b),
            };
            match next {
                Some((at, marker, len)) => {
                    pieces.push((rest[..at].to_owned(), Some(marker)));
                    rest = &rest[at + len..];
                }
                None => {
                    pieces.push((rest.to_owned(), None));
                    break;
                }
            }
        }
        Template {
            pieces,
            expect: s.expect.clone(),
        }
    }

    /// Call `id`'s body (its unique number `n`) into `out`, and the text
    /// its answer must hold.
    fn render(&self, id: u64, n: u64, out: &mut String) -> Option<String> {
        use std::fmt::Write as _;
        out.clear();
        for (text, marker) in &self.pieces {
            out.push_str(text);
            let _ = match marker {
                Some(Marker::Id) => write!(out, "{id}"),
                Some(Marker::N) => write!(out, "{n}"),
                None => Ok(()),
            };
        }
        self.expect
            .as_ref()
            .map(|e| e.replace("{n}", &n.to_string()))
    }
}

/// Checks one answer: our id, a result that is not a tool error, and the
/// expected text.
fn check(answer: &Value, id: u64, expect: Option<&str>) -> Result<(), String> {
    if answer["id"] != json!(id) {
        return Err(format!("answer to {} where {id} was asked", answer["id"]));
    }
    if answer.get("error").is_some() || answer["result"]["isError"] == json!(true) {
        return Err(format!("call {id} failed: {answer}"));
    }
    if let Some(expect) = expect
        && !answer["result"].to_string().contains(expect)
    {
        return Err(format!("answer to {id} lacks {expect:?}: {answer}"));
    }
    Ok(())
}

/// A keep-alive HTTP/1.1 connection: one request at a time, its response
/// read whole (length-delimited or chunked).
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The request being sent (reused).
    out: Vec<u8>,
    host: String,
    path: String,
}

/// A response: status, its session id header if any, body.
struct Reply {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

impl Http {
    async fn connect(s: &Settings, i: u64) -> Result<Http, String> {
        let stream = tcp_connect(s, i).await?;
        Ok(Http {
            stream,
            buf: Vec::with_capacity(8192),
            out: Vec::with_capacity(1024),
            host: s.host.clone(),
            path: s.path.clone(),
        })
    }

    async fn post(&mut self, body: &str, headers: &str) -> Result<Reply, String> {
        use std::io::Write as _;
        self.out.clear();
        let _ = write!(
            self.out,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        );
        self.stream
            .write_all(&self.out)
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.read_reply().await
    }

    async fn fill(&mut self) -> Result<(), String> {
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(())
    }

    async fn read_reply(&mut self) -> Result<Reply, String> {
        let (status, session, head_len, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut framing = Framing::Length(0);
                    let mut session = None;
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .ok_or("bad Content-Length")?;
                            framing = Framing::Length(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            framing = Framing::Chunked;
                        } else if h.name.eq_ignore_ascii_case("mcp-session-id") {
                            session = Some(String::from_utf8_lossy(h.value).into_owned());
                        }
                    }
                    break (response.code.unwrap_or(0), session, len, framing);
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(e) => return Err(format!("bad response head: {e}")),
            }
        };
        self.buf.drain(..head_len);
        let body = match framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                self.buf.drain(..n).collect()
            }
            Framing::Chunked => self.read_chunked().await?,
        };
        Ok(Reply {
            status,
            session,
            body,
        })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let (skip, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((skip, size))) => break (skip, size as usize),
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err("bad chunk size".into()),
                }
            };
            // The chunk, then its CRLF (after the last chunk: the final CRLF).
            while self.buf.len() < skip + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[skip..skip + size]);
            self.buf.drain(..skip + size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

/// The JSON-RPC messages of a body: one JSON message, or SSE `data:` lines.
fn messages(body: &[u8]) -> Vec<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return vec![v];
    }
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// Opens a 2025-06-18 session on `http`; its id.
async fn open_session(http: &mut Http) -> Result<String, String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "load", "version": "0"}}})
    .to_string();
    let r = http
        .post(&init, "MCP-Protocol-Version: 2025-06-18\r\n")
        .await?;
    let session = r.session.ok_or(format!(
        "initialize answered {} without a session",
        r.status
    ))?;
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let headers = format!("MCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\n");
    let r = http.post(done, &headers).await?;
    if r.status != 202 {
        return Err(format!("initialized answered {}", r.status));
    }
    Ok(session)
}

async fn http_connection(s: Arc<Settings>, i: u64, until: Instant) -> Tally {
    let tally = Tally::new();
    let mut http = match Http::connect(&s, i).await {
        Ok(h) => h,
        Err(e) => return tally.failed(Instant::now(), e),
    };
    let modern = s.mode == Mode::Stateless;
    let headers = if modern {
        format!(
            "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {}\r\n",
            s.tool
        )
    } else {
        match open_session(&mut http).await {
            Ok(session) => {
                format!("MCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\n")
            }
            Err(e) => return tally.failed(Instant::now(), e),
        }
    };
    let template = Template::new(&s, modern);
    let mut tally = tally;
    let mut body = String::new();
    let mut pace = Pace::new(&s);
    let mut id = 0u64;
    loop {
        let due = pace.due().await;
        if due >= until || id >= s.calls {
            break;
        }
        id += 1;
        let n = i * 1_000_000_000 + id;
        let expect = template.render(id, n, &mut body);
        let outcome = match http.post(&body, &headers).await {
            Ok(r) if r.status == 200 && !s.check => Ok(()),
            Ok(r) if r.status == 200 => messages(&r.body)
                .iter()
                .find(|m| m.get("id").is_some())
                .ok_or_else(|| format!("no answer in {}", String::from_utf8_lossy(&r.body)))
                .and_then(|a| check(a, id, expect.as_deref())),
            Ok(r) => Err(format!(
                "status {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => return tally.failed(due, e),
        };
        tally.record(due, outcome);
    }
    hold(&s).await;
    tally
}

/// A connection that carries JSON-RPC messages whole, many in flight: a
/// WebSocket, or a server process's stdin and stdout (one per line).
/// One per connection, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Pipe {
    Ws(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>),
    Stdio {
        /// Killed when dropped.
        _child: tokio::process::Child,
        input: tokio::process::ChildStdin,
        output: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    },
}

impl Pipe {
    async fn open(s: &Settings, i: u64) -> Result<Pipe, String> {
        if s.mode == Mode::Stdio {
            let mut child = tokio::process::Command::new(&s.command[0])
                .args(&s.command[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("start {}: {e}", s.command[0]))?;
            let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
                return Err("no stdin or stdout".into());
            };
            use tokio::io::AsyncBufReadExt as _;
            return Ok(Pipe::Stdio {
                _child: child,
                input,
                output: tokio::io::BufReader::new(output).lines(),
            });
        }
        let url = format!("ws://{}{}", s.host, s.path);
        let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp_connect(s, i).await?);
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Pipe::Ws(ws))
    }

    async fn send(&mut self, text: &str) -> Result<(), String> {
        match self {
            Pipe::Ws(ws) => ws
                .send(Message::text(text))
                .await
                .map_err(|e| format!("send: {e}")),
            Pipe::Stdio { input, .. } => {
                let mut line = Vec::with_capacity(text.len() + 1);
                line.extend_from_slice(text.as_bytes());
                line.push(b'\n');
                input
                    .write_all(&line)
                    .await
                    .map_err(|e| format!("send: {e}"))
            }
        }
    }

    /// The next message; `None` when the other side closed.
    async fn next(&mut self) -> Option<Result<String, String>> {
        match self {
            Pipe::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_owned())),
                    Ok(_) => continue,
                    Err(e) => return Some(Err(format!("read: {e}"))),
                }
            },
            Pipe::Stdio { output, .. } => output
                .next_line()
                .await
                .map_err(|e| format!("read: {e}"))
                .transpose(),
        }
    }

    async fn close(self) {
        if let Pipe::Ws(mut ws) = self {
            let _ = ws.close(None).await;
        }
    }
}

async fn pipe_connection(s: Arc<Settings>, i: u64, until: Instant) -> Tally {
    let tally = Tally::new();
    let mut pipe = match Pipe::open(&s, i).await {
        Ok(pipe) => pipe,
        Err(e) => return tally.failed(Instant::now(), e),
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "load", "version": "0"}}});
    let opened = async {
        pipe.send(&init.to_string()).await?;
        pipe.next().await.ok_or("closed")??;
        pipe.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await
    };
    if let Err(e) = opened.await {
        return tally.failed(Instant::now(), format!("initialize: {e}"));
    }
    let template = Template::new(&s, false);
    let mut tally = tally;
    let mut body = String::new();
    let mut pace = Pace::new(&s);
    // Calls sent and not yet answered: when each was due, and its check;
    // without checks, answers are taken in the order of the calls.
    let mut waiting: HashMap<u64, (Instant, Option<String>)> = HashMap::new();
    let mut in_order = std::collections::VecDeque::new();
    let mut id = 0u64;
    let mut sending = true;
    loop {
        let outstanding = waiting.len() + in_order.len();
        if sending && outstanding < s.in_flight {
            let due = pace.due().await;
            if due >= until || id >= s.calls {
                sending = false;
            } else {
                id += 1;
                let n = i * 1_000_000_000 + id;
                let expect = template.render(id, n, &mut body);
                if let Err(e) = pipe.send(&body).await {
                    return tally.failed(due, e);
                }
                if s.check {
                    waiting.insert(id, (due, expect));
                } else {
                    in_order.push_back(due);
                }
                continue;
            }
        }
        if outstanding == 0 {
            break;
        }
        let text = match pipe.next().await {
            Some(Ok(text)) => text,
            Some(Err(e)) => return tally.failed(Instant::now(), e),
            None => return tally.failed(Instant::now(), "closed".into()),
        };
        if !s.check {
            // A notification is no answer (cheaply told: it has no id).
            if !text.contains("\"id\"") {
                continue;
            }
            if let Some(due) = in_order.pop_front() {
                tally.record(due, Ok(()));
            }
            continue;
        }
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                tally.record(Instant::now(), Err(format!("not JSON: {e}")));
                continue;
            }
        };
        let Some(answered) = answer["id"].as_u64() else {
            continue;
        };
        match waiting.remove(&answered) {
            Some((due, expect)) => tally.record(due, check(&answer, answered, expect.as_deref())),
            None => tally.record(
                Instant::now(),
                Err(format!("answer to unknown id {answered}")),
            ),
        }
    }
    hold(&s).await;
    pipe.close().await;
    tally
}

/// Connection `i`'s TCP stream (no Nagle delay): from a loopback address
/// of its own with `--spread` (each its own client to a server that
/// limits by address), else from wherever the system picks.
async fn tcp_connect(s: &Settings, i: u64) -> Result<TcpStream, String> {
    let stream = if s.spread {
        let to: std::net::SocketAddr = s
            .host
            .parse()
            .map_err(|_| format!("--spread needs an IP:port --url, not {}", s.host))?;
        // 127.0.1.1 onwards, skipping .0 and .255 in the last byte.
        let n = u32::try_from(i).unwrap_or(u32::MAX) % (254 * 256 * 200);
        let from = std::net::Ipv4Addr::new(
            127,
            (n / (254 * 256)) as u8,
            1 + ((n / 254) % 256) as u8,
            1 + (n % 254) as u8,
        );
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        socket
            .bind((from, 0).into())
            .map_err(|e| format!("bind {from}: {e}"))?;
        socket.connect(to).await
    } else {
        TcpStream::connect(&s.host).await
    };
    let stream = stream.map_err(|e| format!("connect {}: {e}", s.host))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Connections that reached their `--hold`.
static HOLDING: AtomicU64 = AtomicU64::new(0);

/// With `--hold`: keeps the caller's connection open and idle that long,
/// saying on stderr when every connection is idle (`holding N`), so a
/// script can read the server's memory then.
async fn hold(s: &Settings) {
    if s.hold.is_zero() {
        return;
    }
    if HOLDING.fetch_add(1, Ordering::Relaxed) + 1 == s.connections {
        eprintln!("holding {}", s.connections);
    }
    tokio::time::sleep(s.hold).await;
}

#[tokio::main]
async fn main() {
    let s = match settings() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let until = started + s.duration;
    let mut connections = tokio::task::JoinSet::new();
    for i in 0..s.connections {
        let s = Arc::clone(&s);
        match s.mode {
            Mode::Ws | Mode::Stdio => connections.spawn(pipe_connection(s, i, until)),
            _ => connections.spawn(http_connection(s, i, until)),
        };
    }
    let mut all = Tally::new();
    while let Some(done) = connections.join_next().await {
        match done {
            Ok(one) => {
                all.ok += one.ok;
                all.errors += one.errors;
                let _ = all.latencies.add(&one.latencies);
            }
            Err(_) => all.errors += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (ok, errors, h) = (all.ok, all.errors, &all.latencies);
    let us = |q: f64| h.value_at_quantile(q);
    println!(
        "mode={:?} connections={} seconds={secs:.2} calls={ok} errors={errors} calls_per_s={:.0} \
         p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
        s.mode,
        s.connections,
        ok as f64 / secs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max()
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
