#![cfg(all(feature = "redis", feature = "sqlite"))]
//! Tasks kept in a real Redis (Debian's `redis-server`, started here) are
//! answered by every replica: a task created on one is read, answered and
//! cancelled through another; a daemon that drains lets its task finish
//! and the result stays readable elsewhere; a task whose daemon was killed
//! is reported `failed`, not lost.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use snowflake_mcp::Service;
use snowflake_mcp::mcp::{
    Context, InputRequests, McpServer, SharedTasks, TaskSupport, Tool, ToolOutput,
};
use support::daemon::Daemon;

/// A Redis server on a Unix socket of its own, stopped on drop.
struct Redis {
    child: Child,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start() -> Redis {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mcp-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis dir");
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server; scripts/test.sh installs it)");
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, dir }
    }

    /// Runs one command with `redis-cli` on this server's socket.
    fn cli(&self, args: &[&str]) {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.dir.join("redis.sock"))
            .args(args)
            .output()
            .expect("redis-cli (Debian's redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("redis.sock").display())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A replica with two task tools: `ask` (asks the client for a word, then
/// answers with it) and `forever` (never ends).
async fn replica(redis: &Redis, prefix: &str) -> std::net::SocketAddr {
    let store = SharedTasks::connect(&redis.url(), prefix)
        .await
        .expect("connect to Redis");
    let form = json!({"type": "object", "properties": {"word": {"type": "string"}}});
    let ask = Tool::raw(
        "ask",
        "Asks for a word.",
        json!({"type": "object"}),
        move |ctx: Context, _args: Value| {
            let form = form.clone();
            async move {
                let asked = InputRequests::new().elicit("word", "A word?", form);
                match ctx.input(asked).await {
                    Ok(answers) => ToolOutput::text(format!(
                        "you said {}",
                        answers["word"]["content"]["word"].as_str().unwrap_or("?")
                    )),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    )
    .task_support(TaskSupport::Optional)
    .task_after(Duration::ZERO);
    let forever = Tool::raw(
        "forever",
        "Never ends.",
        json!({"type": "object"}),
        |_ctx: Context, _args: Value| async move {
            std::future::pending::<()>().await;
            ToolOutput::text("unreachable")
        },
    )
    .task_support(TaskSupport::Optional)
    .task_after(Duration::ZERO);
    support::serve(
        Service::new(
            McpServer::builder("replica", "0")
                .shared_tasks(store)
                .tool(ask)
                .tool(forever),
        )
        .streamable_http("/mcp"),
    )
    .await
}

const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{},"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;

/// A 2026-07-28 request of `method` with `params` (the tasks extension
/// declared) to `addr`; its JSON-RPC answer.
async fn rpc(addr: std::net::SocketAddr, method: &str, params: Value) -> Value {
    rpc_as(addr, method, params, "").await
}

/// Like [`rpc`], with `auth` (an `Authorization` header line, or nothing).
async fn rpc_as(addr: std::net::SocketAddr, method: &str, params: Value, auth: &str) -> Value {
    let mut params = params.to_string();
    params.pop();
    let sep = if params.len() > 1 { "," } else { "" };
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{params}{sep}{META}}}}}"#);
    // `Mcp-Name` carries the tool, or the task.
    let v: Value = serde_json::from_str(&body).expect("request JSON");
    let name = v["params"]["name"]
        .as_str()
        .or(v["params"]["taskId"].as_str());
    support::post_modern_with(addr, method, name, &body, auth).await
}

/// Calls `tool` on `addr`; the id of the task it became.
async fn start_task(addr: std::net::SocketAddr, tool: &str, arguments: Value) -> String {
    let created = rpc(
        addr,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
    .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    created["result"]["taskId"]
        .as_str()
        .expect("taskId")
        .to_owned()
}

async fn task_get(addr: std::net::SocketAddr, id: &str) -> Value {
    let got = rpc(addr, "tasks/get", json!({"taskId": id})).await;
    got.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("tasks/get failed: {got}"))
}

