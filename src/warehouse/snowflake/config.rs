//! Snowflake connection settings: from the environment and Snowflake's own
//! `connections.toml`, with secrets that never print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::pool::PoolConfig;

/// A secret string: `Debug` and `Display` show `***`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself (only where it is used).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnowflakeAuth {
    /// User and password.
    Password(Secret),
    /// Key-pair (JWT): an unencrypted PKCS#8 private key in PEM.
    KeyPair(Secret),
    /// A token obtained elsewhere: a programmatic access token or an
    /// OAuth access token (`authenticator` `PROGRAMMATIC_ACCESS_TOKEN` or
    /// `OAUTH` in `connections.toml`).
    Token {
        /// Which kind of token.
        kind: TokenKind,
        /// Where it is.
        source: TokenSource,
    },
}

/// The kinds of token Snowflake takes at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A programmatic access token (PAT), made in Snowflake for a user.
    Pat,
    /// An OAuth access token issued for Snowflake (Snowflake OAuth or an
    /// external authorization server).
    OAuth,
}

/// Where a login token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// The token itself (`token`, `SNOWFLAKE_TOKEN`).
    Value(Secret),
    /// A file holding it (`token_file_path`, `SNOWFLAKE_TOKEN_FILE_PATH`),
    /// read again at every login, so a token refreshed on disk by another
    /// program is picked up by the next session.
    File(PathBuf),
}

/// The largest token file read: 64 KiB (tokens are a few KiB at most).
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

impl TokenSource {
    /// The token now (a file's content, trimmed; a file of more than
    /// 64 KiB is refused). A file is read in the calling thread: the
    /// warehouse reads it at login on the blocking pool.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        match self {
            TokenSource::Value(s) => Ok(s.clone()),
            TokenSource::File(path) => {
                let cannot = |e: std::io::Error| {
                    err(
                        "SNOWFLAKE_TOKEN_FILE_PATH",
                        format!("cannot read {}: {e}", path.display()),
                    )
                };
                let mut text = String::new();
                let file = std::fs::File::open(path).map_err(cannot)?;
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(file, MAX_TOKEN_FILE_BYTES + 1),
                    &mut text,
                )
                .map_err(cannot)?;
                if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
                    return Err(err(
                        "SNOWFLAKE_TOKEN_FILE_PATH",
                        format!(
                            "{} is larger than {MAX_TOKEN_FILE_BYTES} bytes: not a token",
                            path.display()
                        ),
                    ));
                }
                let token = text.trim();
                if token.is_empty() {
                    return Err(err(
                        "SNOWFLAKE_TOKEN_FILE_PATH",
                        format!("{} is empty", path.display()),
                    ));
                }
                Ok(Secret::new(token))
            }
        }
    }
}

/// Settings of a Snowflake warehouse.
#[derive(Clone, Debug)]
pub struct SnowflakeConfig {
    /// The account identifier (`orgname-account` or `locator.region`).
    pub account: String,
    /// The user.
    pub user: String,
    /// How to log in.
    pub auth: SnowflakeAuth,
    /// Role, warehouse, database and schema of new sessions.
    pub role: Option<String>,
    /// The virtual warehouse that runs statements.
    pub warehouse: Option<String>,
    /// The default database.
    pub database: Option<String>,
    /// The default schema.
    pub schema: Option<String>,
    /// Replaces `https://{account}.snowflakecomputing.com` (proxies,
    /// PrivateLink, tests): scheme, host and port are rewritten on every request.
    pub base_url: Option<String>,
    /// The session pool.
    pub pool: PoolConfig,
    /// Sets `STATEMENT_TIMEOUT_IN_SECONDS` on new sessions, so Snowflake
    /// itself stops statements the client stopped waiting for. Default: none.
    pub statement_timeout: Option<std::time::Duration>,
    /// The start of every statement's `QUERY_TAG` (then the tool and the
    /// client), so `QUERY_HISTORY` shows who ran what. Default (`None`):
    /// `"snowflake-mcp"`.
    pub query_tag_prefix: Option<String>,
}

