//! Logging in and keeping a session: the login request for each way of
//! authenticating (password, key pair, programmatic access token, OAuth
//! access token), the session and master tokens with their validity,
//! renewal (`/session/token-request`), heartbeat (`/session/heartbeat`) and
//! logout.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::config::{Secret, SnowflakeAuth, SnowflakeConfig, TokenKind};
use super::rest::{ACCEPT_JSON, Call, Rest, request_id};
use crate::warehouse::{ErrorKind, WarehouseError};

/// What this client calls itself in Snowflake's login history.
const CLIENT_APP_ID: &str = "snowflake-mcp";

/// A session's tokens and when they stop working.
pub(crate) struct Tokens {
    /// Sent with every request of the session.
    pub session: Secret,
    /// Renews the session token.
    pub master: Secret,
    /// When the session token expires (by our clock).
    pub session_expires: Instant,
    /// How long a session token lasts.
    pub session_validity: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("session_validity", &self.session_validity)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Whether the session token should be renewed before it is used: it
    /// has less than a quarter of its life (at most five minutes) left.
    pub fn renewal_due(&self) -> bool {
        let margin = (self.session_validity / 4).min(Duration::from_secs(300));
        Instant::now() + margin >= self.session_expires
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginData {
    token: String,
    #[serde(default)]
    master_token: Option<String>,
    #[serde(default)]
    validity_in_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenewData {
    session_token: String,
    #[serde(default)]
    master_token: Option<String>,
    #[serde(default, alias = "validityInSecondsST")]
    validity_in_seconds: Option<f64>,
}

/// Session tokens last an hour unless Snowflake says otherwise.
const DEFAULT_VALIDITY: Duration = Duration::from_secs(3600);

/// A validity in seconds, if it is one (finite, positive, under a year).
fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0 && s < 365.0 * 86_400.0).then(|| Duration::from_secs_f64(s))
}

/// The account name part of an identifier (`xy12345` of `xy12345.eu-west-1`).
fn account_name(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

/// The login body's `data` for these settings: the common fields, and the
/// credentials of the chosen way in.
fn login_body(config: &SnowflakeConfig) -> Result<serde_json::Value, WarehouseError> {
    let mut data = json!({
        "CLIENT_APP_ID": CLIENT_APP_ID,
        "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
        "SVN_REVISION": "",
        "ACCOUNT_NAME": account_name(&config.account),
        "LOGIN_NAME": config.user,
        "CLIENT_ENVIRONMENT": {
            "APPLICATION": CLIENT_APP_ID,
            "OS": std::env::consts::OS,
            "OS_VERSION": std::env::consts::ARCH,
        },
        "SESSION_PARAMETERS": {"CLIENT_VALIDATE_DEFAULT_PARAMETERS": true},
    });
    let fields = &mut data;
    match &config.auth {
        SnowflakeAuth::Password(p) => {
            fields["PASSWORD"] = p.expose().into();
        }
        SnowflakeAuth::KeyPair(pem) => {
            let identifier = format!(
                "{}.{}",
                account_name(&config.account),
                config.user.to_ascii_uppercase()
            );
            let jwt =
                snowflake_jwt::generate_jwt_token(pem.expose(), &identifier).map_err(|e| {
                    WarehouseError::new(
                        ErrorKind::Unavailable,
                        format!("login failed: the key-pair token could not be made: {e}"),
                    )
                })?;
            fields["AUTHENTICATOR"] = "SNOWFLAKE_JWT".into();
            fields["TOKEN"] = jwt.into();
        }
        SnowflakeAuth::Token { kind, source } => {
            let token = source.read().map_err(|e| {
                WarehouseError::new(ErrorKind::Unavailable, format!("login failed: {e}"))
            })?;
            fields["AUTHENTICATOR"] = match kind {
                TokenKind::Pat => "PROGRAMMATIC_ACCESS_TOKEN",
                TokenKind::OAuth => "OAUTH",
            }
            .into();
            fields["TOKEN"] = token.expose().into();
        }
    }
    Ok(json!({ "data": data }))
}

/// Logs in; the new session's tokens.
pub(crate) async fn login(rest: &Rest, config: &SnowflakeConfig) -> Result<Tokens, WarehouseError> {
    // Off the async workers: a key pair's token is an RSA signature
    // (milliseconds of CPU), a token file a read of a file that may sit on
    // a slow disk or a stalled network mount.
    let owned = config.clone();
    let body = tokio::task::spawn_blocking(move || login_body(&owned))
        .await
        .map_err(|_| {
            WarehouseError::new(
                ErrorKind::Unavailable,
                "login failed: the credentials could not be prepared",
            )
        })??;
    let id = request_id();
    let mut query: Vec<(&str, &str)> = vec![("request_id", id.as_str())];
    if let Some(w) = &config.warehouse {
        query.push(("warehouse", w));
    }
    if let Some(d) = &config.database {
        query.push(("databaseName", d));
    }
    if let Some(s) = &config.schema {
        query.push(("schemaName", s));
    }
    if let Some(r) = &config.role {
        query.push(("roleName", r));
    }
    let answer = rest
        .post(
            Call {
                path: "/session/v1/login-request",
                query: &query,
                token: None,
                accept: ACCEPT_JSON,
            },
            &body,
        )
        .await?;
    if !answer.success {
        let e = answer.failure(ErrorKind::Unavailable);
        return Err(WarehouseError {
            message: format!("login failed: {}", e.message),
            ..e
        });
    }
    let data: LoginData = answer.data()?;
    let validity = data
        .validity_in_seconds
        .and_then(seconds)
        .unwrap_or(DEFAULT_VALIDITY);
    Ok(Tokens {
        session: Secret::new(data.token),
        master: Secret::new(data.master_token.unwrap_or_default()),
        session_expires: Instant::now() + validity,
        session_validity: validity,
    })
}

/// Renews the session token with the master token (no new login).
pub(crate) async fn renew(rest: &Rest, tokens: &mut Tokens) -> Result<(), WarehouseError> {
    let body = json!({"oldSessionToken": tokens.session.expose(), "requestType": "RENEW"});
    let answer = rest
        .post_session("/session/token-request", &tokens.master, &body)
        .await?;
    if !answer.success {
        return Err(answer.failure(ErrorKind::Unavailable));
    }
    let data: RenewData = answer.data()?;
    let validity = data
        .validity_in_seconds
        .and_then(seconds)
        .unwrap_or(tokens.session_validity);
    tokens.session = Secret::new(data.session_token);
    if let Some(master) = data.master_token.filter(|m| !m.is_empty()) {
        tokens.master = Secret::new(master);
    }
    tokens.session_expires = Instant::now() + validity;
    tokens.session_validity = validity;
    Ok(())
}

/// Tells Snowflake the session is still in use (no statement, no warehouse).
pub(crate) async fn heartbeat(rest: &Rest, tokens: &Tokens) -> Result<(), WarehouseError> {
    let answer = rest
        .post_session("/session/heartbeat", &tokens.session, &json!({}))
        .await?;
    if answer.success {
        Ok(())
    } else {
        Err(answer.failure(ErrorKind::Unavailable))
    }
}

/// Ends the session on Snowflake's side (best effort).
pub(crate) async fn logout(rest: &Rest, session: &Secret) {
    let id = request_id();
    let _ = rest
        .post(
            Call {
                path: "/session",
                query: &[("delete", "true"), ("request_id", id.as_str())],
                token: Some(session),
                accept: ACCEPT_JSON,
            },
            &json!({}),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::snowflake::config::TokenSource;

    fn config(auth: SnowflakeAuth) -> SnowflakeConfig {
        SnowflakeConfig {
            account: "xy12345.eu-west-1".into(),
            user: "ada".into(),
            auth,
            role: None,
            warehouse: None,
            database: None,
            schema: None,
            base_url: None,
            pool: Default::default(),
            statement_timeout: None,
            query_tag_prefix: None,
        }
    }

    #[test]
    fn bodies_carry_the_chosen_credentials() {
        let pat = login_body(&config(SnowflakeAuth::Token {
            kind: TokenKind::Pat,
            source: TokenSource::Value(Secret::new("pat-1")),
        }))
        .expect("body");
        assert_eq!(pat["data"]["AUTHENTICATOR"], "PROGRAMMATIC_ACCESS_TOKEN");
        assert_eq!(pat["data"]["TOKEN"], "pat-1");
        assert_eq!(pat["data"]["ACCOUNT_NAME"], "XY12345");
        assert!(pat["data"].get("PASSWORD").is_none());
        let oauth = login_body(&config(SnowflakeAuth::Token {
            kind: TokenKind::OAuth,
            source: TokenSource::Value(Secret::new("at-1")),
        }))
        .expect("body");
        assert_eq!(oauth["data"]["AUTHENTICATOR"], "OAUTH");
        let password =
            login_body(&config(SnowflakeAuth::Password(Secret::new("pw")))).expect("body");
        assert_eq!(password["data"]["PASSWORD"], "pw");
        assert!(password["data"].get("AUTHENTICATOR").is_none());
    }

    /// A token file that blocks its reader (a FIFO nobody writes, as a
    /// file on a stalled mount would) holds a login, never the async
    /// worker: the runtime's only thread goes on serving its other tasks.
    #[test]
    fn a_token_file_that_blocks_holds_no_async_worker() {
        let dir = std::env::temp_dir().join(format!("sfmcp-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fifo = dir.join("token");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let settings = config(SnowflakeAuth::Token {
            kind: TokenKind::OAuth,
            source: TokenSource::File(fifo.clone()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let runner = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // Nothing listens there: the login, once its token is read,
                // fails at once.
                let rest = Rest::new("xy12345", Some("http://127.0.0.1:9")).expect("rest");
                let login = tokio::spawn(async move { login(&rest, &settings).await.is_err() });
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send("served").expect("send");
                login.await.expect("login task")
            })
        });
        let served = rx.recv_timeout(Duration::from_secs(5));
        // Give the reader its token, so the login (and the thread) ends.
        std::fs::write(&fifo, "at-1\n").expect("write the FIFO");
        assert_eq!(
            served,
            Ok("served"),
            "the runtime's thread was held by the read"
        );
        assert!(
            runner.join().expect("runner"),
            "a login with nobody there fails"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn renewal_is_due_in_the_last_quarter() {
        let mut t = Tokens {
            session: Secret::new("s"),
            master: Secret::new("m"),
            session_expires: Instant::now() + Duration::from_secs(3600),
            session_validity: Duration::from_secs(3600),
        };
        assert!(!t.renewal_due());
        t.session_expires = Instant::now() + Duration::from_secs(200);
        assert!(t.renewal_due());
        t.session_validity = Duration::from_secs(8);
        t.session_expires = Instant::now() + Duration::from_secs(6);
        assert!(!t.renewal_due());
        assert!(!format!("{t:?}").contains('"'));
    }
}
