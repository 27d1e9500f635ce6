#![cfg(feature = "snowflake")]
//! The Snowflake warehouse against a real Snowflake-protocol server:
//! fakesnow (`tests/fakesnow/serve.py`, installed into `.venv-fakesnow` by
//! `scripts/test.sh`), reached through `SNOWFLAKE_BASE_URL`'s rewriting.
//! Every tool through an MCP session, exact types, refusals, errors with
//! Snowflake's codes, per-call context on a shared session, and an outage
//! with recovery and no leaked session.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use snowflake_mcp::mcp::Session;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::warehouse::snowflake::{SnowflakeAuth, SnowflakeConfig, SnowflakeWarehouse};
use snowflake_mcp::warehouse::{ErrorKind, QueryOptions, Warehouse};
use support::warehouse::{FakeSnow, call, tool_session};

fn all() -> QueryOptions {
    QueryOptions {
        database: None,
        schema: None,
        max_rows: 1000,
        max_bytes: 1 << 20,
        ..QueryOptions::default()
    }
}

async fn setup(w: &SnowflakeWarehouse) {
    for sql in [
        "CREATE TABLE orders (id INT, price NUMBER(10,2), big NUMBER(38,0), ts TIMESTAMP_NTZ, tz TIMESTAMP_TZ, day DATE, doc VARIANT, raw BINARY, ok BOOLEAN, ratio FLOAT, note TEXT)",
        "INSERT INTO orders VALUES (1, 19.99, 9007199254740993, '2026-01-02 03:04:05.123', '2026-01-02 03:04:05+00:00', '2026-01-02', PARSE_JSON('{\"a\":[1,2]}'), TO_BINARY('00ff', 'HEX'), true, 0.5, 'it''s')",
        "INSERT INTO orders (id) VALUES (2)",
        "INSERT INTO orders (id, price) VALUES (3, 0.10), (4, 5), (5, 1234.56)",
        "CREATE VIEW big_orders AS SELECT id, price FROM orders WHERE price > 1",
    ] {
        w.query(sql, &all())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn session_over(warehouse: Arc<dyn Warehouse>) -> Arc<Session> {
    tool_session(warehouse, ToolsConfig::default(), RequestsConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_against_fakesnow() {
    let fake = FakeSnow::start(0);
    let w = SnowflakeWarehouse::open(fake.config(2))
        .await
        .expect("login");
    setup(&w).await;
    let s = session_over(Arc::clone(&w) as Arc<dyn Warehouse>);

    let (err, text, v) = call(&s, "list_databases", json!({})).await;
    assert!(!err, "{text}");
    assert!(
        v["databases"].as_array().unwrap().contains(&json!("DB1")),
        "{v}"
    );
    let (_, _, v) = call(&s, "list_schemas", json!({"database": "DB1"})).await;
    assert!(
        v["schemas"].as_array().unwrap().contains(&json!("S1")),
        "{v}"
    );
    let (_, _, v) = call(
        &s,
        "list_tables",
        json!({"database": "DB1", "schema": "S1"}),
    )
    .await;
    assert_eq!(v["tables"][0]["name"], "ORDERS", "{v}");
    let (_, _, v) = call(&s, "list_views", json!({"database": "DB1", "schema": "S1"})).await;
    assert_eq!(v["views"][0]["name"], "BIG_ORDERS", "{v}");
    let (err, text, v) = call(
        &s,
        "describe_table",
        json!({"database": "DB1", "schema": "S1", "table": "ORDERS"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(
        v["columns"][1],
        json!({"name": "PRICE", "type": "NUMBER(10,2)", "nullable": true})
    );
    let (err, text, v) = call(
        &s,
        "describe_view",
        json!({"database": "DB1", "view_name": "BIG_ORDERS", "schema": "S1"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(v["kind"], "VIEW");

    let (err, text, v) = call(
        &s,
        "query_view",
        json!({"database": "DB1", "schema": "S1", "view_name": "BIG_ORDERS", "limit": 2}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(
        (v["rowCount"].clone(), v["truncated"].clone()),
        (json!(2), json!(true))
    );

    let (err, text, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT * FROM orders ORDER BY id"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(
        v["rows"][0],
        json!([1, "19.99", "9007199254740993", "2026-01-02T03:04:05.123", "2026-01-02T03:04:05+00:00",
               "2026-01-02", {"a": [1, 2]}, "AP8=", true, 0.5, "it's"])
    );
    assert_eq!(
        v["rows"][1],
        json!([
            2, null, null, null, null, null, null, null, null, null, null
        ])
    );
    assert_eq!(v["rows"][2][1], "0.10");
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[..4],
        [
            "NUMBER(38,0)",
            "NUMBER(10,2)",
            "NUMBER(38,0)",
            "TIMESTAMP_NTZ"
        ]
    );
    assert!(text.contains("| ID | PRICE |"), "{text}");

    // Refused before they reach Snowflake; Snowflake's own errors carry its code.
    let (err, text, _) = call(&s, "execute_query", json!({"query": "DELETE FROM orders"})).await;
    assert!(err && text.starts_with("Refused: DELETE"), "{text}");
    // Snowflake's flow operator runs the statement after it: each one is checked.
    let (err, text, _) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT 1 ->> DELETE FROM orders WHERE id = 1"}),
    )
    .await;
    assert!(err && text.starts_with("Refused: DELETE"), "{text}");
    let (err, text, _) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT * FROM missing_table"}),
    )
    .await;
    assert!(err && text.contains("002003"), "{text}");
    let (err, text, _) = call(
        &s,
        "describe_table",
        json!({"database": "DB1", "schema": "S1", "table": "NOPE"}),
    )
    .await;
    assert!(err && text.contains("does not exist"), "{text}");
    let (_, _, v) = call(
        &s,
        "execute_query",
        json!({"query": "SELECT COUNT(*) AS n FROM orders"}),
    )
    .await;
    assert_eq!(v["rows"], json!([[5]]));

    let read = json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "snowflake://DB1/S1/ORDERS"}});
    let answer: Value =
        serde_json::from_slice(&s.handle(read.to_string().as_bytes()).await.unwrap()).unwrap();
    let described: Value =
        serde_json::from_str(answer["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(described["columns"][0]["name"], "ID");
    let stats = w.pool_stats();
    assert_eq!(stats.active, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_do_not_leak_between_calls_on_one_session() {
    let fake = FakeSnow::start(0);
    // One session: every call shares it.
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    for sql in [
        "CREATE TABLE t (who TEXT)",
        "INSERT INTO t VALUES ('db1.s1')",
        "CREATE DATABASE DB2",
        "CREATE SCHEMA DB2.S2",
        "CREATE TABLE DB2.S2.t (who TEXT)",
        "INSERT INTO DB2.S2.t VALUES ('db2.s2')",
    ] {
        w.query(sql, &all())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let s = session_over(Arc::clone(&w) as Arc<dyn Warehouse>);
    let (a, b, c) = tokio::join!(
        call(
            &s,
            "execute_query",
            json!({"query": "SELECT who FROM t", "database": "DB2", "schema": "S2"})
        ),
        call(&s, "execute_query", json!({"query": "SELECT who FROM t"})),
        call(
            &s,
            "execute_query",
            json!({"query": "SELECT who FROM t", "database": "DB1", "schema": "S1"})
        ),
    );
    assert_eq!(a.2["rows"], json!([["db2.s2"]]), "{}", a.1);
    assert_eq!(b.2["rows"], json!([["db1.s1"]]), "{}", b.1);
    assert_eq!(c.2["rows"], json!([["db1.s1"]]), "{}", c.1);
    // And after a call in DB2, a call naming nothing is back in the defaults.
    let _ = call(
        &s,
        "execute_query",
        json!({"query": "SELECT 1", "database": "DB2", "schema": "S2"}),
    )
    .await;
    let (_, _, v) = call(&s, "execute_query", json!({"query": "SELECT who FROM t"})).await;
    assert_eq!(v["rows"], json!([["db1.s1"]]));
    assert_eq!(
        w.pool_stats().created,
        1,
        "one session served every call: {:?}",
        w.pool_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_clearly_then_recovers_without_leaks() {
    let mut fake = FakeSnow::start(0);
    let port = fake.port;
    let w = SnowflakeWarehouse::open(fake.config(2))
        .await
        .expect("login");
    w.query("SELECT 1", &all()).await.expect("up");
    fake.stop();
    let e = w.query("SELECT 1", &all()).await.expect_err("down");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(w.ping().await.is_err());
    // Back on the same port (with none of the old sessions): the next calls
    // log in again and work.
    let _fake = FakeSnow::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match w.query("SELECT 42 AS answer", &all()).await {
            Ok(r) => {
                assert_eq!(r.rows, vec![vec![json!(42)]]);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.ping().await.expect("ping after recovery");
    let stats = w.pool_stats();
    assert_eq!(stats.active, 0, "{stats:?}");
    assert!(stats.total <= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_logs_in_again_and_only_reads_are_retried() {
    let mut fake = FakeSnow::start(0);
    let port = fake.port;
    let w = SnowflakeWarehouse::open(fake.config(1))
        .await
        .expect("login");
    w.query("SELECT 1", &all()).await.expect("up");
    // The server forgets every session (as when Snowflake expires them).
    fake.stop();
    let mut fake = FakeSnow::start(port);
    let r = w
        .query("SELECT 7 AS seven", &all())
        .await
        .expect("relogin and retry");
    assert_eq!(r.rows, vec![vec![json!(7)]]);
    assert_eq!(w.pool_stats().broken, 1, "{:?}", w.pool_stats());
    // A write is never retried: the caller hears the expiry.
    fake.stop();
    let _fake = FakeSnow::start(port);
    let e = w
        .query("CREATE TABLE z (a INT)", &all())
        .await
        .expect_err("not retried");
    assert_eq!(e.code.as_deref(), Some("390104"), "{e}");
    assert_eq!(w.pool_stats().active, 0);
    drop(fake);
}

/// Settings read from a fake environment.
struct Vars(std::collections::HashMap<&'static str, String>);

impl snowflake_mcp::warehouse::snowflake::Source for Vars {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn home(&self) -> Option<std::path::PathBuf> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pair_login_with_an_encrypted_key() {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let plain = dir.join("key.pem");
    let encrypted = dir.join("key.p8");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        plain.to_str().unwrap(),
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        plain.to_str().unwrap(),
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:open sesame",
        "-out",
        encrypted.to_str().unwrap(),
    ]);
    let fake = FakeSnow::start(0);
    let vars = |passphrase: &str| {
        Vars(std::collections::HashMap::from([
            ("SNOWFLAKE_ACCOUNT", "testacct".to_owned()),
            ("SNOWFLAKE_USER", "tester".to_owned()),
            (
                "SNOWFLAKE_PRIVATE_KEY_PATH",
                encrypted.display().to_string(),
            ),
            ("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", passphrase.to_owned()),
            ("SNOWFLAKE_DATABASE", "DB1".to_owned()),
            ("SNOWFLAKE_SCHEMA", "S1".to_owned()),
            ("SNOWFLAKE_BASE_URL", fake.url()),
        ]))
    };
    let wrong = SnowflakeConfig::load(&vars("wrong"), None).expect_err("wrong passphrase");
    assert_eq!(wrong.setting, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE");
    assert!(!wrong.to_string().contains("wrong"), "{wrong}");
    let config = SnowflakeConfig::load(&vars("open sesame"), None)
        .expect("ok")
        .expect("configured");
    assert!(matches!(config.auth, SnowflakeAuth::KeyPair(_)));
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    // The JWT signed with the decrypted key logs in.
    let w = SnowflakeWarehouse::open(config)
        .await
        .expect("key-pair login");
    let r = w
        .query("SELECT 'key pair' AS how", &all())
        .await
        .expect("query");
    assert_eq!(r.rows, vec![vec![json!("key pair")]]);
    let _ = std::fs::remove_dir_all(&dir);
}
