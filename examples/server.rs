//! The snowflake-mcp daemon.
//!
//! ```text
//! cargo run --release --example server -- [--host IP] [--port N]
//! ```
//!
//! Prints `listening on http://ADDR` once the socket is bound, serves MCP on
//! `/mcp` (Streamable HTTP), `/ws` (WebSocket, subprotocol `mcp`) and liveness on `/health` until SIGINT or SIGTERM,
//! then shuts down gracefully. `--transport stdio` serves MCP on stdin/stdout.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;

use snowflake_mcp::http::Router;
use snowflake_mcp::mcp::{McpServer, Resource, ResourceContents, Tool, ToolOutput};
use snowflake_mcp::ops::Ops;
use snowflake_mcp::ops::auth::Auth;
use snowflake_mcp::ops::rate::RateLimiter;
use snowflake_mcp::requests::{RequestManager, RequestsConfig};
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
use snowflake_mcp::tools::{self, ToolsConfig};
use snowflake_mcp::transport::stdio;
use snowflake_mcp::transport::streamable_http::{HttpMcpConfig, StreamableHttp};
use snowflake_mcp::transport::websocket::WebSocketMcp;
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::snowflake::{Env, SnowflakeConfig, SnowflakeWarehouse};
use snowflake_mcp::warehouse::sqlite::{Source, SqliteConfig, SqliteWarehouse};
use snowflake_mcp::ws::WsConfig;
use snowflake_mcp::{Config, Registry, Server, config};

const USAGE: &str = "\
usage: server [--transport http|stdio] [--host IP] [--port N] [--sqlite PATH]
              [--connection NAME] [--allow KINDS]

  --transport T  http: serve on a socket (default); stdio: serve MCP on stdin/stdout
  --host IP      address to listen on (default: 127.0.0.1)
  --port N       port to listen on, 0 for any free port (default: 8000)
  --sqlite PATH  serve this SQLite file, read-only (default: the built-in demo
                 warehouse, created in memory at start)
  --connection NAME
                 the connection of Snowflake's connections.toml to use (in
                 $SNOWFLAKE_HOME, else ~/.snowflake/). Without Snowflake
                 settings (SNOWFLAKE_ACCOUNT, ... or connections.toml) and
                 without --sqlite, the demo warehouse is served.
  --log-format F text (default) or json: log lines on stderr (MCP_LOG_FORMAT);
                 MCP_LOG sets the level filter (default: info)
  --allow KINDS  statement kinds execute_query runs, comma-separated
                 (default: SELECT,SHOW,DESCRIBE,EXPLAIN; others: INSERT,
                 UPDATE, DELETE, MERGE, TRUNCATE, CREATE, ALTER, DROP, GRANT,
                 USE, COPY, CALL, OTHER)

  Snowflake settings (the environment wins over connections.toml):
  SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or
  SNOWFLAKE_PRIVATE_KEY_PATH (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE),
  SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA,
  SNOWFLAKE_BASE_URL (replaces https://ACCOUNT.snowflakecomputing.com)

  Server settings:
  MCP_CORS_ORIGINS  browser origins allowed (comma-separated; default: none)
  MCP_API_KEYS      bearer tokens required on /mcp and /ws, comma-separated,
                    each token[:readonly] (16+ characters; default: open)
  MCP_PROTECT_OPS   1: /health/detailed, /status and /metrics need a key too
  MCP_RATE_LIMIT    requests per second per client address[:burst] on /mcp
                    and /ws (429 with Retry-After past it; default: none)
  -h, --help     print this help
";

/// Where the daemon serves.
enum Transport {
    Http,
    Stdio,
}

/// What the command line asked for.
struct Options {
    config: Config,
    transport: Transport,
    sqlite: Option<std::path::PathBuf>,
    connection: Option<String>,
    guard: SqlGuard,
    json_logs: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut transport = Transport::Http;
    let mut sqlite = None;
    let mut connection = None;
    let mut guard = SqlGuard::read_only();
    let mut json_logs = match std::env::var("MCP_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") | Ok("") | Err(_) => false,
        Ok(other) => {
            return Err(format!(
                "MCP_LOG_FORMAT: {other:?} is not one of text, json"
            ));
        }
    };
    let mut config = Config::new()
        .host(config::DEFAULT_HOST)
        .port(config::DEFAULT_PORT);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--host" => {
                let v = value("--host")?;
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| format!("--host: {v:?} is not an IP address"))?;
                config = config.host(ip);
            }
            "--port" => {
                let v = value("--port")?;
                let port: u16 = v
                    .parse()
                    .map_err(|_| format!("--port: {v:?} is not a port number (0-65535)"))?;
                config = config.port(port);
            }
            "--transport" => {
                transport = match value("--transport")?.as_str() {
                    "http" => Transport::Http,
                    "stdio" => Transport::Stdio,
                    other => {
                        return Err(format!("--transport: {other:?} is not one of http, stdio"));
                    }
                }
            }
            "--sqlite" => sqlite = Some(std::path::PathBuf::from(value("--sqlite")?)),
            "--connection" => connection = Some(value("--connection")?),
            "--log-format" => {
                json_logs = match value("--log-format")?.as_str() {
                    "json" => true,
                    "text" => false,
                    other => {
                        return Err(format!("--log-format: {other:?} is not one of text, json"));
                    }
                }
            }
            "--allow" => {
                let v = value("--allow")?;
                let kinds = v
                    .split(',')
                    .map(|k| {
                        StatementKind::parse(k)
                            .ok_or_else(|| format!("--allow: {k:?} is not a statement kind"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                guard = SqlGuard::allowing(kinds);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        config,
        transport,
        sqlite,
        connection,
        guard,
        json_logs,
    })
}

/// Log lines on stderr (stdout may carry MCP), text or JSON, filtered by `MCP_LOG`.
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens the warehouse the options name: a SQLite file, or the demo.
/// Opens the warehouse the options name: a SQLite file; else Snowflake when
/// it is configured; else the demo.
async fn open_warehouse(
    sqlite: Option<std::path::PathBuf>,
    connection: Option<String>,
) -> Result<Arc<dyn Warehouse>, String> {
    if sqlite.is_none() {
        let snowflake =
            SnowflakeConfig::load(&Env, connection.as_deref()).map_err(|e| e.to_string())?;
        if let Some(mut config) = snowflake {
            // Snowflake stops statements the request manager stopped waiting for.
            config.statement_timeout = Some(RequestsConfig::default().timeout);
            let account = config.account.clone();
            let warehouse = SnowflakeWarehouse::open(config)
                .await
                .map_err(|e| format!("Snowflake account {account:?}: {e}"))?;
            return Ok(warehouse);
        }
    }
    let config = match sqlite {
        Some(path) => {
            let database = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_uppercase())
                .unwrap_or_else(|| "DB".into());
            SqliteConfig {
                source: Source::File(path),
                database,
                ..SqliteConfig::default()
            }
        }
        None => SqliteConfig::default(),
    };
    let warehouse = SqliteWarehouse::open(config)
        .await
        .map_err(|e| format!("--sqlite: {e}"))?;
    Ok(warehouse)
}

/// What the daemon says about itself (the `server_info` tool and resource).
fn server_info(
    started: std::time::Instant,
    transport: &str,
    warehouse: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "name": "snowflake-mcp",
        "version": env!("CARGO_PKG_VERSION"),
        "transport": transport,
        "protocolVersions": ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"],
        "uptimeSeconds": started.elapsed().as_secs(),
        "warehouse": warehouse,
    })
}

