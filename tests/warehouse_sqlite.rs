#![cfg(feature = "sqlite")]
//! The SQLite warehouse and the tools on it, through an MCP session:
//! every tool, data types, refusals, truncation, cancellation, read-only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
mod support;

use snowflake_mcp::mcp::Session;
use snowflake_mcp::pool::PoolConfig;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::warehouse::sqlite::{Source, SqliteConfig, SqliteWarehouse};
use snowflake_mcp::warehouse::{ErrorKind, QueryOptions, Warehouse};
use support::warehouse::{call, tool_session};

/// A database file with awkward names and values, in a fresh temp dir.
fn fixture_file() -> (tempdir::Dir, std::path::PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.path().join("shop.db");
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(
        r#"
        CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY, "select" TEXT);
        INSERT INTO "we""ird" VALUES (1, 'quoted names work');
        CREATE TABLE t (
            id INTEGER PRIMARY KEY,
            big INTEGER,
            price DECIMAL(12,2),
            rate NUMBER(8,4),
            ratio DOUBLE,
            day DATE,
            at TIMESTAMP_TZ,
            label TEXT,
            raw BLOB
        );
        INSERT INTO t VALUES (1, 9007199254740993, 19.99, 0.1, 0.5, '2026-01-31',
                              '2026-01-31T23:59:59+05:30', 'naïve “text”', x'00ff10');
        INSERT INTO t VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        CREATE VIEW v AS SELECT id, label FROM t;
        "#,
    )
    .expect("fill");
    (dir, path)
}

/// Temp directories removed on drop (no extra dependency).
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("random");
            let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("snowflake-mcp-test-{name}"));
            std::fs::create_dir_all(&path).expect("mkdir");
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn file_warehouse(path: &std::path::Path) -> Arc<SqliteWarehouse> {
    SqliteWarehouse::open(SqliteConfig {
        source: Source::File(path.to_owned()),
        database: "SHOP".into(),
        allow_writes: false,
        pool: PoolConfig {
            max_size: 2,
            ..PoolConfig::default()
        },
        ..SqliteConfig::default()
    })
    .await
    .expect("open")
}

fn session_over(warehouse: Arc<dyn Warehouse>, config: ToolsConfig) -> Arc<Session> {
    tool_session(warehouse, config, RequestsConfig::default())
}

fn session_with(
    warehouse: Arc<dyn Warehouse>,
    config: ToolsConfig,
    requests: RequestsConfig,
) -> Arc<Session> {
    tool_session(warehouse, config, requests)
}

#[tokio::test]
async fn every_tool_on_the_demo() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let s = session_over(warehouse, ToolsConfig::default());

    let (err, text, v) = call(&s, "list_databases", json!({})).await;
    assert!(!err);
    assert_eq!(v["databases"], json!(["DEMO"]));
    assert_eq!(text, "DEMO");
    let (_, _, v) = call(&s, "list_schemas", json!({"database": "DEMO"})).await;
    assert_eq!(v["schemas"], json!(["MAIN"]));
    let (_, text, v) = call(
        &s,
        "list_tables",
        json!({"database": "DEMO", "schema": "MAIN"}),
    )
    .await;
    let names: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["customers", "order_items", "orders", "products"],
        "{text}"
    );
    let (_, _, v) = call(&s, "list_views", json!({"database": "DEMO"})).await;
    assert_eq!(v["views"][0]["name"], "order_totals");
    assert_eq!(v["views"][0]["kind"], "VIEW");

    let (err, text, v) = call(
        &s,
        "describe_table",
        json!({"database": "DEMO", "schema": "MAIN", "table": "orders"}),
    )
    .await;
    assert!(!err, "{text}");
    let cols: Vec<(&str, &str, bool)> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["nullable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(cols[0], ("order_id", "INTEGER", false));
    assert!(cols.contains(&("shipped_at", "TIMESTAMP_NTZ", true)));
    assert!(
        v["ddl"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE orders")
    );
    let (err, _, v) = call(
        &s,
        "describe_view",
        json!({"database": "DEMO", "view_name": "order_totals"}),
    )
    .await;
    assert!(!err);
    assert_eq!(v["kind"], "VIEW");

    let (err, text, v) = call(
        &s,
        "query_view",
        json!({"database": "DEMO", "view_name": "order_totals", "limit": 5}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(v["rowCount"], 5);
    assert_eq!(v["truncated"], true);
    assert!(v["notice"].as_str().unwrap().contains("larger limit"));
    assert!(text.contains("| order_id | customer |"), "{text}");

    let (err, _, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT COUNT(*) AS n FROM orders"}),
    )
    .await;
    assert!(!err);
    assert_eq!(v["rows"], json!([[200]]));
    assert_eq!(v["truncated"], false);

    // Missing things are clear errors, not panics.
    let (err, text, _) = call(
        &s,
        "describe_table",
        json!({"database": "DEMO", "schema": "MAIN", "table": "nope"}),
    )
    .await;
    assert!(err && text.contains("does not exist"), "{text}");
    let (err, text, _) = call(&s, "list_schemas", json!({"database": "OTHER"})).await;
    assert!(err && text.contains("\"OTHER\" does not exist"), "{text}");
    let (err, text, _) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT * FROM missing_table"}),
    )
    .await;
    assert!(
        err && text.contains("SQLITE_ERROR") && text.contains("no such table"),
        "{text}"
    );
    let (err, text, _) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT 1", "limit": 10001}),
    )
    .await;
    assert!(err && text.contains("limit"), "{text}");
}

#[tokio::test]
async fn refused_statements_never_run() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let s = session_over(warehouse, ToolsConfig::default());
    for sql in [
        "DELETE FROM orders",
        "DROP TABLE orders",
        "UPDATE orders SET status = 'x'",
        "SELECT 1; DELETE FROM orders",
        "SELECT 1 -- sneaky",
        "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
        "not sql at all",
    ] {
        let (err, text, _) = call(&s, "execute_query", json!({"query": sql})).await;
        assert!(err, "{sql}");
        assert!(text.starts_with("Refused: "), "{sql}: {text}");
    }
    let (_, _, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT COUNT(*) FROM orders"}),
    )
    .await;
    assert_eq!(v["rows"], json!([[200]]), "nothing was deleted");
}

