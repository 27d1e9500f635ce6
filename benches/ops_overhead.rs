//! What watching the server costs: a load run of MCP tool calls (16
//! keep-alive connections, each calling `execute_query` on the SQLite demo
//! warehouse back to back) with and without a scraper fetching `/metrics`
//! and a prober fetching `/health`, 100 times a second each. Runs alternate
//! (plain, scraped, scraped, plain, ...) so drift hits both alike; the
//! report is each pair's throughput ratio and their median.
//!
//! Alone, each probe's round trip is also timed (1000 in a row, no load):
//! an upper bound on the server time 200 probes a second take.
//!
//! `cargo bench --bench ops_overhead` (10 pairs of 2 s runs); under
//! `cargo test --benches` one short pair, as a check that it works.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::sqlite::{SqliteConfig, SqliteWarehouse};
use support::Client;

const CONNECTIONS: usize = 16;
const VERSION: &str = "2025-11-25";

/// The daemon's stack: `/mcp` with the warehouse tools, and the ops routes.
async fn serve() -> SocketAddr {
    let warehouse: Arc<dyn Warehouse> = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo warehouse");
    support::stack::serve(warehouse, Duration::from_secs(5), RequestsConfig::default()).await
}

fn post(addr: SocketAddr, session: Option<&str>, body: &str) -> Vec<u8> {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: {VERSION}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn open_session(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}});
    c.send(&post(addr, None, &init.to_string())).await;
    let r = c.read_response_to("POST").await;
    let session = r.header("mcp-session-id").expect("session").to_owned();
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    c.send(&post(addr, Some(&session), &done.to_string())).await;
    c.read_response_to("POST").await;
    session
}

/// Calls answered by all connections in `length`.
async fn load(addr: SocketAddr, session: &str, length: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute_query", "arguments": {"query": "SELECT name, price FROM products ORDER BY id LIMIT 5"}}})
        .to_string();
    let request = Arc::new(post(addr, Some(session), &call));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (done, stop, request) = (Arc::clone(&done), Arc::clone(&stop), Arc::clone(&request));
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            while !stop.load(Ordering::Relaxed) {
                c.send(&request).await;
                let r = c.read_response_to("POST").await;
                assert_eq!(r.status, 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let answered = done.load(Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    answered
}

/// Fetches `path` 100 times a second on one keep-alive connection until `stop`.
async fn poll(addr: SocketAddr, path: &'static str, stop: Arc<AtomicBool>) -> u64 {
    let mut c = Client::connect(addr).await;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        c.send(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status, 200, "{path}");
        n += 1;
    }
    n
}

async fn scraped(addr: SocketAddr, session: &str, length: Duration) -> (u64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = tokio::spawn(poll(addr, "/metrics", Arc::clone(&stop)));
    let health = tokio::spawn(poll(addr, "/health", Arc::clone(&stop)));
    let calls = load(addr, session, length).await;
    stop.store(true, Ordering::Relaxed);
    let metrics = metrics.await.expect("scraper");
    let health = health.await.expect("prober");
    (calls, metrics, health)
}

/// Keeps the calling thread on `core` (Linux; elsewhere nothing happens).
fn pin(core: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it; sched_setaffinity reads `size_of` bytes of it for this thread (0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = core;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (pairs, length) = if full {
        (10, Duration::from_secs(2))
    } else {
        (1, Duration::from_millis(300))
    };
    // As REFERENCE.md advises on this noisy machine: the server (its worker
    // and the blocking threads SQLite runs on) pinned to one core, the load
    // to the other, each on its own runtime.
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || {
            if pinned {
                pin(0);
            }
        })
        .enable_all()
        .build()
        .expect("server runtime");
    let addr = server_rt.block_on(serve());
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || {
            if pinned {
                pin(1);
            }
        })
        .enable_all()
        .build()
        .expect("client runtime");
    if pinned {
        // `block_on` drives the load from this thread.
        pin(1);
    }
    println!(
        "ops_overhead: {}",
        if pinned {
            "server on core 0, load on core 1"
        } else {
            "one core: not pinned"
        }
    );
    client_rt.block_on(async {
        let session = open_session(addr).await;
        // Warm-up: connections, the warehouse pool, caches.
        load(addr, &session, length / 2).await;
        let mut ratios = Vec::new();
        let mut totals = (0u64, 0u64);
        for pair in 0..pairs {
            let (plain, (with, metrics, health)) = if pair % 2 == 0 {
                let p = load(addr, &session, length).await;
                (p, scraped(addr, &session, length).await)
            } else {
                let s = scraped(addr, &session, length).await;
                (load(addr, &session, length).await, s)
            };
            let ratio = with as f64 / plain as f64;
            let secs = length.as_secs_f64();
            println!(
                "pair {pair}: plain {:.0} calls/s, scraped {:.0} calls/s ({:.0} /metrics/s, {:.0} /health/s): ratio {ratio:.4}",
                plain as f64 / secs,
                with as f64 / secs,
                metrics as f64 / secs,
                health as f64 / secs,
            );
            assert!(plain > 0 && with > 0, "no calls answered");
            totals.0 += plain;
            totals.1 += with;
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let (plain_sum, scraped_sum) = totals;
        println!(
            "ops_overhead: median throughput ratio scraped/plain {median:.4} ({:+.2}%), all runs {:.4}, pairs from {:.4} to {:.4}",
            (median - 1.0) * 100.0,
            scraped_sum as f64 / plain_sum as f64,
            ratios[0],
            ratios[ratios.len() - 1],
        );
        let probes = if full { 1000 } else { 20 };
        let mut per_probe = Vec::new();
        for path in ["/metrics", "/health"] {
            let mut c = Client::connect(addr).await;
            let started = Instant::now();
            for _ in 0..probes {
                c.send(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .await;
                assert_eq!(c.read_response().await.status, 200);
            }
            let each = started.elapsed() / probes;
            per_probe.push(each);
            println!("ops_overhead: {path} round trip {:.1} us", each.as_secs_f64() * 1e6);
        }
        let busy: Duration = per_probe.iter().map(|d| *d * 100).sum();
        println!(
            "ops_overhead: 100/s of each is at most {:.2} ms of server time per second ({:.2}% of one core)",
            busy.as_secs_f64() * 1e3,
            busy.as_secs_f64() * 100.0
        );
    });
}
