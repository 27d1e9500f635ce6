//! The daemon's settings: one table, four sources.
//!
//! Each setting has a default, a key in the TOML file named by `--config`
//! (or `MCP_CONFIG`), an environment variable and (but for secrets) a flag.
//! Later sources win: default < file < environment < flag. clap reads the
//! flags and the environment (and writes `--help` from the table); serde and
//! toml read the file. Values stay text until one check parses them all, so
//! every value is checked before anything starts, and a bad one stops
//! start-up with a message naming where it came from and what is wrong.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use snowflake_mcp::Config;
use snowflake_mcp::guard::auth::Auth;
use snowflake_mcp::http::Cors;
use snowflake_mcp::pool::PoolConfig;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
use snowflake_mcp::transport::streamable_http;
use snowflake_mcp::warehouse::snowflake::Source;

/// Where the daemon serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A socket: Streamable HTTP on `/mcp`, WebSocket on `/ws`, operations endpoints.
    Http,
    /// MCP on stdin/stdout.
    Stdio,
}

/// One setting: its names in every source, its default and what it does.
struct Spec {
    key: &'static str,
    /// `None` for secrets, which a command line would show to every user of the machine.
    flag: Option<&'static str>,
    env: &'static str,
    /// What the value looks like, in the help.
    hint: &'static str,
    default: String,
    help: &'static str,
    /// A flag that may stand alone (`--protect-ops` means true).
    boolean: bool,
}