#[tokio::test]
async fn data_types_come_back_exact() {
    let (_dir, path) = fixture_file();
    let warehouse = file_warehouse(&path).await;
    let s = session_over(warehouse, ToolsConfig::default());
    let (err, text, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT * FROM t ORDER BY id", "database": "SHOP", "schema": "MAIN"}),
    )
    .await;
    assert!(!err, "{text}");
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "INTEGER",
            "INTEGER",
            "DECIMAL(12,2)",
            "NUMBER(8,4)",
            "DOUBLE",
            "DATE",
            "TIMESTAMP_TZ",
            "TEXT",
            "BLOB"
        ]
    );
    assert_eq!(
        v["rows"][0],
        json!([
            1,
            "9007199254740993",
            "19.99",
            "0.1000",
            0.5,
            "2026-01-31",
            "2026-01-31T23:59:59+05:30",
            "naïve “text”",
            "AP8Q"
        ])
    );
    assert_eq!(
        v["rows"][1],
        json!([2, null, null, null, null, null, null, null, null])
    );
    assert!(text.contains("| 2 | NULL |"), "{text}");

    // Quoted identifiers: a table whose name holds a double quote.
    let (err, text, v) = call(
        &s,
        "query_view",
        json!({"database": "SHOP", "schema": "MAIN", "view_name": "we\"ird"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(v["rows"], json!([[1, "quoted names work"]]));
    // A name that tries to break out of its quotes is just a missing table.
    let (err, text, _) = call(
        &s,
        "query_view",
        json!({"database": "SHOP", "view_name": "t\" ; DROP TABLE t; --"}),
    )
    .await;
    assert!(err && text.contains("no such table"), "{text}");
    let (_, _, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT COUNT(*) FROM t"}),
    )
    .await;
    assert_eq!(v["rows"], json!([[2]]));
    // Resources: each table's description.
    let read = json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "snowflake://SHOP/MAIN/t"}});
    let answer: Value =
        serde_json::from_slice(&s.handle(read.to_string().as_bytes()).await.unwrap()).unwrap();
    let described: Value =
        serde_json::from_str(answer["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(described["columns"][2]["type"], "DECIMAL(12,2)");
    let missing = json!({"jsonrpc": "2.0", "id": 10, "method": "resources/read", "params": {"uri": "snowflake://SHOP/MAIN/none"}});
    let answer: Value =
        serde_json::from_slice(&s.handle(missing.to_string().as_bytes()).await.unwrap()).unwrap();
    assert_eq!(answer["error"]["code"], -32002);
}

#[tokio::test]
async fn results_are_cut_by_bytes_with_a_notice() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let config = ToolsConfig {
        max_result_bytes: 2_000,
        ..ToolsConfig::default()
    };
    let s = session_over(warehouse, config);
    let (err, _, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT * FROM customers", "limit": 1000}),
    )
    .await;
    assert!(!err);
    let n = v["rowCount"].as_u64().unwrap();
    assert!(n > 0 && n < 24, "{n}");
    assert_eq!(v["truncated"], true);
    let notice = v["notice"].as_str().unwrap();
    assert!(
        notice.contains("2000 bytes") && notice.contains(&format!("OFFSET {n}")),
        "{notice}"
    );
}

