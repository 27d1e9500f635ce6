//! The settings table: every setting's names in each source, its default
//! and help; clap's command line built from it.

use super::*;

/// One setting: its names in every source, its default and what it does.
pub(super) struct Spec {
    pub(super) key: &'static str,
    /// `None` for secrets, which a command line would show to every user of the machine.
    pub(super) flag: Option<&'static str>,
    pub(super) env: &'static str,
    /// What the value looks like, in the help.
    pub(super) hint: &'static str,
    pub(super) default: String,
    pub(super) help: &'static str,
    /// A flag that may stand alone (`--protect-ops` means true).
    pub(super) boolean: bool,
}

/// One setting with a flag: `key` in the file, `flag`, variable `env`.
pub(super) fn spec(
    key: &'static str,
    flag: &'static str,
    env: &'static str,
    hint: &'static str,
    default: String,
    help: &'static str,
) -> Spec {
    Spec {
        key,
        flag: Some(flag),
        env,
        hint,
        default,
        help,
        boolean: false,
    }
}

/// Every setting: where and how to serve, who may use it, and limits.
pub(super) fn specs() -> Vec<Spec> {
    let mut all = serving_specs();
    all.extend(admission_specs());
    all.extend(super::oauth::oauth_specs());
    all.extend(super::tls::tls_specs());
    all.extend(super::replicas::replica_specs());
    all.extend(limit_specs());
    all.extend(call_limit_specs());
    all
}

/// Where and how to serve, and the logs.
fn serving_specs() -> Vec<Spec> {
    let s = spec;
    let read_only: Vec<&str> = StatementKind::READ_ONLY.iter().map(|k| k.name()).collect();
    vec![
        s(
            "transport",
            "--transport",
            "MCP_TRANSPORT",
            "http|stdio",
            "http".into(),
            "http: serve on a socket; stdio: serve MCP on stdin/stdout",
        ),
        s(
            "host",
            "--host",
            "MCP_HTTP_HOST",
            "IP",
            Config::default().host.to_string(),
            "address to listen on",
        ),
        s(
            "port",
            "--port",
            "MCP_HTTP_PORT",
            "N",
            Config::default().port.to_string(),
            "port to listen on, 0 for any free port",
        ),
        s(
            "unix_socket",
            "--unix-socket",
            "MCP_UNIX_SOCKET",
            "PATH",
            "none".into(),
            "serve HTTP on this Unix socket (a new file) instead of host:port",
        ),
        s(
            "sqlite",
            "--sqlite",
            "MCP_SQLITE",
            "PATH",
            "none".into(),
            "serve this SQLite file, read-only, instead of Snowflake or the demo",
        ),
        s(
            "connection",
            "--connection",
            "MCP_CONNECTION",
            "NAME",
            "none".into(),
            "the connection of Snowflake's connections.toml to use",
        ),
        s(
            "allow",
            "--allow",
            "MCP_ALLOW",
            "KINDS",
            read_only.join(","),
            "statement kinds execute_query runs (also INSERT, UPDATE, DELETE, MERGE, TRUNCATE, CREATE, ALTER, DROP, GRANT, USE, COPY, CALL, OTHER)",
        ),
        s(
            "log_format",
            "--log-format",
            "MCP_LOG_FORMAT",
            "text|json",
            "text".into(),
            "log lines on stderr as text or JSON",
        ),
        s(
            "log",
            "--log",
            "MCP_LOG",
            "FILTER",
            "info".into(),
            "log level filter (tracing's syntax: info, debug, snowflake_mcp=debug, ...)",
        ),
    ]
}