/// Polls `addr` until the task's status is one of `wanted` (within `within`).
async fn wait_status(
    addr: std::net::SocketAddr,
    id: &str,
    wanted: &[&str],
    within: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let task = task_get(addr, id).await;
        if wanted.iter().any(|w| task["status"] == *w) {
            return task;
        }
        assert!(
            started.elapsed() < within,
            "task {id} still {} after {within:?}: {task}",
            task["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_read_answered_and_cancelled_through_another_replica() {
    let redis = Redis::start();
    let (a, b) = (replica(&redis, "t1:").await, replica(&redis, "t1:").await);
    let stranger = replica(&redis, "other:").await;

    // Created on A; B sees it wait for input, answers it, and reads the result.
    let id = start_task(a, "ask", json!({})).await;
    let waiting = wait_status(b, &id, &["input_required"], Duration::from_secs(5)).await;
    assert!(waiting["inputRequests"].get("word").is_some(), "{waiting}");
    let updated = rpc(
        b,
        "tasks/update",
        json!({"taskId": id, "inputResponses": {"word": {"action": "accept", "content": {"word": "kite"}}}}),
    )
    .await;
    assert_eq!(updated["result"]["resultType"], "complete", "{updated}");
    let done = wait_status(b, &id, &["completed"], Duration::from_secs(5)).await;
    assert_eq!(
        done["result"]["content"][0]["text"], "you said kite",
        "{done}"
    );
    assert_eq!(task_get(a, &id).await["status"], "completed");

    // Cancelled through B: the answer comes once the owner cancelled it, so
    // a read anywhere right after sees it.
    let id = start_task(a, "forever", json!({})).await;
    assert_eq!(task_get(b, &id).await["status"], "working");
    let cancelled = rpc(b, "tasks/cancel", json!({"taskId": id})).await;
    assert_eq!(cancelled["result"]["resultType"], "complete", "{cancelled}");
    assert_eq!(task_get(b, &id).await["status"], "cancelled");
    assert_eq!(task_get(a, &id).await["status"], "cancelled");

    // Another deployment's prefix does not see it; an unknown id is refused.
    let unknown = rpc(stranger, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let unknown = rpc(b, "tasks/cancel", json!({"taskId": "0123"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
}

/// A statement on the demo warehouse that runs for a few seconds.
const SLOW_SQL: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) SELECT count(*) AS n FROM c";

fn daemon_with_tasks(redis: &Redis, prefix: &str) -> Daemon {
    Daemon::start(
        &["--port", "0", "--query-task-after", "100ms"],
        &[
            ("MCP_TASKS_REDIS", &redis.url()),
            ("MCP_TASKS_PREFIX", prefix),
            ("HOME", "/nonexistent"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_daemon_finishes_its_task_and_a_killed_ones_task_fails() {
    let redis = Redis::start();
    let reader = replica(&redis, "t2:").await;

    // Drained: SIGTERM while the task runs; the daemon waits for it, and
    // its result is read through another replica after the daemon exited.
    let mut drained = daemon_with_tasks(&redis, "t2:");
    let id = start_task(drained.addr, "execute_query", json!({"query": SLOW_SQL})).await;
    drained.signal("TERM");
    let (status, _, stderr) = drained.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("waiting for running tasks"), "{stderr}");
    let done = task_get(reader, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let rows = &done["result"]["structuredContent"]["rows"];
    assert_eq!(rows[0][0], 6_000_000, "{done}");

    // Killed: the task is reported failed once the daemon's heartbeat lapses.
    let mut killed = daemon_with_tasks(&redis, "t2:");
    let id = start_task(killed.addr, "execute_query", json!({"query": SLOW_SQL})).await;
    assert_eq!(task_get(reader, &id).await["status"], "working");
    killed.signal("KILL");
    let _ = killed.wait_exit(Duration::from_secs(10));
    let failed = wait_status(reader, &id, &["failed"], Duration::from_secs(15)).await;
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stopped before it finished")),
        "{failed}"
    );
}

/// A task answers only the principal whose call created it, on every
/// replica: to another key its id is unknown, read or cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_answers_only_its_principal_on_every_replica() {
    let redis = Redis::start();
    let keys = "key-of-ada-0123456789,key-of-bob-0123456789";
    let start = || {
        Daemon::start(
            &["--port", "0", "--query-task-after", "100ms"],
            &[
                ("MCP_TASKS_REDIS", &redis.url()),
                ("MCP_TASKS_PREFIX", "t3:"),
                ("MCP_API_KEYS", keys),
                ("HOME", "/nonexistent"),
            ],
        )
    };
    let (one, two) = (start(), start());
    let ada = "Authorization: Bearer key-of-ada-0123456789\r\n";
    let bob = "Authorization: Bearer key-of-bob-0123456789\r\n";
    let call = json!({"name": "execute_query", "arguments": {"query": SLOW_SQL}});
    let created = rpc_as(one.addr, "tools/call", call, ada).await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let id = created["result"]["taskId"].as_str().expect("taskId");
    for method in ["tasks/get", "tasks/cancel"] {
        for replica in [one.addr, two.addr] {
            let other = rpc_as(replica, method, json!({"taskId": id}), bob).await;
            assert_eq!(other["error"]["code"], -32602, "{method}: {other}");
        }
    }
    let mine = rpc_as(two.addr, "tasks/get", json!({"taskId": id}), ada).await;
    assert_eq!(mine["result"]["status"], "working", "{mine}");
    let cancelled = rpc_as(two.addr, "tasks/cancel", json!({"taskId": id}), ada).await;
    assert_eq!(cancelled["result"]["resultType"], "complete", "{cancelled}");
    let mine = rpc_as(one.addr, "tasks/get", json!({"taskId": id}), ada).await;
    assert_eq!(mine["result"]["status"], "cancelled", "{mine}");
}

/// A task a replica drops to keep its results within their bound (the
/// oldest first) is gone on every replica, not served from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_dropped_for_room_is_gone_on_every_replica() {
    let redis = Redis::start();
    let (one, two) = (
        daemon_with_tasks(&redis, "t4:"),
        daemon_with_tasks(&redis, "t4:"),
    );
    // About 1.9 MB of result each: 40 are past the 64 MiB one replica keeps.
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
               SELECT count(*) AS n, zeroblob(700000) AS b FROM c";
    let mut ids = Vec::new();
    for _ in 0..40 {
        let id = start_task(one.addr, "execute_query", json!({"query": sql})).await;
        let done = wait_status(two.addr, &id, &["completed"], Duration::from_secs(60)).await;
        assert_eq!(done["result"]["structuredContent"]["rows"][0][0], 1_000_000);
        ids.push(id);
    }
    for replica in [one.addr, two.addr] {
        let first = rpc(replica, "tasks/get", json!({"taskId": ids[0]})).await;
        let shown: String = first.to_string().chars().take(300).collect();
        assert_eq!(first["error"]["code"], -32602, "the oldest went: {shown}");
        assert_eq!(task_get(replica, &ids[39]).await["status"], "completed");
    }
}

/// Task states wait for a slow Redis within a bound in bytes: with its
/// writes paused, 150 tasks of about 2 MB results each keep the owner
/// under 256 MiB (each state carries its result; they all waited in
/// memory before). Once Redis answers again, what it missed is written:
/// every task the owner still holds reads `completed` on another replica,
/// and every task it dropped is gone there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_states_waiting_for_a_slow_redis_are_bounded_and_written_later() {
    let redis = Redis::start();
    let owner = Daemon::start(
        &[
            "--port",
            "0",
            "--query-task-after",
            "0ms",
            "--max-queued-requests",
            "256",
            "--max-queued-per-client",
            "256",
        ],
        &[
            ("MCP_TASKS_REDIS", &redis.url()),
            ("MCP_TASKS_PREFIX", "t5:"),
            ("HOME", "/nonexistent"),
        ],
    );
    let reader = replica(&redis, "t5:").await;
    let before = owner.peak_rss_kib();
    // Writes (SET, DEL, the heartbeats) wait; the pause is lifted below.
    redis.cli(&["CLIENT", "PAUSE", "120000", "WRITE"]);
    let sql = "SELECT 1 AS n, zeroblob(900000) AS b";
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let addr = owner.addr;
        calls.spawn(async move { start_task(addr, "execute_query", json!({"query": sql})).await });
    }
    // In the order the calls were answered, about the order they started:
    // once the last few are done, so are the others.
    let ids = calls.join_all().await;
    // (A task dropped for room meanwhile is looked up in the paused Redis:
    // an error, and done too.)
    let started = Instant::now();
    for id in &ids[ids.len() - 8..] {
        loop {
            let got = rpc(owner.addr, "tasks/get", json!({"taskId": id})).await;
            if got["result"]["status"] == "completed" || got.get("error").is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{got}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = owner.peak_rss_kib();
    eprintln!(
        "150 tasks of 2 MB results, Redis paused: peak RSS {} MiB (idle {} MiB)",
        peak / 1024,
        before / 1024
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    redis.cli(&["CLIENT", "UNPAUSE"]);
    // What Redis missed is written: both replicas agree on every task,
    // kept and completed or dropped and unknown.
    let view = |got: Value| match (
        got["result"]["status"].as_str(),
        got["error"]["code"].as_i64(),
    ) {
        (Some(status), _) => status.to_owned(),
        (None, Some(-32602)) => "unknown".to_owned(),
        _ => panic!("tasks/get: {got}"),
    };
    let started = Instant::now();
    let mut kept = 0;
    for id in &ids {
        loop {
            let mine = view(rpc(owner.addr, "tasks/get", json!({"taskId": id})).await);
            let theirs = view(rpc(reader, "tasks/get", json!({"taskId": id})).await);
            if mine == theirs && (mine == "completed" || mine == "unknown") {
                kept += usize::from(mine == "completed");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "task {id}: the owner says {mine}, another replica {theirs}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(kept > 10 && kept < ids.len(), "{kept} kept");
}

#[test]
fn the_redis_password_is_never_shown() {
    let redis = Redis::start();
    // Refused by this Redis (it has no password), and a port nobody serves.
    for url in [
        format!("{}?pass=s3cr3t-pw", redis.url()),
        "redis://:s3cr3t-pw@127.0.0.1:1/0".to_owned(),
    ] {
        let out = Command::new(support::daemon::server_binary())
            .args(["--port", "0"])
            .env("MCP_TASKS_REDIS", &url)
            .env("HOME", "/nonexistent")
            .output()
            .expect("run the daemon");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("tasks_redis"), "{stderr}");
        assert!(!stderr.contains("s3cr3t"), "the password in: {stderr}");
    }
}