/// The default start of every statement's `QUERY_TAG`.
pub(crate) const DEFAULT_QUERY_TAG_PREFIX: &str = "snowflake-mcp";

/// A setting that is missing or wrong, named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting (an environment variable or a `connections.toml` key).
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

fn err(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}

/// Where settings come from, so tests can supply their own.
pub trait Source {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The user's home directory.
    fn home(&self) -> Option<PathBuf>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Env;

impl Source for Env {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

impl SnowflakeConfig {
    /// Reads the configuration the way Snowflake's own tools do: a named
    /// connection of `connections.toml` (in `SNOWFLAKE_HOME`, else
    /// `~/.snowflake/`; the name from `connection`, else
    /// `SNOWFLAKE_DEFAULT_CONNECTION_NAME`, else `default_connection_name` in
    /// `config.toml` or `connections.toml`, else `default`), with the
    /// `SNOWFLAKE_*` variables taking precedence. `None` when nothing names
    /// an account (so the caller can fall back to another warehouse).
    pub fn load(
        source: &impl Source,
        connection: Option<&str>,
    ) -> Result<Option<SnowflakeConfig>, ConfigError> {
        let dir = source
            .var("SNOWFLAKE_HOME")
            .map(PathBuf::from)
            .or_else(|| source.home().map(|h| h.join(".snowflake")));
        let file = match &dir {
            Some(dir) => read_connection(dir, source, connection)?,
            None if connection.is_some() => {
                return Err(err(
                    "--connection",
                    "no SNOWFLAKE_HOME or home directory to find connections.toml in",
                ));
            }
            None => BTreeMap::new(),
        };
        let get = |var: &str, key: &[&str]| -> Option<String> {
            source
                .var(var)
                .or_else(|| key.iter().find_map(|k| file.get(*k).cloned()))
        };
        let Some(account) = get("SNOWFLAKE_ACCOUNT", &["account", "accountname"]) else {
            return Ok(None);
        };
        let user = get("SNOWFLAKE_USER", &["user", "username"])
            .ok_or_else(|| err("SNOWFLAKE_USER", "missing (needed with SNOWFLAKE_ACCOUNT)"))?;
        let auth = auth_of(&get)?;
        let base_url = get("SNOWFLAKE_BASE_URL", &["base_url"]);
        if let Some(url) = &base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(err(
                "SNOWFLAKE_BASE_URL",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        Ok(Some(SnowflakeConfig {
            account,
            user,
            auth,
            role: get("SNOWFLAKE_ROLE", &["role"]),
            warehouse: get("SNOWFLAKE_WAREHOUSE", &["warehouse"]),
            database: get("SNOWFLAKE_DATABASE", &["database"]),
            schema: get("SNOWFLAKE_SCHEMA", &["schema"]),
            base_url,
            pool: PoolConfig::default(),
            statement_timeout: None,
            query_tag_prefix: get("SNOWFLAKE_QUERY_TAG_PREFIX", &["query_tag_prefix"]),
        }))
    }
}

/// How to log in, from the settings `get` reads: a token (PAT or OAuth,
/// named by the authenticator), a key pair, or a password.
fn auth_of(get: &dyn Fn(&str, &[&str]) -> Option<String>) -> Result<SnowflakeAuth, ConfigError> {
    let password = get("SNOWFLAKE_PASSWORD", &["password"]);
    let key_path = get(
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        &["private_key_path", "private_key_file"],
    );
    let passphrase = get(
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
        &["private_key_passphrase", "private_key_file_pwd"],
    );
    let authenticator =
        get("SNOWFLAKE_AUTHENTICATOR", &["authenticator"]).map(|a| a.to_ascii_uppercase());
    let token = match (
        get("SNOWFLAKE_TOKEN", &["token"]),
        get("SNOWFLAKE_TOKEN_FILE_PATH", &["token_file_path"]),
    ) {
        (Some(t), _) => Some(TokenSource::Value(Secret::new(t))),
        (None, Some(path)) => Some(TokenSource::File(PathBuf::from(path))),
        (None, None) => None,
    };
    Ok(match authenticator.as_deref() {
        Some(kind @ ("PROGRAMMATIC_ACCESS_TOKEN" | "OAUTH")) => {
            let Some(source) = token else {
                return Err(err(
                    "SNOWFLAKE_TOKEN",
                    format!(
                        "missing: authenticator {kind} needs SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH"
                    ),
                ));
            };
            // A file must be readable now: a wrong path fails at start.
            source.read()?;
            let kind = if kind == "OAUTH" {
                TokenKind::OAuth
            } else {
                TokenKind::Pat
            };
            SnowflakeAuth::Token { kind, source }
        }
        Some("SNOWFLAKE" | "SNOWFLAKE_JWT") | None => {
            if token.is_some() && authenticator.is_none() {
                return Err(err(
                    "SNOWFLAKE_AUTHENTICATOR",
                    "missing: a token needs authenticator PROGRAMMATIC_ACCESS_TOKEN or OAUTH",
                ));
            }
            match (key_path, password) {
                (Some(path), _) => {
                    SnowflakeAuth::KeyPair(read_key(Path::new(&path), passphrase.as_deref())?)
                }
                (None, Some(password)) => SnowflakeAuth::Password(Secret::new(password)),
                (None, None) => {
                    return Err(err(
                        "SNOWFLAKE_PASSWORD",
                        "missing: set SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY_PATH or a token",
                    ));
                }
            }
        }
        Some(other) => {
            return Err(err(
                "SNOWFLAKE_AUTHENTICATOR",
                format!(
                    "{other:?} is not supported here (SNOWFLAKE, SNOWFLAKE_JWT, \
                     PROGRAMMATIC_ACCESS_TOKEN or OAUTH)"
                ),
            ));
        }
    })
}

/// The string settings of the chosen connection of `connections.toml`.
fn read_connection(
    dir: &Path,
    source: &impl Source,
    connection: Option<&str>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let path = dir.join("connections.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(name) = connection {
                return Err(err(
                    "--connection",
                    format!("{name:?} asked for, but {} does not exist", path.display()),
                ));
            }
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(err(&path.display().to_string(), e.to_string())),
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(&path.display().to_string(), e.message().to_owned()))?;
    let config_default = std::fs::read_to_string(dir.join("config.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("default_connection_name")?
                .as_str()
                .map(str::to_owned)
        });
    let name = connection
        .map(str::to_owned)
        .or_else(|| source.var("SNOWFLAKE_DEFAULT_CONNECTION_NAME"))
        .or(config_default)
        .or_else(|| {
            table
                .get("default_connection_name")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "default".to_owned());
    let Some(section) = table.get(&name).and_then(toml::Value::as_table) else {
        if connection.is_some() {
            return Err(err(
                "--connection",
                format!("no connection {name:?} in {}", path.display()),
            ));
        }
        return Ok(BTreeMap::new());
    };
    Ok(section
        .iter()
        .filter_map(|(k, v)| match v {
            toml::Value::String(s) => Some((k.to_ascii_lowercase(), s.clone())),
            toml::Value::Integer(i) => Some((k.to_ascii_lowercase(), i.to_string())),
            _ => None,
        })
        .collect())
}

/// Reads a PKCS#8 private key (decrypting it with the passphrase when it is encrypted).
fn read_key(path: &Path, passphrase: Option<&str>) -> Result<Secret, ConfigError> {
    let setting = "SNOWFLAKE_PRIVATE_KEY_PATH";
    let pem = std::fs::read_to_string(path)
        .map_err(|e| err(setting, format!("cannot read {}: {e}", path.display())))?;
    if !pem.contains("ENCRYPTED PRIVATE KEY") {
        if !pem.contains("BEGIN PRIVATE KEY") {
            return Err(err(
                setting,
                "not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)",
            ));
        }
        return Ok(Secret::new(pem));
    }
    let Some(passphrase) = passphrase else {
        return Err(err(
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
            "missing: the private key is encrypted",
        ));
    };
    use pkcs8::der::pem::LineEnding;
    let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes())
        .map_err(|e| err(setting, format!("bad PEM: {e}")))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(err(setting, format!("unexpected PEM label {label:?}")));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| err(setting, format!("bad encrypted key: {e}")))?;
    let doc = info.decrypt(passphrase).map_err(|_| {
        err(
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
            "does not decrypt the private key",
        )
    })?;
    let plain = doc
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| err(setting, e.to_string()))?;
    Ok(Secret::new(plain.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake {
        vars: HashMap<&'static str, String>,
        home: Option<PathBuf>,
    }

    impl Source for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.home.clone()
        }
    }

