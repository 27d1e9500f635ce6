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
use snowflake_mcp::transport::websocket::WsConfig;
use snowflake_mcp::warehouse::snowflake::Source;

/// Where the daemon serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A socket: Streamable HTTP on `/mcp`, WebSocket on `/ws`, operations endpoints.
    Http,
    /// MCP on stdin/stdout.
    Stdio,
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
    /// Keys every replica seals client-carried state with.
    pub state_keys: Vec<[u8; 32]>,
    /// How long `/ready` says 503 before a SIGTERM's graceful shutdown.
    pub drain_grace: Duration,
    /// The Redis URL tasks are kept at (never logged), and the key prefix.
    pub tasks_redis: Option<(String, String)>,
    /// Whether connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// TLS: the certificate and how often its files are checked (always
    /// `None` without the `tls` feature).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub tls: tls::TlsSettings,
    /// OAuth 2.1 access tokens required (with `oauth_issuer`).
    pub oauth: Option<std::sync::Arc<snowflake_mcp::guard::oauth::OAuth>>,
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
    /// The WebSocket endpoint's limits.
    pub ws: WsConfig,
    /// glibc's threshold for mapping allocations on their own, pinned
    /// (`None`: glibc's own, which rises).
    pub malloc_mmap_threshold: Option<usize>,
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
        let max_body_bytes = count("max_body_bytes", Config::default().max_body_bytes)?;
        let max_large_bodies_bytes =
            self.bound_of_all("max_large_bodies_bytes", "max_body_bytes", max_body_bytes)?;
        Ok(Config {
            host: self.host()?,
            port,
            max_connections: count("max_connections", Config::default().max_connections)?,
            max_connections_per_client: self.get("max_connections_per_client", None, |v| {
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{v:?} is not a positive whole number")),
                }
            })?,
            max_body_bytes,
            max_large_bodies_bytes,
            max_backlog_bytes: count("max_backlog_bytes", Config::default().max_backlog_bytes)?,
            memory_budget_bytes: count(
                "memory_budget_bytes",
                Config::default().memory_budget_bytes,
            )?,
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

    /// A bound on what all connections hold at once of large bodies or
    /// messages: unset, or a whole number no less than `limit` (the
    /// setting `limit_key`'s value), so one largest always fits.
    fn bound_of_all(
        &self,
        key: &str,
        limit_key: &str,
        limit: usize,
    ) -> Result<Option<usize>, String> {
        self.get(key, None, |v| match v.parse::<usize>() {
            Ok(n) if n >= limit => Ok(Some(n)),
            Ok(_) => Err(format!(
                "{v:?} is less than {limit_key} ({limit}): no largest one would fit"
            )),
            _ => Err(format!("{v:?} is not a positive whole number")),
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
            max_queue_per_client: count(
                "max_queued_per_client",
                RequestsConfig::default().max_queue_per_client,
            )?,
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
            query_task_after: self
                .get("query_task_after", None, |v| parse_duration(v).map(Some))?,
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
        let mut config = self.http_config(&cors_origins)?;
        let tls = self.tls(&mut config)?;
        let allowed_hosts = self.allowed_hosts(self.host()?, &cors_origins)?;
        let oauth = self.oauth(config.host, config.port)?;
        let state_keys = self.state_keys()?;
        let drain_grace = self.get("drain_grace", Duration::ZERO, parse_duration)?;
        let tasks_redis = self
            .get("tasks_redis", None, |v| Ok(Some(v.to_owned())))?
            .map(|url| {
                let prefix = self.get("tasks_prefix", "mcp:".to_owned(), |v| Ok(v.to_owned()));
                prefix.map(|p| (url, p))
            })
            .transpose()?;
        let proxy_protocol = self.get("proxy_protocol", false, parse_bool)?;
        config.trusted_proxies = self.trusted_proxies()?;
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
            state_keys,
            drain_grace,
            tasks_redis,
            proxy_protocol,
            tls,
            oauth,
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
            ws: self.ws_config()?,
            malloc_mmap_threshold: self.get("malloc_mmap_threshold", None, parse_threshold)?,
            snowflake_file: BTreeMap::new(),
        })
    }

    /// The WebSocket endpoint's limits: message bytes, requests in flight,
    /// bytes queued for a client, and its times.
    fn ws_config(&self) -> Result<WsConfig, String> {
        let defaults = WsConfig::default();
        let max_message_bytes = self.count("ws_max_message_bytes", defaults.max_message_bytes)?;
        Ok(WsConfig {
            max_message_bytes,
            max_in_flight: self.count("ws_max_in_flight", defaults.max_in_flight)?,
            max_queued_bytes: self.count("ws_max_queued_bytes", defaults.max_queued_bytes)?,
            send_timeout: self.duration("ws_send_timeout", defaults.send_timeout)?,
            ping_interval: self.duration("ws_ping_interval", defaults.ping_interval)?,
            pong_timeout: self.duration("ws_pong_timeout", defaults.pong_timeout)?,
            doze_after: self.duration("ws_doze_after", defaults.doze_after)?,
            ..defaults
        })
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

mod file;
mod logs;
mod oauth;
mod replicas;
mod table;
mod tls;
mod values;

use file::File;
pub use logs::CapSecretLogs;
use logs::cap_secret_logs;
use table::{SNOWFLAKE_KEYS, command, specs};
use values::{check_origin, format_duration, parse_allow, parse_bool, parse_duration, parse_rate};

/// `off`, or a threshold in bytes glibc takes, on a build whose allocator
/// is glibc's.
fn parse_threshold(v: &str) -> Result<Option<usize>, String> {
    if v == "off" {
        return Ok(None);
    }
    if !crate::malloc::AVAILABLE {
        return Err("only glibc's allocator has this threshold (use off)".to_owned());
    }
    match v.parse::<usize>() {
        Ok(n) if (1..=crate::malloc::MAX_THRESHOLD).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{v:?} is not off or a number of bytes from 1 to {}",
            crate::malloc::MAX_THRESHOLD
        )),
    }
}
