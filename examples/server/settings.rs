//! The daemon's settings: one table, four sources.
//!
//! Each setting has a default, a key in the TOML file named by `--config`
//! (or `MCP_CONFIG`), an environment variable and (but for secrets) a flag.
//! Later sources win: default < file < environment < flag. Every value is
//! checked before anything starts, and a bad one stops start-up with a
//! message naming where it came from and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use snowflake_mcp::Config;
use snowflake_mcp::config;
use snowflake_mcp::ops::auth::Auth;
use snowflake_mcp::pool::{self, PoolConfig};
use snowflake_mcp::requests::{self, RequestsConfig};
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
use snowflake_mcp::tools::{self as mcp_tools, ToolsConfig};
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

fn specs() -> Vec<Spec> {
    let d = |d: Duration| format_duration(d);
    let s = |key, flag, env, hint, default: String, help| Spec {
        key,
        flag: Some(flag),
        env,
        hint,
        default,
        help,
        boolean: false,
    };
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
            config::DEFAULT_HOST.to_string(),
            "address to listen on",
        ),
        s(
            "port",
            "--port",
            "MCP_HTTP_PORT",
            "N",
            config::DEFAULT_PORT.to_string(),
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
        s(
            "max_connections",
            "--max-connections",
            "MCP_MAX_CONNECTIONS",
            "N",
            config::DEFAULT_MAX_CONNECTIONS.to_string(),
            "connections served at once (503 past it)",
        ),
        s(
            "max_body_bytes",
            "--max-body-bytes",
            "MCP_MAX_BODY_BYTES",
            "BYTES",
            config::DEFAULT_MAX_BODY_BYTES.to_string(),
            "largest request body (413 past it)",
        ),
        s(
            "head_timeout",
            "--head-timeout",
            "MCP_HEAD_TIMEOUT",
            "DURATION",
            d(config::DEFAULT_HEAD_TIMEOUT),
            "time to receive a request head (408 past it)",
        ),
        s(
            "keep_alive_timeout",
            "--keep-alive-timeout",
            "MCP_KEEP_ALIVE_TIMEOUT",
            "DURATION",
            d(config::DEFAULT_KEEP_ALIVE_TIMEOUT),
            "idle keep-alive connections close after this",
        ),
        s(
            "write_timeout",
            "--write-timeout",
            "MCP_WRITE_TIMEOUT",
            "DURATION",
            d(config::DEFAULT_WRITE_TIMEOUT),
            "a client not reading for this long is dropped",
        ),
        s(
            "shutdown_timeout",
            "--shutdown-timeout",
            "MCP_SHUTDOWN_TIMEOUT",
            "DURATION",
            d(config::DEFAULT_SHUTDOWN_TIMEOUT),
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
            d(streamable_http::DEFAULT_SESSION_IDLE),
            "Streamable HTTP sessions unused this long expire",
        ),
        s(
            "request_timeout",
            "--request-timeout",
            "MCP_REQUEST_TIMEOUT",
            "DURATION",
            d(requests::DEFAULT_TIMEOUT),
            "longest a warehouse call may take, queue included",
        ),
        s(
            "max_concurrent_requests",
            "--max-concurrent-requests",
            "MCP_MAX_CONCURRENT_REQUESTS",
            "N",
            requests::DEFAULT_MAX_CONCURRENT.to_string(),
            "warehouse calls running at once",
        ),
        s(
            "max_requests_per_client",
            "--max-requests-per-client",
            "MCP_MAX_REQUESTS_PER_CLIENT",
            "N",
            format!(
                "{} (SQLite: half the CPUs, at least 1)",
                requests::DEFAULT_MAX_PER_CLIENT
            ),
            "warehouse calls one client (key, or address without keys) may run at once",
        ),
        s(
            "max_queued_requests",
            "--max-queued-requests",
            "MCP_MAX_QUEUED_REQUESTS",
            "N",
            requests::DEFAULT_MAX_QUEUE.to_string(),
            "warehouse calls waiting (\"server busy\" past it)",
        ),
        s(
            "pool_size",
            "--pool-size",
            "MCP_POOL_SIZE",
            "N",
            pool::DEFAULT_MAX_SIZE.to_string(),
            "warehouse sessions at most",
        ),
        s(
            "pool_acquire_timeout",
            "--pool-acquire-timeout",
            "MCP_POOL_ACQUIRE_TIMEOUT",
            "DURATION",
            d(pool::DEFAULT_ACQUIRE_TIMEOUT),
            "longest wait for a free warehouse session",
        ),
        s(
            "row_limit",
            "--row-limit",
            "MCP_ROW_LIMIT",
            "N",
            mcp_tools::DEFAULT_ROW_LIMIT.to_string(),
            "rows execute_query returns when the call names no limit",
        ),
        s(
            "max_rows",
            "--max-rows",
            "MCP_MAX_ROWS",
            "N",
            mcp_tools::MAX_ROW_LIMIT.to_string(),
            "most rows a call may ask for",
        ),
        s(
            "max_result_bytes",
            "--max-result-bytes",
            "MCP_MAX_RESULT_BYTES",
            "BYTES",
            mcp_tools::DEFAULT_MAX_RESULT_BYTES.to_string(),
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

/// The help text, built from the table so it lists every setting with its
/// real default.
pub fn usage() -> String {
    let mut out = String::from(
        "usage: server [--config FILE] [--SETTING VALUE ...]\n\n\
         Every setting comes from, in increasing precedence: its default, the TOML\n\
         file named by --config (or MCP_CONFIG; keys as below), its environment\n\
         variable, its flag. A bad value stops start-up and names the setting.\n\n\
         \x20 --config FILE (MCP_CONFIG)\n\
         \x20     a TOML file of settings; its [snowflake] table takes the Snowflake\n\
         \x20     settings below by their lower-case names (account = \"...\")\n",
    );
    for spec in specs() {
        let flag = match spec.flag {
            Some(f) if spec.boolean => format!("{f}[=BOOL]"),
            Some(f) => format!("{f} {}", spec.hint),
            None => format!("[no flag] {}", spec.hint),
        };
        out.push_str(&format!(
            "  {flag} ({}, {} in the file)  default: {}\n      {}\n",
            spec.env, spec.key, spec.default, spec.help
        ));
    }
    out.push_str(
        "  -h, --help\n      print this help\n\n\
         Snowflake (the environment wins over the file's [snowflake] table, which\n\
         wins over connections.toml in $SNOWFLAKE_HOME, else ~/.snowflake/):\n\
         \x20 SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or\n\
         \x20 SNOWFLAKE_PRIVATE_KEY_PATH (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE), or\n\
         \x20 SNOWFLAKE_AUTHENTICATOR=PROGRAMMATIC_ACCESS_TOKEN|OAUTH with SNOWFLAKE_TOKEN\n\
         \x20 or SNOWFLAKE_TOKEN_FILE_PATH (read again at every login),\n\
         \x20 SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA,\n\
         \x20 SNOWFLAKE_BASE_URL (replaces https://ACCOUNT.snowflakecomputing.com),\n\
         \x20 SNOWFLAKE_QUERY_TAG_PREFIX (starts every statement's QUERY_TAG; default\n\
         \x20 snowflake-mcp, then tool=NAME client=NAME).\n\
         \x20 Without any of them and without --sqlite, the built-in demo warehouse\n\
         \x20 (SQLite, in memory) is served.\n\n\
         Durations: 30s, 500ms, 5m, 1h, or a number of seconds. Sizes in bytes.\n",
    );
    out
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
    /// How long a graceful shutdown waits (also in `config`).
    pub shutdown_timeout: Duration,
    /// The `[snowflake]` table of the file.
    pub snowflake_file: BTreeMap<String, String>,
}

/// Why the settings could not be read; `Help` when `--help` was asked for.
pub enum Problem {
    /// Print the usage and exit 0.
    Help,
    /// A bad setting: the message names it.
    Bad(String),
}

impl From<String> for Problem {
    fn from(s: String) -> Self {
        Problem::Bad(s)
    }
}

impl Settings {
    /// Reads the file, `env` and `args` (without the program name).
    pub fn load(
        args: impl IntoIterator<Item = String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Problem> {
        let specs = specs();
        let mut flags: Vec<(&'static str, String, &'static str)> = Vec::new();
        let mut config_file: Option<(PathBuf, Origin)> = env("MCP_CONFIG")
            .filter(|v| !v.is_empty())
            .map(|p| (PathBuf::from(p), Origin::Env("MCP_CONFIG")));
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(Problem::Help);
            }
            if flag == "--config" {
                let path = inline
                    .or_else(|| args.next())
                    .ok_or_else(|| "--config needs a file".to_owned())?;
                config_file = Some((PathBuf::from(path), Origin::Flag("--config")));
                continue;
            }
            let Some(spec) = specs.iter().find(|s| s.flag == Some(flag.as_str())) else {
                if flag == "--api-keys" {
                    return Err(Problem::Bad(
                        "--api-keys: keys are not taken on the command line (other users can read it); use MCP_API_KEYS or api_keys in the --config file".into(),
                    ));
                }
                return Err(Problem::Bad(format!(
                    "unknown argument {flag:?} (--help lists the settings)"
                )));
            };
            let name = spec.flag.unwrap_or_default();
            let value = match inline {
                Some(v) => v,
                None if spec.boolean => "true".into(),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a value ({})", spec.hint))?,
            };
            flags.push((spec.key, value, name));
        }
        let mut given = Given {
            values: BTreeMap::new(),
        };
        let mut snowflake_file = BTreeMap::new();
        if let Some((path, origin)) = config_file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{origin}: cannot read {}: {e}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
            for (key, value) in table {
                if key == "snowflake" {
                    let toml::Value::Table(t) = value else {
                        return Err(Problem::Bad(format!(
                            "snowflake (in {}): must be a table ([snowflake])",
                            path.display()
                        )));
                    };
                    for (k, v) in t {
                        if !SNOWFLAKE_KEYS.contains(&k.as_str()) {
                            return Err(Problem::Bad(format!(
                                "snowflake.{k} (in {}): not a Snowflake setting (one of {})",
                                path.display(),
                                SNOWFLAKE_KEYS.join(", ")
                            )));
                        }
                        let v = toml_text(&v).ok_or_else(|| {
                            format!("snowflake.{k} (in {}): must be a string", path.display())
                        })?;
                        snowflake_file.insert(k, v);
                    }
                    continue;
                }
                let Some(spec) = specs.iter().find(|s| s.key == key) else {
                    return Err(Problem::Bad(format!(
                        "{key} (in {}): not a setting (--help lists them)",
                        path.display()
                    )));
                };
                let text = toml_text(&value).ok_or_else(|| {
                    format!(
                        "{key} (in {}): must be a string, number, boolean or list",
                        path.display()
                    )
                })?;
                given
                    .values
                    .insert(spec.key, (text, Origin::File(spec.key, path.clone())));
            }
        }
        for spec in &specs {
            if let Some(v) = env(spec.env).filter(|v| !v.is_empty()) {
                given.values.insert(spec.key, (v, Origin::Env(spec.env)));
            }
        }
        for (key, value, flag) in flags {
            given.values.insert(key, (value, Origin::Flag(flag)));
        }
        let mut settings = given.check()?;
        settings.snowflake_file = snowflake_file;
        Ok(settings)
    }
}