    fn temp_home(files: &[(&str, &str)]) -> PathBuf {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random");
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let home = std::env::temp_dir().join(format!("snowflake-mcp-home-{name}"));
        std::fs::create_dir_all(home.join(".snowflake")).expect("mkdir");
        for (file, text) in files {
            std::fs::write(home.join(".snowflake").join(file), text).expect("write");
        }
        home
    }

    #[test]
    fn nothing_configured_is_none() {
        let f = Fake {
            vars: HashMap::new(),
            home: None,
        };
        assert_eq!(
            SnowflakeConfig::load(&f, None).map(|c| c.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn env_alone_and_secrets_hidden() {
        let vars = HashMap::from([
            ("SNOWFLAKE_ACCOUNT", "acme-prod".to_owned()),
            ("SNOWFLAKE_USER", "ada".to_owned()),
            ("SNOWFLAKE_PASSWORD", "hunter2".to_owned()),
            ("SNOWFLAKE_ROLE", "ANALYST".to_owned()),
        ]);
        let c = SnowflakeConfig::load(&Fake { vars, home: None }, None)
            .expect("ok")
            .expect("some");
        assert_eq!((c.account.as_str(), c.user.as_str()), ("acme-prod", "ada"));
        assert_eq!(c.role.as_deref(), Some("ANALYST"));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("***"),
            "{debug}"
        );
    }

    #[test]
    fn connections_toml_with_env_overrides() {
        let home = temp_home(&[(
            "connections.toml",
            "default_connection_name = \"dev\"\n[dev]\naccount = \"dev-acct\"\nuser = \"u\"\npassword = \"p\"\ndatabase = \"D\"\n[prod]\naccount = \"prod-acct\"\nuser = \"v\"\npassword = \"q\"\n",
        )]);
        let f = Fake {
            vars: HashMap::from([("SNOWFLAKE_DATABASE", "OVERRIDE".to_owned())]),
            home: Some(home.clone()),
        };
        let c = SnowflakeConfig::load(&f, None).expect("ok").expect("some");
        assert_eq!(
            (c.account.as_str(), c.database.as_deref()),
            ("dev-acct", Some("OVERRIDE"))
        );
        let c = SnowflakeConfig::load(&f, Some("prod"))
            .expect("ok")
            .expect("some");
        assert_eq!(c.account, "prod-acct");
        let e = SnowflakeConfig::load(&f, Some("nope")).expect_err("unknown connection");
        assert_eq!(e.setting, "--connection");
        let _ = std::fs::remove_dir_all(home);
    }

    #[test]
    fn missing_pieces_name_the_setting() {
        let f = Fake {
            vars: HashMap::from([("SNOWFLAKE_ACCOUNT", "a".to_owned())]),
            home: None,
        };
        assert_eq!(
            SnowflakeConfig::load(&f, None).expect_err("user").setting,
            "SNOWFLAKE_USER"
        );
        let f = Fake {
            vars: HashMap::from([
                ("SNOWFLAKE_ACCOUNT", "a".to_owned()),
                ("SNOWFLAKE_USER", "u".to_owned()),
            ]),
            home: None,
        };
        assert_eq!(
            SnowflakeConfig::load(&f, None).expect_err("auth").setting,
            "SNOWFLAKE_PASSWORD"
        );
        let f = Fake {
            vars: HashMap::from([
                ("SNOWFLAKE_ACCOUNT", "a".to_owned()),
                ("SNOWFLAKE_USER", "u".to_owned()),
                (
                    "SNOWFLAKE_PRIVATE_KEY_PATH",
                    "/nonexistent/key.p8".to_owned(),
                ),
            ]),
            home: None,
        };
        let e = SnowflakeConfig::load(&f, None).expect_err("key");
        assert_eq!(e.setting, "SNOWFLAKE_PRIVATE_KEY_PATH");
    }

    #[test]
    fn token_logins_from_connections_toml_and_the_environment() {
        let home = temp_home(&[(
            "connections.toml",
            "[pat]\naccount = \"a\"\nuser = \"u\"\nauthenticator = \"programmatic_access_token\"\ntoken = \"pat-secret\"\n\
             [oauth]\naccount = \"a\"\nuser = \"u\"\nauthenticator = \"OAUTH\"\ntoken_file_path = \"TOKEN_FILE\"\n\
             [bare]\naccount = \"a\"\nuser = \"u\"\ntoken = \"t\"\n",
        )]);
        let file = home.join("oauth-token");
        std::fs::write(&file, "  oauth-secret\n").expect("write");
        let text = std::fs::read_to_string(home.join(".snowflake/connections.toml")).expect("read");
        std::fs::write(
            home.join(".snowflake/connections.toml"),
            text.replace("TOKEN_FILE", &file.display().to_string()),
        )
        .expect("write");
        let f = Fake {
            vars: HashMap::new(),
            home: Some(home.clone()),
        };
        let pat = SnowflakeConfig::load(&f, Some("pat"))
            .expect("ok")
            .expect("some");
        assert_eq!(
            pat.auth,
            SnowflakeAuth::Token {
                kind: TokenKind::Pat,
                source: TokenSource::Value(Secret::new("pat-secret")),
            }
        );
        assert!(!format!("{pat:?}").contains("pat-secret"));
        let oauth = SnowflakeConfig::load(&f, Some("oauth"))
            .expect("ok")
            .expect("some");
        let SnowflakeAuth::Token { kind, source } = &oauth.auth else {
            panic!("{oauth:?}");
        };
        assert_eq!(*kind, TokenKind::OAuth);
        assert_eq!(source.read().expect("read").expose(), "oauth-secret");
        // A file far larger than any token is refused, not read whole.
        std::fs::write(&file, "x".repeat(1 << 20)).expect("write");
        let e = source.read().expect_err("too large");
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
        std::fs::write(&file, "  oauth-secret\n").expect("write");
        // A token without an authenticator is refused, naming the setting.
        let e = SnowflakeConfig::load(&f, Some("bare")).expect_err("no authenticator");
        assert_eq!(e.setting, "SNOWFLAKE_AUTHENTICATOR");
        // The environment wins; a missing token file fails at start.
        let f = Fake {
            vars: HashMap::from([("SNOWFLAKE_TOKEN_FILE_PATH", "/nonexistent/token".to_owned())]),
            home: Some(home.clone()),
        };
        let e = SnowflakeConfig::load(&f, Some("oauth")).expect_err("missing file");
        assert_eq!(e.setting, "SNOWFLAKE_TOKEN_FILE_PATH");
        let _ = std::fs::remove_dir_all(home);
    }
}
