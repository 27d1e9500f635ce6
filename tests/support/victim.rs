//! A victim: another client calling `SELECT 1` on the example daemon while
//! an attack or a load runs beside it, timing every call; and the request
//! helpers it shares with the tests that use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Client;

/// A POST to `/mcp` on the 2025-06-18 (or `version`) protocol.
pub fn post(
    addr: SocketAddr,
    version: &str,
    session: Option<&str>,
    body: &str,
    extra: &str,
) -> Vec<u8> {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {version}\r\n\
         {session}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON-RPC messages of a body: plain JSON (one or a batch) or SSE.
pub fn messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(all)) => all,
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect(),
    }
}

pub fn answer(body: &[u8], id: i64) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id} in {:?}", String::from_utf8_lossy(body)))
}

pub fn call(id: i64, tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
    .to_string()
}

pub fn query(id: i64, sql: &str) -> String {
    call(id, "execute_query", json!({"query": sql}))
}

/// Another client calling `SELECT 1` without pause on its own session and
/// connection while an attack runs, so the attack's cost to others is seen.
/// It runs on a thread and runtime of its own: the attacker's client work in
/// this process (building large bodies, reading large answers) must not
/// delay the victim's polling, or the figure would measure the test harness.
pub struct Victim {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Duration)>>,
}

impl Victim {
    pub async fn start(addr: SocketAddr, extra: &str) -> Victim {
        let extra = extra.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("victim runtime");
            runtime.block_on(Victim::calls(addr, extra, stopping, ready_tx))
        });
        ready_rx.await.expect("the victim opened its session");
        // A baseline before the attack begins.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Victim { stop, thread }
    }

    /// The victim's loop: opens its session, says so on `ready`, then calls
    /// until `stop`; each call's start and duration.
    async fn calls(
        addr: SocketAddr,
        extra: String,
        stop: Arc<AtomicBool>,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> Vec<(Instant, Duration)> {
        // From another loopback address: another client even without keys
        // (keyless clients of one address are one principal).
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
            .expect("bind 127.0.0.2");
        let mut c = Client::from_stream(socket.connect(addr).await.expect("connect"));
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "victim", "version": "0"}}})
        .to_string();
        c.send(&post(addr, "2025-06-18", None, &init, &extra)).await;
        let r = c.read_response_to("POST").await;
        assert_eq!(r.status, 200, "{}", r.body_str());
        let session = r.header("mcp-session-id").expect("session id").to_owned();
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        c.send(&post(addr, "2025-06-18", Some(&session), &done, &extra))
            .await;
        assert_eq!(c.read_response_to("POST").await.status, 202);
        let _ = ready.send(());
        let mut samples = Vec::new();
        let mut id = 10_000;
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let started = Instant::now();
            c.send(&post(
                addr,
                "2025-06-18",
                Some(&session),
                &query(id, "SELECT 1 AS one"),
                &extra,
            ))
            .await;
            let r = c.read_response_to("POST").await;
            assert_eq!(
                answer(&r.body, id)["result"]["structuredContent"]["rows"],
                json!([[1]])
            );
            samples.push((started, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples
    }

    /// Stops; the victim's p99 before `attack` began and from then on, and
    /// how many calls it made during the attack.
    pub async fn finish(self, attack: Instant) -> (Duration, Duration, usize) {
        self.finish_by(move |t| Some(t >= attack)).await
    }

    /// Stops; the victim's p99 over its calls that `during` puts in quiet
    /// time (`Some(false)`) and in attack time (`Some(true)`), skipping the
    /// others, and how many calls fell in attack time.
    pub async fn finish_by(
        self,
        during: impl Fn(Instant) -> Option<bool>,
    ) -> (Duration, Duration, usize) {
        split_p99(&self.stop().await, during)
    }

    /// Stops; every call's start and duration.
    async fn stop(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("joined")
            .expect("the victim was served throughout")
    }
}