#[tokio::test]
async fn a_read_only_warehouse_cannot_write_even_past_the_guard() {
    let (_dir, path) = fixture_file();
    let warehouse = file_warehouse(&path).await;
    let options = small_query();
    let e = warehouse
        .query("DELETE FROM t", &options)
        .await
        .expect_err("read-only");
    assert_eq!(e.kind, ErrorKind::Statement);
    assert!(
        e.to_string().contains("readonly")
            || e.to_string().contains("read-only")
            || e.to_string().contains("READONLY"),
        "{e}"
    );
}

#[tokio::test]
async fn dropping_a_query_interrupts_it_and_retires_its_connection() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let options = small_query();
    // Counts to a billion: minutes of work unless interrupted.
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) FROM c";
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_millis(200), warehouse.query(slow, &options)).await;
    assert!(r.is_err(), "the query should still be running");
    // The pool sees the connection retired, and the next query works at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while warehouse.pool_stats().active > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = warehouse.pool_stats();
    assert_eq!(stats.broken, 1, "{stats:?}");
    let v = warehouse
        .query("SELECT 7", &options)
        .await
        .expect("works after");
    assert_eq!(v.rows, vec![vec![json!(7)]]);
    assert!(started.elapsed() < Duration::from_secs(5));
    warehouse.ping().await.expect("ping");
}

#[tokio::test]
async fn a_missing_file_is_an_error_at_start() {
    let e = SqliteWarehouse::open(SqliteConfig {
        source: Source::File("/nonexistent/nowhere.db".into()),
        ..SqliteConfig::default()
    })
    .await
    .expect_err("missing");
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_stopped_and_interrupted() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let requests = RequestsConfig {
        timeout: Duration::from_millis(300),
        ..RequestsConfig::default()
    };
    let s = session_with(
        Arc::clone(&warehouse) as Arc<dyn Warehouse>,
        ToolsConfig::default(),
        requests,
    );
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) FROM c";
    let started = Instant::now();
    let (err, text, _) = call(&s, "execute_query", json!({"query": slow})).await;
    assert!(err && text.contains("took longer than 0.3s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The statement was interrupted and its connection retired; the next call works.
    let deadline = Instant::now() + Duration::from_secs(5);
    while warehouse.pool_stats().active > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(warehouse.pool_stats().broken, 1);
    let (err, _, v) = call(&s, "execute_query", json!({"query": "SELECT 1"})).await;
    assert!(!err);
    assert_eq!(v["rows"], json!([[1]]));
}

#[tokio::test]
async fn an_mcp_cancel_stops_the_statement() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let s = session_over(
        Arc::clone(&warehouse) as Arc<dyn Warehouse>,
        ToolsConfig::default(),
    );
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) FROM c";
    let req = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
                     "params": {"name": "execute_query", "arguments": {"query": slow}}});
    let running = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.handle(req.to_string().as_bytes()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(warehouse.pool_stats().active, 1, "the statement is running");
    let cancel =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}});
    assert!(s.handle(cancel.to_string().as_bytes()).await.is_none());
    let answer = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the call ended")
        .expect("join");
    assert!(answer.is_none(), "a cancelled call is not answered");
    let deadline = Instant::now() + Duration::from_secs(5);
    while warehouse.pool_stats().active > 0 {
        assert!(Instant::now() < deadline, "statement still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(warehouse.pool_stats().broken, 1);
}

/// A query dropped after its blocking task was queued but before SQLite
/// started it (when `sqlite3_interrupt` is a no-op) must not run anyway: it
/// would count forever on a retired connection, holding a blocking thread
/// (and the runtime's shutdown, which waits for it).
#[test]
fn a_query_dropped_before_its_thread_starts_never_runs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let warehouse = SqliteWarehouse::open(SqliteConfig::default())
            .await
            .expect("demo");
        let options = small_query();
        // A pooled connection is idle, so the next query needs no blocking thread to get one.
        warehouse.query("SELECT 1", &options).await.expect("warm");
        // The only blocking thread is busy: the query's task waits in the queue.
        let busy = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)));
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) SELECT COUNT(*) FROM c";
        let r = tokio::time::timeout(Duration::from_millis(50), warehouse.query(endless, &options)).await;
        assert!(r.is_err(), "still queued when dropped");
        busy.await.expect("busy");
        // Let the queued task run (and stop at once).
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        let _ = done_tx.send(());
    });
    done.recv_timeout(Duration::from_secs(10))
        .expect("the runtime waited on a statement that should never have run");
}

/// Options for direct warehouse queries: no context, 10 rows, 10 000 bytes.
fn small_query() -> QueryOptions {
    QueryOptions {
        database: None,
        schema: None,
        max_rows: 10,
        max_bytes: 10_000,
        ..QueryOptions::default()
    }
}
