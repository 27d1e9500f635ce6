//! The embedded warehouse: SQLite (compiled in), for a file or the demo.
//!
//! The warehouse exposes one database (named by the configuration, `DEMO`
//! for the demo) with one schema, `MAIN`. Connections live in the crate's
//! [`Pool`]; every statement runs on tokio's blocking threads, never on the
//! async ones. When a query's future is dropped (a cancel, a closed
//! stream, a timeout) the statement is interrupted (`sqlite3_interrupt`)
//! and its connection is retired. Read-only warehouses open their files
//! read-only and set `PRAGMA query_only`, so even a statement the guard
//! let through cannot write.
//!
//! Values: `DECIMAL(p,s)`/`NUMBER(p,s)` columns come back as exact strings
//! with `s` digits (SQLite keeps them as doubles or integers; up to 15
//! significant digits they print back exactly); integers as JSON numbers
//! when they fit in 53 bits, else strings; text (dates and timestamps are
//! ISO 8601 text in SQLite) as strings; blobs as base64.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use serde_json::Value;

use super::{
    BoxFuture, Column, ColumnInfo, ErrorKind, QueryOptions, QueryResult, TableDescription,
    TableInfo, Truncation, Warehouse, WarehouseError, push_row,
};
use crate::pool::{Manager, Pool, PoolConfig, PoolStats, Pooled};

/// The only schema of a SQLite warehouse.
pub(crate) const SCHEMA: &str = "MAIN";
/// Longest string or blob one statement may build or read
/// (`SQLITE_LIMIT_LENGTH`): past it the statement fails with
/// `SQLITE_TOOBIG` instead of filling memory. Default: 16 MiB.
pub(crate) const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// SQLite's hard heap limit (`PRAGMA hard_heap_limit`, for the whole
/// process): an allocation past it fails the statement with `SQLITE_NOMEM`.
/// Default: 64 MiB.
pub(crate) const DEFAULT_HEAP_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// How long a statement waits for a lock held by another connection. Default: 5 s.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the data is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Source {
    /// A database file.
    File(PathBuf),
    /// The demo database, built in memory at start (see `demo`).
    Demo,
}

/// Settings of a SQLite warehouse.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Where the data is.
    pub source: Source,
    /// The database name clients see. Default: `DEMO`.
    pub database: String,
    /// Whether statements may write (the file is then opened read-write).
    /// Default: false.
    pub allow_writes: bool,
    /// The connection pool's settings.
    pub pool: PoolConfig,
    /// Longest string or blob a statement may build or read. Default:
    /// 16 MiB.
    pub max_value_bytes: usize,
    /// SQLite's heap limit, for the whole process (SQLite keeps one); 0
    /// leaves SQLite's own (none). Default: 64 MiB.
    pub heap_limit_bytes: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            source: Source::Demo,
            database: "DEMO".into(),
            allow_writes: false,
            pool: PoolConfig::default(),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            heap_limit_bytes: DEFAULT_HEAP_LIMIT_BYTES,
        }
    }
}

/// The embedded warehouse.
pub struct SqliteWarehouse {
    pool: Pool<SqliteManager>,
    database: String,
    /// Keeps the demo's in-memory database alive while the warehouse lives.
    _keeper: Option<parking_lot::Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWarehouse")
            .field("database", &self.database)
            .field("pool", &self.pool.stats())
            .finish()
    }
}

