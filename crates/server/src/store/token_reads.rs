//! The token check's lookup on SQLite, on the thread that asks.
//!
//! A token cache miss is one indexed read of a few rows that are in memory (SQLite's page
//! cache or the kernel's): tens of microseconds of CPU. Through sqlx each such read went
//! through `Any`, the pool, and the connection's own thread and back (sqlx's SQLite driver
//! runs every connection on a thread of its own): with 200 000 distinct tokens in the load,
//! those hand-offs (futex wake-ups, context switches) cost hubkeyd more than half of its
//! throughput. Here the read runs where the request is, on a plain SQLite connection taken
//! from a small stack of idle ones, with its statement prepared once per connection.
//!
//! That blocks the runtime's worker thread for the read, which is the point: the read is
//! shorter than a hand-off to another thread. It never waits for a lock: the connections are
//! WAL readers (`query_only`), which neither wait for the writer nor block it. A read that
//! needs a page from the disk (a cold start) blocks the worker for that I/O; the token table's
//! pages are read once and then stay in the kernel's cache.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use super::tokens::{TokenCheck, SQLITE_TOKEN_CHECK_SQL};
use crate::error::Result;

/// How many idle connections are kept. A lookup holds one only while it runs on a thread, so
/// the runtime's worker threads (one per core) bound how many are in use at once; more are
/// opened when needed (a lookup from a blocking thread) and closed after.
const IDLE_KEPT: usize = 8;

/// Plain SQLite connections to the store's file for [`TokenReads::token_check`].
#[derive(Debug)]
pub struct TokenReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl TokenReads {
    /// Lookups on the SQLite database at `path` (created and migrated already). Opens one
    /// connection now, so a file that cannot be read is an error at start.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let reads = TokenReads {
            path: path.to_owned(),
            idle: Mutex::new(Vec::with_capacity(IDLE_KEPT)),
        };
        let first = reads.connect()?;
        reads.put_back(first);
        Ok(reads)
    }

    /// What the token check needs of the token with this digest (see
    /// [`super::Store::token_check_by_digest`]).
    pub fn token_check(&self, digest: &str) -> Result<Option<TokenCheck>> {
        let conn = match self.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let found = Self::query(&conn, digest);
        // A connection whose read failed is dropped rather than reused.
        if found.is_ok() {
            self.put_back(conn);
        }
        Ok(found?)
    }

    fn query(conn: &Connection, digest: &str) -> rusqlite::Result<Option<TokenCheck>> {
        conn.prepare_cached(SQLITE_TOKEN_CHECK_SQL)?
            .query_row([digest], |row| {
                // By position, in `SQLITE_TOKEN_CHECK_SQL`'s order (a name is looked up by
                // comparing it with each column's, for every column of every lookup).
                Ok(TokenCheck {
                    uuid: row.get(0)?,
                    digest: row.get(1)?,
                    user_id: row.get(2)?,
                    scopes: row.get(3)?,
                    expires_at: row.get(4)?,
                    is_active: row.get(5)?,
                    rotated: row.get(6)?,
                    overlap_until: row.get(7)?,
                    username: row.get(8)?,
                    user_disabled: row.get(9)?,
                })
            })
            .optional()
    }

    /// A lookup connection's setting `name` (`PRAGMA name`), for tests.
    #[cfg(test)]
    pub fn pragma(&self, name: &str) -> i64 {
        let conn = self.take().expect("an idle connection");
        let value = conn
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap();
        self.put_back(conn);
        value
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        super::open_plain_sqlite(&self.path, super::SQLITE_READ_PRAGMAS)
    }

    fn take(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put_back(&self, conn: Connection) {
        let surplus = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_KEPT {
                idle.push(conn);
                None
            } else {
                Some(conn)
            }
        };
        // Closed outside the lock.
        drop(surplus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated store in a temporary directory (removed when dropped), and lookups on its
    /// file.
    async fn store_and_reads() -> (tempfile::TempDir, crate::store::Store, TokenReads) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hubkey.db");
        let store = crate::store::Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let reads = TokenReads::open(&file).unwrap();
        (dir, store, reads)
    }

    #[tokio::test]
    async fn connections_are_read_only_and_kept_up_to_the_bound() {
        let (_dir, store, reads) = store_and_reads().await;

        let conn = reads.take().unwrap();
        let write = conn.execute("DELETE FROM access_tokens", []);
        assert!(write.is_err(), "a token-check connection wrote");
        reads.put_back(conn);

        assert!(reads.token_check(&"0".repeat(64)).unwrap().is_none());
        let opened: Vec<_> = (0..IDLE_KEPT + 3)
            .map(|_| reads.connect().unwrap())
            .collect();
        for conn in opened {
            reads.put_back(conn);
        }
        assert_eq!(reads.idle.lock().unwrap().len(), IDLE_KEPT);
        drop(store);
    }

    #[tokio::test]
    async fn a_lookup_reads_the_token_from_its_covering_index_alone() {
        let (_dir, store, reads) = store_and_reads().await;
        let conn = reads.take().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SQLITE_TOKEN_CHECK_SQL}"))
            .unwrap()
            .query_map(["0"], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        // A column the check reads that the index lacks would make this `USING INDEX` (and a
        // descent of the table for each lookup).
        assert_eq!(
            plan[0], "SEARCH t USING COVERING INDEX access_tokens_check (digest=?)",
            "{plan:?}"
        );
        assert_eq!(plan.len(), 2, "the token, then its owner: {plan:?}");
        drop(store);
    }
}
