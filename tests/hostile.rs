//! Hostile clients against the example daemon, over real sockets: no
//! request may crash it, exhaust its memory, slip past the SQL guard or the
//! admission checks, or starve another client. Each test replays one attack
//! and asserts the process lives, the attacker gets a clear error, other
//! clients are served, and the peak resident memory stays under a budget.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::Client;
use support::daemon::Daemon;
use support::victim::{
    Alternation, Victim, answer, messages, open_session, post, query, report, report_alternating,
};
use tokio_tungstenite::tungstenite::Message;

/// How long each attack is kept up (repeated when it is quicker), so the
/// victim's p99 during it rests on a few hundred calls, not a handful. The
/// attacks made of rounds run in alternating windows (`Alternation`).
/// `HOSTILE_WINDOW_SECS` sets another (a p99 of a few hundred calls is
/// their third-worst: longer windows give steadier figures).
static WINDOW: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
    std::env::var("HOSTILE_WINDOW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_secs)
});

/// Lowers this thread (the test's, which runs the attacker's client) to
/// Linux's idle scheduling class: the attacker stands in for a client on
/// another machine, so its own client work (building bodies, reading
/// answers) must not take CPU from the daemon or the victim on this shared
/// 2-core box. Called after the daemon and the victim are started, which
/// would otherwise inherit the class.
fn attacker_elsewhere() {
    support::victim::idle_class();
}

/// One attack at a time: each loads both cores, and a victim's latency is
/// only meaningful when its attack is the only one running.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const KEY_A: &str = "attacker-key-0123456789";
const KEY_B: &str = "victim-key-0123456789ab";

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}\r\n")
}

