//! Faults between the daemon and Snowflake: the daemon runs on the fakesnow
//! shim through a proxy of this test that can reset, stall or refuse the
//! warehouse's connections, and the shim itself is killed mid-statement and
//! started again. Each time the MCP client gets a clear error (never a hang
//! past the request timeout), `/health/detailed` says the database is
//! unhealthy, and once the fault is gone the pool heals itself: calls work
//! again with nothing left running.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use support::daemon::Daemon;
use support::victim::{answer, open_session, post, query};
use support::warehouse::FakeSnow;
use support::{Client, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What the proxy does with the bytes the daemon sends to Snowflake.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Passes them on.
    Pass,
    /// Resets the connection (RST) at the next bytes.
    Reset,
    /// Swallows them: the daemon waits for an answer that never comes.
    Stall,
}

/// A TCP proxy in front of the shim whose behaviour the test switches, for
/// new and already open connections alike; it can also stop listening
/// (connection refused) and listen again on the same port.
struct FaultProxy {
    port: u16,
    upstream: u16,
    mode: Arc<Mutex<Mode>>,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    async fn start(upstream: u16) -> FaultProxy {
        let mut proxy = FaultProxy {
            port: 0,
            upstream,
            mode: Arc::new(Mutex::new(Mode::Pass)),
            accepting: None,
        };
        proxy.listen().await;
        proxy
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    /// Listens (again) on its port, or a free one the first time, and
    /// passes everything on.
    async fn listen(&mut self) {
        self.set(Mode::Pass);
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .expect("bind");
        let listener = socket.listen(64).expect("listen");
        self.port = listener.local_addr().expect("addr").port();
        let (mode, upstream) = (Arc::clone(&self.mode), self.upstream);
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, Arc::clone(&mode)));
            }
        }));
    }

    /// Stops listening: new connections are refused, and the open ones
    /// are reset at their next request (the whole route is gone).
    async fn refuse(&mut self) {
        self.set(Mode::Reset);
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
            let _ = accepting.await;
        }
    }
}

/// One connection through the proxy. Requests are judged by the mode when
/// their bytes arrive; answers flow back as they come. The daemon's side
/// closes with linger 0, so dropping it is a reset (RST), not a clean end.
async fn relay(client: TcpStream, upstream: u16, mode: Arc<Mutex<Mode>>) {
    let _ = client.set_zero_linger();
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // When the server's side ends (the stand-in died), so does the
        // daemon's: a proxy that kept it open would hide the failure.
        let n = tokio::select! {
            read = from_client.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = &mut back => break,
        };
        let now = *mode.lock();
        match now {
            Mode::Pass => {
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Mode::Stall => {}
            Mode::Reset => break,
        }
    }
    // Both halves of the daemon's side go: with linger 0, a reset.
    back.abort();
}

/// The request timeout the daemon runs with here.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One `execute_query` on its own connection: whether it succeeded, its
/// text, and how long it took.
async fn run(addr: SocketAddr, session: &str, id: i64, sql: &str) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut c = Client::connect(addr)
        .await
        .waiting(REQUEST_TIMEOUT + Duration::from_secs(5));
    c.send(&post(
        addr,
        "2025-06-18",
        Some(session),
        &query(id, sql),
        "",
    ))
    .await;
    let r = c.read_response_to("POST").await;
    let a = answer(&r.body, id);
    let ok = a["result"]["isError"] != json!(true) && a["error"].is_null();
    let text = a["result"]["content"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| a.to_string());
    (ok, text, started.elapsed())
}

