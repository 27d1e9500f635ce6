//! The snowflake-mcp daemon.
//!
//! ```text
//! cargo run --release --example server -- [--config FILE] [--SETTING VALUE ...]
//! ```
//!
//! Prints `listening on http://ADDR` once the socket is bound, serves MCP on
//! `/mcp` (Streamable HTTP), `/ws` (WebSocket, subprotocol `mcp`) and the
//! operations endpoints (`/health`, `/health/detailed`, `/status`,
//! `/metrics`) until SIGINT or SIGTERM, then shuts down gracefully.
//! `--transport stdio` serves MCP on stdin/stdout. `--help` lists every
//! setting (file, environment, flag) with its default.

use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use snowflake_mcp::guard::auth::Auth;
use snowflake_mcp::mcp::{
    McpServer, McpServerBuilder, Resource, ResourceContents, Tool, ToolOutput,
};
use snowflake_mcp::proxy_protocol::ProxyProtocolListener;
use snowflake_mcp::service::Built;
use snowflake_mcp::transport::stdio;
use snowflake_mcp::transport::streamable_http::HttpMcpConfig;
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::snowflake::{SnowflakeConfig, SnowflakeWarehouse};
use snowflake_mcp::warehouse::sqlite::{Source, SqliteConfig, SqliteWarehouse};
use snowflake_mcp::{Readiness, Service};

mod malloc;
mod settings;

use settings::{Layered, Problem, Settings, Transport};

/// Log lines waiting for stderr at most (about 2 MiB of typical lines):
/// past it, new lines are dropped and counted rather than waited for.
const LOG_LINES_QUEUED: usize = 8_192;

/// The log writer's thread, until [`flush_logs`] ends it, and the count of
/// lines it dropped.
static LOG_WRITER: std::sync::Mutex<
    Option<(
        tracing_appender::non_blocking::WorkerGuard,
        tracing_appender::non_blocking::ErrorCounter,
    )>,
> = std::sync::Mutex::new(None);

/// Log lines on stderr (stdout may carry MCP), text or JSON, with the
/// lines of crates that log secrets below `info` dropped whatever the
/// filter says (the `reqwest` crates'; see `settings/logs.rs`).
///
/// The lines are written by a thread of their own, never by the async
/// workers: a write to a stderr nobody reads (a paused terminal, a stuck
/// log collector) blocks once the pipe is full, and on a worker it would
/// stop every client of the daemon. A line that finds [`LOG_LINES_QUEUED`]
/// lines waiting is dropped; the count is logged at the end.
fn init_logs(json: bool, filter: tracing_subscriber::EnvFilter) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_LINES_QUEUED)
        .thread_name("mcp-logs")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    *LOG_WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some((guard, dropped));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(settings::CapSecretLogs);
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    if json {
        registry.with(lines.json()).init();
    } else {
        registry.with(lines).init();
    }
}

/// Log lines dropped so far because too many waited for stderr.
fn dropped_log_lines() -> usize {
    LOG_WRITER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |(_, dropped)| dropped.dropped_lines())
}

/// Writes out the log lines still waiting (for at most about a second, if
/// stderr is not read) and ends the writer: lines logged after it are lost.
/// Called before the process exits, and before an error is printed
/// straight to stderr, so it comes after the lines logged before it.
fn flush_logs() {
    let writer = LOG_WRITER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(writer);
}

/// Prints a fatal error after the log lines logged before it.
fn fatal(msg: impl std::fmt::Display) {
    flush_logs();
    eprintln!("error: {msg}");
}