impl SqliteWarehouse {
    /// Opens the warehouse (for the demo: builds the demo database first).
    pub async fn open(config: SqliteConfig) -> Result<Arc<SqliteWarehouse>, WarehouseError> {
        let read_only = !config.allow_writes;
        let (target, flags, keeper) = match &config.source {
            Source::File(path) => {
                if !path.exists() {
                    return Err(WarehouseError::new(
                        ErrorKind::Unavailable,
                        format!("SQLite file {} does not exist", path.display()),
                    ));
                }
                let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
                flags |= if read_only {
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                } else {
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                };
                (path.display().to_string(), flags, None)
            }
            Source::Demo => {
                // A named in-memory database shared by the pool's connections.
                let mut nonce = [0u8; 8];
                let _ = getrandom::fill(&mut nonce);
                let name: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
                let target = format!("file:snowflake-mcp-demo-{name}?mode=memory&cache=shared");
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let t = target.clone();
                let keeper = tokio::task::spawn_blocking(move || {
                    let conn = Connection::open_with_flags(&t, flags).map_err(sqlite_error)?;
                    demo::build(&conn).map_err(sqlite_error)?;
                    Ok::<_, WarehouseError>(conn)
                })
                .await
                .map_err(join_error)??;
                (target, flags, Some(parking_lot::Mutex::new(keeper)))
            }
        };
        let manager = SqliteManager {
            target,
            flags,
            read_only,
            max_value_bytes: i32::try_from(config.max_value_bytes.max(1)).unwrap_or(i32::MAX),
            heap_limit_bytes: config.heap_limit_bytes,
        };
        // Fail at start, not on the first call, when the file cannot be opened.
        let probe = manager.create().await?;
        drop(probe);
        Ok(Arc::new(SqliteWarehouse {
            pool: Pool::new(manager, config.pool),
            database: config.database,
            _keeper: keeper,
        }))
    }

    /// Runs `work` on a pooled connection on a blocking thread. If this
    /// future is dropped first, the statement is interrupted and the
    /// connection retired.
    async fn with_conn<T, F>(&self, work: F) -> Result<T, WarehouseError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, WarehouseError> + Send + 'static,
    {
        let session = self.pool.get().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut checkout = Checkout {
            session,
            interrupt: None,
            stop: Arc::clone(&stop),
            done: false,
        };
        let Some(mut conn) = checkout.session.conn.take() else {
            return Err(WarehouseError::new(
                ErrorKind::Unavailable,
                "lost connection",
            ));
        };
        checkout.interrupt = Some(conn.get_interrupt_handle());
        let (conn, result) = tokio::task::spawn_blocking(move || {
            // sqlite3_interrupt only reaches a statement already running: a
            // caller that gave up before this thread started is seen by the
            // check below, one that gives up later by SQLite asking the flag
            // every PROGRESS_OPS steps.
            let flag = Arc::clone(&stop);
            let watching = conn
                .progress_handler(PROGRESS_OPS, Some(move || flag.load(Ordering::Relaxed)))
                .is_ok();
            let r = if stop.load(Ordering::Relaxed) {
                Err(interrupted())
            } else {
                work(&conn)
            };
            if watching {
                let _ = conn.progress_handler(0, None::<fn() -> bool>);
            }
            (conn, r)
        })
        .await
        .map_err(join_error)?;
        checkout.session.conn = Some(conn);
        checkout.done = true;
        result
    }

    fn check_names(&self, database: &str, schema: Option<&str>) -> Result<(), WarehouseError> {
        if !database.eq_ignore_ascii_case(&self.database) {
            return Err(WarehouseError::new(
                ErrorKind::NotFound,
                format!(
                    "database {database:?} does not exist (this warehouse has {:?})",
                    self.database
                ),
            ));
        }
        if let Some(schema) = schema
            && !schema.eq_ignore_ascii_case(SCHEMA)
        {
            return Err(WarehouseError::new(
                ErrorKind::NotFound,
                format!("schema {schema:?} does not exist in {database} (it has {SCHEMA:?})"),
            ));
        }
        Ok(())
    }
}

/// A connection out on a blocking thread.
struct Checkout {
    session: Pooled<SqliteManager>,
    interrupt: Option<InterruptHandle>,
    /// Set when the caller gives up; read by the blocking thread and
    /// SQLite's progress handler.
    stop: Arc<AtomicBool>,
    done: bool,
}

/// VM steps between two looks at a statement's stop flag (a few microseconds).
const PROGRESS_OPS: std::os::raw::c_int = 1000;

/// What a statement stopped by its caller ends with (nobody reads it).
fn interrupted() -> WarehouseError {
    WarehouseError::new(ErrorKind::Interrupted, "interrupted: the caller gave up")
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.done {
            // The caller gave up: stop the statement, and never reuse the
            // connection (it is still busy on the blocking thread).
            self.stop.store(true, Ordering::Relaxed);
            if let Some(i) = &self.interrupt {
                i.interrupt();
            }
            self.session.mark_broken();
        }
    }
}

