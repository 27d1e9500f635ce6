//! Helpers for the warehouse tests: an MCP session over the warehouse tools,
//! a tool call, and the fakesnow server process.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{Value, json};
use snowflake_mcp::Service;
use snowflake_mcp::mcp::{McpServer, Session};
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::warehouse::Warehouse;

/// An initialized MCP session over the warehouse tools.
pub fn tool_session(
    warehouse: Arc<dyn Warehouse>,
    config: ToolsConfig,
    requests: RequestsConfig,
) -> Arc<Session> {
    let server = Service::new(McpServer::builder("t", "0"))
        .warehouse(warehouse, config)
        .requests(requests)
        .build()
        .mcp;
    let session = Arc::new(Session::new(server, None));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let mut out = Vec::new();
    let _ = session.dispatch(init.to_string().as_bytes(), &mut out);
    session
}

/// Calls a tool; returns (isError, text, structuredContent).
pub async fn call(session: &Arc<Session>, tool: &str, args: Value) -> (bool, String, Value) {
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": tool, "arguments": args}});
    let answer = session
        .handle(req.to_string().as_bytes())
        .await
        .expect("an answer");
    let v: Value = serde_json::from_slice(&answer).expect("JSON");
    assert!(v.get("error").is_none(), "{v}");
    let result = &v["result"];
    (
        result["isError"] == true,
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        result["structuredContent"].clone(),
    )
}

/// fakesnow (`tests/fakesnow/serve.py` from `.venv-fakesnow`), killed on drop.
pub struct FakeSnow {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
}

impl FakeSnow {
    /// Starts it on `port` (0: any free one) and waits until it listens.
    pub fn start(port: u16) -> FakeSnow {
        FakeSnow::start_with(port, &[])
    }

    /// Starts it with shim options (`--sync-window 0.3`, `--pat T`, ...).
    pub fn start_with(port: u16, options: &[&str]) -> FakeSnow {
        use std::io::BufRead as _;
        let root = env!("CARGO_MANIFEST_DIR");
        let python = format!("{root}/.venv-fakesnow/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "{python} is missing: run `bash scripts/test.sh` (it installs fakesnow)"
        );
        let mut child = std::process::Command::new(python)
            .arg(format!("{root}/tests/fakesnow/serve.py"))
            .args(["--port", &port.to_string()])
            .args(options)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start fakesnow");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fakesnow did not start: {line:?}"));
        FakeSnow { child, port }
    }

    /// The daemon's environment for a warehouse at `url` (this stand-in,
    /// or a proxy in front of it): account, user, password, DB1.S1.
    pub fn daemon_env(url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SNOWFLAKE_ACCOUNT", "testacct".into()),
            ("SNOWFLAKE_USER", "tester".into()),
            ("SNOWFLAKE_PASSWORD", "not-checked".into()),
            ("SNOWFLAKE_DATABASE", "DB1".into()),
            ("SNOWFLAKE_SCHEMA", "S1".into()),
            ("SNOWFLAKE_BASE_URL", url.into()),
        ]
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings for a warehouse on it (database DB1, schema S1, password
    /// login) with at most `max_size` sessions, none kept idle.
    pub fn config(&self, max_size: usize) -> snowflake_mcp::warehouse::snowflake::SnowflakeConfig {
        use snowflake_mcp::warehouse::snowflake::{Secret, SnowflakeAuth, SnowflakeConfig};
        SnowflakeConfig {
            account: "testacct".into(),
            user: "tester".into(),
            auth: SnowflakeAuth::Password(Secret::new("not-checked")),
            role: None,
            warehouse: None,
            database: Some("DB1".into()),
            schema: Some("S1".into()),
            base_url: Some(self.url()),
            pool: snowflake_mcp::pool::PoolConfig {
                max_size,
                min_idle: 0,
                acquire_timeout: std::time::Duration::from_secs(10),
                ..snowflake_mcp::pool::PoolConfig::default()
            },
            statement_timeout: None,
            query_tag_prefix: None,
        }
    }

    /// A JSON document of the shim (`/__shim/counts`, `/__shim/tags`).
    pub fn shim(&self, path: &str) -> Value {
        use std::io::{Read as _, Write as _};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the shim");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("ask");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"))
    }

    /// How many requests the shim counted under `key` (a path, `chunk`,
    /// `aborted`, `expired`, `login:PROGRAMMATIC_ACCESS_TOKEN`, ...).
    pub fn count(&self, key: &str) -> u64 {
        self.shim("/__shim/counts")[key].as_u64().unwrap_or(0)
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeSnow {
    fn drop(&mut self) {
        self.stop();
    }
}