/// One setting with a flag: `key` in the file, `flag`, variable `env`.
fn spec(
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
fn specs() -> Vec<Spec> {
    let mut all = serving_specs();
    all.extend(admission_specs());
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
            "requests per second per client address on /mcp and /ws (burst default: twice the rate); 429 past it",
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
            "max_body_bytes",
            "--max-body-bytes",
            "MCP_MAX_BODY_BYTES",
            "BYTES",
            Config::default().max_body_bytes.to_string(),
            "largest request body (413 past it)",
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
const SNOWFLAKE_KEYS: [&str; 14] = [
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
const AFTER_HELP: &str = "\
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
fn command(specs: &[Spec]) -> clap::Command {
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

/// Where a value came from, for messages.
#[derive(Clone, Debug)]
enum Origin {
    File(&'static str, PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(key, path) => write!(f, "{key} (in {})", path.display()),
            Origin::Env(var) => f.write_str(var),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

/// What the sources said, before checking.
struct Given {
    values: BTreeMap<&'static str, (String, Origin)>,
}

/// Every setting, checked.
pub struct Settings {
    /// The HTTP server's configuration (address, limits, headers, CORS).
    pub config: Config,
    /// Where to serve.
    pub transport: Transport,
    /// A Unix socket to serve HTTP on instead of host:port.
    pub unix_socket: Option<PathBuf>,
    /// A SQLite file to serve instead of Snowflake or the demo.
    pub sqlite: Option<PathBuf>,
    /// The named connection of `connections.toml`.
    pub connection: Option<String>,
    /// Origins allowed (CORS and the Origin check).
    pub cors_origins: Vec<String>,
    /// `Host` names answered (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Bearer keys (empty: open).
    pub auth: Auth,
    /// Whether `max_requests_per_client` was set (else it follows the warehouse).
    pub per_client_set: bool,
    /// Per-client limit: requests per second and burst.
    pub rate_limit: Option<(f64, u32)>,
    /// Log lines as JSON.
    pub json_logs: bool,
    /// The log filter.
    pub log_filter: tracing_subscriber::EnvFilter,
    /// The request manager's limits.
    pub requests: RequestsConfig,
    /// The warehouse pool's limits.
    pub pool: PoolConfig,
    /// The tools' limits and statement allow-list.
    pub tools: ToolsConfig,
    /// Streamable HTTP session limits.
    pub max_sessions: usize,
    /// Streamable HTTP session idle expiry.
    pub session_idle: Duration,
    /// The `[snowflake]` table of the file.
    pub snowflake_file: BTreeMap<String, String>,
}

/// Why the settings could not be read; `Help` when `--help` was asked for.
pub enum Problem {
    /// Print this (the help) and exit 0.
    Help(String),
    /// A bad setting: the message names it.
    Bad(String),
}

impl From<String> for Problem {
    fn from(s: String) -> Self {
        Problem::Bad(s)
    }
}

/// A value of the settings file: text, a number, a boolean or a list of
/// them, read as the text an environment variable would hold.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FileValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    List(Vec<FileValue>),
}

impl FileValue {
    fn text(&self) -> String {
        match self {
            FileValue::Text(s) => s.clone(),
            FileValue::Integer(i) => i.to_string(),
            FileValue::Float(f) => f.to_string(),
            FileValue::Boolean(b) => b.to_string(),
            FileValue::List(items) => items
                .iter()
                .map(FileValue::text)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The settings file: settings by key, and the `[snowflake]` table.
#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    snowflake: BTreeMap<String, String>,
    #[serde(flatten)]
    settings: BTreeMap<String, FileValue>,
}

impl File {
    /// Reads and checks the file at `path` (named by `origin`).
    fn read(path: &std::path::Path, origin: &Origin) -> Result<File, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{origin}: cannot read {}: {e}", path.display()))?;
        text.parse::<toml::Table>()
            .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| {
            format!(
                "{}: settings are text, numbers, booleans or lists, and [snowflake] holds text: {e}",
                path.display()
            )
        })?;
        for key in file.snowflake.keys() {
            if !SNOWFLAKE_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "snowflake.{key} (in {}): not a Snowflake setting (one of {})",
                    path.display(),
                    SNOWFLAKE_KEYS.join(", ")
                ));
            }
        }
        Ok(file)
    }
}

impl Settings {
    /// Reads the file, the environment and `args` (without the program name).
    pub fn load(args: impl IntoIterator<Item = String>) -> Result<Settings, Problem> {
        let specs = specs();
        let args: Vec<String> = args.into_iter().collect();
        if args
            .iter()
            .any(|a| a == "--api-keys" || a.starts_with("--api-keys="))
        {
            return Err(Problem::Bad(
                "--api-keys: keys are not taken on the command line (other users can read it); use MCP_API_KEYS or api_keys in the --config file".into(),
            ));
        }
        let matches = match command(&specs).try_get_matches_from(
            std::iter::once(OsString::from("server")).chain(args.into_iter().map(OsString::from)),
        ) {
            Ok(m) => m,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                return Err(Problem::Help(e.render().to_string()));
            }
            Err(e) => {
                // clap's first line says what is wrong; main adds where help is.
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                return Err(Problem::Bad(first.trim_start_matches("error: ").to_owned()));
            }
        };
        // Only what a flag or a variable set: clap's defaults are for `--help`.
        let given_by = |id: &str| -> Option<(String, clap::parser::ValueSource)> {
            let source = matches.value_source(id)?;
            if source == clap::parser::ValueSource::DefaultValue {
                return None;
            }
            let value = matches.get_one::<String>(id)?.clone();
            (source != clap::parser::ValueSource::EnvVariable || !value.is_empty())
                .then_some((value, source))
        };
        let mut given = Given {
            values: BTreeMap::new(),
        };
        let mut snowflake_file = BTreeMap::new();
        if let Some((path, source)) = given_by("config") {
            let origin = match source {
                clap::parser::ValueSource::CommandLine => Origin::Flag("--config"),
                _ => Origin::Env("MCP_CONFIG"),
            };
            let path = PathBuf::from(path);
            let file = File::read(&path, &origin)?;
            for (key, value) in &file.settings {
                let Some(spec) = specs.iter().find(|s| s.key == key) else {
                    return Err(Problem::Bad(format!(
                        "{key} (in {}): not a setting (--help lists them)",
                        path.display()
                    )));
                };
                given.values.insert(
                    spec.key,
                    (value.text(), Origin::File(spec.key, path.clone())),
                );
            }
            snowflake_file = file.snowflake;
        }
        for spec in &specs {
            let Some(flag) = spec.flag else {
                // The keys: from the environment only (never a flag).
                if let Some(v) = std::env::var(spec.env).ok().filter(|v| !v.is_empty()) {
                    given.values.insert(spec.key, (v, Origin::Env(spec.env)));
                }
                continue;
            };
            if let Some((value, source)) = given_by(spec.key) {
                let origin = match source {
                    clap::parser::ValueSource::CommandLine => Origin::Flag(flag),
                    _ => Origin::Env(spec.env),
                };
                given.values.insert(spec.key, (value, origin));
            }
        }
        let mut settings = given.check()?;
        settings.snowflake_file = snowflake_file;
        Ok(settings)
    }
}

impl Given {
    /// The address to listen on.
    fn host(&self) -> Result<IpAddr, String> {
        self.get("host", Config::default().host, |v| {
            v.parse::<IpAddr>()
                .map_err(|_| format!("{v:?} is not an IP address"))
        })
    }

    /// The HTTP server's configuration: address, limits, timeouts, headers, CORS.
    fn http_config(&self, cors_origins: &[String]) -> Result<Config, String> {
        let port = self.get("port", Config::default().port, |v| {
            v.parse::<u16>()
                .map_err(|_| format!("{v:?} is not a port number (0-65535)"))
        })?;
        let hsts = self.get("hsts_max_age", None, |v| {
            if v == "off" {
                Ok(None)
            } else {
                parse_duration(v).map(Some)
            }
        })?;
        let count = |key: &str, default: usize| self.count(key, default);
        let duration = |key: &str, default: Duration| self.duration(key, default);
        Ok(Config {
            host: self.host()?,
            port,
            max_connections: count("max_connections", Config::default().max_connections)?,
            max_body_bytes: count("max_body_bytes", Config::default().max_body_bytes)?,
            head_timeout: duration("head_timeout", Config::default().head_timeout)?,
            keep_alive_timeout: duration(
                "keep_alive_timeout",
                Config::default().keep_alive_timeout,
            )?,
            write_timeout: duration("write_timeout", Config::default().write_timeout)?,
            shutdown_timeout: duration("shutdown_timeout", Config::default().shutdown_timeout)?,
            security_headers: true,
            hsts_max_age: hsts,
            cors: (!cors_origins.is_empty()).then(|| Cors::origins(cors_origins.to_vec())),
            ..Config::default()
        })
    }

    /// A positive whole number.
    fn count(&self, key: &str, default: usize) -> Result<usize, String> {
        self.get(key, default, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{v:?} is not a positive whole number")),
        })
    }

    /// A duration of more than zero.
    fn duration(&self, key: &str, default: Duration) -> Result<Duration, String> {
        self.get(key, default, |v| {
            let d = parse_duration(v)?;
            if d.is_zero() {
                return Err(format!("{v:?}: must be more than zero"));
            }
            Ok(d)
        })
    }

    /// `Host` names answered: as set, else loopback names on loopback; the
    /// hosts of the CORS origins are added.
    fn allowed_hosts(&self, host: IpAddr, cors_origins: &[String]) -> Result<Vec<String>, String> {
        let mut allowed_hosts = self.get("allowed_hosts", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| {
                    if h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
                    {
                        Ok(h.to_ascii_lowercase())
                    } else {
                        Err(format!("{h:?} is not a host name"))
                    }
                })
                .collect()
        })?;
        if allowed_hosts.is_empty() && host.is_loopback() {
            // On loopback only loopback names can be meant: another name is
            // a DNS name rebound to this machine by a web page.
            allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
                .map(String::from)
                .to_vec();
        }
        if !allowed_hosts.is_empty() {
            for origin in cors_origins {
                if let Some((_, authority)) = origin.split_once("://") {
                    let name = authority.rsplit_once(':').map_or(authority, |(h, p)| {
                        if p.bytes().all(|b| b.is_ascii_digit()) {
                            h
                        } else {
                            authority
                        }
                    });
                    allowed_hosts.push(name.to_ascii_lowercase());
                }
            }
        }
        Ok(allowed_hosts)
    }

    /// The request manager's and the pool's limits.
    fn limits(&self) -> Result<(RequestsConfig, PoolConfig), String> {
        let count = |key: &str, default: usize| self.count(key, default);
        let duration = |key: &str, default: Duration| self.duration(key, default);
        let requests = RequestsConfig {
            timeout: duration("request_timeout", RequestsConfig::default().timeout)?,
            max_concurrent: count(
                "max_concurrent_requests",
                RequestsConfig::default().max_concurrent,
            )?,
            max_per_client: count(
                "max_requests_per_client",
                RequestsConfig::default().max_per_client,
            )?,
            max_queue: count("max_queued_requests", RequestsConfig::default().max_queue)?,
            ..RequestsConfig::default()
        };
        let pool = PoolConfig {
            max_size: count("pool_size", PoolConfig::default().max_size)?,
            acquire_timeout: duration(
                "pool_acquire_timeout",
                PoolConfig::default().acquire_timeout,
            )?,
            ..PoolConfig::default()
        };
        Ok((requests, pool))
    }

    /// The tools' row limits, byte cap and statement allow-list.
    fn tools(&self, guard: SqlGuard) -> Result<ToolsConfig, String> {
        let count = |key: &str, default: usize| self.count(key, default);
        let max_rows = count("max_rows", ToolsConfig::default().max_limit)?;
        let row_limit = count("row_limit", ToolsConfig::default().default_limit)?;
        if row_limit > max_rows {
            return Err(format!(
                "row_limit: {row_limit} is more than max_rows ({max_rows})"
            ));
        }
        let tools = ToolsConfig {
            guard,
            default_limit: row_limit,
            max_limit: max_rows,
            max_result_bytes: count("max_result_bytes", ToolsConfig::default().max_result_bytes)?,
        };
        Ok(tools)
    }

    /// The value of `key` parsed by `parse`, or `default` when no source set it.
    fn get<T>(
        &self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some((value, origin)) => parse(value.trim()).map_err(|why| format!("{origin}: {why}")),
        }
    }

    fn check(&self) -> Result<Settings, String> {
        let transport = self.get("transport", Transport::Http, |v| match v {
            "http" => Ok(Transport::Http),
            "stdio" => Ok(Transport::Stdio),
            _ => Err(format!("{v:?} is not one of http, stdio")),
        })?;
        let sqlite = self.get("sqlite", None, |v| Ok(Some(PathBuf::from(v))))?;
        let unix_socket = self.get("unix_socket", None, |v| Ok(Some(PathBuf::from(v))))?;
        let connection = self.get("connection", None, |v| Ok(Some(v.to_owned())))?;
        let guard = self.get("allow", SqlGuard::read_only(), parse_allow)?;
        let json_logs = self.get("log_format", false, |v| match v {
            "json" => Ok(true),
            "text" => Ok(false),
            _ => Err(format!("{v:?} is not one of text, json")),
        })?;
        let log_filter = self.get("log", tracing_subscriber::EnvFilter::new("info"), |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map_err(|e| format!("{v:?} is not a log filter: {e}"))
        })?;
        let log_filter = cap_secret_logs(log_filter);
        let cors_origins = self.get("cors_origins", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| check_origin(o).map(|()| o.to_owned()))
                .collect()
        })?;
        // Keys are never echoed back: a message names the entry, not the token.
        let auth = self.get("api_keys", Auth::new(), |v| {
            Auth::parse(v).map_err(|e| e.to_string())
        })?;
        let protect_ops = self.get("protect_ops", false, parse_bool)?;
        let auth = auth.protect_ops(protect_ops);
        let rate_limit = self.get("rate_limit", None, parse_rate)?;
        let config = self.http_config(&cors_origins)?;
        let allowed_hosts = self.allowed_hosts(self.host()?, &cors_origins)?;
        let per_client_set = self.values.contains_key("max_requests_per_client");
        let (requests, pool) = self.limits()?;
        let tools = self.tools(guard)?;
        Ok(Settings {
            config,
            transport,
            unix_socket,
            sqlite,
            connection,
            cors_origins,
            allowed_hosts,
            per_client_set,
            auth,
            rate_limit,
            json_logs,
            log_filter,
            requests,
            pool,
            tools,
            max_sessions: self.count(
                "max_sessions",
                streamable_http::HttpMcpConfig::default().max_sessions,
            )?,
            session_idle: self.duration(
                "session_idle_timeout",
                streamable_http::HttpMcpConfig::default().session_idle,
            )?,
            snowflake_file: BTreeMap::new(),
        })
    }
}

