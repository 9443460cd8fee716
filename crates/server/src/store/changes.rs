//! The change table (SQLite): what each change a cache could hide made stale, one row per
//! change, which every running server polls ([`crate::change_table`]), and the servers that
//! poll it (`cache_listeners`: the newest row each has forgotten, and its heartbeat).

use std::sync::atomic::Ordering;

use super::{millis, Backend, DbConnection, Store};
use crate::error::Result;
use crate::invalidation::Stale;
use chrono::{DateTime, Utc};

/// One row of the change table: its id and the stale items, one [`Stale::payload`] a line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub items: String,
}

/// The running servers a change waits for: how many are alive, and how many of those have
/// not yet forgotten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    pub live: u64,
    pub behind: u64,
}

impl Store {
    /// Writes `stale` as one row of the change table inside the change's transaction `conn`,
    /// on SQLite (PostgreSQL announces instead); answers its id.
    pub(super) async fn record_change(
        backend: Backend,
        conn: &mut DbConnection,
        stale: &[Stale],
    ) -> Result<Option<i64>> {
        if backend != Backend::Sqlite || stale.is_empty() {
            return Ok(None);
        }
        let items: Vec<String> = stale.iter().map(Stale::payload).collect();
        let id: i64 =
            sqlx::query_scalar("INSERT INTO cache_changes (items) VALUES ($1) RETURNING id")
                .bind(items.join("\n"))
                .fetch_one(&mut *conn)
                .await?;
        Ok(Some(id))
    }

    /// Notes that this process committed change `id` (for [`Store::recorded_change`]).
    pub(super) fn note_recorded(&self, id: i64) {
        self.recorded.fetch_max(id, Ordering::AcqRel);
    }

    /// The newest change this process wrote to the change table, if any: what the admin
    /// commands wait for running servers to have forgotten.
    pub fn recorded_change(&self) -> Option<i64> {
        Some(self.recorded.load(Ordering::Acquire)).filter(|id| *id > 0)
    }

    /// The newest change's id (0 when the table is empty): the poll, one probe of the
    /// primary key's end, through the read-only connections.
    pub async fn newest_change(&self) -> Result<i64> {
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT id FROM cache_changes ORDER BY id DESC LIMIT 1")
                .fetch_optional(self.read_pool())
                .await?;
        Ok(newest.unwrap_or(0))
    }

    /// At most `limit` changes after `after`, oldest first.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        Ok(
            sqlx::query_as(
                "SELECT id, items FROM cache_changes WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(self.read_pool())
            .await?,
        )
    }

    /// Registers the server `listener` as polling, alive at `now`, having seen every change
    /// up to the newest (its caches start empty); answers that id. One statement: a change
    /// committed after it is waited for.
    pub async fn join_listeners(&self, listener: &str, now: DateTime<Utc>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO cache_listeners (id, seen, heartbeat_at) \
             VALUES ($1, COALESCE((SELECT id FROM cache_changes ORDER BY id DESC LIMIT 1), 0), $2) \
             ON CONFLICT (id) DO UPDATE SET seen = excluded.seen, heartbeat_at = excluded.heartbeat_at \
             RETURNING seen",
        )
        .bind(listener)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records that `listener` has forgotten every change up to `seen` and is alive at `now`
    /// (its row is made again if a sweep deleted it while it was stopped).
    pub async fn record_seen(&self, listener: &str, seen: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO cache_listeners (id, seen, heartbeat_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET seen = excluded.seen, heartbeat_at = excluded.heartbeat_at",
        )
        .bind(listener)
        .bind(seen)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes `listener` (a server stopping): no change waits for it any more.
    pub async fn leave_listeners(&self, listener: &str) -> Result<()> {
        sqlx::query("DELETE FROM cache_listeners WHERE id = $1")
            .bind(listener)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The listeners alive since `live_since` (their last heartbeat), and how many of them
    /// have not yet forgotten change `id`.
    pub async fn listeners_behind(&self, id: i64, live_since: DateTime<Utc>) -> Result<Listeners> {
        let (live, behind): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT), \
                    CAST(COALESCE(SUM(CASE WHEN seen < $1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM cache_listeners WHERE heartbeat_at >= $2",
        )
        .bind(id)
        .bind(millis(live_since))
        .fetch_one(&self.pool)
        .await?;
        Ok(Listeners {
            live: u64::try_from(live).unwrap_or(0),
            behind: u64::try_from(behind).unwrap_or(0),
        })
    }

    /// Deletes the listeners silent since before `silent_before` (a server that crashed),
    /// then every change all remaining listeners have forgotten (all of them when none is
    /// left), but the newest: a server that registers later starts after it, and one that
    /// finds a gap in the ids before its next row forgets everything. Answers the rows
    /// deleted (changes, listeners).
    pub(super) async fn sweep_changes(
        conn: &mut DbConnection,
        silent_before: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let listeners = sqlx::query("DELETE FROM cache_listeners WHERE heartbeat_at < $1")
            .bind(millis(silent_before))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let changes = sqlx::query(
            "DELETE FROM cache_changes \
             WHERE id < (SELECT MAX(id) FROM cache_changes) \
               AND id <= COALESCE((SELECT MIN(seen) FROM cache_listeners), \
                                  (SELECT MAX(id) FROM cache_changes))",
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok((changes, listeners))
    }
}
