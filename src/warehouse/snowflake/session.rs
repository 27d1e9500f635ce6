//! Logged-in Snowflake sessions as the pool keeps them: opened with a
//! login, kept alive with heartbeats and renewals, logged out when dropped.

use super::*;

/// A logged-in session and the context it is in.
pub(crate) struct SnowflakeSession {
    pub(super) tokens: login::Tokens,
    pub(super) database: Option<String>,
    pub(super) schema: Option<String>,
    /// False when a context switch was interrupted: the next call switches again.
    pub(super) context_known: bool,
    pub(super) sequence: u64,
    pub(super) rest: Arc<Rest>,
}

impl Drop for SnowflakeSession {
    /// A session leaving the pool logs out in the background, so Snowflake
    /// frees it now rather than when it expires.
    fn drop(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let rest = Arc::clone(&self.rest);
        let token = self.tokens.session.clone();
        handle.spawn(async move { login::logout(&rest, &token).await });
    }
}

impl std::fmt::Debug for SnowflakeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeSession")
            .field("database", &self.database)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Logs sessions in and keeps them alive.
#[derive(Debug)]
pub(crate) struct SnowflakeManager {
    pub(super) config: SnowflakeConfig,
    pub(super) rest: Arc<Rest>,
}

impl Manager for SnowflakeManager {
    type Session = SnowflakeSession;
    type Error = WarehouseError;

    fn create(&self) -> crate::pool::BoxFuture<'_, Result<SnowflakeSession, WarehouseError>> {
        Box::pin(async move {
            let tokens = login::login(&self.rest, &self.config).await?;
            let mut session = SnowflakeSession {
                tokens,
                database: self.config.database.clone(),
                schema: self.config.schema.clone(),
                context_known: true,
                sequence: 0,
                rest: Arc::clone(&self.rest),
            };
            if let Some(t) = self.config.statement_timeout {
                let sql = format!(
                    "ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = {}",
                    t.as_secs().max(1)
                );
                // Best effort: a Snowflake-protocol server without it (a test
                // stand-in) still serves; the client-side timeout still holds.
                if let Err(e) = self.statement(&mut session, &sql, None).await {
                    tracing::warn!(error = %e, "could not set the statement timeout");
                }
            }
            Ok(session)
        })
    }

    fn check<'a>(
        &'a self,
        session: &'a mut SnowflakeSession,
    ) -> crate::pool::BoxFuture<'a, Result<(), WarehouseError>> {
        Box::pin(async move {
            if session.tokens.renewal_due() {
                login::renew(&self.rest, &mut session.tokens).await
            } else {
                login::heartbeat(&self.rest, &session.tokens).await
            }
        })
    }
}

impl SnowflakeManager {
    /// Runs a statement to its end on `session` (renewing the token first
    /// when due); its answer, rows not yet read.
    pub(super) async fn statement(
        &self,
        session: &mut SnowflakeSession,
        sql: &str,
        tag: Option<&str>,
    ) -> Result<statement::Answer, WarehouseError> {
        let ticket = Ticket::new(sql.to_owned());
        run_ticket(self, session, &ticket, tag, None, &mut None).await
    }
}