/// The MCP server this daemon offers: the warehouse tools, and what it can
/// say about itself.
async fn mcp_server(
    transport: &'static str,
    warehouse: Arc<dyn Warehouse>,
    requests: Arc<RequestManager>,
    guard: SqlGuard,
) -> McpServer {
    let started = std::time::Instant::now();
    let databases = warehouse.databases().await.unwrap_or_default();
    let about = serde_json::json!({"kind": warehouse.kind(), "databases": databases});
    let about_tool = about.clone();
    let info_tool = Tool::raw(
        "server_info",
        "Version, supported protocol versions, transport, uptime and warehouse of this server.",
        serde_json::json!({"type": "object", "properties": {}}),
        move |_ctx, _args| {
            let about = about_tool.clone();
            async move { ToolOutput::structured(server_info(started, transport, &about)) }
        },
    )
    .title("Server info")
    .output_schema(serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "transport": {"type": "string"},
            "protocolVersions": {"type": "array", "items": {"type": "string"}},
            "uptimeSeconds": {"type": "integer"},
            "warehouse": {}
        },
        "required": ["name", "version", "transport", "protocolVersions", "uptimeSeconds"]
    }))
    .annotations(serde_json::json!({"readOnlyHint": true, "openWorldHint": false}));
    let info_resource = Resource::new(INFO_URI, "server-info", move |_ctx, uri| {
        let about = about.clone();
        async move {
            Ok(vec![ResourceContents::Text {
                uri,
                mime_type: Some("application/json".into()),
                text: server_info(started, transport, &about).to_string(),
            }])
        }
    })
    .title("Server info")
    .mime_type("application/json");
    let builder = McpServer::builder("snowflake-mcp", env!("CARGO_PKG_VERSION")).instructions(
        "A data warehouse over MCP. Start with list_databases, list_schemas and list_tables; \
         describe_table shows columns and types; execute_query runs one read-only statement \
         (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN).",
    );
    tools::register(
        builder,
        warehouse,
        ToolsConfig {
            guard,
            ..ToolsConfig::default()
        },
        requests,
    )
    .tool(info_tool)
    .resource(info_resource)
    .build()
}