/// Who may use the server: origins, hosts, keys, rate.
fn admission_specs() -> Vec<Spec> {
    let s = spec;
    vec![
        s(
            "cors_origins",
            "--cors-origins",
            "MCP_CORS_ORIGINS",
            "ORIGINS",
            "none".into(),
            "browser origins allowed, comma-separated (scheme://host[:port])",
        ),
        s(
            "allowed_hosts",
            "--allowed-hosts",
            "MCP_ALLOWED_HOSTS",
            "HOSTS",
            "loopback names when bound to loopback, else any".into(),
            "Host names answered on every endpoint but /health, comma-separated (others get 403: DNS-rebinding defence); the hosts of --cors-origins are added",
        ),
        Spec {
            key: "api_keys",
            flag: None,
            env: "MCP_API_KEYS",
            hint: "KEYS",
            default: "none (open)".into(),
            help: "bearer tokens required on /mcp and /ws, comma-separated, each token[:readonly], 16+ characters (no flag: a command line is visible to every user)",
            boolean: false,
        },
        Spec {
            boolean: true,
            ..s(
                "protect_ops",
                "--protect-ops",
                "MCP_PROTECT_OPS",
                "BOOL",
                "false".into(),
                "/health/detailed, /status and /metrics need a key too",
            )
        },
        s(
            "rate_limit",
            "--rate-limit",
            "MCP_RATE_LIMIT",
            "RATE[:BURST]",
            "off".into(),
            "requests per second per client address on /mcp and /ws, each WebSocket message one (burst default: twice the rate); 429 past it, or its error by id on a WebSocket",
        ),
        s(
            "hsts_max_age",
            "--hsts-max-age",
            "MCP_HSTS_MAX_AGE",
            "DURATION",
            "off".into(),
            "send Strict-Transport-Security (behind a TLS terminator)",
        ),
    ]
}

/// Limits on connections, bytes, time and sessions.
fn limit_specs() -> Vec<Spec> {
    let s = spec;
    let d = |d: Duration| format_duration(d);
    vec![
        s(
            "max_connections",
            "--max-connections",
            "MCP_MAX_CONNECTIONS",
            "N",
            Config::default().max_connections.to_string(),
            "connections served at once (503 past it)",
        ),
        s(
            "max_connections_per_client",
            "--max-connections-per-client",
            "MCP_MAX_CONNECTIONS_PER_CLIENT",
            "N",
            "max_connections / 4".to_owned(),
            "connections one client address (IPv6: /64) holds at once (503 past it)",
        ),
        s(
            "max_body_bytes",
            "--max-body-bytes",
            "MCP_MAX_BODY_BYTES",
            "BYTES",
            Config::default().max_body_bytes.to_string(),
            "largest request body (413 past it)",
        ),
        s(
            "max_large_bodies_bytes",
            "--max-large-bodies-bytes",
            "MCP_MAX_LARGE_BODIES_BYTES",
            "BYTES",
            "16 x max_body_bytes".to_owned(),
            "bytes of bodies and WebSocket messages past 64 KiB held at once, all connections (503 or close 1013 past it)",
        ),
        s(
            "max_backlog_bytes",
            "--max-backlog-bytes",
            "MCP_MAX_BACKLOG_BYTES",
            "BYTES",
            Config::default().max_backlog_bytes.to_string(),
            "bytes of answers held for clients that do not read, by /mcp and /ws together (past it the longest-stalled are closed)",
        ),
        s(
            "memory_budget_bytes",
            "--memory-budget-bytes",
            "MCP_MEMORY_BUDGET_BYTES",
            "BYTES",
            Config::default().memory_budget_bytes.to_string(),
            "bytes held for clients by all bounded pools together: large bodies and messages, answers for clients that do not read, answers kept for resumption, task results, answers batches gather",
        ),
        s(
            "malloc_mmap_threshold",
            "--malloc-mmap-threshold",
            "MCP_MALLOC_MMAP_THRESHOLD",
            "BYTES|off",
            "off".to_owned(),
            "glibc only: allocations this large get a mapping of their own, given back when freed (a lower peak after megabyte answers, but each megabyte value then costs page faults that slow other clients' calls); off: glibc's own threshold, which rises",
        ),
        s(
            "ws_max_message_bytes",
            "--ws-max-message-bytes",
            "MCP_WS_MAX_MESSAGE_BYTES",
            "BYTES",
            WsConfig::default().max_message_bytes.to_string(),
            "largest WebSocket message (close 1009 past it)",
        ),
        s(
            "ws_max_in_flight",
            "--ws-max-in-flight",
            "MCP_WS_MAX_IN_FLIGHT",
            "N",
            WsConfig::default().max_in_flight.to_string(),
            "requests running at once per WebSocket (the socket is not read past it)",
        ),
        s(
            "ws_max_queued_bytes",
            "--ws-max-queued-bytes",
            "MCP_WS_MAX_QUEUED_BYTES",
            "BYTES",
            WsConfig::default().max_queued_bytes.to_string(),
            "bytes of messages waiting for a WebSocket client to read (close 1008 past it)",
        ),
        s(
            "ws_send_timeout",
            "--ws-send-timeout",
            "MCP_WS_SEND_TIMEOUT",
            "DURATION",
            d(WsConfig::default().send_timeout),
            "a WebSocket client not taking a message for this long is closed (1008)",
        ),
        s(
            "ws_ping_interval",
            "--ws-ping-interval",
            "MCP_WS_PING_INTERVAL",
            "DURATION",
            d(WsConfig::default().ping_interval),
            "a WebSocket is pinged after this long without a frame from its client",
        ),
        s(
            "ws_pong_timeout",
            "--ws-pong-timeout",
            "MCP_WS_PONG_TIMEOUT",
            "DURATION",
            d(WsConfig::default().pong_timeout),
            "a WebSocket silent for a ping interval and this long is dropped",
        ),
        s(
            "ws_doze_after",
            "--ws-doze-after",
            "MCP_WS_DOZE_AFTER",
            "DURATION",
            d(WsConfig::default().doze_after),
            "a WebSocket silent this long, with no call running, frees its frame reader until its next message",
        ),
        s(
            "head_timeout",
            "--head-timeout",
            "MCP_HEAD_TIMEOUT",
            "DURATION",
            d(Config::default().head_timeout),
            "time to receive a request head (408 past it)",
        ),
        s(
            "keep_alive_timeout",
            "--keep-alive-timeout",
            "MCP_KEEP_ALIVE_TIMEOUT",
            "DURATION",
            d(Config::default().keep_alive_timeout),
            "idle keep-alive connections close after this",
        ),
        s(
            "write_timeout",
            "--write-timeout",
            "MCP_WRITE_TIMEOUT",
            "DURATION",
            d(Config::default().write_timeout),
            "a client not reading for this long is dropped",
        ),
        s(
            "shutdown_timeout",
            "--shutdown-timeout",
            "MCP_SHUTDOWN_TIMEOUT",
            "DURATION",
            d(Config::default().shutdown_timeout),
            "on SIGINT/SIGTERM, how long requests in flight may finish; past it they are cancelled with an error (a second signal exits at once)",
        ),
        s(
            "max_sessions",
            "--max-sessions",
            "MCP_MAX_SESSIONS",
            "N",
            streamable_http::HttpMcpConfig::default()
                .max_sessions
                .to_string(),
            "Streamable HTTP sessions kept at once",
        ),
        s(
            "session_idle_timeout",
            "--session-idle-timeout",
            "MCP_SESSION_IDLE_TIMEOUT",
            "DURATION",
            d(streamable_http::HttpMcpConfig::default().session_idle),
            "Streamable HTTP sessions unused this long expire",
        ),
    ]
}

