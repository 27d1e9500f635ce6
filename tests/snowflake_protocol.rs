#![cfg(feature = "snowflake")]
//! Snowflake's protocol as Snowflake really speaks it, against the shim
//! over fakesnow (`tests/fakesnow/serve.py`): results in chunks, statements
//! that outlast the synchronous window, aborts, token renewal, token
//! logins, one request per query, `QUERY_TAG`. The shim's fidelity is
//! checked by the official Python connector against the same shim.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use snowflake_mcp::pool::PoolConfig;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::warehouse::snowflake::{
    Secret, SnowflakeAuth, SnowflakeConfig, SnowflakeWarehouse, TokenKind, TokenSource,
};
use snowflake_mcp::warehouse::{
    ErrorKind, Progress, QueryOptions, QueryOrigin, Truncation, Warehouse,
};
use support::warehouse::{FakeSnow, call, tool_session};

/// Bytes allocated and not yet freed, and the most of them since
/// [`peak_from_now`]: what a test reads to bound a query's memory.
struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Peak {
    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the counters are added.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Peak::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Peak::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                Peak::grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Starts a new peak; returns the bytes live now.
fn peak_from_now() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn rows(max_rows: usize) -> QueryOptions {
    QueryOptions {
        max_rows,
        max_bytes: 64 << 20,
        ..QueryOptions::default()
    }
}

async fn numbers(w: &SnowflakeWarehouse, n: usize) {
    let sql = format!(
        "CREATE OR REPLACE TABLE nums AS SELECT SEQ4() AS n, 'row ' || SEQ4() AS label \
         FROM TABLE(GENERATOR(ROWCOUNT => {n}))"
    );
    w.query(&sql, &rows(10)).await.expect("create nums");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_results_come_back_in_order_and_only_needed_chunks_are_fetched() {
    // 1,000 rows inline, then chunks of 3,000.
    let fake = FakeSnow::start_with(0, &["--inline-rows", "1000", "--chunk-rows", "3000"]);
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    numbers(&w, 10_000).await;
    let sql = "SELECT n, label FROM nums ORDER BY n";

    let before = fake.count("chunk");
    let all = w.query(sql, &rows(10_000)).await.expect("all rows");
    assert_eq!(all.rows.len(), 10_000);
    for (i, row) in all.rows.iter().enumerate() {
        assert_eq!(row, &vec![json!(i), json!(format!("row {i}"))], "row {i}");
    }
    assert!(!all.truncated, "every row was read");
    assert_eq!(
        fake.count("chunk") - before,
        3,
        "three chunks after the inline part"
    );

    // 100 rows: the inline part is enough; nothing is downloaded.
    let before = fake.count("chunk");
    let few = w.query(sql, &rows(100)).await.expect("few rows");
    assert_eq!(few.rows.len(), 100);
    assert_eq!(few.rows[99][0], json!(99));
    assert_eq!(few.truncated_by, Some(Truncation::Rows(100)));
    assert_eq!(fake.count("chunk"), before, "no chunk for 100 rows");

    // Exactly the inline part: still nothing downloaded, still "more rows".
    let before = fake.count("chunk");
    let inline = w.query(sql, &rows(1000)).await.expect("inline rows");
    assert_eq!(inline.rows.len(), 1000);
    assert!(inline.truncated);
    assert_eq!(fake.count("chunk"), before);

    // 2,500 rows: the first chunk only, in order across the seam.
    let before = fake.count("chunk");
    let some = w.query(sql, &rows(2500)).await.expect("some rows");
    assert_eq!(some.rows.len(), 2500);
    assert_eq!(some.rows[999][0], json!(999));
    assert_eq!(some.rows[1000][0], json!(1000));
    assert_eq!(some.rows[2499][0], json!(2499));
    assert_eq!(fake.count("chunk") - before, 1, "one chunk for 2,500 rows");

    // The byte cap stops downloads too.
    let before = fake.count("chunk");
    let capped = w
        .query(
            sql,
            &QueryOptions {
                max_rows: 10_000,
                max_bytes: 30_000,
                ..QueryOptions::default()
            },
        )
        .await
        .expect("capped");
    assert!(matches!(capped.truncated_by, Some(Truncation::Bytes(_))));
    assert!(capped.rows.len() < 2000, "{}", capped.rows.len());
    assert!(fake.count("chunk") - before <= 1);
    assert_eq!(fake.count("chunk-refused"), 0, "chunk headers were sent");
}

/// A chunk is read as it arrives, one record batch at a time, and left
/// once the caps are reached: 2,000 rows of a result whose one chunk holds
/// 200,000 rows of 500 bytes (about 100 MB; gzipped, much less on the
/// wire) take a few MiB (3.4 MiB), not the chunk. Before, the chunk was
/// read whole, then decoded whole: 131 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_chunk_is_read_as_it_arrives_and_left_once_the_caps_are_reached() {
    let fake = FakeSnow::start_with(
        0,
        &[
            "--inline-rows",
            "1000",
            "--chunk-rows",
            "200000",
            "--batch-rows",
            "1000",
        ],
    );
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    let create = "CREATE OR REPLACE TABLE wide AS SELECT SEQ4() AS n, REPEAT('x', 500) AS pad \
                  FROM TABLE(GENERATOR(ROWCOUNT => 201000))";
    w.query(create, &rows(10)).await.expect("create wide");
    let sql = "SELECT n, pad FROM wide ORDER BY n";
    let before = fake.count("chunk");
    let live = peak_from_now();
    let some = w.query(sql, &rows(2000)).await.expect("2,000 rows");
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(live);
    eprintln!(
        "2,000 rows of a 100 MB chunk: {} KiB at the peak",
        peak >> 10
    );
    assert_eq!(some.rows.len(), 2000);
    for (i, row) in some.rows.iter().enumerate() {
        assert_eq!(row[0], json!(i), "row {i}");
    }
    assert_eq!(some.rows[1999][1], json!("x".repeat(500)));
    assert_eq!(some.truncated_by, Some(Truncation::Rows(2000)));
    assert_eq!(fake.count("chunk") - before, 1);
    assert!(peak < 32 << 20, "{} MiB at the peak", peak >> 20);
    // Many batches of it are read in order.
    let many = w.query(sql, &rows(50_000)).await.expect("50,000 rows");
    assert_eq!(many.rows.len(), 50_000);
    for (i, row) in many.rows.iter().enumerate() {
        assert_eq!(row[0], json!(i), "row {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_query_is_one_request_with_its_query_id_and_tag() {
    let fake = FakeSnow::start(0);
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    w.query("SELECT 1", &rows(10)).await.expect("settle");
    let before = fake.count("/queries/v1/query-request");
    let options = QueryOptions {
        origin: Some(QueryOrigin {
            tool: "execute_query".into(),
            client: "probe\nclient".into(),
        }),
        ..rows(10)
    };
    for i in 0..5 {
        let r = w
            .query(&format!("SELECT {i} AS i"), &options)
            .await
            .expect("query");
        assert_eq!(r.rows, vec![vec![json!(i)]]);
        assert!(
            r.query_id.as_deref().is_some_and(|q| !q.is_empty()),
            "{r:?}"
        );
    }
    assert_eq!(
        fake.count("/queries/v1/query-request") - before,
        5,
        "one request per query"
    );
    let tags = fake.shim("/__shim/tags");
    let last = tags.as_array().and_then(|t| t.last()).cloned();
    assert_eq!(
        last,
        Some(json!(
            "snowflake-mcp tool=execute_query client=probe client"
        )),
        "{tags}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_statements_are_polled_and_a_cancelled_one_is_aborted() {
    let fake = FakeSnow::start_with(0, &["--sync-window", "0.3"]);
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    // Six windows long: polled until done, progress reported on the way.
    let reports = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&reports);
    let options = QueryOptions {
        progress: Some(Progress::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        })),
        ..rows(10)
    };
    let r = w
        .query("SELECT SYSTEM$WAIT(2)", &options)
        .await
        .expect("waited");
    assert_eq!(r.rows, vec![vec![json!("waited 2 seconds")]]);
    assert!(reports.load(Ordering::Relaxed) >= 3, "{reports:?}");

    // Cancelled (the future dropped) after a second: the abort goes out
    // at once and the session stays in the pool.
    let aborted = fake.count("aborted");
    let cut = tokio::time::timeout(
        Duration::from_secs(1),
        w.query("SELECT SYSTEM$WAIT(30)", &rows(10)),
    )
    .await;
    assert!(cut.is_err(), "still running");
    let dropped = Instant::now();
    while fake.count("aborted") == aborted {
        assert!(
            dropped.elapsed() < Duration::from_secs(1),
            "no abort within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = w.query("SELECT 5 AS five", &rows(10)).await.expect("next");
    assert_eq!(r.rows, vec![vec![json!(5)]]);
    let stats = w.pool_stats();
    assert_eq!(
        (stats.created, stats.broken),
        (1, 0),
        "the session was kept: {stats:?}"
    );
    assert_eq!(fake.count("/session/v1/login-request"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_renew_their_token_instead_of_failing_or_logging_in() {
    // Session tokens last 2 s; the pool checks idle sessions every 250 ms.
    let fake = FakeSnow::start_with(0, &["--session-validity", "2"]);
    let mut config = fake.config(1);
    config.pool = PoolConfig {
        max_size: 1,
        min_idle: 1,
        health_interval: Duration::from_millis(250),
        ..PoolConfig::default()
    };
    let w = SnowflakeWarehouse::open(config).await.expect("login");
    w.query("SELECT 1", &rows(10)).await.expect("first");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = w
        .query("SELECT 2 AS two", &rows(10))
        .await
        .expect("after idling");
    assert_eq!(r.rows, vec![vec![json!(2)]]);
    assert_eq!(fake.count("/session/v1/login-request"), 1, "no new login");
    assert!(fake.count("/session/token-request") >= 2, "renewed");
    assert!(fake.count("/session/heartbeat") >= 1, "heartbeats");
    assert_eq!(fake.count("expired"), 0, "no request met an expired token");
    assert_eq!(w.pool_stats().broken, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_that_times_out_aborts_its_statement_and_keeps_the_session() {
    let fake = FakeSnow::start_with(0, &["--sync-window", "0.3"]);
    let mut config = fake.config(1);
    config.query_tag_prefix = Some("acme-bi".into());
    let w = SnowflakeWarehouse::open(config).await.expect("login");
    // SYSTEM$ functions pass a guard that is not read-only.
    use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
    let tools = ToolsConfig {
        guard: SqlGuard::allowing([StatementKind::Query, StatementKind::Insert]),
        ..ToolsConfig::default()
    };
    let requests = RequestsConfig {
        timeout: Duration::from_secs(1),
        ..RequestsConfig::default()
    };
    let s = tool_session(Arc::clone(&w) as Arc<dyn Warehouse>, tools, requests);
    let started = Instant::now();
    let (err, text, _) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT SYSTEM$WAIT(30)"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(text.contains("took longer than"), "{text}");
    let timed_out = started.elapsed();
    while fake.count("aborted") == 0 {
        assert!(
            started.elapsed() < timed_out + Duration::from_secs(1),
            "no abort within 1 s of the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (err, text, v) = call(&s, "execute_query", json!({"query": "SELECT 3 AS three"})).await;
    assert!(!err, "{text}");
    assert_eq!(v["rows"], json!([[3]]));
    let stats = w.pool_stats();
    assert_eq!((stats.created, stats.broken), (1, 0), "{stats:?}");
    // The configured prefix, the tool and the MCP client's name.
    let tags = fake.shim("/__shim/tags");
    assert_eq!(
        tags.as_array().and_then(|t| t.last()),
        Some(&json!("acme-bi tool=execute_query client=t")),
        "{tags}"
    );
}

fn token_config(fake: &FakeSnow, kind: TokenKind, source: TokenSource) -> SnowflakeConfig {
    SnowflakeConfig {
        auth: SnowflakeAuth::Token { kind, source },
        ..fake.config(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programmatic_access_and_oauth_tokens_log_in() {
    let fake = FakeSnow::start_with(0, &["--pat", "pat-good", "--oauth-token", "oauth-good"]);
    let pat = Secret::new("pat-good");
    let w = SnowflakeWarehouse::open(token_config(&fake, TokenKind::Pat, TokenSource::Value(pat)))
        .await
        .expect("PAT login");
    let r = w.query("SELECT 'pat' AS how", &rows(10)).await.expect("q");
    assert_eq!(r.rows, vec![vec![json!("pat")]]);
    assert_eq!(fake.count("login:PROGRAMMATIC_ACCESS_TOKEN"), 1);

    let dir = std::env::temp_dir().join(format!("snowflake-mcp-oauth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("token");
    std::fs::write(&file, "oauth-good\n").expect("write");
    let w = SnowflakeWarehouse::open(token_config(
        &fake,
        TokenKind::OAuth,
        TokenSource::File(file.clone()),
    ))
    .await
    .expect("OAuth login from a file");
    let r = w
        .query("SELECT 'oauth' AS how", &rows(10))
        .await
        .expect("q");
    assert_eq!(r.rows, vec![vec![json!("oauth")]]);
    assert_eq!(fake.count("login:OAUTH"), 1);

    // Wrong tokens: a clear login failure with Snowflake's code, no token in it.
    for (kind, bad, code) in [
        (TokenKind::Pat, "pat-bad", "394400"),
        (TokenKind::OAuth, "oauth-bad", "390303"),
    ] {
        let e = SnowflakeWarehouse::open(token_config(
            &fake,
            kind,
            TokenSource::Value(Secret::new(bad)),
        ))
        .await
        .expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("login failed"), "{e}");
        assert!(e.to_string().contains(code), "{e}");
        assert!(!e.to_string().contains(bad), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_official_connector_reads_the_shim_the_same_way() {
    let fake = FakeSnow::start_with(
        0,
        &[
            "--inline-rows",
            "1000",
            "--chunk-rows",
            "3000",
            "--sync-window",
            "0.3",
            "--pat",
            "pat-good",
        ],
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(format!("{root}/.venv-fakesnow/bin/python"))
        .arg(format!("{root}/tests/fakesnow/connector_check.py"))
        .arg(fake.port.to_string())
        .output()
        .expect("run the connector check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["rows"], 10_000, "{report}");
    assert_eq!(report["in_order"], true, "{report}");
    assert_eq!(report["waited"], "waited 1 seconds", "{report}");
    assert_eq!(report["pat"], 1, "{report}");
    assert_eq!(
        fake.count("chunk"),
        3,
        "the connector fetched the three chunks"
    );
    assert!(fake.count("/queries/v1/query-request") >= 3);
    assert!(
        fake.shim("/__shim/counts")
            .as_object()
            .is_some_and(|c| c.keys().any(|k| k.ends_with("/result"))),
        "the connector polled the result URL"
    );
}