/// Where the `server_info` resource lives.
const INFO_URI: &str = "snowflake-mcp://server/info";

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> ExitCode {
    let Options {
        config,
        transport,
        sqlite,
        connection,
        guard,
        json_logs,
    } = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) if msg.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    init_logs(json_logs);
    let warehouse = match open_warehouse(sqlite, connection).await {
        Ok(w) => w,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::FAILURE;
        }
    };
    if let Transport::Stdio = transport {
        // stdout carries MCP only; anything for people goes to stderr.
        let server = mcp_server(
            "stdio",
            warehouse,
            RequestManager::new(RequestsConfig::default()),
            guard,
        )
        .await;
        return match stdio::serve(server, tokio::io::stdin(), tokio::io::stdout()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // One connection manager for the server and both transports, and one
    // request manager for every statement, whichever transport it came by.
    let registry = Registry::new();
    let requests = RequestManager::new(RequestsConfig::default());
    // Browser origins allowed besides loopback ones (MCP_CORS_ORIGINS, comma-separated).
    let origins: Vec<String> = std::env::var("MCP_CORS_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    let config = config.security_headers(None).cors(origins.clone());
    // Bearer keys (MCP_API_KEYS: token[:readonly],...); MCP_PROTECT_OPS=1
    // also guards /health/detailed, /status and /metrics.
    let auth = match Auth::parse(&std::env::var("MCP_API_KEYS").unwrap_or_default()) {
        Ok(a) => Arc::new(a.protect_ops(std::env::var("MCP_PROTECT_OPS").is_ok_and(|v| v == "1"))),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Per-client-address limit (MCP_RATE_LIMIT: requests per second[:burst]).
    let rate_limit = match std::env::var("MCP_RATE_LIMIT")
        .ok()
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => {
            let (rate, burst) = v.split_once(':').unwrap_or((&v, ""));
            let rate: f64 = match rate.parse() {
                Ok(r) if r > 0.0 => r,
                _ => {
                    eprintln!(
                        "error: MCP_RATE_LIMIT: {rate:?} is not a positive number of requests per second"
                    );
                    return ExitCode::from(2);
                }
            };
            let burst: u32 = if burst.is_empty() {
                (rate * 2.0).ceil() as u32
            } else {
                match burst.parse() {
                    Ok(b) if b > 0 => b,
                    _ => {
                        eprintln!(
                            "error: MCP_RATE_LIMIT: burst {burst:?} is not a positive whole number"
                        );
                        return ExitCode::from(2);
                    }
                }
            };
            Some(Arc::new(RateLimiter::new(rate, burst)))
        }
    };
    let ops = Arc::new(
        Ops::new(
            env!("CARGO_PKG_VERSION"),
            Arc::clone(&registry),
            Arc::clone(&requests),
            Arc::clone(&warehouse),
        )
        .auth(Arc::clone(&auth)),
    );
    let warehouse_kind = warehouse.kind();
    let http_mcp = mcp_server(
        "http",
        Arc::clone(&warehouse),
        Arc::clone(&requests),
        guard.clone(),
    )
    .await;
    let ws_mcp = mcp_server("websocket", warehouse, Arc::clone(&requests), guard).await;
    ops.set_mcp_metrics(vec![http_mcp.metrics(), ws_mcp.metrics()]);
    let http = StreamableHttp::with_registry(
        http_mcp,
        HttpMcpConfig {
            allowed_origins: origins.clone(),
            auth: Some(Arc::clone(&auth)),
            rate_limit: rate_limit.clone(),
            ..HttpMcpConfig::default()
        },
        Arc::clone(&registry),
    );
    let ws = WebSocketMcp::with_registry(
        ws_mcp,
        WsConfig {
            allowed_origins: origins,
            auth: Some(auth),
            rate_limit,
            ..WsConfig::default()
        },
        Arc::clone(&registry),
    );
    let router = ws.routes(http.routes(ops.routes(Router::new()), "/mcp"), "/ws");
    let server = match Server::bind(config, router).await {
        Ok(s) => s.with_registry(registry),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    ops.set_http_stats(server.stats());
    ops.set_transports(vec![
        ("streamable_http".into(), format!("http://{addr}/mcp")),
        ("websocket".into(), format!("ws://{addr}/ws")),
    ]);
    tracing::info!(address = %addr, warehouse = warehouse_kind, "listening");
    println!("listening on http://{addr}");
    match server.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