/// Limits on warehouse calls, sessions and rows.
fn call_limit_specs() -> Vec<Spec> {
    let s = spec;
    let d = |d: Duration| format_duration(d);
    vec![
        s(
            "request_timeout",
            "--request-timeout",
            "MCP_REQUEST_TIMEOUT",
            "DURATION",
            d(RequestsConfig::default().timeout),
            "longest a warehouse call may take, queue included",
        ),
        s(
            "max_concurrent_requests",
            "--max-concurrent-requests",
            "MCP_MAX_CONCURRENT_REQUESTS",
            "N",
            RequestsConfig::default().max_concurrent.to_string(),
            "warehouse calls running at once",
        ),
        s(
            "max_requests_per_client",
            "--max-requests-per-client",
            "MCP_MAX_REQUESTS_PER_CLIENT",
            "N",
            format!(
                "{} (SQLite: half the CPUs, at least 1)",
                RequestsConfig::default().max_per_client
            ),
            "warehouse calls one client (key, or address without keys) may run at once",
        ),
        s(
            "max_queued_requests",
            "--max-queued-requests",
            "MCP_MAX_QUEUED_REQUESTS",
            "N",
            RequestsConfig::default().max_queue.to_string(),
            "warehouse calls waiting (\"server busy\" past it)",
        ),
        s(
            "max_queued_per_client",
            "--max-queued-per-client",
            "MCP_MAX_QUEUED_PER_CLIENT",
            "N",
            RequestsConfig::default().max_queue_per_client.to_string(),
            "warehouse calls one client may have waiting (raise it when many agents share an address, behind a NAT say)",
        ),
        s(
            "pool_size",
            "--pool-size",
            "MCP_POOL_SIZE",
            "N",
            PoolConfig::default().max_size.to_string(),
            "warehouse sessions at most",
        ),
        s(
            "pool_acquire_timeout",
            "--pool-acquire-timeout",
            "MCP_POOL_ACQUIRE_TIMEOUT",
            "DURATION",
            d(PoolConfig::default().acquire_timeout),
            "longest wait for a free warehouse session",
        ),
        s(
            "row_limit",
            "--row-limit",
            "MCP_ROW_LIMIT",
            "N",
            ToolsConfig::default().default_limit.to_string(),
            "rows execute_query returns when the call names no limit",
        ),
        s(
            "max_rows",
            "--max-rows",
            "MCP_MAX_ROWS",
            "N",
            ToolsConfig::default().max_limit.to_string(),
            "most rows a call may ask for",
        ),
        s(
            "max_result_bytes",
            "--max-result-bytes",
            "MCP_MAX_RESULT_BYTES",
            "BYTES",
            ToolsConfig::default().max_result_bytes.to_string(),
            "largest result a call returns",
        ),
    ]
}