/// The text of a tool result (its first content item).
fn text_of(a: &Value) -> String {
    a["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// One call on its own connection; the answer and how long it took.
async fn timed_call(addr: SocketAddr, session: &str, body: &str, extra: &str) -> (Value, Duration) {
    let mut c = Client::connect(addr).await;
    let started = Instant::now();
    c.send(&post(addr, "2025-06-18", Some(session), body, extra))
        .await;
    let r = c.read_response_to("POST").await;
    let id = serde_json::from_str::<Value>(body).expect("JSON")["id"]
        .as_i64()
        .expect("id");
    (answer(&r.body, id), started.elapsed())
}

/// A GET with `extra` header lines; the status.
async fn get_status(addr: SocketAddr, path: &str, host: &str, extra: &str) -> u16 {
    let mut c = Client::connect(addr).await;
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    c.read_response_to("GET").await.status
}

/// The daemon lives and answers a quick call.
async fn still_serving(daemon: &mut Daemon, session: &str, extra: &str) {
    assert!(daemon.is_running(), "the daemon died: {}", daemon.stderr());
    let (a, _) = timed_call(daemon.addr, session, &query(900, "SELECT 1 AS one"), extra).await;
    assert_eq!(
        a["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{a}"
    );
}

/// The scene of an attack without keys: this test's turn, the daemon on the
/// demo warehouse, the attacker's session on `version`, and a victim
/// calling beside it (the attacker's thread at the idle class from here).
async fn keyless_scene(
    version: &str,
) -> (tokio::sync::MutexGuard<'static, ()>, Daemon, String, Victim) {
    let turn = TURN.lock().await;
    let daemon = Daemon::start(&["--port", "0"], &[]);
    let session = open_session(daemon.addr, version, "").await;
    let victim = Victim::start(daemon.addr, "").await;
    attacker_elsewhere();
    (turn, daemon, session, victim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_expressions_and_documents_are_refused_and_the_daemon_lives() {
    let (_turn, mut daemon, session, victim) = keyless_scene("2025-06-18").await;
    let addr = daemon.addr;
    let mut rounds = Alternation::new(*WINDOW);
    while rounds.again().await {
        // About 66 KB of SQL each: a left-deep tree 33,000 levels deep once parsed.
        for op in ["+", " OR ", " AND ", "||", "*"] {
            let sql = format!("SELECT {}", vec!["1"; 33_000].join(op));
            let (a, _) = timed_call(addr, &session, &query(1, &sql), "").await;
            assert_eq!(a["result"]["isError"], json!(true), "{op}: {a}");
            let text = text_of(&a);
            assert!(
                text.contains("chains more than 512 operators"),
                "{op}: {text}"
            );
        }
        let nested = format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000));
        let (a, _) = timed_call(addr, &session, &query(2, &nested), "").await;
        assert!(text_of(&a).contains("nests parentheses"), "{a}");
        // JSON nested far past any parser's depth: a parse error, not a crash.
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"execute_query","arguments":{{"query":{}1{}}}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, "2025-06-18", Some(&session), &deep, ""))
            .await;
        let r = c.read_response_to("POST").await;
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(messages(&r.body)[0]["error"]["code"], json!(-32700));
    }
    still_serving(&mut daemon, &session, "").await;
    report_alternating("deep expressions", &daemon, victim, &rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_are_cut_or_refused_within_the_memory_budget() {
    let (_turn, mut daemon, session, victim) = keyless_scene("2025-06-18").await;
    let addr = daemon.addr;
    let mut rounds = Alternation::new(*WINDOW);
    while rounds.again().await {
        // Past SQLite's value limit: refused by SQLite itself, nothing built.
        for sql in [
            "SELECT zeroblob(50000000)",
            "SELECT randomblob(500000000)",
            "SELECT length(printf('%.*c', 100000000, 'x'))",
        ] {
            let (a, _) = timed_call(addr, &session, &query(1, sql), "").await;
            assert_eq!(a["result"]["isError"], json!(true), "{sql}: {a}");
            assert!(text_of(&a).contains("too big"), "{sql}: {}", text_of(&a));
        }
        // Within it, but alone past the result cap: the value is cut, marked, and said.
        let (a, _) = timed_call(
            addr,
            &session,
            &query(2, "SELECT zeroblob(10000000) AS b, 7 AS n"),
            "",
        )
        .await;
        let result = &a["result"]["structuredContent"];
        let cell = result["rows"][0][0].as_str().expect("a string");
        assert!(cell.ends_with("…[cut]"), "{}", &cell[cell.len() - 20..]);
        assert!(cell.len() <= 1024 * 1024, "{}", cell.len());
        assert_eq!(result["rows"][0][1], json!(7));
        assert_eq!(result["truncated"], json!(true));
        let answer_bytes = a.to_string().len();
        assert!(answer_bytes < 4 * 1024 * 1024, "{answer_bytes}");
        let notice = a["result"]["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter_map(|c| c["text"].as_str())
            .any(|t| t.contains("first row alone is larger"));
        assert!(notice, "{}", a["result"]["content"]);
    }
    still_serving(&mut daemon, &session, "").await;
    report_alternating("huge values", &daemon, victim, &rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_bounded_in_members_and_answer_bytes() {
    let version = "2025-03-26";
    let (_turn, mut daemon, session, victim) = keyless_scene(version).await;
    let addr = daemon.addr;
    let mut rounds = Alternation::new(*WINDOW);
    while rounds.again().await {
        // 89,240 calls in one 4 MiB body: refused whole, at once.
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let body = format!("[{}]", vec![list; 89_240].join(","));
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, version, Some(&session), &body, ""))
            .await;
        let r = c.read_response_to("POST").await;
        let refused = &messages(&r.body)[0];
        assert_eq!(refused["error"]["code"], json!(-32600), "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 64")),
            "{refused}"
        );
        // The count is known at the 65th member: nothing after it is read,
        // not even to see that it is broken.
        let body = format!("[{},{{\"broken", vec![list; 65].join(","));
        c.send(&post(addr, version, Some(&session), &body, ""))
            .await;
        let refused = &messages(&c.read_response_to("POST").await.body)[0];
        assert_eq!(refused["error"]["code"], json!(-32600), "{refused}");
        // 40 large answers: past 4 MiB, the rest are answered "not run".
        let members: Vec<String> = (1..=40)
            .map(|i| query(i, "SELECT zeroblob(600000) AS b"))
            .collect();
        let body = format!("[{}]", members.join(","));
        c.send(&post(addr, version, Some(&session), &body, ""))
            .await;
        let r = c.read_response_to("POST").await;
        let answers = messages(&r.body);
        assert_eq!(answers.len(), 40, "every request answered once");
        let not_run = answers
            .iter()
            .filter(|a| {
                a["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not run"))
            })
            .count();
        assert!((30..40).contains(&not_run), "{not_run} not run");
        assert!(r.body.len() < 8 * 1024 * 1024, "{}", r.body.len());
    }
    let session = open_session(addr, "2025-06-18", "").await;
    still_serving(&mut daemon, &session, "").await;
    report_alternating("batches", &daemon, victim, &rounds).await;
}

/// Many batches at once, each gathering large answers while its next
/// member waits its turn behind the others' (found 2026-12-06): each batch
/// stayed within its own 4 MiB, but nothing bounded them together, and the
/// gathered answers counted against no budget. Four addresses with 100
/// such batches each took a release build to 987 MiB. Now what batches
/// gather counts against the memory budget (here 32 MiB, to keep the test
/// small): once the kept pools have nothing left to give, the rest of a
/// batch is answered "not run" at once, and the daemon stays near the
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_at_once_gather_within_the_memory_budget() {
    let version = "2025-03-26";
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(
        &["--port", "0", "--memory-budget-bytes", "33554432"],
        &[("HOME", "/nonexistent")],
    );
    let addr = daemon.addr;
    let session = open_session(addr, version, "").await;
    let batches: Vec<_> = (0..48)
        .map(|b| {
            let session = session.clone();
            tokio::spawn(async move {
                let members: Vec<String> = (0..4)
                    .map(|i| query(b * 10 + i, "SELECT zeroblob(600000) AS b"))
                    .collect();
                let body = format!("[{}]", members.join(","));
                let mut c = Client::connect(addr).await.waiting(Duration::from_secs(60));
                c.send(&post(addr, version, Some(&session), &body, ""))
                    .await;
                messages(&c.read_response_to("POST").await.body)
            })
        })
        .collect();
    let (mut answered, mut ran, mut short) = (0, 0, 0);
    for batch in batches {
        let answers = batch.await.expect("a batch");
        answered += answers.len();
        for a in &answers {
            if a["result"].is_object() && a["result"]["isError"] != json!(true) {
                ran += 1;
            } else if a["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("holds all the memory"))
            {
                short += 1;
            }
        }
    }
    let peak = daemon.peak_rss_kib();
    let memory = status_now(addr).await["memory"].clone();
    eprintln!(
        "48 batches of 4 large answers at once: {ran} ran, {short} not run for memory, \
         memory {memory} after; peak RSS {} MiB",
        peak / 1024
    );
    assert_eq!(answered, 192, "every request answered once");
    assert!(
        ran > 0 && short > 0,
        "{ran} ran, {short} not run for memory"
    );
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
    let session = open_session(addr, "2025-06-18", "").await;
    still_serving(&mut daemon, &session, "").await;
}

/// A WebSocket to `/ws` (with `key`, if any), its MCP session opened as
/// client `name`.
async fn ws_session(addr: SocketAddr, key: Option<&str>, name: &str) -> support::Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "mcp".parse().expect("header"));
    if let Some(key) = key {
        headers.insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    let mut ws = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake")
        .0;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": name, "version": "0"}}});
    ws.send(Message::text(init.to_string()))
        .await
        .expect("send");
    ws.next().await.expect("open").expect("frame");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_closed_by_bytes_queued() {
    let _turn = TURN.lock().await;
    let keys = format!("{KEY_A},{KEY_B}");
    let mut daemon = Daemon::start(&["--port", "0"], &[("MCP_API_KEYS", &keys)]);
    let addr = daemon.addr;
    let b_auth = bearer(KEY_B);
    let victim = Victim::start(addr, &b_auth).await;
    attacker_elsewhere();
    let attack = Instant::now();
    let mut ws = ws_session(addr, Some(KEY_A), "slow-reader").await;
    // 24 answers of about 2.8 MB each (67 MB), and no reading for 8 s (inside
    // the 10 s send timeout, which counts from the first send that blocks):
    // only the byte bound can stop the pile-up, and the close says so.
    for id in 1..=24 {
        ws.send(Message::text(query(id, "SELECT zeroblob(700000) AS b")))
            .await
            .expect("send");
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut answers = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => answers += 1,
            Ok(Some(Ok(Message::Close(frame)))) => {
                break frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break None,
            Err(_) => panic!("neither closed nor answered: {answers} answers"),
        }
    };
    let (code, reason) = close.unwrap_or_else(|| panic!("no close frame after {answers} answers"));
    assert_eq!(code, 1008, "after {answers} answers: {reason}");
    assert!(reason.contains("too many bytes queued"), "{reason}");
    assert!(answers < 24, "{answers}");
    let session = open_session(addr, "2025-06-18", &b_auth).await;
    still_serving(&mut daemon, &session, &b_auth).await;
    report("websocket slow reader", &daemon, victim, attack).await;
}

/// What the attacker of [`large_websocket_answers_read_at_once`] checks of
/// each answer: its id and that it is a result, the large value skipped
/// over (a tree of it would cost the attacker's client, on this machine's
/// cores, more than the daemon spends writing it).
#[derive(serde::Deserialize)]
struct Outline {
    id: i64,
    result: Option<serde::de::IgnoredAny>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_websocket_answers_read_at_once() {
    let (_turn, mut daemon, session, victim) = keyless_scene("2025-06-18").await;
    let addr = daemon.addr;
    let mut ws = ws_session(addr, None, "fast-reader").await;
    let mut rounds = Alternation::new(*WINDOW);
    while rounds.again().await {
        // Four answers of about 2.8 MB each in flight, read as fast as they
        // come: the daemon writes megabytes without pause, and must still
        // leave the CPU to others between its pieces.
        let first = i64::from(rounds.round()) * 10;
        for id in first..first + 4 {
            ws.send(Message::text(query(id, "SELECT zeroblob(700000) AS b")))
                .await
                .expect("send");
        }
        let mut ids = Vec::new();
        while ids.len() < 4 {
            match ws.next().await.expect("an answer").expect("a frame") {
                Message::Text(text) => {
                    assert!(text.len() > 1_000_000, "{}", text.as_str());
                    let outline: Outline = serde_json::from_str(text.as_str()).expect("JSON");
                    assert!(outline.result.is_some(), "{}", &text.as_str()[..200]);
                    ids.push(outline.id);
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
        ids.sort_unstable();
        assert_eq!(ids, (first..first + 4).collect::<Vec<_>>());
    }
    still_serving(&mut daemon, &session, "").await;
    report_alternating("websocket large answers", &daemon, victim, &rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_principal_leaves_room_for_others() {
    let _turn = TURN.lock().await;
    let keys = format!("{KEY_A},{KEY_B}");
    let daemon = Daemon::start(&["--port", "0"], &[("MCP_API_KEYS", &keys)]);
    let addr = daemon.addr;
    let (a_auth, b_auth) = (bearer(KEY_A), bearer(KEY_B));
    let victim = open_session(addr, "2025-06-18", &b_auth).await;
    let prober = Victim::start(addr, &b_auth).await;
    attacker_elsewhere();
    let attack = Instant::now();
    // The attacker spreads eight long statements over eight sessions (a
    // session bought a share of its own before).
    let long = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000000) SELECT count(*) FROM c";
    let mut attackers = Vec::new();
    for i in 0..8 {
        let session = open_session(addr, "2025-06-18", &a_auth).await;
        let mut c = Client::connect(addr).await;
        c.send(&post(
            addr,
            "2025-06-18",
            Some(&session),
            &query(100 + i, long),
            &a_auth,
        ))
        .await;
        attackers.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (a, took) = timed_call(addr, &victim, &query(1, "SELECT 1 AS one"), &b_auth).await;
    assert_eq!(
        a["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{a}"
    );
    assert!(took < Duration::from_secs(3), "the victim waited {took:?}");
    eprintln!("victim's SELECT 1 beside 8 long statements: {took:?}");
    tokio::time::sleep_until((attack + *WINDOW).into()).await;
    // The status page names principals, never what a client called itself.
    let mut c = Client::connect(addr).await;
    c.send(format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    let status: Value =
        serde_json::from_slice(&c.read_response_to("GET").await.body).expect("JSON");
    let clients: Vec<&str> = status["active_requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["client"].as_str())
        .collect();
    assert!(clients.contains(&"key:key1"), "{status}");
    assert!(clients.iter().all(|c| c.starts_with("key:")), "{clients:?}");
    report("busy principal", &daemon, prober, attack).await;
    drop(attackers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_their_principal_and_no_one_fills_the_table() {
    let _turn = TURN.lock().await;
    let keys = format!("{KEY_A},{KEY_B}");
    let mut daemon = Daemon::start(
        &["--port", "0", "--max-sessions", "20"],
        &[("MCP_API_KEYS", &keys)],
    );
    let addr = daemon.addr;
    let (a_auth, b_auth) = (bearer(KEY_A), bearer(KEY_B));
    let prober = Victim::start(addr, &b_auth).await;
    attacker_elsewhere();
    let mut mine = Vec::new();
    let mut rounds = Alternation::new(*WINDOW);
    while rounds.again().await {
        for _ in 0..25 {
            mine.push(open_session(addr, "2025-06-18", &a_auth).await);
        }
    }
    // The table is full of the attacker's sessions; the victim still gets one.
    let victim = open_session(addr, "2025-06-18", &b_auth).await;
    still_serving(&mut daemon, &victim, &b_auth).await;
    let newest = mine.last().expect("sessions").clone();
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    let status = |session: String, auth: String| async move {
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, "2025-06-18", Some(&session), ping, &auth))
            .await;
        c.read_response_to("POST").await.status
    };
    assert_eq!(
        status(mine[0].clone(), a_auth.clone()).await,
        404,
        "the oldest made room"
    );
    assert_eq!(status(newest.clone(), a_auth.clone()).await, 200);
    // Another key holding the id gets nothing of it.
    assert_eq!(status(newest.clone(), b_auth.clone()).await, 404);
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "DELETE /mcp HTTP/1.1\r\nHost: {addr}\r\nMcp-Session-Id: {newest}\r\n{b_auth}Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.read_response_to("DELETE").await.status, 404);
    assert_eq!(status(newest, a_auth).await, 200, "still the owner's");
    report_alternating("session table", &daemon, prober, &rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_comes_before_the_key_and_covers_every_endpoint() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(
        &["--port", "0", "--rate-limit", "1:3"],
        &[("MCP_API_KEYS", KEY_A)],
    );
    let addr = daemon.addr;
    let wrong = bearer("wrong-key-0123456789abc");
    let mut statuses = Vec::new();
    for id in 0..6 {
        let mut c = Client::connect(addr).await;
        c.send(&post(
            addr,
            "2025-06-18",
            None,
            &query(id, "SELECT 1"),
            &wrong,
        ))
        .await;
        statuses.push(c.read_response_to("POST").await.status);
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    for path in ["/metrics", "/health"] {
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(get_status(addr, path, &addr.to_string(), "").await);
        }
        assert!(got.contains(&429), "{path}: {got:?}");
        tokio::time::sleep(Duration::from_millis(3100)).await;
    }
    assert!(daemon.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemes_origins_and_hosts_are_read_strictly() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0"], &[("MCP_API_KEYS", KEY_A)]);
    let addr = daemon.addr;
    // RFC 9110: the scheme is case-insensitive.
    let shouting = format!("Authorization: BEARER {KEY_A}\r\n");
    let session = open_session(addr, "2025-06-18", &shouting).await;
    still_serving(&mut daemon, &session, &shouting).await;
    // User info before an evil host is not a loopback origin.
    let mut c = Client::connect(addr).await;
    let sneaky = format!("{shouting}Origin: http://127.0.0.1:80@evil.example\r\n");
    c.send(&post(
        addr,
        "2025-06-18",
        Some(&session),
        &query(1, "SELECT 1"),
        &sneaky,
    ))
    .await;
    assert_eq!(c.read_response_to("POST").await.status, 403);
    // A rebound DNS name reads nothing, on any endpoint but the liveness probe.
    let evil = format!("rebound.evil.example:{}", addr.port());
    for path in ["/status", "/metrics", "/health/detailed"] {
        assert_eq!(get_status(addr, path, &evil, "").await, 403, "{path}");
    }
    assert_eq!(
        get_status(addr, "/metrics", &addr.to_string(), "").await,
        200
    );
    assert_eq!(get_status(addr, "/health", &evil, "").await, 200);
    let mut c = Client::connect(addr).await;
    let rebound = post(
        addr,
        "2025-06-18",
        Some(&session),
        &query(2, "SELECT 1"),
        &shouting,
    )
    .replace_host(&addr.to_string(), &evil);
    c.send(&rebound).await;
    assert_eq!(c.read_response_to("POST").await.status, 403);
}

/// Rewrites the `Host` line of a request.
trait ReplaceHost {
    fn replace_host(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceHost for Vec<u8> {
    fn replace_host(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .expect("text")
            .replacen(&format!("Host: {from}"), &format!("Host: {to}"), 1)
            .into_bytes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_literals_are_read_as_sqlite_reads_them() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "2025-06-18", "").await;
    // Snowflake reads one string literal; SQLite reads 'a\', a call, a comment.
    let (a, _) = timed_call(
        addr,
        &session,
        &query(1, r"SELECT 'a\' , sqlite_version() --'"),
        "",
    )
    .await;
    assert_eq!(a["result"]["isError"], json!(true), "{a}");
    assert!(text_of(&a).contains("comments are not allowed"), "{a}");
    // SQLite's own JSON operator is an ordinary read there.
    let (a, _) = timed_call(
        addr,
        &session,
        &query(2, r#"SELECT '{"a":5}' ->> '$.a' AS v"#),
        "",
    )
    .await;
    assert_eq!(
        a["result"]["structuredContent"]["rows"],
        json!([[5]]),
        "{a}"
    );
    still_serving(&mut daemon, &session, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumption_buffers_are_bounded_and_shared() {
    let (_turn, mut daemon, session, victim) = keyless_scene("2025-06-18").await;
    let addr = daemon.addr;
    let (mut rounds, mut last) = (Alternation::new(*WINDOW), 0);
    while rounds.again().await {
        // Sixteen answers of about 2.8 MB each, all kept for resumption before
        // (45 MB for one session); now 4 MiB per session at most.
        let mut c = Client::connect(addr).await;
        for id in (1..=16).map(|i| i64::from(rounds.round()) * 100 + i) {
            c.send(&post(
                addr,
                "2025-06-18",
                Some(&session),
                &query(id, "SELECT zeroblob(700000) AS b"),
                "",
            ))
            .await;
            let r = c.read_response_to("POST").await;
            assert!(answer(&r.body, id)["result"].is_object());
            last = id;
        }
    }
    // Thirty readers resume the last answer and never read: they share its
    // one buffer instead of a copy each.
    let resume = format!(
        "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\nLast-Event-ID: {last}-1\r\n\r\n"
    );
    let mut idle = Vec::new();
    for _ in 0..30 {
        let mut r = Client::connect(addr).await;
        r.send(resume.as_bytes()).await;
        idle.push(r);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // An early answer (of the last round) is gone (409: no gap handed over as a whole stream).
    let mut c = Client::connect(addr).await;
    c.send(
        resume
            .replace(&format!("{last}-1"), &format!("{}-1", last - 15))
            .as_bytes(),
    )
    .await;
    assert_eq!(c.read_response_to("GET").await.status, 409);
    still_serving(&mut daemon, &session, "").await;
    report_alternating("resumption buffers", &daemon, victim, &rounds).await;
    drop(idle);
}

/// Clients of the held-open attacks, each holding back the last byte of a
/// message of [`LEN`] bytes.
const CLIENTS: usize = 48;
/// The size of each held-open message: the default body and message limit.
const LEN: usize = 4 * 1024 * 1024;

/// The held-open attacks' scene: this test's turn, a daemon with the
/// default limits, and a `ping` of [`LEN`] bytes to hold open.
async fn held_open_scene() -> (tokio::sync::MutexGuard<'static, ()>, Daemon, Vec<u8>) {
    let turn = TURN.lock().await;
    let daemon = Daemon::start(&["--port", "0"], &[("HOME", "/nonexistent")]);
    (turn, daemon, padded_ping(LEN))
}

/// The head of a POST whose body is [`LEN`] bytes.
fn held_body_head(addr: SocketAddr) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
         Content-Length: {LEN}\r\n\r\n"
    )
}

/// The status of the answer on `s`, if one comes within `within`.
async fn status(s: &mut tokio::net::TcpStream, within: Duration) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `n` clients each sending `body` (of [`LEN`] bytes) but its last byte;
/// each is taken (no answer comes).
async fn hold_bodies(addr: SocketAddr, n: usize, body: &[u8]) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let head = held_body_head(addr);
    let mut held = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(&body[..LEN - 1]).await.expect("body");
        assert_eq!(
            status(&mut s, Duration::from_millis(300)).await,
            None,
            "a large body held open is taken"
        );
        held.push(s);
    }
    held
}

/// Sends each held body's last byte; each is answered (not 503).
async fn finish_held_bodies(held: &mut [tokio::net::TcpStream], body: &[u8]) {
    use tokio::io::AsyncWriteExt;
    for s in held {
        s.write_all(&body[LEN - 1..]).await.expect("last byte");
        let answered = status(s, Duration::from_secs(10)).await;
        assert!(
            matches!(answered, Some(code) if code != 503),
            "a finished body was answered {answered:?}"
        );
    }
}

/// A `ping` of exactly `len` bytes (its params padded).
fn padded_ping(len: usize) -> Vec<u8> {
    let mut ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""#.to_vec();
    ping.resize(len - 3, b'x');
    ping.extend_from_slice(br#""}}"#);
    ping
}

/// Many clients each sending a 4 MiB body and holding back its last byte:
/// all connections together hold at most 16 bodies' worth of large bodies
/// (64 MiB by default); past that a large body is refused with 503 before
/// it is read. Before the bound, 60 such clients took the daemon to 258 MB
/// (1,024, the connection limit, would hold 4 GB). Once the held bodies
/// are finished and answered, their room is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_held_open_are_bounded_all_together() {
    use tokio::io::AsyncWriteExt;
    let (_turn, daemon, body) = held_open_scene().await;
    let addr = daemon.addr;
    let head = held_body_head(addr);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..CLIENTS {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        // A refused body is not read: the server closes, and this write
        // may fail.
        let sent = s.write_all(&body[..LEN - 1]).await.is_ok();
        match status(&mut s, Duration::from_millis(300)).await {
            Some(503) => refused += 1,
            None if sent => held.push(s),
            other => panic!("a large body held open was answered {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "{CLIENTS} clients holding 4 MiB bodies open: {} held, {refused} refused (503), \
         peak RSS {} MiB",
        held.len(),
        peak / 1024
    );
    assert_eq!(held.len(), 16, "16 bodies of 4 MiB fill the 64 MiB bound");
    assert_eq!(refused, CLIENTS - 16);
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
    // A chunked body counts as it grows: past 64 KiB, with the bound full,
    // it is refused too.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunked = head.replace(
        &format!("Content-Length: {LEN}"),
        "Transfer-Encoding: chunked",
    );
    s.write_all(chunked.as_bytes()).await.expect("head");
    let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
    for _ in 0..8 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    assert_eq!(
        status(&mut s, Duration::from_secs(5)).await,
        Some(503),
        "a chunked body growing past 64 KiB with the bound full"
    );
    drop(s);
    // Finished, the held bodies are answered; their room is free again.
    finish_held_bodies(&mut held, &body).await;
    drop(held);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&body).await.expect("body");
    let again = status(&mut s, Duration::from_secs(10)).await;
    assert!(
        matches!(again, Some(code) if code != 503),
        "after: {again:?}"
    );
    // And a large chunked body is taken as it grows.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(chunked.as_bytes()).await.expect("head");
    for piece in body.chunks(0x10000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await
            .expect("size");
        s.write_all(piece).await.expect("chunk");
        s.write_all(b"\r\n").await.expect("end of chunk");
    }
    s.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let chunked_again = status(&mut s, Duration::from_secs(10)).await;
    assert!(
        matches!(chunked_again, Some(code) if code != 503),
        "a large chunked body after: {chunked_again:?}"
    );
}

/// The same for WebSocket messages, beside held bodies: eight clients
/// holding 4 MiB bodies open, then many sockets each sending a 4 MiB
/// message and holding back its last byte. Bodies and messages share one
/// bound (64 MiB by default, 16 of them): eight messages are held, and a
/// socket whose next large frame would pass the bound is closed with 1013
/// (try again later) when its header arrives. Before, messages had a bound
/// of their own: 16 were held beside the bodies. Once the held bodies and
/// messages are finished and answered, their room is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_websocket_messages_held_open_are_bounded_all_together() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_turn, daemon, message) = held_open_scene().await;
    let addr = daemon.addr;
    // A masked text frame's header (the mask is zero: the payload goes as it is).
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(LEN as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    let open = || async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let handshake = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mcp\r\n\r\n"
        );
        s.write_all(handshake.as_bytes()).await.expect("handshake");
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).await.expect("read"), 1, "closed");
            got.push(byte[0]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        s
    };
    // The code of the close frame that comes on `s` within `within`, if any
    // (text frames before it are skipped).
    async fn close_code(s: &mut tokio::net::TcpStream, within: Duration) -> Option<u16> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                // Frames from the server are unmasked.
                while got.len() >= 2 {
                    let (len, at) = match got[1] & 0x7f {
                        126 if got.len() >= 4 => {
                            (usize::from(u16::from_be_bytes([got[2], got[3]])), 4)
                        }
                        126 => break,
                        127 => return None,
                        n => (usize::from(n), 2),
                    };
                    if got.len() < at + len {
                        break;
                    }
                    if got[0] & 0x0f == 8 {
                        return Some(u16::from_be_bytes([got[at], got[at + 1]]));
                    }
                    got.drain(..at + len);
                }
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(within, read).await.ok().flatten()
    }
    // Eight HTTP bodies held open first take half the bound: large
    // bodies and large messages share it (before, each transport had a
    // bound of its own, and clients holding both held twice it).
    let mut bodies = hold_bodies(addr, 8, &message).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..CLIENTS {
        let mut s = open().await;
        s.write_all(&header).await.expect("frame header");
        s.write_all(&message[..1024]).await.expect("payload");
        match close_code(&mut s, Duration::from_millis(300)).await {
            Some(1013) => refused += 1,
            None => {
                s.write_all(&message[1024..LEN - 1]).await.expect("payload");
                held.push(s);
            }
            other => panic!("a large message held open was closed with {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "8 bodies then {CLIENTS} sockets holding 4 MiB messages open: {} held, {refused} \
         closed with 1013, peak RSS {} MiB",
        held.len(),
        peak / 1024
    );
    assert_eq!(
        held.len(),
        8,
        "8 messages of 4 MiB beside 8 bodies fill the 64 MiB bound"
    );
    assert_eq!(refused, CLIENTS - 8);
    assert!(peak < 160 * 1024, "peak RSS {peak} KiB");
    // The bodies, finished, are answered.
    finish_held_bodies(&mut bodies, &message).await;
    drop(bodies);
    // Finished, the held messages are answered; their room is free again.
    let mut answered = 0;
    for s in &mut held {
        s.write_all(&message[LEN - 1..]).await.expect("last byte");
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 2 && buf[0] == 0x81, "a text frame: {:?}", &buf[..n]);
        answered += 1;
    }
    assert_eq!(answered, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = open().await;
    s.write_all(&header).await.expect("frame header");
    s.write_all(&message).await.expect("payload");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(n > 2 && buf[0] == 0x81, "after: {:?}", &buf[..n]);
}

/// A 2026-07-28 request of `method` with `params` (the tasks extension
/// declared), sent with `auth`; its JSON-RPC answer.
async fn modern(addr: SocketAddr, method: &str, params: Value, auth: &str) -> Value {
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .map(|n| format!("Mcp-Name: {n}\r\n"))
        .unwrap_or_default();
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":
            {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    });
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string();
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
             Mcp-Method: {method}\r\n{name}{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    messages(&c.read_response_to("POST").await.body)
        .into_iter()
        .next()
        .expect("an answer")
}

/// The start of an answer: enough to say what went wrong.
fn brief(v: &Value) -> String {
    v.to_string().chars().take(400).collect()
}

/// Tasks answer only the principal whose call made them (to another key
/// their ids are unknown, as ids never made), and the results they keep
/// are bounded in bytes: an attacker's 160 results of about 2 MB each do
/// not pile up; its oldest go first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_belong_to_their_principal_and_their_results_are_bounded() {
    let _turn = TURN.lock().await;
    let keys = format!("{KEY_A},{KEY_B}");
    // Every call a task, however fast (a release build runs this one in
    // under a millisecond).
    let mut daemon = Daemon::start(
        &["--port", "0", "--query-task-after", "0ms"],
        &[("MCP_API_KEYS", &keys)],
    );
    let addr = daemon.addr;
    let (a_auth, b_auth) = (bearer(KEY_A), bearer(KEY_B));
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) \
               SELECT count(*) AS n, zeroblob(700000) AS b FROM c";
    let done = |id: String, auth: String| async move {
        loop {
            let got = modern(addr, "tasks/get", json!({"taskId": id}), &auth).await;
            if got["result"]["status"] != "working" {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut ids = Vec::new();
    let mut largest = 0;
    for i in 0..160 {
        let call = json!({"name": "execute_query", "arguments": {"query": sql}});
        let created = modern(addr, "tools/call", call, &a_auth).await;
        assert_eq!(
            created["result"]["resultType"],
            "task",
            "{}",
            brief(&created)
        );
        let id = created["result"]["taskId"].as_str().expect("id").to_owned();
        ids.push(id.clone());
        // A few at a time: within the key's share of the request manager.
        if i % 4 == 3 {
            let finished = done(id, a_auth.clone()).await;
            assert_eq!(
                finished["result"]["status"],
                "completed",
                "{}",
                brief(&finished)
            );
            largest = largest.max(finished.to_string().len());
        }
    }
    let last = done(ids[159].clone(), a_auth.clone()).await;
    assert_eq!(
        last["result"]["result"]["structuredContent"]["rows"][0][0],
        json!(20000),
        "the newest result is kept whole"
    );
    assert!(largest > 1_500_000, "each result is large: {largest}");
    // Another key holding the id learns nothing of it and cannot cancel it.
    for method in ["tasks/get", "tasks/cancel"] {
        let other = modern(addr, method, json!({"taskId": ids[159]}), &b_auth).await;
        assert_eq!(
            other["error"]["code"],
            json!(-32602),
            "{method}: {}",
            brief(&other)
        );
        assert!(
            other["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown taskId")),
            "{}",
            brief(&other)
        );
    }
    assert_eq!(
        done(ids[159].clone(), a_auth.clone()).await["result"]["status"],
        "completed"
    );
    // 160 results of ~2 MB are past the 64 MiB kept: the oldest went.
    let first = modern(addr, "tasks/get", json!({"taskId": ids[0]}), &a_auth).await;
    assert_eq!(first["error"]["code"], json!(-32602), "{}", brief(&first));
    let peak = daemon.peak_rss_kib();
    eprintln!("task results: peak RSS {} MiB", peak / 1024);
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    let session = open_session(addr, "2025-06-18", &b_auth).await;
    still_serving(&mut daemon, &session, &b_auth).await;
}

/// One client (one address) opening every connection the daemon serves:
/// past its share (a quarter) it gets 503 at once, and a client from
/// another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_connection() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0", "--max-connections", "64"], &[]);
    let addr = daemon.addr;
    let health = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..64 {
        let mut c = Client::connect(addr).await.waiting(Duration::from_secs(3));
        // Held: the daemon waits for its request. Refused: a 503 at once.
        let answered = tokio::time::timeout(Duration::from_millis(300), c.try_read_response("GET"));
        match answered.await {
            Err(_) => held.push(c),
            Ok(Some(r)) => {
                assert_eq!(r.status, 503, "{}", r.body_str());
                assert_eq!(r.body_str(), "too many open connections");
                refused += 1;
            }
            Ok(None) => panic!("closed without an answer"),
        }
    }
    assert_eq!((held.len(), refused), (16, 48), "a quarter held");
    // The held ones are served.
    held[0].send(health.as_bytes()).await;
    assert_eq!(held[0].read_response_to("GET").await.status, 200);
    // Another address is served beside them, MCP included.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
        .expect("bind 127.0.0.2");
    let mut other = Client::from_stream(socket.connect(addr).await.expect("connect"));
    other.send(health.as_bytes()).await;
    assert_eq!(other.read_response_to("GET").await.status, 200);
    // Once the client lets go, it gets connections again.
    held.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let session = open_session(addr, "2025-06-18", "").await;
    still_serving(&mut daemon, &session, "").await;
}

/// With a rate limit, a WebSocket's messages count against it as HTTP
/// requests do: a burst on one open socket gets its share answered, then
/// the 429's error for each request past it (by id), and the socket is
/// served again once its bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_cannot_pass_the_rate_limit() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0", "--rate-limit", "5:20"], &[]);
    let addr = daemon.addr;
    // The handshake and `initialize` took two of the 20.
    let mut ws = ws_session(addr, None, "eager").await;
    for id in 1..=60 {
        let ping = json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
        ws.send(Message::text(ping.to_string()))
            .await
            .expect("send");
    }
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    while served.len() + refused.len() < 60 {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer for every ping")
            .expect("open")
            .expect("frame");
        let answer: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
        let id = answer["id"].as_i64().expect("the request's id");
        if answer.get("result").is_some() {
            served.push(id);
        } else {
            assert_eq!(answer["error"]["code"], json!(-32600), "{answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("rate limited"), "{answer}");
            refused.push(id);
        }
    }
    assert!((17..=21).contains(&served.len()), "served {served:?}");
    // A second later the bucket holds five again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 100, "method": "ping"});
    ws.send(Message::text(ping.to_string()))
        .await
        .expect("send");
    let frame = ws.next().await.expect("open").expect("frame");
    let answer: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
    assert!(answer.get("result").is_some(), "{answer}");
    let session = open_session(addr, "2025-06-18", "").await;
    still_serving(&mut daemon, &session, "").await;
}

/// What a session keeps for its life is bounded: an `initialize` whose
/// `clientInfo` or `capabilities` is too long to keep is refused (150
/// sessions each keeping 1 MiB held 150 MiB), and a session subscribes to
/// at most 128 resources, with URIs of at most 2 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_session_keeps_is_bounded() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0"], &[]);
    let addr = daemon.addr;
    let padding = "x".repeat(1 << 20);
    for i in 0..150 {
        let (info, caps) = if i % 2 == 0 {
            (json!({"name": padding, "version": "0"}), json!({}))
        } else {
            (
                json!({"name": "c", "version": "0"}),
                json!({"experimental": {"pad": padding}}),
            )
        };
        let init = json!({"jsonrpc": "2.0", "id": i, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": caps, "clientInfo": info}})
        .to_string();
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, "2025-06-18", None, &init, "")).await;
        let r = c.read_response_to("POST").await;
        let answer = &messages(&r.body)[0];
        assert_eq!(answer["error"]["code"], json!(-32602), "{}", brief(answer));
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("is longer than"), "{message}");
        assert!(r.header("mcp-session-id").is_none(), "no session was made");
    }
    let peak = daemon.peak_rss_kib();
    eprintln!("150 initialize of 1 MiB: peak RSS {} MiB", peak / 1024);
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
    // Subscriptions: 128 at most, re-subscribing one held is fine.
    let session = open_session(addr, "2025-06-18", "").await;
    let subscribe = |id: usize, uri: String| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "resources/subscribe",
            "params": {"uri": uri}})
        .to_string();
        let session = session.clone();
        async move {
            let mut c = Client::connect(addr).await;
            c.send(&post(addr, "2025-06-18", Some(&session), &body, ""))
                .await;
            messages(&c.read_response_to("POST").await.body)[0].clone()
        }
    };
    for i in 0..128 {
        let a = subscribe(i, format!("snowflake://DEMO/MAIN/T{i}")).await;
        assert!(a.get("result").is_some(), "{a}");
    }
    let again = subscribe(200, "snowflake://DEMO/MAIN/T7".to_owned()).await;
    assert!(again.get("result").is_some(), "{again}");
    let more = subscribe(201, "snowflake://DEMO/MAIN/T128".to_owned()).await;
    assert_eq!(more["error"]["code"], json!(-32602), "{more}");
    let long = subscribe(202, format!("snowflake://{}", "y".repeat(4096))).await;
    assert_eq!(long["error"]["code"], json!(-32602), "{}", brief(&long));
    still_serving(&mut daemon, &session, "").await;
}

/// What a client sends comes back to it, and goes into the log, bounded: an
/// id longer than 1 KiB is refused (its answer cannot echo it), and the
/// names an error repeats (a method, tool, prompt, resource or argument)
/// are cut. Before, each came back whole (a resource's URI twice), and each
/// call's log line carried its id whole: connections sending megabyte ids
/// and never reading kept their answers and filled the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_comes_back_bounded() {
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "2025-06-18", "").await;
    let ask = |body: String| {
        let session = session.clone();
        async move {
            let mut c = Client::connect(addr).await;
            c.send(&post(addr, "2025-06-18", Some(&session), &body, ""))
                .await;
            c.read_response_to("POST").await
        }
    };
    let big = "y".repeat(1 << 20);
    // Ids past 1 KiB, a string and a number: refused, answered with a null id.
    let long_string = json!({"jsonrpc": "2.0", "id": big, "method": "ping"}).to_string();
    let long_number = format!(
        r#"{{"jsonrpc":"2.0","id":1.{},"method":"ping"}}"#,
        "0".repeat(2000)
    );
    for body in [long_string, long_number] {
        let r = ask(body).await;
        assert!(r.body.len() < 4096, "{} bytes", r.body.len());
        let a = &messages(&r.body)[0];
        assert_eq!(a["error"]["code"], json!(-32600), "{}", brief(a));
        assert_eq!(a["id"], Value::Null, "{}", brief(a));
        let message = a["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("\"id\" is longer than 1024 bytes"),
            "{message}"
        );
    }
    // An id of 1 KiB is still served.
    let r =
        ask(json!({"jsonrpc": "2.0", "id": "i".repeat(1024), "method": "ping"}).to_string()).await;
    assert!(
        messages(&r.body)[0].get("result").is_some(),
        "{}",
        r.body_str()
    );
    // Names an error repeats: cut, with their length said.
    let name = format!("n{big}");
    let cases = [
        ("method", json!({"jsonrpc": "2.0", "id": 1, "method": name})),
        (
            "tool",
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": name, "arguments": {}}}),
        ),
        (
            "prompt",
            json!({"jsonrpc": "2.0", "id": 3, "method": "prompts/get",
            "params": {"name": name}}),
        ),
        (
            "completion",
            json!({"jsonrpc": "2.0", "id": 5, "method": "completion/complete",
            "params": {"ref": {"type": "ref/prompt", "name": name},
                "argument": {"name": "a", "value": "v"}}}),
        ),
        (
            "resource template",
            json!({"jsonrpc": "2.0", "id": 6, "method": "completion/complete",
            "params": {"ref": {"type": "ref/resource", "uri": name},
                "argument": {"name": "a", "value": "v"}}}),
        ),
    ];
    for (what, body) in cases {
        let r = ask(body.to_string()).await;
        assert!(r.body.len() < 4096, "{what}: {} bytes", r.body.len());
        let a = &messages(&r.body)[0];
        let text = a["error"]["message"]
            .as_str()
            .or(a["result"]["content"][0]["text"].as_str())
            .unwrap_or_default();
        assert!(text.contains("nyyy"), "{what}: {text}");
        assert!(
            text.contains(&format!("({} bytes)", name.len())),
            "{what}: {text}"
        );
    }
    // A URI past 2 KiB is refused for reading as it is for subscribing.
    let read = json!({"jsonrpc": "2.0", "id": 8, "method": "resources/read",
        "params": {"uri": format!("snowflake://{big}")}});
    let r = ask(read.to_string()).await;
    assert!(r.body.len() < 4096, "{} bytes", r.body.len());
    let a = &messages(&r.body)[0];
    assert_eq!(a["error"]["code"], json!(-32602), "{}", brief(a));
    // A progress token, repeated in every progress notification of its
    // call, is bounded as an id is, and is a string or a number.
    for token in [json!(big), json!({"a": big})] {
        let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"query": "SELECT 1"},
                "_meta": {"progressToken": token}}});
        let r = ask(call.to_string()).await;
        assert!(r.body.len() < 4096, "{} bytes", r.body.len());
        let a = &messages(&r.body)[0];
        assert_eq!(a["error"]["code"], json!(-32602), "{}", brief(a));
    }
    // Connections sending 2 MB ids and never reading: refused small, logged small.
    let logged = daemon.stderr().len();
    let id = "z".repeat(2 << 20);
    let mut held = Vec::new();
    for i in 0..64 {
        let body = json!({"jsonrpc": "2.0", "id": format!("{i}{id}"), "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"query": "SELECT 1"}}})
        .to_string();
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, "2025-06-18", Some(&session), &body, ""))
            .await;
        held.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = daemon.stderr().len() - logged;
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "64 calls with 2 MB ids, never read: log +{grown} bytes, peak RSS {} MiB",
        peak / 1024
    );
    assert!(grown < 256 * 1024, "the log grew by {grown} bytes");
    // The issue's budget. (What stays resident of the bodies once they are
    // answered is memory glibc keeps in its arenas: a release build peaks
    // at 59-148 MiB here from one run to the next, with 17 MiB live after
    // `malloc_trim`; a debug build at about 45 MiB. Before ids were
    // bounded: 355 MiB.)
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    still_serving(&mut daemon, &session, "").await;
    drop(held);
}

