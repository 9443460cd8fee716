//! Token use as stored: `last_used` and per-day counts, written in batches by
//! [`crate::usage::UsageLog`].

use std::collections::{BTreeMap, HashMap};

use super::Store;
use crate::error::Result;

/// The unflushed uses of one token.
#[derive(Debug, Default, Clone)]
pub struct PendingUse {
    /// Latest use, Unix milliseconds.
    pub last_used: i64,
    /// Uses per UTC day (days since the epoch).
    pub days: BTreeMap<i64, i64>,
}

impl Store {
    /// Writes coalesced uses: `last_used` (never backwards) and the per-day counts. Uses of
    /// tokens deleted meanwhile are dropped.
    pub async fn record_uses(&self, uses: &HashMap<String, PendingUse>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (uuid, pending) in uses {
            sqlx::query(
                "UPDATE access_tokens SET last_used = $1 \
                 WHERE uuid = $2 AND (last_used IS NULL OR last_used < $1)",
            )
            .bind(pending.last_used)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
            for (day, count) in &pending.days {
                sqlx::query(
                    "INSERT INTO token_usage (token_uuid, day, uses) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM access_tokens WHERE uuid = $1) \
                     ON CONFLICT (token_uuid, day) DO UPDATE SET uses = token_usage.uses + excluded.uses",
                )
                .bind(uuid)
                .bind(day)
                .bind(count)
                .execute(&mut *tx)
                .await?;
            }
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