/// `off`, or `RATE[:BURST]` requests per second (burst default: twice the rate).
fn parse_rate(v: &str) -> Result<Option<(f64, u32)>, String> {
    if v == "off" {
        return Ok(None);
    }
    let (rate, burst) = v.split_once(':').unwrap_or((v, ""));
    let rate: f64 = match rate.parse() {
        Ok(r) if r > 0.0 && f64::is_finite(r) => r,
        _ => {
            return Err(format!(
                "{rate:?} is not a positive number of requests per second"
            ));
        }
    };
    let burst = if burst.is_empty() {
        (rate * 2.0).ceil().min(f64::from(u32::MAX)) as u32
    } else {
        match burst.parse::<u32>() {
            Ok(b) if b > 0 => b,
            _ => return Err(format!("burst {burst:?} is not a positive whole number")),
        }
    };
    Ok(Some((rate, burst)))
}

/// Statement kinds, comma-separated.
fn parse_allow(v: &str) -> Result<SqlGuard, String> {
    let kinds = v
        .split(',')
        .map(|k| StatementKind::parse(k).ok_or_else(|| format!("{k:?} is not a statement kind")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SqlGuard::allowing(kinds))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (true/false, 1/0)")),
    }
}

/// `scheme://host[:port]`, as browsers send in `Origin`.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("{origin:?} is not an origin (http:// or https://)"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{origin:?} is not an origin (scheme://host[:port], no path)"
        ));
    }
    Ok(())
}

