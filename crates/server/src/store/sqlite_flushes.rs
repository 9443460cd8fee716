//! The usage and access-log flushes' writes on SQLite: one plain connection of their own
//! (`synchronous=NORMAL`, see [`super::SQLITE_FLUSH_PRAGMAS`]) on a thread of their own at a
//! lowered scheduling priority, each batch one transaction, prepared upserts of
//! [`ROWS_PER_UPSERT`] rows ([`Upsert`]); and the access-log flush's probes of what the log
//! holds, one prepared query per probe.
//!
//! Through sqlx the same batch was a statement of hundreds of rows whose every value was
//! converted twice (to `Any`'s values, then to the SQLite driver's) and handed to the
//! connection's thread: with 200 000 distinct tokens in the load, a flush of 15 000 tokens'
//! uses took 0.7 s and about a fifth of hubkeyd's CPU. A prepared statement binds each value
//! once, by position, in the thread that runs the transaction.
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

    /// The connection's setting `name` (`PRAGMA name`), for tests.
    #[cfg(test)]
    pub async fn pragma(&self, name: &'static str) -> i64 {
        self.read(move |tx| tx.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0)))
            .await
            .unwrap()
    }
}

/// Rows one multi-row upsert of [`Upsert::write`] writes.
pub const ROWS_PER_UPSERT: usize = 50;

/// How a flush upserts its rows on SQLite: the statement's head up to `VALUES`, its
/// `ON CONFLICT` clause, and each row's token (the foreign key) and values.
pub struct Upsert<'a, T, const COLUMNS: usize> {
    /// `INSERT INTO table (columns…) VALUES`.
    pub insert: &'a str,
    /// `ON CONFLICT (…) DO UPDATE …`.
    pub conflict: &'a str,
    pub token: fn(&T) -> &str,
    pub values: fn(&T) -> [&dyn rusqlite::ToSql; COLUMNS],
}

impl<T, const COLUMNS: usize> Upsert<'_, T, COLUMNS> {
    /// Writes `rows` (in token order) in statements of [`ROWS_PER_UPSERT`] rows, dropping the
    /// rows of tokens deleted since their use was noted.
    ///
    /// A statement of many rows is bound and run once: per row, one statement's setup and
    /// reset less, and for a table with `AUTOINCREMENT` (the access log) one read and write of
    /// its counter less. When a row's token is gone, the row fails its foreign key, SQLite
    /// reverts that whole statement (the transaction goes on), and its rows are written one by
    /// one instead, so that only the gone token's rows are dropped. See
    /// [`super::SQLITE_FLUSH_PRAGMAS`].
    pub fn write(&self, tx: &Transaction<'_>, rows: &[T]) -> rusqlite::Result<()> {
        let mut chunks = rows.chunks_exact(ROWS_PER_UPSERT);
        if chunks.len() > 0 {
            let mut many = tx.prepare_cached(&self.sql(ROWS_PER_UPSERT))?;
            for chunk in chunks.by_ref() {
                self.write_many(tx, &mut many, chunk)?;
            }
        }
        self.write_each(tx, chunks.remainder())
    }

    /// Writes a chunk of [`ROWS_PER_UPSERT`] rows with `many`, or one by one when a row's
    /// token is gone.
    fn write_many(
        &self,
        tx: &Transaction<'_>,
        many: &mut rusqlite::CachedStatement<'_>,
        chunk: &[T],
    ) -> rusqlite::Result<()> {
        let mut index = 0;
        for row in chunk {
            for value in (self.values)(row) {
                index += 1;
                many.raw_bind_parameter(index, value)?;
            }
        }
        match many.raw_execute() {
            Ok(_) => Ok(()),
            Err(err) if is_foreign_key_failure(&err) => self.write_each(tx, chunk),
            Err(err) => Err(err),
        }
    }

    /// Writes `rows` one statement each; once a row finds its token gone, the token's other
    /// rows are skipped.
    fn write_each(&self, tx: &Transaction<'_>, rows: &[T]) -> rusqlite::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut one = tx.prepare_cached(&self.sql(1))?;
        let mut gone: Option<&str> = None;
        for row in rows {
            let token = (self.token)(row);
            if gone == Some(token) {
                continue;
            }
            match one.execute(&(self.values)(row)[..]) {
                Ok(_) => {}
                Err(err) if is_foreign_key_failure(&err) => gone = Some(token),
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn sql(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; COLUMNS].join(", "));
        let values = vec![row; rows].join(", ");
        format!("{} {values} {}", self.insert, self.conflict)
    }
}

/// The insert failed a row's foreign key: its token was deleted since its use was noted.
fn is_foreign_key_failure(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
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

    /// A row of the test's child table: its token (the foreign key) and a count.
    type Row = (String, i64);

    const ROWS: Upsert<'static, Row, 3> = Upsert {
        insert: "INSERT INTO child (token, n, uses) VALUES",
        conflict: "ON CONFLICT (token, n) DO UPDATE SET uses = uses + excluded.uses",
        token: |row: &Row| &row.0,
        values: |row| [&row.0, &row.1, &1],
    };

    /// The test's child table: each token's uses, in token order.
    async fn uses_per_token(flushes: &SqliteFlushes) -> Vec<(String, i64)> {
        flushes
            .read(|tx| {
                let mut query = tx.prepare("SELECT token, sum(uses) FROM child GROUP BY token")?;
                let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn rows_of_a_gone_token_are_dropped_and_every_other_row_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flushes.db");
        drop(Connection::open(&file).unwrap()); // the flushes' connection creates no file
        let flushes = SqliteFlushes::open(&file, Threads::start("test", 1, 4).unwrap()).unwrap();
        flushes
            .write(|tx| {
                tx.execute_batch(
                    "CREATE TABLE parent (id TEXT PRIMARY KEY);
                     CREATE TABLE child (token TEXT NOT NULL REFERENCES parent(id),
                         n INTEGER NOT NULL, uses INTEGER NOT NULL, PRIMARY KEY (token, n));",
                )
            })
            .await
            .unwrap();
        // 130 tokens with two rows each, in token order: five full statements of rows and a
        // remainder. The tokens of the first statement's fifth row and of the remainder's
        // last row were deleted.
        let tokens: Vec<String> = (0..130).map(|n| format!("t{n:03}")).collect();
        let gone = [tokens[2].clone(), tokens[129].clone()];
        let kept: Vec<String> = tokens
            .iter()
            .filter(|t| !gone.contains(t))
            .cloned()
            .collect();
        let rows: Vec<Row> = tokens
            .iter()
            .flat_map(|token| [(token.clone(), 1), (token.clone(), 2)])
            .collect();
        assert!(rows.len() > 2 * ROWS_PER_UPSERT && !rows.len().is_multiple_of(ROWS_PER_UPSERT));
        flushes
            .write(move |tx| {
                let mut insert = tx.prepare("INSERT INTO parent (id) VALUES (?1)")?;
                for token in &kept {
                    insert.execute([token])?;
                }
                Ok(())
            })
            .await
            .unwrap();

        let rows = Arc::new(rows);
        for round in 1..=2 {
            let batch = Arc::clone(&rows);
            flushes
                .write(move |tx| ROWS.write(tx, &batch))
                .await
                .unwrap();
            let expected: Vec<(String, i64)> = tokens
                .iter()
                .filter(|t| !gone.contains(t))
                .map(|t| (t.clone(), 2 * round))
                .collect();
            assert_eq!(uses_per_token(&flushes).await, expected, "round {round}");
        }
    }
}