impl Warehouse for SqliteWarehouse {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn sql_dialect(&self) -> super::SqlDialect {
        super::SqlDialect::Sqlite
    }

    fn default_schema(&self) -> &str {
        SCHEMA
    }

    fn qualified(&self, _database: &str, _schema: &str, name: &str) -> String {
        // One database, one schema: the name alone (names are checked by `query`).
        crate::util::sql_guard::quote_ident(name)
    }

    fn query<'a>(
        &'a self,
        sql: &'a str,
        options: &'a QueryOptions,
    ) -> BoxFuture<'a, Result<QueryResult, WarehouseError>> {
        Box::pin(async move {
            if let Some(db) = &options.database {
                self.check_names(db, options.schema.as_deref())?;
            }
            let sql = sql.to_owned();
            let options = options.clone();
            self.with_conn(move |conn| run(conn, &sql, &options)).await
        })
    }

    fn databases(&self) -> BoxFuture<'_, Result<Vec<String>, WarehouseError>> {
        Box::pin(async move { Ok(vec![self.database.clone()]) })
    }

    fn schemas<'a>(
        &'a self,
        database: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, WarehouseError>> {
        Box::pin(async move {
            self.check_names(database, None)?;
            Ok(vec![SCHEMA.to_owned()])
        })
    }

    fn tables<'a>(
        &'a self,
        database: &'a str,
        schema: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<TableInfo>, WarehouseError>> {
        Box::pin(async move {
            self.check_names(database, schema)?;
            self.with_conn(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT name, type FROM sqlite_schema \
                         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                         ORDER BY name",
                    )
                    .map_err(sqlite_error)?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok(TableInfo {
                            schema: SCHEMA.to_owned(),
                            name: row.get(0)?,
                            kind: row.get::<_, String>(1)?.to_ascii_uppercase(),
                            comment: None,
                        })
                    })
                    .map_err(sqlite_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_error)
            })
            .await
        })
    }

    fn describe<'a>(
        &'a self,
        database: &'a str,
        schema: &'a str,
        table: &'a str,
    ) -> BoxFuture<'a, Result<TableDescription, WarehouseError>> {
        Box::pin(async move {
            self.check_names(database, Some(schema))?;
            let name = table.to_owned();
            let database = self.database.clone();
            self.with_conn(move |conn| {
                // The name is bound as a parameter, never spliced into SQL.
                let found: Option<(String, String, Option<String>)> = conn
                    .query_row(
                        "SELECT name, type, sql FROM sqlite_schema \
                         WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                        [&name],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(sqlite_error(e)),
                    })?;
                let Some((real_name, kind, ddl)) = found else {
                    return Err(WarehouseError::new(
                        ErrorKind::NotFound,
                        format!("table or view {name:?} does not exist in {database}.{SCHEMA}"),
                    ));
                };
                let mut stmt = conn
                    .prepare(
                        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
                    )
                    .map_err(sqlite_error)?;
                let columns = stmt
                    .query_map([&real_name], |row| {
                        let declared: String = row.get(1)?;
                        let not_null: bool = row.get(2)?;
                        let pk: i64 = row.get(4)?;
                        Ok(ColumnInfo {
                            name: row.get(0)?,
                            type_name: if declared.is_empty() {
                                "ANY".into()
                            } else {
                                declared.to_ascii_uppercase()
                            },
                            nullable: !not_null && pk == 0,
                            default: row.get(3)?,
                            comment: None,
                        })
                    })
                    .map_err(sqlite_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sqlite_error)?;
                Ok(TableDescription {
                    database,
                    schema: SCHEMA.to_owned(),
                    name: real_name,
                    kind: kind.to_ascii_uppercase(),
                    columns,
                    ddl,
                    comment: None,
                })
            })
            .await
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        Box::pin(async move {
            self.with_conn(|conn| {
                conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                    .map(|_| ())
                    .map_err(sqlite_error)
            })
            .await
        })
    }

    fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn close(&self) {
        self.pool.close();
    }
}

pub(crate) mod demo;
mod session;
mod values;

pub(crate) use session::SqliteManager;
use session::{join_error, sqlite_error};
use values::run;