/// `/health/detailed`: the overall status and the database component.
async fn health(addr: SocketAddr) -> (String, Value) {
    let mut c = Client::connect(addr).await;
    c.send(
        format!("GET /health/detailed HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let r = c.read_response_to("GET").await;
    let body: Value = serde_json::from_slice(&r.body).expect("JSON");
    (
        body["overall_status"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["components"]["database"].clone(),
    )
}

/// A call made while `fault` lasts: it fails, within the request timeout,
/// and `/health/detailed` turns the database unhealthy. Its text.
async fn fails_clearly(addr: SocketAddr, session: &str, id: i64, sql: &str, fault: &str) -> String {
    let (ok, text, took) = run(addr, session, id, sql).await;
    eprintln!("{fault}: {took:?}: {text}");
    assert!(!ok, "{text}");
    assert!(took < REQUEST_TIMEOUT + Duration::from_secs(3), "{took:?}");
    let error = database_becomes(addr, "unhealthy").await;
    eprintln!("{fault}: /health/detailed says {error:?}");
    text
}

/// Calls until one succeeds (the pool healed), at most `within`.
async fn healed(daemon: &Daemon, session: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let mut id = 9_000;
    loop {
        id += 1;
        let (ok, text, _) = run(daemon.addr, session, id, "SELECT 42 AS answer").await;
        if ok {
            assert!(text.contains("42"), "{text}");
            return started.elapsed();
        }
        if started.elapsed() >= within {
            let log = daemon.stderr();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "never healed: {text}; the daemon's last lines, newest first:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `/health/detailed` reports the database `want` (the check
/// is cached for a moment); its error, if any.
async fn database_becomes(addr: SocketAddr, want: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, db) = health(addr).await;
        if db["status"] == json!(want) {
            return db["error"].as_str().map(str::to_owned);
        }
        assert!(Instant::now() < deadline, "database never {want}: {db}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_faults_give_clear_errors_and_the_pool_heals() {
    let mut fake = FakeSnow::start(0);
    let shim_port = fake.port;
    let mut proxy = FaultProxy::start(shim_port).await;
    let env = FakeSnow::daemon_env(&format!("http://127.0.0.1:{}", proxy.port));
    let daemon = Daemon::start(
        &["--port", "0", "--request-timeout", "3s", "--pool-size", "2"],
        &env.iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    let addr = daemon.addr;
    let session = open_session(addr, "2025-06-18", "").await;
    let (ok, text, _) = run(addr, &session, 1, "SELECT 1 AS one").await;
    assert!(ok, "{text}");
    assert_eq!(database_becomes(addr, "healthy").await, None);
    let fds_before = daemon.open_fds();

    // The network stalls: calls end at the request timeout, clearly. Two at
    // once, so both pooled sessions are left with a statement to abort over
    // the stalled network: the pool heals only if those aborts give up in
    // bounded time.
    proxy.set(Mode::Stall);
    let other = {
        let session = session.clone();
        tokio::spawn(async move { run(addr, &session, 20, "SELECT 20 AS twenty").await })
    };
    let text = fails_clearly(addr, &session, 2, "SELECT 2 AS two", "stalled").await;
    let (other_ok, _, _) = other.await.expect("the other call");
    assert!(!other_ok);
    assert!(text.contains("longer than 3s"), "{text}");
    proxy.set(Mode::Pass);
    eprintln!(
        "healed after a stall in {:?}",
        healed(&daemon, &session, Duration::from_secs(60)).await
    );

    // Connections are reset.
    proxy.set(Mode::Reset);
    fails_clearly(addr, &session, 3, "SELECT 3 AS three", "reset").await;
    proxy.set(Mode::Pass);
    eprintln!(
        "healed after resets in {:?}",
        healed(&daemon, &session, Duration::from_secs(60)).await
    );

    // Nobody listens: connection refused.
    proxy.refuse().await;
    fails_clearly(addr, &session, 4, "SELECT 4 AS four", "refused").await;
    proxy.listen().await;
    eprintln!(
        "healed after refusals in {:?}",
        healed(&daemon, &session, Duration::from_secs(60)).await
    );

    // The stand-in dies and comes back without its sessions: calls fail
    // clearly meanwhile, then log in again.
    fake.stop();
    fails_clearly(addr, &session, 6, "SELECT 6 AS six", "stand-in gone").await;
    let fake = FakeSnow::start(shim_port);
    eprintln!(
        "healed after a restart in {:?}",
        healed(&daemon, &session, Duration::from_secs(60)).await
    );
    assert_eq!(database_becomes(addr, "healthy").await, None);

    // Nothing left running or open.
    assert_eq!(metric(addr, "snowflake_mcp_requests_active").await, 0.0);
    let fds_after = daemon.open_fds();
    assert!(
        fds_after <= fds_before + 4,
        "file descriptors {fds_before} -> {fds_after}"
    );
    drop(fake);
}

/// Killed mid-statement (at the warehouse layer, where the stand-in's
/// `SYSTEM$WAIT` may run: the daemon's guard keeps `SYSTEM$` functions out
/// of read-only calls): the statement in flight fails clearly, at once, and
/// the warehouse logs in again once the stand-in is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_statement_fails_clearly_and_recovers() {
    use snowflake_mcp::warehouse::snowflake::SnowflakeWarehouse;
    use snowflake_mcp::warehouse::{QueryOptions, Warehouse as _};
    let mut fake = FakeSnow::start(0);
    let port = fake.port;
    let w = Arc::new(
        SnowflakeWarehouse::open(fake.config(2))
            .await
            .expect("login"),
    );
    let options = QueryOptions {
        max_rows: 1000,
        max_bytes: 1 << 20,
        ..QueryOptions::default()
    };
    w.query("SELECT 1", &options).await.expect("up");
    let in_flight = {
        let (w, options) = (Arc::clone(&w), options.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            (
                w.query("SELECT SYSTEM$WAIT(5)", &options).await,
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    fake.stop();
    let (result, took) = in_flight.await.expect("the statement");
    let e = result.expect_err("the stand-in died under it");
    eprintln!("killed mid-statement: {took:?}: {e}");
    // The cause, not only "failed after 3 retries".
    let said = e.to_string();
    assert!(
        said.contains("refused") || said.contains("reset") || said.contains("closed"),
        "{said}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let _fake = FakeSnow::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match w.query("SELECT 42 AS answer", &options).await {
            Ok(r) => {
                assert_eq!(r.rows, vec![vec![json!(42)]]);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = w.pool_stats();
    assert_eq!(stats.active, 0, "{stats:?}");
    assert!(stats.total <= 2, "{stats:?}");
}