/// The Snowflake settings a `[snowflake]` table may hold (`SNOWFLAKE_<KEY>`).
pub(super) const SNOWFLAKE_KEYS: [&str; 14] = [
    "account",
    "user",
    "password",
    "private_key_path",
    "private_key_passphrase",
    "authenticator",
    "token",
    "token_file_path",
    "query_tag_prefix",
    "role",
    "warehouse",
    "database",
    "schema",
    "base_url",
];

/// What `--help` says after the settings: the secrets that have no flag,
/// Snowflake's settings, and the value formats.
pub(super) const AFTER_HELP: &str = "\
Every setting comes from, in increasing precedence: its default, the TOML file named by
--config (or MCP_CONFIG; keys are the settings' names with _, as in max_body_bytes = 1024),
its environment variable, its flag. A bad value stops start-up and names the setting.

Keys (no flag: a command line is visible to every user of the machine):
  MCP_API_KEYS (api_keys in the file)  default: none (open)
      bearer tokens required on /mcp and /ws, comma-separated, each token[:readonly],
      16+ characters

Snowflake (the environment wins over the file's [snowflake] table, which wins over
connections.toml in $SNOWFLAKE_HOME, else ~/.snowflake/):
  SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or
  SNOWFLAKE_PRIVATE_KEY_PATH (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE), or
  SNOWFLAKE_AUTHENTICATOR=PROGRAMMATIC_ACCESS_TOKEN|OAUTH with SNOWFLAKE_TOKEN
  or SNOWFLAKE_TOKEN_FILE_PATH (read again at every login),
  SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA,
  SNOWFLAKE_BASE_URL (replaces https://ACCOUNT.snowflakecomputing.com),
  SNOWFLAKE_QUERY_TAG_PREFIX (starts every statement's QUERY_TAG; default
  snowflake-mcp, then tool=NAME client=NAME).
  Without any of them and without --sqlite, the built-in demo warehouse
  (SQLite, in memory) is served.

Durations: 30s, 500ms, 5m, 1h, or a number of seconds. Sizes in bytes.";

/// The command line and environment, as clap reads them: one argument per
/// setting of the table (but the keys), plus `--config`. Every value is
/// text here; the shown default is for `--help` only (a value clap took
/// from it counts as not given, so the file can still set it).
pub(super) fn command(specs: &[Spec]) -> clap::Command {
    let mut command = clap::Command::new("server")
        .about("The snowflake-mcp daemon: MCP over Streamable HTTP, WebSocket or stdio.")
        .after_help(AFTER_HELP)
        .allow_negative_numbers(true)
        .arg(
            clap::Arg::new("config")
                .long("config")
                .env("MCP_CONFIG")
                .value_name("FILE")
                .help("a TOML file of settings; its [snowflake] table takes the Snowflake settings below by their lower-case names (account = \"...\")"),
        );
    for spec in specs {
        let Some(flag) = spec.flag else { continue };
        let mut arg = clap::Arg::new(spec.key)
            .long(flag.trim_start_matches("--"))
            .env(spec.env)
            .value_name(spec.hint)
            .help(spec.help)
            .default_value(spec.default.clone());
        if spec.boolean {
            // `--protect-ops` alone means true.
            arg = arg.num_args(0..=1).default_missing_value("true");
        }
        command = command.arg(arg);
    }
    command
}
