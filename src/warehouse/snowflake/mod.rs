//! Snowflake, through the `snowflake-api` crate.
//!
//! Sessions (a logged-in `SnowflakeApi` each) live in the crate's
//! [`Pool`]. A session's database and schema are tracked: a call that
//! names another context switches it with `USE` first (identifiers quoted),
//! and a call that names none gets the configured defaults back, so one
//! call's context never leaks into the next. When Snowflake answers that
//! the session or its token expired (390112, 390114, 390104), the session
//! is dropped, a new one logs in, and a read-only statement is tried once
//! more. `SNOWFLAKE_BASE_URL` rewrites the account URL of every request
//! (proxies, PrivateLink, tests) through a client middleware.
//!
//! What the API allows for cancellation: `snowflake-api` 0.14 has no call
//! to abort a running statement, so a dropped query future stops waiting
//! (the HTTP request is dropped) and its session is retired; with
//! [`SnowflakeConfig::statement_timeout`] set, Snowflake itself stops
//! the statement after that long. Query ids: the crate does not return
//! them in release builds, so the id is read with `SELECT LAST_QUERY_ID()`
//! on the same session right after the statement.

use std::sync::Arc;

use snowflake_api::{
    AuthArgs, AuthType, CertificateArgs, PasswordArgs, SnowflakeApi, SnowflakeApiError,
};

use super::{
    BoxFuture, ColumnInfo, ErrorKind, QueryOptions, QueryResult, TableDescription, TableInfo,
    Warehouse, WarehouseError,
};
use crate::pool::{Manager, Pool, PoolStats, Pooled};
use crate::tools::sql_guard::{SqlGuard, quote_ident};

mod config;
mod convert;

pub use config::{ConfigError, Env, Secret, SnowflakeAuth, SnowflakeConfig, Source};

/// Error codes that mean the session must log in again.
const RELOGIN_CODES: [&str; 3] = ["390112", "390114", "390104"];

/// Rewrites the scheme, host and port of every request to the base URL.
struct BaseUrl {
    base: reqwest::Url,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for BaseUrl {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url_mut();
        let _ = url.set_scheme(self.base.scheme());
        let _ = url.set_host(self.base.host_str());
        let _ = url.set_port(self.base.port());
        next.run(req, extensions).await
    }
}

fn api_error(e: SnowflakeApiError) -> WarehouseError {
    match e {
        SnowflakeApiError::ApiError(code, message) => {
            let kind = if RELOGIN_CODES.contains(&code.as_str()) {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Statement
            };
            WarehouseError::new(kind, message).with_code(code)
        }
        // Login and transport failures: the message, never the request (it may hold secrets).
        SnowflakeApiError::AuthError(e) => {
            WarehouseError::new(ErrorKind::Unavailable, format!("login failed: {e}"))
        }
        SnowflakeApiError::RequestError(e) => {
            WarehouseError::new(ErrorKind::Unavailable, format!("request failed: {e}"))
        }
        other => WarehouseError::new(ErrorKind::Unavailable, other.to_string()),
    }
}

/// A logged-in session and the context it is in.
pub struct SnowflakeSession {
    api: SnowflakeApi,
    database: Option<String>,
    schema: Option<String>,
}

impl std::fmt::Debug for SnowflakeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeSession")
            .field("database", &self.database)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Logs sessions in and checks them.
#[derive(Debug)]
pub struct SnowflakeManager {
    config: SnowflakeConfig,
}

impl SnowflakeManager {
    fn auth(&self) -> AuthArgs {
        let c = &self.config;
        AuthArgs {
            account_identifier: c.account.clone(),
            warehouse: c.warehouse.clone(),
            database: c.database.clone(),
            schema: c.schema.clone(),
            username: c.user.clone(),
            role: c.role.clone(),
            auth_type: match &c.auth {
                SnowflakeAuth::Password(p) => AuthType::Password(PasswordArgs {
                    password: p.expose().to_owned(),
                }),
                SnowflakeAuth::KeyPair(k) => AuthType::Certificate(CertificateArgs {
                    private_key_pem: k.expose().to_owned(),
                }),
            },
        }
    }

