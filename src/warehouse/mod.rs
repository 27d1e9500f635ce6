//! Warehouses: where statements run.
//!
//! [`Warehouse`] is what the tools talk to: run one (already guarded)
//! statement with a row and byte budget, list databases, schemas and
//! tables, describe a table, ping. Implementations: [`sqlite`] (embedded,
//! the default and the demo), with Snowflake to follow. Every value comes
//! back as JSON already in its final form: exact decimals as strings,
//! dates and timestamps as ISO 8601 text, binary as base64.

use serde::Serialize;
use serde_json::Value;

use crate::pool::PoolStats;

#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use crate::util::BoxFuture;

pub use crate::util::sql_guard::SqlDialect;

/// A result column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The column's name as the statement produced it.
    pub name: String,
    /// The warehouse's type name (`NUMBER(12,2)`, `TEXT`, `TIMESTAMP_TZ`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// What a statement returned.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueryResult {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, each a JSON value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows existed than were returned (row limit or byte cap).
    pub truncated: bool,
    /// Why the rows stop where they do, when `truncated`.
    #[serde(skip)]
    pub truncated_by: Option<Truncation>,
    /// The warehouse's id for the statement, when it has one.
    pub query_id: Option<String>,
}

/// What cut a result short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Truncation {
    /// The row limit.
    Rows(usize),
    /// The byte cap.
    Bytes(usize),
    /// The first row alone passed the byte cap: its largest values were
    /// cut (each ends with `"…[cut]"`) and no more rows follow.
    Cells(usize),
}

/// What ends a value cut to fit the byte cap.
pub(crate) const CUT_MARKER: &str = "…[cut]";

/// How to run a statement.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// The database to run in (the warehouse's default when `None`).
    pub database: Option<String>,
    /// The schema to run in.
    pub schema: Option<String>,
    /// Most rows to return.
    pub max_rows: usize,
    /// Most bytes of row data (as JSON) to return.
    pub max_bytes: usize,
    /// Who runs the statement (for the warehouse's query history).
    pub origin: Option<QueryOrigin>,
    /// Told, now and then, that a long statement is still running.
    pub progress: Option<Progress>,
}

impl Default for QueryOptions {
    /// The default context, 100 rows, 1 MiB, no origin, no progress.
    fn default() -> Self {
        QueryOptions {
            database: None,
            schema: None,
            max_rows: 100,
            max_bytes: 1024 * 1024,
            origin: None,
            progress: None,
        }
    }
}

/// Who a statement runs for: the tool and the MCP client, as the
/// warehouse's query history should name them (Snowflake's `QUERY_TAG`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOrigin {
    /// The tool (`execute_query`, `query_view`, ...).
    pub tool: String,
    /// The client: its `clientInfo` name, or the name of the key it used.
    pub client: String,
}

/// A callback told how long a statement has been running, each time the
/// warehouse learns it is still running.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>);

impl Progress {
    /// A progress callback.
    pub fn new(report: impl Fn(std::time::Duration) + Send + Sync + 'static) -> Progress {
        Progress(std::sync::Arc::new(report))
    }

    /// Reports that the statement has been running for `elapsed`.
    pub fn report(&self, elapsed: std::time::Duration) {
        (self.0)(elapsed);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// The kind of a warehouse failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The statement failed (bad SQL, missing table, type error): the
    /// client's to fix.
    Statement,
    /// A database, schema or table named in the arguments does not exist.
    NotFound,
    /// The warehouse could not be reached or a session could not be had.
    Unavailable,
    /// The statement was interrupted (cancelled or timed out).
    Interrupted,
}

/// A warehouse failure, with the warehouse's own code when it has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct WarehouseError {
    /// What sort of failure.
    pub kind: ErrorKind,
    /// The warehouse's error code (Snowflake's number, SQLite's name).
    pub code: Option<String>,
    /// The warehouse's message.
    pub message: String,
}

impl WarehouseError {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> WarehouseError {
        WarehouseError {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// The same failure with the warehouse's code.
    pub fn with_code(mut self, code: impl Into<String>) -> WarehouseError {
        self.code = Some(code.into());
        self
    }
}

impl From<crate::pool::PoolError> for WarehouseError {
    fn from(e: crate::pool::PoolError) -> Self {
        WarehouseError::new(ErrorKind::Unavailable, e.to_string())
    }
}

/// A table or view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// `TABLE` or `VIEW`.
    pub kind: String,
    /// Its comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A column of a table or view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its declared type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
    /// Its default expression, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Its comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A table or view, described.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableDescription {
    /// Its database.
    pub database: String,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// `TABLE` or `VIEW`.
    pub kind: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// Its DDL, where the warehouse has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddl: Option<String>,
    /// Its comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A place statements run. Implementations own their sessions (a pool).
pub trait Warehouse: Send + Sync + 'static {
    /// A short name for status pages (`sqlite`, `snowflake`).
    fn kind(&self) -> &'static str;