/// The p99 of the calls that `during` puts in quiet time (`Some(false)`)
/// and in loud time (`Some(true)`), and how many calls were loud.
fn split_p99(
    samples: &[(Instant, Duration)],
    during: impl Fn(Instant) -> Option<bool>,
) -> (Duration, Duration, usize) {
    let p99 = |mut v: Vec<Duration>| {
        v.sort();
        v.get((v.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let pick = |want: bool| -> Vec<Duration> {
        samples
            .iter()
            .filter(|s| during(s.0) == Some(want))
            .map(|s| s.1)
            .collect()
    };
    let (quiet, loud) = (pick(false), pick(true));
    let n = loud.len();
    (p99(quiet), p99(loud), n)
}

/// Moves the calling thread to Linux's idle scheduling class, the lowest:
/// it runs only when nothing else wants the CPU.
pub fn idle_class() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads `param` only; pid 0 is this thread.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    assert_eq!(done, 0, "SCHED_IDLE: {}", std::io::Error::last_os_error());
}

/// The reference an attack's cost is read against: one core kept busy by a
/// plain loop in this process, at the idle scheduling class (so the guest's
/// scheduler gives it nothing the daemon or the victim want), in the same
/// alternating windows as an attack, for `total`. On a virtual machine of
/// two cores this alone moves a victim's p99 by 3-4x (the busy virtual CPU
/// still takes the host's time): an attack that must spend a core of CPU
/// (building megabytes the attacker asked for) cannot cost less.
pub async fn busy_core(total: Duration) -> Alternation {
    let mut rounds = Alternation::new(total);
    while rounds.again().await {
        let spin = std::thread::spawn(|| {
            idle_class();
            let until = Instant::now() + Duration::from_millis(50);
            let mut n = 0u64;
            while Instant::now() < until {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
        tokio::task::spawn_blocking(move || spin.join())
            .await
            .expect("joined")
            .expect("the spinning thread ended");
    }
    rounds
}

/// An attack kept up in rounds, in alternating windows: rounds for
/// [`Alternation::ON`], then a pause of [`Alternation::OFF`], until the
/// rounds have run for `total`. A victim's calls are then compared by the
/// window they started in, so the quiet and the loud figures come from the
/// same minutes of the same machine (whose own noise drifts from one minute
/// to the next by more than many attacks cost).
pub struct Alternation {
    total: Duration,
    /// Attack windows so far: start and end.
    windows: Vec<(Instant, Instant)>,
    since: Instant,
    ran: Duration,
    round: u32,
}

impl Alternation {
    /// How long rounds run before a pause.
    pub const ON: Duration = Duration::from_millis(400);
    /// How long a pause lasts; its first [`Alternation::SETTLE`] counts as
    /// neither (the last round's answers may still be on their way).
    pub const OFF: Duration = Duration::from_millis(400);
    /// See [`Alternation::OFF`].
    pub const SETTLE: Duration = Duration::from_millis(100);

    /// Rounds for `total` in all, the first starting now.
    pub fn new(total: Duration) -> Alternation {
        Alternation {
            total,
            windows: Vec::new(),
            since: Instant::now(),
            ran: Duration::ZERO,
            round: 0,
        }
    }

    /// Whether to run one more round (always the first), pausing first when
    /// the current window is over.
    pub async fn again(&mut self) -> bool {
        self.round += 1;
        if self.round == 1 {
            self.since = Instant::now();
            return true;
        }
        let now = Instant::now();
        if now - self.since < Self::ON && self.ran + (now - self.since) < self.total {
            return true;
        }
        self.windows.push((self.since, now));
        self.ran += now - self.since;
        if self.ran >= self.total {
            return false;
        }
        tokio::time::sleep(Self::OFF).await;
        self.since = Instant::now();
        true
    }

    /// Rounds begun so far.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Where a call that started at `t` falls: in an attack window
    /// (`Some(true)`), in quiet time before or between them (`Some(false)`),
    /// or neither (`None`): a pause's settling time, or after the last
    /// window (when the test goes on to other things).
    pub fn during(&self, t: Instant) -> Option<bool> {
        if self.windows.iter().any(|(a, b)| t >= *a && t < *b) {
            return Some(true);
        }
        let last_end = self.windows.last().map(|w| w.1)?;
        let settling = self
            .windows
            .iter()
            .any(|(_, b)| t >= *b && t < *b + Self::SETTLE);
        (t < last_end && !settling).then_some(false)
    }
}

/// Peak resident memory allowed to the daemon under any one attack or
/// load (the documented budget for the default settings is 256 MiB).
pub const RSS_BUDGET_KIB: u64 = 256 * 1024;

/// Prints and checks what an attack or load cost: the daemon's peak RSS
/// against the budget, and the victim's p99 before and during it (printed:
/// timing is reported, not asserted).
pub async fn report(what: &str, daemon: &super::daemon::Daemon, victim: Victim, attack: Instant) {
    let figures = victim.finish(attack).await;
    report_figures(what, daemon, "before", figures);
}

/// [`report`] for an attack run in alternating windows: the victim's p99 in
/// quiet time against its p99 in attack time; then the same for a busy
/// core ([`busy_core`], as long as the attack), the reference in this run.
pub async fn report_alternating(
    what: &str,
    daemon: &super::daemon::Daemon,
    victim: Victim,
    alternation: &Alternation,
) {
    let since = Instant::now();
    let reference = busy_core(alternation.total).await;
    let samples = victim.stop().await;
    let figures = split_p99(&samples, |t| alternation.during(t));
    let (quiet, busy, _) = split_p99(&samples, |t| (t >= since).then(|| reference.during(t))?);
    report_figures(what, daemon, "between rounds", figures);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    eprintln!(
        "{what}: reference, one busy core: victim p99 {quiet:?} between rounds, {busy:?} during; \
         attack {:.2}x quiet, busy core {:.2}x quiet, attack {:.2}x the busy core",
        ratio(figures.1, figures.0),
        ratio(busy, quiet),
        ratio(figures.1, busy)
    );
}

fn report_figures(
    what: &str,
    daemon: &super::daemon::Daemon,
    quiet: &str,
    (before, during, n): (Duration, Duration, usize),
) {
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "{what}: peak RSS {} MiB; victim p99 {before:?} {quiet}, {during:?} during ({n} calls)",
        peak / 1024
    );
    assert!(n > 0, "{what}: the victim made no call meanwhile");
    assert!(
        peak < RSS_BUDGET_KIB,
        "{what}: peak RSS {peak} KiB passed the budget"
    );
}

/// Opens a session on `version`; returns its id.
pub async fn open_session(addr: SocketAddr, version: &str, extra: &str) -> String {
    let mut c = Client::connect(addr).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "hostile-test <script>", "version": "0"}}})
    .to_string();
    c.send(&post(addr, version, None, &init, extra)).await;
    let r = c.read_response_to("POST").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let session = r.header("mcp-session-id").expect("session id").to_owned();
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    c.send(&post(addr, version, Some(&session), &done, extra))
        .await;
    assert_eq!(c.read_response_to("POST").await.status, 202);
    session
}
