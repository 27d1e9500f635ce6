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
//! `--mode stateless|session|ws`, `--connections N`, `--duration SECONDS`,
//! `--rate CALLS_PER_SECOND` (total, spread over the connections; a call
//! that falls behind its schedule because an earlier answer came late has
//! its latency counted from when it was due, so a stalled server is not
//! hidden by calls never sent: coordinated omission corrected), `--in-flight
//! N` (calls outstanding per WebSocket), `--tool NAME`, `--args JSON` (every
//! `{n}` is replaced by a number unique to the call), `--expect TEXT`
//! (text every answer must contain; `{n}` as in `--args`).
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
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Stateless,
    Session,
    Ws,
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
                    other => return Err(format!("--mode {other:?}: stateless, session or ws")),
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
    if s.connections == 0 || s.in_flight == 0 {
        return Err("--connections and --in-flight must be at least 1".into());
    }
    Ok(s)
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v:?} is not a number"))
}

/// Counts and latencies shared by every connection.
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
}

impl Tally {
    async fn record(&self, due: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let micros = due.elapsed().as_micros().max(1) as u64;
                let _ = self.latencies.lock().await.record(micros);
            }
            Err(why) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("error: {why}");
                }
            }
        }
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

/// The body of call `id` (its unique number `n`), the text its answer must
/// hold, and the `_meta` 2026-07-28 wants in every request.
fn call(s: &Settings, id: u64, n: u64, modern: bool) -> (String, Option<String>) {
    let arguments: Value =
        serde_json::from_str(&s.args.replace("{n}", &n.to_string())).unwrap_or(Value::Null);
    let mut params = json!({"name": s.tool, "arguments": arguments});
    if modern {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "load", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}
        });
    }
    let body =
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string();
    let expect = s.expect.as_ref().map(|e| e.replace("{n}", &n.to_string()));
    (body, expect)
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
    async fn connect(s: &Settings) -> Result<Http, String> {
        let stream = TcpStream::connect(&s.host)
            .await
            .map_err(|e| format!("connect {}: {e}", s.host))?;
        let _ = stream.set_nodelay(true);
        Ok(Http {
            stream,
            buf: Vec::with_capacity(8192),
            host: s.host.clone(),
            path: s.path.clone(),
        })
    }

    async fn post(&mut self, body: &str, headers: &str) -> Result<Reply, String> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        );
        self.stream
            .write_all(request.as_bytes())
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

async fn http_connection(s: Arc<Settings>, i: u64, until: Instant, tally: Arc<Tally>) {
    let mut http = match Http::connect(&s).await {
        Ok(h) => h,
        Err(e) => return tally.record(Instant::now(), Err(e)).await,
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
            Err(e) => return tally.record(Instant::now(), Err(e)).await,
        }
    };
    let mut pace = Pace::new(&s);
    let mut id = 0u64;
    loop {
        let due = pace.due().await;
        if due >= until {
            break;
        }
        id += 1;
        let n = i * 1_000_000_000 + id;
        let (body, expect) = call(&s, id, n, modern);
        let outcome = match http.post(&body, &headers).await {
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
            Err(e) => {
                tally.record(due, Err(e)).await;
                return;
            }
        };
        tally.record(due, outcome).await;
    }
}

async fn ws_connection(s: Arc<Settings>, i: u64, until: Instant, tally: Arc<Tally>) {
    let url = format!("ws://{}{}", s.host, s.path);
    let mut ws = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            return tally
                .record(Instant::now(), Err(format!("{url}: {e}")))
                .await;
        }
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "load", "version": "0"}}});
    let opened = async {
        ws.send(Message::text(init.to_string())).await?;
        while let Some(m) = ws.next().await {
            if matches!(m?, Message::Text(_)) {
                break;
            }
        }
        ws.send(Message::text(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ))
        .await
    };
    if let Err(e) = opened.await {
        return tally
            .record(Instant::now(), Err(format!("initialize: {e}")))
            .await;
    }
    let mut pace = Pace::new(&s);
    // Calls sent and not yet answered: when each was due, and its check.
    let mut waiting: HashMap<u64, (Instant, Option<String>)> = HashMap::new();
    let mut id = 0u64;
    let mut sending = true;
    loop {
        if sending && waiting.len() < s.in_flight {
            let due = pace.due().await;
            if due >= until {
                sending = false;
            } else {
                id += 1;
                let n = i * 1_000_000_000 + id;
                let (body, expect) = call(&s, id, n, false);
                if let Err(e) = ws.send(Message::text(body)).await {
                    return tally.record(due, Err(format!("send: {e}"))).await;
                }
                waiting.insert(id, (due, expect));
                continue;
            }
        }
        if waiting.is_empty() {
            break;
        }
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return tally
                    .record(Instant::now(), Err(format!("read: {e}")))
                    .await;
            }
            None => return tally.record(Instant::now(), Err("closed".into())).await,
        };
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                tally
                    .record(Instant::now(), Err(format!("not JSON: {e}")))
                    .await;
                continue;
            }
        };
        let Some(answered) = answer["id"].as_u64() else {
            continue;
        };
        match waiting.remove(&answered) {
            Some((due, expect)) => {
                tally
                    .record(due, check(&answer, answered, expect.as_deref()))
                    .await
            }
            None => {
                tally
                    .record(
                        Instant::now(),
                        Err(format!("answer to unknown id {answered}")),
                    )
                    .await
            }
        }
    }
    let _ = ws.close(None).await;
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
    let tally = Arc::new(Tally {
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latencies: Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        ),
    });
    let started = Instant::now();
    let until = started + s.duration;
    let mut connections = tokio::task::JoinSet::new();
    for i in 0..s.connections {
        let (s, tally) = (Arc::clone(&s), Arc::clone(&tally));
        match s.mode {
            Mode::Ws => connections.spawn(ws_connection(s, i, until, tally)),
            _ => connections.spawn(http_connection(s, i, until, tally)),
        };
    }
    while let Some(done) = connections.join_next().await {
        if done.is_err() {
            tally.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let ok = tally.ok.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let h = tally.latencies.lock().await;
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