    /// Whose SQL this warehouse runs, for the guard. Default: Snowflake's.
    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Snowflake
    }

    /// The schema tools use when the client names none (`PUBLIC` on Snowflake).
    fn default_schema(&self) -> &str;

    /// A table or view's name as it goes into SQL: every part quoted (see
    /// `quote_ident`), qualified as far as the
    /// warehouse supports.
    fn qualified(&self, database: &str, schema: &str, name: &str) -> String;

    /// Runs one statement (already checked by the SQL guard). Dropping the
    /// future interrupts the statement where the warehouse allows it.
    fn query<'a>(
        &'a self,
        sql: &'a str,
        options: &'a QueryOptions,
    ) -> BoxFuture<'a, Result<QueryResult, WarehouseError>>;

    /// The databases.
    fn databases(&self) -> BoxFuture<'_, Result<Vec<String>, WarehouseError>>;

    /// The schemas of a database.
    fn schemas<'a>(
        &'a self,
        database: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, WarehouseError>>;

    /// The tables and views of a database (of one schema when given).
    fn tables<'a>(
        &'a self,
        database: &'a str,
        schema: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<TableInfo>, WarehouseError>>;

    /// Describes one table or view.
    fn describe<'a>(
        &'a self,
        database: &'a str,
        schema: &'a str,
        table: &'a str,
    ) -> BoxFuture<'a, Result<TableDescription, WarehouseError>>;

    /// A cheap round trip (`SELECT 1`) through a pooled session.
    fn ping(&self) -> BoxFuture<'_, Result<(), WarehouseError>>;

    /// The session pool's counters.
    fn pool_stats(&self) -> PoolStats;

    /// Closes the session pool (at shutdown): idle sessions are closed now,
    /// busy ones when their statement ends; later calls fail with "closed".
    fn close(&self);
}

#[cfg(any(feature = "sqlite", feature = "snowflake"))]
/// Adds a row to `result` unless it would pass the budget; returns false
/// (and marks the result truncated) once the budget is spent. The first
/// row is never dropped for its size: its values are cut to fit instead
/// (see [`Truncation::Cells`]), so one huge value costs at most the cap.
pub(crate) fn push_row(
    result: &mut QueryResult,
    mut row: Vec<Value>,
    options: &QueryOptions,
    bytes: &mut usize,
) -> bool {
    if result.rows.len() >= options.max_rows {
        result.truncated = true;
        result.truncated_by = Some(Truncation::Rows(options.max_rows));
        return false;
    }
    let size = row_len(&row);
    if *bytes + size > options.max_bytes {
        result.truncated = true;
        if !result.rows.is_empty() {
            result.truncated_by = Some(Truncation::Bytes(options.max_bytes));
            return false;
        }
        fit_row(&mut row, options.max_bytes);
        result.truncated_by = Some(Truncation::Cells(options.max_bytes));
        *bytes += row_len(&row);
        result.rows.push(row);
        return false;
    }
    *bytes += size;
    result.rows.push(row);
    true
}

#[cfg(any(feature = "sqlite", feature = "snowflake"))]
fn row_len(row: &[Value]) -> usize {
    row.iter().map(json_len).sum::<usize>() + row.len() + 2
}

#[cfg(any(feature = "sqlite", feature = "snowflake"))]
/// Cuts the values of a row that alone passes `max_bytes`, largest first,
/// until it fits: a value too big becomes the start of its JSON text
/// ending in [`CUT_MARKER`].
fn fit_row(row: &mut [Value], max_bytes: usize) {
    let mut size = row_len(row);
    let mut cut = vec![false; row.len()];
    while size > max_bytes {
        let Some((i, len)) = row
            .iter()
            .map(json_len)
            .enumerate()
            .filter(|(i, _)| !cut[*i])
            .max_by_key(|(_, len)| *len)
        else {
            return;
        };
        cut[i] = true;
        let over = size - max_bytes;
        let keep = len
            .saturating_sub(over)
            .saturating_sub(CUT_MARKER.len() + 2);
        let text = match &mut row[i] {
            Value::String(s) => std::mem::take(s),
            other => other.to_string(),
        };
        row[i] = cut_string(&text, keep + CUT_MARKER.len() + 2);
        size = row_len(row);
    }
}

#[cfg(any(feature = "sqlite", feature = "snowflake"))]
/// `text` cut at a character boundary so that, with the marker and its
/// quotes, it takes at most `cap` bytes (the marker alone when `cap` is smaller).
pub(crate) fn cut_string(text: &str, cap: usize) -> Value {
    let mut keep = cap.saturating_sub(CUT_MARKER.len() + 2).min(text.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut out = String::with_capacity(keep + CUT_MARKER.len());
    out.push_str(&text[..keep]);
    out.push_str(CUT_MARKER);
    Value::String(out)
}

#[cfg(any(feature = "sqlite", feature = "snowflake"))]
/// The length of a value as compact JSON (close enough for a budget).
pub(crate) fn json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => s.len() + 2,
        other => other.to_string().len(),
    }
}
