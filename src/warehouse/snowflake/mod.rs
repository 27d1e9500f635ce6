//! Snowflake, over its REST protocol, spoken by this crate's own client.
//!
//! Sessions (a login each: session and master tokens) live in the crate's
//! [`Pool`]. A session's database and schema are tracked: a call that
//! names another context switches it with `USE` first (identifiers quoted),
//! and a call that names none gets the configured defaults back, so one
//! call's context never leaks into the next; in a settled context a query
//! is one request (its query id comes back in its own answer).
//!
//! - Results: the inline part first, then the chunks in order, downloaded
//!   one at a time and only while the row limit and byte cap want rows
//!   (`statement.rs`).
//! - Long statements: "still running" answers are polled with backoff until
//!   the statement ends; each poll reports progress.
//! - Cancel: a call dropped while its statement runs sends Snowflake's
//!   abort request; the session goes back to the pool when Snowflake
//!   confirms, and is retired when it cannot tell.
//! - Sessions: idle ones send a heartbeat on each health check and renew
//!   their session token (with the master token) before it expires, so no
//!   call pays a login or fails on an expired token. When Snowflake still
//!   answers that the session or its token expired (390112, 390114,
//!   390104), the session is dropped, a new one logs in, and a read-only
//!   statement is tried once more.
//! - Every statement carries a `QUERY_TAG` naming the tool and the client.
//!
//! `SNOWFLAKE_BASE_URL` replaces the account URL (proxies, PrivateLink,
//! tests).

use std::sync::Arc;

use super::{
    BoxFuture, ColumnInfo, ErrorKind, QueryOptions, QueryResult, TableDescription, TableInfo,
    Warehouse, WarehouseError,
};
use crate::pool::{Manager, Pool, PoolStats, Pooled};
use crate::util::sql_guard::{SqlGuard, quote_ident};

mod catalog;
mod config;
mod convert;
mod login;
mod rest;
mod session;
mod statement;

use config::DEFAULT_QUERY_TAG_PREFIX;
pub use config::{
    ConfigError, Env, Secret, SnowflakeAuth, SnowflakeConfig, Source, TokenKind, TokenSource,
};
use rest::Rest;
pub(crate) use session::{SnowflakeManager, SnowflakeSession};
use statement::{RELOGIN_CODES, Ticket};

/// Most bytes of a `QUERY_TAG` (Snowflake takes up to 2,000 characters).
const MAX_QUERY_TAG_BYTES: usize = 1000;

