//! Pooled SQLite connections: opening them with the limits, checking them,
//! and SQLite's errors as warehouse errors.

use super::*;

/// A pooled connection. `None` only while a statement has it on a blocking thread.
#[derive(Debug)]
pub(crate) struct SqliteSession {
    pub(super) conn: Option<Connection>,
}

/// Opens and checks connections.
#[derive(Debug)]
pub(crate) struct SqliteManager {
    pub(super) target: String,
    pub(super) flags: OpenFlags,
    pub(super) read_only: bool,
    pub(super) max_value_bytes: i32,
    pub(super) heap_limit_bytes: usize,
}

pub(super) fn sqlite_error(e: rusqlite::Error) -> WarehouseError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let kind = if f.code == rusqlite::ErrorCode::OperationInterrupted {
                ErrorKind::Interrupted
            } else {
                ErrorKind::Statement
            };
            let message = msg.clone().unwrap_or_else(|| f.to_string());
            let code = match f.code {
                rusqlite::ErrorCode::Unknown => "SQLITE_ERROR".to_owned(),
                other => format!("SQLITE_{other:?}").to_ascii_uppercase(),
            };
            WarehouseError::new(kind, message).with_code(code)
        }
        _ => WarehouseError::new(ErrorKind::Statement, e.to_string()),
    }
}

pub(super) fn join_error(e: tokio::task::JoinError) -> WarehouseError {
    WarehouseError::new(
        ErrorKind::Unavailable,
        format!("the SQLite worker failed: {e}"),
    )
}

impl SqliteManager {
    pub(super) fn open(&self) -> Result<Connection, WarehouseError> {
        let conn = Connection::open_with_flags(&self.target, self.flags).map_err(sqlite_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
        conn.set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
            self.max_value_bytes,
        )
        .map_err(sqlite_error)?;
        if self.heap_limit_bytes > 0 {
            // Process-wide; setting it again on every connection is harmless.
            conn.pragma_update(None, "hard_heap_limit", self.heap_limit_bytes as i64)
                .map_err(sqlite_error)?;
        }
        if self.read_only {
            conn.pragma_update(None, "query_only", true)
                .map_err(sqlite_error)?;
        }
        Ok(conn)
    }
}

impl Manager for SqliteManager {
    type Session = SqliteSession;
    type Error = WarehouseError;

    fn create(&self) -> crate::pool::BoxFuture<'_, Result<SqliteSession, WarehouseError>> {
        let manager = SqliteManager {
            target: self.target.clone(),
            flags: self.flags,
            read_only: self.read_only,
            max_value_bytes: self.max_value_bytes,
            heap_limit_bytes: self.heap_limit_bytes,
        };
        Box::pin(async move {
            let conn = tokio::task::spawn_blocking(move || manager.open())
                .await
                .map_err(join_error)??;
            Ok(SqliteSession { conn: Some(conn) })
        })
    }

    fn check<'a>(
        &'a self,
        session: &'a mut SqliteSession,
    ) -> crate::pool::BoxFuture<'a, Result<(), WarehouseError>> {
        Box::pin(async move {
            let conn = session
                .conn
                .take()
                .ok_or_else(|| WarehouseError::new(ErrorKind::Unavailable, "lost connection"))?;
            let (conn, checked) = tokio::task::spawn_blocking(move || {
                let r = conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
                (conn, r)
            })
            .await
            .map_err(join_error)?;
            session.conn = Some(conn);
            checked.map(|_| ()).map_err(sqlite_error)
        })
    }
}