/// A 2026-07-28 `tools/call` of `execute_query` running `sql`, as raw
/// HTTP/1.1 bytes (no session: any address may send it).
fn modern_query(addr: SocketAddr, id: usize, sql: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "execute_query", "arguments": {"query": sql},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "hostile", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: execute_query\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A client socket from `from` with a small fixed receive window, as a
/// client that reads slowly or not at all.
async fn narrow_socket(from: std::net::Ipv4Addr, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// Many clients that ask for megabyte answers and never read them cannot
/// make the daemon hold them all: past the backlog bound (64 MiB, one for
/// HTTP connections and WebSockets together) the connections whose clients
/// have taken nothing for the longest are closed. Before, each
/// connection's answer waited in memory until the write timeout (30 s;
/// 10 s for a WebSocket): four addresses' 1,000 connections held 729 MB
/// (HTTP) and 690 MB and growing (WebSocket) in a release build, and this
/// test's 512 clients 569-636 MiB. Then each transport had a bound of its
/// own, and clients that stalled both at once held both: 421 MB in a
/// release build (1,000 of each). A client that reads is served beside
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_cannot_fill_memory_together() {
    use tokio::io::AsyncWriteExt;
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(&["--port", "0"], &[]);
    let addr = daemon.addr;
    attacker_elsewhere();
    let sql = "SELECT zeroblob(1500000) AS b";
    // HTTP: three calls pipelined on each connection, nothing read.
    let mut held = Vec::new();
    for n in 0..PER_ADDRESS * 4 {
        let from = std::net::Ipv4Addr::new(127, 8, 1 + (n % 4) as u8, 1);
        let mut s = narrow_socket(from, addr).await;
        let mut pipelined = Vec::new();
        for k in 0..3 {
            pipelined.extend(modern_query(addr, n * 10 + k, sql));
        }
        s.write_all(&pipelined).await.expect("send");
        held.push(s);
    }
    // Meanwhile a client that reads gets its megabyte answers whole. The
    // attackers' calls fill the request manager's queue; each of its calls
    // takes the place of the newest of the client with the most waiting
    // (before, it was refused "server busy" until the queue drained).
    for k in 0..3 {
        let mut s = narrow_socket(std::net::Ipv4Addr::new(127, 8, 9, 1), addr).await;
        s.write_all(&modern_query(addr, 900 + k, sql))
            .await
            .expect("send");
        let mut c = Client::from_stream(s).waiting(Duration::from_secs(60));
        let r = c.read_response_to("POST").await;
        assert_eq!(r.status, 200);
        let a = &messages(&r.body)[0];
        assert!(r.body.len() > 1_000_000, "{}", brief(a));
        assert_eq!(a["result"]["structuredContent"]["truncated"], json!(true));
    }
    let http = settled(addr).await;
    let after_http = daemon.peak_rss_kib();
    // The HTTP clients stay, not reading, while the WebSockets come.
    let held_http = held;
    // WebSockets: a session each, four calls, nothing read.
    let frame = |text: String| {
        let mut f = vec![0x81, 0x80 | 127];
        f.extend_from_slice(&(text.len() as u64).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(text.as_bytes());
        f
    };
    let mut held = Vec::new();
    for n in 0..PER_ADDRESS * 4 {
        let from = std::net::Ipv4Addr::new(127, 8, 5 + (n % 4) as u8, 1);
        let mut s = narrow_socket(from, addr).await;
        let mut bytes = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mcp\r\n\r\n"
        )
        .into_bytes();
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "0"}}});
        bytes.extend(frame(init.to_string()));
        bytes.extend(frame(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        ));
        for k in 1..=4 {
            bytes.extend(frame(query(k, sql)));
        }
        s.write_all(&bytes).await.expect("send");
        held.push(s);
    }
    let ws = settled(addr).await;
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "{} HTTP clients then {} WebSockets not reading megabyte answers: peak RSS {} MiB \
         after HTTP, {} MiB with both; then {}, {}; backlog then {}, {}",
        PER_ADDRESS * 4,
        PER_ADDRESS * 4,
        after_http / 1024,
        peak / 1024,
        http["connections"],
        ws["connections"],
        http["backlog"],
        ws["backlog"],
    );
    // Past the bound, sockets were cut before the send timeout (those
    // whose one answer fits in the kernel's socket buffer never wait).
    let cut = ws["connections"]["websocket"]["closed"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        cut >= PER_ADDRESS as u64 / 4,
        "{cut} WebSockets closed: {ws}"
    );
    // One bound for both: the stalled sockets made room by cutting the
    // HTTP connections that had waited longest (before, each transport
    // had its own 64 MiB: none was cut for the other, and a debug build
    // still had 32 of 73 open after the WebSockets, the others closed by
    // the 30 s write timeout; now 1 of 76).
    let plain = |s: &Value| {
        let c = &s["connections"];
        c["http"]["active"].as_u64().unwrap_or(0) - c["websocket"]["active"].as_u64().unwrap_or(0)
    };
    assert!(
        plain(&ws) * 4 < plain(&http),
        "HTTP connections open before the WebSockets {}, after {}: {http} {ws}",
        plain(&http),
        plain(&ws)
    );
    let waiting = ws["backlog"]["bytes"].as_u64().expect("backlog bytes");
    assert!(waiting <= 64 * 1024 * 1024, "{waiting} bytes waiting");
    // The budget of the issue (256 MiB); 185 MiB here (256 MiB before the
    // one bound), much of it freed memory glibc keeps in its arenas.
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    assert!(daemon.is_running(), "{}", daemon.stderr());
    drop((held, held_http));
}