/// Snowflake as a [`Warehouse`].
pub struct SnowflakeWarehouse {
    pool: Pool<SnowflakeManager>,
    rest: Arc<Rest>,
    database: Option<String>,
    schema: Option<String>,
    tag_prefix: String,
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
pub(crate) fn quote_literal(s: &str) -> String {
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
        let tag_prefix = config
            .query_tag_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_QUERY_TAG_PREFIX.to_owned());
        let rest = Arc::new(Rest::new(&config.account, config.base_url.as_deref())?);
        let manager = SnowflakeManager {
            config,
            rest: Arc::clone(&rest),
        };
        let pool = Pool::new(manager, pool_config);
        // The first session now: a failed login fails here, and the
        // session serves the first call.
        drop(pool.get().await?);
        Ok(Arc::new(SnowflakeWarehouse {
            pool,
            rest,
            database,
            schema,
            tag_prefix,
        }))
    }

    /// The `QUERY_TAG` of a statement run for `options`.
    fn tag(&self, options: &QueryOptions) -> String {
        let mut tag = self.tag_prefix.clone();
        if let Some(o) = &options.origin {
            tag.push_str(" tool=");
            tag.push_str(&o.tool);
            tag.push_str(" client=");
            tag.push_str(&o.client);
        }
        let mut clean: String = tag
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if clean.len() > MAX_QUERY_TAG_BYTES {
            let mut cut = MAX_QUERY_TAG_BYTES;
            while !clean.is_char_boundary(cut) {
                cut -= 1;
            }
            clean.truncate(cut);
        }
        clean
    }

    /// Runs a statement in the given context (the defaults when `None`) and
    /// reads its rows within the caps, logging in again and retrying a
    /// read-only statement once if the session expired.
    async fn run(&self, sql: &str, options: &QueryOptions) -> Result<QueryResult, WarehouseError> {
        let retry_allowed = SqlGuard::read_only().check(sql).is_ok();
        let tag = self.tag(options);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let session = self.pool.get().await?;
            let mut guard = Watch {
                session: Some(session),
                running: None,
                rest: Arc::clone(&self.rest),
            };
            let outcome = self.run_on(&mut guard, sql, options, &tag).await;
            let Some(mut session) = guard.release() else {
                return outcome;
            };
            match outcome {
                Err(e)
                    if e.code
                        .as_deref()
                        .is_some_and(|c| RELOGIN_CODES.contains(&c)) =>
                {
                    // Expired: this session goes; a fresh one logs in.
                    session.mark_broken();
                    if !retry_allowed || attempts > 1 {
                        return Err(e);
                    }
                }
                Err(e) => {
                    if e.kind == ErrorKind::Unavailable {
                        // A transport failure: the session may be gone too.
                        session.mark_broken();
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// One statement, after the context switch it needs.
    async fn run_on(
        &self,
        guard: &mut Watch,
        sql: &str,
        options: &QueryOptions,
        tag: &str,
    ) -> Result<QueryResult, WarehouseError> {
        let want_db = options.database.clone().or_else(|| self.database.clone());
        let want_schema = options.schema.clone().or_else(|| {
            // A database switch without a schema uses that database's default.
            if options.database.is_some() {
                None
            } else {
                self.schema.clone()
            }
        });
        let manager = self.pool.manager();
        let Watch {
            session, running, ..
        } = guard;
        let Some(session) = session.as_mut() else {
            return Err(WarehouseError::new(ErrorKind::Unavailable, "no session"));
        };
        if !session.context_known
            || want_db != session.database
            || (want_schema.is_some() && want_schema != session.schema)
        {
            let switch = match (&want_db, &want_schema) {
                (Some(db), Some(s)) => format!("USE SCHEMA {}.{}", quote_ident(db), quote_ident(s)),
                (Some(db), None) => format!("USE DATABASE {}", quote_ident(db)),
                // No default to go back to: this session cannot be reset; a new one is needed.
                (None, _) => {
                    session.mark_broken();
                    return Err(WarehouseError::new(
                        ErrorKind::Unavailable,
                        "session context could not be reset; try again",
                    ));
                }
            };
            // Unknown until the switch answers: cut short, it is redone.
            session.context_known = false;
            let ticket = Ticket::new(switch);
            run_ticket(manager, session, &ticket, Some(tag), None, running).await?;
            session.database = want_db;
            session.schema = want_schema;
            session.context_known = true;
        }
        let ticket = Ticket::new(sql.to_owned());
        let answer = run_ticket(
            manager,
            session,
            &ticket,
            Some(tag),
            options.progress.as_ref(),
            running,
        )
        .await?;
        // The statement is over: a drop from here on only stops the download.
        let query_id = answer.query_id();
        let mut result = answer.rows(&self.rest, options).await?;
        result.query_id = query_id;
        Ok(result)
    }

    /// Runs a metadata query and returns its rows as JSON.
    async fn rows(&self, sql: &str) -> Result<Vec<Vec<serde_json::Value>>, WarehouseError> {
        let options = QueryOptions {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            ..QueryOptions::default()
        };
        Ok(self.run(sql, &options).await?.rows)
    }
}

/// Submits `ticket` on `session` (renewing its token first when due),
/// publishing the ticket in `running` while the statement runs.
async fn run_ticket(
    manager: &SnowflakeManager,
    session: &mut SnowflakeSession,
    ticket: &Ticket,
    tag: Option<&str>,
    progress: Option<&super::Progress>,
    running: &mut Option<Ticket>,
) -> Result<statement::Answer, WarehouseError> {
    if session.tokens.renewal_due() {
        login::renew(&manager.rest, &mut session.tokens).await?;
    }
    session.sequence += 1;
    tracing::debug!(
        sequence = session.sequence,
        "snowflake: statement submitted"
    );
    *running = Some(ticket.clone());
    let answer = statement::run(
        &manager.rest,
        &session.tokens.session,
        ticket,
        session.sequence,
        tag,
        progress,
    )
    .await;
    *running = None;
    answer
}

/// Longest a cancelled statement's abort may take (its retries included)
/// before its session is retired instead. Default: 10 s.
const ABORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Holds a call's session. Dropped while a statement runs (the call was
/// cancelled or timed out), it sends Snowflake's abort request for it in
/// the background, then returns the session to the pool if Snowflake
/// confirmed, or retires it if it could not tell.
struct Watch {
    session: Option<Pooled<SnowflakeManager>>,
    /// The statement running now, if one is.
    running: Option<Ticket>,
    rest: Arc<Rest>,
}

impl Watch {
    /// The session back, the call having ended on its own.
    fn release(&mut self) -> Option<Pooled<SnowflakeManager>> {
        self.running = None;
        self.session.take()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let Some(ticket) = self.running.take() else {
            // Dropped between statements (or while rows download): the
            // session is idle on Snowflake's side.
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            session.mark_broken();
            return;
        };
        let rest = Arc::clone(&self.rest);
        handle.spawn(async move {
            let token = session.tokens.session.clone();
            // Bounded: the session holds a pool slot until this ends, and
            // on a stalled network one exchange alone may wait minutes.
            let aborted =
                tokio::time::timeout(ABORT_TIMEOUT, statement::abort(&rest, &token, &ticket)).await;
            match aborted {
                Ok(Ok(true)) => tracing::debug!("aborted a cancelled statement"),
                Ok(Ok(false) | Err(_)) | Err(_) => {
                    tracing::warn!("could not abort a cancelled statement; its session is retired");
                    session.mark_broken();
                }
            }
        });
    }
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
        Box::pin(self.run(sql, options))
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
        Box::pin(catalog::describe(self, database, schema, table))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        Box::pin(async move {
            let mut session = self.pool.get().await?;
            let manager = self.pool.manager();
            let tag = self.tag_prefix.clone();
            match manager
                .statement(&mut session, "SELECT 1", Some(&tag))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => {
                    session.mark_broken();
                    Err(e)
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
    }
}