/// Opens the warehouse the settings name: a SQLite file; else Snowflake when
/// it is configured; else the demo.
async fn open_warehouse(settings: &Settings) -> Result<Arc<dyn Warehouse>, String> {
    let sqlite = settings.sqlite.clone();
    if sqlite.is_none() {
        let source = Layered {
            file: &settings.snowflake_file,
        };
        let snowflake = SnowflakeConfig::load(&source, settings.connection.as_deref())
            .map_err(|e| e.to_string())?;
        if let Some(mut config) = snowflake {
            // Snowflake stops statements the request manager stopped waiting for.
            config.statement_timeout = Some(settings.requests.timeout);
            config.pool = settings.pool.clone();
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
                pool: settings.pool.clone(),
                ..SqliteConfig::default()
            }
        }
        None => SqliteConfig {
            pool: settings.pool.clone(),
            ..SqliteConfig::default()
        },
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

/// What this daemon says about itself (the `server_info` tool and
/// resource) and its instructions; the warehouse tools join them.
fn mcp_builder(about: serde_json::Value) -> McpServerBuilder {
    let started = std::time::Instant::now();
    let about_tool = about.clone();
    let info_tool = Tool::raw(
        "server_info",
        "Version, supported protocol versions, transport, uptime and warehouse of this server.",
        serde_json::json!({"type": "object", "properties": {}}),
        move |ctx, _args| {
            let about = about_tool.clone();
            // One server for every transport: the call says which it came by.
            let transport = ctx.transport().unwrap_or("unknown");
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
    let info_resource = Resource::new(INFO_URI, "server-info", move |ctx, uri| {
        let about = about.clone();
        let transport = ctx.transport().unwrap_or("unknown");
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
    McpServer::builder("snowflake-mcp", env!("CARGO_PKG_VERSION"))
        .instructions(
            "A data warehouse over MCP. Start with list_databases, list_schemas and list_tables; \
             describe_table shows columns and types; execute_query runs one read-only statement \
             (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN).",
        )
        .tool(info_tool)
        .resource(info_resource)
}

/// What `server_info` says of the warehouse: its kind and databases (read once at start).
async fn about(warehouse: &dyn Warehouse) -> serde_json::Value {
    let databases = warehouse.databases().await.unwrap_or_default();
    serde_json::json!({"kind": warehouse.kind(), "databases": databases})
}

/// Where the `server_info` resource lives.
const INFO_URI: &str = "snowflake-mcp://server/info";

/// SIGINT and SIGTERM, listened for from the moment this is made (so a
/// signal that arrives before the first poll is not lost to the default
/// action, which would kill the process).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for the next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = one(&mut self.term) => {}
                () = one(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM; a second one exits the process
/// at once (status 130), whatever is still running.
async fn shutdown_signal(signals: Signals) {
    draining_signal(signals, None).await;
}

/// How a replica leaves: `/ready` answers 503 for `grace` while requests
/// are still served (the load balancer moves away first), then the tasks
/// it runs get up to `tasks_wait` to finish before the graceful shutdown.
struct Drain {
    readiness: Option<Readiness>,
    grace: Duration,
    mcp: McpServer,
    tasks_wait: Duration,
}

/// [`shutdown_signal`], after the drain.
async fn draining_signal(mut signals: Signals, drain: Option<Drain>) {
    signals.next().await;
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        flush_logs();
        std::process::exit(130);
    });
    if let Some(drain) = drain {
        if let Some(readiness) = drain.readiness.filter(|_| !drain.grace.is_zero()) {
            readiness.drain();
            tracing::info!(grace = ?drain.grace, "draining: /ready answers 503, requests are still served");
            tokio::time::sleep(drain.grace).await;
        }
        let (mcp, waiting) = (drain.mcp, std::time::Instant::now());
        if mcp.live_tasks() > 0 {
            tracing::info!(tasks = mcp.live_tasks(), wait = ?drain.tasks_wait, "waiting for running tasks");
        }
        while mcp.live_tasks() > 0 && waiting.elapsed() < drain.tasks_wait {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tracing::info!("shutting down: finishing requests in flight (a second signal exits at once)");
}

/// The library's composition root over the settings: one registry, one
/// request manager, one MCP server for every transport, admission applied
/// alike.
fn service(
    settings: &mut Settings,
    warehouse: &Arc<dyn Warehouse>,
    builder: McpServerBuilder,
) -> Service {
    let auth = std::mem::replace(&mut settings.auth, Auth::new());
    let service = Service::new(builder.state_keys(settings.state_keys.clone()))
        .warehouse(Arc::clone(warehouse), settings.tools.clone())
        .requests(settings.requests.clone())
        .streamable_http_with(
            "/mcp",
            HttpMcpConfig {
                max_sessions: settings.max_sessions,
                session_idle: settings.session_idle,
                ..HttpMcpConfig::default()
            },
        )
        .websocket_with("/ws", settings.ws.clone())
        .ops()
        .keys(auth)
        .allowed_origins(settings.cors_origins.clone())
        .allowed_hosts(settings.allowed_hosts.clone())
        .config(settings.config.clone());
    let service = match &settings.oauth {
        Some(oauth) => service.oauth(Arc::clone(oauth)),
        None => service,
    };
    match settings.rate_limit {
        Some((rate, burst)) => service.rate_limit(rate, burst),
        None => service,
    }
}

/// Serves where the settings say until a signal: stdin/stdout (stdout
/// carries MCP only; anything for people goes to stderr), a Unix socket or
/// host:port. The error, said for people, when it cannot.
async fn serve(
    built: Built,
    settings: &Settings,
    signals: Signals,
    kind: &str,
) -> Result<(), String> {
    if let Transport::Stdio = settings.transport {
        // A signal stops the reading; calls already read finish, and past
        // the deadline they end with an error saying why. stdin is read on
        // a detached thread: the runtime ends without waiting for a line.
        return built
            .serve_stdio(
                stdio::stdin(),
                tokio::io::stdout(),
                shutdown_signal(signals),
            )
            .await
            .map_err(|e| e.to_string());
    }
    let drain = Drain {
        readiness: built.readiness(),
        grace: settings.drain_grace,
        mcp: built.mcp.clone(),
        tasks_wait: settings.config.shutdown_timeout,
    };
    if let Some(path) = &settings.unix_socket {
        let server = built
            .bind_unix(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(socket = %path.display(), warehouse = kind, "listening");
        println!("listening on unix:{}", path.display());
        let served = server.serve(draining_signal(signals, Some(drain))).await;
        let _ = std::fs::remove_file(path);
        return served.map_err(|e| e.to_string());
    }
    #[cfg(feature = "tls")]
    if let Some((tls, interval)) = &settings.tls {
        if settings.proxy_protocol {
            let server = built
                .bind_wrapped(true, |tcp| tls.listener(proxied(tcp)))
                .await
                .map_err(|e| e.to_string())?;
            return serve_tls(server, tls, *interval, signals, drain, kind).await;
        }
        let server = built.bind_tls(tls).await.map_err(|e| e.to_string())?;
        return serve_tls(server, tls, *interval, signals, drain, kind).await;
    }
    if settings.proxy_protocol {
        let server = built
            .bind_wrapped(false, proxied)
            .await
            .map_err(|e| e.to_string())?;
        let addr = server.local_addr();
        tracing::info!(address = %addr, warehouse = kind, "listening (PROXY protocol)");
        println!("listening on http://{addr}");
        return server
            .serve(draining_signal(signals, Some(drain)))
            .await
            .map_err(|e| e.to_string());
    }
    let server = built.bind().await.map_err(|e| e.to_string())?;
    let addr = server.local_addr();
    tracing::info!(address = %addr, warehouse = kind, "listening");
    println!("listening on http://{addr}");
    server
        .serve(draining_signal(signals, Some(drain)))
        .await
        .map_err(|e| e.to_string())
}

/// TCP connections that start with a PROXY protocol header.
fn proxied(tcp: tokio::net::TcpListener) -> ProxyProtocolListener<tokio::net::TcpStream> {
    ProxyProtocolListener::new(tcp, snowflake_mcp::proxy_protocol::DEFAULT_HEADER_TIMEOUT)
}

/// Serves `server` over TLS until a signal, the certificate watched.
#[cfg(feature = "tls")]
async fn serve_tls<L: snowflake_mcp::server::Listener>(
    server: snowflake_mcp::Server<L>,
    tls: &snowflake_mcp::tls::Tls,
    interval: Duration,
    signals: Signals,
    drain: Drain,
    kind: &str,
) -> Result<(), String> {
    let addr = server.local_addr();
    let _watch = tls.watch(interval);
    tokio::spawn(reload_on_hangup(tls.clone()));
    tracing::info!(address = %addr, warehouse = kind, "listening (TLS)");
    println!("listening on https://{addr}");
    server
        .serve(draining_signal(signals, Some(drain)))
        .await
        .map_err(|e| e.to_string())
}

/// The Redis store tasks are kept in, when the settings name one.
#[cfg(feature = "redis")]
async fn shared_tasks(
    settings: &Settings,
) -> Result<Option<snowflake_mcp::mcp::SharedTasks>, String> {
    let Some((url, prefix)) = &settings.tasks_redis else {
        return Ok(None);
    };
    let store = snowflake_mcp::mcp::SharedTasks::connect(url, prefix)
        .await
        .map_err(|e| format!("tasks_redis: {e}"))?;
    tracing::info!(replica = store.replica(), "tasks kept in Redis");
    Ok(Some(store))
}

/// Without the `redis` feature, naming a store is an error.
#[cfg(not(feature = "redis"))]
async fn shared_tasks(settings: &Settings) -> Result<Option<()>, String> {
    match settings.tasks_redis {
        Some(_) => Err("tasks_redis: this build has no redis feature".into()),
        None => Ok(None),
    }
}

/// Reads the certificate files again at each SIGHUP.
#[cfg(feature = "tls")]
async fn reload_on_hangup(tls: snowflake_mcp::tls::Tls) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            if let Err(e) = tls.reload() {
                tracing::warn!(error = %e, "SIGHUP: the certificate in use stays");
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut settings = match Settings::load(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(Problem::Help(help)) => {
            print!("{help}");
            return ExitCode::SUCCESS;
        }
        Err(Problem::Bad(msg)) => {
            eprintln!("error: {msg}\n(server --help lists every setting)");
            return ExitCode::from(2);
        }
    };
    init_logs(settings.json_logs, settings.log_filter.clone());
    if let Some(bytes) = settings.malloc_mmap_threshold {
        if let Err(why) = malloc::pin_mmap_threshold(bytes) {
            fatal(format!("malloc_mmap_threshold: {why}"));
            return ExitCode::FAILURE;
        }
        tracing::info!(
            bytes,
            "malloc: allocations this large get a mapping of their own"
        );
    }
    let signals = Signals::listen();
    let warehouse = match open_warehouse(&settings).await {
        Ok(w) => w,
        Err(msg) => {
            fatal(msg);
            return ExitCode::FAILURE;
        }
    };
    if !settings.per_client_set && warehouse.kind() == "sqlite" {
        // SQLite's statements run on this machine's CPUs: one client gets
        // at most half of them, so another's calls always find a core.
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        settings.requests.max_per_client = (cpus / 2).max(1);
    }
    if let Some(oauth) = &settings.oauth {
        // Fetched now so the first request does not wait; if the issuer
        // cannot be reached yet, the first token fetches them.
        match oauth.load_keys().await {
            Ok(keys) => tracing::info!(
                keys,
                resource = oauth.resource(),
                "OAuth: the issuer's keys fetched"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "OAuth: the issuer's keys could not be fetched yet")
            }
        }
    }
    let shared_tasks = match shared_tasks(&settings).await {
        Ok(s) => s,
        Err(msg) => {
            fatal(msg);
            return ExitCode::FAILURE;
        }
    };
    let about = about(warehouse.as_ref()).await;
    let builder = match &shared_tasks {
        #[cfg(feature = "redis")]
        Some(store) => mcp_builder(about).shared_tasks(store.clone()),
        _ => mcp_builder(about),
    };
    let built = service(&mut settings, &warehouse, builder).build();
    let mcp = built.mcp.clone();
    let served = serve(built, &settings, signals, warehouse.kind()).await;
    if mcp.live_tasks() > 0 {
        // Past the deadline: each ends `failed`, saying why, where clients read it.
        mcp.abort_calls("the server shut down before the task finished");
        let ending = std::time::Instant::now();
        while mcp.live_tasks() > 0 && ending.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if let Some(store) = &shared_tasks {
        #[cfg(feature = "redis")]
        if !store.flush().await {
            tracing::warn!("the last task states could not be written to Redis");
        }
        #[cfg(not(feature = "redis"))]
        let () = store;
    }
    // Every connection is closed: the warehouse sessions go too.
    warehouse.close();
    tracing::info!(
        open_sessions = warehouse.pool_stats().total,
        "warehouse sessions closed"
    );
    tracing::info!(dropped_log_lines = dropped_log_lines(), "stopped");
    match served {
        Ok(()) => {
            flush_logs();
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(e);
            ExitCode::FAILURE
        }
    }
}
