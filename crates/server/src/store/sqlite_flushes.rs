//! The usage and access-log flushes' writes on SQLite: one plain connection of their own
//! (`synchronous=NORMAL`, see [`super::SQLITE_FLUSH_PRAGMAS`]) on a thread of their own at a
//! lowered scheduling priority, each batch one transaction, one prepared single-row upsert
//! per row; and the access-log flush's probes of what the log holds, one prepared query per
//! probe.
//!
//! Through sqlx the same batch was a statement of hundreds of rows whose every value was
//! converted twice (to `Any`'s values, then to the SQLite driver's) and handed to the
//! connection's thread: with 200 000 distinct tokens in the load, a flush of 15 000 tokens'
//! uses took 0.7 s and about a fifth of hubkeyd's CPU. A prepared statement executed per row
//! binds each value once, by position, in the thread that runs the transaction.
//!
//! The connection is used on the store's background thread ([`crate::background`]), below
//! the token checks' priority: under a load of distinct tokens a flush is a few hundred
//! milliseconds of CPU every two seconds, which is not theirs to wait for.
//!
//! PostgreSQL keeps the batched statements (there each statement is a round trip).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::background::Threads;
use crate::error::{Result, SetupError};

/// The flushes' connection, used by one batch at a time on the store's background thread.
#[derive(Debug)]
pub struct SqliteFlushes {
    conn: Arc<Mutex<Connection>>,
    background: Threads,
}

impl SqliteFlushes {
    /// The connection to the SQLite database at `path` (created and migrated already), used
    /// on `background`.
    pub fn open(path: &Path, background: Threads) -> Result<Self, SetupError> {
        let conn = super::open_plain_sqlite(path, super::SQLITE_FLUSH_PRAGMAS)
            .map_err(|err| SetupError::Database(format!("opening: {err}")))?;
        Ok(SqliteFlushes {
            conn: Arc::new(Mutex::new(conn)),
            background,
        })
    }

    /// Runs `write` in one transaction (taking the write lock at its start, so it never
    /// fails half-way for a lock) on the flushes' thread, and commits if it succeeds.
    pub async fn write<T, F>(&self, write: F) -> Result<T>
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

    /// Runs `read` in one read transaction (a consistent snapshot, no write lock) on the
    /// flushes' thread.
    pub async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(TransactionBehavior::Deferred, move |tx| read(&tx))
            .await
    }

    async fn run<T, F>(&self, behavior: TransactionBehavior, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        self.background
            .run(move || -> Result<T> {
                let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                let tx = conn.transaction_with_behavior(behavior)?;
                Ok(run(tx)?)
            })
            .await?
    }

    /// SQLite's `synchronous` setting of the connection (1 NORMAL, 2 FULL), for tests.
    #[cfg(test)]
    pub async fn synchronous(&self) -> i64 {
        self.read(|tx| tx.query_row("PRAGMA synchronous", [], |row| row.get(0)))
            .await
            .unwrap()
    }
}

/// Runs one of a flush's upserts of a token's row: `Ok(false)` when the token was deleted since
/// its use was noted (the insert failed the row's foreign key and SQLite reverted just that
/// statement; the transaction goes on). See [`super::SQLITE_FLUSH_PRAGMAS`].
pub fn upsert_unless_gone(
    upsert: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> rusqlite::Result<bool> {
    match upsert.execute(params) {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[tokio::test]
    async fn a_write_that_panics_is_rolled_back_and_the_next_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hubkeyd.db");
        let store = crate::store::Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let flushes = SqliteFlushes::open(&file, Threads::start("test", 1, 4).unwrap()).unwrap();
        let panicked = flushes
            .write(|tx| -> rusqlite::Result<()> {
                tx.execute("CREATE TABLE half_done (x)", [])?;
                panic!("a flush's bug");
            })
            .await;
        assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
        let tables: i64 = flushes
            .read(|tx| {
                tx.query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
                    [],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(tables, 0, "the panicking write was rolled back");
        store.close().await;
    }
}