/// A TOML value as the text an environment variable would hold.
fn toml_text(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_text)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        _ => return None,
    })
}

impl Given {
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
        let host = self.get("host", config::DEFAULT_HOST, |v| {
            v.parse::<IpAddr>()
                .map_err(|_| format!("{v:?} is not an IP address"))
        })?;
        let port = self.get("port", config::DEFAULT_PORT, |v| {
            v.parse::<u16>()
                .map_err(|_| format!("{v:?} is not a port number (0-65535)"))
        })?;
        let sqlite = self.get("sqlite", None, |v| Ok(Some(PathBuf::from(v))))?;
        let unix_socket = self.get("unix_socket", None, |v| Ok(Some(PathBuf::from(v))))?;
        let connection = self.get("connection", None, |v| Ok(Some(v.to_owned())))?;
        let guard = self.get("allow", SqlGuard::read_only(), |v| {
            let kinds = v
                .split(',')
                .map(|k| {
                    StatementKind::parse(k).ok_or_else(|| format!("{k:?} is not a statement kind"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SqlGuard::allowing(kinds))
        })?;
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
            for origin in &cors_origins {
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
        // Keys are never echoed back: a message names the entry, not the token.
        let auth = self.get("api_keys", Auth::new(), |v| {
            Auth::parse(v).map_err(|e| e.to_string())
        })?;
        let protect_ops = self.get("protect_ops", false, parse_bool)?;
        let auth = auth.protect_ops(protect_ops);
        let rate_limit = self.get("rate_limit", None, |v| {
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
        })?;
        let hsts = self.get("hsts_max_age", None, |v| {
            if v == "off" {
                Ok(None)
            } else {
                parse_duration(v).map(Some)
            }
        })?;
        let count = |key: &str, default: usize| {
            self.get(key, default, |v| match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{v:?} is not a positive whole number")),
            })
        };
        let duration = |key: &str, default: Duration| {
            self.get(key, default, |v| {
                let d = parse_duration(v)?;
                if d.is_zero() {
                    return Err(format!("{v:?}: must be more than zero"));
                }
                Ok(d)
            })
        };
        let shutdown_timeout = duration("shutdown_timeout", config::DEFAULT_SHUTDOWN_TIMEOUT)?;
        let config = Config::new()
            .host(host)
            .port(port)
            .max_connections(count("max_connections", config::DEFAULT_MAX_CONNECTIONS)?)
            .max_body_bytes(count("max_body_bytes", config::DEFAULT_MAX_BODY_BYTES)?)
            .head_timeout(duration("head_timeout", config::DEFAULT_HEAD_TIMEOUT)?)
            .keep_alive_timeout(duration(
                "keep_alive_timeout",
                config::DEFAULT_KEEP_ALIVE_TIMEOUT,
            )?)
            .write_timeout(duration("write_timeout", config::DEFAULT_WRITE_TIMEOUT)?)
            .shutdown_timeout(shutdown_timeout)
            .security_headers(hsts)
            .cors(cors_origins.clone());
        let per_client_set = self.values.contains_key("max_requests_per_client");
        let requests = RequestsConfig {
            timeout: duration("request_timeout", requests::DEFAULT_TIMEOUT)?,
            max_concurrent: count("max_concurrent_requests", requests::DEFAULT_MAX_CONCURRENT)?,
            max_per_client: count("max_requests_per_client", requests::DEFAULT_MAX_PER_CLIENT)?,
            max_queue: count("max_queued_requests", requests::DEFAULT_MAX_QUEUE)?,
            ..RequestsConfig::default()
        };
        let pool = PoolConfig {
            max_size: count("pool_size", pool::DEFAULT_MAX_SIZE)?,
            acquire_timeout: duration("pool_acquire_timeout", pool::DEFAULT_ACQUIRE_TIMEOUT)?,
            ..PoolConfig::default()
        };
        let max_rows = count("max_rows", mcp_tools::MAX_ROW_LIMIT)?;
        let row_limit = count("row_limit", mcp_tools::DEFAULT_ROW_LIMIT)?;
        if row_limit > max_rows {
            return Err(format!(
                "row_limit: {row_limit} is more than max_rows ({max_rows})"
            ));
        }
        let tools = ToolsConfig {
            guard,
            default_limit: row_limit,
            max_limit: max_rows,
            max_result_bytes: count("max_result_bytes", mcp_tools::DEFAULT_MAX_RESULT_BYTES)?,
        };
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
            max_sessions: count(
                "max_sessions",
                streamable_http::HttpMcpConfig::default().max_sessions,
            )?,
            session_idle: duration(
                "session_idle_timeout",
                streamable_http::DEFAULT_SESSION_IDLE,
            )?,
            shutdown_timeout,
            snowflake_file: BTreeMap::new(),
        })
    }
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
