//! Token use as stored: `last_used` and per-day counts, written in batches by
//! [`crate::usage::UsageLog`].

use smallvec::SmallVec;

use super::sqlite_flushes::upsert_unless_gone;
use super::{BatchRun, Store};
use crate::error::Result;

/// The unflushed uses of one token.
#[derive(Debug, Default, Clone)]
pub struct PendingUse {
    /// Latest use, Unix milliseconds.
    pub last_used: i64,
    /// Uses per UTC day.
    pub days: DayCounts,
}

/// Uses per UTC day (days since the epoch), in day order. A token's uses between two flushes
/// almost always fall on one day, which is kept inline: noting a token's first use allocates
/// nothing but its key, and copying or freeing a batch of tens of thousands of tokens costs no
/// allocation per token (a map per token was a tenth of the flushes' thread under a load of
/// distinct tokens).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DayCounts(SmallVec<[(i64, i64); 1]>);

impl DayCounts {
    /// Adds `uses` to `day`'s count.
    pub fn add(&mut self, day: i64, uses: i64) {
        match self.0.binary_search_by_key(&day, |(known, _)| *known) {
            Ok(at) => self.0[at].1 += uses,
            Err(at) => self.0.insert(at, (day, uses)),
        }
    }

    /// (day, uses), in day order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<(i64, i64)> for DayCounts {
    fn from_iter<I: IntoIterator<Item = (i64, i64)>>(days: I) -> Self {
        let mut counts = DayCounts::default();
        for (day, uses) in days {
            counts.add(day, uses);
        }
        counts
    }
}

/// Rows an upsert of token uses writes at most: a statement of a few hundred rows costs one
/// round trip instead of hundreds, and its parameters (at most 1 500) stay far below either
/// database's limit.
pub const USES_PER_STATEMENT: usize = 500;

/// How a token's latest use merges into the stored one: it wins only if later (an
/// instance's older use never moves it back). Shared by the batched upsert (PostgreSQL) and
/// the single-row one (SQLite's flush connection, [`super::sqlite_flushes`]).
const LAST_USED_CONFLICT: &str = "ON CONFLICT (token_uuid) DO UPDATE SET \
     last_used = excluded.last_used WHERE excluded.last_used > token_last_used.last_used";

/// How a day's count merges into the stored one: added.
const USES_PER_DAY_CONFLICT: &str =
    "ON CONFLICT (token_uuid, day) DO UPDATE SET uses = token_usage.uses + excluded.uses";

impl Store {
    /// Writes coalesced uses of tokens, in one transaction: `last_used` into
    /// `token_last_used` (the latest use wins: an instance's older use never moves it back)
    /// and the per-day counts into `token_usage` (added to what other instances wrote). On
    /// SQLite one prepared upsert per row on the flushes' connection, whose foreign keys drop
    /// the rows of a token deleted meanwhile (see [`super::SQLITE_FLUSH_PRAGMAS`]); on
    /// PostgreSQL both in upserts of at most [`USES_PER_STATEMENT`] rows, each in token
    /// order: two instances flushing at once lock the rows they share in the same order, so
    /// they cannot deadlock. Uses of tokens deleted meanwhile are dropped. `uses` must be
    /// sorted by token and hold at most [`USES_PER_STATEMENT`] tokens to stay one short
    /// transaction.
    pub async fn record_uses(&self, uses: BatchRun<(String, PendingUse)>) -> Result<()> {
        if let Some(flushes) = &self.sqlite_flushes {
            return flushes
                .write(move |tx| {
                    let mut last_used = tx.prepare_cached(&format!(
                        "INSERT INTO token_last_used (token_uuid, last_used) VALUES ($1, $2) \
                         {LAST_USED_CONFLICT}"
                    ))?;
                    let mut per_day = tx.prepare_cached(&format!(
                        "INSERT INTO token_usage (token_uuid, day, uses) VALUES ($1, $2, $3) \
                         {USES_PER_DAY_CONFLICT}"
                    ))?;
                    for (uuid, pending) in uses.iter() {
                        let row = rusqlite::params![uuid, pending.last_used];
                        if !upsert_unless_gone(&mut last_used, row)? {
                            continue;
                        }
                        // The token exists (its `last_used` row does, in this transaction).
                        for (day, count) in pending.days.iter() {
                            per_day.execute(rusqlite::params![uuid, day, count])?;
                        }
                    }
                    Ok(())
                })
                .await;
        }
        let mut tx = self.begin_flush().await?;
        for chunk in uses.chunks(USES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO token_last_used (token_uuid, last_used) \
                 SELECT v.column1, v.column2 FROM (VALUES {}) AS v \
                 JOIN access_tokens t ON t.uuid = v.column1 WHERE TRUE ORDER BY v.column1 \
                 {LAST_USED_CONFLICT}",
                self.backend.placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (uuid, pending) in chunk {
                query = query.bind(uuid.as_str()).bind(pending.last_used);
            }
            query.execute(&mut *tx).await?;
        }
        let days: Vec<(&str, i64, i64)> = uses
            .iter()
            .flat_map(|(uuid, pending)| {
                pending
                    .days
                    .iter()
                    .map(move |(day, count)| (uuid.as_str(), day, count))
            })
            .collect();
        for chunk in days.chunks(USES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO token_usage (token_uuid, day, uses) \
                 SELECT v.column1, v.column2, v.column3 FROM (VALUES {}) AS v \
                 JOIN access_tokens t ON t.uuid = v.column1 WHERE TRUE \
                 ORDER BY v.column1, v.column2 \
                 {USES_PER_DAY_CONFLICT}",
                self.backend.placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (uuid, day, count) in chunk {
                query = query.bind(*uuid).bind(*day).bind(*count);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per-day uses since `since_day` of the tokens on one page of the account's list (the
    /// same order, offset and limit as [`Store::list_tokens`]).
    pub async fn usage_of_page(
        &self,
        user_id: &str,
        offset: i64,
        limit: i64,
        since_day: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token_uuid, day, uses FROM token_usage \
             WHERE day >= $4 AND token_uuid IN ( \
                 SELECT uuid FROM access_tokens WHERE user_id = $1 \
                 ORDER BY created_at DESC, uuid DESC LIMIT $2 OFFSET $3) \
             ORDER BY day",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Per-day uses of one token since `since_day`.
    pub async fn usage_of_token(
        &self,
        uuid: &str,
        since_day: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token_uuid, day, uses FROM token_usage WHERE token_uuid = $1 AND day >= $2 ORDER BY day",
        )
        .bind(uuid)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_add_per_day_and_list_in_day_order_whatever_the_order_of_uses() {
        let mut counts = DayCounts::default();
        for (day, uses) in [(12, 1), (10, 2), (12, 3), (11, 1), (10, 1)] {
            counts.add(day, uses);
        }
        assert_eq!(
            counts.iter().collect::<Vec<_>>(),
            [(10, 3), (11, 1), (12, 4)]
        );
        assert_eq!(DayCounts::default().iter().count(), 0);
    }
}