    fn client(&self) -> Result<reqwest_middleware::ClientWithMiddleware, WarehouseError> {
        // The settings of snowflake-api's own client, but never its
        // connection-level wire logging (on in its debug builds): that logs
        // request bodies, passwords and session tokens included, at TRACE.
        let client = reqwest::ClientBuilder::new()
            .user_agent("Rust/0.0.1")
            .gzip(true)
            .referer(false)
            .connection_verbose(false)
            .build()
            .map_err(|e| WarehouseError::new(ErrorKind::Unavailable, e.to_string()))?;
        let retries =
            reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(3);
        let builder = reqwest_middleware::ClientBuilder::new(client).with(
            reqwest_retry::RetryTransientMiddleware::new_with_policy(retries),
        );
        let builder = match &self.config.base_url {
            Some(url) => {
                let base = reqwest::Url::parse(url).map_err(|e| {
                    WarehouseError::new(ErrorKind::Unavailable, format!("SNOWFLAKE_BASE_URL: {e}"))
                })?;
                builder.with(BaseUrl { base })
            }
            None => builder,
        };
        Ok(builder.build())
    }
}

impl Manager for SnowflakeManager {
    type Session = SnowflakeSession;
    type Error = WarehouseError;

    fn create(&self) -> crate::pool::BoxFuture<'_, Result<SnowflakeSession, WarehouseError>> {
        Box::pin(async move {
            let api = snowflake_api::SnowflakeApiBuilder::new(self.auth())
                .with_client(self.client()?)
                .build()
                .map_err(api_error)?;
            // The login happens on the first statement: make it now.
            api.exec("SELECT 1").await.map_err(api_error)?;
            if let Some(t) = self.config.statement_timeout {
                let sql = format!(
                    "ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = {}",
                    t.as_secs().max(1)
                );
                // Best effort: a Snowflake-protocol server without it (a test
                // stand-in) still serves; the client-side timeout still holds.
                if let Err(e) = api.exec(&sql).await {
                    tracing::warn!(error = %api_error(e), "could not set the statement timeout");
                }
            }
            Ok(SnowflakeSession {
                api,
                database: self.config.database.clone(),
                schema: self.config.schema.clone(),
            })
        })
    }

    fn check<'a>(
        &'a self,
        session: &'a mut SnowflakeSession,
    ) -> crate::pool::BoxFuture<'a, Result<(), WarehouseError>> {
        Box::pin(async move {
            session
                .api
                .exec("SELECT 1")
                .await
                .map(|_| ())
                .map_err(api_error)
        })
    }
}

/// Snowflake as a [`Warehouse`].
pub struct SnowflakeWarehouse {
    pool: Pool<SnowflakeManager>,
    database: Option<String>,
    schema: Option<String>,
}

impl std::fmt::Debug for SnowflakeWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeWarehouse")
            .field("pool", &self.pool.stats())
            .finish_non_exhaustive()
    }
}

