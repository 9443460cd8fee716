//! Token use as stored: per-day counts with each day's latest use, written in batches by
//! [`crate::usage::UsageLog`].

use smallvec::SmallVec;

use super::sqlite_flushes::Upsert;
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
/// round trip instead of hundreds, and its parameters (at most 2 000) stay far below either
/// database's limit.
pub const USES_PER_STATEMENT: usize = 500;

/// How a day's row merges into the stored one: the counts added, and that day's latest use
/// the later of the two (an instance's older use never moves it back; a row written without
/// one, an earlier day of a batch spanning midnight, keeps the stored one).
const USAGE_CONFLICT: &str = "ON CONFLICT (token_uuid, day) DO UPDATE SET \
     uses = token_usage.uses + excluded.uses, \
     last_used = CASE WHEN token_usage.last_used IS NULL \
                        OR excluded.last_used > token_usage.last_used \
                 THEN COALESCE(excluded.last_used, token_usage.last_used) \
                 ELSE token_usage.last_used END";

impl PendingUse {
    /// The rows of `token_usage` these uses add to: (day, uses, that day's latest use). Only
    /// the latest day's latest use is known, and only the latest day's row is read for the
    /// token's latest use; earlier days carry none.
    fn rows(&self) -> impl Iterator<Item = (i64, i64, Option<i64>)> + '_ {
        let latest_day = self.days.iter().last().map(|(day, _)| day);
        self.days.iter().map(move |(day, uses)| {
            let last_used = (Some(day) == latest_day).then_some(self.last_used);
            (day, uses, last_used)
        })
    }
}

/// A row of `token_usage`: token, day, uses, that day's latest use (Unix ms).
type UsageRow<'a> = (&'a str, i64, i64, Option<i64>);

/// The rows of `uses`, in its order (a token's days in order).
fn usage_rows(uses: &[(String, PendingUse)]) -> Vec<UsageRow<'_>> {
    uses.iter()
        .flat_map(|(uuid, pending)| {
            pending
                .rows()
                .map(move |(day, count, last_used)| (uuid.as_str(), day, count, last_used))
        })
        .collect()
}

impl Store {
    /// Writes coalesced uses of tokens, in one transaction: a row per token and UTC day in
    /// `token_usage`, the counts added to what other instances wrote and each day's latest use
    /// the later one (a token's `last_used` is its latest day's). On SQLite in prepared
    /// upserts of [`super::sqlite_flushes::ROWS_PER_UPSERT`] rows on the flushes' connection,
    /// whose foreign keys drop the rows of a token deleted meanwhile ([`Upsert`]); on
    /// PostgreSQL in upserts of at most [`USES_PER_STATEMENT`] rows, in token order: two
    /// instances flushing at once lock the rows they share in the same order, so they cannot
    /// deadlock. Uses of tokens deleted meanwhile are dropped. `uses` must be sorted by token
    /// and hold at most [`USES_PER_STATEMENT`] tokens to stay one short transaction.
    pub async fn record_uses(&self, uses: BatchRun<(String, PendingUse)>) -> Result<()> {
        if let Some(flushes) = &self.sqlite_flushes {
            return flushes
                .write(move |tx| {
                    let rows = usage_rows(&uses);
                    Upsert {
                        insert: "INSERT INTO token_usage (token_uuid, day, uses, last_used) VALUES",
                        conflict: USAGE_CONFLICT,
                        token: |row: &UsageRow<'_>| row.0,
                        values: |row| [&row.0, &row.1, &row.2, &row.3],
                    }
                    .write(tx, &rows)
                })
                .await;
        }
        let rows = usage_rows(&uses);
        let mut tx = self.begin_flush().await?;
        for chunk in rows.chunks(USES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO token_usage (token_uuid, day, uses, last_used) \
                 SELECT v.column1, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v \
                 JOIN access_tokens t ON t.uuid = v.column1 WHERE TRUE \
                 ORDER BY v.column1, v.column2 \
                 {USAGE_CONFLICT}",
                self.backend.placeholders(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (uuid, day, count, last_used) in chunk {
                query = query.bind(*uuid).bind(*day).bind(*count).bind(*last_used);
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
