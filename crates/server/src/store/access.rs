//! The per-token access log as stored: lines coalesced per token, address, agent, action and
//! UTC day, written in batches by [`crate::access_log::AccessLog`].

use hubkey_api::TokenAccess;
use sqlx::FromRow;

use super::{encode_cursor, time, Store};
use crate::access_log::AccessLine;
use crate::error::Result;

/// Lines one upsert of [`Store::record_access`] writes (8 parameters each; sqlx's SQLite
/// driver binds in time growing with the square of the parameters, so not thousands).
pub const ACCESS_LINES_PER_STATEMENT: usize = 100;
/// Lines one transaction of [`Store::record_access`] writes at most.
pub const ACCESS_LINES_PER_TRANSACTION: usize = 500;

#[derive(Debug, FromRow)]
struct AccessRow {
    id: i64,
    day: i64,
    address: String,
    user_agent: String,
    action: String,
    first_at: i64,
    last_at: i64,
    uses: i64,
}

impl AccessRow {
    fn to_api(&self) -> Option<TokenAccess> {
        Some(TokenAccess {
            cursor: encode_cursor(self.id),
            day: chrono::DateTime::from_timestamp(self.day.checked_mul(86_400)?, 0)?.date_naive(),
            address: self.address.clone(),
            user_agent: self.user_agent.clone(),
            action: self.action.clone(),
            first_at: time(self.first_at),
            last_at: time(self.last_at),
            uses: u64::try_from(self.uses).ok()?,
        })
    }
}

impl Store {
    /// Adds coalesced lines to the log, in one transaction (lines of tokens deleted meanwhile
    /// are dropped), in upserts of at most [`ACCESS_LINES_PER_STATEMENT`] lines. The caller
    /// passes at most [`ACCESS_LINES_PER_TRANSACTION`] lines in key order: the write lock
    /// (SQLite) or the rows (PostgreSQL) are held for one short transaction, never for a whole
    /// flush of tens of thousands of lines (one statement per line held SQLite's write lock
    /// for seconds and the usage flush waited behind it), and two instances lock shared lines
    /// in one order.
    pub async fn record_access(&self, lines: &[&AccessLine]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ACCESS_LINES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO token_access \
                     (token_uuid, day, address, user_agent, action, first_at, last_at, uses) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                     v.column7, v.column8 FROM (VALUES {}) AS v \
                 JOIN access_tokens t ON t.uuid = v.column1 WHERE TRUE \
                 ORDER BY v.column1, v.column2, v.column3, v.column4, v.column5 \
                 ON CONFLICT (token_uuid, day, address, user_agent, action) DO UPDATE SET \
                     first_at = CASE WHEN excluded.first_at < token_access.first_at \
                                THEN excluded.first_at ELSE token_access.first_at END, \
                     last_at = CASE WHEN excluded.last_at > token_access.last_at \
                               THEN excluded.last_at ELSE token_access.last_at END, \
                     uses = token_access.uses + excluded.uses",
                super::usage::placeholders(chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for line in chunk {
                query = query
                    .bind(line.token_uuid.as_str())
                    .bind(line.day)
                    .bind(line.address.as_str())
                    .bind(line.user_agent.as_str())
                    .bind(line.action.as_str())
                    .bind(line.first_at)
                    .bind(line.last_at)
                    .bind(line.uses);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` lines of the token's log after the line `after` (0: from the start),
    /// oldest first, and whether more follow.
    pub async fn access_page(
        &self,
        token_uuid: &str,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<TokenAccess>, bool)> {
        let rows: Vec<AccessRow> = sqlx::query_as(
            "SELECT id, day, address, user_agent, action, first_at, last_at, uses \
             FROM token_access WHERE token_uuid = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(token_uuid)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let (rows, has_more) = super::feed_page(rows, limit);
        Ok((
            rows.iter().filter_map(AccessRow::to_api).collect(),
            has_more,
        ))
    }

    /// The addresses the token was used from, with the latest use from each (Unix ms),
    /// newest first, at most `limit`.
    pub async fn last_addresses(&self, token_uuid: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT address, MAX(last_at) AS at FROM token_access \
             WHERE token_uuid = $1 AND address <> '*' \
             GROUP BY address ORDER BY at DESC LIMIT $2",
        )
        .bind(token_uuid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes the log's lines of days before `first_kept_day`; how many.
    pub async fn delete_access_before(&self, first_kept_day: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM token_access WHERE day < $1")
            .bind(first_kept_day)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