/// A string literal for Snowflake: single quotes doubled and backslashes
/// escaped (Snowflake reads backslash escapes inside literals).
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl SnowflakeWarehouse {
    /// A warehouse over these settings. The first session logs in here, so
    /// wrong credentials or an unreachable account fail at start.
    pub async fn open(config: SnowflakeConfig) -> Result<Arc<SnowflakeWarehouse>, WarehouseError> {
        let database = config.database.clone();
        let schema = config.schema.clone();
        let pool_config = config.pool.clone();
        let manager = SnowflakeManager { config };
        let probe = manager.create().await?;
        drop(probe);
        Ok(Arc::new(SnowflakeWarehouse {
            pool: Pool::new(manager, pool_config),
            database,
            schema,
        }))
    }

    /// Runs a statement in the given context (the defaults when `None`),
    /// logging in again and retrying a read-only statement once if the
    /// session expired.
    async fn run(
        &self,
        sql: &str,
        database: Option<&str>,
        schema: Option<&str>,
    ) -> Result<(snowflake_api::QueryResult, Option<String>), WarehouseError> {
        let retry_allowed = SqlGuard::read_only().check(sql).is_ok();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let session = self.pool.get().await?;
            let mut guard = Retire {
                session,
                done: false,
            };
            let outcome = self.run_on(&mut guard.session, sql, database, schema).await;
            guard.done = true;
            match outcome {
                Err(e)
                    if e.code
                        .as_deref()
                        .is_some_and(|c| RELOGIN_CODES.contains(&c)) =>
                {
                    // Expired: this session goes; a fresh one logs in.
                    guard.session.mark_broken();
                    if !retry_allowed || attempts > 1 {
                        return Err(e);
                    }
                }
                Err(e) => {
                    if e.kind == ErrorKind::Unavailable {
                        // A transport failure: the session may be gone too.
                        guard.session.mark_broken();
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    async fn run_on(
        &self,
        session: &mut Pooled<SnowflakeManager>,
        sql: &str,
        database: Option<&str>,
        schema: Option<&str>,
    ) -> Result<(snowflake_api::QueryResult, Option<String>), WarehouseError> {
        let want_db = database
            .map(str::to_owned)
            .or_else(|| self.database.clone());
        let want_schema = schema.map(str::to_owned).or_else(|| {
            // A database switch without a schema uses that database's default.
            if database.is_some() {
                None
            } else {
                self.schema.clone()
            }
        });
        if want_db != session.database || (want_schema.is_some() && want_schema != session.schema) {
            match (&want_db, &want_schema) {
                (Some(db), Some(s)) => {
                    let sql = format!("USE SCHEMA {}.{}", quote_ident(db), quote_ident(s));
                    session.api.exec(&sql).await.map_err(api_error)?;
                }
                (Some(db), None) => {
                    let sql = format!("USE DATABASE {}", quote_ident(db));
                    session.api.exec(&sql).await.map_err(api_error)?;
                }
                // No default to go back to: this session cannot be reset; a new one is needed.
                (None, _) => {
                    session.mark_broken();
                    return Err(WarehouseError::new(
                        ErrorKind::Unavailable,
                        "session context could not be reset; try again",
                    ));
                }
            }
            session.database = want_db;
            session.schema = want_schema;
        }
        let result = session.api.exec(sql).await.map_err(api_error)?;
        let query_id = match session.api.exec("SELECT LAST_QUERY_ID()").await {
            Ok(snowflake_api::QueryResult::Arrow(batches)) => {
                let opts = QueryOptions {
                    database: None,
                    schema: None,
                    max_rows: 1,
                    max_bytes: 1024,
                };
                convert::from_batches(&batches, &opts)
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(|v| v.as_str().map(str::to_owned))
            }
            _ => None,
        };
        Ok((result, query_id))
    }

    /// Runs a metadata query and returns its rows as JSON.
    async fn rows(&self, sql: &str) -> Result<Vec<Vec<serde_json::Value>>, WarehouseError> {
        let options = QueryOptions {
            database: None,
            schema: None,
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
        };
        let (result, _) = self.run(sql, None, None).await?;
        Ok(to_result(result, &options).rows)
    }
}

/// Retires the session when the statement's future is dropped mid-way.
struct Retire {
    session: Pooled<SnowflakeManager>,
    done: bool,
}

impl Drop for Retire {
    fn drop(&mut self) {
        if !self.done {
            self.session.mark_broken();
        }
    }
}

fn to_result(result: snowflake_api::QueryResult, options: &QueryOptions) -> QueryResult {
    match result {
        snowflake_api::QueryResult::Arrow(batches) => convert::from_batches(&batches, options),
        snowflake_api::QueryResult::Json(json) => {
            let schema: Vec<(String, String, Option<i64>, Option<i64>)> = json
                .schema
                .iter()
                .map(|f| {
                    let t = snake_upper(&format!("{:?}", f.type_));
                    (f.name.clone(), t, f.precision, f.scale)
                })
                .collect();
            convert::from_json(&json.value, &schema, options)
        }
        snowflake_api::QueryResult::Empty => QueryResult::default(),
    }
}

/// `TimestampNtz` to `TIMESTAMP_NTZ`.
fn snake_upper(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Warehouse for SnowflakeWarehouse {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    fn default_schema(&self) -> &str {
        self.schema.as_deref().unwrap_or("PUBLIC")
    }

    fn qualified(&self, database: &str, schema: &str, name: &str) -> String {
        format!(
            "{}.{}.{}",
            quote_ident(database),
            quote_ident(schema),
            quote_ident(name)
        )
    }

    fn query<'a>(
        &'a self,
        sql: &'a str,
        options: &'a QueryOptions,
    ) -> BoxFuture<'a, Result<QueryResult, WarehouseError>> {
        Box::pin(async move {
            let (result, query_id) = self
                .run(sql, options.database.as_deref(), options.schema.as_deref())
                .await?;
            let mut out = to_result(result, options);
            out.query_id = query_id;
            Ok(out)
        })
    }

    fn databases(&self) -> BoxFuture<'_, Result<Vec<String>, WarehouseError>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "SELECT database_name FROM information_schema.databases ORDER BY database_name",
                )
                .await?;
            Ok(rows.iter().filter_map(|r| r.first()).map(text).collect())
        })
    }

    fn schemas<'a>(
        &'a self,
        database: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, WarehouseError>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT schema_name FROM {}.information_schema.schemata ORDER BY schema_name",
                quote_ident(database)
            );
            let rows = self.rows(&sql).await.map_err(|e| not_found(e, database))?;
            Ok(rows.iter().filter_map(|r| r.first()).map(text).collect())
        })
    }

    fn tables<'a>(
        &'a self,
        database: &'a str,
        schema: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<TableInfo>, WarehouseError>> {
        Box::pin(async move {
            // Tables, then views (from their own view, which every
            // Snowflake-protocol server keeps, where `tables` may not list views).
            let filter = |col: &str| match schema {
                Some(s) => format!(" AND {col} = {}", quote_literal(s)),
                None => String::new(),
            };
            let tables_sql = format!(
                "SELECT table_schema, table_name, table_type, comment FROM {}.information_schema.tables \
                 WHERE table_schema <> 'INFORMATION_SCHEMA' AND table_type NOT LIKE '%VIEW%'{} \
                 ORDER BY table_schema, table_name",
                quote_ident(database),
                filter("table_schema")
            );
            let views_sql = format!(
                "SELECT table_schema, table_name, 'VIEW', comment FROM {}.information_schema.views \
                 WHERE table_schema <> 'INFORMATION_SCHEMA'{} ORDER BY table_schema, table_name",
                quote_ident(database),
                filter("table_schema")
            );
            let mut rows = self
                .rows(&tables_sql)
                .await
                .map_err(|e| not_found(e, database))?;
            rows.extend(
                self.rows(&views_sql)
                    .await
                    .map_err(|e| not_found(e, database))?,
            );
            Ok(rows
                .iter()
                .map(|r| {
                    let kind = text(&r[2]).to_ascii_uppercase();
                    TableInfo {
                        schema: text(&r[0]),
                        name: text(&r[1]),
                        kind: if kind.contains("VIEW") {
                            "VIEW".into()
                        } else {
                            "TABLE".into()
                        },
                        comment: r.get(3).map(text).filter(|c| !c.is_empty()),
                    }
                })
                .collect())
        })
    }

    fn describe<'a>(
        &'a self,
        database: &'a str,
        schema: &'a str,
        table: &'a str,
    ) -> BoxFuture<'a, Result<TableDescription, WarehouseError>> {
        Box::pin(async move {
            let found = format!(
                "SELECT table_type, comment FROM {}.information_schema.tables \
                 WHERE table_schema = {} AND table_name = {}",
                quote_ident(database),
                quote_literal(schema),
                quote_literal(table)
            );
            let mut rows = self
                .rows(&found)
                .await
                .map_err(|e| not_found(e, database))?;
            if rows.is_empty() {
                let view = format!(
                    "SELECT 'VIEW', comment FROM {}.information_schema.views \
                     WHERE table_schema = {} AND table_name = {}",
                    quote_ident(database),
                    quote_literal(schema),
                    quote_literal(table)
                );
                rows = self.rows(&view).await?;
            }
            let Some(row) = rows.first() else {
                return Err(WarehouseError::new(
                    ErrorKind::NotFound,
                    format!("table or view {database}.{schema}.{table} does not exist"),
                ));
            };
            let kind = if text(&row[0]).to_ascii_uppercase().contains("VIEW") {
                "VIEW"
            } else {
                "TABLE"
            };
            let comment = row.get(1).map(text).filter(|c| !c.is_empty());
            let columns_sql = format!(
                "SELECT column_name, data_type, is_nullable, column_default, comment, \
                 numeric_precision, numeric_scale, character_maximum_length \
                 FROM {}.information_schema.columns \
                 WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
                quote_ident(database),
                quote_literal(schema),
                quote_literal(table)
            );
            let columns = self
                .rows(&columns_sql)
                .await?
                .iter()
                .map(|r| {
                    let base = text(&r[1]).to_ascii_uppercase();
                    let type_name = match (base.as_str(), r.get(5), r.get(6), r.get(7)) {
                        ("NUMBER", Some(p), Some(s), _) if !p.is_null() => {
                            format!("NUMBER({},{})", text(p), text(s))
                        }
                        ("TEXT" | "VARCHAR", _, _, Some(l)) if !l.is_null() => {
                            format!("VARCHAR({})", text(l))
                        }
                        _ => base,
                    };
                    ColumnInfo {
                        name: text(&r[0]),
                        type_name,
                        nullable: text(&r[2]).eq_ignore_ascii_case("YES"),
                        default: r.get(3).map(text).filter(|d| !d.is_empty()),
                        comment: r.get(4).map(text).filter(|c| !c.is_empty()),
                    }
                })
                .collect();
            let ddl_sql = format!(
                "SELECT GET_DDL({}, {})",
                quote_literal(kind),
                quote_literal(&format!(
                    "{}.{}.{}",
                    quote_ident(database),
                    quote_ident(schema),
                    quote_ident(table)
                ))
            );
            // DDL where the warehouse has it; its absence is not an error.
            let ddl = self
                .rows(&ddl_sql)
                .await
                .ok()
                .and_then(|r| r.first().and_then(|r| r.first()).map(text))
                .filter(|d| !d.is_empty());
            Ok(TableDescription {
                database: database.to_owned(),
                schema: schema.to_owned(),
                name: table.to_owned(),
                kind: kind.to_owned(),
                columns,
                ddl,
                comment,
            })
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        Box::pin(async move {
            let mut session = self.pool.get().await?;
            match session.api.exec("SELECT 1").await {
                Ok(_) => Ok(()),
                Err(e) => {
                    session.mark_broken();
                    Err(api_error(e))
                }
            }
        })
    }

    fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn close(&self) {
        self.pool.close();
    }
}

/// A statement on a missing database reads as "does not exist".
fn not_found(e: WarehouseError, database: &str) -> WarehouseError {
    let lower = e.message.to_ascii_lowercase();
    if lower.contains("does not exist")
        || lower.contains("not authorized")
        || lower.contains("catalog")
    {
        WarehouseError {
            kind: ErrorKind::NotFound,
            message: format!(
                "database {database:?} does not exist or is not authorized ({})",
                e.message
            ),
            code: e.code,
        }
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("PUBLIC"), "'PUBLIC'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\' OR 1=1 --"), "'a\\\\'' OR 1=1 --'");
        assert_eq!(snake_upper("TimestampNtz"), "TIMESTAMP_NTZ");
        assert_eq!(snake_upper("Fixed"), "FIXED");
    }
}
