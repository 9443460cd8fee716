//! The usage and access-log flushes' writes on SQLite: one plain connection of their own
//! (`synchronous=NORMAL`, see [`super::SQLITE_FLUSH_PRAGMAS`]), each batch one transaction
//! on a blocking thread, one prepared single-row upsert per row; and the access-log flush's
//! probes of what the log holds, one prepared query per probe.
//!
//! Through sqlx the same batch was a statement of hundreds of rows whose every value was
//! converted twice (to `Any`'s values, then to the SQLite driver's) and handed to the
//! connection's thread: with 200 000 distinct tokens in the load, a flush of 15 000 tokens'
//! uses took 0.7 s and about a fifth of hubkeyd's CPU. A prepared statement executed per row
//! binds each value once, by position, in the thread that runs the transaction.
//!
//! PostgreSQL keeps the batched statements (there each statement is a round trip).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// The flushes' connection, used by one batch at a time.
#[derive(Debug)]
pub struct SqliteFlushes {
    conn: Mutex<Connection>,
}

impl SqliteFlushes {
    /// The connection to the SQLite database at `path` (created and migrated already).
    pub fn open(path: &Path) -> rusqlite::Result<Arc<Self>> {
        let conn = super::open_plain_sqlite(path, super::SQLITE_FLUSH_PRAGMAS)?;
        Ok(Arc::new(SqliteFlushes {
            conn: Mutex::new(conn),
        }))
    }

    /// Runs `write` in one transaction (taking the write lock at its start, so it never
    /// fails half-way for a lock) on a blocking thread, and commits if it succeeds.
    pub async fn write<T, F>(self: &Arc<Self>, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(TransactionBehavior::Immediate, move |tx| {
            let out = write(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `read` in one read transaction (a consistent snapshot, no write lock) on a
    /// blocking thread.
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(TransactionBehavior::Deferred, move |tx| read(&tx))
            .await
    }

    async fn run<T, F>(self: &Arc<Self>, behavior: TransactionBehavior, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let flushes = Arc::clone(self);
        tokio::task::spawn_blocking(move || -> Result<T> {
            let mut conn = flushes.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(behavior)?;
            Ok(run(tx)?)
        })
        .await
        .map_err(|err| Error::Internal(format!("a flush's statement did not finish: {err}")))?
    }

    /// SQLite's `synchronous` setting of the connection (1 NORMAL, 2 FULL), for tests.
    #[cfg(test)]
    pub fn synchronous(&self) -> i64 {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    }
}