/// Waits until no call runs in the daemon at `addr` (each attacker's
/// answer made, read or not); its `/status` then.
async fn calls_done(addr: SocketAddr) -> Value {
    let started = Instant::now();
    loop {
        let mut c = Client::connect(addr).await;
        c.send(
            format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status: Value =
            serde_json::from_slice(&c.read_response_to("GET").await.body).expect("JSON");
        if status["active_requests"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "calls still running: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`calls_done`], then `/status` once the connections closed by then have
/// finished closing (a connection closed for an error lingers up to 1 s,
/// reading what its client still sends, and counts as active meanwhile: a
/// release build reads the status within that second).
async fn settled(addr: SocketAddr) -> Value {
    calls_done(addr).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    status_now(addr).await
}

/// Attacking connections per address in
/// `clients_that_stop_reading_cannot_fill_memory_together`, for each of
/// HTTP and WebSocket.
const PER_ADDRESS: usize = 64;

/// Clients that fill the request manager's queue together cannot shut a
/// newcomer out: its call takes the place of the newest waiting call of
/// the client with the most waiting. Before, it was refused "server busy"
/// until the queue drained (with the defaults: 256 slow calls of four
/// addresses, for minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_takes_a_newcomer() {
    use tokio::io::AsyncWriteExt;
    let _turn = TURN.lock().await;
    let limits = [
        "--port",
        "0",
        "--max-concurrent-requests",
        "2",
        "--max-requests-per-client",
        "1",
        "--max-queued-requests",
        "4",
        "--max-queued-per-client",
        "4",
    ];
    let mut daemon = Daemon::start(&limits, &[]);
    let addr = daemon.addr;
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                WHERE x < 1000000000) SELECT count(*) FROM c";
    // Two addresses, five slow calls each: two run, four wait, the rest
    // are refused (some in place of the other address's newest).
    let mut attackers = Vec::new();
    for n in 0..10 {
        let from = std::net::Ipv4Addr::new(127, 10, 1 + (n % 2) as u8, 1);
        let mut s = narrow_socket(from, addr).await;
        s.write_all(&modern_query(addr, n, slow))
            .await
            .expect("send");
        attackers.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = calls_now(addr).await;
    let waiting = status
        .iter()
        .filter(|c| c["running"] == json!(false))
        .count();
    assert_eq!(waiting, 4, "{status:?}");
    // A newcomer is queued, not refused; once the slow calls go, it runs.
    let mut s = narrow_socket(std::net::Ipv4Addr::new(127, 10, 3, 1), addr).await;
    s.write_all(&modern_query(addr, 99, "SELECT 1 AS one"))
        .await
        .expect("send");
    let mut newcomer = Client::from_stream(s).waiting(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = calls_now(addr).await;
    assert!(
        status
            .iter()
            .any(|c| c["client"] == json!("addr:127.10.3.1") && c["running"] == json!(false)),
        "the newcomer waits: {status:?}"
    );
    drop(attackers);
    let r = newcomer.read_response_to("POST").await;
    let a = &messages(&r.body)[0];
    assert_eq!(
        a["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{}",
        brief(a)
    );
    assert!(daemon.is_running(), "{}", daemon.stderr());
}

/// The calls the daemon at `addr` lists in `/status` now.
async fn calls_now(addr: SocketAddr) -> Vec<Value> {
    let mut c = Client::connect(addr).await;
    c.send(format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    let status: Value =
        serde_json::from_slice(&c.read_response_to("GET").await.body).expect("JSON");
    status["active_requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The daemon's `/status` now.
async fn status_now(addr: SocketAddr) -> Value {
    let mut c = Client::connect(addr).await;
    c.send(format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    serde_json::from_slice(&c.read_response_to("GET").await.body).expect("JSON")
}

/// Every bounded pool filled at once: task results (60 MB, within their
/// own bound of 64 MiB), answers kept for resumption (45 MB, within theirs
/// of 64 MiB), then 16 large bodies held open (64 MiB, their bound). Each
/// pool stays within its own bound, but before, nothing bounded their sum:
/// 172 MB held here (and with clients that stop reading beside them, 64
/// MiB more, a release build peaked at 373 MB). Now all pools together
/// hold at most the memory budget (96 MiB by default): the bodies are
/// still taken (a request being read is worth more than anything kept),
/// the kept answers give way first, all of them, and then the oldest task
/// results; the newest stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pool_full_at_once_stays_within_the_memory_budget() {
    use tokio::io::AsyncWriteExt;
    let _turn = TURN.lock().await;
    let mut daemon = Daemon::start(
        &["--port", "0", "--query-task-after", "0ms"],
        &[("HOME", "/nonexistent")],
    );
    let addr = daemon.addr;
    let sql = "SELECT zeroblob(700000) AS b";
    // Task results of about 2 MB each: 64 MiB, the tasks' own bound.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let call = json!({"name": "execute_query", "arguments": {"query": sql}});
        let created = modern(addr, "tools/call", call, "").await;
        let id = created["result"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("a task: {}", brief(&created)))
            .to_owned();
        loop {
            let got = modern(addr, "tasks/get", json!({"taskId": id}), "").await;
            if got["result"]["status"] != "working" {
                assert_eq!(got["result"]["status"], "completed", "{}", brief(&got));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tasks.push(id);
    }
    let tasks_only = status_now(addr).await["memory"].clone();
    // Answers kept for resumption: 24 sessions, one 2.8 MB answer each.
    let mut sessions = Vec::new();
    for k in 0..24 {
        let session = open_session(addr, "2025-06-18", "").await;
        let mut c = Client::connect(addr).await;
        let id = 1000 + k;
        c.send(&post(
            addr,
            "2025-06-18",
            Some(&session),
            &query(id, sql),
            "",
        ))
        .await;
        let r = c.read_response_to("POST").await;
        assert!(answer(&r.body, id)["result"].is_object());
        sessions.push((session, id));
    }
    let kept = status_now(addr).await["memory"].clone();
    // Sixteen large bodies held open.
    // (Each taken: the kept answers give way.)
    let body = padded_ping(LEN);
    let mut bodies = hold_bodies(addr, 16, &body).await;
    let memory = status_now(addr).await["memory"].clone();
    let (held, budget) = (memory["bytes"].as_u64(), memory["budget"].as_u64());
    // Which sessions can still resume their answer (409: it was dropped).
    let mut resumable = 0;
    for (session, id) in &sessions {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let resume = format!(
            "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\n\
             Last-Event-ID: {id}-0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(resume.as_bytes()).await.expect("resume");
        match status(&mut s, Duration::from_secs(5)).await {
            Some(200) => resumable += 1,
            Some(409) => {}
            other => panic!("a resumption was answered {other:?}"),
        }
    }
    let oldest = modern(addr, "tasks/get", json!({"taskId": tasks[0]}), "").await;
    let newest = modern(addr, "tasks/get", json!({"taskId": tasks[31]}), "").await;
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "32 task results, 24 kept answers, then 16 bodies held: memory {tasks_only} with the \
         results, {kept} with the kept answers, {memory} with the bodies; {resumable} of 24 \
         sessions can resume; peak RSS {} MiB",
        peak / 1024
    );
    assert!(
        matches!((held, budget), (Some(h), Some(b)) if h <= b && b == 96 << 20),
        "held past the budget: {memory}"
    );
    // The bodies needed about 64 MB past what was free: every kept answer
    // (about 36 MB of them beside the results), then the oldest results.
    assert_eq!(resumable, 0, "kept answers stayed beside the bodies");
    assert_eq!(
        oldest["error"]["message"],
        format!("unknown taskId \"{}\"", tasks[0]),
        "the oldest result gives way once no kept answer is left: {}",
        brief(&oldest)
    );
    assert_eq!(
        newest["result"]["status"],
        "completed",
        "the newest results stay: {}",
        brief(&newest)
    );
    // 94 MiB held and little more: a debug build peaks at 177 MiB (211 MiB
    // with the budget at 128 MiB, as it was by default before).
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // The bodies, finished, are answered.
    finish_held_bodies(&mut bodies, &body).await;
    let session = open_session(addr, "2025-06-18", "").await;
    still_serving(&mut daemon, &session, "").await;
}