/// `30s`, `500ms`, `5m`, `1h`, or a bare number of seconds.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (30s, 500ms, 5m, 1h)");
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if secs % 3600 == 0 && secs > 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 && secs > 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Snowflake settings: the environment first, then the file's `[snowflake]` table.
pub struct Layered<'a> {
    /// The `[snowflake]` table.
    pub file: &'a BTreeMap<String, String>,
}

impl Source for Layered<'_> {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                let key = name.strip_prefix("SNOWFLAKE_")?.to_ascii_lowercase();
                self.file.get(&key).cloned()
            })
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

/// Crates whose own log lines can carry secrets below `info`: the HTTP
/// client and its middleware can log requests (with their `Authorization`
/// headers) at `debug` and `trace`. Whatever the filter says, they log at
/// `info` at most.
pub const SECRET_BEARING_TARGETS: [&str; 3] = ["reqwest", "reqwest_middleware", "reqwest_retry"];

/// Whether `target` is one of [`SECRET_BEARING_TARGETS`] or a module of one.
fn is_secret_bearing(target: &str) -> bool {
    SECRET_BEARING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// `filter` with [`SECRET_BEARING_TARGETS`] capped at `info` (for events
/// those crates emit through `tracing`).
fn cap_secret_logs(mut filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    for target in SECRET_BEARING_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// A layer that drops events of [`SECRET_BEARING_TARGETS`] below `info`,
/// including those that come through the `log` crate: the bridge gives
/// them all one target (`log`), so a target filter never sees whose they
/// are; their own target is read from the event itself.
pub struct CapSecretLogs;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CapSecretLogs {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        use tracing_log::NormalizeEvent as _;
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        !(is_secret_bearing(metadata.target()) && *metadata.level() > tracing::Level::INFO)
    }
}
